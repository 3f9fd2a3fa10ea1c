//! What the device tests share: the random-program differential check against the CPU
//! interpreter, for any Engine whose GPU backend is under test (the emulated device on every
//! CI run, a real GPU in the device evidence).
#![allow(dead_code)] // each test file uses part of it

#[path = "../../../bytecode/tests/gen/mod.rs"]
pub mod gen;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use meridian_bytecode::VerifiedProgram;
use meridian_cuda_host::data::{self, Rng};
use meridian_kernels::column::{ColumnBuilder, Family, GeometryColumn};
use meridian_kernels::interp::{BoundInputs, Input, Interpreter, OutputColumn, Scratch};
use meridian_kernels::io;
use meridian_runtime::Engine;
use proptest::prelude::*;

/// A file of the repository's shipped data.
fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data").join(name)
}

/// `n` pseudo-random points over the whole globe, a fresh column each call (nothing of it is
/// resident on a device yet).
pub fn random_points(n: usize, seed: u64) -> Arc<GeometryColumn> {
    let mut b = meridian_kernels::column::ColumnBuilder::new();
    let mut s = seed | 1;
    for _ in 0..n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let x = (s % 36_000) as f64 / 100.0 - 180.0;
        let y = ((s >> 20) % 16_000) as f64 / 100.0 - 80.0;
        b.push_point(x, y).unwrap_or_else(|e| panic!("{e}"));
    }
    Arc::new(b.finish())
}

/// The outputs of a result, by name (what two routes or backends must agree on).
pub fn outputs(r: &meridian_runtime::JobResult) -> Vec<(String, OutputColumn)> {
    r.outputs().map(|(n, c)| (n.to_owned(), c.clone())).collect()
}

/// Arithmetic over points: each point's distance from (0, 0), and how many are over 100.
pub const NORM: &str = "\
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

/// Zones that send rows to each of the split join's kernels: a lattice of unit squares with
/// shared edges (points on them are on boundaries: exact arithmetic), a stack of twelve
/// overlapping squares (more hits than the fast kernel keeps), a square with a hole, and a
/// multipolygon; with points on the lattice's vertices and edges, random points, nulls, empty
/// points and multipoints (not a point: the general kernel's whole row).
pub fn hostile_join_inputs(seed: u64) -> (Arc<GeometryColumn>, Arc<GeometryColumn>) {
    let mut z = ColumnBuilder::new();
    for i in 0..6 {
        for j in 0..6 {
            let (x, y) = (f64::from(i), f64::from(j));
            z.push_polygon(&[&[(x, y), (x + 1.0, y), (x + 1.0, y + 1.0), (x, y + 1.0), (x, y)]]).unwrap();
        }
    }
    for k in 0..12 {
        let o = 10.0 + 0.01 * f64::from(k);
        z.push_polygon(&[&[(o, o), (o + 2.0, o), (o + 2.0, o + 2.0), (o, o + 2.0), (o, o)]]).unwrap();
    }
    let hole: &[(f64, f64)] = &[(21.0, 1.0), (21.0, 2.0), (22.0, 2.0), (22.0, 1.0), (21.0, 1.0)];
    z.push_polygon(&[&[(20.0, 0.0), (23.0, 0.0), (23.0, 3.0), (20.0, 3.0), (20.0, 0.0)], hole]).unwrap();
    let square = |x: f64, y: f64| vec![vec![(x, y), (x + 1.0, y), (x + 1.0, y + 1.0), (x, y + 1.0), (x, y)]];
    z.push_parts(Family::MultiPolygon, &[square(30.0, 0.0), square(32.0, 0.0)]).unwrap();
    let mut p = ColumnBuilder::new();
    let mut rng = Rng(seed);
    for r in 0..4000u64 {
        let coord = |rng: &mut Rng, hi: u64| rng.below(hi * 4) as f64 / 4.0;
        match r % 10 {
            0 => p.push_null(),
            1 => p.push_empty(Family::Point),
            2 => {
                let parts =
                    vec![vec![vec![(coord(&mut rng, 7), 0.5)]], vec![vec![(10.5, coord(&mut rng, 13))]]];
                p.push_parts(Family::MultiPoint, &parts).unwrap()
            }
            // Inside the holed square, beside its hole at the height of the hole's vertices:
            // the grid's cell is to be checked, the orientation filter cannot decide (exact
            // arithmetic), and the point is in.
            9 => {
                let xs = [20.99, 20.999, 22.001, 22.01];
                p.push_point(xs[rng.below(4) as usize], 1.0 + rng.below(2) as f64).unwrap()
            }
            // Vertices and edges of the lattice, the stack and the holed square.
            3..=5 => p.push_point(coord(&mut rng, 34), coord(&mut rng, 13)).unwrap(),
            _ => p.push_point(rng.below(34_000) as f64 / 1000.0, rng.below(13_000) as f64 / 1000.0).unwrap(),
        }
    }
    (Arc::new(p.finish()), Arc::new(z.finish()))
}

