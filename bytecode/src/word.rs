//! The 64-bit instruction word: `op:u8 a:u8 b:u8 c:u8 imm:u32`, little-endian, so byte 0 of
//! the encoded word is the opcode. [`RawInstr`] is the untyped view of a word used by the
//! verifier, assembler and disassembler; [`Instr`](crate::Instr) is the typed view used by
//! executors.

use std::fmt;

use crate::opcode::{Opcode, Slot};
use crate::operand::OperandKind;

/// The most operands any op has (a test checks the table against it).
pub const MAX_OPERANDS: usize = 4;

/// An instruction as an opcode plus its operands' raw field values, in assembly order.
///
/// Register operands hold the register index, inputs and outputs their id, constants and
/// matrices their constant-pool index, jumps their target instruction index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RawInstr {
    /// The op.
    pub opcode: Opcode,
    /// Operand values; only the first `opcode.operands().len()` are meaningful, the rest are 0.
    pub operands: [u32; MAX_OPERANDS],
}

/// Why a word is not a well-formed instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstrError {
    /// The low byte names no op.
    #[error("unknown opcode 0x{0:02x}")]
    UnknownOpcode(u8),
    /// A field the op does not use, or the unused high bits of a register held in `imm`, is
    /// not zero. Rejected so that every accepted word has exactly one encoding.
    #[error("`{opcode}` leaves field {} unused, but it holds 0x{bits:x}", field.name())]
    ReservedBits {
        /// The op.
        opcode: Opcode,
        /// The first field with stray bits.
        field: Slot,
        /// The stray bits alone (not the field's used bits), shifted down to the field's position.
        bits: u64,
    },
}

const FIELD_MASK_REG: u64 = 0xff;
const FIELD_MASK_IMM: u64 = 0xffff_ffff;

impl RawInstr {
    /// An instruction with the given operands; missing trailing operands are zero.
    pub fn new(opcode: Opcode, operands: &[u32]) -> RawInstr {
        let mut all = [0u32; MAX_OPERANDS];
        for (dst, src) in all.iter_mut().zip(operands) {
            *dst = *src;
        }
        RawInstr { opcode, operands: all }
    }

    /// The meaningful operands.
    pub fn operands(&self) -> &[u32] {
        &self.operands[..self.opcode.operands().len()]
    }

    /// The operands with their kinds and the word field each occupies.
    pub fn fields(&self) -> impl Iterator<Item = (OperandKind, Slot, u32)> + '_ {
        self.opcode
            .operands()
            .iter()
            .zip(self.opcode.slots())
            .zip(self.operands.iter())
            .map(|((kind, slot), value)| (*kind, slot, *value))
    }

    /// The encoded word. Register operands are truncated to their 8-bit field; callers that
    /// build `RawInstr` by hand keep register indices below 256 (the builder's register types
    /// are `u8`, and the assembler rejects larger indices).
    pub fn encode(&self) -> u64 {
        let mut word = self.opcode as u64;
        for (kind, slot, value) in self.fields() {
            let mask = if kind.is_reg() { FIELD_MASK_REG } else { FIELD_MASK_IMM };
            word |= (u64::from(value) & mask) << slot.shift();
        }
        word
    }

    /// The checked decoder: any 64-bit value either decodes to the one instruction that
    /// encodes to it, or gives an error. Operand *ranges* (register limits, jump targets) are
    /// the verifier's business, not the decoder's.
    pub fn decode(word: u64) -> Result<RawInstr, InstrError> {
        let byte = (word & 0xff) as u8;
        let opcode = Opcode::from_u8(byte).ok_or(InstrError::UnknownOpcode(byte))?;
        let mut operands = [0u32; MAX_OPERANDS];
        let mut used = 0xffu64;
        for ((kind, slot), value) in opcode.operands().iter().zip(opcode.slots()).zip(&mut operands) {
            let mask = if kind.is_reg() { FIELD_MASK_REG } else { FIELD_MASK_IMM };
            // Truncation is exact: every mask is at most 32 bits wide.
            *value = ((word >> slot.shift()) & mask) as u32;
            used |= mask << slot.shift();
        }
        let stray = word & !used;
        if stray != 0 {
            let field = [Slot::A, Slot::B, Slot::C, Slot::Imm]
                .into_iter()
                .find(|s| {
                    let width = if *s == Slot::Imm { FIELD_MASK_IMM } else { FIELD_MASK_REG };
                    (stray >> s.shift()) & width != 0
                })
                .unwrap_or(Slot::Imm);
            let width = if field == Slot::Imm { FIELD_MASK_IMM } else { FIELD_MASK_REG };
            return Err(InstrError::ReservedBits { opcode, field, bits: (stray >> field.shift()) & width });
        }
        Ok(RawInstr { opcode, operands })
    }
}

/// A context-free rendering for debugging: `add f0, f1, f2`, `load g0, in0`, `jmp @7`,
/// `const f0, k3`. The assembler does not read this form; the
/// [disassembler](crate::disassemble) writes names and literals instead.
impl fmt::Display for RawInstr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.opcode.mnemonic())?;
        for (i, (kind, _, value)) in self.fields().enumerate() {
            f.write_str(if i == 0 { " " } else { ", " })?;
            match kind {
                OperandKind::Reg { file, .. } => write!(f, "{file}{value}")?,
                OperandKind::Input { .. } => write!(f, "in{value}")?,
                OperandKind::Output(_) => write!(f, "out{value}")?,
                OperandKind::Const | OperandKind::Matrix => write!(f, "k{value}")?,
                OperandKind::Jump => write!(f, "@{value}")?,
            }
        }
        Ok(())
    }
}
