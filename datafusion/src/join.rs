//! The spatial join: an inner join whose condition is — or has a conjunct that is —
//! `ST_Contains`, `ST_Within`, `ST_Intersects` or `ST_DWithin` (with a constant distance) of
//! one column from each side (or `ST_GeomFromWKB` of one) becomes a
//! [`MeridianSpatialJoinExec`] ([`SpatialJoinRule`]), the other conjuncts a filter on its
//! pairs; a `LEFT` or `RIGHT` join whose condition is such a predicate alone becomes one that
//! also emits the preserved side's unmatched rows, the other side's columns null. DataFusion plans such a join
//! as a nested loop (no equality keys), evaluating the predicate on every pair; here the
//! build (left) side is collected once and indexed by meridian, and each probe (right) batch
//! runs through the engine as one bytecode program — probe the index, test the candidates
//! with the exact predicate, emit the pairs — on the CPU or the GPU, as the engine places it.
//! Output batches carry both sides' columns (the join's projection applied), pairs ordered
//! by probe row, then build row (a right join's unmatched probe rows after each batch's
//! pairs; a left join's unmatched build rows last, in build order).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use arrow_array::{new_null_array, ArrayRef, Float64Array, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{exec_err, JoinSide, JoinType, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::utils::{conjunction, split_conjunction};
use datafusion::physical_expr::{
    Distribution, EquivalenceProperties, Partitioning, PhysicalExpr, ScalarFunctionExpr,
};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::utils::{build_join_schema, JoinFilter};
use datafusion::physical_plan::joins::NestedLoopJoinExec;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    collect, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties,
    InputDistributionRequirements, PlanProperties, SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};
use meridian_kernels::column::GeometryColumn;
use meridian_kernels::interp::Input;
use meridian_runtime::{Engine, Prepared};

use crate::convert::Conversion;
use crate::geometry;
use crate::knn::{KnnFunction, Nearest};
use crate::udf::Function;

/// The join's predicate, with which side each of its geometries comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Predicate {
    /// `ST_Contains(x, y)`.
    Contains,
    /// `ST_Within(x, y)`.
    Within,
    /// `ST_Intersects(x, y)`.
    Intersects,
    /// `ST_DWithin(x, y, d)`.
    DWithin(f64),
    /// `ST_KNN(q, o, k, false)`: each probe (query) row with the `k` build (object) rows
    /// nearest it — no program: the build side's R-tree answers it ([`crate::knn`]).
    Knn(u32),
}

impl Predicate {
    /// The program that joins a probe batch to the indexed build side (none for a KNN join).
    /// `build_first`: the predicate's first geometry is the build side's.
    pub fn program(self, build_first: bool) -> Option<String> {
        let (x, y) = if build_first { ("g1", "g0") } else { ("g0", "g1") };
        let op = match self {
            Predicate::Contains => "contains",
            Predicate::Within => "within",
            Predicate::Intersects => "intersects",
            Predicate::DWithin(_) => "dwithin",
            Predicate::Knn(_) => return None,
        };
        let (probe, test) = match self {
            Predicate::DWithin(d) => (
                format!("    const f0, {d:?}\n    probe c0, build, g0, f0\n"),
                format!("    dwithin b0, {x}, {y}, f0\n"),
            ),
            _ => ("    probe c0, build, g0\n".to_owned(), format!("    {op} b0, {x}, {y}\n")),
        };
        Some(format!(
            ".program spatial_join\n.input probe geometry\n.input build geometry indexed\n.output pairs hits\n    \
             load g0, probe\n{probe}next:\n    cnext g1, c0, done\n{test}    jf b0, next\n    emit pairs, g1\n    \
             jmp next\ndone:\n    halt\n"
        ))
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Predicate::Contains => f.write_str("ST_Contains"),
            Predicate::Within => f.write_str("ST_Within"),
            Predicate::Intersects => f.write_str("ST_Intersects"),
            Predicate::DWithin(d) => write!(f, "ST_DWithin(d = {d})"),
            Predicate::Knn(k) => write!(f, "ST_KNN(k = {k})"),
        }
    }
}

/// The build side, collected and indexed once for every probe partition.
struct Build {
    batch: RecordBatch,
    index: BuildIndex,
}

/// How the build side is indexed: for the engine's program, or for nearest-neighbour walks.
enum BuildIndex {
    Engine(Input),
    Nearest(Nearest),
}

