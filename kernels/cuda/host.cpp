// host.cpp — the device sources built as host C++ (MR_HOST), for tests on machines without a
// GPU: the meridian-cuda-host crate compiles this file with the `cc` crate and calls these
// entry points from Rust.
//
// - mr_host_run_megakernel runs the real megakernel with each block a group of host threads
//   (barriers for __syncthreads, the block's shared state in one heap object), against rings
//   and job records in ordinary memory, until the control block says stop.
// - The mr_host_* geometry functions call the device geometry library directly, so tests can
//   hold each function against its Rust counterpart.
#define MR_HOST 1
#include "megakernel.cu"

#include <memory>
#include <new>
#include <vector>

thread_local MrHostThread mr_host_thread;

extern "C" {

// The size of the megakernel's per-block shared state (for the emulator's bookkeeping).
u64 mr_host_block_shared_bytes() { return sizeof(MrBlockShared); }

// Mapped host memory of an emulated device: accesses there are counted (MrHostCounts).
void mr_host_map(const void* p, u64 len) {
    std::unique_lock<std::shared_mutex> g(mr_host_mapped_lock);
    mr_host_mapped[(u64)(uintptr_t)p] = len;
}
void mr_host_unmap(const void* p) {
    std::unique_lock<std::shared_mutex> g(mr_host_mapped_lock);
    mr_host_mapped.erase((u64)(uintptr_t)p);
}

// Runs the megakernel on `blocks` × `threads` host threads and returns when every block has
// left (after `stop`), counting its traffic with mapped memory into `counts` (six u64:
// reads, idle polls, writes, system fences, device fences, overruns; may be null). Returns
// 0, or -1 for a launch the device would refuse.
int mr_host_run_megakernel(MrControl* ctl, u32 blocks, u32 threads, MrHostCounts* counts) {
    if (blocks == 0 || threads == 0 || threads > MR_MAX_BLOCK) return -1;
    mr_host_launch<MrBlockShared>(blocks, threads, blocks, counts, [=] { mr_megakernel(ctl); });
    return 0;
}

// Runs the per-job kernel over rows [begin, end) on this thread (one emulated block per row).
void mr_host_run_rows(const MrProgram* prog, const MrInput* inputs, const MrOutput* outputs, u64 rows_begin,
                      u64 begin, u64 end, MrAcc* acc, MrError* error) {
    mr_host_each_row(end - begin, [=] { mr_run_rows(prog, inputs, outputs, rows_begin, begin, end, acc, error); });
}

double mr_host_orient(double ax, double ay, double bx, double by, double cx, double cy) {
    return mr_orient(ax, ay, bx, by, cx, cy);
}

double mr_host_hypot(double x, double y) { return mr_hypot(x, y); }

// MR_INTERIOR / MR_BOUNDARY / MR_EXTERIOR, or 3 for a null row.
u32 mr_host_locate_point(const MrColumn* c, u64 row, double x, double y) {
    MrGeom g;
    if (!mr_geom(c, row, g)) return 3;
    return mr_locate_point(g, x, y);
}

// out: area, length, bbox (4), centroid (2), npoints. Returns 0 for a null row, 1 otherwise.
int mr_host_measures(const MrColumn* c, u64 row, double* out) {
    MrGeom g;
    if (!mr_geom(c, row, g)) return 0;
    out[0] = mr_area(g);
    out[1] = mr_length(g);
    MrRect r = mr_bbox(g);
    out[2] = r.min_x;
    out[3] = r.min_y;
    out[4] = r.max_x;
    out[5] = r.max_y;
    double x = MR_NAN, y = MR_NAN;
    if (!mr_centroid(g, x, y)) x = y = MR_NAN;
    out[6] = x;
    out[7] = y;
    out[8] = (double)mr_num_points(g);
    return 1;
}

// preds: intersects, contains, covers, touches, disjoint, dwithin(dist); *distance.
// Returns 0 when either row is null.
int mr_host_pair(const MrColumn* a, u64 ra, const MrColumn* b, u64 rb, double dist, u8* preds, double* distance) {
    MrGeom ga, gb;
    if (!mr_geom(a, ra, ga) || !mr_geom(b, rb, gb)) return 0;
    preds[0] = mr_intersects(ga, gb);
    preds[1] = mr_contains(ga, gb);
    preds[2] = mr_covers(ga, gb);
    preds[3] = mr_touches(ga, gb);
    preds[4] = mr_disjoint(ga, gb);
    preds[5] = mr_dwithin(ga, gb, dist);
    *distance = mr_distance(ga, gb);
    return 1;
}

// The DE-9IM matrix, row-major (I, B, E), -1 for F. Returns 0 when a row is null or empty.
int mr_host_relate(const MrColumn* a, u64 ra, const MrColumn* b, u64 rb, i32* out) {
    MrGeom ga, gb;
    if (!mr_geom(a, ra, ga) || !mr_geom(b, rb, gb) || mr_is_empty(ga) || mr_is_empty(gb)) return 0;
    MrMatrix im = mr_relate(ga, gb);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) out[3 * i + j] = im.m[i][j];
    return 1;
}

// Bytes a slot with capacities `caps` takes, and simplify's work area.
u64 mr_host_built_bytes(const MrBuiltCaps* caps) { return mr_built_bytes(*caps); }
u64 mr_host_simplify_work_bytes(const MrBuiltCaps* caps) { return mr_simplify_work_bytes(*caps); }

// affine (op 0) or simplify (op 1, tolerance m[0]) of row `row` of `c`, built in `scratch`
// (simplify's work area, then the slot); `*out` is the slot's one-row column. Returns -1 for
// a null row, else MR_BUILD_*.
int mr_host_construct(const MrColumn* c, u64 row, u32 op, const double* m, const MrBuiltCaps* caps, u8* scratch,
                      MrColumn* out) {
    MrGeom g;
    if (!mr_geom(c, row, g)) return -1;
    u64 work = mr_simplify_work_bytes(*caps);
    MrBuilt* b = mr_built_at(scratch + work, *caps);
    u32 r = op == 0 ? mr_build_affine(g, m, *caps, b) : mr_build_simplify(g, m[0], *caps, b, scratch);
    *out = b->col;
    return (int)r;
}

u32 mr_host_slabs_locate(const MrIndex* ix, u64 part, double x, double y) { return mr_slabs_locate(*ix, part, x, y); }

}  // extern "C"
