// megakernel.cu — the resident kernel: launched once per Engine, it serves jobs from the
// submission ring until the host raises `stop`.
//
// Ring layout and protocol are runtime/src/ring (docs/ring-protocol.md): the rings live in
// pinned, device-mapped host memory with the same #[repr(C)] layout the CPU executor uses.
// The host produces submissions and consumes completions with its own code; on the device:
//
// - Each block's leader claims the next submission *position* from a counter in device memory
//   (the ring's own `head` is host memory, and device atomics on mapped memory are not atomic
//   with respect to anyone else), then waits for that position's slot to be published
//   (`seq == pos + 1`, acquire at system scope), reads the entry, and frees the slot for the
//   producer's next lap (`seq = pos + capacity`, release).
// - The block runs rows [begin, end) of the chunk in tiles of blockDim rows, one row per
//   thread through the device interpreter. Dense outputs are written by row. Hits are kept
//   per thread and appended once per tile per hits output: a block scan gives each thread its
//   place, one atomic reserves the tile's run, and the run (start, length) is recorded, so the
//   host orders runs instead of sorting hits. Past the capacity hits are counted, not stored
//   (the host re-runs the job with the count). Reductions are summed per thread, then per
//   block, then added once to the job's accumulators.
// - The block that finishes a job's last chunk copies the accumulators into the job record
//   (mapped memory), resets them for the slot's next job, and publishes the completion:
//   fields, then the sequence number by a release store at system scope.
// - Idle leaders back off with __nanosleep. The leader whose position is next in line polls
//   its slot every `backoff_ns` at most; one k positions further back sleeps about k µs (up to
//   100 µs) between polls, watching a device-memory counter of positions taken to move up
//   the line, so hundreds of idle blocks do not flood the bus with reads of host memory.
//
// That is the leaders' protocol (MR_PROTOCOL_LEADERS, 2026-11). Under MR_PROTOCOL_POLLER (the
// default) only the leader next in line reads host memory at all; the entry carries the
// job's head; the host frees submission slots; no system fence; the completion is written
// without a wait (mr_claim_poller, mr_finish_chunk_poller; docs/ring-protocol.md). The
// emulated device counts each protocol's reads, writes and fences of host memory.
#ifndef MR_MEGAKERNEL_CU
#define MR_MEGAKERNEL_CU

#include "interp.cuh"

// ---- the ring and job ABI ----------------------------------------------------------------
//
// The records below are kernels/src/cuda/abi/job.rs's (the runtime's executor uses those);
// their numbers — MR_RING_CLOSED, MR_SLOT_*, MR_STATUS_*, MR_FLAG_*, MR_MAX_BLOCK,
// MR_LOCAL_HITS — and sizes and offsets are generated into abi_gen.cuh, and MR_CHECK_ABI()
// below holds every record of the ABI to them.

// A chunk of a job: everything a block needs to start it, in the slot's one cache line.
struct MrOutput;
struct MrSubmit {
    u32 job;
    u32 chunks;
    u64 begin;
    u64 end;
    u64 rows_begin;
    const MrProgram* program;
    const MrInput* inputs;
    const MrOutput* outputs;
};

// Where one output of a job goes. A geometry output uses the hits fields for its own arrays:
// `hits` its arena of words (each row's geometry: part and ring offsets, two u32 a word, then
// x, then y), `hit_capacity` the arena's words, and `runs` a record of four words per job row
// (its start in the arena, ~0 past the capacity; its family, 0 for null; parts << 32 | rings;
// coordinates).
struct MrOutput {
    u32 kind;
    u32 pad;
    double* values;    // f64: a value per job row
    u8* valid;         // f64: 1 where a value was stored
    u8* bools;         // bool: 0, 1 or 2 (null) per job row
    u64* hits;         // hits: row << 32 | id
    u64 hit_capacity;
    u64* runs;         // hits: (start, length) of every appended run
    u64 run_capacity;  // in runs (two words each)
};

// An output's accumulators: hits appended (hits) or the count (count); runs recorded (hits);
// the sum and whether anything was added (sum).
struct MrAcc {
    u64 cursor;
    u64 runs;
    double sum;
    u32 any;
    u32 pad;
};

struct MrError {
    u32 code;
    u32 pc;
    u64 row;
};

// A completion. Under MR_PROTOCOL_POLLER it also carries the submission positions taken (the
// host frees the slots before it) and the first output's accumulators, so a job of one
// output completes with one write of one cache line and the sequence number; a job
// published with its row inline carries that row's outputs there instead (mr_inline_outputs).
struct MrComplete {
    u32 job;
    u32 status;
    u64 hits;
    u64 taken;
    union {
        MrAcc first;
        u64 row[MR_INLINE_ROW_BYTES / 8];
    };
};

struct MrJobHead {
    const MrProgram* program;
    const MrInput* inputs;
    const MrOutput* outputs;
    u64 rows_begin;
    u64 rows_end;
    u32 chunks;
    u32 noutputs;
};

// A job slot's record in mapped host memory: `head` written by the host before the chunks
// are published; `error` and `results` by the device before the completion.
struct MrJob {
    MrJobHead head;
    MrError error;
    MrAcc results[MR_MAX_OUTPUTS];
};

// A job slot's state in device memory, shared by the blocks running its chunks.
struct MrSlotState {
    u32 done;         // chunks finished
    u32 flags;        // MR_FLAG_*
    u32 error_claim;  // set by the first failing row
    u32 cancel;       // written by the host (0 at submission, 1 to stop the job); read here
    MrAcc acc[MR_MAX_OUTPUTS];
};

