// interp.cuh — the device interpreter: one thread runs one row of a verified program, with
// the semantics of the CPU interpreter (kernels/src/interp/exec.rs) op for op.
//
// Registers live in a per-thread MrRegs (null flags included) and start null every row.
// Candidate cursors cannot hold a vector of entries, so they produce candidates lazily, in the
// CPU's order (ascending row, each row once): a point probe of an index with a cell grid walks
// the point's cell (its parts are in ascending order); any other probe refills a small sorted
// buffer with the next smallest parts whose boxes meet the query, one tree traversal per
// refill. Outputs go to a Sink the caller provides (the megakernel's per-thread outputs, or
// a test harness's).
#ifndef MR_INTERP_CUH
#define MR_INTERP_CUH

#include "isa.cuh"
#include "index.cuh"
#include "relate.cuh"
#include "construct.cuh"

#define MR_B_NULL 2
#define MR_SRC_NULL 0xff
#define MR_SRC_BUILT 0xfe  // a geometry built this row (affine, simplify): MrG::col is its slot
#define MR_CURSOR_BUF 16

// Why a row could not run: MR_ERR_* (abi_gen.cuh, from DeviceErrorCode in
// kernels/src/cuda/abi/job.rs, with the host's messages).

// A g register: a row of an input, a geometry built this row (src == MR_SRC_BUILT, `col` its
// slot's one-row column, `row` the input row it was built from, as the CPU's derived values
// keep it), or null (src == MR_SRC_NULL).
struct MrG {
    u32 row;
    u32 src;
    const MrColumn* col;
};

// A thread's scratch for constructed geometry: `slots` slots of `slot_bytes` after a work area
// of `work_bytes` (simplify's), each slot sized by `caps`. One more slot than registers that can
// hold a constructed geometry, so a construction always finds a slot no register refers to.
// base == nullptr: this kernel has none (constructive ops fail the row with MR_ERR_NO_SCRATCH).
struct MrScratch {
    u8* base;
    u64 work_bytes;
    u64 slot_bytes;
    MrBuiltCaps caps;
    u32 slots;
    u32 pad;
};

#define MR_CUR_EMPTY 0
#define MR_CUR_GRID 1
#define MR_CUR_TREE 2

struct MrCursor {
    u32 mode;
    u32 input;
    // Grid mode: entries [pos, end) of the point's cell.
    u32 pos, end;
    double px, py;
    // Tree mode: the query box; buf[bpos..nbuf] the next parts, ascending; `more` when parts
    // past buf remain; `last` the largest part handed to buf (a refill continues after it).
    MrRect rect;
    u32 buf[MR_CURSOR_BUF];
    u32 nbuf, bpos;
    u32 last;
    u32 more;
    u32 started;
};

struct MrRegs {
    double f[MR_REGS_F];
    u32 f_null;  // bit i: f[i] is null
    u8 b[MR_REGS_B];
    MrG g[MR_REGS_G];
    MrCursor c[MR_REGS_C];
    MrG out_g[MR_GEOM_OUTPUTS];  // each geometry output's value this row (`store` sets it)
    MrScratch scratch;  // set by the kernel, kept across rows
    // The job's cancel word in device memory (nullptr: this kernel has none), and the
    // candidate steps since the chunk began: a row in nested candidate loops can run for
    // hours, so `cnext` looks at the word every 1024 steps (a read of L2, not of host memory).
    const u32* cancel;
    u32 polls;
};

MR_FN bool mr_cancelled(MrRegs& R) {
    return R.cancel != nullptr && (++R.polls & 1023u) == 0 && mr_atomic_load_u32(R.cancel) != 0;
}

MR_FN bool mr_areal_kind(u32 kind) { return kind == MR_FAM_POLYGON || kind == MR_FAM_MULTIPOLYGON; }

MR_FN MrG mr_g_null() { return MrG{0, MR_SRC_NULL, nullptr}; }
MR_FN MrG mr_g_input(u32 src, u32 row) { return MrG{row, src, nullptr}; }

// The geometry of a register: an input's row or a built one (whose column has one row).
MR_FN bool mr_g_geom(const MrInput* ins, u32 nins, MrG v, MrGeom& g) {
    if (v.src < nins) return mr_geom(&ins[v.src].col, v.row, g);
    if (v.src == MR_SRC_BUILT && v.col != nullptr) return mr_geom(v.col, 0, g);
    return false;
}
// The coordinate of a register that is a non-empty point row *of an input* (point_of on the
// CPU: a built point takes the general paths there too, and so it does here).
MR_FN bool mr_g_point(const MrInput* ins, u32 nins, MrG v, double& x, double& y) {
    if (v.src >= nins) return false;
    return mr_point_of(&ins[v.src].col, v.row, x, y);
}

// Where p lies relative to the polygon row `a` of an indexed input, from the index's slabs
// (exactly algo::locate_point); false when `a` is not such a row (locate_in_candidate).
MR_NOINLINE bool mr_locate_candidate(const MrInput* ins, u32 nins, MrG a, double px, double py, u32& loc) {
    if (a.src >= nins) return false;
    const MrInput& in = ins[a.src];
    if (!in.indexed || a.row >= in.col.rows) return false;
    if (!mr_areal_kind(mr_kind(&in.col, a.row))) return false;
    const MrIndex& ix = in.idx;
    u32 p0, p1;
    mr_geom_parts(&in.col, a.row, p0, p1);
    u32 result = MR_EXTERIOR;
    for (u32 part = p0; part < p1; part++) {
        if (part >= ix.slab_part_count) return false;
        // A part whose box does not hold p cannot hold it on its boundary either.
        if (ix.has_grid && !mr_rect_contains(ix.grid_boxes[part], px, py)) continue;
        u32 l = mr_slabs_locate(ix, part, px, py);
        if (l == MR_BOUNDARY) {
            result = MR_BOUNDARY;
            break;
        }
        if (l == MR_INTERIOR) result = MR_INTERIOR;
    }
    loc = result;
    return true;
}

