//! Embedding meridian in a service: one `Engine` shared by several threads, each submitting
//! jobs and reading their hits, and one awaiting a ticket from async code.
//!
//! ```sh
//! cargo run --release --example embed
//! ```
//!
//! The engine needs no async runtime: a `Ticket` is a `Future` that any executor can drive.
//! `pollster` stands in for the service's runtime here.

use std::error::Error;
use std::path::Path;
use std::sync::Arc;

use meridian::bytecode::assemble;
use meridian::kernels::io;
use meridian::{ColumnBuilder, Engine, GeometryColumn, Input, Output, Prepared};

/// Points on a grid over one band of longitudes: a stand-in for a request's payload.
fn grid(lon_from: f64, lon_to: f64, step: f64) -> Result<GeometryColumn, Box<dyn Error>> {
    let mut b = ColumnBuilder::new();
    let mut lon = lon_from;
    while lon < lon_to {
        let mut lat = -60.0;
        while lat < 80.0 {
            b.push_point(lon, lat)?;
            lat += step;
        }
        lon += step;
    }
    Ok(b.finish())
}

/// One request: bind this thread's points to the shared countries, submit, read the hits.
fn handle(
    engine: &Engine,
    (program, pairs): (&Prepared, &Output),
    countries: &Input,
    points: GeometryColumn,
) -> Result<(usize, usize), Box<dyn Error>> {
    let rows = points.len();
    let bound = engine.bind(program, [("pts", Input::from(points)), ("zones", countries.clone())])?;
    let result = engine.submit(program.job(&bound))?.wait()?;
    let pairs = result.hits_of(pairs).ok_or("a result of another program")?;
    Ok((rows, pairs.len()))
}

/// An async request handler: the country each point is in, `None` at sea.
async fn locate(
    engine: &Engine,
    (program, pairs): (&Prepared, &Output),
    countries: &Input,
    points: &[(f64, f64)],
) -> Result<Vec<Option<u32>>, Box<dyn Error>> {
    let mut b = ColumnBuilder::new();
    for &(lon, lat) in points {
        b.push_point(lon, lat)?;
    }
    let bound = engine.bind(program, [("pts", Input::from(b.finish())), ("zones", countries.clone())])?;
    // Waits for ring room without blocking the thread, then for the result.
    let result = engine.submit_async(program.job(&bound)).await?.await?;
    let mut found = vec![None; points.len()];
    for &(row, id) in result.hits_of(pairs).ok_or("a result of another program")? {
        found[row as usize] = Some(id);
    }
    Ok(found)
}

fn main() -> Result<(), Box<dyn Error>> {
    // Built once per process; `Engine` is Send + Sync, so threads share it by reference.
    let engine = Engine::builder().workers(2).build()?;
    println!("backend: {} ({})", engine.backend().name(), engine.backend().reason);

    // Prepared once (verified by `assemble`, cached by hash), its output looked up once (a
    // misspelt name fails here, not on every request); each request only binds and submits.
    let program = engine.prepare_verified(&assemble("pip_join.masm", include_str!("pip_join.masm"))?);
    let pairs = program.output("pairs")?;

    // The countries and their index are built once and shared: an `Input` holds both behind
    // `Arc`s, so binding it again costs two reference counts, not an index build.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/countries.geojson");
    let table = io::read_geojson("countries.geojson", &io::read_text(&path)?)?;
    let names: Vec<String> =
        (0..table.geometry.len()).map(|r| table.property_str(r, "name").unwrap_or("?").to_string()).collect();
    let countries = Input::indexed(Arc::new(table.geometry));

    // Four request threads, each sending three jobs over its own band of the globe.
    std::thread::scope(|s| -> Result<(), Box<dyn Error>> {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (engine, program, countries) = (&engine, (&program, &pairs), &countries);
                s.spawn(move || -> Result<(usize, usize), String> {
                    let mut total = (0, 0);
                    for j in 0..3 {
                        let from = -180.0 + 90.0 * t as f64 + 30.0 * j as f64;
                        let points = grid(from, from + 30.0, 0.25).map_err(|e| e.to_string())?;
                        let (rows, hits) =
                            handle(engine, program, countries, points).map_err(|e| e.to_string())?;
                        total = (total.0 + rows, total.1 + hits);
                    }
                    Ok(total)
                })
            })
            .collect();
        for (t, h) in handles.into_iter().enumerate() {
            let (rows, hits) = h.join().map_err(|_| "a request thread panicked")??;
            println!("thread {t}: 3 jobs, {rows} points, {hits} (point, country) hits");
        }
        Ok(())
    })?;

    // An async handler awaits its ticket instead of blocking a thread on it.
    let capitals = [(2.35, 48.86), (139.69, 35.69), (-47.93, -15.78), (0.0, 0.0)];
    let found = pollster::block_on(locate(&engine, (&program, &pairs), &countries, &capitals))?;
    for ((lon, lat), country) in capitals.iter().zip(found) {
        let name = country.map_or("(sea)", |id| names[id as usize].as_str());
        println!("async: ({lon}, {lat}) is in {name}");
    }

    // Dropping the engine would do the same: every outstanding ticket resolves.
    engine.shutdown();
    Ok(())
}
