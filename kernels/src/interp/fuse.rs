//! Candidate filter loops, recognised once at decode time and run as one step.
//!
//! The join idiom of every probe program is
//!
//! ```text
//!     probe    c, zones, gP        ; or probe c, zones, gP, fD
//! next:
//!     cnext    gC, c, done
//!     <pred>   b, x, y             ; contains/within/covers/coveredby/intersects/touches/disjoint,
//!                                  ; or dwithin b, x, y, fD
//!     jf       b, next
//!     emit     out, gC             ; or: count out
//!     jmp      next
//! done:
//! ```
//!
//! The branches may be spelled any way that means the same: `jt b, hit; jmp next; hit: emit
//! out, gC; jmp next`, or jumps through other jumps — [`find`] follows the jumps after the
//! predicate once with the flag false and once with it true, and asks only that false leads
//! straight back to `cnext` and true to one `emit` of the candidate (or one `count`) and then
//! back. Interpreted, each candidate costs five dispatches. [`find`] marks such loops, and the
//! interpreter, after running the `probe`, runs the loop body natively: the same `cnext`
//! grouping, the same predicate function, the same register writes (`gC` ends null, `b` holds
//! the last candidate's answer) and the same emits in the same order, then jumps to `done`.
//! Nothing observable changes; other jumps into the loop's body still run the instructions.
//!
//! A program that is `load gP, pts` then such a loop probing with `gP` (for a distance probe,
//! `const fD, d` between them), exiting to `halt`, is a [`PointJoin`]: every row is the same
//! join step, so the interpreter runs the chunk's rows in one loop and skips the per-row
//! register reset and dispatch (nothing can observe registers between rows).

use meridian_bytecode::{BReg, CReg, FReg, GReg, Instr};

/// The predicate of a filter loop, with its operands in the order the predicate takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pred {
    Intersects,
    Contains,
    Covers,
    Touches,
    Disjoint,
    /// `dwithin`, with the register holding its distance.
    DWithin(FReg),
}

/// What a filter loop does with a candidate that passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// `emit out, gC`: a `(row, candidate)` hit.
    Emit,
    /// `count out`.
    Count,
}

/// A recognised loop; its `probe` is at the pc it is stored under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FilterLoop {
    pub cursor: CReg,
    /// The register `cnext` writes.
    pub cand: GReg,
    /// The register the predicate writes and `jf` tests.
    pub flag: BReg,
    pub pred: Pred,
    /// The predicate's operands (`within a, b` is `contains b, a`).
    pub a: GReg,
    pub b: GReg,
    /// What a passing candidate does, to output `output`.
    pub action: Action,
    pub output: usize,
    /// Where `cnext` jumps when the cursor is exhausted.
    pub exit: usize,
}

/// The predicate an instruction computes, as `(dst, pred, a, b)`.
pub(crate) fn predicate_of(instr: Instr) -> Option<(BReg, Pred, GReg, GReg)> {
    Some(match instr {
        Instr::Intersects { dst, a, b } => (dst, Pred::Intersects, a, b),
        Instr::Contains { dst, a, b } => (dst, Pred::Contains, a, b),
        Instr::Within { dst, a, b } => (dst, Pred::Contains, b, a),
        Instr::Covers { dst, a, b } => (dst, Pred::Covers, a, b),
        Instr::CoveredBy { dst, a, b } => (dst, Pred::Covers, b, a),
        Instr::Touches { dst, a, b } => (dst, Pred::Touches, a, b),
        Instr::Disjoint { dst, a, b } => (dst, Pred::Disjoint, a, b),
        Instr::DWithin { dst, a, b, dist } => (dst, Pred::DWithin(dist), a, b),
        _ => None?,
    })
}

/// For every pc: the filter loop whose `probe` is there, if any.
pub(crate) fn find(code: &[Instr]) -> Box<[Option<FilterLoop>]> {
    (0..code.len()).map(|pc| at(code, pc)).collect()
}

