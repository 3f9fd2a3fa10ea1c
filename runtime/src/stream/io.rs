//! Reads into staging slots, several in flight: io_uring (with the staging memory registered
//! as a fixed buffer where the kernel allows it, plain reads into it otherwise) or, where
//! io_uring is unavailable or `MERIDIAN_IO=pread` asks for it, `pread`. Files are opened with
//! O_DIRECT where the file system accepts it: a read is then widened to [`ALIGN`] at both ends
//! and the bytes asked for lie inside the slot at an offset. Every fallback is recorded in
//! [`Reader::how`] with its reason.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::staging::{Slot, Staging, ALIGN};
use crate::events::{self, Event};

/// The environment variable that forces `pread` (`MERIDIAN_IO=pread`).
pub const IO_ENV: &str = "MERIDIAN_IO";

/// How files are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoMode {
    /// io_uring where it works, `pread` where it does not.
    Auto,
    /// `pread` only.
    Pread,
}

impl IoMode {
    /// From `MERIDIAN_IO`: unset, `uring` or `auto` is [`IoMode::Auto`], `pread` is
    /// [`IoMode::Pread`]; anything else is an error naming the variable.
    pub fn from_env() -> Result<IoMode, String> {
        match std::env::var(IO_ENV) {
            Err(_) => Ok(IoMode::Auto),
            Ok(v) if v.is_empty() || v == "auto" || v == "uring" || v == "io_uring" => Ok(IoMode::Auto),
            Ok(v) if v == "pread" => Ok(IoMode::Pread),
            Ok(v) => Err(format!("{IO_ENV}={v:?} is not one of auto, uring, pread")),
        }
    }
}

/// Whether an io_uring can be set up here (the streamer's path), or why not.
pub fn io_uring_available() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        io_uring::IoUring::new(8).map(drop).map_err(|e| e.to_string())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err("not Linux".into())
    }
}

/// A completed read: the slot, and where in it the bytes asked for are.
#[derive(Debug)]
pub(crate) struct Filled {
    pub slot: Slot,
    pub data: Range<usize>,
}

/// A read on its way: the slot it fills, the (aligned) file range, and how much has arrived.
struct Pending {
    tag: u64,
    slot: Slot,
    /// File offset of the slot's first byte.
    at: u64,
    /// Bytes to read into the slot (aligned when direct).
    len: usize,
    /// Bytes that must arrive (up to the end of what was asked for).
    need: usize,
    /// Where the asked-for bytes start in the slot.
    skip: usize,
    done: usize,
    /// Read through the O_DIRECT descriptor (aligned, a short read may be the end of the
    /// file). Per read: a fall-back to buffered reads may come while direct ones are in flight.
    direct: bool,
}

enum Engine {
    #[cfg(target_os = "linux")]
    Uring {
        ring: Box<io_uring::IoUring>,
        fixed: bool,
        /// Reads in the kernel's hands, by their index in this table (the user data).
        flight: Vec<Option<Pending>>,
    },
    Pread,
}

/// Reads one file into staging slots.
pub(crate) struct Reader {
    name: String,
    path: PathBuf,
    file: File,
    /// Descriptors replaced by a fall-back, kept open while the reader lives: a read queued
    /// on one must never find its number reused.
    retired: Vec<File>,
    direct: bool,
    engine: Engine,
    ready: VecDeque<(u64, io::Result<Filled>)>,
    how: String,
    /// Keeps the registered memory mapped while the ring may use it.
    _staging: Staging,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("name", &self.name).field("how", &self.how).finish_non_exhaustive()
    }
}

impl Reader {
    /// Opens `path` for reads into `staging`'s slots, `depth` at a time.
    pub(crate) fn open(path: &Path, staging: &Staging, mode: IoMode, depth: usize) -> io::Result<Reader> {
        let name = path.display().to_string();
        let (file, direct, mut how) = open_file(path)?;
        let engine = match mode {
            IoMode::Pread => {
                how.insert_str(0, &format!("pread ({IO_ENV}=pread), "));
                Engine::Pread
            }
            IoMode::Auto => match uring(staging, depth) {
                Ok((engine, what)) => {
                    how.insert_str(0, &format!("io_uring, {what}, "));
                    engine
                }
                Err(why) => {
                    let event =
                        Event::new("io", "io_uring", "pread", format!("io_uring unavailable: {why}"), &name);
                    events::record(event.clone());
                    if events::strict_from_env().map_err(io::Error::other)? {
                        return Err(io::Error::other(events::refused(&event)));
                    }
                    how.insert_str(0, &format!("pread (io_uring unavailable: {why}), "));
                    Engine::Pread
                }
            },
        };
        Ok(Reader {
            name,
            path: path.to_path_buf(),
            file,
            retired: Vec::new(),
            direct,
            engine,
            ready: VecDeque::new(),
            how,
            _staging: staging.clone(),
        })
    }

