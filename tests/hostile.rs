//! Nothing wrong, nothing lost (issue 28): the cases a hostile or careless user found, each
//! at the command line where they met it. A reported result is right or it is an error; an
//! error never costs the user a file they had.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{meridian, root};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meridian-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Exit 2 with one line on stderr that contains `want`.
fn fails(o: &Output, want: &str) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "stdout: {}\nstderr: {stderr}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(want), "wanted {want:?} in: {stderr}");
    stderr
}

/// `meridian ARGS` under `sh` with `prelude` run first (limits, traps), autotune off.
fn meridian_under(prelude: &str, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("{prelude}\nexec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .current_dir(root())
        .env("MERIDIAN_AUTOTUNE", "off")
        .output()
        .unwrap()
}

/// The file names in `d`, sorted (temporary files included: none may be left).
fn names(d: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    v.sort();
    v
}

/// The cities × countries join, its pairs written as `format` to `out`.
fn join_args<'a>(out: &'a str, format: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "examples/pip_join.masm",
        "--input",
        "pts=data/cities.csv.gz",
        "--input",
        "zones=data/countries.geojson",
        "--mode",
        "cpu",
        "--format",
        format,
        "--out",
        out,
    ]
}

/// Outputs are replaced whole or not at all: a run killed while writing (SIGXFSZ at a file
/// size limit, as a crash would) and one whose disk fills (the same limit with the signal
/// ignored: writes fail with EFBIG, as with ENOSPC) both leave the previous output as it was,
/// and no temporary file behind the failed one.
#[test]
fn outputs_survive_a_kill_mid_write_and_a_full_disk() {
    for format in ["csv", "parquet", "arrow"] {
        let d = dir(&format!("atomic-{format}"));
        let file = d.join(format!("pairs.{format}"));
        ok(&meridian(&join_args(s(&d), format)));
        let before = std::fs::read(&file).unwrap();
        assert!(before.len() > 64 << 10, "the output must pass the limit below: {} bytes", before.len());
        // 32 blocks (16 or 32 KiB, by the shell's unit): far less than the output.
        let killed = meridian_under("ulimit -f 32", &join_args(s(&d), format));
        assert_eq!(killed.status.code(), None, "{format}: killed by SIGXFSZ, {killed:?}");
        assert_eq!(std::fs::read(&file).unwrap(), before, "{format}: a killed run replaced the output");
        let full = meridian_under("trap '' XFSZ; ulimit -f 32", &join_args(s(&d), format));
        let line = fails(&full, "cannot write");
        assert!(line.contains(&format!("pairs.{format}")), "{line}");
        assert_eq!(std::fs::read(&file).unwrap(), before, "{format}: a failed write replaced the output");
        // The killed run's temporary file is the only thing a crash leaves; the failed one
        // removed its own.
        let left: Vec<String> = names(&d).into_iter().filter(|n| n != &format!("pairs.{format}")).collect();
        assert!(left.len() <= 1 && left.iter().all(|n| n.starts_with(".meridian-")), "{format}: {left:?}");
    }
    // convert and gen write through the same writers.
    let d = dir("atomic-convert");
    let out = d.join("cities.geojson");
    ok(&meridian(&["convert", "data/cities.csv.gz", s(&out)]));
    let before = std::fs::read(&out).unwrap();
    let full = meridian_under("trap '' XFSZ; ulimit -f 32", &["convert", "data/cities.csv.gz", s(&out)]);
    assert_eq!(full.status.code(), Some(2), "{full:?}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
    let pts = d.join("pts.arrow");
    ok(&meridian(&["gen", "points", "10000", s(&pts)]));
    let before = std::fs::read(&pts).unwrap();
    let full = meridian_under("trap '' XFSZ; ulimit -f 32", &["gen", "points", "100000", s(&pts)]);
    assert_eq!(full.status.code(), Some(2), "{full:?}");
    assert_eq!(std::fs::read(&pts).unwrap(), before);
    assert_eq!(names(&d), ["cities.geojson", "pts.arrow"]);
}

/// An output that is an input (by device and inode: a hard link, a symbolic link, another
/// spelling) is refused before anything is read or written; the input is untouched.
#[test]
fn an_output_that_is_an_input_is_refused() {
    let d = dir("same");
    let pts = d.join("pairs.csv");
    std::fs::write(&pts, "x,y\n1,2\n3,4\n").unwrap();
    let countries = root().join("data/countries.geojson");
    let run = |pts: &Path| {
        meridian(&[
            "run",
            "examples/pip_join.masm",
            "--input",
            &format!("pts={}", s(pts)),
            "--input",
            &format!("zones={}", s(&countries)),
            "--out",
            s(&d),
        ])
    };
    fails(&run(&pts), "refusing to replace an input");
    let other = d.join("sub/../pairs.csv");
    std::fs::create_dir(d.join("sub")).unwrap();
    fails(&run(&other), "refusing to replace an input");
    let linked = d.join("linked.csv");
    std::fs::hard_link(&pts, &linked).unwrap();
    fails(&run(&linked), "refusing to replace an input");
    assert_eq!(std::fs::read_to_string(&pts).unwrap(), "x,y\n1,2\n3,4\n");
    // convert: by name and through a symbolic link.
    fails(&meridian(&["convert", s(&pts), s(&pts)]), "refusing to replace an input");
    #[cfg(unix)]
    {
        let link = d.join("link.csv");
        std::os::unix::fs::symlink(&pts, &link).unwrap();
        fails(&meridian(&["convert", s(&pts), s(&link)]), "refusing to replace an input");
    }
    assert_eq!(std::fs::read_to_string(&pts).unwrap(), "x,y\n1,2\n3,4\n");
    // asm: the source through a hard link.
    let masm = d.join("p.masm");
    std::fs::copy(root().join("examples/measure.masm"), &masm).unwrap();
    let mbc = d.join("p.mbc");
    std::fs::hard_link(&masm, &mbc).unwrap();
    fails(&meridian(&["asm", s(&masm)]), "would overwrite the source");
    assert_eq!(std::fs::read(&masm).unwrap(), std::fs::read(root().join("examples/measure.masm")).unwrap());
}

/// A CSV error names the line of the bad record, not the one after it.
#[test]
fn a_csv_error_names_its_own_line() {
    let d = dir("csv");
    let short = d.join("short.csv");
    std::fs::write(&short, "x,y\n1,2\n3\n4,5\n").unwrap();
    let out = d.join("out.wkt");
    fails(&meridian(&["convert", s(&short), s(&out)]), "short.csv:3: 1 fields where the header has 2");
    assert!(!out.exists());
}

/// WKT nested thousands deep (it overflowed the parser's stack and aborted the process).
#[test]
fn deeply_nested_wkt_is_an_error() {
    let d = dir("deep");
    let deep = d.join("deep.wkt");
    std::fs::write(&deep, format!("POINT (1 2)\nPOLYGON {}\n", "(".repeat(10_000))).unwrap();
    fails(
        &meridian(&["convert", s(&deep), s(&d.join("out.csv"))]),
        "deep.wkt:2: invalid WKT: parentheses nested deeper than 32 levels at byte 40",
    );
}

/// An Arrow IPC stream cut where a batch ends (only its end-of-stream marker missing) was
/// taken as complete: now an error naming the byte, read whole or streamed.
#[test]
fn a_truncated_arrow_stream_is_an_error() {
    let d = dir("cut");
    let pts = d.join("pts.arrows");
    ok(&meridian(&["gen", "points", "300000", s(&pts)]));
    let bytes = std::fs::read(&pts).unwrap();
    let cut = d.join("cut.arrows");
    std::fs::write(&cut, &bytes[..bytes.len() - 8]).unwrap();
    for batch_rows in ["0", "65536"] {
        let o = meridian(&[
            "run",
            "examples/pip_join.masm",
            "--input",
            &format!("pts={}", s(&cut)),
            "--input",
            "zones=data/countries.geojson",
            "--batch-rows",
            batch_rows,
            "--out",
            s(&d.join("out")),
        ]);
        let line = fails(&o, "cut.arrows");
        assert!(line.contains(&format!("cut short at byte {}", bytes.len() - 8)), "{line}");
        assert!(!d.join("out").join("pairs.csv").exists());
    }
}

/// `--batch-rows` holds for Arrow IPC inputs too (their record batches are sliced), and the
/// report says what ran.
#[test]
fn batch_rows_holds_for_every_columnar_input() {
    let d = dir("batches");
    for name in ["p.arrow", "p.arrows", "p.parquet"] {
        let pts = d.join(name);
        ok(&meridian(&["gen", "points", "10000", s(&pts)]));
        let out = ok(&meridian(&[
            "run",
            "examples/pip_join.masm",
            "--input",
            &format!("pts={}", s(&pts)),
            "--input",
            "zones=data/countries.geojson",
            "--batch-rows",
            "1000",
            "--out",
            s(&d.join("out")),
        ]));
        assert!(out.contains("streamed in 10 batches of at most 1000 rows (asked)"), "{name}: {out}");
        assert!(out.contains("over 10000 rows"), "{name}: {out}");
    }
}

/// A FIFO named like a columnar file is refused at once (it was opened, sniffed, closed and
/// opened again, which blocked forever); as a text input it is read as it comes.
#[cfg(unix)]
#[test]
fn a_pipe_is_refused_or_streamed_never_opened_twice() {
    let d = dir("fifo");
    for name in ["p.arrow", "p.arrows", "p.parquet"] {
        let fifo = d.join(name);
        let c = std::ffi::CString::new(s(&fifo)).unwrap();
        // SAFETY: mkfifo with a valid C string; no memory is shared.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // No writer: a reader that opened it would block here.
        let o = meridian_under(
            "",
            &[
                "run",
                "examples/pip_join.masm",
                "--input",
                &format!("pts={}", s(&fifo)),
                "--input",
                "zones=data/countries.geojson",
                "--out",
                s(&d.join("out")),
            ],
        );
        fails(&o, "a pipe: Parquet and Arrow IPC inputs are read by seeking");
    }
    // CSV from a pipe: streamed, every row.
    let fifo = d.join("pts.csv");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, "x,y\n2.35,48.85\n-74,40.7\n200,0\n").unwrap())
    };
    let out = d.join("n.csv");
    let stdout = ok(&meridian(&["convert", s(&fifo), s(&out)]));
    writer.join().unwrap();
    assert!(stdout.contains(": 3 rows"), "{stdout}");
}

