//! The flat index and the edge slabs against brute force.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use meridian_kernels::algo::{self, Location, Rect};
use meridian_kernels::column::ColumnBuilder;
use meridian_kernels::index::{CellClass, EdgeSlabs, FlatIndex, SpatialIndex};
use proptest::prelude::*;

fn rect((x, y, w, h): (f64, f64, f64, f64)) -> Rect {
    Rect { min_x: x, min_y: y, max_x: x + w, max_y: y + h }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn query_matches_brute_force(
        boxes in prop::collection::vec((-100.0f64..100.0, -100.0f64..100.0, 0.0f64..30.0, 0.0f64..30.0), 0..400),
        queries in prop::collection::vec((-120.0f64..120.0, -120.0f64..120.0, 0.0f64..40.0, 0.0f64..40.0), 1..20),
        node_size in 2usize..20,
        dist in 0.0f64..5.0,
    ) {
        let items: Vec<(Rect, u32)> = boxes.iter().enumerate().map(|(i, &b)| (rect(b), i as u32 * 3)).collect();
        let idx = FlatIndex::build(&items, node_size);
        prop_assert_eq!(idx.len(), items.len());
        for &q in &queries {
            let q = rect(q);
            let mut got = Vec::new();
            idx.query_within(&q, dist, |id| got.push(id));
            got.sort_unstable();
            let mut want: Vec<u32> =
                items.iter().filter(|(r, _)| r.intersects(&q.expand(dist))).map(|&(_, id)| id).collect();
            want.sort_unstable();
            prop_assert_eq!(&got, &want);
            let p = (q.min_x, q.min_y);
            let mut got = Vec::new();
            idx.query_point(p, |id| got.push(id));
            got.sort_unstable();
            let mut want: Vec<u32> = items.iter().filter(|(r, _)| r.contains_point(p)).map(|&(_, id)| id).collect();
            want.sort_unstable();
            prop_assert_eq!(got, want);
        }
    }

    /// Integer-coordinate star polygons (with a hole) probed at integer and half-integer
    /// points, so points on vertices, on edges and level with vertices are common: the slab
    /// test (fast filtered path and exact fallback) must agree with the plain exact test.
    #[test]
    fn slabs_agree_with_exact_location(
        radii in prop::collection::vec(10i32..20, 6..60),
        hole in prop::collection::vec(2i32..5, 3..10),
        probes in prop::collection::vec((-42i32..42, -42i32..42), 1..200),
    ) {
        let ring = |r: &[i32], ccw: bool| {
            let n = r.len();
            let mut v: Vec<(f64, f64)> = (0..n)
                .map(|i| {
                    let a = std::f64::consts::TAU * i as f64 / n as f64;
                    ((r[i] as f64 * a.cos()).round(), (r[i] as f64 * a.sin()).round())
                })
                .collect();
            v.dedup();
            if !ccw { v.reverse(); }
            v.push(v[0]);
            v
        };
        let (shell, hole) = (ring(&radii, true), ring(&hole, false));
        prop_assume!(shell.len() >= 4 && hole.len() >= 4);
        let mut b = ColumnBuilder::new();
        b.push_polygon(&[&shell, &hole]).unwrap();
        let col = b.finish();
        let g = col.get(0).unwrap();
        let slabs = EdgeSlabs::build(g.parts().map(Some));
        for &(x, y) in &probes {
            let p = (x as f64 / 2.0, y as f64 / 2.0);
            prop_assert_eq!(slabs.locate(0, p), algo::locate_point(&g, p), "at {:?}", p);
        }
    }
}

type Found = Vec<(u32, Option<Location>)>;

/// For `p`: every part whose box holds it, with where `p` lies (polygon parts only), from
/// the grid and from the R-tree plus the slabs. They must be equal.
fn grid_and_tree(idx: &SpatialIndex, areal: &[bool], p: (f64, f64)) -> (Found, Found) {
    let loc = |part: u32, l: Location| areal[part as usize].then_some(l);
    let mut grid = Vec::new();
    idx.query_point_classified(p, |part, _, class| {
        grid.push((part, loc(part, idx.locate_part(part, class, p))))
    });
    // Less the parts the cell says `p` is outside of: the same walk without them.
    if let Some(g) = idx.grid() {
        let skipping: Vec<_> = g.point_parts_but_outside(p, true).collect();
        let outside = |&(_, class): &(u32, CellClass)| class != CellClass::Outside;
        assert_eq!(skipping, g.point_parts(p).filter(outside).collect::<Vec<_>>(), "at {p:?}");
    }
    let mut tree = Vec::new();
    idx.tree().query_point(p, |part| tree.push((part, loc(part, idx.slabs().locate(part as usize, p)))));
    tree.sort_unstable_by_key(|e| e.0);
    (grid, tree)
}

