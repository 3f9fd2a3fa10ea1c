//! The seam between the CUDA executor and a device.
//!
//! [`Device`] is the little the executor needs: device memory, pinned host memory the device
//! can address, copies, one launch of the megakernel, and whether it still runs.
//! [`CudaDevice`](super::CudaDevice) is the real one; `meridian-cuda-host` implements it with
//! the same megakernel built as host C++, so the executor's every path is tested on machines
//! without a GPU.

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A failed device operation, with what was being done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeviceError(pub String);

/// What the megakernel is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelState {
    /// Not launched yet.
    NotLaunched,
    /// Launched and not finished.
    Running,
    /// Finished (after `stop`, or unexpectedly).
    Exited,
    /// The device reported an error; the kernel is gone and the device unusable.
    Failed(String),
}

/// A device that can run the megakernel.
pub trait Device: Send + Sync + fmt::Debug + 'static {
    /// What the device is, for backend lines.
    fn describe(&self) -> String;

    /// Threads per megakernel block: at most 256 (and on a GPU a multiple of 32, for the
    /// warp-level block scans).
    fn block_threads(&self) -> u32;

    /// `len` bytes of device memory, contents unspecified.
    fn alloc(&self, len: usize) -> Result<u64, DeviceError>;

    /// Frees memory from [`Device::alloc`].
    ///
    /// # Safety
    ///
    /// `ptr` came from `alloc` on this device, is freed once, and nothing running on the
    /// device uses it any more.
    unsafe fn free(&self, ptr: u64);

    /// Copies `src` to device address `dst`; returns once the device memory holds it.
    ///
    /// # Safety
    ///
    /// `[dst, dst + src.len())` lies within one live allocation from [`Device::alloc`].
    unsafe fn write(&self, dst: u64, src: &[u8]) -> Result<(), DeviceError>;

    /// Sets `len` bytes at device address `dst` to zero; returns once the device memory holds
    /// them. The default writes zeros from the host, a mebibyte at a time.
    ///
    /// # Safety
    ///
    /// `[dst, dst + len)` lies within one live allocation from [`Device::alloc`].
    unsafe fn zero(&self, dst: u64, len: usize) -> Result<(), DeviceError> {
        let zeros = vec![0u8; len.min(1 << 20)];
        let mut done = 0;
        while done < len {
            let n = zeros.len().min(len - done);
            // SAFETY: [dst + done, dst + done + n) lies within [dst, dst + len) (the caller's).
            unsafe { self.write(dst + done as u64, &zeros[..n]) }?;
            done += n;
        }
        Ok(())
    }

    /// Copies from device address `src` into `dst`; returns once `dst` holds it.
    ///
    /// # Safety
    ///
    /// `[src, src + dst.len())` lies within one live allocation from [`Device::alloc`].
    unsafe fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), DeviceError>;

    /// `len` bytes of zeroed, pinned host memory that the device addresses at the returned
    /// device address; page-aligned.
    fn alloc_mapped(&self, len: usize) -> Result<(NonNull<u8>, u64), DeviceError>;

    /// Frees memory from [`Device::alloc_mapped`].
    ///
    /// # Safety
    ///
    /// `host` came from `alloc_mapped` on this device, is freed once, and nothing running on
    /// the device uses it any more.
    unsafe fn free_mapped(&self, host: NonNull<u8>);

    /// Starts the megakernel, once, with its control block at device address `control`;
    /// returns the number of blocks launched. With `lane`, it takes at most one block an SM
    /// (the latency lane), leaving the rest of every SM to programs' own kernels
    /// ([`Device::run_program`]); without, as many as fit.
    fn launch(&self, control: u64, lane: bool) -> Result<u32, DeviceError>;

    /// Compiles `program`'s own per-job kernel (the GPU JIT's generated code,
    /// `meridian_kernels::cuda::jit`) for this device, under the C identifier `symbol`. The
    /// default: a device without the GPU JIT.
    fn compile_program(
        &self,
        program: &meridian_bytecode::VerifiedProgram,
        symbol: &str,
    ) -> Result<CompiledProgram, DeviceError> {
        let _ = (program, symbol);
        Err(DeviceError("this device does not compile programs' own kernels".into()))
    }

    /// Runs a compiled program's kernel over `args`' rows, one thread a row, beside the
    /// megakernel (on the SMs its lane leaves), and waits for it — at most `timeout`. An error
    /// says whether the kernel never started ([`ProgramRunError::NotStarted`]: nothing was
    /// touched) or was lost ([`ProgramRunError::Lost`]: it failed, or ran past the timeout and
    /// may still be running).
    ///
    /// # Safety
    ///
    /// `program` came from [`Device::compile_program`] on this device for the program whose
    /// record `args.program` is; the addresses in `args` are live device (or mapped) memory
    /// laid out as that kernel reads and writes it, and stay so until this returns (or, past
    /// the timeout, until the device is wedged: nothing it may touch is freed).
    unsafe fn run_program(
        &self,
        program: &CompiledProgram,
        args: &ProgramArgs,
        timeout: std::time::Duration,
    ) -> Result<(), ProgramRunError> {
        let _ = (program, args, timeout);
        Err(ProgramRunError::NotStarted(DeviceError("this device does not run programs' own kernels".into())))
    }

    /// Whether the megakernel runs.
    fn kernel_state(&self) -> KernelState;

    /// Page-locks the `len` bytes of host memory at `ptr` (`cuMemHostRegister`), so that
    /// copies from it go straight to the device, until the returned guard is dropped; an
    /// error says why not (the default: a device that does not).
    ///
    /// # Safety
    ///
    /// `[ptr, ptr + len)` is live host memory that stays mapped, and is page-locked by no one
    /// else, until the guard is dropped.
    unsafe fn page_lock(&self, ptr: NonNull<u8>, len: usize) -> Result<PageLock, DeviceError> {
        let _ = (ptr, len);
        Err(DeviceError("this device does not page-lock host memory".into()))
    }
}

