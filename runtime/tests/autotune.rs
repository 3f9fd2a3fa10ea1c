//! Autotune applied: large CPU jobs race the route (interpreter or JIT), then rows per claim,
//! then (jobs in flight together) the workers a job spreads over; jobs of 2^19 rows or more
//! race inside themselves, and races left open are continued by the next engine;
//! a verdict settles each key, the winner is saved, and an engine opened later on the same
//! store applies it without racing. Results never change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::PathBuf;
use std::sync::Arc;

use meridian_bytecode::assemble;
use meridian_kernels::column::{ColumnBuilder, GeometryColumn};
use meridian_kernels::interp::Input;
use meridian_runtime::autotune::Store;
use meridian_runtime::tune::RACE_MIN_ROWS;
use meridian_runtime::{Engine, Mode};

const PROGRAM: &str = "\
.program norm
.input  p points
.output d f64
.output far count
    load  g0, p
    x     f0, g0
    y     f1, g0
    mul   f2, f0, f0
    mul   f3, f1, f1
    add   f2, f2, f3
    sqrt  f2, f2
    store d, f2
    const f3, 100.0
    gt    b0, f2, f3
    jf    b0, done
    count far
done:
    halt
";

fn points(n: usize) -> Arc<GeometryColumn> {
    let mut b = ColumnBuilder::new();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let x = (s % 36_000) as f64 / 100.0 - 180.0;
        let y = ((s >> 20) % 18_000) as f64 / 100.0 - 90.0;
        b.push_point(x, y).unwrap();
    }
    Arc::new(b.finish())
}

/// The outputs alone (the backend says which route ran, which races change).
fn outputs(r: &meridian_runtime::JobResult) -> Vec<(String, meridian_kernels::interp::OutputColumn)> {
    r.outputs().map(|(n, c)| (n.to_owned(), c.clone())).collect()
}

/// Races time jobs on the workers: tests that race run one at a time, so that one test's jobs
/// are not the noise in another's pairs.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn store_path(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meridian-tune-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d.join("autotune.bin")
}

#[test]
fn a_race_settles_saves_and_the_next_engine_applies_the_winner_without_racing() {
    let _serial = serial();
    let path = store_path("settle");
    let pts = points(RACE_MIN_ROWS);
    let plain = Engine::builder().mode(Mode::Cpu).workers(2).build().unwrap();
    let want = {
        let p = plain.prepare(assemble("n.masm", PROGRAM).unwrap().program()).unwrap();
        let b = plain.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
        plain.run(p.job(&b)).unwrap()
    };

    let engine = Engine::builder().mode(Mode::Cpu).workers(2).autotune(&path).build().unwrap();
    let p = engine.prepare(assemble("n.masm", PROGRAM).unwrap().program()).unwrap();
    let b = engine.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
    let mut jobs = 0;
    // The route settles first, then rows per claim race, then the workers a job spreads over
    // — raced by jobs that find another in flight (two submitted at a time here).
    while Store::open(&path).unwrap().store.len() < 3 {
        assert!(jobs < 400, "no verdicts after {jobs} jobs: {:?}", engine.autotune_log());
        let tickets = [engine.submit(p.job(&b)).unwrap(), engine.submit(p.job(&b)).unwrap()];
        for t in tickets {
            assert!(outputs(&t.wait().unwrap()) == outputs(&want), "a raced job gave another result");
        }
        jobs += 2;
        // Saves run on a thread of their own.
        engine.autotune().unwrap().flush();
    }
    let log = engine.autotune_log();
    for family in ["cpu.route", "cpu.rows_per_claim", "cpu.workers"] {
        assert!(log.iter().any(|l| l.contains(&format!("racing {family}"))), "{log:?}");
    }
    assert!(log.iter().any(|l| l.contains("adopted") || l.contains("rejected")), "{log:?}");
    let stored = Store::open(&path).unwrap().store;
    let records: Vec<_> = stored.records().collect();
    let (key, record) = records.iter().find(|(k, _)| k.family.starts_with("cpu.rows")).unwrap();
    assert_eq!(key.family, "cpu.rows_per_claim@16384", "the engine's default is part of the key");
    assert_eq!(key.binding, "point");
    assert!(record.params.rows_per_claim.is_some() && record.timing.samples >= 5, "{record:?}");
    let (_, workers) = records.iter().find(|(k, _)| k.family == "cpu.workers").unwrap();
    assert!(matches!(workers.params.workers, Some(0 | 1)), "all workers or one: {workers:?}");
    let (_, route) = records.iter().find(|(k, _)| k.family == "cpu.route").unwrap();
    assert!(matches!(route.params.route.as_deref(), Some("jit" | "interp")), "{route:?}");
    if route.params.route.as_deref() == Some("jit") {
        assert!(route.compile_cost_ns > 0, "the JIT's compile time is charged: {route:?}");
    }
    drop(engine);

    // A new engine on the same store: loaded, never raced, same results.
    let again = Engine::builder().mode(Mode::Cpu).workers(2).autotune(&path).build().unwrap();
    let p = again.prepare(assemble("n.masm", PROGRAM).unwrap().program()).unwrap();
    let b = again.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
    for _ in 0..3 {
        assert!(outputs(&again.run(p.job(&b)).unwrap()) == outputs(&want));
    }
    let log = again.autotune_log();
    assert!(log.iter().any(|l| l.contains("loaded from the store")), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("racing")), "{log:?}");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn small_jobs_and_engines_without_autotune_never_race() {
    let _serial = serial();
    let path = store_path("small");
    let engine = Engine::builder().mode(Mode::Cpu).workers(2).autotune(&path).build().unwrap();
    let p = engine.prepare(assemble("n.masm", PROGRAM).unwrap().program()).unwrap();
    let b = engine.bind(&p, [("p", Input::rows(points(1000)))]).unwrap();
    for _ in 0..20 {
        engine.run(p.job(&b)).unwrap();
    }
    assert!(engine.autotune_log().is_empty(), "{:?}", engine.autotune_log());
    assert!(!path.exists());
    let plain = Engine::builder().mode(Mode::Cpu).workers(2).build().unwrap();
    assert!(plain.autotune().is_none() && plain.autotune_log().is_empty());
}