/// A spatial join run by meridian (see the module's documentation).
pub struct MeridianSpatialJoinExec {
    left: Arc<dyn ExecutionPlan>,
    right: Arc<dyn ExecutionPlan>,
    pub(crate) predicate: Predicate,
    /// The geometry column of each side, and whether the predicate's first argument is the
    /// left's.
    pub(crate) left_geometry: usize,
    pub(crate) right_geometry: usize,
    pub(crate) left_first: bool,
    /// `Inner`; `Left` (unmatched build rows emitted at the end) or `Right` (unmatched probe
    /// rows emitted after each batch's pairs).
    pub(crate) join_type: JoinType,
    /// Output columns of left ++ right, as the nested loop join it replaces projected them.
    pub(crate) projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    engine: Arc<Engine>,
    /// The join's program (none for a KNN join).
    pub(crate) program: Option<Prepared>,
    /// A KNN join's output ends with each pair's distance ([`KNN_DISTANCE`]).
    pub(crate) knn_distance: bool,
    build: Arc<tokio::sync::OnceCell<Arc<Build>>>,
}

/// The column a KNN join adds, on request, after its others: the distance it measured from
/// the query geometry to the object (`ST_Distance(query, object)`, the same function of the
/// same geometries), so that a projection above reads it rather than measuring it again.
pub const KNN_DISTANCE: &str = "knn_distance";

impl fmt::Debug for MeridianSpatialJoinExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeridianSpatialJoinExec").field("predicate", &self.predicate).finish()
    }
}

impl DisplayAs for MeridianSpatialJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (x, y) = if self.left_first { ("left", "right") } else { ("right", "left") };
        write!(
            f,
            "MeridianSpatialJoinExec: {}{}({x}.#{}, {y}.#{}), build=left (indexed), probe=right",
            match self.join_type {
                JoinType::Left => "left join on ",
                JoinType::Right => "right join on ",
                _ => "",
            },
            self.predicate,
            if self.left_first { self.left_geometry } else { self.right_geometry },
            if self.left_first { self.right_geometry } else { self.left_geometry },
        )
    }
}

impl MeridianSpatialJoinExec {
    /// A `join_type` join (`Inner`, `Left` or `Right`) of `left` (built and indexed) and
    /// `right` (probed) on `predicate` of their geometry columns, with `schema` (left ++ right,
    /// `projection` applied).
    #[allow(clippy::too_many_arguments)] // a join's parts, all needed
    pub fn try_new(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        predicate: Predicate,
        (left_geometry, right_geometry, left_first): (usize, usize, bool),
        join_type: JoinType,
        projection: Option<Vec<usize>>,
        schema: SchemaRef,
        engine: Arc<Engine>,
    ) -> Result<MeridianSpatialJoinExec> {
        if !matches!(join_type, JoinType::Inner | JoinType::Left | JoinType::Right) {
            return exec_err!("meridian's spatial join runs inner, left and right joins, not {join_type}");
        }
        let program = match predicate.program(left_first) {
            Some(text) => {
                let program = meridian_bytecode::assemble("spatial_join", &text)
                    .map_err(|d| DataFusionError::Internal(format!("the spatial join's program: {d}")))?;
                Some(engine.prepare_verified(&program))
            }
            None => None,
        };
        Ok(MeridianSpatialJoinExec::with_program(
            left,
            right,
            predicate,
            (left_geometry, right_geometry, left_first),
            join_type,
            projection,
            schema,
            engine,
            program,
        ))
    }

