//! The JTS XML conformance suite (`tests/data/jts`, EDL 1.0), run against meridian's kernels.
//!
//! Every case of every file is accounted for: passed, failed, or skipped with a reason.
//! Known failures live in `tests/data/jts-known-failures.tsv` (`id<TAB>cause`); this test
//! fails when a case outside that list fails (a regression), when a listed case passes (the
//! list is stale), or when `docs/conformance.md` does not match the results.
//! Regenerate both with `MERIDIAN_UPDATE_DOCS=1 cargo test -p meridian-kernels --test conformance`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use meridian_kernels::algo;
use meridian_kernels::column::{ColumnBuilder, Family, Geom, GeometryColumn, Parts};
use meridian_kernels::io::read_wkt;

const OPS: [&str; 12] = [
    "intersects",
    "contains",
    "within",
    "covers",
    "coveredBy",
    "touches",
    "disjoint",
    "relate",
    "distance",
    "isWithinDistance",
    "getCentroid",
    "simplifyDP",
];

/// Relative tolerance for numeric results (distance, centroid coordinates).
const TOL: f64 = 1e-9;

#[derive(Debug)]
enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

struct Result1 {
    id: String,
    file: String,
    op: String,
    desc: String,
    outcome: Outcome,
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn xml_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["validate", "general", "misc"] {
        let mut v: Vec<_> = std::fs::read_dir(data().join("jts").join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "xml"))
            .collect();
        v.sort();
        files.extend(v);
    }
    files
}

/// Parses one WKT into a one-row column, or says why it cannot be used.
fn parse(wkt: &str) -> Result<GeometryColumn, String> {
    let text = wkt.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.to_ascii_uppercase().starts_with("GEOMETRYCOLLECTION") {
        return Err("GEOMETRYCOLLECTION is not a column family".into());
    }
    let upper = text.to_ascii_uppercase();
    if upper.contains("(EMPTY")
        || upper.contains("( EMPTY")
        || upper.contains(", EMPTY")
        || upper.contains(",EMPTY")
    {
        return Err("EMPTY member inside a multi-geometry: the `wkt` crate (0.14) does not parse it".into());
    }
    read_wkt("case", text.as_bytes()).map_err(|e| format!("input not accepted: {} ({text})", e.message))
}

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOL * a.abs().max(b.abs()).max(1.0)
}

