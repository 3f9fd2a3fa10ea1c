//! A service's request: a program whose long-lived inputs are bound once ([`Partial`]) run
//! again and again on a few points of its own, each run reusing the last one's binding,
//! output buffers, stop signal and result — so that a warm one-point lookup allocates
//! nothing (`tests/alloc.rs` counts) and takes no lock another request holds.

use std::sync::Arc;
use std::time::Duration;

use meridian_kernels::column::{ColumnBuilder, ColumnError};
use meridian_kernels::interp::{BindError, Input, OutputBuffers, Stop};

use super::place::CpuBackends;
use super::planner::CpuPlan;
use super::{Engine, EngineError, Partial};
use crate::job::{Column, Job, JobError, JobResult, Ticket};
use crate::variants::Backend;

/// Reusable state for one caller's requests on a partly bound program
/// ([`Partial::request`]): give a request's points ([`Request::points`]) and run it
/// ([`Request::run`]). A run small enough for the inline route (a lookup of a point or a
/// few) runs on the calling thread into the last run's buffers, and once the first run has
/// bound the points and sized the buffers, allocates nothing; larger runs, and runs the
/// engine places on the GPU, are submitted as any job is. The result is this request's until
/// the next run: clone it to keep it.
///
/// One per task or thread (it is `Send`, not shared): a service keeps one in each task, or a
/// pool of them.
///
/// ```
/// use std::sync::Arc;
/// use meridian_runtime::bytecode::assemble;
/// use meridian_runtime::{ColumnBuilder, Engine, Input};
///
/// let engine = Engine::builder().workers(1).build()?;
/// let program = engine.prepare_verified(&assemble("lookup.masm", "
/// .program lookup
/// .input  pts    points
/// .input  zones  polygons indexed
/// .output pairs  hits
///     load     g0, pts
///     probe    c0, zones, g0
/// next:
///     cnext    g1, c0, done
///     contains b0, g1, g0
///     jf       b0, next
///     emit     pairs, g1
///     jmp      next
/// done:
///     halt
/// ")?);
/// let pairs = program.output("pairs")?;
/// let mut square = ColumnBuilder::new();
/// square.push_polygon(&[&[(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0), (0.0, 0.0)]])?;
/// let zones = engine.bind_partial(&program, [("zones", Input::indexed(Arc::new(square.finish())))])?;
///
/// let mut request = zones.request("pts")?;
/// let result = request.points(&[(1.0, 1.0)])?.run(&engine)?;
/// assert_eq!(result.hits_of(&pairs), Some(&[(0, 0)][..]));
/// let result = request.points(&[(5.0, 5.0)])?.run(&engine)?;
/// assert_eq!(result.hits_of(&pairs), Some(&[][..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Request {
    partial: Partial,
    /// The input each request's points fill.
    slot: usize,
    name: String,
    /// Bound by the first [`Request::points`]; its points rewritten by the next ones.
    job: Option<Job>,
    timeout: Option<Duration>,
    out: Option<OutputBuffers>,
    stop: Arc<Stop>,
    result: Option<JobResult>,
    /// Copies of the engine's CPU backends, made on the first run: the plans and results of
    /// this request's runs take their references, not the engine's, which every other
    /// thread's requests would write too.
    backends: Option<CpuBackends>,
    /// The last inline run's plan and the placement it was made for: the next inline run's
    /// plan when its decisions still hold ([`Engine::replan_inline`]), so that a steady
    /// stream of lookups is not planned from nothing each time.
    last: Option<(Arc<Backend>, CpuPlan)>,
}

impl Partial {
    /// A [`Request`] whose runs each bring the points of input `input`, every other input
    /// bound already (in this `Partial`). Fails when the program has no such input, when it
    /// is bound already or `indexed`, or when another input is not bound.
    pub fn request(&self, input: &str) -> Result<Request, EngineError> {
        let decls = self.program.inner.program.program().inputs();
        let slot = decls
            .iter()
            .position(|d| d.name == input)
            .ok_or_else(|| EngineError::InputName(format!("the program has no input `{input}`")))?;
        if self.slots[slot].is_some() {
            return Err(EngineError::InputName(format!("input `{input}` is bound already")));
        }
        if decls[slot].indexed {
            return Err(EngineError::InputName(format!(
                "input `{input}` is `indexed`: a request's points cannot carry its index"
            )));
        }
        let unbound = decls.iter().zip(&self.slots).enumerate().find(|&(i, (_, s))| i != slot && s.is_none());
        if let Some((_, (d, _))) = unbound {
            return Err(EngineError::InputName(format!(
                "input `{}` is not bound: a request brings only `{input}`",
                d.name
            )));
        }
        Ok(Request {
            partial: self.clone(),
            slot,
            name: input.to_owned(),
            job: None,
            timeout: None,
            out: None,
            stop: Arc::new(Stop::new(None, None)),
            result: None,
            backends: None,
            last: None,
        })
    }
}

