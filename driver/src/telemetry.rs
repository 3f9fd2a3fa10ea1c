//! A snapshot of the machine's GPUs for the planner and `meridian info`: what the CUDA probe
//! found (a device answered, its name, compute capability, SMs and memory) and, where NVML
//! is there, how busy each device is and how much of its memory is in use.
//!
//! NVML (`libnvidia-ml`) is loaded at run time through `nvml-wrapper`, once per process; a
//! machine without it is a normal state, reported, never a panic. A snapshot is taken when
//! asked (an engine takes one when built and at chunk boundaries of streamed jobs): nothing
//! polls in the background.

use std::fmt;
use std::sync::OnceLock;
use std::time::SystemTime;

use nvml_wrapper::Nvml;

use crate::probe::{probe, Probe};

/// What NVML says of the devices.
#[derive(Clone, Debug, PartialEq)]
pub enum NvmlState {
    /// NVML could not be loaded or initialised (no `libnvidia-ml`: a machine without an
    /// NVIDIA driver), or it failed to list the devices.
    Unavailable {
        /// Why, as NVML's loader said.
        reason: String,
    },
    /// NVML answered.
    Devices {
        /// The driver version NVML reports.
        driver: Option<String>,
        /// One entry per device, by NVML index.
        devices: Vec<NvmlDevice>,
    },
}

/// One device as NVML reports it; a figure NVML refused is `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvmlDevice {
    /// NVML's index.
    pub index: u32,
    /// Its name.
    pub name: Option<String>,
    /// Percent of the last sample period a kernel ran.
    pub gpu_busy_percent: Option<u32>,
    /// Device memory in use, bytes.
    pub memory_used: Option<u64>,
    /// Device memory not allocated, bytes.
    pub memory_free: Option<u64>,
    /// Device memory installed, bytes.
    pub memory_total: Option<u64>,
}

/// The GPUs at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Telemetry {
    /// The CUDA probe: whether a device answered, and what it is.
    pub probe: Probe,
    /// NVML's view, where it is there.
    pub nvml: NvmlState,
    /// When the snapshot was taken.
    pub taken: SystemTime,
}

impl Telemetry {
    /// Device memory free on device `ordinal` by NVML, else the memory installed by the CUDA
    /// probe (an upper bound), else `None` (no such device).
    pub fn memory_free(&self, ordinal: usize) -> Option<u64> {
        let nvml = match &self.nvml {
            NvmlState::Devices { devices, .. } => devices.get(ordinal).and_then(|d| d.memory_free),
            NvmlState::Unavailable { .. } => None,
        };
        nvml.or_else(|| self.probe.devices().get(ordinal).map(|d| d.memory_bytes))
    }
}

/// The process's NVML handle, loaded on first use (or why it could not be).
fn nvml() -> Result<&'static Nvml, &'static str> {
    static NVML: OnceLock<Result<Nvml, String>> = OnceLock::new();
    NVML.get_or_init(|| Nvml::init().map_err(|e| e.to_string())).as_ref().map_err(|e| e.as_str())
}

/// NVML's view now.
pub fn nvml_state() -> NvmlState {
    let nvml = match nvml() {
        Ok(n) => n,
        Err(reason) => return NvmlState::Unavailable { reason: reason.to_owned() },
    };
    let count = match nvml.device_count() {
        Ok(n) => n,
        Err(e) => return NvmlState::Unavailable { reason: format!("listing the devices failed: {e}") },
    };
    let devices = (0..count)
        .map(|index| match nvml.device_by_index(index) {
            Ok(d) => {
                let memory = d.memory_info().ok();
                NvmlDevice {
                    index,
                    name: d.name().ok(),
                    gpu_busy_percent: d.utilization_rates().ok().map(|u| u.gpu),
                    memory_used: memory.as_ref().map(|m| m.used),
                    memory_free: memory.as_ref().map(|m| m.free),
                    memory_total: memory.as_ref().map(|m| m.total),
                }
            }
            Err(_) => NvmlDevice {
                index,
                name: None,
                gpu_busy_percent: None,
                memory_used: None,
                memory_free: None,
                memory_total: None,
            },
        })
        .collect();
    NvmlState::Devices { driver: nvml.sys_driver_version().ok(), devices }
}

