//! Columnar files and every geometry format: round trips of random columns through each
//! writer and reader, GeoArrow's native layouts (separated, interleaved, 32- and 64-bit
//! offsets), GeoParquet metadata, and errors that name the file, column, batch or row.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BinaryArray, FixedSizeListArray, Float64Array, LargeListArray, RecordBatch, StringArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Schema};
use meridian_kernels::column::{ColumnBuilder, Family, GeometryColumn};
use meridian_kernels::io::columnar::{self, write_table};
use meridian_kernels::io::geoarrow::{self, Encoding, GeometrySource};
use meridian_kernels::io::{self, Columnar, Format, GeoBatchReader, GeometryWriter, Position};
use proptest::prelude::*;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meridian-columnar-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A row: null, or a family and its parts (no parts: empty).
type Row = Option<(Family, Vec<Vec<Vec<(f64, f64)>>>)>;

fn ring(x: f64, y: f64, w: f64, h: f64) -> Vec<(f64, f64)> {
    vec![(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)]
}

fn coord() -> impl Strategy<Value = (f64, f64)> {
    // Integers and halves, and now and then a value with a long decimal expansion.
    prop_oneof![
        (-50i32..50, -50i32..50).prop_map(|(x, y)| (f64::from(x) / 2.0, f64::from(y) / 2.0)),
        (-1e6f64..1e6, -90f64..90.0),
    ]
}

fn part(family: Family) -> BoxedStrategy<Vec<Vec<(f64, f64)>>> {
    match family.dimension() {
        0 => coord().prop_map(|c| vec![vec![c]]).boxed(),
        1 => proptest::collection::vec(coord(), 2..5).prop_map(|l| vec![l]).boxed(),
        _ => (coord(), 1.0f64..5.0, proptest::collection::vec(0.1f64..0.4, 0..3))
            .prop_map(|((x, y), s, holes)| {
                let mut rings = vec![ring(x, y, s, s)];
                for (k, h) in holes.iter().enumerate() {
                    // Holes inside the shell, one beside another.
                    rings.push(ring(x + 0.05 + k as f64 * s * 0.3, y + 0.05, h * s * 0.5, h * s * 0.5));
                }
                rings
            })
            .boxed(),
    }
}

fn row(family: Family) -> BoxedStrategy<Row> {
    let parts = if family.is_multi() { 0..4usize } else { 0..2usize };
    prop_oneof![
        1 => Just(None),
        8 => proptest::collection::vec(part(family), parts).prop_map(move |p| Some((family, p))),
    ]
    .boxed()
}

fn build(rows: &[Row]) -> GeometryColumn {
    let mut b = ColumnBuilder::new();
    for r in rows {
        match r {
            None => b.push_null(),
            Some((f, parts)) if parts.is_empty() => b.push_empty(*f),
            Some((f, parts)) => b.push_parts(*f, parts).unwrap(),
        }
    }
    b.finish()
}

fn family() -> impl Strategy<Value = Family> {
    proptest::sample::select(Family::ALL.to_vec())
}

fn mixed() -> impl Strategy<Value = GeometryColumn> {
    proptest::collection::vec(family().prop_flat_map(row), 0..40).prop_map(|rows| build(&rows))
}

fn one_family() -> impl Strategy<Value = (Family, GeometryColumn)> {
    family()
        .prop_flat_map(|f| proptest::collection::vec(row(f), 0..40).prop_map(move |rows| (f, build(&rows))))
}

/// Equal columns, or the first row that differs (as WKT: columns are too long to print).
fn diff(a: &GeometryColumn, b: &GeometryColumn) -> Option<String> {
    if a == b {
        return None;
    }
    if a.len() != b.len() {
        return Some(format!("{} rows vs {}", a.len(), b.len()));
    }
    (0..a.len())
        .map(|r| (r, io::to_wkt(a.get(r).as_ref()), io::to_wkt(b.get(r).as_ref())))
        .find(|(_, x, y)| x != y)
        .map(|(r, x, y)| format!("row {r}: {x} vs {y}"))
        .or(Some("same rows, different arrays".into()))
}

