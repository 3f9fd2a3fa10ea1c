//! GeoArrow arrays and columns: which field of a schema holds the geometry and how it is
//! encoded, arrays appended to a [`ColumnBuilder`], and columns written back as arrays.
//!
//! The encodings are GeoArrow's: WKB in a binary column, or native nested lists of
//! coordinates (`point`, `linestring`, `polygon`, `multipoint`, `multilinestring`,
//! `multipolygon`) with the coordinates separated (a struct of `x`, `y`[, `z`, `m`] arrays)
//! or interleaved (a fixed-size list `[x, y, ...]`). The encoding of a column is read from
//! GeoParquet's `geo` metadata, else from the field's `ARROW:extension:name`; failing both, a
//! binary column named like a geometry is WKB, and two float columns named like coordinates
//! (`x`/`y`, `lon`/`lat`, ...) are points, as in CSV. Z and M are dropped, as everywhere.

use std::sync::Arc;

use arrow_array::builder::BinaryBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef, Float64Array, ListArray, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Fields, Schema};

use crate::column::{ColumnBuilder, ColumnView, Family, GeometryColumn, Layout, MAX_COORD};

/// The key of a field's GeoArrow extension name.
pub const EXTENSION_NAME: &str = "ARROW:extension:name";

/// How a geometry column is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Well-known binary, one value per row.
    Wkb,
    /// GeoArrow's native nested coordinates of one family.
    Native(Family),
}

impl Encoding {
    /// The name in GeoParquet's `geo` metadata (`WKB`, `point`, `polygon`, ...).
    pub fn geoparquet_name(self) -> &'static str {
        match self {
            Encoding::Wkb => "WKB",
            Encoding::Native(f) => match f {
                Family::Point => "point",
                Family::LineString => "linestring",
                Family::Polygon => "polygon",
                Family::MultiPoint => "multipoint",
                Family::MultiLineString => "multilinestring",
                Family::MultiPolygon => "multipolygon",
            },
        }
    }

    /// The encoding a GeoParquet name stands for (any case).
    pub fn from_geoparquet_name(name: &str) -> Option<Encoding> {
        if name.eq_ignore_ascii_case("wkb") {
            return Some(Encoding::Wkb);
        }
        Family::ALL.into_iter().map(Encoding::Native).find(|e| e.geoparquet_name().eq_ignore_ascii_case(name))
    }

    /// The GeoArrow extension type name (`geoarrow.wkb`, `geoarrow.point`, ...).
    pub fn extension_name(self) -> &'static str {
        match self {
            Encoding::Wkb => "geoarrow.wkb",
            Encoding::Native(f) => match f {
                Family::Point => "geoarrow.point",
                Family::LineString => "geoarrow.linestring",
                Family::Polygon => "geoarrow.polygon",
                Family::MultiPoint => "geoarrow.multipoint",
                Family::MultiLineString => "geoarrow.multilinestring",
                Family::MultiPolygon => "geoarrow.multipolygon",
            },
        }
    }

    /// The encoding an extension name stands for (`ogc.wkb`, the older name, included).
    pub fn from_extension_name(name: &str) -> Option<Encoding> {
        if name == "ogc.wkb" {
            return Some(Encoding::Wkb);
        }
        [Encoding::Wkb]
            .into_iter()
            .chain(Family::ALL.map(Encoding::Native))
            .find(|e| e.extension_name() == name)
    }

    /// List levels above the coordinates.
    fn depth(family: Family) -> usize {
        match family {
            Family::Point => 0,
            Family::LineString | Family::MultiPoint => 1,
            Family::Polygon | Family::MultiLineString => 2,
            Family::MultiPolygon => 3,
        }
    }

    /// What a column is best written as: native points when every valid row is a non-empty
    /// point (the layout readers take without parsing, and CSV's `x,y`), WKB otherwise.
    pub fn for_column(col: &GeometryColumn) -> Encoding {
        let view = col.view();
        let points =
            (0..view.len()).all(|r| view.get(r).is_none_or(|g| g.family() == Family::Point && !g.is_empty()));
        if points {
            Encoding::Native(Family::Point)
        } else {
            Encoding::Wkb
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Encoding::Wkb => f.write_str("WKB"),
            Encoding::Native(_) => write!(f, "GeoArrow {}", self.geoparquet_name()),
        }
    }
}

