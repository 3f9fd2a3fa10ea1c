//! `meridian bench`: measurements against a baseline in the same run, printed with their
//! ratios.
//!
//! - `roundtrip`: a one-row job through the Engine's resident GPU megakernel against the same
//!   job launched as its own kernel (`cuLaunchKernel` + `cuStreamSynchronize`), p50/p99.
//! - `pip`: the point-in-polygon join of N uniform random points against the shipped
//!   countries, on the CPU executor and on the GPU, with the results checked equal.
//! - `stream`: one file read four ways (the streamer, a read loop, memmap2, `dd`).
//! - `placement`: a join and an arithmetic program from 1,024 rows up on the CPU workers and
//!   on the GPU (inputs resident and uploaded), against the crossovers the placement model
//!   predicts — what a device run checks the model's constants with.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian::bytecode::assemble;
use meridian::kernels::column::GeometryColumn;
use meridian::kernels::interp::Input;
use meridian::kernels::io;
use meridian::{demo, Engine, Mode, Route};

use super::{print, Failure};

fn fail(message: String) -> Failure {
    Failure::input([format!("error: {message}")])
}

fn micros(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn dispatch_name(d: meridian::cuda::GpuDispatch) -> &'static str {
    match d {
        meridian::cuda::GpuDispatch::Poller => "poller",
        meridian::cuda::GpuDispatch::Leaders => "leaders'",
    }
}

/// `meridian bench roundtrip`.
pub fn roundtrip(trips: usize, warmup: usize, route: meridian::Route) -> Result<(), Failure> {
    if trips == 0 {
        return Err(fail("--trips must be at least 1".into()));
    }
    let probe = meridian::driver::probe();
    if let Some(e) = probe.unusable() {
        return Err(fail(format!("meridian bench roundtrip measures the GPU: no usable CUDA device ({e})")));
    }
    let r = meridian::bench::round_trip(trips, warmup, route).map_err(fail)?;
    let l = r.per_job_launch;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "meridian bench roundtrip: a one-row job (x of a point), {trips} timed round trips each after {warmup} untimed; \
         GPU route {}",
        route.name()
    );
    let _ = writeln!(s, "device: {}", r.device);
    let line = |s: &mut String, what: &str, m: &meridian::bench::Latency| {
        let _ = writeln!(
            s,
            "  {what:<55} p50 {:>10}  p99 {:>10}  max {:>10}  mean {:>10}",
            micros(m.p50),
            micros(m.p99),
            micros(m.max),
            micros(m.mean)
        );
    };
    for (dispatch, m) in &r.megakernel {
        line(&mut s, &format!("Engine, {} protocol (submit → Ticket::wait):", dispatch_name(*dispatch)), m);
    }
    line(&mut s, "  of which Engine::submit (poller, host only):", &r.submit);
    line(&mut s, "per-job launch (cuLaunchKernel + cuStreamSynchronize):", &l);
    match &r.graph_launch {
        Ok(g) => line(&mut s, "CUDA graph of that launch (cuGraphLaunch + sync):", g),
        Err(e) => {
            let _ = writeln!(s, "  CUDA graph of that launch: not measured: {e}");
        }
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    for (dispatch, m) in &r.megakernel {
        let _ = writeln!(
            s,
            "  Engine ({}) / per-job launch: p50 {:.2}×, p99 {:.2}×; its p99 / p50 {:.2}{}",
            dispatch_name(*dispatch),
            ratio(m.p50, l.p50),
            ratio(m.p99, l.p99),
            ratio(m.p99, m.p50),
            r.graph_launch
                .as_ref()
                .map(|g| format!("; / graph launch: p50 {:.2}×", ratio(m.p50, g.p50)))
                .unwrap_or_default()
        );
    }
    let n = meridian::bench::IN_FLIGHT;
    let _ = writeln!(
        s,
        "  throughput, {n} one-row jobs in flight: per-job launches (one sync per {n}) {:.0} jobs/s",
        r.per_job_rate
    );
    for (dispatch, rate) in &r.megakernel_rate {
        let _ = writeln!(
            s,
            "    Engine, {} protocol: {:.0} jobs/s, {:.2}× per-job launches",
            dispatch_name(*dispatch),
            rate,
            rate / r.per_job_rate
        );
    }
    print(&s);
    Ok(())
}

