//! Property tests: random valid programs round-trip byte-identically through the container
//! and through assembly text; random and mutated bytes never panic the decoders, the verifier
//! or the disassembler.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use meridian_bytecode::{assemble, disassemble, reseal, verify, Instr, Opcode, Program, RawInstr};
use proptest::prelude::*;

mod gen;

use gen::{random_program, Rng};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn container_round_trip(seed in any::<u64>()) {
        let p = random_program(seed);
        let bytes = p.program().to_bytes();
        let decoded = Program::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&decoded, p.program());
        prop_assert_eq!(decoded.to_bytes(), bytes);
        prop_assert_eq!(decoded.hash(), p.hash());
    }

    #[test]
    fn text_round_trip(seed in any::<u64>()) {
        let p = random_program(seed);
        let text = disassemble(p.program()).unwrap();
        let again = match assemble("gen.masm", &text) {
            Ok(a) => a,
            Err(d) => return Err(TestCaseError::fail(format!("{d}\n--- text ---\n{text}"))),
        };
        prop_assert_eq!(again.program().to_bytes(), p.program().to_bytes());
        // And the text itself is a fixed point.
        prop_assert_eq!(disassemble(again.program()).unwrap(), text);
    }

    #[test]
    fn words_round_trip_and_decoders_agree(seed in any::<u64>()) {
        let p = random_program(seed);
        for (&word, fast) in p.program().code().iter().zip(p.instrs()) {
            let checked = Instr::decode(word).unwrap();
            prop_assert_eq!(checked, fast);
            prop_assert_eq!(checked.encode(), word);
            prop_assert_eq!(Instr::from_raw(&checked.to_raw()), checked);
        }
    }

    #[test]
    fn random_words_decode_or_fail_cleanly(word in any::<u64>()) {
        if let Ok(raw) = RawInstr::decode(word) {
            prop_assert_eq!(raw.encode(), word);
            prop_assert_eq!(Instr::decode(word).unwrap().encode(), word);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = bytes;
        if bytes.len() > 8 && bytes[0] % 2 == 0 {
            // Half the time, start like a real program so the header checks are passed.
            bytes[..4].copy_from_slice(b"MRDN");
            bytes[4..6].copy_from_slice(&1u16.to_le_bytes());
            reseal(&mut bytes);
        }
        if let Ok(p) = Program::from_bytes(&bytes) {
            if let Err(e) = verify(&p) {
                let _ = e.to_string();
            }
            let _ = disassemble(&p);
        }
    }

    #[test]
    fn mutated_programs_never_panic(seed in any::<u64>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let p = random_program(seed);
        let mut bytes = p.program().to_bytes();
        let body = bytes.len() - 32;
        for (at, bits) in flips {
            bytes[at % body] ^= bits.max(1);
        }
        prop_assert!(Program::from_bytes(&bytes).is_err(), "a flipped byte must break the hash");
        reseal(&mut bytes);
        if let Ok(mutated) = Program::from_bytes(&bytes) {
            if let Ok(v) = verify(&mutated) {
                // Whatever verifies must also disassemble, and its words decode consistently.
                disassemble(v.program()).unwrap();
                for (&w, fast) in v.program().code().iter().zip(v.instrs()) {
                    prop_assert_eq!(Instr::decode(w).unwrap(), fast);
                }
            } else if let Err(e) = verify(&mutated) {
                let _ = e.to_string();
                let _ = disassemble(&mutated);
            }
        }
    }

    #[test]
    fn random_code_never_panics_the_verifier(seed in any::<u64>(), words in proptest::collection::vec(any::<u64>(), 0..64)) {
        // A valid signature with random code: the verifier must reject or accept, not panic.
        let p = random_program(seed);
        let mut rng = Rng(seed);
        // Bias words towards real opcodes with small fields, so deeper checks are reached.
        let words: Vec<u64> = words
            .into_iter()
            .map(|w| {
                if rng.chance(70) {
                    let op = Opcode::ALL[rng.below(Opcode::ALL.len() as u64) as usize] as u64;
                    op | ((w & 0x0707_0707) << 8) | ((w >> 40) % 80) << 32
                } else {
                    w
                }
            })
            .collect();
        let q = Program::new(p.program().name(), p.program().inputs().to_vec(), p.program().outputs().to_vec(),
            p.program().consts().to_vec(), words).unwrap();
        match verify(&q) {
            Ok(v) => {
                let text = disassemble(v.program()).unwrap();
                assemble("random.masm", &text).unwrap();
            }
            // Formatting the errors must not panic either (it once overflowed).
            Err(errors) => prop_assert!(!errors.to_string().is_empty()),
        }
    }

    #[test]
    fn random_text_never_panics_the_assembler(lines in proptest::collection::vec(line_strategy(), 0..24)) {
        let text = lines.join("\n");
        if let Err(d) = assemble("soup.masm", &text) {
            for diag in d.0 {
                prop_assert!(diag.line >= 1 && diag.col >= 1);
                let _ = diag.to_string();
            }
        }
    }
}

/// Lines assembled from plausible tokens, so the parser's deeper paths are reached.
fn line_strategy() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just(".program p".to_owned()),
        Just(".input pts points".to_owned()),
        Just(".input z polygons indexed".to_owned()),
        Just(".output o hits".to_owned()),
        Just(".output n count".to_owned()),
        Just(".const k 2.5".to_owned()),
        proptest::sample::select(Opcode::ALL.iter().map(|o| o.mnemonic().to_owned()).collect::<Vec<_>>()),
        Just("f0".to_owned()),
        Just("g1".to_owned()),
        Just("b2".to_owned()),
        Just("c0".to_owned()),
        Just("f999".to_owned()),
        Just("pts".to_owned()),
        Just("z".to_owned()),
        Just("o".to_owned()),
        Just("n".to_owned()),
        Just("k".to_owned()),
        Just("L".to_owned()),
        Just("L:".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("; c".to_owned()),
        Just("-1e-3".to_owned()),
        Just("nan".to_owned()),
        Just("-inf".to_owned()),
        Just("1e999".to_owned()),
        Just("é".to_owned()),
        Just("\t".to_owned()),
        Just(".".to_owned()),
        Just("-".to_owned()),
        Just("1.".to_owned()),
        "[ -~]{0,6}",
    ];
    proptest::collection::vec(token, 0..8).prop_map(|t| t.join(" "))
}

#[test]
fn generator_covers_every_op() {
    // The round-trip properties are only as good as the programs they see.
    let mut seen = std::collections::HashSet::new();
    for seed in 0..400 {
        for i in random_program(seed).instrs() {
            seen.insert(i.opcode());
        }
    }
    let missing: Vec<_> = Opcode::ALL.iter().filter(|o| !seen.contains(o)).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
    // The GPU flavour covers every op the GPU runs, and nothing else.
    let mut gpu_seen = std::collections::HashSet::new();
    for seed in 0..400 {
        for i in gen::random_gpu_program(seed).instrs() {
            gpu_seen.insert(i.opcode());
        }
    }
    let refused = [Opcode::Affine, Opcode::Simplify, Opcode::StoreG];
    let gpu_missing: Vec<_> =
        Opcode::ALL.iter().filter(|o| !refused.contains(o) && !gpu_seen.contains(o)).collect();
    assert!(gpu_missing.is_empty(), "never generated for the GPU: {gpu_missing:?}");
    assert!(refused.iter().all(|o| !gpu_seen.contains(o)));
}
