//! `MERIDIAN_MEMORY_BUDGET`: sizes with binary suffixes, under the builder, and a bad value
//! is an error naming the variable. One test in its own binary: it sets the process's
//! environment, which every engine built meanwhile would read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use meridian_runtime::{parse_bytes, Engine, Mode, MEMORY_BUDGET_ENV};

#[test]
fn the_budget_variable_is_read_checked_and_overridden() {
    let table = [
        ("4096", Some(4096)),
        (" 64K ", Some(64 << 10)),
        ("512MiB", Some(512 << 20)),
        ("2g", Some(2 << 30)),
        ("1 TiB", Some(1 << 40)),
        ("0", Some(0)),
        ("", None),
        ("MiB", None),
        ("1.5G", None),
        ("-1", None),
        ("12 apples", None),
        ("99999999999999999999", None),
        ("16777216T", None),
    ];
    for (text, want) in table {
        assert_eq!(parse_bytes(text), want, "{text:?}");
    }
    std::env::set_var(MEMORY_BUDGET_ENV, "lots");
    let err = Engine::builder().mode(Mode::Cpu).workers(1).build().unwrap_err().to_string();
    assert!(err.contains("MERIDIAN_MEMORY_BUDGET=\"lots\" is not a size"), "{err}");
    std::env::set_var(MEMORY_BUDGET_ENV, "2MiB");
    let engine = Engine::builder().mode(Mode::Cpu).workers(1).build().unwrap();
    assert_eq!(engine.memory_budget(), Some(2 << 20));
    let engine = Engine::builder().mode(Mode::Cpu).workers(1).memory_budget(99).build().unwrap();
    assert_eq!(engine.memory_budget(), Some(99));
    std::env::remove_var(MEMORY_BUDGET_ENV);
    let engine = Engine::builder().mode(Mode::Cpu).workers(1).build().unwrap();
    assert_eq!(engine.memory_budget(), None);
}
