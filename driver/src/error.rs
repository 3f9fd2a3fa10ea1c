//! The driver crate's error type.

use std::path::PathBuf;

/// Why a GPU operation failed. Every variant names what was being done.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// `libcuda` could not be loaded: no NVIDIA driver on this machine.
    #[error("no CUDA driver: libcuda could not be loaded")]
    NoDriver,
    /// The driver loaded but reports no device.
    #[error("the CUDA driver reports no device")]
    NoDevice,
    /// The driver loaded but failed to initialise.
    #[error("the CUDA driver failed to initialise: {0}")]
    InitFailed(String),
    /// A device ordinal past the devices present.
    #[error("CUDA device {ordinal} does not exist ({count} present)")]
    NoSuchDevice {
        /// The ordinal asked for.
        ordinal: usize,
        /// Devices present.
        count: usize,
    },
    /// A driver call failed.
    #[error("{what}: {source}")]
    Driver {
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: cudarc::driver::DriverError,
    },
    /// `libnvrtc` could not be loaded.
    #[error(
        "NVRTC is not available: libnvrtc could not be loaded (this build looks for libnvrtc.so.13 among \
         others; install PyPI's nvidia-cuda-nvrtc and put its lib folder on LD_LIBRARY_PATH, as \
         .ci/install-nvrtc does)"
    )]
    NoNvrtc,
    /// An NVRTC call other than compilation failed.
    #[error("NVRTC {what} failed: {code}")]
    Nvrtc {
        /// What was being done.
        what: &'static str,
        /// NVRTC's result code.
        code: String,
    },
    /// Compilation failed; the log says why.
    #[error("compiling {name} for {arch} failed:\n{log}")]
    Compile {
        /// The source's name.
        name: String,
        /// The target architecture (`sm_90`).
        arch: String,
        /// NVRTC's compile log.
        log: String,
    },
    /// The on-disk cubin cache could not be read or written.
    #[error("cubin cache {}: {source}", path.display())]
    Cache {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An argument the call cannot accept.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// The device computed something other than what the host expected.
    #[error("wrong result: {0}")]
    WrongResult(String),
    /// A wait on the device passed its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
}

/// Attaches a description to a driver error.
pub(crate) trait DriverContext<T> {
    fn during(self, what: &'static str) -> Result<T, GpuError>;
}

impl<T> DriverContext<T> for Result<T, cudarc::driver::DriverError> {
    fn during(self, what: &'static str) -> Result<T, GpuError> {
        self.map_err(|source| GpuError::Driver { what, source })
    }
}