/// Canonical form of a geometry for comparing constructed results: rings rotated to start at
/// their smallest coordinate and oriented counter-clockwise, parts sorted.
fn canonical(g: &Geom<'_>) -> (Family, Parts) {
    let mut parts: Parts = g
        .parts()
        .map(|p| {
            p.rings()
                .map(|r| {
                    let mut c: Vec<(f64, f64)> = r.coords().collect();
                    if g.dimension() == 2 && c.len() > 1 {
                        c.pop();
                        let area2: f64 = (0..c.len())
                            .map(|i| {
                                let (a, b) = (c[i], c[(i + 1) % c.len()]);
                                a.0 * b.1 - b.0 * a.1
                            })
                            .sum();
                        if area2 < 0.0 {
                            c.reverse();
                        }
                        let k = (0..c.len()).min_by(|&i, &j| c[i].partial_cmp(&c[j]).unwrap()).unwrap();
                        c.rotate_left(k);
                        c.push(c[0]);
                    }
                    c
                })
                .collect()
        })
        .collect();
    if g.family().is_multi() {
        parts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    (g.family(), parts)
}

fn run_op(op: &str, a: &Geom<'_>, b: Option<&Geom<'_>>, arg3: Option<&str>, expected: &str) -> Outcome {
    let want_bool = || match expected {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(Outcome::Skip(format!("expected value {other:?} is not a boolean"))),
    };
    let check_bool = |got: bool| match want_bool() {
        Ok(w) if w == got => Outcome::Pass,
        Ok(w) => Outcome::Fail(format!("expected {w}, got {got}")),
        Err(o) => o,
    };
    let need_b = || b.ok_or_else(|| Outcome::Skip("case has no B geometry".into()));
    let pred = |f: fn(&Geom<'_>, &Geom<'_>) -> bool| match need_b() {
        Ok(b) => check_bool(f(a, b)),
        Err(o) => o,
    };
    match op {
        "intersects" => pred(algo::intersects),
        "contains" => pred(algo::contains),
        "within" => pred(algo::within),
        "covers" => pred(algo::covers),
        "coveredBy" => pred(algo::covered_by),
        "touches" => pred(algo::touches),
        "disjoint" => pred(algo::disjoint),
        "relate" => match (need_b(), arg3) {
            (Ok(b), Some(pattern)) => {
                let im = algo::relate(a, b);
                match want_bool() {
                    Ok(w) if w == im.matches(pattern) => Outcome::Pass,
                    Ok(w) => Outcome::Fail(format!("matrix {im}, pattern {pattern}: expected {w}")),
                    Err(o) => o,
                }
            }
            (Err(o), _) => o,
            (_, None) => Outcome::Skip("relate without a pattern".into()),
        },
        "distance" => match need_b() {
            Ok(b) => {
                let Ok(want) = expected.parse::<f64>() else {
                    return Outcome::Skip(format!("expected {expected:?} is not a number"));
                };
                let got = algo::distance(a, b);
                if a.is_empty() || b.is_empty() {
                    return Outcome::Skip(format!(
                        "empty input: JTS gives {want}, meridian defines NaN (docs/bytecode.md)"
                    ));
                }
                if approx(got, want) {
                    Outcome::Pass
                } else {
                    Outcome::Fail(format!("expected {want}, got {got}"))
                }
            }
            Err(o) => o,
        },
        "isWithinDistance" => match (need_b(), arg3.and_then(|d| d.trim().parse::<f64>().ok())) {
            (Ok(b), Some(d)) => check_bool(algo::dwithin(a, b, d)),
            (Err(o), _) => o,
            (_, None) => Outcome::Skip("no distance argument".into()),
        },
        "getCentroid" => {
            let want = match parse(expected) {
                Ok(c) => c,
                Err(e) => return Outcome::Skip(format!("expected value: {e}")),
            };
            let want = want.get(0).unwrap();
            let want = want.coords().next();
            match (algo::centroid(a), want) {
                (None, None) => Outcome::Pass,
                (Some(g), Some(w)) if approx(g.0, w.0) && approx(g.1, w.1) => Outcome::Pass,
                (g, w) => Outcome::Fail(format!("expected {w:?}, got {g:?}")),
            }
        }
        "simplifyDP" => {
            let Some(tol) = arg3.and_then(|t| t.trim().parse::<f64>().ok()) else {
                return Outcome::Skip("no tolerance argument".into());
            };
            let want = match parse(expected) {
                Ok(c) => c,
                Err(e) => return Outcome::Skip(format!("expected value: {e}")),
            };
            let mut out = ColumnBuilder::new();
            if let Err(e) = algo::simplify(a, tol, &mut out) {
                return Outcome::Fail(format!("simplify failed: {e}"));
            }
            let got = out.finish();
            let (g, w) = (got.get(0).unwrap(), want.get(0).unwrap());
            if canonical(&g) == canonical(&w) {
                Outcome::Pass
            } else {
                Outcome::Fail(format!(
                    "expected {}, got {}",
                    meridian_kernels::io::to_wkt(Some(&w)),
                    meridian_kernels::io::to_wkt(Some(&g))
                ))
            }
        }
        other => Outcome::Skip(format!("op `{other}` not implemented")),
    }
}

fn run_suite() -> Vec<Result1> {
    let mut results = Vec::new();
    for path in xml_files() {
        let rel = path.strip_prefix(data().join("jts")).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let cases = doc.root_element().children().filter(|n| n.has_tag_name("case"));
        for (ci, case) in cases.enumerate() {
            let child_text = |tag: &str| {
                case.children()
                    .find(|n| n.has_tag_name(tag))
                    .map(|n| n.text().unwrap_or("").trim().to_string())
            };
            let desc = child_text("desc").unwrap_or_default();
            let a = child_text("a").map(|t| parse(&t));
            let b = child_text("b").map(|t| parse(&t));
            let tests = case.children().filter(|n| n.has_tag_name("test"));
            for (ti, test) in tests.enumerate() {
                let Some(op) = test.children().find(|n| n.has_tag_name("op")) else { continue };
                let name = op.attribute("name").unwrap_or("").to_string();
                let id = format!("{rel}#{ci}.{ti}");
                let expected = op.text().unwrap_or("").trim().to_string();
                let arg = |k: &str| op.attribute(k).map(str::trim);
                let outcome = if !OPS.contains(&name.as_str()) {
                    Outcome::Skip(format!("op `{name}` not implemented"))
                } else {
                    let pick = |which: Option<&str>| match which.map(str::to_ascii_uppercase).as_deref() {
                        Some("A") => a.as_ref(),
                        Some("B") => b.as_ref(),
                        _ => None,
                    };
                    let (ga, gb) = (pick(arg("arg1")), pick(arg("arg2")));
                    // The third argument is the pattern (relate) or distance; for simplifyDP the
                    // tolerance is arg2.
                    let arg3 = if name == "simplifyDP" { arg("arg2") } else { arg("arg3") };
                    match (ga, gb) {
                        (None, _) => Outcome::Skip("arg1 missing".into()),
                        (Some(Err(e)), _) | (_, Some(Err(e))) => Outcome::Skip(e.clone()),
                        (Some(Ok(ca)), gb) => {
                            let ga = ca.get(0);
                            let gb = gb.and_then(|r| r.as_ref().ok()).map(|c| c.get(0));
                            match (ga, gb) {
                                (Some(ga), None) => run_op(&name, &ga, None, arg3, &expected),
                                (Some(ga), Some(Some(gb))) => run_op(&name, &ga, Some(&gb), arg3, &expected),
                                _ => Outcome::Skip("null input".into()),
                            }
                        }
                    }
                };
                results.push(Result1 { id, file: rel.clone(), op: name, desc: desc.clone(), outcome });
            }
        }
    }
    results
}

fn known_failures() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(data().join("jts-known-failures.tsv")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (id, cause) = l.split_once('\t').unwrap_or((l, ""));
            (id.to_string(), cause.to_string())
        })
        .collect()
}

