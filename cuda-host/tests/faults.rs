//! The GPU backend when things go wrong, on the emulated device: a device fault, a kernel that
//! stops serving (the watchdog), allocations that fail, load with overflowing hit buffers,
//! a full ring, and shutdown under load. Every ticket resolves exactly once, with the reason;
//! under `auto` the work moves to the CPU and says so, under `gpu` it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meridian_bytecode::assemble;
use meridian_cuda_host::{Behaviour, HostDevice};
use meridian_kernels::algo;
use meridian_kernels::column::{ColumnBuilder, GeometryColumn};
use meridian_runtime::variants::VariantId;
use meridian_runtime::{Bound, Engine, JobError, JobResult, Mode, Prepared, TrySubmitError};

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
            let (x, y) = ((i * 37 % 1200) as f64 / 100.0 + 0.005, (i * 53 % 900) as f64 / 100.0 + 0.005);
            b.push_point(x, y).unwrap();
        }
    }
    b.finish()
}

struct Fixture {
    engine: Engine,
    device: Arc<HostDevice>,
    prepared: Prepared,
    bound: Bound,
    want: Vec<Vec<u32>>,
}

fn fixture(
    mode: Mode,
    device: HostDevice,
    configure: impl FnOnce(meridian_runtime::EngineBuilder) -> meridian_runtime::EngineBuilder,
) -> Fixture {
    let device = Arc::new(device);
    let builder = Engine::builder().mode(mode).workers(1).gpu_min_rows(0).gpu_device(device.clone());
    let engine = configure(builder).build().unwrap();
    let prepared = engine.prepare(assemble("stress.masm", PROGRAM).unwrap().program()).unwrap();
    let (pts, zones) = (points(), zones());
    let want = (0..pts.len())
        .map(|r| match pts.get(r) {
            None => vec![],
            Some(p) => (0..zones.len())
                .filter(|&z| algo::contains(&zones.get(z).unwrap(), &p))
                .map(|z| z as u32)
                .collect(),
        })
        .collect();
    let bound = engine.bind(&prepared, [("pts", Arc::new(pts)), ("zones", Arc::new(zones))]).unwrap();
    Fixture { engine, device, prepared, bound, want }
}

fn check_row(f: &Fixture, row: usize, r: &JobResult) {
    let want: Vec<(u32, u32)> = f.want[row].iter().map(|&z| (row as u32, z)).collect();
    assert_eq!(r.hits("pairs").unwrap(), &want[..], "row {row}");
    assert_eq!(r.count("n").unwrap(), want.len() as u64, "row {row}");
    let x = r.f64("x").unwrap();
    assert_eq!(x.len(), 1);
    assert_eq!(x.get(0).is_some(), row % 50 != 7, "row {row}");
}