#[test]
fn programs_with_sums_race_the_route_but_not_rows_per_claim() {
    let _serial = serial();
    // Claims of another size would add the sums in another order: results could change. The
    // route does not change the order: both routes add a claim's rows in row order.
    let path = store_path("sums");
    let engine = Engine::builder().mode(Mode::Cpu).workers(2).autotune(&path).build().unwrap();
    // Halves of the points' x signs: exact in any order (chunks add their sums as they end).
    let src = ".program s\n.input p points\n.output t sum\n load g0, p\n x f0, g0\n const f1, 0.0\n \
               gt b0, f0, f1\n const f2, 0.5\n const f3, -0.5\n select f4, b0, f2, f3\n sum t, f4\n halt\n";
    let p = engine.prepare(assemble("s.masm", src).unwrap().program()).unwrap();
    let b = engine.bind(&p, [("p", Input::rows(points(RACE_MIN_ROWS)))]).unwrap();
    let first = engine.run(p.job(&b)).unwrap();
    let mut routes = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let r = engine.run(p.job(&b)).unwrap();
        routes.insert(r.route());
        assert_eq!(outputs(&r), outputs(&first), "the route changed a sum");
    }
    // The route races inside each job: both routes run parts of a raced job ("mixed").
    assert!(routes.contains("mixed"), "{routes:?}");
    let log = engine.autotune_log();
    assert!(log.iter().any(|l| l.contains("racing cpu.route")), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("cpu.rows_per_claim")), "{log:?}");
}

#[test]
fn a_damaged_store_is_moved_aside_and_said() {
    let _serial = serial();
    let path = store_path("damaged");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"MRTUNE\0\0 but then nothing that makes sense").unwrap();
    let engine = Engine::builder().mode(Mode::Cpu).workers(1).autotune(&path).build().unwrap();
    let log = engine.autotune_log();
    assert!(log.iter().any(|l| l.starts_with("warning:") && l.contains("moved aside")), "{log:?}");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// The records of the store at `path`, by family.
fn records(path: &std::path::Path) -> Vec<(String, meridian_runtime::autotune::Record)> {
    Store::open(path).unwrap().store.records().map(|(k, r)| (k.family.clone(), r.clone())).collect()
}

