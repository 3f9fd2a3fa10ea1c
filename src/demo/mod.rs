//! The demo pipeline behind `meridian demo`: every GeoNames place joined against the Natural
//! Earth countries with `examples/pip_join.masm` through the [`Engine`], checked against
//! GeoNames' own country codes, written as CSV files and a choropleth.
//!
//! It is a library function rather than CLI code so that the command prints it and a test
//! checks its numbers against an independent computation with the `geo` crate.
//!
//! ```no_run
//! let report = meridian::demo::run(&meridian::demo::Options::new("data", "out"))?;
//! println!("{} pairs, agreement {:.2}%", report.pairs.len(), 100.0 * report.agreement.rate());
//! # Ok::<(), meridian::demo::DemoError>(())
//! ```

mod agreement;
mod map;

pub use agreement::{Agreement, Territory};
pub use map::MAP_SIZE;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bytecode::assemble;
use crate::kernels::column::GeometryColumn;
use crate::kernels::io::{self, ReadError};
use crate::{Backend, Engine, EngineError, JobError, Mode};

/// The program the demo runs (the shipped `examples/pip_join.masm`, compiled in so the
/// demo runs from any directory).
pub const PROGRAM: &str = include_str!("../../examples/pip_join.masm");

/// The places file inside the data folder.
pub const PLACES_FILE: &str = "cities.csv.gz";
/// The countries file inside the data folder.
pub const COUNTRIES_FILE: &str = "countries.geojson";
/// The ISO 3166 alpha-3 → alpha-2 table inside the data folder.
pub const CODES_FILE: &str = "country_codes.csv";

/// Where the demo reads and writes, and how the engine is built.
#[derive(Clone, Debug)]
pub struct Options {
    /// The folder holding [`PLACES_FILE`], [`COUNTRIES_FILE`] and [`CODES_FILE`].
    pub data: PathBuf,
    /// The folder the outputs go to (created if missing).
    pub out: PathBuf,
    /// Execution mode (`None`: `MERIDIAN_EXECUTION_MODE`, then auto).
    pub mode: Option<Mode>,
    /// Worker threads (`None`: all cores).
    pub workers: Option<usize>,
}

impl Options {
    /// Reads from `data`, writes to `out`, default mode and workers.
    pub fn new(data: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Options {
        Options { data: data.into(), out: out.into(), mode: None, workers: None }
    }
}

/// Why the demo failed: one readable line each.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A data file could not be read or parsed.
    #[error("{0}")]
    Read(#[from] ReadError),
    /// A data file parsed but its content is not what the demo needs.
    #[error("{file}: {message}")]
    Data {
        /// The file (and line, where there is one).
        file: String,
        /// What was wrong.
        message: String,
    },
    /// The engine could not be built, or the program prepared or bound.
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// The join job failed.
    #[error("{0}")]
    Job(#[from] JobError),
    /// An output could not be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The map could not be drawn or encoded.
    #[error("{}: cannot draw the map: {message}", path.display())]
    Render {
        /// The PNG file.
        path: PathBuf,
        /// What the plotting library said.
        message: String,
    },
}

/// The GeoNames places: one point per row, with the place's name and GeoNames country code.
#[derive(Clone, Debug)]
pub struct Places {
    /// Lon/lat points.
    pub points: Arc<GeometryColumn>,
    /// Place names.
    pub names: Vec<String>,
    /// GeoNames' ISO 3166 alpha-2 code of each place (may be empty).
    pub codes: Vec<String>,
}

/// The Natural Earth countries: one (multi)polygon per row, with name and alpha-2 code.
#[derive(Clone, Debug)]
pub struct Countries {
    /// Lon/lat (multi)polygons.
    pub shapes: Arc<GeometryColumn>,
    /// Country names (`name` property).
    pub names: Vec<String>,
    /// ISO 3166 alpha-2 code of each country: from `iso_a3` through [`CODES_FILE`], or by
    /// name where Natural Earth has no code (`-99`); `None` when neither matches.
    pub codes: Vec<Option<String>>,
}

/// Reads the three data files from `data`.
pub fn load(data: &Path) -> Result<(Places, Countries), DemoError> {
    let path = data.join(PLACES_FILE);
    let table = io::read_csv(&path.display().to_string(), io::open(&path)?, &["name", "country_code"])?;
    let mut columns = table.columns.into_iter().map(|(_, v)| v);
    let (names, codes) = (columns.next().unwrap_or_default(), columns.next().unwrap_or_default());
    if let Some(row) = (0..table.geometry.len()).find(|&r| table.geometry.get(r).is_none()) {
        return Err(DemoError::Data {
            file: path.display().to_string(),
            message: format!("place {row} ({:?}) has no coordinates", names.get(row).map_or("", |s| s)),
        });
    }
    let places = Places { points: Arc::new(table.geometry), names, codes };

    let table = read_codes(&data.join(CODES_FILE))?;
    let path = data.join(COUNTRIES_FILE);
    let doc = io::read_geojson(&path.display().to_string(), &io::read_text(&path)?)?;
    let rows = doc.geometry.len();
    let names: Vec<String> =
        (0..rows).map(|r| doc.property_str(r, "name").unwrap_or("").to_string()).collect();
    let codes = (0..rows)
        .map(|r| {
            let by_a3 = doc.property_str(r, "iso_a3").and_then(|a3| table.iter().find(|(k, _, _)| k == a3));
            by_a3.or_else(|| table.iter().find(|(_, _, n)| *n == names[r])).map(|(_, a2, _)| a2.clone())
        })
        .collect();
    Ok((places, Countries { shapes: Arc::new(doc.geometry), names, codes }))
}

/// `(iso_a3, iso_a2, name)` rows of the code table.
fn read_codes(path: &Path) -> Result<Vec<(String, String, String)>, DemoError> {
    let name = path.display().to_string();
    let mut reader = csv::Reader::from_reader(io::open(path)?);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| DemoError::Data { file: name.clone(), message: e.to_string() })?;
        match (record.get(0), record.get(1), record.get(2)) {
            (Some(a3), Some(a2), Some(n)) => rows.push((a3.to_string(), a2.to_string(), n.to_string())),
            _ => {
                let line = record.position().map_or(0, |p| p.line());
                return Err(DemoError::Data {
                    file: format!("{name}:{line}"),
                    message: "expected iso_a3,iso_a2,name".into(),
                });
            }
        }
    }
    Ok(rows)
}

