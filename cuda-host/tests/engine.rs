//! The Engine's GPU backend on the emulated device: the example programs over the shipped
//! data give the CPU interpreter's results, programs the GPU does not run are refused under
//! `gpu` and run on the CPU under `auto` with the reason, and hit overflow re-runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::sync::Arc;

use common::{cities, countries, example};
use meridian_bytecode::assemble;
use meridian_cuda_host::HostDevice;
use meridian_kernels::column::GeometryColumn;
use meridian_kernels::interp::{Input, OutputColumn};
use meridian_runtime::{Engine, EngineError, JobError, Mode};

fn gpu_engine(blocks: u32, threads: u32) -> Engine {
    Engine::builder()
        .mode(Mode::Gpu)
        .workers(1)
        .gpu_device(Arc::new(HostDevice::new(blocks, threads)))
        .build()
        .unwrap()
}

/// `examples/pip_join.masm` over `pts` and `zones` on `e`.
fn pip_join(
    e: &Engine,
    (pts, zones): &(Arc<GeometryColumn>, Arc<GeometryColumn>),
) -> meridian_runtime::JobResult {
    let program = example("pip_join.masm");
    let p = e.prepare(program.program()).unwrap();
    let b =
        e.bind(&p, [("pts", Input::rows(pts.clone())), ("zones", Input::indexed(zones.clone()))]).unwrap();
    e.run(p.job(&b)).unwrap()
}

#[test]
fn pip_join_on_the_shipped_data_matches_the_cpu() {
    let data = (cities(), countries());
    let cpu = Engine::builder().mode(Mode::Cpu).workers(2).build().unwrap();
    let gpu = gpu_engine(2, 32);
    assert_eq!(gpu.backend().name(), "cuda");
    let (want, got) = (pip_join(&cpu, &data), pip_join(&gpu, &data));
    assert_eq!(got.backend().name(), "cuda", "{:?}", got.backend());
    assert_eq!(got.hits("pairs").unwrap().len(), 224_999);
    assert_eq!(got.hits("pairs"), want.hits("pairs"));
}

