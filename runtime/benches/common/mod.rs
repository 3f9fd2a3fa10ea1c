//! What the benches share: the shipped data and uniform points.
#![allow(dead_code)] // each bench uses part of it

use std::path::{Path, PathBuf};

use meridian_runtime::kernels::column::{ColumnBuilder, GeometryColumn};
use meridian_runtime::kernels::io;

use geo::algorithm::indexed::IntervalTreeMultiPolygon;
use geo::Contains;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTree;

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data").join(name)
}

/// The shipped Natural Earth countries.
pub fn countries() -> GeometryColumn {
    let text = io::read_text(&data("countries.geojson")).unwrap();
    io::read_geojson("countries.geojson", &text).unwrap().geometry
}

/// The shipped GeoNames cities.
pub fn cities() -> GeometryColumn {
    let path = data("cities.csv.gz");
    io::read_csv("cities.csv.gz", io::open(&path).unwrap(), &[]).unwrap().geometry
}

/// `n` points uniform over the lon/lat rectangle (splitmix64, fixed seed).
pub fn uniform(n: usize) -> GeometryColumn {
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
pub struct GeoRoute {
    pub tree: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
    pub parts: Vec<(IntervalTreeMultiPolygon<f64>, u32)>,
}

impl GeoRoute {
    pub fn build(polys: &GeometryColumn) -> GeoRoute {
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

    pub fn join(&self, pts: &[(f64, f64)]) -> Vec<(u32, u32)> {
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
