//! The plan of one job: where it runs, what runs its rows, how it is cut, how much room its
//! hits get — decided once at submission, applied as decided, and kept with the result
//! (`JobResult::plan`, `meridian run --explain`).
//!
//! The decisions that are pure functions of what the engine knows live here, with their
//! bands:
//!
//! - **Queue pressure** ([`Pressure::classify`]): the share of the submission ring holding
//!   chunks not yet claimed — empty, light (under ¼), balanced, saturated (¾ and over). With
//!   hysteresis: a class is left only once the occupancy is an eighth of the ring past its
//!   edge (light is kept under ⅜, balanced from ⅛ to under ⅞, saturated down to ⅝), so a
//!   queue hovering at an edge does not flip the plan job by job.
//! - **Topology** ([`cpu_topology`]): inline on the submitting thread (at most
//!   `inline_rows` rows), one worker (one chunk), or split into chunks. With idle workers (an
//!   empty queue) a job smaller than one chunk per worker is split evenly over the workers,
//!   down to [`MIN_SPLIT_ROWS`] a chunk, so that none of them idles; under saturation chunks
//!   are twice the engine's size (every worker is busy anyway, and fewer claims cost less). A
//!   rows-per-claim winner from autotune is a pin: kept as is.
//! - **Route** ([`auto_route`]): see `Route` — the JIT once a program is hot, kept after.
//! - **Memory budget** ([`fit_budget`]): a job's output buffers (dense outputs a row, hit
//!   slots) must fit the engine's budget; the hit capacity is cut to fit when the rest does
//!   (an overflow re-runs the job with what it needs, checked again), and a job that cannot
//!   fit is an [`OverBudget`] error before anything is allocated, never an allocation failure.

use std::fmt;

use meridian_bytecode::OutputKind;
use meridian_kernels::interp::OutputBuffers;

/// Rows a chunk gets at least when an idle engine splits a small job over its workers.
pub const MIN_SPLIT_ROWS: usize = 4096;

/// How full the submission ring is with unclaimed chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pressure {
    /// Nothing queued: workers are idle or finishing.
    Empty,
    /// Under a quarter of the ring.
    Light,
    /// A quarter to three quarters.
    Balanced,
    /// Three quarters or more.
    Saturated,
}

impl Pressure {
    /// The class of `queued` chunks in a ring of `capacity`, given the class of the previous
    /// plan: a class is kept until the occupancy is an eighth of the ring past its edge.
    pub fn classify(previous: Pressure, queued: usize, capacity: usize) -> Pressure {
        if queued == 0 {
            return Pressure::Empty;
        }
        let capacity = capacity.max(1);
        // In eighths of the ring, rounded down.
        let eighths = queued.saturating_mul(8) / capacity;
        let plain = match eighths {
            0 | 1 => Pressure::Light,
            2..=5 => Pressure::Balanced,
            _ => Pressure::Saturated,
        };
        // The bands: light is kept under 3/8, balanced from 1/8 to under 7/8, saturated down
        // to 5/8.
        let keep = match previous {
            Pressure::Light => eighths < 3,
            Pressure::Balanced => (1..=6).contains(&eighths),
            Pressure::Saturated => eighths >= 5,
            Pressure::Empty => false,
        };
        if keep {
            previous
        } else {
            plain
        }
    }

    /// The name `--explain` prints.
    pub fn name(self) -> &'static str {
        match self {
            Pressure::Empty => "empty",
            Pressure::Light => "light",
            Pressure::Balanced => "balanced",
            Pressure::Saturated => "saturated",
        }
    }
}

/// How a job's rows are cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topology {
    /// On the submitting thread: no ring, no worker.
    Inline,
    /// One chunk, one worker.
    OneWorker,
    /// `chunks` chunks for any workers.
    Split {
        /// How many.
        chunks: usize,
    },
    /// On the GPU, in `chunks` chunks for the megakernel's blocks.
    Gpu {
        /// How many.
        chunks: usize,
    },
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topology::Inline => f.write_str("inline"),
            Topology::OneWorker => f.write_str("one worker"),
            Topology::Split { chunks } => write!(f, "split in {chunks} chunks"),
            Topology::Gpu { chunks } => write!(f, "gpu, {chunks} chunks"),
        }
    }
}

