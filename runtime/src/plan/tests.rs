//! The planner's pure functions, table-tested.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
use super::*;
use proptest::prelude::*;

use Pressure::{Balanced, Empty, Light, Saturated};

#[test]
fn budgets_keep_cut_or_refuse() {
    use OutputKind::{Count, Hits, F64};
    let join: &[OutputKind] = &[Hits];
    let dense: &[OutputKind] = &[F64, Count];
    // (outputs, rows, capacity wanted, budget) -> capacity given, or the least bytes needed
    type Case<'a> = (&'a [OutputKind], usize, usize, Option<u64>, Result<usize, u64>);
    let table: &[Case<'_>] = &[
        (join, 1000, 1200, None, Ok(1200)),
        (join, 1000, 1200, Some(9600), Ok(1200)),
        // Cut to what fits, exactly.
        (join, 1000, 1200, Some(9599), Ok(1199)),
        (join, 1000, 1200, Some(800), Ok(100)),
        (join, 1000, 1200, Some(512), Ok(64)),
        // Below 64 slots: refused, naming the least that would do.
        (join, 1000, 1200, Some(511), Err(512)),
        // A job that asked for fewer than 64 keeps what it asked for as the floor.
        (join, 10, 8, Some(63), Err(64)),
        // Dense outputs cannot be cut.
        (dense, 1000, 0, Some(9016), Ok(0)),
        (dense, 1000, 0, Some(9015), Err(9016)),
        (&[F64, Hits, Hits], 100, 1000, Some(900 + 16 * 100), Ok(100)),
        (&[F64, Hits, Hits], 100, 1000, Some(900 + 16 * 63), Err(900 + 16 * 64)),
    ];
    for &(outputs, rows, capacity, budget, want) in table {
        let got = fit_budget(outputs, rows, capacity, budget);
        match (got, want) {
            (Ok((cap, bytes)), Ok(w)) => {
                assert_eq!(cap, w, "{outputs:?} {rows} {capacity} {budget:?}");
                assert!(budget.is_none_or(|b| bytes <= b));
            }
            (Err(e), Err(least)) => {
                assert_eq!(e.needed, least, "{outputs:?} {rows} {capacity} {budget:?}");
                assert!(e.to_string().contains("memory budget"), "{e}");
            }
            (got, want) => panic!("{outputs:?} {rows} {capacity} {budget:?}: {got:?}, not {want:?}"),
        }
    }
    assert!(rerun_fits(join, 1000, 1200, Some(9600)).is_ok());
    let e = rerun_fits(join, 1000, 1201, Some(9600)).unwrap_err();
    assert!(e.to_string().contains("the 1201 hits it produced"), "{e}");
}

#[test]
fn pressure_classes_and_their_bands() {
    // (previous, queued of 64) -> class
    let table = [
        (Empty, 0, Empty),
        (Saturated, 0, Empty),
        (Empty, 1, Light),
        (Empty, 15, Light),
        (Empty, 16, Balanced),
        (Empty, 47, Balanced),
        (Empty, 48, Saturated),
        (Empty, 64, Saturated),
        // Light is kept up to 3/8 (24), then balanced.
        (Light, 16, Light),
        (Light, 23, Light),
        (Light, 24, Balanced),
        // Balanced is kept down to 1/8 (8) and up to 7/8 (56).
        (Balanced, 8, Balanced),
        (Balanced, 7, Light),
        (Balanced, 48, Balanced),
        (Balanced, 55, Balanced),
        (Balanced, 56, Saturated),
        // Saturated is kept down to 5/8 (40).
        (Saturated, 40, Saturated),
        (Saturated, 39, Balanced),
        (Saturated, 10, Light),
    ];
    for (prev, queued, want) in table {
        assert_eq!(Pressure::classify(prev, queued, 64), want, "{prev:?} with {queued} of 64");
    }
}

fn cut(rows: usize, pressure: Pressure, pinned: Option<usize>) -> (Topology, usize) {
    let c = CutInput {
        rows,
        inline_rows: 64,
        chunk_rows: 16384,
        pinned,
        workers: 4,
        max_chunks: 512,
        spread: None,
        pressure,
    };
    let (t, size, _) = cpu_topology(&c);
    (t, size)
}