/// Boxes around `p` grown by distances from none to past the cells: the parts the index
/// finds, and those of the grid's cell where the box is that small, are the tree's. Returns
/// how many of them one cell answered.
fn rects_agree(idx: &SpatialIndex, p: (f64, f64)) -> usize {
    let mut from_cell = 0;
    for d in [0.0, 1e-9, 0.01, 0.3, 2.0, 40.0] {
        let r = Rect { min_x: p.0, min_y: p.1, max_x: p.0, max_y: p.1 }.expand(d);
        let mut found = Vec::new();
        idx.query(&r, |part, row| found.push((part, row)));
        found.sort_unstable();
        let mut tree = Vec::new();
        idx.tree().query(&r, |part| tree.push((part, idx.part_rows()[part as usize])));
        tree.sort_unstable();
        assert_eq!(found, tree, "around {p:?} by {d}");
        // The grid's answer itself, where it gives one (`query` asks it of deep trees only).
        let mut cell = Vec::new();
        if idx
            .grid()
            .is_some_and(|g| g.query_rect(&r, |part| cell.push((part, idx.part_rows()[part as usize]))))
        {
            cell.sort_unstable();
            assert_eq!(cell, tree, "one cell around {p:?} by {d}");
            from_cell += 1;
        }
    }
    from_cell
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Overlapping integer star polygons with holes, a line and a point, probed on vertices,
    /// edges, a half-integer lattice and at random: the grid's classes give exactly what the
    /// slabs give, for exactly the parts whose boxes hold the point.
    #[test]
    fn grid_agrees_with_tree_and_slabs(
        stars in prop::collection::vec(((-30i32..30, -30i32..30), prop::collection::vec(3i32..15, 5..40)), 1..6),
        probes in prop::collection::vec((-90i32..90, -90i32..90), 1..150),
        randoms in prop::collection::vec((-50.0f64..50.0, -50.0f64..50.0), 0..50),
    ) {
        let mut b = ColumnBuilder::new();
        let mut vertices = Vec::new();
        for ((cx, cy), radii) in &stars {
            let n = radii.len();
            let ring = |scale: f64, ccw: bool| {
                let mut v: Vec<(f64, f64)> = (0..n)
                    .map(|i| {
                        let a = std::f64::consts::TAU * i as f64 / n as f64;
                        let r = radii[i] as f64 * scale;
                        ((*cx as f64 + r * a.cos()).round(), (*cy as f64 + r * a.sin()).round())
                    })
                    .collect();
                v.dedup();
                if !ccw { v.reverse(); }
                v.push(v[0]);
                v
            };
            let (shell, hole) = (ring(1.0, true), ring(0.2, false));
            prop_assume!(shell.len() >= 4);
            vertices.extend(shell.iter().copied());
            if hole.len() >= 4 && hole.iter().all(|&(x, y)| (x - *cx as f64).abs() + (y - *cy as f64).abs() >= 1.0) {
                b.push_polygon(&[&shell, &hole]).unwrap();
            } else {
                b.push_polygon(&[&shell]).unwrap();
            }
        }
        b.push_line_string(&[(-20.0, -20.0), (20.0, 25.0)]).unwrap();
        b.push_point(3.0, 3.0).unwrap();
        b.push_null();
        let col = b.finish();
        let idx = SpatialIndex::build(std::sync::Arc::new(col.clone()));
        prop_assert!(idx.grid().is_some());
        let areal: Vec<bool> = idx.part_rows().iter().map(|&r| r < stars.len() as u32).collect();
        let lattice = probes.iter().map(|&(x, y)| (x as f64 / 2.0, y as f64 / 2.0));
        let midpoints = vertices.windows(2).map(|w| ((w[0].0 + w[1].0) / 2.0, (w[0].1 + w[1].1) / 2.0));
        for p in lattice.chain(randoms.iter().copied()).chain(vertices.iter().copied()).chain(midpoints) {
            let (grid, tree) = grid_and_tree(&idx, &areal, p);
            prop_assert_eq!(grid, tree, "at {:?}", p);
            rects_agree(&idx, p);
        }
    }
}

