//! The megakernel's ring and job records (`kernels/cuda/megakernel.cu`), `#[repr(C)]` with
//! the same sizes and offsets, asserted here and in the C++.

use bytemuck::{Pod, Zeroable};

/// Completion statuses the device writes (`MR_STATUS_*`), the same numbers as
/// [`JobStatus`](crate::ring::JobStatus).
pub(crate) const STATUS_DONE: u32 = 1;
pub(crate) const STATUS_FAILED: u32 = 2;
pub(crate) const STATUS_CANCELLED: u32 = 3;

/// Most outputs a program has (`MR_MAX_OUTPUTS`).
pub(crate) const MAX_OUTPUTS: usize = 64;
/// Hits a thread keeps before appending them itself (`MR_LOCAL_HITS`).
pub(crate) const LOCAL_HITS: usize = 8;

/// Where one output of a job goes (`MrOutput`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub(crate) struct Output {
    pub kind: u32,
    pub pad: u32,
    pub values: u64,
    pub valid: u64,
    pub bools: u64,
    pub hits: u64,
    pub hit_capacity: u64,
    pub runs: u64,
    pub run_capacity: u64,
}

/// An output's accumulators (`MrAcc`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub(crate) struct Acc {
    pub cursor: u64,
    pub runs: u64,
    pub sum: f64,
    pub any: u32,
    pub pad: u32,
}

/// The first error of a job (`MrError`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub(crate) struct ErrorRecord {
    pub code: u32,
    pub pc: u32,
    pub row: u64,
}

/// What the host writes for a job before publishing its chunks (`MrJobHead`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub(crate) struct JobHead {
    pub program: u64,
    pub inputs: u64,
    pub outputs: u64,
    pub rows_begin: u64,
    pub rows_end: u64,
    pub chunks: u32,
    pub noutputs: u32,
}

/// A job slot's record in mapped memory (`MrJob`): the head, then what the device writes.
pub(crate) const JOB_RECORD_BYTES: usize = 48 + 16 + 32 * MAX_OUTPUTS;
pub(crate) const JOB_ERROR_OFFSET: usize = 48;
pub(crate) const JOB_RESULTS_OFFSET: usize = 64;

/// A job slot's state in device memory (`MrSlotState`).
pub(crate) const SLOT_STATE_BYTES: usize = 16 + 32 * MAX_OUTPUTS;
pub(crate) const SLOT_ACC_OFFSET: usize = 16;
/// A slot's cancel word (`MrSlotState::cancel`): the host writes 0 before a job's chunks are
/// published and 1 to stop it; the device reads it at each claim, every 8 tiles and every
/// 1024 candidate steps.
pub(crate) const SLOT_CANCEL_OFFSET: usize = 12;
/// The device state's header (`MrDeviceState`), before the slots.
pub(crate) const DEVICE_STATE_HEADER: usize = 64;

/// The control block (`MrControl`) in mapped memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub(crate) struct Control {
    pub submit: u64,
    pub complete: u64,
    pub jobs: u64,
    pub state: u64,
    pub submit_mask: u32,
    pub complete_mask: u32,
    pub submit_slots_offset: u32,
    pub complete_slots_offset: u32,
    pub job_slots: u32,
    pub backoff_ns: u32,
    pub stop: u64,
}

pub(crate) const CONTROL_STOP: usize = 56;

/// Device error codes (`MR_ERR_*`), as messages.
pub(crate) fn error_message(code: u32) -> &'static str {
    match code {
        1 => "ran past the end of the code",
        2 => "an op the device does not run",
        3 => "probe of an input without an index",
        4 => "probe of a missing input",
        5 => "affine: a coordinate is not finite or beyond ±1e150",
        6 => "a constructive op in a kernel without per-thread scratch",
        7 => "a constructed geometry larger than its scratch slot",
        8 => "affine matrix outside the constant pool",
        9 => "cancelled",
        _ => "an unknown device error",
    }
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<Output>() == 64);
    assert!(size_of::<Acc>() == 32);
    assert!(size_of::<ErrorRecord>() == 16);
    assert!(size_of::<JobHead>() == 48);
    assert!(JOB_ERROR_OFFSET == size_of::<JobHead>());
    assert!(JOB_RESULTS_OFFSET == JOB_ERROR_OFFSET + size_of::<ErrorRecord>());
    assert!(size_of::<Control>() == 64);
    assert!(offset_of!(Control, stop) == CONTROL_STOP);
    assert!(MAX_OUTPUTS == meridian_bytecode::MAX_OUTPUTS);
};
