//! The merge of a stream's batch results, in row order, into what one job over every row
//! gives: hits with their rows offset, dense outputs concatenated, counts and sums added;
//! hits a sink takes passed on as they come.

use std::sync::Arc;

use meridian_kernels::column::ColumnBuilder;
use meridian_kernels::interp::OutputColumn;

use crate::job::JobResult;
use crate::variants::Backend;

use super::{HitsSink, Piece, StreamResult, SINK_PIECE};

/// The merged outputs of the batches so far.
pub(super) struct Merger<'s> {
    names: Arc<[String]>,
    columns: Vec<Merged>,
    sink: &'s mut dyn HitsSink,
    /// Bytes the merged outputs hold, against the engine's memory budget.
    held: u64,
    budget: Option<u64>,
    pub(super) rows: u64,
    batches: u64,
    attempts: u32,
    backend: Option<Arc<Backend>>,
    plans: Vec<(u64, crate::plan::Plan)>,
}

/// One output, merged.
enum Merged {
    F64(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Geometry(ColumnBuilder),
    Hits(Vec<(u32, u32)>),
    /// Hits handed to the sink as they came: how many.
    Sunk(u64),
    Count(u64),
    Sum(f64),
}

impl Merged {
    /// Nothing yet, of the kind of `c`.
    fn empty(c: &OutputColumn) -> Merged {
        match c {
            OutputColumn::F64(_) => Merged::F64(Vec::new()),
            OutputColumn::Bool(_) => Merged::Bool(Vec::new()),
            OutputColumn::Geometry(_) => Merged::Geometry(ColumnBuilder::new()),
            OutputColumn::Hits(_) => Merged::Hits(Vec::new()),
            OutputColumn::Count(_) => Merged::Count(0),
            OutputColumn::Sum(_) => Merged::Sum(0.0),
        }
    }

    /// Appends the output of a job over `rows` rows whose hits name rows below `end` counted
    /// from `offset` (the stream row of its batch's first row); hits of a sunk output go to
    /// `sink` as `name`'s. Returns the bytes it now holds more.
    pub(super) fn add(
        &mut self,
        c: &OutputColumn,
        offset: u64,
        (rows, end): (usize, usize),
        sink: &mut dyn HitsSink,
        name: &str,
    ) -> Result<u64, String> {
        let held = match (&*self, c) {
            (Merged::F64(_), _) => 9 * rows as u64,
            (Merged::Bool(_), _) => rows as u64,
            (Merged::Geometry(_), OutputColumn::Geometry(g)) => {
                meridian_kernels::cuda::DeviceColumn::bytes(g) as u64
            }
            (Merged::Hits(_), OutputColumn::Hits(h)) => 8 * h.len() as u64,
            _ => 0,
        };
        let shift = |h: &[(u32, u32)]| -> Result<Vec<(u32, u32)>, String> {
            // Hits name rows with 32 bits; other outputs have no such limit.
            let base = u32::try_from(offset)
                .ok()
                .filter(|o| u32::try_from(end).is_ok_and(|n| o.checked_add(n).is_some()))
                .ok_or_else(|| {
                    format!("hits name rows with 32 bits: no room past row {} of a stream", u32::MAX)
                })?;
            Ok(h.iter().map(|&(r, id)| (r + base, id)).collect())
        };
        match (self, c) {
            (Merged::F64(v), OutputColumn::F64(c)) => v.extend(c.iter()),
            (Merged::Bool(v), OutputColumn::Bool(c)) => v.extend(c.iter()),
            (Merged::Geometry(b), OutputColumn::Geometry(c)) => {
                for row in 0..c.len() {
                    b.push_geom(c.get(row).as_ref()).map_err(|e| e.to_string())?;
                }
            }
            (Merged::Hits(h), OutputColumn::Hits(c)) => h.extend(shift(c)?),
            (Merged::Sunk(n), OutputColumn::Hits(c)) => {
                // A piece at a time: a shifted copy of every hit would double them in memory.
                for piece in c.chunks(SINK_PIECE) {
                    sink.hits(name, &shift(piece)?)?;
                }
                *n += c.len() as u64;
            }
            (Merged::Count(n), OutputColumn::Count(c)) => *n += c,
            (Merged::Sum(s), OutputColumn::Sum(c)) => *s += c,
            _ => return Err("a batch's outputs differ in kind from the first batch's".into()),
        }
        Ok(held)
    }