    /// True when this reader reads the same file as `other` (device and inode): the reader
    /// opens its path itself (O_DIRECT needs a descriptor of its own), and a file renamed
    /// over the path in between would otherwise be read in the place of the one checked.
    pub(crate) fn reads(&self, other: &File) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (self.file.metadata(), other.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    /// How the file is read, with the reason for every fallback.
    pub(crate) fn how(&self) -> &str {
        &self.how
    }

    /// Starts reading `len` bytes at `offset` into `slot`; `tag` comes back with the result.
    pub(crate) fn submit(&mut self, tag: u64, slot: Slot, offset: u64, len: usize) -> io::Result<()> {
        let too_big = || {
            io::Error::other(format!(
                "{}: a read of {len} bytes at {offset} does not fit a staging slot of {} bytes",
                self.name,
                slot.capacity()
            ))
        };
        // Checked first, so the widening below cannot overflow (skip < ALIGN <= capacity).
        if len > slot.capacity() {
            return Err(too_big());
        }
        let (at, skip) = if self.direct {
            let at = offset - offset % ALIGN as u64;
            (at, (offset - at) as usize)
        } else {
            (offset, 0)
        };
        let need = skip + len;
        let span = if self.direct { need.div_ceil(ALIGN) * ALIGN } else { need };
        if span > slot.capacity() {
            return Err(too_big());
        }
        let p = Pending { tag, slot, at, len: span, need, skip, done: 0, direct: self.direct };
        match &mut self.engine {
            #[cfg(target_os = "linux")]
            Engine::Uring { ring, fixed, flight } => {
                let index = match flight.iter().position(Option::is_none) {
                    Some(i) => i,
                    None => {
                        flight.push(None);
                        flight.len() - 1
                    }
                };
                push_read(ring, *fixed, &self.file, index, &p)?;
                // In the table before anything can fail: once queued, the read may land in the
                // slot whatever `submit` says, so the slot must stay held until it completes.
                flight[index] = Some(p);
                submit_queued(ring)
            }
            Engine::Pread => {
                let result = match pread_all(&self.file, p, &self.name) {
                    Err((p, e)) if p.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                        self.retry_buffered(p)
                    }
                    other => other.map_err(|(_, e)| e),
                };
                self.ready.push_back((tag, result));
                Ok(())
            }
        }
    }

    /// The next completed read (in completion order), or `None` when none is in flight.
    pub(crate) fn complete(&mut self) -> Option<(u64, io::Result<Filled>)> {
        if let Some(done) = self.ready.pop_front() {
            return Some(done);
        }
        #[cfg(target_os = "linux")]
        if let Engine::Uring { .. } = self.engine {
            return self.complete_uring();
        }
        None
    }