fn write(path: &Path, format: Format, col: &GeometryColumn, encoding: Encoding) {
    let mut w = GeometryWriter::create(path, format, "geometry", encoding).unwrap();
    // Two chunks, so that writers continue where they left off.
    let half = col.len() / 2;
    w.write_rows(col, 0..half).unwrap();
    w.write_rows(col, half..col.len()).unwrap();
    assert_eq!(w.finish().unwrap(), col.len() as u64);
}

const FILES: [(&str, Format); 6] = [
    ("t.csv", Format::Csv),
    ("t.wkt", Format::Wkt),
    ("t.geojson", Format::GeoJson),
    ("t.parquet", Format::Parquet),
    ("t.arrow", Format::ArrowFile),
    ("t.arrows", Format::ArrowStream),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// `geoarrow::check` (which reads 2D points in place) accepts and rejects what decoding
    /// the array (`append`) does, naming the same row: points with one row cut short, given
    /// another type or byte order, a NaN y or a huge x, or replaced by a line.
    #[test]
    fn checking_wkb_agrees_with_decoding_it(
        points in proptest::collection::vec(proptest::option::of(coord()), 1..40),
        at in any::<prop::sample::Index>(),
        change in 0u8..7,
    ) {
        let mut values: Vec<Option<Vec<u8>>> = points
            .iter()
            .map(|p| p.map(|(x, y)| [&[1u8, 1, 0, 0, 0][..], &x.to_le_bytes(), &y.to_le_bytes()].concat()))
            .collect();
        let at = at.index(values.len());
        let line = [&[1u8, 2, 0, 0, 0, 2, 0, 0, 0][..], &[0u8; 32]].concat();
        let big_endian_point = [&[0u8, 0, 0, 0, 1][..], &1.5f64.to_be_bytes(), &2.5f64.to_be_bytes()].concat();
        values[at] = match change {
            0 => values[at].take().map(|v| v[..20].to_vec()),
            1 => values[at].take().map(|mut v| { v[1] = 9; v }),
            2 => Some(big_endian_point),
            3 => Some(line),
            4 => values[at].take().map(|mut v| { v[13..].copy_from_slice(&f64::NAN.to_le_bytes()); v }),
            5 => values[at].take().map(|mut v| { v[5..13].copy_from_slice(&1e300f64.to_le_bytes()); v }),
            _ => values[at].take(),
        };
        let array = BinaryArray::from_iter(values.iter().map(|v| v.as_deref()));
        let checked = geoarrow::check(&array, Encoding::Wkb);
        let decoded = geoarrow::append(&mut ColumnBuilder::new(), &array, Encoding::Wkb);
        prop_assert_eq!(checked.map_err(|(row, _)| row), decoded.map_err(|(row, _)| row));
    }

    #[test]
    fn every_format_round_trips_a_mixed_column(col in mixed()) {
        let d = dir("mixed");
        for (name, format) in FILES {
            let path = d.join(name);
            write(&path, format, &col, Encoding::Wkb);
            let back = io::read_geometry(&path).unwrap();
            prop_assert_eq!(diff(&back, &col), None, "{}", name);
        }
    }

    #[test]
    fn native_layouts_round_trip_every_family((family, col) in one_family()) {
        let encoding = Encoding::Native(family);
        // In memory: the array, then read back.
        let (field, array) = geoarrow::to_array(&col, 0..col.len(), "g", encoding).unwrap();
        prop_assert_eq!(field.extension_type_name(), Some(encoding.extension_name()));
        let mut b = ColumnBuilder::new();
        geoarrow::append(&mut b, array.as_ref(), encoding).unwrap();
        prop_assert_eq!(diff(&b.finish(), &col), None);
        // The other layouts of the same data: interleaved coordinates, 64-bit offsets.
        for variant in [interleaved(&array), large_lists(&array)] {
            let mut b = ColumnBuilder::new();
            geoarrow::append(&mut b, variant.as_ref(), encoding).unwrap();
            prop_assert_eq!(diff(&b.finish(), &col), None);
        }
        // Through files, which the readers recognise by the GeoParquet metadata (Parquet) or the
        // extension name (IPC).
        let d = dir("native");
        for (name, format) in [("n.parquet", Format::Parquet), ("n.arrow", Format::ArrowFile), ("n.arrows", Format::ArrowStream)] {
            let path = d.join(name);
            write(&path, format, &col, encoding);
            let reader = GeoBatchReader::open(&path, None).unwrap();
            let want = GeometrySource::Column { index: 0, name: "geometry".into(), encoding };
            prop_assert_eq!(reader.source(), &want);
            prop_assert_eq!(diff(&io::read_geometry(&path).unwrap(), &col), None, "{}", name);
        }
    }
}

