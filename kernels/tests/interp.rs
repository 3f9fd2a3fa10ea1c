//! The interpreter against the algorithms called directly: the point-join fast path, every
//! predicate's fast path on boundary cases, null and NaN semantics, and chunking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::Arc;

use meridian_bytecode::{assemble, VerifiedProgram};
use meridian_kernels::algo;
use meridian_kernels::column::{ColumnBuilder, GeometryColumn};
use meridian_kernels::index::SpatialIndex;
use meridian_kernels::interp::{BoundInputs, Input, Interpreter, OutputColumn, Scratch};
use meridian_kernels::io;

fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data").join(name)
}

fn run(program: &VerifiedProgram, inputs: Vec<Input>, chunks: usize) -> Vec<OutputColumn> {
    run_with_hits(program, inputs, chunks, |rows| rows * 4 + 16)
}

/// [`run`] with room for `hits(rows)` hits.
fn run_with_hits(
    program: &VerifiedProgram,
    inputs: Vec<Input>,
    chunks: usize,
    hits: impl Fn(usize) -> usize,
) -> Vec<OutputColumn> {
    let bound = BoundInputs::bind(program.program(), inputs).unwrap();
    let it = Interpreter::new(program);
    let n = bound.rows();
    let out = it.output_buffers(0..n, hits(n));
    let step = n.div_ceil(chunks.max(1)).max(1);
    let mut scratch = Scratch::new();
    for start in (0..n).step_by(step) {
        it.run(&bound, start..(start + step).min(n), &out, &mut scratch).unwrap();
    }
    out.finish().unwrap()
}

fn pip() -> VerifiedProgram {
    assemble("pip_join.masm", include_str!("../../examples/pip_join.masm")).unwrap()
}

#[test]
fn pip_join_on_cities_matches_the_direct_kernel_and_brute_force() {
    let text = io::read_text(&data("countries.geojson")).unwrap();
    let countries = Arc::new(io::read_geojson("countries.geojson", &text).unwrap().geometry);
    let cities = Arc::new(
        io::read_csv("cities.csv.gz", io::open(&data("cities.csv.gz")).unwrap(), &[]).unwrap().geometry,
    );
    let out = run(&pip(), vec![Input::rows(cities.clone()), Input::indexed(countries.clone())], 7);
    let OutputColumn::Hits(hits) = &out[0] else { panic!() };
    let mut direct = SpatialIndex::build(countries.clone()).join_points(cities.view());
    direct.sort_unstable();
    assert_eq!(hits, &direct);
    assert_eq!(hits.len(), 224_999);
    // Brute force with the general predicate on every 97th city.
    for row in (0..cities.len()).step_by(97) {
        let p = cities.get(row).unwrap();
        let want: Vec<(u32, u32)> = (0..countries.len())
            .filter(|&c| algo::contains(&countries.get(c).unwrap(), &p))
            .map(|c| (row as u32, c as u32))
            .collect();
        let got: Vec<(u32, u32)> = hits.iter().copied().filter(|h| h.0 == row as u32).collect();
        assert_eq!(got, want, "city row {row}");
    }
}

/// The edge slabs and the cell grid serve points: a join of polygons against an indexed
/// column finds every intersecting pair without them (they stay unbuilt), and the first point
/// probe builds them.
#[test]
fn only_points_build_the_point_accelerators() {
    let text = io::read_text(&data("countries.geojson")).unwrap();
    let countries = Arc::new(io::read_geojson("countries.geojson", &text).unwrap().geometry);
    let index = Arc::new(SpatialIndex::build(countries.clone()));
    let indexed = Input { column: countries.clone(), index: Some(index.clone()) };
    let mut want = Vec::new();
    for a in 0..countries.len() {
        let Some(g) = countries.get(a) else { continue };
        for b in 0..countries.len() {
            if countries.get(b).is_some_and(|h| algo::intersects(&g, &h)) {
                want.push((a as u32, b as u32));
            }
        }
    }
    assert!(want.len() > 2 * countries.len(), "{} pairs", want.len());
    // Probes without a distance (the whole-program join SQL's joins run) and with one.
    for probe in ["probe c0, b, g0", "const f0, 0.0\n probe c0, b, g0, f0"] {
        let src = format!(
            ".program t\n.input a polygons\n.input b polygons indexed\n.output pairs hits\n\
             load g0, a\n {probe}\n\
             next:\n cnext g1, c0, done\n intersects b0, g0, g1\n jf b0, next\n emit pairs, g1\n jmp next\n done:\n halt\n"
        );
        let program = assemble("t.masm", &src).unwrap();
        let out =
            run_with_hits(&program, vec![Input::rows(countries.clone()), indexed.clone()], 3, |n| n * 16);
        let OutputColumn::Hits(hits) = &out[0] else { panic!() };
        assert!(!index.points_built(), "polygon probes built the point accelerators ({probe})");
        let mut got = hits.clone();
        got.sort_unstable();
        assert_eq!(got, want, "{probe}");
    }
    // A point probe builds them, and is answered through them.
    let cities = Arc::new(
        io::read_csv("cities.csv.gz", io::open(&data("cities.csv.gz")).unwrap(), &[]).unwrap().geometry,
    );
    let out = run(&pip(), vec![Input::rows(cities.clone()), indexed], 7);
    let OutputColumn::Hits(hits) = &out[0] else { panic!() };
    assert!(index.points_built());
    assert_eq!(hits.len(), 224_999);
}

