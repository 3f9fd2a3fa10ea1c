//! Every `MERIDIAN_*` environment variable meridian reads, checked in one place: a program
//! calls [`check`] at start, so a bad value is an error before anything runs — not only when
//! (or if) the code that reads it is reached — and a misspelt name is said, not ignored.
//!
//! An empty value means the same as an unset one, for every variable.

use std::path::Path;

use crate::autotune::store::{PATH_ENV, SWITCH_ENV};
use crate::autotune::Store;
use crate::engine::{memory_budget_from_env, EngineError, Mode, MEMORY_BUDGET_ENV, MODE_ENV};
use crate::events::{self, LOG_ENV, STRICT_ENV};

/// A variable meridian reads: its name, and how a value is checked (`Ok`: fine; `Err`: why
/// not). Empty values never reach the check.
struct Variable {
    name: &'static str,
    check: fn(&str) -> Result<(), String>,
}

fn any(_: &str) -> Result<(), String> {
    Ok(())
}

/// The variables, one entry each; a new one is added here or it is reported as unknown.
const VARIABLES: &[Variable] = &[
    Variable {
        name: MODE_ENV,
        check: |v| Mode::parse(v).map(drop).ok_or_else(|| EngineError::BadModeEnv(v.to_owned()).to_string()),
    },
    Variable {
        name: MEMORY_BUDGET_ENV,
        check: |_| memory_budget_from_env().map(drop).map_err(|e| e.to_string()),
    },
    Variable { name: STRICT_ENV, check: |_| events::strict_from_env().map(drop) },
    Variable { name: LOG_ENV, check: any },
    Variable { name: SWITCH_ENV, check: |_| Store::path_from_env().map(drop).map_err(|e| e.to_string()) },
    Variable { name: PATH_ENV, check: any },
    #[cfg(unix)]
    Variable { name: crate::stream::IO_ENV, check: |_| crate::stream::IoMode::from_env().map(drop) },
    Variable {
        name: crate::cuda::REGISTERS_ENV,
        check: |_| crate::cuda::register_cap().map(drop).map_err(|e| e.to_string()),
    },
    Variable {
        name: crate::cuda::DISPATCH_ENV,
        check: |v| crate::cuda::executor::dispatch_from(Some(v)).map(drop),
    },
    Variable {
        name: crate::cuda::JIT_JOIN_PATH_ENV,
        check: |v| crate::cuda::JoinPath::parse(Some(v)).map(drop).map_err(|e| e.to_string()),
    },
    Variable { name: crate::cuda::heap::HEAP_ENV, check: |v| crate::cuda::heap::heap_from(v).map(drop) },
    Variable { name: "MERIDIAN_CUBIN_CACHE", check: any },
];

/// Variables of meridian's own test suites and scripts: set around meridian, never read by it.
const HARNESS: &[&str] = &[
    "MERIDIAN_REQUIRE_NVRTC",
    "MERIDIAN_REQUIRE_SHAPELY",
    "MERIDIAN_UPDATE_DOCS",
    "MERIDIAN_UPDATE_GOLDEN",
    "MERIDIAN_BLESS",
    "MERIDIAN_JIT_CASES",
    "MERIDIAN_DIFF_CASES",
    "MERIDIAN_DAMAGE_CASES",
    "MERIDIAN_AUTOTUNE_TEST_CHILD",
];

/// Checks every `MERIDIAN_*` variable set: `Err` with the first bad value (the variable and
/// what it may be), else the warnings to show — a name meridian does not read, an event log
/// it cannot write (an error instead under strict mode, which asks that nothing be dropped).
pub fn check() -> Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    let mut set: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .filter(|(k, _)| k.starts_with("MERIDIAN_"))
        .collect();
    set.sort();
    for (name, value) in &set {
        match VARIABLES.iter().find(|v| v.name == name) {
            Some(v) if !value.is_empty() => (v.check)(value)?,
            Some(_) => {}
            None if HARNESS.contains(&name.as_str()) => {}
            None => warnings.push(format!("{name} is not a variable meridian reads (ignored){}", near(name))),
        }
    }
    if let Err(why) = event_log_writable() {
        if events::strict_from_env()? {
            return Err(format!("{why} ({STRICT_ENV}=1: nothing may be dropped)"));
        }
        warnings.push(why);
    }
    Ok(warnings)
}

/// "; did you mean X?" for the known name closest to `name`, when one is close.
fn near(name: &str) -> String {
    let distance = |a: &str, b: &str| {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.iter().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    };
    VARIABLES
        .iter()
        .map(|v| (distance(name, v.name), v.name))
        .min()
        .filter(|(d, _)| *d <= 3)
        .map_or_else(String::new, |(_, v)| format!("; did you mean {v}?"))
}

/// Whether the event log named by `MERIDIAN_EVENT_LOG` (if any) can be appended to: opened
/// for append (created if missing, as the first event would, so a command that records no
/// event still leaves the empty log the user named; without blocking, so a FIFO
/// nobody reads is refused rather than waited on), nothing written. A regular file, a
/// terminal or `/dev/stderr` will do; a directory, a missing folder, a read-only file or
/// `/dev/full` (where every write fails) will not.
pub fn event_log_writable() -> Result<(), String> {
    let Some(path) = std::env::var_os(LOG_ENV).filter(|p| !p.is_empty()) else { return Ok(()) };
    let path = Path::new(&path);
    let fail = |why: &dyn std::fmt::Display| {
        format!("{LOG_ENV}={}: {why}: events will not be written", path.display())
    };
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| fail(&e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = file.metadata().map_err(|e| fail(&e))?;
        let full = std::fs::metadata("/dev/full").ok().filter(|f| f.file_type().is_char_device());
        if m.file_type().is_char_device() && full.is_some_and(|f| f.rdev() == m.rdev()) {
            return Err(fail(&"every write to /dev/full fails"));
        }
    }
    drop(file);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
    use super::*;

    #[test]
    fn every_variable_is_read_somewhere_and_near_names_are_suggested() {
        assert_eq!(near("MERIDIAN_EXECUTON_MODE"), "; did you mean MERIDIAN_EXECUTION_MODE?");
        assert_eq!(near("MERIDIAN_SOMETHING_ELSE_ENTIRELY"), "");
        // No variable listed twice, none also a harness variable.
        for (i, v) in VARIABLES.iter().enumerate() {
            assert!(VARIABLES[i + 1..].iter().all(|w| w.name != v.name), "{}", v.name);
            assert!(!HARNESS.contains(&v.name), "{}", v.name);
            assert!(v.name.starts_with("MERIDIAN_"));
        }
    }

    #[test]
    fn the_mode_is_checked_by_value() {
        let find = |n: &str| VARIABLES.iter().find(|v| v.name == n).unwrap();
        assert!((find(MODE_ENV).check)("gpu").is_ok());
        let e = (find(MODE_ENV).check)("fast").unwrap_err();
        assert!(e.contains("MERIDIAN_EXECUTION_MODE") && e.contains("fast"), "{e}");
    }

    #[test]
    fn the_gpu_variables_are_known_and_checked_by_value() {
        let find = |n: &str| VARIABLES.iter().find(|v| v.name == n).unwrap();
        assert!((find("MERIDIAN_GPU_PROTOCOL").check)("leaders").is_ok());
        assert!((find("MERIDIAN_GPU_PROTOCOL").check)("fast").is_err());
        assert!((find("MERIDIAN_GPU_JIT_JOIN_PATH").check)("always").is_ok());
        assert!((find("MERIDIAN_GPU_JIT_JOIN_PATH").check)("never").is_err());
    }
}
