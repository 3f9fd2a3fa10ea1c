// host_shim.h — the platform helpers of platform.cuh for a host C++ build (MR_HOST).
//
// A block is a group of host threads that share one `MrHostBlock` (its barrier and its
// shared-state storage); each thread knows its ids through `mr_host_thread`, which the
// harness (host.cpp) sets before it calls the kernel body. Atomics map to the `__atomic`
// builtins on the same memory, `__threadfence_system` to a sequentially consistent fence,
// `__nanosleep` to a short sleep (host threads that spin would starve the others).
#ifndef MR_HOST_SHIM_H
#define MR_HOST_SHIM_H

#include <cmath>
#include <cstring>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <chrono>
#include <atomic>
#include <cstdint>
#include <map>
#include <shared_mutex>
#include <algorithm>
#include <memory>
#include <vector>

#define MR_FN static inline
#define MR_NOINLINE static
#define MR_METHOD inline
#define MR_KERNEL static
#define MR_SHARED(T, name) T& name = *static_cast<T*>(mr_host_thread.block->shared)

// A reusable barrier for the threads of one emulated block (`__syncthreads`).
struct MrHostBarrier {
    std::mutex m;
    std::condition_variable cv;
    u32 count = 0;
    u32 waiting = 0;
    u64 generation = 0;
    void wait() {
        std::unique_lock<std::mutex> lock(m);
        u64 gen = generation;
        if (++waiting == count) {
            waiting = 0;
            generation++;
            cv.notify_all();
            return;
        }
        cv.wait(lock, [&] { return generation != gen; });
    }
};

struct MrHostBlock {
    MrHostBarrier barrier;
    void* shared = nullptr;
};

// What one launch of the megakernel did to mapped host memory, the numbers a device pays a
// bus round trip (or a posted transaction) for: reads that found work or data, idle polls
// (reads that found nothing yet), writes, system-scope fences; device-scope fences, which
// stay on the chip; and completions written into a slot the host had not freed yet (a broken
// protocol: the emulated device checks what a device cannot).
struct MrHostCounts {
    std::atomic<u64> reads{0};
    std::atomic<u64> polls{0};
    std::atomic<u64> writes{0};
    std::atomic<u64> fences{0};
    std::atomic<u64> gpu_fences{0};
    std::atomic<u64> overruns{0};
};

struct MrHostThread {
    u32 tid = 0;
    u32 ntid = 1;
    u32 bid = 0;
    u32 nblocks = 1;
    MrHostBlock* block = nullptr;
    MrHostCounts* counts = nullptr;
};

extern thread_local MrHostThread mr_host_thread;

// The mapped host allocations of every emulated device (start -> length): an access is
// counted only when it lands in one (device memory is host memory too, here).
inline std::shared_mutex mr_host_mapped_lock;
inline std::map<u64, u64> mr_host_mapped;

inline bool mr_host_is_mapped(const void* p) {
    u64 a = (u64)(uintptr_t)p;
    std::shared_lock<std::shared_mutex> g(mr_host_mapped_lock);
    auto it = mr_host_mapped.upper_bound(a);
    if (it == mr_host_mapped.begin()) return false;
    --it;
    return a < it->first + it->second;
}

inline void mr_host_count(std::atomic<u64> MrHostCounts::*field, const void* p) {
    MrHostCounts* c = mr_host_thread.counts;
    if (c != nullptr && mr_host_is_mapped(p)) (c->*field).fetch_add(1, std::memory_order_relaxed);
}
inline void mr_host_count_fence(std::atomic<u64> MrHostCounts::*field) {
    MrHostCounts* c = mr_host_thread.counts;
    if (c != nullptr) (c->*field).fetch_add(1, std::memory_order_relaxed);
}

