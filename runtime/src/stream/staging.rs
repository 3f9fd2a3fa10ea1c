//! Staging memory: one anonymous mapping cut into equal, page-aligned slots that reads land
//! in. A slot is lent out as a [`Slot`] and goes back to the free list when its last holder
//! drops it, so a buffer is reused only after whatever reads it (an Arrow array built over
//! it, and through that a job) is done with it.

use std::ptr::NonNull;
// `std`'s lock, not `parking_lot`'s: arrow takes a batch's owner only when it is
// `RefUnwindSafe`, which a poisoning lock is and `parking_lot`'s is not.
use std::sync::{Arc, Mutex};

use memmap2::MmapMut;

/// Slot sizes are rounded up to this, so every slot starts page-aligned (O_DIRECT needs it).
pub(crate) const ALIGN: usize = 4096;

struct Inner {
    /// A device's page lock of the whole mapping, if one was taken: declared before the
    /// mapping, so it is released before the memory is unmapped (fields drop in order), and
    /// held as long as any slot or buffer over the memory lives.
    lock: Mutex<Option<crate::cuda::PageLock>>,
    /// Owns the memory; only reached through `base` after construction.
    _map: MmapMut,
    /// Start of the mapping, taken from the `MmapMut` while it was held mutably.
    base: NonNull<u8>,
    slot_bytes: usize,
    slots: usize,
    free: Mutex<Vec<usize>>,
}

// SAFETY: `base` points into `_map`, which lives as long as `Inner`. The bytes of a slot are
// written only by the holder of its `Slot` (through a raw pointer, by a read the kernel does
// for it) and read only after that read completed, through `Slot::bytes`; the free list is
// behind a mutex. Nothing else touches the mapping.
unsafe impl Send for Inner {}
// SAFETY: as above; shared access is the mutex-guarded free list and reads of filled slots.
unsafe impl Sync for Inner {}

/// Staging memory of `slots` slots of `slot_bytes` bytes each.
#[derive(Clone)]
pub(crate) struct Staging {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staging")
            .field("slots", &self.inner.slots)
            .field("slot_bytes", &self.inner.slot_bytes)
            .finish()
    }
}

impl Staging {
    /// Maps `slots` slots of at least `slot_bytes` bytes (rounded up to [`ALIGN`]).
    pub(crate) fn new(slots: usize, slot_bytes: usize) -> std::io::Result<Staging> {
        let slots = slots.max(1);
        let slot_bytes = slot_bytes.max(1).div_ceil(ALIGN).saturating_mul(ALIGN);
        let total = slots.checked_mul(slot_bytes).ok_or_else(|| {
            std::io::Error::other(format!("{slots} staging slots of {slot_bytes} bytes overflow"))
        })?;
        let mut map = MmapMut::map_anon(total)?;
        // Huge pages where the kernel gives them (before first touch): fewer faults and TLB
        // misses for the copies into slots.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        let base =
            NonNull::new(map.as_mut_ptr()).ok_or_else(|| std::io::Error::other("the mapping is null"))?;
        let inner = Inner {
            lock: Mutex::new(None),
            _map: map,
            base,
            slot_bytes,
            slots,
            free: Mutex::new((0..slots).rev().collect()),
        };
        Ok(Staging { inner: Arc::new(inner) })
    }

    /// The whole mapping: `(start, length)`, for registering it with io_uring.
    pub(crate) fn region(&self) -> (NonNull<u8>, usize) {
        (self.inner.base, self.inner.slots * self.inner.slot_bytes)
    }

    /// Keeps `lock` (of this mapping) until the memory is unmapped.
    pub(crate) fn hold(&self, lock: crate::cuda::PageLock) {
        *self.inner.lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(lock);
    }

    /// Slots free now.
    pub(crate) fn free_slots(&self) -> usize {
        self.inner.free.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// A free slot, if there is one now.
    pub(crate) fn try_take(&self) -> Option<Slot> {
        let index = self.inner.free.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
        Some(Slot { inner: self.inner.clone(), index, filled: 0 })
    }
}

/// One slot of staging memory, lent out. Dropping the last holder returns it.
pub(crate) struct Slot {
    inner: Arc<Inner>,
    index: usize,
    /// Bytes a completed read put at its start.
    filled: usize,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("index", &self.index).field("filled", &self.filled).finish()
    }
}

impl Slot {
    /// Where reads into this slot go.
    pub(crate) fn ptr(&self) -> NonNull<u8> {
        // SAFETY: `index < slots`, so the offset stays inside the mapping.
        unsafe { self.inner.base.add(self.index * self.inner.slot_bytes) }
    }

    /// Its size.
    pub(crate) fn capacity(&self) -> usize {
        self.inner.slot_bytes
    }

    /// Records that a read completed with `bytes` at the slot's start.
    pub(crate) fn set_filled(&mut self, bytes: usize) {
        self.filled = bytes.min(self.capacity());
    }

    /// The bytes a completed read left, as an Arrow buffer that keeps the slot lent out for
    /// as long as any array built over it lives: `range` within the filled bytes.
    pub(crate) fn into_buffer(self, range: std::ops::Range<usize>) -> Option<arrow_buffer::Buffer> {
        if range.start > range.end || range.end > self.filled {
            return None;
        }
        // SAFETY: `range` lies within the slot's filled bytes (checked), which the completed
        // read wrote and nothing writes again while this slot is lent out; the buffer holds the
        // slot (through `owner`) so the memory stays valid and unreused until it is dropped.
        let start = unsafe { self.ptr().add(range.start) };
        let len = range.len();
        // SAFETY: `start` is valid for `len` bytes, per the above.
        Some(unsafe { arrow_buffer::Buffer::from_custom_allocation(start, len, Arc::new(self)) })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.inner.free.lock().unwrap_or_else(|p| p.into_inner()).push(self.index);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    #[test]
    fn slots_come_back_when_the_last_buffer_over_them_drops() {
        let staging = Staging::new(2, 100).unwrap();
        assert_eq!(staging.region().1, 2 * ALIGN);
        let mut a = staging.try_take().unwrap();
        let b = staging.try_take().unwrap();
        assert!(staging.try_take().is_none());
        assert_ne!(a.ptr(), b.ptr());
        assert_eq!(a.ptr().as_ptr() as usize % ALIGN, 0);
        // SAFETY: the slot is ours and ALIGN bytes long.
        unsafe { std::ptr::write_bytes(a.ptr().as_ptr(), 7, 10) };
        a.set_filled(10);
        assert!(a.capacity() >= 10);
        let buf = a.into_buffer(2..6).unwrap();
        assert_eq!(buf.as_slice(), &[7, 7, 7, 7]);
        let copy = buf.clone();
        drop(buf);
        assert!(staging.try_take().is_none(), "a clone still holds the slot");
        drop(copy);
        let c = staging.try_take().unwrap();
        drop((b, c));
        let mut d = staging.try_take().unwrap();
        d.set_filled(4);
        assert!(d.into_buffer(2..8).is_none(), "beyond the filled bytes");
    }
}
