//! The job contract both executors and the engine share, and that imports neither: prepared
//! programs, bound inputs, jobs, their results and errors, tickets, cancellation, and a job's
//! life once placed ([`attempt`]: one attempt in flight, and how it settles; [`table`]: the
//! table of jobs in flight each executor keeps).

mod attempt;
mod prepared;
mod result;
mod table;
mod ticket;

use std::ops::Range;
use std::sync::Arc;

use meridian_bytecode::{OutputKind, ProgramHash, VerifiedProgram};
use meridian_kernels::interp::{BoundInputs, ExecError, FinishError, Stop, StopReason};

pub(crate) use attempt::{overflowed, Attempt};
pub(crate) use prepared::{ByProgram, PreparedInner, LEARN_MIN_ROWS};
pub use result::JobResult;
pub(crate) use result::{Column, PendingHits};
pub(crate) use table::JobTable;

use crate::doorbell::Doorbell;
pub use ticket::Ticket;
pub(crate) use ticket::{Help, TicketCell};

/// Why an executor did not take a job; the job comes back.
#[derive(Debug)]
pub(crate) enum Refused<J> {
    /// No room now (a full ring or job table): try again once there is.
    Full(J),
    /// It is shut down.
    Closed(J),
    /// It cannot run the job (a failed device, inputs it could not place), and why: the
    /// engine places the job again.
    Unavailable(J, String),
}

/// What the engine asks of an executor: take a planned job, run it, settle it.
pub(crate) trait Executor {
    /// A job as this executor takes it: an [`Attempt`] with the cut and code its plan chose.
    type Job;

    /// Puts `job` in flight without blocking.
    fn submit(&self, job: Self::Job) -> Result<(), Refused<Self::Job>>;

    /// Whether `job` would find room now (a hint for a waiting submitter).
    fn has_room(&self, job: &Self::Job) -> bool;

    /// Where submitters wait for room.
    fn space(&self) -> &Doorbell;

    /// Stops taking jobs; returns once every job it held has resolved.
    fn shutdown(&self);
}

/// Submits `job` to `exec`; while it is full, waits for room when `wait`, else gives the job
/// back.
pub(crate) fn push<E: Executor>(exec: &E, mut job: E::Job, wait: bool) -> Result<(), Refused<E::Job>> {
    loop {
        match exec.submit(job) {
            Err(Refused::Full(back)) if wait => {
                exec.space().sleep_unless(|| exec.has_room(&back));
                job = back;
            }
            other => return other,
        }
    }
}

/// Where an executor hands a job it took and then could not run (a re-run whose outputs no
/// longer fit the device, a device that failed meanwhile): the engine, which places it again.
pub(crate) trait Replace: Send + Sync {
    /// Places `job` again; `why` its executor gave it back.
    fn replace(&self, job: Attempt, why: String);
}

/// A verified program ready to run on an engine (cheap to clone).
#[derive(Clone, Debug)]
pub struct Prepared {
    pub(crate) inner: Arc<PreparedInner>,
}

impl Prepared {
    /// The verified program.
    pub fn program(&self) -> &VerifiedProgram {
        &self.inner.program
    }

    /// The program's content hash.
    pub fn hash(&self) -> ProgramHash {
        self.inner.program.hash()
    }

    /// A job over every row of `bound`.
    pub fn job(&self, bound: &Bound) -> Job {
        Job {
            prepared: self.clone(),
            bound: bound.clone(),
            rows: 0..bound.rows(),
            hit_capacity: None,
            timeout: None,
            token: None,
            budget: None,
        }
    }

    /// How long the JIT took to compile this program, once a job on the JIT route has
    /// compiled it (`None` before, or when it failed or the JIT is compiled out).
    pub fn jit_compile_time(&self) -> Option<std::time::Duration> {
        let ns = self.inner.jit_compile_ns();
        (ns > 0.0).then(|| std::time::Duration::from_nanos(ns as u64))
    }

