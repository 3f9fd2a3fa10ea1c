//! Geometry files of every format this crate reads: told apart by name, read whole, and
//! written chunk by chunk (so that a writer's memory does not grow with the file).

use std::io::Write;
use std::ops::Range;
use std::path::Path;

use super::atomic::AtomicFile;
use super::columnar::{self, Columnar, GeoBatchWriter};
use super::geoarrow::Encoding;
use super::{ReadError, WriteError};
use crate::column::{Family, Geom, GeometryColumn, Part, Ring};

/// A geometry file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// CSV with `x,y` / `lon,lat` columns or a `wkt` column.
    Csv,
    /// One WKT geometry per line.
    Wkt,
    /// A GeoJSON FeatureCollection.
    GeoJson,
    /// Parquet with GeoParquet metadata.
    Parquet,
    /// The Arrow IPC file format (Feather v2).
    ArrowFile,
    /// The Arrow IPC stream format.
    ArrowStream,
}

impl Format {
    /// The file names each format is known by, for messages.
    pub const NAMES: &'static str =
        ".csv, .wkt, .geojson or .json (optionally .gz), .parquet, .arrow, .feather, .ipc or .arrows";

    /// The format a file name says (`.gz` after a text format's extension is allowed; whether
    /// it may be written compressed is for the writer to say).
    pub fn from_path(path: &Path) -> Option<Format> {
        let lower = path.to_string_lossy().to_ascii_lowercase();
        let base = lower.strip_suffix(".gz").unwrap_or(&lower);
        let text = [
            (".csv", Format::Csv),
            (".wkt", Format::Wkt),
            (".geojson", Format::GeoJson),
            (".json", Format::GeoJson),
        ];
        if let Some((_, f)) = text.iter().find(|(ext, _)| base.ends_with(ext)) {
            return Some(*f);
        }
        if base != lower {
            return None;
        }
        let columnar = [
            (".parquet", Format::Parquet),
            (".geoparquet", Format::Parquet),
            (".arrow", Format::ArrowFile),
            (".feather", Format::ArrowFile),
            (".ipc", Format::ArrowFile),
            (".arrows", Format::ArrowStream),
        ];
        columnar.iter().find(|(ext, _)| lower.ends_with(ext)).map(|(_, f)| *f)
    }

    /// The columnar format, if this is one.
    pub fn columnar(self) -> Option<Columnar> {
        match self {
            Format::Parquet => Some(Columnar::Parquet),
            Format::ArrowFile => Some(Columnar::ArrowFile),
            Format::ArrowStream => Some(Columnar::ArrowStream),
            Format::Csv | Format::Wkt | Format::GeoJson => None,
        }
    }
}

/// Reads the geometry of a file of any [`Format`], chosen by its name (a columnar file's
/// magic bytes then say whether it is Parquet or Arrow IPC).
pub fn read_geometry(path: &Path) -> Result<GeometryColumn, ReadError> {
    read_geometry_within(path, None)
}

/// [`read_geometry`], reading at most `budget` bytes of a text file (CSV, WKT, GeoJSON: held
/// whole, so its size is what the read costs; a pipe is read as it comes, so the budget is
/// what bounds an endless one). A file that changed while it was read is an error.
pub fn read_geometry_within(path: &Path, budget: Option<u64>) -> Result<GeometryColumn, ReadError> {
    let name = path.display().to_string();
    let format = Format::from_path(path).ok_or_else(|| {
        ReadError::new(
            &name,
            super::Position::Whole,
            format!("unknown file format (expected {})", Format::NAMES),
        )
    })?;
    if format.columnar().is_some() {
        return columnar::read_columnar(path, None);
    }
    let col = match format {
        Format::GeoJson => super::read_geojson(&name, &super::read_text_within(path, budget)?)?.geometry,
        _ => {
            let (reader, read) = super::TextRead::open(path, budget)?;
            let col = if format == Format::Wkt {
                super::read_wkt(&name, reader)?
            } else {
                super::read_csv(&name, reader, &[])?.geometry
            };
            read.finish()?;
            col
        }
    };
    Ok(col)
}

/// Each writes to an [`AtomicFile`]: the target is replaced only when the writer finishes.
enum Sink {
    /// CSV: `x,y` for points, else a `wkt` column.
    Csv {
        out: AtomicFile,
        xy: bool,
    },
    Wkt(AtomicFile),
    GeoJson(AtomicFile),
    Columnar(Box<GeoBatchWriter>),
}

/// Writes a geometry column to a file of any [`Format`], chunk by chunk.
pub struct GeometryWriter {
    target: String,
    sink: Sink,
    rows: u64,
}