struct MrDeviceState {
    u64 submit_claim;    // next submission position a block takes
    u64 complete_claim;  // next completion position a block fills
    u64 taken;           // one past the highest submission position taken so far
    u64 entered;         // blocks that started (diagnostics)
    u64 exited;          // blocks that finished
    u64 stopping;        // a leader saw the host's `stop`: the others leave without reading it
    u64 pad[2];
    // MrSlotState slots[job_slots] follows.
};

// The control block, in mapped host memory.
struct MrControl {
    u8* submit;                  // submission ring: header, then slots
    u8* complete;                // completion ring
    MrJob* jobs;                 // job_slots records
    MrDeviceState* state;        // device memory
    u32 submit_mask;             // capacity - 1
    u32 complete_mask;
    u32 submit_slots_offset;
    u32 complete_slots_offset;
    u32 job_slots;
    u32 backoff_ns;              // longest idle back-off
    u32 protocol;                // MR_PROTOCOL_*
    u32 pad;
    u64 stop;                    // host: non-zero ends the kernel
};

// Every record of the ABI (these and abi.cuh's, construct.cuh's, interp.cuh's) against the
// Rust ones' sizes and offsets.
MR_CHECK_ABI();

MR_FN MrSlotState* mr_slot_state(const MrControl* ctl, u32 slot) {
    return reinterpret_cast<MrSlotState*>(reinterpret_cast<u8*>(ctl->state) + sizeof(MrDeviceState)) + slot;
}

// ---- per-thread outputs ------------------------------------------------------------------

// Words of a stored geometry's offsets: its parts' and rings' (np + 1 and nr + 1 u32,
// relative to its first ring and coordinate), two a word.
MR_FN u64 mr_geom_offset_words(u32 np, u32 nr) { return ((u64)np + nr + 2 + 1) / 2; }

struct MrThreadSink {
    const MrProgram* prog;
    const MrOutput* outputs;
    u64 rows_begin;
    MrAcc* acc;
    u64 keys[MR_LOCAL_HITS];
    u8 outs[MR_LOCAL_HITS];
    u32 n;
    u64 counts[MR_MAX_REDUCTIONS];
    double sums[MR_MAX_REDUCTIONS];
    u32 any;  // bit r: sums[r] holds a value

    MR_METHOD void store_f64(u32 o, u64 row, bool ok, double v) {
        const MrOutput& out = outputs[o];
        u64 i = row - rows_begin;
        out.values[i] = ok ? v : 0.0;
        out.valid[i] = ok ? 1 : 0;
    }
    MR_METHOD void store_bool(u32 o, u64 row, u8 v) { outputs[o].bools[row - rows_begin] = v; }
    // A geometry output's row (`g` null: a null row): its words reserved in the output's
    // arena by one atomic, then written there, and the row's record pointing at them. Past
    // the arena's capacity nothing is written but the words are still counted: the host runs
    // the job again with room for them (as it does for hits).
    MR_METHOD void store_geom(u32 o, u64 row, const MrGeom* g) {
        const MrOutput& out = outputs[o];
        u64* rec = out.runs + MR_GEOM_ROW_WORDS * (row - rows_begin);
        if (g == nullptr) {
            rec[0] = 0;
            rec[1] = 0;
            rec[2] = 0;
            rec[3] = 0;
            return;
        }
        u32 np = g->p1 - g->p0;
        u32 r0 = mr_first_ring(*g), r1 = mr_last_ring(*g);
        u32 k0 = mr_coord_begin(*g), k1 = mr_coord_end(*g);
        u32 nr = r1 - r0, nc = k1 - k0;
        u64 offsets = mr_geom_offset_words(np, nr);
        u64 words = offsets + 2ULL * nc;
        u64 start = mr_atomic_add_u64(&acc[o].cursor, words);
        rec[1] = g->family;
        rec[2] = ((u64)np << 32) | nr;
        rec[3] = nc;
        if (start + words > out.hit_capacity) {
            rec[0] = ~0ULL;
            return;
        }
        rec[0] = start;
        u64* at = out.hits + start;
        u32* off = reinterpret_cast<u32*>(at);
        for (u32 p = 0; p <= np; p++) off[p] = mr_po(g->c, g->p0 + p) - r0;
        for (u32 r = 0; r <= nr; r++) off[np + 1 + r] = mr_ro(g->c, r0 + r) - k0;
        if ((np + nr + 2) & 1) off[np + nr + 2] = 0;
        double* xy = reinterpret_cast<double*>(at + offsets);
        for (u32 k = 0; k < nc; k++) {
            xy[k] = g->c->x[k0 + k];
            xy[nc + k] = g->c->y[k0 + k];
        }
    }
    MR_METHOD void emit(u32 o, u64 row, u32 id) {
        if (n == MR_LOCAL_HITS) flush_own();
        keys[n] = (row << 32) | (u64)id;
        outs[n] = (u8)o;
        n++;
    }
    MR_METHOD void count(u32 o) {
        u32 r = prog->red_of[o];
        if (r < MR_MAX_REDUCTIONS) counts[r] += 1;
    }
    MR_METHOD void sum(u32 o, double v) {
        u32 r = prog->red_of[o];
        if (r >= MR_MAX_REDUCTIONS) return;
        if ((any >> r) & 1) {
            sums[r] += v;
        } else {
            sums[r] = v;
            any |= 1u << r;
        }
    }
    // Appends n hits of output o at a reserved place, recording the run.
    MR_METHOD void append(u32 o, u64 start, u64 len) {
        const MrOutput& out = outputs[o];
        u64 r = mr_atomic_add_u64(&acc[o].runs, 1);
        if (r < out.run_capacity) {
            out.runs[2 * r] = start;
            out.runs[2 * r + 1] = len;
        }
    }
    // The local buffer is full: this thread appends its own hits as runs of their own.
    MR_METHOD void flush_own() {
        for (u32 i = 0; i < n; i++) {
            if (outs[i] == 0xff) continue;
            u32 o = outs[i];
            u64 c = 0;
            for (u32 j = i; j < n; j++) c += outs[j] == o;
            u64 start = mr_atomic_add_u64(&acc[o].cursor, c);
            append(o, start, c);
            const MrOutput& out = outputs[o];
            u64 k = start;
            for (u32 j = i; j < n; j++) {
                if (outs[j] != o) continue;
                if (k < out.hit_capacity) out.hits[k] = keys[j];
                k++;
                outs[j] = 0xff;
            }
        }
        n = 0;
    }
};

