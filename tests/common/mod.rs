//! What the CLI tests share: the repository root and `meridian` run in it.
#![allow(dead_code)] // each test file uses part of it

use std::path::Path;
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `meridian ARGS` run in the repository root, without autotune.
pub fn meridian(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .current_dir(root())
        // `meridian run` autotunes into the user's cache otherwise.
        .env("MERIDIAN_AUTOTUNE", "off")
        .output()
        .unwrap()
}
