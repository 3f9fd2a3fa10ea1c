//! Autotune for meridian: what was learnt about running a pipeline fast, kept between runs.
//!
//! - [`key`]: what a measurement is about ([`Key`]: program, binding, variant family, adapter)
//!   and what was chosen ([`Record`]: parameters, timings, compile cost).
//! - [`store`]: the persisted store — one checksummed, versioned file, saved by temp file,
//!   fsync, rename and directory fsync under a file lock with read-merge-write, so processes
//!   saving at once keep every record; a damaged or future file is renamed aside with a
//!   warning, never a crash. Its file operations go through [`fs::Fs`], which tests make fail.
//! - [`speculation`]: the paired race's verdict (keep racing, adopt, reject) as a pure function
//!   of paired timings, noise and the speculative variant's one-time compile cost.
//!
//! The crate knows nothing of bytecode or hardware: keys arrive as strings and numbers.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod fs;
pub mod key;
pub mod speculation;
pub mod store;

pub use key::{Effect, Key, Load, Params, PendingRace, Record, Timing, VerdictNote};
pub use speculation::{effect, more_pairs, verdict, Pair, Policy, Verdict};
pub use store::{Opened, Store, StoreError, Warning};
