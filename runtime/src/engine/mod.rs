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
use std::ptr::NonNull;
use std::sync::Arc;

use parking_lot::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use meridian_bytecode::{verify, OutputKind, Program, ProgramHash, VerifiedProgram, VerifyErrors};
use meridian_driver::telemetry::Telemetry;
use meridian_kernels::interp::{BindError, BoundInputs, FinishError, Input, OutputBuffers, Scratch, Stop};

use crate::cuda::executor::{GpuExecutor, GpuJob, GpuSubmitError, GpuTuning};
use crate::cuda::{CudaDevice, Device, DeviceError, PageLock};
use crate::events::{self, Event};
use crate::executor::{self, JobState, Shared, Tuning};
use crate::plan::{self, Plan, RouteReason, Topology};
use crate::ring::{PushError, RingError};
use crate::route::{Code, Route};
use crate::tune::{self, Tuner};
use crate::variants::{Registry, VariantId};
use meridian_autotune::Store;

pub use job::{Bound, CancelCause, CancelToken, Job, JobError, JobResult, Prepared};
pub(crate) use job::{Column, PendingHits, PreparedInner, LEARN_MIN_ROWS};
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

/// The environment variable that sets the mode when neither the builder nor
/// [`set_process_mode`] does.
pub const MODE_ENV: &str = "MERIDIAN_EXECUTION_MODE";

static PROCESS_MODE: Mutex<Option<Mode>> = Mutex::new(None);

/// Sets the mode of engines built from now on in this process whose builder names none:
/// over `MERIDIAN_EXECUTION_MODE`, under [`EngineBuilder::mode`]. `None` clears it.
pub fn set_process_mode(mode: Option<Mode>) {
    *PROCESS_MODE.lock() = mode;
}

/// The mode an engine built now gets with `builder` as its builder's choice, and where it
/// came from: `builder`, `process` ([`set_process_mode`]), `MERIDIAN_EXECUTION_MODE`, or
/// `default`. An invalid `MERIDIAN_EXECUTION_MODE` is an error naming it.
pub fn resolve_mode(builder: Option<Mode>) -> Result<(Mode, &'static str), EngineError> {
    if let Some(m) = builder {
        return Ok((m, "builder"));
    }
    if let Some(m) = *PROCESS_MODE.lock() {
        return Ok((m, "process"));
    }
    match std::env::var(MODE_ENV) {
        Ok(v) => Ok((Mode::parse(&v).ok_or(EngineError::BadModeEnv(v))?, MODE_ENV)),
        Err(_) => Ok((Mode::Auto, "default")),
    }
}

/// The environment variable that sets the memory budget when the builder does not: bytes,
/// with an optional binary suffix (`512MiB`, `2G`).
pub const MEMORY_BUDGET_ENV: &str = "MERIDIAN_MEMORY_BUDGET";

/// Bytes written as digits and an optional binary suffix: `4096`, `64K`, `512MiB`, `2G`,
/// `1TiB` (any case).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        _ => return None,
    };
    n.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// `MERIDIAN_MEMORY_BUDGET`, parsed: `None` when unset, an error naming the variable when it
/// is not a size.
pub fn memory_budget_from_env() -> Result<Option<u64>, EngineError> {
    match std::env::var(MEMORY_BUDGET_ENV) {
        Err(_) => Ok(None),
        Ok(v) => parse_bytes(&v).map(Some).ok_or_else(|| {
            EngineError::Config(format!(
                "{MEMORY_BUDGET_ENV}={v:?} is not a size in bytes (e.g. 512MiB, 2GiB)"
            ))
        }),
    }
}

/// Which backend an engine (or one job) runs on, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// `"cpu"` (the CPU executor) or `"cuda"` (the GPU megakernel).
    pub name: &'static str,
    /// Why: the mode asked for and what the probe found.
    pub reason: String,
    /// True when the engine fell back: from the GPU to the CPU under `auto`, or from the JIT
    /// to the interpreter.
    pub fallback: bool,
    /// What ran the rows: `interp` (the interpreter, on the CPU or in the GPU megakernel) or
    /// `jit` (the program compiled to native code; see [`Route`]).
    pub route: &'static str,
}

/// Why an engine could not be built, or a program prepared or bound.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `MERIDIAN_EXECUTION_MODE` holds something other than auto, cpu or gpu.
    #[error("{MODE_ENV}={0:?} is not one of auto, cpu, gpu")]
    BadModeEnv(String),
    /// `gpu` was asked for and there is no usable device (or it could not be set up).
    #[error("execution mode gpu: {0}")]
    NoGpu(String),
    /// Execution mode `gpu`, and the GPU does not run this program.
    #[error("execution mode gpu: {0}")]
    GpuRefused(String),
    /// An invalid parameter.
    #[error("{0}")]
    Config(String),
    /// Strict mode (`MERIDIAN_STRICT_NATIVE=1`): the engine would have fallen back.
    #[error("{0}")]
    Strict(String),
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

/// Whether a job's program has `sum` outputs: chunks add their sums as they finish, so a
/// race of how jobs are cut would change their rounding; such programs are not raced.
fn has_sums(job: &Job) -> bool {
    job.prepared.program().program().outputs().iter().any(|o| o.kind == OutputKind::Sum)
}

