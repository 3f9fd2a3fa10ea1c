//! `meridian run` end to end: the five example programs, the cities × countries join
//! checked pair for pair against the `geo` crate, and readable failures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::PathBuf;
use std::process::{Command, Output};

mod common;
use common::{meridian, root};

use geo::{BoundingRect, Contains};
use meridian::kernels::io;

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meridian-run-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn pip_join_gives_the_pairs_geo_gives() {
    let out = out_dir("pip");
    let stdout = ok(&meridian(&[
        "run",
        "examples/pip_join.masm",
        "--input",
        "pts=data/cities.csv.gz",
        "--input",
        "zones=data/countries.geojson",
        "--mode",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(stdout.contains("backend: cpu"), "{stdout}");
    let text = std::fs::read_to_string(out.join("pairs.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("row,id"));
    let ours: Vec<(usize, usize)> = lines
        .map(|l| {
            let (r, i) = l.split_once(',').unwrap();
            (r.parse().unwrap(), i.parse().unwrap())
        })
        .collect();

    // The same join with geo: every country as a geo MultiPolygon, box pre-check, Contains.
    let countries = io::read_geojson(
        "countries.geojson",
        &io::read_text(&root().join("data/countries.geojson")).unwrap(),
    )
    .unwrap()
    .geometry;
    let cities = io::read_csv("cities.csv.gz", io::open(&root().join("data/cities.csv.gz")).unwrap(), &[])
        .unwrap()
        .geometry;
    let polys: Vec<(geo::Rect<f64>, geo::Geometry<f64>)> = (0..countries.len())
        .map(|c| {
            let g = io::to_geo(&countries.get(c).unwrap()).unwrap();
            (g.bounding_rect().unwrap(), g)
        })
        .collect();
    let mut theirs = Vec::new();
    for row in 0..cities.len() {
        let Some(p) = cities.view().point(row) else { continue };
        let pt = geo::Point::new(p.0, p.1);
        for (c, (rect, g)) in polys.iter().enumerate() {
            if rect.contains(&pt) && g.contains(&pt) {
                theirs.push((row, c));
            }
        }
    }
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours, theirs);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn every_example_program_runs() {
    let out = out_dir("examples");
    let pts = out.join("pts.csv");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(&pts, "x,y\n0,0\n0.3,0.4\n5,5\n,\n").unwrap();
    let o = |d: &str| out.join(d).to_str().unwrap().to_string();
    let shapes = ["--input", "shapes=data/countries.geojson"];
    for (program, outputs) in [
        ("measure", &["area", "length"][..]),
        ("bounds", &["minx", "miny", "maxx", "maxy", "cx", "cy"][..]),
        ("moved", &["moved"][..]),
    ] {
        let dir = o(program);
        let file = format!("examples/{program}.masm");
        ok(&meridian(&["run", &file, shapes[0], shapes[1], "--out", &dir]));
        for name in outputs {
            let text = std::fs::read_to_string(out.join(program).join(format!("{name}.csv"))).unwrap();
            assert_eq!(text.lines().next().unwrap(), format!("row,{name}"));
            assert_eq!(text.lines().count(), 178, "{program}/{name}: header + one line per country");
        }
    }
    let pts_arg = format!("pts={}", pts.display());
    let sites_arg = format!("sites={}", pts.display());
    ok(&meridian(&[
        "run",
        "examples/near.masm",
        "--input",
        &pts_arg,
        "--input",
        &sites_arg,
        "--out",
        &o("near"),
    ]));
    let pairs = std::fs::read_to_string(out.join("near/pairs.csv")).unwrap();
    // (0,0)–(0.3,0.4) are 0.5 apart: within 0.5 both ways; the null row matches nothing.
    assert_eq!(pairs, "row,id\n0,0\n0,1\n1,0\n1,1\n2,2\n");
    assert_eq!(std::fs::read_to_string(out.join("near/total.csv")).unwrap(), "value\n5\n");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn failures_are_one_readable_line_and_exit_2() {
    let out = out_dir("fail");
    let dir = out.to_str().unwrap();
    for (args, want) in [
        (vec!["run", "examples/pip_join.masm", "--input", "pts", "--out", dir], "expected NAME=PATH"),
        (
            vec!["run", "examples/pip_join.masm", "--input", "pts=README.md", "--out", dir],
            "unknown input format",
        ),
        (
            vec![
                "run",
                "examples/pip_join.masm",
                "--input",
                "pts=data/countries.geojson",
                "--input",
                "zones=data/countries.geojson",
                "--out",
                dir,
            ],
            "input `pts` is declared `points` but row 0 is a",
        ),
        (
            vec!["run", "examples/pip_join.masm", "--input", "pts=data/cities.csv.gz", "--out", dir],
            "input `zones` is not bound",
        ),
        (
            vec!["run", "examples/pip_join.masm", "--input", "nope=data/cities.csv.gz", "--out", dir],
            "no input `nope`",
        ),
        (vec!["run", "missing.masm", "--out", dir], "cannot read"),
    ] {
        let o = meridian(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
}

#[test]
fn gpu_mode_without_a_device_is_one_readable_line() {
    if meridian::driver::probe().has_device() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "gpu_mode_without_a_device_is_one_readable_line: skipped: a CUDA device is present"
        );
        return;
    }
    let out = out_dir("nogpu");
    let o = meridian(&[
        "run",
        "examples/measure.masm",
        "--input",
        "shapes=data/countries.geojson",
        "--mode",
        "gpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: execution mode gpu: no usable CUDA device"), "{err}");
    let o = meridian(&["bench", "roundtrip", "--trips", "10"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("needs") || err.contains("no usable CUDA device"), "{err}");
}

#[test]
fn bench_pip_runs_on_the_cpu_and_says_why_not_on_the_gpu() {
    let o = meridian(&["bench", "pip", "--points", "20000", "--runs", "1", "--workers", "2"]);
    let stdout = ok(&o);
    assert!(stdout.contains("20,000 uniform points × 177 countries"), "{stdout}");
    assert!(stdout.contains("cpu   2 workers: job"), "{stdout}");
    if !meridian::driver::probe().has_device() {
        assert!(stdout.contains("cuda  skipped: execution mode gpu: no usable CUDA device"), "{stdout}");
    }
}

#[test]
fn bench_placement_sweeps_both_classes_against_the_model() {
    let o = meridian(&["bench", "placement", "--max-rows", "4096", "--runs", "1", "--workers", "2"]);
    let stdout = ok(&o);
    assert!(stdout.contains("jobs of 1,024 to 4,096 uniform points"), "{stdout}");
    for class in ["join (", "arithmetic ("] {
        assert!(stdout.contains(class), "{stdout}");
    }
    assert!(stdout.contains("the model crosses over at"), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.contains("rows: cpu ")).count(), 4, "{stdout}");
    if !meridian::driver::probe().has_device() {
        assert!(stdout.contains("GPU: skipped (execution mode gpu: no usable CUDA device"), "{stdout}");
    }
    let bad = meridian(&["bench", "placement", "--max-rows", "10"]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1);
}

/// `--explain` prints the plan the job ran by, one reason a line.
#[test]
fn explain_prints_the_plan_and_its_reasons() {
    let out = out_dir("explain");
    let o = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["run", "examples/measure.masm", "-i", "shapes=data/countries.geojson", "--mode", "cpu"])
        .args(["--route", "jit", "--explain", "--out", out.to_str().unwrap()])
        .env("MERIDIAN_AUTOTUNE", "off")
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = ok(&o);
    let plan = stdout.lines().find(|l| l.starts_with("plan: ")).unwrap_or_else(|| panic!("{stdout}"));
    let want =
        if cfg!(feature = "jit") { "rows: cpu jit (cpu-jit), " } else { "rows: cpu interp (cpu-interp), " };
    assert!(plan.contains(want) && plan.contains("hit capacity") && plan.contains("queue "), "{plan}");
    let reasons: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  - ")).collect();
    assert_eq!(reasons.len(), 4, "{stdout}");
    assert!(reasons[0].contains("mode cpu was asked for"), "{stdout}");
    assert!(reasons[1].contains("route jit was asked for"), "{stdout}");
    // Without --explain, no plan.
    let o = meridian(&[
        "run",
        "examples/measure.masm",
        "-i",
        "shapes=data/countries.geojson",
        "--mode",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok(&o).contains("plan: "));
}

/// A job over the memory budget is one readable line and exit 2; a bad budget too.
#[test]
fn a_job_over_the_memory_budget_is_one_readable_line() {
    let out = out_dir("budget");
    // Text inputs count against the budget (they are held whole); a Parquet file is read a
    // batch at a time, so the job's own buffers are what meet it here.
    std::fs::create_dir_all(&out).unwrap();
    let parquet = out.join("countries.parquet");
    ok(&meridian(&["convert", "data/countries.geojson", parquet.to_str().unwrap()]));
    let shapes = format!("shapes={}", parquet.display());
    let args =
        ["run", "examples/measure.masm", "--input", &shapes, "--mode", "cpu", "--out", out.to_str().unwrap()];
    for (budget, want) in
        [("100", "budget 100 bytes"), ("lots", "MERIDIAN_MEMORY_BUDGET=\"lots\" is not a size")]
    {
        let o = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(args)
            .current_dir(root())
            .env("MERIDIAN_AUTOTUNE", "off")
            .env("MERIDIAN_MEMORY_BUDGET", budget)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{budget}: {err}");
        assert_eq!(err.lines().count(), 1, "{budget}: {err}");
        assert!(err.contains(want), "{budget}: {err}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .current_dir(root())
        .env("MERIDIAN_AUTOTUNE", "off")
        .env("MERIDIAN_MEMORY_BUDGET", "1MiB")
        .output()
        .unwrap();
    ok(&o);
    // The GeoJSON itself is past a 100-byte budget.
    let o = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args([
            "run",
            "examples/measure.masm",
            "--input",
            "shapes=data/countries.geojson",
            "--out",
            out.to_str().unwrap(),
        ])
        .current_dir(root())
        .env("MERIDIAN_AUTOTUNE", "off")
        .env("MERIDIAN_MEMORY_BUDGET", "100")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("countries.geojson") && err.contains("more than 100 bytes of text"), "{err}");
}
