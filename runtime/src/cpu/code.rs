//! What runs a CPU job's rows — the interpreter, or the program compiled by the JIT — and
//! the JIT's compile of a program: once per program per engine, on the first job that asks
//! for it, kept in the program's artefact slot (`PreparedInner::cpu_code`) so that later jobs
//! find it without a lookup.

use std::sync::Arc;

use meridian_kernels::interp::{BoundInputs, ExecError, OutputBuffers, Scratch};

use crate::job::PreparedInner;

/// What runs one CPU job's rows. The JIT's code stays in the program's artefact slot,
/// read from there by [`Code::run`]: a job names it without taking a reference on it (a
/// reference count every job bumped was a cache line all cores wrote).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Code {
    Interpreter,
    #[cfg(feature = "jit")]
    Jit,
}

/// What the JIT compiles a program to.
#[cfg(feature = "jit")]
type Program = meridian_kernels::jit::JitProgram;
/// Without the JIT nothing is ever compiled.
#[cfg(not(feature = "jit"))]
type Program = std::convert::Infallible;

impl Code {
    /// Runs `rows` of `prepared` with this code.
    pub(crate) fn run(
        &self,
        prepared: &PreparedInner,
        inputs: &BoundInputs,
        rows: std::ops::Range<usize>,
        out: &OutputBuffers,
        scratch: &mut Scratch,
    ) -> Result<(), ExecError> {
        match self {
            Code::Interpreter => prepared.interp.run(inputs, rows, out, scratch),
            #[cfg(feature = "jit")]
            Code::Jit => match prepared.cpu_code.get::<Compiled>() {
                Some(Ok(p)) => p.run(inputs, rows, out, scratch),
                // A job is given `Code::Jit` only from a compiled slot, which is never emptied.
                _ => Err(ExecError {
                    row: None,
                    pc: None,
                    message: "the program's compiled code is missing".into(),
                }),
            },
        }
    }

    /// `prepared` compiled by the JIT, without waiting for it: `None` while it is not —
    /// the first call starts its compile on a thread of its own, and the caller's job runs on
    /// the interpreter meanwhile (a compile takes about a millisecond; a service's requests
    /// must not wait behind it).
    pub(crate) fn compiled_or_started(prepared: &Arc<PreparedInner>) -> Option<Result<Code, String>> {
        if let Some(done) = prepared.cpu_code.get::<Compiled>() {
            return Some(done.as_ref().map(code_of).map_err(Clone::clone));
        }
        if prepared.start_jit() {
            let p = prepared.clone();
            let spawned = std::thread::Builder::new().name("meridian-jit".into()).spawn(move || {
                let _ = Code::compiled(&p);
            });
            if spawned.is_err() {
                // No thread to compile on: compile here, as the blocking form does.
                return Some(Code::compiled(prepared));
            }
        }
        None
    }

    /// `prepared` compiled by the JIT (compiled on first use, once; callers racing share the
    /// compile), or why not.
    pub(crate) fn compiled(prepared: &PreparedInner) -> Result<Code, String> {
        match prepared.cpu_code.get_or_init(|| compile(prepared)) {
            Some(Ok(p)) => Ok(code_of(p)),
            Some(Err(e)) => Err(e.clone()),
            None => Err("the program's CPU code slot holds something else".to_owned()),
        }
    }
}

/// What the JIT made of a program.
type Compiled = Result<Program, String>;

/// The code that runs a compiled program.
#[cfg(feature = "jit")]
fn code_of(_: &Program) -> Code {
    Code::Jit
}

#[cfg(not(feature = "jit"))]
fn code_of(p: &Program) -> Code {
    match *p {}
}

#[cfg(feature = "jit")]
fn compile(prepared: &PreparedInner) -> Compiled {
    match meridian_kernels::jit::JitProgram::compile(&prepared.program) {
        Ok(p) => {
            let took = p.compile_time();
            prepared.note_jit_compiled(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
            let ms = took.as_secs_f64() * 1e3;
            tracing::debug!(program = %prepared.program.hash().short(), ms, "compiled by the JIT");
            Ok(p)
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(not(feature = "jit"))]
fn compile(_: &PreparedInner) -> Compiled {
    Err("this build has no JIT (the `jit` feature is off)".to_owned())
}
