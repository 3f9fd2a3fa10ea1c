//! The resident CPU executor: persistent worker threads that claim chunks from the
//! submission ring, run the interpreter (or the program's JIT code, [`code`]) on them, and
//! publish a completion when a job's last chunk is done; and the host side that turns
//! completions into settled jobs.

pub(crate) mod code;

use std::ops::Range;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use meridian_kernels::interp::{ExecError, FinishError, OutputBuffers, Scratch};
use parking_lot::Mutex;

use crate::doorbell::Doorbell;
use crate::job::{Attempt, Column, Executor, JobError, JobTable, Refused, LEARN_MIN_ROWS};
use crate::ring::{
    CompletionEntry, HeapMemory, JobStatus, Pop, PushError, Reaper, Ring, RingError, SubmitEntry,
};
use crate::sync::spin_hint;
use code::Code;

/// A job for the CPU executor: the attempt, what runs its rows, and rows a claim (0: the
/// executor's cut).
#[derive(Clone, Debug)]
pub(crate) struct CpuJob {
    pub attempt: Attempt,
    pub code: Code,
    pub chunk_rows: usize,
}

/// One job in flight: what to run, where results go, and how far it got.
#[derive(Debug)]
struct JobState {
    job: CpuJob,
    out: OutputBuffers,
    remaining: AtomicU32,
    cancelled: AtomicBool,
    error: Mutex<Option<ExecError>>,
    /// For timed jobs: when its first chunk started and its last chunk ended, in ns after
    /// `born` (its span on the workers).
    first_start: AtomicU64,
    last_end: AtomicU64,
    born: std::time::Instant,
}

impl JobState {
    fn new(job: CpuJob) -> JobState {
        let a = &job.attempt;
        // The job's stop signal rides with its outputs into every chunk's rows.
        let out =
            a.prepared.interp.output_buffers(a.rows.clone(), a.hit_capacity).with_stop(a.ticket.stop.clone());
        JobState {
            job,
            out,
            remaining: AtomicU32::new(0),
            cancelled: AtomicBool::new(false),
            error: Mutex::new(None),
            first_start: AtomicU64::new(u64::MAX),
            last_end: AtomicU64::new(0),
            born: std::time::Instant::now(),
        }
    }

    fn attempt(&self) -> &Attempt {
        &self.job.attempt
    }

    fn fail(&self, e: ExecError) {
        self.error.lock().get_or_insert(e);
    }

    /// Runs `rows` of the job with its code.
    fn run(&self, rows: Range<usize>, scratch: &mut Scratch) -> Result<(), ExecError> {
        let a = self.attempt();
        self.job.code.run(&a.prepared, &a.inputs, rows, &self.out, scratch)
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

impl Tuning {
    /// Chunks for a job of `rows` rows cut in claims of `chunk_rows` (0: the engine's), at
    /// most half the ring so that two large jobs can be queued at once: how many, and rows
    /// each. The plan cuts by the same bound; this is the cut of jobs placed again.
    fn chunks(&self, rows: usize, chunk_rows: usize) -> (usize, usize) {
        let max_chunks = (self.ring_capacity / 2).max(1);
        let want = if chunk_rows == 0 { self.chunk_rows } else { chunk_rows };
        let size = want.max(1).max(rows.div_ceil(max_chunks));
        (rows.div_ceil(size).max(1), size)
    }
}

/// Everything the engine and the workers share.
#[derive(Debug)]
pub(crate) struct Shared {
    submit: Ring<SubmitEntry>,
    complete: Ring<CompletionEntry>,
    jobs: JobTable<Arc<JobState>>,
    /// Workers sleep here when the submission ring is empty.
    work: Doorbell,
    /// Submitters sleep here when the ring or the job table is full.
    space: Doorbell,
    /// Lets one thread at a time drain the completion ring.
    reaper: Reaper,
    tuning: Tuning,
}

/// The CPU executor: its rings and its workers.
#[derive(Debug)]
pub(crate) struct CpuExecutor {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// The workers' parameters, kept here too: planning reads them on every job.
    tuning: Tuning,
}

impl CpuExecutor {
    /// Makes the rings and starts `tuning.workers` workers.
    pub(crate) fn start(tuning: Tuning) -> Result<CpuExecutor, StartError> {
        let cap = tuning.ring_capacity;
        let shared = Arc::new(Shared {
            submit: Ring::new(cap, HeapMemory)?,
            complete: Ring::new(cap, HeapMemory)?,
            jobs: JobTable::new(cap)?,
            work: Doorbell::new(),
            space: Doorbell::new(),
            reaper: Reaper::new(),
            tuning,
        });
        let mut handles = Vec::with_capacity(tuning.workers);
        for i in 0..tuning.workers {
            let s = shared.clone();
            let spawned =
                std::thread::Builder::new().name(format!("meridian-cpu-{i}")).spawn(move || worker(s));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.shutdown(handles);
                    return Err(StartError::Spawn(e));
                }
            }
        }
        Ok(CpuExecutor { shared, workers: Mutex::new(handles), tuning })
    }

