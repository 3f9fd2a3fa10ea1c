//! The GPU round-trip benchmark (`meridian bench roundtrip`): a one-row job through the
//! engine's resident megakernel against `cuLaunchKernel` + `cuStreamSynchronize` of the same
//! job ([`crate::cuda::bench::per_job_launches`]), on one GPU.

use std::time::Instant;

use crate::cuda::bench::{check, one_point, per_job_launches, Latency};
use crate::engine::{Engine, Mode};
use crate::route::Route;

/// The round trip measured both ways on one GPU.
#[derive(Clone, Debug)]
pub struct RoundTrip {
    /// The device, as the engine describes it.
    pub device: String,
    /// Submit → ticket resolved through the Engine's resident megakernel.
    pub megakernel: Latency,
    /// Of that, `Engine::submit` alone (host work before the device sees the job).
    pub submit: Latency,
    /// `cuLaunchKernel` + `cuStreamSynchronize` of the same one-row job, result read back.
    pub per_job_launch: Latency,
}

/// Round trips of the one-row job through an Engine in mode `gpu` on GPU route `route`:
/// `interp`, the resident megakernel with every block; `auto`, the same megakernel as the
/// latency lane (one block an SM, beside programs' kernels) — what the lane costs a small job;
/// `jit`, the program's own kernel launched for every job.
pub fn megakernel_round_trips(
    trips: usize,
    warmup: usize,
    route: Route,
) -> Result<(String, Latency, Latency), String> {
    let engine =
        Engine::builder().mode(Mode::Gpu).gpu_route(route).workers(1).build().map_err(|e| e.to_string())?;
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
    Ok((format!("{}; the last job: {}", engine.backend().reason, last), latency, submit))
}

/// Both, per-job launches first (they need the GPU to themselves).
pub fn round_trip(trips: usize, warmup: usize, route: Route) -> Result<RoundTrip, String> {
    let (_, per_job_launch) = per_job_launches(trips, warmup)?;
    let (device, megakernel, submit) = megakernel_round_trips(trips, warmup, route)?;
    Ok(RoundTrip { device, megakernel, submit, per_job_launch })
}
