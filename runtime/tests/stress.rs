//! Load and shutdown through the Engine: many threads, many small jobs, hit buffers forced
//! to overflow, and shutdown under load. Every ticket must resolve exactly once with the
//! right result (or `Cancelled` after shutdown), and nothing may hang.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use meridian_runtime::bytecode::assemble;
use meridian_runtime::kernels::algo;
use meridian_runtime::kernels::column::{ColumnBuilder, GeometryColumn};
use meridian_runtime::{Bound, Engine, JobError, Mode, Prepared};

const PROGRAM: &str = "
.program stress
.input  pts    points
.input  zones  polygons indexed
.output pairs  hits
.output n      count
.output x      f64
    load     g0, pts
    x        f0, g0
    store    x, f0
    probe    c0, zones, g0
next:
    cnext    g1, c0, done
    contains b0, g1, g0
    jf       b0, next
    emit     pairs, g1
    count    n
    jmp      next
done:
    halt
";

const POINTS: usize = 997;

/// Overlapping squares, so a point lies in 0 to 3 of them.
fn zones() -> GeometryColumn {
    let mut b = ColumnBuilder::new();
    for i in 0..12 {
        let (x, y) = ((i % 4) as f64 * 2.5, (i / 4) as f64 * 2.5);
        let s = 4.0;
        b.push_polygon(&[&[(x, y), (x + s, y), (x + s, y + s), (x, y + s), (x, y)]]).unwrap();
    }
    b.finish()
}

fn points() -> GeometryColumn {
    let mut b = ColumnBuilder::new();
    for i in 0..POINTS {
        if i % 50 == 7 {
            b.push_null();
        } else {
            // A deterministic scatter over [0, 12) × [0, 9).
            let (x, y) = ((i * 37 % 1200) as f64 / 100.0 + 0.005, (i * 53 % 900) as f64 / 100.0 + 0.005);
            b.push_point(x, y).unwrap();
        }
    }
    b.finish()
}

/// What each row must produce, from the algorithms called directly.
fn expected(pts: &GeometryColumn, zones: &GeometryColumn) -> Vec<Vec<u32>> {
    (0..pts.len())
        .map(|r| match pts.get(r) {
            None => vec![],
            Some(p) => (0..zones.len())
                .filter(|&z| algo::contains(&zones.get(z).unwrap(), &p))
                .map(|z| z as u32)
                .collect(),
        })
        .collect()
}

struct Fixture {
    engine: Engine,
    prepared: Prepared,
    bound: Bound,
    want: Vec<Vec<u32>>,
}

fn fixture(workers: usize, ring: usize) -> Fixture {
    fixture_chunked(workers, ring, 16 * 1024)
}

fn fixture_chunked(workers: usize, ring: usize, chunk_rows: usize) -> Fixture {
    fixture_with(workers, ring, chunk_rows, 0)
}

fn fixture_with(workers: usize, ring: usize, chunk_rows: usize, inline_rows: usize) -> Fixture {
    // Small jobs through the ring (inline_rows 0) unless a test asks: this file tests the
    // ring and the workers.
    let engine = Engine::builder()
        .mode(Mode::Cpu)
        .workers(workers)
        .ring_capacity(ring)
        .chunk_rows(chunk_rows)
        .inline_rows(inline_rows)
        .build()
        .unwrap();
    let prepared = engine.prepare(assemble("stress.masm", PROGRAM).unwrap().program()).unwrap();
    let (pts, zones) = (points(), zones());
    let want = expected(&pts, &zones);
    assert!(want.iter().any(|w| w.len() >= 2), "fixture must have rows with several hits");
    let bound = engine.bind(&prepared, [("pts", Arc::new(pts)), ("zones", Arc::new(zones))]).unwrap();
    Fixture { engine, prepared, bound, want }
}

fn check_row(f: &Fixture, row: usize, r: &meridian_runtime::JobResult) {
    let want: Vec<(u32, u32)> = f.want[row].iter().map(|&z| (row as u32, z)).collect();
    assert_eq!(r.hits("pairs").unwrap(), &want[..], "row {row}");
    assert_eq!(r.count("n").unwrap(), want.len() as u64, "row {row}");
    let x = r.f64("x").unwrap();
    assert_eq!(x.len(), 1);
    assert_eq!(x.get(0).is_some(), row % 50 != 7, "row {row}");
}

