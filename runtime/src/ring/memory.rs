//! Where a ring's bytes live.

use std::alloc::Layout;
use std::ptr::NonNull;

/// A provider of ring memory. The CPU executor uses [`HeapMemory`]; the CUDA backend
/// provides pinned, device-mapped host memory with the same layout.
///
/// # Safety
///
/// `allocate` must return memory valid for reads and writes of `layout.size()` bytes,
/// aligned to `layout.align()`, not aliased by anything else, that stays valid until
/// `deallocate` is called with the same pointer and layout. Implementations are shared
/// between threads.
pub unsafe trait RingMemory: Send + Sync {
    /// Allocates `layout` (`None` when no memory is available).
    fn allocate(&self, layout: Layout) -> Option<NonNull<u8>>;

    /// Returns memory from [`RingMemory::allocate`].
    ///
    /// # Safety
    ///
    /// `ptr` came from `allocate(layout)` on this provider and is not used afterwards.
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout);
}

/// Ordinary heap memory, zeroed.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapMemory;

// SAFETY: `std::alloc` gives memory with exactly the contract required, owned by the caller.
unsafe impl RingMemory for HeapMemory {
    fn allocate(&self, layout: Layout) -> Option<NonNull<u8>> {
        if layout.size() == 0 {
            return None;
        }
        // SAFETY: the layout has a non-zero size (checked above).
        NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller passes a pointer from `allocate` with its layout.
        unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) }
    }
}
