//! GeoJSON: a FeatureCollection, a single Feature, or a bare Geometry.

use ::geojson::{Feature, GeoJson, JsonObject, Value};

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
    let mut json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ReadError::new(name, Position::Whole, e))?;
    let mut b = ColumnBuilder::new();
    let mut properties = Vec::new();
    let mut push_feature = |i: usize, f: Feature, empty_point: bool| -> Result<(), ReadError> {
        match &f.geometry {
            None if empty_point => b.push_empty(Family::Point),
            None => b.push_null(),
            Some(g) => {
                push_value(&mut b, &g.value).map_err(|m| ReadError::new(name, Position::Feature(i), m))?
            }
        }
        properties.push(f.properties);
        Ok(())
    };
    // Features are decoded one at a time so that an error names its feature.
    if json.get("type").and_then(|t| t.as_str()) == Some("FeatureCollection") {
        let features = json.get_mut("features").and_then(|f| f.as_array_mut()).ok_or_else(|| {
            ReadError::new(name, Position::Whole, "a FeatureCollection needs a `features` array")
        })?;
        for (i, mut f) in features.drain(..).enumerate() {
            let empty_point = f.get_mut("geometry").is_some_and(take_empty_point);
            let f = Feature::from_json_value(f).map_err(|e| ReadError::new(name, Position::Feature(i), e))?;
            push_feature(i, f, empty_point)?;
        }
    } else if take_empty_point(&mut json) {
        push_feature(0, Feature::default(), true)?;
    } else {
        let empty_point = json.get_mut("geometry").is_some_and(take_empty_point);
        match GeoJson::from_json_value(json).map_err(|e| ReadError::new(name, Position::Whole, e))? {
            GeoJson::Geometry(g) => {
                push_feature(0, Feature { geometry: Some(g), ..Feature::default() }, false)?
            }
            GeoJson::Feature(f) => push_feature(0, f, empty_point)?,
            GeoJson::FeatureCollection(fc) => {
                for (i, f) in fc.features.into_iter().enumerate() {
                    push_feature(i, f, false)?;
                }
            }
        }
    }
    Ok(GeoJsonTable { geometry: b.finish(), properties })
}

/// GeoJSON has no empty point; `{"type": "Point", "coordinates": []}` is how writers (GDAL's,
/// ours) spell one, and the `geojson` crate refuses it. Replaces such a geometry with `null`;
/// true when it did.
fn take_empty_point(g: &mut serde_json::Value) -> bool {
    let empty = g.get("type").and_then(|t| t.as_str()) == Some("Point")
        && g.get("coordinates").and_then(|c| c.as_array()).is_some_and(|c| c.is_empty());
    if empty {
        *g = serde_json::Value::Null;
    }
    empty
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