/// The input kinds of a binding, as an autotune key's binding signature: each input's
/// family (or `mixed`) and whether it carries an index.
fn binding_signature(bound: &Bound) -> String {
    bound
        .inner
        .inputs()
        .iter()
        .map(|i| {
            let family =
                i.column.view().family().map_or("mixed".to_owned(), |f| format!("{f:?}").to_lowercase());
            if i.index.is_some() {
                format!("{family}+index")
            } else {
                family
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Jobs of at most this many rows on the CPU route run on the submitting thread
/// ([`EngineBuilder::inline_rows`]): handing a one-row job to a worker and back costs several
/// times the job itself (`cargo bench -p meridian-runtime --bench round_trip`).
pub const INLINE_ROWS: usize = 64;

thread_local! {
    /// The interpreter's registers for jobs run inline on this thread.
    static INLINE_SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::new());
}

/// How long a waiter on a GPU job spins before it parks: longer than a small job's round trip
/// through the megakernel, so the reaper never has to wake it.
const GPU_WAIT_SPIN: Duration = Duration::from_micros(200);

/// Configures an [`Engine`].
#[derive(Clone, Debug)]
pub struct EngineBuilder {
    mode: Option<Mode>,
    workers: Option<usize>,
    chunk_rows: usize,
    ring_capacity: usize,
    spin: u32,
    device: Option<Arc<dyn Device>>,
    gpu_min_rows: Option<usize>,
    gpu: GpuTuning,
    autotune: Option<AutotuneAt>,
    inline_rows: usize,
    strict: Option<bool>,
    route: Route,
    gpu_route: Route,
    memory_budget: Option<u64>,
    telemetry: Option<Arc<Telemetry>>,
    job_timeout: Option<Duration>,
}

/// Where an engine's autotune store is.
#[derive(Clone, Debug)]
enum AutotuneAt {
    /// `MERIDIAN_AUTOTUNE_PATH` or the cache directory; off with `MERIDIAN_AUTOTUNE=off`.
    Env,
    Path(std::path::PathBuf),
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            mode: None,
            workers: None,
            chunk_rows: 16 * 1024,
            ring_capacity: 1024,
            spin: 4096,
            device: None,
            gpu_min_rows: None,
            gpu: GpuTuning::default(),
            autotune: None,
            inline_rows: INLINE_ROWS,
            strict: None,
            route: Route::Auto,
            gpu_route: Route::Interpreter,
            memory_budget: None,
            telemetry: None,
            job_timeout: None,
        }
    }
}

impl EngineBuilder {
    /// What runs CPU jobs' rows (default [`Route::Auto`]: the engine decides per program; see
    /// [`Route`]). Under
    /// [`Route::Jit`] each program is compiled once, on its first job; a program the JIT
    /// cannot compile runs on the interpreter, and its results and an event say why.
    pub fn route(mut self, route: Route) -> Self {
        self.route = route;
        self
    }

    /// What runs GPU jobs' rows (default [`Route::Interpreter`]: the resident megakernel,
    /// holding every SM). `jit` and `auto` launch the megakernel as a latency lane and run
    /// programs' own kernels (the GPU JIT) beside it — under `jit` every GPU job whose program
    /// compiles, under `auto` large jobs of programs that have run enough rows; see
    /// `cuda::programs`. The default stays the megakernel until device runs measure the
    /// lane's cost to small jobs against the kernels' gain on large ones.
    pub fn gpu_route(mut self, route: Route) -> Self {
        self.gpu_route = route;
        self
    }

    /// Under the GPU route `auto`: rows a program's GPU jobs run before its own kernel is
    /// compiled (default 2^20), and the fewest rows a job takes it with (default 2^16).
    pub fn gpu_jit_rows(mut self, hot_rows: u64, min_rows: usize) -> Self {
        self.gpu.jit_hot_rows = hot_rows;
        self.gpu.jit_min_rows = min_rows;
        self
    }

    /// Strict native: a fallback (to the CPU when the GPU was preferred) is an error instead
    /// — the engine does not build, the job fails — and is still recorded as an event
    /// (overrides `MERIDIAN_STRICT_NATIVE`; default off).
    pub fn strict_native(mut self, strict: bool) -> Self {
        self.strict = Some(strict);
        self
    }

    /// Jobs of at most `rows` rows that run on the CPU run on the submitting thread: no ring,
    /// no worker, no wake-up (default [`INLINE_ROWS`]; 0: every job goes through the ring).
    /// `submit` then returns a ticket already resolved; jobs pinned to the GPU (`gpu` mode)
    /// are never taken inline.
    pub fn inline_rows(mut self, rows: usize) -> Self {
        self.inline_rows = rows;
        self
    }

    /// Autotune with the store at `path`: large CPU jobs race rows per claim, winners are
    /// applied and saved, and a stored winner is applied without racing (see `tune`).
    pub fn autotune(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.autotune = Some(AutotuneAt::Path(path.into()));
        self
    }

    /// Autotune with the store at `MERIDIAN_AUTOTUNE_PATH`, else the user's cache directory
    /// (`$XDG_CACHE_HOME` or `~/.cache`, `meridian/autotune.bin`); none when
    /// `MERIDIAN_AUTOTUNE=off`. An engine built without this or [`EngineBuilder::autotune`]
    /// does not autotune: a library writes no file its user did not ask for.
    pub fn autotune_from_env(mut self) -> Self {
        self.autotune = Some(AutotuneAt::Env);
        self
    }

    /// Bytes a job's output buffers may take (dense outputs a row, hit slots; overrides
    /// `MERIDIAN_MEMORY_BUDGET`; default none). A job's hit capacity is cut to fit, and a job
    /// that cannot fit — or whose re-run after an overflow would not — fails with
    /// [`JobError::OverBudget`] before anything is allocated.
    pub fn memory_budget(mut self, bytes: u64) -> Self {
        self.memory_budget = Some(bytes);
        self
    }

    /// A telemetry snapshot to plan with instead of the engine's own, kept as given (not
    /// refreshed): for callers that take their own snapshots, and for tests.
    pub fn telemetry(mut self, snapshot: Telemetry) -> Self {
        self.telemetry = Some(Arc::new(snapshot));
        self
    }

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

    /// Slots in the submission ring (a power of two); also the most jobs in flight. Default
    /// 1024 for the CPU executor; the GPU's ring has 4096 slots and 256 jobs in flight unless
    /// this is set, when it has this many slots and at most 256 jobs.
    pub fn ring_capacity(mut self, slots: usize) -> Self {
        self.ring_capacity = slots;
        self.gpu.ring_capacity = slots;
        self.gpu.job_slots = slots.min(256);
        self
    }

    /// How many times an idle worker or a waiting ticket polls before sleeping (0: sleep at
    /// once). Spinning buys latency with CPU time.
    pub fn spin(mut self, polls: u32) -> Self {
        self.spin = polls;
        self
    }

    /// The device the GPU backend uses instead of opening CUDA device 0: any [`Device`], such
    /// as the host emulator of `meridian-cuda-host` in tests on machines without a GPU.
    pub fn gpu_device(mut self, device: Arc<dyn Device>) -> Self {
        self.device = Some(device);
        self
    }

    /// Under `auto`, the fewest rows a job needs to run on the GPU: a pin that replaces the
    /// cost model of [`crate::place`] (by default, each job goes where the model of its
    /// program's class, its rows, the CPU's workers and what is resident on the device says
    /// it is faster).
    pub fn gpu_min_rows(mut self, rows: usize) -> Self {
        self.gpu_min_rows = Some(rows);
        self
    }

    /// The fewest rows a GPU chunk gets (default 512): a job is split into chunks of at least
    /// this many rows, enough for every block of the megakernel to take some.
    pub fn gpu_chunk_rows(mut self, rows: usize) -> Self {
        self.gpu.min_chunk_rows = rows.max(1);
        self
    }

    /// How long GPU jobs may be in flight with none finishing before the device is declared
    /// hung: every job in flight fails with that reason and the GPU is no longer used
    /// (default 60 s).
    pub fn gpu_timeout(mut self, timeout: Duration) -> Self {
        self.gpu.timeout = timeout;
        self
    }

    /// The time every job may take from its submission unless it says otherwise
    /// ([`Job::timeout`]; default: none). Past it the job is stopped at its next chunk or
    /// candidate-loop check, on whichever executor runs it, and resolves as
    /// [`JobError::TimedOut`].
    pub fn job_timeout(mut self, timeout: Duration) -> Self {
        self.job_timeout = Some(timeout);
        self
    }

    /// Starts the engine: resolves the mode, sets up the GPU when one is wanted and usable,
    /// makes the rings, starts the workers.
    pub fn build(self) -> Result<Engine, EngineError> {
        let (mode, mode_source) = resolve_mode(self.mode)?;
        let workers =
            self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if workers == 0 || workers > 1024 {
            return Err(EngineError::Config(format!("workers must be 1 to 1024, not {workers}")));
        }
        if !self.ring_capacity.is_power_of_two() || !(2..=1 << 24).contains(&self.ring_capacity) {
            return Err(RingError::Capacity(self.ring_capacity).into());
        }
        // Autotune first: a bad MERIDIAN_AUTOTUNE is an error before anything starts.
        let mut tune_notes = Vec::new();
        let tuner = match &self.autotune {
            None => None,
            Some(at) => {
                let path = match at {
                    AutotuneAt::Path(p) => Some(p.clone()),
                    AutotuneAt::Env => {
                        Store::path_from_env().map_err(|e| EngineError::Config(e.to_string()))?
                    }
                };
                match path.map(Store::open) {
                    None => None,
                    Some(Ok(opened)) => {
                        let warnings: Vec<String> = opened.warnings.iter().map(ToString::to_string).collect();
                        Some((opened.store, warnings))
                    }
                    // An unreadable store (permissions, I/O) leaves autotune off, and says so.
                    Some(Err(e)) => {
                        tune_notes.push(format!("warning: autotune is off: {e}"));
                        None
                    }
                }
            }
        };
        let strict = match self.strict {
            Some(s) => s,
            None => events::strict_from_env().map_err(EngineError::Config)?,
        };
        let memory_budget = match self.memory_budget {
            Some(b) => Some(b),
            None => memory_budget_from_env()?,
        };
        let gpu_tuning = GpuTuning { programs: self.gpu_route != Route::Interpreter, ..self.gpu };
        let (backend, gpu) =
            choose_backend(mode, self.device.clone(), gpu_tuning, self.gpu_min_rows, workers, strict)?;
        // The variants, checked before any worker starts.
        let gpu_started = gpu.is_some();
        let gpu_min_rows = if mode == Mode::Gpu { 0 } else { self.gpu_min_rows.unwrap_or(0) };
        let variants = Registry::new(
            self.inline_rows,
            Route::jit_available(),
            gpu_started.then_some(gpu_min_rows),
            gpu_started && self.gpu_route != Route::Interpreter,
        );
        if let Err(why) = variants.check() {
            if let Some(g) = &gpu {
                g.shutdown();
            }
            return Err(EngineError::Config(format!("the variant registry fails its check: {why}")));
        }
        let tuning = Tuning {
            memory_budget,
            workers,
            chunk_rows: self.chunk_rows.max(1),
            ring_capacity: self.ring_capacity,
            spin: self.spin,
        };
        let shared = match Shared::new(tuning) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                if let Some(g) = &gpu {
                    g.shutdown();
                }
                return Err(e.into());
            }
        };
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
                    if let Some(g) = &gpu {
                        g.shutdown();
                    }
                    return Err(EngineError::Spawn(e));
                }
            }
        }
        if let (Some(g), Mode::Auto) = (&gpu, mode) {
            // Jobs the GPU cannot take once routed there (a re-run whose bigger outputs do not
            // fit, a device that failed meanwhile) run on the CPU, as their first attempt
            // would have.
            let cpu = shared.clone();
            g.set_fallback(Box::new(move |job: GpuJob, why: String| {
                let event = Event::new(
                    "job",
                    "gpu",
                    "cpu",
                    &why,
                    format!("{} rows, attempt {}", job.rows.len(), job.attempt),
                );
                events::record(event.clone());
                if strict {
                    job.ticket.resolve(Err(JobError::Strict(events::refused(&event))));
                    return;
                }
                let backend = Arc::new(Backend {
                    name: "cpu",
                    reason: format!("auto: {why}; ran on the CPU executor"),
                    fallback: true,
                    route: "interp",
                });
                cpu.dispatch(Arc::new(JobState::new(
                    job.prepared,
                    job.inputs,
                    job.rows,
                    job.hit_capacity,
                    job.ticket,
                    job.attempt,
                    backend,
                    job.budget,
                )));
            }));
        }
        let cpu_backend = Arc::new(if backend.name == "cpu" {
            backend.clone()
        } else {
            Backend {
                name: "cpu",
                reason: format!("auto: on {workers} CPU workers"),
                fallback: false,
                route: "interp",
            }
        });
        let gpu_backend = Arc::new(backend.clone());
        let tuner = tuner.map(|(store, warnings)| {
            let gpu = gpu.as_ref().map(|g| g.description());
            Arc::new(Tuner::new(store, warnings, self.chunk_rows.max(1), workers, gpu))
        });
        Ok(Engine {
            shared,
            workers: Mutex::new(handles),
            gpu,
            mode,
            gpu_min_rows: self.gpu_min_rows,
            backend,
            cpu_jit_backend: jit_backend(&cpu_backend),
            cpu_backend,
            gpu_backend,
            programs: Mutex::new(HashMap::new()),
            tuner,
            tune_notes,
            inline_rows: self.inline_rows,
            job_timeout: self.job_timeout,
            strict,
            mode_source,
            route: self.route,
            gpu_route: self.gpu_route,
            pressure: std::sync::atomic::AtomicU8::new(0),
            variants,
            telemetry_pinned: self.telemetry.is_some(),
            // An engine with a GPU plans with device memory from the start.
            telemetry: Mutex::new(
                self.telemetry
                    .or_else(|| gpu_started.then(|| Arc::new(meridian_driver::telemetry::snapshot()))),
            ),
        })
    }
}

