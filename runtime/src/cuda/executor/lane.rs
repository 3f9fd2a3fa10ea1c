//! The lane of programs' own kernels (the GPU JIT route): one host thread launching a
//! job's kernel over all its rows, beside the megakernel.

use std::time::Instant;

use meridian_bytecode::OutputKind;

use crate::cuda::abi::{self, Acc, ErrorRecord};
use crate::cuda::device::{join_scratch_bytes, DeviceAlloc, ProgramArgs, ProgramRunError};
use crate::cuda::outputs::{Area, Layout};
use crate::job::JobError;

use super::fresh_accumulators;
use super::publish::geom_words;
use super::{GpuExecutor, GpuJob};

impl GpuExecutor {
    /// The programs' thread: runs queued jobs' program kernels one at a time until the lane
    /// closes.
    pub(super) fn lane_loop(&self) {
        while let Some(job) = self.lane.pop() {
            if let Some(reason) = job.ticket.stop.check() {
                // Stopped while queued: a per-job kernel, once launched, runs to its end.
                job.fail(JobError::stopped(Some(reason)));
                continue;
            }
            if let Some(why) = self.unhealthy() {
                self.unavailable(job, why);
                continue;
            }
            self.run_program_job(job);
        }
    }

    /// Runs `job` with its program's own kernel and resolves it (or re-runs it, or hands it
    /// to the fallback when the device cannot take it).
    pub(super) fn run_program_job(&self, job: GpuJob) {
        let Some(kernel) = job.kernel.clone() else {
            return self.unavailable(job, "a job for the program lane without a kernel".into());
        };
        let (program, binding, kinds) = match self.place(&job) {
            Ok(placed) => placed,
            Err(why) => return self.unavailable(job, why),
        };
        let rows = job.rows.len();
        let hits_outputs = kinds.iter().filter(|k| **k == OutputKind::Hits).count();
        let runs = crate::cuda::programs::run_capacity(hits_outputs, rows, job.hit_capacity);
        let results_bytes = abi::ACC_BYTES * abi::MAX_OUTPUTS;
        let words = geom_words(&job, &kinds);
        let placed = Layout::new(&kinds, rows, job.hit_capacity, runs, words).and_then(|layout| {
            let area = Area::new(&self.dev, &self.arenas, &layout)?;
            let results = DeviceAlloc::new(&self.dev, results_bytes + std::mem::size_of::<ErrorRecord>())?;
            results.write(0, &fresh_results())?;
            Ok((layout, area, results))
        });
        let (layout, area, results) = match placed {
            Ok(p) => p,
            Err(e) => return self.unavailable(job, format!("allocating the job's outputs: {e}")),
        };
        // A point join's split kernels work in a zeroed scratch area (row bits, the blocks'
        // counts).
        let scratch = match kernel.is_split() {
            false => None,
            true => {
                let bytes = join_scratch_bytes(rows as u64, job.block_threads);
                let bits = DeviceAlloc::new(&self.dev, bytes).and_then(|bits| {
                    bits.zero(0, bytes)?;
                    Ok(bits)
                });
                match bits {
                    Ok(bits) => Some(bits),
                    Err(e) => return self.unavailable(job, format!("allocating the join's scratch: {e}")),
                }
            }
        };
        let args = ProgramArgs {
            program: program.record,
            inputs: binding.table,
            outputs: area.device_ptr(),
            rows_begin: job.rows.start as u64,
            begin: job.rows.start as u64,
            end: job.rows.end as u64,
            acc: results.ptr(),
            error: results.ptr() + results_bytes as u64,
            block_threads: job.block_threads,
            join_scratch: scratch.as_ref().map_or(0, DeviceAlloc::ptr),
        };
        let started = Instant::now();
        // SAFETY: the kernel was compiled on this device for this program (the engine asked
        // its device); the program record, input table, output area and results are live
        // device allocations laid out as the per-job kernel reads them, held here until it
        // returns; past its timeout the device is wedged below, so none of them is freed.
        let ran = unsafe { self.dev.device.run_program(&kernel, &args, self.tuning.timeout) };
        match ran {
            Ok(()) => {}
            Err(ProgramRunError::NotStarted(e)) => {
                return self.unavailable(job, format!("the program's kernel {}: {e}", kernel.kernel()));
            }
            Err(ProgramRunError::Lost(e)) => {
                // It may still run and write: nothing it reaches may be freed, and the device
                // is not to be trusted.
                self.dev.wedge();
                std::mem::forget((area, results, scratch));
                let why = format!("the program's kernel {}: {e}", kernel.kernel());
                self.fail_all(why.clone());
                return self.unavailable(job, why);
            }
        }
        let mut bytes = vec![0u8; results_bytes + std::mem::size_of::<ErrorRecord>()];
        let read = results.read(0, &mut bytes);
        let acc = read.clone().map(|()| {
            (0..kinds.len())
                .map(|o| bytemuck::pod_read_unaligned::<Acc>(&bytes[abi::ACC_BYTES * o..][..abi::ACC_BYTES]))
                .collect()
        });
        let error = read.map(|()| bytemuck::pod_read_unaligned::<ErrorRecord>(&bytes[results_bytes..]));
        let status = match &error {
            Ok(e) if e.code != 0 => abi::STATUS_FAILED,
            _ => abi::STATUS_DONE,
        };
        drop((program, binding, results, scratch));
        self.conclude(job, layout, area, (status, acc, error), started, None);
    }
}

/// A per-job kernel's results as it starts them: fresh accumulators, then a clear error record.
pub(super) fn fresh_results() -> Vec<u8> {
    let mut bytes = vec![0u8; abi::ACC_BYTES * abi::MAX_OUTPUTS + std::mem::size_of::<ErrorRecord>()];
    fresh_accumulators(&mut bytes[..abi::ACC_BYTES * abi::MAX_OUTPUTS]);
    bytes
}
