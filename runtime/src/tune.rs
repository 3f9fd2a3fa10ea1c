//! Autotune applied: races of the CPU route (interpreter or JIT), of the CPU executor's
//! rows per claim and workers a job, and of the GPU's chunks per block, on real jobs; verdicts
//! by [`meridian_autotune::verdict`], winners applied to later jobs of the same key and kept
//! in the store, so that the next run starts from them without racing.
//!
//! Each raced setting is a [`Knob`] with its own key family. Under [`crate::Route::Auto`] a
//! program's large jobs race the route first (the interpreter conservative, the JIT
//! speculative, its compile time charged once and spread over the expected reuse); rows per
//! claim race only once the route is settled, and the workers a job spreads over (all, or
//! one) once rows per claim is, so that one job never stands in two races.
//!
//! A key's first large jobs alternate between the engine's rows per claim (conservative) and
//! a candidate (speculative): jobs 2k and 2k+1 are pair k, and a pair counts once both sides
//! finished (a job that fails, is cancelled or re-run leaves its pair incomplete, and old
//! incomplete pairs are dropped). A job's time is its span on the workers, from its first
//! chunk's start to its last chunk's end: per-claim overhead and the workers left idle by
//! uneven claims both show in it. The verdict after every pair settles the key. Adopted: the
//! candidate runs every later job of the key. Rejected: the next candidate races; with none
//! left, the default is the winner. The winner is saved on a thread of its own (a save waits
//! for the store's lock and two fsyncs, which must not hold up a job's completion); the
//! engine waits for it at shutdown. A key with a stored record is never raced. Programs with
//! `sum` outputs are not raced: claims of other sizes add their sums in another order.
//!
//! GPU jobs race the chunks each block of the megakernel gets ([`crate::plan::gpu_cut`]),
//! keyed by the GPU executor's device (name, compute capability, driver) and launch; their
//! time runs from the push of their
//! chunks on the ring to their completion reaped, since the device keeps no per-job clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use meridian_autotune::{verdict, Key, Pair, Params, Policy, Record, Store, Timing, Verdict};

/// Jobs smaller than this are not raced (their times are mostly overhead and noise).
pub const RACE_MIN_ROWS: usize = 1 << 17;

/// The family of the rows-per-claim race (the engine's default rows per claim is added to
/// the key's family, so a record never overrides an engine built with other defaults).
pub const ROWS_PER_CLAIM: &str = "cpu.rows_per_claim";

/// The family of the route race.
pub const ROUTE: &str = "cpu.route";

/// The family of the workers-a-job race (after rows per claim settles): every worker (0) or
/// one.
pub const WORKERS: &str = "cpu.workers";

/// The family of the GPU's cut race: chunks a job gives each block of the megakernel.
pub const GPU_CHUNKS: &str = "gpu.chunks_per_block";

/// A setting the tuner races.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Knob {
    /// Rows a worker claims at once.
    RowsPerClaim,
    /// 0: the interpreter, 1: the JIT.
    Route,
    /// Chunks a GPU job gives each block ([`crate::plan::gpu_cut`]).
    GpuChunks,
    /// Workers a CPU job spreads over: 0 for all of them.
    Workers,
}

impl Knob {
    fn name(self) -> &'static str {
        match self {
            Knob::RowsPerClaim => ROWS_PER_CLAIM,
            Knob::Route => ROUTE,
            Knob::GpuChunks => GPU_CHUNKS,
            Knob::Workers => WORKERS,
        }
    }

    /// A value as the log says it.
    fn show(self, v: u32) -> String {
        match self {
            Knob::RowsPerClaim | Knob::GpuChunks => v.to_string(),
            Knob::Workers if v == 0 => "all".to_owned(),
            Knob::Workers => v.to_string(),
            Knob::Route if v == 1 => "jit".to_owned(),
            Knob::Route => "interp".to_owned(),
        }
    }

    fn params(self, v: u32) -> Params {
        match self {
            Knob::RowsPerClaim => Params { rows_per_claim: Some(v), ..Params::default() },
            Knob::Route => Params { route: Some(self.show(v)), ..Params::default() },
            Knob::GpuChunks => Params { gpu_chunks_per_block: Some(v), ..Params::default() },
            Knob::Workers => Params { workers: Some(v), ..Params::default() },
        }
    }

    fn stored(self, r: &Record) -> Option<u32> {
        match self {
            Knob::RowsPerClaim => r.params.rows_per_claim,
            Knob::Route => match r.params.route.as_deref() {
                Some("jit") => Some(1),
                Some("interp") => Some(0),
                _ => None,
            },
            Knob::GpuChunks => r.params.gpu_chunks_per_block,
            Knob::Workers => r.params.workers,
        }
    }
}

