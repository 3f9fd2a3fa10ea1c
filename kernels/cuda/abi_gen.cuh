// abi_gen.cuh — GENERATED from the device ABI's Rust source, meridian_kernels::cuda::abi,
// by meridian_kernels::cuda::abi_header(). Do not edit: run
// `MERIDIAN_BLESS=1 cargo test -p meridian-kernels --test cuda_sources` to rewrite it; that
// test fails while this file differs from what the Rust records generate.
#ifndef MR_ABI_GEN_CUH
#define MR_ABI_GEN_CUH

#include "isa.cuh"  // MR_MAX_OUTPUTS

// Limits.
#define MR_MAX_REDUCTIONS 16  // count and sum outputs of a program (MAX_GPU_REDUCTIONS)
#define MR_GEOM_OUTPUTS 4  // geometry outputs of a program (MAX_GPU_GEOMETRY_OUTPUTS)
#define MR_LOCAL_HITS 8  // hits a thread keeps before appending them itself
#define MR_MAX_BLOCK 256  // most threads a block of the megakernel has
#define MR_TREE_STACK 128  // deepest R-tree traversal stack
#define MR_GEOM_ROW_WORDS 4  // words of a geometry output's record per job row

// Why a row could not run (DeviceErrorCode; the host's message after each).
#define MR_ERR_NONE 0
#define MR_ERR_PAST_END 1  // ran past the end of the code
#define MR_ERR_UNSUPPORTED_OP 2  // an op the device does not run
#define MR_ERR_NO_INDEX 3  // probe of an input without an index
#define MR_ERR_MISSING_INPUT 4  // probe of a missing input
#define MR_ERR_NON_FINITE 5  // affine: a coordinate is not finite or beyond ±1e150
#define MR_ERR_NO_SCRATCH 6  // a constructive op in a kernel without per-thread scratch
#define MR_ERR_SCRATCH_SIZE 7  // a constructed geometry larger than its scratch slot
#define MR_ERR_BAD_MATRIX 8  // affine matrix outside the constant pool
#define MR_ERR_CANCELLED 9  // cancelled

// Job statuses (a completion's `status`).
#define MR_STATUS_DONE 1
#define MR_STATUS_FAILED 2
#define MR_STATUS_CANCELLED 3
// Dispatch protocols (MrControl::protocol).
#define MR_PROTOCOL_LEADERS 1
#define MR_PROTOCOL_POLLER 2
// A one-row job's outputs in its completion (INLINE_ROW_BYTES): the k-th f64 output's
// value in word k, output o's validity or bool code in byte MR_INLINE_FLAGS + o.
#define MR_INLINE_ROW_BYTES 32
#define MR_INLINE_FLAGS 24
#define MR_INLINE_F64 3
#define MR_INLINE_OUTPUTS 8
// A slot's flags (MrSlotState::flags).
#define MR_FLAG_FAILED 1u
#define MR_FLAG_CANCELLED 2u
// The point join's predicates (MrJoin::pred).
#define MR_PRED_INTERSECTS 0
#define MR_PRED_CONTAINS 1
#define MR_PRED_COVERS 2
#define MR_PRED_TOUCHES 3
#define MR_PRED_DISJOINT 4
// The rings (runtime/src/ring): byte offsets of RingHeader::closed and Slot::value, bytes
// of a slot.
#define MR_RING_CLOSED 128
#define MR_SLOT_VALUE 8
#define MR_SLOT_BYTES 64

