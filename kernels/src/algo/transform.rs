//! Constructions: affine transformation and Douglas–Peucker simplification.

use super::distance::segment_distance;
use super::Xy;
use crate::column::{ColumnBuilder, ColumnError, Geom, Parts};

/// An affine map `x' = m[0]·x + m[1]·y + m[4]`, `y' = m[2]·x + m[3]·y + m[5]` (the bytecode's
/// `affine` constant layout).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine(pub [f64; 6]);

impl Affine {
    /// Maps one coordinate.
    #[inline]
    pub fn apply(&self, (x, y): Xy) -> Xy {
        let m = &self.0;
        (m[0] * x + m[1] * y + m[4], m[2] * x + m[3] * y + m[5])
    }
}

/// The geometry's parts → rings → coordinates, each coordinate passed through `f`.
fn parts_of(g: &Geom<'_>, mut f: impl FnMut(&[Xy], bool) -> Vec<Xy>) -> Parts {
    let areal = g.dimension() == 2;
    g.parts().map(|p| p.rings().map(|r| f(&r.coords().collect::<Vec<_>>(), areal)).collect()).collect()
}

/// Appends `g` mapped by `m` to `out`. Empty stays empty. Fails, adding nothing, only when a
/// mapped coordinate is not finite (rings keep their coordinate count and stay closed).
pub fn affine(g: &Geom<'_>, m: &Affine, out: &mut ColumnBuilder) -> Result<(), ColumnError> {
    let parts = parts_of(g, |r, _| r.iter().map(|&p| m.apply(p)).collect());
    out.push_parts(g.family(), &parts)
}

/// Appends the Douglas–Peucker simplification of `g` with `tolerance` to `out`, with the
/// semantics of JTS `DouglasPeuckerSimplifier` (topology-unaware): points are unchanged;
/// lines keep their endpoints; a polygon ring may also lose its start point when it lies
/// within `tolerance` of the segment joining its neighbours; a hole that collapses below 4
/// coordinates is dropped and a shell that collapses empties its polygon.
///
/// Unlike JTS, an invalid polygon produced by the simplification is not repaired with
/// `buffer(0)`. A negative or NaN tolerance behaves as 0.
pub fn simplify(g: &Geom<'_>, tolerance: f64, out: &mut ColumnBuilder) -> Result<(), ColumnError> {
    let tol = if tolerance > 0.0 { tolerance } else { 0.0 };
    if g.dimension() == 0 {
        let parts = parts_of(g, |r, _| r.to_vec());
        return out.push_parts(g.family(), &parts);
    }
    let mut parts = parts_of(g, |r, areal| douglas_peucker(r, tol, areal));
    if g.dimension() == 2 {
        for part in &mut parts {
            if part.first().is_some_and(|shell| shell.len() < 4) {
                part.clear();
            }
            part.retain(|ring| ring.len() >= 4);
        }
        parts.retain(|p| !p.is_empty());
    }
    out.push_parts(g.family(), &parts)
}

/// Douglas–Peucker on one coordinate sequence; for a ring, the start point may go too.
fn douglas_peucker(pts: &[Xy], tol: f64, ring: bool) -> Vec<Xy> {
    if pts.len() < 3 {
        return pts.to_vec();
    }
    let mut keep = vec![true; pts.len()];
    let mut stack = vec![(0usize, pts.len() - 1)];
    while let Some((i, j)) = stack.pop() {
        if i + 1 >= j {
            continue;
        }
        let (mut max_d, mut max_k) = (-1.0, i);
        for (k, &p) in pts.iter().enumerate().take(j).skip(i + 1) {
            let d = segment_distance(p, pts[i], pts[j]);
            if d > max_d {
                max_d = d;
                max_k = k;
            }
        }
        if max_d <= tol {
            keep[i + 1..j].iter_mut().for_each(|k| *k = false);
        } else {
            stack.push((max_k, j));
            stack.push((i, max_k));
        }
    }
    let mut out: Vec<Xy> = pts.iter().zip(&keep).filter(|(_, &k)| k).map(|(&p, _)| p).collect();
    if ring && out.len() >= 4 && segment_distance(out[0], out[1], out[out.len() - 2]) <= tol {
        out.pop();
        out.remove(0);
        out.push(out[0]);
    }
    out
}
