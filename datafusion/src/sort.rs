//! `ORDER BY` on fixed-width keys, sorted whole in memory: [`KeySortExec`] in place of
//! DataFusion's `SortExec` where every key is an integer, float, decimal or time and the sort
//! keeps every row (a `LIMIT`'s top-k stays DataFusion's).
//!
//! DataFusion sorts each input batch on its own, then merges the sorted batches through a
//! loser tree comparing rows in its row format: SpatialBench's Q7 (6M trips on three keys)
//! spent 1.98 s of its sort's CPU there, most of it in the merge's comparisons. Here every
//! row's keys become a few `u64` words whose order as unsigned integers is the keys' order
//! (floats by IEEE total order, as Arrow sorts them; descending keys inverted; a null's place a
//! word of its own), followed by the row's place in the input, and one `sort_unstable` of those
//! arrays orders the partition. The last word makes every key distinct, so rows with equal
//! keys keep their input order.
//!
//! Memory: the node holds its partition's input and the keys, as the in-memory `SortExec`
//! does, and counts them against the session's memory pool. Under a pool with a limit, where
//! DataFusion's sort would spill, it runs DataFusion's sort instead.

use std::fmt;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, DurationMicrosecondType, DurationMillisecondType,
    DurationNanosecondType, DurationSecondType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, RecordBatch};
use arrow_schema::{DataType, SortOptions, TimeUnit};
use datafusion::arrow::compute::interleave_record_batch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{exec_err, Result};
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryReservation};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{LexOrdering, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::ReplaceChildrenOptions;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
    SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

/// The most words a row's keys may take (its place in the input is one more): past this the
/// sort is left to DataFusion.
const MAX_KEY_WORDS: usize = 8;

/// A full sort of one partition (or of its one input partition) on fixed-width keys; see the
/// module's documentation. It keeps the `SortExec` it replaces, whose properties it has and
/// which it runs under a memory pool with a limit.
#[derive(Debug)]
pub struct KeySortExec {
    sort: Arc<SortExec>,
    metrics: ExecutionPlanMetricsSet,
}

impl KeySortExec {
    /// The sort `sort` does, when its keys are all of a kind this node sorts (and it keeps
    /// every row); otherwise `None`.
    pub fn try_new(sort: &SortExec) -> Option<KeySortExec> {
        if sort.fetch().is_some() {
            return None;
        }
        let schema = sort.input().schema();
        let mut words = 0;
        for key in sort.expr().iter() {
            let ty = key.expr.data_type(&schema).ok()?;
            let nullable = key.expr.nullable(&schema).ok()?;
            words += most_words(&ty)? + usize::from(nullable);
        }
        (words <= MAX_KEY_WORDS)
            .then(|| KeySortExec { sort: Arc::new(sort.clone()), metrics: ExecutionPlanMetricsSet::new() })
    }

    /// The keys, in order.
    pub fn expr(&self) -> &LexOrdering {
        self.sort.expr()
    }
}

impl DisplayAs for KeySortExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeySortExec: expr=[{}], preserve_partitioning=[{}]",
            self.sort.expr(),
            self.sort.preserve_partitioning()
        )
    }
}

