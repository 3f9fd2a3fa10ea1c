//! The dispatch-latency experiment: how fast a host thread can hand a tiny job to a resident
//! kernel and see it complete, for each placement of the doorbell, against launching a kernel
//! (or a CUDA graph) per job. The CUDA side is `driver/cuda/dispatch_latency.cu`.
//!
//! Every round trip checks the result, so a broken protocol fails instead of timing garbage.

use std::ffi::c_void;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cudarc::driver::{sys, PushKernelArg};

use crate::error::{DriverContext, GpuError};
use crate::{resident_grid, CubinCache, DeviceBuffer, Gpu, MappedHostBuffer};

/// The experiment's CUDA source.
pub const SOURCE: &str = include_str!("../cuda/dispatch_latency.cu");

// Word indices into the control block; must match the CTL_* defines in the source.
const CTL_DOORBELL: usize = 0;
const CTL_COMPLETION: usize = 16;
const CTL_A: usize = 32;
const CTL_B: usize = 33;
const CTL_RESULT: usize = 48;
/// A host-side staging word for the device-doorbell copy (pinned, so the copy is async).
const CTL_STAGING: usize = 64;
const CTL_WORDS: usize = 80;
const DOORBELL_STOP: u64 = u64::MAX;
const BLOCK_THREADS: u32 = 32;

/// Where the doorbell lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doorbell {
    /// In mapped host memory: the host stores, the device polls over the bus.
    MappedHost,
    /// In device memory: the host writes it with an 8-byte `cuMemcpyHtoDAsync` on a second
    /// stream; the device polls its own memory.
    DeviceCopy,
}

/// How many blocks poll the doorbell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pollers {
    /// One block.
    One,
    /// One block per SM (the occupancy-derived resident grid, capped at one block per SM so
    /// that other kernels still find room).
    Resident,
}

/// One configuration of the experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// A resident kernel serving jobs; the completion word is always in mapped host memory.
    Resident {
        /// Where the doorbell lives.
        doorbell: Doorbell,
        /// How many blocks poll.
        pollers: Pollers,
        /// `__nanosleep` between idle polls, in nanoseconds (0: spin).
        backoff_ns: u32,
    },
    /// Baseline: `cuLaunchKernel` of a one-thread kernel plus `cuStreamSynchronize` per job.
    LaunchPerJob,
    /// Baseline: `cuGraphLaunch` of a captured one-kernel graph plus `cuStreamSynchronize`.
    GraphPerJob,
}

impl Variant {
    /// The matrix the issue asks for: (a) mapped doorbell with back-off 0/32/256 ns and one vs
    /// resident-grid pollers, (b) device doorbell likewise, (c) launch per job, (d) graph.
    pub fn standard_matrix() -> Vec<Variant> {
        let mut v = Vec::new();
        for doorbell in [Doorbell::MappedHost, Doorbell::DeviceCopy] {
            for pollers in [Pollers::One, Pollers::Resident] {
                for backoff_ns in [0, 32, 256] {
                    v.push(Variant::Resident { doorbell, pollers, backoff_ns });
                }
            }
        }
        v.push(Variant::LaunchPerJob);
        v.push(Variant::GraphPerJob);
        v
    }

    /// A short label for tables: `(a) mapped doorbell`, `(c) launch per job`, ...
    pub fn label(&self) -> &'static str {
        match self {
            Variant::Resident { doorbell: Doorbell::MappedHost, .. } => {
                "(a) resident, doorbell in mapped host memory"
            }
            Variant::Resident { doorbell: Doorbell::DeviceCopy, .. } => {
                "(b) resident, doorbell in device memory (8-byte HtoD copy; the copy call is timed)"
            }
            Variant::LaunchPerJob => "(c) cuLaunchKernel + cuStreamSynchronize per job",
            Variant::GraphPerJob => "(d) cuGraphLaunch + cuStreamSynchronize per job",
        }
    }
}

/// Latency statistics over the measured round trips.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Round trips measured (after warm-up).
    pub n: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Maximum.
    pub max: Duration,
    /// Mean.
    pub mean: Duration,
}

impl Stats {
    /// Statistics of `samples` (sorted in place); `None` if empty.
    pub fn of(samples: &mut [Duration]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let n = samples.len();
        let at = |q: f64| samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        let total: Duration = samples.iter().sum();
        Some(Stats { n, p50: at(0.5), p99: at(0.99), max: samples[n - 1], mean: total / n as u32 })
    }
}

