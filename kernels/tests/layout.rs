//! The point layout against the nested one: what the builder keeps and when it moves, Arrow
//! buffers taken without a copy, and the interpreter (the oracle of every route) giving the
//! same results on random programs whichever layout holds the points.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

#[path = "../../cuda-host/src/data.rs"]
#[allow(missing_docs, dead_code)]
mod data;
#[path = "../../bytecode/tests/gen/mod.rs"]
mod gen;

use std::sync::Arc;

use arrow_buffer::{NullBuffer, ScalarBuffer};
use data::Rng;
use meridian_bytecode::VerifiedProgram;
use meridian_kernels::column::{ColumnBuilder, Family, GeometryColumn, Layout};
use meridian_kernels::cuda::abi::DeviceColumn;
use meridian_kernels::interp::{BoundInputs, Input, Interpreter, Scratch};
use meridian_kernels::io;
use proptest::prelude::*;

fn snap(b: &ColumnBuilder) -> GeometryColumn {
    b.clone().finish()
}

fn wkt(col: &GeometryColumn) -> Vec<String> {
    (0..col.len()).map(|r| io::to_wkt(col.get(r).as_ref())).collect()
}

/// The same rows in the other layout: nested for a point column, points for a nested column
/// of points only (anything else as it is).
fn flipped(col: &GeometryColumn) -> GeometryColumn {
    if col.layout() == Layout::Points {
        return col.to_nested().unwrap();
    }
    let mut b = ColumnBuilder::new();
    for r in 0..col.len() {
        b.push_geom(col.get(r).as_ref()).unwrap();
    }
    b.finish()
}

#[test]
fn points_stay_in_the_point_layout_until_another_family_comes() {
    let mut b = ColumnBuilder::new();
    b.push_point(1.0, 2.0).unwrap();
    b.push_null();
    b.push_empty(Family::Point);
    b.extend_points(&[3.0, f64::NAN, 5.0], &[4.0, f64::NAN, 6.0], |i| i != 2).unwrap();
    let before = b.checkpoint();
    let points = ["POINT(1 2)", "NULL", "POINT EMPTY", "POINT(3 4)", "POINT EMPTY", "NULL"];
    assert_eq!(b.view().layout(), Layout::Points);
    assert_eq!(wkt(&snap(&b)), points);

    let col = snap(&b);
    assert_eq!(col.layout(), Layout::Points);
    assert_eq!(col.view().family(), Some(Family::Point));
    // 16 bytes a row and the validity word on the device: no kinds, no offsets.
    assert_eq!(DeviceColumn::bytes(&col), 16 * 6 + 8);
    let nested = col.to_nested().unwrap();
    assert_eq!(nested.layout(), Layout::Nested);
    // For plain points: 16 bytes a point against the nested layout's 29 (kind, three
    // offsets, two coordinates).
    let mut plain = ColumnBuilder::new();
    plain.extend_points(&[0.5; 64], &[1.5; 64], |_| true).unwrap();
    let plain = plain.finish();
    assert_eq!(DeviceColumn::bytes(&plain), 16 * 64 + 8);
    assert_eq!(DeviceColumn::bytes(&plain.to_nested().unwrap()), 29 * 64 + 12 + 8);
    assert_eq!(nested, col);
    assert_eq!(wkt(&nested), points);

    // A polygon moves the rows to the nested layout; a failed row adds nothing.
    let square = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)];
    assert!(b.push_polygon(&[&square[..3]]).is_err());
    assert_eq!(b.view().layout(), Layout::Nested);
    b.push_polygon(&[&square]).unwrap();
    b.push_point(7.0, 8.0).unwrap();
    let mixed = snap(&b);
    assert_eq!(mixed.layout(), Layout::Nested);
    assert_eq!(mixed.view().family(), None);
    let mut want: Vec<String> = points.iter().map(|s| s.to_string()).collect();
    want.extend(["POLYGON((0 0,1 0,1 1,0 0))".into(), "POINT(7 8)".into()]);
    assert_eq!(wkt(&mixed), want);

    // Back to the checkpoint: the point layout again, with exactly the rows it had.
    b.restore(before);
    assert_eq!(b.view().layout(), Layout::Points);
    assert_eq!(snap(&b), col);
    b.push_point(9.0, 9.0).unwrap();
    assert_eq!(wkt(&b.finish()).last().unwrap(), "POINT(9 9)");
}

