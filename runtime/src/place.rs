//! Where a job runs under `auto`: the CPU or the GPU, by a cost model per program class
//! rather than one row count for every program.
//!
//! A job on the GPU pays a fixed round trip, the upload of whatever of its inputs is not
//! resident on the device yet, and the download of its outputs; then far less per row than a
//! CPU worker. The CPU pays per row, divided over its workers. The crossover — the rows at
//! which the two are equal — therefore depends on what the program does a row (its class and
//! length), how many workers the CPU has, and what is already on the device: a join over
//! resident polygons goes to the GPU at a few thousand rows, arithmetic on fresh points on a
//! 16-core host hardly ever. The model is linear in rows, so once the GPU wins at some size it
//! wins at every larger one.
//!
//! The constants are estimates from the measurements named beside them, and only priors: once
//! a program's own jobs have measured its rate on the CPU or the GPU, that replaces the prior
//! for its side ([`PlaceInput::measured`]). `meridian bench placement` measures the crossovers
//! on a device. A `gpu_min_rows` set on the builder is a pin: it replaces the model, and is
//! never overridden.

use std::fmt;

use meridian_bytecode::{Opcode, VerifiedProgram};

/// A GPU job's fixed cost: the one-row round trip through the megakernel, p50, on an H200
/// (docs/benchmarks/2026-11-27-gpu-evidence.md).
pub const GPU_ROUND_TRIP_NS: f64 = 32_500.0;

/// Host ↔ device bytes a nanosecond: the first 100M-point join uploaded its points and index
/// in about 0.5 s more than the later ones (same evidence), about 5.8 GB/s.
pub const LINK_BYTES_PER_NS: f64 = 5.8;

/// What a program spends its rows on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProgramClass {
    /// Arithmetic over coordinates and outputs: no geometry op beyond `x`/`y`, no index.
    Arithmetic,
    /// Geometry measures and predicates row by row, no index probe.
    Geometry,
    /// Candidate loops over an index: joins.
    Join,
}

impl ProgramClass {
    /// The class of `program` (every op decided in one exhaustive match).
    pub fn of(program: &VerifiedProgram) -> ProgramClass {
        use Opcode::*;
        let mut class = ProgramClass::Arithmetic;
        for instr in program.instrs() {
            let this = match instr.opcode() {
                Halt | Jmp | Jt | Jf | Load | Const | MovF | MovB | MovG | SelectF | SelectB | SelectG
                | Add | Sub | Mul | Div | Min | Max | Abs | Neg | Sqrt | Lt | Le | Gt | Ge | Eq | Ne
                | And | Or | Not | IsNullF | IsNullG | IsEmpty | X | Y | StoreF | StoreB | Emit | Count
                | Sum => ProgramClass::Arithmetic,
                Area | Length | Bbox | Centroid | NPoints | Intersects | Contains | Within | Covers
                | CoveredBy | Touches | Disjoint | DWithin | Distance | Affine | Simplify | StoreG => {
                    ProgramClass::Geometry
                }
                Probe | ProbeDist | CNext => ProgramClass::Join,
            };
            class = class.max_with(this);
        }
        class
    }

    fn max_with(self, other: ProgramClass) -> ProgramClass {
        let rank = |c| match c {
            ProgramClass::Arithmetic => 0,
            ProgramClass::Geometry => 1,
            ProgramClass::Join => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    /// ns a row on one CPU worker (interpreter) and on the whole GPU, for a program of
    /// `instrs` instructions.
    ///
    /// - Arithmetic: 4.7 ns an instruction on the CPU (`benches/mercator.masm`, 62
    ///   instructions, 290 ns a row through the interpreter: docs/benchmarks/2026-11-27-jit.md);
    ///   on the GPU 0.05 ns an instruction (the join's rate below over its ~70 instructions a
    ///   row), at least 0.5 ns (reading a point at a fraction of the memory bandwidth).
    /// - Join: 175 ns a row a worker (100M points × countries on 16 workers in 1.095 s) and
    ///   3.5 ns on the GPU (0.352 s) — the H200 evidence.
    /// - Geometry: taken as the join's (the same point-in-polygon and distance kernels,
    ///   without the index), not measured on its own yet.
    pub fn row_ns(self, instrs: usize) -> (f64, f64) {
        match self {
            ProgramClass::Arithmetic => (4.7 * instrs as f64, (0.05 * instrs as f64).max(0.5)),
            ProgramClass::Geometry | ProgramClass::Join => (175.0, 3.5),
        }
    }

    /// Its name in reasons.
    pub fn name(self) -> &'static str {
        match self {
            ProgramClass::Arithmetic => "arithmetic",
            ProgramClass::Geometry => "geometry",
            ProgramClass::Join => "join",
        }
    }
}

/// What the placement of one job is decided from.
#[derive(Clone, Copy, Debug)]
pub struct PlaceInput {
    /// The program's class.
    pub class: ProgramClass,
    /// Its instructions.
    pub instrs: usize,
    /// The job's rows.
    pub rows: usize,
    /// CPU workers.
    pub workers: usize,
    /// Bytes of its inputs not yet on the device (0 when all are resident).
    pub upload_bytes: u64,
    /// Bytes of its outputs read back.
    pub download_bytes: u64,
    /// The builder's `gpu_min_rows`, a pin that replaces the model.
    pub pinned_min_rows: Option<usize>,
    /// What the program's own jobs measured, ns a row: on the CPU a whole job's (its workers
    /// included), on the GPU past the round trip. Each replaces its side's prior.
    pub measured: (Option<f64>, Option<f64>),
}

/// Why a job went where it did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PlaceReason {
    /// The builder's `gpu_min_rows`.
    Pinned {
        /// The pin.
        min_rows: usize,
        /// The job's rows.
        rows: usize,
    },
    /// The cost model's estimates.
    Model {
        /// The program's class.
        class: ProgramClass,
        /// The job's rows.
        rows: usize,
        /// Estimated ns on the CPU's workers.
        cpu_ns: f64,
        /// Estimated ns on the GPU, transfers included.
        gpu_ns: f64,
        /// Whether its inputs were all on the device already.
        resident: bool,
        /// Whether the CPU's and the GPU's rates were the program's measured ones.
        measured: (bool, bool),
    },
}

