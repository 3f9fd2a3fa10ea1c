//! The functions that compute a new geometry from others, on the host with `geo`:
//! `ST_ConvexHull` and `ST_Intersection`, with PostGIS's semantics where meridian's columns can
//! hold the answer — a null in gives a null out, the result is the simplest family that holds
//! it (a hull of one point is that point, of collinear points a line; an intersection of two
//! polygons that meet in one polygon a `POLYGON`, not a `MULTIPOLYGON`).
//!
//! Departures, each because a column holds no `GEOMETRYCOLLECTION`: an empty hull or
//! intersection is the empty geometry of the lower dimension of its inputs (`POLYGON EMPTY` for
//! two polygons) where GEOS answers `GEOMETRYCOLLECTION EMPTY` (both are empty, of area and
//! length 0); an intersection whose answer mixes dimensions (two lines that cross and overlap)
//! is an error naming the row. Polygon overlay is `geo`'s (`BooleanOps`, on `i_overlay`), not
//! written here; its areas are checked against GEOS in the tests.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_schema::DataType;
use datafusion::common::{exec_err, Result};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use geo::{BooleanOps, ConvexHull, Intersects};
use geo_types::{Coord, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon, Point};
use meridian_kernels::column::{ColumnBuilder, Family, Geom, GeometryColumn};
use meridian_kernels::io::geoarrow::{self, Encoding};
use meridian_kernels::io::to_geo;

use crate::geometry;

/// Which construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Construction {
    /// `ST_ConvexHull(g)`: the smallest convex geometry holding `g`.
    ConvexHull,
    /// `ST_Intersection(a, b)`: the points `a` and `b` share.
    Intersection,
}

impl Construction {
    /// Every construction.
    pub const ALL: [Construction; 2] = [Construction::ConvexHull, Construction::Intersection];

    /// Its SQL name (lower case, as unquoted identifiers are).
    pub fn name(self) -> &'static str {
        match self {
            Construction::ConvexHull => "st_convexhull",
            Construction::Intersection => "st_intersection",
        }
    }

    fn arity(self) -> usize {
        match self {
            Construction::ConvexHull => 1,
            Construction::Intersection => 2,
        }
    }
}

/// One construction as a DataFusion scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ConstructFunction {
    construction: Construction,
    signature: Signature,
}

