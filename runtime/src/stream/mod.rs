//! Streamed jobs: one row input arrives in batches (a file read while the job runs). Each
//! batch runs as its own job, up to `in_flight` at once, while a reader thread reads the next
//! batches; the results merge, in batch order, into what one job over all the rows gives
//! (hits with their rows offset, dense outputs concatenated, counts and sums added).
//!
//! A stream that fails part-way is an error saying how many rows were processed; no partial
//! result is ever returned as complete.
//!
//! Sources: [`FileBatches`] (any Parquet or Arrow file, through the `parquet`/`arrow-ipc`
//! readers) and [`IpcStream`] (an Arrow IPC file read with io_uring into staging memory,
//! several record batches in flight, decoded over the staged bytes without a copy).

use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use meridian_kernels::column::{ColumnBuilder, GeometryColumn};
use meridian_kernels::interp::{Input, OutputBuffers, OutputColumn};
use meridian_kernels::io::{GeoBatchReader, Position, ReadError};

use crate::engine::{Engine, EngineError};
use crate::job::{Bound, CancelToken, Job, JobError, JobResult, Prepared, Ticket};
use crate::variants::Backend;

#[cfg(unix)]
mod io;
#[cfg(unix)]
mod ipc;
#[cfg(unix)]
mod staging;

#[cfg(unix)]
pub use io::{io_uring_available, staged_read, IoMode, StagedRead, IO_ENV};
#[cfg(unix)]
pub use ipc::{IpcStream, IpcStreamOptions};

/// Where a stream's batches come from.
pub trait BatchSource: Send {
    /// The next batch, `None` at the end. After an error the stream ends.
    fn next_batch(&mut self) -> Option<Result<GeometryColumn, ReadError>>;
}

/// How a stream runs.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Batches read ahead of the one running, and jobs in flight at once (at least 1).
    pub in_flight: usize,
    /// Stops the stream: every batch's job is given it, and no batch is started once it is
    /// cancelled (or its deadline passed); the stream then fails with the job error that
    /// says why.
    pub cancel: Option<CancelToken>,
}

impl Default for StreamOptions {
    fn default() -> StreamOptions {
        StreamOptions { in_flight: 3, cancel: None }
    }
}

/// Why a stream produced no result: what failed, and how many rows had been processed (their
/// results are discarded).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading a batch failed.
    #[error("{source} ({rows_done} rows were processed before; no result)")]
    Read {
        /// Rows whose jobs had completed.
        rows_done: u64,
        /// The read error (it names the file and where).
        source: ReadError,
    },
    /// A batch could not be bound to the program.
    #[error("{source} ({rows_done} rows were processed before; no result)")]
    Bind {
        /// Rows whose jobs had completed.
        rows_done: u64,
        /// Why.
        source: EngineError,
    },
    /// A batch's job failed.
    #[error("{source} ({rows_done} rows were processed before; no result)")]
    Job {
        /// Rows whose jobs had completed.
        rows_done: u64,
        /// Why.
        source: JobError,
    },
    /// The results cannot be merged (more rows than hits can name).
    #[error("{message} ({rows_done} rows were processed before; no result)")]
    Merge {
        /// Rows whose jobs had completed.
        rows_done: u64,
        /// Why.
        message: String,
    },
    /// The engine was shut down.
    #[error("the engine was shut down ({rows_done} rows were processed before; no result)")]
    Shutdown {
        /// Rows whose jobs had completed.
        rows_done: u64,
    },
}

impl StreamError {
    /// Rows whose jobs had completed when the stream failed.
    pub fn rows_done(&self) -> u64 {
        match self {
            StreamError::Read { rows_done, .. }
            | StreamError::Bind { rows_done, .. }
            | StreamError::Job { rows_done, .. }
            | StreamError::Merge { rows_done, .. }
            | StreamError::Shutdown { rows_done } => *rows_done,
        }
    }
}

/// A columnar file's geometry as batches of at least `batch_rows` rows (the last may have
/// fewer): the reader's record batches, gathered until there are that many. Open the reader
/// with [`GeoBatchReader::with_batch_rows`] for Parquet batches of exactly that size.
#[derive(Debug)]
pub struct FileBatches {
    reader: GeoBatchReader,
    batch_rows: usize,
}

