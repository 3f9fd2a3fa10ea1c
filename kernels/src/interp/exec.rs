//! The row loop.

use std::ops::Range;

use meridian_bytecode::{BReg, CReg, FReg, GReg, Instr, OutputKind};

use super::frame::{pack, unpack, Cursor, GVal, Local, Scratch, B_NULL, HIT_BATCH, NO_CURSOR, SRC_DERIVED};
use super::fuse::{predicate_of, Action, FilterLoop, PointJoin, Pred};
use super::{BoundInputs, ExecError, Interpreter, OutputBuffers};
use crate::algo::{self, Affine, Location, Rect, Xy};
use crate::column::{ColumnBuilder, ColumnError, ColumnView, Family, Geom};
use crate::index::{CellClass, CellGrid, SpatialIndex};

/// What a chunk reads of one input.
#[derive(Clone, Copy)]
pub(crate) struct Slot<'a> {
    view: ColumnView<'a>,
    index: Option<&'a SpatialIndex>,
}

// Register numbers are masked to their file's size: the verifier has already checked them,
// so the mask changes nothing but lets the compiler drop the bounds checks.
#[inline(always)]
fn fi(r: FReg) -> usize {
    usize::from(r.0 & 31)
}
#[inline(always)]
fn bi(r: BReg) -> usize {
    usize::from(r.0 & 31)
}
#[inline(always)]
pub(crate) fn gi(r: GReg) -> usize {
    usize::from(r.0 & 15)
}
#[inline(always)]
fn ci(r: CReg) -> usize {
    usize::from(r.0 & 3)
}

#[inline(always)]
fn fget(s: &Scratch, r: FReg) -> Option<f64> {
    let i = fi(r);
    (s.f_null >> i & 1 == 0).then_some(s.f[i])
}

#[inline(always)]
fn fset(s: &mut Scratch, r: FReg, v: Option<f64>) {
    let i = fi(r);
    match v {
        Some(x) => {
            s.f[i] = x;
            s.f_null &= !(1 << i);
        }
        None => s.f_null |= 1 << i,
    }
}

/// Sets `count` consecutive f registers from `r` (bbox, centroid), wrapping like the mask.
#[inline]
fn fset_run(s: &mut Scratch, r: FReg, vals: Option<&[f64]>, count: u8) {
    for k in 0..count {
        let reg = FReg(r.0.wrapping_add(k));
        fset(s, reg, vals.map(|v| v[usize::from(k)]));
    }
}

#[inline(always)]
fn bval(v: Option<bool>) -> u8 {
    match v {
        Some(b) => u8::from(b),
        None => B_NULL,
    }
}

#[inline(always)]
fn f2(s: &Scratch, a: FReg, b: FReg) -> Option<(f64, f64)> {
    fget(s, a).zip(fget(s, b))
}

fn min_f(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == y {
        if x.is_sign_negative() {
            x
        } else {
            y
        }
    } else if x < y {
        x
    } else {
        y
    }
}

fn max_f(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == y {
        if x.is_sign_positive() {
            x
        } else {
            y
        }
    } else if x > y {
        x
    } else {
        y
    }
}

/// The geometry a register refers to.
#[inline]
fn geom<'a>(ins: &[Slot<'a>], derived: &'a ColumnBuilder, v: GVal) -> Option<Geom<'a>> {
    match v.src {
        SRC_DERIVED => derived.view().get(v.lo as usize),
        src => ins.get(usize::from(src))?.view.get(v.row as usize),
    }
}