/// The shipped Natural Earth countries.
/// Geometry built on the device and read by the ops after it: each country simplified, then
/// halved and moved, measured, and probed against the countries (the candidates tested with a
/// predicate on the built geometry).
pub const SHRUNK: &str = "\
.program shrunk
.input  shapes geometry
.input  zones  polygons indexed
.output area   f64
.output npts   f64
.output cx     f64
.output meets  hits
    load       g0, shapes
    const      f0, 0.5
    simplify   g1, g0, f0
    affine     g2, g1, 0.5, 0.0, 0.0, 0.5, 1.0, 1.0
    area       f1, g2
    store      area, f1
    npoints    f2, g1
    store      npts, f2
    centroid   f3, g2
    store      cx, f3
    probe      c0, zones, g2
next:
    cnext      g3, c0, done
    intersects b0, g3, g2
    jf         b0, next
    emit       meets, g3
    jmp        next
done:
    halt
";

pub fn countries() -> Arc<GeometryColumn> {
    let text = io::read_text(&data("countries.geojson")).unwrap();
    Arc::new(io::read_geojson("countries.geojson", &text).unwrap().geometry)
}

/// The shipped GeoNames cities.
pub fn cities() -> Arc<GeometryColumn> {
    Arc::new(io::read_csv("cities.csv.gz", io::open(&data("cities.csv.gz")).unwrap(), &[]).unwrap().geometry)
}

/// One of the shipped example programs, assembled.
pub fn example(name: &str) -> VerifiedProgram {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    meridian_bytecode::assemble(name, &std::fs::read_to_string(path).unwrap()).unwrap()
}

pub static PROGRAMS: AtomicU64 = AtomicU64::new(0);
pub static ROWS: AtomicU64 = AtomicU64::new(0);
/// Programs whose job failed on both sides (`affine` out of range).
pub static BOTH_FAILED: AtomicU64 = AtomicU64::new(0);

/// Random inputs for `program`: `rows` rows in every row input, a random indexed input.
pub fn inputs(program: &VerifiedProgram, rng: &mut Rng, rows: usize) -> Vec<Input> {
    data::inputs(program, rng, rows, 30)
}

/// The CPU interpreter over `rows` of `bound` in one chunk: the oracle.
pub fn cpu(
    program: &VerifiedProgram,
    bound: &BoundInputs,
    rows: std::ops::Range<usize>,
) -> Vec<OutputColumn> {
    try_cpu(program, bound, rows).unwrap()
}

/// The CPU interpreter's outputs, or why the job failed (constructive programs can fail: a
/// coordinate mapped out of range).
pub fn try_cpu(
    program: &VerifiedProgram,
    bound: &BoundInputs,
    rows: std::ops::Range<usize>,
) -> Result<Vec<OutputColumn>, String> {
    let it = Interpreter::new(program);
    let out = it.output_buffers(rows.clone(), 1 << 20);
    it.run(bound, rows, &out, &mut Scratch::new()).map_err(|e| e.to_string())?;
    Ok(out.finish().unwrap())
}