fn at(code: &[Instr], pc: usize) -> Option<FilterLoop> {
    let cursor = match *code.get(pc)? {
        Instr::Probe { cursor, .. } | Instr::ProbeDist { cursor, .. } => cursor,
        _ => return None,
    };
    let head = pc + 1;
    let Instr::CNext { dst: cand, cursor: c, exit } = *code.get(head)? else { return None };
    let (flag, pred, a, b) = predicate_of(*code.get(pc + 2)?)?;
    // Where the branches after the predicate lead when it is false (or null: `jt` and `jf`
    // treat null as false) and when it is true. False must come straight back to `cnext`;
    // true must reach one `emit` of the candidate or one `count`, and from there come back.
    let back = |at: usize| branches(code, at, flag, false) == Some(head);
    if !back(pc + 3) {
        return None;
    }
    let act = branches(code, pc + 3, flag, true)?;
    let (action, output) = match *code.get(act)? {
        Instr::Emit { output, cand: emitted } if emitted == cand => (Action::Emit, output.index()),
        Instr::Count { output } => (Action::Count, output.index()),
        _ => return None,
    };
    // After the action the flag still holds true: the way back is followed with it true (a
    // `jf` on it falls through there, into whatever the loop does next).
    let shape = c == cursor && branches(code, act + 1, flag, true) == Some(head);
    shape.then_some(FilterLoop { cursor, cand, flag, pred, a, b, action, output, exit: exit.index() })
}

/// Follows the jumps from `at` with `flag` holding `value`: the first instruction that is not
/// a jump (`jmp`, or `jt`/`jf` on `flag`), or `None` past the end, on another condition, or
/// after more jumps than any real spelling needs (a cycle of jumps).
fn branches(code: &[Instr], mut at: usize, flag: BReg, value: bool) -> Option<usize> {
    for _ in 0..8 {
        at = match *code.get(at)? {
            Instr::Jmp { target } => target.index(),
            Instr::Jt { cond, target } if cond == flag => {
                if value {
                    target.index()
                } else {
                    at + 1
                }
            }
            Instr::Jf { cond, target } if cond == flag => {
                if value {
                    at + 1
                } else {
                    target.index()
                }
            }
            Instr::Jt { .. } | Instr::Jf { .. } => return None,
            _ => return Some(at),
        };
    }
    None
}

/// A program whose every row is one join step: `load g, pts` at pc 0, then a `probe` of
/// `zones` with `g` that heads a [`FilterLoop`] — at pc 1, or for a distance probe at pc 2
/// after `const fD, d` — and `halt` where the loop exits. The interpreter runs such a
/// program's rows as one loop over the chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PointJoin {
    /// The input `load` reads.
    pub load: usize,
    /// The register it loads into, which the probe queries with.
    pub geom: GReg,
    /// The probed input.
    pub probe: usize,
    /// The probe's pc.
    pub at: usize,
    /// A distance probe's register and the constant-pool entry `const` puts in it.
    pub dist: Option<(FReg, usize)>,
    pub filter: FilterLoop,
}

