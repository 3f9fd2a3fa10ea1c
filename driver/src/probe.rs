//! What CUDA this machine has, found without ever panicking.
//!
//! cudarc loads `libcuda` and `libnvrtc` lazily and panics if a function is called while the
//! library is missing. So the probe first asks whether each library *can* be loaded
//! (`is_culib_present`), and only then calls into it. "A device is present" means the driver
//! answered `cuInit` and counted at least one device, not merely that a library loaded.

use std::fmt;

use cudarc::driver::sys;

/// The state of the CUDA driver on this machine.
#[derive(Clone, Debug, PartialEq)]
pub enum DriverState {
    /// `libcuda` could not be loaded.
    NoDriver,
    /// `libcuda` loaded but `cuInit` failed (for a reason other than "no device").
    InitFailed {
        /// The driver's error, as text.
        error: String,
    },
    /// The driver works but has no device.
    NoDevice {
        /// The driver's CUDA version.
        version: DriverVersion,
    },
    /// The driver works and has devices.
    Devices {
        /// The driver's CUDA version.
        version: DriverVersion,
        /// One entry per device, by ordinal.
        devices: Vec<DeviceInfo>,
    },
}

/// The CUDA version a driver supports, as `cuDriverGetVersion` reports it (`13000` = 13.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DriverVersion(pub i32);

impl fmt::Display for DriverVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 / 1000, (self.0 % 1000) / 10)
    }
}

/// One CUDA device.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceInfo {
    /// The device ordinal.
    pub ordinal: usize,
    /// The marketing name (`NVIDIA H100 80GB HBM3`).
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Streaming multiprocessors.
    pub sms: u32,
    /// Global memory in bytes.
    pub memory_bytes: u64,
    /// Whether the device can map pinned host memory into its address space.
    pub can_map_host_memory: bool,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "device {}: {}, compute capability {}.{}, {} SMs, {:.1} GiB",
            self.ordinal,
            self.name,
            self.compute_capability.0,
            self.compute_capability.1,
            self.sms,
            self.memory_bytes as f64 / (1u64 << 30) as f64
        )
    }
}

/// The state of NVRTC, the runtime CUDA compiler (which needs no GPU).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NvrtcState {
    /// `libnvrtc` could not be loaded.
    Missing,
    /// `libnvrtc` loaded and reported its version.
    Present {
        /// Major version.
        major: i32,
        /// Minor version.
        minor: i32,
    },
    /// `libnvrtc` loaded but `nvrtcVersion` failed.
    Broken {
        /// The error, as text.
        error: String,
    },
}

/// Everything the probe found.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// The driver and its devices.
    pub driver: DriverState,
    /// The runtime compiler.
    pub nvrtc: NvrtcState,
}

impl Probe {
    /// The devices found (empty unless the driver works and has some).
    pub fn devices(&self) -> &[DeviceInfo] {
        match &self.driver {
            DriverState::Devices { devices, .. } => devices,
            _ => &[],
        }
    }

    /// Whether at least one device answered.
    pub fn has_device(&self) -> bool {
        !self.devices().is_empty()
    }

    /// Why there is no usable device, as the error [`Gpu::open`](crate::Gpu::open) returns.
    pub fn unusable(&self) -> Option<crate::GpuError> {
        match &self.driver {
            DriverState::NoDriver => Some(crate::GpuError::NoDriver),
            DriverState::InitFailed { error } => Some(crate::GpuError::InitFailed(error.clone())),
            DriverState::NoDevice { .. } => Some(crate::GpuError::NoDevice),
            DriverState::Devices { .. } => None,
        }
    }
}

impl fmt::Display for Probe {
    /// One line for the driver, one per device, one for NVRTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.driver {
            DriverState::NoDriver => writeln!(f, "CUDA driver: not found (libcuda could not be loaded)")?,
            DriverState::InitFailed { error } => {
                writeln!(f, "CUDA driver: present, but cuInit failed: {error}")?
            }
            DriverState::NoDevice { version } => writeln!(f, "CUDA driver {version}: no device")?,
            DriverState::Devices { version, devices } => {
                writeln!(f, "CUDA driver {version}: {} device(s)", devices.len())?;
                for d in devices {
                    writeln!(f, "  {d}")?;
                }
            }
        }
        match &self.nvrtc {
            NvrtcState::Missing => write!(f, "NVRTC: not found (libnvrtc.so.13 could not be loaded)"),
            NvrtcState::Present { major, minor } => write!(f, "NVRTC: {major}.{minor}"),
            NvrtcState::Broken { error } => write!(f, "NVRTC: present, but nvrtcVersion failed: {error}"),
        }
    }
}

