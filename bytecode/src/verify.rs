//! The verifier: the only way to a [`VerifiedProgram`], and so the only way to the unchecked
//! decoder that executors use.
//!
//! A verified program cannot read out of bounds (every register, input, output, constant and
//! jump target is in range, every register file within its limit) and cannot hang: control
//! moves forward except for back edges to the `cnext` of an enclosing candidate loop, loops
//! nest, and no loop re-opens the cursor that drives it, so each loop runs at most once per
//! candidate. The rules are written out in `docs/bytecode.md`, "The verifier".

use std::fmt;
use std::sync::Arc;

use crate::instr::Instr;
use crate::opcode::Opcode;
use crate::operand::{Access, OperandKind, RegFile};
use crate::program::{OutputKind, Program, ProgramHash};
use crate::word::{InstrError, RawInstr};

/// How many registers of each file a verified program uses (highest index written or read,
/// plus one), so that executors can size register state exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RegCounts([u16; 4]);

impl RegCounts {
    /// Registers used in `file`.
    pub fn get(&self, file: RegFile) -> usize {
        usize::from(self.0[file.index()])
    }

    fn note(&mut self, file: RegFile, end: u32) {
        let slot = &mut self.0[file.index()];
        // `end` is at most a file limit (≤ 32) when this is called.
        *slot = (*slot).max(end as u16);
    }
}

/// A program the verifier accepted. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct VerifiedProgram {
    inner: Arc<Verified>,
}

#[derive(Debug)]
struct Verified {
    program: Program,
    regs: RegCounts,
}

impl VerifiedProgram {
    /// The program.
    pub fn program(&self) -> &Program {
        &self.inner.program
    }

    /// The content hash.
    pub fn hash(&self) -> ProgramHash {
        self.inner.program.hash()
    }

    /// Registers used per file.
    pub fn regs(&self) -> RegCounts {
        self.inner.regs
    }

    /// The instructions, decoded by the unchecked fast path (sound because the program is
    /// verified and immutable).
    pub fn instrs(&self) -> impl ExactSizeIterator<Item = Instr> + '_ {
        self.inner.program.code().iter().map(|&word| {
            // SAFETY: every word of a VerifiedProgram passed `RawInstr::decode` in `verify`,
            // and the program cannot be changed afterwards (it is behind an Arc with no
            // mutable access).
            unsafe { Instr::decode_unchecked(word) }
        })
    }
}

impl PartialEq for VerifiedProgram {
    fn eq(&self, other: &VerifiedProgram) -> bool {
        self.inner.program == other.inner.program
    }
}

