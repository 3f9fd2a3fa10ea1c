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
mod source;
mod wkb;
mod wkt;

pub use self::atomic::{replace_with, resolve_links, same_file, AtomicFile, TempPath};
pub use self::columnar::{read_columnar, Columnar, GeoBatchReader, GeoBatchWriter};
pub use self::csv::{read_csv, CsvTable};
pub use self::file::{read_geometry, read_geometry_within, Format, GeometryWriter};
pub use self::geo::{from_geo, to_geo, NoGeoTypesForm};
pub use self::geojson::{read_geojson, GeoJsonTable};
pub use self::outputs::{hits_batch, hits_schema, output_table};
pub use self::wkb::{push_wkb, to_wkb, write_wkb};
pub use self::wkt::{push_wkt, read_wkt, to_wkt, to_wkt_value};
pub use source::{open_input, Opened, Stamp};

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

/// Opens `path` for reading, decompressing it when the name ends in `.gz`. A regular file
/// or a pipe; a device, directory or socket is refused ([`source::open_input`]).
pub fn open(path: &Path) -> Result<Box<dyn BufRead>, ReadError> {
    Ok(TextRead::open(path, None)?.0)
}

/// Reads all of `path` (decompressing `.gz`) as UTF-8 text, checking at the end that the file
/// did not change while it was read.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    read_text_within(path, None)
}

/// [`read_text`], refusing past `budget` bytes of text.
pub fn read_text_within(path: &Path, budget: Option<u64>) -> Result<String, ReadError> {
    let (mut reader, read) = TextRead::open(path, budget)?;
    let mut s = String::new();
    reader.read_to_string(&mut s).map_err(|e| ReadError::new(&read.name, Position::Whole, e))?;
    drop(reader);
    read.finish()?;
    Ok(s)
}

/// A text input being read front to back: what is needed to check, at the end, that the read
/// covered the whole file as it was when the read started.
pub(crate) struct TextRead {
    name: String,
    /// The same open file (a second descriptor), for its metadata at the end.
    file: Option<std::fs::File>,
    stamp: Option<source::Stamp>,
    /// Bytes of the file read (before decompression).
    count: std::rc::Rc<std::cell::Cell<u64>>,
    compressed: bool,
}

impl TextRead {
    /// Opens `path` (a regular file or a pipe), decompressing `.gz`, with at most `budget`
    /// bytes of text read from it.
    pub(crate) fn open(path: &Path, budget: Option<u64>) -> Result<(Box<dyn BufRead>, TextRead), ReadError> {
        let name = path.display().to_string();
        let opened = source::open_input(path, true)?;
        let file = opened.file.try_clone().ok();
        let compressed = path.extension().is_some_and(|e| e == "gz");
        let (counted, count) = source::Counted::new(opened.file, if compressed { None } else { budget });
        let reader: Box<dyn BufRead> = if compressed {
            // The budget counts the text, after decompression.
            let (text, _) = source::Counted::new(flate2::read::GzDecoder::new(counted), budget);
            Box::new(BufReader::new(text))
        } else {
            Box::new(BufReader::new(counted))
        };
        Ok((reader, TextRead { name, file, stamp: opened.stamp, count, compressed }))
    }

    /// After the last byte: the file is as it was when the read started and (uncompressed)
    /// the read took all of it.
    pub(crate) fn finish(&self) -> Result<(), ReadError> {
        match (&self.stamp, &self.file) {
            (Some(stamp), Some(file)) => {
                stamp.check(file, &self.name, (!self.compressed).then(|| self.count.get()))
            }
            _ => Ok(()),
        }
    }
}
