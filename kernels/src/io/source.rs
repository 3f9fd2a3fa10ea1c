//! Opening an input once: what its path names (a regular file, a pipe, or something refused),
//! and, at the end of a read, whether the file changed under it. A result is never reported
//! over fewer rows than the file held when its read started: a file that shrinks, grows or is
//! rewritten while it is read is an error naming it and the byte where the two differ.

use std::cell::Cell;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;
use std::time::SystemTime;

use super::{Position, ReadError};

/// What a regular file was when its read started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    /// The stamp of an open file's metadata.
    pub fn of(m: &Metadata) -> Stamp {
        Stamp { len: m.len(), modified: m.modified().ok() }
    }

    /// The file's length when the read started.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks, at the end of a read, that `file` is still what it was (its length and
    /// modification time) and, when `consumed` is given, that the read took all of it.
    pub fn check(&self, file: &File, name: &str, consumed: Option<u64>) -> Result<(), ReadError> {
        let now = file.metadata().map_err(|e| ReadError::new(name, Position::Whole, e))?;
        let now = Stamp::of(&now);
        if now.len != self.len {
            return Err(ReadError::new(
                name,
                Position::Byte(now.len.min(self.len)),
                format!(
                    "the file changed while it was read ({} bytes when the read started, {} now): \
                     no result over part of it",
                    self.len, now.len
                ),
            ));
        }
        if now.modified != self.modified {
            return Err(ReadError::new(
                name,
                Position::Whole,
                "the file was modified while it was read: no result over part of it",
            ));
        }
        match consumed {
            Some(n) if n != self.len => Err(ReadError::new(
                name,
                Position::Byte(n),
                format!("the read ended at byte {n} of the file's {}", self.len),
            )),
            _ => Ok(()),
        }
    }
}

/// What an input path names, in words, when it is not a regular file.
pub(crate) fn kind_of(m: &Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = m.file_type();
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a pipe";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if m.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

fn is_pipe(m: &Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_fifo()
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        false
    }
}

/// An input opened once: the file, and its stamp when it is a regular file (`None`: a pipe,
/// read as it comes).
#[derive(Debug)]
pub struct Opened {
    /// The open file.
    pub file: File,
    /// What it was at the start (regular files only).
    pub stamp: Option<Stamp>,
}

/// Opens `path` to read it once. A regular file is taken; a pipe only when `pipes` (text
/// read front to back: a columnar file is read by seeking, which a pipe cannot do, and is
/// never opened twice); a device, a directory or a socket never (`/dev/zero` would be read
/// forever). The path's kind is checked before it is opened (opening a FIFO blocks for a
/// writer), and the open file's again after.
pub fn open_input(path: &Path, pipes: bool) -> Result<Opened, ReadError> {
    let name = path.display().to_string();
    let whole = |m: &dyn std::fmt::Display| ReadError::new(&name, Position::Whole, m);
    let refuse = |m: &Metadata| -> Result<(), ReadError> {
        if m.is_file() || (pipes && is_pipe(m)) {
            return Ok(());
        }
        Err(whole(&if is_pipe(m) {
            "a pipe: Parquet and Arrow IPC inputs are read by seeking, so they must be regular files \
             (write the stream to a file first)"
                .to_owned()
        } else {
            format!("{}, not a file to read", kind_of(m))
        }))
    };
    refuse(&std::fs::metadata(path).map_err(|e| whole(&e))?)?;
    let file = File::open(path).map_err(|e| whole(&e))?;
    let m = file.metadata().map_err(|e| whole(&e))?;
    refuse(&m)?;
    let stamp = m.is_file().then(|| Stamp::of(&m));
    Ok(Opened { file, stamp })
}

/// A reader counting the bytes it hands out (into a cell its creator keeps), and refusing to
/// hand out more than `limit` (a memory budget for text that is held whole).
pub(crate) struct Counted<R> {
    inner: R,
    count: Rc<Cell<u64>>,
    limit: Option<u64>,
}

impl<R> Counted<R> {
    pub(crate) fn new(inner: R, limit: Option<u64>) -> (Counted<R>, Rc<Cell<u64>>) {
        let count = Rc::new(Cell::new(0));
        (Counted { inner, count: count.clone(), limit }, count)
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.count.get() + n as u64;
        self.count.set(total);
        if let Some(limit) = self.limit.filter(|&l| total > l) {
            return Err(io::Error::other(format!(
                "more than {limit} bytes of text, the memory budget (MERIDIAN_MEMORY_BUDGET)"
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use std::io::BufRead;

    use super::super::TextRead;

    /// A text file cut while it is read front to back: the lines read so far parse, and the
    /// end of the read says the file changed.
    #[test]
    fn a_text_file_cut_while_read_is_an_error() {
        let p = std::env::temp_dir().join(format!("meridian-source-{}-cut.wkt", std::process::id()));
        let text: String = (0..200_000).map(|i| format!("POINT ({i} 1)\n")).collect();
        std::fs::write(&p, &text).unwrap();
        let (mut reader, read) = TextRead::open(&p, None).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(100_000).unwrap();
        let rest = reader.lines().count();
        assert!(rest < 200_000);
        let e = read.finish().unwrap_err();
        assert!(e.message.contains("changed while it was read"), "{e}");
        assert_eq!(e.to_string().split(": ").nth(1), Some("byte 100000"), "{e}");
        let _ = std::fs::remove_file(p);
    }

    /// A budget stops an endless text at the budget.
    #[test]
    fn a_budget_bounds_the_text_read() {
        let p = std::env::temp_dir().join(format!("meridian-source-{}-budget.wkt", std::process::id()));
        std::fs::write(&p, "POINT (1 2)\n".repeat(1000)).unwrap();
        let (mut reader, _) = TextRead::open(&p, Some(100)).unwrap();
        let e = std::io::Read::read_to_end(&mut reader, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("more than 100 bytes of text"), "{e}");
        let _ = std::fs::remove_file(p);
    }
}
