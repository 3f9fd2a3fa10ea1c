//! A packed R-tree (sort-tile-recursive), stored as flat arrays.

use crate::algo::{Rect, Xy};

/// A static R-tree over boxes, packed bottom-up with sort-tile-recursive order.
///
/// Layout (all nodes in one array, leaves first, root last): `boxes[k]` is node `k`'s box;
/// for a leaf (`k < leaves`) `start[k]` is the item id it holds; for an internal node its
/// children are the nodes `start[k]..end[k]`. Nothing else is needed to query, so the four
/// arrays can be copied to a device as they are.
///
/// ```
/// use meridian_kernels::{algo::Rect, index::FlatIndex};
/// let r = |x: f64| Rect { min_x: x, min_y: 0.0, max_x: x + 1.0, max_y: 1.0 };
/// let idx = FlatIndex::build(&[(r(0.0), 10), (r(5.0), 11), (r(9.0), 12)], 2);
/// let mut hits = Vec::new();
/// idx.query(&Rect { min_x: 4.5, min_y: 0.5, max_x: 9.5, max_y: 0.5 }, |id| hits.push(id));
/// hits.sort();
/// assert_eq!(hits, [11, 12]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct FlatIndex {
    node_size: u32,
    leaves: u32,
    boxes: Vec<Rect>,
    start: Vec<u32>,
    end: Vec<u32>,
}

/// Deepest stack a query can need: at most `node_size - 1` pending siblings per level, and
/// with `node_size` clamped to 2..=64 a u32-sized tree has few enough levels to fit.
const STACK: usize = 512;

impl FlatIndex {
    /// Builds the tree over `(box, id)` items with `node_size` children per node (clamped
    /// to 2..=64). Items whose box is NaN (empty geometries) are left out: nothing can hit them.
    pub fn build(items: &[(Rect, u32)], node_size: usize) -> FlatIndex {
        let m = node_size.clamp(2, 64);
        let mut items: Vec<(Rect, u32)> = items.iter().copied().filter(|(r, _)| !r.is_nan()).collect();
        let n = items.len();
        if n == 0 {
            return FlatIndex { node_size: m as u32, ..Default::default() };
        }
        // Sort-tile-recursive: vertical slices by x centre, each sorted by y centre.
        let cx = |r: &Rect| r.min_x + r.max_x;
        let cy = |r: &Rect| r.min_y + r.max_y;
        items.sort_by(|a, b| cx(&a.0).total_cmp(&cx(&b.0)));
        let leaf_nodes = n.div_ceil(m);
        let slices = (leaf_nodes as f64).sqrt().ceil() as usize;
        for slice in items.chunks_mut(slices * m) {
            slice.sort_by(|a, b| cy(&a.0).total_cmp(&cy(&b.0)));
        }
        let mut idx = FlatIndex {
            node_size: m as u32,
            leaves: n as u32,
            boxes: items.iter().map(|i| i.0).collect(),
            start: items.iter().map(|i| i.1).collect(),
            end: vec![0; n],
        };
        let (mut lo, mut hi) = (0usize, n);
        while hi - lo > 1 {
            let mut k = lo;
            while k < hi {
                let e = (k + m).min(hi);
                let b = idx.boxes[k..e].iter().fold(Rect::NAN, |acc, r| acc.union(r));
                idx.boxes.push(b);
                idx.start.push(k as u32);
                idx.end.push(e as u32);
                k = e;
            }
            (lo, hi) = (hi, idx.boxes.len());
        }
        idx
    }

    /// Number of items indexed.
    pub fn len(&self) -> usize {
        self.leaves as usize
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.leaves == 0
    }

    /// Children per node.
    pub fn node_size(&self) -> usize {
        self.node_size as usize
    }

    /// Node boxes, leaves first and the root last.
    pub fn boxes(&self) -> &[Rect] {
        &self.boxes
    }

    /// For leaves the item id; for internal nodes the first child.
    pub fn starts(&self) -> &[u32] {
        &self.start
    }

    /// For internal nodes one past the last child (unused for leaves).
    pub fn ends(&self) -> &[u32] {
        &self.end
    }

    /// Calls `f` with the id of every item whose box meets `rect` (closed boxes), in no
    /// particular order.
    #[inline]
    pub fn query(&self, rect: &Rect, mut f: impl FnMut(u32)) {
        self.search(|b| b.intersects(rect), &mut f);
    }

    /// Like [`FlatIndex::query`] with `rect` grown by `dist` on every side.
    pub fn query_within(&self, rect: &Rect, dist: f64, f: impl FnMut(u32)) {
        self.query(&rect.expand(dist), f);
    }

    /// Calls `f` with the id of every item whose box contains `p`.
    #[inline]
    pub fn query_point(&self, p: Xy, mut f: impl FnMut(u32)) {
        self.search(|b| b.contains_point(p), &mut f);
    }

    #[inline]
    fn search(&self, hit: impl Fn(&Rect) -> bool, f: &mut impl FnMut(u32)) {
        let Some(root) = self.boxes.len().checked_sub(1) else { return };
        let mut stack = [0u32; STACK];
        let mut top = 0;
        if hit(&self.boxes[root]) {
            stack[0] = root as u32;
            top = 1;
        }
        while top > 0 {
            top -= 1;
            let k = stack[top] as usize;
            if k < self.leaves as usize {
                f(self.start[k]);
                continue;
            }
            for c in self.start[k]..self.end[k] {
                if hit(&self.boxes[c as usize]) {
                    stack[top] = c;
                    top += 1;
                }
            }
        }
    }
}
