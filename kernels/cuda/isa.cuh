// isa.cuh — GENERATED from meridian-bytecode's for_each_op! table by
// meridian_kernels::cuda::isa_header(). Do not edit: run
// `MERIDIAN_BLESS=1 cargo test -p meridian-kernels --test cuda_sources` to rewrite it; that
// test fails while this file differs from what the table generates.
#ifndef MR_ISA_CUH
#define MR_ISA_CUH

// Registers per file (each register also has a null flag).
#define MR_REGS_F 32
#define MR_REGS_B 32
#define MR_REGS_G 16
#define MR_REGS_C 4
#define MR_MAX_INPUTS 16
#define MR_MAX_OUTPUTS 64

// The 64-bit instruction word: op:u8 a:u8 b:u8 c:u8 imm:u32.
#define MR_WORD_OP(w) ((u32)((w) & 0xffULL))
#define MR_WORD_A(w) ((u32)(((w) >> 8) & 0xffULL))
#define MR_WORD_B(w) ((u32)(((w) >> 16) & 0xffULL))
#define MR_WORD_C(w) ((u32)(((w) >> 24) & 0xffULL))
#define MR_WORD_IMM(w) ((u32)((w) >> 32))
// A fourth register operand sits in the low byte of imm.
#define MR_WORD_IMM_REG(w) (MR_WORD_IMM(w) & 0xffu)

// Output kinds (OutputKind).
#define MR_OUT_F64 1
#define MR_OUT_BOOL 2
#define MR_OUT_GEOMETRY 3
#define MR_OUT_HITS 4
#define MR_OUT_COUNT 5
#define MR_OUT_SUM 6

