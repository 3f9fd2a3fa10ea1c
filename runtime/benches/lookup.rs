//! Lookups as a service embedding meridian makes them — "which country is this point in?" —
//! against the hand-written alternative a Rust developer would write: an `rstar` tree of the
//! countries' part boxes with `geo`'s `Contains` (each part an `IntervalTreeMultiPolygon`,
//! the fastest `geo` 0.33 route), called directly on the request's thread.
//!
//! meridian's request: the request's points into a column, bound beside the countries (bound
//! once with their index, [`Engine::bind_partial`]), run (a one-point job runs inline on the caller's thread), the
//! hits read through an output handle looked up once. Both answer the same requests; their
//! answers are checked equal first. Printed: per-request latency percentiles on one thread,
//! and requests a second from 8 threads (the 2-core machine's tasks: a multi-threaded async
//! runtime runs them the same way), with the ratio to `geo` + `rstar` in the same run.
//!
//! `cargo bench -p meridian-runtime --bench lookup` (`LOOKUP_REQUESTS=n` to change the count;
//! `LOOKUP_PROFILE=n`: only meridian's requests of n points from 8 threads — `LOOKUP_THREADS`
//! to change it — for a profiler)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // a bench fails loudly

mod common;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cities, countries, GeoRoute};
use meridian_runtime::bytecode::assemble;
use meridian_runtime::{ColumnBuilder, Engine, Input, Mode, Output, Partial, Prepared, Request};

/// meridian's side of the service: the engine, the program, its output, the countries.
struct Service {
    engine: Engine,
    program: Prepared,
    pairs: Output,
    /// The countries bound once; a request binds only its points.
    countries: Partial,
}

thread_local! {
    /// Each thread's request (a service keeps one per task): its binding, buffers and result
    /// reused by the next lookup.
    static REQUEST: RefCell<Option<Request>> = const { RefCell::new(None) };
}

impl Service {
    /// A lookup through this thread's [`Request`]: `f` reads its hits.
    fn lookup<R>(&self, pts: &[(f64, f64)], f: impl FnOnce(&[(u32, u32)]) -> R) -> R {
        REQUEST.with(|cell| {
            let mut cell = cell.borrow_mut();
            let request = cell.get_or_insert_with(|| self.countries.request("pts").unwrap());
            let result = request.points(pts).unwrap().run(&self.engine).unwrap();
            f(result.hits_of(&self.pairs).unwrap())
        })
    }

    /// The same lookup bound and run as a plain job: a column built, the points bound beside
    /// the countries, the job run.
    fn lookup_bound(&self, pts: &[(f64, f64)]) -> Vec<(u32, u32)> {
        let mut b = ColumnBuilder::new();
        for &(x, y) in pts {
            b.push_point(x, y).unwrap();
        }
        let bound = self.countries.bind([("pts", Input::from(b.finish()))]).unwrap();
        let result = self.engine.run(self.program.job(&bound)).unwrap();
        result.hits_of(&self.pairs).unwrap().to_vec()
    }
}

/// Per-request latencies of `requests` requests of `size` points each, from `pts`.
fn latencies(
    pts: &[(f64, f64)],
    size: usize,
    requests: usize,
    f: impl Fn(&[(f64, f64)]) -> usize,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(requests);
    let mut found = 0usize;
    for i in 0..requests {
        let at = (i * size) % (pts.len() - size);
        let t = Instant::now();
        found += f(&pts[at..at + size]);
        out.push(t.elapsed());
    }
    std::hint::black_box(found);
    out.sort();
    out
}

/// Requests a second from `threads` threads, each making `requests` requests of `size` points.
fn throughput(
    pts: &[(f64, f64)],
    size: usize,
    threads: usize,
    requests: usize,
    f: &(impl Fn(&[(f64, f64)]) -> usize + Sync),
) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut found = 0usize;
                for i in 0..requests {
                    let at = ((i * threads + t) * size) % (pts.len() - size);
                    found += f(&pts[at..at + size]);
                }
                std::hint::black_box(found);
            });
        }
    });
    (threads * requests) as f64 / start.elapsed().as_secs_f64()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6
}

