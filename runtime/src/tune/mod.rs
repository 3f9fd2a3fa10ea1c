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
//! A CPU job large enough to race ([`RACE_MIN_ROWS`]) races the route and rows per claim
//! inside itself ([`in_job`]): pairs of equal parts of the job, one on each side, run next to
//! each other, so that a single large job — the CLI's usual one — settles both by itself, and
//! a stream's batches carry one race from batch to batch. A race still open when the engine
//! shuts down is saved with its pairs ([`meridian_autotune::PendingRace`]), and the next run
//! continues it; records say how the race ended and which runs loaded them.
//!
//! The other races (the workers a job spreads over, the GPU's cut, and rows per claim under
//! `--route jit`) pair whole jobs: a key's first large jobs alternate between the default
//! (conservative) and a candidate (speculative): jobs 2k and 2k+1 are pair k, and a pair
//! counts once both sides finished (a job that fails, is cancelled or re-run leaves its pair incomplete, and old
//! incomplete pairs are dropped). A job's time is its span on the workers, from its first
//! chunk's start to its last chunk's end: per-claim overhead and the workers left idle by
//! uneven claims both show in it. The verdict after every pair settles the key. Adopted: the
//! candidate runs every later job of the key. Rejected: the next candidate races; with none
//! left, the default is the winner. The winner is saved on a thread of its own (a save waits
//! for the store's lock and two fsyncs, which must not hold up a job's completion); the
//! engine waits for it at shutdown. A key with a stored record is never raced. Programs with
//! `sum` outputs do not race rows per claim: claims of other sizes add their sums in another
//! order.
//!
//! GPU jobs race the chunks each block of the megakernel gets ([`crate::plan::gpu_cut`]),
//! and jobs on their program's own kernel (the GPU JIT route) the threads a block of its
//! launch ([`GPU_BLOCK`]), both keyed by the GPU executor's device (name, compute capability,
//! driver) and launch; a megakernel job's time runs from the push of its chunks on the ring
//! to its completion reaped, since the device keeps no per-job clock, a program kernel's from
//! its launch to its outputs read.

use std::collections::hash_map::Entry as Slot;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use meridian_autotune::{
    effect, more_pairs, verdict, Key, Pair, Params, PendingRace, Policy, Record, Store, Timing, Verdict,
    VerdictNote,
};

pub(crate) mod in_job;
pub(crate) use in_job::InJob;

/// Jobs smaller than this are not raced (their times are mostly overhead and noise).
pub const RACE_MIN_ROWS: usize = 1 << 17;

/// CPU jobs of this many rows or more race the route and rows per claim inside themselves,
/// in pairs of equal parts, instead of pairing whole jobs: every job large enough to race.
/// A job of 2^19 rows has room for both races' pairs; a stream's batches (cut at four claims
/// a worker: 2^17 rows on 2 workers) give a few pairs each and carry one race from batch to
/// batch — paired whole, 16 such batches settled neither race (a 2M-point GeoParquet file,
/// `meridian run`, 2026-12-06). Whole jobs still pair for the workers a job spreads over and
/// the GPU's cut, which no part of a job can race.
pub const IN_JOB_MIN_ROWS: usize = RACE_MIN_ROWS;

/// Claims a worker must get at least, in a job of a key's size, for a rows-per-claim
/// candidate to be raced: the idle tail a job's last claims leave is about half a claim a
/// worker, which pairs inside a job do not see; at 16 claims a worker it is about 3 % of
/// the job, the verdict's margin.
pub const MIN_CLAIMS_A_WORKER: usize = 16;

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

/// The family of the program kernels' launch race: threads a block.
pub const GPU_BLOCK: &str = "gpu.block_threads";

/// A setting the tuner races.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Knob {
    /// Rows a worker claims at once.
    RowsPerClaim,
    /// 0: the interpreter, 1: the JIT.
    Route,
    /// Chunks a GPU job gives each block ([`crate::plan::gpu_cut`]).
    GpuChunks,
    /// Threads a block of a program kernel's launch (the GPU JIT route).
    GpuBlock,
    /// Workers a CPU job spreads over: 0 for all of them.
    Workers,
}