    /// Like [`try_new`](Self::try_new) with the join's program given (a plan decoded on
    /// another process carries the program it was planned with).
    #[allow(clippy::too_many_arguments)] // a join's parts, all needed
    pub(crate) fn with_program(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        predicate: Predicate,
        (left_geometry, right_geometry, left_first): (usize, usize, bool),
        join_type: JoinType,
        projection: Option<Vec<usize>>,
        schema: SchemaRef,
        engine: Arc<Engine>,
        program: Option<Prepared>,
    ) -> MeridianSpatialJoinExec {
        // A left join knows its unmatched build rows only when every probe row has been
        // joined: it probes in one partition (the engine spreads each batch over its workers
        // anyway), which holds in a distributed plan too, where partitions run apart.
        let (partitions, emission) = match join_type {
            JoinType::Left => (1, EmissionType::Both),
            _ => (right.output_partitioning().partition_count(), EmissionType::Incremental),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(partitions),
            emission,
            Boundedness::Bounded,
        ));
        MeridianSpatialJoinExec {
            left,
            right,
            predicate,
            left_geometry,
            right_geometry,
            left_first,
            join_type,
            projection,
            schema,
            properties,
            engine,
            program,
            knn_distance: false,
            build: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// This KNN join with [`KNN_DISTANCE`] after its columns; an error for any other join.
    pub(crate) fn with_knn_distance(&self) -> Result<MeridianSpatialJoinExec> {
        if !matches!(self.predicate, Predicate::Knn(_)) || self.join_type != JoinType::Inner {
            return exec_err!("only an inner KNN join gives its distances, not {}", self.predicate);
        }
        let mut fields = self.schema.fields().to_vec();
        if self.knn_distance {
            fields.pop();
        }
        // Nullable, as ST_Distance's result is: the projection above keeps its schema.
        fields.push(Arc::new(Field::new(KNN_DISTANCE, DataType::Float64, true)));
        let schema = Arc::new(Schema::new_with_metadata(fields, self.schema.metadata().clone()));
        let mut join = MeridianSpatialJoinExec::with_program(
            self.left.clone(),
            self.right.clone(),
            self.predicate,
            (self.left_geometry, self.right_geometry, self.left_first),
            self.join_type,
            self.projection.clone(),
            schema,
            self.engine.clone(),
            self.program.clone(),
        );
        join.knn_distance = true;
        Ok(join)
    }

    /// The predicate.
    pub fn predicate(&self) -> Predicate {
        self.predicate
    }

    /// The join type: `Inner`, `Left` or `Right`.
    pub fn join_type(&self) -> JoinType {
        self.join_type
    }
}

/// Collects every partition of `left` into one batch and indexes its geometry column.
async fn build_side(
    left: Arc<dyn ExecutionPlan>,
    column: usize,
    knn: bool,
    ctx: Arc<TaskContext>,
) -> Result<Arc<Build>> {
    let schema = left.schema();
    let batches = collect(left, ctx).await?;
    let batch = arrow_select_concat(&schema, &batches)?;
    let field = schema.field(column);
    let encoding = geometry::encoding(field)?;
    let what = format!("the join's build side, column {}", field.name());
    let col: Arc<GeometryColumn> = geometry::to_column(&what, batch.column(column).as_ref(), encoding)?;
    let index =
        if knn { BuildIndex::Nearest(Nearest::build(col)?) } else { BuildIndex::Engine(Input::indexed(col)) };
    Ok(Arc::new(Build { batch, index }))
}

fn arrow_select_concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    datafusion::arrow::compute::concat_batches(schema, batches).map_err(DataFusionError::from)
}

/// Joins one probe batch to the build side; a left join marks in `matched` the build rows it
/// matched, a right join appends the probe rows that matched nothing.
fn probe_batch(
    exec: &JoinParts,
    build: &Build,
    probe: &RecordBatch,
    matched: &mut [bool],
) -> Result<RecordBatch> {
    let field = probe.schema_ref().field(exec.right_geometry).clone();
    let encoding = geometry::encoding(&field)?;
    let what = format!("the join's probe side, column {}", field.name());
    let col = geometry::to_column(&what, probe.column(exec.right_geometry).as_ref(), encoding)?;
    let (index, program) = match (&build.index, &exec.program, exec.predicate) {
        (BuildIndex::Nearest(nearest), _, Predicate::Knn(k)) => {
            return knn_batch(exec, build, nearest, &col, k as usize, probe);
        }
        (BuildIndex::Engine(index), Some(program), _) => (index, program),
        _ => return exec_err!("the spatial join's build side is not indexed for {}", exec.predicate),
    };
    let bound = exec
        .engine
        .bind(program, [("probe", Input::rows(col)), ("build", index.clone())])
        .map_err(|e| DataFusionError::Execution(format!("the spatial join: {e}")))?;
    let result = exec
        .engine
        .run(program.job(&bound))
        .map_err(|e| DataFusionError::Execution(format!("the spatial join: {e}")))?;
    let Some(pairs) = result.hits("pairs") else {
        return exec_err!("the spatial join's program has no pairs");
    };
    let mut probe_rows: Vec<u32> = pairs.iter().map(|&(row, _)| row).collect();
    let mut build_rows: Vec<Option<u32>> = pairs.iter().map(|&(_, id)| Some(id)).collect();
    match exec.join_type {
        JoinType::Left => {
            for &(_, id) in pairs {
                let Some(m) = matched.get_mut(id as usize) else {
                    return exec_err!("the spatial join matched build row {id} of {}", matched.len());
                };
                *m = true;
            }
        }
        JoinType::Right => {
            let mut hit = vec![false; probe.num_rows()];
            for &(row, _) in pairs {
                if let Some(h) = hit.get_mut(row as usize) {
                    *h = true;
                }
            }
            for row in (0..probe.num_rows()).filter(|&r| !hit[r]) {
                let Ok(row) = u32::try_from(row) else {
                    return exec_err!("the spatial join's probe batch has more than 2^32 rows");
                };
                probe_rows.push(row);
                build_rows.push(None);
            }
        }
        _ => {}
    }
    gather(exec, build, &UInt32Array::from(build_rows), Some((probe, &UInt32Array::from(probe_rows))))
}