/// The engine's backend for `mode`, and the GPU executor when it runs jobs there.
fn choose_backend(
    mode: Mode,
    device: Option<Arc<dyn Device>>,
    tuning: GpuTuning,
    min_rows: Option<usize>,
    workers: usize,
    strict: bool,
) -> Result<(Backend, Option<Arc<GpuExecutor>>), EngineError> {
    if mode == Mode::Cpu {
        return Ok((
            Backend {
                name: "cpu",
                reason: "mode cpu was asked for".into(),
                fallback: false,
                route: "interp",
            },
            None,
        ));
    }
    let started = match device {
        Some(d) => Ok(d),
        None => {
            let probe = meridian_driver::probe();
            match probe.unusable() {
                Some(e) => Err(format!("no usable CUDA device ({e})")),
                None => CudaDevice::open(0)
                    .map(|d| Arc::new(d) as Arc<dyn Device>)
                    .map_err(|e| format!("the CUDA device could not be set up: {e}")),
            }
        }
    }
    .and_then(|d| {
        GpuExecutor::start(d, tuning).map_err(|e| format!("the megakernel could not be started: {e}"))
    });
    match (started, mode) {
        (Ok(gpu), Mode::Gpu) => {
            let reason = format!("mode gpu: {}", gpu.description());
            Ok((Backend { name: "cuda", reason, fallback: false, route: "interp" }, Some(gpu)))
        }
        (Ok(gpu), _) => {
            let split = match min_rows {
                Some(n) => format!("jobs of {n} rows or more run on the GPU, smaller ones"),
                None => "each job where the cost model of its program's class says it is faster, \
                         the GPU or"
                    .to_owned(),
            };
            let reason = format!("auto: {}; {split} on {workers} CPU workers", gpu.description());
            Ok((Backend { name: "cuda", reason, fallback: false, route: "interp" }, Some(gpu)))
        }
        (Err(why), Mode::Gpu) => Err(EngineError::NoGpu(why)),
        (Err(why), _) => {
            let event = Event::new(
                "engine",
                "auto (the GPU for large jobs)",
                "cpu",
                &why,
                format!("{workers} CPU workers run every job"),
            );
            events::record(event.clone());
            if strict {
                return Err(EngineError::Strict(events::refused(&event)));
            }
            Ok((
                Backend {
                    name: "cpu",
                    reason: format!("auto: {why}; running on the CPU executor"),
                    fallback: true,
                    route: "interp",
                },
                None,
            ))
        }
    }
}

