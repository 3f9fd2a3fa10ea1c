//! A job that races inside itself ([`crate::tune::in_job`]), queued a step at a time: the
//! chunks of a pair of parts, and when the last of them is claimed, the next step; each
//! chunk's time on its worker summed into its part, and a pair reported to the tuner when
//! both parts are done. A chunk's ring entry names it by a tag (its number in the job, in
//! [`SubmitEntry::chunk`]), which says which part it belongs to.

use std::ops::Range;
use std::time::Duration;

use parking_lot::Mutex;

use super::code::Code;
use crate::job::PreparedInner;
use crate::ring::SubmitEntry;
use crate::tune::in_job::{Part, Step};
use crate::tune::{Entry, InJob};

/// Most chunks a step of a job's rest queues.
pub(super) const REST_CHUNKS: usize = 16;

/// A stepped job's state.
#[derive(Debug)]
pub(super) struct Steps {
    races: std::sync::Arc<InJob>,
    /// Fewest rows a chunk: the job's rows over the most chunks a job may queue (half the
    /// ring), so that the rest is cut as the job would be without races.
    floor: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Rows not yet queued.
    left: Range<usize>,
    /// The tag of the next chunk queued.
    next_tag: u32,
    /// The tag whose claim queues the next step (`None`: every row is queued).
    trigger: Option<u32>,
    parts: Vec<PartRun>,
}

/// A part as it runs.
#[derive(Debug)]
struct PartRun {
    /// Its chunks' tags.
    tags: Range<u32>,
    code: Code,
    /// Its place in a race (`None` once it can no longer be reported).
    entry: Option<Entry>,
    /// The other part of its pair, by index.
    partner: Option<usize>,
    /// Chunks not finished, and the time of those that are.
    unfinished: u32,
    ns: u64,
    /// Slowed by the tuner's injected delay (a speculative part, under test).
    delay: Option<Duration>,
}

/// A step to queue: its entries (slot to be filled in), and whether it is the last.
pub(super) struct Queued {
    pub entries: Vec<SubmitEntry>,
    pub last: bool,
}

/// What a claimed chunk runs with.
pub(super) struct Claim {
    pub code: Code,
    /// Its tag queues the next step.
    pub trigger: bool,
    pub delay: Option<Duration>,
}

impl Steps {
    pub(super) fn new(races: std::sync::Arc<InJob>, rows: Range<usize>, max_chunks: usize) -> Steps {
        let floor = rows.len().div_ceil(max_chunks.max(1)).max(1);
        let inner = Inner { left: rows, next_tag: 0, trigger: None, parts: Vec::new() };
        Steps { races, floor, inner: Mutex::new(inner) }
    }

    /// Plans the next step (the tuner decides it now) and returns its entries for job-table
    /// slot `slot`; `None` when every row is queued.
    pub(super) fn plan(&self, slot: u32, prepared: &PreparedInner) -> Option<Queued> {
        let mut inner = self.inner.lock();
        if inner.left.is_empty() {
            return None;
        }
        let step = self.races.next(inner.left.len());
        let parts: Vec<Part> = match step {
            Step::Pair(parts) => parts.into(),
            Step::Rest(part) => vec![part],
        };
        let first_part = inner.parts.len();
        let paired = parts.len() == 2;
        let mut entries = Vec::new();
        for (i, part) in parts.into_iter().enumerate() {
            let (code, entry) = self.code_of(&part, prepared);
            let delay = if part.speculative() { self.races.tuner().speculative_delay } else { None };
            let size = part.claim.max(1).max(self.floor);
            // The rest goes a few chunks a step, so that a ring without room for a step
            // costs only those chunks on one worker.
            let most = if paired { part.rows } else { part.rows.min(size.saturating_mul(REST_CHUNKS)) };
            let rows = inner.left.start..inner.left.start + most.min(inner.left.len());
            inner.left.start = rows.end;
            let first_tag = inner.next_tag;
            let mut begin = rows.start;
            while begin < rows.end {
                let end = begin.saturating_add(size).min(rows.end);
                let tag = inner.next_tag;
                inner.next_tag += 1;
                entries.push(SubmitEntry { job: slot, chunk: tag, begin: begin as u64, end: end as u64 });
                begin = end;
            }
            let tags = first_tag..inner.next_tag;
            let partner = paired.then_some(first_part + 1 - i);
            let unfinished = tags.len() as u32;
            inner.parts.push(PartRun { tags, code, entry, partner, unfinished, ns: 0, delay });
        }
        let last = inner.left.is_empty();
        inner.trigger = if last { None } else { entries.last().map(|e| e.chunk) };
        Some(Queued { entries, last })
    }

