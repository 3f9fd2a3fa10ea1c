//! Placement: where a job runs — the CPU or the GPU — under the engine's mode, by the GPU
//! variant's admission, the device's health and free memory, and (under `auto`) the cost
//! model of [`crate::place`]; and the one way a job falls back from the GPU to the CPU,
//! whether placement decides it or the GPU executor hands a job back ([`Requeue`]).

use std::fmt::Display;
use std::sync::Arc;

use meridian_kernels::interp::OutputBuffers;

use super::submit::resolved;
use super::{Engine, Mode};
use crate::cpu::code::Code;
use crate::cpu::{CpuExecutor, CpuJob};
use crate::cuda::executor::GpuExecutor;
use crate::events::{self, Event};
use crate::job::{Attempt, Job, JobError, Replace, Ticket};
use crate::plan;
use crate::variants::{Backend, VariantId};

impl Engine {
    /// Where `job` runs, or (`Err`) a ticket already resolved with why it cannot run.
    /// A job the CPU runs for no reason of its own names `backends.cpu`.
    pub(super) fn place(&self, job: &Job, backends: &CpuBackends) -> Result<Arc<Backend>, Ticket> {
        if job.bound.program != job.prepared.inner.program.hash() {
            // Bindings are checked against one program; running them with another is a
            // caller bug that must not reach an executor.
            return Err(resolved(Err(JobError::Mismatch)));
        }
        if job.bound.engine != self.id || job.prepared.inner.engine != self.id {
            // Learnt rates, residency and artefacts are an engine's own.
            return Err(resolved(Err(JobError::OtherEngine)));
        }
        let Some(gpu) = &self.gpu else { return Ok(backends.cpu.clone()) };
        // The GPU variant's admission: its ops (decided once per program) and its row bound.
        let rows = job.rows.len();
        let refusal =
            self.variants.refusal(VariantId::GpuInterp, rows, job.prepared.inner.gpu_refusal.as_deref());
        let fallback =
            |why: String| fall_back(self.strict, &why, format!("{rows} rows")).map_err(|e| resolved(Err(e)));
        match (self.mode, refusal, gpu.unhealthy()) {
            (Mode::Gpu, Some(why), _) => Err(resolved(Err(JobError::Refused(why.into_owned())))),
            (Mode::Gpu, None, _) => self.gpu_if_it_fits(job, self.gpu_backend.clone(), fallback),
            (_, Some(why), _) => fallback(why.into_owned()),
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
                Ok(Arc::new(on_the_cpu(why, false)))
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
            workers: self.cpu.tuning().workers,
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
        fallback: impl FnOnce(String) -> Result<Arc<Backend>, Ticket>,
    ) -> Result<Arc<Backend>, Ticket> {
        let Some((need, free)) = self.device_shortfall(job) else { return Ok(backend) };
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
}

/// The backends a CPU job names when nothing set it apart — the CPU's, and the CPU's with the
/// JIT as its route: the engine's own, or a [`super::Request`]'s copies (its plans and
/// results then take references on counts no other thread's requests write).
#[derive(Clone, Debug)]
pub(super) struct CpuBackends {
    pub cpu: Arc<Backend>,
    pub jit: Arc<Backend>,
}

impl CpuBackends {
    pub(super) fn new(cpu: Backend) -> CpuBackends {
        let jit = Backend { variant: VariantId::CpuJit, ..cpu.clone() };
        CpuBackends { cpu: Arc::new(cpu), jit: Arc::new(jit) }
    }

    /// Copies that share nothing with these.
    pub(super) fn copied(&self) -> CpuBackends {
        CpuBackends { cpu: Arc::new((*self.cpu).clone()), jit: Arc::new((*self.jit).clone()) }
    }
}

/// The backend of a job the CPU runs under `auto` because of `why`.
pub(super) fn on_the_cpu(why: impl Display, fallback: bool) -> Backend {
    Backend::new(VariantId::CpuInterp, format!("auto: {why}; ran on the CPU executor"), fallback)
}

/// A job the GPU does not take under `auto`, for `why`: said as an event; under strict mode
/// the error the job fails with, else the CPU backend its result names.
pub(super) fn fall_back(strict: bool, why: &str, detail: String) -> Result<Arc<Backend>, JobError> {
    let event = Event::new("job", "gpu", "cpu", why, detail);
    events::record(event.clone());
    if strict {
        return Err(JobError::Strict(events::refused(&event)));
    }
    Ok(Arc::new(on_the_cpu(why, true)))
}

/// Where the GPU executor hands jobs it took and then could not run, under `auto`: placed
/// again on the CPU executor, without waiting (the GPU's reaper must not wait on a ring only
/// the CPU's workers drain). The job keeps its attempt and capacity, and leaves its plan (it
/// was the GPU's) and its race.
#[derive(Debug)]
pub(super) struct Requeue {
    pub cpu: Arc<CpuExecutor>,
    pub strict: bool,
}

impl Replace for Requeue {
    fn replace(&self, job: Attempt, why: String) {
        let detail = format!("{} rows, attempt {}", job.rows.len(), job.number);
        match fall_back(self.strict, &why, detail) {
            Err(e) => job.fail(e),
            Ok(backend) => {
                let attempt = Attempt { backend, plan: None, race: None, ..job };
                self.cpu.dispatch(CpuJob { attempt, code: Code::Interpreter, chunk_rows: 0, races: None });
            }
        }
    }
}
