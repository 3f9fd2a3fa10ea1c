//! Building columns row by row, from coordinates or from anything implementing `geo-traits`.

use geo_traits::{
    CoordTrait, GeometryTrait, GeometryType, LineStringTrait, LineTrait, MultiLineStringTrait,
    MultiPointTrait, MultiPolygonTrait, PointTrait, PolygonTrait, RectTrait, TriangleTrait,
};

use arrow_buffer::{NullBuffer, ScalarBuffer};

use super::{ColumnView, Family, Geom, GeometryColumn};

/// Why a geometry could not be added to a column. The row is left out entirely; the column
/// is unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ColumnError {
    /// A coordinate is NaN, infinite, or beyond ±[`MAX_COORD`](super::MAX_COORD).
    #[error("coordinate ({x}, {y}) is not finite or beyond ±1e150")]
    NonFinite {
        /// x as read.
        x: f64,
        /// y as read.
        y: f64,
    },
    /// A polygon ring does not end where it starts.
    #[error("polygon ring {ring} is not closed (first and last coordinates differ)")]
    RingNotClosed {
        /// Ring index within its polygon (0 = shell).
        ring: usize,
    },
    /// A polygon ring has 1–3 coordinates.
    #[error("polygon ring {ring} has {got} coordinates; a ring needs at least 4")]
    RingTooShort {
        /// Ring index within its polygon (0 = shell).
        ring: usize,
        /// Coordinates found.
        got: usize,
    },
    /// A line string has exactly one coordinate.
    #[error("line string has 1 coordinate; a line string needs 0 or at least 2")]
    LineTooShort,
    /// A polygon with an empty shell but non-empty holes.
    #[error("polygon has an empty shell but {holes} hole(s)")]
    HolesWithoutShell {
        /// Number of holes.
        holes: usize,
    },
    /// Parts that do not fit the family (e.g. a point part with two coordinates).
    #[error("{family} part {part} is malformed: {detail}")]
    BadPart {
        /// The family being built.
        family: Family,
        /// Part index.
        part: usize,
        /// What is wrong.
        detail: &'static str,
    },
    /// Geometry collections are not a column family.
    #[error("GEOMETRYCOLLECTION is not supported (columns hold the six simple families)")]
    Collection,
    /// The column would need more than `u32::MAX` parts, rings or coordinates.
    #[error("column too large: more than 4,294,967,295 {what}")]
    TooLarge {
        /// `parts`, `rings` or `coordinates`.
        what: &'static str,
    },
}

/// Appends rows to a new [`GeometryColumn`].
///
/// A builder keeps the point layout ([`super::Layout::Points`]) while every row is a point,
/// null or `POINT EMPTY`, and moves to the nested layout (once, in one pass) at the first
/// row of another family. Coordinates handed over as Arrow buffers
/// ([`ColumnBuilder::extend_point_buffers`]) into an empty builder are kept, not copied.
///
/// ```
/// use meridian_kernels::column::{ColumnBuilder, Family};
/// let mut b = ColumnBuilder::new();
/// b.push_point(1.0, 2.0)?;
/// b.push_null();
/// b.push_empty(Family::Polygon);
/// b.push_polygon(&[&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]])?;
/// let col = b.finish();
/// assert_eq!(col.len(), 4);
/// assert!(col.get(1).is_none());            // null
/// assert!(col.get(2).unwrap().is_empty());  // empty, not null
/// # Ok::<(), meridian_kernels::column::ColumnError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ColumnBuilder {
    col: Arrays,
    families_seen: u8,
}

/// A column being built: a [`GeometryColumn`]'s arrays, growable. Empty (the default) it is
/// in the point layout.
#[derive(Clone, Debug, Default)]
struct Arrays {
    family: Option<Family>,
    rows: usize,
    kinds: Vec<u8>,
    geom_offsets: Vec<u32>,
    part_offsets: Vec<u32>,
    ring_offsets: Vec<u32>,
    x: Vec<f64>,
    y: Vec<f64>,
    validity: Vec<u64>,
    /// Coordinates adopted without a copy (point layout only; `x` and `y` are empty while
    /// they are here, and they are copied out at the first change).
    shared: Option<Box<(ScalarBuffer<f64>, ScalarBuffer<f64>)>>,
}