/// What the CPU executor knows when it plans a job's cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CutInput {
    /// The job's rows.
    pub rows: usize,
    /// Jobs of at most this many rows run inline.
    pub inline_rows: usize,
    /// The engine's rows per chunk.
    pub chunk_rows: usize,
    /// A rows-per-claim pin (an autotune winner or race side), kept as is.
    pub pinned: Option<usize>,
    /// CPU workers.
    pub workers: usize,
    /// The most chunks one job may have (half the ring).
    pub max_chunks: usize,
    /// At most this many chunks, so that at most this many workers take the job's claims
    /// (autotune's workers a job), when set.
    pub spread: Option<usize>,
    /// The queue's pressure.
    pub pressure: Pressure,
}

/// Why a job was cut as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutReason {
    /// At most this many rows run inline.
    Inline(usize),
    /// Rows a chunk pinned by autotune.
    Pinned(usize),
    /// Idle workers: cut evenly.
    Even,
    /// A saturated queue: chunks of twice this.
    Saturated(usize),
    /// The engine's rows a chunk.
    Engine(usize),
    /// Autotune's workers a job: at most this many chunks.
    Spread(usize),
    /// On the GPU: about this many chunks for every block of the megakernel, at most half
    /// the ring, none under the executor's fewest rows; `true` when autotune chose it.
    Gpu(u32, bool),
    /// On the GPU, the program's own kernel: one launch over every row, this many threads a
    /// block; `true` when autotune chose it.
    Kernel(u32, bool),
    /// Autotune races inside the job: chunks of this many rows, and of the candidate's,
    /// in pairs of parts, then the rest as the races settled.
    RacedInJob(usize),
}

impl fmt::Display for CutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CutReason::Inline(n) => write!(f, "at most {n} rows run inline"),
            CutReason::Pinned(n) => write!(f, "{n} rows a chunk (autotune)"),
            CutReason::Even => write!(f, "idle workers: cut evenly, ≥ {MIN_SPLIT_ROWS} rows a chunk"),
            CutReason::Saturated(n) => write!(f, "saturated queue: chunks of 2 × {n} rows"),
            CutReason::Engine(n) => write!(f, "{n} rows a chunk"),
            CutReason::Spread(1) => f.write_str("one worker a job (autotune)"),
            CutReason::Spread(w) => write!(f, "at most {w} workers a job (autotune)"),
            CutReason::Gpu(per_block, tuned) => write!(
                f,
                "{per_block} chunk{} for every block of the megakernel{}, at most half the ring",
                if *per_block == 1 { "" } else { "s" },
                if *tuned { " (autotune)" } else { "" }
            ),
            CutReason::Kernel(threads, tuned) => write!(
                f,
                "the program's own kernel: one launch, {threads} threads a block{}",
                if *tuned { " (autotune)" } else { "" }
            ),
            CutReason::RacedInJob(n) => write!(
                f,
                "autotune races inside the job: pairs of parts in chunks of {n} rows and of the candidate's, then the rest as settled"
            ),
        }
    }
}

/// The cut of a CPU job: its topology, the rows of its chunks (0 for inline) and why.
pub fn cpu_topology(c: &CutInput) -> (Topology, usize, CutReason) {
    if c.rows <= c.inline_rows {
        return (Topology::Inline, 0, CutReason::Inline(c.inline_rows));
    }
    let base = c.chunk_rows.max(1);
    let (want, why) = match c.pinned {
        Some(p) => (p.max(1), CutReason::Pinned(p)),
        None if c.pressure == Pressure::Empty && c.workers > 1 && c.rows < base.saturating_mul(c.workers) => {
            (c.rows.div_ceil(c.workers).max(MIN_SPLIT_ROWS), CutReason::Even)
        }
        None if c.pressure == Pressure::Saturated => (base.saturating_mul(2), CutReason::Saturated(base)),
        None => (base, CutReason::Engine(base)),
    };
    // At most `max_chunks` chunks (and `spread`): larger ones past that.
    let (max_chunks, why) = match c.spread {
        Some(w) if w.max(1) < c.max_chunks.max(1) && c.rows.div_ceil(want) > w.max(1) => {
            (w.max(1), CutReason::Spread(w.max(1)))
        }
        _ => (c.max_chunks.max(1), why),
    };
    let size = want.max(c.rows.div_ceil(max_chunks));
    let chunks = c.rows.div_ceil(size).max(1);
    let topology = if chunks == 1 { Topology::OneWorker } else { Topology::Split { chunks } };
    (topology, size, why)
}

/// Chunks a GPU job gives each block of the megakernel unless autotune says otherwise: two,
/// so that a block done early takes another's second half rather than idling.
pub const GPU_CHUNKS_PER_BLOCK: u32 = 2;