/// How many times the `sum` into `output` of the program `text` runs over `rows` of `bound`:
/// the program with that output a `count` and each of its `sum`s a `count` (which reads no
/// register, so every branch goes as before).
fn sum_executions(text: &str, output: &str, bound: &BoundInputs, rows: usize) -> u64 {
    let counting: Vec<String> = text
        .lines()
        .map(|line| match line.split_whitespace().collect::<Vec<_>>()[..] {
            [".output", name, "sum"] if name == output => format!(".output {name} count"),
            ["sum", into, _] if into.trim_end_matches(',') == output => format!("    count {output}"),
            _ => line.to_owned(),
        })
        .collect();
    let program = meridian_bytecode::assemble("counting", &counting.join("\n")).unwrap();
    let out = program.program().output_id(output).map_or(0, |o| o.0 as usize);
    match cpu(&program, bound, 0..rows).get(out) {
        Some(OutputColumn::Count(n)) => *n,
        other => panic!("the counting program's {output} is {other:?}"),
    }
}

/// Equal bits, or both NaN.
pub fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// The per-job kernel's outputs (`got`: f64, bool, count and sum; `None` for kinds it does
/// not produce) against the CPU interpreter's: f64 to the bit (NaN payloads aside), bool and
/// count exactly; sums are not compared (added in another order).
/// `program` over `inputs` on the CPU and on `gpu`: (the CPU's result, the GPU's), the GPU's
/// checked to have run there.
pub fn cpu_and_gpu(
    gpu: &Engine,
    program: &VerifiedProgram,
    inputs: &[(&str, Input)],
) -> (meridian_runtime::JobResult, meridian_runtime::JobResult) {
    let cpu = Engine::builder().mode(meridian_runtime::Mode::Cpu).workers(2).build().unwrap();
    let run = |e: &Engine| {
        let p = e.prepare(program.program()).unwrap();
        let b = e.bind(&p, inputs.iter().map(|(n, i)| (*n, i.clone()))).unwrap();
        e.run(p.job(&b)).unwrap()
    };
    let (want, got) = (run(&cpu), run(gpu));
    assert_eq!(got.backend().name(), "cuda", "{:?}", got.backend());
    (want, got)
}

/// Every output of two results equal (f64 values to the bit, NaN equal to NaN).
pub fn assert_same_outputs(
    want: &meridian_runtime::JobResult,
    got: &meridian_runtime::JobResult,
    what: &str,
) {
    for ((n, w), (_, g)) in want.outputs().zip(got.outputs()) {
        match (w, g) {
            (OutputColumn::F64(w), OutputColumn::F64(g)) => {
                assert_eq!(w.len(), g.len(), "{what}: output {n}");
                for (row, (a, b)) in w.iter().zip(g.iter()).enumerate() {
                    let ok = match (a, b) {
                        (Some(a), Some(b)) => same(a, b),
                        (a, b) => a.is_none() && b.is_none(),
                    };
                    assert!(ok, "{what}: output {n} row {row}: cpu {a:?} gpu {b:?}");
                }
            }
            (w, g) => assert_eq!(w, g, "{what}: output {n}"),
        }
    }
}

pub fn assert_per_job_matches(want: &[OutputColumn], got: &[Option<OutputColumn>], what: &str) {
    for (w, g) in want.iter().zip(got) {
        match (w, g) {
            (OutputColumn::F64(w), Some(OutputColumn::F64(g))) => {
                for (a, b) in w.iter().zip(g.iter()) {
                    let same = match (a, b) {
                        (Some(a), Some(b)) => same(a, b),
                        (None, None) => true,
                        _ => false,
                    };
                    assert!(same, "{what}: {a:?} vs {b:?}");
                }
            }
            (OutputColumn::Bool(_) | OutputColumn::Count(_), Some(g)) => assert_eq!(w, g, "{what}"),
            _ => {}
        }
    }
}

/// Both generators' programs of `seed` on `engine` against the CPU interpreter.
/// A constructive program of `seed` (`affine`, `simplify`) on `engine` against the CPU.
pub fn check_constructive(engine: &Engine, seed: u64) -> Result<(), TestCaseError> {
    compare(engine, gen::random_constructive_program(seed), seed)
}

