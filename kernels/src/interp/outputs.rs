//! Where a job's results go while chunks run on several threads, and what they become.
//!
//! Dense outputs are arrays of atomics indexed by row, so chunks on different threads write
//! disjoint rows without locks; hits go to one capacity-bounded buffer behind an atomic
//! cursor; reductions are combined once per chunk. Every store is `Relaxed`: the executor
//! publishes a chunk's completion with a release store and the reader acquires it, which
//! orders every store of the chunk before the read.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use meridian_bytecode::OutputKind;

use super::stop::{Stop, CLOCK_POLLS, FLAG_POLLS};
use crate::column::{ColumnBuilder, ColumnError, GeometryColumn};

/// A dense f64 output: one value or null per row.
#[derive(Clone, Debug, PartialEq)]
pub struct F64Column {
    values: Vec<f64>,
    valid: Vec<bool>,
}

impl F64Column {
    /// A column from values and validity (`valid[i]` false: row `i` is null; its value is
    /// ignored). `None` when the lengths differ.
    pub fn from_parts(values: Vec<f64>, valid: Vec<bool>) -> Option<F64Column> {
        (values.len() == valid.len()).then_some(F64Column { values, valid })
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value at `row` (relative to the job's first row), `None` when null or out of range.
    pub fn get(&self, row: usize) -> Option<f64> {
        self.valid.get(row).copied().filter(|&v| v).map(|_| self.values[row])
    }

    /// Every row, nulls as `None`.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Option<f64>> + '_ {
        self.values.iter().zip(&self.valid).map(|(&v, &ok)| ok.then_some(v))
    }
}

impl FromIterator<Option<f64>> for F64Column {
    fn from_iter<I: IntoIterator<Item = Option<f64>>>(rows: I) -> F64Column {
        let (values, valid) = rows.into_iter().map(|v| (v.unwrap_or(0.0), v.is_some())).unzip();
        F64Column { values, valid }
    }
}

/// A dense bool output: one value or null per row.
#[derive(Clone, Debug, PartialEq)]
pub struct BoolColumn {
    values: Vec<Option<bool>>,
}

impl BoolColumn {
    /// A column from the interpreter's byte encoding: 0 false, 1 true, anything else null.
    pub fn from_codes(codes: &[u8]) -> BoolColumn {
        BoolColumn {
            values: codes
                .iter()
                .map(|&c| match c {
                    0 => Some(false),
                    1 => Some(true),
                    _ => None,
                })
                .collect(),
        }
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value at `row`, `None` when null or out of range.
    pub fn get(&self, row: usize) -> Option<bool> {
        self.values.get(row).copied().flatten()
    }

    /// Every row, nulls as `None`.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Option<bool>> + '_ {
        self.values.iter().copied()
    }
}

impl FromIterator<Option<bool>> for BoolColumn {
    fn from_iter<I: IntoIterator<Item = Option<bool>>>(rows: I) -> BoolColumn {
        BoolColumn { values: rows.into_iter().collect() }
    }
}

/// One output of a finished job.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputColumn {
    /// `f64` output.
    F64(F64Column),
    /// `bool` output.
    Bool(BoolColumn),
    /// `geometry` output (one row per job row; rows never stored are null). Boxed: a column
    /// is large, and every result moves its outputs (a one-row job's round trip spent a
    /// fifth of its time copying them).
    Geometry(Box<GeometryColumn>),
    /// `hits` output: `(row, id)` pairs sorted by row, then id.
    Hits(Vec<(u32, u32)>),
    /// `count` output.
    Count(u64),
    /// `sum` output (0 when nothing was added).
    Sum(f64),
}

/// Not every hit fitted: the job must run again with at least these capacities.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("hit buffers overflowed: {needed:?} (output, hits produced)")]
pub struct HitOverflow {
    /// `(output index, hits the job produced)` for every output that overflowed.
    pub needed: Vec<(usize, u64)>,
}

const NULL_BOOL: u8 = 2;

#[derive(Debug)]
pub(crate) enum Buffer {
    F64 {
        bits: Box<[AtomicU64]>,
        valid: Box<[AtomicU8]>,
    },
    Bool(Box<[AtomicU8]>),
    Geometry(Mutex<Vec<(usize, GeometryColumn)>>),
    /// `runs`: every reservation `(start, len)`, so `finish` can put the runs in order
    /// instead of sorting every hit.
    Hits {
        slots: Box<[AtomicU64]>,
        cursor: AtomicU64,
        runs: Mutex<Vec<(usize, usize)>>,
    },
    Count(AtomicU64),
    Sum {
        bits: AtomicU64,
        any: AtomicBool,
    },
}

/// The output buffers of one job run over a row range, and the job's stop signal.
#[derive(Debug)]
pub struct OutputBuffers {
    rows: Range<usize>,
    pub(crate) buffers: Vec<Buffer>,
    /// Polled by the rows' loops: a stopped job's rows end in an error.
    stop: Option<Arc<Stop>>,
}

