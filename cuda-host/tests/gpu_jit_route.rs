//! The GPU JIT route in the engine, on the emulated device: programs' own kernels compiled
//! (as host C++ here, by NVRTC on a GPU) and run beside the megakernel's latency lane, with
//! results equal to the CPU's; which jobs take them under `jit` and `auto`; hit overflow
//! re-runs; a program that does not compile, and a device that fails, losing no job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::sync::Arc;

use common::{countries, example, outputs, random_points as points, NORM};
use meridian_bytecode::assemble;
use meridian_cuda_host::HostDevice;
use meridian_kernels::column::GeometryColumn;
use meridian_kernels::interp::Input;
use meridian_runtime::cuda::JoinPath;
use meridian_runtime::variants::VariantId;
use meridian_runtime::{Engine, Job, JobResult, Mode, Route};

fn engine(device: &Arc<HostDevice>, mode: Mode, route: Route) -> Engine {
    Engine::builder()
        .mode(mode)
        .workers(2)
        .gpu_device(device.clone())
        .gpu_route(route)
        .gpu_jit_rows(4_000, 1_000)
        .build()
        .unwrap()
}

fn cpu() -> Engine {
    Engine::builder().mode(Mode::Cpu).workers(1).build().unwrap()
}

/// A job of the join over `pts` against one shared index of the countries.
fn join_job(e: &Engine, zones: &Input, pts: &Arc<GeometryColumn>) -> Job {
    let p = e.prepare(example("pip_join.masm").program()).unwrap();
    let b = e.bind(&p, [("pts", Input::rows(pts.clone())), ("zones", zones.clone())]).unwrap();
    p.job(&b)
}

fn norm_job(e: &Engine, pts: &Arc<GeometryColumn>) -> Job {
    let p = e.prepare(assemble("norm.masm", NORM).unwrap().program()).unwrap();
    let b = e.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
    p.job(&b)
}

fn variant(r: &JobResult) -> VariantId {
    r.plan().unwrap().variant
}

fn why(r: &JobResult) -> String {
    r.plan().unwrap().route_why.to_string()
}

#[test]
fn under_jit_every_gpu_job_runs_its_programs_kernel_beside_a_lane_and_equals_the_cpu() {
    // The point join's kernel split in two (the default) and whole.
    for path in [JoinPath::Split, JoinPath::Join] {
        let device = Arc::new(HostDevice::new(4, 32));
        device.join_path(path);
        let e = engine(&device, Mode::Gpu, Route::Jit);
        assert_eq!(e.gpu_route(), Route::Jit);
        // The lane: half the emulated device's blocks.
        assert_eq!(device.megakernel_blocks(), 2);
        assert!(e.backend().reason.contains("latency lane"), "{}", e.backend().reason);
        let zones = Input::indexed(countries());
        let want = cpu();
        let (mut runs, mut rows, mut joins) = (0, 0, 0);
        for (n, seed) in [(1usize, 1u64), (700, 2), (3_000, 3)] {
            let pts = points(n, seed);
            let r = e.run(join_job(&e, &zones, &pts)).unwrap();
            // The join's attempts (a job whose hits overflow the capacity guessed from the
            // last runs again), and the norm job's below.
            runs += u64::from(r.attempts()) + 1;
            joins += u64::from(r.attempts());
            rows += (u64::from(r.attempts()) + 1) * n as u64;
            assert_eq!(r.backend().route(), "jit", "{}", r.backend().reason);
            assert_eq!(variant(&r), VariantId::GpuJit);
            let kernel = match path {
                JoinPath::Split => "mr_jit_join_p",
                _ => "mr_jit_rows_p",
            };
            assert!(r.backend().reason.contains(kernel), "{path:?}: {}", r.backend().reason);
            assert_eq!(why(&r), "route jit was asked for");
            assert!(outputs(&r) == outputs(&want.run(join_job(&want, &zones, &pts)).unwrap()), "join of {n}");
            let r = e.run(norm_job(&e, &pts)).unwrap();
            assert_eq!(r.backend().route(), "jit");
            assert!(r.backend().reason.contains("mr_jit_rows_p"), "{}", r.backend().reason);
            assert!(outputs(&r) == outputs(&want.run(norm_job(&want, &pts)).unwrap()), "norm of {n}");
        }
        // Every job above ran as a program's kernel (each attempt), one emulated thread a row;
        // the joins' as split kernels where they split.
        assert_eq!(device.program_runs(), (runs, rows));
        assert_eq!(device.split_runs().0, if path == JoinPath::Split { joins } else { 0 });
        // Their memory (inputs, results, the split join's scratch) came from the heap reserved
        // at the megakernel's launch, as the megakernel's own jobs' does.
        let heap = device.heap_usage().unwrap();
        assert!(heap.outside == 0 && heap.peak > 0, "{heap:?}");
        e.shutdown();
    }
}

