//! The ring protocol (DESIGN §6, `docs/ring-protocol.md`): a bounded multi-producer,
//! multi-consumer queue of fixed-size, cache-line-aligned slots with a sequence number per
//! slot (Vyukov's bounded queue), a producer claim counter, a consumer claim counter, a
//! closed flag for shutdown, and `Full` for back-pressure.
//!
//! The same type serves as the **submission ring** (host threads produce [`SubmitEntry`],
//! executors consume) and the **completion ring** (executors produce
//! [`CompletionEntry`], the host consumes). Its memory comes from a [`RingMemory`], so the
//! CUDA backend can place the identical `#[repr(C)]` layout in pinned, device-mapped host
//! memory; [`HeapMemory`] is ordinary memory for the CPU executor.
//!
//! ```
//! use meridian_runtime::ring::{HeapMemory, Pop, PushError, Ring};
//!
//! let ring: Ring<u64> = Ring::new(2, HeapMemory)?;
//! ring.try_push(7)?;
//! ring.try_push(8)?;
//! assert_eq!(ring.try_push(9), Err(PushError::Full));
//! assert_eq!(ring.try_pop(), Pop::Item(7));
//! ring.close();
//! assert_eq!(ring.try_push(9), Err(PushError::Closed));
//! assert_eq!(ring.try_pop(), Pop::Item(8)); // what was published before close still drains
//! assert_eq!(ring.try_pop(), Pop::Drained);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod entry;
#[cfg(all(test, loom))]
mod loom_tests;
mod memory;
mod reaper;

use std::alloc::Layout;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

pub use entry::{CompletionEntry, JobStatus, SubmitEntry};
pub use memory::{HeapMemory, RingMemory};
pub use reaper::Reaper;

use crate::sync::{spin_hint, AtomicU32, AtomicU64, UnsafeCell};

/// One cache line, so that counters written by different sides never share one.
#[repr(C, align(64))]
#[derive(Debug)]
struct Line<T>(T);

/// The shared header at the start of a ring's memory.
#[repr(C)]
#[derive(Debug)]
pub struct RingHeader {
    /// Producers' claim counter: the next position to fill.
    tail: Line<AtomicU64>,
    /// Consumers' claim counter: the next position to take.
    head: Line<AtomicU64>,
    /// Non-zero once the ring is closed to producers.
    closed: Line<AtomicU32>,
    /// Producers inside a push (host side only): consumers may not report the ring drained
    /// while one is, or an item published just after `close` could be stranded.
    producers: Line<AtomicU32>,
}

/// A slot: the sequence number and the payload, on their own cache line.
///
/// For position `p` of slot `p % capacity`: `seq == p` means free for the producer of `p`;
/// `seq == p + 1` means published, readable by the consumer of `p`; the consumer frees it
/// for the next lap with `seq = p + capacity`.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct Slot<T> {
    seq: AtomicU64,
    value: UnsafeCell<MaybeUninit<T>>,
}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<RingHeader>() == 256);
    assert!(offset_of!(RingHeader, tail) == 0);
    assert!(offset_of!(RingHeader, head) == 64);
    assert!(offset_of!(RingHeader, closed) == 128);
    assert!(offset_of!(RingHeader, producers) == 192);
    assert!(size_of::<Slot<SubmitEntry>>() == 64 && align_of::<Slot<SubmitEntry>>() == 64);
    assert!(offset_of!(Slot<SubmitEntry>, seq) == 0);
    assert!(offset_of!(Slot<SubmitEntry>, value) == 8);
    assert!(size_of::<Slot<CompletionEntry>>() == 64);
    assert!(offset_of!(Slot<CompletionEntry>, value) == 8);
};

/// Why a ring could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// Capacity must be a power of two from 2 to 2^24.
    #[error("ring capacity {0} is not a power of two from 2 to 16777216")]
    Capacity(usize),
    /// The memory provider had none.
    #[error("could not allocate {0} bytes of ring memory")]
    Alloc(usize),
}

/// Why a push failed; nothing was published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// Not enough free slots (back-pressure: try again after consumers catch up).
    #[error("the ring is full")]
    Full,
    /// The ring was closed.
    #[error("the ring is closed")]
    Closed,
}

/// What a pop found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pop<T> {
    /// The oldest published item, now owned by this consumer.
    Item(T),
    /// Nothing published right now.
    Empty,
    /// Closed, empty, and no producer inside a push: nothing will ever arrive.
    Drained,
}

/// A bounded MPMC ring of `T` in memory from `M`. See the [module docs](self).
pub struct Ring<T: Copy + Send, M: RingMemory = HeapMemory> {
    base: NonNull<u8>,
    layout: Layout,
    slots_offset: usize,
    capacity: u64,
    mask: u64,
    memory: M,
    _items: PhantomData<T>,
}