impl Default for GeometryColumn {
    fn default() -> Self {
        ColumnBuilder::new().finish()
    }
}

/// Where a builder stood ([`ColumnBuilder::checkpoint`]), to go back to with
/// [`ColumnBuilder::restore`]: every array's length, and what the rows so far say of the
/// family and validity.
#[derive(Clone, Copy, Debug)]
pub struct Checkpoint {
    rows: usize,
    native: bool,
    kinds: usize,
    geoms: usize,
    parts: usize,
    rings: usize,
    xs: usize,
    ys: usize,
    validity: usize,
    last_word: Option<u64>,
    family: Option<Family>,
    families_seen: u8,
}

/// Where the arrays stood before the row being built, to roll back on error.
#[derive(Clone, Copy)]
struct Mark {
    parts: usize,
    rings: usize,
    coords: usize,
}

/// True for a coordinate a column accepts.
#[inline(always)]
pub(super) fn in_range(x: f64, y: f64) -> bool {
    x.abs() <= super::MAX_COORD && y.abs() <= super::MAX_COORD
}

/// The first valid row whose coordinates are neither in range nor an empty point (NaN, NaN).
/// Blocks of rows are checked whole first, without branches (the loop vectorises); only a
/// block holding a bad coordinate is searched, for the row and its validity.
fn first_bad(xs: &[f64], ys: &[f64], is_valid: &dyn Fn(usize) -> bool) -> Option<usize> {
    const BLOCK: usize = 1024;
    let ok = |x: f64, y: f64| {
        (x.abs() <= super::MAX_COORD) & (y.abs() <= super::MAX_COORD) | (x.is_nan() & y.is_nan())
    };
    for (k, (bx, by)) in xs.chunks(BLOCK).zip(ys.chunks(BLOCK)).enumerate() {
        if bx.iter().zip(by).fold(true, |all, (&x, &y)| all & ok(x, y)) {
            continue;
        }
        let bad = |(i, (&x, &y)): (usize, (&f64, &f64))| !ok(x, y) && is_valid(k * BLOCK + i);
        if let Some(i) = bx.iter().zip(by).enumerate().position(bad) {
            return Some(k * BLOCK + i);
        }
    }
    None
}

/// Sets bits `from..to` of a bitmap long enough to hold them, whole words at a time.
fn set_bits(words: &mut [u64], from: usize, to: usize) {
    let mut r = from;
    while r < to {
        if r.is_multiple_of(64) && to - r >= 64 {
            words[r / 64] = !0;
            r += 64;
        } else {
            words[r / 64] |= 1 << (r % 64);
            r += 1;
        }
    }
}

