//! Jobs that would run for hours are stopped (issue 28: a verified 16-instruction program with
//! nested candidate loops ran about 33 hours over 4 rows): by their ticket, by a caller's
//! token, by their deadline or the engine's, on the interpreter, the JIT and the inline route,
//! at the next chunk or candidate-loop check; and the engine runs the next job as before.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian_bytecode::{assemble, VerifiedProgram};
use meridian_kernels::column::{ColumnBuilder, GeometryColumn};
use meridian_kernels::interp::Input;
use meridian_runtime::{CancelCause, CancelToken, Engine, JobError, Mode, Route};

/// Three candidate loops nested: every zone of every zone of every zone, for each row.
pub const SLOW: &str = include_str!("data/nested_loops.masm");

/// The point join, for the job after: quick, with a known answer.
const QUICK: &str = "
.program quick
.input  pts    points
.input  zones  polygons indexed
.output n      count
    load     g0, pts
    probe    c0, zones, g0
next:
    cnext    g1, c0, done
    contains b0, g1, g0
    jf       b0, next
    count    n
    jmp      next
done:
    halt
";

fn program(text: &str) -> VerifiedProgram {
    assemble("test.masm", text).unwrap()
}

/// 300 unit squares in a row: about 300³ predicates for each row of `SLOW`.
fn zones() -> Arc<GeometryColumn> {
    let mut b = ColumnBuilder::new();
    for i in 0..300 {
        let x = f64::from(i) * 2.0;
        b.push_polygon(&[&[(x, 0.0), (x + 1.0, 0.0), (x + 1.0, 1.0), (x, 1.0), (x, 0.0)]]).unwrap();
    }
    Arc::new(b.finish())
}

fn points(n: usize) -> Arc<GeometryColumn> {
    let mut b = ColumnBuilder::new();
    for i in 0..n {
        b.push_point((i % 300) as f64 * 2.0 + 0.5, 0.5).unwrap();
    }
    Arc::new(b.finish())
}

fn cpu(route: Route) -> Engine {
    // No inline route (rows go through the workers) unless a test asks for it.
    Engine::builder().mode(Mode::Cpu).workers(2).route(route).inline_rows(0).build().unwrap()
}

fn job(e: &Engine, text: &str, rows: usize) -> meridian_runtime::Job {
    let p = e.prepare(program(text).program()).unwrap();
    let b = e.bind(&p, [("pts", Input::rows(points(rows))), ("zones", Input::indexed(zones()))]).unwrap();
    p.job(&b)
}

/// The engine still runs jobs, and gets them right.
fn still_works(e: &Engine) {
    let r = e.run(job(e, QUICK, 1000)).unwrap();
    assert_eq!(r.count("n"), Some(1000));
}

