//! meridian: geometry pipelines written as compact bytecode, run on a resident CUDA megakernel
//! or a CPU executor that speaks the same ring and bytecode.
//!
//! This facade re-exports the public API. Today that is the bytecode layer (assemble, verify,
//! disassemble and build programs) and the driver layer (probe and use a CUDA device).
//!
//! ```
//! let program = meridian::bytecode::assemble("measure.masm", include_str!("../examples/measure.masm"))?;
//! assert_eq!(program.program().name(), "measure");
//! # Ok::<(), meridian::bytecode::Diagnostics>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

pub use meridian_runtime::bytecode;
pub use meridian_runtime::driver;
