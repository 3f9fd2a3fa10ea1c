//! CSV points: `x,y` / `lon,lat` coordinate columns, or a `wkt` column.

use std::io::Read;

use super::{Position, ReadError};
use crate::column::{ColumnBuilder, GeometryColumn};

/// The rows of a CSV file: the geometry and the text of the columns asked for.
#[derive(Clone, Debug)]
pub struct CsvTable {
    /// One row per record.
    pub geometry: GeometryColumn,
    /// The kept columns, by header name, in the order asked for.
    pub columns: Vec<(String, Vec<String>)>,
}

impl CsvTable {
    /// The kept column `name`.
    pub fn column(&self, name: &str) -> Option<&[String]> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

/// The coordinate column pairs recognised, in order of preference (header names are
/// compared case-insensitively).
const XY_NAMES: [(&str, &str); 4] = [("x", "y"), ("lon", "lat"), ("lng", "lat"), ("longitude", "latitude")];

enum Source {
    Xy(usize, usize),
    Wkt(usize),
}

/// Reads a CSV file with a header row. The geometry comes from a `wkt` column if there is one
/// (an empty field or `NULL` is a null row), else from `x,y`, `lon,lat`, `lng,lat` or
/// `longitude,latitude` (both fields empty is a null row; one empty, or text that is not a
/// number, is an error). The columns named in `keep` are returned as text. Errors carry the
/// 1-based line.
///
/// ```
/// let text = "name,lon,lat\na,1.5,2\nb,,\n";
/// let t = meridian_kernels::io::read_csv("mem.csv", text.as_bytes(), &["name"])?;
/// assert_eq!(t.geometry.len(), 2);
/// assert!(t.geometry.get(1).is_none());
/// assert_eq!(t.column("name").unwrap()[0], "a");
/// # Ok::<(), meridian_kernels::io::ReadError>(())
/// ```
pub fn read_csv(name: &str, reader: impl Read, keep: &[&str]) -> Result<CsvTable, ReadError> {
    let mut r = ::csv::ReaderBuilder::new().has_headers(true).from_reader(reader);
    let err = |at, m: &dyn std::fmt::Display| ReadError::new(name, at, m);
    let headers = r.byte_headers().map_err(|e| err(Position::Line(1), &e))?.clone();
    let find = |want: &str| {
        headers.iter().position(|h| std::str::from_utf8(h).is_ok_and(|h| h.trim().eq_ignore_ascii_case(want)))
    };
    let source = match find("wkt") {
        Some(i) => Source::Wkt(i),
        None => XY_NAMES
            .iter()
            .find_map(|(x, y)| Some(Source::Xy(find(x)?, find(y)?)))
            .ok_or_else(|| err(Position::Line(1), &"no `wkt` column and no x,y / lon,lat column pair"))?,
    };
    let kept: Vec<usize> = keep
        .iter()
        .map(|k| find(k).ok_or_else(|| err(Position::Line(1), &format!("no column named `{k}`"))))
        .collect::<Result<_, _>>()?;
    let mut columns: Vec<(String, Vec<String>)> = keep.iter().map(|k| (k.to_string(), Vec::new())).collect();
    let mut b = ColumnBuilder::new();
    let mut rec = ::csv::ByteRecord::new();
    loop {
        // Where the next record starts: the reader's position is already on its line.
        let line = r.position().line();
        match r.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            // The csv crate's error names the record it failed in (its first line), when it
            // knows it; its message repeats that position, so only the cause is kept.
            Err(e) => {
                let at = e.position().map_or(line, |p| p.line());
                return Err(err(Position::Line(at), &csv_cause(&e)));
            }
        }
        let line = rec.position().map_or(line, |p| p.line());
        let at = Position::Line(line);
        let field = |i: usize| -> Result<&str, ReadError> {
            let bytes = rec.get(i).ok_or_else(|| err(at, &format!("missing field {}", i + 1)))?;
            std::str::from_utf8(bytes).map(str::trim).map_err(|e| err(at, &e))
        };
        match source {
            Source::Wkt(i) => {
                let text = field(i)?;
                if text.is_empty() {
                    b.push_null();
                } else {
                    super::wkt::push_wkt(&mut b, text).map_err(|m| err(at, &m))?;
                }
            }
            Source::Xy(ix, iy) => match (field(ix)?, field(iy)?) {
                ("", "") => b.push_null(),
                (x, y) => {
                    let num = |s: &str, what: &str| {
                        s.parse::<f64>().map_err(|_| err(at, &format!("{what} field {s:?} is not a number")))
                    };
                    b.push_point(num(x, "x")?, num(y, "y")?).map_err(|e| err(at, &e))?;
                }
            },
        }
        for (k, &i) in kept.iter().enumerate() {
            let text = field(i)?.to_string();
            columns[k].1.push(text);
        }
    }
    Ok(CsvTable { geometry: b.finish(), columns })
}

/// What a csv error says, without the position it also carries (the error names the line).
fn csv_cause(e: &::csv::Error) -> String {
    match e.kind() {
        ::csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} fields where the header has {expected_len}")
        }
        ::csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8 in field {}", err.field() + 1),
        _ => e.to_string(),
    }
}
