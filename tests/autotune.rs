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
    assert!(shown.contains("1 record(s)") && shown.contains("cpu.rows_per_claim"), "{shown}");
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
