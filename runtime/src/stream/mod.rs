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
use meridian_kernels::interp::{Input, OutputBuffers};
use meridian_kernels::io::{GeoBatchReader, Position, ReadError};

use crate::engine::{Engine, EngineError};
use crate::job::{Bound, CancelToken, Job, JobError, JobResult, Prepared, Ticket};

mod merge;

use merge::Merger;

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
        let mut merger = Merger::new(sink, self.memory_budget());
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
