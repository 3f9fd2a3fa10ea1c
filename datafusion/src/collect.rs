//! `ST_Collect`, the aggregate: a group's geometries as one multi-geometry, as WKB —
//! `ST_Collect(g)` as SedonaDB and PostGIS write it, and `ST_Collect(ARRAY_AGG(g))` as
//! SpatialBench's base dialect (Sedona on Spark) does, which [`ArrayAggPlanner`] plans as the
//! former (an aggregate cannot take another aggregate's value in DataFusion's plans).
//!
//! Points (and multipoints) collect into a `MULTIPOINT`, lines into a `MULTILINESTRING`,
//! polygons into a `MULTIPOLYGON`; nulls are left out, and a group of nulls only is null.
//! Departures, because a column holds no `GEOMETRYCOLLECTION`: the members of multi-geometries
//! are collected one by one (PostGIS nests them in a collection), empties are left out (a
//! group of empties only is the empty multi of their family), and a group that mixes
//! dimensions is an error that names the families.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BinaryArray, ListArray};
use arrow_schema::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawAggregateExpr};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Expr, Signature, Volatility};
use geo_types::{Geometry, MultiLineString, MultiPoint, MultiPolygon};
use meridian_kernels::column::{ColumnBuilder, Family};
use meridian_kernels::io::geoarrow::{self, Encoding};
use meridian_kernels::io::to_geo;

use crate::geometry;

/// `ST_Collect` as a DataFusion aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CollectFunction {
    signature: Signature,
}

impl CollectFunction {
    /// Its SQL name.
    pub const NAME: &'static str = "st_collect";