MR_FN bool mr_pred_symmetric(u32 pred) {
    return pred == MR_PRED_INTERSECTS || pred == MR_PRED_TOUCHES || pred == MR_PRED_DISJOINT;
}
MR_FN bool mr_pred_of_location(u32 pred, u32 loc) {
    switch (pred) {
        case MR_PRED_INTERSECTS: return loc != MR_EXTERIOR;
        case MR_PRED_CONTAINS: return loc == MR_INTERIOR;
        case MR_PRED_COVERS: return loc != MR_EXTERIOR;
        case MR_PRED_TOUCHES: return loc == MR_BOUNDARY;
        default: return loc == MR_EXTERIOR;
    }
}
MR_FN bool mr_pred_general(u32 pred, const MrGeom& a, const MrGeom& b) {
    switch (pred) {
        case MR_PRED_INTERSECTS: return mr_intersects(a, b);
        case MR_PRED_CONTAINS: return mr_contains(a, b);
        case MR_PRED_COVERS: return mr_covers(a, b);
        case MR_PRED_TOUCHES: return mr_touches(a, b);
        default: return mr_disjoint(a, b);
    }
}

// pred(a, b) as a b-register value, through the candidate fast path when it applies.
MR_NOINLINE u8 mr_predicate(const MrInput* ins, u32 nins, u32 pred, MrG a, MrG b) {
    if (a.src == MR_SRC_NULL || b.src == MR_SRC_NULL) return MR_B_NULL;
    double px, py;
    u32 loc;
    if (mr_g_point(ins, nins, b, px, py) && mr_locate_candidate(ins, nins, a, px, py, loc)) {
        return mr_pred_of_location(pred, loc) ? 1 : 0;
    }
    if (mr_pred_symmetric(pred) && mr_g_point(ins, nins, a, px, py) && mr_locate_candidate(ins, nins, b, px, py, loc)) {
        return mr_pred_of_location(pred, loc) ? 1 : 0;
    }
    MrGeom ga, gb;
    if (mr_g_geom(ins, nins, a, ga) && mr_g_geom(ins, nins, b, gb)) return mr_pred_general(pred, ga, gb) ? 1 : 0;
    return MR_B_NULL;
}

// ---- candidate cursors -------------------------------------------------------------------

// Opens cursor `c` over the candidates of indexed input `input` whose part boxes meet v's box
// grown by `dist` (has_dist false: no candidates).
MR_NOINLINE u32 mr_probe(const MrInput* ins, u32 nins, MrCursor& c, u32 input, MrG v, bool has_dist, double dist) {
    if (input >= nins) return MR_ERR_MISSING_INPUT;
    const MrInput& in = ins[input];
    if (!in.indexed) return MR_ERR_NO_INDEX;
    c.mode = MR_CUR_EMPTY;
    c.input = input;
    if (!has_dist) return MR_ERR_NONE;
    double px, py;
    bool point = mr_g_point(ins, nins, v, px, py);
    MrRect rect;
    if (point) {
        rect = MrRect{px, py, px, py};
    } else {
        MrGeom g;
        if (!mr_g_geom(ins, nins, v, g)) return MR_ERR_NONE;
        rect = mr_bbox(g);
        if (mr_rect_is_nan(rect)) return MR_ERR_NONE;
    }
    if (point && dist == 0.0 && in.idx.has_grid) {
        c.mode = MR_CUR_GRID;
        c.px = px;
        c.py = py;
        mr_grid_cell(in.idx, px, py, c.pos, c.end);
        return MR_ERR_NONE;
    }
    c.mode = MR_CUR_TREE;
    c.rect = mr_rect_expand(rect, dist);
    c.nbuf = c.bpos = 0;
    c.more = 1;
    c.started = 0;
    c.last = 0;
    return MR_ERR_NONE;
}

// The next smallest parts (after `last`) whose boxes meet the cursor's box.
MR_NOINLINE void mr_cursor_refill(const MrIndex& ix, MrCursor& c) {
    u32 n = 0, total = 0;
    bool started = c.started != 0;
    u32 last = c.last;
    u32* buf = c.buf;
    mr_tree_query(ix, c.rect, [&](u32 part) {
        if (started && part <= last) return;
        total++;
        if (n == MR_CURSOR_BUF && part >= buf[n - 1]) return;
        // Insert in order, dropping the largest when full.
        u32 i = n < MR_CURSOR_BUF ? n++ : n - 1;
        while (i > 0 && buf[i - 1] > part) {
            buf[i] = buf[i - 1];
            i--;
        }
        buf[i] = part;
    });
    c.nbuf = n;
    c.bpos = 0;
    c.more = total > n ? 1 : 0;
    c.started = 1;
    if (n > 0) c.last = buf[n - 1];
}

