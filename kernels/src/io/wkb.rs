//! WKB (ISO and extended; little- and big-endian), through the `wkb` crate.

use super::wkt::to_wkt_value;
use crate::column::{ColumnBuilder, Geom};

/// Parses one WKB geometry and appends it. Errors say what was wrong; the builder is left
/// unchanged.
pub fn push_wkb(b: &mut ColumnBuilder, bytes: &[u8]) -> Result<(), String> {
    let g = ::wkb::reader::read_wkb(bytes).map_err(|e| format!("invalid WKB: {e}"))?;
    b.push_geometry(&g).map_err(|e| e.to_string())
}

/// The little-endian ISO WKB of a row (an empty point is written with NaN coordinates, the
/// WKB convention, and read back as empty by [`push_wkb`]).
pub fn to_wkb(g: &Geom<'_>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let opts = ::wkb::writer::WriteOptions { endianness: ::wkb::Endianness::LittleEndian };
    ::wkb::writer::write_geometry(&mut out, &to_wkt_value(g), &opts).map_err(|e| e.to_string())?;
    Ok(out)
}
