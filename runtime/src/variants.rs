//! The variants that can run a job's rows — inline on the submitting thread, the CPU
//! interpreter, the CPU JIT, the GPU megakernel's interpreter, a program's own GPU kernel — each registered with what it
//! supports: ops, geometry families, row bounds, where its inputs live, its arithmetic and its
//! robustness. An engine registers the variants it has when it is built and checks them then
//! ([`Registry::check`]). The registry is what the engine dispatches by: placement asks it
//! whether the GPU variant admits a job (its ops and its row bound), the planner whether the
//! CPU JIT and programs' own GPU kernels are there to choose and up to how many rows a job runs
//! inline, and every plan names the variant that ran it ([`crate::plan::Plan::variant`]).

use std::borrow::Cow;
use std::fmt;

use crate::route::Route;

use meridian_bytecode::{Opcode, VerifiedProgram};
use meridian_kernels::column::Family;
use meridian_kernels::cuda::{gpu_refusal, gpu_support, jit_refusal, jit_support, GpuSupport};

/// Which variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VariantId {
    /// The interpreter (or JIT code) on the submitting thread: no hand-off.
    Inline,
    /// The CPU interpreter on the engine's workers.
    CpuInterp,
    /// Code compiled from the program by Cranelift, on the workers.
    CpuJit,
    /// The resident CUDA megakernel's interpreter.
    GpuInterp,
    /// A program's own CUDA kernel (the GPU JIT), beside the megakernel's latency lane.
    GpuJit,
}

impl VariantId {
    /// Its name in plans, `meridian info` and `--explain`.
    pub fn name(self) -> &'static str {
        match self {
            VariantId::Inline => "inline",
            VariantId::CpuInterp => "cpu-interp",
            VariantId::CpuJit => "cpu-jit",
            VariantId::GpuInterp => "gpu-interp",
            VariantId::GpuJit => "gpu-jit",
        }
    }

    /// Whether it runs on the GPU.
    pub fn on_gpu(self) -> bool {
        matches!(self, VariantId::GpuInterp | VariantId::GpuJit)
    }

    /// Whether compiled code runs the rows (the CPU JIT's or a program's own GPU kernel).
    pub fn is_jit(self) -> bool {
        matches!(self, VariantId::CpuJit | VariantId::GpuJit)
    }

    /// The backend its results name: `cpu` or `cuda`.
    pub fn backend(self) -> &'static str {
        if self.on_gpu() {
            "cuda"
        } else {
            "cpu"
        }
    }

    /// The route its results name: `interp` or `jit` (inline runs either; see [`Backend`]).
    pub fn route(self) -> &'static str {
        if self.is_jit() {
            Route::Jit.name()
        } else {
            Route::Interpreter.name()
        }
    }

    /// The same place with compiled code running the rows.
    pub fn with_jit(self) -> VariantId {
        if self.on_gpu() {
            VariantId::GpuJit
        } else {
            VariantId::CpuJit
        }
    }
}

/// Which variant runs a job (or an engine's jobs), and why: the one name of where and how a
/// job runs, from which the backend and route shown to users are derived. Its variant is
/// never [`VariantId::Inline`]: running on the submitting thread is a job's cut
/// ([`crate::plan::Topology::Inline`]), with the CPU code its route gives, and the plan names
/// that variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Where the rows run and what runs them.
    pub variant: VariantId,
    /// Why: the mode asked for and what the probe found.
    pub reason: String,
    /// True when the engine fell back: from the GPU to the CPU under `auto`, or from the JIT
    /// to the interpreter.
    pub fallback: bool,
    /// The other variants a streamed job's batches ran on (none for one job).
    pub also: Vec<VariantId>,
}

impl Backend {
    /// `variant`, for `reason`.
    pub fn new(variant: VariantId, reason: impl Into<String>, fallback: bool) -> Backend {
        Backend { variant, reason: reason.into(), fallback, also: Vec::new() }
    }

