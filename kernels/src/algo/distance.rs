//! Euclidean distance between geometries.
//!
//! Robustness: whether two geometries meet (distance exactly 0) is decided with exact
//! orientation tests; a positive distance is computed in f64 and carries rounding error
//! (bounded-error, a few ulps of the coordinates' magnitude).

use super::locate::{locate_point, within_box, Location};
use super::measure::{bbox, Rect};
use super::orient::orient;
use super::Xy;
use crate::column::Geom;

/// `sqrt(x² + y²)`, the Euclidean length every measure and distance uses.
///
/// Not `f64::hypot`: that calls the platform's libm, whose last bit differs between C
/// libraries and from CUDA's. This is a fixed sequence of IEEE operations — squares, a sum and
/// a correctly rounded square root, with exact power-of-two scaling where the squares would
/// overflow or underflow — which the device library (`kernels/cuda/math.cuh`, `mr_hypot`)
/// repeats, so every executor gets the same bits. Error: about 1 ulp.
///
/// ```
/// use meridian_kernels::algo::hypot;
/// assert_eq!(hypot(3.0, 4.0), 5.0);
/// assert_eq!(hypot(3e300, 4e300), 5e300);
/// assert_eq!(hypot(f64::INFINITY, f64::NAN), f64::INFINITY);
/// assert!(hypot(1.0, f64::NAN).is_nan());
/// ```
pub fn hypot(x: f64, y: f64) -> f64 {
    const BIG: f64 = f64::from_bits(0x5f30_0000_0000_0000); // 2^500
    const SMALL: f64 = f64::from_bits(0x20b0_0000_0000_0000); // 2^-500
    const UP: f64 = f64::from_bits(0x6570_0000_0000_0000); // 2^600
    const DOWN: f64 = f64::from_bits(0x1a70_0000_0000_0000); // 2^-600
    let (x, y) = (x.abs(), y.abs());
    if x == f64::INFINITY || y == f64::INFINITY {
        return f64::INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    let m = if x > y { x } else { y };
    if m > BIG {
        let (a, b) = (x * DOWN, y * DOWN);
        return (a * a + b * b).sqrt() * UP;
    }
    if m < SMALL {
        let (a, b) = (x * UP, y * UP);
        return (a * a + b * b).sqrt() * DOWN;
    }
    (x * x + y * y).sqrt()
}

/// Distance from `p` to the closed segment `a–b`.
pub fn segment_distance(p: Xy, a: Xy, b: Xy) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    if len2 == 0.0 {
        return hypot(p.0 - a.0, p.1 - a.1);
    }
    let t = (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0);
    hypot(p.0 - (a.0 + t * dx), p.1 - (a.1 + t * dy))
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

/// A geometry's segments, ring by ring (a line is one ring), walked in place.
fn segments<'g>(g: &'g Geom<'_>) -> impl Iterator<Item = (Xy, Xy)> + 'g {
    g.rings().flat_map(|r| r.segments())
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
    // The elements distance is measured between — a point geometry's points, any other's
    // segments — pair by pair, walked in place: a join measures every candidate pair, and
    // copying the elements out cost it more than the measuring (SpatialBench's Q12).
    let mut best = f64::INFINITY;
    match (a.dimension() == 0, b.dimension() == 0) {
        (true, true) => {
            for p in a.coords() {
                for q in b.coords() {
                    best = best.min(hypot(p.0 - q.0, p.1 - q.1));
                }
            }
        }
        (true, false) => {
            for p in a.coords() {
                for (c, d) in segments(b) {
                    best = best.min(segment_distance(p, c, d));
                }
            }
        }
        (false, true) => {
            for (c, d) in segments(a) {
                for q in b.coords() {
                    best = best.min(segment_distance(q, c, d));
                }
            }
        }
        (false, false) => {
            for (c, d) in segments(a) {
                for (e, f) in segments(b) {
                    best = best.min(seg_seg(c, d, e, f));
                    if best == 0.0 {
                        return 0.0;
                    }
                }
            }
        }
    }
    best
}

/// One geometry that single points, read without geometries of their own, are tested
/// against: [`dwithin`], `intersects` and `contains` of a point and the geometry by the same
/// tests in the same order, so the same answers, for a filter that reads a column of WKB
/// points in place against a constant (SpatialBench's Q1 against a point, Q2 and Q3 against
/// a polygon).
#[derive(Clone, Copy, Debug)]
pub struct PointsAgainst<'a> {
    geom: Geom<'a>,
    bbox: Rect,
}