/// Where the geometry of a table comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GeometrySource {
    /// One column, by index, and its encoding.
    Column {
        /// The field's index in the schema.
        index: usize,
        /// Its name.
        name: String,
        /// How its values are encoded.
        encoding: Encoding,
    },
    /// Points from two numeric columns (by index).
    Xy {
        /// The x (longitude) column.
        x: usize,
        /// The y (latitude) column.
        y: usize,
    },
}

impl GeometrySource {
    /// The schema columns it reads.
    pub fn columns(&self) -> Vec<usize> {
        match self {
            GeometrySource::Column { index, .. } => vec![*index],
            GeometrySource::Xy { x, y } => vec![*x, *y],
        }
    }
}

/// Binary columns taken as WKB by their name alone (compared case-insensitively).
const GEOMETRY_NAMES: [&str; 6] = ["geometry", "geom", "wkb", "wkb_geometry", "the_geom", "shape"];

/// Float column pairs taken as point coordinates (as for CSV).
const XY_NAMES: [(&str, &str); 4] = [("x", "y"), ("lon", "lat"), ("lng", "lat"), ("longitude", "latitude")];

fn listing(schema: &Schema) -> String {
    let cols: Vec<String> =
        schema.fields().iter().map(|f| format!("{} {}", f.name(), f.data_type())).collect();
    if cols.is_empty() {
        "no columns".into()
    } else {
        format!("columns: {}", cols.join(", "))
    }
}

/// Finds the geometry of a table with `schema`: the column `wanted` if given, else the
/// GeoParquet primary column, else the first GeoArrow-typed column, else a binary column named
/// like a geometry, else an x/y (lon/lat) pair of float columns. The error says what the
/// schema holds instead.
pub fn find_geometry(schema: &Schema, wanted: Option<&str>) -> Result<GeometrySource, String> {
    let by_name = |name: &str| {
        schema.index_of(name).map_err(|_| format!("no column named `{name}` ({})", listing(schema)))
    };
    let column = |index: usize, encoding: Encoding| -> Result<GeometrySource, String> {
        let field = schema.field(index);
        check_type(field.data_type(), encoding).map_err(|found| {
            format!("column `{}` is {encoding} by its metadata, but its type is {found}", field.name())
        })?;
        Ok(GeometrySource::Column { index, name: field.name().clone(), encoding })
    };
    if let Some(text) = schema.metadata.get("geo") {
        let geo: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("invalid GeoParquet `geo` metadata: {e}"))?;
        let primary = geo.get("primary_column").and_then(|v| v.as_str());
        let name = wanted
            .or(primary)
            .ok_or_else(|| "GeoParquet `geo` metadata names no primary_column".to_string())?;
        if let Some(meta) = geo.get("columns").and_then(|c| c.get(name)) {
            let index = by_name(name).map_err(|e| {
                format!("GeoParquet `geo` metadata describes column `{name}`, but there is {e}")
            })?;
            let encoding = meta.get("encoding").and_then(|e| e.as_str()).unwrap_or("");
            let encoding = Encoding::from_geoparquet_name(encoding).ok_or_else(|| {
                format!("column `{name}`: unknown GeoParquet encoding {encoding:?} (expected WKB or a GeoArrow type)")
            })?;
            return column(index, encoding);
        }
        if wanted.is_none() {
            return Err(format!(
                "GeoParquet `geo` metadata names primary column `{name}` but does not describe it"
            ));
        }
    }
    let field_encoding = |field: &Field| -> Option<Encoding> {
        match field.extension_type_name() {
            Some(ext) => Encoding::from_extension_name(ext),
            None => is_binary(field.data_type()).then_some(Encoding::Wkb),
        }
    };
    if let Some(name) = wanted {
        let index = by_name(name)?;
        let field = schema.field(index);
        if let Some(ext) = field.extension_type_name().filter(|e| Encoding::from_extension_name(e).is_none())
        {
            return Err(format!(
                "column `{name}` has extension type {ext:?}, which is not a GeoArrow geometry"
            ));
        }
        let encoding = field_encoding(field).ok_or_else(|| {
            format!(
                "column `{name}` is {}, not a geometry (WKB binary or a GeoArrow type)",
                field.data_type()
            )
        })?;
        return column(index, encoding);
    }
    let fields = schema.fields();
    if let Some(index) =
        fields.iter().position(|f| f.extension_type_name().and_then(Encoding::from_extension_name).is_some())
    {
        return column(index, field_encoding(&fields[index]).unwrap_or(Encoding::Wkb));
    }
    if let Some(index) = fields.iter().position(|f| {
        is_binary(f.data_type()) && GEOMETRY_NAMES.iter().any(|n| f.name().eq_ignore_ascii_case(n))
    }) {
        return column(index, Encoding::Wkb);
    }
    let float = |name: &str| {
        fields.iter().position(|f| {
            f.name().eq_ignore_ascii_case(name)
                && matches!(f.data_type(), DataType::Float64 | DataType::Float32)
        })
    };
    if let Some((x, y)) = XY_NAMES.iter().find_map(|(x, y)| Some((float(x)?, float(y)?))) {
        return Ok(GeometrySource::Xy { x, y });
    }
    Err(format!(
        "no geometry column: no GeoParquet `geo` metadata, no GeoArrow extension type, no binary column \
         named geometry and no float x/y or lon/lat pair ({})",
        listing(schema)
    ))
}

