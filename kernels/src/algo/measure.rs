//! Measures: bounding box, area, length, centroid.

use super::{hypot, Xy};
use crate::column::{Family, Geom, Part, Ring};

/// An axis-aligned box. An empty geometry's box has NaN in all four fields.
#[derive(Clone, Copy, Debug, PartialEq, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Rect {
    /// Smallest x.
    pub min_x: f64,
    /// Smallest y.
    pub min_y: f64,
    /// Largest x.
    pub max_x: f64,
    /// Largest y.
    pub max_y: f64,
}

impl Rect {
    /// The box of nothing: NaN everywhere.
    pub const NAN: Rect = Rect { min_x: f64::NAN, min_y: f64::NAN, max_x: f64::NAN, max_y: f64::NAN };

    /// The smallest box holding every coordinate (NaN if there are none).
    pub fn of(coords: impl IntoIterator<Item = Xy>) -> Rect {
        let mut r = Rect {
            min_x: f64::INFINITY,
            min_y: f64::INFINITY,
            max_x: f64::NEG_INFINITY,
            max_y: f64::NEG_INFINITY,
        };
        let mut any = false;
        for (x, y) in coords {
            any = true;
            r.min_x = r.min_x.min(x);
            r.min_y = r.min_y.min(y);
            r.max_x = r.max_x.max(x);
            r.max_y = r.max_y.max(y);
        }
        if any {
            r
        } else {
            Rect::NAN
        }
    }

    /// True when this is the box of nothing.
    pub fn is_nan(&self) -> bool {
        self.min_x.is_nan()
    }

    /// The box grown by `d` on every side.
    pub fn expand(&self, d: f64) -> Rect {
        Rect { min_x: self.min_x - d, min_y: self.min_y - d, max_x: self.max_x + d, max_y: self.max_y + d }
    }

    /// True when the boxes share at least one point (false if either is NaN).
    #[inline]
    pub fn intersects(&self, o: &Rect) -> bool {
        self.min_x <= o.max_x && o.min_x <= self.max_x && self.min_y <= o.max_y && o.min_y <= self.max_y
    }

    /// True when `p` lies in the closed box.
    #[inline]
    pub fn contains_point(&self, (x, y): Xy) -> bool {
        self.min_x <= x && x <= self.max_x && self.min_y <= y && y <= self.max_y
    }

    /// The smallest box holding both.
    pub fn union(&self, o: &Rect) -> Rect {
        if self.is_nan() {
            return *o;
        }
        if o.is_nan() {
            return *self;
        }
        Rect {
            min_x: self.min_x.min(o.min_x),
            min_y: self.min_y.min(o.min_y),
            max_x: self.max_x.max(o.max_x),
            max_y: self.max_y.max(o.max_y),
        }
    }
}

/// The bounding box; NaN for an empty geometry.
pub fn bbox(g: &Geom<'_>) -> Rect {
    Rect::of(g.coords())
}

/// The bounding box of one part; NaN when it has no coordinates.
pub fn bbox_of_part(p: &Part<'_>) -> Rect {
    Rect::of(p.rings().flat_map(|r| r.coords()))
}

/// Twice the signed area of a closed ring (positive when counter-clockwise).
pub(crate) fn ring_area2(r: &Ring<'_>) -> f64 {
    // Relative to the first vertex, to keep the products small.
    let Some(&x0) = r.xs.first() else { return 0.0 };
    let y0 = r.ys[0];
    let mut s = 0.0;
    for i in 1..r.len().saturating_sub(1) {
        let (ax, ay) = (r.xs[i] - x0, r.ys[i] - y0);
        let (bx, by) = (r.xs[i + 1] - x0, r.ys[i + 1] - y0);
        s += ax * by - bx * ay;
    }
    s
}

/// True when a closed ring runs counter-clockwise, decided exactly as JTS
/// `Orientation.isCCW` does (from the highest vertex, with an exact orientation test), so
/// that nearly degenerate rings get the same answer as in JTS. False for flat rings.
pub(crate) fn is_ccw(r: &Ring<'_>) -> bool {
    let n = r.len().saturating_sub(1);
    if n < 3 {
        return false;
    }
    // The first highest vertex reached by an upward segment, and the vertex before it.
    let (mut hi, mut i_hi, mut lo_up) = (r.at(0), 0, r.at(0));
    let mut prev_y = hi.1;
    for i in 1..=n {
        let y = r.ys[i];
        if y > prev_y && y >= hi.1 {
            hi = r.at(i);
            i_hi = i;
            lo_up = r.at(i - 1);
        }
        prev_y = y;
    }
    if i_hi == 0 {
        return false;
    }
    // The next vertex below the high point, skipping a flat top.
    let mut i_down = i_hi;
    loop {
        i_down = (i_down + 1) % n;
        if i_down == i_hi || r.ys[i_down] != hi.1 {
            break;
        }
    }
    let lo_down = r.at(i_down);
    let hi_down = r.at(if i_down > 0 { i_down - 1 } else { n - 1 });
    if hi == hi_down {
        if lo_up == hi || lo_down == hi || lo_up == lo_down {
            return false;
        }
        super::orient::orient(lo_up, hi, lo_down) > 0.0
    } else {
        hi_down.0 - hi.0 < 0.0
    }
}

