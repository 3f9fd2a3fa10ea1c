//! Device memory from the stream-ordered allocator, and stream state.
//!
//! A resident kernel never finishes, so nothing that waits for the whole device may run while
//! it does: `cuMemFree` and `cuCtxSynchronize` would wait forever. [`PoolBuffer`] allocates
//! and frees with `cuMemAllocAsync`/`cuMemFreeAsync` on a stream of its own and waits only for
//! that stream, so input uploads and job outputs can come and go beside a running megakernel.

use std::sync::Arc;

use cudarc::driver::{result, sys, CudaContext, CudaStream};

use crate::error::{DriverContext, GpuError};
use crate::memory::bind;
use crate::Gpu;

/// Device memory allocated on `stream` from the device's default memory pool; freed (stream
/// ordered) on drop.
#[derive(Debug)]
pub struct PoolBuffer {
    dptr: sys::CUdeviceptr,
    len: usize,
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
}

// SAFETY: the buffer is a device address owned by this value; the driver calls it makes are
// thread-safe, and the stream and context are `Send + Sync`.
unsafe impl Send for PoolBuffer {}
// SAFETY: `&self` methods only issue driver calls on the owned stream.
unsafe impl Sync for PoolBuffer {}

impl PoolBuffer {
    /// `len` bytes (contents unspecified), usable by any stream once this returns.
    pub fn new(gpu: &Gpu, stream: &Arc<CudaStream>, len: usize) -> Result<PoolBuffer, GpuError> {
        if len == 0 {
            return Err(GpuError::Invalid("a device buffer needs at least one byte"));
        }
        let ctx = gpu.context().clone();
        bind(&ctx).during("binding the context")?;
        // SAFETY: the stream belongs to this context and is live; the allocation is owned by
        // the returned value and freed once, in Drop.
        let dptr = unsafe { result::malloc_async(stream.cu_stream(), len) }.during("cuMemAllocAsync")?;
        let buffer = PoolBuffer { dptr, len, stream: stream.clone(), ctx };
        buffer.sync()?;
        Ok(buffer)
    }

    /// The device address of the first byte.
    pub fn device_ptr(&self) -> u64 {
        self.dptr
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: empty buffers are refused.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn sync(&self) -> Result<(), GpuError> {
        // SAFETY: the stream is live (held by this value).
        unsafe { result::stream::synchronize(self.stream.cu_stream()) }.during("cuStreamSynchronize")
    }

    fn range(&self, offset: usize, len: usize) -> Result<u64, GpuError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(self.dptr + offset as u64),
            _ => Err(GpuError::Invalid("a copy past the end of a device buffer")),
        }
    }

    /// Copies `bytes` to byte `offset`; returns when the device holds them.
    pub fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), GpuError> {
        let dst = self.range(offset, bytes.len())?;
        if bytes.is_empty() {
            return Ok(());
        }
        bind(&self.ctx).during("binding the context")?;
        // SAFETY: [dst, dst + len) lies in this allocation (checked); `bytes` stays borrowed
        // until the synchronize below returns, so the copy never reads freed host memory.
        unsafe { result::memcpy_htod_async(dst, bytes, self.stream.cu_stream()) }
            .during("cuMemcpyHtoDAsync")?;
        self.sync()
    }

    /// Sets `len` bytes from byte `offset` to zero; returns when the device holds them.
    pub fn zero(&self, offset: usize, len: usize) -> Result<(), GpuError> {
        let dst = self.range(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        bind(&self.ctx).during("binding the context")?;
        // SAFETY: [dst, dst + len) lies in this allocation (checked); the stream is live.
        unsafe { result::memset_d8_async(dst, 0, len, self.stream.cu_stream()) }.during("cuMemsetD8Async")?;
        self.sync()
    }

    /// Copies from byte `offset` into `out`; returns when `out` holds them.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), GpuError> {
        let src = self.range(offset, out.len())?;
        if out.is_empty() {
            return Ok(());
        }
        bind(&self.ctx).during("binding the context")?;
        // SAFETY: as in `write`; `out` is exclusively borrowed until the copy has finished.
        unsafe { result::memcpy_dtoh_async(out, src, self.stream.cu_stream()) }
            .during("cuMemcpyDtoHAsync")?;
        self.sync()
    }
}

impl Drop for PoolBuffer {
    fn drop(&mut self) {
        let _ = bind(&self.ctx);
        // SAFETY: `dptr` came from cuMemAllocAsync on this stream and is freed once, here;
        // its users (copies on this stream, kernels that finished with it) are done.
        let _ = unsafe { result::free_async(self.dptr, self.stream.cu_stream()) };
    }
}

/// What a stream is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// Work is still running (or queued).
    Busy,
    /// Everything submitted to it has finished.
    Idle,
    /// The stream (and with it the context) hit an error.
    Failed(String),
}

/// Asks without waiting whether `stream`'s work has finished (`cuStreamQuery`), from any
/// thread (the stream's context is made current first).
pub fn stream_state(stream: &CudaStream) -> StreamState {
    if let Err(e) = bind(stream.context()) {
        return StreamState::Failed(format!("binding the context: {e}"));
    }
    // SAFETY: the stream is live (borrowed) and its context current.
    match unsafe { sys::cuStreamQuery(stream.cu_stream()) } {
        sys::CUresult::CUDA_SUCCESS => StreamState::Idle,
        sys::CUresult::CUDA_ERROR_NOT_READY => StreamState::Busy,
        e => StreamState::Failed(format!("{e:?}")),
    }
}

/// Keeps memory freed to the device's default pool there, instead of returning it to the
/// system at every synchronisation (which makes the next allocation slow).
pub fn keep_pool_memory(gpu: &Gpu) -> Result<(), GpuError> {
    bind(gpu.context()).during("binding the context")?;
    let dev = result::device::get(gpu.info().ordinal as i32).during("cuDeviceGet")?;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    // SAFETY: `dev` is a valid device; the driver writes one pool handle.
    unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, dev) }.result().during("cuDeviceGetDefaultMemPool")?;
    let mut threshold: u64 = u64::MAX;
    // SAFETY: `pool` is the device's default pool; the attribute takes a u64 by pointer.
    unsafe {
        sys::cuMemPoolSetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            std::ptr::addr_of_mut!(threshold).cast(),
        )
    }
    .result()
    .during("cuMemPoolSetAttribute")
}
