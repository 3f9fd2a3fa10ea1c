//! What the engine knows of a prepared program: the verified program and its interpreter,
//! the facts placement and planning read (its class, why the GPU refuses it), and what its
//! runs taught (hits a row, ns a row, rows run). Executors' own artefacts of a program — the
//! CPU JIT's code, a GPU kernel — are theirs, kept by program hash (`cpu::code`,
//! `cuda::programs`).

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use std::hash::{BuildHasherDefault, Hasher};

use meridian_bytecode::{ProgramHash, VerifiedProgram};

use meridian_kernels::interp::Interpreter;

/// What the engine keeps per prepared program.
#[derive(Debug)]
pub(crate) struct PreparedInner {
    pub program: VerifiedProgram,
    /// The engine that prepared it ([`crate::Engine`]'s id): its learnt rates and artefacts
    /// are that engine's.
    pub engine: u64,
    pub interp: Interpreter,
    pub output_names: Arc<[String]>,
    /// Why the GPU will not run this program (`None`: it will).
    pub gpu_refusal: Option<String>,
    /// What it spends its rows on, for placement under `auto`.
    pub class: crate::place::ProgramClass,
    /// The CPU JIT's compile time of this program in ns, once its executor compiled it (0
    /// before, or when it failed).
    jit_compile_ns: AtomicU64,
    /// The CPU executor's code of this program (`cpu::code`), once compiled: kept here, typed
    /// by the executor, so that a small job finds it without a lookup.
    pub cpu_code: Artefact,
    /// The JIT's compile of this program has been started in the background.
    jit_started: std::sync::atomic::AtomicBool,
    /// Whether `hits_per_row` was learnt from a run (or is the starting guess of 1).
    hits_noted: std::sync::atomic::AtomicBool,
    /// Rows of this program run on the CPU so far (what makes it hot for the JIT).
    cpu_rows: AtomicU64,
    /// Set once a failure of the JIT under `auto` has been said.
    jit_failure_said: std::sync::atomic::AtomicBool,
    /// Hits per row seen in the last finished run, as f64 bits: the next job's hit capacity
    /// starts from it, so a program that overflowed once is sized right the next time.
    hits_per_row: AtomicU64,
    /// What this program's jobs measured, ns a row (f64 bits; 0: none yet): on the CPU, a
    /// job's span on the workers over its rows; on the GPU, a job's push-to-reaping time less
    /// the round trip over its rows. Placement under `auto` prefers them to its priors.
    cpu_ns_per_row: AtomicU64,
    gpu_ns_per_row: AtomicU64,
}

/// Jobs with fewer rows teach placement nothing (their time is mostly fixed costs).
pub(crate) const LEARN_MIN_ROWS: usize = 8192;

/// A new measurement's weight in the running average.
const LEARN_WEIGHT: f64 = 0.25;

fn learn(avg: &AtomicU64, sample: f64) {
    if !sample.is_finite() || sample <= 0.0 {
        return;
    }
    let old = f64::from_bits(avg.load(Relaxed));
    let new = if old > 0.0 { old + LEARN_WEIGHT * (sample - old) } else { sample };
    avg.store(new.to_bits(), Relaxed);
}

fn learnt(avg: &AtomicU64) -> Option<f64> {
    Some(f64::from_bits(avg.load(Relaxed))).filter(|v| *v > 0.0)
}

