//! The resident CPU executor: persistent worker threads that claim chunks from the
//! submission ring, run the interpreter (or the program's JIT code, [`code`]) on them, and
//! publish a completion when a job's last chunk is done; and the host side that turns
//! completions into settled jobs.

pub(crate) mod code;
mod steps;

use std::ops::Range;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use meridian_kernels::interp::{ExecError, FinishError, OutputBuffers, Scratch};
use parking_lot::Mutex;

use crate::doorbell::Doorbell;
use crate::job::{Attempt, Column, Executor, Help, JobError, JobTable, Refused, LEARN_MIN_ROWS};
use crate::ring::{
    CompletionEntry, HeapMemory, JobStatus, Pop, PushError, Reaper, Ring, RingError, SubmitEntry,
};
use crate::sync::spin_hint;
use crate::tune::InJob;
use code::Code;
use steps::Steps;

/// A job for the CPU executor: the attempt, what runs its rows, and rows a claim (0: the
/// executor's cut); or, for a job that races inside itself, its races, which decide the
/// code and claims of each of its steps.
#[derive(Clone, Debug)]
pub(crate) struct CpuJob {
    pub attempt: Attempt,
    pub code: Code,
    pub chunk_rows: usize,
    pub races: Option<Arc<InJob>>,
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
    /// A job racing inside itself, queued a step at a time.
    steps: Option<Steps>,
}

