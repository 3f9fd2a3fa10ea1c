//! The engine's planning of one job, once it is placed: what runs its rows (the route, with
//! the JIT compiled when it is wanted), how it is cut, how much room its hits get, and the
//! autotune race it stands in — gathered from what the engine knows and decided by the pure
//! functions of [`crate::plan`]. The result is an executor's job with its [`Plan`], applied
//! as planned.

use std::sync::Arc;

use meridian_bytecode::OutputKind;

use super::place::CpuBackends;
use super::Engine;
use crate::cpu::code::Code;
use crate::cpu::CpuJob;
use crate::cuda::executor::{GpuExecutor, GpuJob};
use crate::cuda::programs::GpuRoute;
use crate::events::{self, Event};
use crate::job::{Attempt, Job, JobError, TicketCell};
use crate::plan::{self, CapacityReason, Plan, RouteReason, Topology};
use crate::route::Route;
use crate::tune::{self, Knob};
use crate::variants::{Backend, VariantId};

/// Under [`Route::Auto`] without a route race, a program takes the JIT once this many of its
/// rows have run on the CPU (in all jobs): enough that the compile time (about 0.2–0.6 ms for
/// the examples) is under a tenth of a percent of what the interpreter spent on it.
pub const JIT_HOT_ROWS: u64 = 1 << 20;

/// Under [`Route::Auto`], a job of at least this many rows that finds its program hot and not
/// yet compiled waits for the JIT's compile (about a millisecond; the interpreter takes
/// several on this many rows); smaller jobs run on the interpreter while the JIT compiles in
/// the background ([`EngineBuilder::jit_in_background`](super::EngineBuilder::jit_in_background)).
pub const JIT_WAIT_ROWS: usize = 1 << 16;

/// What runs a CPU job's rows, the backend its result names, its part in a route race, and
/// why that route.
struct CpuCode {
    code: Code,
    backend: Arc<Backend>,
    /// Boxed from where a race is chosen: a plan is moved several times on the way to an
    /// inline run, and a job in a race (a large one, never inline) is rare.
    race: Option<Box<tune::Entry>>,
    why: RouteReason,
}

/// A CPU job's plan with what applying it takes: the job for the CPU executor once it has a
/// ticket ([`CpuPlan::into_job`]), or the inline route's run.
#[derive(Debug)]
pub(super) struct CpuPlan {
    pub code: Code,
    pub backend: Arc<Backend>,
    /// Boxed: the inline route moves a plan several times, and a job in a race (a large one,
    /// never inline) is rare.
    pub race: Option<Box<tune::Entry>>,
    /// By value: the inline route of a service's request puts it where the last request's
    /// was, without allocating ([`super::Request`]).
    pub plan: Plan,
    pub capacity: Capacity,
    /// The races the job runs inside itself, when it does.
    pub races: Option<Arc<tune::InJob>>,
}

impl CpuPlan {
    /// The CPU executor's job, resolving `ticket`.
    pub(super) fn into_job(self, job: &Job, ticket: Arc<TicketCell>) -> CpuJob {
        let chunk_rows = self.plan.chunk_rows;
        let plan = Arc::new(self.plan);
        let attempt = attempt(job, ticket, self.backend, plan, &self.capacity, self.race);
        CpuJob { attempt, code: self.code, chunk_rows, races: self.races }
    }
}

/// The room a job's hits get, and why.
#[derive(Debug)]
pub(super) struct Capacity {
    /// What the job asked for or the program's last run says.
    wanted: usize,
    why: CapacityReason,
    /// `wanted`, cut to the budget when it did not fit.
    pub granted: usize,
    pub budget: Option<u64>,
}

impl Engine {
    /// The autotune race of `knob` for `job`, when the engine autotunes and the job is large
    /// enough to race: the value to run with, and the job's part in the race (`None` once it
    /// is settled). Programs with `sum` outputs are not raced by knobs that change how a job
    /// is cut: chunks add their sums as they finish, so another cut would round them
    /// differently.
    fn race(&self, knob: Knob, job: &Job) -> Option<(u32, Option<Box<tune::Entry>>)> {
        let t = self.tuner.as_ref()?;
        let rows = job.rows.len();
        if rows < tune::RACE_MIN_ROWS || (knob != Knob::Route && has_sums(job)) {
            return None;
        }
        let key = t.key(knob, &job.prepared.hash().to_string(), binding_signature(job), rows);
        let (value, entry) = t.choose(knob, key);
        Some((value, entry.map(Box::new)))
    }

