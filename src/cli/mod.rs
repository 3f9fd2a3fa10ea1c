//! Subcommands of the `meridian` program, one module per family.

pub mod autotune;
pub mod bench;
pub mod bytecode;
pub mod convert;
pub mod demo;
pub mod gen;
#[cfg(unix)]
pub mod interrupt;
pub mod run;
pub mod sql;

use std::io::Write;

/// A failed command: the lines to print on stderr and the exit status.
#[derive(Debug)]
pub struct Failure {
    /// One line per problem (a line may carry a caret display below it).
    pub lines: Vec<String>,
    /// The process exit status.
    pub code: u8,
}

impl Failure {
    /// Bad input or usage: exit status 2.
    pub fn input(lines: impl IntoIterator<Item = String>) -> Failure {
        Failure { lines: lines.into_iter().collect(), code: 2 }
    }

    /// Prints the lines to stderr, ignoring a closed stderr.
    pub fn report(&self) {
        let mut err = std::io::stderr().lock();
        for line in &self.lines {
            let _ = writeln!(err, "{line}");
        }
    }
}

/// Writes to stdout; a closed pipe (`meridian disasm x.mbc | head`) ends output quietly
/// instead of panicking as `println!` would.
pub fn print(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// `meridian info`: the GPUs (the CUDA probe and NVML telemetry), then what decides where and
/// how jobs run here — the execution mode and its source, the memory budget, io_uring, the
/// CPU routes, the autotune store, events and strict mode.
pub fn info() -> Result<(), Failure> {
    use meridian::events::{LOG_ENV, STRICT_ENV};
    let mut s = format!("{}\n", meridian::driver::telemetry::snapshot());
    let mode = match meridian::resolve_mode(None) {
        Ok((m, from)) => format!("{} (from {from})", format!("{m:?}").to_lowercase()),
        Err(e) => format!("invalid: {e}"),
    };
    s.push_str(&format!("execution mode: {mode}\n"));
    let budget = match std::env::var(meridian::MEMORY_BUDGET_ENV) {
        Err(_) => format!("none ({} unset)", meridian::MEMORY_BUDGET_ENV),
        Ok(v) => match meridian::parse_bytes(&v) {
            Some(b) => format!("{b} bytes of output buffers a job (from {})", meridian::MEMORY_BUDGET_ENV),
            None => format!("invalid: {}={v:?} is not a size", meridian::MEMORY_BUDGET_ENV),
        },
    };
    s.push_str(&format!("memory budget: {budget}\n"));
    let uring = match meridian::stream::io_uring_available() {
        Ok(()) => "available (the streamer reads with it)".to_owned(),
        Err(why) => format!("unavailable ({why}); the streamer reads with pread"),
    };
    s.push_str(&format!("io_uring: {uring}\n"));
    let jit = if meridian::Route::jit_available() {
        "interp, jit (Cranelift); auto takes the JIT for a program once it is hot or wins its race"
    } else {
        "interp only (built without the jit feature)"
    };
    s.push_str(&format!("cpu routes: {jit}\n"));
    let store = match meridian::autotune::Store::path_from_env() {
        Ok(Some(p)) => p.display().to_string(),
        Ok(None) => format!("off ({})", meridian::autotune::Store::off_reason()),
        Err(e) => format!("invalid: {e}"),
    };
    s.push_str(&format!("autotune store (meridian run): {store}\n"));
    let log = match (std::env::var(LOG_ENV), meridian::env::event_log_writable()) {
        (Err(_), _) => format!("none ({LOG_ENV} unset)"),
        (Ok(path), Ok(())) => path,
        (Ok(_), Err(why)) => format!("unwritable: {why}"),
    };
    s.push_str(&format!("event log: {log}\n"));
    let strict = match meridian::events::strict_from_env() {
        Ok(on) => if on { "on" } else { "off" }.to_owned(),
        Err(e) => format!("invalid: {e}"),
    };
    s.push_str(&format!("strict native ({STRICT_ENV}): {strict}\n"));
    let environment = match meridian::env::check() {
        Ok(w) if w.is_empty() => "every MERIDIAN_* variable set is valid".to_owned(),
        Ok(w) => w.join("; "),
        Err(e) => format!("invalid: {e} (other commands refuse to start)"),
    };
    s.push_str(&format!("environment: {environment}\n"));
    // Where `auto` puts jobs with a GPU, by the cost model, for this machine's workers.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rows = |c: Option<usize>| c.map_or_else(|| "never".to_owned(), |n| format!("from {n} rows"));
    use meridian::place::{crossover, ProgramClass};
    s.push_str(&format!(
        "placement under auto with a GPU (cost model by program class, {workers} workers): a join {} with its \
         polygons resident, {} with 2 MiB of them to upload; 12 instructions of arithmetic {} with its \
         points resident, {} with them uploaded\n",
        rows(crossover(ProgramClass::Join, 12, workers, 0, 25)),
        rows(crossover(ProgramClass::Join, 12, workers, 2 << 20, 25)),
        rows(crossover(ProgramClass::Arithmetic, 12, workers, 0, 9)),
        rows(crossover(ProgramClass::Arithmetic, 12, workers, 0, 25)),
    ));
    // The variants an engine of the resolved mode registers here.
    let built = meridian::resolve_mode(None).map_err(|e| e.to_string()).and_then(|(mode, _)| {
        meridian::Engine::builder().mode(mode).workers(1).build().map_err(|e| e.to_string())
    });
    match built {
        Ok(engine) => {
            for v in engine.variants().variants() {
                s.push_str(&format!("variant {v}\n"));
            }
        }
        Err(e) => s.push_str(&format!("variants: none (no engine: {e})\n")),
    }
    print(&s);
    Ok(())
}
