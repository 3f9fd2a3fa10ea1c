//! An R-tree of polygon parts with edge slabs: the point-in-polygon join.

use super::{EdgeSlabs, FlatIndex};
use crate::algo::{bbox_of_part, Location, Xy};
use crate::column::{ColumnView, Family};

/// Everything a point-in-polygon join needs about a polygon column: a [`FlatIndex`] over the
/// boxes of its polygon parts (so each part of a multipolygon is its own entry) and the
/// [`EdgeSlabs`] of every part.
#[derive(Clone, Debug, Default)]
pub struct PolygonIndex {
    tree: FlatIndex,
    slabs: EdgeSlabs,
    part_rows: Vec<u32>,
}

impl PolygonIndex {
    /// Node size used by [`PolygonIndex::build`].
    pub const NODE_SIZE: usize = 8;

    /// Indexes the polygonal rows of `polys`; null rows and rows of other families are left
    /// out (they contain no point).
    pub fn build(polys: ColumnView<'_>) -> PolygonIndex {
        let part_rows = polys.part_rows();
        let areal = |row: u32| {
            polys
                .get(row as usize)
                .is_some_and(|g| matches!(g.family(), Family::Polygon | Family::MultiPolygon))
        };
        let items: Vec<_> = (0..polys.part_count())
            .filter(|&p| areal(part_rows[p]))
            .map(|p| (bbox_of_part(&polys.part(p)), p as u32))
            .collect();
        let tree = FlatIndex::build(&items, Self::NODE_SIZE);
        let slabs =
            EdgeSlabs::build((0..polys.part_count()).map(|p| areal(part_rows[p]).then(|| polys.part(p))));
        PolygonIndex { tree, slabs, part_rows }
    }

    /// The R-tree over part boxes (item ids are global part indices).
    pub fn tree(&self) -> &FlatIndex {
        &self.tree
    }

    /// The edge slabs (indexed by global part index).
    pub fn slabs(&self) -> &EdgeSlabs {
        &self.slabs
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
