//! An Arrow IPC file streamed through staging memory: its record batches are read, several
//! in flight, into staging slots ([`super::io`]), decoded over the slot bytes without a copy
//! (`IpcFile::decode_block`), and appended, whole or in slices, to the batch being gathered;
//! a slot goes back for the next read as soon as the arrays over it are dropped.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::RecordBatch;
use meridian_kernels::column::{ColumnBuilder, GeometryColumn};
use meridian_kernels::io::columnar::{IpcFile, IPC_TRAILER};
use meridian_kernels::io::{open_input, Position, ReadError, Stamp};

use super::io::{Filled, IoMode, Reader};
use super::staging::{Staging, ALIGN};
use super::BatchSource;
use crate::events::{self, Event};
use crate::Engine;

fn read_error(name: &str, at: Position, message: impl std::fmt::Display) -> ReadError {
    ReadError { source_name: name.to_owned(), at, message: message.to_string() }
}

/// Options of an [`IpcStream`].
#[derive(Clone, Copy, Debug)]
pub struct IpcStreamOptions {
    /// Rows per batch handed on: record batches are gathered until there are this many, and
    /// a larger one is handed on in slices of its arrays (no copy); only the last batch has
    /// fewer.
    pub batch_rows: usize,
    /// Record batches read ahead (staging slots).
    pub reads_in_flight: usize,
    /// Batches the consumer may hold at once over their staging bytes: a batch of one record
    /// batch of points is handed on without a copy, its slot lent until its column drops, so
    /// these are staging slots beyond the reads in flight. When every slot is lent and no read
    /// is in flight, a batch is copied out of its slot instead, so a consumer that keeps its
    /// batches never stalls the reads.
    pub batches_held: usize,
    /// io_uring or pread.
    pub io: IoMode,
}

