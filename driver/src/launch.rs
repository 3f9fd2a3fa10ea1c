//! Launch sizing.

use cudarc::driver::{CudaFunction, LaunchConfig};

use crate::error::{DriverContext, GpuError};
use crate::Gpu;

/// A grid of `block`-thread blocks that is fully resident on `gpu` at once: blocks per SM
/// from `cuOccupancyMaxActiveBlocksPerMultiprocessor` — capped at `max_per_sm` if given —
/// times the SM count. A resident (persistent) kernel must not be launched with more blocks
/// than fit, or the extra blocks wait for SMs that never free up; capping leaves room on each
/// SM for other kernels.
pub fn resident_grid(
    gpu: &Gpu,
    function: &CudaFunction,
    block: u32,
    dynamic_smem: u32,
    max_per_sm: Option<u32>,
) -> Result<LaunchConfig, GpuError> {
    if block == 0 {
        return Err(GpuError::Invalid("a block needs at least one thread"));
    }
    let per_sm = function
        .occupancy_max_active_blocks_per_multiprocessor(block, dynamic_smem as usize, None)
        .during("cuOccupancyMaxActiveBlocksPerMultiprocessor")?;
    if per_sm == 0 {
        return Err(GpuError::Invalid("the kernel cannot run with this block size"));
    }
    let per_sm = max_per_sm.map_or(per_sm, |cap| per_sm.min(cap.max(1)));
    let grid = per_sm.saturating_mul(gpu.info().sms.max(1));
    Ok(LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: dynamic_smem })
}

/// Launches `function` with `cfg` on `stream` with one pointer-sized argument (`arg`, a device
/// address): the form of a resident kernel taking its control block.
///
/// # Safety
///
/// `function` must take exactly one pointer parameter, and everything the kernel reaches
/// through `arg` must stay valid (and not be freed) until the kernel has finished.
pub unsafe fn launch_with_pointer(
    function: &CudaFunction,
    cfg: LaunchConfig,
    stream: &cudarc::driver::CudaStream,
    arg: u64,
) -> Result<(), GpuError> {
    // SAFETY: one 64-bit parameter, the caller's contract.
    unsafe { launch_args(function, cfg, stream, &[arg]) }
}

/// Launches `function` with `cfg` on `stream` with 64-bit arguments `args` (device addresses
/// or integers) and returns at once: the kernel runs until the stream says it is done
/// ([`crate::stream_state`]).
///
/// # Safety
///
/// `function`'s parameters must be exactly `args.len()` 64-bit values, and whatever the
/// addresses among them reach must be valid for the kernel's accesses until it has finished.
pub unsafe fn launch_args(
    function: &CudaFunction,
    cfg: LaunchConfig,
    stream: &cudarc::driver::CudaStream,
    args: &[u64],
) -> Result<(), GpuError> {
    let mut values = args.to_vec();
    let mut params: Vec<*mut std::ffi::c_void> =
        values.iter_mut().map(|v| std::ptr::from_mut(v).cast::<std::ffi::c_void>()).collect();
    // SAFETY: the caller guarantees the signature and the validity of the addresses; the
    // parameter values live in `values` until the driver has copied them at launch.
    unsafe {
        cudarc::driver::result::launch_kernel(
            function.cu_function(),
            cfg.grid_dim,
            cfg.block_dim,
            cfg.shared_mem_bytes,
            stream.cu_stream(),
            &mut params,
        )
    }
    .during("cuLaunchKernel")
}

/// [`launch_args`], then waits for the kernel to finish: one launch per job, the baseline a
/// resident kernel is measured against.
///
/// # Safety
///
/// As [`launch_args`].
pub unsafe fn launch_and_wait(
    function: &CudaFunction,
    cfg: LaunchConfig,
    stream: &cudarc::driver::CudaStream,
    args: &[u64],
) -> Result<(), GpuError> {
    // SAFETY: the caller's contract is launch_args's.
    unsafe { launch_args(function, cfg, stream, args) }?;
    // SAFETY: the stream is live (borrowed).
    unsafe { cudarc::driver::result::stream::synchronize(stream.cu_stream()) }.during("cuStreamSynchronize")
}
