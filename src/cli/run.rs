//! `meridian run PROGRAM --input NAME=PATH ... --out DIR`: read inputs, run the program
//! through the Engine, write one CSV per output.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use meridian::bytecode::VerifiedProgram;
use meridian::kernels::column::GeometryColumn;
use meridian::kernels::interp::Input;
use meridian::kernels::interp::OutputColumn;
use meridian::kernels::io;
use meridian::stream::{FileBatches, IoMode, IpcStream, IpcStreamOptions, StreamOptions};
use meridian::{CancelCause, CancelToken, Engine, JobError, JobResult, Mode, Route};

use super::{print, Failure};

/// The program at `path`: bytecode if it starts with the magic, assembly otherwise.
pub fn load_program(path: &Path) -> Result<VerifiedProgram, Failure> {
    meridian::bytecode::load(path).map_err(|e| Failure::input(e.lines()))
}

/// Reads a geometry column of any format the readers take, by file name.
pub fn read_input(path: &Path) -> Result<GeometryColumn, Failure> {
    if io::Format::from_path(path).is_none() {
        return Err(Failure::input([format!(
            "{}: error: unknown input format (expected {})",
            path.display(),
            io::Format::NAMES
        )]));
    }
    // Text is held whole: it counts against the memory budget, when there is one.
    let budget = meridian::memory_budget_from_env().map_err(|e| Failure::input([format!("error: {e}")]))?;
    io::read_geometry_within(path, budget).map_err(|e| Failure::input([format!("error: {e}")]))
}

/// How `meridian run` writes outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// `NAME.csv`.
    Csv,
    /// `NAME.parquet` (GeoParquet for geometry outputs).
    Parquet,
    /// `NAME.arrow` (the Arrow IPC file format).
    Arrow,
}

impl OutputFormat {
    /// From its command-line name.
    pub fn parse(name: &str) -> Option<OutputFormat> {
        match name {
            "csv" => Some(OutputFormat::Csv),
            "parquet" => Some(OutputFormat::Parquet),
            "arrow" => Some(OutputFormat::Arrow),
            _ => None,
        }
    }

    fn columnar(self) -> io::Columnar {
        if self == OutputFormat::Parquet {
            io::Columnar::Parquet
        } else {
            io::Columnar::ArrowFile
        }
    }

    fn extension(self) -> &'static str {
        match self {
            OutputFormat::Csv => "csv",
            OutputFormat::Parquet => "parquet",
            OutputFormat::Arrow => "arrow",
        }
    }
}

/// Options of `meridian run`.
#[derive(Debug)]
pub struct RunArgs {
    /// The program.
    pub program: PathBuf,
    /// `NAME=PATH` pairs.
    pub inputs: Vec<String>,
    /// Execution mode (`None`: `MERIDIAN_EXECUTION_MODE`, then auto).
    pub mode: Option<Mode>,
    /// What runs CPU jobs' rows.
    pub route: Route,
    /// What runs GPU jobs' rows.
    pub gpu_route: Route,
    /// Print each job's plan and why (a streamed run: the first batch's and each change).
    pub explain: bool,
    /// Output folder.
    pub out: PathBuf,
    /// Worker threads (`None`: all cores).
    pub workers: Option<usize>,
    /// How outputs are written.
    pub format: OutputFormat,
    /// Rows per batch when streaming a columnar row input (0: read it whole first; `None`:
    /// the planner's, [`Engine::stream_batch_rows`]).
    pub batch_rows: Option<usize>,
    /// The time the run's jobs may take, counted once the inputs read whole (all but a
    /// streamed one) have been read.
    pub timeout: Option<std::time::Duration>,
}

/// A job (or stream) that did not give a result: stopped runs get the exit statuses a shell
/// user knows — 124 for a timeout (as `timeout(1)`), 130 for Ctrl-C — and every other
/// failure is bad input (2). Nothing is written either way.
fn job_failure(e: &JobError) -> Failure {
    match e {
        JobError::TimedOut(t) => Failure {
            lines: vec![format!(
                "error: timed out: the run took longer than --timeout {}s; nothing was written",
                t.as_secs_f64()
            )],
            code: 124,
        },
        JobError::Cancelled(CancelCause::Caller) => Failure {
            lines: vec!["error: interrupted (Ctrl-C): the job was stopped; nothing was written".into()],
            code: 130,
        },
        other => Failure::input([format!("error: {other}")]),
    }
}

