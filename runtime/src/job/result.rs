//! A finished job's outputs and where it ran.

use std::sync::{Arc, OnceLock};

use meridian_kernels::interp::{
    hits_from_runs, BoolColumn, F64Column, FinishError, OutputBuffers, OutputColumn,
};

use crate::plan::Plan;
use crate::variants::Backend;

/// A hits output whose hits are back on the host but not yet put in `(row, id)` order: the
/// order is made the first time the output is read.
#[derive(Debug)]
pub(crate) struct PendingHits {
    keys: Vec<u64>,
    runs: Vec<(usize, usize)>,
    done: OnceLock<OutputColumn>,
}

impl PendingHits {
    /// Hits `keys` (packed `row << 32 | id`) appended in `runs`; fails unless the runs cover
    /// every key exactly once, which is what makes ordering them later infallible.
    pub(crate) fn new(keys: Vec<u64>, runs: Vec<(usize, usize)>) -> Result<PendingHits, String> {
        let mut covered = 0usize;
        for &(start, len) in &runs {
            if start.checked_add(len).is_none_or(|end| end > keys.len()) {
                return Err(format!(
                    "a run of {len} hits at {start} is outside the {} hits produced",
                    keys.len()
                ));
            }
            covered += len;
        }
        if covered != keys.len() {
            return Err(format!("{covered} hits in runs, {} produced", keys.len()));
        }
        Ok(PendingHits { keys, runs, done: OnceLock::new() })
    }

    fn column(&self) -> &OutputColumn {
        self.done.get_or_init(|| {
            let keys = &self.keys;
            // `new` checked that the runs tile the keys, so ordering them cannot miss a hit; if it
            // did, sorting every key gives the same pairs.
            match hits_from_runs(keys.len(), self.runs.clone(), |i| keys.get(i).copied()) {
                Ok(h) => OutputColumn::Hits(h),
                Err(_) => {
                    let mut all = keys.clone();
                    all.sort_unstable();
                    OutputColumn::Hits(all.into_iter().map(|h| ((h >> 32) as u32, h as u32)).collect())
                }
            }
        })
    }
}

/// One output of a finished job.
#[derive(Clone, Debug)]
pub(crate) enum Column {
    Ready(OutputColumn),
    Hits(Arc<PendingHits>),
}

impl Column {
    fn get(&self) -> &OutputColumn {
        match self {
            Column::Ready(c) => c,
            Column::Hits(h) => h.column(),
        }
    }
}

/// The outputs of a finished job, by name, and where it ran.
///
/// Hits from the GPU are ordered into `(row, id)` pairs the first time they are read, not
/// when the job completes (a join's millions of hits cost more to order than to find).
#[derive(Clone, Debug)]
pub struct JobResult {
    names: Arc<[String]>,
    columns: Vec<Column>,
    attempts: u32,
    backend: Arc<Backend>,
    /// Shared with the job's state: a result moves and clones a pointer, not the plan.
    plan: Option<Arc<Plan>>,
}

impl PartialEq for JobResult {
    fn eq(&self, o: &JobResult) -> bool {
        self.names == o.names
            && self.attempts == o.attempts
            && self.backend == o.backend
            && self.columns.len() == o.columns.len()
            && self.columns.iter().zip(&o.columns).all(|(a, b)| a.get() == b.get())
    }
}

impl JobResult {
    pub(crate) fn new(
        names: Arc<[String]>,
        columns: Vec<OutputColumn>,
        attempts: u32,
        backend: Arc<Backend>,
    ) -> JobResult {
        JobResult::with_columns(names, columns.into_iter().map(Column::Ready).collect(), attempts, backend)
    }

    pub(crate) fn with_columns(
        names: Arc<[String]>,
        columns: Vec<Column>,
        attempts: u32,
        backend: Arc<Backend>,
    ) -> JobResult {
        JobResult { names, columns, attempts, backend, plan: None }
    }

