//! The per-job kernel (`mr_run_rows`, the baseline `meridian bench roundtrip` launches once
//! per job on a GPU), run on the host so tests can hold it to the interpreter's results.

use std::convert::Infallible;

use meridian_bytecode::{OutputKind, VerifiedProgram};
use meridian_kernels::cuda::{DeviceColumn, DeviceIndex, DeviceInput, DeviceProgram};
use meridian_kernels::interp::{hits_from_runs, BoolColumn, BoundInputs, F64Column, OutputColumn};

use crate::ffi;

/// `MrOutput`, for the dense outputs this harness supports.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Output {
    kind: u32,
    pad: u32,
    values: u64,
    valid: u64,
    bools: u64,
    hits: u64,
    hit_capacity: u64,
    runs: u64,
    run_capacity: u64,
}

fn in_place(bytes: &[u8]) -> Result<u64, Infallible> {
    Ok(bytes.as_ptr() as u64)
}

/// A per-job kernel's host entry: `mr_host_run_rows` (the interpreter), or a generated
/// program's `mr_jit_host_rows_<id>` (the GPU JIT's code built as host C++).
pub type RowsEntry = unsafe extern "C" fn(
    prog: *const u8,
    inputs: *const u8,
    outputs: *const u8,
    rows_begin: u64,
    begin: u64,
    end: u64,
    acc: *mut u8,
    error: *mut u8,
);

/// A point join's split kernels' host entry (`mr_jit_host_split_<id>`): the per-job kernel's
/// parameters, the scratch area (zeroed, `join_scratch_bytes` for the rows and the block) and
/// the threads a block of the fast kernel's launch.
pub type SplitEntry = unsafe extern "C" fn(
    prog: *const u8,
    inputs: *const u8,
    outputs: *const u8,
    rows_begin: u64,
    begin: u64,
    end: u64,
    acc: *mut u8,
    error: *mut u8,
    scratch: *mut u64,
    block_threads: u64,
);

/// Runs `program` over `rows` of `inputs` with the per-job kernel, one row per emulated
/// block; returns the f64, bool, count and sum outputs (`None` for other kinds).
pub fn run_rows(
    program: &VerifiedProgram,
    inputs: &BoundInputs,
    rows: std::ops::Range<usize>,
) -> Vec<Option<OutputColumn>> {
    // SAFETY: the interpreter's entry has the kernel's parameters and contract.
    unsafe { run_rows_with(interpreter_entry(), program, inputs, rows) }
}

/// The interpreter's per-job kernel's host entry (`mr_host_run_rows`), for [`run_rows_with`]
/// and [`run_rows_with_hits`].
pub fn interpreter_entry() -> RowsEntry {
    ffi::mr_host_run_rows
}

/// [`run_rows`] with `entry` as the kernel.
///
/// # Safety
/// `entry` must be a per-job kernel's host entry for `program`'s layout: it reads the records
/// and writes only the outputs' rows, the accumulators and the error record.
pub unsafe fn run_rows_with(
    entry: RowsEntry,
    program: &VerifiedProgram,
    inputs: &BoundInputs,
    rows: std::ops::Range<usize>,
) -> Vec<Option<OutputColumn>> {
    // SAFETY: the caller's contract, passed on.
    unsafe { run_entry(entry, program, inputs, rows) }.0
}

/// [`run`] with a per-job kernel's entry as the call.
///
/// # Safety
/// As [`run_rows_with`].
#[allow(clippy::type_complexity)]
unsafe fn run_entry(
    entry: RowsEntry,
    program: &VerifiedProgram,
    inputs: &BoundInputs,
    rows: std::ops::Range<usize>,
) -> (Vec<Option<OutputColumn>>, Result<Vec<Option<OutputColumn>>, String>, Vec<u64>) {
    let call = |p, i, o, rb, b, e, acc, err| {
        // SAFETY: the caller's contract, passed on: the entry gets the records `run` made.
        unsafe { entry(p, i, o, rb, b, e, acc, err) }
    };
    // SAFETY: `call` runs the caller's per-job kernel entry.
    unsafe { run(program, inputs, rows, call) }
}

