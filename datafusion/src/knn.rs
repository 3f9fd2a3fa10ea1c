//! The k-nearest-neighbour join: `JOIN … ON ST_KNN(q, o, k, use_spheroid)` pairs each row of
//! the query side (`q`'s) with the `k` rows of the object side (`o`'s) nearest to it, as
//! SedonaDB defines it. The object side's boxes go in an R-tree ([`Nearest`]); each query
//! geometry walks it nearest box first, measuring the exact distance (meridian's, as
//! `ST_Distance` measures it) until no box left can beat the k-th. `ST_KNN` itself is no
//! function a row: called anywhere but a join's condition, it is an error that says so.

use std::collections::BinaryHeap;
use std::sync::Arc;

use arrow_schema::DataType;
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use meridian_kernels::algo::{bbox, distance};
use meridian_kernels::column::{Geom, GeometryColumn};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{PointDistance, RTree};

use crate::geometry;

/// The object side of a KNN join: its geometries and an R-tree of their boxes.
pub(crate) struct Nearest {
    column: Arc<GeometryColumn>,
    tree: RTree<GeomWithData<Rectangle<[f64; 2]>, u32>>,
}

/// A candidate in the running k best: ordered by distance, then row, so the heap's top is the
/// worst kept and ties keep the lower rows.
#[derive(PartialEq)]
struct Kept(f64, u32);

impl Eq for Kept {}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Kept {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

impl Nearest {
    /// Indexes the non-null, non-empty rows of `column` (`u32` row ids; a column past 2^32
    /// rows is an error).
    pub(crate) fn build(column: Arc<GeometryColumn>) -> Result<Nearest> {
        let mut items = Vec::with_capacity(column.len());
        for row in 0..column.len() {
            let Some(g) = column.get(row).filter(|g| !g.is_empty()) else { continue };
            let Ok(id) = u32::try_from(row) else {
                return exec_err!("ST_KNN's object side has more than 2^32 rows");
            };
            let r = bbox(&g);
            items
                .push(GeomWithData::new(Rectangle::from_corners([r.min_x, r.min_y], [r.max_x, r.max_y]), id));
        }
        Ok(Nearest { column, tree: RTree::bulk_load(items) })
    }

    /// The rows of the `k` object geometries nearest `g` and their distances from it
    /// (`distance(g, object)`), nearest first (equal distances by row), appended to `out`; none
    /// for an empty `g`.
    pub(crate) fn nearest(&self, g: &Geom<'_>, k: usize, out: &mut Vec<(u32, f64)>) {
        if g.is_empty() || k == 0 {
            return;
        }
        // Boxes come nearest to `g`'s box centre first. Every point of `g` is within `reach`
        // of the centre, so no geometry in a box farther than (k-th distance + reach) can be
        // nearer than the k-th: the walk stops there.
        let r = bbox(g);
        let centre = [(r.min_x + r.max_x) / 2.0, (r.min_y + r.max_y) / 2.0];
        let reach = (r.max_x - r.min_x).hypot(r.max_y - r.min_y) / 2.0;
        let mut kept: BinaryHeap<Kept> = BinaryHeap::with_capacity(k + 1);
        for item in self.tree.nearest_neighbor_iter(&centre) {
            let bound = item.geom().distance_2(&centre).sqrt() - reach;
            if kept.len() == k && kept.peek().is_some_and(|worst| bound > worst.0) {
                break;
            }
            let row = item.data;
            let Some(o) = self.column.get(row as usize) else { continue };
            let d = distance(g, &o);
            if d.is_nan() {
                continue;
            }
            kept.push(Kept(d, row));
            if kept.len() > k {
                kept.pop();
            }
        }
        let start = out.len();
        out.extend(kept.into_sorted_vec().into_iter().map(|Kept(d, row)| (row, d)));
        debug_assert!(out.len() - start <= k);
    }
}

/// `ST_KNN(q, o, k, use_spheroid)`: only a join's condition (see the module's documentation).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KnnFunction {
    signature: Signature,
}

