//! Every kind of malformed input gives a specific error with its location.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use meridian_bytecode::{
    assemble, reseal, verify, DecodeErrorKind, Diagnostic, InputDecl, InputKind, InstrError, Opcode,
    OutputDecl, OutputKind, Program, RawInstr, Slot, VerifyErrorKind, FORMAT_VERSION,
};

const HEADER: &str = ".program p\n.input pts points\n.input zones polygons indexed\n.output o hits\n";

/// Assembles HEADER + `body` and returns the diagnostics (the program must not assemble).
fn errors(body: &str) -> Vec<Diagnostic> {
    match assemble("t.masm", &format!("{HEADER}{body}")) {
        Ok(_) => panic!("expected errors for:\n{body}"),
        Err(d) => d.0,
    }
}

/// The single diagnostic's `(line, col, message)`; the first body line is line 5.
fn only(body: &str) -> (u32, u32, String) {
    let e = errors(body);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    (e[0].line, e[0].col, e[0].message.clone())
}

fn valid_program() -> Program {
    assemble("ok.masm", include_str!("../../examples/pip_join.masm")).unwrap().program().clone()
}

#[test]
fn unknown_mnemonic() {
    assert_eq!(only("    frob g0, pts\n    halt\n"), (5, 5, "unknown mnemonic `frob`".into()));
}

#[test]
fn wrong_register_file() {
    let (line, col, msg) = only("    load f0, pts\n    emit o, g0\n    halt\n");
    assert_eq!((line, col), (5, 10));
    assert!(msg.starts_with("operand 1 of `load` must be a g register, found register `f0`"), "{msg}");
}

#[test]
fn wrong_register_file_in_overloaded_op_names_the_forms() {
    let (line, col, msg) = only("    load g0, pts\n    mov f0, g0\n    emit o, g0\n    halt\n");
    assert_eq!((line, col), (6, 13));
    assert!(msg.contains("forms: mov dst:f, src:f; mov dst:b, src:b; mov dst:g, src:g"), "{msg}");
}

#[test]
fn wrong_operand_count() {
    assert_eq!(
        only("    probe c0, zones\n    halt\n"),
        (5, 5, "`probe` takes 3 or 4 operands, found 2".into())
    );
}

#[test]
fn undefined_label() {
    assert_eq!(
        only("    load g0, pts\n    emit o, g0\n    jmp nowhere\n    halt\n"),
        (7, 9, "undefined label `nowhere`".into())
    );
}

#[test]
fn duplicate_label() {
    let (line, col, msg) = only("a:  load g0, pts\na:  emit o, g0\n    halt\n");
    assert_eq!((line, col), (6, 1));
    assert_eq!(msg, "label `a` is defined twice (first at line 5)");
}

#[test]
fn backward_jump_outside_a_cnext_loop() {
    let (line, col, msg) = only("    load g0, pts\nback:\n    emit o, g0\n    jmp back\n    halt\n");
    assert_eq!((line, col), (8, 9));
    assert!(msg.starts_with("backward jump to pc 1: only a jump back to the `cnext`"), "{msg}");
}

#[test]
fn backward_jump_to_a_cnext_from_outside_its_loop() {
    let body = "    load g0, pts\n    probe c0, zones, g0\nnext:\n    cnext g1, c0, done\n    emit o, g1\n    jmp next\ndone:\n    jmp next\n";
    let (line, col, msg) = only(body);
    assert_eq!((line, col), (12, 9));
    assert!(msg.starts_with("backward jump to pc 2"), "{msg}");
}

#[test]
fn missing_halt() {
    let (line, col, msg) = only("    load g0, pts\n    emit o, g0\n");
    assert_eq!((line, col), (6, 5));
    assert_eq!(msg, "control can run past the last instruction; end every path with `halt`");
}