#[test]
fn the_same_program_at_1_10k_and_1m_rows_takes_three_topologies() {
    assert_eq!(cut(1, Light, None), (Topology::Inline, 0));
    assert_eq!(cut(64, Empty, None), (Topology::Inline, 0));
    // 10k rows: one worker when others are busy, split over idle ones.
    assert_eq!(cut(10_000, Light, None), (Topology::OneWorker, 16384));
    assert_eq!(cut(10_000, Empty, None), (Topology::Split { chunks: 3 }, 4096));
    assert_eq!(cut(40_000, Empty, None), (Topology::Split { chunks: 4 }, 10_000));
    assert_eq!(cut(6_000, Empty, None), (Topology::Split { chunks: 2 }, 4096));
    assert_eq!(cut(4_000, Empty, None), (Topology::OneWorker, 4096));
    // 1M rows: the engine's chunks; twice as large under saturation.
    assert_eq!(cut(1_000_000, Empty, None), (Topology::Split { chunks: 62 }, 16384));
    assert_eq!(cut(1_000_000, Balanced, None), (Topology::Split { chunks: 62 }, 16384));
    assert_eq!(cut(1_000_000, Saturated, None), (Topology::Split { chunks: 31 }, 32768));
    // A pin is never overridden.
    assert_eq!(cut(1_000_000, Saturated, Some(4096)), (Topology::Split { chunks: 245 }, 4096));
    assert_eq!(cut(10_000, Empty, Some(65536)), (Topology::OneWorker, 65536));
    // Never more than half the ring's chunks.
    assert_eq!(cut(100_000_000, Light, Some(1)), (Topology::Split { chunks: 512 }, 195_313));
}

#[test]
fn auto_route_goes_hot_and_stays() {
    let hot = 1 << 20;
    assert!(!auto_route(0, 1000, hot, true).0);
    assert!(!auto_route(hot - 1001, 1000, hot, true).0);
    assert!(auto_route(hot - 1000, 1000, hot, true).0);
    // A borderline dip — a tiny job after a hot streak — does not bring it back.
    assert!(auto_route(hot, 1, hot, true).0);
    assert!(!auto_route(u64::MAX, 1, hot, false).0);
}

#[test]
fn batches_give_every_worker_four_claims_or_the_gpu_enough_and_fit_the_budget() {
    let b = BatchInput {
        workers: 2,
        chunk_rows: 16384,
        gpu: None,
        bytes_per_row: 16,
        batches_held: 4,
        memory_budget: None,
    };
    assert_eq!(stream_batch_rows(&b), (1 << 17, BatchReason::Workers(2)));
    assert_eq!(stream_batch_rows(&BatchInput { workers: 16, ..b }), (1 << 20, BatchReason::Workers(16)));
    // An H200's 264 blocks: 2 chunks of 512 rows each, past the round trip's 2^18.
    assert_eq!(stream_batch_rows(&BatchInput { gpu: Some((264, 512)), ..b }), (1 << 19, BatchReason::Gpu));
    assert_eq!(stream_batch_rows(&BatchInput { gpu: Some((2, 512)), ..b }), (1 << 18, BatchReason::Gpu));
    // 8 MiB of budget: 4 batches of 16-byte rows in half of it → 2^16 rows.
    let tight = BatchInput { workers: 16, memory_budget: Some(8 << 20), ..b };
    assert_eq!(stream_batch_rows(&tight), (1 << 16, BatchReason::Budget(8 << 20)));
    // Never below the floor, whatever the budget.
    assert_eq!(stream_batch_rows(&BatchInput { memory_budget: Some(1), ..b }).0, 1 << 14);
}

#[test]
fn a_spread_caps_the_chunks_and_says_so_only_when_it_binds() {
    let c = CutInput {
        rows: 1 << 20,
        inline_rows: 64,
        chunk_rows: 16384,
        pinned: None,
        workers: 4,
        max_chunks: 512,
        spread: Some(1),
        pressure: Light,
    };
    assert_eq!(cpu_topology(&c), (Topology::OneWorker, 1 << 20, CutReason::Spread(1)));
    let two = cpu_topology(&CutInput { spread: Some(2), ..c });
    assert_eq!(two, (Topology::Split { chunks: 2 }, 1 << 19, CutReason::Spread(2)));
    // A cap above the chunks the job has anyway changes nothing.
    let small = CutInput { rows: 20_000, spread: Some(4), ..c };
    assert_eq!(cpu_topology(&small), cpu_topology(&CutInput { spread: None, ..small }));
}

#[test]
fn a_gpu_job_gives_each_block_its_chunks_until_they_get_too_small() {
    let cut = |rows, per_block| {
        gpu_cut(&GpuCutInput { rows, blocks: 132, per_block, min_chunk_rows: 512, max_chunks: 2048 })
    };
    assert_eq!(cut(1 << 24, 2), (264, (1usize << 24).div_ceil(264)));
    assert_eq!(cut(1 << 24, 8), (1056, (1usize << 24).div_ceil(1056)));
    // Half the ring at most: 16 a block would be 2,112 chunks.
    assert_eq!(cut(1 << 24, 16).0, 2048);
    // Small jobs: chunks of the fewest rows.
    assert_eq!(cut(10_000, 2), (20, 512));
    assert_eq!(cut(100, 2), (1, 512));
    assert_eq!(cut(0, 2), (1, 512));
}