/// One reason a program failed verification.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyError {
    /// The instruction at fault, if the problem belongs to one.
    pub pc: Option<u32>,
    /// The operand at fault (index in assembly order), if the problem belongs to one.
    pub operand: Option<u8>,
    /// What is wrong.
    pub kind: VerifyErrorKind,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.pc, self.operand) {
            (Some(pc), Some(op)) => write!(f, "pc {pc}, operand {}: {}", op + 1, self.kind),
            (Some(pc), None) => write!(f, "pc {pc}: {}", self.kind),
            _ => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for VerifyError {}

/// The kinds of [`VerifyError`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum VerifyErrorKind {
    /// The program has no instructions.
    #[error("the program has no instructions")]
    EmptyCode,
    /// The program declares no input, so there are no rows to run over.
    #[error("the program declares no input (the first input is the row source)")]
    NoInputs,
    /// The first input, the row source, is `indexed`.
    #[error("the first input `{name}` is the row source and cannot be `indexed`")]
    RowSourceIndexed {
        /// The input's name.
        name: String,
    },
    /// A word does not decode.
    #[error("{0}")]
    BadInstruction(InstrError),
    /// A register (or the last of a run of registers) is past its file's limit.
    #[error("register {file}{index}{} is out of range (the {file} file has {} registers)",
        if *width > 1 { format!("..{file}{}", u64::from(*index) + u64::from(*width) - 1) } else { String::new() }, file.limit())]
    RegisterOutOfRange {
        /// The file.
        file: RegFile,
        /// The first register named.
        index: u32,
        /// How many consecutive registers the operand covers.
        width: u8,
    },
    /// An input id is past the declared inputs.
    #[error("input #{id} does not exist (the program declares {count})")]
    InputOutOfRange {
        /// The id.
        id: u32,
        /// Declared inputs.
        count: usize,
    },
    /// `load` names an indexed input, or `probe` a non-indexed one.
    #[error("`{mnemonic}` needs {} input, but `{name}` is {}", if *indexed { "an indexed" } else { "a non-indexed" },
        if *indexed { "not indexed" } else { "indexed (reach it with `probe`)" })]
    InputIndexing {
        /// The op.
        mnemonic: &'static str,
        /// The input's name.
        name: String,
        /// Whether the op needs an indexed input.
        indexed: bool,
    },
    /// An output id is past the declared outputs.
    #[error("output #{id} does not exist (the program declares {count})")]
    OutputOutOfRange {
        /// The id.
        id: u32,
        /// Declared outputs.
        count: usize,
    },
    /// An op writes an output of another kind.
    #[error("`{mnemonic}` writes a {needed} output, but `{name}` is declared {declared}")]
    OutputKindMismatch {
        /// The op.
        mnemonic: &'static str,
        /// The output's name.
        name: String,
        /// Its declared kind.
        declared: OutputKind,
        /// The kind the op writes.
        needed: OutputKind,
    },
    /// A constant (or the end of a six-constant matrix) is past the pool.
    #[error("constant #{index}{} is out of range (the pool holds {count})",
        if *width > 1 { format!("..#{}", u64::from(*index) + u64::from(*width) - 1) } else { String::new() })]
    ConstOutOfRange {
        /// The first pool index.
        index: u32,
        /// How many entries the operand covers.
        width: u32,
        /// The pool size.
        count: usize,
    },
    /// A jump target is past the end of the code.
    #[error("jump target {target} is past the end of the code ({len} instructions)")]
    JumpOutOfRange {
        /// The target.
        target: u32,
        /// Code length.
        len: usize,
    },
    /// A jump goes backward to something other than the head of a loop it is inside.
    #[error("backward jump to pc {target}: only a jump back to the `cnext` of an enclosing candidate loop may go backward")]
    BackwardJump {
        /// The target.
        target: u32,
    },
    /// A `cnext`'s exit target is not after it.
    #[error("`cnext` must exit forward, past its loop body, but its exit is pc {target}")]
    LoopExitNotForward {
        /// The exit target.
        target: u32,
    },
    /// Two candidate loops overlap without nesting.
    #[error("this candidate loop (pcs {head}..{exit}) overlaps the loop at pcs {outer_head}..{outer_exit} without nesting inside it")]
    LoopsOverlap {
        /// This loop's `cnext`.
        head: u32,
        /// This loop's exit.
        exit: u32,
        /// The other loop's `cnext`.
        outer_head: u32,
        /// The other loop's exit.
        outer_exit: u32,
    },
    /// A cursor is re-opened inside the loop it drives, so the loop might never end.
    #[error("`c{cursor}` is re-opened inside the candidate loop at pc {head} that it drives, so the loop might never end")]
    CursorReopened {
        /// The cursor register.
        cursor: u8,
        /// The loop's `cnext`.
        head: u32,
    },
    /// Execution can run past the last instruction.
    #[error("control can run past the last instruction; end every path with `halt`")]
    FallsOffEnd,
    /// A declared output is written by no instruction.
    #[error("output `{name}` is never written")]
    OutputNeverWritten {
        /// The output's index.
        id: u32,
        /// Its name.
        name: String,
    },
}

/// Every reason a program failed verification, in program order.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyErrors(pub Vec<VerifyError>);

impl fmt::Display for VerifyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for VerifyErrors {}

/// What an op does to control flow. Every op is listed, so a new op must be classified here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Continues to the next instruction.
    Next,
    /// Ends the row.
    Stop,
    /// Always jumps to its target.
    Goto,
    /// Jumps to its target or continues.
    Branch,
}

impl Opcode {
    /// What this op does to control flow.
    pub const fn flow(self) -> Flow {
        use Opcode::*;
        match self {
            Halt => Flow::Stop,
            Jmp => Flow::Goto,
            Jt | Jf | CNext => Flow::Branch,
            Load | Const | MovF | MovB | MovG | SelectF | SelectB | SelectG | Add | Sub | Mul | Div | Min
            | Max | Abs | Neg | Sqrt | Lt | Le | Gt | Ge | Eq | Ne | And | Or | Not | IsNullF | Area
            | Length | Bbox | Centroid | NPoints | IsEmpty | IsNullG | X | Y | Intersects | Contains
            | Within | Covers | CoveredBy | Touches | Disjoint | DWithin | Distance | Affine | Simplify
            | Probe | ProbeDist | StoreF | StoreB | StoreG | Emit | Count | Sum => Flow::Next,
        }
    }
}

