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
    // The probe's text as the library gives it in this process, NVML's line, then the settings
    // and the variants.
    let probe = meridian::driver::probe().to_string();
    assert!(stdout.starts_with(&probe), "{stdout}");
    let settings: Vec<&str> = stdout[probe.len()..].lines().filter(|l| !l.is_empty()).collect();
    let names: Vec<&str> = settings
        .iter()
        .map(|l| l.split(':').next().unwrap_or(""))
        .filter(|n| !n.starts_with("variant "))
        .collect();
    assert_eq!(
        names,
        [
            "NVML",
            "execution mode",
            "memory budget",
            "io_uring",
            "cpu routes",
            "autotune store (meridian run)",
            "event log",
            "strict native (MERIDIAN_STRICT_NATIVE)",
            "environment",
            "placement under auto with a GPU (cost model by program class, 2 workers)"
        ]
        .map(
            |n| n.replace("2 workers", &format!("{} workers", std::thread::available_parallelism().unwrap()))
        ),
        "{stdout}"
    );
    assert!(stdout.contains("cpu routes: interp, jit"), "{stdout}");
    // Inline, the interpreter and the JIT on the CPU; the GPU's variant where there is one.
    let variants: Vec<&str> = settings.iter().filter_map(|l| l.strip_prefix("variant ")).collect();
    assert!(variants.len() >= 3, "{stdout}");
    assert!(variants[0].starts_with("inline (cpu interp or jit): rows 0..=64"), "{stdout}");
    assert!(variants[1].starts_with("cpu-interp (cpu interp): rows 0..=any"), "{stdout}");
    assert!(variants[2].starts_with("cpu-jit (cpu jit)"), "{stdout}");
    assert!(variants.iter().all(|v| v.contains("exact predicates")), "{stdout}");
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
