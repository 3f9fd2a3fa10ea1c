//! Bytecode → Cranelift IR: one native function that runs a row range.
//!
//! ```text
//! fn(ctx, scratch, dense, start, end) -> 0 | 1
//!   entry:    row = start; the dense outputs' bases loaded from `dense`
//!   head:     if row < end { rowstart } else { return 0 }
//!   rowstart: [row_begin(ctx)]; every f and b register null; jump pc0
//!   pcN:      one block per instruction
//!   halt:     [row_end(ctx, row, pc) or fail]; row += 1; jump head
//!   fail:     return 1          (the error is in the context)
//! ```
//!
//! `f` registers are a pair of SSA variables (value, null flag), `b` registers one variable
//! in the interpreter's byte encoding (0 false, 1 true, 2 null); Cranelift's SSA builder
//! turns them into machine registers and block parameters. Arithmetic, comparisons,
//! three-valued logic, `select`, `const`, branches and dense `store`s are inline; `load`,
//! `x`/`y`, `count` and `sum` are direct calls of their entry points. Every other
//! instruction is a call of [`entry::step`] with its `f`/`b` operands written to the scratch
//! before and read back after (see [`super::entry`]).

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, AbiParam, Block, InstBuilder, MemFlags, SigRef, StackSlotData, StackSlotKind, Type, UserFuncName,
    Value,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use meridian_bytecode::{Access, BReg, FReg, Instr, OperandKind, OutputKind, RegFile};

use super::entry::{self, Ctx, FAILED};
use super::JitError;
use crate::interp::frame::B_NULL;
use crate::interp::{Interpreter, Scratch};

