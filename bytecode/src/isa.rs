//! The instruction set, defined once.
//!
//! [`for_each_op!`](crate::for_each_op) is the only list of ops in the project. It is expanded
//! into the [`Opcode`](crate::Opcode) enum and its metadata, the typed
//! [`Instr`](crate::Instr) enum with its encoder and both decoders, and the
//! [`Builder`](crate::Builder) methods; the verifier, assembler and disassembler walk the
//! operand kinds it names. Executors match on `Instr` without a wildcard, so adding an op here
//! makes the compiler list every handler that is missing.

/// Calls `$m! { ... }` with the whole op table.
///
/// Each entry is
/// `/// doc line` `Name = opcode, builder_method, "mnemonic" { field: Kind, ... };`
/// where each `Kind` is a marker in [`operand::kind`](crate::operand::kind). Operands are
/// listed in assembly order. Several entries may share a mnemonic when their operand register
/// files differ (`mov f0, f1` / `mov g0, g1`); the assembler picks the entry whose operand
/// kinds match what was written.
///
/// Encoding: register operands fill the word's `a`, `b`, `c` bytes in order and a fourth
/// register spills into `imm`; an input, output, constant, matrix or jump operand always goes
/// to `imm`. No op has more than one `imm` operand (a test checks it).
///
/// ```
/// macro_rules! count_ops {
///     ($( $(#[doc = $doc:literal])* $name:ident = $code:literal, $method:ident, $mn:literal
///         { $($field:ident : $kind:ident),* } ; )*) => { [$($mn),*].len() };
/// }
/// let n = meridian_bytecode::for_each_op!(count_ops);
/// assert_eq!(n, meridian_bytecode::Opcode::ALL.len());
/// ```
#[macro_export]
macro_rules! for_each_op {
    ($m:ident) => {
        $m! {
            // ---- control -------------------------------------------------------------------
            /// Stop executing the current row.
            Halt = 0x01, halt, "halt" {};
            /// Jump to `target` unconditionally.
            Jmp = 0x02, jmp, "jmp" { target: Jump };
            /// Jump to `target` when `cond` is true (null counts as false).
            Jt = 0x03, jt, "jt" { cond: SrcB, target: Jump };
            /// Jump to `target` when `cond` is false or null.
            Jf = 0x04, jf, "jf" { cond: SrcB, target: Jump };

            // ---- data movement -------------------------------------------------------------
            /// Load the current row of a non-indexed input into `dst`.
            Load = 0x08, load, "load" { dst: DstG, input: RowIn };
            /// Set `dst` to a constant (never null).
            Const = 0x09, constant, "const" { dst: DstF, value: Const };
            /// Copy an f register, null flag included.
            MovF = 0x0a, mov_f, "mov" { dst: DstF, src: SrcF };
            /// Copy a b register, null flag included.
            MovB = 0x0b, mov_b, "mov" { dst: DstB, src: SrcB };
            /// Copy a g register, null flag included.
            MovG = 0x0c, mov_g, "mov" { dst: DstG, src: SrcG };
            /// `dst = cond ? if_true : if_false` over f registers; null `cond` gives null.
            SelectF = 0x0d, select_f, "select" { dst: DstF, cond: SrcB, if_true: SrcF, if_false: SrcF };
            /// `dst = cond ? if_true : if_false` over b registers; null `cond` gives null.
            SelectB = 0x0e, select_b, "select" { dst: DstB, cond: SrcB, if_true: SrcB, if_false: SrcB };
            /// `dst = cond ? if_true : if_false` over g registers; null `cond` gives null.
            SelectG = 0x0f, select_g, "select" { dst: DstG, cond: SrcB, if_true: SrcG, if_false: SrcG };

            // ---- f64 arithmetic (IEEE 754; null in, null out) --------------------------------
            /// `dst = lhs + rhs`.
            Add = 0x10, add, "add" { dst: DstF, lhs: SrcF, rhs: SrcF };
            /// `dst = lhs - rhs`.
            Sub = 0x11, sub, "sub" { dst: DstF, lhs: SrcF, rhs: SrcF };
            /// `dst = lhs * rhs`.
            Mul = 0x12, mul, "mul" { dst: DstF, lhs: SrcF, rhs: SrcF };
            /// `dst = lhs / rhs` (division by zero gives ±inf or NaN, not null).
            Div = 0x13, div, "div" { dst: DstF, lhs: SrcF, rhs: SrcF };
            /// `dst = min(lhs, rhs)`; NaN if either is NaN.
            Min = 0x14, min, "min" { dst: DstF, lhs: SrcF, rhs: SrcF };
            /// `dst = max(lhs, rhs)`; NaN if either is NaN.
            Max = 0x15, max, "max" { dst: DstF, lhs: SrcF, rhs: SrcF };
            /// `dst = |src|`.
            Abs = 0x16, abs, "abs" { dst: DstF, src: SrcF };
            /// `dst = -src`.
            Neg = 0x17, neg, "neg" { dst: DstF, src: SrcF };
            /// `dst = sqrt(src)`; NaN for negative `src`.
            Sqrt = 0x18, sqrt, "sqrt" { dst: DstF, src: SrcF };

            // ---- f64 comparisons (NaN compares false except `ne`; null in, null out) --------
            /// `dst = lhs < rhs`.
            Lt = 0x20, lt, "lt" { dst: DstB, lhs: SrcF, rhs: SrcF };
            /// `dst = lhs <= rhs`.
            Le = 0x21, le, "le" { dst: DstB, lhs: SrcF, rhs: SrcF };
            /// `dst = lhs > rhs`.
            Gt = 0x22, gt, "gt" { dst: DstB, lhs: SrcF, rhs: SrcF };
            /// `dst = lhs >= rhs`.
            Ge = 0x23, ge, "ge" { dst: DstB, lhs: SrcF, rhs: SrcF };
            /// `dst = lhs == rhs`.
            Eq = 0x24, eq, "eq" { dst: DstB, lhs: SrcF, rhs: SrcF };
            /// `dst = lhs != rhs`.
            Ne = 0x25, ne, "ne" { dst: DstB, lhs: SrcF, rhs: SrcF };

            // ---- boolean logic (three-valued, as SQL) ----------------------------------------
            /// `dst = lhs AND rhs`; false wins over null.
            And = 0x28, and, "and" { dst: DstB, lhs: SrcB, rhs: SrcB };
            /// `dst = lhs OR rhs`; true wins over null.
            Or = 0x29, or, "or" { dst: DstB, lhs: SrcB, rhs: SrcB };
            /// `dst = NOT src`; null stays null.
            Not = 0x2a, not, "not" { dst: DstB, src: SrcB };
            /// `dst = src is null` (never null itself).
            IsNullF = 0x2b, isnull_f, "isnull" { dst: DstB, src: SrcF };

            // ---- geometry measures ---------------------------------------------------------
            /// Planar area; 0 for points, lines and empties.
            Area = 0x30, area, "area" { dst: DstF, geom: SrcG };
            /// Length of lines; perimeter of polygons (all rings); 0 for points and empties.
            Length = 0x31, length, "length" { dst: DstF, geom: SrcG };
            /// Bounding box into `dst..dst+3` = minx, miny, maxx, maxy; NaN for empties.
            Bbox = 0x32, bbox, "bbox" { dst: DstF4, geom: SrcG };
            /// Centroid into `dst`, `dst+1` = x, y (JTS semantics); NaN for empties.
            Centroid = 0x33, centroid, "centroid" { dst: DstF2, geom: SrcG };
            /// Number of coordinates (0 for empties).
            NPoints = 0x34, npoints, "npoints" { dst: DstF, geom: SrcG };
            /// Whether the geometry has no coordinates; null for null.
            IsEmpty = 0x35, isempty, "isempty" { dst: DstB, geom: SrcG };
            /// `dst = geom is null` (never null itself).
            IsNullG = 0x36, isnull_g, "isnull" { dst: DstB, geom: SrcG };
            /// The x coordinate of a point; NaN for an empty point, null for non-points.
            X = 0x37, x, "x" { dst: DstF, geom: SrcG };
            /// The y coordinate of a point; NaN for an empty point, null for non-points.
            Y = 0x38, y, "y" { dst: DstF, geom: SrcG };

            // ---- predicates (named-predicate semantics as in JTS; null in, null out) --------
            /// `dst = a and b share at least one point`.
            Intersects = 0x40, intersects, "intersects" { dst: DstB, a: SrcG, b: SrcG };
            /// `dst = b lies in a and some interior points are shared` (JTS `contains`).
            Contains = 0x41, contains, "contains" { dst: DstB, a: SrcG, b: SrcG };
            /// `dst = a lies in b and some interior points are shared` (`contains` swapped).
            Within = 0x42, within, "within" { dst: DstB, a: SrcG, b: SrcG };
            /// `dst = no point of b lies outside a`.
            Covers = 0x43, covers, "covers" { dst: DstB, a: SrcG, b: SrcG };
            /// `dst = no point of a lies outside b` (`covers` swapped).
            CoveredBy = 0x44, coveredby, "coveredby" { dst: DstB, a: SrcG, b: SrcG };
            /// `dst = a and b meet only on their boundaries`.
            Touches = 0x45, touches, "touches" { dst: DstB, a: SrcG, b: SrcG };
            /// `dst = a and b share no point` (NOT `intersects`).
            Disjoint = 0x46, disjoint, "disjoint" { dst: DstB, a: SrcG, b: SrcG };
            /// `dst = distance(a, b) <= dist`.
            DWithin = 0x47, dwithin, "dwithin" { dst: DstB, a: SrcG, b: SrcG, dist: SrcF };
            /// `dst = ` minimum Euclidean distance between `a` and `b`; NaN if either is empty.
            Distance = 0x48, distance, "distance" { dst: DstF, a: SrcG, b: SrcG };

            // ---- constructive ----------------------------------------------------------------
            /// `dst = geom` mapped by `x' = m0·x + m1·y + m4`, `y' = m2·x + m3·y + m5`.
            Affine = 0x50, affine, "affine" { dst: DstG, geom: SrcG, matrix: Mat };
            /// `dst = ` Douglas–Peucker simplification of `geom` (topology-unaware, as JTS).
            Simplify = 0x51, simplify, "simplify" { dst: DstG, geom: SrcG, tolerance: SrcF };

            // ---- candidate loops -----------------------------------------------------------
            /// Open a cursor over the candidates of an indexed input whose box meets `geom`'s box.
            Probe = 0x58, probe, "probe" { cursor: DstC, input: IdxIn, geom: SrcG };
            /// As `probe`, with `geom`'s box expanded by `dist` on every side.
            ProbeDist = 0x59, probe_dist, "probe" { cursor: DstC, input: IdxIn, geom: SrcG, dist: SrcF };
            /// Advance `cursor`: `dst` = next candidate, or jump to `exit` when exhausted.
            CNext = 0x5a, cnext, "cnext" { dst: DstG, cursor: UseC, exit: Jump };

            // ---- outputs -------------------------------------------------------------------
            /// Store `src` as this row's value of an f64 output (null stores null).
            StoreF = 0x60, store_f, "store" { output: OutF64, src: SrcF };
            /// Store `src` as this row's value of a bool output (null stores null).
            StoreB = 0x61, store_b, "store" { output: OutBool, src: SrcB };
            /// Store `src` as this row's value of a geometry output (null stores null).
            StoreG = 0x62, store_g, "store" { output: OutGeom, src: SrcG };
            /// Append the hit (current row, id of `cand`'s source row) to a hits output.
            Emit = 0x63, emit, "emit" { output: OutHits, cand: SrcG };
            /// Add one to a count output.
            Count = 0x64, count, "count" { output: OutCount };
            /// Add `src` to a sum output; null is skipped, NaN propagates.
            Sum = 0x65, sum, "sum" { output: OutSum, src: SrcF };
        }
    };
}
