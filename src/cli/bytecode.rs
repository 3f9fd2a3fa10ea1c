//! `meridian asm`, `meridian disasm` and `meridian verify`.

use std::io::Write;
use std::path::Path;

use meridian::bytecode::{assemble, disassemble, verify as verify_program, Program, VerifiedProgram, MAGIC};

use super::{print, Failure};

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    meridian::bytecode::read_program_file(path).map_err(|e| Failure::input(e.lines()))
}

fn assemble_file(path: &Path, bytes: Vec<u8>) -> Result<VerifiedProgram, Failure> {
    let text = String::from_utf8(bytes).map_err(|e| {
        Failure::input([format!(
            "{}: error: not UTF-8 text (invalid byte at offset {}), and not meridian bytecode",
            path.display(),
            e.utf8_error().valid_up_to()
        )])
    })?;
    assemble(&path.display().to_string(), &text)
        .map_err(|d| Failure::input(d.0.iter().map(|d| d.to_string())))
}

fn decode_file(path: &Path, bytes: &[u8]) -> Result<Program, Failure> {
    Program::from_bytes(bytes).map_err(|e| Failure::input([format!("{}: error: {e}", path.display())]))
}

fn summary(p: &VerifiedProgram) -> String {
    let program = p.program();
    format!(
        "program `{}`: {} inputs, {} outputs, {} constants, {} instructions, hash {}",
        program.name(),
        program.inputs().len(),
        program.outputs().len(),
        program.consts().len(),
        program.code().len(),
        p.hash().short()
    )
}

/// `meridian asm FILE.masm [-o FILE.mbc]`.
pub fn asm(path: &Path, output: Option<&Path>) -> Result<(), Failure> {
    let out = output.map_or_else(|| path.with_extension("mbc"), Path::to_path_buf);
    if out == path || meridian::kernels::io::same_file(&out, path) {
        return Err(Failure::input([format!(
            "{}: error: the output would overwrite the source; name another with -o",
            path.display()
        )]));
    }
    let program = assemble_file(path, read(path)?)?;
    let cannot = |e: std::io::Error| Failure::input([format!("{}: error: cannot write: {e}", out.display())]);
    let mut file = meridian::kernels::io::AtomicFile::create(&out).map_err(cannot)?;
    file.write_all(&program.program().to_bytes()).and_then(|()| file.commit()).map_err(cannot)?;
    print(&format!("wrote {}: {}\n", out.display(), summary(&program)));
    Ok(())
}

/// `meridian disasm FILE.mbc`.
pub fn disasm(path: &Path) -> Result<(), Failure> {
    let program = decode_file(path, &read(path)?)?;
    let text =
        disassemble(&program).map_err(|e| Failure::input([format!("{}: error: {e}", path.display())]))?;
    print(&text);
    Ok(())
}

/// `meridian verify FILE`: bytecode if it starts with the magic, assembly otherwise.
pub fn verify(path: &Path) -> Result<(), Failure> {
    let bytes = read(path)?;
    let program = if bytes.starts_with(&MAGIC) {
        let program = decode_file(path, &bytes)?;
        verify_program(&program).map_err(|errors| {
            Failure::input(errors.0.iter().map(|e| format!("{}: error: {e}", path.display())))
        })?
    } else {
        assemble_file(path, bytes)?
    };
    print(&format!("{}: ok, {}\n", path.display(), summary(&program)));
    Ok(())
}
