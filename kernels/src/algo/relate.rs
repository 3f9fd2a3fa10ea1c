//! The DE-9IM intersection matrix of two geometries.
//!
//! Method (the idea behind JTS's RelateNG, written from scratch): every edge of one geometry
//! is split ("noded") at each point where the other geometry's edges cross it, touch it or
//! start/stop overlapping it. Between two nodes the location relative to the other geometry
//! cannot change, so each piece is classified by one point-location test of its midpoint
//! (or, for a piece lying on an edge of the other geometry, by that edge). Nodes, isolated
//! points and line endpoints are located directly. For two polygons, the side of each edge
//! the interior lies on decides the interior/exterior entries.
//!
//! Robustness: all orientation and on-segment decisions are exact. Two things are rounded:
//! crossing points of two edges (their location is taken from the edges that produced them
//! rather than re-tested), and the midpoint used to classify a piece. So a piece only one or
//! two ulps long — an edge ending 1 ulp from a vertex of the other geometry — can be
//! misclassified, and two distinct nodes whose parameters along an edge round to the same
//! value are merged. Inputs must be valid OGC geometries (no self-intersecting rings).

use super::locate::{locate_point, within_box, Location};
use super::measure::{is_ccw, Rect};
use super::orient::orient;
use super::Xy;
use crate::column::Geom;

/// A DE-9IM matrix: for each pair of (interior, boundary, exterior) of `a` and of `b`, the
/// dimension of their intersection (`None` = empty, written `F`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IntersectionMatrix([[i8; 3]; 3]);

const F: i8 = -1;

fn idx(l: Location) -> usize {
    match l {
        Location::Interior => 0,
        Location::Boundary => 1,
        Location::Exterior => 2,
    }
}

impl IntersectionMatrix {
    /// The dimension of `a`'s `la` intersected with `b`'s `lb`, `None` when empty.
    pub fn get(&self, la: Location, lb: Location) -> Option<u8> {
        u8::try_from(self.0[idx(la)][idx(lb)]).ok()
    }

    /// True when the entry is non-empty.
    pub fn is_set(&self, la: Location, lb: Location) -> bool {
        self.0[idx(la)][idx(lb)] != F
    }

    fn raise(&mut self, la: Location, lb: Location, dim: i8) {
        let e = &mut self.0[idx(la)][idx(lb)];
        *e = (*e).max(dim);
    }

    /// Matches a 9-character DE-9IM pattern of `T F * 0 1 2` (case-insensitive). A pattern
    /// of the wrong length never matches.
    ///
    /// ```
    /// # use meridian_kernels::{algo, column::ColumnBuilder};
    /// let mut b = ColumnBuilder::new();
    /// b.push_polygon(&[&[(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0), (0.0, 0.0)]])?;
    /// b.push_point(1.0, 1.0)?;
    /// let c = b.finish();
    /// let im = algo::relate(&c.get(0).unwrap(), &c.get(1).unwrap());
    /// assert_eq!(im.to_string(), "0F2FF1FF2");
    /// assert!(im.matches("T*****FF*")); // contains
    /// # Ok::<(), meridian_kernels::column::ColumnError>(())
    /// ```
    pub fn matches(&self, pattern: &str) -> bool {
        let p = pattern.as_bytes();
        p.len() == 9
            && self.0.iter().flatten().zip(p).all(|(&d, &c)| match c.to_ascii_uppercase() {
                b'*' => true,
                b'T' => d != F,
                b'F' => d == F,
                b'0' => d == 0,
                b'1' => d == 1,
                b'2' => d == 2,
                _ => false,
            })
    }

    /// The matrix with `a` and `b` swapped.
    pub fn transpose(&self) -> IntersectionMatrix {
        let mut t = [[F; 3]; 3];
        for (i, row) in self.0.iter().enumerate() {
            for (j, &d) in row.iter().enumerate() {
                t[j][i] = d;
            }
        }
        IntersectionMatrix(t)
    }
}

impl std::fmt::Display for IntersectionMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for &d in self.0.iter().flatten() {
            f.write_str(match d {
                0 => "0",
                1 => "1",
                2 => "2",
                _ => "F",
            })?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for IntersectionMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IntersectionMatrix({self})")
    }
}

/// An edge of a line (`left_interior: None`) or of a polygon ring (`Some(side)`).
struct Edge {
    a: Xy,
    b: Xy,
    left_interior: Option<bool>,
    rect: Rect,
}

/// A geometry taken apart for relate: its edges, isolated points and line boundary.
struct Topo<'a> {
    geom: Geom<'a>,
    dim: u8,
    edges: Vec<Edge>,
    points: Vec<Xy>,
    boundary: Vec<Xy>,
}

