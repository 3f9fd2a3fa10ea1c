//! The CPU JIT route against the interpreter and against the kernels called from Rust, in
//! one process, after checking that every route gives identical outputs (1 thread each):
//!
//! - `pip_join/*`: `examples/pip_join.masm`, the same join with `count` instead of `emit`, and
//!   the same join spelled with `jt`/`jmp` (a spelling no idiom of the interpreter covers),
//!   each through `Interpreter::run` and `JitProgram::run`; `kernel_direct` is
//!   `SpatialIndex::join_points`;
//! - `arith/*`: an arithmetic-heavy program (a Mercator projection by polynomial series and
//!   a classification: 60 f64/bool ops per row) through both routes; `rust_direct` is the
//!   same arithmetic written in Rust over the coordinates;
//! - `compile/*`: `JitProgram::compile` of each example program.
//!
//! On the cities (GeoNames, 235k) and on 2M uniform points, against the Natural Earth
//! countries. `cargo bench -p meridian-runtime --bench jit`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // a bench fails loudly

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{cities, countries, uniform};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use meridian_runtime::bytecode::{assemble, VerifiedProgram};
use meridian_runtime::kernels::index::SpatialIndex;
use meridian_runtime::kernels::interp::{BoundInputs, Input, Interpreter, OutputBuffers, Scratch};
use meridian_runtime::kernels::jit::JitProgram;

const COUNT: &str = "
.program pip_count
.input  pts    points
.input  zones  polygons indexed
.output total  count
    load     g0, pts
    probe    c0, zones, g0
next:
    cnext    g1, c0, done
    contains b0, g1, g0
    jf       b0, next
    count    total
    jmp      next
done:
    halt
";

const JT_SPELLED: &str = "
.program pip_jt
.input  pts    points
.input  zones  polygons indexed
.output pairs  hits
    load     g0, pts
    probe    c0, zones, g0
next:
    cnext    g1, c0, done
    within   b0, g0, g1
    jt       b0, hit
    jmp      next
hit:
    emit     pairs, g1
    jmp      next
done:
    halt
";

/// Web Mercator by series (sin by its Taylor polynomial to x^9, atanh to t^9) and a
/// classification by hemisphere and band.
const ARITH: &str = include_str!("../../benches/mercator.masm");

/// `ARITH` in Rust over the coordinates.
fn arith_direct(xy: &[(f64, f64)], out: &mut Vec<(f64, f64, f64, bool)>) {
    out.clear();
    for &(x, y) in xy {
        let (d, r) = (0.017453292519943295, 6378137.0);
        let mx = x * d * r;
        let phi = y.clamp(-85.0, 85.0) * d;
        let p2 = phi * phi;
        let s = ((((2.755731922398589e-06 * p2 - 0.0001984126984126984) * p2 + 0.008333333333333333) * p2
            - 0.16666666666666666)
            * p2
            + 1.0)
            * phi;
        let s2 = s * s;
        let a = ((((0.1111111111111111 * s2 + 0.14285714285714285) * s2 + 0.2) * s2 + 0.3333333333333333)
            * s2
            + 1.0)
            * s;
        let ay = y.abs();
        let band = if ay < 23.43 {
            1.0
        } else if ay < 66.56 {
            2.0
        } else {
            3.0
        };
        let one = ay.sqrt() / ay.sqrt();
        out.push((mx, a * r, band * one, y > 0.0));
    }
}

fn program(name: &str, text: &str) -> VerifiedProgram {
    assemble(name, text).unwrap()
}

struct Routes {
    interp: Interpreter,
    jit: JitProgram,
}

impl Routes {
    fn new(p: &VerifiedProgram) -> Routes {
        Routes { interp: Interpreter::new(p), jit: JitProgram::compile(p).unwrap() }
    }

    fn run(&self, jit: bool, bound: &BoundInputs, rows: usize, s: &mut Scratch) -> OutputBuffers {
        let out = self.interp.output_buffers(0..rows, rows + 64);
        if jit {
            self.jit.run(bound, 0..rows, &out, s).unwrap();
        } else {
            self.interp.run(bound, 0..rows, &out, s).unwrap();
        }
        out
    }
}

fn bench(c: &mut Criterion) {
    let polys = Arc::new(countries());
    let index = Arc::new(SpatialIndex::build(polys.clone()));
    let join = program("pip_join.masm", include_str!("../../examples/pip_join.masm"));
    let programs = [
        ("pip_join", join),
        ("count", program("count.masm", COUNT)),
        ("jt_spelled", program("jt.masm", JT_SPELLED)),
    ];
    let arith_program = program("arith.masm", ARITH);
    let arith = Routes::new(&arith_program);
    for (name, pts) in [("cities", cities()), ("uniform_2m", uniform(2_000_000))] {
        let pts = Arc::new(pts);
        let rows = pts.len();
        let xy: Vec<(f64, f64)> = (0..rows).filter_map(|r| pts.get(r)?.coords().next()).collect();
        let inputs =
            vec![Input::rows(pts.clone()), Input { column: polys.clone(), index: Some(index.clone()) }];
        let mut s = Scratch::new();
        let mut g = c.benchmark_group(format!("jit/pip_join/{name}"));
        g.throughput(Throughput::Elements(rows as u64));
        g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
        g.bench_function(BenchmarkId::new("kernel_direct", rows), |b| {
            b.iter(|| index.join_points(pts.view()))
        });
        for (variant, p) in &programs {
            let routes = Routes::new(p);
            let bound = BoundInputs::bind(p.program(), inputs.clone()).unwrap();
            let want = format!("{:?}", routes.run(false, &bound, rows, &mut s).finish().unwrap());
            let got = format!("{:?}", routes.run(true, &bound, rows, &mut s).finish().unwrap());
            assert!(want == got, "{name}/{variant}: the JIT disagrees with the interpreter");
            for (route, jit) in [("interpreter", false), ("jit", true)] {
                g.bench_function(BenchmarkId::new(format!("{variant}/{route}"), rows), |b| {
                    b.iter(|| routes.run(jit, &bound, rows, &mut s))
                });
            }
        }
        g.finish();

        let bound = BoundInputs::bind(arith_program.program(), vec![Input::rows(pts.clone())]).unwrap();
        let want = format!("{:?}", arith.run(false, &bound, rows, &mut s).finish().unwrap());
        let got = format!("{:?}", arith.run(true, &bound, rows, &mut s).finish().unwrap());
        assert!(want == got, "{name}/arith: the JIT disagrees with the interpreter");
        let mut g = c.benchmark_group(format!("jit/arith/{name}"));
        g.throughput(Throughput::Elements(rows as u64));
        g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
        let mut direct = Vec::with_capacity(rows);
        g.bench_function(BenchmarkId::new("rust_direct", rows), |b| {
            b.iter(|| arith_direct(&xy, &mut direct))
        });
        for (route, jit) in [("interpreter", false), ("jit", true)] {
            g.bench_function(BenchmarkId::new(route, rows), |b| {
                b.iter(|| arith.run(jit, &bound, rows, &mut s))
            });
        }
        g.finish();
    }

    let mut g = c.benchmark_group("jit/compile");
    g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for name in ["measure", "bounds", "pip_join", "near", "moved"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(format!("{name}.masm"));
        let p = program(name, &std::fs::read_to_string(path).unwrap());
        g.bench_function(name, |b| b.iter(|| JitProgram::compile(&p).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