impl Default for IpcStreamOptions {
    fn default() -> IpcStreamOptions {
        IpcStreamOptions { batch_rows: 1 << 18, reads_in_flight: 4, batches_held: 4, io: IoMode::Auto }
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
    /// Bytes of record batches handed on, shared with [`IpcStream::bytes_counter`]'s holders.
    bytes: Arc<AtomicU64>,
    size: u64,
    /// What [`IpcStream::page_lock`] did.
    locked: Option<String>,
    /// A record batch with more rows than a batch takes: its number, its arrays (over their
    /// staging slot) and the rows of it handed on so far.
    pending: Option<(usize, RecordBatch, usize)>,
    /// The file as first opened, and what it was then: checked when the last batch is read.
    plain: File,
    stamp: Stamp,
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
        // A regular file (a pipe cannot be read at offsets, and is refused rather than opened
        // twice); its stamp is checked again when the last batch has been read.
        let opened = open_input(path, false)?;
        let stamp = opened.stamp.ok_or_else(|| whole(&"not a regular file"))?;
        let plain = opened.file;
        let size = stamp.len();
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
        let staging = Staging::new(depth + options.batches_held, largest + 2 * ALIGN)
            .map_err(|e| whole(&format!("staging memory: {e}")))?;
        let reader = Reader::open(path, &staging, options.io, depth).map_err(|e| whole(&e))?;
        if !reader.reads(&plain) {
            return Err(whole(&"the file was replaced while it was being opened"));
        }
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
            bytes: Arc::new(AtomicU64::new(0)),
            size,
            locked: None,
            pending: None,
            plain,
            stamp,
        })
    }

    /// How the file is read: io_uring or pread, fixed buffers or not, O_DIRECT or buffered,
    /// with the reason for each fallback; and whether the staging memory is page-locked.
    pub fn how(&self) -> String {
        match &self.locked {
            None => self.reader.how().to_owned(),
            Some(how) => format!("{}, {how}", self.reader.how()),
        }
    }

    /// Page-locks the staging memory with `engine`'s GPU (`cuMemHostRegister`), so that the
    /// batches handed on over it are copied to the device straight from it; the lock lasts as
    /// long as any batch over the memory. Without a GPU nothing happens; a device that refuses
    /// is a `stream` event with the reason (an error under strict mode), and the stream goes
    /// on in pageable memory.
    pub fn page_lock(&mut self, engine: &Engine) -> Result<(), ReadError> {
        let (base, len) = self.staging.region();
        // SAFETY: the region is the staging mapping, which stays mapped while the lock is held
        // (the staging keeps the lock and drops it before unmapping), and nothing else locks it.
        let Some(locked) = (unsafe { engine.page_lock(base, len) }) else { return Ok(()) };
        match locked {
            Ok(lock) => {
                self.staging.hold(lock);
                self.locked = Some(format!("{} MiB of staging page-locked for the GPU", len >> 20));
            }
            Err(e) => {
                let event = Event::new("stream", "page-locked staging", "pageable staging", &e.0, &self.name);
                events::record(event.clone());
                if events::strict_from_env().map_err(|m| read_error(&self.name, Position::Whole, m))? {
                    return Err(read_error(&self.name, Position::Whole, events::refused(&event)));
                }
                self.locked = Some(format!("staging pageable (page-locking refused: {})", e.0));
            }
        }
        Ok(())
    }

    /// Record batches in the file.
    pub fn record_batches(&self) -> usize {
        self.file.blocks().len()
    }

    /// Bytes of record batches handed on so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// A counter of [`IpcStream::bytes_read`] that can be read from another thread while the
    /// stream is read on its own (for progress: a stream runs on a reader thread).
    pub fn bytes_counter(&self) -> Arc<AtomicU64> {
        self.bytes.clone()
    }

    /// The file's size in bytes (when it was opened).
    pub fn file_len(&self) -> u64 {
        self.size
    }

    /// Keeps up to `reads_in_flight` reads of the next record batches going, in free slots.
    fn read_ahead(&mut self) -> Result<(), ReadError> {
        let depth = self.options.reads_in_flight.max(1);
        while self.next_read < self.file.blocks().len() && self.next_read - self.next_batch < depth {
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
        let want = self.options.batch_rows.max(1);
        while b.len() < want {
            let (k, batch, done) = match self.pending.take() {
                Some(p) => p,
                None if self.next_batch < self.file.blocks().len() => {
                    // Rows gathered over a slot (the end of a sliced record batch) keep it
                    // lent; when it is the last one and no read is under way, they are copied
                    // so the next read has a slot to go into.
                    if self.staging.free_slots() == 0 && self.next_read == self.next_batch {
                        b.own_coordinates();
                    }
                    self.read_ahead()?;
                    let k = self.next_batch;
                    let filled = self.landed(k)?;
                    self.bytes.fetch_add(filled.data.len() as u64, Ordering::Relaxed);
                    let data = filled.data.clone();
                    let bytes = filled.slot.into_buffer(data).ok_or_else(|| {
                        read_error(&self.name, Position::Whole, format!("record batch {k} was read short"))
                    })?;
                    self.next_batch += 1;
                    // The arrays keep the slot until they (and columns over them) are dropped.
                    (k, self.file.decode_block(k, bytes, self.row)?, 0)
                }
                None => break,
            };
            // No more rows than asked for: a larger record batch is handed on in slices.
            let take = (want - b.len()).min(batch.num_rows() - done);
            self.row += self.file.append_rows(k, &batch.slice(done, take), self.row, &mut b)? as u64;
            if done + take < batch.num_rows() {
                self.pending = Some((k, batch, done + take));
            }
        }
        if b.is_empty() {
            // The end: the file must be what it was when it was opened, or the rows read are
            // not all of it.
            self.stamp.check(&self.plain, &self.name, None)?;
            return Ok(None);
        }
        let col = b.finish();
        // Every slot lent out and none being read: the consumer holds the others, so this one
        // is copied out and freed for the next read.
        if self.staging.free_slots() == 0 && self.next_read == self.next_batch {
            return Ok(Some(col.with_own_coordinates()));
        }
        Ok(Some(col))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;
    use meridian_kernels::column::{Family, Layout};
    use meridian_kernels::io::geoarrow::Encoding;
    use meridian_kernels::io::{Format, GeometryWriter};

    #[test]
    fn a_batch_of_points_is_the_staging_bytes_themselves() {
        let path = four_batches("zero-copy");
        for io in [IoMode::Auto, IoMode::Pread] {
            // One record batch a batch, or a slice of one: handed on over the staging bytes.
            let batch_rows = if io == IoMode::Auto { 2500 } else { 1250 };
            let options = IpcStreamOptions { batch_rows, io, ..IpcStreamOptions::default() };
            let mut stream = IpcStream::open(&path, None, options).unwrap();
            let (base, len) = stream.staging.region();
            let staged = base.as_ptr() as usize..base.as_ptr() as usize + len;
            let mut rows = 0;
            while let Some(batch) = stream.next_batch() {
                let batch = batch.unwrap();
                assert_eq!(batch.layout(), Layout::Points);
                let (x, y) = batch.coordinates();
                assert!(staged.contains(&(x.as_ptr() as usize)), "{io:?}: x was copied");
                assert!(staged.contains(&(y.as_ptr() as usize)), "{io:?}: y was copied");
                assert_eq!(batch.view().point(7), Some(((rows + 7) as f64, -((rows + 7) as f64))));
                rows += batch.len();
            }
            assert_eq!(rows, 10_000);
        }
        let _ = std::fs::remove_file(&path);
    }

    /// 10,000 points `(i, -i)` in an Arrow IPC file of four record batches of 2,500.
    fn four_batches(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("meridian-ipc-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("p.arrow");
        let mut b = ColumnBuilder::new();
        for i in 0..10_000 {
            b.push_point(i as f64, -(i as f64)).unwrap();
        }
        let col = b.finish();
        let mut w =
            GeometryWriter::create(&path, Format::ArrowFile, "geometry", Encoding::Native(Family::Point))
                .unwrap();
        for start in (0..10_000).step_by(2500) {
            w.write_rows(&col, start..start + 2500).unwrap();
        }
        w.finish().unwrap();
        path
    }

    /// Batches hold the rows asked for, whatever the file's record batches hold.
    #[test]
    fn record_batches_are_sliced_and_gathered_to_the_batch_size() {
        let path = four_batches("slices");
        for io in [IoMode::Auto, IoMode::Pread] {
            let options = IpcStreamOptions { batch_rows: 1000, io, ..IpcStreamOptions::default() };
            let mut stream = IpcStream::open(&path, None, options).unwrap();
            let mut sizes = Vec::new();
            let mut next = 0.0;
            while let Some(batch) = stream.next_batch() {
                let batch = batch.unwrap();
                for r in 0..batch.len() {
                    assert_eq!(batch.view().point(r), Some((next, -next)));
                    next += 1.0;
                }
                sizes.push(batch.len());
            }
            assert_eq!(sizes, [1000; 10], "{io:?}");
        }
    }

    /// A file cut while it streams is an error, not a result over the rows before the cut.
    #[test]
    fn a_file_cut_while_it_streams_is_an_error() {
        let path = four_batches("cut");
        let options =
            IpcStreamOptions { batch_rows: 2500, reads_in_flight: 1, ..IpcStreamOptions::default() };
        let mut stream = IpcStream::open(&path, None, options).unwrap();
        stream.next_batch().unwrap().unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 2).unwrap();
        let e = loop {
            match stream.next_batch() {
                Some(Ok(_)) => {}
                Some(Err(e)) => break e,
                None => panic!("a file cut in half streamed to a clean end"),
            }
        };
        assert!(e.source_name.ends_with("p.arrow"), "{e}");
    }
}
