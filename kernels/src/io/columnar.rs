//! Columnar files: GeoParquet and Arrow IPC (the file and the stream format), read record
//! batch by record batch into a column, and written from columns.
//!
//! The formats themselves are the `parquet` and `arrow-ipc` crates' business; this module
//! finds the geometry ([`geoarrow::find_geometry`]), reads only the columns it needs, and
//! turns their failures into [`ReadError`]s naming the file and the batch or row.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::atomic::AtomicFile;
use super::geoarrow::{self, Encoding, GeometrySource};
use super::source::Stamp;
use super::{Position, ReadError, WriteError};
use crate::column::{ColumnBuilder, Family, GeometryColumn};

/// Rows per record batch when reading.
const READ_BATCH_ROWS: usize = 64 * 1024;

/// The columnar formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Columnar {
    /// Apache Parquet (with GeoParquet metadata).
    Parquet,
    /// The Arrow IPC file format (Feather v2).
    ArrowFile,
    /// The Arrow IPC stream format.
    ArrowStream,
}

impl Columnar {
    /// What the first bytes of a file say it is: Parquet (`PAR1`), an Arrow IPC file
    /// (`ARROW1`), or otherwise possibly an IPC stream (whose first message is checked when
    /// it is read).
    fn sniff(head: &[u8]) -> Columnar {
        if head.starts_with(b"PAR1") {
            Columnar::Parquet
        } else if head.starts_with(b"ARROW1") {
            Columnar::ArrowFile
        } else {
            Columnar::ArrowStream
        }
    }
}

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

/// Opens the batches of the given columns (and says how many rows there are, where known).
type Opener = Box<dyn FnOnce(Vec<usize>) -> Result<(Batches, Option<u64>), String>>;

/// Reads the geometry of a columnar file batch by batch.
pub struct GeoBatchReader {
    name: String,
    source: GeometrySource,
    /// The geometry's column names as they appear in the (projected) batches.
    columns: Vec<String>,
    batches: Batches,
    /// Rows in the file, where its metadata says.
    rows_hint: Option<u64>,
    batch: u64,
    row: u64,
    /// The error that ended reading: the file is not read past it.
    failed: Option<ReadError>,
    /// Rows handed on at most per batch: a record batch with more is handed on in slices
    /// (zero-copy), so a caller's batch size holds whatever the writer's was.
    batch_rows: usize,
    /// The rest of a record batch being handed on in slices.
    pending: Option<RecordBatch>,
    /// The file as opened (a second descriptor) and what it was then: at the end of the
    /// batches it must still be that, or the rows read are not the file's.
    file: File,
    stamp: Stamp,
}

impl std::fmt::Debug for GeoBatchReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoBatchReader")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("batch", &self.batch)
            .field("row", &self.row)
            .finish_non_exhaustive()
    }
}

impl GeoBatchReader {
    /// Opens a Parquet or Arrow IPC file (told apart by their magic bytes) and finds its
    /// geometry: the column `column` if given, else as [`geoarrow::find_geometry`] says.
    pub fn open(path: &Path, column: Option<&str>) -> Result<GeoBatchReader, ReadError> {
        GeoBatchReader::with_batch_rows(path, column, READ_BATCH_ROWS)
    }

    /// As [`GeoBatchReader::open`], handing on batches of at most `batch_rows` rows (Parquet
    /// decoded so; an Arrow IPC record batch larger than that sliced, without a copy).
    pub fn with_batch_rows(
        path: &Path,
        column: Option<&str>,
        batch_rows: usize,
    ) -> Result<GeoBatchReader, ReadError> {
        let name = path.display().to_string();
        contained(|| GeoBatchReader::open_inner(path, column, batch_rows.max(1)))
            .unwrap_or_else(|m| Err(ReadError::new(&name, Position::Whole, m)))
    }