/// Wall time of each stage.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stages {
    /// Reading and parsing the data files.
    pub load: Duration,
    /// Binding the inputs, which builds the countries' index.
    pub index: Duration,
    /// The join job, submit to result.
    pub join: Duration,
    /// Writing the CSV files and drawing the map.
    pub write: Duration,
}

/// One country's line of the result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountryCount {
    /// Row in [`Countries`].
    pub row: u32,
    /// Places the join put in this country's outline.
    pub places: u64,
    /// Places GeoNames codes with this country's code.
    pub coded: u64,
    /// Places both agree on.
    pub agree: u64,
}

/// Everything the demo found and did.
#[derive(Debug)]
pub struct Report {
    /// Which backend ran the join, and why (under `auto` with a GPU, the job's own choice).
    pub backend: Backend,
    /// Engine worker threads.
    pub workers: usize,
    /// The places read.
    pub places: Places,
    /// The countries read.
    pub countries: Countries,
    /// `(place row, country row)` for every place inside a country, sorted.
    pub pairs: Vec<(u32, u32)>,
    /// Every country, most places first (ties by row).
    pub per_country: Vec<CountryCount>,
    /// The comparison with GeoNames' codes.
    pub agreement: Agreement,
    /// Stage timings.
    pub stages: Stages,
    /// The files written, with what each holds.
    pub written: Vec<(PathBuf, String)>,
}

impl Report {
    /// Join throughput: places per second of the join stage.
    pub fn points_per_second(&self) -> f64 {
        self.places.names.len() as f64 / self.stages.join.as_secs_f64().max(1e-9)
    }
}

/// Runs the whole demo: load, index, join, compare, write `pairs.csv`, `countries.csv` and
/// `demo.png` into `options.out`.
pub fn run(options: &Options) -> Result<Report, DemoError> {
    let t = Instant::now();
    let (places, countries) = load(&options.data)?;
    let load_time = t.elapsed();

    let mut builder = Engine::builder();
    if let Some(mode) = options.mode {
        builder = builder.mode(mode);
    }
    if let Some(workers) = options.workers {
        builder = builder.workers(workers);
    }
    let engine = builder.build()?;
    let program = assemble("examples/pip_join.masm", PROGRAM)
        .map_err(|d| DemoError::Data { file: "examples/pip_join.masm".into(), message: d.to_string() })?;
    let prepared = engine.prepare_verified(&program);

    let t = Instant::now();
    let bound =
        engine.bind(&prepared, [("pts", places.points.clone()), ("zones", countries.shapes.clone())])?;
    let index_time = t.elapsed();

    let t = Instant::now();
    let result = engine.run(prepared.job(&bound))?;
    let pairs = result.hits("pairs").map(<[_]>::to_vec).unwrap_or_default();
    let join_time = t.elapsed();

    let agreement = Agreement::compute(&places.codes, &countries.codes, &pairs, &countries.names);
    let per_country = count_per_country(&places, &countries, &pairs);

    let t = Instant::now();
    let written = write_outputs(&options.out, places.names.len(), &countries, &pairs, &per_country)?;
    let write_time = t.elapsed();

    Ok(Report {
        backend: result.backend().clone(),
        workers: engine.workers(),
        places,
        countries,
        pairs,
        per_country,
        agreement,
        stages: Stages { load: load_time, index: index_time, join: join_time, write: write_time },
        written,
    })
}

