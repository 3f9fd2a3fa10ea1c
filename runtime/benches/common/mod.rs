//! What the benches share: the shipped data and uniform points.
#![allow(dead_code)] // each bench uses part of it

use std::path::{Path, PathBuf};

use meridian_runtime::kernels::column::{ColumnBuilder, GeometryColumn};
use meridian_runtime::kernels::io;

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
