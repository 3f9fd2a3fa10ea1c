//! Autotune applied: races of the CPU executor's rows per claim on real jobs, verdicts by
//! [`meridian_autotune::verdict`], winners applied to later jobs of the same key and kept in
//! the store, so that the next run starts from them without racing.
//!
//! A key's first large jobs alternate between the engine's rows per claim (conservative) and
//! a candidate (speculative); their times, paired in order, go to the verdict after every
//! pair. Adopted: the candidate runs every later job of the key and is saved. Rejected: the
//! next candidate races; with none left, the default is saved as the winner, so the key is
//! not raced again. A key with a stored record is never raced. Races never change results:
//! only how rows are cut into claims.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use meridian_autotune::{verdict, Key, Pair, Params, Policy, Record, Store, Timing, Verdict};

/// Jobs smaller than this are not raced (their times are mostly overhead and noise).
pub const RACE_MIN_ROWS: usize = 1 << 17;

/// The family of the race this module runs.
pub const ROWS_PER_CLAIM: &str = "cpu.rows_per_claim";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Which side of a race a job ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Conservative,
    Speculative,
}

/// A job's part in a race: its key and side; reported back with the job's time.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub tuner: Arc<Tuner>,
    pub key: Key,
    pub side: Side,
}

#[derive(Debug)]
struct Race {
    /// Candidates not yet raced, next last.
    candidates: Vec<u32>,
    /// The candidate racing now.
    racing: u32,
    next: Side,
    conservative: Vec<f64>,
    speculative: Vec<f64>,
    pairs: Vec<Pair>,
}

#[derive(Debug)]
enum State {
    Racing(Race),
    /// Settled (adopted, rejected, or loaded from the store): the rows per claim to use.
    Settled(u32),
}

/// The engine's autotuner: the store, and the races of this process.
#[derive(Debug)]
pub struct Tuner {
    store: Mutex<Store>,
    keys: Mutex<HashMap<Key, State>>,
    /// What happened, in order, for `meridian run` to say.
    log: Mutex<Vec<String>>,
    policy: Policy,
    adapter: String,
    default_rows: u32,
}

impl Tuner {
    /// A tuner over `store`, for the CPU executor whose rows per claim is `default_rows`
    /// with `workers` workers.
    pub(crate) fn new(store: Store, warnings: Vec<String>, default_rows: usize, workers: usize) -> Tuner {
        let default_rows = u32::try_from(default_rows).unwrap_or(u32::MAX).max(1);
        Tuner {
            store: Mutex::new(store),
            keys: Mutex::new(HashMap::new()),
            log: Mutex::new(warnings.into_iter().map(|w| format!("warning: {w}")).collect()),
            policy: Policy::default(),
            adapter: format!("{} x{workers}", cpu_model()),
            default_rows,
        }
    }

    /// What the tuner did so far (raced, adopted, rejected, loaded, warnings), in order.
    pub fn log(&self) -> Vec<String> {
        lock(&self.log).clone()
    }

    /// Where its store is.
    pub fn store_path(&self) -> std::path::PathBuf {
        lock(&self.store).path().to_path_buf()
    }

    fn note(&self, line: String) {
        lock(&self.log).push(line);
    }

    /// The key of a job of `rows` rows of `program` over inputs described by `binding`.
    pub(crate) fn key(&self, program: &str, binding: String, rows: usize) -> Key {
        Key {
            program: program.to_owned(),
            binding,
            rows_class: Key::rows_class(rows as u64),
            family: ROWS_PER_CLAIM.into(),
            adapter: self.adapter.clone(),
        }
    }

