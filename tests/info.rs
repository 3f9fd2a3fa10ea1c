//! `meridian info` reports the CUDA probe without panicking, whatever the machine has.

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
    // The same text as the library's probe in this process.
    assert_eq!(stdout.trim_end(), meridian::driver::probe().to_string());
}
