//! Per-thread execution state: registers with null flags, candidate cursors, scratch space
//! for derived geometries, and chunk-local output batches. Reused across rows, chunks and
//! jobs so the row loop never allocates once it has warmed up.

use meridian_bytecode::OutputKind;

use crate::algo::Rect;
use crate::column::ColumnBuilder;
use crate::index::CellClass;

/// Null in the `b` file's byte encoding (0 false, 1 true).
pub(crate) const B_NULL: u8 = 2;
/// `GVal::src` of a null register.
pub(crate) const SRC_NULL: u8 = u8::MAX;
/// `GVal::src` of a geometry in the derived scratch column.
pub(crate) const SRC_DERIVED: u8 = u8::MAX - 1;
/// `GVal::cursor` of a value that did not come from `cnext`.
pub(crate) const NO_CURSOR: u8 = u8::MAX;

/// A `g` register: which row of which input (or of the derived scratch column) it refers
/// to, and, for a `cnext` candidate, which entries of its cursor named it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct GVal {
    /// Input id, [`SRC_DERIVED`] or [`SRC_NULL`].
    pub src: u8,
    /// Cursor the value came from, or [`NO_CURSOR`].
    pub cursor: u8,
    /// The source row (the id `emit` writes), also for derived geometries.
    pub row: u32,
    /// Derived: the row in the scratch column. Candidate: first cursor entry of this row.
    pub lo: u32,
    /// Candidate: one past its last cursor entry.
    pub hi: u32,
    /// Candidate: the cursor's generation when `cnext` produced it.
    pub gen: u32,
}

impl GVal {
    pub const NULL: GVal = GVal { src: SRC_NULL, cursor: NO_CURSOR, row: 0, lo: 0, hi: 0, gen: 0 };

    #[inline]
    pub fn input(src: u8, row: u32) -> GVal {
        GVal { src, cursor: NO_CURSOR, row, lo: 0, hi: 0, gen: 0 }
    }

    #[inline]
    pub fn is_null(&self) -> bool {
        self.src == SRC_NULL
    }
}

/// A candidate cursor: the `(row, part)` pairs a probe found, sorted so that each row's
/// parts are adjacent and each row is one candidate.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cursor {
    pub entries: Vec<(u32, u32)>,
    pub pos: usize,
    /// The indexed input probed.
    pub input: u8,
    /// Bumped by every probe, so a candidate can tell whether its entries are still these.
    pub gen: u32,
    /// The box the probe queried.
    pub rect: Option<Rect>,
    /// Entries carry the grid's class of the point against the part: `(row, part << 2 |
    /// class)` (see [`pack`]); otherwise `(row, part)`.
    pub classified: bool,
}

/// A part and its [`CellClass`] in one cursor entry word (grids exist only for fewer than
/// 2^30 parts).
#[inline(always)]
pub(crate) fn pack(part: u32, class: CellClass) -> u32 {
    part << 2
        | match class {
            CellClass::Inside => 0,
            CellClass::Outside => 1,
            CellClass::Check => 2,
        }
}

/// The inverse of [`pack`].
#[inline(always)]
pub(crate) fn unpack(word: u32) -> (u32, CellClass) {
    let class = match word & 3 {
        0 => CellClass::Inside,
        1 => CellClass::Outside,
        _ => CellClass::Check,
    };
    (word >> 2, class)
}

/// Chunk-local state of one output.
#[derive(Debug)]
pub(crate) enum Local {
    Dense,
    Geometry { pending: GVal, built: ColumnBuilder },
    Hits(Vec<u64>),
    Count(u64),
    Sum(Option<f64>),
}

impl Local {
    /// Whether this local is the one an output of kind `k` gets.
    pub(crate) fn holds(&self, k: OutputKind) -> bool {
        matches!(
            (self, k),
            (Local::Dense, OutputKind::F64 | OutputKind::Bool)
                | (Local::Geometry { .. }, OutputKind::Geometry)
                | (Local::Hits(_), OutputKind::Hits)
                | (Local::Count(_), OutputKind::Count)
                | (Local::Sum(_), OutputKind::Sum)
        )
    }

    /// Back to a chunk's start, keeping its memory.
    pub(crate) fn reset(&mut self) {
        match self {
            Local::Dense => {}
            Local::Geometry { pending, built } => {
                *pending = GVal::NULL;
                *built = ColumnBuilder::new();
            }
            Local::Hits(batch) => batch.clear(),
            Local::Count(n) => *n = 0,
            Local::Sum(v) => *v = None,
        }
    }
}

/// Hits gathered per output before one atomic reservation.
pub(crate) const HIT_BATCH: usize = 256;

/// One thread's execution state. Create one per worker and pass it to every
/// [`Interpreter::run`](super::Interpreter::run); it grows to what the programs need and
/// keeps that memory.
#[derive(Debug)]
pub struct Scratch {
    pub(crate) f: [f64; 32],
    /// Bit `i` set: `f[i]` is null.
    pub(crate) f_null: u32,
    pub(crate) b: [u8; 32],
    pub(crate) g: [GVal; 16],
    pub(crate) c: [Cursor; 4],
    /// Geometries made by `affine` and `simplify` in the current row.
    pub(crate) derived: ColumnBuilder,
    /// Where a derived geometry of a derived geometry is built before moving to `derived`.
    pub(crate) spare: ColumnBuilder,
    pub(crate) locals: Vec<Local>,
    /// Stop polls made (see `OutputBuffers::stop_requested`).
    pub(crate) polls: u32,
    /// A fused loop saw its job's stop signal and left early: the row must fail.
    pub(crate) stopped: bool,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl Scratch {
    /// Fresh state.
    pub fn new() -> Scratch {
        Scratch {
            f: [0.0; 32],
            f_null: u32::MAX,
            b: [B_NULL; 32],
            g: [GVal::NULL; 16],
            c: Default::default(),
            derived: ColumnBuilder::new(),
            spare: ColumnBuilder::new(),
            locals: Vec::new(),
            polls: 0,
            stopped: false,
        }
    }
}
