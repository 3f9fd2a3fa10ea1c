//! The CUDA executor: the megakernel launched once per engine, jobs published on a
//! submission ring in pinned, device-mapped host memory (the same ring protocol as the CPU
//! executor, docs/ring-protocol.md), completions reaped by one host thread.
//!
//! A job is: its program and bound inputs made resident (uploaded once, cached), an output
//! area (a mapped arena for small jobs, device memory for large ones), a job-table slot whose
//! record in mapped memory says where all of that is, and chunk entries on the ring. The
//! device's last block publishes the completion; the reaper reads the accumulators and the
//! outputs back, re-runs the job with more room if hits overflowed, and resolves the ticket.
//!
//! Failures never leave a ticket unresolved: a device that reports an error or a kernel that
//! stops making progress (watchdog) fails every job in flight with the reason and marks the
//! executor unhealthy; later jobs are refused with that reason (under `auto` the engine runs
//! them on the CPU). A kernel that cannot be stopped has its memory leaked, never freed under
//! it.

use std::alloc::Layout as AllocLayout;
use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use meridian_bytecode::OutputKind;
use meridian_kernels::cuda::DeviceColumn;
use meridian_kernels::interp::{BoundInputs, ExecError};

use super::abi::{self, Acc, Control, ErrorRecord, JobHead};
use super::device::{
    CompiledProgram, Device, DeviceAlloc, DeviceError, KernelState, MappedAlloc, ProgramArgs,
    ProgramRunError, Shared,
};
use super::outputs::{Area, Arenas, Layout};
use super::programs::{GpuRoute, Kernels, LaneQueue};
use super::resident::{Residency, ResidentBinding, ResidentProgram};
use crate::doorbell::Doorbell;
use crate::job::{Attempt, Executor, JobError, JobTable, PreparedInner, Refused, Replace};
use crate::ring::{CompletionEntry, Pop, PushError, Ring, RingMemory, SubmitEntry};
use crate::route::Route;

/// Parameters of the CUDA executor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GpuTuning {
    /// Jobs in flight at once.
    pub job_slots: usize,
    /// Submission ring slots (chunks in flight); a power of two.
    pub ring_capacity: usize,
    /// Mapped output arenas for small jobs.
    pub arenas: usize,
    /// Longest idle back-off of a block, in ns.
    pub backoff_ns: u32,
    /// How long jobs may be in flight without any completing before the device is declared
    /// hung.
    pub timeout: Duration,
    /// Fewest rows in a chunk.
    pub min_chunk_rows: usize,
    /// How long the reaper keeps polling after the last job finished before it sleeps: a
    /// job submitted within it is reaped without waking a thread (a futex wake-up on the
    /// way back costs more than the device's whole round trip).
    pub linger: Duration,
    /// Programs' own kernels run beside the megakernel (the GPU JIT route): the megakernel is
    /// launched as a latency lane ([`super::programs`]).
    pub programs: bool,
    /// Under the GPU route `auto`: rows a program's GPU jobs run before its kernel is
    /// compiled, and the fewest rows a job takes it with ([`super::programs`]).
    pub jit_hot_rows: u64,
    pub jit_min_rows: usize,
}

impl Default for GpuTuning {
    fn default() -> GpuTuning {
        GpuTuning {
            job_slots: 256,
            ring_capacity: 4096,
            arenas: 64,
            backoff_ns: 2048,
            timeout: Duration::from_secs(60),
            min_chunk_rows: 512,
            linger: Duration::from_micros(500),
            programs: false,
            jit_hot_rows: super::programs::GPU_JIT_HOT_ROWS,
            jit_min_rows: super::programs::GPU_JIT_MIN_ROWS,
        }
    }
}

/// A job for the GPU: the attempt (its race time runs from its push on the ring to its
/// completion reaped), its cut as planned, and what runs its rows.
#[derive(Debug)]
pub(crate) struct GpuJob {
    pub attempt: Attempt,
    /// Its chunks and rows a chunk, as planned ([`crate::plan::gpu_cut`]).
    pub chunks: (usize, usize),
    /// Its program's own kernel, when that runs it (the GPU JIT route), not the megakernel.
    pub kernel: Option<Arc<CompiledProgram>>,
    /// Words of each geometry output's arena; 0: the executor's estimate ([`geom_words`]).
    pub geom_words: usize,
}

impl std::ops::Deref for GpuJob {
    type Target = Attempt;

    fn deref(&self) -> &Attempt {
        &self.attempt
    }
}

/// Why the GPU did not take a job; the job comes back.
pub(crate) type GpuSubmitError = Refused<GpuJob>;

/// A job on the device.
#[derive(Debug)]
struct InFlight {
    job: GpuJob,
    layout: Layout,
    area: Area,
    _program: Arc<ResidentProgram>,
    _binding: Arc<ResidentBinding>,
    /// When its chunks were published (its race time runs from here to its reaping).
    pushed: Instant,
    /// Its slot's cancel word has been set (its stop signal tripped).
    cancel_sent: bool,
}

