//! The GPU JIT's code generator: a verified program becomes a CUDA C++ row function
//! specialised to it — one labelled block a instruction, jumps as `goto`, no fetch and no
//! dispatch — and a per-job kernel around it.
//!
//! Each non-control instruction is the interpreter's own body for its op
//! (`mr_op<OP>` in `kernels/cuda/interp.cuh`, the function the interpreter's dispatch calls)
//! with its instruction word as a constant: inlined, the register indices fold to constants
//! and the register file to locals, and the op's semantics are the interpreter's by
//! construction; only that op's body is instantiated, so a program compiles in the time of its
//! own ops. `halt`, `jmp`, `jt`, `jf` and `cnext` become control
//! flow here. The per-job kernel is the interpreter's (`mr_run_rows_with` in
//! `megakernel.cu`) with the generated function as its row function; point-join programs keep
//! the join fast path (`mr_run_join_row_with`), the generated function taking the rows it
//! leaves — so no generated kernel contains the interpreter. A point join's kernel also comes
//! split in two ([`split_join`]): `mr_jit_join_<id>`, the fast path alone with the join's
//! fields as constants (no exact arithmetic, no DE-9IM, no interpreter registers: its state
//! stays in registers), marking the rows it cannot finish in row bits, then `mr_jit_defer_<id>`,
//! the whole kernel over those rows only. An op the device does not run refuses the program
//! with the device's reason (`super::gpu_support`), as the interpreter's route does.

use std::fmt::Write as _;

use meridian_bytecode::{Instr, VerifiedProgram};

use super::support::jit_refusal;

/// Defined (`-D`) when compiling [`generate`]'s code, every program's kernel keeps the point
/// join's fast path behind its run-time test, as before 2026-12-05 (the old design, kept
/// selectable until a device run has compared them: `MERIDIAN_GPU_JIT_JOIN_PATH=always`).
pub const JIT_ALWAYS_JOIN_PATH: &str = "MR_JIT_ALWAYS_JOIN_PATH";

/// The C identifier of a program's generated functions: `symbol` with everything but ASCII
/// letters, digits and `_` replaced by `_`.
pub fn identifier(symbol: &str) -> String {
    let mut id: String =
        symbol.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if id.is_empty() || id.starts_with(|c: char| c.is_ascii_digit()) {
        id.insert(0, '_');
    }
    id
}