#[test]
fn bad_literals() {
    let e =
        errors("    const f0, 1.2.3\n    const f1, 1e400\n    const f2, -nan\n    const f3, 1e\n    halt\n");
    let got: Vec<(u32, u32)> = e.iter().map(|d| (d.line, d.col)).collect();
    assert_eq!(got, vec![(5, 15), (6, 15), (7, 15), (8, 15)]);
    assert!(e[0].message.starts_with("bad float literal `1.2.3`"), "{}", e[0].message);
    assert!(e[1].message.contains("out of range for f64"), "{}", e[1].message);
    assert!(e[2].message.contains("`nan` takes no sign"), "{}", e[2].message);
    assert!(e[3].message.contains("exponent has no digits"), "{}", e[3].message);
}

#[test]
fn unexpected_character() {
    assert_eq!(only("    load g0, @pts\n    halt\n"), (5, 14, "unexpected character `@`".into()));
}

#[test]
fn unknown_names() {
    let e = errors("    load g0, pt\n    emit out, g0\n    const f0, eps\n    load g1, o\n    halt\n");
    let msgs: Vec<&str> = e.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        msgs,
        vec![
            "unknown input `pt`",
            "unknown output `out`",
            "unknown constant `eps` (declare it with `.const eps VALUE`)",
            "`o` is an output, not an input",
        ]
    );
}

#[test]
fn register_out_of_range_points_at_the_operand() {
    let e = errors("    load g0, pts\n    bbox f30, g0\n    area f99, g0\n    emit o, g0\n    halt\n");
    let got: Vec<(u32, u32, &str)> = e.iter().map(|d| (d.line, d.col, d.message.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (6, 10, "register f30..f33 is out of range (the f file has 32 registers)"),
            (7, 10, "register f99 is out of range (the f file has 32 registers)"),
        ]
    );
    let e = errors("    load g0, pts\n    area f256, g0\n    halt\n");
    assert_eq!(e[0].message, "register index `256` is too large");
}

#[test]
fn input_indexing_and_output_kinds() {
    let src = ".program p\n.input pts points\n.input zones polygons indexed\n.output o hits\n.output a f64\n";
    let body = "    load g0, zones\n    probe c0, pts, g0\n    store o, f0\n    emit a, g0\n    halt\n";
    let e = assemble("t.masm", &format!("{src}{body}")).unwrap_err().0;
    let got: Vec<(u32, u32, &str)> = e.iter().map(|d| (d.line, d.col, d.message.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (6, 14, "`load` needs a non-indexed input, but `zones` is indexed (reach it with `probe`)"),
            (7, 15, "`probe` needs an indexed input, but `pts` is not indexed"),
            (8, 11, "`store` writes a f64 output, but `o` is declared hits"),
            (9, 10, "`emit` writes a hits output, but `a` is declared f64"),
        ]
    );
}

#[test]
fn output_never_written_points_at_its_declaration() {
    let e =
        assemble("t.masm", ".program p\n.input pts points\n.output lonely count\n    halt\n").unwrap_err().0;
    assert_eq!((e[0].line, e[0].col, e[0].message.as_str()), (3, 9, "output `lonely` is never written"));
}

#[test]
fn row_source_cannot_be_indexed() {
    let src = ".program p\n.input zones polygons indexed\n.output n count\n    count n\n    halt\n";
    let e = assemble("t.masm", src).unwrap_err().0;
    assert_eq!((e[0].line, e[0].col), (2, 8));
    assert_eq!(e[0].message, "the first input `zones` is the row source and cannot be `indexed`");
}

#[test]
fn missing_program_directive() {
    let e = assemble("t.masm", "; nothing\n.input pts points\n    halt\n").unwrap_err().0;
    assert_eq!((e[0].line, e[0].col, e[0].message.as_str()), (2, 1, "missing `.program NAME` directive"));
}