fn count_per_country(places: &Places, countries: &Countries, pairs: &[(u32, u32)]) -> Vec<CountryCount> {
    let mut counts: Vec<CountryCount> = (0..countries.names.len() as u32)
        .map(|row| CountryCount { row, places: 0, coded: 0, agree: 0 })
        .collect();
    for &(place, country) in pairs {
        let c = &mut counts[country as usize];
        c.places += 1;
        if countries.codes[country as usize].as_deref() == Some(places.codes[place as usize].as_str()) {
            c.agree += 1;
        }
    }
    // GeoNames' count per code, credited to every outline with that code (one each here).
    let mut by_code = std::collections::HashMap::<&str, u64>::new();
    for code in &places.codes {
        *by_code.entry(code.as_str()).or_default() += 1;
    }
    for c in &mut counts {
        if let Some(code) = &countries.codes[c.row as usize] {
            c.coded = by_code.get(code.as_str()).copied().unwrap_or(0);
        }
    }
    counts.sort_by(|a, b| b.places.cmp(&a.places).then(a.row.cmp(&b.row)));
    counts
}

fn write_outputs(
    out: &Path,
    places: usize,
    countries: &Countries,
    pairs: &[(u32, u32)],
    per_country: &[CountryCount],
) -> Result<Vec<(PathBuf, String)>, DemoError> {
    std::fs::create_dir_all(out).map_err(|source| DemoError::Write { path: out.to_path_buf(), source })?;
    let mut written = Vec::new();

    let path = out.join("pairs.csv");
    write_csv(&path, |w| {
        writeln!(w, "row,id")?;
        pairs.iter().try_for_each(|(row, id)| writeln!(w, "{row},{id}"))
    })?;
    written.push((path, format!("{} (place row, country row) pairs", group(pairs.len() as u64))));

    let path = out.join("countries.csv");
    write_csv(&path, |w| {
        writeln!(w, "id,country,iso_a2,places,geonames_places,agree")?;
        per_country.iter().try_for_each(|c| {
            let name = &countries.names[c.row as usize];
            let code = countries.codes[c.row as usize].as_deref().unwrap_or("");
            // Names may hold commas; none holds a quote.
            writeln!(w, "{},\"{name}\",{code},{},{},{}", c.row, c.places, c.coded, c.agree)
        })
    })?;
    written.push((path, format!("{} countries, most places first", per_country.len())));

    let path = out.join("demo.png");
    let mut counts = vec![0; countries.names.len()];
    for c in per_country {
        counts[c.row as usize] = c.places;
    }
    let title = format!(
        "Places per country: {} GeoNames places joined to {} Natural Earth countries ({} pairs)",
        group(places as u64),
        group(countries.names.len() as u64),
        group(pairs.len() as u64)
    );
    // The image encoder writes to a path of its own: a temporary one, renamed into place.
    let classes = io::replace_with(&path, |tmp| {
        map::render(tmp, &countries.shapes, &counts, &title).map_err(std::io::Error::other)
    })
    .map_err(|e| DemoError::Render { path: path.clone(), message: e.to_string() })?;
    written.push((path, format!("{}×{} choropleth, {classes} classes", MAP_SIZE.0, MAP_SIZE.1)));
    Ok(written)
}

fn write_csv(
    path: &Path,
    body: impl FnOnce(&mut io::AtomicFile) -> std::io::Result<()>,
) -> Result<(), DemoError> {
    let fail = |source| DemoError::Write { path: path.to_path_buf(), source };
    // Replaced whole or not at all: a failed or killed run leaves the old file.
    let mut w = io::AtomicFile::create(path).map_err(fail)?;
    body(&mut w).and_then(|()| w.commit()).map_err(fail)
}

/// `12345` → `"12,345"`: counts as the demo prints them.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