impl Request {
    /// The next run's points (input `input` of [`Partial::request`]): checked as binding
    /// checks them (the input's kind admits points, lengths against the row source, every
    /// coordinate finite), written over the last run's when nothing else holds them. On
    /// error the last run's points stay.
    pub fn points(&mut self, pts: &[(f64, f64)]) -> Result<&mut Request, EngineError> {
        match &mut self.job {
            Some(job) => {
                let program = self.partial.program.inner.program.program();
                // A job still held by an executor (a large run's) shares the binding: it is
                // copied, and that job keeps its rows.
                Arc::make_mut(&mut job.bound.inner).refill_points(program, self.slot, pts)?;
                job.rows = 0..job.bound.rows();
            }
            None => {
                let mut b = ColumnBuilder::new();
                for (row, &(x, y)) in pts.iter().enumerate() {
                    b.push_point(x, y).map_err(|e| match e {
                        ColumnError::NonFinite { .. } => {
                            EngineError::Bind(BindError::NonFinite { input: self.name.clone(), row, x, y })
                        }
                        e => EngineError::InputName(format!("input `{}` row {row}: {e}", self.name)),
                    })?;
                }
                let column = Input::from(b.finish());
                let bound = self.partial.bind([(self.name.as_str(), column)])?;
                let job = self.partial.program.job(&bound);
                self.job = Some(match self.timeout {
                    Some(t) => job.timeout(t),
                    None => job,
                });
            }
        }
        Ok(self)
    }

    /// Every run's time limit from its start (over the engine's
    /// [`EngineBuilder::job_timeout`](super::EngineBuilder::job_timeout)).
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self.job = self.job.take().map(|j| j.timeout(timeout));
        self
    }

    /// Runs the program on the last points given, on `engine` (the one that prepared it):
    /// the result, this request's until the next run. As [`Engine::run`] would run the same
    /// job — placed, planned, inline when small, re-run on hit overflow — with the same
    /// result. A run too large for the inline route waits for its executor on this thread:
    /// in async code, [`Request::run_async`].
    pub fn run(&mut self, engine: &Engine) -> Result<&JobResult, JobError> {
        match self.start(engine)? {
            Start::Inline => self.run_inline(engine),
            Start::Placed(job, placed) => {
                self.result = None;
                let result = engine.run_placed(job, placed)?;
                Ok(self.result.insert(result))
            }
        }
    }

    /// [`Request::run`] for async code: a run for the inline route runs within the poll (it
    /// is a small job on this thread, as with [`Engine::submit_async`]); a larger one is
    /// submitted without blocking the thread while the ring is full, and its result awaited.
    pub async fn run_async(&mut self, engine: &Engine) -> Result<&JobResult, JobError> {
        match self.start(engine)? {
            Start::Inline => self.run_inline(engine),
            Start::Placed(job, placed) => {
                self.result = None;
                let ticket = match placed {
                    Err(ticket) => ticket,
                    Ok(backend) => engine.submit_placed(job, backend).await?,
                };
                let result = ticket.await?;
                Ok(self.result.insert(result))
            }
        }
    }

    /// The run's placement; when it runs inline, its plan made (in `self.last`).
    fn start(&mut self, engine: &Engine) -> Result<Start, JobError> {
        let Some(job) = &self.job else {
            return Err(JobError::Refused(format!(
                "a request runs on its points: none were given for `{}` (Request::points)",
                self.name
            )));
        };
        if job.bound.engine != engine.id {
            return Err(JobError::OtherEngine);
        }
        let backends = self.backends.get_or_insert_with(|| engine.cpu_backends.copied());
        let placed = engine.place(job, backends);
        let backend = match engine.inline_backend(job, &placed) {
            None => return Ok(Start::Placed(job.clone(), placed)),
            Some(b) => b?,
        };
        // The last plan made again in place (no plan moved: a lookup's whole cost is a few
        // hundred nanoseconds), else planned afresh.
        let again = match &mut self.last {
            Some((was, plan)) if Arc::ptr_eq(was, backend) => engine.replan_inline(job, plan),
            _ => None,
        };
        match again {
            Some(replanned) => replanned.inspect_err(|_| self.last = None)?,
            None => {
                self.last = None;
                let plan = engine.plan_cpu(job, backend.clone(), backends)?;
                self.last = Some((backend.clone(), plan));
            }
        }
        Ok(Start::Inline)
    }

    /// The run on this thread as `self.last` plans it, into the last run's buffers and result.
    fn run_inline(&mut self, engine: &Engine) -> Result<&JobResult, JobError> {
        let (Some(job), Some((_, plan))) = (&self.job, &self.last) else {
            return Err(JobError::stopped(None));
        };
        let stop = engine.has_stop(job).then(|| {
            engine.reset_stop(job, &mut self.stop);
            &self.stop
        });
        let number = engine.run_inline_into(job, plan, stop, &mut self.out)?;
        let Some(out) = &self.out else { return Err(JobError::stopped(None)) };
        let refilled = match &mut self.result {
            Some(r) => r.refill(out, number, &plan.backend, &plan.plan),
            None => {
                let names = job.prepared.inner.output_names.clone();
                let columns =
                    out.finish().map_err(JobError::Output)?.into_iter().map(Column::Ready).collect();
                let result = JobResult::with_columns(names, columns, number, plan.backend.clone());
                self.result = Some(result.with_plan(Some(Arc::new(plan.plan.clone()))));
                Ok(())
            }
        };
        if let Err(e) = refilled {
            self.result = None;
            return Err(JobError::Output(e));
        }
        self.result.as_ref().ok_or_else(|| JobError::stopped(None))
    }
}

/// How a request's run goes: inline as planned (`Request::last`), or to an executor as
/// placed.
enum Start {
    Inline,
    Placed(Job, Result<Arc<Backend>, Ticket>),
}
