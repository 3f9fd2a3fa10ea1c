// relate.cuh — the DE-9IM matrix and the named predicates (algo/relate.rs,
// algo/predicates.rs), without any allocation.
//
// The CPU version collects each edge's nodes in a vector, sorts them by parameter and drops
// duplicates. A device thread has no vector, so the nodes are produced in that same order by
// selection: each scan over the other geometry's edges finds the smallest node past the last
// one taken, with the same ordering key (parameter by total order, exact nodes before rounded
// ones, then generation order) and the same duplicate rule (equal parameters are one node).
// It costs a scan per node instead of a sort, and gives the same matrix.
#ifndef MR_RELATE_CUH
#define MR_RELATE_CUH

#include "geom.cuh"

#define MR_DIM_F (-1)

struct MrMatrix {
    i32 m[3][3];
};

MR_FN void mr_raise(MrMatrix& im, u32 la, u32 lb, i32 dim) {
    if (im.m[la][lb] < dim) im.m[la][lb] = dim;
}
MR_FN bool mr_set(const MrMatrix& im, u32 la, u32 lb) { return im.m[la][lb] != MR_DIM_F; }

// A geometry taken apart for relate (Topo): its dimension after degenerate lines are
// treated as points. Its points, edges and line boundary are iterated, never stored.
struct MrTopo {
    MrGeom g;
    u32 dim;
};

// A ring all of whose coordinates equal its first (a zero-length line is a point).
MR_FN bool mr_ring_degenerate(const MrColumn* c, u32 r) {
    u32 k0 = mr_ro(c, r), k1 = mr_ro(c, r + 1);
    for (u32 k = k0 + 1; k < k1; k++) {
        if (!(c->x[k] == c->x[k0] && c->y[k] == c->y[k0])) return false;
    }
    return true;
}

MR_FN bool mr_ring_closed(const MrColumn* c, u32 r) {
    u32 k0 = mr_ro(c, r), k1 = mr_ro(c, r + 1);
    return c->x[k0] == c->x[k1 - 1] && c->y[k0] == c->y[k1 - 1];
}

MR_FN MrTopo mr_topo(const MrGeom& g) {
    MrTopo t;
    t.g = g;
    t.dim = mr_dim(g);
    if (t.dim == 1) {
        // Lines whose every ring is a single repeated point have no edges: points (as in JTS).
        bool edges = false;
        for (u32 r = mr_first_ring(g); r < mr_last_ring(g) && !edges; r++) {
            edges = mr_ro(g.c, r + 1) != mr_ro(g.c, r) && !mr_ring_degenerate(g.c, r);
        }
        if (!edges) t.dim = 0;
    }
    return t;
}

// Calls f(x, y) for each isolated point: every coordinate of a puntal geometry, the first
// coordinate of each zero-length line of a lineal one.
template <typename F>
MR_FN void mr_topo_points(const MrTopo& t, F&& f) {
    const MrColumn* c = t.g.c;
    u32 gd = mr_dim(t.g);
    if (gd == 0) {
        for (u32 k = mr_coord_begin(t.g); k < mr_coord_end(t.g); k++) f(c->x[k], c->y[k]);
    } else if (gd == 1) {
        for (u32 r = mr_first_ring(t.g); r < mr_last_ring(t.g); r++) {
            u32 k0 = mr_ro(c, r);
            if (mr_ro(c, r + 1) == k0) continue;
            if (mr_ring_degenerate(c, r)) f(c->x[k0], c->y[k0]);
        }
    }
}

// Calls f(ax, ay, bx, by, ring, hole) for every edge (consecutive distinct coordinates) of
// the lines (ring = the line's ring) or polygon rings (hole = not a part's first ring), in
// the CPU's order. Stops when f returns false.
template <typename F>
MR_FN void mr_topo_edges(const MrTopo& t, F&& f) {
    const MrColumn* c = t.g.c;
    u32 gd = mr_dim(t.g);
    if (gd == 0) return;
    for (u32 p = t.g.p0; p < t.g.p1; p++) {
        u32 r0 = mr_ring_begin(c, p), r1 = mr_ring_end(c, p);
        for (u32 r = r0; r < r1; r++) {
            u32 k0 = mr_ro(c, r), k1 = mr_ro(c, r + 1);
            if (k1 == k0) continue;
            if (gd == 1 && mr_ring_degenerate(c, r)) continue;
            for (u32 k = k0 + 1; k < k1; k++) {
                double ax = c->x[k - 1], ay = c->y[k - 1], bx = c->x[k], by = c->y[k];
                if (ax == bx && ay == by) continue;
                if (!f(ax, ay, bx, by, r, r > r0)) return;
            }
        }
    }
}

