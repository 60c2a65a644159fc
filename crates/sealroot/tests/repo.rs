//! The repository commands as users run them: commit from a directory and from tar, mount,
//! look inside, fsck that finds every kind of damage, gc, and a repository that stays
//! consistent through `kill -9` at random moments and through commits racing gc.
#![forbid(unsafe_code)]

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sealroot_testkit::{assert_same, mount_test, pattern, scratch, Fields, Rng, Snapshot};
use serde_json::Value;

mod common;
use common::{cmd, fails, fsck_json, json, ok, run, tar_of, TMP};

fn init(dir: &Path) -> std::path::PathBuf {
    let repo = dir.join("repo");
    ok(&repo, &["init"]);
    repo
}

fn small_tree(root: &Path, seed: u32, files: usize) {
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    for i in 0..files {
        let dir = ["", "sub/", "sub/deeper/"][i % 3];
        let len = (i * 7919 + seed as usize) % 200_000;
        fs::write(
            root.join(format!("{dir}f{i}")),
            pattern(seed * 1000 + i as u32, len),
        )
        .unwrap();
    }
    fs::write(root.join("small"), b"inline\n").unwrap();
    std::os::unix::fs::symlink("small", root.join("link")).unwrap();
}

mount_test! {
    /// The same tree as a directory and as tar (plain and gzip) gives one image; the ref mounts
    /// and equals its source; ls and cat see inside without mounting.
    fn commit_dir_and_tar_mount_and_look_inside() {
        let tmp = scratch(TMP, "repo-commit-");
        let t = tmp.path();
        let repo = init(t);
        let src = t.join("src");
        sealroot_testkit::rich_tree(&src, 64);
        // tar cannot carry sockets.
        fs::remove_file(src.join("socket")).unwrap();
        let from_dir = json(&repo, &["commit", "--ref", "os/dir", src.to_str().unwrap()]);
        let tar = t.join("src.tar");
        tar_of(&src, &tar);
        let from_tar = json(&repo, &["commit", "--ref", "os/tar", tar.to_str().unwrap()]);
        assert!(Command::new("gzip").arg("-k").arg(&tar).status().unwrap().success());
        let from_gz = json(&repo, &["commit", "--ref", "os/gz", &format!("{}.gz", tar.display())]);
        assert_eq!(from_dir["image"], from_tar["image"], "directory and tar give one image");
        assert_eq!(from_dir["image"], from_gz["image"]);
        // Every file and tree object was present, and with SOURCE_DATE_EPOCH fixed the
        // commit is the same commit.
        assert_eq!(from_tar["objects_added"], 0, "the tar commit found every object present: {from_tar}");
        assert_eq!(from_tar["commit"], from_dir["commit"]);
        assert_eq!(from_tar["tree_objects_added"], 0);

        let refs = json(&repo, &["refs"]);
        assert_eq!(refs.as_array().unwrap().len(), 3);
        let mnt = t.join("mnt");
        fs::create_dir(&mnt).unwrap();
        ok(&repo, &["mount", "os/tar", mnt.to_str().unwrap()]);
        let fields = Fields { content: true, nlink: false, dir_nlink: true };
        assert_same(&Snapshot::of_dir(&src, fields), &Snapshot::of_dir(&mnt, fields));

        let out = cmd(&repo, &["cat", "os/dir", "/big/file0"]).output().unwrap();
        assert!(out.status.success());
        assert!(out.stdout == fs::read(src.join("big/file0")).unwrap(), "cat gives the content");
        let listing = json(&repo, &["ls", "os/dir", "/dir"]);
        let names: Vec<&str> = listing.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"sub") && names.contains(&"4096"), "{names:?}");
        let err = fails(&repo, &["cat", "os/dir", "/nonexistent"]);
        assert!(err.contains("/nonexistent"), "{err}");
    }
}

