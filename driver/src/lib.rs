//! Hardware layer for meridian: everything that touches a GPU.
//!
//! - [`probe`]: what CUDA this machine has, found without ever panicking (cudarc panics if a
//!   CUDA function is called while `libcuda` is missing, so the probe checks first).
//! - [`Gpu`]: an opened device (context, streams, cubin loading).
//! - [`MappedHostBuffer`] / [`HostRegistration`]: pinned host memory mapped into the device,
//!   where the ring and the staging buffers live.
//! - [`compile_cubin`] / [`CubinCache`]: NVRTC compilation with an on-disk cache.
//! - [`PoolBuffer`]: device memory that can be allocated and freed beside a running resident
//!   kernel (stream-ordered), and [`stream_state`] to see whether such a kernel still runs.
//! - [`resident_grid`]: occupancy-derived grid size for resident kernels.
//! - [`experiment`]: the dispatch-latency experiment that seeds the resident megakernel.
//!
//! This crate knows nothing of bytecode (see `docs/architecture.md`).
#![deny(unsafe_op_in_unsafe_fn)]

mod context;
mod error;
pub mod experiment;
mod launch;
mod memory;
mod nvrtc;
mod pool;
mod probe;
pub mod resources;
pub mod telemetry;

pub use context::Gpu;
pub use cudarc;
pub use error::GpuError;
pub use launch::{launch_and_wait, launch_args, launch_with_pointer, resident_grid};
pub use memory::{DeviceBuffer, HostRegistration, MappedHostBuffer};
pub use nvrtc::{compile_cubin, nvrtc_version, Arch, CacheOutcome, Cubin, CubinCache, MIN_NVRTC};
pub use pool::{keep_pool_memory, stream_state, PoolBuffer, StreamState};
pub use probe::{
    driver_library_present, installed_driver_version, nvrtc_library_present, probe, DeviceInfo, DriverState,
    DriverVersion, NvrtcState, Probe,
};
