//! The GPU JIT (`kernels::cuda::jit`): every example program and random GPU programs,
//! generated as CUDA C++, compile under NVRTC to an sm_90 cubin with no warning (CI installs
//! NVRTC and sets `MERIDIAN_REQUIRE_NVRTC=1`); and the same generated code, built as host C++
//! at test time and loaded, runs as each program's per-job kernel and gives what the
//! interpreter's per-job kernel gives (to the bit) and what the CPU interpreter gives.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use meridian_bytecode::VerifiedProgram;
use meridian_cuda_host::data::Rng;
use meridian_cuda_host::per_job::{run_rows, run_rows_with, RowsEntry};
use meridian_kernels::cuda::{self, gpu_refusal, jit};
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
    // Refused exactly where the device refuses the program, with its reason.
    let want: Vec<&str> =
        programs.iter().filter(|(_, p)| gpu_refusal(p).is_some()).map(|(n, _)| n.as_str()).collect();
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

/// The generated code of `programs` built as host C++ into a shared library in `dir`.
fn build_host(programs: &[(String, VerifiedProgram)], dir: &Path) -> PathBuf {
    let mut src = String::from(
        "#define MR_HOST 1\n#include \"megakernel.cu\"\nthread_local MrHostThread mr_host_thread;\n",
    );
    for (name, program) in programs {
        if let Ok(code) = jit::generate(program, name) {
            src.push_str(&code);
        }
    }
    let cpp = dir.join("jit.cpp");
    std::fs::write(&cpp, src).unwrap();
    let lib = dir.join("libmeridian_jit.so");
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels/cuda");
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    // The flags of the host shim's own build (cuda-host/build.rs): the same arithmetic.
    let out = Command::new(&compiler)
        .args(["-std=c++17", "-O1", "-ffp-contract=off", "-fno-fast-math", "-pthread", "-shared", "-fPIC"])
        .args(["-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-label"])
        .arg("-I")
        .arg(&include)
        .arg("-o")
        .arg(&lib)
        .arg(&cpp)
        .output()
        .unwrap_or_else(|e| panic!("{compiler}: {e}"));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{compiler} failed:\n{log}");
    lib
}

#[test]
fn generated_code_built_as_host_cpp_gives_the_interpreters_results() {
    let programs = programs(32);
    let dir = std::env::temp_dir().join(format!("meridian-gpu-jit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lib = build_host(&programs, &dir);
    // SAFETY: the library is the generated code just built; loading it runs no initialiser
    // beyond the C++ runtime's.
    let lib = unsafe { libloading::Library::new(&lib) }.unwrap();
    let mut compared = 0;
    for (name, program) in &programs {
        if gpu_refusal(program).is_some() {
            continue;
        }
        let symbol = format!("mr_jit_host_rows_{}", jit::identifier(name));
        // SAFETY: the generated entry has the per-job kernel's parameters (`RowsEntry`).
        let entry: RowsEntry = unsafe { *lib.get::<RowsEntry>(symbol.as_bytes()).unwrap() };
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
    let _ = std::fs::remove_dir_all(&dir);
}