impl JobState {
    fn new(job: CpuJob, max_chunks: usize) -> JobState {
        let a = &job.attempt;
        // The job's stop signal rides with its outputs into every chunk's rows.
        let out =
            a.prepared.interp.output_buffers(a.rows.clone(), a.hit_capacity).with_stop(a.ticket.stop.clone());
        JobState {
            out,
            remaining: AtomicU32::new(0),
            cancelled: AtomicBool::new(false),
            error: Mutex::new(None),
            first_start: AtomicU64::new(u64::MAX),
            last_end: AtomicU64::new(0),
            born: std::time::Instant::now(),
            steps: job.races.as_ref().map(|r| Steps::new(r.clone(), a.rows.clone(), max_chunks)),
            job,
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
        self.run_with(self.job.code, rows, scratch)
    }

    /// Runs `rows` of the job with `code`.
    fn run_with(&self, code: Code, rows: Range<usize>, scratch: &mut Scratch) -> Result<(), ExecError> {
        let a = self.attempt();
        code.run(&a.prepared, &a.inputs, rows, &self.out, scratch)
    }

    /// Whether it was stopped or failed (a stepped job queues no more steps then).
    fn ended(&self) -> bool {
        self.cancelled.load(Relaxed)
            || self.attempt().ticket.stop.check().is_some()
            || self.error.lock().is_some()
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
        let max_chunks = self.max_chunks();
        let want = if chunk_rows == 0 { self.chunk_rows } else { chunk_rows };
        let size = want.max(1).max(rows.div_ceil(max_chunks));
        (rows.div_ceil(size).max(1), size)
    }

    /// Most chunks one job (or one step of a job) queues: half the ring.
    fn max_chunks(&self) -> usize {
        (self.ring_capacity / 2).max(1)
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

    /// What a thread waiting on one of this executor's tickets runs chunks through.
    pub(crate) fn helper(&self) -> Arc<dyn Help> {
        self.shared.clone()
    }

    /// Runs a job without waiting (see [`Shared::dispatch`]): for jobs placed again by a
    /// thread that must not wait on a ring only workers drain.
    pub(crate) fn dispatch(&self, job: CpuJob) {
        self.shared.dispatch(Arc::new(JobState::new(job, self.tuning.max_chunks())));
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
        self.shared.enqueue(Arc::new(JobState::new(job, self.tuning.max_chunks()))).map_err(|(state, e)| {
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
    /// Puts a job in the table and its chunks (a job racing inside itself: its first step)
    /// on the ring, without blocking.
    fn enqueue(&self, state: Arc<JobState>) -> Result<(), (Arc<JobState>, PushError)> {
        if self.submit.is_closed() {
            return Err((state, PushError::Closed));
        }
        let slot = match self.jobs.insert(state.clone()) {
            Ok(slot) => slot,
            Err(state) => return Err((state, PushError::Full)),
        };
        let pushed = match state.steps.as_ref() {
            None => {
                let rows = state.attempt().rows.clone();
                let (n, size) = self.tuning.chunks(rows.len(), state.job.chunk_rows);
                state.remaining.store(n as u32, Relaxed);
                state.attempt().ticket.queued(n as isize);
                (n, self.submit.try_push_n(n, |k| SubmitEntry::chunk(slot, k, &rows, size)))
            }
            // A job racing inside itself: its first step. While steps remain to be queued
            // it holds one count of its own in `remaining`, so that it cannot complete
            // between two steps.
            Some(steps) => {
                let Some(first) = steps.plan(slot, &state.attempt().prepared) else {
                    // A job of no rows: complete it as any job's last chunk would.
                    let c = CompletionEntry { job: slot, status: JobStatus::Done as u32, hits: 0 };
                    self.publish_completion(c);
                    return Ok(());
                };
                let n = first.entries.len();
                state.remaining.store((n + usize::from(!first.last)) as u32, Relaxed);
                state.attempt().ticket.queued(n as isize);
                let mut entries = first.entries.into_iter();
                (n, self.submit.try_push_n(n, |_| entries.next().unwrap_or_default()))
            }
        };
        match pushed {
            (n, Ok(())) => {
                self.work.ring(n > 1);
                Ok(())
            }
            (n, Err(e)) => {
                drop(self.jobs.remove(slot));
                state.attempt().ticket.queued(-(n as isize));
                Err((state, e))
            }
        }
    }

    /// A stepped job's next step, queued when its trigger chunk (the last of the step
    /// before) is claimed. A step the ring has no room for runs here, out of its races, and
    /// the next is tried (steps are small: a pair, or at most [`steps::REST_CHUNKS`] chunks);
    /// a stopped or failed job queues nothing more. The job's own count in `remaining` is
    /// given up once nothing is left to queue.
    fn queue_step(&self, slot: u32, job: &JobState, steps: &Steps, scratch: &mut Scratch) {
        loop {
            if job.ended() {
                steps.stop();
                job.remaining.fetch_sub(1, AcqRel);
                return;
            }
            let Some(step) = steps.plan(slot, &job.attempt().prepared) else {
                job.remaining.fetch_sub(1, AcqRel);
                return;
            };
            let n = step.entries.len();
            // Counted before they are on the ring: a worker may finish them before the push
            // returns. This chunk's count and the job's own keep `remaining` above zero.
            job.remaining.fetch_add(n as u32, AcqRel);
            job.attempt().ticket.queued(n as isize);
            let mut entries = step.entries.iter().copied();
            match self.submit.try_push_n(n, |_| entries.next().unwrap_or_default()) {
                Ok(()) => {
                    self.work.ring(n > 1);
                    if step.last {
                        job.remaining.fetch_sub(1, AcqRel);
                    }
                    return;
                }
                Err(PushError::Closed) => {
                    job.attempt().ticket.queued(-(n as isize));
                    job.remaining.fetch_sub(n as u32 + 1, AcqRel);
                    steps.stop();
                    job.cancelled.store(true, Relaxed);
                    return;
                }
                Err(PushError::Full) => {
                    job.attempt().ticket.queued(-(n as isize));
                    job.remaining.fetch_sub(n as u32, AcqRel);
                    let (rows, code) = steps.take_step(&step);
                    if let Err(err) = job.run_with(code, rows, scratch) {
                        if job.attempt().ticket.stop.reason().is_some() {
                            job.cancelled.store(true, Relaxed);
                        } else {
                            job.fail(err);
                        }
                    }
                }
            }
        }
    }

    /// Runs one claimed chunk; the worker that finishes a job's last chunk publishes its
    /// completion.
    fn run_entry(&self, e: SubmitEntry, scratch: &mut Scratch) {
        let Some(job) = self.jobs.with(e.job, |j| j.clone()) else { return };
        job.attempt().ticket.queued(-1);
        let stop = &job.attempt().ticket.stop;
        // A stopped job (its ticket or token cancelled, its deadline passed) runs no more
        // chunks; its rows in other workers stop at their next check.
        if self.submit.is_closed() || stop.check().is_some() {
            job.cancelled.store(true, Relaxed);
            if let Some(steps) = job.steps.as_ref().filter(|s| s.claim(e.chunk).trigger) {
                // Its trigger queues nothing now, and gives up the job's own count.
                self.queue_step(e.job, &job, steps, scratch);
            }
        } else {
            let rows = e.begin as usize..e.end as usize;
            let since = |job: &JobState| u64::try_from(job.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
            // Timed when a race or placement learns from it (two clock reads a chunk).
            let timed = job.attempt().race.is_some() || job.attempt().rows.len() >= LEARN_MIN_ROWS;
            let claim = job.steps.as_ref().map(|steps| {
                let claim = steps.claim(e.chunk);
                if claim.trigger {
                    self.queue_step(e.job, &job, steps, scratch);
                }
                claim
            });
            let timed = timed || claim.is_some();
            let start = if timed { since(&job) } else { 0 };
            if timed {
                job.first_start.fetch_min(start, Relaxed);
            }
            let cpu_start = if claim.is_some() { steps::thread_cpu_ns() } else { 0 };
            let code = claim.as_ref().map_or(job.job.code, |c| c.code);
            let ran = job.run_with(code, rows, scratch);
            if let Some(delay) = claim.as_ref().and_then(|c| c.delay) {
                steps::spin_for(delay);
            }
            let ok = ran.is_ok();
            if let Err(err) = ran {
                // Rows that stopped because the job was stopped did not fail.
                if stop.reason().is_some() {
                    job.cancelled.store(true, Relaxed);
                } else {
                    job.fail(err);
                }
            }
            if timed {
                let end = since(&job);
                job.last_end.fetch_max(end, Relaxed);
                let cpu = steps::thread_cpu_ns().saturating_sub(cpu_start);
                // Rows past the hit capacity are re-run: their parts' times say nothing.
                let overflowing = job.out.hits_produced() > job.attempt().hit_capacity as u64;
                let pair = job.steps.as_ref().and_then(|s| s.finished(e.chunk, cpu, ok && !overflowing));
                for (entry, took) in pair.into_iter().flatten() {
                    entry.tuner.report(&entry, took);
                }
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
                            // A re-run's time says nothing of a race: it runs as planned.
                            let again = CpuJob { attempt: job.attempt.again(needed), races: None, ..job };
                            return self.dispatch(Arc::new(JobState::new(again, self.tuning.max_chunks())));
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

impl Help for Shared {
    fn help_one(&self) -> bool {
        thread_local! {
            /// A helping thread's interpreter state, kept between the chunks it runs.
            static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::new());
        }
        let Pop::Item(e) = self.submit.try_pop() else { return false };
        self.space.ring(true);
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut scratch) => self.run_entry(e, &mut scratch),
            // Borrowed only if this thread helps from inside a chunk it runs, which would
            // take a chunk that waits on a ticket: none does; a fresh scratch if one ever
            // did.
            Err(_) => self.run_entry(e, &mut Scratch::new()),
        });
        true
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