/// The compiled row function.
///
/// # Safety
///
/// Callable only as `JitProgram::run` does: a live exclusive context, the scratch it points
/// at, and rows of the bound inputs the context holds.
pub(crate) type RowFn =
    unsafe extern "C" fn(*mut Ctx<'_>, *mut Scratch, *const [*mut u8; 2], u64, u64) -> u32;

type StepFn = unsafe extern "C" fn(*mut Ctx<'_>, u64, u64) -> u64;
type BeginFn = unsafe extern "C" fn(*mut Ctx<'_>);
type EndFn = unsafe extern "C" fn(*mut Ctx<'_>, u64, u64) -> u32;
type LoadFn = unsafe extern "C" fn(*mut Ctx<'_>, u64, u64, u64);
type CoordFn = unsafe extern "C" fn(*mut Ctx<'_>, u64, *mut [f64; 2]) -> u64;
type StoreFFn = unsafe extern "C" fn(*mut Ctx<'_>, u64, u64, f64, u64);
type StoreBFn = unsafe extern "C" fn(*mut Ctx<'_>, u64, u64, u64);
type CountFn = unsafe extern "C" fn(*mut Ctx<'_>, u64);
type SumFn = unsafe extern "C" fn(*mut Ctx<'_>, u64, f64, u64);

fn codegen(e: impl std::fmt::Display) -> JitError {
    JitError::Codegen(e.to_string())
}

/// Compiles `it`'s program; returns the module that owns the code and the function.
pub(crate) fn compile(it: &Interpreter) -> Result<(JITModule, RowFn), JitError> {
    let mut flags = settings::builder();
    let set = |flags: &mut settings::Builder, k: &str, v: &str| flags.set(k, v).map_err(codegen);
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "is_pic", "false")?;
    set(&mut flags, "use_colocated_libcalls", "false")?;
    // The IR verifier costs about as much as the rest of compilation; tests keep it on.
    set(&mut flags, "enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })?;
    let isa = cranelift_native::builder()
        .map_err(|e| JitError::Unsupported(e.to_string()))?
        .finish(settings::Flags::new(flags))
        .map_err(codegen)?;
    let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
    let ptr = module.target_config().pointer_type();

    let mut sig = module.make_signature();
    sig.params.extend([
        AbiParam::new(ptr),
        AbiParam::new(ptr),
        AbiParam::new(ptr),
        AbiParam::new(types::I64),
        AbiParam::new(types::I64),
    ]);
    sig.returns.push(AbiParam::new(types::I32));
    let id = module.declare_function("rows", Linkage::Local, &sig).map_err(codegen)?;

    let mut ctx = Context::new();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let mut fcx = FunctionBuilderContext::new();
    {
        let b = FunctionBuilder::new(&mut ctx.func, &mut fcx);
        Tx::new(b, it, ptr, &module).build();
    }
    module.define_function(id, &mut ctx).map_err(codegen)?;
    module.finalize_definitions().map_err(codegen)?;
    let code = module.get_finalized_function(id);
    // SAFETY: `code` is the function just defined with the signature `RowFn` describes
    // (pointer, pointer, i64, i64) -> i32 in the host's C calling convention, and it lives as
    // long as `module`, which the caller keeps with it.
    let f = unsafe { std::mem::transmute::<*const u8, RowFn>(code) };
    Ok((module, f))
}

struct Tx<'a, 'b> {
    b: FunctionBuilder<'b>,
    it: &'a Interpreter,
    ptr: Type,
    /// One block per instruction, and one past the end (running off the code is an error).
    blocks: Vec<Block>,
    head: Block,
    fail: Block,
    row: Variable,
    fv: Vec<Variable>,
    fnull: Vec<Variable>,
    bv: Vec<Variable>,
    ctx: Value,
    scratch: Value,
    end: Value,
    /// Signatures imported so far, by parameter and return types (the context pointer
    /// first, always).
    sigs: Vec<(Vec<Type>, Option<Type>, SigRef)>,
    call_conv: cranelift_codegen::isa::CallConv,
    /// Where `x`/`y` write the coordinate.
    coord_slot: cranelift_codegen::ir::StackSlot,
    /// Per output: the bases of a dense output's values and validity.
    bases: Vec<Option<[Value; 2]>>,
}

const F_OFFSET: i32 = std::mem::offset_of!(Scratch, f) as i32;
const F_NULL_OFFSET: i32 = std::mem::offset_of!(Scratch, f_null) as i32;
const B_OFFSET: i32 = std::mem::offset_of!(Scratch, b) as i32;

impl<'a, 'b> Tx<'a, 'b> {
    fn new(mut b: FunctionBuilder<'b>, it: &'a Interpreter, ptr: Type, module: &JITModule) -> Tx<'a, 'b> {
        let call_conv = module.make_signature().call_conv;
        let coord_slot = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 3));
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        let blocks = (0..=it.code.len()).map(|_| b.create_block()).collect();
        let (head, fail) = (b.create_block(), b.create_block());
        b.set_cold_block(fail);
        let row = b.declare_var(types::I64);
        let fv = (0..32).map(|_| b.declare_var(types::F64)).collect();
        let fnull = (0..32).map(|_| b.declare_var(types::I8)).collect();
        let bv = (0..32).map(|_| b.declare_var(types::I8)).collect();
        b.switch_to_block(entry);
        let params = b.block_params(entry).to_vec();
        let (ctx, scratch, dense, start, end) = (params[0], params[1], params[2], params[3], params[4]);
        b.def_var(row, start);
        // The dense outputs' bases (`OutputBuffers::dense_bases`), loaded once: the entry block
        // dominates every use.
        let bases = it
            .outputs()
            .iter()
            .enumerate()
            .map(|(o, kind)| {
                let at = |k: i32| 16 * o as i32 + 8 * k;
                let flags = MemFlags::trusted().with_readonly();
                match kind {
                    OutputKind::F64 => {
                        Some([b.ins().load(ptr, flags, dense, at(0)), b.ins().load(ptr, flags, dense, at(1))])
                    }
                    OutputKind::Bool => {
                        let v = b.ins().load(ptr, flags, dense, at(0));
                        Some([v, v])
                    }
                    _ => None,
                }
            })
            .collect();
        b.ins().jump(head, &[]);
        Tx {
            b,
            it,
            ptr,
            blocks,
            head,
            fail,
            row,
            fv,
            fnull,
            bv,
            ctx,
            scratch,
            end,
            sigs: Vec::new(),
            call_conv,
            coord_slot,
            bases,
        }
    }

    fn build(mut self) {
        // head: the row loop.
        let (rowstart, done) = (self.b.create_block(), self.b.create_block());
        self.b.switch_to_block(self.head);
        let row = self.b.use_var(self.row);
        let more = self.b.ins().icmp(IntCC::UnsignedLessThan, row, self.end);
        self.b.ins().brif(more, rowstart, &[], done, &[]);

        self.b.switch_to_block(done);
        let ok = self.b.ins().iconst(types::I32, 0);
        self.b.ins().return_(&[ok]);

        self.b.switch_to_block(self.fail);
        let failed = self.b.ins().iconst(types::I32, 1);
        self.b.ins().return_(&[failed]);

        self.b.switch_to_block(rowstart);
        if needs_reset(self.it) {
            self.call(entry::row_begin as BeginFn as usize, &[], None, &[]);
        }
        let (zero, null, bnull) = (
            self.b.ins().f64const(0.0),
            self.b.ins().iconst(types::I8, 1),
            self.b.ins().iconst(types::I8, i64::from(B_NULL)),
        );
        for i in 0..32 {
            self.b.def_var(self.fv[i], zero);
            self.b.def_var(self.fnull[i], null);
            self.b.def_var(self.bv[i], bnull);
        }
        self.b.ins().jump(self.blocks[0], &[]);

        let code = self.it.code.clone();
        for (pc, &instr) in code.iter().enumerate() {
            self.b.switch_to_block(self.blocks[pc]);
            self.instr(pc, instr);
        }
        // Past the end (the verifier makes it unreachable): `step` reports it.
        let past = code.len();
        self.b.switch_to_block(self.blocks[past]);
        self.call_step(past);
        self.b.ins().jump(self.fail, &[]);
        self.b.seal_all_blocks();
        self.b.finalize();
    }
}

impl Tx<'_, '_> {
    /// Calls the entry point at `addr` with the context and `args` (of types `params`).
    fn call(&mut self, addr: usize, params: &[Type], ret: Option<Type>, args: &[Value]) -> Option<Value> {
        let sig = match self.sigs.iter().find(|(p, r, _)| p == params && *r == ret) {
            Some(&(_, _, sig)) => sig,
            None => {
                let mut sig = cranelift_codegen::ir::Signature::new(self.call_conv);
                sig.params.push(AbiParam::new(self.ptr));
                sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
                sig.returns.extend(ret.map(AbiParam::new));
                let r = self.b.import_signature(sig);
                self.sigs.push((params.to_vec(), ret, r));
                r
            }
        };
        let callee = self.b.ins().iconst(self.ptr, addr as i64);
        let mut all = vec![self.ctx];
        all.extend_from_slice(args);
        let call = self.b.ins().call_indirect(sig, callee, &all);
        self.b.inst_results(call).first().copied()
    }

    fn imm(&mut self, v: u64) -> Value {
        self.b.ins().iconst(types::I64, v as i64)
    }

    /// A 0/1/2 byte widened for an entry point's u64 parameter.
    fn widen(&mut self, v: Value) -> Value {
        self.b.ins().uextend(types::I64, v)
    }

    fn call_step(&mut self, pc: usize) -> Value {
        let pcv = self.imm(pc as u64);
        let row = self.b.use_var(self.row);
        let i64 = types::I64;
        let ret = self.call(entry::step as StepFn as usize, &[i64, i64], Some(i64), &[pcv, row]);
        ret.unwrap_or(pcv)
    }

    fn fget(&mut self, r: FReg) -> (Value, Value) {
        let i = usize::from(r.0 & 31);
        (self.b.use_var(self.fv[i]), self.b.use_var(self.fnull[i]))
    }

    fn fset(&mut self, r: FReg, v: Value, null: Value) {
        let i = usize::from(r.0 & 31);
        self.b.def_var(self.fv[i], v);
        self.b.def_var(self.fnull[i], null);
    }

    fn bget(&mut self, r: BReg) -> Value {
        self.b.use_var(self.bv[usize::from(r.0 & 31)])
    }

    fn bset(&mut self, r: BReg, v: Value) {
        self.b.def_var(self.bv[usize::from(r.0 & 31)], v);
    }

    fn iconst8(&mut self, v: u8) -> Value {
        self.b.ins().iconst(types::I8, i64::from(v))
    }

    fn next(&mut self, pc: usize) {
        let to = self.block(pc + 1);
        self.b.ins().jump(to, &[]);
    }

    /// The block of instruction `pc` (past the end: the block that reports it).
    fn block(&self, pc: usize) -> Block {
        self.blocks[pc.min(self.blocks.len() - 1)]
    }

    fn binary_f(
        &mut self,
        pc: usize,
        dst: FReg,
        lhs: FReg,
        rhs: FReg,
        op: impl FnOnce(&mut FunctionBuilder<'_>, Value, Value) -> Value,
    ) {
        let ((x, xn), (y, yn)) = (self.fget(lhs), self.fget(rhs));
        let v = op(&mut self.b, x, y);
        let n = self.b.ins().bor(xn, yn);
        self.fset(dst, v, n);
        self.next(pc);
    }

    fn unary_f(
        &mut self,
        pc: usize,
        dst: FReg,
        src: FReg,
        op: impl FnOnce(&mut FunctionBuilder<'_>, Value) -> Value,
    ) {
        let (x, xn) = self.fget(src);
        let v = op(&mut self.b, x);
        self.fset(dst, v, xn);
        self.next(pc);
    }

    fn compare(&mut self, pc: usize, dst: BReg, lhs: FReg, rhs: FReg, cc: FloatCC) {
        let ((x, xn), (y, yn)) = (self.fget(lhs), self.fget(rhs));
        let c = self.b.ins().fcmp(cc, x, y);
        let n = self.b.ins().bor(xn, yn);
        let null = self.iconst8(B_NULL);
        let v = self.b.ins().select(n, null, c);
        self.bset(dst, v);
        self.next(pc);
    }

    /// `code == k` as an i8 0/1.
    fn is(&mut self, code: Value, k: u8) -> Value {
        self.b.ins().icmp_imm(IntCC::Equal, code, i64::from(k))
    }

    fn jump_if_true(&mut self, cond: BReg, then: usize, otherwise: usize) {
        let c = self.bget(cond);
        let t = self.is(c, 1);
        let (a, b) = (self.block(then), self.block(otherwise));
        self.b.ins().brif(t, a, &[], b, &[]);
    }

    /// The `f` and `b` registers `instr` names, with how it uses them (`bbox`'s four and
    /// `centroid`'s two destinations wrap like the interpreter's mask).
    fn operands(instr: Instr) -> Vec<(RegFile, u8)> {
        let raw = instr.to_raw();
        let mut regs = Vec::new();
        for (kind, &value) in raw.opcode.operands().iter().zip(raw.operands()) {
            if let OperandKind::Reg { file: file @ (RegFile::F | RegFile::B), width, .. } = *kind {
                for k in 0..width {
                    regs.push((file, (value as u8).wrapping_add(k) & 31));
                }
            }
        }
        regs
    }

    fn spill(&mut self, regs: &[(RegFile, u8)]) {
        let flags = MemFlags::trusted();
        for &(file, r) in regs {
            let i = usize::from(r);
            match file {
                RegFile::F => {
                    let (v, n) = (self.b.use_var(self.fv[i]), self.b.use_var(self.fnull[i]));
                    self.b.ins().store(flags, v, self.scratch, F_OFFSET + 8 * i32::from(r));
                    let mask = self.b.ins().load(types::I32, flags, self.scratch, F_NULL_OFFSET);
                    let bit = self.b.ins().iconst(types::I32, 1i64 << r);
                    let set = self.b.ins().bor(mask, bit);
                    let clear = self.b.ins().band_not(mask, bit);
                    let m = self.b.ins().select(n, set, clear);
                    self.b.ins().store(flags, m, self.scratch, F_NULL_OFFSET);
                }
                _ => {
                    let v = self.b.use_var(self.bv[i]);
                    self.b.ins().store(flags, v, self.scratch, B_OFFSET + i32::from(r));
                }
            }
        }
    }

    fn reload(&mut self, regs: &[(RegFile, u8)]) {
        let flags = MemFlags::trusted();
        for &(file, r) in regs {
            let i = usize::from(r);
            match file {
                RegFile::F => {
                    let v = self.b.ins().load(types::F64, flags, self.scratch, F_OFFSET + 8 * i32::from(r));
                    let mask = self.b.ins().load(types::I32, flags, self.scratch, F_NULL_OFFSET);
                    let shifted = self.b.ins().ushr_imm(mask, i64::from(r));
                    let bit = self.b.ins().band_imm(shifted, 1);
                    let n = self.b.ins().ireduce(types::I8, bit);
                    self.b.def_var(self.fv[i], v);
                    self.b.def_var(self.fnull[i], n);
                }
                _ => {
                    let v = self.b.ins().load(types::I8, flags, self.scratch, B_OFFSET + i32::from(r));
                    self.b.def_var(self.bv[i], v);
                }
            }
        }
    }

    /// `instr` through [`entry::step`]: its registers written to the scratch (all of them,
    /// so that one it may leave unwritten keeps its value), the call, the written ones read
    /// back, then on to the pc it returned — one of `pc + 1` and `targets`.
    fn stepped(&mut self, pc: usize, instr: Instr, extra: &[(RegFile, u8)], targets: &[usize]) {
        let mut regs = Self::operands(instr);
        regs.extend_from_slice(extra);
        self.spill(&regs);
        let ret = self.call_step(pc);
        let failed = self.b.ins().icmp_imm(IntCC::Equal, ret, FAILED as i64);
        let ok = self.b.create_block();
        self.b.ins().brif(failed, self.fail, &[], ok, &[]);
        self.b.switch_to_block(ok);
        self.reload(&regs);
        for &t in targets.iter().filter(|&&t| t != pc + 1) {
            let hit = self.b.ins().icmp_imm(IntCC::Equal, ret, t as i64);
            let other = self.b.create_block();
            let to = self.block(t);
            self.b.ins().brif(hit, to, &[], other, &[]);
            self.b.switch_to_block(other);
        }
        self.next(pc);
    }

    fn halt(&mut self, pc: usize) {
        if self.it.has_geometry_outputs || self.it.derives {
            let row = self.b.use_var(self.row);
            let at = self.b.ins().iconst(types::I64, pc as i64);
            let i64 = types::I64;
            let status =
                self.call(entry::row_end as EndFn as usize, &[i64, i64], Some(types::I32), &[row, at]);
            let status = status.unwrap_or(at);
            let ok = self.b.create_block();
            self.b.ins().brif(status, self.fail, &[], ok, &[]);
            self.b.switch_to_block(ok);
        }
        let row = self.b.use_var(self.row);
        let next = self.b.ins().iadd_imm(row, 1);
        self.b.def_var(self.row, next);
        self.b.ins().jump(self.head, &[]);
    }

    fn instr(&mut self, pc: usize, instr: Instr) {
        match instr {
            Instr::Halt {} => self.halt(pc),
            Instr::Jmp { target } => {
                let to = self.block(target.index());
                self.b.ins().jump(to, &[]);
            }
            Instr::Jt { cond, target } => self.jump_if_true(cond, target.index(), pc + 1),
            Instr::Jf { cond, target } => self.jump_if_true(cond, pc + 1, target.index()),
            Instr::Const { dst, value } => {
                let (v, n) = match self.it.consts.get(value.index()) {
                    Some(&c) => (self.b.ins().f64const(c), self.iconst8(0)),
                    None => (self.b.ins().f64const(0.0), self.iconst8(1)),
                };
                self.fset(dst, v, n);
                self.next(pc);
            }
            Instr::MovF { dst, src } => {
                let (v, n) = self.fget(src);
                self.fset(dst, v, n);
                self.next(pc);
            }
            Instr::MovB { dst, src } => {
                let v = self.bget(src);
                self.bset(dst, v);
                self.next(pc);
            }
            Instr::SelectF { dst, cond, if_true, if_false } => {
                let c = self.bget(cond);
                let ((t, tn), (f, fnull)) = (self.fget(if_true), self.fget(if_false));
                let (is_true, is_false) = (self.is(c, 1), self.is(c, 0));
                let v = self.b.ins().select(is_true, t, f);
                let one = self.iconst8(1);
                let otherwise = self.b.ins().select(is_false, fnull, one);
                let n = self.b.ins().select(is_true, tn, otherwise);
                self.fset(dst, v, n);
                self.next(pc);
            }
            Instr::SelectB { dst, cond, if_true, if_false } => {
                let c = self.bget(cond);
                let (t, f) = (self.bget(if_true), self.bget(if_false));
                let (is_true, is_false) = (self.is(c, 1), self.is(c, 0));
                let null = self.iconst8(B_NULL);
                let otherwise = self.b.ins().select(is_false, f, null);
                let v = self.b.ins().select(is_true, t, otherwise);
                self.bset(dst, v);
                self.next(pc);
            }
            Instr::Add { dst, lhs, rhs } => self.binary_f(pc, dst, lhs, rhs, |b, x, y| b.ins().fadd(x, y)),
            Instr::Sub { dst, lhs, rhs } => self.binary_f(pc, dst, lhs, rhs, |b, x, y| b.ins().fsub(x, y)),
            Instr::Mul { dst, lhs, rhs } => self.binary_f(pc, dst, lhs, rhs, |b, x, y| b.ins().fmul(x, y)),
            Instr::Div { dst, lhs, rhs } => self.binary_f(pc, dst, lhs, rhs, |b, x, y| b.ins().fdiv(x, y)),
            // Cranelift's fmin/fmax are IEEE 754-2019 minimum/maximum: NaN if either operand
            // is NaN, and -0.0 < 0.0 — the ISA's rules exactly.
            Instr::Min { dst, lhs, rhs } => self.binary_f(pc, dst, lhs, rhs, |b, x, y| b.ins().fmin(x, y)),
            Instr::Max { dst, lhs, rhs } => self.binary_f(pc, dst, lhs, rhs, |b, x, y| b.ins().fmax(x, y)),
            Instr::Abs { dst, src } => self.unary_f(pc, dst, src, |b, x| b.ins().fabs(x)),
            Instr::Neg { dst, src } => self.unary_f(pc, dst, src, |b, x| b.ins().fneg(x)),
            Instr::Sqrt { dst, src } => self.unary_f(pc, dst, src, |b, x| b.ins().sqrt(x)),
            Instr::Lt { dst, lhs, rhs } => self.compare(pc, dst, lhs, rhs, FloatCC::LessThan),
            Instr::Le { dst, lhs, rhs } => self.compare(pc, dst, lhs, rhs, FloatCC::LessThanOrEqual),
            Instr::Gt { dst, lhs, rhs } => self.compare(pc, dst, lhs, rhs, FloatCC::GreaterThan),
            Instr::Ge { dst, lhs, rhs } => self.compare(pc, dst, lhs, rhs, FloatCC::GreaterThanOrEqual),
            Instr::Eq { dst, lhs, rhs } => self.compare(pc, dst, lhs, rhs, FloatCC::Equal),
            // Unordered or unequal: NaN != anything is true.
            Instr::Ne { dst, lhs, rhs } => self.compare(pc, dst, lhs, rhs, FloatCC::NotEqual),
            Instr::And { dst, lhs, rhs } | Instr::Or { dst, lhs, rhs } => {
                // And: any false gives false; else any null gives null; else true. Or is the
                // same with true and false swapped.
                let (wins, loses) = if matches!(instr, Instr::And { .. }) { (0, 1) } else { (1, 0) };
                let (x, y) = (self.bget(lhs), self.bget(rhs));
                let (xw, yw) = (self.is(x, wins), self.is(y, wins));
                let any_wins = self.b.ins().bor(xw, yw);
                let (xn, yn) = (self.is(x, B_NULL), self.is(y, B_NULL));
                let any_null = self.b.ins().bor(xn, yn);
                let (w, l, n) = (self.iconst8(wins), self.iconst8(loses), self.iconst8(B_NULL));
                let otherwise = self.b.ins().select(any_null, n, l);
                let v = self.b.ins().select(any_wins, w, otherwise);
                self.bset(dst, v);
                self.next(pc);
            }
            Instr::Not { dst, src } => {
                let x = self.bget(src);
                let null = self.is(x, B_NULL);
                let flipped = self.b.ins().bxor_imm(x, 1);
                let n = self.iconst8(B_NULL);
                let v = self.b.ins().select(null, n, flipped);
                self.bset(dst, v);
                self.next(pc);
            }
            Instr::IsNullF { dst, src } => {
                let (_, n) = self.fget(src);
                self.bset(dst, n);
                self.next(pc);
            }
            Instr::CNext { exit, .. } => self.stepped(pc, instr, &[], &[exit.index()]),
            Instr::Probe { .. } | Instr::ProbeDist { .. } => match self.it.loops.get(pc).copied().flatten() {
                // A recognised filter loop runs inside the step, which writes the loop's
                // flag and goes on at the loop's exit.
                Some(l) => self.stepped(pc, instr, &[(RegFile::B, l.flag.0 & 31)], &[l.exit]),
                None => self.stepped(pc, instr, &[], &[]),
            },
            Instr::Load { dst, input } => {
                let (dst, input, row) =
                    (self.imm(u64::from(dst.0)), self.imm(u64::from(input.0)), self.b.use_var(self.row));
                let i64 = types::I64;
                self.call(entry::load as LoadFn as usize, &[i64, i64, i64], None, &[dst, input, row]);
                self.next(pc);
            }
            Instr::X { dst, geom } | Instr::Y { dst, geom } => {
                // `x f, g` then `y f', g` (or the other way round) is one call: the second
                // reads the same register, which the first does not write.
                let pair = match (instr, self.it.code.get(pc + 1)) {
                    (Instr::X { .. }, Some(&Instr::Y { dst: other, geom: g })) if g == geom => {
                        Some((dst, other))
                    }
                    (Instr::Y { .. }, Some(&Instr::X { dst: other, geom: g })) if g == geom => {
                        Some((other, dst))
                    }
                    _ => None,
                };
                let g = self.imm(u64::from(geom.0));
                let at = self.b.ins().stack_addr(self.ptr, self.coord_slot, 0);
                let i64 = types::I64;
                let null = self.call(entry::coord as CoordFn as usize, &[i64, self.ptr], Some(i64), &[g, at]);
                let null = null.unwrap_or(g);
                let null = self.b.ins().ireduce(types::I8, null);
                let x = self.b.ins().stack_load(types::F64, self.coord_slot, 0);
                let y = self.b.ins().stack_load(types::F64, self.coord_slot, 8);
                match pair {
                    Some((fx, fy)) => {
                        self.fset(fx, x, null);
                        self.fset(fy, y, null);
                        self.next(pc + 1);
                    }
                    None => {
                        self.fset(dst, if matches!(instr, Instr::X { .. }) { x } else { y }, null);
                        self.next(pc);
                    }
                }
            }
            Instr::StoreF { output, src } => {
                let (v, n) = self.fget(src);
                match self.bases.get(output.index()).copied().flatten() {
                    Some([values, valid]) => {
                        // As `OutputBuffers::store_f64`: a null stores 0.0 and validity 0.
                        let row = self.b.use_var(self.row);
                        let zero = self.b.ins().f64const(0.0);
                        let v = self.b.ins().select(n, zero, v);
                        let off = self.b.ins().ishl_imm(row, 3);
                        let at = self.b.ins().iadd(values, off);
                        self.b.ins().store(MemFlags::trusted(), v, at, 0);
                        let ok = self.b.ins().bxor_imm(n, 1);
                        let at = self.b.ins().iadd(valid, row);
                        self.b.ins().store(MemFlags::trusted(), ok, at, 0);
                    }
                    None => {
                        let (o, row, n) =
                            (self.imm(u64::from(output.0)), self.b.use_var(self.row), self.widen(n));
                        let i64 = types::I64;
                        self.call(
                            entry::store_f as StoreFFn as usize,
                            &[i64, i64, types::F64, i64],
                            None,
                            &[o, row, v, n],
                        );
                    }
                }
                self.next(pc);
            }
            Instr::StoreB { output, src } => {
                let code = self.bget(src);
                match self.bases.get(output.index()).copied().flatten() {
                    Some([codes, _]) => {
                        let row = self.b.use_var(self.row);
                        let at = self.b.ins().iadd(codes, row);
                        self.b.ins().store(MemFlags::trusted(), code, at, 0);
                    }
                    None => {
                        let (o, row, code) =
                            (self.imm(u64::from(output.0)), self.b.use_var(self.row), self.widen(code));
                        let i64 = types::I64;
                        self.call(
                            entry::store_b as StoreBFn as usize,
                            &[i64, i64, i64],
                            None,
                            &[o, row, code],
                        );
                    }
                }
                self.next(pc);
            }
            Instr::Count { output } => {
                let o = self.imm(u64::from(output.0));
                self.call(entry::count as CountFn as usize, &[types::I64], None, &[o]);
                self.next(pc);
            }
            Instr::Sum { output, src } => {
                let (v, n) = self.fget(src);
                let (o, n) = (self.imm(u64::from(output.0)), self.widen(n));
                let i64 = types::I64;
                self.call(entry::sum as SumFn as usize, &[i64, types::F64, i64], None, &[o, v, n]);
                self.next(pc);
            }
            Instr::MovG { .. }
            | Instr::SelectG { .. }
            | Instr::Area { .. }
            | Instr::Length { .. }
            | Instr::Bbox { .. }
            | Instr::Centroid { .. }
            | Instr::NPoints { .. }
            | Instr::IsEmpty { .. }
            | Instr::IsNullG { .. }
            | Instr::Intersects { .. }
            | Instr::Contains { .. }
            | Instr::Within { .. }
            | Instr::Covers { .. }
            | Instr::CoveredBy { .. }
            | Instr::Touches { .. }
            | Instr::Disjoint { .. }
            | Instr::DWithin { .. }
            | Instr::Distance { .. }
            | Instr::Affine { .. }
            | Instr::Simplify { .. }
            | Instr::StoreG { .. }
            | Instr::Emit { .. } => self.stepped(pc, instr, &[], &[]),
        }
    }
}

/// Whether a row must start by resetting the registers that live in the scratch (`g`,
/// cursors): unless the code before its first branch writes every `g` register the program
/// uses before reading it, and no cursor is used, a row could see the last row's values.
fn needs_reset(it: &Interpreter) -> bool {
    if it.used_c > 0 {
        return true;
    }
    let mut written = 0u32;
    for &instr in it.code.iter() {
        let raw = instr.to_raw();
        let mut writes = 0u32;
        for (kind, &value) in raw.opcode.operands().iter().zip(raw.operands()) {
            if let OperandKind::Reg { file: RegFile::G, access, .. } = *kind {
                let bit = 1u32 << (value & 15);
                match access {
                    Access::Write => writes |= bit,
                    _ if written & bit == 0 => return true,
                    _ => {}
                }
            }
        }
        written |= writes;
        let all = (1u32 << it.used_g.min(16)) - 1;
        if written & all == all {
            return false;
        }
        if matches!(
            instr,
            Instr::Halt {} | Instr::Jmp { .. } | Instr::Jt { .. } | Instr::Jf { .. } | Instr::CNext { .. }
        ) {
            return true;
        }
    }
    true
}
