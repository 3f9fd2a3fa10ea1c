//! The GPU backend on a real CUDA device: the example programs over the shipped data, the
//! random-program differential check, hit-overflow re-runs and round trips, each against the
//! CPU. Without a device every test prints `skipped: no CUDA device` (straight to stderr, so
//! it shows in every log) — they never pass silently. `scripts/device-evidence` runs this
//! binary on the device, also under compute-sanitizer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};

use meridian_kernels::column::ColumnBuilder;
use meridian_kernels::interp::Input;
use meridian_runtime::{Engine, Mode, Route};
use proptest::prelude::*;

use common::{cities, countries, example};

/// One engine (one megakernel holding every SM) at a time.
static DEVICE: Mutex<()> = Mutex::new(());

fn gpu_or_skip(test: &str) -> Option<(Engine, MutexGuard<'static, ()>)> {
    gpu_route_or_skip(test, Route::Interpreter)
}

/// An engine whose GPU jobs take `route` (`jit`: each program's own kernel beside the
/// megakernel's lane).
fn gpu_route_or_skip(test: &str, route: Route) -> Option<(Engine, MutexGuard<'static, ()>)> {
    if !meridian_runtime::driver::probe().has_device() {
        let _ = writeln!(std::io::stderr(), "{test}: skipped: no CUDA device");
        return None;
    }
    let guard = DEVICE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let engine = Engine::builder()
        .mode(Mode::Gpu)
        .workers(2)
        .gpu_route(route)
        .build()
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    let _ = writeln!(std::io::stderr(), "{test}: {}", engine.backend().reason);
    Some((engine, guard))
}

#[test]
fn the_examples_on_the_shipped_data_match_the_cpu() {
    let Some((gpu, _serial)) = gpu_or_skip("the_examples_on_the_shipped_data_match_the_cpu") else { return };
    let cpu = Engine::builder().mode(Mode::Cpu).build().unwrap();
    let (pts, zones) = (cities(), countries());
    let every = |n: usize| {
        let mut b = ColumnBuilder::new();
        for row in (0..pts.len()).step_by(n) {
            b.push_geom(pts.get(row).as_ref()).unwrap();
        }
        Arc::new(b.finish())
    };
    let cases: Vec<(&str, Vec<(&str, Input)>)> = vec![
        ("pip_join.masm", vec![("pts", Input::rows(pts.clone())), ("zones", Input::indexed(zones.clone()))]),
        ("measure.masm", vec![("shapes", Input::rows(zones.clone()))]),
        ("bounds.masm", vec![("shapes", Input::rows(zones.clone()))]),
        ("near.masm", vec![("pts", Input::rows(every(7))), ("sites", Input::indexed(every(50)))]),
    ];
    for (name, inputs) in cases {
        let program = example(name);
        let run = |e: &Engine| {
            let p = e.prepare(program.program()).unwrap();
            let b = e.bind(&p, inputs.clone()).unwrap();
            e.run(p.job(&b)).unwrap()
        };
        let (want, got) = (run(&cpu), run(&gpu));
        assert_eq!(got.backend().name(), "cuda", "{name}");
        for ((n, w), (_, g)) in want.outputs().zip(got.outputs()) {
            assert_eq!(w, g, "{name}: output {n}");
        }
        let _ = writeln!(std::io::stderr(), "{name}: GPU == CPU ({} outputs)", want.outputs().len());
    }
    // Geometry built on the device (each country simplified and moved), measured and probed;
    // then the fifth example, which stores the geometry it builds: each thread writes its
    // row's into the output's arena, the host assembles the column.
    let both = [("shapes", Input::rows(zones.clone())), ("zones", Input::indexed(zones.clone()))];
    let shrunk = meridian_bytecode::assemble("shrunk.masm", common::SHRUNK).unwrap();
    let (want, got) = common::cpu_and_gpu(&gpu, &shrunk, &both);
    common::assert_same_outputs(&want, &got, "shrunk.masm");
    let _ = writeln!(std::io::stderr(), "shrunk.masm (affine, simplify on the device): GPU == CPU");
    let (want, got) = common::cpu_and_gpu(&gpu, &example("moved.masm"), &both[..1]);
    common::assert_same_outputs(&want, &got, "moved.masm");
    let _ = writeln!(std::io::stderr(), "moved.masm (a geometry output on the device): GPU == CPU");
    // Everything those jobs were handed came from the heap reserved at the launch (memcheck
    // accepts nothing else): no allocation fell outside it.
    assert!(gpu.backend().reason.contains("a device heap of"), "{}", gpu.backend().reason);
    let outside: Vec<_> =
        meridian_runtime::events::recent().into_iter().filter(|e| e.surface == "memory").collect();
    assert!(outside.is_empty(), "{outside:?}");
}