/// Incomplete pairs kept at most; older ones are dropped.
const OPEN_PAIRS: usize = 8;

/// Which side of a race a job ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Conservative,
    Speculative,
}

/// A job's part in a race: its key, the candidate raced when it was chosen, its pair and
/// side; reported back with the job's time.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub tuner: Arc<Tuner>,
    pub key: Key,
    knob: Knob,
    candidate: u32,
    pair: u64,
    side: Side,
    /// The speculative side's one-time cost (the JIT's compile time), once known.
    pub compile_ns: f64,
}

#[derive(Debug)]
struct Race {
    /// Candidates not yet raced, next last.
    candidates: Vec<u32>,
    /// The candidate racing now.
    racing: u32,
    /// Jobs given a side so far for this candidate.
    chosen: u64,
    /// Pairs with one side reported: (conservative, speculative) ns.
    open: BTreeMap<u64, (Option<f64>, Option<f64>)>,
    pairs: Vec<Pair>,
    /// The race was said (once its first pair was in).
    announced: bool,
    /// The candidate's one-time cost, charged once by the verdict.
    compile_ns: f64,
}

#[derive(Debug)]
enum State {
    Racing(Race),
    /// Settled (adopted, rejected, or loaded from the store): the value to use.
    Settled(u32),
}

/// The engine's autotuner: the store, and the races of this process.
#[derive(Debug)]
pub struct Tuner {
    store: Arc<Mutex<Store>>,
    keys: Mutex<HashMap<Key, State>>,
    /// What happened, in order, for `meridian run` to say.
    log: Arc<Mutex<Vec<String>>>,
    saves: Mutex<Vec<JoinHandle<()>>>,
    policy: Policy,
    adapter: String,
    /// The GPU executor's device and launch, when the engine has one: the adapter of GPU keys.
    gpu_adapter: Option<String>,
    default_rows: u32,
}

impl Tuner {
    /// A tuner over `store`, for the CPU executor whose rows per claim is `default_rows`
    /// with `workers` workers, and the GPU executor `gpu` describes, if any.
    pub(crate) fn new(
        store: Store,
        warnings: Vec<String>,
        default_rows: usize,
        workers: usize,
        gpu: Option<&str>,
    ) -> Tuner {
        let default_rows = u32::try_from(default_rows).unwrap_or(u32::MAX).max(1);
        Tuner {
            store: Arc::new(Mutex::new(store)),
            keys: Mutex::new(HashMap::new()),
            log: Arc::new(Mutex::new(warnings.into_iter().map(|w| format!("warning: {w}")).collect())),
            saves: Mutex::new(Vec::new()),
            policy: Policy::default(),
            adapter: format!("{} x{workers}", cpu_model()),
            gpu_adapter: gpu.map(|g| format!("gpu {g}")),
            default_rows,
        }
    }