/// Whether `libcuda` can be loaded.
pub fn driver_library_present() -> bool {
    // SAFETY: `is_culib_present` only tries `libloading::Library::new` on the driver's library
    // names and drops what it opened; loading libcuda runs its initialisers, which any use of
    // the driver would do anyway. It calls no CUDA function.
    unsafe { sys::is_culib_present() }
}

/// Whether `libnvrtc` can be loaded.
pub fn nvrtc_library_present() -> bool {
    // SAFETY: as for `driver_library_present`, for libnvrtc.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Probes the driver, its devices and NVRTC.
///
/// ```
/// let probe = meridian_driver::probe();
/// println!("{probe}"); // on a machine without a GPU: "CUDA driver: not found ..."
/// assert_eq!(probe.has_device(), !probe.devices().is_empty());
/// ```
pub fn probe() -> Probe {
    Probe { driver: probe_driver(), nvrtc: probe_nvrtc() }
}

fn probe_driver() -> DriverState {
    if !driver_library_present() {
        return DriverState::NoDriver;
    }
    // The library loads, so cudarc's lazy loader will not panic for want of it. A panic for a
    // missing symbol (a driver older than the API cudarc binds) is still possible; it is
    // caught and reported rather than allowed to unwind into the caller.
    std::panic::catch_unwind(probe_loaded_driver).unwrap_or_else(|panic| DriverState::InitFailed {
        error: format!("the driver library lacks a required function ({})", panic_text(&panic)),
    })
}

fn probe_loaded_driver() -> DriverState {
    use cudarc::driver::result;
    if let Err(e) = result::init() {
        if e.0 == sys::cudaError_enum::CUDA_ERROR_NO_DEVICE {
            return DriverState::NoDevice { version: driver_version() };
        }
        return DriverState::InitFailed { error: e.to_string() };
    }
    let version = driver_version();
    let count = match result::device::get_count() {
        Ok(n) => n.max(0) as usize,
        Err(e) => return DriverState::InitFailed { error: e.to_string() },
    };
    let mut devices = Vec::with_capacity(count);
    for ordinal in 0..count {
        match device_info(ordinal) {
            Ok(info) => devices.push(info),
            Err(e) => return DriverState::InitFailed { error: format!("querying device {ordinal}: {e}") },
        }
    }
    if devices.is_empty() {
        DriverState::NoDevice { version }
    } else {
        DriverState::Devices { version, devices }
    }
}

/// The installed driver's CUDA version, when `libcuda` loads (`cuDriverGetVersion` needs no
/// `cuInit`); `None` without a driver. For naming the adapter of GPU autotune records.
pub fn installed_driver_version() -> Option<DriverVersion> {
    if !driver_library_present() {
        return None;
    }
    std::panic::catch_unwind(driver_version).ok()
}

fn driver_version() -> DriverVersion {
    let mut v = 0;
    // SAFETY: cuDriverGetVersion writes one int through a valid pointer; the library is loaded.
    let _ = unsafe { sys::cuDriverGetVersion(&mut v) };
    DriverVersion(v)
}

/// Queries one device (the driver must be initialised).
pub(crate) fn device_info(ordinal: usize) -> Result<DeviceInfo, cudarc::driver::DriverError> {
    use cudarc::driver::result::device;
    use sys::CUdevice_attribute::*;
    let dev = device::get(ordinal as i32)?;
    // SAFETY: `dev` is a handle the driver just returned; these calls only read attributes.
    let (memory, major, minor, sms, map) = unsafe {
        (
            device::total_mem(dev)?,
            device::get_attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
            device::get_attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
            device::get_attribute(dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
            device::get_attribute(dev, CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY)?,
        )
    };
    Ok(DeviceInfo {
        ordinal,
        name: device::get_name(dev)?,
        compute_capability: (major, minor),
        sms: sms.max(0) as u32,
        memory_bytes: memory as u64,
        can_map_host_memory: map != 0,
    })
}

fn probe_nvrtc() -> NvrtcState {
    if !nvrtc_library_present() {
        return NvrtcState::Missing;
    }
    std::panic::catch_unwind(|| {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: nvrtcVersion writes two ints through valid pointers; the library is loaded.
        let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
        if r == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
            NvrtcState::Present { major, minor }
        } else {
            NvrtcState::Broken { error: format!("{r:?}") }
        }
    })
    .unwrap_or_else(|panic| NvrtcState::Broken { error: panic_text(&panic) })
}

pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned())
}