/// The coordinate of a register that refers to a non-empty point row of an input.
#[inline(always)]
fn point_of(ins: &[Slot<'_>], v: GVal) -> Option<Xy> {
    ins.get(usize::from(v.src))?.view.point(v.row as usize)
}

/// A row kind (`ColumnView::kinds`) that has edge slabs: polygon or multipolygon.
#[inline(always)]
fn areal_kind(kind: u8) -> bool {
    kind == Family::Polygon as u8 || kind == Family::MultiPolygon as u8
}

/// Where `p` lies relative to the polygon row `a` refers to, read from the edge slabs of
/// `a`'s input index; `None` when `a` is not a polygon row of an indexed input. Exactly
/// [`algo::locate_point`]: a part whose box does not hold `p` cannot hold it on its boundary
/// either, so testing only the parts the probe found is enough whenever `p` lies in the
/// probe's box.
#[inline]
fn locate_in_candidate(ins: &[Slot<'_>], cursors: &[Cursor; 4], a: GVal, p: Xy) -> Option<Location> {
    let slot = ins.get(usize::from(a.src))?;
    let index = slot.index?;
    let row = a.row as usize;
    let kind = slot.view.kind(row)?;
    if !areal_kind(kind) {
        return None;
    }
    let hint = cursors.get(usize::from(a.cursor)).filter(|c| {
        c.gen == a.gen
            && c.rect.is_some_and(|r| r.min_x <= p.0 && p.0 <= r.max_x && r.min_y <= p.1 && p.1 <= r.max_y)
    });
    let parts = index.slabs().parts();
    let mut result = Location::Exterior;
    let mut visit = |part: u32, class: CellClass| -> Option<bool> {
        if part as usize >= parts {
            return None;
        }
        match index.locate_part(part, class, p) {
            Location::Boundary => {
                result = Location::Boundary;
                Some(true)
            }
            Location::Interior => {
                result = Location::Interior;
                Some(false)
            }
            Location::Exterior => Some(false),
        }
    };
    match hint {
        Some(c) => {
            for &(_, word) in c.entries.get(a.lo as usize..a.hi as usize)? {
                let (part, class) = if c.classified { unpack(word) } else { (word, CellClass::Check) };
                if visit(part, class)? {
                    break;
                }
            }
        }
        None => {
            let (lo, hi) = slot.view.geom_parts(row);
            for part in lo..hi {
                if visit(part, CellClass::Check)? {
                    break;
                }
            }
        }
    }
    Some(result)
}

impl Pred {
    /// The predicate of (area, point) from where the point lies; `None` for `dwithin`,
    /// which the distance decides.
    fn of_location(self, loc: Location) -> Option<bool> {
        Some(match self {
            Pred::Intersects => loc != Location::Exterior,
            Pred::Contains => loc == Location::Interior,
            Pred::Covers => loc != Location::Exterior,
            Pred::Touches => loc == Location::Boundary,
            Pred::Disjoint => loc == Location::Exterior,
            Pred::DWithin(_) => return None,
        })
    }

    fn symmetric(self) -> bool {
        matches!(self, Pred::Intersects | Pred::Touches | Pred::Disjoint | Pred::DWithin(_))
    }

    /// `None` where the instruction gives null (`dwithin` of a null distance).
    fn general(self, s: &Scratch, a: &Geom<'_>, b: &Geom<'_>) -> Option<bool> {
        Some(match self {
            Pred::Intersects => algo::intersects(a, b),
            Pred::Contains => algo::contains(a, b),
            Pred::Covers => algo::covers(a, b),
            Pred::Touches => algo::touches(a, b),
            Pred::Disjoint => algo::disjoint(a, b),
            Pred::DWithin(d) => algo::dwithin(a, b, fget(s, d)?),
        })
    }
}

/// A binary predicate, `pred(a, b)`, through the candidate fast path when it applies.
#[inline]
fn predicate(ins: &[Slot<'_>], s: &Scratch, pred: Pred, a: GVal, b: GVal) -> u8 {
    if a.is_null() || b.is_null() {
        return B_NULL;
    }
    let located = |area: GVal, at: GVal| {
        pred.of_location(Location::Exterior)?;
        point_of(ins, at)
            .and_then(|p| locate_in_candidate(ins, &s.c, area, p))
            .and_then(|loc| pred.of_location(loc))
    };
    if let Some(r) = located(a, b) {
        return u8::from(r);
    }
    if pred.symmetric() {
        if let Some(r) = located(b, a) {
            return u8::from(r);
        }
    }
    match (geom(ins, &s.derived, a), geom(ins, &s.derived, b)) {
        (Some(ga), Some(gb)) => bval(pred.general(s, &ga, &gb)),
        _ => B_NULL,
    }
}

/// Runs `affine` or `simplify` of `v`, leaving the result as the newest row of the derived
/// scratch column.
fn derive(
    ins: &[Slot<'_>],
    s: &mut Scratch,
    v: GVal,
    op: impl Fn(&Geom<'_>, &mut ColumnBuilder) -> Result<(), ColumnError>,
) -> Result<Option<GVal>, ColumnError> {
    if v.src == SRC_DERIVED {
        // The source lives in the column being appended to: build aside, then move it over.
        s.spare.clear();
        let Some(g) = s.derived.view().get(v.lo as usize) else { return Ok(None) };
        op(&g, &mut s.spare)?;
        s.derived.push_geom(s.spare.view().get(0).as_ref())?;
    } else {
        let Some(g) = ins.get(usize::from(v.src)).and_then(|sl| sl.view.get(v.row as usize)) else {
            return Ok(None);
        };
        op(&g, &mut s.derived)?;
    }
    let lo = s.derived.len() as u32 - 1;
    Ok(Some(GVal { src: SRC_DERIVED, cursor: NO_CURSOR, row: v.row, lo, hi: 0, gen: 0 }))
}

/// Opens cursor `c` over the candidates of `input` whose part boxes meet `v`'s box grown by
/// `dist` (`None`: no candidates).
fn probe(
    ins: &[Slot<'_>],
    s: &mut Scratch,
    c: usize,
    input: usize,
    v: GVal,
    dist: Option<f64>,
) -> Result<(), String> {
    let slot = ins.get(input).ok_or("probe of a missing input")?;
    let index = slot.index.ok_or("probe of an input without an index")?;
    let point = point_of(ins, v);
    let rect = match (point, dist) {
        (_, None) => None,
        (Some((x, y)), Some(_)) => Some(Rect { min_x: x, min_y: y, max_x: x, max_y: y }),
        (None, Some(_)) => geom(ins, &s.derived, v).map(|g| algo::bbox(&g)).filter(|r| !r.is_nan()),
    };
    let cur = &mut s.c[c];
    cur.entries.clear();
    cur.pos = 0;
    cur.gen = cur.gen.wrapping_add(1);
    cur.input = input as u8;
    cur.rect = None;
    cur.classified = false;
    let (Some(rect), Some(d)) = (rect, dist) else { return Ok(()) };
    let entries = &mut cur.entries;
    match point {
        Some(p) if d == 0.0 && index.grid().is_some() => {
            cur.classified = true;
            index.query_point_classified(p, |part, row, class| entries.push((row, pack(part, class))));
        }
        Some(p) if d == 0.0 => index.query_point(p, |part, row| entries.push((row, part))),
        Some(_) => index.query(&rect.expand(d), |part, row| entries.push((row, part))),
        // A line's or a polygon's box: the tree, unless a point built the grid.
        None => index.query_box(&rect.expand(d), |part, row| entries.push((row, part))),
    }
    if entries.len() > 1 {
        entries.sort_unstable();
    }
    cur.rect = Some(rect.expand(d));
    Ok(())
}

/// The next candidate of cursor `c`: one row with all its entries, or null when exhausted.
#[inline]
fn cnext(s: &mut Scratch, c: usize) -> GVal {
    let cur = &mut s.c[c];
    let Some(&(row, _)) = cur.entries.get(cur.pos) else { return GVal::NULL };
    let lo = cur.pos;
    let mut hi = lo + 1;
    while cur.entries.get(hi).is_some_and(|e| e.0 == row) {
        hi += 1;
    }
    cur.pos = hi;
    GVal { src: cur.input, cursor: c as u8, row, lo: lo as u32, hi: hi as u32, gen: cur.gen }
}

/// `emit output, v` in row `row`: batched per chunk, flushed with one reservation.
#[inline]
fn emit(s: &mut Scratch, out: &OutputBuffers, output: usize, row: usize, v: GVal) {
    if v.is_null() {
        return;
    }
    if let Some(Local::Hits(batch)) = s.locals.get_mut(output) {
        batch.push((row as u64) << 32 | u64::from(v.row));
        if batch.len() == HIT_BATCH {
            out.append_hits(output, batch);
            batch.clear();
        }
    }
}

/// Runs a recognised filter loop (see [`super::fuse`]) from its `cnext` to its exit, doing
/// what the instructions would: returns the pc to go on from.
#[inline]
fn filter_loop(ins: &[Slot<'_>], s: &mut Scratch, out: &OutputBuffers, row: usize, l: &FilterLoop) -> usize {
    let c = ci(l.cursor);
    loop {
        if out.stop_requested(&mut s.polls) {
            s.stopped = true;
            return l.exit;
        }
        let v = cnext(s, c);
        s.g[gi(l.cand)] = v;
        if v.is_null() {
            return l.exit;
        }
        let r = predicate(ins, s, l.pred, s.g[gi(l.a)], s.g[gi(l.b)]);
        s.b[bi(l.flag)] = r;
        if r == 1 {
            match l.action {
                Action::Emit => emit(s, out, l.output, row, v),
                Action::Count => count(s, l.output),
            }
        }
    }
}

/// `load`: row `row` of input `input`, or null.
#[inline]
pub(crate) fn load(ins: &[Slot<'_>], input: usize, row: usize) -> GVal {
    match ins.get(input) {
        Some(slot) if !slot.view.is_null(row) => GVal::input(input as u8, row as u32),
        _ => GVal::NULL,
    }
}

/// The coordinate `x`/`y` read from `v`: a point row of an input or a derived point (NaN for
/// an empty point); `None` for null and for other families.
#[inline]
pub(crate) fn xy(ins: &[Slot<'_>], s: &Scratch, v: GVal) -> Option<Xy> {
    match point_of(ins, v) {
        Some(p) => Some(p),
        None => geom(ins, &s.derived, v)
            .filter(|g| g.family() == Family::Point)
            .map(|g| g.coords().next().unwrap_or((f64::NAN, f64::NAN))),
    }
}

/// `sum output, x`: null is skipped.
#[inline]
pub(crate) fn sum(s: &mut Scratch, output: usize, x: Option<f64>) {
    if let (Some(x), Some(Local::Sum(acc))) = (x, s.locals.get_mut(output)) {
        *acc = Some(acc.map_or(x, |a| a + x));
    }
}

pub(crate) fn count(s: &mut Scratch, output: usize) {
    if let Some(Local::Count(n)) = s.locals.get_mut(output) {
        *n += 1;
    }
}

/// Where a fused loop's passing candidates go while it runs: the chunk's hit batch, or the
/// chunk's count (taken out of the scratch so that predicates can read it meanwhile).
enum Matches {
    Hits(Vec<u64>),
    Count(u64),
}

impl Matches {
    #[inline]
    fn add(&mut self, out: &OutputBuffers, output: usize, row: usize, cand: u32) {
        match self {
            Matches::Hits(batch) => {
                batch.push((row as u64) << 32 | u64::from(cand));
                if batch.len() == HIT_BATCH {
                    out.append_hits(output, batch);
                    batch.clear();
                }
            }
            Matches::Count(n) => *n += 1,
        }
    }
}

/// The filter loop of a point `probe` on an input with a cell grid, run straight from the
/// grid cell: no cursor entries are gathered or sorted, yet the emits are what [`probe`]
/// followed by [`filter_loop`] would make, in the same order (the grid yields parts in
/// ascending order, so rows ascend and each row's parts are adjacent), with the same
/// predicate answers (each candidate's parts are located as `locate_in_candidate` does).
/// Holds what stays the same over a chunk.
struct PointProbe<'a> {
    /// The probed input.
    input: usize,
    view: ColumnView<'a>,
    index: &'a SpatialIndex,
    grid: &'a CellGrid,
    l: FilterLoop,
    /// Whether parts the grid knows the point is outside of are passed over unread: only
    /// where the loop's last answer is not observed (a whole-program join), and the
    /// predicate passes no exterior point.
    skip_outside: bool,
}

impl<'a> PointProbe<'a> {
    /// The fast form of the loop `l` of a probe of `input` with the geometry in `g`, or
    /// `None` when it does not apply (no grid, or operands other than candidate and probe
    /// geometry).
    fn new(ins: &[Slot<'a>], l: &FilterLoop, input: usize, g: GReg) -> Option<PointProbe<'a>> {
        let operands_fit =
            l.cand != g && ((l.a == l.cand && l.b == g) || (l.pred.symmetric() && l.a == g && l.b == l.cand));
        // The grid answers where a point lies, which decides every predicate but `dwithin`.
        if !operands_fit || l.pred.of_location(Location::Exterior).is_none() {
            return None;
        }
        let slot = ins.get(input)?;
        let index = slot.index?;
        Some(PointProbe { input, view: slot.view, index, grid: index.grid()?, l: *l, skip_outside: false })
    }

    /// This loop as a whole program runs it, its last answer unobserved (every row starts
    /// afresh): parts the point is outside of are skipped when they cannot pass.
    fn whole_program(self) -> PointProbe<'a> {
        PointProbe { skip_outside: self.l.pred.of_location(Location::Exterior) == Some(false), ..self }
    }

    /// Runs the loop for row `row`, whose probe geometry is the point `p`: passing
    /// candidates go to `matches`; returns the last candidate's answer, `None` without
    /// candidates. Leaves the cursor and registers to the caller (see [`point_loop`]). The
    /// probe's register holds the probe geometry, or gets `probe` before a candidate that
    /// the general predicate decides reads it.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)] // the loop's state, split so that `s` stays borrowable
    fn run(
        &self,
        ins: &[Slot<'_>],
        s: &mut Scratch,
        out: &OutputBuffers,
        matches: &mut Matches,
        row: usize,
        p: Xy,
        mut probe: Option<(GReg, GVal)>,
    ) -> Option<u8> {
        let l = &self.l;
        let part_rows = self.index.part_rows();
        let parts = self.index.slabs().parts();
        let row_of = |part: u32| part_rows.get(part as usize).copied();
        let mut last = None;
        let mut found = self.grid.point_parts_but_outside(p, self.skip_outside).peekable();
        while let Some((part, class)) = found.next() {
            if out.stop_requested(&mut s.polls) {
                s.stopped = true;
                break;
            }
            // The grid's parts index `part_rows` (one index built them both).
            let Some(cand) = row_of(part) else { continue };
            // Where `p` lies in this candidate row, gathered over its parts; `general`: the
            // general predicate decides (not a polygon row).
            let areal = self.index.is_areal() || self.view.kind(cand as usize).is_some_and(areal_kind);
            let mut general = !areal;
            let mut loc = Location::Exterior;
            let mut next = Some((part, class));
            while let Some((part, class)) = next {
                if !general && loc != Location::Boundary {
                    if part as usize >= parts {
                        general = true;
                    } else {
                        match self.index.locate_part(part, class, p) {
                            Location::Exterior => {}
                            at => loc = at,
                        }
                    }
                }
                next = found.next_if(|&(q, _)| row_of(q) == Some(cand));
            }
            let r = if general {
                if let Some((g, v)) = probe.take() {
                    s.g[gi(g)] = v;
                }
                s.g[gi(l.cand)] = GVal::input(self.input as u8, cand);
                predicate(ins, s, l.pred, s.g[gi(l.a)], s.g[gi(l.b)])
            } else {
                u8::from(l.pred.of_location(loc) == Some(true))
            };
            last = Some(r);
            if r == 1 {
                matches.add(out, l.output, row, cand);
            }
        }
        last
    }
}

/// Takes the chunk's matches of loop `l` out of `s` (so that predicates can read `s` while
/// they grow); `None` if its output is not of the loop's kind.
fn take_matches(s: &mut Scratch, l: &FilterLoop) -> Option<Matches> {
    match (l.action, s.locals.get_mut(l.output)) {
        (Action::Emit, Some(Local::Hits(batch))) => Some(Matches::Hits(std::mem::take(batch))),
        (Action::Count, Some(Local::Count(n))) => Some(Matches::Count(std::mem::take(n))),
        _ => None,
    }
}

fn put_matches(s: &mut Scratch, l: &FilterLoop, matches: Matches) {
    match (matches, s.locals.get_mut(l.output)) {
        (Matches::Hits(batch), Some(Local::Hits(slot))) => *slot = batch,
        (Matches::Count(n), Some(Local::Count(slot))) => *slot += n,
        _ => {}
    }
}

/// Runs `probe` (of `input` with the point in register `g`, holding `v`) and its filter
/// loop `l` through [`PointProbe`] when it applies, leaving what the instructions would:
/// the emits, `cand` null, `flag` the last answer, and an exhausted cursor with a new
/// generation. Returns the pc to go on from, or `None` (nothing done) when the probe is not
/// of this form.
#[inline]
#[allow(clippy::too_many_arguments)] // the probe's operands and the loop, as decoded
fn point_loop(
    ins: &[Slot<'_>],
    s: &mut Scratch,
    out: &OutputBuffers,
    row: usize,
    l: &FilterLoop,
    input: usize,
    g: GReg,
    v: GVal,
) -> Option<usize> {
    // The point first: the grid is built for points only.
    let p = point_of(ins, v)?;
    let fast = PointProbe::new(ins, l, input, g)?;
    let mut matches = take_matches(s, l)?;
    let cur = &mut s.c[ci(l.cursor)];
    cur.entries.clear();
    cur.pos = 0;
    cur.gen = cur.gen.wrapping_add(1);
    cur.input = input as u8;
    cur.rect = Some(Rect { min_x: p.0, min_y: p.1, max_x: p.0, max_y: p.1 });
    cur.classified = true;
    let last = fast.run(ins, s, out, &mut matches, row, p, None);
    put_matches(s, l, matches);
    if let Some(r) = last {
        s.b[bi(l.flag)] = r;
    }
    s.g[gi(l.cand)] = GVal::NULL;
    Some(l.exit)
}

/// Runs the rows of a program that is one point join ([`PointJoin`]) with the
/// chunk-invariant work done once; rows whose probe geometry is not a point take
/// [`run_row`]. Each row's emits are those of the instructions; registers are not left as
/// the instructions would leave them, which nothing can observe: every row starts afresh.
fn run_join_rows(
    it: &Interpreter,
    ins: &[Slot<'_>],
    j: &PointJoin,
    rows: Range<usize>,
    out: &OutputBuffers,
    s: &mut Scratch,
) -> Result<Range<usize>, ExecError> {
    // Only for a chunk with a point to probe: the grid is built for points only, and a
    // join of lines or polygons never needs it.
    let points = ins.get(j.load).is_some_and(|load| rows.clone().any(|row| load.view.point(row).is_some()));
    let fast = match j.dist {
        None if points => PointProbe::new(ins, &j.filter, j.probe, j.geom).map(PointProbe::whole_program),
        _ => None,
    };
    let (Some(fast), Some(load), Some(mut matches)) = (fast, ins.get(j.load), take_matches(s, &j.filter))
    else {
        return join_steps(it, ins, j, rows, out, s);
    };
    for row in rows.clone() {
        match load.view.point(row) {
            Some(p) => {
                // The probe register is read only by a candidate the general predicate decides.
                let probe = (j.geom, GVal::input(j.load as u8, row as u32));
                fast.run(ins, s, out, &mut matches, row, p, Some(probe));
                if s.stopped {
                    put_matches(s, &j.filter, matches);
                    return Err(stopped(row, None));
                }
            }
            // `load` gives null, the probe finds nothing: the row does nothing.
            None if load.view.is_null(row) => {}
            None => {
                put_matches(s, &j.filter, matches);
                run_row(it, ins, row, out, s)?;
                let Some(m) = take_matches(s, &j.filter) else { return Ok(row + 1..rows.end) };
                matches = m;
            }
        }
    }
    put_matches(s, &j.filter, matches);
    Ok(rows.end..rows.end)
}

/// The rows of a [`PointJoin`] the grid cannot answer (a distance probe, an input without a
/// grid): each row runs the `load`, the `probe` and its [`filter_loop`] — the very functions
/// the instructions call, in their order — without dispatching them one by one or resetting
/// registers between rows. Registers start each row as a fresh row's would in every way the
/// loop can observe: the loop writes only the candidate, the flag and the cursor (which the
/// probe reopens), and reads the flag only after writing it.
fn join_steps(
    it: &Interpreter,
    ins: &[Slot<'_>],
    j: &PointJoin,
    rows: Range<usize>,
    out: &OutputBuffers,
    s: &mut Scratch,
) -> Result<Range<usize>, ExecError> {
    reset_row(it, s);
    let dist = match j.dist {
        Some((reg, value)) => {
            let d = it.consts.get(value).copied();
            fset(s, reg, d);
            // As `probe` with a distance: none below zero (or NaN) finds anything.
            d.filter(|d| *d >= 0.0)
        }
        None => Some(0.0),
    };
    let l = &j.filter;
    for row in rows.clone() {
        let v = load(ins, j.load, row);
        s.g[gi(j.geom)] = v;
        probe(ins, s, ci(l.cursor), j.probe, v, dist.filter(|_| !v.is_null()))
            .map_err(|message| ExecError { row: Some(row), pc: Some(j.at as u32), message })?;
        filter_loop(ins, s, out, row, l);
        if s.stopped {
            return Err(stopped(row, Some(j.at)));
        }
        end_row(it, ins, row, l.exit, s)?;
    }
    Ok(rows.end..rows.end)
}

pub(super) fn run_chunk(
    it: &Interpreter,
    inputs: &BoundInputs,
    rows: Range<usize>,
    out: &OutputBuffers,
    s: &mut Scratch,
) -> Result<(), ExecError> {
    with_chunk(it, inputs, rows, out, s, |ins, rows, s| {
        for row in rows {
            if out.stop_requested(&mut s.polls) {
                return Err(stopped(row, None));
            }
            run_row(it, ins, row, out, s)?;
        }
        Ok(())
    })
}

/// Runs one chunk: sets up the chunk-local outputs, runs a whole-program point join's rows
/// natively, hands the rows left to `body` (the interpreter's row loop, or compiled code),
/// then flushes the chunk's outputs.
pub(crate) fn with_chunk(
    it: &Interpreter,
    inputs: &BoundInputs,
    rows: Range<usize>,
    out: &OutputBuffers,
    s: &mut Scratch,
    body: impl FnOnce(&[Slot<'_>], Range<usize>, &mut Scratch) -> Result<(), ExecError>,
) -> Result<(), ExecError> {
    // On the stack, and the last chunk's locals reset in place: a one-row job (a service's
    // lookup) allocates nothing here. Bound inputs are a verified program's, at most
    // MAX_INPUTS; more (never made by `BoundInputs::bind`) would be a bug, reported.
    let mut ins = arrayvec::ArrayVec::<Slot<'_>, { meridian_bytecode::MAX_INPUTS }>::new();
    for i in &inputs.inputs {
        ins.try_push(Slot { view: i.column.view(), index: i.index.as_deref() })
            .map_err(|_| ExecError::setup("more inputs than a program can declare"))?;
    }
    let same = s.locals.len() == it.outputs.len()
        && s.locals.iter().zip(it.outputs.iter()).all(|(l, k)| l.holds(*k));
    if same {
        s.locals.iter_mut().for_each(Local::reset);
    } else {
        s.locals.clear();
        s.locals.extend(it.outputs.iter().map(|k| match k {
            OutputKind::F64 | OutputKind::Bool => Local::Dense,
            OutputKind::Geometry => Local::Geometry { pending: GVal::NULL, built: ColumnBuilder::new() },
            OutputKind::Hits => Local::Hits(Vec::with_capacity(HIT_BATCH)),
            OutputKind::Count => Local::Count(0),
            OutputKind::Sum => Local::Sum(None),
        }));
    }
    s.derived.clear();
    s.stopped = false;
    let first = rows.start;
    let rows = match &it.join {
        Some(j) => run_join_rows(it, &ins, j, rows, out, s)?,
        None => rows,
    };
    body(&ins, rows, s)?;
    for (o, local) in s.locals.iter_mut().enumerate() {
        match local {
            Local::Dense => {}
            Local::Geometry { built, .. } => out.add_geometry_chunk(o, first, std::mem::take(built).finish()),
            Local::Hits(batch) => {
                out.append_hits(o, batch);
                batch.clear();
            }
            Local::Count(n) => out.add_count(o, *n),
            Local::Sum(v) => {
                if let Some(v) = v {
                    out.add_sum(o, *v);
                }
            }
        }
    }
    Ok(())
}

#[inline]
fn run_row(
    it: &Interpreter,
    ins: &[Slot<'_>],
    row: usize,
    out: &OutputBuffers,
    s: &mut Scratch,
) -> Result<(), ExecError> {
    reset_row(it, s);
    let code = &*it.code;
    let mut pc = 0usize;
    loop {
        let Some(&instr) = code.get(pc) else {
            return Err(ExecError {
                row: Some(row),
                pc: Some(pc as u32),
                message: "ran past the end of the code".into(),
            });
        };
        let next = step(it, ins, row, out, s, pc, instr)?;
        if next == HALTED {
            return end_row(it, ins, row, pc, s);
        }
        pc = next;
    }
}

/// The error a row ends with when its job's stop signal is set.
#[cold]
fn stopped(row: usize, pc: Option<usize>) -> ExecError {
    ExecError { row: Some(row), pc: pc.map(|p| p as u32), message: super::stop::STOPPED.into() }
}

/// What [`step`] returns after `halt`.
pub(crate) const HALTED: usize = usize::MAX;

/// Every register null, every cursor empty: the state a row starts in.
#[inline]
pub(crate) fn reset_row(it: &Interpreter, s: &mut Scratch) {
    s.f_null = u32::MAX;
    s.b[..it.used_b].fill(B_NULL);
    s.g[..it.used_g].fill(GVal::NULL);
    for c in &mut s.c[..it.used_c] {
        c.entries.clear();
        c.pos = 0;
        c.rect = None;
    }
}

/// Runs `instr`, the instruction at `pc`, for `row`: returns the pc to go on from, or
/// [`HALTED`]. The interpreter's loop calls it for every instruction; the JIT for the
/// instructions it does not compile inline, so that both routes run the same code for them.
#[inline(always)]
pub(crate) fn step(
    it: &Interpreter,
    ins: &[Slot<'_>],
    row: usize,
    out: &OutputBuffers,
    s: &mut Scratch,
    at: usize,
    instr: Instr,
) -> Result<usize, ExecError> {
    let fail = |pc: usize, message: String| ExecError { row: Some(row), pc: Some(pc as u32), message };
    let mut pc = at + 1;
    match instr {
        Instr::Halt {} => return Ok(HALTED),
        Instr::Jmp { target } => pc = target.index(),
        Instr::Jt { cond, target } => {
            if s.b[bi(cond)] == 1 {
                pc = target.index();
            }
        }
        Instr::Jf { cond, target } => {
            if s.b[bi(cond)] != 1 {
                pc = target.index();
            }
        }
        Instr::Load { dst, input } => s.g[gi(dst)] = load(ins, input.index(), row),
        Instr::Const { dst, value } => {
            let v = it.consts.get(value.index()).copied();
            fset(s, dst, v);
        }
        Instr::MovF { dst, src } => {
            let v = fget(s, src);
            fset(s, dst, v);
        }
        Instr::MovB { dst, src } => s.b[bi(dst)] = s.b[bi(src)],
        Instr::MovG { dst, src } => s.g[gi(dst)] = s.g[gi(src)],
        Instr::SelectF { dst, cond, if_true, if_false } => {
            let v = match s.b[bi(cond)] {
                1 => fget(s, if_true),
                0 => fget(s, if_false),
                _ => None,
            };
            fset(s, dst, v);
        }
        Instr::SelectB { dst, cond, if_true, if_false } => {
            s.b[bi(dst)] = match s.b[bi(cond)] {
                1 => s.b[bi(if_true)],
                0 => s.b[bi(if_false)],
                _ => B_NULL,
            };
        }
        Instr::SelectG { dst, cond, if_true, if_false } => {
            s.g[gi(dst)] = match s.b[bi(cond)] {
                1 => s.g[gi(if_true)],
                0 => s.g[gi(if_false)],
                _ => GVal::NULL,
            };
        }
        Instr::Add { dst, lhs, rhs } => {
            let v = f2(s, lhs, rhs).map(|(x, y)| x + y);
            fset(s, dst, v);
        }
        Instr::Sub { dst, lhs, rhs } => {
            let v = f2(s, lhs, rhs).map(|(x, y)| x - y);
            fset(s, dst, v);
        }
        Instr::Mul { dst, lhs, rhs } => {
            let v = f2(s, lhs, rhs).map(|(x, y)| x * y);
            fset(s, dst, v);
        }
        Instr::Div { dst, lhs, rhs } => {
            let v = f2(s, lhs, rhs).map(|(x, y)| x / y);
            fset(s, dst, v);
        }
        Instr::Min { dst, lhs, rhs } => {
            let v = f2(s, lhs, rhs).map(|(x, y)| min_f(x, y));
            fset(s, dst, v);
        }
        Instr::Max { dst, lhs, rhs } => {
            let v = f2(s, lhs, rhs).map(|(x, y)| max_f(x, y));
            fset(s, dst, v);
        }
        Instr::Abs { dst, src } => {
            let v = fget(s, src).map(f64::abs);
            fset(s, dst, v);
        }
        Instr::Neg { dst, src } => {
            let v = fget(s, src).map(|x| -x);
            fset(s, dst, v);
        }
        Instr::Sqrt { dst, src } => {
            let v = fget(s, src).map(f64::sqrt);
            fset(s, dst, v);
        }
        Instr::Lt { dst, lhs, rhs } => s.b[bi(dst)] = bval(f2(s, lhs, rhs).map(|(x, y)| x < y)),
        Instr::Le { dst, lhs, rhs } => s.b[bi(dst)] = bval(f2(s, lhs, rhs).map(|(x, y)| x <= y)),
        Instr::Gt { dst, lhs, rhs } => s.b[bi(dst)] = bval(f2(s, lhs, rhs).map(|(x, y)| x > y)),
        Instr::Ge { dst, lhs, rhs } => s.b[bi(dst)] = bval(f2(s, lhs, rhs).map(|(x, y)| x >= y)),
        Instr::Eq { dst, lhs, rhs } => s.b[bi(dst)] = bval(f2(s, lhs, rhs).map(|(x, y)| x == y)),
        Instr::Ne { dst, lhs, rhs } => s.b[bi(dst)] = bval(f2(s, lhs, rhs).map(|(x, y)| x != y)),
        Instr::And { dst, lhs, rhs } => {
            let (x, y) = (s.b[bi(lhs)], s.b[bi(rhs)]);
            s.b[bi(dst)] = if x == 0 || y == 0 {
                0
            } else if x == B_NULL || y == B_NULL {
                B_NULL
            } else {
                1
            };
        }
        Instr::Or { dst, lhs, rhs } => {
            let (x, y) = (s.b[bi(lhs)], s.b[bi(rhs)]);
            s.b[bi(dst)] = if x == 1 || y == 1 {
                1
            } else if x == B_NULL || y == B_NULL {
                B_NULL
            } else {
                0
            };
        }
        Instr::Not { dst, src } => {
            let x = s.b[bi(src)];
            s.b[bi(dst)] = if x == B_NULL { B_NULL } else { 1 - x };
        }
        Instr::IsNullF { dst, src } => s.b[bi(dst)] = u8::from(fget(s, src).is_none()),
        Instr::Area { dst, geom: g } => {
            let v = geom(ins, &s.derived, s.g[gi(g)]).map(|g| algo::area(&g));
            fset(s, dst, v);
        }
        Instr::Length { dst, geom: g } => {
            let v = geom(ins, &s.derived, s.g[gi(g)]).map(|g| algo::length(&g));
            fset(s, dst, v);
        }
        Instr::Bbox { dst, geom: g } => {
            let v = geom(ins, &s.derived, s.g[gi(g)]).map(|g| {
                let r = algo::bbox(&g);
                [r.min_x, r.min_y, r.max_x, r.max_y]
            });
            fset_run(s, dst, v.as_ref().map(|a| &a[..]), 4);
        }
        Instr::Centroid { dst, geom: g } => {
            let v = geom(ins, &s.derived, s.g[gi(g)])
                .map(|g| algo::centroid(&g).map_or([f64::NAN, f64::NAN], |(x, y)| [x, y]));
            fset_run(s, dst, v.as_ref().map(|a| &a[..]), 2);
        }
        Instr::NPoints { dst, geom: g } => {
            let v = geom(ins, &s.derived, s.g[gi(g)]).map(|g| g.num_points() as f64);
            fset(s, dst, v);
        }
        Instr::IsEmpty { dst, geom: g } => {
            s.b[bi(dst)] = bval(geom(ins, &s.derived, s.g[gi(g)]).map(|g| g.is_empty()));
        }
        Instr::IsNullG { dst, geom: g } => s.b[bi(dst)] = u8::from(s.g[gi(g)].is_null()),
        Instr::X { dst, geom: g } | Instr::Y { dst, geom: g } => {
            let take_x = matches!(instr, Instr::X { .. });
            let xy = xy(ins, s, s.g[gi(g)]);
            fset(s, dst, xy.map(|(x, y)| if take_x { x } else { y }));
        }
        Instr::Intersects { .. }
        | Instr::Contains { .. }
        | Instr::Within { .. }
        | Instr::Covers { .. }
        | Instr::CoveredBy { .. }
        | Instr::Touches { .. }
        | Instr::Disjoint { .. } => {
            if let Some((dst, pred, a, b)) = predicate_of(instr) {
                s.b[bi(dst)] = predicate(ins, s, pred, s.g[gi(a)], s.g[gi(b)]);
            }
        }
        Instr::DWithin { dst, a, b, dist } => {
            let v =
                match (geom(ins, &s.derived, s.g[gi(a)]), geom(ins, &s.derived, s.g[gi(b)]), fget(s, dist)) {
                    (Some(ga), Some(gb), Some(d)) => Some(algo::dwithin(&ga, &gb, d)),
                    _ => None,
                };
            s.b[bi(dst)] = bval(v);
        }
        Instr::Distance { dst, a, b } => {
            let v = match (geom(ins, &s.derived, s.g[gi(a)]), geom(ins, &s.derived, s.g[gi(b)])) {
                (Some(ga), Some(gb)) => Some(algo::distance(&ga, &gb)),
                _ => None,
            };
            fset(s, dst, v);
        }
        Instr::Affine { dst, geom: g, matrix } => {
            let m =
                it.consts.get(matrix.index()..matrix.index() + 6).and_then(|m| <[f64; 6]>::try_from(m).ok());
            let m = Affine(m.ok_or_else(|| fail(pc - 1, "affine matrix outside the constant pool".into()))?);
            let v = s.g[gi(g)];
            let r = derive(ins, s, v, |g, b| algo::affine(g, &m, b))
                .map_err(|e| fail(pc - 1, format!("affine: {e}")))?;
            s.g[gi(dst)] = r.unwrap_or(GVal::NULL);
        }
        Instr::Simplify { dst, geom: g, tolerance } => {
            let v = s.g[gi(g)];
            let r = match fget(s, tolerance) {
                None => None,
                Some(t) => derive(ins, s, v, |g, b| algo::simplify(g, t, b))
                    .map_err(|e| fail(pc - 1, format!("simplify: {e}")))?,
            };
            s.g[gi(dst)] = r.unwrap_or(GVal::NULL);
        }
        Instr::Probe { cursor, input, geom: g } => {
            let v = s.g[gi(g)];
            if let Some(Some(l)) = it.loops.get(pc - 1) {
                if let Some(next) = point_loop(ins, s, out, row, l, input.index(), g, v) {
                    return if s.stopped { Err(stopped(row, Some(pc - 1))) } else { Ok(next) };
                }
            }
            let d = (!v.is_null()).then_some(0.0);
            probe(ins, s, ci(cursor), input.index(), v, d).map_err(|e| fail(pc - 1, e))?;
            if let Some(Some(l)) = it.loops.get(pc - 1) {
                let at = pc - 1;
                pc = filter_loop(ins, s, out, row, l);
                if s.stopped {
                    return Err(stopped(row, Some(at)));
                }
            }
        }
        Instr::ProbeDist { cursor, input, geom: g, dist } => {
            let v = s.g[gi(g)];
            let d = fget(s, dist).filter(|d| *d >= 0.0 && !v.is_null());
            probe(ins, s, ci(cursor), input.index(), v, d).map_err(|e| fail(pc - 1, e))?;
            if let Some(Some(l)) = it.loops.get(pc - 1) {
                let at = pc - 1;
                pc = filter_loop(ins, s, out, row, l);
                if s.stopped {
                    return Err(stopped(row, Some(at)));
                }
            }
        }
        Instr::CNext { dst, cursor, exit } => {
            // Every loop goes back through a `cnext` (the verifier allows no other backward
            // jump): polling here bounds how long a stopped row runs on.
            if out.stop_requested(&mut s.polls) {
                return Err(stopped(row, Some(pc - 1)));
            }
            let v = cnext(s, ci(cursor));
            if v.is_null() {
                pc = exit.index();
            }
            s.g[gi(dst)] = v;
        }
        Instr::StoreF { output, src } => out.store_f64(output.index(), row, fget(s, src)),
        Instr::StoreB { output, src } => out.store_bool(output.index(), row, s.b[bi(src)]),
        Instr::StoreG { output, src } => {
            let v = s.g[gi(src)];
            if let Some(Local::Geometry { pending, .. }) = s.locals.get_mut(output.index()) {
                *pending = v;
            }
        }
        Instr::Emit { output, cand } => emit(s, out, output.index(), row, s.g[gi(cand)]),
        Instr::Count { output } => count(s, output.index()),
        Instr::Sum { output, src } => sum(s, output.index(), fget(s, src)),
    }
    Ok(pc)
}

/// Finishes `row` after its `halt`: appends the row's geometry outputs and drops the
/// geometries it derived.
#[inline]
pub(crate) fn end_row(
    it: &Interpreter,
    ins: &[Slot<'_>],
    row: usize,
    halt: usize,
    s: &mut Scratch,
) -> Result<(), ExecError> {
    if it.has_geometry_outputs {
        let Scratch { locals, derived, .. } = s;
        for local in locals.iter_mut() {
            if let Local::Geometry { pending, built } = local {
                let g = geom(ins, derived, *pending);
                built.push_geom(g.as_ref()).map_err(|e| ExecError {
                    row: Some(row),
                    pc: Some(halt as u32),
                    message: format!("store: {e}"),
                })?;
                *pending = GVal::NULL;
            }
        }
    }
    if !s.derived.is_empty() {
        s.derived.clear();
    }
    Ok(())
}
