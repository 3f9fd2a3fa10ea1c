//! Euclidean distance between geometries.
//!
//! Robustness: whether two geometries meet (distance exactly 0) is decided with exact
//! orientation tests; a positive distance is computed in f64 and carries rounding error
//! (bounded-error, a few ulps of the coordinates' magnitude).

use super::locate::{locate_point, orient, within_box, Location};
use super::measure::bbox;
use super::Xy;
use crate::column::Geom;

/// Distance from `p` to the closed segment `a–b`.
pub fn segment_distance(p: Xy, a: Xy, b: Xy) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    if len2 == 0.0 {
        return (p.0 - a.0).hypot(p.1 - a.1);
    }
    let t = (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0);
    (p.0 - (a.0 + t * dx)).hypot(p.1 - (a.1 + t * dy))
}

/// True when the closed segments `a–b` and `c–d` share a point (exact).
pub(crate) fn segments_meet(a: Xy, b: Xy, c: Xy, d: Xy) -> bool {
    let o1 = orient(a, b, c);
    let o2 = orient(a, b, d);
    let o3 = orient(c, d, a);
    let o4 = orient(c, d, b);
    if opposite(o1, o2) && opposite(o3, o4) {
        return true;
    }
    (o1 == 0.0 && within_box(a, b, c))
        || (o2 == 0.0 && within_box(a, b, d))
        || (o3 == 0.0 && within_box(c, d, a))
        || (o4 == 0.0 && within_box(c, d, b))
}

/// Strictly opposite signs (a product could underflow to zero).
fn opposite(p: f64, q: f64) -> bool {
    (p > 0.0 && q < 0.0) || (p < 0.0 && q > 0.0)
}

fn seg_seg(a: Xy, b: Xy, c: Xy, d: Xy) -> f64 {
    if segments_meet(a, b, c, d) {
        return 0.0;
    }
    segment_distance(a, c, d)
        .min(segment_distance(b, c, d))
        .min(segment_distance(c, a, b))
        .min(segment_distance(d, a, b))
}

/// The elements distance is measured between: isolated points and segments.
fn elements(g: &Geom<'_>) -> (Vec<Xy>, Vec<(Xy, Xy)>) {
    if g.dimension() == 0 {
        (g.coords().collect(), Vec::new())
    } else {
        (Vec::new(), g.rings().flat_map(|r| r.segments()).collect())
    }
}

/// The minimum Euclidean distance between `a` and `b`: 0 when they intersect (including one
/// polygon containing the other), NaN when either is empty.
pub fn distance(a: &Geom<'_>, b: &Geom<'_>) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    // A polygon containing any part of the other geometry: distance 0.
    for (p, q) in [(a, b), (b, a)] {
        if p.dimension() == 2
            && q.parts()
                .any(|part| part.first_ring().is_some_and(|r| locate_point(p, r.at(0)) != Location::Exterior))
        {
            return 0.0;
        }
    }
    let (pa, sa) = elements(a);
    let (pb, sb) = elements(b);
    let mut best = f64::INFINITY;
    for &p in &pa {
        for &q in &pb {
            best = best.min((p.0 - q.0).hypot(p.1 - q.1));
        }
        for &(c, d) in &sb {
            best = best.min(segment_distance(p, c, d));
        }
    }
    for &(c, d) in &sa {
        for &q in &pb {
            best = best.min(segment_distance(q, c, d));
        }
        for &(e, f) in &sb {
            best = best.min(seg_seg(c, d, e, f));
            if best == 0.0 {
                return 0.0;
            }
        }
    }
    best
}

/// True when `distance(a, b) <= dist`. False when either is empty or `dist` is negative or
/// NaN. Rejects on the bounding boxes first.
pub fn dwithin(a: &Geom<'_>, b: &Geom<'_>, dist: f64) -> bool {
    if a.is_empty() || b.is_empty() || dist.is_nan() || dist < 0.0 {
        return false;
    }
    if !bbox(a).expand(dist).intersects(&bbox(b)) {
        return false;
    }
    distance(a, b) <= dist
}
