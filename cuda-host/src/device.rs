//! An emulated CUDA device: the real megakernel, built as host C++, with each block a group
//! of host threads, over ordinary memory (device addresses are host addresses).
//!
//! It also lets tests make the device misbehave — an allocation that fails, a kernel that
//! reports an error, a kernel that stops serving jobs — to check that every ticket still
//! resolves with the reason.

use std::alloc::Layout;
use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use meridian_runtime::cuda::heap::{DeviceHeap, HeapUsage};
use meridian_runtime::cuda::{
    CompiledProgram, Device, DeviceError, JoinPath, KernelState, PageLock, ProgramArgs, ProgramRunError,
};

use meridian_kernels::cuda::jit;

use crate::{ffi, host_jit};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

const NOT_LAUNCHED: u8 = 0;
const RUNNING: u8 = 1;
const EXITED: u8 = 2;

/// The heap an emulated device reserves at its launch unless told otherwise
/// ([`HostDevice::set_heap_bytes`]): room for the tests' jobs; its pages are only touched as
/// blocks are handed out.
pub const DEFAULT_HEAP_BYTES: u64 = 64 << 20;

/// Byte offset of `MrControl::stop` (the stalled kernel watches it).
const CONTROL_STOP: usize = meridian_kernels::cuda::abi::CONTROL_STOP;

/// What the emulated megakernel did to mapped host memory (the traffic a device pays bus
/// transactions for), counted by the device code's platform helpers (`kernels/cuda/
/// host_shim.h`): the numbers the dispatch protocol is judged by without a GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostTraffic {
    /// Reads of mapped memory that found work or data (entries, records, a poll that saw its
    /// job, `stop` while running).
    pub reads: u64,
    /// Idle polls: reads of mapped memory that found nothing yet.
    pub polls: u64,
    /// Writes to mapped memory (records, completions, sequence numbers), one per record.
    pub writes: u64,
    /// System-scope fences (each waits for the bus on a device).
    pub fences: u64,
    /// Device-scope fences.
    pub gpu_fences: u64,
    /// Completions written into a slot the host had not freed (a broken protocol).
    pub overruns: u64,
}

impl std::ops::Sub for HostTraffic {
    type Output = HostTraffic;

    fn sub(self, b: HostTraffic) -> HostTraffic {
        HostTraffic {
            reads: self.reads - b.reads,
            polls: self.polls - b.polls,
            writes: self.writes - b.writes,
            fences: self.fences - b.fences,
            gpu_fences: self.gpu_fences - b.gpu_fences,
            overruns: self.overruns - b.overruns,
        }
    }
}

/// What the emulated kernel does once launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs the megakernel.
    Serve,
    /// Never serves a job (but stops when told): a hung kernel, for the watchdog.
    Stall,
    /// The launch fails, as a kernel that needs more resources than the device has would.
    FailLaunch,
}