/// The same array with each struct of coordinates replaced by a fixed-size list `[x, y]`.
fn interleaved(array: &ArrayRef) -> ArrayRef {
    match array.data_type() {
        DataType::Struct(_) => {
            let s = array.as_struct();
            let xs = s.column(0).as_primitive::<arrow_array::types::Float64Type>();
            let ys = s.column(1).as_primitive::<arrow_array::types::Float64Type>();
            let values: Vec<f64> =
                xs.values().iter().zip(ys.values().iter()).flat_map(|(x, y)| [*x, *y]).collect();
            let field = Arc::new(Field::new("xy", DataType::Float64, false));
            Arc::new(
                FixedSizeListArray::try_new(
                    field,
                    2,
                    Arc::new(Float64Array::from(values)),
                    s.nulls().cloned(),
                )
                .unwrap(),
            )
        }
        DataType::List(f) => {
            let l = array.as_list::<i32>();
            let child = interleaved(l.values());
            let field = Arc::new(Field::new(f.name(), child.data_type().clone(), false));
            Arc::new(
                arrow_array::ListArray::try_new(field, l.offsets().clone(), child, l.nulls().cloned())
                    .unwrap(),
            )
        }
        t => panic!("unexpected {t}"),
    }
}

/// The same array with 64-bit list offsets.
fn large_lists(array: &ArrayRef) -> ArrayRef {
    match array.data_type() {
        DataType::Struct(_) => array.clone(),
        DataType::List(f) => {
            let l = array.as_list::<i32>();
            let child = large_lists(l.values());
            let field = Arc::new(Field::new(f.name(), child.data_type().clone(), false));
            let offsets: Vec<i64> = l.value_offsets().iter().map(|&o| i64::from(o)).collect();
            Arc::new(
                LargeListArray::try_new(field, OffsetBuffer::new(offsets.into()), child, l.nulls().cloned())
                    .unwrap(),
            )
        }
        t => panic!("unexpected {t}"),
    }
}

#[test]
fn a_point_column_written_natively_is_x_y_in_csv_and_many_batches_in_parquet() {
    let d = dir("points");
    let n = 150_000;
    let mut b = ColumnBuilder::new();
    for i in 0..n {
        if i % 1000 == 7 {
            b.push_null();
        } else {
            b.push_point(i as f64 * 0.001 - 75.0, (i % 180) as f64 - 89.5).unwrap();
        }
    }
    let col = b.finish();
    let encoding = Encoding::for_column(&col);
    assert_eq!(encoding, Encoding::Native(Family::Point));
    for (name, format) in FILES {
        let path = d.join(name);
        write(&path, format, &col, encoding);
        assert_eq!(diff(&io::read_geometry(&path).unwrap(), &col), None, "{name}");
    }
    // As WKB, with an empty point among them: the bulk WKB path.
    let mut b = ColumnBuilder::new();
    for r in 0..col.len() {
        b.push_geom(col.get(r).as_ref()).unwrap();
    }
    b.push_empty(Family::Point);
    let with_empty = b.finish();
    let path = d.join("wkb.parquet");
    write(&path, Format::Parquet, &with_empty, Encoding::Wkb);
    assert_eq!(diff(&io::read_geometry(&path).unwrap(), &with_empty), None);
    let csv = std::fs::read_to_string(d.join("t.csv")).unwrap();
    assert!(csv.starts_with("x,y\n-75,-89.5\n"), "{}", &csv[..40]);
    // 150,000 rows come back in three batches of at most 65,536.
    let mut reader = GeoBatchReader::open(&d.join("t.parquet"), None).unwrap();
    assert_eq!(reader.rows_hint(), Some(n as u64));
    let mut b = ColumnBuilder::new();
    let mut batches = 0;
    while let Some(rows) = reader.read_into(&mut b).unwrap() {
        assert!(rows <= 65_536);
        batches += 1;
    }
    assert_eq!((batches, reader.rows_read()), (3, n as u64));
}