impl FileBatches {
    /// Batches of `batch_rows` rows (the last may have fewer) from `reader`, whatever the
    /// file's own record batches or row groups hold (larger ones are sliced, smaller ones
    /// gathered).
    pub fn new(reader: GeoBatchReader, batch_rows: usize) -> FileBatches {
        FileBatches { reader, batch_rows: batch_rows.max(1) }
    }
}

impl BatchSource for FileBatches {
    fn next_batch(&mut self) -> Option<Result<GeometryColumn, ReadError>> {
        let mut b = ColumnBuilder::new();
        while b.len() < self.batch_rows {
            let room = self.batch_rows - b.len();
            match self.reader.read_into_at_most(&mut b, room) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return Some(Err(e)),
            }
        }
        (!b.is_empty()).then(|| Ok(b.finish()))
    }
}

/// Where a stream's hits go as its batches finish, instead of into the merged result: a
/// writer that takes them in pieces, so that a stream's hits never gather in memory (the
/// memory budget then bounds a batch's hits, not the stream's).
pub trait HitsSink {
    /// Whether this sink takes the hits output `name`.
    fn takes(&self, name: &str) -> bool;
    /// The next hits of output `name`, rows counted from the stream's first, in `(row, id)`
    /// order (batch after batch, each in order): what the merged output would have held.
    fn hits(&mut self, name: &str, hits: &[(u32, u32)]) -> Result<(), String>;
}

/// Hits handed to a sink at a time.
const SINK_PIECE: usize = 1 << 16;

/// A sink that takes nothing: every output is merged.
struct NoSink;

impl HitsSink for NoSink {
    fn takes(&self, _: &str) -> bool {
        false
    }

    fn hits(&mut self, _: &str, _: &[(u32, u32)]) -> Result<(), String> {
        Ok(())
    }
}

/// A finished stream: the merged result, and what ran.
#[derive(Debug)]
pub struct StreamResult {
    /// The outputs as one job over every row would give them (but those a [`HitsSink`]
    /// took: see [`StreamResult::sunk`]).
    pub result: JobResult,
    /// The hits outputs a sink took, and how many hits each was given.
    pub sunk: Vec<(String, u64)>,
    /// Rows streamed.
    pub rows: u64,
    /// Batches (jobs) they ran as.
    pub batches: u64,
    /// The plans the batches ran by: the first batch's, then each that differs from the one
    /// before in backend, route, topology or chunk size, with the batch's index.
    pub plans: Vec<(u64, crate::plan::Plan)>,
}

/// The merged outputs of the batches so far.
struct Merger<'s> {
    names: Arc<[String]>,
    columns: Vec<Merged>,
    sink: &'s mut dyn HitsSink,
    /// Bytes the merged outputs hold, against the engine's memory budget.
    held: u64,
    budget: Option<u64>,
    rows: u64,
    batches: u64,
    attempts: u32,
    backend: Option<Arc<Backend>>,
    plans: Vec<(u64, crate::plan::Plan)>,
}

/// One output, merged.
enum Merged {
    F64(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Geometry(ColumnBuilder),
    Hits(Vec<(u32, u32)>),
    /// Hits handed to the sink as they came: how many.
    Sunk(u64),
    Count(u64),
    Sum(f64),
}

impl Merged {
    /// Nothing yet, of the kind of `c`.
    fn empty(c: &OutputColumn) -> Merged {
        match c {
            OutputColumn::F64(_) => Merged::F64(Vec::new()),
            OutputColumn::Bool(_) => Merged::Bool(Vec::new()),
            OutputColumn::Geometry(_) => Merged::Geometry(ColumnBuilder::new()),
            OutputColumn::Hits(_) => Merged::Hits(Vec::new()),
            OutputColumn::Count(_) => Merged::Count(0),
            OutputColumn::Sum(_) => Merged::Sum(0.0),
        }
    }

