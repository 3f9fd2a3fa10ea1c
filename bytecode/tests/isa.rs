//! Invariants of the op table, and the builder producing the same bytes as assembly text.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::HashSet;

use meridian_bytecode::{
    assemble, BReg, Builder, CReg, FReg, GReg, InputKind, Opcode, OperandKind, OutputKind, RawInstr, RegFile,
    Slot, MAX_OPERANDS,
};

#[test]
fn opcodes_are_distinct_and_nonzero() {
    let codes: HashSet<u8> = Opcode::ALL.iter().map(|o| *o as u8).collect();
    assert_eq!(codes.len(), Opcode::ALL.len());
    assert!(!codes.contains(&0), "opcode 0 is reserved so that zeroed memory never decodes");
    for op in Opcode::ALL {
        assert_eq!(Opcode::from_u8(*op as u8), Some(*op));
    }
    let names: HashSet<&str> = Opcode::ALL.iter().map(|o| o.name()).collect();
    assert_eq!(names.len(), Opcode::ALL.len());
}

#[test]
fn every_op_fits_the_word() {
    for op in Opcode::ALL {
        let kinds = op.operands();
        assert!(kinds.len() <= MAX_OPERANDS, "{op:?} has too many operands");
        assert_eq!(kinds.len(), op.operand_names().len());
        let slots: Vec<Slot> = op.slots().collect();
        let distinct: HashSet<Slot> = slots.iter().copied().collect();
        assert_eq!(distinct.len(), slots.len(), "{op:?}: two operands share a field: {slots:?}");
        let imm_users = kinds.iter().filter(|k| !k.is_reg()).count();
        assert!(imm_users <= 1, "{op:?} has {imm_users} operands that need imm");
        assert!(!op.doc().trim().is_empty(), "{op:?} has no doc line");
    }
}

#[test]
fn every_op_encodes_and_decodes_with_extreme_fields() {
    for op in Opcode::ALL {
        for fill in [0u32, 1, 0x7f, 0xff] {
            let values: Vec<u32> = op
                .operands()
                .iter()
                .map(|k| if k.is_reg() { fill } else { fill.wrapping_mul(0x0101_0101) })
                .collect();
            let raw = RawInstr::new(*op, &values);
            let word = raw.encode();
            assert_eq!(word & 0xff, *op as u64);
            assert_eq!(RawInstr::decode(word), Ok(raw), "{op:?} with fill {fill:#x}");
        }
    }
}

#[test]
fn overloads_are_told_apart_by_their_operands() {
    // Two ops with one mnemonic must differ in arity or in the register file of some operand,
    // or the assembler could not choose between them.
    let shape = |op: &Opcode| -> Vec<String> {
        op.operands()
            .iter()
            .flat_map(|k| {
                let class = match k {
                    OperandKind::Reg { file, .. } => file.to_string(),
                    OperandKind::Const | OperandKind::Matrix => "number-or-name".to_owned(),
                    _ => "name".to_owned(),
                };
                std::iter::repeat_n(class, k.syntax_width())
            })
            .collect()
    };
    for a in Opcode::ALL {
        for b in Opcode::ALL {
            if a != b && a.mnemonic() == b.mnemonic() {
                assert_ne!(shape(a), shape(b), "{a:?} and {b:?} cannot be told apart in assembly");
            }
        }
    }
}

#[test]
fn register_limits_fit_the_encoding() {
    for file in RegFile::ALL {
        assert!(file.limit() <= 255, "{file} registers must fit a byte field");
    }
}