/// Multipolygons with a hole, shared edges and touching parts; points on a grid that hits
/// vertices, edges and interiors.
fn tricky() -> (GeometryColumn, GeometryColumn) {
    let mut z = ColumnBuilder::new();
    let sq = |x: f64, y: f64, s: f64| vec![(x, y), (x + s, y), (x + s, y + s), (x, y + s), (x, y)];
    z.push_parts(
        meridian_kernels::column::Family::MultiPolygon,
        &[vec![sq(0.0, 0.0, 4.0), sq(1.0, 1.0, 2.0)], vec![sq(4.0, 4.0, 2.0)]],
    )
    .unwrap();
    z.push_polygon(&[&sq(2.0, 0.0, 4.0)]).unwrap();
    z.push_null();
    z.push_empty(meridian_kernels::column::Family::Polygon);
    z.push_polygon(&[&[(0.0, 0.0), (6.0, 1.0), (3.0, 6.0), (0.0, 0.0)]]).unwrap();
    let mut p = ColumnBuilder::new();
    for i in 0..=14 {
        for j in 0..=14 {
            p.push_point(i as f64 * 0.5 - 0.5, j as f64 * 0.5 - 0.5).unwrap();
        }
    }
    p.push_null();
    p.push_empty(meridian_kernels::column::Family::Point);
    (z.finish(), p.finish())
}

#[test]
fn every_point_predicate_matches_the_general_algorithm() {
    let (zones, pts) = tricky();
    let (zones, pts) = (Arc::new(zones), Arc::new(pts));
    type Check = fn(&meridian_kernels::column::Geom<'_>, &meridian_kernels::column::Geom<'_>) -> bool;
    let cases: [(&str, &str, Check); 7] = [
        ("contains", "contains b0, g1, g0", |z, p| algo::contains(z, p)),
        ("covers", "covers b0, g1, g0", |z, p| algo::covers(z, p)),
        ("touches", "touches b0, g1, g0", |z, p| algo::touches(z, p)),
        ("intersects", "intersects b0, g0, g1", |z, p| algo::intersects(p, z)),
        ("disjoint", "disjoint b0, g1, g0", |z, p| algo::disjoint(z, p)),
        ("within", "within b0, g0, g1", |z, p| algo::within(p, z)),
        ("coveredby", "coveredby b0, g0, g1", |z, p| algo::covered_by(p, z)),
    ];
    for (name, op, check) in cases {
        // Every zone is a candidate (probe by a huge distance), so the fast path and the
        // hint both apply; then the same without the probe box holding the point.
        for dist in ["1e9", "0.0"] {
            let src = format!(
                ".program t\n.input pts points\n.input zones polygons indexed\n.output pairs hits\n\
                 load g0, pts\n const f0, {dist}\n probe c0, zones, g0, f0\n\
                 next:\n cnext g1, c0, done\n {op}\n jf b0, next\n emit pairs, g1\n jmp next\n done:\n halt\n"
            );
            let program = assemble("t.masm", &src).unwrap();
            let out = run(&program, vec![Input::rows(pts.clone()), Input::indexed(zones.clone())], 3);
            let OutputColumn::Hits(hits) = &out[0] else { panic!() };
            let index = SpatialIndex::build(zones.clone());
            let mut want = Vec::new();
            for r in 0..pts.len() {
                let Some(p) = pts.get(r) else { continue };
                let b = algo::bbox(&p);
                for z in 0..zones.len() {
                    let Some(g) = zones.get(z) else { continue };
                    let mut near = false;
                    index.query(&b.expand(if dist == "0.0" { 0.0 } else { 1e9 }), |_, row| {
                        near |= row == z as u32
                    });
                    if near && check(&g, &p) {
                        want.push((r as u32, z as u32));
                    }
                }
            }
            assert_eq!(hits, &want, "{name} (probe distance {dist})");
        }
    }
}

