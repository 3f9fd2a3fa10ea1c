//! A tokio service embedding meridian: "which country is this point in?" answered from 8
//! concurrent tasks, one engine, one-point lookups and 1,000-point batches, with their
//! latency percentiles.
//!
//! ```sh
//! cargo run --release --example service
//! ```
//!
//! The pattern: the program prepared once and its output looked up once; the countries
//! bound once with their index (`Engine::bind_partial`); each task keeps its own `Request`,
//! which brings only its points. A one-point lookup runs inline, within the task's poll, in
//! the last lookup's buffers (no allocation, no lock another task holds, well under a
//! microsecond); a batch is submitted to the workers and awaited (`Request::run_async`), so
//! no task blocks the runtime's thread — a heartbeat task shows it.

use std::error::Error;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian::bytecode::assemble;
use meridian::kernels::io;
use meridian::{Engine, Input, Output, Partial};

const TASKS: usize = 8;
const LOOKUPS: usize = 2_000;
const BATCHES: usize = 10;
const BATCH: usize = 1_000;

/// The `i`th point of a task's traffic: spread over the land-heavy latitudes.
fn point(task: usize, i: usize) -> (f64, f64) {
    let k = (task * 7_919 + i * 104_729) % 1_000_003;
    (-180.0 + (k % 3_600) as f64 / 10.0, -55.0 + (k / 3_600 % 1_300) as f64 / 10.0)
}

/// What one task saw: its latencies, and its answers (the country of each looked-up point,
/// `u32::MAX` at sea) with the same points' answers from its batches.
struct Seen {
    lookups: Vec<Duration>,
    batches: Vec<Duration>,
    disagreements: usize,
}

/// One task: lookups of single points, then batches of the same points, awaited.
async fn serve(engine: Arc<Engine>, countries: Partial, pairs: Output, task: usize) -> Result<Seen, String> {
    let mut request = countries.request("pts").map_err(|e| e.to_string())?;
    let mut seen = Seen { lookups: Vec::new(), batches: Vec::new(), disagreements: 0 };
    let mut answers = Vec::with_capacity(LOOKUPS);
    for i in 0..LOOKUPS {
        let t = Instant::now();
        let result = request.points(&[point(task, i)]).map_err(|e| e.to_string())?.run_async(&engine).await;
        let hits = result.map_err(|e| e.to_string())?.hits_of(&pairs).ok_or("another program's result")?;
        answers.push(hits.first().map_or(u32::MAX, |&(_, country)| country));
        seen.lookups.push(t.elapsed());
        if i % 64 == 0 {
            tokio::task::yield_now().await; // a real service awaits its network here
        }
    }
    for b in 0..BATCHES {
        let pts: Vec<(f64, f64)> = (b * BATCH..(b + 1) * BATCH).map(|i| point(task, i % LOOKUPS)).collect();
        let t = Instant::now();
        let result = request.points(&pts).map_err(|e| e.to_string())?.run_async(&engine).await;
        let hits = result.map_err(|e| e.to_string())?.hits_of(&pairs).ok_or("another program's result")?;
        seen.batches.push(t.elapsed());
        let mut batch = vec![u32::MAX; BATCH];
        for &(row, country) in hits {
            batch[row as usize] = country;
        }
        let expected = (b * BATCH..(b + 1) * BATCH).map(|i| answers[i % LOOKUPS]);
        seen.disagreements += batch.into_iter().zip(expected).filter(|(a, b)| a != b).count();
    }
    Ok(seen)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted.get(((sorted.len().saturating_sub(1)) as f64 * p) as usize).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

fn main() -> Result<(), Box<dyn Error>> {
    let engine = Arc::new(Engine::builder().workers(2).build()?);
    println!("backend: {} ({})", engine.backend().name(), engine.backend().reason);
    let program = engine.prepare_verified(&assemble("pip_join.masm", include_str!("pip_join.masm"))?);
    let pairs = program.output("pairs")?;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/countries.geojson");
    let table = io::read_geojson("countries.geojson", &io::read_text(&path)?)?;
    let countries = engine.bind_partial(&program, [("zones", Input::indexed(Arc::new(table.geometry)))])?;

    // A current-thread runtime: one blocked task would stop every other one.
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    let started = Instant::now();
    let (seen, beats, longest_gap) = rt.block_on(async {
        let done = Arc::new(AtomicBool::new(false));
        let (beats, gap) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let heart = {
            let (done, beats, gap) = (done.clone(), beats.clone(), gap.clone());
            tokio::spawn(async move {
                let mut last = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    tokio::task::yield_now().await;
                    gap.fetch_max(last.elapsed().as_micros() as u64, Ordering::Relaxed);
                    beats.fetch_add(1, Ordering::Relaxed);
                    last = Instant::now();
                }
            })
        };
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| tokio::spawn(serve(engine.clone(), countries.clone(), pairs.clone(), t)))
            .collect();
        let mut seen = Vec::new();
        for t in tasks {
            seen.push(t.await.map_err(|e| e.to_string())?);
        }
        done.store(true, Ordering::Relaxed);
        heart.await.map_err(|e| e.to_string())?;
        Ok::<_, String>((seen, beats.load(Ordering::Relaxed), gap.load(Ordering::Relaxed)))
    })?;
    let took = started.elapsed();
    let seen = seen.into_iter().collect::<Result<Vec<_>, _>>()?;

    let mut lookups: Vec<Duration> = seen.iter().flat_map(|s| s.lookups.iter().copied()).collect();
    let mut batches: Vec<Duration> = seen.iter().flat_map(|s| s.batches.iter().copied()).collect();
    lookups.sort();
    batches.sort();
    let disagreements: usize = seen.iter().map(|s| s.disagreements).sum();
    println!(
        "{TASKS} tasks on one thread: {} one-point lookups, p50 {:.2} µs, p99 {:.2} µs",
        lookups.len(),
        percentile(&lookups, 0.5),
        percentile(&lookups, 0.99)
    );
    println!(
        "{} batches of {BATCH} points, p50 {:.0} µs, p99 {:.0} µs",
        batches.len(),
        percentile(&batches, 0.5),
        percentile(&batches, 0.99)
    );
    println!(
        "heartbeat: {beats} beats, longest gap {longest_gap} µs; all in {:.1} ms",
        took.as_secs_f64() * 1e3
    );
    if disagreements > 0 {
        return Err(format!("{disagreements} batch answers differ from the same points' lookups").into());
    }
    println!("every batch answer equals the same point's lookup");
    Ok(())
}
