//! The GPU JIT (`kernels::cuda::jit`): every example program and random GPU programs,
//! generated as CUDA C++, compile under NVRTC to an sm_90 cubin with no warning (CI installs
//! NVRTC and sets `MERIDIAN_REQUIRE_NVRTC=1`); and the same generated code, built as host C++
//! at test time and loaded, runs as each program's per-job kernel and gives what the
//! interpreter's per-job kernel gives (to the bit) and what the CPU interpreter gives.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use meridian_bytecode::VerifiedProgram;
use meridian_cuda_host::data::Rng;
use meridian_cuda_host::host_jit::{self, HostKernel};
use meridian_cuda_host::per_job::{run_rows, run_rows_with};
use meridian_kernels::cuda::{self, jit, jit_refusal};
use meridian_kernels::interp::BoundInputs;
use meridian_runtime::driver::{compile_cubin, nvrtc_library_present, Arch};

/// The examples and `per_generator` random GPU programs of each generator, named.
fn programs(per_generator: u64) -> Vec<(String, VerifiedProgram)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "masm"))
        .collect();
    names.sort();
    let mut out: Vec<(String, VerifiedProgram)> = names
        .iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name.clone(), common::example(&format!("{name}.masm")))
        })
        .collect();
    for seed in 0..per_generator {
        out.push((format!("flow{seed}"), common::gen::random_dataflow_program(seed, true)));
        out.push((format!("rand{seed}"), common::gen::random_gpu_program(seed)));
    }
    out
}

#[test]
fn generated_programs_compile_to_an_sm90_cubin() {
    if !nvrtc_library_present() {
        if std::env::var_os("MERIDIAN_REQUIRE_NVRTC").is_some() {
            panic!(
                "MERIDIAN_REQUIRE_NVRTC is set but libnvrtc.so.13 cannot be loaded (run .ci/install-nvrtc)"
            );
        }
        let _ = writeln!(
            std::io::stderr(),
            "generated_programs_compile_to_an_sm90_cubin: skipped: NVRTC not found"
        );
        return;
    }
    // NVRTC takes about 5 s a generated kernel on the 2-core CI machine (ptxas): the examples
    // and a few random programs; the host build below runs many more.
    let programs = programs(3);
    let (tu, refused) = jit::jit_unit(programs.iter().map(|(n, p)| (n.as_str(), p)));
    // Refused exactly where the GPU JIT refuses the program (`jit_refusal`), with its reason.
    let want: Vec<&str> =
        programs.iter().filter(|(_, p)| jit_refusal(p).is_some()).map(|(n, _)| n.as_str()).collect();
    let got: Vec<&str> = refused.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(got, want);
    assert!(refused.iter().all(|(_, why)| !why.is_empty()));
    let cubin =
        compile_cubin("jit.cu", &tu, Arch::SM_90, cuda::NVRTC_OPTIONS).unwrap_or_else(|e| panic!("{e}"));
    let elf = cubin.bytes();
    for (name, _) in programs.iter().filter(|(n, _)| !want.contains(&n.as_str())) {
        let kernel = format!("mr_jit_rows_{}", jit::identifier(name));
        assert!(elf.windows(kernel.len()).any(|w| w == kernel.as_bytes()), "{kernel} missing from the cubin");
    }
    assert!(!cubin.log().contains("warning"), "NVRTC warned:\n{}", cubin.log());
    let _ = writeln!(
        std::io::stderr(),
        "GPU JIT: {} programs generated and compiled by NVRTC, {} refused",
        programs.len() - refused.len(),
        refused.len()
    );
}

#[test]
fn generated_code_built_as_host_cpp_gives_the_interpreters_results() {
    let programs = programs(32);
    let lib = host_jit::build_library(&host_jit::host_unit(programs.iter().map(|(n, p)| (n.as_str(), p))))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut compared = 0;
    for (name, program) in &programs {
        if jit_refusal(program).is_some() {
            continue;
        }
        let kernel = HostKernel::load(&lib, name).unwrap_or_else(|e| panic!("{e}"));
        let entry = kernel.entry();
        for seed in 0..3u64 {
            let mut rng = Rng(seed ^ (name.len() as u64 * 0x9e37));
            let rows = 1 + rng.below(40) as usize;
            let inputs = common::inputs(program, &mut rng, rows);
            let bound = BoundInputs::bind(program.program(), inputs).unwrap();
            // SAFETY: `entry` is this program's generated per-job kernel.
            let got = unsafe { run_rows_with(entry, program, &bound, 0..rows) };
            let interp = run_rows(program, &bound, 0..rows);
            assert_eq!(format!("{got:?}"), format!("{interp:?}"), "{name} seed {seed}");
            let cpu = common::cpu(program, &bound, 0..rows);
            common::assert_per_job_matches(&cpu, &got, &format!("{name} seed {seed}"));
            compared += 1;
        }
    }
    assert!(compared > 150, "{compared}");
    let _ =
        writeln!(std::io::stderr(), "GPU JIT on the host: {compared} program runs equal the interpreter's");
}