/// Options of `meridian bench pip`.
#[derive(Debug)]
pub struct PipArgs {
    /// Uniform random points.
    pub points: usize,
    /// Their seed.
    pub seed: u64,
    /// Timed runs per backend.
    pub runs: usize,
    /// CPU workers (`None`: all cores).
    pub workers: Option<usize>,
    /// The data folder with the countries.
    pub data: Option<PathBuf>,
}

/// One backend's timings.
struct Timed {
    name: String,
    /// The last run's backend line.
    backend: String,
    /// Submit → ticket resolved, per run.
    jobs: Vec<Duration>,
    /// First access to the pairs (ordering them), of the last run.
    materialise: Duration,
    pairs: Vec<(u32, u32)>,
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn run_joins(
    engine: &Engine,
    pts: &Arc<GeometryColumn>,
    zones: &Input,
    runs: usize,
) -> Result<Timed, String> {
    let program = assemble("pip_join.masm", demo::PROGRAM).map_err(|d| d.to_string())?;
    let prepared = engine.prepare(program.program()).map_err(|e| e.to_string())?;
    let bound = engine
        .bind(&prepared, [("pts", Input::rows(pts.clone())), ("zones", zones.clone())])
        .map_err(|e| e.to_string())?;
    let mut jobs = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = engine.run(prepared.job(&bound)).map_err(|e| e.to_string())?;
        jobs.push(t.elapsed());
        last = Some(r);
    }
    let r = last.ok_or("no runs")?;
    let t = Instant::now();
    let pairs = r.hits("pairs").ok_or("no pairs output")?.to_vec();
    let materialise = t.elapsed();
    let backend = r.backend().reason.clone();
    Ok(Timed { name: r.backend().name().to_owned(), backend, jobs, materialise, pairs })
}

/// The shipped countries from `data` (default as for `meridian demo`).
fn countries(data: Option<PathBuf>) -> Result<Arc<GeometryColumn>, Failure> {
    let path = super::demo::data_dir(data).join(demo::COUNTRIES_FILE);
    let text = io::read_text(&path).map_err(|e| fail(e.to_string()))?;
    let column = io::read_geojson(&path.display().to_string(), &text).map_err(|e| fail(e.to_string()))?;
    Ok(Arc::new(column.geometry))
}

