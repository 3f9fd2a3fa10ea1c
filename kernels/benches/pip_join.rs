//! Point-in-polygon join through meridian's flat index against the fastest `geo` 0.33 route
//! (`IntervalTreeMultiPolygon` per polygon part behind an `rstar` R-tree of part boxes), in
//! the same process, single-threaded, on the shipped data (GeoNames cities × Natural Earth
//! countries) and on 2M uniform random points. Both routes must give identical pairs; the
//! bench checks that before timing.
//!
//! `cargo bench -p meridian-kernels --bench pip_join`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // a bench fails loudly

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use geo::algorithm::indexed::IntervalTreeMultiPolygon;
use geo::Contains;
use meridian_kernels::column::{ColumnBuilder, GeometryColumn};
use meridian_kernels::index::SpatialIndex;
use meridian_kernels::io;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTree;

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data").join(name)
}

fn countries() -> GeometryColumn {
    let text = io::read_text(&data("countries.geojson")).unwrap();
    io::read_geojson("countries.geojson", &text).unwrap().geometry
}

fn cities() -> GeometryColumn {
    let path = data("cities.csv.gz");
    io::read_csv("cities.csv.gz", io::open(&path).unwrap(), &[]).unwrap().geometry
}

/// 2M points uniform over the lon/lat rectangle (splitmix64, fixed seed).
fn uniform(n: usize) -> GeometryColumn {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut b = ColumnBuilder::new();
    for _ in 0..n {
        let (x, y) = (next() * 360.0 - 180.0, next() * 180.0 - 90.0);
        b.push_point(x, y).unwrap();
    }
    b.finish()
}

/// The `geo` route: an rstar tree of part boxes, each part an `IntervalTreeMultiPolygon`.
struct GeoRoute {
    tree: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
    parts: Vec<(IntervalTreeMultiPolygon<f64>, u32)>,
}

impl GeoRoute {
    fn build(polys: &GeometryColumn) -> GeoRoute {
        let mut parts = Vec::new();
        let mut boxes = Vec::new();
        for row in 0..polys.len() {
            let Some(g) = polys.get(row) else { continue };
            let geo::Geometry::MultiPolygon(mp) = (match io::to_geo(&g).unwrap() {
                geo::Geometry::Polygon(p) => geo::Geometry::MultiPolygon(geo::MultiPolygon(vec![p])),
                other => other,
            }) else {
                continue;
            };
            for p in mp.0 {
                let r = geo::BoundingRect::bounding_rect(&p).unwrap();
                boxes.push(GeomWithData::new(
                    Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                    parts.len(),
                ));
                parts.push((IntervalTreeMultiPolygon::new(&geo::MultiPolygon(vec![p])), row as u32));
            }
        }
        GeoRoute { tree: RTree::bulk_load(boxes), parts }
    }

    fn join(&self, pts: &[(f64, f64)]) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for (i, &(x, y)) in pts.iter().enumerate() {
            let env = rstar::AABB::from_point([x, y]);
            for cand in self.tree.locate_in_envelope_intersecting(&env) {
                let (poly, row) = &self.parts[cand.data];
                if poly.contains(&geo::Coord { x, y }) {
                    out.push((i as u32, *row));
                }
            }
        }
        out
    }
}

fn sorted(mut v: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    v.sort_unstable();
    v
}

fn bench(c: &mut Criterion) {
    let polys = countries();
    let index = SpatialIndex::build(polys.view());
    let geo_route = GeoRoute::build(&polys);
    for (name, pts) in [("cities", cities()), ("uniform_2m", uniform(2_000_000))] {
        let xy: Vec<(f64, f64)> = (0..pts.len()).filter_map(|r| pts.get(r)?.coords().next()).collect();
        assert_eq!(xy.len(), pts.len(), "every benchmark point is a non-null, non-empty point");
        let ours = sorted(index.join_points(pts.view()));
        let theirs = sorted(geo_route.join(&xy));
        assert_eq!(ours, theirs, "{name}: meridian and geo disagree");
        eprintln!("{name}: {} points, {} pairs, identical in both routes", pts.len(), ours.len());
        let mut g = c.benchmark_group(format!("pip_join/{name}"));
        g.throughput(Throughput::Elements(pts.len() as u64));
        g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
        g.bench_function(BenchmarkId::new("meridian_flat_index", pts.len()), |b| {
            b.iter(|| index.join_points(pts.view()))
        });
        g.bench_function(BenchmarkId::new("geo_interval_tree_rstar", pts.len()), |b| {
            b.iter(|| geo_route.join(&xy))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
