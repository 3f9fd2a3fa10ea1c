//! A uniform grid that answers most point-in-polygon queries from one cell.

use crate::algo::{Location, Rect, Xy};
use crate::column::Part;

use super::EdgeSlabs;

/// What a cell knows about one part whose box overlaps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellClass {
    /// The whole cell lies in the part's interior.
    Inside,
    /// No point of the cell lies in the part (interior or boundary).
    Outside,
    /// The part's boundary may cross the cell (or the part is not a polygon): test exactly.
    Check,
}

const INSIDE: u32 = 0;
const OUTSIDE: u32 = 1;
const CHECK: u32 = 2;

/// Cells aimed for per polygon edge: fine enough that most cells hold no boundary.
const CELLS_PER_EDGE: usize = 16;
/// Bounds on the number of cells.
const MIN_CELLS: usize = 1 << 10;
const MAX_CELLS: usize = 1 << 22;
/// Upper bound on (part, cell) entries per cell on average; the grid is coarsened until
/// the parts' boxes fit.
const MAX_ENTRIES_PER_CELL: usize = 8;
/// Upper bound on all entries: past it (millions of parts whose boxes each span much of the
/// extent) the grid would cost more memory than it saves, and offsets must fit in `u32`.
const MAX_ENTRIES: usize = 1 << 26;

/// A grid over the boxes of a column's parts. Each cell lists every part whose box overlaps
/// it, with a [`CellClass`]: for a point in the cell, `Inside` and `Outside` are the exact
/// answer of [`EdgeSlabs::locate`] and `Check` says to ask it.
///
/// Exactness does not rest on rounding: cells are treated as grown by a margin larger than
/// any error in computing a coordinate's cell, and a part is `Inside`/`Outside` only when no
/// edge meets the grown cell, so the whole grown cell is on one side of the boundary and its
/// centre tells which.
#[derive(Clone, Debug, Default)]
pub struct CellGrid {
    pub(crate) min_x: f64,
    pub(crate) min_y: f64,
    pub(crate) max_x: f64,
    pub(crate) max_y: f64,
    /// Cells per unit of x and y.
    pub(crate) sx: f64,
    pub(crate) sy: f64,
    pub(crate) nx: usize,
    pub(crate) ny: usize,
    /// Per cell: first entry in `entries` (`nx * ny + 1` values).
    pub(crate) offsets: Vec<u32>,
    /// `part << 2 | class`.
    pub(crate) entries: Vec<u32>,
    /// Every part's box (NaN for parts without one).
    pub(crate) boxes: Vec<Rect>,
}

/// The grid's cell arithmetic: which cells a coordinate range may touch, with a margin.
#[derive(Clone, Copy)]
struct Axis {
    min: f64,
    scale: f64,
    n: usize,
    /// Cells a computed cell coordinate may be off by (a generous bound).
    margin: f64,
}

impl Axis {
    /// Cells whose grown extent meets `[lo, hi]`.
    fn range(&self, lo: f64, hi: f64) -> (usize, usize) {
        let a = ((lo - self.min) * self.scale - self.margin).floor().max(0.0);
        let b = ((hi - self.min) * self.scale + self.margin).floor().max(0.0);
        ((a as usize).min(self.n - 1), (b as usize).min(self.n - 1))
    }

    /// The centre of cell `i`.
    fn centre(&self, i: usize) -> f64 {
        self.min + (i as f64 + 0.5) / self.scale
    }

    /// The grown extent of cell `i`.
    fn extent(&self, i: usize) -> (f64, f64) {
        (
            self.min + (i as f64 - self.margin) / self.scale,
            self.min + (i as f64 + 1.0 + self.margin) / self.scale,
        )
    }
}

