//! The file operations the store makes, behind a trait so that tests can make any of them
//! fail (short writes, `ENOSPC`, fsync errors, a refused rename) and check that nothing is
//! lost.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

/// The store's file operations.
pub trait Fs: Send + Sync + std::fmt::Debug {
    /// The whole file, or its first `limit + 1` bytes when it is longer (so that a caller can
    /// tell it is too long without reading an endless or huge file whole).
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>>;
    /// Creates `path` (it must not exist), writes `bytes` and fsyncs the file.
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Renames `from` over `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Fsyncs a directory (so a rename in it survives a crash).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Takes the exclusive lock of `path` (created if missing), held until the guard drops.
    fn lock(&self, path: &Path) -> io::Result<FileLock>;
}

/// An exclusive `flock` on a lock file, released when dropped (the descriptor closes).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl Fs for RealFs {
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let mut bytes = Vec::new();
        File::open(path)?.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn lock(&self, path: &Path) -> io::Result<FileLock> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        lock_exclusive(&file)?;
        Ok(FileLock { _file: file })
    }
}

#[cfg(unix)]
fn lock_exclusive(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on a descriptor this function borrows open; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(unix))]
fn lock_exclusive(_: &File) -> io::Result<()> {
    // Without flock, saves in one process are still serialised by the store's own callers.
    Ok(())
}

/// Which operation a [`Fault`] strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// [`Fs::read`].
    Read,
    /// [`Fs::write_synced`]'s write.
    Write,
    /// [`Fs::write_synced`]'s fsync (the bytes were written).
    SyncFile,
    /// [`Fs::rename`].
    Rename,
    /// [`Fs::sync_dir`].
    SyncDir,
    /// [`Fs::lock`].
    Lock,
}

/// What a [`Fault`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The operation fails with this OS error (e.g. `libc::ENOSPC`, `libc::EIO`).
    Os(i32),
    /// A write stops half-way, then fails (`WriteZero`).
    ShortWrite,
    /// The process dies there (SIGKILL to itself), as a crash would: before the operation,
    /// or for a write half-way through it (crash tests run this in a child process).
    Abort,
}

/// A planned failure: the `nth` (0-based) call of `op` fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The operation.
    pub op: Op,
    /// Which call of it.
    pub nth: usize,
    /// How it fails.
    pub failure: Failure,
}

/// The real file system with planned failures, for tests of what a failing disk leaves.
#[derive(Debug, Default)]
pub struct FaultyFs {
    faults: Vec<Fault>,
    calls: Mutex<Vec<(Op, usize)>>,
}

impl FaultyFs {
    /// The real file system, failing as `faults` say.
    pub fn new(faults: Vec<Fault>) -> FaultyFs {
        FaultyFs { faults, calls: Mutex::new(Vec::new()) }
    }

    /// The failure planned for this call of `op`, counting it.
    fn strike(&self, op: Op) -> Option<Failure> {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let n = match calls.iter_mut().find(|(o, _)| *o == op) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                calls.push((op, 1));
                0
            }
        };
        self.faults.iter().find(|f| f.op == op && f.nth == n).map(|f| f.failure)
    }
}

fn fail(f: Failure) -> io::Error {
    match f {
        Failure::Os(code) => io::Error::from_raw_os_error(code),
        Failure::ShortWrite => io::Error::new(io::ErrorKind::WriteZero, "short write (injected)"),
        Failure::Abort => die(),
    }
}

/// Ends the process at once, as a crash would: SIGKILL to itself (no unwinding, no exit
/// handlers, no core file).
fn die() -> ! {
    #[cfg(unix)]
    // SAFETY: kill(getpid(), SIGKILL) only signals this process; no memory is involved.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

impl Fs for FaultyFs {
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        match self.strike(Op::Read) {
            Some(f) => Err(fail(f)),
            None => RealFs.read(path, limit),
        }
    }

    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        match self.strike(Op::Write) {
            Some(f @ (Failure::ShortWrite | Failure::Abort)) => {
                let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
                file.write_all(&bytes[..bytes.len() / 2])?;
                return Err(fail(f));
            }
            Some(f) => return Err(fail(f)),
            None => {}
        }
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        file.write_all(bytes)?;
        match self.strike(Op::SyncFile) {
            Some(f) => Err(fail(f)),
            None => file.sync_all(),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        match self.strike(Op::Rename) {
            Some(f) => Err(fail(f)),
            None => RealFs.rename(from, to),
        }
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        RealFs.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        match self.strike(Op::SyncDir) {
            Some(f) => Err(fail(f)),
            None => RealFs.sync_dir(dir),
        }
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        RealFs.create_dir_all(dir)
    }

    fn lock(&self, path: &Path) -> io::Result<FileLock> {
        match self.strike(Op::Lock) {
            Some(f) => Err(fail(f)),
            None => RealFs.lock(path),
        }
    }
}
