//! Readers and writers: round trips, and errors that name the source and the place.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use meridian_kernels::column::{ColumnBuilder, ColumnError, GeometryColumn};
use meridian_kernels::io::{self, Position};

const SAMPLES: &str = "POINT (1 2)
LINESTRING (0 0, 1 1, 2 0)
POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0), (2 2, 2 4, 4 4, 2 2))
MULTIPOINT ((1 1), (2 2))
MULTILINESTRING ((0 0, 1 1), (2 2, 3 3, 4 2))
MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5)))
NULL
POINT EMPTY
MULTIPOLYGON EMPTY
";

fn samples() -> GeometryColumn {
    io::read_wkt("samples.wkt", SAMPLES.as_bytes()).unwrap()
}

#[test]
fn wkt_round_trip() {
    let col = samples();
    let text: String = (0..col.len()).map(|r| io::to_wkt(col.get(r).as_ref()) + "\n").collect();
    let back = io::read_wkt("again.wkt", text.as_bytes()).unwrap();
    assert_eq!(col, back);
}

#[test]
fn wkb_and_geo_types_round_trip() {
    let col = samples();
    let mut from_wkb = ColumnBuilder::new();
    let mut geos = Vec::new();
    for r in 0..col.len() {
        match col.get(r) {
            None => {
                from_wkb.push_null();
                geos.push(None);
            }
            Some(g) => {
                io::push_wkb(&mut from_wkb, &io::to_wkb(&g)).unwrap();
                geos.push(io::to_geo(&g).ok());
            }
        }
    }
    assert_eq!(from_wkb.finish(), col);
    // POINT EMPTY has no geo-types form; everything else comes back identical.
    let point_empty = 7;
    assert!(geos[point_empty].is_none() && col.get(point_empty).is_some());
    let keep: Vec<usize> = (0..col.len()).filter(|&r| r != point_empty).collect();
    let back = io::from_geo(keep.iter().map(|&r| geos[r].as_ref())).unwrap();
    for (i, &r) in keep.iter().enumerate() {
        assert_eq!(io::to_wkt(back.get(i).as_ref()), io::to_wkt(col.get(r).as_ref()), "row {r}");
    }
}

/// The WKB written here, byte for byte what the `wkb` crate writes from the same row (its
/// `wkt` form): every family, holes, the empties of each family (POINT EMPTY as NaNs), and
/// the countries.
#[test]
fn wkb_is_what_the_wkb_crate_writes() {
    let extra = "LINESTRING EMPTY\nPOLYGON EMPTY\nMULTIPOINT (1 2, 3 4)\nMULTILINESTRING EMPTY\n\
                 MULTIPOINT EMPTY\nPOLYGON ((0 0, 4 0, 4 4, 0 0), (1 1, 2 1, 2 2, 1 1), (3 1, 3.5 1, 3.5 1.5, 3 1))\n";
    let more = io::read_wkt("extra.wkt", extra.as_bytes()).unwrap();
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/countries.geojson")).unwrap();
    let countries = io::read_geojson("countries.geojson", &text).unwrap().geometry;
    let opts = wkb::writer::WriteOptions { endianness: wkb::Endianness::LittleEndian };
    let mut checked = 0;
    for col in [samples(), more, countries] {
        for r in 0..col.len() {
            let Some(g) = col.get(r) else { continue };
            let mut want = Vec::new();
            wkb::writer::write_geometry(&mut want, &io::to_wkt_value(&g), &opts).unwrap();
            assert_eq!(io::to_wkb(&g), want, "row {r}: {}", io::to_wkt(Some(&g)));
            checked += 1;
        }
    }
    assert!(checked > 180, "{checked}");
}

#[test]
fn geojson_reads_properties_and_families() {
    let doc = r#"{"type":"FeatureCollection","features":[
      {"type":"Feature","properties":{"name":"sq"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}},
      {"type":"Feature","properties":{"name":"mp"},"geometry":{"type":"MultiPoint","coordinates":[[0,0],[1,1,5]]}}]}"#;
    let t = io::read_geojson("t.geojson", doc).unwrap();
    assert_eq!(t.property_str(1, "name"), Some("mp"));
    assert_eq!(io::to_wkt(t.geometry.get(1).as_ref()), "MULTIPOINT((0 0),(1 1))");
}

