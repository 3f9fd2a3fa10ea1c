//! Untrusted text through the assembler. Whatever assembles must disassemble and re-assemble
//! to the same bytes; whatever fails must fail with located diagnostics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_bytecode::{assemble, disassemble};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match assemble("fuzz.masm", text) {
        Ok(program) => {
            let dis = disassemble(program.program()).expect("an assembled program disassembles");
            let again = assemble("dis.masm", &dis).expect("a disassembly re-assembles");
            assert_eq!(again.program().to_bytes(), program.program().to_bytes());
        }
        Err(diags) => {
            assert!(!diags.0.is_empty());
            for d in &diags.0 {
                assert!(d.line >= 1 && d.col >= 1);
                let _ = d.to_string();
            }
        }
    }
});