#[test]
fn programs_the_gpu_does_not_run_fail_under_gpu_and_fall_back_under_auto() {
    // Five geometry outputs: one more than a device thread keeps.
    let program = assemble(
        "five.masm",
        ".program five\n.input shapes geometry\n.output a geometry\n.output b geometry\n.output c geometry\n\
         .output d geometry\n.output e geometry\n    load g0, shapes\n    store a, g0\n    store b, g0\n    \
         store c, g0\n    store d, g0\n    store e, g0\n    halt\n",
    )
    .unwrap();
    let gpu = gpu_engine(1, 8);
    let err = gpu.prepare(program.program()).unwrap_err();
    assert!(matches!(err, EngineError::GpuRefused(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("5 geometry outputs; the GPU runs at most 4"), "{text}");
    // prepare_verified lets it through; the job then fails with the same reason.
    let p = gpu.prepare_verified(&program);
    let b = gpu.bind(&p, [("shapes", countries())]).unwrap();
    match gpu.run(p.job(&b)) {
        Err(JobError::Refused(why)) => assert!(why.contains("geometry outputs"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    let auto = Engine::builder()
        .mode(Mode::Auto)
        .workers(1)
        .gpu_min_rows(0)
        .gpu_device(Arc::new(HostDevice::new(1, 8)))
        .build()
        .unwrap();
    assert_eq!(auto.backend().name(), "cuda");
    let p = auto.prepare(program.program()).unwrap();
    let b = auto.bind(&p, [("shapes", countries())]).unwrap();
    let r = auto.run(p.job(&b)).unwrap();
    assert_eq!(r.backend().name(), "cpu");
    assert!(r.backend().fallback);
    assert!(
        r.backend().reason.contains("geometry outputs")
            && r.backend().reason.contains("ran on the CPU executor"),
        "{:?}",
        r.backend()
    );
    let OutputColumn::Geometry(stored) = r.get("e").unwrap() else { panic!() };
    assert_eq!(stored.len(), 177);
    // The fall-back is an event with every field.
    let events = meridian_runtime::events::recent();
    let e = events
        .iter()
        .rev()
        .find(|e| e.surface == "job" && e.reason.contains("geometry outputs"))
        .unwrap_or_else(|| panic!("no job event: {events:?}"));
    assert_eq!((e.requested.as_str(), e.selected.as_str()), ("gpu", "cpu"));
    assert_eq!(e.detail, "177 rows");

    // Strict native: the same job fails instead of falling back, and says why.
    let strict = Engine::builder()
        .mode(Mode::Auto)
        .workers(1)
        .gpu_min_rows(0)
        .strict_native(true)
        .gpu_device(Arc::new(HostDevice::new(1, 8)))
        .build()
        .unwrap();
    let p = strict.prepare(program.program()).unwrap();
    let b = strict.bind(&p, [("shapes", countries())]).unwrap();
    match strict.run(p.job(&b)) {
        Err(JobError::Strict(why)) => {
            assert!(why.contains("MERIDIAN_STRICT_NATIVE=1") && why.contains("geometry outputs"), "{why}")
        }
        other => panic!("expected a strict refusal, got {other:?}"),
    }
}

/// The fifth example: each country moved and simplified, stored as a geometry output —
/// written by each device thread into the output's arena, assembled on the host — equal to
/// the CPU's column, row for row.
#[test]
fn geometry_outputs_match_the_cpu() {
    let inputs = [("shapes", Input::rows(countries()))];
    let (want, got) = common::cpu_and_gpu(&gpu_engine(2, 16), &example("moved.masm"), &inputs);
    assert_eq!(got.attempts(), 1, "the estimate held");
    let (Some(OutputColumn::Geometry(w)), Some(OutputColumn::Geometry(g))) =
        (want.get("moved"), got.get("moved"))
    else {
        panic!("geometry outputs")
    };
    assert_eq!(w.len(), 177);
    assert_eq!(w, g);
}

/// A stored construction outlives the register it was stored from: its slot stays taken
/// until the row ends, though the register moves on to newer constructions (which would
/// otherwise reuse the slot and overwrite it); of two stores, the last wins.
#[test]
fn a_stored_construction_keeps_its_slot_until_the_row_ends() {
    let program = assemble(
        "kept.masm",
        ".program kept\n.input shapes geometry\n.output first geometry\n.output last geometry\n    \
         load g0, shapes\n    affine g1, g0, 2.0, 0.0, 0.0, 2.0, 0.0, 0.0\n    store first, g1\n    \
         affine g1, g0, 3.0, 0.0, 0.0, 3.0, 0.0, 0.0\n    store last, g1\n    \
         affine g1, g0, 4.0, 0.0, 0.0, 4.0, 0.0, 0.0\n    affine g1, g0, 5.0, 0.0, 0.0, 5.0, 0.0, 0.0\n    \
         store last, g1\n    affine g1, g1, 6.0, 0.0, 0.0, 6.0, 0.0, 0.0\n    halt\n",
    )
    .unwrap();
    let (want, got) =
        common::cpu_and_gpu(&gpu_engine(2, 16), &program, &[("shapes", Input::rows(countries()))]);
    common::assert_same_outputs(&want, &got, "kept.masm");
}

/// More geometry than the arena's estimate (each city stores the country it falls in, far
/// larger than the average row): the job runs again with room for every word it counted.
#[test]
fn geometry_past_the_arena_reruns_with_room() {
    let program = assemble(
        "home.masm",
        ".program home\n.input pts points\n.input zones polygons indexed\n.output home geometry\n    \
         load g0, pts\n    probe c0, zones, g0\nnext:\n    cnext g1, c0, done\n    contains b0, g1, g0\n    \
         jf b0, next\n    store home, g1\n    jmp next\ndone:\n    halt\n",
    )
    .unwrap();
    let (all, zones) = (cities(), countries());
    let mut b = meridian_kernels::column::ColumnBuilder::new();
    for row in (0..all.len()).step_by(25) {
        b.push_geom(all.get(row).as_ref()).unwrap();
    }
    let pts = Arc::new(b.finish());
    let inputs = [("pts", Input::rows(pts.clone())), ("zones", Input::indexed(zones))];
    let (want, got) = common::cpu_and_gpu(&gpu_engine(2, 16), &program, &inputs);
    assert_eq!(got.attempts(), 2, "one re-run with room");
    let (Some(OutputColumn::Geometry(w)), Some(OutputColumn::Geometry(g))) =
        (want.get("home"), got.get("home"))
    else {
        panic!("geometry outputs")
    };
    assert_eq!(w.len(), pts.len());
    assert!((0..w.len()).filter(|&r| w.get(r).is_some()).count() > 8_000);
    assert_eq!(w, g);
}

#[test]
fn constructive_programs_on_the_shipped_data_match_the_cpu() {
    let program = assemble("shrunk.masm", common::SHRUNK).unwrap();
    let zones = countries();
    let inputs = [("shapes", Input::rows(zones.clone())), ("zones", Input::indexed(zones.clone()))];
    let (want, got) = common::cpu_and_gpu(&gpu_engine(2, 16), &program, &inputs);
    common::assert_same_outputs(&want, &got, "shrunk.masm");
    // The constructions did something: fewer points than the countries have, and hits.
    let Some(OutputColumn::F64(npts)) = got.get("npts") else { panic!() };
    let total: f64 = npts.iter().flatten().sum();
    let original: usize = (0..zones.len()).filter_map(|r| zones.get(r)).map(|g| g.num_points()).sum();
    assert!(total > 0.0 && (total as usize) < original, "{total} of {original}");
    assert!(got.hits("meets").is_some_and(|h| !h.is_empty()));
}

#[test]
fn measure_bounds_and_near_match_the_cpu_on_the_shipped_data() {
    let (pts, zones) = (cities(), countries());
    let cpu = Engine::builder().mode(Mode::Cpu).workers(2).build().unwrap();
    let gpu = gpu_engine(2, 16);
    let near_sites = Arc::new({
        // Every 50th city as a site, so `near` has candidates.
        let mut b = meridian_kernels::column::ColumnBuilder::new();
        for row in (0..pts.len()).step_by(50) {
            b.push_geom(pts.get(row).as_ref()).unwrap();
        }
        b.finish()
    });
    let small = Arc::new({
        let mut b = meridian_kernels::column::ColumnBuilder::new();
        for row in (0..pts.len()).step_by(37) {
            b.push_geom(pts.get(row).as_ref()).unwrap();
        }
        b.finish()
    });
    for (name, inputs) in [
        ("measure.masm", vec![("shapes", Input::rows(zones.clone()))]),
        ("bounds.masm", vec![("shapes", Input::rows(zones.clone()))]),
        (
            "near.masm",
            vec![("pts", Input::rows(small.clone())), ("sites", Input::indexed(near_sites.clone()))],
        ),
    ] {
        let program = example(name);
        let run = |e: &Engine| {
            let p = e.prepare(program.program()).unwrap();
            let b = e.bind(&p, inputs.clone()).unwrap();
            e.run(p.job(&b)).unwrap()
        };
        let (want, got) = (run(&cpu), run(&gpu));
        assert_eq!(got.backend().name(), "cuda");
        for ((n, w), (_, g)) in want.outputs().zip(got.outputs()) {
            assert_eq!(w, g, "{name}: output {n}");
        }
    }
}

#[test]
fn hits_past_the_first_capacity_rerun_with_enough_room() {
    let (pts, zones) = (cities(), countries());
    let program = example("pip_join.masm");
    let gpu = gpu_engine(2, 8);
    let p = gpu.prepare(program.program()).unwrap();
    let b = gpu.bind(&p, [("pts", Input::rows(pts.clone())), ("zones", Input::indexed(zones))]).unwrap();
    let r = gpu.run(p.job(&b).rows(0..20_000).hit_capacity(10)).unwrap();
    assert_eq!(r.attempts(), 2);
    let cpu = Engine::builder().mode(Mode::Cpu).workers(1).build().unwrap();
    let pc = cpu.prepare(program.program()).unwrap();
    let bc = cpu.bind(&pc, [("pts", Input::rows(pts)), ("zones", Input::indexed(countries()))]).unwrap();
    let want = cpu.run(pc.job(&bc).rows(0..20_000)).unwrap();
    assert_eq!(r.hits("pairs"), want.hits("pairs"));
}

/// Multipolygons with a hole, shared edges and touching parts, a line, a point and an
/// overlapping multipolygon among the indexed rows; points on a half-unit grid (vertices, edges, interiors), a null, an empty, and
/// some lines and polygons among the probes.
fn tricky() -> (Arc<GeometryColumn>, Arc<GeometryColumn>) {
    use meridian_kernels::column::{ColumnBuilder, Family};
    let mut z = ColumnBuilder::new();
    let sq = |x: f64, y: f64, s: f64| vec![(x, y), (x + s, y), (x + s, y + s), (x, y + s), (x, y)];
    z.push_parts(
        Family::MultiPolygon,
        &[vec![sq(0.0, 0.0, 4.0), sq(1.0, 1.0, 2.0)], vec![sq(4.0, 4.0, 2.0)]],
    )
    .unwrap();
    z.push_line_string(&[(0.5, -0.5), (0.5, 5.5)]).unwrap();
    z.push_point(1.0, 1.0).unwrap();
    // Invalid (overlapping parts), but both executors must still agree on it: a point on one
    // part's boundary and in the other's interior.
    z.push_parts(Family::MultiPolygon, &[vec![sq(0.5, 0.5, 3.0)], vec![sq(2.0, 2.0, 3.0)]]).unwrap();
    z.push_polygon(&[&sq(2.0, 0.0, 4.0)]).unwrap();
    z.push_null();
    z.push_empty(Family::Polygon);
    z.push_polygon(&[&[(0.0, 0.0), (6.0, 1.0), (3.0, 6.0), (0.0, 0.0)]]).unwrap();
    let mut p = ColumnBuilder::new();
    for i in 0..=14 {
        for j in 0..=14 {
            p.push_point(i as f64 * 0.5 - 0.5, j as f64 * 0.5 - 0.5).unwrap();
            if (i * 15 + j) % 50 == 7 {
                p.push_line_string(&[(0.0, 0.0), (1.0, 1.0)]).unwrap();
                p.push_polygon(&[&[(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 1.0)]]).unwrap();
            }
        }
    }
    p.push_null();
    p.push_empty(Family::Point);
    (Arc::new(z.finish()), Arc::new(p.finish()))
}

#[test]
fn point_join_and_filter_loops_match_the_cpu_on_boundary_cases() {
    let (zones, pts) = tricky();
    assert!(meridian_kernels::index::SpatialIndex::build(zones.clone()).grid().is_some());
    let cpu = Engine::builder().mode(Mode::Cpu).workers(1).build().unwrap();
    let gpu = Engine::builder()
        .mode(Mode::Gpu)
        .workers(1)
        .gpu_chunk_rows(16)
        .gpu_device(Arc::new(HostDevice::new(2, 8)))
        .build()
        .unwrap();
    let header = ".program t\n.input pts geometry\n.input zones geometry indexed\n.output pairs hits\n";
    let after = ".output flag bool\n.output candnull bool\n.output after hits\n";
    let tail = "done:\n store flag, b0\n isnull b1, g1\n store candnull, b1\n\
                again:\n cnext g2, c0, end\n emit after, g2\n jmp again\n end:\n halt\n";
    for op in [
        "contains b0, g1, g0",
        "covers b0, g1, g0",
        "touches b0, g1, g0",
        "intersects b0, g0, g1",
        "intersects b0, g1, g0",
        "disjoint b0, g1, g0",
        "disjoint b0, g0, g1",
        "within b0, g0, g1",
        "coveredby b0, g0, g1",
    ] {
        for probe in [
            "probe c0, zones, g0",
            "const f0, 0.0\n probe c0, zones, g0, f0",
            "const f0, 0.75\n probe c0, zones, g0, f0",
        ] {
            let head = format!("load g0, pts\n {probe}\n next:\n cnext g1, c0, done\n");
            let join =
                format!("{header}{head} {op}\n jf b0, next\n emit pairs, g1\n jmp next\n done:\n halt\n");
            let plain = format!(
                "{header}{after}{head} {op}\n jt b0, hit\n jmp next\n hit:\n emit pairs, g1\n jmp next\n{tail}"
            );
            // The whole-program join that counts (benches/pip_count.masm's shape): the device
            // once ran it as the emitting join and counted nothing.
            let counted = format!(
                "{}{head} {op}\n jf b0, next\n count pairs\n jmp next\n done:\n halt\n",
                header.replace("pairs hits", "pairs count")
            );
            for src in [join, plain, counted] {
                let program = assemble("t.masm", &src).unwrap();
                let run = |e: &Engine| {
                    let p = e.prepare(program.program()).unwrap();
                    let b = e
                        .bind(
                            &p,
                            [("pts", Input::rows(pts.clone())), ("zones", Input::indexed(zones.clone()))],
                        )
                        .unwrap();
                    e.run(p.job(&b)).unwrap()
                };
                let (want, got) = (run(&cpu), run(&gpu));
                assert_eq!(got.backend().name(), "cuda");
                let found = match want.count("pairs") {
                    Some(n) => n > 0,
                    None => !want.hits("pairs").unwrap().is_empty(),
                };
                assert!(found || op.starts_with("touches"), "{op}: the case tests nothing");
                for ((n, w), (_, g)) in want.outputs().zip(got.outputs()) {
                    assert_eq!(w, g, "{op} / {probe}: output {n}\n{src}");
                }
            }
        }
    }
}

#[test]
fn the_per_job_baseline_kernel_computes_what_the_interpreter_does() {
    use meridian_kernels::interp::{BoundInputs, Interpreter, Scratch};
    let zones = countries();
    for name in ["measure.masm", "bounds.masm"] {
        let program = example(name);
        let bound = BoundInputs::bind(program.program(), vec![Input::rows(zones.clone())]).unwrap();
        let it = Interpreter::new(&program);
        let out = it.output_buffers(0..zones.len(), 16);
        it.run(&bound, 0..zones.len(), &out, &mut Scratch::new()).unwrap();
        let want = out.finish().unwrap();
        let got = meridian_cuda_host::per_job::run_rows(&program, &bound, 0..zones.len());
        for (w, g) in want.iter().zip(got) {
            assert_eq!(Some(w), g.as_ref(), "{name}");
        }
    }
}

#[test]
fn the_per_job_kernel_runs_random_programs_as_the_interpreter_does() {
    // Single-threaded, so it also runs under valgrind: every device code path of the random
    // programs (interpreter, cursors, geometry) with no emulated blocks around it.
    use meridian_cuda_host::data::Rng;
    use meridian_kernels::interp::BoundInputs;
    for seed in 0..60u64 {
        let program = common::gen::random_dataflow_program(seed, true);
        let mut rng = Rng(seed);
        let rows = 1 + rng.below(40) as usize;
        let bound = BoundInputs::bind(program.program(), common::inputs(&program, &mut rng, rows)).unwrap();
        let want = common::cpu(&program, &bound, 0..rows);
        let got = meridian_cuda_host::per_job::run_rows(&program, &bound, 0..rows);
        common::assert_per_job_matches(&want, &got, &format!("seed {seed}"));
    }
}

/// compute-sanitizer's memcheck flags a resident kernel's reads of memory allocated after
/// its launch, so the device reserves a heap just before it and serves the executor from it
/// (issue 30, item 6): programs, columns, indexes and outputs past the arenas all come from
/// there (and the programs' own kernels' memory: `gpu_jit_route.rs`); only what does not fit
/// is allocated outside, and counted. The heap changes no result.
#[test]
fn the_resident_kernel_is_only_handed_memory_that_existed_at_its_launch() {
    let data = (cities(), countries());
    let want = pip_join(&Engine::builder().mode(Mode::Cpu).workers(1).build().unwrap(), &data);
    for heap in [meridian_cuda_host::DEFAULT_HEAP_BYTES, 64 << 10, 0] {
        let device = Arc::new(HostDevice::new(2, 32));
        device.set_heap_bytes(heap);
        assert_eq!(device.heap_usage(), None, "nothing reserved before the launch");
        let engine = Engine::builder().mode(Mode::Gpu).workers(1).gpu_device(device.clone()).build().unwrap();
        let got = pip_join(&engine, &data);
        assert_eq!(got.backend().name(), "cuda", "{:?}", got.backend());
        assert_eq!(got.hits("pairs"), want.hits("pairs"), "heap {heap}");
        let usage = device.heap_usage();
        eprintln!("heap {heap}: {usage:?}");
        match heap {
            0 => assert_eq!(usage, None),
            meridian_cuda_host::DEFAULT_HEAP_BYTES => {
                let usage = usage.unwrap();
                assert_eq!(usage.outside, 0, "every allocation after the launch in the heap");
                // The program, the columns, the index and 225k pairs (1.8 MB) went through it.
                assert!(usage.peak > 2 << 20, "{usage:?}");
                let reason = &engine.backend().reason;
                assert!(reason.contains("a device heap of 64 MiB"), "{reason}");
            }
            _ => assert!(usage.unwrap().outside > 0, "a heap too small: what did not fit went outside"),
        }
        drop(engine);
        assert_eq!(device.live_allocations(), 0, "everything freed, in the heap or not");
    }
}