fn is_binary(t: &DataType) -> bool {
    matches!(t, DataType::Binary | DataType::LargeBinary | DataType::BinaryView)
}

/// Checks that values of type `t` can hold `encoding`; the error is the type as found.
fn check_type(t: &DataType, encoding: Encoding) -> Result<(), String> {
    let ok = match encoding {
        Encoding::Wkb => is_binary(t),
        Encoding::Native(family) => {
            let mut t = t;
            for _ in 0..Encoding::depth(family) {
                t = match t {
                    DataType::List(f) | DataType::LargeList(f) => f.data_type(),
                    _ => return Err(t.to_string()),
                };
            }
            coordinate_type(t)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(t.to_string())
    }
}

fn coordinate_type(t: &DataType) -> bool {
    match t {
        DataType::Struct(fields) => {
            (2..=4).contains(&fields.len()) && fields.iter().all(|f| f.data_type() == &DataType::Float64)
        }
        DataType::FixedSizeList(f, n) => (2..=4).contains(n) && f.data_type() == &DataType::Float64,
        _ => false,
    }
}

/// Coordinates of a native array: `x[i * stride]`, `y[i * stride]`.
struct Coords<'a> {
    x: &'a [f64],
    y: &'a [f64],
    stride: usize,
}

impl Coords<'_> {
    fn at(&self, i: usize) -> Option<(f64, f64)> {
        let k = i.checked_mul(self.stride)?;
        Some((*self.x.get(k)?, *self.y.get(k)?))
    }

    fn of(array: &dyn Array) -> Result<Coords<'_>, String> {
        fn f64s(a: &ArrayRef) -> Option<&[f64]> {
            a.as_primitive_opt::<Float64Type>().map(|p| p.values().as_ref())
        }
        let bad = || format!("coordinates of type {}", array.data_type());
        if let Some(s) = array.as_struct_opt() {
            let cols = s.columns();
            let (Some(x), Some(y)) = (cols.first().and_then(f64s), cols.get(1).and_then(f64s)) else {
                return Err(bad());
            };
            return Ok(Coords { x, y, stride: 1 });
        }
        if let Some(l) = array.as_fixed_size_list_opt() {
            let n = usize::try_from(l.value_length()).map_err(|_| bad())?;
            let values = f64s(l.values()).ok_or_else(bad)?;
            if n < 2 {
                return Err(bad());
            }
            return Ok(Coords { x: values, y: values.get(1..).unwrap_or_default(), stride: n });
        }
        Err(bad())
    }
}

