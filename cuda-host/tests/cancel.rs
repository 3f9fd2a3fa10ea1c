//! Stopping a GPU job (issue 28) on the emulated device: the host sets the job's cancel word
//! in device memory, the megakernel's rows look at it every 1024 candidate steps and its
//! blocks every 8 tiles; the job resolves as cancelled or timed out, the device stays
//! healthy, the next job runs, and nothing the job held is left allocated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian_bytecode::assemble;
use meridian_cuda_host::HostDevice;
use meridian_kernels::column::{ColumnBuilder, GeometryColumn};
use meridian_kernels::interp::Input;
use meridian_runtime::{CancelCause, Engine, JobError, Mode};

/// Three candidate loops nested: every zone of every zone of every zone, for each row.
const SLOW: &str = include_str!("../../runtime/tests/data/nested_loops.masm");

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

#[test]
fn a_gpu_job_is_stopped_by_its_ticket_and_by_its_deadline() {
    let device = Arc::new(HostDevice::new(2, 8));
    let e = Engine::builder()
        .mode(Mode::Gpu)
        .workers(1)
        .gpu_min_rows(0)
        .gpu_timeout(Duration::from_secs(60))
        .gpu_device(device.clone())
        .build()
        .unwrap();
    let slow = assemble("slow.masm", SLOW).unwrap();
    let pip = assemble("pip.masm", include_str!("../../examples/pip_join.masm")).unwrap();
    let (p, q) = (e.prepare(slow.program()).unwrap(), e.prepare(pip.program()).unwrap());
    let bound = e.bind(&p, [("pts", Input::rows(points(4))), ("zones", Input::indexed(zones()))]).unwrap();
    let quick = e.bind(&q, [("pts", Input::rows(points(1000))), ("zones", Input::indexed(zones()))]).unwrap();

    let deadline = Duration::from_millis(500);
    let t0 = Instant::now();
    let got = e.submit(p.job(&bound).timeout(deadline)).unwrap().wait();
    let took = t0.elapsed();
    assert_eq!(got.unwrap_err(), JobError::TimedOut(deadline));
    assert!(took < 2 * deadline, "stopped after {took:?}");
    assert!(e.gpu_unhealthy().is_none(), "{:?}", e.gpu_unhealthy());

    let ticket = e.submit(p.job(&bound)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    ticket.cancel();
    assert_eq!(ticket.wait().unwrap_err(), JobError::Cancelled(CancelCause::Caller));

    // The slot's cancel word was cleared for the next job: it runs, on the GPU, and is right.
    for _ in 0..3 {
        let r = e.run(q.job(&quick)).unwrap();
        assert_eq!(r.backend().name(), "cuda", "{:?}", r.backend());
        assert_eq!(r.hits("pairs").unwrap().len(), 1000);
    }
    assert!(e.gpu_unhealthy().is_none());
    drop((bound, quick, p, q));
    drop(e);
    assert_eq!(device.live_allocations(), 0, "the stopped jobs' memory was freed");
}
