//! The persisted store: one file of records, checksummed and versioned.
//!
//! ```text
//! magic "MRTUNE\0\0" | version u32 LE | payload length u64 LE | CRC-32 of payload u32 LE | payload (JSON)
//! ```
//!
//! The frame (magic, length, checksum) stays the same in every format version, so a damaged
//! file is told from one a newer meridian wrote.
//!
//! A save takes the lock file beside the store, reads what is on disk, merges it with the
//! records in memory (per key a verdict over a race in progress, else the newer record), writes a temporary file, fsyncs it,
//! renames it over the store and fsyncs the directory: a crash leaves the old file or the
//! new one, and processes saving at once keep each other's records. A file that cannot be
//! read as a store (truncated, bit-flipped, not a store) or that a newer meridian wrote is
//! renamed aside with a [`Warning`] and the store starts empty; if it cannot be moved, the
//! store will not save over it.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::fs::{Fs, RealFs};
use crate::key::{Key, Record};

/// The format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"MRTUNE\0\0";
const HEADER: usize = 8 + 4 + 8 + 4;

/// The longest file read as a store (a store of 100,000 records is a fraction of it): a longer
/// one is not a store this build wrote, and is set aside like any damaged file, without
/// reading past this many bytes.
pub const MAX_STORE_BYTES: u64 = 64 << 20;

/// `MERIDIAN_AUTOTUNE_PATH`: where the store is (over the default).
pub const PATH_ENV: &str = "MERIDIAN_AUTOTUNE_PATH";
/// `MERIDIAN_AUTOTUNE=off` turns autotune off.
pub const SWITCH_ENV: &str = "MERIDIAN_AUTOTUNE";

/// Something wrong with the file found, handled without losing it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Warning {
    /// The file is not a readable store; it was renamed aside.
    #[error("{}: {why}; moved aside to {} and starting empty", path.display(), moved_to.display())]
    Corrupt {
        /// The store's path.
        path: PathBuf,
        /// Where the file is now.
        moved_to: PathBuf,
        /// What was wrong.
        why: String,
    },
    /// A newer meridian wrote the file (format `version`): it is left alone, this run starts
    /// empty and will not save over it.
    #[error("{}: written in format {version} by a newer meridian (this build reads {FORMAT_VERSION}); left as it is, starting empty and not saving over it", path.display())]
    Future {
        /// The store's path.
        path: PathBuf,
        /// The file's format version.
        version: u32,
    },
    /// The file is unreadable as a store and could not be moved aside: the store starts empty
    /// and will not save over it.
    #[error("{}: {why}; it could not be moved aside ({error}), so this run will not save over it", path.display())]
    Stuck {
        /// The store's path.
        path: PathBuf,
        /// What was wrong with it.
        why: String,
        /// Why it could not be moved.
        error: String,
    },
}

/// A failed store operation: what, on which path, and the OS's reason.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("autotune store {}: {op}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// Why it failed.
        source: io::Error,
    },
    /// The file found may not be replaced: unreadable and not movable, or a newer format.
    #[error("autotune store {}: the file there may not be replaced (unreadable and not movable, or a newer format; see the warning): not saving over it", path.display())]
    WouldOverwrite {
        /// The store's path.
        path: PathBuf,
    },
    /// An environment variable has a value that is not allowed.
    #[error("{0}")]
    Env(String),
    /// The store's path names a directory, device, FIFO or socket: it is neither read nor
    /// moved nor replaced.
    #[error("autotune store {}: {what}, not a store file (name a regular file in {PATH_ENV}; /dev/null or {SWITCH_ENV}=off turns autotune off)", path.display())]
    NotAFile {
        /// The path (symbolic links followed).
        path: PathBuf,
        /// What is there.
        what: &'static str,
    },
}

/// A store just opened, and what was wrong with the file found.
#[derive(Debug)]
pub struct Opened {
    /// The store.
    pub store: Store,
    /// Files renamed aside (or left in place), each a warning to show.
    pub warnings: Vec<Warning>,
}

/// The records of one store file, in memory.
#[derive(Debug)]
pub struct Store {
    /// The path as given.
    path: PathBuf,
    /// The file read and replaced: `path` with its symbolic links followed, so a linked
    /// store is saved through the link (the target replaced, the link kept).
    file: PathBuf,
    records: BTreeMap<Key, Record>,
    fs: Arc<dyn Fs>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    key: Key,
    record: Record,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    records: Vec<Entry>,
}

/// Why bytes are not a store this build can read.
enum Bad {
    Corrupt(String),
    Future(u32),
}