/// `meridian run`.
pub fn run(args: &RunArgs) -> Result<(), Failure> {
    let input_err = |e: &dyn std::fmt::Display| Failure::input([format!("error: {e}")]);
    let t0 = Instant::now();
    let program = load_program(&args.program)?;
    let mut specs: Vec<(String, PathBuf)> = Vec::new();
    for spec in &args.inputs {
        let Some((name, path)) = spec.split_once('=').filter(|(n, p)| !n.is_empty() && !p.is_empty()) else {
            return Err(Failure::input([format!("error: --input {spec:?}: expected NAME=PATH")]));
        };
        specs.push((name.to_string(), PathBuf::from(path)));
    }
    // No output may replace a file this run reads (the same file by device and inode, however
    // it is named): refused before anything is read or written.
    let outputs: Vec<PathBuf> = program
        .program()
        .outputs()
        .iter()
        .map(|o| args.out.join(format!("{}.{}", o.name, args.format.extension())))
        .collect();
    let read: Vec<&Path> =
        std::iter::once(args.program.as_path()).chain(specs.iter().map(|(_, p)| p.as_path())).collect();
    refuse_overwriting_inputs(&outputs, &read)?;
    let decls = program.program().inputs();
    let indexed = |name: &str| decls.iter().any(|d| d.name == name && d.indexed);
    // The program's only row input is streamed when it comes from a columnar file: its batches
    // run while the next ones are read.
    let row_inputs: Vec<&str> = decls.iter().filter(|d| !d.indexed).map(|d| d.name.as_str()).collect();
    let streamed = match row_inputs[..] {
        [only] if args.batch_rows != Some(0) => specs.iter().position(|(n, p)| {
            n == only && io::Format::from_path(p).and_then(io::Format::columnar).is_some()
        }),
        _ => None,
    };
    let streamed = streamed.map(|k| specs.remove(k));
    let mut columns = Vec::new();
    for (name, path) in &specs {
        columns.push((name.clone(), Arc::new(read_input(path)?)));
    }
    let t_read = t0.elapsed();

    // Fallbacks from here on (the engine's, each job's, the reads') are said at the end.
    let events_before = meridian::events::recent().len();
    // The CLI autotunes (MERIDIAN_AUTOTUNE_PATH, or the cache directory; off with
    // MERIDIAN_AUTOTUNE=off): the second run of a pipeline starts from what the first learnt.
    let mut builder = Engine::builder().autotune_from_env().route(args.route).gpu_route(args.gpu_route);
    if let Some(m) = args.mode {
        builder = builder.mode(m);
    }
    if let Some(w) = args.workers {
        builder = builder.workers(w);
    }
    let engine = builder.build().map_err(|e| input_err(&e))?;
    let prepared = engine.prepare_verified(&program);
    // The run's jobs stop at its deadline, or on Ctrl-C.
    let token = args.timeout.map_or_else(CancelToken::new, CancelToken::with_timeout);
    #[cfg(unix)]
    let _ctrl_c = super::interrupt::watch(&token);

    // Outputs a streamed run wrote as it went: a line each for the report.
    let mut sunk = Vec::new();
    let (result, rows, t_bind, t_run, how, plans) = match &streamed {
        None => {
            let t1 = Instant::now();
            let bound = engine.bind(&prepared, columns).map_err(|e| input_err(&e))?;
            let t_bind = t1.elapsed();
            let t2 = Instant::now();
            let result = engine.run(prepared.job(&bound).cancel_with(&token)).map_err(|e| job_failure(&e))?;
            let plans: Vec<String> = result.plan().map(|p| format!("plan: {p}")).into_iter().collect();
            (result, bound.rows() as u64, t_bind, t2.elapsed(), "run".to_owned(), plans)
        }
        Some((name, path)) => {
            // Hits go to their files as the batches finish: a stream's hits never gather in
            // memory (the memory budget bounds a batch's).
            let hits_outputs: Vec<&str> = program
                .program()
                .outputs()
                .iter()
                .filter(|o| o.kind == meridian::bytecode::OutputKind::Hits)
                .map(|o| o.name.as_str())
                .collect();
            let mut sink = HitsFiles::create(&args.out, &hits_outputs, args.format)?;
            let t1 = Instant::now();
            let others: Vec<(String, Input)> = columns
                .into_iter()
                .map(|(n, c)| {
                    let input = if indexed(&n) { Input::indexed(c) } else { Input::rows(c) };
                    (n, input)
                })
                .collect();
            let t_bind = t1.elapsed();
            let (batch_rows, batch_why) = match args.batch_rows {
                Some(n) => (n, "asked".to_owned()),
                // Points take 16 staging bytes a row; other geometry more, which the
                // readers' own batching then bounds.
                None => {
                    let (n, why) = engine.stream_batch_rows(16, IpcStreamOptions::default().batches_held);
                    (n, format!("planner: {why}"))
                }
            };
            let t2 = Instant::now();
            let (done, via) = if is_ipc_file(path)? {
                // An Arrow IPC file: read with io_uring into staging memory.
                let io = IoMode::from_env().map_err(|e| input_err(&e))?;
                let options = IpcStreamOptions { batch_rows, io, ..IpcStreamOptions::default() };
                let mut source = IpcStream::open(path, None, options).map_err(|e| input_err(&e))?;
                // With a GPU, batches go to it from page-locked staging.
                source.page_lock(&engine).map_err(|e| input_err(&e))?;
                let via = source.how();
                let (bytes, started) = (source.bytes_counter(), Instant::now());
                let bar = bytes_bar(source.file_len(), path);
                let done = engine.run_stream_into(
                    &prepared,
                    name,
                    source,
                    &others,
                    StreamOptions { cancel: Some(token.clone()), ..StreamOptions::default() },
                    &mut sink,
                    &mut |rows| {
                        bar.set_position(bytes.load(std::sync::atomic::Ordering::Relaxed));
                        let rate = rows as f64 / started.elapsed().as_secs_f64().max(1e-9) / 1e6;
                        bar.set_message(format!("{}: {rows} rows, {rate:.1} M rows/s", path.display()));
                    },
                );
                bar.finish_and_clear();
                (done, via)
            } else {
                let reader =
                    io::GeoBatchReader::with_batch_rows(path, None, batch_rows).map_err(|e| input_err(&e))?;
                let bar = progress_bar(reader.rows_hint(), path);
                let done = engine.run_stream_into(
                    &prepared,
                    name,
                    FileBatches::new(reader, batch_rows),
                    &others,
                    StreamOptions { cancel: Some(token.clone()), ..StreamOptions::default() },
                    &mut sink,
                    &mut |rows| bar.set_position(rows),
                );
                bar.finish_and_clear();
                (done, "the parquet/arrow readers".to_owned())
            };
            let done = done.map_err(|e| match &e {
                meridian::stream::StreamError::Job { source, .. }
                    if matches!(source, JobError::TimedOut(_) | JobError::Cancelled(CancelCause::Caller)) =>
                {
                    job_failure(source)
                }
                _ => input_err(&e),
            })?;
            let how = format!(
                "read `{name}` ({via}) and run, streamed in {} batches of at most {batch_rows} rows ({batch_why}),",
                done.batches
            );
            let plans = done.plans.iter().map(|(batch, p)| format!("plan from batch {batch}: {p}")).collect();
            sunk = sink.finish(&done.sunk)?;
            (done.result, done.rows, t_bind, t2.elapsed(), how, plans)
        }
    };

    let t3 = Instant::now();
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Failure::input([format!("{}: error: cannot create: {e}", args.out.display())]))?;
    let mut pending = sunk;
    pending.extend(write_outputs(&result, &args.out, args.format)?);
    // Stopped after the jobs finished (Ctrl-C while writing): nothing is put in place.
    if let Some(why) = token.stopped() {
        return Err(job_failure(&match why {
            meridian::StopReason::Cancelled => JobError::Cancelled(CancelCause::Caller),
            meridian::StopReason::TimedOut(t) => JobError::TimedOut(t),
        }));
    }
    let written = commit_outputs(pending)?;
    let t_write = t3.elapsed();

    // The job's backend: under `auto` with a GPU, small jobs and programs the GPU does not
    // run go to the CPU, and the line says why.
    let backend = result.backend();
    let mut report = String::new();
    let _ = writeln!(report, "backend: {} ({})", backend.name(), backend.reason);
    // A GPU job's route is the GPU's (its kernel's compile is in the backend line).
    let on_gpu = backend.name() == "cuda";
    let compiled = match prepared.jit_compile_time() {
        Some(t) if result.route() == "jit" && !on_gpu => {
            format!(", compiled in {:.2} ms", t.as_secs_f64() * 1e3)
        }
        _ => String::new(),
    };
    let asked = if on_gpu { args.gpu_route } else { args.route };
    let _ = writeln!(report, "route: {} (asked: {asked}{compiled})", result.route());
    if args.explain {
        for plan in &plans {
            let _ = writeln!(report, "{plan}");
        }
    }
    let on =
        if backend.name() == "cpu" { format!("{} workers", engine.workers()) } else { "the GPU".to_owned() };
    let _ = writeln!(
        report,
        "program `{}` over {rows} rows on {on}, {} attempt(s)",
        program.program().name(),
        result.attempts()
    );
    for line in written {
        let _ = writeln!(report, "wrote {line}");
    }
    // The run's jobs are done: races still open and the records this run applied are saved
    // now, and said with the rest.
    engine.shutdown();
    for line in engine.autotune_log() {
        let _ = writeln!(report, "{line}");
    }
    for event in meridian::events::recent().iter().skip(events_before) {
        let _ = writeln!(report, "event: {event}");
    }
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let _ = writeln!(
        report,
        "time: read {:.1} ms, bind+index {:.1} ms, {how} {:.1} ms ({:.2} M rows/s), write {:.1} ms",
        ms(t_read),
        ms(t_bind),
        ms(t_run),
        rows as f64 / t_run.as_secs_f64().max(1e-9) / 1e6,
        ms(t_write)
    );
    print(&report);
    Ok(())
}