impl CellGrid {
    /// Builds the grid over `boxes` (one per part, NaN for none). `polygons` gives, per part,
    /// the polygon part to classify cells against (`None` for parts that are not polygons:
    /// their entries are `Check`); `slabs` locates cell centres. Returns `None` when a grid
    /// would not help: no finite box, or coordinates so large against the cell size that the
    /// margin would swallow the cells.
    pub fn build<'a>(
        boxes: Vec<Rect>,
        polygons: impl Fn(usize) -> Option<Part<'a>>,
        slabs: &EdgeSlabs,
    ) -> Option<CellGrid> {
        if boxes.len() >= 1 << 30 {
            return None;
        }
        let finite = boxes.iter().filter(|b| !b.is_nan() && b.min_x.is_finite() && b.max_x.is_finite());
        let extent = finite.fold(None, |acc: Option<Rect>, b| {
            Some(acc.map_or(*b, |a| Rect {
                min_x: a.min_x.min(b.min_x),
                min_y: a.min_y.min(b.min_y),
                max_x: a.max_x.max(b.max_x),
                max_y: a.max_y.max(b.max_y),
            }))
        })?;
        let edges: usize =
            (0..boxes.len()).filter_map(&polygons).map(|p| p.rings().map(|r| r.len()).sum::<usize>()).sum();
        let (w, h) = (extent.max_x - extent.min_x, extent.max_y - extent.min_y);
        // Degenerate extents (all parts on one line) gain nothing from a grid.
        if !(w > 0.0 && h > 0.0) {
            return None;
        }
        let mut cells = (edges * CELLS_PER_EDGE).clamp(MIN_CELLS, MAX_CELLS);
        let (nx, ny, x, y) = loop {
            let nx = ((cells as f64 * w / h).sqrt().ceil() as usize).clamp(1, cells);
            let ny = cells.div_ceil(nx).max(1);
            let axis = |min: f64, len: f64, n: usize, mag: f64| {
                let scale = n as f64 / len;
                // Float error in (v - min) * scale is a few ulps of the magnitudes involved;
                // 1e-12 of them, in cells, is a bound with room to spare. (`mag * scale`
                // first: `1e-12 * mag` underflows to 0 for subnormal extents, whose scale
                // overflows, and 0 × ∞ would make the margin NaN.)
                Axis { min, scale, n, margin: 1e-6 + mag * scale * 1e-12 }
            };
            let mag_x = extent.min_x.abs().max(extent.max_x.abs());
            let mag_y = extent.min_y.abs().max(extent.max_y.abs());
            let (x, y) = (axis(extent.min_x, w, nx, mag_x), axis(extent.min_y, h, ny, mag_y));
            // Also refuses a NaN or infinite margin (an extent so small its scale overflows).
            if !(x.margin <= 0.25 && y.margin <= 0.25) {
                return None;
            }
            let entries: usize = boxes
                .iter()
                .filter(|b| !b.is_nan())
                .map(|b| {
                    let ((x0, x1), (y0, y1)) = (x.range(b.min_x, b.max_x), y.range(b.min_y, b.max_y));
                    (x1 - x0 + 1) * (y1 - y0 + 1)
                })
                .sum();
            if entries <= MAX_ENTRIES_PER_CELL * nx * ny || cells <= MIN_CELLS {
                if entries > MAX_ENTRIES {
                    return None;
                }
                break (nx, ny, x, y);
            }
            cells /= 4;
        };

        let mut pairs: Vec<(u32, u32)> = Vec::new();
        let mut marked: Vec<bool> = Vec::new();
        for (part, b) in boxes.iter().enumerate() {
            if b.is_nan() {
                continue;
            }
            let ((x0, x1), (y0, y1)) = (x.range(b.min_x, b.max_x), y.range(b.min_y, b.max_y));
            let bw = x1 - x0 + 1;
            let cell = |i: usize, j: usize| (j * nx + i) as u32;
            let Some(polygon) = polygons(part) else {
                for j in y0..=y1 {
                    pairs.extend((x0..=x1).map(|i| (cell(i, j), (part as u32) << 2 | CHECK)));
                }
                continue;
            };
            marked.clear();
            marked.resize(bw * (y1 - y0 + 1), false);
            for (a, e) in polygon.rings().flat_map(|r| r.segments()) {
                mark_segment(&x, &y, a, e, (x0, y0, bw), &mut marked);
            }
            for j in y0..=y1 {
                let mut run = None;
                for i in x0..=x1 {
                    let class = if marked[(j - y0) * bw + (i - x0)] {
                        run = None;
                        CHECK
                    } else {
                        *run.get_or_insert_with(|| match slabs.locate(part, (x.centre(i), y.centre(j))) {
                            Location::Interior => INSIDE,
                            Location::Exterior => OUTSIDE,
                            Location::Boundary => CHECK,
                        })
                    };
                    pairs.push((cell(i, j), (part as u32) << 2 | class));
                }
            }
        }
        // Counting sort by cell, stable, so a cell lists its parts in part order.
        let mut offsets = vec![0u32; nx * ny + 1];
        for &(c, _) in &pairs {
            offsets[c as usize + 1] += 1;
        }
        for k in 1..offsets.len() {
            offsets[k] += offsets[k - 1];
        }
        let mut fill = offsets.clone();
        let mut entries = vec![0u32; pairs.len()];
        for &(c, e) in &pairs {
            entries[fill[c as usize] as usize] = e;
            fill[c as usize] += 1;
        }
        Some(CellGrid {
            min_x: extent.min_x,
            min_y: extent.min_y,
            max_x: extent.max_x,
            max_y: extent.max_y,
            sx: x.scale,
            sy: y.scale,
            nx,
            ny,
            offsets,
            entries,
            boxes,
        })
    }

    /// Cells along x and y.
    pub fn shape(&self) -> (usize, usize) {
        (self.nx, self.ny)
    }

    /// (part, cell) entries stored.
    pub fn entries(&self) -> usize {
        self.entries.len()
    }

    /// The grid's cell arithmetic, as [`CellGrid::build`] made it.
    fn axes(&self) -> (Axis, Axis) {
        let axis = |min: f64, max: f64, scale: f64, n: usize| {
            let mag = min.abs().max(max.abs());
            Axis { min, scale, n, margin: 1e-6 + mag * scale * 1e-12 }
        };
        (axis(self.min_x, self.max_x, self.sx, self.nx), axis(self.min_y, self.max_y, self.sy, self.ny))
    }

    /// Calls `f(part)` for every part whose box meets `rect` (closed boxes), in ascending
    /// part order — the parts [`FlatIndex::query`](super::FlatIndex::query) finds — when
    /// `rect` meets one cell only (the cell grown by its margin), and returns true; returns
    /// false, having called nothing, for a larger `rect`. Every part whose box meets such a
    /// `rect` is listed in that cell: a point of both lies in the cell, and a part is listed
    /// in every cell whose grown extent meets its box.
    #[inline]
    pub fn query_rect(&self, rect: &Rect, mut f: impl FnMut(u32)) -> bool {
        let r = rect;
        // The grid spans every part's box: a box beside it (or NaN) meets none.
        if !((r.min_x <= self.max_x)
            & (self.min_x <= r.max_x)
            & (r.min_y <= self.max_y)
            & (self.min_y <= r.max_y))
        {
            return true;
        }
        let (x, y) = self.axes();
        let ((x0, x1), (y0, y1)) = (x.range(rect.min_x, rect.max_x), y.range(rect.min_y, rect.max_y));
        if x0 != x1 || y0 != y1 {
            return false;
        }
        let c = y0 * self.nx + x0;
        for &e in &self.entries[self.offsets[c] as usize..self.offsets[c + 1] as usize] {
            let part = e >> 2;
            let b = &self.boxes[part as usize];
            if (b.min_x <= r.max_x) & (r.min_x <= b.max_x) & (b.min_y <= r.max_y) & (r.min_y <= b.max_y) {
                f(part);
            }
        }
        true
    }

    /// The cell `p` falls in; `None` outside the grid (and for NaN).
    #[inline(always)]
    fn cell_of(&self, (px, py): Xy) -> Option<usize> {
        if !((self.min_x <= px) & (px <= self.max_x) & (self.min_y <= py) & (py <= self.max_y)) {
            return None;
        }
        let i = (((px - self.min_x) * self.sx) as usize).min(self.nx - 1);
        let j = (((py - self.min_y) * self.sy) as usize).min(self.ny - 1);
        Some(j * self.nx + i)
    }

    /// Calls `f(part, class)` for every part whose box contains `p` (closed boxes), in
    /// ascending part order: the same parts as [`FlatIndex::query_point`](super::FlatIndex::query_point).
    #[inline]
    pub fn query_point(&self, p: Xy, mut f: impl FnMut(u32, CellClass)) {
        for (part, class) in self.point_parts(p) {
            f(part, class);
        }
    }

    /// The parts [`CellGrid::query_point`] visits, as an iterator (for callers that must
    /// mutate their own state between parts).
    #[inline(always)]
    pub fn point_parts(&self, p: Xy) -> impl Iterator<Item = (u32, CellClass)> + '_ {
        self.point_parts_but_outside(p, false)
    }

    /// [`CellGrid::point_parts`], less the parts the cell knows `p` is outside of when
    /// `skip_outside`: for a caller to whom those say nothing (a filter no exterior point
    /// passes), whose boxes it then need not read.
    #[inline(always)]
    pub fn point_parts_but_outside(
        &self,
        p: Xy,
        skip_outside: bool,
    ) -> impl Iterator<Item = (u32, CellClass)> + '_ {
        let (px, py) = p;
        // Outside the grid (or NaN) no box contains the point.
        let cell = match self.cell_of(p) {
            Some(c) => &self.entries[self.offsets[c] as usize..self.offsets[c + 1] as usize],
            None => &[],
        };
        cell.iter().filter_map(move |&e| {
            let part = e >> 2;
            let class = match e & 3 {
                // The grown cell lies in the part's interior, so its box holds `p`: no need
                // to read the box.
                INSIDE => return Some((part, CellClass::Inside)),
                OUTSIDE if skip_outside => return None,
                OUTSIDE => CellClass::Outside,
                _ => CellClass::Check,
            };
            let b = &self.boxes[part as usize];
            let hit = (b.min_x <= px) & (px <= b.max_x) & (b.min_y <= py) & (py <= b.max_y);
            hit.then_some((part, class))
        })
    }
}

