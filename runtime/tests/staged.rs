//! Arrow IPC files streamed through staging memory (io_uring, or pread): the same geometry
//! as reading the file whole, whatever the batch size, reads in flight or I/O path; streamed
//! jobs equal the whole job; truncation and damage mid-stream are errors naming the file and
//! the byte offset or batch.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::sync::Arc;

use meridian_bytecode::assemble;
use meridian_kernels::column::{ColumnBuilder, Family, GeometryColumn};
use meridian_kernels::interp::{Input, OutputColumn};
use meridian_kernels::io::geoarrow::Encoding;
use meridian_kernels::io::{self, Format, GeometryWriter, Position};
use meridian_runtime::stream::{
    BatchSource, IoMode, IpcStream, IpcStreamOptions, StreamError, StreamOptions,
};
use meridian_runtime::{Engine, Mode};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meridian-staged-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn points(n: usize) -> GeometryColumn {
    let mut b = ColumnBuilder::new();
    for i in 0..n {
        match i % 101 {
            5 => b.push_null(),
            77 => b.push_empty(Family::Point),
            _ => b.push_point((i % 997) as f64 * 0.01 - 5.0, (i % 613) as f64 * 0.016 - 5.0).unwrap(),
        }
    }
    b.finish()
}

/// `col` written as an Arrow IPC file in record batches of `per` rows.
fn write(path: &Path, col: &GeometryColumn, per: usize, encoding: Encoding) {
    let mut w = GeometryWriter::create(path, Format::ArrowFile, "geometry", encoding).unwrap();
    let mut start = 0;
    while start < col.len() {
        w.write_rows(col, start..(start + per).min(col.len())).unwrap();
        start += per;
    }
    w.finish().unwrap();
}

/// Every batch of `source`, appended.
fn drain(mut source: impl BatchSource) -> Result<(GeometryColumn, usize), io::ReadError> {
    let mut b = ColumnBuilder::new();
    let mut batches = 0;
    while let Some(batch) = source.next_batch() {
        let batch = batch?;
        for r in 0..batch.len() {
            b.push_geom(batch.get(r).as_ref()).unwrap();
        }
        batches += 1;
    }
    Ok((b.finish(), batches))
}

