//! The per-job kernel (`mr_run_rows`, the baseline `meridian bench roundtrip` launches once
//! per job on a GPU), run on the host so tests can hold it to the interpreter's results.

use std::convert::Infallible;

use meridian_bytecode::{OutputKind, VerifiedProgram};
use meridian_kernels::cuda::{DeviceColumn, DeviceIndex, DeviceInput, DeviceProgram};
use meridian_kernels::interp::{BoolColumn, BoundInputs, F64Column, OutputColumn};

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

/// Runs `program` over `rows` of `inputs` with the per-job kernel, one row per emulated
/// block; returns the f64, bool, count and sum outputs (`None` for other kinds).
pub fn run_rows(
    program: &VerifiedProgram,
    inputs: &BoundInputs,
    rows: std::ops::Range<usize>,
) -> Vec<Option<OutputColumn>> {
    // SAFETY: the interpreter's entry has the kernel's parameters and contract.
    unsafe { run_rows_with(ffi::mr_host_run_rows, program, inputs, rows) }
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
    let mut outputs: Vec<Output> = kinds
        .iter()
        .enumerate()
        .map(|(o, k)| Output {
            kind: *k as u32,
            values: values[o].as_mut_ptr() as u64,
            valid: bytes[o].as_mut_ptr() as u64,
            bools: bytes[o].as_mut_ptr() as u64,
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
    unsafe {
        entry(
            std::ptr::addr_of!(prog).cast(),
            table.as_ptr().cast(),
            outputs.as_mut_ptr().cast(),
            rows.start as u64,
            rows.start as u64,
            rows.end as u64,
            acc.as_mut_ptr().cast(),
            error.as_mut_ptr().cast(),
        )
    };
    kinds
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
        .collect()
}