/// The `x` and `y` buffers of a separated point array (a struct of two `Float64` arrays
/// without nulls of their own), one value per row.
fn separated(array: &dyn Array) -> Option<(ScalarBuffer<f64>, ScalarBuffer<f64>)> {
    let s = array.as_struct_opt()?;
    let values = |a: &ArrayRef| {
        let p = a.as_primitive_opt::<Float64Type>()?;
        (p.null_count() == 0 && p.len() == s.len()).then(|| p.values().clone())
    };
    let cols = s.columns();
    Some((values(cols.first()?)?, values(cols.get(1)?)?))
}

/// One level of list offsets.
enum Offsets<'a> {
    I32(&'a [i32]),
    I64(&'a [i64]),
}

impl Offsets<'_> {
    fn range(&self, i: usize) -> Option<std::ops::Range<usize>> {
        let (a, b) = match self {
            Offsets::I32(o) => (usize::try_from(*o.get(i)?).ok()?, usize::try_from(*o.get(i + 1)?).ok()?),
            Offsets::I64(o) => (usize::try_from(*o.get(i)?).ok()?, usize::try_from(*o.get(i + 1)?).ok()?),
        };
        (a <= b).then_some(a..b)
    }
}

/// The offsets of the list levels of `array` (outermost first) and its coordinates.
fn nested(array: &dyn Array, depth: usize) -> Result<(Vec<Offsets<'_>>, Coords<'_>), String> {
    let mut levels = Vec::with_capacity(depth);
    let mut a: &dyn Array = array;
    for _ in 0..depth {
        if let Some(l) = a.as_list_opt::<i32>() {
            levels.push(Offsets::I32(l.value_offsets()));
            a = l.values().as_ref();
        } else if let Some(l) = a.as_list_opt::<i64>() {
            levels.push(Offsets::I64(l.value_offsets()));
            a = l.values().as_ref();
        } else {
            return Err(format!("expected a list, found {}", a.data_type()));
        }
    }
    Ok((levels, Coords::of(a)?))
}

/// A row's problem: its index in the array, and what is wrong.
pub type RowError = (usize, String);

fn out_of_range(row: usize) -> RowError {
    (row, "offsets point outside the coordinates".into())
}

/// Appends every row of `array`, encoded as `encoding`, to `b`. On error the rows before the
/// failing one stay appended.
pub fn append(b: &mut ColumnBuilder, array: &dyn Array, encoding: Encoding) -> Result<(), RowError> {
    let nulls = array.logical_nulls();
    let valid = |i: usize| nulls.as_ref().is_none_or(|n| n.is_valid(i));
    match encoding {
        Encoding::Wkb => append_wkb(b, array, &valid),
        Encoding::Native(Family::Point) => {
            let n = array.len();
            // Separated coordinates become the column's own (no copy into an empty builder).
            if let Some((xs, ys)) = separated(array) {
                return b.extend_point_buffers(xs, ys, nulls.as_ref()).map_err(|(i, e)| (i, e.to_string()));
            }
            let (_, coords) = nested(array, 0).map_err(|e| (0, e))?;
            if coords.stride == 1 && coords.x.len() >= n && coords.y.len() >= n {
                b.reserve(n, n);
                return b
                    .extend_points(&coords.x[..n], &coords.y[..n], valid)
                    .map_err(|(i, e)| (i, e.to_string()));
            }
            for i in 0..n {
                if !valid(i) {
                    b.push_null();
                    continue;
                }
                append_native(b, Family::Point, &[], &coords, i)?;
            }
            Ok(())
        }
        Encoding::Native(family) => {
            let (levels, coords) = nested(array, Encoding::depth(family)).map_err(|e| (0, e))?;
            b.reserve(array.len(), 0);
            for i in 0..array.len() {
                if !valid(i) {
                    b.push_null();
                    continue;
                }
                append_native(b, family, &levels, &coords, i)?;
            }
            Ok(())
        }
    }
}