#[test]
fn geoparquet_metadata_describes_the_column() {
    let d = dir("meta");
    let path = d.join("m.parquet");
    let col =
        io::read_wkt("m.wkt", "POINT (1 2)\nNULL\nPOLYGON ((0 0, 4 0, 4 3, 0 0))\n".as_bytes()).unwrap();
    write(&path, Format::Parquet, &col, Encoding::Wkb);
    let file = std::fs::File::open(&path).unwrap();
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let geo = builder.schema().metadata().get("geo").unwrap().clone();
    let geo: serde_json::Value = serde_json::from_str(&geo).unwrap();
    assert_eq!(geo["primary_column"], "geometry");
    assert_eq!(geo["columns"]["geometry"]["encoding"], "WKB");
    assert_eq!(geo["columns"]["geometry"]["geometry_types"], serde_json::json!(["Point", "Polygon"]));
    assert_eq!(geo["columns"]["geometry"]["bbox"], serde_json::json!([0.0, 0.0, 4.0, 3.0]));
}

fn batch(columns: Vec<(&str, ArrayRef)>, metadata: Option<(&str, &str)>) -> RecordBatch {
    let fields: Vec<Field> =
        columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    let mut schema = Schema::new(fields);
    if let Some((k, v)) = metadata {
        schema.metadata.insert(k.to_string(), v.to_string());
    }
    RecordBatch::try_new(Arc::new(schema), columns.into_iter().map(|(_, a)| a).collect()).unwrap()
}

#[test]
fn plain_tables_are_read_by_column_names_and_types() {
    let d = dir("plain");
    // lon/lat float columns beside others: points, as in CSV.
    let lonlat = batch(
        vec![
            ("name", Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef),
            ("lon", Arc::new(Float64Array::from(vec![Some(1.5), None, Some(-3.0)]))),
            ("lat", Arc::new(Float64Array::from(vec![Some(2.0), None, Some(4.0)]))),
        ],
        None,
    );
    let path = d.join("lonlat.parquet");
    write_table(&path, Columnar::Parquet, &lonlat, None).unwrap();
    let col = io::read_geometry(&path).unwrap();
    assert_eq!(io::to_wkt(col.get(0).as_ref()), "POINT(1.5 2)");
    assert!(col.get(1).is_none());
    // A binary column named `geometry` without any metadata: WKB.
    let wkb = io::to_wkb(&col.get(2).unwrap());
    let named = batch(
        vec![("geometry", Arc::new(BinaryArray::from(vec![Some(wkb.as_slice()), None])) as ArrayRef)],
        None,
    );
    let path = d.join("named.arrow");
    write_table(&path, Columnar::ArrowFile, &named, None).unwrap();
    let col = io::read_geometry(&path).unwrap();
    assert_eq!(io::to_wkt(col.get(0).as_ref()), "POINT(-3 4)");
    assert!(col.get(1).is_none());
}

fn read_err(path: &Path) -> io::ReadError {
    io::read_geometry(path).unwrap_err()
}