impl<'a> Topo<'a> {
    fn new(geom: Geom<'a>) -> Self {
        let dim = geom.dimension();
        let mut t = Topo { geom, dim, edges: Vec::new(), points: Vec::new(), boundary: Vec::new() };
        match dim {
            0 => t.points = geom.coords().collect(),
            1 => {
                let mut ends: Vec<Xy> = Vec::new();
                for r in geom.rings() {
                    if r.coords().all(|c| c == r.at(0)) {
                        // A zero-length line is a point (as in JTS).
                        t.points.push(r.at(0));
                        continue;
                    }
                    t.push_edges(&r, None);
                    let (first, last) = (r.at(0), r.at(r.len() - 1));
                    if first != last {
                        ends.extend([first, last]);
                    }
                }
                ends.sort_by(|p, q| p.0.total_cmp(&q.0).then(p.1.total_cmp(&q.1)));
                for run in ends.chunk_by(|p, q| p == q) {
                    if run.len() % 2 == 1 {
                        t.boundary.push(run[0]);
                    }
                }
                if t.edges.is_empty() {
                    t.dim = 0;
                }
            }
            _ => {
                for part in geom.parts() {
                    for (i, r) in part.rings().enumerate() {
                        let ccw = is_ccw(&r);
                        t.push_edges(&r, Some(ccw != (i > 0)));
                    }
                }
            }
        }
        t
    }

    fn push_edges(&mut self, r: &crate::column::Ring<'_>, left_interior: Option<bool>) {
        for (a, b) in r.segments().filter(|(a, b)| a != b) {
            self.edges.push(Edge { a, b, left_interior, rect: Rect::of([a, b]) });
        }
    }

    fn is_boundary_point(&self, p: Xy) -> bool {
        self.boundary.contains(&p)
    }

    /// Dimension of the boundary, `F` when it is empty.
    fn boundary_dim(&self) -> i8 {
        match self.dim {
            2 => 1,
            1 if !self.boundary.is_empty() => 0,
            _ => F,
        }
    }
}

/// Computes the DE-9IM matrix of `a` and `b`. See the module documentation for the method
/// and its robustness.
pub fn relate(a: &Geom<'_>, b: &Geom<'_>) -> IntersectionMatrix {
    use Location::*;
    let mut im = IntersectionMatrix([[F; 3]; 3]);
    im.raise(Exterior, Exterior, 2);
    let (ta, tb) = (Topo::new(*a), Topo::new(*b));
    if a.is_empty() || b.is_empty() {
        if !a.is_empty() {
            im.raise(Interior, Exterior, ta.dim as i8);
            im.raise(Boundary, Exterior, ta.boundary_dim());
        }
        if !b.is_empty() {
            im.raise(Exterior, Interior, tb.dim as i8);
            im.raise(Exterior, Boundary, tb.boundary_dim());
        }
        return im;
    }
    one_way(&ta, &tb, &mut |x, y, d| im.raise(x, y, d));
    one_way(&tb, &ta, &mut |y, x, d| im.raise(x, y, d));
    if ta.dim == 2 && tb.dim < 2 {
        im.raise(Interior, Exterior, 2);
    }
    if tb.dim == 2 && ta.dim < 2 {
        im.raise(Exterior, Interior, 2);
    }
    im
}

/// Everything `from` contributes located against `to`; `set(from_loc, to_loc, dim)`.
fn one_way(from: &Topo<'_>, to: &Topo<'_>, set: &mut dyn FnMut(Location, Location, i8)) {
    use Location::*;
    for &p in &from.points {
        set(Interior, locate_point(&to.geom, p), 0);
    }
    for &p in &from.boundary {
        set(Boundary, locate_point(&to.geom, p), 0);
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut overlaps: Vec<(f64, f64, &Edge)> = Vec::new();
    for e in &from.edges {
        nodes.clear();
        overlaps.clear();
        node_edge(e, to, &mut nodes, &mut overlaps);
        let role = if e.left_interior.is_some() { Boundary } else { Interior };
        for n in &nodes {
            if role == Interior && from.is_boundary_point(n.p) {
                continue; // line endpoints were located above, as boundary
            }
            set(role, n.loc.unwrap_or_else(|| locate_point(&to.geom, n.p)), 0);
        }
        for w in nodes.windows(2) {
            let (n0, n1) = (&w[0], &w[1]);
            let shared = overlaps.iter().find(|o| o.0 <= n0.t && n1.t <= o.1).map(|o| o.2);
            let loc = match shared {
                Some(f) if f.left_interior.is_some() => Boundary,
                Some(_) => Interior,
                None => locate_point(&to.geom, ((n0.p.0 + n1.p.0) / 2.0, (n0.p.1 + n1.p.1) / 2.0)),
            };
            set(role, loc, 1);
            let (Some(left), true) = (e.left_interior, to.dim == 2) else { continue };
            // Two polygons: which side of this piece is whose interior.
            match (loc, shared) {
                (Interior, _) => {
                    set(Interior, Interior, 2);
                    set(Exterior, Interior, 2);
                }
                (Exterior, _) => set(Interior, Exterior, 2),
                (Boundary, Some(f)) => {
                    let same_dir =
                        (e.b.0 - e.a.0) * (f.b.0 - f.a.0) + (e.b.1 - e.a.1) * (f.b.1 - f.a.1) > 0.0;
                    if (Some(left) == f.left_interior) == same_dir {
                        set(Interior, Interior, 2);
                    } else {
                        set(Interior, Exterior, 2);
                        set(Exterior, Interior, 2);
                    }
                }
                (Boundary, None) => {}
            }
        }
    }
}

/// A point on an edge: its parameter along the edge, and its location in the other geometry
/// when it is known without a test (crossing points, whose coordinates are rounded).
struct Node {
    t: f64,
    p: Xy,
    loc: Option<Location>,
}

fn param(a: Xy, b: Xy, p: Xy) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    if dx.abs() >= dy.abs() {
        (p.0 - a.0) / dx
    } else {
        (p.1 - a.1) / dy
    }
}