    pub(super) fn finish(self) -> OutputColumn {
        match self {
            Merged::F64(v) => OutputColumn::F64(v.into_iter().collect()),
            Merged::Bool(v) => OutputColumn::Bool(v.into_iter().collect()),
            Merged::Geometry(b) => OutputColumn::Geometry(Box::new(b.finish())),
            Merged::Hits(h) => OutputColumn::Hits(h),
            Merged::Sunk(_) => OutputColumn::Hits(Vec::new()),
            Merged::Count(n) => OutputColumn::Count(n),
            Merged::Sum(s) => OutputColumn::Sum(s),
        }
    }
}

impl<'s> Merger<'s> {
    /// Nothing merged yet; hits outputs `sink` takes go there, the rest are held against
    /// `budget`.
    pub(super) fn new(sink: &'s mut dyn HitsSink, budget: Option<u64>) -> Merger<'s> {
        Merger {
            names: Arc::from([]),
            columns: Vec::new(),
            sink,
            held: 0,
            budget,
            rows: 0,
            batches: 0,
            attempts: 1,
            backend: None,
            plans: Vec::new(),
        }
    }

    /// Merges the result of `piece` (pieces come in row order).
    pub(super) fn add(&mut self, r: &JobResult, piece: &Piece) -> Result<(), String> {
        let rows = piece.rows.len();
        if self.batches == 0 && self.rows == 0 {
            self.names = r.outputs().map(|(n, _)| n.to_owned()).collect();
            let sink = &*self.sink;
            self.columns = r
                .outputs()
                .map(|(n, c)| match c {
                    OutputColumn::Hits(_) if sink.takes(n) => Merged::Sunk(0),
                    _ => Merged::empty(c),
                })
                .collect();
        }
        // A piece's hits name rows of its batch.
        for ((name, col), merged) in r.outputs().zip(self.columns.iter_mut()) {
            let rows = (piece.rows.len(), piece.rows.end);
            self.held += merged.add(col, piece.base, rows, &mut *self.sink, name)?;
        }
        // What the stream holds merged counts against the budget, as a job's buffers do: past
        // it the stream fails, saying what it needed (hits a sink takes are not held).
        if let Some(budget) = self.budget.filter(|b| self.held > *b) {
            return Err(format!(
                "its merged outputs need more than the memory budget ({} bytes held after {} rows, budget {budget} \
                 bytes); write hits as they come (meridian run does) or raise {}",
                self.held,
                self.rows + rows as u64,
                crate::engine::MEMORY_BUDGET_ENV
            ));
        }
        if let Some(p) = r.plan() {
            let same = |q: &crate::plan::Plan| {
                (q.backend(), q.route(), std::mem::discriminant(&q.topology), q.chunk_rows)
                    == (p.backend(), p.route(), std::mem::discriminant(&p.topology), p.chunk_rows)
            };
            if !self.plans.last().is_some_and(|(_, q)| same(q)) {
                self.plans.push((self.batches, p.clone()));
            }
        }
        self.rows += rows as u64;
        // Pieces of one batch count as that batch.
        if piece.rows.start == 0 {
            self.batches += 1;
        }
        self.attempts = self.attempts.max(r.attempts());
        let this = r.backend();
        self.backend = match self.backend.take() {
            None => Some(Arc::new(this.clone())),
            Some(b) if b.ran_on(this.variant) => Some(b),
            Some(b) => {
                let reason = if b.also.is_empty() {
                    format!(
                        "batches ran on {} ({}, route {}) and on {} ({}, route {})",
                        b.name(),
                        b.reason,
                        b.route(),
                        this.name(),
                        this.reason,
                        this.route()
                    )
                } else {
                    format!("{}, and on {} ({}, route {})", b.reason, this.name(), this.reason, this.route())
                };
                let mut also = b.also.clone();
                also.push(this.variant);
                Some(Arc::new(Backend {
                    variant: b.variant,
                    reason,
                    fallback: b.fallback || this.fallback,
                    also,
                }))
            }
        };
        Ok(())
    }

    pub(super) fn finish(self) -> Option<StreamResult> {
        let backend = self.backend?;
        // Sunk outputs are not in the result: the sink holds them.
        let (mut names, mut columns, mut sunk) = (Vec::new(), Vec::new(), Vec::new());
        for (name, merged) in self.names.iter().zip(self.columns) {
            match merged {
                Merged::Sunk(n) => sunk.push((name.clone(), n)),
                m => {
                    names.push(name.clone());
                    columns.push(m.finish());
                }
            }
        }
        Some(StreamResult {
            result: JobResult::new(names.into(), columns, self.attempts, backend),
            sunk,
            rows: self.rows,
            batches: self.batches,
            plans: self.plans,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::NoSink;

    #[test]
    fn only_hits_limit_a_stream_to_32_bit_rows() {
        let far = u64::from(u32::MAX) + 10;
        let mut count = Merged::empty(&OutputColumn::Count(0));
        assert!(count.add(&OutputColumn::Count(7), far, (100, 100), &mut NoSink, "n").is_ok());
        let mut sum = Merged::empty(&OutputColumn::Sum(0.0));
        assert!(sum.add(&OutputColumn::Sum(1.5), far, (100, 100), &mut NoSink, "s").is_ok());
        let mut hits = Merged::empty(&OutputColumn::Hits(Vec::new()));
        assert!(hits.add(&OutputColumn::Hits(vec![(1, 2)]), 1000, (100, 100), &mut NoSink, "h").is_ok());
        let e = hits.add(&OutputColumn::Hits(vec![(1, 2)]), far, (100, 100), &mut NoSink, "h").unwrap_err();
        assert!(e.contains("32 bits"), "{e}");
        // A batch that would cross the limit.
        let e = hits
            .add(&OutputColumn::Hits(Vec::new()), u64::from(u32::MAX) - 5, (100, 100), &mut NoSink, "h")
            .unwrap_err();
        assert!(e.contains("32 bits"), "{e}");
        let OutputColumn::Hits(h) = hits.finish() else { panic!("hits") };
        assert_eq!(h, vec![(1001, 2)]);
    }
}
