//! The real device: the megakernel compiled by NVRTC for the GPU found, launched once on a
//! stream of its own, with memory that comes and goes beside it without synchronising the
//! device (stream-ordered allocation on a second stream).

use std::collections::{BTreeMap, HashMap};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use meridian_driver::cudarc::driver::{CudaFunction, CudaGraph, CudaStream, LaunchConfig};
use meridian_driver::{
    keep_pool_memory, launch_and_wait, launch_args, launch_with_pointer, resident_grid, stream_state,
    CacheOutcome, CubinCache, Gpu, GpuError, HostRegistration, MappedHostBuffer, PoolBuffer, StreamState,
};
use meridian_kernels::cuda::{
    jit, megakernel_source, BLOCK_THREADS, MEGAKERNEL, NVRTC_OPTIONS, PER_JOB_KERNEL,
};

use super::device::{
    CompiledProgram, Device, DeviceError, KernelState, PageLock, ProgramArgs, ProgramRunError,
};
use super::heap::{heap_from_env, DeviceHeap, HeapUsage, HEAP_ENV};

/// A one-row job's per-job kernel as an instantiated CUDA graph ([`CudaDevice::capture_rows`]).
pub(crate) struct RowsGraph {
    graph: CudaGraph,
    stream: Arc<CudaStream>,
}

impl RowsGraph {
    /// Launches the graph and waits for it.
    pub(crate) fn run(&self) -> Result<(), DeviceError> {
        self.graph.launch().map_err(|e| DeviceError(format!("cuGraphLaunch: {e}")))?;
        self.stream.synchronize().map_err(|e| DeviceError(format!("cuStreamSynchronize: {e}")))
    }
}

/// Devices (by ordinal) with a `CudaDevice` in this process. One per device: a resident
/// megakernel holds every SM, so a second could never start, and setting one up (a new stream
/// of a fresh context wrapper) would synchronise the device and wait for the first forever.
static OPEN: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// A CUDA GPU running meridian's megakernel.
pub struct CudaDevice {
    gpu: Gpu,
    function: CudaFunction,
    /// `mr_run_rows`: the same work launched once per job (the benchmark baseline).
    per_job: CudaFunction,
    kernel_stream: Arc<CudaStream>,
    copy_stream: Arc<CudaStream>,
    /// Programs' own kernels (the GPU JIT), one at a time, beside the megakernel's lane.
    program_stream: Arc<CudaStream>,
    cache: CubinCache,
    /// The megakernel was launched as a latency lane (programs' kernels may run).
    lane: AtomicBool,
    buffers: Mutex<BTreeMap<u64, PoolBuffer>>,
    /// The memory reserved at the megakernel's launch (one of `buffers`), from which every
    /// later allocation is served while it has room (`super::heap`).
    heap: Mutex<Option<DeviceHeap>>,
    mapped: Mutex<HashMap<usize, MappedHostBuffer>>,
    launched: AtomicBool,
    description: String,
    ordinal: usize,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaDevice").field("device", &self.description).finish()
    }
}

impl CudaDevice {
    /// Opens device `ordinal` and compiles the megakernel for it (NVRTC, cached on disk in
    /// [`CubinCache::default_dir`]); a compile failure carries NVRTC's log.
    pub fn open(ordinal: usize) -> Result<CudaDevice, GpuError> {
        {
            let mut open = OPEN.lock();
            if open.contains(&ordinal) {
                return Err(GpuError::Invalid(
                    "this device already runs the megakernel of another engine in this process (one per device)",
                ));
            }
            open.push(ordinal);
        }
        let opened = CudaDevice::open_unregistered(ordinal);
        if opened.is_err() {
            OPEN.lock().retain(|&o| o != ordinal);
        }
        opened
    }

