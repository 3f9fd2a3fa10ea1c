//! The payloads of the two rings, `#[repr(C)]` so a device reads the same bytes; the
//! statuses are the device ABI's (`meridian_kernels::cuda::abi`).

use meridian_kernels::cuda::abi;

/// A submission: rows `[begin, end)` of the job in job-table slot `job` (chunk `chunk` of
/// it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubmitEntry {
    /// Job-table slot.
    pub job: u32,
    /// Chunk number within the job.
    pub chunk: u32,
    /// First row.
    pub begin: u64,
    /// One past the last row.
    pub end: u64,
}

impl SubmitEntry {
    /// Chunk `k` of the job in slot `job` over `rows`, cut in chunks of `size` rows.
    pub fn chunk(job: u32, k: usize, rows: &std::ops::Range<usize>, size: usize) -> SubmitEntry {
        SubmitEntry {
            job,
            chunk: k as u32,
            begin: (rows.start + k * size) as u64,
            end: (rows.start + (k + 1) * size).min(rows.end) as u64,
        }
    }
}

/// How a job ended, as written in a [`CompletionEntry`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    /// Every chunk ran.
    Done = abi::STATUS_DONE,
    /// A chunk failed (the error is kept with the job).
    Failed = abi::STATUS_FAILED,
    /// Shutdown took at least one chunk before it ran.
    Cancelled = abi::STATUS_CANCELLED,
}

impl JobStatus {
    /// The status a raw `u32` encodes.
    pub fn from_u32(v: u32) -> Option<JobStatus> {
        [JobStatus::Done, JobStatus::Failed, JobStatus::Cancelled].into_iter().find(|s| *s as u32 == v)
    }
}

/// A completion: the job in job-table slot `job` ended with `status`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompletionEntry {
    /// Job-table slot.
    pub job: u32,
    /// A [`JobStatus`] as `u32`.
    pub status: u32,
    /// Hits the job produced over all hits outputs (so the host can size a re-run).
    pub hits: u64,
}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<SubmitEntry>() == 24);
    assert!(offset_of!(SubmitEntry, chunk) == 4);
    assert!(offset_of!(SubmitEntry, begin) == 8);
    assert!(offset_of!(SubmitEntry, end) == 16);
    assert!(size_of::<CompletionEntry>() == 16);
    assert!(offset_of!(CompletionEntry, status) == 4);
    assert!(offset_of!(CompletionEntry, hits) == 8);
};