    /// What the tuner did so far (raced, adopted, rejected, loaded, warnings), in order.
    /// Saves still running may add to it; [`Tuner::flush`] waits for them.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().clone()
    }

    /// Where its store is.
    pub fn store_path(&self) -> std::path::PathBuf {
        self.store.lock().path().to_path_buf()
    }

    /// Waits for every save started so far.
    pub fn flush(&self) {
        let saves = std::mem::take(&mut *self.saves.lock());
        for s in saves {
            let _ = s.join();
        }
    }

    fn note(&self, line: String) {
        self.log.lock().push(line);
    }

    /// The key of `knob` for a job of `rows` rows of `program` over inputs described by
    /// `binding`.
    pub(crate) fn key(&self, knob: Knob, program: &str, binding: String, rows: usize) -> Key {
        let family = match knob {
            Knob::RowsPerClaim => format!("{ROWS_PER_CLAIM}@{}", self.default_rows),
            Knob::Route => ROUTE.to_owned(),
            Knob::GpuChunks => GPU_CHUNKS.to_owned(),
            Knob::Workers => WORKERS.to_owned(),
        };
        let adapter = match (knob, &self.gpu_adapter) {
            (Knob::GpuChunks, Some(gpu)) => gpu.clone(),
            _ => self.adapter.clone(),
        };
        Key {
            program: program.to_owned(),
            binding,
            rows_class: Key::rows_class(rows as u64),
            family,
            adapter,
        }
    }

    fn default_of(&self, knob: Knob) -> u32 {
        match knob {
            Knob::RowsPerClaim => self.default_rows,
            Knob::Route => 0,
            Knob::GpuChunks => crate::plan::GPU_CHUNKS_PER_BLOCK,
            Knob::Workers => 0,
        }
    }

    fn candidates(&self, knob: Knob) -> Vec<u32> {
        match knob {
            Knob::RowsPerClaim => {
                let d = self.default_rows;
                let mut candidates = vec![(d / 4).max(256), d.saturating_mul(4)];
                candidates.dedup();
                candidates.retain(|&c| c != d);
                candidates
            }
            Knob::Route => vec![1],
            // Finer first (blocks done early take more of the slow ones' rows), then coarser
            // (fewer claims, less contention on the ring).
            Knob::GpuChunks => vec![1, 8],
            // One worker a job: jobs in flight together then run side by side, none waiting
            // at the seam of another's last claims.
            Knob::Workers => vec![1],
        }
    }

    /// The value of `knob` for the next job of `key`, and its part if it races.
    pub(crate) fn choose(self: &Arc<Self>, knob: Knob, key: Key) -> (u32, Option<Entry>) {
        // The store first, without holding `keys`: a save may hold the store's lock a while.
        let known = self.keys.lock().contains_key(&key);
        let stored = if known { None } else { self.store.lock().get(&key).and_then(|r| knob.stored(r)) };
        let mut keys = self.keys.lock();
        if !keys.contains_key(&key) {
            let state = match stored {
                Some(v) => {
                    self.note(format!(
                        "autotune: {} loaded from the store for {} (rows ~2^{}): {}",
                        knob.name(),
                        short(&key.program),
                        key.rows_class,
                        knob.params(v)
                    ));
                    State::Settled(v)
                }
                None => {
                    let mut candidates = self.candidates(knob);
                    let racing = candidates.pop().unwrap_or(self.default_of(knob));
                    State::Racing(Race {
                        candidates,
                        racing,
                        chosen: 0,
                        open: BTreeMap::new(),
                        pairs: Vec::new(),
                        announced: false,
                        compile_ns: 0.0,
                    })
                }
            };
            keys.insert(key.clone(), state);
        }
        match keys.get_mut(&key) {
            Some(State::Settled(v)) => (*v, None),
            Some(State::Racing(race)) => {
                let (pair, side) = (race.chosen / 2, race.chosen % 2);
                race.chosen += 1;
                // Which side goes first alternates by pair, so neither always runs first.
                let side =
                    if (side == 0) == (pair % 2 == 0) { Side::Conservative } else { Side::Speculative };
                let v = match side {
                    Side::Conservative => self.default_of(knob),
                    Side::Speculative => race.racing,
                };
                let entry = Entry {
                    tuner: self.clone(),
                    key,
                    knob,
                    candidate: race.racing,
                    pair,
                    side,
                    compile_ns: 0.0,
                };
                (v, Some(entry))
            }
            None => (self.default_of(knob), None),
        }
    }

    /// A raced job finished (successfully, on its first attempt), spanning `took` on the
    /// workers.
    pub(crate) fn report(&self, entry: &Entry, took: Duration) {
        let mut keys = self.keys.lock();
        let Some(State::Racing(race)) = keys.get_mut(&entry.key) else { return };
        // A job chosen for a candidate that has since been rejected says nothing of this one.
        if entry.candidate != race.racing {
            return;
        }
        let (knob, default) = (entry.knob, self.default_of(entry.knob));
        if entry.side == Side::Speculative && entry.compile_ns > 0.0 {
            race.compile_ns = race.compile_ns.max(entry.compile_ns);
        }
        let ns = took.as_secs_f64() * 1e9;
        let open = race.open.entry(entry.pair).or_default();
        match entry.side {
            Side::Conservative => open.0 = Some(ns),
            Side::Speculative => open.1 = Some(ns),
        }
        if let (Some(c), Some(s)) = *open {
            race.open.remove(&entry.pair);
            race.pairs.push(Pair { conservative_ns: c, speculative_ns: s });
            // Said once a pair is in: a run of one large job races nothing worth a line.
            if !race.announced {
                race.announced = true;
                self.note(format!(
                    "autotune: racing {} {} against {} for {} (rows ~2^{})",
                    knob.name(),
                    knob.show(race.racing),
                    knob.show(default),
                    short(&entry.key.program),
                    entry.key.rows_class
                ));
            }
        }
        while race.open.len() > OPEN_PAIRS {
            race.open.pop_first();
        }
        let settled = match verdict(&race.pairs, race.compile_ns, &self.policy) {
            Verdict::KeepRacing => return,
            Verdict::Adopt { gain, spread, .. } => {
                let mean = race.pairs.iter().map(|p| p.speculative_ns).sum::<f64>() / race.pairs.len() as f64;
                self.note(format!(
                    "autotune: adopted {}={} for {} ({:.1}% faster at 95% confidence, {} pairs)",
                    knob.name(),
                    knob.show(race.racing),
                    short(&entry.key.program),
                    gain * 100.0,
                    race.pairs.len()
                ));
                (race.racing, gain, spread, mean, race.pairs.len(), race.compile_ns)
            }
            Verdict::Reject { why } => {
                self.note(format!(
                    "autotune: rejected {}={} for {}: {why}",
                    knob.name(),
                    knob.show(race.racing),
                    short(&entry.key.program)
                ));
                let mean = race.pairs.iter().map(|p| p.conservative_ns).sum::<f64>()
                    / race.pairs.len().max(1) as f64;
                let samples = race.pairs.len();
                if let Some(next) = race.candidates.pop() {
                    self.note(format!(
                        "autotune: racing {} {} against {}",
                        knob.name(),
                        knob.show(next),
                        knob.show(default)
                    ));
                    race.racing = next;
                    race.chosen = 0;
                    race.open.clear();
                    race.pairs.clear();
                    race.compile_ns = 0.0;
                    return;
                }
                (default, 0.0, 0.0, mean, samples, 0.0)
            }
        };
        let (value, gain, spread, mean_ns, samples, compile_ns) = settled;
        keys.insert(entry.key.clone(), State::Settled(value));
        drop(keys);
        let record = Record {
            params: knob.params(value),
            timing: Timing { mean_ns, spread, samples: samples as u32 },
            gain,
            compile_cost_ns: compile_ns as u64,
            recorded_at_ms: Record::now_ms(),
        };
        self.save_later(entry.key.clone(), record);
    }

    /// Saves `record` on a thread of its own; the log says if it failed.
    fn save_later(&self, key: Key, record: Record) {
        let (store, log) = (self.store.clone(), self.log.clone());
        let save = move || {
            let mut store = store.lock();
            store.insert(key, record);
            let lines: Vec<String> = match store.save() {
                Ok(warnings) => warnings.into_iter().map(|w| format!("warning: {w}")).collect(),
                Err(e) => vec![format!("warning: the winner is not saved: {e}")],
            };
            log.lock().extend(lines);
        };
        match std::thread::Builder::new().name("meridian-autotune-save".into()).spawn(save) {
            Ok(handle) => self.saves.lock().push(handle),
            Err(e) => self.note(format!("warning: the winner is not saved: no thread to save it: {e}")),
        }
    }
}

fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// The CPU's model name and core count, as the adapter of CPU records.
fn cpu_model() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    format!("cpu {model} ({cores} cores)")
}
