//! The inline route: a small CPU job run on the submitting thread — no ring, no worker, no
//! wake-up — giving what the workers would, re-runs on hit overflow included.

use meridian_kernels::interp::{FinishError, Scratch, Stop};

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
        let prepared = &job.prepared.inner;
        let rows = job.rows.clone();
        let stop = self.stop_for(job);
        let stopped = |stop: &Stop| stop.check().map(|r| JobError::stopped(Some(r)));
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
                if let Some(e) = stopped(&stop) {
                    return Err(e);
                }
                let out = prepared.interp.output_buffers(rows.clone(), capacity).with_stop(stop.clone());
                plan.code
                    .run(prepared, &job.bound.inner, rows.clone(), &out, scratch)
                    .map_err(|e| stopped(&stop).unwrap_or(JobError::Exec(e)))?;
                let produced = out.hits_produced();
                match out.into_columns() {
                    Ok(columns) => {
                        prepared.note_hits(rows.len(), produced);
                        let columns = columns.into_iter().map(Column::Ready).collect();
                        let result = JobResult::with_columns(
                            prepared.output_names.clone(),
                            columns,
                            number,
                            plan.backend.clone(),
                        );
                        return Ok(result.with_plan(Some(plan.plan.clone())));
                    }
                    Err(FinishError::Overflow(o)) => {
                        capacity = o.needed.iter().map(|&(_, n)| n).max().unwrap_or(0) as usize;
                        overflowed(prepared, rows.len(), capacity, produced, plan.capacity.budget)?;
                    }
                    Err(e) => return Err(JobError::Output(e)),
                }
            }
            Err(JobError::stopped(None))
        })
    }
}