    #[cfg(target_os = "linux")]
    fn complete_uring(&mut self) -> Option<(u64, io::Result<Filled>)> {
        loop {
            let Engine::Uring { ring, fixed, flight } = &mut self.engine else { return None };
            if flight.iter().all(Option::is_none) {
                return None;
            }
            if let Err(e) = ring.submit_and_wait(1) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The completion queue is full (EBUSY) or the kernel is short of resources for
                // a moment (EAGAIN): reap what has completed, then wait again.
                if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EAGAIN)) {
                    if ring.completion().is_empty() {
                        std::thread::yield_now();
                    }
                } else {
                    // The ring itself failed: every read in flight fails, and as one may still land,
                    // its slot is never reused (leaked).
                    for p in flight.iter_mut().filter_map(Option::take) {
                        self.ready.push_back((p.tag, Err(io::Error::new(e.kind(), e.to_string()))));
                        std::mem::forget(p.slot);
                    }
                    return self.ready.pop_front();
                }
            }
            let done: Vec<(u64, i32)> = ring.completion().map(|c| (c.user_data(), c.result())).collect();
            let mut refused = Vec::new();
            for (index, res) in done {
                let Some(mut p) = flight.get_mut(index as usize).and_then(Option::take) else { continue };
                let asked = p.len - p.done;
                if res < 0 {
                    let e = io::Error::from_raw_os_error(-res);
                    if p.direct && e.raw_os_error() == Some(libc::EINVAL) {
                        refused.push(p);
                    } else {
                        self.ready.push_back((p.tag, Err(e)));
                    }
                    continue;
                }
                p.done += res as usize;
                if p.done >= p.need {
                    self.ready.push_back((p.tag, Ok(fill(p))));
                } else if at_end(&p, res as usize, asked) {
                    let end = p.at + p.done as u64;
                    self.ready.push_back((p.tag, Err(truncated(&self.name, end))));
                } else {
                    // A short read that is not the end of the file: ask for the rest. Held in
                    // the table from the moment it is queued (see `submit`); a failed submit
                    // leaves it queued, and the next wait submits it.
                    match push_read(ring, *fixed, &self.file, index as usize, &p) {
                        Ok(()) => {
                            flight[index as usize] = Some(p);
                            let _ = submit_queued(ring);
                        }
                        Err(e) => self.ready.push_back((p.tag, Err(e))),
                    }
                }
            }
            // O_DIRECT refused at read time: those reads again, buffered.
            for p in refused {
                let tag = p.tag;
                let result = self.retry_buffered(p);
                self.ready.push_back((tag, result));
            }
            if let Some(done) = self.ready.pop_front() {
                return Some(done);
            }
        }
    }

    /// After O_DIRECT failed: reopen the file buffered, and note why.
    fn fall_back_to_buffered(&mut self, why: &str) {
        if let Ok(file) = File::open(&self.path) {
            events::record(Event::new("io", "O_DIRECT", "buffered reads", why, &self.name));
            let direct_file = std::mem::replace(&mut self.file, file);
            self.retired.push(direct_file);
            self.direct = false;
            self.how = self.how.replace("O_DIRECT", &format!("buffered ({why})"));
        }
    }

    /// A read that O_DIRECT made fail (EINVAL), once more with `pread` on the file opened
    /// without it.
    fn retry_buffered(&mut self, p: Pending) -> io::Result<Filled> {
        if self.direct {
            self.fall_back_to_buffered("the file system refused an O_DIRECT read");
        }
        if self.direct {
            // Reopening without O_DIRECT failed: the refusal stands.
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let offset = p.at + p.skip as u64;
        let q = Pending {
            at: offset,
            len: p.need - p.skip,
            need: p.need - p.skip,
            skip: 0,
            done: 0,
            direct: false,
            ..p
        };
        pread_all(&self.file, q, &self.name).map_err(|(_, e)| e)
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // The kernel may still be writing into slots of reads in flight: wait for every one
        // before the slots can go back and be reused.
        #[cfg(target_os = "linux")]
        if let Engine::Uring { ring, flight, .. } = &mut self.engine {
            while flight.iter().any(Option::is_some) {
                match ring.submit_and_wait(1) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // Nothing more can be learnt; leaking the slots keeps their memory from
                    // being reused under a read that may still land.
                    Err(_) => {
                        for p in flight.iter_mut().filter_map(Option::take) {
                            std::mem::forget(p.slot);
                        }
                        return;
                    }
                }
                let done: Vec<u64> = ring.completion().map(|c| c.user_data()).collect();
                for index in done {
                    if let Some(slot) = flight.get_mut(index as usize) {
                        slot.take();
                    }
                }
            }
        }
    }
}

fn truncated(name: &str, end: u64) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, format!("{name} ends at byte {end}, inside a record batch"))
}

fn fill(mut p: Pending) -> Filled {
    p.slot.set_filled(p.done);
    Filled { slot: p.slot, data: p.skip..p.need }
}

/// Whether a short read of `n` bytes (of `asked`), leaving `p` still short of what it needs,
/// is the end of the file. Nothing read is; with O_DIRECT a read that stops off the alignment
/// is too (the file ends there), while one that stops on it may be a partial transfer and is
/// asked again: a read at the end then returns nothing.
fn at_end(p: &Pending, n: usize, asked: usize) -> bool {
    n == 0 || (p.direct && n < asked && !p.done.is_multiple_of(ALIGN))
}

