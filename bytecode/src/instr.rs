//! The typed instruction enum, expanded from [`for_each_op!`](crate::for_each_op), with its
//! encoder and its two decoders.
//!
//! Executors match on [`Instr`] with no wildcard arm, so a new op in the table is a compile
//! error in every executor until it is handled.

use crate::opcode::{Opcode, Slot};
use crate::operand::kind;
use crate::operand::OperandType;
use crate::word::{InstrError, RawInstr, MAX_OPERANDS};

/// Reads operand fields in assembly order without checks; the constant-folded twin of
/// [`Opcode::slots`].
struct FieldReader {
    word: u64,
    next_reg: usize,
}

impl FieldReader {
    #[inline(always)]
    fn next<K: OperandType>(&mut self) -> u32 {
        if K::KIND.is_reg() {
            let slot = match self.next_reg {
                0 => Slot::A,
                1 => Slot::B,
                2 => Slot::C,
                _ => Slot::Imm,
            };
            self.next_reg += 1;
            ((self.word >> slot.shift()) & 0xff) as u32
        } else {
            (self.word >> Slot::Imm.shift()) as u32
        }
    }
}

macro_rules! define_instr {
    ($( $(#[doc = $doc:literal])* $name:ident = $code:literal, $method:ident, $mn:literal
        { $($field:ident : $kind:ident),* } ; )*) => {
        /// A decoded instruction with typed operands. See `docs/bytecode.md` for the semantics
        /// of each op.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum Instr {
            $( $(#[doc = $doc])* $name { $(
                #[allow(missing_docs)]
                $field: <kind::$kind as OperandType>::Value
            ),* }, )*
        }

        impl Instr {
            /// The instruction's opcode.
            pub const fn opcode(&self) -> Opcode {
                match self { $( Instr::$name { .. } => Opcode::$name, )* }
            }

            /// The untyped view of this instruction.
            pub fn to_raw(&self) -> RawInstr {
                match *self {
                    $( Instr::$name { $($field),* } => {
                        let values: &[u32] = &[$(<kind::$kind as OperandType>::to_raw($field)),*];
                        RawInstr::new(Opcode::$name, values)
                    } )*
                }
            }

            /// The typed view of a raw instruction.
            pub fn from_raw(raw: &RawInstr) -> Instr {
                match raw.opcode {
                    $( Opcode::$name => {
                        #[allow(unused_mut, unused_variables)]
                        let mut values = raw.operands.iter().copied();
                        Instr::$name { $(
                            $field: <kind::$kind as OperandType>::from_raw(values.next().unwrap_or(0))
                        ),* }
                    } )*
                }
            }

            /// Decodes a word from a program the verifier accepted, without checks.
            ///
            /// # Safety
            ///
            /// `word` must be an instruction word of a program that
            /// [`verify`](crate::verify) accepted (and so one that [`Instr::decode`] accepts).
            /// Any other word is undefined behaviour: an unknown opcode reaches
            /// `unreachable_unchecked`. Reach it through
            /// [`VerifiedProgram::instrs`](crate::VerifiedProgram::instrs), which upholds this.
            #[inline]
            pub(crate) unsafe fn decode_unchecked(word: u64) -> Instr {
                debug_assert!(RawInstr::decode(word).is_ok(), "unverified word {word:#018x}");
                #[allow(unused_mut, unused_variables)]
                let mut fields = FieldReader { word, next_reg: 0 };
                match (word & 0xff) as u8 {
                    $( $code => Instr::$name { $(
                        $field: <kind::$kind as OperandType>::from_raw(fields.next::<kind::$kind>())
                    ),* }, )*
                    // SAFETY: the caller guarantees `word` passed the checked decoder, whose
                    // opcode match is exactly the arms above.
                    _ => unsafe { core::hint::unreachable_unchecked() },
                }
            }
        }
    };
}

crate::for_each_op!(define_instr);

impl Instr {
    /// The checked decoder (see [`RawInstr::decode`]).
    pub fn decode(word: u64) -> Result<Instr, InstrError> {
        RawInstr::decode(word).map(|raw| Instr::from_raw(&raw))
    }

    /// The encoded instruction word.
    pub fn encode(&self) -> u64 {
        self.to_raw().encode()
    }
}

const _: () = assert!(MAX_OPERANDS == 4);
