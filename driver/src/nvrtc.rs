//! NVRTC compilation to cubin, with an on-disk cache.
//!
//! Cubins (SASS for one architecture), not PTX: a cubin loads on any driver of its CUDA major
//! version without a JIT step, and its compile errors surface here rather than at load time.
//! The cache key is the BLAKE3 hash of the source, the options, the architecture and the
//! NVRTC version, so a compiler upgrade never serves a stale binary.

use std::ffi::{c_char, CString};
use std::fmt;
use std::path::{Path, PathBuf};

use cudarc::nvrtc::{result, sys};

use crate::error::GpuError;
use crate::probe::nvrtc_library_present;

/// A GPU architecture, as NVRTC names it (`sm_90`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Arch {
    /// Compute capability major.
    pub major: u32,
    /// Compute capability minor.
    pub minor: u32,
}

impl Arch {
    /// Hopper (H100, H200): `sm_90`.
    pub const SM_90: Arch = Arch { major: 9, minor: 0 };
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sm_{}{}", self.major, self.minor)
    }
}

/// A compiled cubin and the log NVRTC produced for it (warnings, if any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cubin {
    bytes: Vec<u8>,
    arch: Arch,
    log: String,
}

impl Cubin {
    /// The ELF image.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The architecture it was compiled for.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// NVRTC's log (empty when read from the cache).
    pub fn log(&self) -> &str {
        &self.log
    }
}

/// The oldest NVRTC this crate uses: cubin output (`nvrtcGetCUBIN`) and sm_90 need 12.0.
pub const MIN_NVRTC: (i32, i32) = (12, 0);