impl fmt::Display for PlaceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PlaceReason::Pinned { min_rows, rows } if rows >= min_rows => {
                write!(f, "{rows} rows, at least the {min_rows} set to go to the GPU")
            }
            PlaceReason::Pinned { min_rows, rows } => {
                write!(f, "{rows} rows, fewer than the {min_rows} set to go to the GPU")
            }
            PlaceReason::Model { class, rows, cpu_ns, gpu_ns, resident, measured } => write!(
                f,
                "{} program, {rows} rows: about {} on the CPU{}, {} on the GPU{}{}",
                class.name(),
                micros(cpu_ns),
                if measured.0 { " (measured)" } else { "" },
                micros(gpu_ns),
                if measured.1 { " (measured)" } else { "" },
                if resident { " (inputs resident)" } else { " (inputs uploaded)" }
            ),
        }
    }
}

fn micros(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.0} µs", ns / 1e3)
    }
}

/// Whether the job goes to the GPU, and why.
pub fn prefer_gpu(p: &PlaceInput) -> (bool, PlaceReason) {
    if let Some(min_rows) = p.pinned_min_rows {
        return (p.rows >= min_rows, PlaceReason::Pinned { min_rows, rows: p.rows });
    }
    let (cpu_row, gpu_row) = p.class.row_ns(p.instrs);
    let cpu_row = p.measured.0.unwrap_or(cpu_row / p.workers.max(1) as f64);
    let gpu_row = p.measured.1.unwrap_or(gpu_row);
    let rows = p.rows as f64;
    let cpu_ns = rows * cpu_row;
    let link = (p.upload_bytes as f64 + p.download_bytes as f64) / LINK_BYTES_PER_NS;
    let gpu_ns = GPU_ROUND_TRIP_NS + link + rows * gpu_row;
    let reason = PlaceReason::Model {
        class: p.class,
        rows: p.rows,
        cpu_ns,
        gpu_ns,
        resident: p.upload_bytes == 0,
        measured: (p.measured.0.is_some(), p.measured.1.is_some()),
    };
    (gpu_ns < cpu_ns, reason)
}