fn atomics<T>(n: usize, f: impl Fn() -> T) -> Box<[T]> {
    (0..n).map(|_| f()).collect()
}

/// `n` zeroed atomics from zeroed memory: the pages of a large hit buffer are only touched
/// when hits land in them, so a generous capacity costs address space, not time.
fn zeroed<T: bytemuck::Zeroable>(n: usize, f: impl Fn() -> T) -> Box<[T]> {
    bytemuck::try_zeroed_slice_box(n).unwrap_or_else(|()| atomics(n, f))
}

impl OutputBuffers {
    /// The bytes [`OutputBuffers::new`] allocates for `outputs` over `rows` rows with room
    /// for `hit_capacity` hits in each hits output: 9 a row for an `f64` output (value and
    /// validity), 1 for a `bool`, 8 a hit, 16 for a count or a sum. Geometry outputs grow as
    /// rows run and are not counted.
    pub fn bytes(outputs: &[OutputKind], rows: usize, hit_capacity: usize) -> u64 {
        let (rows, hits) = (rows as u64, hit_capacity as u64);
        outputs
            .iter()
            .map(|k| match k {
                OutputKind::F64 => rows.saturating_mul(9),
                OutputKind::Bool => rows,
                OutputKind::Hits => hits.saturating_mul(8),
                OutputKind::Count | OutputKind::Sum => 16,
                OutputKind::Geometry => 0,
            })
            .fold(0u64, u64::saturating_add)
    }

    /// Buffers for `outputs` over job rows `rows`, with room for `hit_capacity` hits in each
    /// hits output.
    pub fn new(outputs: &[OutputKind], rows: Range<usize>, hit_capacity: usize) -> OutputBuffers {
        let n = rows.len();
        let buffers = outputs
            .iter()
            .map(|k| match k {
                OutputKind::F64 => Buffer::F64 {
                    bits: zeroed(n, || AtomicU64::new(0)),
                    valid: zeroed(n, || AtomicU8::new(0)),
                },
                OutputKind::Bool => Buffer::Bool(atomics(n, || AtomicU8::new(NULL_BOOL))),
                OutputKind::Geometry => Buffer::Geometry(Mutex::new(Vec::new())),
                OutputKind::Hits => Buffer::Hits {
                    slots: zeroed(hit_capacity, || AtomicU64::new(0)),
                    cursor: AtomicU64::new(0),
                    runs: Mutex::new(Vec::new()),
                },
                OutputKind::Count => Buffer::Count(AtomicU64::new(0)),
                OutputKind::Sum => {
                    Buffer::Sum { bits: AtomicU64::new((-0.0f64).to_bits()), any: AtomicBool::new(false) }
                }
            })
            .collect();
        OutputBuffers { rows, buffers, stop: None }
    }

    /// These buffers with the job's stop signal: every thread running rows into them polls
    /// it (each chunk's rows, every candidate loop's iterations) and ends its rows with an
    /// error once it is set.
    pub fn with_stop(mut self, stop: Arc<Stop>) -> OutputBuffers {
        self.stop = Some(stop);
        self
    }

    /// These buffers made ready for another run over job rows `rows` with room for
    /// `hit_capacity` hits in each hits output, as [`OutputBuffers::new`] would make them and
    /// without a stop signal: memory of the right size is zeroed and kept (a hits buffer
    /// with more room than asked is kept too), other memory replaced. What a service's
    /// request path reuses instead of allocating a job's buffers.
    pub fn reset(&mut self, rows: Range<usize>, hit_capacity: usize) {
        let n = rows.len();
        for b in &mut self.buffers {
            match b {
                Buffer::F64 { bits, valid } if bits.len() == n => {
                    bits.iter().for_each(|b| b.store(0, Relaxed));
                    valid.iter().for_each(|v| v.store(0, Relaxed));
                }
                Buffer::F64 { bits, valid } => {
                    *bits = zeroed(n, || AtomicU64::new(0));
                    *valid = zeroed(n, || AtomicU8::new(0));
                }
                Buffer::Bool(vals) if vals.len() == n => {
                    vals.iter().for_each(|v| v.store(NULL_BOOL, Relaxed))
                }
                Buffer::Bool(vals) => *vals = atomics(n, || AtomicU8::new(NULL_BOOL)),
                Buffer::Geometry(chunks) => chunks.get_mut().unwrap_or_else(|p| p.into_inner()).clear(),
                Buffer::Hits { slots, cursor, runs } => {
                    if slots.len() < hit_capacity {
                        *slots = zeroed(hit_capacity, || AtomicU64::new(0));
                    }
                    *cursor.get_mut() = 0;
                    runs.get_mut().unwrap_or_else(|p| p.into_inner()).clear();
                }
                Buffer::Count(c) => *c.get_mut() = 0,
                Buffer::Sum { bits, any } => {
                    *bits.get_mut() = (-0.0f64).to_bits();
                    *any.get_mut() = false;
                }
            }
        }
        self.rows = rows;
        self.stop = None;
    }

