// geom.cuh — rows of a column, and the measures, point location and distance of
// `meridian_kernels::algo`, operation for operation (so results match to the bit; the
// differential tests hold them to that).
//
// A null row never reaches these functions: callers check with mr_geom first. An empty
// geometry does, and each function gives what its Rust counterpart gives for one.
#ifndef MR_GEOM_CUH
#define MR_GEOM_CUH

#include "abi.cuh"
#include "orient.cuh"

#define MR_FAM_POINT 1
#define MR_FAM_LINESTRING 2
#define MR_FAM_POLYGON 3
#define MR_FAM_MULTIPOINT 4
#define MR_FAM_MULTILINESTRING 5
#define MR_FAM_MULTIPOLYGON 6

// DE-9IM locations, in the order relate's matrix indexes them.
#define MR_INTERIOR 0
#define MR_BOUNDARY 1
#define MR_EXTERIOR 2

// One non-null row: its column, row, family and parts [p0, p1).
struct MrGeom {
    const MrColumn* c;
    u32 row;
    u32 family;
    u32 p0;
    u32 p1;
};

MR_FN bool mr_row_null(const MrColumn* c, u64 row) {
    if (row >= c->rows) return true;
    return ((c->validity[row >> 6] >> (row & 63)) & 1ULL) == 0;
}

// A column in the point layout (Layout::Points) has no kinds and no offsets: row r is part
// r, ring r and coordinate r, and has them when it is valid and its x is not NaN (ColumnView).
MR_FN bool mr_points_native(const MrColumn* c) { return c->ring_offsets == nullptr; }

// The first coordinate of ring `r` (the end of ring r - 1).
MR_FN u32 mr_ro(const MrColumn* c, u32 r) { return mr_points_native(c) ? r : c->ring_offsets[r]; }

// The first ring of part `p` (the end of part p - 1). In the point layout the part of an empty
// or null row is never reached: rows' part ranges skip it and the index never finds it.
MR_FN u32 mr_po(const MrColumn* c, u32 p) { return mr_points_native(c) ? p : c->part_offsets[p]; }

// The family id of a row in range (0 for a null row).
MR_FN u32 mr_kind(const MrColumn* c, u64 row) {
    if (mr_points_native(c)) return mr_row_null(c, row) ? 0 : MR_FAM_POINT;
    return c->kinds[row];
}

// The parts [p0, p1) of a row in range.
MR_FN void mr_geom_parts(const MrColumn* c, u64 row, u32& p0, u32& p1) {
    if (mr_points_native(c)) {
        double x = c->x[row];
        p0 = (u32)row;
        p1 = (u32)row + (!mr_row_null(c, row) && x == x ? 1u : 0u);
        return;
    }
    p0 = c->geom_offsets[row];
    p1 = c->geom_offsets[row + 1];
}

// The geometry at `row`; false for a null row.
MR_FN bool mr_geom(const MrColumn* c, u64 row, MrGeom& g) {
    if (mr_row_null(c, row)) return false;
    u32 family = mr_kind(c, row);
    if (family < 1 || family > 6) return false;
    g.c = c;
    g.row = (u32)row;
    g.family = family;
    mr_geom_parts(c, row, g.p0, g.p1);
    return true;
}

// The coordinate of a non-null, non-empty POINT row (ColumnView::point).
MR_FN bool mr_point_of(const MrColumn* c, u64 row, double& x, double& y) {
    if (mr_row_null(c, row) || mr_kind(c, row) != MR_FAM_POINT) return false;
    u32 p0, p1;
    mr_geom_parts(c, row, p0, p1);
    if (p1 == p0) return false;
    u32 k = mr_ro(c, mr_po(c, p0));
    x = c->x[k];
    y = c->y[k];
    return true;
}

MR_FN u32 mr_dim_of(u32 family) {
    switch (family) {
        case MR_FAM_POINT:
        case MR_FAM_MULTIPOINT:
            return 0;
        case MR_FAM_LINESTRING:
        case MR_FAM_MULTILINESTRING:
            return 1;
        default:
            return 2;
    }
}
MR_FN u32 mr_dim(const MrGeom& g) { return mr_dim_of(g.family); }
MR_FN bool mr_is_puntal(const MrGeom& g) { return g.family == MR_FAM_POINT || g.family == MR_FAM_MULTIPOINT; }