/// What cuts a GPU job into the chunks its blocks claim.
#[derive(Clone, Copy, Debug)]
pub struct GpuCutInput {
    /// Rows in the job.
    pub rows: usize,
    /// Blocks of the resident megakernel.
    pub blocks: u32,
    /// Chunks wanted for every block ([`GPU_CHUNKS_PER_BLOCK`], or autotune's).
    pub per_block: u32,
    /// Fewest rows in a chunk (a claim's fixed cost must stay small beside its rows).
    pub min_chunk_rows: usize,
    /// Most chunks: the job must fit the ring with room for another.
    pub max_chunks: usize,
}

/// The cut of a GPU job: its chunks and their rows (the last may be short). Every row is in
/// exactly one chunk, there are at most `max_chunks`, and a chunk has at least
/// `min_chunk_rows` rows unless the job has fewer.
pub fn gpu_cut(c: &GpuCutInput) -> (usize, usize) {
    let wanted = (c.blocks.max(1) as usize).saturating_mul(c.per_block.max(1) as usize);
    let size = c.min_chunk_rows.max(c.rows.div_ceil(wanted)).max(c.rows.div_ceil(c.max_chunks.max(1))).max(1);
    (c.rows.div_ceil(size).max(1), size)
}

/// Fewest and most rows a streamed batch gets from [`stream_batch_rows`].
pub const BATCH_ROWS: std::ops::RangeInclusive<usize> = (1 << 14)..=(1 << 24);

/// Rows a GPU batch needs so that the megakernel's round trip (about 32 µs) is under a
/// twentieth of its time at the join's 3.5 ns a row (`place.rs`).
pub const GPU_BATCH_ROWS: usize = 1 << 18;

/// What sizes a streamed input's batches.
#[derive(Clone, Copy, Debug)]
pub struct BatchInput {
    /// CPU workers.
    pub workers: usize,
    /// The engine's rows a chunk.
    pub chunk_rows: usize,
    /// The GPU's blocks and fewest rows a chunk, when the engine has one.
    pub gpu: Option<(u32, usize)>,
    /// Staging bytes a row of the streamed input (16 for points).
    pub bytes_per_row: u64,
    /// Batches held at once (read ahead, running, and lent to jobs).
    pub batches_held: usize,
    /// The engine's memory budget.
    pub memory_budget: Option<u64>,
}

/// Why batches have the rows they have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchReason {
    /// Four claims for every CPU worker.
    Workers(usize),
    /// Enough for the GPU: its round trip a small share, every block some chunks.
    Gpu,
    /// Cut so that the batches held fit half the memory budget.
    Budget(u64),
}

impl fmt::Display for BatchReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchReason::Workers(w) => write!(f, "four claims for each of {w} workers"),
            BatchReason::Gpu => f.write_str("enough rows for the GPU's round trip and every block"),
            BatchReason::Budget(b) => write!(f, "the batches held fit half the memory budget of {b} bytes"),
        }
    }
}

/// Rows a streamed batch gets when the user does not say (`meridian run --batch-rows`): a
/// power of two in [`BATCH_ROWS`]. Enough that every CPU worker claims four chunks of it (a
/// batch's last claims leave workers idle at its seam; four a worker keep that a small
/// share), or, with a GPU, enough to make its round trip a small share and give every block
/// its chunks; then cut until the batches held take at most half the memory budget.
pub fn stream_batch_rows(b: &BatchInput) -> (usize, BatchReason) {
    let cpu = b.workers.max(1).saturating_mul(b.chunk_rows.max(1)).saturating_mul(4);
    let (mut rows, mut why) = (cpu, BatchReason::Workers(b.workers.max(1)));
    if let Some((blocks, min_chunk)) = b.gpu {
        let gpu = GPU_BATCH_ROWS.max(
            (blocks.max(1) as usize)
                .saturating_mul(GPU_CHUNKS_PER_BLOCK as usize)
                .saturating_mul(min_chunk.max(1)),
        );
        if gpu > rows {
            (rows, why) = (gpu, BatchReason::Gpu);
        }
    }
    let mut rows =
        rows.clamp(*BATCH_ROWS.start(), *BATCH_ROWS.end()).next_power_of_two().min(*BATCH_ROWS.end());
    if let Some(budget) = b.memory_budget {
        let per_batch = (budget / 2) / (b.batches_held.max(1) as u64).saturating_mul(b.bytes_per_row.max(1));
        while rows > *BATCH_ROWS.start() && rows as u64 > per_batch {
            rows /= 2;
            why = BatchReason::Budget(budget);
        }
    }
    (rows, why)
}

