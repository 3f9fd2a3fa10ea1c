//! The flat spatial index and the per-polygon accelerator.
//!
//! Both are a few flat arrays of plain old data, built on the host and usable unchanged on
//! a device: [`FlatIndex`] is a packed STR R-tree of boxes; [`EdgeSlabs`] cuts each polygon
//! into horizontal slabs listing the edges that cross them, so a point-in-polygon test reads
//! only a handful of edges; [`SpatialIndex`] puts the two together over a whole column
//! (what an `indexed` input carries).

mod grid;
mod rtree;
mod slabs;
mod spatial;

pub use grid::{CellClass, CellGrid};
pub use rtree::FlatIndex;
pub use slabs::EdgeSlabs;
pub use spatial::SpatialIndex;
