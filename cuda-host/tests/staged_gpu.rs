//! An Arrow IPC file streamed to the GPU (the emulated device): the staging memory is
//! page-locked with the engine's device for as long as any batch over it lives, and released
//! after; a device that refuses leaves it pageable, with a `stream` event, and the results
//! are the same either way — those of the whole file in one job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::Arc;

use meridian_bytecode::assemble;
use meridian_cuda_host::HostDevice;
use meridian_kernels::column::{ColumnBuilder, Family};
use meridian_kernels::interp::Input;
use meridian_kernels::io::geoarrow::Encoding;
use meridian_kernels::io::{Format, GeometryWriter};
use meridian_runtime::stream::{IpcStream, IpcStreamOptions, StreamOptions};
use meridian_runtime::{Engine, Mode};

#[test]
fn staging_is_page_locked_while_batches_over_it_live() {
    let dir = std::env::temp_dir().join(format!("meridian-staged-gpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.arrow");
    let mut b = ColumnBuilder::new();
    for i in 0..20_000 {
        b.push_point((i % 100) as f64 * 0.1, (i / 100) as f64 * 0.05).unwrap();
    }
    let pts = b.finish();
    let mut w = GeometryWriter::create(&path, Format::ArrowFile, "geometry", Encoding::Native(Family::Point))
        .unwrap();
    for start in (0..20_000).step_by(4000) {
        w.write_rows(&pts, start..start + 4000).unwrap();
    }
    w.finish().unwrap();
    let mut z = ColumnBuilder::new();
    z.push_polygon(&[&[(0.0, 0.0), (5.0, 0.0), (5.0, 5.0), (0.0, 5.0), (0.0, 0.0)]]).unwrap();
    z.push_polygon(&[&[(2.0, 2.0), (9.0, 2.0), (9.0, 9.0), (2.0, 9.0), (2.0, 2.0)]]).unwrap();
    let zones = Input::indexed(Arc::new(z.finish()));
    let program = assemble("pip.masm", include_str!("../../examples/pip_join.masm")).unwrap();

    for refuse in [false, true] {
        let device = Arc::new(HostDevice::new(2, 32));
        if refuse {
            device.refuse_page_locks();
        }
        let engine = Engine::builder()
            .mode(Mode::Gpu)
            .workers(1)
            .gpu_min_rows(0)
            .gpu_device(device.clone())
            .build()
            .unwrap();
        let prepared = engine.prepare(program.program()).unwrap();
        let bound = engine
            .bind(&prepared, [("pts", Input::rows(Arc::new(pts.clone()))), ("zones", zones.clone())])
            .unwrap();
        let whole = engine.run(prepared.job(&bound)).unwrap();

        // A record batch a batch: each over its staging slot.
        let options = IpcStreamOptions { batch_rows: 4000, ..IpcStreamOptions::default() };
        let mut stream = IpcStream::open(&path, None, options).unwrap();
        let before = meridian_runtime::events::recent().len();
        stream.page_lock(&engine).unwrap();
        let how = stream.how();
        if refuse {
            assert!(device.page_locked().is_empty());
            assert!(
                how.contains("staging pageable (page-locking refused: page-locking refused (emulated))"),
                "{how}"
            );
            let events = meridian_runtime::events::recent();
            assert!(events[before..]
                .iter()
                .any(|e| e.surface == "stream" && e.selected == "pageable staging"));
        } else {
            let locked = device.page_locked();
            assert_eq!(locked.len(), 1, "{locked:?}");
            assert!(how.contains("MiB of staging page-locked for the GPU"), "{how}");
        }
        // The locked region outlives the stream while a batch over it lives.
        let mut held = None;
        let others = [("zones".to_owned(), zones.clone())];
        let done = {
            struct Keep<'a>(IpcStream, &'a mut Option<meridian_kernels::column::GeometryColumn>);
            impl meridian_runtime::stream::BatchSource for Keep<'_> {
                fn next_batch(
                    &mut self,
                ) -> Option<Result<meridian_kernels::column::GeometryColumn, meridian_kernels::io::ReadError>>
                {
                    let b = self.0.next_batch();
                    if let Some(Ok(col)) = &b {
                        if self.1.is_none() {
                            *self.1 = Some(col.clone());
                        }
                    }
                    b
                }
            }
            engine
                .run_stream(
                    &prepared,
                    "pts",
                    Keep(stream, &mut held),
                    &others,
                    StreamOptions::default(),
                    &mut |_| {},
                )
                .unwrap()
        };
        assert_eq!(done.result.hits("pairs"), whole.hits("pairs"));
        assert_eq!(done.result.backend().name(), "cuda");
        assert_eq!(device.page_locked().len(), usize::from(!refuse), "a batch over the staging lives");
        drop(held);
        // The executor's reaper drops a finished job's inputs just after resolving its ticket:
        // give it a moment (under load the test can get here first).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !device.page_locked().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(device.page_locked().is_empty(), "the lock goes with the last batch");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Batches of fresh points, each a new column (so each is uploaded), and how many were made.
struct Batches {
    left: usize,
    rows: usize,
    seed: u64,
}

impl meridian_runtime::stream::BatchSource for Batches {
    fn next_batch(
        &mut self,
    ) -> Option<Result<meridian_kernels::column::GeometryColumn, meridian_kernels::io::ReadError>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut b = ColumnBuilder::new();
        for _ in 0..self.rows {
            self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let (x, y) =
                ((self.seed >> 40) as f64 / (1u64 << 24) as f64, (self.seed >> 16 & 0xff_ffff) as f64);
            b.push_point(x * 10.0, y / (1u64 << 24) as f64 * 10.0).unwrap();
        }
        Some(Ok(b.finish()))
    }
}

