//! Measurements of the CUDA executor, for `meridian bench` (and the device evidence):
//! the round trip of a one-row job through the resident megakernel against launching the same
//! work as one kernel per job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian_bytecode::{assemble, VerifiedProgram};
use meridian_kernels::column::ColumnBuilder;
use meridian_kernels::interp::{BoundInputs, Input, OutputColumn};

use super::abi::{Acc, ACC_BYTES, MAX_OUTPUTS};
use super::device::{Device, DeviceAlloc, Shared};
use super::outputs::{Area, Arenas, Layout};
use super::resident::Residency;
use super::CudaDevice;
use crate::job::Column;

/// Latency statistics of measured round trips.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    /// Round trips measured.
    pub n: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
    /// Mean.
    pub mean: Duration,
}

impl Latency {
    /// The statistics of `samples` (sorted in place); `None` when there are none.
    pub fn of(samples: &mut [Duration]) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let n = samples.len();
        let at = |q: f64| samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        let total: Duration = samples.iter().sum();
        Some(Latency { n, p50: at(0.5), p99: at(0.99), max: samples[n - 1], mean: total / n as u32 })
    }
}

/// The one-row job both sides run: the x coordinate of a point, stored.
pub const ROUND_TRIP_PROGRAM: &str = "\
.program x
.input  p points
.output x f64
    load  g0, p
    x     f0, g0
    store x, f0
    halt
";

pub(crate) fn one_point() -> Result<(VerifiedProgram, Arc<BoundInputs>), String> {
    let program = assemble("x.masm", ROUND_TRIP_PROGRAM).map_err(|d| d.to_string())?;
    let mut b = ColumnBuilder::new();
    b.push_point(1.5, 2.0).map_err(|e| e.to_string())?;
    let inputs = BoundInputs::bind(program.program(), vec![Input::rows(Arc::new(b.finish()))])
        .map_err(|e| e.to_string())?;
    Ok((program, Arc::new(inputs)))
}

pub(crate) fn check(columns: &[OutputColumn]) -> Result<(), String> {
    match columns.first() {
        Some(OutputColumn::F64(x)) if x.get(0) == Some(1.5) => Ok(()),
        other => Err(format!("a round trip gave {other:?}, not x = 1.5")),
    }
}

/// What launching the one-row job as its own kernel costs ([`per_job_launches`]).
#[derive(Clone, Debug)]
pub struct PerJob {
    /// The device.
    pub device: String,
    /// `cuLaunchKernel` + `cuStreamSynchronize`, the result read back.
    pub launch: Latency,
    /// The same kernel captured once into a CUDA graph: `cuGraphLaunch` + sync, the result
    /// read back; or why the graph could not be made or run.
    pub graph: Result<Latency, String>,
    /// One-row jobs a second launched a batch at a time with one synchronisation a batch.
    pub rate: f64,
}

/// Round trips of the one-row job launched as its own kernel each time, then as a CUDA graph
/// of that launch, on a device opened for it alone: while an engine's megakernel holds the
/// GPU no other kernel can start. With the rate of one-row jobs launched `batch` at a time
/// and synchronised once a batch, over `rounds` batches (jobs a second).
pub fn per_job_launches(
    trips: usize,
    warmup: usize,
    (batch, rounds): (usize, usize),
) -> Result<PerJob, String> {
    let err = |e: super::DeviceError| e.to_string();
    let device = Arc::new(CudaDevice::open(0).map_err(|e| e.to_string())?);
    let description = device.describe();
    let dev = Shared::new(device.clone());
    let (program, inputs) = one_point()?;
    let mut residency = Residency::default();
    let record = residency.program(&dev, &program).map_err(err)?;
    // No resident kernel here: the bench's program constructs nothing, so no scratch.
    let table = residency.binding(&dev, &program, &inputs, 0).map_err(err)?;
    let kinds: Vec<_> = program.program().outputs().iter().map(|o| o.kind).collect();
    let layout = Layout::new(&kinds, 1, 0, 0, 0).map_err(err)?;
    let arenas = Arc::new(Arenas::new(&dev, 1).map_err(err)?);
    let area = Area::new(&dev, &arenas, &layout).map_err(err)?;
    let acc = DeviceAlloc::new(&dev, ACC_BYTES * MAX_OUTPUTS).map_err(err)?;
    let error = DeviceAlloc::new(&dev, 16).map_err(err)?;
    let zeros = vec![Acc::default(); MAX_OUTPUTS];
    acc.write(0, bytemuck::cast_slice(&zeros)).map_err(err)?;
    // Round trips of `launch`, each with the output read back (timed) and checked.
    let trips_of = |launch: &dyn Fn() -> Result<(), super::DeviceError>| -> Result<Latency, String> {
        let mut samples = Vec::with_capacity(trips);
        for i in 0..warmup + trips {
            let start = Instant::now();
            launch().map_err(err)?;
            let columns = area.columns(&layout, &zeros[..kinds.len()])?;
            let elapsed = start.elapsed();
            match columns.first() {
                Some(Column::Ready(c)) => check(std::slice::from_ref(c))?,
                _ => return Err("the round trip's output x is missing".into()),
            }
            if i >= warmup {
                samples.push(elapsed);
            }
        }
        Latency::of(&mut samples).ok_or_else(|| "no round trips measured".to_string())
    };
    // SAFETY: every address is a live allocation of this function (program record, input
    // table, output area for one row, accumulators, error record), kept until its end.
    let latency = trips_of(&|| unsafe {
        device.run_rows(record.record, table.table, area.device_ptr(), 0, 0, 1, acc.ptr(), error.ptr())
    })?;
    // SAFETY: as above; the graph is dropped at the end of this statement, before them.
    let graph = unsafe {
        device.capture_rows(record.record, table.table, area.device_ptr(), 0, 0, 1, acc.ptr(), error.ptr())
    }
    .map_err(err)
    .and_then(|graph| trips_of(&|| graph.run()));
    let start = Instant::now();
    for _ in 0..rounds {
        // SAFETY: as above.
        unsafe {
            device.run_rows_queued(
                batch,
                record.record,
                table.table,
                area.device_ptr(),
                0,
                0,
                1,
                acc.ptr(),
                error.ptr(),
            )
        }
        .map_err(err)?;
    }
    let rate = (batch * rounds) as f64 / start.elapsed().as_secs_f64().max(1e-9);
    Ok(PerJob { device: description, launch: latency, graph, rate })
}
