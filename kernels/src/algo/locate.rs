//! Point location: interior, boundary or exterior, decided with exact orientation tests.

use super::orient::orient;
use super::Xy;
use crate::column::{Family, Geom, Ring};

/// Where a point lies relative to a geometry (DE-9IM's I, B, E).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// In the interior.
    Interior,
    /// On the boundary.
    Boundary,
    /// Outside.
    Exterior,
}

/// True when `p` lies on the closed segment `a–b` (exact).
#[inline]
pub(crate) fn on_segment(a: Xy, b: Xy, p: Xy) -> bool {
    within_box(a, b, p) && orient(a, b, p) == 0.0
}

#[inline]
pub(crate) fn within_box(a: Xy, b: Xy, p: Xy) -> bool {
    a.0.min(b.0) <= p.0 && p.0 <= a.0.max(b.0) && a.1.min(b.1) <= p.1 && p.1 <= a.1.max(b.1)
}

/// One edge's contribution to a crossing-number test along the ray to +x from `p`.
/// Returns `None` when `p` is on the edge, else whether the edge crosses the ray.
///
/// Half-open in y (an edge counts when exactly one endpoint is strictly above `p`), so a ray
/// through a vertex is counted once; the on-edge cases the half-open rule would skip
/// (horizontal edges, the lower vertex) are checked explicitly.
#[inline]
pub fn edge_crossing(a: Xy, b: Xy, p: Xy) -> Option<bool> {
    let a_above = a.1 > p.1;
    let b_above = b.1 > p.1;
    if a_above != b_above {
        // Cheap reject: the edge lies entirely left of p, so it cannot cross the ray or touch p.
        if a.0 < p.0 && b.0 < p.0 {
            return Some(false);
        }
        let o = orient(a, b, p);
        if o == 0.0 {
            return None;
        }
        // Upward edge: crossing to the right iff p is left of it; downward: iff p is right.
        return Some((o > 0.0) == b_above);
    }
    if a.1 == p.1 || b.1 == p.1 {
        let on = if a.1 == b.1 { a.0.min(b.0) <= p.0 && p.0 <= a.0.max(b.0) } else { a == p || b == p };
        if on {
            return None;
        }
    }
    Some(false)
}

/// The location of `p` relative to the area enclosed by a closed ring (exact).
pub fn locate_in_ring(ring: &Ring<'_>, p: Xy) -> Location {
    locate_by_crossings(ring.segments(), p)
}

/// The crossing-number test over `edges` (the closed rings of one polygon, in any order):
/// boundary if `p` is on an edge, else interior on an odd number of crossings (exact).
pub(crate) fn locate_by_crossings(edges: impl Iterator<Item = (Xy, Xy)>, p: Xy) -> Location {
    let mut inside = false;
    for (a, b) in edges {
        match edge_crossing(a, b, p) {
            None => return Location::Boundary,
            Some(c) => inside ^= c,
        }
    }
    if inside {
        Location::Interior
    } else {
        Location::Exterior
    }
}

/// The location of `p` relative to one polygon (shell and holes).
pub(crate) fn locate_in_polygon<'a>(mut rings: impl Iterator<Item = Ring<'a>>, p: Xy) -> Location {
    let Some(shell) = rings.next() else { return Location::Exterior };
    match locate_in_ring(&shell, p) {
        Location::Interior => {}
        other => return other,
    }
    for hole in rings {
        match locate_in_ring(&hole, p) {
            Location::Interior => return Location::Exterior,
            Location::Boundary => return Location::Boundary,
            Location::Exterior => {}
        }
    }
    Location::Interior
}

/// The location of `p` relative to `g`, with the OGC/JTS boundary rules:
/// - points have no boundary: interior if `p` equals one of them;
/// - line strings: the endpoints of non-closed lines are boundary by the mod-2 rule (an
///   endpoint shared by an even number of lines is interior); closed lines have none;
/// - polygons: the rings are boundary; for a multipolygon, on any part's boundary is
///   boundary, inside any part is interior (valid multipolygons only touch at points).
///
/// Exact. An empty geometry has only exterior; a point with a NaN or infinite coordinate
/// is exterior to everything.
pub fn locate_point(g: &Geom<'_>, p: Xy) -> Location {
    if !(p.0.is_finite() && p.1.is_finite()) {
        return Location::Exterior;
    }
    match g.family() {
        Family::Point | Family::MultiPoint => {
            if g.coords().any(|c| c == p) {
                Location::Interior
            } else {
                Location::Exterior
            }
        }
        Family::LineString | Family::MultiLineString => {
            let mut endpoints = 0usize;
            let mut on = false;
            for r in g.rings() {
                let (first, last) = (r.at(0), r.at(r.len() - 1));
                if first != last && (p == first || p == last) {
                    endpoints += 1;
                } else if !on {
                    on = r.segments().any(|(a, b)| on_segment(a, b, p));
                }
            }
            if endpoints % 2 == 1 {
                Location::Boundary
            } else if on || endpoints > 0 {
                Location::Interior
            } else {
                Location::Exterior
            }
        }
        Family::Polygon | Family::MultiPolygon => {
            let mut result = Location::Exterior;
            for part in g.parts() {
                match locate_in_polygon(part.rings(), p) {
                    Location::Boundary => return Location::Boundary,
                    Location::Interior => result = Location::Interior,
                    Location::Exterior => {}
                }
            }
            result
        }
    }
}
