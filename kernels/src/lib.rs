//! Geometry kernels for meridian.
//!
//! This crate will own the GeoArrow-style geometry columns, the geometry algorithms, the flat
//! spatial index, the CPU interpreter of verified bytecode, and the CUDA sources with their
//! bytecode→CUDA generator (see `docs/architecture.md`). It depends only on
//! [`meridian_bytecode`]; it knows nothing of rings or executors.
//!
//! Today it holds nothing but this re-export: the geometry and interpreter work is tracked as
//! its own issue, and no placeholder API is published ahead of it.
#![deny(unsafe_op_in_unsafe_fn)]

pub use meridian_bytecode as bytecode;
