//! Reaping: the host thread that takes completions off the ring, reads a finished job's
//! accumulators and outputs back, runs it again with more room when its hits overflowed,
//! and resolves its ticket; and the jobs that waited for a slot.

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use meridian_bytecode::OutputKind;
use meridian_kernels::interp::ExecError;

use crate::cuda::abi::{self, Acc, ErrorRecord};
use crate::cuda::device::{DeviceError, KernelState};
use crate::cuda::outputs::{Area, Layout};
use crate::job::JobError;
use crate::ring::Pop;

use super::{GpuExecutor, GpuJob, GpuSubmitError, InFlight};

impl GpuExecutor {
    /// The reaper: drains completions, retries re-runs that found no room, watches the
    /// kernel, and sleeps when nothing is in flight.
    pub(super) fn reap_loop(&self) {
        let mut idle = 0u32;
        let mut last_progress = Instant::now();
        let mut last_check = Instant::now();
        let mut last_cancels = Instant::now();
        let mut taken = None;
        loop {
            // Stop signals first, on their own clock: completions arriving all the time must
            // not starve them.
            if last_cancels.elapsed() > Duration::from_millis(2) && self.in_flight.load(SeqCst) > 0 {
                last_cancels = Instant::now();
                self.send_cancels();
            }
            let mut progressed = false;
            while let Pop::Item(c) = self.complete.try_pop() {
                progressed = true;
                self.finalize(c);
            }
            progressed |= self.retry_pending();
            if progressed {
                idle = 0;
                last_progress = Instant::now();
                continue;
            }
            let busy = self.in_flight.load(SeqCst) > 0 || !self.pending.lock().is_empty();
            if !busy {
                if self.closing.load(SeqCst) && self.in_flight.load(SeqCst) == 0 {
                    return;
                }
                if last_progress.elapsed() < self.tuning.linger {
                    std::hint::spin_loop();
                    continue;
                }
                self.work.sleep_unless(|| {
                    self.in_flight.load(SeqCst) > 0
                        || self.closing.load(SeqCst)
                        || !self.pending.lock().is_empty()
                });
                // Idle time is not a hang: the watchdog starts counting now.
                idle = 0;
                last_progress = Instant::now();
                last_check = Instant::now();
                taken = self.chunks_taken();
                continue;
            }
            if last_check.elapsed() > Duration::from_millis(2) {
                last_check = Instant::now();
                match self.dev.device.kernel_state() {
                    KernelState::Running => {}
                    KernelState::Failed(e) => self.fail_all(format!("the device reported an error: {e}")),
                    KernelState::Exited | KernelState::NotLaunched => {
                        self.fail_all("the megakernel is not running".into())
                    }
                }
                let now_taken = self.chunks_taken();
                if now_taken != taken {
                    taken = now_taken;
                    last_progress = Instant::now();
                }
                if last_progress.elapsed() > self.tuning.timeout {
                    self.fail_all(format!(
                        "watchdog: {} job(s) in flight and no chunk taken or job finished for {:?}",
                        self.in_flight.load(SeqCst),
                        self.tuning.timeout
                    ));
                    last_progress = Instant::now();
                }
            }
            idle += 1;
            if idle < 4096 {
                std::hint::spin_loop();
            } else if idle < 4096 + 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// Resubmits re-runs that found no room; true when one went out.
    pub(super) fn retry_pending(&self) -> bool {
        let mut any = false;
        loop {
            let Some(job) = self.pending.lock().pop_front() else { return any };
            match self.submit_job(job) {
                Ok(()) => any = true,
                Err(GpuSubmitError::Full(job)) => {
                    self.pending.lock().push_front(job);
                    return any;
                }
                Err(GpuSubmitError::Closed(job)) => {
                    job.fail(JobError::stopped(None));
                }
                Err(GpuSubmitError::Unavailable(job, why)) => self.unavailable(job, why),
            }
        }
    }

    pub(super) fn finalize(&self, c: abi::RingComplete) {
        if self.protocol == abi::PROTOCOL_POLLER {
            // The device does not free the submission slots it takes: every position before
            // the one it had taken when this job completed is free for the next lap.
            let from = self.freed.load(SeqCst);
            if c.taken > from {
                self.submit.release_taken(from, c.taken);
                self.freed.store(c.taken, SeqCst);
                self.space.ring(true);
            }
        }
        let Some(f) = self.take_slot(c.job) else { return };
        // A slot whose job was told to stop is cleared before it is given back (the state
        // starts zeroed, so only these need it, and a submission pays no copy for it).
        if f.cancel_sent {
            if let Err(e) = self.set_cancel(c.job, 0) {
                return self.fail_all(format!("clearing a job slot's cancel word: {e}"));
            }
        }
        let record = c.job as usize * abi::JOB_RECORD_BYTES;
        let InFlight { job, layout, mut area, pushed, .. } = f;
        let acc: Result<Vec<Acc>, DeviceError> = if area.complete_row(bytemuck::cast_ref(&c.first)) {
            // The row's outputs were in the completion; f64 and bool outputs have no
            // accumulators.
            Ok(vec![Acc::default(); layout.kinds.len()])
        } else {
            let first_inline = self.protocol == abi::PROTOCOL_POLLER;
            (0..layout.kinds.len())
                .map(|o| match o {
                    0 if first_inline => Ok(c.first),
                    _ => self.records.get::<Acc>(record + abi::JOB_RESULTS_OFFSET + abi::ACC_BYTES * o),
                })
                .collect()
        };
        let error: Result<ErrorRecord, DeviceError> = self.records.get(record + abi::JOB_ERROR_OFFSET);
        self.conclude(job, layout, area, (c.status, acc, error), pushed, Some(c.job));
    }

    /// Resolves a job the device has finished (`status`, its accumulators and its error
    /// record): its results, or a re-run with room for the hits it found; `slot` (a
    /// megakernel job's) is given back.
    pub(super) fn conclude(
        &self,
        job: GpuJob,
        layout: Layout,
        area: Area,
        (status, acc, error): (u32, Result<Vec<Acc>, DeviceError>, Result<ErrorRecord, DeviceError>),
        pushed: Instant,
        slot: Option<u32>,
    ) {
        let release = |exec: &GpuExecutor| {
            if let Some(s) = slot {
                exec.release(s);
            }
        };
        let outcome = match (status, acc) {
            (_, Err(e)) => Err(JobError::Device(e.to_string())),
            (abi::STATUS_DONE, Ok(acc)) => {
                let hits: u64 = layout
                    .kinds
                    .iter()
                    .zip(&acc)
                    .filter(|(k, _)| **k == OutputKind::Hits)
                    .map(|(_, a)| a.cursor)
                    .sum();
                job.prepared.note_hits(job.rows.len(), hits);
                if let Some(words) = Area::overflow(&layout, &acc, OutputKind::Geometry) {
                    // Geometry past the arena: again with room for every word counted (and
                    // for the hits, when those overflowed too).
                    drop(area);
                    release(self);
                    let needed = Area::overflow(&layout, &acc, OutputKind::Hits)
                        .map_or(job.hit_capacity, |h| h as usize);
                    let geometries =
                        layout.kinds.iter().filter(|k| **k == OutputKind::Geometry).count() as u64;
                    let bytes = words.saturating_mul(8).saturating_mul(geometries);
                    if let Some(budget) = job.budget.filter(|b| bytes > *b) {
                        job.fail(JobError::OverBudget(crate::plan::OverBudget {
                            rows: job.rows.len(),
                            needed: bytes,
                            budget,
                            what: format!("the {words} words of geometry it produced, for its re-run"),
                            limit: "the memory budget",
                        }));
                    } else {
                        let again = GpuJob { geom_words: words as usize, ..job };
                        self.rerun(again, needed);
                    }
                    return;
                }
                match Area::overflow(&layout, &acc, OutputKind::Hits) {
                    Some(needed) => {
                        drop(area);
                        release(self);
                        match job.overflowed(needed as usize, hits) {
                            Ok(()) => self.rerun(job, needed as usize),
                            Err(e) => job.fail(e),
                        }
                        return;
                    }
                    None => area.columns(&layout, &acc).map_err(JobError::Device).map(|c| job.result(c)),
                }
            }
            (abi::STATUS_FAILED, Ok(_)) => {
                let e = error.unwrap_or_default();
                Err(JobError::Exec(ExecError {
                    row: Some(e.row as usize),
                    pc: Some(e.pc),
                    message: format!("on the GPU: {}", abi::error_message(e.code)),
                }))
            }
            // Stopped: by its ticket, its token or its deadline, or by the shutdown.
            (abi::STATUS_CANCELLED, Ok(_)) => Err(JobError::stopped(job.ticket.stop.reason())),
            (s, Ok(_)) => Err(JobError::Device(format!("the device reported job status {s}"))),
        };
        drop(area);
        release(self);
        job.settle(outcome, pushed.elapsed(), |p, rows, ns| {
            p.note_gpu_time(rows, ns, crate::place::GPU_ROUND_TRIP_NS);
        });
    }

    /// Gives a finished job's slot back.
    pub(super) fn release(&self, slot: u32) {
        self.jobs.release(slot);
        self.space.ring(true);
    }

    /// Runs `job` again with room for `needed` hits (from the reaper: never waits).
    pub(super) fn rerun(&self, job: GpuJob, needed: usize) {
        let again = GpuJob { attempt: job.attempt.again(needed), ..job };
        match self.submit_job(again) {
            Ok(()) => {}
            Err(GpuSubmitError::Full(job)) => self.pending.lock().push_back(job),
            Err(GpuSubmitError::Closed(job)) => {
                job.fail(JobError::stopped(None));
            }
            Err(GpuSubmitError::Unavailable(job, why)) => self.unavailable(job, why),
        }
    }
}