// ---- block state -------------------------------------------------------------------------

struct MrBlockShared {
    MrControl ctl;  // the control block's constant fields, read once
    MrOutput outs[MR_MAX_OUTPUTS];  // the job's output table (arena tables live in host memory)
    u64 row[MR_INLINE_ROW_BYTES / 8];  // an inline job's row outputs, for its completion
    u32 quit;
    u32 slot;
    u32 cancelled;
    u32 inline_row;  // the job's outputs are `row` (published without an output table)
    u64 begin;
    u64 end;
    u64 base;
    MrJobHead head;
    MrProgram prog;
    u32 scan[MR_MAX_BLOCK];
    u64 red_u[MR_MAX_BLOCK];
    double red_f[MR_MAX_BLOCK];
    u32 red_any[MR_MAX_BLOCK];
};

// Sets a row's dense outputs to "not stored" before the program runs on it.
MR_FN void mr_init_dense(const MrProgram& p, const MrOutput* outputs, u64 i) {
    for (u32 o = 0; o < p.noutputs; o++) {
        u32 k = p.out_kinds[o];
        if (k == MR_OUT_F64) {
            outputs[o].values[i] = 0.0;
            outputs[o].valid[i] = 0;
        } else if (k == MR_OUT_BOOL) {
            outputs[o].bools[i] = MR_B_NULL;
        } else if (k == MR_OUT_GEOMETRY) {
            // Null unless the row ends normally (mr_end_row writes every geometry output).
            u64* rec = outputs[o].runs + MR_GEOM_ROW_WORDS * i;
            rec[0] = rec[1] = rec[2] = rec[3] = 0;
        }
    }
}

// Appends the tile's buffered hits, output by output: one run per output per tile, in row
// order (called by every thread of the block).
MR_FN void mr_flush_tile(MrBlockShared& sh, MrThreadSink& sink) {
    const MrProgram& p = sh.prog;
    for (u32 o = 0; o < p.noutputs; o++) {
        if (p.out_kinds[o] != MR_OUT_HITS) continue;
        u32 mine = 0;
        for (u32 i = 0; i < sink.n; i++) mine += sink.outs[i] == o;
        u32 total = 0;
        u32 before = mr_block_scan_u32(mine, sh.scan, total);
        if (total == 0) continue;
        if (mr_tid() == 0) {
            sh.base = mr_atomic_add_u64(&sink.acc[o].cursor, total);
            sink.append(o, sh.base, total);
        }
        mr_sync();
        const MrOutput& out = sink.outputs[o];
        u64 k = sh.base + before;
        for (u32 i = 0; i < sink.n; i++) {
            if (sink.outs[i] != o) continue;
            if (k < out.hit_capacity) out.hits[k] = sink.keys[i];
            k++;
        }
        mr_sync();
    }
    sink.n = 0;
}

// Combines the threads' reductions and adds them to the job's accumulators once.
MR_FN void mr_flush_reductions(MrBlockShared& sh, MrThreadSink& sink) {
    const MrProgram& p = sh.prog;
    for (u32 r = 0; r < p.nred && r < MR_MAX_REDUCTIONS; r++) {
        u32 o = p.red_outputs[r];
        if (p.out_kinds[o] == MR_OUT_COUNT) {
            u64 total = mr_block_sum_u64(sink.counts[r], sh.red_u);
            if (mr_tid() == 0 && total != 0) mr_atomic_add_u64(&sink.acc[o].cursor, total);
        } else {
            bool any = false;
            double total = mr_block_sum_f64(sink.sums[r], (sink.any >> r) & 1, sh.red_f, sh.red_any, any);
            if (mr_tid() == 0 && any) {
                mr_atomic_add_f64(&sink.acc[o].sum, total);
                mr_atomic_exch_u32(&sink.acc[o].any, 1);
            }
        }
    }
}

