//! What an engine is configured from beside its builder — the execution mode (builder,
//! process, `MERIDIAN_EXECUTION_MODE`), the memory budget's variable — and the errors of
//! building an engine and submitting to it.

use parking_lot::Mutex;

use meridian_bytecode::VerifyErrors;
use meridian_kernels::interp::BindError;

use crate::job::{CancelCause, Job, JobError};
use crate::ring::RingError;

/// Where jobs run: `auto` picks the best available backend, `cpu` and `gpu` insist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// The GPU when a usable one is present, otherwise the CPU (a recorded fallback).
    #[default]
    Auto,
    /// The CPU executor.
    Cpu,
    /// The CUDA executor; building fails loudly without a usable device.
    Gpu,
}

impl Mode {
    /// Parses `auto`, `cpu` or `gpu`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Mode::Auto),
            "cpu" => Some(Mode::Cpu),
            "gpu" => Some(Mode::Gpu),
            _ => None,
        }
    }
}

/// The environment variable that sets the mode when neither the builder nor
/// [`set_process_mode`] does.
pub const MODE_ENV: &str = "MERIDIAN_EXECUTION_MODE";

static PROCESS_MODE: Mutex<Option<Mode>> = Mutex::new(None);

/// Sets the mode of engines built from now on in this process whose builder names none:
/// over `MERIDIAN_EXECUTION_MODE`, under [`EngineBuilder::mode`]. `None` clears it.
pub fn set_process_mode(mode: Option<Mode>) {
    *PROCESS_MODE.lock() = mode;
}

/// The mode an engine built now gets with `builder` as its builder's choice, and where it
/// came from: `builder`, `process` ([`set_process_mode`]), `MERIDIAN_EXECUTION_MODE`, or
/// `default`. An invalid `MERIDIAN_EXECUTION_MODE` is an error naming it.
pub fn resolve_mode(builder: Option<Mode>) -> Result<(Mode, &'static str), EngineError> {
    if let Some(m) = builder {
        return Ok((m, "builder"));
    }
    if let Some(m) = *PROCESS_MODE.lock() {
        return Ok((m, "process"));
    }
    match std::env::var(MODE_ENV) {
        Ok(v) => Ok((Mode::parse(&v).ok_or(EngineError::BadModeEnv(v))?, MODE_ENV)),
        Err(_) => Ok((Mode::Auto, "default")),
    }
}

/// The environment variable that sets the memory budget when the builder does not: bytes,
/// with an optional binary suffix (`512MiB`, `2G`).
pub const MEMORY_BUDGET_ENV: &str = "MERIDIAN_MEMORY_BUDGET";

/// Bytes written as digits and an optional binary suffix: `4096`, `64K`, `512MiB`, `2G`,
/// `1TiB` (any case).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        _ => return None,
    };
    n.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// `MERIDIAN_MEMORY_BUDGET`, parsed: `None` when unset, an error naming the variable when it
/// is not a size.
pub fn memory_budget_from_env() -> Result<Option<u64>, EngineError> {
    match std::env::var(MEMORY_BUDGET_ENV) {
        Err(_) => Ok(None),
        Ok(v) => parse_bytes(&v).map(Some).ok_or_else(|| {
            EngineError::Config(format!(
                "{MEMORY_BUDGET_ENV}={v:?} is not a size in bytes (e.g. 512MiB, 2GiB)"
            ))
        }),
    }
}

/// Why an engine could not be built, or a program prepared or bound.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `MERIDIAN_EXECUTION_MODE` holds something other than auto, cpu or gpu.
    #[error("{MODE_ENV}={0:?} is not one of auto, cpu, gpu")]
    BadModeEnv(String),
    /// `gpu` was asked for and there is no usable device (or it could not be set up).
    #[error("execution mode gpu: {0}")]
    NoGpu(String),
    /// Execution mode `gpu`, and the GPU does not run this program.
    #[error("execution mode gpu: {0}")]
    GpuRefused(String),
    /// An invalid parameter.
    #[error("{0}")]
    Config(String),
    /// Strict mode (`MERIDIAN_STRICT_NATIVE=1`): the engine would have fallen back.
    #[error("{0}")]
    Strict(String),
    /// The rings could not be made.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// A worker thread could not be started.
    #[error("could not start a worker thread: {0}")]
    Spawn(std::io::Error),
    /// The program failed verification.
    #[error("the program failed verification:\n{0}")]
    Verify(VerifyErrors),
    /// Columns do not fit the program's inputs.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// An input name the program does not declare, or one given twice, or one missing.
    #[error("{0}")]
    InputName(String),
}

/// Why [`Engine::try_submit`] did not take a job; the job comes back.
#[derive(Debug, thiserror::Error)]
pub enum TrySubmitError {
    /// The ring or the job table is full (back-pressure); try again later.
    #[error("the submission ring is full")]
    Full(Job),
    /// The engine is shutting down.
    #[error("the engine is shut down")]
    Shutdown(Job),
}

/// Why [`Engine::submit`] did not take a job; the job comes back. As a [`JobError`] (for
/// `?` in code that awaits both the submission and the ticket) it is the error every job the
/// shutdown stopped gives: [`JobError::Cancelled`] by [`CancelCause::Shutdown`].
#[derive(Debug, thiserror::Error)]
#[error("the engine is shut down")]
pub struct ShutdownError(pub Job);

impl From<ShutdownError> for JobError {
    fn from(_: ShutdownError) -> JobError {
        JobError::Cancelled(CancelCause::Shutdown)
    }
}
