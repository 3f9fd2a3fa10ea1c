//! `meridian sql`: a query on a local DataFusion context with meridian registered, over
//! tables read from files, its result written as CSV or Parquet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::config::TableParquetOptions;
use datafusion::datasource::file_format::csv::CsvFormatFactory;
use datafusion::datasource::file_format::format_as_file_type;
use datafusion::datasource::file_format::parquet::ParquetFormatFactory;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::physical_plan::{collect, displayable, ExecutionPlan};
use datafusion::prelude::{CsvReadOptions, DataFrame, ParquetReadOptions, SessionContext};
use meridian_runtime::Engine;

/// A query and where its tables and result are.
#[derive(Clone, Debug)]
pub struct SqlArgs {
    /// The query.
    pub query: String,
    /// Tables: (name, file). `.parquet` (GeoParquet: geometry as WKB) or `.csv`.
    pub tables: Vec<(String, PathBuf)>,
    /// Where the result goes: `.parquet`, else CSV; `None`: printed.
    pub out: Option<PathBuf>,
    /// Plan the query and stop: nothing runs, nothing is written.
    pub plan_only: bool,
}

/// What a query did.
#[derive(Debug)]
pub struct SqlReport {
    /// Rows of the result (0 when only planned).
    pub rows: usize,
    /// The physical plan, as DataFusion displays it.
    pub plan: String,
    /// Planning and running, writing included.
    pub took: Duration,
    /// The result as a table, when it was not written to a file.
    pub printed: Option<String>,
}

fn table_err(name: &str, path: &Path, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Plan(format!("table {name} ({}): {e}", path.display()))
}

/// Runs `args` on a new context with meridian registered, run by `engine`.
pub fn run(args: &SqlArgs, engine: Arc<Engine>) -> Result<SqlReport, DataFusionError> {
    run_with(args, engine, |_| {})
}

/// [`run`], handing the physical plan to `planned` once it is made and before anything runs
/// (so a query that runs for minutes shows its plan at once).
pub fn run_with(
    args: &SqlArgs,
    engine: Arc<Engine>,
    planned: impl FnOnce(&str),
) -> Result<SqlReport, DataFusionError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| DataFusionError::Execution(format!("starting the query's threads: {e}")))?;
    runtime.block_on(run_async(args, engine, planned))
}