impl PreparedInner {
    pub(crate) fn new(program: &VerifiedProgram, engine: u64) -> PreparedInner {
        PreparedInner {
            engine,
            interp: Interpreter::new(program),
            gpu_refusal: meridian_kernels::cuda::gpu_refusal(program),
            class: crate::place::ProgramClass::of(program),
            output_names: program.program().outputs().iter().map(|o| o.name.clone()).collect(),
            program: program.clone(),
            hits_per_row: AtomicU64::new(1f64.to_bits()),
            hits_noted: std::sync::atomic::AtomicBool::new(false),
            cpu_rows: AtomicU64::new(0),
            cpu_ns_per_row: AtomicU64::new(0),
            gpu_ns_per_row: AtomicU64::new(0),
            jit_failure_said: std::sync::atomic::AtomicBool::new(false),
            jit_compile_ns: AtomicU64::new(0),
            cpu_code: Artefact::default(),
            jit_started: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Hit capacity for a job of `rows` rows: the last observed rate with 12.5% headroom.
    pub(crate) fn hit_capacity(&self, rows: usize) -> usize {
        let rate = f64::from_bits(self.hits_per_row.load(Relaxed));
        ((rows as f64 * rate * 1.125) as usize).saturating_add(64)
    }

    /// The hit capacity of a job's first attempt: what the job asked for, or the last observed
    /// rate; never more than 1024 per row (at least 2^20): an attempt that needs more runs
    /// again with the count it reported, so a bound here only saves memory.
    pub(crate) fn first_hit_capacity(&self, rows: usize, asked: Option<usize>) -> usize {
        asked.unwrap_or_else(|| self.hit_capacity(rows)).min(rows.saturating_mul(1024).max(1 << 20))
    }

    /// Hits per row seen in the last finished run, `None` before any.
    pub(crate) fn hits_per_row(&self) -> Option<f64> {
        self.hits_noted.load(Relaxed).then(|| f64::from_bits(self.hits_per_row.load(Relaxed)))
    }

    pub(crate) fn note_hits(&self, rows: usize, hits: u64) {
        if rows > 0 {
            // Written only when it changes: jobs on every core note their hits, and a store to
            // a shared line costs each core a cache miss even when it writes the same value.
            let rate = (hits as f64 / rows as f64).to_bits();
            if self.hits_per_row.load(Relaxed) != rate {
                self.hits_per_row.store(rate, Relaxed);
            }
            if !self.hits_noted.load(Relaxed) {
                self.hits_noted.store(true, Relaxed);
            }
        }
    }

    /// A CPU job of `rows` rows spanned `ns` on the workers (first chunk's start to last
    /// chunk's end); small jobs are ignored.
    pub(crate) fn note_cpu_time(&self, rows: usize, ns: u64) {
        if rows >= LEARN_MIN_ROWS {
            learn(&self.cpu_ns_per_row, ns as f64 / rows as f64);
        }
    }

    /// A GPU job of `rows` rows took `ns` from its push to its reaping, `round_trip_ns` of
    /// which any job pays; small jobs are ignored.
    pub(crate) fn note_gpu_time(&self, rows: usize, ns: u64, round_trip_ns: f64) {
        if rows >= LEARN_MIN_ROWS {
            learn(&self.gpu_ns_per_row, (ns as f64 - round_trip_ns).max(0.01) / rows as f64);
        }
    }

    /// What this program's CPU jobs measured (ns a row of a whole job, its workers included)
    /// and its GPU jobs (ns a row past the round trip), when they have.
    pub(crate) fn measured_ns_per_row(&self) -> (Option<f64>, Option<f64>) {
        (learnt(&self.cpu_ns_per_row), learnt(&self.gpu_ns_per_row))
    }

    /// Counts a CPU job's rows; returns the program's total so far, this job's included.
    /// Rows of this program run on the CPU so far, this job's `rows` included. Past `enough`
    /// the count is no longer kept exactly (it is only compared with thresholds under it): no
    /// write, so jobs on every core do not contend for its cache line.
    pub(crate) fn note_cpu_rows(&self, rows: usize, enough: u64) -> u64 {
        let rows = rows as u64;
        let now = self.cpu_rows.load(Relaxed);
        if now >= enough {
            return now.saturating_add(rows);
        }
        self.cpu_rows.fetch_add(rows, Relaxed).saturating_add(rows)
    }

    /// True the first time it is called (so a JIT failure under `auto` is said once).
    pub(crate) fn first_jit_failure(&self) -> bool {
        !self.jit_failure_said.swap(true, Relaxed)
    }

    /// True for the first caller only: it starts the JIT's compile of this program.
    pub(crate) fn start_jit(&self) -> bool {
        !self.jit_started.swap(true, Relaxed)
    }

    /// The CPU JIT's compile time of this program in ns (0 before it compiled).
    pub(crate) fn jit_compile_ns(&self) -> f64 {
        self.jit_compile_ns.load(Relaxed) as f64
    }

    /// The CPU JIT compiled this program in `ns`.
    #[cfg_attr(not(feature = "jit"), allow(dead_code))] // only the JIT compiles
    pub(crate) fn note_jit_compiled(&self, ns: u64) {
        self.jit_compile_ns.store(ns.max(1), Relaxed);
    }
}

/// An executor's artefact of one program, set once by the executor that owns its type and
/// read back by it; the job contract keeps it without knowing what it is (so it imports no
/// executor).
#[derive(Default)]
pub(crate) struct Artefact(OnceLock<Arc<dyn Any + Send + Sync>>);

impl Artefact {
    /// The artefact, when it is set (as a `T`), without waiting for an `init` under way.
    pub(crate) fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.get()?.downcast_ref::<T>()
    }

    /// The artefact, made by `init` on first use (callers racing share one `init`); `None`
    /// when it was set as another type.
    pub(crate) fn get_or_init<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Option<&T> {
        self.0.get_or_init(|| Arc::new(init())).downcast_ref::<T>()
    }
}

impl std::fmt::Debug for Artefact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "Artefact(set)" } else { "Artefact(unset)" })
    }
}

/// A map keyed by program hash: what the engine and each executor keep per program (the
/// prepared program, the CPU JIT's code, a GPU kernel). The key is a content hash already,
/// so its first eight bytes are the map's hash (a job's lookup costs no SipHash round).
pub(crate) type ByProgram<V> = std::collections::HashMap<ProgramHash, V, BuildHasherDefault<PrefixHasher>>;

/// Hashes the first eight bytes written (see [`ByProgram`]).
#[derive(Debug, Default)]
pub(crate) struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        // Mixed in, so that a length prefix written first does not mask the hash.
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
    }
}
