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
//! Where DataFusion merges the sorted partitions (`SortPreservingMergeExec` above the sort), one
//! node does both: each partition is collected, keyed and sorted on a task of its own, the
//! sorted keys are merged (a heap of the partitions' heads; the place word is unique over all
//! partitions, so the order is the one sorting everything at once gives), and the output
//! batches are gathered by several tasks at once, in order. Q7 spent a second of its 2.2 s in
//! the merge's row encoding and in gathering both partitions' rows on the merge's one thread.
//!
//! Memory: the node holds its input and the keys, as the in-memory `SortExec` does, and counts
//! them against the session's memory pool. Under a pool with a limit, where DataFusion's sort
//! would spill, it runs DataFusion's sort (and merge) instead.

use std::cmp::Reverse;
use std::collections::binary_heap::{BinaryHeap, PeekMut};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Decimal128Type;
use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{Schema, SchemaRef, SortOptions};
use datafusion::arrow::compute::interleave;
use datafusion::common::config::ConfigOptions;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{exec_err, Result};
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryReservation};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::ReplaceChildrenOptions;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet, Time};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
    SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

mod words;
use words::{key_words, keyed, most_words, Decoder, KeyLayout};

/// The most words a row's keys may take (its place in the input is one more): past this the
/// sort is left to DataFusion.
const MAX_KEY_WORDS: usize = 8;