/// Refuses to write any of `outputs` when it is the same file as one of `inputs`.
pub fn refuse_overwriting_inputs(outputs: &[PathBuf], inputs: &[&Path]) -> Result<(), Failure> {
    for out in outputs {
        if let Some(input) = inputs.iter().find(|i| io::same_file(out, i)) {
            return Err(Failure::input([format!(
                "{}: error: this output is the input {} (the same file); refusing to replace an input",
                out.display(),
                input.display()
            )]));
        }
    }
    Ok(())
}

/// True when `path` starts as an Arrow IPC file does (`ARROW1`), as opposed to a stream.
/// Anything but a regular file is an error here, before any reader opens it (a pipe would be
/// read twice: the sniff would take its first bytes and the reader block for more).
fn is_ipc_file(path: &Path) -> Result<bool, Failure> {
    use std::io::Read;
    let mut opened = io::open_input(path, false).map_err(|e| Failure::input([format!("error: {e}")]))?;
    let mut head = [0u8; 6];
    Ok(opened.file.read_exact(&mut head).is_ok() && &head == b"ARROW1")
}

/// A progress bar on stderr for a streamed read (hidden when stderr is not a terminal).
fn progress_bar(rows: Option<u64>, path: &Path) -> ProgressBar {
    let bar = match rows {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = if rows.is_some() {
        "{msg} [{bar:30}] {human_pos}/{human_len} rows, {per_sec}, {eta} left"
    } else {
        "{msg} {spinner} {human_pos} rows, {per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(path.display().to_string());
    bar
}

/// A progress bar on stderr for a file streamed through staging memory: bytes read of the
/// file's size (MB/s, ETA), rows and rows/s in the message (hidden when stderr is not a
/// terminal).
fn bytes_bar(len: u64, path: &Path) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes}, {binary_bytes_per_sec}, {eta} left";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(path.display().to_string());
    bar
}