/// Ring memory in pinned, device-mapped host memory.
#[derive(Debug)]
pub(crate) struct MappedRing {
    dev: Arc<Shared>,
    region: Mutex<Option<MappedAlloc>>,
}

impl MappedRing {
    fn new(dev: &Arc<Shared>) -> MappedRing {
        MappedRing { dev: dev.clone(), region: Mutex::new(None) }
    }

    fn device_ptr(&self) -> u64 {
        self.region.lock().as_ref().map_or(0, MappedAlloc::device_ptr)
    }
}

// SAFETY: `allocate` returns a fresh mapped allocation of at least `layout.size()` bytes,
// page-aligned (so aligned for any ring layout, whose alignment is 64), owned by this
// provider until `deallocate` drops it. Each ring allocates once.
unsafe impl RingMemory for MappedRing {
    fn allocate(&self, layout: AllocLayout) -> Option<NonNull<u8>> {
        if layout.align() > 4096 || layout.size() == 0 {
            return None;
        }
        let m = MappedAlloc::new(&self.dev, layout.size()).ok()?;
        let p = m.host_ptr();
        *self.region.lock() = Some(m);
        Some(p)
    }

    unsafe fn deallocate(&self, _ptr: NonNull<u8>, _layout: AllocLayout) {
        drop(self.region.lock().take());
    }
}

/// The CUDA executor.
#[derive(Debug)]
pub(crate) struct GpuExecutor {
    dev: Arc<Shared>,
    control: MappedAlloc,
    submit: Ring<SubmitEntry, MappedRing>,
    complete: Ring<CompletionEntry, MappedRing>,
    records: MappedAlloc,
    state: DeviceAlloc,
    arenas: Arc<Arenas>,
    jobs: JobTable<InFlight>,
    in_flight: AtomicUsize,
    pending: Mutex<VecDeque<GpuJob>>,
    residency: Mutex<Residency>,
    unhealthy: Mutex<Option<String>>,
    closing: AtomicBool,
    work: Doorbell,
    /// Submitters wait here for a free slot or ring room.
    pub space: Doorbell,
    pub tuning: GpuTuning,
    blocks: u32,
    block_threads: u32,
    description: String,
    poller: Mutex<Option<JoinHandle<()>>>,
    /// Where jobs go that the GPU cannot take after they were routed to it (re-runs, a
    /// failed device): under `auto`, the engine, which places them again; without it they
    /// fail with the reason.
    replace: OnceLock<ReplaceHook>,
    /// One shutdown at a time.
    shutting_down: Mutex<()>,
    /// Jobs for programs' own kernels, and the thread that runs them (with `programs`).
    lane: LaneQueue,
    lane_thread: Mutex<Option<JoinHandle<()>>>,
    /// Programs' own kernels for this device (the GPU JIT route), by program hash.
    kernels: Kernels,
}

/// Where jobs go that the GPU cannot take, shown as a word in debug output.
struct ReplaceHook(Arc<dyn Replace>);

impl std::fmt::Debug for ReplaceHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replace")
    }
}

/// A job's program and inputs on the device, and its outputs' kinds.
type Placed = (Arc<ResidentProgram>, Arc<ResidentBinding>, Vec<OutputKind>);

