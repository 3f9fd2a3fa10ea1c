//! The functions that turn values into geometries and back, on the host: `ST_GeomFromWKB`,
//! `ST_GeomFromText`, `ST_X`, `ST_Y` and `ST_MakeLine`, with PostGIS's semantics — a null in
//! gives a null out; bad WKB or WKT is an error naming the row; `ST_X`/`ST_Y` of an empty
//! point is null and of anything but a point an error; `ST_MakeLine(a, b)` joins the points
//! and lines it is given, empties left out. Each is a decode or an encode, not a computation, so
//! no bytecode program runs them; geometries come out as WKB, which every other function and
//! the spatial join read (the join looks through `ST_GeomFromWKB` to the column itself).

use std::sync::Arc;

use arrow_array::builder::Float64Builder;
use arrow_array::{Array, ArrayRef, Float64Array, LargeStringArray, StringArray, StringViewArray};
use arrow_schema::DataType;
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use meridian_kernels::algo::hypot;
use meridian_kernels::column::{ColumnBuilder, Family, GeometryColumn, Layout};
use meridian_kernels::io::geoarrow::{self, Encoding};
use meridian_kernels::io::push_wkt;

use crate::geometry;

/// Which conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Conversion {
    /// `ST_GeomFromWKB(wkb)`: the WKB, checked (and the same array out).
    GeomFromWkb,
    /// `ST_GeomFromText(wkt)`: WKB.
    GeomFromText,
    /// `ST_X(point)`: f64.
    X,
    /// `ST_Y(point)`: f64.
    Y,
    /// `ST_MakeLine(a, b)`: the coordinates of `a` then `b` (points, multipoints, lines) as a
    /// line, WKB.
    MakeLine,
    /// `st_makeline_length(a, b)`: what `ST_Length(ST_MakeLine(a, b))` is rewritten to (by
    /// `ST_Length`'s simplification): the same value, the same errors, without writing the
    /// line as WKB and decoding it again (SpatialBench's Q7, 6M rows).
    MakeLineLength,
}

impl Conversion {
    /// Every conversion.
    pub const ALL: [Conversion; 6] = [
        Conversion::GeomFromWkb,
        Conversion::GeomFromText,
        Conversion::X,
        Conversion::Y,
        Conversion::MakeLine,
        Conversion::MakeLineLength,
    ];

    /// Its SQL name (lower case, as unquoted identifiers are).
    pub fn name(self) -> &'static str {
        match self {
            Conversion::GeomFromWkb => "st_geomfromwkb",
            Conversion::GeomFromText => "st_geomfromtext",
            Conversion::X => "st_x",
            Conversion::Y => "st_y",
            Conversion::MakeLine => "st_makeline",
            Conversion::MakeLineLength => "st_makeline_length",
        }
    }

    fn arity(self) -> usize {
        match self {
            Conversion::MakeLine | Conversion::MakeLineLength => 2,
            _ => 1,
        }
    }
}

/// One conversion as a DataFusion scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ConvertFunction {
    conversion: Conversion,
    signature: Signature,
}

impl ConvertFunction {
    /// Which conversion it is.
    pub fn conversion(&self) -> Conversion {
        self.conversion
    }

