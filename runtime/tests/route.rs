//! The CPU route: under `Route::Jit` jobs run the compiled program — through the workers, on
//! the inline route and when they re-run after a hit overflow — with the interpreter's
//! results, and say so; a build without the JIT runs them on the interpreter, records why,
//! and fails them under strict mode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::Arc;

use meridian_runtime::bytecode::assemble;
use meridian_runtime::kernels::column::ColumnBuilder;
use meridian_runtime::{Engine, Mode, Route};

const PROGRAM: &str = "
.program classify
.input  pts    points
.input  zones  polygons indexed
.output pairs  hits
.output r      f64
.output far    bool
    load     g0, pts
    x        f0, g0
    y        f1, g0
    mul      f2, f0, f0
    mul      f3, f1, f1
    add      f2, f2, f3
    sqrt     f2, f2
    store    r, f2
    const    f4, 5.0
    gt       b1, f2, f4
    store    far, b1
    probe    c0, zones, g0
next:
    cnext    g1, c0, done
    contains b0, g1, g0
    jt       b0, hit
    jmp      next
hit:
    emit     pairs, g1
    jmp      next
done:
    halt
";

fn engine(route: Route, strict: bool) -> Engine {
    Engine::builder()
        .mode(Mode::Cpu)
        .workers(2)
        .chunk_rows(64)
        .inline_rows(16)
        .route(route)
        .strict_native(strict)
        .build()
        .unwrap()
}

fn columns() -> (
    Arc<meridian_runtime::kernels::column::GeometryColumn>,
    Arc<meridian_runtime::kernels::column::GeometryColumn>,
) {
    let mut pts = ColumnBuilder::new();
    for i in 0..1000 {
        if i % 97 == 0 {
            pts.push_null();
        } else {
            pts.push_point(f64::from(i % 40) * 0.25, f64::from(i / 40) * 0.4).unwrap();
        }
    }
    let mut zones = ColumnBuilder::new();
    for k in 0..4 {
        let x = f64::from(k) * 2.5;
        zones.push_polygon(&[&[(x, 0.0), (x + 3.0, 0.0), (x + 3.0, 8.0), (x, 8.0), (x, 0.0)]]).unwrap();
    }
    (Arc::new(pts.finish()), Arc::new(zones.finish()))
}

#[test]
fn jit_route_gives_the_interpreters_results_and_says_so() {
    let program = assemble("classify.masm", PROGRAM).unwrap();
    let (pts, zones) = columns();
    let run = |engine: &Engine, rows: std::ops::Range<usize>, capacity: Option<usize>| {
        let prepared = engine.prepare_verified(&program);
        let bound = engine.bind(&prepared, [("pts", pts.clone()), ("zones", zones.clone())]).unwrap();
        let mut job = prepared.job(&bound).rows(rows);
        if let Some(c) = capacity {
            job = job.hit_capacity(c);
        }
        (engine.submit(job).unwrap().wait().unwrap(), prepared)
    };
    // Strict where the JIT is built in: a fall-back to the interpreter would fail the jobs.
    let (interp, jit) = (engine(Route::Interpreter, false), engine(Route::Jit, cfg!(feature = "jit")));
    assert_eq!(jit.route(), Route::Jit);
    // Through the workers in chunks, inline (≤ 16 rows), and re-run after an overflow.
    for (rows, capacity) in [(0..1000, None), (10..20, None), (0..1000, Some(1))] {
        let (want, _) = run(&interp, rows.clone(), capacity);
        let (got, prepared) = run(&jit, rows.clone(), capacity);
        assert_eq!(want.route(), "interp");
        if cfg!(feature = "jit") {
            assert_eq!(got.route(), "jit", "{:?}", got.backend());
            assert!(prepared.jit_compile_time().is_some());
        }
        // With capacity 1 the overflow made a second attempt, on the same route.
        assert_eq!(got.attempts(), if capacity == Some(1) { 2 } else { 1 });
        let want: Vec<_> = want.outputs().map(|(n, c)| format!("{n}: {c:?}")).collect();
        let got: Vec<_> = got.outputs().map(|(n, c)| format!("{n}: {c:?}")).collect();
        assert_eq!(got, want, "rows {rows:?}");
    }
}

