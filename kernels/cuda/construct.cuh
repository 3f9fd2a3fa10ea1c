// construct.cuh — `affine` and `simplify` on the device: a new geometry per row, written into
// a one-row column in the thread's scratch (an MrBuilt slot), so every other device op reads
// it as it reads an input's row (MrGeom points at the slot's column).
//
// Each function is `meridian_kernels::algo::transform` followed by ColumnBuilder::push_parts,
// operation for operation: the same coordinates, the same parts and rings, the same empties
// and the same refusals (a coordinate that is not finite or beyond ±MR_MAX_COORD), so results
// match the CPU to the bit. Sizes never grow (affine keeps them, simplify drops), so a slot
// sized for the largest row of the program's inputs holds any construction; the host sizes it
// (runtime/src/cuda/resident.rs) and the functions still check, failing rather than writing
// past it.
#ifndef MR_CONSTRUCT_CUH
#define MR_CONSTRUCT_CUH

#include "geom.cuh"

// ColumnBuilder's bound on a coordinate's magnitude (kernels/src/column/mod.rs MAX_COORD).
#define MR_MAX_COORD 1e150

// Why a construction failed.
#define MR_BUILD_OK 0
#define MR_BUILD_NON_FINITE 1  // a mapped coordinate is NaN, infinite or beyond ±MR_MAX_COORD
#define MR_BUILD_TOO_LARGE 2   // the slot is smaller than the construction (a broken bound)

// The capacities of every slot of a thread (the largest row of the program's inputs).
struct MrBuiltCaps {
    u32 parts;
    u32 rings;
    u32 coords;
    u32 pad;
};

// A slot: a one-row column and the storage its arrays point into (placed by mr_built_at).
struct MrBuilt {
    MrColumn col;
    u64 validity;
    u32 geom_offsets[2];
    u8 kind;
    u8 pad[7];
};

// Both checked against kernels/src/cuda/abi.rs (BuiltCaps, BuiltHeader) by MR_CHECK_ABI().

MR_FN u64 mr_round8(u64 n) { return (n + 7) & ~7ULL; }

// Bytes of one slot with capacities `k`.
MR_FN u64 mr_built_bytes(const MrBuiltCaps& k) {
    return mr_round8(sizeof(MrBuilt)) + mr_round8(4ULL * (k.parts + 1)) + mr_round8(4ULL * (k.rings + 1)) +
           16ULL * k.coords;
}

// Bytes of a thread's work space for simplify: a keep flag and a stack entry per coordinate.
MR_FN u64 mr_simplify_work_bytes(const MrBuiltCaps& k) { return mr_round8(k.coords) + 8ULL * k.coords; }

// Points slot `b`'s column at the storage after it (once per slot; the arrays' contents are
// what each construction writes).
MR_FN MrBuilt* mr_built_at(u8* base, const MrBuiltCaps& k) {
    MrBuilt* b = reinterpret_cast<MrBuilt*>(base);
    u8* at = base + mr_round8(sizeof(MrBuilt));
    u32* parts = reinterpret_cast<u32*>(at);
    at += mr_round8(4ULL * (k.parts + 1));
    u32* rings = reinterpret_cast<u32*>(at);
    at += mr_round8(4ULL * (k.rings + 1));
    double* x = reinterpret_cast<double*>(at);
    double* y = x + k.coords;
    b->validity = 1;
    b->geom_offsets[0] = 0;
    b->geom_offsets[1] = 0;
    b->kind = 0;
    b->col.kinds = &b->kind;
    b->col.geom_offsets = b->geom_offsets;
    b->col.part_offsets = parts;
    b->col.ring_offsets = rings;
    b->col.x = x;
    b->col.y = y;
    b->col.validity = &b->validity;
    b->col.rows = 1;
    b->col.parts = 0;
    return b;
}

// The slot's writable arrays (the column holds them as const for readers).
MR_FN u32* mr_built_parts(MrBuilt* b) { return const_cast<u32*>(b->col.part_offsets); }
MR_FN u32* mr_built_rings(MrBuilt* b) { return const_cast<u32*>(b->col.ring_offsets); }
MR_FN double* mr_built_x(MrBuilt* b) { return const_cast<double*>(b->col.x); }
MR_FN double* mr_built_y(MrBuilt* b) { return const_cast<double*>(b->col.y); }

// |x| <= MR_MAX_COORD and |y| <= MR_MAX_COORD (false for NaN), as ColumnBuilder checks.
MR_FN bool mr_in_range(double x, double y) {
    return x <= MR_MAX_COORD && x >= -MR_MAX_COORD && y <= MR_MAX_COORD && y >= -MR_MAX_COORD;
}

