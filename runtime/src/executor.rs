//! The resident CPU executor: persistent worker threads that claim chunks from the
//! submission ring, run the interpreter on them, and publish a completion when a job's
//! last chunk is done; and the host side that turns completions into resolved tickets.

use std::ops::Range;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::Arc;

use parking_lot::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use meridian_kernels::interp::{BoundInputs, ExecError, FinishError, OutputBuffers, Scratch};

use crate::doorbell::Doorbell;
use crate::engine::{Backend, JobError, JobResult, PreparedInner, TicketCell};
use crate::ring::{
    CompletionEntry, HeapMemory, JobStatus, Pop, PushError, Reaper, Ring, RingError, SubmitEntry,
};
use crate::route::Code;
use crate::sync::spin_hint;

/// One job in flight: what to run, where results go, and whom to tell.
#[derive(Debug)]
pub(crate) struct JobState {
    pub prepared: Arc<PreparedInner>,
    pub inputs: Arc<BoundInputs>,
    pub rows: Range<usize>,
    pub out: OutputBuffers,
    pub remaining: AtomicU32,
    pub cancelled: AtomicBool,
    pub error: Mutex<Option<ExecError>>,
    pub ticket: Arc<TicketCell>,
    pub attempt: u32,
    pub backend: Arc<Backend>,
    /// What runs the rows: the interpreter (as made) or the compiled program.
    pub code: Code,
    /// The plan it runs by, for its result.
    pub plan: Option<Arc<crate::plan::Plan>>,
    /// Rows a worker claims at once for this job: what autotune chose, or 0 for the engine's.
    pub chunk_rows: usize,
    /// Its output buffers' budget (the job's or the engine's), for its re-runs.
    pub budget: Option<u64>,
    /// The job's part in an autotune race, if it races; its time is reported when it is done.
    pub race: Option<crate::tune::Entry>,
    /// For raced jobs: when its first chunk started and its last chunk ended, in ns after
    /// `born` (its span on the workers).
    pub first_start: AtomicU64,
    pub last_end: AtomicU64,
    pub born: std::time::Instant,
}

impl JobState {
    #[allow(clippy::too_many_arguments)] // every field a job cannot run without, the budget among them
    pub(crate) fn new(
        prepared: Arc<PreparedInner>,
        inputs: Arc<BoundInputs>,
        rows: Range<usize>,
        hit_capacity: usize,
        ticket: Arc<TicketCell>,
        attempt: u32,
        backend: Arc<Backend>,
        budget: Option<u64>,
    ) -> JobState {
        // The job's stop signal rides with its outputs into every chunk's rows.
        let out = prepared.interp.output_buffers(rows.clone(), hit_capacity).with_stop(ticket.stop.clone());
        JobState {
            prepared,
            inputs,
            rows,
            out,
            remaining: AtomicU32::new(0),
            cancelled: AtomicBool::new(false),
            error: Mutex::new(None),
            ticket,
            attempt,
            backend,
            code: Code::Interpreter,
            plan: None,
            chunk_rows: 0,
            budget,
            race: None,
            first_start: AtomicU64::new(u64::MAX),
            last_end: AtomicU64::new(0),
            born: std::time::Instant::now(),
        }
    }

    fn fail(&self, e: ExecError) {
        let mut slot = self.error.lock();
        slot.get_or_insert(e);
    }
}

/// Executor parameters (the launch policy and the autotuner set these).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuning {
    /// Bytes a job's output buffers may take ([`crate::plan::fit_budget`]).
    pub memory_budget: Option<u64>,
    pub workers: usize,
    pub chunk_rows: usize,
    pub ring_capacity: usize,
    pub spin: u32,
}

/// Everything the engine and its workers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub submit: Ring<SubmitEntry>,
    pub complete: Ring<CompletionEntry>,
    /// Free job-table slots.
    free: Ring<u32>,
    jobs: Box<[Mutex<Option<Arc<JobState>>>]>,
    /// Workers sleep here when the submission ring is empty.
    work: Doorbell,
    /// Submitters sleep here when the ring or the job table is full.
    pub space: Doorbell,
    /// Lets one thread at a time drain the completion ring.
    reaper: Reaper,
    pub tuning: Tuning,
}

impl Shared {
    pub(crate) fn new(tuning: Tuning) -> Result<Shared, RingError> {
        let cap = tuning.ring_capacity;
        let free = Ring::new(cap, HeapMemory)?;
        for i in 0..cap as u32 {
            // Cannot fail: the ring has exactly `cap` free slots.
            let _ = free.try_push(i);
        }
        Ok(Shared {
            submit: Ring::new(cap, HeapMemory)?,
            complete: Ring::new(cap, HeapMemory)?,
            free,
            jobs: (0..cap).map(|_| Mutex::new(None)).collect(),
            work: Doorbell::new(),
            space: Doorbell::new(),
            reaper: Reaper::new(),
            tuning,
        })
    }

