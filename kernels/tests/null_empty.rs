//! Null and empty stay different, and every operation has a defined result on empties.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use meridian_kernels::algo::{self, Affine, Location};
use meridian_kernels::column::{ColumnBuilder, Family, GeometryColumn};
use meridian_kernels::io;

/// Rows: 0 null, 1..=6 an empty of each family, 7 a unit square, 8 a point inside it.
fn column() -> GeometryColumn {
    let mut b = ColumnBuilder::new();
    b.push_null();
    for f in Family::ALL {
        b.push_empty(f);
    }
    b.push_polygon(&[&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0)]]).unwrap();
    b.push_point(0.5, 0.5).unwrap();
    b.finish()
}

#[test]
fn null_is_not_empty() {
    let col = column();
    let v = col.view();
    assert!(v.is_null(0) && col.get(0).is_none());
    for (row, f) in (1..=6).zip(Family::ALL) {
        assert!(!v.is_null(row), "row {row}");
        let g = col.get(row).unwrap();
        assert!(g.is_empty());
        assert_eq!(g.family(), f);
        assert_eq!(io::to_wkt(Some(&g)), format!("{} EMPTY", f.wkt_name()));
    }
    assert_eq!(io::to_wkt(None), "NULL");
    assert_eq!(v.family(), None, "a column with six families is mixed");
}

#[test]
fn measures_of_empties() {
    let col = column();
    for row in 1..=6 {
        let g = col.get(row).unwrap();
        assert_eq!(algo::area(&g), 0.0);
        assert_eq!(algo::length(&g), 0.0);
        assert!(algo::bbox(&g).is_nan());
        assert_eq!(algo::centroid(&g), None);
        assert_eq!(g.num_points(), 0);
        assert_eq!(algo::locate_point(&g, (0.5, 0.5)), Location::Exterior);
    }
}

#[test]
fn predicates_with_an_empty_side() {
    let col = column();
    let square = col.get(7).unwrap();
    let point = col.get(8).unwrap();
    for row in 1..=6 {
        let e = col.get(row).unwrap();
        for other in [&square, &point, &e] {
            for (x, y) in [(&e, other), (other, &e)] {
                assert!(!algo::intersects(x, y), "row {row}");
                assert!(algo::disjoint(x, y));
                assert!(!algo::contains(x, y));
                assert!(!algo::within(x, y));
                assert!(!algo::covers(x, y));
                assert!(!algo::covered_by(x, y));
                assert!(!algo::touches(x, y));
                assert!(algo::distance(x, y).is_nan());
                assert!(!algo::dwithin(x, y, 1e300));
            }
        }
        // DE-9IM of empty against the square: only the exterior of the empty meets it.
        assert_eq!(algo::relate(&e, &square).to_string(), "FFFFFF212");
        assert_eq!(algo::relate(&square, &e).to_string(), "FF2FF1FF2");
    }
}

#[test]
fn constructions_keep_empty_empty() {
    let col = column();
    let mut b = ColumnBuilder::new();
    for row in 1..=6 {
        let g = col.get(row).unwrap();
        algo::affine(&g, &Affine([2.0, 0.0, 0.0, 2.0, 1.0, 1.0]), &mut b).unwrap();
        algo::simplify(&g, 1.0, &mut b).unwrap();
    }
    let out = b.finish();
    for (i, f) in Family::ALL.iter().enumerate() {
        for k in 0..2 {
            let g = out.get(2 * i + k).unwrap();
            assert!(g.is_empty());
            assert_eq!(g.family(), *f);
        }
    }
}

#[test]
fn readers_keep_null_and_empty_apart() {
    let wkt = io::read_wkt("t.wkt", "NULL\nPOINT EMPTY\nnull\nPOLYGON EMPTY\n".as_bytes()).unwrap();
    let nulls: Vec<bool> = (0..4).map(|r| wkt.get(r).is_none()).collect();
    assert_eq!(nulls, [true, false, true, false]);

    let doc = r#"{"type":"FeatureCollection","features":[
        {"type":"Feature","properties":{},"geometry":null},
        {"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[]}}]}"#;
    let gj = io::read_geojson("t.geojson", doc).unwrap();
    assert!(gj.geometry.get(0).is_none());
    assert!(gj.geometry.get(1).unwrap().is_empty());

    let csv = io::read_csv("t.csv", "wkt\n\nPOINT EMPTY\nNULL\n".as_bytes(), &[]).unwrap();
    // The csv crate skips the empty record; empty fields in a multi-column file are nulls.
    let csv2 = io::read_csv("t.csv", "x,y\n,\n1,2\n".as_bytes(), &[]).unwrap();
    assert!(csv.geometry.get(0).unwrap().is_empty());
    assert!(csv.geometry.get(1).is_none());
    assert!(csv2.geometry.get(0).is_none());
    assert!(csv2.geometry.get(1).is_some());
}

#[test]
fn wkb_round_trips_empties() {
    let col = column();
    for row in 1..=6 {
        let g = col.get(row).unwrap();
        let bytes = io::to_wkb(&g);
        let mut b = ColumnBuilder::new();
        io::push_wkb(&mut b, &bytes).unwrap();
        let back = b.finish();
        let h = back.get(0).unwrap();
        assert!(h.is_empty());
        assert_eq!(h.family(), g.family());
    }
}
