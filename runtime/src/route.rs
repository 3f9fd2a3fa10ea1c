//! Which code runs a CPU job's rows: the interpreter or the program compiled by the JIT.
//!
//! `jit` compiles each program once per engine (by content hash) on its first job; when the
//! JIT is compiled out (the `jit` feature) or fails for a program, that program's jobs run on
//! the interpreter, the result says why, and an event is recorded (an error under strict
//! mode). `auto` decides per program: with an autotuner (`EngineBuilder::autotune`), large jobs
//! race the two routes (the JIT's compile time charged once) and the winner is applied and
//! stored; without one, a program takes the JIT once it is hot (`JIT_HOT_ROWS` rows run on
//! the CPU) and keeps it. A program the JIT cannot compile stays on the interpreter under
//! `auto`, said once as an event.

use std::fmt;
use std::str::FromStr;

/// The CPU route of an engine's jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum Route {
    /// The engine decides per program: a route race under autotune, else the JIT once the
    /// program is hot.
    #[default]
    Auto,
    /// The bytecode interpreter.
    Interpreter,
    /// Native code compiled from the program with Cranelift.
    Jit,
}

impl Route {
    /// The name `meridian run --route` takes and result lines print: `auto`, `interp`, `jit`.
    pub fn name(self) -> &'static str {
        match self {
            Route::Auto => "auto",
            Route::Interpreter => "interp",
            Route::Jit => "jit",
        }
    }

    /// Whether this build has the JIT (the `jit` cargo feature).
    pub fn jit_available() -> bool {
        cfg!(feature = "jit")
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Not one of `auto`, `interp`, `jit`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("route {0:?} is not one of auto, interp, jit")]
pub struct BadRoute(pub String);

impl FromStr for Route {
    type Err = BadRoute;

    fn from_str(s: &str) -> Result<Route, BadRoute> {
        match s {
            "auto" => Ok(Route::Auto),
            "interp" | "interpreter" => Ok(Route::Interpreter),
            "jit" => Ok(Route::Jit),
            _ => Err(BadRoute(s.to_owned())),
        }
    }
}
