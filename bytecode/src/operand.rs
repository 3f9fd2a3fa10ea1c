//! Operands: register files, newtype indices, and the operand kinds named by the op table.
//!
//! Every operand of every op has a *kind* (`DstF`, `SrcG`, `RowIn`, `Jump`, ...). A kind is a
//! zero-sized marker type in [`kind`] implementing [`OperandType`], which fixes three things at
//! once: the Rust type of the decoded field (a newtype index), the runtime description used by
//! the verifier, assembler and disassembler ([`OperandKind`]), and the argument the builder
//! takes for it (a [`Label`](crate::Label) for jumps, an `f64` for constants).

use std::fmt;

use crate::program::OutputKind;

/// One of the typed register files. Each register also carries a null flag (see
/// `docs/bytecode.md`, "Registers and nulls").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegFile {
    /// `f`: f64 values.
    F,
    /// `b`: booleans.
    B,
    /// `g`: geometry references (a row of an input, or a geometry derived from one).
    G,
    /// `c`: candidate cursors over an indexed input.
    C,
}

impl RegFile {
    /// All register files, in encoding order.
    pub const ALL: [RegFile; 4] = [RegFile::F, RegFile::B, RegFile::G, RegFile::C];

    /// How many registers of this file a program may use. Bounded so that a GPU thread's
    /// register state has a fixed, small size.
    pub const fn limit(self) -> u32 {
        match self {
            RegFile::F => 32,
            RegFile::B => 32,
            RegFile::G => 16,
            RegFile::C => 4,
        }
    }

    /// The letter that prefixes this file's registers in assembly (`f0`, `g1`, ...).
    pub const fn prefix(self) -> char {
        match self {
            RegFile::F => 'f',
            RegFile::B => 'b',
            RegFile::G => 'g',
            RegFile::C => 'c',
        }
    }

    /// The file whose assembly prefix is `c`, if any.
    pub fn from_prefix(c: char) -> Option<RegFile> {
        RegFile::ALL.into_iter().find(|f| f.prefix() == c)
    }

    /// The position of this file in [`RegFile::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RegFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.prefix())
    }
}

macro_rules! reg_newtypes {
    ($($(#[$meta:meta])* $name:ident => $file:ident;)*) => {$(
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u8);

        impl $name {
            /// The register file this register belongs to.
            pub const FILE: RegFile = RegFile::$file;
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", RegFile::$file.prefix(), self.0)
            }
        }
    )*};
}

reg_newtypes! {
    /// An `f` (f64) register.
    FReg => F;
    /// A `b` (bool) register.
    BReg => B;
    /// A `g` (geometry) register.
    GReg => G;
    /// A `c` (candidate cursor) register.
    CReg => C;
}

macro_rules! index_newtypes {
    ($($(#[$meta:meta])* $name:ident;)*) => {$(
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            /// The index as a `usize`, for indexing the table it refers to.
            pub const fn index(self) -> usize {
                self.0 as usize
            }
        }
    )*};
}

index_newtypes! {
    /// An index into a program's inputs (its `.input` directives, in order).
    InputId;
    /// An index into a program's outputs (its `.output` directives, in order).
    OutputId;
    /// An index into a program's constant pool.
    ConstId;
    /// An instruction index (a jump target).
    Pc;
}

/// How an instruction uses a register operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// The register is read.
    Read,
    /// The register is written.
    Write,
    /// The register is read and written (a cursor advanced by `cnext`).
    ReadWrite,
}

/// The runtime description of an operand kind: what the verifier checks, what the assembler
/// parses, what the disassembler prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperandKind {
    /// A register of `file`; `width` consecutive registers starting at the named one
    /// (`bbox` writes four).
    Reg {
        /// The register file.
        file: RegFile,
        /// How many consecutive registers the operand covers.
        width: u8,
        /// Read, written, or both.
        access: Access,
    },
    /// An input, named in assembly; `indexed` says whether it must be an `indexed` input
    /// (reached through `probe`) or must not be (read row by row with `load`).
    Input {
        /// Whether the input must be declared `indexed`.
        indexed: bool,
    },
    /// An output of the given kind, named in assembly.
    Output(OutputKind),
    /// One f64 constant-pool entry, written as a literal or a `.const` name.
    Const,
    /// Six consecutive constant-pool entries (a 2×3 affine matrix), written as six literals.
    Matrix,
    /// An instruction index, written as a label.
    Jump,
}

