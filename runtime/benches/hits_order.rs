//! What the host pays to put a GPU join's pairs in row order (`hits_from_runs`, which every
//! hits output goes through when it is first read), by how the device appended them — the
//! work issue 31 moves to the device, measured without one. The 100M-point join against the
//! countries gives about 33M pairs (docs/benchmarks/2026-11-27-gpu-evidence.md); here, 33M
//! keys a pair every third row, appended:
//! - `tiles`: in runs of a megakernel tile (128 rows, about 43 pairs), the tiles in the order
//!   blocks finished them (shuffled);
//! - `threads`: a run a thread with hits (the GPU JIT's per-job kernel before 2026-12-07),
//!   shuffled;
//! - `one run`: the split join's fast kernel, every pair in order (2026-12-07);
//! - `one run + deferred`: the same with one row in a thousand run by the general kernel
//!   after it (a run each, appended after the fast kernel's).
//!
//! Each case's pairs are checked equal to the sorted keys; medians of `HITS_ORDER_RUNS`
//! (default 3) and the ratio to `tiles` in the same run.
//!
//! `cargo bench -p meridian-runtime --bench hits_order` (`HITS_ORDER_N` pairs; default 33M)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // a bench fails loudly

use std::time::{Duration, Instant};

use meridian_kernels::interp::hits_from_runs;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A deterministic shuffle (xorshift Fisher–Yates).
fn shuffle<T>(v: &mut [T], mut s: u64) {
    for i in (1..v.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
}

/// What a device leaves: the hits buffer and the `(start, len)` table of its runs.
type Appended = (Vec<u64>, Vec<(usize, usize)>);

/// `keys` appended run by run in the order of `runs` (each a range of `keys`).
fn appended(keys: &[u64], runs: &[(usize, usize)]) -> Appended {
    let mut buf = Vec::with_capacity(keys.len());
    let mut table = Vec::with_capacity(runs.len());
    for &(from, len) in runs {
        table.push((buf.len(), len));
        buf.extend_from_slice(&keys[from..from + len]);
    }
    (buf, table)
}

fn main() {
    let n = env("HITS_ORDER_N", 33_000_000);
    let reps = env("HITS_ORDER_RUNS", 3).max(1);
    // A pair every third row, its country id below 177.
    let keys: Vec<u64> = (0..n as u64).map(|i| ((3 * i) << 32) | (i * 7919 % 177)).collect();
    let row = |k: u64| k >> 32;
    // Runs over `keys` cut where `cut(previous, next)` says.
    let cut_by = |cut: &dyn Fn(u64, u64) -> bool| {
        let mut runs = Vec::new();
        let mut start = 0;
        for i in 1..=keys.len() {
            if i == keys.len() || cut(keys[i - 1], keys[i]) {
                runs.push((start, i - start));
                start = i;
            }
        }
        runs
    };
    let mut tiles = cut_by(&|a, b| row(a) / 128 != row(b) / 128);
    shuffle(&mut tiles, 0x9e37_79b9);
    let mut threads = cut_by(&|a, b| row(a) != row(b));
    shuffle(&mut threads, 0x51_7cc1);
    let one = vec![(0, keys.len())];
    // One row in a thousand with pairs deferred: the fast kernel's run leaves them out, the
    // general kernel appends a run each after it.
    let deferred = |i: usize| i % 1000 == 500;
    let fast: Vec<u64> = keys.iter().enumerate().filter(|(i, _)| !deferred(*i)).map(|(_, k)| *k).collect();
    let late: Vec<u64> = keys.iter().enumerate().filter(|(i, _)| deferred(*i)).map(|(_, k)| *k).collect();
    let mut split_keys = fast.clone();
    split_keys.extend_from_slice(&late);
    let mut split_runs = vec![(0, fast.len())];
    split_runs.extend((0..late.len()).map(|k| (fast.len() + k, 1)));
    let cases: Vec<(&str, Appended)> = vec![
        ("tiles (megakernel)", appended(&keys, &tiles)),
        ("threads (per-job kernel)", appended(&keys, &threads)),
        ("one run (split join)", appended(&keys, &one)),
        ("one run + deferred 0.1%", (split_keys, split_runs)),
    ];
    let want: Vec<(u32, u32)> = keys.iter().map(|&k| ((k >> 32) as u32, k as u32)).collect();
    println!(
        "ordering {n} pairs on the host ({} threads available), medians of {reps}:",
        std::thread::available_parallelism().map_or(1, |t| t.get())
    );
    let mut base = None;
    for (name, (buf, runs)) in &cases {
        let mut times: Vec<Duration> = (0..reps)
            .map(|_| {
                let t = Instant::now();
                let got = hits_from_runs(buf.len(), runs.clone(), |i| buf.get(i).copied()).unwrap();
                let took = t.elapsed();
                assert!(got == want, "{name}: pairs out of order");
                took
            })
            .collect();
        times.sort();
        let median = times[times.len() / 2];
        let base = *base.get_or_insert(median);
        println!(
            "  {name:<26} {:>6} runs  {:>9.1} ms  {:.2}x the tiles' time",
            runs.len(),
            median.as_secs_f64() * 1e3,
            median.as_secs_f64() / base.as_secs_f64()
        );
    }
}