// Runs `kernel()` as a launch of `nblocks` blocks of `ntid` host threads, `concurrent` blocks
// at a time, each block with its barrier and a fresh `Shared` as its shared state, its threads
// counting their traffic with mapped memory into `counts` (may be null). Blocks of one group
// run at once, so a block may wait for an earlier one (the megakernel's blocks, all in one
// group; a split join's fast kernel's); a group starts when the last is done.
template <typename Shared, typename Kernel>
static void mr_host_launch(u32 nblocks, u32 ntid, u32 concurrent, MrHostCounts* counts, Kernel kernel) {
    for (u32 b0 = 0; b0 < nblocks; b0 += concurrent) {
        const u32 nb = std::min(concurrent, nblocks - b0);
        std::vector<std::unique_ptr<MrHostBlock>> blocks;
        std::vector<std::unique_ptr<Shared>> shared;
        for (u32 b = 0; b < nb; b++) {
            blocks.emplace_back(new MrHostBlock());
            blocks.back()->barrier.count = ntid;
            shared.emplace_back(new Shared());
            blocks.back()->shared = shared.back().get();
        }
        std::vector<std::thread> threads;
        for (u32 b = 0; b < nb; b++) {
            for (u32 t = 0; t < ntid; t++) {
                MrHostBlock* block = blocks[b].get();
                const u32 bid = b0 + b;
                threads.emplace_back([=] {
                    mr_host_thread.tid = t;
                    mr_host_thread.ntid = ntid;
                    mr_host_thread.bid = bid;
                    mr_host_thread.nblocks = nblocks;
                    mr_host_thread.block = block;
                    mr_host_thread.counts = counts;
                    kernel();
                });
            }
        }
        for (auto& t : threads) t.join();
    }
}

// Runs `kernel()` once per row of a launch over `rows` rows, on this thread, each run an
// emulated block of one thread (a per-job kernel whose blocks share nothing).
template <typename Kernel>
static void mr_host_each_row(u64 rows, Kernel kernel) {
    mr_host_thread.tid = 0;
    mr_host_thread.ntid = 1;
    mr_host_thread.nblocks = (u32)rows;
    mr_host_thread.block = nullptr;
    for (u64 i = 0; i < rows; i++) {
        mr_host_thread.bid = (u32)i;
        kernel();
    }
}

MR_FN u32 mr_tid() { return mr_host_thread.tid; }
MR_FN u32 mr_ntid() { return mr_host_thread.ntid; }
MR_FN u32 mr_bid() { return mr_host_thread.bid; }
MR_FN u32 mr_nblocks() { return mr_host_thread.nblocks; }
MR_FN void mr_sync() {
    if (mr_host_thread.block != nullptr && mr_host_thread.ntid > 1) {
        mr_host_thread.block->barrier.wait();
    }
}