    /// `cpu` (the CPU executor) or `cuda` (the GPU); `mixed` when a streamed job's batches
    /// ran on both.
    pub fn name(&self) -> &'static str {
        self.shared(VariantId::backend)
    }

    /// What ran the rows: `interp` (the interpreter, on the CPU or in the GPU megakernel) or
    /// `jit` (the program compiled to native code; see [`Route`]); `mixed` when a streamed
    /// job's batches ran on both.
    pub fn route(&self) -> &'static str {
        self.shared(VariantId::route)
    }

    /// `what` of its variants when they all agree, else `mixed`.
    fn shared(&self, what: fn(VariantId) -> &'static str) -> &'static str {
        let first = what(self.variant);
        if self.also.iter().all(|v| what(*v) == first) {
            first
        } else {
            "mixed"
        }
    }

    /// Whether it ran (some of) its rows on `variant`.
    pub fn ran_on(&self, variant: VariantId) -> bool {
        self.variant == variant || self.also.contains(&variant)
    }

    /// Whether it runs on the GPU.
    pub fn on_gpu(&self) -> bool {
        self.variant.on_gpu()
    }
}

impl fmt::Display for VariantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a variant reads its inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residency {
    /// In host memory, where the columns are.
    Host,
    /// In device memory: columns and indexes are uploaded once and kept while they live.
    Device,
}

/// One registered variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    /// Which.
    pub id: VariantId,
    /// `cpu` or `cuda` (the backend its results name).
    pub backend: &'static str,
    /// `interp` or `jit`.
    pub route: &'static str,
    /// Fewest rows a job it takes has.
    pub min_rows: usize,
    /// Most rows a job it takes has.
    pub max_rows: usize,
    /// Geometry families its inputs may hold.
    pub families: &'static [Family],
    /// Where its inputs live.
    pub residency: Residency,
    /// Its arithmetic.
    pub precision: &'static str,
    /// What its predicates guarantee.
    pub robustness: &'static str,
}

const EXACT: &str = "exact predicates (adaptive orientation, the same kernels as the oracle)";
const F64: &str = "fp64, IEEE 754 with the ISA's NaN and ±0 rules";

impl Variant {
    /// Why it refuses op `op`, or `None` when it runs it.
    pub fn refuses_op(&self, op: Opcode) -> Option<&'static str> {
        match (self.id, gpu_support(op), jit_support(op)) {
            (VariantId::GpuInterp, GpuSupport::Refused(why), _) => Some(why),
            (VariantId::GpuJit, _, GpuSupport::Refused(why)) => Some(why),
            _ => None,
        }
    }

    /// Whether it takes a job of `rows` rows, or why not.
    pub fn admits_rows(&self, rows: usize) -> Result<(), String> {
        if rows < self.min_rows || rows > self.max_rows {
            return Err(format!(
                "{}: takes jobs of {} to {} rows, not {rows}",
                self.id, self.min_rows, self.max_rows
            ));
        }
        Ok(())
    }

    /// Whether it runs a job of `program` over `rows` rows, or why not.
    pub fn admits(&self, program: &VerifiedProgram, rows: usize) -> Result<(), String> {
        self.admits_rows(rows)?;
        match self.id {
            VariantId::GpuInterp => gpu_refusal(program).map_or(Ok(()), Err),
            VariantId::GpuJit => jit_refusal(program).map_or(Ok(()), Err),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Variant {
    /// One line: name, backend and route, rows, families, residency, arithmetic, and the ops
    /// it refuses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.max_rows == usize::MAX { "any".to_owned() } else { self.max_rows.to_string() };
        let residency = match self.residency {
            Residency::Host => "inputs in host memory",
            Residency::Device => "inputs resident on the device",
        };
        write!(
            f,
            "{} ({} {}): rows {}..={max}, {} families, {residency}, {}; {}",
            self.id,
            self.backend,
            self.route,
            self.min_rows,
            self.families.len(),
            self.precision,
            self.robustness
        )?;
        let refused: Vec<&str> =
            Opcode::ALL.iter().filter(|&&op| self.refuses_op(op).is_some()).map(|op| op.mnemonic()).collect();
        if !refused.is_empty() {
            write!(f, "; refuses {}", refused.join(", "))?;
        }
        Ok(())
    }
}

/// The variants an engine has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    variants: Vec<Variant>,
}

/// The most rows the GPU takes in one job: rows are 32-bit on the device.
pub const GPU_MAX_ROWS: usize = u32::MAX as usize;

