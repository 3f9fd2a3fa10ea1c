//! SQL through DataFusion with meridian registered, against meridian's engine run directly,
//! against DataFusion's own nested loop evaluating the same functions pair by pair, and
//! against GEOS (shapely) on the cities and 2M uniform points: the shipped cities and
//! countries, WKB and GeoArrow points, nulls and empties; and `meridian_run`, any program
//! over registered tables.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use meridian_kernels::column::{ColumnBuilder, GeometryColumn};
use meridian_kernels::interp::Input;
use meridian_kernels::io::{self, geoarrow, geoarrow::Encoding};
use meridian_runtime::{Engine, Mode};

fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data").join(name)
}

fn countries() -> (Arc<GeometryColumn>, Vec<Option<String>>) {
    let text = io::read_text(&data("countries.geojson")).unwrap();
    let t = io::read_geojson("countries.geojson", &text).unwrap();
    let names = (0..t.geometry.len()).map(|i| Some(format!("country {i}"))).collect();
    (Arc::new(t.geometry), names)
}

fn cities() -> Arc<GeometryColumn> {
    Arc::new(io::read_csv("cities.csv.gz", io::open(&data("cities.csv.gz")).unwrap(), &[]).unwrap().geometry)
}

/// A table of `id`, `name` and `geom` (encoded as `encoding`), in batches of `batch` rows.
fn table(col: &GeometryColumn, names: &[Option<String>], encoding: Encoding, batch: usize) -> Arc<MemTable> {
    let mut batches = Vec::new();
    let mut schema = None;
    for start in (0..col.len()).step_by(batch) {
        let rows = start..(start + batch).min(col.len());
        let (field, geom) = geoarrow::to_array(col, rows.clone(), "geom", encoding).unwrap();
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.clone().map(|r| r as i64)));
        let names: ArrayRef = Arc::new(StringArray::from_iter(names[rows].iter().cloned()));
        let s = Arc::new(Schema::new(vec![
            Field::new("id", arrow_schema::DataType::Int64, false),
            Field::new("name", arrow_schema::DataType::Utf8, true),
            field,
        ]));
        batches.push(RecordBatch::try_new(s.clone(), vec![ids, names, geom]).unwrap());
        schema = Some(s);
    }
    Arc::new(MemTable::try_new(schema.unwrap(), vec![batches]).unwrap())
}

fn engine() -> Arc<Engine> {
    Arc::new(Engine::builder().mode(Mode::Cpu).workers(2).build().unwrap())
}

fn context(engine: &Arc<Engine>, with_meridian_join: bool) -> SessionContext {
    let ctx = SessionContext::new();
    if with_meridian_join {
        meridian_datafusion::register(&ctx, engine.clone());
    } else {
        // The functions only: DataFusion's nested loop join evaluates them on every pair.
        for f in meridian_datafusion::Function::ALL {
            ctx.register_udf(meridian_datafusion::SpatialFunction::udf(f, engine.clone()));
        }
        for c in meridian_datafusion::Conversion::ALL {
            ctx.register_udf(meridian_datafusion::ConvertFunction::udf(c));
        }
    }
    ctx
}

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn plan(ctx: &SessionContext, sql: &str) -> String {
    let batches = rows(ctx, &format!("EXPLAIN {sql}")).await;
    let mut s = String::new();
    for b in &batches {
        let col = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        for v in col.iter().flatten() {
            s.push_str(v);
            s.push('\n');
        }
    }
    s
}

/// (a, b) id pairs of a two-column result, sorted.
fn pairs(batches: &[RecordBatch]) -> Vec<(i64, i64)> {
    let mut out = pairs_unsorted(batches);
    out.sort_unstable();
    out
}

/// The first two columns' (i64) pairs in the result's order.
fn pairs_unsorted(batches: &[RecordBatch]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for b in batches {
        let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let c = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        out.extend(a.iter().zip(c.iter()).map(|(x, y)| (x.unwrap(), y.unwrap())));
    }
    out
}

