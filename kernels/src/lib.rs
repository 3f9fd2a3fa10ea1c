//! Geometry kernels for meridian: GeoArrow-style geometry columns, readers and writers,
//! the geometry algorithms, and the flat spatial index.
//!
//! Everything here is plain functions over borrowed column views ([`column::ColumnView`]);
//! nothing knows about rings, executors or devices. The arrays a column and an index are
//! made of are plain old data, so the same bytes can be copied to a device unchanged.
//!
//! ```
//! use meridian_kernels::{algo, column::ColumnBuilder};
//! let mut b = ColumnBuilder::new();
//! b.push_polygon(&[&[(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0), (0.0, 0.0)]])?;
//! let col = b.finish();
//! let square = col.get(0).unwrap();
//! assert_eq!(algo::area(&square), 16.0);
//! assert_eq!(algo::locate_point(&square, (4.0, 1.0)), algo::Location::Boundary);
//! # Ok::<(), meridian_kernels::column::ColumnError>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

pub use meridian_bytecode as bytecode;

pub mod algo;
pub mod column;
pub mod cuda;
pub mod index;
pub mod interp;
pub mod io;
#[cfg(feature = "jit")]
pub mod jit;