// Coordinates [first, end) of the whole geometry (they are contiguous).
MR_FN u32 mr_coord_begin(const MrGeom& g) { return mr_ro(g.c, mr_po(g.c, g.p0)); }
MR_FN u32 mr_coord_end(const MrGeom& g) { return mr_ro(g.c, mr_po(g.c, g.p1)); }
MR_FN u32 mr_num_points(const MrGeom& g) { return mr_coord_end(g) - mr_coord_begin(g); }
MR_FN bool mr_is_empty(const MrGeom& g) { return mr_num_points(g) == 0; }
MR_FN u32 mr_ring_begin(const MrColumn* c, u32 part) { return mr_po(c, part); }
MR_FN u32 mr_ring_end(const MrColumn* c, u32 part) { return mr_po(c, part + 1); }
MR_FN u32 mr_first_ring(const MrGeom& g) { return mr_po(g.c, g.p0); }
MR_FN u32 mr_last_ring(const MrGeom& g) { return mr_po(g.c, g.p1); }

// ---- boxes -------------------------------------------------------------------------------

MR_FN MrRect mr_rect_nan() { return MrRect{MR_NAN, MR_NAN, MR_NAN, MR_NAN}; }
MR_FN bool mr_rect_is_nan(const MrRect& r) { return mr_isnan(r.min_x); }
MR_FN MrRect mr_rect_expand(const MrRect& r, double d) {
    return MrRect{r.min_x - d, r.min_y - d, r.max_x + d, r.max_y + d};
}
MR_FN bool mr_rect_intersects(const MrRect& a, const MrRect& o) {
    return a.min_x <= o.max_x && o.min_x <= a.max_x && a.min_y <= o.max_y && o.min_y <= a.max_y;
}
MR_FN bool mr_rect_contains(const MrRect& r, double x, double y) {
    return r.min_x <= x && x <= r.max_x && r.min_y <= y && y <= r.max_y;
}
// Rect::of over coordinates [k0, k1) of a column.
MR_FN MrRect mr_rect_of(const MrColumn* c, u32 k0, u32 k1) {
    if (k0 >= k1) return mr_rect_nan();
    MrRect r{MR_INF, MR_INF, -MR_INF, -MR_INF};
    for (u32 k = k0; k < k1; k++) {
        double x = c->x[k], y = c->y[k];
        r.min_x = mr_min(r.min_x, x);
        r.min_y = mr_min(r.min_y, y);
        r.max_x = mr_max(r.max_x, x);
        r.max_y = mr_max(r.max_y, y);
    }
    return r;
}
MR_NOINLINE MrRect mr_bbox(const MrGeom& g) { return mr_rect_of(g.c, mr_coord_begin(g), mr_coord_end(g)); }

// ---- measures ----------------------------------------------------------------------------

// Twice the signed area of the closed ring `r` (ring_area2).
MR_FN double mr_ring_area2(const MrColumn* c, u32 r) {
    u32 k0 = mr_ro(c, r), k1 = mr_ro(c, r + 1);
    u32 n = k1 - k0;
    if (n == 0) return 0.0;
    double x0 = c->x[k0], y0 = c->y[k0];
    double s = 0.0;
    for (u32 i = 1; i + 1 < n; i++) {
        double ax = c->x[k0 + i] - x0, ay = c->y[k0 + i] - y0;
        double bx = c->x[k0 + i + 1] - x0, by = c->y[k0 + i + 1] - y0;
        s += ax * by - bx * ay;
    }
    return s;
}