/// Reads a pending read to its end with `pread`.
fn pread_all(file: &File, mut p: Pending, name: &str) -> Result<Filled, (Pending, io::Error)> {
    while p.done < p.need {
        let asked = p.len - p.done;
        // SAFETY: the slot is ours (held in `p`) and `len <= capacity`, so
        // `[done, len)` lies within it; no other reference to its bytes exists.
        let buf = unsafe { std::slice::from_raw_parts_mut(p.slot.ptr().as_ptr().add(p.done), asked) };
        match file.read_at(buf, p.at + p.done as u64) {
            Ok(n) => {
                p.done += n;
                if p.done < p.need && at_end(&p, n, asked) {
                    let end = p.at + p.done as u64;
                    return Err((p, truncated(name, end)));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((p, e)),
        }
    }
    Ok(fill(p))
}

/// Submits what is queued. A full completion queue (EBUSY) or a moment's shortage (EAGAIN)
/// leaves the entries queued for the next wait, which submits them: not an error.
#[cfg(target_os = "linux")]
fn submit_queued(ring: &mut io_uring::IoUring) -> io::Result<()> {
    match ring.submit() {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EAGAIN) | Some(libc::EINTR)) => {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Opens `path`: with O_DIRECT where the file system takes it, unless most of the file is
/// in the page cache already (then copying from the cache beats reading the device again).
fn open_file(path: &Path) -> io::Result<(File, bool, String)> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let file = File::open(path)?;
        if let Some(cached) = cached_fraction(&file).filter(|&c| c >= 0.5) {
            return Ok((
                file,
                false,
                format!("buffered ({:.0}% of the file is in the page cache)", cached * 100.0),
            ));
        }
        match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path) {
            Ok(f) => return Ok((f, true, "O_DIRECT".into())),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                let why = "the file system refuses O_DIRECT";
                events::record(Event::new(
                    "io",
                    "O_DIRECT",
                    "buffered reads",
                    why,
                    path.display().to_string(),
                ));
                return Ok((File::open(path)?, false, format!("buffered ({why})")));
            }
            Err(e) => return Err(e),
        }
    }
    #[allow(unreachable_code)]
    Ok((File::open(path)?, false, "buffered".into()))
}

/// The share of `file`'s pages in the page cache (`mincore` over a read-only mapping), if it
/// can be told.
#[cfg(target_os = "linux")]
fn cached_fraction(file: &File) -> Option<f64> {
    let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
    if len == 0 {
        return None;
    }
    // SAFETY: the mapping is only passed to `mincore`, never read, so a concurrent change of
    // the file cannot be observed through it.
    let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok().filter(|&p| p > 0)?;
    let mut resident = vec![0u8; len.div_ceil(page)];
    // SAFETY: `map` is a mapping of `len` bytes starting page-aligned, and `resident` has one
    // byte per page of it, as mincore requires.
    let rc = unsafe { libc::mincore(map.as_ptr() as *mut libc::c_void, len, resident.as_mut_ptr()) };
    (rc == 0).then(|| resident.iter().filter(|&&b| b & 1 == 1).count() as f64 / resident.len() as f64)
}

/// An io_uring for `depth` reads into `staging`, with the staging memory registered as a fixed
/// buffer when the kernel allows (after raising `RLIMIT_MEMLOCK` to its hard limit if needed);
/// what it got, or why there is none.
#[cfg(target_os = "linux")]
fn uring(staging: &Staging, depth: usize) -> Result<(Engine, String), String> {
    let entries = (depth.max(1) * 2).next_power_of_two().clamp(8, 4096) as u32;
    let ring = io_uring::IoUring::new(entries).map_err(|e| e.to_string())?;
    let (base, len) = staging.region();
    let memlock = raise_memlock(len);
    let iov = [libc::iovec { iov_base: base.as_ptr().cast(), iov_len: len }];
    // SAFETY: the iovec describes the staging mapping, which stays mapped while the ring may
    // use it (the `Reader` holds the `Staging` alongside the ring).
    let registered = unsafe { ring.submitter().register_buffers(&iov) };
    let (fixed, what) = match registered {
        Ok(()) => (true, format!("{} MiB of fixed buffers", len >> 20)),
        Err(e) => (false, format!("plain reads (fixed buffers refused: {e}; {memlock})")),
    };
    Ok((Engine::Uring { ring: Box::new(ring), fixed, flight: Vec::new() }, what))
}

#[cfg(not(target_os = "linux"))]
fn uring(_: &Staging, _: usize) -> Result<(Engine, String), String> {
    Err("not Linux".into())
}

