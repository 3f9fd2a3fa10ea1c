//! The megakernel's job, slot and control records (`kernels/cuda/megakernel.cu`), the ring
//! records as the device reads them, and the numbers both sides share: device error codes,
//! job statuses, slot flags, limits and the byte offsets the host reads and writes at.
//!
//! The runtime's CUDA executor (`meridian_runtime`) uses these; `kernels/cuda/abi_gen.cuh`
//! is generated from them ([`abi_header`](super::abi_header)), so neither side types a
//! number the other has.

use std::mem::{offset_of, size_of};

use bytemuck::{Pod, Zeroable};

pub use meridian_bytecode::MAX_OUTPUTS;

/// Completion statuses the device writes (`MR_STATUS_*`), the same numbers as the runtime's
/// `ring::JobStatus`: every chunk ran.
pub const STATUS_DONE: u32 = 1;
/// A chunk failed (the first error is in the job record).
pub const STATUS_FAILED: u32 = 2;
/// The job was stopped (its cancel word, the ring closed, or `stop`).
pub const STATUS_CANCELLED: u32 = 3;

/// A slot's flags (`MrSlotState::flags`, `MR_FLAG_*`): a row failed.
pub const FLAG_FAILED: u32 = 1;
/// A slot's flags: the job was stopped.
pub const FLAG_CANCELLED: u32 = 2;

/// Hits a thread keeps before appending them itself (`MR_LOCAL_HITS`).
pub const LOCAL_HITS: usize = 8;
/// Most threads a block of the megakernel has (`MR_MAX_BLOCK`: its shared scan arrays).
pub const MAX_BLOCK: u32 = 256;
/// Words of a geometry output's record per job row (start, family, parts and rings,
/// coordinates; `MR_GEOM_ROW_WORDS`).
pub const GEOM_ROW_WORDS: usize = 4;

/// No error (`MR_ERR_NONE`).
pub const ERR_NONE: u32 = 0;

/// Why a row could not run on the device (`MR_ERR_*`): all but `Cancelled` are broken
/// invariants for a verified, bound program.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceErrorCode {
    /// The program ran past its last instruction.
    PastEnd = 1,
    /// An op the device does not run.
    UnsupportedOp = 2,
    /// `probe` of an input without an index.
    NoIndex = 3,
    /// `probe` of an input the job does not bind.
    MissingInput = 4,
    /// `affine` mapped a coordinate out of range (the CPU fails the row too).
    NonFinite = 5,
    /// A constructive op where the kernel gave no scratch.
    NoScratch = 6,
    /// A construction larger than its slot (a broken host bound).
    ScratchSize = 7,
    /// `affine`'s matrix outside the constant pool.
    BadMatrix = 8,
    /// The job's cancel word was set (its ticket cancelled, its deadline past).
    Cancelled = 9,
}

impl DeviceErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [DeviceErrorCode; 9] = [
        DeviceErrorCode::PastEnd,
        DeviceErrorCode::UnsupportedOp,
        DeviceErrorCode::NoIndex,
        DeviceErrorCode::MissingInput,
        DeviceErrorCode::NonFinite,
        DeviceErrorCode::NoScratch,
        DeviceErrorCode::ScratchSize,
        DeviceErrorCode::BadMatrix,
        DeviceErrorCode::Cancelled,
    ];

    /// Its name on the device, after `MR_ERR_`.
    pub const fn name(self) -> &'static str {
        match self {
            DeviceErrorCode::PastEnd => "PAST_END",
            DeviceErrorCode::UnsupportedOp => "UNSUPPORTED_OP",
            DeviceErrorCode::NoIndex => "NO_INDEX",
            DeviceErrorCode::MissingInput => "MISSING_INPUT",
            DeviceErrorCode::NonFinite => "NON_FINITE",
            DeviceErrorCode::NoScratch => "NO_SCRATCH",
            DeviceErrorCode::ScratchSize => "SCRATCH_SIZE",
            DeviceErrorCode::BadMatrix => "BAD_MATRIX",
            DeviceErrorCode::Cancelled => "CANCELLED",
        }
    }

    /// What a failed job says.
    pub const fn message(self) -> &'static str {
        match self {
            DeviceErrorCode::PastEnd => "ran past the end of the code",
            DeviceErrorCode::UnsupportedOp => "an op the device does not run",
            DeviceErrorCode::NoIndex => "probe of an input without an index",
            DeviceErrorCode::MissingInput => "probe of a missing input",
            DeviceErrorCode::NonFinite => "affine: a coordinate is not finite or beyond ±1e150",
            DeviceErrorCode::NoScratch => "a constructive op in a kernel without per-thread scratch",
            DeviceErrorCode::ScratchSize => "a constructed geometry larger than its scratch slot",
            DeviceErrorCode::BadMatrix => "affine matrix outside the constant pool",
            DeviceErrorCode::Cancelled => "cancelled",
        }
    }

    /// The code a raw `u32` is.
    pub fn from_u32(code: u32) -> Option<DeviceErrorCode> {
        DeviceErrorCode::ALL.into_iter().find(|c| *c as u32 == code)
    }
}

