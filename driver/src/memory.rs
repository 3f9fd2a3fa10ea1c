//! Memory the device can address: pinned host memory (where the ring and the staging buffers
//! live) and plain device buffers.
//!
//! [`MappedHostBuffer`] is `cuMemHostAlloc(DEVICEMAP | PORTABLE)`: cached, pinned host memory
//! mapped into the device's address space. (Not cudarc's `alloc_pinned`, which adds
//! `WRITECOMBINED`: write-combined memory is uncached for host reads, and the host reads the
//! completion ring constantly.) [`HostRegistration`] page-locks and maps memory that already
//! exists (an anonymous mapping for io_uring staging) with `cuMemHostRegister`.
//!
//! Host and device access this memory concurrently, so the host side never hands out `&[u8]`
//! or `&mut [u8]` to it: words are accessed through atomics ([`MappedHostBuffer::word`]).

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use cudarc::driver::{result, sys, CudaContext, DriverError};

use crate::error::{DriverContext, GpuError};
use crate::Gpu;

/// Makes `ctx` current on this thread. Called directly rather than through cudarc's
/// `bind_to_thread`, which first returns (and clears) any error stored on the context without
/// binding it: a free after such an error would then run with no context current.
pub(crate) fn bind(ctx: &CudaContext) -> Result<(), DriverError> {
    // SAFETY: `ctx` is alive (the caller holds its Arc), so its CUcontext is valid.
    unsafe { result::ctx::set_current(ctx.cu_ctx()) }
}

/// Pinned, device-mapped host memory, zeroed on allocation, freed on drop.
#[derive(Debug)]
pub struct MappedHostBuffer {
    ptr: NonNull<u8>,
    len: usize,
    device_ptr: sys::CUdeviceptr,
    ctx: Arc<CudaContext>,
}

// SAFETY: the buffer is process-wide pinned memory owned by this value; nothing in it is tied
// to the allocating thread, and host access goes through atomics.
unsafe impl Send for MappedHostBuffer {}
// SAFETY: shared access only yields atomics (`word`) or raw pointers.
unsafe impl Sync for MappedHostBuffer {}

impl MappedHostBuffer {
    /// Allocates `len` bytes (rounded up to a multiple of 8) of zeroed, mapped, pinned memory.
    pub fn new(gpu: &Gpu, len: usize) -> Result<MappedHostBuffer, GpuError> {
        if len == 0 {
            return Err(GpuError::Invalid("a mapped host buffer needs at least one byte"));
        }
        if !gpu.info().can_map_host_memory {
            return Err(GpuError::Invalid("this device cannot map host memory"));
        }
        let len = len.div_ceil(8) * 8;
        let ctx = gpu.context().clone();
        bind(&ctx).during("binding the context")?;
        let flags = sys::CU_MEMHOSTALLOC_DEVICEMAP | sys::CU_MEMHOSTALLOC_PORTABLE;
        // SAFETY: cuMemHostAlloc returns `len` bytes or an error; the bytes are zeroed below
        // before anyone reads them.
        let raw = unsafe { cudarc::driver::result::malloc_host(len, flags) }.during("cuMemHostAlloc")?;
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or(GpuError::Invalid("cuMemHostAlloc returned null"))?;
        // SAFETY: `ptr` points to `len` writable bytes just allocated and not yet shared.
        unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, len) };
        let mut device_ptr: sys::CUdeviceptr = 0;
        // SAFETY: `ptr` was allocated with DEVICEMAP in the current context; the driver writes
        // one device pointer through a valid reference.
        let mapped = unsafe { sys::cuMemHostGetDevicePointer_v2(&mut device_ptr, ptr.as_ptr().cast(), 0) };
        let buffer = MappedHostBuffer { ptr, len, device_ptr, ctx };
        mapped.result().during("cuMemHostGetDevicePointer")?;
        Ok(buffer)
    }

    /// Length in bytes (a multiple of 8).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: empty buffers are refused at allocation.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The device-side address of the first byte, to pass to kernels.
    pub fn device_ptr(&self) -> u64 {
        self.device_ptr
    }

    /// The device-side address of byte `offset`.
    pub fn device_ptr_at(&self, offset: usize) -> Option<u64> {
        (offset < self.len).then(|| self.device_ptr + offset as u64)
    }

    /// The host-side address of the first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The 8-byte word at `index` (byte offset `8 * index`), for host access that is safe
    /// while the device reads or writes the same memory.
    pub fn word(&self, index: usize) -> Option<&AtomicU64> {
        if index >= self.len / 8 {
            return None;
        }
        // SAFETY: the word is in bounds and 8-byte aligned (cuMemHostAlloc returns page-aligned
        // memory); AtomicU64 has the layout of u64, and every host access to the buffer goes
        // through atomics, so there is no non-atomic access to race with.
        Some(unsafe { &*self.ptr.as_ptr().cast::<AtomicU64>().add(index) })
    }
}

impl Drop for MappedHostBuffer {
    fn drop(&mut self) {
        // Nothing to do on error: the memory is the process's and goes with it.
        let _ = bind(&self.ctx);
        // SAFETY: `ptr` came from cuMemHostAlloc and is freed exactly once, here.
        let _ = unsafe { cudarc::driver::result::free_host(self.ptr.as_ptr().cast()) };
    }
}