// Whether a closed ring runs counter-clockwise, as JTS Orientation.isCCW decides (is_ccw).
MR_NOINLINE bool mr_is_ccw(const MrColumn* c, u32 r) {
    u32 k0 = mr_ro(c, r), k1 = mr_ro(c, r + 1);
    u32 len = k1 - k0;
    if (len < 1) return false;
    u32 n = len - 1;
    if (n < 3) return false;
    const double* xs = c->x + k0;
    const double* ys = c->y + k0;
    double hix = xs[0], hiy = ys[0], loupx = xs[0], loupy = ys[0];
    u32 i_hi = 0;
    double prev_y = hiy;
    for (u32 i = 1; i <= n; i++) {
        double y = ys[i];
        if (y > prev_y && y >= hiy) {
            hix = xs[i];
            hiy = ys[i];
            i_hi = i;
            loupx = xs[i - 1];
            loupy = ys[i - 1];
        }
        prev_y = y;
    }
    if (i_hi == 0) return false;
    u32 i_down = i_hi;
    for (;;) {
        i_down = (i_down + 1) % n;
        if (i_down == i_hi || ys[i_down] != hiy) break;
    }
    double lodx = xs[i_down], lody = ys[i_down];
    u32 j = i_down > 0 ? i_down - 1 : n - 1;
    double hidx = xs[j], hidy = ys[j];
    if (hix == hidx && hiy == hidy) {
        if ((loupx == hix && loupy == hiy) || (lodx == hix && lody == hiy) || (loupx == lodx && loupy == lody)) {
            return false;
        }
        return mr_orient(loupx, loupy, hix, hiy, lodx, lody) > 0.0;
    }
    return hidx - hix < 0.0;
}

MR_NOINLINE double mr_area(const MrGeom& g) {
    if (mr_dim(g) != 2) return 0.0;
    double total = 0.0;
    for (u32 p = g.p0; p < g.p1; p++) {
        u32 r0 = mr_ring_begin(g.c, p), r1 = mr_ring_end(g.c, p);
        for (u32 r = r0; r < r1; r++) {
            double a = mr_fabs(mr_ring_area2(g.c, r)) / 2.0;
            total += (r == r0) ? a : -a;
        }
    }
    return total;
}

MR_NOINLINE double mr_length(const MrGeom& g) {
    if (mr_dim(g) == 0) return 0.0;
    // Iterator::sum starts from -0.0: an empty line has length -0.0, as on the CPU.
    double total = -0.0;
    for (u32 r = mr_first_ring(g); r < mr_last_ring(g); r++) {
        u32 k0 = mr_ro(g.c, r), k1 = mr_ro(g.c, r + 1);
        for (u32 k = k0 + 1; k < k1; k++) {
            total += mr_hypot(g.c->x[k] - g.c->x[k - 1], g.c->y[k] - g.c->y[k - 1]);
        }
    }
    return total;
}

// Accumulators mirroring JTS Centroid (measure.rs, `Centroid`).
struct MrCentroid {
    bool has_base;
    double bx, by;
    double area2;
    double cg3x, cg3y;
    double line_len;
    double lsx, lsy;
    u64 pts;
    double psx, psy;
};

MR_FN void mr_centroid_point(MrCentroid& c, double x, double y) {
    c.pts += 1;
    c.psx += x;
    c.psy += y;
}

MR_FN void mr_centroid_line(MrCentroid& c, const MrColumn* col, u32 r) {
    u32 k0 = mr_ro(col, r), k1 = mr_ro(col, r + 1);
    double len = 0.0;
    for (u32 k = k0 + 1; k < k1; k++) {
        double ax = col->x[k - 1], ay = col->y[k - 1], bx = col->x[k], by = col->y[k];
        double l = mr_hypot(bx - ax, by - ay);
        if (l == 0.0) continue;
        len += l;
        c.lsx += l * (ax + bx) / 2.0;
        c.lsy += l * (ay + by) / 2.0;
    }
    c.line_len += len;
    if (len == 0.0 && k1 > k0) mr_centroid_point(c, col->x[k0], col->y[k0]);
}

MR_FN void mr_centroid_ring(MrCentroid& c, const MrColumn* col, u32 r, bool hole) {
    u32 k0 = mr_ro(col, r), k1 = mr_ro(col, r + 1);
    if (k1 == k0) return;
    if (!c.has_base) {
        c.has_base = true;
        c.bx = col->x[k0];
        c.by = col->y[k0];
    }
    double bx = c.bx, by = c.by;
    double a2_sum = 0.0, cx = 0.0, cy = 0.0;
    for (u32 k = k0 + 1; k < k1; k++) {
        double p1x = col->x[k - 1], p1y = col->y[k - 1], p2x = col->x[k], p2y = col->y[k];
        double a2 = (p1x - bx) * (p2y - by) - (p2x - bx) * (p1y - by);
        cx += a2 * (p1x - bx + p2x - bx);
        cy += a2 * (p1y - by + p2y - by);
        a2_sum += a2;
    }
    double sign = ((a2_sum < 0.0) == hole) ? 1.0 : -1.0;
    c.cg3x += sign * cx;
    c.cg3y += sign * cy;
    c.area2 += sign * a2_sum;
    mr_centroid_line(c, col, r);
}

