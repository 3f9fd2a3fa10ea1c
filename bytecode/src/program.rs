//! The program: a signature (name, inputs, outputs), a constant pool, code words, and the
//! content hash that keys the autotune store and the JIT cache.
//!
//! A [`Program`] may hold any code words; only [`verify`](crate::verify) turns it into a
//! [`VerifiedProgram`](crate::VerifiedProgram) that executors accept. Its signature, though, is
//! always valid: the constructor checks names, limits and constants, so every `Program` can be
//! encoded.

use std::fmt;

/// The most inputs a program may declare.
pub const MAX_INPUTS: usize = 16;
/// The most outputs a program may declare.
pub const MAX_OUTPUTS: usize = 64;
/// The most constant-pool entries a program may hold.
pub const MAX_CONSTS: usize = 1 << 16;
/// The most instructions a program may hold.
pub const MAX_CODE: usize = 1 << 16;
/// The longest name (program, input, output, label, constant), in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// What geometry an input must hold. Checked when columns are bound, not by the verifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum InputKind {
    /// Points only.
    Points = 1,
    /// Polygons and multipolygons.
    Polygons = 2,
    /// Linestrings and multilinestrings.
    Lines = 3,
    /// Any family, mixed.
    Geometry = 4,
}

/// What an output collects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OutputKind {
    /// One f64 (or null) per row, written by `store` from an `f` register.
    F64 = 1,
    /// One bool (or null) per row, written by `store` from a `b` register.
    Bool = 2,
    /// One geometry (or null) per row, written by `store` from a `g` register.
    Geometry = 3,
    /// Sparse `(row, id)` pairs, appended by `emit`.
    Hits = 4,
    /// One integer for the whole job, incremented by `count`.
    Count = 5,
    /// One f64 for the whole job, accumulated by `sum`.
    Sum = 6,
}

macro_rules! keyword_enum {
    ($ty:ident { $($variant:ident = $word:literal),* $(,)? }) => {
        impl $ty {
            /// Every value, in encoding order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),*];

            /// The assembly keyword.
            pub const fn keyword(self) -> &'static str {
                match self { $($ty::$variant => $word),* }
            }

            /// The value named by an assembly keyword.
            pub fn from_keyword(word: &str) -> Option<$ty> {
                match word { $($word => Some($ty::$variant),)* _ => None }
            }

            /// The value with encoded byte `byte`.
            pub fn from_u8(byte: u8) -> Option<$ty> {
                $ty::ALL.iter().copied().find(|k| *k as u8 == byte)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.keyword())
            }
        }
    };
}

keyword_enum!(InputKind { Points = "points", Polygons = "polygons", Lines = "lines", Geometry = "geometry" });
keyword_enum!(OutputKind { F64 = "f64", Bool = "bool", Geometry = "geometry", Hits = "hits", Count = "count", Sum = "sum" });

impl OutputKind {
    /// Whether the output holds one value per row (as opposed to hits or a reduction).
    pub const fn is_dense(self) -> bool {
        matches!(self, OutputKind::F64 | OutputKind::Bool | OutputKind::Geometry)
    }
}

/// A declared input.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InputDecl {
    /// Its name in assembly.
    pub name: String,
    /// What it must hold.
    pub kind: InputKind,
    /// Whether it carries a spatial index and is reached through `probe` rather than `load`.
    pub indexed: bool,
}

/// A declared output.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OutputDecl {
    /// Its name in assembly.
    pub name: String,
    /// What it collects.
    pub kind: OutputKind,
}

/// Why a program's signature or constants are not acceptable.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SignatureError {
    /// A name is not an identifier, is too long, or is reserved.
    #[error("invalid {what} name `{name}`: {why}")]
    BadName {
        /// `program`, `input`, `output`, `label` or `constant`.
        what: &'static str,
        /// The offending name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Two inputs or outputs share a name.
    #[error("`{0}` is declared twice (input and output names share one namespace)")]
    DuplicateName(String),
    /// Too many of something.
    #[error("too many {what}: {count} (at most {max})")]
    TooMany {
        /// `inputs`, `outputs`, `constants` or `instructions`.
        what: &'static str,
        /// How many there are.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A constant is a NaN other than the canonical quiet NaN, so it would not survive the
    /// assembly text round trip (`nan` always means the canonical one).
    #[error("constant {index} is a non-canonical NaN (bits 0x{bits:016x}); use the canonical `nan`")]
    NonCanonicalNan {
        /// The constant-pool index.
        index: usize,
        /// The NaN's bits.
        bits: u64,
    },
}

/// The bit pattern of `nan` in assembly and in the constant pool.
pub const CANONICAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0000;

/// Whether `name` may name a program, input, output, label or constant; `what` labels errors.
pub fn check_name(what: &'static str, name: &str) -> Result<(), SignatureError> {
    let bad = |why| Err(SignatureError::BadName { what, name: name.to_owned(), why });
    let mut chars = name.chars();
    match chars.next() {
        None => return bad("it is empty"),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
            return bad("it must start with a letter or `_`")
        }
        _ => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return bad("only letters, digits and `_` are allowed");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 64 bytes");
    }
    if is_register_name(name) {
        return bad("it is spelled like a register");
    }
    if name == "nan" || name == "inf" {
        return bad("it is a float literal");
    }
    Ok(())
}

