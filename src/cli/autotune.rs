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

/// `meridian autotune show`: one line per record.
pub fn show() -> Result<(), Failure> {
    let Some(p) = path()? else {
        print(&off());
        return Ok(());
    };
    let store = open(&p)?;
    let mut s = String::new();
    let _ = writeln!(s, "{}: {} record(s)", p.display(), store.len());
    for (k, r) in store.records() {
        let _ = writeln!(
            s,
            "  {} {} rows~2^{} {} on {}: {} ({:.1}% faster, {} pairs, spread {:.3})",
            k.program.chars().take(12).collect::<String>(),
            k.binding,
            k.rows_class,
            k.family,
            k.adapter,
            r.params,
            r.gain * 100.0,
            r.timing.samples,
            r.timing.spread
        );
    }
    print(&s);
    Ok(())
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
