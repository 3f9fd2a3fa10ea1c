//! Runtime for meridian: the ring protocol, resident executors, launch policy, adaptive
//! planner, hit buffers, streaming and the `Engine` API (see `docs/architecture.md`).
//!
//! Today it re-exports the layers below it so that the `meridian` facade has one door; the
//! ring and the engine arrive with their own issue.
#![deny(unsafe_op_in_unsafe_fn)]

pub use meridian_autotune as autotune;
pub use meridian_bytecode as bytecode;
pub use meridian_driver as driver;
pub use meridian_kernels as kernels;
