//! Races inside one job: a large job is run as a sequence of steps, each either a pair of
//! equal parts — one on the conservative side of a race, one on the speculative side, queued
//! next to each other so that both see the same machine — or the rest of its rows, run as
//! the races settled. The route races first (parts of one chunk of the engine's rows each);
//! once it is settled, rows per claim (parts of one of the larger claim, the other side's
//! cut in its own smaller claims). A part's time is the sum of its chunks' times on the workers, so a pair
//! compares the work and per-claim cost of equal rows; the idle tail a job's last claims may
//! leave is not in it, which is why candidates that would leave few claims a worker are not
//! raced ([`super::MIN_CLAIMS_A_WORKER`]).
//!
//! The executor asks for each step when the previous one's last chunk is claimed
//! ([`InJob::next`]), so that a verdict reached in the middle of a job applies to its rest.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use meridian_autotune::Key;

use super::{Entry, Knob, Pick, Side, Tuner};

/// One part of a step: rows, rows a claim, the route (0: the interpreter, 1: the JIT), and
/// its place in a race.
#[derive(Debug)]
pub(crate) struct Part {
    pub rows: usize,
    pub claim: usize,
    pub route: u32,
    pub entry: Option<Entry>,
}

impl Part {
    /// Whether it runs a race's speculative side.
    pub(crate) fn speculative(&self) -> bool {
        self.entry.as_ref().is_some_and(|e| e.side == Side::Speculative)
    }
}

/// What a job runs next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Two parts of equal rows, in the order they are queued.
    Pair([Part; 2]),
    /// The rest of the job's rows, as settled (or by default where a race had no room).
    Rest(Part),
}

/// A job's races: the keys raced, and how the job runs where nothing races.
#[derive(Debug)]
pub(crate) struct InJob {
    tuner: Arc<Tuner>,
    /// The route's key when the route races (`auto` with the JIT).
    route: Option<Key>,
    /// Rows per claim's key when it races (programs without sums).
    rows: Option<Key>,
    /// The route when it does not race.
    fixed_route: u32,
    /// Set when the JIT cannot compile the program: the route then races no more here.
    no_jit: AtomicBool,
}

impl InJob {
    pub(crate) fn new(tuner: Arc<Tuner>, route: Option<Key>, rows: Option<Key>, fixed_route: u32) -> InJob {
        InJob { tuner, route, rows, fixed_route, no_jit: AtomicBool::new(false) }
    }

    /// The tuner (its injected delay for speculative parts, its rows per claim).
    pub(crate) fn tuner(&self) -> &Tuner {
        &self.tuner
    }

    /// The JIT could not compile the program: the rest of the job runs on the interpreter,
    /// out of the route's race.
    pub(crate) fn jit_failed(&self) {
        self.no_jit.store(true, Relaxed);
    }

    /// The next step of a job with `left` rows not yet queued.
    pub(crate) fn next(&self, left: usize) -> Step {
        let d = self.tuner.default_of(Knob::RowsPerClaim) as usize;
        let rest = |route: u32, claim: usize| Step::Rest(Part { rows: left, claim, route, entry: None });
        let route = match &self.route {
            Some(_) if self.no_jit.load(Relaxed) => 0,
            Some(key) => match self.tuner.choose_pair(Knob::Route, key, |_| left >= 2 * d) {
                Pick::Settled(v) => v,
                Pick::NoRoom(v) => {
                    let claim = self.rows.as_ref().and_then(|k| self.tuner.settled(Knob::RowsPerClaim, k));
                    return rest(v, claim.map_or(d, |c| c as usize));
                }
                Pick::Pair(pair) => {
                    let [a, b] = *pair;
                    let part = |(v, e): (u32, Entry)| Part { rows: d, claim: d, route: v, entry: Some(e) };
                    return Step::Pair([part(a), part(b)]);
                }
            },
            None => self.fixed_route,
        };
        let Some(key) = &self.rows else { return rest(route, d) };
        // A part is one of the larger claim: the other side's part is that many rows in its
        // own, smaller claims.
        let unit = |c: u32| d.max(c as usize);
        match self.tuner.choose_pair(Knob::RowsPerClaim, key, |c| left >= 2 * unit(c)) {
            Pick::Settled(v) | Pick::NoRoom(v) => rest(route, v as usize),
            Pick::Pair(pair) => {
                let [a, b] = *pair;
                let rows = unit(a.0.max(b.0));
                let part = |(v, e): (u32, Entry)| Part { rows, claim: v as usize, route, entry: Some(e) };
                Step::Pair([part(a), part(b)])
            }
        }
    }
}
