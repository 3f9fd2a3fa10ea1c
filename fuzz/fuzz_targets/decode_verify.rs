//! Untrusted bytes through the container decoder, the verifier and the disassembler.
//!
//! The first byte picks a mode: as given, or re-sealed (content hash recomputed) so that the
//! fuzzer reaches the checks behind the hash. Whatever verifies must disassemble, re-assemble,
//! and decode identically through the checked and unchecked decoders.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_bytecode::{assemble, disassemble, reseal, verify, Instr, Program};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        reseal(&mut bytes);
    }
    let program = match Program::from_bytes(&bytes) {
        Ok(program) => program,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert_eq!(program.to_bytes(), bytes, "decoding then encoding must give the same bytes");
    match verify(&program) {
        Ok(verified) => {
            for (&word, fast) in program.code().iter().zip(verified.instrs()) {
                assert_eq!(Instr::decode(word).ok(), Some(fast));
            }
            let text = disassemble(&program).expect("a verified program disassembles");
            let again = assemble("fuzz.masm", &text).expect("a disassembly re-assembles");
            assert_eq!(disassemble(again.program()).expect("re-disassembles"), text);
        }
        Err(errors) => {
            let _ = errors.to_string();
            let _ = disassemble(&program);
        }
    }
});