    /// The races a job of [`tune::IN_JOB_MIN_ROWS`] rows or more runs inside itself: the
    /// route's (under `auto` with the JIT; `interp` runs the interpreter throughout) and rows
    /// per claim's (without sums), when either is still open. `None` when none is: the job
    /// runs as settled.
    fn in_job_races(&self, job: &Job) -> Option<(tune::InJob, Option<u32>)> {
        let t = self.tuner.as_ref()?;
        let rows = job.rows.len();
        if rows < tune::IN_JOB_MIN_ROWS || self.route == Route::Jit {
            return None;
        }
        let (hash, binding) = (job.prepared.hash().to_string(), binding_signature(job));
        let route = (self.route == Route::Auto && self.variants.has(VariantId::CpuJit))
            .then(|| t.key(Knob::Route, &hash, binding.clone(), rows));
        let claims = (!has_sums(job)).then(|| t.key(Knob::RowsPerClaim, &hash, binding, rows));
        let settled = |knob, key: &Option<meridian_autotune::Key>| key.as_ref().map(|k| t.settled(knob, k));
        let settled_route = settled(Knob::Route, &route);
        if !matches!(settled_route, Some(None)) && !matches!(settled(Knob::RowsPerClaim, &claims), Some(None))
        {
            return None;
        }
        Some((tune::InJob::new(t.clone(), route, claims, 0), settled_route.flatten()))
    }

    /// A CPU job's plan, applied: its code and route, the rows race it stands in, its cut by
    /// the queue's pressure, and its hit capacity.
    pub(super) fn plan_cpu(
        &self,
        job: &Job,
        backend: Arc<Backend>,
        backends: &CpuBackends,
    ) -> Result<CpuPlan, JobError> {
        let rows = job.rows.len();
        if let Some((races, route)) = self.in_job_races(job) {
            let capacity = self.capacity(job)?;
            let chunk_rows = self.cpu.tuning().chunk_rows;
            let reason = format!("{}; autotune races inside the job", backend.reason);
            // What runs the rows: the route settled, or both while it races.
            let (variant, also) = match route {
                Some(1) => (backend.variant.with_jit(), Vec::new()),
                Some(_) => (backend.variant, Vec::new()),
                None if self.route == Route::Auto && self.variants.has(VariantId::CpuJit) => {
                    (backend.variant, vec![backend.variant.with_jit()])
                }
                None => (backend.variant, Vec::new()),
            };
            let backend = Arc::new(Backend { reason, variant, also, ..(*backend).clone() });
            let plan = Plan {
                topology: Topology::Split { chunks: rows.div_ceil(chunk_rows) },
                rows,
                chunk_rows,
                hit_capacity: capacity.granted,
                pressure: None,
                placement: backend.clone(),
                route_why: RouteReason::Race { racing: true },
                cut_why: plan::CutReason::RacedInJob(chunk_rows),
                capacity_why: capacity.why,
                budget_cut: capacity.cut(),
                variant: backend.variant,
            };
            let races = Some(Arc::new(races));
            // The steps choose each part's code; a re-run after a hit overflow (no races)
            // takes the route settled, when it is.
            let code = match route {
                Some(1) => Code::compiled(&job.prepared.inner).unwrap_or(Code::Interpreter),
                _ => Code::Interpreter,
            };
            return Ok(CpuPlan { code, backend, race: None, plan, capacity, races });
        }
        let code = self.cpu_code(job, backend, backends)?;
        // An inline job's cut reads no queue (and races nothing): none is read for it.
        let pressure = (rows > self.variants.inline_rows()).then(|| self.pressure());
        // One worker a job can only win when jobs are in flight together: a job alone on the
        // queue neither races it nor takes its record's choice.
        let shared = self.cpu.tuning().workers > 1 && pressure.is_some_and(|p| p != plan::Pressure::Empty);
        let (pinned, spread, race) = if code.race.is_some() {
            // A job stands in one race at a time: rows per claim race once the route is
            // settled, the workers a job spreads over once rows per claim is.
            (None, None, code.race)
        } else {
            match self.race(Knob::RowsPerClaim, job) {
                Some((r, Some(entry))) => (Some(r as usize), None, Some(entry)),
                Some((r, None)) if shared => match self.race(Knob::Workers, job) {
                    Some((w, entry)) => (Some(r as usize), (w > 0).then_some(w as usize), entry),
                    None => (Some(r as usize), None, None),
                },
                Some((r, None)) => (Some(r as usize), None, None),
                None => (None, None, None),
            }
        };
        let tuning = self.cpu.tuning();
        let (topology, chunk_rows, cut_why) = plan::cpu_topology(&plan::CutInput {
            rows,
            inline_rows: self.variants.inline_rows(),
            chunk_rows: tuning.chunk_rows,
            pinned,
            workers: tuning.workers,
            max_chunks: (tuning.ring_capacity / 2).max(1),
            spread,
            pressure: pressure.unwrap_or(plan::Pressure::Empty),
        });
        let capacity = self.capacity(job)?;
        let variant = if topology == Topology::Inline { VariantId::Inline } else { code.backend.variant };
        let plan = Plan {
            topology,
            rows,
            chunk_rows,
            hit_capacity: capacity.granted,
            pressure,
            placement: code.backend.clone(),
            route_why: code.why,
            cut_why,
            capacity_why: capacity.why,
            budget_cut: capacity.cut(),
            variant,
        };
        Ok(CpuPlan { code: code.code, backend: code.backend, race, plan, capacity, races: None })
    }