#[test]
fn bad_directives() {
    let src =
        ".program p\n.input pts pointz\n.input 9x points\n.output o hitz\n.output f0 f64\n.frob\n    halt\n";
    let e = assemble("t.masm", src).unwrap_err().0;
    let got: Vec<(u32, u32)> = e.iter().map(|d| (d.line, d.col)).collect();
    assert_eq!(got, vec![(2, 12), (3, 8), (4, 11), (5, 9), (6, 1)], "{e:#?}");
    assert!(e[0].message.starts_with("unknown input kind `pointz`"));
    assert!(e[3].message.contains("spelled like a register"), "{}", e[3].message);
    assert!(e[4].message.starts_with("unknown directive `.frob`"));
}

#[test]
fn loop_that_reopens_its_cursor_is_rejected() {
    let body = "    load g0, pts\n    probe c0, zones, g0\nnext:\n    cnext g1, c0, done\n    probe c0, zones, g0\n    emit o, g1\n    jmp next\ndone:\n    halt\n";
    let (line, col, msg) = only(body);
    assert_eq!((line, col), (9, 5));
    assert!(msg.starts_with("`c0` is re-opened inside the candidate loop at pc 2"), "{msg}");
}

#[test]
fn nested_loops_may_reopen_the_inner_cursor() {
    let body = "    load g0, pts\n    probe c0, zones, g0\nouter:\n    cnext g1, c0, done\n    probe c1, zones, g1\ninner:\n    cnext g2, c1, outer_next\n    emit o, g2\n    jmp inner\nouter_next:\n    jmp outer\ndone:\n    halt\n";
    assemble("t.masm", &format!("{HEADER}{body}")).unwrap();
}

#[test]
fn overlapping_loops_are_rejected() {
    let body = "    load g0, pts\n    probe c0, zones, g0\n    probe c1, zones, g0\na:\n    cnext g1, c0, a_done\nb:\n    cnext g2, c1, b_done\n    jmp a\na_done:\n    jmp b\nb_done:\n    emit o, g1\n    halt\n";
    let e = errors(body);
    assert!(
        e.iter()
            .any(|d| d.message.starts_with("this candidate loop (pcs 4..7) overlaps the loop at pcs 3..6")),
        "{e:#?}"
    );
}

#[test]
fn cnext_must_exit_forward() {
    let body = "    load g0, pts\n    probe c0, zones, g0\nback:\n    emit o, g0\n    cnext g1, c0, back\n    halt\n";
    let (line, col, msg) = only(body);
    assert_eq!((line, col), (9, 19));
    assert!(msg.starts_with("`cnext` must exit forward"), "{msg}");
}

#[test]
fn several_errors_are_reported_at_once() {
    let e = errors("    frob\n    load q0, pts\n    jmp nowhere\n    const f0, 1x\n    halt\n");
    assert_eq!(e.len(), 4, "{e:#?}");
    let rendered = e[0].to_string();
    assert_eq!(rendered, "t.masm:5:5: error: unknown mnemonic `frob`\n    frob\n    ^~~~");
}

#[test]
fn truncated_mbc() {
    let bytes = valid_program().to_bytes();
    for len in [0, 3, 4, 7, 15, 16, 30, bytes.len() - 33, bytes.len() - 1] {
        let err = Program::from_bytes(&bytes[..len]).unwrap_err();
        match err.kind {
            DecodeErrorKind::Truncated { .. } | DecodeErrorKind::BadMagic { .. } => {}
            other => panic!("truncated to {len}: unexpected {other:?}"),
        }
        assert!(err.offset <= len, "offset {} past the end {len}", err.offset);
    }
    let err = Program::from_bytes(&bytes[..20]).unwrap_err();
    assert_eq!(err.to_string(), "byte offset 17: truncated: name needs 8 more bytes, 3 remain");
}