// Calls f(x, y) for each endpoint of a non-degenerate, non-closed line, in order.
template <typename F>
MR_FN void mr_topo_ends(const MrTopo& t, F&& f) {
    const MrColumn* c = t.g.c;
    if (mr_dim(t.g) != 1) return;
    for (u32 r = mr_first_ring(t.g); r < mr_last_ring(t.g); r++) {
        u32 k0 = mr_ro(c, r), k1 = mr_ro(c, r + 1);
        if (k1 == k0 || mr_ring_degenerate(c, r) || mr_ring_closed(c, r)) continue;
        f(c->x[k0], c->y[k0]);
        f(c->x[k1 - 1], c->y[k1 - 1]);
    }
}

// A line endpoint shared by an odd number of line ends: on the boundary (mod-2 rule).
MR_FN bool mr_topo_is_boundary(const MrTopo& t, double px, double py) {
    u32 n = 0;
    mr_topo_ends(t, [&](double x, double y) {
        if (x == px && y == py) n++;
    });
    return (n & 1) != 0;
}

// Calls f(x, y) once for each boundary point of a lineal geometry (at its first end).
template <typename F>
MR_FN void mr_topo_boundary(const MrTopo& t, F&& f) {
    u32 index = 0;
    mr_topo_ends(t, [&](double x, double y) {
        u32 mine = index++;
        u32 k = 0;
        bool first = true;
        mr_topo_ends(t, [&](double qx, double qy) {
            if (k < mine && qx == x && qy == y) first = false;
            k++;
        });
        if (first && mr_topo_is_boundary(t, x, y)) f(x, y);
    });
}

MR_FN i32 mr_boundary_dim(const MrTopo& t) {
    if (t.dim == 2) return 1;
    if (t.dim == 1) {
        bool any = false;
        mr_topo_ends(t, [&](double x, double y) {
            if (!any && mr_topo_is_boundary(t, x, y)) any = true;
        });
        if (any) return 0;
    }
    return MR_DIM_F;
}

MR_FN double mr_param(double ax, double ay, double bx, double by, double px, double py) {
    double dx = bx - ax, dy = by - ay;
    if (mr_fabs(dx) >= mr_fabs(dy)) return (px - ax) / dx;
    return (py - ay) / dy;
}

// The crossing point of two properly crossing segments (rounded), clamped into both boxes.
MR_FN void mr_crossing(double ax, double ay, double bx, double by, double cx, double cy, double dx, double dy,
                       double& px, double& py) {
    double rx = bx - ax, ry = by - ay;
    double sx = dx - cx, sy = dy - cy;
    double denom = rx * sy - ry * sx;
    double t = ((cx - ax) * sy - (cy - ay) * sx) / denom;
    double x = ax + t * rx, y = ay + t * ry;
    double lox = mr_max(mr_min(ax, bx), mr_min(cx, dx)), loy = mr_max(mr_min(ay, by), mr_min(cy, dy));
    double hix = mr_min(mr_max(ax, bx), mr_max(cx, dx)), hiy = mr_min(mr_max(ay, by), mr_max(cy, dy));
    px = mr_min(mr_max(x, lox), hix);
    py = mr_min(mr_max(y, loy), hiy);
}

// A point on an edge: its parameter, and its location in the other geometry when known
// without a test (loc < 0: not known).
struct MrNode {
    double t, x, y;
    int loc;
};