#[test]
fn a_stream_holds_only_the_batches_in_flight_on_the_device_on_either_gpu_route() {
    // 40 batches of 5,000 points (3.2 MB of coordinates in all): the device holds the zones,
    // the program and the batches in flight — never the whole input.
    let (batches, rows) = (40usize, 5_000usize);
    let input_bytes = (batches * rows * 16) as u64;
    let mut z = ColumnBuilder::new();
    z.push_polygon(&[&[(0.0, 0.0), (5.0, 0.0), (5.0, 5.0), (0.0, 5.0), (0.0, 0.0)]]).unwrap();
    z.push_polygon(&[&[(2.0, 2.0), (9.0, 2.0), (9.0, 9.0), (2.0, 9.0), (2.0, 2.0)]]).unwrap();
    let zones = Input::indexed(Arc::new(z.finish()));
    let program = assemble("pip.masm", include_str!("../../examples/pip_join.masm")).unwrap();
    let cpu = Engine::builder().mode(Mode::Cpu).workers(1).build().unwrap();
    let run = |engine: &Engine| {
        let prepared = engine.prepare(program.program()).unwrap();
        let others = [("zones".to_owned(), zones.clone())];
        let source = Batches { left: batches, rows, seed: 7 };
        engine.run_stream(&prepared, "pts", source, &others, StreamOptions::default(), &mut |_| {}).unwrap()
    };
    let want = run(&cpu);
    assert_eq!(want.rows, (batches * rows) as u64);
    for route in [meridian_runtime::Route::Interpreter, meridian_runtime::Route::Jit] {
        let device = Arc::new(HostDevice::new(2, 32));
        let engine = Engine::builder()
            .mode(Mode::Gpu)
            .workers(1)
            .gpu_device(device.clone())
            .gpu_route(route)
            .build()
            .unwrap();
        let done = run(&engine);
        assert_eq!(done.result.hits("pairs"), want.result.hits("pairs"), "{route}");
        assert_eq!(
            done.result.backend().route(),
            if route == meridian_runtime::Route::Jit { "jit" } else { "interp" }
        );
        let peak = device.peak_device_bytes();
        eprintln!("{route}: peak {peak} device bytes for {input_bytes} bytes of input");
        assert!(
            peak < input_bytes / 2,
            "{route}: {peak} bytes on the device at once for {input_bytes} of input"
        );
        drop(engine);
        assert_eq!(device.live_allocations(), 0, "{route}: everything freed");
    }
}
