//! The point-in-polygon join (GeoNames cities × Natural Earth countries, and 2M uniform
//! points) five ways in one process, after checking that all give identical pairs:
//!
//! - `kernel_direct`: `SpatialIndex::join_points`, the kernels called from Rust, 1 thread;
//! - `interpreter`: `examples/pip_join.masm` through `Interpreter::run`, 1 thread — with
//!   `kernel_direct`, the interpreter's overhead;
//! - `engine_2_workers`: the same program through the `Engine` on 2 CPU workers (chunking,
//!   ring, hit buffer, sorted result);
//! - `geo_1_thread` / `geo_rayon_2_threads`: the fastest `geo` 0.33 route
//!   (`IntervalTreeMultiPolygon` per polygon part behind an `rstar` R-tree of part boxes),
//!   single-threaded and on a 2-thread rayon pool.
//!
//! Also timed: building the countries' `SpatialIndex` (R-tree, edge slabs, cell grid), which
//! `Engine::bind` does for an `indexed` input given without its index.
//!
//! `cargo bench -p meridian-runtime --bench pip_join`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // a bench fails loudly

use std::time::Duration;

mod common;

use common::{cities, countries, uniform, GeoRoute};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use meridian_runtime::bytecode::assemble;
use meridian_runtime::kernels::index::SpatialIndex;
use meridian_runtime::kernels::interp::{BoundInputs, Input, Interpreter, Scratch};
use meridian_runtime::{Engine, Mode};
use rayon::prelude::*;
use std::sync::Arc;

impl GeoRoute {
    /// The same join split over a rayon pool (pairs re-based to global point rows).
    fn join_par(&self, pool: &rayon::ThreadPool, pts: &[(f64, f64)]) -> Vec<(u32, u32)> {
        const CHUNK: usize = 16 * 1024;
        pool.install(|| {
            let parts: Vec<Vec<(u32, u32)>> = pts
                .par_chunks(CHUNK)
                .enumerate()
                .map(|(k, c)| {
                    let base = (k * CHUNK) as u32;
                    self.join(c).into_iter().map(|(r, p)| (r + base, p)).collect()
                })
                .collect();
            parts.concat()
        })
    }
}

fn sorted(mut v: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    v.sort_unstable();
    v
}

fn bench(c: &mut Criterion) {
    let polys = Arc::new(countries());
    let index = SpatialIndex::build(polys.clone());
    if let Some(grid) = index.grid() {
        eprintln!("countries index: cell grid {:?}, {} entries", grid.shape(), grid.entries());
    }
    c.bench_function("spatial_index_build/countries", |b| b.iter(|| SpatialIndex::build(polys.clone())));
    let geo_route = GeoRoute::build(&polys);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let program = assemble("pip_join.masm", include_str!("../../examples/pip_join.masm")).unwrap();
    let interp = Interpreter::new(&program);
    let engine = Engine::builder().mode(Mode::Cpu).workers(2).build().unwrap();
    let prepared = engine.prepare_verified(&program);
    for (name, pts) in [("cities", cities()), ("uniform_2m", uniform(2_000_000))] {
        let pts = Arc::new(pts);
        let xy: Vec<(f64, f64)> = (0..pts.len()).filter_map(|r| pts.get(r)?.coords().next()).collect();
        assert_eq!(xy.len(), pts.len(), "every benchmark point is a non-null, non-empty point");
        let inputs = vec![
            Input::rows(pts.clone()),
            Input { column: polys.clone(), index: Some(Arc::new(index.clone())) },
        ];
        let bound_inputs = BoundInputs::bind(program.program(), inputs.clone()).unwrap();
        let bound =
            engine.bind(&prepared, [("pts", inputs[0].clone()), ("zones", inputs[1].clone())]).unwrap();
        let run_interp = |scratch: &mut Scratch| {
            let out = interp.output_buffers(0..pts.len(), pts.len() + 64);
            interp.run(&bound_inputs, 0..pts.len(), &out, scratch).unwrap();
            out
        };

        let ours = sorted(index.join_points(pts.view()));
        let theirs = sorted(geo_route.join(&xy));
        assert_eq!(ours, theirs, "{name}: meridian and geo disagree");
        assert_eq!(sorted(geo_route.join_par(&pool, &xy)), ours, "{name}: geo on rayon disagrees");
        let via_engine = engine.run(prepared.job(&bound)).unwrap();
        assert_eq!(via_engine.hits("pairs").unwrap(), &ours[..], "{name}: engine disagrees");
        let out = run_interp(&mut Scratch::new());
        let meridian_runtime::kernels::interp::OutputColumn::Hits(h) = &out.finish().unwrap()[0] else {
            panic!()
        };
        assert_eq!(h, &ours, "{name}: interpreter disagrees");
        eprintln!("{name}: {} points, {} pairs, identical in all five routes", pts.len(), ours.len());

        let mut g = c.benchmark_group(format!("pip_join/{name}"));
        g.throughput(Throughput::Elements(pts.len() as u64));
        g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
        g.bench_function(BenchmarkId::new("kernel_direct", pts.len()), |b| {
            b.iter(|| index.join_points(pts.view()))
        });
        let mut scratch = Scratch::new();
        g.bench_function(BenchmarkId::new("interpreter", pts.len()), |b| b.iter(|| run_interp(&mut scratch)));
        g.bench_function(BenchmarkId::new("engine_2_workers", pts.len()), |b| {
            b.iter(|| engine.run(prepared.job(&bound)).unwrap())
        });
        g.bench_function(BenchmarkId::new("geo_1_thread", pts.len()), |b| b.iter(|| geo_route.join(&xy)));
        g.bench_function(BenchmarkId::new("geo_rayon_2_threads", pts.len()), |b| {
            b.iter(|| geo_route.join_par(&pool, &xy))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