    fn open_unregistered(ordinal: usize) -> Result<CudaDevice, GpuError> {
        let gpu = Gpu::open(ordinal)?;
        let cache = CubinCache::new(CubinCache::default_dir());
        let cap = register_cap()?;
        let cap_option = cap.map(|n| format!("--maxrregcount={n}"));
        let mut options = NVRTC_OPTIONS.to_vec();
        options.extend(cap_option.as_deref());
        let (cubin, _) = cache.get_or_compile("megakernel.cu", &megakernel_source(), gpu.arch(), &options)?;
        let module = gpu.load(&cubin)?;
        let function = module
            .load_function(MEGAKERNEL)
            .map_err(|source| GpuError::Driver { what: "loading the megakernel", source })?;
        let per_job = module
            .load_function(PER_JOB_KERNEL)
            .map_err(|source| GpuError::Driver { what: "loading the per-job kernel", source })?;
        let kernel_stream = gpu.stream()?;
        let copy_stream = gpu.stream()?;
        let program_stream = gpu.stream()?;
        // Best effort: without it freed memory goes back to the system and allocation is slower.
        let _ = keep_pool_memory(&gpu);
        let info = gpu.info();
        // The driver is part of what a GPU autotune record was measured on (its adapter).
        let driver = meridian_driver::installed_driver_version()
            .map(|v| format!(", CUDA driver {v}"))
            .unwrap_or_default();
        let description = format!(
            "{} (sm_{}{}, {} SMs, {:.0} GiB{driver}){}",
            info.name,
            info.compute_capability.0,
            info.compute_capability.1,
            info.sms,
            info.memory_bytes as f64 / (1u64 << 30) as f64,
            cap.map(|c| format!(", {REGISTERS_ENV}: {c}")).unwrap_or_default()
        );
        Ok(CudaDevice {
            gpu,
            function,
            per_job,
            kernel_stream,
            copy_stream,
            program_stream,
            cache,
            lane: AtomicBool::new(false),
            buffers: Mutex::new(BTreeMap::new()),
            heap: Mutex::new(None),
            mapped: Mutex::new(HashMap::new()),
            launched: AtomicBool::new(false),
            description,
            ordinal,
        })
    }

    /// The opened GPU.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The device heap's state (`None` before the launch, or with no heap).
    pub fn heap_usage(&self) -> Option<HeapUsage> {
        self.heap.lock().as_ref().map(DeviceHeap::usage)
    }

    /// Reserves the device heap, just before the megakernel's launch: `MERIDIAN_GPU_HEAP_MIB`,
    /// or by default half the memory free now (the rest stays to the stream-ordered allocator,
    /// for what does not fit, and to other users of the device). None with a size of 0.
    fn reserve_heap(&self) -> Result<(), DeviceError> {
        let bytes = match heap_from_env().map_err(DeviceError)? {
            Some(bytes) => bytes,
            None => {
                let (free, _) = self.gpu.memory().map_err(gpu_err)?;
                (free as u64 / 2) & !((1 << 20) - 1)
            }
        };
        if bytes == 0 {
            return Ok(());
        }
        let len = usize::try_from(bytes).map_err(|_| DeviceError(format!("a heap of {bytes} bytes")))?;
        let buf = PoolBuffer::new(&self.gpu, &self.copy_stream, len)
            .map_err(|e| DeviceError(format!("reserving the device heap ({} MiB): {e}", bytes >> 20)))?;
        let heap = DeviceHeap::new(buf.device_ptr(), bytes);
        self.buffers.lock().insert(buf.device_ptr(), buf);
        *self.heap.lock() = Some(heap);
        Ok(())
    }

    /// Launches the per-job kernel (`mr_run_rows`) over rows `[begin, end)`, one thread per
    /// row, and waits for it: the baseline of `meridian bench roundtrip`. Not while the
    /// megakernel runs (it holds every SM).
    ///
    /// # Safety
    ///
    /// The addresses must be device (or mapped) addresses of a program record, an input
    /// table, an output table with buffers for rows `[rows_begin, end)`, 64 accumulators and
    /// an error record, all live until this returns.
    #[allow(clippy::too_many_arguments)] // the kernel's parameters
    pub(crate) unsafe fn run_rows(
        &self,
        program: u64,
        inputs: u64,
        outputs: u64,
        rows_begin: u64,
        begin: u64,
        end: u64,
        acc: u64,
        error: u64,
    ) -> Result<(), DeviceError> {
        let cfg = self.per_job_grid(begin, end)?;
        // SAFETY: `mr_run_rows` takes eight 64-bit parameters in this order; the caller
        // guarantees the addresses.
        unsafe {
            launch_and_wait(
                &self.per_job,
                cfg,
                &self.kernel_stream,
                &[program, inputs, outputs, rows_begin, begin, end, acc, error],
            )
        }
        .map_err(gpu_err)
    }