/// Existing host memory page-locked and mapped into the device with `cuMemHostRegister`;
/// unregistered on drop. Borrows the memory mutably for its lifetime, so the memory cannot be
/// freed or moved while the device may address it.
#[derive(Debug)]
pub struct HostRegistration<'a> {
    ptr: NonNull<u8>,
    len: usize,
    device_ptr: sys::CUdeviceptr,
    ctx: Arc<CudaContext>,
    _memory: PhantomData<&'a mut [u8]>,
}

impl<'a> HostRegistration<'a> {
    /// Registers `memory` (page-locked, mapped, portable).
    pub fn new(gpu: &Gpu, memory: &'a mut [u8]) -> Result<HostRegistration<'a>, GpuError> {
        let ptr =
            NonNull::new(memory.as_mut_ptr()).ok_or(GpuError::Invalid("cannot register an empty region"))?;
        // SAFETY: the region is live and exclusively borrowed for the registration's lifetime.
        unsafe { Self::register(gpu, ptr, memory.len()) }
    }

    /// # Safety
    /// `[ptr, ptr + len)` is live, stays mapped and is registered by no one else while the
    /// returned value lives.
    unsafe fn register(gpu: &Gpu, ptr: NonNull<u8>, len: usize) -> Result<HostRegistration<'a>, GpuError> {
        if len == 0 {
            return Err(GpuError::Invalid("cannot register an empty region"));
        }
        let ctx = gpu.context().clone();
        bind(&ctx).during("binding the context")?;
        let flags = sys::CU_MEMHOSTREGISTER_DEVICEMAP | sys::CU_MEMHOSTREGISTER_PORTABLE;
        // SAFETY: `[ptr, ptr + len)` is a live region that outlives the registration (the
        // caller's contract).
        unsafe { sys::cuMemHostRegister_v2(ptr.as_ptr().cast(), len, flags) }
            .result()
            .during("cuMemHostRegister")?;
        // Built before the next call so that its Drop unregisters the region if that fails.
        let mut registration = HostRegistration { ptr, len, device_ptr: 0, ctx, _memory: PhantomData };
        // SAFETY: the region was just registered with DEVICEMAP; the driver writes one device
        // pointer through a valid reference.
        unsafe { sys::cuMemHostGetDevicePointer_v2(&mut registration.device_ptr, ptr.as_ptr().cast(), 0) }
            .result()
            .during("cuMemHostGetDevicePointer")?;
        Ok(registration)
    }

    /// The device-side address of the first byte.
    pub fn device_ptr(&self) -> u64 {
        self.device_ptr
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: empty regions are refused.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl HostRegistration<'static> {
    /// Registers the `len` bytes at `ptr` (page-locked, mapped, portable): memory kept alive
    /// by its owner (a mapping), not borrowed.
    ///
    /// # Safety
    /// `[ptr, ptr + len)` is one live region of this process that stays mapped, and is
    /// registered by no one else, until the registration is dropped.
    pub unsafe fn from_raw(gpu: &Gpu, ptr: NonNull<u8>, len: usize) -> Result<Self, GpuError> {
        // SAFETY: the caller's contract is `register`'s.
        unsafe { Self::register(gpu, ptr, len) }
    }
}

// SAFETY: the pointer is never dereferenced here, only handed back to the driver to unregister
// it (with the context bound, from any thread); the region's owner keeps it alive.
unsafe impl Send for HostRegistration<'_> {}
// SAFETY: as above; shared access reads two integers.
unsafe impl Sync for HostRegistration<'_> {}

impl Drop for HostRegistration<'_> {
    fn drop(&mut self) {
        let _ = bind(&self.ctx);
        // SAFETY: the region was registered by `new` and is unregistered exactly once, here.
        let _ = unsafe { sys::cuMemHostUnregister(self.ptr.as_ptr().cast()) };
    }
}

/// Zeroed device memory, freed on drop: for words the host writes by copy (a device-side
/// doorbell) and small kernel scratch. Bulk typed data uses cudarc's `CudaSlice`.
#[derive(Debug)]
pub struct DeviceBuffer {
    dptr: sys::CUdeviceptr,
    len: usize,
    ctx: Arc<CudaContext>,
}

impl DeviceBuffer {
    /// Allocates `len` zeroed bytes on the device. Waits for the zeroing to finish, so any
    /// kernel launched afterwards, on any stream, sees zeros.
    pub fn new(gpu: &Gpu, len: usize) -> Result<DeviceBuffer, GpuError> {
        if len == 0 {
            return Err(GpuError::Invalid("a device buffer needs at least one byte"));
        }
        let ctx = gpu.context().clone();
        bind(&ctx).during("binding the context")?;
        // SAFETY: cuMemAlloc returns `len` bytes of device memory or an error.
        let dptr = unsafe { cudarc::driver::result::malloc_sync(len) }.during("cuMemAlloc")?;
        let buffer = DeviceBuffer { dptr, len, ctx };
        // SAFETY: `dptr` is a fresh allocation of `len` bytes in the bound context.
        unsafe { cudarc::driver::result::memset_d8_sync(buffer.dptr, 0, len) }.during("cuMemsetD8")?;
        // cuMemsetD8 on device memory may return before it is done, and it runs on the legacy
        // stream, which non-blocking streams do not wait for: without this, a kernel launched
        // next could read the allocation's previous contents.
        result::ctx::synchronize().during("waiting for cuMemsetD8")?;
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
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        let _ = bind(&self.ctx);
        // SAFETY: `dptr` came from cuMemAlloc and is freed exactly once, here.
        let _ = unsafe { cudarc::driver::result::free_sync(self.dptr) };
    }
}
