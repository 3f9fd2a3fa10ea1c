//! The `meridian` command-line program.
//!
//! Every failure is reported as readable lines on stderr and a non-zero exit status (2 for bad
//! input or usage), never a panic or a backtrace.
#![deny(unsafe_op_in_unsafe_fn)]

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// meridian: geometry pipelines as bytecode on a GPU megakernel or CPU executor.
#[derive(Parser, Debug)]
#[command(name = "meridian", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Assemble a .masm program into verified bytecode (.mbc).
    Asm {
        /// The assembly source.
        file: PathBuf,
        /// Where to write the bytecode (default: FILE with the extension .mbc).
        #[arg(short, long, value_name = "FILE.mbc")]
        output: Option<PathBuf>,
    },
    /// Print the assembly text of a .mbc program.
    Disasm {
        /// The bytecode file.
        file: PathBuf,
    },
    /// Check a program (.masm or .mbc) and report every problem.
    Verify {
        /// The program, as assembly or bytecode (told apart by the bytecode magic).
        file: PathBuf,
    },
    /// Join the shipped GeoNames places against the Natural Earth countries: a report, CSV
    /// files and a choropleth (demo.png).
    Demo {
        /// Output folder for pairs.csv, countries.csv and demo.png.
        #[arg(long, value_name = "DIR", default_value = "out")]
        out: PathBuf,
        /// Data folder (default: ./data if it holds the files, else the source tree's).
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Where jobs run (default: MERIDIAN_EXECUTION_MODE, else auto).
        #[arg(long, value_parser = ["auto", "cpu", "gpu"])]
        mode: Option<String>,
        /// CPU worker threads (default: all cores).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Show what CUDA this machine has: driver, devices, NVRTC.
    Info,
    /// Measure against a baseline in the same run, and print the ratios.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
    /// Run a program over input files through the Engine; write one CSV per output.
    Run {
        /// The program (.masm or .mbc).
        program: PathBuf,
        /// An input as NAME=PATH (.wkt, .csv, .geojson or .json, optionally .gz); repeat
        /// for each `.input` of the program.
        #[arg(short, long = "input", value_name = "NAME=PATH")]
        inputs: Vec<String>,
        /// Where jobs run (default: MERIDIAN_EXECUTION_MODE, else auto).
        #[arg(long, value_parser = ["auto", "cpu", "gpu"])]
        mode: Option<String>,
        /// Output folder: one NAME.csv per output.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// CPU worker threads (default: all cores).
        #[arg(long)]
        workers: Option<usize>,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// A one-row job through the GPU megakernel against one kernel launch per job (needs a
    /// CUDA device).
    Roundtrip {
        /// Timed round trips of each.
        #[arg(long, default_value_t = 100_000)]
        trips: usize,
        /// Untimed round trips first.
        #[arg(long, default_value_t = 2_000)]
        warmup: usize,
    },
    /// The point-in-polygon join of N uniform points × the shipped countries: CPU executor
    /// against the GPU (when present), results checked equal.
    Pip {
        /// Uniform random points over the lon/lat rectangle.
        #[arg(long, default_value_t = 10_000_000)]
        points: usize,
        /// Their seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Timed runs per backend.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// CPU worker threads (default: all cores).
        #[arg(long)]
        workers: Option<usize>,
        /// Data folder with countries.geojson (default as for `meridian demo`).
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version requests print to stdout and succeed; usage errors exit 2.
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let result = match cli.command {
        Command::Asm { file, output } => cli::bytecode::asm(&file, output.as_deref()),
        Command::Disasm { file } => cli::bytecode::disasm(&file),
        Command::Verify { file } => cli::bytecode::verify(&file),
        Command::Run { program, inputs, mode, out, workers } => cli::run::run(&cli::run::RunArgs {
            program,
            inputs,
            mode: mode.as_deref().and_then(meridian::Mode::parse),
            out,
            workers,
        }),
        Command::Demo { out, data, mode, workers } => {
            cli::demo::run(data, out, mode.as_deref().and_then(meridian::Mode::parse), workers)
        }
        Command::Info => {
            cli::print(&format!("{}\n", meridian::driver::probe()));
            Ok(())
        }
        Command::Bench { which: BenchCommand::Roundtrip { trips, warmup } } => {
            cli::bench::roundtrip(trips, warmup)
        }
        Command::Bench { which: BenchCommand::Pip { points, seed, runs, workers, data } } => {
            cli::bench::pip(&cli::bench::PipArgs { points, seed, runs, workers, data })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report();
            ExitCode::from(failure.code)
        }
    }
}
