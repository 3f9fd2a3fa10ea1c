//! The table of jobs in flight an executor keeps: a slot per job, found by the slot number
//! its ring entries carry, and a ring of the free slots (so that claiming one never locks).

use parking_lot::Mutex;

use crate::ring::{HeapMemory, Pop, Ring, RingError};

/// Jobs in flight by slot.
#[derive(Debug)]
pub(crate) struct JobTable<T> {
    free: Ring<u32>,
    slots: Box<[Mutex<Option<T>>]>,
}

impl<T> JobTable<T> {
    /// A table of `slots` slots, all free.
    pub(crate) fn new(slots: usize) -> Result<JobTable<T>, RingError> {
        let free = Ring::new(slots.next_power_of_two(), HeapMemory)?;
        for i in 0..slots as u32 {
            // Cannot fail: the ring has room for every slot.
            let _ = free.try_push(i);
        }
        Ok(JobTable { free, slots: (0..slots).map(|_| Mutex::new(None)).collect() })
    }

    /// Slots in the table.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Puts `job` in a free slot, or gives it back when every slot is taken.
    pub(crate) fn insert(&self, job: T) -> Result<u32, T> {
        match self.free.try_pop() {
            Pop::Item(slot) => {
                if let Some(cell) = self.slots.get(slot as usize) {
                    *cell.lock() = Some(job);
                }
                Ok(slot)
            }
            _ => Err(job),
        }
    }

    /// Takes the job out of `slot`, leaving the slot claimed (see [`JobTable::release`]).
    pub(crate) fn take(&self, slot: u32) -> Option<T> {
        self.slots.get(slot as usize)?.lock().take()
    }

    /// Takes the job out of `slot` and frees the slot.
    pub(crate) fn remove(&self, slot: u32) -> Option<T> {
        let job = self.take(slot);
        self.release(slot);
        job
    }

    /// Frees `slot` (its job taken out already).
    pub(crate) fn release(&self, slot: u32) {
        // Cannot fail: a slot is in the free ring at most once.
        let _ = self.free.try_push(slot);
    }

    /// `f` on the job in `slot` (under its lock), if there is one.
    pub(crate) fn with<R>(&self, slot: u32, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.slots.get(slot as usize)?.lock().as_mut().map(f)
    }

    /// Whether a slot is free now.
    pub(crate) fn has_free(&self) -> bool {
        self.free.has_item()
    }
}
