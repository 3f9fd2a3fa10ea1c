//! Runs the dispatch-latency experiment and prints a markdown table.
//!
//! ```sh
//! cargo run --release -p meridian-driver --example dispatch_latency -- [ROUND_TRIPS] [--quick]
//! ```
//!
//! On a machine without a CUDA device it prints the probe and `skipped: no CUDA device`.

use std::process::ExitCode;

use meridian_driver::experiment::{markdown_table, Config, Experiment, Variant};
use meridian_driver::{probe, CubinCache, Gpu};

fn main() -> ExitCode {
    let mut config = Config::default();
    let mut variants = Variant::standard_matrix();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => variants.retain(|v| {
                matches!(
                    v,
                    Variant::LaunchPerJob | Variant::GraphPerJob | Variant::Resident { backoff_ns: 0, .. }
                )
            }),
            n => match n.parse::<usize>() {
                Ok(n) if n > 0 => config.round_trips = n,
                _ => {
                    eprintln!("dispatch_latency: error: expected a round-trip count or --quick, found `{n}`");
                    return ExitCode::from(2);
                }
            },
        }
    }
    let found = probe();
    println!("{found}");
    if !found.has_device() {
        println!("skipped: no CUDA device");
        return ExitCode::SUCCESS;
    }
    let run = || -> Result<String, meridian_driver::GpuError> {
        let gpu = Gpu::open(0)?;
        let experiment = Experiment::new(gpu, &CubinCache::new(CubinCache::default_dir()))?;
        let mut rows = Vec::new();
        for v in variants {
            let row = experiment.run(v, &config)?;
            eprintln!("{} ({} blocks): p50 {:?}", v.label(), row.grid, row.stats.p50);
            rows.push(row);
        }
        Ok(markdown_table(&rows))
    };
    match run() {
        Ok(table) => {
            println!(
                "\n{} round trips per row after {} warm-up; timeout {:?}\n",
                config.round_trips, config.warmup, config.timeout
            );
            println!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dispatch_latency: error: {e}");
            ExitCode::from(1)
        }
    }
}
