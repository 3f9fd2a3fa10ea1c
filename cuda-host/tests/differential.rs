//! The device interpreter against the CPU interpreter on random programs and random data: the
//! proptest program generator's GPU programs (every op the GPU runs, nested candidate loops,
//! forward jumps; in its dataflow flavour, values flowing from the data through every op to
//! the outputs), random columns of the declared kinds with nulls and empties, run through an
//! Engine whose GPU backend is the emulated device (the real megakernel as host C++, several
//! blocks, jobs split into several chunks). Dense outputs, hits and counts must be identical;
//! sums may differ only by the reassociation bound of their terms.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};

use common::{check, PROGRAMS, ROWS};
use meridian_cuda_host::HostDevice;
use meridian_runtime::{Engine, Mode};
use proptest::prelude::*;

fn gpu() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::builder()
            .mode(Mode::Gpu)
            .workers(1)
            .gpu_chunk_rows(7)
            .gpu_device(Arc::new(HostDevice::new(3, 8)))
            .build()
            .unwrap()
    })
}

#[test]
fn gpu_programs_give_the_cpu_interpreters_results() {
    let config = ProptestConfig { cases: 192, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&any::<u64>(), |seed| check(gpu(), seed));
    let _ = writeln!(
        std::io::stderr(),
        "device differential: {} random programs, {} rows compared with the CPU interpreter",
        PROGRAMS.load(Relaxed),
        ROWS.load(Relaxed)
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Programs that construct geometry (`affine`, `simplify`, chained, in candidate loops, moved
/// and selected between registers) and read what they built with every other op: each
/// construction in a slot of the thread's scratch, on the same emulated megakernel.
#[test]
fn constructive_programs_give_the_cpu_interpreters_results() {
    let config = ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let programs = std::sync::atomic::AtomicU64::new(0);
    let result = runner.run(&any::<u64>(), |seed| {
        programs.fetch_add(1, Relaxed);
        common::check_constructive(gpu(), seed)
    });
    let _ = writeln!(
        std::io::stderr(),
        "device differential (constructive): {} random programs compared with the CPU interpreter, {} of \
         them failing alike on both (`affine` out of range)",
        programs.load(Relaxed),
        common::BOTH_FAILED.load(Relaxed)
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Seeds that once found a difference, run on every CI run. 16973147502354698360: a candidate
/// loop whose branch after the `emit` tests the predicate's flag again (`jf b26, L1` with b26
/// true falls through into more work) was taken by the CPU's loop fusion for a plain filter,
/// skipping that work — the CPU, not the device, was wrong. 8625809817651925848,
/// 12054407587112116132, 13408282845089337552: sums of many terms a row (a `sum` inside a
/// candidate loop) differing by association beyond a bound that counted one term a row — the
/// test's bound was wrong; it now counts the terms.
#[test]
fn seeds_that_found_bugs() {
    for seed in [
        16_973_147_502_354_698_360u64,
        8_625_809_817_651_925_848,
        12_054_407_587_112_116_132,
        13_408_282_845_089_337_552,
    ] {
        if let Err(e) = common::check(gpu(), seed) {
            panic!("seed {seed}: {e}");
        }
    }
}
