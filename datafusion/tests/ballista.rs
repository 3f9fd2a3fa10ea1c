//! meridian on a Ballista cluster on loopback — a scheduler and two executors in this
//! process, talking gRPC and Flight over TCP — against single-node DataFusion with meridian
//! registered: the same SQL over the same Parquet files gives the same rows. The stage plans
//! the scheduler sends the executors go through the codec, and the test counts the joins the
//! executors decoded, so a query that silently fell back to DataFusion's nested loop fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use ballista::prelude::SessionConfigExt;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SessionState, TaskContext};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use meridian_datafusion::codec::MeridianCodec;
use meridian_datafusion::MeridianSpatialJoinExec;
use meridian_kernels::column::GeometryColumn;
use meridian_kernels::io::{self, geoarrow, geoarrow::Encoding};
use meridian_runtime::{Engine, Mode};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data").join(name)
}

fn engine() -> Arc<Engine> {
    Arc::new(Engine::builder().mode(Mode::Cpu).workers(2).build().unwrap())
}

/// Writes `col` as Parquet files of `id` and WKB `geom` under `dir`, `files` of them, so the
/// probe side has a partition a file.
fn write_table(dir: &Path, col: &GeometryColumn, files: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let per = col.len().div_ceil(files);
    for (n, start) in (0..col.len()).step_by(per).enumerate() {
        let rows = start..(start + per).min(col.len());
        let (field, geom) = geoarrow::to_array(col, rows.clone(), "geom", Encoding::Wkb).unwrap();
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.map(|r| r as i64)));
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), field]));
        let batch = RecordBatch::try_new(schema.clone(), vec![ids, geom]).unwrap();
        let file = std::fs::File::create(dir.join(format!("part-{n}.parquet"))).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
}

/// The countries and the cities as Parquet tables under a fresh directory.
fn tables() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = io::read_text(&data("countries.geojson")).unwrap();
    let countries = io::read_geojson("countries.geojson", &text).unwrap().geometry;
    let cities =
        io::read_csv("cities.csv.gz", io::open(&data("cities.csv.gz")).unwrap(), &[]).unwrap().geometry;
    write_table(&dir.path().join("countries"), &countries, 2);
    write_table(&dir.path().join("cities"), &cities, 4);
    dir
}

/// meridian's codec, counting the joins it decodes: the executors' proof that the join ran
/// as meridian's node after crossing the wire.
#[derive(Debug)]
struct Counting {
    codec: MeridianCodec,
    joins: Arc<AtomicUsize>,
}

impl PhysicalExtensionCodec for Counting {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto: &dyn PhysicalProtoConverterExtension,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let plan = self.codec.try_decode(buf, inputs, ctx, proto)?;
        if plan.downcast_ref::<MeridianSpatialJoinExec>().is_some() {
            self.joins.fetch_add(1, Ordering::Relaxed);
        }
        Ok(plan)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto: &dyn PhysicalProtoConverterExtension,
    ) -> datafusion::error::Result<()> {
        self.codec.try_encode(node, buf, proto)
    }

    fn try_decode_udf(
        &self,
        name: &str,
        buf: &[u8],
    ) -> datafusion::error::Result<Arc<datafusion::logical_expr::ScalarUDF>> {
        self.codec.try_decode_udf(name, buf)
    }

    fn try_encode_udf(
        &self,
        node: &datafusion::logical_expr::ScalarUDF,
        buf: &mut Vec<u8>,
    ) -> datafusion::error::Result<()> {
        self.codec.try_encode_udf(node, buf)
    }
}

/// A Ballista session as `meridian_datafusion::ballista::session_state` makes it, with the
/// counting codec in place of meridian's.
fn counted_state(engine: Arc<Engine>, joins: Arc<AtomicUsize>) -> SessionState {
    let state = meridian_datafusion::ballista::session_state(engine.clone());
    let codec = Arc::new(Counting { codec: MeridianCodec::new(engine), joins });
    let config =
        state.config().clone().with_ballista_physical_extension_codec(codec).with_target_partitions(4);
    SessionStateBuilder::new_from_existing(state).with_config(config).build()
}

