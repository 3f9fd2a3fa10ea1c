//! Files replaced whole or not at all: an output is written to a temporary file beside its
//! final name, fsynced, renamed over the name and the directory fsynced. A run that fails or
//! is killed part-way leaves what was at the name before (and at worst a hidden temporary
//! file); a reader never sees half a file. A name that is a symbolic link is written through
//! the link: its target is replaced and the link stays.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Symbolic links followed before giving up (as the kernel's `ELOOP` limit).
const MAX_LINKS: usize = 40;

/// `path` with every symbolic link at its end followed (a dangling link gives the path it
/// points to, which may not exist yet).
pub fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(io::Error::other(format!("{}: too many levels of symbolic links", path.display())))
}

/// True when `a` and `b` name the same existing file (by device and inode, links followed),
/// however they are spelt.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
}

/// A temporary name beside `target` that no other writer takes: hidden, with this process
/// and a counter in it, ending in `target`'s own file name (so writers that choose a format
/// by the extension, such as an image encoder, see the right one).
fn temp_beside(target: &Path) -> PathBuf {
    static TEMPS: AtomicU64 = AtomicU64::new(0);
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = TEMPS.fetch_add(1, Ordering::Relaxed);
    target.with_file_name(format!(".meridian-{}-{n}.{name}", std::process::id()))
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The regular file at `target`, if there is one; a directory or special file there is an
/// error (it is not replaced by a regular file).
fn existing_file(target: &Path) -> io::Result<Option<std::fs::Metadata>> {
    match std::fs::metadata(target) {
        Ok(m) if m.is_file() => Ok(Some(m)),
        Ok(m) => {
            let what = if m.is_dir() { "a directory" } else { "not a regular file" };
            Err(io::Error::other(format!("{what}: not replacing it")))
        }
        Err(_) => Ok(None),
    }
}

/// Renames `temp` over `target` and fsyncs their directory.
fn rename_into_place(temp: &Path, target: &Path) -> io::Result<()> {
    std::fs::rename(temp, target)?;
    // The rename is durable once the directory is: until then a crash may leave the old file.
    File::open(dir_of(target))?.sync_all()
}

/// A file being written to replace `target` atomically: bytes go to a temporary file until
/// [`AtomicFile::commit`]; dropping it uncommitted removes the temporary file and leaves
/// `target` as it was.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts replacing `path` (through a symbolic link, its target). The temporary file is
    /// made in the same directory, so the final rename never crosses file systems; it takes
    /// the permissions of the file it replaces, if there is one.
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        let target = resolve_links(path)?;
        let old = existing_file(&target)?;
        let temp = temp_beside(&target);
        let file = OpenOptions::new().write(true).create_new(true).open(&temp)?;
        let me = AtomicFile { target, temp, out: Some(BufWriter::with_capacity(1 << 16, file)) };
        if let Some(old) = old {
            std::fs::set_permissions(&me.temp, old.permissions())?;
        }
        Ok(me)
    }

    /// The file this replaces (links followed).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Finishes: flushes and fsyncs the temporary file, renames it over the target and
    /// fsyncs the directory. On an error the target is as it was before (unless only the
    /// directory's fsync failed, after the rename) and the temporary file is gone.
    pub fn commit(mut self) -> io::Result<()> {
        let Some(out) = self.out.take() else { return Err(io::Error::other("already finished")) };
        let synced = out.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all());
        if let Err(e) = synced.and_then(|()| rename_into_place(&self.temp, &self.target)) {
            let _ = std::fs::remove_file(&self.temp);
            return Err(e);
        }
        Ok(())
    }

    fn abandon(&mut self) {
        if let Some(out) = self.out.take() {
            // Unflushed bytes are dropped with the file, not written to it first.
            drop(out.into_parts());
            let _ = std::fs::remove_file(&self.temp);
        }
    }

    fn out(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.out.as_mut().ok_or_else(|| io::Error::other("already finished"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out()?.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out()?.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// A temporary path beside a file to be replaced, for writers that insist on a path of their
/// own (an image encoder, DataFusion's writers): write the file there, then
/// [`TempPath::commit`] fsyncs it and renames it over the target. Dropped uncommitted, the
/// temporary file (if the writer made one) is removed and the target left as it was.
#[derive(Debug)]
pub struct TempPath {
    target: PathBuf,
    temp: PathBuf,
    done: bool,
}

impl TempPath {
    /// A temporary path for replacing `path` (through a symbolic link, its target). Its name
    /// ends in `path`'s own file name, so writers that choose a format by the extension see
    /// the right one.
    pub fn beside(path: &Path) -> io::Result<TempPath> {
        let target = resolve_links(path)?;
        existing_file(&target)?;
        Ok(TempPath { temp: temp_beside(&target), target, done: false })
    }

    /// Where to write.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Fsyncs what was written at [`TempPath::path`], renames it over the target and fsyncs
    /// the directory.
    pub fn commit(mut self) -> io::Result<()> {
        self.done = true;
        let done = File::open(&self.temp)
            .and_then(|f| f.sync_all())
            .and_then(|()| rename_into_place(&self.temp, &self.target));
        if done.is_err() {
            let _ = std::fs::remove_file(&self.temp);
        }
        done
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Replaces `path` (through a symbolic link, its target) with what `write` puts at the
/// temporary path it is given (see [`TempPath`]): in place only if `write` succeeds.
pub fn replace_with<T, E: From<io::Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<T, E>,
) -> Result<T, E> {
    let temp = TempPath::beside(path)?;
    let value = write(temp.path())?;
    temp.commit()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("meridian-atomic-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        v.sort();
        v
    }

    #[test]
    fn an_uncommitted_file_leaves_the_old_one_and_no_temporary() {
        let d = dir("drop");
        let p = d.join("out.csv");
        std::fs::write(&p, "old\n").unwrap();
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"new, half written").unwrap();
        f.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old\n");
        drop(f);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old\n");
        assert_eq!(names(&d), ["out.csv"]);
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"new\n").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        assert_eq!(names(&d), ["out.csv"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_is_written_through_and_permissions_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir("link");
        let real = d.join("real.csv");
        std::fs::write(&real, "old\n").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = d.join("link.csv");
        std::os::unix::fs::symlink("real.csv", &link).unwrap();
        let mut f = AtomicFile::create(&link).unwrap();
        f.write_all(b"new\n").unwrap();
        f.commit().unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new\n");
        assert_eq!(std::fs::metadata(&real).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(same_file(&link, &real));
        assert!(!same_file(&link, &d));
    }

    #[test]
    fn a_directory_is_not_replaced_and_a_failed_writer_leaves_nothing() {
        let d = dir("special");
        std::fs::create_dir(d.join("sub")).unwrap();
        let e = AtomicFile::create(&d.join("sub")).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let p = d.join("map.png");
        std::fs::write(&p, "old").unwrap();
        let r: Result<(), io::Error> = replace_with(&p, |tmp| {
            assert!(tmp.to_string_lossy().ends_with(".map.png"));
            std::fs::write(tmp, "partial")?;
            Err(io::Error::other("the encoder failed"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(names(&d), ["map.png", "sub"]);
        replace_with(&p, |tmp| std::fs::write(tmp, "new")).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
    }
}