fn main() {
    let requests: usize =
        std::env::var("LOOKUP_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let polys = Arc::new(countries());
    let city = cities();
    let pts: Vec<(f64, f64)> = (0..city.len()).filter_map(|r| city.view().point(r)).collect();
    let geo = GeoRoute::build(&polys);
    let engine = Engine::builder().mode(Mode::Cpu).workers(2).build().unwrap();
    let program = engine
        .prepare_verified(&assemble("pip_join.masm", include_str!("../../examples/pip_join.masm")).unwrap());
    let pairs = program.output("pairs").unwrap();
    let countries = engine.bind_partial(&program, [("zones", Input::indexed(polys.clone()))]).unwrap();
    let service = Service { engine, program, pairs, countries };

    // The same answers, request by request, first.
    for size in [1usize, 1000] {
        for i in 0..200 {
            let at = (i * 7919 * size) % (pts.len() - size);
            let mut want = geo.join(&pts[at..at + size]);
            want.sort_unstable();
            assert_eq!(
                service.lookup(&pts[at..at + size], <[_]>::to_vec),
                want,
                "request {i} of {size} points"
            );
            assert_eq!(
                service.lookup_bound(&pts[at..at + size]),
                want,
                "request {i} of {size} points, bound"
            );
        }
    }

    let m = |p: &[(f64, f64)]| service.lookup(p, <[_]>::len);
    let mb = |p: &[(f64, f64)]| service.lookup_bound(p).len();
    let g = |p: &[(f64, f64)]| geo.join(p).len();
    println!("lookup: {} GeoNames points × {} countries, {requests} requests a case", pts.len(), polys.len());
    // Warm both, meridian to its steady state: the program hot (JIT_HOT_ROWS rows run; until
    // then every job adds its rows to the program's shared count) and its JIT compiled (in
    // the background: small jobs do not wait for it). Then time them alternately.
    let warm = (meridian_runtime::JIT_HOT_ROWS as usize).div_ceil(1000) + 1;
    latencies(&pts, 1000, warm, m);
    std::thread::sleep(Duration::from_millis(100));
    latencies(&pts, 1, requests / 4, m);
    latencies(&pts, 1, requests / 4, g);
    let route = REQUEST.with(|r| r.borrow_mut().as_mut().map(|r| r.run(&service.engine).unwrap().route()));
    println!("meridian's route after the warm-up: {}", route.unwrap_or("none"));
    if let Ok(size) = std::env::var("LOOKUP_PROFILE") {
        // For a profiler: only meridian's requests of `size` points (1 when not a number) from
        // `LOOKUP_THREADS` threads (8).
        let size = size.parse().unwrap_or(1usize).max(1);
        let threads = std::env::var("LOOKUP_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(8usize);
        throughput(&pts, size, threads.max(1), requests / size.min(1000) + 10, &m);
        return;
    }
    latencies(&pts, 1, requests / 4, mb);
    let (lm, lg) = (latencies(&pts, 1, requests, m), latencies(&pts, 1, requests, g));
    let lb = latencies(&pts, 1, requests, mb);
    for (p, name) in [(0.5, "p50"), (0.99, "p99")] {
        let (a, b, c) = (pct(&lm, p), pct(&lg, p), pct(&lb, p));
        println!(
            "1 point, 1 thread, {name}: meridian {a:.3} µs, geo + rstar {b:.3} µs: {:.2}× (bound and run as a plain job: {c:.3} µs, {:.2}×)",
            a / b,
            c / b
        );
    }
    for (size, threads, n) in [(1usize, 8usize, requests / 8), (1000, 8, requests / 400 + 10)] {
        let (tm, tg) = (throughput(&pts, size, threads, n, &m), throughput(&pts, size, threads, n, &g));
        println!(
            "{size} point(s), {threads} threads: meridian {:.3} M points/s, geo + rstar {:.3} M points/s: {:.2}× the throughput",
            tm * size as f64 / 1e6,
            tg * size as f64 / 1e6,
            tm / tg
        );
    }
}