/// What runs a CPU job's rows, the backend its result names, its part in a route race, and
/// why that route.
type CpuCode = (Code, Arc<Backend>, Option<tune::Entry>, plan::RouteReason);

/// A CPU job's plan with what applying it takes.
struct CpuPlan {
    code: Code,
    backend: Arc<Backend>,
    race: Option<tune::Entry>,
    plan: Arc<Plan>,
}

/// The backend `backend` with the JIT as its route.
fn jit_backend(backend: &Backend) -> Arc<Backend> {
    Arc::new(Backend { route: Route::Jit.name(), ..backend.clone() })
}

impl Engine {
    /// `backend` with the JIT as its route: the engine's own CPU backend's made once (a small
    /// job's round trip must not allocate and copy a reason string for it), others anew.
    fn jit_backend(&self, backend: &Arc<Backend>) -> Arc<Backend> {
        if Arc::ptr_eq(backend, &self.cpu_backend) {
            return self.cpu_jit_backend.clone();
        }
        jit_backend(backend)
    }
}

/// Under [`Route::Auto`] without a route race, a program takes the JIT once this many of its
/// rows have run on the CPU (in all jobs): enough that the compile time (about 0.2–0.6 ms for
/// the examples) is under a tenth of a percent of what the interpreter spent on it.
pub const JIT_HOT_ROWS: u64 = 1 << 20;

/// Where one job goes.
enum Placement {
    Cpu(Arc<Backend>),
    /// The GPU, with the backend (and reason) its result names.
    Gpu(Arc<Backend>),
}

/// A running engine: the CPU executor's workers, its rings, and the prepared programs.
/// `Send + Sync`: share it (`Arc<Engine>` or `&Engine` in scoped threads) and submit from
/// any thread. Dropping it, or [`Engine::shutdown`], resolves every outstanding ticket.
#[derive(Debug)]
pub struct Engine {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    gpu: Option<Arc<GpuExecutor>>,
    mode: Mode,
    gpu_min_rows: Option<usize>,
    backend: Backend,
    /// The backend of jobs the CPU runs by choice, and of jobs the GPU runs.
    cpu_backend: Arc<Backend>,
    /// `cpu_backend` with the JIT as its route.
    cpu_jit_backend: Arc<Backend>,
    gpu_backend: Arc<Backend>,
    programs: Mutex<HashMap<ProgramHash, Arc<PreparedInner>>>,
    tuner: Option<Arc<Tuner>>,
    tune_notes: Vec<String>,
    inline_rows: usize,
    /// Every job's time unless it sets its own ([`EngineBuilder::job_timeout`]).
    job_timeout: Option<Duration>,
    /// Fallbacks are errors (`strict_native`, `MERIDIAN_STRICT_NATIVE`).
    strict: bool,
    mode_source: &'static str,
    route: Route,
    /// What runs GPU jobs' rows: the megakernel (`interp`) or programs' kernels too.
    gpu_route: Route,
    /// The queue's pressure class at the last plan (`plan::Pressure as u8`), for its bands.
    pressure: std::sync::atomic::AtomicU8,
    /// The last telemetry snapshot (none taken yet: `None`), and whether it was given by the
    /// builder (then never refreshed).
    telemetry: Mutex<Option<Arc<Telemetry>>>,
    telemetry_pinned: bool,
    variants: Registry,
}

