//! GeoArrow-style geometry columns.
//!
//! A column is a handful of flat arrays: fp64 `x` and `y`, three offset arrays
//! (geometry → part → ring → coordinate), one family byte per row and a validity bitmap.
//! Every family uses the same three-level nesting (a point is one part holding one ring of
//! one coordinate; a line string one part with one ring; a polygon one part with its rings),
//! which is GeoArrow's MultiPolygon layout plus a type-id array. One layout means one code
//! path for every kernel, a mixed column for free, and the same bytes on the device.
//!
//! **Points have a layout of their own.** A column whose rows are all points (or null, or
//! `POINT EMPTY`) is kept as GeoArrow's separated point array: `x`, `y` and validity only, one
//! coordinate per row (NaN, NaN for an empty point), no kinds and no offsets — 16 bytes a
//! point instead of 28, and an Arrow `Float64` buffer (a file's, or the streamer's staging
//! bytes) becomes the column without a copy. Views read both layouts through the same
//! accessors, so kernels see parts, rings and coordinates either way
//! ([`ColumnView::layout`]).
//!
//! **Null and empty are different.** A null row has its validity bit clear and no parts; an
//! empty row is valid and has no parts (`POINT EMPTY`, `POLYGON EMPTY`, ...).

mod build;
mod refill;
mod view;

use arrow_buffer::ScalarBuffer;

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

/// How a column's arrays are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Kinds and three levels of offsets: every family, mixed columns.
    Nested,
    /// One coordinate per row, no kinds or offsets: points (null and empty included) only.
    Points,
}

/// An owned geometry column. Build one with [`ColumnBuilder`] or a reader in [`crate::io`];
/// read it through [`GeometryColumn::view`]. Coordinates are Arrow buffers, shared (not
/// copied) when the column is cloned or made from an Arrow array.
///
/// Equality is of the rows: the same geometries (and nulls) in the same order are equal
/// whichever layout holds them, and what a point column keeps in a null row's slot is not
/// looked at.
#[derive(Clone, Debug)]
pub struct GeometryColumn {
    pub(crate) family: Option<Family>,
    pub(crate) rows: usize,
    pub(crate) kinds: Vec<u8>,
    pub(crate) geom_offsets: Vec<u32>,
    pub(crate) part_offsets: Vec<u32>,
    pub(crate) ring_offsets: Vec<u32>,
    pub(crate) x: ScalarBuffer<f64>,
    pub(crate) y: ScalarBuffer<f64>,
    pub(crate) validity: Vec<u64>,
}

impl PartialEq for GeometryColumn {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.view(), other.view());
        if a.layout() == Layout::Nested && b.layout() == Layout::Nested {
            // The nested layout is canonical: equal rows are equal arrays.
            return self.rows == other.rows
                && self.family == other.family
                && self.kinds == other.kinds
                && self.geom_offsets == other.geom_offsets
                && self.part_offsets == other.part_offsets
                && self.ring_offsets == other.ring_offsets
                && self.x == other.x
                && self.y == other.y
                && self.validity == other.validity;
        }
        // One holds only points: so must the other, row for row.
        a.len() == b.len()
            && a.family() == b.family()
            && (0..a.len()).all(|r| a.kind(r) == b.kind(r) && a.point(r) == b.point(r))
    }
}

impl GeometryColumn {
    /// A borrowed view of the column's arrays.
    pub fn view(&self) -> ColumnView<'_> {
        ColumnView {
            family: self.family,
            rows: self.rows,
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
        self.rows
    }

    /// True when the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// How the arrays are laid out.
    pub fn layout(&self) -> Layout {
        self.view().layout()
    }

    /// The x and y coordinate buffers (in the point layout, one per row).
    pub fn coordinates(&self) -> (&ScalarBuffer<f64>, &ScalarBuffer<f64>) {
        (&self.x, &self.y)
    }

    /// The column with coordinate buffers of its own: shared ones (an Arrow array's, staging
    /// memory) are copied, so that whatever they were shared with can be freed.
    pub fn with_own_coordinates(mut self) -> GeometryColumn {
        self.x = self.x.to_vec().into();
        self.y = self.y.to_vec().into();
        self
    }

    /// The same rows in the nested layout (a copy; a clone when it is nested already). Fails
    /// only when the rows outgrow the nested layout's 32-bit offsets.
    pub fn to_nested(&self) -> Result<GeometryColumn, ColumnError> {
        if self.layout() == Layout::Nested {
            return Ok(self.clone());
        }
        let mut b = ColumnBuilder::nested();
        let view = self.view();
        for row in 0..self.rows {
            b.push_geom(view.get(row).as_ref())?;
        }
        Ok(b.finish())
    }

    /// The row at `row`: `None` when it is null or out of range.
    pub fn get(&self, row: usize) -> Option<Geom<'_>> {
        self.view().get(row)
    }
}
