//! The random program generator the property tests (and the device differential tests in
//! `meridian-cuda-host`, which include this file by path) draw from: one seed, one verified
//! program, covering every op, with nested candidate loops and forward jumps.
#![allow(dead_code)] // each including test uses part of it

use meridian_bytecode::operand::OperandArg;
use meridian_bytecode::{
    Builder, Flow, InputKind, Label, Opcode, OperandKind, OutputKind, RegFile, VerifiedProgram,
};

/// splitmix64: a small deterministic generator, so that one proptest seed is one program.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn float(&mut self) -> f64 {
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
    /// Only what the GPU runs: no `affine`, `simplify` or geometry output.
    gpu: bool,
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
    fn new(seed: u64, gpu: bool) -> Gen {
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
            .filter(|&&k| !(gpu && k == OutputKind::Geometry))
            .map(|&k| (k, b.output(&format!("out_{}", k.keyword()), k).unwrap().0))
            .collect();
        Gen { rng, gpu, b, row_inputs, indexed, outputs, busy_cursors: Vec::new(), pending: Vec::new() }
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
                    let gpu = self.gpu;
                    let simple: Vec<Opcode> = Opcode::ALL
                        .iter()
                        .copied()
                        .filter(|o| o.flow() == Flow::Next && !o.operands().contains(&OperandKind::Jump))
                        .filter(|o| !(gpu && matches!(o, Opcode::Affine | Opcode::Simplify | Opcode::StoreG)))
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
        if !self.gpu {
            self.b.store_g(O(self.output(OutputKind::Geometry)), g);
        }
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

/// The program of `seed`: every op may appear.
pub fn random_program(seed: u64) -> VerifiedProgram {
    Gen::new(seed, false).finish()
}

/// The program of `seed` among those the GPU runs: no constructive ops, no geometry output.
pub fn random_gpu_program(seed: u64) -> VerifiedProgram {
    Gen::new(seed, true).finish()
}
