//! The device geometry library, called on the host: each function here runs the C++ of
//! `kernels/cuda/geom.cuh`, `relate.cuh` and `index.cuh` on a column's own arrays, so tests can
//! hold it against `meridian_kernels::algo`.

use std::convert::Infallible;

use meridian_kernels::algo::Location;
use meridian_kernels::column::GeometryColumn;
use meridian_kernels::cuda::{DeviceColumn, DeviceIndex};
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
