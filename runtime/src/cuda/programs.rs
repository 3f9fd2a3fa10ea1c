//! The GPU JIT route: a program's own kernel (`meridian_kernels::cuda::jit`'s generated
//! code), compiled once per program for the engine's device and launched once per job, one
//! thread a row, beside the megakernel.
//!
//! Topology: with this route on, the megakernel is launched as a latency lane — one block an
//! SM, half of what fits — so that programs' kernels have the other half of every SM (a
//! megakernel holding them all would keep them from ever starting). Small jobs keep the lane's
//! microsecond round trip; large ones launch their program's kernel, one at a time, on a
//! stream of their own, from the lane's thread here.
//!
//! Which jobs take it ([`route`]): under `jit` every GPU job whose program compiles (the first
//! job waits for the compile); under `auto` a program's kernel is compiled in the background
//! once its GPU jobs have run [`GPU_JIT_HOT_ROWS`] rows, and from then on its jobs of at least
//! [`GPU_JIT_MIN_ROWS`] rows take it; smaller ones stay on the lane (both set by
//! `EngineBuilder::gpu_jit_rows`). Once compiled, a program keeps its kernel: the route does
//! not flap with job sizes near the line, only the rows of each job choose. A program whose kernel
//! does not compile stays on the megakernel, and says why.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::events::{self, Event};
use crate::job::{ByProgram, PreparedInner};
use crate::plan::RouteReason;
use crate::route::Route;

use super::device::{CompiledProgram, Device};
use super::executor::GpuJob;

/// Under `auto`, rows a program's GPU jobs run before its kernel is compiled: below it a
/// compile (NVRTC: about a second on the H200's host, five on a 2-core machine) would not pay.
pub const GPU_JIT_HOT_ROWS: u64 = 1 << 20;

/// Under `auto`, the fewest rows a job takes its program's kernel with: smaller jobs keep the
/// megakernel's round trip (a launch and its synchronisation cost several of them).
pub const GPU_JIT_MIN_ROWS: usize = 1 << 16;

/// Where a program's kernel stands.
#[derive(Clone, Debug, Default)]
enum State {
    /// Not asked for yet.
    #[default]
    Cold,
    /// Being compiled.
    Compiling,
    /// Compiled.
    Ready(Arc<CompiledProgram>),
    /// Would not compile: why.
    Failed(String),
}

/// A program's kernel for the engine's GPU, kept by the executor by program hash
/// ([`Kernels`]).
#[derive(Debug, Default)]
pub(crate) struct ProgramKernel {
    state: Mutex<State>,
    done: Condvar,
    /// Rows of this program's GPU jobs so far (what makes it hot).
    rows: AtomicU64,
}

impl ProgramKernel {
    /// The compiled kernel, compiling it on this thread first if no one has (or waiting for
    /// whoever is); `Err` is why it does not compile.
    fn wait(
        &self,
        compile: impl FnOnce() -> Result<CompiledProgram, String>,
    ) -> Result<Arc<CompiledProgram>, String> {
        let mut s = self.state.lock();
        loop {
            match &*s {
                State::Ready(k) => return Ok(k.clone()),
                State::Failed(why) => return Err(why.clone()),
                State::Compiling => self.done.wait(&mut s),
                State::Cold => break,
            }
        }
        *s = State::Compiling;
        drop(s);
        let result = compile().map(Arc::new);
        self.finish(result.clone());
        result
    }

    fn finish(&self, result: Result<Arc<CompiledProgram>, String>) {
        *self.state.lock() = match result {
            Ok(k) => State::Ready(k),
            Err(why) => State::Failed(why),
        };
        self.done.notify_all();
    }
}

/// The executor's programs' kernels, by program hash.
#[derive(Debug, Default)]
pub(crate) struct Kernels(Mutex<ByProgram<Arc<ProgramKernel>>>);

impl Kernels {
    /// The kernel of `prepared`'s program (cold until a job wants it).
    pub(crate) fn of(&self, prepared: &PreparedInner) -> Arc<ProgramKernel> {
        self.0.lock().entry(prepared.program.hash()).or_default().clone()
    }
}

/// What runs a GPU job's rows: its program's kernel, or (`None`) the megakernel; and why.
pub(crate) struct GpuRoute {
    pub kernel: Option<Arc<CompiledProgram>>,
    pub why: RouteReason,
}