/// What a point join's split kernels made of a job ([`run_split_rows`]).
#[derive(Debug)]
pub struct SplitRun {
    /// Every output, hits ordered as the runtime orders them.
    pub columns: Vec<Option<OutputColumn>>,
    /// Rows the fast kernel left to the general one.
    pub deferred: u64,
    /// Runs of hits recorded, by output.
    pub runs: Vec<u64>,
}

/// [`run_rows`] with a point join's split kernels (`entry`, `jit::split_join`) in blocks of
/// `block_threads`, handing them a zeroed scratch area. Hits outputs come back too, where
/// [`run_rows`] gives `None`.
///
/// # Safety
/// `entry` must be the split kernels' host entry for `program`'s layout: it reads the records
/// and writes only the outputs, the accumulators, the error record and the scratch.
pub unsafe fn run_split_rows(
    entry: SplitEntry,
    program: &VerifiedProgram,
    inputs: &BoundInputs,
    rows: std::ops::Range<usize>,
    block_threads: u32,
) -> Result<SplitRun, String> {
    let n = rows.len() as u64;
    let mut scratch = vec![0u64; meridian_runtime::cuda::join_scratch_bytes(n, block_threads) / 8];
    let ptr = scratch.as_mut_ptr();
    let call = |p, i, o, rb, b, e, acc, err| {
        // SAFETY: the caller's contract, passed on; `scratch` is zeroed, laid out for these
        // rows and this block, and outlives the call.
        unsafe { entry(p, i, o, rb, b, e, acc, err, ptr, u64::from(block_threads)) }
    };
    // SAFETY: `call` runs the caller's split kernels' entry.
    let ran = unsafe { run(program, inputs, rows, call) };
    let bits = &scratch[..n.div_ceil(64) as usize];
    Ok(SplitRun {
        columns: ran.1?,
        deferred: bits.iter().map(|w| u64::from(w.count_ones())).sum(),
        runs: ran.2,
    })
}

/// [`run_rows_with`] of the per-job kernel's entry (`mr_host_run_rows` or a generated
/// `mr_jit_host_rows_<id>`), with hits outputs returned (ordered) where it gives `None`.
///
/// # Safety
/// As [`run_rows_with`].
pub unsafe fn run_rows_with_hits(
    entry: RowsEntry,
    program: &VerifiedProgram,
    inputs: &BoundInputs,
    rows: std::ops::Range<usize>,
) -> Result<Vec<Option<OutputColumn>>, String> {
    // SAFETY: the caller's contract, passed on.
    unsafe { run_entry(entry, program, inputs, rows) }.1
}

/// Hits this harness has room for, a row.
const HITS_A_ROW: usize = 64;

