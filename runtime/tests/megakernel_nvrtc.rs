//! NVRTC compiles the megakernel — every device source as one translation unit — to an sm_90
//! cubin, without a GPU. CI installs NVRTC and sets `MERIDIAN_REQUIRE_NVRTC=1`, so there a
//! missing NVRTC fails this test instead of skipping it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::io::Write;

use meridian_runtime::driver::resources::{kernel_resources, Budget, PTXAS_VERBOSE};
use meridian_runtime::driver::{compile_cubin, nvrtc_library_present, Arch};
use meridian_runtime::kernels::cuda;

fn nvrtc_or_skip(test: &str) -> bool {
    if nvrtc_library_present() {
        return true;
    }
    if std::env::var_os("MERIDIAN_REQUIRE_NVRTC").is_some() {
        panic!("{test}: MERIDIAN_REQUIRE_NVRTC is set but libnvrtc.so.13 cannot be loaded (run .ci/install-nvrtc)");
    }
    let _ = writeln!(
        std::io::stderr(),
        "{test}: skipped: NVRTC not found (libnvrtc.so.13; see .ci/install-nvrtc)"
    );
    false
}

#[test]
fn the_megakernel_compiles_to_an_sm90_cubin() {
    if !nvrtc_or_skip("the_megakernel_compiles_to_an_sm90_cubin") {
        return;
    }
    let source = cuda::megakernel_source();
    let options = [cuda::NVRTC_OPTIONS, &[PTXAS_VERBOSE]].concat();
    let cubin =
        compile_cubin("megakernel.cu", &source, Arch::SM_90, &options).unwrap_or_else(|e| panic!("{e}"));
    let elf = cubin.bytes();
    assert!(elf.starts_with(b"\x7fELF"));
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 190, "EM_CUDA");
    let name = cuda::MEGAKERNEL.as_bytes();
    assert!(elf.windows(name.len()).any(|w| w == name), "{} missing from the cubin", cuda::MEGAKERNEL);
    assert!(!cubin.log().contains("warning"), "NVRTC warned:\n{}", cubin.log());
    // What each kernel takes of an SM (`-- --nocapture` prints it), held to its budget.
    let kernels = kernel_resources(cubin.log()).unwrap_or_else(|e| panic!("{e}"));
    for (name, budget) in BUDGETS {
        let k =
            kernels.iter().find(|k| k.name == *name).unwrap_or_else(|| panic!("ptxas reported no {name}"));
        let _ = writeln!(std::io::stderr(), "{k}");
        assert_eq!(k.over(&budget), None, "past its budget (docs/benchmarks/2026-12-05-kernel-resources.md)");
    }
}

/// The megakernel's and the interpreter's per-job kernel's budgets: what NVRTC 13.0 (pinned
/// by `.ci/install-nvrtc`) made of them on 2026-12-05, so that no change makes them take
/// more unseen (docs/benchmarks/2026-12-05-kernel-resources.md). The interpreter's register
/// file and geometry scratch are the stack; the goal for programs' own kernels is far
/// below (cuda-host/tests/gpu_jit.rs).
const BUDGETS: [(&str, Budget); 2] = [
    (cuda::MEGAKERNEL, Budget { registers: 255, stack: 2272, spills: 60 }),
    (cuda::PER_JOB_KERNEL, Budget { registers: 226, stack: 2256, spills: 0 }),
];