MR_FN u64 mr_load_acquire_sys(const u64* p) {
    mr_host_count(&MrHostCounts::reads, p);
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
MR_FN void mr_store_release_sys(u64* p, u64 v) {
    mr_host_count(&MrHostCounts::writes, p);
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
MR_FN u64 mr_load_relaxed_sys(const u64* p) {
    mr_host_count(&MrHostCounts::reads, p);
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
MR_FN u32 mr_load_relaxed_sys_u32(const u32* p) {
    mr_host_count(&MrHostCounts::reads, p);
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
MR_FN u64 mr_poll_acquire_sys(const u64* p, u64 want) {
    u64 v = __atomic_load_n(p, __ATOMIC_ACQUIRE);
    mr_host_count(v == want ? &MrHostCounts::reads : &MrHostCounts::polls, p);
    return v;
}
MR_FN u64 mr_poll_relaxed_sys(const u64* p) {
    mr_host_count(&MrHostCounts::polls, p);
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
// Records are copied under a sequentially consistent fence on each side, so the copy sees
// what the host published before the acquire that led here (and the host sees it complete
// before the release that follows), as plain loads and stores do on the device.
template <typename T>
MR_FN T mr_host_read(const T* p) {
    mr_host_count(&MrHostCounts::reads, p);
    T v;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    std::memcpy(static_cast<void*>(&v), static_cast<const void*>(p), sizeof(T));
    return v;
}
template <typename T>
MR_FN void mr_host_write(T* p, const T& v) {
    mr_host_count(&MrHostCounts::writes, p);
    std::memcpy(static_cast<void*>(p), static_cast<const void*>(&v), sizeof(T));
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
MR_FN void mr_expect_free(const u64* seq, u64 pos) {
    MrHostCounts* c = mr_host_thread.counts;
    if (c != nullptr && __atomic_load_n(seq, __ATOMIC_ACQUIRE) != pos) c->overruns.fetch_add(1);
}
MR_FN void mr_fence_sys() {
    mr_host_count_fence(&MrHostCounts::fences);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
MR_FN void mr_fence_acquire_sys() {
    mr_host_count_fence(&MrHostCounts::fences);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
MR_FN void mr_fence_gpu() {
    mr_host_count_fence(&MrHostCounts::gpu_fences);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
MR_FN void mr_backoff(u32 ns) {
    if (ns == 0) {
        std::this_thread::yield();
    } else {
        std::this_thread::sleep_for(std::chrono::microseconds(ns > 20000 ? 200 : 20));
    }
}

MR_FN u64 mr_atomic_add_u64(u64* p, u64 v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
MR_FN u32 mr_atomic_add_u32(u32* p, u32 v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
MR_FN u32 mr_atomic_or_u32(u32* p, u32 v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
MR_FN u32 mr_atomic_cas_u32(u32* p, u32 expected, u32 desired) {
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return expected;
}
MR_FN u32 mr_atomic_exch_u32(u32* p, u32 v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
MR_FN u64 mr_atomic_exch_u64(u64* p, u64 v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
MR_FN u64 mr_atomic_max_u64(u64* p, u64 v) {
    u64 old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
    }
    return old;
}
MR_FN double mr_bits_f64(u64 b) {
    double x;
    std::memcpy(&x, &b, 8);
    return x;
}
MR_FN u64 mr_f64_bits(double x) {
    u64 b;
    std::memcpy(&b, &x, 8);
    return b;
}
MR_FN void mr_atomic_add_f64(double* p, double v) {
    u64* w = reinterpret_cast<u64*>(p);
    u64 old = __atomic_load_n(w, __ATOMIC_RELAXED);
    for (;;) {
        u64 next = mr_f64_bits(mr_bits_f64(old) + v);
        if (__atomic_compare_exchange_n(w, &old, next, true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
            return;
        }
    }
}
MR_FN u64 mr_atomic_load_u64(const u64* p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
MR_FN u32 mr_atomic_load_u32(const u32* p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }

// The block-wide helpers of platform.cuh, over the block's shared scratch: each thread
// publishes its value, then reads what it needs after a barrier. Integer results are the
// device's exactly; the f64 sum is added in thread order (the device adds by warps, so sums
// may differ in their last bits, as any change of summation order does).
MR_FN u32 mr_block_scan_u32(u32 v, u32* scratch, u32& total) {
    const u32 tid = mr_tid(), n = mr_ntid();
    scratch[tid] = v;
    mr_sync();
    u32 before = 0, all = 0;
    for (u32 i = 0; i < n; i++) {
        if (i < tid) before += scratch[i];
        all += scratch[i];
    }
    total = all;
    mr_sync();
    return before;
}
MR_FN u64 mr_block_sum_u64(u64 v, u64* scratch) {
    const u32 tid = mr_tid(), n = mr_ntid();
    scratch[tid] = v;
    mr_sync();
    u64 total = 0;
    if (tid == 0) {
        for (u32 i = 0; i < n; i++) total += scratch[i];
    }
    mr_sync();
    return total;
}
MR_FN double mr_block_sum_f64(double v, bool any, double* scratch, u32* scratch_any, bool& any_out) {
    const u32 tid = mr_tid(), n = mr_ntid();
    scratch[tid] = v;
    scratch_any[tid] = any ? 1u : 0u;
    mr_sync();
    double total = 0.0;
    bool seen = false;
    if (tid == 0) {
        for (u32 i = 0; i < n; i++) {
            if (scratch_any[i]) {
                total = seen ? total + scratch[i] : scratch[i];
                seen = true;
            }
        }
    }
    any_out = seen;
    mr_sync();
    return total;
}

MR_FN double mr_sqrt(double x) { return std::sqrt(x); }
MR_FN double mr_fabs(double x) { return std::fabs(x); }
MR_FN double mr_floor(double x) { return std::floor(x); }

#endif  // MR_HOST_SHIM_H
