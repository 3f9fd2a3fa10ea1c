//! The GPU round-trip benchmark (`meridian bench roundtrip`): a one-row job through the
//! engine's resident megakernel against `cuLaunchKernel` + `cuStreamSynchronize` of the same
//! job and against a CUDA graph of that launch ([`crate::cuda::bench::per_job_launches`]), on
//! one GPU.

use std::time::Instant;

pub use crate::cuda::bench::Latency;
use crate::cuda::bench::{check, one_point, per_job_launches};
use crate::cuda::GpuDispatch;
use crate::engine::{Engine, Mode};
use crate::route::Route;

/// Jobs in flight for the throughput lines.
pub const IN_FLIGHT: usize = 64;

/// The round trip measured every way on one GPU.
#[derive(Clone, Debug)]
pub struct RoundTrip {
    /// The device, as the engine describes it.
    pub device: String,
    /// Submit → ticket resolved through the Engine's resident megakernel, by dispatch
    /// protocol (the poller's first, then the leaders' of 2026-11).
    pub megakernel: Vec<(GpuDispatch, Latency)>,
    /// Of the poller's, `Engine::submit` alone (host work before the device sees the job).
    pub submit: Latency,
    /// `cuLaunchKernel` + `cuStreamSynchronize` of the same one-row job, result read back.
    pub per_job_launch: Latency,
    /// The same launch captured into a CUDA graph: `cuGraphLaunch` + sync, result read back
    /// (or why the graph could not be made or run).
    pub graph_launch: Result<Latency, String>,
    /// One-row jobs a second with [`IN_FLIGHT`] in flight through the megakernel, by protocol.
    pub megakernel_rate: Vec<(GpuDispatch, f64)>,
    /// One-row jobs a second launched [`IN_FLIGHT`] at a time with one synchronisation each.
    pub per_job_rate: f64,
}

/// Round trips of the one-row job through an Engine in mode `gpu` on GPU route `route` with
/// dispatch protocol `dispatch`: `interp`, the resident megakernel with every block; `auto`,
/// the same megakernel as the latency lane (one block an SM, beside programs' kernels) —
/// what the lane costs a small job; `jit`, the program's own kernel launched for every job.
/// With the rate of one-row jobs, [`IN_FLIGHT`] at a time, over `rounds` rounds.
pub fn megakernel_round_trips(
    trips: usize,
    warmup: usize,
    route: Route,
    dispatch: GpuDispatch,
    rounds: usize,
) -> Result<(String, Latency, Latency, f64), String> {
    let engine = Engine::builder()
        .mode(Mode::Gpu)
        .gpu_route(route)
        .gpu_dispatch(dispatch)
        .workers(1)
        .build()
        .map_err(|e| e.to_string())?;
    let (program, inputs) = one_point()?;
    let prepared = engine.prepare_verified(&program);
    let column = inputs.inputs()[0].column.clone();
    let bound = engine.bind(&prepared, [("p", column)]).map_err(|e| e.to_string())?;
    let job = prepared.job(&bound);
    let mut samples = Vec::with_capacity(trips);
    let mut submits = Vec::with_capacity(trips);
    let mut last = String::new();
    for i in 0..warmup + trips {
        let start = Instant::now();
        let ticket = engine.submit(job.clone()).map_err(|e| e.to_string())?;
        let submitted = start.elapsed();
        let r = ticket.wait().map_err(|e| e.to_string())?;
        let elapsed = start.elapsed();
        check(&[r.get("x").cloned().ok_or("no output x")?])?;
        last = format!("{} ({})", r.backend().name(), r.backend().reason);
        if i >= warmup {
            samples.push(elapsed);
            submits.push(submitted);
        }
    }
    let latency = Latency::of(&mut samples).ok_or("no round trips measured")?;
    let submit = Latency::of(&mut submits).ok_or("no round trips measured")?;
    let mut tickets = Vec::with_capacity(IN_FLIGHT);
    let start = Instant::now();
    for _ in 0..rounds {
        for _ in 0..IN_FLIGHT {
            tickets.push(engine.submit(job.clone()).map_err(|e| e.to_string())?);
        }
        for t in tickets.drain(..) {
            check(&[t.wait().map_err(|e| e.to_string())?.get("x").cloned().ok_or("no output x")?])?;
        }
    }
    let rate = (IN_FLIGHT * rounds) as f64 / start.elapsed().as_secs_f64().max(1e-9);
    let device = format!("{}; the last job: {}", engine.backend().reason, last);
    // The next protocol's engine needs the GPU to itself.
    engine.shutdown();
    Ok((device, latency, submit, rate))
}

/// Every way, per-job launches first (they need the GPU to themselves); the throughput over
/// `trips / 64` rounds of 64 jobs (at least 10).
pub fn round_trip(trips: usize, warmup: usize, route: Route) -> Result<RoundTrip, String> {
    let rounds = (trips / IN_FLIGHT).max(10);
    let per_job = per_job_launches(trips, warmup, (IN_FLIGHT, rounds))?;
    let mut megakernel = Vec::new();
    let mut megakernel_rate = Vec::new();
    let mut device = String::new();
    let mut submit = None;
    for dispatch in [GpuDispatch::Poller, GpuDispatch::Leaders] {
        let (d, latency, s, rate) = megakernel_round_trips(trips, warmup, route, dispatch, rounds)?;
        device = d;
        submit.get_or_insert(s);
        megakernel.push((dispatch, latency));
        megakernel_rate.push((dispatch, rate));
    }
    let submit = submit.ok_or("no round trips measured")?;
    Ok(RoundTrip {
        device,
        megakernel,
        submit,
        per_job_launch: per_job.launch,
        graph_launch: per_job.graph,
        megakernel_rate,
        per_job_rate: per_job.rate,
    })
}
