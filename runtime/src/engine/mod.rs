//! The `Engine` API: prepare a program once, bind columns, submit jobs from any thread,
//! and get results through tickets.
//!
//! ```
//! use std::sync::Arc;
//! use meridian_runtime::bytecode::assemble;
//! use meridian_runtime::kernels::column::ColumnBuilder;
//! use meridian_runtime::{Engine, Mode};
//!
//! let engine = Engine::builder().mode(Mode::Cpu).workers(2).build()?;
//! let program = engine.prepare(assemble("area.masm", "
//!     .program area
//!     .input  shapes polygons
//!     .output area   f64
//!     load  g0, shapes
//!     area  f0, g0
//!     store area, f0
//!     halt
//! ")?.program())?;
//! let mut b = ColumnBuilder::new();
//! b.push_polygon(&[&[(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0), (0.0, 0.0)]])?;
//! b.push_null();
//! let bound = engine.bind(&program, [("shapes", Arc::new(b.finish()))])?;
//! let result = engine.submit(program.job(&bound))?.wait()?;
//! let area = result.f64("area").unwrap();
//! assert_eq!((area.get(0), area.get(1)), (Some(4.0), None));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod job;
mod ticket;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use meridian_bytecode::{verify, Program, ProgramHash, VerifiedProgram, VerifyErrors};
use meridian_kernels::interp::{BindError, BoundInputs, Input};

use crate::executor::{self, JobState, Shared, Tuning};
use crate::ring::{PushError, RingError};

pub(crate) use job::PreparedInner;
pub use job::{Bound, Job, JobError, JobResult, Prepared};
pub use ticket::Ticket;
pub(crate) use ticket::TicketCell;

/// Where jobs run: `auto` picks the best available backend, `cpu` and `gpu` insist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// The GPU when a usable one is present, otherwise the CPU (a recorded fallback).
    #[default]
    Auto,
    /// The CPU executor.
    Cpu,
    /// The CUDA executor; building fails loudly without a usable device.
    Gpu,
}

impl Mode {
    /// Parses `auto`, `cpu` or `gpu`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Mode::Auto),
            "cpu" => Some(Mode::Cpu),
            "gpu" => Some(Mode::Gpu),
            _ => None,
        }
    }
}

/// The environment variable that sets the mode when the builder does not.
pub const MODE_ENV: &str = "MERIDIAN_EXECUTION_MODE";

/// Which backend an engine runs on, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// `"cpu"` (the only executor so far; see docs/architecture.md).
    pub name: &'static str,
    /// Why: the mode asked for and what the probe found.
    pub reason: String,
    /// True when `auto` wanted a GPU and fell back.
    pub fallback: bool,
}

/// Why an engine could not be built, or a program prepared or bound.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `MERIDIAN_EXECUTION_MODE` holds something other than auto, cpu or gpu.
    #[error("{MODE_ENV}={0:?} is not one of auto, cpu, gpu")]
    BadModeEnv(String),
    /// `gpu` was asked for and there is no usable device (or no CUDA executor).
    #[error("execution mode gpu: {0}")]
    NoGpu(String),
    /// An invalid parameter.
    #[error("{0}")]
    Config(String),
    /// The rings could not be made.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// A worker thread could not be started.
    #[error("could not start a worker thread: {0}")]
    Spawn(std::io::Error),
    /// The program failed verification.
    #[error("the program failed verification:\n{0}")]
    Verify(VerifyErrors),
    /// Columns do not fit the program's inputs.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// An input name the program does not declare, or one given twice, or one missing.
    #[error("{0}")]
    InputName(String),
}

/// Why [`Engine::try_submit`] did not take a job; the job comes back.
#[derive(Debug, thiserror::Error)]
pub enum TrySubmitError {
    /// The ring or the job table is full (back-pressure); try again later.
    #[error("the submission ring is full")]
    Full(Job),
    /// The engine is shutting down.
    #[error("the engine is shut down")]
    Shutdown(Job),
}

/// Why [`Engine::submit`] did not take a job; the job comes back.
#[derive(Debug, thiserror::Error)]
#[error("the engine is shut down")]
pub struct ShutdownError(pub Job);

/// Configures an [`Engine`].
#[derive(Clone, Debug)]
pub struct EngineBuilder {
    mode: Option<Mode>,
    workers: Option<usize>,
    chunk_rows: usize,
    ring_capacity: usize,
    spin: u32,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder { mode: None, workers: None, chunk_rows: 16 * 1024, ring_capacity: 1024, spin: 4096 }
    }
}

