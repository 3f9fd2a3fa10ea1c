// dispatch_latency.cu — how fast can a host thread hand a tiny job to a kernel that is already
// running, and see it complete? The seed of meridian's resident megakernel.
//
// The control block is pinned, device-mapped host memory (cuMemHostAlloc DEVICEMAP|PORTABLE),
// read as 64-bit words. Each field sits on its own 128-byte line so that host and device
// writes to different fields never share a line:
//
//   word CTL_DOORBELL   (0)  the sequence number of the newest job (variant a; in variant b the
//                            doorbell is a word of device memory written by cuMemcpyHtoDAsync)
//   word CTL_COMPLETION (16) the sequence number of the newest finished job
//   word CTL_A, CTL_B   (32, 33) the job's operands, as f64 bits
//   word CTL_RESULT     (48) the job's result, as f64 bits
//
// Protocol: the host writes the operands, then the doorbell (release). Every polling block's
// thread 0 loads the doorbell with acquire at system scope; on a new sequence number the
// blocks race to advance a claim word in device memory from seq-1 to seq, and the winner does
// the job: it writes the result, fences at system scope (__threadfence_system) and only then
// publishes the completion. The host spins on the completion word with acquire. DOORBELL_STOP
// ends the kernel. Between polls a block may back off with __nanosleep.

typedef unsigned long long u64;

#define CTL_DOORBELL 0
#define CTL_COMPLETION 16
#define CTL_A 32
#define CTL_B 33
#define CTL_RESULT 48
#define DOORBELL_STOP 0xffffffffffffffffULL

__device__ __forceinline__ u64 load_acquire_sys(const u64* p) {
    u64 v;
    // Generic addressing (no .global): p is a generic pointer, valid for mapped host memory
    // and device memory alike.
    asm volatile("ld.acquire.sys.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}

__device__ __forceinline__ void store_release_sys(u64* p, u64 v) {
    asm volatile("st.release.sys.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

__device__ __forceinline__ void do_job(u64* ctl) {
    double a = __longlong_as_double((long long)load_acquire_sys(ctl + CTL_A));
    double b = __longlong_as_double((long long)load_acquire_sys(ctl + CTL_B));
    ((volatile u64*)ctl)[CTL_RESULT] = (u64)__double_as_longlong(a + b);
}

// The resident kernel: launched once, serves jobs until DOORBELL_STOP.
extern "C" __global__ void resident_adder(const u64* doorbell, u64* ctl, u64* claim, unsigned int backoff_ns) {
    if (threadIdx.x != 0) {
        return;
    }
    u64 seen = 0;
    for (;;) {
        u64 seq = load_acquire_sys(doorbell);
        if (seq == DOORBELL_STOP) {
            return;
        }
        if (seq != seen) {
            seen = seq;
            if (atomicCAS(claim, seq - 1, seq) == seq - 1) {
                do_job(ctl);
                __threadfence_system();
                store_release_sys(ctl + CTL_COMPLETION, seq);
            }
        } else if (backoff_ns != 0) {
            __nanosleep(backoff_ns);
        }
    }
}

// The baselines: one launch (or one graph launch) per job.
extern "C" __global__ void add_once(u64* ctl) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        do_job(ctl);
        __threadfence_system();
    }
}
