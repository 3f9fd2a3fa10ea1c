//! Arrow geometry arrays as meridian columns: WKB (`Binary`, `LargeBinary`, `BinaryView`)
//! and GeoArrow's native encodings, told apart by the field's GeoArrow extension name when it
//! has one and by the array's type when it does not.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, Field};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::ScalarFunctionArgs;
use meridian_kernels::column::{ColumnBuilder, Family, GeometryColumn};
use meridian_kernels::io::geoarrow::{self, Encoding, EXTENSION_NAME};

/// How a field's geometry is encoded, or why it is not a geometry.
pub fn encoding(field: &Field) -> Result<Encoding> {
    if let Some(name) = field.metadata().get(EXTENSION_NAME) {
        if let Some(e) = Encoding::from_extension_name(name) {
            return Ok(e);
        }
    }
    encoding_of_type(field.name(), field.data_type())
}

/// The encoding an array of `data_type` holds without an extension name: WKB in binary
/// arrays; a GeoArrow point in a struct of `x`, `y` or a fixed list of two.
pub fn encoding_of_type(what: &str, data_type: &DataType) -> Result<Encoding> {
    match data_type {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Ok(Encoding::Wkb),
        DataType::Struct(_) | DataType::FixedSizeList(_, 2) => Ok(Encoding::Native(Family::Point)),
        DataType::List(_) | DataType::LargeList(_) => plan_err!(
            "{what}: a nested list of coordinates needs its GeoArrow extension name to say its family"
        ),
        other => plan_err!("{what} is {other}, not a geometry (WKB binary or a GeoArrow array)"),
    }
}

/// `array`, encoded as `encoding`, as a meridian column; a row that does not decode is an
/// error naming it.
pub fn to_column(what: &str, array: &dyn Array, encoding: Encoding) -> Result<Arc<GeometryColumn>> {
    let mut b = ColumnBuilder::new();
    match geoarrow::append(&mut b, array, encoding) {
        Ok(()) => Ok(Arc::new(b.finish())),
        Err((row, why)) => exec_err!("{what}, row {row}: {why}"),
    }
}

/// The argument types of a function of `arity` geometries: each a geometry type (a `NULL`
/// literal as WKB), or a plan error naming the argument.
pub fn coerce_geometry_args(name: &str, arity: usize, arg_types: &[DataType]) -> Result<Vec<DataType>> {
    if arg_types.len() != arity {
        let what = match arity {
            1 => "one geometry".to_owned(),
            2 => "two geometries".to_owned(),
            n => format!("{n} geometries"),
        };
        return plan_err!("{name} takes {what}, not {} arguments", arg_types.len());
    }
    arg_types
        .iter()
        .enumerate()
        .map(|(i, t)| match t {
            DataType::Null => Ok(DataType::Binary),
            t => encoding_of_type(&format!("{name} argument {}", i + 1), t).map(|_| t.clone()),
        })
        .collect()
}

/// A scalar function's geometry arguments as columns of its rows (a scalar repeated).
pub fn geometry_args(name: &str, args: &ScalarFunctionArgs) -> Result<Vec<Arc<GeometryColumn>>> {
    if args.arg_fields.len() != args.args.len() {
        return exec_err!("{name}: {} arguments and {} fields", args.args.len(), args.arg_fields.len());
    }
    let mut cols = Vec::with_capacity(args.args.len());
    for (i, (value, field)) in args.args.iter().zip(&args.arg_fields).enumerate() {
        let what = format!("{name} argument {}", i + 1);
        let array = value.to_array_of_size(args.number_rows)?;
        cols.push(to_column(&what, array.as_ref(), encoding(field)?)?);
    }
    Ok(cols)
}

/// Points from parallel `x` and `y` as WKB: a row where either is null is null, one where
/// either is NaN the empty point.
pub fn points_wkb(x: &[Option<f64>], y: &[Option<f64>]) -> Result<ArrayRef> {
    let mut b = ColumnBuilder::new();
    for (x, y) in x.iter().zip(y) {
        match (x, y) {
            // An empty geometry's centroid: the empty point (WKB writes it as NaN, NaN).
            (Some(x), Some(y)) if x.is_nan() || y.is_nan() => b.push_empty(Family::Point),
            (Some(x), Some(y)) => b
                .push_point(*x, *y)
                .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?,
            _ => b.push_null(),
        }
    }
    let col = b.finish();
    let (_, array) = geoarrow::to_array(&col, 0..col.len(), "centroid", Encoding::Wkb)
        .map_err(datafusion::error::DataFusionError::Execution)?;
    Ok(array)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    #[test]
    fn encodings_by_extension_name_then_type() {
        let wkb = Field::new("g", DataType::Binary, true);
        assert_eq!(encoding(&wkb).unwrap(), Encoding::Wkb);
        let view = Field::new("g", DataType::BinaryView, true);
        assert_eq!(encoding(&view).unwrap(), Encoding::Wkb);
        let named = Field::new("g", DataType::Binary, true)
            .with_metadata([(EXTENSION_NAME.to_owned(), "geoarrow.wkb".to_owned())].into_iter().collect());
        assert_eq!(encoding(&named).unwrap(), Encoding::Wkb);
        let text = Field::new("name", DataType::Utf8, true);
        let why = encoding(&text).unwrap_err().to_string();
        assert!(why.contains("name is Utf8, not a geometry"), "{why}");
    }
}