impl Registry {
    /// The variants of an engine with `inline_rows` (0: no inline route), the JIT or not, a
    /// GPU taking jobs from `gpu_min_rows` rows or none, and programs' own kernels on it or not.
    pub(crate) fn new(inline_rows: usize, jit: bool, gpu_min_rows: Option<usize>, gpu_jit: bool) -> Registry {
        let cpu = |id, route, min_rows, max_rows| Variant {
            id,
            backend: "cpu",
            route,
            min_rows,
            max_rows,
            families: &Family::ALL,
            residency: Residency::Host,
            precision: F64,
            robustness: EXACT,
        };
        let mut variants = Vec::new();
        if inline_rows > 0 {
            // The inline route runs whichever code the program's route gives.
            let route = if jit { "interp or jit" } else { "interp" };
            variants.push(cpu(VariantId::Inline, route, 0, inline_rows));
        }
        variants.push(cpu(VariantId::CpuInterp, "interp", 0, usize::MAX));
        if jit {
            variants.push(cpu(VariantId::CpuJit, "jit", 0, usize::MAX));
        }
        if let Some(min_rows) = gpu_min_rows {
            let gpu = |id, route| Variant {
                id,
                backend: "cuda",
                route,
                min_rows,
                max_rows: GPU_MAX_ROWS,
                families: &Family::ALL,
                residency: Residency::Device,
                precision: F64,
                robustness: EXACT,
            };
            variants.push(gpu(VariantId::GpuInterp, "interp"));
            if gpu_jit {
                variants.push(gpu(VariantId::GpuJit, "jit"));
            }
        }
        Registry { variants }
    }

    /// Every variant, in order of preference for small jobs.
    pub fn variants(&self) -> &[Variant] {
        &self.variants
    }

    /// The variant `id`, when the engine has it.
    pub fn get(&self, id: VariantId) -> Option<&Variant> {
        self.variants.iter().find(|v| v.id == id)
    }

    /// Whether the engine has variant `id`.
    pub fn has(&self, id: VariantId) -> bool {
        self.get(id).is_some()
    }

    /// The most rows a job runs inline on the submitting thread (0: no inline variant).
    pub fn inline_rows(&self) -> usize {
        self.get(VariantId::Inline).map_or(0, |v| v.max_rows)
    }

