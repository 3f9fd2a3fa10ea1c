//! A job's outputs as Arrow tables, for the columnar writers: dense outputs one column with
//! Arrow nulls, hits `row: u64, id: u32`, geometry WKB (with GeoParquet metadata), counts and
//! sums a one-row `value` column.

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};

use super::geoarrow::{self, Encoding};
use crate::interp::OutputColumn;

/// The table of output `name`, and the GeoParquet `geo` metadata when it holds geometry.
pub fn output_table(name: &str, column: &OutputColumn) -> Result<(RecordBatch, Option<String>), String> {
    let err = |e: ArrowError| e.to_string();
    let one = |field: Field, array: ArrayRef| {
        RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![array]).map_err(err)
    };
    match column {
        OutputColumn::F64(c) => {
            let array: ArrayRef = Arc::new(c.iter().collect::<Float64Array>());
            Ok((one(Field::new(name, array.data_type().clone(), true), array)?, None))
        }
        OutputColumn::Bool(c) => {
            let array: ArrayRef = Arc::new(c.iter().collect::<BooleanArray>());
            Ok((one(Field::new(name, array.data_type().clone(), true), array)?, None))
        }
        OutputColumn::Geometry(g) => {
            let (field, array) = geoarrow::to_array(g, 0..g.len(), name, Encoding::Wkb)?;
            let geo = super::columnar::geo_metadata(g, name, Encoding::Wkb);
            Ok((one(field, array)?, Some(geo)))
        }
        OutputColumn::Hits(h) => Ok((hits_batch(h)?, None)),
        OutputColumn::Count(n) => {
            let array: ArrayRef = Arc::new(UInt64Array::from(vec![*n]));
            Ok((one(Field::new("value", array.data_type().clone(), false), array)?, None))
        }
        OutputColumn::Sum(v) => {
            let array: ArrayRef = Arc::new(Float64Array::from(vec![*v]));
            Ok((one(Field::new("value", array.data_type().clone(), false), array)?, None))
        }
    }
}

/// The schema of a hits table: `row: u64, id: u32`.
pub fn hits_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("row", DataType::UInt64, false),
        Field::new("id", DataType::UInt32, false),
    ]))
}

/// Hits as a record batch of [`hits_schema`] (for writers that take them a piece at a time).
pub fn hits_batch(h: &[(u32, u32)]) -> Result<RecordBatch, String> {
    let rows: ArrayRef = Arc::new(h.iter().map(|&(r, _)| u64::from(r)).collect::<UInt64Array>());
    let ids: ArrayRef = Arc::new(h.iter().map(|&(_, id)| id).collect::<UInt32Array>());
    RecordBatch::try_new(hits_schema(), vec![rows, ids]).map_err(|e| e.to_string())
}
