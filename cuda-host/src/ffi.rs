//! The entry points of `kernels/cuda/host.cpp`.

use meridian_kernels::cuda::{BuiltCaps, DeviceColumn, DeviceIndex};

extern "C" {
    pub fn mr_host_orient(ax: f64, ay: f64, bx: f64, by: f64, cx: f64, cy: f64) -> f64;
    pub fn mr_host_hypot(x: f64, y: f64) -> f64;
    pub fn mr_host_locate_point(c: *const DeviceColumn, row: u64, x: f64, y: f64) -> u32;
    pub fn mr_host_measures(c: *const DeviceColumn, row: u64, out: *mut f64) -> i32;
    pub fn mr_host_pair(
        a: *const DeviceColumn,
        ra: u64,
        b: *const DeviceColumn,
        rb: u64,
        dist: f64,
        preds: *mut u8,
        distance: *mut f64,
    ) -> i32;
    pub fn mr_host_relate(
        a: *const DeviceColumn,
        ra: u64,
        b: *const DeviceColumn,
        rb: u64,
        out: *mut i32,
    ) -> i32;
    pub fn mr_host_built_bytes(caps: *const BuiltCaps) -> u64;
    pub fn mr_host_simplify_work_bytes(caps: *const BuiltCaps) -> u64;
    pub fn mr_host_construct(
        c: *const DeviceColumn,
        row: u64,
        op: u32,
        m: *const f64,
        caps: *const BuiltCaps,
        scratch: *mut u8,
        out: *mut DeviceColumn,
    ) -> i32;
    pub fn mr_host_slabs_locate(ix: *const DeviceIndex, part: u64, x: f64, y: f64) -> u32;
}

extern "C" {
    pub fn mr_host_run_megakernel(ctl: *mut u8, blocks: u32, threads: u32, counts: *const u64) -> i32;
    pub fn mr_host_map(p: *const u8, len: u64);
    pub fn mr_host_unmap(p: *const u8);
}

extern "C" {
    #[allow(clippy::too_many_arguments)] // the kernel's parameters, as the device takes them
    pub fn mr_host_run_rows(
        prog: *const u8,
        inputs: *const u8,
        outputs: *const u8,
        rows_begin: u64,
        begin: u64,
        end: u64,
        acc: *mut u8,
        error: *mut u8,
    );
}