// SAFETY: the ring hands each `T` from exactly one producer to exactly one consumer through
// the slot protocol (release/acquire on `seq`), and all shared state is atomics; `T: Send`
// is what moving items between threads needs. `M: RingMemory` is `Send + Sync`.
unsafe impl<T: Copy + Send, M: RingMemory> Send for Ring<T, M> {}
// SAFETY: as above; every `&self` method is safe to call concurrently.
unsafe impl<T: Copy + Send, M: RingMemory> Sync for Ring<T, M> {}

impl<T: Copy + Send, M: RingMemory> std::fmt::Debug for Ring<T, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring").field("capacity", &self.capacity).field("closed", &self.is_closed()).finish()
    }
}

impl<T: Copy + Send, M: RingMemory> Ring<T, M> {
    /// A ring of `capacity` slots (a power of two, at least 2) in memory from `memory`.
    pub fn new(capacity: usize, memory: M) -> Result<Ring<T, M>, RingError> {
        if !capacity.is_power_of_two() || !(2..=1 << 24).contains(&capacity) {
            return Err(RingError::Capacity(capacity));
        }
        let (layout, slots_offset) = Layout::new::<RingHeader>()
            .extend(Layout::array::<Slot<T>>(capacity).map_err(|_| RingError::Capacity(capacity))?)
            .map_err(|_| RingError::Capacity(capacity))?;
        let base = memory.allocate(layout).ok_or(RingError::Alloc(layout.size()))?;
        let ring = Ring {
            base,
            layout,
            slots_offset,
            capacity: capacity as u64,
            mask: capacity as u64 - 1,
            memory,
            _items: PhantomData,
        };
        // SAFETY: `base` is valid for writes of `layout` (the RingMemory contract), aligned
        // for the header at offset 0 and for the slots at `slots_offset` (from
        // `Layout::extend`), and nothing else refers to it yet.
        unsafe {
            let header = RingHeader {
                tail: Line(AtomicU64::new(0)),
                head: Line(AtomicU64::new(0)),
                closed: Line(AtomicU32::new(0)),
                producers: Line(AtomicU32::new(0)),
            };
            base.as_ptr().cast::<RingHeader>().write(header);
            let slots = base.as_ptr().add(slots_offset).cast::<Slot<T>>();
            for i in 0..capacity {
                slots.add(i).write(Slot {
                    seq: AtomicU64::new(i as u64),
                    value: UnsafeCell::new(MaybeUninit::uninit()),
                });
            }
        }
        Ok(ring)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The ring's memory: header at offset 0, slots from [`Ring::slots_offset`]. For a
    /// device backend that maps the same bytes.
    pub fn as_ptr(&self) -> *const u8 {
        self.base.as_ptr()
    }

    /// Byte offset of slot 0 from [`Ring::as_ptr`].
    pub fn slots_offset(&self) -> usize {
        self.slots_offset
    }

    /// The provider of this ring's memory.
    pub fn memory(&self) -> &M {
        &self.memory
    }

    #[inline(always)]
    fn header(&self) -> &RingHeader {
        // SAFETY: the header was written in `new` and lives until `drop`.
        unsafe { &*self.base.as_ptr().cast::<RingHeader>() }
    }

    #[inline(always)]
    fn slot(&self, pos: u64) -> &Slot<T> {
        let i = (pos & self.mask) as usize;
        // SAFETY: `i < capacity`, and slot `i` was written in `new` and lives until `drop`.
        unsafe { &*self.base.as_ptr().add(self.slots_offset).cast::<Slot<T>>().add(i) }
    }

    /// Publishes one item.
    pub fn try_push(&self, item: T) -> Result<(), PushError> {
        self.try_push_n(1, |_| item)
    }

    /// Publishes `n` items `make(0..n)` in consecutive slots, all or none: either every
    /// slot was free and all are published, or nothing is (`Full` also when `n` exceeds the
    /// capacity).
    pub fn try_push_n(&self, n: usize, make: impl FnMut(usize) -> T) -> Result<(), PushError> {
        let h = self.header();
        h.producers.0.fetch_add(1, SeqCst);
        // `closed` is only ever read and written by read-modify-writes, so this read takes
        // part in a release sequence with `close`: a consumer that sees the ring closed also
        // sees this producer registered, or this producer sees the ring closed
        // (docs/ring-protocol.md, "Shutdown").
        let closed = h.closed.0.fetch_or(0, AcqRel) != 0;
        let result = if closed { Err(PushError::Closed) } else { self.claim_and_fill(n, make) };
        h.producers.0.fetch_sub(1, SeqCst);
        result
    }

    fn claim_and_fill(&self, n: usize, mut make: impl FnMut(usize) -> T) -> Result<(), PushError> {
        let n = n as u64;
        if n == 0 {
            return Ok(());
        }
        if n > self.capacity {
            return Err(PushError::Full);
        }
        let tail = &self.header().tail.0;
        let mut pos = tail.load(Relaxed);
        'claim: loop {
            // A slot seen free for its position stays free until someone claims that
            // position, which needs `tail` to pass it: the CAS below fails if anyone did.
            for i in 0..n {
                let seq = self.slot(pos + i).seq.load(Acquire);
                let diff = seq.wrapping_sub(pos + i) as i64;
                if diff < 0 {
                    return Err(PushError::Full);
                }
                if diff > 0 {
                    // Another producer claimed this position already: start again from now.
                    pos = tail.load(Relaxed);
                    spin_hint();
                    continue 'claim;
                }
            }
            match tail.compare_exchange_weak(pos, pos + n, Relaxed, Relaxed) {
                Ok(_) => break,
                Err(now) => {
                    pos = now;
                    spin_hint();
                }
            }
        }
        for i in 0..n {
            let slot = self.slot(pos + i);
            let item = make(i as usize);
            // SAFETY: this producer claimed position `pos + i` (the CAS), so it is the only
            // writer of the slot until it publishes; no consumer reads before `seq` says so.
            slot.value.with_mut(|v| unsafe { (*v).write(item) });
            slot.seq.store(pos + i + 1, Release);
        }
        Ok(())
    }

