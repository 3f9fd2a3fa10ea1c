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
}

impl Record {
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