/// The area: shells minus holes (shoelace); 0 for points, lines and empties.
pub fn area(g: &Geom<'_>) -> f64 {
    if g.dimension() != 2 {
        return 0.0;
    }
    let mut total = 0.0;
    for part in g.parts() {
        for (i, ring) in part.rings().enumerate() {
            let a = ring_area2(&ring).abs() / 2.0;
            total += if i == 0 { a } else { -a };
        }
    }
    total
}

/// The length of lines, the perimeter (every ring) of polygons; 0 for points and empties.
pub fn length(g: &Geom<'_>) -> f64 {
    if g.dimension() == 0 {
        return 0.0;
    }
    g.rings().flat_map(|r| r.segments()).map(|(a, b)| hypot(b.0 - a.0, b.1 - a.1)).sum()
}

/// The centroid with JTS semantics: area-weighted over the polygons; if their area is zero,
/// length-weighted over their rings (or over the lines); if that length is zero, the mean of
/// the coordinates. `None` for an empty geometry.
///
/// Triangles are fanned from the geometry's first coordinate, as JTS does, and accumulated
/// relative to it, which keeps nearly degenerate polygons far from the origin accurate.
pub fn centroid(g: &Geom<'_>) -> Option<Xy> {
    let mut c = Centroid::default();
    match g.family().dimension() {
        0 => g.coords().for_each(|p| c.point(p)),
        1 => g.rings().for_each(|r| c.line(&r)),
        _ => {
            for part in g.parts() {
                for (i, ring) in part.rings().enumerate() {
                    c.ring(&ring, i > 0);
                }
            }
        }
    }
    c.result()
}

/// Accumulators mirroring JTS `Centroid`.
#[derive(Default)]
struct Centroid {
    base: Option<Xy>,
    area2: f64,
    cg3: Xy,
    line_len: f64,
    line_sum: Xy,
    pts: usize,
    pt_sum: Xy,
}

impl Centroid {
    fn point(&mut self, (x, y): Xy) {
        self.pts += 1;
        self.pt_sum.0 += x;
        self.pt_sum.1 += y;
    }

    fn line(&mut self, r: &Ring<'_>) {
        let mut len = 0.0;
        for (a, b) in r.segments() {
            let l = hypot(b.0 - a.0, b.1 - a.1);
            if l == 0.0 {
                continue;
            }
            len += l;
            self.line_sum.0 += l * (a.0 + b.0) / 2.0;
            self.line_sum.1 += l * (a.1 + b.1) / 2.0;
        }
        self.line_len += len;
        if len == 0.0 && !r.is_empty() {
            self.point(r.at(0));
        }
    }

    fn ring(&mut self, r: &Ring<'_>, hole: bool) {
        if r.is_empty() {
            return;
        }
        let base = *self.base.get_or_insert(r.at(0));
        // Sum the ring's triangles first and orient by that sum, so every shell adds and every
        // hole subtracts its area even when the ring is too small for a reliable orientation
        // (JTS decides by `isCCW`, which can disagree with the triangle sums on nearly
        // degenerate rings).
        let (mut a2_sum, mut cx, mut cy) = (0.0, 0.0, 0.0);
        for (p1, p2) in r.segments() {
            let a2 = (p1.0 - base.0) * (p2.1 - base.1) - (p2.0 - base.0) * (p1.1 - base.1);
            // Relative to the base point, so rings far from the origin keep their precision;
            // `result` adds the base back.
            cx += a2 * (p1.0 - base.0 + p2.0 - base.0);
            cy += a2 * (p1.1 - base.1 + p2.1 - base.1);
            a2_sum += a2;
        }
        let sign = if (a2_sum < 0.0) == hole { 1.0 } else { -1.0 };
        self.cg3.0 += sign * cx;
        self.cg3.1 += sign * cy;
        self.area2 += sign * a2_sum;
        self.line(r);
    }

    fn result(&self) -> Option<Xy> {
        if let (true, Some(base)) = (self.area2.abs() > 0.0, self.base) {
            Some((base.0 + self.cg3.0 / 3.0 / self.area2, base.1 + self.cg3.1 / 3.0 / self.area2))
        } else if self.line_len > 0.0 {
            Some((self.line_sum.0 / self.line_len, self.line_sum.1 / self.line_len))
        } else if self.pts > 0 {
            Some((self.pt_sum.0 / self.pts as f64, self.pt_sum.1 / self.pts as f64))
        } else {
            None
        }
    }
}

/// True when `g` is a single point or a multipoint (dimension 0).
pub(crate) fn is_puntal(g: &Geom<'_>) -> bool {
    matches!(g.family(), Family::Point | Family::MultiPoint)
}