/// A device error code (`MR_ERR_*`) as a message.
pub fn error_message(code: u32) -> &'static str {
    DeviceErrorCode::from_u32(code).map_or("an unknown device error", DeviceErrorCode::message)
}

/// Where one output of a job goes (`MrOutput`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Output {
    /// `OutputKind`.
    pub kind: u32,
    /// Zero.
    pub pad: u32,
    /// f64: a value per job row.
    pub values: u64,
    /// f64: 1 where a value was stored.
    pub valid: u64,
    /// bool: 0, 1 or 2 (null) per job row.
    pub bools: u64,
    /// Hits (`row << 32 | id`), or a geometry output's arena of words.
    pub hits: u64,
    /// Hits (or arena words) `hits` holds.
    pub hit_capacity: u64,
    /// Hits: (start, length) of every appended run; geometry: a record per job row.
    pub runs: u64,
    /// Runs `runs` holds.
    pub run_capacity: u64,
}

/// An output's accumulators (`MrAcc`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct Acc {
    /// Hits appended (hits), the count (count), arena words (geometry).
    pub cursor: u64,
    /// Runs recorded (hits).
    pub runs: u64,
    /// The sum (sum); starts at -0.0.
    pub sum: f64,
    /// 1 when anything was added to `sum`.
    pub any: u32,
    /// Zero.
    pub pad: u32,
}

/// The first error of a job (`MrError`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ErrorRecord {
    /// A [`DeviceErrorCode`], or [`ERR_NONE`].
    pub code: u32,
    /// The failing instruction.
    pub pc: u32,
    /// The failing row.
    pub row: u64,
}

/// What the host writes for a job before publishing its chunks (`MrJobHead`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct JobHead {
    /// The `DeviceProgram`.
    pub program: u64,
    /// The input table (then the `ScratchTable`).
    pub inputs: u64,
    /// The output table.
    pub outputs: u64,
    /// First row of the job.
    pub rows_begin: u64,
    /// One past its last row.
    pub rows_end: u64,
    /// Chunks published for it.
    pub chunks: u32,
    /// Outputs.
    pub noutputs: u32,
}

/// A job slot's record in mapped host memory (`MrJob`): the head, then what the device writes
/// before the completion.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct JobRecord {
    /// Written by the host.
    pub head: JobHead,
    /// The first failing row's error.
    pub error: ErrorRecord,
    /// Every output's accumulators.
    pub results: [Acc; MAX_OUTPUTS],
}

/// A job slot's state in device memory (`MrSlotState`), shared by the blocks running its
/// chunks.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct SlotState {
    /// Chunks finished.
    pub done: u32,
    /// `FLAG_*`.
    pub flags: u32,
    /// Set by the first failing row.
    pub error_claim: u32,
    /// Written by the host: 0 before a job's chunks are published, 1 to stop it; the device
    /// reads it at each claim, every 8 tiles and every 1024 candidate steps.
    pub cancel: u32,
    /// The job's accumulators while it runs.
    pub acc: [Acc; MAX_OUTPUTS],
}

