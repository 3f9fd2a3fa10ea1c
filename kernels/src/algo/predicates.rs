//! Named spatial predicates with JTS/GEOS semantics, from the DE-9IM matrix.
//!
//! Every predicate is false when either geometry is empty (and `disjoint` true). Supported
//! pairs: every combination of the six families (points, lines, polygons and their multis);
//! geometry collections are not a column family.
//!
//! Robustness: exact for every pair that does not involve a crossing of two edges (point
//! against anything, and all touching/overlap configurations); where two edges properly
//! cross, the crossing point is rounded, which can only matter for configurations whose
//! features are closer than ~1 ulp (see [`super::relate`]).

use super::locate::{locate_point, Location};
use super::measure::{bbox, is_puntal};
use super::relate::relate;
use crate::column::{Family, Geom};

/// The single coordinate of a one-point geometry.
fn single_point(g: &Geom<'_>) -> Option<(f64, f64)> {
    if g.family() == Family::Point || (g.family() == Family::MultiPoint && g.num_points() == 1) {
        g.coords().next()
    } else {
        None
    }
}

/// False when `a` cannot cover `b`: either is empty, or `b`'s box leaves `a`'s.
fn may_cover(a: &Geom<'_>, b: &Geom<'_>) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let (ba, bb) = (bbox(a), bbox(b));
    ba.contains_point((bb.min_x, bb.min_y)) && ba.contains_point((bb.max_x, bb.max_y))
}

fn boxes_meet(a: &Geom<'_>, b: &Geom<'_>) -> bool {
    bbox(a).intersects(&bbox(b))
}

/// True when `a` and `b` share at least one point (DE-9IM `T********`, `*T*******`,
/// `***T*****` or `****T****`).
pub fn intersects(a: &Geom<'_>, b: &Geom<'_>) -> bool {
    if a.is_empty() || b.is_empty() || !boxes_meet(a, b) {
        return false;
    }
    if let Some(p) = single_point(b) {
        return locate_point(a, p) != Location::Exterior;
    }
    if let Some(p) = single_point(a) {
        return locate_point(b, p) != Location::Exterior;
    }
    // Every vertex is a point of its geometry: one of either in the other decides at once, so
    // equal and overlapping shapes (a self-join's pairs of a row with itself) skip the matrix.
    for (g, other) in [(a, b), (b, a)] {
        let vertex = g.coords().next().filter(|(x, y)| x.is_finite() && y.is_finite());
        if vertex.is_some_and(|p| locate_point(other, p) != Location::Exterior) {
            return true;
        }
    }
    let im = relate(a, b);
    use Location::*;
    im.is_set(Interior, Interior)
        || im.is_set(Interior, Boundary)
        || im.is_set(Boundary, Interior)
        || im.is_set(Boundary, Boundary)
}

/// `!intersects(a, b)`; true when either is empty.
pub fn disjoint(a: &Geom<'_>, b: &Geom<'_>) -> bool {
    !intersects(a, b)
}

/// True when no point of `b` lies outside `a` and the interiors meet (`T*****FF*`). A polygon
/// does not contain a point on its boundary.
pub fn contains(a: &Geom<'_>, b: &Geom<'_>) -> bool {
    if !may_cover(a, b) {
        return false;
    }
    if let Some(p) = single_point(b) {
        return locate_point(a, p) == Location::Interior;
    }
    relate(a, b).matches("T*****FF*")
}

/// `contains(b, a)`.
pub fn within(a: &Geom<'_>, b: &Geom<'_>) -> bool {
    contains(b, a)
}

/// True when no point of `b` lies outside `a` (and `b` is not empty): like `contains` but a
/// boundary point is covered.
pub fn covers(a: &Geom<'_>, b: &Geom<'_>) -> bool {
    if !may_cover(a, b) {
        return false;
    }
    if let Some(p) = single_point(b) {
        return locate_point(a, p) != Location::Exterior;
    }
    let im = relate(a, b);
    im.matches("T*****FF*") || im.matches("*T****FF*") || im.matches("***T**FF*") || im.matches("****T*FF*")
}

/// `covers(b, a)`.
pub fn covered_by(a: &Geom<'_>, b: &Geom<'_>) -> bool {
    covers(b, a)
}

/// True when the geometries meet only on boundaries (interiors disjoint). False for two
/// puntal geometries (they have no boundary).
pub fn touches(a: &Geom<'_>, b: &Geom<'_>) -> bool {
    if a.is_empty() || b.is_empty() || (is_puntal(a) && is_puntal(b)) || !boxes_meet(a, b) {
        return false;
    }
    let im = relate(a, b);
    im.matches("FT*******") || im.matches("F**T*****") || im.matches("F***T****")
}
