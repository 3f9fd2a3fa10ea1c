//! Draining the completion ring from whichever thread gets there first.

use std::sync::atomic::Ordering::SeqCst;

use super::{Pop, Ring, RingMemory};
use crate::sync::{fence, AtomicBool};

/// Lets one thread at a time drain a ring, without losing an item published by a thread
/// that found the reaper busy: the reaper checks the ring again after letting go, and the
/// publisher fences before trying, so one of the two always sees the item
/// (docs/ring-protocol.md, "Reaping").
#[derive(Debug)]
pub struct Reaper {
    busy: AtomicBool,
}

impl Default for Reaper {
    fn default() -> Self {
        Reaper::new()
    }
}

impl Reaper {
    /// A reaper nobody holds.
    pub fn new() -> Reaper {
        Reaper { busy: AtomicBool::new(false) }
    }

    /// Pops every item of `ring` into `f` unless another thread is draining it already (that
    /// thread then takes what this one published). Call after publishing.
    pub fn drain<T: Copy + Send, M: RingMemory>(&self, ring: &Ring<T, M>, mut f: impl FnMut(T)) {
        loop {
            fence(SeqCst);
            if self.busy.compare_exchange(false, true, SeqCst, SeqCst).is_err() {
                return;
            }
            while let Pop::Item(item) = ring.try_pop() {
                f(item);
            }
            self.busy.store(false, SeqCst);
            fence(SeqCst);
            if !ring.has_item() {
                return;
            }
        }
    }
}
