//! The `.mbc` container: how a [`Program`] is laid out in bytes.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "MRDN"
//! 4       2     format version (u16, currently 1)
//! 6       2     flags (u16, reserved, must be 0)
//! 8       4     constant count (u32)
//! 12      4     instruction count (u32)
//! 16      1+n   program name (u8 length, UTF-8 bytes)
//!         1     input count (u8), then per input: kind u8, flags u8 (bit 0 = indexed),
//!               name (u8 length, bytes)
//!         1     output count (u8), then per output: kind u8, name (u8 length, bytes)
//!         0..7  zero padding to a multiple of 8
//!         8·k   constants, f64 little-endian
//!         8·n   instructions, u64 little-endian
//!         32    BLAKE3 hash of every byte before it
//! ```
//!
//! All integers are little-endian. Decoding checks everything and never panics: corrupt,
//! truncated or future-version bytes give a [`DecodeError`] with the byte offset.

use crate::program::{InputDecl, InputKind, OutputDecl, OutputKind};
use crate::program::{Program, ProgramHash, SignatureError, MAX_CODE, MAX_CONSTS};

/// The first four bytes of every encoded program.
pub const MAGIC: [u8; 4] = *b"MRDN";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
const HASH_LEN: usize = 32;
const INPUT_FLAG_INDEXED: u8 = 1;

/// Why bytes are not an encoded program.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("byte offset {offset}: {kind}")]
pub struct DecodeError {
    /// Where in the bytes the problem was found.
    pub offset: usize,
    /// What the problem is.
    pub kind: DecodeErrorKind,
}