    /// Sets (or, with `None`, drops) the job's stop signal ([`OutputBuffers::with_stop`]).
    pub fn set_stop(&mut self, stop: Option<Arc<Stop>>) {
        self.stop = stop;
    }

    /// The job's stop signal, if it has one.
    pub fn stop(&self) -> Option<&Arc<Stop>> {
        self.stop.as_ref()
    }

    /// Whether the rows must stop now: the flags every [`FLAG_POLLS`] calls, the clock every
    /// [`CLOCK_POLLS`] (`polls`: the calling thread's count).
    #[inline(always)]
    pub(crate) fn stop_requested(&self, polls: &mut u32) -> bool {
        let Some(stop) = &self.stop else { return false };
        *polls = polls.wrapping_add(1);
        if !polls.is_multiple_of(FLAG_POLLS) {
            return false;
        }
        stop.poll(polls.is_multiple_of(CLOCK_POLLS)).is_some()
    }

    /// The job rows these buffers cover.
    pub fn rows(&self) -> Range<usize> {
        self.rows.clone()
    }

    #[inline]
    pub(crate) fn store_f64(&self, out: usize, row: usize, v: Option<f64>) {
        if let Some(Buffer::F64 { bits, valid }) = self.buffers.get(out) {
            let i = row - self.rows.start;
            bits[i].store(v.unwrap_or(0.0).to_bits(), Relaxed);
            valid[i].store(u8::from(v.is_some()), Relaxed);
        }
    }

    #[inline]
    /// For compiled code that stores dense outputs itself: per output, the addresses of row 0's
    /// value and validity (f64: 8-byte values, 1-byte validity; bool: 1-byte codes, no
    /// validity), shifted by the job's first row so that row `r` of the job is at
    /// `base + r * size`; null addresses for other outputs. Only rows of `self.rows()` may be
    /// written through them, as the stores above do (plain stores: each row is written by one
    /// thread, and the job's completion publishes them).
    #[cfg(feature = "jit")]
    pub(crate) fn dense_bases(&self) -> [[*mut u8; 2]; meridian_bytecode::MAX_OUTPUTS] {
        // On the stack: compiled code runs a service's one-row requests, which allocate nothing.
        let start = self.rows.start;
        let mut bases = [[std::ptr::null_mut(); 2]; meridian_bytecode::MAX_OUTPUTS];
        for (base, b) in bases.iter_mut().zip(&self.buffers) {
            *base = match b {
                Buffer::F64 { bits, valid } => [
                    bits.as_ptr().cast::<u8>().cast_mut().wrapping_sub(start * 8),
                    valid.as_ptr().cast::<u8>().cast_mut().wrapping_sub(start),
                ],
                Buffer::Bool(codes) => {
                    [codes.as_ptr().cast::<u8>().cast_mut().wrapping_sub(start), std::ptr::null_mut()]
                }
                _ => [std::ptr::null_mut(); 2],
            };
        }
        bases
    }

    pub(crate) fn store_bool(&self, out: usize, row: usize, v: u8) {
        if let Some(Buffer::Bool(vals)) = self.buffers.get(out) {
            vals[row - self.rows.start].store(v, Relaxed);
        }
    }

    pub(crate) fn add_geometry_chunk(&self, out: usize, first_row: usize, col: GeometryColumn) {
        if let Some(Buffer::Geometry(chunks)) = self.buffers.get(out) {
            // A poisoned lock only means another chunk panicked mid-push; the list is intact.
            let mut chunks = chunks.lock().unwrap_or_else(|p| p.into_inner());
            chunks.push((first_row, col));
        }
    }

    /// Appends a batch of packed `(row << 32) | id` hits: one atomic add reserves their
    /// places; those past the capacity are counted, not stored.
    pub(crate) fn append_hits(&self, out: usize, batch: &[u64]) {
        if let Some(Buffer::Hits { slots, cursor, runs }) = self.buffers.get(out) {
            if batch.is_empty() {
                return;
            }
            let start = cursor.fetch_add(batch.len() as u64, Relaxed) as usize;
            for (slot, &h) in slots.iter().skip(start).zip(batch) {
                slot.store(h, Relaxed);
            }
            runs.lock().unwrap_or_else(|p| p.into_inner()).push((start, batch.len()));
        }
    }

    pub(crate) fn add_count(&self, out: usize, n: u64) {
        if let Some(Buffer::Count(c)) = self.buffers.get(out) {
            c.fetch_add(n, Relaxed);
        }
    }

    pub(crate) fn add_sum(&self, out: usize, v: f64) {
        if let Some(Buffer::Sum { bits, any }) = self.buffers.get(out) {
            any.store(true, Relaxed);
            let _ = bits.fetch_update(Relaxed, Relaxed, |b| Some((f64::from_bits(b) + v).to_bits()));
        }
    }

    /// Hits produced so far over all hits outputs.
    pub fn hits_produced(&self) -> u64 {
        self.buffers
            .iter()
            .map(|b| match b {
                Buffer::Hits { cursor, .. } => cursor.load(Relaxed),
                _ => 0,
            })
            .sum()
    }