/// The device state's header (`MrDeviceState`), before the slots' [`SlotState`]s.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct DeviceStateHeader {
    /// Next submission position a block takes.
    pub submit_claim: u64,
    /// Next completion position a block fills.
    pub complete_claim: u64,
    /// One past the highest submission position taken so far (chunks taken).
    pub taken: u64,
    /// Blocks that started.
    pub entered: u64,
    /// Blocks that finished.
    pub exited: u64,
    /// A leader saw the host's `stop`.
    pub stopping: u64,
    /// Zero.
    pub pad: [u64; 2],
}

/// The control block (`MrControl`) in mapped memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Control {
    /// Submission ring: header, then slots.
    pub submit: u64,
    /// Completion ring.
    pub complete: u64,
    /// `job_slots` [`JobRecord`]s.
    pub jobs: u64,
    /// The device state (device memory).
    pub state: u64,
    /// Submission ring capacity - 1.
    pub submit_mask: u32,
    /// Completion ring capacity - 1.
    pub complete_mask: u32,
    /// Byte offset of the submission ring's slots.
    pub submit_slots_offset: u32,
    /// Byte offset of the completion ring's slots.
    pub complete_slots_offset: u32,
    /// Job slots.
    pub job_slots: u32,
    /// Longest idle back-off.
    pub backoff_ns: u32,
    /// How blocks take jobs and complete them: [`PROTOCOL_POLLER`] or [`PROTOCOL_LEADERS`].
    pub protocol: u32,
    /// Zero.
    pub pad: u32,
    /// Non-zero ends the kernel (written by the host).
    pub stop: u64,
}

/// The dispatch protocol of 2026-11 (`MrControl::protocol`): every idle block's leader polls
/// its own submission slot in host memory; the block frees the slot and reads `closed`, the
/// job's record and its output table from host memory; every thread fences at system scope
/// after a chunk; the completing block waits for its completion slot. Kept until a device run
/// has compared it with [`PROTOCOL_POLLER`].
pub const PROTOCOL_LEADERS: u32 = 1;
/// One poller (docs/ring-protocol.md, "The device side"): only the leader next in line reads
/// host memory to find work, others wait on device memory; entries are self-contained; the
/// host frees submission slots from the `taken` a completion carries; one device-scope fence
/// a block where a job has several chunks; the first output's accumulators ride in the
/// completion.
pub const PROTOCOL_POLLER: u32 = 2;

/// A submission on the CUDA executor's ring (`MrSubmit`): a chunk of a job, with everything
/// a block needs to start it (the job's head inline), so taking it is one read of one cache
/// line.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RingSubmit {
    /// Job slot.
    pub job: u32,
    /// Chunks the job was published in.
    pub chunks: u32,
    /// First row.
    pub begin: u64,
    /// One past the last row.
    pub end: u64,
    /// First row of the job (outputs are indexed from it).
    pub rows_begin: u64,
    /// The `DeviceProgram` (device memory).
    pub program: u64,
    /// The input table (device memory).
    pub inputs: u64,
    /// The output table.
    pub outputs: u64,
}

/// A completion as the device writes it (`MrComplete`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct RingComplete {
    /// Job slot.
    pub job: u32,
    /// `STATUS_*`.
    pub status: u32,
    /// Hits the job appended.
    pub hits: u64,
    /// [`PROTOCOL_POLLER`]: submission positions taken when the job completed (every one
    /// before it may be freed by the host).
    pub taken: u64,
    /// [`PROTOCOL_POLLER`]: the first output's accumulators (the others are in the job
    /// record); or, for a job published with its row inline (`RingSubmit::outputs` 0), that
    /// row's outputs ([`INLINE_ROW_BYTES`]).
    pub first: Acc,
}