#[test]
fn wrong_magic() {
    let mut bytes = valid_program().to_bytes();
    bytes[0] = b'X';
    let err = Program::from_bytes(&bytes).unwrap_err();
    assert_eq!(err.offset, 0);
    assert!(matches!(err.kind, DecodeErrorKind::BadMagic { .. }));
    assert!(err.to_string().starts_with("byte offset 0: not a meridian program (bad magic"), "{err}");
}

#[test]
fn future_version() {
    let mut bytes = valid_program().to_bytes();
    bytes[4..6].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let err = Program::from_bytes(&bytes).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::UnsupportedVersion { found: FORMAT_VERSION + 1 });
    assert_eq!(err.to_string(), "byte offset 4: unsupported format version 2 (this build reads version 1)");
}

#[test]
fn corrupt_bytes_fail_the_hash() {
    let mut bytes = valid_program().to_bytes();
    let last_code_byte = bytes.len() - 33;
    bytes[last_code_byte] ^= 0x40;
    assert_eq!(Program::from_bytes(&bytes).unwrap_err().kind, DecodeErrorKind::HashMismatch);
}

#[test]
fn trailing_bytes() {
    let mut bytes = valid_program().to_bytes();
    bytes.push(0);
    assert_eq!(Program::from_bytes(&bytes).unwrap_err().kind, DecodeErrorKind::TrailingBytes(1));
}

#[test]
fn count_too_large_is_caught_before_allocating() {
    let mut bytes = valid_program().to_bytes();
    bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = Program::from_bytes(&bytes).unwrap_err();
    assert_eq!(err.offset, 12);
    assert!(matches!(err.kind, DecodeErrorKind::CountTooLarge { what: "instructions", .. }), "{err}");
}

#[test]
fn non_canonical_nan_constant() {
    let program = assemble("n.masm", include_str!("../../examples/near.masm")).unwrap().program().clone();
    let mut bytes = program.to_bytes();
    // near.masm has one constant (0.5), just before the code words.
    let k = bytes.len() - 32 - 8 * program.code().len() - 8;
    bytes[k..k + 8].copy_from_slice(&0x7ff8_0000_0000_0001u64.to_le_bytes());
    assert!(reseal(&mut bytes));
    let err = Program::from_bytes(&bytes).unwrap_err();
    assert_eq!(err.offset, k);
    assert!(err.to_string().contains("non-canonical NaN"), "{err}");
}

#[test]
fn bad_code_words_are_caught_by_the_verifier_with_their_pc() {
    let p = valid_program();
    let mut code = p.code().to_vec();
    code[1] = 0xee; // no such opcode
    let halt_pc = code.len() - 1;
    code[halt_pc] |= 1 << 8; // halt uses no field a
    let broken = Program::new(p.name(), p.inputs().to_vec(), p.outputs().to_vec(), vec![], code).unwrap();
    let errs = verify(&broken).unwrap_err().0;
    let by_pc: Vec<(Option<u32>, VerifyErrorKind)> = errs.into_iter().map(|e| (e.pc, e.kind)).collect();
    assert!(
        by_pc.contains(&(Some(1), VerifyErrorKind::BadInstruction(InstrError::UnknownOpcode(0xee)))),
        "{by_pc:?}"
    );
    let stray = InstrError::ReservedBits { opcode: Opcode::Halt, field: Slot::A, bits: 1 };
    assert!(by_pc.contains(&(Some(halt_pc as u32), VerifyErrorKind::BadInstruction(stray))), "{by_pc:?}");
}

#[test]
fn register_in_imm_must_fit_a_byte() {
    // dwithin's fourth register operand lives in imm; bits above its low byte are reserved.
    let word = RawInstr::new(Opcode::DWithin, &[0, 1, 2, 3]).encode() | (1 << 45);
    assert_eq!(
        RawInstr::decode(word),
        Err(InstrError::ReservedBits { opcode: Opcode::DWithin, field: Slot::Imm, bits: 1 << 13 })
    );
}

