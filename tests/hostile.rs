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