/// A KNN join's batch: each probe row beside its `k` nearest build rows, nearest first.
fn knn_batch(
    exec: &JoinParts,
    build: &Build,
    nearest: &Nearest,
    col: &GeometryColumn,
    k: usize,
    probe: &RecordBatch,
) -> Result<RecordBatch> {
    let (mut probe_rows, mut build_rows, mut distances) = (Vec::new(), Vec::new(), Vec::new());
    let mut found = Vec::with_capacity(k);
    for row in 0..col.len() {
        let Some(g) = col.get(row) else { continue };
        found.clear();
        nearest.nearest(&g, k, &mut found);
        let Ok(row) = u32::try_from(row) else {
            return exec_err!("the spatial join's probe batch has more than 2^32 rows");
        };
        probe_rows.extend(std::iter::repeat_n(row, found.len()));
        build_rows.extend(found.iter().map(|&(b, _)| Some(b)));
        if exec.knn_distance {
            distances.extend(found.iter().map(|&(_, d)| d));
        }
    }
    let distances = exec.knn_distance.then(|| Arc::new(Float64Array::from(distances)) as ArrayRef);
    let (build_rows, probe_rows) = (UInt32Array::from(build_rows), UInt32Array::from(probe_rows));
    gather_with(exec, build, &build_rows, Some((probe, &probe_rows)), distances)
}

/// A left join's last batch: the build rows no probe row matched, the probe side's columns null.
fn unmatched_build(exec: &JoinParts, build: &Build, matched: &[bool]) -> Result<RecordBatch> {
    let rows = (0..matched.len()).filter(|&r| !matched[r]).map(|r| {
        u32::try_from(r)
            .map_err(|_| DataFusionError::Execution("the join's build side passes 2^32 rows".into()))
    });
    gather(exec, build, &rows.collect::<Result<UInt32Array>>()?, None)
}

/// The output rows: build row `build_rows[i]` (null: the build side's columns null) beside
/// probe row `probe_rows[i]` of the probe batch (none: the probe side's columns null). Only the
/// columns the join's output keeps are gathered (a count keeps none).
fn gather(
    exec: &JoinParts,
    build: &Build,
    build_rows: &UInt32Array,
    probe: Option<(&RecordBatch, &UInt32Array)>,
) -> Result<RecordBatch> {
    gather_with(exec, build, build_rows, probe, None)
}

