//! Horizontal edge slabs: a per-polygon accelerator for point-in-polygon.

use crate::algo::{Location, Xy, CCW_ERR_BOUND_A, UNDERFLOW_SLACK};
use crate::column::Part;

/// For every polygon part: its y range cut into equal slabs, and for each slab the edges
/// (of all its rings) whose y range meets the slab, stored inline as `[ax, ay, bx, by]`.
///
/// A point-in-polygon test reads one slab: a crossing-number count over its edges with exact
/// orientation tests, so the answer (interior / boundary / exterior) is the same as testing
/// every edge. Correctness does not depend on rounding in the slab arithmetic: a point's slab
/// and an edge's slab range come from the same monotone function of y, so every edge that
/// crosses the point's horizontal line is in the point's slab.
#[derive(Clone, Debug, Default)]
pub struct EdgeSlabs {
    /// Per part: `[min_y, slabs / height, first slab, slab count]` (the last two are
    /// integers stored as f64, exact below 2^53), so one 32-byte load sets up a query.
    pub(crate) parts: Vec<[f64; 4]>,
    /// Per slab: first edge in `edges`; `slabs + 1` entries.
    pub(crate) slab_offsets: Vec<u32>,
    /// Per slab: the largest x of its edges. A point right of it meets no edge of the slab
    /// and no rightward ray from it can cross one, so it is outside.
    pub(crate) slab_max_x: Vec<f64>,
    /// Edges as `[ax, ay, bx, by]`.
    pub(crate) edges: Vec<[f64; 4]>,
}

/// Average number of edges per slab aimed for.
const EDGES_PER_SLAB: usize = 2;
/// Upper bound on slabs per polygon.
const MAX_SLABS: usize = 4096;
/// Upper bound on the average number of slabs an edge is copied into.
const MAX_COPIES: usize = 8;

impl EdgeSlabs {
    /// Builds slabs for `parts`: `Some(polygon part)` gets slabs, `None` (a part that is not
    /// a polygon) gets none and contains nothing. Part numbers in [`EdgeSlabs::locate`] are
    /// positions in this iterator.
    ///
    /// An edge is copied into every slab its y range spans, so the slab count of a polygon
    /// is halved until an edge is copied into at most eight slabs on average: memory is
    /// linear in the number of edges whatever their shape.
    pub fn build<'a>(parts: impl IntoIterator<Item = Option<Part<'a>>>) -> EdgeSlabs {
        let mut s = EdgeSlabs { slab_offsets: vec![0], ..Default::default() };
        let mut scratch: Vec<Vec<[f64; 4]>> = Vec::new();
        for part in parts {
            let Some(part) = part else {
                s.parts.push([0.0, 0.0, (s.slab_offsets.len() - 1) as f64, 0.0]);
                continue;
            };
            let edges: Vec<[f64; 4]> = part
                .rings()
                .flat_map(|r| r.segments())
                .filter(|(a, b)| a != b)
                .map(|(a, b)| [a.0, a.1, b.0, b.1])
                .collect();
            let (lo, hi) = edges.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), e| {
                (lo.min(e[1]).min(e[3]), hi.max(e[1]).max(e[3]))
            });
            let height = hi - lo;
            let mut n = (edges.len() / EDGES_PER_SLAB).clamp(1, MAX_SLABS);
            let mut scale = if height > 0.0 { n as f64 / height } else { 0.0 };
            let copies = |n: usize, scale: f64| -> usize {
                edges
                    .iter()
                    .map(|e| slab(lo, scale, n, e[1].max(e[3])) - slab(lo, scale, n, e[1].min(e[3])) + 1)
                    .sum()
            };
            while n > 1 && copies(n, scale) > MAX_COPIES * edges.len() {
                n /= 2;
                scale = if height > 0.0 { n as f64 / height } else { 0.0 };
            }
            s.parts.push([lo, scale, (s.slab_offsets.len() - 1) as f64, n as f64]);
            scratch.clear();
            scratch.resize_with(n, Vec::new);
            for e in &edges {
                let (a, b) = (slab(lo, scale, n, e[1].min(e[3])), slab(lo, scale, n, e[1].max(e[3])));
                for list in &mut scratch[a..=b] {
                    list.push(*e);
                }
            }
            for list in &scratch {
                s.edges.extend_from_slice(list);
                s.slab_offsets.push(s.edges.len() as u32);
                s.slab_max_x.push(list.iter().fold(f64::NEG_INFINITY, |m, e| m.max(e[0]).max(e[2])));
            }
        }
        s
    }

    /// Number of parts covered.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// Total edge entries over all slabs (an edge spanning several slabs counts in each).
    pub fn entries(&self) -> usize {
        self.edges.len()
    }

    /// Locates `p` relative to polygon part `part` (its index in the iterator given to
    /// [`EdgeSlabs::build`]). Exact.
    ///
    /// # Panics
    /// If `part >= self.parts()`.
    #[inline]
    pub fn locate(&self, part: usize, p: Xy) -> Location {
        let [lo, scale, first, n] = self.parts[part];
        let (first, n) = (first as usize, n as usize);
        if n == 0 || p.1 < lo || !(p.0.is_finite() && p.1.is_finite()) {
            return Location::Exterior;
        }
        let k = first + slab(lo, scale, n, p.1);
        if p.0 > self.slab_max_x[k] {
            return Location::Exterior;
        }
        let (a, b) = (self.slab_offsets[k] as usize, self.slab_offsets[k + 1] as usize);
        let edges = &self.edges[a..b];
        crossing_parity_fast(edges, p).unwrap_or_else(|| {
            crate::algo::locate_by_crossings(edges.iter().map(|e| ((e[0], e[1]), (e[2], e[3]))), p)
        })
    }
}

/// The crossing-number test without branches on the data: every orientation whose sign the
/// floating-point filter cannot certify, and every point level with an edge endpoint, makes
/// it give up (`None`) so the exact path decides. When it answers, the answer is exact.
#[inline]
fn crossing_parity_fast(edges: &[[f64; 4]], (px, py): Xy) -> Option<Location> {
    let mut crossings = 0u32;
    let mut unsure = false;
    for e in edges {
        let [ax, ay, bx, by] = *e;
        let a_above = ay > py;
        let b_above = by > py;
        let straddles = a_above != b_above;
        // orient2d(a, b, p), as in `robust`: positive when p is left of a → b.
        let detleft = (ax - px) * (by - py);
        let detright = (ay - py) * (bx - px);
        let det = detleft - detright;
        // The same filter as `algo::orient`, its underflow term included.
        let bound = CCW_ERR_BOUND_A * (detleft.abs() + detright.abs()) + UNDERFLOW_SLACK;
        // Sure only when |det| is greater: a NaN determinant (products past the range) is not.
        unsure |= straddles & !det.abs().partial_cmp(&bound).is_some_and(std::cmp::Ordering::is_gt);
        unsure |= (ay == py) | (by == py);
        crossings += u32::from(straddles & ((det > 0.0) == b_above));
    }
    if unsure {
        None
    } else if crossings & 1 == 1 {
        Some(Location::Interior)
    } else {
        Some(Location::Exterior)
    }
}

/// The slab holding height `y`: monotone in `y`, clamped to `0..n`.
#[inline]
fn slab(lo: f64, scale: f64, n: usize, y: f64) -> usize {
    (((y - lo) * scale) as usize).min(n - 1)
}