/// Checks that `array` decodes as `encoding` says, as [`append`] would, without building a
/// column when every valid row is a 2D WKB point (the common case, read in place) whose
/// coordinate a column holds.
pub fn check(array: &dyn Array, encoding: Encoding) -> Result<(), RowError> {
    if encoding == Encoding::Wkb && each_wkb_point(array, |_| {}) {
        return Ok(());
    }
    append(&mut ColumnBuilder::new(), array, encoding)
}

/// A WKB array's rows as points read in place (`None` for a null row, `(NaN, NaN)` for the
/// empty point), when every valid row is a 2D point whose coordinates a column holds; `None`
/// when one is not (decode the array instead).
pub fn wkb_points(array: &dyn Array) -> Option<Vec<Option<(f64, f64)>>> {
    let mut points = Vec::with_capacity(array.len());
    each_wkb_point(array, |p| points.push(p)).then_some(points)
}

/// Calls `f` with each row's point in order, while rows are points as [`wkb_points`] takes
/// them; whether every row was.
fn each_wkb_point(array: &dyn Array, mut f: impl FnMut(Option<(f64, f64)>)) -> bool {
    fn each<'a>(
        n: usize,
        value: impl Fn(usize) -> &'a [u8],
        valid: impl Fn(usize) -> bool,
        f: &mut impl FnMut(Option<(f64, f64)>),
    ) -> bool {
        // A coordinate a column cannot hold (too large, or one NaN) is decoding's error.
        let holds = |&(x, y): &(f64, f64)| {
            (x.abs() <= MAX_COORD && y.abs() <= MAX_COORD) || (x.is_nan() && y.is_nan())
        };
        (0..n).all(|i| {
            let point = if valid(i) { wkb_point(value(i)).filter(holds).map(Some) } else { Some(None) };
            point.inspect(|&p| f(p)).is_some()
        })
    }
    let nulls = array.logical_nulls();
    let valid = |i: usize| nulls.as_ref().is_none_or(|n| n.is_valid(i));
    if let Some(a) = array.as_binary_opt::<i32>() {
        each(a.len(), |i| a.value(i), valid, &mut f)
    } else if let Some(a) = array.as_binary_opt::<i64>() {
        each(a.len(), |i| a.value(i), valid, &mut f)
    } else if let Some(a) = array.as_binary_view_opt() {
        each(a.len(), |i| a.value(i), valid, &mut f)
    } else {
        false
    }
}

fn append_wkb(
    b: &mut ColumnBuilder,
    array: &dyn Array,
    valid: &dyn Fn(usize) -> bool,
) -> Result<(), RowError> {
    if let Some(a) = array.as_binary_opt::<i32>() {
        wkb_values(b, a.len(), |i| a.value(i), valid)
    } else if let Some(a) = array.as_binary_opt::<i64>() {
        wkb_values(b, a.len(), |i| a.value(i), valid)
    } else if let Some(a) = array.as_binary_view_opt() {
        wkb_values(b, a.len(), |i| a.value(i), valid)
    } else {
        Err((0, format!("WKB in a column of type {}", array.data_type())))
    }
}

/// Appends `n` WKB values: when every valid one is a 2D point, in bulk
/// ([`ColumnBuilder::extend_points`]); otherwise row by row.
fn wkb_values<'a>(
    b: &mut ColumnBuilder,
    n: usize,
    value: impl Fn(usize) -> &'a [u8],
    valid: &dyn Fn(usize) -> bool,
) -> Result<(), RowError> {
    let mut xs = Vec::with_capacity(n);
    let mut ys = Vec::with_capacity(n);
    let all_points = (0..n).all(|i| {
        let (x, y) = if valid(i) {
            match wkb_point(value(i)) {
                Some(xy) => xy,
                None => return false,
            }
        } else {
            (0.0, 0.0)
        };
        xs.push(x);
        ys.push(y);
        true
    });
    if all_points {
        let nulls = NullBuffer::from_iter((0..n).map(valid));
        return b
            .extend_point_buffers(xs.into(), ys.into(), Some(&nulls))
            .map_err(|(i, e)| (i, e.to_string()));
    }
    for i in 0..n {
        if !valid(i) {
            b.push_null();
            continue;
        }
        let bytes = value(i);
        match wkb_point(bytes) {
            Some((x, y)) if x.is_nan() && y.is_nan() => b.push_empty(Family::Point),
            Some((x, y)) => b.push_point(x, y).map_err(|e| (i, e.to_string()))?,
            None => super::push_wkb(b, bytes).map_err(|e| (i, e))?,
        }
    }
    Ok(())
}

