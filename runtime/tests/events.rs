//! Events and strict mode at the engine's build: an invalid `MERIDIAN_STRICT_NATIVE`, the
//! fall-back to the CPU without a GPU (an event, in memory and in the `MERIDIAN_EVENT_LOG`
//! file), and strict mode turning it into an error; the execution mode's precedence. One test:
//! it sets process-wide variables and the process-wide mode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use meridian_runtime::events::{self, LOG_ENV, STRICT_ENV};
use meridian_runtime::{Engine, EngineError, Mode};

#[test]
fn fallbacks_are_events_and_strict_mode_makes_them_errors() {
    mode_precedence();
    // The environment is process-wide: this binary holds this one test, so nothing else
    // reads it while it changes.
    std::env::set_var(STRICT_ENV, "sometimes");
    let e = Engine::builder().mode(Mode::Cpu).build().unwrap_err();
    assert!(
        matches!(e, EngineError::Config(_)) && e.to_string().contains("MERIDIAN_STRICT_NATIVE=\"sometimes\""),
        "{e}"
    );
    std::env::remove_var(STRICT_ENV);

    if meridian_runtime::driver::probe().unusable().is_none() {
        eprintln!("fallbacks_are_events_and_strict_mode_makes_them_errors: skipped: a CUDA device is present (no fall-back to provoke)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("meridian-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("events.jsonl");
    std::env::set_var(LOG_ENV, &log);
    let engine = Engine::builder().mode(Mode::Auto).workers(1).build().unwrap();
    assert_eq!(engine.backend().name(), "cpu");
    let recent = events::recent();
    let e = recent.iter().rev().find(|e| e.surface == "engine").unwrap_or_else(|| panic!("{recent:?}"));
    assert_eq!(e.selected, "cpu");
    assert!(e.requested.starts_with("auto") && e.reason.contains("no usable CUDA device"), "{e}");
    // The file has it, one JSON object per line, every field there.
    let text = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    for field in ["surface", "requested", "selected", "reason", "detail", "at_ms"] {
        assert!(!line[field].is_null(), "{field} missing: {line}");
    }
    assert_eq!(line["surface"], "engine");

    // Strict: the builder's switch, and the variable.
    let e = Engine::builder().mode(Mode::Auto).strict_native(true).build().unwrap_err();
    assert!(matches!(e, EngineError::Strict(_)) && e.to_string().contains("no usable CUDA device"), "{e}");
    std::env::set_var(STRICT_ENV, "1");
    assert!(matches!(Engine::builder().mode(Mode::Auto).build(), Err(EngineError::Strict(_))));
    // The builder wins over the variable; mode cpu is no fall-back.
    assert!(Engine::builder().mode(Mode::Auto).strict_native(false).build().is_ok());
    assert!(Engine::builder().mode(Mode::Cpu).build().is_ok());
    std::env::remove_var(STRICT_ENV);
    std::env::remove_var(LOG_ENV);
    let _ = std::fs::remove_dir_all(&dir);
}

/// builder > `set_process_mode` > `MERIDIAN_EXECUTION_MODE` > auto; a bad variable is an error
/// naming it.
fn mode_precedence() {
    use meridian_runtime::{resolve_mode, set_process_mode, MODE_ENV};
    std::env::remove_var(MODE_ENV);
    assert_eq!(resolve_mode(None).unwrap(), (Mode::Auto, "default"));
    std::env::set_var(MODE_ENV, "cpu");
    assert_eq!(resolve_mode(None).unwrap(), (Mode::Cpu, MODE_ENV));
    set_process_mode(Some(Mode::Gpu));
    assert_eq!(resolve_mode(None).unwrap(), (Mode::Gpu, "process"));
    assert_eq!(resolve_mode(Some(Mode::Cpu)).unwrap(), (Mode::Cpu, "builder"));
    let e = Engine::builder().mode(Mode::Cpu).build().unwrap();
    assert_eq!((e.mode(), e.mode_source()), (Mode::Cpu, "builder"));
    set_process_mode(Some(Mode::Cpu));
    let e = Engine::builder().build().unwrap();
    assert_eq!((e.mode(), e.mode_source()), (Mode::Cpu, "process"));
    set_process_mode(None);
    std::env::set_var(MODE_ENV, "fast");
    let err = Engine::builder().build().unwrap_err();
    assert!(err.to_string().contains("MERIDIAN_EXECUTION_MODE=\"fast\""), "{err}");
    std::env::remove_var(MODE_ENV);
}
