//! Where a job's outputs live on the device, and how they come back as columns.
//!
//! A job's output area holds its `MrOutput` table, then each output's buffers: values and
//! validity of f64 outputs, bytes of bool outputs, hits and their runs, a geometry output's
//! arena of words and a record per row (where its geometry is in the arena). Small areas are
//! arenas of pinned, mapped host memory — the device writes results straight into host
//! memory and the host reads them with no copy call — and larger ones device memory, copied
//! back once the job has completed. A one-row job of f64 and bool outputs has no area at all
//! under the poller's protocol: its row rides back in the completion (`Layout::inline`).

use std::sync::Arc;

use parking_lot::Mutex;

use meridian_bytecode::OutputKind;
use meridian_kernels::column::{ColumnBuilder, Family, GeometryColumn, Parts};
use meridian_kernels::interp::{BoolColumn, F64Column, OutputColumn};

use super::abi::{self, Acc, Output};
use super::device::{DeviceAlloc, DeviceError, MappedAlloc, Shared};
use crate::job::{Column, PendingHits};

/// Bytes of one arena.
pub(crate) const ARENA_BYTES: usize = 64 << 10;

/// Where one output's buffers are in the area (byte offsets). A geometry output's arena is in
/// `hits` (`hit_capacity` words) and its row records in `runs` (`run_capacity` rows), as the
/// device's `MrOutput` holds them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Place {
    pub values: usize,
    pub valid: usize,
    pub bools: usize,
    pub hits: usize,
    pub hit_capacity: usize,
    pub runs: usize,
    pub run_capacity: usize,
}

/// The layout of a job's output area.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub kinds: Vec<OutputKind>,
    pub places: Vec<Place>,
    pub rows: usize,
    pub bytes: usize,
}

impl Layout {
    /// The table first, then each output's buffers, 16-byte aligned; each geometry output has
    /// an arena of `geom_words` words. Fails when the sizes do not fit in memory's address
    /// space (an absurd capacity).
    pub fn new(
        kinds: &[OutputKind],
        rows: usize,
        hit_capacity: usize,
        run_capacity: usize,
        geom_words: usize,
    ) -> Result<Layout, DeviceError> {
        let too_big = || {
            DeviceError(format!(
                "outputs for {rows} rows with room for {hit_capacity} hits and {geom_words} words of geometry do not \
                 fit in memory"
            ))
        };
        let mut at = std::mem::size_of::<Output>() * kinds.len();
        let mut take = |n: usize, size: usize| -> Result<usize, DeviceError> {
            let bytes = n.checked_mul(size).ok_or_else(too_big)?;
            let here = at.checked_next_multiple_of(16).ok_or_else(too_big)?;
            at = here.checked_add(bytes).ok_or_else(too_big)?;
            Ok(here)
        };
        let mut places = Vec::with_capacity(kinds.len());
        for k in kinds {
            places.push(match k {
                OutputKind::F64 => {
                    Place { values: take(rows, 8)?, valid: take(rows, 1)?, ..Place::default() }
                }
                OutputKind::Bool => Place { bools: take(rows, 1)?, ..Place::default() },
                OutputKind::Hits => Place {
                    hits: take(hit_capacity, 8)?,
                    hit_capacity,
                    runs: take(run_capacity, 16)?,
                    run_capacity,
                    ..Place::default()
                },
                OutputKind::Geometry => Place {
                    hits: take(geom_words, 8)?,
                    hit_capacity: geom_words,
                    runs: take(rows, 8 * abi::GEOM_ROW_WORDS)?,
                    run_capacity: rows,
                    ..Place::default()
                },
                OutputKind::Count | OutputKind::Sum => Place::default(),
            });
        }
        let bytes = at.checked_next_multiple_of(16).ok_or_else(too_big)?.max(16);
        Ok(Layout { kinds: kinds.to_vec(), places, rows, bytes })
    }

