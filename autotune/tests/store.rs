//! The autotune store on disk: round trips, every kind of bad file, failing disks, processes
//! saving at once, and saves killed at random points.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use meridian_autotune::fs::{Failure, Fault, FaultyFs, Op};
use meridian_autotune::store::FORMAT_VERSION;
use meridian_autotune::{
    Effect, Key, Pair, Params, PendingRace, Record, Store, StoreError, Timing, VerdictNote, Warning,
};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meridian-autotune-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn key(program: &str, family: &str) -> Key {
    Key {
        program: program.into(),
        binding: "points,polygons+index".into(),
        rows_class: 20,
        family: family.into(),
        adapter: "test cpu x2".into(),
    }
}

fn record(rows_per_claim: u32, at: u64) -> Record {
    Record {
        params: Params { rows_per_claim: Some(rows_per_claim), ..Params::default() },
        timing: Timing { mean_ns: 1.5e6, spread: 0.02, samples: 8 },
        gain: 0.07,
        compile_cost_ns: 0,
        recorded_at_ms: at,
        verdict: None,
        pending: None,
        loads: Vec::new(),
    }
}

fn saved_store(path: &Path) -> Vec<u8> {
    let mut s = Store::open(path).unwrap().store;
    s.insert(key("a", "cpu.rows_per_claim"), record(4096, 1));
    s.insert(key("b", "cpu.rows_per_claim"), record(65536, 2));
    assert!(s.save().unwrap().is_empty());
    std::fs::read(path).unwrap()
}

fn temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect()
}