/// Marks every cell (of the part's box range starting at `x0, y0`, `bw` wide) whose grown
/// extent the segment `a`–`b` meets.
fn mark_segment(x: &Axis, y: &Axis, a: Xy, b: Xy, (x0, y0, bw): (usize, usize, usize), marked: &mut [bool]) {
    let rows = marked.len() / bw;
    let (r0, r1) = y.range(a.1.min(b.1), a.1.max(b.1));
    for j in r0.max(y0)..=r1.min(y0 + rows - 1) {
        // The part of the segment inside row j's grown band, as an x range.
        let (lo, hi) = y.extent(j);
        let (xa, xb) = if a.1 == b.1 {
            (a.0.min(b.0), a.0.max(b.0))
        } else {
            let at = |v: f64| {
                let t = ((v - a.1) / (b.1 - a.1)).clamp(0.0, 1.0);
                a.0 + t * (b.0 - a.0)
            };
            let (u, v) = (at(lo), at(hi));
            (u.min(v), u.max(v))
        };
        // Interpolation error grows with the segment's x extent: widen by a bound on it.
        let slack = 1e-9 * (b.0 - a.0).abs();
        let (c0, c1) = x.range(xa - slack, xb + slack);
        for i in c0.max(x0)..=c1.min(x0 + bw - 1) {
            marked[(j - y0) * bw + (i - x0)] = true;
        }
    }
}
