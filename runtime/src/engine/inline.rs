//! The inline route: a small CPU job run on the submitting thread — no ring, no worker, no
//! wake-up — giving what the workers would, re-runs on hit overflow included.

use std::sync::Arc;

use meridian_kernels::interp::{OutputBuffers, Scratch, Stop};

use super::planner::CpuPlan;
use super::Engine;
use crate::job::{overflowed, Column, Job, JobError, JobResult};

/// Jobs of at most this many rows on the CPU route run on the submitting thread
/// ([`EngineBuilder::inline_rows`](super::EngineBuilder::inline_rows)): handing a one-row job
/// to a worker and back costs several times the job itself (`cargo bench -p
/// meridian-runtime --bench round_trip`).
pub const INLINE_ROWS: usize = 64;

thread_local! {
    /// The interpreter's registers for jobs run inline on this thread.
    static INLINE_SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::new());
}

impl Engine {
    /// Runs `job` on this thread as `plan` says.
    pub(super) fn run_inline(&self, job: &Job, plan: CpuPlan) -> Result<JobResult, JobError> {
        let stop = self.has_stop(job).then(|| self.stop_for(job));
        let mut out = None;
        let number = self.run_inline_into(job, &plan, stop.as_ref(), &mut out)?;
        let Some(out) = out else { return Err(JobError::stopped(None)) };
        // The buffers' memory becomes the columns (nothing copied).
        let columns = out.into_columns().map_err(JobError::Output)?;
        let prepared = &job.prepared.inner;
        let columns = columns.into_iter().map(Column::Ready).collect();
        let result = JobResult::with_columns(prepared.output_names.clone(), columns, number, plan.backend);
        Ok(result.with_plan(Some(Arc::new(plan.plan))))
    }

    /// Runs `job`'s rows on this thread as `plan` says into `out` — reset when it holds
    /// buffers already, else made — stopped by `stop` (none: a job without a deadline or a
    /// token, which nothing else can stop while it runs here), again with room while hits
    /// overflow: the attempt whose hits fitted, its outputs left in `out` for the caller to
    /// finish.
    pub(super) fn run_inline_into(
        &self,
        job: &Job,
        plan: &CpuPlan,
        stop: Option<&Arc<Stop>>,
        out: &mut Option<OutputBuffers>,
    ) -> Result<u32, JobError> {
        let prepared = &job.prepared.inner;
        let rows = job.rows.clone();
        let stopped = || stop.and_then(|s| s.check()).map(|r| JobError::stopped(Some(r)));
        let mut capacity = plan.capacity.granted;
        let mut fresh = None;
        INLINE_SCRATCH.with(|cell| {
            // A job submitted from inside another inline job's thread-local use cannot
            // happen today; a fresh scratch keeps it correct if it ever does.
            let mut held = cell.try_borrow_mut().ok();
            let scratch = match held.as_deref_mut() {
                Some(s) => s,
                None => fresh.insert(Scratch::new()),
            };
            for number in 1u32.. {
                if let Some(e) = stopped() {
                    return Err(e);
                }
                let buffers = match out {
                    Some(b) => {
                        b.reset(rows.clone(), capacity);
                        b
                    }
                    None => out.insert(prepared.interp.output_buffers(rows.clone(), capacity)),
                };
                buffers.set_stop(stop.cloned());
                plan.code
                    .run(prepared, &job.bound.inner, rows.clone(), buffers, scratch)
                    .map_err(|e| stopped().unwrap_or(JobError::Exec(e)))?;
                if stop.is_some() {
                    // The stop is the caller's again (a request resets it in place).
                    buffers.set_stop(None);
                }
                let produced = buffers.hits_produced();
                match buffers.overflow() {
                    None => {
                        prepared.note_hits(rows.len(), produced);
                        return Ok(number);
                    }
                    Some(o) => {
                        capacity = o.needed.iter().map(|&(_, n)| n).max().unwrap_or(0) as usize;
                        overflowed(prepared, rows.len(), capacity, produced, plan.capacity.budget)?;
                    }
                }
            }
            Err(JobError::stopped(None))
        })
    }
}
