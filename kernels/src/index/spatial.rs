//! The index an `indexed` input carries: an R-tree over the parts of every row, with edge
//! slabs for the polygon parts and a cell grid, built on a point's first need.

use std::sync::{Arc, OnceLock};

use super::{CellClass, CellGrid, EdgeSlabs, FlatIndex};
use crate::algo::{bbox_of_part, Location, Rect, Xy};
use crate::column::{Family, GeometryColumn};

/// Everything a join needs about an indexed column: a [`FlatIndex`] over the boxes of its
/// parts (so each part of a multi-geometry is its own entry and far-flung islands do not
/// make one huge box), the row of every part, and [`EdgeSlabs`] for the parts of polygon
/// rows, which make point-in-polygon a read of a handful of edges, and a [`CellGrid`] that
/// answers most point queries — which parts' boxes hold the point, and where the point lies
/// in each polygon part — from one cell.
///
/// The slabs and the grid serve points only, and cost more to build than the tree (a
/// classification of every cell against every polygon): they are built when a point first
/// needs them ([`SpatialIndex::slabs`], [`SpatialIndex::grid`], a point query), once, by
/// whichever thread asks first. An index only ever probed by lines and polygons (SpatialBench's
/// Q9, buildings against buildings) never builds them.
///
/// Part numbers are the column's global part indices, so `view.raw().geom_offsets` maps a
/// row to its parts here too.
#[derive(Clone, Debug)]
pub struct SpatialIndex {
    tree: FlatIndex,
    part_rows: Vec<u32>,
    rows: usize,
    /// Every non-null row is a polygon or multipolygon.
    areal: bool,
    /// The column indexed, for the point accelerators.
    column: Arc<GeometryColumn>,
    points: OnceLock<PointAccelerators>,
}

/// What answers points: edge slabs and the cell grid over them.
#[derive(Clone, Debug)]
struct PointAccelerators {
    slabs: EdgeSlabs,
    grid: Option<CellGrid>,
}

impl SpatialIndex {
    /// Node size used by [`SpatialIndex::build`].
    pub const NODE_SIZE: usize = 8;

    /// Indexes every non-empty part of every non-null row of `column`; the parts of polygon
    /// and multipolygon rows also get edge slabs (when a point first needs them).
    pub fn build(column: Arc<GeometryColumn>) -> SpatialIndex {
        let col = column.view();
        let part_rows = col.part_rows();
        let items: Vec<_> = part_boxes(&column, &part_rows)
            .into_iter()
            .enumerate()
            .filter(|(_, b)| !b.is_nan())
            .map(|(p, b)| (b, p as u32))
            .collect();
        let tree = FlatIndex::build(&items, Self::NODE_SIZE);
        let areal = (0..col.len()).all(|row| col.is_null(row) || is_areal(&column, row as u32));
        SpatialIndex { tree, part_rows, rows: col.len(), areal, column, points: OnceLock::new() }
    }

    /// Whether the edge slabs and the cell grid have been built: a point has needed them.
    pub fn points_built(&self) -> bool {
        self.points.get().is_some()
    }

    /// The slabs and the grid, built on the first call.
    fn points(&self) -> &PointAccelerators {
        self.points.get_or_init(|| {
            let col = self.column.view();
            let part_rows = &self.part_rows;
            let boxes = part_boxes(&self.column, part_rows);
            let polygon = |p: usize| is_areal(&self.column, part_rows[p]).then(|| col.part(p));
            let slabs = EdgeSlabs::build((0..col.part_count()).map(polygon));
            let grid = CellGrid::build(boxes, polygon, &slabs);
            PointAccelerators { slabs, grid }
        })
    }

    /// True when every non-null row of the column was a polygon or multipolygon, so every
    /// part has edge slabs.
    pub fn is_areal(&self) -> bool {
        self.areal
    }

    /// Rows of the column this index was built from.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The R-tree over part boxes (item ids are global part indices).
    pub fn tree(&self) -> &FlatIndex {
        &self.tree
    }

    /// The edge slabs (indexed by global part index; parts of non-polygon rows have none),
    /// built on the first call.
    pub fn slabs(&self) -> &EdgeSlabs {
        &self.points().slabs
    }

    /// The point grid, when one could be built (see [`CellGrid::build`]); built on the first
    /// call.
    pub fn grid(&self) -> Option<&CellGrid> {
        self.points().grid.as_ref()
    }

