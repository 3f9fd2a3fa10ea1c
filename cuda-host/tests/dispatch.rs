//! What a job costs the bus: the megakernel's reads of mapped host memory, its writes there
//! and its system-scope fences, counted on the emulated device (every access goes through
//! the platform helpers of `kernels/cuda/platform.cuh`), for both dispatch protocols. These
//! are the numbers the dispatch protocol is steered by without a GPU (issue 30): on a device
//! each read of host memory is a PCIe round trip and each system fence waits for one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::random_points;
use meridian_bytecode::assemble;
use meridian_cuda_host::{HostDevice, HostTraffic};
use meridian_kernels::column::ColumnBuilder;
use meridian_kernels::interp::{Input, OutputColumn};
use meridian_runtime::cuda::GpuDispatch;
use meridian_runtime::{Engine, Mode};

/// The round trip's program (`meridian bench roundtrip`): a dense output, written by row.
const DENSE: &str =
    ".program x\n.input p points\n.output x f64\n    load g0, p\n    x f0, g0\n    store x, f0\n    halt\n";
/// A program of sums only: its results are the accumulators.
const SUM: &str =
    ".program sx\n.input p points\n.output sx sum\n    load g0, p\n    x f0, g0\n    sum sx, f0\n    halt\n";

fn engine(dev: &Arc<HostDevice>, dispatch: GpuDispatch) -> Engine {
    Engine::builder()
        .mode(Mode::Gpu)
        .workers(1)
        .gpu_device(dev.clone())
        .gpu_dispatch(dispatch)
        .build()
        .unwrap()
}

fn one_point() -> Arc<meridian_kernels::column::GeometryColumn> {
    let mut b = ColumnBuilder::new();
    b.push_point(1.5, 2.0).unwrap();
    Arc::new(b.finish())
}

/// The traffic of `jobs` runs of `source` over `points`, after one warm-up run (which makes
/// the program and the points resident), with the value each run gave.
fn traffic(
    dispatch: GpuDispatch,
    source: &str,
    points: &Arc<meridian_kernels::column::GeometryColumn>,
    jobs: u64,
) -> (HostTraffic, f64) {
    let dev = Arc::new(HostDevice::new(4, 32));
    let e = engine(&dev, dispatch);
    let program = assemble("t.masm", source).unwrap();
    let p = e.prepare(program.program()).unwrap();
    let b = e.bind(&p, [("p", Input::rows(points.clone()))]).unwrap();
    let value = |r: &meridian_runtime::JobResult| match r.outputs().next() {
        Some((_, OutputColumn::F64(x))) => x.get(0).unwrap(),
        Some((_, OutputColumn::Sum(s))) => *s,
        other => panic!("unexpected output {other:?}"),
    };
    let first = value(&e.run(p.job(&b)).unwrap());
    let before = dev.traffic();
    for _ in 0..jobs {
        // Blocks add their sums in the order they finish: equal to rounding.
        let v = value(&e.run(p.job(&b)).unwrap());
        assert!((v - first).abs() <= 1e-9 * first.abs().max(1.0), "{v} vs {first}");
    }
    let counted = dev.traffic() - before;
    e.shutdown();
    (counted, first)
}

fn per_job(t: HostTraffic, jobs: u64) -> String {
    let f = |v: u64| v as f64 / jobs as f64;
    format!(
        "reads {:.2}, writes {:.2}, system fences {:.2}, device fences {:.2} a job (idle polls {} in all)",
        f(t.reads),
        f(t.writes),
        f(t.fences),
        f(t.gpu_fences),
        t.polls
    )
}

#[test]
fn a_one_row_job_costs_the_poller_two_reads_two_writes_and_no_system_fence() {
    const JOBS: u64 = 20;
    let point = one_point();
    for (name, source) in [("dense", DENSE), ("sum", SUM)] {
        let (leaders, a) = traffic(GpuDispatch::Leaders, source, &point, JOBS);
        let (poller, b) = traffic(GpuDispatch::Poller, source, &point, JOBS);
        assert_eq!(a.to_bits(), b.to_bits(), "{name}: the protocols disagree");
        eprintln!("one-row {name} job, leaders: {}", per_job(leaders, JOBS));
        eprintln!("one-row {name} job, poller:  {}", per_job(poller, JOBS));
        assert_eq!(leaders.overruns + poller.overruns, 0, "a completion overran its slot");
        // The protocol of 2026-11, as counted: the slot, the entry, `closed`, the job's head,
        // the output table, the completion slot's sequence number; the slot freed, the
        // results, the completion and its sequence number; a system fence per thread (32)
        // and one after the acquire.
        assert_eq!(leaders.reads, JOBS * 6, "{name}: {leaders:?}");
        assert_eq!(leaders.writes, JOBS * 4, "{name}: {leaders:?}");
        assert_eq!(leaders.fences, JOBS * 33, "{name}: {leaders:?}");
        // The poller: its slot's sequence number and the entry (a one-row job of dense
        // outputs has no output table: its row comes back in the completion); the completion
        // and its sequence number; no fence.
        assert_eq!(poller.reads, JOBS * 2, "{name}: {poller:?}");
        assert_eq!(poller.writes, JOBS * 2, "{name}: {poller:?}");
        assert_eq!(poller.fences, 0, "{name}: {poller:?}");
        assert_eq!(poller.gpu_fences, 0, "{name}: one chunk needs no fence: {poller:?}");
    }
}