    /// The per-job kernel's grid over rows `[begin, end)`, a thread a row; an error while the
    /// megakernel runs (no other kernel could start beside it).
    fn per_job_grid(&self, begin: u64, end: u64) -> Result<LaunchConfig, DeviceError> {
        if self.launched.load(Ordering::SeqCst) {
            return Err(DeviceError(
                "the megakernel runs on this device: a per-job kernel cannot start".into(),
            ));
        }
        let blocks = (end.saturating_sub(begin)).div_ceil(u64::from(BLOCK_THREADS)).max(1);
        let blocks = u32::try_from(blocks).map_err(|_| DeviceError(format!("{blocks} blocks: too many")))?;
        Ok(LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (BLOCK_THREADS, 1, 1), shared_mem_bytes: 0 })
    }

    /// Launches the per-job kernel `n` times over rows `[begin, end)` and waits once: the
    /// throughput baseline of `meridian bench roundtrip` (launches queued back to back, no
    /// synchronisation a job). Not while the megakernel runs.
    ///
    /// # Safety
    ///
    /// As [`CudaDevice::run_rows`].
    #[allow(clippy::too_many_arguments)] // the kernel's parameters
    pub(crate) unsafe fn run_rows_queued(
        &self,
        n: usize,
        program: u64,
        inputs: u64,
        outputs: u64,
        rows_begin: u64,
        begin: u64,
        end: u64,
        acc: u64,
        error: u64,
    ) -> Result<(), DeviceError> {
        let cfg = self.per_job_grid(begin, end)?;
        for _ in 0..n {
            // SAFETY: as in `run_rows`: eight 64-bit parameters, addresses the caller's.
            unsafe {
                launch_args(
                    &self.per_job,
                    cfg,
                    &self.kernel_stream,
                    &[program, inputs, outputs, rows_begin, begin, end, acc, error],
                )
            }
            .map_err(gpu_err)?;
        }
        self.kernel_stream.synchronize().map_err(|e| DeviceError(format!("cuStreamSynchronize: {e}")))
    }

    /// The per-job kernel over rows `[begin, end)` captured once into a CUDA graph: the
    /// graph-launch line of `meridian bench roundtrip` (a launch of the graph and a
    /// synchronisation a job, [`RowsGraph::run`]). Not while the megakernel runs.
    ///
    /// # Safety
    ///
    /// As [`CudaDevice::run_rows`], for as long as the graph is run.
    #[allow(clippy::too_many_arguments)] // the kernel's parameters
    pub(crate) unsafe fn capture_rows(
        &self,
        program: u64,
        inputs: u64,
        outputs: u64,
        rows_begin: u64,
        begin: u64,
        end: u64,
        acc: u64,
        error: u64,
    ) -> Result<RowsGraph, DeviceError> {
        use meridian_driver::cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
        let cfg = self.per_job_grid(begin, end)?;
        let stream = &self.kernel_stream;
        let driver = |what: &'static str| move |e| DeviceError(format!("{what}: {e}"));
        stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(driver("cuStreamBeginCapture"))?;
        // SAFETY: as in `run_rows`: eight 64-bit parameters, addresses the caller's. Captured,
        // not run: the graph runs it.
        let launched = unsafe {
            launch_args(
                &self.per_job,
                cfg,
                stream,
                &[program, inputs, outputs, rows_begin, begin, end, acc, error],
            )
        };
        // The capture ends whether or not the launch was recorded, so the stream is usable after.
        let graph = stream.end_capture(CUgraphInstantiate_flags(0)).map_err(driver("cuStreamEndCapture"))?;
        launched.map_err(gpu_err)?;
        let graph = graph.ok_or_else(|| DeviceError("cuStreamEndCapture captured no graph".into()))?;
        graph.upload().map_err(driver("cuGraphUpload"))?;
        Ok(RowsGraph { graph, stream: stream.clone() })
    }

    /// The allocation holding `[ptr, ptr + len)` and the offset of `ptr` in it.
    fn locate(
        buffers: &BTreeMap<u64, PoolBuffer>,
        ptr: u64,
        len: usize,
    ) -> Result<(&PoolBuffer, usize), DeviceError> {
        let (base, buf) = buffers
            .range(..=ptr)
            .next_back()
            .ok_or_else(|| DeviceError(format!("device address {ptr:#x} is not in an allocation")))?;
        let offset = (ptr - base) as usize;
        if offset.checked_add(len).is_none_or(|end| end > buf.len()) {
            return Err(DeviceError(format!("a copy of {len} bytes at {ptr:#x} runs past its allocation")));
        }
        Ok((buf, offset))
    }
}

