//! `meridian_run(program, bindings…)`: any meridian program over registered tables, as a
//! table function.
//!
//! ```sql
//! SELECT * FROM meridian_run('benches/pip_count.masm', 'points=cities', 'zones=countries')
//! SELECT * FROM meridian_run('area.masm', 'shapes=countries.geom', 'area')
//! ```
//!
//! The first argument is a program file (`.masm` assembly, or `.mbc` bytecode). Each
//! `'input=table'` binds one of the program's inputs to a table's geometry column (its only
//! one, or the one named by `table.column`); every input is bound once. A last argument
//! without `=` names the output to return, which may be left out when the program has one.
//! The result is the output's table, as `meridian run --out` writes it: a per-row output one
//! column of the row-source table's length (nulls where no row stored), hits `row, id`, a
//! count or a sum one `value` row.
//!
//! The program is read and checked when the query is planned (a bad file, an unknown input
//! or output is a planning error); the tables are read and the program run by the engine
//! when the query runs.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{plan_err, Result, ScalarValue, TableReference};
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    collect_partitioned, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
    SendableRecordBatchStream,
};
use meridian_bytecode::{OutputKind, Program};
use meridian_kernels::interp::{Input, OutputBuffers};
use meridian_kernels::io::output_table;
use meridian_runtime::{Engine, Prepared};

use crate::geometry;

/// The table function `meridian_run`, run by `engine`.
pub struct RunFunction {
    engine: Arc<Engine>,
}

impl fmt::Debug for RunFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RunFunction")
    }
}

impl RunFunction {
    /// Its SQL name.
    pub const NAME: &'static str = "meridian_run";

    /// The function, with programs run by `engine`.
    pub fn new(engine: Arc<Engine>) -> RunFunction {
        RunFunction { engine }
    }
}

fn err(what: impl fmt::Display) -> DataFusionError {
    DataFusionError::Plan(format!("meridian_run: {what}"))
}

/// The program a prepared one was made from.
fn source(p: &Prepared) -> &Program {
    p.program().program()
}

/// Reads and prepares the program at `path` (bytecode or assembly, as `meridian run` reads it).
fn load(engine: &Engine, path: &str) -> Result<Prepared> {
    let program = meridian_bytecode::load(Path::new(path)).map_err(|e| err(e.to_string()))?;
    engine.prepare(program.program()).map_err(|e| err(format!("{path}: {e}")))
}

/// One input's table and column (`None`: the table's only geometry column).
#[derive(Clone, Debug)]
struct Binding {
    input: String,
    table: String,
    column: Option<String>,
}

fn string_arg(i: usize, e: &Expr) -> Result<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Ok(s.clone()),
        other => Err(err(format!("argument {} is {other}, not a string literal", i + 1))),
    }
}

