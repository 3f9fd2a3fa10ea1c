//! The device's constructions (`kernels/cuda/construct.cuh`, built as host C++) against
//! `algo::affine` / `algo::simplify` and the ColumnBuilder they append to, on random columns of
//! every family with nulls and empties: the same family, parts, rings and coordinates to the
//! bit, the same empties, and the same refusals (a mapped coordinate out of range). Also the
//! slot sizes both sides compute, and a slot too small is an error, not a write past it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use meridian_bytecode::InputKind;
use meridian_cuda_host::data::{self, Rng};
use meridian_cuda_host::geometry::{self, BuildError, Built, Construct, HostColumn};
use meridian_kernels::algo::{self, Affine};
use meridian_kernels::column::{ColumnBuilder, ColumnError, Geom, GeometryColumn};
use meridian_kernels::cuda::BuiltCaps;
use proptest::prelude::*;

fn column(wkts: &[&str]) -> GeometryColumn {
    meridian_kernels::io::read_wkt("cases", wkts.join("\n").as_bytes()).unwrap()
}

const KINDS: [InputKind; 4] = [InputKind::Points, InputKind::Lines, InputKind::Polygons, InputKind::Geometry];

/// The CPU's construction of `g`: what the interpreter's derived column holds, or its error.
fn cpu(g: &Geom<'_>, op: Construct) -> Result<Built, ColumnError> {
    let mut b = ColumnBuilder::new();
    match op {
        Construct::Affine(m) => algo::affine(g, &Affine(m), &mut b)?,
        Construct::Simplify(t) => algo::simplify(g, t, &mut b)?,
    }
    let col: GeometryColumn = b.finish();
    let g = col.get(0).expect("one row");
    let parts = g.parts().map(|p| p.rings().map(|r| r.coords().collect()).collect()).collect();
    Ok(Built { family: g.family(), parts })
}

/// The same parts, rings and coordinate bits.
fn same(a: &Built, b: &Built) -> bool {
    let bits = |b: &Built| -> Vec<Vec<Vec<(u64, u64)>>> {
        b.parts
            .iter()
            .map(|p| p.iter().map(|r| r.iter().map(|c| (c.0.to_bits(), c.1.to_bits())).collect()).collect())
            .collect()
    };
    a.family == b.family && bits(a) == bits(b)
}

/// A matrix: mostly moderate, sometimes one entry that sends coordinates out of range (NaN,
/// infinite, huge) or zeroes an axis.
fn matrix(rng: &mut Rng) -> [f64; 6] {
    let mut m = [0.0; 6];
    for v in &mut m {
        *v = (rng.below(4001) as f64 - 2000.0) / 256.0;
    }
    if rng.chance(20) {
        let i = rng.below(6) as usize;
        m[i] = [f64::NAN, f64::INFINITY, -f64::INFINITY, 1e200, 0.0, -0.0][rng.below(6) as usize];
    }
    if rng.chance(10) {
        // Both axes to NaN: a POINT becomes POINT EMPTY, anything else fails.
        m = [f64::NAN, 0.0, 0.0, f64::NAN, 0.0, 0.0];
    }
    m
}

fn tolerance(rng: &mut Rng) -> f64 {
    match rng.below(8) {
        0 => 0.0,
        1 => -1.0,
        2 => f64::NAN,
        3 => f64::INFINITY,
        _ => rng.below(1000) as f64 / 100.0,
    }
}