/// The environment variable capping the megakernel's registers per thread.
pub const REGISTERS_ENV: &str = "MERIDIAN_GPU_REGISTERS";

/// `MERIDIAN_GPU_REGISTERS=N` (32 to 255): compile the megakernel with at most N registers per
/// thread. The interpreter's deepest path takes 255, which leaves room for two blocks of 128
/// threads per SM; a cap trades spills for more warps in flight, and which wins is a
/// measurement (`meridian bench pip`), not a guess.
pub fn register_cap() -> Result<Option<u32>, GpuError> {
    match std::env::var(REGISTERS_ENV) {
        Err(_) => Ok(None),
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => match v.parse::<u32>() {
            Ok(n) if (32..=255).contains(&n) => Ok(Some(n)),
            _ => Err(GpuError::Invalid("MERIDIAN_GPU_REGISTERS must be a whole number from 32 to 255")),
        },
    }
}

/// The environment variable that chooses how programs' own kernels take the point join's
/// fast path ([`JoinPath`]).
pub const JIT_JOIN_PATH_ENV: &str = "MERIDIAN_GPU_JIT_JOIN_PATH";

/// How programs' own kernels take the point join's fast path (`MERIDIAN_GPU_JIT_JOIN_PATH`):
/// the designs of 2026-12-07, 12-05 and before, kept selectable in one binary until a device
/// run has timed them side by side (docs/benchmarks/2026-12-07-join-kernels.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JoinPath {
    /// `split` (the default): a point join's kernel in two (`jit::split_join`) — the fast path
    /// alone (46–48 registers, at most 32 B of stack on sm_90; its pairs in row order), then
    /// the general kernel over the rows it leaves (the 214-register kernel, for few rows).
    #[default]
    Split,
    /// `join`: the fast path and the general path in one point join's kernel; other
    /// programs' kernels without it.
    Join,
    /// `always`: every program's kernel with the fast path behind its run-time test (212–228
    /// registers and up to 2 KB of stack a thread; docs/benchmarks/2026-12-05-kernel-resources.md).
    Always,
}

impl JoinPath {
    /// The setting of `MERIDIAN_GPU_JIT_JOIN_PATH`.
    pub fn from_env() -> Result<JoinPath, DeviceError> {
        JoinPath::parse(std::env::var(JIT_JOIN_PATH_ENV).ok().as_deref())
    }

    /// The setting a value of the variable names (`None`: not set).
    pub fn parse(value: Option<&str>) -> Result<JoinPath, DeviceError> {
        match value {
            None | Some("") | Some("split") => Ok(JoinPath::Split),
            Some("join") => Ok(JoinPath::Join),
            Some("always") => Ok(JoinPath::Always),
            Some(other) => {
                Err(DeviceError(format!("{JIT_JOIN_PATH_ENV}={other:?} is not one of split, join, always")))
            }
        }
    }
}

