// index.cuh — queries of an indexed input on the device: the packed R-tree, the edge slabs
// and the cell grid (index/rtree.rs, slabs.rs, grid.rs), reading the host's arrays as they
// were built.
#ifndef MR_INDEX_CUH
#define MR_INDEX_CUH

#include "geom.cuh"

// Deepest R-tree traversal stack the device supports; the host refuses an index whose tree
// could need more (SpatialIndex's node size of 8 needs at most 78).

#define MR_CLASS_INSIDE 0
#define MR_CLASS_OUTSIDE 1
#define MR_CLASS_CHECK 2

// Calls `f(part)` for every part whose box meets `r` (closed boxes), in tree order.
template <typename F>
MR_FN void mr_tree_query(const MrIndex& ix, const MrRect& r, F&& f) {
    if (ix.tree_nodes == 0) return;
    u32 root = ix.tree_nodes - 1;
    auto hit = [&](u32 k) {
        const MrRect& b = ix.tree_boxes[k];
        return (b.min_x <= r.max_x) & (r.min_x <= b.max_x) & (b.min_y <= r.max_y) & (r.min_y <= b.max_y);
    };
    if (!hit(root)) return;
    if (root < ix.tree_leaves) {
        f(ix.tree_start[root]);
        return;
    }
    u32 stack[MR_TREE_STACK];
    stack[0] = root;
    u32 top = 1;
    while (top > 0) {
        u32 k = stack[--top];
        u32 s = ix.tree_start[k], e = ix.tree_end[k];
        bool leaves = s < ix.tree_leaves;
        for (u32 c = s; c < e; c++) {
            if (hit(c)) {
                if (leaves) {
                    f(ix.tree_start[c]);
                } else if (top < MR_TREE_STACK) {
                    stack[top++] = c;
                }
            }
        }
    }
}

// The slab holding height y: monotone in y, clamped to 0..n.
MR_FN u64 mr_slab(double lo, double scale, u64 n, double y) {
    u64 s = mr_sat_u64((y - lo) * scale);
    return s < n - 1 ? s : n - 1;
}

// The crossing-number test with the orientation filter only; -1 when it cannot decide
// (crossing_parity_fast), else the location.
MR_FN int mr_crossing_parity_fast(const double* edges, u32 count, double px, double py) {
    u32 crossings = 0;
    bool unsure = false;
    for (u32 i = 0; i < count; i++) {
        double ax = edges[4 * i], ay = edges[4 * i + 1], bx = edges[4 * i + 2], by = edges[4 * i + 3];
        bool a_above = ay > py;
        bool b_above = by > py;
        bool straddles = a_above != b_above;
        double detleft = (ax - px) * (by - py);
        double detright = (ay - py) * (bx - px);
        double det = detleft - detright;
        double bound = MR_CCWERRBOUND_A * (mr_fabs(detleft) + mr_fabs(detright)) + MR_UNDERFLOW_SLACK;
        unsure |= straddles & !(mr_fabs(det) > bound);  // a NaN determinant is unsure too
        unsure |= (ay == py) | (by == py);
        crossings += (straddles & ((det > 0.0) == b_above)) ? 1u : 0u;
    }
    if (unsure) return -1;
    return (crossings & 1) ? MR_INTERIOR : MR_EXTERIOR;
}

// The edges of part `part`'s slab at p's height, when p can be inside the part (false: it is
// outside).
MR_FN bool mr_slab_edges(const MrIndex& ix, u64 part, double px, double py, const double*& edges, u32& count) {
    const double* s = ix.slab_parts + 4 * part;
    double lo = s[0], scale = s[1];
    u64 first = mr_sat_u64(s[2]), n = mr_sat_u64(s[3]);
    if (n == 0 || py < lo || !(mr_isfinite(px) && mr_isfinite(py))) return false;
    u64 k = first + mr_slab(lo, scale, n, py);
    if (px > ix.slab_max_x[k]) return false;
    u32 a = ix.slab_offsets[k], b = ix.slab_offsets[k + 1];
    edges = ix.slab_edges + 4 * (u64)a;
    count = b - a;
    return true;
}

// Where p lies relative to polygon part `part` where the orientation filter decides it
// (mr_crossing_parity_fast); -1 where it takes exact arithmetic (mr_slabs_locate).
MR_FN int mr_slabs_locate_filtered(const MrIndex& ix, u64 part, double px, double py) {
    const double* edges;
    u32 count;
    if (!mr_slab_edges(ix, part, px, py, edges, count)) return MR_EXTERIOR;
    return mr_crossing_parity_fast(edges, count, px, py);
}

// Where p lies relative to polygon part `part`, from its edge slabs (EdgeSlabs::locate).
MR_NOINLINE u32 mr_slabs_locate(const MrIndex& ix, u64 part, double px, double py) {
    const double* edges;
    u32 count;
    if (!mr_slab_edges(ix, part, px, py, edges, count)) return MR_EXTERIOR;
    int fast = mr_crossing_parity_fast(edges, count, px, py);
    if (fast >= 0) return (u32)fast;
    bool inside = false;
    for (u32 i = 0; i < count; i++) {
        int e = mr_edge_crossing(edges[4 * i], edges[4 * i + 1], edges[4 * i + 2], edges[4 * i + 3], px, py);
        if (e < 0) return MR_BOUNDARY;
        inside ^= (e == 1);
    }
    return inside ? MR_INTERIOR : MR_EXTERIOR;
}

// SpatialIndex::locate_part: the grid's class, or the slabs when it says to check. Unless
// EXACT, -1 where the slabs' orientation filter cannot decide.
template <bool EXACT>
MR_FN int mr_locate_part(const MrIndex& ix, u32 part, u32 cls, double px, double py) {
    if (cls == MR_CLASS_INSIDE) return MR_INTERIOR;
    if (cls == MR_CLASS_OUTSIDE) return MR_EXTERIOR;
    return EXACT ? (int)mr_slabs_locate(ix, part, px, py) : mr_slabs_locate_filtered(ix, part, px, py);
}

// The grid cell p falls in, as [begin, end) of the entries; empty outside the grid (and for
// NaN).
MR_FN void mr_grid_cell(const MrIndex& ix, double px, double py, u32& begin, u32& end) {
    begin = end = 0;
    if (!ix.has_grid) return;
    if (!((ix.grid_min_x <= px) & (px <= ix.grid_max_x) & (ix.grid_min_y <= py) & (py <= ix.grid_max_y))) return;
    u64 i = mr_sat_u64((px - ix.grid_min_x) * ix.grid_sx);
    if (i > ix.grid_nx - 1) i = ix.grid_nx - 1;
    u64 j = mr_sat_u64((py - ix.grid_min_y) * ix.grid_sy);
    if (j > ix.grid_ny - 1) j = ix.grid_ny - 1;
    u64 cell = j * ix.grid_nx + i;
    begin = ix.grid_offsets[cell];
    end = ix.grid_offsets[cell + 1];
}

// Whether grid entry `e` names a part whose box contains p; its part and class.
MR_FN bool mr_grid_entry(const MrIndex& ix, u32 e, double px, double py, u32& part, u32& cls) {
    part = e >> 2;
    cls = e & 3;
    if (cls > MR_CLASS_CHECK) cls = MR_CLASS_CHECK;
    const MrRect& b = ix.grid_boxes[part];
    return (b.min_x <= px) & (px <= b.max_x) & (b.min_y <= py) & (py <= b.max_y);
}

#endif  // MR_INDEX_CUH