/// The generated source of `program`: a row function `mr_jit_row_<id>`, its row functor and
/// the per-job kernel `mr_jit_rows_<id>` (an `extern "C"` kernel with `mr_run_rows`'s
/// parameters; with `MR_HOST`, a host entry `mr_jit_host_rows_<id>` that runs the rows one
/// emulated block each, as `mr_host_run_rows` does). Goes after the megakernel's sources in
/// one translation unit ([`jit_unit`]). `Err` is why the device does not run the program.
pub fn generate(program: &VerifiedProgram, symbol: &str) -> Result<String, String> {
    if let Some(why) = jit_refusal(program) {
        return Err(why);
    }
    let id = identifier(symbol);
    let code = program.program().code();
    let n = code.len();
    let instrs: Vec<Instr> = program.instrs().collect();
    // Labels: every jump target, and the ends past the code (each reports its own pc).
    let mut targets = vec![false; n];
    let mut past: Vec<usize> = Vec::new();
    let mut note = |t: usize| match targets.get_mut(t) {
        Some(slot) => *slot = true,
        None => past.push(t),
    };
    for instr in &instrs {
        match *instr {
            Instr::Jmp { target } | Instr::Jt { target, .. } | Instr::Jf { target, .. } => {
                note(target.index())
            }
            Instr::CNext { exit, .. } => note(exit.index()),
            _ => {}
        }
    }
    past.sort_unstable();
    past.dedup();

    let mut s = String::new();
    let _ = writeln!(
        s,
        "// ---- generated: program `{}` as `{id}` ({n} instructions) ----",
        program.program().name()
    );
    let _ = writeln!(s, "template <typename Sink>");
    let _ = writeln!(
        s,
        "MR_FN u32 mr_jit_row_{id}(const MrProgram& p, const MrInput* ins, u64 row, MrRegs& R, Sink& sink, u32& err_pc) {{"
    );
    s.push_str("    mr_reset_regs(R);\n    const u32 nins = p.ninputs;\n    u32 pc = 0;\n    u32 s = 0;\n");
    s.push_str("    (void)nins;\n    (void)pc;\n    (void)s;\n");
    let label = |t: usize| if t < n { format!("L{t}") } else { format!("Lpast{t}") };
    for (pc, (&word, instr)) in code.iter().zip(&instrs).enumerate() {
        if targets[pc] {
            let _ = writeln!(s, "L{pc}:");
        }
        let _ = write!(s, "    /* {pc}: {instr:?} */ ");
        match *instr {
            Instr::Halt {} => s.push_str("return MR_ERR_NONE;\n"),
            Instr::Jmp { target } => {
                let _ = writeln!(s, "goto {};", label(target.index()));
            }
            Instr::Jt { cond, target } => {
                let _ = writeln!(s, "if (R.b[mr_bi({})] == 1) goto {};", cond.0, label(target.index()));
            }
            Instr::Jf { cond, target } => {
                let _ = writeln!(s, "if (R.b[mr_bi({})] != 1) goto {};", cond.0, label(target.index()));
            }
            Instr::CNext { dst, cursor, exit } => {
                let _ = writeln!(
                    s,
                    "{{ MrG v = mr_cnext(ins, nins, R.c[mr_ci({c})]); R.g[mr_gi({d})] = v; if (v.src == MR_SRC_NULL) goto {l}; }}",
                    c = cursor.0,
                    d = dst.0,
                    l = label(exit.index())
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "s = mr_op<MR_OP_{op}>(p, ins, row, R, sink, 0x{word:016x}ull, pc); if (s != MR_STEP_ON) {{ if (s != MR_ERR_NONE) err_pc = {pc}; return s; }}",
                    op = super::device_name(instr.opcode())
                );
            }
        }
    }
    // Falling off the end, then each jump past it: the pc the interpreter reports.
    let _ = writeln!(s, "    err_pc = {n};\n    return MR_ERR_PAST_END;");
    for t in past {
        let _ = writeln!(s, "Lpast{t}:\n    err_pc = {t};\n    return MR_ERR_PAST_END;");
    }
    s.push_str("}\n");
    // The join fast path only in a point join's kernel: the device's `p.join` is
    // `DeviceJoin::of` the same program, so another program never takes it, and compiled in
    // it costs every program its candidate state and geometry scratch in local memory (the
    // arithmetic bench's kernel: 212 registers and 880 B of stack with it, 32 and none
    // without; docs/benchmarks/2026-12-05-kernel-resources.md).
    // The old kernel (the fast path in every program's kernel) stays selectable, with
    // `MR_JIT_ALWAYS_JOIN_PATH` defined, until a device run has compared the two.
    let both = "return p.join.present ? mr_run_join_row_with(general, p, ins, row, R, sink, err_pc) : general(p, ins, row, R, sink, err_pc);";
    let row = if super::abi::DeviceJoin::of(program).present != 0 {
        format!("        {both}")
    } else {
        format!(
            "#ifdef {JIT_ALWAYS_JOIN_PATH}\n        {both}\n#else\n        return general(p, ins, row, R, sink, err_pc);\n#endif"
        )
    };
    let _ = write!(
        s,
        "struct MrJitRow_{id} {{
    MR_METHOD u32 operator()(const MrProgram& p, const MrInput* ins, u64 row, MrRegs& R, MrThreadSink& sink,
                             u32& err_pc) const {{
        auto general = [](const MrProgram& p, const MrInput* ins, u64 row, MrRegs& R, MrThreadSink& sink, u32& err_pc) {{
            return mr_jit_row_{id}(p, ins, row, R, sink, err_pc);
        }};
{row}
    }}
}};
MR_KERNEL void mr_jit_rows_{id}(const MrProgram* prog, const MrInput* inputs, const MrOutput* outputs, u64 rows_begin,
                           u64 begin, u64 end, MrAcc* acc, MrError* error) {{
    mr_run_rows_with(MrJitRow_{id}(), prog, inputs, outputs, rows_begin, begin, end, acc, error);
}}
#ifdef MR_HOST
extern \"C\" __attribute__((visibility(\"default\"))) void mr_jit_host_rows_{id}(const MrProgram* prog,
        const MrInput* inputs, const MrOutput* outputs, u64 rows_begin, u64 begin, u64 end, MrAcc* acc, MrError* error) {{
    mr_host_each_row(end - begin, [=] {{ mr_jit_rows_{id}(prog, inputs, outputs, rows_begin, begin, end, acc, error); }});
}}
#endif
"
    );
    if let Some(j) = split_join(program) {
        let count = if j.count != 0 { "true" } else { "false" };
        let _ = write!(
            s,
            "MR_KERNEL void mr_jit_join_{id}(const MrProgram* prog, const MrInput* inputs, const MrOutput* outputs,
        u64 rows_begin, u64 begin, u64 end, MrAcc* acc, MrError* error, u64* scratch) {{
    (void)prog;
    (void)rows_begin;
    (void)error;
    mr_join_fast_rows<{load}, {probe}, {pred}, {count}, {output}>(inputs, outputs, begin, end, acc, scratch);
}}
MR_KERNEL void mr_jit_defer_{id}(const MrProgram* prog, const MrInput* inputs, const MrOutput* outputs,
        u64 rows_begin, u64 begin, u64 end, MrAcc* acc, MrError* error, u64* scratch) {{
    const u64 i = (u64)mr_bid() * mr_ntid() + mr_tid();
    if (begin + i >= end || !mr_deferred(scratch, i)) return;
    mr_run_rows_with(MrJitRow_{id}(), prog, inputs, outputs, rows_begin, begin, end, acc, error);
}}
#ifdef MR_HOST
// The fast kernel in blocks of `block_threads` host threads, four blocks at a time (so that
// blocks wait for one another as on a GPU), then the general kernel a row a block.
extern \"C\" __attribute__((visibility(\"default\"))) void mr_jit_host_split_{id}(const MrProgram* prog,
        const MrInput* inputs, const MrOutput* outputs, u64 rows_begin, u64 begin, u64 end, MrAcc* acc, MrError* error,
        u64* scratch, u64 block_threads) {{
    const u32 ntid = (u32)block_threads;
    const u32 nblocks = (u32)((end - begin + ntid - 1) / ntid) + (end == begin);  // a block even over no rows
    mr_host_launch<MrJoinShared>(nblocks, ntid, 4, nullptr, [=] {{
        mr_jit_join_{id}(prog, inputs, outputs, rows_begin, begin, end, acc, error, scratch);
    }});
    mr_host_each_row(end - begin, [=] {{ mr_jit_defer_{id}(prog, inputs, outputs, rows_begin, begin, end, acc, error, scratch); }});
}}
#endif
",
            load = j.load,
            probe = j.probe,
            pred = j.pred,
            output = j.output,
        );
    }
    Ok(s)
}