/// A one-row job whose outputs are f64 and bool only may be published without an output area
/// under [`PROTOCOL_POLLER`] (`RingSubmit::outputs` 0): its block keeps the row's outputs in
/// shared memory and the completion carries them back in place of `first` (such outputs have
/// no accumulators), so the job costs no read of an output table and no write of an arena.
/// The k-th f64 output's value is word k (k < [`INLINE_F64`]); output o's flag — an f64
/// output's validity (1 stored, 0 not), a bool output's code (0, 1, 2 null) — is byte
/// [`INLINE_FLAGS_OFFSET`] + o (o < [`INLINE_OUTPUTS`]).
pub const INLINE_ROW_BYTES: usize = size_of::<Acc>();
/// Where an inline row's flags start (`MR_INLINE_FLAGS`).
pub const INLINE_FLAGS_OFFSET: usize = 24;
/// The most f64 outputs an inline row holds (`MR_INLINE_F64`).
pub const INLINE_F64: usize = INLINE_FLAGS_OFFSET / 8;
/// The most outputs an inline row holds (`MR_INLINE_OUTPUTS`).
pub const INLINE_OUTPUTS: usize = INLINE_ROW_BYTES - INLINE_FLAGS_OFFSET;

/// Byte offset of the ring header's `closed` word (`MR_RING_CLOSED`; the runtime's ring
/// asserts its header so).
pub const RING_CLOSED_OFFSET: usize = 128;
/// Bytes of a ring slot (`MR_SLOT_BYTES`): the sequence number and the entry, one cache line.
pub const RING_SLOT_BYTES: usize = 64;
/// Byte offset of a slot's entry (`MR_SLOT_VALUE`), after its sequence number.
pub const RING_SLOT_VALUE_OFFSET: usize = 8;

/// Bytes of one [`Acc`].
pub const ACC_BYTES: usize = size_of::<Acc>();
/// Byte offset of [`Acc::sum`].
pub const ACC_SUM_OFFSET: usize = offset_of!(Acc, sum);
/// Bytes of a job slot's record ([`JobRecord`]).
pub const JOB_RECORD_BYTES: usize = size_of::<JobRecord>();
/// Byte offset of [`JobRecord::error`].
pub const JOB_ERROR_OFFSET: usize = offset_of!(JobRecord, error);
/// Byte offset of [`JobRecord::results`].
pub const JOB_RESULTS_OFFSET: usize = offset_of!(JobRecord, results);
/// Bytes of a slot's state ([`SlotState`]).
pub const SLOT_STATE_BYTES: usize = size_of::<SlotState>();
/// Byte offset of [`SlotState::acc`].
pub const SLOT_ACC_OFFSET: usize = offset_of!(SlotState, acc);
/// Byte offset of [`SlotState::cancel`].
pub const SLOT_CANCEL_OFFSET: usize = offset_of!(SlotState, cancel);
/// Bytes of the device state's header ([`DeviceStateHeader`]), before the slots.
pub const DEVICE_STATE_HEADER: usize = size_of::<DeviceStateHeader>();
/// Byte offset of [`DeviceStateHeader::taken`] (the chunks taken).
pub const STATE_TAKEN_OFFSET: usize = offset_of!(DeviceStateHeader, taken);
/// Byte offset of [`Control::stop`].
pub const CONTROL_STOP: usize = offset_of!(Control, stop);

const _: () = {
    assert!(size_of::<RingSubmit>() + RING_SLOT_VALUE_OFFSET <= RING_SLOT_BYTES);
    assert!(size_of::<RingComplete>() + RING_SLOT_VALUE_OFFSET <= RING_SLOT_BYTES);
    assert!(ACC_SUM_OFFSET + 8 <= ACC_BYTES);
    assert!(INLINE_FLAGS_OFFSET.is_multiple_of(8) && INLINE_FLAGS_OFFSET < INLINE_ROW_BYTES);
    assert!(INLINE_OUTPUTS <= MAX_OUTPUTS);
    // The device masks an output index with MR_MAX_OUTPUTS - 1.
    assert!(MAX_OUTPUTS.is_power_of_two());
    assert!(super::super::BLOCK_THREADS <= MAX_BLOCK && super::super::BLOCK_THREADS.is_multiple_of(32));
};