#[test]
fn arrow_buffers_become_the_column_without_a_copy() {
    let xs: ScalarBuffer<f64> = vec![1.0, 2.0, f64::NAN, 1e300].into();
    let ys: ScalarBuffer<f64> = vec![1.0, 2.0, f64::NAN, 0.0].into();
    let nulls = NullBuffer::from(vec![true, true, true, false]);
    let mut b = ColumnBuilder::new();
    // The null row's out-of-range value is not looked at.
    b.extend_point_buffers(xs.clone(), ys.clone(), Some(&nulls)).unwrap();
    let col = b.finish();
    assert_eq!(col.coordinates().0.as_ptr(), xs.as_ptr());
    assert_eq!(col.coordinates().1.as_ptr(), ys.as_ptr());
    assert_eq!(wkt(&col), ["POINT(1 1)", "POINT(2 2)", "POINT EMPTY", "NULL"]);

    // Into a builder that has rows they are copied, and a bad coordinate keeps the rows
    // before it and names its index.
    let mut b = ColumnBuilder::new();
    b.push_point(0.0, 0.0).unwrap();
    b.extend_point_buffers(xs.slice(0, 2), ys.slice(0, 2), None).unwrap();
    let (row, e) = b.extend_point_buffers(xs.clone(), ys.clone(), None).unwrap_err();
    assert_eq!(row, 3);
    assert!(e.to_string().contains("not finite"), "{e}");
    let col = b.finish();
    assert_ne!(col.coordinates().0.as_ptr(), xs.as_ptr());
    assert_eq!(
        wkt(&col)[..],
        ["POINT(0 0)", "POINT(1 1)", "POINT(2 2)", "POINT(1 1)", "POINT(2 2)", "POINT EMPTY"]
    );

    // Into an empty builder, a bad coordinate is the same error with nothing adopted.
    let mut b = ColumnBuilder::new();
    let (row, _) = b.extend_point_buffers(xs.clone(), ys.clone(), None).unwrap_err();
    assert_eq!((row, b.len()), (3, 3));
    // Far into the rows, past a bad value in a null row: the check goes by blocks of rows.
    let mut xs = vec![0.25; 5000];
    xs[3000] = f64::INFINITY;
    xs[4100] = -2e150;
    let mut b = ColumnBuilder::new();
    let (row, _) = b.extend_points(&xs, &[0.5; 5000], |i| i != 3000).unwrap_err();
    assert_eq!((row, b.len()), (4100, 4100));
    let col = b.finish();
    assert!(col.get(3000).is_none() && col.get(2999).is_some() && col.get(4099).is_some());
    // One coordinate NaN is not an empty point.
    let mut b = ColumnBuilder::new();
    let (row, _) =
        b.extend_point_buffers(vec![0.0, f64::NAN].into(), vec![0.0, 1.0].into(), None).unwrap_err();
    assert_eq!((row, b.len()), (1, 1));
}

#[test]
fn the_index_and_the_point_fast_paths_read_both_layouts() {
    let mut rng = Rng(11);
    for _ in 0..50 {
        let col = data::column(&mut rng, meridian_bytecode::InputKind::Points, 40);
        let other = flipped(&col);
        assert_eq!(wkt(&col), wkt(&other));
        let (a, b) = (col.view(), other.view());
        for r in 0..col.len() + 2 {
            assert_eq!(
                (a.kind(r), a.point(r), a.is_null(r)),
                (b.kind(r), b.point(r), b.is_null(r)),
                "row {r}"
            );
        }
        let (ia, ib) = (Input::indexed(Arc::new(col.clone())), Input::indexed(Arc::new(other.clone())));
        let (ia, ib) = (ia.index.unwrap(), ib.index.unwrap());
        for q in 0..20 {
            let (x, y) = (q as f64 * 2.0 - 20.0, 10.0 - q as f64);
            let rect = meridian_kernels::algo::Rect {
                min_x: x - 6.0,
                min_y: y - 6.0,
                max_x: x + 6.0,
                max_y: y + 6.0,
            };
            let rows = |ix: &meridian_kernels::index::SpatialIndex| {
                let mut found = Vec::new();
                ix.query(&rect, |_, row| found.push(row));
                found.sort_unstable();
                found.dedup();
                found
            };
            assert_eq!(rows(&ia), rows(&ib));
        }
    }
}

/// The interpreter's results on `inputs` and on the same inputs with every point column in
/// the other layout.
fn compare(program: VerifiedProgram, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng(seed ^ 0x1a70);
    let rows = 1 + rng.below(60) as usize;
    let inputs = data::inputs(&program, &mut rng, rows, 30);
    let other: Vec<Input> = inputs
        .iter()
        .map(|i| {
            let col = Arc::new(flipped(&i.column));
            if i.index.is_some() {
                Input::indexed(col)
            } else {
                Input::rows(col)
            }
        })
        .collect();
    let run = |inputs: Vec<Input>| {
        let bound = BoundInputs::bind(program.program(), inputs).unwrap();
        let interp = Interpreter::new(&program);
        let out = interp.output_buffers(0..rows, 1 << 16);
        match interp.run(&bound, 0..rows, &out, &mut Scratch::new()) {
            Ok(()) => format!("{:?}", out.finish()),
            Err(e) => format!("error: {e}"),
        }
    };
    let text = meridian_bytecode::disassemble(program.program()).unwrap();
    prop_assert_eq!(run(other), run(inputs), "{}", text);
    Ok(())
}

#[test]
fn random_programs_give_the_same_results_on_both_layouts() {
    let config = ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&any::<u64>(), |seed| {
        compare(gen::random_dataflow_program(seed, false), seed)?;
        compare(gen::random_program(seed), seed)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
