//! Autotune on the GPU executor (the emulated device): large jobs race the chunks each block
//! of the megakernel gets (on the GPU JIT route, the threads a block of their program kernel's
//! launch), the setting a job runs with is the one its side of the race says, the winner is
//! saved under the GPU's adapter, and an engine opened later on the same store applies it
//! without racing. Results never change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use common::{outputs, random_points, NORM as PROGRAM};
use meridian_bytecode::{assemble, VerifiedProgram};
use meridian_cuda_host::HostDevice;
use meridian_kernels::column::GeometryColumn;
use meridian_kernels::cuda::BLOCK_THREADS;
use meridian_kernels::interp::{Input, OutputColumn};
use meridian_runtime::autotune::Store;
use meridian_runtime::plan::{CutReason, Topology, GPU_CHUNKS_PER_BLOCK};
use meridian_runtime::tune::{GPU_BLOCK, GPU_CHUNKS, RACE_MIN_ROWS};
use meridian_runtime::{Engine, JobResult, Mode, Route};

const BLOCKS: u32 = 2;

fn store_path(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meridian-gpu-tune-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d.join("autotune.bin")
}

fn gpu_engine(store: &PathBuf) -> Engine {
    Engine::builder()
        .mode(Mode::Gpu)
        .workers(1)
        .gpu_device(Arc::new(HostDevice::new(BLOCKS, 32)))
        .autotune(store)
        .build()
        .unwrap()
}

/// An engine on the GPU JIT route: every GPU job runs its program's own kernel.
fn kernel_engine(store: &PathBuf, device: &Arc<HostDevice>) -> Engine {
    Engine::builder()
        .mode(Mode::Gpu)
        .workers(1)
        .gpu_device(device.clone())
        .gpu_route(Route::Jit)
        .autotune(store)
        .build()
        .unwrap()
}

/// The threads a block a program kernel's job was planned with, and whether autotune chose them.
fn block(r: &JobResult) -> (u32, bool) {
    let plan = r.plan().expect("a GPU job keeps its plan");
    let CutReason::Kernel(threads, tuned) = plan.cut_why else { panic!("not a program kernel: {plan:?}") };
    (threads, tuned)
}

/// What the CPU executor gives for `program` over `pts`.
fn on_the_cpu(program: &VerifiedProgram, pts: &Arc<GeometryColumn>) -> Vec<(String, OutputColumn)> {
    let cpu = Engine::builder().mode(Mode::Cpu).workers(1).build().unwrap();
    let p = cpu.prepare(program.program()).unwrap();
    let b = cpu.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
    outputs(&cpu.run(p.job(&b)).unwrap())
}

/// The chunks a GPU job ran in, and the chunks per block its plan says it was cut for.
fn cut(r: &JobResult) -> (usize, u32, bool) {
    let plan = r.plan().expect("a GPU job keeps its plan");
    let Topology::Gpu { chunks } = plan.topology else { panic!("not a GPU cut: {plan:?}") };
    let CutReason::Gpu(per_block, tuned) = plan.cut_why else { panic!("{:?}", plan.cut_why) };
    (chunks, per_block, tuned)
}

#[test]
fn the_gpu_cut_races_settles_and_the_next_engine_applies_it_without_racing() {
    let path = store_path("settle");
    let pts = random_points(RACE_MIN_ROWS, 7);
    let program = assemble("n.masm", PROGRAM).unwrap();
    let want = on_the_cpu(&program, &pts);

    let engine = gpu_engine(&path);
    assert_eq!(engine.backend().name(), "cuda");
    let p = engine.prepare(program.program()).unwrap();
    let b = engine.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
    let mut cuts = BTreeSet::new();
    let mut jobs = 0;
    while Store::open(&path).unwrap().store.is_empty() {
        assert!(jobs < 100, "no verdict after {jobs} jobs: {:?}", engine.autotune_log());
        let r = engine.run(p.job(&b)).unwrap();
        assert_eq!(r.backend().name(), "cuda");
        assert!(outputs(&r) == want, "a raced job gave another result");
        let (chunks, per_block, tuned) = cut(&r);
        assert!(tuned, "a large job's cut is autotune's");
        // What the race chose is what ran: the policy's chunks for that many a block.
        let expect = RACE_MIN_ROWS.div_ceil(RACE_MIN_ROWS.div_ceil((BLOCKS * per_block) as usize).max(512));
        assert_eq!(chunks, expect, "{per_block} a block");
        cuts.insert(per_block);
        jobs += 1;
        engine.autotune().unwrap().flush();
    }
    assert!(cuts.contains(&GPU_CHUNKS_PER_BLOCK) && cuts.len() >= 2, "both sides ran: {cuts:?}");
    let log = engine.autotune_log();
    assert!(log.iter().any(|l| l.contains(&format!("racing {GPU_CHUNKS}"))), "{log:?}");
    let stored = Store::open(&path).unwrap().store;
    let records: Vec<_> = stored.records().collect();
    let (key, record) = records.iter().find(|(k, _)| k.family == GPU_CHUNKS).expect("the GPU record");
    assert!(key.adapter.starts_with("gpu host emulator"), "the GPU is the adapter: {key:?}");
    let winner = record.params.gpu_chunks_per_block.expect("the winner's chunks per block");
    assert!(record.timing.samples >= 5, "{record:?}");
    drop(engine);

    let again = gpu_engine(&path);
    let p = again.prepare(program.program()).unwrap();
    let b = again.bind(&p, [("p", Input::rows(pts))]).unwrap();
    for _ in 0..3 {
        let r = again.run(p.job(&b)).unwrap();
        assert!(outputs(&r) == want);
        assert_eq!(cut(&r).1, winner, "the stored winner is applied");
    }
    let log = again.autotune_log();
    assert!(log.iter().any(|l| l.contains("gpu.chunks_per_block loaded from the store")), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("racing")), "{log:?}");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn small_gpu_jobs_and_programs_with_sums_keep_the_default_cut() {
    let path = store_path("small");
    let engine = gpu_engine(&path);
    let small = assemble("n.masm", PROGRAM).unwrap();
    let p = engine.prepare(small.program()).unwrap();
    let b = engine.bind(&p, [("p", Input::rows(random_points(4096, 8)))]).unwrap();
    for _ in 0..12 {
        assert_eq!(cut(&engine.run(p.job(&b)).unwrap()).1, GPU_CHUNKS_PER_BLOCK);
    }
    // A sum's rounding depends on how its rows are cut: never raced.
    let src = ".program s\n.input p points\n.output t sum\n load g0, p\n x f0, g0\n sum t, f0\n halt\n";
    let sums = assemble("s.masm", src).unwrap();
    let p = engine.prepare(sums.program()).unwrap();
    let b = engine.bind(&p, [("p", Input::rows(random_points(RACE_MIN_ROWS, 7)))]).unwrap();
    for _ in 0..12 {
        let (_, per_block, tuned) = cut(&engine.run(p.job(&b)).unwrap());
        assert_eq!((per_block, tuned), (GPU_CHUNKS_PER_BLOCK, false));
    }
    assert!(engine.autotune_log().is_empty(), "{:?}", engine.autotune_log());
    assert!(!path.exists());
}