#[test]
fn a_cancelled_ticket_stops_its_job_on_each_route() {
    for route in [Route::Interpreter, Route::Jit] {
        let e = cpu(route);
        let t0 = Instant::now();
        let ticket = e.submit(job(&e, SLOW, 4)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        ticket.cancel();
        let got = ticket.wait();
        assert_eq!(got.unwrap_err(), JobError::Cancelled(CancelCause::Caller), "{route:?}");
        // Four rows of 27 million predicates each would take minutes.
        assert!(t0.elapsed() < Duration::from_secs(20), "{route:?}: {:?}", t0.elapsed());
        still_works(&e);
    }
}

#[test]
fn a_deadline_stops_a_job_within_twice_its_length() {
    for route in [Route::Interpreter, Route::Jit] {
        let e = cpu(route);
        let deadline = Duration::from_millis(500);
        let t0 = Instant::now();
        let got = e.submit(job(&e, SLOW, 4).timeout(deadline)).unwrap().wait();
        let took = t0.elapsed();
        assert_eq!(got.unwrap_err(), JobError::TimedOut(deadline), "{route:?}");
        assert!(took < 2 * deadline, "{route:?}: stopped after {took:?}");
        still_works(&e);
    }
}

#[test]
fn the_engines_default_deadline_applies_and_a_job_may_set_its_own() {
    let e = Engine::builder()
        .mode(Mode::Cpu)
        .workers(2)
        .inline_rows(0)
        .job_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let got = e.run(job(&e, SLOW, 4));
    assert_eq!(got.unwrap_err(), JobError::TimedOut(Duration::from_millis(300)));
    // A quick job is untouched by it; a job's own timeout replaces it.
    still_works(&e);
    let got = e.run(job(&e, SLOW, 4).timeout(Duration::from_millis(100)));
    assert_eq!(got.unwrap_err(), JobError::TimedOut(Duration::from_millis(100)));
}

#[test]
fn the_inline_route_stops_too() {
    // Two rows: under the inline bound, so the job runs on this thread with no ticket.
    let e = Engine::builder().mode(Mode::Cpu).workers(2).route(Route::Interpreter).build().unwrap();
    let got = e.run(job(&e, SLOW, 2).timeout(Duration::from_millis(200)));
    assert_eq!(got.unwrap_err(), JobError::TimedOut(Duration::from_millis(200)));
    let r = e.run(job(&e, QUICK, 2)).unwrap();
    assert_eq!(r.count("n"), Some(2));
}

#[test]
fn a_token_stops_every_job_it_was_given() {
    let e = cpu(Route::Interpreter);
    let token = CancelToken::new();
    let a = e.submit(job(&e, SLOW, 4).cancel_with(&token)).unwrap();
    let b = e.submit(job(&e, SLOW, 4).cancel_with(&token)).unwrap();
    let other = e.submit(job(&e, QUICK, 1000)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    token.cancel();
    assert_eq!(a.wait().unwrap_err(), JobError::Cancelled(CancelCause::Caller));
    assert_eq!(b.wait().unwrap_err(), JobError::Cancelled(CancelCause::Caller));
    assert_eq!(other.wait().unwrap().count("n"), Some(1000));
    // A token with a deadline: a whole run's time.
    let run = CancelToken::with_timeout(Duration::from_millis(200));
    let got = e.submit(job(&e, SLOW, 4).cancel_with(&run)).unwrap().wait();
    assert_eq!(got.unwrap_err(), JobError::TimedOut(Duration::from_millis(200)));
    still_works(&e);
}

#[test]
fn a_finished_job_keeps_its_result_when_cancelled_after() {
    let e = cpu(Route::Interpreter);
    let ticket = e.submit(job(&e, QUICK, 1000)).unwrap();
    while !ticket.is_done() {
        std::thread::yield_now();
    }
    ticket.cancel();
    assert_eq!(ticket.wait().unwrap().count("n"), Some(1000));
}

/// Waits until no chunk is queued unclaimed (a guard against a hang, not a timing).
fn until_claimed(e: &Engine) {
    let t0 = Instant::now();
    while e.cpu_queue().0 != 0 {
        assert!(t0.elapsed() < Duration::from_secs(120), "the worker never claimed the queued chunks");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn the_cpu_queue_counts_chunks_no_thread_has_claimed() {
    let e = Engine::builder().mode(Mode::Cpu).workers(1).inline_rows(0).build().unwrap();
    let (queued, capacity) = e.cpu_queue();
    assert_eq!(queued, 0);
    assert!(capacity > 0);
    let slow = e.submit(job(&e, SLOW, 64)).unwrap();
    until_claimed(&e);
    let behind = e.submit(job(&e, QUICK, 1000)).unwrap();
    assert!(e.cpu_queue().0 >= 1, "a job behind the busy worker is queued");
    slow.cancel();
    assert_eq!(slow.wait().unwrap_err(), JobError::Cancelled(CancelCause::Caller));
    assert_eq!(behind.wait().unwrap().count("n"), Some(1000));
    assert_eq!(e.cpu_queue().0, 0);
}

#[test]
fn a_waiting_caller_runs_its_own_job_while_every_worker_is_busy() {
    // One worker, held by a job of 64 rows of 27 million predicates each (a minute or more
    // even optimised, so that no load on the machine lets it finish first: four rows once
    // did, under a full `cargo test` on two cores; one chunk: its rows are fewer than a
    // chunk's). A caller's `run` queues behind it and runs its own chunks rather than wait
    // for the worker: it is answered while the long job still runs. (Without that help, the
    // long job finishes first.)
    let e = Engine::builder().mode(Mode::Cpu).workers(1).inline_rows(0).build().unwrap();
    let slow = e.submit(job(&e, SLOW, 64)).unwrap();
    // The worker must hold the long job's one chunk before the caller queues: a waiter helps
    // with whatever is first on the queue, and a caller that claimed the long chunk itself
    // would wait the minute out.
    until_claimed(&e);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| tx.send(e.run(job(&e, QUICK, 1000))).unwrap());
        // A guard against a hang, not a timing.
        let got = rx.recv_timeout(Duration::from_secs(120)).expect("the caller's job was not answered");
        assert_eq!(got.unwrap().count("n"), Some(1000));
        assert!(!slow.is_done(), "the long job finished before the caller's: the caller waited for the worker instead of running its own chunks");
        slow.cancel();
    });
    assert_eq!(slow.wait().unwrap_err(), JobError::Cancelled(CancelCause::Caller));
    still_works(&e);
}