/// [`gather`], with `last` (a KNN join's distances) after the gathered columns.
fn gather_with(
    exec: &JoinParts,
    build: &Build,
    build_rows: &UInt32Array,
    probe: Option<(&RecordBatch, &UInt32Array)>,
    last: Option<ArrayRef>,
) -> Result<RecordBatch> {
    let n_build = build.batch.num_columns();
    let wanted: Vec<usize> = match &exec.projection {
        Some(p) => p.clone(),
        // Every column of both sides (the distances, when asked for, come after them).
        None => (0..exec.schema.fields().len() - usize::from(exec.knn_distance)).collect(),
    };
    let take = |array: &ArrayRef, rows: &UInt32Array| {
        datafusion::arrow::compute::take(array.as_ref(), rows, None).map_err(DataFusionError::from)
    };
    let columns = wanted
        .iter()
        .enumerate()
        .map(|(out, &i)| match (i.checked_sub(n_build), probe) {
            (None, _) => take(build.batch.column(i), build_rows),
            (Some(j), Some((batch, rows))) => match batch.columns().get(j) {
                Some(c) => take(c, rows),
                None => exec_err!("the spatial join's output column {i} is past its inputs"),
            },
            (Some(_), None) => Ok(new_null_array(exec.schema.field(out).data_type(), build_rows.len())),
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let mut columns = columns;
    columns.extend(last);
    let options = RecordBatchOptions::new().with_row_count(Some(build_rows.len()));
    RecordBatch::try_new_with_options(exec.schema.clone(), columns, &options).map_err(DataFusionError::from)
}

/// What a probe stream needs of the plan.
struct JoinParts {
    engine: Arc<Engine>,
    program: Option<Prepared>,
    predicate: Predicate,
    right_geometry: usize,
    join_type: JoinType,
    projection: Option<Vec<usize>>,
    knn_distance: bool,
    schema: SchemaRef,
}

/// A probe stream's state between batches.
struct Probing {
    probe: SendableRecordBatchStream,
    build: Arc<Build>,
    matched: Vec<bool>,
    parts: Arc<JoinParts>,
}

/// The next output batch of a probe stream, and its state after it (none when the left join's
/// unmatched rows were the last).
async fn next_batch(state: Option<Probing>) -> Result<Option<(RecordBatch, Option<Probing>)>> {
    let Some(mut s) = state else { return Ok(None) };
    match s.probe.next().await {
        Some(batch) => {
            let out = probe_batch(&s.parts, &s.build, &batch?, &mut s.matched)?;
            Ok(Some((out, Some(s))))
        }
        None if s.parts.join_type == JoinType::Left => {
            Ok(Some((unmatched_build(&s.parts, &s.build, &s.matched)?, None)))
        }
        None => Ok(None),
    }
}

impl ExecutionPlan for MeridianSpatialJoinExec {
    fn name(&self) -> &'static str {
        "MeridianSpatialJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.left, &self.right]
    }

    /// The build side is consumed whole (every probe partition joins all of it), the probe
    /// side partition by partition — as the nested loop join this replaces — except by a left
    /// join, which probes all of it in one. A distributed planner (Ballista) reads this to give
    /// every task the whole build side.
    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        let probe = match self.join_type {
            JoinType::Left => Distribution::SinglePartition,
            _ => Distribution::UnspecifiedDistribution,
        };
        InputDistributionRequirements::new(vec![Distribution::SinglePartition, probe])
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: datafusion::physical_plan::execution_plan::ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [left, right]: [Arc<dyn ExecutionPlan>; 2] = children
            .try_into()
            .map_err(|_| DataFusionError::Internal("MeridianSpatialJoinExec has two children".into()))?;
        let mut join = MeridianSpatialJoinExec::with_program(
            left,
            right,
            self.predicate,
            (self.left_geometry, self.right_geometry, self.left_first),
            self.join_type,
            self.projection.clone(),
            self.schema.clone(),
            self.engine.clone(),
            self.program.clone(),
        );
        join.knn_distance = self.knn_distance;
        Ok(Arc::new(join))
    }

    #[allow(deprecated)] // still required by the trait; it delegates to replace_children
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, crate::recompute())
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let probe = match self.join_type {
            // One partition (see `with_program`): every probe partition, if a plan gave it more.
            JoinType::Left if partition > 0 => {
                return exec_err!("a meridian left join has one partition, not {}", partition + 1)
            }
            JoinType::Left => {
                let n = self.right.output_partitioning().partition_count();
                let streams =
                    (0..n).map(|p| self.right.execute(p, context.clone())).collect::<Result<Vec<_>>>()?;
                let merged = futures::stream::select_all(streams);
                Box::pin(RecordBatchStreamAdapter::new(self.right.schema(), merged)) as Pin<Box<_>>
            }
            _ => self.right.execute(partition, context.clone())?,
        };
        let (once, left, column) = (self.build.clone(), self.left.clone(), self.left_geometry);
        let knn = matches!(self.predicate, Predicate::Knn(_));
        let parts = Arc::new(JoinParts {
            engine: self.engine.clone(),
            program: self.program.clone(),
            predicate: self.predicate,
            right_geometry: self.right_geometry,
            join_type: self.join_type,
            projection: self.projection.clone(),
            knn_distance: self.knn_distance,
            schema: self.schema.clone(),
        });
        let joined = futures::stream::once(async move {
            let build = once.get_or_try_init(|| build_side(left, column, knn, context)).await?.clone();
            let rows = if parts.join_type == JoinType::Left { build.batch.num_rows() } else { 0 };
            // No build row: only a right join has rows to emit, so the others never read the
            // probe side (SpatialBench's Q6 filters its zones down to none).
            let probes = build.batch.num_rows() > 0 || parts.join_type == JoinType::Right;
            let state = probes.then(|| Probing { probe, build, matched: vec![false; rows], parts });
            Ok::<_, DataFusionError>(futures::stream::try_unfold(state, next_batch))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), joined)))
    }
}

/// Turns nested loop joins on a spatial predicate into [`MeridianSpatialJoinExec`]s.
pub struct SpatialJoinRule {
    engine: Arc<Engine>,
}

impl SpatialJoinRule {
    /// The rule, with joins run by `engine`.
    pub fn new(engine: Arc<Engine>) -> SpatialJoinRule {
        SpatialJoinRule { engine }
    }

