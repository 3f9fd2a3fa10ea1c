//! Publishing a job: its program and inputs made resident, its output area, its job-table
//! record, and its chunk entries on the submission ring.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

use meridian_bytecode::OutputKind;
use meridian_kernels::cuda::DeviceColumn;

use crate::cuda::abi::{self, ErrorRecord, JobHead};
use crate::cuda::outputs::{Area, Layout};
use crate::job::JobError;
use crate::ring::PushError;

use super::{GpuExecutor, GpuJob, GpuSubmitError, InFlight, Placed};

impl GpuExecutor {
    /// Makes `job`'s program and inputs resident; with its outputs' kinds.
    pub(super) fn place(&self, job: &GpuJob) -> Result<Placed, String> {
        let mut r = self.residency.lock();
        let program = &job.prepared.program;
        r.program(&self.dev, program)
            .and_then(|p| r.binding(&self.dev, program, &job.inputs, self.threads()).map(|b| (p, b)))
            .map(|(p, b)| (p, b, program.program().outputs().iter().map(|o| o.kind).collect()))
            .map_err(|e| format!("placing the job on the device: {e}"))
    }

    /// Puts a job on the device without blocking. A job already stopped (its ticket or token
    /// cancelled, its deadline passed: a re-run, a retry, a queued lane job) resolves so
    /// instead.
    #[allow(clippy::result_large_err)] // the job comes back by value: boxing it would allocate on every full ring
    pub(super) fn submit_job(&self, job: GpuJob) -> Result<(), GpuSubmitError> {
        if let Some(reason) = job.ticket.stop.check() {
            job.fail(JobError::stopped(Some(reason)));
            return Ok(());
        }
        if let Some(why) = self.unhealthy() {
            return Err(GpuSubmitError::Unavailable(job, why));
        }
        if self.submit.is_closed() {
            return Err(GpuSubmitError::Closed(job));
        }
        let mut job = job;
        if job.kernel.is_some() {
            if self.tuning.programs {
                return self.lane.push(job).map_err(GpuSubmitError::Closed);
            }
            // No lane: the megakernel holds every SM, so it runs the job.
            job.kernel = None;
        }
        let (program, binding, kinds) = match self.place(&job) {
            Ok(placed) => placed,
            Err(why) => return Err(GpuSubmitError::Unavailable(job, why)),
        };
        let rows = job.rows.len();
        let (nchunks, size) = job.chunks;
        // Runs: one per tile per hits output, plus those a thread appends on its own when its
        // buffer fills (a full buffer's worth each with one hits output; with several, at worst
        // one run per hit).
        let hits_outputs = kinds.iter().filter(|k| **k == OutputKind::Hits).count();
        let tiles = rows.div_ceil(self.block_threads as usize).saturating_add(nchunks);
        let own_runs = if hits_outputs <= 1 { job.hit_capacity / abi::LOCAL_HITS } else { job.hit_capacity };
        let words = geom_words(&job, &kinds);
        // A one-row job of f64 and bool outputs gets no area under the poller's protocol: its
        // row comes back in the completion (no table for the device to read, no arena).
        let inline = (self.protocol == abi::PROTOCOL_POLLER && rows == 1 && nchunks == 1)
            .then(|| Layout::inline(&kinds))
            .flatten();
        let placed = match inline {
            Some(layout) => Ok((layout, Area::Completion([0; abi::INLINE_ROW_BYTES]))),
            None => Layout::new(
                &kinds,
                rows,
                job.hit_capacity,
                tiles.saturating_add(own_runs).saturating_add(1),
                words,
            )
            .and_then(|layout| Area::new(&self.dev, &self.arenas, &layout).map(|area| (layout, area))),
        };
        let (layout, area) = match placed {
            Ok(la) => la,
            Err(e) => {
                return Err(GpuSubmitError::Unavailable(job, format!("allocating the job's outputs: {e}")))
            }
        };
        let head = JobHead {
            program: program.record,
            inputs: binding.table,
            outputs: area.device_ptr(),
            rows_begin: job.rows.start as u64,
            rows_end: job.rows.end as u64,
            chunks: nchunks as u32,
            noutputs: kinds.len() as u32,
        };
        let rows = job.rows.clone();
        // Counted before the job is in its slot (so the count never goes below the slots
        // held) and before the push (so the reaper cannot see the ring closed with this job
        // uncounted; see `reap_loop`). Whoever takes it out of the slot uncounts it.
        self.in_flight.fetch_add(1, SeqCst);
        let held = InFlight {
            job,
            layout,
            area,
            _program: program,
            _binding: binding,
            pushed: Instant::now(),
            cancel_sent: false,
        };
        let slot = match self.jobs.insert(held) {
            Ok(slot) => slot,
            Err(held) => {
                self.in_flight.fetch_sub(1, SeqCst);
                return Err(GpuSubmitError::Full(held.job));
            }
        };
        let record = slot as usize * abi::JOB_RECORD_BYTES;
        let written = self
            .records
            .put(record, head)
            .and_then(|()| self.records.put(record + abi::JOB_ERROR_OFFSET, ErrorRecord::default()));
        if let Err(e) = written {
            let back = self.take_slot(slot);
            self.release(slot);
            // `None`: `fail_all` took it meanwhile and resolved its ticket.
            return back.map_or(Ok(()), |f| Err(GpuSubmitError::Unavailable(f.job, e.to_string())));
        }
        let pushed = self.submit.try_push_n(nchunks, |k| abi::RingSubmit {
            job: slot,
            chunks: nchunks as u32,
            begin: (rows.start + k * size) as u64,
            end: (rows.start + (k + 1) * size).min(rows.end) as u64,
            rows_begin: head.rows_begin,
            program: head.program,
            inputs: head.inputs,
            outputs: head.outputs,
        });
        match pushed {
            Ok(()) => {
                self.work.ring(false);
                // Published after `fail_all` swept the slots: nobody will serve it.
                if let Some(why) = self.unhealthy() {
                    if let Some(f) = self.take_slot(slot) {
                        return Err(GpuSubmitError::Unavailable(f.job, why));
                    }
                }
                Ok(())
            }
            Err(e) => {
                let back = self.take_slot(slot);
                self.release(slot);
                match back {
                    Some(f) => Err(match e {
                        PushError::Full => GpuSubmitError::Full(f.job),
                        PushError::Closed => GpuSubmitError::Closed(f.job),
                    }),
                    // `fail_all` took it meanwhile and resolved its ticket.
                    None => Ok(()),
                }
            }
        }
    }

    /// The device's count of chunks taken: moves while the kernel makes progress, also in a
    /// single long job.
    pub(super) fn chunks_taken(&self) -> Option<u64> {
        let mut b = [0u8; 8];
        self.state.read(abi::STATE_TAKEN_OFFSET, &mut b).ok()?;
        Some(u64::from_le_bytes(b))
    }
}

/// Words each geometry output's arena gets: what the job asked for on a re-run, else an
/// estimate — a geometry a row the size of the average row of its largest input (stored
/// geometries are mostly input rows or constructions from them), with slack. Past it the job
/// runs again with room for what it counted.
pub(super) fn geom_words(job: &GpuJob, kinds: &[OutputKind]) -> usize {
    if !kinds.contains(&OutputKind::Geometry) {
        return 0;
    }
    if job.geom_words > 0 {
        return job.geom_words;
    }
    let per_row = job
        .inputs
        .inputs()
        .iter()
        .map(|i| (DeviceColumn::bytes(&i.column) / 8).div_ceil(i.column.len().max(1)) + 2)
        .max()
        .unwrap_or(4)
        .max(4);
    job.rows.len().saturating_mul(per_row).saturating_add(per_row / 4 * job.rows.len()).saturating_add(1024)
}
