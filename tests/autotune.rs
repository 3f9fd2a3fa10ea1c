//! `meridian run` autotunes: the first run of a pipeline races rows per claim and saves the
//! winner; the second loads it and races nothing. `meridian autotune show | path | clear |
//! export` read and empty the store; a bad `MERIDIAN_AUTOTUNE` is one readable line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meridian-autotune-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Removes its folder however the test ends (the points file is a hundred megabytes).
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn meridian(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .env("MERIDIAN_AUTOTUNE_PATH", store)
        .env_remove("MERIDIAN_AUTOTUNE")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn the_second_run_loads_the_winner_and_races_nothing() {
    let d = dir("twice");
    let _cleanup = Cleanup(d.clone());
    let store = d.join("autotune.bin");
    let pts = d.join("pts.parquet");
    let program = d.join("far.masm");
    std::fs::write(
        &program,
        ".program far\n.input p points\n.output n count\n load g0, p\n x f0, g0\n const f1, 90.0\n \
         gt b0, f0, f1\n jf b0, done\n count n\ndone:\n halt\n",
    )
    .unwrap();
    // 66 batches of 2^17 rows (Parquet is read in batches of the size asked): jobs large
    // enough to race, and enough for two candidates' verdicts (at most 16 pairs each).
    let rows = 66 * (1 << 17);
    ok(&meridian(&store, &["gen", "points", &rows.to_string(), pts.to_str().unwrap()]));
    let run = |out: &str| {
        let o = meridian(
            &store,
            &[
                "run",
                program.to_str().unwrap(),
                "--input",
                &format!("p={}", pts.display()),
                "--mode",
                "cpu",
                // The route is fixed and one worker has no workers a job to race: this run
                // races rows per claim only.
                "--route",
                "interp",
                "--workers",
                "1",
                "--batch-rows",
                "131072",
                "--out",
                d.join(out).to_str().unwrap(),
            ],
        );
        ok(&o)
    };
    let first = run("out0");
    assert!(first.contains("autotune: racing cpu.rows_per_claim"), "{first}");
    assert!(store.exists(), "no verdict in one run:\n{first}");
    assert!(first.contains("adopted") || first.contains("rejected"), "{first}");
    let second = run("second");
    assert!(second.contains("loaded from the store"), "{second}");
    assert!(!second.contains("racing"), "{second}");
    let count = |out: &str| std::fs::read_to_string(d.join(out).join("n.csv")).unwrap();
    assert_eq!(count("second"), count("out0"), "autotune changed a result");

    let shown = ok(&meridian(&store, &["autotune", "show"]));
    assert!(shown.contains("1 record(s) (1 verdict(s), 0 race(s) in progress)"), "{shown}");
    assert!(shown.contains("cpu.rows_per_claim"), "{shown}");
    assert_eq!(ok(&meridian(&store, &["autotune", "path"])).trim(), store.to_str().unwrap());
    let json = d.join("export.json");
    ok(&meridian(&store, &["autotune", "export", json.to_str().unwrap()]));
    let exported: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(exported["records"].as_array().unwrap().len(), 1);
    assert!(ok(&meridian(&store, &["autotune", "clear"])).contains("cleared 1 record(s)"));
    assert!(ok(&meridian(&store, &["autotune", "show"])).contains("0 record(s)"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn one_job_over_one_file_races_inside_itself_and_the_next_run_loads_its_verdicts() {
    let d = dir("one-job");
    let _cleanup = Cleanup(d.clone());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (program, zones) = (root.join("examples/pip_join.masm"), root.join("data/countries.geojson"));
    // 2^22 points: room for every race's most pairs (16 each) in one job.
    let pts = d.join("pts.parquet");
    ok(&meridian(
        &d.join("unused.bin"),
        &["gen", "points", &(1u64 << 22).to_string(), pts.to_str().unwrap()],
    ));
    let run = |store: &Path, out: &str, batch: Option<&str>| {
        let mut args = vec![
            "run".to_owned(),
            program.to_str().unwrap().to_owned(),
            "--input".to_owned(),
            format!("pts={}", pts.display()),
            "--input".to_owned(),
            format!("zones={}", zones.display()),
            "--mode".to_owned(),
            "cpu".to_owned(),
            "--out".to_owned(),
            d.join(out).to_str().unwrap().to_owned(),
        ];
        if let Some(b) = batch {
            args.extend(["--batch-rows".to_owned(), b.to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&meridian(store, &args))
    };
    let pairs = |out: &str| std::fs::read(d.join(out).join("pairs.csv")).unwrap();
    let shown = |store: &Path| -> serde_json::Value {
        serde_json::from_str(&ok(&meridian(store, &["autotune", "show", "--json"]))).unwrap()
    };
    // One job (the whole file in one batch), then a stream of four.
    for (name, batch) in [("one", Some("4194304")), ("streamed", Some("1048576"))] {
        let store = d.join(format!("{name}.bin"));
        let first = run(&store, &format!("{name}-1"), batch);
        assert!(first.contains("autotune races inside the job"), "{first}");
        assert!(
            first.contains("autotune: racing cpu.route")
                && first.contains("autotune: racing cpu.rows_per_claim"),
            "{first}"
        );
        let json = shown(&store);
        let records = json["records"].as_array().unwrap();
        for family in ["cpu.route", "cpu.rows_per_claim@16384"] {
            let r = records
                .iter()
                .find(|r| r["key"]["family"] == family)
                .unwrap_or_else(|| panic!("{family}: {first}"));
            assert!(r["record"]["pending"].is_null(), "{family} undecided after one run: {r}\n{first}");
            assert!(r["record"]["verdict"]["effect"]["pairs"].as_u64().unwrap() >= 5, "{r}");
        }
        let second = run(&store, &format!("{name}-2"), batch);
        assert!(second.contains("loaded from the store"), "{second}");
        assert!(!second.contains("racing cpu.route") && !second.contains("racing cpu.rows"), "{second}");
        assert!(!second.contains("races inside"), "{second}");
        if name == "one" {
            assert!(!second.contains("racing"), "{second}");
        }
        // A stream has jobs in flight together: its batches race the workers a job spreads
        // over too, a race of whole jobs (five pairs of batches), continued run after run.
        assert_eq!(pairs(&format!("{name}-1")), pairs(&format!("{name}-2")), "autotune changed a result");
        // The second run is named in the records it applied; `show` explains them.
        let text = ok(&meridian(&store, &["autotune", "show"]));
        for want in
            ["winner: ", "raced: ", "effect of ", "90% interval", "machine: cpu ", "loaded by: meridian run "]
        {
            assert!(text.contains(want), "{want:?} not in {text}");
        }
    }
}

#[test]
fn autotune_off_and_a_bad_switch() {
    let d = dir("switch");
    let store = d.join("autotune.bin");
    let off = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["autotune", "path"])
        .env("MERIDIAN_AUTOTUNE", "off")
        .output()
        .unwrap();
    assert!(ok(&off).contains("autotune is off"));
    let bad = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["autotune", "show"])
        .env("MERIDIAN_AUTOTUNE", "sometimes")
        .env("MERIDIAN_AUTOTUNE_PATH", &store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("MERIDIAN_AUTOTUNE=\"sometimes\""), "{stderr}");
    // A store that is not one: moved aside, said on stderr, and the command goes on.
    std::fs::write(&store, "not a store").unwrap();
    let o = meridian(&store, &["autotune", "show"]);
    assert!(ok(&o).contains("0 record(s)"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("moved aside"));
    let _ = std::fs::remove_dir_all(&d);
}