/// Why a job took its route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteReason {
    /// The engine's route was set to this (`interp` or `jit`).
    Asked(&'static str),
    /// `auto`: the program's route race (racing, or settled).
    Race {
        /// Still racing.
        racing: bool,
    },
    /// `auto`: `total` rows run, at least `hot`.
    Hot {
        /// Rows run, this job's included.
        total: u64,
        /// The threshold.
        hot: u64,
    },
    /// `auto`: `total` rows run, under `hot`.
    Cold {
        /// Rows run, this job's included.
        total: u64,
        /// The threshold.
        hot: u64,
    },
    /// `auto` in a build without the JIT.
    NoJit,
    /// The JIT was wanted (the inner reason) and could not compile the program (why).
    Failed(Box<RouteReason>, String),
    /// The GPU megakernel interprets the bytecode.
    Megakernel,
    /// GPU `auto`: the program's kernel is compiling; the megakernel meanwhile.
    Compiling,
    /// CPU `auto`: the program is hot (the inner reason) and the JIT compiles it on a thread of
    /// its own; the interpreter meanwhile.
    JitCompiling(Box<RouteReason>),
    /// GPU `auto`: a job of `rows` rows, under `min`: the megakernel's latency lane.
    Lane {
        /// The job's rows.
        rows: usize,
        /// The fewest rows a job takes the program's kernel with.
        min: usize,
    },
}

impl fmt::Display for RouteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteReason::Asked(r) => write!(f, "route {r} was asked for"),
            RouteReason::Race { racing: true } => {
                f.write_str("auto: the program's route race (interp against jit)")
            }
            RouteReason::Race { racing: false } => f.write_str("auto: the program's route race is settled"),
            RouteReason::Hot { total, hot } => write!(f, "auto: hot ({total} rows run ≥ {hot})"),
            RouteReason::Cold { total, hot } => write!(f, "auto: cold ({total} rows run < {hot})"),
            RouteReason::NoJit => f.write_str("auto: this build has no JIT"),
            RouteReason::Failed(wanted, why) => write!(f, "{wanted}, but the interpreter runs it: {why}"),
            RouteReason::Megakernel => f.write_str("the megakernel interprets the bytecode"),
            RouteReason::Compiling => {
                f.write_str("auto: the program's GPU kernel is compiling; the megakernel meanwhile")
            }
            RouteReason::JitCompiling(why) => {
                write!(f, "{why}; the JIT is compiling it, the interpreter meanwhile")
            }
            RouteReason::Lane { rows, min } => {
                write!(f, "auto: {rows} rows < {min}: the megakernel's latency lane")
            }
        }
    }
}

/// Under `Route::Auto` without a route race: whether a program that has run `before` rows on
/// the CPU takes the JIT for a job of `rows` more, and why. Hot — at least `hot` rows in all,
/// this job's included — means the JIT, and a program once hot stays hot (rows only add up):
/// the compile cost is sunk, so no band could make going back pay.
pub fn auto_route(before: u64, rows: usize, hot: u64, jit_available: bool) -> (bool, RouteReason) {
    let total = before.saturating_add(rows as u64);
    match (jit_available, total >= hot) {
        (false, _) => (false, RouteReason::NoJit),
        (true, true) => (true, RouteReason::Hot { total, hot }),
        (true, false) => (false, RouteReason::Cold { total, hot }),
    }
}

/// Why a job got its hit capacity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CapacityReason {
    /// The job asked for this many.
    Asked(usize),
    /// Hits a row learnt from the program's last run.
    Learnt(f64),
    /// No run yet: one a row assumed.
    Assumed,
}

impl fmt::Display for CapacityReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapacityReason::Asked(n) => write!(f, "{n} hits asked by the job"),
            CapacityReason::Learnt(r) => {
                write!(f, "{r:.3} hits a row learnt from the program's last run, +12.5% and 64")
            }
            CapacityReason::Assumed => f.write_str("1 hit a row assumed (no run yet), +12.5% and 64"),
        }
    }
}

/// A job whose outputs cannot fit the engine's memory budget.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{rows} rows need {needed} bytes at the least for {what}; {limit} is {budget} bytes")]
pub struct OverBudget {
    /// The job's rows.
    pub rows: usize,
    /// Bytes the smallest acceptable buffers take.
    pub needed: u64,
    /// The budget.
    pub budget: u64,
    /// Which buffers: the dense outputs, the hits a re-run needs, the device's copies.
    pub what: String,
    /// Which limit: `the memory budget` or `the GPU's free memory`.
    pub limit: &'static str,
}

/// Hit slots a job keeps at the least when its capacity is cut to fit a budget (fewer only
/// when it asked for fewer).
pub const MIN_BUDGET_HITS: usize = 64;

