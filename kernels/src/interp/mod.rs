//! The CPU interpreter: runs a verified program over a row range of bound inputs.
//!
//! The program is decoded once into a `Box<[Instr]>` ([`Interpreter::new`]); the row loop is
//! a `match` over that slice with registers in fixed arrays indexed by masked register
//! numbers (the verifier guarantees they are in range, the mask lets the compiler drop the
//! bounds checks without `unsafe`). Nothing allocates per row once a [`Scratch`] has warmed
//! up, except `affine` and `simplify`, which build new geometries.
//!
//! Candidate loops remember which parts of each candidate row the probe found, so
//! `contains`/`within`/`covers`/... of a point against a polygon candidate read only the
//! edge slabs of those parts — the same work as calling
//! [`SpatialIndex::containing`](crate::index::SpatialIndex::containing)
//! directly; for point probes they also carry the cell grid's class of the point against
//! each part, so most need no edge test at all. The `probe; cnext; <predicate>; jf; emit;
//! jmp` filter loop — with its branches spelled any equivalent way (`jt`/`jmp`, jumps through
//! jumps) — is recognised once per program and run as one step after its `probe`,
//! with the same register writes and emits as the instructions; when the probe is a point
//! and the index has a cell grid, that step walks the point's grid cell directly instead of
//! filling and sorting the cursor. A program that is nothing but `load` and such a loop (the
//! point join) runs a chunk's rows as one loop with the per-chunk work hoisted out, which is
//! what brings it within about 1.1× of calling the index from Rust. Every fast path gives
//! exactly the answer of the general [`crate::algo`] function it stands in for, and the
//! tests hold each against the same loop written so that nothing recognises it.
//!
//! ```
//! use std::sync::Arc;
//! use meridian_bytecode::{assemble, verify};
//! use meridian_kernels::column::ColumnBuilder;
//! use meridian_kernels::interp::{BoundInputs, Input, Interpreter, OutputColumn, Scratch};
//!
//! let program = assemble("pip.masm", "
//! .program pip
//! .input  pts    points
//! .input  zones  polygons indexed
//! .output pairs  hits
//!     load     g0, pts
//!     probe    c0, zones, g0
//! next:
//!     cnext    g1, c0, done
//!     contains b0, g1, g0
//!     jf       b0, next
//!     emit     pairs, g1
//!     jmp      next
//! done:
//!     halt
//! ")?;
//! let mut pts = ColumnBuilder::new();
//! pts.push_point(1.0, 1.0)?;
//! pts.push_point(9.0, 9.0)?;
//! let mut zones = ColumnBuilder::new();
//! zones.push_polygon(&[&[(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0), (0.0, 0.0)]])?;
//! let inputs = BoundInputs::bind(
//!     program.program(),
//!     vec![Input::rows(Arc::new(pts.finish())), Input::indexed(Arc::new(zones.finish()))],
//! )?;
//! let interp = Interpreter::new(&program);
//! let out = interp.output_buffers(0..2, 16);
//! interp.run(&inputs, 0..2, &out, &mut Scratch::new())?;
//! assert_eq!(out.finish()?, vec![OutputColumn::Hits(vec![(0, 0)])]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bind;
pub(crate) mod exec;
pub(crate) mod frame;
pub(crate) mod fuse;
mod outputs;
mod stop;

use std::ops::Range;

use meridian_bytecode::{Instr, OutputKind, ProgramHash, RegFile, VerifiedProgram};

pub use bind::{BindError, BoundInputs, Input};
pub use frame::Scratch;
pub use outputs::{
    hits_from_runs, BoolColumn, F64Column, FinishError, HitOverflow, OutputBuffers, OutputColumn,
};
pub use stop::{Stop, StopReason};