    /// This result made the outputs of an inline run finished in `out`, as a result made
    /// anew would be, reusing its columns' memory (a service's request, [`crate::Request`]).
    /// On error the result is not whole: the caller drops it.
    pub(crate) fn refill(
        &mut self,
        out: &OutputBuffers,
        attempts: u32,
        backend: &Arc<Backend>,
        plan: &Plan,
    ) -> Result<(), FinishError> {
        for (i, column) in self.columns.iter_mut().enumerate() {
            if !matches!(column, Column::Ready(_)) {
                *column = Column::Ready(OutputColumn::Count(0));
            }
            if let Column::Ready(c) = column {
                out.finish_column_into(i, c)?;
            }
        }
        self.attempts = attempts;
        if !Arc::ptr_eq(&self.backend, backend) {
            self.backend = backend.clone();
        }
        match self.plan.as_mut().and_then(Arc::get_mut) {
            Some(p) => p.clone_from(plan),
            None => self.plan = Some(Arc::new(plan.clone())),
        }
        Ok(())
    }

    /// The result with the plan its job ran by.
    pub(crate) fn with_plan(mut self, plan: Option<Arc<Plan>>) -> JobResult {
        self.plan = plan;
        self
    }

    /// The plan the job ran by: backend, route, topology, chunk size, hit capacity and why
    /// (what `meridian run --explain` prints). `None` for a streamed job's merged result
    /// (`StreamResult::plans` has its batches') and for a GPU job re-run on the CPU after a
    /// device failure.
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_deref()
    }

    /// What ran the rows: `interp` or `jit` (see [`Backend::route`]).
    pub fn route(&self) -> &'static str {
        self.backend.route()
    }

    /// Where this job ran and why there (`cpu` or `cuda`; a job can run elsewhere than the
    /// engine's [`Engine::backend`](crate::Engine::backend), e.g. a program the GPU does not
    /// run, under `auto`).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Every output as `(name, column)`, in `.output` order.
    pub fn outputs(&self) -> impl ExactSizeIterator<Item = (&str, &OutputColumn)> {
        self.names.iter().map(String::as_str).zip(self.columns.iter().map(Column::get))
    }

    /// The output called `name`.
    pub fn get(&self, name: &str) -> Option<&OutputColumn> {
        self.names.iter().position(|n| n == name).map(|i| self.columns[i].get())
    }

    /// The output `output` ([`crate::Prepared::output`]); `None` only for a result of
    /// another program.
    pub fn column(&self, output: &super::Output) -> Option<&OutputColumn> {
        let same = self.names.get(output.index).is_some_and(|n| **n == *output.name);
        same.then(|| self.columns[output.index].get())
    }

    /// The hits output `output`: `(row, id)` pairs sorted by row, then id; `None` only for a
    /// result of another program, or an output that is not a hits output.
    pub fn hits_of(&self, output: &super::Output) -> Option<&[(u32, u32)]> {
        match self.column(output)? {
            OutputColumn::Hits(h) => Some(h),
            _ => None,
        }
    }

    /// A hits output: `(row, id)` pairs sorted by row, then id.
    pub fn hits(&self, name: &str) -> Option<&[(u32, u32)]> {
        match self.get(name)? {
            OutputColumn::Hits(h) => Some(h),
            _ => None,
        }
    }

    /// An f64 output.
    pub fn f64(&self, name: &str) -> Option<&F64Column> {
        match self.get(name)? {
            OutputColumn::F64(c) => Some(c),
            _ => None,
        }
    }

    /// A bool output.
    pub fn bool(&self, name: &str) -> Option<&BoolColumn> {
        match self.get(name)? {
            OutputColumn::Bool(c) => Some(c),
            _ => None,
        }
    }

    /// A count output.
    pub fn count(&self, name: &str) -> Option<u64> {
        match self.get(name)? {
            OutputColumn::Count(n) => Some(*n),
            _ => None,
        }
    }

    /// A sum output.
    pub fn sum(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            OutputColumn::Sum(v) => Some(*v),
            _ => None,
        }
    }

    /// How many times the job ran (more than 1 when hits overflowed their first capacity).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}