impl Store {
    /// The store at the default place: `MERIDIAN_AUTOTUNE_PATH`, else
    /// `$XDG_CACHE_HOME/meridian/autotune.bin`, else `$HOME/.cache/meridian/autotune.bin`;
    /// `None` when `MERIDIAN_AUTOTUNE=off` (or `0`, `false`) or no place can be named. Any
    /// other value of `MERIDIAN_AUTOTUNE` than those and `on`, `1`, `true` is an error.
    pub fn path_from_env() -> Result<Option<PathBuf>, StoreError> {
        match std::env::var(SWITCH_ENV) {
            Ok(v) if matches!(v.as_str(), "off" | "0" | "false") => return Ok(None),
            Ok(v) if matches!(v.as_str(), "" | "on" | "1" | "true") => {}
            Ok(v) => {
                return Err(StoreError::Env(format!(
                    "{SWITCH_ENV}={v:?} is not one of on, off (or 1, 0, true, false)"
                )))
            }
            Err(_) => {}
        }
        if let Some(p) = std::env::var_os(PATH_ENV).filter(|p| !p.is_empty()) {
            // The natural way to say "nowhere": autotune off, the device left alone.
            return Ok(Some(PathBuf::from(p)).filter(|p| !is_dev_null(p)));
        }
        let cache =
            std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()).map(PathBuf::from).or_else(|| {
                std::env::var_os("HOME").filter(|p| !p.is_empty()).map(|h| PathBuf::from(h).join(".cache"))
            });
        Ok(cache.map(|c| c.join("meridian").join("autotune.bin")))
    }

    /// Why [`Store::path_from_env`] names no store (for messages).
    pub fn off_reason() -> String {
        match std::env::var_os(PATH_ENV) {
            _ if std::env::var(SWITCH_ENV).is_ok_and(|v| matches!(v.as_str(), "off" | "0" | "false")) => {
                format!("{SWITCH_ENV}=off")
            }
            Some(p) if is_dev_null(Path::new(&p)) => format!("{PATH_ENV} is /dev/null"),
            _ => format!("no cache directory to keep it in; set {PATH_ENV}"),
        }
    }

    /// Opens the store at `path` (missing: empty).
    pub fn open(path: impl Into<PathBuf>) -> Result<Opened, StoreError> {
        Store::open_with(path, Arc::new(RealFs))
    }

    /// Opens the store at `path` through `fs`.
    pub fn open_with(path: impl Into<PathBuf>, fs: Arc<dyn Fs>) -> Result<Opened, StoreError> {
        let path = path.into();
        let file = resolve_links(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            op: "following its links",
            source,
        })?;
        let mut store = Store { path, file, records: BTreeMap::new(), fs };
        let mut warnings = Vec::new();
        match read(&*store.fs, &store.file)? {
            Ok(records) => store.records = records,
            // Only under the lock is a bad file moved: a save in another process may be
            // replacing it with a good one right now.
            Err(_) => {
                let mut loaded = (BTreeMap::new(), false);
                warnings = store.locked(|s, w| {
                    loaded = load(&*s.fs, &s.file, w)?;
                    Ok(())
                })?;
                // A file left in place (stuck, or newer) is checked again by every save.
                store.records = loaded.0;
            }
        }
        Ok(Opened { store, warnings })
    }

    /// The store's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record of `key`.
    pub fn get(&self, key: &Key) -> Option<&Record> {
        self.records.get(key)
    }

    /// Sets the record of `key` (saved by [`Store::save`]). Non-finite numbers are stored as
    /// 0 (JSON has no NaN, and a record must always read back).
    pub fn insert(&mut self, key: Key, mut record: Record) {
        let mut numbers = vec![&mut record.timing.mean_ns, &mut record.timing.spread, &mut record.gain];
        if let Some(e) = record.verdict.as_mut().and_then(|v| v.effect.as_mut()) {
            numbers.extend([&mut e.speedup, &mut e.low, &mut e.high]);
        }
        if let Some(p) = record.pending.as_mut() {
            numbers.extend(p.pairs.iter_mut().flat_map(|p| [&mut p.conservative_ns, &mut p.speculative_ns]));
        }
        for v in numbers {
            if !v.is_finite() {
                *v = 0.0;
            }
        }
        self.records.insert(key, record);
    }

    /// Notes that `run` applied the record of `key` (saved by the next [`Store::save`]).
    pub fn note_load(&mut self, key: &Key, run: &str) {
        if let Some(r) = self.records.get_mut(key) {
            r.note_load(crate::key::Load { at_ms: Record::now_ms(), run: run.to_owned() });
        }
    }

    /// Every record, by key.
    pub fn records(&self) -> impl ExactSizeIterator<Item = (&Key, &Record)> {
        self.records.iter()
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Saves: under the lock, merges what is on disk into memory (per key a verdict over a
    /// race in progress, else the newer record), then replaces the file atomically and durably. Returns warnings about the file
    /// found on disk. On an error before the rename the file on disk is the one before the
    /// save; a failed fsync of the directory after it leaves the new file, whose survival of
    /// a crash is then not certain.
    pub fn save(&mut self) -> Result<Vec<Warning>, StoreError> {
        self.locked(|store, warnings| {
            // A file that could not be moved aside at open is tried again here; saving waits
            // until it is out of the way.
            let (on_disk, stuck) = load(&*store.fs, &store.file, warnings)?;
            if stuck {
                return Err(StoreError::WouldOverwrite { path: store.file.clone() });
            }
            for (key, theirs) in on_disk {
                match store.records.get_mut(&key) {
                    // A verdict beats a race in progress, however old: the run that left the
                    // race open did not know it was decided meanwhile.
                    Some(mine) if mine.is_decided() != theirs.is_decided() => {
                        if theirs.is_decided() {
                            *mine = theirs;
                        }
                    }
                    // The same record, loaded by another run too: both runs' loads.
                    Some(mine) if mine.recorded_at_ms == theirs.recorded_at_ms => mine.merge_loads(&theirs),
                    Some(mine) if mine.recorded_at_ms > theirs.recorded_at_ms => {}
                    _ => {
                        store.records.insert(key, theirs);
                    }
                }
            }
            let bytes = encode(&store.records);
            store.replace(&bytes)
        })
    }

    /// Empties the store, on disk too (under the lock). A file that is not a store this build
    /// can read is moved aside first, or, if it cannot be (or is a newer format), left alone
    /// and the store is not cleared.
    pub fn clear(&mut self) -> Result<(), StoreError> {
        self.locked(|store, warnings| {
            let (_, stuck) = load(&*store.fs, &store.file, warnings)?;
            if stuck {
                return Err(StoreError::WouldOverwrite { path: store.file.clone() });
            }
            store.records.clear();
            store.replace(&encode(&store.records))
        })
        .map(drop)
    }

    /// The store file's bytes as a save would write them (for export).
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(&self.records)
    }

    /// The records as JSON (for `meridian autotune show`).
    pub fn to_json(&self) -> String {
        let payload = Payload {
            records: self.records.iter().map(|(k, r)| Entry { key: k.clone(), record: r.clone() }).collect(),
        };
        serde_json::to_string_pretty(&payload)
            .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()))
    }

    fn dir(&self) -> PathBuf {
        match self.file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn io(&self, path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, op, source }
    }

    /// Runs `f` holding the store's lock file.
    fn locked<T>(
        &mut self,
        f: impl FnOnce(&mut Store, &mut Vec<Warning>) -> Result<T, StoreError>,
    ) -> Result<Vec<Warning>, StoreError> {
        let dir = self.dir();
        self.fs.create_dir_all(&dir).map_err(self.io(&dir, "creating the directory"))?;
        let lock_path = sibling(&self.file, ".lock");
        let _lock = self.fs.lock(&lock_path).map_err(self.io(&lock_path, "taking the lock"))?;
        // Under the lock no other save is writing: leftover temporary files are from saves
        // that died, and go.
        remove_stale_temps(&self.file);
        let mut warnings = Vec::new();
        f(self, &mut warnings)?;
        Ok(warnings)
    }

    /// Writes `bytes` to a temporary file, fsyncs it, renames it over the store, fsyncs the
    /// directory. The temporary file is removed if any step before the rename fails.
    fn replace(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        static SAVES: AtomicU64 = AtomicU64::new(0);
        let tmp = sibling(
            &self.file,
            &format!(".tmp.{}.{}", std::process::id(), SAVES.fetch_add(1, Ordering::Relaxed)),
        );
        if let Err(e) = self.fs.write_synced(&tmp, bytes) {
            let _ = self.fs.remove(&tmp);
            return Err(self.io(&tmp, "writing the new store")(e));
        }
        if let Err(e) = self.fs.rename(&tmp, &self.file) {
            let _ = self.fs.remove(&tmp);
            return Err(self.io(&self.file, "renaming the new store into place")(e));
        }
        let dir = self.dir();
        self.fs.sync_dir(&dir).map_err(self.io(&dir, "syncing the directory after the rename"))
    }
}

