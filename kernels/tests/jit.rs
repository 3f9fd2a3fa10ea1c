//! The JIT against the interpreter (the oracle): the proptest program generator's programs
//! (every op, nested candidate loops, forward jumps, geometry outputs; the dataflow flavour
//! computing from the data through every op) on random columns with nulls and empties. Dense
//! values and validity, geometry outputs, hits, counts and sums must be identical — same
//! bits, NaN payloads aside — in one chunk and split into chunks, and with hit capacity 1 the
//! overflow report must be too.
#![cfg(feature = "jit")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

#[path = "../../cuda-host/src/data.rs"]
#[allow(missing_docs, dead_code)]
mod data;
#[path = "../../bytecode/tests/gen/mod.rs"]
mod gen;

use std::ops::Range;
use std::sync::Arc;

use data::Rng;
use meridian_bytecode::VerifiedProgram;
use meridian_kernels::interp::{BoundInputs, Interpreter, OutputBuffers, Scratch};
use meridian_kernels::jit::{JitCache, JitProgram};
use proptest::prelude::*;

/// Everything a run leaves observable: the outputs (or the overflow) and the hits produced.
fn observe(out: &OutputBuffers) -> String {
    match out.finish() {
        Ok(cols) => format!("{cols:?}"),
        Err(e) => format!("{e} after {} hits", out.hits_produced()),
    }
}

/// Runs `rows` in chunks of `chunk` rows with either route.
fn run(
    program: &VerifiedProgram,
    jit: Option<&JitProgram>,
    bound: &BoundInputs,
    rows: Range<usize>,
    chunk: usize,
    capacity: usize,
) -> String {
    let interp = Interpreter::new(program);
    let out = interp.output_buffers(rows.clone(), capacity);
    let mut scratch = Scratch::new();
    let mut at = rows.start;
    while at < rows.end {
        let end = (at + chunk).min(rows.end);
        let r = match jit {
            Some(j) => j.run(bound, at..end, &out, &mut scratch),
            None => interp.run(bound, at..end, &out, &mut scratch),
        };
        if let Err(e) = r {
            return format!("error: {e}");
        }
        at = end;
    }
    observe(&out)
}

fn compare(program: VerifiedProgram, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng(seed ^ 0x5eed);
    let rows = 1 + rng.below(60) as usize;
    let bound = BoundInputs::bind(program.program(), data::inputs(&program, &mut rng, rows, 30)).unwrap();
    let jit = JitProgram::compile(&program).unwrap();
    let text = meridian_bytecode::disassemble(program.program()).unwrap();
    let chunk = 1 + rng.below(rows as u64) as usize;
    for (chunk, capacity) in [(rows, 1 << 16), (chunk, 1 << 16), (rows, 1)] {
        let want = run(&program, None, &bound, 0..rows, chunk, capacity);
        let got = run(&program, Some(&jit), &bound, 0..rows, chunk, capacity);
        prop_assert_eq!(&got, &want, "chunks of {} rows, capacity {}\n{}", chunk, capacity, text);
    }
    Ok(())
}

#[test]
fn jit_gives_the_interpreters_results_on_random_programs() {
    let config = ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&any::<u64>(), |seed| {
        compare(gen::random_dataflow_program(seed, false), seed)?;
        compare(gen::random_program(seed), seed)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn the_cache_compiles_once_per_program() {
    let cache = JitCache::new();
    let a = gen::random_program(1);
    let (first, fresh) = cache.get(&a);
    assert!(fresh);
    let (again, fresh) = cache.get(&a);
    assert!(!fresh);
    assert!(Arc::ptr_eq(&first.unwrap(), &again.unwrap()));
    let _ = cache.get(&gen::random_program(2));
    assert_eq!(cache.len(), 2);
}
