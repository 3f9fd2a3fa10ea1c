//! `meridian gen`, `meridian convert` and `meridian run` over columnar files, end to end: the
//! same geometry and the same results whatever the format, and one readable line on failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{meridian, root};

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use meridian::kernels::column::GeometryColumn;
use meridian::kernels::io;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meridian-files-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn fails(o: &Output, want: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(want), "{stderr}");
}

fn read(path: &Path) -> GeometryColumn {
    io::read_geometry(path).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Point `k` of `meridian gen points` with seed `seed` over `[x0, y0, x1, y1]`: draws 2k and
/// 2k + 1 of splitmix64 — written out here, independently of the program.
fn point(seed: u64, bbox: [f64; 4], k: u64) -> (f64, f64) {
    let draw = |i: u64| {
        let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (bbox[0] + (bbox[2] - bbox[0]) * draw(2 * k), bbox[1] + (bbox[3] - bbox[1]) * draw(2 * k + 1))
}

#[test]
fn generated_points_are_the_same_in_every_format_and_across_chunks() {
    let d = dir("gen");
    // More than one chunk of 2^20, so the second chunk must continue the sequence.
    let n = 1_100_000u64;
    let bbox = [-10.0, 40.0, 5.0, 52.5];
    let parquet = d.join("p.parquet");
    let stdout = ok(&meridian(&[
        "gen",
        "points",
        &n.to_string(),
        s(&parquet),
        "--bbox",
        "-10,40,5,52.5",
        "--seed",
        "3",
    ]));
    assert!(stdout.contains("1,100,000 points") && stdout.contains("GeoArrow point"), "{stdout}");
    let col = read(&parquet);
    assert_eq!(col.len(), n as usize);
    for k in [0, 1, 1_048_575, 1_048_576, 1_099_999] {
        assert_eq!(col.view().point(k as usize), Some(point(3, bbox, k)), "point {k}");
    }
    let view = col.view();
    assert!((0..col.len()).all(|r| view
        .point(r)
        .is_some_and(|(x, y)| (-10.0..=5.0).contains(&x) && (40.0..=52.5).contains(&y))));
    // The first 5,000 in every other format (and in WKB) are the same points.
    let head = 5_000usize;
    let want: Vec<(f64, f64)> = (0..head).map(|r| view.point(r).unwrap()).collect();
    for name in ["p.csv", "p.wkt", "p.geojson", "p.arrow", "p.arrows", "p-wkb.parquet"] {
        let path = d.join(name);
        let mut args = vec!["gen", "points", "5000", s(&path), "--bbox", "-10,40,5,52.5", "--seed", "3"];
        if name.contains("wkb") {
            args.extend(["--encoding", "wkb"]);
        }
        ok(&meridian(&args));
        let got = read(&path);
        let got: Vec<(f64, f64)> = (0..got.len()).map(|r| got.view().point(r).unwrap()).collect();
        assert_eq!(got, want, "{name}");
    }
    fails(&meridian(&["gen", "points", "10", s(&d.join("x.parquet")), "--bbox", "1,2,3"]), "four numbers");
    fails(&meridian(&["gen", "points", "10", s(&d.join("x.parquet")), "--bbox", "5,0,1,1"]), "min <= max");
    fails(&meridian(&["gen", "points", "10", s(&d.join("x.shp"))]), "unknown output format");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn convert_carries_the_countries_through_every_format() {
    let d = dir("convert");
    let original = read(&root().join("data/countries.geojson"));
    let mut from = root().join("data/countries.geojson");
    for name in ["c.parquet", "c.arrow", "c.arrows", "c.feather", "c.wkt", "c.csv", "c.geojson", "c2.parquet"]
    {
        let to = d.join(name);
        let stdout = ok(&meridian(&["convert", s(&from), s(&to)]));
        assert!(stdout.contains("177 rows"), "{stdout}");
        assert_eq!(read(&to), original, "{name}");
        from = to;
    }
    // Polygons and multipolygons: no one native layout holds both.
    fails(
        &meridian(&["convert", s(&from), s(&d.join("n.parquet")), "--encoding", "native"]),
        "one geometry family",
    );
    fails(&meridian(&["convert", "README.md", s(&d.join("n.parquet"))]), "unknown input format");
    let bad = d.join("bad.parquet");
    std::fs::write(&bad, b"PAR1 not really").unwrap();
    fails(&meridian(&["convert", s(&bad), s(&d.join("n.wkt"))]), "bad.parquet");
    let _ = std::fs::remove_dir_all(&d);
}

/// `row,id` pairs of a CSV, Parquet or Arrow hits output.
fn pairs(path: &Path) -> Vec<(u64, u32)> {
    let batches: Vec<arrow_array::RecordBatch> = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => {
            let text = std::fs::read_to_string(path).unwrap();
            return text
                .lines()
                .skip(1)
                .map(|l| {
                    let (r, i) = l.split_once(',').unwrap();
                    (r.parse().unwrap(), i.parse().unwrap())
                })
                .collect();
        }
        Some("parquet") => {
            let file = std::fs::File::open(path).unwrap();
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
        _ => {
            let file = std::fs::File::open(path).unwrap();
            arrow_ipc::reader::FileReader::try_new(file, None).unwrap().map(Result::unwrap).collect()
        }
    };
    let mut out = Vec::new();
    for b in batches {
        assert_eq!(b.schema().field(0).name(), "row");
        assert_eq!(b.schema().field(1).name(), "id");
        let rows = b.column(0).as_primitive::<UInt64Type>();
        let ids = b.column(1).as_primitive::<UInt32Type>();
        out.extend(rows.values().iter().copied().zip(ids.values().iter().copied()));
    }
    out
}

#[test]
fn run_reads_and_writes_columnar_files_with_the_csv_results() {
    let d = dir("run");
    let pts_csv = root().join("data/cities.csv.gz");
    let pts_parquet = d.join("cities.parquet");
    let pts_wkb = d.join("cities.arrows");
    ok(&meridian(&["convert", s(&pts_csv), s(&pts_parquet)]));
    ok(&meridian(&["convert", s(&pts_csv), s(&pts_wkb), "--encoding", "wkb"]));
    let mut results = Vec::new();
    // The columnar inputs stream: in batches of 10,007 rows (24 of them), and in one.
    for (input, format, batch) in
        [(&pts_csv, "csv", "262144"), (&pts_parquet, "parquet", "10007"), (&pts_wkb, "arrow", "262144")]
    {
        let out = d.join(format!("out-{format}"));
        let pts = format!("pts={}", s(input));
        let stdout = ok(&meridian(&[
            "run",
            "--batch-rows",
            batch,
            "examples/pip_join.masm",
            "--input",
            &pts,
            "--input",
            "zones=data/countries.geojson",
            "--mode",
            "cpu",
            "--format",
            format,
            "--out",
            s(&out),
        ]));
        assert!(stdout.contains(&format!("pairs.{format}")), "{stdout}");
        match format {
            "csv" => assert!(!stdout.contains("streamed"), "{stdout}"),
            "parquet" => assert!(stdout.contains("streamed in 24 batches"), "{stdout}"),
            _ => assert!(stdout.contains("streamed in 1 batches"), "{stdout}"),
        }
        results.push(pairs(&out.join(format!("pairs.{format}"))));
    }
    assert!(results[0].len() > 200_000);
    assert_eq!(results[1], results[0]);
    assert_eq!(results[2], results[0]);

    // Dense and geometry outputs: nulls stay nulls; geometry is WKB with GeoParquet metadata.
    let out = d.join("moved");
    ok(&meridian(&[
        "run",
        "examples/moved.masm",
        "--input",
        "shapes=data/countries.geojson",
        "--format",
        "parquet",
        "--out",
        s(&out),
    ]));
    let moved = read(&out.join("moved.parquet"));
    assert_eq!(moved.len(), 177);
    let out = d.join("measure");
    ok(&meridian(&[
        "run",
        "examples/measure.masm",
        "--input",
        "shapes=data/countries.geojson",
        "--format",
        "arrow",
        "--out",
        s(&out),
    ]));
    let file = std::fs::File::open(out.join("area.arrow")).unwrap();
    let batch = arrow_ipc::reader::FileReader::try_new(file, None).unwrap().next().unwrap().unwrap();
    assert_eq!(batch.num_rows(), 177);
    assert_eq!(batch.schema().field(0).name(), "area");

    // An Arrow IPC file streams through staging memory: io_uring where it works, or pread
    // when MERIDIAN_IO says so (an unknown value is one line); the pairs are the same.
    let ipc = d.join("cities.arrow");
    ok(&meridian(&["convert", s(&pts_csv), s(&ipc)]));
    let pts = format!("pts={}", s(&ipc));
    for io in ["auto", "pread"] {
        let out = d.join(format!("out-ipc-{io}"));
        let o = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args([
                "run",
                "examples/pip_join.masm",
                "--input",
                &pts,
                "--input",
                "zones=data/countries.geojson",
            ])
            .args(["--batch-rows", "50000", "--mode", "cpu", "--out", s(&out)])
            .env("MERIDIAN_IO", io)
            .env("MERIDIAN_AUTOTUNE", "off")
            .current_dir(root())
            .output()
            .unwrap();
        let stdout = ok(&o);
        let want = if io == "pread" { "(pread (MERIDIAN_IO=pread)" } else { "(io_uring" };
        assert!(stdout.contains(want) || stdout.contains("(pread (io_uring unavailable"), "{stdout}");
        assert_eq!(pairs(&out.join("pairs.csv")), results[0], "{io}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["run", "examples/pip_join.masm", "--input", &pts, "--input", "zones=data/countries.geojson"])
        .args(["--out", s(&d)])
        .env("MERIDIAN_IO", "bogus")
        .current_dir(root())
        .output()
        .unwrap();
    fails(&o, "MERIDIAN_IO=\"bogus\" is not one of auto, uring, pread");

    // A corrupt input: one line naming the file.
    let bad = d.join("bad.arrow");
    std::fs::write(&bad, b"ARROW1\0\0garbage").unwrap();
    let arg = format!("pts={}", s(&bad));
    fails(
        &meridian(&[
            "run",
            "examples/pip_join.masm",
            "--input",
            &arg,
            "--input",
            "zones=data/countries.geojson",
            "--out",
            s(&d),
        ]),
        "bad.arrow",
    );
    let _ = std::fs::remove_dir_all(&d);
}