    /// The rows per claim for the next job of `key`, and its side if it races.
    pub(crate) fn choose(self: &Arc<Self>, key: Key) -> (usize, Option<Entry>) {
        let mut keys = lock(&self.keys);
        if !keys.contains_key(&key) {
            let state = match lock(&self.store).get(&key).and_then(|r| r.params.rows_per_claim) {
                Some(rows) => {
                    self.note(format!(
                        "autotune: {} loaded from the store for {} (rows ~2^{}): rows_per_claim={rows}",
                        ROWS_PER_CLAIM,
                        short(&key.program),
                        key.rows_class
                    ));
                    State::Settled(rows)
                }
                None => {
                    let d = self.default_rows;
                    let mut candidates = vec![(d / 4).max(256), d.saturating_mul(4)];
                    candidates.dedup();
                    candidates.retain(|&c| c != d);
                    let racing = candidates.pop().unwrap_or(d);
                    self.note(format!(
                        "autotune: racing {ROWS_PER_CLAIM} {racing} against {d} for {} (rows ~2^{})",
                        short(&key.program),
                        key.rows_class
                    ));
                    State::Racing(Race {
                        candidates,
                        racing,
                        next: Side::Conservative,
                        conservative: Vec::new(),
                        speculative: Vec::new(),
                        pairs: Vec::new(),
                    })
                }
            };
            keys.insert(key.clone(), state);
        }
        match keys.get_mut(&key) {
            Some(State::Settled(rows)) => (*rows as usize, None),
            Some(State::Racing(race)) => {
                let side = race.next;
                race.next = match side {
                    Side::Conservative => Side::Speculative,
                    Side::Speculative => Side::Conservative,
                };
                let rows = match side {
                    Side::Conservative => self.default_rows,
                    Side::Speculative => race.racing,
                };
                (rows as usize, Some(Entry { tuner: self.clone(), key, side }))
            }
            None => (self.default_rows as usize, None),
        }
    }

    /// A raced job finished in `took` (successfully, on its first attempt).
    pub(crate) fn report(&self, entry: &Entry, took: Duration) {
        let mut keys = lock(&self.keys);
        let Some(State::Racing(race)) = keys.get_mut(&entry.key) else { return };
        let ns = took.as_secs_f64() * 1e9;
        match entry.side {
            Side::Conservative => race.conservative.push(ns),
            Side::Speculative => race.speculative.push(ns),
        }
        while !race.conservative.is_empty() && !race.speculative.is_empty() {
            let c = race.conservative.remove(0);
            let s = race.speculative.remove(0);
            race.pairs.push(Pair { conservative_ns: c, speculative_ns: s });
        }
        let settled = match verdict(&race.pairs, 0.0, &self.policy) {
            Verdict::KeepRacing => return,
            Verdict::Adopt { gain, spread, .. } => {
                let mean = race.pairs.iter().map(|p| p.speculative_ns).sum::<f64>() / race.pairs.len() as f64;
                self.note(format!(
                    "autotune: adopted {ROWS_PER_CLAIM}={} for {} ({:.1}% faster at 95% confidence, {} pairs)",
                    race.racing,
                    short(&entry.key.program),
                    gain * 100.0,
                    race.pairs.len()
                ));
                Some((race.racing, gain, spread, mean, race.pairs.len()))
            }
            Verdict::Reject { why } => {
                self.note(format!(
                    "autotune: rejected {ROWS_PER_CLAIM}={} for {}: {why}",
                    race.racing,
                    short(&entry.key.program)
                ));
                match race.candidates.pop() {
                    Some(next) => {
                        self.note(format!(
                            "autotune: racing {ROWS_PER_CLAIM} {next} against {}",
                            self.default_rows
                        ));
                        race.racing = next;
                        race.pairs.clear();
                        race.conservative.clear();
                        race.speculative.clear();
                        race.next = Side::Conservative;
                        None
                    }
                    None => {
                        let mean = race.pairs.iter().map(|p| p.conservative_ns).sum::<f64>()
                            / race.pairs.len().max(1) as f64;
                        Some((self.default_rows, 0.0, 0.0, mean, race.pairs.len()))
                    }
                }
            }
        };
        let Some((rows, gain, spread, mean_ns, samples)) = settled else { return };
        keys.insert(entry.key.clone(), State::Settled(rows));
        drop(keys);
        let record = Record {
            params: Params { rows_per_claim: Some(rows), ..Params::default() },
            timing: Timing { mean_ns, spread, samples: samples as u32 },
            gain,
            compile_cost_ns: 0,
            recorded_at_ms: Record::now_ms(),
        };
        let mut store = lock(&self.store);
        store.insert(entry.key.clone(), record);
        match store.save() {
            Ok(warnings) => {
                for w in warnings {
                    self.note(format!("warning: {w}"));
                }
            }
            Err(e) => self.note(format!("warning: the winner is not saved: {e}")),
        }
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
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