/// One measured configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    /// The configuration.
    pub variant: Variant,
    /// Blocks launched.
    pub grid: u32,
    /// The measurements.
    pub stats: Stats,
}

/// How long to run.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Measured round trips per configuration.
    pub round_trips: usize,
    /// Unmeasured round trips first.
    pub warmup: usize,
    /// Longest wait for one completion before giving up.
    pub timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config { round_trips: 100_000, warmup: 1_000, timeout: Duration::from_secs(2) }
    }
}

/// The compiled experiment on one device.
#[derive(Debug)]
pub struct Experiment {
    gpu: Gpu,
    resident: cudarc::driver::CudaFunction,
    once: cudarc::driver::CudaFunction,
    /// Set when a resident kernel could not be stopped: its buffers were leaked rather than
    /// freed under it, and the device is not used again by this experiment.
    wedged: AtomicBool,
}

impl Experiment {
    /// Compiles (or loads from `cache`) the experiment for `gpu`.
    pub fn new(gpu: Gpu, cache: &CubinCache) -> Result<Experiment, GpuError> {
        let (cubin, _) = cache.get_or_compile("dispatch_latency.cu", SOURCE, gpu.arch(), &[])?;
        let module = gpu.load(&cubin)?;
        let resident = module.load_function("resident_adder").during("loading resident_adder")?;
        let once = module.load_function("add_once").during("loading add_once")?;
        Ok(Experiment { gpu, resident, once, wedged: AtomicBool::new(false) })
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Runs one configuration.
    pub fn run(&self, variant: Variant, config: &Config) -> Result<Row, GpuError> {
        if self.wedged.load(Ordering::Relaxed) {
            return Err(GpuError::Invalid(
                "an earlier resident kernel could not be stopped; the device is not reused",
            ));
        }
        match variant {
            Variant::Resident { doorbell, pollers, backoff_ns } => self
                .run_resident(doorbell, pollers, backoff_ns, config)
                .map(|(grid, stats)| Row { variant, grid, stats }),
            Variant::LaunchPerJob | Variant::GraphPerJob => self
                .run_per_job(variant == Variant::GraphPerJob, config)
                .map(|stats| Row { variant, grid: 1, stats }),
        }
    }

    fn run_resident(
        &self,
        doorbell: Doorbell,
        pollers: Pollers,
        backoff_ns: u32,
        config: &Config,
    ) -> Result<(u32, Stats), GpuError> {
        let ctl = MappedHostBuffer::new(&self.gpu, CTL_WORDS * 8)?;
        let ctl = &ctl;
        let kernel_stream = self.gpu.stream()?;
        let copy_stream = self.gpu.stream()?;
        let claim = DeviceBuffer::new(&self.gpu, 8)?;
        let device_doorbell = DeviceBuffer::new(&self.gpu, 8)?;
        let cfg = match pollers {
            Pollers::One => cudarc::driver::LaunchConfig {
                grid_dim: (1, 1, 1),
                block_dim: (BLOCK_THREADS, 1, 1),
                shared_mem_bytes: 0,
            },
            Pollers::Resident => resident_grid(&self.gpu, &self.resident, BLOCK_THREADS, 0, Some(1))?,
        };
        let doorbell_ptr = match doorbell {
            Doorbell::MappedHost => ctl.device_ptr_at(CTL_DOORBELL * 8).unwrap_or(0),
            Doorbell::DeviceCopy => device_doorbell.device_ptr(),
        };
        let staging = ctl.as_ptr().wrapping_add(CTL_STAGING * 8).cast::<c_void>();
        let ring = |seq: u64| -> Result<(), GpuError> {
            match doorbell {
                Doorbell::MappedHost => word(ctl, CTL_DOORBELL).store(seq, Ordering::Release),
                Doorbell::DeviceCopy => {
                    word(ctl, CTL_STAGING).store(seq, Ordering::Release);
                    // SAFETY: `staging` is 8 bytes of pinned host memory in `ctl`, which lives
                    // until after the kernel stops; the destination is an 8-byte device buffer.
                    unsafe {
                        sys::cuMemcpyHtoDAsync_v2(
                            device_doorbell.device_ptr(),
                            staging,
                            8,
                            copy_stream.cu_stream(),
                        )
                    }
                    .result()
                    .during("cuMemcpyHtoDAsync of the doorbell")?;
                }
            }
            Ok(())
        };

        let (ctl_ptr, claim_ptr) = (ctl.device_ptr(), claim.device_ptr());
        let mut launch = kernel_stream.launch_builder(&self.resident);
        launch.arg(&doorbell_ptr).arg(&ctl_ptr).arg(&claim_ptr).arg(&backoff_ns);
        // SAFETY: the arguments match `resident_adder(const u64*, u64*, u64*, unsigned)`. The
        // buffers it addresses are dropped only after the kernel is known to have stopped; if
        // it cannot be stopped they are leaked instead (below).
        unsafe { launch.launch(cfg) }.during("launching resident_adder")?;

        let measured = self.round_trips(ctl, config, true, &ring);
        // Stop the kernel whatever happened, then wait (bounded) for it and for the copies.
        let stopped = ring(DOORBELL_STOP)
            .and_then(|()| wait_idle(&kernel_stream, config.timeout * 5))
            .and_then(|()| wait_idle(&copy_stream, config.timeout));
        if let Err(e) = stopped {
            // The kernel may still be polling these: freeing them could fault the device or
            // hang the free. Leak them, and refuse further runs.
            self.wedged.store(true, Ordering::Relaxed);
            std::mem::forget(claim);
            std::mem::forget(device_doorbell);
            std::mem::forget(kernel_stream);
            std::mem::forget(copy_stream);
            return Err(match measured {
                Err(first) => GpuError::Timeout(format!("{first}; then stopping the kernel failed: {e}")),
                Ok(_) => e,
            });
        }
        let mut samples = measured?;
        let stats = Stats::of(&mut samples).ok_or(GpuError::Invalid("no round trips measured"))?;
        Ok((cfg.grid_dim.0, stats))
    }

    fn run_per_job(&self, graph: bool, config: &Config) -> Result<Stats, GpuError> {
        let ctl = MappedHostBuffer::new(&self.gpu, CTL_WORDS * 8)?;
        let ctl = &ctl;
        let stream = self.gpu.stream()?;
        let mut ctl_ptr = ctl.device_ptr();
        let mut params = [std::ptr::addr_of_mut!(ctl_ptr).cast::<c_void>()];
        let launch = |params: &mut [*mut c_void; 1]| -> Result<(), GpuError> {
            // SAFETY: `add_once(u64*)` takes one pointer argument, passed by address; `ctl`
            // outlives every launch, each of which is synchronised before the next.
            unsafe {
                sys::cuLaunchKernel(
                    self.once.cu_function(),
                    1,
                    1,
                    1,
                    1,
                    1,
                    1,
                    0,
                    stream.cu_stream(),
                    params.as_mut_ptr(),
                    std::ptr::null_mut(),
                )
            }
            .result()
            .during("cuLaunchKernel")
        };
        let sync = || {
            // SAFETY: the stream is live.
            unsafe { sys::cuStreamSynchronize(stream.cu_stream()) }.result().during("cuStreamSynchronize")
        };
        let captured = if graph {
            stream
                .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
                .during("beginning graph capture")?;
            if let Err(e) = launch(&mut params) {
                // Leave the stream out of capture mode before reporting.
                let _ = stream.end_capture(sys::CUgraphInstantiate_flags(0));
                return Err(e);
            }
            let g = stream
                .end_capture(sys::CUgraphInstantiate_flags(0))
                .during("ending graph capture")?
                .ok_or(GpuError::Invalid("graph capture recorded nothing"))?;
            g.upload().during("uploading the graph")?;
            Some(g)
        } else {
            None
        };
        let mut samples = self.round_trips(ctl, config, false, |_| {
            match &captured {
                // Raw cuGraphLaunch, like the raw cuLaunchKernel of (c), so neither baseline pays
                // for cudarc's per-call context checks.
                // SAFETY: the graph exec and the stream are live for the whole loop.
                Some(g) => unsafe { sys::cuGraphLaunch(g.cu_graph_exec(), stream.cu_stream()) }
                    .result()
                    .during("cuGraphLaunch")?,
                None => launch(&mut params)?,
            }
            sync()
        })?;
        Stats::of(&mut samples).ok_or(GpuError::Invalid("no round trips measured"))
    }

    /// Runs warm-up plus measured round trips: write operands, `submit(seq)`, then (for the
    /// resident kernel) spin until the completion word reaches `seq` — the baselines are
    /// complete when `submit` returns from its synchronize — and check the result.
    fn round_trips(
        &self,
        ctl: &MappedHostBuffer,
        config: &Config,
        wait_for_completion: bool,
        mut submit: impl FnMut(u64) -> Result<(), GpuError>,
    ) -> Result<Vec<Duration>, GpuError> {
        let mut samples = Vec::with_capacity(config.round_trips);
        for i in 0..config.warmup + config.round_trips {
            let seq = i as u64 + 1;
            let (a, b) = (i as f64, 0.5_f64);
            word(ctl, CTL_A).store(a.to_bits(), Ordering::Relaxed);
            word(ctl, CTL_B).store(b.to_bits(), Ordering::Relaxed);
            word(ctl, CTL_RESULT).store(f64::NAN.to_bits(), Ordering::Relaxed);
            let start = Instant::now();
            submit(seq)?;
            let completion = word(ctl, CTL_COMPLETION);
            while wait_for_completion && completion.load(Ordering::Acquire) != seq {
                if start.elapsed() > config.timeout {
                    return Err(GpuError::Timeout(format!(
                        "job {seq} did not complete within {:?}",
                        config.timeout
                    )));
                }
                std::hint::spin_loop();
            }
            let elapsed = start.elapsed();
            let got = f64::from_bits(word(ctl, CTL_RESULT).load(Ordering::Acquire));
            if got != a + b {
                return Err(GpuError::WrongResult(format!("job {seq}: result {got}, expected {}", a + b)));
            }
            if i >= config.warmup {
                samples.push(elapsed);
            }
        }
        Ok(samples)
    }
}

fn word(ctl: &MappedHostBuffer, index: usize) -> &std::sync::atomic::AtomicU64 {
    // Indices are the CTL_* constants, all below CTL_WORDS, the buffer's size in words.
    ctl.word(index).unwrap_or_else(|| unreachable!("control word {index} is inside the control block"))
}

/// Waits until `stream` has no pending work, polling so a hung kernel cannot hang the host.
fn wait_idle(stream: &cudarc::driver::CudaStream, timeout: Duration) -> Result<(), GpuError> {
    let start = Instant::now();
    loop {
        // SAFETY: the stream is live; cuStreamQuery only reads its state.
        let r = unsafe { sys::cuStreamQuery(stream.cu_stream()) };
        match r {
            sys::cudaError_enum::CUDA_SUCCESS => return Ok(()),
            sys::cudaError_enum::CUDA_ERROR_NOT_READY if start.elapsed() < timeout => {
                std::thread::sleep(Duration::from_micros(100));
            }
            sys::cudaError_enum::CUDA_ERROR_NOT_READY => {
                return Err(GpuError::Timeout(format!("the resident kernel did not stop within {timeout:?}")))
            }
            _ => return r.result().during("waiting for the resident kernel"),
        }
    }
}

/// The results as a markdown table (times in microseconds).
pub fn markdown_table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| variant | polling blocks | back-off | p50 µs | p99 µs | max µs | mean µs | round trips |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    for r in rows {
        let backoff = match r.variant {
            Variant::Resident { backoff_ns, .. } => format!("{backoff_ns} ns"),
            _ => "—".to_owned(),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            r.variant.label(),
            r.grid,
            backoff,
            us(r.stats.p50),
            us(r.stats.p99),
            us(r.stats.max),
            us(r.stats.mean),
            r.stats.n
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_percentiles() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let s = Stats::of(&mut v).unwrap();
        assert_eq!(
            (s.n, s.p50, s.p99, s.max),
            (100, Duration::from_micros(50), Duration::from_micros(99), Duration::from_micros(100))
        );
        assert_eq!(s.mean, Duration::from_micros(50) + Duration::from_nanos(500));
        assert!(Stats::of(&mut []).is_none());
        let mut one = [Duration::from_micros(7)];
        assert_eq!(Stats::of(&mut one).unwrap().p99, Duration::from_micros(7));
    }

    #[test]
    fn the_matrix_covers_the_issue() {
        let m = Variant::standard_matrix();
        assert_eq!(m.len(), 14);
        assert!(m.contains(&Variant::LaunchPerJob) && m.contains(&Variant::GraphPerJob));
        for backoff_ns in [0, 32, 256] {
            for pollers in [Pollers::One, Pollers::Resident] {
                assert!(m.contains(&Variant::Resident {
                    doorbell: Doorbell::MappedHost,
                    pollers,
                    backoff_ns
                }));
            }
        }
    }
}