// The centroid (JTS semantics); false for an empty geometry.
MR_NOINLINE bool mr_centroid(const MrGeom& g, double& x, double& y) {
    MrCentroid c{};
    c.has_base = false;
    switch (mr_dim(g)) {
        case 0:
            for (u32 k = mr_coord_begin(g); k < mr_coord_end(g); k++) mr_centroid_point(c, g.c->x[k], g.c->y[k]);
            break;
        case 1:
            for (u32 r = mr_first_ring(g); r < mr_last_ring(g); r++) mr_centroid_line(c, g.c, r);
            break;
        default:
            for (u32 p = g.p0; p < g.p1; p++) {
                u32 r0 = mr_ring_begin(g.c, p), r1 = mr_ring_end(g.c, p);
                for (u32 r = r0; r < r1; r++) mr_centroid_ring(c, g.c, r, r > r0);
            }
    }
    if (mr_fabs(c.area2) > 0.0 && c.has_base) {
        x = c.bx + c.cg3x / 3.0 / c.area2;
        y = c.by + c.cg3y / 3.0 / c.area2;
        return true;
    }
    if (c.line_len > 0.0) {
        x = c.lsx / c.line_len;
        y = c.lsy / c.line_len;
        return true;
    }
    if (c.pts > 0) {
        x = c.psx / (double)c.pts;
        y = c.psy / (double)c.pts;
        return true;
    }
    return false;
}

// ---- point location ----------------------------------------------------------------------

MR_FN bool mr_within_box(double ax, double ay, double bx, double by, double px, double py) {
    return mr_min(ax, bx) <= px && px <= mr_max(ax, bx) && mr_min(ay, by) <= py && py <= mr_max(ay, by);
}
MR_FN bool mr_on_segment(double ax, double ay, double bx, double by, double px, double py) {
    return mr_within_box(ax, ay, bx, by, px, py) && mr_orient(ax, ay, bx, by, px, py) == 0.0;
}

// One edge's contribution to the crossing-number test along the ray to +x from p
// (edge_crossing): -1 when p is on the edge, else 1 when the edge crosses the ray, 0 when not.
MR_FN int mr_edge_crossing(double ax, double ay, double bx, double by, double px, double py) {
    bool a_above = ay > py;
    bool b_above = by > py;
    if (a_above != b_above) {
        if (ax < px && bx < px) return 0;
        double o = mr_orient(ax, ay, bx, by, px, py);
        if (o == 0.0) return -1;
        return ((o > 0.0) == b_above) ? 1 : 0;
    }
    if (ay == py || by == py) {
        bool on = (ay == by) ? (mr_min(ax, bx) <= px && px <= mr_max(ax, bx))
                             : ((ax == px && ay == py) || (bx == px && by == py));
        if (on) return -1;
    }
    return 0;
}

// The crossing-number test over the segments of rings [r0, r1) (locate_by_crossings).
MR_FN u32 mr_locate_in_rings(const MrColumn* c, u32 r0, u32 r1, double px, double py) {
    bool inside = false;
    for (u32 r = r0; r < r1; r++) {
        u32 k0 = mr_ro(c, r), k1 = mr_ro(c, r + 1);
        for (u32 k = k0 + 1; k < k1; k++) {
            int e = mr_edge_crossing(c->x[k - 1], c->y[k - 1], c->x[k], c->y[k], px, py);
            if (e < 0) return MR_BOUNDARY;
            inside ^= (e == 1);
        }
    }
    return inside ? MR_INTERIOR : MR_EXTERIOR;
}