    /// Frees the slots of positions `[from, upto)` for the producers' next lap, on behalf of a
    /// consumer that takes items without this ring's own claim (a device that reports the
    /// positions it took instead of writing each slot back). A position not published (yet, or
    /// any more) is left as it is.
    pub fn release_taken(&self, from: u64, upto: u64) {
        for pos in from..upto.min(from.saturating_add(self.capacity)) {
            let _ = self.slot(pos).seq.compare_exchange(pos + 1, pos + self.capacity, Release, Relaxed);
        }
    }

    /// Takes the oldest published item.
    pub fn try_pop(&self) -> Pop<T> {
        let h = self.header();
        let mut pos = h.head.0.load(Relaxed);
        loop {
            let slot = self.slot(pos);
            let seq = slot.seq.load(Acquire);
            let diff = seq.wrapping_sub(pos + 1) as i64;
            if diff == 0 {
                match h.head.0.compare_exchange_weak(pos, pos + 1, Relaxed, Relaxed) {
                    Ok(_) => {
                        // SAFETY: the acquire load of `seq == pos + 1` saw the producer's
                        // release after its write, and the CAS made this the only consumer
                        // of position `pos`.
                        let item = slot.value.with(|v| unsafe { (*v).assume_init_read() });
                        slot.seq.store(pos + self.capacity, Release);
                        return Pop::Item(item);
                    }
                    Err(now) => pos = now,
                }
            } else if diff < 0 {
                // Empty at `pos`. Drained only if closed with no producer mid-push (read
                // with read-modify-writes, see `try_push_n`); the slot is checked again
                // after, since a producer that just left published before leaving.
                if h.closed.0.fetch_or(0, AcqRel) != 0 && h.producers.0.fetch_add(0, AcqRel) == 0 {
                    let again = self.slot(pos).seq.load(Acquire);
                    if again.wrapping_sub(pos + 1) as i64 >= 0 {
                        pos = h.head.0.load(Relaxed);
                        continue;
                    }
                    return Pop::Drained;
                }
                return Pop::Empty;
            } else {
                pos = h.head.0.load(Relaxed);
            }
            spin_hint();
        }
    }

    /// True when the next position holds a published item (a hint; another consumer may
    /// take it first).
    pub fn has_item(&self) -> bool {
        let pos = self.header().head.0.load(SeqCst);
        self.slot(pos).seq.load(SeqCst) == pos + 1
    }

    /// True when the next `n` positions are free for producers right now (a hint: others may
    /// claim them first). Unlike [`Ring::len`] this reads the slots themselves, so it holds
    /// whoever consumes — also a device that claims positions with a counter of its own.
    pub fn has_room(&self, n: usize) -> bool {
        if n as u64 > self.capacity {
            return false;
        }
        let tail = self.header().tail.0.load(SeqCst);
        (0..n as u64).all(|i| self.slot(tail + i).seq.load(SeqCst) == tail + i)
    }

    /// Items published and not yet taken (approximate while others run).
    pub fn len(&self) -> usize {
        let h = self.header();
        let (head, tail) = (h.head.0.load(SeqCst), h.tail.0.load(SeqCst));
        tail.saturating_sub(head) as usize
    }

    /// True when [`Ring::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the ring to producers. Items already published still drain; after that
    /// consumers see [`Pop::Drained`].
    pub fn close(&self) {
        self.header().closed.0.fetch_or(1, AcqRel);
    }

    /// True once [`Ring::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.header().closed.0.load(Acquire) != 0
    }
}

impl<T: Copy + Send, M: RingMemory> Drop for Ring<T, M> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no other reference to the memory exists; the header and
        // every slot were initialised in `new`; the payloads are `Copy` (nothing to drop),
        // and the memory goes back with the layout it was allocated with.
        unsafe {
            let slots = self.base.as_ptr().add(self.slots_offset).cast::<Slot<T>>();
            for i in 0..self.capacity as usize {
                std::ptr::drop_in_place(slots.add(i));
            }
            std::ptr::drop_in_place(self.base.as_ptr().cast::<RingHeader>());
            self.memory.deallocate(self.base, self.layout);
        }
    }
}