    fn cell(&self, job: u32) -> Option<parking_lot::MutexGuard<'_, Option<Arc<JobState>>>> {
        self.jobs.get(job as usize).map(|m| m.lock())
    }

    /// Chunks for `rows`: about `chunk_rows` each, at most half the ring so that two large
    /// jobs can be queued at once.
    fn chunks(&self, rows: &Range<usize>, chunk_rows: usize) -> (usize, usize) {
        let n = rows.len();
        let max_chunks = (self.tuning.ring_capacity / 2).max(1);
        let want = if chunk_rows == 0 { self.tuning.chunk_rows } else { chunk_rows };
        let size = want.max(1).max(n.div_ceil(max_chunks));
        (n.div_ceil(size).max(1), size)
    }

    /// Puts a job in the table and its chunks on the ring, without blocking.
    pub(crate) fn enqueue(&self, job: Arc<JobState>) -> Result<(), (Arc<JobState>, PushError)> {
        if self.submit.is_closed() {
            return Err((job, PushError::Closed));
        }
        let slot = match self.free.try_pop() {
            Pop::Item(i) => i,
            _ => return Err((job, PushError::Full)),
        };
        let (n, size) = self.chunks(&job.rows, job.chunk_rows);
        job.remaining.store(n as u32, Relaxed);
        if let Some(mut cell) = self.cell(slot) {
            *cell = Some(job.clone());
        }
        let start = job.rows.start;
        let end = job.rows.end;
        let pushed = self.submit.try_push_n(n, |k| SubmitEntry {
            job: slot,
            chunk: k as u32,
            begin: (start + k * size) as u64,
            end: (start + (k + 1) * size).min(end) as u64,
        });
        match pushed {
            Ok(()) => {
                self.work.ring(n > 1);
                Ok(())
            }
            Err(e) => {
                if let Some(mut cell) = self.cell(slot) {
                    *cell = None;
                }
                let _ = self.free.try_push(slot);
                Err((job, e))
            }
        }
    }

    /// True when a job of `rows` would find room now (a hint for sleeping submitters).
    pub(crate) fn has_room(&self, rows: &Range<usize>) -> bool {
        let (n, _) = self.chunks(rows, 0);
        self.submit.is_closed() || (self.free.has_item() && self.submit.len() + n <= self.submit.capacity())
    }

    /// Runs one claimed chunk; the worker that finishes a job's last chunk publishes its
    /// completion.
    fn run_entry(&self, e: SubmitEntry, scratch: &mut Scratch) {
        let Some(job) = self.cell(e.job).and_then(|c| c.clone()) else { return };
        // A stopped job (its ticket or token cancelled, its deadline passed) runs no more
        // chunks; its rows in other workers stop at their next check.
        if self.submit.is_closed() || job.ticket.stop.check().is_some() {
            job.cancelled.store(true, Relaxed);
        } else {
            let rows = e.begin as usize..e.end as usize;
            let since = |job: &JobState| u64::try_from(job.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
            // Timed when a race or placement learns from it (two clock reads a chunk).
            let timed = job.race.is_some() || job.rows.len() >= crate::engine::LEARN_MIN_ROWS;
            if timed {
                job.first_start.fetch_min(since(&job), Relaxed);
            }
            if let Err(err) = job.code.run(&job.prepared, &job.inputs, rows, &job.out, scratch) {
                // Rows that stopped because the job was stopped did not fail.
                if job.ticket.stop.reason().is_some() {
                    job.cancelled.store(true, Relaxed);
                } else {
                    job.fail(err);
                }
            }
            if timed {
                job.last_end.fetch_max(since(&job), Relaxed);
            }
        }
        if job.remaining.fetch_sub(1, AcqRel) != 1 {
            return;
        }
        let failed = job.error.lock().is_some();
        let status = if job.cancelled.load(Relaxed) {
            JobStatus::Cancelled
        } else if failed {
            JobStatus::Failed
        } else {
            JobStatus::Done
        };
        let c = CompletionEntry { job: e.job, status: status as u32, hits: job.out.hits_produced() };
        drop(job);
        self.publish_completion(c);
    }

    fn publish_completion(&self, c: CompletionEntry) {
        // The completion ring has a slot per job-table slot and is never closed, so `Full`
        // only means completions wait to be reaped: reap them and try again.
        while self.complete.try_push(c).is_err() {
            self.reap();
            spin_hint();
        }
        self.reap();
    }

    /// Drains the completion ring, resolving tickets (see [`Reaper`]).
    pub(crate) fn reap(&self) {
        self.reaper.drain(&self.complete, |c| self.finalize(c));
    }

    fn finalize(&self, c: CompletionEntry) {
        let Some(job) = self.cell(c.job).and_then(|mut cell| cell.take()) else { return };
        let _ = self.free.try_push(c.job);
        self.space.ring(true);
        self.settle(job, JobStatus::from_u32(c.status).unwrap_or(JobStatus::Failed));
    }

    /// Turns a finished attempt into the ticket's outcome, or into a re-run when hits
    /// overflowed.
    fn settle(&self, job: Arc<JobState>, status: JobStatus) {
        let outcome = match status {
            JobStatus::Cancelled => Err(JobError::stopped(job.ticket.stop.reason())),
            JobStatus::Failed => {
                let e = job.error.lock().take();
                Err(e.map_or(JobError::stopped(None), JobError::Exec))
            }
            JobStatus::Done => match job.out.finish() {
                Ok(columns) => {
                    job.prepared.note_hits(job.rows.len(), job.out.hits_produced());
                    Ok(JobResult::new(
                        job.prepared.output_names.clone(),
                        columns,
                        job.attempt,
                        job.backend.clone(),
                    )
                    .with_plan(job.plan.clone()))
                }
                Err(FinishError::Overflow(o)) => {
                    let needed = o.needed.iter().map(|&(_, n)| n).max().unwrap_or(0) as usize;
                    job.prepared.note_hits(job.rows.len(), job.out.hits_produced());
                    let outputs = job.prepared.interp.outputs();
                    match crate::plan::rerun_fits(outputs, job.rows.len(), needed, job.budget) {
                        Ok(()) => return self.rerun(&job, needed),
                        Err(e) => Err(JobError::OverBudget(e)),
                    }
                }
                Err(e) => Err(JobError::Output(e)),
            },
        };
        let raced = outcome.is_ok() && job.attempt == 1;
        let span = job.last_end.load(Relaxed).saturating_sub(job.first_start.load(Relaxed));
        if raced {
            job.prepared.note_cpu_time(job.rows.len(), span);
        }
        job.ticket.resolve(outcome);
        // After the ticket: a race's verdict may start a save, which must not delay the job.
        if let Some(race) = job.race.as_ref().filter(|_| raced) {
            race.tuner.report(race, Duration::from_nanos(span));
        }
    }

    /// Runs a job again with room for `needed` hits (see [`Shared::dispatch`]).
    fn rerun(&self, job: &JobState, needed: usize) {
        let mut again = JobState::new(
            job.prepared.clone(),
            job.inputs.clone(),
            job.rows.clone(),
            needed,
            job.ticket.clone(),
            job.attempt + 1,
            job.backend.clone(),
            job.budget,
        );
        again.chunk_rows = job.chunk_rows;
        again.code = job.code.clone();
        again.plan = job.plan.clone();
        self.dispatch(Arc::new(again));
    }

    /// Runs a job without waiting: through the ring if there is room, otherwise right here
    /// (a reaper — this executor's or the GPU's — must not wait on a ring only workers
    /// drain).
    pub(crate) fn dispatch(&self, again: Arc<JobState>) {
        match self.enqueue(again) {
            Ok(()) => {}
            Err((again, PushError::Closed)) => {
                again.ticket.resolve(Err(JobError::stopped(None)));
            }
            Err((again, PushError::Full)) => {
                let mut scratch = Scratch::new();
                let status = match again.code.run(
                    &again.prepared,
                    &again.inputs,
                    again.rows.clone(),
                    &again.out,
                    &mut scratch,
                ) {
                    Ok(()) => JobStatus::Done,
                    Err(_) if again.ticket.stop.reason().is_some() => JobStatus::Cancelled,
                    Err(e) => {
                        again.fail(e);
                        JobStatus::Failed
                    }
                };
                self.settle(again, status);
            }
        }
    }

    /// Closes the ring, wakes everyone, and returns once `workers` have exited and every
    /// job has resolved.
    pub(crate) fn shutdown(&self, workers: Vec<JoinHandle<()>>) {
        self.submit.close();
        self.work.ring_always(true);
        self.space.ring_always(true);
        for w in workers {
            let _ = w.join();
        }
        self.reap();
        // Anything still in the table lost its workers (a worker thread panicked).
        for cell in self.jobs.iter() {
            let job = cell.lock().take();
            if let Some(job) = job {
                job.ticket.resolve(Err(JobError::stopped(None)));
            }
        }
    }
}

/// A worker: claim, run, repeat; spin briefly when idle, then sleep until work is
/// published or the ring is closed.
pub(crate) fn worker(shared: Arc<Shared>) {
    let mut scratch = Scratch::new();
    let mut idle = 0u32;
    loop {
        match shared.submit.try_pop() {
            Pop::Item(e) => {
                idle = 0;
                shared.space.ring(true);
                shared.run_entry(e, &mut scratch);
            }
            Pop::Empty => {
                idle += 1;
                if idle < shared.tuning.spin {
                    spin_hint();
                } else if idle < shared.tuning.spin + 16 {
                    std::thread::yield_now();
                } else {
                    shared.work.sleep_unless(|| shared.submit.has_item() || shared.submit.is_closed());
                    idle = 0;
                }
            }
            Pop::Drained => return,
        }
    }
}