impl GpuExecutor {
    /// Sets up the rings, job table and device state on `device`, launches the megakernel and
    /// starts the reaper.
    pub fn start(device: Arc<dyn Device>, tuning: GpuTuning) -> Result<Arc<GpuExecutor>, DeviceError> {
        let block_threads = device.block_threads();
        if block_threads == 0 || block_threads > 256 {
            return Err(DeviceError(format!(
                "{block_threads} threads per block: the megakernel takes 1 to 256"
            )));
        }
        let dev = Shared::new(device);
        let ring_err =
            |e: crate::ring::RingError| DeviceError(format!("making a ring in mapped memory: {e}"));
        let job_slots = tuning.job_slots.clamp(2, 1 << 16);
        let submit = Ring::new(tuning.ring_capacity, MappedRing::new(&dev)).map_err(ring_err)?;
        let complete = Ring::new(job_slots.next_power_of_two(), MappedRing::new(&dev)).map_err(ring_err)?;
        let records = MappedAlloc::new(&dev, job_slots * abi::JOB_RECORD_BYTES)?;
        let state_bytes = abi::DEVICE_STATE_HEADER + job_slots * abi::SLOT_STATE_BYTES;
        let state = DeviceAlloc::new(&dev, state_bytes)?;
        let mut init = vec![0u8; state_bytes];
        for slot in 0..job_slots {
            let at = abi::DEVICE_STATE_HEADER + slot * abi::SLOT_STATE_BYTES + abi::SLOT_ACC_OFFSET;
            fresh_accumulators(&mut init[at..at + abi::ACC_BYTES * abi::MAX_OUTPUTS]);
        }
        state.write(0, &init)?;
        let arenas = Arc::new(Arenas::new(&dev, tuning.arenas)?);
        let control = MappedAlloc::new(&dev, std::mem::size_of::<Control>())?;
        let ctl = Control {
            submit: ring_device_ptr(&submit),
            complete: ring_device_ptr(&complete),
            jobs: records.device_ptr(),
            state: state.ptr(),
            submit_mask: (submit.capacity() - 1) as u32,
            complete_mask: (complete.capacity() - 1) as u32,
            submit_slots_offset: submit.slots_offset() as u32,
            complete_slots_offset: complete.slots_offset() as u32,
            job_slots: job_slots as u32,
            backoff_ns: tuning.backoff_ns.max(32),
            ..Control::default()
        };
        control.put(0, ctl)?;
        let jobs = JobTable::new(job_slots).map_err(|e| DeviceError(format!("making the job table: {e}")))?;
        let blocks = dev.device.launch(control.device_ptr(), tuning.programs)?;
        let lane = if tuning.programs { " (a latency lane; programs' kernels beside it)" } else { "" };
        let description = format!(
            "{}, megakernel of {blocks} blocks × {block_threads} threads{lane}",
            dev.device.describe()
        );
        let exec = Arc::new(GpuExecutor {
            dev,
            control,
            submit,
            complete,
            records,
            state,
            arenas,
            jobs,
            in_flight: AtomicUsize::new(0),
            pending: Mutex::new(VecDeque::new()),
            residency: Mutex::new(Residency::default()),
            unhealthy: Mutex::new(None),
            closing: AtomicBool::new(false),
            work: Doorbell::new(),
            space: Doorbell::new(),
            tuning: GpuTuning { job_slots, ..tuning },
            blocks,
            block_threads,
            description,
            poller: Mutex::new(None),
            replace: OnceLock::new(),
            shutting_down: Mutex::new(()),
            lane: LaneQueue::default(),
            lane_thread: Mutex::new(None),
            kernels: Kernels::default(),
        });
        let reaper = exec.clone();
        let handle = std::thread::Builder::new()
            .name("meridian-cuda-reaper".into())
            .spawn(move || reaper.reap_loop())
            .map_err(|e| {
                exec.stop_kernel();
                DeviceError(format!("could not start the reaper thread: {e}"))
            })?;
        *exec.poller.lock() = Some(handle);
        if exec.tuning.programs {
            let runner = exec.clone();
            match std::thread::Builder::new()
                .name("meridian-cuda-programs".into())
                .spawn(move || runner.lane_loop())
            {
                Ok(h) => *exec.lane_thread.lock() = Some(h),
                Err(e) => {
                    exec.shutdown();
                    return Err(DeviceError(format!("could not start the programs' thread: {e}")));
                }
            }
        }
        Ok(exec)
    }

    /// Sets where jobs go that the GPU cannot take once routed to it (once; later calls are
    /// ignored).
    pub fn set_replace(&self, to: Arc<dyn Replace>) {
        let _ = self.replace.set(ReplaceHook(to));
    }

    /// A job the GPU cannot take: placed again by the engine, or failed with `why`.
    fn unavailable(&self, job: GpuJob, why: String) {
        match self.replace.get() {
            Some(to) => to.0.replace(job.attempt, why),
            None => job.fail(JobError::Device(why)),
        }
    }

    /// Takes the job out of `slot` (counting it out of flight), if one is there.
    fn take_slot(&self, slot: u32) -> Option<InFlight> {
        let f = self.jobs.take(slot);
        if f.is_some() {
            self.in_flight.fetch_sub(1, SeqCst);
        }
        f
    }

    /// What runs jobs: the device and the launch.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Why the executor takes no more jobs, if it does not.
    pub fn unhealthy(&self) -> Option<String> {
        self.unhealthy.lock().clone()
    }

    /// Threads of the megakernel (each has its own scratch for constructed geometry).
    fn threads(&self) -> u64 {
        u64::from(self.blocks) * u64::from(self.block_threads)
    }

    /// Blocks of the megakernel and the fewest rows a chunk gets.
    pub(crate) fn grid(&self) -> (u32, usize) {
        (self.blocks, self.tuning.min_chunk_rows)
    }

    /// The chunks of a job of `rows` rows and their rows, about `per_block` for every block
    /// ([`crate::plan::gpu_cut`]).
    pub(crate) fn chunks(&self, rows: usize, per_block: u32) -> (usize, usize) {
        crate::plan::gpu_cut(&crate::plan::GpuCutInput {
            rows,
            blocks: self.blocks,
            per_block,
            min_chunk_rows: self.tuning.min_chunk_rows,
            max_chunks: (self.submit.capacity() / 2).max(1),
        })
    }

