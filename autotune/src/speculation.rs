//! The verdict of a paired race between the variant in use (conservative) and a candidate
//! (speculative).
//!
//! Each sample is a pair: both variants timed on jobs of the same key, interleaved, so that
//! drift (a warming cache, a busier machine) moves both. The verdict looks at the per-pair
//! log-ratios `ln((speculative + compile / reuse) / conservative)`, with the candidate's
//! one-time compile cost charged once, spread over the jobs expected to reuse it, and bounds
//! their mean with a one-sided Student t interval: adopt when even the pessimistic bound
//! is a gain of at least the margin, reject when even the optimistic bound falls short of it
//! (or the samples run out), keep racing otherwise. Comparing means alone would adopt on noise
//! and drift; charging the compile cost on every sample would reject a variant that compiles
//! once and wins forever.

use serde::{Deserialize, Serialize};

use crate::key::Effect;

/// One paired sample: the two variants' times on jobs (or on equal parts of one job) of the
/// same key, in ns.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// The variant in use.
    pub conservative_ns: f64,
    /// The candidate.
    pub speculative_ns: f64,
}

/// How sure a verdict must be.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// Fewest pairs before any verdict but "keep racing".
    pub min_samples: usize,
    /// Most pairs: without a win by then, reject.
    pub max_samples: usize,
    /// The gain the candidate must show, e.g. 0.03 for 3 % faster.
    pub margin: f64,
    /// Jobs expected to reuse an adopted variant (its compile cost is spread over them).
    pub expected_reuse: f64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy { min_samples: 5, max_samples: 16, margin: 0.03, expected_reuse: 100.0 }
    }
}

/// What to do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Not enough evidence yet.
    KeepRacing,
    /// The candidate wins: at least `gain` faster (as a fraction) at 95 % confidence, compile
    /// cost included.
    Adopt {
        /// The pessimistic gain.
        gain: f64,
        /// The mean log-ratio and its spread, for the record.
        mean_log_ratio: f64,
        /// Standard deviation of the log-ratios.
        spread: f64,
    },
    /// The candidate does not win.
    Reject {
        /// Why.
        why: String,
    },
}

/// One-sided 95 % Student t quantiles for 1..=30 degrees of freedom; beyond, the normal's.
const T95: [f64; 30] = [
    6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812, 1.796, 1.782, 1.771, 1.761, 1.753,
    1.746, 1.740, 1.734, 1.729, 1.725, 1.721, 1.717, 1.714, 1.711, 1.708, 1.706, 1.703, 1.701, 1.699, 1.697,
];

fn t95(df: usize) -> f64 {
    T95.get(df.wrapping_sub(1)).copied().unwrap_or(1.645)
}

/// The per-pair log-ratios' mean, spread and count, with the compile cost charged.
struct Stats {
    mean: f64,
    spread: f64,
    n: usize,
}

impl Stats {
    /// `None` under two usable pairs (pairs with a non-positive or non-finite time are
    /// ignored).
    fn of(pairs: &[Pair], compile_cost_ns: f64, policy: &Policy) -> Option<Stats> {
        let charge = if compile_cost_ns.is_finite() && compile_cost_ns > 0.0 {
            compile_cost_ns / policy.expected_reuse.max(1.0)
        } else {
            0.0
        };
        let ratios: Vec<f64> = pairs
            .iter()
            .filter(|p| {
                p.conservative_ns.is_finite()
                    && p.speculative_ns.is_finite()
                    && p.conservative_ns > 0.0
                    && p.speculative_ns > 0.0
            })
            .map(|p| ((p.speculative_ns + charge) / p.conservative_ns).ln())
            .collect();
        let n = ratios.len();
        if n < 2 {
            return None;
        }
        let mean = ratios.iter().sum::<f64>() / n as f64;
        let var = ratios.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / (n - 1) as f64;
        Some(Stats { mean, spread: var.sqrt(), n })
    }

    /// The half-width of the one-sided 95 % bound with `n` pairs.
    fn half(&self, n: usize) -> f64 {
        t95(n - 1) * self.spread / (n as f64).sqrt()
    }
}

/// The log-ratio the candidate must beat: it must take at most (1 - margin) of the
/// conservative time.
fn target(policy: &Policy) -> f64 {
    (1.0 - policy.margin.clamp(0.0, 0.99)).ln()
}