/// An emulated device running the megakernel on host threads.
#[derive(Debug)]
pub struct HostDevice {
    blocks: u32,
    threads: u32,
    behaviour: Behaviour,
    allocs: Mutex<BTreeMap<u64, Layout>>,
    /// The heap reserved at the launch (the bookkeeping and the host allocation behind it),
    /// its size, and the live blocks served from it (with the layout they were asked for).
    heap: Mutex<Option<(DeviceHeap, Layout)>>,
    heap_bytes: AtomicU64,
    heap_blocks: Mutex<BTreeMap<u64, Layout>>,
    mapped: Mutex<BTreeMap<u64, Layout>>,
    kernel: Mutex<Option<JoinHandle<()>>>,
    state: Arc<AtomicU8>,
    /// Allocations to refuse (tests of failed uploads).
    refuse_allocs: AtomicU64,
    /// Allocations larger than this are refused (tests of outputs that do not fit).
    refuse_over: AtomicU64,
    /// An error to report as the kernel's state (tests of device faults).
    fault: Mutex<Option<String>>,
    launched: AtomicBool,
    control: AtomicU64,
    /// Host regions page-locked now (start, length), as a real device would hold them.
    locked: Arc<Mutex<Vec<(usize, usize)>>>,
    /// Page-lock requests fail (a device or limit that refuses them).
    refuse_page_locks: AtomicBool,
    /// Programs' kernels fail to compile (a compiler that refuses them).
    refuse_compiles: AtomicBool,
    /// Point joins' kernels compiled whole ([`JoinPath::Join`]), not split.
    whole_joins: AtomicBool,
    /// Split join runs so far, and the rows their fast kernels left to the general one.
    split_runs: AtomicU64,
    deferred_rows: AtomicU64,
    /// Programs' kernel runs so far, and their rows.
    program_runs: AtomicU64,
    program_rows: AtomicU64,
    /// Programs' kernel runs by the threads a block they were launched with.
    program_blocks: Mutex<std::collections::BTreeMap<u32, u64>>,
    /// Blocks the megakernel was launched with.
    launched_blocks: AtomicU64,
    /// Device bytes allocated now, and the most at once.
    live_bytes: AtomicU64,
    peak_bytes: AtomicU64,
    /// The megakernel's traffic with mapped memory (`MrHostCounts`: six counters).
    traffic: Arc<[AtomicU64; 6]>,
}

/// A page lock of the emulated device: the region leaves the list when it drops.
struct HostLock {
    locked: Arc<Mutex<Vec<(usize, usize)>>>,
    region: (usize, usize),
}

impl Drop for HostLock {
    fn drop(&mut self) {
        let mut locked = self.locked.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = locked.iter().position(|&r| r == self.region) {
            locked.swap_remove(i);
        }
    }
}

impl HostDevice {
    /// A device of `blocks` blocks of `threads` threads (a multiple of 32, at most 256).
    pub fn new(blocks: u32, threads: u32) -> HostDevice {
        HostDevice::with_behaviour(blocks, threads, Behaviour::Serve)
    }

    /// A device whose kernel does `behaviour`.
    pub fn with_behaviour(blocks: u32, threads: u32, behaviour: Behaviour) -> HostDevice {
        HostDevice {
            blocks,
            threads,
            behaviour,
            allocs: Mutex::new(BTreeMap::new()),
            heap: Mutex::new(None),
            heap_bytes: AtomicU64::new(DEFAULT_HEAP_BYTES),
            heap_blocks: Mutex::new(BTreeMap::new()),
            mapped: Mutex::new(BTreeMap::new()),
            kernel: Mutex::new(None),
            state: Arc::new(AtomicU8::new(NOT_LAUNCHED)),
            refuse_allocs: AtomicU64::new(0),
            refuse_over: AtomicU64::new(u64::MAX),
            fault: Mutex::new(None),
            launched: AtomicBool::new(false),
            control: AtomicU64::new(0),
            locked: Arc::new(Mutex::new(Vec::new())),
            refuse_page_locks: AtomicBool::new(false),
            refuse_compiles: AtomicBool::new(false),
            whole_joins: AtomicBool::new(false),
            split_runs: AtomicU64::new(0),
            deferred_rows: AtomicU64::new(0),
            program_runs: AtomicU64::new(0),
            program_rows: AtomicU64::new(0),
            program_blocks: Mutex::new(std::collections::BTreeMap::new()),
            launched_blocks: AtomicU64::new(0),
            traffic: Arc::new(Default::default()),
            live_bytes: AtomicU64::new(0),
            peak_bytes: AtomicU64::new(0),
        }
    }

    /// The device heap reserved at the launch: `bytes` (0: none, every allocation after the
    /// launch made on its own, as a GPU without one does). Before the engine starts.
    pub fn set_heap_bytes(&self, bytes: u64) {
        self.heap_bytes.store(bytes, SeqCst);
    }

