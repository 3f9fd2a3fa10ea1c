//! Building programs in Rust. The assembler is a front end over the same [`Builder`], which
//! is why a program built in code and the equivalent assembly text encode to the same bytes.
//!
//! The constant pool is canonical: entries appear in order of first use, single constants are
//! shared by bit pattern, and each distinct matrix is one block of six. The disassembler
//! prints constants inline, so re-assembling its output rebuilds the same pool.

use std::collections::HashMap;

use crate::opcode::Opcode;
use crate::operand::{kind, InputId, OperandArg, OperandKind, OperandType, OutputId, Pc};
use crate::program::{check_name, InputDecl, InputKind, OutputDecl, OutputKind, Program, SignatureError};
use crate::program::{MAX_CODE, MAX_CONSTS, MAX_INPUTS, MAX_OUTPUTS};
use crate::verify::{verify, VerifiedProgram, VerifyErrors};
use crate::word::{RawInstr, MAX_OPERANDS};

/// A jump target that may be used before it is bound to an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Label(u32);

/// Why a builder could not produce a program.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BuildError {
    /// A declaration broke a signature rule.
    #[error("{0}")]
    Signature(#[from] SignatureError),
    /// A label was used but never bound.
    #[error("label {label:?} is used at pc {first_use} but never bound")]
    UnboundLabel {
        /// The label.
        label: Label,
        /// The first instruction that refers to it.
        first_use: u32,
    },
    /// An argument passed to [`Builder::push`] does not fit its operand: a register index
    /// above 255, or an argument of the wrong form (say a `Raw` value for a constant).
    #[error("pc {pc}, operand {}: {why}", operand + 1)]
    BadArgument {
        /// The instruction.
        pc: u32,
        /// The operand (index in assembly order).
        operand: usize,
        /// What does not fit.
        why: &'static str,
    },
    /// A label was bound twice.
    #[error("label {0:?} is bound twice")]
    LabelBoundTwice(Label),
    /// The program failed verification.
    #[error("{0}")]
    Verify(#[from] VerifyErrors),
}

/// Builds a program instruction by instruction; one method per op, generated from
/// [`for_each_op!`](crate::for_each_op).
///
/// ```
/// use meridian_bytecode::{assemble, Builder, FReg, GReg, InputKind, OutputKind};
///
/// let mut b = Builder::new("measure");
/// let shapes = b.input("shapes", InputKind::Geometry).unwrap();
/// let area = b.output("area", OutputKind::F64).unwrap();
/// b.load(GReg(0), shapes);
/// b.area(FReg(0), GReg(0));
/// b.store_f(area, FReg(0));
/// b.halt();
/// let built = b.finish().unwrap();
///
/// let text = "
/// .program measure
/// .input  shapes geometry
/// .output area   f64
///     load  g0, shapes
///     area  f0, g0
///     store area, f0
///     halt
/// ";
/// assert_eq!(built.program().to_bytes(), assemble("m.masm", text).unwrap().program().to_bytes());
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    name: String,
    inputs: Vec<InputDecl>,
    outputs: Vec<OutputDecl>,
    consts: Vec<f64>,
    const_index: HashMap<u64, u32>,
    matrix_index: HashMap<[u64; 6], u32>,
    code: Vec<RawInstr>,
    labels: Vec<Option<u32>>,
    fixups: Vec<(u32, usize, Label)>,
    errors: Vec<BuildError>,
}