/// An output written to its temporary file, to be put in place with the run's others: its
/// file and the line that reports it.
pub struct Written(io::AtomicFile, String);

/// Puts every written output in place, one after the other, only once all were written (a
/// run that fails on its third output has replaced none); returns their lines.
pub fn commit_outputs(written: Vec<Written>) -> Result<Vec<String>, Failure> {
    let mut lines = Vec::new();
    for Written(file, line) in written {
        let target = file.target().display().to_string();
        file.commit().map_err(|e| Failure::input([format!("{target}: error: cannot write: {e}")]))?;
        lines.push(line);
    }
    Ok(lines)
}

/// Writes every output of `result` as `DIR/<name>.<csv|parquet|arrow>`, to temporary files
/// for [`commit_outputs`].
pub fn write_outputs(result: &JobResult, dir: &Path, format: OutputFormat) -> Result<Vec<Written>, Failure> {
    let mut written = Vec::new();
    for (name, column) in result.outputs() {
        let path = dir.join(format!("{name}.{}", format.extension()));
        let line = |what: String| format!("{} ({what})", path.display());
        match format {
            OutputFormat::Csv => {
                let fail = |e: std::io::Error| {
                    Failure::input([format!("{}: error: cannot write: {e}", path.display())])
                };
                let mut w = io::AtomicFile::create(&path).map_err(fail)?;
                write_column(&mut w, name, column).and_then(|()| w.flush()).map_err(fail)?;
                written.push(Written(w, line(describe(column))));
            }
            OutputFormat::Parquet | OutputFormat::Arrow => {
                let fail =
                    |m: String| Failure::input([format!("{}: error: cannot write: {m}", path.display())]);
                if let OutputColumn::Hits(h) = column {
                    // In pieces: a table of every hit would be a second copy of them.
                    let mut w = HitsFiles::create(dir, &[name], format)?;
                    for piece in h.chunks(HITS_PIECE) {
                        meridian::stream::HitsSink::hits(&mut w, name, piece).map_err(fail)?;
                    }
                    written.extend(w.finish(&[(name.to_owned(), h.len() as u64)])?);
                    continue;
                }
                let (table, geo) = io::output_table(name, column).map_err(fail)?;
                let (_, file) = io::columnar::write_table_uncommitted(&path, format.columnar(), &table, geo)
                    .map_err(|e| fail(e.message))?;
                written.push(Written(file, line(describe(column))));
            }
        }
    }
    Ok(written)
}