impl std::fmt::Debug for GeometryWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeometryWriter")
            .field("target", &self.target)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl GeometryWriter {
    /// Starts replacing `path`: the file there is replaced when [`GeometryWriter::finish`]
    /// succeeds, and left as it was if the writer fails or is dropped. `encoding` is how a columnar file holds the geometry
    /// (native points or WKB); CSV gets `x,y` columns for native points, a `wkt` column
    /// otherwise. The geometry column is named `column` where the format names columns.
    pub fn create(
        path: &Path,
        format: Format,
        column: &str,
        encoding: Encoding,
    ) -> Result<GeometryWriter, WriteError> {
        let target = path.display().to_string();
        let err = |m: &dyn std::fmt::Display| WriteError::new(&target, m);
        if path.to_string_lossy().to_ascii_lowercase().ends_with(".gz") {
            return Err(err(&"writing compressed (.gz) files is not supported"));
        }
        let text = || AtomicFile::create(path).map_err(|e| err(&e));
        let sink = match format {
            Format::Csv => {
                let xy = encoding == Encoding::Native(Family::Point);
                let mut out = text()?;
                out.write_all(if xy { b"x,y\n" } else { b"wkt\n" }).map_err(|e| err(&e))?;
                Sink::Csv { out, xy }
            }
            Format::Wkt => Sink::Wkt(text()?),
            Format::GeoJson => {
                let mut out = text()?;
                out.write_all(b"{\"type\":\"FeatureCollection\",\"features\":[").map_err(|e| err(&e))?;
                Sink::GeoJson(out)
            }
            Format::Parquet | Format::ArrowFile | Format::ArrowStream => {
                let kind = format.columnar().unwrap_or(Columnar::Parquet);
                Sink::Columnar(Box::new(GeoBatchWriter::create(path, kind, column, encoding)?))
            }
        };
        Ok(GeometryWriter { target, sink, rows: 0 })
    }

    /// Appends the rows of `col`.
    pub fn write(&mut self, col: &GeometryColumn) -> Result<(), WriteError> {
        self.write_rows(col, 0..col.len())
    }

    /// Appends `rows` of `col` (one record batch in a columnar file).
    pub fn write_rows(&mut self, col: &GeometryColumn, rows: Range<usize>) -> Result<(), WriteError> {
        let rows = rows.start.min(col.len())..rows.end.min(col.len());
        let first = self.rows;
        let at =
            |r: usize, m: &dyn std::fmt::Display| format!("row {}: {m}", first + (r - rows.start) as u64);
        let view = col.view();
        let result: Result<(), String> = match &mut self.sink {
            Sink::Columnar(w) => w.write_rows(col, rows.clone()).map_err(|e| e.message),
            Sink::Csv { out, xy } => rows.clone().try_for_each(|r| {
                let written = match (view.get(r), *xy) {
                    (None, true) => out.write_all(b",\n"),
                    // Quoted: a blank line would be no row at all.
                    (None, false) => out.write_all(b"\"\"\n"),
                    (Some(g), true) => match (g.family(), g.coords().next()) {
                        (Family::Point, Some((x, y))) => writeln!(out, "{x},{y}"),
                        (f, _) => {
                            return Err(at(
                                r,
                                &format!("{f}{} has no x,y form", if g.is_empty() { " EMPTY" } else { "" }),
                            ))
                        }
                    },
                    // WKT holds commas: quoted (it never holds a quote).
                    (Some(g), false) => writeln!(out, "\"{}\"", super::to_wkt(Some(&g))),
                };
                written.map_err(|e| at(r, &e))
            }),
            Sink::Wkt(out) => rows.clone().try_for_each(|r| {
                writeln!(out, "{}", super::to_wkt(view.get(r).as_ref())).map_err(|e| at(r, &e))
            }),
            Sink::GeoJson(out) => rows.clone().try_for_each(|r| {
                let sep = if first == 0 && r == rows.start { "\n" } else { ",\n" };
                let geometry = match view.get(r) {
                    None => "null".to_string(),
                    Some(g) => serde_json::to_string(&::geojson::Geometry::new(geojson_value(&g)))
                        .map_err(|e| at(r, &e))?,
                };
                write!(out, "{sep}{{\"type\":\"Feature\",\"properties\":null,\"geometry\":{geometry}}}")
                    .map_err(|e| at(r, &e))
            }),
        };
        result.map_err(|m| WriteError::new(&self.target, m))?;
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// Finishes the file and puts it in place of the old one; returns the rows written.
    pub fn finish(self) -> Result<u64, WriteError> {
        let err = |e: std::io::Error| WriteError::new(&self.target, e);
        match self.sink {
            Sink::Columnar(w) => return w.finish(),
            Sink::Csv { out, .. } | Sink::Wkt(out) => out.commit().map_err(err)?,
            Sink::GeoJson(mut out) => out.write_all(b"\n]}\n").and_then(|()| out.commit()).map_err(err)?,
        }
        Ok(self.rows)
    }
}

/// A row as a GeoJSON geometry value (an empty point has no coordinates: `[]`).
fn geojson_value(g: &Geom<'_>) -> ::geojson::Value {
    use ::geojson::Value;
    let pos = |(x, y): (f64, f64)| vec![x, y];
    let line = |r: Ring<'_>| r.coords().map(pos).collect::<Vec<_>>();
    let poly = |p: Part<'_>| p.rings().map(line).collect::<Vec<_>>();
    let first = g.parts().next();
    match g.family() {
        Family::Point => Value::Point(g.coords().next().map(pos).unwrap_or_default()),
        Family::LineString => {
            Value::LineString(first.and_then(|p| p.first_ring()).map(line).unwrap_or_default())
        }
        Family::Polygon => Value::Polygon(first.map(poly).unwrap_or_default()),
        Family::MultiPoint => Value::MultiPoint(g.coords().map(pos).collect()),
        Family::MultiLineString => {
            Value::MultiLineString(g.parts().filter_map(|p| p.first_ring()).map(line).collect())
        }
        Family::MultiPolygon => Value::MultiPolygon(g.parts().map(poly).collect()),
    }
}