impl Builder {
    /// A builder for a program called `name` (checked when the program is finished).
    pub fn new(name: impl Into<String>) -> Builder {
        Builder {
            name: name.into(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            consts: Vec::new(),
            const_index: HashMap::new(),
            matrix_index: HashMap::new(),
            code: Vec::new(),
            labels: Vec::new(),
            fixups: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Declares the next input. The first input is the row source.
    pub fn input(&mut self, name: &str, kind: InputKind) -> Result<InputId, SignatureError> {
        self.declare_input(name, kind, false)
    }

    /// Declares the next input as `indexed` (reached through `probe`).
    pub fn indexed_input(&mut self, name: &str, kind: InputKind) -> Result<InputId, SignatureError> {
        self.declare_input(name, kind, true)
    }

    fn declare_input(
        &mut self,
        name: &str,
        kind: InputKind,
        indexed: bool,
    ) -> Result<InputId, SignatureError> {
        self.check_new_name("input", name, self.inputs.len(), MAX_INPUTS, "inputs")?;
        self.inputs.push(InputDecl { name: name.to_owned(), kind, indexed });
        Ok(InputId(self.inputs.len() as u32 - 1))
    }

    /// Declares the next output.
    pub fn output(&mut self, name: &str, kind: OutputKind) -> Result<OutputId, SignatureError> {
        self.check_new_name("output", name, self.outputs.len(), MAX_OUTPUTS, "outputs")?;
        self.outputs.push(OutputDecl { name: name.to_owned(), kind });
        Ok(OutputId(self.outputs.len() as u32 - 1))
    }

    fn check_new_name(
        &self,
        what: &'static str,
        name: &str,
        count: usize,
        max: usize,
        plural: &'static str,
    ) -> Result<(), SignatureError> {
        check_name(what, name)?;
        if self.inputs.iter().any(|d| d.name == name) || self.outputs.iter().any(|d| d.name == name) {
            return Err(SignatureError::DuplicateName(name.to_owned()));
        }
        if count >= max {
            return Err(SignatureError::TooMany { what: plural, count: count + 1, max });
        }
        Ok(())
    }

    /// The inputs declared so far.
    pub fn inputs(&self) -> &[InputDecl] {
        &self.inputs
    }

    /// The outputs declared so far.
    pub fn outputs(&self) -> &[OutputDecl] {
        &self.outputs
    }

    /// A new, unbound label.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() as u32 - 1)
    }

    /// Binds `label` to the next instruction.
    pub fn bind(&mut self, label: Label) {
        match self.labels.get_mut(label.0 as usize) {
            Some(slot @ None) => *slot = Some(self.code.len() as u32),
            _ => self.errors.push(BuildError::LabelBoundTwice(label)),
        }
    }

    /// The index the next instruction will have.
    pub fn next_pc(&self) -> Pc {
        Pc(self.code.len() as u32)
    }

    /// Appends an instruction from its opcode and operand arguments (in assembly order);
    /// returns its pc. The typed methods and the assembler both come through here.
    ///
    /// The arguments must match the opcode's operand kinds: [`OperandArg::Const`] for a
    /// constant, [`OperandArg::Matrix`] for a matrix, [`OperandArg::Label`] for a jump and
    /// [`OperandArg::Raw`] for the rest, with register indices below 256. Anything else, and
    /// a wrong number of arguments, is reported by [`Builder::finish`] as
    /// [`BuildError::BadArgument`].
    pub fn push(&mut self, opcode: Opcode, args: &[OperandArg]) -> Pc {
        let pc = self.code.len() as u32;
        let mut values = [0u32; MAX_OPERANDS];
        let kinds = opcode.operands();
        if args.len() != kinds.len() {
            let operand = args.len().min(kinds.len());
            self.errors.push(BuildError::BadArgument {
                pc,
                operand,
                why: "wrong number of arguments for the op",
            });
        }
        for (i, (kind, arg)) in kinds.iter().zip(args).enumerate() {
            values[i] = match (kind, *arg) {
                (OperandKind::Const, OperandArg::Const(v)) => self.intern(v),
                (OperandKind::Matrix, OperandArg::Matrix(m)) => self.intern_matrix(m),
                (OperandKind::Jump, OperandArg::Label(label)) => {
                    self.fixups.push((pc, i, label));
                    0
                }
                (OperandKind::Reg { .. }, OperandArg::Raw(v)) if v > 0xff => {
                    self.errors.push(BuildError::BadArgument {
                        pc,
                        operand: i,
                        why: "register index above 255",
                    });
                    0
                }
                (
                    OperandKind::Reg { .. } | OperandKind::Input { .. } | OperandKind::Output(_),
                    OperandArg::Raw(v),
                ) => v,
                _ => {
                    self.errors.push(BuildError::BadArgument {
                        pc,
                        operand: i,
                        why: "argument of the wrong form",
                    });
                    0
                }
            };
        }
        self.code.push(RawInstr { opcode, operands: values });
        Pc(pc)
    }

    /// The pool index of `value`, adding it on first use.
    fn intern(&mut self, value: f64) -> u32 {
        let value = canonical(value);
        if let Some(&i) = self.const_index.get(&value.to_bits()) {
            return i;
        }
        let i = self.consts.len() as u32;
        self.consts.push(value);
        self.const_index.insert(value.to_bits(), i);
        i
    }

    /// The pool index of the first entry of `matrix`, adding the block on first use.
    fn intern_matrix(&mut self, matrix: [f64; 6]) -> u32 {
        let matrix = matrix.map(canonical);
        let key = matrix.map(f64::to_bits);
        if let Some(&i) = self.matrix_index.get(&key) {
            return i;
        }
        let i = self.consts.len() as u32;
        self.consts.extend_from_slice(&matrix);
        self.matrix_index.insert(key, i);
        i
    }

    /// Resolves labels and returns the program without verifying it.
    pub fn finish_unverified(self) -> Result<Program, BuildError> {
        let Builder { name, inputs, outputs, consts, mut code, labels, fixups, mut errors, .. } = self;
        for &(pc, operand, label) in &fixups {
            match labels.get(label.0 as usize).copied().flatten() {
                Some(target) => code[pc as usize].operands[operand] = target,
                None if !errors
                    .iter()
                    .any(|e| matches!(e, BuildError::UnboundLabel { label: l, .. } if *l == label)) =>
                {
                    errors.push(BuildError::UnboundLabel { label, first_use: pc });
                }
                None => {}
            }
        }
        if let Some(e) = errors.into_iter().next() {
            return Err(e);
        }
        if consts.len() > MAX_CONSTS || code.len() > MAX_CODE {
            let (what, count, max) = if code.len() > MAX_CODE {
                ("instructions", code.len(), MAX_CODE)
            } else {
                ("constants", consts.len(), MAX_CONSTS)
            };
            return Err(SignatureError::TooMany { what, count, max }.into());
        }
        let words = code.iter().map(RawInstr::encode).collect();
        Ok(Program::new(name, inputs, outputs, consts, words)?)
    }

    /// Resolves labels, builds the program and verifies it.
    pub fn finish(self) -> Result<VerifiedProgram, BuildError> {
        let program = self.finish_unverified()?;
        Ok(verify(&program)?)
    }
}

/// Every NaN becomes the canonical one, the only NaN the pool and the assembly text know.
fn canonical(v: f64) -> f64 {
    if v.is_nan() {
        f64::from_bits(crate::program::CANONICAL_NAN_BITS)
    } else {
        v
    }
}

macro_rules! define_builder_methods {
    ($( $(#[doc = $doc:literal])* $name:ident = $code:literal, $method:ident, $mn:literal
        { $($field:ident : $kind:ident),* } ; )*) => {
        /// One method per op, in table order; each appends the instruction and returns its pc.
        impl Builder {
            $(
                $(#[doc = $doc])*
                pub fn $method(&mut self $(, $field: <kind::$kind as OperandType>::Arg)*) -> Pc {
                    self.push(Opcode::$name, &[$(<kind::$kind as OperandType>::lower($field)),*])
                }
            )*
        }
    };
}

crate::for_each_op!(define_builder_methods);
