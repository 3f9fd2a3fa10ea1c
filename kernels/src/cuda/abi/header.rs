//! `kernels/cuda/abi_gen.cuh`: the device ABI's numbers — limits, error codes, statuses,
//! flags, predicates, ring offsets, and every record's size and field offsets — generated from
//! the Rust records and constants, with `MR_CHECK_ABI()`, which holds the hand-written C++
//! records to them when the device sources compile.

use std::fmt::Write as _;
use std::mem::{offset_of, size_of};

use super::job::{
    Acc, Control, DeviceErrorCode, DeviceStateHeader, ErrorRecord, JobHead, JobRecord, Output, RingComplete,
    RingSubmit, SlotState, ERR_NONE, FLAG_CANCELLED, FLAG_FAILED, GEOM_ROW_WORDS, INLINE_F64,
    INLINE_FLAGS_OFFSET, INLINE_OUTPUTS, INLINE_ROW_BYTES, LOCAL_HITS, MAX_BLOCK, PROTOCOL_LEADERS,
    PROTOCOL_POLLER, RING_CLOSED_OFFSET, RING_SLOT_BYTES, RING_SLOT_VALUE_OFFSET, STATUS_CANCELLED,
    STATUS_DONE, STATUS_FAILED,
};
use super::{
    BuiltCaps, BuiltHeader, DeviceColumn, DeviceIndex, DeviceInput, DeviceJoin, DeviceProgram, ScratchTable,
    MAX_GPU_GEOMETRY_OUTPUTS, MAX_GPU_REDUCTIONS, PREDICATES, TREE_STACK,
};
use crate::algo::Rect;

/// A record's layout as the generated header states it: its C++ name, size and each field's
/// offset (the C++ field names are the Rust ones).
#[derive(Clone, Copy, Debug)]
pub struct RecordLayout {
    /// The C++ struct.
    pub device: &'static str,
    /// `size_of` the Rust record.
    pub size: usize,
    /// `offset_of` each field, in declaration order.
    pub fields: &'static [(&'static str, usize)],
}

macro_rules! record {
    ($t:ty => $device:literal { $($f:ident),* $(,)? }) => {
        RecordLayout {
            device: $device,
            size: size_of::<$t>(),
            fields: &[$((stringify!($f), offset_of!($t, $f))),*],
        }
    };
}

/// Every record the host and the device share, as `abi_gen.cuh` states them.
pub const RECORDS: &[RecordLayout] = &[
    record!(Rect => "MrRect" { min_x, min_y, max_x, max_y }),
    record!(DeviceColumn => "MrColumn" {
        kinds, geom_offsets, part_offsets, ring_offsets, x, y, validity, rows, parts
    }),
    record!(DeviceIndex => "MrIndex" {
        tree_boxes, tree_start, tree_end, tree_nodes, tree_leaves, slab_parts, slab_offsets,
        slab_max_x, slab_edges, slab_part_count, grid_min_x, grid_min_y, grid_max_x, grid_max_y,
        grid_sx, grid_sy, grid_nx, grid_ny, grid_offsets, grid_entries, grid_boxes, part_rows,
        part_count, has_grid, areal
    }),
    record!(DeviceInput => "MrInput" { col, idx, indexed, pad }),
    record!(DeviceJoin => "MrJoin" {
        present, load, probe, output, geom, cand, pred, operands_fit, cand_first, count, pad
    }),
    record!(DeviceProgram => "MrProgram" {
        code, consts, ncode, nconsts, ninputs, noutputs, join, out_kinds, red_of, red_outputs, nred,
        ngeom
    }),
    record!(BuiltCaps => "MrBuiltCaps" { parts, rings, coords, pad }),
    record!(BuiltHeader => "MrBuilt" { col, validity, geom_offsets, kind, pad }),
    record!(ScratchTable => "MrScratchTable" {
        base, threads, thread_bytes, work_bytes, slot_bytes, caps, slots, pad
    }),
    record!(RingSubmit => "MrSubmit" { job, chunks, begin, end, rows_begin, program, inputs, outputs }),
    record!(RingComplete => "MrComplete" { job, status, hits, taken, first }),
    record!(Output => "MrOutput" {
        kind, pad, values, valid, bools, hits, hit_capacity, runs, run_capacity
    }),
    record!(Acc => "MrAcc" { cursor, runs, sum, any, pad }),
    record!(ErrorRecord => "MrError" { code, pc, row }),
    record!(JobHead => "MrJobHead" { program, inputs, outputs, rows_begin, rows_end, chunks, noutputs }),
    record!(JobRecord => "MrJob" { head, error, results }),
    record!(SlotState => "MrSlotState" { done, flags, error_claim, cancel, acc }),
    record!(DeviceStateHeader => "MrDeviceState" {
        submit_claim, complete_claim, taken, entered, exited, stopping, pad
    }),
    record!(Control => "MrControl" {
        submit, complete, jobs, state, submit_mask, complete_mask, submit_slots_offset,
        complete_slots_offset, job_slots, backoff_ns, protocol, pad, stop
    }),
];