#[test]
fn a_program_kernels_block_races_settles_and_the_next_engine_applies_it_without_racing() {
    let path = store_path("block");
    let pts = random_points(RACE_MIN_ROWS, 9);
    let program = assemble("n.masm", PROGRAM).unwrap();
    let want = on_the_cpu(&program, &pts);

    let device = Arc::new(HostDevice::new(2 * BLOCKS, 32));
    let engine = kernel_engine(&path, &device);
    let p = engine.prepare(program.program()).unwrap();
    let b = engine.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
    let mut planned = std::collections::BTreeMap::new();
    let mut jobs = 0;
    while !Store::open(&path).unwrap().store.records().any(|(k, _)| k.family == GPU_BLOCK) {
        assert!(jobs < 100, "no verdict after {jobs} jobs: {:?}", engine.autotune_log());
        let r = engine.run(p.job(&b)).unwrap();
        assert!(outputs(&r) == want, "a raced job gave another result");
        let (threads, tuned) = block(&r);
        assert!(tuned, "a large job's block is autotune's");
        *planned.entry(threads).or_insert(0u64) += 1;
        jobs += 1;
        engine.autotune().unwrap().flush();
    }
    // What the race chose is what the device launched, job for job.
    assert_eq!(device.program_block_threads(), planned);
    assert!(planned.contains_key(&BLOCK_THREADS) && planned.len() >= 2, "both sides ran: {planned:?}");
    let log = engine.autotune_log();
    assert!(log.iter().any(|l| l.contains(&format!("racing {GPU_BLOCK}"))), "{log:?}");
    let stored = Store::open(&path).unwrap().store;
    let records: Vec<_> = stored.records().collect();
    let (key, record) = records.iter().find(|(k, _)| k.family == GPU_BLOCK).expect("the block's record");
    assert!(key.adapter.starts_with("gpu host emulator"), "the GPU is the adapter: {key:?}");
    let winner = record.params.gpu_block.expect("the winner's threads a block");
    assert!(record.timing.samples >= 5, "{record:?}");
    drop(engine);

    let device = Arc::new(HostDevice::new(2 * BLOCKS, 32));
    let again = kernel_engine(&path, &device);
    let p = again.prepare(program.program()).unwrap();
    let b = again.bind(&p, [("p", Input::rows(pts))]).unwrap();
    for _ in 0..3 {
        let r = again.run(p.job(&b)).unwrap();
        assert!(outputs(&r) == want);
        assert_eq!(block(&r), (winner, true), "the stored winner is applied");
    }
    assert_eq!(device.program_block_threads(), [(winner, 3)].into());
    let log = again.autotune_log();
    assert!(log.iter().any(|l| l.contains("gpu.block_threads loaded from the store")), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("racing")), "{log:?}");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn small_program_kernel_jobs_and_sums_keep_the_default_block() {
    let path = store_path("small-block");
    let device = Arc::new(HostDevice::new(2 * BLOCKS, 32));
    let engine = kernel_engine(&path, &device);
    let small = assemble("n.masm", PROGRAM).unwrap();
    let p = engine.prepare(small.program()).unwrap();
    let b = engine.bind(&p, [("p", Input::rows(random_points(4096, 8)))]).unwrap();
    for _ in 0..6 {
        assert_eq!(block(&engine.run(p.job(&b)).unwrap()), (BLOCK_THREADS, false));
    }
    // A sum's rounding depends on how the device adds its blocks' parts: never raced.
    let src = ".program s\n.input p points\n.output t sum\n load g0, p\n x f0, g0\n sum t, f0\n halt\n";
    let sums = assemble("s.masm", src).unwrap();
    let p = engine.prepare(sums.program()).unwrap();
    let b = engine.bind(&p, [("p", Input::rows(random_points(RACE_MIN_ROWS, 7)))]).unwrap();
    for _ in 0..6 {
        assert_eq!(block(&engine.run(p.job(&b)).unwrap()), (BLOCK_THREADS, false));
    }
    assert_eq!(device.program_block_threads(), [(BLOCK_THREADS, 12)].into());
    assert!(engine.autotune_log().is_empty(), "{:?}", engine.autotune_log());
    assert!(!path.exists());
}