impl ExecutionPlan for KeySortExec {
    fn name(&self) -> &'static str {
        "KeySortExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.sort.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.sort.input()]
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.sort.input_distribution_requirements()
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        self.sort.benefits_from_input_partitioning()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        self.sort.maintains_input_order()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.sort.apply_expressions(f)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let sort = self.sort.clone().replace_children(children, options)?;
        let sort = sort
            .downcast_ref::<SortExec>()
            .ok_or_else(|| DataFusionError::Internal("a SortExec's new children made another node".into()))?;
        match KeySortExec::try_new(sort) {
            Some(node) => Ok(Arc::new(node)),
            // New children whose key types this node does not sort: DataFusion's sort.
            None => Ok(Arc::new(sort.clone())),
        }
    }

    #[allow(deprecated)] // still required by the trait; it delegates to replace_children
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, crate::recompute())
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let pool = context.runtime_env().memory_pool.clone();
        if !matches!(pool.memory_limit(), MemoryLimit::Infinite) {
            // A limit this sort could meet only by spilling: DataFusion's sort spills.
            return self.sort.execute(partition, context);
        }
        let input = self.sort.input().execute(partition, context.clone())?;
        let keys: Vec<(Arc<dyn PhysicalExpr>, SortOptions)> =
            self.sort.expr().iter().map(|k| (k.expr.clone(), k.options)).collect();
        let batch_size = context.session_config().batch_size().max(1);
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        let mut reservation = MemoryConsumer::new(format!("KeySortExec[{partition}]")).register(&pool);
        let sorted = futures::stream::once(async move {
            let batches: Vec<RecordBatch> = input.try_collect().await?;
            let held: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
            reservation.try_grow(held)?;
            let timer = metrics.elapsed_compute().timer();
            let order = sort_order(&batches, &keys, &mut reservation);
            timer.done();
            let order = order?;
            // The sorted rows are gathered a batch at a time as the stream is read: the input
            // and the order stay (and stay counted) until it ends, no copy of the whole.
            let gathered = (0..order.len()).step_by(batch_size).map(move |start| {
                let _counted = &reservation;
                let timer = metrics.elapsed_compute().timer();
                let end = (start + batch_size).min(order.len());
                let refs: Vec<&RecordBatch> = batches.iter().collect();
                let rows: Vec<(usize, usize)> = order[start..end]
                    .iter()
                    .map(|&at| ((at >> 32) as usize, (at & u64::from(u32::MAX)) as usize))
                    .collect();
                let batch = interleave_record_batch(&refs, &rows);
                timer.done();
                let batch = batch?;
                metrics.record_output(batch.num_rows());
                metrics.output_batches().add(1);
                Ok(batch)
            });
            Ok::<_, DataFusionError>(futures::stream::iter(gathered))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.sort.schema(), sorted.boxed())))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Replaces each `SortExec` that keeps every row and has fixed-width keys with a
/// [`KeySortExec`].
#[derive(Debug, Default)]
pub struct KeySortRule;