#[test]
fn staged_reads_give_the_file_whatever_the_path_and_sizes() {
    let d = dir("same");
    let col = points(50_000);
    let mixed = io::read_wkt(
        "m.wkt",
        "POINT (1 2)\nNULL\nPOLYGON ((0 0, 4 0, 4 3, 0 0))\nMULTILINESTRING ((0 0, 1 1), (2 2, 3 3))\nPOINT EMPTY\n".repeat(300).as_bytes(),
    )
    .unwrap();
    let cases = [
        ("native.arrow", &col, 4096, Encoding::Native(Family::Point)),
        ("wkb.arrow", &col, 7001, Encoding::Wkb),
        ("mixed.arrow", &mixed, 333, Encoding::Wkb),
    ];
    for (name, want, per, encoding) in cases {
        let path = d.join(name);
        write(&path, want, per, encoding);
        assert_eq!(&io::read_geometry(&path).unwrap(), want, "{name}: the reference read");
        for io in [IoMode::Auto, IoMode::Pread] {
            for (batch_rows, reads_in_flight) in [(999, 1), (10_000, 3), (1 << 20, 8)] {
                let options =
                    IpcStreamOptions { batch_rows, reads_in_flight, io, ..IpcStreamOptions::default() };
                let stream = IpcStream::open(&path, None, options).unwrap();
                let how = stream.how();
                match io {
                    IoMode::Pread => assert!(how.starts_with("pread (MERIDIAN_IO=pread)"), "{how}"),
                    IoMode::Auto => assert!(
                        how.starts_with("io_uring") || how.starts_with("pread (io_uring unavailable"),
                        "{how}"
                    ),
                }
                assert_eq!(stream.record_batches(), want.len().div_ceil(per));
                let (got, batches) = drain(stream).unwrap();
                assert_eq!(&got, want, "{name} {io:?} {batch_rows} {reads_in_flight}: {how}");
                // Record batches are gathered, and sliced, to `batch_rows` rows a batch.
                assert_eq!(batches, want.len().div_ceil(batch_rows), "{name} {batch_rows}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_consumer_that_keeps_every_batch_never_stalls_the_reads() {
    let d = dir("keep");
    let col = points(40_000);
    let path = d.join("p.arrow");
    write(&path, &col, 1000, Encoding::Native(Family::Point));
    // A batch a record batch, and batches that slice record batches (one slot under several).
    for (io, batch_rows) in [IoMode::Auto, IoMode::Pread].into_iter().flat_map(|io| [(io, 1000), (io, 300)]) {
        for (reads_in_flight, batches_held) in [(1, 0), (2, 1), (4, 3)] {
            let options = IpcStreamOptions { batch_rows, reads_in_flight, batches_held, io };
            let mut stream = IpcStream::open(&path, None, options).unwrap();
            // Every batch held at once: the slots run out and later batches are copied.
            let mut kept = Vec::new();
            while let Some(batch) = stream.next_batch() {
                kept.push(batch.unwrap());
            }
            assert_eq!(kept.len(), 40_000usize.div_ceil(batch_rows));
            let mut b = ColumnBuilder::new();
            for batch in &kept {
                for r in 0..batch.len() {
                    b.push_geom(batch.get(r).as_ref()).unwrap();
                }
            }
            assert_eq!(b.finish(), col, "{io:?} {reads_in_flight} {batches_held}");
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_staged_stream_runs_as_the_whole_job() {
    let d = dir("job");
    let col = points(30_000);
    let path = d.join("p.arrow");
    write(&path, &col, 2500, Encoding::Native(Family::Point));
    let mut z = ColumnBuilder::new();
    z.push_polygon(&[&[(-5.0, -5.0), (0.0, -5.0), (0.0, 0.0), (-5.0, 0.0), (-5.0, -5.0)]]).unwrap();
    z.push_polygon(&[&[(-1.0, -1.0), (3.0, -1.0), (3.0, 3.0), (-1.0, 3.0), (-1.0, -1.0)]]).unwrap();
    let zones = Input::indexed(Arc::new(z.finish()));
    let engine = Engine::builder().mode(Mode::Cpu).workers(2).build().unwrap();
    let program = assemble("pip.masm", include_str!("../../examples/pip_join.masm")).unwrap();
    let prepared = engine.prepare(program.program()).unwrap();
    let bound =
        engine.bind(&prepared, [("pts", Input::rows(Arc::new(col))), ("zones", zones.clone())]).unwrap();
    let whole = engine.run(prepared.job(&bound)).unwrap();
    let stream =
        IpcStream::open(&path, None, IpcStreamOptions { batch_rows: 4000, ..IpcStreamOptions::default() })
            .unwrap();
    let others = [("zones".to_owned(), zones)];
    let done =
        engine.run_stream(&prepared, "pts", stream, &others, StreamOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(done.rows, 30_000);
    let (Some(OutputColumn::Hits(a)), Some(OutputColumn::Hits(b))) =
        (done.result.get("pairs"), whole.get("pairs"))
    else {
        panic!()
    };
    assert!(!a.is_empty());
    assert_eq!(a, b);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn truncation_and_damage_mid_stream_are_errors_with_the_place() {
    let d = dir("bad");
    let col = points(40_000);
    let path = d.join("p.arrow");
    write(&path, &col, 5000, Encoding::Native(Family::Point));
    let bytes = std::fs::read(&path).unwrap();
    for io in [IoMode::Auto, IoMode::Pread] {
        // The file shrinks after its footer was read: a read ends early.
        let cut = d.join("cut.arrow");
        std::fs::write(&cut, &bytes).unwrap();
        let stream = IpcStream::open(
            &cut,
            None,
            IpcStreamOptions { batch_rows: 5000, reads_in_flight: 2, io, ..IpcStreamOptions::default() },
        )
        .unwrap();
        std::fs::OpenOptions::new().write(true).open(&cut).unwrap().set_len(bytes.len() as u64 / 2).unwrap();
        let engine = Engine::builder().mode(Mode::Cpu).workers(2).build().unwrap();
        let program = assemble(
            "m.masm",
            ".program m\n.input pts points\n.output n count\n load g0, pts\n count n\n halt\n",
        )
        .unwrap();
        let prepared = engine.prepare(program.program()).unwrap();
        let e = engine
            .run_stream(&prepared, "pts", stream, &[], StreamOptions::default(), &mut |_| {})
            .unwrap_err();
        let StreamError::Read { rows_done, source } = &e else { panic!("{e}") };
        assert!(source.source_name.ends_with("cut.arrow"), "{e}");
        assert!(matches!(source.at, Position::Byte(_)), "{e}");
        assert!(source.message.contains("ends at byte"), "{e}");
        assert!(*rows_done < 40_000, "{e}");

        // Damage inside a record batch's metadata: an error naming the batch, never a panic.
        let mut damaged = bytes.clone();
        for b in &mut damaged[bytes.len() / 2..bytes.len() / 2 + 64] {
            *b = 0xff;
        }
        let bad = d.join("bad.arrow");
        std::fs::write(&bad, &damaged).unwrap();
        let stream = IpcStream::open(
            &bad,
            None,
            IpcStreamOptions { batch_rows: 5000, reads_in_flight: 3, io, ..IpcStreamOptions::default() },
        )
        .unwrap();
        match drain(stream) {
            Err(e) => assert!(e.source_name.ends_with("bad.arrow"), "{e}"),
            // The bytes hit only coordinates: other points, but all rows.
            Ok((got, _)) => assert_eq!(got.len(), 40_000),
        }
    }
    // Not an IPC file, a footer that lies, a missing file.
    let text = d.join("text.arrow");
    std::fs::write(&text, "x,y\n1,2\n3,4\n5,6\n").unwrap();
    let e = IpcStream::open(&text, None, IpcStreamOptions::default()).unwrap_err();
    assert!(e.message.contains("not an Arrow IPC file"), "{e}");
    let mut lying = bytes.clone();
    let n = lying.len();
    lying[n - 10..n - 6].copy_from_slice(&(n as i32).to_le_bytes());
    std::fs::write(&text, &lying).unwrap();
    let e = IpcStream::open(&text, None, IpcStreamOptions::default()).unwrap_err();
    assert!(e.message.contains("does not fit"), "{e}");
    assert!(IpcStream::open(&d.join("absent.arrow"), None, IpcStreamOptions::default()).is_err());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_block_that_fails_part_way_leaves_the_builder_as_it_was() {
    use meridian_kernels::io::columnar::{IpcFile, IPC_TRAILER};
    let d = dir("block");
    let col = points(2000);
    let path = d.join("p.arrow");
    write(&path, &col, 1000, Encoding::Native(Family::Point));
    let bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    let trailer: [u8; IPC_TRAILER] = bytes[n - IPC_TRAILER..].try_into().unwrap();
    let footer = IpcFile::footer_len("p.arrow", trailer).unwrap();
    let file =
        IpcFile::from_footer("p.arrow", &bytes[n - IPC_TRAILER - footer..n - IPC_TRAILER], None).unwrap();
    let block = |k: usize, damage: bool| {
        let (at, len) = file.blocks()[k];
        let mut b = bytes[at as usize..at as usize + len].to_vec();
        if damage {
            // The block ends with the y coordinates of its last rows: NaN there fails the
            // batch after most of its rows were appended.
            for x in &mut b[len - 64..] {
                *x = 0xff;
            }
        }
        arrow_buffer::Buffer::from(b)
    };
    let mut b = ColumnBuilder::new();
    assert_eq!(file.append_block(0, block(0, false), 0, &mut b).unwrap(), 1000);
    let e = file.append_block(1, block(1, true), 1000, &mut b).unwrap_err();
    assert!(e.source_name == "p.arrow", "{e}");
    assert_eq!(b.len(), 1000, "nothing of the failed block stays");
    assert_eq!(file.append_block(1, block(1, false), 1000, &mut b).unwrap(), 1000);
    assert_eq!(b.finish(), col);
    let _ = std::fs::remove_dir_all(&d);
}