#[test]
fn one_large_job_races_inside_itself_and_the_next_engine_races_nothing() {
    let _serial = serial();
    let path = store_path("in-job");
    // Enough rows for every race to reach its verdict even at the most pairs (16 each).
    let pts = points(1 << 22);
    let plain = Engine::builder().mode(Mode::Cpu).workers(2).build().unwrap();
    let want = {
        let p = plain.prepare(assemble("n.masm", PROGRAM).unwrap().program()).unwrap();
        let b = plain.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
        outputs(&plain.run(p.job(&b)).unwrap())
    };
    let run_once = || {
        let engine = Engine::builder().mode(Mode::Cpu).workers(2).autotune(&path).build().unwrap();
        let p = engine.prepare(assemble("n.masm", PROGRAM).unwrap().program()).unwrap();
        let b = engine.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
        let r = engine.run(p.job(&b)).unwrap();
        assert!(outputs(&r) == want, "a job racing inside itself gave another result");
        let plan = r.plan().unwrap().to_string();
        engine.shutdown();
        (engine.autotune_log(), plan)
    };
    let (first, plan) = run_once();
    assert!(plan.contains("races inside the job"), "{plan}");
    let stored = records(&path);
    for family in ["cpu.route", "cpu.rows_per_claim@16384"] {
        let (_, r) =
            stored.iter().find(|(f, _)| f == family).unwrap_or_else(|| panic!("no {family}: {first:#?}"));
        assert!(r.is_decided(), "{family} undecided after one job: {r:?}\n{first:#?}");
        let v = r.verdict.as_ref().unwrap();
        assert!(v.effect.is_some() && r.timing.samples >= 5, "{r:?}");
    }
    let (second, plan) = run_once();
    assert!(second.iter().any(|l| l.contains("loaded from the store")), "{second:?}");
    assert!(!second.iter().any(|l| l.contains("racing")), "{second:?}");
    assert!(!plan.contains("races inside the job"), "{plan}");
    // The second run is in the records it applied.
    for (family, r) in records(&path) {
        if family.starts_with("cpu.route") || family.starts_with("cpu.rows") {
            assert_eq!(r.loads.len(), 1, "{family}: {r:?}");
        }
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn a_streams_batches_carry_one_race_from_batch_to_batch_and_settle_both() {
    let _serial = serial();
    let path = store_path("stream");
    // A 2M-point file streamed as the CLI cuts it on 2 workers: 16 batches of 2^17 rows,
    // each a job. Each races inside itself (a few pairs), the race going on in the next.
    let pts = points(RACE_MIN_ROWS);
    let plain = Engine::builder().mode(Mode::Cpu).workers(2).build().unwrap();
    let want = {
        let p = plain.prepare(assemble("n.masm", PROGRAM).unwrap().program()).unwrap();
        let b = plain.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
        outputs(&plain.run(p.job(&b)).unwrap())
    };
    let run_once = || {
        let engine = Engine::builder().mode(Mode::Cpu).workers(2).autotune(&path).build().unwrap();
        let p = engine.prepare(assemble("n.masm", PROGRAM).unwrap().program()).unwrap();
        let b = engine.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
        let mut plans = Vec::new();
        for _ in 0..16 {
            let r = engine.run(p.job(&b)).unwrap();
            assert!(outputs(&r) == want, "a batch racing inside itself gave another result");
            plans.push(r.plan().unwrap().to_string());
        }
        engine.shutdown();
        (engine.autotune_log(), plans)
    };
    let (first, plans) = run_once();
    assert!(plans[0].contains("races inside the job"), "{}", plans[0]);
    let stored = records(&path);
    for family in ["cpu.route", "cpu.rows_per_claim@16384"] {
        let (_, r) =
            stored.iter().find(|(f, _)| f == family).unwrap_or_else(|| panic!("no {family}: {first:#?}"));
        assert!(r.is_decided(), "{family} undecided after 16 batches: {r:?}\n{first:#?}");
    }
    let (second, plans) = run_once();
    assert!(!second.iter().any(|l| l.contains("racing")), "{second:?}");
    assert!(plans.iter().all(|p| !p.contains("races inside the job")), "{plans:?}");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn a_slower_candidate_loses_inside_a_job_and_the_record_says_so() {
    let _serial = serial();
    let path = store_path("slower");
    let engine = Engine::builder()
        .mode(Mode::Cpu)
        .workers(2)
        .autotune(&path)
        .slow_speculative_parts(std::time::Duration::from_millis(3))
        .build()
        .unwrap();
    let p = engine.prepare(assemble("n.masm", PROGRAM).unwrap().program()).unwrap();
    let b = engine.bind(&p, [("p", Input::rows(points(1 << 21)))]).unwrap();
    engine.run(p.job(&b)).unwrap();
    engine.shutdown();
    let log = engine.autotune_log();
    let stored = records(&path);
    let (_, route) = stored.iter().find(|(f, _)| f == "cpu.route").unwrap_or_else(|| panic!("{log:#?}"));
    assert_eq!(route.params.route.as_deref(), Some("interp"), "the default kept: {route:?}");
    let v = route.verdict.as_ref().unwrap();
    assert!(!v.adopted && v.candidate.route.as_deref() == Some("jit"), "{v:?}");
    assert!(v.why.starts_with("kept the default") && v.effect.unwrap().high < 0.0, "{v:?}");
    assert_eq!(route.gain, 0.0);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn a_race_left_open_is_saved_and_the_next_run_continues_it() {
    let _serial = serial();
    let path = store_path("open");
    // Chunks of 2^16 rows: a route pair takes 2^17 of the job's 2^19 rows, four pairs in all,
    // one short of the fewest a verdict needs.
    let engine =
        || Engine::builder().mode(Mode::Cpu).workers(2).chunk_rows(1 << 16).autotune(&path).build().unwrap();
    let pts = points(1 << 19);
    let sums = ".program s\n.input p points\n.output t sum\n load g0, p\n x f0, g0\n const f1, 0.0\n \
               gt b0, f0, f1\n const f2, 0.5\n const f3, -0.5\n select f4, b0, f2, f3\n sum t, f4\n halt\n";
    let run = || {
        let e = engine();
        let p = e.prepare(assemble("s.masm", sums).unwrap().program()).unwrap();
        let b = e.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
        let r = e.run(p.job(&b)).unwrap();
        e.shutdown();
        (outputs(&r), e.autotune_log())
    };
    let (first, log) = run();
    let said =
        log.iter().find(|l| l.contains("undecided after 4 pair(s)")).unwrap_or_else(|| panic!("{log:#?}"));
    assert!(said.contains("more needed") && said.contains("the next run continues it"), "{said}");
    let (_, open) = records(&path).into_iter().find(|(f, _)| f == "cpu.route").unwrap();
    let pending = open.pending.as_ref().unwrap();
    assert_eq!(pending.pairs.len(), 4);
    assert!(open.params.route.is_none(), "a race in progress applies nothing: {open:?}");

    let (second, log) = run();
    assert_eq!(first, second, "the route changed a sum");
    assert!(
        log.iter().any(|l| l.contains("continuing the race of cpu.route jit against interp")
            && l.contains("from 4 stored pair(s)")),
        "{log:#?}"
    );
    let (_, route) = records(&path).into_iter().find(|(f, _)| f == "cpu.route").unwrap();
    match &route.pending {
        // Decided with the pairs of both runs ...
        None => assert!(route.timing.samples >= 5, "{route:?}"),
        // ... or still open (noisy pairs), with more of them.
        Some(p) => assert_eq!(p.pairs.len(), 8, "{route:?}"),
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn records_learnt_on_another_machine_are_not_applied() {
    let _serial = serial();
    let path = store_path("machine");
    let pts = points(1 << 20);
    let run = || {
        let engine = Engine::builder().mode(Mode::Cpu).workers(2).autotune(&path).build().unwrap();
        let p = engine.prepare(assemble("n.masm", PROGRAM).unwrap().program()).unwrap();
        let b = engine.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
        let r = engine.run(p.job(&b)).unwrap();
        engine.shutdown();
        (outputs(&r), engine.autotune_log())
    };
    let (want, _) = run();
    // The store as another machine would have it: the same records under its CPU.
    let mut store = Store::open(&path).unwrap().store;
    let moved: Vec<_> = store
        .records()
        .map(|(k, r)| {
            assert!(k.adapter.starts_with("cpu ") && k.adapter.contains(" cores) x2"), "{k:?}");
            let mut k = k.clone();
            k.adapter = "cpu Some Other CPU (96 cores) x2".to_owned();
            (k, r.clone())
        })
        .collect();
    assert!(!moved.is_empty());
    store.clear().unwrap();
    for (k, r) in moved {
        store.insert(k, r);
    }
    store.save().unwrap();
    let (got, log) = run();
    assert!(got == want);
    assert!(!log.iter().any(|l| l.contains("loaded from the store")), "{log:#?}");
    assert!(log.iter().any(|l| l.contains("racing cpu.route")), "{log:#?}");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn jobs_racing_inside_themselves_on_a_crowded_ring_give_the_same_results() {
    let _serial = serial();
    let path = store_path("crowded");
    let pts = points(1 << 19);
    let plain = Engine::builder().mode(Mode::Cpu).workers(2).build().unwrap();
    let want = {
        let p = plain.prepare(assemble("n.masm", PROGRAM).unwrap().program()).unwrap();
        let b = plain.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
        outputs(&plain.run(p.job(&b)).unwrap())
    };
    // A ring of 8 slots and four jobs at once: steps often find no room, and run where
    // they were claimed.
    let engine =
        Engine::builder().mode(Mode::Cpu).workers(2).ring_capacity(8).autotune(&path).build().unwrap();
    let p = engine.prepare(assemble("n.masm", PROGRAM).unwrap().program()).unwrap();
    let b = engine.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
    for _ in 0..3 {
        let tickets: Vec<_> = (0..4).map(|_| engine.submit(p.job(&b)).unwrap()).collect();
        for t in tickets {
            assert!(outputs(&t.wait().unwrap()) == want, "a job on a crowded ring gave another result");
        }
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
