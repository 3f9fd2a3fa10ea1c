//! Untrusted bytes as a text geometry file: a mode byte, then the file. The mode picks the
//! format (CSV, WKT, GeoJSON; gzipped when bit 2 is set) and each input is also read cut short
//! (at a point the data picks) and with one bit flipped, as a damaged file would be. No input
//! may panic, and whatever reads must write back as WKT and read again to the same column.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use meridian_kernels::io::geoarrow::Encoding;
use meridian_kernels::io::{self, Format, GeometryWriter};

fn check(dir: &std::path::Path, mode: u8, bytes: &[u8]) {
    let ext = ["csv", "wkt", "geojson", "wkt"][usize::from(mode & 3)];
    let gz = mode & 4 != 0;
    let name = format!("meridian-fuzz-{}.{ext}{}", std::process::id(), if gz { ".gz" } else { "" });
    let input = dir.join(name);
    let file = std::fs::File::create(&input).expect("the fuzz input file can be made");
    if gz {
        let mut z = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        z.write_all(bytes).expect("write");
        z.finish().expect("finish");
    } else {
        let mut file = file;
        file.write_all(bytes).expect("write");
    }
    let Ok(col) = io::read_geometry(&input) else { return };
    let again = dir.join(format!("meridian-fuzz-{}-again.wkt", std::process::id()));
    let mut w = GeometryWriter::create(&again, Format::Wkt, "geometry", Encoding::Wkb).expect("create");
    w.write(&col).expect("a column read writes as WKT");
    w.finish().expect("finish");
    let back = io::read_geometry(&again).expect("what was written reads");
    assert_eq!(back, col, "{ext}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else { return };
    let dir = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
    check(&dir, mode, bytes);
    if bytes.is_empty() {
        return;
    }
    // Cut short, where the data says.
    let cut = usize::from(bytes[bytes.len() / 2]) * bytes.len() / 256;
    check(&dir, mode, &bytes[..cut]);
    // One bit flipped, where the data says.
    let mut flipped = bytes.to_vec();
    let at = usize::from(bytes[0]) * bytes.len() / 256;
    flipped[at] ^= 1 << (bytes[bytes.len() - 1] & 7);
    check(&dir, mode, &flipped);
});