// Each record's size and its fields' byte offsets.
#define MR_SIZE_MrRect 32
#define MR_OFFSET_MrRect_min_x 0
#define MR_OFFSET_MrRect_min_y 8
#define MR_OFFSET_MrRect_max_x 16
#define MR_OFFSET_MrRect_max_y 24
#define MR_SIZE_MrColumn 72
#define MR_OFFSET_MrColumn_kinds 0
#define MR_OFFSET_MrColumn_geom_offsets 8
#define MR_OFFSET_MrColumn_part_offsets 16
#define MR_OFFSET_MrColumn_ring_offsets 24
#define MR_OFFSET_MrColumn_x 32
#define MR_OFFSET_MrColumn_y 40
#define MR_OFFSET_MrColumn_validity 48
#define MR_OFFSET_MrColumn_rows 56
#define MR_OFFSET_MrColumn_parts 64
#define MR_SIZE_MrIndex 184
#define MR_OFFSET_MrIndex_tree_boxes 0
#define MR_OFFSET_MrIndex_tree_start 8
#define MR_OFFSET_MrIndex_tree_end 16
#define MR_OFFSET_MrIndex_tree_nodes 24
#define MR_OFFSET_MrIndex_tree_leaves 28
#define MR_OFFSET_MrIndex_slab_parts 32
#define MR_OFFSET_MrIndex_slab_offsets 40
#define MR_OFFSET_MrIndex_slab_max_x 48
#define MR_OFFSET_MrIndex_slab_edges 56
#define MR_OFFSET_MrIndex_slab_part_count 64
#define MR_OFFSET_MrIndex_grid_min_x 72
#define MR_OFFSET_MrIndex_grid_min_y 80
#define MR_OFFSET_MrIndex_grid_max_x 88
#define MR_OFFSET_MrIndex_grid_max_y 96
#define MR_OFFSET_MrIndex_grid_sx 104
#define MR_OFFSET_MrIndex_grid_sy 112
#define MR_OFFSET_MrIndex_grid_nx 120
#define MR_OFFSET_MrIndex_grid_ny 128
#define MR_OFFSET_MrIndex_grid_offsets 136
#define MR_OFFSET_MrIndex_grid_entries 144
#define MR_OFFSET_MrIndex_grid_boxes 152
#define MR_OFFSET_MrIndex_part_rows 160
#define MR_OFFSET_MrIndex_part_count 168
#define MR_OFFSET_MrIndex_has_grid 176
#define MR_OFFSET_MrIndex_areal 180
#define MR_SIZE_MrInput 264
#define MR_OFFSET_MrInput_col 0
#define MR_OFFSET_MrInput_idx 72
#define MR_OFFSET_MrInput_indexed 256
#define MR_OFFSET_MrInput_pad 260
#define MR_SIZE_MrJoin 24
#define MR_OFFSET_MrJoin_present 0
#define MR_OFFSET_MrJoin_load 4
#define MR_OFFSET_MrJoin_probe 8
#define MR_OFFSET_MrJoin_output 12
#define MR_OFFSET_MrJoin_geom 16
#define MR_OFFSET_MrJoin_cand 17
#define MR_OFFSET_MrJoin_pred 18
#define MR_OFFSET_MrJoin_operands_fit 19
#define MR_OFFSET_MrJoin_cand_first 20
#define MR_OFFSET_MrJoin_count 21
#define MR_OFFSET_MrJoin_pad 22
#define MR_SIZE_MrProgram 208
#define MR_OFFSET_MrProgram_code 0
#define MR_OFFSET_MrProgram_consts 8
#define MR_OFFSET_MrProgram_ncode 16
#define MR_OFFSET_MrProgram_nconsts 20
#define MR_OFFSET_MrProgram_ninputs 24
#define MR_OFFSET_MrProgram_noutputs 28
#define MR_OFFSET_MrProgram_join 32
#define MR_OFFSET_MrProgram_out_kinds 56
#define MR_OFFSET_MrProgram_red_of 120
#define MR_OFFSET_MrProgram_red_outputs 184
#define MR_OFFSET_MrProgram_nred 200
#define MR_OFFSET_MrProgram_ngeom 204
#define MR_SIZE_MrBuiltCaps 16
#define MR_OFFSET_MrBuiltCaps_parts 0
#define MR_OFFSET_MrBuiltCaps_rings 4
#define MR_OFFSET_MrBuiltCaps_coords 8
#define MR_OFFSET_MrBuiltCaps_pad 12
#define MR_SIZE_MrBuilt 96
#define MR_OFFSET_MrBuilt_col 0
#define MR_OFFSET_MrBuilt_validity 72
#define MR_OFFSET_MrBuilt_geom_offsets 80
#define MR_OFFSET_MrBuilt_kind 88
#define MR_OFFSET_MrBuilt_pad 89
#define MR_SIZE_MrScratchTable 64
#define MR_OFFSET_MrScratchTable_base 0
#define MR_OFFSET_MrScratchTable_threads 8
#define MR_OFFSET_MrScratchTable_thread_bytes 16
#define MR_OFFSET_MrScratchTable_work_bytes 24
#define MR_OFFSET_MrScratchTable_slot_bytes 32
#define MR_OFFSET_MrScratchTable_caps 40
#define MR_OFFSET_MrScratchTable_slots 56
#define MR_OFFSET_MrScratchTable_pad 60
#define MR_SIZE_MrSubmit 56
#define MR_OFFSET_MrSubmit_job 0
#define MR_OFFSET_MrSubmit_chunks 4
#define MR_OFFSET_MrSubmit_begin 8
#define MR_OFFSET_MrSubmit_end 16
#define MR_OFFSET_MrSubmit_rows_begin 24
#define MR_OFFSET_MrSubmit_program 32
#define MR_OFFSET_MrSubmit_inputs 40
#define MR_OFFSET_MrSubmit_outputs 48
#define MR_SIZE_MrComplete 56
#define MR_OFFSET_MrComplete_job 0
#define MR_OFFSET_MrComplete_status 4
#define MR_OFFSET_MrComplete_hits 8
#define MR_OFFSET_MrComplete_taken 16
#define MR_OFFSET_MrComplete_first 24
#define MR_SIZE_MrOutput 64
#define MR_OFFSET_MrOutput_kind 0
#define MR_OFFSET_MrOutput_pad 4
#define MR_OFFSET_MrOutput_values 8
#define MR_OFFSET_MrOutput_valid 16
#define MR_OFFSET_MrOutput_bools 24
#define MR_OFFSET_MrOutput_hits 32
#define MR_OFFSET_MrOutput_hit_capacity 40
#define MR_OFFSET_MrOutput_runs 48
#define MR_OFFSET_MrOutput_run_capacity 56
#define MR_SIZE_MrAcc 32
#define MR_OFFSET_MrAcc_cursor 0
#define MR_OFFSET_MrAcc_runs 8
#define MR_OFFSET_MrAcc_sum 16
#define MR_OFFSET_MrAcc_any 24
#define MR_OFFSET_MrAcc_pad 28
#define MR_SIZE_MrError 16
#define MR_OFFSET_MrError_code 0
#define MR_OFFSET_MrError_pc 4
#define MR_OFFSET_MrError_row 8
#define MR_SIZE_MrJobHead 48
#define MR_OFFSET_MrJobHead_program 0
#define MR_OFFSET_MrJobHead_inputs 8
#define MR_OFFSET_MrJobHead_outputs 16
#define MR_OFFSET_MrJobHead_rows_begin 24
#define MR_OFFSET_MrJobHead_rows_end 32
#define MR_OFFSET_MrJobHead_chunks 40
#define MR_OFFSET_MrJobHead_noutputs 44
#define MR_SIZE_MrJob 2112
#define MR_OFFSET_MrJob_head 0
#define MR_OFFSET_MrJob_error 48
#define MR_OFFSET_MrJob_results 64
#define MR_SIZE_MrSlotState 2064
#define MR_OFFSET_MrSlotState_done 0
#define MR_OFFSET_MrSlotState_flags 4
#define MR_OFFSET_MrSlotState_error_claim 8
#define MR_OFFSET_MrSlotState_cancel 12
#define MR_OFFSET_MrSlotState_acc 16
#define MR_SIZE_MrDeviceState 64
#define MR_OFFSET_MrDeviceState_submit_claim 0
#define MR_OFFSET_MrDeviceState_complete_claim 8
#define MR_OFFSET_MrDeviceState_taken 16
#define MR_OFFSET_MrDeviceState_entered 24
#define MR_OFFSET_MrDeviceState_exited 32
#define MR_OFFSET_MrDeviceState_stopping 40
#define MR_OFFSET_MrDeviceState_pad 48
#define MR_SIZE_MrControl 72
#define MR_OFFSET_MrControl_submit 0
#define MR_OFFSET_MrControl_complete 8
#define MR_OFFSET_MrControl_jobs 16
#define MR_OFFSET_MrControl_state 24
#define MR_OFFSET_MrControl_submit_mask 32
#define MR_OFFSET_MrControl_complete_mask 36
#define MR_OFFSET_MrControl_submit_slots_offset 40
#define MR_OFFSET_MrControl_complete_slots_offset 44
#define MR_OFFSET_MrControl_job_slots 48
#define MR_OFFSET_MrControl_backoff_ns 52
#define MR_OFFSET_MrControl_protocol 56
#define MR_OFFSET_MrControl_pad 60
#define MR_OFFSET_MrControl_stop 64

