//! A service's one-point lookup allocates nothing once warm: a [`Request`] reuses its
//! binding, buffers, stop signal and result. Counted by a global allocator that counts the
//! calling thread's allocations only (the engine's idle workers and the test harness's
//! threads are not the request path). Its own test binary: the allocator is global.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use meridian_runtime::bytecode::assemble;
use meridian_runtime::plan::Topology;
use meridian_runtime::{ColumnBuilder, Engine, EngineError, Input, JobError, Mode, Request, Route};

struct Counting;

thread_local! {
    /// Allocations (and reallocations) made by this thread while counting.
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the count is a
// const-initialised thread-local `Cell`, which allocates nothing and never re-enters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        COUNT.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        COUNT.with(|c| c.set(c.get() + 1));
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        COUNT.with(|c| c.set(c.get() + 1));
        // SAFETY: `ptr` was allocated by this allocator, which is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations this thread makes in `f`.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = COUNT.with(Cell::get);
    f();
    COUNT.with(Cell::get) - before
}

const PROGRAM: &str = "
.program lookup
.input  pts    points
.input  zones  polygons indexed
.output pairs  hits
.output found  count
    load     g0, pts
    probe    c0, zones, g0
next:
    cnext    g1, c0, done
    contains b0, g1, g0
    jf       b0, next
    emit     pairs, g1
    count    found
    jmp      next
done:
    halt
";

/// An engine, its lookup program and a request on a 4 × 4 grid of unit squares (a point
/// off the grid lines lies in square `x as usize + 4 * y as usize`).
fn service(route: Route) -> (Engine, meridian_runtime::Output, meridian_runtime::Output, Request) {
    let engine = Engine::builder().mode(Mode::Cpu).workers(1).route(route).build().unwrap();
    let program = engine.prepare_verified(&assemble("lookup.masm", PROGRAM).unwrap());
    let mut b = ColumnBuilder::new();
    for i in 0..16 {
        let (x, y) = ((i % 4) as f64, (i / 4) as f64);
        b.push_polygon(&[&[(x, y), (x + 1.0, y), (x + 1.0, y + 1.0), (x, y + 1.0), (x, y)]]).unwrap();
    }
    let zones = engine.bind_partial(&program, [("zones", Input::indexed(Arc::new(b.finish())))]).unwrap();
    let (pairs, found) = (program.output("pairs").unwrap(), program.output("found").unwrap());
    (engine, pairs, found, zones.request("pts").unwrap())
}

/// The `i`th test point and the square it lies in.
fn point(i: usize) -> ((f64, f64), u32) {
    let (x, y) = ((i * 7) % 4, (i * 3 + i / 4) % 4);
    ((x as f64 + 0.25 + (i % 5) as f64 * 0.1, y as f64 + 0.5), (x + 4 * y) as u32)
}

#[test]
fn a_warm_one_point_request_allocates_nothing_and_answers_right() {
    let routes: &[Route] =
        if cfg!(feature = "jit") { &[Route::Interpreter, Route::Jit] } else { &[Route::Interpreter] };
    for &route in routes {
        let (engine, pairs, found, mut request) = service(route);
        // Warm: the first request binds its point and sizes the buffers.
        for i in 0..8 {
            let (p, want) = point(i);
            let result = request.points(&[p]).unwrap().run(&engine).unwrap();
            assert_eq!(result.hits_of(&pairs), Some(&[(0, want)][..]));
        }
        let mut answered = 0u32;
        let n = allocations(|| {
            for i in 0..1000 {
                let (p, want) = point(i);
                let result = request.points(&[p]).unwrap().run(&engine).unwrap();
                let hits = result.hits_of(&pairs).unwrap();
                let count = result.column(&found);
                if hits == [(0, want)] && matches!(count, Some(meridian_runtime::OutputColumn::Count(1))) {
                    answered += 1;
                }
            }
        });
        assert_eq!(answered, 1000, "{route:?}: every request answered right");
        assert_eq!(n, 0, "{route:?}: allocations in 1,000 warm one-point requests");
        let result = request.points(&[(0.5, 0.5)]).unwrap().run(&engine).unwrap();
        let want = if route == Route::Jit { "jit" } else { "interp" };
        assert_eq!(result.route(), want, "the route asked for ran the requests");
        // The same result as the job bound and run the usual way, plan included.
        let result = request.points(&[(0.5, 3.5), (2.5, 0.5)]).unwrap().run(&engine).unwrap().clone();
        assert_eq!(result.hits_of(&pairs), Some(&[(0, 12), (1, 2)][..]));
        assert_eq!(result.plan().map(|p| p.rows), Some(2));
    }
}

#[test]
fn a_request_checks_its_points_and_keeps_the_last_ones_on_error() {
    let (engine, pairs, _, mut request) = service(Route::Interpreter);
    let err = request.run(&engine).unwrap_err();
    assert!(matches!(err, JobError::Refused(ref m) if m.contains("none were given")), "{err}");
    request.points(&[(1.5, 1.5)]).unwrap();
    let err = request.points(&[(0.5, f64::NAN)]).unwrap_err();
    assert!(matches!(err, EngineError::Bind(_)), "{err}");
    assert!(err.to_string().contains("input `pts` row 0"), "{err}");
    // The points before the bad ones run.
    assert_eq!(request.run(&engine).unwrap().hits_of(&pairs), Some(&[(0, 5)][..]));
    // Requests larger than the inline route go through the executor, with the same answers.
    let many: Vec<(f64, f64)> = (0..1000).map(|i| point(i).0).collect();
    let result = request.points(&many).unwrap().run(&engine).unwrap();
    let want: Vec<(u32, u32)> = (0..1000).map(|i| (i as u32, point(i).1)).collect();
    assert_eq!(result.hits_of(&pairs), Some(&want[..]));
    // Where each ran is what its plan says: the executor for 1,000 rows, this thread for one.
    assert_ne!(result.plan().unwrap().topology, Topology::Inline);
    let one = request.points(&[(0.5, 0.5)]).unwrap().run(&engine).unwrap();
    assert_eq!(one.plan().unwrap().topology, Topology::Inline);
    assert_eq!(
        request.points(&[(3.5, 3.5)]).unwrap().run(&engine).unwrap().hits_of(&pairs),
        Some(&[(0, 15)][..])
    );
    // Another engine's request is refused; so is a request on an input bound already.
    let other = Engine::builder().mode(Mode::Cpu).workers(1).build().unwrap();
    assert!(matches!(request.run(&other), Err(JobError::OtherEngine)));
    engine.shutdown();
    assert!(request.run(&engine).is_err(), "a shut-down engine runs nothing");
}
