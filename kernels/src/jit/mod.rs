//! The JIT route on the CPU: a verified program compiled to one native function over a row
//! range with [Cranelift](https://cranelift.dev).
//!
//! Registers of the `f` and `b` files become SSA values (with their null flags) and the
//! arithmetic, comparisons, three-valued logic, `select`, constants and jumps between them
//! compile to machine code, so the per-instruction dispatch of the interpreter is gone. Every
//! instruction that touches geometry, cursors or outputs is a call of the interpreter's own
//! step for that one instruction (`entry::step`), so the two routes share that code and give
//! the same answers by construction; recognised candidate loops and whole-program point joins
//! run through the interpreter's native fast paths as they do there. What the JIT adds is
//! speed where the interpreter pays for dispatch: arithmetic- and branch-heavy programs.
//!
//! Only [`VerifiedProgram`]s compile, so the generated code reads registers the verifier
//! proved in range and jumps only to instructions that exist. The one unsafe boundary is
//! the call of the compiled function in [`JitProgram::run`].
//!
//! ```
//! use std::sync::Arc;
//! use meridian_bytecode::assemble;
//! use meridian_kernels::column::ColumnBuilder;
//! use meridian_kernels::interp::{BoundInputs, F64Column, Input, OutputColumn, Scratch};
//! use meridian_kernels::jit::JitProgram;
//!
//! let program = assemble("double.masm", "
//! .program double
//! .input  pts points
//! .output twice f64
//!     load  g0, pts
//!     x     f0, g0
//!     add   f1, f0, f0
//!     store twice, f1
//!     halt
//! ")?;
//! let mut pts = ColumnBuilder::new();
//! pts.push_point(1.5, 0.0)?;
//! pts.push_null();
//! let inputs = BoundInputs::bind(program.program(), vec![Input::rows(Arc::new(pts.finish()))])?;
//! let jit = JitProgram::compile(&program)?;
//! let out = jit.output_buffers(0..2, 16);
//! jit.run(&inputs, 0..2, &out, &mut Scratch::new())?;
//! let twice: F64Column = [Some(3.0), None].into_iter().collect();
//! assert_eq!(out.finish()?, vec![OutputColumn::F64(twice)]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod entry;
mod translate;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cranelift_jit::JITModule;
use meridian_bytecode::{OutputKind, ProgramHash, VerifiedProgram};

use crate::interp::exec;
use crate::interp::{BoundInputs, ExecError, Interpreter, OutputBuffers, Scratch};

/// Why a program did not compile. The caller runs it on the interpreter instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JitError {
    /// Cranelift has no back end for this machine.
    #[error("the JIT does not support this machine: {0}")]
    Unsupported(String),
    /// Cranelift rejected the generated code (a bug in the translation).
    #[error("the JIT failed to compile the program: {0}")]
    Codegen(String),
}

/// A verified program compiled to native code. Cheap to share (`Send + Sync`); compile once
/// per program (see [`JitCache`]).
pub struct JitProgram {
    interp: Interpreter,
    code: Code,
    compile_time: Duration,
}

impl std::fmt::Debug for JitProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitProgram")
            .field("hash", &self.interp.hash().short())
            .field("compile_time", &self.compile_time)
            .finish_non_exhaustive()
    }
}

/// The compiled code and the module that owns its memory.
struct Code {
    module: Option<JITModule>,
    rows: translate::RowFn,
}

// SAFETY: after `finalize_definitions` the module's memory is read-only executable code that
// nothing mutates until `Drop`, which has `&mut self`; the function pointer is plain code.
// Calling it from several threads at once is what `JitProgram::run` allows, with each
// thread's own context and scratch.
unsafe impl Send for Code {}
// SAFETY: as for `Send`: shared access only ever calls the immutable code.
unsafe impl Sync for Code {}

impl Drop for Code {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: the only pointer into the module's memory is `self.rows`, which dies
            // with `self`; no call can be running, since a call borrows the `JitProgram`.
            unsafe { module.free_memory() };
        }
    }
}

