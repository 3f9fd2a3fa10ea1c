//! Submit → complete round trip of a one-row job through the Engine (2 CPU workers)
//! against a round trip over a `crossbeam` channel to a worker thread blocked in `recv`
//! (request on one channel, reply on another), in the same process.
//!
//! Criterion reports the means; before that the bench prints p50 and p99 of 20,000 timed
//! round trips of each, and their ratio, and, to split the engine's time into work and
//! hand-off, the same job's work done inline on the calling thread (output buffers, the
//! interpreter on the row, the result columns) with no ring or worker.
//!
//! `cargo bench -p meridian-runtime --bench round_trip`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // a bench fails loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use meridian_runtime::bytecode::assemble;
use meridian_runtime::kernels::column::ColumnBuilder;
use meridian_runtime::kernels::interp::{BoundInputs, Input, Interpreter, OutputColumn, Scratch};
use meridian_runtime::{Engine, Mode};

fn percentiles(mut f: impl FnMut(), n: usize) -> (Duration, Duration) {
    for _ in 0..n / 10 {
        f();
    }
    let mut t: Vec<Duration> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort_unstable();
    (t[n / 2], t[n * 99 / 100])
}

fn bench(c: &mut Criterion) {
    let engine = Engine::builder().mode(Mode::Cpu).workers(2).build().unwrap();
    let program = assemble(
        "x.masm",
        ".program x\n.input p points\n.output x f64\n load g0, p\n x f0, g0\n store x, f0\n halt\n",
    )
    .unwrap();
    let prepared = engine.prepare(program.program()).unwrap();
    let mut b = ColumnBuilder::new();
    b.push_point(1.5, 2.0).unwrap();
    let col = Arc::new(b.finish());
    let col_for_ring = col.clone();
    let bound = engine.bind(&prepared, [("p", col.clone())]).unwrap();
    let job = prepared.job(&bound);
    let interp = Interpreter::new(&program);
    let inputs = BoundInputs::bind(program.program(), vec![Input::rows(col)]).unwrap();
    let mut scratch = Scratch::new();
    let mut inline_work = || {
        let out = interp.output_buffers(0..1, 64);
        interp.run(&inputs, 0..1, &out, &mut scratch).unwrap();
        let cols = out.into_columns().unwrap();
        let OutputColumn::F64(x) = &cols[0] else { panic!() };
        assert_eq!(x.get(0), Some(1.5));
    };
    let engine_trip = || {
        let r = engine.submit(job.clone()).unwrap().wait().unwrap();
        assert_eq!(r.f64("x").unwrap().get(0), Some(1.5));
    };
    // `Engine::run`: the inline route without a ticket.
    let engine_run = || {
        let r = engine.run(job.clone()).unwrap();
        assert_eq!(r.f64("x").unwrap().get(0), Some(1.5));
    };
    // The same job handed to a worker through the ring (the inline route off).
    let ring_engine = Engine::builder().mode(Mode::Cpu).workers(2).inline_rows(0).build().unwrap();
    let ring_prepared = ring_engine.prepare(program.program()).unwrap();
    let ring_job = ring_prepared.job(&ring_engine.bind(&ring_prepared, [("p", col_for_ring)]).unwrap());
    let ring_trip = || {
        let r = ring_engine.submit(ring_job.clone()).unwrap().wait().unwrap();
        assert_eq!(r.f64("x").unwrap().get(0), Some(1.5));
    };

    let (req_tx, req_rx) = crossbeam_channel::bounded::<u64>(1);
    let (rep_tx, rep_rx) = crossbeam_channel::bounded::<u64>(1);
    let worker = std::thread::spawn(move || {
        while let Ok(v) = req_rx.recv() {
            if rep_tx.send(v + 1).is_err() {
                return;
            }
        }
    });
    let channel_trip = || {
        req_tx.send(41).unwrap();
        assert_eq!(rep_rx.recv().unwrap(), 42);
    };

    let (i50, i99) = percentiles(&mut inline_work, 20_000);

    let (e50, e99) = percentiles(engine_trip, 20_000);
    let (n50, n99) = percentiles(engine_run, 20_000);
    let (r50, r99) = percentiles(ring_trip, 20_000);
    let (c50, c99) = percentiles(channel_trip, 20_000);
    eprintln!(
        "round trip, 20000 each: engine (inline route) p50 {e50:?} p99 {e99:?}; engine through the ring \
         p50 {r50:?} p99 {r99:?}; crossbeam channel p50 {c50:?} p99 {c99:?}; ratio engine/channel p50 \
         {:.2}x p99 {:.2}x (Engine::run p50 {n50:?} p99 {n99:?}: {:.2}x / {:.2}x; through the ring {:.2}x / \
         {:.2}x); the job's work alone p50 {i50:?} p99 {i99:?}",
        e50.as_secs_f64() / c50.as_secs_f64(),
        e99.as_secs_f64() / c99.as_secs_f64(),
        n50.as_secs_f64() / c50.as_secs_f64(),
        n99.as_secs_f64() / c99.as_secs_f64(),
        r50.as_secs_f64() / c50.as_secs_f64(),
        r99.as_secs_f64() / c99.as_secs_f64()
    );

    let mut g = c.benchmark_group("round_trip");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    g.bench_function("engine_one_row_job", |b| b.iter(engine_trip));
    g.bench_function("engine_run_one_row_job", |b| b.iter(engine_run));
    g.bench_function("engine_one_row_job_through_the_ring", |b| b.iter(ring_trip));
    g.bench_function("crossbeam_channel", |b| b.iter(channel_trip));
    g.finish();
    drop(req_tx);
    worker.join().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