// The location of p relative to one polygon part (locate_in_polygon).
MR_FN u32 mr_locate_in_polygon(const MrColumn* c, u32 part, double px, double py) {
    u32 r0 = mr_ring_begin(c, part), r1 = mr_ring_end(c, part);
    if (r0 == r1) return MR_EXTERIOR;
    u32 shell = mr_locate_in_rings(c, r0, r0 + 1, px, py);
    if (shell != MR_INTERIOR) return shell;
    for (u32 r = r0 + 1; r < r1; r++) {
        u32 h = mr_locate_in_rings(c, r, r + 1, px, py);
        if (h == MR_INTERIOR) return MR_EXTERIOR;
        if (h == MR_BOUNDARY) return MR_BOUNDARY;
    }
    return MR_INTERIOR;
}

// The location of p relative to g, with the OGC/JTS boundary rules (locate_point).
MR_NOINLINE u32 mr_locate_point(const MrGeom& g, double px, double py) {
    if (!(mr_isfinite(px) && mr_isfinite(py))) return MR_EXTERIOR;
    const MrColumn* c = g.c;
    switch (mr_dim(g)) {
        case 0: {
            for (u32 k = mr_coord_begin(g); k < mr_coord_end(g); k++) {
                if (c->x[k] == px && c->y[k] == py) return MR_INTERIOR;
            }
            return MR_EXTERIOR;
        }
        case 1: {
            u32 endpoints = 0;
            bool on = false;
            for (u32 r = mr_first_ring(g); r < mr_last_ring(g); r++) {
                u32 k0 = mr_ro(c, r), k1 = mr_ro(c, r + 1);
                if (k1 == k0) continue;
                double fx = c->x[k0], fy = c->y[k0], lx = c->x[k1 - 1], ly = c->y[k1 - 1];
                bool closed = fx == lx && fy == ly;
                if (!closed && ((px == fx && py == fy) || (px == lx && py == ly))) {
                    endpoints++;
                } else if (!on) {
                    for (u32 k = k0 + 1; k < k1 && !on; k++) {
                        on = mr_on_segment(c->x[k - 1], c->y[k - 1], c->x[k], c->y[k], px, py);
                    }
                }
            }
            if (endpoints % 2 == 1) return MR_BOUNDARY;
            if (on || endpoints > 0) return MR_INTERIOR;
            return MR_EXTERIOR;
        }
        default: {
            u32 result = MR_EXTERIOR;
            for (u32 p = g.p0; p < g.p1; p++) {
                u32 l = mr_locate_in_polygon(c, p, px, py);
                if (l == MR_BOUNDARY) return MR_BOUNDARY;
                if (l == MR_INTERIOR) result = MR_INTERIOR;
            }
            return result;
        }
    }
}

// ---- distance ----------------------------------------------------------------------------

MR_FN double mr_segment_distance(double px, double py, double ax, double ay, double bx, double by) {
    double dx = bx - ax, dy = by - ay;
    double len2 = dx * dx + dy * dy;
    if (len2 == 0.0) return mr_hypot(px - ax, py - ay);
    double t = mr_clamp(((px - ax) * dx + (py - ay) * dy) / len2, 0.0, 1.0);
    return mr_hypot(px - (ax + t * dx), py - (ay + t * dy));
}

MR_FN bool mr_opposite(double p, double q) { return (p > 0.0 && q < 0.0) || (p < 0.0 && q > 0.0); }

// Whether the closed segments a–b and c–d share a point (segments_meet, exact).
MR_FN bool mr_segments_meet(double ax, double ay, double bx, double by, double cx, double cy, double dx,
                            double dy) {
    double o1 = mr_orient(ax, ay, bx, by, cx, cy);
    double o2 = mr_orient(ax, ay, bx, by, dx, dy);
    double o3 = mr_orient(cx, cy, dx, dy, ax, ay);
    double o4 = mr_orient(cx, cy, dx, dy, bx, by);
    if (mr_opposite(o1, o2) && mr_opposite(o3, o4)) return true;
    return (o1 == 0.0 && mr_within_box(ax, ay, bx, by, cx, cy)) ||
           (o2 == 0.0 && mr_within_box(ax, ay, bx, by, dx, dy)) ||
           (o3 == 0.0 && mr_within_box(cx, cy, dx, dy, ax, ay)) ||
           (o4 == 0.0 && mr_within_box(cx, cy, dx, dy, bx, by));
}

