//! `docs/bytecode.md` is checked against the op table: the generated ISA table must be
//! current, and every mnemonic must have a semantics section.
//!
//! Regenerate the table with `MERIDIAN_UPDATE_DOCS=1 cargo test --test docs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use meridian::bytecode::Opcode;

const BEGIN: &str = "<!-- isa-table:begin -->\n";
const END: &str = "<!-- isa-table:end -->";

fn doc_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/bytecode.md")
}

fn isa_table() -> String {
    let mut t = String::from("| opcode | assembly | description |\n|---|---|---|\n");
    for op in Opcode::ALL {
        t.push_str(&format!(
            "| `0x{:02x}` | `{}` | {} |\n",
            *op as u8,
            op.syntax(),
            op.doc().trim().replace('|', "\\|")
        ));
    }
    t
}

#[test]
fn isa_table_is_current() {
    let path = doc_path();
    let doc = std::fs::read_to_string(&path).expect("docs/bytecode.md is readable");
    let start = doc.find(BEGIN).expect("docs/bytecode.md has the isa-table:begin marker") + BEGIN.len();
    let end = doc.find(END).expect("docs/bytecode.md has the isa-table:end marker");
    let expected = isa_table();
    if doc[start..end] != expected {
        if std::env::var_os("MERIDIAN_UPDATE_DOCS").is_some() {
            let updated = format!("{}{}{}", &doc[..start], expected, &doc[end..]);
            std::fs::write(&path, updated).expect("docs/bytecode.md is writable");
            return;
        }
        panic!(
            "the ISA table in docs/bytecode.md is stale; run `MERIDIAN_UPDATE_DOCS=1 cargo test --test docs`"
        );
    }
}

#[test]
fn every_mnemonic_has_a_semantics_section() {
    let doc = std::fs::read_to_string(doc_path()).expect("docs/bytecode.md is readable");
    let missing: Vec<&str> = Opcode::ALL
        .iter()
        .map(|op| op.mnemonic())
        .filter(|m| !doc.contains(&format!("\n### `{m}`\n")))
        .collect();
    assert!(missing.is_empty(), "docs/bytecode.md has no `### `mnemonic`` section for: {missing:?}");
}

#[test]
fn every_overload_form_is_named_in_its_section() {
    // For mnemonics shared by several ops, the section must list the register files of its forms.
    let doc = std::fs::read_to_string(doc_path()).expect("docs/bytecode.md is readable");
    for op in Opcode::ALL {
        let shared = Opcode::ALL.iter().filter(|o| o.mnemonic() == op.mnemonic()).count();
        if shared == 1 || op.mnemonic() == "probe" {
            continue;
        }
        let head = format!("\n### `{}`\n", op.mnemonic());
        let section = doc.split(&head).nth(1).and_then(|s| s.split("\n### ").next()).unwrap_or("");
        assert!(section.contains("Forms:"), "section for `{}` does not list its forms", op.mnemonic());
    }
}