    /// The output called `name`, looked up once: reading it from a result
    /// ([`JobResult::column`], [`JobResult::hits_of`]) is then an index, and a misspelt name
    /// is this error when the service starts rather than a `None` on every job.
    pub fn output(&self, name: &str) -> Result<Output, UnknownOutput> {
        let outputs = self.inner.program.program().outputs();
        match outputs.iter().position(|o| o.name == name) {
            Some(index) => Ok(Output { index, kind: outputs[index].kind, name: name.into() }),
            None => Err(UnknownOutput {
                name: name.to_owned(),
                outputs: outputs.iter().map(|o| format!("`{}`", o.name)).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Why the GPU megakernel will not run this program, or `None` when it will.
    pub fn gpu_refusal(&self) -> Option<&str> {
        self.inner.gpu_refusal.as_deref()
    }
}

/// One output of a prepared program, looked up by name once ([`Prepared::output`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub(crate) index: usize,
    kind: OutputKind,
    pub(crate) name: Arc<str>,
}

impl Output {
    /// What it collects.
    pub fn kind(&self) -> OutputKind {
        self.kind
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A name the program does not give its outputs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the program has no output `{name}` (its outputs: {outputs})")]
pub struct UnknownOutput {
    /// The name asked for.
    pub name: String,
    /// The program's outputs, as a list for the message.
    pub outputs: String,
}

/// Columns bound to a prepared program's inputs (cheap to clone; share it between jobs).
#[derive(Clone, Debug)]
pub struct Bound {
    pub(crate) inner: Arc<BoundInputs>,
    pub(crate) program: ProgramHash,
    /// The engine that bound them (its residency and indexes are that engine's).
    pub(crate) engine: u64,
}

impl Bound {
    /// Rows of the row source.
    pub fn rows(&self) -> usize {
        self.inner.rows()
    }
}

/// One unit of work: a prepared program, its bound inputs, and the rows to run.
#[derive(Clone, Debug)]
pub struct Job {
    pub(crate) prepared: Prepared,
    pub(crate) bound: Bound,
    pub(crate) rows: Range<usize>,
    pub(crate) hit_capacity: Option<usize>,
    /// Time the job may take from its submission (over the engine's default).
    pub(crate) timeout: Option<std::time::Duration>,
    /// A caller's token that stops it.
    pub(crate) token: Option<Arc<Stop>>,
    /// A budget for its output buffers tighter than the engine's.
    pub(crate) budget: Option<u64>,
}

impl Job {
    /// Runs only rows `rows` of the row source (clamped to it). Hits keep absolute row
    /// numbers; dense outputs have one entry per row of the range.
    pub fn rows(mut self, rows: Range<usize>) -> Job {
        let n = self.bound.rows();
        self.rows = rows.start.min(n)..rows.end.min(n).max(rows.start.min(n));
        self
    }

    /// The hit capacity of the first attempt (default: sized from the program's last run).
    /// Too small is never wrong: the job runs again with the capacity it reported.
    pub fn hit_capacity(mut self, hits: usize) -> Job {
        self.hit_capacity = Some(hits);
        self
    }

    /// The rows this job runs.
    pub fn row_range(&self) -> Range<usize> {
        self.rows.clone()
    }

    /// The time the job may take from its submission, queueing included (over the engine's
    /// [`EngineBuilder::job_timeout`](crate::EngineBuilder::job_timeout)). Past it the job is
    /// stopped — its CPU workers, JIT code or GPU blocks at their next chunk or
    /// candidate-loop check — and resolves as [`JobError::TimedOut`]; the engine is then as
    /// ready as before for the next job.
    pub fn timeout(mut self, timeout: std::time::Duration) -> Job {
        self.timeout = Some(timeout);
        self
    }

    /// A memory budget for this job's output buffers (the engine's still holds if it is
    /// smaller): its hit capacity is cut to it, and a job whose hits need more fails with
    /// [`JobError::OverBudget`] (a stream runs a batch as several jobs to stay within its
    /// share of the engine's budget).
    pub fn memory_budget(mut self, bytes: u64) -> Job {
        self.budget = Some(bytes);
        self
    }

    /// Stops the job when `token` is cancelled (or its own deadline passes).
    pub fn cancel_with(mut self, token: &CancelToken) -> Job {
        self.token = Some(token.0.clone());
        self
    }
}

/// Who stopped a cancelled job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CancelCause {
    /// The engine shut down before the job finished.
    #[error("the engine shut down")]
    Shutdown,
    /// Its caller: [`Ticket::cancel`](crate::Ticket::cancel) or a [`CancelToken`].
    #[error("the caller cancelled it")]
    Caller,
}

impl JobError {
    /// The error of a job stopped for `reason` (`None`: by the engine's shutdown).
    pub(crate) fn stopped(reason: Option<StopReason>) -> JobError {
        match reason {
            Some(StopReason::Cancelled) => JobError::Cancelled(CancelCause::Caller),
            Some(StopReason::TimedOut(d)) => JobError::TimedOut(d),
            None => JobError::Cancelled(CancelCause::Shutdown),
        }
    }
}

/// A caller's way to stop jobs: give it to jobs ([`Job::cancel_with`]), then
/// [`CancelToken::cancel`] stops every one still running (at the next chunk or candidate-loop
/// check) and resolves them as [`JobError::Cancelled`]; one made with a timeout stops them
/// when it passes, as [`JobError::TimedOut`] (a deadline for a whole run of many jobs).
#[derive(Clone, Debug)]
pub struct CancelToken(pub(crate) Arc<Stop>);

impl CancelToken {
    /// A token without a deadline.
    pub fn new() -> CancelToken {
        CancelToken(Arc::new(Stop::new(None, None)))
    }

    /// A token that stops its jobs `timeout` from now, if nothing cancels it first.
    pub fn with_timeout(timeout: std::time::Duration) -> CancelToken {
        CancelToken(Arc::new(Stop::new(Some(timeout), None)))
    }

    /// Stops every job given this token.
    pub fn cancel(&self) {
        self.0.cancel();
    }

    /// Whether the token has stopped its jobs (cancelled, or its deadline passed), and why.
    pub fn stopped(&self) -> Option<StopReason> {
        self.0.check()
    }
}

impl Default for CancelToken {
    fn default() -> CancelToken {
        CancelToken::new()
    }
}

/// Why a job produced no result.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum JobError {
    /// A row failed (the error names the row and pc).
    #[error("{0}")]
    Exec(ExecError),
    /// The job was stopped before it finished: its ticket or a token it was given was
    /// cancelled, or the engine shut down.
    #[error("cancelled: {0}")]
    Cancelled(CancelCause),
    /// The job ran past its deadline ([`Job::timeout`], [`EngineBuilder::job_timeout`](crate::EngineBuilder::job_timeout),
    /// or a token's): it was stopped, and gives no result.
    #[error("timed out: the job ran past its deadline ({0:?})")]
    TimedOut(std::time::Duration),
    /// The outputs could not be assembled.
    #[error(transparent)]
    Output(FinishError),
    /// The job's bindings were made for another program.
    #[error("the job's inputs were bound for another program")]
    Mismatch,
    /// The job's program was prepared, or its inputs bound, by another engine.
    #[error("the job was prepared or bound by another engine")]
    OtherEngine,
    /// The result was already taken from this ticket.
    #[error("the ticket's result was already taken")]
    ResultTaken,
    /// Execution mode `gpu`, and the GPU does not run this program.
    #[error("execution mode gpu: {0}")]
    Refused(String),
    /// The GPU failed (a device error, a hung kernel, or results that could not be read back);
    /// the engine no longer uses it.
    #[error("the GPU failed: {0}")]
    Device(String),
    /// Strict mode (`MERIDIAN_STRICT_NATIVE=1`): the job would have fallen back to the CPU.
    #[error("{0}")]
    Strict(String),
    /// The job's outputs do not fit the engine's memory budget
    /// ([`EngineBuilder::memory_budget`](crate::EngineBuilder::memory_budget)).
    #[error(transparent)]
    OverBudget(crate::plan::OverBudget),
}