#[test]
fn nulls_nans_and_three_valued_logic() {
    let program = assemble(
        "n.masm",
        "
.program n
.input  g geometry
.output x f64
.output lo f64
.output hi f64
.output both bool
.output either bool
.output total sum
.output moved geometry
    load   g0, g
    x      f0, g0            ; null for polygons and nulls, NaN for an empty point
    const  f1, -0.0
    const  f2, 0.0
    min    f3, f1, f2
    max    f4, f1, f2
    store  lo, f3
    store  hi, f4
    store  x, f0
    isnull b0, f0
    not    b1, b0            ; true when x is not null
    const  f5, 1.0
    lt     b2, f0, f5        ; null when x is null
    and    b3, b2, b1        ; null and false = false
    or     b4, b2, b0        ; null or true = true
    store  both, b3
    store  either, b4
    sum    total, f0         ; nulls skipped, NaN propagates
    affine g1, g0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0
    affine g2, g1, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0   ; derived from derived
    store  moved, g2
    halt
",
    )
    .unwrap();
    let mut b = ColumnBuilder::new();
    b.push_point(0.5, 2.0).unwrap();
    b.push_null();
    b.push_polygon(&[&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]]).unwrap();
    b.push_point(3.0, 0.0).unwrap();
    let col = Arc::new(b.finish());
    let out = run(&program, vec![Input::rows(col.clone())], 1);
    let OutputColumn::F64(x) = &out[0] else { panic!() };
    assert_eq!(x.iter().collect::<Vec<_>>(), vec![Some(0.5), None, None, Some(3.0)]);
    let (OutputColumn::F64(lo), OutputColumn::F64(hi)) = (&out[1], &out[2]) else { panic!() };
    assert!(lo.get(0).unwrap().is_sign_negative() && hi.get(0).unwrap().is_sign_positive());
    let (OutputColumn::Bool(both), OutputColumn::Bool(either)) = (&out[3], &out[4]) else { panic!() };
    assert_eq!(both.iter().collect::<Vec<_>>(), vec![Some(true), Some(false), Some(false), Some(false)]);
    assert_eq!(either.iter().collect::<Vec<_>>(), vec![Some(true), Some(true), Some(true), Some(false)]);
    assert_eq!(out[5], OutputColumn::Sum(3.5));
    let OutputColumn::Geometry(moved) = &out[6] else { panic!() };
    assert_eq!(io::to_wkt(moved.get(0).as_ref()), "POINT(2.5 4)");
    assert!(moved.get(1).is_none());
    assert_eq!(io::to_wkt(moved.get(2).as_ref()), "POLYGON((2 2,3 2,3 3,2 2))");

    // Chunked runs give the same outputs as one run.
    for chunks in [2, 3, 4] {
        assert_eq!(run(&program, vec![Input::rows(col.clone())], chunks), out, "{chunks} chunks");
    }
}

#[test]
fn sum_of_nothing_is_zero_and_overflow_is_reported() {
    let program = assemble(
        "s.masm",
        ".program s\n.input g points\n.output t sum\n.output h hits\n load g0, g\n x f0, g0\n sum t, f0\n emit h, g0\n emit h, g0\n halt\n",
    )
    .unwrap();
    let mut b = ColumnBuilder::new();
    b.push_null();
    b.push_point(1.0, 1.0).unwrap();
    let bound = BoundInputs::bind(program.program(), vec![Input::rows(Arc::new(b.finish()))]).unwrap();
    let it = Interpreter::new(&program);
    let out = it.output_buffers(0..1, 0);
    it.run(&bound, 0..1, &out, &mut Scratch::new()).unwrap();
    assert_eq!(out.finish().unwrap(), vec![OutputColumn::Sum(0.0), OutputColumn::Hits(vec![])]);
    let out = it.output_buffers(0..2, 1);
    it.run(&bound, 0..2, &out, &mut Scratch::new()).unwrap();
    let err = out.finish().unwrap_err();
    assert_eq!(err.to_string(), "hit buffers overflowed: [(1, 2)] (output, hits produced)");
    // Rows outside the job are an error, not a panic.
    let out = it.output_buffers(0..1, 4);
    assert!(it.run(&bound, 0..2, &out, &mut Scratch::new()).is_err());
}