proptest! {
    #[test]
    fn cuts_are_never_empty_and_never_exceed_the_ring(
        rows in 0usize..1 << 34,
        inline_rows in 0usize..4096,
        chunk_rows in 0usize..1 << 20,
        pinned in proptest::option::of(0usize..1 << 22),
        workers in 1usize..1024,
        max_chunks in 0usize..1 << 23,
        spread in proptest::option::of(0usize..64),
        pressure in prop_oneof![Just(Empty), Just(Light), Just(Balanced), Just(Saturated)],
    ) {
        let c = CutInput { rows, inline_rows, chunk_rows, pinned, workers, max_chunks, spread, pressure };
        let (t, size, why) = cpu_topology(&c);
        prop_assert!(!why.to_string().is_empty());
        match t {
            Topology::Inline => prop_assert!(rows <= inline_rows),
            Topology::OneWorker => prop_assert!(size >= 1 && size >= rows),
            Topology::Split { chunks } => {
                prop_assert!(size >= 1 && chunks >= 2);
                prop_assert!(chunks <= max_chunks.max(1));
                prop_assert!(chunks <= spread.map_or(usize::MAX, |w| w.max(1)));
                prop_assert_eq!(chunks, rows.div_ceil(size));
            }
            Topology::Gpu { .. } => prop_assert!(false, "a CPU cut on the GPU"),
        }
    }

    #[test]
    fn gpu_cuts_cover_every_row_once_and_fit_the_ring(
        rows in 0usize..1 << 40,
        blocks in 0u32..100_000,
        per_block in 0u32..64,
        min_chunk_rows in 0usize..1 << 16,
        max_chunks in 0usize..1 << 23,
    ) {
        let c = GpuCutInput { rows, blocks, per_block, min_chunk_rows, max_chunks };
        let (chunks, size) = gpu_cut(&c);
        prop_assert!(size >= 1 && chunks >= 1);
        prop_assert!(chunks <= max_chunks.max(1));
        // Every row in exactly one chunk: the chunks before the last are full.
        prop_assert!(chunks.saturating_mul(size) >= rows);
        prop_assert!(rows == 0 || (chunks - 1) * size < rows);
        prop_assert!(size >= min_chunk_rows);
        // More chunks a block never means fewer chunks.
        let finer = gpu_cut(&GpuCutInput { per_block: per_block.saturating_mul(2), ..c });
        prop_assert!(finer.0 >= chunks);
    }

    #[test]
    fn batches_are_powers_of_two_in_range_and_fit_the_budget_when_they_can(
        workers in 0usize..4096,
        chunk_rows in 0usize..1 << 30,
        gpu in proptest::option::of((0u32..100_000, 0usize..1 << 20)),
        bytes_per_row in 0u64..1024,
        batches_held in 0usize..64,
        memory_budget in proptest::option::of(0u64..1 << 40),
    ) {
        let b = BatchInput { workers, chunk_rows, gpu, bytes_per_row, batches_held, memory_budget };
        let (rows, why) = stream_batch_rows(&b);
        prop_assert!(rows.is_power_of_two() && BATCH_ROWS.contains(&rows));
        prop_assert!(!why.to_string().is_empty());
        if let Some(budget) = memory_budget {
            let held = rows as u64 * batches_held.max(1) as u64 * bytes_per_row.max(1);
            prop_assert!(held <= budget / 2 || rows == *BATCH_ROWS.start());
        }
    }

    #[test]
    fn classify_never_panics_and_empty_means_nothing_queued(
        queued in 0usize..1 << 40,
        capacity in 0usize..1 << 30,
        prev in prop_oneof![Just(Empty), Just(Light), Just(Balanced), Just(Saturated)],
    ) {
        let p = Pressure::classify(prev, queued, capacity);
        prop_assert_eq!(p == Empty, queued == 0);
    }

    #[test]
    fn a_fitted_budget_is_never_exceeded_and_never_gives_zero_room(
        kinds in proptest::collection::vec(0u8..6, 0..6),
        rows in 0usize..1 << 30,
        capacity in 0usize..1 << 34,
        budget in proptest::option::of(0u64..1 << 40),
    ) {
        let all = [OutputKind::F64, OutputKind::Bool, OutputKind::Hits, OutputKind::Count, OutputKind::Sum, OutputKind::Geometry];
        let outputs: Vec<OutputKind> = kinds.iter().map(|&k| all[k as usize]).collect();
        match fit_budget(&outputs, rows, capacity, budget) {
            Ok((cap, bytes)) => {
                prop_assert!(cap <= capacity);
                prop_assert!(budget.is_none_or(|b| bytes <= b));
                prop_assert!(cap >= capacity.min(MIN_BUDGET_HITS));
            }
            Err(e) => prop_assert!(budget.is_some_and(|b| e.needed > b)),
        }
    }
}