    /// Appends the output of a job over `rows` rows whose hits name rows below `end` counted
    /// from `offset` (the stream row of its batch's first row); hits of a sunk output go to
    /// `sink` as `name`'s. Returns the bytes it now holds more.
    fn add(
        &mut self,
        c: &OutputColumn,
        offset: u64,
        (rows, end): (usize, usize),
        sink: &mut dyn HitsSink,
        name: &str,
    ) -> Result<u64, String> {
        let held = match (&*self, c) {
            (Merged::F64(_), _) => 9 * rows as u64,
            (Merged::Bool(_), _) => rows as u64,
            (Merged::Geometry(_), OutputColumn::Geometry(g)) => {
                meridian_kernels::cuda::DeviceColumn::bytes(g) as u64
            }
            (Merged::Hits(_), OutputColumn::Hits(h)) => 8 * h.len() as u64,
            _ => 0,
        };
        let shift = |h: &[(u32, u32)]| -> Result<Vec<(u32, u32)>, String> {
            // Hits name rows with 32 bits; other outputs have no such limit.
            let base = u32::try_from(offset)
                .ok()
                .filter(|o| u32::try_from(end).is_ok_and(|n| o.checked_add(n).is_some()))
                .ok_or_else(|| {
                    format!("hits name rows with 32 bits: no room past row {} of a stream", u32::MAX)
                })?;
            Ok(h.iter().map(|&(r, id)| (r + base, id)).collect())
        };
        match (self, c) {
            (Merged::F64(v), OutputColumn::F64(c)) => v.extend(c.iter()),
            (Merged::Bool(v), OutputColumn::Bool(c)) => v.extend(c.iter()),
            (Merged::Geometry(b), OutputColumn::Geometry(c)) => {
                for row in 0..c.len() {
                    b.push_geom(c.get(row).as_ref()).map_err(|e| e.to_string())?;
                }
            }
            (Merged::Hits(h), OutputColumn::Hits(c)) => h.extend(shift(c)?),
            (Merged::Sunk(n), OutputColumn::Hits(c)) => {
                // A piece at a time: a shifted copy of every hit would double them in memory.
                for piece in c.chunks(SINK_PIECE) {
                    sink.hits(name, &shift(piece)?)?;
                }
                *n += c.len() as u64;
            }
            (Merged::Count(n), OutputColumn::Count(c)) => *n += c,
            (Merged::Sum(s), OutputColumn::Sum(c)) => *s += c,
            _ => return Err("a batch's outputs differ in kind from the first batch's".into()),
        }
        Ok(held)
    }