/// The point-probe fast paths (the whole-program join over a chunk, and the per-row fused
/// loop) against the same loop written so that nothing recognises it: same hits, same flag
/// and candidate registers after the loop, an exhausted cursor — on polygons with holes and
/// shared edges, non-polygon rows in the indexed input (the general predicate), and
/// non-point, empty and null rows among the probes (the instruction-by-instruction row).
#[test]
fn point_probe_fast_paths_match_the_unrecognised_loop() {
    let (zones, pts) = tricky();
    let mut z = ColumnBuilder::new();
    z.push_geom(zones.get(0).as_ref()).unwrap();
    z.push_line_string(&[(0.5, -0.5), (0.5, 5.5)]).unwrap();
    z.push_point(1.0, 1.0).unwrap();
    for row in 1..zones.len() {
        z.push_geom(zones.get(row).as_ref()).unwrap();
    }
    let mut p = ColumnBuilder::new();
    for row in 0..pts.len() {
        p.push_geom(pts.get(row).as_ref()).unwrap();
        if row % 50 == 7 {
            p.push_line_string(&[(0.0, 0.0), (1.0, 1.0)]).unwrap();
            p.push_polygon(&[&[(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 1.0)]]).unwrap();
        }
    }
    let (zones, pts) = (Arc::new(z.finish()), Arc::new(p.finish()));
    assert!(SpatialIndex::build(zones.clone()).grid().is_some(), "the fast paths need the cell grid");
    let header = ".program t\n.input pts geometry\n.input zones geometry indexed\n.output pairs hits\n";
    let after = ".output flag bool\n.output candnull bool\n.output after hits\n";
    let tail = "done:\n store flag, b0\n isnull b1, g1\n store candnull, b1\n\
                again:\n cnext g2, c0, end\n emit after, g2\n jmp again\n end:\n halt\n";
    for op in [
        "contains b0, g1, g0",
        "covers b0, g1, g0",
        "touches b0, g1, g0",
        "intersects b0, g0, g1",
        "intersects b0, g1, g0",
        "disjoint b0, g1, g0",
        "disjoint b0, g0, g1",
        "within b0, g0, g1",
        "coveredby b0, g0, g1",
    ] {
        let head = "load g0, pts\n probe c0, zones, g0\n next:\n cnext g1, c0, done\n";
        let join = format!("{header}{head} {op}\n jf b0, next\n emit pairs, g1\n jmp next\n done:\n halt\n");
        let fused = format!("{header}{after}{head} {op}\n jf b0, next\n emit pairs, g1\n jmp next\n{tail}");
        // Branching on a copy of the flag: no matcher follows that (any branch spelling of
        // the flag itself is recognised).
        let plain = format!(
            "{header}{after}{head} {op}\n mov b2, b0\n jt b2, hit\n jmp next\n hit:\n emit pairs, g1\n jmp next\n{tail}"
        );
        // The same loop with its branches spelled otherwise, also fused.
        let spelled = format!(
            "{header}{after}{head} {op}\n jt b0, hit\n jmp next\n hit:\n emit pairs, g1\n jmp next\n{tail}"
        );
        let inputs = || vec![Input::rows(pts.clone()), Input::indexed(zones.clone())];
        let [join, fused, plain, spelled] =
            [join, fused, plain, spelled].map(|src| run(&assemble("t.masm", &src).unwrap(), inputs(), 3));
        assert_eq!(fused, plain, "{op}: the fused loop leaves other state than the instructions");
        assert_eq!(spelled, plain, "{op}: the fused loop spelled with jt leaves other state");
        assert_eq!(join[0], plain[0], "{op}: the whole-program join emits other hits");
        let OutputColumn::Hits(hits) = &plain[0] else { panic!() };
        assert!(!hits.is_empty(), "{op}: the case tests nothing");
        assert_eq!(plain[3], OutputColumn::Hits(vec![]), "{op}: the cursor is exhausted after the loop");
        // The same loops counting instead of emitting.
        let header = header.replace("pairs hits", "pairs count");
        let [join, fused, plain] = [
            format!("{header}{head} {op}\n jf b0, next\n count pairs\n jmp next\n done:\n halt\n"),
            format!("{header}{after}{head} {op}\n jf b0, next\n count pairs\n jmp next\n{tail}"),
            format!(
                "{header}{after}{head} {op}\n mov b2, b0\n jt b2, hit\n jmp next\n hit:\n count pairs\n jmp next\n{tail}"
            ),
        ]
        .map(|src| run(&assemble("t.masm", &src).unwrap(), inputs(), 3));
        assert_eq!(fused, plain, "{op}: the fused counting loop leaves other state than the instructions");
        assert_eq!(
            join[0],
            OutputColumn::Count(hits.len() as u64),
            "{op}: the counting join counts otherwise"
        );
        assert_eq!(plain[0], join[0], "{op}");
    }
}

