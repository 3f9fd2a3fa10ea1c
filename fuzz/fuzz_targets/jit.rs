//! The JIT against the interpreter on untrusted programs: the first byte picks where the
//! program comes from — the proptest generator's programs from the next 8 bytes as a seed
//! (every op, nested candidate loops, geometry outputs), or the bytes themselves as an
//! `.mbc` container, re-sealed, taken if it verifies — and the next 8 bytes seed random
//! columns with nulls and empties. Both routes must give identical outputs (or the same
//! error), in one chunk, in chunks, and with hit capacity 1.
#![no_main]

#[path = "../../bytecode/tests/gen/mod.rs"]
#[allow(dead_code, unused)]
mod gen;
#[path = "../../cuda-host/src/data.rs"]
#[allow(dead_code, missing_docs, unused)]
mod data;

use libfuzzer_sys::fuzz_target;
use meridian_bytecode::{reseal, verify, Program, VerifiedProgram};
use meridian_kernels::interp::{BoundInputs, Interpreter, Scratch};
use meridian_kernels::jit::JitProgram;

fn seed(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    for (d, s) in b.iter_mut().zip(bytes) {
        *d = *s;
    }
    u64::from_le_bytes(b)
}

fn program(data: &[u8]) -> Option<(VerifiedProgram, u64)> {
    let (&mode, rest) = data.split_first()?;
    match mode % 3 {
        0 => Some((gen::random_program(seed(rest)), seed(rest.get(8..).unwrap_or(&[])))),
        1 => Some((gen::random_dataflow_program(seed(rest), false), seed(rest.get(8..).unwrap_or(&[])))),
        _ => {
            let mut bytes = rest.to_vec();
            reseal(&mut bytes);
            let verified = verify(&Program::from_bytes(&bytes).ok()?).ok()?;
            Some((verified, seed(rest)))
        }
    }
}

fn run(p: &VerifiedProgram, jit: Option<&JitProgram>, bound: &BoundInputs, rows: usize, chunk: usize, cap: usize) -> String {
    let interp = Interpreter::new(p);
    let out = interp.output_buffers(0..rows, cap);
    let mut scratch = Scratch::new();
    let mut at = 0;
    while at < rows {
        let end = (at + chunk).min(rows);
        let r = match jit {
            Some(j) => j.run(bound, at..end, &out, &mut scratch),
            None => interp.run(bound, at..end, &out, &mut scratch),
        };
        if let Err(e) = r {
            return format!("error: {e}");
        }
        at = end;
    }
    match out.finish() {
        Ok(cols) => format!("{cols:?}"),
        Err(e) => format!("{e} after {} hits", out.hits_produced()),
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Some((program, seed)) = program(bytes) else { return };
    let mut rng = data::Rng(seed);
    let rows = 1 + rng.below(40) as usize;
    let inputs = data::inputs(&program, &mut rng, rows, 20);
    let Ok(bound) = BoundInputs::bind(program.program(), inputs) else { return };
    let jit = JitProgram::compile(&program).expect("every verified program compiles");
    let chunk = 1 + rng.below(rows as u64) as usize;
    for (chunk, cap) in [(rows, 1 << 16), (chunk, 1 << 16), (rows, 1)] {
        let want = run(&program, None, &bound, rows, chunk, cap);
        let got = run(&program, Some(&jit), &bound, rows, chunk, cap);
        assert_eq!(got, want, "chunks of {chunk}, capacity {cap}");
    }
});