/// `meridian bench pip`.
pub fn pip(args: &PipArgs) -> Result<(), Failure> {
    if args.runs == 0 {
        return Err(fail("--runs must be at least 1".into()));
    }
    let countries = countries(args.data.clone())?;
    let t = Instant::now();
    let pts =
        Arc::new(super::gen::uniform_points(args.seed, super::gen::WORLD, 0, args.points).map_err(fail)?);
    let generated = t.elapsed();
    let zones = Input::indexed(countries.clone());
    let mut s = String::new();
    let _ = writeln!(
        s,
        "meridian bench pip: {} uniform points × {} countries (seed {}), examples/pip_join.masm, {} runs each",
        demo::group(args.points as u64),
        countries.len(),
        args.seed,
        args.runs
    );
    let _ = writeln!(s, "  points generated in {:.3} s", generated.as_secs_f64());

    let mut builder = Engine::builder().mode(Mode::Cpu);
    if let Some(w) = args.workers {
        builder = builder.workers(w);
    }
    let cpu_engine = builder.build().map_err(|e| fail(e.to_string()))?;
    let cpu = run_joins(&cpu_engine, &pts, &zones, args.runs).map_err(fail)?;
    let workers = cpu_engine.workers();
    drop(cpu_engine);
    let rate = |d: Duration| args.points as f64 / d.as_secs_f64() / 1e6;
    let cpu_job = median(&cpu.jobs);
    let _ = writeln!(
        s,
        "  {:<5} {workers} workers: job {:.4} s median ({:.1} M points/s), pairs ordered in the job; {} pairs",
        cpu.name,
        cpu_job.as_secs_f64(),
        rate(cpu_job),
        demo::group(cpu.pairs.len() as u64)
    );

    // The megakernel, then each program's own kernel beside its lane (the GPU JIT route): one
    // engine at a time, as a device runs one megakernel.
    let mut megakernel_job = None;
    for route in [Route::Interpreter, Route::Jit] {
        let label = if route == Route::Jit { "cuda jit" } else { "cuda" };
        let gpu_engine = match Engine::builder().mode(Mode::Gpu).workers(1).gpu_route(route).build() {
            Ok(e) => e,
            Err(e) => {
                let _ = writeln!(s, "  {label}  skipped: {e}");
                break;
            }
        };
        let gpu = run_joins(&gpu_engine, &pts, &zones, args.runs + 1).map_err(fail)?;
        drop(gpu_engine);
        let (first, warm) = (gpu.jobs[0], median(&gpu.jobs[1..]));
        let _ = writeln!(s, "  {label}  {}", gpu.backend);
        let first_does = if route == Route::Jit {
            "compiles the program's kernel, uploads the points and the index"
        } else {
            "uploads the points and the index"
        };
        let _ = writeln!(
            s,
            "        first job {:.4} s ({first_does}); then job {:.4} s median ({:.1} M points/s); ordering the pairs on first read {:.4} s",
            first.as_secs_f64(),
            warm.as_secs_f64(),
            rate(warm),
            gpu.materialise.as_secs_f64()
        );
        let same = gpu.pairs == cpu.pairs;
        let _ = writeln!(s, "  same pairs on both: {}", if same { "yes" } else { "NO" });
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        let _ = writeln!(
            s,
            "  cpu / {label}: job {:.1}×; job + ordering the pairs {:.1}×",
            ratio(cpu_job, warm),
            ratio(cpu_job + cpu.materialise, warm + gpu.materialise)
        );
        match megakernel_job {
            None => megakernel_job = Some(warm),
            Some(m) => {
                let _ = writeln!(s, "  megakernel / program's kernel (GPU JIT): job {:.2}×", ratio(m, warm));
            }
        }
        if !same {
            print(&s);
            return Err(fail(format!(
                "the GPU's ({label}) {} pairs differ from the CPU's {}",
                gpu.pairs.len(),
                cpu.pairs.len()
            )));
        }
    }
    gpu_arithmetic(&mut s, &pts, args.runs).map_err(fail)?;
    print(&s);
    Ok(())
}

/// The arithmetic-heavy pipeline (`benches/mercator.masm`, 60 f64/bool ops a row) over the
/// same points on the GPU's megakernel and on its own kernel (the GPU JIT route): the case where
/// the interpreter's dispatch is the cost. Says so and returns when there is no GPU.
fn gpu_arithmetic(s: &mut String, pts: &Arc<GeometryColumn>, runs: usize) -> Result<(), String> {
    let program =
        assemble("mercator.masm", include_str!("../../benches/mercator.masm")).map_err(|d| d.to_string())?;
    let _ = writeln!(
        s,
        "arithmetic: benches/mercator.masm over the same points, megakernel vs the program's own kernel"
    );
    let mut timed: Vec<(Duration, meridian::JobResult)> = Vec::new();
    for route in [Route::Interpreter, Route::Jit] {
        let engine = match Engine::builder().mode(Mode::Gpu).workers(1).gpu_route(route).build() {
            Ok(e) => e,
            Err(e) => {
                let _ = writeln!(s, "  skipped: {e}");
                return Ok(());
            }
        };
        let prepared = engine.prepare(program.program()).map_err(|e| e.to_string())?;
        let bound = engine.bind(&prepared, [("pts", Input::rows(pts.clone()))]).map_err(|e| e.to_string())?;
        let mut jobs = Vec::with_capacity(runs + 1);
        let mut last = None;
        for _ in 0..=runs {
            let t = Instant::now();
            let r = engine.run(prepared.job(&bound)).map_err(|e| e.to_string())?;
            jobs.push(t.elapsed());
            last = Some(r);
        }
        let r = last.ok_or("no runs")?;
        let warm = median(&jobs[1..]);
        let _ = writeln!(
            s,
            "  {:<8} first job {:.4} s, then {:.4} s median ({:.1} M points/s); {}",
            r.backend().route(),
            jobs[0].as_secs_f64(),
            warm.as_secs_f64(),
            pts.len() as f64 / warm.as_secs_f64() / 1e6,
            r.backend().reason
        );
        timed.push((warm, r));
    }
    if let [(interp, a), (jit, b)] = &timed[..] {
        let same = a.outputs().zip(b.outputs()).all(|((_, x), (_, y))| x == y);
        let _ = writeln!(s, "  same outputs on both: {}", if same { "yes" } else { "NO" });
        let _ =
            writeln!(s, "  megakernel / program's kernel: {:.2}×", interp.as_secs_f64() / jit.as_secs_f64());
        if !same {
            return Err("the GPU JIT's outputs differ from the megakernel's".into());
        }
    }
    Ok(())
}