#[derive(Clone, Copy)]
struct Loop {
    head: u32,
    exit: u32,
    cursor: u8,
}

/// Verifies a program, reporting every problem found (not just the first).
///
/// ```
/// let p = meridian_bytecode::assemble("t.masm", "
/// .program t
/// .input  pts points
/// .output n   count
///     count n
///     halt
/// ").unwrap();
/// let again = meridian_bytecode::verify(p.program()).unwrap();
/// assert_eq!(again.hash(), p.hash());
/// ```
pub fn verify(program: &Program) -> Result<VerifiedProgram, VerifyErrors> {
    let mut v = Verifier { program, errors: Vec::new(), regs: RegCounts::default() };
    v.check_signature();
    let decoded = v.check_operands();
    if !program.code().is_empty() {
        v.check_flow(&decoded);
    }
    let mut errors = v.errors;
    if errors.is_empty() {
        return Ok(VerifiedProgram { inner: Arc::new(Verified { program: program.clone(), regs: v.regs }) });
    }
    errors.sort_by_key(|e| (e.pc.map_or(u64::MAX, u64::from), e.operand));
    Err(VerifyErrors(errors))
}

struct Verifier<'p> {
    program: &'p Program,
    errors: Vec<VerifyError>,
    regs: RegCounts,
}