#[cfg(not(feature = "jit"))]
#[test]
fn without_the_jit_feature_jobs_run_on_the_interpreter_and_say_why() {
    let program = assemble("classify.masm", PROGRAM).unwrap();
    let (pts, zones) = columns();
    let e = engine(Route::Jit, false);
    let prepared = e.prepare_verified(&program);
    let bound = e.bind(&prepared, [("pts", pts.clone()), ("zones", zones.clone())]).unwrap();
    let r = e.submit(prepared.job(&bound)).unwrap().wait().unwrap();
    assert_eq!(r.route(), "interp");
    assert!(r.backend().fallback && r.backend().reason.contains("no JIT"), "{:?}", r.backend());
    let recent = meridian_runtime::events::recent();
    let ev = recent.iter().rev().find(|e| e.surface == "route").unwrap();
    assert_eq!((ev.requested.as_str(), ev.selected.as_str()), ("jit", "interp"));
    // Strict: the job fails instead, naming why.
    let strict = engine(Route::Jit, true);
    let prepared = strict.prepare_verified(&program);
    let bound = strict.bind(&prepared, [("pts", pts), ("zones", zones)]).unwrap();
    let err = strict.submit(prepared.job(&bound)).unwrap().wait().unwrap_err();
    assert!(err.to_string().contains("no JIT"), "{err}");
}

#[test]
fn routes_parse_and_print() {
    for r in [Route::Auto, Route::Interpreter, Route::Jit] {
        assert_eq!(r.name().parse::<Route>().unwrap(), r);
    }
    let e = "fast".parse::<Route>().unwrap_err();
    assert_eq!(e.to_string(), "route \"fast\" is not one of auto, interp, jit");
    assert_eq!(Route::jit_available(), cfg!(feature = "jit"));
}

/// Under `auto` without an autotuner a program takes the JIT once it is hot (JIT_HOT_ROWS
/// rows run on the CPU in all) and keeps it; another program starts cold.
#[test]
fn auto_takes_the_jit_once_a_program_is_hot() {
    let e = Engine::builder().mode(Mode::Cpu).workers(2).build().unwrap();
    assert_eq!(e.route(), Route::Auto);
    let program = assemble("classify.masm", PROGRAM).unwrap();
    let (_, zones) = columns();
    let rows = 400_000usize;
    let mut b = ColumnBuilder::new();
    for i in 0..rows {
        b.push_point((i % 1000) as f64 / 100.0, (i / 1000) as f64 / 50.0).unwrap();
    }
    let pts = Arc::new(b.finish());
    let prepared = e.prepare_verified(&program);
    let bound = e.bind(&prepared, [("pts", pts.clone()), ("zones", zones.clone())]).unwrap();
    let mut routes = Vec::new();
    let mut results = Vec::new();
    for _ in 0..4 {
        let r = e.run(prepared.job(&bound)).unwrap();
        routes.push(r.route());
        results.push(r.outputs().map(|(n, c)| format!("{n}: {c:?}")).collect::<Vec<_>>());
    }
    let hot_at = meridian_runtime::JIT_HOT_ROWS.div_ceil(rows as u64) as usize; // the job that crosses it
    let want: Vec<&str> =
        (1..=4).map(|k| if cfg!(feature = "jit") && k >= hot_at { "jit" } else { "interp" }).collect();
    assert_eq!(routes, want);
    assert!(results.windows(2).all(|w| w[0] == w[1]), "the route changed a result");
    // Another program of the same engine is cold.
    let other = assemble("other.masm", &PROGRAM.replace(".program classify", ".program other")).unwrap();
    let p2 = e.prepare_verified(&other);
    let b2 = e.bind(&p2, [("pts", pts), ("zones", zones)]).unwrap();
    assert_eq!(e.run(p2.job(&b2)).unwrap().route(), "interp");
}