/// Why a program's kernel did not run to its end ([`Device::run_program`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProgramRunError {
    /// It was not launched; nothing was touched.
    #[error("{0}")]
    NotStarted(DeviceError),
    /// It failed, or ran past the timeout and may still be running: the device is not to be
    /// trusted with the memory it reaches.
    #[error("{0}")]
    Lost(DeviceError),
}

/// A program's own kernel, compiled for one device by [`Device::compile_program`]: what the
/// device needs to launch it, opaque to the executor.
pub struct CompiledProgram {
    kernel: String,
    detail: String,
    split: bool,
    held: Box<dyn std::any::Any + Send + Sync>,
}

impl CompiledProgram {
    /// The kernel `kernel`, compiled as `detail` says (compiler, cache), launched through
    /// `held` (which the device that made it downcasts).
    pub fn new(kernel: String, detail: String, held: impl std::any::Any + Send + Sync) -> CompiledProgram {
        CompiledProgram { kernel, detail, split: false, held: Box::new(held) }
    }

    /// The same, for a point join's split kernels (`meridian_kernels::cuda::jit::split_join`):
    /// its launches take a scratch area ([`ProgramArgs::join_scratch`]).
    pub fn split(self) -> CompiledProgram {
        CompiledProgram { split: true, ..self }
    }

    /// Whether it is a point join's split kernels, whose launches take row bits
    /// ([`ProgramArgs::join_scratch`], [`join_scratch_bytes`]).
    pub fn is_split(&self) -> bool {
        self.split
    }

    /// The kernel's name.
    pub fn kernel(&self) -> &str {
        &self.kernel
    }

    /// How it was compiled.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// What the device keeps to launch it, when it is a `T`.
    pub fn held<T: 'static>(&self) -> Option<&T> {
        self.held.downcast_ref()
    }
}

impl fmt::Debug for CompiledProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledProgram")
            .field("kernel", &self.kernel)
            .field("detail", &self.detail)
            .field("split", &self.split)
            .finish()
    }
}

/// The parameters of a per-job kernel (`mr_run_rows` and every generated `mr_jit_rows_*`): the
/// device addresses of the program record, the input table, the output table, 64 accumulators
/// and the error record, and the rows: `[begin, end)`, whose outputs are indexed from
/// `rows_begin`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramArgs {
    /// The program record.
    pub program: u64,
    /// The input table.
    pub inputs: u64,
    /// The output table.
    pub outputs: u64,
    /// The row output row 0 is.
    pub rows_begin: u64,
    /// First row.
    pub begin: u64,
    /// Past the last row.
    pub end: u64,
    /// The job's accumulators (`MrAcc`, one per output).
    pub acc: u64,
    /// The error record (`MrError`).
    pub error: u64,
    /// Threads a block of the launch (not a kernel parameter): see
    /// [`meridian_kernels::cuda::block_threads_refusal`].
    pub block_threads: u32,
    /// A point join's split kernels' scratch area ([`join_scratch_bytes`] of zeroed device
    /// memory); 0 for any other kernel.
    pub join_scratch: u64,
}

/// Bytes of a split join's scratch area for a launch over `rows` rows in blocks of
/// `block_threads`: the row bits (a bit a row, in 64-bit words: the fast kernel marks the rows
/// it leaves to the general one), the fast kernel's ticket counter, and a status word a block
/// (its blocks' hits, scanned across the launch so that they come out in row order); as
/// `mr_join_fast_rows` lays it out.
pub fn join_scratch_bytes(rows: u64, block_threads: u32) -> usize {
    // A launch has a block even over no rows.
    let blocks = rows.div_ceil(u64::from(block_threads.max(1))).max(1);
    let words = rows.div_ceil(64).saturating_add(1).saturating_add(blocks);
    usize::try_from(words.saturating_mul(8)).unwrap_or(usize::MAX)
}