/// The route of a GPU job of `rows` rows of `prepared` under the engine's GPU route `route`
/// (see the module's documentation), compiling the program's kernel for `device` when it is
/// wanted: under `jit` on this thread, under `auto` on a thread of its own.
pub(crate) fn route(
    kernel: &Arc<ProgramKernel>,
    prepared: &Arc<PreparedInner>,
    rows: usize,
    route: Route,
    device: &Arc<dyn Device>,
    (hot_rows, min_rows): (u64, usize),
) -> GpuRoute {
    let total = kernel.rows.fetch_add(rows as u64, Relaxed).saturating_add(rows as u64);
    // Made only where a compile is wanted: most jobs find the kernel's state settled.
    let compile = || {
        let (device, prepared) = (device.clone(), prepared.clone());
        move || {
            let symbol = format!("p{}", prepared.program.hash());
            device.compile_program(&prepared.program, &symbol).map_err(|e| e.0)
        }
    };
    match route {
        Route::Interpreter => GpuRoute { kernel: None, why: RouteReason::Megakernel },
        Route::Jit => {
            let asked = RouteReason::Asked("jit");
            match kernel.wait(compile()) {
                Ok(k) => GpuRoute { kernel: Some(k), why: asked },
                Err(why) => GpuRoute { kernel: None, why: RouteReason::Failed(Box::new(asked), why) },
            }
        }
        Route::Auto => {
            let state = kernel.state.lock().clone();
            let hot = RouteReason::Hot { total, hot: hot_rows };
            match state {
                State::Ready(k) if rows >= min_rows => GpuRoute { kernel: Some(k), why: hot },
                State::Ready(_) => GpuRoute { kernel: None, why: RouteReason::Lane { rows, min: min_rows } },
                State::Compiling => GpuRoute { kernel: None, why: RouteReason::Compiling },
                State::Failed(why) => GpuRoute { kernel: None, why: RouteReason::Failed(Box::new(hot), why) },
                State::Cold if total < hot_rows => {
                    GpuRoute { kernel: None, why: RouteReason::Cold { total, hot: hot_rows } }
                }
                State::Cold => {
                    let started = {
                        let mut s = kernel.state.lock();
                        let cold = matches!(*s, State::Cold);
                        if cold {
                            *s = State::Compiling;
                        }
                        cold
                    };
                    if started {
                        let compile = compile();
                        let (owner, settled) = (prepared.clone(), kernel.clone());
                        let spawned =
                            std::thread::Builder::new().name("meridian-gpu-jit".into()).spawn(move || {
                                let result = compile().map(Arc::new);
                                if let Err(why) = &result {
                                    let detail =
                                        format!("program {} (GPU route auto)", owner.program.hash().short());
                                    events::record(Event::new("route", "gpu-jit", "gpu-interp", why, detail));
                                }
                                settled.finish(result);
                            });
                        if let Err(e) = spawned {
                            kernel.finish(Err(format!("could not start the compile thread: {e}")));
                        }
                    }
                    GpuRoute { kernel: None, why: RouteReason::Compiling }
                }
            }
        }
    }
}

/// Jobs waiting for the program lane, and whether it still takes them.
#[derive(Debug, Default)]
pub(crate) struct LaneQueue {
    queue: Mutex<(VecDeque<GpuJob>, bool)>,
    ready: Condvar,
}

impl LaneQueue {
    /// Queues `job`; gives it back once the lane is closed.
    #[allow(clippy::result_large_err)] // the job comes back by value, as from the executor's `submit`
    pub fn push(&self, job: GpuJob) -> Result<(), GpuJob> {
        let mut q = self.queue.lock();
        if q.1 {
            return Err(job);
        }
        q.0.push_back(job);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job, waiting for one; `None` once closed and drained.
    pub fn pop(&self) -> Option<GpuJob> {
        let mut q = self.queue.lock();
        loop {
            if let Some(job) = q.0.pop_front() {
                return Some(job);
            }
            if q.1 {
                return None;
            }
            self.ready.wait(&mut q);
        }
    }

    /// Takes no more jobs; returns those still queued.
    pub fn close(&self) -> Vec<GpuJob> {
        let mut q = self.queue.lock();
        q.1 = true;
        self.ready.notify_all();
        q.0.drain(..).collect()
    }

    /// The jobs queued now (taken out: the device failed).
    pub fn drain(&self) -> Vec<GpuJob> {
        self.queue.lock().0.drain(..).collect()
    }
}

/// Run capacity for a per-job kernel's hits output: each thread appends its own runs — one at
/// each flush of its 8-hit buffer and one at its end — and every run holds a hit, so an output
/// has at most `min(hits, rows + all hits / 8)` runs.
pub(crate) fn run_capacity(hits_outputs: usize, rows: usize, hit_capacity: usize) -> usize {
    let flushed = hit_capacity.saturating_mul(hits_outputs) / super::abi::LOCAL_HITS;
    hit_capacity.min(rows.saturating_add(flushed)).max(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    #[test]
    fn run_capacity_bounds_a_threads_own_runs() {
        // Every run holds a hit.
        assert_eq!(run_capacity(1, 1_000, 10), 10);
        // At most one run a row plus one a full buffer.
        assert_eq!(run_capacity(1, 10, 800), 110);
        assert_eq!(run_capacity(2, 10, 800), 210);
        assert_eq!(run_capacity(1, 0, 0), 1);
        assert_eq!(run_capacity(3, usize::MAX, usize::MAX), usize::MAX);
    }

    #[test]
    fn a_kernel_compiles_once_and_waiters_share_it() {
        let k = Arc::new(ProgramKernel::default());
        let calls = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (k, calls) = (k.clone(), calls.clone());
                std::thread::spawn(move || {
                    k.wait(|| {
                        calls.fetch_add(1, Relaxed);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        Err("no compiler here".to_owned())
                    })
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().unwrap_err(), "no compiler here");
        }
        assert_eq!(calls.load(Relaxed), 1);
    }

    #[test]
    fn a_closed_lane_gives_jobs_back_and_drains() {
        let q = LaneQueue::default();
        assert!(q.close().is_empty());
        assert!(q.pop().is_none());
    }
}