/// The autotune store: `/dev/null` turns it off (it was renamed to /dev/null.corrupt.…), a
/// FIFO is an error left in place, a symbolic link stays one.
#[cfg(unix)]
#[test]
fn the_store_touches_only_a_regular_file() {
    use std::os::unix::fs::FileTypeExt;
    let with_store = |store: &Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(args)
            .current_dir(root())
            .env("MERIDIAN_AUTOTUNE_PATH", store)
            .env_remove("MERIDIAN_AUTOTUNE")
            .output()
            .unwrap()
    };
    let o = with_store(Path::new("/dev/null"), &["autotune", "show"]);
    assert_eq!(ok(&o), "autotune is off (MERIDIAN_AUTOTUNE_PATH is /dev/null)\n");
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    let d = dir("store");
    let fifo = d.join("store.fifo");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: mkfifo with a valid C string; no memory is shared.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for args in [&["autotune", "show"][..], &["autotune", "clear"]] {
        fails(&with_store(&fifo, args), "a FIFO (named pipe), not a store file");
    }
    // A run with that store runs, autotune off, and says why.
    let out = d.join("out");
    let run = ["run", "examples/measure.masm", "--input", "shapes=data/countries.geojson", "--out", s(&out)];
    let o = with_store(&fifo, &run);
    assert!(String::from_utf8_lossy(&o.stdout).contains("autotune is off"), "{o:?}");
    assert!(o.status.success());
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    // Through a link: `clear` writes the store, the link stays a link.
    let link = d.join("store.bin");
    std::os::unix::fs::symlink("real.bin", &link).unwrap();
    ok(&with_store(&link, &["autotune", "clear"]));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(d.join("real.bin").is_file());
}

