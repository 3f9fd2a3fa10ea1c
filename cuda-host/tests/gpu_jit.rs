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
use meridian_cuda_host::per_job::{
    interpreter_entry, run_rows, run_rows_with, run_rows_with_hits, run_split_rows, SplitRun,
};
use meridian_kernels::cuda::{self, jit, jit_refusal};
use meridian_kernels::interp::{BoundInputs, Input};
use meridian_runtime::driver::resources::{kernel_resources, Budget, PTXAS_VERBOSE};
use meridian_runtime::driver::{compile_cubin, nvrtc_library_present, Arch};

/// Budgets of programs' own kernels, from what NVRTC 13.0 (pinned by `.ci/install-nvrtc`)
/// made of them on 2026-12-05 and 2026-12-07 (docs/benchmarks/2026-12-05-kernel-resources.md,
/// 2026-12-07-join-kernels.md), so that none takes more unseen. The arithmetic bench's and the
/// point joins' fast kernels are held to the goal — 64 registers, no spills, 64 bytes of stack
/// (they take 32 and none, 46–48 and 0–32 B). The point joins' whole kernels (`join`, and the
/// general kernel of the split, which runs only the rows the fast one leaves) keep the general
/// path's candidate state and geometry scratch in local memory.
const BUDGETS: [(&str, Budget); 10] = [
    ("bench_mercator", Budget { registers: 64, stack: 64, spills: 0 }),
    ("bench_mercator_stats", Budget { registers: 32, stack: 376, spills: 0 }),
    ("measure", Budget { registers: 48, stack: 24, spills: 0 }),
    ("bounds", Budget { registers: 94, stack: 40, spills: 0 }),
    ("pip_join", Budget { registers: 214, stack: 2176, spills: 0 }),
    ("bench_pip_count", Budget { registers: 216, stack: 2176, spills: 0 }),
    ("join:pip_join", Budget { registers: 64, stack: 64, spills: 0 }),
    ("join:bench_pip_count", Budget { registers: 64, stack: 64, spills: 0 }),
    ("defer:pip_join", Budget { registers: 214, stack: 2176, spills: 0 }),
    ("defer:bench_pip_count", Budget { registers: 216, stack: 2176, spills: 0 }),
];

/// Any other program's kernel (the examples, the random programs).
const ANY_PROGRAM: Budget = Budget { registers: 255, stack: 2304, spills: 0 };

/// The `.masm` files of `dir` (from this crate's directory), sorted.
fn masm_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "masm"))
        .collect();
    files.sort();
    files
}

/// `benches/<name>.masm`, assembled.
fn bench_program(name: &str) -> VerifiedProgram {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../benches/{name}.masm"));
    let text = std::fs::read_to_string(&path).unwrap();
    meridian_bytecode::assemble(&format!("{name}.masm"), &text).unwrap_or_else(|e| panic!("{e}"))
}

/// The examples and `per_generator` random GPU programs of each generator, named.
fn programs(per_generator: u64) -> Vec<(String, VerifiedProgram)> {
    let mut out: Vec<(String, VerifiedProgram)> = masm_files("../examples")
        .iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name.clone(), common::example(&format!("{name}.masm")))
        })
        .collect();
    // The bench programs (benches/*.masm) too.
    for p in masm_files("../benches") {
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        out.push((format!("bench_{name}"), bench_program(&name)));
    }
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
    let options = [cuda::NVRTC_OPTIONS, &[PTXAS_VERBOSE]].concat();
    let cubin = compile_cubin("jit.cu", &tu, Arch::SM_90, &options).unwrap_or_else(|e| panic!("{e}"));
    // What each program's kernel takes of an SM (`-- --nocapture` prints it), held to its
    // budget.
    let kernels = kernel_resources(cubin.log()).unwrap_or_else(|e| panic!("{e}"));
    for (name, _) in programs.iter().filter(|(n, _)| !want.contains(&n.as_str())) {
        let kernel = format!("mr_jit_rows_{}", jit::identifier(name));
        let k =
            kernels.iter().find(|k| k.name == kernel).unwrap_or_else(|| panic!("ptxas reported no {kernel}"));
        let _ = writeln!(std::io::stderr(), "{k}");
        let budget = BUDGETS.iter().find(|(n, _)| n == name).map_or(&ANY_PROGRAM, |(_, b)| b);
        assert_eq!(k.over(budget), None, "past its budget (docs/benchmarks/2026-12-05-kernel-resources.md)");
    }
    // A point join's split kernels, where it splits, held to theirs (`join:` and `defer:`).
    let mut split = 0;
    for (name, program) in programs.iter().filter(|(_, p)| jit::split_join(p).is_some()) {
        for part in ["join", "defer"] {
            let kernel = format!("mr_jit_{part}_{}", jit::identifier(name));
            let k = kernels
                .iter()
                .find(|k| k.name == kernel)
                .unwrap_or_else(|| panic!("ptxas reported no {kernel}"));
            let _ = writeln!(std::io::stderr(), "{k}");
            let budget =
                BUDGETS.iter().find(|(n, _)| *n == format!("{part}:{name}")).map_or(&ANY_PROGRAM, |(_, b)| b);
            assert_eq!(k.over(budget), None, "past its budget (docs/benchmarks/2026-12-07-join-kernels.md)");
        }
        split += usize::from(jit_refusal(program).is_none());
    }
    assert!(split >= 2, "the point joins' split kernels: {split}");
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