#[test]
fn four_threads_submit_100k_small_jobs_each() {
    let f = fixture(2, 256);
    let resolved = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (f, resolved) = (&f, &resolved);
            s.spawn(move || {
                let mut window = VecDeque::new();
                for i in 0..100_000usize {
                    let row = (i * 7 + t * 13) % POINTS;
                    // Every 5th job starts with room for one hit: overflow must re-run it.
                    let mut job = f.prepared.job(&f.bound).rows(row..row + 1);
                    if i % 5 == 0 {
                        job = job.hit_capacity(1);
                    }
                    window.push_back((row, f.engine.submit(job).unwrap()));
                    if window.len() == 64 {
                        let (row, ticket) = window.pop_front().unwrap();
                        check_row(f, row, &ticket.wait().unwrap());
                        resolved.fetch_add(1, Ordering::Relaxed);
                    }
                }
                for (row, ticket) in window {
                    check_row(f, row, &ticket.wait().unwrap());
                    resolved.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(resolved.load(Ordering::Relaxed), 400_000);
}

#[test]
fn hit_capacity_one_loses_no_hits_in_a_chunked_job() {
    // 997 rows in chunks of 50: twenty chunks on two workers share one hit buffer.
    let f = fixture_chunked(2, 64, 50);
    let job = f.prepared.job(&f.bound).hit_capacity(1);
    let r = f.engine.run(job).unwrap();
    assert!(r.attempts() >= 2, "capacity 1 must overflow and re-run");
    let want: Vec<(u32, u32)> =
        f.want.iter().enumerate().flat_map(|(row, zs)| zs.iter().map(move |&z| (row as u32, z))).collect();
    assert_eq!(r.hits("pairs").unwrap(), &want[..]);
    assert_eq!(r.count("n").unwrap(), want.len() as u64);
}

#[test]
fn try_submit_hands_the_job_back_when_full() {
    // One worker, a ring of 2 slots: flood it without waiting.
    let f = fixture(1, 2);
    let mut tickets = Vec::new();
    let mut full = 0;
    for i in 0..2000 {
        match f.engine.try_submit(f.prepared.job(&f.bound).rows(i % POINTS..i % POINTS + 1)) {
            Ok(t) => tickets.push((i % POINTS, t)),
            Err(meridian_runtime::TrySubmitError::Full(job)) => {
                assert_eq!(job.row_range(), i % POINTS..i % POINTS + 1);
                full += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(full > 0, "a 2-slot ring must fill up");
    for (row, t) in tickets {
        check_row(&f, row, &t.wait().unwrap());
    }
}

#[test]
fn shutdown_under_load_resolves_every_ticket() {
    let f = fixture(2, 64);
    let (done, cancelled, refused) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..4 {
            let (f, done, cancelled, refused) = (&f, &done, &cancelled, &refused);
            s.spawn(move || {
                let mut tickets = Vec::new();
                for i in 0..20_000usize {
                    let row = (i * 11 + t) % POINTS;
                    match f.engine.submit(f.prepared.job(&f.bound).rows(row..row + 1).hit_capacity(1)) {
                        Ok(ticket) => tickets.push((row, ticket)),
                        Err(_) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                for (row, ticket) in tickets {
                    match ticket.wait() {
                        Ok(r) => {
                            check_row(f, row, &r);
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(JobError::Cancelled(_)) => {
                            cancelled.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("row {row}: {e}"),
                    }
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
        f.engine.shutdown();
    });
    let (d, c, r) = (done.into_inner(), cancelled.into_inner(), refused.into_inner());
    assert_eq!(d + c + r, 80_000, "every submission is accounted for");
    assert!(r > 0 || c > 0, "shutdown after 30 ms should interrupt 80k submissions ({d} done)");
    // After shutdown: refused, not hung.
    assert!(f.engine.submit(f.prepared.job(&f.bound)).is_err());
}

#[test]
fn tickets_are_futures() {
    let f = fixture(2, 64);
    let ticket = f.engine.submit(f.prepared.job(&f.bound).rows(3..4)).unwrap();
    let r = block_on(ticket).unwrap();
    check_row(&f, 3, &r);
}

/// A minimal executor: poll, park until woken. Enough to show the engine needs no runtime.
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn small_jobs_run_inline_give_what_the_ring_gives() {
    let inline = fixture_with(2, 64, 16 * 1024, meridian_runtime::INLINE_ROWS);
    let ring = fixture(2, 64);
    let mut reruns = 0;
    for row in 0..POINTS {
        // Room for one hit: rows with more re-run (inline, on this thread).
        let r = inline.engine.submit(inline.prepared.job(&inline.bound).rows(row..row + 1).hit_capacity(1));
        let r = r.unwrap().wait().unwrap();
        check_row(&inline, row, &r);
        reruns += usize::from(r.attempts() > 1);
        let w = ring.engine.run(ring.prepared.job(&ring.bound).rows(row..row + 1).hit_capacity(1)).unwrap();
        assert_eq!(r, w, "row {row}");
        // Engine::run takes the inline route without a ticket: the same again.
        let run = inline.engine.run(inline.prepared.job(&inline.bound).rows(row..row + 1).hit_capacity(1));
        assert_eq!(run.unwrap(), w, "row {row}");
    }
    assert!(reruns > 0, "some rows must overflow one hit");
    // A job of more rows than the inline limit still goes through the ring, and agrees.
    let many = inline.engine.run(inline.prepared.job(&inline.bound)).unwrap();
    assert_eq!(many, ring.engine.run(ring.prepared.job(&ring.bound)).unwrap());
    // After shutdown the inline route refuses too.
    inline.engine.shutdown();
    assert!(inline.engine.submit(inline.prepared.job(&inline.bound).rows(0..1)).is_err());
    assert!(matches!(
        inline.engine.run(inline.prepared.job(&inline.bound).rows(0..1)),
        Err(meridian_runtime::JobError::Cancelled(_))
    ));
    assert!(matches!(
        inline.engine.try_submit(inline.prepared.job(&inline.bound).rows(0..1)),
        Err(meridian_runtime::TrySubmitError::Shutdown(_))
    ));
}
