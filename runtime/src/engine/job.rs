//! Prepared programs, bound inputs, jobs and their results.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use meridian_bytecode::{ProgramHash, VerifiedProgram};

use super::Backend;
use meridian_kernels::interp::{
    hits_from_runs, BoolColumn, BoundInputs, ExecError, F64Column, FinishError, Interpreter, OutputColumn,
    Stop, StopReason,
};

/// What the engine keeps per prepared program.
#[derive(Debug)]
pub(crate) struct PreparedInner {
    pub program: VerifiedProgram,
    pub interp: Interpreter,
    pub output_names: Arc<[String]>,
    /// Why the GPU will not run this program (`None`: it will).
    pub gpu_refusal: Option<String>,
    /// What it spends its rows on, for placement under `auto`.
    pub class: crate::place::ProgramClass,
    /// The program compiled by the JIT, on the first job that asks for it.
    #[cfg(feature = "jit")]
    pub jit: OnceLock<Result<Arc<meridian_kernels::jit::JitProgram>, meridian_kernels::jit::JitError>>,
    /// Whether `hits_per_row` was learnt from a run (or is the starting guess of 1).
    hits_noted: std::sync::atomic::AtomicBool,
    /// Rows of this program run on the CPU so far (what makes it hot for the JIT).
    cpu_rows: AtomicU64,
    /// Set once a failure of the JIT under `auto` has been said.
    jit_failure_said: std::sync::atomic::AtomicBool,
    /// Hits per row seen in the last finished run, as f64 bits: the next job's hit capacity
    /// starts from it, so a program that overflowed once is sized right the next time.
    hits_per_row: AtomicU64,
    /// What this program's jobs measured, ns a row (f64 bits; 0: none yet): on the CPU, a
    /// job's span on the workers over its rows; on the GPU, a job's push-to-reaping time less
    /// the round trip over its rows. Placement under `auto` prefers them to its priors.
    cpu_ns_per_row: AtomicU64,
    gpu_ns_per_row: AtomicU64,
    /// The program's own kernel on the engine's GPU (the GPU JIT route).
    pub gpu_kernel: crate::cuda::programs::ProgramKernel,
}

/// Jobs with fewer rows teach placement nothing (their time is mostly fixed costs).
pub(crate) const LEARN_MIN_ROWS: usize = 8192;

/// A new measurement's weight in the running average.
const LEARN_WEIGHT: f64 = 0.25;

fn learn(avg: &AtomicU64, sample: f64) {
    if !sample.is_finite() || sample <= 0.0 {
        return;
    }
    let old = f64::from_bits(avg.load(Relaxed));
    let new = if old > 0.0 { old + LEARN_WEIGHT * (sample - old) } else { sample };
    avg.store(new.to_bits(), Relaxed);
}

fn learnt(avg: &AtomicU64) -> Option<f64> {
    Some(f64::from_bits(avg.load(Relaxed))).filter(|v| *v > 0.0)
}

impl PreparedInner {
    pub(crate) fn new(program: &VerifiedProgram) -> PreparedInner {
        PreparedInner {
            interp: Interpreter::new(program),
            gpu_refusal: meridian_kernels::cuda::gpu_refusal(program),
            class: crate::place::ProgramClass::of(program),
            output_names: program.program().outputs().iter().map(|o| o.name.clone()).collect(),
            program: program.clone(),
            hits_per_row: AtomicU64::new(1f64.to_bits()),
            hits_noted: std::sync::atomic::AtomicBool::new(false),
            cpu_rows: AtomicU64::new(0),
            cpu_ns_per_row: AtomicU64::new(0),
            gpu_ns_per_row: AtomicU64::new(0),
            jit_failure_said: std::sync::atomic::AtomicBool::new(false),
            gpu_kernel: crate::cuda::programs::ProgramKernel::default(),
            #[cfg(feature = "jit")]
            jit: OnceLock::new(),
        }
    }

    /// Hit capacity for a job of `rows` rows: the last observed rate with 12.5% headroom.
    pub(crate) fn hit_capacity(&self, rows: usize) -> usize {
        let rate = f64::from_bits(self.hits_per_row.load(Relaxed));
        ((rows as f64 * rate * 1.125) as usize).saturating_add(64)
    }

    /// The hit capacity of a job's first attempt: what the job asked for, or the last observed
    /// rate; never more than 1024 per row (at least 2^20): an attempt that needs more runs
    /// again with the count it reported, so a bound here only saves memory.
    pub(crate) fn first_hit_capacity(&self, rows: usize, asked: Option<usize>) -> usize {
        asked.unwrap_or_else(|| self.hit_capacity(rows)).min(rows.saturating_mul(1024).max(1 << 20))
    }

    /// Hits per row seen in the last finished run, `None` before any.
    pub(crate) fn hits_per_row(&self) -> Option<f64> {
        self.hits_noted.load(Relaxed).then(|| f64::from_bits(self.hits_per_row.load(Relaxed)))
    }

