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

use arrow_array::builder::{BinaryBuilder, UInt8Builder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BinaryArray, BooleanArray, ListArray, UInt8Array};
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
use meridian_kernels::io::{to_geo, write_wkb};

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
        Ok(Box::new(Collected::new(geometry::encoding(field)?)))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs<'_>) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs<'_>) -> Result<Box<dyn GroupsAccumulator>> {
        let [field] = args.expr_fields else {
            return exec_err!("{}: {} arguments", Self::NAME, args.expr_fields.len());
        };
        Ok(Box::new(CollectedGroups::new(geometry::encoding(field)?)))
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        let members = DataType::List(Arc::new(Field::new_list_field(DataType::Binary, true)));
        Ok(vec![
            Arc::new(Field::new(format_state_name(args.name, "members"), members, true)),
            Arc::new(Field::new(format_state_name(args.name, "empty"), DataType::UInt8, true)),
        ])
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

/// The family of a state's `empty` value (its WKB type id, `Family as u8`).
fn family_of_code(code: u8) -> Result<Family> {
    match Family::from_id(code) {
        Some(f) => Ok(f),
        None => exec_err!("{}: a state's empty of type {code}", CollectFunction::NAME),
    }
}

/// The state's columns: each group's members (a list of WKB) and the family of the first
/// empty it saw (null: none), so that a group of empties only stays the empty multi across
/// partitions.
fn state_arrays(lists: ListArray, empties: UInt8Array) -> Vec<ArrayRef> {
    vec![Arc::new(lists), Arc::new(empties)]
}

/// An error past what a `Binary` array's 32-bit offsets hold (`bytes` of WKB at once).
fn fits(bytes: usize, what: &str) -> Result<()> {
    if bytes > i32::MAX as usize {
        return exec_err!(
            "{}: {bytes} bytes of {what} in one batch, past the 2 GiB a Binary array holds",
            CollectFunction::NAME
        );
    }
    Ok(())
}

/// The collection of one group's members (their WKB, in order) as WKB, written to `out`
/// (cleared first); false for a group of nulls only (no member, no empty).
fn collection(members: &[&[u8]], empty: Option<Family>, out: &mut Vec<u8>) -> Result<bool> {
    out.clear();
    // A group of 2-D points, little-endian as meridian writes them (21 bytes: order 1, type
    // 1), is written straight from their WKB — a multipoint's WKB is its count and its
    // points' WKB one after another: SpatialBench's Q5 collects points, many groups of a
    // few, where decoding and encoding each group again was most of the query.
    let point = |m: &&[u8]| m.len() == 21 && m[0] == 1 && m[1..5] == [1, 0, 0, 0];
    if !members.is_empty() && members.iter().all(point) {
        let Ok(n) = u32::try_from(members.len()) else {
            return exec_err!("{}: a group of {} points", CollectFunction::NAME, members.len());
        };
        out.reserve(9 + 21 * members.len());
        out.extend_from_slice(&[1, 4, 0, 0, 0]);
        out.extend_from_slice(&n.to_le_bytes());
        for m in members {
            out.extend_from_slice(m);
        }
        return Ok(true);
    }
    let name = CollectFunction::NAME;
    let what = format!("{name} group");
    let array = BinaryArray::from_iter_values(members.iter());
    let members = geometry::to_column(&what, &array, Encoding::Wkb)?;
    let mut dims = (0..members.len()).filter_map(|i| members.get(i)).map(|g| g.family());
    let family = match (dims.next(), empty) {
        (None, None) => return Ok(false),
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
    let mut b = ColumnBuilder::new();
    b.push_geometry(&multi).map_err(|e| DataFusionError::Execution(format!("{what}: {e}")))?;
    let col = b.finish();
    match col.get(0) {
        Some(g) => {
            write_wkb(&g, out);
            Ok(true)
        }
        None => exec_err!("{what}: the collection came back null"),
    }
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
/// batch decoded once and its rows handed to their groups. Every group's members live in one
/// arena, in arrival order, each tagged with its group — a grouping of millions of rows into
/// groups of a few gave each group its own growing buffers, and their allocations and copies
/// were a third of SpatialBench's Q5 — and are sorted by group only when emitted.
#[derive(Debug)]
struct CollectedGroups {
    encoding: Encoding,
    /// The members' WKB, one after another.
    wkb: Vec<u8>,
    /// Each member's group and where its WKB ends in `wkb`.
    members: Vec<(usize, usize)>,
    /// Each group's first empty's family (every group DataFusion has named has a slot).
    empty: Vec<Option<Family>>,
}

impl CollectedGroups {
    fn new(encoding: Encoding) -> CollectedGroups {
        CollectedGroups { encoding, wkb: Vec::new(), members: Vec::new(), empty: Vec::new() }
    }

    /// Member `i`'s WKB.
    fn member(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.members[i - 1].1 };
        &self.wkb[start..self.members[i].1]
    }

    /// A member of group `g`.
    fn push(&mut self, g: usize, wkb: &[u8]) {
        self.wkb.extend_from_slice(wkb);
        self.members.push((g, self.wkb.len()));
    }

    /// Row `row` of `rows` into group `g`: a member, an empty noted, or nothing for a null.
    fn push_row(&mut self, g: usize, rows: &Decoded, row: usize) -> Result<()> {
        let Some(slot) = self.empty.get_mut(g) else {
            return exec_err!("{}: group {g} of {}", CollectFunction::NAME, self.empty.len());
        };
        match rows.col.get(row) {
            None => {}
            Some(geom) if geom.is_empty() => {
                slot.get_or_insert(geom.family());
            }
            Some(_) => self.push(g, rows.wkb.value(row)),
        }
        Ok(())
    }

    /// The members of groups `0..n` by group: `order[starts[g]..starts[g + 1]]` are group
    /// `g`'s, in arrival order.
    fn by_group(&self, n: usize) -> (Vec<usize>, Vec<usize>) {
        let mut starts = vec![0usize; n + 1];
        for &(g, _) in &self.members {
            if g < n {
                starts[g + 1] += 1;
            }
        }
        for g in 0..n {
            starts[g + 1] += starts[g];
        }
        let mut next = starts.clone();
        let mut order = vec![0usize; starts[n]];
        for (i, &(g, _)) in self.members.iter().enumerate() {
            if g < n {
                order[next[g]] = i;
                next[g] += 1;
            }
        }
        (order, starts)
    }

    /// The collections of groups `0..n`.
    fn values(&self, n: usize) -> Result<ArrayRef> {
        let (order, starts) = self.by_group(n);
        let mut out = BinaryBuilder::with_capacity(n, self.wkb.len() + 9 * n);
        let (mut members, mut wkb, mut bytes) = (Vec::new(), Vec::new(), 0usize);
        for g in 0..n {
            members.clear();
            members.extend(order[starts[g]..starts[g + 1]].iter().map(|&i| self.member(i)));
            if collection(&members, self.empty[g], &mut wkb)? {
                bytes += wkb.len();
                fits(bytes, "collections")?;
                out.append_value(&wkb);
            } else {
                out.append_null();
            }
        }
        Ok(Arc::new(out.finish()))
    }

    /// The states of groups `0..n`.
    fn states(&self, n: usize) -> Result<Vec<ArrayRef>> {
        let (order, starts) = self.by_group(n);
        fits(self.wkb.len().max(order.len()), "members")?;
        let mut members = BinaryBuilder::with_capacity(order.len(), self.wkb.len());
        for &i in &order {
            members.append_value(self.member(i));
        }
        // Within i32: no more members than bytes.
        let offsets: Vec<i32> = starts.iter().map(|&s| s as i32).collect();
        let lists = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Binary, true)),
            OffsetBuffer::new(offsets.into()),
            Arc::new(members.finish()),
            None,
        );
        let empties = self.empty[..n].iter().map(|e| e.map(|f| f as u8)).collect();
        Ok(state_arrays(lists, empties))
    }

    /// Groups `0..n` dropped (emitted), the rest renumbered from 0.
    fn drop_first(&mut self, n: usize) {
        if n >= self.empty.len() {
            self.wkb.clear();
            self.members.clear();
            self.empty.clear();
            return;
        }
        let (mut wkb, mut members) = (Vec::new(), Vec::new());
        for i in 0..self.members.len() {
            let g = self.members[i].0;
            if g >= n {
                wkb.extend_from_slice(self.member(i));
                members.push((g - n, wkb.len()));
            }
        }
        (self.wkb, self.members) = (wkb, members);
        self.empty.drain(..n);
    }

    /// The groups `emit_to` names.
    fn emitted(&self, emit_to: EmitTo) -> usize {
        match emit_to {
            EmitTo::All => self.empty.len(),
            EmitTo::First(n) => n.min(self.empty.len()),
        }
    }

    /// A state's rows merged into their groups (`group_of(row)`), members taken as they are
    /// (each was checked as it first came in).
    fn merge(&mut self, values: &[ArrayRef], group_of: impl Fn(usize) -> usize) -> Result<()> {
        let [lists, empties] = values else {
            return exec_err!("{}: {} state columns", CollectFunction::NAME, values.len());
        };
        let (Some(lists), Some(empties)) =
            (lists.as_any().downcast_ref::<ListArray>(), empties.as_any().downcast_ref::<UInt8Array>())
        else {
            return exec_err!(
                "{}: a state of {} and {}",
                CollectFunction::NAME,
                lists.data_type(),
                empties.data_type()
            );
        };
        if empties.len() != lists.len() {
            return exec_err!(
                "{}: a state of {} member lists and {} empties",
                CollectFunction::NAME,
                lists.len(),
                empties.len()
            );
        }
        let Some(wkb) = lists.values().as_binary_opt::<i32>() else {
            return exec_err!(
                "{}: a state's members of {}",
                CollectFunction::NAME,
                lists.values().data_type()
            );
        };
        let offsets = lists.value_offsets();
        for row in 0..lists.len() {
            let g = group_of(row);
            if g >= self.empty.len() {
                return exec_err!("{}: group {g} of {}", CollectFunction::NAME, self.empty.len());
            }
            if empties.is_valid(row) {
                let family = family_of_code(empties.value(row))?;
                self.empty[g].get_or_insert(family);
            }
            if !lists.is_valid(row) {
                continue;
            }
            for member in offsets[row] as usize..offsets[row + 1] as usize {
                if wkb.is_valid(member) {
                    self.push(g, wkb.value(member));
                }
            }
        }
        Ok(())
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
        self.empty.resize(total_num_groups, None);
        let rows = Decoded::new(array.as_ref(), self.encoding)?;
        for (row, &g) in group_indices.iter().enumerate() {
            if opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row)) {
                self.push_row(g, &rows, row)?;
            }
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.empty.resize(total_num_groups, None);
        if values.first().is_some_and(|v| v.len() != group_indices.len()) {
            return exec_err!("{}: a state of other rows than its groups", CollectFunction::NAME);
        }
        self.merge(values, |row| group_indices[row])
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let n = self.emitted(emit_to);
        let values = self.values(n)?;
        self.drop_first(n);
        Ok(values)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let n = self.emitted(emit_to);
        let states = self.states(n)?;
        self.drop_first(n);
        Ok(states)
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
        let n = rows.col.len();
        let mut members = BinaryBuilder::with_capacity(n, rows.wkb.value_data().len());
        let mut lengths = Vec::with_capacity(n);
        let mut empties = UInt8Builder::with_capacity(n);
        for row in 0..n {
            let (length, empty) = match rows.col.get(row) {
                _ if opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) => (0, None),
                None => (0, None),
                Some(g) if g.is_empty() => (0, Some(g.family() as u8)),
                Some(_) => {
                    members.append_value(rows.wkb.value(row));
                    (1, None)
                }
            };
            lengths.push(length);
            empties.append_option(empty);
        }
        let lists = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Binary, true)),
            OffsetBuffer::from_lengths(lengths),
            Arc::new(members.finish()),
            None,
        );
        Ok(state_arrays(lists, empties.finish()))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.wkb.capacity()
            + self.members.capacity() * std::mem::size_of::<(usize, usize)>()
            + self.empty.capacity() * std::mem::size_of::<Option<Family>>()
    }
}

