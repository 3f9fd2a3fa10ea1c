//! Random geometry columns for differential tests: every family, nulls and empties, with
//! coordinates mostly on a small integer grid so that shared vertices, collinear edges,
//! touching and overlapping shapes — the cases where exactness matters — are common.
//!
//! No coordinate is `-0.0`: the sign of a zero that `f64::min` picks between `0.0` and `-0.0`
//! is unspecified in Rust, and the two executors may pick differently.

use std::sync::Arc;

use meridian_bytecode::{InputKind, VerifiedProgram};
use meridian_kernels::column::{ColumnBuilder, Family, GeometryColumn};
use meridian_kernels::interp::Input;

/// splitmix64.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 for n = 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A coordinate: on the grid 0..=8 (in halves a fifth of the time), or a float in [-5, 10).
fn coord(rng: &mut Rng, fine: bool) -> f64 {
    if fine {
        rng.below(1500) as f64 / 100.0 - 5.0
    } else if rng.chance(20) {
        rng.below(17) as f64 / 2.0
    } else {
        rng.below(9) as f64
    }
}

fn point(rng: &mut Rng, fine: bool) -> (f64, f64) {
    (coord(rng, fine), coord(rng, fine))
}

fn line(rng: &mut Rng, fine: bool) -> Vec<(f64, f64)> {
    if rng.chance(5) {
        // A zero-length line: one point repeated.
        let p = point(rng, fine);
        return vec![p, p];
    }
    let n = 2 + rng.below(4) as usize;
    let mut l: Vec<(f64, f64)> = (0..n).map(|_| point(rng, fine)).collect();
    if rng.chance(15) {
        l.push(l[0]);
    }
    l
}

/// A simple polygon: a rectangle (sometimes with a rectangular hole) or a triangle.
fn polygon(rng: &mut Rng, fine: bool) -> Vec<Vec<(f64, f64)>> {
    let mut rings = Vec::new();
    if rng.chance(65) {
        let (a, b) = (point(rng, fine), point(rng, fine));
        let (x0, x1) = (a.0.min(b.0), a.0.max(b.0) + 1.0);
        let (y0, y1) = (a.1.min(b.1), a.1.max(b.1) + 1.0);
        rings.push(vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]);
        if x1 - x0 > 2.0 && y1 - y0 > 2.0 && rng.chance(40) {
            let (hx, hy) = (x0 + 1.0, y0 + 1.0);
            let (hw, hh) = ((x1 - x0 - 2.0).min(2.0), (y1 - y0 - 2.0).min(1.5));
            rings.push(vec![(hx, hy), (hx, hy + hh), (hx + hw, hy + hh), (hx + hw, hy), (hx, hy)]);
        }
    } else {
        loop {
            let (a, b, c) = (point(rng, fine), point(rng, fine), point(rng, fine));
            let cross = (b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0);
            if cross != 0.0 {
                rings.push(vec![a, b, c, a]);
                break;
            }
        }
    }
    if rng.chance(50) {
        for r in &mut rings {
            r.reverse();
        }
    }
    rings
}

#[allow(clippy::panic)] // a geometry the column refuses is a bug in this generator
fn push_family(b: &mut ColumnBuilder, rng: &mut Rng, family: Family) {
    let fine = rng.chance(20);
    if rng.chance(6) {
        b.push_empty(family);
        return;
    }
    let parts: Vec<Vec<Vec<(f64, f64)>>> = match family {
        Family::Point => vec![vec![vec![point(rng, fine)]]],
        Family::LineString => vec![vec![line(rng, fine)]],
        Family::Polygon => vec![polygon(rng, fine)],
        Family::MultiPoint => (0..1 + rng.below(4)).map(|_| vec![vec![point(rng, fine)]]).collect(),
        Family::MultiLineString => (0..1 + rng.below(3)).map(|_| vec![line(rng, fine)]).collect(),
        Family::MultiPolygon => (0..1 + rng.below(3)).map(|_| polygon(rng, fine)).collect(),
    };
    if let Err(e) = b.push_parts(family, &parts) {
        panic!("the generator made a geometry the column refuses: {e} ({family}, {parts:?})");
    }
}

/// The families an input kind allows.
pub fn families(kind: InputKind) -> &'static [Family] {
    match kind {
        InputKind::Points => &[Family::Point, Family::MultiPoint],
        InputKind::Lines => &[Family::LineString, Family::MultiLineString],
        InputKind::Polygons => &[Family::Polygon, Family::MultiPolygon],
        InputKind::Geometry => &Family::ALL,
    }
}

/// `rows` random geometries that fit `kind`, about one in twenty null. For `Points`, mostly
/// single points (the fast paths' case).
pub fn column(rng: &mut Rng, kind: InputKind, rows: usize) -> GeometryColumn {
    // Half the point columns hold single points only, which the builder keeps in the point
    // layout; a quarter of those are turned nested, so both layouts of points are exercised.
    let only_points = kind == InputKind::Points && rng.chance(50);
    let nested = only_points && rng.chance(25);
    let mut b = if nested { ColumnBuilder::nested() } else { ColumnBuilder::new() };
    let fams = families(kind);
    for _ in 0..rows {
        if rng.chance(5) {
            b.push_null();
            continue;
        }
        let family = if kind == InputKind::Points && (only_points || rng.chance(80)) {
            Family::Point
        } else {
            fams[rng.below(fams.len() as u64) as usize]
        };
        push_family(&mut b, rng, family);
    }
    b.finish()
}

/// Random inputs for `program`: `rows` rows in every row input, an indexed input of up to
/// `indexed_max - 1` rows.
pub fn inputs(program: &VerifiedProgram, rng: &mut Rng, rows: usize, indexed_max: u64) -> Vec<Input> {
    program
        .program()
        .inputs()
        .iter()
        .map(|decl| {
            if decl.indexed {
                let n = rng.below(indexed_max) as usize;
                Input::indexed(Arc::new(column(rng, decl.kind, n)))
            } else {
                Input::rows(Arc::new(column(rng, decl.kind, rows)))
            }
        })
        .collect()
}
