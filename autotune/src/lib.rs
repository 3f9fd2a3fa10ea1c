//! Autotune store for meridian.
//!
//! This crate will own autotune keys and records, the persisted, checksummed store (temp file,
//! fsync, rename, directory fsync) and paired speculation races with their verdicts. It knows
//! nothing of bytecode or hardware (see `docs/architecture.md`).
//!
//! It is empty until the autotune issue lands; no placeholder API is published ahead of it.
#![deny(unsafe_op_in_unsafe_fn)]