/// Splits edge `e` at every point where an edge of `to` meets it; records collinear overlaps
/// as parameter intervals. Leaves `nodes` sorted by parameter without duplicates.
fn node_edge<'t>(
    e: &Edge,
    to: &'t Topo<'_>,
    nodes: &mut Vec<Node>,
    overlaps: &mut Vec<(f64, f64, &'t Edge)>,
) {
    let (a, b) = (e.a, e.b);
    nodes.push(Node { t: 0.0, p: a, loc: None });
    nodes.push(Node { t: 1.0, p: b, loc: None });
    let vertex = |v: Xy, nodes: &mut Vec<Node>| {
        if v != a && v != b && within_box(a, b, v) {
            nodes.push(Node { t: param(a, b, v), p: v, loc: None });
        }
    };
    for &p in to.points.iter().filter(|&&p| orient(a, b, p) == 0.0) {
        vertex(p, nodes);
    }
    for f in to.edges.iter().filter(|f| f.rect.intersects(&e.rect)) {
        let o1 = orient(a, b, f.a);
        let o2 = orient(a, b, f.b);
        if o1 == 0.0 && o2 == 0.0 {
            let (t1, t2) = (param(a, b, f.a), param(a, b, f.b));
            let (lo, hi) = (t1.min(t2).max(0.0), t1.max(t2).min(1.0));
            if lo < hi {
                overlaps.push((lo, hi, f));
            }
            vertex(f.a, nodes);
            vertex(f.b, nodes);
            continue;
        }
        if o1 == 0.0 {
            vertex(f.a, nodes);
        }
        if o2 == 0.0 {
            vertex(f.b, nodes);
        }
        if (o1 > 0.0 && o2 < 0.0) || (o1 < 0.0 && o2 > 0.0) {
            let o3 = orient(f.a, f.b, a);
            let o4 = orient(f.a, f.b, b);
            if (o3 > 0.0 && o4 < 0.0) || (o3 < 0.0 && o4 > 0.0) {
                let p = crossing(a, b, f.a, f.b);
                let loc = if f.left_interior.is_some() { Location::Boundary } else { Location::Interior };
                nodes.push(Node { t: param(a, b, p).clamp(0.0, 1.0), p, loc: Some(loc) });
            }
        }
    }
    // Exact nodes (loc None) sort before rounded ones at the same parameter and win the dedup.
    nodes.sort_by(|m, n| m.t.total_cmp(&n.t).then(m.loc.is_some().cmp(&n.loc.is_some())));
    nodes.dedup_by(|later, earlier| later.t == earlier.t);
}

/// The crossing point of two properly crossing segments (rounded), clamped into both boxes.
fn crossing(a: Xy, b: Xy, c: Xy, d: Xy) -> Xy {
    let (rx, ry) = (b.0 - a.0, b.1 - a.1);
    let (sx, sy) = (d.0 - c.0, d.1 - c.1);
    let denom = rx * sy - ry * sx;
    let t = ((c.0 - a.0) * sy - (c.1 - a.1) * sx) / denom;
    let p = (a.0 + t * rx, a.1 + t * ry);
    let lo = (a.0.min(b.0).max(c.0.min(d.0)), a.1.min(b.1).max(c.1.min(d.1)));
    let hi = (a.0.max(b.0).min(c.0.max(d.0)), a.1.max(b.1).min(c.1.max(d.1)));
    (p.0.max(lo.0).min(hi.0), p.1.max(lo.1).min(hi.1))
}