/// The verdict on `pairs` (pairs with a non-positive or non-finite time are ignored) for a
/// candidate whose one-time cost is `compile_cost_ns`.
pub fn verdict(pairs: &[Pair], compile_cost_ns: f64, policy: &Policy) -> Verdict {
    let Some(st) = Stats::of(pairs, compile_cost_ns, policy).filter(|s| s.n >= policy.min_samples.max(2))
    else {
        return Verdict::KeepRacing;
    };
    let (mean, spread, n) = (st.mean, st.spread, st.n);
    let half = st.half(n);
    let target = target(policy);
    if mean + half < target {
        return Verdict::Adopt { gain: 1.0 - (mean + half).exp(), mean_log_ratio: mean, spread };
    }
    if mean - half > target {
        let best = (1.0 - (mean - half).exp()) * 100.0;
        let bound = if best >= 0.0 {
            format!("at best {best:.1}% faster")
        } else {
            format!("at least {:.1}% slower", -best)
        };
        return Verdict::Reject {
            why: format!("{bound} (95% bound, {n} pairs), short of the {:.1}% margin", policy.margin * 100.0),
        };
    }
    if n >= policy.max_samples {
        let pct = (mean.exp() - 1.0) * 100.0;
        let side = if pct <= 0.0 { "faster" } else { "slower" };
        return Verdict::Reject {
            why: format!(
                "no clear winner after {n} pairs (on average {:.1}% {side}, too noisy to be sure)",
                pct.abs()
            ),
        };
    }
    Verdict::KeepRacing
}

/// The candidate's speed-up over the default on `pairs`, with its 95 % one-sided bounds
/// (the verdict's), or `None` under two usable pairs.
pub fn effect(pairs: &[Pair], compile_cost_ns: f64, policy: &Policy) -> Option<Effect> {
    let st = Stats::of(pairs, compile_cost_ns, policy)?;
    let half = st.half(st.n);
    Some(Effect {
        speedup: 1.0 - st.mean.exp(),
        low: 1.0 - (st.mean + half).exp(),
        high: 1.0 - (st.mean - half).exp(),
        pairs: u32::try_from(st.n).unwrap_or(u32::MAX),
    })
}