    /// What the join `nl` becomes when one conjunct of its condition is a spatial predicate
    /// this join runs: a [`MeridianSpatialJoinExec`] on it; the other conjuncts (SpatialBench's
    /// `pickup.z_zonekey != dropoff.z_zonekey`, `b1.id < b2.id`), evaluated on its pairs by a
    /// `FilterExec` above it, and the nested loop's projection by a `ProjectionExec` above that
    /// — for an inner join, a condition's conjuncts filter its pairs in any order. A left or
    /// right join whose condition is the spatial predicate alone keeps its type; with other
    /// conjuncts, they decide which rows matched, and it stays a nested loop.
    fn rewrite(&self, nl: &NestedLoopJoinExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let join_type = *nl.join_type();
        if !matches!(join_type, JoinType::Inner | JoinType::Left | JoinType::Right) {
            return Ok(None);
        }
        let Some(filter) = nl.filter() else { return Ok(None) };
        let conjuncts = split_conjunction(filter.expression());
        let Some((at, predicate, (left_geometry, right_geometry, left_first))) =
            conjuncts.iter().enumerate().find_map(|(i, c)| spatial(c, filter).map(|(p, g)| (i, p, g)))
        else {
            return Ok(None);
        };
        let projection = nl.projection().as_ref().map(|p| p.to_vec());
        let parts = (left_geometry, right_geometry, left_first);
        let (left, right) = (nl.left().clone(), nl.right().clone());
        // Which side is built: a KNN join's object side (the second argument's); otherwise an
        // inner join builds its right when only that side is known to be the smaller — after a
        // join, DataFusion may leave an output of unknown size on the left (SpatialBench's Q11:
        // the second join would index the first one's 6M rows and probe the 1,178 zones).
        let swap = match predicate {
            // The whole condition of an inner join only (other conjuncts would filter the k
            // nearest after they were chosen).
            Predicate::Knn(_) if conjuncts.len() > 1 || join_type != JoinType::Inner => return Ok(None),
            Predicate::Knn(_) => left_first,
            _ => join_type == JoinType::Inner && smaller(&right, &left),
        };
        if conjuncts.len() == 1 && swap {
            let join = self.inner_join(nl, predicate, parts, true, projection, nl.schema())?;
            return Ok(Some(join));
        }
        if conjuncts.len() == 1 {
            // A left join probes in one partition (see `MeridianSpatialJoinExec::with_program`);
            // the partitions above it still run in parallel.
            let right = match join_type {
                JoinType::Left if right.output_partitioning().partition_count() > 1 => {
                    Arc::new(CoalescePartitionsExec::new(right)) as Arc<dyn ExecutionPlan>
                }
                _ => right,
            };
            let join = MeridianSpatialJoinExec::try_new(
                left,
                right,
                predicate,
                parts,
                join_type,
                projection,
                nl.schema(),
                self.engine.clone(),
            )?;
            return Ok(Some(Arc::new(join)));
        }
        if join_type != JoinType::Inner {
            return Ok(None);
        }
        // The residual, its columns moved from the filter's schema to the join's (left ++ right).
        let n_left = left.schema().fields().len();
        let (joined, _) = build_join_schema(&left.schema(), &right.schema(), &JoinType::Inner);
        let joined = Arc::new(joined);
        let mut unmapped = false;
        let rest = conjuncts.iter().enumerate().filter(|(i, _)| *i != at).map(|(_, c)| (*c).clone());
        let residual = conjunction(rest)
            .transform(|e| {
                let Some(c) = e.downcast_ref::<Column>() else { return Ok(Transformed::no(e)) };
                let at = filter.column_indices().get(c.index()).and_then(|ix| match ix.side {
                    JoinSide::Left => Some(ix.index),
                    JoinSide::Right => Some(n_left + ix.index),
                    JoinSide::None => None,
                });
                match at.and_then(|at| joined.fields().get(at).map(|f| (at, f))) {
                    Some((at, f)) => {
                        Ok(Transformed::yes(Arc::new(Column::new(f.name(), at)) as Arc<dyn PhysicalExpr>))
                    }
                    None => {
                        unmapped = true;
                        Ok(Transformed::no(e))
                    }
                }
            })?
            .data;
        if unmapped {
            return Ok(None);
        }
        let join = self.inner_join(nl, predicate, parts, swap, None, joined.clone())?;
        let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(residual, join)?);
        let Some(projection) = projection else { return Ok(Some(filtered)) };
        let exprs = projection
            .iter()
            .map(|&i| {
                let f = joined.fields().get(i).ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "the join's projection names column {i} of {}",
                        joined.fields().len()
                    ))
                })?;
                Ok((Arc::new(Column::new(f.name(), i)) as Arc<dyn PhysicalExpr>, f.name().clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Arc::new(ProjectionExec::try_new(exprs, filtered)?)))
    }
}