#[test]
fn records_round_trip() {
    let d = dir("round");
    let path = d.join("sub").join("autotune.bin");
    let opened = Store::open(&path).unwrap();
    assert!(opened.store.is_empty() && opened.warnings.is_empty());
    saved_store(&path);
    let s = Store::open(&path).unwrap();
    assert!(s.warnings.is_empty());
    assert_eq!(s.store.len(), 2);
    assert_eq!(s.store.get(&key("a", "cpu.rows_per_claim")), Some(&record(4096, 1)));
    assert!(s.store.to_json().contains("\"rows_per_claim\": 65536"));
    assert!(temps(path.parent().unwrap()).is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn every_kind_of_bad_file_is_moved_aside_with_a_warning() {
    let d = dir("bad");
    let path = d.join("autotune.bin");
    let good = saved_store(&path);
    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x10;
    let mut long = good.clone();
    long.extend_from_slice(b"trailing");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty file", Vec::new(), "truncated"),
        ("torn header", good[..10].to_vec(), "truncated"),
        ("torn records", good[..good.len() - 5].to_vec(), "truncated"),
        ("bytes after the records", long, "extended"),
        ("a flipped bit", flipped, "checksum"),
        ("not a store", b"rows_per_claim=4096\n".repeat(3), "magic"),
    ];
    for (name, bytes, says) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let opened = Store::open(&path).unwrap();
        assert!(opened.store.is_empty(), "{name}");
        let [w] = opened.warnings.as_slice() else { panic!("{name}: {:?}", opened.warnings) };
        let Warning::Corrupt { moved_to: moved, .. } = w else { panic!("{name}: {w}") };
        assert!(w.to_string().contains(says), "{name}: {w}");
        // Nothing lost: the bytes are where the warning says, and the store's place is free.
        assert_eq!(std::fs::read(moved).unwrap(), bytes, "{name}");
        assert!(!path.exists(), "{name}");
        std::fs::remove_file(moved).unwrap();
        // And the store works on.
        let mut s = opened.store;
        s.insert(key("c", "route"), record(1, 3));
        s.save().unwrap();
        assert_eq!(Store::open(&path).unwrap().store.len(), 1, "{name}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_newer_format_is_left_alone_and_never_saved_over() {
    let d = dir("future");
    let path = d.join("autotune.bin");
    let mut future = saved_store(&path);
    future[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    std::fs::write(&path, &future).unwrap();
    let opened = Store::open(&path).unwrap();
    assert!(opened.store.is_empty());
    let [w @ Warning::Future { version, .. }] = opened.warnings.as_slice() else {
        panic!("{:?}", opened.warnings)
    };
    assert_eq!(*version, FORMAT_VERSION + 1);
    assert!(w.to_string().contains("newer meridian"), "{w}");
    let mut s = opened.store;
    s.insert(key("a", "route"), record(1, 1));
    assert!(matches!(s.save(), Err(StoreError::WouldOverwrite { .. })));
    assert!(matches!(s.clear(), Err(StoreError::WouldOverwrite { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), future);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_bad_file_that_cannot_be_moved_is_never_saved_over() {
    let d = dir("stuck");
    let path = d.join("autotune.bin");
    std::fs::write(&path, b"not a store at all, but someone's file").unwrap();
    // Every rename fails for the first two tries: at open, and at the first save.
    let faults =
        (0..2).map(|nth| Fault { op: Op::Rename, nth, failure: Failure::Os(libc::EACCES) }).collect();
    let opened = Store::open_with(&path, Arc::new(FaultyFs::new(faults))).unwrap();
    assert!(matches!(opened.warnings.as_slice(), [Warning::Stuck { .. }]), "{:?}", opened.warnings);
    let mut s = opened.store;
    s.insert(key("a", "route"), record(1, 1));
    assert!(matches!(s.save(), Err(StoreError::WouldOverwrite { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), b"not a store at all, but someone's file");
    // Once it can be moved, the next save moves it aside (said) and saves.
    let warnings = s.save().unwrap();
    let [Warning::Corrupt { moved_to, .. }] = warnings.as_slice() else { panic!("{warnings:?}") };
    assert_eq!(std::fs::read(moved_to).unwrap(), b"not a store at all, but someone's file");
    assert_eq!(Store::open(&path).unwrap().store.len(), 1);
    let _ = std::fs::remove_dir_all(&d);
}

/// Only a regular file may be a store: a FIFO, a directory or a device at the store's path is
/// an error that leaves it where it is (it was renamed aside: issue 28), and `/dev/null` in
/// `MERIDIAN_AUTOTUNE_PATH` turns autotune off.
#[cfg(unix)]
#[test]
fn special_files_are_errors_left_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let d = dir("special");
    let fifo = d.join("autotune.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string; no memory is shared.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Opening it must not block on the FIFO (nothing writes to it) and must not move it.
    let e = Store::open(&fifo).unwrap_err();
    assert!(matches!(e, StoreError::NotAFile { what: "a FIFO (named pipe)", .. }), "{e}");
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    let sub = d.join("a-directory");
    std::fs::create_dir(&sub).unwrap();
    let e = Store::open(&sub).unwrap_err();
    assert!(e.to_string().contains("a directory, not a store file"), "{e}");
    assert!(sub.is_dir());
    for device in ["/dev/null", "/dev/zero"] {
        let e = Store::open(device).unwrap_err();
        assert!(e.to_string().contains("a character device"), "{e}");
        assert!(std::fs::metadata(device).unwrap().file_type().is_char_device());
    }
    assert_eq!(names_beside(&d), ["a-directory", "autotune.fifo"]);
}

/// A store that is a symbolic link is read and saved through the link: the target is
/// replaced atomically and the link stays a link.
#[cfg(unix)]
#[test]
fn a_linked_store_stays_a_link() {
    let d = dir("link");
    std::fs::create_dir(d.join("real")).unwrap();
    let target = d.join("real").join("store.bin");
    saved_store(&target);
    let link = d.join("autotune.bin");
    std::os::unix::fs::symlink("real/store.bin", &link).unwrap();
    let mut s = Store::open(&link).unwrap().store;
    assert_eq!(s.len(), 2);
    assert_eq!(s.path(), link);
    s.insert(key("c", "route"), record(1, 3));
    assert!(s.save().unwrap().is_empty());
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(Store::open(&target).unwrap().store.len(), 3);
    // A dangling link: the store is created where it points.
    let dangling = d.join("dangling.bin");
    std::os::unix::fs::symlink("real/new.bin", &dangling).unwrap();
    let mut s = Store::open(&dangling).unwrap().store;
    s.insert(key("d", "route"), record(1, 4));
    s.save().unwrap();
    assert!(std::fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink());
    assert_eq!(Store::open(d.join("real/new.bin")).unwrap().store.len(), 1);
}

/// A regular file longer than any store is set aside without being read whole.
#[test]
fn an_overlong_file_is_set_aside_unread() {
    let d = dir("long");
    let path = d.join("autotune.bin");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(meridian_autotune::store::MAX_STORE_BYTES + 1).unwrap();
    let opened = Store::open(&path).unwrap();
    let [Warning::Corrupt { why, .. }] = opened.warnings.as_slice() else { panic!("{:?}", opened.warnings) };
    assert!(why.contains("longer than a store may be"), "{why}");
    assert!(opened.store.is_empty());
}

fn names_beside(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_failing_disk_leaves_the_old_store() {
    let d = dir("faults");
    let path = d.join("autotune.bin");
    let faults = [
        (Op::Lock, Failure::Os(libc::EIO), "lock"),
        (Op::Read, Failure::Os(libc::EIO), "reading"),
        (Op::Write, Failure::Os(libc::ENOSPC), "writing"),
        (Op::Write, Failure::ShortWrite, "writing"),
        (Op::SyncFile, Failure::Os(libc::EIO), "writing"),
        (Op::Rename, Failure::Os(libc::EXDEV), "renaming"),
    ];
    for (op, failure, says) in faults {
        let old = saved_store(&path);
        // Loading reads once; the save's read is the second.
        let nth = usize::from(op == Op::Read);
        let fs = Arc::new(FaultyFs::new(vec![Fault { op, nth, failure }]));
        let mut s = Store::open_with(&path, fs).unwrap().store;
        s.insert(key("new", "route"), record(7, 9));
        let e = s.save().unwrap_err();
        assert!(e.to_string().contains(says), "{op:?}/{failure:?}: {e}");
        assert_eq!(std::fs::read(&path).unwrap(), old, "{op:?}/{failure:?}: the old store is intact");
        assert!(temps(&d).is_empty(), "{op:?}/{failure:?}: {:?}", temps(&d));
        // The next save, on a healthy disk, keeps both.
        let mut s = Store::open(&path).unwrap().store;
        s.insert(key("new", "route"), record(7, 9));
        s.save().unwrap();
        assert_eq!(Store::open(&path).unwrap().store.len(), 3);
        std::fs::remove_file(&path).unwrap();
    }
    // A failed directory fsync comes after the rename: the error is reported, and the file is
    // the new one (only its durability is in doubt).
    saved_store(&path);
    let fs =
        Arc::new(FaultyFs::new(vec![Fault { op: Op::SyncDir, nth: 0, failure: Failure::Os(libc::EIO) }]));
    let mut s = Store::open_with(&path, fs).unwrap().store;
    s.insert(key("new", "route"), record(7, 9));
    assert!(s.save().unwrap_err().to_string().contains("syncing the directory"));
    assert_eq!(Store::open(&path).unwrap().store.len(), 3);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn saves_merge_and_the_newer_record_of_a_key_wins() {
    let d = dir("merge");
    let path = d.join("autotune.bin");
    let mut one = Store::open(&path).unwrap().store;
    let mut two = Store::open(&path).unwrap().store;
    one.insert(key("a", "route"), record(1, 10));
    one.insert(key("shared", "route"), record(1, 10));
    two.insert(key("b", "route"), record(2, 10));
    two.insert(key("shared", "route"), record(2, 20));
    one.save().unwrap();
    two.save().unwrap();
    one.save().unwrap();
    let s = Store::open(&path).unwrap().store;
    assert_eq!(s.len(), 3);
    assert_eq!(s.get(&key("shared", "route")).unwrap().params.rows_per_claim, Some(2));
    let mut s = s;
    s.clear().unwrap();
    assert!(Store::open(&path).unwrap().store.is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn verdicts_races_in_progress_and_loads_round_trip() {
    let d = dir("evidence");
    let path = d.join("autotune.bin");
    let mut s = Store::open(&path).unwrap().store;
    let note = VerdictNote {
        candidate: Params { rows_per_claim: Some(65536), ..Params::default() },
        adopted: false,
        why: "at least 4.0% slower".into(),
        effect: Some(Effect { speedup: -0.08, low: -0.12, high: f64::NAN, pairs: 6 }),
    };
    let kept = Record::decided(
        Params { rows_per_claim: Some(16384), ..Params::default() },
        Timing { mean_ns: 1e6, spread: 0.03, samples: 6 },
        0.0,
        0,
        note,
    );
    s.insert(key("a", "cpu.rows_per_claim"), kept);
    let pairs = vec![
        Pair { conservative_ns: 2e6, speculative_ns: 1.5e6 },
        Pair { conservative_ns: 2.1e6, speculative_ns: f64::INFINITY },
    ];
    let open = Record::pending(PendingRace {
        candidate: Params { route: Some("jit".into()), ..Params::default() },
        pairs,
        compile_cost_ns: 900_000,
        more_pairs: Some(3),
    });
    assert!(!open.is_decided() && open.params == Params::default(), "a race in progress applies nothing");
    s.insert(key("a", "cpu.route"), open);
    s.note_load(&key("a", "cpu.rows_per_claim"), "meridian run x");
    s.save().unwrap();

    let back = Store::open(&path).unwrap().store;
    let kept = back.get(&key("a", "cpu.rows_per_claim")).unwrap();
    let v = kept.verdict.as_ref().unwrap();
    assert!(!v.adopted && v.candidate.rows_per_claim == Some(65536));
    assert_eq!(v.effect.unwrap().high, 0.0, "non-finite numbers are stored as 0");
    assert_eq!(kept.loads.len(), 1);
    assert_eq!(kept.loads[0].run, "meridian run x");
    let open = back.get(&key("a", "cpu.route")).unwrap().pending.clone().unwrap();
    assert_eq!(open.pairs.len(), 2);
    assert_eq!(open.pairs[1].speculative_ns, 0.0);
    assert_eq!(open.more_pairs, Some(3));

    // Two runs loading the same record keep both loads; at most the last eight are kept.
    let mut one = Store::open(&path).unwrap().store;
    let mut two = Store::open(&path).unwrap().store;
    one.note_load(&key("a", "cpu.rows_per_claim"), "run one");
    two.note_load(&key("a", "cpu.rows_per_claim"), "run two");
    one.save().unwrap();
    two.save().unwrap();
    let runs: Vec<String> = Store::open(&path)
        .unwrap()
        .store
        .get(&key("a", "cpu.rows_per_claim"))
        .unwrap()
        .loads
        .iter()
        .map(|l| l.run.clone())
        .collect();
    assert!(runs.contains(&"run one".to_owned()) && runs.contains(&"run two".to_owned()), "{runs:?}");
    for i in 0..20 {
        two.note_load(&key("a", "cpu.rows_per_claim"), &format!("run {i}"));
    }
    assert_eq!(two.get(&key("a", "cpu.rows_per_claim")).unwrap().loads.len(), Record::LOADS_KEPT);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_verdict_saved_by_another_run_beats_a_later_race_in_progress() {
    let d = dir("verdict-wins");
    let path = d.join("autotune.bin");
    let mut decided = Store::open(&path).unwrap().store;
    let mut open = Store::open(&path).unwrap().store;
    decided.insert(key("k", "cpu.route"), record(1, 10));
    decided.save().unwrap();
    // A run that raced the same key and ended later, its race still open.
    let mut pending = Record::pending(PendingRace {
        candidate: Params { route: Some("jit".into()), ..Params::default() },
        pairs: vec![Pair { conservative_ns: 1.0, speculative_ns: 1.0 }],
        compile_cost_ns: 0,
        more_pairs: None,
    });
    pending.recorded_at_ms = 20;
    open.insert(key("k", "cpu.route"), pending);
    open.save().unwrap();
    let r = Store::open(&path).unwrap().store.get(&key("k", "cpu.route")).cloned().unwrap();
    assert!(r.is_decided() && r.params.rows_per_claim == Some(1), "{r:?}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_record_written_before_verdicts_were_kept_still_reads() {
    let d = dir("older");
    let path = d.join("autotune.bin");
    let body = br#"{"records":[{"key":{"program":"p","binding":"point","rows_class":20,"family":"cpu.route","adapter":"cpu x (2 cores) x2"},"record":{"params":{"route":"jit"},"timing":{"mean_ns":1.0,"spread":0.0,"samples":5},"gain":0.1,"compile_cost_ns":1,"recorded_at_ms":5}}]}"#;
    let mut bytes = b"MRTUNE\0\0".to_vec();
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32(body).to_le_bytes());
    bytes.extend_from_slice(body);
    std::fs::write(&path, bytes).unwrap();
    let s = Store::open(&path).unwrap();
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let (_, r) = s.store.records().next().unwrap();
    assert!(r.is_decided() && r.verdict.is_none() && r.loads.is_empty());
    assert_eq!(r.params.route.as_deref(), Some("jit"));
    let _ = std::fs::remove_dir_all(&d);
}

/// CRC-32 (IEEE), as the store's frame uses.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

// ---- child processes ---------------------------------------------------------------------

const CHILD: &str = "MERIDIAN_AUTOTUNE_TEST_CHILD";

/// Runs only as a child of the tests below (`CHILD` = `role:path`).
#[test]
fn child() {
    let Ok(spec) = std::env::var(CHILD) else { return };
    let (role, path) = spec.split_once(':').unwrap();
    match role {
        // Saves generation after generation: every record of a generation carries its number.
        "churn" => {
            for generation in 1u64.. {
                let mut s = Store::open(path).unwrap().store;
                for k in 0..20 {
                    s.insert(key(&format!("k{k}"), "route"), record(k, generation));
                }
                s.save().unwrap();
            }
        }
        // One save of generation 2, the process aborting at the step named.
        step if step.starts_with("abort-") => {
            let op = match step {
                "abort-write" => Op::Write,
                "abort-sync_file" => Op::SyncFile,
                "abort-rename" => Op::Rename,
                _ => Op::SyncDir,
            };
            let fs = Arc::new(FaultyFs::new(vec![Fault { op, nth: 0, failure: Failure::Abort }]));
            let mut s = Store::open_with(path, fs).unwrap().store;
            for k in 0..20 {
                s.insert(key(&format!("k{k}"), "route"), record(k, 2));
            }
            let _ = s.save();
            unreachable!("the save aborts");
        }
        // Inserts 25 keys of its own, saving after each.
        writer => {
            let mut s = Store::open(path).unwrap().store;
            for k in 0..25 {
                s.insert(key(&format!("{writer}-{k}"), "route"), record(k, 1));
                s.save().unwrap();
            }
        }
    }
}

fn spawn(role: &str, path: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--test-threads=1"])
        .env(CHILD, format!("{role}:{}", path.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn four_processes_saving_at_once_keep_every_record() {
    let d = dir("four");
    let path = d.join("autotune.bin");
    let children: Vec<Child> = (0..4).map(|i| spawn(&format!("w{i}"), &path)).collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let opened = Store::open(&path).unwrap();
    assert!(opened.warnings.is_empty());
    assert_eq!(opened.store.len(), 100);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_save_killed_anywhere_leaves_the_old_store_or_the_new() {
    let d = dir("kill");
    let path = d.join("autotune.bin");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut whole = 0;
    for trial in 0..120 {
        let mut c = spawn("churn", &path);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(2_000 + seed % 20_000));
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        let opened = Store::open(&path).unwrap();
        assert!(opened.warnings.is_empty(), "trial {trial}: {:?}", opened.warnings);
        let gens: Vec<u64> = opened.store.records().map(|(_, r)| r.recorded_at_ms).collect();
        // One generation, whole: all 20 records of it, or none yet.
        assert!(
            gens.is_empty() || (gens.len() == 20 && gens.iter().all(|&g| g == gens[0])),
            "trial {trial}: {gens:?}"
        );
        whole += usize::from(!gens.is_empty());
    }
    assert!(whole > 60, "most trials should have saved something ({whole} of 120)");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_save_that_dies_at_any_step_leaves_the_old_store_or_the_new() {
    let d = dir("abort");
    let path = d.join("autotune.bin");
    for (step, want) in [("write", 1), ("sync_file", 1), ("rename", 1), ("sync_dir", 2)] {
        let _ = std::fs::remove_file(&path);
        let mut s = Store::open(&path).unwrap().store;
        for k in 0..20 {
            s.insert(key(&format!("k{k}"), "route"), record(k, 1));
        }
        s.save().unwrap();
        let status = spawn(&format!("abort-{step}"), &path).wait().unwrap();
        assert!(!status.success(), "{step}: the child was to abort");
        let opened = Store::open(&path).unwrap();
        assert!(opened.warnings.is_empty(), "{step}: {:?}", opened.warnings);
        let gens: Vec<u64> = opened.store.records().map(|(_, r)| r.recorded_at_ms).collect();
        assert_eq!(gens, vec![want; 20], "{step}");
        // What the dead save left (a temporary file) goes with the next save.
        let mut s = opened.store;
        s.save().unwrap();
        assert!(temps(&d).is_empty(), "{step}: {:?}", temps(&d));
    }
    let _ = std::fs::remove_dir_all(&d);
}
