//! The GPU JIT's generated code built as host C++ at run time: what the emulated device
//! compiles a program's own kernel to, and what the JIT's differential tests load.
//!
//! A library is built once for its source (the device sources, then the generated code) and
//! compiler, in a cache directory under the system's temporary directory, written under a
//! unique name and renamed into place, so concurrent builders of one source each leave a whole
//! library and a reader never loads half of one.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use meridian_bytecode::VerifiedProgram;
use meridian_kernels::cuda::{jit, HOST_SHIM, SOURCES};

use crate::per_job::{RowsEntry, SplitEntry};

/// The compiler: `$CXX`, else `c++`.
fn compiler() -> String {
    std::env::var("CXX").ok().filter(|c| !c.is_empty()).unwrap_or_else(|| "c++".into())
}

/// The flags of the host shim's own build (`build.rs`): the same arithmetic as the device and
/// Rust (no contraction, no fast-math), warnings on.
const FLAGS: &[&str] = &[
    "-std=c++17",
    "-O1",
    "-ffp-contract=off",
    "-fno-fast-math",
    "-pthread",
    "-shared",
    "-fPIC",
    "-fvisibility=hidden",
    "-Wall",
    "-Wextra",
    "-Wno-unused-label",
];

/// The translation unit of `programs`' generated code (those the GPU JIT refuses left out)
/// built as host C++.
pub fn host_unit<'a>(programs: impl IntoIterator<Item = (&'a str, &'a VerifiedProgram)>) -> String {
    let mut src = String::from(
        "#define MR_HOST 1\n#include \"megakernel.cu\"\nthread_local MrHostThread mr_host_thread;\n",
    );
    for (name, program) in programs {
        if let Ok(code) = jit::generate(program, name) {
            src.push_str(&code);
        }
    }
    src
}

/// Builds `unit` (from [`host_unit`]) into a shared library, or finds it built; `Err` carries
/// the compiler's output.
pub fn build_library(unit: &str) -> Result<PathBuf, String> {
    let compiler = compiler();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (name, text) in SOURCES {
        (name, text).hash(&mut h);
    }
    (HOST_SHIM, unit, &compiler, FLAGS).hash(&mut h);
    let dir = std::env::temp_dir().join("meridian-host-jit").join(format!("{:016x}", h.finish()));
    let lib = dir.join("libmeridian_jit.so");
    if lib.is_file() {
        return Ok(lib);
    }
    let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
    for (name, text) in SOURCES.iter().chain([&("host_shim.h", HOST_SHIM)]) {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| io("writing", &p, e))?;
    }
    let unique = format!("{}-{:?}", std::process::id(), std::thread::current().id())
        .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    let cpp = dir.join(format!("jit-{unique}.cpp"));
    std::fs::write(&cpp, unit).map_err(|e| io("writing", &cpp, e))?;
    let tmp = dir.join(format!("lib-{unique}.so"));
    let out = Command::new(&compiler)
        .args(FLAGS)
        .arg("-I")
        .arg(&dir)
        .arg("-o")
        .arg(&tmp)
        .arg(&cpp)
        .output()
        .map_err(|e| format!("running {compiler}: {e}"))?;
    let _ = std::fs::remove_file(&cpp);
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{compiler} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    std::fs::rename(&tmp, &lib).map_err(|e| io("renaming into", &lib, e))?;
    Ok(lib)
}

/// A generated program's kernel loaded from its host library.
#[derive(Debug)]
pub struct HostKernel {
    entry: RowsEntry,
    split: Option<SplitEntry>,
    // Declared after the entries, which point into it: the library outlives every call.
    _lib: libloading::Library,
}

impl HostKernel {
    /// Loads the host entries of `symbol`'s generated kernels from `lib`: the per-job kernel
    /// (`mr_jit_host_rows_<id>`) and, for a point join that splits, its split kernels
    /// (`mr_jit_host_split_<id>`).
    pub fn load(lib: &Path, symbol: &str) -> Result<HostKernel, String> {
        // SAFETY: the library is generated code built by `build_library`; loading it runs no
        // initialiser beyond the C++ runtime's.
        let lib = unsafe { libloading::Library::new(lib) }
            .map_err(|e| format!("loading {}: {e}", lib.display()))?;
        let id = jit::identifier(symbol);
        let name = format!("mr_jit_host_rows_{id}");
        // SAFETY: every generated host entry has the per-job kernel's parameters (`RowsEntry`).
        let entry = unsafe { lib.get::<RowsEntry>(name.as_bytes()) }
            .map(|s| *s)
            .map_err(|e| format!("{name} is not in the library: {e}"))?;
        let split_name = format!("mr_jit_host_split_{id}");
        // SAFETY: a generated split entry has the per-job kernel's parameters, the scratch
        // and the threads a block (`SplitEntry`); a program that does not split has none.
        let split = unsafe { lib.get::<SplitEntry>(split_name.as_bytes()) }.ok().map(|s| *s);
        Ok(HostKernel { entry, split, _lib: lib })
    }

    /// The entry, callable while `self` lives.
    pub fn entry(&self) -> RowsEntry {
        self.entry
    }

    /// The split kernels' entry (the fast kernel's blocks, then the general one's), for a
    /// point join whose kernel splits (`jit::split_join`); callable while `self` lives.
    pub fn split(&self) -> Option<SplitEntry> {
        self.split
    }
}