// The leader's wait for the submission at `pos`; false when told to stop first. `live` is the
// control block in mapped memory (for `stop`); sh.ctl its constant fields.
MR_FN bool mr_claim(const MrControl* live, u64 pos, MrBlockShared& sh) {
    const MrControl& ctl = sh.ctl;
    u8* slot = ctl.submit + ctl.submit_slots_offset + (pos & ctl.submit_mask) * MR_SLOT_BYTES;
    u32 sleep = 0;
    for (u32 polls = 0;; polls++) {
        u64 seq = mr_poll_acquire_sys(reinterpret_cast<const u64*>(slot), pos + 1);
        if (seq == pos + 1) break;
        u64 taken = mr_atomic_load_u64(&ctl.state->taken);
        u64 ahead = pos > taken ? pos - taken : 0;
        // Only the leader next in line reads `stop` in host memory; it tells the others through
        // device memory. Hundreds of leaders reading host memory slow every read on the bus,
        // the next-in-line's poll of its slot included (the dispatch experiment: 132 polling
        // blocks, 60x the latency of one).
        if ((polls & 7) == 0) {
            if (ahead == 0 && mr_poll_relaxed_sys(&live->stop) != 0) {
                mr_atomic_exch_u64(&ctl.state->stopping, 1);
                return false;
            }
            if (mr_atomic_load_u64(&ctl.state->stopping) != 0) return false;
        }
        if (ahead == 0) {
            mr_backoff(sleep);
            sleep = sleep == 0 ? 32 : (sleep * 2 > ctl.backoff_ns ? ctl.backoff_ns : sleep * 2);
        } else {
            mr_backoff(ahead > 100 ? 100000u : (u32)ahead * 1000u);
        }
    }
    mr_fence_acquire_sys();
    MrSubmit e = mr_host_read(reinterpret_cast<const MrSubmit*>(slot + MR_SLOT_VALUE));
    sh.slot = e.job;
    sh.begin = e.begin;
    sh.end = e.end;
    // Free the slot for the producer's next lap (the entry has been read).
    mr_store_release_sys(reinterpret_cast<u64*>(slot), pos + (u64)ctl.submit_mask + 1);
    mr_atomic_max_u64(&ctl.state->taken, pos + 1);
    sh.cancelled = mr_load_relaxed_sys_u32(reinterpret_cast<const u32*>(ctl.submit + MR_RING_CLOSED)) != 0 ||
                   mr_atomic_load_u32(&mr_slot_state(&ctl, sh.slot)->cancel) != 0;
    sh.head = mr_host_read(&ctl.jobs[sh.slot].head);
    sh.prog = *sh.head.program;
    for (u32 o = 0; o < sh.head.noutputs && o < MR_MAX_OUTPUTS; o++) sh.outs[o] = mr_host_read(&sh.head.outputs[o]);
    return true;
}

// Whether any output of `p` is written by row (dense, hits, geometry): a program of counts
// and sums only needs no output table, its results are the accumulators.
MR_FN bool mr_has_row_outputs(const MrProgram& p) {
    for (u32 o = 0; o < p.noutputs && o < MR_MAX_OUTPUTS; o++) {
        if (p.out_kinds[o] != MR_OUT_COUNT && p.out_kinds[o] != MR_OUT_SUM) return true;
    }
    return false;
}

// A one-row job published without an output table (its outputs f64 and bool only, the
// host's Layout::inline): the row's outputs go to the block's `row`, which the completion
// carries back, so the job reads no table and writes nothing to an arena. The k-th f64
// output's value is word k, output o's validity or bool code byte MR_INLINE_FLAGS + o; the
// host publishes no other kind of job so, and a job that does not fit gets null pointers
// (a fault, not a write past `row`).
MR_FN void mr_inline_outputs(MrBlockShared& sh) {
    u8* row = reinterpret_cast<u8*>(sh.row);
    for (u32 w = 0; w < MR_INLINE_ROW_BYTES / 8; w++) sh.row[w] = 0;
    u32 f64s = 0;
    for (u32 o = 0; o < sh.prog.noutputs && o < MR_MAX_OUTPUTS; o++) {
        MrOutput out = {};
        out.kind = sh.prog.out_kinds[o];
        bool fits = o < MR_INLINE_OUTPUTS;
        if (out.kind == MR_OUT_F64 && fits && f64s < MR_INLINE_F64) {
            out.values = reinterpret_cast<double*>(row) + f64s++;
            out.valid = row + MR_INLINE_FLAGS + o;
        } else if (out.kind == MR_OUT_BOOL && fits) {
            out.bools = row + MR_INLINE_FLAGS + o;
        }
        sh.outs[o] = out;
    }
}

// MR_PROTOCOL_POLLER's wait for the submission at `pos`. The leaders wait for their turn in
// device memory (`taken` is the position next in line), so the one whose turn it is is the
// only reader of host memory on the submission path: it polls its slot, reads the entry (the
// job's head is in it), and moves `taken` on at once, so the next leader polls while this
// block runs the chunk it took (a small job runs where it was found, with no second hop).
// The slot is not freed here: the host frees submission slots up to the `taken` that
// completions carry, which saves a write to host memory per chunk.
MR_FN bool mr_claim_poller(const MrControl* live, u64 pos, MrBlockShared& sh) {
    const MrControl& ctl = sh.ctl;
    for (;;) {
        u64 taken = mr_atomic_load_u64(&ctl.state->taken);
        if (taken >= pos) break;
        if (mr_atomic_load_u64(&ctl.state->stopping) != 0) return false;
        // Next after the poller: checks device memory every 128 ns to take over quickly.
        u64 ahead = pos - taken;
        mr_backoff(ahead == 1 ? 128u : (ahead > 100 ? 100000u : (u32)ahead * 1000u));
    }
    const u8* slot = ctl.submit + ctl.submit_slots_offset + (pos & ctl.submit_mask) * MR_SLOT_BYTES;
    u32 sleep = 0;
    for (u32 polls = 0;; polls++) {
        u64 seq = mr_poll_acquire_sys(reinterpret_cast<const u64*>(slot), pos + 1);
        if (seq == pos + 1) break;
        if ((polls & 7) == 7 && mr_poll_relaxed_sys(&live->stop) != 0) {
            mr_atomic_exch_u64(&ctl.state->stopping, 1);
            return false;
        }
        mr_backoff(sleep);
        sleep = sleep == 0 ? 32 : (sleep * 2 > ctl.backoff_ns ? ctl.backoff_ns : sleep * 2);
    }
    // The acquire above orders this read after the host's writes of the entry; the block's
    // other threads see what the leader read through the barrier that follows the claim.
    MrSubmit e = mr_host_read(reinterpret_cast<const MrSubmit*>(slot + MR_SLOT_VALUE));
    mr_atomic_exch_u64(&ctl.state->taken, pos + 1);
    sh.slot = e.job;
    sh.begin = e.begin;
    sh.end = e.end;
    // Shutdown reaches a queued job through its cancel word (the host sets it for every job
    // in flight when it closes the ring), not through a read of `closed`.
    sh.cancelled = mr_atomic_load_u32(&mr_slot_state(&ctl, sh.slot)->cancel) != 0;
    sh.head.program = e.program;
    sh.head.inputs = e.inputs;
    sh.head.outputs = e.outputs;
    sh.head.rows_begin = e.rows_begin;
    sh.head.rows_end = 0;
    sh.head.chunks = e.chunks;
    sh.prog = *e.program;
    sh.head.noutputs = sh.prog.noutputs;
    sh.inline_row = e.outputs == nullptr ? 1 : 0;
    if (sh.inline_row) {
        mr_inline_outputs(sh);
    } else if (mr_has_row_outputs(sh.prog)) {
        for (u32 o = 0; o < sh.head.noutputs && o < MR_MAX_OUTPUTS; o++) sh.outs[o] = mr_host_read(&e.outputs[o]);
    }
    return true;
}

