//! Compiles the device sources (`kernels/cuda/`) as host C++ through `kernels/cuda/host.cpp`,
//! with the flags that make their arithmetic match Rust's: no floating-point contraction, no
//! fast-math. Always optimised: the emulated megakernel is too slow to test at -O0.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../kernels/cuda");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        println!("cargo:rerun-if-changed={}", entry.path().display());
    }
    println!("cargo:rerun-if-changed={}", dir.display());
    cc::Build::new()
        .cpp(true)
        .file(dir.join("host.cpp"))
        .include(&dir)
        .std("c++17")
        .opt_level(2)
        .flag("-ffp-contract=off")
        .flag_if_supported("-fno-fast-math")
        .flag("-pthread")
        .warnings(true)
        .extra_warnings(true)
        .compile("meridian_cuda_host");
    println!("cargo:rustc-link-lib=pthread");
}
