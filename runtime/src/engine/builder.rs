//! [`EngineBuilder`]: an engine's parameters, and starting it — the mode resolved, the GPU
//! set up when one is wanted and usable, the variants checked, the CPU executor's workers
//! started.

use std::sync::atomic::AtomicU8;
use std::sync::Arc;
use std::time::Duration;

use meridian_autotune::Store;
use meridian_driver::telemetry::Telemetry;
use parking_lot::Mutex;

use super::config::{memory_budget_from_env, resolve_mode, EngineError, Mode};
use super::place::{CpuBackends, Requeue};
use super::{Engine, INLINE_ROWS};
use crate::cpu::{CpuExecutor, StartError, Tuning};
use crate::cuda::executor::{GpuExecutor, GpuTuning};
use crate::cuda::{CudaDevice, Device};
use crate::events::{self, Event};
use crate::ring::RingError;
use crate::route::Route;
use crate::tune::Tuner;
use crate::variants::{Backend, Registry, VariantId};

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
    run_label: Option<String>,
    speculative_delay: Option<Duration>,
    jit_in_background: bool,
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
            run_label: None,
            speculative_delay: None,
            inline_rows: INLINE_ROWS,
            jit_in_background: true,
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

    /// Under [`Route::Auto`], whether a program that turns hot is compiled by the JIT on a
    /// thread of its own while its small jobs keep running on the interpreter (default; a job
    /// of [`JIT_WAIT_ROWS`](crate::JIT_WAIT_ROWS) rows or more waits for the compile),
    /// or on the submitting thread by the job that made it hot (that job, and any submitted
    /// meanwhile, wait for the compile: about a millisecond). A route asked for with
    /// [`EngineBuilder::route`]`(Route::Jit)` always compiles on the first job.
    pub fn jit_in_background(mut self, background: bool) -> Self {
        self.jit_in_background = background;
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

    /// How the autotune records this engine applies name its run (default: the process's
    /// command line, cut to 200 characters); `meridian autotune show` lists the last runs
    /// that loaded each record.
    pub fn run_label(mut self, label: impl Into<String>) -> Self {
        self.run_label = Some(label.into());
        self
    }

    /// Fault injection for tests of autotune: every speculative part of a race inside a job
    /// takes `delay` longer on its worker, so that the candidate must lose.
    #[doc(hidden)]
    pub fn slow_speculative_parts(mut self, delay: Duration) -> Self {
        self.speculative_delay = Some(delay);
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

    /// How the megakernel finds and completes jobs (default: [`GpuDispatch::Poller`], or what
    /// `MERIDIAN_GPU_PROTOCOL` names).
    ///
    /// [`GpuDispatch::Poller`]: crate::cuda::GpuDispatch::Poller
    pub fn gpu_dispatch(mut self, dispatch: crate::cuda::GpuDispatch) -> Self {
        self.gpu.protocol = Some(dispatch);
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
        let cpu = match CpuExecutor::start(tuning) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                if let Some(g) = &gpu {
                    g.shutdown();
                }
                return Err(match e {
                    StartError::Ring(e) => e.into(),
                    StartError::Spawn(e) => EngineError::Spawn(e),
                });
            }
        };
        if let (Some(g), Mode::Auto) = (&gpu, mode) {
            // Jobs the GPU cannot take once routed there (a re-run whose bigger outputs do not
            // fit, a device that failed meanwhile) are placed again, on the CPU, as their
            // first attempt would have been.
            g.set_replace(Arc::new(Requeue { cpu: cpu.clone(), strict }));
        }
        let cpu_backend = if backend.on_gpu() {
            Backend::new(VariantId::CpuInterp, format!("auto: on {workers} CPU workers"), false)
        } else {
            backend.clone()
        };
        let gpu_backend = Arc::new(backend.clone());
        let tuner = tuner.map(|(store, warnings)| {
            let gpu = gpu.as_ref().map(|g| g.description());
            let run = self.run_label.clone().unwrap_or_else(command_line);
            let claims = (self.chunk_rows.max(1), workers);
            Arc::new(Tuner::new(store, warnings, claims, gpu, run, self.speculative_delay))
        });
        Ok(Engine {
            cpu,
            gpu,
            mode,
            gpu_min_rows: self.gpu_min_rows,
            backend,
            cpu_backends: CpuBackends::new(cpu_backend),
            gpu_backend,
            id: {
                static ENGINES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                ENGINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
            programs: Mutex::new(Default::default()),
            tuner,
            tune_notes,
            job_timeout: self.job_timeout,
            strict,
            jit_in_background: self.jit_in_background,
            mode_source,
            route: self.route,
            gpu_route: self.gpu_route,
            pressure: AtomicU8::new(0),
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
        return Ok((Backend::new(VariantId::CpuInterp, "mode cpu was asked for", false), None));
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
            Ok((Backend::new(VariantId::GpuInterp, reason, false), Some(gpu)))
        }
        (Ok(gpu), _) => {
            let split = match min_rows {
                Some(n) => format!("jobs of {n} rows or more run on the GPU, smaller ones"),
                None => "each job where the cost model of its program's class says it is faster, \
                         the GPU or"
                    .to_owned(),
            };
            let reason = format!("auto: {}; {split} on {workers} CPU workers", gpu.description());
            Ok((Backend::new(VariantId::GpuInterp, reason, false), Some(gpu)))
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
            let reason = format!("auto: {why}; running on the CPU executor");
            Ok((Backend::new(VariantId::CpuInterp, reason, true), None))
        }
    }
}

/// This process's command line, cut to 200 characters: a run's name in the autotune records
/// it applies.
fn command_line() -> String {
    let mut line = std::env::args_os()
        .enumerate()
        .map(|(i, a)| {
            let a = std::path::PathBuf::from(a);
            // The program by its name, not where it was installed.
            let a = if i == 0 { a.file_name().map(std::path::PathBuf::from).unwrap_or(a) } else { a };
            a.to_string_lossy().into_owned()
        })
        .collect::<Vec<_>>()
        .join(" ");
    if let Some((at, _)) = line.char_indices().nth(200) {
        line.truncate(at);
        line.push('…');
    }
    line
}