/// Options of `meridian bench stream`.
#[derive(Debug)]
pub struct StreamArgs {
    /// The file read.
    pub file: PathBuf,
    /// Bytes per read.
    pub chunk: usize,
    /// Reads in flight (the streamer's).
    pub in_flight: usize,
    /// Timed runs of each way.
    pub runs: usize,
    /// Drop the page cache before each run.
    pub cold: bool,
}

/// Drops the page cache (as root); why not, if it cannot.
fn drop_caches() -> Result<(), String> {
    // Dirty pages first, so that dropping is complete.
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").map_err(|e| format!("cannot drop the page cache: {e}"))
}

/// `dd if=FILE of=/dev/null bs=CHUNK iflag=direct`: the device's raw sequential rate.
fn dd_direct(file: &std::path::Path, chunk: usize) -> Result<Duration, String> {
    let t = Instant::now();
    let out = std::process::Command::new("dd")
        .arg(format!("if={}", file.display()))
        .arg("of=/dev/null")
        .arg(format!("bs={chunk}"))
        .arg("iflag=direct")
        .output()
        .map_err(|e| format!("dd: {e}"))?;
    let took = t.elapsed();
    if out.status.success() {
        Ok(took)
    } else {
        Err(format!("dd: {}", String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or("failed")))
    }
}

