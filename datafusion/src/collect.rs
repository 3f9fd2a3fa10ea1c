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

use arrow_array::builder::BinaryBuilder;
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BinaryArray, BooleanArray, ListArray};
use arrow_schema::{DataType, Field, FieldRef};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawAggregateExpr};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, Expr, GroupsAccumulator, Signature, Volatility,
};
use geo_types::{Geometry, MultiLineString, MultiPoint, MultiPolygon};
use meridian_kernels::column::{ColumnBuilder, Family, GeometryColumn};
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

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs<'_>) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs<'_>) -> Result<Box<dyn GroupsAccumulator>> {
        let [field] = args.expr_fields else {
            return exec_err!("{}: {} arguments", Self::NAME, args.expr_fields.len());
        };
        Ok(Box::new(CollectedGroups { encoding: geometry::encoding(field)?, groups: Vec::new(), bytes: 0 }))
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
        let rows = Decoded::new(array, encoding)?;
        for row in 0..rows.col.len() {
            self.push(&rows, row);
        }
        Ok(())
    }

    /// Adds row `row` of `rows` (nothing for a null); the bytes it took.
    fn push(&mut self, rows: &Decoded, row: usize) -> usize {
        match rows.col.get(row) {
            None => 0,
            Some(g) if g.is_empty() => {
                self.empty.get_or_insert(g.family());
                0
            }
            Some(_) => {
                let wkb = rows.wkb.value(row);
                self.wkb.extend_from_slice(wkb);
                self.ends.push(self.wkb.len());
                wkb.len() + std::mem::size_of::<usize>()
            }
        }
    }

    /// The members as one binary array.
    fn members(&self) -> BinaryArray {
        BinaryArray::from_iter_values((0..self.ends.len()).map(|i| self.member(i)))
    }

    /// The `MULTIPOINT` of a group whose members are all 2-D points, written straight from
    /// their WKB (a multipoint's WKB is its count and its points' WKB one after another):
    /// SpatialBench's Q5 collects points, many groups of a few, where decoding and encoding
    /// each group again was most of the query. None when any member is not such a point (the
    /// members are WKB as meridian writes it: little-endian, point type 1, 21 bytes).
    fn points_only(&self) -> Option<Vec<u8>> {
        const POINT: [u8; 5] = [1, 1, 0, 0, 0];
        let n = self.ends.len();
        let all_points = n > 0 && (0..n).all(|i| self.member(i).len() == 21 && self.member(i)[..5] == POINT);
        if !all_points {
            return None;
        }
        let mut out = Vec::with_capacity(9 + self.wkb.len());
        out.extend_from_slice(&[1, 4, 0, 0, 0]);
        out.extend_from_slice(&u32::try_from(n).ok()?.to_le_bytes());
        out.extend_from_slice(&self.wkb);
        Some(out)
    }

    /// Appends the group's state to `out`: its members, and the empty of its family when it
    /// saw one (so that a group of empties only stays the empty multi across partitions);
    /// how many values that was.
    fn append_state(&self, out: &mut BinaryBuilder) -> Result<usize> {
        for i in 0..self.ends.len() {
            out.append_value(self.member(i));
        }
        let Some(family) = self.empty else { return Ok(self.ends.len()) };
        let mut b = ColumnBuilder::new();
        b.push_empty(family);
        let what = format!("{} state", CollectFunction::NAME);
        let (_, wkb) = geoarrow::to_array(&b.finish(), 0..1, &what, Encoding::Wkb)
            .map_err(DataFusionError::Execution)?;
        match wkb.as_binary_opt::<i32>() {
            Some(w) => out.append_value(w.value(0)),
            None => return exec_err!("{what}: WKB came back as {}", wkb.data_type()),
        }
        Ok(self.ends.len() + 1)
    }
}

/// A list array of one list per group's state.
fn state_lists<'a>(groups: impl Iterator<Item = &'a Collected>) -> Result<ArrayRef> {
    let mut members = BinaryBuilder::new();
    let lengths = groups.map(|g| g.append_state(&mut members)).collect::<Result<Vec<usize>>>()?;
    Ok(Arc::new(ListArray::new(
        Arc::new(Field::new_list_field(DataType::Binary, true)),
        OffsetBuffer::from_lengths(lengths),
        Arc::new(members.finish()),
        None,
    )))
}

/// A batch's geometries decoded once (checked, their families known) and as WKB.
struct Decoded {
    col: Arc<GeometryColumn>,
    wkb: BinaryArray,
}

impl Decoded {
    fn new(array: &dyn Array, encoding: Encoding) -> Result<Decoded> {
        let what = format!("{} argument", CollectFunction::NAME);
        let col = geometry::to_column(&what, array, encoding)?;
        // WKB that decoded is kept as it came (any byte order or dialect the decoder reads is
        // read again by `value`); anything else is written as WKB.
        if let (Encoding::Wkb, Some(wkb)) = (encoding, array.as_binary_opt::<i32>()) {
            return Ok(Decoded { col, wkb: wkb.clone() });
        }
        let (_, wkb) = geoarrow::to_array(&col, 0..col.len(), &what, Encoding::Wkb)
            .map_err(DataFusionError::Execution)?;
        let Some(wkb) = wkb.as_binary_opt::<i32>() else {
            return exec_err!("{what}: WKB came back as {}", wkb.data_type());
        };
        let wkb = wkb.clone();
        Ok(Decoded { col, wkb })
    }
}