impl SpatialJoinRule {
    /// The inner join of the nested loop `nl`'s inputs on `predicate`, its output the columns
    /// `projection` names of left ++ right (all of them for none), in that order, as `schema`
    /// says. With `swap` the right input is built and the left probed: the argument order is
    /// flipped and the projection renumbered into right ++ left, so the join gathers the same
    /// columns in the same order and nothing above it changes.
    fn inner_join(
        &self,
        nl: &NestedLoopJoinExec,
        predicate: Predicate,
        (left_geometry, right_geometry, left_first): (usize, usize, bool),
        swap: bool,
        projection: Option<Vec<usize>>,
        schema: SchemaRef,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (left, right) = (nl.left().clone(), nl.right().clone());
        if !swap {
            let parts = (left_geometry, right_geometry, left_first);
            let join = MeridianSpatialJoinExec::try_new(
                left,
                right,
                predicate,
                parts,
                JoinType::Inner,
                projection,
                schema,
                self.engine.clone(),
            )?;
            return Ok(Arc::new(join));
        }
        let (n_left, n_right) = (left.schema().fields().len(), right.schema().fields().len());
        let wanted = projection.unwrap_or_else(|| (0..n_left + n_right).collect());
        if let Some(&i) = wanted.iter().find(|&&i| i >= n_left + n_right) {
            return Err(DataFusionError::Plan(format!(
                "the join's projection names column {i} of {}",
                n_left + n_right
            )));
        }
        let swapped = wanted.iter().map(|&i| if i < n_left { n_right + i } else { i - n_left }).collect();
        let join = MeridianSpatialJoinExec::try_new(
            right,
            left,
            predicate,
            (right_geometry, left_geometry, !left_first),
            JoinType::Inner,
            Some(swapped),
            schema,
            self.engine.clone(),
        )?;
        Ok(Arc::new(join))
    }
}