/// Hits written to a columnar file at a time.
const HITS_PIECE: usize = 1 << 20;

/// Hits outputs written as they come (a stream's batches, or a job's hits a piece at a time),
/// each to a temporary file beside `DIR/<name>.<ext>`, put in place with the run's other
/// outputs ([`commit_outputs`]), so a failed run leaves the old files.
struct HitsFiles {
    files: Vec<(String, PathBuf, HitsFile)>,
}

enum HitsFile {
    Csv(io::AtomicFile),
    Columnar(Box<io::columnar::BatchWriter>),
}

impl HitsFiles {
    fn create(dir: &Path, names: &[&str], format: OutputFormat) -> Result<HitsFiles, Failure> {
        if !names.is_empty() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure::input([format!("{}: error: cannot create: {e}", dir.display())]))?;
        }
        let mut files = Vec::new();
        for name in names {
            let path = dir.join(format!("{name}.{}", format.extension()));
            let cannot = |m: &dyn std::fmt::Display| {
                Failure::input([format!("{}: error: cannot write: {m}", path.display())])
            };
            let file = match format {
                OutputFormat::Csv => {
                    let mut f = io::AtomicFile::create(&path).map_err(|e| cannot(&e))?;
                    f.write_all(b"row,id\n").map_err(|e| cannot(&e))?;
                    HitsFile::Csv(f)
                }
                _ => HitsFile::Columnar(Box::new(
                    io::columnar::BatchWriter::create(&path, format.columnar(), io::hits_schema())
                        .map_err(|e| cannot(&e.message))?,
                )),
            };
            files.push((name.to_string(), path, file));
        }
        Ok(HitsFiles { files })
    }

    /// Finishes every file, for [`commit_outputs`] (`counts`: hits per output, for the lines).
    fn finish(self, counts: &[(String, u64)]) -> Result<Vec<Written>, Failure> {
        let mut written = Vec::new();
        for (name, path, file) in self.files {
            let cannot = |m: &dyn std::fmt::Display| {
                Failure::input([format!("{}: error: cannot write: {m}", path.display())])
            };
            let file = match file {
                HitsFile::Csv(mut f) => {
                    f.flush().map_err(|e| cannot(&e))?;
                    f
                }
                HitsFile::Columnar(w) => w.into_file().map_err(|e| cannot(&e.message))?.1,
            };
            let n = counts.iter().find(|(c, _)| *c == name).map_or(0, |(_, n)| *n);
            written.push(Written(file, format!("{} ({n} hits)", path.display())));
        }
        Ok(written)
    }
}

