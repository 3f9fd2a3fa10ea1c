//! Tickets: one per submitted job, resolved exactly once.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::task::{Context, Poll, Waker};
use std::thread::Thread;

use meridian_kernels::interp::Stop;

use super::{CancelToken, JobError, JobResult};

#[derive(Debug, Default)]
enum Waiter {
    #[default]
    None,
    Thread(Thread),
    Task(Waker),
}

#[derive(Debug, Default)]
struct Slot {
    result: Option<Result<JobResult, JobError>>,
    taken: bool,
    waiter: Waiter,
}

/// An executor a thread waiting on one of its tickets can lend itself to, rather than spin
/// or sleep while workers run the job: on a machine with fewer cores than busy threads, a
/// spinning waiter takes a core from the worker it waits for.
pub(crate) trait Help: Send + Sync + std::fmt::Debug {
    /// Claims and runs one queued chunk (of whichever job is first on the queue); false when
    /// none was queued.
    fn help_one(&self) -> bool;
}

/// The shared side of a ticket, held by the job until it resolves.
#[derive(Debug)]
pub(crate) struct TicketCell {
    done: AtomicBool,
    /// Chunks of this job queued and not yet claimed by any thread (counted up before they
    /// are queued, down as they are claimed: it may dip below zero for a moment). A waiter
    /// helps only while it is positive, so it runs no chunk queued after its own job's
    /// last, which would only delay it.
    unclaimed: AtomicIsize,
    slot: Mutex<Slot>,
    /// The job's stop signal: its ticket's [`Ticket::cancel`], its deadline, a caller's token.
    pub(crate) stop: Arc<Stop>,
}

impl Default for TicketCell {
    fn default() -> TicketCell {
        TicketCell::new(Arc::new(Stop::new(None, None)))
    }
}

impl TicketCell {
    pub(crate) fn new(stop: Arc<Stop>) -> TicketCell {
        TicketCell {
            done: AtomicBool::new(false),
            unclaimed: AtomicIsize::new(0),
            slot: Mutex::new(Slot::default()),
            stop,
        }
    }

    fn slot(&self) -> parking_lot::MutexGuard<'_, Slot> {
        self.slot.lock()
    }

    /// Stores the outcome and wakes whoever waits. The first call wins; later calls are
    /// ignored and return false (a ticket resolves exactly once).
    pub(crate) fn resolve(&self, result: Result<JobResult, JobError>) -> bool {
        let mut slot = self.slot();
        if self.done.load(Ordering::Relaxed) {
            return false;
        }
        slot.result = Some(result);
        self.done.store(true, Ordering::Release);
        let waiter = std::mem::take(&mut slot.waiter);
        drop(slot);
        match waiter {
            Waiter::None => {}
            Waiter::Thread(t) => t.unpark(),
            Waiter::Task(w) => w.wake(),
        }
        true
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// `n` more chunks of the job are about to be queued (negative: taken back, or claimed).
    pub(crate) fn queued(&self, n: isize) {
        self.unclaimed.fetch_add(n, Ordering::Relaxed);
    }

    /// Whether some chunk of the job is queued and unclaimed.
    fn has_unclaimed(&self) -> bool {
        self.unclaimed.load(Ordering::Relaxed) > 0
    }
}

/// The handle of a submitted job. Resolves exactly once — done, failed or cancelled —
/// including when the engine shuts down.
///
/// Wait for it with [`Ticket::wait`] (blocking), poll it with [`Ticket::try_result`], or
/// `.await` it: `Ticket` is a [`Future`], woken by the executor itself, so no async runtime
/// is needed by the engine.
#[derive(Debug)]
#[must_use = "a ticket is the only way to the job's result"]
pub struct Ticket {
    pub(crate) cell: Arc<TicketCell>,
    pub(crate) spin: u32,
    /// After the counted spin, keep spinning until this long has passed since `wait` began
    /// (GPU jobs: a parked waiter costs a futex wake-up, about as long as the device's whole
    /// round trip).
    pub(crate) spin_for: std::time::Duration,
    /// The executor the job is queued on, when a waiter may run its chunks ([`Help`]).
    pub(crate) helper: Option<Arc<dyn Help>>,
}

impl Ticket {
    /// Stops the job: whatever runs its rows stops at its next chunk or candidate-loop check
    /// (the CPU's workers and JIT code, the GPU's blocks), and the ticket resolves as
    /// [`JobError::Cancelled`] — unless the job has already finished, when it keeps its
    /// result. The engine is ready for the next job.
    pub fn cancel(&self) {
        self.cell.stop.cancel();
    }

    /// A token that stops this job when cancelled, for another thread (`wait` takes the
    /// ticket). It is the job's own signal, deadline included: given to another job with
    /// [`Job::cancel_with`](crate::Job::cancel_with), that job stops when this one's deadline
    /// passes too.
    pub fn cancel_token(&self) -> CancelToken {
        CancelToken(self.cell.stop.clone())
    }

    /// True once the job has resolved.
    pub fn is_done(&self) -> bool {
        self.cell.is_done()
    }

    /// The outcome if the job has resolved, without blocking. The outcome is handed out
    /// once; afterwards this (and `wait`, and polling) gives [`JobError::ResultTaken`].
    pub fn try_result(&mut self) -> Option<Result<JobResult, JobError>> {
        if !self.cell.is_done() {
            return None;
        }
        Some(take(&mut self.cell.slot()))
    }

    /// Blocks until the job resolves. A CPU job's waiter runs queued chunks itself — the
    /// job's own and those queued before them — while any of its job's are unclaimed; then
    /// it spins briefly (a small job often finishes within microseconds) and parks.
    pub fn wait(self) -> Result<JobResult, JobError> {
        let start = std::time::Instant::now();
        let mut spun = 0;
        while !self.cell.is_done() {
            if let Some(h) = self.helper.as_ref().filter(|_| self.cell.has_unclaimed()) {
                if h.help_one() {
                    continue;
                }
            }
            if spun >= self.spin {
                break;
            }
            spun += 1;
            // A yield now and then: where threads outnumber cores, the core may be wanted by
            // the very worker running this job.
            if spun % 64 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        while !self.cell.is_done() && start.elapsed() < self.spin_for {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
        loop {
            let mut slot = self.cell.slot();
            if self.cell.is_done() {
                return take(&mut slot);
            }
            slot.waiter = Waiter::Thread(std::thread::current());
            drop(slot);
            // A resolve between the unlock and here unparks first: park returns at once.
            std::thread::park();
        }
    }
}

fn take(slot: &mut Slot) -> Result<JobResult, JobError> {
    if slot.taken {
        return Err(JobError::ResultTaken);
    }
    slot.taken = true;
    slot.result.take().unwrap_or(Err(JobError::ResultTaken))
}

impl Future for Ticket {
    type Output = Result<JobResult, JobError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.cell.slot();
        if self.cell.is_done() {
            return Poll::Ready(take(&mut slot));
        }
        match &slot.waiter {
            Waiter::Task(w) if w.will_wake(cx.waker()) => {}
            _ => slot.waiter = Waiter::Task(cx.waker().clone()),
        }
        Poll::Pending
    }
}