/// Whether `a` is known to have fewer rows than `b` (`b`'s count unknown counts as more).
fn smaller(a: &Arc<dyn ExecutionPlan>, b: &Arc<dyn ExecutionPlan>) -> bool {
    let (context, args) = (StatisticsContext::new(), StatisticsArgs::new());
    let rows = |p: &Arc<dyn ExecutionPlan>| {
        context.compute(p.as_ref(), &args).ok().and_then(|s| s.num_rows.get_value().copied())
    };
    match (rows(a), rows(b)) {
        (Some(a), Some(b)) => a < b,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The spatial predicate `e` is, with (left geometry column, right geometry column, whether the
/// predicate's first argument is the left's), when it is one this join runs.
fn spatial(e: &Arc<dyn PhysicalExpr>, filter: &JoinFilter) -> Option<(Predicate, (usize, usize, bool))> {
    let call = e.downcast_ref::<ScalarFunctionExpr>()?;
    let args = call.args();
    let predicate = match (call.fun().name(), args.len()) {
        ("st_contains", 2) => Predicate::Contains,
        ("st_within", 2) => Predicate::Within,
        ("st_intersects", 2) => Predicate::Intersects,
        ("st_dwithin", 3) => match args[2].downcast_ref::<Literal>().map(Literal::value) {
            Some(ScalarValue::Float64(Some(d))) if d.is_finite() => Predicate::DWithin(*d),
            _ => return None,
        },
        (KnnFunction::NAME, 4) => {
            let literal = |i: usize| args[i].downcast_ref::<Literal>().map(Literal::value);
            match (literal(2), literal(3)) {
                (Some(ScalarValue::Int64(Some(k))), Some(ScalarValue::Boolean(Some(false)))) => {
                    Predicate::Knn(u32::try_from(*k).ok().filter(|&k| k > 0)?)
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    // Each geometry a column of its own side — or `ST_GeomFromWKB` of one: the join decodes
    // the column's WKB itself, with the same errors for WKB that does not decode.
    let side = |e: &Arc<dyn PhysicalExpr>| {
        let e = match e.downcast_ref::<ScalarFunctionExpr>() {
            Some(f) if f.fun().name() == Conversion::GeomFromWkb.name() && f.args().len() == 1 => {
                &f.args()[0]
            }
            _ => e,
        };
        let c = e.downcast_ref::<Column>()?;
        let ix = filter.column_indices().get(c.index())?;
        Some((ix.side, ix.index))
    };
    let (a, b) = (side(&args[0])?, side(&args[1])?);
    let geometries = match (a, b) {
        ((JoinSide::Left, l), (JoinSide::Right, r)) => (l, r, true),
        ((JoinSide::Right, r), (JoinSide::Left, l)) => (l, r, false),
        _ => return None,
    };
    Some((predicate, geometries))
}

impl fmt::Debug for SpatialJoinRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpatialJoinRule")
    }
}

/// A projection right above an inner KNN join that measures `ST_Distance(query, object)` of the
/// join's own geometry columns, in that order (SpatialBench's Q12), reads the distance the join
/// measured choosing the pair instead ([`KNN_DISTANCE`]): the same function of the same
/// geometries, so the same value, without decoding the object's geometry again for every pair
/// (Q12: 30M polygons) and measuring again.
fn reuse_knn_distances(node: Arc<dyn ExecutionPlan>) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
    let Some(projection) = node.downcast_ref::<ProjectionExec>() else { return Ok(Transformed::no(node)) };
    let Some(join) = projection.input().downcast_ref::<MeridianSpatialJoinExec>() else {
        return Ok(Transformed::no(node));
    };
    if !matches!(join.predicate, Predicate::Knn(_)) || join.join_type != JoinType::Inner || join.knn_distance
    {
        return Ok(Transformed::no(node));
    }
    // The join's output columns that are its geometry columns: the query's (probe, right)
    // and the object's (build, left).
    let n_build = join.left.schema().fields().len();
    let wanted: Vec<usize> = match &join.projection {
        Some(p) => p.clone(),
        None => (0..join.schema.fields().len()).collect(),
    };
    let outputs = |of: usize| -> Vec<usize> { (0..wanted.len()).filter(|&i| wanted[i] == of).collect() };
    let (query, object) = (outputs(n_build + join.right_geometry), outputs(join.left_geometry));
    let distance_column = join.schema.fields().len();
    let mut reused = false;
    let exprs = projection
        .expr()
        .iter()
        .map(|p| {
            let expr = p.expr.clone().transform_up(|e| {
                let Some(f) = e.downcast_ref::<ScalarFunctionExpr>() else { return Ok(Transformed::no(e)) };
                let column = |x: &Arc<dyn PhysicalExpr>| x.downcast_ref::<Column>().map(Column::index);
                let measures_pair = f.fun().name() == Function::Distance.name()
                    && matches!(f.args(), [q, o] if column(q).is_some_and(|i| query.contains(&i))
                        && column(o).is_some_and(|i| object.contains(&i)));
                if !measures_pair {
                    return Ok(Transformed::no(e));
                }
                reused = true;
                Ok(Transformed::yes(
                    Arc::new(Column::new(KNN_DISTANCE, distance_column)) as Arc<dyn PhysicalExpr>
                ))
            })?;
            Ok(ProjectionExpr { expr: expr.data, alias: p.alias.clone() })
        })
        .collect::<Result<Vec<_>>>()?;
    if !reused {
        return Ok(Transformed::no(node));
    }
    let join: Arc<dyn ExecutionPlan> = Arc::new(join.with_knn_distance()?);
    Ok(Transformed::yes(Arc::new(ProjectionExec::try_new(exprs, join)?)))
}

impl PhysicalOptimizerRule for SpatialJoinRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = plan
            .transform_up(|node| {
                let Some(nl) = node.downcast_ref::<NestedLoopJoinExec>() else {
                    return Ok(Transformed::no(node));
                };
                Ok(match self.rewrite(nl)? {
                    Some(join) => Transformed::yes(join),
                    None => Transformed::no(node),
                })
            })?
            .data;
        plan.transform_up(reuse_knn_distances).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "meridian_spatial_join"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    #[test]
    fn every_predicates_program_assembles_both_ways_round() {
        for p in [Predicate::Contains, Predicate::Within, Predicate::Intersects, Predicate::DWithin(0.5)] {
            for build_first in [true, false] {
                let text = p.program(build_first).unwrap();
                meridian_bytecode::assemble("j", &text).unwrap_or_else(|d| panic!("{p}: {d}\n{text}"));
            }
        }
        assert!(Predicate::Contains.program(true).unwrap().contains("contains b0, g1, g0"));
        assert!(Predicate::Contains.program(false).unwrap().contains("contains b0, g0, g1"));
        assert_eq!(Predicate::Knn(5).program(false), None);
        assert_eq!(Predicate::Intersects.to_string(), "ST_Intersects");
    }
}
