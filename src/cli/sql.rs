//! `meridian sql`: a query on a local DataFusion context with meridian registered (the
//! `meridian-datafusion` crate). Built with the `sql` feature only, so the default build does
//! not compile DataFusion; without it the command says how to get it.

use std::path::PathBuf;

use super::Failure;

/// Options of `meridian sql`.
#[derive(Debug)]
// Read only by the `sql` feature's command (the other says how to get it).
#[cfg_attr(not(feature = "sql"), allow(dead_code))]
pub struct SqlArgs {
    /// The query.
    pub query: String,
    /// `NAME=PATH` tables.
    pub tables: Vec<String>,
    /// Where the result goes (`.parquet`, else CSV); printed without.
    pub out: Option<PathBuf>,
    /// Print the physical plan before running.
    pub explain: bool,
    /// Print the physical plan and run nothing.
    pub explain_only: bool,
}

/// `meridian sql`.
#[cfg(feature = "sql")]
pub fn sql(args: &SqlArgs) -> Result<(), Failure> {
    use std::io::Write as _;
    keep_freed_memory();
    let mut tables = Vec::new();
    for spec in &args.tables {
        let Some((name, path)) = spec.split_once('=').filter(|(n, p)| !n.is_empty() && !p.is_empty()) else {
            return Err(Failure::input([format!("error: --table {spec:?}: expected NAME=PATH")]));
        };
        tables.push((name.to_owned(), PathBuf::from(path)));
    }
    let engine = meridian::Engine::builder().build().map_err(|e| Failure::input([format!("error: {e}")]))?;
    let engine = std::sync::Arc::new(engine);
    let query = meridian_datafusion::sql::SqlArgs {
        query: args.query.clone(),
        tables,
        out: args.out.clone(),
        plan_only: args.explain_only,
    };
    // The plan as soon as it is made: a query that runs for minutes shows it first.
    let show_plan = |plan: &str| {
        if args.explain || args.explain_only {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{plan}");
            let _ = out.flush();
        }
    };
    let report = meridian_datafusion::sql::run_with(&query, engine.clone(), show_plan)
        .map_err(|e| Failure::input([format!("error: {}", e.to_string().replace('\n', " "))]))?;
    let mut out = std::io::stdout().lock();
    if args.explain_only {
        let _ = writeln!(out, "planned in {:.3} s; not run (--explain-only)", report.took.as_secs_f64());
        return Ok(());
    }
    if let Some(table) = &report.printed {
        let _ = writeln!(out, "{table}");
    }
    let dest = args.out.as_ref().map(|p| format!(" to {}", p.display())).unwrap_or_default();
    let _ = writeln!(
        out,
        "{} rows{dest} in {:.3} s; backend: {} ({})",
        report.rows,
        report.took.as_secs_f64(),
        engine.backend().name(),
        engine.backend().reason
    );
    Ok(())
}

/// `meridian sql` in a build without the `sql` feature.
#[cfg(not(feature = "sql"))]
pub fn sql(_args: &SqlArgs) -> Result<(), Failure> {
    Err(Failure::input([
        "error: this build of meridian has no SQL: build it with `--features sql` (DataFusion)".to_owned(),
    ]))
}

/// Tunes glibc's allocator for one query: blocks up to 32 MiB (Arrow's batches and Parquet's
/// pages) come from the heap, not fresh `mmap`s, and freed memory stays for the next batch up to
/// 1 GiB. By default glibc maps a large block for each and unmaps it when freed, so every batch
/// paid page faults and zeroed pages again: with this, SpatialBench SF1's Q4 0.37 -> 0.35 s and
/// Q7 2.4 -> 2.2 s (2026-12-07). Only `meridian sql` does this (a process that runs one query
/// and exits); `meridian run` keeps glibc's defaults, under its memory budget.
#[cfg(feature = "sql")]
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets two of glibc's allocator parameters under the allocator's own locks;
    // it touches no memory of ours, and a value it refuses leaves the default (slower, not
    // wrong).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