/// `meridian bench stream`: one file read through the streamer's io_uring path, a `std::fs`
/// read loop of the same chunk size, memmap2 (every page touched) and `dd iflag=direct`.
pub fn stream(args: &StreamArgs) -> Result<(), Failure> {
    use std::io::Read;
    let size =
        std::fs::metadata(&args.file).map_err(|e| fail(format!("{}: {e}", args.file.display())))?.len();
    let io = meridian::stream::IoMode::from_env().map_err(fail)?;
    let cold = args.cold && drop_caches().is_ok();
    let mut times: Vec<(&str, Vec<Duration>)> =
        ["io_uring streamer", "std::fs read loop", "memmap2", "dd iflag=direct"]
            .iter()
            .map(|n| (*n, Vec::new()))
            .collect();
    let mut how = String::new();
    let mut dd_note = None;
    for run in 0..=args.runs {
        for (k, (_, ts)) in times.iter_mut().enumerate() {
            if cold {
                drop_caches().map_err(fail)?;
            }
            let t = Instant::now();
            match k {
                0 => {
                    let r = meridian::stream::staged_read(&args.file, args.chunk, args.in_flight, io)
                        .map_err(|e| fail(format!("{}: {e}", args.file.display())))?;
                    how = r.how;
                }
                1 => {
                    let mut f = std::fs::File::open(&args.file).map_err(|e| fail(e.to_string()))?;
                    let mut buf = vec![0u8; args.chunk];
                    let mut total = 0u64;
                    loop {
                        match f.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => total += n as u64,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(fail(e.to_string())),
                        }
                    }
                    std::hint::black_box(total);
                }
                2 => {
                    let f = std::fs::File::open(&args.file).map_err(|e| fail(e.to_string()))?;
                    // SAFETY: the file is only read, and nothing in this process writes it; a
                    // concurrent writer elsewhere could change the bytes seen, which only the
                    // checksum (thrown away) would notice.
                    let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| fail(e.to_string()))?;
                    let _ = map.advise(memmap2::Advice::Sequential);
                    let sum: u64 = map.iter().step_by(4096).map(|&b| u64::from(b)).sum();
                    std::hint::black_box(sum);
                }
                _ => match dd_direct(&args.file, args.chunk) {
                    Ok(_) => {}
                    Err(e) => {
                        dd_note = Some(e);
                        continue;
                    }
                },
            }
            if run > 0 {
                ts.push(t.elapsed());
            }
        }
    }
    let mut s = String::new();
    let gb = size as f64 / 1e9;
    let _ = writeln!(
        s,
        "meridian bench stream: {} ({:.2} GB), reads of {} MiB, {} in flight, {} runs each, {}",
        args.file.display(),
        gb,
        args.chunk >> 20,
        args.in_flight,
        args.runs,
        if cold { "cold (page cache dropped before every read)" } else { "warm (page cache not dropped)" }
    );
    let _ = writeln!(s, "  streamer path: {how}");
    let streamer = median(&times[0].1);
    for (name, ts) in &times {
        if ts.is_empty() {
            let _ = writeln!(s, "  {name:<18} skipped: {}", dd_note.clone().unwrap_or_default());
            continue;
        }
        let m = median(ts);
        let ratio = if *name == "io_uring streamer" {
            String::new()
        } else {
            format!("; streamer is {:.2}× its rate", m.as_secs_f64() / streamer.as_secs_f64())
        };
        let _ = writeln!(
            s,
            "  {name:<18} median {:.3} s, {:.2} GB/s{ratio}",
            m.as_secs_f64(),
            gb / m.as_secs_f64()
        );
    }
    print(&s);
    Ok(())
}

/// Options of `meridian bench placement`.
#[derive(Debug)]
pub struct PlacementArgs {
    /// The largest job, in rows (the sweep goes up by 4× from 1,024).
    pub max_rows: usize,
    /// Timed runs per size and backend.
    pub runs: usize,
    /// CPU workers (`None`: all cores).
    pub workers: Option<usize>,
    /// The data folder with the countries.
    pub data: Option<PathBuf>,
}

/// Arithmetic over points (each point's distance from the origin): the arithmetic class.
const NORM: &str = ".program norm\n.input pts points\n.output d f64\n load g0, pts\n x f0, g0\n y f1, g0\n \
                    mul f2, f0, f0\n mul f3, f1, f1\n add f2, f2, f3\n sqrt f2, f2\n store d, f2\n halt\n";

/// One class's sweep: its name, program and inputs besides the points.
struct Sweep {
    name: &'static str,
    source: &'static str,
    zones: Option<Input>,
}

/// Median time of the sweep's program over `pts[1..]` on `engine`, after an untimed job over
/// `pts[0]` (which makes the GPU's inputs resident): the same points again each run, or with
/// `fresh` new points each run (uploaded every time).
fn timed(
    engine: &Engine,
    sweep: &Sweep,
    pts: &[Arc<GeometryColumn>],
    fresh: bool,
) -> Result<Duration, String> {
    let program = assemble("sweep.masm", sweep.source).map_err(|d| d.to_string())?;
    let prepared = engine.prepare(program.program()).map_err(|e| e.to_string())?;
    let bind = |p: &Arc<GeometryColumn>| {
        let mut inputs = vec![("pts", Input::rows(p.clone()))];
        if let Some(z) = &sweep.zones {
            inputs.push(("zones", z.clone()));
        }
        engine.bind(&prepared, inputs).map_err(|e| e.to_string())
    };
    let first = bind(&pts[0])?;
    engine.run(prepared.job(&first)).map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    for p in &pts[1..] {
        let bound = if fresh { bind(p)? } else { first.clone() };
        let t = Instant::now();
        engine.run(prepared.job(&bound)).map_err(|e| e.to_string())?;
        times.push(t.elapsed());
    }
    Ok(median(&times))
}