/// The coordinates of a 2D WKB point (21 bytes, either byte order), read directly: points
/// are most of the WKB read, and the general parser costs ten times as much per row.
fn wkb_point(bytes: &[u8]) -> Option<(f64, f64)> {
    let bytes: &[u8; 21] = bytes.try_into().ok()?;
    let word = |at: usize| -> [u8; 8] { std::array::from_fn(|k| bytes[at + k]) };
    let kind: [u8; 4] = [bytes[1], bytes[2], bytes[3], bytes[4]];
    match bytes[0] {
        1 if u32::from_le_bytes(kind) == 1 => {
            Some((f64::from_le_bytes(word(5)), f64::from_le_bytes(word(13))))
        }
        0 if u32::from_be_bytes(kind) == 1 => {
            Some((f64::from_be_bytes(word(5)), f64::from_be_bytes(word(13))))
        }
        _ => None,
    }
}

fn append_native(
    b: &mut ColumnBuilder,
    family: Family,
    levels: &[Offsets<'_>],
    coords: &Coords<'_>,
    row: usize,
) -> Result<(), RowError> {
    let err = |e: crate::column::ColumnError| (row, e.to_string());
    if family == Family::Point {
        let (x, y) = coords.at(row).ok_or_else(|| out_of_range(row))?;
        if x.is_nan() && y.is_nan() {
            b.push_empty(Family::Point);
            return Ok(());
        }
        return b.push_point(x, y).map_err(err);
    }
    let range = |level: usize, i: usize| levels[level].range(i).ok_or_else(|| out_of_range(row));
    // Every part as its rings' coordinate ranges (a line: one ring; a point: one coordinate),
    // all checked against the coordinates before the row is built.
    let parts: Vec<Vec<std::ops::Range<usize>>> = match family {
        Family::Point => Vec::new(),
        Family::LineString => vec![vec![range(0, row)?]],
        Family::MultiPoint => range(0, row)?.map(|k| std::iter::once(k..k + 1).collect()).collect(),
        Family::Polygon => vec![range(0, row)?.map(|k| range(1, k)).collect::<Result<_, _>>()?],
        Family::MultiLineString => {
            range(0, row)?.map(|l| Ok(vec![range(1, l)?])).collect::<Result<_, RowError>>()?
        }
        Family::MultiPolygon => range(0, row)?
            .map(|p| range(1, p)?.map(|r| range(2, r)).collect::<Result<Vec<_>, _>>())
            .collect::<Result<_, _>>()?,
    };
    let ends_inside = |s: &std::ops::Range<usize>| s.is_empty() || coords.at(s.end - 1).is_some();
    if !parts.iter().flatten().all(ends_inside) {
        return Err(out_of_range(row));
    }
    let at = |k: usize| coords.at(k).unwrap_or((f64::NAN, f64::NAN));
    b.row(family, |b| {
        for rings in &parts {
            match family.dimension() {
                0 => {
                    let (x, y) = at(rings[0].start);
                    // An empty point inside a multipoint adds no part.
                    if !(x.is_nan() && y.is_nan()) {
                        b.part(|b| b.ring(&mut std::iter::once((x, y))))?;
                    }
                }
                1 => b.line_part(&mut rings[0].clone().map(at))?,
                _ => b.polygon_part(rings.len(), &mut rings.iter().map(|s| s.clone().map(at)))?,
            }
        }
        Ok(())
    })
    .map_err(err)
}

/// Appends points from two float arrays (a row with both null is a null row).
pub fn append_xy(b: &mut ColumnBuilder, x: &dyn Array, y: &dyn Array) -> Result<(), RowError> {
    let values = |a: &dyn Array| -> Result<ScalarBuffer<f64>, RowError> {
        if let Some(p) = a.as_primitive_opt::<Float64Type>() {
            Ok(p.values().clone())
        } else if let Some(p) = a.as_primitive_opt::<Float32Type>() {
            Ok(p.values().iter().map(|&v| f64::from(v)).collect())
        } else {
            Err((0, format!("coordinate column of type {}", a.data_type())))
        }
    };
    let (xs, ys) = (values(x)?, values(y)?);
    let (xn, yn) = (x.logical_nulls(), y.logical_nulls());
    let is_null = |n: &Option<NullBuffer>, i: usize| n.as_ref().is_some_and(|n| n.is_null(i));
    let n = xs.len().min(ys.len());
    let mismatch = (0..n).find(|&i| is_null(&xn, i) != is_null(&yn, i));
    let good = mismatch.unwrap_or(n);
    let nulls = xn.as_ref().map(|n| n.slice(0, good));
    b.extend_point_buffers(xs.slice(0, good), ys.slice(0, good), nulls.as_ref())
        .map_err(|(i, e)| (i, e.to_string()))?;
    match mismatch {
        Some(i) => Err((i, "one coordinate is null and the other is not".into())),
        None => Ok(()),
    }
}

/// The field and array for `rows` of `col`, encoded as `encoding`: native points
/// (separated `x`, `y`; an empty point is NaN, NaN) or WKB. The field is named `name` and
/// carries the GeoArrow extension name.
pub fn to_array(
    col: &GeometryColumn,
    rows: std::ops::Range<usize>,
    name: &str,
    encoding: Encoding,
) -> Result<(Field, ArrayRef), String> {
    let view = col.view();
    let rows = rows.start.min(view.len())..rows.end.min(view.len());
    let ext = [(EXTENSION_NAME.to_string(), encoding.extension_name().to_string())];
    let ext: std::collections::HashMap<String, String> = ext.into_iter().collect();
    let array: ArrayRef = match encoding {
        Encoding::Wkb => {
            let mut builder = BinaryBuilder::with_capacity(rows.len(), rows.len() * 21);
            let (mut wkb, mut bytes) = (Vec::new(), 0usize);
            for r in rows {
                match view.get(r) {
                    None => builder.append_null(),
                    Some(g) => {
                        wkb.clear();
                        super::write_wkb(&g, &mut wkb);
                        // A `Binary` array's offsets are i32 (arrow would panic past them).
                        bytes += wkb.len();
                        if bytes > i32::MAX as usize {
                            return Err(format!("row {r}: over 2 GiB of WKB in one array"));
                        }
                        builder.append_value(&wkb);
                    }
                }
            }
            Arc::new(builder.finish())
        }
        Encoding::Native(Family::Point) if col.layout() == Layout::Points => point_array(col, rows)?,
        Encoding::Native(family) => native_array(&view, rows, family)?,
    };
    let field = Field::new(name, array.data_type().clone(), true).with_metadata(ext);
    Ok((field, array))
}

/// The rows of a column in the point layout as a separated point array, over the column's
/// own coordinate buffers (an empty point is NaN, NaN there already).
fn point_array(col: &GeometryColumn, rows: std::ops::Range<usize>) -> Result<ArrayRef, String> {
    let (x, y) = col.coordinates();
    let view = col.view();
    let nulls = NullBuffer::from_iter(rows.clone().map(|r| !view.is_null(r)));
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Float64Array::new(x.slice(rows.start, rows.len()), None)),
        Arc::new(Float64Array::new(y.slice(rows.start, rows.len()), None)),
    ];
    Ok(Arc::new(StructArray::try_new(point_fields(), columns, nulls).map_err(|e| e.to_string())?))
}

