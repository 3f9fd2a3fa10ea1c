//! Assembler diagnostics: `FILE:LINE:COL: error: MESSAGE`, then the source line and a caret.

use std::fmt;

/// One problem in assembly source, with its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name as given to [`assemble`](crate::assemble).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
    /// How many characters the caret underlines (at least 1).
    pub len: u32,
    /// What is wrong.
    pub message: String,
    /// The text of the line, for the caret display.
    pub source_line: String,
}

impl Diagnostic {
    /// The first line alone: `FILE:LINE:COL: error: MESSAGE`.
    pub fn headline(&self) -> String {
        format!("{}:{}:{}: error: {}", self.file, self.line, self.col, self.message)
    }
}

impl fmt::Display for Diagnostic {
    /// The headline, the source line, and a caret under the problem. Tabs before the column
    /// are kept so the caret lines up in a terminal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.headline())?;
        writeln!(f, "{}", self.source_line)?;
        let pad: String = self
            .source_line
            .chars()
            .take(self.col.saturating_sub(1) as usize)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "{pad}^{}", "~".repeat(self.len.saturating_sub(1) as usize))
    }
}

/// Every problem found in one assembly run, in source order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