// The next candidate of cursor c: one row, with all its parts; null when exhausted.
MR_NOINLINE MrG mr_cnext(const MrInput* ins, u32 nins, MrCursor& c) {
    if (c.mode == MR_CUR_EMPTY || c.input >= nins) return mr_g_null();
    const MrIndex& ix = ins[c.input].idx;
    if (c.mode == MR_CUR_GRID) {
        while (c.pos < c.end) {
            u32 part, cls;
            bool hit = mr_grid_entry(ix, ix.grid_entries[c.pos], c.px, c.py, part, cls);
            c.pos++;
            if (!hit) continue;
            u32 row = ix.part_rows[part];
            // A row's parts are adjacent in the cell (ascending part order): skip the rest.
            while (c.pos < c.end && ix.part_rows[ix.grid_entries[c.pos] >> 2] == row) c.pos++;
            return mr_g_input(c.input, row);
        }
        c.mode = MR_CUR_EMPTY;
        return mr_g_null();
    }
    if (c.bpos == c.nbuf) {
        if (!c.more) {
            c.mode = MR_CUR_EMPTY;
            return mr_g_null();
        }
        mr_cursor_refill(ix, c);
        if (c.nbuf == 0) {
            c.mode = MR_CUR_EMPTY;
            return mr_g_null();
        }
    }
    u32 row = ix.part_rows[c.buf[c.bpos++]];
    for (;;) {
        if (c.bpos == c.nbuf) {
            if (!c.more) break;
            mr_cursor_refill(ix, c);
            if (c.nbuf == 0) break;
        }
        if (ix.part_rows[c.buf[c.bpos]] != row) break;
        c.bpos++;
    }
    return mr_g_input(c.input, row);
}

// ---- the row loop ------------------------------------------------------------------------

MR_FN u32 mr_fi(u32 r) { return r & (MR_REGS_F - 1); }
MR_FN u32 mr_bi(u32 r) { return r & (MR_REGS_B - 1); }
MR_FN u32 mr_gi(u32 r) { return r & (MR_REGS_G - 1); }
MR_FN u32 mr_ci(u32 r) { return r & (MR_REGS_C - 1); }

MR_FN bool mr_fget(const MrRegs& R, u32 r, double& v) {
    u32 i = mr_fi(r);
    if ((R.f_null >> i) & 1) return false;
    v = R.f[i];
    return true;
}
MR_FN void mr_fset(MrRegs& R, u32 r, bool valid, double v) {
    u32 i = mr_fi(r);
    if (valid) {
        R.f[i] = v;
        R.f_null &= ~(1u << i);
    } else {
        R.f_null |= 1u << i;
    }
}
MR_FN u8 mr_bval(bool valid, bool v) { return valid ? (v ? 1 : 0) : MR_B_NULL; }

// The interpreter's min_f / max_f (explicit about NaN and signed zeros).
MR_FN double mr_min_f(double x, double y) {
    if (mr_isnan(x) || mr_isnan(y)) return MR_NAN;
    if (x == y) return mr_signbit(x) ? x : y;
    return x < y ? x : y;
}
MR_FN double mr_max_f(double x, double y) {
    if (mr_isnan(x) || mr_isnan(y)) return MR_NAN;
    if (x == y) return mr_signbit(x) ? y : x;
    return x > y ? x : y;
}

// The coordinates `x`/`y` read: a point's (an input's or a built one's), NaN for POINT
// EMPTY; false (null) for anything that is not a point.
MR_FN bool mr_point_coords(const MrInput* ins, u32 nins, MrG v, double& x, double& y) {
    if (mr_g_point(ins, nins, v, x, y)) return true;
    x = y = MR_NAN;
    MrGeom g;
    if (!mr_g_geom(ins, nins, v, g) || g.family != MR_FAM_POINT) return false;
    if (!mr_is_empty(g)) {
        u32 k = mr_coord_begin(g);
        x = g.c->x[k];
        y = g.c->y[k];
    }
    return true;
}

// ---- constructed geometry ----------------------------------------------------------------

// The record after a job's input table (`ninputs` MrInput, then this): the scratch of every
// thread of the resident kernel, `thread_bytes` apart, for `threads` threads; base == nullptr
// when the program constructs nothing.
struct MrScratchTable {
    u8* base;
    u64 threads;
    u64 thread_bytes;
    u64 work_bytes;
    u64 slot_bytes;
    MrBuiltCaps caps;
    u32 slots;
    u32 pad;
};

// Thread `t`'s scratch from the table after `ins` (none past the table's threads).
MR_FN MrScratch mr_thread_scratch(const MrInput* ins, u32 nins, u64 t) {
    const MrScratchTable* st = reinterpret_cast<const MrScratchTable*>(ins + nins);
    MrScratch sc;
    sc.base = nullptr;
    sc.work_bytes = st->work_bytes;
    sc.slot_bytes = st->slot_bytes;
    sc.caps = st->caps;
    sc.slots = st->slots;
    sc.pad = 0;
    if (st->base != nullptr && t < st->threads) sc.base = st->base + t * st->thread_bytes;
    return sc;
}
MR_FN MrScratch mr_no_scratch() {
    MrScratch sc;
    sc.base = nullptr;
    sc.work_bytes = sc.slot_bytes = 0;
    sc.caps = MrBuiltCaps{0, 0, 0, 0};
    sc.slots = 0;
    sc.pad = 0;
    return sc;
}

// A slot of the thread's scratch that no register refers to, placed for a construction;
// nullptr when the kernel gave no scratch.
MR_FN MrBuilt* mr_free_slot(const MrRegs& R) {
    const MrScratch& sc = R.scratch;
    if (sc.base == nullptr) return nullptr;
    for (u32 s = 0; s < sc.slots; s++) {
        u8* at = sc.base + sc.work_bytes + (u64)s * sc.slot_bytes;
        const MrColumn* col = &reinterpret_cast<MrBuilt*>(at)->col;
        bool used = false;
        for (u32 i = 0; i < MR_REGS_G; i++) used |= R.g[i].src == MR_SRC_BUILT && R.g[i].col == col;
        // A geometry stored this row is written out when the row ends: its slot stays.
        for (u32 i = 0; i < MR_GEOM_OUTPUTS; i++) used |= R.out_g[i].src == MR_SRC_BUILT && R.out_g[i].col == col;
        if (!used) return mr_built_at(at, sc.caps);
    }
    return nullptr;
}

