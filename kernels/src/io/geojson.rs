//! GeoJSON: a FeatureCollection, a single Feature, or a bare Geometry.

use ::geojson::{GeoJson, JsonObject, Value};

use super::{Position, ReadError};
use crate::column::{ColumnBuilder, ColumnError, Family, GeometryColumn, Parts};

/// The rows of a GeoJSON document: one per feature, with its properties.
#[derive(Clone, Debug)]
pub struct GeoJsonTable {
    /// One row per feature; a feature with `"geometry": null` is a null row.
    pub geometry: GeometryColumn,
    /// Each feature's properties (`None` when absent or null).
    pub properties: Vec<Option<JsonObject>>,
}

impl GeoJsonTable {
    /// The string property `key` of row `row`, if it is a string.
    pub fn property_str(&self, row: usize, key: &str) -> Option<&str> {
        self.properties.get(row)?.as_ref()?.get(key)?.as_str()
    }
}

/// Parses a GeoJSON document. Errors name the feature (0-based) and what was wrong.
///
/// ```
/// let doc = r#"{"type":"FeatureCollection","features":[
///   {"type":"Feature","properties":{"name":"a"},"geometry":{"type":"Point","coordinates":[1,2]}},
///   {"type":"Feature","properties":null,"geometry":null}]}"#;
/// let t = meridian_kernels::io::read_geojson("mem.geojson", doc)?;
/// assert_eq!(t.property_str(0, "name"), Some("a"));
/// assert!(t.geometry.get(1).is_none());
/// # Ok::<(), meridian_kernels::io::ReadError>(())
/// ```
pub fn read_geojson(name: &str, text: &str) -> Result<GeoJsonTable, ReadError> {
    let doc: GeoJson = text.parse().map_err(|e| ReadError::new(name, Position::Whole, e))?;
    let mut b = ColumnBuilder::new();
    let mut properties = Vec::new();
    let mut push = |i: usize, g: Option<&Value>| -> Result<(), ReadError> {
        let at = Position::Feature(i);
        match g {
            None => {
                b.push_null();
                Ok(())
            }
            Some(v) => push_value(&mut b, v).map_err(|m| ReadError::new(name, at, m)),
        }
    };
    match &doc {
        GeoJson::Geometry(g) => {
            push(0, Some(&g.value))?;
            properties.push(None);
        }
        GeoJson::Feature(f) => {
            push(0, f.geometry.as_ref().map(|g| &g.value))?;
            properties.push(f.properties.clone());
        }
        GeoJson::FeatureCollection(fc) => {
            for (i, f) in fc.features.iter().enumerate() {
                push(i, f.geometry.as_ref().map(|g| &g.value))?;
                properties.push(f.properties.clone());
            }
        }
    }
    Ok(GeoJsonTable { geometry: b.finish(), properties })
}

fn xy(p: &[f64]) -> Result<(f64, f64), String> {
    match p {
        [x, y, ..] => Ok((*x, *y)),
        _ => Err(format!("position {p:?} has fewer than 2 numbers")),
    }
}

fn ring(r: &[Vec<f64>]) -> Result<Vec<(f64, f64)>, String> {
    r.iter().map(|p| xy(p)).collect()
}

fn polygon(rings: &[Vec<Vec<f64>>]) -> Result<Vec<Vec<(f64, f64)>>, String> {
    rings.iter().map(|r| ring(r)).collect()
}

fn push_value(b: &mut ColumnBuilder, v: &Value) -> Result<(), String> {
    let (family, parts): (Family, Parts) = match v {
        Value::Point(p) => (Family::Point, vec![vec![vec![xy(p)?]]]),
        Value::MultiPoint(ps) => {
            (Family::MultiPoint, ps.iter().map(|p| Ok(vec![vec![xy(p)?]])).collect::<Result<_, String>>()?)
        }
        Value::LineString(l) => (Family::LineString, vec![vec![ring(l)?]]),
        Value::MultiLineString(ls) => {
            (Family::MultiLineString, ls.iter().map(|l| Ok(vec![ring(l)?])).collect::<Result<_, String>>()?)
        }
        Value::Polygon(p) => (Family::Polygon, vec![polygon(p)?]),
        Value::MultiPolygon(ps) => {
            (Family::MultiPolygon, ps.iter().map(|p| polygon(p)).collect::<Result<_, String>>()?)
        }
        Value::GeometryCollection(_) => return Err(ColumnError::Collection.to_string()),
    };
    b.push_parts(family, &parts).map_err(|e| e.to_string())
}