    fn finish(self) -> OutputColumn {
        match self {
            Merged::F64(v) => OutputColumn::F64(v.into_iter().collect()),
            Merged::Bool(v) => OutputColumn::Bool(v.into_iter().collect()),
            Merged::Geometry(b) => OutputColumn::Geometry(Box::new(b.finish())),
            Merged::Hits(h) => OutputColumn::Hits(h),
            Merged::Sunk(_) => OutputColumn::Hits(Vec::new()),
            Merged::Count(n) => OutputColumn::Count(n),
            Merged::Sum(s) => OutputColumn::Sum(s),
        }
    }
}

/// How many jobs a batch of `rows` rows of `prepared` runs as so that each one's hit buffers
/// fit `budget`, hits at the rate its last jobs found (1 a row before any).
fn pieces_within(prepared: &Prepared, rows: usize, budget: u64) -> usize {
    let outputs = prepared.inner.interp.outputs();
    let bytes = |r: usize| {
        OutputBuffers::bytes(outputs, r, prepared.inner.hit_capacity(r)) - OutputBuffers::bytes(outputs, r, 0)
    };
    let mut n = 1usize;
    while n < rows && bytes(rows.div_ceil(n)) > budget {
        n *= 2;
    }
    n.min(rows.max(1))
}

/// A job of a stream: rows `rows` of a batch's bindings, the batch's first row being the
/// stream's row `base`.
#[derive(Clone)]
struct Piece {
    bound: Bound,
    rows: std::ops::Range<usize>,
    base: u64,
}

impl Merger<'_> {
    /// Merges the result of `piece` (pieces come in row order).
    fn add(&mut self, r: &JobResult, piece: &Piece) -> Result<(), String> {
        let rows = piece.rows.len();
        if self.batches == 0 && self.rows == 0 {
            self.names = r.outputs().map(|(n, _)| n.to_owned()).collect();
            let sink = &*self.sink;
            self.columns = r
                .outputs()
                .map(|(n, c)| match c {
                    OutputColumn::Hits(_) if sink.takes(n) => Merged::Sunk(0),
                    _ => Merged::empty(c),
                })
                .collect();
        }
        // A piece's hits name rows of its batch.
        for ((name, col), merged) in r.outputs().zip(self.columns.iter_mut()) {
            let rows = (piece.rows.len(), piece.rows.end);
            self.held += merged.add(col, piece.base, rows, &mut *self.sink, name)?;
        }
        // What the stream holds merged counts against the budget, as a job's buffers do: past
        // it the stream fails, saying what it needed (hits a sink takes are not held).
        if let Some(budget) = self.budget.filter(|b| self.held > *b) {
            return Err(format!(
                "its merged outputs need more than the memory budget ({} bytes held after {} rows, budget {budget} \
                 bytes); write hits as they come (meridian run does) or raise {}",
                self.held,
                self.rows + rows as u64,
                crate::engine::MEMORY_BUDGET_ENV
            ));
        }
        if let Some(p) = r.plan() {
            let same = |q: &crate::plan::Plan| {
                (q.backend(), q.route(), std::mem::discriminant(&q.topology), q.chunk_rows)
                    == (p.backend(), p.route(), std::mem::discriminant(&p.topology), p.chunk_rows)
            };
            if !self.plans.last().is_some_and(|(_, q)| same(q)) {
                self.plans.push((self.batches, p.clone()));
            }
        }
        self.rows += rows as u64;
        // Pieces of one batch count as that batch.
        if piece.rows.start == 0 {
            self.batches += 1;
        }
        self.attempts = self.attempts.max(r.attempts());
        let this = r.backend();
        self.backend = match self.backend.take() {
            None => Some(Arc::new(this.clone())),
            Some(b) if b.ran_on(this.variant) => Some(b),
            Some(b) => {
                let reason = if b.also.is_empty() {
                    format!(
                        "batches ran on {} ({}, route {}) and on {} ({}, route {})",
                        b.name(),
                        b.reason,
                        b.route(),
                        this.name(),
                        this.reason,
                        this.route()
                    )
                } else {
                    format!("{}, and on {} ({}, route {})", b.reason, this.name(), this.reason, this.route())
                };
                let mut also = b.also.clone();
                also.push(this.variant);
                Some(Arc::new(Backend {
                    variant: b.variant,
                    reason,
                    fallback: b.fallback || this.fallback,
                    also,
                }))
            }
        };
        Ok(())
    }

    fn finish(self) -> Option<StreamResult> {
        let backend = self.backend?;
        // Sunk outputs are not in the result: the sink holds them.
        let (mut names, mut columns, mut sunk) = (Vec::new(), Vec::new(), Vec::new());
        for (name, merged) in self.names.iter().zip(self.columns) {
            match merged {
                Merged::Sunk(n) => sunk.push((name.clone(), n)),
                m => {
                    names.push(name.clone());
                    columns.push(m.finish());
                }
            }
        }
        Some(StreamResult {
            result: JobResult::new(names.into(), columns, self.attempts, backend),
            sunk,
            rows: self.rows,
            batches: self.batches,
            plans: self.plans,
        })
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

impl Engine {
    /// Runs `prepared` with its row input `streamed` fed batch by batch from `source`, and
    /// every other input from `others`; returns what one job over all the rows would give
    /// (sums may differ from it in the last bits: they are added in another order).
    /// `progress` is called with the rows done after each batch.
    pub fn run_stream(
        &self,
        prepared: &Prepared,
        streamed: &str,
        source: impl BatchSource,
        others: &[(String, Input)],
        options: StreamOptions,
        progress: &mut dyn FnMut(u64),
    ) -> Result<StreamResult, StreamError> {
        self.run_stream_into(prepared, streamed, source, others, options, &mut NoSink, progress)
    }

    /// [`Engine::run_stream`], handing the hits outputs `sink` takes to it batch by batch
    /// instead of merging them: memory then holds a batch's hits, not the stream's.
    #[allow(clippy::too_many_arguments)] // run_stream's, and the sink
    pub fn run_stream_into(
        &self,
        prepared: &Prepared,
        streamed: &str,
        mut source: impl BatchSource,
        others: &[(String, Input)],
        options: StreamOptions,
        sink: &mut dyn HitsSink,
        progress: &mut dyn FnMut(u64),
    ) -> Result<StreamResult, StreamError> {
        let depth = options.in_flight.max(1);
        std::thread::scope(|scope| {
            let (tx, rx) = sync_channel::<Result<GeometryColumn, ReadError>>(depth);
            let name = streamed.to_owned();
            scope.spawn(move || {
                loop {
                    // A panicking source (a decoder's bug, a user's BatchSource) ends the stream
                    // with an error instead of taking the caller down with the scope.
                    let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.next_batch()));
                    let batch = match next {
                        Ok(None) => return,
                        Ok(Some(batch)) => batch,
                        Err(payload) => Err(ReadError {
                            source_name: name.clone(),
                            at: Position::Whole,
                            message: format!("reading the next batch panicked: {}", panic_message(&*payload)),
                        }),
                    };
                    let failed = batch.is_err();
                    // The consumer hung up (it failed): stop reading.
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                }
            });
            self.consume(prepared, streamed, rx, others, &options, sink, progress)
        })
    }