    /// `conversion` as a DataFusion scalar function.
    pub fn udf(conversion: Conversion) -> ScalarUDF {
        ScalarUDF::new_from_impl(ConvertFunction {
            conversion,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

/// The text of a string array's rows (`None` for nulls), or why it is not a string array.
fn strings<'a>(what: &str, array: &'a dyn Array) -> Result<Vec<Option<&'a str>>> {
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        Ok(a.iter().collect())
    } else if let Some(a) = any.downcast_ref::<LargeStringArray>() {
        Ok(a.iter().collect())
    } else if let Some(a) = any.downcast_ref::<StringViewArray>() {
        Ok(a.iter().collect())
    } else {
        exec_err!("{what} is {}, not text", array.data_type())
    }
}

/// WKT rows as WKB: a null row null, a text that does not parse an error naming the row.
fn wkt_to_wkb(what: &str, texts: &[Option<&str>]) -> Result<ArrayRef> {
    let mut b = ColumnBuilder::new();
    for (row, text) in texts.iter().enumerate() {
        match text {
            None => b.push_null(),
            // `push_wkt` reads the text `NULL` as a null row (a WKT file's convention); to
            // PostGIS it is not WKT.
            Some(t) if t.trim().eq_ignore_ascii_case("null") => {
                return exec_err!("{what}, row {row}: invalid WKT: `{t}` (a null is SQL's NULL, not text)");
            }
            Some(t) => push_wkt(&mut b, t.trim()).map_err(|why| {
                let shown: String = t.chars().take(60).collect();
                let more = if t.chars().count() > 60 { "…" } else { "" };
                DataFusionError::Execution(format!("{what}, row {row}: {why} (in `{shown}{more}`)"))
            })?,
        }
    }
    let col = b.finish();
    let (_, array) =
        geoarrow::to_array(&col, 0..col.len(), what, Encoding::Wkb).map_err(DataFusionError::Execution)?;
    Ok(array)
}

impl ScalarUDFImpl for ConvertFunction {
    fn name(&self) -> &str {
        self.conversion.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.conversion.name();
        if matches!(self.conversion, Conversion::MakeLine | Conversion::MakeLineLength) {
            return geometry::coerce_geometry_args(name, 2, arg_types);
        }
        let [t] = arg_types else {
            return plan_err!("{name} takes one argument, not {}", arg_types.len());
        };
        match self.conversion {
            Conversion::GeomFromWkb => match t {
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null => {}
                other => return plan_err!("{name}: the argument is {other}, not WKB (binary)"),
            },
            Conversion::GeomFromText => match t {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {}
                other => return plan_err!("{name}: the argument is {other}, not WKT (text)"),
            },
            Conversion::X | Conversion::Y | Conversion::MakeLine | Conversion::MakeLineLength => {
                if *t != DataType::Null {
                    geometry::encoding_of_type(&format!("{name} argument"), t)?;
                }
            }
        }
        Ok(vec![if *t == DataType::Null {
            match self.conversion {
                Conversion::GeomFromText => DataType::Utf8,
                _ => DataType::Binary,
            }
        } else {
            t.clone()
        }])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.conversion {
            // The same array out: its type.
            Conversion::GeomFromWkb => arg_types.first().cloned().unwrap_or(DataType::Binary),
            Conversion::GeomFromText | Conversion::MakeLine => DataType::Binary,
            Conversion::X | Conversion::Y | Conversion::MakeLineLength => DataType::Float64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.conversion.name();
        if args.args.len() != self.conversion.arity() || args.arg_fields.len() != args.args.len() {
            return exec_err!("{name}: {} arguments", args.args.len());
        }
        if self.conversion == Conversion::MakeLine {
            let cols = geometry::geometry_args(name, &args)?;
            return Ok(ColumnarValue::Array(make_lines(name, &cols[0], &cols[1])?));
        }
        if self.conversion == Conversion::MakeLineLength {
            // Errors name the function the query wrote.
            let cols = geometry::geometry_args(Conversion::MakeLine.name(), &args)?;
            return Ok(ColumnarValue::Array(line_lengths(&cols[0], &cols[1])?));
        }
        let (value, field) = (&args.args[0], &args.arg_fields[0]);
        let array = value.to_array_of_size(args.number_rows)?;
        let what = format!("{name} argument");
        let out: ArrayRef = match self.conversion {
            Conversion::GeomFromWkb => {
                // Decoded to check it: WKB that does not decode is an error here, as in PostGIS.
                if let Err((row, why)) = geoarrow::check(array.as_ref(), Encoding::Wkb) {
                    return exec_err!("{what}, row {row}: {why}");
                }
                array
            }
            Conversion::GeomFromText => wkt_to_wkb(&what, &strings(&what, array.as_ref())?)?,
            Conversion::X | Conversion::Y => {
                let col = geometry::to_column(&what, array.as_ref(), geometry::encoding(field)?)?;
                let x = self.conversion == Conversion::X;
                let mut values = Vec::with_capacity(col.len());
                let view = col.view();
                for row in 0..col.len() {
                    // A point row read straight from the coordinates; the rest as geometries.
                    if let Some((px, py)) = view.point(row) {
                        values.push(Some(if x { px } else { py }));
                        continue;
                    }
                    values.push(match col.get(row) {
                        None => None,
                        Some(g) if g.family() != Family::Point => {
                            return exec_err!(
                                "{name}: row {row} is a {}, not a point",
                                g.family().wkt_name()
                            );
                        }
                        Some(g) => g.coords().next().map(|(px, py)| if x { px } else { py }),
                    });
                }
                Arc::new(Float64Array::from(values))
            }
            Conversion::MakeLine | Conversion::MakeLineLength => return exec_err!("{name}: two arguments"),
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// Row by row, the line through `a`'s coordinates then `b`'s (points, multipoints and lines;
/// empties contribute none): null where either is null, the empty line where both are empty,
/// an error naming the row for another family or a single coordinate.
fn make_lines(name: &str, a: &GeometryColumn, b: &GeometryColumn) -> Result<ArrayRef> {
    let mut out = ColumnBuilder::new();
    let mut coords = Vec::new();
    for row in 0..a.len().min(b.len()) {
        if !line_coords(name, a, b, row, &mut coords)? {
            out.push_null();
        } else if coords.is_empty() {
            out.push_empty(Family::LineString);
        } else {
            out.push_line_string(&coords)
                .map_err(|e| DataFusionError::Execution(format!("{name}: row {row}: {e}")))?;
        }
    }
    let col = out.finish();
    let (_, array) =
        geoarrow::to_array(&col, 0..col.len(), name, Encoding::Wkb).map_err(DataFusionError::Execution)?;
    Ok(array)
}

/// The coordinates of row `row`'s line (into `coords`), or false where either side is null.
fn line_coords(
    name: &str,
    a: &GeometryColumn,
    b: &GeometryColumn,
    row: usize,
    coords: &mut Vec<(f64, f64)>,
) -> Result<bool> {
    let (Some(ga), Some(gb)) = (a.get(row), b.get(row)) else { return Ok(false) };
    coords.clear();
    for g in [&ga, &gb] {
        match g.family() {
            Family::Point | Family::MultiPoint | Family::LineString => coords.extend(g.coords()),
            other => return exec_err!("{name}: row {row} has a {}, not a point or a line", other.wkt_name()),
        }
    }
    Ok(true)
}

/// `ST_Length(ST_MakeLine(a, b))` row by row, as those two compute it: `algo::length`'s sum
/// over the line's segments, in order; 0 for the empty line; the line's errors.
fn line_lengths(a: &GeometryColumn, b: &GeometryColumn) -> Result<ArrayRef> {
    if let Some(lengths) = point_line_lengths(a, b) {
        return Ok(Arc::new(lengths));
    }
    let name = Conversion::MakeLine.name();
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let mut coords = Vec::new();
    for row in 0..a.len().min(b.len()) {
        if !line_coords(name, a, b, row, &mut coords)? {
            out.push(None);
            continue;
        }
        if coords.len() == 1 {
            // What building the line says of it.
            let e = ColumnBuilder::new().push_line_string(&coords).err();
            return exec_err!(
                "{name}: row {row}: {}",
                e.map_or("one coordinate".to_owned(), |e| e.to_string())
            );
        }
        let segments = coords.windows(2).map(|w| hypot(w[1].0 - w[0].0, w[1].1 - w[0].1));
        out.push(Some(segments.sum::<f64>()));
    }
    Ok(Arc::new(Float64Array::from(out)))
}

/// [`line_lengths`] of two point columns, read from their coordinates (a line of two points
/// is one segment): `None` where a row would need the general path — a line of one point,
/// an error there.
fn point_line_lengths(a: &GeometryColumn, b: &GeometryColumn) -> Option<Float64Array> {
    if a.layout() != Layout::Points || b.layout() != Layout::Points {
        return None;
    }
    let (a, b) = (a.view(), b.view());
    let mut out = Float64Builder::with_capacity(a.len().min(b.len()));
    for row in 0..a.len().min(b.len()) {
        if a.is_null(row) || b.is_null(row) {
            out.append_null();
            continue;
        }
        match (a.point(row), b.point(row)) {
            (Some(p), Some(q)) => out.append_value(hypot(q.0 - p.0, q.1 - p.1)),
            // Both empty: the empty line, whose length ST_Length gives as the empty sum, -0.
            (None, None) => out.append_value(-0.0),
            _ => return None,
        }
    }
    Some(out.finish())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    #[test]
    fn wkt_becomes_wkb_and_bad_text_names_its_row() {
        let wkb = wkt_to_wkb("t", &[Some("POINT (1 2)"), None, Some(" POLYGON EMPTY ")]).unwrap();
        let col = geometry::to_column("t", wkb.as_ref(), Encoding::Wkb).unwrap();
        assert_eq!(col.len(), 3);
        assert_eq!(col.get(0).unwrap().coords().collect::<Vec<_>>(), [(1.0, 2.0)]);
        assert!(col.get(1).is_none());
        assert!(col.get(2).unwrap().is_empty());
        let why = wkt_to_wkb("st_geomfromtext argument", &[Some("POINT (1 2)"), Some("POINT (1")])
            .unwrap_err()
            .to_string();
        assert!(why.contains("st_geomfromtext argument, row 1: invalid WKT"), "{why}");
    }

    #[test]
    fn lines_are_made_of_points_and_lines_and_nulls_stay_null() {
        let col = |texts: &[Option<&str>]| {
            let wkb = wkt_to_wkb("t", texts).unwrap();
            geometry::to_column("t", wkb.as_ref(), Encoding::Wkb).unwrap()
        };
        let a = col(&[Some("POINT (0 0)"), Some("LINESTRING (0 0, 1 1)"), None, Some("POINT EMPTY")]);
        let b = col(&[
            Some("POINT (3 4)"),
            Some("MULTIPOINT ((2 2), (3 3))"),
            Some("POINT (1 1)"),
            Some("POINT EMPTY"),
        ]);
        let lines = make_lines("st_makeline", &a, &b).unwrap();
        let lines = geometry::to_column("t", lines.as_ref(), Encoding::Wkb).unwrap();
        assert_eq!(lines.get(0).unwrap().coords().collect::<Vec<_>>(), [(0.0, 0.0), (3.0, 4.0)]);
        assert_eq!(lines.get(1).unwrap().coords().count(), 4);
        assert!(lines.get(2).is_none());
        assert!(lines.get(3).unwrap().is_empty() && lines.get(3).unwrap().family() == Family::LineString);
        let poly = col(&[Some("POLYGON ((0 0, 1 0, 1 1, 0 0))")]);
        let why = make_lines("st_makeline", &a, &poly).unwrap_err().to_string();
        assert!(why.contains("st_makeline: row 0 has a POLYGON, not a point or a line"), "{why}");
    }
}