async fn run_async(
    args: &SqlArgs,
    engine: Arc<Engine>,
    planned: impl FnOnce(&str),
) -> Result<SqlReport, DataFusionError> {
    let t = Instant::now();
    let mut config = datafusion::prelude::SessionConfig::new();
    // Filters (the query's, and the dynamic ones a TopK or a hash join makes as it runs)
    // evaluated as Parquet is decoded: the other columns of a row group are decoded only for
    // the rows that pass. SpatialBench at SF1: Q3 0.70 -> 0.44 s, Q1 0.62 -> 0.49, Q4 0.42 ->
    // 0.36, none slower (2026-12-07).
    config.options_mut().execution.parquet.pushdown_filters = true;
    let ctx = SessionContext::new_with_config(config);
    crate::register(&ctx, engine);
    // Full sorts on fixed-width keys in one pass over normalised keys (SpatialBench's Q7);
    // a top-k's scan reading every row group's head first (Q4).
    {
        let state = ctx.state_ref();
        let mut state = state.write();
        *state = datafusion::execution::session_state::SessionStateBuilder::new_from_existing(state.clone())
            .with_physical_optimizer_rule(Arc::new(crate::KeySortRule))
            .with_physical_optimizer_rule(Arc::new(crate::scan_head::ScanHeadRule))
            .build();
    }
    for (name, path) in &args.tables {
        let file = path.to_str().ok_or_else(|| table_err(name, path, "the path is not UTF-8"))?;
        if !path.is_file() {
            return Err(table_err(name, path, "no such file"));
        }
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("parquet") => ctx.register_parquet(name, file, ParquetReadOptions::default()).await,
            Some("csv") => ctx.register_csv(name, file, CsvReadOptions::new()).await,
            _ => return Err(table_err(name, path, "not a .parquet or .csv file")),
        }
        .map_err(|e| table_err(name, path, e))?;
    }
    let df = ctx.sql(&args.query).await?;
    // Planned once: what is printed is what runs (`DataFrame::write_parquet` and `collect`
    // would each plan the query again: 5 to 10 ms, of queries that take 15 ms to a second).
    let plan_of =
        |physical: &Arc<dyn ExecutionPlan>| displayable(physical.as_ref()).indent(false).to_string();
    if args.plan_only {
        let plan = plan_of(&df.create_physical_plan().await?);
        planned(&plan);
        return Ok(SqlReport { rows: 0, plan, took: t.elapsed(), printed: None });
    }
    let (rows, plan, printed) = match &args.out {
        Some(out) => {
            if let Some((name, _)) = args.tables.iter().find(|(_, p)| meridian_kernels::io::same_file(out, p))
            {
                return Err(DataFusionError::Plan(format!(
                    "{}: the output is table {name}'s file; refusing to replace an input",
                    out.display()
                )));
            }
            // Written beside the output and renamed over it once whole: a failed query leaves
            // the old file.
            let written_to =
                |e: std::io::Error| DataFusionError::Execution(format!("{}: {e}", out.display()));
            let temp = meridian_kernels::io::TempPath::beside(out).map_err(written_to)?;
            let file = temp
                .path()
                .to_str()
                .ok_or_else(|| DataFusionError::Plan("the output path is not UTF-8".into()))?
                .to_owned();
            let format: Arc<dyn FileFormatFactory> = match out.extension().and_then(|e| e.to_str()) {
                Some(e) if e.eq_ignore_ascii_case("parquet") => {
                    // Snappy, as `meridian run` writes Parquet (and pyarrow by default):
                    // DataFusion's default, zstd, took a sixth of a 6M-row query's time.
                    let mut parquet = TableParquetOptions::default();
                    parquet.global.compression = Some("snappy".to_owned());
                    // A column chunk gives up its dictionary once it holds 256 KiB (DataFusion's
                    // default, 1 MiB, hashed 131k values of every unique f64 column before
                    // giving up: 8% of Q7's CPU).
                    parquet.global.dictionary_page_size_limit = 256 * 1024;
                    Arc::new(ParquetFormatFactory::new_with_options(parquet))
                }
                _ => Arc::new(CsvFormatFactory::new()),
            };
            // `DataFrame::write_parquet`'s plan (a copy to one file), made here to be planned once.
            let (state, query) = df.into_parts();
            let single_file = HashMap::from([("single_file_output".to_owned(), "true".to_owned())]);
            let copy =
                LogicalPlanBuilder::copy_to(query, file, format_as_file_type(format), single_file, vec![])?
                    .build()?;
            let df = DataFrame::new(state, copy);
            let physical = df.create_physical_plan().await?;
            let plan = plan_of(&physical);
            planned(&plan);
            let written = collect(physical, Arc::new(df.task_ctx())).await?;
            temp.commit().map_err(written_to)?;
            (count(&written), plan, None)
        }
        None => {
            let physical = df.create_physical_plan().await?;
            let plan = plan_of(&physical);
            planned(&plan);
            let batches = collect(physical, Arc::new(df.task_ctx())).await?;
            let rows = batches.iter().map(|b| b.num_rows()).sum();
            let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)?.to_string();
            (rows, plan, Some(text))
        }
    };
    Ok(SqlReport { rows, plan, took: t.elapsed(), printed })
}

/// Rows written, from the writers' `count` batch.
fn count(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> usize {
    batches
        .iter()
        .filter_map(|b| b.column(0).as_any().downcast_ref::<arrow_array::UInt64Array>())
        .flat_map(|a| a.iter().flatten())
        .sum::<u64>() as usize
}