impl TableFunctionImpl for RunFunction {
    fn call_with_args(&self, args: TableFunctionArgs<'_, '_>) -> Result<Arc<dyn TableProvider>> {
        let args =
            args.exprs().iter().enumerate().map(|(i, e)| string_arg(i, e)).collect::<Result<Vec<_>>>()?;
        let Some((path, rest)) = args.split_first() else {
            return Err(err("give the program file, then 'input=table' for each of its inputs"));
        };
        let program = load(&self.engine, path)?;
        let declared = source(&program).inputs();
        let mut bindings: Vec<Option<Binding>> = vec![None; declared.len()];
        let mut output = None;
        for arg in rest {
            let Some((input, source)) = arg.split_once('=') else {
                if output.replace(arg.clone()).is_some() {
                    return Err(err(format!("two outputs named ('{arg}' and another): give one")));
                }
                continue;
            };
            let Some(i) = declared.iter().position(|d| d.name == input.trim()) else {
                let names: Vec<_> = declared.iter().map(|d| d.name.as_str()).collect();
                return Err(err(format!(
                    "{path} has no input '{}' (its inputs: {})",
                    input.trim(),
                    names.join(", ")
                )));
            };
            let (table, column) = match source.trim().rsplit_once('.') {
                Some((t, c)) => (t.to_owned(), Some(c.to_owned())),
                None => (source.trim().to_owned(), None),
            };
            if bindings[i].replace(Binding { input: input.trim().to_owned(), table, column }).is_some() {
                return Err(err(format!("input '{}' is bound twice", input.trim())));
            }
        }
        let bindings = bindings
            .into_iter()
            .zip(declared)
            .map(|(b, d)| {
                b.ok_or_else(|| {
                    err(format!("input '{}' of {path} is not bound: add '{}=table'", d.name, d.name))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let outputs = source(&program).outputs();
        let chosen = match &output {
            Some(name) => outputs.iter().find(|o| &o.name == name),
            None if outputs.len() == 1 => outputs.first(),
            None => None,
        };
        let Some(chosen) = chosen else {
            let names: Vec<_> = outputs.iter().map(|o| o.name.as_str()).collect();
            return Err(err(match output {
                Some(name) => format!("{path} has no output '{name}' (its outputs: {})", names.join(", ")),
                None => format!("{path} has outputs {}: name the one to return", names.join(", ")),
            }));
        };
        let (output, schema) = (chosen.name.clone(), output_schema(&chosen.name, chosen.kind)?);
        Ok(Arc::new(RunTable { engine: self.engine.clone(), program, bindings, output, schema }))
    }
}

/// The table an output of `kind` makes, as [`output_table`] makes it.
fn output_schema(name: &str, kind: OutputKind) -> Result<SchemaRef> {
    let empty = OutputBuffers::new(&[kind], 0..0, 0).into_columns().map_err(|e| err(e.to_string()))?;
    let Some(column) = empty.first() else { return Err(err("an output made no column")) };
    let (batch, _) = output_table(name, column).map_err(err)?;
    Ok(batch.schema())
}

/// A program's output over bound tables.
struct RunTable {
    engine: Arc<Engine>,
    program: Prepared,
    bindings: Vec<Binding>,
    output: String,
    schema: SchemaRef,
}

impl fmt::Debug for RunTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunTable").field("program", &source(&self.program).name()).finish()
    }
}

/// The index of `table`'s geometry column for `b`.
fn geometry_column(b: &Binding, schema: &SchemaRef) -> Result<usize> {
    if let Some(name) = &b.column {
        let i = schema.index_of(name).map_err(|_| err(format!("table {} has no column {name}", b.table)))?;
        geometry::encoding(schema.field(i)).map_err(|e| err(format!("{}.{name}: {e}", b.table)))?;
        return Ok(i);
    }
    let geometric: Vec<usize> =
        (0..schema.fields().len()).filter(|&i| geometry::encoding(schema.field(i)).is_ok()).collect();
    match geometric[..] {
        [i] => Ok(i),
        [] => Err(err(format!("table {} has no geometry column (bound to input {})", b.table, b.input))),
        _ => {
            let names: Vec<_> = geometric.iter().map(|&i| schema.field(i).name().as_str()).collect();
            Err(err(format!(
                "table {} has geometry columns {}: bind one as '{}={}.column'",
                b.table,
                names.join(", "),
                b.input,
                b.table
            )))
        }
    }
}

#[async_trait::async_trait]
impl TableProvider for RunTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(session) = state.as_any().downcast_ref::<SessionState>() else {
            return plan_err!("meridian_run: the session is not DataFusion's SessionState");
        };
        // A hit's or a per-row output's row is the row source's position in its table, so
        // every input is scanned as one partition, in the table's order (files in order, rows
        // in order), as `meridian run` reads a file.
        let config = session.config().clone().with_target_partitions(1);
        let in_order = SessionStateBuilder::new_from_existing(session.clone()).with_config(config).build();
        let mut inputs = Vec::with_capacity(self.bindings.len());
        for b in &self.bindings {
            let reference = TableReference::from(b.table.as_str());
            let provider = session
                .schema_for_ref(reference.clone())?
                .table(reference.table())
                .await?
                .ok_or_else(|| err(format!("no table {} (bound to input {})", b.table, b.input)))?;
            let column = geometry_column(b, &provider.schema())?;
            let plan = provider.scan(&in_order, Some(&vec![column]), &[], None).await?;
            inputs.push(plan);
        }
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        Ok(Arc::new(RunExec {
            engine: self.engine.clone(),
            program: self.program.clone(),
            bindings: self.bindings.clone(),
            output: self.output.clone(),
            projection: projection.cloned(),
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(schema.clone()),
                Partitioning::UnknownPartitioning(1),
                EmissionType::Final,
                Boundedness::Bounded,
            )),
            schema,
            inputs,
        }))
    }
}