impl ConstructFunction {
    /// `construction` as a DataFusion scalar function.
    pub fn udf(construction: Construction) -> ScalarUDF {
        ScalarUDF::new_from_impl(ConstructFunction {
            construction,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for ConstructFunction {
    fn name(&self) -> &str {
        self.construction.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        geometry::coerce_geometry_args(self.name(), self.construction.arity(), arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let cols = geometry::geometry_args(self.name(), &args)?;
        Ok(ColumnarValue::Array(column(self.construction, &cols)?))
    }
}

/// `construction` row by row over `cols` (its arguments), as WKB.
pub fn column(construction: Construction, cols: &[Arc<GeometryColumn>]) -> Result<ArrayRef> {
    let name = construction.name();
    match (construction, cols) {
        (Construction::ConvexHull, [g]) => rows_of(name, g.len(), |row| g.get(row).map(|g| convex_hull(&g))),
        (Construction::Intersection, [a, b]) => {
            rows_of(name, a.len().min(b.len()), |row| Some(intersection(&a.get(row)?, &b.get(row)?)))
        }
        _ => exec_err!("{name}: {} arguments", cols.len()),
    }
}

/// What a construction made: a geometry, the empty geometry of a family (`geo-types` has no
/// empty point), or why it could not.
enum Shape {
    Geo(Geometry<f64>),
    Empty(Family),
}

type Made = std::result::Result<Shape, String>;

/// `rows` rows of `make`'s geometries (`None` a null row) as WKB; an error names the row.
fn rows_of(name: &str, rows: usize, make: impl Fn(usize) -> Option<Made>) -> Result<ArrayRef> {
    let mut out = ColumnBuilder::new();
    for row in 0..rows {
        match make(row) {
            None => out.push_null(),
            Some(Err(why)) => return exec_err!("{name}: row {row}: {why}"),
            Some(Ok(Shape::Empty(family))) => out.push_empty(family),
            Some(Ok(Shape::Geo(g))) => out
                .push_geometry(&g)
                .map_err(|e| DataFusionError::Execution(format!("{name}: row {row}: {e}")))?,
        }
    }
    let col = out.finish();
    let (_, array) =
        geoarrow::to_array(&col, 0..col.len(), name, Encoding::Wkb).map_err(DataFusionError::Execution)?;
    Ok(array)
}

/// The empty geometry of `dimension`: the lower dimension of a construction's inputs.
fn empty(dimension: u8) -> Shape {
    Shape::Empty(match dimension {
        0 => Family::Point,
        1 => Family::LineString,
        _ => Family::Polygon,
    })
}

/// `g` as `geo-types`; `POINT EMPTY` (no form there) never reaches it: empties are answered
/// before.
fn as_geo(g: &Geom<'_>) -> std::result::Result<Geometry<f64>, String> {
    to_geo(g).map_err(|e| e.to_string())
}

/// The convex hull: a point for one distinct point, a line for collinear ones, else a polygon.
fn convex_hull(g: &Geom<'_>) -> Made {
    let coords: Vec<Coord<f64>> = g.coords().map(|(x, y)| Coord { x, y }).collect();
    if coords.is_empty() {
        return Ok(empty(2));
    }
    let lo = coords.iter().copied().fold(coords[0], |m, c| if (c.x, c.y) < (m.x, m.y) { c } else { m });
    let hi = coords.iter().copied().fold(coords[0], |m, c| if (c.x, c.y) > (m.x, m.y) { c } else { m });
    if lo == hi {
        return Ok(Shape::Geo(Geometry::Point(Point(lo))));
    }
    let hull = MultiPoint(coords.into_iter().map(Point).collect()).convex_hull();
    // Collinear input leaves a ring of two distinct points (and its closing one).
    let mut corners: Vec<Coord<f64>> = hull.exterior().0.clone();
    corners.dedup();
    if corners.len() > 1 && corners.first() == corners.last() {
        corners.pop();
    }
    if corners.len() < 3 {
        return Ok(Shape::Geo(Geometry::LineString(LineString(vec![lo, hi]))));
    }
    Ok(Shape::Geo(Geometry::Polygon(hull)))
}

/// The intersection of `a` and `b`, in the simplest family that holds it.
fn intersection(a: &Geom<'_>, b: &Geom<'_>) -> Made {
    let (da, db) = (a.family().dimension(), b.family().dimension());
    // The lower dimension first: points against anything, lines against polygons.
    let (lo, hi) = if da <= db { (a, b) } else { (b, a) };
    if lo.is_empty() || hi.is_empty() {
        return Ok(empty(da.min(db)));
    }
    let (glo, ghi) = (as_geo(lo)?, as_geo(hi)?);
    match (lo.family().dimension(), hi.family().dimension()) {
        (0, _) => {
            let mut kept: Vec<Point<f64>> = Vec::new();
            for p in lo.coords().map(|(x, y)| Point::new(x, y)) {
                if ghi.intersects(&p) && !kept.contains(&p) {
                    kept.push(p);
                }
            }
            Ok(match kept.len() {
                0 => empty(0),
                1 => Shape::Geo(Geometry::Point(kept[0])),
                _ => Shape::Geo(Geometry::MultiPoint(MultiPoint(kept))),
            })
        }
        (1, 2) => {
            let lines = match glo {
                Geometry::LineString(l) => MultiLineString(vec![l]),
                Geometry::MultiLineString(m) => m,
                other => return Err(format!("{other:?} is not a line")),
            };
            let inside = areal(&ghi)?.clip(&lines, false);
            let mut parts: Vec<LineString<f64>> = inside.0.into_iter().filter(|l| l.0.len() > 1).collect();
            Ok(match parts.len() {
                0 => empty(1),
                1 => Shape::Geo(Geometry::LineString(parts.remove(0))),
                _ => Shape::Geo(Geometry::MultiLineString(MultiLineString(parts))),
            })
        }
        (2, 2) => {
            let mut m = areal(&glo)?.intersection(&areal(&ghi)?);
            Ok(match m.0.len() {
                0 => empty(2),
                1 => Shape::Geo(Geometry::Polygon(m.0.remove(0))),
                _ => Shape::Geo(Geometry::MultiPolygon(m)),
            })
        }
        _ => Err(format!(
            "the intersection of a {} and a {} is not computed (its answer may mix points and lines, \
             a GEOMETRYCOLLECTION, which meridian's columns do not hold)",
            lo.family().wkt_name(),
            hi.family().wkt_name()
        )),
    }
}

/// A polygon or multipolygon as a multipolygon, for `BooleanOps`.
fn areal(g: &Geometry<f64>) -> std::result::Result<MultiPolygon<f64>, String> {
    match g {
        Geometry::Polygon(p) => Ok(MultiPolygon(vec![p.clone()])),
        Geometry::MultiPolygon(m) => Ok(m.clone()),
        _ => Err("not a polygon".to_owned()),
    }
}