#[test]
fn hits_that_overflow_run_again_on_the_programs_kernel() {
    let device = Arc::new(HostDevice::new(2, 32));
    let e = engine(&device, Mode::Gpu, Route::Jit);
    let want = cpu();
    let zones = Input::indexed(countries());
    let pts = points(2_000, 9);
    let r = e.run(join_job(&e, &zones, &pts).hit_capacity(3)).unwrap();
    assert_eq!(r.attempts(), 2, "room for 3 hits: a second attempt with the count the first found");
    assert_eq!(r.backend().route(), "jit");
    assert!(outputs(&r) == outputs(&want.run(join_job(&want, &zones, &pts)).unwrap()));
    assert_eq!(device.program_runs().0, 2);
}

#[test]
fn under_auto_a_program_turns_hot_compiles_in_the_background_and_large_jobs_take_its_kernel() {
    let device = Arc::new(HostDevice::new(2, 32));
    let e = engine(&device, Mode::Gpu, Route::Auto);
    let want = cpu();
    let pts = points(2_500, 4);
    let expected = outputs(&want.run(norm_job(&want, &pts)).unwrap());
    // 2,500 rows of 4,000: cold, the megakernel.
    let r = e.run(norm_job(&e, &pts)).unwrap();
    assert_eq!(variant(&r), VariantId::GpuInterp);
    assert_eq!(why(&r), "auto: cold (2500 rows run < 4000)");
    assert!(outputs(&r) == expected);
    // 5,000: hot. The compile starts on its own thread; jobs keep the megakernel meanwhile.
    let r = e.run(norm_job(&e, &pts)).unwrap();
    assert_eq!(variant(&r), VariantId::GpuInterp);
    assert!(outputs(&r) == expected);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let r = loop {
        let r = e.run(norm_job(&e, &pts)).unwrap();
        assert!(outputs(&r) == expected);
        if variant(&r) == VariantId::GpuJit {
            break r;
        }
        assert!(why(&r).contains("compiling"), "{}", why(&r));
        assert!(std::time::Instant::now() < deadline, "the kernel never compiled");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(why(&r).starts_with("auto: hot"), "{}", why(&r));
    assert_eq!(r.backend().route(), "jit");
    // Small jobs keep the lane: the kernel stays compiled, only the job's rows choose.
    let few = points(999, 5);
    let r = e.run(norm_job(&e, &few)).unwrap();
    assert_eq!(variant(&r), VariantId::GpuInterp);
    assert_eq!(why(&r), "auto: 999 rows < 1000: the megakernel's latency lane");
    assert!(outputs(&r) == outputs(&want.run(norm_job(&want, &few)).unwrap()));
    let r = e.run(norm_job(&e, &pts)).unwrap();
    assert_eq!(variant(&r), VariantId::GpuJit);
}

#[test]
fn a_program_whose_kernel_does_not_compile_stays_on_the_megakernel_and_says_why() {
    let device = Arc::new(HostDevice::new(2, 32));
    device.refuse_compiles();
    let e = engine(&device, Mode::Gpu, Route::Jit);
    let want = cpu();
    let pts = points(1_500, 6);
    let r = e.run(norm_job(&e, &pts)).unwrap();
    assert_eq!(variant(&r), VariantId::GpuInterp);
    assert_eq!(r.backend().route(), "interp");
    assert_eq!(
        why(&r),
        "route jit was asked for, but the interpreter runs it: the compiler refused the program (injected)"
    );
    assert!(outputs(&r) == outputs(&want.run(norm_job(&want, &pts)).unwrap()));
    // Asked once: the failure is kept, not compiled again.
    let r = e.run(norm_job(&e, &pts)).unwrap();
    assert_eq!(variant(&r), VariantId::GpuInterp);
    assert_eq!(device.program_runs().0, 0);
}

/// A program that builds and stores geometry: the GPU JIT refuses it (its per-job kernels
/// have no per-thread scratch and no geometry arena), so under `jit` it runs on the
/// megakernel's latency lane — whose threads' scratch is sized for the lane — saying why.
#[test]
fn a_program_that_builds_geometry_runs_on_the_lane_under_jit_and_says_why() {
    let device = Arc::new(HostDevice::new(2, 32));
    let e = engine(&device, Mode::Gpu, Route::Jit);
    let program = example("moved.masm");
    let run = |e: &Engine| {
        let p = e.prepare(program.program()).unwrap();
        let b = e.bind(&p, [("shapes", Input::rows(countries()))]).unwrap();
        e.run(p.job(&b)).unwrap()
    };
    let r = run(&e);
    assert_eq!(variant(&r), VariantId::GpuInterp);
    assert_eq!(r.backend().route(), "interp");
    let why = why(&r);
    assert!(
        why.contains("the GPU JIT does not run `affine`, `simplify`") && why.contains("geometry output"),
        "{why}"
    );
    assert!(outputs(&r) == outputs(&run(&cpu())));
    assert_eq!(device.program_runs().0, 0);
}

#[test]
fn the_megakernel_route_keeps_every_sm_and_never_compiles() {
    let device = Arc::new(HostDevice::new(4, 32));
    let e = engine(&device, Mode::Gpu, Route::Interpreter);
    assert_eq!(device.megakernel_blocks(), 4);
    let pts = points(5_000, 7);
    for _ in 0..2 {
        let r = e.run(norm_job(&e, &pts)).unwrap();
        assert_eq!(variant(&r), VariantId::GpuInterp);
        assert_eq!(why(&r), "the megakernel interprets the bytecode");
    }
    assert!(e.variants().get(VariantId::GpuJit).is_none());
    assert_eq!(device.program_runs().0, 0);
}

#[test]
fn a_device_that_fails_under_a_programs_kernel_loses_no_job() {
    let device = Arc::new(HostDevice::new(2, 32));
    // Pinned: every job of a row or more goes to the GPU while it is healthy.
    let e = Engine::builder()
        .mode(Mode::Auto)
        .workers(2)
        .gpu_device(device.clone())
        .gpu_route(Route::Jit)
        .gpu_min_rows(1)
        .build()
        .unwrap();
    let want = cpu();
    let pts = points(4_000, 8);
    let first = e.run(norm_job(&e, &pts)).unwrap();
    assert_eq!(first.backend().name(), "cuda");
    assert_eq!(first.backend().route(), "jit");
    device.inject_fault("CUDA_ERROR_ILLEGAL_ADDRESS (injected)");
    // The kernel is not started on a failed device; under `auto` the job runs on the CPU.
    let r = e.run(norm_job(&e, &pts)).unwrap();
    assert_eq!(r.backend().name(), "cpu", "{}", r.backend().reason);
    assert!(outputs(&r) == outputs(&want.run(norm_job(&want, &pts)).unwrap()));
}

#[test]
fn random_programs_on_their_own_kernels_equal_the_cpu_interpreter() {
    // Each program's kernel is its own host build (a few seconds each on 2 cores): a handful
    // of seeds here; `gpu_jit.rs` holds many more generated kernels to the interpreter's.
    let device = Arc::new(HostDevice::new(2, 32));
    let e = engine(&device, Mode::Gpu, Route::Jit);
    for seed in 0..5 {
        let before = device.program_runs().0;
        common::check(&e, seed).unwrap_or_else(|err| panic!("seed {seed}: {err}"));
        assert_eq!(device.program_runs().0, before + 2, "seed {seed}: both programs on their kernels");
    }
}