impl Knob {
    fn name(self) -> &'static str {
        match self {
            Knob::RowsPerClaim => ROWS_PER_CLAIM,
            Knob::Route => ROUTE,
            Knob::GpuChunks => GPU_CHUNKS,
            Knob::GpuBlock => GPU_BLOCK,
            Knob::Workers => WORKERS,
        }
    }

    /// A value as the log says it.
    fn show(self, v: u32) -> String {
        match self {
            Knob::RowsPerClaim | Knob::GpuChunks | Knob::GpuBlock => v.to_string(),
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
            Knob::GpuBlock => Params { gpu_block: Some(v), ..Params::default() },
            Knob::Workers => Params { workers: Some(v), ..Params::default() },
        }
    }

    /// The value a decided record applies (a race in progress applies none).
    fn stored(self, r: &Record) -> Option<u32> {
        if !r.is_decided() {
            return None;
        }
        self.value(&r.params)
    }

    /// This knob's value in `params`.
    fn value(self, params: &Params) -> Option<u32> {
        match self {
            Knob::RowsPerClaim => params.rows_per_claim,
            Knob::Route => match params.route.as_deref() {
                Some("jit") => Some(1),
                Some("interp") => Some(0),
                _ => None,
            },
            Knob::GpuChunks => params.gpu_chunks_per_block,
            Knob::GpuBlock => params.gpu_block,
            Knob::Workers => params.workers,
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

impl Entry {
    /// The candidate's one-time cost (the JIT's compile, in ns) is `ns`: charged to a route
    /// race only, the race whose candidate it is.
    pub(crate) fn note_compile(&mut self, ns: f64) {
        if self.knob == Knob::Route {
            self.compile_ns = ns;
        }
    }
}

#[derive(Debug)]
struct Race {
    knob: Knob,
    /// Candidates not yet raced, next last.
    candidates: Vec<u32>,
    /// The candidate racing now.
    racing: u32,
    /// Jobs given a side so far for this candidate.
    chosen: u64,
    /// Pairs with one side reported: (conservative, speculative) ns.
    open: BTreeMap<u64, (Option<f64>, Option<f64>)>,
    pairs: Vec<Pair>,
    /// Pairs already saved as a race in progress (by this run's end, or a run before);
    /// `None` when this race is not on disk as it is.
    saved: Option<usize>,
    /// A candidate before this one was rejected: the race is worth saving even without a
    /// pair, so that the next run does not race the rejected one again.
    moved_on: bool,
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
    workers: usize,
    /// This run, as the records it applies name it.
    run: String,
    /// Keys whose stored record this run applied: their records say so at [`Tuner::finish`].
    loaded: Mutex<Vec<Key>>,
    /// Slows each speculative part of a race inside a job by this much (fault injection for
    /// tests: a candidate made slower must lose).
    pub(crate) speculative_delay: Option<Duration>,
}

/// What the tuner says of a knob for the next pair of parts of a job.
#[derive(Debug)]
pub(crate) enum Pick {
    /// Settled: the value to use.
    Settled(u32),
    /// Racing: two parts in the order they run, each its value and its place in the race.
    /// Boxed: only the few steps of a race carry one.
    Pair(Box<[(u32, Entry); 2]>),
    /// Racing, but the job has no room left for a pair of the candidate's parts: run the
    /// default.
    NoRoom(u32),
}

impl Tuner {
    /// A tuner over `store`, for the CPU executor whose rows per claim is `default_rows`
    /// with `workers` workers, and the GPU executor `gpu` describes, if any; `run` names this
    /// run in the records it applies.
    pub(crate) fn new(
        store: Store,
        warnings: Vec<String>,
        (default_rows, workers): (usize, usize),
        gpu: Option<&str>,
        run: String,
        speculative_delay: Option<Duration>,
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
            workers: workers.max(1),
            run,
            loaded: Mutex::new(Vec::new()),
            speculative_delay,
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

    /// The run is over: races still open are saved with their pairs for the next run to
    /// continue, the records this run applied say so, and every save is waited for.
    /// Idempotent: what it saved is not saved again.
    pub(crate) fn finish(&self) {
        let mut pending = Vec::new();
        for (key, state) in self.keys.lock().iter_mut() {
            let State::Racing(race) = state else { continue };
            if (race.pairs.is_empty() && !race.moved_on) || race.saved == Some(race.pairs.len()) {
                continue;
            }
            race.saved = Some(race.pairs.len());
            let knob = race.knob;
            let more = more_pairs(&race.pairs, race.compile_ns, &self.policy);
            self.note(format!(
                "autotune: {} {} against {} for {} (rows ~2^{}) undecided after {} pair(s): about {more} more needed; saved, the next run continues it",
                knob.name(),
                knob.show(race.racing),
                knob.show(self.default_of(knob)),
                short(&key.program),
                key.rows_class,
                race.pairs.len()
            ));
            let record = Record::pending(PendingRace {
                candidate: knob.params(race.racing),
                pairs: race.pairs.clone(),
                compile_cost_ns: race.compile_ns as u64,
                more_pairs: u32::try_from(more).ok(),
            });
            pending.push((key.clone(), record));
        }
        let loaded = std::mem::take(&mut *self.loaded.lock());
        if !pending.is_empty() || !loaded.is_empty() {
            let mut store = self.store.lock();
            for (key, record) in pending {
                store.insert(key, record);
            }
            for key in &loaded {
                store.note_load(key, &self.run);
            }
            let lines: Vec<String> = match store.save() {
                Ok(warnings) => warnings.into_iter().map(|w| format!("warning: {w}")).collect(),
                Err(e) => vec![format!("warning: races in progress and loads are not saved: {e}")],
            };
            drop(store);
            self.log.lock().extend(lines);
        }
        self.flush();
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
            Knob::GpuBlock => GPU_BLOCK.to_owned(),
            Knob::Workers => WORKERS.to_owned(),
        };
        let adapter = match (knob, &self.gpu_adapter) {
            (Knob::GpuChunks | Knob::GpuBlock, Some(gpu)) => gpu.clone(),
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

    pub(crate) fn default_of(&self, knob: Knob) -> u32 {
        match knob {
            Knob::RowsPerClaim => self.default_rows,
            Knob::Route => 0,
            Knob::GpuChunks => crate::plan::GPU_CHUNKS_PER_BLOCK,
            Knob::GpuBlock => meridian_kernels::cuda::BLOCK_THREADS,
            Knob::Workers => 0,
        }
    }

    /// The candidates of `knob` for jobs of `key`'s size, next last.
    fn candidates(&self, knob: Knob, key: &Key) -> Vec<u32> {
        match knob {
            Knob::RowsPerClaim => {
                let d = self.default_rows;
                let mut candidates = vec![(d / 4).max(256), d.saturating_mul(4)];
                candidates.dedup();
                candidates.retain(|&c| c != d);
                // Claims so large that some worker gets few of them in a job of this size:
                // the idle tail they leave is not what a race measures, so they are not raced.
                let rows = 1u64 << key.rows_class.min(63);
                let most = rows / (self.workers * MIN_CLAIMS_A_WORKER) as u64;
                candidates.retain(|&c| u64::from(c) <= most);
                candidates
            }
            Knob::Route => vec![1],
            // Finer first (blocks done early take more of the slow ones' rows), then coarser
            // (fewer claims, less contention on the ring).
            Knob::GpuChunks => vec![1, 8],
            // Smaller blocks first (a register-heavy kernel fits more of them an SM, and the
            // last wave is shorter), then larger (fewer blocks to schedule). Every kernel
            // takes any multiple of 32 up to MAX_BLOCK threads.
            Knob::GpuBlock => vec![64, meridian_kernels::cuda::abi::MAX_BLOCK],
            // One worker a job: jobs in flight together then run side by side, none waiting
            // at the seam of another's last claims.
            Knob::Workers => vec![1],
        }
    }

    /// The state of `key`, made when it has none: its record's value, the race a run before
    /// left open (continued from its pairs), or a new race. Call with `keys` locked and the
    /// store's answer for `key` read before taking it.
    fn state<'a>(
        &self,
        keys: &'a mut HashMap<Key, State>,
        knob: Knob,
        key: &Key,
        stored: Option<Record>,
    ) -> &'a mut State {
        match keys.entry(key.clone()) {
            Slot::Occupied(o) => o.into_mut(),
            Slot::Vacant(v) => v.insert(self.first_state(knob, key, stored)),
        }
    }

    /// A key's state when this process first meets it: its decided record's value (noted as
    /// loaded), or a race.
    fn first_state(&self, knob: Knob, key: &Key, stored: Option<Record>) -> State {
        match stored {
            Some(r) if knob.stored(&r).is_some() => {
                let v = knob.stored(&r).unwrap_or(self.default_of(knob));
                self.note(format!(
                    "autotune: {} loaded from the store for {} (rows ~2^{}): {}",
                    knob.name(),
                    short(&key.program),
                    key.rows_class,
                    knob.params(v)
                ));
                self.loaded.lock().push(key.clone());
                State::Settled(v)
            }
            other => self.new_race(knob, key, other.and_then(|r| r.pending)),
        }
    }

    /// A race of `knob` for `key`: continued from `pending` when it raced a candidate still
    /// to race, else from the first candidate.
    fn new_race(&self, knob: Knob, key: &Key, pending: Option<PendingRace>) -> State {
        let mut candidates = self.candidates(knob, key);
        if let Some(p) = pending {
            let at = knob.value(&p.candidate).and_then(|c| candidates.iter().position(|&x| x == c));
            if let Some(at) = at {
                let racing = candidates[at];
                // Candidates after it in the list raced (and lost) before it.
                let moved_on = at + 1 < candidates.len();
                candidates.truncate(at);
                self.note(format!(
                    "autotune: continuing the race of {} {} against {} for {} (rows ~2^{}) from {} stored pair(s)",
                    knob.name(),
                    knob.show(racing),
                    knob.show(self.default_of(knob)),
                    short(&key.program),
                    key.rows_class,
                    p.pairs.len()
                ));
                let saved = Some(p.pairs.len());
                return State::Racing(Race {
                    knob,
                    candidates,
                    racing,
                    chosen: 0,
                    open: BTreeMap::new(),
                    pairs: p.pairs,
                    saved,
                    moved_on,
                    announced: true,
                    compile_ns: p.compile_cost_ns as f64,
                });
            }
        }
        let Some(racing) = candidates.pop() else {
            // Nothing to race for jobs of this size: the default, not written down (a
            // record would say more than was measured).
            return State::Settled(self.default_of(knob));
        };
        State::Racing(Race {
            knob,
            candidates,
            racing,
            chosen: 0,
            open: BTreeMap::new(),
            pairs: Vec::new(),
            saved: None,
            moved_on: false,
            announced: false,
            compile_ns: 0.0,
        })
    }

    /// The stored record of `key` when this process has no state for it yet. Read without
    /// holding `keys`: a save may hold the store's lock a while.
    fn stored(&self, key: &Key) -> Option<Record> {
        let known = self.keys.lock().contains_key(key);
        if known {
            None
        } else {
            self.store.lock().get(key).cloned()
        }
    }

    /// The settled value of `knob` for `key` (from this run's race or the store), or `None`
    /// while it races. Takes no part in the race.
    pub(crate) fn settled(&self, knob: Knob, key: &Key) -> Option<u32> {
        let stored = self.stored(key);
        let mut keys = self.keys.lock();
        match self.state(&mut keys, knob, key, stored) {
            State::Settled(v) => Some(*v),
            State::Racing(_) => None,
        }
    }

    /// The value of `knob` for the next job of `key`, and its part if it races.
    pub(crate) fn choose(self: &Arc<Self>, knob: Knob, key: Key) -> (u32, Option<Entry>) {
        let stored = self.stored(&key);
        let mut keys = self.keys.lock();
        match self.state(&mut keys, knob, &key, stored) {
            State::Settled(v) => (*v, None),
            State::Racing(race) => {
                let (v, entry) = self.side(race, knob, key);
                (v, Some(entry))
            }
        }
    }

    /// The next two sides of `key`'s race, for two equal parts of one job, when the job has
    /// room for them: `fits(candidate)` says whether it does.
    pub(crate) fn choose_pair(self: &Arc<Self>, knob: Knob, key: &Key, fits: impl Fn(u32) -> bool) -> Pick {
        let stored = self.stored(key);
        let mut keys = self.keys.lock();
        match self.state(&mut keys, knob, key, stored) {
            State::Settled(v) => Pick::Settled(*v),
            State::Racing(race) if !fits(race.racing) => Pick::NoRoom(self.default_of(knob)),
            State::Racing(race) => {
                // Pairs start at an even count, so the two are one pair.
                race.chosen += race.chosen % 2;
                let first = self.side(race, knob, key.clone());
                let second = self.side(race, knob, key.clone());
                Pick::Pair(Box::new([first, second]))
            }
        }
    }

    /// The next side of `race` and its value.
    fn side(self: &Arc<Self>, race: &mut Race, knob: Knob, key: Key) -> (u32, Entry) {
        let (pair, side) = (race.chosen / 2, race.chosen % 2);
        race.chosen += 1;
        // Which side goes first alternates by pair, so neither always runs first.
        let side = if (side == 0) == (pair % 2 == 0) { Side::Conservative } else { Side::Speculative };
        let v = match side {
            Side::Conservative => self.default_of(knob),
            Side::Speculative => race.racing,
        };
        let entry =
            Entry { tuner: self.clone(), key, knob, candidate: race.racing, pair, side, compile_ns: 0.0 };
        (v, entry)
    }

    /// A raced job (or part of one) finished (successfully, on its first attempt), taking
    /// `took`: its span on the workers, or a part's time on them.
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
        let candidate = knob.params(race.racing);
        let effect = effect(&race.pairs, race.compile_ns, &self.policy);
        let (adopted, why, spread) = match verdict(&race.pairs, race.compile_ns, &self.policy) {
            Verdict::KeepRacing => return,
            Verdict::Adopt { gain, spread, .. } => {
                let why =
                    format!("{:.1}% faster at 95% confidence, {} pairs", gain * 100.0, race.pairs.len());
                self.note(format!(
                    "autotune: adopted {}={} for {} ({why})",
                    knob.name(),
                    knob.show(race.racing),
                    short(&entry.key.program),
                ));
                (true, why, spread)
            }
            Verdict::Reject { why } => {
                self.note(format!(
                    "autotune: rejected {}={} for {}: {why}",
                    knob.name(),
                    knob.show(race.racing),
                    short(&entry.key.program)
                ));
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
                    race.saved = None;
                    race.moved_on = true;
                    race.compile_ns = 0.0;
                    return;
                }
                (false, format!("kept the default: {why}"), 0.0)
            }
        };
        let side_mean =
            |f: fn(&Pair) -> f64| race.pairs.iter().map(f).sum::<f64>() / race.pairs.len().max(1) as f64;
        let (value, mean_ns) = if adopted {
            (race.racing, side_mean(|p| p.speculative_ns))
        } else {
            (default, side_mean(|p| p.conservative_ns))
        };
        let gain = if adopted { effect.map_or(0.0, |e| e.low) } else { 0.0 };
        let timing = Timing { mean_ns, spread, samples: race.pairs.len() as u32 };
        let compile_ns = if adopted { race.compile_ns as u64 } else { 0 };
        let note = VerdictNote { candidate, adopted, why, effect };
        let record = Record::decided(knob.params(value), timing, gain, compile_ns, note);
        keys.insert(entry.key.clone(), State::Settled(value));
        drop(keys);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    fn tuner(path: &std::path::Path) -> Arc<Tuner> {
        let store = Store::open(path).unwrap().store;
        Arc::new(Tuner::new(store, Vec::new(), (16384, 2), None, "test run".into(), None))
    }

    #[test]
    fn a_rejected_candidate_stays_rejected_in_the_next_run() {
        let dir = std::env::temp_dir().join(format!("meridian-tune-unit-{}", std::process::id()));
        let path = dir.join("autotune.bin");
        let t = tuner(&path);
        let key = t.key(Knob::RowsPerClaim, "p", "point".into(), 1 << 22);
        // 65536 races first and loses every pair by half.
        for _ in 0..5 {
            let Pick::Pair(pair) = t.choose_pair(Knob::RowsPerClaim, &key, |_| true) else { panic!() };
            for (v, e) in pair.iter() {
                let ms = if *v == 65536 { 3 } else { 2 };
                t.report(e, Duration::from_millis(ms));
            }
        }
        assert!(t.log().iter().any(|l| l.contains("rejected cpu.rows_per_claim=65536")), "{:?}", t.log());
        // The run ends before 4096 has a pair: what was learnt is kept all the same.
        t.finish();
        let again = tuner(&path);
        let Pick::Pair(pair) = again.choose_pair(Knob::RowsPerClaim, &key, |_| true) else { panic!() };
        assert!(pair.iter().any(|(v, _)| *v == 4096), "{pair:?}");
        assert!(
            again.log().iter().any(|l| l.contains("continuing the race of cpu.rows_per_claim 4096")),
            "{:?}",
            again.log()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
