//! Sleeping until a ring has something, without lost wake-ups.
//!
//! A sleeper registers (`sleepers += 1`), then checks its condition; a waker publishes,
//! then reads `sleepers`. Both sides put a `SeqCst` fence between their write and their
//! read, so at least one of them sees the other: either the sleeper sees the published
//! item and does not sleep, or the waker sees the sleeper and rings. The epoch under the
//! mutex turns a ring that lands between the check and the wait into "do not wait".

use std::sync::atomic::Ordering::SeqCst;

use crate::sync::{fence, AtomicUsize, Condvar, Mutex};

/// A condition variable for "a ring changed", cheap to ring when nobody sleeps.
#[derive(Debug, Default)]
pub(crate) struct Doorbell {
    sleepers: AtomicUsize,
    epoch: Mutex<u64>,
    cv: Condvar,
}

impl Doorbell {
    pub(crate) fn new() -> Doorbell {
        Doorbell { sleepers: AtomicUsize::new(0), epoch: Mutex::new(0), cv: Condvar::new() }
    }

    /// Blocks until `ready()` holds or the bell rings (callers re-check after waking).
    pub(crate) fn sleep_unless(&self, ready: impl Fn() -> bool) {
        let mut epoch = self.epoch.lock();
        let start = *epoch;
        self.sleepers.fetch_add(1, SeqCst);
        fence(SeqCst);
        if !ready() {
            while *epoch == start {
                self.cv.wait(&mut epoch);
            }
        }
        self.sleepers.fetch_sub(1, SeqCst);
    }

    /// Wakes one sleeper (`all`: every sleeper) if any is registered. Call after publishing.
    pub(crate) fn ring(&self, all: bool) {
        fence(SeqCst);
        if self.sleepers.load(SeqCst) > 0 {
            self.ring_always(all);
        }
    }

    /// Wakes sleepers unconditionally (shutdown).
    pub(crate) fn ring_always(&self, all: bool) {
        let mut epoch = self.epoch.lock();
        *epoch = epoch.wrapping_add(1);
        drop(epoch);
        if all {
            self.cv.notify_all();
        } else {
            self.cv.notify_one();
        }
    }
}