/// A point join's split kernels ([`JoinPath::Split`]): the fast path's, then the general one's.
struct SplitKernels {
    fast: CudaFunction,
    general: CudaFunction,
}

impl Drop for CudaDevice {
    fn drop(&mut self) {
        OPEN.lock().retain(|&o| o != self.ordinal);
    }
}

fn gpu_err(e: GpuError) -> DeviceError {
    DeviceError(e.to_string())
}

impl Device for CudaDevice {
    fn describe(&self) -> String {
        match self.heap_usage() {
            Some(h) => format!("{}, a device heap of {} MiB", self.description, h.bytes >> 20),
            None => self.description.clone(),
        }
    }

    fn block_threads(&self) -> u32 {
        BLOCK_THREADS
    }

    fn alloc(&self, len: usize) -> Result<u64, DeviceError> {
        if let Some(heap) = self.heap.lock().as_mut() {
            if let Some(ptr) = heap.take(len as u64) {
                return Ok(ptr);
            }
            let usage = heap.usage();
            if usage.outside == 1 {
                // Said once: from here the resident kernel may be handed memory that memcheck
                // flags (correct, but not what the heap is for).
                crate::events::record(crate::events::Event::new(
                    "memory",
                    "the device heap",
                    "the stream-ordered allocator",
                    format!(
                        "{len} bytes do not fit in the device heap ({} of {} MiB in use)",
                        usage.used >> 20,
                        usage.bytes >> 20
                    ),
                    format!("{HEAP_ENV} sizes the heap reserved at the megakernel's launch"),
                ));
            }
        }
        let buf = PoolBuffer::new(&self.gpu, &self.copy_stream, len.max(1)).map_err(gpu_err)?;
        let ptr = buf.device_ptr();
        self.buffers.lock().insert(ptr, buf);
        Ok(ptr)
    }

    unsafe fn free(&self, ptr: u64) {
        if self.heap.lock().as_mut().is_some_and(|heap| heap.give(ptr)) {
            return;
        }
        // Dropping the buffer frees it (stream ordered).
        drop(self.buffers.lock().remove(&ptr));
    }

    unsafe fn write(&self, dst: u64, src: &[u8]) -> Result<(), DeviceError> {
        let buffers = self.buffers.lock();
        let (buf, offset) = Self::locate(&buffers, dst, src.len())?;
        buf.write(offset, src).map_err(gpu_err)
    }

    unsafe fn zero(&self, dst: u64, len: usize) -> Result<(), DeviceError> {
        let buffers = self.buffers.lock();
        let (buf, offset) = Self::locate(&buffers, dst, len)?;
        buf.zero(offset, len).map_err(gpu_err)
    }