    /// The layout of a one-row job's outputs carried in its completion (`abi::INLINE_ROW_BYTES`:
    /// the k-th f64 output's value in word k, output o's validity or bool code in byte
    /// `abi::INLINE_FLAGS_OFFSET` + o, as the megakernel's `mr_inline_outputs` places them);
    /// `None` unless every output is f64 or bool and they fit.
    pub fn inline(kinds: &[OutputKind]) -> Option<Layout> {
        let dense = kinds.iter().all(|k| matches!(k, OutputKind::F64 | OutputKind::Bool));
        let f64s = kinds.iter().filter(|k| **k == OutputKind::F64).count();
        if kinds.is_empty() || !dense || kinds.len() > abi::INLINE_OUTPUTS || f64s > abi::INLINE_F64 {
            return None;
        }
        let mut word = 0;
        let places = kinds
            .iter()
            .enumerate()
            .map(|(o, k)| {
                let flag = abi::INLINE_FLAGS_OFFSET + o;
                if *k == OutputKind::F64 {
                    word += 1;
                    Place { values: 8 * (word - 1), valid: flag, ..Place::default() }
                } else {
                    Place { bools: flag, ..Place::default() }
                }
            })
            .collect();
        Some(Layout { kinds: kinds.to_vec(), places, rows: 1, bytes: abi::INLINE_ROW_BYTES })
    }

    /// The `MrOutput` table for the area at device address `base`.
    pub fn table(&self, base: u64) -> Vec<Output> {
        let addr = |off: usize| base + off as u64;
        self.kinds
            .iter()
            .zip(&self.places)
            .map(|(k, p)| {
                let mut o = Output { kind: *k as u32, ..Output::default() };
                match k {
                    OutputKind::F64 => {
                        o.values = addr(p.values);
                        o.valid = addr(p.valid);
                    }
                    OutputKind::Bool => o.bools = addr(p.bools),
                    OutputKind::Hits | OutputKind::Geometry => {
                        o.hits = addr(p.hits);
                        o.hit_capacity = p.hit_capacity as u64;
                        o.runs = addr(p.runs);
                        o.run_capacity = p.run_capacity as u64;
                    }
                    _ => {}
                }
                o
            })
            .collect()
    }
}

/// The pool of mapped arenas.
#[derive(Debug)]
pub(crate) struct Arenas {
    memory: MappedAlloc,
    free: Mutex<Vec<usize>>,
}

impl Arenas {
    pub fn new(dev: &Arc<Shared>, count: usize) -> Result<Arenas, DeviceError> {
        let memory = MappedAlloc::new(dev, ARENA_BYTES * count.max(1))?;
        Ok(Arenas { memory, free: Mutex::new((0..count).rev().collect()) })
    }

    fn take(&self) -> Option<usize> {
        self.free.lock().pop()
    }

    fn give(&self, i: usize) {
        self.free.lock().push(i);
    }
}

/// A job's output area.
#[derive(Debug)]
pub(crate) enum Area {
    /// Arena `index` of the pool.
    Arena { arenas: Arc<Arenas>, index: usize },
    /// Device memory.
    Device(DeviceAlloc),
    /// None: the job's one row comes back in its completion (`Layout::inline`), copied here
    /// when the job completes.
    Completion([u8; abi::INLINE_ROW_BYTES]),
}

impl Area {
    /// An area for `layout`: an arena when it fits and one is free, else device memory. The
    /// output table is written into it.
    pub fn new(dev: &Arc<Shared>, arenas: &Arc<Arenas>, layout: &Layout) -> Result<Area, DeviceError> {
        let area = match (layout.bytes <= ARENA_BYTES).then(|| arenas.take()).flatten() {
            Some(index) => Area::Arena { arenas: arenas.clone(), index },
            None => Area::Device(DeviceAlloc::new(dev, layout.bytes)?),
        };
        let table = layout.table(area.device_ptr());
        area.write(0, bytemuck::cast_slice(&table))?;
        Ok(area)
    }

    /// The area's device address; 0 for `Completion` (which tells the device so).
    pub fn device_ptr(&self) -> u64 {
        match self {
            Area::Arena { arenas, index } => arenas.memory.device_ptr() + (index * ARENA_BYTES) as u64,
            Area::Device(a) => a.ptr(),
            Area::Completion(_) => 0,
        }
    }

    /// A `Completion` area's row, from the completion's bytes; false for another area.
    pub fn complete_row(&mut self, row: &[u8; abi::INLINE_ROW_BYTES]) -> bool {
        match self {
            Area::Completion(bytes) => {
                *bytes = *row;
                true
            }
            _ => false,
        }
    }

    fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), DeviceError> {
        match self {
            Area::Arena { arenas, index } => arenas.memory.copy_in(index * ARENA_BYTES + offset, bytes),
            Area::Device(a) => a.write(offset, bytes),
            Area::Completion(_) => Err(DeviceError("writing into a completion's row".into())),
        }
    }

    fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), DeviceError> {
        if out.is_empty() {
            return Ok(());
        }
        match self {
            Area::Arena { arenas, index } => arenas.memory.copy_out(index * ARENA_BYTES + offset, out),
            Area::Device(a) => a.read(offset, out),
            Area::Completion(bytes) => {
                let row = offset.checked_add(out.len()).and_then(|end| bytes.get(offset..end));
                out.copy_from_slice(
                    row.ok_or_else(|| DeviceError("reading past a completion's row".into()))?,
                );
                Ok(())
            }
        }
    }

    fn read_vec<T: bytemuck::Pod>(&self, offset: usize, n: usize) -> Result<Vec<T>, DeviceError> {
        let mut v = vec![T::zeroed(); n];
        self.read(offset, bytemuck::cast_slice_mut(&mut v))?;
        Ok(v)
    }

    /// Whether the job's outputs of `kind` (hits, or geometry) fitted; if not, the most any
    /// of them needed (hits, or words). (Runs cannot overflow when hits do not: the executor
    /// sizes them for the most a job can record.)
    pub fn overflow(layout: &Layout, acc: &[Acc], kind: OutputKind) -> Option<u64> {
        layout
            .kinds
            .iter()
            .zip(&layout.places)
            .zip(acc)
            .filter(|((k, p), a)| **k == kind && a.cursor > p.hit_capacity as u64)
            .map(|(_, a)| a.cursor)
            .max()
    }

    /// A geometry output's column: each row's record, its geometry read from the arena.
    fn geometry(&self, p: &Place, rows: usize, words: u64) -> Result<GeometryColumn, String> {
        let dev = |e: DeviceError| format!("reading results from the device: {e}");
        let records: Vec<u64> = self.read_vec(p.runs, abi::GEOM_ROW_WORDS * rows).map_err(dev)?;
        let arena: Vec<u64> = self.read_vec(p.hits, (words as usize).min(p.hit_capacity)).map_err(dev)?;
        let mut b = ColumnBuilder::new();
        for (row, r) in records.chunks_exact(abi::GEOM_ROW_WORDS).enumerate() {
            let bad = |what: &str| format!("geometry output row {row}: {what}");
            if r[1] == 0 {
                b.push_null();
                continue;
            }
            let family =
                u8::try_from(r[1]).ok().and_then(Family::from_id).ok_or_else(|| bad("no such family"))?;
            let (np, nr, nc) = ((r[2] >> 32) as usize, (r[2] & 0xffff_ffff) as usize, r[3] as usize);
            let offsets = (np + nr + 3) / 2;
            let start = usize::try_from(r[0]).map_err(|_| bad("past the arena"))?;
            let blob = start
                .checked_add(offsets + 2 * nc)
                .and_then(|end| arena.get(start..end))
                .ok_or_else(|| bad("past the arena"))?;
            let off: Vec<u32> = blob[..offsets].iter().flat_map(|w| [*w as u32, (*w >> 32) as u32]).collect();
            let (xs, ys) = blob[offsets..].split_at(nc);
            let coord = |k: u32| -> Option<(f64, f64)> {
                Some((f64::from_bits(*xs.get(k as usize)?), f64::from_bits(*ys.get(k as usize)?)))
            };
            let (po, ro) = off.split_at(np + 1);
            let ring =
                |r: usize| -> Option<Vec<(f64, f64)>> { (*ro.get(r)?..*ro.get(r + 1)?).map(coord).collect() };
            let parts: Option<Parts> =
                (0..np).map(|p| (po[p] as usize..po[p + 1] as usize).map(ring).collect()).collect();
            let parts = parts.ok_or_else(|| bad("offsets past its coordinates"))?;
            b.push_parts(family, &parts).map_err(|e| bad(&e.to_string()))?;
        }
        Ok(b.finish())
    }

    /// The job's outputs, from the area and the accumulators the device reported: everything
    /// is copied back now (so a device error shows here); hits are put in order on first
    /// read.
    pub fn columns(&self, layout: &Layout, acc: &[Acc]) -> Result<Vec<Column>, String> {
        let dev = |e: DeviceError| format!("reading results from the device: {e}");
        let rows = layout.rows;
        let mut out = Vec::with_capacity(layout.kinds.len());
        for ((kind, p), a) in layout.kinds.iter().zip(&layout.places).zip(acc) {
            out.push(match kind {
                OutputKind::F64 => {
                    let values: Vec<f64> = self.read_vec(p.values, rows).map_err(dev)?;
                    let valid: Vec<u8> = self.read_vec(p.valid, rows).map_err(dev)?;
                    let valid = valid.into_iter().map(|v| v == 1).collect();
                    Column::Ready(OutputColumn::F64(
                        F64Column::from_parts(values, valid).ok_or("mismatched f64 output")?,
                    ))
                }
                OutputKind::Bool => {
                    let codes: Vec<u8> = self.read_vec(p.bools, rows).map_err(dev)?;
                    Column::Ready(OutputColumn::Bool(BoolColumn::from_codes(&codes)))
                }
                OutputKind::Hits => {
                    let n = a.cursor as usize;
                    if a.runs as usize > p.run_capacity {
                        return Err(format!(
                            "the device recorded {} runs of hits with room for {}",
                            a.runs, p.run_capacity
                        ));
                    }
                    let nruns = a.runs as usize;
                    let keys: Vec<u64> = self.read_vec(p.hits, n.min(p.hit_capacity)).map_err(dev)?;
                    let flat: Vec<u64> = self.read_vec(p.runs, 2 * nruns).map_err(dev)?;
                    let runs = flat.chunks_exact(2).map(|r| (r[0] as usize, r[1] as usize)).collect();
                    if keys.len() != n {
                        return Err(format!("{n} hits counted, {} stored", keys.len()));
                    }
                    Column::Hits(Arc::new(PendingHits::new(keys, runs)?))
                }
                OutputKind::Count => Column::Ready(OutputColumn::Count(a.cursor)),
                OutputKind::Sum => Column::Ready(OutputColumn::Sum(if a.any != 0 { a.sum } else { 0.0 })),
                OutputKind::Geometry => {
                    Column::Ready(OutputColumn::Geometry(Box::new(self.geometry(p, rows, a.cursor)?)))
                }
            });
        }
        Ok(out)
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        if let Area::Arena { arenas, index } = self {
            arenas.give(*index);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

    use super::*;

    #[test]
    fn an_inline_row_holds_three_f64_and_eight_outputs_of_f64_and_bool_only() {
        use OutputKind::{Bool, Count, Hits, F64};
        assert!(Layout::inline(&[F64, F64, F64, Bool, Bool, Bool, Bool, Bool]).is_some());
        assert!(Layout::inline(&[F64, F64, F64, F64]).is_none(), "a fourth f64 value has no word");
        assert!(Layout::inline(&[Bool; 9]).is_none(), "a ninth flag has no byte");
        assert!(Layout::inline(&[F64, Hits]).is_none() && Layout::inline(&[Count]).is_none());
        assert!(Layout::inline(&[]).is_none());
    }

    #[test]
    fn an_inline_rows_columns_are_read_where_the_device_puts_them() {
        use OutputKind::{Bool, F64};
        // The megakernel's mr_inline_outputs: the k-th f64 output's value in word k, output
        // o's flag in byte INLINE_FLAGS_OFFSET + o.
        let layout = Layout::inline(&[Bool, F64, F64, Bool]).unwrap();
        let mut row = [0u8; abi::INLINE_ROW_BYTES];
        row[..8].copy_from_slice(&(-2.5f64).to_le_bytes());
        row[8..16].copy_from_slice(&7.0f64.to_le_bytes());
        row[abi::INLINE_FLAGS_OFFSET..abi::INLINE_FLAGS_OFFSET + 4].copy_from_slice(&[1, 1, 0, 2]);
        let mut area = Area::Completion([0; abi::INLINE_ROW_BYTES]);
        assert_eq!(area.device_ptr(), 0, "the device is told by a null output table");
        assert!(area.complete_row(&row));
        let columns = area.columns(&layout, &[Acc::default(); 4]).unwrap();
        let got: Vec<String> = columns
            .iter()
            .map(|c| match c {
                Column::Ready(OutputColumn::F64(v)) => format!("{:?}", v.get(0)),
                Column::Ready(OutputColumn::Bool(v)) => format!("{:?}", v.get(0)),
                _ => panic!("not a dense column"),
            })
            .collect();
        assert_eq!(got, ["Some(true)", "Some(-2.5)", "None", "None"]);
    }
}