impl Verifier<'_> {
    fn error(&mut self, pc: Option<u32>, operand: Option<u8>, kind: VerifyErrorKind) {
        self.errors.push(VerifyError { pc, operand, kind });
    }

    fn check_signature(&mut self) {
        match self.program.inputs().first() {
            None => self.error(None, None, VerifyErrorKind::NoInputs),
            Some(first) if first.indexed => {
                self.error(None, None, VerifyErrorKind::RowSourceIndexed { name: first.name.clone() })
            }
            Some(_) => {}
        }
        if self.program.code().is_empty() {
            self.error(None, None, VerifyErrorKind::EmptyCode);
        }
    }

    /// Decodes every word and checks every operand against the signature, the pool and the
    /// register limits. Returns the decoded instructions (`None` where a word is bad).
    fn check_operands(&mut self) -> Vec<Option<RawInstr>> {
        let p = self.program;
        let len = p.code().len();
        let mut written = vec![false; p.outputs().len()];
        let mut decoded = Vec::with_capacity(len);
        for (pc, &word) in p.code().iter().enumerate() {
            // Code length is bounded by MAX_CODE, which fits in u32.
            let pc = pc as u32;
            let raw = match RawInstr::decode(word) {
                Ok(raw) => raw,
                Err(e) => {
                    self.error(Some(pc), None, VerifyErrorKind::BadInstruction(e));
                    decoded.push(None);
                    continue;
                }
            };
            let mnemonic = raw.opcode.mnemonic();
            for (i, (kind, _, value)) in raw.fields().enumerate() {
                let problem = match kind {
                    OperandKind::Reg { file, width, .. } => {
                        if value + u32::from(width) > file.limit() {
                            Some(VerifyErrorKind::RegisterOutOfRange { file, index: value, width })
                        } else {
                            self.regs.note(file, value + u32::from(width));
                            None
                        }
                    }
                    OperandKind::Input { indexed } => match p.inputs().get(value as usize) {
                        None => Some(VerifyErrorKind::InputOutOfRange { id: value, count: p.inputs().len() }),
                        Some(d) if d.indexed != indexed => {
                            Some(VerifyErrorKind::InputIndexing { mnemonic, name: d.name.clone(), indexed })
                        }
                        Some(_) => None,
                    },
                    OperandKind::Output(needed) => match p.outputs().get(value as usize) {
                        None => {
                            Some(VerifyErrorKind::OutputOutOfRange { id: value, count: p.outputs().len() })
                        }
                        Some(d) => {
                            // A write of the wrong kind still counts as a write: the mismatch
                            // is the error to report, not "never written".
                            written[value as usize] = true;
                            (d.kind != needed).then(|| VerifyErrorKind::OutputKindMismatch {
                                mnemonic,
                                name: d.name.clone(),
                                declared: d.kind,
                                needed,
                            })
                        }
                    },
                    OperandKind::Const | OperandKind::Matrix => {
                        let width = kind.syntax_width() as u32;
                        if u64::from(value) + u64::from(width) > p.consts().len() as u64 {
                            Some(VerifyErrorKind::ConstOutOfRange {
                                index: value,
                                width,
                                count: p.consts().len(),
                            })
                        } else {
                            None
                        }
                    }
                    OperandKind::Jump => (value as usize >= len)
                        .then_some(VerifyErrorKind::JumpOutOfRange { target: value, len }),
                };
                if let Some(kind) = problem {
                    // At most MAX_OPERANDS (4) operands.
                    self.error(Some(pc), Some(i as u8), kind);
                }
            }
            decoded.push(Some(raw));
        }
        for (id, (decl, written)) in p.outputs().iter().zip(written).enumerate() {
            if !written {
                let kind = VerifyErrorKind::OutputNeverWritten { id: id as u32, name: decl.name.clone() };
                self.error(None, None, kind);
            }
        }
        decoded
    }

    /// Checks that every path ends in `halt` and that every cycle is a bounded candidate loop.
    fn check_flow(&mut self, code: &[Option<RawInstr>]) {
        let len = code.len();
        let jump_target = |raw: &RawInstr| {
            raw.fields()
                .find(|(k, _, _)| *k == OperandKind::Jump)
                .map(|(_, _, v)| v)
                .filter(|&t| (t as usize) < len)
        };

        // Candidate loops: a `cnext` at `head` whose exit is forward spans [head, exit).
        let mut loops: Vec<Loop> = Vec::new();
        let mut loop_at: Vec<Option<usize>> = vec![None; len];
        for (pc, raw) in code.iter().enumerate() {
            let Some(raw) = raw else { continue };
            let pc = pc as u32;
            if raw.opcode.flow() != Flow::Stop && raw.opcode.flow() != Flow::Goto && pc as usize + 1 == len {
                self.error(Some(pc), None, VerifyErrorKind::FallsOffEnd);
            }
            if raw.opcode != Opcode::CNext {
                continue;
            }
            let Some(exit) = jump_target(raw) else { continue };
            if exit <= pc {
                self.error(Some(pc), Some(2), VerifyErrorKind::LoopExitNotForward { target: exit });
                continue;
            }
            // The cursor is CNext's second operand; register fields are 8 bits wide.
            let cursor = raw.operands[1] as u8;
            loop_at[pc as usize] = Some(loops.len());
            loops.push(Loop { head: pc, exit, cursor });
        }

        // Backward jumps must be back edges from inside a loop to its head.
        for (pc, raw) in code.iter().enumerate() {
            let Some(raw) = raw else { continue };
            if raw.opcode == Opcode::CNext {
                continue;
            }
            let Some(target) = jump_target(raw) else { continue };
            let pc = pc as u32;
            if target > pc {
                continue;
            }
            let inside =
                loop_at[target as usize].map(|i| loops[i]).is_some_and(|l| pc > l.head && pc < l.exit);
            if !inside {
                let operand = raw.fields().position(|(k, _, _)| k == OperandKind::Jump).map(|i| i as u8);
                self.error(Some(pc), operand, VerifyErrorKind::BackwardJump { target });
            }
        }

        // Loops must nest: walk them in head order with a stack of the enclosing ones.
        let mut open: Vec<Loop> = Vec::new();
        for l in &loops {
            while open.last().is_some_and(|o| o.exit <= l.head) {
                open.pop();
            }
            match open.last() {
                Some(outer) if l.exit > outer.exit => self.error(
                    Some(l.head),
                    None,
                    VerifyErrorKind::LoopsOverlap {
                        head: l.head,
                        exit: l.exit,
                        outer_head: outer.head,
                        outer_exit: outer.exit,
                    },
                ),
                _ => open.push(*l),
            }
        }

        // No loop may re-open its own cursor: prefix counts of cursor writes, per cursor.
        let files = RegFile::C.limit() as usize;
        let mut writes = vec![vec![0u32; len + 1]; files];
        for (pc, raw) in code.iter().enumerate() {
            for (c, counts) in writes.iter_mut().enumerate() {
                let hit = raw.is_some_and(|raw| {
                    raw.fields().any(|(k, _, v)| {
                        matches!(k, OperandKind::Reg { file: RegFile::C, access: Access::Write, .. })
                            && v as usize == c
                    })
                });
                counts[pc + 1] = counts[pc] + u32::from(hit);
            }
        }
        for l in &loops {
            let Some(counts) = writes.get(usize::from(l.cursor)) else { continue };
            let (from, to) = (l.head as usize + 1, l.exit as usize);
            if counts[to] > counts[from] {
                let at = (from..to).find(|&pc| counts[pc + 1] > counts[pc]).unwrap_or(from);
                self.error(
                    Some(at as u32),
                    None,
                    VerifyErrorKind::CursorReopened { cursor: l.cursor, head: l.head },
                );
            }
        }
    }
}