    /// Runs `piece` as two jobs, here, one half after the other (each again in halves while
    /// its hits pass the memory budget), and merges what they give.
    fn finish_in_halves(
        &self,
        prepared: &Prepared,
        merger: &mut Merger<'_>,
        piece: &Piece,
        stream_job: &dyn Fn(Job) -> Job,
    ) -> Result<(), StreamError> {
        let mid = piece.rows.start + piece.rows.len() / 2;
        for rows in [piece.rows.start..mid, mid..piece.rows.end] {
            let half = Piece { rows, ..piece.clone() };
            let rows_done = merger.rows;
            match self.run(stream_job(prepared.job(&half.bound).rows(half.rows.clone()))) {
                Err(JobError::OverBudget(_)) if half.rows.len() > 1 => {
                    self.finish_in_halves(prepared, merger, &half, stream_job)?
                }
                outcome => {
                    let result = outcome.map_err(|source| StreamError::Job { rows_done, source })?;
                    merger
                        .add(&result, &half)
                        .map_err(|message| StreamError::Merge { rows_done, message })?;
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // the stream's parts, each used
    fn consume(
        &self,
        prepared: &Prepared,
        streamed: &str,
        rx: Receiver<Result<GeometryColumn, ReadError>>,
        others: &[(String, Input)],
        options: &StreamOptions,
        sink: &mut dyn HitsSink,
        progress: &mut dyn FnMut(u64),
    ) -> Result<StreamResult, StreamError> {
        let (depth, cancel) = (options.in_flight.max(1), options.cancel.as_ref());
        let mut merger = Merger {
            names: Arc::from([]),
            columns: Vec::new(),
            sink,
            held: 0,
            budget: self.memory_budget(),
            rows: 0,
            batches: 0,
            attempts: 1,
            backend: None,
            plans: Vec::new(),
        };
        let mut running: VecDeque<(Ticket, Piece)> = VecDeque::new();
        let bind = |col: GeometryColumn| {
            let mut inputs: Vec<(String, Input)> = others.to_vec();
            inputs.push((streamed.to_owned(), Input::rows(Arc::new(col))));
            self.bind(prepared, inputs)
        };
        // Each job's share of the memory budget for its hits: the jobs in flight and one
        // finishing (its hits and their ordered copy) within the budget together. What the
        // stream merges (dense outputs, hits no sink takes) counts on its own against the
        // whole budget, so a stream holds at most about one and a half budgets.
        let share = self.memory_budget().map(|b| (b / (2 * (depth as u64 + 1))).max(1));
        let outputs = prepared.inner.interp.outputs();
        let stream_job = |job: Job| {
            let job = match share {
                Some(b) => {
                    let dense = OutputBuffers::bytes(outputs, job.row_range().len(), 0);
                    job.memory_budget(dense.saturating_add(b))
                }
                None => job,
            };
            match cancel {
                Some(token) => job.cancel_with(token),
                None => job,
            }
        };
        let finish_one = |merger: &mut Merger<'_>, ticket: Ticket, piece: Piece| -> Result<(), StreamError> {
            let rows_done = merger.rows;
            match ticket.wait() {
                // More hits than the budget holds: the piece again in halves (each a job of its
                // own, run here), down to single rows.
                Err(JobError::OverBudget(_)) if piece.rows.len() > 1 => {
                    self.finish_in_halves(prepared, merger, &piece, &stream_job)
                }
                outcome => {
                    let result = outcome.map_err(|source| StreamError::Job { rows_done, source })?;
                    merger.add(&result, &piece).map_err(|message| StreamError::Merge { rows_done, message })
                }
            }
        };
        let mut submitted = 0u64;
        // Whatever ends the stream early (an error, the budget) stops the jobs still running:
        // a dropped ticket does not stop its job.
        let mut run_all = || -> Result<(), StreamError> {
            for batch in rx.iter() {
                let rows_done = merger.rows;
                if let Some(reason) = cancel.and_then(CancelToken::stopped) {
                    return Err(StreamError::Job { rows_done, source: JobError::stopped(Some(reason)) });
                }
                // A chunk boundary: the GPU's state (memory free, busy) is looked at again here,
                // and only here, for the placement of the next batch.
                if self.has_gpu() {
                    self.refresh_telemetry();
                }
                let col = batch.map_err(|source| StreamError::Read { rows_done, source })?;
                let rows = col.len();
                let bound = bind(col).map_err(|source| StreamError::Bind { rows_done, source })?;
                // A batch whose outputs would pass its share of the memory budget (its hits, at
                // the rate the program's last jobs found) runs as several jobs, each within it.
                let n = share.map_or(1, |b| pieces_within(prepared, rows, b));
                let size = rows.div_ceil(n).max(1);
                for start in (0..rows.max(1)).step_by(size) {
                    let piece = Piece {
                        bound: bound.clone(),
                        rows: start..(start + size).min(rows),
                        base: submitted,
                    };
                    let job = stream_job(prepared.job(&bound).rows(piece.rows.clone()));
                    let ticket = self.submit(job).map_err(|_| StreamError::Shutdown { rows_done })?;
                    running.push_back((ticket, piece));
                    if running.len() >= depth {
                        if let Some((ticket, piece)) = running.pop_front() {
                            finish_one(&mut merger, ticket, piece)?;
                            progress(merger.rows);
                        }
                    }
                }
                submitted += rows as u64;
            }
            while let Some((ticket, piece)) = running.pop_front() {
                finish_one(&mut merger, ticket, piece)?;
                progress(merger.rows);
            }
            Ok(())
        };
        let outcome = run_all();
        if outcome.is_err() {
            for (ticket, _) in &running {
                ticket.cancel();
            }
            for (ticket, _) in running.drain(..) {
                let _ = ticket.wait();
            }
        }
        outcome?;
        match merger.finish() {
            Some(done) => Ok(done),
            // No rows at all: what one job over no rows gives.
            None => {
                let bound = bind(GeometryColumn::default())
                    .map_err(|source| StreamError::Bind { rows_done: 0, source })?;
                let result = self
                    .run(prepared.job(&bound))
                    .map_err(|source| StreamError::Job { rows_done: 0, source })?;
                Ok(StreamResult { result, sunk: Vec::new(), rows: 0, batches: 0, plans: Vec::new() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hits_limit_a_stream_to_32_bit_rows() {
        let far = u64::from(u32::MAX) + 10;
        let mut count = Merged::empty(&OutputColumn::Count(0));
        assert!(count.add(&OutputColumn::Count(7), far, (100, 100), &mut NoSink, "n").is_ok());
        let mut sum = Merged::empty(&OutputColumn::Sum(0.0));
        assert!(sum.add(&OutputColumn::Sum(1.5), far, (100, 100), &mut NoSink, "s").is_ok());
        let mut hits = Merged::empty(&OutputColumn::Hits(Vec::new()));
        assert!(hits.add(&OutputColumn::Hits(vec![(1, 2)]), 1000, (100, 100), &mut NoSink, "h").is_ok());
        let e = hits.add(&OutputColumn::Hits(vec![(1, 2)]), far, (100, 100), &mut NoSink, "h").unwrap_err();
        assert!(e.contains("32 bits"), "{e}");
        // A batch that would cross the limit.
        let e = hits
            .add(&OutputColumn::Hits(Vec::new()), u64::from(u32::MAX) - 5, (100, 100), &mut NoSink, "h")
            .unwrap_err();
        assert!(e.contains("32 bits"), "{e}");
        let OutputColumn::Hits(h) = hits.finish() else { panic!("hits") };
        assert_eq!(h, vec![(1001, 2)]);
    }
}
