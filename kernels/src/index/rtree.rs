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

/// Deepest stack any query can need: at most `node_size - 1` pending siblings per internal
/// level plus the node being expanded. With `node_size` clamped to 2..=64, a tree of up to
/// 2^32 items has few enough levels to fit (64: 6 levels × 63 + 1 = 379; 2: 32 × 1 + 1).
const STACK: usize = 512;

impl FlatIndex {
    /// Builds the tree over `(box, id)` items with `node_size` children per node (clamped
    /// to 2..=64). Items whose box is NaN (empty geometries) are left out: nothing can hit them.
    pub fn build(items: &[(Rect, u32)], node_size: usize) -> FlatIndex {
        let m = node_size.clamp(2, 64);
        let items: Vec<(Rect, u32)> = items.iter().copied().filter(|(r, _)| !r.is_nan()).collect();
        let n = items.len();
        if n == 0 {
            return FlatIndex { node_size: m as u32, ..Default::default() };
        }
        // Sort-tile-recursive, level by level: each level is tiled (vertical slices by x
        // centre, each sorted by y centre) and then grouped `m` at a time into its parents.
        let mut level: Vec<(Rect, u32, u32)> = items.iter().map(|&(r, id)| (r, id, 0)).collect();
        str_sort(&mut level, m);
        let mut idx = FlatIndex {
            node_size: m as u32,
            leaves: n as u32,
            boxes: level.iter().map(|l| l.0).collect(),
            start: level.iter().map(|l| l.1).collect(),
            end: level.iter().map(|l| l.2).collect(),
        };
        let (mut lo, mut hi) = (0usize, n);
        while hi - lo > 1 {
            level.clear();
            let mut k = lo;
            while k < hi {
                let e = (k + m).min(hi);
                let b = idx.boxes[k..e].iter().fold(Rect::NAN, |acc, r| acc.union(r));
                level.push((b, k as u32, e as u32));
                k = e;
            }
            str_sort(&mut level, m);
            idx.boxes.extend(level.iter().map(|l| l.0));
            idx.start.extend(level.iter().map(|l| l.1));
            idx.end.extend(level.iter().map(|l| l.2));
            (lo, hi) = (hi, idx.boxes.len());
        }
        idx
    }

    /// The deepest stack a query of this tree can need.
    pub(crate) fn max_stack(&self) -> usize {
        // Internal levels: count how often the node count shrinks by `node_size` to reach 1.
        let (mut n, mut levels) = (self.leaves as usize, 0);
        while n > 1 {
            n = n.div_ceil(self.node_size as usize);
            levels += 1;
        }
        levels * (self.node_size as usize - 1) + 1
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
        let r = *rect;
        // Bitwise `&` keeps the test branch-free; see `search_with`.
        self.search(
            |b| (b.min_x <= r.max_x) & (r.min_x <= b.max_x) & (b.min_y <= r.max_y) & (r.min_y <= b.max_y),
            &mut f,
        );
    }

    /// Like [`FlatIndex::query`] with `rect` grown by `dist` on every side.
    pub fn query_within(&self, rect: &Rect, dist: f64, f: impl FnMut(u32)) {
        self.query(&rect.expand(dist), f);
    }

    /// Calls `f` with the id of every item whose box contains `p`.
    #[inline]
    pub fn query_point(&self, p: Xy, mut f: impl FnMut(u32)) {
        let (x, y) = p;
        self.search(|b| (b.min_x <= x) & (x <= b.max_x) & (b.min_y <= y) & (y <= b.max_y), &mut f);
    }

    #[inline]
    fn search(&self, hit: impl Fn(&Rect) -> bool, f: &mut impl FnMut(u32)) {
        // Small trees (the common case) get a small stack: zeroing the full worst-case
        // array costs more than a whole point query.
        if self.max_stack() <= 64 {
            self.search_with(&mut [0u32; 64], &hit, f);
        } else {
            self.search_with(&mut [0u32; STACK], &hit, f);
        }
    }

    #[inline]
    fn search_with(&self, stack: &mut [u32], hit: &impl Fn(&Rect) -> bool, f: &mut impl FnMut(u32)) {
        let Some(root) = self.boxes.len().checked_sub(1) else { return };
        if !hit(&self.boxes[root]) {
            return;
        }
        if root < self.leaves as usize {
            f(self.start[root]);
            return;
        }
        stack[0] = root as u32;
        let mut top = 1;
        while top > 0 {
            top -= 1;
            let k = stack[top] as usize;
            let (s, e) = (self.start[k] as usize, self.end[k] as usize);
            let leaves = s < self.leaves as usize;
            for c in s..e {
                if hit(&self.boxes[c]) {
                    if leaves {
                        f(self.start[c]);
                    } else {
                        stack[top] = c as u32;
                        top += 1;
                    }
                }
            }
        }
    }
}

/// Orders one level's entries in sort-tile-recursive order for grouping `m` at a time.
fn str_sort(level: &mut [(Rect, u32, u32)], m: usize) {
    let cx = |r: &Rect| r.min_x + r.max_x;
    let cy = |r: &Rect| r.min_y + r.max_y;
    level.sort_by(|a, b| cx(&a.0).total_cmp(&cx(&b.0)));
    let groups = level.len().div_ceil(m);
    let slices = (groups as f64).sqrt().ceil() as usize;
    for slice in level.chunks_mut(slices * m) {
        slice.sort_by(|a, b| cy(&a.0).total_cmp(&cy(&b.0)));
    }
}