    pub(crate) fn note_hits(&self, rows: usize, hits: u64) {
        if rows > 0 {
            self.hits_per_row.store((hits as f64 / rows as f64).to_bits(), Relaxed);
            self.hits_noted.store(true, Relaxed);
        }
    }

    /// A CPU job of `rows` rows spanned `ns` on the workers (first chunk's start to last
    /// chunk's end); small jobs are ignored.
    pub(crate) fn note_cpu_time(&self, rows: usize, ns: u64) {
        if rows >= LEARN_MIN_ROWS {
            learn(&self.cpu_ns_per_row, ns as f64 / rows as f64);
        }
    }

    /// A GPU job of `rows` rows took `ns` from its push to its reaping, `round_trip_ns` of
    /// which any job pays; small jobs are ignored.
    pub(crate) fn note_gpu_time(&self, rows: usize, ns: u64, round_trip_ns: f64) {
        if rows >= LEARN_MIN_ROWS {
            learn(&self.gpu_ns_per_row, (ns as f64 - round_trip_ns).max(0.01) / rows as f64);
        }
    }

    /// What this program's CPU jobs measured (ns a row of a whole job, its workers included)
    /// and its GPU jobs (ns a row past the round trip), when they have.
    pub(crate) fn measured_ns_per_row(&self) -> (Option<f64>, Option<f64>) {
        (learnt(&self.cpu_ns_per_row), learnt(&self.gpu_ns_per_row))
    }

    /// Counts a CPU job's rows; returns the program's total so far, this job's included.
    pub(crate) fn note_cpu_rows(&self, rows: usize) -> u64 {
        let rows = rows as u64;
        self.cpu_rows.fetch_add(rows, Relaxed).saturating_add(rows)
    }

    /// True the first time it is called (so a JIT failure under `auto` is said once).
    pub(crate) fn first_jit_failure(&self) -> bool {
        !self.jit_failure_said.swap(true, Relaxed)
    }

    /// The JIT's compile time of this program in ns (0 before it compiled).
    pub(crate) fn jit_compile_ns(&self) -> f64 {
        #[cfg(feature = "jit")]
        {
            self.jit.get().and_then(|r| r.as_ref().ok()).map_or(0.0, |p| p.compile_time().as_secs_f64() * 1e9)
        }
        #[cfg(not(feature = "jit"))]
        {
            0.0
        }
    }

    /// The program compiled by the JIT (compiled on first use, once per engine), or why not.
    pub(crate) fn compiled(&self) -> Result<crate::route::Code, String> {
        #[cfg(feature = "jit")]
        {
            let compiled = self.jit.get_or_init(|| {
                let r = meridian_kernels::jit::JitProgram::compile(&self.program).map(Arc::new);
                if let Ok(p) = &r {
                    let ms = p.compile_time().as_secs_f64() * 1e3;
                    tracing::debug!(program = %self.program.hash().short(), ms, "compiled by the JIT");
                }
                r
            });
            match compiled {
                Ok(p) => Ok(crate::route::Code::Jit(p.clone())),
                Err(e) => Err(e.to_string()),
            }
        }
        #[cfg(not(feature = "jit"))]
        {
            Err("this build has no JIT (the `jit` feature is off)".to_owned())
        }
    }
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
        #[cfg(feature = "jit")]
        {
            self.inner.jit.get().and_then(|r| r.as_ref().ok()).map(|p| p.compile_time())
        }
        #[cfg(not(feature = "jit"))]
        {
            None
        }
    }

    /// Why the GPU megakernel will not run this program, or `None` when it will.
    pub fn gpu_refusal(&self) -> Option<&str> {
        self.inner.gpu_refusal.as_deref()
    }
}

/// Columns bound to a prepared program's inputs (cheap to clone; share it between jobs).
#[derive(Clone, Debug)]
pub struct Bound {
    pub(crate) inner: Arc<BoundInputs>,
    pub(crate) program: ProgramHash,
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

/// A hits output whose hits are back on the host but not yet put in `(row, id)` order: the
/// order is made the first time the output is read.
#[derive(Debug)]
pub(crate) struct PendingHits {
    keys: Vec<u64>,
    runs: Vec<(usize, usize)>,
    done: OnceLock<OutputColumn>,
}

impl PendingHits {
    /// Hits `keys` (packed `row << 32 | id`) appended in `runs`; fails unless the runs cover
    /// every key exactly once, which is what makes ordering them later infallible.
    pub(crate) fn new(keys: Vec<u64>, runs: Vec<(usize, usize)>) -> Result<PendingHits, String> {
        let mut covered = 0usize;
        for &(start, len) in &runs {
            if start.checked_add(len).is_none_or(|end| end > keys.len()) {
                return Err(format!(
                    "a run of {len} hits at {start} is outside the {} hits produced",
                    keys.len()
                ));
            }
            covered += len;
        }
        if covered != keys.len() {
            return Err(format!("{covered} hits in runs, {} produced", keys.len()));
        }
        Ok(PendingHits { keys, runs, done: OnceLock::new() })
    }