impl<'a> PointsAgainst<'a> {
    /// Points against `geom`.
    pub fn new(geom: Geom<'a>) -> PointsAgainst<'a> {
        PointsAgainst { geom, bbox: bbox(&geom) }
    }

    /// `dwithin(p, geom, dist)`, or `dwithin(geom, p, dist)` when `geom_first` (the box test
    /// grows the first argument's box, and its rounding may differ); `(NaN, NaN)` is the empty
    /// point.
    pub fn dwithin(&self, p: Xy, dist: f64, geom_first: bool) -> bool {
        let empty = p.0.is_nan() && p.1.is_nan();
        if empty || self.geom.is_empty() || dist.is_nan() || dist < 0.0 {
            return false;
        }
        let point = Rect::of([p]);
        let near = if geom_first {
            self.bbox.expand(dist).intersects(&point)
        } else {
            point.expand(dist).intersects(&self.bbox)
        };
        near && self.distance(p) <= dist
    }

    /// `intersects` of the point and the geometry, in either order (its tests for a single
    /// point are the same both ways round).
    pub fn intersects(&self, p: Xy) -> bool {
        let empty = p.0.is_nan() && p.1.is_nan();
        !empty
            && !self.geom.is_empty()
            && Rect::of([p]).intersects(&self.bbox)
            && locate_point(&self.geom, p) != Location::Exterior
    }

    /// `contains(geom, p)`, that is `within(p, geom)`: `p` in the geometry's interior.
    pub fn contains(&self, p: Xy) -> bool {
        let empty = p.0.is_nan() && p.1.is_nan();
        !empty
            && !self.geom.is_empty()
            && self.bbox.contains_point(p)
            && locate_point(&self.geom, p) == Location::Interior
    }

    /// [`distance`] of the point and the geometry, neither empty: the branches it takes for
    /// a point and this geometry, in either order.
    fn distance(&self, p: Xy) -> f64 {
        let g = &self.geom;
        if g.dimension() == 2 && locate_point(g, p) != Location::Exterior {
            return 0.0;
        }
        let mut best = f64::INFINITY;
        if g.dimension() == 0 {
            for q in g.coords() {
                best = best.min(hypot(p.0 - q.0, p.1 - q.1));
            }
        } else {
            for (c, d) in segments(g) {
                best = best.min(segment_distance(p, c, d));
            }
        }
        best
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::column::{ColumnBuilder, Family};
    use proptest::prelude::*;

    /// A point (`None`: the empty one). Small integers and halves make exact ties at the
    /// distance and points on boundaries; the rest anything finite.
    fn point() -> impl Strategy<Value = Option<Xy>> {
        let c = || prop_oneof![8 => (-8i32..8).prop_map(|v| f64::from(v) / 2.0), 1 => -1e6f64..1e6];
        prop_oneof![8 => (c(), c()).prop_map(Some), 1 => Just(None)]
    }

    /// A geometry of any family as its parts (none: empty), on the same lattice.
    fn geometry() -> impl Strategy<Value = (Family, Vec<Vec<Vec<Xy>>>)> {
        let c = || (-8i32..8, -8i32..8).prop_map(|(x, y)| (f64::from(x) / 2.0, f64::from(y) / 2.0));
        let square = |(x, y): Xy, s: f64| vec![(x, y), (x + s, y), (x + s, y + s), (x, y + s), (x, y)];
        let polygon = (c(), 1i32..6, proptest::bool::ANY).prop_map(move |(o, s, hole)| {
            let s = f64::from(s);
            let mut rings = vec![square(o, s)];
            if hole && s >= 2.0 {
                rings.push(square((o.0 + 0.5, o.1 + 0.5), s - 1.0));
            }
            rings
        });
        prop_oneof![
            c().prop_map(|p| (Family::Point, vec![vec![vec![p]]])),
            proptest::collection::vec(c(), 1..4)
                .prop_map(|ps| (Family::MultiPoint, ps.into_iter().map(|p| vec![vec![p]]).collect())),
            proptest::collection::vec(c(), 2..5).prop_map(|l| (Family::LineString, vec![vec![l]])),
            polygon.clone().prop_map(|p| (Family::Polygon, vec![p])),
            proptest::collection::vec(polygon, 1..3).prop_map(|ps| (Family::MultiPolygon, ps)),
            proptest::sample::select(Family::ALL.to_vec()).prop_map(|f| (f, Vec::new())),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        /// A point's `PointsAgainst` tests are `dwithin`, `intersects` and `contains` of the
        /// point as a geometry and the geometry, in either order: ties at the distance, points
        /// on boundaries and in holes, empties and distances that are no distance included.
        #[test]
        fn points_against_a_geometry_answer_as_the_point_as_a_geometry(
            p in point(),
            (family, parts) in geometry(),
            dist in prop_oneof![12 => (0i32..12).prop_map(|v| f64::from(v) / 2.0), 2 => 0.0f64..1e6, 1 => Just(-1.0), 1 => Just(f64::NAN), 1 => Just(f64::INFINITY)],
        ) {
            let mut b = ColumnBuilder::new();
            match p {
                Some((x, y)) => b.push_point(x, y).unwrap(),
                None => b.push_empty(Family::Point),
            }
            if parts.is_empty() {
                b.push_empty(family);
            } else {
                b.push_parts(family, &parts).unwrap();
            }
            let col = b.finish();
            let (a, g) = (col.get(0).unwrap(), col.get(1).unwrap());
            let against = PointsAgainst::new(g);
            let xy = p.unwrap_or((f64::NAN, f64::NAN));
            prop_assert_eq!(against.dwithin(xy, dist, false), dwithin(&a, &g, dist));
            prop_assert_eq!(against.dwithin(xy, dist, true), dwithin(&g, &a, dist));
            prop_assert_eq!(against.intersects(xy), super::super::intersects(&a, &g));
            prop_assert_eq!(against.intersects(xy), super::super::intersects(&g, &a));
            prop_assert_eq!(against.contains(xy), super::super::contains(&g, &a));
            prop_assert_eq!(against.contains(xy), super::super::within(&a, &g));
        }
    }
}
