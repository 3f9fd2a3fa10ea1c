//! A job's stop signal: set by whoever owns the job (its ticket cancelled, a caller's token
//! cancelled, its deadline passed), polled by whatever runs its rows — between chunks, and
//! inside candidate loops, where one verified row can otherwise run for hours (four nested
//! loops over a thousand candidates each). A stopped job's rows end with an error the
//! executor turns into the reason the job stopped.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a job stopped before it finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Its ticket, or a token it was given, was cancelled.
    Cancelled,
    /// Its deadline passed; the duration is the time it was given.
    TimedOut(Duration),
}

const RUNNING: u8 = 0;
const CANCELLED: u8 = 1;
/// Its own deadline passed.
const TIMED_OUT: u8 = 2;
/// Its parent's deadline passed.
const PARENT_TIMED_OUT: u8 = 3;

/// One job's stop signal (shared by the job's ticket and every thread running its rows), or
/// a caller's signal that jobs are given as their parent (a token that stops them all).
#[derive(Debug)]
pub struct Stop {
    state: AtomicU8,
    /// A signal that stops this one too (a caller's token shared with other jobs).
    parent: Option<Arc<Stop>>,
    /// When the job must be done by, and the time it was given.
    deadline: Option<(Instant, Duration)>,
}

impl Stop {
    /// A signal with `timeout` from now (`None`: no deadline), stopped also when `parent` is.
    pub fn new(timeout: Option<Duration>, parent: Option<Arc<Stop>>) -> Stop {
        let deadline = timeout.map(|t| (Instant::now().checked_add(t).unwrap_or_else(far_future), t));
        Stop { state: AtomicU8::new(RUNNING), parent, deadline }
    }

    /// Asks the job to stop (a no-op once it has stopped for another reason).
    pub fn cancel(&self) {
        let _ = self.state.compare_exchange(RUNNING, CANCELLED, Relaxed, Relaxed);
    }

    /// Whether the job must stop, and why: the flags, the parent's and the clock.
    pub fn check(&self) -> Option<StopReason> {
        self.poll(true)
    }

    /// Why the job stopped, if it did (what the flags say: no clock read).
    pub fn reason(&self) -> Option<StopReason> {
        match self.state.load(Relaxed) {
            CANCELLED => Some(StopReason::Cancelled),
            TIMED_OUT => Some(StopReason::TimedOut(self.deadline.map_or(Duration::ZERO, |d| d.1))),
            PARENT_TIMED_OUT => self.parent.as_ref().and_then(|p| p.reason()),
            _ => None,
        }
    }

    /// [`Stop::check`], reading the clock only when `clock`.
    #[inline]
    pub(crate) fn poll(&self, clock: bool) -> Option<StopReason> {
        if self.state.load(Relaxed) == RUNNING {
            let next = match self.parent.as_ref().and_then(|p| p.poll(clock)) {
                Some(StopReason::Cancelled) => CANCELLED,
                Some(StopReason::TimedOut(_)) => PARENT_TIMED_OUT,
                None if clock && self.deadline.is_some_and(|(at, _)| Instant::now() >= at) => TIMED_OUT,
                None => return None,
            };
            let _ = self.state.compare_exchange(RUNNING, next, Relaxed, Relaxed);
        }
        self.reason()
    }
}

/// A deadline past any clock's reach, for timeouts too long to add to now.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// How often a loop looks at the stop flags (every this many iterations) and at the clock
/// (every [`CLOCK_POLLS`]): a flag is one load; the clock, tens of nanoseconds.
pub(crate) const FLAG_POLLS: u32 = 64;
pub(crate) const CLOCK_POLLS: u32 = 4096;

/// The message of the error a stopped job's rows end with (the executor looks at the job's
/// [`Stop`], not at this text, to say why).
pub(crate) const STOPPED: &str = "stopped: the job was cancelled or ran past its deadline";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    #[test]
    fn a_stop_says_why_and_keeps_its_first_reason() {
        let s = Stop::new(None, None);
        assert_eq!(s.check(), None);
        s.cancel();
        assert_eq!(s.check(), Some(StopReason::Cancelled));
        let t = Stop::new(Some(Duration::ZERO), None);
        assert_eq!(t.poll(false), None, "no clock read, no deadline seen");
        assert_eq!(t.check(), Some(StopReason::TimedOut(Duration::ZERO)));
        t.cancel();
        assert_eq!(t.reason(), Some(StopReason::TimedOut(Duration::ZERO)));
        let token = Arc::new(Stop::new(None, None));
        let (a, b) =
            (Stop::new(None, Some(token.clone())), Stop::new(Some(Duration::MAX), Some(token.clone())));
        assert_eq!(a.poll(false), None);
        token.cancel();
        assert_eq!(a.poll(false), Some(StopReason::Cancelled));
        assert_eq!(b.check(), Some(StopReason::Cancelled));
        // A parent's deadline stops its children, with its time.
        let run = Arc::new(Stop::new(Some(Duration::from_millis(5)), None));
        let job = Stop::new(None, Some(run));
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(job.poll(false), None, "the clock is read only when asked");
        assert_eq!(job.check(), Some(StopReason::TimedOut(Duration::from_millis(5))));
    }
}