/// Every MERIDIAN_* variable is checked at start, whatever the command reads.
#[test]
fn environment_variables_are_checked_at_start() {
    let with = |k: &str, v: &str| {
        Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(["verify", "examples/measure.masm"])
            .current_dir(root())
            .env(k, v)
            .output()
            .unwrap()
    };
    fails(&with("MERIDIAN_IO", "bogus"), "MERIDIAN_IO=\"bogus\" is not one of auto, uring, pread");
    fails(&with("MERIDIAN_MEMORY_BUDGET", "lots"), "MERIDIAN_MEMORY_BUDGET");
    fails(&with("MERIDIAN_GPU_REGISTERS", "9000"), "MERIDIAN_GPU_REGISTERS");
    // Empty is unset, for every variable.
    ok(&with("MERIDIAN_IO", ""));
    let o = with("MERIDIAN_EXECUTON_MODE", "cpu");
    ok(&o);
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "warning: MERIDIAN_EXECUTON_MODE is not a variable meridian reads (ignored); did you mean MERIDIAN_EXECUTION_MODE?\n"
    );
    // An event log that cannot be written: said at start; under strict mode, an error.
    let o = with("MERIDIAN_EVENT_LOG", "/nonexistent-dir/events.jsonl");
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("events will not be written"), "{o:?}");
    let o = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["verify", "examples/measure.masm"])
        .current_dir(root())
        .env("MERIDIAN_EVENT_LOG", "/dev/full")
        .env("MERIDIAN_STRICT_NATIVE", "1")
        .output()
        .unwrap();
    fails(&o, "every write to /dev/full fails");
}