impl PhysicalOptimizerRule for KeySortRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let replaced = node.downcast_ref::<SortExec>().and_then(KeySortExec::try_new);
            Ok(match replaced {
                Some(sort) => Transformed::yes(Arc::new(sort) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "meridian_key_sort"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The most words a key of type `ty` takes, nulls apart (`None`: not a key this sort takes).
fn most_words(ty: &DataType) -> Option<usize> {
    use DataType::*;
    Some(match ty {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float32 | Float64 => 1,
        Date32 | Date64 | Time32(_) | Time64(_) | Timestamp(_, _) | Duration(_) => 1,
        // One word while every value fits 64 bits, else two.
        Decimal128(_, _) => 2,
        _ => return None,
    })
}

/// One key column's words: how many a row takes, and a writer of row `row`'s words into `to`.
struct KeyColumn {
    /// A word ranking nulls before (0) or after (2) values (1), when the column has nulls.
    nulls: Option<u64>,
    /// Words of the value (1 or 2).
    value_words: usize,
    descending: bool,
    values: Values,
}

/// A key column's values as order-preserving unsigned words.
enum Values {
    /// Signed integers of any width, as i64.
    Signed(Vec<i64>),
    /// Unsigned integers, as u64.
    Unsigned(Vec<u64>),
    /// Floats, as their IEEE total order.
    Float(Vec<u64>),
    /// 128-bit decimals.
    Wide(Vec<i128>),
}

impl KeyColumn {
    fn words(&self) -> usize {
        usize::from(self.nulls.is_some()) + self.value_words
    }

    /// Writes row `row`'s words into `to` (of length [`KeyColumn::words`]).
    #[inline]
    fn write(&self, array: &dyn Array, row: usize, to: &mut [u64]) {
        let mut at = 0;
        if let Some(null_rank) = self.nulls {
            if array.is_null(row) {
                to.fill(0);
                to[0] = null_rank;
                return;
            }
            to[0] = 1;
            at = 1;
        }
        let flip = if self.descending { u64::MAX } else { 0 };
        let sign = 1u64 << 63;
        match &self.values {
            Values::Signed(v) => to[at] = (v[row] as u64 ^ sign) ^ flip,
            Values::Unsigned(v) | Values::Float(v) => to[at] = v[row] ^ flip,
            Values::Wide(v) if self.value_words == 1 => to[at] = (v[row] as i64 as u64 ^ sign) ^ flip,
            Values::Wide(v) => {
                to[at] = ((v[row] >> 64) as u64 ^ sign) ^ flip;
                to[at + 1] = (v[row] as u64) ^ flip;
            }
        }
    }
}

/// A float's bits, ordered as unsigned integers the way `total_cmp` orders the floats.
#[inline]
fn total_order(bits: u64, sign: u64) -> u64 {
    if bits & sign != 0 {
        !bits
    } else {
        bits | sign
    }
}

/// Values of one primitive array as i64.
fn signed<T: ArrowPrimitiveType>(a: &dyn Array) -> Vec<i64>
where
    T::Native: Into<i64>,
{
    a.as_primitive::<T>().values().iter().map(|&v| v.into()).collect()
}

fn unsigned<T: ArrowPrimitiveType>(a: &dyn Array) -> Vec<u64>
where
    T::Native: Into<u64>,
{
    a.as_primitive::<T>().values().iter().map(|&v| v.into()).collect()
}

/// A key's values in one batch, in the words of [`Values`].
fn values_of(a: &dyn Array) -> Result<Values> {
    use DataType::*;
    Ok(match a.data_type() {
        Int8 => Values::Signed(signed::<Int8Type>(a)),
        Int16 => Values::Signed(signed::<Int16Type>(a)),
        Int32 => Values::Signed(signed::<Int32Type>(a)),
        Int64 => Values::Signed(signed::<Int64Type>(a)),
        UInt8 => Values::Unsigned(unsigned::<UInt8Type>(a)),
        UInt16 => Values::Unsigned(unsigned::<UInt16Type>(a)),
        UInt32 => Values::Unsigned(unsigned::<UInt32Type>(a)),
        UInt64 => Values::Unsigned(unsigned::<UInt64Type>(a)),
        Float32 => Values::Float(
            a.as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|v| u64::from(total_order(u64::from(v.to_bits()), 1 << 31) as u32))
                .collect(),
        ),
        Float64 => Values::Float(
            a.as_primitive::<Float64Type>()
                .values()
                .iter()
                .map(|v| total_order(v.to_bits(), 1 << 63))
                .collect(),
        ),
        Date32 => Values::Signed(signed::<Date32Type>(a)),
        Date64 => Values::Signed(signed::<Date64Type>(a)),
        Time32(TimeUnit::Second) => Values::Signed(signed::<Time32SecondType>(a)),
        Time32(_) => Values::Signed(signed::<Time32MillisecondType>(a)),
        Time64(TimeUnit::Microsecond) => Values::Signed(signed::<Time64MicrosecondType>(a)),
        Time64(_) => Values::Signed(signed::<Time64NanosecondType>(a)),
        Timestamp(TimeUnit::Second, _) => Values::Signed(signed::<TimestampSecondType>(a)),
        Timestamp(TimeUnit::Millisecond, _) => Values::Signed(signed::<TimestampMillisecondType>(a)),
        Timestamp(TimeUnit::Microsecond, _) => Values::Signed(signed::<TimestampMicrosecondType>(a)),
        Timestamp(TimeUnit::Nanosecond, _) => Values::Signed(signed::<TimestampNanosecondType>(a)),
        Duration(TimeUnit::Second) => Values::Signed(signed::<DurationSecondType>(a)),
        Duration(TimeUnit::Millisecond) => Values::Signed(signed::<DurationMillisecondType>(a)),
        Duration(TimeUnit::Microsecond) => Values::Signed(signed::<DurationMicrosecondType>(a)),
        Duration(TimeUnit::Nanosecond) => Values::Signed(signed::<DurationNanosecondType>(a)),
        Decimal128(_, _) => Values::Wide(a.as_primitive::<Decimal128Type>().values().to_vec()),
        other => return exec_err!("KeySortExec: a key of type {other}"),
    })
}

/// The rows of `batches` in the order of `keys`, each as its batch (high 32 bits) and row
/// (low 32); the keys' memory counted in `reservation` while they live, the order's after.
fn sort_order(
    batches: &[RecordBatch],
    keys: &[(Arc<dyn PhysicalExpr>, SortOptions)],
    reservation: &mut MemoryReservation,
) -> Result<Vec<u64>> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 {
        return Ok(Vec::new());
    }
    // A row's place is its batch and its row, 32 bits each.
    if batches.len() > u32::MAX as usize || batches.iter().any(|b| b.num_rows() > u32::MAX as usize) {
        return exec_err!(
            "KeySortExec: {} input batches, more than 2^32 or one of more than 2^32 rows",
            batches.len()
        );
    }
    // Every key evaluated on every batch: arrays[key][batch].
    let mut arrays: Vec<Vec<ArrayRef>> = Vec::with_capacity(keys.len());
    for (expr, _) in keys {
        let mut of_key = Vec::with_capacity(batches.len());
        for b in batches {
            of_key.push(expr.evaluate(b)?.into_array(b.num_rows())?);
        }
        arrays.push(of_key);
    }
    // How many words each key takes over the whole partition.
    let mut columns: Vec<(bool, usize, SortOptions)> = Vec::with_capacity(keys.len());
    for (of_key, (_, options)) in arrays.iter().zip(keys) {
        let nulls = of_key.iter().any(|a| a.null_count() > 0);
        let wide = of_key.iter().any(|a| {
            a.as_primitive_opt::<Decimal128Type>()
                .is_some_and(|d| d.values().iter().any(|&v| i64::try_from(v).is_err()))
        });
        columns.push((nulls, if wide { 2 } else { 1 }, *options));
    }
    let words: usize = columns.iter().map(|(nulls, w, _)| usize::from(*nulls) + w).sum();
    macro_rules! sorted {
        ($($n:literal)*) => {
            match words + 1 {
                $($n => sort_words::<$n>(batches, &arrays, &columns, rows, reservation),)*
                n => exec_err!("KeySortExec: {n} words a row"),
            }
        };
    }
    sorted!(2 3 4 5 6 7 8 9)
}

/// The order with `N` words a row (the keys' then the row's place).
fn sort_words<const N: usize>(
    batches: &[RecordBatch],
    arrays: &[Vec<ArrayRef>],
    columns: &[(bool, usize, SortOptions)],
    rows: usize,
    reservation: &mut MemoryReservation,
) -> Result<Vec<u64>> {
    let keyed_bytes = rows * std::mem::size_of::<[u64; N]>();
    reservation.try_grow(keyed_bytes)?;
    let mut keyed: Vec<[u64; N]> = vec![[0; N]; rows];
    let mut start = 0;
    for (b, batch) in batches.iter().enumerate() {
        let n = batch.num_rows();
        let block = &mut keyed[start..start + n];
        let mut at = 0;
        for (k, &(nulls, value_words, options)) in columns.iter().enumerate() {
            let array = arrays[k][b].as_ref();
            let column = KeyColumn {
                nulls: nulls.then_some(if options.nulls_first { 0 } else { 2 }),
                value_words,
                descending: options.descending,
                values: values_of(array)?,
            };
            let w = column.words();
            for (row, words) in block.iter_mut().enumerate() {
                column.write(array, row, &mut words[at..at + w]);
            }
            at += w;
        }
        for (row, words) in block.iter_mut().enumerate() {
            words[N - 1] = ((b as u64) << 32) | row as u64;
        }
        start += n;
    }
    keyed.sort_unstable();
    let order: Vec<u64> = keyed.iter().map(|w| w[N - 1]).collect();
    drop(keyed);
    reservation.shrink(keyed_bytes - rows * std::mem::size_of::<u64>());
    Ok(order)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;
    use arrow_array::{
        Decimal128Array, Float32Array, Float64Array, Int32Array, Int64Array, TimestampMillisecondArray,
        UInt8Array,
    };
    use arrow_schema::{Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// Rows of every key type, with nulls, ties and the floats' odd values (NaN of both signs,
    /// -0 and 0, infinities), decimals past 64 bits, in `parts` partitions.
    fn table(rows: usize, parts: usize, seed: u64) -> MemTable {
        let s = std::cell::Cell::new(seed);
        let next = || {
            s.set(s.get().wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407));
            s.get() >> 33
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("i", DataType::Int32, true),
            Field::new("f", DataType::Float64, true),
            Field::new("g", DataType::Float32, false),
            Field::new("u", DataType::UInt8, true),
            Field::new("d", DataType::Decimal128(15, 5), false),
            Field::new("w", DataType::Decimal128(38, 0), true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        let floats = [f64::NAN, -f64::NAN, -0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY, 1.5, -2.25, 1e300];
        let mut batches = vec![Vec::new(); parts];
        let mut id = 0i64;
        let mut left = rows;
        while left > 0 {
            let n = left.min(1 + next() as usize % 700);
            left -= n;
            let mut cols: Vec<ArrayRef> = Vec::new();
            cols.push(Arc::new(Int64Array::from_iter_values(id..id + n as i64)));
            id += n as i64;
            let null = |k: u64| next() % k == 0;
            let i: Int32Array = (0..n).map(|_| (!null(9)).then(|| (next() % 40) as i32 - 20)).collect();
            let f: Float64Array = (0..n)
                .map(|_| match next() % 12 {
                    0 => None,
                    k if k < 7 => Some(floats[next() as usize % floats.len()]),
                    _ => Some((next() % 50) as f64 / 4.0 - 6.0),
                })
                .collect();
            let g: Float32Array =
                (0..n).map(|_| Some(floats[next() as usize % floats.len()] as f32)).collect();
            let u: UInt8Array = (0..n).map(|_| (!null(5)).then(|| next() as u8)).collect();
            let d =
                Decimal128Array::from_iter_values((0..n).map(|_| (next() % 2000) as i128 * 1000 - 999_999))
                    .with_precision_and_scale(15, 5)
                    .unwrap();
            let w: Decimal128Array = (0..n)
                .map(|_| match next() % 4 {
                    0 => None,
                    1 => Some(-((next() as i128) << 70)),
                    2 => Some((next() as i128) << 66),
                    _ => Some(next() as i128 % 7 - 3),
                })
                .collect::<Decimal128Array>()
                .with_precision_and_scale(38, 0)
                .unwrap();
            let t: TimestampMillisecondArray =
                (0..n).map(|_| (!null(7)).then(|| (next() % 100) as i64 * 1_000_000 - 40_000_000)).collect();
            cols.extend([Arc::new(i) as ArrayRef, Arc::new(f), Arc::new(g), Arc::new(u), Arc::new(d)]);
            cols.extend([Arc::new(w) as ArrayRef, Arc::new(t)]);
            let part = next() as usize % parts;
            batches[part].push(RecordBatch::try_new(schema.clone(), cols).unwrap());
        }
        MemTable::try_new(schema, batches).unwrap()
    }

    /// A context with the rule (or without: DataFusion's sort), over `table`, `partitions`
    /// target partitions, a memory pool with a limit or none.
    fn context(rule: bool, partitions: usize, limited: bool, t: MemTable) -> SessionContext {
        let config = SessionConfig::new().with_target_partitions(partitions).with_batch_size(300);
        let mut runtime = RuntimeEnvBuilder::new();
        if limited {
            runtime = runtime.with_memory_limit(1 << 30, 1.0);
        }
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime.build_arc().unwrap())
            .with_default_features();
        if rule {
            state = state.with_physical_optimizer_rule(Arc::new(KeySortRule));
        }
        let ctx = SessionContext::new_with_state(state.build());
        ctx.register_table("t", Arc::new(t)).unwrap();
        ctx
    }

    async fn run(ctx: &SessionContext, sql: &str) -> (Vec<RecordBatch>, String) {
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let shown = datafusion::physical_plan::displayable(plan.as_ref()).indent(false).to_string();
        (df.collect().await.unwrap(), shown)
    }

    fn ids(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<arrow_array::types::Int64Type>().values().to_vec())
            .collect()
    }

    const ORDERS: [&str; 7] = [
        "f DESC NULLS LAST, d DESC, id",
        "f, id",
        "i NULLS FIRST, g DESC, id DESC",
        "w DESC NULLS FIRST, u NULLS LAST, id",
        "t DESC, w, f NULLS FIRST, id",
        "d, i DESC NULLS LAST, id",
        "g, f DESC NULLS FIRST, u DESC, id",
    ];

    /// Every key type, ascending and descending, nulls first and last: the rows in the order
    /// DataFusion's sort gives (the keys end in the unique `id`, so the order is one), over one
    /// partition and several, and the same when a memory limit hands the sort to DataFusion.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn key_sort_orders_rows_as_datafusion_does() {
        for (k, order) in ORDERS.iter().enumerate() {
            let sql = format!("SELECT * FROM t ORDER BY {order}");
            for partitions in [1, 3] {
                let seed = k as u64 * 31 + partitions as u64;
                let (want, plain) = run(&context(false, partitions, false, table(5000, 3, seed)), &sql).await;
                assert!(!plain.contains("KeySortExec"), "{plain}");
                let (got, shown) = run(&context(true, partitions, false, table(5000, 3, seed)), &sql).await;
                assert!(shown.contains("KeySortExec"), "{shown}");
                assert_eq!(ids(&got), ids(&want), "{order}, {partitions} partitions");
                assert!(got.iter().all(|b| b.num_rows() <= 300));
                let (limited, _) = run(&context(true, partitions, true, table(5000, 3, seed)), &sql).await;
                assert_eq!(ids(&limited), ids(&want), "{order}, limited pool");
            }
        }
    }

    /// Rows whose keys are equal come out in their input order; a top-k (`LIMIT`) stays
    /// DataFusion's; an empty input sorts to nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn equal_keys_keep_their_order_and_limits_stay_datafusion_s() {
        let ctx = context(true, 1, false, table(4000, 1, 5));
        let (got, _) = run(&ctx, "SELECT id, i FROM t ORDER BY i DESC NULLS FIRST").await;
        let pairs: Vec<(Option<i32>, i64)> = got
            .iter()
            .flat_map(|b| {
                let i = b.column(1).as_primitive::<Int32Type>();
                let id = b.column(0).as_primitive::<arrow_array::types::Int64Type>();
                (0..b.num_rows())
                    .map(|r| (i.is_valid(r).then(|| i.value(r)), id.value(r)))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(pairs.len(), 4000);
        assert!(pairs[0].0.is_none());
        for w in pairs.windows(2) {
            if w[0].0 == w[1].0 {
                assert!(w[0].1 < w[1].1, "{w:?}");
            }
        }
        let (_, shown) = run(&ctx, "SELECT * FROM t ORDER BY f LIMIT 10").await;
        assert!(!shown.contains("KeySortExec") && shown.contains("TopK"), "{shown}");
        let (none, _) = run(&ctx, "SELECT * FROM t WHERE id < 0 ORDER BY f").await;
        assert_eq!(none.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
        // A key this sort does not take (text): DataFusion's.
        let (_, shown) = run(&ctx, "SELECT * FROM t ORDER BY CAST(i AS VARCHAR), id").await;
        assert!(!shown.contains("KeySortExec"), "{shown}");
    }
}