#[test]
fn bad_files_are_errors_that_say_where_and_what() {
    let d = dir("errors");
    let name = |p: &Path| p.display().to_string();

    // Not a columnar file at all.
    let text = d.join("text.parquet");
    std::fs::write(&text, "x,y\n1,2\n").unwrap();
    let e = read_err(&text);
    assert_eq!((e.source_name.as_str(), e.at), (name(&text).as_str(), Position::Whole));
    assert!(e.message.contains("neither Parquet"), "{e}");

    // Truncated: the footer is gone.
    let mut b = ColumnBuilder::new();
    for i in 0..1000 {
        b.push_point(f64::from(i), 1.0).unwrap();
    }
    let col = b.finish();
    let good = d.join("good.parquet");
    write(&good, Format::Parquet, &col, Encoding::Native(Family::Point));
    let bytes = std::fs::read(&good).unwrap();
    let cut = d.join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_err(&cut);
    assert_eq!(e.source_name, name(&cut));
    assert!(!e.message.is_empty(), "{e}");
    // A truncated IPC stream is an error before any row is read: cut in a batch, and cut
    // exactly between batches, where only the missing end-of-stream marker tells (the stream
    // reader takes the end of the file for the end of the stream: issue 28).
    let stream = d.join("good.arrows");
    write(&stream, Format::ArrowStream, &col, Encoding::Native(Family::Point));
    let bytes = std::fs::read(&stream).unwrap();
    assert_eq!(io::read_geometry(&stream).unwrap().len(), 1000);
    let cut = d.join("cut.arrows");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let e = read_err(&cut);
    assert_eq!(e.at, Position::Whole);
    assert!(e.message.contains("cut short at byte") && e.message.contains("in a message's body"), "{e}");
    // Without the last 8 bytes (the marker: continuation word and a zero length) the file
    // ends where a batch does.
    std::fs::write(&cut, &bytes[..bytes.len() - 8]).unwrap();
    let e = read_err(&cut);
    assert!(e.message.contains(&format!("cut short at byte {}", bytes.len() - 8)), "{e}");
    assert!(e.message.contains("after its last whole message"), "{e}");

    // GeoParquet metadata that names a column the file lacks, or gives it the wrong type.
    let ints = || Arc::new(arrow_array::Int64Array::from(vec![1, 2])) as ArrayRef;
    let geo = r#"{"version":"1.1.0","primary_column":"geom","columns":{"geom":{"encoding":"polygon"}}}"#;
    let path = d.join("missing.parquet");
    write_table(&path, Columnar::Parquet, &batch(vec![("id", ints())], Some(("geo", geo))), None).unwrap();
    let e = read_err(&path);
    assert!(e.message.contains("`geom`") && e.message.contains("id Int64"), "{e}");
    let path = d.join("wrong.parquet");
    write_table(&path, Columnar::Parquet, &batch(vec![("geom", ints())], Some(("geo", geo))), None).unwrap();
    let e = read_err(&path);
    assert!(e.message.contains("column `geom` is GeoArrow polygon") && e.message.contains("Int64"), "{e}");

    // No geometry anywhere: the columns are listed.
    let path = d.join("none.arrow");
    write_table(&path, Columnar::ArrowFile, &batch(vec![("id", ints())], None), None).unwrap();
    let e = read_err(&path);
    assert!(e.message.contains("no geometry column") && e.message.contains("id Int64"), "{e}");

    // A bad WKB value: the error names the row (counted over the whole file) and the column.
    let wkb = io::to_wkb(&col.get(0).unwrap());
    let mut values: Vec<Option<&[u8]>> = vec![Some(&wkb); 5];
    values[3] = Some(b"\x01\x02");
    let path = d.join("bad-wkb.arrow");
    let t = batch(vec![("geometry", Arc::new(BinaryArray::from(values)) as ArrayRef)], None);
    write_table(&path, Columnar::ArrowFile, &t, None).unwrap();
    let e = read_err(&path);
    assert_eq!(e.at, Position::Row(3), "{e}");
    assert!(e.message.contains("column `geometry`") && e.message.contains("WKB"), "{e}");

    // A column asked for by name that is not a geometry.
    let path = d.join("named.parquet");
    write_table(&path, Columnar::Parquet, &batch(vec![("id", ints())], None), None).unwrap();
    let e = GeoBatchReader::open(&path, Some("id")).unwrap_err();
    assert!(e.message.contains("column `id` is Int64, not a geometry"), "{e}");
    let e = GeoBatchReader::open(&path, Some("nope")).unwrap_err();
    assert!(e.message.contains("no column named `nope`"), "{e}");

    // Unknown names and missing files.
    assert!(read_err(&d.join("x.shp")).message.contains("unknown file format"));
    assert_eq!(read_err(&d.join("absent.parquet")).at, Position::Whole);
}

#[test]
fn writers_refuse_what_they_cannot_hold() {
    let d = dir("refuse");
    let col = io::read_wkt("p.wkt", "POLYGON ((0 0, 1 0, 1 1, 0 0))\n".as_bytes()).unwrap();
    // Native points cannot hold a polygon: an error naming the file and the row.
    let path = d.join("p.parquet");
    let mut w =
        GeometryWriter::create(&path, Format::Parquet, "geometry", Encoding::Native(Family::Point)).unwrap();
    let e = w.write(&col).unwrap_err();
    assert!(e.to_string().contains("p.parquet") && e.message.contains("row 0 is a POLYGON"), "{e}");
    let e = GeometryWriter::create(&d.join("p.csv.gz"), Format::Csv, "g", Encoding::Wkb).unwrap_err();
    assert!(e.message.contains(".gz"), "{e}");
    let e =
        GeometryWriter::create(&d.join("no/such/dir/p.wkt"), Format::Wkt, "g", Encoding::Wkb).unwrap_err();
    assert!(e.target.ends_with("p.wkt"), "{e}");
    assert!(columnar::geo_metadata(&col, "g", Encoding::Wkb).contains("\"Polygon\""));
}

