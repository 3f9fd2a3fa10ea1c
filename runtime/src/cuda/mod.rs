//! The CUDA executor: meridian's resident megakernel on a GPU.
//!
//! - [`Device`] is the seam: device memory, mapped host memory, one launch, the kernel's
//!   state, and programs' own kernels (the GPU JIT: compiled per program, run beside the
//!   megakernel's latency lane). [`CudaDevice`] is a real GPU (cudarc, NVRTC); `meridian-cuda-host` provides one
//!   that runs the same megakernel as host C++, which is how every CI run exercises this
//!   executor without a GPU.
//! - `executor` publishes jobs on the submission ring in mapped memory and reaps completions;
//!   `resident` keeps programs, columns and indexes on the device between jobs; `outputs`
//!   places each job's results and reads them back; `abi` mirrors the megakernel's records.
//!
//! See `docs/architecture.md` ("The CUDA executor") for the protocol and its failure modes.

mod abi;
pub mod bench;
pub(crate) mod cuda_device;
mod device;
pub(crate) mod executor;
pub mod heap;
mod outputs;
pub(crate) mod programs;
mod resident;

pub use cuda_device::{register_cap, CudaDevice, JoinPath, JIT_JOIN_PATH_ENV, REGISTERS_ENV};
pub use device::{
    join_scratch_bytes, CompiledProgram, Device, DeviceError, KernelState, PageLock, ProgramArgs,
    ProgramRunError,
};
pub use executor::{GpuDispatch, DISPATCH_ENV};
