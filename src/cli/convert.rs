//! `meridian convert IN OUT`: a geometry file from one format to another (by the names'
//! extensions). The geometry column is converted; other columns are not carried.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use meridian::kernels::io::geoarrow::Encoding;
use meridian::kernels::io::{self, Format, GeometryWriter};

use super::{print, Failure};

/// Rows per record batch written.
const BATCH: usize = 64 * 1024;

/// `meridian convert`; `encoding` is `auto` (native points for point columns, else WKB),
/// `native` (GeoArrow's layout for the column's one family) or `wkb`.
pub fn convert(input: &Path, output: &Path, encoding: &str) -> Result<(), Failure> {
    let fail = |m: String| Failure::input([format!("error: {m}")]);
    let format = Format::from_path(output).ok_or_else(|| {
        fail(format!("{}: unknown output format (expected {})", output.display(), Format::NAMES))
    })?;
    if Format::from_path(input).is_none() {
        return Err(fail(format!("{}: unknown input format (expected {})", input.display(), Format::NAMES)));
    }
    super::run::refuse_overwriting_inputs(&[output.to_path_buf()], &[input])?;
    let t = Instant::now();
    let col = io::read_geometry(input).map_err(|e| fail(e.to_string()))?;
    let read = t.elapsed();
    let encoding = match encoding {
        "wkb" => Encoding::Wkb,
        "native" => match col.view().family() {
            Some(f) => Encoding::Native(f),
            None => {
                return Err(fail(format!(
                    "{}: --encoding native needs one geometry family, and the column holds several (or none)",
                    input.display()
                )))
            }
        },
        _ => Encoding::for_column(&col),
    };
    let t = Instant::now();
    let mut w =
        GeometryWriter::create(output, format, "geometry", encoding).map_err(|e| fail(e.to_string()))?;
    let mut start = 0;
    while start < col.len() {
        let end = (start + BATCH).min(col.len());
        w.write_rows(&col, start..end).map_err(|e| fail(e.to_string()))?;
        start = end;
    }
    let rows = w.finish().map_err(|e| fail(e.to_string()))?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} → {}: {} rows ({}); read {:.1} ms, write {:.1} ms",
        input.display(),
        output.display(),
        meridian::demo::group(rows),
        if format.columnar().is_some() { encoding.to_string() } else { "text".to_owned() },
        read.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3
    );
    print(&s);
    Ok(())
}