pub fn check(engine: &Engine, seed: u64) -> Result<(), TestCaseError> {
    // The dataflow generator's programs compute from their data; the plain generator's read
    // mostly unwritten (null) registers, so they probe the null paths.
    compare(engine, gen::random_dataflow_program(seed, true), seed)?;
    compare(engine, gen::random_gpu_program(seed), seed)
}

fn compare(engine: &Engine, program: VerifiedProgram, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng(seed ^ 0x5eed);
    let rows = 1 + rng.below(60) as usize;
    let inputs = inputs(&program, &mut rng, rows);
    let bound = BoundInputs::bind(program.program(), inputs.clone()).unwrap();
    let want = try_cpu(&program, &bound, 0..rows);
    let text = meridian_bytecode::disassemble(program.program()).unwrap();

    let prepared = engine.prepare(program.program()).unwrap();
    let names: Vec<String> = program.program().inputs().iter().map(|d| d.name.clone()).collect();
    let b = engine.bind(&prepared, names.iter().cloned().zip(inputs)).unwrap();
    let got = engine.run(prepared.job(&b));
    let (want, got) = match (want, got) {
        (Ok(want), Ok(got)) => (want, got),
        // Only `affine` fails a row; both must fail (not necessarily at the same row: threads
        // race to report).
        (Err(w), Err(meridian_runtime::JobError::Exec(g)))
            if w.contains("affine") && g.message.contains("affine") =>
        {
            BOTH_FAILED.fetch_add(1, Relaxed);
            return Ok(());
        }
        (w, g) => {
            let g = g.map(|r| outputs(&r));
            return Err(TestCaseError::fail(format!("cpu {w:?}\ngpu {g:?}\n{text}")));
        }
    };
    prop_assert_eq!(got.backend().name(), "cuda");
    PROGRAMS.fetch_add(1, Relaxed);
    ROWS.fetch_add(rows as u64, Relaxed);
    for ((name, g), w) in got.outputs().zip(&want) {
        match (g, w) {
            (OutputColumn::F64(g), OutputColumn::F64(w)) => {
                for (row, (a, b)) in g.iter().zip(w.iter()).enumerate() {
                    let ok = match (a, b) {
                        (Some(a), Some(b)) => same(a, b),
                        (None, None) => true,
                        _ => false,
                    };
                    prop_assert!(ok, "{name} row {row}: gpu {a:?} cpu {b:?}\n{text}");
                }
            }
            (OutputColumn::Sum(a), OutputColumn::Sum(b)) if same(*a, *b) => {}
            (OutputColumn::Sum(a), OutputColumn::Sum(b)) => {
                // Only the association of the terms differs (each thread and chunk adds its
                // rows' terms into partials the job then combines): |a - b| is at most
                // (n - 1)·ε·Σ|term| for n terms. n is counted exactly by the program with
                // this sum a count; Σ|term| is estimated from the rows' sums (one-row runs),
                // which is exact where a row's terms share a sign.
                let out = program.program().output_id(name).map_or(0, |o| o.0 as usize);
                let terms: Vec<f64> = (0..rows)
                    .map(|r| match cpu(&program, &bound, r..r + 1).get(out) {
                        Some(OutputColumn::Sum(s)) => *s,
                        _ => 0.0,
                    })
                    .collect();
                let mass: f64 = terms.iter().map(|t| t.abs()).sum();
                let exceptional = terms.iter().any(|t| !t.is_finite());
                prop_assert!(
                    !exceptional,
                    "{name}: gpu {a} cpu {b} with infinite or NaN terms {terms:?}\n{text}"
                );
                if mass.is_finite() {
                    let n = sum_executions(&text, name, &bound, rows);
                    let tol = (n as f64 + 2.0) * f64::EPSILON * mass.max(a.abs()).max(b.abs());
                    prop_assert!(
                        (a - b).abs() <= tol,
                        "{name}: gpu {a} cpu {b}, tolerance {tol} ({n} terms)\n{text}"
                    );
                }
            }
            (g, w) => prop_assert_eq!(g, w, "{}\n{}", name, text),
        }
    }
    Ok(())
}