    /// `ST_Collect` as a DataFusion aggregate function.
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::new_from_impl(CollectFunction {
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

/// Whether `t` is a list (what `ARRAY_AGG` makes).
fn is_list(t: &DataType) -> bool {
    matches!(t, DataType::List(_) | DataType::LargeList(_))
}

impl AggregateUDFImpl for CollectFunction {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [t] if is_list(t) => plan_err!(
                "{}: over a list it takes `ARRAY_AGG(g)` only (it then collects g), not {t}",
                Self::NAME
            ),
            _ => geometry::coerce_geometry_args(Self::NAME, 1, arg_types),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn accumulator(&self, args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        let [field] = args.expr_fields else {
            return exec_err!("{}: {} arguments", Self::NAME, args.expr_fields.len());
        };
        Ok(Box::new(Collected { encoding: geometry::encoding(field)?, ..Collected::default() }))
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        let members = DataType::List(Arc::new(Field::new_list_field(DataType::Binary, true)));
        Ok(vec![Arc::new(Field::new(format_state_name(args.name, "members"), members, true))])
    }
}

/// Plans `ST_Collect(ARRAY_AGG(g))` as `ST_Collect(g)`: DataFusion refuses an aggregate
/// nested in another when it builds the plan, so the rewrite happens as the SQL is planned.
/// Only a plain `ARRAY_AGG` is taken apart: with `DISTINCT`, `FILTER` or `ORDER BY` its list
/// is not the group's rows, and the query is refused with what to write instead.
#[derive(Debug)]
pub struct ArrayAggPlanner;

impl ExprPlanner for ArrayAggPlanner {
    fn plan_aggregate(&self, mut expr: RawAggregateExpr) -> Result<PlannerResult<RawAggregateExpr>> {
        if !expr.func.name().eq_ignore_ascii_case(CollectFunction::NAME) {
            return Ok(PlannerResult::Original(expr));
        }
        let inner = match expr.args.as_slice() {
            [Expr::AggregateFunction(inner)] if inner.func.name().eq_ignore_ascii_case("array_agg") => inner,
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let p = &inner.params;
        if p.distinct || p.filter.is_some() || !p.order_by.is_empty() || p.args.len() != 1 {
            return plan_err!(
                "{}(ARRAY_AGG(g)) is planned as {0}(g), the aggregate of the group's rows: an \
                 ARRAY_AGG with DISTINCT, FILTER or ORDER BY is not; write {0}(g) with the \
                 clause on it",
                CollectFunction::NAME
            );
        }
        expr.args = p.args.clone();
        Ok(PlannerResult::Original(expr))
    }
}

/// A group's members so far, as WKB (what its state carries between partitions); small
/// while a group is small, since a grouping holds one of these for each group.
#[derive(Debug)]
struct Collected {
    /// How the input column is encoded.
    encoding: Encoding,
    /// The members' WKB, one after another, and where each ends.
    wkb: Vec<u8>,
    ends: Vec<usize>,
    /// The family of the first empty seen: a group of empties only is that family's empty multi.
    empty: Option<Family>,
}

impl Default for Collected {
    fn default() -> Collected {
        Collected { encoding: Encoding::Wkb, wkb: Vec::new(), ends: Vec::new(), empty: None }
    }
}

impl Collected {
    fn member(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.wkb[start..self.ends[i]]
    }

    /// Adds the non-null rows of `array` (encoded as `encoding`).
    fn add(&mut self, array: &dyn Array, encoding: Encoding) -> Result<()> {
        let what = format!("{} argument", CollectFunction::NAME);
        let col = geometry::to_column(&what, array, encoding)?;
        let (_, wkb) = geoarrow::to_array(&col, 0..col.len(), &what, Encoding::Wkb)
            .map_err(DataFusionError::Execution)?;
        let Some(wkb) = wkb.as_binary_opt::<i32>() else {
            return exec_err!("{what}: WKB came back as {}", wkb.data_type());
        };
        for row in 0..col.len() {
            match col.get(row) {
                None => {}
                Some(g) if g.is_empty() => {
                    self.empty.get_or_insert(g.family());
                }
                Some(_) => {
                    self.wkb.extend_from_slice(wkb.value(row));
                    self.ends.push(self.wkb.len());
                }
            }
        }
        Ok(())
    }

    /// The members as one binary array.
    fn members(&self) -> BinaryArray {
        BinaryArray::from_iter_values((0..self.ends.len()).map(|i| self.member(i)))
    }
}

impl Accumulator for Collected {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        match values {
            [array] => self.add(array.as_ref(), self.encoding),
            _ => exec_err!("{}: {} arguments", CollectFunction::NAME, values.len()),
        }
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [lists] = states else {
            return exec_err!("{}: {} state columns", CollectFunction::NAME, states.len());
        };
        let Some(lists) = lists.as_any().downcast_ref::<ListArray>() else {
            return exec_err!("{}: a state of {}", CollectFunction::NAME, lists.data_type());
        };
        for row in 0..lists.len() {
            if lists.is_valid(row) {
                self.add(lists.value(row).as_ref(), Encoding::Wkb)?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let members: ArrayRef = Arc::new(self.members());
        Ok(vec![ScalarValue::List(Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(DataType::Binary, true)),
            datafusion::arrow::buffer::OffsetBuffer::from_lengths([members.len()]),
            members,
            None,
        )))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let name = CollectFunction::NAME;
        let what = format!("{name} group");
        let members = geometry::to_column(&what, &self.members(), Encoding::Wkb)?;
        let mut dims = (0..members.len()).filter_map(|i| members.get(i)).map(|g| g.family());
        let family = match (dims.next(), self.empty) {
            (None, None) => return Ok(ScalarValue::Binary(None)),
            (Some(f), _) | (None, Some(f)) => f,
        };
        if let Some(other) = dims.find(|f| f.dimension() != family.dimension()) {
            return exec_err!(
                "{name}: a group mixes {} and {}: its collection would be a GEOMETRYCOLLECTION, \
                 which meridian's columns do not hold",
                family.wkt_name(),
                other.wkt_name()
            );
        }
        // Every member is a non-empty geometry of one dimension: its parts join one multi.
        let (mut points, mut lines, mut polygons) = (Vec::new(), Vec::new(), Vec::new());
        for g in (0..members.len()).filter_map(|i| members.get(i)) {
            match to_geo(&g).map_err(|e| DataFusionError::Execution(format!("{what}: {e}")))? {
                Geometry::Point(p) => points.push(p),
                Geometry::MultiPoint(m) => points.extend(m.0),
                Geometry::LineString(l) => lines.push(l),
                Geometry::MultiLineString(m) => lines.extend(m.0),
                Geometry::Polygon(p) => polygons.push(p),
                Geometry::MultiPolygon(m) => polygons.extend(m.0),
                _ => return exec_err!("{what}: a member of no family meridian holds"),
            }
        }
        let multi = match family.dimension() {
            0 => Geometry::MultiPoint(MultiPoint(points)),
            1 => Geometry::MultiLineString(MultiLineString(lines)),
            _ => Geometry::MultiPolygon(MultiPolygon(polygons)),
        };
        let mut out = ColumnBuilder::new();
        out.push_geometry(&multi).map_err(|e| DataFusionError::Execution(format!("{what}: {e}")))?;
        let col = out.finish();
        let (_, wkb) =
            geoarrow::to_array(&col, 0..1, &what, Encoding::Wkb).map_err(DataFusionError::Execution)?;
        match wkb.as_binary_opt::<i32>() {
            Some(b) => Ok(ScalarValue::Binary(Some(b.value(0).to_vec()))),
            None => exec_err!("{what}: WKB came back as {}", wkb.data_type()),
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.wkb.capacity()
            + self.ends.capacity() * std::mem::size_of::<usize>()
    }
}