/// NVRTC's version (major, minor).
pub fn nvrtc_version() -> Result<(i32, i32), GpuError> {
    if !nvrtc_library_present() {
        return Err(GpuError::NoNvrtc);
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is loadable (checked above); nvrtcVersion writes two ints.
    let r = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    nvrtc_ok(r, "nvrtcVersion")?;
    Ok((major, minor))
}

fn nvrtc_ok(r: sys::nvrtcResult, what: &'static str) -> Result<(), GpuError> {
    if r == sys::nvrtcResult::NVRTC_SUCCESS {
        Ok(())
    } else {
        Err(GpuError::Nvrtc { what, code: format!("{r:?}") })
    }
}

/// Destroys an NVRTC program on every path out of `compile`.
struct ProgramGuard(sys::nvrtcProgram);

impl Drop for ProgramGuard {
    fn drop(&mut self) {
        // SAFETY: the program was created by nvrtcCreateProgram and is destroyed once, here.
        let _ = unsafe { result::destroy_program(self.0) };
    }
}

/// The options every compilation gets, before the caller's.
fn base_options(arch: Arch) -> Vec<String> {
    vec![format!("--gpu-architecture={arch}"), "--std=c++17".to_owned(), "--device-int128".to_owned()]
}

/// Compiles CUDA C++ `source` (named `name` in messages) to a cubin for `arch`. A failed
/// compilation returns [`GpuError::Compile`] carrying NVRTC's log.
///
/// ```no_run
/// let cubin = meridian_driver::compile_cubin(
///     "add.cu",
///     r#"extern "C" __global__ void add(double* x) { x[0] += 1.0; }"#,
///     meridian_driver::Arch::SM_90,
///     &[],
/// )?;
/// assert!(cubin.bytes().starts_with(b"\x7fELF"));
/// # Ok::<(), meridian_driver::GpuError>(())
/// ```
pub fn compile_cubin(name: &str, source: &str, arch: Arch, options: &[&str]) -> Result<Cubin, GpuError> {
    let version = nvrtc_version()?;
    if version < MIN_NVRTC {
        // cudarc may have found an old libnvrtc.so (it tries several names); calling a symbol
        // that library lacks would panic inside cudarc.
        return Err(GpuError::Nvrtc {
            what: "version check",
            code: format!(
                "NVRTC {}.{} is too old: {}.{} or later is needed",
                version.0, version.1, MIN_NVRTC.0, MIN_NVRTC.1
            ),
        });
    }
    if options.iter().any(|o| o.contains('\0')) {
        // cudarc unwraps the conversion of each option to a C string.
        return Err(GpuError::Invalid("a compile option contains a NUL byte"));
    }
    let src = CString::new(source).map_err(|_| GpuError::Invalid("CUDA source contains a NUL byte"))?;
    let cname = CString::new(name).map_err(|_| GpuError::Invalid("source name contains a NUL byte"))?;
    let program = result::create_program(&src, Some(&cname))
        .map_err(|e| GpuError::Nvrtc { what: "nvrtcCreateProgram", code: format!("{:?}", e.0) })?;
    let guard = ProgramGuard(program);
    let mut opts = base_options(arch);
    opts.extend(options.iter().map(|o| (*o).to_owned()));
    // SAFETY: `program` is live (owned by `guard`); options are NUL-free strings (cudarc
    // converts them to C strings and keeps them alive for the call).
    let compiled = unsafe { result::compile_program(guard.0, &opts) };
    // SAFETY: `program` is live; the log is read whether or not compilation succeeded.
    let log = match unsafe { result::get_program_log(guard.0) } {
        Ok(raw) => {
            let bytes: Vec<u8> = raw.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
            String::from_utf8_lossy(&bytes).trim_end().to_owned()
        }
        Err(e) => format!("(the compile log could not be read: {:?})", e.0),
    };
    if compiled.is_err() {
        return Err(GpuError::Compile { name: name.to_owned(), arch: arch.to_string(), log });
    }
    let mut size = 0usize;
    // SAFETY: `program` compiled successfully for a real architecture, so it has a cubin;
    // the size is written through a valid reference.
    nvrtc_ok(unsafe { sys::nvrtcGetCUBINSize(guard.0, &mut size) }, "nvrtcGetCUBINSize")?;
    let mut bytes = vec![0u8; size];
    // SAFETY: `bytes` has exactly the size NVRTC reported for this program's cubin.
    nvrtc_ok(unsafe { sys::nvrtcGetCUBIN(guard.0, bytes.as_mut_ptr().cast::<c_char>()) }, "nvrtcGetCUBIN")?;
    Ok(Cubin { bytes, arch, log })
}

/// Whether `bytes` look like a whole cubin: a 64-bit ELF image for the CUDA machine type
/// (`EM_CUDA`, 190) whose section header table fits in the file.
fn looks_like_cubin(bytes: &[u8]) -> bool {
    if bytes.len() < 64 || !bytes.starts_with(b"\x7fELF") || bytes[4] != 2 || bytes[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| u64::from(u16::from_le_bytes([bytes[o], bytes[o + 1]]));
    let mut off = [0u8; 8];
    off.copy_from_slice(&bytes[40..48]);
    let section_table_end = u64::from_le_bytes(off).saturating_add(u16_at(58).saturating_mul(u16_at(60)));
    u16_at(18) == 190 && section_table_end <= bytes.len() as u64
}

/// Whether a cache lookup found a usable cubin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// The cubin came from the cache.
    Hit,
    /// Nothing was cached; the cubin was compiled and stored.
    Miss,
    /// A cached file was unusable (not a whole CUDA ELF image); it was recompiled and replaced.
    Replaced,
}

/// Cubins on disk, one file per (source, options, arch, NVRTC version).
#[derive(Clone, Debug)]
pub struct CubinCache {
    dir: PathBuf,
}

impl CubinCache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> CubinCache {
        CubinCache { dir: dir.into() }
    }

    /// The default folder: `$MERIDIAN_CUBIN_CACHE`, else `$XDG_CACHE_HOME/meridian/cubin`,
    /// else `$HOME/.cache/meridian/cubin`, else a folder under the system temp dir.
    pub fn default_dir() -> PathBuf {
        let env = |k| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        env("MERIDIAN_CUBIN_CACHE")
            .or_else(|| env("XDG_CACHE_HOME").map(|p| p.join("meridian/cubin")))
            .or_else(|| env("HOME").map(|p| p.join(".cache/meridian/cubin")))
            .unwrap_or_else(|| std::env::temp_dir().join("meridian-cubin"))
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds (or would hold) this compilation's cubin.
    pub fn path_for(&self, source: &str, arch: Arch, options: &[&str], nvrtc: (i32, i32)) -> PathBuf {
        let mut h = blake3::Hasher::new();
        h.update(source.as_bytes());
        for o in base_options(arch).iter().map(String::as_str).chain(options.iter().copied()) {
            h.update(&[0]);
            h.update(o.as_bytes());
        }
        h.update(format!("\0{arch}\0nvrtc {}.{}", nvrtc.0, nvrtc.1).as_bytes());
        let key = h.finalize().to_hex();
        self.dir.join(format!("{}-{arch}-nvrtc{}.{}.cubin", &key[..32], nvrtc.0, nvrtc.1))
    }

    /// The cached cubin for this compilation, compiling and storing it if needed.
    pub fn get_or_compile(
        &self,
        name: &str,
        source: &str,
        arch: Arch,
        options: &[&str],
    ) -> Result<(Cubin, CacheOutcome), GpuError> {
        let path = self.path_for(source, arch, options, nvrtc_version()?);
        let outcome = match std::fs::read(&path) {
            Ok(bytes) if looks_like_cubin(&bytes) => {
                return Ok((Cubin { bytes, arch, log: String::new() }, CacheOutcome::Hit));
            }
            Ok(_) => CacheOutcome::Replaced,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CacheOutcome::Miss,
            Err(source) => return Err(GpuError::Cache { path, source }),
        };
        let cubin = compile_cubin(name, source, arch, options)?;
        self.store(&path, cubin.bytes())?;
        Ok((cubin, outcome))
    }

    /// Writes atomically: a temporary file with a name no other writer uses (process, thread
    /// and a counter; created exclusively), then a rename over the final name, so a reader
    /// never sees half a cubin and concurrent writers of one key each leave a whole one.
    fn store(&self, path: &Path, bytes: &[u8]) -> Result<(), GpuError> {
        use std::io::Write;
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let io = |source| GpuError::Cache { path: path.to_path_buf(), source };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let unique = format!(
            "tmp-{}-{:?}-{}",
            std::process::id(),
            std::thread::current().id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "");
        let tmp = path.with_extension(unique);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
            let _ = std::fs::remove_file(&tmp);
            // Another writer may have published the same key first; theirs is as good.
            if !std::fs::read(path).is_ok_and(|b| looks_like_cubin(&b)) {
                return Err(io(e));
            }
        }
        Ok(())
    }
}
