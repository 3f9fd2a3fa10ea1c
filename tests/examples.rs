//! The example programs: golden disassembly, byte-identical round trips, and the CLI on them.
//!
//! Regenerate the golden files with `MERIDIAN_UPDATE_GOLDEN=1 cargo test --test examples`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::Command;

use meridian::bytecode::{assemble, disassemble, Program};

const EXAMPLES: [&str; 5] = ["measure", "bounds", "pip_join", "near", "moved"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn example(name: &str) -> (PathBuf, String) {
    let path = root().join("examples").join(format!("{name}.masm"));
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

#[test]
fn golden_disassembly() {
    for name in EXAMPLES {
        let (path, text) = example(name);
        let program = assemble(&path.display().to_string(), &text).unwrap();
        let dis = disassemble(program.program()).unwrap();
        let golden = root().join("tests/golden").join(format!("{name}.dis"));
        if std::env::var_os("MERIDIAN_UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &dis).unwrap();
        }
        let expected =
            std::fs::read_to_string(&golden).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        assert_eq!(dis, expected, "disassembly of {name} changed");
        // The disassembly re-assembles to the same bytes, and its own disassembly is itself.
        let again = assemble("dis.masm", &dis).unwrap();
        assert_eq!(again.program().to_bytes(), program.program().to_bytes(), "{name}");
        assert_eq!(disassemble(again.program()).unwrap(), dis);
    }
}

#[test]
fn examples_survive_the_container() {
    for name in EXAMPLES {
        let (path, text) = example(name);
        let program = assemble(&path.display().to_string(), &text).unwrap();
        let bytes = program.program().to_bytes();
        assert_eq!(&Program::from_bytes(&bytes).unwrap(), program.program());
    }
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meridian-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn meridian(args: &[&std::ffi::OsStr]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        // `meridian run` autotunes into the user's cache otherwise.
        .env("MERIDIAN_AUTOTUNE", "off")
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked") && !run.stderr.contains("stack backtrace"), "{}", run.stderr);
    run
}

fn os(s: &impl AsRef<std::ffi::OsStr>) -> &std::ffi::OsStr {
    s.as_ref()
}

#[test]
fn cli_asm_disasm_verify_round_trip() {
    let dir = scratch("roundtrip");
    for name in EXAMPLES {
        let (path, _) = example(name);
        let mbc = dir.join(format!("{name}.mbc"));
        let run = meridian(&[os(&"asm"), os(&path), os(&"-o"), os(&mbc)]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout.starts_with(&format!("wrote {}", mbc.display())), "{}", run.stdout);

        let run = meridian(&[os(&"verify"), os(&mbc)]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout.contains(": ok, program"), "{}", run.stdout);
        let run = meridian(&[os(&"verify"), os(&path)]);
        assert_eq!(run.code, 0, "{}", run.stderr);

        let run = meridian(&[os(&"disasm"), os(&mbc)]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let golden =
            std::fs::read_to_string(root().join("tests/golden").join(format!("{name}.dis"))).unwrap();
        assert_eq!(run.stdout, golden);

        // asm of the disassembly gives the same bytes.
        let dis = dir.join(format!("{name}.dis.masm"));
        std::fs::write(&dis, &run.stdout).unwrap();
        let again = dir.join(format!("{name}.again.mbc"));
        assert_eq!(meridian(&[os(&"asm"), os(&dis), os(&"-o"), os(&again)]).code, 0);
        assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&mbc).unwrap());
    }
}

#[test]
fn cli_asm_defaults_the_output_path() {
    let dir = scratch("default-out");
    let src = dir.join("m.masm");
    std::fs::copy(example("measure").0, &src).unwrap();
    assert_eq!(meridian(&[os(&"asm"), os(&src)]).code, 0);
    assert!(dir.join("m.mbc").exists());
}

#[test]
fn cli_reports_assembly_errors_with_locations_and_exit_2() {
    let dir = scratch("asm-errors");
    let src = dir.join("bad.masm");
    std::fs::write(
        &src,
        ".program p\n.input pts points\n.output o hits\n    frob g0\n    load f0, pts\n    jmp nowhere\n",
    )
    .unwrap();
    let run = meridian(&[os(&"asm"), os(&src)]);
    assert_eq!(run.code, 2);
    let headlines: Vec<&str> = run.stderr.lines().filter(|l| l.contains(": error: ")).collect();
    let at = src.display().to_string();
    assert_eq!(headlines.len(), 3, "{}", run.stderr);
    assert!(headlines[0].starts_with(&format!("{at}:4:5: error: unknown mnemonic `frob`")), "{}", run.stderr);
    assert!(headlines[1].starts_with(&format!("{at}:5:10: error: operand 1 of `load` must be a g register")));
    assert!(headlines[2].starts_with(&format!("{at}:6:9: error: undefined label `nowhere`")));
    assert!(run.stderr.contains("\n    ^~~~\n"), "caret line missing:\n{}", run.stderr);
    assert!(!dir.join("bad.mbc").exists(), "no output is written for a bad program");
}

#[test]
fn cli_rejects_bad_bytecode_with_exit_2() {
    let dir = scratch("bad-mbc");
    let (path, text) = example("pip_join");
    let bytes = assemble(&path.display().to_string(), &text).unwrap().program().to_bytes();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated.mbc", bytes[..bytes.len() / 2].to_vec(), "truncated"),
        ("magic.mbc", [b"XXXX".as_slice(), &bytes[4..]].concat(), "not a meridian program"),
        ("version.mbc", [&bytes[..4], &[9u8, 0], &bytes[6..]].concat(), "unsupported format version 9"),
        (
            "flipped.mbc",
            {
                let mut b = bytes.clone();
                let n = b.len() - 40;
                b[n] ^= 1;
                b
            },
            "content hash mismatch",
        ),
        ("empty.mbc", Vec::new(), "not a meridian program"),
    ];
    for (file, content, needle) in cases {
        let p = dir.join(file);
        std::fs::write(&p, content).unwrap();
        let run = meridian(&[os(&"disasm"), os(&p)]);
        assert_eq!(run.code, 2, "{file}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{file}: one line per problem:\n{}", run.stderr);
        assert!(run.stderr.contains(needle), "{file}: {}", run.stderr);
        assert!(run.stderr.starts_with(&format!("{}: error: byte offset", p.display())), "{}", run.stderr);
    }
}

#[test]
fn cli_verify_reports_every_problem_of_bytecode() {
    let dir = scratch("verify-mbc");
    let (path, text) = example("pip_join");
    let p = assemble(&path.display().to_string(), &text).unwrap().program().clone();
    let mut code = p.code().to_vec();
    code[0] = 0xee;
    let last = code.len() - 1;
    code[last] = code[2]; // the cnext: the program now runs off its end
    let broken = Program::new(p.name(), p.inputs().to_vec(), p.outputs().to_vec(), vec![], code).unwrap();
    let file = dir.join("broken.mbc");
    std::fs::write(&file, broken.to_bytes()).unwrap();
    let run = meridian(&[os(&"verify"), os(&file)]);
    assert_eq!(run.code, 2);
    // Three problems, one line each: the bad word, the fall-through, and the copied
    // `cnext` whose exit (pc 7, itself) is not forward.
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stderr);
    assert!(lines[0].ends_with("error: pc 0: unknown opcode 0xee"), "{}", lines[0]);
    assert!(lines[1]
        .ends_with("error: pc 7: control can run past the last instruction; end every path with `halt`"));
    assert!(lines[2].contains("error: pc 7, operand 3: `cnext` must exit forward"), "{}", lines[2]);
}

