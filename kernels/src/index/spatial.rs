//! The index an `indexed` input carries: an R-tree over the parts of every row, with edge
//! slabs for the polygon parts.

use super::{EdgeSlabs, FlatIndex};
use crate::algo::{bbox_of_part, Location, Rect, Xy};
use crate::column::{ColumnView, Family};

/// Everything a join needs about an indexed column: a [`FlatIndex`] over the boxes of its
/// parts (so each part of a multi-geometry is its own entry and far-flung islands do not
/// make one huge box), the row of every part, and [`EdgeSlabs`] for the parts of polygon
/// rows, which make point-in-polygon a read of a handful of edges.
///
/// Part numbers are the column's global part indices, so `view.raw().geom_offsets` maps a
/// row to its parts here too.
#[derive(Clone, Debug, Default)]
pub struct SpatialIndex {
    tree: FlatIndex,
    slabs: EdgeSlabs,
    part_rows: Vec<u32>,
    rows: usize,
}

impl SpatialIndex {
    /// Node size used by [`SpatialIndex::build`].
    pub const NODE_SIZE: usize = 8;

    /// Indexes every non-empty part of every non-null row of `col`; the parts of polygon
    /// and multipolygon rows also get edge slabs.
    pub fn build(col: ColumnView<'_>) -> SpatialIndex {
        let part_rows = col.part_rows();
        let areal = |row: u32| {
            col.get(row as usize)
                .is_some_and(|g| matches!(g.family(), Family::Polygon | Family::MultiPolygon))
        };
        let items: Vec<_> = (0..col.part_count())
            .filter(|&p| !col.is_null(part_rows[p] as usize))
            .map(|p| (bbox_of_part(&col.part(p)), p as u32))
            .filter(|(b, _)| !b.is_nan())
            .collect();
        let tree = FlatIndex::build(&items, Self::NODE_SIZE);
        let slabs = EdgeSlabs::build((0..col.part_count()).map(|p| areal(part_rows[p]).then(|| col.part(p))));
        SpatialIndex { tree, slabs, part_rows, rows: col.len() }
    }

    /// Rows of the column this index was built from.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The R-tree over part boxes (item ids are global part indices).
    pub fn tree(&self) -> &FlatIndex {
        &self.tree
    }

    /// The edge slabs (indexed by global part index; parts of non-polygon rows have none).
    pub fn slabs(&self) -> &EdgeSlabs {
        &self.slabs
    }

    /// The row of every part.
    pub fn part_rows(&self) -> &[u32] {
        &self.part_rows
    }

    /// Calls `f(part, row)` for every part whose box meets `rect` (closed boxes).
    #[inline]
    pub fn query(&self, rect: &Rect, mut f: impl FnMut(u32, u32)) {
        self.tree.query(rect, |part| f(part, self.part_rows[part as usize]));
    }

    /// Calls `f(part, row)` for every part whose box contains `p`.
    #[inline]
    pub fn query_point(&self, p: Xy, mut f: impl FnMut(u32, u32)) {
        self.tree.query_point(p, |part| f(part, self.part_rows[part as usize]));
    }

    /// Calls `f(row)` for every polygon row whose interior contains `p` (a point on a
    /// boundary is not contained, as in `contains`). Exact.
    #[inline]
    pub fn containing(&self, p: Xy, mut f: impl FnMut(u32)) {
        self.tree.query_point(p, |part| {
            if self.slabs.locate(part as usize, p) == Location::Interior {
                f(self.part_rows[part as usize]);
            }
        });
    }

    /// The point-in-polygon join: `(point row, polygon row)` for every point of `points`
    /// (single points; null and empty rows match nothing) inside a polygon, ordered by point
    /// row, then as found.
    pub fn join_points(&self, points: ColumnView<'_>) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for row in 0..points.len() {
            if let Some(p) = points.point(row) {
                self.containing(p, |poly| out.push((row as u32, poly)));
            }
        }
        out
    }
}