// Ops: the opcode, then one accessor per operand, in assembly order.
// halt: Stop executing the current row.
#define MR_OP_HALT 0x01
// jmp target:label: Jump to `target` unconditionally.
#define MR_OP_JMP 0x02
#define MR_JMP_TARGET(w) MR_WORD_IMM(w)
// jt cond:b, target:label: Jump to `target` when `cond` is true (null counts as false).
#define MR_OP_JT 0x03
#define MR_JT_COND(w) MR_WORD_A(w)
#define MR_JT_TARGET(w) MR_WORD_IMM(w)
// jf cond:b, target:label: Jump to `target` when `cond` is false or null.
#define MR_OP_JF 0x04
#define MR_JF_COND(w) MR_WORD_A(w)
#define MR_JF_TARGET(w) MR_WORD_IMM(w)
// load dst:g, input:input: Load the current row of a non-indexed input into `dst`.
#define MR_OP_LOAD 0x08
#define MR_LOAD_DST(w) MR_WORD_A(w)
#define MR_LOAD_INPUT(w) MR_WORD_IMM(w)
// const dst:f, value:const: Set `dst` to a constant (never null).
#define MR_OP_CONST 0x09
#define MR_CONST_DST(w) MR_WORD_A(w)
#define MR_CONST_VALUE(w) MR_WORD_IMM(w)
// mov dst:f, src:f: Copy an f register, null flag included.
#define MR_OP_MOVF 0x0a
#define MR_MOVF_DST(w) MR_WORD_A(w)
#define MR_MOVF_SRC(w) MR_WORD_B(w)
// mov dst:b, src:b: Copy a b register, null flag included.
#define MR_OP_MOVB 0x0b
#define MR_MOVB_DST(w) MR_WORD_A(w)
#define MR_MOVB_SRC(w) MR_WORD_B(w)
// mov dst:g, src:g: Copy a g register, null flag included.
#define MR_OP_MOVG 0x0c
#define MR_MOVG_DST(w) MR_WORD_A(w)
#define MR_MOVG_SRC(w) MR_WORD_B(w)
// select dst:f, cond:b, if_true:f, if_false:f: `dst = cond ? if_true : if_false` over f registers; null `cond` gives null.
#define MR_OP_SELECTF 0x0d
#define MR_SELECTF_DST(w) MR_WORD_A(w)
#define MR_SELECTF_COND(w) MR_WORD_B(w)
#define MR_SELECTF_IF_TRUE(w) MR_WORD_C(w)
#define MR_SELECTF_IF_FALSE(w) MR_WORD_IMM_REG(w)
// select dst:b, cond:b, if_true:b, if_false:b: `dst = cond ? if_true : if_false` over b registers; null `cond` gives null.
#define MR_OP_SELECTB 0x0e
#define MR_SELECTB_DST(w) MR_WORD_A(w)
#define MR_SELECTB_COND(w) MR_WORD_B(w)
#define MR_SELECTB_IF_TRUE(w) MR_WORD_C(w)
#define MR_SELECTB_IF_FALSE(w) MR_WORD_IMM_REG(w)
// select dst:g, cond:b, if_true:g, if_false:g: `dst = cond ? if_true : if_false` over g registers; null `cond` gives null.
#define MR_OP_SELECTG 0x0f
#define MR_SELECTG_DST(w) MR_WORD_A(w)
#define MR_SELECTG_COND(w) MR_WORD_B(w)
#define MR_SELECTG_IF_TRUE(w) MR_WORD_C(w)
#define MR_SELECTG_IF_FALSE(w) MR_WORD_IMM_REG(w)
// add dst:f, lhs:f, rhs:f: `dst = lhs + rhs`.
#define MR_OP_ADD 0x10
#define MR_ADD_DST(w) MR_WORD_A(w)
#define MR_ADD_LHS(w) MR_WORD_B(w)
#define MR_ADD_RHS(w) MR_WORD_C(w)
// sub dst:f, lhs:f, rhs:f: `dst = lhs - rhs`.
#define MR_OP_SUB 0x11
#define MR_SUB_DST(w) MR_WORD_A(w)
#define MR_SUB_LHS(w) MR_WORD_B(w)
#define MR_SUB_RHS(w) MR_WORD_C(w)
// mul dst:f, lhs:f, rhs:f: `dst = lhs * rhs`.
#define MR_OP_MUL 0x12
#define MR_MUL_DST(w) MR_WORD_A(w)
#define MR_MUL_LHS(w) MR_WORD_B(w)
#define MR_MUL_RHS(w) MR_WORD_C(w)
// div dst:f, lhs:f, rhs:f: `dst = lhs / rhs` (division by zero gives ±inf or NaN, not null).
#define MR_OP_DIV 0x13
#define MR_DIV_DST(w) MR_WORD_A(w)
#define MR_DIV_LHS(w) MR_WORD_B(w)
#define MR_DIV_RHS(w) MR_WORD_C(w)
// min dst:f, lhs:f, rhs:f: `dst = min(lhs, rhs)`; NaN if either is NaN.
#define MR_OP_MIN 0x14
#define MR_MIN_DST(w) MR_WORD_A(w)
#define MR_MIN_LHS(w) MR_WORD_B(w)
#define MR_MIN_RHS(w) MR_WORD_C(w)
// max dst:f, lhs:f, rhs:f: `dst = max(lhs, rhs)`; NaN if either is NaN.
#define MR_OP_MAX 0x15
#define MR_MAX_DST(w) MR_WORD_A(w)
#define MR_MAX_LHS(w) MR_WORD_B(w)
#define MR_MAX_RHS(w) MR_WORD_C(w)
// abs dst:f, src:f: `dst = |src|`.
#define MR_OP_ABS 0x16
#define MR_ABS_DST(w) MR_WORD_A(w)
#define MR_ABS_SRC(w) MR_WORD_B(w)
// neg dst:f, src:f: `dst = -src`.
#define MR_OP_NEG 0x17
#define MR_NEG_DST(w) MR_WORD_A(w)
#define MR_NEG_SRC(w) MR_WORD_B(w)
// sqrt dst:f, src:f: `dst = sqrt(src)`; NaN for negative `src`.
#define MR_OP_SQRT 0x18
#define MR_SQRT_DST(w) MR_WORD_A(w)
#define MR_SQRT_SRC(w) MR_WORD_B(w)
// lt dst:b, lhs:f, rhs:f: `dst = lhs < rhs`.
#define MR_OP_LT 0x20
#define MR_LT_DST(w) MR_WORD_A(w)
#define MR_LT_LHS(w) MR_WORD_B(w)
#define MR_LT_RHS(w) MR_WORD_C(w)
// le dst:b, lhs:f, rhs:f: `dst = lhs <= rhs`.
#define MR_OP_LE 0x21
#define MR_LE_DST(w) MR_WORD_A(w)
#define MR_LE_LHS(w) MR_WORD_B(w)
#define MR_LE_RHS(w) MR_WORD_C(w)
// gt dst:b, lhs:f, rhs:f: `dst = lhs > rhs`.
#define MR_OP_GT 0x22
#define MR_GT_DST(w) MR_WORD_A(w)
#define MR_GT_LHS(w) MR_WORD_B(w)
#define MR_GT_RHS(w) MR_WORD_C(w)
// ge dst:b, lhs:f, rhs:f: `dst = lhs >= rhs`.
#define MR_OP_GE 0x23
#define MR_GE_DST(w) MR_WORD_A(w)
#define MR_GE_LHS(w) MR_WORD_B(w)
#define MR_GE_RHS(w) MR_WORD_C(w)
// eq dst:b, lhs:f, rhs:f: `dst = lhs == rhs`.
#define MR_OP_EQ 0x24
#define MR_EQ_DST(w) MR_WORD_A(w)
#define MR_EQ_LHS(w) MR_WORD_B(w)
#define MR_EQ_RHS(w) MR_WORD_C(w)
// ne dst:b, lhs:f, rhs:f: `dst = lhs != rhs`.
#define MR_OP_NE 0x25
#define MR_NE_DST(w) MR_WORD_A(w)
#define MR_NE_LHS(w) MR_WORD_B(w)
#define MR_NE_RHS(w) MR_WORD_C(w)
// and dst:b, lhs:b, rhs:b: `dst = lhs AND rhs`; false wins over null.
#define MR_OP_AND 0x28
#define MR_AND_DST(w) MR_WORD_A(w)
#define MR_AND_LHS(w) MR_WORD_B(w)
#define MR_AND_RHS(w) MR_WORD_C(w)
// or dst:b, lhs:b, rhs:b: `dst = lhs OR rhs`; true wins over null.
#define MR_OP_OR 0x29
#define MR_OR_DST(w) MR_WORD_A(w)
#define MR_OR_LHS(w) MR_WORD_B(w)
#define MR_OR_RHS(w) MR_WORD_C(w)
// not dst:b, src:b: `dst = NOT src`; null stays null.
#define MR_OP_NOT 0x2a
#define MR_NOT_DST(w) MR_WORD_A(w)
#define MR_NOT_SRC(w) MR_WORD_B(w)
// isnull dst:b, src:f: `dst = src is null` (never null itself).
#define MR_OP_ISNULLF 0x2b
#define MR_ISNULLF_DST(w) MR_WORD_A(w)
#define MR_ISNULLF_SRC(w) MR_WORD_B(w)
// area dst:f, geom:g: Planar area; 0 for points, lines and empties.
#define MR_OP_AREA 0x30
#define MR_AREA_DST(w) MR_WORD_A(w)
#define MR_AREA_GEOM(w) MR_WORD_B(w)
// length dst:f, geom:g: Length of lines; perimeter of polygons (all rings); 0 for points and empties.
#define MR_OP_LENGTH 0x31
#define MR_LENGTH_DST(w) MR_WORD_A(w)
#define MR_LENGTH_GEOM(w) MR_WORD_B(w)
// bbox dst:f×4, geom:g: Bounding box into `dst..dst+3` = minx, miny, maxx, maxy; NaN for empties.
#define MR_OP_BBOX 0x32
#define MR_BBOX_DST(w) MR_WORD_A(w)
#define MR_BBOX_GEOM(w) MR_WORD_B(w)
// centroid dst:f×2, geom:g: Centroid into `dst`, `dst+1` = x, y (JTS semantics); NaN for empties.
#define MR_OP_CENTROID 0x33
#define MR_CENTROID_DST(w) MR_WORD_A(w)
#define MR_CENTROID_GEOM(w) MR_WORD_B(w)
// npoints dst:f, geom:g: Number of coordinates (0 for empties).
#define MR_OP_NPOINTS 0x34
#define MR_NPOINTS_DST(w) MR_WORD_A(w)
#define MR_NPOINTS_GEOM(w) MR_WORD_B(w)
// isempty dst:b, geom:g: Whether the geometry has no coordinates; null for null.
#define MR_OP_ISEMPTY 0x35
#define MR_ISEMPTY_DST(w) MR_WORD_A(w)
#define MR_ISEMPTY_GEOM(w) MR_WORD_B(w)
// isnull dst:b, geom:g: `dst = geom is null` (never null itself).
#define MR_OP_ISNULLG 0x36
#define MR_ISNULLG_DST(w) MR_WORD_A(w)
#define MR_ISNULLG_GEOM(w) MR_WORD_B(w)
// x dst:f, geom:g: The x coordinate of a point; NaN for an empty point, null for non-points.
#define MR_OP_X 0x37
#define MR_X_DST(w) MR_WORD_A(w)
#define MR_X_GEOM(w) MR_WORD_B(w)
// y dst:f, geom:g: The y coordinate of a point; NaN for an empty point, null for non-points.
#define MR_OP_Y 0x38
#define MR_Y_DST(w) MR_WORD_A(w)
#define MR_Y_GEOM(w) MR_WORD_B(w)
// intersects dst:b, a:g, b:g: `dst = a and b share at least one point`.
#define MR_OP_INTERSECTS 0x40
#define MR_INTERSECTS_DST(w) MR_WORD_A(w)
#define MR_INTERSECTS_A(w) MR_WORD_B(w)
#define MR_INTERSECTS_B(w) MR_WORD_C(w)
// contains dst:b, a:g, b:g: `dst = b lies in a and some interior points are shared` (JTS `contains`).
#define MR_OP_CONTAINS 0x41
#define MR_CONTAINS_DST(w) MR_WORD_A(w)
#define MR_CONTAINS_A(w) MR_WORD_B(w)
#define MR_CONTAINS_B(w) MR_WORD_C(w)
// within dst:b, a:g, b:g: `dst = a lies in b and some interior points are shared` (`contains` swapped).
#define MR_OP_WITHIN 0x42
#define MR_WITHIN_DST(w) MR_WORD_A(w)
#define MR_WITHIN_A(w) MR_WORD_B(w)
#define MR_WITHIN_B(w) MR_WORD_C(w)
// covers dst:b, a:g, b:g: `dst = no point of b lies outside a`.
#define MR_OP_COVERS 0x43
#define MR_COVERS_DST(w) MR_WORD_A(w)
#define MR_COVERS_A(w) MR_WORD_B(w)
#define MR_COVERS_B(w) MR_WORD_C(w)
// coveredby dst:b, a:g, b:g: `dst = no point of a lies outside b` (`covers` swapped).
#define MR_OP_COVEREDBY 0x44
#define MR_COVEREDBY_DST(w) MR_WORD_A(w)
#define MR_COVEREDBY_A(w) MR_WORD_B(w)
#define MR_COVEREDBY_B(w) MR_WORD_C(w)
// touches dst:b, a:g, b:g: `dst = a and b meet only on their boundaries`.
#define MR_OP_TOUCHES 0x45
#define MR_TOUCHES_DST(w) MR_WORD_A(w)
#define MR_TOUCHES_A(w) MR_WORD_B(w)
#define MR_TOUCHES_B(w) MR_WORD_C(w)
// disjoint dst:b, a:g, b:g: `dst = a and b share no point` (NOT `intersects`).
#define MR_OP_DISJOINT 0x46
#define MR_DISJOINT_DST(w) MR_WORD_A(w)
#define MR_DISJOINT_A(w) MR_WORD_B(w)
#define MR_DISJOINT_B(w) MR_WORD_C(w)
// dwithin dst:b, a:g, b:g, dist:f: `dst = distance(a, b) <= dist`.
#define MR_OP_DWITHIN 0x47
#define MR_DWITHIN_DST(w) MR_WORD_A(w)
#define MR_DWITHIN_A(w) MR_WORD_B(w)
#define MR_DWITHIN_B(w) MR_WORD_C(w)
#define MR_DWITHIN_DIST(w) MR_WORD_IMM_REG(w)
// distance dst:f, a:g, b:g: `dst = ` minimum Euclidean distance between `a` and `b`; NaN if either is empty.
#define MR_OP_DISTANCE 0x48
#define MR_DISTANCE_DST(w) MR_WORD_A(w)
#define MR_DISTANCE_A(w) MR_WORD_B(w)
#define MR_DISTANCE_B(w) MR_WORD_C(w)
// affine dst:g, geom:g, matrix:const×6: `dst = geom` mapped by `x' = m0·x + m1·y + m4`, `y' = m2·x + m3·y + m5`.
#define MR_OP_AFFINE 0x50
#define MR_AFFINE_DST(w) MR_WORD_A(w)
#define MR_AFFINE_GEOM(w) MR_WORD_B(w)
#define MR_AFFINE_MATRIX(w) MR_WORD_IMM(w)
// simplify dst:g, geom:g, tolerance:f: `dst = ` Douglas–Peucker simplification of `geom` (topology-unaware, as JTS).
#define MR_OP_SIMPLIFY 0x51
#define MR_SIMPLIFY_DST(w) MR_WORD_A(w)
#define MR_SIMPLIFY_GEOM(w) MR_WORD_B(w)
#define MR_SIMPLIFY_TOLERANCE(w) MR_WORD_C(w)
// probe cursor:c, input:indexed-input, geom:g: Open a cursor over the candidates of an indexed input whose box meets `geom`'s box.
#define MR_OP_PROBE 0x58
#define MR_PROBE_CURSOR(w) MR_WORD_A(w)
#define MR_PROBE_INPUT(w) MR_WORD_IMM(w)
#define MR_PROBE_GEOM(w) MR_WORD_B(w)
// probe cursor:c, input:indexed-input, geom:g, dist:f: As `probe`, with `geom`'s box expanded by `dist` on every side.
#define MR_OP_PROBEDIST 0x59
#define MR_PROBEDIST_CURSOR(w) MR_WORD_A(w)
#define MR_PROBEDIST_INPUT(w) MR_WORD_IMM(w)
#define MR_PROBEDIST_GEOM(w) MR_WORD_B(w)
#define MR_PROBEDIST_DIST(w) MR_WORD_C(w)
// cnext dst:g, cursor:c, exit:label: Advance `cursor`: `dst` = next candidate, or jump to `exit` when exhausted.
#define MR_OP_CNEXT 0x5a
#define MR_CNEXT_DST(w) MR_WORD_A(w)
#define MR_CNEXT_CURSOR(w) MR_WORD_B(w)
#define MR_CNEXT_EXIT(w) MR_WORD_IMM(w)
// store output:f64-output, src:f: Store `src` as this row's value of an f64 output (null stores null).
#define MR_OP_STOREF 0x60
#define MR_STOREF_OUTPUT(w) MR_WORD_IMM(w)
#define MR_STOREF_SRC(w) MR_WORD_A(w)
// store output:bool-output, src:b: Store `src` as this row's value of a bool output (null stores null).
#define MR_OP_STOREB 0x61
#define MR_STOREB_OUTPUT(w) MR_WORD_IMM(w)
#define MR_STOREB_SRC(w) MR_WORD_A(w)
// store output:geometry-output, src:g: Store `src` as this row's value of a geometry output (null stores null).
#define MR_OP_STOREG 0x62
#define MR_STOREG_OUTPUT(w) MR_WORD_IMM(w)
#define MR_STOREG_SRC(w) MR_WORD_A(w)
// emit output:hits-output, cand:g: Append the hit (current row, id of `cand`'s source row) to a hits output.
#define MR_OP_EMIT 0x63
#define MR_EMIT_OUTPUT(w) MR_WORD_IMM(w)
#define MR_EMIT_CAND(w) MR_WORD_A(w)
// count output:count-output: Add one to a count output.
#define MR_OP_COUNT 0x64
#define MR_COUNT_OUTPUT(w) MR_WORD_IMM(w)
// sum output:sum-output, src:f: Add `src` to a sum output; null is skipped, NaN propagates.
#define MR_OP_SUM 0x65
#define MR_SUM_OUTPUT(w) MR_WORD_IMM(w)
#define MR_SUM_SRC(w) MR_WORD_A(w)