fn render(results: &[Result1], causes: &BTreeMap<String, String>) -> String {
    let mut counts: BTreeMap<(String, String), [usize; 3]> = BTreeMap::new();
    let mut skip_reasons: BTreeMap<String, usize> = BTreeMap::new();
    for r in results {
        let c = counts.entry((r.file.clone(), r.op.clone())).or_default();
        match &r.outcome {
            Outcome::Pass => c[0] += 1,
            Outcome::Fail(_) => c[1] += 1,
            Outcome::Skip(why) => {
                c[2] += 1;
                *skip_reasons.entry(why.clone()).or_default() += 1;
            }
        }
    }
    let total = |i: usize| counts.values().map(|c| c[i]).sum::<usize>();
    let implemented: Vec<_> = counts.iter().filter(|((_, op), _)| OPS.contains(&op.as_str())).collect();
    let imp = |i: usize| implemented.iter().map(|(_, c)| c[i]).sum::<usize>();
    let mut s = String::new();
    writeln!(s, "# JTS conformance\n").unwrap();
    writeln!(
        s,
        "Generated by `MERIDIAN_UPDATE_DOCS=1 cargo test -p meridian-kernels --test conformance` \
         from the JTS XML suite in `kernels/tests/data/jts` (JTS commit 07833d3c2f, Eclipse \
         Distribution License 1.0). Do not edit by hand.\n"
    )
    .unwrap();
    writeln!(
        s,
        "Numeric results (distance, centroid) pass within a relative tolerance of {TOL:e}; \
         `simplifyDP` results are compared after normalising ring start and orientation and \
         part order. `relate` checks the case's DE-9IM pattern against meridian's matrix.\n"
    )
    .unwrap();
    writeln!(s, "## Summary\n").unwrap();
    writeln!(s, "| | passed | failed | skipped |\n|---|---:|---:|---:|").unwrap();
    writeln!(s, "| ops meridian implements | {} | {} | {} |", imp(0), imp(1), imp(2)).unwrap();
    writeln!(s, "| all ops in the suite | {} | {} | {} |\n", total(0), total(1), total(2)).unwrap();
    let run = imp(0) + imp(1);
    if run > 0 {
        writeln!(
            s,
            "Of the {run} cases of implemented ops whose inputs meridian supports, {} pass ({:.2}%).\n",
            imp(0),
            100.0 * imp(0) as f64 / run as f64
        )
        .unwrap();
    }
    writeln!(s, "## Skips by reason\n\n| reason | cases |\n|---|---:|").unwrap();
    for (why, n) in &skip_reasons {
        writeln!(s, "| {why} | {n} |").unwrap();
    }
    writeln!(
        s,
        "\n## Per file and op\n\n| file | op | passed | failed | skipped |\n|---|---|---:|---:|---:|"
    )
    .unwrap();
    for ((file, op), c) in &counts {
        writeln!(s, "| `{file}` | {op} | {} | {} | {} |", c[0], c[1], c[2]).unwrap();
    }
    writeln!(s, "\n## Failures\n").unwrap();
    let fails: Vec<_> = results.iter().filter(|r| matches!(r.outcome, Outcome::Fail(_))).collect();
    if fails.is_empty() {
        writeln!(s, "None.").unwrap();
    } else {
        writeln!(s, "| case | op | description | result | cause |\n|---|---|---|---|---|").unwrap();
        for r in fails {
            let Outcome::Fail(msg) = &r.outcome else { continue };
            let cause = causes.get(&r.id).map_or("", String::as_str);
            let desc = r.desc.replace('|', "\\|").replace('\n', " ");
            writeln!(s, "| `{}` | {} | {} | {} | {} |", r.id, r.op, desc, msg.replace('|', "\\|"), cause)
                .unwrap();
        }
    }
    s
}

