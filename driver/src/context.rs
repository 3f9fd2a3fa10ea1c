//! An opened device: its context and what was learned about it.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};

use crate::error::{DriverContext, GpuError};
use crate::nvrtc::{Arch, Cubin};
use crate::probe::{probe, DeviceInfo};

/// An opened CUDA device: the primary context (owned by cudarc's `CudaContext`, released when
/// the last clone is dropped) and the device's description.
#[derive(Clone, Debug)]
pub struct Gpu {
    ctx: Arc<CudaContext>,
    info: DeviceInfo,
}

impl Gpu {
    /// Opens device `ordinal`. Probes first, so on a machine without a driver or device this
    /// returns [`GpuError::NoDriver`] or [`GpuError::NoDevice`] instead of panicking.
    pub fn open(ordinal: usize) -> Result<Gpu, GpuError> {
        let found = probe();
        if let Some(why) = found.unusable() {
            return Err(why);
        }
        let info = found
            .devices()
            .get(ordinal)
            .cloned()
            .ok_or(GpuError::NoSuchDevice { ordinal, count: found.devices().len() })?;
        // Spin (rather than yield or block) while waiting for the device: this engine trades a
        // host core for latency. Only takes effect before the primary context first becomes
        // active, so a refusal (someone else activated it) is not an error.
        if let Ok(dev) = cudarc::driver::result::device::get(ordinal as i32) {
            let spin = cudarc::driver::sys::CUctx_flags_enum::CU_CTX_SCHED_SPIN as u32;
            // SAFETY: `dev` is a valid device handle (the driver is initialised: the probe ran
            // cuInit); the call only records scheduling flags for its primary context.
            let _ = unsafe { cudarc::driver::sys::cuDevicePrimaryCtxSetFlags_v2(dev, spin) };
        }
        let ctx = CudaContext::new(ordinal).during("creating the CUDA context")?;
        Ok(Gpu { ctx, info })
    }

    /// The device's description.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The device's architecture (`sm_90` for compute capability 9.0).
    pub fn arch(&self) -> Arch {
        let (major, minor) = self.info.compute_capability;
        Arch { major: major.max(0) as u32, minor: minor.max(0) as u32 }
    }

    /// The cudarc context, for allocations (`gpu.context().default_stream().alloc_zeros(n)`
    /// gives an owned device buffer) and anything this crate does not wrap.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// A new non-blocking stream (it does not synchronise with the legacy default stream, so
    /// a resident kernel on one stream and copies on another run concurrently).
    pub fn stream(&self) -> Result<Arc<CudaStream>, GpuError> {
        self.ctx.new_stream().during("creating a stream")
    }

    /// The device's free and total memory now, bytes (`cuMemGetInfo`).
    pub fn memory(&self) -> Result<(usize, usize), GpuError> {
        crate::memory::bind(&self.ctx).during("binding the context")?;
        cudarc::driver::result::mem_get_info().during("cuMemGetInfo")
    }

    /// Loads a cubin compiled for this device.
    pub fn load(&self, cubin: &Cubin) -> Result<Arc<CudaModule>, GpuError> {
        if cubin.arch() != self.arch() {
            return Err(GpuError::Invalid("the cubin was compiled for another architecture"));
        }
        self.ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(cubin.bytes().to_vec()))
            .during("loading a cubin")
    }

    /// Loads function `name` from a cubin compiled for this device.
    pub fn function(&self, cubin: &Cubin, name: &str) -> Result<CudaFunction, GpuError> {
        self.load(cubin)?.load_function(name).during("looking up a kernel")
    }
}
