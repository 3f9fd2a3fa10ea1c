//! Borrowed, `Copy` views of a column and of its rows, parts and rings.

use super::Family;

/// A borrowed view of a [`super::GeometryColumn`]: the flat arrays, nothing else.
///
/// Every array is plain old data (`u8`, `u32`, `u64`, `f64`), so [`ColumnView::raw`] hands out
/// the exact bytes a device copy needs. In the point layout ([`super::Layout::Points`]) the
/// kinds and the three offset arrays are empty: row `r` is coordinate `r`, its part `r` and
/// ring `r`, and it has that part when it is valid and its `x` is not NaN.
#[derive(Clone, Copy, Debug)]
pub struct ColumnView<'a> {
    pub(crate) family: Option<Family>,
    pub(crate) rows: usize,
    pub(crate) kinds: &'a [u8],
    pub(crate) geom_offsets: &'a [u32],
    pub(crate) part_offsets: &'a [u32],
    pub(crate) ring_offsets: &'a [u32],
    pub(crate) x: &'a [f64],
    pub(crate) y: &'a [f64],
    pub(crate) validity: &'a [u64],
}

/// The raw arrays of a column, for copying to a device unchanged. For a column in the point
/// layout the kinds and offsets are empty and `x`, `y` hold one coordinate per row (NaN for
/// an empty point; anything for a null row).
#[derive(Clone, Copy, Debug)]
pub struct RawColumn<'a> {
    /// Family type id per row (0 for null rows); empty in the point layout.
    pub kinds: &'a [u8],
    /// `rows + 1` offsets into the parts; empty in the point layout.
    pub geom_offsets: &'a [u32],
    /// `parts + 1` offsets into the rings; empty in the point layout.
    pub part_offsets: &'a [u32],
    /// `rings + 1` offsets into the coordinates; empty in the point layout.
    pub ring_offsets: &'a [u32],
    /// x coordinates.
    pub x: &'a [f64],
    /// y coordinates.
    pub y: &'a [f64],
    /// Validity bitmap: bit `r % 64` of word `r / 64` is set when row `r` is not null.
    pub validity: &'a [u64],
}

impl<'a> ColumnView<'a> {
    /// The family every row has, or `None` for a mixed column (or one with only nulls).
    pub fn family(&self) -> Option<Family> {
        self.family
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// How the column is laid out.
    pub fn layout(&self) -> super::Layout {
        if self.points_native() {
            super::Layout::Points
        } else {
            super::Layout::Nested
        }
    }

    /// True in the point layout (a nested column always has `rings + 1 ≥ 1` ring offsets).
    #[inline(always)]
    pub(crate) fn points_native(&self) -> bool {
        self.ring_offsets.is_empty()
    }

    /// The family id stored for `row` (0 for a null row), or `None` out of range.
    #[inline(always)]
    pub fn kind(&self, row: usize) -> Option<u8> {
        if self.points_native() {
            (row < self.rows).then(|| if self.is_null(row) { 0 } else { Family::Point as u8 })
        } else {
            self.kinds.get(row).copied()
        }
    }

    /// In the point layout, whether row `row` has its coordinate (valid and not empty).
    #[inline(always)]
    fn has_point(&self, row: usize) -> bool {
        !self.is_null(row) && self.x.get(row).is_some_and(|x| !x.is_nan())
    }

    /// The parts of row `row` as a global index range.
    ///
    /// # Panics
    /// If `row >= self.len()` in the nested layout.
    #[inline(always)]
    pub(crate) fn geom_parts(&self, row: usize) -> (u32, u32) {
        if self.points_native() {
            (row as u32, row as u32 + u32::from(self.has_point(row)))
        } else {
            self.range(self.geom_offsets, row)
        }
    }

    /// True when `row` is null (or out of range).
    #[inline(always)]
    pub fn is_null(&self, row: usize) -> bool {
        self.validity.get(row / 64).is_none_or(|w| w & (1 << (row % 64)) == 0)
    }

    /// The geometry at `row`, or `None` when the row is null or out of range.
    #[inline]
    pub fn get(&self, row: usize) -> Option<Geom<'a>> {
        if self.is_null(row) {
            return None;
        }
        let family = Family::from_id(self.kind(row)?)?;
        Some(Geom { view: *self, row: row as u32, family, parts: self.geom_parts(row) })
    }

    /// The coordinate of row `row` when it is a non-null, non-empty `POINT` (for any other
    /// row, `None`). The fast path for point columns.
    #[inline(always)]
    pub fn point(&self, row: usize) -> Option<(f64, f64)> {
        if self.points_native() {
            return self.has_point(row).then(|| (self.x[row], self.y[row]));
        }
        if self.is_null(row) || *self.kinds.get(row)? != Family::Point as u8 {
            return None;
        }
        let part = self.geom_offsets[row] as usize;
        if self.geom_offsets[row + 1] as usize == part {
            return None;
        }
        let c = self.ring_offsets[self.part_offsets[part] as usize] as usize;
        Some((self.x[c], self.y[c]))
    }

    /// Total number of parts over all rows.
    pub fn part_count(&self) -> usize {
        if self.points_native() {
            self.rows
        } else {
            self.part_offsets.len().saturating_sub(1)
        }
    }

