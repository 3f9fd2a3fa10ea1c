//! The device heap: memory reserved when the megakernel is launched and handed out in pieces
//! after.
//!
//! A resident kernel may only be handed memory that existed when it was launched:
//! compute-sanitizer's memcheck flags a running kernel's reads of anything allocated after
//! its launch (the device evidence of 2026-11-27: the first read of every uploaded program),
//! while a per-job launch of the same upload is clean. So a device reserves one allocation
//! just before it launches the megakernel and serves the executor's later allocations from
//! it ([`DeviceHeap`]); only what does not fit goes to the device's allocator, and is counted.
//!
//! [`Heap`] is the bookkeeping alone, offsets in `[0, len)`: best fit over a free list that
//! coalesces neighbours, every block [`Heap::ALIGN`]-aligned (as `cuMemAlloc`'s are, which
//! the kernels' vector loads rely on).

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Offsets into a range of `len` bytes, taken and given back.
#[derive(Debug)]
pub struct Heap {
    len: u64,
    /// Free blocks: offset → length, and the same as (length, offset) for best fit.
    free: BTreeMap<u64, u64>,
    by_size: BTreeSet<(u64, u64)>,
    /// Blocks handed out: offset → length (rounded up).
    taken: HashMap<u64, u64>,
    used: u64,
    peak: u64,
}

impl Heap {
    /// Every block's offset and length are multiples of this.
    pub const ALIGN: u64 = 256;

    /// A heap over `len` bytes (rounded down to [`Heap::ALIGN`]), all free.
    pub fn new(len: u64) -> Heap {
        let len = len - len % Heap::ALIGN;
        let mut heap = Heap {
            len,
            free: BTreeMap::new(),
            by_size: BTreeSet::new(),
            taken: HashMap::new(),
            used: 0,
            peak: 0,
        };
        if len > 0 {
            heap.insert_free(0, len);
        }
        heap
    }

    /// The offset of a free block of at least `len` bytes (at least one), now taken; `None`
    /// when no free block is that large.
    pub fn take(&mut self, len: u64) -> Option<u64> {
        let len = len.max(1).checked_next_multiple_of(Heap::ALIGN)?;
        let &(size, offset) = self.by_size.range((len, 0)..).next()?;
        self.remove_free(offset, size);
        if size > len {
            self.insert_free(offset + len, size - len);
        }
        self.taken.insert(offset, len);
        self.used += len;
        self.peak = self.peak.max(self.used);
        Some(offset)
    }

    /// Gives back the block taken at `offset`; its length, or `None` (and nothing changes)
    /// when no block was taken there.
    pub fn give(&mut self, offset: u64) -> Option<u64> {
        let len = self.taken.remove(&offset)?;
        self.used -= len;
        let (mut start, mut end) = (offset, offset + len);
        if let Some((&before, &size)) = self.free.range(..offset).next_back() {
            if before + size == offset {
                self.remove_free(before, size);
                start = before;
            }
        }
        if let Some(&size) = self.free.get(&end) {
            self.remove_free(end, size);
            end += size;
        }
        self.insert_free(start, end - start);
        Some(len)
    }

    /// Whether a block was taken at `offset` and not given back.
    pub fn holds(&self, offset: u64) -> bool {
        self.taken.contains_key(&offset)
    }

    /// Bytes managed.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it manages nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes taken now, and the most taken at once.
    pub fn used(&self) -> (u64, u64) {
        (self.used, self.peak)
    }

    /// The largest block that could be taken now.
    pub fn largest_free(&self) -> u64 {
        self.by_size.last().map_or(0, |&(size, _)| size)
    }

    fn insert_free(&mut self, offset: u64, len: u64) {
        self.free.insert(offset, len);
        self.by_size.insert((len, offset));
    }

    fn remove_free(&mut self, offset: u64, len: u64) {
        self.free.remove(&offset);
        self.by_size.remove(&(len, offset));
    }
}

/// A device's heap: the allocation reserved at the megakernel's launch (at device address
/// `base`), what of it is handed out, and how many allocations since did not fit and went
/// to the device's allocator instead (each one memory the resident kernel may read that
/// memcheck does not accept).
#[derive(Debug)]
pub struct DeviceHeap {
    base: u64,
    heap: Heap,
    outside: u64,
}

impl DeviceHeap {
    /// A heap over the `len` bytes at device address `base` (`base` aligned to
    /// [`Heap::ALIGN`], as every device allocation is).
    pub fn new(base: u64, len: u64) -> DeviceHeap {
        DeviceHeap { base, heap: Heap::new(len), outside: 0 }
    }

    /// The device address of a fresh block of `len` bytes, or `None` — counted as an
    /// allocation outside the heap, which the caller then makes.
    pub fn take(&mut self, len: u64) -> Option<u64> {
        match self.heap.take(len) {
            Some(offset) => Some(self.base + offset),
            None => {
                self.outside += 1;
                None
            }
        }
    }

    /// Gives back the block at device address `ptr`: `false` when it is not one of this
    /// heap's (the caller frees it as its own).
    pub fn give(&mut self, ptr: u64) -> bool {
        ptr.checked_sub(self.base).is_some_and(|offset| self.heap.give(offset).is_some())
    }