// Publishes a completion: waits for the slot to be free, writes the fields, then publishes
// the sequence number with a release store.
MR_FN void mr_publish(const MrControl* live, const MrControl& ctl, u32 job, u32 status, u64 hits) {
    u64 pos = mr_atomic_add_u64(&ctl.state->complete_claim, 1);
    u8* slot = ctl.complete + ctl.complete_slots_offset + (pos & ctl.complete_mask) * MR_SLOT_BYTES;
    u32 sleep = 0;
    while (mr_poll_acquire_sys(reinterpret_cast<const u64*>(slot), pos) != pos) {
        if (mr_poll_relaxed_sys(&live->stop) != 0) return;
        mr_backoff(sleep);
        sleep = sleep == 0 ? 32 : (sleep * 2 > ctl.backoff_ns ? ctl.backoff_ns : sleep * 2);
    }
    MrComplete c = {};
    c.job = job;
    c.status = status;
    c.hits = hits;
    mr_host_write(reinterpret_cast<MrComplete*>(slot + MR_SLOT_VALUE), c);
    // A release store at system scope: this thread's writes (the fields, the job's results)
    // and, cumulatively, the block's (each thread fenced before the barrier that preceded
    // this) are visible before the sequence number. A separate fence would wait for the bus
    // once more.
    mr_store_release_sys(reinterpret_cast<u64*>(slot), pos + 1);
}

// The leader, after the block's chunk: the last chunk of a job completes it.
MR_FN void mr_finish_chunk(const MrControl* live, MrBlockShared& sh) {
    const MrControl* ctl = &sh.ctl;
    MrSlotState* st = mr_slot_state(ctl, sh.slot);
    u32 done = mr_atomic_add_u32(&st->done, 1) + 1;
    if (done != sh.head.chunks) return;
    // Every other chunk fenced before counting itself done; this fence carries their writes
    // before the completion. A job of one chunk has no other writers (each fence to host
    // memory waits a bus round trip: the round trip of a small job is a handful of them).
    if (sh.head.chunks > 1) mr_fence_sys();
    mr_atomic_exch_u32(&st->done, 0);
    u32 flags = mr_atomic_exch_u32(&st->flags, 0);
    mr_atomic_exch_u32(&st->error_claim, 0);
    MrJob* job = &ctl->jobs[sh.slot];
    u64 hits = 0;
    for (u32 o = 0; o < sh.prog.noutputs; o++) {
        MrAcc a;
        a.cursor = mr_atomic_exch_u64(&st->acc[o].cursor, 0);
        a.runs = mr_atomic_exch_u64(&st->acc[o].runs, 0);
        a.sum = mr_bits_f64(mr_atomic_exch_u64(reinterpret_cast<u64*>(&st->acc[o].sum), 0x8000000000000000ULL));
        a.any = mr_atomic_exch_u32(&st->acc[o].any, 0);
        a.pad = 0;
        mr_host_write(&job->results[o], a);
        if (sh.prog.out_kinds[o] == MR_OUT_HITS) hits += a.cursor;
    }
    u32 status = (flags & MR_FLAG_CANCELLED) ? MR_STATUS_CANCELLED
                 : (flags & MR_FLAG_FAILED)  ? MR_STATUS_FAILED
                                             : MR_STATUS_DONE;
    // No fence here: mr_publish's release store orders the results above before the
    // sequence number too.
    mr_publish(live, sh.ctl, sh.slot, status, hits);
}