// Calls f(node) for every node the other geometry `to` puts on edge a→b besides its two
// ends, in the CPU's push order (node_edge).
template <typename F>
MR_FN void mr_edge_nodes(const MrTopo& to, double ax, double ay, double bx, double by, F&& f) {
    auto vertex = [&](double vx, double vy) {
        bool is_a = vx == ax && vy == ay, is_b = vx == bx && vy == by;
        if (!is_a && !is_b && mr_within_box(ax, ay, bx, by, vx, vy)) {
            f(MrNode{mr_param(ax, ay, bx, by, vx, vy), vx, vy, -1});
        }
    };
    mr_topo_points(to, [&](double px, double py) {
        if (mr_orient(ax, ay, bx, by, px, py) == 0.0) vertex(px, py);
    });
    MrRect er{mr_min(ax, bx), mr_min(ay, by), mr_max(ax, bx), mr_max(ay, by)};
    bool to_areal = to.dim == 2;
    mr_topo_edges(to, [&](double fax, double fay, double fbx, double fby, u32, bool) {
        MrRect fr{mr_min(fax, fbx), mr_min(fay, fby), mr_max(fax, fbx), mr_max(fay, fby)};
        if (!mr_rect_intersects(fr, er)) return true;
        double o1 = mr_orient(ax, ay, bx, by, fax, fay);
        double o2 = mr_orient(ax, ay, bx, by, fbx, fby);
        if (o1 == 0.0 && o2 == 0.0) {
            vertex(fax, fay);
            vertex(fbx, fby);
            return true;
        }
        if (o1 == 0.0) vertex(fax, fay);
        if (o2 == 0.0) vertex(fbx, fby);
        if ((o1 > 0.0 && o2 < 0.0) || (o1 < 0.0 && o2 > 0.0)) {
            double o3 = mr_orient(fax, fay, fbx, fby, ax, ay);
            double o4 = mr_orient(fax, fay, fbx, fby, bx, by);
            if ((o3 > 0.0 && o4 < 0.0) || (o3 < 0.0 && o4 > 0.0)) {
                double px, py;
                mr_crossing(ax, ay, bx, by, fax, fay, fbx, fby, px, py);
                double t = mr_clamp(mr_param(ax, ay, bx, by, px, py), 0.0, 1.0);
                f(MrNode{t, px, py, to_areal ? MR_BOUNDARY : MR_INTERIOR});
            }
        }
        return true;
    });
}

// The sort key of nodes: parameter by total order, then exact before rounded.
MR_FN bool mr_node_before(const MrNode& m, const MrNode& n) {
    int c = mr_total_cmp(m.t, n.t);
    if (c != 0) return c < 0;
    return m.loc < 0 && n.loc >= 0;
}

// The next node of edge a→b after parameter `after` (all nodes when `first`): the least by
// the sort key, the earliest generated on ties. False when there is none.
MR_NOINLINE bool mr_next_node(const MrTopo& to, double ax, double ay, double bx, double by, bool first, double after,
                        MrNode& out) {
    bool found = false;
    auto consider = [&](const MrNode& n) {
        if (!first && !(n.t > after)) return;
        if (!found || mr_node_before(n, out)) {
            out = n;
            found = true;
        }
    };
    consider(MrNode{0.0, ax, ay, -1});
    consider(MrNode{1.0, bx, by, -1});
    mr_edge_nodes(to, ax, ay, bx, by, consider);
    return found;
}

// The first collinear overlap of `to` along a→b (in edge order) that spans [t0, t1]; its
// edge through the out-parameters.
MR_NOINLINE bool mr_shared_edge(const MrTopo& to, double ax, double ay, double bx, double by, double t0, double t1,
                          double& fax, double& fay, double& fbx, double& fby, u32& ring, bool& hole) {
    bool found = false;
    MrRect er{mr_min(ax, bx), mr_min(ay, by), mr_max(ax, bx), mr_max(ay, by)};
    mr_topo_edges(to, [&](double cx, double cy, double dx, double dy, u32 r, bool h) {
        MrRect fr{mr_min(cx, dx), mr_min(cy, dy), mr_max(cx, dx), mr_max(cy, dy)};
        if (!mr_rect_intersects(fr, er)) return true;
        if (mr_orient(ax, ay, bx, by, cx, cy) != 0.0 || mr_orient(ax, ay, bx, by, dx, dy) != 0.0) return true;
        double s1 = mr_param(ax, ay, bx, by, cx, cy), s2 = mr_param(ax, ay, bx, by, dx, dy);
        double lo = mr_max(mr_min(s1, s2), 0.0), hi = mr_min(mr_max(s1, s2), 1.0);
        if (!(lo < hi)) return true;
        if (lo <= t0 && t1 <= hi) {
            fax = cx;
            fay = cy;
            fbx = dx;
            fby = dy;
            ring = r;
            hole = h;
            found = true;
            return false;
        }
        return true;
    });
    return found;
}