    fn open_inner(path: &Path, column: Option<&str>, batch_rows: usize) -> Result<GeoBatchReader, ReadError> {
        let name = path.display().to_string();
        let whole = |m: &dyn std::fmt::Display| ReadError::new(&name, Position::Whole, m);
        // Opened once: a regular file (a pipe cannot be read by seeking, and is refused
        // rather than opened twice), checked against its stamp when the batches end.
        let opened = super::source::open_input(path, false)?;
        let stamp = opened.stamp.ok_or_else(|| whole(&"not a regular file"))?;
        let mut file = opened.file;
        let checked = file.try_clone().map_err(|e| whole(&e))?;
        let mut head = [0u8; 8];
        let n = read_head(&mut file, &mut head).map_err(|e| whole(&e))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| whole(&e))?;
        let kind = Columnar::sniff(&head[..n]);
        let (schema, open): (SchemaRef, Opener) = match kind {
            Columnar::Parquet => {
                check_parquet_dictionaries(&file).map_err(|e| whole(&e))?;
                let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| whole(&e))?;
                let schema = builder.schema().clone();
                let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).ok();
                (
                    schema,
                    Box::new(move |cols| {
                        let mask = ProjectionMask::roots(builder.parquet_schema(), cols);
                        let reader = builder
                            .with_projection(mask)
                            .with_batch_size(batch_rows)
                            .build()
                            .map_err(|e| e.to_string())?;
                        Ok((Box::new(reader) as Batches, rows))
                    }),
                )
            }
            Columnar::ArrowFile => {
                check_ipc_file(&mut file).map_err(|e| whole(&e))?;
                // The footer is read to get the schema; projection needs a second reader, over
                // the same open file (the first is gone by then; each seeks where it reads).
                let again = file.try_clone().map_err(|e| whole(&e))?;
                let reader =
                    arrow_ipc::reader::FileReader::try_new_buffered(file, None).map_err(|e| whole(&e))?;
                let schema = reader.schema();
                (
                    schema,
                    Box::new(move |cols| {
                        let reader = arrow_ipc::reader::FileReader::try_new_buffered(again, Some(cols))
                            .map_err(|e| e.to_string())?;
                        Ok((Box::new(reader) as Batches, None))
                    }),
                )
            }
            Columnar::ArrowStream => {
                let not_ipc = |e: &dyn std::fmt::Display| {
                    whole(&format!("neither Parquet, an Arrow IPC file nor an Arrow IPC stream ({e})"))
                };
                check_ipc_stream(&mut file)
                    .map_err(|(stream, e)| if stream { whole(&e) } else { not_ipc(&e) })?;
                let reader = arrow_ipc::reader::StreamReader::try_new(BufReader::new(file), None)
                    .map_err(|e| not_ipc(&e))?;
                let schema = reader.schema();
                // A stream cannot be re-read: project each batch here instead.
                (
                    schema,
                    Box::new(move |cols| {
                        let batches = reader.map(move |b| b.and_then(|b| b.project(&cols)));
                        Ok((Box::new(batches) as Batches, None))
                    }),
                )
            }
        };
        let source = geoarrow::find_geometry(&schema, column).map_err(|e| whole(&e))?;
        let mut wanted = source.columns();
        wanted.sort_unstable();
        let columns = source.columns().iter().map(|&i| schema.field(i).name().clone()).collect();
        let (batches, rows_hint) = open(wanted).map_err(|e| whole(&e))?;
        Ok(GeoBatchReader {
            name,
            source,
            columns,
            batches,
            rows_hint,
            batch: 0,
            row: 0,
            failed: None,
            batch_rows,
            pending: None,
            file: checked,
            stamp,
        })
    }

    /// Where the geometry comes from.
    pub fn source(&self) -> &GeometrySource {
        &self.source
    }

    /// The number of rows, where the file's metadata says (Parquet).
    pub fn rows_hint(&self) -> Option<u64> {
        self.rows_hint
    }

    /// Rows read so far.
    pub fn rows_read(&self) -> u64 {
        self.row
    }

    /// Appends the next batch's rows to `b`: the number appended, or `None` at the end. An
    /// error names the batch or the row (counted from the start of the file).
    pub fn read_into(&mut self, b: &mut ColumnBuilder) -> Result<Option<usize>, ReadError> {
        self.read_into_at_most(b, self.batch_rows)
    }

    /// [`GeoBatchReader::read_into`], appending at most `rows` rows (the rest of a larger
    /// batch comes next).
    pub fn read_into_at_most(
        &mut self,
        b: &mut ColumnBuilder,
        rows: usize,
    ) -> Result<Option<usize>, ReadError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let at = Position::Batch { batch: self.batch, row: self.row };
        let rows = rows.clamp(1, self.batch_rows);
        let read =
            contained(|| self.read_batch(b, rows)).unwrap_or_else(|m| Err(ReadError::new(&self.name, at, m)));
        if let Err(e) = &read {
            self.failed = Some(e.clone());
        }
        read
    }

    fn read_batch(&mut self, b: &mut ColumnBuilder, rows: usize) -> Result<Option<usize>, ReadError> {
        let at_batch = Position::Batch { batch: self.batch, row: self.row };
        let batch = match self.pending.take() {
            Some(rest) => rest,
            None => match self.batches.next() {
                Some(batch) => {
                    // Positions name the file's record batches, not the slices handed on.
                    self.batch += 1;
                    batch.map_err(|e| ReadError::new(&self.name, at_batch, e.to_string()))?
                }
                None => {
                    // The end: the file must be what it was when the read started (a file
                    // cut or rewritten under the read would otherwise end it early, silently).
                    self.stamp.check(&self.file, &self.name, None)?;
                    return Ok(None);
                }
            },
        };
        let batch = if batch.num_rows() > rows {
            self.pending = Some(batch.slice(rows, batch.num_rows() - rows));
            batch.slice(0, rows)
        } else {
            batch
        };
        append_geometry(&self.name, &self.source, &self.columns, &batch, at_batch, b)?;
        self.row += batch.num_rows() as u64;
        Ok(Some(batch.num_rows()))
    }
}