#[test]
fn random_programs_match_the_cpu_interpreter() {
    let Some((gpu, _serial)) = gpu_or_skip("random_programs_match_the_cpu_interpreter") else { return };
    // MERIDIAN_DIFF_CASES: fewer under compute-sanitizer, which slows the device a hundredfold.
    let cases = std::env::var("MERIDIAN_DIFF_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&any::<u64>(), |seed| {
        common::check(&gpu, seed)?;
        common::check_constructive(&gpu, seed)
    });
    let _ = writeln!(
        std::io::stderr(),
        "device differential on the GPU (constructive programs among them): {} random programs, {} rows compared \
         with the CPU interpreter",
        common::PROGRAMS.load(Relaxed),
        common::ROWS.load(Relaxed)
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn random_programs_on_their_own_kernels_match_the_cpu_interpreter() {
    let test = "random_programs_on_their_own_kernels_match_the_cpu_interpreter";
    let Some((gpu, _serial)) = gpu_route_or_skip(test, Route::Jit) else { return };
    // Each program's kernel is compiled by NVRTC (cached on disk by MERIDIAN_CUBIN_CACHE):
    // MERIDIAN_JIT_CASES programs of each generator (the seeds are the runner's, the same each
    // run, so a run under compute-sanitizer finds them compiled).
    let cases = std::env::var("MERIDIAN_JIT_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&any::<u64>(), |seed| common::check(&gpu, seed));
    let _ = writeln!(std::io::stderr(), "{test}: {} programs on their own kernels == the CPU", 2 * cases);
    if let Err(e) = result {
        panic!("{e}");
    }
    // The examples too, each on its kernel.
    let cpu = Engine::builder().mode(Mode::Cpu).build().unwrap();
    let program = example("pip_join.masm");
    let (pts, zones) = (cities(), countries());
    let run = |e: &Engine| {
        let p = e.prepare(program.program()).unwrap();
        let b = e
            .bind(&p, [("pts", Input::rows(pts.clone())), ("zones", Input::indexed(zones.clone()))])
            .unwrap();
        e.run(p.job(&b)).unwrap()
    };
    let got = run(&gpu);
    assert_eq!(got.backend().route(), "jit", "{}", got.backend().reason);
    assert_eq!(got.hits("pairs"), run(&cpu).hits("pairs"));
    let _ =
        writeln!(std::io::stderr(), "{test}: pip_join on its kernel == the CPU: {}", got.backend().reason);
    // The split join's kernels on data that sends rows to the general kernel (exact
    // arithmetic, more than 8 hits, not points) and over many blocks whose pairs are placed
    // across the launch: the pairs, in order, and the count.
    let count =
        meridian_bytecode::assemble("pip_count.masm", include_str!("../../benches/pip_count.masm")).unwrap();
    for seed in [7, 8] {
        let (pts, zones) = common::hostile_join_inputs(seed);
        let inputs = [("pts", Input::rows(pts)), ("zones", Input::indexed(zones))];
        for program in [&program, &count] {
            let (want, got) = common::cpu_and_gpu(&gpu, program, &inputs);
            assert_eq!(got.backend().route(), "jit", "{}", got.backend().reason);
            common::assert_same_outputs(&want, &got, &format!("hostile join {seed}"));
        }
    }
    let _ = writeln!(std::io::stderr(), "{test}: the hostile joins on their kernels == the CPU");
}

#[test]
fn overflowing_hits_rerun_and_one_row_jobs_round_trip() {
    let Some((gpu, _serial)) = gpu_or_skip("overflowing_hits_rerun_and_one_row_jobs_round_trip") else {
        return;
    };
    let cpu = Engine::builder().mode(Mode::Cpu).build().unwrap();
    let program = example("pip_join.masm");
    let (pts, zones) = (cities(), countries());
    let bind = |e: &Engine| {
        let p = e.prepare(program.program()).unwrap();
        let b = e
            .bind(&p, [("pts", Input::rows(pts.clone())), ("zones", Input::indexed(zones.clone()))])
            .unwrap();
        (p, b)
    };
    let (gp, gb) = bind(&gpu);
    let (cp, cb) = bind(&cpu);
    let r = gpu.run(gp.job(&gb).hit_capacity(100)).unwrap();
    assert_eq!(r.attempts(), 2);
    assert_eq!(r.hits("pairs"), cpu.run(cp.job(&cb)).unwrap().hits("pairs"));
    for row in (0..pts.len()).step_by(997) {
        let g = gpu.run(gp.job(&gb).rows(row..row + 1)).unwrap();
        let c = cpu.run(cp.job(&cb).rows(row..row + 1)).unwrap();
        assert_eq!(g.hits("pairs"), c.hits("pairs"), "row {row}");
    }
}
