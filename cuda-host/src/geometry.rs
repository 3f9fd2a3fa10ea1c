//! The device geometry library, called on the host: each function here runs the C++ of
//! `kernels/cuda/geom.cuh`, `relate.cuh` and `index.cuh` on a column's own arrays, so tests can
//! hold it against `meridian_kernels::algo`.

use std::convert::Infallible;

use meridian_kernels::algo::Location;
use meridian_kernels::column::{Family, GeometryColumn, Parts};
use meridian_kernels::cuda::{BuiltCaps, DeviceColumn, DeviceIndex};
use meridian_kernels::index::SpatialIndex;

use crate::ffi;

fn location(code: u32) -> Option<Location> {
    match code {
        0 => Some(Location::Interior),
        1 => Some(Location::Boundary),
        2 => Some(Location::Exterior),
        _ => None,
    }
}

/// Where the device reads a host slice: the slice itself.
fn in_place(bytes: &[u8]) -> Result<u64, Infallible> {
    Ok(bytes.as_ptr() as u64)
}

/// What the device measures of one row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measures {
    /// `area`.
    pub area: f64,
    /// `length`.
    pub length: f64,
    /// `bbox`: min x, min y, max x, max y.
    pub bbox: [f64; 4],
    /// `centroid` (NaN for empties).
    pub centroid: (f64, f64),
    /// `npoints`.
    pub npoints: f64,
}

/// The named predicates and distance of a pair, as the device computes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pair {
    /// `intersects(a, b)`.
    pub intersects: bool,
    /// `contains(a, b)`.
    pub contains: bool,
    /// `covers(a, b)`.
    pub covers: bool,
    /// `touches(a, b)`.
    pub touches: bool,
    /// `disjoint(a, b)`.
    pub disjoint: bool,
    /// `dwithin(a, b, dist)`.
    pub dwithin: bool,
    /// `distance(a, b)`.
    pub distance: f64,
}

/// A column as the device library reads it, pointing at the column's arrays (no copy).
#[derive(Debug)]
pub struct HostColumn<'a> {
    col: &'a GeometryColumn,
    dev: DeviceColumn,
}

impl<'a> HostColumn<'a> {
    /// The device's view of `col`.
    pub fn new(col: &'a GeometryColumn) -> HostColumn<'a> {
        let Ok(dev) = DeviceColumn::place(col, &mut in_place);
        HostColumn { col, dev }
    }

    /// The column.
    pub fn column(&self) -> &GeometryColumn {
        self.col
    }

    /// The measures of `row`; `None` for a null row.
    pub fn measures(&self, row: usize) -> Option<Measures> {
        let mut out = [0.0f64; 9];
        // SAFETY: `dev` points at `col`'s arrays, borrowed for 'a and alive; the C function
        // reads row `row` only after checking it against `rows` (out-of-range rows are null),
        // and writes 9 doubles to `out`.
        let ok = unsafe { ffi::mr_host_measures(&self.dev, row as u64, out.as_mut_ptr()) };
        (ok == 1).then_some(Measures {
            area: out[0],
            length: out[1],
            bbox: [out[2], out[3], out[4], out[5]],
            centroid: (out[6], out[7]),
            npoints: out[8],
        })
    }

    /// Where `p` lies relative to `row`; `None` for a null row.
    pub fn locate(&self, row: usize, p: (f64, f64)) -> Option<Location> {
        // SAFETY: as in `measures`; the function only reads.
        location(unsafe { ffi::mr_host_locate_point(&self.dev, row as u64, p.0, p.1) })
    }

    /// The predicates and distance of (`self[a]`, `other[b]`); `None` when a row is null.
    pub fn pair(&self, a: usize, other: &HostColumn<'_>, b: usize, dist: f64) -> Option<Pair> {
        let mut preds = [0u8; 6];
        let mut distance = 0.0;
        // SAFETY: both descriptions point at live, borrowed columns; rows are checked by the
        // callee; it writes 6 bytes to `preds` and one double to `distance`.
        let ok = unsafe {
            ffi::mr_host_pair(
                &self.dev,
                a as u64,
                &other.dev,
                b as u64,
                dist,
                preds.as_mut_ptr(),
                &mut distance,
            )
        };
        (ok == 1).then_some(Pair {
            intersects: preds[0] != 0,
            contains: preds[1] != 0,
            covers: preds[2] != 0,
            touches: preds[3] != 0,
            disjoint: preds[4] != 0,
            dwithin: preds[5] != 0,
            distance,
        })
    }

    /// The DE-9IM matrix of (`self[a]`, `other[b]`), row-major, `-1` for F; `None` when a row
    /// is null or empty.
    pub fn relate(&self, a: usize, other: &HostColumn<'_>, b: usize) -> Option<[i32; 9]> {
        let mut out = [0i32; 9];
        // SAFETY: as in `pair`; it writes 9 ints to `out`.
        let ok = unsafe { ffi::mr_host_relate(&self.dev, a as u64, &other.dev, b as u64, out.as_mut_ptr()) };
        (ok == 1).then_some(out)
    }
}

/// A construction the device builds (`kernels/cuda/construct.cuh`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Construct {
    /// `affine` with this matrix.
    Affine([f64; 6]),
    /// `simplify` with this tolerance.
    Simplify(f64),
}

