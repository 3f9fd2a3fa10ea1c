//! `meridian demo`: the cities × countries join on the shipped data, printed as a report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use meridian::demo::{self, group, Options, Report};
use meridian::Mode;

use super::{print, Failure};

/// How many countries the table lists.
const TOP: usize = 12;

/// The data folder: `DIR` if given; else `./data` when it holds the demo's files (a clone's
/// root); else the `data` folder of the source tree this binary was built from.
pub fn data_dir(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        let here = PathBuf::from("data");
        if here.join(demo::PLACES_FILE).is_file() {
            here
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
        }
    })
}

/// `meridian demo`.
pub fn run(
    data: Option<PathBuf>,
    out: PathBuf,
    mode: Option<Mode>,
    workers: Option<usize>,
) -> Result<(), Failure> {
    let options = Options { data: data_dir(data), out, mode, workers };
    let report = demo::run(&options).map_err(|e| Failure::input([format!("error: {e}")]))?;
    print(&render(&report));
    Ok(())
}

fn render(r: &Report) -> String {
    let mut s = String::new();
    let (places, countries) = (r.places.names.len(), r.countries.names.len());
    let _ = writeln!(
        s,
        "meridian demo: {} GeoNames places × {} Natural Earth countries, examples/pip_join.masm",
        group(places as u64),
        group(countries as u64)
    );
    if r.backend.name() == "cpu" {
        let _ = writeln!(s, "backend: cpu on {} workers ({})", r.workers, r.backend.reason);
    } else {
        let _ = writeln!(s, "backend: {} ({})", r.backend.name(), r.backend.reason);
    }
    let _ = writeln!(s);
    let _ =
        writeln!(s, "  #  {:<26} {:<4} {:>8} {:>9} {:>7}", "country", "code", "places", "GeoNames", "agree");
    for (i, c) in r.per_country.iter().take(TOP).enumerate() {
        let agree = if c.places == 0 { 0.0 } else { 100.0 * c.agree as f64 / c.places as f64 };
        let _ = writeln!(
            s,
            " {:>2}  {:<26} {:<4} {:>8} {:>9} {:>6.1}%",
            i + 1,
            truncate(&r.countries.names[c.row as usize], 26),
            r.countries.codes[c.row as usize].as_deref().unwrap_or("-"),
            group(c.places),
            group(c.coded),
            agree
        );
    }
    let _ = writeln!(
        s,
        "     (places: inside the outline; GeoNames: coded so by GeoNames; agree: share of places coded so)"
    );
    let _ = writeln!(s);
    let a = &r.agreement;
    let _ = writeln!(
        s,
        "pairs: {} (place, country); {} places in no outline",
        group(r.pairs.len() as u64),
        group(a.outside as u64)
    );
    let _ = writeln!(
        s,
        "agreement with GeoNames country_code: {:.2}% ({} of {} places)",
        100.0 * a.rate(),
        group(a.agree as u64),
        group(a.places as u64)
    );
    let _ = writeln!(s, "{}", a.explanation());
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let st = &r.stages;
    let _ = writeln!(
        s,
        "time: load {:.1} ms, index {:.1} ms, join {:.1} ms ({:.2} M points/s), write {:.1} ms",
        ms(st.load),
        ms(st.index),
        ms(st.join),
        r.points_per_second() / 1e6,
        ms(st.write)
    );
    for (path, what) in &r.written {
        let _ = writeln!(s, "wrote {} ({what})", path.display());
    }
    s
}

fn truncate(name: &str, width: usize) -> String {
    if name.chars().count() <= width {
        name.to_string()
    } else {
        let mut t: String = name.chars().take(width - 1).collect();
        t.push('…');
        t
    }
}