/// The fewest rows at which the GPU wins for a program of `class` and `instrs` instructions on
/// `workers` workers, with `fixed` bytes uploaded once and `per_row` bytes a row moved up and
/// down; `None` when it never does (up to 2^40 rows). What `meridian info` prints.
pub fn crossover(
    class: ProgramClass,
    instrs: usize,
    workers: usize,
    fixed: u64,
    per_row: u64,
) -> Option<usize> {
    let wins = |rows: usize| {
        let bytes = fixed.saturating_add(per_row.saturating_mul(rows as u64));
        let input = PlaceInput {
            class,
            instrs,
            rows,
            workers,
            upload_bytes: bytes,
            download_bytes: 0,
            pinned_min_rows: None,
            measured: (None, None),
        };
        prefer_gpu(&input).0
    };
    let (mut lo, mut hi) = (1usize, 1usize << 40);
    if !wins(hi) {
        return None;
    }
    // Monotone in rows: the first win by bisection.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if wins(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn input(class: ProgramClass, rows: usize, workers: usize, resident: bool) -> PlaceInput {
        // Points: 16 bytes a row up; one f64 output: 9 bytes a row down. A join's polygons
        // and index: 2 MB more when not resident.
        let upload = if resident {
            0
        } else {
            16 * rows as u64 + if class == ProgramClass::Join { 2 << 20 } else { 0 }
        };
        PlaceInput {
            class,
            instrs: 12,
            rows,
            workers,
            upload_bytes: upload,
            download_bytes: 9 * rows as u64,
            pinned_min_rows: None,
            measured: (None, None),
        }
    }

    /// The fewest rows (a power of two) at which the GPU wins, up to 2^34.
    fn crossover(class: ProgramClass, workers: usize, resident: bool) -> Option<usize> {
        (0..35).map(|k| 1usize << k).find(|&rows| prefer_gpu(&input(class, rows, workers, resident)).0)
    }

    #[test]
    fn crossovers_differ_by_class_workers_and_residency() {
        use ProgramClass::*;
        // 16 workers: a join over resident polygons pays from a few thousand rows; uploaded,
        // later; arithmetic on uploaded points never (the link is slower than 16 workers).
        let join_resident = crossover(Join, 16, true).unwrap();
        let join_uploaded = crossover(Join, 16, false).unwrap();
        assert!((2048..=8192).contains(&join_resident), "{join_resident}");
        assert!(join_uploaded > join_resident, "{join_uploaded}");
        assert_eq!(crossover(Arithmetic, 16, false), None);
        // Resident points: arithmetic goes to the GPU, later than a join.
        let arith_resident = crossover(Arithmetic, 16, true).unwrap();
        assert!(arith_resident > join_resident, "{arith_resident}");
        // Two workers: everything crosses over sooner.
        assert!(crossover(Join, 2, true).unwrap() < join_resident);
        assert!(crossover(Arithmetic, 2, false).is_some());
    }

    #[test]
    fn the_crossover_is_where_the_decision_flips() {
        for (class, fixed, per_row) in [(ProgramClass::Join, 2 << 20, 25), (ProgramClass::Arithmetic, 0, 9)] {
            let n = super::crossover(class, 12, 4, fixed, per_row).unwrap();
            let at = |rows: usize| {
                let bytes = fixed + per_row * rows as u64;
                let input =
                    PlaceInput { upload_bytes: bytes, download_bytes: 0, ..input(class, rows, 4, true) };
                prefer_gpu(&input).0
            };
            assert!(at(n) && !at(n - 1), "{class:?} at {n}");
        }
        assert_eq!(super::crossover(ProgramClass::Arithmetic, 12, 16, 0, 25), None);
    }

    #[test]
    fn measured_rates_replace_the_priors() {
        // The prior sends 1M rows of a join over resident polygons to the GPU on 16 workers...
        let base = input(ProgramClass::Join, 1 << 20, 16, true);
        assert!(prefer_gpu(&base).0);
        // ...but this program measured 2 ns a row on the CPU and 8 on the GPU: the CPU.
        let (gpu, why) = prefer_gpu(&PlaceInput { measured: (Some(2.0), Some(8.0)), ..base });
        assert!(!gpu);
        let text = why.to_string();
        assert!(text.contains("on the CPU (measured)") && text.contains("on the GPU (measured)"), "{text}");
        // One side measured: the other keeps its prior.
        let (_, why) = prefer_gpu(&PlaceInput { measured: (None, Some(8.0)), ..base });
        let text = why.to_string();
        assert!(!text.contains("CPU (measured)") && text.contains("GPU (measured)"), "{text}");
    }

    #[test]
    fn a_pin_replaces_the_model_both_ways() {
        let pinned = |rows, min| {
            prefer_gpu(&PlaceInput {
                pinned_min_rows: Some(min),
                ..input(ProgramClass::Join, rows, 16, true)
            })
        };
        assert!(!pinned(1 << 30, usize::MAX).0);
        assert!(pinned(1, 0).0);
        let (gpu, why) = pinned(10, 100);
        assert!(!gpu);
        assert_eq!(why.to_string(), "10 rows, fewer than the 100 set to go to the GPU");
    }

    #[test]
    fn the_reason_names_the_class_the_estimates_and_the_residency() {
        let (gpu, why) = prefer_gpu(&input(ProgramClass::Join, 1 << 20, 16, true));
        assert!(gpu);
        let text = why.to_string();
        assert!(text.starts_with("join program, 1048576 rows: about 11.5 ms on the CPU"), "{text}");
        assert!(text.ends_with("(inputs resident)"), "{text}");
    }

    proptest! {
        #[test]
        fn once_the_gpu_wins_it_wins_at_every_larger_size(
            class in prop_oneof![Just(ProgramClass::Arithmetic), Just(ProgramClass::Geometry), Just(ProgramClass::Join)],
            instrs in 0usize..10_000,
            rows in 0usize..1 << 40,
            workers in 0usize..1024,
            up_row in 0u64..64,
            fixed in 0u64..1 << 30,
            down_row in 0u64..64,
            measured in (proptest::option::of(0.0f64..1e4), proptest::option::of(0.0f64..1e4)),
        ) {
            let at = |rows: usize| {
                prefer_gpu(&PlaceInput {
                    class,
                    instrs,
                    rows,
                    workers,
                    upload_bytes: fixed + up_row * rows as u64,
                    download_bytes: down_row * rows as u64,
                    pinned_min_rows: None,
                    measured,
                })
            };
            let (gpu, why) = at(rows);
            prop_assert!(!why.to_string().is_empty());
            if gpu {
                prop_assert!(at(rows.saturating_mul(2)).0);
            }
            // Nothing to do is never worth a round trip.
            prop_assert!(!at(0).0);
        }
    }
}