// Starts the slot's row of `family` with no parts.
MR_FN void mr_built_begin(MrBuilt* b, u32 family) {
    b->kind = (u8)family;
    b->geom_offsets[0] = 0;
    b->geom_offsets[1] = 0;
    mr_built_parts(b)[0] = 0;
    mr_built_rings(b)[0] = 0;
    b->col.parts = 0;
}

// Ends the slot's row with `parts` parts.
MR_FN void mr_built_end(MrBuilt* b, u32 parts) {
    b->geom_offsets[1] = parts;
    b->col.parts = parts;
}

// Ends the slot's row with g's parts and rings (their coordinates already written in order).
MR_FN void mr_built_same_shape(const MrGeom& g, MrBuilt* b) {
    const MrColumn* c = g.c;
    u32 r0 = mr_first_ring(g), r1 = mr_last_ring(g), k0 = mr_coord_begin(g);
    u32* po = mr_built_parts(b);
    u32* ro = mr_built_rings(b);
    for (u32 p = g.p0; p < g.p1; p++) po[p - g.p0 + 1] = mr_po(c, p + 1) - r0;
    for (u32 r = r0; r < r1; r++) ro[r - r0 + 1] = mr_ro(c, r + 1) - k0;
    mr_built_end(b, g.p1 - g.p0);
}

// `affine` (algo::affine then push_parts): every coordinate mapped, the structure kept. A
// POINT whose mapped coordinate is NaN in both axes becomes POINT EMPTY (push_point_or_empty);
// any other coordinate out of range fails the row.
MR_NOINLINE u32 mr_build_affine(const MrGeom& g, const double* m, const MrBuiltCaps& k, MrBuilt* b) {
    const MrColumn* c = g.c;
    u32 nparts = g.p1 - g.p0;
    u32 r0 = mr_first_ring(g), r1 = mr_last_ring(g);
    u32 k0 = mr_coord_begin(g), k1 = mr_coord_end(g);
    if (nparts > k.parts || r1 - r0 > k.rings || k1 - k0 > k.coords) return MR_BUILD_TOO_LARGE;
    mr_built_begin(b, g.family);
    double* x = mr_built_x(b);
    double* y = mr_built_y(b);
    if (g.family == MR_FAM_POINT) {
        if (k1 == k0) {
            mr_built_end(b, 0);
            return MR_BUILD_OK;
        }
        double px = c->x[k0], py = c->y[k0];
        double nx = m[0] * px + m[1] * py + m[4];
        double ny = m[2] * px + m[3] * py + m[5];
        if (mr_isnan(nx) && mr_isnan(ny)) {
            mr_built_end(b, 0);
            return MR_BUILD_OK;
        }
        if (!mr_in_range(nx, ny)) return MR_BUILD_NON_FINITE;
        x[0] = nx;
        y[0] = ny;
        mr_built_parts(b)[1] = 1;
        mr_built_rings(b)[1] = 1;
        mr_built_end(b, 1);
        return MR_BUILD_OK;
    }
    for (u32 i = k0; i < k1; i++) {
        double px = c->x[i], py = c->y[i];
        double nx = m[0] * px + m[1] * py + m[4];
        double ny = m[2] * px + m[3] * py + m[5];
        if (!mr_in_range(nx, ny)) return MR_BUILD_NON_FINITE;
        x[i - k0] = nx;
        y[i - k0] = ny;
    }
    mr_built_same_shape(g, b);
    return MR_BUILD_OK;
}

// Douglas–Peucker on coordinates [k0, k1) of `c` (algo::transform's douglas_peucker): marks
// the kept ones in `keep`, using `stack` (a pair of u32 per coordinate) for the ranges to
// split. Returns how many are kept.
MR_FN u32 mr_douglas_peucker(const MrColumn* c, u32 k0, u32 k1, double tol, u8* keep, u32* stack) {
    u32 n = k1 - k0;
    for (u32 i = 0; i < n; i++) keep[i] = 1;
    if (n < 3) return n;
    u32 top = 0;
    stack[0] = 0;
    stack[1] = n - 1;
    top = 1;
    while (top > 0) {
        top--;
        u32 i = stack[2 * top], j = stack[2 * top + 1];
        if (i + 1 >= j) continue;
        double max_d = -1.0;
        u32 max_k = i;
        double ax = c->x[k0 + i], ay = c->y[k0 + i], bx = c->x[k0 + j], by = c->y[k0 + j];
        for (u32 kk = i + 1; kk < j; kk++) {
            double d = mr_segment_distance(c->x[k0 + kk], c->y[k0 + kk], ax, ay, bx, by);
            if (d > max_d) {
                max_d = d;
                max_k = kk;
            }
        }
        if (max_d <= tol) {
            for (u32 kk = i + 1; kk < j; kk++) keep[kk] = 0;
        } else {
            // Pushed as the CPU pushes them: (max_k, j) then (i, max_k), so (i, max_k) is split
            // first. Both ranges are strictly inside (i, j), so entries never outnumber
            // coordinates.
            stack[2 * top] = max_k;
            stack[2 * top + 1] = j;
            top++;
            stack[2 * top] = i;
            stack[2 * top + 1] = max_k;
            top++;
        }
    }
    u32 kept = 0;
    for (u32 i = 0; i < n; i++) kept += keep[i];
    return kept;
}

