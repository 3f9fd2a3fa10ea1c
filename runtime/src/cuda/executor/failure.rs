//! When jobs stop early: cancels sent to the device, every job failed when the device fails,
//! and the kernel stopped (or, when it cannot be, its memory leaked rather than freed under
//! it).

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use crate::cuda::abi::{self};
use crate::cuda::device::{DeviceError, KernelState};
use crate::job::JobError;

use super::{GpuExecutor, GpuJob};

impl GpuExecutor {
    /// Tells the device to stop every job in flight whose stop signal has tripped (its ticket
    /// or token cancelled, its deadline passed): sets its slot's cancel word, once. Called by
    /// the reaper every few milliseconds while jobs are in flight.
    pub(super) fn send_cancels(&self) {
        for slot in 0..self.jobs.len() as u32 {
            self.jobs.with(slot, |f| {
                if !f.cancel_sent && f.job.ticket.stop.check().is_some() {
                    // Under the slot's lock: the job is still this slot's, and its slot cannot
                    // be given to another job until it is reaped, which clears the word first
                    // (`finalize`).
                    f.cancel_sent = self.set_cancel(slot, 1).is_ok();
                }
            });
        }
    }

    /// Tells the device to stop every job in flight (shutdown under the poller protocol).
    pub(super) fn cancel_all(&self) {
        for slot in 0..self.jobs.len() as u32 {
            self.jobs.with(slot, |f| {
                if !f.cancel_sent {
                    f.cancel_sent = self.set_cancel(slot, 1).is_ok();
                }
            });
        }
    }

    /// Writes slot `slot`'s cancel word in device memory.
    pub(super) fn set_cancel(&self, slot: u32, value: u32) -> Result<(), DeviceError> {
        let at = abi::DEVICE_STATE_HEADER + slot as usize * abi::SLOT_STATE_BYTES + abi::SLOT_CANCEL_OFFSET;
        self.state.write(at, &value.to_le_bytes())
    }

    /// Fails every job in flight with `why`, refuses further jobs, and stops the kernel.
    pub(super) fn fail_all(&self, why: String) {
        {
            let mut u = self.unhealthy.lock();
            if u.is_none() {
                *u = Some(why.clone());
            }
        }
        self.stop_kernel();
        for slot in 0..self.jobs.len() as u32 {
            if let Some(f) = self.take_slot(slot) {
                f.job.fail(JobError::Device(why.clone()));
            }
        }
        let pending: Vec<GpuJob> = self.pending.lock().drain(..).chain(self.lane.drain()).collect();
        for job in pending {
            self.unavailable(job, why.clone());
        }
        self.space.ring_always(true);
    }

    /// Raises `stop` and waits (bounded) for the kernel to leave; if it does not, nothing it
    /// may touch is ever freed.
    pub(super) fn stop_kernel(&self) {
        if let Ok(w) = self.control.word(abi::CONTROL_STOP) {
            w.store(1, SeqCst);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.dev.device.kernel_state() == KernelState::Running {
            if Instant::now() > deadline {
                self.dev.wedge();
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
