//! The device sources against the op table: the committed ISA header is what the table
//! generates, every op the GPU runs has its case in the device interpreter (and no refused
//! op has one), and the NVRTC translation unit holds every source exactly once.
//!
//! `MERIDIAN_BLESS=1 cargo test -p meridian-kernels --test cuda_sources` rewrites the header.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::path::Path;

use meridian_bytecode::Opcode;
use meridian_kernels::cuda::{self, device_name, gpu_support, GpuSupport};

fn cuda_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/cuda"))
}

#[test]
fn the_committed_isa_header_is_what_the_table_generates() {
    let path = cuda_dir().join("isa.cuh");
    let want = cuda::isa_header();
    if std::env::var_os("MERIDIAN_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap();
    assert!(
        have == want,
        "kernels/cuda/isa.cuh is stale: the op table changed. Regenerate it with \
         `MERIDIAN_BLESS=1 cargo test -p meridian-kernels --test cuda_sources` and review the diff"
    );
    // The header is the one compiled in.
    let compiled = cuda::SOURCES.iter().find(|(n, _)| *n == "isa.cuh").unwrap().1;
    assert!(compiled == want, "rebuild: the crate embeds an older isa.cuh");
}

#[test]
fn every_op_the_gpu_runs_has_a_case_and_no_refused_op_does() {
    let interp = std::fs::read_to_string(cuda_dir().join("interp.cuh")).unwrap();
    let mut cases = Vec::new();
    for line in interp.lines() {
        let mut rest = line;
        while let Some(i) = rest.find("case MR_OP_") {
            let after = &rest[i + "case MR_OP_".len()..];
            let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            assert!(after[name.len()..].starts_with(':'), "odd case label in: {line}");
            cases.push(name);
            rest = &after[1..];
        }
    }
    let unique: BTreeSet<&String> = cases.iter().collect();
    assert_eq!(unique.len(), cases.len(), "an op has two cases: {cases:?}");
    let runs: BTreeSet<String> = Opcode::ALL
        .iter()
        .filter(|&&o| gpu_support(o) == GpuSupport::Runs)
        .map(|&o| device_name(o))
        .collect();
    let have: BTreeSet<String> = cases.into_iter().collect();
    let missing: Vec<_> = runs.difference(&have).collect();
    let extra: Vec<_> = have.difference(&runs).collect();
    assert!(missing.is_empty(), "ops the GPU runs without a case in interp.cuh: {missing:?}");
    assert!(extra.is_empty(), "cases for ops listed as refused (or unknown): {extra:?}");
    for &op in Opcode::ALL {
        if let GpuSupport::Refused(why) = gpu_support(op) {
            assert!(!why.is_empty());
        }
    }
}

#[test]
fn the_translation_unit_holds_every_source_once_and_no_local_include() {
    let tu = cuda::megakernel_source();
    for (name, text) in cuda::SOURCES {
        assert_eq!(tu.matches(&format!("// ---- {name} ----")).count(), 1, "{name}");
        // Every source's first line (its title comment) is in the unit.
        let first = text.lines().next().unwrap();
        assert!(tu.contains(first), "{name}");
    }
    assert!(!tu.lines().any(|l| l.trim_start().starts_with("#include \"")), "a local #include was left");
    assert!(tu.contains(&format!("MR_KERNEL void {}(", cuda::MEGAKERNEL)));
}