#[test]
fn grid_agrees_with_tree_and_slabs_on_the_countries() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/countries.geojson")).unwrap();
    let col = meridian_kernels::io::read_geojson("countries.geojson", &text).unwrap().geometry;
    let idx = SpatialIndex::build(std::sync::Arc::new(col.clone()));
    let grid = idx.grid().expect("a grid over the countries");
    let (nx, ny) = grid.shape();
    assert!(nx * ny >= 1 << 10 && grid.entries() <= 8 * nx * ny, "{nx}×{ny}, {} entries", grid.entries());
    let areal = vec![true; idx.part_rows().len()];
    let (mut checked, mut decided, mut from_cell) = (0usize, 0usize, 0usize);
    let mut probe = |p: (f64, f64)| {
        let (g, t) = grid_and_tree(&idx, &areal, p);
        assert_eq!(g, t, "at {p:?}");
        from_cell += rects_agree(&idx, p);
        idx.query_point_classified(p, |_, _, class| {
            checked += 1;
            decided += usize::from(class != CellClass::Check);
        });
    };
    // Every vertex and edge midpoint (on the boundary), and a lattice finer than the cells.
    for row in 0..col.len() {
        for part in col.get(row).unwrap().parts() {
            for ring in part.rings() {
                for (a, b) in ring.segments() {
                    probe(a);
                    probe(((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0));
                }
            }
        }
    }
    for i in 0..=720 {
        for j in 0..=360 {
            probe((-180.0 + i as f64 * 0.5, -90.0 + j as f64 * 0.5));
        }
    }
    // The point of the grid: most answers need no edge test.
    assert!(decided * 2 > checked, "{decided} of {checked} decided by the grid");
    assert!(from_cell > 0, "no box was small enough for one cell");
}

#[test]
fn polygon_index_join_matches_brute_force() {
    let mut b = ColumnBuilder::new();
    b.push_polygon(&[&[(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0), (0.0, 0.0)]]).unwrap();
    b.push_null();
    b.push_point(1.0, 1.0).unwrap(); // not a polygon: never contains anything
    b.push_polygon(&[&[(2.0, 2.0), (6.0, 2.0), (6.0, 6.0), (2.0, 6.0), (2.0, 2.0)]]).unwrap();
    let polys = b.finish();
    let mut p = ColumnBuilder::new();
    for y in 0..=14 {
        for x in 0..=14 {
            p.push_point(x as f64 / 2.0, y as f64 / 2.0).unwrap();
        }
    }
    p.push_null();
    let pts = p.finish();
    let idx = SpatialIndex::build(std::sync::Arc::new(polys.clone()));
    let mut got = idx.join_points(pts.view());
    got.sort_unstable();
    let mut want = Vec::new();
    for r in 0..pts.len() {
        let Some(pt) = pts.get(r) else { continue };
        for q in 0..polys.len() {
            let Some(poly) = polys.get(q) else { continue };
            if poly.dimension() == 2 && algo::contains(&poly, &pt) {
                want.push((r as u32, q as u32));
            }
        }
    }
    assert!(!want.is_empty());
    assert_eq!(got, want);
    // Boundary points are not contained.
    assert_eq!(algo::locate_point(&polys.get(0).unwrap(), (4.0, 2.0)), Location::Boundary);
}

#[test]
fn slabs_stay_linear_for_tall_edges() {
    // A comb: 2,000 teeth whose edges each span the whole height.
    let mut ring = vec![(0.0, 0.0)];
    for i in 0..1000 {
        let x = i as f64 * 2.0;
        ring.extend([(x, 100.0), (x + 1.0, 100.0), (x + 1.0, 1.0), (x + 2.0, 1.0)]);
    }
    ring.extend([(2000.0, 0.0), (0.0, 0.0)]);
    let mut b = ColumnBuilder::new();
    b.push_polygon(&[&ring]).unwrap();
    let col = b.finish();
    let g = col.get(0).unwrap();
    let slabs = EdgeSlabs::build(g.parts().map(Some));
    let edges = ring.len() - 1;
    assert!(slabs.entries() <= 8 * edges, "{} entries for {edges} edges", slabs.entries());
    for p in [(0.5, 50.0), (1.5, 50.0), (1.5, 0.5), (1.0, 50.0), (2000.5, 0.5)] {
        assert_eq!(slabs.locate(0, p), algo::locate_point(&g, p), "at {p:?}");
    }
    assert_eq!(slabs.locate(0, (f64::NAN, 0.5)), Location::Exterior);
    assert_eq!(algo::locate_point(&g, (f64::NAN, 0.5)), Location::Exterior);
}

#[test]
fn coordinates_beyond_the_exact_range_are_refused() {
    let mut b = ColumnBuilder::new();
    assert!(b.push_point(1e151, 0.0).is_err());
    assert!(b.push_point(-1e150, 1e150).is_ok());
}