async fn connect(url: String) -> SchedulerGrpcClient<tonic::transport::Channel> {
    for _ in 0..100 {
        if let Ok(c) = SchedulerGrpcClient::connect(url.clone()).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the scheduler at {url} did not answer in 5 s")
}

/// A scheduler and two executors on loopback; the client's context.
async fn cluster(state: SessionState) -> SessionContext {
    let addr = ballista_scheduler::standalone::new_standalone_scheduler_from_state(&state).await.unwrap();
    for _ in 0..2 {
        let scheduler = connect(format!("http://localhost:{}", addr.port())).await;
        ballista_executor::new_standalone_executor_from_state(scheduler, 2, &state).await.unwrap();
    }
    meridian_datafusion::ballista::connect(&format!("df://localhost:{}", addr.port()), state).await.unwrap()
}

async fn register(ctx: &SessionContext, dir: &Path) {
    for name in ["countries", "cities"] {
        let path = format!("{}/", dir.join(name).display());
        ctx.register_parquet(name, &path, ParquetReadOptions::default()).await.unwrap();
    }
}

/// The query's rows as text, sorted (Ballista's partitions arrive in any order).
async fn rows(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let options = FormatOptions::default();
    let mut out = Vec::new();
    for b in &batches {
        let columns: Vec<_> =
            b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for row in 0..b.num_rows() {
            out.push(columns.iter().map(|f| f.value(row).to_string()).collect::<Vec<_>>().join("|"));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_loopback_cluster_runs_the_joins_as_meridian_and_equals_one_node() {
    let dir = tables();
    let joins = Arc::new(AtomicUsize::new(0));
    // The executors decode onto an engine of their own, as executors on other machines would.
    let remote = cluster(counted_state(engine(), joins.clone())).await;
    register(&remote, dir.path()).await;
    let local = SessionContext::new();
    meridian_datafusion::register(&local, engine());
    register(&local, dir.path()).await;

    let queries = [
        // Pairs, both sides' columns.
        "SELECT c.id AS country, p.id AS city FROM countries c JOIN cities p ON ST_Contains(c.geom, p.geom)",
        // Points per polygon: the join under an aggregate split across stages.
        "SELECT c.id, COUNT(*) AS n FROM countries c JOIN cities p ON ST_Within(p.geom, c.geom) GROUP BY c.id",
        // A distance join, its distance carried in the plan.
        "SELECT a.id, b.id FROM cities a JOIN cities b ON ST_DWithin(a.geom, b.geom, 0.05) WHERE a.id < 2000",
        // SpatialBench's Q10 shape: a left join (countries with no city kept, count 0), which
        // probes every city in one task; and a right join (cities at sea kept), probed per
        // partition.
        "SELECT c.id, COUNT(p.id) AS n FROM countries c LEFT JOIN cities p ON ST_Within(p.geom, c.geom) GROUP BY c.id",
        "SELECT c.id AS country, p.id AS city FROM countries c RIGHT JOIN cities p ON ST_Contains(c.geom, p.geom)",
        // Functions alone, sent to the executors by name through the codec.
        "SELECT id, ST_Area(geom) AS area, ST_Length(geom) AS perimeter FROM countries",
        // Conversions, constructors and the aggregate, as SpatialBench writes them.
        "SELECT id, ST_X(ST_GeomFromWKB(geom)) AS x, ST_Y(ST_GeomFromWKB(geom)) AS y, \
         ST_Length(ST_MakeLine(geom, ST_GeomFromText('POINT (0 0)'))) AS l FROM cities WHERE id < 500",
        "SELECT id % 7 AS k, ST_Area(ST_ConvexHull(ST_Collect(ARRAY_AGG(ST_GeomFromWKB(geom))))) AS a \
         FROM cities GROUP BY id % 7",
    ];
    for (i, sql) in queries.into_iter().enumerate() {
        let before = joins.load(Ordering::Relaxed);
        let (cluster_rows, one_node) = (rows(&remote, sql).await, rows(&local, sql).await);
        assert!(!one_node.is_empty(), "{sql}: no rows on one node");
        assert_eq!(cluster_rows.len(), one_node.len(), "{sql}: row counts differ");
        assert_eq!(cluster_rows, one_node, "{sql}: rows differ");
        let decoded = joins.load(Ordering::Relaxed) - before;
        if i < 5 {
            assert!(decoded > 0, "{sql}: no executor decoded a meridian join");
        }
    }
    // The containment join's pairs are the engine's own (the cities in some country).
    let pairs = rows(&local, queries[0]).await.len();
    assert!(pairs > 10_000, "only {pairs} city-in-country pairs");
    // The outer joins kept their unmatched rows: countries with no city, cities at sea.
    let counts = rows(&remote, queries[3]).await;
    assert!(counts.iter().any(|r| r.ends_with("|0")) && counts.len() == 177, "{counts:?}");
    let at_sea = rows(&remote, queries[4]).await.iter().filter(|r| r.starts_with('|')).count();
    assert!(at_sea > 10, "{at_sea} cities at sea");
}