/// Places `program`'s records for `rows` of `inputs`, calls `call` with the per-job kernel's
/// parameters, and reads the outputs back: without hits outputs (`None` for them), with, and
/// the runs of hits recorded by output.
///
/// # Safety
/// `call` must run a per-job kernel of `program`'s layout: reading the records, writing only
/// the outputs' rows, the accumulators and the error record.
#[allow(clippy::type_complexity)]
unsafe fn run(
    program: &VerifiedProgram,
    inputs: &BoundInputs,
    rows: std::ops::Range<usize>,
    call: impl FnOnce(*const u8, *const u8, *const u8, u64, u64, u64, *mut u8, *mut u8),
) -> (Vec<Option<OutputColumn>>, Result<Vec<Option<OutputColumn>>, String>, Vec<u64>) {
    let code = program.program().code().to_vec();
    let consts = program.program().consts().to_vec();
    let Ok(mut prog) = DeviceProgram::place(program, &mut in_place);
    prog.code = code.as_ptr() as u64;
    prog.consts = consts.as_ptr() as u64;
    let decls = program.program().inputs();
    let table: Vec<DeviceInput> = decls
        .iter()
        .zip(inputs.inputs())
        .map(|(d, i)| {
            let Ok(col) = DeviceColumn::place(&i.column, &mut in_place);
            let mut di = DeviceInput { col, ..DeviceInput::default() };
            if let (true, Some(ix)) = (d.indexed, &i.index) {
                let Ok(idx) = DeviceIndex::place(ix, &mut in_place);
                di.idx = idx;
                di.indexed = 1;
            }
            di
        })
        .collect();
    let n = rows.len();
    let kinds: Vec<OutputKind> = program.program().outputs().iter().map(|o| o.kind).collect();
    let mut values: Vec<Vec<f64>> = kinds.iter().map(|_| vec![0.0; n]).collect();
    let mut bytes: Vec<Vec<u8>> = kinds.iter().map(|_| vec![0u8; n]).collect();
    let hit_capacity = HITS_A_ROW * n;
    let mut hits: Vec<Vec<u64>> =
        kinds.iter().map(|k| vec![0u64; if *k == OutputKind::Hits { hit_capacity } else { 0 }]).collect();
    let mut runs: Vec<Vec<u64>> =
        kinds.iter().map(|k| vec![0u64; if *k == OutputKind::Hits { 2 * hit_capacity } else { 0 }]).collect();
    let mut outputs: Vec<Output> = kinds
        .iter()
        .enumerate()
        .map(|(o, k)| Output {
            kind: *k as u32,
            values: values[o].as_mut_ptr() as u64,
            valid: bytes[o].as_mut_ptr() as u64,
            bools: bytes[o].as_mut_ptr() as u64,
            hits: hits[o].as_mut_ptr() as u64,
            hit_capacity: hits[o].len() as u64,
            runs: runs[o].as_mut_ptr() as u64,
            run_capacity: (runs[o].len() / 2) as u64,
            ..Output::default()
        })
        .collect();
    // MrAcc per output: cursor, runs, sum (starting at -0.0), any.
    let mut acc = vec![0u64; 4 * kinds.len()];
    for o in 0..kinds.len() {
        acc[4 * o + 2] = (-0.0f64).to_bits();
    }
    let mut error = [0u64; 2];
    // SAFETY: every pointer in the records points at a live vector or column of this function
    // (or of `inputs`, borrowed), sized for `rows`; the kernel writes only the outputs' rows,
    // the accumulators and the error record.
    call(
        std::ptr::addr_of!(prog).cast(),
        table.as_ptr().cast(),
        outputs.as_mut_ptr().cast(),
        rows.start as u64,
        rows.start as u64,
        rows.end as u64,
        acc.as_mut_ptr().cast(),
        error.as_mut_ptr().cast(),
    );
    let with_hits = kinds
        .iter()
        .enumerate()
        .map(|(o, k)| match k {
            OutputKind::Hits => {
                let (count, nruns) = (acc[4 * o] as usize, acc[4 * o + 1] as usize);
                let (Some(keys), Some(runs)) = (hits[o].get(..count), runs[o].get(..2 * nruns)) else {
                    return Err(format!(
                        "{count} hits in {nruns} runs: past the harness's room ({hit_capacity})"
                    ));
                };
                let runs = runs.chunks_exact(2).map(|r| (r[0] as usize, r[1] as usize)).collect();
                let ordered = hits_from_runs(count, runs, |i| keys.get(i).copied());
                Ok(Some(OutputColumn::Hits(ordered.map_err(|e| format!("the kernel's runs: {e}"))?)))
            }
            _ => Ok(None),
        })
        .collect::<Result<Vec<_>, String>>();
    let dense = kinds
        .iter()
        .enumerate()
        .map(|(o, k)| match k {
            OutputKind::F64 => F64Column::from_parts(
                std::mem::take(&mut values[o]),
                bytes[o].iter().map(|&v| v == 1).collect(),
            )
            .map(OutputColumn::F64),
            OutputKind::Bool => Some(OutputColumn::Bool(BoolColumn::from_codes(&bytes[o]))),
            OutputKind::Count => Some(OutputColumn::Count(acc[4 * o])),
            OutputKind::Sum => Some(OutputColumn::Sum(if acc[4 * o + 3] & 0xffff_ffff != 0 {
                f64::from_bits(acc[4 * o + 2])
            } else {
                0.0
            })),
            _ => None,
        })
        .collect::<Vec<_>>();
    let with_hits = with_hits.map(|h| dense.iter().zip(h).map(|(d, h)| h.or_else(|| d.clone())).collect());
    let runs = (0..kinds.len()).map(|o| acc[4 * o + 1]).collect();
    (dense, with_hits, runs)
}