// `simplify` (algo::simplify then push_parts): points unchanged; each line or ring by
// Douglas–Peucker, a ring also losing its start point when it lies within `tolerance` of the
// segment joining its neighbours; a hole that falls below 4 coordinates is dropped, a shell
// that does empties its polygon. Coordinates are the input's, so nothing can be out of range.
MR_NOINLINE u32 mr_build_simplify(const MrGeom& g, double tolerance, const MrBuiltCaps& k, MrBuilt* b, u8* work) {
    const MrColumn* c = g.c;
    double tol = tolerance > 0.0 ? tolerance : 0.0;
    u32 nparts = g.p1 - g.p0;
    u32 r0 = mr_first_ring(g), r1 = mr_last_ring(g);
    u32 k0 = mr_coord_begin(g), k1 = mr_coord_end(g);
    if (nparts > k.parts || r1 - r0 > k.rings || k1 - k0 > k.coords) return MR_BUILD_TOO_LARGE;
    if (mr_dim(g) == 0) {
        // Points are copied as they are (parts_of with the identity).
        mr_built_begin(b, g.family);
        for (u32 i = k0; i < k1; i++) {
            mr_built_x(b)[i - k0] = c->x[i];
            mr_built_y(b)[i - k0] = c->y[i];
        }
        mr_built_same_shape(g, b);
        return MR_BUILD_OK;
    }
    u8* keep = work;
    u32* stack = reinterpret_cast<u32*>(work + mr_round8(k.coords));
    bool areal = mr_dim(g) == 2;
    mr_built_begin(b, g.family);
    double* x = mr_built_x(b);
    double* y = mr_built_y(b);
    u32* po = mr_built_parts(b);
    u32* ro = mr_built_rings(b);
    u32 out_parts = 0, out_rings = 0, out_coords = 0;
    for (u32 p = g.p0; p < g.p1; p++) {
        u32 part_rings = out_rings, part_coords = out_coords;
        u32 ra = mr_ring_begin(c, p), rb = mr_ring_end(c, p);
        bool shell_gone = false;
        for (u32 r = ra; r < rb && !shell_gone; r++) {
            u32 a = mr_ro(c, r), e = mr_ro(c, r + 1);
            u32 kept = mr_douglas_peucker(c, a, e, tol, keep, stack);
            u32 start = out_coords;
            for (u32 i = 0; i < e - a; i++) {
                if (!keep[i]) continue;
                x[out_coords] = c->x[a + i];
                y[out_coords] = c->y[a + i];
                out_coords++;
            }
            u32 len = kept;
            if (areal && len >= 4 &&
                mr_segment_distance(x[start], y[start], x[start + 1], y[start + 1], x[start + len - 2],
                                    y[start + len - 2]) <= tol) {
                // Drop the start point: the ring becomes out[1 .. len-1] closed on out[1].
                for (u32 i = 0; i + 2 < len; i++) {
                    x[start + i] = x[start + i + 1];
                    y[start + i] = y[start + i + 1];
                }
                x[start + len - 2] = x[start];
                y[start + len - 2] = y[start];
                len -= 1;
                out_coords = start + len;
            }
            if (areal && len < 4) {
                out_coords = start;
                // A shell below 4 coordinates empties its polygon (holes and all).
                if (r == ra) shell_gone = true;
                continue;
            }
            ro[out_rings + 1] = out_coords;
            out_rings++;
        }
        if (shell_gone) {
            out_rings = part_rings;
            out_coords = part_coords;
        }
        // A line part keeps its endpoints, so it is never empty; an areal part may be.
        if (out_rings == part_rings) continue;
        po[out_parts + 1] = out_rings;
        out_parts++;
    }
    mr_built_end(b, out_parts);
    return MR_BUILD_OK;
}

#endif  // MR_CONSTRUCT_CUH
