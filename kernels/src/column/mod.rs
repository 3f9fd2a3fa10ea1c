//! GeoArrow-style geometry columns.
//!
//! A column is a handful of flat arrays: fp64 `x` and `y`, three offset arrays
//! (geometry → part → ring → coordinate), one family byte per row and a validity bitmap.
//! Every family uses the same three-level nesting (a point is one part holding one ring of
//! one coordinate; a line string one part with one ring; a polygon one part with its rings),
//! which is GeoArrow's MultiPolygon layout plus a type-id array. One layout means one code
//! path for every kernel, a mixed column for free, and the same bytes on the device.
//!
//! **Null and empty are different.** A null row has its validity bit clear and no parts; an
//! empty row is valid and has no parts (`POINT EMPTY`, `POLYGON EMPTY`, ...).

mod build;
mod view;

pub use build::{Checkpoint, ColumnBuilder, ColumnError};
pub use view::{ColumnView, Geom, Part, RawColumn, Ring};

/// The largest coordinate magnitude a column accepts. Beyond about 1e154 the products inside
/// the exact orientation test overflow to infinity and it can no longer decide; 1e150 leaves
/// room for the differences of two coordinates and for affine maps checked on output.
pub const MAX_COORD: f64 = 1e150;

/// A geometry spelled out as parts → rings → coordinates (see [`ColumnBuilder::push_parts`]).
pub type Parts = Vec<Vec<Vec<(f64, f64)>>>;

/// The six geometry families a column can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Family {
    /// One coordinate (or `POINT EMPTY`).
    Point = 1,
    /// A sequence of 0 or ≥2 coordinates.
    LineString = 2,
    /// A shell and holes: closed rings of ≥4 coordinates.
    Polygon = 3,
    /// Points.
    MultiPoint = 4,
    /// Line strings.
    MultiLineString = 5,
    /// Polygons.
    MultiPolygon = 6,
}

impl Family {
    /// Every family, in type-id order.
    pub const ALL: [Family; 6] = [
        Family::Point,
        Family::LineString,
        Family::Polygon,
        Family::MultiPoint,
        Family::MultiLineString,
        Family::MultiPolygon,
    ];

    /// The family stored as type id `id`, if any.
    pub fn from_id(id: u8) -> Option<Family> {
        Family::ALL.get(usize::from(id).wrapping_sub(1)).copied()
    }

    /// The topological dimension: 0 for points, 1 for lines, 2 for polygons.
    pub fn dimension(self) -> u8 {
        match self {
            Family::Point | Family::MultiPoint => 0,
            Family::LineString | Family::MultiLineString => 1,
            Family::Polygon | Family::MultiPolygon => 2,
        }
    }

    /// True for the multi-part families.
    pub fn is_multi(self) -> bool {
        matches!(self, Family::MultiPoint | Family::MultiLineString | Family::MultiPolygon)
    }

    /// The WKT keyword, e.g. `MULTIPOLYGON`.
    pub fn wkt_name(self) -> &'static str {
        match self {
            Family::Point => "POINT",
            Family::LineString => "LINESTRING",
            Family::Polygon => "POLYGON",
            Family::MultiPoint => "MULTIPOINT",
            Family::MultiLineString => "MULTILINESTRING",
            Family::MultiPolygon => "MULTIPOLYGON",
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.wkt_name())
    }
}

/// An owned geometry column. Build one with [`ColumnBuilder`] or a reader in [`crate::io`];
/// read it through [`GeometryColumn::view`].
#[derive(Clone, Debug, PartialEq)]
pub struct GeometryColumn {
    pub(crate) family: Option<Family>,
    pub(crate) kinds: Vec<u8>,
    pub(crate) geom_offsets: Vec<u32>,
    pub(crate) part_offsets: Vec<u32>,
    pub(crate) ring_offsets: Vec<u32>,
    pub(crate) x: Vec<f64>,
    pub(crate) y: Vec<f64>,
    pub(crate) validity: Vec<u64>,
}

impl GeometryColumn {
    /// A borrowed view of the column's arrays.
    pub fn view(&self) -> ColumnView<'_> {
        ColumnView {
            family: self.family,
            kinds: &self.kinds,
            geom_offsets: &self.geom_offsets,
            part_offsets: &self.part_offsets,
            ring_offsets: &self.ring_offsets,
            x: &self.x,
            y: &self.y,
            validity: &self.validity,
        }
    }

    /// Number of rows (null rows included).
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// True when the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// The row at `row`: `None` when it is null or out of range.
    pub fn get(&self, row: usize) -> Option<Geom<'_>> {
        self.view().get(row)
    }
}
