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
//!
//! Here: the executor, its start and shutdown. Its parts: [`publish`] (a job made resident
//! and put on the ring), [`reap`] (completions read back, re-runs, tickets resolved),
//! [`lane`] (programs' own kernels), [`failure`] (cancels, a failed device, the kernel
//! stopped), [`ring_memory`] (the rings in mapped host memory).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use meridian_bytecode::OutputKind;
use meridian_kernels::interp::BoundInputs;
use parking_lot::Mutex;

use super::abi::{self, Control};
use super::device::{CompiledProgram, Device, DeviceAlloc, DeviceError, MappedAlloc, Shared};
use super::outputs::{Area, Arenas, Layout};
use super::programs::{GpuRoute, Kernels, LaneQueue};
use super::resident::{Residency, ResidentBinding, ResidentProgram};
use crate::doorbell::Doorbell;
use crate::job::{Attempt, Executor, JobError, JobTable, PreparedInner, Refused, Replace};
use crate::ring::Ring;
use crate::route::Route;

mod failure;
mod lane;
mod publish;
mod reap;
mod ring_memory;

use ring_memory::{ring_device_ptr, MappedRing};
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
    /// The dispatch protocol; `None`: [`DISPATCH_ENV`], else [`GpuDispatch::Poller`].
    pub protocol: Option<GpuDispatch>,
}

/// How the megakernel finds jobs and completes them (docs/ring-protocol.md, "The device
/// side").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuDispatch {
    /// One reader of host memory on the submission path (the leader next in line; the others
    /// wait on device memory), self-contained ring entries, submission slots freed by the
    /// host, no system-scope fence. The default.
    Poller,
    /// The protocol of 2026-11: every idle leader polls its own slot in host memory and
    /// reads the job's record and output table from there; a system fence per thread a chunk.
    /// Kept until a device run has compared the two.
    Leaders,
}

impl GpuDispatch {
    fn abi(self) -> u32 {
        match self {
            GpuDispatch::Poller => abi::PROTOCOL_POLLER,
            GpuDispatch::Leaders => abi::PROTOCOL_LEADERS,
        }
    }
}

/// The environment variable that picks the dispatch protocol when the builder does not:
/// `poller` or `leaders`.
pub const DISPATCH_ENV: &str = "MERIDIAN_GPU_PROTOCOL";

/// The protocol an environment value names (`None` or empty: the default).
pub(crate) fn dispatch_from(value: Option<&str>) -> Result<GpuDispatch, String> {
    match value.map(str::trim) {
        None | Some("") | Some("poller") => Ok(GpuDispatch::Poller),
        Some("leaders") => Ok(GpuDispatch::Leaders),
        Some(other) => Err(format!("{DISPATCH_ENV}={other}: expected `poller` or `leaders`")),
    }
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
            protocol: None,
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
    /// Threads a block of that kernel's launch, as planned (raced under autotune).
    pub block_threads: u32,
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

/// The CUDA executor.
#[derive(Debug)]
pub(crate) struct GpuExecutor {
    dev: Arc<Shared>,
    control: MappedAlloc,
    submit: Ring<abi::RingSubmit, MappedRing>,
    complete: Ring<abi::RingComplete, MappedRing>,
    /// The dispatch protocol (`abi::PROTOCOL_*`).
    protocol: u32,
    /// Under the poller protocol: submission positions freed so far (by the reaper, up to
    /// the `taken` completions carry).
    freed: AtomicU64,
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
        let protocol = match tuning.protocol {
            Some(p) => p,
            None => dispatch_from(std::env::var(DISPATCH_ENV).ok().as_deref()).map_err(DeviceError)?,
        }
        .abi();
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
            protocol,
            ..Control::default()
        };
        control.put(0, ctl)?;
        let jobs = JobTable::new(job_slots).map_err(|e| DeviceError(format!("making the job table: {e}")))?;
        let blocks = dev.device.launch(control.device_ptr(), tuning.programs)?;
        let lane = if tuning.programs { " (a latency lane; programs' kernels beside it)" } else { "" };
        let how = if protocol == abi::PROTOCOL_LEADERS { ", leaders' protocol" } else { "" };
        let description = format!(
            "{}, megakernel of {blocks} blocks × {block_threads} threads{lane}{how}",
            dev.device.describe()
        );
        let exec = Arc::new(GpuExecutor {
            dev,
            control,
            submit,
            complete,
            protocol,
            freed: AtomicU64::new(0),
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

    /// Stops taking jobs; queued chunks are cancelled on the device, running ones finish; returns
    /// once every ticket has resolved and the kernel has stopped. Idempotent.
    pub fn shutdown(&self) {
        let _one = self.shutting_down.lock();
        self.submit.close();
        self.closing.store(true, SeqCst);
        if self.protocol == abi::PROTOCOL_POLLER {
            // The poller reads no `closed`: jobs in flight are told through their cancel words
            // (a queued chunk runs no row, a running one stops within 8 tiles).
            self.cancel_all();
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::{dispatch_from, GpuDispatch};

    #[test]
    fn the_dispatch_protocol_is_named_or_refused() {
        assert_eq!(dispatch_from(None), Ok(GpuDispatch::Poller));
        assert_eq!(dispatch_from(Some("")), Ok(GpuDispatch::Poller));
        assert_eq!(dispatch_from(Some("poller")), Ok(GpuDispatch::Poller));
        assert_eq!(dispatch_from(Some(" leaders ")), Ok(GpuDispatch::Leaders));
        let e = dispatch_from(Some("leader")).unwrap_err();
        assert!(e.contains("MERIDIAN_GPU_PROTOCOL=leader") && e.contains("`poller` or `leaders`"), "{e}");
    }
}
