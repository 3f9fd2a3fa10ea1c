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
    /// Run a SQL query on DataFusion with meridian's spatial functions and join registered
    /// (builds with the `sql` feature).
    Sql {
        /// The query, e.g. "SELECT c.name, count(*) FROM c JOIN p ON ST_Contains(c.geom, p.geom) GROUP BY c.name".
        query: String,
        /// A table as NAME=PATH (.parquet, GeoParquet geometry as WKB, or .csv); repeat.
        #[arg(short, long = "table", value_name = "NAME=PATH")]
        tables: Vec<String>,
        /// Write the result here (.parquet, else CSV) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print the physical plan, before the query runs.
        #[arg(long)]
        explain: bool,
        /// Print the physical plan and run nothing (no output is written).
        #[arg(long, conflicts_with = "out")]
        explain_only: bool,
    },
    /// The autotune store: what earlier runs learnt (MERIDIAN_AUTOTUNE_PATH,
    /// MERIDIAN_AUTOTUNE=off).
    Autotune {
        #[command(subcommand)]
        what: AutotuneCommand,
    },
    /// Measure against a baseline in the same run, and print the ratios.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
    /// Run a program over input files through the Engine; write one file per output.
    Run {
        /// The program (.masm or .mbc).
        program: PathBuf,
        /// An input as NAME=PATH (.csv, .wkt, .geojson or .json, optionally .gz; .parquet
        /// (GeoParquet); .arrow, .feather, .ipc or .arrows (Arrow IPC)); repeat for each
        /// `.input` of the program.
        #[arg(short, long = "input", value_name = "NAME=PATH")]
        inputs: Vec<String>,
        /// How outputs are written: NAME.csv, NAME.parquet or NAME.arrow.
        #[arg(long, value_parser = ["csv", "parquet", "arrow"], default_value = "csv")]
        format: String,
        /// Where jobs run (default: MERIDIAN_EXECUTION_MODE, else auto).
        #[arg(long, value_parser = ["auto", "cpu", "gpu"])]
        mode: Option<String>,
        /// What runs CPU jobs' rows: the interpreter, the program compiled to native code
        /// (jit), or the engine's choice (auto: a route race under autotune, else the JIT once
        /// a program has run 2^20 rows).
        #[arg(long, value_parser = ["auto", "interp", "jit"], default_value = "auto")]
        route: String,
        /// What runs GPU jobs' rows: the resident megakernel (interp, holding every SM), each
        /// program's own kernel beside the megakernel's latency lane (jit), or both by job size
        /// (auto: a program's kernel once it has run 2^20 rows, for jobs of 2^16 rows or more).
        #[arg(long, value_parser = ["auto", "interp", "jit"], default_value = "interp")]
        gpu_route: String,
        /// Print the plan each job ran by (backend, route, topology, chunk size, hit capacity,
        /// and why); for a streamed input, the first batch's and each that changed.
        #[arg(long)]
        explain: bool,
        /// Output folder: one file per output.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// CPU worker threads (default: all cores).
        #[arg(long)]
        workers: Option<usize>,
        /// Rows per batch when the program's one row input is a Parquet or Arrow file: its
        /// batches run while the next are read (0: read it whole first; default: the
        /// planner's, from the workers, the GPU and the memory budget).
        #[arg(long)]
        batch_rows: Option<usize>,
        /// Stop the run after this many seconds (a fraction is allowed): its jobs stop at their
        /// next chunk or candidate-loop check, nothing is written, and the exit status is 124.
        /// (Ctrl-C stops it the same way, with status 130.)
        #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
        timeout: Option<std::time::Duration>,
    },
    /// Convert a geometry file between CSV, WKT, GeoJSON, GeoParquet and Arrow IPC (formats
    /// by file name; the geometry column only).
    Convert {
        /// The file to read.
        input: PathBuf,
        /// The file to write (replaced if it exists).
        output: PathBuf,
        /// Geometry in Parquet and Arrow files: auto (GeoArrow points for point columns,
        /// else WKB), native (GeoArrow's layout for the column's one family) or wkb.
        #[arg(long, value_parser = ["auto", "native", "wkb"], default_value = "auto")]
        encoding: String,
    },
    /// Generate data files for tests and benchmarks.
    Gen {
        #[command(subcommand)]
        what: GenCommand,
    },
}