impl OperandKind {
    /// Whether the operand is a register (and so takes one of the register slots a, b, c
    /// before spilling into imm).
    pub const fn is_reg(self) -> bool {
        matches!(self, OperandKind::Reg { .. })
    }

    /// How many comma-separated assembly operands this kind consumes.
    pub const fn syntax_width(self) -> usize {
        match self {
            OperandKind::Matrix => 6,
            _ => 1,
        }
    }

    /// A short description used in the ISA reference and in error messages
    /// (`f`, `f×4`, `indexed-input`, `hits-output`, ...).
    pub fn describe(self) -> String {
        match self {
            OperandKind::Reg { file, width: 1, .. } => format!("{file}"),
            OperandKind::Reg { file, width, .. } => format!("{file}×{width}"),
            OperandKind::Input { indexed: false } => "input".to_owned(),
            OperandKind::Input { indexed: true } => "indexed-input".to_owned(),
            OperandKind::Output(k) => format!("{k}-output"),
            OperandKind::Const => "const".to_owned(),
            OperandKind::Matrix => "const×6".to_owned(),
            OperandKind::Jump => "label".to_owned(),
        }
    }
}

/// What a builder method receives for one operand, before constants are interned and labels
/// resolved. The assembler produces the same values, which is why builder and assembler emit
/// identical bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OperandArg {
    /// An already-encoded field value (register index, input or output id).
    Raw(u32),
    /// A constant to intern into the pool.
    Const(f64),
    /// Six constants to place as one block in the pool.
    Matrix([f64; 6]),
    /// A label to resolve to an instruction index when the program is finished.
    Label(crate::builder::Label),
}

/// Implemented by each operand-kind marker in [`kind`]; ties the kind to its decoded Rust
/// type and its builder argument type.
pub trait OperandType {
    /// The runtime description of this kind.
    const KIND: OperandKind;
    /// The field's type in a decoded [`Instr`](crate::Instr).
    type Value: Copy + fmt::Debug + PartialEq;
    /// What the [`Builder`](crate::Builder) method takes for this operand.
    type Arg;
    /// The field's raw value as stored in the instruction word.
    fn to_raw(value: Self::Value) -> u32;
    /// The field's value from its raw bits. Register fields are at most 8 bits wide; the word
    /// decoder guarantees that before calling this.
    fn from_raw(raw: u32) -> Self::Value;
    /// The builder argument as an [`OperandArg`].
    fn lower(arg: Self::Arg) -> OperandArg;
}

/// Operand-kind markers named by [`for_each_op!`](crate::for_each_op).
pub mod kind {
    use super::*;