#[test]
fn cli_input_problems_exit_2_without_a_backtrace() {
    let dir = scratch("inputs");
    let missing = dir.join("missing.masm");
    let run = meridian(&[os(&"verify"), os(&missing)]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.starts_with(&format!("{}: error: cannot read", missing.display())), "{}", run.stderr);

    let binary = dir.join("binary.masm");
    std::fs::write(&binary, [0xffu8, 0xfe, 0x00]).unwrap();
    let run = meridian(&[os(&"verify"), os(&binary)]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not UTF-8 text"), "{}", run.stderr);

    let run = meridian(&[os(&"verify"), os(&dir)]);
    assert_eq!(run.code, 2, "a directory is not a program");

    let run = meridian(&[os(&"frobnicate")]);
    assert_eq!(run.code, 2);
    let run = meridian(&[os(&"asm")]);
    assert_eq!(run.code, 2);
    let run = meridian(&[os(&"--help")]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("asm") && run.stdout.contains("disasm") && run.stdout.contains("verify"));
}

#[test]
fn cli_asm_never_overwrites_its_source() {
    let dir = scratch("overwrite");
    let src = dir.join("looks_like.mbc");
    std::fs::copy(example("measure").0, &src).unwrap();
    let before = std::fs::read(&src).unwrap();
    let run = meridian(&[os(&"asm"), os(&src)]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("would overwrite the source"), "{}", run.stderr);
    assert_eq!(std::fs::read(&src).unwrap(), before);
}

/// `meridian run --route jit` and `--route interp` write byte-identical files for every
/// example program, and each says which route ran.
#[test]
fn every_example_writes_the_same_files_on_the_jit_and_interpreter_routes() {
    let dir = scratch("routes");
    // A few thousand places keep the debug build quick; every family of the countries.
    let text = String::from_utf8(
        std::io::Read::bytes(flate2::read::GzDecoder::new(
            std::fs::File::open(root().join("data/cities.csv.gz")).unwrap(),
        ))
        .take(200_000)
        .map(Result::unwrap)
        .collect(),
    )
    .unwrap();
    let cut = text.rfind('\n').unwrap();
    let places = dir.join("places.csv");
    std::fs::write(&places, &text[..=cut]).unwrap();
    let countries = root().join("data/countries.geojson");
    for name in EXAMPLES {
        let (path, _) = example(name);
        let inputs: Vec<(&str, &Path)> = match name {
            "pip_join" => vec![("pts", &places), ("zones", &countries)],
            "near" => vec![("pts", &places), ("sites", &places)],
            _ => vec![("shapes", &countries)],
        };
        let mut outs = Vec::new();
        for route in ["interp", "jit"] {
            let out = dir.join(format!("{name}-{route}"));
            let mut args = vec![os(&"run"), os(&path), os(&"--route"), os(&route), os(&"--mode"), os(&"cpu")];
            let specs: Vec<String> = inputs.iter().map(|(n, p)| format!("{n}={}", p.display())).collect();
            for spec in &specs {
                args.extend([os(&"-i"), os(spec)]);
            }
            args.extend([os(&"--out"), os(&out)]);
            let run = meridian(&args);
            assert_eq!(run.code, 0, "{name} --route {route}: {}", run.stderr);
            assert!(run.stdout.contains(&format!("route: {route} (asked: {route}")), "{}", run.stdout);
            outs.push(out);
        }
        let mut files: Vec<_> =
            std::fs::read_dir(&outs[0]).unwrap().map(|e| e.unwrap().file_name()).collect();
        files.sort();
        assert!(!files.is_empty(), "{name} wrote nothing");
        for file in files {
            let a = std::fs::read(outs[0].join(&file)).unwrap();
            let b = std::fs::read(outs[1].join(&file)).unwrap();
            assert!(a == b, "{name}: {file:?} differs between the interpreter and the JIT");
        }
    }
}