#[test]
fn signature_rules() {
    let input = |name: &str| InputDecl { name: name.into(), kind: InputKind::Points, indexed: false };
    let output = |name: &str| OutputDecl { name: name.into(), kind: OutputKind::Count };
    let halt = vec![RawInstr::new(Opcode::Halt, &[]).encode()];
    let dup = Program::new("p", vec![input("a")], vec![output("a")], vec![], halt.clone()).unwrap_err();
    assert!(dup.to_string().contains("declared twice"), "{dup}");
    assert!(Program::new("g3", vec![], vec![], vec![], halt.clone()).is_err());
    assert!(Program::new("p", vec![input("nan")], vec![], vec![], halt.clone()).is_err());
    let no_inputs = Program::new("p", vec![], vec![], vec![], halt).unwrap();
    assert_eq!(verify(&no_inputs).unwrap_err().0[0].kind, VerifyErrorKind::NoInputs);
    let empty = Program::new("p", vec![input("a")], vec![], vec![], vec![]).unwrap();
    assert_eq!(verify(&empty).unwrap_err().0[0].kind, VerifyErrorKind::EmptyCode);
}

#[test]
fn huge_constant_index_is_reported_without_overflow() {
    // affine g0, g0, k4294967295: the six-constant window would wrap a u32.
    let p = valid_program();
    let affine = RawInstr::new(Opcode::Affine, &[0, 0, u32::MAX]).encode();
    let halt = RawInstr::new(Opcode::Halt, &[]).encode();
    let q = Program::new("p", p.inputs().to_vec(), vec![], vec![], vec![affine, halt]).unwrap();
    let e = verify(&q).unwrap_err();
    assert_eq!(
        e.to_string(),
        "pc 0, operand 3: constant #4294967295..#4294967300 is out of range (the pool holds 0)"
    );
}

#[test]
fn builder_rejects_arguments_that_do_not_fit() {
    use meridian_bytecode::operand::OperandArg;
    use meridian_bytecode::{BuildError, Builder};
    let mut b = Builder::new("p");
    b.input("pts", InputKind::Points).unwrap();
    b.push(Opcode::MovF, &[OperandArg::Raw(256), OperandArg::Raw(1)]);
    b.halt();
    assert_eq!(
        b.finish().unwrap_err(),
        BuildError::BadArgument { pc: 0, operand: 0, why: "register index above 255" }
    );
    let mut b = Builder::new("p");
    b.input("pts", InputKind::Points).unwrap();
    b.push(Opcode::Const, &[OperandArg::Raw(0), OperandArg::Raw(0)]);
    b.push(Opcode::Halt, &[OperandArg::Raw(0)]);
    let e = b.finish().unwrap_err();
    assert_eq!(e, BuildError::BadArgument { pc: 0, operand: 1, why: "argument of the wrong form" });
}

#[test]
fn signature_errors_point_at_the_declaration() {
    let input = |name: &str| InputDecl { name: name.into(), kind: InputKind::Points, indexed: false };
    let halt = vec![RawInstr::new(Opcode::Halt, &[]).encode()];
    let p = Program::new("p", vec![input("aa"), input("bb")], vec![], vec![], halt).unwrap();
    let mut bytes = p.to_bytes();
    // Header (16), program name (len + "p": 16..18), input count (18); each input is kind,
    // flags, name length, name: the first at 19..24, the second at 24..29.
    assert_eq!(&bytes[27..29], b"bb");
    bytes[27..29].copy_from_slice(b"aa");
    reseal(&mut bytes);
    let err = Program::from_bytes(&bytes).unwrap_err();
    assert_eq!(err.offset, 24, "the second `aa` declaration is at fault");
    assert!(err.to_string().contains("`aa` is declared twice"), "{err}");
    bytes[27] = b'9';
    reseal(&mut bytes);
    let err = Program::from_bytes(&bytes).unwrap_err();
    assert_eq!(err.offset, 24);
    assert!(err.to_string().contains("invalid input name `9a`"), "{err}");
}