/// `path` with `suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let mut prefix = name.to_os_string();
    prefix.push(".tmp.");
    let prefix = prefix.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The records on disk (missing: none), or why the file is not a store this build reads.
/// Anything but a regular file is an error, checked before every read: a FIFO would block
/// the read, a device (`/dev/zero`) never end it, and neither may be moved aside.
fn read(fs: &dyn Fs, path: &Path) -> Result<Result<BTreeMap<Key, Record>, Bad>, StoreError> {
    if let Ok(m) = std::fs::metadata(path) {
        if !m.is_file() {
            return Err(StoreError::NotAFile { path: path.to_path_buf(), what: file_kind(&m) });
        }
        if m.len() > MAX_STORE_BYTES {
            return Ok(Err(too_long()));
        }
    }
    match fs.read(path, MAX_STORE_BYTES) {
        Ok(bytes) if bytes.len() as u64 > MAX_STORE_BYTES => Ok(Err(too_long())),
        Ok(bytes) => Ok(decode(&bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Ok(BTreeMap::new())),
        Err(source) => Err(StoreError::Io { path: path.to_path_buf(), op: "reading", source }),
    }
}

/// The records on disk (call it holding the lock). A damaged or foreign file is moved aside
/// (a warning) and reads as empty; a newer format is left alone. The flag says the file
/// found must not be saved over: a newer format, or a bad file that could not be moved.
fn load(
    fs: &dyn Fs,
    path: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<(BTreeMap<Key, Record>, bool), StoreError> {
    let why = match read(fs, path)? {
        Ok(records) => return Ok((records, false)),
        Err(Bad::Future(version)) => {
            warnings.push(Warning::Future { path: path.to_path_buf(), version });
            return Ok((BTreeMap::new(), true));
        }
        Err(Bad::Corrupt(why)) => why,
    };
    // A name no other move takes: the time, this process, and a counter.
    static MOVES: AtomicU64 = AtomicU64::new(0);
    let aside = sibling(
        path,
        &format!(
            ".corrupt.{}.{}.{}",
            Record::now_ms(),
            std::process::id(),
            MOVES.fetch_add(1, Ordering::Relaxed)
        ),
    );
    match fs.rename(path, &aside) {
        Ok(()) => {
            warnings.push(Warning::Corrupt { path: path.to_path_buf(), moved_to: aside, why });
            Ok((BTreeMap::new(), false))
        }
        Err(e) => {
            warnings.push(Warning::Stuck { path: path.to_path_buf(), why, error: e.to_string() });
            Ok((BTreeMap::new(), true))
        }
    }
}

fn too_long() -> Bad {
    Bad::Corrupt(format!("longer than a store may be ({MAX_STORE_BYTES} bytes)"))
}

/// What a path that is not a regular file holds, in words.
fn file_kind(m: &std::fs::Metadata) -> &'static str {
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
            return "a FIFO (named pipe)";
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

/// True when `path` is the null device (by its device number, however it is named).
fn is_dev_null(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        match (std::fs::metadata(path), std::fs::metadata("/dev/null")) {
            (Ok(m), Ok(null)) => m.file_type().is_char_device() && m.rdev() == null.rdev(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        path == Path::new("NUL")
    }
}

/// `path` with the symbolic links at its end followed (a dangling link gives where it
/// points, which a save then creates).
fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    // As the kernel's ELOOP limit.
    for _ in 0..40 {
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
    Err(io::Error::other("too many levels of symbolic links"))
}

fn encode(records: &BTreeMap<Key, Record>) -> Vec<u8> {
    let payload = Payload {
        records: records.iter().map(|(k, r)| Entry { key: k.clone(), record: r.clone() }).collect(),
    };
    // Serialising plain data to a Vec cannot fail; an empty payload would still be a valid
    // store (it reads as no records) if it ever did.
    let body = serde_json::to_vec(&payload).unwrap_or_else(|_| b"{\"records\":[]}".to_vec());
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn decode(bytes: &[u8]) -> Result<BTreeMap<Key, Record>, Bad> {
    if bytes.len() < HEADER {
        return Err(Bad::Corrupt(format!(
            "truncated: {} bytes, shorter than the {HEADER}-byte header",
            bytes.len()
        )));
    }
    if &bytes[..8] != MAGIC {
        return Err(Bad::Corrupt("not an autotune store (its first bytes are not the store's magic)".into()));
    }
    let word = |at: usize, n: usize| -> u64 {
        bytes[at..at + n].iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    };
    // The frame (magic, length, checksum) is the same in every format version: a file whose
    // frame does not hold is damaged, whatever its version field says; one whose frame holds
    // and whose version is newer was written by a newer meridian.
    let version = word(8, 4) as u32;
    let len = word(12, 8);
    let crc = word(20, 4) as u32;
    let body = &bytes[HEADER..];
    if body.len() as u64 != len {
        return Err(Bad::Corrupt(format!(
            "truncated or extended: the header says {len} bytes of records, {} follow",
            body.len()
        )));
    }
    if crc32fast::hash(body) != crc {
        return Err(Bad::Corrupt("checksum mismatch (the records were damaged)".into()));
    }
    if version > FORMAT_VERSION {
        return Err(Bad::Future(version));
    }
    if version == 0 {
        return Err(Bad::Corrupt("format version 0".into()));
    }
    let payload: Payload =
        serde_json::from_slice(body).map_err(|e| Bad::Corrupt(format!("records unreadable: {e}")))?;
    Ok(payload.records.into_iter().map(|e| (e.key, e.record)).collect())
}