    /// Why variant `id` does not take a job of `rows` rows whose program it refuses for
    /// `ops` (the refusal of its ops, decided once per program when it is prepared), or
    /// `None` when it does. Fewer rows than the variant's least are no refusal: where a job
    /// runs best is placement's to weigh ([`crate::place`]); more than its most are.
    pub fn refusal<'a>(&self, id: VariantId, rows: usize, ops: Option<&'a str>) -> Option<Cow<'a, str>> {
        let Some(v) = self.get(id) else { return Some(format!("no {id} variant is registered").into()) };
        if let Some(why) = ops {
            return Some(why.into());
        }
        (rows > v.max_rows).then(|| v.admits_rows(rows).err().unwrap_or_default().into())
    }

    /// The start-up check: each variant once; the CPU interpreter — the oracle every other
    /// variant is tested against, and where every refused job goes — present, taking every op
    /// and any number of rows; every variant's rows a non-empty range; every op a variant
    /// refuses refused with a reason.
    pub fn check(&self) -> Result<(), String> {
        for (i, v) in self.variants.iter().enumerate() {
            if self.variants[..i].iter().any(|w| w.id == v.id) {
                return Err(format!("variant {} is registered twice", v.id));
            }
            if v.min_rows > v.max_rows {
                return Err(format!("variant {} takes no job: rows {}..={}", v.id, v.min_rows, v.max_rows));
            }
            if v.families.is_empty() {
                return Err(format!("variant {} takes no geometry family", v.id));
            }
            if let Some(op) = Opcode::ALL.iter().find(|&&op| v.refuses_op(op).is_some_and(str::is_empty)) {
                return Err(format!("variant {} refuses `{}` without a reason", v.id, op.mnemonic()));
            }
        }
        let oracle = self.get(VariantId::CpuInterp).ok_or("no CPU interpreter is registered")?;
        if let Some(op) = Opcode::ALL.iter().find(|&&op| oracle.refuses_op(op).is_some()) {
            return Err(format!("the CPU interpreter refuses `{}`", op.mnemonic()));
        }
        if (oracle.min_rows, oracle.max_rows) != (0, usize::MAX) || oracle.families.len() != Family::ALL.len()
        {
            return Err("the CPU interpreter must take any job".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    #[test]
    fn registries_hold_what_the_engine_has_and_pass_their_check() {
        let names = |r: &Registry| r.variants().iter().map(|v| v.id.name()).collect::<Vec<_>>();
        let all = Registry::new(64, true, Some(1 << 16), true);
        assert_eq!(names(&all), ["inline", "cpu-interp", "cpu-jit", "gpu-interp", "gpu-jit"]);
        assert_eq!(all.check(), Ok(()));
        let bare = Registry::new(0, false, None, false);
        assert_eq!(names(&bare), ["cpu-interp"]);
        assert_eq!(bare.check(), Ok(()));
        let gpu = all.get(VariantId::GpuInterp).unwrap();
        assert_eq!(gpu.refuses_op(Opcode::Affine), None);
        assert_eq!(gpu.refuses_op(Opcode::StoreG), None);
        assert_eq!(gpu.refuses_op(Opcode::Contains), None);
        let line = gpu.to_string();
        assert!(line.starts_with("gpu-interp (cuda interp): rows 65536..=4294967295"), "{line}");
        assert!(!line.contains("refuses"), "{line}");
        assert!(!all.get(VariantId::CpuJit).unwrap().to_string().contains("refuses"));
        let programs = all.get(VariantId::GpuJit).unwrap();
        assert!(programs.to_string().starts_with("gpu-jit (cuda jit)"), "{programs}");
        assert_eq!(
            programs.refuses_op(Opcode::Simplify).map(|w| w.contains("constructed geometry")),
            Some(true)
        );
        assert!(programs.to_string().contains("refuses affine, simplify, store"), "{programs}");
    }

    #[test]
    fn the_check_refuses_a_bad_registry() {
        let mut twice = Registry::new(64, false, None, false);
        twice.variants.push(twice.variants[1].clone());
        assert!(twice.check().unwrap_err().contains("registered twice"));
        let mut empty = Registry::new(0, false, Some(10), false);
        empty.variants[1].min_rows = 11;
        empty.variants[1].max_rows = 10;
        assert!(empty.check().unwrap_err().contains("takes no job"));
        let mut no_oracle = Registry::new(64, true, None, false);
        no_oracle.variants.retain(|v| v.id != VariantId::CpuInterp);
        assert!(no_oracle.check().unwrap_err().contains("no CPU interpreter"));
        let mut narrow = Registry::new(0, false, None, false);
        narrow.variants[0].max_rows = 1000;
        assert!(narrow.check().unwrap_err().contains("any job"));
    }

    #[test]
    fn admission_by_rows_and_ops() {
        let r = Registry::new(64, true, Some(100), true);
        let pip =
            meridian_bytecode::assemble("p.masm", include_str!("../../examples/pip_join.masm")).unwrap();
        let gpu = r.get(VariantId::GpuInterp).unwrap();
        assert_eq!(gpu.admits(&pip, 100), Ok(()));
        assert!(gpu.admits(&pip, 99).unwrap_err().contains("takes jobs of 100 to 4294967295 rows, not 99"));
        assert!(gpu.admits(&pip, GPU_MAX_ROWS + 1).is_err());
        let moved = meridian_bytecode::assemble("m.masm", include_str!("../../examples/moved.masm")).unwrap();
        // The megakernel builds and stores geometry; the GPU JIT's per-job kernels do not.
        assert_eq!(gpu.admits(&moved, 1000), Ok(()));
        let why = r.get(VariantId::GpuJit).unwrap().admits(&moved, 1000).unwrap_err();
        assert!(why.contains("`affine`, `simplify`") && why.contains("geometry output"), "{why}");
        assert_eq!(r.get(VariantId::CpuJit).unwrap().admits(&moved, 1000), Ok(()));
        assert!(r.get(VariantId::Inline).unwrap().admits(&pip, 65).is_err());
    }

    #[test]
    fn the_engine_dispatches_by_what_is_registered() {
        let r = Registry::new(64, true, Some(100), true);
        assert_eq!(r.inline_rows(), 64);
        assert!(r.has(VariantId::CpuJit) && r.has(VariantId::GpuJit));
        // Few rows are placement's to weigh, an op the variant refuses or too many rows not.
        assert_eq!(r.refusal(VariantId::GpuInterp, 1, None), None);
        assert_eq!(
            r.refusal(VariantId::GpuInterp, 1, Some("`x` is refused")).as_deref(),
            Some("`x` is refused")
        );
        let over = r.refusal(VariantId::GpuInterp, GPU_MAX_ROWS + 1, None).unwrap();
        assert!(over.contains("takes jobs of 100 to 4294967295 rows"), "{over}");
        let bare = Registry::new(0, false, None, false);
        assert_eq!(bare.inline_rows(), 0);
        assert!(!bare.has(VariantId::CpuJit) && !bare.has(VariantId::GpuJit));
        assert_eq!(
            bare.refusal(VariantId::GpuInterp, 1, None).as_deref(),
            Some("no gpu-interp variant is registered")
        );
    }
}
