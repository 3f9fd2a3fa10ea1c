// platform.cuh — the one place device code meets the platform.
//
// Every other file in kernels/cuda/ is plain C++ that calls these helpers: thread and block
// ids, block barriers, per-block shared state, atomics on device memory, acquire/release
// loads and stores at system scope (for memory the host also touches), fences and back-off.
// Under NVRTC they are CUDA intrinsics and PTX; with MR_HOST defined (the host C++ build the
// tests run, through the `cc` crate) they come from host_shim.h, so the same interpreter,
// geometry and megakernel code runs on the CPU against the Rust interpreter on every CI run.
// Only what needs the hardware — ordering across PCIe, occupancy, timing — is left to device
// runs (docs/architecture.md, "Checking device code without a device").
#ifndef MR_PLATFORM_CUH
#define MR_PLATFORM_CUH

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;

// Field offsets are asserted in the host build (NVRTC has no offsetof); both compilers lay out
// these plain structs the same way, and the sizes are asserted in both.
#if defined(MR_HOST)
#define MR_ASSERT_OFFSET(T, f, n) static_assert(__builtin_offsetof(T, f) == (n), #T "." #f)
#else
#define MR_ASSERT_OFFSET(T, f, n)
#endif

#if defined(MR_HOST)
#include "host_shim.h"
#else

// MR_FN: small helpers, inlined at the compiler's choice. MR_NOINLINE: the large geometry
// routines, kept as calls so the interpreter's switch stays compact (and compiles quickly).
#define MR_FN __device__ inline
#define MR_NOINLINE __device__ __noinline__
#define MR_METHOD __device__ __forceinline__
#define MR_KERNEL extern "C" __global__
// Per-block state: one object per block, declared once at the top of a kernel.
#define MR_SHARED(T, name) \
    __shared__ T name##_storage; \
    T& name = name##_storage

MR_FN u32 mr_tid() { return threadIdx.x; }
MR_FN u32 mr_ntid() { return blockDim.x; }
MR_FN u32 mr_bid() { return blockIdx.x; }
MR_FN u32 mr_nblocks() { return gridDim.x; }
MR_FN void mr_sync() { __syncthreads(); }

