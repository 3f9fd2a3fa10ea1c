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

mod bind;
mod builder;
mod config;
mod inline;
mod place;
mod planner;
mod request;
mod submit;

use std::ptr::NonNull;
use std::sync::atomic::AtomicU8;
use std::sync::Arc;
use std::time::Duration;

use meridian_bytecode::{verify, Program, ProgramHash, VerifiedProgram};
use meridian_driver::telemetry::Telemetry;
use parking_lot::Mutex;

use crate::cpu::CpuExecutor;
use crate::cuda::executor::GpuExecutor;
use crate::cuda::{DeviceError, PageLock};
use crate::job::{ByProgram, Prepared, PreparedInner};
use crate::plan;
use crate::route::Route;
use crate::tune::Tuner;
use crate::variants::{Backend, Registry};
use place::CpuBackends;

pub use bind::Partial;
pub use builder::EngineBuilder;
pub use config::{
    memory_budget_from_env, parse_bytes, resolve_mode, set_process_mode, EngineError, Mode, ShutdownError,
    TrySubmitError, MEMORY_BUDGET_ENV, MODE_ENV,
};
pub use inline::INLINE_ROWS;
pub use planner::{JIT_HOT_ROWS, JIT_WAIT_ROWS};
pub use request::Request;
pub use submit::Submit;

/// A running engine: the CPU executor's workers, its rings, and the prepared programs.
/// `Send + Sync`: share it (`Arc<Engine>` or `&Engine` in scoped threads) and submit from
/// any thread. Dropping it, or [`Engine::shutdown`], resolves every outstanding ticket.
#[derive(Debug)]
pub struct Engine {
    /// This engine among the process's: jobs prepared or bound by another are refused.
    id: u64,
    cpu: Arc<CpuExecutor>,
    gpu: Option<Arc<GpuExecutor>>,
    mode: Mode,
    gpu_min_rows: Option<usize>,
    backend: Backend,
    /// The backends of jobs the CPU runs by choice (interpreted and compiled).
    cpu_backends: CpuBackends,
    /// The backend of jobs the GPU runs.
    gpu_backend: Arc<Backend>,
    programs: Mutex<ByProgram<Arc<PreparedInner>>>,
    tuner: Option<Arc<Tuner>>,
    tune_notes: Vec<String>,
    /// Every job's time unless it sets its own ([`EngineBuilder::job_timeout`]).
    job_timeout: Option<Duration>,
    /// Fallbacks are errors (`strict_native`, `MERIDIAN_STRICT_NATIVE`).
    strict: bool,
    /// Under `auto`, a hot program's JIT compile runs on a thread of its own
    /// ([`EngineBuilder::jit_in_background`]).
    jit_in_background: bool,
    mode_source: &'static str,
    route: Route,
    /// What runs GPU jobs' rows: the megakernel (`interp`) or programs' kernels too.
    gpu_route: Route,
    /// The queue's pressure class at the last plan (`plan::Pressure as u8`), for its bands.
    pressure: AtomicU8,
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
        self.cpu.tuning().memory_budget
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
            workers: self.cpu.tuning().workers,
            chunk_rows: self.cpu.tuning().chunk_rows,
            gpu,
            bytes_per_row,
            batches_held,
            memory_budget: self.cpu.tuning().memory_budget,
        })
    }

    /// Chunks queued on the CPU executor's ring and not yet claimed by a worker or a helping
    /// waiter, and the ring's capacity: the backlog a service may shed load by.
    pub fn cpu_queue(&self) -> (usize, usize) {
        self.cpu.queued()
    }

    /// Worker threads.
    pub fn workers(&self) -> usize {
        self.cpu.tuning().workers
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
        let inner = Arc::new(PreparedInner::new(program, self.id));
        let mut programs = self.programs.lock();
        let inner = programs.entry(program.hash()).or_insert(inner).clone();
        Prepared { inner }
    }

    fn cached(&self, hash: ProgramHash) -> Option<Prepared> {
        let programs = self.programs.lock();
        programs.get(&hash).map(|inner| Prepared { inner: inner.clone() })
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

    /// returns. Idempotent.
    pub fn shutdown(&self) {
        if let Some(gpu) = &self.gpu {
            gpu.shutdown();
        }
        crate::job::Executor::shutdown(&*self.cpu);
        // Winners found by this engine's races, races still open and the records it applied
        // are on disk before it is gone.
        if let Some(t) = &self.tuner {
            t.finish();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