/// Raises the soft `RLIMIT_MEMLOCK` toward `bytes` (up to the hard limit); says what it is.
#[cfg(target_os = "linux")]
fn raise_memlock(bytes: usize) -> String {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return "RLIMIT_MEMLOCK unknown".into();
    }
    let want = bytes as libc::rlim_t;
    if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < want {
        let raised = libc::rlimit { rlim_cur: want.min(lim.rlim_max), rlim_max: lim.rlim_max };
        // SAFETY: a valid rlimit; raising the soft limit up to the hard one is always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
            lim = raised;
        }
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        "RLIMIT_MEMLOCK unlimited".into()
    } else {
        format!("RLIMIT_MEMLOCK {} KiB", lim.rlim_cur / 1024)
    }
}

/// Queues the rest of read `p` (from `p.done`) as entry `index`.
#[cfg(target_os = "linux")]
fn push_read(
    ring: &mut io_uring::IoUring,
    fixed: bool,
    file: &File,
    index: usize,
    p: &Pending,
) -> io::Result<()> {
    use io_uring::{opcode, types};
    use std::os::fd::AsRawFd;
    let fd = types::Fd(file.as_raw_fd());
    // SAFETY: `done < len <= capacity`, so the pointer stays inside the slot.
    let buf = unsafe { p.slot.ptr().as_ptr().add(p.done) };
    let len = u32::try_from(p.len - p.done).map_err(|_| io::Error::other("a read of more than 4 GiB"))?;
    let offset = p.at + p.done as u64;
    let entry = if fixed {
        opcode::ReadFixed::new(fd, buf, len, 0).offset(offset).build()
    } else {
        opcode::Read::new(fd, buf, len).offset(offset).build()
    }
    .user_data(index as u64);
    // SAFETY: the buffer (the slot, held in the flight table until the completion is reaped)
    // and the file stay valid until the kernel is done with the read; with `fixed`, the buffer
    // lies inside the registered region (buffer 0, the whole staging mapping).
    unsafe { ring.submission().push(&entry) }.map_err(|_| io::Error::other("the submission queue is full"))
}

/// What [`staged_read`] did.
#[derive(Clone, Debug)]
pub struct StagedRead {
    /// Bytes read (the file's size).
    pub bytes: u64,
    /// How: io_uring or pread, fixed buffers, O_DIRECT, with the reason for each fallback.
    pub how: String,
}

/// Reads all of `path` through staging memory in `chunk`-byte reads, `in_flight` at once, and
/// throws the bytes away: the I/O path of the streamer alone, for measuring it.
pub fn staged_read(path: &Path, chunk: usize, in_flight: usize, mode: IoMode) -> io::Result<StagedRead> {
    let size = std::fs::metadata(path)?.len();
    let chunk = chunk.max(ALIGN).div_ceil(ALIGN) * ALIGN;
    let staging = Staging::new(in_flight.max(1), chunk + ALIGN)?;
    let mut reader = Reader::open(path, &staging, mode, in_flight.max(1))?;
    let (mut next, mut got) = (0u64, 0u64);
    loop {
        while next < size {
            let Some(slot) = staging.try_take() else { break };
            let len = (size - next).min(chunk as u64) as usize;
            reader.submit(next, slot, next, len)?;
            next += len as u64;
        }
        match reader.complete() {
            Some((_, Ok(filled))) => got += filled.data.len() as u64,
            Some((_, Err(e))) => return Err(e),
            None => break,
        }
    }
    if got != size {
        return Err(io::Error::other(format!("read {got} of {size} bytes")));
    }
    Ok(StagedRead { bytes: got, how: reader.how().to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(staging: &Staging, direct: bool, done: usize) -> Pending {
        let slot = staging.try_take().expect("a slot");
        Pending { tag: 0, slot, at: 0, len: 3 * ALIGN, need: 3 * ALIGN, skip: 0, done, direct }
    }

    #[test]
    fn which_short_reads_are_the_end_of_the_file() {
        let staging = Staging::new(1, 4 * ALIGN).expect("staging");
        // Nothing read: the end, direct or not.
        assert!(at_end(&pending(&staging, false, ALIGN), 0, 2 * ALIGN));
        assert!(at_end(&pending(&staging, true, ALIGN), 0, 2 * ALIGN));
        // Buffered: a short read is only partial; ask again.
        assert!(!at_end(&pending(&staging, false, ALIGN + 100), 100, 2 * ALIGN));
        // O_DIRECT stopping off the alignment: the file ends there.
        assert!(at_end(&pending(&staging, true, ALIGN + 100), 100, 2 * ALIGN));
        // O_DIRECT stopping on the alignment: maybe partial; ask again (the end reads 0).
        assert!(!at_end(&pending(&staging, true, 2 * ALIGN), ALIGN, 2 * ALIGN));
    }
}
