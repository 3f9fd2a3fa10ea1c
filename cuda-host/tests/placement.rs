//! Placement under `auto` on the emulated device: where a job runs follows the cost model of
//! its program's class (`meridian_runtime::place`), what is already resident on the device,
//! and a `gpu_min_rows` pin when one is set — asserted on what ran, with the reason in the
//! result, and results equal to the CPU's wherever they ran.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::sync::Arc;

use common::{countries, example, outputs, random_points as points, NORM as ARITH};
use meridian_bytecode::assemble;
use meridian_cuda_host::HostDevice;
use meridian_kernels::column::GeometryColumn;
use meridian_kernels::interp::Input;
use meridian_runtime::{Engine, JobResult, Mode};

fn auto(pin: Option<usize>) -> Engine {
    let b = Engine::builder().mode(Mode::Auto).workers(2).gpu_device(Arc::new(HostDevice::new(2, 32)));
    match pin {
        Some(n) => b.gpu_min_rows(n),
        None => b,
    }
    .build()
    .unwrap()
}

#[test]
fn a_join_crosses_over_sooner_than_arithmetic_and_sooner_still_once_its_polygons_are_resident() {
    // One index for every job: an index built again would be another object, not resident.
    let zones = Input::indexed(countries());
    let join = example("pip_join.masm");
    let arith = assemble("norm.masm", ARITH).unwrap();
    let engine = auto(None);
    let cpu = Engine::builder().mode(Mode::Cpu).workers(1).build().unwrap();
    let run_join = |e: &Engine, pts: &Arc<GeometryColumn>| {
        let p = e.prepare(join.program()).unwrap();
        let b = e.bind(&p, [("pts", Input::rows(pts.clone())), ("zones", zones.clone())]).unwrap();
        e.run(p.job(&b)).unwrap()
    };
    let run_arith = |e: &Engine, pts: &Arc<GeometryColumn>| {
        let p = e.prepare(arith.program()).unwrap();
        let b = e.bind(&p, [("p", Input::rows(pts.clone()))]).unwrap();
        e.run(p.job(&b)).unwrap()
    };
    let check = |r: &JobResult, want: &JobResult, backend: &str, says: &[&str]| {
        assert_eq!(r.backend().name(), backend, "{}", r.backend().reason);
        for s in says {
            assert!(r.backend().reason.contains(s), "{s:?} not in {}", r.backend().reason);
        }
        assert!(outputs(r) == outputs(want), "{backend} gave another result");
    };

    // 600 rows of a join whose polygons would have to be uploaded first: the CPU.
    let small = points(600, 1);
    check(&run_join(&engine, &small), &run_join(&cpu, &small), "cpu", &["join program", "(inputs uploaded)"]);
    // 6,000 rows pay for the upload (about 2 MB of polygons and index): the GPU, which
    // keeps them. (Under 8,192 rows: a job too small to teach placement its rates.)
    let large = points(6000, 2);
    check(&run_join(&engine, &large), &run_join(&cpu, &large), "cuda", &["join program"]);
    // Now 600 fresh points of the same join go to the GPU: only they are uploaded.
    let fresh = points(600, 3);
    check(&run_join(&engine, &fresh), &run_join(&cpu, &fresh), "cuda", &["join program"]);
    // The same 600 points through arithmetic stay on the CPU: too little work a row.
    check(&run_arith(&engine, &fresh), &run_arith(&cpu, &fresh), "cpu", &["arithmetic program"]);
    // Arithmetic crosses over too, later.
    let many = points(20_000, 4);
    check(&run_arith(&engine, &many), &run_arith(&cpu, &many), "cuda", &["arithmetic program"]);
    // That job taught placement what this program costs on this GPU (the emulated one is far
    // slower than the prior): the next one is placed by the measured rate, wherever it lands.
    let r = run_arith(&engine, &many);
    assert!(r.backend().reason.contains("on the GPU (measured)"), "{}", r.backend().reason);
    assert!(outputs(&r) == outputs(&run_arith(&cpu, &many)));
    if r.backend().name() == "cpu" {
        // Sent back to the CPU, it taught placement the CPU's rate as well.
        let again = run_arith(&engine, &many);
        let why = &again.backend().reason;
        assert!(why.contains("on the CPU (measured)") && why.contains("on the GPU (measured)"), "{why}");
    }

    // A pin replaces the model: nothing under it goes to the GPU, whatever is resident or
    // measured.
    let pinned = auto(Some(1 << 20));
    let r = run_join(&pinned, &large);
    check(&r, &run_join(&cpu, &large), "cpu", &["fewer than the 1048576 set to go to the GPU"]);
    // The plan says the same.
    assert_eq!(r.plan().unwrap().backend(), "cpu");
}
