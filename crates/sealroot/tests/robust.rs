//! The commands against a hostile or unlucky repository, as users run them: symlinks planted
//! by someone with write access to it, names that climb out, a commit killed with `kill -9`,
//! a system crash, a full disk, a damaged configuration. Each failure is an error on stderr,
//! prefixed `sealroot CMD:`, naming the path, with exit status 1 (2 for a usage error); and
//! nothing outside the repository is read, written or removed.
#![forbid(unsafe_code)]

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use sealroot_testkit::{mount_test, pattern, scratch, skip, swap_for_symlink, Untouched};
use serde_json::Value;

mod common;
use common::{cmd, have, json, ok, run, TMP};

/// A repository with one commit (`main`), its source, a second source, and a directory
/// beside it standing for the rest of the system.
struct Setup {
    _t: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
    src: PathBuf,
    outside: PathBuf,
}

fn setup() -> Setup {
    let t = scratch(TMP, "robust-");
    let root = t.path().to_owned();
    let repo = root.join("repo");
    ok(&repo, &["init"]);
    let src = root.join("src");
    tree(&src, 1, 12);
    let outside = root.join("outside");
    fs::create_dir_all(outside.join("dir")).unwrap();
    fs::write(outside.join("file"), b"precious").unwrap();
    fs::write(outside.join("dir/deeper"), pattern(2, 5000)).unwrap();
    ok(&repo, &["commit", "--ref", "main", src.to_str().unwrap()]);
    Setup {
        _t: t,
        root,
        repo,
        src,
        outside,
    }
}

/// `files` files of up to 200 KB below `root`, their contents from `seed`.
fn tree(root: &Path, seed: u32, files: usize) {
    fs::create_dir_all(root.join("sub")).unwrap();
    for i in 0..files {
        let dir = if i % 2 == 0 { "" } else { "sub/" };
        let len = (i * 7919 + seed as usize * 31) % 200_000;
        fs::write(
            root.join(format!("{dir}f{i}")),
            pattern(seed * 1000 + i as u32, len),
        )
        .unwrap();
    }
    fs::write(root.join("small"), b"small\n").unwrap();
}

/// Runs `sealroot ARGS` and asserts it fails as a command should: exit status 1, one error
/// on stderr prefixed `sealroot CMD: ` (CMD the first argument) holding every one of
/// `says`, and no cause repeated. Returns stderr.
fn fails_with(repo: &Path, args: &[&str], says: &[&str]) -> String {
    let out = run(repo, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "sealroot {args:?}: exit status {:?}, stderr: {err}",
        out.status
    );
    let prefix = format!("sealroot {}: ", args[0]);
    assert!(err.starts_with(&prefix), "sealroot {args:?}: {err}");
    for s in says {
        assert!(
            err.contains(s),
            "sealroot {args:?}: {err:?} does not say {s:?}"
        );
    }
    // The library's messages hold their causes: printing the chain must not repeat them.
    let line = err.lines().next().unwrap_or_default();
    let parts: Vec<&str> = line.split(": ").collect();
    for w in parts.windows(2) {
        assert_ne!(
            w[0], w[1],
            "sealroot {args:?}: a cause repeated in {line:?}"
        );
    }
    assert!(
        line.matches("never follows links").count() <= 1,
        "sealroot {args:?}: {line}"
    );
    err
}

/// The refs and commit refs, as `refs --json` and `log --json` show them.
fn state(repo: &Path) -> (Value, Value) {
    (json(repo, &["refs"]), json(repo, &["log", "main"]))
}

/// The object files below `repo/objects`, as `XX/REST` names.
fn object_files(repo: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for d in fs::read_dir(repo.join("objects")).unwrap() {
        let d = d.unwrap();
        if !d.file_type().unwrap().is_dir() {
            continue;
        }
        for f in fs::read_dir(d.path()).unwrap() {
            let f = f.unwrap();
            out.push(format!(
                "{}/{}",
                d.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            ));
        }
    }
    out.sort();
    out
}

