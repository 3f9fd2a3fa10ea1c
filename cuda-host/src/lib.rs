//! meridian's device sources built as host C++, for tests on machines without a GPU.
//!
//! `build.rs` compiles `kernels/cuda/host.cpp` — the same interpreter, geometry and megakernel
//! that NVRTC compiles for the device, with `host_shim.h` in place of the hardware — with the
//! `cc` crate. This crate gives tests two ways in:
//!
//! - [`geometry`]: the device geometry library called row by row, to hold each function
//!   against `meridian_kernels::algo`;
//! - [`HostDevice`]: an emulated CUDA device for the `Engine`, which runs the real megakernel
//!   with each block a group of host threads, over rings and job records in ordinary memory,
//!   so the whole GPU path — upload, job records, the ring protocol, completions, results —
//!   runs and is checked against the CPU interpreter on every CI run; it compiles programs'
//!   own kernels (the GPU JIT's generated code) as host C++ at run time ([`host_jit`]).
//!
//! [`data`] makes random columns for such tests. Nothing here is for production use.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod data;
mod device;
mod ffi;
pub mod geometry;
pub mod host_jit;
pub mod per_job;

pub use device::{Behaviour, HostDevice, HostTraffic, DEFAULT_HEAP_BYTES};