/// About how many more pairs a race still open on `pairs` needs before its verdict: the
/// pairs at which the interval, at today's spread, would clear the margin on today's side
/// of it — at least the policy's fewest, at most its most (where a verdict is certain).
/// Always at least one.
pub fn more_pairs(pairs: &[Pair], compile_cost_ns: f64, policy: &Policy) -> usize {
    let floor = policy.min_samples.max(2);
    let most = policy.max_samples.max(floor);
    let Some(st) = Stats::of(pairs, compile_cost_ns, policy) else {
        let usable = pairs.iter().filter(|p| p.conservative_ns > 0.0 && p.speculative_ns > 0.0).count();
        return floor.saturating_sub(usable).max(1);
    };
    let gap = (st.mean - target(policy)).abs();
    let mut need = floor.max(st.n + 1);
    while need < most && st.half(need) >= gap {
        need += 1;
    }
    need.saturating_sub(st.n).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` pairs: conservative `base` with a drift and ±noise, speculative `ratio` × it with
    /// its own ±noise (deterministic).
    fn pairs(n: usize, base: f64, ratio: f64, noise: f64, drift: f64) -> Vec<Pair> {
        (0..n)
            .map(|i| {
                let wobble = |k: usize| ((k * 7919 + 13) % 101) as f64 / 100.0 - 0.5; // in [-0.5, 0.5]
                let c = base * (1.0 + drift * i as f64) * (1.0 + noise * wobble(i));
                let s = c * ratio * (1.0 + noise * wobble(i + 50));
                Pair { conservative_ns: c, speculative_ns: s }
            })
            .collect()
    }

    fn kind(v: &Verdict) -> &'static str {
        match v {
            Verdict::KeepRacing => "keep",
            Verdict::Adopt { .. } => "adopt",
            Verdict::Reject { .. } => "reject",
        }
    }

    #[test]
    fn verdicts() {
        let p = Policy::default();
        let ms = 1e6;
        #[rustfmt::skip]
        let table: &[(&str, Vec<Pair>, f64, &str)] = &[
            ("too few pairs", pairs(4, ms, 0.5, 0.01, 0.0), 0.0, "keep"),
            ("clearly faster", pairs(5, ms, 0.80, 0.02, 0.0), 0.0, "adopt"),
            ("clearly slower", pairs(5, ms, 1.25, 0.02, 0.0), 0.0, "reject"),
            ("faster by less than the margin", pairs(12, ms, 0.99, 0.005, 0.0), 0.0, "reject"),
            ("equal under noise, early", pairs(6, ms, 1.0, 0.30, 0.0), 0.0, "keep"),
            ("equal under noise, out of samples", pairs(16, ms, 1.0, 0.30, 0.0), 0.0, "reject"),
            // Drift of 5 % per pair moves both; the pairs still show a 10 % gain.
            ("faster under drift", pairs(8, ms, 0.90, 0.02, 0.05), 0.0, "adopt"),
            // A 50 ms compile spread over 100 jobs is 0.5 ms a job: it eats a 20 % gain on
            // 1 ms jobs (0.8 + 0.5 > 1) ...
            ("compile cost too high for the reuse", pairs(8, ms, 0.80, 0.02, 0.0), 50.0 * ms, "reject"),
            // ... but not on 100 ms jobs.
            ("compile cost amortised", pairs(8, 100.0 * ms, 0.80, 0.02, 0.0), 50.0 * ms, "adopt"),
            ("broken timings ignored", vec![Pair { conservative_ns: f64::NAN, speculative_ns: 1.0 }; 10], 0.0, "keep"),
        ];
        for (name, pairs, compile, want) in table {
            let v = verdict(pairs, *compile, &p);
            assert_eq!(kind(&v), *want, "{name}: {v:?}");
        }
    }

    #[test]
    fn an_adopted_gain_is_a_pessimistic_bound() {
        let v = verdict(&pairs(10, 1e6, 0.80, 0.04, 0.0), 0.0, &Policy::default());
        let Verdict::Adopt { gain, mean_log_ratio, spread } = v else { panic!("{v:?}") };
        assert!(gain > 0.03 && gain < 0.20, "{gain}");
        assert!((mean_log_ratio - 0.8f64.ln()).abs() < 0.02, "{mean_log_ratio}");
        assert!(spread > 0.0);
    }

    #[test]
    fn an_effect_and_its_bounds_are_the_verdicts() {
        let p = Policy::default();
        let ps = pairs(10, 1e6, 0.80, 0.04, 0.0);
        let e = effect(&ps, 0.0, &p).unwrap();
        let Verdict::Adopt { gain, .. } = verdict(&ps, 0.0, &p) else { panic!() };
        assert!((e.low - gain).abs() < 1e-12, "{e:?} {gain}");
        assert!(e.low < e.speedup && e.speedup < e.high, "{e:?}");
        assert!((e.speedup - 0.2).abs() < 0.02, "{e:?}");
        assert_eq!(e.pairs, 10);
        // Slower: a negative speed-up.
        let slow = effect(&pairs(6, 1e6, 1.25, 0.02, 0.0), 0.0, &p).unwrap();
        assert!(slow.high < 0.0 && (slow.speedup + 0.25).abs() < 0.02, "{slow:?}");
        assert!(effect(&pairs(1, 1e6, 0.8, 0.0, 0.0), 0.0, &p).is_none());
    }

    #[test]
    fn more_pairs_counts_what_an_open_race_still_needs() {
        let p = Policy::default();
        // Under the fewest: the rest of them.
        assert_eq!(more_pairs(&[], 0.0, &p), 5);
        assert_eq!(more_pairs(&pairs(1, 1e6, 0.8, 0.01, 0.0), 0.0, &p), 4);
        assert_eq!(more_pairs(&pairs(3, 1e6, 0.8, 0.01, 0.0), 0.0, &p), 2);
        // Close to the margin and noisy: up to the most, where the verdict is certain.
        let noisy = pairs(6, 1e6, 0.97, 0.30, 0.0);
        assert_eq!(verdict(&noisy, 0.0, &p), Verdict::KeepRacing);
        assert_eq!(more_pairs(&noisy, 0.0, &p), 16 - 6);
        // Every count it gives is enough by today's spread, or the most.
        for n in 2..16 {
            let ps = pairs(n, 1e6, 0.93, 0.10, 0.0);
            if verdict(&ps, 0.0, &p) == Verdict::KeepRacing {
                let more = more_pairs(&ps, 0.0, &p);
                assert!(more >= 1 && n + more <= 16, "{n} + {more}");
            }
        }
    }

    #[test]
    fn means_alone_would_be_fooled_by_drift() {
        // The conservative variant's times climb 20 % per pair (a machine getting busier);
        // the candidate is 5 % faster in every pair. Mean against mean, the candidate looks
        // no better (its pairs came later); paired, it wins.
        let ps: Vec<Pair> = (0..10)
            .map(|i| {
                let c = 1e6 * 1.2f64.powi(i);
                Pair { conservative_ns: c, speculative_ns: c * 0.95 * 1.2 }
            })
            .collect();
        let mean = |f: fn(&Pair) -> f64| ps.iter().map(f).sum::<f64>() / ps.len() as f64;
        assert!(mean(|p| p.speculative_ns) > mean(|p| p.conservative_ns));
        // Timed in the same pair (interleaved), the drift cancels:
        let paired: Vec<Pair> = ps
            .iter()
            .map(|p| Pair { conservative_ns: p.conservative_ns, speculative_ns: p.conservative_ns * 0.95 })
            .collect();
        assert_eq!(kind(&verdict(&paired, 0.0, &Policy { margin: 0.02, ..Policy::default() })), "adopt");
    }
}
