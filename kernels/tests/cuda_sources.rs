//! The device sources against their Rust sources: the committed ISA header is what the op
//! table generates, the committed ABI header what the ABI's records generate, every op the GPU
//! runs is in the ISA header's list and every refused op has a reason, and the NVRTC
//! translation unit holds every source exactly once.
//!
//! The interpreter's dispatch needs no test here: `mr_step`'s cases are `MR_GPU_OPS` (the
//! generated list of the ops the GPU runs), and `mr_op` fails to compile for an op in it that
//! has no body. The C++ records are held to the generated sizes and offsets by `MR_CHECK_ABI()`
//! when the sources compile (`cargo test -p meridian-cuda-host`, NVRTC on a GPU).
//!
//! `MERIDIAN_BLESS=1 cargo test -p meridian-kernels --test cuda_sources` rewrites the headers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::path::Path;

use meridian_bytecode::Opcode;
use meridian_kernels::cuda::{self, device_name, gpu_support, GpuSupport};

fn cuda_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/cuda"))
}

/// The committed `name` is `want` (rewritten first under MERIDIAN_BLESS), and is what the
/// crate embeds.
fn check_generated(name: &str, want: &str, source: &str) {
    let path = cuda_dir().join(name);
    if std::env::var_os("MERIDIAN_BLESS").is_some() {
        std::fs::write(&path, want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap();
    assert!(
        have == want,
        "kernels/cuda/{name} is stale: {source} changed. Regenerate it with \
         `MERIDIAN_BLESS=1 cargo test -p meridian-kernels --test cuda_sources` and review the diff"
    );
    // The header is the one compiled in.
    let compiled = cuda::SOURCES.iter().find(|(n, _)| *n == name).unwrap().1;
    assert!(compiled == want, "rebuild: the crate embeds an older {name}");
}

#[test]
fn the_committed_isa_header_is_what_the_table_generates() {
    check_generated("isa.cuh", &cuda::isa_header(), "the op table");
}

#[test]
fn the_committed_abi_header_is_what_the_records_generate() {
    check_generated("abi_gen.cuh", &cuda::abi_header(), "the device ABI (meridian_kernels::cuda::abi)");
}

#[test]
fn the_gpu_runs_exactly_the_supported_ops_and_refused_ops_say_why() {
    // MR_GPU_OPS, from which mr_step's cases are made, lists the ops gpu_support runs.
    let isa = cuda::isa_header();
    let list = isa.lines().find_map(|l| l.strip_prefix("#define MR_GPU_OPS(apply)")).unwrap();
    let listed: Vec<&str> = list
        .split_whitespace()
        .map(|x| x.strip_prefix("apply(").unwrap().strip_suffix(')').unwrap())
        .collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "an op is listed twice: {listed:?}");
    let runs: BTreeSet<String> = Opcode::ALL
        .iter()
        .filter(|&&o| gpu_support(o) == GpuSupport::Runs)
        .map(|&o| device_name(o))
        .collect();
    let have: BTreeSet<String> = unique.into_iter().map(str::to_owned).collect();
    assert_eq!(have, runs);
    for &op in Opcode::ALL {
        if let GpuSupport::Refused(why) = gpu_support(op) {
            assert!(!why.is_empty());
        }
    }
}

#[test]
fn the_abi_records_list_their_fields_in_declaration_order() {
    for r in cuda::abi::RECORDS {
        let offsets: Vec<usize> = r.fields.iter().map(|(_, at)| *at).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{}: fields out of order: {:?}", r.device, r.fields);
        assert_eq!(offsets.first(), Some(&0), "{}", r.device);
        assert!(offsets.last().is_some_and(|&l| l < r.size), "{}", r.device);
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