// MR_PROTOCOL_POLLER's end of a chunk, by the leader after the block's barrier (which orders
// every thread's writes before the leader's next step). A job of several chunks meets at
// `done` with a device-scope fence on each side: the chunks' writes (host memory included)
// are in causality order before the last block's release of the completion, which the host
// acquires (PTX's causality order is transitive across scopes), so no block waits for the
// bus. A job of one chunk needs no fence at all. The completion slot is not waited for: the
// ring has at least as many slots as there are job slots, and the host consumes completions
// in order before it frees a job slot, so the slot of position p was freed when the job of
// position p - capacity was reaped, before this job could take a job slot.
MR_FN void mr_finish_chunk_poller(MrBlockShared& sh) {
    const MrControl* ctl = &sh.ctl;
    MrSlotState* st = mr_slot_state(ctl, sh.slot);
    const u32 chunks = sh.head.chunks;
    if (chunks > 1) {
        mr_fence_gpu();
        u32 done = mr_atomic_add_u32(&st->done, 1) + 1;
        if (done != chunks) return;
        mr_fence_gpu();
        mr_atomic_exch_u32(&st->done, 0);
    }
    u32 flags = mr_atomic_exch_u32(&st->flags, 0);
    mr_atomic_exch_u32(&st->error_claim, 0);
    MrJob* job = &ctl->jobs[sh.slot];
    MrComplete c = {};
    c.job = sh.slot;
    for (u32 o = 0; o < sh.prog.noutputs && o < MR_MAX_OUTPUTS; o++) {
        MrAcc a;
        a.cursor = mr_atomic_exch_u64(&st->acc[o].cursor, 0);
        a.runs = mr_atomic_exch_u64(&st->acc[o].runs, 0);
        a.sum = mr_bits_f64(mr_atomic_exch_u64(reinterpret_cast<u64*>(&st->acc[o].sum), 0x8000000000000000ULL));
        a.any = mr_atomic_exch_u32(&st->acc[o].any, 0);
        a.pad = 0;
        u32 kind = sh.prog.out_kinds[o];
        if (o == 0) {
            c.first = a;
        } else if (kind != MR_OUT_F64 && kind != MR_OUT_BOOL) {
            // (Dense outputs have no accumulators: the host does not read theirs.)
            mr_host_write(&job->results[o], a);
        }
        if (kind == MR_OUT_HITS) c.hits += a.cursor;
    }
    if (sh.inline_row) {
        for (u32 w = 0; w < MR_INLINE_ROW_BYTES / 8; w++) c.row[w] = sh.row[w];
    }
    c.status = (flags & MR_FLAG_CANCELLED) ? MR_STATUS_CANCELLED
               : (flags & MR_FLAG_FAILED)  ? MR_STATUS_FAILED
                                           : MR_STATUS_DONE;
    c.taken = mr_atomic_load_u64(&ctl->state->taken);
    u64 pos = mr_atomic_add_u64(&ctl->state->complete_claim, 1);
    u8* slot = ctl->complete + ctl->complete_slots_offset + (pos & ctl->complete_mask) * MR_SLOT_BYTES;
    mr_expect_free(reinterpret_cast<const u64*>(slot), pos);
    mr_host_write(reinterpret_cast<MrComplete*>(slot + MR_SLOT_VALUE), c);
    // Release at system scope: the completion's fields, the job's other results and,
    // cumulatively, every write of the job's chunks are visible before the sequence number.
    mr_store_release_sys(reinterpret_cast<u64*>(slot), pos + 1);
}

MR_FN void mr_record_error(const MrControl* ctl, u32 slot, u32 code, u32 pc, u64 row) {
    MrSlotState* st = mr_slot_state(ctl, slot);
    mr_atomic_or_u32(&st->flags, MR_FLAG_FAILED);
    if (mr_atomic_cas_u32(&st->error_claim, 0, 1) == 0) {
        MrError e;
        e.code = code;
        e.pc = pc;
        e.row = row;
        mr_host_write(&ctl->jobs[slot].error, e);
    }
}

// A GPU JIT unit (MR_JIT_UNIT) holds programs' own kernels only: the resident kernel and the
// interpreter's per-job kernel would only lengthen its compile.
#ifndef MR_JIT_UNIT
MR_KERNEL void mr_megakernel(MrControl* ctl) {
    MR_SHARED(MrBlockShared, sh);
    const u32 tid = mr_tid();
    const u32 ntid = mr_ntid();
    if (tid == 0) {
        // The constant fields once, rather than a read of host memory at every use. (The
        // device never applies atomics to host memory: they are not atomic across the bus.)
        // Once a block a launch: left out of the per-job counts (a plain copy, not
        // mr_host_read), since blocks start at their own pace after the first jobs.
        sh.ctl = *ctl;
        mr_atomic_add_u64(&sh.ctl.state->entered, 1);
    }
    mr_sync();
    MrRegs regs;
    MrThreadSink sink;
    for (;;) {
        if (tid == 0) {
            u64 pos = mr_atomic_add_u64(&sh.ctl.state->submit_claim, 1);
            bool claimed = sh.ctl.protocol == MR_PROTOCOL_POLLER ? mr_claim_poller(ctl, pos, sh) : mr_claim(ctl, pos, sh);
            sh.quit = claimed ? 0 : 1;
        }
        mr_sync();
        if (sh.quit) break;
        const MrProgram& p = sh.prog;
        regs.scratch = mr_thread_scratch(sh.head.inputs, p.ninputs, (u64)mr_bid() * ntid + tid);
        const u32* cancel = &mr_slot_state(&sh.ctl, sh.slot)->cancel;
        regs.cancel = cancel;
        regs.polls = 0;
        sink.prog = &sh.prog;
        sink.outputs = sh.outs;
        sink.rows_begin = sh.head.rows_begin;
        sink.acc = mr_slot_state(&sh.ctl, sh.slot)->acc;
        sink.n = 0;
        sink.any = 0;
        for (u32 r = 0; r < MR_MAX_REDUCTIONS; r++) {
            sink.counts[r] = 0;
            sink.sums[r] = 0.0;
        }
        bool stopped = false;
        if (!sh.cancelled) {
            u32 tiles = 0;
            for (u64 tile = sh.begin; tile < sh.end; tile += ntid) {
                // A long chunk still notices `stop` (within 8 tiles: one read of host memory per
                // 8 tiles of 128 rows).
                // The job's own cancel word (device memory) is looked at with it.
                if ((++tiles & 7) == 0) {
                    if (tid == 0) {
                        // Under the poller's protocol `stop` (host memory) only every 512 tiles:
                        // every read of it is a bus round trip the block's threads wait for at
                        // the barrier below; the poller passes it on through `stopping`.
                        bool poller = sh.ctl.protocol == MR_PROTOCOL_POLLER;
                        bool stop = poller ? mr_atomic_load_u64(&sh.ctl.state->stopping) != 0 ||
                                                 ((tiles & 511) == 0 && mr_load_relaxed_sys(&ctl->stop) != 0)
                                           : mr_load_relaxed_sys(&ctl->stop) != 0;
                        sh.quit = mr_atomic_load_u32(cancel) != 0 || stop ? 1 : 0;
                    }
                    mr_sync();
                    bool quit = sh.quit != 0;
                    // Everyone has read the flag before thread 0 may write it again (a tile
                    // loop with no hits output has no other barrier).
                    mr_sync();
                    if (quit) {
                        stopped = true;
                        break;
                    }
                }
                u64 row = tile + tid;
                if (row < sh.end) {
                    mr_init_dense(p, sh.outs, row - sh.head.rows_begin);
                    u32 err_pc = 0;
                    u32 e = p.join.present ? mr_run_join_row(p, sh.head.inputs, row, regs, sink, err_pc)
                                           : mr_run_row(p, sh.head.inputs, row, regs, sink, err_pc);
                    if (e == MR_ERR_CANCELLED) {
                        mr_atomic_or_u32(&mr_slot_state(&sh.ctl, sh.slot)->flags, MR_FLAG_CANCELLED);
                    } else if (e != MR_ERR_NONE) {
                        mr_record_error(&sh.ctl, sh.slot, e, err_pc, row);
                    }
                }
                mr_flush_tile(sh, sink);
            }
            if (!stopped) mr_flush_reductions(sh, sink);
        }
        if ((sh.cancelled || stopped) && tid == 0) {
            mr_atomic_or_u32(&mr_slot_state(&sh.ctl, sh.slot)->flags, MR_FLAG_CANCELLED);
        }
        if (sh.ctl.protocol == MR_PROTOCOL_POLLER) {
            mr_sync();
            if (tid == 0) mr_finish_chunk_poller(sh);
        } else {
            // Everything this thread wrote for the chunk is visible before the chunk counts done.
            mr_fence_sys();
            mr_sync();
            if (tid == 0) mr_finish_chunk(ctl, sh);
        }
    }
    if (tid == 0) mr_atomic_add_u64(&sh.ctl.state->exited, 1);
}
#endif  // MR_JIT_UNIT

