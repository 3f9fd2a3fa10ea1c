//! Property tests: random valid programs round-trip byte-identically through the container
//! and through assembly text; random and mutated bytes never panic the decoders, the verifier
//! or the disassembler.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use meridian_bytecode::operand::OperandArg;
use meridian_bytecode::{
    assemble, disassemble, reseal, verify, Builder, Flow, InputKind, Instr, Label, Opcode, OperandKind,
    OutputKind, Program, RawInstr, RegFile, VerifiedProgram,
};
use proptest::prelude::*;

/// splitmix64: a small deterministic generator, so that one proptest seed is one program.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn float(&mut self) -> f64 {
        match self.below(8) {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => -0.0,
            4 => (self.below(2001) as f64 - 1000.0) / 8.0,
            5 => f64::from_bits(self.next()).clamp(-1e300, 1e300),
            _ => (self.next() as f64 / u64::MAX as f64 - 0.5) * 1e6,
        }
    }
}

struct Gen {
    rng: Rng,
    b: Builder,
    row_inputs: Vec<u32>,
    indexed: u32,
    outputs: Vec<(OutputKind, u32)>,
    /// Cursors driving the loops we are inside; a loop body must not re-open them.
    busy_cursors: Vec<u8>,
    /// Forward labels waiting to be bound, with how many more items to emit first.
    pending: Vec<(Label, u32)>,
}

const INPUT_KINDS: [InputKind; 4] =
    [InputKind::Points, InputKind::Polygons, InputKind::Lines, InputKind::Geometry];

impl Gen {
    fn new(seed: u64) -> Gen {
        let mut rng = Rng(seed);
        let mut b = Builder::new(format!("prog_{}", seed % 1000));
        let mut row_inputs = Vec::new();
        for i in 0..=rng.below(3) {
            let kind = INPUT_KINDS[rng.below(4) as usize];
            row_inputs.push(b.input(&format!("in{i}"), kind).unwrap().0);
        }
        let indexed = b.indexed_input("zones", INPUT_KINDS[rng.below(4) as usize]).unwrap().0;
        let outputs = OutputKind::ALL
            .iter()
            .map(|&k| (k, b.output(&format!("out_{}", k.keyword()), k).unwrap().0))
            .collect();
        Gen { rng, b, row_inputs, indexed, outputs, busy_cursors: Vec::new(), pending: Vec::new() }
    }

    fn reg(&mut self, file: RegFile, width: u8) -> u32 {
        self.rng.below(u64::from(file.limit()) - u64::from(width) + 1) as u32
    }

    fn output(&self, kind: OutputKind) -> u32 {
        self.outputs.iter().find(|(k, _)| *k == kind).map(|(_, id)| *id).unwrap()
    }

    /// Arguments for a straight-line op (no jumps).
    fn args(&mut self, op: Opcode) -> Vec<OperandArg> {
        op.operands()
            .iter()
            .map(|kind| match *kind {
                OperandKind::Reg { file, width, .. } => OperandArg::Raw(self.reg(file, width)),
                OperandKind::Input { indexed: false } => {
                    let i = self.rng.below(self.row_inputs.len() as u64) as usize;
                    OperandArg::Raw(self.row_inputs[i])
                }
                OperandKind::Input { indexed: true } => OperandArg::Raw(self.indexed),
                OperandKind::Output(k) => OperandArg::Raw(self.output(k)),
                OperandKind::Const => OperandArg::Const(self.rng.float()),
                OperandKind::Matrix => OperandArg::Matrix([(); 6].map(|_| self.rng.float())),
                OperandKind::Jump => unreachable!("straight-line ops have no jump operand"),
            })
            .collect()
    }

    fn writes_busy_cursor(&self, op: Opcode, args: &[OperandArg]) -> bool {
        op.operands().iter().zip(args).any(|(k, a)| {
            matches!(k, OperandKind::Reg { file: RegFile::C, .. })
                && matches!(a, OperandArg::Raw(c) if self.busy_cursors.contains(&(*c as u8)))
        })
    }