    /// The code a part runs, and its race entry (dropped when the JIT cannot compile: the
    /// part runs on the interpreter, and its pair says nothing).
    fn code_of(&self, part: &Part, prepared: &PreparedInner) -> (Code, Option<Entry>) {
        let Part { route, entry, .. } = part;
        if *route == 0 {
            return (Code::Interpreter, entry.clone());
        }
        match Code::compiled(prepared) {
            Ok(code) => {
                let entry = entry.clone().map(|mut e| {
                    e.note_compile(prepared.jit_compile_ns());
                    e
                });
                (code, entry)
            }
            Err(_) => {
                self.races.jit_failed();
                (Code::Interpreter, None)
            }
        }
    }

    /// The rows of the step `queued` (not on the ring: it had no room), taken to run here
    /// with the code of its first part; its parts leave their races.
    pub(super) fn take_step(&self, queued: &Queued) -> (Range<usize>, Code) {
        let mut inner = self.inner.lock();
        let tags =
            queued.entries.first().map_or(0, |e| e.chunk)..queued.entries.last().map_or(0, |e| e.chunk + 1);
        let mut code = None;
        for p in inner.parts.iter_mut().filter(|p| p.tags.start >= tags.start && p.tags.end <= tags.end) {
            p.entry = None;
            code.get_or_insert(p.code);
        }
        let rows = queued.entries.first().map_or(0, |e| e.begin as usize)
            ..queued.entries.last().map_or(0, |e| e.end as usize);
        (rows, code.unwrap_or(Code::Interpreter))
    }

    /// Stops queueing (the job was stopped or failed): no more steps.
    pub(super) fn stop(&self) {
        let mut inner = self.inner.lock();
        inner.left.start = inner.left.end;
        inner.trigger = None;
    }

    /// What the chunk tagged `tag` runs with.
    pub(super) fn claim(&self, tag: u32) -> Claim {
        let inner = self.inner.lock();
        let trigger = inner.trigger == Some(tag);
        match inner.parts.iter().rev().find(|p| p.tags.contains(&tag)) {
            Some(p) => Claim { code: p.code, trigger, delay: p.delay },
            None => Claim { code: Code::Interpreter, trigger, delay: None },
        }
    }

    /// The chunk tagged `tag` finished in `ns` (`ok`: without an error): the pair's two
    /// entries and times, once both its parts are done.
    pub(super) fn finished(&self, tag: u32, ns: u64, ok: bool) -> Option<[(Entry, Duration); 2]> {
        let mut inner = self.inner.lock();
        let at = inner.parts.iter().rposition(|p| p.tags.contains(&tag))?;
        let p = &mut inner.parts[at];
        p.unfinished = p.unfinished.saturating_sub(1);
        p.ns = p.ns.saturating_add(ns);
        if !ok {
            p.entry = None;
        }
        let partner = p.partner?;
        let done = |p: &PartRun| p.unfinished == 0 && p.entry.is_some();
        if !(done(&inner.parts[at]) && done(&inner.parts[partner])) {
            return None;
        }
        let mut take = |i: usize| {
            let p = &mut inner.parts[i];
            p.entry.take().map(|e| (e, Duration::from_nanos(p.ns)))
        };
        Some([take(at)?, take(partner)?])
    }
}

/// This thread's CPU time in ns: a part's chunks are timed by it, not by the wall clock, so
/// that a worker descheduled (or its virtual CPU stolen) in one part of a pair does not decide
/// the race. A chunk computes and never waits, so its CPU time is its cost.
pub(super) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration, and
    // CLOCK_THREAD_CPUTIME_ID is a clock every Linux kernel since 2.6.12 has.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// Burns `delay` of this thread's CPU time: the injected slowness of a speculative part
/// (a sleep would not show in the CPU time parts are timed by).
pub(super) fn spin_for(delay: Duration) {
    let until = thread_cpu_ns().saturating_add(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX));
    let start = std::time::Instant::now();
    // The wall clock bounds it too, should the CPU clock not advance.
    while thread_cpu_ns() < until && start.elapsed() < delay * 4 {
        std::hint::spin_loop();
    }
}