    macro_rules! reg_kinds {
        ($($(#[$meta:meta])* $name:ident: $ty:ident, $file:ident, $width:literal, $access:ident;)*) => {$(
            $(#[$meta])*
            #[derive(Debug)]
            pub enum $name {}

            impl OperandType for $name {
                const KIND: OperandKind = OperandKind::Reg {
                    file: RegFile::$file,
                    width: $width,
                    access: Access::$access,
                };
                type Value = $ty;
                type Arg = $ty;
                fn to_raw(value: $ty) -> u32 {
                    u32::from(value.0)
                }
                fn from_raw(raw: u32) -> $ty {
                    // Register fields are 8 bits; the decoder rejects wider values first.
                    $ty(raw as u8)
                }
                fn lower(arg: $ty) -> OperandArg {
                    OperandArg::Raw(u32::from(arg.0))
                }
            }
        )*};
    }

    reg_kinds! {
        /// An `f` register that is written.
        DstF: FReg, F, 1, Write;
        /// Two consecutive `f` registers that are written (`centroid`).
        DstF2: FReg, F, 2, Write;
        /// Four consecutive `f` registers that are written (`bbox`).
        DstF4: FReg, F, 4, Write;
        /// An `f` register that is read.
        SrcF: FReg, F, 1, Read;
        /// A `b` register that is written.
        DstB: BReg, B, 1, Write;
        /// A `b` register that is read.
        SrcB: BReg, B, 1, Read;
        /// A `g` register that is written.
        DstG: GReg, G, 1, Write;
        /// A `g` register that is read.
        SrcG: GReg, G, 1, Read;
        /// A `c` register that is written (a new cursor).
        DstC: CReg, C, 1, Write;
        /// A `c` register that is read and advanced.
        UseC: CReg, C, 1, ReadWrite;
    }

    macro_rules! index_kinds {
        ($($(#[$meta:meta])* $name:ident: $ty:ident = $kind:expr;)*) => {$(
            $(#[$meta])*
            #[derive(Debug)]
            pub enum $name {}

            impl OperandType for $name {
                const KIND: OperandKind = $kind;
                type Value = $ty;
                type Arg = $ty;
                fn to_raw(value: $ty) -> u32 {
                    value.0
                }
                fn from_raw(raw: u32) -> $ty {
                    $ty(raw)
                }
                fn lower(arg: $ty) -> OperandArg {
                    OperandArg::Raw(arg.0)
                }
            }
        )*};
    }

    index_kinds! {
        /// A non-indexed input, read at the current row.
        RowIn: InputId = OperandKind::Input { indexed: false };
        /// An `indexed` input, searched through its spatial index.
        IdxIn: InputId = OperandKind::Input { indexed: true };
        /// An `f64` output.
        OutF64: OutputId = OperandKind::Output(OutputKind::F64);
        /// A `bool` output.
        OutBool: OutputId = OperandKind::Output(OutputKind::Bool);
        /// A `geometry` output.
        OutGeom: OutputId = OperandKind::Output(OutputKind::Geometry);
        /// A `hits` output.
        OutHits: OutputId = OperandKind::Output(OutputKind::Hits);
        /// A `count` output.
        OutCount: OutputId = OperandKind::Output(OutputKind::Count);
        /// A `sum` output.
        OutSum: OutputId = OperandKind::Output(OutputKind::Sum);
    }

    /// One constant-pool entry.
    #[derive(Debug)]
    pub enum Const {}

    impl OperandType for Const {
        const KIND: OperandKind = OperandKind::Const;
        type Value = ConstId;
        type Arg = f64;
        fn to_raw(value: ConstId) -> u32 {
            value.0
        }
        fn from_raw(raw: u32) -> ConstId {
            ConstId(raw)
        }
        fn lower(arg: f64) -> OperandArg {
            OperandArg::Const(arg)
        }
    }

    /// Six consecutive constant-pool entries: an affine matrix `a b d e xoff yoff`.
    #[derive(Debug)]
    pub enum Mat {}

    impl OperandType for Mat {
        const KIND: OperandKind = OperandKind::Matrix;
        type Value = ConstId;
        type Arg = [f64; 6];
        fn to_raw(value: ConstId) -> u32 {
            value.0
        }
        fn from_raw(raw: u32) -> ConstId {
            ConstId(raw)
        }
        fn lower(arg: [f64; 6]) -> OperandArg {
            OperandArg::Matrix(arg)
        }
    }

    /// A jump target.
    #[derive(Debug)]
    pub enum Jump {}

    impl OperandType for Jump {
        const KIND: OperandKind = OperandKind::Jump;
        type Value = Pc;
        type Arg = crate::builder::Label;
        fn to_raw(value: Pc) -> u32 {
            value.0
        }
        fn from_raw(raw: u32) -> Pc {
            Pc(raw)
        }
        fn lower(arg: crate::builder::Label) -> OperandArg {
            OperandArg::Label(arg)
        }
    }
}