/// The point join `program` is, when its kernel splits in two ([`generate`]'s
/// `mr_jit_join_*`, the fast path alone, and `mr_jit_defer_*`, the rows it leaves): a join
/// whose predicate's operands are the candidate and the point, in a program with no output
/// but the join's (the fast kernel writes nothing else).
pub fn split_join(program: &VerifiedProgram) -> Option<super::abi::DeviceJoin> {
    let j = super::abi::DeviceJoin::of(program);
    let only_join = program.program().outputs().len() == 1 && j.output == 0;
    (j.present != 0 && j.operands_fit != 0 && only_join).then_some(j)
}

/// One translation unit of the megakernel's sources and the generated code of `programs`
/// (name, program), for NVRTC. A program the device refuses is left out and comes back with
/// why. (For host C++, include `megakernel.cu` with `MR_HOST` and append [`generate`]'s code.)
pub fn jit_unit<'a>(
    programs: impl IntoIterator<Item = (&'a str, &'a VerifiedProgram)>,
) -> (String, Vec<(String, String)>) {
    // Programs' kernels only: not the resident kernel or the interpreter's per-job kernel.
    let mut tu = String::from("#define MR_JIT_UNIT 1\n");
    tu.push_str(&super::megakernel_source());
    let mut refused = Vec::new();
    for (name, program) in programs {
        match generate(program, name) {
            Ok(code) => tu.push_str(&code),
            Err(why) => refused.push((name.to_owned(), why)),
        }
    }
    (tu, refused)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    #[test]
    fn identifiers_are_c_identifiers() {
        assert_eq!(identifier("pip_join"), "pip_join");
        assert_eq!(identifier("pip-join.v2"), "pip_join_v2");
        assert_eq!(identifier("3d"), "_3d");
        assert_eq!(identifier(""), "_");
    }

    #[test]
    fn a_program_becomes_blocks_and_gotos() {
        let pip =
            meridian_bytecode::assemble("p.masm", include_str!("../../../examples/pip_join.masm")).unwrap();
        let code = generate(&pip, "pip").unwrap();
        // The candidate loop: cnext exits to `done`, jf back to `next`, jmp back to `next`.
        assert!(code.contains("L2:"), "{code}");
        assert!(code.contains("goto L2;"), "{code}");
        assert!(code.contains("if (R.b[mr_bi(0)] != 1) goto L2;"), "{code}");
        assert!(code.contains("return MR_ERR_NONE;"), "{code}");
        assert_eq!(code.matches("mr_op<").count(), 4, "{code}"); // load, probe, contains, emit
        assert!(code.contains("mr_op<MR_OP_CONTAINS>("), "{code}");
        assert!(code.contains("MR_KERNEL void mr_jit_rows_pip("));
        // A point join's kernel has the join's fast path; another program's only under the
        // old design's define.
        assert!(code.contains("mr_run_join_row_with") && !code.contains(JIT_ALWAYS_JOIN_PATH), "{code}");
        // And splits: the fast path alone, its join's fields constants (pts, zones, contains,
        // hits, output 0), then the general kernel over the rows it leaves.
        assert!(split_join(&pip).is_some());
        assert!(code.contains("mr_join_fast_rows<0, 1, 1, false, 0>("), "{code}");
        assert!(
            code.contains("MR_KERNEL void mr_jit_defer_pip(") && code.contains("!mr_deferred(scratch, i)")
        );
        assert!(code.contains("void mr_jit_host_split_pip("), "{code}");
        let arith =
            meridian_bytecode::assemble("m.masm", include_str!("../../../benches/mercator.masm")).unwrap();
        let arith = generate(&arith, "m").unwrap();
        let (new, old) = arith.split_once("#else").unwrap();
        assert!(
            new.contains(&format!("#ifdef {JIT_ALWAYS_JOIN_PATH}")) && new.contains("mr_run_join_row_with")
        );
        assert!(!old.contains("mr_run_join_row_with"), "{arith}");
        assert!(!arith.contains("mr_jit_join_") && !arith.contains("mr_jit_defer_"), "{arith}");
        let count =
            meridian_bytecode::assemble("c.masm", include_str!("../../../benches/pip_count.masm")).unwrap();
        assert!(generate(&count, "c").unwrap().contains("mr_join_fast_rows<0, 1, 1, true, 0>("));
        let moved =
            meridian_bytecode::assemble("m.masm", include_str!("../../../examples/moved.masm")).unwrap();
        assert_eq!(super::super::gpu_refusal(&moved), None);
        let why = generate(&moved, "moved").unwrap_err();
        assert!(
            why.contains("`affine`, `simplify` (") && why.contains("; `store` to a geometry output ("),
            "{why}"
        );
        // Without the geometry output the device interpreter runs it, but not a per-job kernel.
        let measured = meridian_bytecode::assemble(
            "m2.masm",
            ".program m2\n.input s geometry\n.output a f64\n    load g0, s\n    const f0, 0.5\n    \
             simplify g1, g0, f0\n    area f1, g1\n    store a, f1\n    halt\n",
        )
        .unwrap();
        assert_eq!(super::super::gpu_refusal(&measured), None);
        let why = generate(&measured, "m2").unwrap_err();
        assert!(why.contains("`simplify`") && why.contains("per-job kernel"), "{why}");
        let (tu, refused) = jit_unit([("pip", &pip), ("moved", &moved)]);
        assert!(tu.contains("mr_jit_row_pip") && !tu.contains("mr_jit_row_moved"));
        assert_eq!(refused.len(), 1);
    }
}