/// `meridian bench placement`: where the GPU starts to beat the CPU workers, measured by
/// class and size, against what the placement model (`place.rs`) predicts.
pub fn placement(args: &PlacementArgs) -> Result<(), Failure> {
    use meridian::place::{crossover, ProgramClass};
    if args.runs == 0 || args.max_rows < 1024 {
        return Err(fail("--runs must be at least 1 and --max-rows at least 1024".into()));
    }
    let countries = countries(args.data.clone())?;
    let sweeps = [
        Sweep { name: "join", source: demo::PROGRAM, zones: Some(Input::indexed(countries)) },
        Sweep { name: "arithmetic", source: NORM, zones: None },
    ];
    let mut builder = Engine::builder().mode(Mode::Cpu);
    if let Some(w) = args.workers {
        builder = builder.workers(w);
    }
    let cpu = builder.build().map_err(|e| fail(e.to_string()))?;
    let workers = cpu.workers();
    let gpu = Engine::builder().mode(Mode::Gpu).workers(1).build();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "meridian bench placement: jobs of 1,024 to {} uniform points, {} timed runs each; CPU on {workers} workers; GPU: {}",
        demo::group(args.max_rows as u64),
        args.runs,
        gpu.as_ref().map_or_else(|e| format!("skipped ({e})"), |g| g.backend().reason.clone())
    );
    let sizes: Vec<usize> = std::iter::successors(Some(1024usize), |n| n.checked_mul(4))
        .take_while(|&n| n <= args.max_rows)
        .collect();
    for sweep in &sweeps {
        let program = assemble("sweep.masm", sweep.source).map_err(|d| fail(d.to_string()))?;
        let (class, instrs) = (ProgramClass::of(&program), program.instrs().len());
        // Up: 16 bytes a point; down: 9 bytes a row (an f64, or a hit's share).
        let model = |per_row| {
            crossover(class, instrs, workers, 0, per_row)
                .map_or_else(|| "never".to_owned(), |n| n.to_string())
        };
        let _ = writeln!(
            s,
            "  {} ({} instructions): the model crosses over at {} rows with the points resident, {} with them uploaded",
            sweep.name,
            instrs,
            model(9),
            model(25)
        );
        let (mut measured_resident, mut measured_fresh) = (None, None);
        for &n in &sizes {
            let pts: Vec<Arc<GeometryColumn>> = (0..=args.runs as u64)
                .map(|k| super::gen::uniform_points(k + 1, super::gen::WORLD, 0, n).map(Arc::new))
                .collect::<Result<_, _>>()
                .map_err(fail)?;
            let c = timed(&cpu, sweep, &pts, false).map_err(fail)?;
            let mut line = format!("    {:>10} rows: cpu {}", demo::group(n as u64), micros(c));
            if let Ok(g) = &gpu {
                let resident = timed(g, sweep, &pts, false).map_err(fail)?;
                let fresh = timed(g, sweep, &pts, true).map_err(fail)?;
                let _ = write!(line, ", gpu resident {}, gpu uploaded {}", micros(resident), micros(fresh));
                if resident < c && measured_resident.is_none() {
                    measured_resident = Some(n);
                }
                if fresh < c && measured_fresh.is_none() {
                    measured_fresh = Some(n);
                }
            }
            let _ = writeln!(s, "{line}");
        }
        if gpu.is_ok() {
            let at =
                |m: Option<usize>| m.map_or_else(|| "not in the sweep".to_owned(), |n| format!("{n} rows"));
            let _ = writeln!(
                s,
                "    measured: the GPU first wins at {} resident, {} uploaded",
                at(measured_resident),
                at(measured_fresh)
            );
        }
    }
    print(&s);
    Ok(())
}