/// Whether `name` is spelled like a register: a file prefix (`f b g c`) and decimal digits.
pub fn is_register_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if crate::RegFile::from_prefix(c).is_some())
        && name.len() > 1
        && chars.all(|c| c.is_ascii_digit())
}

/// The content hash of a program: BLAKE3 of its encoded bytes (everything before the hash).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProgramHash(pub [u8; 32]);

impl ProgramHash {
    /// The first 8 bytes as 16 hex digits, for logs.
    pub fn short(&self) -> String {
        self.0[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for ProgramHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ProgramHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProgramHash({})", self.short())
    }
}

/// A program whose signature is valid and whose code may or may not verify.
///
/// Equality compares content, with constants compared by bit pattern (so a program holding
/// `nan` equals its own decoded copy).
#[derive(Clone, Debug)]
pub struct Program {
    name: String,
    inputs: Vec<InputDecl>,
    outputs: Vec<OutputDecl>,
    consts: Vec<f64>,
    code: Vec<u64>,
    hash: ProgramHash,
}

impl Program {
    /// A program from its parts. Checks the signature and the constant pool; the code is
    /// checked only by [`verify`](crate::verify).
    ///
    /// ```
    /// use meridian_bytecode::{InputDecl, InputKind, Opcode, Program, RawInstr};
    /// let shapes = InputDecl { name: "shapes".into(), kind: InputKind::Geometry, indexed: false };
    /// let halt = RawInstr::new(Opcode::Halt, &[]).encode();
    /// let p = Program::new("noop", vec![shapes], vec![], vec![], vec![halt]).unwrap();
    /// assert_eq!(Program::from_bytes(&p.to_bytes()).unwrap(), p);
    /// ```
    pub fn new(
        name: impl Into<String>,
        inputs: Vec<InputDecl>,
        outputs: Vec<OutputDecl>,
        consts: Vec<f64>,
        code: Vec<u64>,
    ) -> Result<Program, SignatureError> {
        let name = name.into();
        check_signature(&name, &inputs, &outputs)?;
        check_consts(&consts)?;
        if code.len() > MAX_CODE {
            return Err(SignatureError::TooMany { what: "instructions", count: code.len(), max: MAX_CODE });
        }
        let mut program = Program { name, inputs, outputs, consts, code, hash: ProgramHash([0; 32]) };
        program.hash = crate::container::hash_of(&program);
        Ok(program)
    }

    /// The program's name (its `.program` directive).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The inputs, in declaration order. The first is the row source: the program runs once
    /// per row of it.
    pub fn inputs(&self) -> &[InputDecl] {
        &self.inputs
    }

    /// The outputs, in declaration order.
    pub fn outputs(&self) -> &[OutputDecl] {
        &self.outputs
    }

    /// The constant pool.
    pub fn consts(&self) -> &[f64] {
        &self.consts
    }

    /// The instruction words.
    pub fn code(&self) -> &[u64] {
        &self.code
    }

    /// The content hash.
    pub fn hash(&self) -> ProgramHash {
        self.hash
    }

    /// The input named `name`.
    pub fn input_id(&self, name: &str) -> Option<crate::InputId> {
        let i = self.inputs.iter().position(|d| d.name == name)?;
        Some(crate::InputId(i as u32))
    }

    /// The output named `name`.
    pub fn output_id(&self, name: &str) -> Option<crate::OutputId> {
        let i = self.outputs.iter().position(|d| d.name == name)?;
        Some(crate::OutputId(i as u32))
    }
}

impl PartialEq for Program {
    fn eq(&self, other: &Program) -> bool {
        self.name == other.name
            && self.inputs == other.inputs
            && self.outputs == other.outputs
            && self.code == other.code
            && self.consts.len() == other.consts.len()
            && self.consts.iter().zip(&other.consts).all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

pub(crate) fn check_signature(
    name: &str,
    inputs: &[InputDecl],
    outputs: &[OutputDecl],
) -> Result<(), SignatureError> {
    check_name("program", name)?;
    if inputs.len() > MAX_INPUTS {
        return Err(SignatureError::TooMany { what: "inputs", count: inputs.len(), max: MAX_INPUTS });
    }
    if outputs.len() > MAX_OUTPUTS {
        return Err(SignatureError::TooMany { what: "outputs", count: outputs.len(), max: MAX_OUTPUTS });
    }
    let mut seen = std::collections::HashSet::new();
    let names = inputs.iter().map(|d| ("input", &d.name)).chain(outputs.iter().map(|d| ("output", &d.name)));
    for (what, name) in names {
        check_name(what, name)?;
        if !seen.insert(name.as_str()) {
            return Err(SignatureError::DuplicateName(name.clone()));
        }
    }
    Ok(())
}

pub(crate) fn check_consts(consts: &[f64]) -> Result<(), SignatureError> {
    if consts.len() > MAX_CONSTS {
        return Err(SignatureError::TooMany { what: "constants", count: consts.len(), max: MAX_CONSTS });
    }
    for (index, c) in consts.iter().enumerate() {
        if c.is_nan() && c.to_bits() != CANONICAL_NAN_BITS {
            return Err(SignatureError::NonCanonicalNan { index, bits: c.to_bits() });
        }
    }
    Ok(())
}