MR_FN double mr_seg_seg(double ax, double ay, double bx, double by, double cx, double cy, double dx, double dy) {
    if (mr_segments_meet(ax, ay, bx, by, cx, cy, dx, dy)) return 0.0;
    double d = mr_segment_distance(ax, ay, cx, cy, dx, dy);
    d = mr_min(d, mr_segment_distance(bx, by, cx, cy, dx, dy));
    d = mr_min(d, mr_segment_distance(cx, cy, ax, ay, bx, by));
    return mr_min(d, mr_segment_distance(dx, dy, ax, ay, bx, by));
}

// Whether polygonal `p` has some part of `q` (its first coordinate) not exterior to it.
MR_FN bool mr_polygon_touches_part_of(const MrGeom& p, const MrGeom& q) {
    if (mr_dim(p) != 2) return false;
    for (u32 part = q.p0; part < q.p1; part++) {
        u32 r0 = mr_ring_begin(q.c, part), r1 = mr_ring_end(q.c, part);
        if (r0 == r1) continue;
        u32 k = mr_ro(q.c, r0);
        if (mr_ro(q.c, r0 + 1) == k) continue;
        if (mr_locate_point(p, q.c->x[k], q.c->y[k]) != MR_EXTERIOR) return true;
    }
    return false;
}

// The minimum Euclidean distance: 0 when the geometries meet, NaN when either is empty.
MR_NOINLINE double mr_distance(const MrGeom& a, const MrGeom& b) {
    if (mr_is_empty(a) || mr_is_empty(b)) return MR_NAN;
    if (mr_polygon_touches_part_of(a, b) || mr_polygon_touches_part_of(b, a)) return 0.0;
    const MrColumn* ca = a.c;
    const MrColumn* cb = b.c;
    bool a_pts = mr_dim(a) == 0, b_pts = mr_dim(b) == 0;
    double best = MR_INF;
    if (a_pts) {
        for (u32 i = mr_coord_begin(a); i < mr_coord_end(a); i++) {
            double px = ca->x[i], py = ca->y[i];
            if (b_pts) {
                for (u32 j = mr_coord_begin(b); j < mr_coord_end(b); j++) {
                    best = mr_min(best, mr_hypot(px - cb->x[j], py - cb->y[j]));
                }
            } else {
                for (u32 r = mr_first_ring(b); r < mr_last_ring(b); r++) {
                    u32 k0 = mr_ro(cb, r), k1 = mr_ro(cb, r + 1);
                    for (u32 k = k0 + 1; k < k1; k++) {
                        best = mr_min(best, mr_segment_distance(px, py, cb->x[k - 1], cb->y[k - 1], cb->x[k], cb->y[k]));
                    }
                }
            }
        }
        return best;
    }
    for (u32 ra = mr_first_ring(a); ra < mr_last_ring(a); ra++) {
        u32 a0 = mr_ro(ca, ra), a1 = mr_ro(ca, ra + 1);
        for (u32 i = a0 + 1; i < a1; i++) {
            double cx = ca->x[i - 1], cy = ca->y[i - 1], dx = ca->x[i], dy = ca->y[i];
            if (b_pts) {
                for (u32 j = mr_coord_begin(b); j < mr_coord_end(b); j++) {
                    best = mr_min(best, mr_segment_distance(cb->x[j], cb->y[j], cx, cy, dx, dy));
                }
            } else {
                for (u32 rb = mr_first_ring(b); rb < mr_last_ring(b); rb++) {
                    u32 b0 = mr_ro(cb, rb), b1 = mr_ro(cb, rb + 1);
                    for (u32 j = b0 + 1; j < b1; j++) {
                        best = mr_min(best, mr_seg_seg(cx, cy, dx, dy, cb->x[j - 1], cb->y[j - 1], cb->x[j], cb->y[j]));
                        if (best == 0.0) return 0.0;
                    }
                }
            }
        }
    }
    return best;
}

// Whether distance(a, b) <= dist; false for empties and for a negative or NaN dist.
MR_NOINLINE bool mr_dwithin(const MrGeom& a, const MrGeom& b, double dist) {
    if (mr_is_empty(a) || mr_is_empty(b) || mr_isnan(dist) || dist < 0.0) return false;
    if (!mr_rect_intersects(mr_rect_expand(mr_bbox(a), dist), mr_bbox(b))) return false;
    return mr_distance(a, b) <= dist;
}

#endif  // MR_GEOM_CUH
