//! meridian: geometry pipelines written as compact bytecode, run on a resident CUDA megakernel
//! or a CPU executor that speaks the same ring and bytecode.
//!
//! This facade re-exports the public API: the [`Engine`] (prepare, bind, submit, await
//! tickets), the bytecode layer (assemble, verify, disassemble and build programs), the
//! geometry kernels (columns, readers, algorithms, index, interpreter), the ring protocol,
//! and the driver layer (probe and use a CUDA device).
//!
//! ```
//! let program = meridian::bytecode::assemble("measure.masm", include_str!("../examples/measure.masm"))?;
//! assert_eq!(program.program().name(), "measure");
//! # Ok::<(), meridian::bytecode::Diagnostics>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

pub mod demo;

pub use meridian_runtime::autotune;
pub use meridian_runtime::bench;
pub use meridian_runtime::bytecode;
pub use meridian_runtime::cuda;
pub use meridian_runtime::driver;
pub use meridian_runtime::env;
pub use meridian_runtime::events;
pub use meridian_runtime::kernels;
pub use meridian_runtime::place;
pub use meridian_runtime::ring;
pub use meridian_runtime::stream;
pub use meridian_runtime::{
    memory_budget_from_env, parse_bytes, plan, resolve_mode, set_process_mode, Backend, Bound, CancelCause,
    CancelToken, ColumnBuilder, Engine, EngineBuilder, EngineError, GeometryColumn, Input, Job, JobError,
    JobResult, Mode, Output, OutputColumn, Partial, Prepared, Request, Route, ShutdownError, StopReason,
    Submit, Ticket, TrySubmitError, UnknownOutput, VariantId, INLINE_ROWS, JIT_HOT_ROWS, JIT_WAIT_ROWS,
    MEMORY_BUDGET_ENV, MODE_ENV,
};
