//! Hardware layer for meridian.
//!
//! This crate will own everything that touches a GPU: the CUDA probe (which must never panic
//! on a machine without `libcuda`), context and stream ownership, device and pinned
//! device-mapped host memory, NVRTC compilation with an on-disk cubin cache, launches, and
//! NVML telemetry. It knows nothing of bytecode (see `docs/architecture.md`).
//!
//! It is empty until the CUDA plumbing issue lands; no placeholder API is published ahead of it.
#![deny(unsafe_op_in_unsafe_fn)]