/// A full sort of each partition (or of its one input partition) on fixed-width keys, or of
/// all partitions into one; see the module's documentation. It keeps the `SortExec` it
/// replaces (and the merge above it), whose properties it has and which it runs under a memory
/// pool with a limit.
#[derive(Debug)]
pub struct KeySortExec {
    sort: Arc<SortExec>,
    /// Set when this node also merges `sort`'s partitions: the merge it replaces, over `sort`.
    merge: Option<Arc<SortPreservingMergeExec>>,
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
        (words <= MAX_KEY_WORDS).then(|| KeySortExec {
            sort: Arc::new(sort.clone()),
            merge: None,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// This sort with the merge `merge` of its partitions done by it, when `merge` keeps every
    /// row and merges on this sort's keys.
    fn merged(&self, merge: &SortPreservingMergeExec) -> Option<KeySortExec> {
        if self.merge.is_some()
            || merge.fetch().is_some()
            || !self.sort.preserve_partitioning()
            || merge.expr() != self.sort.expr()
        {
            return None;
        }
        let over_sort = SortPreservingMergeExec::new(merge.expr().clone(), self.sort.clone());
        Some(KeySortExec {
            sort: self.sort.clone(),
            merge: Some(Arc::new(over_sort)),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The keys, in order.
    pub fn expr(&self) -> &LexOrdering {
        self.sort.expr()
    }
}

impl DisplayAs for KeySortExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySortExec: expr=[{}], ", self.sort.expr())?;
        match self.merge {
            Some(_) => write!(f, "merged"),
            None => write!(f, "preserve_partitioning=[{}]", self.sort.preserve_partitioning()),
        }
    }
}

impl ExecutionPlan for KeySortExec {
    fn name(&self) -> &'static str {
        "KeySortExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        match &self.merge {
            Some(merge) => merge.properties(),
            None => self.sort.properties(),
        }
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
        let node = KeySortExec::try_new(sort);
        match (&self.merge, node) {
            (None, Some(node)) => Ok(Arc::new(node)),
            (Some(merge), Some(node)) => match node.merged(merge) {
                Some(merged) => Ok(Arc::new(merged)),
                None => Ok(Arc::new(SortPreservingMergeExec::new(merge.expr().clone(), Arc::new(node)))),
            },
            // New children whose key types this node does not sort: DataFusion's sort.
            (None, None) => Ok(Arc::new(sort.clone())),
            (Some(merge), None) => {
                Ok(Arc::new(SortPreservingMergeExec::new(merge.expr().clone(), Arc::new(sort.clone()))))
            }
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
            return match &self.merge {
                Some(merge) => merge.execute(partition, context),
                None => self.sort.execute(partition, context),
            };
        }
        let keys: Vec<(Arc<dyn PhysicalExpr>, SortOptions)> =
            self.sort.expr().iter().map(|k| (k.expr.clone(), k.options)).collect();
        let batch_size = context.session_config().batch_size().max(1);
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        let mut reservation = MemoryConsumer::new(format!("KeySortExec[{partition}]")).register(&pool);
        let (merged, input) = (self.merge.is_some(), self.sort.input().clone());
        if merged && partition != 0 {
            return exec_err!("KeySortExec: merged into one partition, asked for partition {partition}");
        }
        let parallel = context.session_config().target_partitions().max(1);
        let out_schema = self.properties().eq_properties.schema().clone();
        let schema = out_schema.clone();
        let sorted = futures::stream::once(async move {
            let time = metrics.elapsed_compute().clone();
            let sorted = if merged {
                merged_order(input, context, keys, &mut reservation, &time).await?
            } else {
                let schema = input.schema();
                let batches: Vec<RecordBatch> = input.execute(partition, context)?.try_collect().await?;
                reservation.try_grow(batches.iter().map(RecordBatch::get_array_memory_size).sum())?;
                let timer = time.timer();
                let sorted = Partition::of(batches, &keys)
                    .and_then(|part| sort_order(part, &keys, &schema, &mut reservation));
                timer.done();
                sorted?
            };
            // The sorted rows are gathered a batch at a time as the stream is read (by several
            // tasks at once when merged), the columns decoded from the keys sliced: the input
            // and the order stay (and stay counted) until it ends, no copy of the whole.
            let rows = sorted.order.len();
            let sorted = Arc::new(sorted);
            let gather = move |start: usize| {
                let (sorted, time, schema) = (sorted.clone(), time.clone(), schema.clone());
                move || gather_rows(&sorted, &schema, start..(start + batch_size).min(rows), &time)
            };
            let starts = futures::stream::iter((0..rows).step_by(batch_size));
            let gathered = if merged {
                starts
                    .map(move |start| joined(SpawnedTask::spawn_blocking(gather(start))))
                    .buffered(parallel)
                    .boxed()
            } else {
                starts
                    .map(move |start| {
                        let batch = gather(start);
                        async move { Ok::<_, DataFusionError>(batch()) }
                    })
                    .buffered(1)
                    .boxed()
            };
            let counted = gathered.map(move |batch| {
                let _counted = &reservation;
                let batch = batch??;
                metrics.record_output(batch.num_rows());
                metrics.output_batches().add(1);
                Ok(batch)
            });
            Ok::<_, DataFusionError>(counted)
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(out_schema, sorted.boxed())))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Replaces each `SortExec` that keeps every row and has fixed-width keys with a
/// [`KeySortExec`], and the merge of its partitions above it (keeping every row) with one
/// merged `KeySortExec`.
#[derive(Debug, Default)]
pub struct KeySortRule;

impl PhysicalOptimizerRule for KeySortRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let replaced = match node.downcast_ref::<SortPreservingMergeExec>() {
                // Below, the sort was replaced first (transform_up).
                Some(merge) => {
                    merge.input().downcast_ref::<KeySortExec>().and_then(|sort| sort.merged(merge))
                }
                None => node.downcast_ref::<SortExec>().and_then(KeySortExec::try_new),
            };
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

/// One input partition's batches and its keys evaluated on them (`arrays[key][batch]`).
struct Partition {
    batches: Vec<RecordBatch>,
    arrays: Vec<Vec<ArrayRef>>,
}

impl Partition {
    fn of(batches: Vec<RecordBatch>, keys: &[(Arc<dyn PhysicalExpr>, SortOptions)]) -> Result<Partition> {
        let mut arrays: Vec<Vec<ArrayRef>> = Vec::with_capacity(keys.len());
        for (expr, _) in keys {
            let mut of_key = Vec::with_capacity(batches.len());
            for b in &batches {
                of_key.push(expr.evaluate(b)?.into_array(b.num_rows())?);
            }
            arrays.push(of_key);
        }
        Ok(Partition { batches, arrays })
    }

    fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Each key's words over all `parts`: whether any of its values is null (a word ranking the
/// null), and 2 where a decimal needs more than 64 bits.
fn layout(parts: &[Partition], keys: &[(Arc<dyn PhysicalExpr>, SortOptions)]) -> Vec<KeyLayout> {
    keys.iter()
        .enumerate()
        .map(|(k, (_, options))| {
            let of_key = || parts.iter().flat_map(|p| &p.arrays[k]);
            let nulls = of_key().any(|a| a.null_count() > 0);
            let wide = of_key().any(|a| {
                a.as_primitive_opt::<Decimal128Type>()
                    .is_some_and(|d| d.values().iter().any(|&v| i64::try_from(v).is_err()))
            });
            (nulls, if wide { 2 } else { 1 }, *options)
        })
        .collect()
}

/// Checks that a row's place (its batch among all partitions' batches, high 32 bits, and its
/// row, low 32) fits a word.
fn check_places(parts: &[Partition]) -> Result<()> {
    let batches: usize = parts.iter().map(|p| p.batches.len()).sum();
    if batches > u32::MAX as usize
        || parts.iter().flat_map(|p| &p.batches).any(|b| b.num_rows() > u32::MAX as usize)
    {
        return exec_err!(
            "KeySortExec: {batches} input batches, more than 2^32 or one of more than 2^32 rows"
        );
    }
    Ok(())
}

/// Evaluates `$body` with the const `$n` the words a row takes (`$words` of keys, and its
/// place).
macro_rules! with_words {
    ($words:expr, $n:ident => $body:expr) => {
        with_words!(@ $words, $n, $body, 2 3 4 5 6 7 8 9)
    };
    (@ $words:expr, $n:ident, $body:expr, $($k:literal)*) => {
        match $words + 1 {
            $($k => {
                const $n: usize = $k;
                $body
            })*
            n => return exec_err!("KeySortExec: {n} words a row"),
        }
    };
}

/// A sort's result: its input batches, the rows' places in the keys' order, and the output
/// columns decoded from the keys' words (by output column; `None`: gathered from the batches).
struct Sorted {
    batches: Vec<RecordBatch>,
    order: Vec<u64>,
    decoded: Vec<Option<ArrayRef>>,
}

/// Decoders of the keys that are input columns (the first key on a column decodes it).
fn decoders(
    keys: &[(Arc<dyn PhysicalExpr>, SortOptions)],
    columns: &[KeyLayout],
    schema: &Schema,
) -> Vec<Decoder> {
    let mut at = 0;
    let mut out: Vec<Decoder> = Vec::new();
    for ((expr, _), &layout) in keys.iter().zip(columns) {
        let first = at;
        at += usize::from(layout.0) + layout.1;
        let Some(column) = expr.downcast_ref::<Column>().map(Column::index) else { continue };
        if out.iter().any(|d| d.column == column) || column >= schema.fields().len() {
            continue;
        }
        out.extend(Decoder::new(column, schema.field(column).data_type(), first, layout));
    }
    out
}

/// Finishes `decoders` into the output's columns by index (`columns` of them), their memory
/// counted in `reservation`.
fn decoded(
    decoders: Vec<Decoder>,
    columns: usize,
    reservation: &mut MemoryReservation,
) -> Result<Vec<Option<ArrayRef>>> {
    let mut out = vec![None; columns];
    for d in decoders {
        let column = d.column;
        let array = d.finish()?;
        reservation.try_grow(array.get_array_memory_size())?;
        out[column] = Some(array);
    }
    Ok(out)
}

/// The rows of one partition in the order of the keys; the keys' memory counted in
/// `reservation` while they live, the order's and the decoded columns' after.
fn sort_order(
    part: Partition,
    keys: &[(Arc<dyn PhysicalExpr>, SortOptions)],
    schema: &Schema,
    reservation: &mut MemoryReservation,
) -> Result<Sorted> {
    let parts = std::slice::from_ref(&part);
    check_places(parts)?;
    let rows = part.rows();
    let columns = layout(parts, keys);
    let mut decoders = decoders(keys, &columns, schema);
    let order = with_words!(key_words(&columns), N => {
        let bytes = rows * std::mem::size_of::<[u64; N]>();
        reservation.try_grow(bytes)?;
        let keyed = keyed::<N>(&part, &columns, 0)?;
        decoders.iter_mut().for_each(|d| d.reserve(rows));
        let mut order = Vec::with_capacity(rows);
        for words in &keyed {
            order.push(words[N - 1]);
            decoders.iter_mut().for_each(|d| d.push(words));
        }
        drop(keyed);
        reservation.shrink(bytes - rows * std::mem::size_of::<u64>());
        order
    });
    let decoded = decoded(decoders, schema.fields().len(), reservation)?;
    Ok(Sorted { batches: part.batches, order, decoded })
}

/// Every partition of `input` collected and sorted on a task of its own, then merged: all
/// their batches (in partition order), the rows' places in the order of the keys, and the
/// decoded columns.
async fn merged_order(
    input: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    keys: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
    reservation: &mut MemoryReservation,
    time: &Time,
) -> Result<Sorted> {
    let schema = input.schema();
    let keys = Arc::new(keys);
    let count = input.properties().output_partitioning().partition_count();
    let mut tasks = Vec::with_capacity(count);
    for p in 0..count {
        let stream = input.execute(p, context.clone())?;
        let keys = keys.clone();
        tasks.push(SpawnedTask::spawn(async move {
            let batches: Vec<RecordBatch> = stream.try_collect().await?;
            Partition::of(batches, &keys)
        }));
    }
    let mut parts = Vec::with_capacity(count);
    for task in tasks {
        parts.push(joined(task).await??);
    }
    reservation
        .try_grow(parts.iter().flat_map(|p| &p.batches).map(RecordBatch::get_array_memory_size).sum())?;
    check_places(&parts)?;
    let columns = Arc::new(layout(&parts, &keys));
    let mut decoders = decoders(&keys, &columns, &schema);
    let rows: usize = parts.iter().map(Partition::rows).sum();
    let (batches, order) = with_words!(key_words(&columns), N => {
        let bytes = rows * std::mem::size_of::<[u64; N]>();
        reservation.try_grow(bytes)?;
        let (mut first, mut tasks) = (0, Vec::with_capacity(count));
        for part in parts {
            let (columns, time, at) = (columns.clone(), time.clone(), first);
            first += part.batches.len();
            tasks.push(SpawnedTask::spawn_blocking(move || {
                let _timer = time.timer();
                let keyed = keyed::<N>(&part, &columns, at);
                (part.batches, keyed)
            }));
        }
        let (mut batches, mut runs) = (Vec::new(), Vec::with_capacity(count));
        for task in tasks {
            let (of_part, keyed) = joined(task).await?;
            batches.extend(of_part);
            runs.push(keyed?);
        }
        let timer = time.timer();
        decoders.iter_mut().for_each(|d| d.reserve(rows));
        let order = merge_runs::<N>(&runs, &mut decoders);
        drop(runs);
        timer.done();
        reservation.shrink(bytes - rows * std::mem::size_of::<u64>());
        (batches, order)
    });
    let decoded = decoded(decoders, schema.fields().len(), reservation)?;
    Ok(Sorted { batches, order, decoded })
}

/// Output rows `range` of `sorted`: the decoded columns sliced, the others gathered from the
/// input batches.
fn gather_rows(sorted: &Sorted, schema: &SchemaRef, range: Range<usize>, time: &Time) -> Result<RecordBatch> {
    let _timer = time.timer();
    let len = range.len();
    let rows: Vec<(usize, usize)> = sorted.order[range.clone()]
        .iter()
        .map(|&at| ((at >> 32) as usize, (at & u64::from(u32::MAX)) as usize))
        .collect();
    let columns = (0..schema.fields().len())
        .map(|c| match &sorted.decoded[c] {
            Some(array) => Ok(array.slice(range.start, len)),
            None => {
                let arrays: Vec<&dyn Array> = sorted.batches.iter().map(|b| b.column(c).as_ref()).collect();
                Ok(interleave(&arrays, &rows)?)
            }
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(len));
    Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)
}

/// A task's result, or its panic or cancellation as an error.
async fn joined<R: Send + 'static>(task: SpawnedTask<R>) -> Result<R> {
    task.join_unwind().await.map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))
}

/// The places of sorted `runs` merged into one order (their words are distinct: each ends in
/// a place of its own), each row's words handed to `decoders` in that order.
fn merge_runs<const N: usize>(runs: &[Vec<[u64; N]>], decoders: &mut [Decoder]) -> Vec<u64> {
    let mut order = Vec::with_capacity(runs.iter().map(Vec::len).sum());
    let mut heads: BinaryHeap<Reverse<([u64; N], usize, usize)>> =
        runs.iter().enumerate().filter_map(|(r, run)| Some(Reverse((*run.first()?, r, 0)))).collect();
    while let Some(mut top) = heads.peek_mut() {
        let Reverse((words, run, at)) = *top;
        order.push(words[N - 1]);
        decoders.iter_mut().for_each(|d| d.push(&words));
        match runs[run].get(at + 1) {
            Some(next) => *top = Reverse((*next, run, at + 1)),
            None => {
                PeekMut::pop(top);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;
    use arrow_array::types::Int32Type;
    use arrow_array::{
        Decimal128Array, Float32Array, Float64Array, Int32Array, Int64Array, TimestampMillisecondArray,
        UInt8Array,
    };
    use arrow_schema::{DataType, TimeUnit};
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

    /// The batches as one.
    fn whole(batches: &[RecordBatch]) -> RecordBatch {
        datafusion::arrow::compute::concat_batches(&batches[0].schema(), batches).unwrap()
    }

    const ORDERS: [&str; 8] = [
        "f DESC NULLS LAST, d DESC, id",
        "f, id",
        "i NULLS FIRST, g DESC, id DESC",
        "w DESC NULLS FIRST, u NULLS LAST, id",
        "t DESC, w, f NULLS FIRST, id",
        "d, i DESC NULLS LAST, id",
        "g, f DESC NULLS FIRST, u DESC, id",
        // A key that is no column: gathered, not decoded.
        "i * 2 DESC NULLS FIRST, id",
    ];

    /// Every key type, ascending and descending, nulls first and last: the rows in the order
    /// DataFusion's sort gives (the keys end in the unique `id`, so the order is one), over one
    /// partition and several (merged by the sort itself), and the same when a memory limit
    /// hands the sort (and the merge) to DataFusion.
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
                // The table's three partitions are merged by the sort itself.
                assert!(shown.contains("merged") && !shown.contains("SortPreservingMergeExec"), "{shown}");
                assert_eq!(ids(&got), ids(&want), "{order}, {partitions} partitions");
                // Every column, to the bit: the key columns are decoded from the sorted words.
                assert!(
                    whole(&got) == whole(&want),
                    "{order}, {partitions} partitions: another column differs"
                );
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
        let (got, shown) = run(&ctx, "SELECT id, i FROM t ORDER BY i DESC NULLS FIRST").await;
        assert!(shown.contains("KeySortExec") && !shown.contains("merged"), "one partition: {shown}");
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
        // Merged over three partitions, with nothing (or one partition's rows) to sort.
        let merged = context(true, 2, false, table(4000, 3, 6));
        let (none, shown) = run(&merged, "SELECT * FROM t WHERE id < 0 ORDER BY f, id").await;
        assert!(shown.contains("merged"), "{shown}");
        assert_eq!(none.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
        let (few, _) = run(&merged, "SELECT * FROM t WHERE id < 7 ORDER BY id DESC").await;
        assert_eq!(ids(&few), [6, 5, 4, 3, 2, 1, 0]);
        // A key this sort does not take (text): DataFusion's.
        let (_, shown) = run(&ctx, "SELECT * FROM t ORDER BY CAST(i AS VARCHAR), id").await;
        assert!(!shown.contains("KeySortExec"), "{shown}");
    }
}
