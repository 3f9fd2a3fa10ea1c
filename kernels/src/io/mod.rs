//! Readers and writers: WKT, WKB, GeoJSON, CSV points, `geo-types`, and the columnar formats
//! (GeoParquet, Arrow IPC with GeoArrow or WKB geometry).
//!
//! Parsing is done by well-kept crates (`wkt`, `wkb`, `geojson`, `csv`, `parquet`,
//! `arrow-ipc`); this module turns
//! their output into columns and their errors into [`ReadError`]s that name the source, the
//! line or feature, and what was wrong. Nothing is skipped silently: a row either becomes a
//! geometry, an explicit null (`NULL` in WKT, `"geometry": null` in GeoJSON, empty
//! coordinate fields in CSV), or an error. Only blank lines of a WKT file carry no row.

mod atomic;
pub mod columnar;
mod csv;
mod file;
mod geo;
pub mod geoarrow;
mod geojson;
mod outputs;
mod wkb;
mod wkt;

pub use self::atomic::{replace_with, resolve_links, same_file, AtomicFile, TempPath};
pub use self::columnar::{read_columnar, Columnar, GeoBatchReader, GeoBatchWriter};
pub use self::csv::{read_csv, CsvTable};
pub use self::file::{read_geometry, Format, GeometryWriter};
pub use self::geo::{from_geo, to_geo, NoGeoTypesForm};
pub use self::geojson::{read_geojson, GeoJsonTable};
pub use self::outputs::output_table;
pub use self::wkb::{push_wkb, to_wkb};
pub use self::wkt::{read_wkt, to_wkt, to_wkt_value};

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Where in a source an error was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// 1-based line of a text file.
    Line(u64),
    /// 0-based feature of a GeoJSON feature collection.
    Feature(usize),
    /// Byte offset into a binary buffer.
    Byte(u64),
    /// A record batch of a columnar file (0-based), and the rows before it.
    Batch {
        /// The batch.
        batch: u64,
        /// Rows in the batches before it.
        row: u64,
    },
    /// A row of a columnar file (0-based, from the start of the file).
    Row(u64),
    /// The source as a whole.
    Whole,
}

/// A read failure: the source, where in it, and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}{}: {message}", match .at {
    Position::Line(l) => format!(":{l}"),
    Position::Feature(f) => format!(": feature {f}"),
    Position::Byte(b) => format!(": byte {b}"),
    Position::Batch { batch, row } => format!(": batch {batch} (after row {row})"),
    Position::Row(r) => format!(": row {r}"),
    Position::Whole => String::new(),
})]
pub struct ReadError {
    /// The file name (or whatever name the caller gave the source).
    pub source_name: String,
    /// Where.
    pub at: Position,
    /// What was wrong.
    pub message: String,
}

impl ReadError {
    pub(crate) fn new(source_name: &str, at: Position, message: impl std::fmt::Display) -> ReadError {
        ReadError { source_name: source_name.to_string(), at, message: message.to_string() }
    }
}

/// A write failure: the file, and what went wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{target}: {message}")]
pub struct WriteError {
    /// The file written.
    pub target: String,
    /// What went wrong.
    pub message: String,
}

impl WriteError {
    pub(crate) fn new(target: &str, message: impl std::fmt::Display) -> WriteError {
        WriteError { target: target.to_string(), message: message.to_string() }
    }
}

/// Opens `path` for reading, decompressing it when the name ends in `.gz`.
pub fn open(path: &Path) -> Result<Box<dyn BufRead>, ReadError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| ReadError::new(&name, Position::Whole, e))?;
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(BufReader::new(flate2::read::GzDecoder::new(file))))
    } else {
        Ok(Box::new(BufReader::new(file)))
    }
}

/// Reads all of `path` (decompressing `.gz`) as UTF-8 text.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let mut s = String::new();
    open(path)?
        .read_to_string(&mut s)
        .map_err(|e| ReadError::new(&path.display().to_string(), Position::Whole, e))?;
    Ok(s)
}