impl ProgramArgs {
    /// In the kernel's parameter order.
    pub fn to_array(&self) -> [u64; 8] {
        [self.program, self.inputs, self.outputs, self.rows_begin, self.begin, self.end, self.acc, self.error]
    }

    /// In a split join's kernels' parameter order (the per-job kernel's, then the scratch).
    pub fn to_split_array(&self) -> [u64; 9] {
        let [a, b, c, d, e, f, g, h] = self.to_array();
        [a, b, c, d, e, f, g, h, self.join_scratch]
    }
}

/// Host memory page-locked by [`Device::page_lock`]: unlocked when dropped.
pub struct PageLock {
    _held: Box<dyn std::any::Any + Send + Sync>,
}

impl PageLock {
    /// A lock that lasts as long as `held` (whose drop unlocks the memory).
    pub fn new(held: impl std::any::Any + Send + Sync) -> PageLock {
        PageLock { _held: Box::new(held) }
    }
}

impl fmt::Debug for PageLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PageLock")
    }
}

/// A device shared by the executor's allocations. Once `wedged` (a kernel that would not
/// stop), nothing is freed: memory the kernel may still touch is leaked, never freed under it.
#[derive(Debug)]
pub(crate) struct Shared {
    pub device: Arc<dyn Device>,
    wedged: AtomicBool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.is_wedged() {
            // The kernel may still run: the device must never free what it holds, unload the
            // module or release the context under it. Leak it.
            std::mem::forget(self.device.clone());
        }
    }
}

impl Shared {
    pub fn new(device: Arc<dyn Device>) -> Arc<Shared> {
        Arc::new(Shared { device, wedged: AtomicBool::new(false) })
    }

    pub fn wedge(&self) {
        self.wedged.store(true, Ordering::SeqCst);
    }

    fn is_wedged(&self) -> bool {
        self.wedged.load(Ordering::SeqCst)
    }
}

/// Device memory owned by the executor, freed on drop.
#[derive(Debug)]
pub(crate) struct DeviceAlloc {
    dev: Arc<Shared>,
    ptr: u64,
    len: usize,
}

impl DeviceAlloc {
    pub fn new(dev: &Arc<Shared>, len: usize) -> Result<DeviceAlloc, DeviceError> {
        let ptr = dev.device.alloc(len.max(1))?;
        Ok(DeviceAlloc { dev: dev.clone(), ptr, len: len.max(1) })
    }

    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn check(&self, offset: usize, len: usize) -> Result<u64, DeviceError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(self.ptr + offset as u64),
            _ => Err(DeviceError(format!(
                "a copy of {len} bytes at {offset} is outside a {}-byte device allocation",
                self.len
            ))),
        }
    }

    pub fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), DeviceError> {
        let dst = self.check(offset, bytes.len())?;
        // SAFETY: the range lies within this live allocation (checked).
        unsafe { self.dev.device.write(dst, bytes) }
    }

    /// Sets `len` bytes from `offset` to zero.
    pub fn zero(&self, offset: usize, len: usize) -> Result<(), DeviceError> {
        let dst = self.check(offset, len)?;
        // SAFETY: the range lies within this live allocation (checked).
        unsafe { self.dev.device.zero(dst, len) }
    }

    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), DeviceError> {
        let src = self.check(offset, out.len())?;
        // SAFETY: as in `write`.
        unsafe { self.dev.device.read(src, out) }
    }
}

impl Drop for DeviceAlloc {
    fn drop(&mut self) {
        if !self.dev.is_wedged() {
            // SAFETY: `ptr` came from `alloc` on this device and is freed once, here. Its users
            // are done: job memory is dropped after the job's completion, resident inputs and
            // programs after the last job holding them, everything else after the kernel
            // stopped; if it did not stop, the device is wedged and nothing is freed.
            unsafe { self.dev.device.free(self.ptr) };
        }
    }
}

/// Pinned host memory the device addresses, owned by the executor, freed on drop.
///
/// The device reads and writes it while the host does, so no `&[u8]` to it is ever made:
/// the host reads and writes plain-old-data values at offsets, and words that both sides
/// update concurrently through atomics.
#[derive(Debug)]
pub(crate) struct MappedAlloc {
    dev: Arc<Shared>,
    host: NonNull<u8>,
    device_ptr: u64,
    len: usize,
}

// SAFETY: the memory is process-wide pinned memory owned by this value; nothing in it is tied
// to a thread, and every access goes through raw-pointer reads, writes and atomics.
unsafe impl Send for MappedAlloc {}
// SAFETY: as above; `&self` methods never hand out references to the bytes.
unsafe impl Sync for MappedAlloc {}

