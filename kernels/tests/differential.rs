//! Differential property tests against the `geo` crate on random valid polygons (star-shaped
//! shells, optionally with a hole) and random points: area, length, bbox, centroid,
//! contains, intersects, distance.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use geo::{Area, BoundingRect, Centroid, Contains, Distance, Euclidean, Intersects, Length};
use meridian_kernels::algo;
use meridian_kernels::column::{ColumnBuilder, GeometryColumn};
use proptest::prelude::*;

/// A closed star-shaped ring around `c`: vertex `i` at angle `2πi/n + jitter`, radius `r[i]`.
fn star(c: (f64, f64), radii: &[f64], jitter: &[f64], ccw: bool) -> Vec<(f64, f64)> {
    let n = radii.len();
    let mut ring: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let a = std::f64::consts::TAU * (i as f64 + 0.8 * jitter[i]) / n as f64;
            (c.0 + radii[i] * a.cos(), c.1 + radii[i] * a.sin())
        })
        .collect();
    if !ccw {
        ring.reverse();
    }
    ring.push(ring[0]);
    ring
}

#[derive(Debug, Clone)]
struct Case {
    shell: Vec<(f64, f64)>,
    hole: Option<Vec<(f64, f64)>>,
    points: Vec<(f64, f64)>,
    other: Vec<(f64, f64)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (-1000.0f64..1000.0, -1000.0f64..1000.0, 0.01f64..100.0),
        prop::collection::vec((0.5f64..1.0, 0.0f64..1.0), 6..40),
        // Holes stay within 0.25 of the centre; with ≥ 6 shell vertices every shell edge is at least
        // 0.5·cos(0.9·2π/6) ≈ 0.29 away, so shell and hole never meet: the polygon is valid.
        prop::option::of(prop::collection::vec((0.05f64..0.25, 0.0f64..1.0), 3..12)),
        prop::collection::vec((-1.3f64..1.3, -1.3f64..1.3), 1..40),
        (prop::collection::vec((0.2f64..0.6, 0.0f64..1.0), 3..10), -1.5f64..1.5, -1.5f64..1.5),
        any::<bool>(),
    )
        .prop_map(|((cx, cy, s), shell, hole, pts, (other, ox, oy), ccw)| {
            let (r, j): (Vec<f64>, Vec<f64>) = shell.iter().map(|&(r, j)| (r * s, j)).unzip();
            let shell = star((cx, cy), &r, &j, ccw);
            let hole = hole.map(|h| {
                let (r, j): (Vec<f64>, Vec<f64>) = h.iter().map(|&(r, j)| (r * s, j)).unzip();
                star((cx, cy), &r, &j, !ccw)
            });
            let points = pts.iter().map(|&(x, y)| (cx + x * s, cy + y * s)).collect();
            let (r, j): (Vec<f64>, Vec<f64>) = other.iter().map(|&(r, j)| (r * s, j)).unzip();
            let other = star((cx + ox * s, cy + oy * s), &r, &j, true);
            Case { shell, hole, points, other }
        })
}

fn to_geo_poly(shell: &[(f64, f64)], hole: Option<&Vec<(f64, f64)>>) -> geo::Polygon<f64> {
    let ls = |r: &[(f64, f64)]| geo::LineString::from(r.to_vec());
    geo::Polygon::new(ls(shell), hole.map(|h| vec![ls(h)]).unwrap_or_default())
}

fn column(c: &Case) -> GeometryColumn {
    let mut b = ColumnBuilder::new();
    let mut rings: Vec<&[(f64, f64)]> = vec![&c.shell];
    if let Some(h) = &c.hole {
        rings.push(h);
    }
    b.push_polygon(&rings).unwrap();
    b.push_polygon(&[&c.other]).unwrap();
    for &(x, y) in &c.points {
        b.push_point(x, y).unwrap();
    }
    b.finish()
}

fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 1e-9 * scale.max(a.abs()).max(b.abs()).max(1e-300)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn measures_match_geo(c in case()) {
        let col = column(&c);
        let g = col.get(0).unwrap();
        let gp = to_geo_poly(&c.shell, c.hole.as_ref());
        let scale = gp.unsigned_area();
        prop_assert!(close(algo::area(&g), gp.unsigned_area(), scale), "area {} vs {}", algo::area(&g), gp.unsigned_area());
        let perimeter = Euclidean.length(gp.exterior()) + gp.interiors().iter().map(|r| Euclidean.length(r)).sum::<f64>();
        prop_assert!(close(algo::length(&g), perimeter, perimeter));
        let bb = algo::bbox(&g);
        let gb = gp.bounding_rect().unwrap();
        prop_assert_eq!((bb.min_x, bb.min_y, bb.max_x, bb.max_y), (gb.min().x, gb.min().y, gb.max().x, gb.max().y));
        let (cx, cy) = algo::centroid(&g).unwrap();
        let gc = gp.centroid().unwrap();
        let extent = (gb.max().x - gb.min().x).max(gb.max().y - gb.min().y);
        prop_assert!((cx - gc.x()).abs() <= 1e-9 * extent.max(cx.abs()) && (cy - gc.y()).abs() <= 1e-9 * extent.max(cy.abs()),
            "centroid ({cx}, {cy}) vs geo ({}, {})", gc.x(), gc.y());
    }

    #[test]
    fn point_predicates_and_distance_match_geo(c in case()) {
        let col = column(&c);
        let poly = col.get(0).unwrap();
        let gp = to_geo_poly(&c.shell, c.hole.as_ref());
        for (i, &(x, y)) in c.points.iter().enumerate() {
            let pt = col.get(2 + i).unwrap();
            let gpt = geo::Point::new(x, y);
            prop_assert_eq!(algo::contains(&poly, &pt), gp.contains(&gpt), "contains at ({}, {})", x, y);
            prop_assert_eq!(algo::intersects(&poly, &pt), gp.intersects(&gpt), "intersects at ({}, {})", x, y);
            prop_assert_eq!(algo::within(&pt, &poly), gp.contains(&gpt));
            let (d, gd) = (algo::distance(&pt, &poly), Euclidean.distance(&gpt, &gp));
            // Rounding in a distance is relative to the coordinates, not to the shape's size:
            // a tiny polygon far from the origin carries ulps of its coordinates (`close`
            // scales by 1e-9, so 1e-6 × mag allows about five ulps of mag).
            let mag = c.shell.iter().chain(&c.points).fold(0.0f64, |m, &(x, y)| m.max(x.abs()).max(y.abs()));
            prop_assert!(close(d, gd, 1e-12 * gp.unsigned_area().sqrt() + 1e-6 * mag), "distance {} vs geo {}", d, gd);
        }
    }

    #[test]
    fn polygon_pairs_match_geo(c in case()) {
        let col = column(&c);
        let (a, b) = (col.get(0).unwrap(), col.get(1).unwrap());
        let (ga, gb) = (to_geo_poly(&c.shell, c.hole.as_ref()), to_geo_poly(&c.other, None));
        prop_assert_eq!(algo::intersects(&a, &b), ga.intersects(&gb));
        // The vertex shortcut against the matrix it skips (DE-9IM: intersects is not FF*FF****).
        prop_assert_eq!(algo::intersects(&a, &b), !algo::relate(&a, &b).matches("FF*FF****"));
        prop_assert!(algo::intersects(&a, &a) && algo::intersects(&b, &b));
        prop_assert_eq!(algo::contains(&a, &b), ga.contains(&gb));
        prop_assert_eq!(algo::contains(&b, &a), gb.contains(&ga));
        let (d, gd) = (algo::distance(&a, &b), Euclidean.distance(&ga, &gb));
        prop_assert!(close(d, gd, 1e-12 * ga.unsigned_area().sqrt()), "distance {} vs geo {}", d, gd);
    }
}