    /// Hits produced so far per hits output that overflowed its capacity.
    pub fn overflow(&self) -> Option<HitOverflow> {
        let needed: Vec<(usize, u64)> = self
            .buffers
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match b {
                Buffer::Hits { slots, cursor, .. } => {
                    let n = cursor.load(Relaxed);
                    (n > slots.len() as u64).then_some((i, n))
                }
                _ => None,
            })
            .collect();
        (!needed.is_empty()).then_some(HitOverflow { needed })
    }

    /// The finished outputs, in output order. Call once, after every chunk has completed
    /// (the caller's synchronisation orders their stores before this); geometry outputs are
    /// moved out. Fails when hits overflowed: nothing partial is returned.
    pub fn finish(&self) -> Result<Vec<OutputColumn>, FinishError> {
        if let Some(o) = self.overflow() {
            return Err(FinishError::Overflow(o));
        }
        let rows = self.rows.len();
        self.buffers.iter().map(|b| finish_buffer(b, rows)).collect()
    }

    /// [`OutputBuffers::finish`] into `columns`, reusing their memory where a column already
    /// holds the output's kind ([`OutputBuffers::finish_column_into`]). Fails as `finish`
    /// does, leaving `columns` as they were on an overflow.
    pub fn finish_into(&self, columns: &mut Vec<OutputColumn>) -> Result<(), FinishError> {
        if let Some(o) = self.overflow() {
            return Err(FinishError::Overflow(o));
        }
        columns.truncate(self.buffers.len());
        for i in 0..self.buffers.len() {
            match columns.get_mut(i) {
                Some(column) => self.finish_column_into(i, column)?,
                None => columns.push(finish_buffer(&self.buffers[i], self.rows.len())?),
            }
        }
        Ok(())
    }

    /// Output `output` finished into `column`, reusing its memory when it holds the output's
    /// kind already (else it is replaced); a hits output's pairs are sorted here, which suits
    /// small jobs, such as the inline route's, whose hits are few. Call after every chunk has
    /// completed, as [`OutputBuffers::finish`]; a hits output that overflowed is an error
    /// (never a partial column).
    pub fn finish_column_into(&self, output: usize, column: &mut OutputColumn) -> Result<(), FinishError> {
        let Some(b) = self.buffers.get(output) else {
            return Err(FinishError::NoOutput { output, outputs: self.buffers.len() });
        };
        match (b, column) {
            (Buffer::F64 { bits, valid }, OutputColumn::F64(c)) => {
                c.values.clear();
                c.values.extend(bits.iter().map(|b| f64::from_bits(b.load(Relaxed))));
                c.valid.clear();
                c.valid.extend(valid.iter().map(|v| v.load(Relaxed) == 1));
            }
            (Buffer::Bool(vals), OutputColumn::Bool(c)) => {
                c.values.clear();
                c.values.extend(vals.iter().map(|v| bool3(v.load(Relaxed))));
            }
            (Buffer::Hits { slots, cursor, .. }, OutputColumn::Hits(h)) => {
                let n = cursor.load(Relaxed) as usize;
                if n > slots.len() {
                    return Err(FinishError::Overflow(HitOverflow { needed: vec![(output, n as u64)] }));
                }
                h.clear();
                h.extend(slots[..n].iter().map(|s| s.load(Relaxed)).map(|k| ((k >> 32) as u32, k as u32)));
                // Packed keys order as the pairs do.
                h.sort_unstable();
            }
            (Buffer::Count(c), OutputColumn::Count(v)) => *v = c.load(Relaxed),
            (b, column) => *column = finish_buffer(b, self.rows.len())?,
        }
        Ok(())
    }

    /// [`OutputBuffers::finish`] for an owner: dense outputs become their columns in place
    /// (the atomics' memory reused, nothing copied) — what the inline route uses, where
    /// allocation and copies are most of a small job's cost.
    pub fn into_columns(self) -> Result<Vec<OutputColumn>, FinishError> {
        if let Some(o) = self.overflow() {
            return Err(FinishError::Overflow(o));
        }
        let rows = self.rows.len();
        self.buffers
            .into_iter()
            .map(|b| match b {
                Buffer::F64 { bits, valid } => Ok(OutputColumn::F64(F64Column {
                    values: Vec::from(bits).into_iter().map(|b| f64::from_bits(b.into_inner())).collect(),
                    valid: Vec::from(valid).into_iter().map(|v| v.into_inner() == 1).collect(),
                })),
                Buffer::Bool(vals) => Ok(OutputColumn::Bool(BoolColumn {
                    values: Vec::from(vals).into_iter().map(|v| bool3(v.into_inner())).collect(),
                })),
                other => finish_buffer(&other, rows),
            })
            .collect()
    }
}