/// The [`PointJoin`] `code` is, if it is one (`loops` from [`find`]).
pub(crate) fn point_join(code: &[Instr], loops: &[Option<FilterLoop>]) -> Option<PointJoin> {
    let Instr::Load { dst: geom, input: load } = *code.first()? else { return None };
    let (at, probe, probed, dist) = match *code.get(1)? {
        Instr::Probe { input, geom: probed, .. } => (1, input, probed, None),
        Instr::Const { dst, value } => match *code.get(2)? {
            Instr::ProbeDist { input, geom: probed, dist, .. } if dist == dst => {
                (2, input, probed, Some((dst, value.index())))
            }
            _ => return None,
        },
        _ => return None,
    };
    let filter = (*loops.get(at)?)?;
    let halts = matches!(code.get(filter.exit), Some(Instr::Halt {}));
    (probed == geom && halts).then_some(PointJoin {
        load: load.index(),
        geom,
        probe: probe.index(),
        at,
        dist,
        filter,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;
    use meridian_bytecode::assemble;

    fn loops(body: &str) -> Vec<(usize, FilterLoop)> {
        let text = format!(
            ".program t\n.input pts points\n.input zones polygons indexed\n{}\n{body}",
            if body.contains("count ") { ".output n count" } else { ".output pairs hits" }
        );
        let program = assemble("t.masm", &text).unwrap();
        let code: Vec<Instr> = program.instrs().collect();
        find(&code).iter().enumerate().filter_map(|(pc, l)| l.map(|l| (pc, l))).collect()
    }

    #[test]
    fn the_join_idiom_is_found_with_its_operands() {
        let found = loops(
            "load g0, pts\nprobe c1, zones, g0\nnext:\ncnext g3, c1, done\nwithin b2, g0, g3\njf b2, next\n\
             emit pairs, g3\njmp next\ndone:\nhalt\n",
        );
        assert_eq!(found.len(), 1);
        let (pc, l) = found[0];
        assert_eq!(pc, 1);
        assert_eq!((l.cursor, l.cand, l.flag, l.pred), (CReg(1), GReg(3), BReg(2), Pred::Contains));
        assert_eq!((l.a, l.b, l.output, l.exit, l.action), (GReg(3), GReg(0), 0, 7, Action::Emit));
        let counting = loops(
            "load g0, pts\nprobe c0, zones, g0\nnext:\ncnext g1, c0, done\ncontains b0, g1, g0\njf b0, next\n\
             count n\njmp next\ndone:\nhalt\n",
        );
        assert_eq!(counting.len(), 1);
        assert_eq!((counting[0].1.action, counting[0].1.output), (Action::Count, 0));
    }

    #[test]
    fn a_distance_loop_and_its_whole_program_join_are_found() {
        let body = "load g0, pts\nconst f1, 0.5\nprobe c0, zones, g0, f1\nnext:\ncnext g1, c0, done\n\
                    dwithin b0, g1, g0, f1\njf b0, next\nemit pairs, g1\njmp next\ndone:\nhalt\n";
        let found = loops(body);
        assert_eq!(found.len(), 1);
        let (pc, l) = found[0];
        assert_eq!((pc, l.pred, l.a, l.b), (2, Pred::DWithin(FReg(1)), GReg(1), GReg(0)));
        let text = format!(
            ".program t\n.input pts points\n.input zones polygons indexed\n.output pairs hits\n{body}"
        );
        let code: Vec<Instr> = assemble("t.masm", &text).unwrap().instrs().collect();
        let j = point_join(&code, &find(&code)).expect("a distance join is a whole-program join");
        assert_eq!((j.load, j.probe, j.at, j.dist.map(|d| d.0)), (0, 1, 2, Some(FReg(1))));
        // The probe's distance in another register than `const` wrote: not this shape.
        let other = text.replace("probe c0, zones, g0, f1", "probe c0, zones, g0, f2");
        let code: Vec<Instr> = assemble("t.masm", &other).unwrap().instrs().collect();
        assert_eq!(point_join(&code, &find(&code)), None);
    }

    #[test]
    fn other_spellings_of_the_same_branches_are_found() {
        for body in [
            "load g0, pts\nprobe c0, zones, g0\nnext:\ncnext g1, c0, done\ncontains b0, g1, g0\njt b0, hit\n\
             jmp next\nhit:\nemit pairs, g1\njmp next\ndone:\nhalt\n",
            // through a trampoline, and the way back through a branch that cannot be taken
            "load g0, pts\nprobe c0, zones, g0\nnext:\ncnext g1, c0, done\ncontains b0, g1, g0\njf b0, skip\n\
             jmp hit\nskip:\njmp next\nhit:\nemit pairs, g1\njt b0, next\njmp next\ndone:\nhalt\n",
        ] {
            let found = loops(body);
            assert_eq!(found.len(), 1, "{body}");
            assert_eq!(found[0].1.action, Action::Emit, "{body}");
        }
    }

    #[test]
    fn near_misses_are_left_to_the_interpreter() {
        for body in [
            // jt, not jf: emits the candidates that fail
            "load g0, pts\nprobe c0, zones, g0\nnext:\ncnext g1, c0, done\ncontains b0, g1, g0\njt b0, next\n\
             emit pairs, g1\njmp next\ndone:\nhalt\n",
            // branches on another flag on the way
            "load g0, pts\nprobe c0, zones, g0\nnext:\ncnext g1, c0, done\ncontains b0, g1, g0\njt b0, hit\n\
             jmp next\nhit:\njt b1, next\nemit pairs, g1\njmp next\ndone:\nhalt\n",
            // emits the probe geometry, not the candidate
            "load g0, pts\nprobe c0, zones, g0\nnext:\ncnext g1, c0, done\ncontains b0, g1, g0\njf b0, next\n\
             emit pairs, g0\njmp next\ndone:\nhalt\n",
            // tests another flag than the predicate wrote
            "load g0, pts\nprobe c0, zones, g0\nnext:\ncnext g1, c0, done\ncontains b0, g1, g0\njf b1, next\n\
             emit pairs, g1\njmp next\ndone:\nhalt\n",
            // something between the predicate and the jump
            "load g0, pts\nprobe c0, zones, g0\nnext:\ncnext g1, c0, done\ncontains b0, g1, g0\nnot b0, b0\n\
             jf b0, next\nemit pairs, g1\njmp next\ndone:\nhalt\n",
            // after the emit, a `jf` on the flag, which holds true there: it falls through into
            // more work (a random program found the loop taken for a filter)
            "load g0, pts\nprobe c0, zones, g0\nnext:\ncnext g1, c0, done\ncontains b0, g1, g0\njf b0, next\n\
             emit pairs, g1\njf b0, skip\nnot b1, b0\nskip:\njmp next\ndone:\nhalt\n",
        ] {
            assert!(loops(body).is_empty(), "{body}");
        }
    }
}
