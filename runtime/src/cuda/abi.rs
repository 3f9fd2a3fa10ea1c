//! The megakernel's ring and job records (`kernels/cuda/megakernel.cu`): defined once, in
//! `meridian_kernels::cuda::abi` (the device ABI's one source, from which the C++ side's
//! numbers are generated), and used here under the names the executor knows. What only the
//! runtime can see — its ring's layout — is asserted equal to the device's (its statuses are
//! the ABI's constants, `ring::JobStatus`).

pub(crate) use meridian_kernels::cuda::abi::{
    error_message, Acc, Control, ErrorRecord, JobHead, Output, RingComplete, RingSubmit, ACC_BYTES,
    ACC_SUM_OFFSET, CONTROL_STOP, DEVICE_STATE_HEADER, GEOM_ROW_WORDS, INLINE_F64, INLINE_FLAGS_OFFSET,
    INLINE_OUTPUTS, INLINE_ROW_BYTES, JOB_ERROR_OFFSET, JOB_RECORD_BYTES, JOB_RESULTS_OFFSET, LOCAL_HITS,
    MAX_OUTPUTS, PROTOCOL_LEADERS, PROTOCOL_POLLER, SLOT_ACC_OFFSET, SLOT_CANCEL_OFFSET, SLOT_STATE_BYTES,
    STATE_TAKEN_OFFSET, STATUS_CANCELLED, STATUS_DONE, STATUS_FAILED,
};

// Under loom the ring's atomics are loom's (bigger, not the device's layout); the device
// never sees a loom build.
#[cfg(not(loom))]
const _: () = {
    use std::mem::size_of;

    use meridian_kernels::cuda::abi::{
        RingComplete, RingSubmit, RING_CLOSED_OFFSET, RING_SLOT_BYTES, RING_SLOT_VALUE_OFFSET,
    };

    use crate::ring::{RingHeader, Slot};

    // The device's entries fill the ring's slots (whose value offset and header's `closed`
    // offset the ring asserts are RING_SLOT_VALUE_OFFSET and RING_CLOSED_OFFSET: its fields
    // are its own).
    assert!(size_of::<Slot<RingSubmit>>() == RING_SLOT_BYTES);
    assert!(size_of::<Slot<RingComplete>>() == RING_SLOT_BYTES);
    assert!(RING_SLOT_VALUE_OFFSET < RING_SLOT_BYTES && RING_CLOSED_OFFSET < size_of::<RingHeader>());
    assert!(MAX_OUTPUTS == meridian_bytecode::MAX_OUTPUTS);
};
