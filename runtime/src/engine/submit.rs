//! Submission: a job placed ([`super::place`]), planned ([`super::planner`]) and handed to
//! its executor — one path for the blocking and the non-blocking forms, which differ only in
//! whether a full executor is waited for. A job the GPU cannot take under `auto` is placed
//! again on the CPU; the inline route runs small CPU jobs on the submitting thread.

// A refused job comes back by value in the error, so a caller retries without a clone; boxing
// it would allocate on the back-pressure path, where the ring is already full.
#![allow(clippy::result_large_err)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use meridian_kernels::interp::Stop;

use super::place::fall_back;
use super::{Engine, Mode, ShutdownError, TrySubmitError};
use crate::job::{push, Executor, Job, JobError, JobResult, Refused, Ticket, TicketCell};
use crate::plan::Topology;
use crate::variants::Backend;

/// How long a waiter on a GPU job spins before it parks: longer than a small job's round trip
/// through the megakernel, so the reaper never has to wake it.
const GPU_WAIT_SPIN: Duration = Duration::from_micros(200);

impl Engine {
    /// Submits a job, waiting while the ring is full. Fails only when the engine is shut
    /// down (the job comes back).
    pub fn submit(&self, job: Job) -> Result<Ticket, ShutdownError> {
        match self.enter(job, true) {
            Ok(t) => Ok(t),
            Err(TrySubmitError::Shutdown(job) | TrySubmitError::Full(job)) => Err(ShutdownError(job)),
        }
    }

    /// Submits a job from async code: a future that waits for room on a full ring without
    /// blocking the thread it is polled on (the executor that frees room wakes the task), and
    /// gives the job's [`Ticket`] — itself a future of its result. The blocking
    /// [`Engine::submit`] is for threads. A small CPU job runs inline, within the poll, as
    /// with `submit`.
    ///
    /// ```no_run
    /// # async fn f(engine: &meridian_runtime::Engine, job: meridian_runtime::Job) -> Result<(), meridian_runtime::JobError> {
    /// let result = engine.submit_async(job).await?.await?;
    /// # Ok(()) }
    /// ```
    pub fn submit_async(&self, job: Job) -> Submit<'_> {
        Submit { engine: self, job: Some(job), placed: None }
    }

    /// [`Engine::submit_async`] of a job placed on `backend` already: its first try takes
    /// that placement (later tries, after the ring was full, place it again as any does).
    pub(super) fn submit_placed(&self, job: Job, backend: Arc<Backend>) -> Submit<'_> {
        Submit { engine: self, job: Some(job), placed: Some(backend) }
    }

    /// Submits a job if there is room now; otherwise hands it back.
    pub fn try_submit(&self, job: Job) -> Result<Ticket, TrySubmitError> {
        self.enter(job, false)
    }

    /// Submits and waits: the result of one job. A job for the inline route runs here with
    /// no ticket at all.
    pub fn run(&self, job: Job) -> Result<JobResult, JobError> {
        let placed = self.place(&job, &self.cpu_backends);
        match self.inline_backend(&job, &placed) {
            Some(backend) => {
                let plan = self.plan_cpu(&job, backend?.clone(), &self.cpu_backends)?;
                self.run_inline(&job, plan)
            }
            None => self.run_placed(job, placed),
        }
    }

    /// The backend of a job [`Engine::run`] runs on this thread — one small enough for the
    /// inline route, placed on the CPU — or `None` when it goes to an executor.
    pub(super) fn inline_backend<'a>(
        &self,
        job: &Job,
        placed: &'a Result<Arc<Backend>, Ticket>,
    ) -> Option<Result<&'a Arc<Backend>, JobError>> {
        let backend = placed.as_ref().ok().filter(|b| !b.on_gpu())?;
        if job.rows.len() > self.variants.inline_rows() {
            return None;
        }
        if self.cpu.is_closed() {
            return Some(Err(JobError::stopped(None)));
        }
        Some(Ok(backend))
    }

    /// [`Engine::run`] of a job placed (or refused) already, through its executor.
    pub(super) fn run_placed(
        &self,
        job: Job,
        placed: Result<Arc<Backend>, Ticket>,
    ) -> Result<JobResult, JobError> {
        let entered = match placed {
            Err(ticket) => Ok(ticket),
            Ok(backend) => self.enter_placed(job, backend, true),
        };
        match entered {
            Ok(t) => t.wait(),
            Err(_) => Err(JobError::stopped(None)),
        }
    }

    /// Places, plans and submits `job`; while its executor is full, waits for room when
    /// `wait`, else gives the job back. (`wait` never gives back `Full`.)
    fn enter(&self, job: Job, wait: bool) -> Result<Ticket, TrySubmitError> {
        match self.place(&job, &self.cpu_backends) {
            Err(ticket) => Ok(ticket),
            Ok(backend) => self.enter_placed(job, backend, wait),
        }
    }

    /// [`Engine::enter`] of a job already placed on `backend`.
    fn enter_placed(&self, job: Job, backend: Arc<Backend>, wait: bool) -> Result<Ticket, TrySubmitError> {
        let gpu = match &self.gpu {
            Some(gpu) if backend.on_gpu() => gpu,
            _ => return self.enter_cpu(job, backend, wait),
        };
        let cell = Arc::new(TicketCell::new(self.stop_for(&job)));
        let planned = match self.plan_gpu(gpu, &job, cell.clone(), backend) {
            Ok(p) => p,
            Err(e) => return Ok(resolved(Err(e))),
        };
        match push(&**gpu, planned, wait) {
            Ok(()) => {
                Ok(Ticket { cell, spin: self.cpu.tuning().spin, spin_for: GPU_WAIT_SPIN, helper: None })
            }
            Err(Refused::Full(_)) => Err(TrySubmitError::Full(job)),
            Err(Refused::Closed(_)) => Err(TrySubmitError::Shutdown(job)),
            // Under `gpu` the job fails with why; under `auto` it is placed again on the CPU
            // (and, when not waiting, taken only if the CPU has room now).
            Err(Refused::Unavailable(_, why)) if self.mode == Mode::Gpu => {
                Ok(resolved(Err(JobError::Device(why))))
            }
            Err(Refused::Unavailable(_, why)) => {
                match fall_back(self.strict, &why, format!("{} rows", job.rows.len())) {
                    Ok(backend) => self.enter_cpu(job, backend, wait),
                    Err(refusal) => Ok(resolved(Err(refusal))),
                }
            }
        }
    }

    /// Plans `job` on the CPU and runs it inline or submits it to the CPU executor.
    fn enter_cpu(&self, job: Job, backend: Arc<Backend>, wait: bool) -> Result<Ticket, TrySubmitError> {
        let plan = match self.plan_cpu(&job, backend, &self.cpu_backends) {
            Ok(p) => p,
            Err(e) => return Ok(resolved(Err(e))),
        };
        if plan.plan.topology == Topology::Inline {
            if self.cpu.is_closed() {
                return Err(TrySubmitError::Shutdown(job));
            }
            return Ok(resolved(self.run_inline(&job, plan)));
        }
        let cell = Arc::new(TicketCell::new(self.stop_for(&job)));
        match push(&*self.cpu, plan.into_job(&job, cell.clone()), wait) {
            Ok(()) => Ok(Ticket {
                cell,
                spin: self.cpu.tuning().spin,
                spin_for: Duration::ZERO,
                helper: Some(self.cpu.helper()),
            }),
            Err(Refused::Full(_)) => Err(TrySubmitError::Full(job)),
            Err(Refused::Closed(_) | Refused::Unavailable(..)) => Err(TrySubmitError::Shutdown(job)),
        }
    }

    /// Wakes `task` when an executor next frees room (or shuts down).
    fn wake_on_room(&self, task: &std::task::Waker) {
        self.cpu.space().register(task);
        if let Some(gpu) = &self.gpu {
            gpu.space().register(task);
        }
    }

    /// A stop signal for `job`, from now: its timeout (or the engine's), its token.
    pub(super) fn stop_for(&self, job: &Job) -> Arc<Stop> {
        Arc::new(Stop::new(job.timeout.or(self.job_timeout), job.token.clone()))
    }

    /// Whether anything can stop `job` while it runs on the submitting thread: a deadline
    /// (its own or the engine's) or a caller's token. (A ticket's cancel and the engine's
    /// shutdown reach only jobs on an executor.)
    pub(super) fn has_stop(&self, job: &Job) -> bool {
        job.timeout.or(self.job_timeout).is_some() || job.token.is_some()
    }

    /// `stop` made [`Engine::stop_for`]'s signal for `job`, in place when nothing else holds
    /// it (a service's request reuses its own).
    pub(super) fn reset_stop(&self, job: &Job, stop: &mut Arc<Stop>) {
        let fresh = Stop::new(job.timeout.or(self.job_timeout), job.token.clone());
        match Arc::get_mut(stop) {
            Some(s) => *s = fresh,
            None => *stop = Arc::new(fresh),
        }
    }
}