// The hand-written records held to the numbers above, once all are declared (megakernel.cu):
// a record that drifts from the Rust one fails to compile. Offsets are checked by the host
// build (NVRTC has no offsetof; both lay records out alike).
#define MR_CHECK_ABI() \
    static_assert(sizeof(MrRect) == MR_SIZE_MrRect, "MrRect: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrRect, min_x, MR_OFFSET_MrRect_min_x); \
    MR_ASSERT_OFFSET(MrRect, min_y, MR_OFFSET_MrRect_min_y); \
    MR_ASSERT_OFFSET(MrRect, max_x, MR_OFFSET_MrRect_max_x); \
    MR_ASSERT_OFFSET(MrRect, max_y, MR_OFFSET_MrRect_max_y); \
    static_assert(sizeof(MrColumn) == MR_SIZE_MrColumn, "MrColumn: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrColumn, kinds, MR_OFFSET_MrColumn_kinds); \
    MR_ASSERT_OFFSET(MrColumn, geom_offsets, MR_OFFSET_MrColumn_geom_offsets); \
    MR_ASSERT_OFFSET(MrColumn, part_offsets, MR_OFFSET_MrColumn_part_offsets); \
    MR_ASSERT_OFFSET(MrColumn, ring_offsets, MR_OFFSET_MrColumn_ring_offsets); \
    MR_ASSERT_OFFSET(MrColumn, x, MR_OFFSET_MrColumn_x); \
    MR_ASSERT_OFFSET(MrColumn, y, MR_OFFSET_MrColumn_y); \
    MR_ASSERT_OFFSET(MrColumn, validity, MR_OFFSET_MrColumn_validity); \
    MR_ASSERT_OFFSET(MrColumn, rows, MR_OFFSET_MrColumn_rows); \
    MR_ASSERT_OFFSET(MrColumn, parts, MR_OFFSET_MrColumn_parts); \
    static_assert(sizeof(MrIndex) == MR_SIZE_MrIndex, "MrIndex: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrIndex, tree_boxes, MR_OFFSET_MrIndex_tree_boxes); \
    MR_ASSERT_OFFSET(MrIndex, tree_start, MR_OFFSET_MrIndex_tree_start); \
    MR_ASSERT_OFFSET(MrIndex, tree_end, MR_OFFSET_MrIndex_tree_end); \
    MR_ASSERT_OFFSET(MrIndex, tree_nodes, MR_OFFSET_MrIndex_tree_nodes); \
    MR_ASSERT_OFFSET(MrIndex, tree_leaves, MR_OFFSET_MrIndex_tree_leaves); \
    MR_ASSERT_OFFSET(MrIndex, slab_parts, MR_OFFSET_MrIndex_slab_parts); \
    MR_ASSERT_OFFSET(MrIndex, slab_offsets, MR_OFFSET_MrIndex_slab_offsets); \
    MR_ASSERT_OFFSET(MrIndex, slab_max_x, MR_OFFSET_MrIndex_slab_max_x); \
    MR_ASSERT_OFFSET(MrIndex, slab_edges, MR_OFFSET_MrIndex_slab_edges); \
    MR_ASSERT_OFFSET(MrIndex, slab_part_count, MR_OFFSET_MrIndex_slab_part_count); \
    MR_ASSERT_OFFSET(MrIndex, grid_min_x, MR_OFFSET_MrIndex_grid_min_x); \
    MR_ASSERT_OFFSET(MrIndex, grid_min_y, MR_OFFSET_MrIndex_grid_min_y); \
    MR_ASSERT_OFFSET(MrIndex, grid_max_x, MR_OFFSET_MrIndex_grid_max_x); \
    MR_ASSERT_OFFSET(MrIndex, grid_max_y, MR_OFFSET_MrIndex_grid_max_y); \
    MR_ASSERT_OFFSET(MrIndex, grid_sx, MR_OFFSET_MrIndex_grid_sx); \
    MR_ASSERT_OFFSET(MrIndex, grid_sy, MR_OFFSET_MrIndex_grid_sy); \
    MR_ASSERT_OFFSET(MrIndex, grid_nx, MR_OFFSET_MrIndex_grid_nx); \
    MR_ASSERT_OFFSET(MrIndex, grid_ny, MR_OFFSET_MrIndex_grid_ny); \
    MR_ASSERT_OFFSET(MrIndex, grid_offsets, MR_OFFSET_MrIndex_grid_offsets); \
    MR_ASSERT_OFFSET(MrIndex, grid_entries, MR_OFFSET_MrIndex_grid_entries); \
    MR_ASSERT_OFFSET(MrIndex, grid_boxes, MR_OFFSET_MrIndex_grid_boxes); \
    MR_ASSERT_OFFSET(MrIndex, part_rows, MR_OFFSET_MrIndex_part_rows); \
    MR_ASSERT_OFFSET(MrIndex, part_count, MR_OFFSET_MrIndex_part_count); \
    MR_ASSERT_OFFSET(MrIndex, has_grid, MR_OFFSET_MrIndex_has_grid); \
    MR_ASSERT_OFFSET(MrIndex, areal, MR_OFFSET_MrIndex_areal); \
    static_assert(sizeof(MrInput) == MR_SIZE_MrInput, "MrInput: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrInput, col, MR_OFFSET_MrInput_col); \
    MR_ASSERT_OFFSET(MrInput, idx, MR_OFFSET_MrInput_idx); \
    MR_ASSERT_OFFSET(MrInput, indexed, MR_OFFSET_MrInput_indexed); \
    MR_ASSERT_OFFSET(MrInput, pad, MR_OFFSET_MrInput_pad); \
    static_assert(sizeof(MrJoin) == MR_SIZE_MrJoin, "MrJoin: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrJoin, present, MR_OFFSET_MrJoin_present); \
    MR_ASSERT_OFFSET(MrJoin, load, MR_OFFSET_MrJoin_load); \
    MR_ASSERT_OFFSET(MrJoin, probe, MR_OFFSET_MrJoin_probe); \
    MR_ASSERT_OFFSET(MrJoin, output, MR_OFFSET_MrJoin_output); \
    MR_ASSERT_OFFSET(MrJoin, geom, MR_OFFSET_MrJoin_geom); \
    MR_ASSERT_OFFSET(MrJoin, cand, MR_OFFSET_MrJoin_cand); \
    MR_ASSERT_OFFSET(MrJoin, pred, MR_OFFSET_MrJoin_pred); \
    MR_ASSERT_OFFSET(MrJoin, operands_fit, MR_OFFSET_MrJoin_operands_fit); \
    MR_ASSERT_OFFSET(MrJoin, cand_first, MR_OFFSET_MrJoin_cand_first); \
    MR_ASSERT_OFFSET(MrJoin, count, MR_OFFSET_MrJoin_count); \
    MR_ASSERT_OFFSET(MrJoin, pad, MR_OFFSET_MrJoin_pad); \
    static_assert(sizeof(MrProgram) == MR_SIZE_MrProgram, "MrProgram: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrProgram, code, MR_OFFSET_MrProgram_code); \
    MR_ASSERT_OFFSET(MrProgram, consts, MR_OFFSET_MrProgram_consts); \
    MR_ASSERT_OFFSET(MrProgram, ncode, MR_OFFSET_MrProgram_ncode); \
    MR_ASSERT_OFFSET(MrProgram, nconsts, MR_OFFSET_MrProgram_nconsts); \
    MR_ASSERT_OFFSET(MrProgram, ninputs, MR_OFFSET_MrProgram_ninputs); \
    MR_ASSERT_OFFSET(MrProgram, noutputs, MR_OFFSET_MrProgram_noutputs); \
    MR_ASSERT_OFFSET(MrProgram, join, MR_OFFSET_MrProgram_join); \
    MR_ASSERT_OFFSET(MrProgram, out_kinds, MR_OFFSET_MrProgram_out_kinds); \
    MR_ASSERT_OFFSET(MrProgram, red_of, MR_OFFSET_MrProgram_red_of); \
    MR_ASSERT_OFFSET(MrProgram, red_outputs, MR_OFFSET_MrProgram_red_outputs); \
    MR_ASSERT_OFFSET(MrProgram, nred, MR_OFFSET_MrProgram_nred); \
    MR_ASSERT_OFFSET(MrProgram, ngeom, MR_OFFSET_MrProgram_ngeom); \
    static_assert(sizeof(MrBuiltCaps) == MR_SIZE_MrBuiltCaps, "MrBuiltCaps: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrBuiltCaps, parts, MR_OFFSET_MrBuiltCaps_parts); \
    MR_ASSERT_OFFSET(MrBuiltCaps, rings, MR_OFFSET_MrBuiltCaps_rings); \
    MR_ASSERT_OFFSET(MrBuiltCaps, coords, MR_OFFSET_MrBuiltCaps_coords); \
    MR_ASSERT_OFFSET(MrBuiltCaps, pad, MR_OFFSET_MrBuiltCaps_pad); \
    static_assert(sizeof(MrBuilt) == MR_SIZE_MrBuilt, "MrBuilt: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrBuilt, col, MR_OFFSET_MrBuilt_col); \
    MR_ASSERT_OFFSET(MrBuilt, validity, MR_OFFSET_MrBuilt_validity); \
    MR_ASSERT_OFFSET(MrBuilt, geom_offsets, MR_OFFSET_MrBuilt_geom_offsets); \
    MR_ASSERT_OFFSET(MrBuilt, kind, MR_OFFSET_MrBuilt_kind); \
    MR_ASSERT_OFFSET(MrBuilt, pad, MR_OFFSET_MrBuilt_pad); \
    static_assert(sizeof(MrScratchTable) == MR_SIZE_MrScratchTable, "MrScratchTable: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrScratchTable, base, MR_OFFSET_MrScratchTable_base); \
    MR_ASSERT_OFFSET(MrScratchTable, threads, MR_OFFSET_MrScratchTable_threads); \
    MR_ASSERT_OFFSET(MrScratchTable, thread_bytes, MR_OFFSET_MrScratchTable_thread_bytes); \
    MR_ASSERT_OFFSET(MrScratchTable, work_bytes, MR_OFFSET_MrScratchTable_work_bytes); \
    MR_ASSERT_OFFSET(MrScratchTable, slot_bytes, MR_OFFSET_MrScratchTable_slot_bytes); \
    MR_ASSERT_OFFSET(MrScratchTable, caps, MR_OFFSET_MrScratchTable_caps); \
    MR_ASSERT_OFFSET(MrScratchTable, slots, MR_OFFSET_MrScratchTable_slots); \
    MR_ASSERT_OFFSET(MrScratchTable, pad, MR_OFFSET_MrScratchTable_pad); \
    static_assert(sizeof(MrSubmit) == MR_SIZE_MrSubmit, "MrSubmit: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrSubmit, job, MR_OFFSET_MrSubmit_job); \
    MR_ASSERT_OFFSET(MrSubmit, chunks, MR_OFFSET_MrSubmit_chunks); \
    MR_ASSERT_OFFSET(MrSubmit, begin, MR_OFFSET_MrSubmit_begin); \
    MR_ASSERT_OFFSET(MrSubmit, end, MR_OFFSET_MrSubmit_end); \
    MR_ASSERT_OFFSET(MrSubmit, rows_begin, MR_OFFSET_MrSubmit_rows_begin); \
    MR_ASSERT_OFFSET(MrSubmit, program, MR_OFFSET_MrSubmit_program); \
    MR_ASSERT_OFFSET(MrSubmit, inputs, MR_OFFSET_MrSubmit_inputs); \
    MR_ASSERT_OFFSET(MrSubmit, outputs, MR_OFFSET_MrSubmit_outputs); \
    static_assert(sizeof(MrComplete) == MR_SIZE_MrComplete, "MrComplete: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrComplete, job, MR_OFFSET_MrComplete_job); \
    MR_ASSERT_OFFSET(MrComplete, status, MR_OFFSET_MrComplete_status); \
    MR_ASSERT_OFFSET(MrComplete, hits, MR_OFFSET_MrComplete_hits); \
    MR_ASSERT_OFFSET(MrComplete, taken, MR_OFFSET_MrComplete_taken); \
    MR_ASSERT_OFFSET(MrComplete, first, MR_OFFSET_MrComplete_first); \
    static_assert(sizeof(MrOutput) == MR_SIZE_MrOutput, "MrOutput: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrOutput, kind, MR_OFFSET_MrOutput_kind); \
    MR_ASSERT_OFFSET(MrOutput, pad, MR_OFFSET_MrOutput_pad); \
    MR_ASSERT_OFFSET(MrOutput, values, MR_OFFSET_MrOutput_values); \
    MR_ASSERT_OFFSET(MrOutput, valid, MR_OFFSET_MrOutput_valid); \
    MR_ASSERT_OFFSET(MrOutput, bools, MR_OFFSET_MrOutput_bools); \
    MR_ASSERT_OFFSET(MrOutput, hits, MR_OFFSET_MrOutput_hits); \
    MR_ASSERT_OFFSET(MrOutput, hit_capacity, MR_OFFSET_MrOutput_hit_capacity); \
    MR_ASSERT_OFFSET(MrOutput, runs, MR_OFFSET_MrOutput_runs); \
    MR_ASSERT_OFFSET(MrOutput, run_capacity, MR_OFFSET_MrOutput_run_capacity); \
    static_assert(sizeof(MrAcc) == MR_SIZE_MrAcc, "MrAcc: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrAcc, cursor, MR_OFFSET_MrAcc_cursor); \
    MR_ASSERT_OFFSET(MrAcc, runs, MR_OFFSET_MrAcc_runs); \
    MR_ASSERT_OFFSET(MrAcc, sum, MR_OFFSET_MrAcc_sum); \
    MR_ASSERT_OFFSET(MrAcc, any, MR_OFFSET_MrAcc_any); \
    MR_ASSERT_OFFSET(MrAcc, pad, MR_OFFSET_MrAcc_pad); \
    static_assert(sizeof(MrError) == MR_SIZE_MrError, "MrError: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrError, code, MR_OFFSET_MrError_code); \
    MR_ASSERT_OFFSET(MrError, pc, MR_OFFSET_MrError_pc); \
    MR_ASSERT_OFFSET(MrError, row, MR_OFFSET_MrError_row); \
    static_assert(sizeof(MrJobHead) == MR_SIZE_MrJobHead, "MrJobHead: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrJobHead, program, MR_OFFSET_MrJobHead_program); \
    MR_ASSERT_OFFSET(MrJobHead, inputs, MR_OFFSET_MrJobHead_inputs); \
    MR_ASSERT_OFFSET(MrJobHead, outputs, MR_OFFSET_MrJobHead_outputs); \
    MR_ASSERT_OFFSET(MrJobHead, rows_begin, MR_OFFSET_MrJobHead_rows_begin); \
    MR_ASSERT_OFFSET(MrJobHead, rows_end, MR_OFFSET_MrJobHead_rows_end); \
    MR_ASSERT_OFFSET(MrJobHead, chunks, MR_OFFSET_MrJobHead_chunks); \
    MR_ASSERT_OFFSET(MrJobHead, noutputs, MR_OFFSET_MrJobHead_noutputs); \
    static_assert(sizeof(MrJob) == MR_SIZE_MrJob, "MrJob: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrJob, head, MR_OFFSET_MrJob_head); \
    MR_ASSERT_OFFSET(MrJob, error, MR_OFFSET_MrJob_error); \
    MR_ASSERT_OFFSET(MrJob, results, MR_OFFSET_MrJob_results); \
    static_assert(sizeof(MrSlotState) == MR_SIZE_MrSlotState, "MrSlotState: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrSlotState, done, MR_OFFSET_MrSlotState_done); \
    MR_ASSERT_OFFSET(MrSlotState, flags, MR_OFFSET_MrSlotState_flags); \
    MR_ASSERT_OFFSET(MrSlotState, error_claim, MR_OFFSET_MrSlotState_error_claim); \
    MR_ASSERT_OFFSET(MrSlotState, cancel, MR_OFFSET_MrSlotState_cancel); \
    MR_ASSERT_OFFSET(MrSlotState, acc, MR_OFFSET_MrSlotState_acc); \
    static_assert(sizeof(MrDeviceState) == MR_SIZE_MrDeviceState, "MrDeviceState: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrDeviceState, submit_claim, MR_OFFSET_MrDeviceState_submit_claim); \
    MR_ASSERT_OFFSET(MrDeviceState, complete_claim, MR_OFFSET_MrDeviceState_complete_claim); \
    MR_ASSERT_OFFSET(MrDeviceState, taken, MR_OFFSET_MrDeviceState_taken); \
    MR_ASSERT_OFFSET(MrDeviceState, entered, MR_OFFSET_MrDeviceState_entered); \
    MR_ASSERT_OFFSET(MrDeviceState, exited, MR_OFFSET_MrDeviceState_exited); \
    MR_ASSERT_OFFSET(MrDeviceState, stopping, MR_OFFSET_MrDeviceState_stopping); \
    MR_ASSERT_OFFSET(MrDeviceState, pad, MR_OFFSET_MrDeviceState_pad); \
    static_assert(sizeof(MrControl) == MR_SIZE_MrControl, "MrControl: size differs from the Rust ABI"); \
    MR_ASSERT_OFFSET(MrControl, submit, MR_OFFSET_MrControl_submit); \
    MR_ASSERT_OFFSET(MrControl, complete, MR_OFFSET_MrControl_complete); \
    MR_ASSERT_OFFSET(MrControl, jobs, MR_OFFSET_MrControl_jobs); \
    MR_ASSERT_OFFSET(MrControl, state, MR_OFFSET_MrControl_state); \
    MR_ASSERT_OFFSET(MrControl, submit_mask, MR_OFFSET_MrControl_submit_mask); \
    MR_ASSERT_OFFSET(MrControl, complete_mask, MR_OFFSET_MrControl_complete_mask); \
    MR_ASSERT_OFFSET(MrControl, submit_slots_offset, MR_OFFSET_MrControl_submit_slots_offset); \
    MR_ASSERT_OFFSET(MrControl, complete_slots_offset, MR_OFFSET_MrControl_complete_slots_offset); \
    MR_ASSERT_OFFSET(MrControl, job_slots, MR_OFFSET_MrControl_job_slots); \
    MR_ASSERT_OFFSET(MrControl, backoff_ns, MR_OFFSET_MrControl_backoff_ns); \
    MR_ASSERT_OFFSET(MrControl, protocol, MR_OFFSET_MrControl_protocol); \
    MR_ASSERT_OFFSET(MrControl, pad, MR_OFFSET_MrControl_pad); \
    MR_ASSERT_OFFSET(MrControl, stop, MR_OFFSET_MrControl_stop); \
    static_assert(true, "MR_CHECK_ABI")

#endif  // MR_ABI_GEN_CUH