    /// The row of every part.
    pub fn part_rows(&self) -> &[u32] {
        &self.part_rows
    }

    /// Calls `f(part, row)` for every part whose box meets `rect` (closed boxes), a point
    /// grown by a join's distance: from one cell of the grid when `rect` is that small and
    /// the tree is deeper than two levels (the grid built if it was not), else from the tree
    /// (whose root answers a small one sooner than the grid's cell arithmetic: SpatialBench's
    /// Q3, one polygon).
    #[inline]
    pub fn query(&self, rect: &Rect, f: impl FnMut(u32, u32)) {
        let deep = self.tree.len() > Self::NODE_SIZE * Self::NODE_SIZE;
        let grid = if deep { self.grid() } else { None };
        self.query_from(grid, rect, f);
    }

    /// [`SpatialIndex::query`] for the box of a geometry other than a point: from the grid
    /// only if a point has built it, so that lines and polygons never pay for it.
    #[inline]
    pub fn query_box(&self, rect: &Rect, f: impl FnMut(u32, u32)) {
        let deep = self.tree.len() > Self::NODE_SIZE * Self::NODE_SIZE;
        let grid = if deep { self.points.get().and_then(|p| p.grid.as_ref()) } else { None };
        self.query_from(grid, rect, f);
    }

    #[inline]
    fn query_from(&self, grid: Option<&CellGrid>, rect: &Rect, mut f: impl FnMut(u32, u32)) {
        let part_rows = &self.part_rows;
        if let Some(grid) = grid {
            if grid.query_rect(rect, |part| f(part, part_rows[part as usize])) {
                return;
            }
        }
        self.tree.query(rect, |part| f(part, part_rows[part as usize]));
    }

    /// Calls `f(part, row)` for every part whose box contains `p`.
    #[inline]
    pub fn query_point(&self, p: Xy, mut f: impl FnMut(u32, u32)) {
        self.query_point_classified(p, |part, row, _| f(part, row));
    }

    /// Calls `f(part, row, class)` for every part whose box contains `p`, where `class`
    /// says what the grid knows of `p` against that part: `Inside` and `Outside` are
    /// exactly what [`EdgeSlabs::locate`] would answer, `Check` means ask it.
    #[inline]
    pub fn query_point_classified(&self, p: Xy, mut f: impl FnMut(u32, u32, CellClass)) {
        match self.grid() {
            Some(grid) => grid.query_point(p, |part, class| f(part, self.part_rows[part as usize], class)),
            None => self.tree.query_point(p, |part| f(part, self.part_rows[part as usize], CellClass::Check)),
        }
    }

    /// Where `p` lies relative to polygon part `part`, given the grid's `class` for it.
    #[inline]
    pub fn locate_part(&self, part: u32, class: CellClass, p: Xy) -> Location {
        match class {
            CellClass::Inside => Location::Interior,
            CellClass::Outside => Location::Exterior,
            CellClass::Check => self.slabs().locate(part as usize, p),
        }
    }

    /// Calls `f(row)` for every polygon row whose interior contains `p` (a point on a
    /// boundary is not contained, as in `contains`). Exact.
    #[inline]
    pub fn containing(&self, p: Xy, mut f: impl FnMut(u32)) {
        self.query_point_classified(p, |part, row, class| {
            if self.locate_part(part, class, p) == Location::Interior {
                f(row);
            }
        });
    }

    /// The point-in-polygon join: `(point row, polygon row)` for every point of `points`
    /// (single points; null and empty rows match nothing) inside a polygon, ordered by point
    /// row, then as found.
    pub fn join_points(&self, points: crate::column::ColumnView<'_>) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for row in 0..points.len() {
            if let Some(p) = points.point(row) {
                self.containing(p, |poly| out.push((row as u32, poly)));
            }
        }
        out
    }
}

/// Every part's box (NaN for a null row's parts and for empty parts).
fn part_boxes(column: &GeometryColumn, part_rows: &[u32]) -> Vec<Rect> {
    let col = column.view();
    (0..col.part_count())
        .map(|p| if col.is_null(part_rows[p] as usize) { Rect::NAN } else { bbox_of_part(&col.part(p)) })
        .collect()
}

/// Whether `row` of `column` is a polygon or multipolygon (the rows with edge slabs).
fn is_areal(column: &GeometryColumn, row: u32) -> bool {
    column.get(row as usize).is_some_and(|g| matches!(g.family(), Family::Polygon | Family::MultiPolygon))
}
