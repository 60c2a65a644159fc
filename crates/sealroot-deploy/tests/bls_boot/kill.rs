//! `kill -9` at random moments of switches: a child process stages, switches and collects
//! in a loop, alternating between two sets of entries, until it is killed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use sealroot_deploy::boot::{FsKind, Recovered, SwitchMethod, FILES_DIR};
use sealroot_testkit::Rng;

/// Set in the child: `MNT|WORK|FS|METHOD`.
const CHILD: &str = "SEALROOT_BLS_SWITCH_CHILD";

/// Kills per filesystem kind and switch method.
const KILLS: usize = 60;

fn parse_mode(fs: &str, method: &str) -> (FsKind, SwitchMethod) {
    let fs = if fs == "Ext4" {
        FsKind::Ext4
    } else {
        FsKind::Vfat
    };
    let method = if method == "Exchange" {
        SwitchMethod::Exchange
    } else {
        SwitchMethod::PerEntry
    };
    (fs, method)
}

/// The three boot files: set a's kernel, the shared initramfs, set b's kernel.
fn blobs(work: &Path) -> [Blob; 3] {
    [
        blob(work, 100, 120_000),
        blob(work, 101, 40_000),
        blob(work, 102, 130_000),
    ]
}

/// The child: switches back and forth until killed, printing a line after each switch.
#[test]
fn switch_loop_child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let (mnt, work) = (PathBuf::from(parts[0]), PathBuf::from(parts[1]));
    let (fs, method) = parse_mode(parts[2], parts[3]);
    let [ka, i, kb] = blobs(&work);
    let sets = [our_set('a', &ka, &i), our_set('b', &kb, &i)];
    let files = [[ka.file(), i.file()], [kb.file(), i.file()]];
    let dir = open(&mnt, fs, method);
    println!("started");
    for n in 0.. {
        let which = n % 2;
        dir.stage(&sets[which], &files[which])
            .unwrap()
            .switch()
            .unwrap();
        dir.collect_unused_files().unwrap();
        println!("switched {n}");
    }
}

/// Runs the child until it has switched `after` times, waits `delay`, kills it (SIGKILL);
/// returns how long its first `after` switches took.
fn run_and_kill(spec: &str, after: usize, delay: Duration) -> Duration {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "kill::switch_loop_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut start = None;
    let mut switched = 0;
    while switched < after || start.is_none() {
        let line = lines
            .next()
            .expect("the child stopped before it switched")
            .unwrap();
        // The harness may have written "test NAME ... " on the same line.
        if line.ends_with("started") {
            start = Some(Instant::now());
        } else if line.contains("switched ") {
            switched += 1;
        }
    }
    let took = start.unwrap().elapsed();
    std::thread::sleep(delay);
    child.kill().unwrap();
    child.wait().unwrap();
    took
}

/// What the entries directory holds right after a kill.
fn observe(
    mnt: &Path,
    a: &BTreeMap<String, Vec<u8>>,
    b: &BTreeMap<String, Vec<u8>>,
    method: SwitchMethod,
) -> &'static str {
    let raw = live(mnt);
    assert_eq!(foreign(&raw), foreign_fixture(), "a foreign entry changed");
    bootable(mnt, &raw).unwrap_or_else(|e| panic!("not bootable after a kill: {e}"));
    let now = ours(&raw);
    if now == *a {
        return "set a";
    }
    if now == *b {
        return "set b";
    }
    assert_eq!(
        method,
        SwitchMethod::PerEntry,
        "neither set after a kill: {:?}",
        now.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &now {
        assert!(
            a.get(name) == Some(bytes) || b.get(name) == Some(bytes),
            "{name}: neither set's entry"
        );
    }
    "both sets, every entry complete"
}

/// At least 50 kills at random moments of staging, switching and collecting, for each
/// filesystem kind and switch method (see `kill_9_during_switches_leaves_the_old_or_the_new_set`).
pub fn kills(test: &str) {
    for (seed, (fs, method)) in MODES.into_iter().enumerate() {
        let Some(p) = ext4(test, 32) else { return };
        put_foreign(&p.mnt);
        let [ka, i, kb] = blobs(&p.work);
        let (a, b) = (our_set('a', &ka, &i), our_set('b', &kb, &i));
        let dir = open(&p.mnt, fs, method);
        dir.stage(&a, &[ka.file(), i.file()])
            .unwrap()
            .switch()
            .unwrap();
        let (a, b) = (as_files(&a), as_files(&b));
        let spec = format!("{}|{}|{fs:?}|{method:?}", p.mnt.display(), p.work.display());
        // How long one switch takes here: kills land anywhere in the next three.
        let per_switch = run_and_kill(&spec, 5, Duration::ZERO) / 5;
        let mut rng = Rng::new(seed as u64);
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for _ in 0..KILLS {
            let delay = per_switch.mul_f64(rng.below(3000) as f64 / 1000.0);
            run_and_kill(&spec, rng.index(2), delay);
            *seen
                .entry(observe(&p.mnt, &a, &b, method).to_owned())
                .or_default() += 1;
            let recovered = dir.recover().unwrap();
            *seen.entry(format!("{recovered:?}")).or_default() += 1;
            let now = ours(&live(&p.mnt));
            assert!(
                now == a || now == b,
                "after recovery: {:?}",
                now.keys().collect::<Vec<_>>()
            );
            if recovered == Recovered::Pending {
                assert!(dir.staged_entries().unwrap().is_some());
            }
        }
        // A set still staged keeps its kernel: discarded, only the live set's two files stay.
        dir.discard_staged().unwrap();
        dir.collect_unused_files().unwrap();
        let left: Vec<String> = files_of(&p.mnt.join(FILES_DIR)).into_keys().collect();
        assert_eq!(
            left.len(),
            2,
            "left in sealroot/ after collecting: {left:?}"
        );
        println!("{fs:?} {method:?}: {KILLS} kills, one switch ~{per_switch:?}; seen {seen:?}");
    }
}
