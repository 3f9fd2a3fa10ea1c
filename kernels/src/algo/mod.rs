//! Geometry algorithms as plain functions over [`Geom`](crate::column::Geom) rows.
//!
//! One module per family of work. Conventions shared by all of them:
//! - a null row never reaches these functions (callers hold `Option<Geom>`); an **empty**
//!   geometry does, and each function says what it gives for one;
//! - orientation and point-on-segment decisions are **exact** for every finite coordinate
//!   (`orient`: a filter, Shewchuk's adaptive predicate from the `robust` crate, and exact
//!   integer products where it could underflow); anything that constructs a new coordinate (crossing points, distances,
//!   centroids) is ordinary f64 arithmetic with bounded error.

mod distance;
mod locate;
mod measure;
mod orient;
mod predicates;
mod relate;
mod transform;

pub use distance::{distance, dwithin, hypot, segment_distance, PointsAgainst};
pub(crate) use locate::locate_by_crossings;
pub use locate::{edge_crossing, locate_in_ring, locate_point, Location};
pub use measure::{area, bbox, bbox_of_part, centroid, length, Rect};
pub use orient::{exact_sign, orient};
pub(crate) use orient::{CCW_ERR_BOUND_A, UNDERFLOW_SLACK};
pub use predicates::{contains, covered_by, covers, disjoint, intersects, touches, within};
pub use relate::{relate, IntersectionMatrix};
pub use transform::{affine, simplify, Affine};

/// A coordinate pair.
pub type Xy = (f64, f64);