/// `fsck --json`: its exit status and report.
fn fsck(repo: &Path) -> (Option<i32>, Value) {
    let out = run(repo, &["fsck", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("fsck --json: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), v)
}

#[test]
fn a_ref_directory_planted_as_a_symlink_is_not_written_through() {
    // The original report: `commit --ref evil/x` wrote into the directory the link led to.
    let s = setup();
    let evil = s.repo.join("commits/refs/evil");
    symlink(&s.outside, &evil).unwrap();
    symlink(s.outside.join("dir"), s.repo.join("images/refs/evil")).unwrap();
    let outside = Untouched::watch(&s.outside);
    let before = state(&s.repo);
    let src = s.src.to_str().unwrap();
    let evil_path = evil.display().to_string();
    fails_with(
        &s.repo,
        &["commit", "--ref", "evil/x", src],
        &[&evil_path, "symlink"],
    );
    fails_with(&s.repo, &["log", "evil/x"], &[&evil_path, "symlink"]);
    fails_with(&s.repo, &["ls", "evil/x"], &["evil/x"]);
    outside.assert_untouched("commit, log and ls below a planted link");
    // fsck names the planted refs; gc keeps going and removes nothing outside.
    let (code, report) = fsck(&s.repo);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["clean"], false);
    let broken = report["broken_refs"].to_string() + &report["broken_commits"].to_string();
    assert!(broken.contains("evil"), "{report}");
    json(&s.repo, &["gc"]);
    outside.assert_untouched("fsck and gc");
    assert_eq!(state(&s.repo), before);
}

#[test]
fn an_image_ref_leading_outside_is_not_followed() {
    let s = setup();
    symlink("../../../outside/file", s.repo.join("images/refs/up")).unwrap();
    symlink(s.outside.join("file"), s.repo.join("images/refs/abs")).unwrap();
    let outside = Untouched::watch(&s.outside);
    let mnt = s.root.join("mnt");
    fs::create_dir(&mnt).unwrap();
    for r in ["up", "abs"] {
        let says = [
            &format!("{r:?} is broken")[..],
            "not a link of the form a ref has",
        ];
        fails_with(&s.repo, &["ls", r], &says);
        fails_with(&s.repo, &["cat", r, "/small"], &says);
        fails_with(&s.repo, &["mount", r, mnt.to_str().unwrap()], &says);
    }
    let refs = ok(&s.repo, &["refs"]);
    assert!(
        refs.contains("up (invalid: ../../../outside/file)"),
        "{refs}"
    );
    outside.assert_untouched("ls, cat, mount, log and refs of a ref leading outside");
}

#[test]
fn names_that_climb_out_are_refused_on_the_command_line() {
    let s = setup();
    let outside = Untouched::watch(&s.outside);
    let mnt = s.root.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mnt = mnt.to_str().unwrap();
    for bad in ["..", "../outside/file", "a/../../outside", "/etc/passwd"] {
        let quoted = format!("{bad:?}");
        let says = [&quoted[..], "is not a ref, commit id or image id"];
        fails_with(&s.repo, &["ls", bad], &says);
        fails_with(&s.repo, &["cat", bad, "/small"], &says);
        fails_with(&s.repo, &["mount", bad, mnt], &says);
        fails_with(
            &s.repo,
            &["commit", "--ref", bad, s.src.to_str().unwrap()],
            &["bad ref name", &quoted],
        );
    }
    outside.assert_untouched("names with ..");
}

#[test]
fn symlinked_object_directories_are_refused_and_left_alone() {
    let s = setup();
    let planted = s.outside.join("objects");
    for byte in 0..=255u8 {
        let xx = format!("{byte:02x}");
        let inside = s.repo.join("objects").join(&xx);
        if inside.exists() {
            continue;
        }
        fs::create_dir_all(planted.join(&xx)).unwrap();
        fs::write(planted.join(&xx).join("0".repeat(62)), b"not garbage").unwrap();
        symlink(planted.join(&xx), &inside).unwrap();
    }
    let objects = s.repo.join("objects").display().to_string();
    let outside = Untouched::watch(&s.outside);
    let before = state(&s.repo);
    let other = s.root.join("other");
    tree(&other, 5, 30);
    fails_with(
        &s.repo,
        &["commit", "--ref", "main", other.to_str().unwrap()],
        &[&objects, "symlink"],
    );
    for args in [
        &["gc"][..],
        &["gc", "--dry-run"],
        &["fsck"],
        &["fsck", "--repair"],
        &["objects"],
    ] {
        fails_with(&s.repo, args, &[&objects, "symlink"]);
    }
    outside.assert_untouched("commit, gc, fsck and objects");
    assert_eq!(state(&s.repo), before);
}

#[test]
fn a_symlinked_tmp_images_or_commits_directory_is_refused() {
    for rel in ["tmp", "images", "commits"] {
        let s = setup();
        swap_for_symlink(&s.repo, rel, &s.outside);
        let planted = s.repo.join(rel).display().to_string();
        let outside = Untouched::watch(&s.outside);
        let src = s.src.to_str().unwrap();
        for args in [
            &["gc"][..],
            &["gc", "--dry-run"],
            &["fsck"],
            &["fsck", "--repair"],
            &["commit", "--ref", "main", src],
        ] {
            fails_with(&s.repo, args, &[&planted, "symlink"]);
        }
        if rel != "tmp" {
            fails_with(&s.repo, &["ls", "main"], &[&planted, "symlink"]);
        }
        if rel == "commits" {
            fails_with(&s.repo, &["log", "main"], &[&planted, "symlink"]);
        }
        outside.assert_untouched(rel);
    }
}

#[test]
fn a_symlinked_cache_is_neither_read_nor_written() {
    let s = setup();
    let cache = s.repo.join("cache");
    let _ = fs::remove_dir_all(&cache);
    fs::write(s.outside.join("devino"), b"not a cache").unwrap();
    symlink(&s.outside, &cache).unwrap();
    let outside = Untouched::watch(&s.outside);
    fs::write(s.src.join("new"), pattern(8, 10_000)).unwrap();
    // The commit stands: a cache only saves time. It says why the cache was not used.
    let out = run(
        &s.repo,
        &["commit", "--ref", "main", s.src.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: the digest cache was not saved")
            && err.contains(&cache.display().to_string())
            && err.contains("symlink"),
        "{err}"
    );
    outside.assert_untouched("commit with a planted cache link");
}

#[test]
fn a_symlinked_signature_file_is_neither_read_nor_written_through() {
    let s = setup();
    let key = s.root.join("key");
    ok(&s.repo, &["key", "generate", key.to_str().unwrap()]);
    let pubkey = format!("{}.pub", key.display());
    let id = json(&s.repo, &["log", "main"])[0]["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    let sig = s.repo.join("commits").join(format!("{id}.sig"));
    symlink(s.outside.join("file"), &sig).unwrap();
    let outside = Untouched::watch(&s.outside);
    let sig_path = sig.display().to_string();
    fails_with(
        &s.repo,
        &["sign", "--key", key.to_str().unwrap(), "main"],
        &[&sig_path, "symlink"],
    );
    fails_with(
        &s.repo,
        &["verify", "--keys", &pubkey, "main"],
        &[&sig_path, "symlink"],
    );
    outside.assert_untouched("sign and verify");
    // Once the link is gone, both work.
    fs::remove_file(&sig).unwrap();
    ok(&s.repo, &["sign", "--key", key.to_str().unwrap(), "main"]);
    ok(&s.repo, &["verify", "--keys", &pubkey, "main"]);
}

/// Starts `sealroot commit --ref NAME -` reading `tar` from a pipe, feeds it the first
/// `part` bytes and waits (with the pipe held open, so the commit waits for more) until its
/// transaction marker is in `tmp/` and it has stored new objects. Returns the child, its
/// open stdin and the new object files.
fn commit_in_progress(
    repo: &Path,
    name: &str,
    tar: &[u8],
    part: usize,
) -> (Child, std::process::ChildStdin, Vec<String>) {
    let before = object_files(repo);
    let mut child = cmd(repo, &["commit", "--ref", name, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&tar[..part]).unwrap();
    stdin.flush().unwrap();
    // Not a timed assertion: a bound on waiting for what must happen.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let marker = fs::read_dir(repo.join("tmp")).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("transaction.")
        });
        let new: Vec<String> = object_files(repo)
            .into_iter()
            .filter(|o| !before.contains(o))
            .collect();
        if marker && new.len() >= 2 {
            return (child, stdin, new);
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the commit ended before it was killed"
        );
        assert!(Instant::now() < deadline, "the commit never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A tar archive of `files` files of 1 MB of new content from `seed` (plain tar: its
/// entries are stored as they come).
fn big_tar(root: &Path, files: usize, seed: u32) -> Vec<u8> {
    let dir = root.join(format!("big{seed}"));
    fs::create_dir_all(&dir).unwrap();
    for i in 0..files {
        fs::write(
            dir.join(format!("f{i:03}")),
            pattern(seed * 1000 + i as u32, 1 << 20),
        )
        .unwrap();
    }
    let out = std::process::Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// The unfinished transactions `fsck --json` lists, as (marker, how).
fn unfinished(report: &Value) -> Vec<(String, String)> {
    report["unfinished_transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["marker"].as_str().unwrap().to_owned(),
                u["how"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_killed_commit_is_reported_and_cleaned_up() {
    let s = setup();
    let first = state(&s.repo);
    for (seed, cleaner) in [(500, "commit"), (600, "gc")] {
        let before = state(&s.repo);
        let tar = big_tar(&s.root, 40, seed);
        let (mut child, stdin, new) = commit_in_progress(&s.repo, "main", &tar, tar.len() / 2);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        drop(stdin);
        let (code, report) = fsck(&s.repo);
        assert_eq!(code, Some(0), "{report}");
        assert_eq!(report["clean"], true, "{report}");
        assert_eq!(report["corrupt_objects"], serde_json::json!([]), "{report}");
        assert_eq!(report["torn_objects"], serde_json::json!([]), "{report}");
        let u = unfinished(&report);
        assert_eq!(u.len(), 1, "{report}");
        assert_eq!(u[0].1, "process-died", "{report}");
        assert!(fs::metadata(s.repo.join("tmp").join(&u[0].0)).is_ok());
        assert_eq!(state(&s.repo), before, "the killed commit moved no ref");
        let text = ok(&s.repo, &["fsck"]);
        assert!(
            text.contains("unfinished transaction") && text.contains("process-died"),
            "{text}"
        );
        // The next writer (or gc) cleans up after it.
        if cleaner == "commit" {
            ok(
                &s.repo,
                &["commit", "--ref", "other", s.src.to_str().unwrap()],
            );
        } else {
            let gc = json(&s.repo, &["gc"]);
            assert_eq!(gc["recovered_transactions"], 1, "{gc}");
            assert!(
                gc["objects_removed"].as_u64().unwrap() >= new.len() as u64,
                "{gc}"
            );
            for o in &new {
                assert!(!s.repo.join("objects").join(o).exists(), "{o} is garbage");
            }
        }
        let (code, report) = fsck(&s.repo);
        assert_eq!(code, Some(0), "{report}");
        assert!(unfinished(&report).is_empty(), "after {cleaner}: {report}");
        assert!(!fs::read_dir(s.repo.join("tmp")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("transaction.")));
    }
    assert_eq!(json(&s.repo, &["log", "main"]), first.1);
}

#[test]
fn a_system_crash_leaves_torn_objects_not_corruption() {
    let s = setup();
    let tar = big_tar(&s.root, 40, 700);
    let before = state(&s.repo);
    let (mut child, stdin, new) = commit_in_progress(&s.repo, "main", &tar, tar.len() / 2);
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    // What a power cut leaves instead: the marker of another boot, and an object linked
    // whose data never reached the disk.
    let tmp = s.repo.join("tmp");
    let marker = fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("transaction."))
        .unwrap();
    let rest = marker.splitn(3, '.').nth(2).unwrap();
    let crashed = format!("transaction.{}.{rest}", "f".repeat(32));
    fs::rename(tmp.join(&marker), tmp.join(&crashed)).unwrap();
    let torn = &new[0];
    let torn_path = s.repo.join("objects").join(torn);
    let len = fs::metadata(&torn_path).unwrap().len() as usize;
    fs::write(&torn_path, vec![0u8; len]).unwrap();
    let torn_hex = torn.replace('/', "");

    let (code, report) = fsck(&s.repo);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(report["corrupt_objects"], serde_json::json!([]), "{report}");
    assert_eq!(
        report["torn_objects"],
        serde_json::json!([torn_hex]),
        "{report}"
    );
    assert_eq!(unfinished(&report), [(crashed, "system-crash".to_owned())]);
    let text = ok(&s.repo, &["fsck"]);
    assert!(text.contains(&format!("torn object {torn_hex}")), "{text}");

    // The next commit checks what the crashed transaction wrote and removes the torn object.
    ok(
        &s.repo,
        &["commit", "--ref", "other", s.src.to_str().unwrap()],
    );
    assert!(!torn_path.exists());
    let (code, report) = fsck(&s.repo);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["torn_objects"], serde_json::json!([]), "{report}");
    assert!(unfinished(&report).is_empty(), "{report}");
    assert_eq!(json(&s.repo, &["log", "main"]), before.1);
}

mount_test! {
    /// A commit that fills the filesystem: a clear error, the repository as it was (refs,
    /// commits, fsck clean), and once space is freed the next commit succeeds.
    fn a_full_disk_fails_clearly_and_changes_nothing() {
        if !have("mkfs.ext4") {
            skip("a_full_disk_fails_clearly_and_changes_nothing", "mkfs.ext4 (e2fsprogs) is not installed");
            return;
        }
        let t = scratch(TMP, "robust-full-");
        let image = t.path().join("fs.img");
        let mnt = t.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        fs::File::create(&image).unwrap().set_len(64 << 20).unwrap();
        // No blocks reserved for root: the test runs as root, and should see the disk full.
        let st = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&image)
            .status()
            .unwrap();
        assert!(st.success());
        let st = std::process::Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mnt)
            .status()
            .unwrap();
        assert!(st.success(), "mount -o loop");
        let repo = mnt.join("repo");
        ok(&repo, &["init"]);
        let src = t.path().join("src0");
        tree(&src, 1, 12);
        ok(&repo, &["commit", "--ref", "main", src.to_str().unwrap()]);
        let before = state(&repo);

        // Leave about 12 MiB, then commit 3 MiB trees of new content until one fails.
        let filler = mnt.join("filler");
        let stat = rustix::fs::statvfs(&mnt).unwrap();
        let avail = stat.f_bavail * stat.f_frsize;
        let f = fs::File::create(&filler).unwrap();
        rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, avail - (12 << 20))
            .unwrap();
        drop(f);
        let mut failed = None;
        let mut last = before.clone();
        for i in 0..20u32 {
            let src = t.path().join(format!("src{}", i + 1));
            fs::create_dir_all(&src).unwrap();
            for j in 0..3 {
                fs::write(src.join(format!("f{j}")), pattern(9000 + i * 10 + j, 1 << 20)).unwrap();
            }
            let out = run(&repo, &["commit", "--ref", "main", src.to_str().unwrap()]);
            if out.status.success() {
                last = state(&repo);
                continue;
            }
            failed = Some((i, src, String::from_utf8_lossy(&out.stderr).into_owned(), out.status.code()));
            break;
        }
        let (i, src, err, code) = failed.expect("a commit fills the filesystem");
        assert!(i >= 1, "the first commit after the filler already failed: {err}");
        assert_eq!(code, Some(1), "{err}");
        assert!(err.starts_with("sealroot commit: "), "{err}");
        assert!(
            err.contains(&format!("the filesystem holding the repository {} is full", repo.display()))
                && err.contains("No space left on device"),
            "{err}"
        );
        // Unchanged: the refs and their commits as after the last commit that succeeded.
        assert_eq!(state(&repo), last);
        let (code, report) = fsck(&repo);
        assert_eq!(code, Some(0), "{report}");
        assert_eq!(report["clean"], true, "{report}");
        // Space freed, the same commit goes through, and gc takes what the failed one left.
        fs::remove_file(&filler).unwrap();
        ok(&repo, &["commit", "--ref", "main", src.to_str().unwrap()]);
        assert_ne!(state(&repo), last);
        json(&repo, &["gc"]);
        let (code, report) = fsck(&repo);
        assert_eq!(code, Some(0), "{report}");
        let st = std::process::Command::new("umount").arg(&mnt).status().unwrap();
        assert!(st.success());
    }
}

#[test]
fn a_damaged_or_newer_configuration_fails_every_command_clearly() {
    let s = setup();
    let meta = s.repo.join("meta.json");
    let good = fs::read_to_string(&meta).unwrap();
    let mnt = s.root.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mnt = mnt.to_str().unwrap();
    let src = s.src.to_str().unwrap();
    let cases: [(&str, &dyn Fn(), &str); 7] = [
        (
            "truncated",
            &|| fs::write(&meta, &good[..40]).unwrap(),
            "bad repository configuration: not JSON",
        ),
        (
            "garbage",
            &|| fs::write(&meta, pattern(4, 200)).unwrap(),
            "bad repository configuration: not JSON",
        ),
        (
            "a symlink",
            &|| {
                fs::write(s.outside.join("meta.json"), &good).unwrap();
                symlink(s.outside.join("meta.json"), &meta).unwrap();
            },
            "symlink",
        ),
        (
            "a directory",
            &|| fs::create_dir(&meta).unwrap(),
            "not a regular file but a directory",
        ),
        (
            "huge",
            &|| fs::write(&meta, format!("{{\"pad\": \"{}\"}}", "x".repeat(1 << 20))).unwrap(),
            "larger than",
        ),
        (
            "of a newer version",
            &|| fs::write(&meta, good.replace("\"version\": 1", "\"version\": 5")).unwrap(),
            "is newer than this sealroot understands (1); use a newer sealroot",
        ),
        (
            "of a newer sealroot format",
            &|| fs::write(&meta, good.replace("\"format\": 1", "\"format\": 3")).unwrap(),
            "sealroot format 3 is newer than this sealroot understands",
        ),
    ];
    let meta_path = meta.display().to_string();
    for (what, make, says) in cases {
        let _ = fs::remove_file(&meta);
        let _ = fs::remove_dir(&meta);
        make();
        let outside = Untouched::watch(&s.outside);
        for args in [
            &["status"][..],
            &["refs"],
            &["log", "main"],
            &["ls", "main"],
            &["mount", "main", mnt],
            &["commit", "--ref", "main", src],
            &["fsck"],
            &["gc"],
            &["init"],
        ] {
            let err = fails_with(&s.repo, args, &[&meta_path, says]);
            assert!(err.lines().count() == 1, "meta.json {what}: {err}");
        }
        outside.assert_untouched(what);
    }
    let _ = fs::remove_dir(&meta);
    fs::write(&meta, &good).unwrap();
    ok(&s.repo, &["status"]);
}

#[test]
fn usage_errors_and_global_options() {
    let s = setup();
    // The global options go before or after the command.
    let refs = ok(&s.repo, &["--json", "refs"]);
    assert!(refs.contains("\"main\""), "{refs}");
    let out = cmd(&s.repo, &["--repo", s.repo.to_str().unwrap(), "refs"])
        .env_remove("SEALROOT_REPO")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A usage error is exit status 2; a failing command 1; fsck that finds a problem 1,
    // with its report.
    assert_eq!(
        run(&s.repo, &["gc", "--no-such-flag"]).status.code(),
        Some(2)
    );
    assert_eq!(run(&s.repo, &["no-such-command"]).status.code(), Some(2));
    fails_with(&s.repo, &["ls", "nothing"], &["\"nothing\" is not a ref"]);
    symlink("/nowhere", s.repo.join("images/refs/dangling")).unwrap();
    let (code, report) = fsck(&s.repo);
    assert_eq!(code, Some(1));
    assert_eq!(report["clean"], false);
}