    fn tick(&mut self) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].1 == 0 {
                let (label, _) = self.pending.remove(i);
                self.b.bind(label);
            } else {
                self.pending[i].1 -= 1;
                i += 1;
            }
        }
    }

    fn items(&mut self, n: u32, depth: u32, head: Option<Label>) {
        for _ in 0..n {
            self.tick();
            match self.rng.below(100) {
                0..=69 => {
                    let simple: Vec<Opcode> = Opcode::ALL
                        .iter()
                        .copied()
                        .filter(|o| o.flow() == Flow::Next && !o.operands().contains(&OperandKind::Jump))
                        .collect();
                    let op = simple[self.rng.below(simple.len() as u64) as usize];
                    let args = self.args(op);
                    if !self.writes_busy_cursor(op, &args) {
                        self.b.push(op, &args);
                    }
                }
                70..=84 => {
                    let label = self.b.label();
                    let skip = self.rng.below(4) as u32;
                    let cond = meridian_bytecode::BReg(self.reg(RegFile::B, 1) as u8);
                    match self.rng.below(3) {
                        0 => self.b.jmp(label),
                        1 => self.b.jt(cond, label),
                        _ => self.b.jf(cond, label),
                    };
                    self.pending.push((label, skip));
                }
                85..=89 if head.is_some() => {
                    // `continue`: a conditional back edge to the enclosing loop's head.
                    let b = meridian_bytecode::BReg(self.reg(RegFile::B, 1) as u8);
                    if let Some(h) = head {
                        self.b.jt(b, h);
                    }
                }
                _ if depth < 2 => self.candidate_loop(depth),
                _ => {}
            }
        }
    }

    fn candidate_loop(&mut self, depth: u32) {
        let free: Vec<u8> =
            (0..RegFile::C.limit() as u8).filter(|c| !self.busy_cursors.contains(c)).collect();
        let cursor = meridian_bytecode::CReg(free[self.rng.below(free.len() as u64) as usize]);
        let geom = meridian_bytecode::GReg(self.reg(RegFile::G, 1) as u8);
        if self.rng.chance(50) {
            self.b.probe(cursor, meridian_bytecode::InputId(self.indexed), geom);
        } else {
            let d = meridian_bytecode::FReg(self.reg(RegFile::F, 1) as u8);
            self.b.probe_dist(cursor, meridian_bytecode::InputId(self.indexed), geom, d);
        }
        // Labels pending from outside are bound before the loop, so none lands past its exit
        // in a way that matters; binding them inside would still verify (forward jumps).
        let (head, exit) = (self.b.label(), self.b.label());
        self.b.bind(head);
        let cand = meridian_bytecode::GReg(self.reg(RegFile::G, 1) as u8);
        self.b.cnext(cand, cursor, exit);
        self.busy_cursors.push(cursor.0);
        let outer_pending = std::mem::take(&mut self.pending);
        let n = self.rng.below(6) as u32;
        self.items(n, depth + 1, Some(head));
        for (label, _) in std::mem::take(&mut self.pending) {
            self.b.bind(label);
        }
        self.pending = outer_pending;
        self.b.jmp(head);
        self.b.bind(exit);
        self.busy_cursors.pop();
    }

    fn finish(mut self) -> VerifiedProgram {
        let n = self.rng.below(40) as u32;
        self.items(n, 0, None);
        for (label, _) in std::mem::take(&mut self.pending) {
            self.b.bind(label);
        }
        let (f, b, g) = (meridian_bytecode::FReg(0), meridian_bytecode::BReg(0), meridian_bytecode::GReg(0));
        use meridian_bytecode::OutputId as O;
        self.b.store_f(O(self.output(OutputKind::F64)), f);
        self.b.store_b(O(self.output(OutputKind::Bool)), b);
        self.b.store_g(O(self.output(OutputKind::Geometry)), g);
        self.b.emit(O(self.output(OutputKind::Hits)), g);
        self.b.count(O(self.output(OutputKind::Count)));
        self.b.sum(O(self.output(OutputKind::Sum)), f);
        self.b.halt();
        match self.b.finish() {
            Ok(p) => p,
            Err(e) => panic!("the generator built an invalid program: {e}"),
        }
    }
}