/// `ST_Collect` without a grouping (or where DataFusion asks for one accumulator a group): the
/// same arena, holding one group.
#[derive(Debug)]
struct Collected(CollectedGroups);

impl Collected {
    fn new(encoding: Encoding) -> Collected {
        let mut groups = CollectedGroups::new(encoding);
        groups.empty.push(None);
        Collected(groups)
    }
}

impl Accumulator for Collected {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [array] = values else {
            return exec_err!("{}: {} arguments", CollectFunction::NAME, values.len());
        };
        let rows = Decoded::new(array.as_ref(), self.0.encoding)?;
        for row in 0..rows.col.len() {
            self.0.push_row(0, &rows, row)?;
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.merge(states, |_| 0)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.states(1)?.iter().map(|a| ScalarValue::try_from_array(a, 0)).collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        ScalarValue::try_from_array(&self.0.values(1)?, 0)
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Rows of points (some repeated), a null and a point empty, as WKB.
    fn rows() -> ArrayRef {
        let mut b = ColumnBuilder::new();
        for i in 0..40 {
            match i % 9 {
                4 => b.push_null(),
                7 => b.push_empty(Family::Point),
                _ => b.push_point(f64::from(i), f64::from(i % 5)).unwrap(),
            }
        }
        let col = b.finish();
        geoarrow::to_array(&col, 0..col.len(), "test", Encoding::Wkb).unwrap().1
    }

    fn groups_of(n: usize) -> Vec<usize> {
        (0..n).map(|i| (i * 7) % 5).collect()
    }

    fn evaluated(acc: &mut CollectedGroups, emit_to: EmitTo) -> Vec<Option<Vec<u8>>> {
        let a = acc.evaluate(emit_to).unwrap();
        a.as_binary::<i32>().iter().map(|v| v.map(<[u8]>::to_vec)).collect()
    }

    /// Emitting the first groups leaves the rest as they were (renumbered), and a state
    /// merged from another partition — members and empties — gives what one partition would.
    #[test]
    fn groups_emitted_in_parts_and_merged_from_states_equal_one_pass() {
        let values = rows();
        let groups = groups_of(values.len());
        let mut whole = CollectedGroups::new(Encoding::Wkb);
        whole.update_batch(std::slice::from_ref(&values), &groups, None, 5).unwrap();
        let want = evaluated(&mut whole, EmitTo::All);
        assert_eq!(want.len(), 5);
        assert!(want.iter().all(Option::is_some));

        let mut parts = CollectedGroups::new(Encoding::Wkb);
        parts.update_batch(std::slice::from_ref(&values), &groups, None, 5).unwrap();
        let mut got = evaluated(&mut parts, EmitTo::First(2));
        got.extend(evaluated(&mut parts, EmitTo::All));
        assert_eq!(got, want);

        let (first, second) = (values.slice(0, 17), values.slice(17, values.len() - 17));
        let mut a = CollectedGroups::new(Encoding::Wkb);
        a.update_batch(&[first], &groups[..17], None, 5).unwrap();
        let mut b = CollectedGroups::new(Encoding::Wkb);
        b.update_batch(std::slice::from_ref(&second), &groups[17..], None, 5).unwrap();
        a.merge_batch(&b.state(EmitTo::All).unwrap(), &[0, 1, 2, 3, 4], 5).unwrap();
        assert_eq!(evaluated(&mut a, EmitTo::All), want);

        // Each row its own state (partial aggregation skipped), merged: the same again.
        let mut c = CollectedGroups::new(Encoding::Wkb);
        c.update_batch(&[values.slice(0, 17)], &groups[..17], None, 5).unwrap();
        let states = c.convert_to_state(&[second], None).unwrap();
        c.merge_batch(&states, &groups[17..], 5).unwrap();
        assert_eq!(evaluated(&mut c, EmitTo::All), want);

        // One accumulator of every row: the collection of all the points.
        let mut one = Collected::new(Encoding::Wkb);
        one.update_batch(std::slice::from_ref(&values)).unwrap();
        let mut all = CollectedGroups::new(Encoding::Wkb);
        all.update_batch(std::slice::from_ref(&values), &vec![0; values.len()], None, 1).unwrap();
        let ScalarValue::Binary(Some(v)) = one.evaluate().unwrap() else { panic!("a null collection") };
        assert_eq!(Some(v), evaluated(&mut all, EmitTo::All)[0].clone());
    }

    /// A group of empties only is the empty multi of their family, also through a state; a
    /// group of nulls only is null.
    #[test]
    fn empties_and_nulls_only() {
        let mut b = ColumnBuilder::new();
        b.push_empty(Family::Polygon);
        b.push_null();
        let col = b.finish();
        let values = geoarrow::to_array(&col, 0..2, "test", Encoding::Wkb).unwrap().1;
        let mut from = CollectedGroups::new(Encoding::Wkb);
        from.update_batch(&[values], &[0, 1], None, 2).unwrap();
        let mut into = CollectedGroups::new(Encoding::Wkb);
        into.merge_batch(&from.state(EmitTo::All).unwrap(), &[0, 1], 2).unwrap();
        let got = evaluated(&mut into, EmitTo::All);
        let empty = geometry::to_column(
            "test",
            &BinaryArray::from_iter_values([got[0].clone().unwrap()]),
            Encoding::Wkb,
        )
        .unwrap();
        let g = empty.get(0).unwrap();
        assert!(g.is_empty() && g.family() == Family::MultiPolygon);
        assert_eq!(got[1], None);
    }
}