    /// Its parameters.
    pub(crate) fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    /// Chunks queued and the ring's capacity (the queue's pressure).
    pub(crate) fn queued(&self) -> (usize, usize) {
        (self.shared.submit.len(), self.shared.submit.capacity())
    }

    /// Whether it is shut down.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.submit.is_closed()
    }

    /// Runs a job without waiting (see [`Shared::dispatch`]): for jobs placed again by a
    /// thread that must not wait on a ring only workers drain.
    pub(crate) fn dispatch(&self, job: CpuJob) {
        self.shared.dispatch(Arc::new(JobState::new(job)));
    }
}

/// Why the CPU executor could not start.
#[derive(Debug)]
pub(crate) enum StartError {
    Ring(RingError),
    Spawn(std::io::Error),
}

impl From<RingError> for StartError {
    fn from(e: RingError) -> StartError {
        StartError::Ring(e)
    }
}

impl Executor for CpuExecutor {
    type Job = CpuJob;

    fn submit(&self, job: CpuJob) -> Result<(), Refused<CpuJob>> {
        self.shared.enqueue(Arc::new(JobState::new(job))).map_err(|(state, e)| {
            // Not queued, so nothing else holds the state (a clone of the job otherwise).
            let job = Arc::try_unwrap(state).map_or_else(|s| s.job.clone(), |s| s.job);
            match e {
                PushError::Full => Refused::Full(job),
                PushError::Closed => Refused::Closed(job),
            }
        })
    }

    fn has_room(&self, job: &CpuJob) -> bool {
        let s = &self.shared;
        let (n, _) = s.tuning.chunks(job.attempt.rows.len(), job.chunk_rows);
        s.submit.is_closed() || (s.jobs.has_free() && s.submit.len() + n <= s.submit.capacity())
    }

    fn space(&self) -> &Doorbell {
        &self.shared.space
    }

    fn shutdown(&self) {
        let handles = std::mem::take(&mut *self.workers.lock());
        self.shared.shutdown(handles);
    }
}

impl Shared {
    /// Puts a job in the table and its chunks on the ring, without blocking.
    fn enqueue(&self, state: Arc<JobState>) -> Result<(), (Arc<JobState>, PushError)> {
        if self.submit.is_closed() {
            return Err((state, PushError::Closed));
        }
        let rows = state.attempt().rows.clone();
        let (n, size) = self.tuning.chunks(rows.len(), state.job.chunk_rows);
        state.remaining.store(n as u32, Relaxed);
        let slot = match self.jobs.insert(state.clone()) {
            Ok(slot) => slot,
            Err(state) => return Err((state, PushError::Full)),
        };
        match self.submit.try_push_n(n, |k| SubmitEntry::chunk(slot, k, &rows, size)) {
            Ok(()) => {
                self.work.ring(n > 1);
                Ok(())
            }
            Err(e) => {
                drop(self.jobs.remove(slot));
                Err((state, e))
            }
        }
    }