/// Appends the geometry of one record batch (`columns`: the source's column names, in the
/// source's order) to `b`; errors name the file and the batch, or the row.
fn append_geometry(
    name: &str,
    source: &GeometrySource,
    columns: &[String],
    batch: &RecordBatch,
    at: Position,
    b: &mut ColumnBuilder,
) -> Result<(), ReadError> {
    let column = |col: &str| -> Result<&ArrayRef, ReadError> {
        batch
            .column_by_name(col)
            .ok_or_else(|| ReadError::new(name, at, format!("the batch has no column `{col}`")))
    };
    let appended = match source {
        GeometrySource::Column { encoding, .. } => {
            geoarrow::append(b, column(&columns[0])?.as_ref(), *encoding)
        }
        GeometrySource::Xy { .. } => {
            geoarrow::append_xy(b, column(&columns[0])?.as_ref(), column(&columns[1])?.as_ref())
        }
    };
    appended.map_err(|(r, m)| {
        let first = match at {
            Position::Batch { row, .. } => row,
            _ => 0,
        };
        ReadError::new(
            name,
            Position::Row(first + r as u64),
            format!("column `{}`: {m}", columns.join("`/`")),
        )
    })
}

thread_local! {
    /// Set while this thread runs decoder code whose panics [`contained`] turns into errors.
    static CONTAINING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic into an error message. The `arrow` and `parquet` decoders still
/// panic on some malformed input (a buffer slice past its end, say) instead of returning an
/// error; a damaged file must be an error naming it, never a crash. The panic hook is wrapped
/// once so that such a contained panic prints nothing; every other panic goes to the hook
/// that was installed before.
fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // try_with: a panic while this thread's locals are being torn down must still
            // reach the previous hook, not panic again inside this one.
            if !CONTAINING.try_with(std::cell::Cell::get).unwrap_or(false) {
                previous(info);
            }
        }));
    });
    let outer = CONTAINING.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(outer));
    result.map_err(|payload| {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        format!("malformed data (the decoder failed: {why})")
    })
}

/// An Arrow IPC file known by its footer: the schema, where the geometry is, and where each
/// record batch lies in the file. Whoever reads the bytes (the runtime's io_uring streamer,
/// into its staging buffers) hands each block to [`IpcFile::append_block`], which decodes it
/// over those bytes without copying them and appends its rows to a column.
#[derive(Debug)]
pub struct IpcFile {
    name: String,
    source: GeometrySource,
    columns: Vec<String>,
    decoder: arrow_ipc::reader::FileDecoder,
    /// `(offset, length)` of every record batch message, metadata and body.
    blocks: Vec<(u64, usize)>,
    /// The `Block` records themselves, which the decoder takes.
    raw: Vec<arrow_ipc::Block>,
}