// Loads and stores of words the host reads or writes concurrently (mapped host memory).
// Generic addressing: the pointer may be mapped host memory or device memory.
MR_FN u64 mr_load_acquire_sys(const u64* p) {
    u64 v;
    asm volatile("ld.acquire.sys.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
MR_FN void mr_store_release_sys(u64* p, u64 v) {
    asm volatile("st.release.sys.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
MR_FN u64 mr_load_relaxed_sys(const u64* p) {
    u64 v;
    asm volatile("ld.relaxed.sys.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
MR_FN u32 mr_load_relaxed_sys_u32(const u32* p) {
    u32 v;
    asm volatile("ld.relaxed.sys.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
// Everything this thread wrote is visible system-wide (to the host) before what it writes next.
MR_FN void mr_fence_sys() { __threadfence_system(); }
// After an acquire of a newly published job: later plain loads must not be served from lines
// this SM cached for an earlier job at the same addresses.
MR_FN void mr_fence_acquire_sys() { asm volatile("fence.acq_rel.sys;" ::: "memory"); }
MR_FN void mr_backoff(u32 ns) {
    if (ns != 0) {
        __nanosleep(ns);
    }
}
// Device-scope ordering (between blocks, through device memory): no wait on the bus.
MR_FN void mr_fence_gpu() { __threadfence(); }
// The completion slot at `pos` is free (seq == pos): true by the protocol, so the device does
// not read it; the emulated device checks it.
MR_FN void mr_expect_free(const u64* seq, u64 pos) {
    (void)seq;
    (void)pos;
}
// A poll of a word in mapped host memory that is expected to read `want` some time: the
// emulated device counts the reads that did not (idle polls) apart from the one that did.
MR_FN u64 mr_poll_acquire_sys(const u64* p, u64 want) {
    (void)want;
    return mr_load_acquire_sys(p);
}
// A read of `stop` while idle (an idle poll).
MR_FN u64 mr_poll_relaxed_sys(const u64* p) { return mr_load_relaxed_sys(p); }
// A record read from, or written to, memory the host may have mapped (ring entries, job
// records, output tables): one call, one transaction of the bus when it is host memory.
template <typename T>
MR_FN T mr_host_read(const T* p) {
    return *p;
}
template <typename T>
MR_FN void mr_host_write(T* p, const T& v) {
    *p = v;
}

// Atomics on device memory (device scope).
MR_FN u64 mr_atomic_add_u64(u64* p, u64 v) { return atomicAdd((unsigned long long*)p, (unsigned long long)v); }
MR_FN u32 mr_atomic_add_u32(u32* p, u32 v) { return atomicAdd(p, v); }
MR_FN u32 mr_atomic_or_u32(u32* p, u32 v) { return atomicOr(p, v); }
MR_FN u32 mr_atomic_cas_u32(u32* p, u32 expected, u32 desired) { return atomicCAS(p, expected, desired); }
MR_FN u32 mr_atomic_exch_u32(u32* p, u32 v) { return atomicExch(p, v); }
MR_FN u64 mr_atomic_exch_u64(u64* p, u64 v) {
    return atomicExch((unsigned long long*)p, (unsigned long long)v);
}
MR_FN u64 mr_atomic_max_u64(u64* p, u64 v) { return atomicMax((unsigned long long*)p, (unsigned long long)v); }
MR_FN void mr_atomic_add_f64(double* p, double v) { atomicAdd(p, v); }
MR_FN u64 mr_atomic_load_u64(const u64* p) { return *(const volatile u64*)p; }
MR_FN u32 mr_atomic_load_u32(const u32* p) { return *(const volatile u32*)p; }

// Block-wide helpers: every thread of the block calls them (uniform control flow); blockDim is
// a multiple of 32. `scratch` is per-block shared memory of at least MR_MAX_BLOCK entries.

// Exclusive prefix sum of v over the block's threads, and the block's total.
MR_FN u32 mr_block_scan_u32(u32 v, u32* scratch, u32& total) {
    const u32 lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
    u32 x = v;
    for (u32 d = 1; d < 32; d <<= 1) {
        u32 y = __shfl_up_sync(0xffffffffu, x, d);
        if (lane >= d) x += y;
    }
    if (lane == 31) scratch[warp] = x;
    __syncthreads();
    if (warp == 0) {
        u32 s = lane < nwarps ? scratch[lane] : 0;
        for (u32 d = 1; d < 32; d <<= 1) {
            u32 y = __shfl_up_sync(0xffffffffu, s, d);
            if (lane >= d) s += y;
        }
        if (lane < nwarps) scratch[lane] = s;
    }
    __syncthreads();
    u32 before = warp > 0 ? scratch[warp - 1] : 0;
    total = scratch[nwarps - 1];
    __syncthreads();
    return before + x - v;
}

// Sum of v over the block, in thread 0.
MR_FN u64 mr_block_sum_u64(u64 v, u64* scratch) {
    const u32 lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
    for (u32 d = 16; d > 0; d >>= 1) v += __shfl_down_sync(0xffffffffu, v, d);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    u64 total = 0;
    if (threadIdx.x == 0) {
        for (u32 i = 0; i < nwarps; i++) total += scratch[i];
    }
    __syncthreads();
    return total;
}

// Sum of v over the threads whose `any` is set, in thread 0 (`any_out`: some thread had one).
MR_FN double mr_block_sum_f64(double v, bool any, double* scratch, u32* scratch_any, bool& any_out) {
    const u32 lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
    u32 a = any ? 1u : 0u;
    for (u32 d = 16; d > 0; d >>= 1) {
        double w = __shfl_down_sync(0xffffffffu, v, d);
        u32 b = __shfl_down_sync(0xffffffffu, a, d);
        if (lane + d < 32 && b) {
            v = a ? v + w : w;
            a = 1;
        }
    }
    if (lane == 0) {
        scratch[warp] = v;
        scratch_any[warp] = a;
    }
    __syncthreads();
    double total = 0.0;
    bool seen = false;
    if (threadIdx.x == 0) {
        for (u32 i = 0; i < nwarps; i++) {
            if (scratch_any[i]) {
                total = seen ? total + scratch[i] : scratch[i];
                seen = true;
            }
        }
    }
    any_out = seen;
    __syncthreads();
    return total;
}

MR_FN double mr_sqrt(double x) { return sqrt(x); }
MR_FN double mr_fabs(double x) { return fabs(x); }
MR_FN double mr_floor(double x) { return floor(x); }
MR_FN double mr_bits_f64(u64 b) { return __longlong_as_double((long long)b); }
MR_FN u64 mr_f64_bits(double x) { return (u64)__double_as_longlong(x); }

#endif  // MR_HOST

#endif  // MR_PLATFORM_CUH