/// `ST_Collect` over many groups at once (what DataFusion's grouping uses when it can): each
/// batch decoded once and its rows handed to their groups, where [`Collected`] alone would be
/// called once per group a batch touches, decoding each group's slice apart.
#[derive(Debug)]
struct CollectedGroups {
    encoding: Encoding,
    groups: Vec<Collected>,
    /// The groups' members' bytes, kept as they grow (DataFusion asks after every batch).
    bytes: usize,
}

impl CollectedGroups {
    /// The groups `emit_to` names, taken out.
    fn take(&mut self, emit_to: EmitTo) -> Vec<Collected> {
        let taken = emit_to.take_needed(&mut self.groups);
        self.bytes =
            self.groups.iter().map(|g| g.wkb.len() + g.ends.len() * std::mem::size_of::<usize>()).sum();
        taken
    }
}

impl GroupsAccumulator for CollectedGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let [array] = values else {
            return exec_err!("{}: {} arguments", CollectFunction::NAME, values.len());
        };
        self.groups
            .resize_with(total_num_groups, || Collected { encoding: self.encoding, ..Collected::default() });
        let rows = Decoded::new(array.as_ref(), self.encoding)?;
        for (row, &g) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            let Some(group) = self.groups.get_mut(g) else {
                return exec_err!("{}: group {g} of {total_num_groups}", CollectFunction::NAME);
            };
            self.bytes += group.push(&rows, row);
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let [lists] = values else {
            return exec_err!("{}: {} state columns", CollectFunction::NAME, values.len());
        };
        let Some(lists) = lists.as_any().downcast_ref::<ListArray>() else {
            return exec_err!("{}: a state of {}", CollectFunction::NAME, lists.data_type());
        };
        self.groups
            .resize_with(total_num_groups, || Collected { encoding: self.encoding, ..Collected::default() });
        // Every group's members decoded at once; each list row's members are its slice.
        let members = Decoded::new(lists.values().as_ref(), Encoding::Wkb)?;
        let offsets = lists.value_offsets();
        for (row, &g) in group_indices.iter().enumerate() {
            if !lists.is_valid(row) {
                continue;
            }
            let Some(group) = self.groups.get_mut(g) else {
                return exec_err!("{}: group {g} of {total_num_groups}", CollectFunction::NAME);
            };
            let (first, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            if end > first {
                let at = |i: usize| members.wkb.value_offsets()[i] as usize;
                group.wkb.reserve(at(end) - at(first));
                group.ends.reserve(end - first);
            }
            for member in first..end {
                self.bytes += group.push(&members, member);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut out = BinaryBuilder::new();
        for group in self.take(emit_to) {
            match group.value()? {
                Some(wkb) => out.append_value(wkb),
                None => out.append_null(),
            }
        }
        Ok(Arc::new(out.finish()))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![state_lists(self.take(emit_to).iter())?])
    }

    /// Each row its own group's state (for a grouping that skips partial aggregation).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let [array] = values else {
            return exec_err!("{}: {} arguments", CollectFunction::NAME, values.len());
        };
        let rows = Decoded::new(array.as_ref(), self.encoding)?;
        let mut members = BinaryBuilder::new();
        let mut lengths = Vec::with_capacity(rows.col.len());
        let mut one = Collected { encoding: self.encoding, ..Collected::default() };
        for row in 0..rows.col.len() {
            one.wkb.clear();
            one.ends.clear();
            one.empty = None;
            if opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row)) {
                one.push(&rows, row);
            }
            lengths.push(one.append_state(&mut members)?);
        }
        Ok(vec![Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(DataType::Binary, true)),
            OffsetBuffer::from_lengths(lengths),
            Arc::new(members.finish()),
            None,
        ))])
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.groups.capacity() * std::mem::size_of::<Collected>() + self.bytes
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
        let lists = state_lists(std::iter::once(&*self))?;
        match lists.as_any().downcast_ref::<ListArray>() {
            Some(l) => Ok(vec![ScalarValue::List(Arc::new(l.clone()))]),
            None => exec_err!("{}: a state of {}", CollectFunction::NAME, lists.data_type()),
        }
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.value().map(ScalarValue::Binary)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.wkb.capacity()
            + self.ends.capacity() * std::mem::size_of::<usize>()
    }
}

impl Collected {
    /// The group's collection as WKB; none for a group of nulls only.
    fn value(&self) -> Result<Option<Vec<u8>>> {
        if let Some(wkb) = self.points_only() {
            return Ok(Some(wkb));
        }
        let name = CollectFunction::NAME;
        let what = format!("{name} group");
        let members = geometry::to_column(&what, &self.members(), Encoding::Wkb)?;
        let mut dims = (0..members.len()).filter_map(|i| members.get(i)).map(|g| g.family());
        let family = match (dims.next(), self.empty) {
            (None, None) => return Ok(None),
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
            Some(b) => Ok(Some(b.value(0).to_vec())),
            None => exec_err!("{what}: WKB came back as {}", wkb.data_type()),
        }
    }
}