/// Nested candidate loops: hours of work for a few rows (every zone of every zone of every
/// zone), and the files for it: 300 squares, 4 points.
fn slow_run(d: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let program = d.join("slow.masm");
    std::fs::copy(root().join("runtime/tests/data/nested_loops.masm"), &program).unwrap();
    let zones = d.join("zones.wkt");
    let squares: String = (0..300)
        .map(|i| {
            let x = i * 2;
            format!("POLYGON (({x} 0, {} 0, {} 1, {x} 1, {x} 0))\n", x + 1, x + 1)
        })
        .collect();
    std::fs::write(&zones, squares).unwrap();
    let pts = d.join("pts.csv");
    std::fs::write(&pts, "x,y\n0.5,0.5\n2.5,0.5\n4.5,0.5\n6.5,0.5\n").unwrap();
    (program, zones, pts)
}

/// `--timeout` stops a run that would take hours: exit 124, one line, nothing written (the
/// previous output kept); Ctrl-C does the same with 130. Either way at the next candidate-loop
/// check.
#[cfg(unix)]
#[test]
fn a_run_stops_at_its_timeout_and_on_ctrl_c() {
    let d = dir("stop");
    let (program, zones, pts) = slow_run(&d);
    let out = d.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("n.csv"), "value\n7\n").unwrap();
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = vec![
            "run".into(),
            s(&program).into(),
            "--input".into(),
            format!("pts={}", s(&pts)),
            "--input".into(),
            format!("zones={}", s(&zones)),
            "--out".into(),
            s(&out).into(),
        ];
        a.extend(extra.iter().map(|e| e.to_string()));
        a
    };
    for route in ["interp", "jit"] {
        let t0 = std::time::Instant::now();
        let o = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(args(&["--timeout", "0.5", "--route", route]))
            .env("MERIDIAN_AUTOTUNE", "off")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(124), "{route}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("timed out") && stderr.contains("--timeout 0.5s"), "{stderr}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(30), "{:?}", t0.elapsed());
        assert_eq!(std::fs::read_to_string(out.join("n.csv")).unwrap(), "value\n7\n");
    }
    let o = meridian(&["run", s(&program), "--timeout", "0", "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a positive number of seconds"), "{o:?}");

    let child = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args(&[]))
        .env("MERIDIAN_AUTOTUNE", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Past the reads and into the job.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: kill with the child's pid and SIGINT; no memory is involved.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted (Ctrl-C)"), "{stderr}");
    assert_eq!(std::fs::read_to_string(out.join("n.csv")).unwrap(), "value\n7\n");
}