#[test]
fn a_point_joins_split_kernels_give_the_interpreters_hits_and_counts() {
    let programs = [
        ("pip_join".to_owned(), common::example("pip_join.masm")),
        ("pip_count".to_owned(), bench_program("pip_count")),
    ];
    for (name, program) in &programs {
        assert!(jit::split_join(program).is_some(), "{name} splits");
    }
    let lib = host_jit::build_library(&host_jit::host_unit(programs.iter().map(|(n, p)| (n.as_str(), p))))
        .unwrap_or_else(|e| panic!("{e}"));
    let datasets = [
        common::hostile_join_inputs(7),
        common::hostile_join_inputs(8),
        (common::random_points(3000, 5), common::countries()),
    ];
    for (name, program) in &programs {
        let kernel = HostKernel::load(&lib, name).unwrap_or_else(|e| panic!("{e}"));
        let split = kernel.split().unwrap_or_else(|| panic!("{name}: no split kernels"));
        for (d, (pts, zones)) in datasets.iter().enumerate() {
            let inputs = vec![Input::rows(pts.clone()), Input::indexed(zones.clone())];
            let bound = BoundInputs::bind(program.program(), inputs).unwrap();
            // No rows: a launch of one block that finds nothing, inside its scratch.
            // SAFETY: the entry is this program's generated split kernels.
            let none = unsafe { run_split_rows(split, program, &bound, 5..5, 128) }.unwrap();
            assert_eq!((none.deferred, none.runs[0]), (0, 0), "{name}: no rows");
            let rows = pts.len();
            // Whole rows, and a range that starts inside a word of the row bits in blocks of
            // 64 (the blocks of a launch are then not whole).
            for (range, block) in [(0..rows, 128), (37..rows - 5, 64)] {
                let what = format!("{name}, data {d}, rows {range:?}, blocks of {block}");
                // SAFETY: the entry is this program's generated split kernels.
                let ran = unsafe { run_split_rows(split, program, &bound, range.clone(), block) };
                let SplitRun { columns: got, deferred, runs } = ran.unwrap();
                // SAFETY: the entry is this program's generated per-job kernel.
                let whole = unsafe { run_rows_with_hits(kernel.entry(), program, &bound, range.clone()) };
                let whole = whole.unwrap();
                // SAFETY: the entry is the interpreter's per-job kernel.
                let interp =
                    unsafe { run_rows_with_hits(interpreter_entry(), program, &bound, range.clone()) };
                let interp = interp.unwrap();
                assert_eq!(
                    format!("{got:?}"),
                    format!("{interp:?}"),
                    "{what}: split against the interpreter"
                );
                assert_eq!(
                    format!("{whole:?}"),
                    format!("{interp:?}"),
                    "{what}: whole against the interpreter"
                );
                let cpu = common::cpu(program, &bound, range.clone());
                assert_eq!(got.len(), cpu.len());
                assert_eq!(
                    format!("{:?}", got[0].as_ref().unwrap()),
                    format!("{:?}", cpu[0]),
                    "{what}: the CPU"
                );
                // The fast kernel takes most rows; on the hostile data it leaves some to the
                // general one (on the countries, random points need none of it).
                let hostile = d < 2;
                assert!(
                    deferred < range.len() as u64 / 2 && (deferred > 0) == hostile,
                    "{what}: {deferred} deferred"
                );
                // The fast kernel's hits are one run in row order, whatever order its blocks
                // ran in; the general kernel adds a run a row it ran with hits.
                let counted = jit::split_join(program).is_some_and(|j| j.count != 0);
                match (counted, hostile) {
                    (true, _) => assert_eq!(runs[0], 0, "{what}"),
                    (false, false) => assert_eq!(runs[0], 1, "{what}"),
                    (false, true) => {
                        assert!(runs[0] > 1 && runs[0] <= 1 + deferred * 8, "{what}: {} runs", runs[0])
                    }
                }
                let _ = writeln!(
                    std::io::stderr(),
                    "{what}: {deferred} of {} rows deferred, {} runs of hits",
                    range.len(),
                    runs[0]
                );
            }
        }
    }
}
