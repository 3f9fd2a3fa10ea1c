//! Streamed jobs give what one job over every row gives, whatever the batch sizes and the
//! number in flight; a failure part-way is an error that says how many rows were done.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::VecDeque;
use std::sync::Arc;

use meridian_bytecode::assemble;
use meridian_kernels::column::{ColumnBuilder, Family, GeometryColumn};
use meridian_kernels::interp::{Input, OutputColumn};
use meridian_kernels::io::{self, Position, ReadError};
use meridian_runtime::stream::{BatchSource, FileBatches, StreamError, StreamOptions};
use meridian_runtime::{Engine, Mode};
use proptest::prelude::*;

const PROGRAM: &str = "
.program every
.input  pts    points
.input  zones  polygons indexed
.output pairs  hits
.output n      count
.output total  sum
.output xs     f64
.output east   bool
.output moved  geometry
    load     g0, pts
    x        f0, g0
    store    xs, f0
    const    f1, 0.0
    gt       b1, f0, f1
    store    east, b1
    affine   g2, g0, 1.0, 0.0, 0.0, 1.0, 0.5, -0.5
    store    moved, g2
    select   f3, b1, f0, f1          ; x where east, else 0 (not NaN for empty points)
    sum      total, f3
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

/// Zones: a grid of overlapping squares, so that points have 0, 1 or several.
fn zones() -> Arc<GeometryColumn> {
    let mut b = ColumnBuilder::new();
    for i in 0..6 {
        for j in 0..6 {
            let (x, y) = (f64::from(i) * 1.5 - 4.0, f64::from(j) * 1.5 - 4.0);
            b.push_polygon(&[&[(x, y), (x + 2.0, y), (x + 2.0, y + 2.0), (x, y + 2.0), (x, y)]]).unwrap();
        }
    }
    Arc::new(b.finish())
}

/// Points with nulls and empties among them.
fn points(n: usize, seed: u64) -> GeometryColumn {
    let mut b = ColumnBuilder::new();
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..n {
        match i % 97 {
            13 => b.push_null(),
            41 => b.push_empty(Family::Point),
            _ => b.push_point(next() * 10.0 - 5.0, next() * 10.0 - 5.0).unwrap(),
        }
    }
    b.finish()
}

/// `col` in batches of the given sizes (cycled).
struct Split {
    batches: VecDeque<GeometryColumn>,
    fail_at: Option<usize>,
    served: usize,
}

impl Split {
    fn new(col: &GeometryColumn, sizes: &[usize]) -> Split {
        let mut batches = VecDeque::new();
        let mut row = 0;
        let mut k = 0;
        while row < col.len() {
            let n = sizes[k % sizes.len()].max(1).min(col.len() - row);
            let mut b = ColumnBuilder::new();
            for r in row..row + n {
                b.push_geom(col.get(r).as_ref()).unwrap();
            }
            batches.push_back(b.finish());
            row += n;
            k += 1;
        }
        Split { batches, fail_at: None, served: 0 }
    }
}

impl BatchSource for Split {
    fn next_batch(&mut self) -> Option<Result<GeometryColumn, ReadError>> {
        if self.fail_at == Some(self.served) {
            return Some(Err(ReadError {
                source_name: "split".into(),
                at: Position::Batch { batch: self.served as u64, row: 0 },
                message: "injected".into(),
            }));
        }
        self.served += 1;
        self.batches.pop_front().map(Ok)
    }
}

fn engine() -> &'static Engine {
    static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| Engine::builder().mode(Mode::Cpu).workers(2).chunk_rows(64).build().unwrap())
}

fn whole(col: &GeometryColumn, zones: &Arc<GeometryColumn>) -> Vec<OutputColumn> {
    let e = engine();
    let prepared = e.prepare(assemble("every.masm", PROGRAM).unwrap().program()).unwrap();
    let bound = e
        .bind(
            &prepared,
            [("pts", Input::rows(Arc::new(col.clone()))), ("zones", Input::indexed(zones.clone()))],
        )
        .unwrap();
    e.run(prepared.job(&bound)).unwrap().outputs().map(|(_, c)| c.clone()).collect()
}

fn streamed(
    source: impl BatchSource,
    zones: &Arc<GeometryColumn>,
    in_flight: usize,
) -> Result<(Vec<OutputColumn>, u64, u64), StreamError> {
    let e = engine();
    let prepared = e.prepare(assemble("every.masm", PROGRAM).unwrap().program()).unwrap();
    let others = [("zones".to_owned(), Input::indexed(zones.clone()))];
    let mut seen = Vec::new();
    let done = e.run_stream(
        &prepared,
        "pts",
        source,
        &others,
        StreamOptions { in_flight, cancel: None },
        &mut |r| seen.push(r),
    )?;
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "progress only grows: {seen:?}");
    assert_eq!(seen.last().copied().unwrap_or(0), done.rows);
    Ok((done.result.outputs().map(|(_, c)| c.clone()).collect(), done.rows, done.batches))
}