#[test]
fn bulk_points_keep_the_rows_before_a_bad_coordinate() {
    let xs = [1.0, 2.0, f64::NAN, 4.0, f64::INFINITY, 6.0];
    let ys = [1.0, 2.0, f64::NAN, 4.0, 5.0, 6.0];
    let mut b = ColumnBuilder::new();
    let (row, e) = b.extend_points(&xs, &ys, |i| i != 1).unwrap_err();
    assert_eq!(row, 4);
    assert!(e.to_string().contains("not finite"), "{e}");
    let col = b.finish();
    let wkt: Vec<String> = (0..col.len()).map(|r| io::to_wkt(col.get(r).as_ref())).collect();
    assert_eq!(wkt, ["POINT(1 1)", "NULL", "POINT EMPTY", "POINT(4 4)"]);
    // The same rows one by one give the same column.
    let mut one = ColumnBuilder::new();
    one.push_point(1.0, 1.0).unwrap();
    one.push_null();
    one.push_empty(Family::Point);
    one.push_point(4.0, 4.0).unwrap();
    assert_eq!(diff(&one.finish(), &col), None);
}

/// A small file of each columnar kind, as bytes.
fn small_files() -> Vec<(&'static str, Vec<u8>)> {
    let d = dir("small");
    let col = io::read_wkt(
        "s.wkt",
        "POINT (1 2)\nNULL\nPOLYGON ((0 0, 4 0, 4 3, 0 0))\nMULTILINESTRING ((0 0, 1 1), (2 2, 3 3))\n"
            .as_bytes(),
    )
    .unwrap();
    let points = io::read_wkt("p.wkt", "POINT (1 2)\nPOINT (3 4)\nNULL\n".as_bytes()).unwrap();
    let mut out = Vec::new();
    for (name, format, col, encoding) in [
        ("w.parquet", Format::Parquet, &col, Encoding::Wkb),
        ("p.parquet", Format::Parquet, &points, Encoding::Native(Family::Point)),
        ("w.arrow", Format::ArrowFile, &col, Encoding::Wkb),
        ("p.arrows", Format::ArrowStream, &points, Encoding::Native(Family::Point)),
    ] {
        let path = d.join(name);
        write(&path, format, col, encoding);
        out.push((name, std::fs::read(&path).unwrap()));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("MERIDIAN_DAMAGE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    /// Damaged files are errors (or, where the damage hits only coordinate bytes, other
    /// coordinates), never a panic.
    #[test]
    fn damaged_columnar_files_never_panic(
        which in 0usize..4,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let files = small_files();
        let (name, mut bytes) = files[which].clone();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        let path = dir("damaged").join(name);
        std::fs::write(&path, &bytes).unwrap();
        if let Err(e) = io::read_geometry(&path) {
            prop_assert!(e.source_name.ends_with(name), "{}", e);
        }
    }
}

#[test]
fn a_checkpoint_restores_the_builder_whatever_was_added_since() {
    let start = |b: &mut ColumnBuilder| {
        b.push_point(1.0, 2.0).unwrap();
        b.push_null();
        b.push_polygon(&[&[(0.0, 0.0), (4.0, 0.0), (4.0, 3.0), (0.0, 0.0)]]).unwrap();
    };
    let (mut b, mut want) = (ColumnBuilder::new(), ColumnBuilder::new());
    start(&mut b);
    start(&mut want);
    let at = b.checkpoint();
    // Rows of every kind after the checkpoint, enough to start a second validity word, and
    // failed rows.
    for i in 0..70 {
        b.push_point(i as f64, 0.5).unwrap();
    }
    b.push_line_string(&[(0.0, 0.0), (1.0, 1.0)]).unwrap();
    b.push_empty(Family::LineString);
    assert!(b.push_point(f64::NAN, 0.0).is_err());
    assert!(b.push_line_string(&[(0.0, 0.0), (f64::INFINITY, 1.0)]).is_err());
    b.restore(at);
    assert_eq!(b.len(), 3);
    // Both go on alike after it.
    for c in [&mut b, &mut want] {
        c.push_point(3.0, 4.0).unwrap();
        c.push_null();
    }
    assert_eq!(b.finish(), want.finish());
}

/// A columnar file cut or rewritten while it is read is an error, never a result over the
/// rows read before (issue 28: truncating a file under a streamed run gave partial counts
/// with exit 0): cut where a batch ends, the readers would take it for the end; the file's
/// stamp, checked when the batches end, says otherwise.
#[test]
fn a_file_cut_while_it_is_read_is_an_error() {
    let d = dir("shrink");
    let mut b = ColumnBuilder::new();
    for i in 0..4000 {
        b.push_point(f64::from(i), 1.0).unwrap();
    }
    let col = b.finish();
    for (name, format) in
        [("s.arrows", Format::ArrowStream), ("s.arrow", Format::ArrowFile), ("s.parquet", Format::Parquet)]
    {
        let path = d.join(name);
        // Four record batches (row groups) of 1000.
        let mut w =
            GeometryWriter::create(&path, format, "geometry", Encoding::Native(Family::Point)).unwrap();
        for start in (0..4000).step_by(1000) {
            w.write_rows(&col, start..start + 1000).unwrap();
        }
        w.finish().unwrap();
        let full = std::fs::read(&path).unwrap();
        let mut reader = GeoBatchReader::with_batch_rows(&path, None, 1000).unwrap();
        let mut got = ColumnBuilder::new();
        assert_eq!(reader.read_into(&mut got).unwrap(), Some(1000));
        // Cut to half: whatever the reader makes of it, not a clean end.
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(full.len() as u64 / 2).unwrap();
        let end = loop {
            match reader.read_into(&mut got) {
                Ok(Some(_)) => {}
                Ok(None) => panic!("{name}: read to a clean end over a file cut in half"),
                Err(e) => break e,
            }
        };
        assert!(end.source_name.ends_with(name), "{end}");
        // Rewritten to the same length while read: the modification time tells.
        std::fs::write(&path, &full).unwrap();
        let mut reader = GeoBatchReader::with_batch_rows(&path, None, 1000).unwrap();
        assert_eq!(reader.read_into(&mut ColumnBuilder::new()).unwrap(), Some(1000));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, &full).unwrap();
        let e = loop {
            match reader.read_into(&mut ColumnBuilder::new()) {
                Ok(Some(_)) => {}
                Ok(None) => panic!("{name}: a file rewritten while read read to a clean end"),
                Err(e) => break e,
            }
        };
        assert!(e.message.contains("modified while it was read"), "{name}: {e}");
    }
}

/// A record batch larger than the batch size asked for is handed on in slices.
#[test]
fn record_batches_are_sliced_to_the_batch_size() {
    let d = dir("slices");
    let mut b = ColumnBuilder::new();
    for i in 0..2500 {
        b.push_point(f64::from(i), 2.0).unwrap();
    }
    let col = b.finish();
    for (name, format) in [("one.arrows", Format::ArrowStream), ("one.arrow", Format::ArrowFile)] {
        let path = d.join(name);
        let mut w =
            GeometryWriter::create(&path, format, "geometry", Encoding::Native(Family::Point)).unwrap();
        w.write_rows(&col, 0..2500).unwrap();
        w.finish().unwrap();
        let mut reader = GeoBatchReader::with_batch_rows(&path, None, 1000).unwrap();
        let mut got = ColumnBuilder::new();
        let mut sizes = Vec::new();
        while let Some(n) = reader.read_into(&mut got).unwrap() {
            sizes.push(n);
        }
        assert_eq!(sizes, [1000, 1000, 500], "{name}");
        assert_eq!(got.finish(), col, "{name}");
    }
}

/// A 2 KB Parquet file (found by the `columnar` fuzz target) whose dictionary page states 1.7
/// billion values: parquet's reader sized the dictionary by it (13 GB) and the process was
/// killed. Now an error naming the column, before anything is allocated.
#[test]
fn a_dictionary_page_that_overstates_its_values_is_an_error() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dictionary-bomb.parquet");
    let e = io::read_geometry(&path).unwrap_err();
    assert!(e.message.contains("a dictionary page states"), "{e}");
    assert!(e.message.contains("row group 0, column `"), "{e}");
}
