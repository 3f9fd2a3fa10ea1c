//! Endless input in bounded memory (issue 28): `/dev/zero` as a program, as the autotune
//! store and as each text input, and an endless pipe under a memory budget, each ends in a
//! clear error, and no child of this test grows past 512 MiB (`autotune show` on `/dev/zero`
//! took 23 GB). One test in its own binary: the peak is measured over this binary's children.

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
