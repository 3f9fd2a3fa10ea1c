//! Runtime for meridian: the ring protocol, the resident CPU executor, and the `Engine`
//! API (see `docs/architecture.md` and `docs/ring-protocol.md`).
//!
//! A job goes: [`Engine::prepare`] (verify once, cached by content hash) →
//! [`Engine::bind`] (columns checked against the inputs, indexes built) →
//! [`Engine::submit`] (chunks published on the submission [`ring`]) → workers claim chunks
//! and run the interpreter (or the program compiled by the JIT, [`Route`]) → the worker finishing the last chunk publishes a completion →
//! the completion is reaped and the [`Ticket`] resolves. [`Engine::run_stream`] runs a job
//! whose row input is read batch by batch while the batches run ([`stream`]).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod bench;
mod cpu;
pub mod cuda;
mod doorbell;
mod engine;
pub mod env;
pub mod events;
mod job;
pub mod place;
pub mod plan;
pub mod ring;
mod route;
pub mod stream;
mod sync;
pub mod tune;
pub mod variants;

pub use engine::{
    memory_budget_from_env, parse_bytes, resolve_mode, set_process_mode, Engine, EngineBuilder, EngineError,
    Mode, Partial, Request, ShutdownError, Submit, TrySubmitError, INLINE_ROWS, JIT_HOT_ROWS, JIT_WAIT_ROWS,
    MEMORY_BUDGET_ENV, MODE_ENV,
};
pub use job::{
    Bound, CancelCause, CancelToken, Job, JobError, JobResult, Output, Prepared, Ticket, UnknownOutput,
};
// The request path's own types, at the root: a service builds its columns and inputs here.
pub use meridian_autotune as autotune;
pub use meridian_bytecode as bytecode;
pub use meridian_driver as driver;
pub use meridian_kernels as kernels;
pub use meridian_kernels::column::{ColumnBuilder, GeometryColumn};
pub use meridian_kernels::interp::StopReason;
pub use meridian_kernels::interp::{Input, OutputColumn};
pub use route::{BadRoute, Route};
pub use variants::{Backend, VariantId};
