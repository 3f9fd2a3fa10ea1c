//! The random program generator the property tests (and the device differential tests in
//! `meridian-cuda-host`, which include this file by path) draw from: one seed, one verified
//! program, covering every op, with nested candidate loops and forward jumps.
#![allow(dead_code)] // each including test uses part of it

use meridian_bytecode::operand::OperandArg;
use meridian_bytecode::{
    Access, Builder, Flow, InputKind, Label, Opcode, OperandKind, OutputKind, RegFile, VerifiedProgram,
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

/// Binds the forward labels whose turn has come and counts the others down by one item.
fn bind_due(b: &mut Builder, pending: &mut Vec<(Label, u32)>) {
    let mut i = 0;
    while i < pending.len() {
        if pending[i].1 == 0 {
            let (label, _) = pending.remove(i);
            b.bind(label);
        } else {
            pending[i].1 -= 1;
            i += 1;
        }
    }
}

/// The ops that neither jump nor end a program; with `gpu`, without constructive ops and
/// geometry stores unless `constructive` (what the GPU JIT refuses; the GPU interpreter runs
/// them).
fn straight_line_ops(gpu: bool, constructive: bool) -> Vec<Opcode> {
    Opcode::ALL
        .iter()
        .copied()
        .filter(|o| o.flow() == Flow::Next && !o.operands().contains(&OperandKind::Jump))
        .filter(|o| {
            !(gpu && !constructive && matches!(o, Opcode::Affine | Opcode::Simplify | Opcode::StoreG))
        })
        .collect()
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
        bind_due(&mut self.b, &mut self.pending);
    }

    fn items(&mut self, n: u32, depth: u32, head: Option<Label>) {
        for _ in 0..n {
            self.tick();
            match self.rng.below(100) {
                0..=69 => {
                    let simple = straight_line_ops(self.gpu, false);
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

/// A generator whose programs compute: every row input is loaded first, constants of the
/// data's scale set, and operands are drawn from registers already written (mostly), so
/// values flow from the data to the outputs through every op, candidate loops included.
/// [`random_program`]'s programs mostly read registers nothing wrote (null), which suits
/// round-trip tests but exercises little of an executor.
struct Dataflow {
    rng: Rng,
    gpu: bool,
    /// With `gpu`: `affine` and `simplify` too (the GPU interpreter runs them), with matrices
    /// that rarely send a coordinate out of range (which fails the whole job).
    constructive: bool,
    b: Builder,
    row_inputs: Vec<u32>,
    indexed: u32,
    outputs: Vec<(OutputKind, u32)>,
    defined: [Vec<u32>; 4],
    busy_cursors: Vec<u8>,
    pending: Vec<(Label, u32)>,
}

/// Written only by the prologue: a small non-negative distance for `probe` and `dwithin`.
const DIST_REG: u32 = 31;

impl Dataflow {
    fn new(seed: u64, gpu: bool, constructive: bool) -> Dataflow {
        let mut rng = Rng(seed);
        let mut b = Builder::new(format!("flow_{}", seed % 1000));
        let mut row_inputs = Vec::new();
        for i in 0..=rng.below(3) {
            let kind = INPUT_KINDS[rng.below(4) as usize];
            row_inputs.push(b.input(&format!("in{i}"), kind).unwrap().0);
        }
        let indexed = b.indexed_input("zones", INPUT_KINDS[rng.below(4) as usize]).unwrap().0;
        let outputs = OutputKind::ALL
            .iter()
            .filter(|&&k| !(gpu && !constructive && k == OutputKind::Geometry))
            .map(|&k| (k, b.output(&format!("out_{}", k.keyword()), k).unwrap().0))
            .collect();
        Dataflow {
            rng,
            gpu,
            constructive,
            b,
            row_inputs,
            indexed,
            outputs,
            defined: Default::default(),
            busy_cursors: Vec::new(),
            pending: Vec::new(),
        }
    }

    fn output(&self, kind: OutputKind) -> u32 {
        self.outputs.iter().find(|(k, _)| *k == kind).map(|(_, id)| *id).unwrap()
    }

    /// A constant of the data's scale (grid values, halves), sometimes an exceptional one.
    fn constant(&mut self) -> f64 {
        match self.rng.below(10) {
            0 => self.rng.float(),
            1..=2 => self.rng.below(17) as f64 / 2.0,
            3 => -(self.rng.below(9) as f64),
            _ => self.rng.below(9) as f64,
        }
    }

    /// A register of `file` to read: one written before, mostly.
    fn src(&mut self, file: RegFile) -> u32 {
        let d = &self.defined[file.index()];
        if !d.is_empty() && self.rng.chance(90) {
            d[self.rng.below(d.len() as u64) as usize]
        } else {
            self.rng.below(u64::from(file.limit())) as u32
        }
    }

    /// A register of `file` to write, `width` wide (never the distance register).
    fn dst(&mut self, file: RegFile, width: u32) -> u32 {
        let limit = if file == RegFile::F { DIST_REG } else { file.limit() };
        let r = self.rng.below(u64::from(limit - width + 1)) as u32;
        for k in 0..width {
            if !self.defined[file.index()].contains(&(r + k)) {
                self.defined[file.index()].push(r + k);
            }
        }
        r
    }

    fn args(&mut self, op: Opcode) -> Option<Vec<OperandArg>> {
        let mut args = Vec::new();
        // Reads first (a dst may alias a src, as in real programs).
        let kinds = op.operands();
        let mut values = vec![OperandArg::Raw(0); kinds.len()];
        for (i, kind) in kinds.iter().enumerate() {
            if let OperandKind::Reg { file, access: Access::Read, .. } = *kind {
                values[i] = OperandArg::Raw(if file == RegFile::F && self.rng.chance(15) {
                    DIST_REG
                } else {
                    self.src(file)
                });
            }
        }
        for (i, kind) in kinds.iter().enumerate() {
            values[i] = match *kind {
                OperandKind::Reg { access: Access::Read, .. } => values[i],
                OperandKind::Reg { file: RegFile::C, .. } => return None,
                OperandKind::Reg { file, width, .. } => OperandArg::Raw(self.dst(file, u32::from(width))),
                OperandKind::Input { indexed: false } => {
                    OperandArg::Raw(self.row_inputs[self.rng.below(self.row_inputs.len() as u64) as usize])
                }
                OperandKind::Input { indexed: true } => OperandArg::Raw(self.indexed),
                OperandKind::Output(k) => OperandArg::Raw(self.output(k)),
                OperandKind::Const => OperandArg::Const(self.constant()),
                OperandKind::Matrix if self.constructive && !self.rng.chance(5) => {
                    OperandArg::Matrix([(); 6].map(|_| self.rng.below(17) as f64 / 4.0 - 2.0))
                }
                OperandKind::Matrix => OperandArg::Matrix([(); 6].map(|_| self.constant())),
                OperandKind::Jump => return None,
            };
        }
        args.extend(values);
        Some(args)
    }

    fn tick(&mut self) {
        bind_due(&mut self.b, &mut self.pending);
    }

    fn items(&mut self, n: u32, depth: u32, head: Option<Label>) {
        for _ in 0..n {
            self.tick();
            match self.rng.below(100) {
                0..=74 => {
                    let mut simple = straight_line_ops(self.gpu, self.constructive);
                    simple.retain(|o| !matches!(o, Opcode::Probe | Opcode::ProbeDist));
                    if self.constructive && self.rng.chance(25) {
                        // Often enough that most programs construct, and use what they built.
                        simple = vec![Opcode::Affine, Opcode::Simplify];
                    }
                    let op = simple[self.rng.below(simple.len() as u64) as usize];
                    if let Some(args) = self.args(op) {
                        self.b.push(op, &args);
                    }
                }
                75..=84 => {
                    let label = self.b.label();
                    let skip = self.rng.below(4) as u32;
                    let cond = meridian_bytecode::BReg(self.src(RegFile::B) as u8);
                    match self.rng.below(3) {
                        0 => self.b.jmp(label),
                        1 => self.b.jt(cond, label),
                        _ => self.b.jf(cond, label),
                    };
                    self.pending.push((label, skip));
                }
                85..=87 if head.is_some() => {
                    let cond = meridian_bytecode::BReg(self.src(RegFile::B) as u8);
                    if let Some(h) = head {
                        self.b.jt(cond, h);
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
        let geom = meridian_bytecode::GReg(self.src(RegFile::G) as u8);
        if self.rng.chance(50) {
            self.b.probe(cursor, meridian_bytecode::InputId(self.indexed), geom);
        } else {
            self.b.probe_dist(
                cursor,
                meridian_bytecode::InputId(self.indexed),
                geom,
                meridian_bytecode::FReg(DIST_REG as u8),
            );
        }
        let (head, exit) = (self.b.label(), self.b.label());
        self.b.bind(head);
        let cand = meridian_bytecode::GReg(self.dst(RegFile::G, 1) as u8);
        self.b.cnext(cand, cursor, exit);
        self.busy_cursors.push(cursor.0);
        let outer_pending = std::mem::take(&mut self.pending);
        if self.rng.chance(60) {
            // The usual body: a predicate between the candidate and the probe geometry.
            let flag = meridian_bytecode::BReg(self.dst(RegFile::B, 1) as u8);
            let preds =
                [Opcode::Contains, Opcode::Within, Opcode::Intersects, Opcode::Covers, Opcode::Touches];
            let op = preds[self.rng.below(preds.len() as u64) as usize];
            let (a, b) = if self.rng.chance(50) { (cand, geom) } else { (geom, cand) };
            self.b.push(
                op,
                &[
                    OperandArg::Raw(u32::from(flag.0)),
                    OperandArg::Raw(u32::from(a.0)),
                    OperandArg::Raw(u32::from(b.0)),
                ],
            );
            self.b.jf(flag, head);
        }
        if self.rng.chance(70) {
            self.b.emit(meridian_bytecode::OutputId(self.output(OutputKind::Hits)), cand);
        }
        let n = self.rng.below(5) as u32;
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
        for (i, input) in self.row_inputs.clone().into_iter().enumerate() {
            self.b.load(meridian_bytecode::GReg(i as u8), meridian_bytecode::InputId(input));
            self.defined[RegFile::G.index()].push(i as u32);
        }
        let d = [0.0, 0.5, 1.0, 2.5][self.rng.below(4) as usize];
        self.b.constant(meridian_bytecode::FReg(DIST_REG as u8), d);
        for k in 0..4 {
            let v = self.constant();
            self.b.constant(meridian_bytecode::FReg(k), v);
            self.defined[RegFile::F.index()].push(u32::from(k));
        }
        self.b.lt(meridian_bytecode::BReg(0), meridian_bytecode::FReg(0), meridian_bytecode::FReg(1));
        self.defined[RegFile::B.index()].push(0);
        let n = 8 + self.rng.below(32) as u32;
        self.items(n, 0, None);
        for (label, _) in std::mem::take(&mut self.pending) {
            self.b.bind(label);
        }
        use meridian_bytecode::OutputId as O;
        let (f, b, g) = (self.src(RegFile::F), self.src(RegFile::B), self.src(RegFile::G));
        let (f, b, g) = (
            meridian_bytecode::FReg(f as u8),
            meridian_bytecode::BReg(b as u8),
            meridian_bytecode::GReg(g as u8),
        );
        self.b.store_f(O(self.output(OutputKind::F64)), f);
        self.b.store_b(O(self.output(OutputKind::Bool)), b);
        if !self.gpu || self.constructive {
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

/// A program of `seed` that computes from its data (see [`Dataflow`]); `gpu`: only ops the GPU
/// runs.
pub fn random_dataflow_program(seed: u64, gpu: bool) -> VerifiedProgram {
    Dataflow::new(seed, gpu, false).finish()
}

/// A program of `seed` that computes from its data with `affine`, `simplify` and geometry
/// `store` among its ops (what the GPU interpreter runs and the GPU JIT refuses).
pub fn random_constructive_program(seed: u64) -> VerifiedProgram {
    Dataflow::new(seed, true, true).finish()
}