#[test]
fn idle_blocks_of_the_poller_leave_host_memory_alone() {
    // Idle for a while with 4 blocks: under the leaders' protocol every leader polls its slot
    // in host memory; under the poller's only the one next in line does.
    let idle = |dispatch| {
        let dev = Arc::new(HostDevice::new(4, 32));
        let e = engine(&dev, dispatch);
        std::thread::sleep(Duration::from_millis(50));
        let before = dev.traffic();
        std::thread::sleep(Duration::from_millis(200));
        let t = dev.traffic() - before;
        e.shutdown();
        t
    };
    let (leaders, poller) = (idle(GpuDispatch::Leaders), idle(GpuDispatch::Poller));
    eprintln!("idle 200 ms, 4 blocks: leaders {} polls, poller {} polls", leaders.polls, poller.polls);
    assert_eq!(leaders.reads + poller.reads, 0, "idle reads that found work: {leaders:?} {poller:?}");
    assert!(poller.polls > 0, "the poller does poll: {poller:?}");
    assert!(poller.polls < leaders.polls, "leaders {leaders:?}, poller {poller:?}");
}

#[test]
fn a_large_job_is_counted_and_both_protocols_agree() {
    const ROWS: usize = 1_000_000;
    let points = random_points(ROWS, 7);
    let (leaders, a) = traffic(GpuDispatch::Leaders, SUM, &points, 1);
    let (poller, b) = traffic(GpuDispatch::Poller, SUM, &points, 1);
    eprintln!("{ROWS}-row sum job, leaders: {leaders:?}");
    eprintln!("{ROWS}-row sum job, poller:  {poller:?}");
    // Sums are added by blocks in the order they finish; the value only to rounding.
    assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0), "{a} vs {b}");
    assert_eq!(leaders.overruns + poller.overruns, 0);
    assert!(poller.fences == 0 && poller.reads < leaders.reads && poller.writes < leaders.writes);
}

/// Three f64 outputs (one not stored on some rows) and a bool: the most a one-row job carries
/// back in its completion.
const MIXED: &str = ".program mixed\n.input p points\n.output x f64\n.output east bool\n.output y f64\n\
    .output r f64\n    load g0, p\n    x f0, g0\n    y f1, g0\n    store x, f0\n    const f2, 0.0\n\
    gt b0, f0, f2\n    store east, b0\n    mul f3, f0, f1\n    store r, f3\n    jf b0, done\n    store y, f1\n\
    done:\n    halt\n";

/// Four f64 outputs: one more than a completion holds, so the job has an output area.
const WIDE: &str = ".program wide\n.input p points\n.output a f64\n.output b f64\n.output c f64\n\
    .output d f64\n    load g0, p\n    x f0, g0\n    y f1, g0\n    store a, f0\n    store b, f1\n    \
    store c, f0\n    store d, f1\n    halt\n";

#[test]
fn a_one_row_jobs_outputs_come_back_in_its_completion_as_the_cpu_computes_them() {
    let cpu = Engine::builder().mode(Mode::Cpu).workers(1).build().unwrap();
    for (name, source, table_reads) in [("mixed", MIXED, 0), ("wide", WIDE, 4)] {
        let program = assemble("t.masm", source).unwrap();
        // East and west of the meridian: y stored, then not (null).
        for (x, y) in [(1.5, 2.0), (-3.25, 0.5), (0.0, -7.0)] {
            let mut b = ColumnBuilder::new();
            b.push_point(x, y).unwrap();
            let point = Arc::new(b.finish());
            let run = |e: &Engine| {
                let p = e.prepare(program.program()).unwrap();
                let b = e.bind(&p, [("p", Input::rows(point.clone()))]).unwrap();
                let r = e.run(p.job(&b)).unwrap();
                r.outputs()
                    .map(|(n, c)| match c {
                        OutputColumn::F64(v) => format!("{n}: {:?}", v.get(0).map(f64::to_bits)),
                        OutputColumn::Bool(v) => format!("{n}: {:?}", v.get(0)),
                        other => panic!("{n}: unexpected output {other:?}"),
                    })
                    .collect::<Vec<_>>()
            };
            let want = run(&cpu);
            for dispatch in [GpuDispatch::Leaders, GpuDispatch::Poller] {
                let dev = Arc::new(HostDevice::new(4, 32));
                let e = engine(&dev, dispatch);
                assert_eq!(run(&e), want, "{name} at ({x}, {y}), {dispatch:?}");
                let before = dev.traffic();
                assert_eq!(run(&e), want, "{name} at ({x}, {y}), {dispatch:?}, resident");
                let t = dev.traffic() - before;
                e.shutdown();
                if dispatch == GpuDispatch::Poller {
                    // The slot's sequence number and the entry; an output table only for a
                    // job whose row does not fit in the completion.
                    assert_eq!(t.reads, 2 + table_reads, "{name}: {t:?}");
                    assert_eq!(t.writes, 2, "{name}: {t:?}");
                }
            }
        }
    }
    cpu.shutdown();
}
