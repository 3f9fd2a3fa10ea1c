//! Sleeping until a ring has something, without lost wake-ups — for threads, and for async
//! tasks that must not block the thread they run on.
//!
//! A sleeper registers (`sleepers += 1`), then checks its condition; a waker publishes,
//! then reads `sleepers`. Both sides put a `SeqCst` fence between their write and their
//! read, so at least one of them sees the other: either the sleeper sees the published
//! item and does not sleep, or the waker sees the sleeper and rings. The epoch under the
//! mutex turns a ring that lands between the check and the wait into "do not wait". A task
//! registers its [`Waker`] the same way ([`Doorbell::register`]) and then checks; a ring
//! wakes every registered task (each polls again and registers again if it must still wait).

use std::sync::atomic::Ordering::SeqCst;
use std::task::Waker;

use crate::sync::{fence, AtomicUsize, Condvar, Mutex};

/// A condition variable for "a ring changed", cheap to ring when nobody sleeps.
#[derive(Debug, Default)]
pub(crate) struct Doorbell {
    /// Threads in [`Doorbell::sleep_unless`] and tasks registered, not yet woken.
    sleepers: AtomicUsize,
    bell: Mutex<Bell>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct Bell {
    epoch: u64,
    tasks: Vec<Waker>,
}

impl Doorbell {
    pub(crate) fn new() -> Doorbell {
        Doorbell::default()
    }

    /// Blocks until `ready()` holds or the bell rings (callers re-check after waking).
    pub(crate) fn sleep_unless(&self, ready: impl Fn() -> bool) {
        let mut bell = self.bell.lock();
        let start = bell.epoch;
        self.sleepers.fetch_add(1, SeqCst);
        fence(SeqCst);
        if !ready() {
            while bell.epoch == start {
                self.cv.wait(&mut bell);
            }
        }
        self.sleepers.fetch_sub(1, SeqCst);
    }

    /// Registers a task to wake at the next ring. The caller checks its condition after
    /// this returns (not before): a change published before the check is seen by it, one
    /// after rings the task.
    pub(crate) fn register(&self, task: &Waker) {
        let mut bell = self.bell.lock();
        if !bell.tasks.iter().any(|w| w.will_wake(task)) {
            bell.tasks.push(task.clone());
            self.sleepers.fetch_add(1, SeqCst);
        }
        drop(bell);
        fence(SeqCst);
    }

    /// Wakes one sleeping thread (`all`: every one) and every registered task, if any is
    /// registered. Call after publishing.
    pub(crate) fn ring(&self, all: bool) {
        fence(SeqCst);
        if self.sleepers.load(SeqCst) > 0 {
            self.ring_always(all);
        }
    }

    /// Wakes sleepers unconditionally (shutdown).
    pub(crate) fn ring_always(&self, all: bool) {
        let mut bell = self.bell.lock();
        bell.epoch = bell.epoch.wrapping_add(1);
        let tasks = std::mem::take(&mut bell.tasks);
        self.sleepers.fetch_sub(tasks.len(), SeqCst);
        drop(bell);
        for task in tasks {
            task.wake();
        }
        if all {
            self.cv.notify_all();
        } else {
            self.cv.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::task::Wake;

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, SeqCst);
        }
    }

    #[test]
    fn a_registered_task_is_woken_once_by_the_next_ring() {
        let bell = Doorbell::new();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        bell.register(&waker);
        // The same task registered twice is woken once and counted once.
        bell.register(&waker);
        assert_eq!(bell.sleepers.load(SeqCst), 1);
        bell.ring(false);
        assert!(flag.0.load(SeqCst));
        assert_eq!(bell.sleepers.load(SeqCst), 0);
        flag.0.store(false, SeqCst);
        // Woken tasks are forgotten: a later ring finds no one and does nothing.
        bell.ring(true);
        assert!(!flag.0.load(SeqCst));
    }
}