impl Engine {
    /// A builder with the defaults.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Where the execution mode came from: `builder`, `process`, `MERIDIAN_EXECUTION_MODE`
    /// or `default` (see [`resolve_mode`]).
    pub fn mode_source(&self) -> &'static str {
        self.mode_source
    }

    /// The GPUs as last seen: taken on first use, refreshed by
    /// [`Engine::refresh_telemetry`] (at the chunk boundaries of streamed jobs on an engine
    /// with a GPU), never by a background poller.
    pub fn telemetry(&self) -> Arc<Telemetry> {
        let mut held = self.telemetry.lock();
        held.get_or_insert_with(|| Arc::new(meridian_driver::telemetry::snapshot())).clone()
    }

    /// The variants this engine has, checked when it was built.
    pub fn variants(&self) -> &Registry {
        &self.variants
    }

    /// Whether the engine runs jobs on a GPU (under `gpu`, or `auto` with one).
    pub fn has_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// Page-locks the `len` bytes at `ptr` with the engine's GPU, so that jobs' inputs in that
    /// memory are copied to the device without a bounce through pageable memory; `None`
    /// without a GPU.
    ///
    /// # Safety
    ///
    /// `[ptr, ptr + len)` is live host memory that stays mapped, and is page-locked by no one
    /// else, until the lock is dropped.
    pub unsafe fn page_lock(&self, ptr: NonNull<u8>, len: usize) -> Option<Result<PageLock, DeviceError>> {
        let gpu = self.gpu.as_ref()?;
        // SAFETY: the caller's contract is the device's.
        Some(unsafe { gpu.device().page_lock(ptr, len) })
    }

    /// Takes a new telemetry snapshot (unless the builder gave one) and returns it: NVML's
    /// figures asked again, the CUDA probe's (which do not change while the process runs)
    /// kept, so that a batch boundary costs no driver query beyond NVML's.
    pub fn refresh_telemetry(&self) -> Arc<Telemetry> {
        if self.telemetry_pinned {
            return self.telemetry();
        }
        let probe = self.telemetry().probe.clone();
        let now = Arc::new(Telemetry {
            probe,
            nvml: meridian_driver::telemetry::nvml_state(),
            taken: std::time::SystemTime::now(),
        });
        *self.telemetry.lock() = Some(now.clone());
        now
    }

    /// The memory budget of a job's output buffers, bytes ([`EngineBuilder::memory_budget`]).
    pub fn memory_budget(&self) -> Option<u64> {
        self.shared.tuning.memory_budget
    }

    /// The route CPU jobs take ([`EngineBuilder::route`]).
    pub fn route(&self) -> Route {
        self.route
    }

    /// The route GPU jobs take ([`EngineBuilder::gpu_route`]).
    pub fn gpu_route(&self) -> Route {
        self.gpu_route
    }

    /// The backend jobs run on and why it was chosen.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Rows a streamed input's batches get when the caller does not say, for `bytes_per_row`
    /// staging bytes a row and `batches_held` batches held at once, and why
    /// ([`plan::stream_batch_rows`]: this engine's workers and rows a chunk, its GPU when it
    /// has a healthy one, its memory budget).
    pub fn stream_batch_rows(&self, bytes_per_row: u64, batches_held: usize) -> (usize, plan::BatchReason) {
        let gpu = self.gpu.as_ref().filter(|g| g.unhealthy().is_none()).map(|g| g.grid());
        plan::stream_batch_rows(&plan::BatchInput {
            workers: self.shared.tuning.workers,
            chunk_rows: self.shared.tuning.chunk_rows,
            gpu,
            bytes_per_row,
            batches_held,
            memory_budget: self.shared.tuning.memory_budget,
        })
    }

    /// Worker threads.
    pub fn workers(&self) -> usize {
        self.shared.tuning.workers
    }

    /// The execution mode the engine resolved.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Why the GPU is no longer used, if it failed (under `auto` its jobs then run on the CPU).
    pub fn gpu_unhealthy(&self) -> Option<String> {
        self.gpu.as_ref().and_then(|g| g.unhealthy())
    }

    /// Verifies `program` (once per content hash: a program prepared before is found in the
    /// cache) and decodes it for the executor. Under mode `gpu`, a program the GPU does not
    /// run is an error that says why.
    pub fn prepare(&self, program: &Program) -> Result<Prepared, EngineError> {
        let prepared = match self.cached(program.hash()) {
            Some(p) => p,
            None => self.prepare_verified(&verify(program).map_err(EngineError::Verify)?),
        };
        if let (Mode::Gpu, Some(why)) = (self.mode, prepared.gpu_refusal()) {
            return Err(EngineError::GpuRefused(why.to_owned()));
        }
        Ok(prepared)
    }

    /// Like [`Engine::prepare`] for a program verified already. (Under mode `gpu`, a program
    /// the GPU does not run is prepared, and its jobs fail with the reason.)
    pub fn prepare_verified(&self, program: &VerifiedProgram) -> Prepared {
        if let Some(p) = self.cached(program.hash()) {
            return p;
        }
        let inner = Arc::new(PreparedInner::new(program));
        let mut programs = self.programs.lock();
        let inner = programs.entry(program.hash()).or_insert(inner).clone();
        Prepared { inner }
    }

    fn cached(&self, hash: ProgramHash) -> Option<Prepared> {
        let programs = self.programs.lock();
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

    /// Where `job` runs, or (`Err`) a ticket already resolved with why it cannot run.
    fn place(&self, job: &Job) -> Result<Placement, Ticket> {
        if job.bound.program != job.prepared.inner.program.hash() {
            // Bindings are checked against one program; running them with another is a
            // caller bug that must not reach an executor.
            return Err(resolved(Err(JobError::Mismatch)));
        }
        let Some(gpu) = &self.gpu else { return Ok(Placement::Cpu(self.cpu_backend.clone())) };
        // The GPU variant's admission: its ops (decided once per program) and its row bound.
        let rows_refusal = match self.variants.get(VariantId::GpuInterp) {
            Some(v) => v.admits_rows(job.rows.len()).err().filter(|_| job.rows.len() > v.max_rows),
            None => Some("no GPU variant is registered".to_owned()),
        };
        let refusal = job.prepared.inner.gpu_refusal.as_deref().or(rows_refusal.as_deref());
        let fallback = |why: String| {
            let event = Event::new("job", "gpu", "cpu", &why, format!("{} rows", job.rows.len()));
            events::record(event.clone());
            if self.strict {
                return Err(resolved(Err(JobError::Strict(events::refused(&event)))));
            }
            Ok(Placement::Cpu(Arc::new(Backend {
                name: "cpu",
                reason: format!("auto: {why}; ran on the CPU executor"),
                fallback: true,
                route: "interp",
            })))
        };
        match (self.mode, refusal, gpu.unhealthy()) {
            (Mode::Gpu, Some(why), _) => Err(resolved(Err(JobError::Refused(why.to_owned())))),
            (Mode::Gpu, None, _) => self.gpu_if_it_fits(job, self.gpu_backend.clone(), fallback),
            (_, Some(why), _) => fallback(why.to_owned()),
            (_, None, Some(why)) => fallback(format!("the GPU is no longer used ({why})")),
            (_, None, None) => {
                let (gpu_pays, why) = self.gpu_pays(gpu, job);
                if gpu_pays {
                    let backend = Arc::new(Backend {
                        reason: format!("auto: {why}; ran on {}", gpu.description()),
                        ..(*self.gpu_backend).clone()
                    });
                    return self.gpu_if_it_fits(job, backend, fallback);
                }
                Ok(Placement::Cpu(Arc::new(Backend {
                    name: "cpu",
                    reason: format!("auto: {why}; ran on the CPU executor"),
                    fallback: false,
                    route: "interp",
                })))
            }
        }
    }

    /// Under `auto`, whether the GPU is faster for `job` than the CPU workers
    /// ([`crate::place::prefer_gpu`]: the cost model of its program's class, or the
    /// `gpu_min_rows` pin), and why.
    fn gpu_pays(&self, gpu: &GpuExecutor, job: &Job) -> (bool, crate::place::PlaceReason) {
        let prepared = &job.prepared.inner;
        let rows = job.rows.len();
        let (capacity, _) = self.hit_capacity(job);
        let input = crate::place::PlaceInput {
            class: prepared.class,
            instrs: prepared.program.instrs().len(),
            rows,
            workers: self.shared.tuning.workers,
            upload_bytes: if self.gpu_min_rows.is_some() { 0 } else { gpu.upload_bytes(&job.bound.inner) },
            download_bytes: OutputBuffers::bytes(prepared.interp.outputs(), rows, capacity),
            pinned_min_rows: self.gpu_min_rows,
            measured: prepared.measured_ns_per_row(),
        };
        crate::place::prefer_gpu(&input)
    }

    /// The GPU for `job` when it fits the device memory free; else, under `gpu`, an
    /// [`JobError::OverBudget`] ticket, and under `auto` what `fallback` makes of why.
    fn gpu_if_it_fits(
        &self,
        job: &Job,
        backend: Arc<Backend>,
        fallback: impl FnOnce(String) -> Result<Placement, Ticket>,
    ) -> Result<Placement, Ticket> {
        let Some((need, free)) = self.device_shortfall(job) else { return Ok(Placement::Gpu(backend)) };
        if self.mode == Mode::Gpu {
            return Err(resolved(Err(JobError::OverBudget(plan::OverBudget {
                rows: job.rows.len(),
                needed: need,
                budget: free,
                what: "its columns, indexes and output buffers on the device".into(),
                limit: "the GPU's free memory",
            }))));
        }
        fallback(format!("the job needs about {need} bytes on the device and the GPU has {free} free"))
    }

    /// When `job` would not fit the device memory the last telemetry snapshot says is free:
    /// the bytes it needs there (every input column and index uploaded, none counted as
    /// resident already, and its output buffers) and the bytes free.
    fn device_shortfall(&self, job: &Job) -> Option<(u64, u64)> {
        let free = self.telemetry.lock().as_ref()?.memory_free(0)?;
        let inputs: u64 = job
            .bound
            .inner
            .inputs()
            .iter()
            .map(|i| {
                let index = i.index.as_deref().map_or(0, meridian_kernels::cuda::DeviceIndex::bytes);
                (meridian_kernels::cuda::DeviceColumn::bytes(&i.column) + index) as u64
            })
            .sum();
        let (capacity, _) = self.hit_capacity(job);
        let outputs = OutputBuffers::bytes(job.prepared.inner.interp.outputs(), job.rows.len(), capacity);
        let need = inputs.saturating_add(outputs);
        (need > free).then_some((need, free))
    }

    fn gpu_job(&self, job: &Job, cell: &Arc<TicketCell>, backend: Arc<Backend>) -> Result<GpuJob, JobError> {
        let (wanted, capacity_why) = self.hit_capacity(job);
        let rows = job.rows.len();
        let budget = self.budget_for(job);
        let (hit_capacity, _) = plan::fit_budget(job.prepared.inner.interp.outputs(), rows, wanted, budget)
            .map_err(JobError::OverBudget)?;
        let route = match &self.gpu {
            Some(g) if self.gpu_route != Route::Interpreter => {
                let lines = (g.tuning.jit_hot_rows, g.tuning.jit_min_rows);
                crate::cuda::programs::route(&job.prepared.inner, rows, self.gpu_route, g.device(), lines)
            }
            _ => crate::cuda::programs::GpuRoute { kernel: None, why: RouteReason::Megakernel },
        };
        let (per_block, race, tuned) = match &self.tuner {
            // A program's kernel takes no chunks: nothing of the cut to race.
            _ if route.kernel.is_some() => (plan::GPU_CHUNKS_PER_BLOCK, None, false),
            Some(t) if rows >= tune::RACE_MIN_ROWS && !has_sums(job) => {
                let key = t.key(
                    tune::Knob::GpuChunks,
                    &job.prepared.hash().to_string(),
                    binding_signature(&job.bound),
                    rows,
                );
                let (v, entry) = t.choose(tune::Knob::GpuChunks, key);
                (v, entry.map(Box::new), true)
            }
            _ => (plan::GPU_CHUNKS_PER_BLOCK, None, false),
        };
        let (chunks, chunk_rows, variant, backend) = match &route.kernel {
            Some(k) => {
                let backend = Arc::new(Backend {
                    reason: format!(
                        "{}; the program's own kernel {} ({})",
                        backend.reason,
                        k.kernel(),
                        k.detail()
                    ),
                    route: "jit",
                    ..(*backend).clone()
                });
                (1, rows, VariantId::GpuJit, backend)
            }
            None => {
                let (chunks, chunk_rows) = self.gpu.as_ref().map_or((1, rows), |g| g.chunks(rows, per_block));
                (chunks, chunk_rows, VariantId::GpuInterp, backend)
            }
        };
        let plan = Plan {
            topology: Topology::Gpu { chunks },
            rows,
            chunk_rows,
            hit_capacity,
            pressure: None,
            placement: backend.clone(),
            route_why: route.why,
            cut_why: plan::CutReason::Gpu(per_block, tuned),
            capacity_why,
            budget_cut: budget.filter(|_| hit_capacity < wanted).map(|b| (wanted, b)),
            variant,
        };
        Ok(GpuJob {
            prepared: job.prepared.inner.clone(),
            inputs: job.bound.inner.clone(),
            rows: job.rows.clone(),
            hit_capacity,
            geom_words: 0,
            ticket: cell.clone(),
            attempt: 1,
            backend,
            plan: Some(Arc::new(plan)),
            per_block,
            race,
            kernel: route.kernel,
            budget,
        })
    }

    /// Submits a job, waiting while the ring is full. Fails only when the engine is shut
    /// down (the job comes back).
    pub fn submit(&self, job: Job) -> Result<Ticket, ShutdownError> {
        let placed = self.place(&job);
        self.submit_placed(job, placed)
    }

    /// [`Engine::submit`] of a job already placed (placement costs a residency lookup and a
    /// reason; [`Engine::run`] must not pay them twice).
    fn submit_placed(&self, job: Job, placed: Result<Placement, Ticket>) -> Result<Ticket, ShutdownError> {
        match placed {
            Err(ticket) => Ok(ticket),
            Ok(Placement::Cpu(backend)) => self.submit_cpu(job, backend),
            Ok(Placement::Gpu(backend)) => {
                let Some(gpu) = &self.gpu else { return self.submit_cpu(job, self.cpu_backend.clone()) };
                let cell = Arc::new(TicketCell::new(self.stop_for(&job)));
                let mut gjob = match self.gpu_job(&job, &cell, backend) {
                    Ok(g) => g,
                    Err(e) => return Ok(resolved(Err(e))),
                };
                loop {
                    match gpu.submit(gjob) {
                        Ok(()) => {
                            return Ok(Ticket {
                                cell,
                                spin: self.shared.tuning.spin,
                                spin_for: GPU_WAIT_SPIN,
                            })
                        }
                        Err(GpuSubmitError::Closed(_)) => return Err(ShutdownError(job)),
                        Err(GpuSubmitError::Full(back)) => {
                            gpu.space.sleep_unless(|| gpu.has_room(job.rows.len(), back.per_block));
                            gjob = back;
                        }
                        Err(GpuSubmitError::Unavailable(_, why)) => return self.gpu_unavailable(job, why),
                    }
                }
            }
        }
    }

    /// Submits a job if there is room now; otherwise hands it back.
    pub fn try_submit(&self, job: Job) -> Result<Ticket, TrySubmitError> {
        match self.place(&job) {
            Err(ticket) => Ok(ticket),
            Ok(Placement::Cpu(backend)) => self.try_submit_cpu(job, backend),
            Ok(Placement::Gpu(backend)) => {
                let Some(gpu) = &self.gpu else { return self.try_submit_cpu(job, self.cpu_backend.clone()) };
                let cell = Arc::new(TicketCell::new(self.stop_for(&job)));
                let gjob = match self.gpu_job(&job, &cell, backend) {
                    Ok(g) => g,
                    Err(e) => return Ok(resolved(Err(e))),
                };
                match gpu.submit(gjob) {
                    Ok(()) => Ok(Ticket { cell, spin: self.shared.tuning.spin, spin_for: GPU_WAIT_SPIN }),
                    Err(GpuSubmitError::Full(_)) => Err(TrySubmitError::Full(job)),
                    Err(GpuSubmitError::Closed(_)) => Err(TrySubmitError::Shutdown(job)),
                    // Never waits: under `auto` the CPU takes it only if it has room now.
                    Err(GpuSubmitError::Unavailable(_, why)) => match self.mode {
                        Mode::Gpu => Ok(resolved(Err(JobError::Device(why)))),
                        _ => match self.fall_back(&job, &why) {
                            Some(refusal) => Ok(resolved(Err(refusal))),
                            None => self.try_submit_cpu(job, fallback_backend(why)),
                        },
                    },
                }
            }
        }
    }

    /// The GPU could not take `job`: under `gpu` the job fails with why; under `auto` it runs
    /// on the CPU, and its result says why.
    fn gpu_unavailable(&self, job: Job, why: String) -> Result<Ticket, ShutdownError> {
        if self.mode == Mode::Gpu {
            return Ok(resolved(Err(JobError::Device(why))));
        }
        match self.fall_back(&job, &why) {
            Some(refusal) => Ok(resolved(Err(refusal))),
            None => self.submit_cpu(job, fallback_backend(why)),
        }
    }

    /// Records a job's fall-back from the GPU to the CPU; under strict mode, the error the
    /// job fails with instead.
    fn fall_back(&self, job: &Job, why: &str) -> Option<JobError> {
        let event = Event::new("job", "gpu", "cpu", why, format!("{} rows", job.rows.len()));
        events::record(event.clone());
        self.strict.then(|| JobError::Strict(events::refused(&event)))
    }

    /// What runs a CPU job's rows under the engine's route, the backend its result names,
    /// the job's part in a route race, and why; under strict mode a fallback from the JIT the
    /// job asked for is the job's error instead.
    ///
    /// [`Route::Auto`]: with an autotuner, a large job's route is what the program's route race
    /// says (racing, settled, or loaded from the store); otherwise a program takes the JIT once
    /// it is hot — [`JIT_HOT_ROWS`] rows run on the CPU in all — and keeps it
    /// ([`plan::auto_route`]).
    fn cpu_code(&self, job: &Job, backend: Arc<Backend>) -> Result<CpuCode, JobError> {
        let prepared = &job.prepared.inner;
        let rows = job.rows.len();
        let (want_jit, why) = match self.route {
            Route::Interpreter => (false, RouteReason::Asked(Route::Interpreter.name())),
            Route::Jit => (true, RouteReason::Asked(Route::Jit.name())),
            Route::Auto => {
                let raced = match &self.tuner {
                    Some(t) if rows >= tune::RACE_MIN_ROWS && Route::jit_available() => {
                        let key = t.key(
                            tune::Knob::Route,
                            &job.prepared.hash().to_string(),
                            binding_signature(&job.bound),
                            rows,
                        );
                        Some(t.choose(tune::Knob::Route, key))
                    }
                    _ => None,
                };
                if let Some((route, entry)) = raced {
                    let why = RouteReason::Race { racing: entry.is_some() };
                    return Ok(self.auto_code(job, backend, route == 1, entry, why));
                }
                let before = prepared.note_cpu_rows(rows).saturating_sub(rows as u64);
                let (jit, why) = plan::auto_route(before, rows, JIT_HOT_ROWS, Route::jit_available());
                return Ok(self.auto_code(job, backend, jit, None, why));
            }
        };
        if !want_jit {
            return Ok((Code::Interpreter, backend, None, why));
        }
        match prepared.compiled() {
            Ok(code) => Ok((code, self.jit_backend(&backend), None, why)),
            Err(e) => {
                let detail = format!("program {}", job.prepared.hash().short());
                let event = Event::new("route", "jit", "interp", &e, detail);
                events::record(event.clone());
                if self.strict {
                    return Err(JobError::Strict(events::refused(&event)));
                }
                let reason = format!("{}; route interp: {e}", backend.reason);
                let why = RouteReason::Failed(Box::new(why), e);
                Ok((
                    Code::Interpreter,
                    Arc::new(Backend { reason, fallback: true, ..(*backend).clone() }),
                    None,
                    why,
                ))
            }
        }
    }

    /// The route `auto` chose (`jit` or not), with the job's part in a race: a program the JIT
    /// cannot compile runs on the interpreter, said once per program as an event (the engine
    /// preferred, not the user asked: never an error), and leaves the race.
    fn auto_code(
        &self,
        job: &Job,
        backend: Arc<Backend>,
        jit: bool,
        entry: Option<tune::Entry>,
        why: RouteReason,
    ) -> CpuCode {
        if !jit {
            return (Code::Interpreter, backend, entry, why);
        }
        let prepared = &job.prepared.inner;
        match prepared.compiled() {
            Ok(code) => {
                let entry = entry.map(|mut e| {
                    e.compile_ns = prepared.jit_compile_ns();
                    e
                });
                (code, self.jit_backend(&backend), entry, why)
            }
            Err(e) => {
                if prepared.first_jit_failure() {
                    let detail = format!("program {} (route auto)", job.prepared.hash().short());
                    events::record(Event::new("route", "jit", "interp", &e, detail));
                }
                (Code::Interpreter, backend, None, RouteReason::Failed(Box::new(why), e))
            }
        }
    }

    /// The plan of a CPU job (see [`plan`]): its code and route, the rows race it stands in,
    /// its cut by the queue's pressure, and its hit capacity. Applied as is by the callers.
    fn plan_cpu(&self, job: &Job, backend: Arc<Backend>) -> Result<CpuPlan, JobError> {
        let rows = job.rows.len();
        let (code, backend, route_race, route_why) = self.cpu_code(job, backend)?;
        let (pinned, spread, race) = match &self.tuner {
            // A job stands in one race at a time: rows per claim race once the route is
            // settled, the workers a job spreads over once rows per claim is.
            _ if route_race.is_some() => (None, None, route_race),
            // Sums are added per claim: other claim sizes would round them differently.
            Some(t) if rows >= tune::RACE_MIN_ROWS && !has_sums(job) => {
                let (program, binding) = (job.prepared.hash().to_string(), binding_signature(&job.bound));
                let key = t.key(tune::Knob::RowsPerClaim, &program, binding.clone(), rows);
                let (r, entry) = t.choose(tune::Knob::RowsPerClaim, key);
                match entry {
                    Some(entry) => (Some(r as usize), None, Some(entry)),
                    None if self.shared.tuning.workers > 1 => {
                        let key = t.key(tune::Knob::Workers, &program, binding, rows);
                        let (w, entry) = t.choose(tune::Knob::Workers, key);
                        (Some(r as usize), (w > 0).then_some(w as usize), entry)
                    }
                    None => (Some(r as usize), None, None),
                }
            }
            _ => (None, None, None),
        };
        let pressure = self.pressure();
        let cut = plan::CutInput {
            rows,
            inline_rows: self.inline_rows,
            chunk_rows: self.shared.tuning.chunk_rows,
            pinned,
            workers: self.shared.tuning.workers,
            max_chunks: (self.shared.tuning.ring_capacity / 2).max(1),
            spread,
            pressure,
        };
        let (topology, chunk_rows, cut_why) = plan::cpu_topology(&cut);
        let (wanted, capacity_why) = self.hit_capacity(job);
        let outputs = job.prepared.inner.interp.outputs();
        let budget = self.budget_for(job);
        let (hit_capacity, _) =
            plan::fit_budget(outputs, rows, wanted, budget).map_err(JobError::OverBudget)?;
        let plan = Plan {
            topology,
            rows,
            chunk_rows,
            hit_capacity,
            pressure: Some(pressure),
            placement: backend.clone(),
            route_why,
            cut_why,
            capacity_why,
            budget_cut: budget.filter(|_| hit_capacity < wanted).map(|b| (wanted, b)),
            variant: match (topology, backend.route) {
                (Topology::Inline, _) => VariantId::Inline,
                (_, "jit") => VariantId::CpuJit,
                _ => VariantId::CpuInterp,
            },
        };
        Ok(CpuPlan { code, backend, race, plan: Arc::new(plan) })
    }

    /// The hit capacity of a job's first attempt and why.
    fn hit_capacity(&self, job: &Job) -> (usize, plan::CapacityReason) {
        let prepared = &job.prepared.inner;
        let capacity = prepared.first_hit_capacity(job.rows.len(), job.hit_capacity);
        let why = match (job.hit_capacity, prepared.hits_per_row()) {
            (Some(asked), _) => plan::CapacityReason::Asked(asked),
            (None, Some(rate)) => plan::CapacityReason::Learnt(rate),
            (None, None) => plan::CapacityReason::Assumed,
        };
        (capacity, why)
    }

    /// The queue's pressure now, by the bands of [`plan::Pressure::classify`] from the last.
    fn pressure(&self) -> plan::Pressure {
        use plan::Pressure;
        let prev = match self.pressure.load(std::sync::atomic::Ordering::Relaxed) {
            1 => Pressure::Light,
            2 => Pressure::Balanced,
            3 => Pressure::Saturated,
            _ => Pressure::Empty,
        };
        let now = Pressure::classify(prev, self.shared.submit.len(), self.shared.submit.capacity());
        self.pressure.store(now as u8, std::sync::atomic::Ordering::Relaxed);
        now
    }

    fn submit_cpu(&self, job: Job, backend: Arc<Backend>) -> Result<Ticket, ShutdownError> {
        let plan = match self.plan_cpu(&job, backend) {
            Ok(p) => p,
            Err(e) => return Ok(resolved(Err(e))),
        };
        if plan.plan.topology == Topology::Inline {
            if self.shared.submit.is_closed() {
                return Err(ShutdownError(job));
            }
            return Ok(resolved(self.run_inline(&job, plan)));
        }
        let (mut state, cell) = self.job_state(&job, plan);
        loop {
            match self.shared.enqueue(state) {
                Ok(()) => {
                    return Ok(Ticket { cell, spin: self.shared.tuning.spin, spin_for: Duration::ZERO })
                }
                Err((_, PushError::Closed)) => return Err(ShutdownError(job)),
                Err((s, PushError::Full)) => {
                    self.shared.space.sleep_unless(|| self.shared.has_room(&job.rows));
                    state = s;
                }
            }
        }
    }

    fn try_submit_cpu(&self, job: Job, backend: Arc<Backend>) -> Result<Ticket, TrySubmitError> {
        let plan = match self.plan_cpu(&job, backend) {
            Ok(p) => p,
            Err(e) => return Ok(resolved(Err(e))),
        };
        if plan.plan.topology == Topology::Inline {
            if self.shared.submit.is_closed() {
                return Err(TrySubmitError::Shutdown(job));
            }
            return Ok(resolved(self.run_inline(&job, plan)));
        }
        let (state, cell) = self.job_state(&job, plan);
        match self.shared.enqueue(state) {
            Ok(()) => Ok(Ticket { cell, spin: self.shared.tuning.spin, spin_for: Duration::ZERO }),
            Err((_, PushError::Full)) => Err(TrySubmitError::Full(job)),
            Err((_, PushError::Closed)) => Err(TrySubmitError::Shutdown(job)),
        }
    }

    /// The budget of `job`'s output buffers: its own or the engine's, the smaller.
    fn budget_for(&self, job: &Job) -> Option<u64> {
        match (job.budget, self.shared.tuning.memory_budget) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A stop signal for `job`, from now: its timeout (or the engine's), its token.
    fn stop_for(&self, job: &Job) -> Arc<Stop> {
        Arc::new(Stop::new(job.timeout.or(self.job_timeout), job.token.clone()))
    }

    /// Runs `job` on this thread: what the workers would give, re-runs on hit overflow
    /// included (the same code, outputs and capacity learning).
    fn run_inline(&self, job: &Job, plan: CpuPlan) -> Result<JobResult, JobError> {
        let prepared = &job.prepared.inner;
        let rows = job.rows.clone();
        let stop = self.stop_for(job);
        let stopped = |stop: &Stop| stop.check().map(|r| JobError::stopped(Some(r)));
        let mut capacity = plan.plan.hit_capacity;
        let mut fresh = None;
        INLINE_SCRATCH.with(|cell| {
            // A job submitted from inside another inline job's thread-local use cannot
            // happen today; a fresh scratch keeps it correct if it ever does.
            let mut held = cell.try_borrow_mut().ok();
            let scratch = match held.as_deref_mut() {
                Some(s) => s,
                None => fresh.insert(Scratch::new()),
            };
            for attempt in 1u32.. {
                if let Some(e) = stopped(&stop) {
                    return Err(e);
                }
                let out = prepared.interp.output_buffers(rows.clone(), capacity).with_stop(stop.clone());
                plan.code
                    .run(prepared, &job.bound.inner, rows.clone(), &out, scratch)
                    .map_err(|e| stopped(&stop).unwrap_or(JobError::Exec(e)))?;
                prepared.note_hits(rows.len(), out.hits_produced());
                let finished = out.into_columns();
                match finished {
                    Ok(columns) => {
                        let result = JobResult::new(
                            prepared.output_names.clone(),
                            columns,
                            attempt,
                            plan.backend.clone(),
                        );
                        return Ok(result.with_plan(Some(plan.plan)));
                    }
                    Err(FinishError::Overflow(o)) => {
                        capacity = o.needed.iter().map(|&(_, n)| n).max().unwrap_or(0) as usize;
                        let budget = self.budget_for(job);
                        plan::rerun_fits(prepared.interp.outputs(), rows.len(), capacity, budget)
                            .map_err(JobError::OverBudget)?;
                    }
                    Err(e) => return Err(JobError::Output(e)),
                }
            }
            Err(JobError::stopped(None))
        })
    }

    /// The CPU executor's in-flight state of `job`, as planned.
    fn job_state(&self, job: &Job, plan: CpuPlan) -> (Arc<JobState>, Arc<TicketCell>) {
        let cell = Arc::new(TicketCell::new(self.stop_for(job)));
        let mut state = JobState::new(
            job.prepared.inner.clone(),
            job.bound.inner.clone(),
            job.rows.clone(),
            plan.plan.hit_capacity,
            cell.clone(),
            1,
            plan.backend,
            self.budget_for(job),
        );
        state.code = plan.code;
        state.chunk_rows = plan.plan.chunk_rows;
        state.race = plan.race;
        state.plan = Some(plan.plan);
        (Arc::new(state), cell)
    }

    /// The autotuner, when the engine was built with one ([`EngineBuilder::autotune`]).
    pub fn autotune(&self) -> Option<&Arc<Tuner>> {
        self.tuner.as_ref()
    }

    /// What autotune did so far — keys raced, winners adopted or loaded from the store,
    /// warnings about the store — or why it is off when it was asked for and could not start.
    /// Waits for saves in progress, so that their outcome is in it.
    pub fn autotune_log(&self) -> Vec<String> {
        let mut log = self.tune_notes.clone();
        if let Some(t) = &self.tuner {
            t.flush();
            log.extend(t.log());
        }
        log
    }

    /// Submits and waits: the result of one job. A job for the inline route runs here with
    /// no ticket at all.
    pub fn run(&self, job: Job) -> Result<JobResult, JobError> {
        let placed = self.place(&job);
        if job.rows.len() <= self.inline_rows {
            if let Ok(Placement::Cpu(backend)) = &placed {
                if self.shared.submit.is_closed() {
                    return Err(JobError::stopped(None));
                }
                let plan = self.plan_cpu(&job, backend.clone())?;
                return self.run_inline(&job, plan);
            }
        }
        match self.submit_placed(job, placed) {
            Ok(t) => t.wait(),
            Err(_) => Err(JobError::stopped(None)),
        }
    }

    /// Stops the engine: new submissions fail, queued chunks are cancelled, running chunks
    /// finish, and every outstanding ticket resolves (done or cancelled) before this
    /// returns. Idempotent.
    pub fn shutdown(&self) {
        if let Some(gpu) = &self.gpu {
            gpu.shutdown();
        }
        let handles = std::mem::take(&mut *self.workers.lock());
        self.shared.shutdown(handles);
        // Winners found by this engine's races are on disk before it is gone.
        if let Some(t) = &self.tuner {
            t.flush();
        }
    }
}

/// The backend of a job the GPU could not take under `auto`.
fn fallback_backend(why: String) -> Arc<Backend> {
    Arc::new(Backend {
        name: "cpu",
        reason: format!("auto: {why}; ran on the CPU executor"),
        fallback: true,
        route: "interp",
    })
}

/// A ticket resolved before it was ever queued.
fn resolved(outcome: Result<JobResult, JobError>) -> Ticket {
    let cell = Arc::new(TicketCell::default());
    cell.resolve(outcome);
    Ticket { cell, spin: 0, spin_for: Duration::ZERO }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