// Everything `from` contributes located against `to` (one_way); `set(from_loc, to_loc, dim)`.
template <typename S>
MR_FN void mr_one_way(const MrTopo& from, const MrTopo& to, S&& set) {
    mr_topo_points(from, [&](double x, double y) { set(MR_INTERIOR, mr_locate_point(to.g, x, y), 0); });
    if (from.dim == 1) {
        mr_topo_boundary(from, [&](double x, double y) { set(MR_BOUNDARY, mr_locate_point(to.g, x, y), 0); });
    }
    if (from.dim == 0) return;
    bool from_areal = from.dim == 2;
    u32 ccw_ring = ~0u;
    bool ccw = false;
    mr_topo_edges(from, [&](double ax, double ay, double bx, double by, u32 r, bool hole) {
        bool left = false;
        if (from_areal) {
            if (r != ccw_ring) {
                ccw_ring = r;
                ccw = mr_is_ccw(from.g.c, r);
            }
            left = ccw != hole;
        }
        u32 role = from_areal ? MR_BOUNDARY : MR_INTERIOR;
        MrNode prev{0.0, 0.0, 0.0, -1}, n{0.0, 0.0, 0.0, -1};
        bool have_prev = false;
        while (mr_next_node(to, ax, ay, bx, by, !have_prev, have_prev ? prev.t : 0.0, n)) {
            if (!(role == MR_INTERIOR && mr_topo_is_boundary(from, n.x, n.y))) {
                set(role, n.loc >= 0 ? (u32)n.loc : mr_locate_point(to.g, n.x, n.y), 0);
            }
            if (have_prev) {
                double fax = 0, fay = 0, fbx = 0, fby = 0;
                u32 fr = 0;
                bool fh = false;
                bool shared = mr_shared_edge(to, ax, ay, bx, by, prev.t, n.t, fax, fay, fbx, fby, fr, fh);
                u32 loc;
                if (shared) {
                    loc = to.dim == 2 ? MR_BOUNDARY : MR_INTERIOR;
                } else {
                    loc = mr_locate_point(to.g, (prev.x + n.x) / 2.0, (prev.y + n.y) / 2.0);
                }
                set(role, loc, 1);
                if (from_areal && to.dim == 2) {
                    if (loc == MR_INTERIOR) {
                        set(MR_INTERIOR, MR_INTERIOR, 2);
                        set(MR_EXTERIOR, MR_INTERIOR, 2);
                    } else if (loc == MR_EXTERIOR) {
                        set(MR_INTERIOR, MR_EXTERIOR, 2);
                    } else if (shared) {
                        bool same_dir = (bx - ax) * (fbx - fax) + (by - ay) * (fby - fay) > 0.0;
                        bool f_left = mr_is_ccw(to.g.c, fr) != fh;
                        if ((left == f_left) == same_dir) {
                            set(MR_INTERIOR, MR_INTERIOR, 2);
                        } else {
                            set(MR_INTERIOR, MR_EXTERIOR, 2);
                            set(MR_EXTERIOR, MR_INTERIOR, 2);
                        }
                    }
                }
            }
            prev = n;
            have_prev = true;
        }
        return true;
    });
}

// The DE-9IM matrix of two non-empty geometries (relate).
MR_NOINLINE MrMatrix mr_relate(const MrGeom& a, const MrGeom& b) {
    MrMatrix im;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) im.m[i][j] = MR_DIM_F;
    mr_raise(im, MR_EXTERIOR, MR_EXTERIOR, 2);
    MrTopo ta = mr_topo(a), tb = mr_topo(b);
    mr_one_way(ta, tb, [&](u32 x, u32 y, i32 d) { mr_raise(im, x, y, d); });
    mr_one_way(tb, ta, [&](u32 y, u32 x, i32 d) { mr_raise(im, x, y, d); });
    if (ta.dim == 2 && tb.dim < 2) mr_raise(im, MR_INTERIOR, MR_EXTERIOR, 2);
    if (tb.dim == 2 && ta.dim < 2) mr_raise(im, MR_EXTERIOR, MR_INTERIOR, 2);
    return im;
}