fn push_coords(xs: &mut Vec<f64>, ys: &mut Vec<f64>, coords: impl IntoIterator<Item = (f64, f64)>) {
    for (x, y) in coords {
        xs.push(x);
        ys.push(y);
    }
}

fn point_fields() -> Fields {
    Fields::from(vec![Field::new("x", DataType::Float64, false), Field::new("y", DataType::Float64, false)])
}

/// Native GeoArrow lists of `family` (separated coordinates; an empty point is NaN, NaN; an
/// empty geometry is an empty list).
fn native_array(
    view: &ColumnView<'_>,
    rows: std::ops::Range<usize>,
    family: Family,
) -> Result<ArrayRef, String> {
    let depth = Encoding::depth(family);
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    // offsets[0] is the outermost level; each level's entries index the next level's items.
    let mut offsets: Vec<Vec<i32>> = vec![vec![0]; depth];
    let mut valid = Vec::with_capacity(rows.len());
    let end =
        |len: usize| i32::try_from(len).map_err(|_| format!("more than {} items in one array", i32::MAX));
    for r in rows {
        let g = view.get(r);
        if let Some(g) = &g {
            if g.family() != family {
                return Err(format!("row {r} is a {}, not a {family}", g.family()));
            }
        }
        valid.push(g.is_some());
        // Each level's entry is the count of the next level's items so far.
        let (xs, ys) = (&mut xs, &mut ys);
        match (family, &g) {
            (Family::Point, None) => push_coords(xs, ys, [(0.0, 0.0)]),
            (Family::Point, Some(g)) => {
                push_coords(xs, ys, [g.coords().next().unwrap_or((f64::NAN, f64::NAN))])
            }
            (_, None) => {}
            (Family::LineString | Family::MultiPoint, Some(g)) => push_coords(xs, ys, g.coords()),
            (Family::Polygon, Some(g)) => {
                for ring in g.rings() {
                    push_coords(xs, ys, ring.coords());
                    offsets[1].push(end(xs.len())?);
                }
            }
            (Family::MultiLineString, Some(g)) => {
                for part in g.parts() {
                    push_coords(xs, ys, part.first_ring().into_iter().flat_map(|r| r.coords()));
                    offsets[1].push(end(xs.len())?);
                }
            }
            (Family::MultiPolygon, Some(g)) => {
                for part in g.parts() {
                    for ring in part.rings() {
                        push_coords(xs, ys, ring.coords());
                        offsets[2].push(end(xs.len())?);
                    }
                    let rings = end(offsets[2].len() - 1)?;
                    offsets[1].push(rings);
                }
            }
        }
        match depth {
            0 => {}
            1 => offsets[0].push(end(xs.len())?),
            _ => {
                let items = end(offsets[1].len() - 1)?;
                offsets[0].push(items);
            }
        }
    }
    let nulls = NullBuffer::from(valid);
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    let columns: Vec<ArrayRef> = vec![Arc::new(Float64Array::from(xs)), Arc::new(Float64Array::from(ys))];
    let point_nulls = if depth == 0 { nulls.clone() } else { None };
    let mut array: ArrayRef =
        Arc::new(StructArray::try_new(point_fields(), columns, point_nulls).map_err(|e| e.to_string())?);
    // GeoArrow's names for each level's items, outermost first.
    let names: &[&str] = match family {
        Family::Point => &[],
        Family::LineString => &["vertices"],
        Family::MultiPoint => &["points"],
        Family::Polygon => &["rings", "vertices"],
        Family::MultiLineString => &["linestrings", "vertices"],
        Family::MultiPolygon => &["polygons", "rings", "vertices"],
    };
    for (level, offs) in offsets.into_iter().enumerate().rev() {
        let field = Arc::new(Field::new(names[level], array.data_type().clone(), false));
        let offs = OffsetBuffer::new(ScalarBuffer::from(offs));
        let level_nulls = if level == 0 { nulls.clone() } else { None };
        array = Arc::new(ListArray::try_new(field, offs, array, level_nulls).map_err(|e| e.to_string())?);
    }
    Ok(array)
}
