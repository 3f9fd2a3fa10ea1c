//! Endless input in bounded memory (issue 28): `/dev/zero` as a program, as the autotune
//! store and as each text input, and an endless pipe under a memory budget, each ends in a
//! clear error, and no child of this test grows past 512 MiB (`autotune show` on `/dev/zero`
//! took 23 GB); and a join's hits stay within `MERIDIAN_MEMORY_BUDGET` (25 million hits under
//! 64 MiB: written as they come, or a clean error). The peaks are measured per child.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;
use common::root;

fn meridian(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_meridian"));
    c.args(args).current_dir(root()).env("MERIDIAN_AUTOTUNE", "off");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Exit 2, one line on stderr, containing `want`.
fn fails(o: &Output, want: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(want), "wanted {want:?} in {stderr}");
}

/// The largest peak resident set of any child waited for so far, in bytes.
fn children_peak_rss() -> u64 {
    // SAFETY: getrusage fills the struct it is given; a zeroed rusage is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_CHILDREN is a valid `who`.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    // Linux reports kilobytes.
    usage.ru_maxrss as u64 * 1024
}

#[cfg(target_os = "linux")]
#[test]
fn endless_inputs_end_in_clear_errors_within_bounded_memory() {
    let d = std::env::temp_dir().join(format!("meridian-bounded-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let out = s(&d.join("out"));

    // The program.
    let o = meridian(&["run", "/dev/zero", "--input", "shapes=data/countries.geojson", "--out", &out], &[]);
    fails(&o, "/dev/zero: error: longer than any program (16 MiB)");
    fails(&meridian(&["verify", "/dev/zero"], &[]), "longer than any program");

    // The store.
    let o = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["autotune", "show"])
        .env("MERIDIAN_AUTOTUNE_PATH", "/dev/zero")
        .env_remove("MERIDIAN_AUTOTUNE")
        .output()
        .unwrap();
    fails(&o, "a character device, not a store file");

    // Each text input, by a name that says its format.
    for name in ["zero.csv", "zero.wkt", "zero.geojson"] {
        let link = d.join(name);
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let o = meridian(&["convert", &s(&link), &s(&d.join("out.wkt"))], &[]);
        fails(&o, "a character device, not a file to read");
        let input = format!("shapes={}", s(&link));
        let o = meridian(&["run", "examples/measure.masm", "--input", &input, "--out", &out], &[]);
        fails(&o, "a character device, not a file to read");
    }

    // An endless pipe is read as it comes: the memory budget is what ends it.
    for name in ["endless.csv", "endless.wkt", "endless.geojson"] {
        let fifo = d.join(name);
        let c = std::ffi::CString::new(s(&fifo)).unwrap();
        // SAFETY: mkfifo with a valid C string; no memory is shared.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // `cat` dies of SIGPIPE once the reader gives up.
        let mut writer = Command::new("sh")
            .arg("-c")
            .arg(format!("cat /dev/zero > '{}'", s(&fifo)))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let input = format!("shapes={}", s(&fifo));
        let o = meridian(
            &["run", "examples/measure.masm", "--input", &input, "--out", &out],
            &[("MERIDIAN_MEMORY_BUDGET", "64MiB")],
        );
        fails(&o, "more than 67108864 bytes of text, the memory budget (MERIDIAN_MEMORY_BUDGET)");
        let _ = writer.kill();
        let _ = writer.wait();
    }
    assert!(!d.join("out").exists(), "nothing was written");

    let peak = children_peak_rss();
    println!("largest peak resident set of a child: {} MiB", peak >> 20);
    assert!(peak < 512 << 20, "a child peaked at {} MiB", peak >> 20);
    let _ = std::fs::remove_dir_all(&d);
}

/// Runs `meridian ARGS` with `env`; its exit status, stderr and peak resident set (bytes).
#[cfg(target_os = "linux")]
fn measured(args: &[&str], env: &[(&str, &str)], stderr: &Path) -> (Option<i32>, String, u64) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_meridian"));
    c.args(args).current_dir(root()).env("MERIDIAN_AUTOTUNE", "off").stdout(Stdio::null());
    c.stderr(std::fs::File::create(stderr).unwrap());
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c.spawn().unwrap();
    let (mut status, pid) = (0, child.id() as libc::pid_t);
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, filling `status` and `usage`, which outlive the call.
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    // The child is reaped: std's handle must not wait for it again.
    std::mem::forget(child);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, std::fs::read_to_string(stderr).unwrap(), usage.ru_maxrss as u64 * 1024)
}

#[cfg(target_os = "linux")]
#[test]
fn a_joins_hits_stay_within_the_memory_budget() {
    let d = std::env::temp_dir().join(format!("meridian-bounded-hits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    // 100 nested squares, 250,000 points inside all of them: 25 million hits, 200 MB as a
    // job's hit buffer, three times the budget.
    let squares: String = (0..100)
        .map(|i| {
            let (a, b) = (-f64::from(i) * 0.01, 10.0 + f64::from(i) * 0.01);
            format!("POLYGON (({a} {a}, {b} {a}, {b} {b}, {a} {b}, {a} {a}))\n")
        })
        .collect();
    let zones = d.join("squares.wkt");
    std::fs::write(&zones, squares).unwrap();
    let pts = d.join("pts.arrows");
    let o = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["gen", "points", "250000", &s(&pts), "--bbox", "1,1,9,9"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let count = d.join("count.masm");
    std::fs::write(
        &count,
        std::fs::read_to_string(root().join("examples/pip_join.masm"))
            .unwrap()
            .replace(".output pairs  hits", ".output n count")
            .replace("emit     pairs, g1", "count    n"),
    )
    .unwrap();
    let budget = 64u64 << 20;
    let env = [("MERIDIAN_MEMORY_BUDGET", "64MiB")];
    let (pts_in, zones_in) = (format!("pts={}", s(&pts)), format!("zones={}", s(&zones)));
    let out = s(&d.join("out"));
    let err = d.join("stderr");
    let join = |program: &str, extra: &[&str]| {
        let mut a = vec!["run", program, "--input", &pts_in, "--input", &zones_in, "--out", &out];
        a.extend_from_slice(extra);
        measured(&a, &env, &err)
    };
    // The same join counting instead of listing its hits: what the process takes anyway.
    let (code, stderr, base) = join(&s(&count), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    // Streamed: the hits go to the file as the batches finish.
    let (code, stderr, peak) = join("examples/pip_join.masm", &["--format", "parquet"]);
    assert_eq!(code, Some(0), "{stderr}");
    println!(
        "peak resident set: {} MiB counting, {} MiB writing 25M hits (budget 64 MiB)",
        base >> 20,
        peak >> 20
    );
    assert!(peak <= base + budget, "{} MiB past the {} MiB of counting", peak >> 20, base >> 20);
    let file = std::fs::File::open(d.join("out").join("pairs.parquet")).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 25_000_000);
    // Read whole (one job over every row): the job's hits cannot fit, and it says so.
    let (code, stderr, peak) = join("examples/pip_join.masm", &["--batch-rows", "0", "--format", "parquet"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("25000000 hits") && stderr.contains("the memory budget is 67108864 bytes"),
        "{stderr}"
    );
    assert!(peak <= base + budget, "{} MiB past the {} MiB of counting", peak >> 20, base >> 20);
    let _ = std::fs::remove_dir_all(&d);
}