    /// The part with global index `part` (as stored in the part offsets).
    ///
    /// # Panics
    /// If `part >= self.part_count()` (in the point layout such a part is empty instead).
    pub fn part(&self, part: usize) -> Part<'a> {
        let rings = if self.points_native() {
            // The part of an empty or null row has no ring.
            (part as u32, part as u32 + u32::from(self.has_point(part)))
        } else {
            self.range(self.part_offsets, part)
        };
        Part { view: *self, rings }
    }

    /// The raw arrays.
    pub fn raw(&self) -> RawColumn<'a> {
        RawColumn {
            kinds: self.kinds,
            geom_offsets: self.geom_offsets,
            part_offsets: self.part_offsets,
            ring_offsets: self.ring_offsets,
            x: self.x,
            y: self.y,
            validity: self.validity,
        }
    }

    /// For each global part index, the row that owns it.
    pub fn part_rows(&self) -> Vec<u32> {
        if self.points_native() {
            return (0..self.rows as u32).collect();
        }
        let mut rows = Vec::with_capacity(self.part_count());
        for (row, w) in self.geom_offsets.windows(2).enumerate() {
            rows.extend(std::iter::repeat_n(row as u32, (w[1] - w[0]) as usize));
        }
        rows
    }

    #[inline]
    fn range(&self, offsets: &[u32], i: usize) -> (u32, u32) {
        (offsets[i], offsets[i + 1])
    }

    #[inline]
    fn ring(&self, ring: usize) -> Ring<'a> {
        let (a, b) = if self.points_native() {
            (ring as u32, ring as u32 + 1)
        } else {
            self.range(self.ring_offsets, ring)
        };
        let (a, b) = (a as usize, b as usize);
        Ring { xs: &self.x[a..b], ys: &self.y[a..b], first: a as u32 }
    }
}

/// One non-null row of a column.
#[derive(Clone, Copy, Debug)]
pub struct Geom<'a> {
    view: ColumnView<'a>,
    row: u32,
    family: Family,
    parts: (u32, u32),
}

impl<'a> Geom<'a> {
    /// The row this geometry is stored at.
    pub fn row(&self) -> usize {
        self.row as usize
    }

    /// The geometry's family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The topological dimension of the family (0, 1 or 2), also for empty geometries.
    pub fn dimension(&self) -> u8 {
        self.family.dimension()
    }

    /// True for an empty geometry (no coordinates).
    pub fn is_empty(&self) -> bool {
        self.num_points() == 0
    }

    /// Number of parts (0 for an empty geometry).
    pub fn num_parts(&self) -> usize {
        (self.parts.1 - self.parts.0) as usize
    }

    /// The parts: points, line strings or polygons.
    pub fn parts(&self) -> impl ExactSizeIterator<Item = Part<'a>> + 'a {
        let view = self.view;
        (self.parts.0..self.parts.1).map(move |p| view.part(p as usize))
    }

    /// Global index of the first part (as stored in the part offsets).
    pub fn first_part(&self) -> usize {
        self.parts.0 as usize
    }

    /// Every ring of every part (for lines and points: their single coordinate sequence).
    pub fn rings(&self) -> impl Iterator<Item = Ring<'a>> + 'a {
        self.parts().flat_map(|p| p.rings())
    }

    /// Number of coordinates.
    pub fn num_points(&self) -> usize {
        let v = &self.view;
        if v.points_native() {
            return (self.parts.1 - self.parts.0) as usize;
        }
        let rings = (v.part_offsets[self.parts.0 as usize], v.part_offsets[self.parts.1 as usize]);
        (v.ring_offsets[rings.1 as usize] - v.ring_offsets[rings.0 as usize]) as usize
    }

    /// Every coordinate, in storage order.
    pub fn coords(&self) -> impl Iterator<Item = (f64, f64)> + 'a {
        self.rings().flat_map(|r| r.coords())
    }
}

/// One part of a geometry: a point, a line string or a polygon (shell first, then holes).
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    view: ColumnView<'a>,
    rings: (u32, u32),
}

impl<'a> Part<'a> {
    /// Number of rings (1 for points and lines).
    pub fn num_rings(&self) -> usize {
        (self.rings.1 - self.rings.0) as usize
    }

    /// The rings; for a polygon the shell comes first.
    pub fn rings(&self) -> impl ExactSizeIterator<Item = Ring<'a>> + 'a {
        let view = self.view;
        (self.rings.0..self.rings.1).map(move |r| view.ring(r as usize))
    }

    /// The first ring (the shell of a polygon, the coordinates of a line or point).
    pub fn first_ring(&self) -> Option<Ring<'a>> {
        (self.rings.0 < self.rings.1).then(|| self.view.ring(self.rings.0 as usize))
    }
}

/// A coordinate sequence: a polygon ring (closed), a line string, or a single point.
#[derive(Clone, Copy, Debug)]
pub struct Ring<'a> {
    /// x coordinates.
    pub xs: &'a [f64],
    /// y coordinates (same length as `xs`).
    pub ys: &'a [f64],
    /// Global index of the first coordinate.
    pub first: u32,
}

impl<'a> Ring<'a> {
    /// Number of coordinates.
    pub fn len(&self) -> usize {
        self.xs.len()
    }

    /// True when the sequence has no coordinates.
    pub fn is_empty(&self) -> bool {
        self.xs.is_empty()
    }

    /// Coordinate `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    #[inline]
    pub fn at(&self, i: usize) -> (f64, f64) {
        (self.xs[i], self.ys[i])
    }

    /// The coordinates.
    pub fn coords(&self) -> impl DoubleEndedIterator<Item = (f64, f64)> + ExactSizeIterator + 'a {
        self.xs.iter().copied().zip(self.ys.iter().copied())
    }

    /// The segments between consecutive coordinates.
    pub fn segments(&self) -> impl Iterator<Item = ((f64, f64), (f64, f64))> + 'a {
        let r = *self;
        (1..r.len()).map(move |i| (r.at(i - 1), r.at(i)))
    }
}