    /// The device heap's state (`None` before the launch, or with no heap); its `outside`
    /// counts the allocations since the launch that a resident kernel may read and memcheck
    /// would flag.
    pub fn heap_usage(&self) -> Option<HeapUsage> {
        lock(&self.heap).as_ref().map(|(heap, _)| heap.usage())
    }

    /// Reserves the heap, as a GPU does just before its launch. The host allocation is not
    /// written here (its pages come when blocks are handed out and filled).
    fn reserve_heap(&self) -> Result<(), DeviceError> {
        let bytes = self.heap_bytes.load(SeqCst);
        if bytes == 0 {
            return Ok(());
        }
        let layout = usize::try_from(bytes)
            .ok()
            .and_then(|len| Layout::from_size_align(len, 256).ok())
            .ok_or_else(|| DeviceError(format!("a heap of {bytes} bytes")))?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc(layout) };
        if p.is_null() {
            return Err(DeviceError(format!("out of memory reserving a heap of {bytes} bytes")));
        }
        *lock(&self.heap) = Some((DeviceHeap::new(p as u64, bytes), layout));
        Ok(())
    }

    /// The host regions page-locked now: (start address, length).
    pub fn page_locked(&self) -> Vec<(usize, usize)> {
        self.locked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// From now on, page-lock requests fail (as `cuMemHostRegister` does past the locked-memory
    /// limit).
    pub fn refuse_page_locks(&self) {
        self.refuse_page_locks.store(true, SeqCst);
    }

    /// From now on, compiling a program's kernel fails.
    pub fn refuse_compiles(&self) {
        self.refuse_compiles.store(true, SeqCst);
    }

    /// How point joins' kernels are compiled from now on: split (the default, as
    /// `MERIDIAN_GPU_JIT_JOIN_PATH` unset on a GPU) or, with [`JoinPath::Join`], whole.
    /// (`Always` — the fast path compiled into every kernel — is a GPU build option only.)
    pub fn join_path(&self, path: JoinPath) {
        self.whole_joins.store(path != JoinPath::Split, SeqCst);
    }

    /// Split joins' runs so far, and the rows their fast kernels left to the general kernel.
    pub fn split_runs(&self) -> (u64, u64) {
        (self.split_runs.load(SeqCst), self.deferred_rows.load(SeqCst))
    }

    /// Programs' own kernels run so far (the GPU JIT route), and the rows they ran.
    pub fn program_runs(&self) -> (u64, u64) {
        (self.program_runs.load(SeqCst), self.program_rows.load(SeqCst))
    }

    /// Programs' own kernel runs so far by the threads a block of their launch.
    pub fn program_block_threads(&self) -> std::collections::BTreeMap<u32, u64> {
        lock(&self.program_blocks).clone()
    }

    /// Blocks the megakernel was launched with (0 before its launch).
    pub fn megakernel_blocks(&self) -> u32 {
        self.launched_blocks.load(SeqCst) as u32
    }

    /// The next `n` device allocations fail (out of memory).
    pub fn refuse_allocations(&self, n: u64) {
        self.refuse_allocs.store(n, SeqCst);
    }

    /// From now on, device allocations of more than `bytes` fail (out of memory).
    pub fn refuse_allocations_over(&self, bytes: u64) {
        self.refuse_over.store(bytes, SeqCst);
    }

    /// A device fault: the kernel dies (as a real one does with its context) and from now on
    /// its state is this error. Jobs it was running never complete.
    pub fn inject_fault(&self, message: &str) {
        let control = self.control.load(SeqCst);
        if control != 0 {
            // SAFETY: `stop` is an aligned u64 inside the control block, which the executor
            // keeps alive while the kernel may run.
            let stop = unsafe { &*((control as usize + CONTROL_STOP) as *const AtomicU64) };
            stop.store(1, SeqCst);
        }
        if let Some(h) = lock(&self.kernel).take() {
            let _ = h.join();
        }
        *lock(&self.fault) = Some(message.to_owned());
    }

    /// The megakernel's traffic with mapped host memory so far ([`HostTraffic`]).
    pub fn traffic(&self) -> HostTraffic {
        let t = &self.traffic;
        HostTraffic {
            reads: t[0].load(SeqCst),
            polls: t[1].load(SeqCst),
            writes: t[2].load(SeqCst),
            fences: t[3].load(SeqCst),
            gpu_fences: t[4].load(SeqCst),
            overruns: t[5].load(SeqCst),
        }
    }

    /// The most device memory allocated at once so far, bytes.
    pub fn peak_device_bytes(&self) -> u64 {
        self.peak_bytes.load(SeqCst)
    }

    /// Device allocations live now, in the heap or not (tests of leaks).
    pub fn live_allocations(&self) -> usize {
        lock(&self.allocs).len() + lock(&self.heap_blocks).len()
    }

    /// Checks that `[ptr, ptr + len)` lies in one live device allocation.
    fn device_region(&self, ptr: u64, len: usize) -> Result<(), DeviceError> {
        HostDevice::region(&lock(&self.allocs), ptr, len)
            .or_else(|_| HostDevice::region(&lock(&self.heap_blocks), ptr, len))
    }

    fn region(map: &BTreeMap<u64, Layout>, ptr: u64, len: usize) -> Result<(), DeviceError> {
        let (base, layout) =
            map.range(..=ptr).next_back().ok_or_else(|| DeviceError(format!("{ptr:#x} is not allocated")))?;
        let end = (ptr - base) as usize + len;
        if end > layout.size() {
            return Err(DeviceError(format!(
                "{len} bytes at {ptr:#x} run past an allocation of {}",
                layout.size()
            )));
        }
        Ok(())
    }
}

