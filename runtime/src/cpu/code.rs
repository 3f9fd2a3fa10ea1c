//! What runs a CPU job's rows — the interpreter, or the program compiled by the JIT — and the
//! CPU executor's compiled programs, kept by program hash: one compile per program per
//! engine, on the first job that asks for it.

use std::sync::{Arc, OnceLock};

use meridian_kernels::interp::{BoundInputs, ExecError, OutputBuffers, Scratch};
use parking_lot::Mutex;

use crate::job::{ByProgram, PreparedInner};

/// What runs one CPU job's rows.
#[derive(Clone, Debug)]
pub(crate) enum Code {
    Interpreter,
    #[cfg(feature = "jit")]
    Jit(Arc<meridian_kernels::jit::JitProgram>),
}

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
            Code::Jit(p) => p.run(inputs, rows, out, scratch),
        }
    }
}

#[cfg(feature = "jit")]
type Compiled = Result<Arc<meridian_kernels::jit::JitProgram>, String>;
#[cfg(not(feature = "jit"))]
type Compiled = Result<(), String>;

/// The JIT's programs, by content hash.
#[derive(Debug, Default)]
pub(crate) struct JitCache {
    programs: Mutex<ByProgram<Arc<OnceLock<Compiled>>>>,
}

impl JitCache {
    /// `prepared` compiled by the JIT (compiled on first use, once; waiters share the
    /// compile), or why not.
    pub(crate) fn compiled(&self, prepared: &PreparedInner) -> Result<Code, String> {
        let cell = self.programs.lock().entry(prepared.program.hash()).or_default().clone();
        let compiled = cell.get_or_init(|| compile(prepared));
        match compiled {
            #[cfg(feature = "jit")]
            Ok(p) => Ok(Code::Jit(p.clone())),
            #[cfg(not(feature = "jit"))]
            Ok(()) => Ok(Code::Interpreter),
            Err(e) => Err(e.clone()),
        }
    }
}

#[cfg(feature = "jit")]
fn compile(prepared: &PreparedInner) -> Compiled {
    let r = meridian_kernels::jit::JitProgram::compile(&prepared.program).map(Arc::new);
    match r {
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
