//! meridian's bytecode: the instruction set (defined once, in [`for_each_op!`]), the 64-bit
//! instruction word, the `.mbc` program container, the verifier, the assembler and
//! disassembler, and a builder for programs made in Rust.
//!
//! A program runs once per row of its first input (per-row SIMT). Registers come in typed
//! files — `f` (f64), `b` (bool), `g` (geometry), `c` (candidate cursor) — and each carries a
//! null flag. See `docs/bytecode.md` for the ISA reference and the semantics of every op.
//!
//! ```
//! use meridian_bytecode::{assemble, disassemble};
//!
//! let program = assemble("near.masm", "
//! .program near
//! .input  pts    points
//! .input  sites  points indexed
//! .output pairs  hits
//!     load     g0, pts
//!     const    f0, 0.5
//!     probe    c0, sites, g0, f0
//! next:
//!     cnext    g1, c0, done
//!     dwithin  b0, g0, g1, f0
//!     jf       b0, next
//!     emit     pairs, g1
//!     jmp      next
//! done:
//!     halt
//! ")?;
//! let text = disassemble(program.program())?;
//! let again = assemble("near.masm", &text)?;
//! assert_eq!(again.program().to_bytes(), program.program().to_bytes());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

mod asm;
mod builder;
mod container;
mod diag;
mod disasm;
mod file;
mod instr;
mod isa;
mod opcode;
pub mod operand;
mod program;
mod verify;
mod word;

pub use asm::assemble;
pub use builder::{BuildError, Builder, Label};
pub use container::{reseal, DecodeError, DecodeErrorKind, FORMAT_VERSION, MAGIC};
pub use diag::{Diagnostic, Diagnostics};
pub use disasm::{disassemble, DisasmError};
pub use file::{load, read_program_file, LoadError, MAX_PROGRAM_FILE};
pub use instr::Instr;
pub use opcode::{Opcode, Slot};
pub use operand::{Access, BReg, CReg, ConstId, FReg, GReg, InputId, OperandKind, OutputId, Pc, RegFile};
pub use program::{
    check_name, is_register_name, InputDecl, InputKind, OutputDecl, OutputKind, Program, ProgramHash,
    SignatureError, CANONICAL_NAN_BITS, MAX_CODE, MAX_CONSTS, MAX_INPUTS, MAX_NAME_LEN, MAX_OUTPUTS,
};
pub use verify::{verify, Flow, RegCounts, VerifiedProgram, VerifyError, VerifyErrorKind, VerifyErrors};
pub use word::{InstrError, RawInstr, MAX_OPERANDS};
