//! The device side's view of the instruction set, generated from
//! [`for_each_op!`](meridian_bytecode::for_each_op): `kernels/cuda/isa.cuh` is the output of
//! [`isa_header`], committed, and a test fails when it is stale. The device interpreter
//! decodes every operand through the accessors named here, so if an op's operands move in the
//! table, the header changes and the device code follows.

use std::fmt::Write as _;

use meridian_bytecode::{Opcode, OutputKind, RegFile, Slot, MAX_INPUTS, MAX_OUTPUTS};

use super::support::{gpu_support, GpuSupport};

/// The name an op has on the device side: its Rust name in capitals (`SelectF` → `SELECTF`).
pub fn device_name(op: Opcode) -> String {
    op.name().to_ascii_uppercase()
}

/// The text of `kernels/cuda/isa.cuh`.
pub fn isa_header() -> String {
    let mut h = String::new();
    let w = &mut h;
    let _ = writeln!(w, "// isa.cuh — GENERATED from meridian-bytecode's for_each_op! table by");
    let _ = writeln!(w, "// meridian_kernels::cuda::isa_header(). Do not edit: run");
    let _ = writeln!(
        w,
        "// `MERIDIAN_BLESS=1 cargo test -p meridian-kernels --test cuda_sources` to rewrite it; that"
    );
    let _ = writeln!(w, "// test fails while this file differs from what the table generates.");
    let _ = writeln!(w, "#ifndef MR_ISA_CUH");
    let _ = writeln!(w, "#define MR_ISA_CUH");
    let _ = writeln!(w);
    let _ = writeln!(w, "// Registers per file (each register also has a null flag).");
    for file in RegFile::ALL {
        let _ = writeln!(w, "#define MR_REGS_{} {}", file.prefix().to_ascii_uppercase(), file.limit());
    }
    let _ = writeln!(w, "#define MR_MAX_INPUTS {MAX_INPUTS}");
    let _ = writeln!(w, "#define MR_MAX_OUTPUTS {MAX_OUTPUTS}");
    let _ = writeln!(w);
    let _ = writeln!(w, "// The 64-bit instruction word: op:u8 a:u8 b:u8 c:u8 imm:u32.");
    let _ = writeln!(w, "#define MR_WORD_OP(w) ((u32)((w) & 0xffULL))");
    for slot in [Slot::A, Slot::B, Slot::C] {
        let _ = writeln!(
            w,
            "#define MR_WORD_{}(w) ((u32)(((w) >> {}) & 0xffULL))",
            slot.name().to_ascii_uppercase(),
            slot.shift()
        );
    }
    let _ = writeln!(w, "#define MR_WORD_IMM(w) ((u32)((w) >> {}))", Slot::Imm.shift());
    let _ = writeln!(w, "// A fourth register operand sits in the low byte of imm.");
    let _ = writeln!(w, "#define MR_WORD_IMM_REG(w) (MR_WORD_IMM(w) & 0xffu)");
    let _ = writeln!(w);
    let _ = writeln!(w, "// Output kinds (OutputKind).");
    for kind in OutputKind::ALL {
        let _ = writeln!(w, "#define MR_OUT_{} {}", kind.keyword().to_ascii_uppercase(), *kind as u8);
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "// Ops: the opcode, then one accessor per operand, in assembly order.");
    for &op in Opcode::ALL {
        let name = device_name(op);
        let _ = writeln!(w, "// {}: {}", op.syntax(), op.doc().trim());
        let _ = writeln!(w, "#define MR_OP_{name} 0x{:02x}", op as u8);
        for ((field, kind), slot) in op.operand_names().iter().zip(op.operands()).zip(op.slots()) {
            let access = match slot {
                Slot::A => "MR_WORD_A(w)",
                Slot::B => "MR_WORD_B(w)",
                Slot::C => "MR_WORD_C(w)",
                Slot::Imm if kind.is_reg() => "MR_WORD_IMM_REG(w)",
                Slot::Imm => "MR_WORD_IMM(w)",
            };
            let _ = writeln!(w, "#define MR_{name}_{}(w) {access}", field.to_ascii_uppercase());
        }
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "// What the megakernel runs: interp.cuh's dispatch (mr_step) has a case for each op here"
    );
    let _ = writeln!(
        w,
        "// by construction, and mr_op fails to compile for one without a body. Programs using any"
    );
    let _ = writeln!(w, "// other op are refused for the GPU, for the reason given.");
    // The parameter is lower case so that no op's name (`X`, `Y`) is taken for it.
    let _ = write!(w, "#define MR_GPU_OPS(apply)");
    for &op in Opcode::ALL {
        if gpu_support(op) == GpuSupport::Runs {
            let _ = write!(w, " apply({})", device_name(op));
        }
    }
    let _ = writeln!(w);
    for &op in Opcode::ALL {
        if let GpuSupport::Refused(why) = gpu_support(op) {
            let _ = writeln!(w, "// refused: {} ({}): {why}", device_name(op), op.mnemonic());
        }
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "#endif  // MR_ISA_CUH");
    h
}