/// Checks every column chunk's dictionary page (the first page, when there is one) before the
/// Arrow reader decodes it: parquet 59 sizes a dictionary by the count its page header states
/// and fills it before decoding a value (`DictDecoder::set_dict`), so a damaged count in a
/// 2 KB file asked for 13 GB and the process was killed. A page must hold at least the bytes
/// its values take in the plain encoding dictionaries use. Reads one page header per column
/// chunk, and its dictionary page when it has one.
fn check_parquet_dictionaries(file: &File) -> Result<(), String> {
    use parquet::basic::Type;
    use parquet::column::page::Page;
    use parquet::file::reader::FileReader;
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(
        file.try_clone().map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g).map_err(|e| e.to_string())?;
        for c in 0..schema.num_columns() {
            let column = schema.column(c);
            // The least a plain-encoded value takes (a byte array: its 4-byte length).
            let least = match column.physical_type() {
                Type::BOOLEAN => 0,
                Type::INT32 | Type::FLOAT | Type::BYTE_ARRAY => 4,
                Type::INT64 | Type::DOUBLE => 8,
                Type::INT96 => 12,
                Type::FIXED_LEN_BYTE_ARRAY => u64::try_from(column.type_length()).unwrap_or(0),
            };
            let mut pages = group.get_column_page_reader(c).map_err(|e| e.to_string())?;
            if !pages.peek_next_page().map_err(|e| e.to_string())?.is_some_and(|p| p.is_dict) {
                continue;
            }
            if let Some(Page::DictionaryPage { buf, num_values, .. }) =
                pages.get_next_page().map_err(|e| e.to_string())?
            {
                if u64::from(num_values).saturating_mul(least) > buf.len() as u64 {
                    return Err(format!(
                        "row group {g}, column `{}`: a dictionary page states {num_values} values in {} bytes",
                        column.path(),
                        buf.len()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Checks that every block an Arrow IPC file's footer lists (record batches and
/// dictionaries) lies within the file, and rewinds it. arrow-ipc 59's reader allocates a
/// block's stated length before reading it: a damaged length would ask for petabytes and abort
/// the process, which no error handling can catch.
fn check_ipc_file(file: &mut File) -> Result<(), String> {
    let len = file.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    let trailer_at = len.checked_sub(IPC_TRAILER as u64).ok_or("too short for an Arrow IPC file")?;
    let mut trailer = [0u8; IPC_TRAILER];
    file.seek(SeekFrom::Start(trailer_at)).map_err(|e| e.to_string())?;
    file.read_exact(&mut trailer).map_err(|e| e.to_string())?;
    let footer_len = arrow_ipc::reader::read_footer_length(trailer).map_err(|e| e.to_string())? as u64;
    let footer_at = trailer_at.checked_sub(footer_len).ok_or("the footer is longer than the file")?;
    let mut footer = vec![0u8; footer_len as usize];
    file.seek(SeekFrom::Start(footer_at)).map_err(|e| e.to_string())?;
    file.read_exact(&mut footer).map_err(|e| e.to_string())?;
    let footer = arrow_ipc::root_as_footer(&footer).map_err(|e| format!("bad footer: {e}"))?;
    let blocks =
        footer.recordBatches().into_iter().flatten().chain(footer.dictionaries().into_iter().flatten());
    for b in blocks {
        let end = u64::try_from(b.offset())
            .ok()
            .zip(u64::try_from(b.metaDataLength()).ok())
            .zip(u64::try_from(b.bodyLength()).ok())
            .and_then(|((at, meta), body)| at.checked_add(meta)?.checked_add(body));
        if end.is_none_or(|end| end > footer_at) {
            return Err(format!(
                "a block at offset {} of {} + {} bytes runs past the data ({footer_at} bytes)",
                b.offset(),
                b.metaDataLength(),
                b.bodyLength()
            ));
        }
    }
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    Ok(())
}

/// Walks an Arrow IPC stream's messages — each a length, its metadata and a body of the
/// length the metadata states — checking that none states more bytes than the whole file has,
/// and that the stream ends with its end-of-stream marker, and rewinds it (as
/// [`check_ipc_file`]: the reader allocates a body's stated length before reading it). A
/// stream cut short — in a message, or between two, where the marker is missing — is an
/// error naming the byte: the stream reader itself takes the end of the file for the end of
/// the stream, and a run would report the rows before the cut as the file's.
fn check_ipc_stream(file: &mut File) -> Result<(), (bool, String)> {
    // Past a first whole message the file is a stream (a damaged one), not something else.
    let mut messages = 0u64;
    walk_ipc_stream(file, &mut messages).map_err(|e| (messages > 0, e))
}

fn walk_ipc_stream(file: &mut File, messages: &mut u64) -> Result<(), String> {
    let len = file.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(&mut *file);
    let mut at = 0u64;
    let cut = |what: &str| {
        format!(
            "the stream is cut short at byte {len} ({what}; it has no end-of-stream marker): \
             truncated, so no result over part of it"
        )
    };
    loop {
        let mut word = [0u8; 4];
        if at + 4 > len {
            return Err(cut("after its last whole message"));
        }
        reader.read_exact(&mut word).map_err(|e| e.to_string())?;
        at += 4;
        let mut meta_len = i32::from_le_bytes(word);
        if meta_len == -1 {
            // The continuation marker, then the length.
            if at + 4 > len {
                return Err(cut("in a message's length"));
            }
            reader.read_exact(&mut word).map_err(|e| e.to_string())?;
            at += 4;
            meta_len = i32::from_le_bytes(word);
        }
        if meta_len == 0 {
            break; // end of stream
        }
        let meta_len =
            u64::try_from(meta_len).map_err(|_| format!("a message at byte {at} has length {meta_len}"))?;
        if meta_len > len {
            return Err(format!(
                "a message at byte {at} of {meta_len} bytes is longer than the file ({len} bytes)"
            ));
        }
        if at + meta_len > len {
            return Err(cut("in a message's metadata"));
        }
        let mut meta = vec![0u8; meta_len as usize];
        reader.read_exact(&mut meta).map_err(|e| e.to_string())?;
        at += meta_len;
        let message =
            arrow_ipc::root_as_message(&meta).map_err(|e| format!("a bad message at byte {at}: {e}"))?;
        let body = u64::try_from(message.bodyLength())
            .map_err(|_| format!("a message body of length {}", message.bodyLength()))?;
        if body > len {
            return Err(format!(
                "a message body at byte {at} of {body} bytes is longer than the file ({len} bytes)"
            ));
        }
        if body > len - at {
            return Err(cut("in a message's body"));
        }
        reader.seek_relative(body as i64).map_err(|e| e.to_string())?;
        at += body;
        *messages += 1;
    }
    drop(reader);
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    Ok(())
}

/// The length of an IPC file's trailer: footer length (4 bytes) and `ARROW1`.
pub const IPC_TRAILER: usize = 10;

impl IpcFile {
    /// The footer length an IPC file's last [`IPC_TRAILER`] bytes give.
    pub fn footer_len(name: &str, trailer: [u8; IPC_TRAILER]) -> Result<usize, ReadError> {
        arrow_ipc::reader::read_footer_length(trailer)
            .map_err(|e| ReadError::new(name, Position::Whole, format!("not an Arrow IPC file ({e})")))
    }

    /// Parses the footer (the `footer_len` bytes before the trailer) of the file `name` and
    /// finds its geometry (`column`, or as [`geoarrow::find_geometry`] says).
    pub fn from_footer(name: &str, footer: &[u8], column: Option<&str>) -> Result<IpcFile, ReadError> {
        let whole = |m: &dyn std::fmt::Display| ReadError::new(name, Position::Whole, m);
        contained(|| {
            let footer = arrow_ipc::root_as_footer(footer).map_err(|e| whole(&format!("bad footer: {e}")))?;
            let schema = footer
                .schema()
                .ok_or_else(|| whole(&"the footer has no schema"))
                // arrow-ipc 59 (DataFusion's arrow) panics on a malformed schema, which
                // `contained` turns into this file's error.
                .map(arrow_ipc::convert::fb_to_schema)?;
            if footer.dictionaries().is_some_and(|d| !d.is_empty()) {
                return Err(whole(&"dictionary-encoded columns are not supported by the streamer"));
            }
            let raw: Vec<arrow_ipc::Block> =
                footer.recordBatches().map(|b| b.iter().copied().collect()).unwrap_or_default();
            let blocks = raw
                .iter()
                .map(|b| {
                    let len = i64::from(b.metaDataLength()).checked_add(b.bodyLength());
                    match (u64::try_from(b.offset()), len.and_then(|l| usize::try_from(l).ok())) {
                        (Ok(at), Some(len)) => Ok((at, len)),
                        _ => Err(whole(&format!(
                            "a record batch block has offset {} and length {:?}",
                            b.offset(),
                            len
                        ))),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            let schema = Arc::new(schema);
            let source = geoarrow::find_geometry(&schema, column).map_err(|e| whole(&e))?;
            let columns = source.columns().iter().map(|&i| schema.field(i).name().clone()).collect();
            let mut wanted = source.columns();
            wanted.sort_unstable();
            let decoder =
                arrow_ipc::reader::FileDecoder::new(schema, footer.version()).with_projection(wanted);
            Ok(IpcFile { name: name.to_owned(), source, columns, decoder, blocks, raw })
        })
        .unwrap_or_else(|m| Err(whole(&m)))
    }

    /// Where the geometry comes from.
    pub fn source(&self) -> &GeometrySource {
        &self.source
    }

    /// `(file offset, length)` of each record batch, in order.
    pub fn blocks(&self) -> &[(u64, usize)] {
        &self.blocks
    }

    /// Decodes record batch `k` from `bytes` (exactly its block, from wherever it was read)
    /// and appends its rows to `b`; `row` is the file's row the batch starts at, for errors.
    /// Returns the rows appended. On an error nothing of the batch stays in `b`.
    pub fn append_block(
        &self,
        k: usize,
        bytes: arrow_buffer::Buffer,
        row: u64,
        b: &mut ColumnBuilder,
    ) -> Result<usize, ReadError> {
        let batch = self.decode_block(k, bytes, row)?;
        self.append_rows(k, &batch, row, b)
    }

    /// Decodes record batch `k` from `bytes` (exactly its block), over those bytes: the
    /// batch's arrays keep them alive. `row` is the file's row the batch starts at.
    pub fn decode_block(
        &self,
        k: usize,
        bytes: arrow_buffer::Buffer,
        row: u64,
    ) -> Result<RecordBatch, ReadError> {
        let err = |m: &dyn std::fmt::Display| {
            ReadError::new(&self.name, Position::Batch { batch: k as u64, row }, m)
        };
        let block = self.raw.get(k).ok_or_else(|| err(&"no such record batch"))?;
        contained(|| {
            self.decoder
                .read_record_batch(block, &bytes)
                .map_err(|e| err(&e))?
                .ok_or_else(|| err(&"the block holds no record batch"))
        })
        .unwrap_or_else(|m| Err(err(&m)))
    }

    /// Appends the rows of `batch` (record batch `k` decoded, or a slice of it starting at
    /// the file's row `row`) to `b`. On an error nothing of it stays in `b`.
    pub fn append_rows(
        &self,
        k: usize,
        batch: &RecordBatch,
        row: u64,
        b: &mut ColumnBuilder,
    ) -> Result<usize, ReadError> {
        let at = Position::Batch { batch: k as u64, row };
        let before = b.checkpoint();
        let appended = contained(|| {
            append_geometry(&self.name, &self.source, &self.columns, batch, at, &mut *b)
                .map(|()| batch.num_rows())
        })
        .unwrap_or_else(|m| Err(ReadError::new(&self.name, at, m)));
        // A failed block adds nothing: the builder is as it was, so the caller may go on.
        if appended.is_err() {
            b.restore(before);
        }
        appended
    }
}

fn read_head(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads the whole geometry of a Parquet or Arrow IPC file.
pub fn read_columnar(path: &Path, column: Option<&str>) -> Result<GeometryColumn, ReadError> {
    let mut reader = GeoBatchReader::open(path, column)?;
    let mut b = ColumnBuilder::new();
    if let Some(rows) = reader.rows_hint().and_then(|r| usize::try_from(r).ok()) {
        let points = matches!(
            reader.source(),
            GeometrySource::Xy { .. }
                | GeometrySource::Column { encoding: Encoding::Native(Family::Point), .. }
        );
        b.reserve(rows, if points { rows } else { 0 });
    }
    while reader.read_into(&mut b)?.is_some() {}
    Ok(b.finish())
}

/// Writes record batches to a Parquet or Arrow IPC file.
/// Each writes to an [`AtomicFile`]: the file at the target name is replaced only when the
/// writer finishes.
enum Sink {
    Parquet(ArrowWriter<AtomicFile>),
    File(arrow_ipc::writer::FileWriter<AtomicFile>),
    Stream(arrow_ipc::writer::StreamWriter<AtomicFile>),
}

/// Writes tables (record batches of one schema) to a columnar file.
pub struct BatchWriter {
    target: String,
    sink: Sink,
    rows: u64,
}

impl std::fmt::Debug for BatchWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchWriter")
            .field("target", &self.target)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl BatchWriter {
    /// Starts replacing `path` with a `format` file of batches of `schema`: the file at `path`
    /// is replaced when [`BatchWriter::finish`] succeeds, and left as it was otherwise.
    /// Parquet is written with Snappy-compressed pages and row groups of about a million rows.
    pub fn create(path: &Path, format: Columnar, schema: SchemaRef) -> Result<BatchWriter, WriteError> {
        let target = path.display().to_string();
        let err = |m: &dyn std::fmt::Display| WriteError::new(&target, m);
        let file = AtomicFile::create(path).map_err(|e| err(&e))?;
        let sink = match format {
            Columnar::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(1 << 20))
                    .build();
                Sink::Parquet(ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| err(&e))?)
            }
            Columnar::ArrowFile => {
                Sink::File(arrow_ipc::writer::FileWriter::try_new(file, &schema).map_err(|e| err(&e))?)
            }
            Columnar::ArrowStream => {
                Sink::Stream(arrow_ipc::writer::StreamWriter::try_new(file, &schema).map_err(|e| err(&e))?)
            }
        };
        Ok(BatchWriter { target, sink, rows: 0 })
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), WriteError> {
        let done = match &mut self.sink {
            Sink::Parquet(w) => w.write(batch).map_err(|e| e.to_string()),
            Sink::File(w) => w.write(batch).map_err(|e| e.to_string()),
            Sink::Stream(w) => w.write(batch).map_err(|e| e.to_string()),
        };
        done.map_err(|m| WriteError::new(&self.target, format!("row {}: {m}", self.rows)))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Adds a key/value pair to a Parquet file's footer metadata (ignored for IPC, whose
    /// schema was written first).
    fn footer_metadata(&mut self, key: &str, value: String) {
        if let Sink::Parquet(w) = &mut self.sink {
            w.append_key_value_metadata(KeyValue::new(key.to_owned(), value));
        }
    }

    /// Finishes the file (footer, flush, fsync) and puts it in place of the old one; returns
    /// the rows written.
    pub fn finish(self) -> Result<u64, WriteError> {
        let target = self.target.clone();
        let (rows, file) = self.into_file()?;
        file.commit().map_err(|e| WriteError::new(&target, e))?;
        Ok(rows)
    }

    /// Finishes the file (footer, flush) without putting it in place: the caller commits it
    /// (with others, so that several outputs are replaced together) or drops it.
    pub fn into_file(self) -> Result<(u64, AtomicFile), WriteError> {
        let file = match self.sink {
            Sink::Parquet(w) => w.into_inner().map_err(|e| e.to_string()),
            Sink::File(mut w) => w.finish().and_then(|()| w.into_inner()).map_err(|e| e.to_string()),
            Sink::Stream(mut w) => w.finish().and_then(|()| w.into_inner()).map_err(|e| e.to_string()),
        };
        let file = file.map_err(|m| WriteError::new(&self.target, m))?;
        Ok((self.rows, file))
    }
}

/// What GeoParquet's `geo` metadata says about the column written so far.
#[derive(Debug, Default)]
struct Extent {
    families: u8,
    bbox: Option<[f64; 4]>,
}

impl Extent {
    fn add(&mut self, col: &GeometryColumn, rows: Range<usize>) {
        let view = col.view();
        for r in rows {
            let Some(g) = view.get(r) else { continue };
            self.families |= 1 << g.family() as u8;
            for (x, y) in g.coords() {
                let b = self.bbox.get_or_insert([x, y, x, y]);
                *b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
            }
        }
    }

    fn geo_json(&self, column: &str, encoding: Encoding) -> String {
        let types: Vec<String> = Family::ALL
            .iter()
            .filter(|f| self.families & (1 << **f as u8) != 0)
            .map(|f| geoparquet_type(*f).to_owned())
            .collect();
        let mut meta = serde_json::json!({
            "encoding": encoding.geoparquet_name(),
            "geometry_types": types,
        });
        if let Some(b) = self.bbox {
            meta["bbox"] = serde_json::json!(b);
        }
        serde_json::json!({
            "version": "1.1.0",
            "primary_column": column,
            "columns": { column: meta },
        })
        .to_string()
    }
}

/// GeoParquet's name of a geometry type.
fn geoparquet_type(f: Family) -> &'static str {
    match f {
        Family::Point => "Point",
        Family::LineString => "LineString",
        Family::Polygon => "Polygon",
        Family::MultiPoint => "MultiPoint",
        Family::MultiLineString => "MultiLineString",
        Family::MultiPolygon => "MultiPolygon",
    }
}

/// Writes a geometry column, chunk by chunk, to a columnar file: one geometry field (GeoArrow
/// extension type on the field; GeoParquet `geo` metadata in a Parquet footer).
#[derive(Debug)]
pub struct GeoBatchWriter {
    writer: BatchWriter,
    field: Arc<Field>,
    encoding: Encoding,
    extent: Extent,
}

impl GeoBatchWriter {
    /// Creates `path` for a geometry column named `column`, encoded as `encoding` (native
    /// points or WKB).
    pub fn create(
        path: &Path,
        format: Columnar,
        column: &str,
        encoding: Encoding,
    ) -> Result<GeoBatchWriter, WriteError> {
        let target = path.display().to_string();
        let (field, _) = geoarrow::to_array(&GeometryColumn::default(), 0..0, column, encoding)
            .map_err(|m| WriteError::new(&target, m))?;
        let field = Arc::new(field);
        let schema = Arc::new(Schema::new(vec![field.clone()]));
        let writer = BatchWriter::create(path, format, schema)?;
        Ok(GeoBatchWriter { writer, field, encoding, extent: Extent::default() })
    }

    /// Appends `rows` of `col` as one record batch.
    pub fn write_rows(&mut self, col: &GeometryColumn, rows: Range<usize>) -> Result<(), WriteError> {
        let rows = rows.start.min(col.len())..rows.end.min(col.len());
        let (_, array) =
            geoarrow::to_array(col, rows.clone(), self.field.name(), self.encoding).map_err(|m| {
                WriteError::new(&self.writer.target, format!("rows from {}: {m}", self.writer.rows))
            })?;
        let schema = Arc::new(Schema::new(vec![self.field.clone()]));
        let batch =
            RecordBatch::try_new(schema, vec![array]).map_err(|e| WriteError::new(&self.writer.target, e))?;
        self.extent.add(col, rows);
        self.writer.write(&batch)
    }

    /// Finishes the file; returns the rows written.
    pub fn finish(mut self) -> Result<u64, WriteError> {
        let geo = self.extent.geo_json(self.field.name(), self.encoding);
        self.writer.footer_metadata("geo", geo);
        self.writer.finish()
    }
}

/// The GeoParquet `geo` metadata value for one column (for writers that build their own
/// batches, such as job outputs).
pub fn geo_metadata(col: &GeometryColumn, column: &str, encoding: Encoding) -> String {
    let mut extent = Extent::default();
    extent.add(col, 0..col.len());
    extent.geo_json(column, encoding)
}

/// Writes one table to `path`; `geo` is a GeoParquet `geo` metadata value for Parquet files.
pub fn write_table(
    path: &Path,
    format: Columnar,
    batch: &RecordBatch,
    geo: Option<String>,
) -> Result<u64, WriteError> {
    let (rows, file) = write_table_uncommitted(path, format, batch, geo)?;
    file.commit().map_err(|e| WriteError::new(&path.display().to_string(), e))?;
    Ok(rows)
}

/// [`write_table`], leaving the file for the caller to commit (see [`BatchWriter::into_file`]).
pub fn write_table_uncommitted(
    path: &Path,
    format: Columnar,
    batch: &RecordBatch,
    geo: Option<String>,
) -> Result<(u64, AtomicFile), WriteError> {
    let mut w = BatchWriter::create(path, format, batch.schema())?;
    w.write(batch)?;
    if let Some(geo) = geo {
        w.footer_metadata("geo", geo);
    }
    w.into_file()
}