fn check(col: &GeometryColumn, rng: &mut Rng, what: &str) -> Result<(), TestCaseError> {
    let host = HostColumn::new(col);
    let caps = BuiltCaps::of(col);
    for row in 0..col.len() {
        let op =
            if rng.chance(50) { Construct::Affine(matrix(rng)) } else { Construct::Simplify(tolerance(rng)) };
        let got = host.construct(row, op, caps);
        let Some(g) = col.get(row) else {
            prop_assert!(got.is_none(), "{what} row {row} is null");
            continue;
        };
        let wkt = meridian_kernels::io::to_wkt(Some(&g));
        let got = got.expect("a non-null row");
        match (cpu(&g, op), got) {
            (Ok(want), Ok(got)) => {
                prop_assert!(
                    same(&want, &got),
                    "{what} row {row} {op:?} of {wkt}:\ncpu {want:?}\ngpu {got:?}"
                )
            }
            (Err(ColumnError::NonFinite { .. }), Err(BuildError::NonFinite)) => {}
            (want, got) => prop_assert!(false, "{what} row {row} {op:?} of {wkt}: cpu {want:?}, gpu {got:?}"),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn constructions_match_the_cpu(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        for kind in KINDS {
            let col = data::column(&mut rng, kind, 40);
            check(&col, &mut rng, &format!("{kind:?}"))?;
        }
    }
}

/// Simplify's interesting cases written out: a ring whose start point goes, a hole that
/// collapses, a shell that collapses (emptying its polygon, holes and all), a line that keeps
/// only its endpoints, and a multipolygon that loses one part.
#[test]
fn simplify_cases_match_the_cpu() {
    let wkts = [
        "POLYGON ((0 0, 10 0.1, 20 0, 20 10, 10 10.1, 0 10, -0.1 5, 0 0))",
        "POLYGON ((0 0, 0 1, 0.5 1.01, 1 1, 1 0, 0.5 0.01, 0 0))",
        "POLYGON ((0 0, 100 0, 100 100, 0 100, 0 0), (10 10, 10.1 10, 10.1 10.1, 10 10))",
        "POLYGON ((0 0, 1 0, 1 0.1, 0 0), (0.2 0.01, 0.3 0.01, 0.3 0.02, 0.2 0.01))",
        "LINESTRING (0 0, 1 0.1, 2 -0.1, 3 0.1, 4 0)",
        "LINESTRING (0 0, 5 5, 0 0)",
        "MULTIPOLYGON (((0 0, 1 0, 0.5 0.001, 0 0)), ((0 0, 10 0, 10 10, 0 10, 0 0)))",
        "MULTILINESTRING ((0 0, 1 1, 2 0, 3 1), (5 5, 6 6))",
        "MULTIPOINT ((1 2), (3 4))",
        "POINT EMPTY",
        "POLYGON EMPTY",
    ];
    let col = column(&wkts);
    let host = HostColumn::new(&col);
    let caps = BuiltCaps::of(&col);
    for (row, wkt) in wkts.iter().enumerate() {
        for t in [0.0, 0.05, 0.2, 1.0, 3.0, 1e9] {
            let g = col.get(row).unwrap();
            let want = cpu(&g, Construct::Simplify(t)).unwrap();
            let got = host.construct(row, Construct::Simplify(t), caps).unwrap().unwrap();
            assert!(same(&want, &got), "{wkt} at {t}:\ncpu {want:?}\ngpu {got:?}");
        }
    }
}

#[test]
fn slots_are_sized_alike_and_a_small_one_is_an_error() {
    let col = column(&[
        "POLYGON ((0 0, 4 0, 4 4, 0 4, 0 0), (1 1, 2 1, 2 2, 1 1))",
        "MULTIPOINT ((0 0), (1 1), (2 2))",
    ]);
    let caps = BuiltCaps::of(&col);
    assert_eq!((caps.parts, caps.rings, caps.coords), (3, 3, 9));
    for c in [caps, BuiltCaps::default(), BuiltCaps { parts: 7, rings: 1, coords: 13, pad: 0 }] {
        assert_eq!(geometry::slot_bytes(c), (c.work_bytes(), c.slot_bytes()), "{c:?}");
    }
    let host = HostColumn::new(&col);
    let m = Construct::Affine([1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    assert!(host.construct(0, m, caps).unwrap().is_ok());
    let small = BuiltCaps { coords: 8, ..caps };
    assert_eq!(host.construct(0, m, small), Some(Err(BuildError::TooLarge)));
    assert_eq!(host.construct(0, Construct::Simplify(0.0), small), Some(Err(BuildError::TooLarge)));
    assert!(host.construct(1, m, small).unwrap().is_ok());
}
