//! Keys and records.

use serde::{Deserialize, Serialize};

/// What a record is about. Two jobs share a key when the same program runs over inputs of
/// the same kinds and row-count class, for the same variant family, on the same adapter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    /// The program's content hash (hex).
    pub program: String,
    /// The binding signature: the input kinds, in order (e.g. `points,polygons+index`).
    pub binding: String,
    /// The row-count class: ⌊log2(rows)⌋, so jobs of similar size share what was learnt.
    pub rows_class: u32,
    /// The variant family raced (e.g. `cpu.rows_per_claim`, `route`, `gpu.block`).
    pub family: String,
    /// The adapter: CPU model and core count, or GPU name, compute capability and driver.
    pub adapter: String,
}

impl Key {
    /// The row-count class of `rows` (0 for 0 and 1).
    pub fn rows_class(rows: u64) -> u32 {
        63 - rows.max(1).leading_zeros()
    }
}

/// The parameters a record chose; absent ones were not raced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// CPU workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    /// Rows a CPU worker claims at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_per_claim: Option<u32>,
    /// The route (`interp`, `jit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// GPU threads per block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_block: Option<u32>,
    /// Chunks a GPU job gives each block of the megakernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_chunks_per_block: Option<u32>,
}

impl std::fmt::Display for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(w) = self.workers {
            parts.push(format!("workers={w}"));
        }
        if let Some(r) = self.rows_per_claim {
            parts.push(format!("rows_per_claim={r}"));
        }
        if let Some(r) = &self.route {
            parts.push(format!("route={r}"));
        }
        if let Some(b) = self.gpu_block {
            parts.push(format!("gpu_block={b}"));
        }
        if let Some(c) = self.gpu_chunks_per_block {
            parts.push(format!("gpu_chunks_per_block={c}"));
        }
        if parts.is_empty() {
            f.write_str("defaults")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

/// How the chosen variant timed in its race.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Mean time of the chosen variant per job, in ns.
    pub mean_ns: f64,
    /// Standard deviation of the per-pair log-ratios (speculative / conservative).
    pub spread: f64,
    /// Pairs timed.
    pub samples: u32,
}

/// What was chosen for a key, and the evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The parameters to apply.
    pub params: Params,
    /// Its timing in the race.
    pub timing: Timing,
    /// The speed-up the verdict claimed (at its confidence), e.g. 0.08 for 8 % faster.
    pub gain: f64,
    /// One-time cost of the variant (compilation), in ns; charged once, amortised.
    pub compile_cost_ns: u64,
    /// When it was recorded (ms since the Unix epoch): the newer record of a key wins a merge.
    pub recorded_at_ms: u64,
    /// How the race ended: the candidate raced, whether it won, the verdict's words and the
    /// measured effect (absent in records written before verdicts were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictNote>,
    /// A race not decided yet, kept so that the next run continues it: such a record applies
    /// nothing (its `params` are empty, which earlier builds also read as nothing stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingRace>,
    /// The last runs that applied this record, oldest first (at most [`Record::LOADS_KEPT`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loads: Vec<Load>,
}

/// How a race ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerdictNote {
    /// The candidate raced against the default (the last one, when several were).
    pub candidate: Params,
    /// Whether it won: the record's `params` are then the candidate's, else the default's.
    pub adopted: bool,
    /// The verdict in words.
    pub why: String,
    /// The candidate's measured effect over the pairs the verdict saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<Effect>,
}

/// A candidate's speed-up over the default, with its 95 % one-sided bounds (together a 90 %
/// interval), as fractions: 0.12 is 12 % faster, -0.05 5 % slower. The candidate's one-time
/// cost is charged as the verdict charges it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// From the mean per-pair log-ratio.
    pub speedup: f64,
    /// The pessimistic bound.
    pub low: f64,
    /// The optimistic bound.
    pub high: f64,
    /// Pairs it rests on.
    pub pairs: u32,
}

/// A race still open when its run ended: what was raced and the pairs timed so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingRace {
    /// The candidate racing against the default.
    pub candidate: Params,
    /// The pairs timed so far, in order.
    pub pairs: Vec<crate::Pair>,
    /// The candidate's one-time cost measured so far (ns).
    pub compile_cost_ns: u64,
    /// About how many more pairs a verdict needs, when that can be said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more_pairs: Option<u32>,
}

/// A run that applied a record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Load {
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// Which run: its command line, or the name the embedder gave it.
    pub run: String,
}

impl Record {
    /// Runs kept in [`Record::loads`].
    pub const LOADS_KEPT: usize = 8;

    /// A decided record: `params` applied from now on, with its evidence.
    pub fn decided(
        params: Params,
        timing: Timing,
        gain: f64,
        compile_cost_ns: u64,
        verdict: VerdictNote,
    ) -> Record {
        Record {
            params,
            timing,
            gain,
            compile_cost_ns,
            recorded_at_ms: Record::now_ms(),
            verdict: Some(verdict),
            pending: None,
            loads: Vec::new(),
        }
    }

    /// A race to be continued: applies nothing.
    pub fn pending(race: PendingRace) -> Record {
        Record {
            params: Params::default(),
            timing: Timing { samples: race.pairs.len() as u32, ..Timing::default() },
            gain: 0.0,
            compile_cost_ns: race.compile_cost_ns,
            recorded_at_ms: Record::now_ms(),
            verdict: None,
            pending: Some(race),
            loads: Vec::new(),
        }
    }

    /// Whether it is a verdict to apply (not a race in progress).
    pub fn is_decided(&self) -> bool {
        self.pending.is_none()
    }

    /// Notes that `run` applied it, keeping the last [`Record::LOADS_KEPT`] runs.
    pub fn note_load(&mut self, load: Load) {
        self.loads.push(load);
        self.trim_loads();
    }

    /// Adds the runs `other` names that this one lacks (two processes that loaded the same
    /// record and saved it).
    pub fn merge_loads(&mut self, other: &Record) {
        for l in &other.loads {
            if !self.loads.contains(l) {
                self.loads.push(l.clone());
            }
        }
        self.loads.sort();
        self.trim_loads();
    }

    fn trim_loads(&mut self) {
        let extra = self.loads.len().saturating_sub(Record::LOADS_KEPT);
        self.loads.drain(..extra);
    }

    /// Now, in ms since the Unix epoch (0 if the clock is before it).
    pub fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_classes_group_by_powers_of_two() {
        assert_eq!(Key::rows_class(0), 0);
        assert_eq!(Key::rows_class(1), 0);
        assert_eq!(Key::rows_class(2), 1);
        assert_eq!(Key::rows_class(1023), 9);
        assert_eq!(Key::rows_class(1024), 10);
        assert_eq!(Key::rows_class(u64::MAX), 63);
    }

    #[test]
    fn params_say_what_they_set() {
        assert_eq!(Params::default().to_string(), "defaults");
        let p = Params { rows_per_claim: Some(4096), route: Some("jit".into()), ..Params::default() };
        assert_eq!(p.to_string(), "rows_per_claim=4096,route=jit");
    }
}