impl EngineBuilder {
    /// The execution mode (overrides `MERIDIAN_EXECUTION_MODE`; default `auto`).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Worker threads of the CPU executor (default: available parallelism).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Rows per chunk: a job larger than this is split so that several workers share it.
    pub fn chunk_rows(mut self, rows: usize) -> Self {
        self.chunk_rows = rows;
        self
    }

    /// Slots in the submission ring (a power of two); also the most jobs in flight.
    pub fn ring_capacity(mut self, slots: usize) -> Self {
        self.ring_capacity = slots;
        self
    }

    /// How many times an idle worker or a waiting ticket polls before sleeping (0: sleep at
    /// once). Spinning buys latency with CPU time.
    pub fn spin(mut self, polls: u32) -> Self {
        self.spin = polls;
        self
    }

    /// Starts the engine: resolves the mode, makes the rings, starts the workers.
    pub fn build(self) -> Result<Engine, EngineError> {
        let mode = match self.mode {
            Some(m) => m,
            None => match std::env::var(MODE_ENV) {
                Ok(v) => Mode::parse(&v).ok_or(EngineError::BadModeEnv(v))?,
                Err(_) => Mode::Auto,
            },
        };
        let backend = choose_backend(mode)?;
        let workers =
            self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if workers == 0 || workers > 1024 {
            return Err(EngineError::Config(format!("workers must be 1 to 1024, not {workers}")));
        }
        let tuning = Tuning {
            workers,
            chunk_rows: self.chunk_rows.max(1),
            ring_capacity: self.ring_capacity,
            spin: self.spin,
        };
        let shared = Arc::new(Shared::new(tuning)?);
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let s = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("meridian-cpu-{i}"))
                .spawn(move || executor::worker(s));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.shutdown(handles);
                    return Err(EngineError::Spawn(e));
                }
            }
        }
        Ok(Engine { shared, workers: Mutex::new(handles), backend, programs: Mutex::new(HashMap::new()) })
    }
}

fn choose_backend(mode: Mode) -> Result<Backend, EngineError> {
    let cpu = |reason: String, fallback| Ok(Backend { name: "cpu", reason, fallback });
    match mode {
        Mode::Cpu => cpu("mode cpu was asked for".into(), false),
        Mode::Gpu | Mode::Auto => {
            let probe = meridian_driver::probe();
            let why = match probe.unusable() {
                Some(e) => format!("no usable CUDA device ({e})"),
                None => "a CUDA device is present, but the CUDA executor is not built yet".into(),
            };
            if mode == Mode::Gpu {
                Err(EngineError::NoGpu(why))
            } else {
                cpu(format!("auto: {why}; running on the CPU executor"), true)
            }
        }
    }
}

/// A running engine: the CPU executor's workers, its rings, and the prepared programs.
/// `Send + Sync`: share it (`Arc<Engine>` or `&Engine` in scoped threads) and submit from
/// any thread. Dropping it, or [`Engine::shutdown`], resolves every outstanding ticket.
#[derive(Debug)]
pub struct Engine {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    backend: Backend,
    programs: Mutex<HashMap<ProgramHash, Arc<PreparedInner>>>,
}

impl Engine {
    /// A builder with the defaults.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The backend jobs run on and why it was chosen.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Worker threads.
    pub fn workers(&self) -> usize {
        self.shared.tuning.workers
    }

    /// Verifies `program` (once per content hash: a program prepared before is found in the
    /// cache) and decodes it for the executor.
    pub fn prepare(&self, program: &Program) -> Result<Prepared, EngineError> {
        if let Some(p) = self.cached(program.hash()) {
            return Ok(p);
        }
        let verified = verify(program).map_err(EngineError::Verify)?;
        Ok(self.prepare_verified(&verified))
    }

    /// Like [`Engine::prepare`] for a program verified already.
    pub fn prepare_verified(&self, program: &VerifiedProgram) -> Prepared {
        if let Some(p) = self.cached(program.hash()) {
            return p;
        }
        let inner = Arc::new(PreparedInner::new(program));
        let mut programs = self.programs.lock().unwrap_or_else(|p| p.into_inner());
        let inner = programs.entry(program.hash()).or_insert(inner).clone();
        Prepared { inner }
    }

    fn cached(&self, hash: ProgramHash) -> Option<Prepared> {
        let programs = self.programs.lock().unwrap_or_else(|p| p.into_inner());
        programs.get(&hash).map(|inner| Prepared { inner: inner.clone() })
    }