impl Drop for HostDevice {
    fn drop(&mut self) {
        if let Some(h) = lock(&self.kernel).take() {
            let _ = h.join();
        }
        for (ptr, layout) in std::mem::take(&mut *lock(&self.allocs))
            .into_iter()
            .chain(std::mem::take(&mut *lock(&self.mapped)))
        {
            // SAFETY: each entry is a live allocation made with this layout; the kernel has
            // stopped (joined above), so nothing uses it. Unmapping a range the counters'
            // registry does not hold (device memory) does nothing.
            unsafe {
                ffi::mr_host_unmap(ptr as *const u8);
                std::alloc::dealloc(ptr as *mut u8, layout);
            }
        }
        // The heap's blocks are parts of its one allocation, freed with it.
        if let Some((heap, layout)) = lock(&self.heap).take() {
            // SAFETY: allocated in `reserve_heap` with this layout; the kernel has stopped.
            unsafe { std::alloc::dealloc(heap.base() as *mut u8, layout) };
        }
    }
}

impl Device for HostDevice {
    fn describe(&self) -> String {
        let heap = self.heap_usage().map(|h| format!(", a device heap of {} MiB", h.bytes >> 20));
        format!(
            "host emulator ({} blocks × {} threads of the megakernel as host C++){}",
            self.blocks,
            self.threads,
            heap.unwrap_or_default()
        )
    }

    fn block_threads(&self) -> u32 {
        self.threads
    }

    fn alloc(&self, len: usize) -> Result<u64, DeviceError> {
        if self.refuse_allocs.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok()
            || len as u64 > self.refuse_over.load(SeqCst)
        {
            return Err(DeviceError(format!("out of memory allocating {len} bytes (injected)")));
        }
        let layout = Layout::from_size_align(len.max(1), 256).map_err(|e| DeviceError(e.to_string()))?;
        let from_heap = lock(&self.heap).as_mut().and_then(|(heap, _)| heap.take(len as u64));
        let p = match from_heap {
            Some(p) => p as *mut u8,
            None => {
                // SAFETY: the layout has a non-zero size.
                let p = unsafe { std::alloc::alloc(layout) };
                if p.is_null() {
                    return Err(DeviceError(format!("out of memory allocating {len} bytes")));
                }
                p
            }
        };
        // Device memory's contents are unspecified (`cuMemAllocAsync`, or a heap block last
        // used by another job): filled with a pattern here, so that whatever reads memory it
        // did not write or zero shows in the tests.
        // SAFETY: `p` is a fresh allocation, or a heap block taken just now, of at least
        // `layout.size()` bytes.
        unsafe { std::ptr::write_bytes(p, 0xa5, layout.size()) };
        let blocks = if from_heap.is_some() { &self.heap_blocks } else { &self.allocs };
        lock(blocks).insert(p as u64, layout);
        let live = self.live_bytes.fetch_add(layout.size() as u64, SeqCst) + layout.size() as u64;
        self.peak_bytes.fetch_max(live, SeqCst);
        Ok(p as u64)
    }

