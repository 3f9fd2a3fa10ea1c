//! An Arrow IPC file streamed through staging memory: its record batches are read, several
//! in flight, into staging slots ([`super::io`]), decoded over the slot bytes without a copy
//! (`IpcFile::append_block`), and appended to the batch being gathered; a slot goes back for
//! the next read as soon as the arrays over it are dropped.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use meridian_kernels::column::{ColumnBuilder, GeometryColumn};
use meridian_kernels::io::columnar::{IpcFile, IPC_TRAILER};
use meridian_kernels::io::{Position, ReadError};

use super::io::{Filled, IoMode, Reader};
use super::staging::{Staging, ALIGN};
use super::BatchSource;

fn read_error(name: &str, at: Position, message: impl std::fmt::Display) -> ReadError {
    ReadError { source_name: name.to_owned(), at, message: message.to_string() }
}

/// Options of an [`IpcStream`].
#[derive(Clone, Copy, Debug)]
pub struct IpcStreamOptions {
    /// Rows per batch handed on: record batches are gathered until there are this many.
    pub batch_rows: usize,
    /// Record batches read ahead (staging slots).
    pub reads_in_flight: usize,
    /// io_uring or pread.
    pub io: IoMode,
}

impl Default for IpcStreamOptions {
    fn default() -> IpcStreamOptions {
        IpcStreamOptions { batch_rows: 1 << 18, reads_in_flight: 4, io: IoMode::Auto }
    }
}

/// The largest record batch the streamer stages (a larger one is an error naming it).
const MAX_BLOCK: usize = 1 << 30;

/// An Arrow IPC file's geometry, read through staging memory batch by batch.
#[derive(Debug)]
pub struct IpcStream {
    name: String,
    file: IpcFile,
    reader: Reader,
    staging: Staging,
    options: IpcStreamOptions,
    next_read: usize,
    next_batch: usize,
    landed: HashMap<usize, Filled>,
    row: u64,
    failed: bool,
    bytes: u64,
}

impl IpcStream {
    /// Opens an Arrow IPC file: reads its footer, finds the geometry (`column`, or as the
    /// readers do), sizes the staging slots to its largest record batch, and sets up the
    /// reads (io_uring where it works: see [`IpcStream::how`]).
    pub fn open(
        path: &Path,
        column: Option<&str>,
        options: IpcStreamOptions,
    ) -> Result<IpcStream, ReadError> {
        let name = path.display().to_string();
        let whole = |m: &dyn std::fmt::Display| read_error(&name, Position::Whole, m);
        let plain = File::open(path).map_err(|e| whole(&e))?;
        let size = plain.metadata().map_err(|e| whole(&e))?.len();
        let mut trailer = [0u8; IPC_TRAILER];
        let trailer_at =
            size.checked_sub(IPC_TRAILER as u64).ok_or_else(|| whole(&"too short for an Arrow IPC file"))?;
        plain.read_exact_at(&mut trailer, trailer_at).map_err(|e| whole(&e))?;
        let footer_len = IpcFile::footer_len(&name, trailer)?;
        let footer_at = trailer_at
            .checked_sub(footer_len as u64)
            .ok_or_else(|| whole(&format!("a footer of {footer_len} bytes does not fit a file of {size}")))?;
        let mut footer = vec![0u8; footer_len];
        plain.read_exact_at(&mut footer, footer_at).map_err(|e| whole(&e))?;
        let file = IpcFile::from_footer(&name, &footer, column)?;
        let largest = file.blocks().iter().map(|&(_, len)| len).max().unwrap_or(0);
        if largest > MAX_BLOCK {
            return Err(whole(&format!(
                "a record batch of {largest} bytes is larger than the streamer stages ({MAX_BLOCK})"
            )));
        }
        for (k, &(at, len)) in file.blocks().iter().enumerate() {
            if at.checked_add(len as u64).is_none_or(|end| end > footer_at) {
                return Err(read_error(
                    &name,
                    Position::Byte(at),
                    format!("record batch {k} ({len} bytes) runs past the data"),
                ));
            }
        }
        let depth = options.reads_in_flight.max(1);
        // Room for the block and, with O_DIRECT, the widening to the alignment at both ends.
        let staging =
            Staging::new(depth, largest + 2 * ALIGN).map_err(|e| whole(&format!("staging memory: {e}")))?;
        let reader = Reader::open(path, &staging, options.io, depth).map_err(|e| whole(&e))?;
        Ok(IpcStream {
            name,
            file,
            reader,
            staging,
            options,
            next_read: 0,
            next_batch: 0,
            landed: HashMap::new(),
            row: 0,
            failed: false,
            bytes: 0,
        })
    }

    /// How the file is read: io_uring or pread, fixed buffers or not, O_DIRECT or buffered,
    /// with the reason for each fallback.
    pub fn how(&self) -> &str {
        self.reader.how()
    }

    /// Record batches in the file.
    pub fn record_batches(&self) -> usize {
        self.file.blocks().len()
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Keeps every free slot busy with the next record batches.
    fn read_ahead(&mut self) -> Result<(), ReadError> {
        while self.next_read < self.file.blocks().len() {
            let Some(slot) = self.staging.try_take() else { return Ok(()) };
            let (at, len) = self.file.blocks()[self.next_read];
            self.reader
                .submit(self.next_read as u64, slot, at, len)
                .map_err(|e| read_error(&self.name, Position::Byte(at), e))?;
            self.next_read += 1;
        }
        Ok(())
    }

    /// The next record batch's bytes, in file order.
    fn landed(&mut self, k: usize) -> Result<Filled, ReadError> {
        loop {
            if let Some(f) = self.landed.remove(&k) {
                return Ok(f);
            }
            match self.reader.complete() {
                Some((tag, Ok(f))) => {
                    self.landed.insert(tag as usize, f);
                }
                Some((tag, Err(e))) => {
                    let at = self.file.blocks().get(tag as usize).map_or(0, |b| b.0);
                    return Err(read_error(
                        &self.name,
                        Position::Byte(at),
                        format!("reading record batch {tag}: {e}"),
                    ));
                }
                None => {
                    return Err(read_error(
                        &self.name,
                        Position::Whole,
                        format!("record batch {k} was never read"),
                    ))
                }
            }
        }
    }

    fn gather(&mut self) -> Result<Option<GeometryColumn>, ReadError> {
        let mut b = ColumnBuilder::new();
        while b.len() < self.options.batch_rows.max(1) && self.next_batch < self.file.blocks().len() {
            self.read_ahead()?;
            let k = self.next_batch;
            let filled = self.landed(k)?;
            self.bytes += filled.data.len() as u64;
            let data = filled.data.clone();
            let bytes = filled.slot.into_buffer(data).ok_or_else(|| {
                read_error(&self.name, Position::Whole, format!("record batch {k} was read short"))
            })?;
            // The arrays over the slot are dropped inside; the slot is then free for the next read.
            self.row += self.file.append_block(k, bytes, self.row, &mut b)? as u64;
            self.next_batch += 1;
        }
        Ok((!b.is_empty()).then(|| b.finish()))
    }
}

impl BatchSource for IpcStream {
    fn next_batch(&mut self) -> Option<Result<GeometryColumn, ReadError>> {
        if self.failed {
            return None;
        }
        match self.gather() {
            Ok(batch) => batch.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
