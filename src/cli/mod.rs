//! Subcommands of the `meridian` program, one module per family.

pub mod autotune;
pub mod bench;
pub mod bytecode;
pub mod convert;
pub mod demo;
pub mod gen;
pub mod run;

use std::io::Write;

/// A failed command: the lines to print on stderr and the exit status.
#[derive(Debug)]
pub struct Failure {
    /// One line per problem (a line may carry a caret display below it).
    pub lines: Vec<String>,
    /// The process exit status.
    pub code: u8,
}

impl Failure {
    /// Bad input or usage: exit status 2.
    pub fn input(lines: impl IntoIterator<Item = String>) -> Failure {
        Failure { lines: lines.into_iter().collect(), code: 2 }
    }

    /// Prints the lines to stderr, ignoring a closed stderr.
    pub fn report(&self) {
        let mut err = std::io::stderr().lock();
        for line in &self.lines {
            let _ = writeln!(err, "{line}");
        }
    }
}

/// Writes to stdout; a closed pipe (`meridian disasm x.mbc | head`) ends output quietly
/// instead of panicking as `println!` would.
pub fn print(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