/// Joins the grid cannot answer — a distance probe with `dwithin`, an indexed input without
/// a grid (points and lines) — run as one step a row, against the same loop written so that
/// nothing recognises it: the same hits and counts, with null, empty, non-point probes and a
/// distance below zero.
#[test]
fn distance_joins_and_joins_without_a_grid_match_the_unrecognised_loop() {
    let (zones, pts) = tricky();
    let mut p = ColumnBuilder::new();
    for row in 0..pts.len() {
        p.push_geom(pts.get(row).as_ref()).unwrap();
        if row % 40 == 3 {
            p.push_line_string(&[(0.0, 0.0), (1.0, 1.25)]).unwrap();
            p.push_polygon(&[&[(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 1.0)]]).unwrap();
        }
    }
    // Contains some of either input's rows whole.
    p.push_polygon(&[&[(-1.0, -1.0), (7.0, -1.0), (7.0, 7.0), (-1.0, 7.0), (-1.0, -1.0)]]).unwrap();
    let pts = Arc::new(p.finish());
    // Indexed points and lines on one line: no cell grid.
    let mut l = ColumnBuilder::new();
    l.push_point(0.5, 1.0).unwrap();
    l.push_line_string(&[(0.5, -0.5), (0.5, 5.5)]).unwrap();
    l.push_null();
    l.push_point(0.5, 2.75).unwrap();
    let lines = Arc::new(l.finish());
    assert!(SpatialIndex::build(lines.clone()).grid().is_none(), "the case needs an index without a grid");
    let zones = Arc::new(zones);
    let header = ".program t\n.input pts geometry\n.input zones geometry indexed\n.output pairs hits\n";
    for (indexed, probe, op) in [
        (&zones, "const f0, 0.3\n probe c0, zones, g0, f0", "dwithin b0, g0, g1, f0"),
        (&zones, "const f0, 0.3\n probe c0, zones, g0, f0", "dwithin b0, g1, g0, f0"),
        (&zones, "const f0, 0.0\n probe c0, zones, g0, f0", "dwithin b0, g0, g1, f0"),
        (&zones, "const f0, -1.0\n probe c0, zones, g0, f0", "dwithin b0, g0, g1, f0"),
        (&lines, "const f0, 0.6\n probe c0, zones, g0, f0", "dwithin b0, g0, g1, f0"),
        (&lines, "probe c0, zones, g0", "intersects b0, g0, g1"),
        (&lines, "probe c0, zones, g0", "covers b0, g1, g0"),
        (&lines, "probe c0, zones, g0", "contains b0, g0, g1"),
        (&zones, "probe c0, zones, g0", "contains b0, g0, g1"),
    ] {
        let head = format!("load g0, pts\n {probe}\n next:\n cnext g1, c0, done\n");
        let join = format!("{header}{head} {op}\n jf b0, next\n emit pairs, g1\n jmp next\n done:\n halt\n");
        let plain = format!(
            "{header}{head} {op}\n mov b2, b0\n jt b2, hit\n jmp next\n hit:\n emit pairs, g1\n jmp next\n done:\n halt\n"
        );
        let inputs = || vec![Input::rows(pts.clone()), Input::indexed(indexed.clone())];
        let [join, plain] = [join, plain].map(|src| run(&assemble("t.masm", &src).unwrap(), inputs(), 3));
        assert_eq!(join, plain, "{probe} / {op}: the join run a row at a time emits other hits");
        let OutputColumn::Hits(hits) = &plain[0] else { panic!() };
        assert_eq!(hits.is_empty(), probe.contains("-1.0"), "{probe} / {op}: the case tests nothing");
        let counting = header.replace("pairs hits", "pairs count");
        let [join, plain] = [
            format!("{counting}{head} {op}\n jf b0, next\n count pairs\n jmp next\n done:\n halt\n"),
            format!(
                "{counting}{head} {op}\n mov b2, b0\n jt b2, hit\n jmp next\n hit:\n count pairs\n jmp next\n done:\n halt\n"
            ),
        ]
        .map(|src| run(&assemble("t.masm", &src).unwrap(), inputs(), 3));
        assert_eq!(join, plain, "{probe} / {op}: the counting join counts otherwise");
        assert_eq!(join[0], OutputColumn::Count(hits.len() as u64), "{probe} / {op}");
    }
}