/// Why a device construction failed (`MR_BUILD_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// A mapped coordinate is not finite or beyond ±1e150.
    NonFinite,
    /// The slot was smaller than the construction.
    TooLarge,
}

/// What the device built: the family and its parts → rings → coordinates, read straight from
/// the slot's arrays.
#[derive(Clone, Debug, PartialEq)]
pub struct Built {
    /// The family.
    pub family: Family,
    /// Parts → rings → coordinates.
    pub parts: Parts,
}

impl HostColumn<'_> {
    /// `op` of `row` built in a slot with capacities `caps`: `None` for a null row.
    pub fn construct(&self, row: usize, op: Construct, caps: BuiltCaps) -> Option<Result<Built, BuildError>> {
        // SAFETY: pure functions of the capacities.
        let bytes = unsafe { ffi::mr_host_simplify_work_bytes(&caps) + ffi::mr_host_built_bytes(&caps) };
        let mut scratch = vec![0u64; usize::try_from(bytes.div_ceil(8)).ok()?];
        let (code, m) = match op {
            Construct::Affine(m) => (0, m),
            Construct::Simplify(t) => (1, [t, 0.0, 0.0, 0.0, 0.0, 0.0]),
        };
        let mut out = DeviceColumn::default();
        // SAFETY: `dev` points at the borrowed column; `scratch` is 8-aligned and holds the
        // work area and one slot for `caps` (the sizes the C++ itself computed); `m` holds six
        // doubles; `out` is written with the slot's column, which points into `scratch`.
        let r = unsafe {
            ffi::mr_host_construct(
                &self.dev,
                row as u64,
                code,
                m.as_ptr(),
                &caps,
                scratch.as_mut_ptr().cast(),
                &mut out,
            )
        };
        match r {
            -1 => return None,
            0 => {}
            1 => return Some(Err(BuildError::NonFinite)),
            _ => return Some(Err(BuildError::TooLarge)),
        }
        // SAFETY: the slot's column points into `scratch`, alive here; its one row's offsets
        // are within the arrays the construction wrote (the caller compares them with the CPU).
        let built = unsafe { read_row(&out) };
        Some(Ok(built))
    }
}

/// The device's sizes for capacities `caps`: simplify's work area and one slot, in bytes.
pub fn slot_bytes(caps: BuiltCaps) -> (u64, u64) {
    // SAFETY: pure functions of the capacities.
    unsafe { (ffi::mr_host_simplify_work_bytes(&caps), ffi::mr_host_built_bytes(&caps)) }
}

/// Row 0 of a one-row column the device built.
///
/// # Safety
/// `c` must describe live arrays in the nested layout holding a valid row 0.
unsafe fn read_row(c: &DeviceColumn) -> Built {
    let at = |p: u64, i: u32| -> u32 {
        // SAFETY: the caller's contract: offset arrays hold every index the row refers to.
        unsafe { *(p as *const u32).add(i as usize) }
    };
    let coord = |i: u32| -> (f64, f64) {
        // SAFETY: as above, for the coordinate arrays.
        unsafe { (*(c.x as *const f64).add(i as usize), *(c.y as *const f64).add(i as usize)) }
    };
    // SAFETY: the row's kind byte.
    let kind = unsafe { *(c.kinds as *const u8) };
    let family = Family::from_id(kind).unwrap_or(Family::Point);
    let (p0, p1) = (at(c.geom_offsets, 0), at(c.geom_offsets, 1));
    let parts = (p0..p1)
        .map(|p| {
            (at(c.part_offsets, p)..at(c.part_offsets, p + 1))
                .map(|r| (at(c.ring_offsets, r)..at(c.ring_offsets, r + 1)).map(coord).collect())
                .collect()
        })
        .collect();
    Built { family, parts }
}

/// An index as the device library reads it, pointing at the index's arrays.
#[derive(Debug)]
pub struct HostIndex<'a> {
    index: &'a SpatialIndex,
    dev: DeviceIndex,
}

impl<'a> HostIndex<'a> {
    /// The device's view of `index`.
    pub fn new(index: &'a SpatialIndex) -> HostIndex<'a> {
        let Ok(dev) = DeviceIndex::place(index, &mut in_place);
        HostIndex { index, dev }
    }

    /// `EdgeSlabs::locate` on the device; `None` for a part past the index.
    pub fn slabs_locate(&self, part: usize, p: (f64, f64)) -> Option<Location> {
        if part >= self.index.slabs().parts() {
            return None;
        }
        // SAFETY: `dev` points at the index's live, borrowed arrays; `part` is in range.
        location(unsafe { ffi::mr_host_slabs_locate(&self.dev, part as u64, p.0, p.1) })
    }
}

/// The device's exact orientation test.
pub fn orient(a: (f64, f64), b: (f64, f64), c: (f64, f64)) -> f64 {
    // SAFETY: a pure function of its arguments.
    unsafe { ffi::mr_host_orient(a.0, a.1, b.0, b.1, c.0, c.1) }
}

/// The device's `hypot`.
pub fn hypot(x: f64, y: f64) -> f64 {
    // SAFETY: a pure function of its arguments.
    unsafe { ffi::mr_host_hypot(x, y) }
}