    /// `plan`, a request's last inline plan, made again in place for `job` (the same
    /// request's, placed where `plan` was, inline again) when every decision in it still
    /// holds: none is a race (a job this small races nothing) and its route is settled
    /// ([`route_holds`]); its rows and hit capacity become `job`'s, decided anew. `None`:
    /// `job` must be planned afresh ([`Engine::plan_cpu`], which would give what this does).
    pub(super) fn replan_inline(&self, job: &Job, plan: &mut CpuPlan) -> Option<Result<(), JobError>> {
        let rows = job.rows.len();
        let races = self.tuner.is_some() && rows >= tune::RACE_MIN_ROWS.min(tune::IN_JOB_MIN_ROWS);
        if races || plan.plan.topology != Topology::Inline || plan.race.is_some() || plan.races.is_some() {
            return None;
        }
        if !route_holds(job, &mut plan.plan.route_why) {
            return None;
        }
        let capacity = match self.capacity(job) {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        plan.plan.rows = rows;
        plan.plan.hit_capacity = capacity.granted;
        plan.plan.capacity_why = capacity.why;
        plan.plan.budget_cut = capacity.cut();
        plan.capacity = capacity;
        Some(Ok(()))
    }

    /// A GPU job's plan, applied: the megakernel or its program's own kernel, its cut for the
    /// megakernel's blocks or the threads a block of its kernel's launch (either raced under
    /// autotune), and its hit capacity.
    pub(super) fn plan_gpu(
        &self,
        gpu: &GpuExecutor,
        job: &Job,
        cell: Arc<TicketCell>,
        backend: Arc<Backend>,
    ) -> Result<GpuJob, JobError> {
        let rows = job.rows.len();
        let capacity = self.capacity(job)?;
        // Programs' own kernels when the registry has them (the engine's GPU route is not
        // `interp`), else the megakernel.
        let route = if self.variants.has(VariantId::GpuJit) {
            gpu.route(&job.prepared.inner, rows, self.gpu_route)
        } else {
            GpuRoute { kernel: None, why: RouteReason::Megakernel }
        };
        // A program's kernel takes no chunks, one launch over every row: its block is raced.
        let knob = if route.kernel.is_some() { Knob::GpuBlock } else { Knob::GpuChunks };
        let (value, race, tuned) = match self.race(knob, job) {
            Some((v, entry)) => (v, entry, true),
            None if route.kernel.is_some() => (meridian_kernels::cuda::BLOCK_THREADS, None, false),
            None => (plan::GPU_CHUNKS_PER_BLOCK, None, false),
        };
        let (chunks, backend) = match &route.kernel {
            Some(k) => {
                let reason =
                    format!("{}; the program's own kernel {} ({})", backend.reason, k.kernel(), k.detail());
                ((1, rows), Arc::new(Backend::new(VariantId::GpuJit, reason, backend.fallback)))
            }
            None => (gpu.chunks(rows, value), backend),
        };
        let (cut_why, block_threads) = match route.kernel {
            Some(_) => (plan::CutReason::Kernel(value, tuned), value),
            None => (plan::CutReason::Gpu(value, tuned), meridian_kernels::cuda::BLOCK_THREADS),
        };
        let plan = Plan {
            topology: Topology::Gpu { chunks: chunks.0 },
            rows,
            chunk_rows: chunks.1,
            hit_capacity: capacity.granted,
            pressure: None,
            placement: backend.clone(),
            route_why: route.why,
            cut_why,
            capacity_why: capacity.why,
            budget_cut: capacity.cut(),
            variant: backend.variant,
        };
        let attempt = attempt(job, cell, backend, Arc::new(plan), &capacity, race);
        Ok(GpuJob { attempt, chunks, kernel: route.kernel, block_threads, geom_words: 0 })
    }

    /// What runs a CPU job's rows under the engine's route, the backend its result names,
    /// the job's part in a route race, and why; under strict mode a fallback from the JIT the
    /// job asked for is the job's error instead.
    ///
    /// [`Route::Auto`]: with an autotuner, a large job's route is what the program's route race
    /// says (racing, settled, or loaded from the store); otherwise a program takes the JIT once
    /// it is hot — [`JIT_HOT_ROWS`] rows run on the CPU in all — and keeps it
    /// ([`plan::auto_route`]).
    fn cpu_code(
        &self,
        job: &Job,
        backend: Arc<Backend>,
        backends: &CpuBackends,
    ) -> Result<CpuCode, JobError> {
        let prepared = &job.prepared.inner;
        let rows = job.rows.len();
        let (want_jit, why) = match self.route {
            Route::Interpreter => (false, RouteReason::Asked(Route::Interpreter.name())),
            Route::Jit => (true, RouteReason::Asked(Route::Jit.name())),
            Route::Auto => {
                let jit = self.variants.has(VariantId::CpuJit);
                let raced = if jit { self.race(Knob::Route, job) } else { None };
                if let Some((route, entry)) = raced {
                    let why = RouteReason::Race { racing: entry.is_some() };
                    return Ok(self.auto_code(job, (backend, backends), route == 1, entry, why));
                }
                let before = prepared.note_cpu_rows(rows, JIT_HOT_ROWS).saturating_sub(rows as u64);
                let (jit, why) = plan::auto_route(before, rows, JIT_HOT_ROWS, jit);
                return Ok(self.auto_code(job, (backend, backends), jit, None, why));
            }
        };
        if !want_jit {
            return Ok(CpuCode { code: Code::Interpreter, backend, race: None, why });
        }
        match Code::compiled(prepared) {
            Ok(code) => Ok(CpuCode { code, backend: jit_backend(&backend, backends), race: None, why }),
            Err(e) => {
                let detail = format!("program {}", job.prepared.hash().short());
                let event = Event::new("route", "jit", "interp", &e, detail);
                events::record(event.clone());
                if self.strict {
                    return Err(JobError::Strict(events::refused(&event)));
                }
                let reason = format!("{}; route interp: {e}", backend.reason);
                let backend = Arc::new(Backend { reason, fallback: true, ..(*backend).clone() });
                Ok(CpuCode {
                    code: Code::Interpreter,
                    backend,
                    race: None,
                    why: RouteReason::Failed(Box::new(why), e),
                })
            }
        }
    }

    /// The route `auto` chose (`jit` or not), with the job's part in a race: a program the JIT
    /// cannot compile runs on the interpreter, said once per program as an event (the engine
    /// preferred, not the user asked: never an error), and leaves the race.
    fn auto_code(
        &self,
        job: &Job,
        (backend, backends): (Arc<Backend>, &CpuBackends),
        jit: bool,
        race: Option<Box<tune::Entry>>,
        why: RouteReason,
    ) -> CpuCode {
        if !jit {
            return CpuCode { code: Code::Interpreter, backend, race, why };
        }
        let prepared = &job.prepared.inner;
        // A large job waits for the compile (its rows on the interpreter would cost more); a
        // small one does not.
        let wait = !self.jit_in_background || job.rows.len() >= JIT_WAIT_ROWS;
        let compiled =
            if wait { Some(Code::compiled(prepared)) } else { Code::compiled_or_started(prepared) };
        let Some(compiled) = compiled else {
            // The JIT is compiling: the interpreter meanwhile, out of any race (this job's side
            // would not be the side it was chosen for).
            let why = RouteReason::JitCompiling(Box::new(why));
            return CpuCode { code: Code::Interpreter, backend, race: None, why };
        };
        match compiled {
            Ok(code) => {
                let race = race.map(|mut e| {
                    e.compile_ns = prepared.jit_compile_ns();
                    e
                });
                CpuCode { code, backend: jit_backend(&backend, backends), race, why }
            }
            Err(e) => {
                if prepared.first_jit_failure() {
                    let detail = format!("program {} (route auto)", job.prepared.hash().short());
                    events::record(Event::new("route", "jit", "interp", &e, detail));
                }
                CpuCode {
                    code: Code::Interpreter,
                    backend,
                    race: None,
                    why: RouteReason::Failed(Box::new(why), e),
                }
            }
        }
    }

    /// The hit capacity of a job's first attempt and why, cut to fit its memory budget (an
    /// error when even the least it can run with does not fit).
    fn capacity(&self, job: &Job) -> Result<Capacity, JobError> {
        let (wanted, why) = self.hit_capacity(job);
        let budget = self.budget_for(job);
        let (granted, _) =
            plan::fit_budget(job.prepared.inner.interp.outputs(), job.rows.len(), wanted, budget)
                .map_err(JobError::OverBudget)?;
        Ok(Capacity { wanted, why, granted, budget })
    }

    /// The hit capacity of a job's first attempt before any budget, and why.
    pub(super) fn hit_capacity(&self, job: &Job) -> (usize, CapacityReason) {
        let prepared = &job.prepared.inner;
        let capacity = prepared.first_hit_capacity(job.rows.len(), job.hit_capacity);
        let why = match (job.hit_capacity, prepared.hits_per_row()) {
            (Some(asked), _) => CapacityReason::Asked(asked),
            (None, Some(rate)) => CapacityReason::Learnt(rate),
            (None, None) => CapacityReason::Assumed,
        };
        (capacity, why)
    }

    /// The queue's pressure now, by the bands of [`plan::Pressure::classify`] from the last.
    fn pressure(&self) -> plan::Pressure {
        use plan::Pressure;
        use std::sync::atomic::Ordering::Relaxed;
        let prev = match self.pressure.load(Relaxed) {
            1 => Pressure::Light,
            2 => Pressure::Balanced,
            3 => Pressure::Saturated,
            _ => Pressure::Empty,
        };
        let (queued, capacity) = self.cpu.queued();
        let now = Pressure::classify(prev, queued, capacity);
        // Written only when it changes (every job's planning reads it, on every core).
        if now != prev {
            self.pressure.store(now as u8, Relaxed);
        }
        now
    }

    /// The budget of `job`'s output buffers: its own or the engine's, the smaller.
    pub(super) fn budget_for(&self, job: &Job) -> Option<u64> {
        match (job.budget, self.cpu.tuning().memory_budget) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Capacity {
    /// The capacity wanted and the budget it was cut to fit, when it was.
    fn cut(&self) -> Option<(usize, u64)> {
        self.budget.filter(|_| self.granted < self.wanted).map(|b| (self.wanted, b))
    }
}

/// Whether the CPU route `why` says stays the route [`Engine::cpu_code`] would choose for
/// `job` now — the engine's asked route, no JIT in the build, the JIT failed, or the program
/// hot (and hot stays hot) — counted as it counts: `why`'s rows run brought up to date. A
/// cold program (its rows still counting to hot) or one whose JIT is compiling is planned
/// again.
fn route_holds(job: &Job, why: &mut RouteReason) -> bool {
    match why {
        RouteReason::Asked(_) => true,
        RouteReason::NoJit => {
            job.prepared.inner.note_cpu_rows(job.rows.len(), JIT_HOT_ROWS);
            true
        }
        RouteReason::Hot { total, hot } => {
            *total = job.prepared.inner.note_cpu_rows(job.rows.len(), JIT_HOT_ROWS);
            *total >= *hot
        }
        RouteReason::Failed(inner, _) => route_holds(job, inner),
        _ => false,
    }
}

/// `backend` with the JIT running the rows: `backends.jit` for `backends.cpu` (made once: a
/// small job's round trip must not allocate and copy a reason string for it), others anew.
fn jit_backend(backend: &Arc<Backend>, backends: &CpuBackends) -> Arc<Backend> {
    if Arc::ptr_eq(backend, &backends.cpu) {
        return backends.jit.clone();
    }
    Arc::new(Backend { variant: backend.variant.with_jit(), ..(**backend).clone() })
}

/// The first attempt of `job` as planned.
fn attempt(
    job: &Job,
    ticket: Arc<TicketCell>,
    backend: Arc<Backend>,
    plan: Arc<Plan>,
    capacity: &Capacity,
    race: Option<Box<tune::Entry>>,
) -> Attempt {
    Attempt {
        prepared: job.prepared.inner.clone(),
        inputs: job.bound.inner.clone(),
        rows: job.rows.clone(),
        hit_capacity: capacity.granted,
        ticket,
        number: 1,
        backend,
        plan: Some(plan),
        budget: capacity.budget,
        race,
    }
}

/// Whether a job's program has `sum` outputs.
fn has_sums(job: &Job) -> bool {
    job.prepared.program().program().outputs().iter().any(|o| o.kind == OutputKind::Sum)
}

/// The input kinds of a job's binding, as an autotune key's binding signature: each input's
/// family (or `mixed`) and whether it carries an index.
fn binding_signature(job: &Job) -> String {
    job.bound
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