fn random_program(seed: u64) -> VerifiedProgram {
    Gen::new(seed).finish()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn container_round_trip(seed in any::<u64>()) {
        let p = random_program(seed);
        let bytes = p.program().to_bytes();
        let decoded = Program::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&decoded, p.program());
        prop_assert_eq!(decoded.to_bytes(), bytes);
        prop_assert_eq!(decoded.hash(), p.hash());
    }

    #[test]
    fn text_round_trip(seed in any::<u64>()) {
        let p = random_program(seed);
        let text = disassemble(p.program()).unwrap();
        let again = match assemble("gen.masm", &text) {
            Ok(a) => a,
            Err(d) => return Err(TestCaseError::fail(format!("{d}\n--- text ---\n{text}"))),
        };
        prop_assert_eq!(again.program().to_bytes(), p.program().to_bytes());
        // And the text itself is a fixed point.
        prop_assert_eq!(disassemble(again.program()).unwrap(), text);
    }

    #[test]
    fn words_round_trip_and_decoders_agree(seed in any::<u64>()) {
        let p = random_program(seed);
        for (&word, fast) in p.program().code().iter().zip(p.instrs()) {
            let checked = Instr::decode(word).unwrap();
            prop_assert_eq!(checked, fast);
            prop_assert_eq!(checked.encode(), word);
            prop_assert_eq!(Instr::from_raw(&checked.to_raw()), checked);
        }
    }

    #[test]
    fn random_words_decode_or_fail_cleanly(word in any::<u64>()) {
        if let Ok(raw) = RawInstr::decode(word) {
            prop_assert_eq!(raw.encode(), word);
            prop_assert_eq!(Instr::decode(word).unwrap().encode(), word);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = bytes;
        if bytes.len() > 8 && bytes[0] % 2 == 0 {
            // Half the time, start like a real program so the header checks are passed.
            bytes[..4].copy_from_slice(b"MRDN");
            bytes[4..6].copy_from_slice(&1u16.to_le_bytes());
            reseal(&mut bytes);
        }
        if let Ok(p) = Program::from_bytes(&bytes) {
            if let Err(e) = verify(&p) {
                let _ = e.to_string();
            }
            let _ = disassemble(&p);
        }
    }

    #[test]
    fn mutated_programs_never_panic(seed in any::<u64>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let p = random_program(seed);
        let mut bytes = p.program().to_bytes();
        let body = bytes.len() - 32;
        for (at, bits) in flips {
            bytes[at % body] ^= bits.max(1);
        }
        prop_assert!(Program::from_bytes(&bytes).is_err(), "a flipped byte must break the hash");
        reseal(&mut bytes);
        if let Ok(mutated) = Program::from_bytes(&bytes) {
            if let Ok(v) = verify(&mutated) {
                // Whatever verifies must also disassemble, and its words decode consistently.
                disassemble(v.program()).unwrap();
                for (&w, fast) in v.program().code().iter().zip(v.instrs()) {
                    prop_assert_eq!(Instr::decode(w).unwrap(), fast);
                }
            } else if let Err(e) = verify(&mutated) {
                let _ = e.to_string();
                let _ = disassemble(&mutated);
            }
        }
    }

    #[test]
    fn random_code_never_panics_the_verifier(seed in any::<u64>(), words in proptest::collection::vec(any::<u64>(), 0..64)) {
        // A valid signature with random code: the verifier must reject or accept, not panic.
        let p = random_program(seed);
        let mut rng = Rng(seed);
        // Bias words towards real opcodes with small fields, so deeper checks are reached.
        let words: Vec<u64> = words
            .into_iter()
            .map(|w| {
                if rng.chance(70) {
                    let op = Opcode::ALL[rng.below(Opcode::ALL.len() as u64) as usize] as u64;
                    op | ((w & 0x0707_0707) << 8) | ((w >> 40) % 80) << 32
                } else {
                    w
                }
            })
            .collect();
        let q = Program::new(p.program().name(), p.program().inputs().to_vec(), p.program().outputs().to_vec(),
            p.program().consts().to_vec(), words).unwrap();
        match verify(&q) {
            Ok(v) => {
                let text = disassemble(v.program()).unwrap();
                assemble("random.masm", &text).unwrap();
            }
            // Formatting the errors must not panic either (it once overflowed).
            Err(errors) => prop_assert!(!errors.to_string().is_empty()),
        }
    }

    #[test]
    fn random_text_never_panics_the_assembler(lines in proptest::collection::vec(line_strategy(), 0..24)) {
        let text = lines.join("\n");
        if let Err(d) = assemble("soup.masm", &text) {
            for diag in d.0 {
                prop_assert!(diag.line >= 1 && diag.col >= 1);
                let _ = diag.to_string();
            }
        }
    }
}

/// Lines assembled from plausible tokens, so the parser's deeper paths are reached.
fn line_strategy() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just(".program p".to_owned()),
        Just(".input pts points".to_owned()),
        Just(".input z polygons indexed".to_owned()),
        Just(".output o hits".to_owned()),
        Just(".output n count".to_owned()),
        Just(".const k 2.5".to_owned()),
        proptest::sample::select(Opcode::ALL.iter().map(|o| o.mnemonic().to_owned()).collect::<Vec<_>>()),
        Just("f0".to_owned()),
        Just("g1".to_owned()),
        Just("b2".to_owned()),
        Just("c0".to_owned()),
        Just("f999".to_owned()),
        Just("pts".to_owned()),
        Just("z".to_owned()),
        Just("o".to_owned()),
        Just("n".to_owned()),
        Just("k".to_owned()),
        Just("L".to_owned()),
        Just("L:".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("; c".to_owned()),
        Just("-1e-3".to_owned()),
        Just("nan".to_owned()),
        Just("-inf".to_owned()),
        Just("1e999".to_owned()),
        Just("é".to_owned()),
        Just("\t".to_owned()),
        Just(".".to_owned()),
        Just("-".to_owned()),
        Just("1.".to_owned()),
        "[ -~]{0,6}",
    ];
    proptest::collection::vec(token, 0..8).prop_map(|t| t.join(" "))
}

#[test]
fn generator_covers_every_op() {
    // The round-trip properties are only as good as the programs they see.
    let mut seen = std::collections::HashSet::new();
    for seed in 0..400 {
        for i in random_program(seed).instrs() {
            seen.insert(i.opcode());
        }
    }
    let missing: Vec<_> = Opcode::ALL.iter().filter(|o| !seen.contains(o)).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
}
