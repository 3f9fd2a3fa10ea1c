//! A program file, read and verified: bytecode when it starts with the container's magic,
//! assembly otherwise (the extension does not decide). One loader for every front end — the
//! CLI, `meridian_run` in SQL — so a file means the same program, and fails with the same
//! words, everywhere.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{assemble, verify, DecodeError, Diagnostics, Program, VerifiedProgram, VerifyErrors, MAGIC};

/// The longest program file read. A container holds at most 2^16 instructions and 2^16
/// constants (about 1 MiB); assembly for as much, with comments, fits many times over. An
/// endless or huge file (`/dev/zero`) is refused after this many bytes instead of filling
/// memory.
pub const MAX_PROGRAM_FILE: u64 = 16 << 20;

/// Why a program file could not be loaded; each variant names the file.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Read(PathBuf, std::io::Error),
    /// The file is longer than any program ([`MAX_PROGRAM_FILE`]).
    TooLong(PathBuf),
    /// It starts with the magic but is not a well-formed container.
    Bytecode(PathBuf, DecodeError),
    /// Well-formed bytecode the verifier rejects.
    Invalid(PathBuf, VerifyErrors),
    /// Neither bytecode nor UTF-8 text.
    NotText(PathBuf),
    /// Assembly with errors (each diagnostic carries file:line:col).
    Assembly(Diagnostics),
}

impl LoadError {
    /// One line per error, each starting with the file (as the CLI prints them).
    pub fn lines(&self) -> Vec<String> {
        let at = |p: &Path, m: &dyn fmt::Display| format!("{}: error: {m}", p.display());
        match self {
            LoadError::Read(p, e) => vec![at(p, &format_args!("cannot read: {e}"))],
            LoadError::TooLong(p) => vec![at(
                p,
                &format_args!("longer than any program ({} MiB): not read past that", MAX_PROGRAM_FILE >> 20),
            )],
            LoadError::Bytecode(p, e) => vec![at(p, e)],
            LoadError::Invalid(p, errors) => errors.0.iter().map(|e| at(p, e)).collect(),
            LoadError::NotText(p) => vec![at(p, &"neither UTF-8 assembly nor meridian bytecode")],
            LoadError::Assembly(d) => d.0.iter().map(|d| d.to_string()).collect(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

impl std::error::Error for LoadError {}

/// The program in the file at `path`, verified.
///
/// ```
/// let path = std::env::temp_dir().join(format!("doc-load-{}.masm", std::process::id()));
/// std::fs::write(&path, ".program p\n.input s geometry\n.output a f64\n    load g0, s\n    area f0, g0\n    store a, f0\n    halt\n")?;
/// let program = meridian_bytecode::load(&path)?;
/// std::fs::write(&path, program.program().to_bytes())?; // the same program as bytecode
/// assert_eq!(meridian_bytecode::load(&path)?.program().hash(), program.program().hash());
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load(path: &Path) -> Result<VerifiedProgram, LoadError> {
    let bytes = read_program_file(path)?;
    if bytes.starts_with(&MAGIC) {
        let program = Program::from_bytes(&bytes).map_err(|e| LoadError::Bytecode(path.to_owned(), e))?;
        return verify(&program).map_err(|e| LoadError::Invalid(path.to_owned(), e));
    }
    let text = String::from_utf8(bytes).map_err(|_| LoadError::NotText(path.to_owned()))?;
    assemble(&path.display().to_string(), &text).map_err(LoadError::Assembly)
}

/// The bytes of a program file, at most [`MAX_PROGRAM_FILE`] of them (a pipe is read as it
/// comes; a longer file or an endless device is an error, read no further).
pub fn read_program_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let read = |e| LoadError::Read(path.to_owned(), e);
    let file = std::fs::File::open(path).map_err(read)?;
    if file.metadata().map_err(read)?.len() > MAX_PROGRAM_FILE {
        return Err(LoadError::TooLong(path.to_owned()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_PROGRAM_FILE + 1).read_to_end(&mut bytes).map_err(read)?;
    if bytes.len() as u64 > MAX_PROGRAM_FILE {
        return Err(LoadError::TooLong(path.to_owned()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    fn temp(name: &str, bytes: &[u8]) -> PathBuf {
        let p = std::env::temp_dir().join(format!("meridian-load-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn an_endless_or_overlong_file_is_refused_unread() {
        // /dev/zero would fill memory if read whole.
        if Path::new("/dev/zero").exists() {
            let e = load(Path::new("/dev/zero")).unwrap_err();
            assert!(matches!(e, LoadError::TooLong(_)), "{e}");
            assert_eq!(
                e.to_string(),
                "/dev/zero: error: longer than any program (16 MiB): not read past that"
            );
        }
        let p = temp("long.masm", b"");
        std::fs::File::options().write(true).open(&p).unwrap().set_len(MAX_PROGRAM_FILE + 1).unwrap();
        assert!(matches!(load(&p), Err(LoadError::TooLong(_))));
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn every_failure_names_the_file_and_what_is_wrong() {
        let missing = Path::new("/no/such/program.masm");
        let e = load(missing).unwrap_err().to_string();
        assert!(e.starts_with("/no/such/program.masm: error: cannot read:"), "{e}");

        let good = crate::assemble(
            "g",
            ".program g\n.input s geometry\n.output a f64\n    load g0, s\n    area f0, g0\n    store a, f0\n    halt\n",
        )
        .unwrap();
        let mut bytes = good.program().to_bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let p = temp("damaged.bin", &bytes);
        assert!(matches!(load(&p), Err(LoadError::Bytecode(..))));
        assert!(load(&p).unwrap_err().to_string().starts_with(&format!("{}: error: ", p.display())));

        let p = temp("binary.masm", &[0xff, 0xfe, 0x00]);
        assert!(load(&p).unwrap_err().to_string().ends_with("neither UTF-8 assembly nor meridian bytecode"));

        let p = temp("bad.masm", b".program bad\n.input a geometry\n    frobnicate g0\n");
        let e = load(&p).unwrap_err();
        assert!(matches!(e, LoadError::Assembly(_)));
        assert!(e.lines().iter().all(|l| l.starts_with(&p.display().to_string())), "{e}");
        assert!(e.to_string().contains("frobnicate"), "{e}");
        let _ = std::fs::remove_file(&p);
    }
}