    unsafe fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), DeviceError> {
        let buffers = self.buffers.lock();
        let (buf, offset) = Self::locate(&buffers, src, dst.len())?;
        buf.read(offset, dst).map_err(gpu_err)
    }

    fn alloc_mapped(&self, len: usize) -> Result<(NonNull<u8>, u64), DeviceError> {
        let buf = MappedHostBuffer::new(&self.gpu, len).map_err(gpu_err)?;
        let host =
            NonNull::new(buf.as_ptr()).ok_or_else(|| DeviceError("cuMemHostAlloc gave null".into()))?;
        let dev = buf.device_ptr();
        self.mapped.lock().insert(host.as_ptr() as usize, buf);
        Ok((host, dev))
    }

    unsafe fn free_mapped(&self, host: NonNull<u8>) {
        drop(self.mapped.lock().remove(&(host.as_ptr() as usize)));
    }

    fn launch(&self, control: u64, lane: bool) -> Result<u32, DeviceError> {
        if self.launched.swap(true, Ordering::SeqCst) {
            return Err(DeviceError("the megakernel is already running".into()));
        }
        self.lane.store(lane, Ordering::SeqCst);
        // Before the launch, so that everything the kernel is handed later existed when it
        // started (compute-sanitizer's memcheck accepts nothing else).
        if let Err(e) = self.reserve_heap() {
            self.launched.store(false, Ordering::SeqCst);
            return Err(e);
        }
        // The lane: one block an SM. At 255 registers a thread the megakernel fits two blocks
        // of 128 threads an SM, so the lane leaves half of every SM's registers to programs'
        // kernels (which could never start beside a megakernel holding them all).
        let cap = lane.then_some(1);
        let cfg = resident_grid(&self.gpu, &self.function, BLOCK_THREADS, 0, cap).map_err(gpu_err)?;
        // SAFETY: `mr_megakernel(MrControl*)` takes one pointer. Everything it reaches lives
        // until the executor has seen it stop, or is leaked when it does not stop (the
        // executor's wedged path).
        unsafe { launch_with_pointer(&self.function, cfg, &self.kernel_stream, control) }
            .map_err(|e| DeviceError(format!("launching the megakernel: {e}")))?;
        Ok(cfg.grid_dim.0)
    }

    fn kernel_state(&self) -> KernelState {
        if !self.launched.load(Ordering::SeqCst) {
            return KernelState::NotLaunched;
        }
        match stream_state(&self.kernel_stream) {
            StreamState::Busy => KernelState::Running,
            StreamState::Idle => KernelState::Exited,
            StreamState::Failed(e) => KernelState::Failed(e),
        }
    }

    fn compile_program(
        &self,
        program: &meridian_bytecode::VerifiedProgram,
        symbol: &str,
    ) -> Result<CompiledProgram, DeviceError> {
        let started = std::time::Instant::now();
        let (unit, refused) = jit::jit_unit([(symbol, program)]);
        if let Some((_, why)) = refused.into_iter().next() {
            return Err(DeviceError(why));
        }
        let path = JoinPath::from_env()?;
        let define = format!("-D{}", jit::JIT_ALWAYS_JOIN_PATH);
        let options: Vec<&str> = match path {
            JoinPath::Always => NVRTC_OPTIONS.iter().copied().chain([define.as_str()]).collect(),
            JoinPath::Split | JoinPath::Join => NVRTC_OPTIONS.to_vec(),
        };
        let (cubin, outcome) = self
            .cache
            .get_or_compile("jit.cu", &unit, self.gpu.arch(), &options)
            .map_err(|e| DeviceError(format!("compiling the program's kernel: {e}")))?;
        let load = |kernel: &str| {
            self.gpu
                .function(&cubin, kernel)
                .map_err(|e| DeviceError(format!("loading the program's kernel {kernel}: {e}")))
        };
        let how = match outcome {
            CacheOutcome::Hit => "from the cubin cache",
            CacheOutcome::Miss | CacheOutcome::Replaced => "compiled by NVRTC",
        };
        let id = jit::identifier(symbol);
        if path == JoinPath::Split && jit::split_join(program).is_some() {
            let (fast, general) = (format!("mr_jit_join_{id}"), format!("mr_jit_defer_{id}"));
            let kernels = SplitKernels { fast: load(&fast)?, general: load(&general)? };
            let detail = format!("{how} for {} in {:.2?}, split", self.gpu.arch(), started.elapsed());
            return Ok(CompiledProgram::new(format!("{fast} + {general}"), detail, kernels).split());
        }
        let kernel = format!("mr_jit_rows_{id}");
        let function = load(&kernel)?;
        let detail = format!("{how} for {} in {:.2?}", self.gpu.arch(), started.elapsed());
        Ok(CompiledProgram::new(kernel, detail, function))
    }

    unsafe fn run_program(
        &self,
        program: &CompiledProgram,
        args: &ProgramArgs,
        timeout: std::time::Duration,
    ) -> Result<(), ProgramRunError> {
        let refuse = |why: String| ProgramRunError::NotStarted(DeviceError(why));
        if self.launched.load(Ordering::SeqCst) && !self.lane.load(Ordering::SeqCst) {
            return Err(refuse(
                "the megakernel holds every SM (launched without a lane): a program's kernel cannot start"
                    .into(),
            ));
        }
        let other = || refuse("the program's kernel was compiled for another device".into());
        if let Some(why) = meridian_kernels::cuda::block_threads_refusal(args.block_threads) {
            return Err(refuse(why));
        }
        let rows = args.end.saturating_sub(args.begin);
        let threads = args.block_threads;
        let blocks = u32::try_from(rows.div_ceil(u64::from(threads)).max(1))
            .map_err(|_| refuse(format!("{rows} rows are more than one launch covers")))?;
        let cfg = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (threads, 1, 1), shared_mem_bytes: 0 };
        if program.is_split() {
            let kernels = program.held::<SplitKernels>().ok_or_else(other)?;
            if args.join_scratch == 0 {
                return Err(refuse("a split join's kernels were launched without their scratch".into()));
            }
            // SAFETY: the generated `mr_jit_join_*` and `mr_jit_defer_*` take the per-job
            // kernel's parameters and the scratch, `to_split_array`'s nine 64-bit words; the
            // caller guarantees the addresses (the scratch zeroed, `join_scratch_bytes` of it
            // for these rows and this block) until the kernels are done or the device wedged.
            // The general kernel runs after the fast one on the same stream, so it reads the
            // row bits complete.
            unsafe { launch_args(&kernels.fast, cfg, &self.program_stream, &args.to_split_array()) }
                .map_err(|e| ProgramRunError::NotStarted(gpu_err(e)))?;
            // SAFETY: as above. Once the fast kernel is queued a failure here is a lost run.
            unsafe { launch_args(&kernels.general, cfg, &self.program_stream, &args.to_split_array()) }
                .map_err(|e| ProgramRunError::Lost(gpu_err(e)))?;
        } else {
            let function = program.held::<CudaFunction>().ok_or_else(other)?;
            // SAFETY: every generated `mr_jit_rows_*` takes the per-job kernel's eight 64-bit
            // parameters in `to_array`'s order; the caller guarantees the addresses until the
            // kernel is done or the device wedged.
            unsafe { launch_args(function, cfg, &self.program_stream, &args.to_array()) }
                .map_err(|e| ProgramRunError::NotStarted(gpu_err(e)))?;
        }
        let deadline = std::time::Instant::now() + timeout;
        let mut polls = 0u32;
        loop {
            match stream_state(&self.program_stream) {
                StreamState::Idle => return Ok(()),
                StreamState::Failed(e) => {
                    return Err(ProgramRunError::Lost(DeviceError(format!(
                        "the program's kernel failed: {e}"
                    ))))
                }
                StreamState::Busy => {}
            }
            if std::time::Instant::now() > deadline {
                return Err(ProgramRunError::Lost(DeviceError(format!(
                    "watchdog: the program's kernel ran past {timeout:?} ({rows} rows)"
                ))));
            }
            polls += 1;
            if polls < 1024 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(20));
            }
        }
    }

    unsafe fn page_lock(&self, ptr: NonNull<u8>, len: usize) -> Result<PageLock, DeviceError> {
        // SAFETY: the caller keeps the memory mapped and unregistered elsewhere until the lock
        // (which holds the registration) is dropped.
        let registration = unsafe { HostRegistration::from_raw(&self.gpu, ptr, len) }.map_err(gpu_err)?;
        Ok(PageLock::new(registration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_join_path_setting_says_which_kernels_and_refuses_anything_else() {
        assert_eq!(JoinPath::parse(None), Ok(JoinPath::Split));
        assert_eq!(JoinPath::parse(Some("split")), Ok(JoinPath::Split));
        assert_eq!(JoinPath::parse(Some("join")), Ok(JoinPath::Join));
        assert_eq!(JoinPath::parse(Some("always")), Ok(JoinPath::Always));
        let err = JoinPath::parse(Some("yes")).err().map(|e| e.0).unwrap_or_default();
        assert_eq!(err, "MERIDIAN_GPU_JIT_JOIN_PATH=\"yes\" is not one of split, join, always");
    }
}