    /// What runs a GPU job of `rows` rows of `prepared` under the GPU route `route`: its
    /// program's own kernel (compiled when wanted; see [`super::programs::route`]) or the
    /// megakernel, and why.
    pub(crate) fn route(&self, prepared: &Arc<PreparedInner>, rows: usize, route: Route) -> GpuRoute {
        if route == Route::Interpreter {
            return GpuRoute { kernel: None, why: crate::plan::RouteReason::Megakernel };
        }
        let kernel = self.kernels.of(prepared);
        let lines = (self.tuning.jit_hot_rows, self.tuning.jit_min_rows);
        super::programs::route(&kernel, prepared, rows, route, &self.dev.device, lines)
    }

    /// Bytes a job over `inputs` would upload now (0 when they are all resident).
    pub(crate) fn upload_bytes(&self, inputs: &Arc<BoundInputs>) -> u64 {
        self.residency.lock().upload_bytes(inputs)
    }

    /// The device, for page-locking host memory that jobs' inputs are read from.
    pub(crate) fn device(&self) -> &Arc<dyn Device> {
        &self.dev.device
    }

    /// Makes `job`'s program and inputs resident; with its outputs' kinds.
    fn place(&self, job: &GpuJob) -> Result<Placed, String> {
        let mut r = self.residency.lock();
        let program = &job.prepared.program;
        r.program(&self.dev, program)
            .and_then(|p| r.binding(&self.dev, program, &job.inputs, self.threads()).map(|b| (p, b)))
            .map(|(p, b)| (p, b, program.program().outputs().iter().map(|o| o.kind).collect()))
            .map_err(|e| format!("placing the job on the device: {e}"))
    }

    /// Puts a job on the device without blocking. A job already stopped (its ticket or token
    /// cancelled, its deadline passed: a re-run, a retry, a queued lane job) resolves so
    /// instead.
    #[allow(clippy::result_large_err)] // the job comes back by value: boxing it would allocate on every full ring
    fn submit_job(&self, job: GpuJob) -> Result<(), GpuSubmitError> {
        if let Some(reason) = job.ticket.stop.check() {
            job.fail(JobError::stopped(Some(reason)));
            return Ok(());
        }
        if let Some(why) = self.unhealthy() {
            return Err(GpuSubmitError::Unavailable(job, why));
        }
        if self.submit.is_closed() {
            return Err(GpuSubmitError::Closed(job));
        }
        let mut job = job;
        if job.kernel.is_some() {
            if self.tuning.programs {
                return self.lane.push(job).map_err(GpuSubmitError::Closed);
            }
            // No lane: the megakernel holds every SM, so it runs the job.
            job.kernel = None;
        }
        let (program, binding, kinds) = match self.place(&job) {
            Ok(placed) => placed,
            Err(why) => return Err(GpuSubmitError::Unavailable(job, why)),
        };
        let rows = job.rows.len();
        let (nchunks, size) = job.chunks;
        // Runs: one per tile per hits output, plus those a thread appends on its own when its
        // buffer fills (a full buffer's worth each with one hits output; with several, at worst
        // one run per hit).
        let hits_outputs = kinds.iter().filter(|k| **k == OutputKind::Hits).count();
        let tiles = rows.div_ceil(self.block_threads as usize).saturating_add(nchunks);
        let own_runs = if hits_outputs <= 1 { job.hit_capacity / abi::LOCAL_HITS } else { job.hit_capacity };
        let words = geom_words(&job, &kinds);
        let placed = Layout::new(
            &kinds,
            rows,
            job.hit_capacity,
            tiles.saturating_add(own_runs).saturating_add(1),
            words,
        )
        .and_then(|layout| Area::new(&self.dev, &self.arenas, &layout).map(|area| (layout, area)));
        let (layout, area) = match placed {
            Ok(la) => la,
            Err(e) => {
                return Err(GpuSubmitError::Unavailable(job, format!("allocating the job's outputs: {e}")))
            }
        };
        let head = JobHead {
            program: program.record,
            inputs: binding.table,
            outputs: area.device_ptr(),
            rows_begin: job.rows.start as u64,
            rows_end: job.rows.end as u64,
            chunks: nchunks as u32,
            noutputs: kinds.len() as u32,
        };
        let rows = job.rows.clone();
        // Counted before the job is in its slot (so the count never goes below the slots
        // held) and before the push (so the reaper cannot see the ring closed with this job
        // uncounted; see `reap_loop`). Whoever takes it out of the slot uncounts it.
        self.in_flight.fetch_add(1, SeqCst);
        let held = InFlight {
            job,
            layout,
            area,
            _program: program,
            _binding: binding,
            pushed: Instant::now(),
            cancel_sent: false,
        };
        let slot = match self.jobs.insert(held) {
            Ok(slot) => slot,
            Err(held) => {
                self.in_flight.fetch_sub(1, SeqCst);
                return Err(GpuSubmitError::Full(held.job));
            }
        };
        let record = slot as usize * abi::JOB_RECORD_BYTES;
        let written = self
            .records
            .put(record, head)
            .and_then(|()| self.records.put(record + abi::JOB_ERROR_OFFSET, ErrorRecord::default()));
        if let Err(e) = written {
            let back = self.take_slot(slot);
            self.release(slot);
            // `None`: `fail_all` took it meanwhile and resolved its ticket.
            return back.map_or(Ok(()), |f| Err(GpuSubmitError::Unavailable(f.job, e.to_string())));
        }
        let pushed = self.submit.try_push_n(nchunks, |k| SubmitEntry::chunk(slot, k, &rows, size));
        match pushed {
            Ok(()) => {
                self.work.ring(false);
                // Published after `fail_all` swept the slots: nobody will serve it.
                if let Some(why) = self.unhealthy() {
                    if let Some(f) = self.take_slot(slot) {
                        return Err(GpuSubmitError::Unavailable(f.job, why));
                    }
                }
                Ok(())
            }
            Err(e) => {
                let back = self.take_slot(slot);
                self.release(slot);
                match back {
                    Some(f) => Err(match e {
                        PushError::Full => GpuSubmitError::Full(f.job),
                        PushError::Closed => GpuSubmitError::Closed(f.job),
                    }),
                    // `fail_all` took it meanwhile and resolved its ticket.
                    None => Ok(()),
                }
            }
        }
    }

