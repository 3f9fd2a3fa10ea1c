//! Which programs the GPU megakernel runs, and why it refuses the others.
//!
//! Every op is listed here in one exhaustive match, so a new op in the table is a compile
//! error until someone decides whether the device runs it. A refused program runs on the CPU
//! under `auto` (the backend line says why) and fails under `gpu`; never silently.

use meridian_bytecode::{Opcode, OutputKind, VerifiedProgram};

/// Whether the device interpreter runs an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuSupport {
    /// The device interpreter runs it: it is in `MR_GPU_OPS` (`isa.cuh`), from which
    /// `kernels/cuda/interp.cuh`'s dispatch makes its cases.
    Runs,
    /// Programs using it stay on the CPU, for this reason.
    Refused(&'static str),
}

/// The device's support for `op`.
pub const fn gpu_support(op: Opcode) -> GpuSupport {
    use Opcode::*;
    match op {
        Halt | Jmp | Jt | Jf | Load | Const | MovF | MovB | MovG | SelectF | SelectB | SelectG | Add
        | Sub | Mul | Div | Min | Max | Abs | Neg | Sqrt | Lt | Le | Gt | Ge | Eq | Ne | And | Or | Not
        | IsNullF | Area | Length | Bbox | Centroid | NPoints | IsEmpty | IsNullG | X | Y | Intersects
        | Contains | Within | Covers | CoveredBy | Touches | Disjoint | DWithin | Distance | Probe
        | ProbeDist | CNext | StoreF | StoreB | StoreG | Emit | Count | Sum | Affine | Simplify => {
            GpuSupport::Runs
        }
    }
}

/// Why the GPU JIT's per-job kernels refuse constructive ops: a per-job kernel runs a thread
/// per row, more threads than any per-thread scratch covers, so programs that construct
/// geometry stay on the resident kernel (whose threads each have a scratch).
pub const JIT_CONSTRUCTIVE: &str =
    "a per-job kernel has no per-thread scratch for constructed geometry (`affine`, \
     `simplify`): the program runs on the resident kernel";

/// Why the GPU JIT's per-job kernels refuse geometry outputs: their rows' geometries are
/// appended and sized on the resident kernel's path only (its output arena and re-run).
pub const JIT_GEOMETRY_OUTPUT: &str =
    "a per-job kernel does not assemble geometry outputs: the program runs on the resident kernel";

/// The GPU JIT's support for `op`: the device's, less constructive ops ([`JIT_CONSTRUCTIVE`])
/// and geometry outputs ([`JIT_GEOMETRY_OUTPUT`]).
pub const fn jit_support(op: Opcode) -> GpuSupport {
    match op {
        Opcode::Affine | Opcode::Simplify => GpuSupport::Refused(JIT_CONSTRUCTIVE),
        Opcode::StoreG => GpuSupport::Refused(JIT_GEOMETRY_OUTPUT),
        _ => gpu_support(op),
    }
}

/// Why the GPU JIT will not compile `program`, or `None` when it will.
pub fn jit_refusal(program: &VerifiedProgram) -> Option<String> {
    gpu_refusal(program).or_else(|| refused_ops(program, jit_support, "the GPU JIT"))
}

/// Most `count` and `sum` outputs a program may have on the device (each thread keeps its
/// partial reductions in registers until the block combines them).
pub const MAX_GPU_REDUCTIONS: usize = 16;

/// Most geometry outputs a program may have on the device (`MR_GEOM_OUTPUTS`: each thread
/// keeps each one's value until its row ends).
pub const MAX_GPU_GEOMETRY_OUTPUTS: usize = 4;

/// How an op is named in a refusal (`store` is several ops; say which).
fn describe(op: Opcode) -> String {
    match op {
        Opcode::StoreG => "`store` to a geometry output".to_owned(),
        _ => format!("`{}`", op.mnemonic()),
    }
}

/// The ops of `program` that `support` refuses, grouped by reason: "`who` does not run ...".
fn refused_ops(program: &VerifiedProgram, support: fn(Opcode) -> GpuSupport, who: &str) -> Option<String> {
    let mut refused: Vec<(Opcode, &'static str)> = Vec::new();
    for instr in program.instrs() {
        let op = instr.opcode();
        if let GpuSupport::Refused(why) = support(op) {
            if !refused.iter().any(|(o, _)| *o == op) {
                refused.push((op, why));
            }
        }
    }
    if refused.is_empty() {
        return None;
    }
    let mut reasons: Vec<(Vec<String>, &str)> = Vec::new();
    for (op, why) in refused {
        match reasons.iter_mut().find(|(_, w)| *w == why) {
            Some((ops, _)) => ops.push(describe(op)),
            None => reasons.push((vec![describe(op)], why)),
        }
    }
    let text: Vec<String> = reasons.iter().map(|(ops, why)| format!("{} ({why})", ops.join(", "))).collect();
    Some(format!("{who} does not run {}", text.join("; ")))
}

/// Why the GPU megakernel will not run `program`, or `None` when it will.
pub fn gpu_refusal(program: &VerifiedProgram) -> Option<String> {
    if let Some(why) = refused_ops(program, gpu_support, "the GPU") {
        return Some(why);
    }
    let reductions = program
        .program()
        .outputs()
        .iter()
        .filter(|o| matches!(o.kind, OutputKind::Count | OutputKind::Sum))
        .count();
    if reductions > MAX_GPU_REDUCTIONS {
        return Some(format!(
            "the program has {reductions} count/sum outputs; the GPU runs at most {MAX_GPU_REDUCTIONS}"
        ));
    }
    let geometries = program.program().outputs().iter().filter(|o| o.kind == OutputKind::Geometry).count();
    if geometries > MAX_GPU_GEOMETRY_OUTPUTS {
        return Some(format!(
            "the program has {geometries} geometry outputs; the GPU runs at most {MAX_GPU_GEOMETRY_OUTPUTS}"
        ));
    }
    None
}