    /// Runs one claimed chunk; the worker that finishes a job's last chunk publishes its
    /// completion.
    fn run_entry(&self, e: SubmitEntry, scratch: &mut Scratch) {
        let Some(job) = self.jobs.with(e.job, |j| j.clone()) else { return };
        let stop = &job.attempt().ticket.stop;
        // A stopped job (its ticket or token cancelled, its deadline passed) runs no more
        // chunks; its rows in other workers stop at their next check.
        if self.submit.is_closed() || stop.check().is_some() {
            job.cancelled.store(true, Relaxed);
        } else {
            let rows = e.begin as usize..e.end as usize;
            let since = |job: &JobState| u64::try_from(job.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
            // Timed when a race or placement learns from it (two clock reads a chunk).
            let timed = job.attempt().race.is_some() || job.attempt().rows.len() >= LEARN_MIN_ROWS;
            if timed {
                job.first_start.fetch_min(since(&job), Relaxed);
            }
            if let Err(err) = job.run(rows, scratch) {
                // Rows that stopped because the job was stopped did not fail.
                if stop.reason().is_some() {
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
        let status = if job.cancelled.load(Relaxed) {
            JobStatus::Cancelled
        } else if job.error.lock().is_some() {
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

    /// Drains the completion ring, settling jobs (see [`Reaper`]).
    fn reap(&self) {
        self.reaper.drain(&self.complete, |c| self.finalize(c));
    }

    fn finalize(&self, c: CompletionEntry) {
        let Some(job) = self.jobs.remove(c.job) else { return };
        self.space.ring(true);
        self.settle(job, JobStatus::from_u32(c.status).unwrap_or(JobStatus::Failed));
    }

    /// Settles a finished attempt (see [`Attempt`]): its outcome, or a re-run when hits
    /// overflowed.
    fn settle(&self, state: Arc<JobState>, status: JobStatus) {
        let a = state.attempt();
        let outcome = match status {
            JobStatus::Cancelled => Err(JobError::stopped(a.ticket.stop.reason())),
            JobStatus::Failed => {
                Err(state.error.lock().take().map_or(JobError::stopped(None), JobError::Exec))
            }
            JobStatus::Done => match state.out.finish() {
                Ok(columns) => {
                    a.prepared.note_hits(a.rows.len(), state.out.hits_produced());
                    Ok(a.result(columns.into_iter().map(Column::Ready).collect()))
                }
                Err(FinishError::Overflow(o)) => {
                    let needed = o.needed.iter().map(|&(_, n)| n).max().unwrap_or(0) as usize;
                    match a.overflowed(needed, state.out.hits_produced()) {
                        Ok(()) => {
                            let job = Arc::try_unwrap(state).map_or_else(|s| s.job.clone(), |s| s.job);
                            let again = CpuJob { attempt: job.attempt.again(needed), ..job };
                            return self.dispatch(Arc::new(JobState::new(again)));
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(JobError::Output(e)),
            },
        };
        let span = state.last_end.load(Relaxed).saturating_sub(state.first_start.load(Relaxed));
        a.settle(outcome, Duration::from_nanos(span), |p, rows, ns| p.note_cpu_time(rows, ns));
    }

    /// Runs a job without waiting: through the ring if there is room, otherwise right here
    /// (a reaper — this executor's or the GPU's — must not wait on a ring only workers
    /// drain).
    fn dispatch(&self, state: Arc<JobState>) {
        match self.enqueue(state) {
            Ok(()) => {}
            Err((state, PushError::Closed)) => state.attempt().fail(JobError::stopped(None)),
            Err((state, PushError::Full)) => {
                let mut scratch = Scratch::new();
                let rows = state.attempt().rows.clone();
                let status = match state.run(rows, &mut scratch) {
                    Ok(()) => JobStatus::Done,
                    Err(_) if state.attempt().ticket.stop.reason().is_some() => JobStatus::Cancelled,
                    Err(e) => {
                        state.fail(e);
                        JobStatus::Failed
                    }
                };
                self.settle(state, status);
            }
        }
    }

    /// Closes the ring, wakes everyone, and returns once `workers` have exited and every
    /// job has resolved.
    fn shutdown(&self, workers: Vec<JoinHandle<()>>) {
        self.submit.close();
        self.work.ring_always(true);
        self.space.ring_always(true);
        for w in workers {
            let _ = w.join();
        }
        self.reap();
        // Anything still in the table lost its workers (a worker thread panicked).
        for slot in 0..self.jobs.len() as u32 {
            if let Some(job) = self.jobs.take(slot) {
                job.attempt().fail(JobError::stopped(None));
            }
        }
    }
}

/// A worker: claim, run, repeat; spin briefly when idle, then sleep until work is
/// published or the ring is closed.
fn worker(shared: Arc<Shared>) {
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