    /// The reserved allocation's device address.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// What it holds now, for describing the device and for tests.
    pub fn usage(&self) -> HeapUsage {
        let (used, peak) = self.heap.used();
        HeapUsage { bytes: self.heap.len(), used, peak, outside: self.outside }
    }
}

/// A device heap's state ([`DeviceHeap::usage`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapUsage {
    /// Bytes reserved at the launch.
    pub bytes: u64,
    /// Bytes handed out now.
    pub used: u64,
    /// The most bytes handed out at once.
    pub peak: u64,
    /// Allocations since the launch that did not fit and were made outside it.
    pub outside: u64,
}

/// The environment variable sizing the device heap, in MiB: `0` reserves none (every
/// allocation after the launch from the stream-ordered allocator, as before 2026-12-07).
pub const HEAP_ENV: &str = "MERIDIAN_GPU_HEAP_MIB";

/// `MERIDIAN_GPU_HEAP_MIB`, in bytes (`None`: not set, the device's default).
pub fn heap_from_env() -> Result<Option<u64>, String> {
    match std::env::var(HEAP_ENV) {
        Err(_) => Ok(None),
        Ok(v) => heap_from(&v),
    }
}

/// The heap size a value of [`HEAP_ENV`] names.
pub(crate) fn heap_from(value: &str) -> Result<Option<u64>, String> {
    match value.trim() {
        "" => Ok(None),
        v => v
            .parse::<u64>()
            .ok()
            .and_then(|mib| mib.checked_mul(1 << 20))
            .map(Some)
            .ok_or_else(|| format!("{HEAP_ENV}={v}: expected a whole number of MiB (0: no heap)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn best_fit_splits_and_giving_back_coalesces() {
        let mut h = Heap::new(4096 + 100);
        assert_eq!(h.len(), 4096);
        let a = h.take(1).unwrap();
        let b = h.take(300).unwrap();
        let c = h.take(256).unwrap();
        assert_eq!((a, b, c), (0, 256, 768));
        assert_eq!(h.used(), (1024, 1024));
        assert_eq!(h.take(4096), None);
        // A hole of 512 between a and c: a block of 400 goes there, not after c.
        assert_eq!(h.give(b), Some(512));
        assert_eq!(h.give(b), None, "given once");
        assert_eq!(h.take(400), Some(256));
        assert_eq!(h.give(256), Some(512));
        assert_eq!(h.give(a), Some(256));
        assert_eq!(h.give(c), Some(256));
        assert_eq!(h.largest_free(), 4096, "everything merged back into one block");
        assert_eq!(h.used(), (0, 1024));
    }

    #[test]
    fn a_device_heap_counts_what_does_not_fit_and_knows_its_own_blocks() {
        let mut d = DeviceHeap::new(1 << 20, 1024);
        let p = d.take(1000).unwrap();
        assert_eq!(p, 1 << 20);
        assert_eq!(d.take(1), None);
        assert_eq!(d.usage(), HeapUsage { bytes: 1024, used: 1024, peak: 1024, outside: 1 });
        assert!(!d.give(5), "below the heap");
        assert!(!d.give(p + 256), "not a block's start");
        assert!(d.give(p));
        assert!(!d.give(p), "given once");
    }

    #[test]
    fn the_heap_setting_is_mib_and_refuses_anything_else() {
        assert_eq!(heap_from(""), Ok(None));
        assert_eq!(heap_from("0"), Ok(Some(0)));
        assert_eq!(heap_from("512"), Ok(Some(512 << 20)));
        assert!(heap_from("1.5").unwrap_err().contains("whole number of MiB"));
        assert!(heap_from(&u64::MAX.to_string()).is_err());
    }

    proptest! {
        /// Any sequence of takes and gives: blocks aligned, inside, disjoint; the books
        /// balance; and with everything given back the heap is one free block again.
        #[test]
        fn blocks_never_overlap_and_everything_comes_back(
            len in 0u64..64 * 1024,
            steps in proptest::collection::vec((any::<bool>(), 1u64..6000, any::<prop::sample::Index>()), 0..200),
        ) {
            let mut h = Heap::new(len);
            let mut live: BTreeMap<u64, u64> = BTreeMap::new();
            for (take, size, pick) in steps {
                if take || live.is_empty() {
                    let fits = h.largest_free() >= size.next_multiple_of(Heap::ALIGN);
                    match h.take(size) {
                        Some(at) => {
                            prop_assert!(fits);
                            let rounded = size.next_multiple_of(Heap::ALIGN);
                            prop_assert_eq!(at % Heap::ALIGN, 0);
                            prop_assert!(at + rounded <= h.len());
                            if let Some((&s, &l)) = live.range(..at).next_back() {
                                prop_assert!(s + l <= at);
                            }
                            if let Some((&s, _)) = live.range(at..).next() {
                                prop_assert!(at + rounded <= s);
                            }
                            live.insert(at, rounded);
                        }
                        None => prop_assert!(!fits),
                    }
                } else {
                    let at = *live.keys().nth(pick.index(live.len())).unwrap();
                    prop_assert_eq!(h.give(at), live.remove(&at));
                }
                prop_assert_eq!(h.used().0, live.values().sum::<u64>());
            }
            for at in live.keys() {
                prop_assert!(h.holds(*at));
                prop_assert!(h.give(*at).is_some());
            }
            prop_assert_eq!(h.largest_free(), h.len());
            prop_assert_eq!(h.used().0, 0);
        }
    }
}