#[test]
fn jts_suite() {
    let results = run_suite();
    let mut causes = known_failures();
    let failing: Vec<&Result1> = results.iter().filter(|r| matches!(r.outcome, Outcome::Fail(_))).collect();
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/conformance.md");
    if std::env::var_os("MERIDIAN_UPDATE_DOCS").is_some() {
        causes.retain(|id, _| failing.iter().any(|r| &r.id == id));
        for r in &failing {
            causes.entry(r.id.clone()).or_insert_with(|| "unexplained".into());
        }
        let mut tsv = String::from("# JTS cases meridian is known to fail: id<TAB>cause\n");
        for (id, cause) in &causes {
            writeln!(tsv, "{id}\t{cause}").unwrap();
        }
        std::fs::write(data().join("jts-known-failures.tsv"), tsv).unwrap();
        std::fs::write(&doc_path, render(&results, &causes)).unwrap();
        return;
    }
    let regressions: Vec<String> = failing
        .iter()
        .filter(|r| !causes.contains_key(&r.id))
        .map(|r| format!("{} {} ({}): {:?}", r.id, r.op, r.desc, r.outcome))
        .collect();
    assert!(
        regressions.is_empty(),
        "JTS cases failing that are not known failures:\n{}",
        regressions.join("\n")
    );
    let fixed: Vec<&String> = causes.keys().filter(|id| !failing.iter().any(|r| &&r.id == id)).collect();
    assert!(fixed.is_empty(), "known failures that now pass (regenerate the list): {fixed:?}");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_default();
    assert!(
        doc == render(&results, &causes),
        "docs/conformance.md is stale: run MERIDIAN_UPDATE_DOCS=1 cargo test -p meridian-kernels --test conformance"
    );
}
