//! WKT: one geometry per line, `NULL` for a null row.

use std::io::BufRead;
use std::str::FromStr;

use ::wkt::types::{Coord, Dimension, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon};
use ::wkt::Wkt;

use super::{Position, ReadError};
use crate::column::{ColumnBuilder, Family, Geom, GeometryColumn};

/// Reads one WKT geometry per line (`NULL`, any case, is a null row; blank lines are not
/// rows). `name` is used in errors, which carry the 1-based line number.
///
/// ```
/// let text = "POINT (1 2)\nNULL\nPOLYGON EMPTY\n";
/// let col = meridian_kernels::io::read_wkt("mem.wkt", text.as_bytes())?;
/// assert_eq!(col.len(), 3);
/// assert!(col.get(1).is_none());
/// assert!(col.get(2).unwrap().is_empty());
/// # Ok::<(), meridian_kernels::io::ReadError>(())
/// ```
pub fn read_wkt(name: &str, reader: impl BufRead) -> Result<GeometryColumn, ReadError> {
    let mut b = ColumnBuilder::new();
    for (i, line) in reader.lines().enumerate() {
        let at = Position::Line(i as u64 + 1);
        let line = line.map_err(|e| ReadError::new(name, at, e))?;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        push_wkt(&mut b, text).map_err(|m| ReadError::new(name, at, m))?;
    }
    Ok(b.finish())
}

/// Parses one WKT text (or `NULL`, any case: a null row) and appends it; the error says what
/// is wrong with the text.
pub fn push_wkt(b: &mut ColumnBuilder, text: &str) -> Result<(), String> {
    if text.eq_ignore_ascii_case("null") {
        b.push_null();
        return Ok(());
    }
    check_nesting(text)?;
    let w = Wkt::<f64>::from_str(text).map_err(|e| format!("invalid WKT: {e}"))?;
    b.push_geometry(&w).map_err(|e| e.to_string())
}

/// How deep a WKT text's parentheses may nest. The deepest geometry this crate reads
/// (`MULTIPOLYGON`) nests three levels; the `wkt` parser recurses once a level, so a text
/// nested thousands deep would overflow the stack and abort the process instead of failing.
pub const MAX_WKT_NESTING: usize = 32;

/// Refuses a text whose parentheses nest deeper than [`MAX_WKT_NESTING`], naming the byte
/// (0-based, in the text) where it goes too deep.
fn check_nesting(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    for (at, b) in text.bytes().enumerate() {
        match b {
            b'(' => {
                depth += 1;
                if depth > MAX_WKT_NESTING {
                    return Err(format!(
                        "invalid WKT: parentheses nested deeper than {MAX_WKT_NESTING} levels at byte {at}"
                    ));
                }
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The WKT text of a row: `NULL` for a null row, `POLYGON EMPTY` and the like for empties.
pub fn to_wkt(g: Option<&Geom<'_>>) -> String {
    match g {
        None => "NULL".to_string(),
        Some(g) => to_wkt_value(g).to_string(),
    }
}

fn coord((x, y): (f64, f64)) -> Coord<f64> {
    Coord { x, y, z: None, m: None }
}

fn line(r: crate::column::Ring<'_>) -> LineString<f64> {
    LineString::new(r.coords().map(coord).collect(), Dimension::XY)
}

/// A row as a `wkt` crate value (which implements `Display` and `geo-traits`).
pub fn to_wkt_value(g: &Geom<'_>) -> Wkt<f64> {
    let xy = Dimension::XY;
    let point = |p: crate::column::Part<'_>| Point::new(p.first_ring().map(|r| coord(r.at(0))), xy);
    let line_of = |p: crate::column::Part<'_>| p.first_ring().map(line).unwrap_or(LineString::empty(xy));
    let poly = |p: crate::column::Part<'_>| Polygon::new(p.rings().map(line).collect(), xy);
    match g.family() {
        Family::Point => Wkt::Point(g.parts().next().map(point).unwrap_or(Point::empty(xy))),
        Family::LineString => Wkt::LineString(g.parts().next().map(line_of).unwrap_or(LineString::empty(xy))),
        Family::Polygon => Wkt::Polygon(g.parts().next().map(poly).unwrap_or(Polygon::empty(xy))),
        Family::MultiPoint => Wkt::MultiPoint(MultiPoint::new(g.parts().map(point).collect(), xy)),
        Family::MultiLineString => {
            Wkt::MultiLineString(MultiLineString::new(g.parts().map(line_of).collect(), xy))
        }
        Family::MultiPolygon => Wkt::MultiPolygon(MultiPolygon::new(g.parts().map(poly).collect(), xy)),
    }
}