/// Runs the program over its inputs' tables (each collected whole), returning one output.
#[derive(Clone)]
struct RunExec {
    engine: Arc<Engine>,
    program: Prepared,
    bindings: Vec<Binding>,
    output: String,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    /// One scan an input, each producing the bound geometry column alone, in table order
    /// (not children: see `children`).
    inputs: Vec<Arc<dyn ExecutionPlan>>,
}

impl fmt::Debug for RunExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeridianRunExec").field("program", &source(&self.program).name()).finish()
    }
}

impl DisplayAs for RunExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bound: Vec<_> = self.bindings.iter().map(|b| format!("{}={}", b.input, b.table)).collect();
        write!(
            f,
            "MeridianRunExec: {} ({}) -> {}",
            source(&self.program).name(),
            bound.join(", "),
            self.output
        )
    }
}

impl RunExec {
    async fn run(&self, ctx: Arc<TaskContext>) -> Result<RecordBatch> {
        let declared = source(&self.program).inputs();
        let mut bound = Vec::with_capacity(self.inputs.len());
        for ((plan, b), decl) in self.inputs.iter().zip(&self.bindings).zip(declared) {
            let schema = plan.schema();
            // Partition by partition, in order (`collect` would merge them as they come).
            let batches: Vec<RecordBatch> =
                collect_partitioned(plan.clone(), ctx.clone()).await?.into_iter().flatten().collect();
            let batch = datafusion::arrow::compute::concat_batches(&schema, &batches)?;
            let field = schema.field(0);
            let encoding = geometry::encoding(field)?;
            let what = format!("input {} (table {}, column {})", b.input, b.table, field.name());
            let column = geometry::to_column(&what, batch.column(0).as_ref(), encoding)?;
            let input = if decl.indexed { Input::indexed(column) } else { Input::rows(column) };
            bound.push((b.input.as_str(), input));
        }
        let name = source(&self.program).name().to_owned();
        let job = self.engine.bind(&self.program, bound).map_err(|e| err(format!("{name}: {e}")))?;
        let result = self.engine.run(self.program.job(&job)).map_err(|e| err(format!("{name}: {e}")))?;
        let Some(column) = result.get(&self.output) else {
            return Err(err(format!("{name} returned no output {}", self.output)));
        };
        let (batch, _) = output_table(&self.output, column).map_err(err)?;
        match &self.projection {
            Some(p) => Ok(batch.project(p)?),
            None => Ok(batch),
        }
    }
}

impl ExecutionPlan for RunExec {
    fn name(&self) -> &'static str {
        "MeridianRunExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    /// None: the inputs' scans are run by this node itself, outside the optimizer, which
    /// would split a scan into partitions for parallelism and so renumber its rows.
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
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
        if !children.is_empty() {
            return Err(DataFusionError::Internal(format!(
                "MeridianRunExec has no children, was given {}",
                children.len()
            )));
        }
        Ok(self)
    }

    #[allow(deprecated)] // still required by the trait; it delegates to replace_children
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, crate::recompute())
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "MeridianRunExec has one partition, not {partition}"
            )));
        }
        let this = self.clone();
        let once = futures::stream::once(async move { this.run(context).await });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), once)))
    }
}