/// A ticket resolved before it was ever queued.
pub(super) fn resolved(outcome: Result<JobResult, JobError>) -> Ticket {
    let cell = Arc::new(TicketCell::default());
    cell.resolve(outcome);
    Ticket { cell, spin: 0, spin_for: Duration::ZERO, helper: None }
}

/// The future of [`Engine::submit_async`]: the job's ticket once an executor has taken it,
/// or the job back if the engine is shut down.
#[derive(Debug)]
#[must_use = "a submission does nothing until it is awaited"]
pub struct Submit<'e> {
    engine: &'e Engine,
    /// `None` once the future has given its output.
    job: Option<Job>,
    /// Where the job was placed before the first try, if it was.
    placed: Option<Arc<Backend>>,
}

impl Future for Submit<'_> {
    type Output = Result<Ticket, ShutdownError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(mut job) = this.job.take() else {
            // As an `async fn` would: a future is not polled after it gave its output.
            #[allow(clippy::panic)]
            {
                panic!("Submit polled after it completed")
            }
        };
        let mut registered = false;
        loop {
            let entered = match this.placed.take() {
                Some(backend) => this.engine.enter_placed(job, backend, false),
                None => this.engine.enter(job, false),
            };
            match entered {
                Ok(ticket) => return Poll::Ready(Ok(ticket)),
                Err(TrySubmitError::Shutdown(job)) => return Poll::Ready(Err(ShutdownError(job))),
                // Registered before this try failed: room freed after it rings the task.
                Err(TrySubmitError::Full(back)) if registered => {
                    this.job = Some(back);
                    return Poll::Pending;
                }
                // Register, then try once more: room freed before the registration is seen
                // by that try.
                Err(TrySubmitError::Full(back)) => {
                    this.engine.wake_on_room(cx.waker());
                    registered = true;
                    job = back;
                }
            }
        }
    }
}