/// A snapshot now: the CUDA probe and NVML.
pub fn snapshot() -> Telemetry {
    Telemetry { probe: probe(), nvml: nvml_state(), taken: SystemTime::now() }
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

impl fmt::Display for NvmlState {
    /// One line: why NVML is not there, or the driver and a clause per device.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NvmlState::Unavailable { reason } => write!(f, "NVML: not available ({reason})"),
            NvmlState::Devices { driver, devices } => {
                write!(f, "NVML: driver {}", driver.as_deref().unwrap_or("unknown"))?;
                if devices.is_empty() {
                    f.write_str(", no device")?;
                }
                for d in devices {
                    write!(f, "; device {}", d.index)?;
                    if let Some(name) = &d.name {
                        write!(f, " {name}")?;
                    }
                    match d.gpu_busy_percent {
                        Some(p) => write!(f, ", {p}% busy")?,
                        None => f.write_str(", busy unknown")?,
                    }
                    match (d.memory_used, d.memory_total) {
                        (Some(u), Some(t)) => write!(f, ", {:.1} of {:.1} GiB in use", gib(u), gib(t))?,
                        _ => f.write_str(", memory unknown")?,
                    }
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Telemetry {
    /// The probe's lines, then NVML's line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n{}", self.probe, self.nvml)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;
    use crate::probe::{DeviceInfo, DriverState, DriverVersion, NvrtcState};

    fn device(memory_bytes: u64) -> DeviceInfo {
        DeviceInfo {
            ordinal: 0,
            name: "Test GPU".into(),
            compute_capability: (9, 0),
            sms: 132,
            memory_bytes,
            can_map_host_memory: true,
        }
    }

    #[test]
    fn a_snapshot_here_is_taken_without_panicking_and_says_why_nvml_is_missing() {
        let t = snapshot();
        let text = t.to_string();
        assert!(text.contains("NVML"), "{text}");
        if let NvmlState::Unavailable { reason } = &t.nvml {
            assert!(!reason.is_empty());
            // The handle is cached: a second snapshot says the same, at no new cost.
            assert_eq!(nvml_state(), t.nvml);
        }
    }

    #[test]
    fn free_memory_comes_from_nvml_then_from_the_probe() {
        let probe = Probe {
            driver: DriverState::Devices { version: DriverVersion(13000), devices: vec![device(80 << 30)] },
            nvrtc: NvrtcState::Missing,
        };
        let busy = NvmlDevice {
            index: 0,
            name: Some("Test GPU".into()),
            gpu_busy_percent: Some(97),
            memory_used: Some(60 << 30),
            memory_free: Some(20 << 30),
            memory_total: Some(80 << 30),
        };
        let with = Telemetry {
            probe: probe.clone(),
            nvml: NvmlState::Devices { driver: Some("580.1".into()), devices: vec![busy] },
            taken: SystemTime::now(),
        };
        assert_eq!(with.memory_free(0), Some(20 << 30));
        assert_eq!(with.memory_free(1), None);
        let text = with.to_string();
        assert!(
            text.contains("NVML: driver 580.1; device 0 Test GPU, 97% busy, 60.0 of 80.0 GiB in use"),
            "{text}"
        );
        let without = Telemetry {
            probe,
            nvml: NvmlState::Unavailable { reason: "libnvidia-ml.so: cannot open".into() },
            taken: SystemTime::now(),
        };
        assert_eq!(without.memory_free(0), Some(80 << 30));
        assert!(without.to_string().ends_with("NVML: not available (libnvidia-ml.so: cannot open)"));
    }
}