    unsafe fn free(&self, ptr: u64) {
        if let Some(layout) = lock(&self.heap_blocks).remove(&ptr) {
            self.live_bytes.fetch_sub(layout.size() as u64, SeqCst);
            if let Some((heap, _)) = lock(&self.heap).as_mut() {
                heap.give(ptr);
            }
            return;
        }
        if let Some(layout) = lock(&self.allocs).remove(&ptr) {
            self.live_bytes.fetch_sub(layout.size() as u64, SeqCst);
            // SAFETY: allocated in `alloc` with this layout; removed from the map, so freed once.
            unsafe { std::alloc::dealloc(ptr as *mut u8, layout) };
        }
    }

    unsafe fn write(&self, dst: u64, src: &[u8]) -> Result<(), DeviceError> {
        self.device_region(dst, src.len())?;
        // SAFETY: the destination lies in a live allocation (checked), distinct from `src`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        Ok(())
    }

    unsafe fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), DeviceError> {
        self.device_region(src, dst.len())?;
        // SAFETY: the source lies in a live allocation (checked), distinct from `dst`.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn alloc_mapped(&self, len: usize) -> Result<(NonNull<u8>, u64), DeviceError> {
        let layout = Layout::from_size_align(len.max(1), 4096).map_err(|e| DeviceError(e.to_string()))?;
        // SAFETY: the layout has a non-zero size.
        let p = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })
            .ok_or_else(|| DeviceError(format!("out of memory allocating {len} mapped bytes")))?;
        lock(&self.mapped).insert(p.as_ptr() as u64, layout);
        // SAFETY: registers a live allocation's range; `free_mapped` and `drop` remove it
        // before it is freed.
        unsafe { ffi::mr_host_map(p.as_ptr(), len as u64) };
        Ok((p, p.as_ptr() as u64))
    }

    unsafe fn free_mapped(&self, host: NonNull<u8>) {
        // A freed control block is no longer the kernel's: `inject_fault` must not write it.
        let _ = self.control.compare_exchange(host.as_ptr() as u64, 0, SeqCst, SeqCst);
        if let Some(layout) = lock(&self.mapped).remove(&(host.as_ptr() as u64)) {
            // SAFETY: only removes the range from the counters' registry.
            unsafe { ffi::mr_host_unmap(host.as_ptr()) };
            // SAFETY: allocated in `alloc_mapped` with this layout, freed once.
            unsafe { std::alloc::dealloc(host.as_ptr(), layout) };
        }
    }

    fn launch(&self, control: u64, lane: bool) -> Result<u32, DeviceError> {
        if self.launched.swap(true, SeqCst) {
            return Err(DeviceError("the megakernel is already running".into()));
        }
        HostDevice::region(
            &lock(&self.mapped),
            control,
            std::mem::size_of::<meridian_kernels::cuda::abi::Control>(),
        )?;
        self.reserve_heap()?;
        if self.behaviour == Behaviour::FailLaunch {
            return Err(DeviceError("cuLaunchKernel: CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES (injected)".into()));
        }
        self.control.store(control, SeqCst);
        // The lane takes half the blocks, as one block an SM of a GPU's two does.
        let blocks = if lane { self.blocks.div_ceil(2) } else { self.blocks };
        self.launched_blocks.store(u64::from(blocks), SeqCst);
        let (threads, behaviour, state) = (self.threads, self.behaviour, self.state.clone());
        let traffic = self.traffic.clone();
        state.store(RUNNING, SeqCst);
        let handle = std::thread::Builder::new()
            .name("meridian-emulated-kernel".into())
            .spawn(move || {
                match behaviour {
                    Behaviour::Serve => {
                        // SAFETY: `control` is a live mapped allocation holding an `MrControl`
                        // the executor set up; the executor keeps everything the kernel reaches
                        // alive until it has seen the kernel exit.
                        // The counters are six u64s (`MrHostCounts`, atomics of the same
                        // layout), kept alive by `traffic` for the kernel's life.
                        unsafe {
                            ffi::mr_host_run_megakernel(
                                control as *mut u8,
                                blocks,
                                threads,
                                traffic.as_ptr().cast::<u64>(),
                            )
                        };
                    }
                    Behaviour::FailLaunch => {}
                    Behaviour::Stall => {
                        // SAFETY: `stop` is an aligned u64 inside the live control block.
                        let stop = unsafe { &*((control as usize + CONTROL_STOP) as *const AtomicU64) };
                        while stop.load(SeqCst) == 0 {
                            std::thread::sleep(std::time::Duration::from_millis(1));
                        }
                    }
                }
                state.store(EXITED, SeqCst);
            })
            .map_err(|e| DeviceError(format!("could not start the emulated kernel: {e}")))?;
        *lock(&self.kernel) = Some(handle);
        Ok(blocks)
    }

    fn kernel_state(&self) -> KernelState {
        if let Some(f) = lock(&self.fault).clone() {
            return KernelState::Failed(f);
        }
        match self.state.load(SeqCst) {
            NOT_LAUNCHED => KernelState::NotLaunched,
            RUNNING => KernelState::Running,
            _ => KernelState::Exited,
        }
    }

    fn compile_program(
        &self,
        program: &meridian_bytecode::VerifiedProgram,
        symbol: &str,
    ) -> Result<CompiledProgram, DeviceError> {
        if let Some(why) = meridian_kernels::cuda::jit_refusal(program) {
            return Err(DeviceError(why));
        }
        if self.refuse_compiles.load(SeqCst) {
            return Err(DeviceError("the compiler refused the program (injected)".into()));
        }
        let started = std::time::Instant::now();
        let lib = host_jit::build_library(&host_jit::host_unit([(symbol, program)])).map_err(DeviceError)?;
        let kernel = host_jit::HostKernel::load(&lib, symbol).map_err(DeviceError)?;
        let detail = format!("built as host C++ in {:.2?}", started.elapsed());
        let id = jit::identifier(symbol);
        if kernel.split().is_some() && !self.whole_joins.load(SeqCst) {
            let name = format!("mr_jit_join_{id} + mr_jit_defer_{id}");
            return Ok(CompiledProgram::new(name, format!("{detail}, split"), kernel).split());
        }
        Ok(CompiledProgram::new(format!("mr_jit_rows_{id}"), detail, kernel))
    }

    unsafe fn run_program(
        &self,
        program: &CompiledProgram,
        args: &ProgramArgs,
        _timeout: std::time::Duration,
    ) -> Result<(), ProgramRunError> {
        if let Some(f) = lock(&self.fault).clone() {
            return Err(ProgramRunError::NotStarted(DeviceError(f)));
        }
        let kernel = program.held::<host_jit::HostKernel>().ok_or_else(|| {
            ProgramRunError::NotStarted(DeviceError(
                "the program's kernel was compiled for another device".into(),
            ))
        })?;
        // As a GPU refuses the launch: nothing started.
        if let Some(why) = meridian_kernels::cuda::block_threads_refusal(args.block_threads) {
            return Err(ProgramRunError::NotStarted(DeviceError(why)));
        }
        *lock(&self.program_blocks).entry(args.block_threads).or_insert(0) += 1;
        self.program_runs.fetch_add(1, SeqCst);
        self.program_rows.fetch_add(args.end.saturating_sub(args.begin), SeqCst);
        if program.is_split() {
            let split = kernel.split().ok_or_else(|| {
                ProgramRunError::NotStarted(DeviceError("a split join without its split kernels".into()))
            })?;
            if args.join_scratch == 0 {
                return Err(ProgramRunError::NotStarted(DeviceError(
                    "a split join's kernels were launched without their scratch".into(),
                )));
            }
            // SAFETY: the entry is this program's generated split kernels (the caller's
            // contract), the addresses are live host memory laid out as they read and write
            // it, and the scratch holds `join_scratch_bytes` zeroed bytes for these rows and
            // this block. They run on host threads, the fast kernel's blocks (of
            // `block_threads` threads, four at a time), then the general one's, and have
            // finished when the entry returns.
            unsafe {
                split(
                    args.program as *const u8,
                    args.inputs as *const u8,
                    args.outputs as *const u8,
                    args.rows_begin,
                    args.begin,
                    args.end,
                    args.acc as *mut u8,
                    args.error as *mut u8,
                    args.join_scratch as *mut u64,
                    u64::from(args.block_threads),
                )
            };
            let rows = args.end.saturating_sub(args.begin);
            // SAFETY: the row bits the kernels just wrote, the scratch's first words (the
            // caller's contract), no longer written by anyone.
            let bits = unsafe {
                std::slice::from_raw_parts(args.join_scratch as *const u64, rows.div_ceil(64) as usize)
            };
            let deferred: u64 = bits.iter().map(|w| u64::from(w.count_ones())).sum();
            self.split_runs.fetch_add(1, SeqCst);
            self.deferred_rows.fetch_add(deferred, SeqCst);
            return Ok(());
        }
        // SAFETY: the entry is this program's generated kernel (the caller's contract), and
        // the addresses are live host memory laid out as it reads and writes it. It runs on
        // this thread, one emulated block a row, and has finished when it returns.
        unsafe {
            (kernel.entry())(
                args.program as *const u8,
                args.inputs as *const u8,
                args.outputs as *const u8,
                args.rows_begin,
                args.begin,
                args.end,
                args.acc as *mut u8,
                args.error as *mut u8,
            )
        };
        Ok(())
    }

    unsafe fn page_lock(&self, ptr: NonNull<u8>, len: usize) -> Result<PageLock, DeviceError> {
        if self.refuse_page_locks.load(SeqCst) {
            return Err(DeviceError("page-locking refused (emulated)".into()));
        }
        let region = (ptr.as_ptr() as usize, len);
        let mut locked = self.locked.lock().unwrap_or_else(|p| p.into_inner());
        if locked.iter().any(|&(a, n)| a < region.0 + len && region.0 < a + n) {
            return Err(DeviceError("the region overlaps one already page-locked".into()));
        }
        locked.push(region);
        Ok(PageLock::new(HostLock { locked: self.locked.clone(), region }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    #[test]
    fn fresh_device_memory_holds_a_pattern_until_written_or_zeroed() {
        let dev = HostDevice::new(1, 32);
        // Past the default zeroing's mebibyte a write, and not a whole number of them.
        let len = (5 << 20) / 2 + 3;
        let p = dev.alloc(len + 16).unwrap();
        let mut back = vec![0u8; len + 16];
        // SAFETY: the ranges lie within the allocation above, freed last.
        unsafe {
            dev.read(p, &mut back).unwrap();
            assert!(back.iter().all(|&b| b == 0xa5), "unwritten memory is not zero");
            dev.zero(p + 8, len).unwrap();
            dev.read(p, &mut back).unwrap();
            assert!(back[..8].iter().chain(&back[8 + len..]).all(|&b| b == 0xa5));
            assert!(back[8..8 + len].iter().all(|&b| b == 0));
            dev.free(p);
        }
    }
}