impl ColumnBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder that builds the nested layout even for points (for comparisons of
    /// the two layouts, and for callers that want offsets).
    pub fn nested() -> Self {
        let mut b = Self::new();
        b.go_nested();
        b
    }

    /// Rows added so far.
    pub fn len(&self) -> usize {
        self.col.rows
    }

    /// True when no row has been added.
    pub fn is_empty(&self) -> bool {
        self.col.rows == 0
    }

    /// Where the builder stands now.
    pub fn checkpoint(&self) -> Checkpoint {
        let c = &self.col;
        let coords = c.shared.as_deref().map_or(c.x.len(), |(x, _)| x.len());
        Checkpoint {
            rows: c.rows,
            native: c.native(),
            kinds: c.kinds.len(),
            geoms: c.geom_offsets.len(),
            parts: c.part_offsets.len(),
            rings: c.ring_offsets.len(),
            xs: coords,
            ys: coords,
            validity: c.validity.len(),
            last_word: c.validity.last().copied(),
            family: c.family,
            families_seen: self.families_seen,
        }
    }

    /// Goes back to `at` (taken from this builder), dropping everything added since: whole
    /// rows, and whatever a failed or panicking reader left of a row half-built. Every
    /// array is cut back to its own length at the checkpoint, so it holds even when the arrays
    /// were left out of step.
    pub fn restore(&mut self, at: Checkpoint) {
        self.unshare();
        if at.native && !self.col.native() {
            // Every row up to the checkpoint is a point: cut the nested arrays there and
            // return to the point layout.
            let c = &mut self.col;
            let rows = at.rows.min(c.kinds.len());
            let parts = c.geom_offsets.get(rows).map_or(0, |&p| p as usize);
            let rings = c.part_offsets.get(parts).map_or(0, |&r| r as usize);
            let coords = c.ring_offsets.get(rings).map_or(0, |&k| k as usize);
            c.kinds.truncate(rows);
            c.geom_offsets.truncate(rows + 1);
            c.part_offsets.truncate(parts + 1);
            c.ring_offsets.truncate(rings + 1);
            c.x.truncate(coords);
            c.y.truncate(coords);
            c.rows = rows;
            self.go_points();
        } else if !at.native && self.col.native() {
            self.go_nested();
        }
        let c = &mut self.col;
        c.rows = c.rows.min(at.rows);
        c.kinds.truncate(at.kinds);
        c.geom_offsets.truncate(at.geoms);
        c.part_offsets.truncate(at.parts);
        c.ring_offsets.truncate(at.rings);
        c.x.truncate(at.xs);
        c.y.truncate(at.ys);
        c.validity.truncate(at.validity);
        if let (Some(word), Some(last)) = (at.last_word, c.validity.last_mut()) {
            *last = word;
        }
        c.family = at.family;
        self.families_seen = at.families_seen;
    }

    /// Appends a null row.
    pub fn push_null(&mut self) {
        if self.col.native() {
            self.unshare();
            self.col.x.push(f64::NAN);
            self.col.y.push(f64::NAN);
        }
        self.end_row(0, false);
    }

    /// Appends an empty geometry of `family` (e.g. `POLYGON EMPTY`).
    pub fn push_empty(&mut self, family: Family) {
        if self.col.native() && family != Family::Point {
            self.go_nested();
        }
        if self.col.native() {
            self.unshare();
            self.col.x.push(f64::NAN);
            self.col.y.push(f64::NAN);
        }
        self.end_row(family as u8, true);
    }

    /// Appends a point.
    pub fn push_point(&mut self, x: f64, y: f64) -> Result<(), ColumnError> {
        // The common case of bulk readers: no mark or rollback needed, as nothing is pushed
        // before the only check.
        if !in_range(x, y) {
            return Err(ColumnError::NonFinite { x, y });
        }
        if self.col.native() {
            // Converting to the nested layout later needs a part per row.
            offset(self.col.rows + 1, "parts")?;
            self.unshare();
            self.col.x.push(x);
            self.col.y.push(y);
            self.end_row(Family::Point as u8, true);
            return Ok(());
        }
        let c = &mut self.col;
        let coords = offset(c.x.len() + 1, "coordinates")?;
        let rings = offset(c.ring_offsets.len(), "rings")?;
        offset(c.part_offsets.len() + 1, "parts")?;
        c.x.push(x);
        c.y.push(y);
        c.ring_offsets.push(coords);
        c.part_offsets.push(rings);
        self.end_row(Family::Point as u8, true);
        Ok(())
    }

    /// Appends the point `c`, or `POINT EMPTY` for none (or NaN, NaN, as WKB spells it).
    fn push_point_or_empty(&mut self, c: Option<(f64, f64)>) -> Result<(), ColumnError> {
        match c {
            Some((x, y)) if !(x.is_nan() && y.is_nan()) => self.push_point(x, y),
            _ => {
                self.push_empty(Family::Point);
                Ok(())
            }
        }
    }

    /// Appends points from coordinate arrays: row `i` is null where `is_valid(i)` is false,
    /// `POINT EMPTY` where both coordinates are NaN, else the point `(xs[i], ys[i])`. Runs of
    /// plain points are appended in bulk. On error (a coordinate that is not finite, or a
    /// column outgrowing its offsets) the rows before the failing one stay appended and the
    /// error carries its index.
    pub fn extend_points(
        &mut self,
        xs: &[f64],
        ys: &[f64],
        is_valid: impl Fn(usize) -> bool,
    ) -> Result<(), (usize, ColumnError)> {
        let n = xs.len().min(ys.len());
        if self.col.native() {
            let (xs, ys) = (&xs[..n], &ys[..n]);
            let good = first_bad(xs, ys, &is_valid).unwrap_or(n);
            offset(self.col.rows + good + 1, "parts").map_err(|e| (0, e))?;
            self.unshare();
            self.col.x.extend_from_slice(&xs[..good]);
            self.col.y.extend_from_slice(&ys[..good]);
            self.count_rows(good, Some(&is_valid));
            return match good < n {
                true => Err((good, ColumnError::NonFinite { x: xs[good], y: ys[good] })),
                false => Ok(()),
            };
        }
        let plain = |i: usize| is_valid(i) && !(xs[i].is_nan() && ys[i].is_nan());
        let mut i = 0;
        while i < n {
            if !is_valid(i) {
                self.push_null();
                i += 1;
                continue;
            }
            if !plain(i) {
                self.push_empty(Family::Point);
                i += 1;
                continue;
            }
            let mut end = i + 1;
            while end < n && plain(end) {
                end += 1;
            }
            self.points_run(&xs[i..end], &ys[i..end]).map_err(|(k, e)| (i + k, e))?;
            i = end;
        }
        Ok(())
    }

    /// Appends valid, non-empty points in bulk to a nested column (the loops vectorise): all
    /// or, up to the first bad coordinate, those before it.
    fn points_run(&mut self, xs: &[f64], ys: &[f64]) -> Result<(), (usize, ColumnError)> {
        if let Some(k) = xs.iter().zip(ys).position(|(&x, &y)| !in_range(x, y)) {
            self.points_run(&xs[..k], &ys[..k])?;
            return Err((k, ColumnError::NonFinite { x: xs[k], y: ys[k] }));
        }
        let len = xs.len();
        let c = &mut self.col;
        let (coords, rings, parts) = (c.x.len(), c.rings(), c.parts());
        let too_large = |what| (0, ColumnError::TooLarge { what });
        let coords_end = offset(coords + len, "coordinates").map_err(|_| too_large("coordinates"))?;
        offset(rings + len, "rings").map_err(|_| too_large("rings"))?;
        offset(parts + len + 1, "parts").map_err(|_| too_large("parts"))?;
        c.x.extend_from_slice(xs);
        c.y.extend_from_slice(ys);
        // One ring per part, one part per row, one coordinate per ring.
        let counting = |from: usize| (from as u32 + 1)..=(from + len) as u32;
        c.ring_offsets.extend(counting(coords));
        c.part_offsets.extend(counting(rings));
        c.geom_offsets.extend(counting(parts));
        debug_assert_eq!(*c.ring_offsets.last().unwrap_or(&0), coords_end);
        let row0 = c.rows;
        c.kinds.resize(row0 + len, Family::Point as u8);
        self.count_rows(len, None);
        Ok(())
    }

    /// Appends points from Arrow coordinate buffers (rows as in
    /// [`ColumnBuilder::extend_points`], `nulls` giving the null rows). Into an empty builder
    /// the buffers are kept as the column's coordinates — no copy — when every row checks;
    /// otherwise (and on error, as there) they are copied.
    pub fn extend_point_buffers(
        &mut self,
        xs: ScalarBuffer<f64>,
        ys: ScalarBuffer<f64>,
        nulls: Option<&NullBuffer>,
    ) -> Result<(), (usize, ColumnError)> {
        let n = xs.len().min(ys.len());
        let nulls = nulls.filter(|b| b.null_count() > 0);
        let valid = |i: usize| nulls.is_none_or(|b| i < b.len() && b.is_valid(i));
        let adopt = self.col.native()
            && self.col.rows == 0
            && xs.len() == ys.len()
            && nulls.is_none_or(|b| b.len() == n)
            && offset(n + 1, "parts").is_ok()
            && first_bad(&xs, &ys, &valid).is_none();
        if !adopt {
            return self.extend_points(&xs[..n], &ys[..n], valid);
        }
        self.col.x = Vec::new();
        self.col.y = Vec::new();
        self.count_rows(n, nulls.is_some().then_some(&valid));
        self.col.shared = Some(Box::new((xs, ys)));
        Ok(())
    }

    /// Counts `n` rows of points just appended (coordinates, and offsets when nested): their
    /// validity bits (`None`: all valid), and the point family when one is valid.
    fn count_rows(&mut self, n: usize, valid: Option<&dyn Fn(usize) -> bool>) {
        let row0 = self.col.rows;
        let c = &mut self.col;
        c.validity.resize((row0 + n).div_ceil(64), 0);
        let any = match valid {
            None => {
                set_bits(&mut c.validity, row0, row0 + n);
                n > 0
            }
            Some(valid) => {
                let mut any = false;
                for i in 0..n {
                    if valid(i) {
                        let r = row0 + i;
                        c.validity[r / 64] |= 1 << (r % 64);
                        any = true;
                    }
                }
                any
            }
        };
        c.rows = row0 + n;
        if any {
            self.saw(Family::Point as u8);
        }
    }

    /// Copies coordinates the builder shares with Arrow buffers (adopted by
    /// [`ColumnBuilder::extend_point_buffers`]) into vectors of its own, so that whatever
    /// holds those buffers' memory can be freed.
    pub fn own_coordinates(&mut self) {
        self.unshare();
    }

    /// The point layout's coordinates back in the builder's own vectors, ready to grow.
    fn unshare(&mut self) {
        if let Some((x, y)) = self.col.shared.take().map(|b| *b) {
            self.col.x = x.to_vec();
            self.col.y = y.to_vec();
        }
    }

    /// Moves the rows so far from the point layout to the nested one (nothing when nested).
    fn go_nested(&mut self) {
        if !self.col.native() {
            return;
        }
        self.unshare();
        let c = &mut self.col;
        let rows = c.rows;
        c.kinds = Vec::with_capacity(rows);
        c.geom_offsets = Vec::with_capacity(rows + 1);
        c.geom_offsets.push(0);
        c.part_offsets = vec![0];
        c.ring_offsets = vec![0];
        // Coordinates move down over the slots of null and empty rows; the counts fit u32 as
        // the point layout keeps a row count whose parts would.
        let mut k = 0usize;
        for r in 0..rows {
            let valid = c.validity[r / 64] & (1 << (r % 64)) != 0;
            if valid && !c.x[r].is_nan() {
                c.x[k] = c.x[r];
                c.y[k] = c.y[r];
                k += 1;
                c.ring_offsets.push(k as u32);
                c.part_offsets.push(k as u32);
            }
            c.kinds.push(if valid { Family::Point as u8 } else { 0 });
            c.geom_offsets.push(k as u32);
        }
        c.x.truncate(k);
        c.y.truncate(k);
    }

    /// Moves rows that are all points, nulls or empty points from the nested layout to the
    /// point one.
    fn go_points(&mut self) {
        let c = &mut self.col;
        let mut x = Vec::with_capacity(c.rows);
        let mut y = Vec::with_capacity(c.rows);
        for r in 0..c.rows {
            let (p0, p1) = (c.geom_offsets[r] as usize, c.geom_offsets[r + 1] as usize);
            let k = (p1 > p0).then(|| c.ring_offsets[c.part_offsets[p0] as usize] as usize);
            let (px, py) = k.map_or((f64::NAN, f64::NAN), |k| (c.x[k], c.y[k]));
            x.push(px);
            y.push(py);
        }
        c.x = x;
        c.y = y;
        for v in [&mut c.geom_offsets, &mut c.part_offsets, &mut c.ring_offsets] {
            *v = Vec::new();
        }
        c.kinds = Vec::new();
    }

    /// Makes room for `rows` more rows of `coords` coordinates in all.
    pub fn reserve(&mut self, rows: usize, coords: usize) {
        let c = &mut self.col;
        c.validity.reserve(rows / 64 + 1);
        if c.native() {
            // A point column may still turn nested; until then a row is a coordinate.
            c.x.reserve(rows);
            c.y.reserve(rows);
            return;
        }
        c.kinds.reserve(rows);
        c.geom_offsets.reserve(rows);
        // At least one part and ring per coordinate-holding row of a point column.
        c.part_offsets.reserve(rows);
        c.ring_offsets.reserve(rows);
        c.x.reserve(coords);
        c.y.reserve(coords);
    }

    /// Appends a line string (0 or ≥ 2 coordinates).
    pub fn push_line_string(&mut self, coords: &[(f64, f64)]) -> Result<(), ColumnError> {
        self.row(Family::LineString, |b| b.line_part(&mut coords.iter().copied()))
    }

    /// Appends a polygon: shell first, then holes; each ring closed with ≥ 4 coordinates.
    pub fn push_polygon(&mut self, rings: &[&[(f64, f64)]]) -> Result<(), ColumnError> {
        self.row(Family::Polygon, |b| {
            b.polygon_part(rings.len(), &mut rings.iter().map(|r| r.iter().copied()))
        })
    }

    /// Appends a geometry of `family` given as parts → rings → coordinates (a point part is
    /// one ring of one coordinate; a line part one ring). Empty members are dropped.
    pub fn push_parts(&mut self, family: Family, parts: &[Vec<Vec<(f64, f64)>>]) -> Result<(), ColumnError> {
        if !family.is_multi() && parts.len() > 1 {
            return Err(ColumnError::BadPart {
                family,
                part: 1,
                detail: "a single-part family has one part",
            });
        }
        if family == Family::Point {
            let single = match parts {
                [] => Some(None),
                [part] => match part.as_slice() {
                    [] => Some(None),
                    [ring] if ring.len() <= 1 => Some(ring.first().copied()),
                    _ => None,
                },
                _ => None,
            };
            if let Some(c) = single {
                return self.push_point_or_empty(c);
            }
        }
        self.row(family, |b| {
            for (i, part) in parts.iter().enumerate() {
                let bad = |detail| ColumnError::BadPart { family, part: i, detail };
                match family.dimension() {
                    0 => match part.as_slice() {
                        [] => {}
                        [ring] if ring.is_empty() => {}
                        [ring] if ring.len() == 1 => b.part(|b| b.ring(&mut ring.iter().copied()))?,
                        _ => return Err(bad("a point part is one ring of one coordinate")),
                    },
                    1 => match part.as_slice() {
                        [] => {}
                        [ring] => b.line_part(&mut ring.iter().copied())?,
                        _ => return Err(bad("a line part is one ring")),
                    },
                    _ => b.polygon_part(part.len(), &mut part.iter().map(|r| r.iter().copied()))?,
                }
            }
            Ok(())
        })
    }

    /// Appends any geometry implementing `geo-traits` (`geo-types`, `wkt`, `wkb`, ...).
    /// Z and M are dropped; `RECT`, `TRIANGLE` and `LINE` become polygons and line strings.
    pub fn push_geometry<G: GeometryTrait<T = f64>>(&mut self, g: &G) -> Result<(), ColumnError> {
        match g.as_type() {
            GeometryType::Point(p) => self.push_point_or_empty(p.coord().map(|c| c.x_y())),
            GeometryType::LineString(l) => {
                self.row(Family::LineString, |b| b.line_part(&mut l.coords().map(|c| c.x_y())))
            }
            GeometryType::Polygon(p) => self.row(Family::Polygon, |b| b.traits_polygon(p)),
            GeometryType::MultiPoint(m) => {
                self.row(Family::MultiPoint, |b| m.points().try_for_each(|p| b.point_part(&p)))
            }
            GeometryType::MultiLineString(m) => self.row(Family::MultiLineString, |b| {
                m.line_strings().try_for_each(|l| b.line_part(&mut l.coords().map(|c| c.x_y())))
            }),
            GeometryType::MultiPolygon(m) => {
                self.row(Family::MultiPolygon, |b| m.polygons().try_for_each(|p| b.traits_polygon(&p)))
            }
            GeometryType::GeometryCollection(_) => Err(ColumnError::Collection),
            GeometryType::Rect(r) => {
                let (lo, hi) = (r.min().x_y(), r.max().x_y());
                let ring = [lo, (hi.0, lo.1), hi, (lo.0, hi.1), lo];
                self.push_polygon(&[&ring])
            }
            GeometryType::Triangle(t) => {
                let (a, b, c) = (t.first().x_y(), t.second().x_y(), t.third().x_y());
                self.push_polygon(&[&[a, b, c, a]])
            }
            GeometryType::Line(l) => self.push_line_string(&[l.start().x_y(), l.end().x_y()]),
        }
    }

    /// Removes every row, keeping the allocations (for per-row scratch space).
    pub fn clear(&mut self) {
        let c = &mut self.col;
        // A nested builder stays nested, its vectors kept: the first offsets stay in place.
        let nested = !c.native();
        for v in [&mut c.geom_offsets, &mut c.part_offsets, &mut c.ring_offsets] {
            v.truncate(usize::from(nested));
        }
        c.kinds.clear();
        c.x.clear();
        c.y.clear();
        c.validity.clear();
        c.shared = None;
        c.family = None;
        c.rows = 0;
        self.families_seen = 0;
    }

    /// A view of the rows added so far.
    pub fn view(&self) -> ColumnView<'_> {
        let c = &self.col;
        let (x, y) = c.shared.as_deref().map_or((&c.x[..], &c.y[..]), |(x, y)| (&x[..], &y[..]));
        ColumnView {
            family: c.family,
            rows: c.rows,
            kinds: &c.kinds,
            geom_offsets: &c.geom_offsets,
            part_offsets: &c.part_offsets,
            ring_offsets: &c.ring_offsets,
            x,
            y,
            validity: &c.validity,
        }
    }

    /// Appends a copy of `g` (a row of any column), or a null row for `None`. Fails, adding
    /// nothing, only when the column would outgrow its 32-bit offsets.
    pub fn push_geom(&mut self, g: Option<&Geom<'_>>) -> Result<(), ColumnError> {
        let Some(g) = g else {
            self.push_null();
            return Ok(());
        };
        if g.family() == Family::Point && self.col.native() {
            return self.push_point_or_empty(g.coords().next());
        }
        // The source row passed validation when it was built, so only offsets can fail.
        self.row(g.family(), |b| {
            for part in g.parts() {
                b.part(|b| {
                    for ring in part.rings() {
                        b.col.x.extend_from_slice(ring.xs);
                        b.col.y.extend_from_slice(ring.ys);
                        let end = offset(b.col.x.len(), "coordinates")?;
                        b.col.ring_offsets.push(end);
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })
    }

    /// The finished column.
    pub fn finish(self) -> GeometryColumn {
        let c = self.col;
        let (x, y) = c.shared.map_or_else(|| (c.x.into(), c.y.into()), |b| *b);
        GeometryColumn {
            family: c.family,
            rows: c.rows,
            kinds: c.kinds,
            geom_offsets: c.geom_offsets,
            part_offsets: c.part_offsets,
            ring_offsets: c.ring_offsets,
            x,
            y,
            validity: c.validity,
        }
    }

    fn mark(&self) -> Mark {
        Mark { parts: self.col.parts(), rings: self.col.rings(), coords: self.col.x.len() }
    }

    fn rollback(&mut self, m: Mark) {
        self.col.part_offsets.truncate(m.parts + 1);
        self.col.ring_offsets.truncate(m.rings + 1);
        self.col.x.truncate(m.coords);
        self.col.y.truncate(m.coords);
    }

    /// Runs `body` to add the parts of one row; on error nothing of the row remains.
    pub(crate) fn row(
        &mut self,
        family: Family,
        body: impl FnOnce(&mut Self) -> Result<(), ColumnError>,
    ) -> Result<(), ColumnError> {
        self.go_nested();
        let mark = self.mark();
        match body(self) {
            Ok(()) => {
                self.end_row(family as u8, true);
                Ok(())
            }
            Err(e) => {
                self.rollback(mark);
                Err(e)
            }
        }
    }

    fn end_row(&mut self, kind: u8, valid: bool) {
        let c = &mut self.col;
        let row = c.rows;
        c.rows += 1;
        if !c.native() {
            c.kinds.push(kind);
            let parts = c.part_offsets.len() as u32 - 1;
            c.geom_offsets.push(parts);
        }
        if row.is_multiple_of(64) {
            c.validity.push(0);
        }
        if valid {
            c.validity[row / 64] |= 1 << (row % 64);
            self.saw(kind);
        }
    }

    /// Notes a valid row of family id `kind`: the column's family is it while it is the
    /// only one seen.
    fn saw(&mut self, kind: u8) {
        let bit = 1u8 << kind;
        self.families_seen |= bit;
        self.col.family = Family::from_id(kind).filter(|_| self.families_seen == bit);
    }

    fn point_part<P: PointTrait<T = f64>>(&mut self, p: &P) -> Result<(), ColumnError> {
        match p.coord().map(|c| c.x_y()) {
            // POINT EMPTY (alone or inside a MULTIPOINT; NaN, NaN in WKB) adds no part.
            None => Ok(()),
            Some((x, y)) if x.is_nan() && y.is_nan() => Ok(()),
            Some(c) => self.part(|b| b.ring(&mut std::iter::once(c))),
        }
    }

    pub(crate) fn line_part(
        &mut self,
        coords: &mut dyn Iterator<Item = (f64, f64)>,
    ) -> Result<(), ColumnError> {
        let mark = self.mark();
        self.part(|b| b.ring(coords))?;
        match self.col.x.len() - mark.coords {
            0 => {
                self.rollback(mark); // an empty member adds nothing
                Ok(())
            }
            1 => Err(ColumnError::LineTooShort),
            _ => Ok(()),
        }
    }

    fn traits_polygon<P: PolygonTrait<T = f64>>(&mut self, p: &P) -> Result<(), ColumnError> {
        let rings = p.exterior().into_iter().chain(p.interiors());
        let n = usize::from(p.exterior().is_some()) + p.num_interiors();
        self.polygon_part(n, &mut rings.map(|r| r.coords().map(|c| c.x_y()).collect::<Vec<_>>().into_iter()))
    }

    pub(crate) fn polygon_part<I: Iterator<Item = (f64, f64)>>(
        &mut self,
        n_rings: usize,
        rings: &mut dyn Iterator<Item = I>,
    ) -> Result<(), ColumnError> {
        let mark = self.mark();
        self.part(|b| {
            for (i, mut ring) in rings.enumerate() {
                let start = b.col.x.len();
                b.ring(&mut ring)?;
                let got = b.col.x.len() - start;
                if i == 0 && got == 0 {
                    return match n_rings - 1 {
                        0 => Ok(()),
                        holes => Err(ColumnError::HolesWithoutShell { holes }),
                    };
                }
                if got < 4 {
                    return Err(ColumnError::RingTooShort { ring: i, got });
                }
                if (b.col.x[start], b.col.y[start]) != (b.col.x[start + got - 1], b.col.y[start + got - 1]) {
                    return Err(ColumnError::RingNotClosed { ring: i });
                }
            }
            Ok(())
        })?;
        if self.col.x.len() == mark.coords {
            self.rollback(mark); // POLYGON EMPTY adds no part
        }
        Ok(())
    }

    pub(crate) fn part(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<(), ColumnError>,
    ) -> Result<(), ColumnError> {
        body(self)?;
        let rings = offset(self.col.rings(), "rings")?;
        self.col.part_offsets.push(rings);
        offset(self.col.part_offsets.len(), "parts").map(|_| ())
    }

    pub(crate) fn ring(&mut self, coords: &mut dyn Iterator<Item = (f64, f64)>) -> Result<(), ColumnError> {
        for (x, y) in coords {
            if !(x.abs() <= super::MAX_COORD && y.abs() <= super::MAX_COORD) {
                return Err(ColumnError::NonFinite { x, y });
            }
            self.col.x.push(x);
            self.col.y.push(y);
        }
        let end = offset(self.col.x.len(), "coordinates")?;
        self.col.ring_offsets.push(end);
        Ok(())
    }
}

fn offset(n: usize, what: &'static str) -> Result<u32, ColumnError> {
    u32::try_from(n).map_err(|_| ColumnError::TooLarge { what })
}

impl Arrays {
    /// The point layout: kinds and offsets empty, one coordinate per row (a nested column
    /// always has at least the first ring offset).
    fn native(&self) -> bool {
        self.ring_offsets.is_empty()
    }

    fn parts(&self) -> usize {
        self.part_offsets.len() - 1
    }

    fn rings(&self) -> usize {
        self.ring_offsets.len() - 1
    }
}
