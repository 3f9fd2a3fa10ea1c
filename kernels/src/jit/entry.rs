//! The `extern "C"` entry points compiled code calls, and the context they share.
//!
//! Compiled code keeps `f` and `b` registers in machine registers and calls back here for
//! everything that touches geometry, cursors or outputs: [`step`] runs one instruction
//! through the interpreter's own [`exec::step`], so both routes run the same code for it.
//! Before such a call the compiled code writes the `f`/`b` registers the instruction reads
//! into the [`Scratch`]; after it, it reads back the ones it writes.
//!
//! No panic may unwind out of an `extern "C"` function (it would abort the process), so each
//! entry point catches one, records it as the run's error and reports failure; the compiled
//! code then returns at once.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::interp::exec::{self, Slot};
use crate::interp::{ExecError, Interpreter, OutputBuffers, Scratch};

/// What [`step`] returns when the instruction failed (the error is in [`Ctx::error`]).
pub(crate) const FAILED: u64 = u64::MAX;

/// What one call of compiled code works on. Compiled code only passes its address back.
pub(crate) struct Ctx<'a> {
    pub it: &'a Interpreter,
    pub ins: &'a [Slot<'a>],
    pub out: &'a OutputBuffers,
    /// Also written by compiled code (the spilled registers), so held as a raw pointer: a
    /// `&mut` is made only for the length of one entry point's call.
    pub scratch: *mut Scratch,
    /// The first failure of the run.
    pub error: Option<ExecError>,
}

/// Runs `f` on the context, turning a panic into the run's error.
///
/// # Safety
///
/// `ctx` must be the pointer `JitProgram::run` passed to the compiled function, still live
/// and not otherwise borrowed: compiled code passes it through unchanged and calls entry
/// points one at a time.
unsafe fn guarded<R>(
    ctx: *mut Ctx<'_>,
    failed: R,
    f: impl FnOnce(&mut Ctx<'_>, &mut Scratch) -> Result<R, ExecError>,
) -> R {
    // SAFETY: per this function's contract `ctx` is live and exclusively ours for the call.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: `scratch` is the `&mut Scratch` the run was given, turned into a pointer; no
    // other reference to it exists while an entry point runs (compiled code is suspended
    // in the call).
    let scratch = unsafe { &mut *ctx.scratch };
    match catch_unwind(AssertUnwindSafe(|| f(ctx, scratch))) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            ctx.error.get_or_insert(e);
            failed
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            ctx.error.get_or_insert(ExecError {
                row: None,
                pc: None,
                message: format!("internal error: {message}"),
            });
            failed
        }
    }
}

/// Runs the instruction at `pc` for `row`: returns the next pc, or [`FAILED`].
///
/// # Safety
///
/// As [`guarded`].
pub(crate) unsafe extern "C" fn step(ctx: *mut Ctx<'_>, pc: u64, row: u64) -> u64 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        guarded(ctx, FAILED, |c, s| {
            let pc = pc as usize;
            let instr = *c.it.code.get(pc).ok_or_else(|| ExecError {
                row: Some(row as usize),
                pc: Some(pc as u32),
                message: "ran past the end of the code".into(),
            })?;
            Ok(exec::step(c.it, c.ins, row as usize, c.out, s, pc, instr)? as u64)
        })
    }
}

/// Resets the registers that live in the scratch (`g`, cursors) for a new row.
///
/// # Safety
///
/// As [`guarded`].
pub(crate) unsafe extern "C" fn row_begin(ctx: *mut Ctx<'_>) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        guarded(ctx, (), |c, s| {
            exec::reset_row(c.it, s);
            Ok(())
        })
    }
}

/// Finishes `row` after the `halt` at `halt`: 0, or 1 on failure.
///
/// # Safety
///
/// As [`guarded`].
pub(crate) unsafe extern "C" fn row_end(ctx: *mut Ctx<'_>, row: u64, halt: u64) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        guarded(ctx, 1, |c, s| {
            exec::end_row(c.it, c.ins, row as usize, halt as usize, s)?;
            Ok(0)
        })
    }
}

/// `load`: `g[dst]` = row `row` of input `input`, or null.
///
/// # Safety
///
/// As [`guarded`].
pub(crate) unsafe extern "C" fn load(ctx: *mut Ctx<'_>, dst: u64, input: u64, row: u64) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        guarded(ctx, (), |c, s| {
            s.g[(dst & 15) as usize] = exec::load(c.ins, input as usize, row as usize);
            Ok(())
        })
    }
}

/// The coordinate of `g[g]` into `*xy` (`x`, `y`): returns 1 when it is null.
///
/// # Safety
///
/// As [`guarded`]; `xy` points at 16 writable bytes.
pub(crate) unsafe extern "C" fn coord(ctx: *mut Ctx<'_>, g: u64, xy: *mut [f64; 2]) -> u64 {
    // SAFETY: forwarded from this function's contract.
    let found = unsafe { guarded(ctx, None, |c, s| Ok(exec::xy(c.ins, s, s.g[(g & 15) as usize]))) };
    match found {
        Some((x, y)) => {
            // SAFETY: the caller passes the address of a 16-byte stack slot.
            unsafe { xy.write([x, y]) };
            0
        }
        None => 1,
    }
}

/// `store output, src` of an f64 register (`null` 1: null).
///
/// # Safety
///
/// As [`guarded`].
pub(crate) unsafe extern "C" fn store_f(ctx: *mut Ctx<'_>, output: u64, row: u64, value: f64, null: u64) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        guarded(ctx, (), |c, _| {
            c.out.store_f64(output as usize, row as usize, (null == 0).then_some(value));
            Ok(())
        })
    }
}

/// `store output, src` of a b register in its byte encoding.
///
/// # Safety
///
/// As [`guarded`].
pub(crate) unsafe extern "C" fn store_b(ctx: *mut Ctx<'_>, output: u64, row: u64, code: u64) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        guarded(ctx, (), |c, _| {
            c.out.store_bool(output as usize, row as usize, code as u8);
            Ok(())
        })
    }
}

/// `count output`.
///
/// # Safety
///
/// As [`guarded`].
pub(crate) unsafe extern "C" fn count(ctx: *mut Ctx<'_>, output: u64) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        guarded(ctx, (), |_, s| {
            exec::count(s, output as usize);
            Ok(())
        })
    }
}

/// `sum output, src` (`null` 1: null, skipped).
///
/// # Safety
///
/// As [`guarded`].
pub(crate) unsafe extern "C" fn sum(ctx: *mut Ctx<'_>, output: u64, value: f64, null: u64) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        guarded(ctx, (), |_, s| {
            exec::sum(s, output as usize, (null == 0).then_some(value));
            Ok(())
        })
    }
}
