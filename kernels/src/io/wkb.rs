//! WKB: read (ISO and extended; little- and big-endian) through the `wkb` crate; written
//! (little-endian ISO) here, straight from the column's coordinates.

use crate::column::{ColumnBuilder, Family, Geom, Part, Ring};

/// Parses one WKB geometry and appends it. Errors say what was wrong; the builder is left
/// unchanged.
pub fn push_wkb(b: &mut ColumnBuilder, bytes: &[u8]) -> Result<(), String> {
    let g = ::wkb::reader::read_wkb(bytes).map_err(|e| format!("invalid WKB: {e}"))?;
    b.push_geometry(&g).map_err(|e| e.to_string())
}

/// The little-endian ISO WKB of a row (an empty point is written with NaN coordinates, the
/// WKB convention, and read back as empty by [`push_wkb`]).
pub fn to_wkb(g: &Geom<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    write_wkb(g, &mut out);
    out
}

/// Appends the little-endian ISO WKB of a row to `out` ([`to_wkb`] without its allocation).
/// Counts are `u32`, as WKB's are; a column's offsets are 32-bit, so every count fits.
pub fn write_wkb(g: &Geom<'_>, out: &mut Vec<u8>) {
    let first = g.parts().next();
    match g.family() {
        Family::Point => point(out, first),
        Family::LineString => line(out, first),
        Family::Polygon => polygon(out, first),
        Family::MultiPoint => {
            header(out, 4);
            count(out, g.parts().len());
            g.parts().for_each(|p| point(out, Some(p)));
        }
        Family::MultiLineString => {
            header(out, 5);
            count(out, g.parts().len());
            g.parts().for_each(|p| line(out, Some(p)));
        }
        Family::MultiPolygon => {
            header(out, 6);
            count(out, g.parts().len());
            g.parts().for_each(|p| polygon(out, Some(p)));
        }
    }
}

/// Byte order (little-endian) and type.
fn header(out: &mut Vec<u8>, ty: u32) {
    out.push(1);
    out.extend_from_slice(&ty.to_le_bytes());
}

fn count(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn xy(out: &mut Vec<u8>, (x, y): (f64, f64)) {
    out.extend_from_slice(&x.to_le_bytes());
    out.extend_from_slice(&y.to_le_bytes());
}

/// A count of points, then the points.
fn points(out: &mut Vec<u8>, ring: Option<Ring<'_>>) {
    let n = ring.map_or(0, |r| r.len());
    count(out, n);
    out.reserve(16 * n);
    for c in ring.into_iter().flat_map(|r| r.coords()) {
        xy(out, c);
    }
}

fn point(out: &mut Vec<u8>, part: Option<Part<'_>>) {
    header(out, 1);
    let at = part.and_then(|p| p.first_ring()).filter(|r| !r.is_empty()).map(|r| r.at(0));
    xy(out, at.unwrap_or((f64::NAN, f64::NAN)));
}

fn line(out: &mut Vec<u8>, part: Option<Part<'_>>) {
    header(out, 2);
    points(out, part.and_then(|p| p.first_ring()));
}

fn polygon(out: &mut Vec<u8>, part: Option<Part<'_>>) {
    header(out, 3);
    count(out, part.map_or(0, |p| p.num_rings()));
    for ring in part.into_iter().flat_map(|p| p.rings()) {
        points(out, Some(ring));
    }
}