impl MappedAlloc {
    pub fn new(dev: &Arc<Shared>, len: usize) -> Result<MappedAlloc, DeviceError> {
        let (host, device_ptr) = dev.device.alloc_mapped(len.max(8))?;
        Ok(MappedAlloc { dev: dev.clone(), host, device_ptr, len: len.max(8) })
    }

    pub fn device_ptr(&self) -> u64 {
        self.device_ptr
    }

    pub fn host_ptr(&self) -> NonNull<u8> {
        self.host
    }

    fn at<T>(&self, offset: usize) -> Result<*mut T, DeviceError> {
        let size = std::mem::size_of::<T>();
        match offset.checked_add(size) {
            Some(end) if end <= self.len && offset.is_multiple_of(std::mem::align_of::<T>()) => {
                // SAFETY: in bounds (checked), so the pointer stays inside the allocation.
                Ok(unsafe { self.host.as_ptr().add(offset) }.cast::<T>())
            }
            _ => Err(DeviceError(format!("an access of {size} bytes at {offset} is outside mapped memory"))),
        }
    }

    /// Writes `value` at `offset`. The device must not be reading it (the record it belongs
    /// to is not published).
    pub fn put<T: bytemuck::Pod>(&self, offset: usize, value: T) -> Result<(), DeviceError> {
        let p = self.at::<T>(offset)?;
        // SAFETY: `p` is in bounds and aligned for T; no reference to these bytes exists, and
        // the device does not read them until they are published (the caller's contract).
        unsafe { p.write_volatile(value) };
        Ok(())
    }

    /// Reads the value at `offset`, written by the device before a completion this thread
    /// acquired (or by the host itself).
    pub fn get<T: bytemuck::Pod>(&self, offset: usize) -> Result<T, DeviceError> {
        let p = self.at::<T>(offset)?;
        // SAFETY: `p` is in bounds and aligned; T is plain old data, so any bytes are a value.
        Ok(unsafe { p.read_volatile() })
    }

    /// Copies `len` bytes at `offset` out (written by the device before an acquired
    /// completion).
    pub fn copy_out(&self, offset: usize, out: &mut [u8]) -> Result<(), DeviceError> {
        match offset.checked_add(out.len()) {
            Some(end) if end <= self.len => {
                // SAFETY: the source range is in bounds; `out` is a separate host buffer.
                unsafe {
                    std::ptr::copy_nonoverlapping(self.host.as_ptr().add(offset), out.as_mut_ptr(), out.len())
                };
                Ok(())
            }
            _ => Err(DeviceError(format!(
                "a copy of {} bytes at {offset} is outside mapped memory",
                out.len()
            ))),
        }
    }

    /// Copies `bytes` in at `offset` (not yet published to the device).
    pub fn copy_in(&self, offset: usize, bytes: &[u8]) -> Result<(), DeviceError> {
        match offset.checked_add(bytes.len()) {
            Some(end) if end <= self.len => {
                // SAFETY: the destination range is in bounds; `bytes` is a separate buffer.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.host.as_ptr().add(offset), bytes.len())
                };
                Ok(())
            }
            _ => Err(DeviceError(format!(
                "a copy of {} bytes at {offset} is outside mapped memory",
                bytes.len()
            ))),
        }
    }

    /// The 8-byte word at `offset`, for words host and device both touch.
    pub fn word(&self, offset: usize) -> Result<&std::sync::atomic::AtomicU64, DeviceError> {
        let p = self.at::<u64>(offset)?;
        // SAFETY: in bounds and 8-aligned; AtomicU64 has u64's layout, and this word is only
        // ever accessed atomically on the host.
        Ok(unsafe { &*p.cast::<std::sync::atomic::AtomicU64>() })
    }
}

impl Drop for MappedAlloc {
    fn drop(&mut self) {
        if !self.dev.is_wedged() {
            // SAFETY: from `alloc_mapped` on this device, freed once, here; see DeviceAlloc's
            // Drop for why nothing on the device uses it any more.
            unsafe { self.dev.device.free_mapped(self.host) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_joins_scratch_holds_its_row_bits_its_ticket_and_a_word_a_block() {
        // 100 rows: two 64-bit words of bits, the ticket, and two blocks of 64 (or one of 128).
        assert_eq!(join_scratch_bytes(100, 64), (2 + 1 + 2) * 8);
        assert_eq!(join_scratch_bytes(100, 128), (2 + 1 + 1) * 8);
        // No rows: a launch still has a block, whose status word is inside.
        assert_eq!(join_scratch_bytes(0, 128), (1 + 1) * 8);
        // 100M rows in blocks of 128: 12.5 MB of bits and 6.25 MB of status.
        assert_eq!(join_scratch_bytes(100_000_000, 128), (1_562_500 + 1 + 781_250) * 8);
    }
}