    /// The device's count of chunks taken: moves while the kernel makes progress, also in a
    /// single long job.
    fn chunks_taken(&self) -> Option<u64> {
        let mut b = [0u8; 8];
        self.state.read(abi::STATE_TAKEN_OFFSET, &mut b).ok()?;
        Some(u64::from_le_bytes(b))
    }

    /// The reaper: drains completions, retries re-runs that found no room, watches the
    /// kernel, and sleeps when nothing is in flight.
    fn reap_loop(&self) {
        let mut idle = 0u32;
        let mut last_progress = Instant::now();
        let mut last_check = Instant::now();
        let mut last_cancels = Instant::now();
        let mut taken = None;
        loop {
            // Stop signals first, on their own clock: completions arriving all the time must
            // not starve them.
            if last_cancels.elapsed() > Duration::from_millis(2) && self.in_flight.load(SeqCst) > 0 {
                last_cancels = Instant::now();
                self.send_cancels();
            }
            let mut progressed = false;
            while let Pop::Item(c) = self.complete.try_pop() {
                progressed = true;
                self.finalize(c);
            }
            progressed |= self.retry_pending();
            if progressed {
                idle = 0;
                last_progress = Instant::now();
                continue;
            }
            let busy = self.in_flight.load(SeqCst) > 0 || !self.pending.lock().is_empty();
            if !busy {
                if self.closing.load(SeqCst) && self.in_flight.load(SeqCst) == 0 {
                    return;
                }
                if last_progress.elapsed() < self.tuning.linger {
                    std::hint::spin_loop();
                    continue;
                }
                self.work.sleep_unless(|| {
                    self.in_flight.load(SeqCst) > 0
                        || self.closing.load(SeqCst)
                        || !self.pending.lock().is_empty()
                });
                // Idle time is not a hang: the watchdog starts counting now.
                idle = 0;
                last_progress = Instant::now();
                last_check = Instant::now();
                taken = self.chunks_taken();
                continue;
            }
            if last_check.elapsed() > Duration::from_millis(2) {
                last_check = Instant::now();
                match self.dev.device.kernel_state() {
                    KernelState::Running => {}
                    KernelState::Failed(e) => self.fail_all(format!("the device reported an error: {e}")),
                    KernelState::Exited | KernelState::NotLaunched => {
                        self.fail_all("the megakernel is not running".into())
                    }
                }
                let now_taken = self.chunks_taken();
                if now_taken != taken {
                    taken = now_taken;
                    last_progress = Instant::now();
                }
                if last_progress.elapsed() > self.tuning.timeout {
                    self.fail_all(format!(
                        "watchdog: {} job(s) in flight and no chunk taken or job finished for {:?}",
                        self.in_flight.load(SeqCst),
                        self.tuning.timeout
                    ));
                    last_progress = Instant::now();
                }
            }
            idle += 1;
            if idle < 4096 {
                std::hint::spin_loop();
            } else if idle < 4096 + 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// Resubmits re-runs that found no room; true when one went out.
    fn retry_pending(&self) -> bool {
        let mut any = false;
        loop {
            let Some(job) = self.pending.lock().pop_front() else { return any };
            match self.submit_job(job) {
                Ok(()) => any = true,
                Err(GpuSubmitError::Full(job)) => {
                    self.pending.lock().push_front(job);
                    return any;
                }
                Err(GpuSubmitError::Closed(job)) => {
                    job.fail(JobError::stopped(None));
                }
                Err(GpuSubmitError::Unavailable(job, why)) => self.unavailable(job, why),
            }
        }
    }

    fn finalize(&self, c: CompletionEntry) {
        let Some(f) = self.take_slot(c.job) else { return };
        // A slot whose job was told to stop is cleared before it is given back (the state
        // starts zeroed, so only these need it, and a submission pays no copy for it).
        if f.cancel_sent {
            if let Err(e) = self.set_cancel(c.job, 0) {
                return self.fail_all(format!("clearing a job slot's cancel word: {e}"));
            }
        }
        let record = c.job as usize * abi::JOB_RECORD_BYTES;
        let acc: Result<Vec<Acc>, DeviceError> = (0..f.layout.kinds.len())
            .map(|o| self.records.get::<Acc>(record + abi::JOB_RESULTS_OFFSET + abi::ACC_BYTES * o))
            .collect();
        let error: Result<ErrorRecord, DeviceError> = self.records.get(record + abi::JOB_ERROR_OFFSET);
        let InFlight { job, layout, area, pushed, .. } = f;
        self.conclude(job, layout, area, (c.status, acc, error), pushed, Some(c.job));
    }

    /// Resolves a job the device has finished (`status`, its accumulators and its error
    /// record): its results, or a re-run with room for the hits it found; `slot` (a
    /// megakernel job's) is given back.
    fn conclude(
        &self,
        job: GpuJob,
        layout: Layout,
        area: Area,
        (status, acc, error): (u32, Result<Vec<Acc>, DeviceError>, Result<ErrorRecord, DeviceError>),
        pushed: Instant,
        slot: Option<u32>,
    ) {
        let release = |exec: &GpuExecutor| {
            if let Some(s) = slot {
                exec.release(s);
            }
        };
        let outcome = match (status, acc) {
            (_, Err(e)) => Err(JobError::Device(e.to_string())),
            (abi::STATUS_DONE, Ok(acc)) => {
                let hits: u64 = layout
                    .kinds
                    .iter()
                    .zip(&acc)
                    .filter(|(k, _)| **k == OutputKind::Hits)
                    .map(|(_, a)| a.cursor)
                    .sum();
                job.prepared.note_hits(job.rows.len(), hits);
                if let Some(words) = Area::overflow(&layout, &acc, OutputKind::Geometry) {
                    // Geometry past the arena: again with room for every word counted (and
                    // for the hits, when those overflowed too).
                    drop(area);
                    release(self);
                    let needed = Area::overflow(&layout, &acc, OutputKind::Hits)
                        .map_or(job.hit_capacity, |h| h as usize);
                    let geometries =
                        layout.kinds.iter().filter(|k| **k == OutputKind::Geometry).count() as u64;
                    let bytes = words.saturating_mul(8).saturating_mul(geometries);
                    if let Some(budget) = job.budget.filter(|b| bytes > *b) {
                        job.fail(JobError::OverBudget(crate::plan::OverBudget {
                            rows: job.rows.len(),
                            needed: bytes,
                            budget,
                            what: format!("the {words} words of geometry it produced, for its re-run"),
                            limit: "the memory budget",
                        }));
                    } else {
                        let again = GpuJob { geom_words: words as usize, ..job };
                        self.rerun(again, needed);
                    }
                    return;
                }
                match Area::overflow(&layout, &acc, OutputKind::Hits) {
                    Some(needed) => {
                        drop(area);
                        release(self);
                        match job.overflowed(needed as usize, hits) {
                            Ok(()) => self.rerun(job, needed as usize),
                            Err(e) => job.fail(e),
                        }
                        return;
                    }
                    None => area.columns(&layout, &acc).map_err(JobError::Device).map(|c| job.result(c)),
                }
            }
            (abi::STATUS_FAILED, Ok(_)) => {
                let e = error.unwrap_or_default();
                Err(JobError::Exec(ExecError {
                    row: Some(e.row as usize),
                    pc: Some(e.pc),
                    message: format!("on the GPU: {}", abi::error_message(e.code)),
                }))
            }
            // Stopped: by its ticket, its token or its deadline, or by the shutdown.
            (abi::STATUS_CANCELLED, Ok(_)) => Err(JobError::stopped(job.ticket.stop.reason())),
            (s, Ok(_)) => Err(JobError::Device(format!("the device reported job status {s}"))),
        };
        drop(area);
        release(self);
        job.settle(outcome, pushed.elapsed(), |p, rows, ns| {
            p.note_gpu_time(rows, ns, crate::place::GPU_ROUND_TRIP_NS);
        });
    }

    /// The programs' thread: runs queued jobs' program kernels one at a time until the lane
    /// closes.
    fn lane_loop(&self) {
        while let Some(job) = self.lane.pop() {
            if let Some(reason) = job.ticket.stop.check() {
                // Stopped while queued: a per-job kernel, once launched, runs to its end.
                job.fail(JobError::stopped(Some(reason)));
                continue;
            }
            if let Some(why) = self.unhealthy() {
                self.unavailable(job, why);
                continue;
            }
            self.run_program_job(job);
        }
    }

    /// Runs `job` with its program's own kernel and resolves it (or re-runs it, or hands it
    /// to the fallback when the device cannot take it).
    fn run_program_job(&self, job: GpuJob) {
        let Some(kernel) = job.kernel.clone() else {
            return self.unavailable(job, "a job for the program lane without a kernel".into());
        };
        let (program, binding, kinds) = match self.place(&job) {
            Ok(placed) => placed,
            Err(why) => return self.unavailable(job, why),
        };
        let rows = job.rows.len();
        let hits_outputs = kinds.iter().filter(|k| **k == OutputKind::Hits).count();
        let runs = super::programs::run_capacity(hits_outputs, rows, job.hit_capacity);
        let results_bytes = abi::ACC_BYTES * abi::MAX_OUTPUTS;
        let words = geom_words(&job, &kinds);
        let placed = Layout::new(&kinds, rows, job.hit_capacity, runs, words).and_then(|layout| {
            let area = Area::new(&self.dev, &self.arenas, &layout)?;
            let results = DeviceAlloc::new(&self.dev, results_bytes + std::mem::size_of::<ErrorRecord>())?;
            results.write(0, &fresh_results())?;
            Ok((layout, area, results))
        });
        let (layout, area, results) = match placed {
            Ok(p) => p,
            Err(e) => return self.unavailable(job, format!("allocating the job's outputs: {e}")),
        };
        let args = ProgramArgs {
            program: program.record,
            inputs: binding.table,
            outputs: area.device_ptr(),
            rows_begin: job.rows.start as u64,
            begin: job.rows.start as u64,
            end: job.rows.end as u64,
            acc: results.ptr(),
            error: results.ptr() + results_bytes as u64,
        };
        let started = Instant::now();
        // SAFETY: the kernel was compiled on this device for this program (the engine asked
        // its device); the program record, input table, output area and results are live
        // device allocations laid out as the per-job kernel reads them, held here until it
        // returns; past its timeout the device is wedged below, so none of them is freed.
        let ran = unsafe { self.dev.device.run_program(&kernel, &args, self.tuning.timeout) };
        match ran {
            Ok(()) => {}
            Err(ProgramRunError::NotStarted(e)) => {
                return self.unavailable(job, format!("the program's kernel {}: {e}", kernel.kernel()));
            }
            Err(ProgramRunError::Lost(e)) => {
                // It may still run and write: nothing it reaches may be freed, and the device
                // is not to be trusted.
                self.dev.wedge();
                std::mem::forget((area, results));
                let why = format!("the program's kernel {}: {e}", kernel.kernel());
                self.fail_all(why.clone());
                return self.unavailable(job, why);
            }
        }
        let mut bytes = vec![0u8; results_bytes + std::mem::size_of::<ErrorRecord>()];
        let read = results.read(0, &mut bytes);
        let acc = read.clone().map(|()| {
            (0..kinds.len())
                .map(|o| bytemuck::pod_read_unaligned::<Acc>(&bytes[abi::ACC_BYTES * o..][..abi::ACC_BYTES]))
                .collect()
        });
        let error = read.map(|()| bytemuck::pod_read_unaligned::<ErrorRecord>(&bytes[results_bytes..]));
        let status = match &error {
            Ok(e) if e.code != 0 => abi::STATUS_FAILED,
            _ => abi::STATUS_DONE,
        };
        drop((program, binding, results));
        self.conclude(job, layout, area, (status, acc, error), started, None);
    }

    /// Gives a finished job's slot back.
    fn release(&self, slot: u32) {
        self.jobs.release(slot);
        self.space.ring(true);
    }

    /// Runs `job` again with room for `needed` hits (from the reaper: never waits).
    fn rerun(&self, job: GpuJob, needed: usize) {
        let again = GpuJob { attempt: job.attempt.again(needed), ..job };
        match self.submit_job(again) {
            Ok(()) => {}
            Err(GpuSubmitError::Full(job)) => self.pending.lock().push_back(job),
            Err(GpuSubmitError::Closed(job)) => {
                job.fail(JobError::stopped(None));
            }
            Err(GpuSubmitError::Unavailable(job, why)) => self.unavailable(job, why),
        }
    }

    /// Tells the device to stop every job in flight whose stop signal has tripped (its ticket
    /// or token cancelled, its deadline passed): sets its slot's cancel word, once. Called by
    /// the reaper every few milliseconds while jobs are in flight.
    fn send_cancels(&self) {
        for slot in 0..self.jobs.len() as u32 {
            self.jobs.with(slot, |f| {
                if !f.cancel_sent && f.job.ticket.stop.check().is_some() {
                    // Under the slot's lock: the job is still this slot's, and its slot cannot
                    // be given to another job until it is reaped, which clears the word first
                    // (`finalize`).
                    f.cancel_sent = self.set_cancel(slot, 1).is_ok();
                }
            });
        }
    }

    /// Writes slot `slot`'s cancel word in device memory.
    fn set_cancel(&self, slot: u32, value: u32) -> Result<(), DeviceError> {
        let at = abi::DEVICE_STATE_HEADER + slot as usize * abi::SLOT_STATE_BYTES + abi::SLOT_CANCEL_OFFSET;
        self.state.write(at, &value.to_le_bytes())
    }

    /// Fails every job in flight with `why`, refuses further jobs, and stops the kernel.
    fn fail_all(&self, why: String) {
        {
            let mut u = self.unhealthy.lock();
            if u.is_none() {
                *u = Some(why.clone());
            }
        }
        self.stop_kernel();
        for slot in 0..self.jobs.len() as u32 {
            if let Some(f) = self.take_slot(slot) {
                f.job.fail(JobError::Device(why.clone()));
            }
        }
        let pending: Vec<GpuJob> = self.pending.lock().drain(..).chain(self.lane.drain()).collect();
        for job in pending {
            self.unavailable(job, why.clone());
        }
        self.space.ring_always(true);
    }

    /// Raises `stop` and waits (bounded) for the kernel to leave; if it does not, nothing it
    /// may touch is ever freed.
    fn stop_kernel(&self) {
        if let Ok(w) = self.control.word(abi::CONTROL_STOP) {
            w.store(1, SeqCst);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.dev.device.kernel_state() == KernelState::Running {
            if Instant::now() > deadline {
                self.dev.wedge();
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stops taking jobs; queued chunks are cancelled on the device, running ones finish; returns
    /// once every ticket has resolved and the kernel has stopped. Idempotent.
    pub fn shutdown(&self) {
        let _one = self.shutting_down.lock();
        self.submit.close();
        self.closing.store(true, SeqCst);
        self.work.ring_always(true);
        self.space.ring_always(true);
        for job in self.lane.close() {
            job.fail(JobError::stopped(None));
        }
        if let Some(h) = self.lane_thread.lock().take() {
            let _ = h.join();
        }
        if let Some(h) = self.poller.lock().take() {
            let _ = h.join();
        }
        self.stop_kernel();
        for slot in 0..self.jobs.len() as u32 {
            if let Some(f) = self.take_slot(slot) {
                f.job.fail(JobError::stopped(None));
            }
        }
        let pending: Vec<GpuJob> = self.pending.lock().drain(..).collect();
        for job in pending {
            job.fail(JobError::stopped(None));
        }
    }
}

impl Executor for GpuExecutor {
    type Job = GpuJob;

    fn submit(&self, job: GpuJob) -> Result<(), GpuSubmitError> {
        self.submit_job(job)
    }

    fn has_room(&self, job: &GpuJob) -> bool {
        self.submit.is_closed()
            || self.unhealthy().is_some()
            || (self.jobs.has_free() && self.submit.has_room(job.chunks.0))
    }

    fn space(&self) -> &Doorbell {
        &self.space
    }

    fn shutdown(&self) {
        GpuExecutor::shutdown(self);
    }
}

/// Sets `acc` (a run of 32-byte `MrAcc`s) as the device starts them: zero, but every sum at
/// -0.0 (the identity of IEEE addition).
fn fresh_accumulators(acc: &mut [u8]) {
    for a in acc.chunks_exact_mut(abi::ACC_BYTES) {
        a.fill(0);
        a[abi::ACC_SUM_OFFSET..abi::ACC_SUM_OFFSET + 8].copy_from_slice(&(-0.0f64).to_bits().to_le_bytes());
    }
}

/// A per-job kernel's results as it starts them: fresh accumulators, then a clear error record.
fn fresh_results() -> Vec<u8> {
    let mut bytes = vec![0u8; abi::ACC_BYTES * abi::MAX_OUTPUTS + std::mem::size_of::<ErrorRecord>()];
    fresh_accumulators(&mut bytes[..abi::ACC_BYTES * abi::MAX_OUTPUTS]);
    bytes
}

/// The device address of a ring's memory.
fn ring_device_ptr<T: Copy + Send>(ring: &Ring<T, MappedRing>) -> u64 {
    ring.memory().device_ptr()
}

/// Words each geometry output's arena gets: what the job asked for on a re-run, else an
/// estimate — a geometry a row the size of the average row of its largest input (stored
/// geometries are mostly input rows or constructions from them), with slack. Past it the job
/// runs again with room for what it counted.
fn geom_words(job: &GpuJob, kinds: &[OutputKind]) -> usize {
    if !kinds.contains(&OutputKind::Geometry) {
        return 0;
    }
    if job.geom_words > 0 {
        return job.geom_words;
    }
    let per_row = job
        .inputs
        .inputs()
        .iter()
        .map(|i| (DeviceColumn::bytes(&i.column) / 8).div_ceil(i.column.len().max(1)) + 2)
        .max()
        .unwrap_or(4)
        .max(4);
    job.rows.len().saturating_mul(per_row).saturating_add(per_row / 4 * job.rows.len()).saturating_add(1024)
}