#[test]
fn four_threads_of_small_jobs_with_overflowing_hit_buffers() {
    let f = fixture(Mode::Gpu, HostDevice::new(2, 8), |b| b);
    let resolved = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (f, resolved) = (&f, &resolved);
            s.spawn(move || {
                let mut window = VecDeque::new();
                for i in 0..3_000usize {
                    let row = (i * 7 + t * 13) % POINTS;
                    let mut job = f.prepared.job(&f.bound).rows(row..row + 1);
                    if i % 5 == 0 {
                        job = job.hit_capacity(1);
                    }
                    window.push_back((row, f.engine.submit(job).unwrap()));
                    if window.len() == 32 {
                        let (row, ticket) = window.pop_front().unwrap();
                        let r = ticket.wait().unwrap();
                        assert_eq!(r.backend().name(), "cuda");
                        check_row(f, row, &r);
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
    assert_eq!(resolved.load(Ordering::Relaxed), 12_000);
    // A whole-column job with room for one hit: many chunks, many blocks, one re-run.
    let r = f.engine.run(f.prepared.job(&f.bound).hit_capacity(1)).unwrap();
    assert_eq!(r.attempts(), 2);
    let want: Vec<(u32, u32)> =
        f.want.iter().enumerate().flat_map(|(row, zs)| zs.iter().map(move |&z| (row as u32, z))).collect();
    assert_eq!(r.hits("pairs").unwrap(), &want[..]);
}

#[test]
fn try_submit_hands_the_job_back_when_full() {
    let f = fixture(Mode::Gpu, HostDevice::new(1, 8), |b| b.ring_capacity(2));
    let (mut tickets, mut full) = (Vec::new(), 0);
    for i in 0..500 {
        match f.engine.try_submit(f.prepared.job(&f.bound).rows(i % POINTS..i % POINTS + 1)) {
            Ok(t) => tickets.push((i % POINTS, t)),
            Err(TrySubmitError::Full(job)) => {
                assert_eq!(job.row_range(), i % POINTS..i % POINTS + 1);
                full += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(full > 0, "two job slots must fill up");
    for (row, t) in tickets {
        check_row(&f, row, &t.wait().unwrap());
    }
}

#[test]
fn shutdown_under_load_resolves_every_ticket() {
    let f = fixture(Mode::Gpu, HostDevice::new(2, 8), |b| b);
    let (done, cancelled, refused) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..3 {
            let (f, done, cancelled, refused) = (&f, &done, &cancelled, &refused);
            s.spawn(move || {
                let mut tickets = Vec::new();
                for i in 0..2_000usize {
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
        std::thread::sleep(Duration::from_millis(30));
        f.engine.shutdown();
    });
    let (d, c, r) = (done.into_inner(), cancelled.into_inner(), refused.into_inner());
    assert_eq!(d + c + r, 6_000, "every submission is accounted for");
    assert!(r > 0 || c > 0, "shutdown after 30 ms should interrupt 6000 submissions ({d} done)");
    assert!(f.engine.submit(f.prepared.job(&f.bound)).is_err());
}

#[test]
fn a_device_fault_fails_the_jobs_in_flight_then_auto_moves_to_the_cpu() {
    let f = fixture(Mode::Auto, HostDevice::new(1, 8), |b| b);
    let r = f.engine.run(f.prepared.job(&f.bound)).unwrap();
    assert_eq!(r.backend().name(), "cuda");
    f.device.inject_fault("CUDA_ERROR_ILLEGAL_ADDRESS (injected)");
    // The next job reaches the dead kernel: it fails with the device's reason.
    match f.engine.run(f.prepared.job(&f.bound)) {
        Err(JobError::Device(why)) => assert!(why.contains("CUDA_ERROR_ILLEGAL_ADDRESS"), "{why}"),
        other => panic!("expected a device error, got {other:?}"),
    }
    assert!(f.engine.gpu_unhealthy().unwrap().contains("CUDA_ERROR_ILLEGAL_ADDRESS"));
    // Later jobs run on the CPU, and say why.
    let r = f.engine.run(f.prepared.job(&f.bound).rows(5..6)).unwrap();
    check_row(&f, 5, &r);
    assert_eq!(r.backend().name(), "cpu");
    assert!(r.backend().fallback);
    assert!(
        r.backend().reason.contains("the GPU is no longer used")
            && r.backend().reason.contains("ILLEGAL_ADDRESS")
    );
}

#[test]
fn under_gpu_jobs_after_a_device_fault_fail() {
    let f = fixture(Mode::Gpu, HostDevice::new(1, 8), |b| b);
    check_row(&f, 3, &f.engine.run(f.prepared.job(&f.bound).rows(3..4)).unwrap());
    f.device.inject_fault("Xid 79: GPU has fallen off the bus (injected)");
    for _ in 0..2 {
        match f.engine.run(f.prepared.job(&f.bound).rows(3..4)) {
            Err(JobError::Device(why)) => assert!(why.contains("Xid 79"), "{why}"),
            other => panic!("expected a device error, got {other:?}"),
        }
    }
}

#[test]
fn a_kernel_that_stops_serving_trips_the_watchdog() {
    let f = fixture(Mode::Gpu, HostDevice::with_behaviour(1, 8, Behaviour::Stall), |b| {
        b.gpu_timeout(Duration::from_millis(200))
    });
    let t0 = std::time::Instant::now();
    match f.engine.run(f.prepared.job(&f.bound)) {
        Err(JobError::Device(why)) => assert!(why.contains("watchdog"), "{why}"),
        other => panic!("expected the watchdog, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert!(f.engine.gpu_unhealthy().is_some());
}

#[test]
fn failed_uploads_fall_back_under_auto_and_fail_under_gpu() {
    let f = fixture(Mode::Auto, HostDevice::new(1, 8), |b| b);
    f.device.refuse_allocations(1);
    let r = f.engine.run(f.prepared.job(&f.bound).rows(0..POINTS)).unwrap();
    assert_eq!(r.backend().name(), "cpu");
    assert!(r.backend().reason.contains("out of memory"), "{:?}", r.backend());
    // Not a device fault: the next job goes to the GPU again.
    let r = f.engine.run(f.prepared.job(&f.bound).rows(0..POINTS)).unwrap();
    assert_eq!(r.backend().name(), "cuda");
    assert!(f.engine.gpu_unhealthy().is_none());

    let g = fixture(Mode::Gpu, HostDevice::new(1, 8), |b| b);
    g.device.refuse_allocations(1);
    match g.engine.run(g.prepared.job(&g.bound)) {
        Err(JobError::Device(why)) => assert!(why.contains("out of memory"), "{why}"),
        other => panic!("expected an allocation failure, got {other:?}"),
    }
    check_row(&g, 1, &g.engine.run(g.prepared.job(&g.bound).rows(1..2)).unwrap());
}

#[test]
fn dropping_the_engine_frees_the_device_memory() {
    let device = Arc::new(HostDevice::new(1, 8));
    {
        let engine = Engine::builder().mode(Mode::Gpu).workers(1).gpu_device(device.clone()).build().unwrap();
        let p = engine.prepare(assemble("stress.masm", PROGRAM).unwrap().program()).unwrap();
        let b = engine.bind(&p, [("pts", Arc::new(points())), ("zones", Arc::new(zones()))]).unwrap();
        engine.run(p.job(&b)).unwrap();
        assert!(device.live_allocations() > 0);
    }
    assert_eq!(device.live_allocations(), 0, "every device allocation is freed with the engine");
}

#[test]
fn a_failed_launch_fails_gpu_mode_and_leaves_auto_on_the_cpu() {
    let device = || Arc::new(HostDevice::with_behaviour(1, 8, Behaviour::FailLaunch));
    let err =
        Engine::builder().mode(Mode::Gpu).workers(1).gpu_device(device()).build().unwrap_err().to_string();
    assert!(err.starts_with("execution mode gpu: the megakernel could not be started"), "{err}");
    assert!(err.contains("OUT_OF_RESOURCES"), "{err}");
    let auto = Engine::builder().mode(Mode::Auto).workers(1).gpu_device(device()).build().unwrap();
    assert_eq!(auto.backend().name(), "cpu");
    assert!(auto.backend().fallback);
    assert!(auto.backend().reason.contains("OUT_OF_RESOURCES"), "{:?}", auto.backend());
}

#[test]
fn an_idle_spell_longer_than_the_timeout_is_not_a_hang() {
    let f = fixture(Mode::Gpu, HostDevice::new(1, 8), |b| b.gpu_timeout(Duration::from_millis(150)));
    check_row(&f, 2, &f.engine.run(f.prepared.job(&f.bound).rows(2..3)).unwrap());
    std::thread::sleep(Duration::from_millis(400));
    for row in [3, 4, 5] {
        check_row(&f, row, &f.engine.run(f.prepared.job(&f.bound).rows(row..row + 1)).unwrap());
    }
    assert!(f.engine.gpu_unhealthy().is_none());
}

#[test]
fn a_rerun_whose_outputs_do_not_fit_moves_to_the_cpu_under_auto() {
    let text = meridian_kernels::io::read_text(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/countries.geojson"
    )))
    .unwrap();
    let zones = Arc::new(meridian_kernels::io::read_geojson("countries.geojson", &text).unwrap().geometry);
    let cities = Arc::new(
        meridian_kernels::io::read_csv(
            "cities.csv.gz",
            meridian_kernels::io::open(std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../data/cities.csv.gz"
            )))
            .unwrap(),
            &[],
        )
        .unwrap()
        .geometry,
    );
    let program = assemble("pip.masm", include_str!("../../examples/pip_join.masm")).unwrap();
    let cpu = Engine::builder().mode(Mode::Cpu).workers(1).build().unwrap();
    let pc = cpu.prepare(program.program()).unwrap();
    let bc = cpu.bind(&pc, [("pts", cities.clone()), ("zones", zones.clone())]).unwrap();
    let want = cpu.run(pc.job(&bc)).unwrap();
    for mode in [Mode::Auto, Mode::Gpu] {
        let device = Arc::new(HostDevice::new(2, 8));
        let engine = Engine::builder()
            .mode(mode)
            .workers(1)
            .gpu_min_rows(0)
            .gpu_device(device.clone())
            .build()
            .unwrap();
        let p = engine.prepare(program.program()).unwrap();
        let b = engine.bind(&p, [("pts", cities.clone()), ("zones", zones.clone())]).unwrap();
        engine.run(p.job(&b).rows(0..10)).unwrap(); // inputs resident
                                                    // The first attempt's outputs (room for 10 hits) fit; the re-run's (225k hits) do not.
        device.refuse_allocations_over(1 << 20);
        let r = engine.run(p.job(&b).hit_capacity(10));
        match mode {
            Mode::Auto => {
                let r = r.unwrap();
                assert_eq!(r.backend().name(), "cpu");
                assert!(r.backend().reason.contains("out of memory"), "{:?}", r.backend());
                assert_eq!(r.hits("pairs"), want.hits("pairs"));
                assert_eq!(r.attempts(), 2);
            }
            _ => match r {
                Err(JobError::Device(why)) => assert!(why.contains("out of memory"), "{why}"),
                other => panic!("expected an allocation failure, got {other:?}"),
            },
        }
        assert!(engine.gpu_unhealthy().is_none());
    }
}

#[test]
fn concurrent_shutdowns_both_return_and_resolve_everything() {
    let f = fixture(Mode::Gpu, HostDevice::new(2, 8), |b| b);
    let tickets: Vec<_> = (0..200)
        .map(|i| f.engine.submit(f.prepared.job(&f.bound).rows(i % POINTS..i % POINTS + 1)).unwrap())
        .collect();
    std::thread::scope(|s| {
        s.spawn(|| f.engine.shutdown());
        s.spawn(|| f.engine.shutdown());
    });
    for t in tickets {
        match t.wait() {
            Ok(_) | Err(JobError::Cancelled(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn a_chunk_that_outlasts_the_watchdog_stops_promptly_and_frees_everything() {
    let text = meridian_kernels::io::read_text(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/countries.geojson"
    )))
    .unwrap();
    let zones = Arc::new(meridian_kernels::io::read_geojson("countries.geojson", &text).unwrap().geometry);
    // Every city tested against every country: slow on purpose.
    let cities = Arc::new(
        meridian_kernels::io::read_csv(
            "cities.csv.gz",
            meridian_kernels::io::open(std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../data/cities.csv.gz"
            )))
            .unwrap(),
            &[],
        )
        .unwrap()
        .geometry,
    );
    let program = assemble(
        "slow.masm",
        ".program slow\n.input pts points\n.input zones polygons indexed\n.output n count\n\
         load g0, pts\n const f0, 1e9\n probe c0, zones, g0, f0\n next:\n cnext g1, c0, done\n\
         touches b0, g1, g0\n jf b0, next\n count n\n jmp next\n done:\n halt\n",
    )
    .unwrap();
    let device = Arc::new(HostDevice::new(1, 8));
    {
        let engine = Engine::builder()
            .mode(Mode::Gpu)
            .workers(1)
            .gpu_chunk_rows(1 << 20)
            .gpu_timeout(Duration::from_millis(300))
            .gpu_device(device.clone())
            .build()
            .unwrap();
        let p = engine.prepare(program.program()).unwrap();
        let b = engine.bind(&p, [("pts", cities), ("zones", zones.clone())]).unwrap();
        match engine.run(p.job(&b)) {
            Err(JobError::Device(why)) => assert!(why.contains("watchdog"), "{why}"),
            other => panic!("expected the watchdog, got {other:?}"),
        }
    }
    // The kernel left within its chunk when told to stop (within the executor's 5 s), so it
    // was not declared wedged and everything was freed.
    assert_eq!(device.live_allocations(), 0, "not wedged: everything was freed");
}

/// Telemetry of a GPU with `free` bytes of memory free, as NVML would report it.
fn telemetry(free: u64) -> meridian_runtime::driver::telemetry::Telemetry {
    use meridian_runtime::driver::telemetry::{NvmlDevice, NvmlState, Telemetry};
    use meridian_runtime::driver::{DeviceInfo, DriverState, DriverVersion, NvrtcState, Probe};
    let device = DeviceInfo {
        ordinal: 0,
        name: "emulated".into(),
        compute_capability: (9, 0),
        sms: 3,
        memory_bytes: 1 << 30,
        can_map_host_memory: true,
    };
    Telemetry {
        probe: Probe {
            driver: DriverState::Devices { version: DriverVersion(13000), devices: vec![device] },
            nvrtc: NvrtcState::Missing,
        },
        nvml: NvmlState::Devices {
            driver: Some("580".into()),
            devices: vec![NvmlDevice {
                index: 0,
                name: Some("emulated".into()),
                gpu_busy_percent: Some(0),
                memory_used: Some((1 << 30) - free),
                memory_free: Some(free),
                memory_total: Some(1 << 30),
            }],
        },
        taken: std::time::SystemTime::now(),
    }
}

/// The device memory telemetry reports free decides placement: a job that fits runs on the
/// GPU; one that does not runs on the CPU under `auto`, saying why, and fails under `gpu`.
#[test]
fn a_job_larger_than_the_gpus_free_memory_stays_off_it() {
    for (mode, free) in [(Mode::Auto, 1 << 30), (Mode::Auto, 4096), (Mode::Gpu, 4096), (Mode::Gpu, 1 << 30)] {
        let f = fixture(mode, HostDevice::new(2, 8), |b| b.telemetry(telemetry(free)));
        let r = f.engine.run(f.prepared.job(&f.bound));
        match (mode, free) {
            (_, 1073741824) => {
                let r = r.unwrap();
                assert_eq!(r.backend().name(), "cuda", "{mode:?} {free}");
                assert_eq!(r.plan().unwrap().variant, VariantId::GpuInterp);
                let gpu = f.engine.variants().get(VariantId::GpuInterp).unwrap();
                assert_eq!((gpu.min_rows, gpu.backend), (0, "cuda"));
            }
            (Mode::Auto, _) => {
                let r = r.unwrap();
                assert_eq!(r.backend().name(), "cpu");
                assert!(r.backend().reason.contains("the GPU has 4096 free"), "{}", r.backend().reason);
                assert_ne!(r.plan().unwrap().variant, VariantId::GpuInterp);
                for row in 0..POINTS {
                    let want = f.want[row].len();
                    assert_eq!(r.hits("pairs").unwrap().iter().filter(|h| h.0 as usize == row).count(), want);
                }
            }
            _ => {
                let Err(JobError::OverBudget(e)) = r else { panic!("{mode:?} {free}: {r:?}") };
                assert!(e.to_string().contains("the GPU's free memory is 4096 bytes"), "{e}");
            }
        }
        // A snapshot given by the builder is kept.
        assert_eq!(f.engine.refresh_telemetry().memory_free(0), Some(free));
    }
}