impl JitProgram {
    /// Compiles `program`. Fails only when Cranelift cannot generate code for this machine.
    pub fn compile(program: &VerifiedProgram) -> Result<JitProgram, JitError> {
        let started = Instant::now();
        let interp = Interpreter::new(program);
        let (module, rows) = translate::compile(&interp)?;
        Ok(JitProgram { interp, code: Code { module: Some(module), rows }, compile_time: started.elapsed() })
    }

    /// How long [`JitProgram::compile`] took (decoding, translation and code generation).
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// The program's content hash.
    pub fn hash(&self) -> ProgramHash {
        self.interp.hash()
    }

    /// The kinds of the program's outputs, in order.
    pub fn outputs(&self) -> &[OutputKind] {
        self.interp.outputs()
    }

    /// The interpreter of the same program (what the rows a fast path declines run on).
    pub fn interpreter(&self) -> &Interpreter {
        &self.interp
    }

    /// Output buffers for a job over `rows` with `hit_capacity` hits per hits output.
    pub fn output_buffers(&self, rows: Range<usize>, hit_capacity: usize) -> OutputBuffers {
        self.interp.output_buffers(rows, hit_capacity)
    }

    /// Runs rows `rows`, with exactly the contract and the results of
    /// [`Interpreter::run`].
    pub fn run(
        &self,
        inputs: &BoundInputs,
        rows: Range<usize>,
        out: &OutputBuffers,
        scratch: &mut Scratch,
    ) -> Result<(), ExecError> {
        self.interp.check_run(inputs, &rows, out)?;
        exec::with_chunk(&self.interp, inputs, rows, out, scratch, |ins, rows, s| {
            if rows.is_empty() {
                return Ok(());
            }
            let s: *mut Scratch = s;
            let bases = out.dense_bases();
            let mut ctx = entry::Ctx { it: &self.interp, ins, out, scratch: s, error: None };
            // SAFETY: the code was compiled from `self.interp`'s verified program, so it only
            // names registers, inputs, outputs and pcs the verifier proved in range; `ctx`
            // and `s` are live and exclusive for the call (the closure holds the only
            // `&mut Scratch`, turned into `s`); `check_run` proved `rows` lie in the bound
            // inputs and in `out`'s rows, which `exec::with_chunk` narrowed, not widened, so
            // the stores through `bases` (made from `out` for its outputs' kinds, which are the
            // program's) land in the buffers; `bases` outlives the call.
            let status =
                unsafe { (self.code.rows)(&mut ctx, s, bases.as_ptr(), rows.start as u64, rows.end as u64) };
            match (status, ctx.error) {
                (_, Some(e)) => Err(e),
                (0, None) => Ok(()),
                (_, None) => Err(ExecError {
                    row: None,
                    pc: None,
                    message: "compiled code failed without a reason".into(),
                }),
            }
        })
    }
}

/// Compiled programs by content hash, so a program compiles once per cache however many
/// jobs run it. Failures are cached too: a program that does not compile is not retried.
#[derive(Debug, Default)]
pub struct JitCache {
    programs: Mutex<HashMap<ProgramHash, Result<Arc<JitProgram>, JitError>>>,
}

impl JitCache {
    /// An empty cache.
    pub fn new() -> JitCache {
        JitCache::default()
    }

    /// The compiled `program`, compiling it on first use; `fresh` says whether this call
    /// compiled it.
    pub fn get(&self, program: &VerifiedProgram) -> (Result<Arc<JitProgram>, JitError>, bool) {
        let hash = program.hash();
        if let Some(hit) = self.programs.lock().unwrap_or_else(PoisonError::into_inner).get(&hash) {
            return (hit.clone(), false);
        }
        // Compiled outside the lock: another thread may compile the same program meanwhile;
        // the first to finish is kept.
        let compiled = JitProgram::compile(program).map(Arc::new);
        let mut programs = self.programs.lock().unwrap_or_else(PoisonError::into_inner);
        (programs.entry(hash).or_insert(compiled).clone(), true)
    }

    /// How many programs the cache holds (compiled or failed).
    pub fn len(&self) -> usize {
        self.programs.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