impl KnnFunction {
    /// The function's SQL name.
    pub const NAME: &'static str = "st_knn";

    /// `ST_KNN` as a DataFusion scalar function, for the join rule to find in a join's condition.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(KnnFunction { signature: Signature::user_defined(Volatility::Immutable) })
    }
}

impl ScalarUDFImpl for KnnFunction {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [q, o, k, spheroid] = arg_types else {
            return plan_err!(
                "st_knn takes 4 arguments (query geometry, object geometry, k, use_spheroid), not {}",
                arg_types.len()
            );
        };
        for (i, t) in [(1, q), (2, o)] {
            geometry::encoding_of_type(&format!("st_knn argument {i}"), t)?;
        }
        if !(k.is_integer() || k.is_null()) {
            return plan_err!("st_knn: k is {k}, not an integer");
        }
        if !matches!(spheroid, DataType::Boolean | DataType::Null) {
            return plan_err!("st_knn: use_spheroid is {spheroid}, not a boolean");
        }
        Ok(vec![q.clone(), o.clone(), DataType::Int64, DataType::Boolean])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!(
            "ST_KNN runs only as a join's whole condition, `JOIN o ON ST_KNN(q.geom, o.geom, k, false)` \
             with k a positive constant and use_spheroid false (planar distances: meridian has no \
             spheroidal KNN); here it was left to evaluate row by row"
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;
    use meridian_kernels::column::{ColumnBuilder, Family};

    /// The k nearest by measuring every object: the oracle.
    fn brute(objects: &GeometryColumn, g: &Geom<'_>, k: usize) -> Vec<(u32, f64)> {
        let mut all: Vec<Kept> = (0..objects.len())
            .filter_map(|r| {
                let o = objects.get(r)?;
                let d = distance(g, &o);
                (!d.is_nan()).then_some(Kept(d, r as u32))
            })
            .collect();
        all.sort();
        all.into_iter().take(k).map(|Kept(d, r)| (r, d)).collect()
    }

    #[test]
    fn the_k_nearest_equal_measuring_every_object() {
        // Objects: squares of several sizes on a jittered grid, a null and an empty among them.
        let mut b = ColumnBuilder::nested();
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for i in 0..400 {
            if i == 17 {
                b.push_null();
                continue;
            }
            if i == 31 {
                b.push_empty(Family::Polygon);
                continue;
            }
            let (x, y, s) = ((i % 20) as f64 + next(), (i / 20) as f64 + next(), 0.05 + next() * 1.5);
            b.push_polygon(&[&[(x, y), (x + s, y), (x + s, y + s), (x, y + s), (x, y)]]).unwrap();
        }
        let objects = Arc::new(b.finish());
        let nearest = Nearest::build(objects.clone()).unwrap();
        let mut q = ColumnBuilder::nested();
        for _ in 0..300 {
            q.push_point(next() * 24.0 - 2.0, next() * 24.0 - 2.0).unwrap();
        }
        let points = q.finish();
        // A line: its box's centre is not the line, so the walk's bound has to allow for it.
        let mut q = ColumnBuilder::nested();
        q.push_line_string(&[(3.0, 3.0), (9.5, 12.25), (15.0, 4.0)]).unwrap();
        let line = q.finish();
        for queries in [&points, &line] {
            for k in [1, 5, 12] {
                for r in 0..queries.len() {
                    let g = queries.get(r).unwrap();
                    let mut got = Vec::new();
                    nearest.nearest(&g, k, &mut got);
                    assert_eq!(got, brute(&objects, &g, k), "query {r}, k {k}");
                }
            }
        }
        let queries = points;
        // More than there are: every object, nearest first.
        let g = queries.get(0).unwrap();
        let mut got = Vec::new();
        nearest.nearest(&g, 1000, &mut got);
        assert_eq!(got.len(), 398);
        assert_eq!(got, brute(&objects, &g, 1000));
    }
}
