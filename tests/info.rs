//! `meridian info` reports the CUDA probe without panicking, whatever the machine has, then
//! the settings that decide where and how jobs run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::process::Command;

#[test]
fn info_prints_the_probe_and_succeeds() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_meridian")).arg("info").env("RUST_BACKTRACE", "1").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stdout.starts_with("CUDA driver"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("NVRTC: ")), "{stdout}");
    // The probe's text as the library gives it in this process, then the settings.
    let probe = meridian::driver::probe().to_string();
    assert!(stdout.starts_with(&probe), "{stdout}");
    let settings: Vec<&str> = stdout[probe.len()..].lines().filter(|l| !l.is_empty()).collect();
    let names: Vec<&str> = settings.iter().map(|l| l.split(':').next().unwrap_or("")).collect();
    assert_eq!(
        names,
        [
            "execution mode",
            "io_uring",
            "cpu routes",
            "autotune store (meridian run)",
            "event log",
            "strict native (MERIDIAN_STRICT_NATIVE)"
        ],
        "{stdout}"
    );
    assert!(stdout.contains("cpu routes: interp, jit"), "{stdout}");
}

#[test]
fn info_says_where_the_mode_comes_from() {
    let run = |mode: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_meridian"));
        c.arg("info");
        match mode {
            Some(m) => c.env("MERIDIAN_EXECUTION_MODE", m),
            None => c.env_remove("MERIDIAN_EXECUTION_MODE"),
        };
        String::from_utf8(c.output().unwrap().stdout).unwrap()
    };
    assert!(run(None).contains("execution mode: auto (from default)"));
    assert!(run(Some("cpu")).contains("execution mode: cpu (from MERIDIAN_EXECUTION_MODE)"));
    assert!(run(Some("fast")).contains("execution mode: invalid: MERIDIAN_EXECUTION_MODE=\"fast\""));
}