/// A verified program decoded for the CPU. Cheap to share (`Sync`); build once per program.
#[derive(Clone, Debug)]
pub struct Interpreter {
    pub(crate) code: Box<[Instr]>,
    /// Per pc: the candidate filter loop whose `probe` is there ([`fuse`]).
    pub(crate) loops: Box<[Option<fuse::FilterLoop>]>,
    /// Set when the whole program is one point join ([`fuse::PointJoin`]).
    join: Option<fuse::PointJoin>,
    pub(crate) consts: Box<[f64]>,
    /// Registers used in the `b`, `g` and `c` files (what a row must reset).
    used_b: usize,
    pub(crate) used_g: usize,
    pub(crate) used_c: usize,
    outputs: Box<[OutputKind]>,
    inputs: usize,
    pub(crate) has_geometry_outputs: bool,
    /// Whether a row may derive geometries (`affine`, `simplify`) that must be dropped.
    #[cfg_attr(not(feature = "jit"), allow(dead_code))]
    pub(crate) derives: bool,
    hash: ProgramHash,
}

/// A failure while running rows: where it happened and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location(*.row, *.pc))]
pub struct ExecError {
    /// The row being run, when the failure is tied to one.
    pub row: Option<usize>,
    /// The instruction, when the failure is tied to one.
    pub pc: Option<u32>,
    /// What went wrong.
    pub message: String,
}

fn location(row: Option<usize>, pc: Option<u32>) -> String {
    match (row, pc) {
        (Some(r), Some(p)) => format!("row {r}, pc {p}: "),
        (Some(r), None) => format!("row {r}: "),
        (None, Some(p)) => format!("pc {p}: "),
        (None, None) => String::new(),
    }
}

impl ExecError {
    fn setup(message: impl Into<String>) -> ExecError {
        ExecError { row: None, pc: None, message: message.into() }
    }
}

impl Interpreter {
    /// Decodes `program` once.
    pub fn new(program: &VerifiedProgram) -> Interpreter {
        let p = program.program();
        let outputs: Box<[OutputKind]> = p.outputs().iter().map(|o| o.kind).collect();
        let code: Box<[Instr]> = program.instrs().collect();
        let loops = fuse::find(&code);
        Interpreter {
            join: fuse::point_join(&code, &loops),
            derives: code.iter().any(|i| matches!(i, Instr::Affine { .. } | Instr::Simplify { .. })),
            loops,
            code,
            consts: p.consts().into(),
            used_b: program.regs().get(RegFile::B),
            used_g: program.regs().get(RegFile::G),
            used_c: program.regs().get(RegFile::C),
            has_geometry_outputs: outputs.contains(&OutputKind::Geometry),
            outputs,
            inputs: p.inputs().len(),
            hash: program.hash(),
        }
    }

    /// The program's content hash.
    pub fn hash(&self) -> ProgramHash {
        self.hash
    }

    /// The kinds of the program's outputs, in order.
    pub fn outputs(&self) -> &[OutputKind] {
        &self.outputs
    }

    /// Output buffers for a job over `rows` with `hit_capacity` hits per hits output.
    pub fn output_buffers(&self, rows: Range<usize>, hit_capacity: usize) -> OutputBuffers {
        OutputBuffers::new(&self.outputs, rows, hit_capacity)
    }

    /// Runs rows `rows` of the row source, writing into `out` (whose row range must hold
    /// `rows`). Several threads may run disjoint row ranges into the same `out` at once,
    /// each with its own `scratch`.
    pub fn run(
        &self,
        inputs: &BoundInputs,
        rows: Range<usize>,
        out: &OutputBuffers,
        scratch: &mut Scratch,
    ) -> Result<(), ExecError> {
        self.check_run(inputs, &rows, out)?;
        exec::run_chunk(self, inputs, rows, out, scratch)
    }

    /// What [`Interpreter::run`] checks before running rows (also for compiled code).
    pub(crate) fn check_run(
        &self,
        inputs: &BoundInputs,
        rows: &Range<usize>,
        out: &OutputBuffers,
    ) -> Result<(), ExecError> {
        if inputs.inputs.len() != self.inputs {
            return Err(ExecError::setup(format!(
                "{} inputs bound, the program has {}",
                inputs.inputs.len(),
                self.inputs
            )));
        }
        if out.buffers.len() != self.outputs.len() {
            return Err(ExecError::setup("output buffers were made for another program"));
        }
        let job = out.rows();
        if rows.start > rows.end || rows.start < job.start || rows.end > job.end || rows.end > inputs.rows() {
            return Err(ExecError::setup(format!(
                "rows {rows:?} are outside the job's rows {job:?} or the row source's {} rows",
                inputs.rows()
            )));
        }
        Ok(())
    }
}