// The error of a construction's result.
MR_FN u32 mr_build_error(u32 r) { return r == MR_BUILD_NON_FINITE ? MR_ERR_NON_FINITE : MR_ERR_SCRATCH_SIZE; }

MR_FN void mr_reset_regs(MrRegs& R) {
    R.f_null = 0xffffffffu;
    for (u32 i = 0; i < MR_REGS_B; i++) R.b[i] = MR_B_NULL;
    for (u32 i = 0; i < MR_REGS_G; i++) R.g[i] = mr_g_null();
    for (u32 i = 0; i < MR_REGS_C; i++) R.c[i].mode = MR_CUR_EMPTY;
    for (u32 i = 0; i < MR_GEOM_OUTPUTS; i++) R.out_g[i] = mr_g_null();
}

// What mr_step returns when the row goes on (at `pc`).
#define MR_STEP_ON 0xffffffffu

// False for every op, but only when instantiated: mr_op's last branch asserts it.
template <u32 OP>
struct MrOpHasNoBody {
    static constexpr bool value = false;
};

// Runs instruction `w`, whose op is OP, of row `row` (`pc` already past it): one op's body,
// the only one instantiated for that OP. The interpreter reaches it through mr_step's
// dispatch; a generated row function (the GPU JIT, kernels/src/cuda/jit.rs) calls it directly
// with `w` a constant, so both run the same code for every op. Returns MR_STEP_ON, MR_ERR_NONE
// after `halt`, or an error (the caller sets the pc).
template <u32 OP, typename Sink>
MR_METHOD u32 mr_op(const MrProgram& p, const MrInput* ins, u64 row, MrRegs& R, Sink& sink, const u64 w, u32& pc) {
    const u32 nins = p.ninputs;
    (void)nins;
    (void)ins;
    (void)row;
    (void)R;
    (void)sink;
    (void)w;
    (void)pc;
    {
        {
            if constexpr (OP == MR_OP_HALT) {
                return MR_ERR_NONE;
            } else if constexpr (OP == MR_OP_JMP) {
                pc = MR_JMP_TARGET(w);
                return MR_STEP_ON;
            } else if constexpr (OP == MR_OP_JT) {
                if (R.b[mr_bi(MR_JT_COND(w))] == 1) pc = MR_JT_TARGET(w);
                return MR_STEP_ON;
            } else if constexpr (OP == MR_OP_JF) {
                if (R.b[mr_bi(MR_JF_COND(w))] != 1) pc = MR_JF_TARGET(w);
                return MR_STEP_ON;
            } else if constexpr (OP == MR_OP_LOAD) { {
                u32 input = MR_LOAD_INPUT(w);
                MrG v = mr_g_null();
                if (input < nins && !mr_row_null(&ins[input].col, row)) v = mr_g_input(input, (u32)row);
                R.g[mr_gi(MR_LOAD_DST(w))] = v;
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_CONST) { {
                u32 k = MR_CONST_VALUE(w);
                mr_fset(R, MR_CONST_DST(w), k < p.nconsts, k < p.nconsts ? p.consts[k] : 0.0);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_MOVF) { {
                double v = 0.0;
                bool ok = mr_fget(R, MR_MOVF_SRC(w), v);
                mr_fset(R, MR_MOVF_DST(w), ok, v);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_MOVB) {
                R.b[mr_bi(MR_MOVB_DST(w))] = R.b[mr_bi(MR_MOVB_SRC(w))];
                return MR_STEP_ON;
            } else if constexpr (OP == MR_OP_MOVG) {
                R.g[mr_gi(MR_MOVG_DST(w))] = R.g[mr_gi(MR_MOVG_SRC(w))];
                return MR_STEP_ON;
            } else if constexpr (OP == MR_OP_SELECTF) { {
                u8 c = R.b[mr_bi(MR_SELECTF_COND(w))];
                double v = 0.0;
                bool ok = false;
                if (c == 1) ok = mr_fget(R, MR_SELECTF_IF_TRUE(w), v);
                if (c == 0) ok = mr_fget(R, MR_SELECTF_IF_FALSE(w), v);
                mr_fset(R, MR_SELECTF_DST(w), ok, v);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_SELECTB) { {
                u8 c = R.b[mr_bi(MR_SELECTB_COND(w))];
                u8 v = MR_B_NULL;
                if (c == 1) v = R.b[mr_bi(MR_SELECTB_IF_TRUE(w))];
                if (c == 0) v = R.b[mr_bi(MR_SELECTB_IF_FALSE(w))];
                R.b[mr_bi(MR_SELECTB_DST(w))] = v;
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_SELECTG) { {
                u8 c = R.b[mr_bi(MR_SELECTG_COND(w))];
                MrG v = mr_g_null();
                if (c == 1) v = R.g[mr_gi(MR_SELECTG_IF_TRUE(w))];
                if (c == 0) v = R.g[mr_gi(MR_SELECTG_IF_FALSE(w))];
                R.g[mr_gi(MR_SELECTG_DST(w))] = v;
                return MR_STEP_ON;
            }
// Each op's case label is written out (a test reads them); the body comes from the table.
#define MR_BINARY_F(OP, EXPR)                                                        \
    {                                                                                \
        double x = 0.0, y = 0.0;                                                     \
        bool ok = mr_fget(R, MR_##OP##_LHS(w), x) & mr_fget(R, MR_##OP##_RHS(w), y); \
        mr_fset(R, MR_##OP##_DST(w), ok, ok ? (EXPR) : 0.0);                         \
        return MR_STEP_ON;                                                                       \
    }
            } else if constexpr (OP == MR_OP_ADD) { MR_BINARY_F(ADD, x + y)
            } else if constexpr (OP == MR_OP_SUB) { MR_BINARY_F(SUB, x - y)
            } else if constexpr (OP == MR_OP_MUL) { MR_BINARY_F(MUL, x * y)
            } else if constexpr (OP == MR_OP_DIV) { MR_BINARY_F(DIV, x / y)
            } else if constexpr (OP == MR_OP_MIN) { MR_BINARY_F(MIN, mr_min_f(x, y))
            } else if constexpr (OP == MR_OP_MAX) { MR_BINARY_F(MAX, mr_max_f(x, y))
#undef MR_BINARY_F
#define MR_UNARY_F(OP, EXPR)                                 \
    {                                                        \
        double x = 0.0;                                      \
        bool ok = mr_fget(R, MR_##OP##_SRC(w), x);           \
        mr_fset(R, MR_##OP##_DST(w), ok, ok ? (EXPR) : 0.0); \
        return MR_STEP_ON;                                               \
    }
            } else if constexpr (OP == MR_OP_ABS) { MR_UNARY_F(ABS, mr_fabs(x))
            } else if constexpr (OP == MR_OP_NEG) { MR_UNARY_F(NEG, -x)
            } else if constexpr (OP == MR_OP_SQRT) { MR_UNARY_F(SQRT, mr_sqrt(x))
#undef MR_UNARY_F
#define MR_COMPARE(OP, EXPR)                                                         \
    {                                                                                \
        double x = 0.0, y = 0.0;                                                     \
        bool ok = mr_fget(R, MR_##OP##_LHS(w), x) & mr_fget(R, MR_##OP##_RHS(w), y); \
        R.b[mr_bi(MR_##OP##_DST(w))] = mr_bval(ok, EXPR);                            \
        return MR_STEP_ON;                                                                       \
    }
            } else if constexpr (OP == MR_OP_LT) { MR_COMPARE(LT, x < y)
            } else if constexpr (OP == MR_OP_LE) { MR_COMPARE(LE, x <= y)
            } else if constexpr (OP == MR_OP_GT) { MR_COMPARE(GT, x > y)
            } else if constexpr (OP == MR_OP_GE) { MR_COMPARE(GE, x >= y)
            } else if constexpr (OP == MR_OP_EQ) { MR_COMPARE(EQ, x == y)
            } else if constexpr (OP == MR_OP_NE) { MR_COMPARE(NE, x != y)
#undef MR_COMPARE
            } else if constexpr (OP == MR_OP_AND) { {
                u8 x = R.b[mr_bi(MR_AND_LHS(w))], y = R.b[mr_bi(MR_AND_RHS(w))];
                R.b[mr_bi(MR_AND_DST(w))] = (x == 0 || y == 0) ? 0 : ((x == MR_B_NULL || y == MR_B_NULL) ? MR_B_NULL : 1);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_OR) { {
                u8 x = R.b[mr_bi(MR_OR_LHS(w))], y = R.b[mr_bi(MR_OR_RHS(w))];
                R.b[mr_bi(MR_OR_DST(w))] = (x == 1 || y == 1) ? 1 : ((x == MR_B_NULL || y == MR_B_NULL) ? MR_B_NULL : 0);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_NOT) { {
                u8 x = R.b[mr_bi(MR_NOT_SRC(w))];
                R.b[mr_bi(MR_NOT_DST(w))] = x == MR_B_NULL ? MR_B_NULL : (u8)(1 - x);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_ISNULLF) { {
                double x;
                R.b[mr_bi(MR_ISNULLF_DST(w))] = mr_fget(R, MR_ISNULLF_SRC(w), x) ? 0 : 1;
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_AREA) { {
                MrGeom g;
                bool ok = mr_g_geom(ins, nins, R.g[mr_gi(MR_AREA_GEOM(w))], g);
                mr_fset(R, MR_AREA_DST(w), ok, ok ? mr_area(g) : 0.0);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_LENGTH) { {
                MrGeom g;
                bool ok = mr_g_geom(ins, nins, R.g[mr_gi(MR_LENGTH_GEOM(w))], g);
                mr_fset(R, MR_LENGTH_DST(w), ok, ok ? mr_length(g) : 0.0);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_BBOX) { {
                MrGeom g;
                bool ok = mr_g_geom(ins, nins, R.g[mr_gi(MR_BBOX_GEOM(w))], g);
                MrRect r = ok ? mr_bbox(g) : mr_rect_nan();
                u32 d = MR_BBOX_DST(w);
                mr_fset(R, d, ok, r.min_x);
                mr_fset(R, d + 1, ok, r.min_y);
                mr_fset(R, d + 2, ok, r.max_x);
                mr_fset(R, d + 3, ok, r.max_y);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_CENTROID) { {
                MrGeom g;
                bool ok = mr_g_geom(ins, nins, R.g[mr_gi(MR_CENTROID_GEOM(w))], g);
                double x = MR_NAN, y = MR_NAN;
                if (ok && !mr_centroid(g, x, y)) {
                    x = MR_NAN;
                    y = MR_NAN;
                }
                u32 d = MR_CENTROID_DST(w);
                mr_fset(R, d, ok, x);
                mr_fset(R, d + 1, ok, y);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_NPOINTS) { {
                MrGeom g;
                bool ok = mr_g_geom(ins, nins, R.g[mr_gi(MR_NPOINTS_GEOM(w))], g);
                mr_fset(R, MR_NPOINTS_DST(w), ok, ok ? (double)mr_num_points(g) : 0.0);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_ISEMPTY) { {
                MrGeom g;
                bool ok = mr_g_geom(ins, nins, R.g[mr_gi(MR_ISEMPTY_GEOM(w))], g);
                R.b[mr_bi(MR_ISEMPTY_DST(w))] = mr_bval(ok, ok && mr_is_empty(g));
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_ISNULLG) {
                R.b[mr_bi(MR_ISNULLG_DST(w))] = R.g[mr_gi(MR_ISNULLG_GEOM(w))].src == MR_SRC_NULL ? 1 : 0;
                return MR_STEP_ON;
            } else if constexpr (OP == MR_OP_X) { {
                double x, y;
                bool ok = mr_point_coords(ins, nins, R.g[mr_gi(MR_X_GEOM(w))], x, y);
                mr_fset(R, MR_X_DST(w), ok, x);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_Y) { {
                double x, y;
                bool ok = mr_point_coords(ins, nins, R.g[mr_gi(MR_Y_GEOM(w))], x, y);
                mr_fset(R, MR_Y_DST(w), ok, y);
                return MR_STEP_ON;
            }
// `within a, b` is `contains b, a`; `coveredby a, b` is `covers b, a`.
#define MR_PREDICATE(OP, PRED, A, B)                                                                     \
    R.b[mr_bi(MR_##OP##_DST(w))] =                                                                       \
        mr_predicate(ins, nins, PRED, R.g[mr_gi(MR_##OP##_##A(w))], R.g[mr_gi(MR_##OP##_##B(w))]); \
    return MR_STEP_ON;
            } else if constexpr (OP == MR_OP_INTERSECTS) { MR_PREDICATE(INTERSECTS, MR_PRED_INTERSECTS, A, B)
            } else if constexpr (OP == MR_OP_CONTAINS) { MR_PREDICATE(CONTAINS, MR_PRED_CONTAINS, A, B)
            } else if constexpr (OP == MR_OP_WITHIN) { MR_PREDICATE(WITHIN, MR_PRED_CONTAINS, B, A)
            } else if constexpr (OP == MR_OP_COVERS) { MR_PREDICATE(COVERS, MR_PRED_COVERS, A, B)
            } else if constexpr (OP == MR_OP_COVEREDBY) { MR_PREDICATE(COVEREDBY, MR_PRED_COVERS, B, A)
            } else if constexpr (OP == MR_OP_TOUCHES) { MR_PREDICATE(TOUCHES, MR_PRED_TOUCHES, A, B)
            } else if constexpr (OP == MR_OP_DISJOINT) { MR_PREDICATE(DISJOINT, MR_PRED_DISJOINT, A, B)
#undef MR_PREDICATE
            } else if constexpr (OP == MR_OP_DWITHIN) { {
                MrGeom ga, gb;
                double d;
                bool ok = mr_g_geom(ins, nins, R.g[mr_gi(MR_DWITHIN_A(w))], ga) &
                          mr_g_geom(ins, nins, R.g[mr_gi(MR_DWITHIN_B(w))], gb) & mr_fget(R, MR_DWITHIN_DIST(w), d);
                R.b[mr_bi(MR_DWITHIN_DST(w))] = mr_bval(ok, ok && mr_dwithin(ga, gb, d));
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_DISTANCE) { {
                MrGeom ga, gb;
                bool ok = mr_g_geom(ins, nins, R.g[mr_gi(MR_DISTANCE_A(w))], ga) &
                          mr_g_geom(ins, nins, R.g[mr_gi(MR_DISTANCE_B(w))], gb);
                mr_fset(R, MR_DISTANCE_DST(w), ok, ok ? mr_distance(ga, gb) : 0.0);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_PROBE) { {
                MrG v = R.g[mr_gi(MR_PROBE_GEOM(w))];
                u32 e = mr_probe(ins, nins, R.c[mr_ci(MR_PROBE_CURSOR(w))], MR_PROBE_INPUT(w), v,
                                 v.src != MR_SRC_NULL, 0.0);
                if (e != MR_ERR_NONE) return e;
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_PROBEDIST) { {
                MrG v = R.g[mr_gi(MR_PROBEDIST_GEOM(w))];
                double d = 0.0;
                bool has = mr_fget(R, MR_PROBEDIST_DIST(w), d) && d >= 0.0 && v.src != MR_SRC_NULL;
                u32 e = mr_probe(ins, nins, R.c[mr_ci(MR_PROBEDIST_CURSOR(w))], MR_PROBEDIST_INPUT(w), v, has, d);
                if (e != MR_ERR_NONE) return e;
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_CNEXT) { {
                // Every loop goes back through a cnext (the verifier allows no other backward
                // jump): looking at the cancel word here bounds how long a cancelled row runs.
                if (mr_cancelled(R)) return MR_ERR_CANCELLED;
                MrG v = mr_cnext(ins, nins, R.c[mr_ci(MR_CNEXT_CURSOR(w))]);
                if (v.src == MR_SRC_NULL) pc = MR_CNEXT_EXIT(w);
                R.g[mr_gi(MR_CNEXT_DST(w))] = v;
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_STOREF) { {
                double v = 0.0;
                bool ok = mr_fget(R, MR_STOREF_SRC(w), v);
                sink.store_f64(MR_STOREF_OUTPUT(w), row, ok, v);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_STOREB) {
                sink.store_bool(MR_STOREB_OUTPUT(w), row, R.b[mr_bi(MR_STOREB_SRC(w))]);
                return MR_STEP_ON;
            } else if constexpr (OP == MR_OP_EMIT) { {
                MrG v = R.g[mr_gi(MR_EMIT_CAND(w))];
                if (v.src != MR_SRC_NULL) sink.emit(MR_EMIT_OUTPUT(w), row, v.row);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_COUNT) {
                sink.count(MR_COUNT_OUTPUT(w));
                return MR_STEP_ON;
            } else if constexpr (OP == MR_OP_SUM) { {
                double v;
                if (mr_fget(R, MR_SUM_SRC(w), v)) sink.sum(MR_SUM_OUTPUT(w), v);
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_AFFINE) { {
                MrG v = R.g[mr_gi(MR_AFFINE_GEOM(w))];
                u32 k = MR_AFFINE_MATRIX(w);
                if (k > p.nconsts || p.nconsts - k < 6) return MR_ERR_BAD_MATRIX;
                MrGeom g;
                MrG out = mr_g_null();
                if (mr_g_geom(ins, nins, v, g)) {
                    MrBuilt* b = mr_free_slot(R);
                    if (b == nullptr) return MR_ERR_NO_SCRATCH;
                    u32 r = mr_build_affine(g, p.consts + k, R.scratch.caps, b);
                    if (r != MR_BUILD_OK) return mr_build_error(r);
                    out = MrG{v.row, MR_SRC_BUILT, &b->col};
                }
                R.g[mr_gi(MR_AFFINE_DST(w))] = out;
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_SIMPLIFY) { {
                MrG v = R.g[mr_gi(MR_SIMPLIFY_GEOM(w))];
                double tol = 0.0;
                MrGeom g;
                MrG out = mr_g_null();
                if (mr_fget(R, MR_SIMPLIFY_TOLERANCE(w), tol) && mr_g_geom(ins, nins, v, g)) {
                    MrBuilt* b = mr_free_slot(R);
                    if (b == nullptr) return MR_ERR_NO_SCRATCH;
                    u32 r = mr_build_simplify(g, tol, R.scratch.caps, b, R.scratch.base);
                    if (r != MR_BUILD_OK) return mr_build_error(r);
                    out = MrG{v.row, MR_SRC_BUILT, &b->col};
                }
                R.g[mr_gi(MR_SIMPLIFY_DST(w))] = out;
                return MR_STEP_ON;
            }
            } else if constexpr (OP == MR_OP_STOREG) { {
                // Pending until the row ends (mr_end_row): the last store wins, as on the CPU.
                u32 k = p.red_of[MR_STOREG_OUTPUT(w) & (MR_MAX_OUTPUTS - 1)];
                if (k >= MR_GEOM_OUTPUTS) return MR_ERR_UNSUPPORTED_OP;
                R.out_g[k] = R.g[mr_gi(MR_STOREG_SRC(w))];
                return MR_STEP_ON;
            }
            } else {
                // Only ops in MR_GPU_OPS are instantiated (mr_step's cases, the GPU JIT's calls):
                // one without a body here fails to compile.
                static_assert(MrOpHasNoBody<OP>::value, "an op in MR_GPU_OPS has no body in mr_op");
                return MR_ERR_UNSUPPORTED_OP;
            }
        }
    }
}

// The interpreter's dispatch: instruction `w` by its op. The cases are MR_GPU_OPS (isa.cuh,
// generated from the op table): every op the GPU runs has one by construction, and any other
// op fails the row.
#define MR_STEP_CASE(NAME) \
    case MR_OP_##NAME:     \
        return mr_op<MR_OP_##NAME>(p, ins, row, R, sink, w, pc);
template <typename Sink>
MR_METHOD u32 mr_step(const MrProgram& p, const MrInput* ins, u64 row, MrRegs& R, Sink& sink, const u64 w, u32& pc) {
    switch (MR_WORD_OP(w)) {
        MR_GPU_OPS(MR_STEP_CASE)
        default:
            return MR_ERR_UNSUPPORTED_OP;
    }
}
#undef MR_STEP_CASE

// The row has halted: each geometry output gets the value last stored (null when none).
template <typename Sink>
MR_FN void mr_end_row(const MrProgram& p, const MrInput* ins, u64 row, MrRegs& R, Sink& sink) {
    for (u32 o = 0; o < p.noutputs && o < MR_MAX_OUTPUTS; o++) {
        if (p.out_kinds[o] != MR_OUT_GEOMETRY) continue;
        u32 k = p.red_of[o];
        MrGeom g;
        bool ok = k < MR_GEOM_OUTPUTS && mr_g_geom(ins, p.ninputs, R.out_g[k], g);
        sink.store_geom(o, row, ok ? &g : nullptr);
    }
}

// Runs row `row` of the program. Returns MR_ERR_NONE, or an error with `err_pc` set.
template <typename Sink>
MR_FN u32 mr_run_row(const MrProgram& p, const MrInput* ins, u64 row, MrRegs& R, Sink& sink, u32& err_pc) {
    mr_reset_regs(R);
    u32 pc = 0;
    for (;;) {
        if (pc >= p.ncode) {
            err_pc = pc;
            return MR_ERR_PAST_END;
        }
        const u64 w = p.code[pc];
        const u32 at = pc;
        pc++;
        const u32 s = mr_step(p, ins, row, R, sink, w, pc);
        if (s == MR_STEP_ON) continue;
        if (s != MR_ERR_NONE) {
            err_pc = at;
        } else if (p.ngeom != 0) {
            mr_end_row(p, ins, row, R, sink);
        }
        return s;
    }
}

// Walks point (px, py)'s grid cell of `zones`' index, as PointProbe does on the CPU: calls
// `visit(cand, general, loc)` once per candidate row whose part boxes hold the point, in the
// cell's order — `general`: the candidate needs the predicate itself (not areal, a part
// without slabs, or, unless EXACT, a part the slabs' orientation filter cannot decide);
// otherwise `loc` is where the point lies against the candidate. Stops when `visit` returns
// false, and returns false then.
template <bool EXACT, typename Visit>
MR_FN bool mr_join_walk(const MrInput& zones, double px, double py, Visit visit) {
    const MrIndex& ix = zones.idx;
    u32 pos, end;
    mr_grid_cell(ix, px, py, pos, end);
    // The next entry of the cell whose part box holds the point, from `pos` on.
    auto next_hit = [&](u32& at, u32& part, u32& cls) {
        while (at < end) {
            bool hit = mr_grid_entry(ix, ix.grid_entries[at], px, py, part, cls);
            at++;
            if (hit) return true;
        }
        return false;
    };
    u32 part, cls;
    bool have = next_hit(pos, part, cls);
    while (have) {
        u32 cand = ix.part_rows[part];
        bool areal = ix.areal || mr_areal_kind(mr_kind(&zones.col, cand));
        bool general = !areal;
        u32 loc = MR_EXTERIOR;
        bool more = true;
        while (more) {
            if (!general && loc != MR_BOUNDARY) {
                if (part >= ix.slab_part_count) {
                    general = true;
                } else {
                    int l = mr_locate_part<EXACT>(ix, part, cls, px, py);
                    if (l < 0) {
                        general = true;
                    } else if (l != MR_EXTERIOR) {
                        loc = (u32)l;
                    }
                }
            }
            // The next hit if it belongs to the same row.
            u32 at = pos, np, nc;
            if (next_hit(at, np, nc) && ix.part_rows[np] == cand) {
                pos = at;
                part = np;
                cls = nc;
            } else {
                more = false;
            }
        }
        if (!visit(cand, general, loc)) return false;
        have = next_hit(pos, part, cls);
    }
    return true;
}

// A program that is one point join (MrJoin), for one row: walks the point's grid cell with
// the cell's classes (mr_join_walk); rows whose geometry is not a point (or bindings without
// a grid) take `general`, the row loop (the interpreter's, or a generated program's). Emits
// exactly what mr_run_row would.
template <typename Sink, typename General>
MR_FN u32 mr_run_join_row_with(General general, const MrProgram& p, const MrInput* ins, u64 row, MrRegs& R, Sink& sink,
                               u32& err_pc) {
    const MrJoin& j = p.join;
    const u32 nins = p.ninputs;
    const MrInput& load = ins[j.load];
    if (mr_row_null(&load.col, row)) return MR_ERR_NONE;  // load gives null: the probe finds nothing
    const MrInput& zones = ins[j.probe];
    double px, py;
    if (!j.operands_fit || !zones.indexed || !zones.idx.has_grid || !mr_point_of(&load.col, row, px, py)) {
        return general(p, ins, row, R, sink, err_pc);
    }
    mr_join_walk<true>(zones, px, py, [&](u32 cand, bool needs_pred, u32 loc) {
        u8 r;
        if (needs_pred) {
            MrG c = mr_g_input(j.probe, cand), g = mr_g_input(j.load, (u32)row);
            r = j.cand_first ? mr_predicate(ins, nins, j.pred, c, g) : mr_predicate(ins, nins, j.pred, g, c);
        } else {
            r = mr_pred_of_location(j.pred, loc) ? 1 : 0;
        }
        if (r == 1) {
            if (j.count) {
                sink.count(j.output);
            } else {
                sink.emit(j.output, row, cand);
            }
        }
        return true;
    });
    return MR_ERR_NONE;
}

// The point join's fast path alone, for a point join's split kernels (mr_join_fast_rows): the
// row of input LOAD is done here when its point walks a grid cell of input PROBE whose
// candidates are all located by their slabs' orientation filter — its hits' candidate ids in
// `ids` (COUNT: only their number in `n`) — and true is returned. Any other row (not a point,
// no grid, a candidate that needs the predicate itself, more than MR_LOCAL_HITS hits) returns
// false with nothing emitted: the general kernel runs it whole. Nothing here reaches exact
// arithmetic, a geometry's DE-9IM machinery or the interpreter's registers, so the kernel
// keeps its state in registers.
template <u32 LOAD, u32 PROBE, u32 PRED, bool COUNT>
MR_FN bool mr_join_fast(const MrInput* ins, u64 row, u32* ids, u32& n) {
    n = 0;
    const MrInput& load = ins[LOAD];
    if (mr_row_null(&load.col, row)) return true;
    const MrInput& zones = ins[PROBE];
    double px, py;
    if (!zones.indexed || !zones.idx.has_grid || !mr_point_of(&load.col, row, px, py)) return false;
    return mr_join_walk<false>(zones, px, py, [&](u32 cand, bool needs_pred, u32 loc) {
        if (needs_pred) return false;
        if (!mr_pred_of_location(PRED, loc)) return true;
        if (!COUNT) {
            if (n == MR_LOCAL_HITS) return false;
            ids[n] = cand;
        }
        n++;
        return true;
    });
}

// mr_run_join_row_with with the interpreter's row loop for the rows the fast path leaves.
template <typename Sink>
MR_FN u32 mr_run_join_row(const MrProgram& p, const MrInput* ins, u64 row, MrRegs& R, Sink& sink, u32& err_pc) {
    auto general = [](const MrProgram& p, const MrInput* ins, u64 row, MrRegs& R, Sink& sink, u32& err_pc) {
        return mr_run_row(p, ins, row, R, sink, err_pc);
    };
    return mr_run_join_row_with(general, p, ins, row, R, sink, err_pc);
}

#endif  // MR_INTERP_CUH
