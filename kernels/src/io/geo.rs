//! Interop with `geo-types`, in both directions.

use geo_types::{Coord, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon};

use crate::column::{ColumnBuilder, ColumnError, Family, Geom, GeometryColumn, Part};

/// Builds a column from `geo-types` geometries (`None` is a null row). On failure, the index
/// of the offending geometry and why.
pub fn from_geo<'a>(
    rows: impl IntoIterator<Item = Option<&'a Geometry<f64>>>,
) -> Result<GeometryColumn, (usize, ColumnError)> {
    let mut b = ColumnBuilder::new();
    for (i, g) in rows.into_iter().enumerate() {
        match g {
            None => b.push_null(),
            Some(g) => b.push_geometry(g).map_err(|e| (i, e))?,
        }
    }
    Ok(b.finish())
}

/// `geo-types` has no empty point, so `POINT EMPTY` has no `geo-types` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("row {row}: POINT EMPTY has no geo-types form")]
pub struct NoGeoTypesForm {
    /// The row.
    pub row: usize,
}

fn line(p: &Part<'_>) -> LineString<f64> {
    LineString(p.first_ring().map(|r| r.coords().map(|(x, y)| Coord { x, y }).collect()).unwrap_or_default())
}

fn poly(p: &Part<'_>) -> Polygon<f64> {
    let mut rings = p.rings().map(|r| LineString(r.coords().map(|(x, y)| Coord { x, y }).collect()));
    let shell = rings.next().unwrap_or(LineString(Vec::new()));
    Polygon::new(shell, rings.collect())
}

/// A row as a `geo-types` geometry of the same family (empties become empty collections of
/// the family, e.g. an empty `Polygon`), except `POINT EMPTY`, which has no form.
pub fn to_geo(g: &Geom<'_>) -> Result<Geometry<f64>, NoGeoTypesForm> {
    let point = |p: &Part<'_>| p.first_ring().map(|r| Point::new(r.at(0).0, r.at(0).1));
    let first = g.parts().next();
    Ok(match g.family() {
        Family::Point => {
            Geometry::Point(first.as_ref().and_then(point).ok_or(NoGeoTypesForm { row: g.row() })?)
        }
        Family::LineString => {
            Geometry::LineString(first.as_ref().map(line).unwrap_or(LineString(Vec::new())))
        }
        Family::Polygon => Geometry::Polygon(
            first.as_ref().map(poly).unwrap_or_else(|| Polygon::new(LineString(vec![]), vec![])),
        ),
        Family::MultiPoint => Geometry::MultiPoint(MultiPoint(g.parts().filter_map(|p| point(&p)).collect())),
        Family::MultiLineString => {
            Geometry::MultiLineString(MultiLineString(g.parts().map(|p| line(&p)).collect()))
        }
        Family::MultiPolygon => Geometry::MultiPolygon(MultiPolygon(g.parts().map(|p| poly(&p)).collect())),
    })
}