    /// Binds columns to `program`'s inputs by name. A value is a column (`Arc<GeometryColumn>`
    /// or `GeometryColumn`) or an [`Input`] with its index; `indexed` inputs given without
    /// one get an index built here. Checks kinds, lengths and names.
    pub fn bind<N, I>(
        &self,
        program: &Prepared,
        inputs: impl IntoIterator<Item = (N, I)>,
    ) -> Result<Bound, EngineError>
    where
        N: AsRef<str>,
        I: Into<Input>,
    {
        let decls = program.inner.program.program().inputs();
        let mut slots: Vec<Option<Input>> = vec![None; decls.len()];
        for (name, input) in inputs {
            let name = name.as_ref();
            let i = decls
                .iter()
                .position(|d| d.name == name)
                .ok_or_else(|| EngineError::InputName(format!("the program has no input `{name}`")))?;
            if slots[i].is_some() {
                return Err(EngineError::InputName(format!("input `{name}` is bound twice")));
            }
            let mut input: Input = input.into();
            if decls[i].indexed && input.index.is_none() {
                input = Input::indexed(input.column);
            }
            slots[i] = Some(input);
        }
        let mut inputs = Vec::with_capacity(slots.len());
        for (slot, decl) in slots.into_iter().zip(decls) {
            inputs.push(
                slot.ok_or_else(|| EngineError::InputName(format!("input `{}` is not bound", decl.name)))?,
            );
        }
        let bound = BoundInputs::bind(program.inner.program.program(), inputs)?;
        Ok(Bound { inner: Arc::new(bound), program: program.inner.program.hash() })
    }

    /// Submits a job, waiting while the ring is full. Fails only when the engine is shut
    /// down (the job comes back).
    pub fn submit(&self, job: Job) -> Result<Ticket, ShutdownError> {
        let (mut state, cell) = match self.job_state(&job) {
            Ok(s) => s,
            Err(t) => return Ok(t),
        };
        loop {
            match self.shared.enqueue(state) {
                Ok(()) => return Ok(Ticket { cell, spin: self.shared.tuning.spin }),
                Err((_, PushError::Closed)) => return Err(ShutdownError(job)),
                Err((s, PushError::Full)) => {
                    self.shared.space.sleep_unless(|| self.shared.has_room(&job.rows));
                    state = s;
                }
            }
        }
    }

    /// Submits a job if there is room now; otherwise hands it back.
    pub fn try_submit(&self, job: Job) -> Result<Ticket, TrySubmitError> {
        let (state, cell) = match self.job_state(&job) {
            Ok(s) => s,
            Err(t) => return Ok(t),
        };
        match self.shared.enqueue(state) {
            Ok(()) => Ok(Ticket { cell, spin: self.shared.tuning.spin }),
            Err((_, PushError::Full)) => Err(TrySubmitError::Full(job)),
            Err((_, PushError::Closed)) => Err(TrySubmitError::Shutdown(job)),
        }
    }

    /// The in-flight state of `job`, or (`Err`) a ticket already resolved with the reason it
    /// cannot run.
    fn job_state(&self, job: &Job) -> Result<(Arc<JobState>, Arc<TicketCell>), Ticket> {
        let cell = Arc::new(TicketCell::default());
        if job.bound.program != job.prepared.inner.program.hash() {
            // Bindings are checked against one program; running them with another is a
            // caller bug that must not reach the interpreter.
            cell.resolve(Err(JobError::Mismatch));
            return Err(Ticket { cell, spin: 0 });
        }
        let capacity = job.hit_capacity.unwrap_or_else(|| job.prepared.inner.hit_capacity(job.rows.len()));
        let state = JobState::new(
            job.prepared.inner.clone(),
            job.bound.inner.clone(),
            job.rows.clone(),
            capacity,
            cell.clone(),
            1,
        );
        Ok((Arc::new(state), cell))
    }

    /// Submits and waits: the result of one job.
    pub fn run(&self, job: Job) -> Result<JobResult, JobError> {
        match self.submit(job) {
            Ok(t) => t.wait(),
            Err(_) => Err(JobError::Cancelled),
        }
    }

    /// Stops the engine: new submissions fail, queued chunks are cancelled, running chunks
    /// finish, and every outstanding ticket resolves (done or cancelled) before this
    /// returns. Idempotent.
    pub fn shutdown(&self) {
        let handles = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        self.shared.shutdown(handles);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