impl meridian::stream::HitsSink for HitsFiles {
    fn takes(&self, name: &str) -> bool {
        self.files.iter().any(|(n, _, _)| n == name)
    }

    fn hits(&mut self, name: &str, hits: &[(u32, u32)]) -> Result<(), String> {
        let Some((_, _, file)) = self.files.iter_mut().find(|(n, _, _)| n == name) else { return Ok(()) };
        match file {
            HitsFile::Csv(f) => {
                hits.iter().try_for_each(|(row, id)| writeln!(f, "{row},{id}")).map_err(|e| e.to_string())
            }
            HitsFile::Columnar(w) => w.write(&io::hits_batch(hits)?).map_err(|e| e.message),
        }
    }
}

/// What an output holds, in a few words.
fn describe(column: &OutputColumn) -> String {
    match column {
        OutputColumn::F64(c) => format!("{} rows", c.len()),
        OutputColumn::Bool(c) => format!("{} rows", c.len()),
        OutputColumn::Geometry(c) => format!("{} rows", c.len()),
        OutputColumn::Hits(h) => format!("{} hits", h.len()),
        OutputColumn::Count(n) => format!("count {n}"),
        OutputColumn::Sum(v) => format!("sum {v}"),
    }
}

fn write_column(w: &mut impl Write, name: &str, column: &OutputColumn) -> std::io::Result<()> {
    match column {
        OutputColumn::F64(c) => {
            writeln!(w, "row,{name}")?;
            for (row, v) in c.iter().enumerate() {
                match v {
                    Some(x) if x.is_nan() => writeln!(w, "{row},NaN")?,
                    Some(x) => writeln!(w, "{row},{x}")?,
                    None => writeln!(w, "{row},")?,
                }
            }
        }
        OutputColumn::Bool(c) => {
            writeln!(w, "row,{name}")?;
            for (row, v) in c.iter().enumerate() {
                match v {
                    Some(b) => writeln!(w, "{row},{b}")?,
                    None => writeln!(w, "{row},")?,
                }
            }
        }
        OutputColumn::Geometry(c) => {
            writeln!(w, "row,{name}")?;
            for row in 0..c.len() {
                match c.get(row) {
                    // WKT has commas: always quoted (it never contains a quote).
                    Some(g) => writeln!(w, "{row},\"{}\"", io::to_wkt(Some(&g)))?,
                    None => writeln!(w, "{row},")?,
                }
            }
        }
        OutputColumn::Hits(h) => {
            writeln!(w, "row,id")?;
            for (row, id) in h {
                writeln!(w, "{row},{id}")?;
            }
        }
        OutputColumn::Count(n) => {
            writeln!(w, "value\n{n}")?;
        }
        OutputColumn::Sum(v) => {
            if v.is_nan() {
                writeln!(w, "value\nNaN")?;
            } else {
                writeln!(w, "value\n{v}")?;
            }
        }
    }
    Ok(())
}