// The interpreter as a row function: the point-join fast path when the program is one,
// else the general row loop.
struct MrInterpRow {
    MR_METHOD u32 operator()(const MrProgram& p, const MrInput* ins, u64 row, MrRegs& R, MrThreadSink& sink,
                             u32& err_pc) const {
        return p.join.present ? mr_run_join_row(p, ins, row, R, sink, err_pc) : mr_run_row(p, ins, row, R, sink, err_pc);
    }
};

// One thread per row over [begin, end) with `run` as the row function: the per-job kernel's
// body, shared by the interpreter's (mr_run_rows) and each generated program's (the GPU JIT).
// Each thread appends its own hits and adds its own reductions; the job's accumulators are
// `acc`.
template <typename RowFn>
MR_FN void mr_run_rows_with(RowFn run, const MrProgram* prog, const MrInput* inputs, const MrOutput* outputs,
                            u64 rows_begin, u64 begin, u64 end, MrAcc* acc, MrError* error) {
    u64 row = begin + (u64)mr_bid() * mr_ntid() + mr_tid();
    if (row >= end) return;
    const MrProgram& p = *prog;
    MrRegs regs;
    // Per-job kernels have a thread per row, more than any scratch covers: programs that
    // construct geometry run on the resident kernel (the GPU JIT refuses them).
    regs.scratch = mr_no_scratch();
    // Nor a cancel word: a per-job kernel, once launched, runs to its end (the host does not
    // launch a stopped job; the GPU JIT's generated loops do not look at one either).
    regs.cancel = nullptr;
    regs.polls = 0;
    MrThreadSink sink;
    sink.prog = prog;
    sink.outputs = outputs;
    sink.rows_begin = rows_begin;
    sink.acc = acc;
    sink.n = 0;
    sink.any = 0;
    for (u32 r = 0; r < MR_MAX_REDUCTIONS; r++) {
        sink.counts[r] = 0;
        sink.sums[r] = 0.0;
    }
    mr_init_dense(p, outputs, row - rows_begin);
    u32 err_pc = 0;
    u32 e = run(p, inputs, row, regs, sink, err_pc);
    // The first thread to fail claims the record, so its fields are one row's.
    if (e != MR_ERR_NONE && mr_atomic_cas_u32(&error->code, 0, e) == 0) {
        error->pc = err_pc;
        error->row = row;
    }
    sink.flush_own();
    for (u32 r = 0; r < p.nred && r < MR_MAX_REDUCTIONS; r++) {
        u32 o = p.red_outputs[r];
        if (p.out_kinds[o] == MR_OUT_COUNT) {
            if (sink.counts[r] != 0) mr_atomic_add_u64(&acc[o].cursor, sink.counts[r]);
        } else if ((sink.any >> r) & 1) {
            mr_atomic_add_f64(&acc[o].sum, sink.sums[r]);
            mr_atomic_exch_u32(&acc[o].any, 1);
        }
    }
}