// What the megakernel runs: interp.cuh's dispatch (mr_step) has a case for each op here
// by construction, and mr_op fails to compile for one without a body. Programs using any
// other op are refused for the GPU, for the reason given.
#define MR_GPU_OPS(apply) apply(HALT) apply(JMP) apply(JT) apply(JF) apply(LOAD) apply(CONST) apply(MOVF) apply(MOVB) apply(MOVG) apply(SELECTF) apply(SELECTB) apply(SELECTG) apply(ADD) apply(SUB) apply(MUL) apply(DIV) apply(MIN) apply(MAX) apply(ABS) apply(NEG) apply(SQRT) apply(LT) apply(LE) apply(GT) apply(GE) apply(EQ) apply(NE) apply(AND) apply(OR) apply(NOT) apply(ISNULLF) apply(AREA) apply(LENGTH) apply(BBOX) apply(CENTROID) apply(NPOINTS) apply(ISEMPTY) apply(ISNULLG) apply(X) apply(Y) apply(INTERSECTS) apply(CONTAINS) apply(WITHIN) apply(COVERS) apply(COVEREDBY) apply(TOUCHES) apply(DISJOINT) apply(DWITHIN) apply(DISTANCE) apply(AFFINE) apply(SIMPLIFY) apply(PROBE) apply(PROBEDIST) apply(CNEXT) apply(STOREF) apply(STOREB) apply(STOREG) apply(EMIT) apply(COUNT) apply(SUM)

#endif  // MR_ISA_CUH
