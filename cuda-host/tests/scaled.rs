//! The same polygons and points scaled by every power of two a double has, 2^-1074 to
//! 2^1023: scaling by a power of two that keeps every coordinate exact cannot change which
//! point lies in which polygon, so every scale that is accepted gives the answers of scale 1,
//! on the CPU interpreter, the CPU JIT and the emulated GPU alike (the device's general loop
//! at every third scale, for time); a scale that puts a
//! coordinate past the readers' bound (1e150) is refused with the reason. (Issue 28: the
//! orientation test underflowed, and a join found 881 hits at 2^-530, 391 at 2^-540, 0 at
//! 2^-560.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::Arc;

use meridian_bytecode::{assemble, VerifiedProgram};
use meridian_cuda_host::HostDevice;
use meridian_kernels::column::{ColumnBuilder, Family, GeometryColumn, Parts, MAX_COORD};
use meridian_kernels::interp::{Input, OutputColumn};
use meridian_runtime::{Engine, Mode, Route};

/// Polygons on a small integer grid: a square with a hole, a concave star-like shape,
/// slanted triangles (edges of slope 1/3, 2/5) and a multipolygon whose parts touch.
fn polygons() -> Vec<(Family, Parts)> {
    let ring =
        |pts: &[(i32, i32)]| pts.iter().map(|&(x, y)| (f64::from(x), f64::from(y))).collect::<Vec<_>>();
    vec![
        (
            Family::Polygon,
            vec![vec![
                ring(&[(0, 0), (12, 0), (12, 12), (0, 12), (0, 0)]),
                ring(&[(3, 3), (3, 9), (9, 9), (9, 3), (3, 3)]),
            ]],
        ),
        (
            Family::Polygon,
            vec![vec![ring(&[(14, 1), (30, 3), (20, 8), (31, 13), (15, 12), (19, 7), (14, 1)])]],
        ),
        (Family::Polygon, vec![vec![ring(&[(1, 14), (31, 24), (6, 29), (1, 14)])]]),
        (
            Family::MultiPolygon,
            vec![
                vec![ring(&[(20, 26), (25, 26), (25, 31), (20, 31), (20, 26)])],
                vec![ring(&[(25, 31), (31, 31), (28, 26), (25, 31)])],
            ],
        ),
    ]
}

/// 2^e, exactly, for every e a double has (`powi` loses the subnormal ones).
fn pow2(e: i32) -> f64 {
    if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        f64::from_bits(1 << (e + 1074))
    }
}

/// The polygons and every integer point of [-1, 32]² scaled by 2^e (all exact: small
/// integers times a power of two), or the builder's refusal.
fn scaled(e: i32) -> Result<(Arc<GeometryColumn>, Arc<GeometryColumn>), String> {
    let k = pow2(e);
    let mut zones = ColumnBuilder::new();
    for (family, parts) in polygons() {
        let parts: Parts = parts
            .iter()
            .map(|p| p.iter().map(|r| r.iter().map(|&(x, y)| (x * k, y * k)).collect()).collect())
            .collect();
        zones.push_parts(family, &parts).map_err(|e| e.to_string())?;
    }
    let mut pts = ColumnBuilder::new();
    for y in -1..=32 {
        for x in -1..=32 {
            pts.push_point(f64::from(x) * k, f64::from(y) * k).map_err(|e| e.to_string())?;
        }
    }
    Ok((Arc::new(pts.finish()), Arc::new(zones.finish())))
}

/// The point join's fast path (`pip_join.masm`: contains, hits) and the general loop with
/// the boundary in play (contains and touches over every candidate).
fn programs() -> Vec<VerifiedProgram> {
    let general = ".program scaled\n.input pts points\n.input zones polygons indexed\n.output inside hits\n\
                   .output edge hits\n    load g0, pts\n    probe c0, zones, g0\nnext:\n    cnext g1, c0, done\n    \
                   contains b0, g1, g0\n    jf b0, edge\n    emit inside, g1\nedge:\n    touches b1, g1, g0\n    \
                   jf b1, next\n    emit edge, g1\n    jmp next\ndone:\n    halt\n";
    let pip =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/pip_join.masm")).unwrap();
    vec![assemble("pip_join.masm", &pip).unwrap(), assemble("scaled.masm", general).unwrap()]
}

fn hits(
    e: &Engine,
    program: &VerifiedProgram,
    pts: &Arc<GeometryColumn>,
    zones: &Arc<GeometryColumn>,
) -> Vec<Vec<(u32, u32)>> {
    let p = e.prepare(program.program()).unwrap();
    let b =
        e.bind(&p, [("pts", Input::rows(pts.clone())), ("zones", Input::indexed(zones.clone()))]).unwrap();
    let r = e.run(p.job(&b)).unwrap();
    r.outputs()
        .map(|(_, o)| match o {
            OutputColumn::Hits(h) => h.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_join_gives_the_same_answer_at_every_power_of_two() {
    let engines = [
        ("interp", Engine::builder().mode(Mode::Cpu).workers(2).route(Route::Interpreter).build().unwrap()),
        ("jit", Engine::builder().mode(Mode::Cpu).workers(2).route(Route::Jit).build().unwrap()),
        (
            "gpu",
            Engine::builder()
                .mode(Mode::Gpu)
                .workers(1)
                .gpu_device(Arc::new(HostDevice::new(4, 8)))
                .build()
                .unwrap(),
        ),
    ];
    let programs = programs();
    let (pts, zones) = scaled(0).unwrap();
    let want: Vec<_> = programs.iter().map(|p| hits(&engines[0].1, p, &pts, &zones)).collect();
    // Scale 1 itself, against the plain floating-point crossing test (exact for these small
    // integers): inside points and boundary points both occur.
    assert!(
        want[0][0].len() > 300 && want[1][1].len() > 100,
        "{} inside, {} on an edge",
        want[0][0].len(),
        want[1][1].len()
    );
    assert_eq!(want[0][0], want[1][0], "the fast path and the general loop agree");
    let (mut ran, mut refused) = (0, 0);
    for e in -1074..=1023 {
        let (pts, zones) = match scaled(e) {
            Ok(columns) => columns,
            Err(why) => {
                // Only scales past the bound are refused, and they say so.
                assert!(32.0 * pow2(e) > MAX_COORD, "2^{e} refused: {why}");
                assert!(why.contains("1e150") || why.contains("range"), "2^{e}: {why}");
                refused += 1;
                continue;
            }
        };
        for (name, engine) in &engines {
            for (k, (program, want)) in programs.iter().zip(&want).enumerate() {
                // The emulated device is slow per job (host threads standing in for its
                // blocks): the point join at every scale, the general loop at every third.
                if *name == "gpu" && k == 1 && e % 3 != 0 {
                    continue;
                }
                let got = hits(engine, program, &pts, &zones);
                assert!(
                    &got == want,
                    "{name}, {} at 2^{e}: {:?} hits, want {:?}",
                    program.program().name(),
                    got.iter().map(Vec::len).collect::<Vec<_>>(),
                    want.iter().map(Vec::len).collect::<Vec<_>>()
                );
            }
        }
        ran += 1;
    }
    assert_eq!(ran + refused, 2098);
    assert!(ran > 1500, "{ran} scales ran");
}