fn text(name: &str) -> Vec<u8> {
    let path = format!("{}/../examples/{name}.masm", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(&path).unwrap();
    assemble(&path, &source).unwrap().program().to_bytes()
}

#[test]
fn builder_matches_measure() {
    let mut b = Builder::new("measure");
    let shapes = b.input("shapes", InputKind::Geometry).unwrap();
    let area = b.output("area", OutputKind::F64).unwrap();
    let length = b.output("length", OutputKind::F64).unwrap();
    b.load(GReg(0), shapes);
    b.area(FReg(0), GReg(0));
    b.length(FReg(1), GReg(0));
    b.store_f(area, FReg(0));
    b.store_f(length, FReg(1));
    b.halt();
    assert_eq!(b.finish().unwrap().program().to_bytes(), text("measure"));
}

#[test]
fn builder_matches_bounds() {
    let mut b = Builder::new("bounds");
    let shapes = b.input("shapes", InputKind::Geometry).unwrap();
    let outs: Vec<_> = ["minx", "miny", "maxx", "maxy", "cx", "cy"]
        .iter()
        .map(|n| b.output(n, OutputKind::F64).unwrap())
        .collect();
    b.load(GReg(0), shapes);
    b.bbox(FReg(0), GReg(0));
    b.centroid(FReg(4), GReg(0));
    for (i, out) in outs.iter().enumerate() {
        b.store_f(*out, FReg(i as u8));
    }
    b.halt();
    assert_eq!(b.finish().unwrap().program().to_bytes(), text("bounds"));
}

#[test]
fn builder_matches_pip_join() {
    let mut b = Builder::new("pip_join");
    let pts = b.input("pts", InputKind::Points).unwrap();
    let zones = b.indexed_input("zones", InputKind::Polygons).unwrap();
    let pairs = b.output("pairs", OutputKind::Hits).unwrap();
    let (next, done) = (b.label(), b.label());
    b.load(GReg(0), pts);
    b.probe(CReg(0), zones, GReg(0));
    b.bind(next);
    b.cnext(GReg(1), CReg(0), done);
    b.contains(BReg(0), GReg(1), GReg(0));
    b.jf(BReg(0), next);
    b.emit(pairs, GReg(1));
    b.jmp(next);
    b.bind(done);
    b.halt();
    assert_eq!(b.finish().unwrap().program().to_bytes(), text("pip_join"));
}

#[test]
fn builder_matches_near() {
    let mut b = Builder::new("near");
    let pts = b.input("pts", InputKind::Points).unwrap();
    let sites = b.indexed_input("sites", InputKind::Points).unwrap();
    let pairs = b.output("pairs", OutputKind::Hits).unwrap();
    let total = b.output("total", OutputKind::Count).unwrap();
    let (next, done) = (b.label(), b.label());
    b.load(GReg(0), pts);
    b.constant(FReg(0), 0.5);
    b.probe_dist(CReg(0), sites, GReg(0), FReg(0));
    b.bind(next);
    b.cnext(GReg(1), CReg(0), done);
    b.dwithin(BReg(0), GReg(0), GReg(1), FReg(0));
    b.jf(BReg(0), next);
    b.emit(pairs, GReg(1));
    b.count(total);
    b.jmp(next);
    b.bind(done);
    b.halt();
    assert_eq!(b.finish().unwrap().program().to_bytes(), text("near"));
}

#[test]
fn builder_matches_moved() {
    let mut b = Builder::new("moved");
    let shapes = b.input("shapes", InputKind::Geometry).unwrap();
    let moved = b.output("moved", OutputKind::Geometry).unwrap();
    b.load(GReg(0), shapes);
    b.affine(GReg(1), GReg(0), [2.0, 0.0, 0.0, 2.0, 10.0, -5.0]);
    b.constant(FReg(0), 0.01);
    b.simplify(GReg(2), GReg(1), FReg(0));
    b.store_g(moved, GReg(2));
    b.halt();
    assert_eq!(b.finish().unwrap().program().to_bytes(), text("moved"));
}

#[test]
fn builder_reports_label_misuse() {
    let mut b = Builder::new("p");
    b.input("pts", InputKind::Points).unwrap();
    let l = b.label();
    b.jmp(l);
    b.halt();
    assert!(matches!(
        b.clone().finish(),
        Err(meridian_bytecode::BuildError::UnboundLabel { first_use: 0, .. })
    ));
    b.bind(l);
    b.bind(l);
    assert!(matches!(b.finish(), Err(meridian_bytecode::BuildError::LabelBoundTwice(_))));
}

#[test]
fn constant_pool_is_canonical() {
    let mut b = Builder::new("p");
    let pts = b.input("pts", InputKind::Points).unwrap();
    let out = b.output("o", OutputKind::Sum).unwrap();
    b.load(GReg(0), pts);
    b.constant(FReg(0), 0.5);
    b.constant(FReg(1), 0.5); // shared
    b.constant(FReg(2), -0.0); // distinct from 0.0 by bits
    b.constant(FReg(3), 0.0);
    b.constant(FReg(4), f64::from_bits(0x7ff8_0000_0000_0001)); // any NaN becomes canonical
    b.affine(GReg(1), GReg(0), [1.0, 0.0, 0.0, 1.0, 0.5, 0.5]);
    b.affine(GReg(2), GReg(0), [1.0, 0.0, 0.0, 1.0, 0.5, 0.5]); // the same block
    b.sum(out, FReg(0));
    b.halt();
    let p = b.finish().unwrap();
    let bits: Vec<u64> = p.program().consts().iter().map(|c| c.to_bits()).collect();
    let expected: Vec<u64> =
        [0.5f64, -0.0, 0.0, f64::NAN, 1.0, 0.0, 0.0, 1.0, 0.5, 0.5].iter().map(|c| c.to_bits()).collect();
    assert_eq!(bits, expected);
}

#[test]
fn syntax_variants_assemble_to_the_same_bytes() {
    let plain = text("near");
    // CRLF line ends, tabs, labels sharing a line with their instruction, several labels on
    // one line, comments everywhere, a named constant, and directives after code.
    let variant = "; header comment\r\n\
        .program near ; trailing comment\r\n\
        .input\tpts points\r\n\
        \tload g0,pts\r\n\
        \tconst f0, half\r\n\
        .input sites points indexed\r\n\
        .output pairs hits\r\n\
        .output total count\r\n\
        .const half 5e-1\r\n\
        \tprobe c0 , sites , g0 , f0\r\n\
        next: again: cnext g1, c0, done\r\n\
        \tdwithin b0, g0, g1, f0 ; test\r\n\
        \tjf b0, again\r\n\
        \temit pairs, g1\r\n\
        \tcount total\r\n\
        \tjmp next\r\n\
        done: halt\r\n";
    let built = assemble("variant.masm", variant).unwrap().program().to_bytes();
    assert_eq!(built, plain);
}

#[test]
fn label_past_the_end_is_a_jump_out_of_range() {
    let e = assemble("t.masm", ".program p\n.input pts points\n    jmp end\n    halt\nend:\n").unwrap_err().0;
    assert_eq!((e[0].line, e[0].col), (3, 9));
    assert_eq!(e[0].message, "jump target 2 is past the end of the code (2 instructions)");
}
