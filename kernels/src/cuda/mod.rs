//! The CUDA side of the kernels: the device sources in `kernels/cuda/`, the ISA and ABI
//! headers generated for them (`isa.cuh` from the op table, `abi_gen.cuh` from [`abi`]),
//! which programs the GPU runs, and the device ABI: the records through which the device reads
//! columns, indexes and programs and through which the runtime's executor runs jobs.
//!
//! The device sources are plain CUDA C++ written to compile two ways: NVRTC builds
//! [`megakernel_source`] into a cubin for the device, and a host C++ compiler builds
//! `kernels/cuda/host.cpp` (the same files, with `host_shim.h` standing in for the hardware)
//! so that tests on machines without a GPU run the device interpreter and geometry against the
//! Rust ones. Both builds turn off floating-point contraction, as Rust never contracts, so the
//! same operations give the same bits everywhere.
//!
//! Nothing here drives rings or devices (that is `meridian_runtime`'s CUDA executor), but the
//! job, slot and control records it uses are defined here ([`abi::job`]), so the device ABI has
//! one source.

pub mod abi;
pub mod isa;
pub mod jit;
pub mod support;

pub use abi::{
    abi_header, check_index, BuiltCaps, DeviceColumn, DeviceIndex, DeviceInput, DeviceJoin, DeviceProgram,
    ScratchTable, TREE_STACK,
};
pub use isa::{device_name, isa_header};
pub use support::{gpu_refusal, gpu_support, jit_refusal, jit_support, GpuSupport, MAX_GPU_REDUCTIONS};

/// The device sources, in the order one translation unit includes them, with their text.
pub const SOURCES: &[(&str, &str)] = &[
    ("platform.cuh", include_str!("../../cuda/platform.cuh")),
    ("math.cuh", include_str!("../../cuda/math.cuh")),
    ("orient.cuh", include_str!("../../cuda/orient.cuh")),
    ("isa.cuh", include_str!("../../cuda/isa.cuh")),
    ("abi_gen.cuh", include_str!("../../cuda/abi_gen.cuh")),
    ("abi.cuh", include_str!("../../cuda/abi.cuh")),
    ("geom.cuh", include_str!("../../cuda/geom.cuh")),
    ("index.cuh", include_str!("../../cuda/index.cuh")),
    ("relate.cuh", include_str!("../../cuda/relate.cuh")),
    ("construct.cuh", include_str!("../../cuda/construct.cuh")),
    ("interp.cuh", include_str!("../../cuda/interp.cuh")),
    ("megakernel.cu", include_str!("../../cuda/megakernel.cu")),
];

/// The host build's stand-in for the hardware (`kernels/cuda/host_shim.h`).
pub const HOST_SHIM: &str = include_str!("../../cuda/host_shim.h");

/// The megakernel's entry point.
pub const MEGAKERNEL: &str = "mr_megakernel";

/// The per-job kernel's entry point: the same rows launched once per job, one thread each
/// (the baseline the resident megakernel is measured against).
pub const PER_JOB_KERNEL: &str = "mr_run_rows";

/// Options every NVRTC compilation of the device sources takes: no fused multiply-add
/// contraction, so `a * b + c` rounds twice as it does in Rust and in the host build.
pub const NVRTC_OPTIONS: &[&str] = &["--fmad=false"];

/// Threads per block of the megakernel (a multiple of 32, at most [`abi::MAX_BLOCK`]), and of a
/// program kernel's launch unless autotune chose otherwise.
pub const BLOCK_THREADS: u32 = 128;

/// Why a kernel cannot be launched with `threads` threads a block (`None`: it can): the
/// kernels' block-wide scans take whole warps, in shared arrays of [`abi::MAX_BLOCK`].
pub fn block_threads_refusal(threads: u32) -> Option<String> {
    (threads == 0 || !threads.is_multiple_of(32) || threads > abi::MAX_BLOCK).then(|| {
        format!("{threads} threads a block: a kernel takes a multiple of 32 up to {}", abi::MAX_BLOCK)
    })
}

/// The whole device program as one translation unit for NVRTC: every source in
/// [`SOURCES`] order, with the `#include`s of each other removed (NVRTC gets no include
/// path; the include guards stay).
pub fn megakernel_source() -> String {
    let mut tu = String::new();
    for (name, text) in SOURCES {
        tu.push_str(&format!("// ---- {name} ----\n"));
        for line in text.lines() {
            let local = line.trim_start().strip_prefix("#include \"").is_some_and(|rest| {
                SOURCES.iter().any(|(n, _)| rest.starts_with(n)) || rest.starts_with("host_shim.h")
            });
            if !local {
                tu.push_str(line);
            }
            tu.push('\n');
        }
    }
    tu
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_whole_warps_up_to_the_shared_arrays() {
        for ok in [32, 64, BLOCK_THREADS, abi::MAX_BLOCK] {
            assert_eq!(block_threads_refusal(ok), None, "{ok}");
        }
        for bad in [0, 1, 48, 100, abi::MAX_BLOCK + 32, u32::MAX] {
            assert!(block_threads_refusal(bad).is_some(), "{bad}");
        }
    }
}