/// The pip join run by the engine directly: (country, city) pairs.
fn engine_pairs(engine: &Engine, zones: &Arc<GeometryColumn>, pts: &Arc<GeometryColumn>) -> Vec<(i64, i64)> {
    let program =
        meridian_bytecode::assemble("pip.masm", include_str!("../../examples/pip_join.masm")).unwrap();
    let p = engine.prepare(program.program()).unwrap();
    let b = engine
        .bind(&p, [("pts", Input::rows(pts.clone())), ("zones", Input::indexed(zones.clone()))])
        .unwrap();
    let r = engine.run(p.job(&b)).unwrap();
    let mut out: Vec<(i64, i64)> =
        r.hits("pairs").unwrap().iter().map(|&(row, id)| (i64::from(id), i64::from(row))).collect();
    out.sort_unstable();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contains_join_runs_on_meridian_and_equals_the_engine_and_the_nested_loop() {
    let engine = engine();
    let (zones, names) = countries();
    let pts = cities();
    let no_names: Vec<Option<String>> = vec![None; pts.len()];
    let want = engine_pairs(&engine, &zones, &pts);
    assert!(want.len() > 5_000, "{}", want.len());
    for encoding in [Encoding::Wkb, Encoding::Native(meridian_kernels::column::Family::Point)] {
        let ctx = context(&engine, true);
        ctx.register_table("countries", table(&zones, &names, Encoding::Wkb, 50)).unwrap();
        ctx.register_table("cities", table(&pts, &no_names, encoding, 4096)).unwrap();
        let sql = "SELECT c.id, p.id FROM countries c JOIN cities p ON ST_Contains(c.geom, p.geom)";
        let explained = plan(&ctx, sql).await;
        assert!(explained.contains("MeridianSpatialJoinExec: ST_Contains(left.#"), "{explained}");
        assert_eq!(pairs(&rows(&ctx, sql).await), want, "{encoding}");
        // The predicate written the other way round: the same pairs.
        let within = "SELECT c.id, p.id FROM countries c JOIN cities p ON ST_Within(p.geom, c.geom)";
        let explained = plan(&ctx, within).await;
        assert!(explained.contains("MeridianSpatialJoinExec: ST_Within(right.#"), "{explained}");
        assert_eq!(pairs(&rows(&ctx, within).await), want, "{encoding} within");
    }
    // DataFusion's own nested loop over the same functions, pair by pair (each pair decodes
    // its country's WKB again: 400 cities here): the same pairs.
    let nested = context(&engine, false);
    nested.register_table("countries", table(&zones, &names, Encoding::Wkb, 50)).unwrap();
    nested.register_table("cities", table(&pts, &no_names, Encoding::Wkb, 4096)).unwrap();
    let sql =
        "SELECT c.id, p.id FROM countries c JOIN cities p ON ST_Contains(c.geom, p.geom) WHERE p.id < 400";
    assert!(!plan(&nested, sql).await.contains("Meridian"));
    let few: Vec<(i64, i64)> = want.iter().copied().filter(|&(_, p)| p < 400).collect();
    assert!(few.len() > 100, "{}", few.len());
    assert_eq!(pairs(&rows(&nested, sql).await), few);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_per_country_group_the_join() {
    let engine = engine();
    let (zones, names) = countries();
    let pts = cities();
    let ctx = context(&engine, true);
    ctx.register_table("countries", table(&zones, &names, Encoding::Wkb, 64)).unwrap();
    ctx.register_table("cities", table(&pts, &vec![None; pts.len()], Encoding::Wkb, 4096)).unwrap();
    let batches = rows(
        &ctx,
        "SELECT c.id, count(*) AS n FROM countries c JOIN cities p ON ST_Intersects(c.geom, p.geom) GROUP BY c.id",
    )
    .await;
    let mut got = BTreeMap::new();
    for b in &batches {
        let id = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let n = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        for (id, n) in id.iter().zip(n.iter()) {
            got.insert(id.unwrap(), n.unwrap());
        }
    }
    let mut want = BTreeMap::new();
    for (c, _) in engine_pairs(&engine, &zones, &pts) {
        *want.entry(c).or_insert(0i64) += 1;
    }
    // Points on a border: intersects counts them where contains does not; here none lie
    // exactly on one, so the counts agree.
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dwithin_join_with_a_constant_distance_equals_the_nested_loop() {
    let engine = engine();
    let pts = cities();
    // The first 3,000 cities against themselves within half a degree.
    let mut b = ColumnBuilder::new();
    let view = pts.view();
    for r in 0..3_000 {
        let g = view.get(r).unwrap();
        let c = g.coords().next().unwrap();
        b.push_point(c.0, c.1).unwrap();
    }
    let some = Arc::new(b.finish());
    let names = vec![None; some.len()];
    let sql = "SELECT a.id, b.id FROM a JOIN b ON ST_DWithin(a.geom, b.geom, 0.5)";
    let mut results = Vec::new();
    for with in [true, false] {
        let ctx = context(&engine, with);
        ctx.register_table("a", table(&some, &names, Encoding::Wkb, 1000)).unwrap();
        ctx.register_table("b", table(&some, &names, Encoding::Wkb, 700)).unwrap();
        assert_eq!(plan(&ctx, sql).await.contains("MeridianSpatialJoinExec: ST_DWithin(d = 0.5)"), with);
        results.push(pairs(&rows(&ctx, sql).await));
    }
    assert!(results[0].len() > 3_000, "every city is near itself, and some near others");
    assert_eq!(results[0], results[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalar_functions_equal_the_engine_with_nulls_and_empties() {
    let engine = engine();
    // A square, a line, a point, a null, an empty polygon.
    let mut b = ColumnBuilder::new();
    b.push_polygon(&[&[(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0), (0.0, 0.0)]]).unwrap();
    b.push_line_string(&[(0.0, 0.0), (3.0, 4.0)]).unwrap();
    b.push_point(1.0, 1.0).unwrap();
    b.push_null();
    b.push_empty(meridian_kernels::column::Family::Polygon);
    let col = Arc::new(b.finish());
    let names = vec![None; col.len()];
    let ctx = context(&engine, true);
    ctx.register_table("g", table(&col, &names, Encoding::Wkb, 8)).unwrap();
    let batches = rows(
        &ctx,
        "SELECT ST_Area(geom), ST_Length(geom), ST_Contains(geom, ST_Centroid(geom)), \
         ST_Distance(geom, ST_Centroid(geom)), ST_DWithin(geom, geom, 0) FROM g ORDER BY id",
    )
    .await;
    let b = &batches[0];
    let f = |i: usize| -> Vec<Option<f64>> {
        b.column(i).as_any().downcast_ref::<Float64Array>().unwrap().iter().collect()
    };
    let t = |i: usize| -> Vec<Option<bool>> {
        b.column(i).as_any().downcast_ref::<BooleanArray>().unwrap().iter().collect()
    };
    assert_eq!(f(0)[..4], [Some(4.0), Some(0.0), Some(0.0), None]);
    assert_eq!(f(1)[..4], [Some(8.0), Some(5.0), Some(0.0), None]);
    // (A line contains its midpoint, its centroid.)
    assert_eq!(t(2)[..4], [Some(true), Some(true), Some(true), None]);
    assert_eq!(f(3)[0], Some(0.0));
    assert_eq!(t(4)[..4], [Some(true), Some(true), Some(true), None]);
    // The empty polygon: what meridian's kernels say of an empty, through SQL as through the
    // engine.
    let direct = |op: &str| -> String {
        let text = format!(".program e\n.input a geometry\n.output v f64\n    load g0, a\n    {op} f0, g0\n    store v, f0\n    halt\n");
        let p = engine.prepare(meridian_bytecode::assemble("e", &text).unwrap().program()).unwrap();
        let bound = engine.bind(&p, [("a", Input::rows(col.clone()))]).unwrap();
        let r = engine.run(p.job(&bound)).unwrap();
        format!("{:?}", r.f64("v").unwrap().get(4))
    };
    assert_eq!(format!("{:?}", f(0)[4]), direct("area"));
    assert_eq!(format!("{:?}", f(1)[4]), direct("length"));
    // A geometry that is not one: a clear error naming the function and the type.
    let err = ctx.sql("SELECT ST_Area(name) FROM g").await.map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("st_area argument 1") && err.contains("not a geometry"), "{err}");
    let err = ctx.sql("SELECT ST_DWithin(geom, geom) FROM g").await.map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("st_dwithin takes 3 arguments"), "{err}");
}

fn repo(path: &str) -> String {
    data(&format!("../{path}")).display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meridian_run_runs_any_program_over_registered_tables() {
    let engine = engine();
    let (zones, names) = countries();
    let pts = cities();
    let ctx = context(&engine, true);
    ctx.register_table("countries", table(&zones, &names, Encoding::Wkb, 50)).unwrap();
    ctx.register_table("cities", table(&pts, &vec![None; pts.len()], Encoding::Wkb, 4096)).unwrap();

    // A count: one `value` row, the engine's own pip join's size.
    let want = engine_pairs(&engine, &zones, &pts).len() as u64;
    let pip = repo("benches/pip_count.masm");
    let sql = format!("SELECT value FROM meridian_run('{pip}', 'pts=cities', 'zones=countries.geom')");
    let b = rows(&ctx, &sql).await;
    let got = b[0].column(0).as_any().downcast_ref::<arrow_array::UInt64Array>().unwrap().value(0);
    assert_eq!(got, want);
    assert!(plan(&ctx, &sql)
        .await
        .contains("MeridianRunExec: pip_count (pts=cities, zones=countries) -> pairs"));

    // Hits: `row, id`, the pairs themselves, usable in SQL.
    let pairs_sql = format!(
        "SELECT id AS country, row AS city FROM meridian_run('{}', 'zones=countries', 'pts=cities') ORDER BY 1, 2",
        repo("examples/pip_join.masm")
    );
    let got: Vec<(i64, i64)> = rows(&ctx, &pairs_sql)
        .await
        .iter()
        .flat_map(|b| {
            let c = b.column(0).as_any().downcast_ref::<arrow_array::UInt32Array>().unwrap().clone();
            let r = b.column(1).as_any().downcast_ref::<arrow_array::UInt64Array>().unwrap().clone();
            (0..b.num_rows()).map(move |i| (i64::from(c.value(i)), r.value(i) as i64)).collect::<Vec<_>>()
        })
        .collect();
    let want = engine_pairs(&engine, &zones, &pts);
    assert_eq!(got.len(), want.len(), "pairs");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!("pair {i}: {:?} vs the engine's {:?}", &got[i..i + 3], &want[i..i + 3]);
    }

    // A per-row output of a program with two: named; equal to ST_Area row for row.
    let measure = repo("examples/measure.masm");
    let areas =
        rows(&ctx, &format!("SELECT area FROM meridian_run('{measure}', 'shapes=countries', 'area')")).await;
    let by_sql = rows(&ctx, "SELECT ST_Area(geom) FROM countries ORDER BY id").await;
    let col = |bs: &[RecordBatch]| -> Vec<Option<f64>> {
        bs.iter()
            .flat_map(|b| {
                b.column(0).as_any().downcast_ref::<Float64Array>().unwrap().iter().collect::<Vec<_>>()
            })
            .collect()
    };
    assert_eq!(col(&areas), col(&by_sql));
    assert_eq!(col(&areas).len(), zones.len());

    // The same program as bytecode (`.mbc`): the same areas.
    let program =
        meridian_bytecode::assemble("measure", &std::fs::read_to_string(&measure).unwrap()).unwrap();
    let mbc = std::env::temp_dir().join(format!("meridian-measure-{}.mbc", std::process::id()));
    std::fs::write(&mbc, program.program().to_bytes()).unwrap();
    let sql = format!("SELECT area FROM meridian_run('{}', 'shapes=countries', 'area')", mbc.display());
    assert_eq!(col(&rows(&ctx, &sql).await), col(&by_sql));
    // Damaged bytecode: a planning error, not a panic.
    let mut bytes = program.program().to_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&mbc, bytes).unwrap();
    let e = ctx.sql(&sql).await.map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("meridian_run") && e.contains(".mbc"), "{e}");
    let _ = std::fs::remove_file(&mbc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meridian_run_refuses_bad_calls_with_what_is_wrong() {
    let engine = engine();
    let (zones, names) = countries();
    let ctx = context(&engine, true);
    ctx.register_table("countries", table(&zones, &names, Encoding::Wkb, 50)).unwrap();
    let measure = repo("examples/measure.masm");
    let pip = repo("benches/pip_count.masm");
    let bad = std::env::temp_dir().join(format!("meridian-bad-{}.masm", std::process::id()));
    std::fs::write(&bad, ".program bad\n.input a geometry\n    frobnicate g0\n").unwrap();
    let bad = bad.display().to_string();
    let cases = [
        ("SELECT * FROM meridian_run()".to_owned(), "give the program file"),
        ("SELECT * FROM meridian_run('/no/such/file.masm', 'a=countries')".to_owned(), "/no/such/file.masm"),
        (format!("SELECT * FROM meridian_run('{bad}', 'a=countries')"), "frobnicate"),
        (
            format!("SELECT * FROM meridian_run('{measure}', 'shapes=countries')"),
            "outputs area, length: name the one",
        ),
        (
            format!("SELECT * FROM meridian_run('{measure}', 'shapes=countries', 'volume')"),
            "no output 'volume'",
        ),
        (
            format!("SELECT * FROM meridian_run('{measure}', 'shape=countries', 'area')"),
            "no input 'shape' (its inputs: shapes)",
        ),
        (format!("SELECT * FROM meridian_run('{pip}', 'pts=countries')"), "input 'zones'"),
        (format!("SELECT * FROM meridian_run('{measure}', 'shapes=nowhere', 'area')"), "no table nowhere"),
        (
            format!("SELECT * FROM meridian_run('{measure}', 'shapes=countries.name', 'area')"),
            "countries.name",
        ),
        (format!("SELECT * FROM meridian_run('{measure}', 'shapes=countries', 42)"), "argument 3"),
    ];
    for (sql, want) in cases {
        let result = match ctx.sql(&sql).await {
            Ok(df) => df.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let e = result.expect_err(&sql).to_string();
        assert!(e.contains("meridian_run") && e.contains(want), "{sql}: {e}");
    }
}

/// GEOS's (country, point) pairs of the countries containing each point, through shapely's
/// STRtree: `None` (the test skips, saying so) without python3 and shapely, unless
/// `MERIDIAN_REQUIRE_SHAPELY` is set, as CI sets it.
fn shapely_pairs(zones: &GeometryColumn, pts: &[(f64, f64)]) -> Option<Vec<(i64, i64)>> {
    let dir = std::env::temp_dir().join(format!("meridian-geos-{}-{}", std::process::id(), pts.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let coords: Vec<u8> =
        pts.iter().flat_map(|&(x, y)| [x.to_le_bytes(), y.to_le_bytes()]).flatten().collect();
    std::fs::write(dir.join("points.f64"), coords).unwrap();
    std::fs::write(dir.join("zones.hex"), wkb_hex(zones)).unwrap();
    let script = "import sys, numpy as np, shapely\n\
        d = sys.argv[1]\n\
        pts = shapely.points(np.fromfile(d + '/points.f64', dtype='<f8').reshape(-1, 2))\n\
        zones = [shapely.from_wkb(bytes.fromhex(l)) for l in open(d + '/zones.hex').read().split()]\n\
        z, p = shapely.STRtree(pts).query(zones, predicate='contains')\n\
        np.stack([z, p], axis=1).astype('<i8').tofile(d + '/pairs.i64')\n";
    if !shapely(script, &dir) {
        return None;
    }
    let bytes = std::fs::read(dir.join("pairs.i64")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let v: Vec<i64> = bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
    let mut pairs: Vec<(i64, i64)> = v.chunks_exact(2).map(|c| (c[0], c[1])).collect();
    pairs.sort_unstable();
    Some(pairs)
}

/// Runs `script` with `dir` as its argument under python3 with shapely: false (the caller
/// skips, saying so) where there is none, unless `MERIDIAN_REQUIRE_SHAPELY` is set (CI).
fn shapely(script: &str, dir: &std::path::Path) -> bool {
    let out = std::process::Command::new("python3").args(["-c", script]).arg(dir).output();
    let required = std::env::var_os("MERIDIAN_REQUIRE_SHAPELY").is_some();
    match out {
        Ok(o) if o.status.success() => true,
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            assert!(!required, "MERIDIAN_REQUIRE_SHAPELY is set and shapely did not run: {why}");
            println!(
                "skipped: no python3 with shapely (bash .ci/install-shapely): {}",
                why.lines().last().unwrap_or("")
            );
            false
        }
    }
}

/// Rows of WKB as hex, a line each (what the shapely scripts read).
fn wkb_hex(col: &GeometryColumn) -> String {
    let (_, wkb) = geoarrow::to_array(col, 0..col.len(), "g", Encoding::Wkb).unwrap();
    let wkb = wkb.as_any().downcast_ref::<arrow_array::BinaryArray>().unwrap();
    wkb.iter().map(|v| v.unwrap().iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n").collect()
}

/// `n` uniform points over the world (splitmix64), as meridian's generator makes them.
fn uniform(n: usize) -> Vec<(f64, f64)> {
    let mut s = 0x5eed_u64;
    let mut next = || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n).map(|_| (next() * 360.0 - 180.0, next() * 180.0 - 90.0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_pairs_and_counts_equal_meridian_run_and_geos_on_the_cities_and_2m_uniform_points() {
    let engine = engine();
    let (zones, names) = countries();
    let cities = cities();
    let city_xy: Vec<(f64, f64)> = (0..cities.len()).map(|i| cities.view().point(i).unwrap()).collect();
    for (what, xy) in [("cities", city_xy), ("2M uniform points", uniform(2_000_000))] {
        let mut b = ColumnBuilder::new();
        for &(x, y) in &xy {
            b.push_point(x, y).unwrap();
        }
        let pts = Arc::new(b.finish());
        let ctx = context(&engine, true);
        ctx.register_table("countries", table(&zones, &names, Encoding::Wkb, 64)).unwrap();
        ctx.register_table("pts", table(&pts, &vec![None; pts.len()], Encoding::Wkb, 1 << 16)).unwrap();
        let sql_pairs = pairs(
            &rows(&ctx, "SELECT c.id, p.id FROM countries c JOIN pts p ON ST_Contains(c.geom, p.geom)").await,
        );
        let run_pairs = engine_pairs(&engine, &zones, &pts);
        assert_eq!(sql_pairs, run_pairs, "{what}: SQL vs meridian run");
        // Counts per country, grouped by SQL.
        let counts = rows(
            &ctx,
            "SELECT c.id, COUNT(*) FROM countries c JOIN pts p ON ST_Within(p.geom, c.geom) GROUP BY c.id",
        )
        .await;
        let mut by_sql: Vec<(i64, i64)> = pairs(&counts);
        by_sql.sort_unstable();
        let mut by_run: BTreeMap<i64, i64> = BTreeMap::new();
        for &(c, _) in &run_pairs {
            *by_run.entry(c).or_default() += 1;
        }
        assert_eq!(by_sql, by_run.into_iter().collect::<Vec<_>>(), "{what}: counts");
        if let Some(geos) = shapely_pairs(&zones, &xy) {
            assert_eq!(sql_pairs.len(), geos.len(), "{what}: pairs, meridian vs GEOS");
            assert_eq!(sql_pairs, geos, "{what}: meridian vs GEOS");
            println!("{what}: {} pairs, equal to GEOS's", geos.len());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_follow_postgis_with_nulls_empties_and_errors_naming_the_row() {
    let engine = engine();
    // A point, a null, an empty point, a line.
    let mut b = ColumnBuilder::new();
    b.push_point(-111.761, 34.8697).unwrap();
    b.push_null();
    b.push_empty(meridian_kernels::column::Family::Point);
    b.push_line_string(&[(0.0, 0.0), (3.0, 4.0)]).unwrap();
    let col = Arc::new(b.finish());
    let names = vec![None; col.len()];
    let ctx = context(&engine, true);
    ctx.register_table("g", table(&col, &names, Encoding::Wkb, 8)).unwrap();
    let batches = rows(
        &ctx,
        "SELECT ST_X(ST_GeomFromWKB(geom)), ST_Y(ST_GeomFromWKB(geom)) FROM g WHERE id < 3 ORDER BY id",
    )
    .await;
    let f = |i: usize| -> Vec<Option<f64>> {
        batches[0].column(i).as_any().downcast_ref::<Float64Array>().unwrap().iter().collect()
    };
    assert_eq!(f(0), [Some(-111.761), None, None]);
    assert_eq!(f(1), [Some(34.8697), None, None]);
    let err = |sql: &str| {
        let ctx = ctx.clone();
        let sql = sql.to_owned();
        async move {
            match ctx.sql(&sql).await {
                Ok(df) => df.collect().await.map(|_| ()).unwrap_err().to_string(),
                Err(e) => e.to_string(),
            }
        }
    };
    let why = err("SELECT ST_X(geom) FROM g").await;
    assert!(why.contains("st_x: row 3 is a LINESTRING, not a point"), "{why}");
    let why = err("SELECT ST_GeomFromWKB(name) FROM g").await;
    assert!(why.contains("st_geomfromwkb: the argument is Utf8, not WKB"), "{why}");
    let why = err("SELECT ST_GeomFromText('POINT (1 2') FROM g").await;
    assert!(why.contains("st_geomfromtext argument, row 0: invalid WKT"), "{why}");
    // Text to WKB, read back by the other functions: the distance of the shipped point from
    // a literal one, and a literal polygon's area.
    let batches = rows(
        &ctx,
        "SELECT ST_Distance(ST_GeomFromWKB(geom), ST_GeomFromText('POINT (-111.761 35.8697)')), \
         ST_Area(ST_GeomFromText('POLYGON ((0 0, 2 0, 2 2, 0 2, 0 0))')) FROM g WHERE id = 0",
    )
    .await;
    let d = batches[0].column(0).as_any().downcast_ref::<Float64Array>().unwrap().value(0);
    let a = batches[0].column(1).as_any().downcast_ref::<Float64Array>().unwrap().value(0);
    assert!((d - 1.0).abs() < 1e-12 && a == 4.0, "{d} {a}");
    // SpatialBench's Q7: the length of the line from one point to another.
    let batches = rows(
        &ctx,
        "SELECT ST_Length(ST_MakeLine(ST_GeomFromWKB(geom), ST_GeomFromText('POINT (-108.761 38.8697)'))) \
         FROM g WHERE id = 0",
    )
    .await;
    let l = batches[0].column(0).as_any().downcast_ref::<Float64Array>().unwrap().value(0);
    assert!((l - 5.0).abs() < 1e-9, "{l}");
}

/// `ST_Length(ST_MakeLine(a, b))` runs as one function (`st_makeline_length`), bit for bit
/// what ST_Length gives of the lines ST_MakeLine made in an earlier query: points, multipoints
/// and lines, empties, nulls, in random pairs; and the same errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_length_of_a_made_line_is_fused_and_equals_the_line_measured() {
    made_line_lengths(false).await;
}

/// The same of two columns of points only (SpatialBench's trips: read straight from their
/// coordinates), empty points and nulls among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_length_of_a_line_of_two_point_columns_equals_the_line_measured() {
    made_line_lengths(true).await;
}

async fn made_line_lengths(points_only: bool) {
    let engine = engine();
    let ctx = context(&engine, true);
    let (mut a, mut b) = (ColumnBuilder::new(), ColumnBuilder::new());
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..2000 {
        for side in [&mut a, &mut b] {
            let (x, y) = (next() * 360.0 - 180.0, next() * 180.0 - 90.0);
            let kind = (i + usize::from(next() < 0.5)) % 7;
            match if points_only && (2..5).contains(&kind) { 5 } else { kind } {
                0 => side.push_null(),
                1 => side.push_empty(meridian_kernels::column::Family::Point),
                2 => side.push_line_string(&[(x, y), (x + next(), y - next()), (x - 3.0, y)]).unwrap(),
                3 => side
                    .push_parts(
                        meridian_kernels::column::Family::MultiPoint,
                        &[vec![vec![(x, y)]], vec![vec![(y / 2.0, x / 2.0)]]],
                    )
                    .unwrap(),
                4 => side.push_empty(meridian_kernels::column::Family::LineString),
                _ => side.push_point(x, y).unwrap(),
            }
        }
    }
    let (a, b) = (a.finish(), b.finish());
    let n = a.len();
    let (fa, arr_a) = geoarrow::to_array(&a, 0..n, "a", Encoding::Wkb).unwrap();
    let (fb, arr_b) = geoarrow::to_array(&b, 0..n, "b", Encoding::Wkb).unwrap();
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n as i64));
    let schema = Arc::new(Schema::new(vec![Field::new("id", arrow_schema::DataType::Int64, false), fa, fb]));
    let batch = RecordBatch::try_new(schema.clone(), vec![ids, arr_a, arr_b]).unwrap();
    ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())).unwrap();
    // Rows where one side is a lone point and the other empty make a one-coordinate line:
    // an error; they are left out of the comparison (table `bad`) and their error checked
    // apart.
    let fused =
        "SELECT id, ST_Length(ST_MakeLine(a, b)) FROM t WHERE id NOT IN (SELECT id FROM bad) ORDER BY id";
    // The lines, made by one query and measured by another.
    let mut bad = Vec::new();
    let mut lines = ColumnBuilder::new();
    let mut coords = Vec::new();
    for row in 0..n {
        let (Some(ga), Some(gb)) = (a.get(row), b.get(row)) else {
            lines.push_null();
            continue;
        };
        coords.clear();
        coords.extend(ga.coords().chain(gb.coords()));
        match coords.len() {
            1 => {
                bad.push(row as i64);
                lines.push_null();
            }
            0 => lines.push_empty(meridian_kernels::column::Family::LineString),
            _ => lines.push_line_string(&coords).unwrap(),
        }
    }
    assert!(bad.len() > 10 && bad.len() < n / 4, "{}", bad.len());
    let bad_ids: ArrayRef = Arc::new(Int64Array::from(bad.clone()));
    let bad_schema = Arc::new(Schema::new(vec![Field::new("id", arrow_schema::DataType::Int64, false)]));
    let bad_batch = RecordBatch::try_new(bad_schema.clone(), vec![bad_ids]).unwrap();
    ctx.register_table("bad", Arc::new(MemTable::try_new(bad_schema, vec![vec![bad_batch]]).unwrap()))
        .unwrap();
    let made = rows(
        &ctx,
        "SELECT id, ST_MakeLine(a, b) AS l FROM t WHERE id NOT IN (SELECT id FROM bad) ORDER BY id",
    )
    .await;
    let made_schema = made[0].schema();
    ctx.register_table("made", Arc::new(MemTable::try_new(made_schema, vec![made]).unwrap())).unwrap();
    let measured = floats(&rows(&ctx, "SELECT id, ST_Length(l) FROM made ORDER BY id").await, 1);
    let explained = plan(&ctx, fused).await;
    assert!(explained.contains("st_makeline_length"), "{explained}");
    let got = floats(&rows(&ctx, fused).await, 1);
    assert_eq!(got.len(), n - bad.len());
    let bits = |v: &[Option<f64>]| v.iter().map(|x| x.map(f64::to_bits)).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&measured));
    assert!(got.iter().filter(|v| v.is_none()).count() > 100 && got.contains(&Some(0.0)));
    // Errors: as ST_MakeLine's, naming it and the row.
    let err = |sql: String| {
        let ctx = ctx.clone();
        async move {
            match ctx.sql(&sql).await {
                Ok(df) => df.collect().await.map(|_| ()).unwrap_err().to_string(),
                Err(e) => e.to_string(),
            }
        }
    };
    let row = bad[0];
    let one = format!("SELECT ST_Length(ST_MakeLine(a, b)) FROM t WHERE id = {row}");
    let apart = format!("SELECT ST_MakeLine(a, b) FROM t WHERE id = {row}");
    let (why, want) = (err(one).await, err(apart).await);
    assert!(want.contains("st_makeline: row 0:"), "{want}");
    assert_eq!(why, want);
    let polygon = "ST_GeomFromText('POLYGON ((0 0, 1 0, 1 1, 0 0))')";
    let why = err(format!("SELECT ST_Length(ST_MakeLine(a, {polygon})) FROM t")).await;
    let want = err(format!("SELECT ST_MakeLine(a, {polygon}) FROM t")).await;
    assert!(want.contains("has a POLYGON, not a point or a line"), "{want}");
    assert_eq!(why, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spatialbench_joins_through_st_geomfromwkb_run_on_meridian() {
    let engine = engine();
    let (zones, names) = countries();
    let pts = cities();
    let no_names: Vec<Option<String>> = vec![None; pts.len()];
    let want = engine_pairs(&engine, &zones, &pts);
    let ctx = context(&engine, true);
    ctx.register_table("zone", table(&zones, &names, Encoding::Wkb, 50)).unwrap();
    ctx.register_table("trip", table(&pts, &no_names, Encoding::Wkb, 4096)).unwrap();
    // SpatialBench's Q4 shape: both sides wrapped in ST_GeomFromWKB, the point first.
    let sql = "SELECT z.id, t.id FROM zone z JOIN trip t \
               ON ST_Within(ST_GeomFromWKB(t.geom), ST_GeomFromWKB(z.geom))";
    let explained = plan(&ctx, sql).await;
    assert!(explained.contains("MeridianSpatialJoinExec: ST_Within(right.#"), "{explained}");
    assert_eq!(pairs(&rows(&ctx, sql).await), want);
    // One side wrapped, the other not; and a DWithin join (Q8's shape) of distance 0 against
    // the zones, which is the intersects join of points and polygons.
    let sql = "SELECT z.id, t.id FROM zone z JOIN trip t ON ST_Contains(z.geom, ST_GeomFromWKB(t.geom))";
    assert!(plan(&ctx, sql).await.contains("MeridianSpatialJoinExec"));
    assert_eq!(pairs(&rows(&ctx, sql).await), want);
    let sql = "SELECT z.id, t.id FROM trip t JOIN zone z \
               ON ST_DWithin(ST_GeomFromWKB(t.geom), ST_GeomFromWKB(z.geom), 0.0)";
    assert!(plan(&ctx, sql).await.contains("MeridianSpatialJoinExec"));
    let dwithin = pairs(&rows(&ctx, sql).await);
    let intersects = pairs(
        &rows(&ctx, "SELECT z.id, t.id FROM trip t JOIN zone z ON ST_Intersects(t.geom, z.geom)").await,
    );
    assert_eq!(dwithin, intersects);
    assert!(intersects.len() >= want.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spatial_join_with_other_conjuncts_and_a_chain_of_two_run_on_meridian() {
    let engine = engine();
    let (zones, names) = countries();
    let pts = cities();
    let n = pts.len();
    let want = engine_pairs(&engine, &zones, &pts);
    // Countries of each city.
    let mut of: Vec<Vec<i64>> = vec![Vec::new(); n];
    for &(z, t) in &want {
        of[t as usize].push(z);
    }
    let ctx = context(&engine, true);
    ctx.register_table("zone", table(&zones, &names, Encoding::Wkb, 50)).unwrap();
    // Trips: picked up at city i, dropped off at city (i * 7919) % n.
    let dropoff_of = |i: usize| (i * 7919) % n;
    let dropoffs: Vec<usize> = (0..n).map(dropoff_of).collect();
    let mut b = ColumnBuilder::new();
    for &d in &dropoffs {
        let g = pts.get(d).unwrap();
        let (x, y) = g.coords().next().unwrap();
        b.push_point(x, y).unwrap();
    }
    let dropoff_col = b.finish();
    let (pickup_field, pickup) = geoarrow::to_array(&pts, 0..n, "pickup", Encoding::Wkb).unwrap();
    let (dropoff_field, dropoff) = geoarrow::to_array(&dropoff_col, 0..n, "dropoff", Encoding::Wkb).unwrap();
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n as i64));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", arrow_schema::DataType::Int64, false),
        pickup_field,
        dropoff_field,
    ]));
    let batch = RecordBatch::try_new(schema.clone(), vec![ids, pickup, dropoff]).unwrap();
    ctx.register_table("trip", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())).unwrap();

    // A conjunct over both sides beside the spatial predicate: a filter on the join's pairs.
    let sql = "SELECT z.id, t.id FROM zone z JOIN trip t \
               ON ST_Within(ST_GeomFromWKB(t.pickup), ST_GeomFromWKB(z.geom)) AND z.id * 40 < t.id";
    let explained = plan(&ctx, sql).await;
    assert!(explained.contains("MeridianSpatialJoinExec") && explained.contains("FilterExec"), "{explained}");
    let few: Vec<(i64, i64)> = want.iter().copied().filter(|&(z, t)| z * 40 < t).collect();
    assert!(few.len() > 100 && few.len() < want.len(), "{}", few.len());
    assert_eq!(pairs(&rows(&ctx, sql).await), few);

    // SpatialBench's Q11: trips whose pickup and dropoff zones differ, two spatial joins.
    let sql = "SELECT COUNT(*) AS n FROM trip t \
               JOIN zone pickup_zone ON ST_Within(ST_GeomFromWKB(t.pickup), ST_GeomFromWKB(pickup_zone.geom)) \
               JOIN zone dropoff_zone ON ST_Within(ST_GeomFromWKB(t.dropoff), ST_GeomFromWKB(dropoff_zone.geom)) \
               WHERE pickup_zone.id != dropoff_zone.id";
    let explained = plan(&ctx, sql).await;
    assert_eq!(explained.matches("MeridianSpatialJoinExec").count(), 2, "{explained}");
    assert!(!explained.contains("NestedLoopJoinExec"), "{explained}");
    // Both joins index a zone table: the second's left input is the first join's output (no
    // row count known), so it is swapped to build on the zones it has on its right.
    let physical = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
    let builds = built_sides(&physical);
    assert_eq!(builds.len(), 2, "{explained}");
    for fields in &builds {
        let zone =
            fields.iter().any(|f| f == "geom") && !fields.iter().any(|f| f == "pickup" || f == "dropoff");
        assert!(zone, "a join builds on {fields:?}, not a zone table:\n{explained}");
    }
    let expected: i64 = (0..n)
        .map(|i| {
            let pairs = of[i].iter().flat_map(|a| of[dropoff_of(i)].iter().map(move |b| (a, b)));
            pairs.filter(|(a, b)| a != b).count() as i64
        })
        .sum();
    assert!(expected > 1000, "{expected}");
    let got = rows(&ctx, sql).await;
    let got = got[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
    assert_eq!(got, expected);
}

/// The column names of the built (indexed) input of every spatial join in `plan`.
fn built_sides(plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    if plan.downcast_ref::<meridian_datafusion::join::MeridianSpatialJoinExec>().is_some() {
        let build = plan.children()[0].schema();
        out.push(build.fields().iter().map(|f| f.name().clone()).collect());
    }
    for child in plan.children() {
        out.extend(built_sides(child));
    }
    out
}

/// The values of a Float64 column of a result, in order.
fn floats(batches: &[RecordBatch], col: usize) -> Vec<Option<f64>> {
    batches
        .iter()
        .flat_map(|b| {
            b.column(col).as_any().downcast_ref::<Float64Array>().unwrap().iter().collect::<Vec<_>>()
        })
        .collect()
}

/// A geometry column of a result (WKB), decoded.
fn geometries(batches: &[RecordBatch], col: usize) -> GeometryColumn {
    let mut b = ColumnBuilder::new();
    for batch in batches {
        geoarrow::append(&mut b, batch.column(col).as_ref(), Encoding::Wkb).unwrap();
    }
    b.finish()
}

/// A table of `cust` and `geom` (WKB).
fn grouped_table(groups: &[i64], col: &GeometryColumn, batch: usize) -> Arc<MemTable> {
    let mut batches = Vec::new();
    let mut schema = None;
    for start in (0..col.len()).step_by(batch) {
        let rows = start..(start + batch).min(col.len());
        let (field, geom) = geoarrow::to_array(col, rows.clone(), "geom", Encoding::Wkb).unwrap();
        let cust: ArrayRef = Arc::new(Int64Array::from_iter_values(groups[rows].iter().copied()));
        let s = Arc::new(Schema::new(vec![Field::new("cust", arrow_schema::DataType::Int64, false), field]));
        batches.push(RecordBatch::try_new(s.clone(), vec![cust, geom]).unwrap());
        schema = Some(s);
    }
    Arc::new(MemTable::try_new(schema.unwrap(), vec![batches]).unwrap())
}

/// SpatialBench's Q5 (`ST_Area(ST_ConvexHull(ST_Collect(ARRAY_AGG(g))))` by group, and
/// SedonaDB's `ST_Collect(g)`) and Q9 (`ST_Area(ST_Intersection(a, b))` over an intersects
/// self-join with `a.id < b.id`), against GEOS (shapely) on 300 groups of points with
/// degenerate ones (one point, one point repeated, collinear points, nulls) and on the
/// countries against boxes and rotated squares; families and errors as PostGIS's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convex_hulls_of_collected_groups_and_intersections_equal_geos() {
    let engine = engine();
    let ctx = context(&engine, true);
    let xy = uniform(6000);
    let mut next = xy.iter().copied();
    let (mut groups, mut b) = (Vec::new(), ColumnBuilder::new());
    for g in 0..300i64 {
        let n = match g % 6 {
            0 => 1,
            1 => 4,
            _ => 3 + (g as usize * 7) % 30,
        };
        for i in 0..n {
            let (x, y) = next.next().unwrap();
            groups.push(g);
            match g % 6 {
                1 => b.push_point(5.0, 5.0).unwrap(), // one point, four times
                2 => b.push_point(f64::from(i as u32), f64::from(2 * i as u32 + 1)).unwrap(), // collinear, exactly
                3 if i % 3 == 0 => b.push_null(), // nulls left out
                4 if i == 0 => b.push_empty(meridian_kernels::column::Family::Point), // empties too
                _ => b.push_point(x, y).unwrap(),
            }
        }
    }
    let pts = b.finish();
    ctx.register_table("trip", grouped_table(&groups, &pts, 97)).unwrap();
    let base = "SELECT cust, ST_Area(ST_ConvexHull(ST_Collect(ARRAY_AGG(ST_GeomFromWKB(geom))))) AS a, \
                ST_ConvexHull(ST_Collect(ARRAY_AGG(ST_GeomFromWKB(geom)))) AS h \
                FROM trip GROUP BY cust ORDER BY cust";
    let sedona = "SELECT cust, ST_Area(ST_ConvexHull(ST_Collect(ST_GeomFromWKB(geom)))) AS a, \
                  ST_ConvexHull(ST_Collect(geom)) AS h FROM trip GROUP BY cust ORDER BY cust";
    let (a, s) = (rows(&ctx, base).await, rows(&ctx, sedona).await);
    let areas = floats(&a, 1);
    assert_eq!(areas.len(), 300);
    assert_eq!(areas, floats(&s, 1), "ST_Collect(ARRAY_AGG(g)) and ST_Collect(g) agree");
    let hulls = geometries(&a, 2);
    use meridian_kernels::column::Family;
    for g in 0..300 {
        let hull = hulls.get(g).unwrap();
        let want = match g % 6 {
            0 | 1 => Family::Point,
            2 => Family::LineString,
            _ => Family::Polygon,
        };
        assert_eq!(hull.family(), want, "group {g}'s hull");
    }
    assert_eq!(hulls.get(1).unwrap().coords().collect::<Vec<_>>(), [(5.0, 5.0)]);
    // The groups' points as multipoints, for GEOS.
    let mut m = ColumnBuilder::new();
    for g in 0..300 {
        let coords: Vec<(f64, f64)> = (0..pts.len())
            .filter(|&r| groups[r] == g as i64)
            .filter_map(|r| pts.get(r))
            .flat_map(|p| p.coords().collect::<Vec<_>>())
            .collect();
        m.push_geometry(&geo_types::MultiPoint::from(coords)).unwrap();
    }
    let multis = m.finish();

    // Q9's shape over the countries and boxes, and the countries against rotated squares.
    let (zones, names) = countries();
    let mut shapes = ColumnBuilder::new();
    for (i, &(x, y)) in uniform(160).iter().enumerate() {
        let r = 3.0 + (i % 7) as f64 * 4.0;
        if i % 2 == 0 {
            shapes
                .push_polygon(&[&[(x, y), (x + r, y), (x + r, y + r / 2.0), (x, y + r / 2.0), (x, y)]])
                .unwrap();
        } else {
            let t = i as f64 * 0.37;
            let c: Vec<(f64, f64)> = (0..5)
                .map(|k| {
                    let a = t + f64::from(k % 4) * std::f64::consts::FRAC_PI_2;
                    (x + r * a.cos(), y + r * a.sin())
                })
                .collect();
            shapes.push_polygon(&[&c]).unwrap();
        }
    }
    let shapes = shapes.finish();
    let mut both = ColumnBuilder::new();
    for col in [&zones, &Arc::new(shapes)] {
        geoarrow::append(
            &mut both,
            geoarrow::to_array(col, 0..col.len(), "g", Encoding::Wkb).unwrap().1.as_ref(),
            Encoding::Wkb,
        )
        .unwrap();
    }
    let both = both.finish();
    let both_names = vec![None; both.len()];
    ctx.register_table("building", table(&both, &both_names, Encoding::Wkb, 64)).unwrap();
    let q9 = "SELECT b1.id, b2.id, ST_Area(ST_Intersection(b1.g, b2.g)) AS overlap \
              FROM (SELECT id, ST_GeomFromWKB(geom) AS g FROM building) b1 \
              JOIN (SELECT id, ST_GeomFromWKB(geom) AS g FROM building) b2 \
              ON b1.id < b2.id AND ST_Intersects(b1.g, b2.g) ORDER BY b1.id, b2.id";
    let q9 = rows(&ctx, q9).await;
    let ids = pairs(&q9);
    let overlaps = floats(&q9, 2);
    assert!(ids.len() > 150, "{} pairs", ids.len());
    let _ = names;

    let dir = std::env::temp_dir().join(format!("meridian-geos-overlay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("multis.hex"), wkb_hex(&multis)).unwrap();
    std::fs::write(dir.join("shapes.hex"), wkb_hex(&both)).unwrap();
    let idx: String = ids.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
    std::fs::write(dir.join("pairs.txt"), idx).unwrap();
    let script = "import sys, shapely\n\
        d = sys.argv[1]\n\
        read = lambda f: [shapely.from_wkb(bytes.fromhex(l)) for l in open(d + f).read().split()]\n\
        hulls = [shapely.convex_hull(m) for m in read('/multis.hex')]\n\
        open(d + '/hulls.txt', 'w').write(''.join(f'{h.area!r} {h.geom_type}\\n' for h in hulls))\n\
        s = read('/shapes.hex')\n\
        ps = [tuple(map(int, l.split())) for l in open(d + '/pairs.txt').read().splitlines()]\n\
        open(d + '/overlaps.txt', 'w').write(''.join(f'{shapely.intersection(s[a], s[b]).area!r}\\n' for a, b in ps))\n";
    if !shapely(script, &dir) {
        return;
    }
    let text = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    for (g, line) in text("hulls.txt").lines().enumerate() {
        let (area, kind) = line.split_once(' ').unwrap();
        let area: f64 = area.parse().unwrap();
        let got = areas[g].unwrap();
        assert!((got - area).abs() <= 1e-9 * area.max(1.0), "group {g}: hull area {got} vs GEOS {area}");
        assert_eq!(hulls.get(g).unwrap().family().wkt_name(), kind.to_uppercase(), "group {g}: hull family");
    }
    let geos: Vec<f64> = text("overlaps.txt").lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(geos.len(), overlaps.len());
    let mut worst = 0.0f64;
    for ((pair, got), want) in ids.iter().zip(&overlaps).zip(&geos) {
        let got = got.unwrap();
        let err = (got - want).abs() / want.max(1.0);
        worst = worst.max(err);
        assert!(err <= 1e-6, "{pair:?}: intersection area {got} vs GEOS {want}");
    }
    println!(
        "{} hulls and {} intersections equal GEOS's (worst relative area difference {worst:.1e})",
        300,
        geos.len()
    );
    let _ = std::fs::remove_dir_all(&dir);

    // Families and errors.
    let one = |sql: &str| {
        let (ctx, sql) = (ctx.clone(), sql.to_owned());
        async move {
            match ctx.sql(&sql).await {
                Ok(df) => df.collect().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    let wkt = |s: &str| format!("ST_GeomFromText('{s}')");
    let square = wkt("POLYGON ((0 0, 4 0, 4 4, 0 4, 0 0))");
    for (sql, family, empty) in [
        (format!("ST_Intersection({}, {square})", wkt("POINT (1 1)")), Family::Point, false),
        (format!("ST_Intersection({square}, {})", wkt("POINT (9 9)")), Family::Point, true),
        (format!("ST_Intersection({}, {square})", wkt("LINESTRING (-2 2, 6 2)")), Family::LineString, false),
        (
            format!("ST_Intersection({square}, {})", wkt("POLYGON ((8 8, 9 8, 9 9, 8 8))")),
            Family::Polygon,
            true,
        ),
        (format!("ST_Intersection({square}, {})", wkt("POLYGON EMPTY")), Family::Polygon, true),
        (format!("ST_ConvexHull({})", wkt("LINESTRING EMPTY")), Family::Polygon, true),
    ] {
        let got = one(&format!("SELECT {sql}")).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let g = geometries(&got, 0);
        let g = g.get(0).unwrap();
        assert_eq!((g.family(), g.is_empty()), (family, empty), "{sql}");
    }
    let got = one(&format!("SELECT ST_Length(ST_Intersection({}, {square}))", wkt("LINESTRING (-2 2, 6 2)")))
        .await
        .unwrap();
    assert_eq!(floats(&got, 0), [Some(4.0)]);
    let got = one("SELECT ST_ConvexHull(NULL), ST_Intersection(NULL, NULL)").await.unwrap();
    assert!(got[0].column(0).is_null(0) && got[0].column(1).is_null(0));
    let why = one(&format!(
        "SELECT ST_Intersection({}, {})",
        wkt("LINESTRING (0 0, 1 1)"),
        wkt("LINESTRING (0 1, 1 0)")
    ))
    .await
    .unwrap_err();
    assert!(
        why.contains(
            "st_intersection: row 0: the intersection of a LINESTRING and a LINESTRING is not computed"
        ),
        "{why}"
    );
    let why = one(&format!(
        "SELECT ST_Collect(g) FROM (VALUES ({}), ({})) AS v(g)",
        wkt("POINT (0 0)"),
        wkt("LINESTRING (0 0, 1 1)")
    ))
    .await
    .unwrap_err();
    assert!(why.contains("st_collect: a group mixes POINT and LINESTRING"), "{why}");
    let got = one("SELECT ST_Collect(g) FROM (VALUES (CAST(NULL AS BYTEA))) AS v(g)").await.unwrap();
    assert!(got[0].column(0).is_null(0), "a group of nulls only is null");
    // Groups aggregated in two partitions and merged (the state carries a group's empties):
    // empties only, the empty multi; a point beside an empty and a null, the point; nulls
    // only, null.
    let half = |rows: &[(i64, &str)]| {
        let values: Vec<String> = rows
            .iter()
            .map(|(k, g)| match *g {
                "NULL" => format!("({k}, CAST(NULL AS BYTEA))"),
                g => format!("({k}, {})", wkt(g)),
            })
            .collect();
        format!("SELECT * FROM (VALUES {}) AS v(k, g)", values.join(", "))
    };
    let sql = format!(
        "SELECT k, ST_Collect(g) AS c FROM ({} UNION ALL {}) GROUP BY k ORDER BY k",
        half(&[(1, "POLYGON EMPTY"), (2, "POINT (1 2)"), (3, "NULL")]),
        half(&[(1, "POLYGON EMPTY"), (2, "POINT EMPTY"), (2, "NULL"), (3, "NULL")])
    );
    let got = one(&sql).await.unwrap();
    let collected = geometries(&got, 1);
    let empty = collected.get(0).unwrap();
    assert!(empty.is_empty() && empty.family() == Family::MultiPolygon, "{:?}", empty.family());
    let point = collected.get(1).unwrap();
    assert_eq!((point.family(), point.coords().collect::<Vec<_>>()), (Family::MultiPoint, vec![(1.0, 2.0)]));
    assert!(collected.get(2).is_none(), "nulls only");
}

/// (a, b) pairs of a two-column result with nulls, sorted.
fn nullable_pairs(batches: &[RecordBatch]) -> Vec<(Option<i64>, Option<i64>)> {
    let mut out = Vec::new();
    for b in batches {
        let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let c = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        out.extend(a.iter().zip(c.iter()));
    }
    out.sort_unstable();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn left_and_right_spatial_joins_keep_unmatched_rows_as_the_nested_loop_does() {
    let engine = engine();
    let (zones, names) = countries();
    let pts = cities();
    let no_names: Vec<Option<String>> = vec![None; pts.len()];
    let (meridian, nested) = (context(&engine, true), context(&engine, false));
    // Every 4th country and about 2,000 cities, so DataFusion's nested loop (about 90,000
    // pairs, each decoding its country's WKB) stays quick; several partitions on the probe side.
    let every = pts.len() / 2000;
    for ctx in [&meridian, &nested] {
        ctx.register_table("zone_all", table(&zones, &names, Encoding::Wkb, 50)).unwrap();
        ctx.register_table("trip_all", table(&pts, &no_names, Encoding::Wkb, 300)).unwrap();
        rows(ctx, "CREATE VIEW zone AS SELECT * FROM zone_all WHERE id % 4 = 0").await;
        rows(ctx, &format!("CREATE VIEW trip AS SELECT * FROM trip_all WHERE id % {every} = 0")).await;
    }
    let cases = [
        // SpatialBench's Q10 join: zones with no trip kept.
        "SELECT z.id, t.id FROM zone z LEFT JOIN trip t \
         ON ST_Within(ST_GeomFromWKB(t.geom), ST_GeomFromWKB(z.geom))",
        // Trips in no zone kept.
        "SELECT z.id, t.id FROM zone z RIGHT JOIN trip t ON ST_Contains(z.geom, t.geom)",
        "SELECT z.id, t.id FROM trip t LEFT JOIN zone z ON ST_Intersects(t.geom, z.geom)",
        "SELECT z.id, t.id FROM trip t RIGHT JOIN zone z ON ST_DWithin(t.geom, z.geom, 0.5)",
    ];
    // DataFusion builds on the smaller side: a left join of trips to zones runs as a right
    // join of zones to trips. Both kinds run.
    let mut seen = std::collections::BTreeSet::new();
    for sql in cases {
        let explained = plan(&meridian, sql).await;
        assert!(
            explained.contains("MeridianSpatialJoinExec: left join on")
                || explained.contains("MeridianSpatialJoinExec: right join on"),
            "{sql}\n{explained}"
        );
        assert!(!explained.contains("NestedLoopJoinExec"), "{sql}\n{explained}");
        seen.extend(["left join on", "right join on"].into_iter().filter(|t| explained.contains(t)));
        let want = nullable_pairs(&rows(&nested, sql).await);
        let unmatched = want.iter().filter(|(z, t)| z.is_none() || t.is_none()).count();
        assert!(unmatched > 5 && want.len() - unmatched > 100, "{sql}: {unmatched} of {}", want.len());
        assert_eq!(nullable_pairs(&rows(&meridian, sql).await), want, "{sql}");
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    // No build row: an inner join is empty without reading its probe side; a right join keeps
    // every probe row.
    let none = "(SELECT * FROM zone WHERE id < 0)";
    let inner = format!("SELECT z.id, t.id FROM {none} z JOIN trip t ON ST_Contains(z.geom, t.geom)");
    let right = format!("SELECT z.id, t.id FROM {none} z RIGHT JOIN trip t ON ST_Contains(z.geom, t.geom)");
    for sql in [&inner, &right] {
        assert!(plan(&meridian, sql).await.contains("MeridianSpatialJoinExec"), "{sql}");
        assert_eq!(
            nullable_pairs(&rows(&meridian, sql).await),
            nullable_pairs(&rows(&nested, sql).await),
            "{sql}"
        );
    }
    assert!(rows(&meridian, &inner).await.iter().all(|b| b.num_rows() == 0));
    let kept: usize = rows(&meridian, &right).await.iter().map(|b| b.num_rows()).sum();
    assert_eq!(kept, pts.len().div_ceil(every));
    // Q10's shape whole: a count of trips per zone, zero where none.
    let sql = "SELECT z.id, COUNT(t.id) AS n FROM zone z LEFT JOIN trip t \
               ON ST_Within(ST_GeomFromWKB(t.geom), ST_GeomFromWKB(z.geom)) GROUP BY z.id ORDER BY z.id";
    let counts = |batches: Vec<RecordBatch>| nullable_pairs(&batches);
    let want = counts(rows(&nested, sql).await);
    assert_eq!(want.len(), zones.len().div_ceil(4));
    assert!(want.iter().any(|&(_, n)| n == Some(0)), "{want:?}");
    assert_eq!(counts(rows(&meridian, sql).await), want);
    // An outer join's other conjuncts decide which rows matched: it stays a nested loop.
    let sql =
        "SELECT z.id, t.id FROM zone z LEFT JOIN trip t ON ST_Contains(z.geom, t.geom) AND t.id > z.id * 40";
    assert!(plan(&meridian, sql).await.contains("NestedLoopJoinExec"));
    assert_eq!(nullable_pairs(&rows(&meridian, sql).await), nullable_pairs(&rows(&nested, sql).await));
}

/// (id, value) rows of a result whose second column is a bool, sorted by id.
fn id_bools(batches: &[RecordBatch]) -> Vec<(i64, Option<bool>)> {
    let mut out = Vec::new();
    for b in batches {
        let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let v = b.column(1).as_any().downcast_ref::<BooleanArray>().unwrap();
        out.extend(a.iter().map(Option::unwrap).zip(v.iter()));
    }
    out.sort_unstable();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_predicate_against_a_constant_or_a_scalar_subquery_equals_it_row_by_row() {
    let engine = engine();
    let (zones, names) = countries();
    let pts = cities();
    let no_names: Vec<Option<String>> = vec![None; pts.len()];
    // The country with the most cities.
    let all = engine_pairs(&engine, &zones, &pts);
    let mut per_zone = BTreeMap::new();
    for &(z, _) in &all {
        *per_zone.entry(z).or_insert(0usize) += 1;
    }
    let (&k, &most) = per_zone.iter().max_by_key(|(_, n)| **n).unwrap();
    assert!(most > 100, "{most}");
    let (meridian, nested) = (context(&engine, true), context(&engine, false));
    for ctx in [&meridian, &nested] {
        ctx.register_table("zone", table(&zones, &names, Encoding::Wkb, 50)).unwrap();
        ctx.register_table("trip_all", table(&pts, &no_names, Encoding::Wkb, 4096)).unwrap();
        // Every 100th geometry null.
        rows(ctx, "CREATE VIEW trip AS SELECT id, CASE WHEN id % 100 = 0 THEN NULL ELSE geom END AS geom FROM trip_all")
            .await;
    }
    let subquery = format!("(SELECT geom FROM zone WHERE id = {k} LIMIT 1)");
    let paris = "ST_GeomFromText('POINT (2.35 48.85)')";
    let square = "ST_GeomFromText('POLYGON ((0 40, 20 40, 20 60, 0 60, 0 40))')";
    // (the predicate over `t.geom` and the constant written `{c}`, the constant)
    let cases = [
        ("ST_Intersects(t.geom, {c})", subquery.as_str()),
        ("ST_Contains({c}, t.geom)", subquery.as_str()),
        ("ST_Within(t.geom, {c})", square),
        ("ST_Contains({c}, ST_GeomFromWKB(t.geom))", square),
        ("ST_DWithin({c}, t.geom, 3.0)", paris),
        ("ST_DWithin(t.geom, {c}, 0.0)", square),
    ];
    for (predicate, constant) in cases {
        let sql = format!("SELECT t.id, {} FROM trip t", predicate.replace("{c}", constant));
        // The constant as a column of a one-row table: evaluated row by row.
        let by_row = format!(
            "SELECT t.id, {} FROM trip t CROSS JOIN (SELECT {constant} AS k) z",
            predicate.replace("{c}", "z.k")
        );
        let want = id_bools(&rows(&nested, &by_row).await);
        let trues = want.iter().filter(|(_, v)| *v == Some(true)).count();
        assert!(trues > 20 && trues < pts.len() / 2, "{sql}: {trues}");
        assert_eq!(want.iter().filter(|(_, v)| v.is_none()).count(), pts.len().div_ceil(100));
        assert_eq!(id_bools(&rows(&meridian, &sql).await), want, "{sql}");
    }
    // SpatialBench's Q2 as written (a count through a scalar subquery); a null constant (no
    // such zone) is null for every row, an empty one false.
    let q2 = format!("SELECT COUNT(*) FROM trip t WHERE ST_Intersects(ST_GeomFromWKB(t.geom), {subquery})");
    let n = rows(&meridian, &q2).await;
    let n = n[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
    let want = all.iter().filter(|&&(z, t)| z == k && t % 100 != 0).count();
    assert_eq!(n as usize, want);
    for (constant, expect) in
        [("(SELECT geom FROM zone WHERE id = -1)", None), ("ST_GeomFromText('POLYGON EMPTY')", Some(false))]
    {
        let sql = format!("SELECT t.id, ST_Intersects(t.geom, {constant}) FROM trip t");
        let got = id_bools(&rows(&meridian, &sql).await);
        assert_eq!(got.len(), pts.len());
        for (id, v) in got {
            let want = if id % 100 == 0 { None } else { expect };
            assert_eq!(v, want, "{constant}: row {id}");
        }
    }
}

/// `ST_DWithin`, `ST_Intersects`, `ST_Contains` and `ST_Within` of a column of points and a
/// constant read the WKB in place (Q1's filter, of a point; Q2's and Q3's, of a polygon): the
/// same answers as the engine's program row by row, on a lattice where many points lie exactly
/// at the distance or on a boundary, with nulls, empties, empty constants, constants of every
/// family and both argument orders; a column that is not all points (the countries) takes the
/// program.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predicates_of_points_and_a_constant_equal_them_row_by_row() {
    let engine = engine();
    let mut b = ColumnBuilder::new();
    for i in 0..17 * 17 {
        match i % 23 {
            5 => b.push_null(),
            11 => b.push_empty(meridian_kernels::column::Family::Point),
            _ => b.push_point(f64::from(i % 17) / 2.0 - 4.0, f64::from(i / 17) / 2.0 - 4.0).unwrap(),
        }
    }
    let lattice = b.finish();
    let (zones, names) = countries();
    let (meridian, nested) = (context(&engine, true), context(&engine, false));
    for ctx in [&meridian, &nested] {
        ctx.register_table("p", table(&lattice, &vec![None; lattice.len()], Encoding::Wkb, 64)).unwrap();
        ctx.register_table("zone", table(&zones, &names, Encoding::Wkb, 50)).unwrap();
    }
    let cases = [
        ("p", "POINT (0 0)", "1.0", 4),
        ("p", "POINT (0 0)", "2.5", 12),
        ("p", "POINT (0.5 -1)", "1.5", 8),
        ("p", "POINT (0 0)", "0.0", 1),
        ("p", "POINT EMPTY", "1.0", 0),
        ("zone", "POINT (2.35 48.85)", "3.0", 1),
        // Constants that are not points: the points still read in place (a point in the hole
        // lies exactly 0.5 from its ring, one on a ring at 0).
        ("p", "POLYGON ((-2 -2, 2 -2, 2 2, -2 2, -2 -2), (-1 -1, 1 -1, 1 1, -1 1, -1 -1))", "0.5", 60),
        ("p", "POLYGON ((-2 -2, 2 -2, 2 2, -2 2, -2 -2), (-1 -1, 1 -1, 1 1, -1 1, -1 -1))", "0.0", 50),
        ("p", "MULTIPOLYGON (((0 0, 1 0, 1 1, 0 1, 0 0)), ((3 3, 4 3, 4 4, 3 4, 3 3)))", "1.0", 20),
        ("p", "LINESTRING (-3 -3, 3 3, 3 -1)", "1.0", 30),
        ("p", "MULTIPOINT ((0 0), (2 2))", "1.0", 8),
        ("p", "POLYGON EMPTY", "1.0", 0),
        ("zone", "POLYGON ((0 40, 10 40, 10 50, 0 50, 0 40))", "1.0", 1),
    ];
    let mut other_trues = 0;
    for (t, wkt, d, at_least) in cases {
        let dwithin = [format!("ST_DWithin(t.geom, {{c}}, {d})"), format!("ST_DWithin({{c}}, t.geom, {d})")];
        // The other predicates of points and a constant (read in place too, but for a point
        // containing the constant, which takes the program).
        let others = ["ST_Intersects(t.geom, {c})", "ST_Intersects({c}, t.geom)", "ST_Contains({c}, t.geom)"]
            .into_iter()
            .chain(["ST_Within(t.geom, {c})", "ST_Contains(t.geom, {c})", "ST_Within({c}, t.geom)"])
            .map(String::from);
        for (k, predicate) in dwithin.into_iter().chain(others).enumerate() {
            let constant = format!("ST_GeomFromText('{wkt}')");
            let sql = format!("SELECT t.id, {} FROM {t} t", predicate.replace("{c}", &constant));
            let by_row = format!(
                "SELECT t.id, {} FROM {t} t CROSS JOIN (SELECT {constant} AS k) z",
                predicate.replace("{c}", "z.k")
            );
            let mut want = id_bools(&rows(&nested, &by_row).await);
            let mut got = id_bools(&rows(&meridian, &sql).await);
            want.sort_unstable();
            got.sort_unstable();
            let trues = want.iter().filter(|(_, v)| *v == Some(true)).count();
            if k < 2 {
                assert!(trues >= at_least, "{sql}: {trues}");
            } else {
                other_trues += trues;
            }
            assert_eq!(got, want, "{sql}");
        }
    }
    assert!(other_trues > 200, "{other_trues}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knn_join_equals_ranking_every_pair_by_distance() {
    let engine = engine();
    let (zones, names) = countries();
    let pts = cities();
    let no_names: Vec<Option<String>> = vec![None; pts.len()];
    let (meridian, nested) = (context(&engine, true), context(&engine, false));
    let every = pts.len() / 600;
    for ctx in [&meridian, &nested] {
        ctx.register_table("zone", table(&zones, &names, Encoding::Wkb, 50)).unwrap();
        ctx.register_table("trip_all", table(&pts, &no_names, Encoding::Wkb, 200)).unwrap();
        rows(ctx, &format!("CREATE VIEW trip AS SELECT * FROM trip_all WHERE id % {every} = 0")).await;
        // Fewer trips than zones: DataFusion puts the query side on the left.
        rows(ctx, "CREATE VIEW few AS SELECT * FROM trip_all WHERE id % 997 = 0 AND id < 50000").await;
    }
    // The oracle: every (trip, zone) pair measured by ST_Distance and ranked, nearest first.
    let ranked = |queries: &str, k: usize| {
        format!(
            "SELECT qid, oid FROM (SELECT t.id AS qid, z.id AS oid, ROW_NUMBER() OVER \
             (PARTITION BY t.id ORDER BY ST_Distance(t.geom, z.geom), z.id) AS rn \
             FROM {queries} t CROSS JOIN zone z) WHERE rn <= {k}"
        )
    };
    let cases = [
        ("SELECT t.id, z.id FROM trip t JOIN zone z ON ST_KNN(t.geom, z.geom, 3, FALSE)", ranked("trip", 3)),
        (
            "SELECT t.id, z.id FROM zone z JOIN few t ON ST_KNN(ST_GeomFromWKB(t.geom), z.geom, 7, false)",
            ranked("few", 7),
        ),
    ];
    for (sql, oracle) in &cases {
        let explained = plan(&meridian, sql).await;
        assert!(explained.contains("MeridianSpatialJoinExec: ST_KNN(k = "), "{sql}\n{explained}");
        assert!(!explained.contains("NestedLoopJoinExec"), "{explained}");
        let want = pairs(&rows(&nested, oracle).await);
        assert!(want.len() > 20, "{oracle}: {}", want.len());
        assert_eq!(pairs(&rows(&meridian, sql).await), want, "{sql}");
    }
    // SpatialBench's Q12 shape: CTEs, the distance beside each pair, ordered by it.
    let q12 = "WITH t AS (SELECT id AS t_id, geom AS t_geom, ST_GeomFromWKB(geom) AS pickup FROM few), \
               b AS (SELECT id AS b_id, ST_GeomFromWKB(geom) AS boundary FROM zone) \
               SELECT t.t_id, b.b_id, ST_Distance(t.pickup, b.boundary) AS d \
               FROM t JOIN b ON ST_KNN(t.pickup, b.boundary, 2, FALSE) ORDER BY d ASC, b.b_id ASC";
    let got = rows(&meridian, q12).await;
    let d = floats(&got, 2);
    assert!(d.windows(2).all(|w| w[0] <= w[1]), "{d:?}");
    assert_eq!(pairs(&got), pairs(&rows(&nested, &ranked("few", 2)).await));
    // The distance is the one the join measured (no ST_Distance above it), bit for bit what
    // ST_Distance gives of the same pairs; with its arguments the other way round it is
    // measured again.
    let explained = plan(&meridian, q12).await;
    assert!(explained.contains("knn_distance@") && !explained.contains("st_distance(pickup@"), "{explained}");
    let measured = |batches: &[RecordBatch]| {
        let mut v: Vec<(i64, i64, u64)> = pairs_unsorted(batches)
            .into_iter()
            .zip(floats(batches, 2))
            .map(|((a, b), d)| (a, b, d.unwrap().to_bits()))
            .collect();
        v.sort_unstable();
        v
    };
    let oracle = "SELECT qid, oid, ST_Distance(ST_GeomFromWKB(tg), ST_GeomFromWKB(zg)) FROM                   (SELECT t.id AS qid, z.id AS oid, t.geom AS tg, z.geom AS zg, ROW_NUMBER() OVER                   (PARTITION BY t.id ORDER BY ST_Distance(t.geom, z.geom), z.id) AS rn                   FROM few t CROSS JOIN zone z) WHERE rn <= 2";
    let want = measured(&rows(&nested, oracle).await);
    assert_eq!(measured(&got), want);
    let reversed = q12.replace("ST_Distance(t.pickup, b.boundary)", "ST_Distance(b.boundary, t.pickup)");
    let explained = plan(&meridian, &reversed).await;
    assert!(
        !explained.contains("knn_distance@") && explained.contains("st_distance(boundary@"),
        "{explained}"
    );
    let again = measured(&rows(&meridian, &reversed).await);
    assert_eq!(
        again.iter().map(|t| (t.0, t.1)).collect::<Vec<_>>(),
        want.iter().map(|t| (t.0, t.1)).collect::<Vec<_>>()
    );
    // Anywhere but a join's whole condition, or on the spheroid: an error that says so.
    for sql in [
        "SELECT ST_KNN(t.geom, t.geom, 1, false) FROM trip t",
        "SELECT t.id, z.id FROM trip t JOIN zone z ON ST_KNN(t.geom, z.geom, 3, TRUE)",
    ] {
        let e = meridian.sql(sql).await.unwrap().collect().await.unwrap_err().to_string();
        assert!(e.contains("ST_KNN runs only as a join's whole condition"), "{sql}: {e}");
    }
}

/// A top-k over a Parquet scan with its heads read first (`ScanHeadRule`) keeps the same rows
/// as DataFusion's own plan: row groups larger and smaller than the head, two files, nulls
/// and ties in the keys, with and without a filter of the query's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_top_k_reading_row_group_heads_first_keeps_the_same_rows() {
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use datafusion::prelude::{ParquetReadOptions, SessionConfig};

    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", arrow_schema::DataType::Int64, false),
        Field::new("v", arrow_schema::DataType::Float64, true),
        Field::new("payload", arrow_schema::DataType::Utf8, false),
    ]));
    // Values with many ties (v repeats every 1,000 rows, nulls every 7,919th).
    for (file, rows, group) in [("a.parquet", 300_000i64, 100_000usize), ("b.parquet", 50_000, 20_000)] {
        let ids: Vec<i64> = (0..rows).map(|i| i + if file == "a.parquet" { 0 } else { 1_000_000 }).collect();
        let v: Float64Array =
            ids.iter().map(|&i| (i % 7_919 != 0).then(|| ((i * 7_727) % 1_000) as f64)).collect();
        // Longer than a view holds inline, so the top-k's input has views into buffers to
        // compact (`CompactViewsExec`).
        let payload: StringArray = ids.iter().map(|i| Some(format!("row {i} of the payload"))).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(ids)), Arc::new(v), Arc::new(payload)],
        )
        .unwrap();
        let props = WriterProperties::builder().set_max_row_group_row_count(Some(group)).build();
        let mut w = ArrowWriter::try_new(
            std::fs::File::create(dir.path().join(file)).unwrap(),
            schema.clone(),
            Some(props),
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    let context = |heads: bool| {
        let mut config = SessionConfig::new().with_target_partitions(2);
        config.options_mut().execution.parquet.pushdown_filters = true;
        let mut state = SessionStateBuilder::new().with_config(config).with_default_features();
        if heads {
            state =
                state.with_physical_optimizer_rule(Arc::new(meridian_datafusion::scan_head::ScanHeadRule));
        }
        SessionContext::new_with_state(state.build())
    };
    let (split, plain) = (context(true), context(false));
    for ctx in [&split, &plain] {
        ctx.register_parquet("t", dir.path().to_str().unwrap(), ParquetReadOptions::default()).await.unwrap();
    }
    for sql in [
        "SELECT id, v, payload FROM t ORDER BY v DESC, id ASC LIMIT 1000",
        "SELECT id, payload FROM t ORDER BY v ASC NULLS FIRST, id DESC LIMIT 30",
        "SELECT id, payload FROM t WHERE id % 3 = 1 ORDER BY v DESC NULLS LAST, id LIMIT 2500",
    ] {
        let explained = plan(&split, sql).await;
        assert!(
            explained.contains("a.parquet:0..")
                && explained.matches("a.parquet").count() > 2
                && explained.contains("CompactViewsExec"),
            "{sql}\n{explained}"
        );
        let (got, want) = (rows(&split, sql).await, rows(&plain, sql).await);
        let show = |b: &[RecordBatch]| {
            datafusion::arrow::util::pretty::pretty_format_batches(b).unwrap().to_string()
        };
        assert_eq!(show(&got), show(&want), "{sql}");
    }
}
