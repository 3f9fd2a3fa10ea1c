//! The rings' memory: pinned host memory mapped into the device's address space.

use std::alloc::Layout as AllocLayout;
use std::ptr::NonNull;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::cuda::device::{MappedAlloc, Shared};
use crate::ring::{Ring, RingMemory};

/// Ring memory in pinned, device-mapped host memory.
#[derive(Debug)]
pub(crate) struct MappedRing {
    dev: Arc<Shared>,
    region: Mutex<Option<MappedAlloc>>,
}

impl MappedRing {
    pub(super) fn new(dev: &Arc<Shared>) -> MappedRing {
        MappedRing { dev: dev.clone(), region: Mutex::new(None) }
    }

    pub(super) fn device_ptr(&self) -> u64 {
        self.region.lock().as_ref().map_or(0, MappedAlloc::device_ptr)
    }
}

// SAFETY: `allocate` returns a fresh mapped allocation of at least `layout.size()` bytes,
// page-aligned (so aligned for any ring layout, whose alignment is 64), owned by this
// provider until `deallocate` drops it. Each ring allocates once.
unsafe impl RingMemory for MappedRing {
    fn allocate(&self, layout: AllocLayout) -> Option<NonNull<u8>> {
        if layout.align() > 4096 || layout.size() == 0 {
            return None;
        }
        let m = MappedAlloc::new(&self.dev, layout.size()).ok()?;
        let p = m.host_ptr();
        *self.region.lock() = Some(m);
        Some(p)
    }

    unsafe fn deallocate(&self, _ptr: NonNull<u8>, _layout: AllocLayout) {
        drop(self.region.lock().take());
    }
}

/// The device address of a ring's memory.
pub(super) fn ring_device_ptr<T: Copy + Send>(ring: &Ring<T, MappedRing>) -> u64 {
    ring.memory().device_ptr()
}
