//! One attempt of a placed job, and how every route settles it: done (its ticket resolved,
//! what it measured learnt, its race reported after the ticket), re-run with room for the
//! hits it counted, or failed. The CPU executor, the CUDA executor and the inline route all
//! settle through here.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use meridian_kernels::interp::BoundInputs;

use super::{Column, JobError, JobResult, PreparedInner, TicketCell};
use crate::plan::{rerun_fits, Plan};
use crate::tune;
use crate::variants::Backend;

/// A job as an executor takes it: what runs on which rows, where its outcome goes, and what
/// it was planned with.
#[derive(Clone, Debug)]
pub(crate) struct Attempt {
    pub prepared: Arc<PreparedInner>,
    pub inputs: Arc<BoundInputs>,
    pub rows: Range<usize>,
    /// Room for hits, per hits output.
    pub hit_capacity: usize,
    pub ticket: Arc<TicketCell>,
    /// Which attempt: 1 for the first; a re-run after an overflow counts up.
    pub number: u32,
    /// Where it runs and why (what its result names).
    pub backend: Arc<Backend>,
    /// The plan it runs by, for its result (`None`: a job placed again after its executor
    /// could not take it).
    pub plan: Option<Arc<Plan>>,
    /// Its output buffers' budget (the job's or the engine's), for its re-runs.
    pub budget: Option<u64>,
    /// Its part in an autotune race: its time is reported once its first attempt succeeds.
    /// Boxed: only large jobs race, and every job moves its attempt around.
    pub race: Option<Box<tune::Entry>>,
}

impl Attempt {
    /// The result of this attempt with `columns`.
    pub(crate) fn result(&self, columns: Vec<Column>) -> JobResult {
        JobResult::with_columns(
            self.prepared.output_names.clone(),
            columns,
            self.number,
            self.backend.clone(),
        )
        .with_plan(self.plan.clone())
    }

    /// Its hits overflowed: `needed` is the most any hits output counted. Notes the program's
    /// hits a row; `Ok` when a re-run with that room fits the job's budget.
    pub(crate) fn overflowed(&self, needed: usize, produced: u64) -> Result<(), JobError> {
        overflowed(&self.prepared, self.rows.len(), needed, produced, self.budget)
    }

    /// The next attempt, with room for `needed` hits. It leaves its race: a re-run's time
    /// says nothing of the knob raced.
    pub(crate) fn again(self, needed: usize) -> Attempt {
        Attempt { hit_capacity: needed, number: self.number + 1, race: None, ..self }
    }

    /// Resolves the ticket with `outcome`. A first attempt that succeeded teaches what it
    /// took (`learn`: the executor's rate of the program) and reports its race — after the
    /// ticket, since a verdict may start a save that must not delay the job.
    pub(crate) fn settle(
        &self,
        outcome: Result<JobResult, JobError>,
        took: Duration,
        learn: impl FnOnce(&PreparedInner, usize, u64),
    ) {
        let first = outcome.is_ok() && self.number == 1;
        if first {
            learn(&self.prepared, self.rows.len(), u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
        }
        self.ticket.resolve(outcome);
        if let Some(race) = self.race.as_ref().filter(|_| first) {
            race.tuner.report(race, took);
        }
    }

    /// Fails the job with `e` (nothing learnt, no race reported).
    pub(crate) fn fail(&self, e: JobError) {
        self.ticket.resolve(Err(e));
    }
}

/// A run of `rows` rows of `prepared` overflowed its hits: `needed` is the most any hits
/// output counted, `produced` the hits it found. Notes the program's hits a row; `Ok` when a
/// re-run with that room fits `budget`. (The inline route's rule too, which has no attempt.)
pub(crate) fn overflowed(
    prepared: &PreparedInner,
    rows: usize,
    needed: usize,
    produced: u64,
    budget: Option<u64>,
) -> Result<(), JobError> {
    prepared.note_hits(rows, produced);
    rerun_fits(prepared.interp.outputs(), rows, needed, budget).map_err(JobError::OverBudget)
}