#[test]
fn fsck_names_every_kind_of_damage_and_repair_removes_it() {
    let tmp = scratch(TMP, "repo-fsck-");
    let t = tmp.path();
    let repo = init(t);
    let src = t.join("src");
    small_tree(&src, 1, 30);
    ok(
        &repo,
        &["commit", "--ref", "damaged", src.to_str().unwrap()],
    );
    let (clean, v) = fsck_json(&repo);
    assert!(clean && v["clean"] == true, "{v}");

    // Damage three objects the image needs: flip a byte, truncate, delete.
    let mut objects: Vec<String> = json(&repo, &["objects"])["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_owned())
        .collect();
    let images: Vec<String> = json(&repo, &["images"])["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_owned())
        .collect();
    let path_of = |id: &str| repo.join("objects").join(&id[..2]).join(&id[2..]);
    // File contents only: not the image, not the commit's tree objects (tests/commits.rs
    // damages those), not the ref's history stream.
    objects.retain(|o| {
        let bytes = fs::read(path_of(o)).unwrap();
        !images.contains(o)
            && !bytes.starts_with(b"sealroot-")
            && !bytes.starts_with(b"SplitStream")
    });
    let (flip, trunc, del) = (&objects[0], &objects[1], &objects[2]);
    let mut data = fs::read(path_of(flip)).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x40;
    fs::write(path_of(flip), &data).unwrap();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(path_of(trunc))
        .unwrap();
    f.set_len(f.metadata().unwrap().len() / 2).unwrap();
    fs::remove_file(path_of(del)).unwrap();
    // And a ref pointing nowhere.
    std::os::unix::fs::symlink("../nonexistent", repo.join("images/refs/broken")).unwrap();

    let (clean, v) = fsck_json(&repo);
    assert!(!clean, "fsck exits non-zero");
    let corrupt: Vec<&str> = v["corrupt_objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["object"].as_str().unwrap())
        .collect();
    assert!(
        corrupt.contains(&flip.as_str()) && corrupt.contains(&trunc.as_str()),
        "{v}"
    );
    for c in v["corrupt_objects"].as_array().unwrap() {
        assert_eq!(
            c["refs"],
            serde_json::json!(["damaged"]),
            "names the ref: {c}"
        );
    }
    let missing: Vec<&str> = v["missing_objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["object"].as_str().unwrap())
        .collect();
    assert_eq!(missing, vec![del.as_str()], "{v}");
    assert_eq!(
        v["missing_objects"][0]["refs"],
        serde_json::json!(["damaged"])
    );
    assert_eq!(v["broken_refs"].as_array().unwrap().len(), 1, "{v}");
    let text = String::from_utf8(run(&repo, &["fsck"]).stdout).unwrap();
    assert!(
        text.contains(flip.as_str()) && text.contains(del.as_str()) && text.contains("damaged"),
        "{text}"
    );

    let out = run(&repo, &["fsck", "--repair", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let removed = v["repaired"]["objects_removed"].as_array().unwrap();
    assert_eq!(removed.len(), 2, "{v}");
    let needing = v["repaired"]["refs_needing_commit"].as_array().unwrap();
    assert!(needing.contains(&serde_json::json!("damaged")), "{v}");
    assert!(!path_of(flip).exists() && !path_of(trunc).exists());
}

#[test]
fn gc_removes_what_no_ref_reaches() {
    let tmp = scratch(TMP, "repo-gc-");
    let t = tmp.path();
    let repo = init(t);
    let (a, b) = (t.join("a"), t.join("b"));
    small_tree(&a, 1, 20);
    small_tree(&b, 2, 20);
    ok(&repo, &["commit", "--ref", "x", a.to_str().unwrap()]);
    ok(&repo, &["commit", "--ref", "keep", a.to_str().unwrap()]);
    let dry = json(&repo, &["gc", "--dry-run"]);
    assert_eq!(dry["objects_removed"], 0, "everything is reachable: {dry}");
    // Orphans: a commit keeps its parent (history), so only a new root drops tree a.
    ok(
        &repo,
        &["commit", "--orphan", "--ref", "keep", b.to_str().unwrap()],
    );
    ok(
        &repo,
        &["commit", "--orphan", "--ref", "x", b.to_str().unwrap()],
    );
    let dry = json(&repo, &["gc", "--dry-run"]);
    let n = dry["objects_removed"].as_u64().unwrap();
    assert!(n >= 20, "tree a's objects and image are unreachable: {dry}");
    assert!(dry["bytes_removed"].as_u64().unwrap() > 0);
    let before = json(&repo, &["objects"])["objects"]
        .as_array()
        .unwrap()
        .len();
    let done = json(&repo, &["gc"]);
    assert_eq!(done["objects_removed"], dry["objects_removed"]);
    let after = json(&repo, &["objects"])["objects"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before - after, n as usize);
    let (clean, v) = fsck_json(&repo);
    assert!(clean, "{v}");
    let out = cmd(&repo, &["cat", "keep", "/f3"]).output().unwrap();
    assert!(out.stdout == fs::read(b.join("f3")).unwrap());
}

#[test]
fn bad_input_is_refused_with_nothing_committed() {
    let tmp = scratch(TMP, "repo-bad-");
    let t = tmp.path();
    let repo = init(t);
    let err = fails(&repo, &["commit", "--ref", "r", "/nonexistent/src"]);
    assert!(err.contains("/nonexistent/src"), "{err}");
    let junk = t.join("junk.tar");
    fs::write(&junk, pattern(3, 10_000)).unwrap();
    let err = fails(&repo, &["commit", "--ref", "r", junk.to_str().unwrap()]);
    assert!(err.contains("junk.tar"), "{err}");
    // A tar entry escaping the root.
    let evil = t.join("evil.tar");
    let st = Command::new("tar")
        .args(["-C"])
        .arg(t)
        .args(["-cf"])
        .arg(&evil)
        .args(["--transform", "s,^,../,", "junk.tar"])
        .status()
        .unwrap();
    assert!(st.success());
    let err = fails(&repo, &["commit", "--ref", "r", evil.to_str().unwrap()]);
    assert!(err.contains(".."), "{err}");
    fails(
        &repo,
        &["commit", "--ref", "../escape", t.to_str().unwrap()],
    );
    assert_eq!(
        json(&repo, &["refs"]).as_array().unwrap().len(),
        0,
        "nothing committed"
    );
    // A repository of a newer format is refused.
    let meta = repo.join("meta.json");
    let text = fs::read_to_string(&meta).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["version"] = serde_json::json!(999);
    fs::write(&meta, v.to_string()).unwrap();
    let err = fails(&repo, &["refs"]);
    assert!(
        err.contains("999") && err.contains("meta.json") && err.contains("version"),
        "{err}"
    );
}

fn kill_after(mut child: Child, delay: Duration) {
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = child.wait();
}

mount_test! {
/// 16 commits and some gcs killed with SIGKILL at spread-out moments: after each, fsck is
/// clean; at the end every ref mounts and is exactly one of the sources.
fn kill_9_at_random_moments_leaves_a_consistent_repository() {
    let tmp = scratch(TMP, "repo-kill-");
    let t = tmp.path();
    let repo = init(t);
    let mut sources = Vec::new();
    for i in 0..3u32 {
        let src = t.join(format!("src{i}"));
        small_tree(&src, 10 + i, 200);
        sources.push(src);
    }
    // A deterministic spread of delays: early (lock, first objects), middle, late (image, ref).
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    for round in 0..16 {
        let x = rng.next_u64();
        let delay = Duration::from_millis(x % 400);
        let src = &sources[round % sources.len()];
        let name = format!("k{}", round % 4);
        let child = cmd(&repo, &["commit", "--ref", &name, src.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        kill_after(child, delay);
        if round % 5 == 4 {
            let gc = cmd(&repo, &["gc"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            kill_after(gc, Duration::from_millis(x % 50));
        }
        let (clean, v) = fsck_json(&repo);
        assert!(
            clean,
            "round {round} (killed after {delay:?}): fsck found problems: {v}"
        );
    }
    // Every ref that exists reaches a complete image whose files read back as their source.
    for r in json(&repo, &["refs"]).as_array().unwrap() {
        let name = r["ref"].as_str().unwrap();
        let listing = json(&repo, &["ls", name, "/sub"]);
        assert!(!listing.as_array().unwrap().is_empty());
        let out = cmd(&repo, &["cat", name, "/f3"]).output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            sources
                .iter()
                .any(|s| fs::read(s.join("f3")).unwrap() == out.stdout),
            "{name}: /f3 is the content of one of the sources"
        );
    }
    // And a last uninterrupted commit and gc leave everything clean.
    ok(
        &repo,
        &["commit", "--ref", "final", sources[0].to_str().unwrap()],
    );
    ok(&repo, &["gc"]);
    assert!(fsck_json(&repo).0);
}
}

#[test]
fn commits_racing_gc_lose_nothing() {
    let tmp = scratch(TMP, "repo-race-");
    let t = tmp.path();
    let repo = init(t);
    let mut srcs = Vec::new();
    for i in 0..4u32 {
        let src = t.join(format!("s{i}"));
        small_tree(&src, 20 + i, 120);
        srcs.push(src);
    }
    let mut children = Vec::new();
    for (i, s) in srcs.iter().enumerate() {
        children.push(
            cmd(
                &repo,
                &["commit", "--ref", &format!("r{i}"), s.to_str().unwrap()],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        );
    }
    for _ in 0..6 {
        let out = run(&repo, &["gc"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ok(&repo, &["gc"]);
    let (clean, v) = fsck_json(&repo);
    assert!(clean, "{v}");
    for (i, s) in srcs.iter().enumerate() {
        let out = cmd(&repo, &["cat", &format!("r{i}"), "/sub/f1"])
            .output()
            .unwrap();
        assert!(out.status.success() && out.stdout == fs::read(s.join("sub/f1")).unwrap());
    }
}

/// A directory committed again after a few changes is read only where it changed (the digest
/// cache in REPO/cache/devino), and gives the image a full read gives; fsck and gc leave the
/// cache alone, and a damaged cache is ignored with a warning.
#[test]
fn recommit_with_the_digest_cache_equals_a_full_commit() {
    let tmp = scratch(TMP, "repo-cache-");
    let t = tmp.path();
    let repo = init(t);
    let src = t.join("src");
    let files = 30;
    let seed = 7;
    small_tree(&src, seed, files);
    let dir = |i: usize| ["", "sub/", "sub/deeper/"][i % 3];
    let len = |i: usize| (i * 7919 + seed as usize) % 200_000;
    // A file is cached once its ctime is two seconds old.
    std::thread::sleep(Duration::from_millis(2200));
    let s = src.to_str().unwrap();
    let first = json(&repo, &["commit", "--ref", "os/a", s]);
    assert_eq!(first["files_cached"], 0);
    assert!(repo.join("cache/devino").is_file());

    // Another content of the same size, a grown file, a removed one, a new one.
    let f0 = src.join(format!("{}f0", dir(0)));
    fs::write(&f0, pattern(4242, len(0))).unwrap();
    let f1 = src.join(format!("{}f1", dir(1)));
    let mut grown = fs::read(&f1).unwrap();
    grown.extend_from_slice(b"grown");
    fs::write(&f1, grown).unwrap();
    fs::remove_file(src.join(format!("{}f2", dir(2)))).unwrap();
    fs::write(src.join("added"), pattern(77, 5000)).unwrap();
    let unchanged = (3..files).filter(|&i| len(i) > 64).count();

    let second = json(&repo, &["commit", "--ref", "os/b", s]);
    assert_eq!(second["files_cached"], unchanged as u64);
    let full = json(&repo, &["commit", "--no-cache", "--ref", "os/c", s]);
    assert_eq!(full["files_cached"], 0);
    assert_eq!(second["image"], full["image"], "the cache changes nothing");
    assert_ne!(first["image"], second["image"]);
    let (clean, report) = fsck_json(&repo);
    assert!(clean, "{report}");
    assert_eq!(report["stray_files"].as_array().map_or(0, Vec::len), 0);
    ok(&repo, &["gc"]);
    assert!(repo.join("cache/devino").is_file(), "gc keeps the cache");

    // A damaged cache: a warning, every file read, the same image.
    let cache = repo.join("cache/devino");
    let mut bytes = fs::read(&cache).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    fs::write(&cache, bytes).unwrap();
    let out = run(&repo, &["commit", "--json", "--ref", "os/d", s]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("devino"),
        "{stderr}"
    );
    let damaged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(damaged["files_cached"], 0);
    assert_eq!(damaged["image"], full["image"]);
    // And the cache is whole again (with the changed files too if they have settled since).
    let again = json(&repo, &["commit", "--ref", "os/e", s]);
    let cached = again["files_cached"].as_u64().unwrap();
    assert!(
        cached == unchanged as u64 || cached == unchanged as u64 + 3,
        "{cached}"
    );
    assert_eq!(again["image"], full["image"]);
}