#[test]
fn errors_name_source_and_place() {
    let e = io::read_wkt("bad.wkt", "POINT (1 2)\n\nPOINT (1\n".as_bytes()).unwrap_err();
    assert_eq!(e.at, Position::Line(3));
    assert!(e.to_string().starts_with("bad.wkt:3: invalid WKT"), "{e}");

    let e = io::read_wkt("ring.wkt", "POLYGON ((0 0, 1 0, 1 1, 0 1))".as_bytes()).unwrap_err();
    assert_eq!(e.to_string(), "ring.wkt:1: polygon ring 0 is not closed (first and last coordinates differ)");

    let e = io::read_wkt("gc.wkt", "GEOMETRYCOLLECTION (POINT (1 1))".as_bytes()).unwrap_err();
    assert!(e.message.contains("GEOMETRYCOLLECTION is not supported"), "{e}");

    // Nesting deep enough to overflow the parser's stack is an error naming line and byte
    // (it aborted the process: issue 28).
    let deep = format!("POINT (1 2)\nPOLYGON {}\n", "(".repeat(100_000));
    let e = io::read_wkt("deep.wkt", deep.as_bytes()).unwrap_err();
    assert_eq!(e.to_string(), "deep.wkt:2: invalid WKT: parentheses nested deeper than 32 levels at byte 40");
    let e = io::read_csv("deep.csv", format!("wkt\n\"{}\"\n", &deep[12..]).as_bytes(), &[]).unwrap_err();
    assert_eq!(e.at, Position::Line(2), "{e}");
    assert!(e.message.contains("nested deeper than 32 levels"), "{e}");

    let e = io::read_wkt("line.wkt", "LINESTRING (1 1)".as_bytes()).unwrap_err();
    assert!(e.message.contains("needs 0 or at least 2"), "{e}");

    let e = io::read_csv("pts.csv", "lon,lat\n1,2\n3,abc\n".as_bytes(), &[]).unwrap_err();
    assert_eq!(e.to_string(), "pts.csv:3: y field \"abc\" is not a number");

    let e = io::read_csv("pts.csv", "lon,lat\n1,\n".as_bytes(), &[]).unwrap_err();
    assert_eq!(e.at, Position::Line(2));

    // A record with a field missing: the line of that record, not the next (issue 28).
    let e = io::read_csv("short.csv", "x,y\n1,2\n3\n4,5\n".as_bytes(), &[]).unwrap_err();
    assert_eq!(e.to_string(), "short.csv:3: 1 fields where the header has 2");
    let e = io::read_csv("short.csv", "x,y\n1,2\n3,4,5\n".as_bytes(), &[]).unwrap_err();
    assert_eq!(e.at, Position::Line(3));
    // A quoted field over two lines: the record's first line.
    let e = io::read_csv("q.csv", "x,y\n1,2\n\"3\n\"\n".as_bytes(), &[]).unwrap_err();
    assert_eq!(e.at, Position::Line(3), "{e}");

    let e = io::read_csv("pts.csv", "a,b\n1,2\n".as_bytes(), &[]).unwrap_err();
    assert!(e.to_string().contains("no `wkt` column and no x,y / lon,lat column pair"), "{e}");

    let e = io::read_csv("pts.csv", "x,y\n1,2\n".as_bytes(), &["name"]).unwrap_err();
    assert_eq!(e.to_string(), "pts.csv:1: no column named `name`");

    let e = io::read_csv("pts.csv", "x,y\n1,inf\n".as_bytes(), &[]).unwrap_err();
    assert!(e.message.contains("not finite"), "{e}");

    let doc = r#"{"type":"FeatureCollection","features":[
      {"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[0,0]}},
      {"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[7]}}]}"#;
    let e = io::read_geojson("f.geojson", doc).unwrap_err();
    assert_eq!(e.at, Position::Feature(1));
    assert!(e.to_string().starts_with("f.geojson: feature 1: A position must contain two or more"), "{e}");

    let e = io::read_geojson("j.geojson", "{not json").unwrap_err();
    assert!(e.to_string().starts_with("j.geojson: "), "{e}");

    let mut b = ColumnBuilder::new();
    assert!(io::push_wkb(&mut b, &[1, 2, 3]).unwrap_err().starts_with("invalid WKB"));
}

#[test]
fn failed_row_leaves_column_unchanged() {
    let mut b = ColumnBuilder::new();
    b.push_point(1.0, 1.0).unwrap();
    // The second ring fails after the shell was written: nothing of the row may remain.
    let shell: &[(f64, f64)] = &[(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 0.0)];
    let open_hole: &[(f64, f64)] = &[(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 2.0)];
    assert_eq!(b.push_polygon(&[shell, open_hole]), Err(ColumnError::RingNotClosed { ring: 1 }));
    assert!(matches!(b.push_point(f64::NAN, 0.0), Err(ColumnError::NonFinite { .. })));
    b.push_polygon(&[shell]).unwrap();
    let col = b.finish();
    let mut expect = ColumnBuilder::new();
    expect.push_point(1.0, 1.0).unwrap();
    expect.push_polygon(&[shell]).unwrap();
    assert_eq!(col, expect.finish());
}

#[test]
fn gz_files_are_decompressed() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/cities.csv.gz");
    let t = io::read_csv("cities.csv.gz", io::open(&path).unwrap(), &["country_code"]).unwrap();
    assert_eq!(t.geometry.len(), 234_908);
    assert_eq!(t.column("country_code").unwrap()[0], "AD");
}