/// The text of `kernels/cuda/abi_gen.cuh`.
pub fn abi_header() -> String {
    let mut h = String::new();
    let w = &mut h;
    let _ = writeln!(
        w,
        "// abi_gen.cuh — GENERATED from the device ABI's Rust source, meridian_kernels::cuda::abi,"
    );
    let _ = writeln!(w, "// by meridian_kernels::cuda::abi_header(). Do not edit: run");
    let _ = writeln!(
        w,
        "// `MERIDIAN_BLESS=1 cargo test -p meridian-kernels --test cuda_sources` to rewrite it; that"
    );
    let _ = writeln!(w, "// test fails while this file differs from what the Rust records generate.");
    let _ = writeln!(w, "#ifndef MR_ABI_GEN_CUH");
    let _ = writeln!(w, "#define MR_ABI_GEN_CUH");
    let _ = writeln!(w);
    let _ = writeln!(w, "#include \"isa.cuh\"  // MR_MAX_OUTPUTS");
    let _ = writeln!(w);
    let _ = writeln!(w, "// Limits.");
    let limits: [(&str, u64, &str); 6] = [
        (
            "MAX_REDUCTIONS",
            MAX_GPU_REDUCTIONS as u64,
            "count and sum outputs of a program (MAX_GPU_REDUCTIONS)",
        ),
        (
            "GEOM_OUTPUTS",
            MAX_GPU_GEOMETRY_OUTPUTS as u64,
            "geometry outputs of a program (MAX_GPU_GEOMETRY_OUTPUTS)",
        ),
        ("LOCAL_HITS", LOCAL_HITS as u64, "hits a thread keeps before appending them itself"),
        ("MAX_BLOCK", u64::from(MAX_BLOCK), "most threads a block of the megakernel has"),
        ("TREE_STACK", TREE_STACK as u64, "deepest R-tree traversal stack"),
        ("GEOM_ROW_WORDS", GEOM_ROW_WORDS as u64, "words of a geometry output's record per job row"),
    ];
    for (name, v, what) in limits {
        let _ = writeln!(w, "#define MR_{name} {v}  // {what}");
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "// Why a row could not run (DeviceErrorCode; the host's message after each).");
    let _ = writeln!(w, "#define MR_ERR_NONE {ERR_NONE}");
    for code in DeviceErrorCode::ALL {
        let _ = writeln!(w, "#define MR_ERR_{} {}  // {}", code.name(), code as u32, code.message());
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "// Job statuses (a completion's `status`).");
    for (name, v) in [("DONE", STATUS_DONE), ("FAILED", STATUS_FAILED), ("CANCELLED", STATUS_CANCELLED)] {
        let _ = writeln!(w, "#define MR_STATUS_{name} {v}");
    }
    let _ = writeln!(w, "// Dispatch protocols (MrControl::protocol).");
    for (name, v) in [("LEADERS", PROTOCOL_LEADERS), ("POLLER", PROTOCOL_POLLER)] {
        let _ = writeln!(w, "#define MR_PROTOCOL_{name} {v}");
    }
    let _ =
        writeln!(w, "// A one-row job's outputs in its completion (INLINE_ROW_BYTES): the k-th f64 output's");
    let _ = writeln!(w, "// value in word k, output o's validity or bool code in byte MR_INLINE_FLAGS + o.");
    let _ = writeln!(w, "#define MR_INLINE_ROW_BYTES {INLINE_ROW_BYTES}");
    let _ = writeln!(w, "#define MR_INLINE_FLAGS {INLINE_FLAGS_OFFSET}");
    let _ = writeln!(w, "#define MR_INLINE_F64 {INLINE_F64}");
    let _ = writeln!(w, "#define MR_INLINE_OUTPUTS {INLINE_OUTPUTS}");
    let _ = writeln!(w, "// A slot's flags (MrSlotState::flags).");
    for (name, v) in [("FAILED", FLAG_FAILED), ("CANCELLED", FLAG_CANCELLED)] {
        let _ = writeln!(w, "#define MR_FLAG_{name} {v}u");
    }
    let _ = writeln!(w, "// The point join's predicates (MrJoin::pred).");
    for (name, v) in PREDICATES {
        let _ = writeln!(w, "#define MR_PRED_{name} {v}");
    }
    let _ = writeln!(
        w,
        "// The rings (runtime/src/ring): byte offsets of RingHeader::closed and Slot::value, bytes"
    );
    let _ = writeln!(w, "// of a slot.");
    let _ = writeln!(w, "#define MR_RING_CLOSED {RING_CLOSED_OFFSET}");
    let _ = writeln!(w, "#define MR_SLOT_VALUE {RING_SLOT_VALUE_OFFSET}");
    let _ = writeln!(w, "#define MR_SLOT_BYTES {RING_SLOT_BYTES}");
    let _ = writeln!(w);
    let _ = writeln!(w, "// Each record's size and its fields' byte offsets.");
    for r in RECORDS {
        let _ = writeln!(w, "#define MR_SIZE_{} {}", r.device, r.size);
        for (field, at) in r.fields {
            let _ = writeln!(w, "#define MR_OFFSET_{}_{field} {at}", r.device);
        }
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "// The hand-written records held to the numbers above, once all are declared (megakernel.cu):"
    );
    let _ = writeln!(
        w,
        "// a record that drifts from the Rust one fails to compile. Offsets are checked by the host"
    );
    let _ = writeln!(w, "// build (NVRTC has no offsetof; both lay records out alike).");
    let _ = writeln!(w, "#define MR_CHECK_ABI() \\");
    for r in RECORDS {
        let d = r.device;
        let _ = writeln!(
            w,
            "    static_assert(sizeof({d}) == MR_SIZE_{d}, \"{d}: size differs from the Rust ABI\"); \\"
        );
        for (field, _) in r.fields {
            let _ = writeln!(w, "    MR_ASSERT_OFFSET({d}, {field}, MR_OFFSET_{d}_{field}); \\");
        }
    }
    let _ = writeln!(w, "    static_assert(true, \"MR_CHECK_ABI\")");
    let _ = writeln!(w);
    let _ = writeln!(w, "#endif  // MR_ABI_GEN_CUH");
    h
}
