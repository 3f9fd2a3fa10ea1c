//! A points column rewritten in place: a service's request brings a point or a few, and a
//! request path that builds a column for them allocates several buffers a request (the
//! coordinates, their Arrow wrappers, the validity) where reusing the last request's column
//! allocates nothing.

use arrow_buffer::ScalarBuffer;

use super::build::in_range;
use super::{ColumnError, Family, GeometryColumn, Layout};

impl GeometryColumn {
    /// Makes this column the points `pts`, every row valid — as a [`super::ColumnBuilder`]
    /// given them would, equal to its column — reusing the column's memory when it is a
    /// points column of as many rows whose coordinate buffers nothing else shares (else new
    /// buffers are allocated). On a coordinate that is not finite, or beyond
    /// ±[`MAX_COORD`](super::MAX_COORD), fails and leaves the column as it was.
    pub fn refill_points(&mut self, pts: &[(f64, f64)]) -> Result<(), ColumnError> {
        if let Some(&(x, y)) = pts.iter().find(|&&(x, y)| !in_range(x, y)) {
            return Err(ColumnError::NonFinite { x, y });
        }
        let n = pts.len();
        let reuse = n > 0 && self.rows == n && self.layout() == Layout::Points;
        if !(reuse
            && overwrite(&mut self.x, pts.iter().map(|p| p.0))
            && overwrite(&mut self.y, pts.iter().map(|p| p.1)))
        {
            self.x = pts.iter().map(|p| p.0).collect::<Vec<_>>().into();
            self.y = pts.iter().map(|p| p.1).collect::<Vec<_>>().into();
        }
        self.rows = n;
        self.family = (n > 0).then_some(Family::Point);
        self.kinds.clear();
        for v in [&mut self.geom_offsets, &mut self.part_offsets, &mut self.ring_offsets] {
            v.clear();
        }
        self.validity.clear();
        self.validity.resize(n.div_ceil(64), u64::MAX);
        if !n.is_multiple_of(64) {
            if let Some(last) = self.validity.last_mut() {
                *last = (1u64 << (n % 64)) - 1;
            }
        }
        Ok(())
    }
}

/// Writes `values` over `buffer`'s when nothing else holds its memory and that memory is the
/// allocator's (an Arrow array's or a mapped file's may be read-only); false when it did not.
fn overwrite(buffer: &mut ScalarBuffer<f64>, values: impl ExactSizeIterator<Item = f64>) -> bool {
    let inner = buffer.inner();
    // `capacity` is 0 for memory Arrow did not allocate (custom, foreign, mapped).
    if inner.strong_count() != 1 || inner.capacity() == 0 || values.len() != buffer.len() {
        return false;
    }
    let ptr = inner.as_ptr().cast::<f64>().cast_mut();
    for (i, v) in values.enumerate() {
        // SAFETY: `buffer` is borrowed mutably and its `Buffer` is the only handle on the
        // allocation (strong count 1; Arrow hands out no weak ones), so no reference to these
        // bytes is alive; the memory is a heap allocation Arrow owns (non-zero capacity), so
        // writable; the pointer is the buffer's own raw data pointer (not derived from a
        // shared reference), aligned for f64 as the buffer is typed, and `i < len`.
        unsafe { ptr.add(i).write(v) };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::column::ColumnBuilder;

    fn built(pts: &[(f64, f64)]) -> GeometryColumn {
        let mut b = ColumnBuilder::new();
        for &(x, y) in pts {
            b.push_point(x, y).unwrap();
        }
        b.finish()
    }

    #[test]
    fn a_refilled_column_equals_the_built_one_and_keeps_its_memory() {
        let mut col = built(&[(1.0, 2.0)]);
        let before = col.coordinates().0.inner().as_ptr();
        for pts in [vec![(3.0, 4.0)], vec![(-5.5, 6.25)]] {
            col.refill_points(&pts).unwrap();
            assert_eq!(col, built(&pts));
            assert_eq!(col.coordinates().0.inner().as_ptr(), before, "the same memory, rewritten");
        }
        // Other sizes (65 rows: a second validity word) get new buffers, still equal.
        let many: Vec<(f64, f64)> = (0..65).map(|i| (i as f64, -(i as f64))).collect();
        for pts in [many.clone(), vec![], vec![(0.0, 0.0)], many] {
            col.refill_points(&pts).unwrap();
            assert_eq!(col, built(&pts));
            assert_eq!(col.view().family(), built(&pts).view().family());
        }
    }

    #[test]
    fn shared_coordinates_are_not_written_and_bad_points_change_nothing() {
        let mut col = built(&[(1.0, 2.0)]);
        let shared = col.clone();
        col.refill_points(&[(7.0, 8.0)]).unwrap();
        assert_eq!(shared, built(&[(1.0, 2.0)]), "the clone sharing the buffers is untouched");
        assert_eq!(col, built(&[(7.0, 8.0)]));
        let err = col.refill_points(&[(f64::NAN, 0.0)]).unwrap_err();
        assert!(matches!(err, ColumnError::NonFinite { .. }));
        assert_eq!(col, built(&[(7.0, 8.0)]));
        // A nested column (a polygon's) becomes points.
        let mut b = ColumnBuilder::new();
        let ring = geo_types::LineString::from(vec![(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]);
        b.push_geometry(&geo_types::Polygon::new(ring, vec![])).unwrap();
        let mut poly = b.finish();
        poly.refill_points(&[(1.0, 1.0)]).unwrap();
        assert_eq!(poly, built(&[(1.0, 1.0)]));
    }
}