// ---- named predicates --------------------------------------------------------------------

MR_FN bool mr_single_point(const MrGeom& g, double& x, double& y) {
    if (g.family == MR_FAM_POINT || (g.family == MR_FAM_MULTIPOINT && mr_num_points(g) == 1)) {
        u32 k = mr_coord_begin(g);
        if (k >= mr_coord_end(g)) return false;
        x = g.c->x[k];
        y = g.c->y[k];
        return true;
    }
    return false;
}

MR_FN bool mr_may_cover(const MrGeom& a, const MrGeom& b) {
    if (mr_is_empty(a) || mr_is_empty(b)) return false;
    MrRect ba = mr_bbox(a), bb = mr_bbox(b);
    return mr_rect_contains(ba, bb.min_x, bb.min_y) && mr_rect_contains(ba, bb.max_x, bb.max_y);
}

MR_FN bool mr_boxes_meet(const MrGeom& a, const MrGeom& b) { return mr_rect_intersects(mr_bbox(a), mr_bbox(b)); }

MR_NOINLINE bool mr_intersects(const MrGeom& a, const MrGeom& b) {
    if (mr_is_empty(a) || mr_is_empty(b) || !mr_boxes_meet(a, b)) return false;
    double x, y;
    if (mr_single_point(b, x, y)) return mr_locate_point(a, x, y) != MR_EXTERIOR;
    if (mr_single_point(a, x, y)) return mr_locate_point(b, x, y) != MR_EXTERIOR;
    MrMatrix im = mr_relate(a, b);
    return mr_set(im, MR_INTERIOR, MR_INTERIOR) || mr_set(im, MR_INTERIOR, MR_BOUNDARY) ||
           mr_set(im, MR_BOUNDARY, MR_INTERIOR) || mr_set(im, MR_BOUNDARY, MR_BOUNDARY);
}

MR_FN bool mr_disjoint(const MrGeom& a, const MrGeom& b) { return !mr_intersects(a, b); }

MR_NOINLINE bool mr_contains(const MrGeom& a, const MrGeom& b) {
    if (!mr_may_cover(a, b)) return false;
    double x, y;
    if (mr_single_point(b, x, y)) return mr_locate_point(a, x, y) == MR_INTERIOR;
    MrMatrix im = mr_relate(a, b);
    return mr_set(im, MR_INTERIOR, MR_INTERIOR) && !mr_set(im, MR_EXTERIOR, MR_INTERIOR) &&
           !mr_set(im, MR_EXTERIOR, MR_BOUNDARY);
}

MR_NOINLINE bool mr_covers(const MrGeom& a, const MrGeom& b) {
    if (!mr_may_cover(a, b)) return false;
    double x, y;
    if (mr_single_point(b, x, y)) return mr_locate_point(a, x, y) != MR_EXTERIOR;
    MrMatrix im = mr_relate(a, b);
    bool meet = mr_set(im, MR_INTERIOR, MR_INTERIOR) || mr_set(im, MR_INTERIOR, MR_BOUNDARY) ||
                mr_set(im, MR_BOUNDARY, MR_INTERIOR) || mr_set(im, MR_BOUNDARY, MR_BOUNDARY);
    return meet && !mr_set(im, MR_EXTERIOR, MR_INTERIOR) && !mr_set(im, MR_EXTERIOR, MR_BOUNDARY);
}

MR_NOINLINE bool mr_touches(const MrGeom& a, const MrGeom& b) {
    if (mr_is_empty(a) || mr_is_empty(b) || (mr_is_puntal(a) && mr_is_puntal(b)) || !mr_boxes_meet(a, b)) {
        return false;
    }
    MrMatrix im = mr_relate(a, b);
    return !mr_set(im, MR_INTERIOR, MR_INTERIOR) &&
           (mr_set(im, MR_INTERIOR, MR_BOUNDARY) || mr_set(im, MR_BOUNDARY, MR_INTERIOR) ||
            mr_set(im, MR_BOUNDARY, MR_BOUNDARY));
}

#endif  // MR_RELATE_CUH