/// The hit capacity a job of `rows` rows with `outputs` gets under `budget` (bytes of output
/// buffers; `None`: no budget), from the `capacity` wanted: as wanted when it fits, else cut
/// so that it does (down to [`MIN_BUDGET_HITS`]), else an error. Also the bytes the buffers
/// then take.
pub fn fit_budget(
    outputs: &[OutputKind],
    rows: usize,
    capacity: usize,
    budget: Option<u64>,
) -> Result<(usize, u64), OverBudget> {
    let bytes = OutputBuffers::bytes(outputs, rows, capacity);
    let Some(budget) = budget.filter(|&b| bytes > b) else { return Ok((capacity, bytes)) };
    let hits = outputs.iter().filter(|&&k| k == OutputKind::Hits).count() as u64;
    let fixed = OutputBuffers::bytes(outputs, rows, 0);
    let floor = capacity.min(MIN_BUDGET_HITS);
    let least = fixed.saturating_add(hits.saturating_mul(8).saturating_mul(floor as u64));
    if hits == 0 || least > budget {
        let what = if hits == 0 {
            "its dense outputs".to_owned()
        } else {
            format!("its dense outputs and {floor} hit slots")
        };
        return Err(OverBudget { rows, needed: least, budget, what, limit: "the memory budget" });
    }
    let cut = ((budget - fixed) / (8 * hits)) as usize;
    Ok((cut, OutputBuffers::bytes(outputs, rows, cut)))
}

/// Whether a re-run of a job with room for `needed` hits fits `budget`.
pub fn rerun_fits(
    outputs: &[OutputKind],
    rows: usize,
    needed: usize,
    budget: Option<u64>,
) -> Result<(), OverBudget> {
    let bytes = OutputBuffers::bytes(outputs, rows, needed);
    match budget {
        Some(budget) if bytes > budget => Err(OverBudget {
            rows,
            needed: bytes,
            budget,
            what: format!("the {needed} hits it produced, for its re-run"),
            limit: "the memory budget",
        }),
        _ => Ok(()),
    }
}

/// The plan of one job, as decided and applied. Its reasons are formatted only when shown,
/// so that keeping a plan with every result costs a tiny job nothing measurable.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// How its rows are cut.
    pub topology: Topology,
    /// Its rows.
    pub rows: usize,
    /// Rows a chunk (0 inline).
    pub chunk_rows: usize,
    /// Room for hits in the first attempt, per hits output.
    pub hit_capacity: usize,
    /// The queue's pressure when it was planned (CPU jobs for the workers; an inline job's
    /// cut reads no queue).
    pub pressure: Option<Pressure>,
    /// Why it runs there (the backend's reason).
    pub placement: std::sync::Arc<crate::variants::Backend>,
    /// Why this route.
    pub route_why: RouteReason,
    /// Why this cut.
    pub cut_why: CutReason,
    /// Why this hit capacity.
    pub capacity_why: CapacityReason,
    /// The capacity the reason gave and the memory budget (bytes) it was cut to fit, when it
    /// was.
    pub budget_cut: Option<(usize, u64)>,
    /// The registered variant that runs it ([`crate::variants`]).
    pub variant: crate::variants::VariantId,
}

impl Plan {
    /// `cpu` or `cuda`.
    pub fn backend(&self) -> &'static str {
        self.placement.name()
    }

    /// `interp` or `jit`.
    pub fn route(&self) -> &'static str {
        self.placement.route()
    }

    /// Why, one line a decision: placement, route, cut, hit capacity.
    pub fn reasons(&self) -> Vec<String> {
        vec![
            self.placement.reason.clone(),
            self.route_why.to_string(),
            self.cut_why.to_string(),
            match self.budget_cut {
                None => format!("hit capacity {}: {}", self.hit_capacity, self.capacity_why),
                Some((wanted, budget)) => format!(
                    "hit capacity {}: {wanted} from {}, cut to fit the memory budget of {budget} bytes",
                    self.hit_capacity, self.capacity_why
                ),
            },
        ]
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rows: {} {} ({}), {}",
            self.rows,
            self.backend(),
            self.route(),
            self.variant,
            self.topology
        )?;
        if self.chunk_rows > 0 {
            write!(f, " of {} rows", self.chunk_rows)?;
        }
        write!(f, ", hit capacity {}", self.hit_capacity)?;
        if let Some(p) = self.pressure {
            write!(f, ", queue {}", p.name())?;
        }
        for r in self.reasons() {
            write!(f, "\n  - {r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