/// A `bool` output's byte: 0 false, 1 true, anything else (never stored) null.
fn bool3(v: u8) -> Option<bool> {
    match v {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// One output's column (see [`OutputBuffers::finish`]).
fn finish_buffer(b: &Buffer, rows: usize) -> Result<OutputColumn, FinishError> {
    Ok(match b {
        Buffer::F64 { bits, valid } => OutputColumn::F64(F64Column {
            values: bits.iter().map(|b| f64::from_bits(b.load(Relaxed))).collect(),
            valid: valid.iter().map(|v| v.load(Relaxed) == 1).collect(),
        }),
        Buffer::Bool(vals) => {
            OutputColumn::Bool(BoolColumn { values: vals.iter().map(|v| bool3(v.load(Relaxed))).collect() })
        }
        Buffer::Geometry(chunks) => {
            let mut chunks = std::mem::take(&mut *chunks.lock().unwrap_or_else(|p| p.into_inner()));
            chunks.sort_by_key(|(first, _)| *first);
            let mut b = ColumnBuilder::new();
            for (_, col) in &chunks {
                for r in 0..col.len() {
                    b.push_geom(col.get(r).as_ref()).map_err(FinishError::Column)?;
                }
            }
            if b.len() != rows {
                return Err(FinishError::MissingRows { expected: rows, got: b.len() });
            }
            OutputColumn::Geometry(Box::new(b.finish()))
        }
        Buffer::Hits { slots, cursor, runs } => {
            let n = cursor.load(Relaxed) as usize;
            let runs = std::mem::take(&mut *runs.lock().unwrap_or_else(|p| p.into_inner()));
            OutputColumn::Hits(hits_from_runs(n, runs, |i| slots.get(i).map(|h| h.load(Relaxed)))?)
        }
        Buffer::Count(c) => OutputColumn::Count(c.load(Relaxed)),
        Buffer::Sum { bits, any } => {
            OutputColumn::Sum(if any.load(Relaxed) { f64::from_bits(bits.load(Relaxed)) } else { 0.0 })
        }
    })
}

/// The hits of one output in `(row, id)` order, from the runs they were appended in: `n`
/// hits counted, `runs` the `(start, length)` of every reservation, `slot(i)` the packed
/// `row << 32 | id` at place `i`.
///
/// Each run is one batch of an executor (a CPU chunk's, a GPU tile's): rows ascending, and in
/// a join the ids of a row ascending too. Runs of different batches cover different rows, so
/// ordering the runs by their first hit usually orders everything; when it does not (a
/// program that emits out of order), the hits are sorted. Fails when the runs do not add up
/// to `n` (a batch still running, or a lost one): nothing partial is returned.
pub fn hits_from_runs(
    n: usize,
    runs: Vec<(usize, usize)>,
    slot: impl Fn(usize) -> Option<u64> + Sync,
) -> Result<Vec<(u32, u32)>, FinishError> {
    // Each run's first key read once, not in the comparator: a cache miss per comparison
    // adds up over the 781k runs (tiles) of a 100M-row GPU job.
    let mut firsts: Vec<(u64, usize, usize)> =
        runs.into_iter().map(|(start, len)| (slot(start).unwrap_or(0), start, len)).collect();
    firsts.sort_unstable();
    let covered = firsts.iter().try_fold(0usize, |acc, r| acc.checked_add(r.2));
    let present = |rs: &[(u64, usize, usize)]| -> usize {
        rs.iter()
            .map(|&(_, start, len)| (start..start.saturating_add(len)).filter(|&i| slot(i).is_some()).count())
            .sum()
    };
    if covered != Some(n) {
        return Err(FinishError::MissingHits { expected: n, got: present(&firsts) });
    }
    // Gathered in parallel when there are millions (the host's ordering of a large GPU job's
    // hits took as long as the job), each thread filling an equal stretch of the output
    // (across runs, or inside one), and unpacked as they go: (row, id) pairs order as the
    // packed keys do.
    let mut offsets = Vec::with_capacity(firsts.len() + 1);
    offsets.push(0usize);
    for r in &firsts {
        offsets.push(offsets[offsets.len() - 1] + r.2);
    }
    let mut hits: Vec<(u32, u32)> = vec![(0, 0); n];
    let threads =
        if n >= 1 << 20 { std::thread::available_parallelism().map_or(1, |t| t.get()).min(16) } else { 1 };
    let complete = std::sync::atomic::AtomicBool::new(true);
    // Fills `out`, the output's places from `lo`.
    let gather = |lo: usize, out: &mut [(u32, u32)]| {
        let hi = lo + out.len();
        let mut k = offsets.partition_point(|&o| o <= lo).saturating_sub(1);
        while k < firsts.len() && offsets[k] < hi {
            let (_, start, _) = firsts[k];
            for at in offsets[k].max(lo)..offsets[k + 1].min(hi) {
                match start.checked_add(at - offsets[k]).and_then(&slot) {
                    Some(h) => out[at - lo] = ((h >> 32) as u32, h as u32),
                    None => complete.store(false, std::sync::atomic::Ordering::Relaxed),
                }
            }
            k += 1;
        }
    };
    if threads == 1 {
        gather(0, &mut hits);
    } else {
        std::thread::scope(|scope| {
            let share = n.div_ceil(threads);
            for (t, out) in hits.chunks_mut(share).enumerate() {
                let gather = &gather;
                scope.spawn(move || gather(t * share, out));
            }
        });
    }
    if !complete.into_inner() {
        return Err(FinishError::MissingHits { expected: n, got: present(&firsts) });
    }
    // Runs in order of their first key are in order unless they interleave: a GPU split
    // join's general kernel's rows, a run each inside the fast kernel's one run, make a
    // second ascending stretch, which is merged in.
    Ok(sort_nearly_sorted(hits))
}

/// `keys` sorted, in time close to linear when they are nearly sorted. Hits ordered by their
/// runs are out of order only locally (a row's ids, a thread's early flush inside a GPU
/// tile), yet one inversion used to cost a sort of every hit (about a second for 33M pairs).
/// The slice is cut wherever every key before the cut is at most every key after it, and only
/// the pieces between cuts are sorted: together they are then sorted.
///
/// Keys that are a few long ascending stretches — a GPU point join's split kernels give one
/// run in row order from the fast kernel and, after it, the rows the general kernel ran,
/// which belong inside it — are merged instead, stretch into stretch, copying the spans
/// between where they interleave.
pub(crate) fn sort_nearly_sorted<T: Ord + Copy>(mut keys: Vec<T>) -> Vec<T> {
    match few_stretches(&keys) {
        Some(bounds) if bounds.len() > 2 => merge_stretches(&keys, &bounds),
        Some(_) => keys,
        None => {
            cut_and_sort(&mut keys);
            keys
        }
    }
}

/// The bounds of `keys`' ascending stretches (`0`, each start, the length) when there are
/// fewer than [`MERGED_STRETCHES`].
fn few_stretches<T: Ord>(keys: &[T]) -> Option<Vec<usize>> {
    let n = keys.len();
    let descents: Vec<usize> = (1..n).filter(|&i| keys[i] < keys[i - 1]).take(MERGED_STRETCHES).collect();
    (descents.len() < MERGED_STRETCHES).then(|| {
        let mut bounds = vec![0];
        bounds.extend(descents);
        bounds.push(n);
        bounds
    })
}

/// Sorts `keys` piece by piece: cut wherever every key before the cut is at most every key
/// after it (local disorder sorts locally).
fn cut_and_sort<T: Ord + Copy>(keys: &mut [T]) {
    if keys.is_sorted() {
        return;
    }
    let n = keys.len();
    let mut suffix_min = keys.to_vec();
    for i in (0..n.saturating_sub(1)).rev() {
        suffix_min[i] = suffix_min[i].min(suffix_min[i + 1]);
    }
    let (mut start, mut max) = (0, keys[0]);
    for cut in 1..=n {
        // Sorting a piece keeps its largest key, so `max` stays right over sorted pieces.
        max = max.max(keys[cut - 1]);
        if cut == n || max <= suffix_min[cut] {
            if cut - start > 1 {
                keys[start..cut].sort_unstable();
            }
            start = cut;
        }
    }
}

/// Up to this many ascending stretches, [`sort_nearly_sorted`] merges them.
const MERGED_STRETCHES: usize = 16;

/// `keys`, made of the ascending stretches between `bounds` (`0`, each start, the length),
/// merged in pairs until one is left.
fn merge_stretches<T: Ord + Copy>(keys: &[T], bounds: &[usize]) -> Vec<T> {
    let mut bounds = bounds.to_vec();
    let (mut from, mut merged): (Vec<T>, bool) = (Vec::new(), false);
    let mut to = Vec::with_capacity(keys.len());
    while bounds.len() > 2 {
        let src: &[T] = if merged { &from } else { keys };
        to.clear();
        let mut next = vec![0];
        for pair in bounds.windows(3).step_by(2) {
            merge_two(&src[pair[0]..pair[1]], &src[pair[1]..pair[2]], &mut to);
            next.push(pair[2]);
        }
        // An odd stretch out carries over as it is.
        if bounds.len().is_multiple_of(2) {
            let last = bounds[bounds.len() - 2];
            to.extend_from_slice(&src[last..]);
            next.push(src.len());
        }
        std::mem::swap(&mut from, &mut to);
        merged = true;
        bounds = next;
    }
    if merged {
        from
    } else {
        keys.to_vec()
    }
}

/// Appends the merge of ascending `a` and `b` to `out`, each side's keys in spans found by
/// binary search: two long stretches that interleave in few places cost a few copies.
fn merge_two<T: Ord + Copy>(mut a: &[T], mut b: &[T], out: &mut Vec<T>) {
    while let (Some(&x), Some(&y)) = (a.first(), b.first()) {
        if x <= y {
            let k = a.partition_point(|&v| v <= y);
            out.extend_from_slice(&a[..k]);
            a = &a[k..];
        } else {
            let k = b.partition_point(|&v| v < x);
            out.extend_from_slice(&b[..k]);
            b = &b[k..];
        }
    }
    out.extend_from_slice(a);
    out.extend_from_slice(b);
}

/// Why [`OutputBuffers::finish`] gave no result.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FinishError {
    /// Hits overflowed; run again with more room.
    #[error(transparent)]
    Overflow(#[from] HitOverflow),
    /// The reserved hit runs do not add up to the hits counted (a chunk still running).
    #[error("{got} hits in reserved runs, {expected} counted")]
    MissingHits {
        /// Hits counted by the cursor.
        expected: usize,
        /// Hits in the recorded runs.
        got: usize,
    },
    /// A geometry output outgrew its 32-bit offsets.
    #[error("geometry output: {0}")]
    Column(ColumnError),
    /// An output asked for by index that these buffers do not have.
    #[error("output {output} asked for, of {outputs}")]
    NoOutput {
        /// The index asked for.
        output: usize,
        /// Outputs the buffers have.
        outputs: usize,
    },
    /// Not every row of a geometry output was produced (a chunk never ran).
    #[error("geometry output has {got} of {expected} rows")]
    MissingRows {
        /// Rows of the job.
        expected: usize,
        /// Rows produced.
        got: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::{hits_from_runs, sort_nearly_sorted, FinishError, OutputBuffers};
    use meridian_bytecode::OutputKind;
    use proptest::prelude::*;

    /// The same stores into buffers for every kind of output.
    fn filled(rows: usize) -> OutputBuffers {
        use OutputKind::*;
        let out = OutputBuffers::new(&[F64, Bool, Hits, Count, Sum, Geometry], 10..10 + rows, 64);
        fill(&out, rows);
        out
    }

    fn fill(out: &OutputBuffers, rows: usize) {
        for r in 10..10 + rows {
            out.store_f64(0, r, (r % 3 != 0).then_some(r as f64 * 0.5));
            if r % 4 != 0 {
                out.store_bool(1, r, (r % 2) as u8);
            }
        }
        out.append_hits(2, &[10 << 32 | 7, 11 << 32 | 2]);
        out.add_count(3, 5);
        out.add_sum(4, 2.5);
        let mut g = crate::column::ColumnBuilder::new();
        for r in 0..rows {
            g.push_point(r as f64, 1.0).unwrap_or_else(|e| panic!("{e}"));
        }
        out.add_geometry_chunk(5, 10, g.finish());
    }

    #[test]
    fn reset_buffers_finished_into_reused_columns_equal_fresh_ones() {
        use OutputKind::*;
        let mut out = OutputBuffers::new(&[F64, Bool, Hits, Count, Sum, Geometry], 0..3, 2);
        out.append_hits(2, &[1, 2]);
        out.add_count(3, 9);
        let mut columns = Vec::new();
        for rows in [1, 1, 17, 0, 17, 1000, 2] {
            out.reset(10..10 + rows, 64);
            fill(&out, rows);
            out.finish_into(&mut columns).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(columns, filled(rows).finish().unwrap_or_else(|e| panic!("{e}")), "{rows} rows");
        }
        let before = columns.clone();
        let mut over = OutputBuffers::new(&[Hits], 0..4, 1);
        over.append_hits(0, &[1, 2, 3]);
        let mut one = vec![before[2].clone()];
        assert!(matches!(over.finish_into(&mut one), Err(FinishError::Overflow(_))));
        assert_eq!(one, vec![before[2].clone()], "an overflow leaves the columns as they were");
        over.reset(0..4, 1);
        assert_eq!(over.hits_produced(), 0);
        let err = over.finish_column_into(1, &mut one[0]).unwrap_err();
        assert_eq!(err, FinishError::NoOutput { output: 1, outputs: 1 });
    }

    #[test]
    fn owned_columns_equal_the_shared_finish_for_every_kind() {
        for rows in [0, 1, 2, 17, 1000] {
            let shared = filled(rows).finish().unwrap_or_else(|e| panic!("{e}"));
            let owned = filled(rows).into_columns().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(owned, shared, "{rows} rows");
        }
        let over = OutputBuffers::new(&[OutputKind::Hits], 0..4, 1);
        over.append_hits(0, &[1, 2, 3]);
        assert!(matches!(over.into_columns(), Err(FinishError::Overflow(_))));
    }

    /// Packed keys, the runs they lie in, and the ordered pairs they make.
    type Laid = (Vec<u64>, Vec<(usize, usize)>, Vec<(u32, u32)>);

    /// Runs of ascending keys laid out in shuffled order, as GPU tiles land.
    fn shuffled_runs(rows: u64, tile: u64) -> Laid {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut tiles = Vec::new();
        for t in (0..rows).step_by(tile as usize) {
            let mut run = Vec::new();
            for r in t..(t + tile).min(rows) {
                for id in 0..next() % 3 {
                    run.push(r << 32 | id);
                }
            }
            tiles.push(run);
        }
        for i in (1..tiles.len()).rev() {
            tiles.swap(i, next() as usize % (i + 1));
        }
        let (mut keys, mut runs) = (Vec::new(), Vec::new());
        for t in tiles {
            runs.push((keys.len(), t.len()));
            keys.extend(t);
        }
        let mut want: Vec<(u32, u32)> = keys.iter().map(|&h| ((h >> 32) as u32, h as u32)).collect();
        want.sort_unstable();
        (keys, runs, want)
    }

    #[test]
    fn hits_ordered_from_runs_in_parallel_and_not() {
        // Over a million hits takes the threads; a few thousand the plain loop.
        for rows in [1_500_000, 3_000] {
            let (keys, runs, want) = shuffled_runs(rows, 128);
            let got = hits_from_runs(keys.len(), runs.clone(), |i| keys.get(i).copied()).unwrap();
            assert!(got == want, "{rows} rows");
            // A run past the keys, and a count that does not match: errors, nothing partial.
            let mut bad = runs.clone();
            bad.push((keys.len(), 1));
            let e = hits_from_runs(keys.len() + 1, bad, |i| keys.get(i).copied()).unwrap_err();
            assert_eq!(e, FinishError::MissingHits { expected: keys.len() + 1, got: keys.len() });
            let e = hits_from_runs(keys.len() + 5, runs, |i| keys.get(i).copied()).unwrap_err();
            assert!(matches!(e, FinishError::MissingHits { .. }), "{e:?}");
        }
    }

    #[test]
    fn one_run_with_rows_run_after_it_inside_its_rows_is_ordered_by_merging() {
        // A split join's layout: the fast kernel's one run in row order, leaving every
        // 997th row to the general kernel, which appends a run each after it (also in one
        // big run, over a million keys: the parallel gather splits it).
        for rows in [1_500_000u64, 3_000] {
            let all: Vec<u64> = (0..rows).flat_map(|r| (0..1 + r % 2).map(move |id| r << 32 | id)).collect();
            let late = |k: &u64| (k >> 32) % 997 == 5;
            let mut keys: Vec<u64> = all.iter().copied().filter(|k| !late(k)).collect();
            let mut runs = vec![(0, keys.len())];
            for k in all.iter().copied().filter(late) {
                runs.push((keys.len(), 1));
                keys.push(k);
            }
            let want: Vec<(u32, u32)> = all.iter().map(|&h| ((h >> 32) as u32, h as u32)).collect();
            let got = hits_from_runs(keys.len(), runs.clone(), |i| keys.get(i).copied()).unwrap();
            assert!(got == want, "{rows} rows");
            // The runs' table in another order gives the same.
            let mut shuffled = runs;
            shuffled.reverse();
            let got = hits_from_runs(keys.len(), shuffled, |i| keys.get(i).copied()).unwrap();
            assert!(got == want, "{rows} rows, reversed");
        }
    }

    proptest! {
        // Any runs of any keys, each run ascending (chains and the fallback alike), give the
        // keys in order; empty runs anywhere.
        #[test]
        fn ascending_runs_of_any_keys_are_ordered(runs in proptest::collection::vec(
                                                      proptest::collection::vec(0u64..500, 0..40), 0..40)) {
            let (mut keys, mut table) = (Vec::new(), Vec::new());
            for mut r in runs {
                r.sort_unstable();
                table.push((keys.len(), r.len()));
                keys.extend(r);
            }
            let mut want: Vec<(u32, u32)> = keys.iter().map(|&h| ((h >> 32) as u32, h as u32)).collect();
            want.sort_unstable();
            let got = hits_from_runs(keys.len(), table, |i| keys.get(i).copied()).unwrap();
            prop_assert_eq!(got, want);
        }

        // A few ascending stretches (one long run and the rows that belong inside it) come
        // out sorted, with the same keys.
        #[test]
        fn ascending_stretches_merge(stretches in proptest::collection::vec(
                                         proptest::collection::vec(0u64..1000, 0..200), 1..20)) {
            let mut keys: Vec<u64> = Vec::new();
            for mut s in stretches {
                s.sort_unstable();
                keys.extend(s);
            }
            let mut want = keys.clone();
            want.sort_unstable();
            let keys = sort_nearly_sorted(keys);
            prop_assert_eq!(keys, want);
        }

        // Local disorder (swaps within a window) and arbitrary input both come out sorted,
        // with the same keys.
        #[test]
        fn nearly_sorted_keys_sort(mut keys in proptest::collection::vec(0u64..64, 0..300),
                                   swaps in proptest::collection::vec((0usize..300, 0usize..8), 0..20),
                                   presort in any::<bool>()) {
            if presort {
                keys.sort_unstable();
                let n = keys.len();
                for (i, d) in swaps {
                    if n > 0 {
                        keys.swap(i % n, (i + d).min(n - 1));
                    }
                }
            }
            let mut want = keys.clone();
            want.sort_unstable();
            let keys = sort_nearly_sorted(keys);
            prop_assert_eq!(keys, want);
        }
    }
}