/// Equal outputs; sums equal to rounding (they are added in another order).
fn same(a: &[OutputColumn], b: &[OutputColumn]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (OutputColumn::Sum(p), OutputColumn::Sum(q)) => {
                assert!((p - q).abs() <= 1e-9 * (1.0 + p.abs()), "sum {p} vs {q}")
            }
            // NaN (an empty point's x) is not equal to itself.
            (OutputColumn::F64(p), OutputColumn::F64(q)) => {
                let bits = |c: &meridian_kernels::interp::F64Column| {
                    c.iter().map(|v| v.map(f64::to_bits)).collect::<Vec<_>>()
                };
                assert_eq!(bits(p), bits(q));
            }
            _ => assert_eq!(x, y),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn streamed_results_are_the_whole_jobs(
        n in 0usize..3000,
        sizes in proptest::collection::vec(1usize..700, 1..4),
        in_flight in 1usize..5,
        seed in any::<u64>(),
    ) {
        let zones = zones();
        let col = points(n, seed);
        let want = whole(&col, &zones);
        let (got, rows, batches) = streamed(Split::new(&col, &sizes), &zones, in_flight).unwrap();
        prop_assert_eq!(rows, n as u64);
        prop_assert_eq!(batches as usize, Split::new(&col, &sizes).batches.len());
        same(&got, &want);
    }
}

#[test]
fn the_case_finds_something() {
    let zones = zones();
    let want = whole(&points(2000, 5), &zones);
    let OutputColumn::Hits(h) = &want[0] else { panic!() };
    assert!(h.len() > 1000);
}

#[test]
fn a_read_error_part_way_is_an_error_with_the_rows_done() {
    let zones = zones();
    let col = points(1000, 1);
    let mut source = Split::new(&col, &[100]);
    source.fail_at = Some(4);
    let e = streamed(source, &zones, 2).unwrap_err();
    let StreamError::Read { rows_done, source } = &e else { panic!("{e}") };
    assert!(*rows_done <= 400, "{e}");
    assert_eq!(source.message, "injected");
    assert!(e.to_string().contains("rows were processed before; no result"), "{e}");
}

#[test]
fn a_batch_of_the_wrong_kind_is_a_bind_error() {
    let zones = zones();
    let polygons = (*zones).clone();
    let e = streamed(Split::new(&polygons, &[10]), &zones, 2).unwrap_err();
    assert!(matches!(e, StreamError::Bind { rows_done: 0, .. }), "{e}");
}

#[test]
fn a_damaged_file_streams_up_to_the_damage_and_fails() {
    let dir = std::env::temp_dir().join(format!("meridian-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let zones = zones();
    let col = points(5000, 9);
    let path = dir.join("p.arrows");
    let mut w =
        io::GeometryWriter::create(&path, io::Format::ArrowStream, "geometry", io::geoarrow::Encoding::Wkb)
            .unwrap();
    for start in (0..col.len()).step_by(1000) {
        w.write_rows(&col, start..start + 1000).unwrap();
    }
    w.finish().unwrap();
    // Whole, streamed in batches of 1,500 rows (record batches of 1,000 gathered and sliced):
    // the whole job's results.
    let reader = io::GeoBatchReader::open(&path, None).unwrap();
    let (got, rows, batches) = streamed(FileBatches::new(reader, 1500), &zones, 3).unwrap();
    assert_eq!((rows, batches), (5000, 4));
    same(&got, &whole(&col, &zones));
    // Cut inside the fourth record batch: an error naming the file and the byte, before any
    // row runs (the stream's end-of-stream marker is missing).
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.join("cut.arrows");
    std::fs::write(&cut, &bytes[..bytes.len() * 7 / 10]).unwrap();
    let e = io::GeoBatchReader::open(&cut, None).unwrap_err();
    assert!(e.source_name.ends_with("cut.arrows"), "{e}");
    assert!(e.message.contains(&format!("cut short at byte {}", bytes.len() * 7 / 10)), "{e}");
    // Damage the reader meets part-way (a file rewritten under it) is an error after the
    // rows before it, never a result.
    std::fs::copy(&path, &cut).unwrap();
    let reader = io::GeoBatchReader::with_batch_rows(&cut, None, 1000).unwrap();
    struct Cutting(FileBatches, std::path::PathBuf, usize);
    impl BatchSource for Cutting {
        fn next_batch(&mut self) -> Option<Result<GeometryColumn, ReadError>> {
            self.2 += 1;
            if self.2 == 3 {
                let f = std::fs::OpenOptions::new().write(true).open(&self.1).unwrap();
                f.set_len(f.metadata().unwrap().len() / 2).unwrap();
            }
            self.0.next_batch()
        }
    }
    let e = streamed(Cutting(FileBatches::new(reader, 1000), cut.clone(), 0), &zones, 3).unwrap_err();
    let StreamError::Read { rows_done, source } = &e else { panic!("{e}") };
    assert!(source.source_name.ends_with("cut.arrows"), "{e}");
    assert!(*rows_done < 5000, "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_empty_stream_is_a_job_over_no_rows() {
    let zones = zones();
    let (got, rows, batches) = streamed(Split::new(&GeometryColumn::default(), &[10]), &zones, 2).unwrap();
    assert_eq!((rows, batches), (0, 0));
    same(&got, &whole(&GeometryColumn::default(), &zones));
}

/// A source that serves `ok` batches, then panics.
struct Panics {
    inner: Split,
    ok: usize,
}

impl BatchSource for Panics {
    fn next_batch(&mut self) -> Option<Result<GeometryColumn, ReadError>> {
        if self.inner.served == self.ok {
            panic!("the source broke");
        }
        self.inner.next_batch()
    }
}

#[test]
fn a_panicking_source_is_a_read_error_not_a_crash() {
    let zones = zones();
    let col = points(1000, 3);
    let source = Panics { inner: Split::new(&col, &[100]), ok: 3 };
    let e = streamed(source, &zones, 2).unwrap_err();
    let StreamError::Read { rows_done, source } = &e else { panic!("{e}") };
    assert!(*rows_done <= 300, "{e}");
    assert_eq!(source.source_name, "pts");
    assert!(source.message.contains("panicked: the source broke"), "{e}");
}