/// The kinds of [`DecodeError`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// The bytes do not start with `MRDN`.
    #[error("not a meridian program (bad magic {found:02x?}, expected \"MRDN\")")]
    BadMagic {
        /// The bytes found where the magic belongs (fewer than 4 if the input is shorter).
        found: Vec<u8>,
    },
    /// The format version is not one this build reads.
    #[error("unsupported format version {found} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version in the header.
        found: u16,
    },
    /// A reserved flag bit is set.
    #[error("reserved {what} flags 0x{flags:x} are set")]
    ReservedFlags {
        /// `header` or `input`.
        what: &'static str,
        /// The flag bits.
        flags: u16,
    },
    /// The bytes end before a field.
    #[error("truncated: {what} needs {needed} more bytes, {available} remain")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// A count in the header exceeds its limit.
    #[error("{what} count {count} exceeds the limit {max}")]
    CountTooLarge {
        /// `constants` or `instructions`.
        what: &'static str,
        /// The count read.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// A name is not UTF-8.
    #[error("a name is not valid UTF-8")]
    BadUtf8,
    /// An input or output kind byte names no kind.
    #[error("unknown {what} kind {byte}")]
    UnknownKind {
        /// `input` or `output`.
        what: &'static str,
        /// The byte.
        byte: u8,
    },
    /// A padding byte is not zero.
    #[error("padding byte is 0x{0:02x}, not zero")]
    BadPadding(u8),
    /// The signature or constants break a rule of [`Program::new`].
    #[error("{0}")]
    Signature(#[from] SignatureError),
    /// The stored hash does not match the content.
    #[error("content hash mismatch: the bytes are corrupt")]
    HashMismatch,
    /// Bytes follow the hash.
    #[error("{0} unexpected bytes after the end of the program")]
    TrailingBytes(usize),
}

/// The BLAKE3 hash of a program's encoding.
pub(crate) fn hash_of(program: &Program) -> ProgramHash {
    let mut bytes = Vec::new();
    write_body(program, &mut bytes);
    ProgramHash(*blake3::hash(&bytes).as_bytes())
}

fn write_name(out: &mut Vec<u8>, name: &str) {
    // Names are at most MAX_NAME_LEN (64) bytes: Program::new checked them.
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
}

fn write_body(p: &Program, out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    // Counts are bounded by MAX_CONSTS / MAX_CODE / MAX_INPUTS / MAX_OUTPUTS, all of which fit.
    out.extend_from_slice(&(p.consts().len() as u32).to_le_bytes());
    out.extend_from_slice(&(p.code().len() as u32).to_le_bytes());
    write_name(out, p.name());
    out.push(p.inputs().len() as u8);
    for input in p.inputs() {
        out.push(input.kind as u8);
        out.push(if input.indexed { INPUT_FLAG_INDEXED } else { 0 });
        write_name(out, &input.name);
    }
    out.push(p.outputs().len() as u8);
    for output in p.outputs() {
        out.push(output.kind as u8);
        write_name(out, &output.name);
    }
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    for c in p.consts() {
        out.extend_from_slice(&c.to_le_bytes());
    }
    for w in p.code() {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

impl Program {
    /// The program's `.mbc` encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 8 * (self.consts().len() + self.code().len()));
        write_body(self, &mut out);
        out.extend_from_slice(&self.hash().0);
        out
    }

    /// Decodes an `.mbc` encoding. Checks the magic, version, every field, the signature
    /// rules, and the content hash; the code words are checked later by
    /// [`verify`](crate::verify).
    pub fn from_bytes(bytes: &[u8]) -> Result<Program, DecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        let magic = r.take("magic", 4).map_err(|_| DecodeError {
            offset: 0,
            kind: DecodeErrorKind::BadMagic { found: bytes[..bytes.len().min(4)].to_vec() },
        })?;
        if magic != MAGIC {
            return Err(DecodeError { offset: 0, kind: DecodeErrorKind::BadMagic { found: magic.to_vec() } });
        }
        let version = r.u16("format version")?;
        if version != FORMAT_VERSION {
            return Err(r.error_at(4, DecodeErrorKind::UnsupportedVersion { found: version }));
        }
        let flags = r.u16("flags")?;
        if flags != 0 {
            return Err(r.error_at(6, DecodeErrorKind::ReservedFlags { what: "header", flags }));
        }
        let n_consts = r.count("constants", MAX_CONSTS)?;
        let n_code = r.count("instructions", MAX_CODE)?;
        let name = r.name()?;
        // Where each declaration starts, so signature errors can point at it.
        let inputs_at = r.pos;
        let mut decl_at: Vec<(&'static str, usize)> = Vec::new();
        let n_inputs = r.u8("input count")?;
        let mut inputs = Vec::with_capacity(usize::from(n_inputs));
        for _ in 0..n_inputs {
            let at = r.pos;
            decl_at.push(("input", at));
            let kind = r.u8("input kind")?;
            let kind = InputKind::from_u8(kind)
                .ok_or_else(|| r.error_at(at, DecodeErrorKind::UnknownKind { what: "input", byte: kind }))?;
            let flags = r.u8("input flags")?;
            if flags & !INPUT_FLAG_INDEXED != 0 {
                return Err(r.error_at(
                    at + 1,
                    DecodeErrorKind::ReservedFlags { what: "input", flags: flags.into() },
                ));
            }
            let name = r.name()?;
            inputs.push(InputDecl { name, kind, indexed: flags & INPUT_FLAG_INDEXED != 0 });
        }
        let outputs_at = r.pos;
        let n_outputs = r.u8("output count")?;
        let mut outputs = Vec::with_capacity(usize::from(n_outputs));
        for _ in 0..n_outputs {
            let at = r.pos;
            decl_at.push(("output", at));
            let kind = r.u8("output kind")?;
            let kind = OutputKind::from_u8(kind)
                .ok_or_else(|| r.error_at(at, DecodeErrorKind::UnknownKind { what: "output", byte: kind }))?;
            let name = r.name()?;
            outputs.push(OutputDecl { name, kind });
        }
        while !r.pos.is_multiple_of(8) {
            let at = r.pos;
            let pad = r.u8("padding")?;
            if pad != 0 {
                return Err(r.error_at(at, DecodeErrorKind::BadPadding(pad)));
            }
        }
        let consts_at = r.pos;
        let consts: Vec<f64> =
            r.take("constants", 8 * n_consts)?.chunks_exact(8).map(|c| f64::from_le_bytes(le8(c))).collect();
        let code: Vec<u64> =
            r.take("instructions", 8 * n_code)?.chunks_exact(8).map(|c| u64::from_le_bytes(le8(c))).collect();
        let body_end = r.pos;
        let stored = r.take("content hash", HASH_LEN)?;
        if r.pos != bytes.len() {
            return Err(r.error_at(r.pos, DecodeErrorKind::TrailingBytes(bytes.len() - r.pos)));
        }
        if blake3::hash(&bytes[..body_end]).as_bytes()[..] != stored[..] {
            return Err(r.error_at(body_end, DecodeErrorKind::HashMismatch));
        }
        // Declarations in encoding order, with their names, for locating signature errors.
        let decls: Vec<(&'static str, usize, String)> = decl_at
            .iter()
            .zip(inputs.iter().map(|d| d.name.clone()).chain(outputs.iter().map(|d| d.name.clone())))
            .map(|(&(what, at), name)| (what, at, name))
            .collect();
        Program::new(name, inputs, outputs, consts, code).map_err(|e| {
            let offset = match &e {
                SignatureError::NonCanonicalNan { index, .. } => consts_at + 8 * index,
                SignatureError::TooMany { what: "inputs", .. } => inputs_at,
                SignatureError::TooMany { what: "outputs", .. } => outputs_at,
                SignatureError::BadName { what, name, .. } => {
                    decls.iter().find(|(w, _, n)| w == what && n == name).map_or(16, |(_, at, _)| *at)
                }
                // The second declaration of the name is the one at fault.
                SignatureError::DuplicateName(name) => {
                    decls.iter().filter(|(_, _, n)| n == name).nth(1).map_or(16, |(_, at, _)| *at)
                }
                SignatureError::TooMany { .. } => 16,
            };
            r.error_at(offset, e.into())
        })
    }
}

/// Re-seals `bytes` after an edit by recomputing the trailing content hash. For tests and
/// fuzzers that mutate valid programs to reach the checks behind the hash; returns `false`
/// (and leaves `bytes` alone) if they are too short to hold a hash.
#[doc(hidden)]
pub fn reseal(bytes: &mut [u8]) -> bool {
    let Some(body_len) = bytes.len().checked_sub(HASH_LEN) else { return false };
    let hash = blake3::hash(&bytes[..body_len]);
    bytes[body_len..].copy_from_slice(hash.as_bytes());
    true
}

fn le8(chunk: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(chunk);
    a
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn error_at(&self, offset: usize, kind: DecodeErrorKind) -> DecodeError {
        DecodeError { offset, kind }
    }

    fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        let available = self.bytes.len() - self.pos;
        if n > available {
            return Err(self.error_at(self.pos, DecodeErrorKind::Truncated { what, needed: n, available }));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(what, 1)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(what, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn count(&mut self, what: &'static str, max: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let b = self.take(what, 4)?;
        let count = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if count as usize > max {
            return Err(self.error_at(at, DecodeErrorKind::CountTooLarge { what, count: count.into(), max }));
        }
        Ok(count as usize)
    }

    fn name(&mut self) -> Result<String, DecodeError> {
        let len = self.u8("name length")?;
        let at = self.pos;
        let raw = self.take("name", usize::from(len))?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.error_at(at, DecodeErrorKind::BadUtf8))
    }
}
