//! Untrusted bytes as a columnar file (Parquet, Arrow IPC file or stream: the readers tell
//! them apart by their magic). No input may panic; whatever reads must write back as
//! GeoParquet and read again to the same column.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_kernels::io::geoarrow::Encoding;
use meridian_kernels::io::{self, Format, GeometryWriter};

fuzz_target!(|data: &[u8]| {
    // The readers take files: one per fuzzing process, in memory-backed /dev/shm when there.
    let dir = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
    let input = dir.join(format!("meridian-fuzz-{}.parquet", std::process::id()));
    let again = dir.join(format!("meridian-fuzz-{}-again.parquet", std::process::id()));
    std::fs::write(&input, data).expect("the fuzz input file can be written");
    let Ok(col) = io::read_geometry(&input) else { return };
    let mut w = GeometryWriter::create(&again, Format::Parquet, "geometry", Encoding::Wkb).expect("create");
    w.write(&col).expect("a column read writes as WKB");
    w.finish().expect("finish");
    let back = io::read_geometry(&again).expect("what was written reads");
    assert_eq!(back, col);
});
