// abi.cuh — the data the device reads, laid out exactly as the Rust side writes it
// (`meridian_kernels::cuda::abi`, `#[repr(C)]`, the ABI's one source). Its numbers are in the
// generated abi_gen.cuh, and MR_CHECK_ABI() (megakernel.cu) holds these records to the Rust
// sizes and offsets.
//
// A column and its index are the host's flat arrays uploaded unchanged; these records only
// hold their addresses and lengths.
#ifndef MR_ABI_CUH
#define MR_ABI_CUH

#include "platform.cuh"
#include "abi_gen.cuh"

struct MrRect {
    double min_x, min_y, max_x, max_y;
};

// A geometry column: RawColumn's arrays.
struct MrColumn {
    const u8* kinds;           // family id per row (0 for null rows)
    const u32* geom_offsets;   // rows + 1
    const u32* part_offsets;   // parts + 1
    const u32* ring_offsets;   // rings + 1
    const double* x;
    const double* y;
    const u64* validity;       // bit r % 64 of word r / 64: row r is not null
    u64 rows;
    u64 parts;
};

// A SpatialIndex: the packed R-tree over part boxes, the edge slabs, the cell grid.
struct MrIndex {
    // FlatIndex: nodes leaves first, root last.
    const MrRect* tree_boxes;
    const u32* tree_start;
    const u32* tree_end;
    u32 tree_nodes;
    u32 tree_leaves;
    // EdgeSlabs: per part [min_y, scale, first slab, slab count]; per slab its first edge and
    // largest x; edges as [ax, ay, bx, by].
    const double* slab_parts;
    const u32* slab_offsets;
    const double* slab_max_x;
    const double* slab_edges;
    u64 slab_part_count;
    // CellGrid (has_grid): extent, cells per unit, shape, cell offsets, `part << 2 | class`
    // entries, every part's box.
    double grid_min_x, grid_min_y, grid_max_x, grid_max_y;
    double grid_sx, grid_sy;
    u64 grid_nx, grid_ny;
    const u32* grid_offsets;
    const u32* grid_entries;
    const MrRect* grid_boxes;
    // The row of every part.
    const u32* part_rows;
    u64 part_count;
    u32 has_grid;
    u32 areal;  // every non-null row is a polygon or multipolygon
};

// One bound input.
struct MrInput {
    MrColumn col;
    MrIndex idx;
    u32 indexed;
    u32 pad;
};

// The interpreter's whole-program point join (fuse::PointJoin), when the program is one.
struct MrJoin {
    u32 present;        // 0: the program is not a point join
    u32 load;           // input `load` reads
    u32 probe;          // input probed
    u32 output;         // the hits (or count) output
    u8 geom;            // register loaded and probed with
    u8 cand;            // register cnext writes
    u8 pred;            // MR_PRED_*
    u8 operands_fit;    // candidate and probe point in the predicate's places (PointProbe::new)
    u8 cand_first;      // the predicate's first operand is the candidate (else the point)
    u8 count;           // a passing candidate is counted (`count`), not emitted
    u8 pad[2];
};

// A program as the device runs it.
struct MrProgram {
    const u64* code;
    const double* consts;
    u32 ncode;
    u32 nconsts;
    u32 ninputs;
    u32 noutputs;
    MrJoin join;
    u8 out_kinds[MR_MAX_OUTPUTS];  // OutputKind per output (MR_OUT_*)
    u8 red_of[MR_MAX_OUTPUTS];     // per output: its reduction slot (count/sum) or its pending
                                   // geometry slot (geometry), 0xff for none
    u8 red_outputs[MR_MAX_REDUCTIONS];  // per reduction slot: its output
    u32 nred;             // reduction slots used
    u32 ngeom;            // geometry outputs (each has a pending slot, MR_GEOM_OUTPUTS at most)
};

// MR_GEOM_OUTPUTS (abi_gen.cuh): geometry outputs a program may have on the device (each
// thread keeps each one's pending value until the row ends, as the CPU does). MR_PRED_*:
// MrJoin::pred.

#endif  // MR_ABI_CUH
