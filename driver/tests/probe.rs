//! The probe never panics and tells the truth about this machine.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use meridian_driver::{probe, DriverState, Gpu, GpuError, NvrtcState};

#[test]
fn probe_matches_the_libraries_present() {
    let p = probe();
    let text = p.to_string();
    println!("{text}");
    if !meridian_driver::driver_library_present() {
        assert_eq!(p.driver, DriverState::NoDriver);
        assert!(text.starts_with("CUDA driver: not found"), "{text}");
    }
    if !meridian_driver::nvrtc_library_present() {
        assert_eq!(p.nvrtc, NvrtcState::Missing);
        assert!(text.ends_with("NVRTC: not found (libnvrtc.so.13 could not be loaded)"), "{text}");
    } else {
        assert!(matches!(p.nvrtc, NvrtcState::Present { .. }), "{:?}", p.nvrtc);
    }
    assert_eq!(p.has_device(), !p.devices().is_empty());
}

#[test]
fn opening_a_gpu_without_one_is_an_error_not_a_panic() {
    let p = probe();
    match Gpu::open(0) {
        Ok(gpu) => assert!(p.has_device(), "opened {:?} but the probe found no device", gpu.info()),
        Err(GpuError::NoDriver) => assert_eq!(p.driver, DriverState::NoDriver),
        Err(GpuError::NoDevice) => assert!(matches!(p.driver, DriverState::NoDevice { .. })),
        Err(other) => assert!(!p.has_device(), "unexpected error with a device present: {other}"),
    }
    // An ordinal past the devices present is an error whatever the machine has.
    assert!(Gpu::open(usize::MAX / 2).is_err());
}
