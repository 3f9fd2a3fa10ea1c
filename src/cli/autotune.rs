//! `meridian autotune show | path | clear | export FILE`: the store of what earlier runs
//! learnt (`MERIDIAN_AUTOTUNE_PATH`, `MERIDIAN_AUTOTUNE=off`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use meridian::autotune::Store;

use super::{print, Failure};

fn fail(message: impl std::fmt::Display) -> Failure {
    Failure::input([format!("error: {message}")])
}

/// The store's path, or why there is none.
fn path() -> Result<Option<std::path::PathBuf>, Failure> {
    Store::path_from_env().map_err(fail)
}

fn open(path: &Path) -> Result<Store, Failure> {
    let opened = Store::open(path).map_err(fail)?;
    for w in &opened.warnings {
        eprintln!("warning: {w}");
    }
    Ok(opened.store)
}

fn off() -> String {
    format!("autotune is off ({})\n", Store::off_reason())
}

/// `meridian autotune path`.
pub fn show_path() -> Result<(), Failure> {
    match path()? {
        Some(p) => print(&format!("{}\n", p.display())),
        None => print(&off()),
    }
    Ok(())
}

/// `meridian autotune show [--json]`: each record explained (or the store's JSON).
pub fn show(json: bool) -> Result<(), Failure> {
    let Some(p) = path()? else {
        print(&if json { "{\"records\": []}\n".to_owned() } else { off() });
        return Ok(());
    };
    let store = open(&p)?;
    if json {
        print(&(store.to_json() + "\n"));
        return Ok(());
    }
    let open_races = store.records().filter(|(_, r)| !r.is_decided()).count();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} record(s) ({} verdict(s), {open_races} race(s) in progress)",
        p.display(),
        store.len(),
        store.len() - open_races
    );
    for (k, r) in store.records() {
        explain(&mut s, k, r);
    }
    print(&s);
    Ok(())
}

/// One record in words: what it is about, what it decided (or how far its race got), the
/// evidence, where and when, and who applied it.
fn explain(s: &mut String, k: &meridian::autotune::Key, r: &meridian::autotune::Record) {
    let _ = writeln!(
        s,
        "\n{} (program {}, inputs {}, jobs of ~2^{} rows)",
        k.family,
        k.program.chars().take(12).collect::<String>(),
        k.binding,
        k.rows_class
    );
    let _ = writeln!(s, "  machine: {}", k.adapter);
    let when = |ms: u64| format!("{} UTC", utc(ms));
    if let Some(race) = &r.pending {
        let more = race.more_pairs.map_or_else(String::new, |m| format!("; about {m} more needed"));
        let _ = writeln!(
            s,
            "  racing {} against the default: {} pair(s) so far{more} (saved {}; the next run continues it)",
            race.candidate,
            race.pairs.len(),
            when(r.recorded_at_ms)
        );
        return;
    }
    let _ = writeln!(s, "  winner: {}", r.params);
    match &r.verdict {
        Some(v) => {
            let _ = writeln!(s, "  raced: {} against the default, {}", v.candidate, v.why);
            if let Some(e) = v.effect {
                let _ = writeln!(
                    s,
                    "  effect of {}: {} (90% interval {} to {}), {} pairs",
                    v.candidate,
                    speed(e.speedup),
                    speed(e.low),
                    speed(e.high),
                    e.pairs
                );
            }
        }
        None => {
            let _ = writeln!(
                s,
                "  evidence: {:.1}% faster, {} pairs, spread {:.3}",
                r.gain * 100.0,
                r.timing.samples,
                r.timing.spread
            );
        }
    }
    if r.compile_cost_ns > 0 {
        let _ = writeln!(s, "  one-time cost: {:.2} ms (the JIT's compile)", r.compile_cost_ns as f64 / 1e6);
    }
    let _ = writeln!(s, "  decided: {}", when(r.recorded_at_ms));
    if r.loads.is_empty() {
        let _ = writeln!(s, "  loaded by: no run yet");
    }
    for l in &r.loads {
        let _ = writeln!(s, "  loaded by: {} ({})", l.run, when(l.at_ms));
    }
}

/// A speed-up as words: "12.0% faster", "3.1% slower".
fn speed(fraction: f64) -> String {
    if fraction >= 0.0 {
        format!("{:.1}% faster", fraction * 100.0)
    } else {
        format!("{:.1}% slower", -fraction * 100.0)
    }
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS` (UTC; the civil calendar from
/// days, as in Howard Hinnant's algorithm).
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rest / 3600, rest / 60 % 60, rest % 60)
}

/// `meridian autotune clear`.
pub fn clear() -> Result<(), Failure> {
    let Some(p) = path()? else {
        print(&off());
        return Ok(());
    };
    let mut store = open(&p)?;
    let n = store.len();
    store.clear().map_err(fail)?;
    print(&format!("{}: cleared {n} record(s)\n", p.display()));
    Ok(())
}

/// `meridian autotune export FILE`: the records as JSON.
pub fn export(file: &Path) -> Result<(), Failure> {
    let Some(p) = path()? else {
        return Err(fail(format!("autotune is off ({}): nothing to export", Store::off_reason())));
    };
    if meridian::kernels::io::same_file(file, &p) {
        return Err(fail(format!("{}: this is the store itself; export to another file", file.display())));
    }
    let store = open(&p)?;
    let cannot = |e: std::io::Error| fail(format!("{}: {e}", file.display()));
    let mut out = meridian::kernels::io::AtomicFile::create(file).map_err(cannot)?;
    out.write_all((store.to_json() + "\n").as_bytes()).and_then(|()| out.commit()).map_err(cannot)?;
    print(&format!("wrote {} ({} record(s) from {})\n", file.display(), store.len(), p.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(super::utc(1_796_538_386_049), "2026-12-06 06:26:26");
    }
}
