//! The disassembler: a program back to assembly text that re-assembles to the same bytes.
//!
//! Labels are generated (`L0`, `L1`, ... in code order) because names of labels do not survive
//! assembly; constants are printed inline as literals, which rebuilds the canonical pool.
//! Columns are aligned per program: names to the longest input or output name, operands to
//! the longest mnemonic used.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::operand::OperandKind;
use crate::program::Program;
use crate::word::{InstrError, RawInstr};

/// A code word that does not decode, found while disassembling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pc {pc}: {error}")]
pub struct DisasmError {
    /// The instruction index.
    pub pc: u32,
    /// Why it does not decode.
    pub error: InstrError,
}

/// Formats a constant so that the assembler reads back the same bits.
pub(crate) fn format_float(v: f64) -> String {
    if v.is_nan() {
        "nan".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        // Debug prints the shortest text that parses back to the same value, always with a
        // `.` or an exponent, and keeps the sign of -0.0.
        format!("{v:?}")
    }
}

/// Disassembles a program. Every word must decode; operands out of range (possible only in a
/// program that fails verification) are printed as `?in3`, `?out3`, `?k3` or `?@3`.
///
/// ```
/// let p = meridian_bytecode::assemble("m.masm", "
/// .program m
/// .input shapes geometry
/// .output area f64
///   load g0, shapes
///   area f0, g0
///   store area, f0
///   halt").unwrap();
/// assert_eq!(meridian_bytecode::disassemble(p.program()).unwrap(), "\
/// .program m
/// .input  shapes geometry
/// .output area   f64
///     load  g0, shapes
///     area  f0, g0
///     store area, f0
///     halt
/// ");
/// ```
pub fn disassemble(program: &Program) -> Result<String, DisasmError> {
    let code: Vec<RawInstr> = program
        .code()
        .iter()
        .enumerate()
        .map(|(pc, &w)| RawInstr::decode(w).map_err(|error| DisasmError { pc: pc as u32, error }))
        .collect::<Result<_, _>>()?;

    let mut labels: BTreeMap<u32, String> = BTreeMap::new();
    for raw in &code {
        for (kind, _, target) in raw.fields() {
            if kind == OperandKind::Jump && (target as usize) < code.len() {
                labels.insert(target, String::new());
            }
        }
    }
    for (i, name) in labels.values_mut().enumerate() {
        *name = format!("L{i}");
    }

    let mut out = String::new();
    let names =
        program.inputs().iter().map(|d| d.name.len()).chain(program.outputs().iter().map(|d| d.name.len()));
    let name_width = names.max().unwrap_or(0);
    let _ = writeln!(out, ".program {}", program.name());
    for d in program.inputs() {
        let _ = write!(out, ".input  {:name_width$} {}", d.name, d.kind);
        out.push_str(if d.indexed { " indexed\n" } else { "\n" });
    }
    for d in program.outputs() {
        let _ = writeln!(out, ".output {:name_width$} {}", d.name, d.kind);
    }

    let mnemonic_width = code
        .iter()
        .filter(|r| !r.operands().is_empty())
        .map(|r| r.opcode.mnemonic().len())
        .max()
        .unwrap_or(0);
    let konst =
        |i: u32| program.consts().get(i as usize).map_or_else(|| format!("?k{i}"), |v| format_float(*v));
    for (pc, raw) in code.iter().enumerate() {
        if let Some(label) = labels.get(&(pc as u32)) {
            let _ = writeln!(out, "{label}:");
        }
        let mut line = format!("    {}", raw.opcode.mnemonic());
        for (i, (kind, _, v)) in raw.fields().enumerate() {
            if i == 0 {
                let pad = mnemonic_width - raw.opcode.mnemonic().len() + 1;
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(", ");
            }
            let text = match kind {
                OperandKind::Reg { file, .. } => format!("{file}{v}"),
                OperandKind::Input { .. } => {
                    program.inputs().get(v as usize).map_or_else(|| format!("?in{v}"), |d| d.name.clone())
                }
                OperandKind::Output(_) => {
                    program.outputs().get(v as usize).map_or_else(|| format!("?out{v}"), |d| d.name.clone())
                }
                OperandKind::Const => konst(v),
                OperandKind::Matrix => {
                    (0..6).map(|k| konst(v.saturating_add(k))).collect::<Vec<_>>().join(", ")
                }
                OperandKind::Jump => labels.get(&v).cloned().unwrap_or_else(|| format!("?@{v}")),
            };
            line.push_str(&text);
        }
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}