#[derive(Subcommand, Debug)]
enum AutotuneCommand {
    /// Every record: per key the knob, the winner, the effect with its interval, pairs, when,
    /// on which machine, and the runs that loaded it; races still open with their pairs.
    Show {
        /// The records as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Where the store is.
    Path,
    /// Remove every record.
    Clear,
    /// Write the records as JSON to FILE.
    Export {
        /// The JSON file to write.
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum GenCommand {
    /// N uniform random points, written in chunks (constant memory); the same points as
    /// `meridian bench pip --points N --seed S` over the default box.
    Points {
        /// How many points.
        n: u64,
        /// The file to write (.csv, .wkt, .geojson, .parquet, .arrow, .arrows).
        out: PathBuf,
        /// The box the points fill: minx,miny,maxx,maxy.
        #[arg(long, default_value = "-180,-90,180,90", allow_hyphen_values = true)]
        bbox: String,
        /// The random seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Geometry in Parquet and Arrow files: native (GeoArrow points) or wkb.
        #[arg(long, value_parser = ["native", "wkb"], default_value = "native")]
        encoding: String,
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
        /// The Engine's GPU route: the megakernel with every block (interp), the megakernel
        /// as the latency lane beside programs' kernels (auto: what the lane costs a small
        /// job), or the program's own kernel launched per job (jit).
        #[arg(long, value_parser = ["auto", "interp", "jit"], default_value = "interp")]
        gpu_route: String,
    },
    /// Read one file four ways: the streamer's io_uring path, a std::fs read loop of the same
    /// chunk size, memmap2 and dd iflag=direct (the device's raw rate).
    Stream {
        /// The file (2 GiB or more for a meaningful cold read).
        file: PathBuf,
        /// MiB per read.
        #[arg(long, default_value_t = 16)]
        chunk_mib: usize,
        /// The streamer's reads in flight.
        #[arg(long, default_value_t = 4)]
        in_flight: usize,
        /// Timed runs of each way (after one untimed).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Drop the page cache before each read (needs root; without it the runs are warm).
        #[arg(long)]
        cold: bool,
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
    /// Where the GPU starts to beat the CPU workers: a join and an arithmetic program at sizes
    /// from 1,024 rows up, with their points resident on the device and uploaded, against the
    /// crossovers the placement model predicts (the GPU columns need a CUDA device).
    Placement {
        /// The largest job, in rows (the sizes go up by 4× from 1,024).
        #[arg(long, default_value_t = 4_194_304)]
        max_rows: usize,
        /// Timed runs per size and backend.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// CPU worker threads (default: all cores).
        #[arg(long)]
        workers: Option<usize>,
        /// Data folder with countries.geojson (default as for `meridian demo`).
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
    },
}

/// `--timeout`: positive, finite seconds.
fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s.is_finite() => {
            std::time::Duration::try_from_secs_f64(s).map_err(|e| format!("{text}: {e}"))
        }
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
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
    // Every MERIDIAN_* variable is checked before anything runs: a bad value is an error here,
    // whether or not this command would have read it; a misspelt name or an event log that
    // cannot be written is said once.
    // (`meridian info` reports them instead: it is where one looks to see what is wrong.)
    if !matches!(cli.command, Command::Info) {
        match meridian::env::check() {
            Ok(warnings) => {
                for w in warnings {
                    eprintln!("warning: {w}");
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let result = match cli.command {
        Command::Asm { file, output } => cli::bytecode::asm(&file, output.as_deref()),
        Command::Disasm { file } => cli::bytecode::disasm(&file),
        Command::Verify { file } => cli::bytecode::verify(&file),
        Command::Run {
            program,
            inputs,
            format,
            mode,
            route,
            gpu_route,
            explain,
            out,
            workers,
            batch_rows,
            timeout,
        } => cli::run::run(&cli::run::RunArgs {
            program,
            inputs,
            mode: mode.as_deref().and_then(meridian::Mode::parse),
            route: route.parse().unwrap_or_default(),
            gpu_route: gpu_route.parse().unwrap_or(meridian::Route::Interpreter),
            explain,
            out,
            workers,
            format: cli::run::OutputFormat::parse(&format).unwrap_or(cli::run::OutputFormat::Csv),
            batch_rows,
            timeout,
        }),
        Command::Convert { input, output, encoding } => cli::convert::convert(&input, &output, &encoding),
        Command::Gen { what: GenCommand::Points { n, out, bbox, seed, encoding } } => {
            match cli::gen::parse_bbox(&bbox) {
                Err(m) => Err(cli::Failure::input([format!("error: {m}")])),
                Ok(bbox) => cli::gen::points(&cli::gen::GenPoints {
                    n,
                    out: &out,
                    bbox,
                    seed,
                    encoding: cli::gen::point_encoding(&encoding),
                }),
            }
        }
        Command::Demo { out, data, mode, workers } => {
            cli::demo::run(data, out, mode.as_deref().and_then(meridian::Mode::parse), workers)
        }
        Command::Autotune { what } => match what {
            AutotuneCommand::Show { json } => cli::autotune::show(json),
            AutotuneCommand::Path => cli::autotune::show_path(),
            AutotuneCommand::Clear => cli::autotune::clear(),
            AutotuneCommand::Export { file } => cli::autotune::export(&file),
        },
        Command::Info => cli::info(),
        Command::Sql { query, tables, out, explain, explain_only } => {
            cli::sql::sql(&cli::sql::SqlArgs { query, tables, out, explain, explain_only })
        }
        Command::Bench { which: BenchCommand::Roundtrip { trips, warmup, gpu_route } } => {
            cli::bench::roundtrip(trips, warmup, gpu_route.parse().unwrap_or(meridian::Route::Interpreter))
        }
        Command::Bench { which: BenchCommand::Stream { file, chunk_mib, in_flight, runs, cold } } => {
            cli::bench::stream(&cli::bench::StreamArgs {
                file,
                chunk: chunk_mib.clamp(1, 1024) << 20,
                in_flight,
                runs: runs.max(1),
                cold,
            })
        }
        Command::Bench { which: BenchCommand::Pip { points, seed, runs, workers, data } } => {
            cli::bench::pip(&cli::bench::PipArgs { points, seed, runs, workers, data })
        }
        Command::Bench { which: BenchCommand::Placement { max_rows, runs, workers, data } } => {
            cli::bench::placement(&cli::bench::PlacementArgs { max_rows, runs, workers, data })
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