// ---- a point join's split kernels -------------------------------------------------------
//
// The GPU JIT's, for a program DeviceJoin::of describes (jit::split_join). The fast kernel
// (mr_join_fast_rows) runs the rows the fast path takes, a thread a row, and marks the others
// in the row bits for the general kernel (mr_jit_defer_*), launched after it on the same
// stream, which runs only those. The host hands both one zeroed scratch area
// (join_scratch_bytes on the host): the row bits, a bit a row from `begin` in 64-bit words;
// then the fast kernel's ticket counter; then a status word a block of its launch.

// A block's status word: its hits in the low 62 bits; the top two say whether they are the
// block's own (MR_CHAIN_OWN) or its own and every earlier block's (MR_CHAIN_ALL); 0: not yet.
#define MR_CHAIN_OWN (1ULL << 62)
#define MR_CHAIN_ALL (2ULL << 62)
#define MR_CHAIN_VALUE ((1ULL << 62) - 1)

// The hits of the blocks before `block` (by ticket), publishing this block's own `own` as it
// looks, then its inclusive count: a single-pass scan with decoupled look-back (Merrill and
// Garland, 2016). Called by one thread of each block. Blocks take tickets in the order they
// start, so every block it waits for is running and publishes its own count without waiting
// on anyone: the look-back always ends.
MR_FN u64 mr_chain_prefix(u64* status, u64 block, u64 own) {
    if (block == 0) {
        mr_atomic_exch_u64(&status[0], MR_CHAIN_ALL | own);
        return 0;
    }
    mr_atomic_exch_u64(&status[block], MR_CHAIN_OWN | own);
    u64 before = 0;
    for (u64 k = block; k > 0;) {
        k--;
        u64 s = mr_atomic_load_u64(&status[k]);
        while ((s >> 62) == 0) {
            mr_backoff(0);  // a host thread yields to the block it waits for
            s = mr_atomic_load_u64(&status[k]);
        }
        before += s & MR_CHAIN_VALUE;
        if ((s >> 62) == 2) break;
    }
    mr_atomic_exch_u64(&status[block], MR_CHAIN_ALL | (before + own));
    return before;
}

// A block's shared state in the fast kernel.
struct MrJoinShared {
    u32 scan[MR_MAX_BLOCK];
    u64 block;   // its ticket: the rows it runs
    u64 before;  // the hits of the blocks before it
};

// The fast kernel's body. Each block takes a ticket and runs the rows of that number, so
// tickets are in row order; its threads' hits are scanned in the block and placed after every
// earlier block's (mr_chain_prefix): the output's hits come out in row order, one run of them
// from 0, recorded by the last block with their number. COUNT: only each block's count, one
// atomic a block. The output's accumulator must be fresh: this kernel runs first.
template <u32 LOAD, u32 PROBE, u32 PRED, bool COUNT, u32 OUTPUT>
MR_FN void mr_join_fast_rows(const MrInput* inputs, const MrOutput* outputs, u64 begin, u64 end, MrAcc* acc,
                             u64* scratch) {
    MR_SHARED(MrJoinShared, sh);
    const u64 rows = end - begin;
    u32* bits = reinterpret_cast<u32*>(scratch);
    u64* ticket = scratch + (rows + 63) / 64;
    u64* status = ticket + 1;
    const u32 tid = mr_tid();
    if (tid == 0) sh.block = mr_atomic_add_u64(ticket, 1);
    mr_sync();
    const u64 block = sh.block;
    const u64 i = block * mr_ntid() + tid;
    u32 ids[MR_LOCAL_HITS];
    u32 n = 0;
    if (i < rows && !mr_join_fast<LOAD, PROBE, PRED, COUNT>(inputs, begin + i, ids, n)) {
        mr_atomic_or_u32(&bits[i >> 5], 1u << (i & 31));
        n = 0;
    }
    u32 total;
    const u32 at = mr_block_scan_u32(n, sh.scan, total);
    MrAcc& a = acc[OUTPUT];
    if (COUNT) {
        if (tid == 0 && total != 0) mr_atomic_add_u64(&a.cursor, total);
        return;
    }
    if (tid == 0) sh.before = mr_chain_prefix(status, block, total);
    mr_sync();
    const MrOutput& out = outputs[OUTPUT];
    const u64 first = sh.before + at;
    for (u32 k = 0; k < n; k++) {
        if (first + k < out.hit_capacity) out.hits[first + k] = ((begin + i) << 32) | (u64)ids[k];
    }
    if (tid == 0 && block == mr_nblocks() - 1) {
        // Every block before this one has published: the hits are [0, all).
        const u64 all = sh.before + total;
        mr_atomic_add_u64(&a.cursor, all);
        if (all != 0) {
            const u64 r = mr_atomic_add_u64(&a.runs, 1);
            if (r < out.run_capacity) {
                out.runs[2 * r] = 0;
                out.runs[2 * r + 1] = all;
            }
        }
    }
}

// Whether row `begin + i` is marked in a split join's row bits (the scratch's first words).
MR_FN bool mr_deferred(const u64* scratch, u64 i) {
    return (reinterpret_cast<const u32*>(scratch)[i >> 5] >> (i & 31)) & 1u;
}

// One launch per job, one thread per row: the baseline the resident kernel is measured
// against (cuLaunchKernel + synchronise for the same work, `meridian bench roundtrip`).
#ifndef MR_JIT_UNIT
MR_KERNEL void mr_run_rows(const MrProgram* prog, const MrInput* inputs, const MrOutput* outputs, u64 rows_begin,
                           u64 begin, u64 end, MrAcc* acc, MrError* error) {
    mr_run_rows_with(MrInterpRow(), prog, inputs, outputs, rows_begin, begin, end, acc, error);
}
#endif  // MR_JIT_UNIT

#endif  // MR_MEGAKERNEL_CU