    fn column(&self) -> &OutputColumn {
        self.done.get_or_init(|| {
            let keys = &self.keys;
            // `new` checked that the runs tile the keys, so ordering them cannot miss a hit; if it
            // did, sorting every key gives the same pairs.
            match hits_from_runs(keys.len(), self.runs.clone(), |i| keys.get(i).copied()) {
                Ok(h) => OutputColumn::Hits(h),
                Err(_) => {
                    let mut all = keys.clone();
                    all.sort_unstable();
                    OutputColumn::Hits(all.into_iter().map(|h| ((h >> 32) as u32, h as u32)).collect())
                }
            }
        })
    }
}

/// One output of a finished job.
#[derive(Clone, Debug)]
pub(crate) enum Column {
    Ready(OutputColumn),
    Hits(Arc<PendingHits>),
}

impl Column {
    fn get(&self) -> &OutputColumn {
        match self {
            Column::Ready(c) => c,
            Column::Hits(h) => h.column(),
        }
    }
}

/// The outputs of a finished job, by name, and where it ran.
///
/// Hits from the GPU are ordered into `(row, id)` pairs the first time they are read, not
/// when the job completes (a join's millions of hits cost more to order than to find).
#[derive(Clone, Debug)]
pub struct JobResult {
    names: Arc<[String]>,
    columns: Vec<Column>,
    attempts: u32,
    backend: Arc<Backend>,
    /// Shared with the job's state: a result moves and clones a pointer, not the plan.
    plan: Option<Arc<crate::plan::Plan>>,
}

impl PartialEq for JobResult {
    fn eq(&self, o: &JobResult) -> bool {
        self.names == o.names
            && self.attempts == o.attempts
            && self.backend == o.backend
            && self.columns.len() == o.columns.len()
            && self.columns.iter().zip(&o.columns).all(|(a, b)| a.get() == b.get())
    }
}

impl JobResult {
    pub(crate) fn new(
        names: Arc<[String]>,
        columns: Vec<OutputColumn>,
        attempts: u32,
        backend: Arc<Backend>,
    ) -> JobResult {
        JobResult::with_columns(names, columns.into_iter().map(Column::Ready).collect(), attempts, backend)
    }

    pub(crate) fn with_columns(
        names: Arc<[String]>,
        columns: Vec<Column>,
        attempts: u32,
        backend: Arc<Backend>,
    ) -> JobResult {
        JobResult { names, columns, attempts, backend, plan: None }
    }

    /// The result with the plan its job ran by.
    pub(crate) fn with_plan(mut self, plan: Option<Arc<crate::plan::Plan>>) -> JobResult {
        self.plan = plan;
        self
    }

    /// The plan the job ran by: backend, route, topology, chunk size, hit capacity and why
    /// (what `meridian run --explain` prints). `None` for a streamed job's merged result
    /// (`StreamResult::plans` has its batches') and for a GPU job re-run on the CPU after a
    /// device failure.
    pub fn plan(&self) -> Option<&crate::plan::Plan> {
        self.plan.as_deref()
    }

    /// What ran the rows: `interp` or `jit` (see [`Backend::route`]).
    pub fn route(&self) -> &'static str {
        self.backend.route
    }

    /// Where this job ran and why there (`cpu` or `cuda`; a job can run elsewhere than the
    /// engine's [`Engine::backend`](crate::Engine::backend), e.g. a program the GPU does not
    /// run, under `auto`).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Every output as `(name, column)`, in `.output` order.
    pub fn outputs(&self) -> impl ExactSizeIterator<Item = (&str, &OutputColumn)> {
        self.names.iter().map(String::as_str).zip(self.columns.iter().map(Column::get))
    }

    /// The output called `name`.
    pub fn get(&self, name: &str) -> Option<&OutputColumn> {
        self.names.iter().position(|n| n == name).map(|i| self.columns[i].get())
    }

    /// A hits output: `(row, id)` pairs sorted by row, then id.
    pub fn hits(&self, name: &str) -> Option<&[(u32, u32)]> {
        match self.get(name)? {
            OutputColumn::Hits(h) => Some(h),
            _ => None,
        }
    }

    /// An f64 output.
    pub fn f64(&self, name: &str) -> Option<&F64Column> {
        match self.get(name)? {
            OutputColumn::F64(c) => Some(c),
            _ => None,
        }
    }

    /// A bool output.
    pub fn bool(&self, name: &str) -> Option<&BoolColumn> {
        match self.get(name)? {
            OutputColumn::Bool(c) => Some(c),
            _ => None,
        }
    }

    /// A count output.
    pub fn count(&self, name: &str) -> Option<u64> {
        match self.get(name)? {
            OutputColumn::Count(n) => Some(*n),
            _ => None,
        }
    }

    /// A sum output.
    pub fn sum(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            OutputColumn::Sum(v) => Some(*v),
            _ => None,
        }
    }

    /// How many times the job ran (more than 1 when hits overflowed their first capacity).
    pub fn attempts(&self) -> u32 {
        self.attempts
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
