//! `meridian sql`, end to end over GeoParquet made by `meridian gen` and `meridian convert`:
//! the count per country equals `meridian run`'s, the plan runs the join on meridian, and bad
//! input is one readable line (exit 2). Without the `sql` feature the command says how to get
//! it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;
use common::meridian;

#[cfg(feature = "sql")]
fn dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("meridian-sql-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[cfg(not(feature = "sql"))]
#[test]
fn without_the_feature_the_command_says_how_to_get_it() {
    let o = meridian(&["sql", "SELECT 1"]);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--features sql"), "{stderr}");
}

#[cfg(feature = "sql")]
#[test]
fn a_count_join_on_geoparquet_equals_meridian_run_and_runs_on_meridian() {
    let d = dir();
    let pts = d.join("pts.parquet");
    let zones = d.join("zones.parquet");
    let s = |p: &std::path::PathBuf| p.to_str().unwrap().to_owned();
    assert!(meridian(&["gen", "points", "200000", &s(&pts), "--encoding", "wkb"]).status.success());
    assert!(meridian(&["convert", "data/countries.geojson", &s(&zones)]).status.success());
    // meridian run's count.
    let out = d.join("run");
    let o = meridian(&[
        "run",
        "benches/pip_count.masm",
        "--input",
        &format!("pts={}", s(&pts)),
        "--input",
        &format!("zones={}", s(&zones)),
        "--out",
        &s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(out.join("pairs.csv")).unwrap();
    let want: u64 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(want > 10_000, "{want}");

    let query = "SELECT COUNT(*) AS n FROM pts p JOIN zones z ON ST_Contains(z.geometry, p.geometry)";
    let o = meridian(&[
        "sql",
        query,
        "--table",
        &format!("pts={}", s(&pts)),
        "--table",
        &format!("zones={}", s(&zones)),
        "--explain",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}{stdout}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains(&format!("| {want} ")), "{stdout}");
    assert!(stdout.contains("MeridianSpatialJoinExec: ST_Contains"), "{stdout}");
    assert!(stdout.contains("1 rows in"), "{stdout}");
    // The plan comes out before the query runs, so before its result.
    let (plan_at, result_at) = (stdout.find("MeridianSpatialJoinExec").unwrap(), stdout.find("| n").unwrap());
    assert!(plan_at < result_at, "{stdout}");
    // Planned, not run.
    let o = meridian(&[
        "sql",
        query,
        "-t",
        &format!("pts={}", s(&pts)),
        "-t",
        &format!("zones={}", s(&zones)),
        "--explain-only",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}{stdout}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("MeridianSpatialJoinExec: ST_Contains"), "{stdout}");
    assert!(stdout.contains("not run (--explain-only)") && !stdout.contains(&want.to_string()), "{stdout}");

    // A filter on a table is evaluated as its Parquet is decoded (no `FilterExec` above the
    // scan): rows that fail it leave their other columns undecoded.
    let filtered = "SELECT * FROM zones WHERE ST_Area(geometry) > 1000";
    let o = meridian(&["sql", filtered, "-t", &format!("zones={}", s(&zones)), "--explain-only"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}{stdout}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("predicate=st_area(geometry@") && !stdout.contains("FilterExec"), "{stdout}");
    // A full sort on fixed-width keys is meridian's (datafusion/src/sort.rs), a top-k DataFusion's.
    for (sorted, node) in
        [("ORDER BY ST_Area(geometry) DESC", "KeySortExec"), ("ORDER BY ST_Area(geometry) LIMIT 2", "TopK")]
    {
        let query = format!("SELECT * FROM zones {sorted}");
        let o = meridian(&["sql", &query, "-t", &format!("zones={}", s(&zones)), "--explain-only"]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && stdout.contains(node),
            "{}{stdout}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // To a file.
    let csv = d.join("n.csv");
    let o = meridian(&[
        "sql",
        query,
        "-t",
        &format!("pts={}", s(&pts)),
        "-t",
        &format!("zones={}", s(&zones)),
        "--out",
        &s(&csv),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let written = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(written.lines().nth(1), Some(want.to_string().as_str()), "{written}");

    // Any program over the tables, through `meridian_run`: the same count as `meridian run`.
    let run_sql = "SELECT value FROM meridian_run('benches/pip_count.masm', 'pts=pts', 'zones=zones')";
    let o =
        meridian(&["sql", run_sql, "-t", &format!("pts={}", s(&pts)), "-t", &format!("zones={}", s(&zones))]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}{stdout}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains(&format!("| {want} ")), "{stdout}");

    // Bad input: one line, exit 2.
    for (args, says) in [
        (vec!["sql", "SELECT * FROM nowhere"], "nowhere"),
        (vec!["sql", "SELECT 1", "--table", "x"], "expected NAME=PATH"),
        (vec!["sql", "SELECT 1", "--table", "x=/no/such.parquet"], "no such file"),
        (vec!["sql", "SELECT ST_Area(name) FROM t", "--table", "t=data/country_codes.csv"], "not a geometry"),
        (vec!["sql", "SELECT * FROM meridian_run('no.masm', 'a=b')"], "meridian_run: no.masm"),
    ] {
        let o = meridian(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
