//! The [`Opcode`] enum and its metadata, expanded from [`for_each_op!`](crate::for_each_op).

use std::fmt;

use crate::operand::{OperandKind, OperandType};

macro_rules! define_opcode {
    ($( $(#[doc = $doc:literal])* $name:ident = $code:literal, $method:ident, $mn:literal
        { $($field:ident : $kind:ident),* } ; )*) => {
        /// An op's numeric code: the low byte of its instruction word.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Opcode {
            $( $(#[doc = $doc])* $name = $code, )*
        }

        impl Opcode {
            /// Every opcode, in table order.
            pub const ALL: &'static [Opcode] = &[$(Opcode::$name),*];

            /// The opcode with numeric code `byte`, if there is one.
            pub const fn from_u8(byte: u8) -> Option<Opcode> {
                match byte {
                    $( $code => Some(Opcode::$name), )*
                    _ => None,
                }
            }

            /// The assembly mnemonic. Several opcodes may share one (see
            /// [`for_each_op!`](crate::for_each_op)).
            pub const fn mnemonic(self) -> &'static str {
                match self { $( Opcode::$name => $mn, )* }
            }

            /// The Rust name of the opcode (`StoreF`), distinct for every opcode.
            pub const fn name(self) -> &'static str {
                match self { $( Opcode::$name => stringify!($name), )* }
            }

            /// The one-line description from the table.
            pub const fn doc(self) -> &'static str {
                match self { $( Opcode::$name => concat!($($doc),*), )* }
            }

            /// The operand kinds, in assembly order.
            pub const fn operands(self) -> &'static [OperandKind] {
                match self {
                    $( Opcode::$name => &[$(<$crate::operand::kind::$kind as OperandType>::KIND),*], )*
                }
            }

            /// The operand field names, in assembly order (as in [`Instr`](crate::Instr)).
            pub const fn operand_names(self) -> &'static [&'static str] {
                match self { $( Opcode::$name => &[$(stringify!($field)),*], )* }
            }
        }
    };
}

crate::for_each_op!(define_opcode);

impl Opcode {
    /// The assembly form with operand kinds, as written in the ISA reference:
    /// `add dst:f, lhs:f, rhs:f`.
    pub fn syntax(self) -> String {
        let operands: Vec<String> = self
            .operand_names()
            .iter()
            .zip(self.operands())
            .map(|(name, kind)| format!("{name}:{}", kind.describe()))
            .collect();
        if operands.is_empty() {
            self.mnemonic().to_owned()
        } else {
            format!("{} {}", self.mnemonic(), operands.join(", "))
        }
    }

    /// The word fields the operands occupy, in assembly order.
    pub fn slots(self) -> impl Iterator<Item = Slot> {
        let mut next_reg = 0usize;
        self.operands().iter().map(move |kind| {
            if kind.is_reg() {
                let slot = Slot::REG_ORDER.get(next_reg).copied().unwrap_or(Slot::Imm);
                next_reg += 1;
                slot
            } else {
                Slot::Imm
            }
        })
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mnemonic())
    }
}

/// A field of the 64-bit instruction word `op:u8 a:u8 b:u8 c:u8 imm:u32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// Bits 8..16.
    A,
    /// Bits 16..24.
    B,
    /// Bits 24..32.
    C,
    /// Bits 32..64.
    Imm,
}

impl Slot {
    /// The order in which register operands take slots.
    pub const REG_ORDER: [Slot; 4] = [Slot::A, Slot::B, Slot::C, Slot::Imm];

    /// The bit offset of the field within the word.
    pub const fn shift(self) -> u32 {
        match self {
            Slot::A => 8,
            Slot::B => 16,
            Slot::C => 24,
            Slot::Imm => 32,
        }
    }

    /// The field's name as used in error messages.
    pub const fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
            Slot::C => "c",
            Slot::Imm => "imm",
        }
    }
}
