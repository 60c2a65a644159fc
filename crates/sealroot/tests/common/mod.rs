//! What the integration tests of the `sealroot` binary share: running it against a
//! repository (`SEALROOT_REPO` set, `SOURCE_DATE_EPOCH` fixed so that commits of one tree are
//! one commit, stdin empty) with assertions that show its stderr when they fail.
// Each test file uses a part of this.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sealroot_testkit::pattern;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sealroot");
/// Scratch space on a real filesystem (erofs cannot mount a file on tmpfs).
pub const TMP: &str = env!("CARGO_TARGET_TMPDIR");
/// The timestamp of every commit made through these helpers.
pub const SOURCE_DATE_EPOCH: &str = "1700000000";

/// `sealroot ARGS` against `repo`.
pub fn cmd(repo: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("SEALROOT_REPO", repo)
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH);
    c
}

/// Runs it to completion with an empty stdin.
pub fn run(repo: &Path, args: &[&str]) -> Output {
    cmd(repo, args)
        .stdin(Stdio::null())
        .output()
        .expect("the sealroot binary runs")
}

/// Runs it, asserting success; returns stdout.
pub fn ok(repo: &Path, args: &[&str]) -> String {
    let out = run(repo, args);
    assert!(
        out.status.success(),
        "sealroot {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs it with `--json`, asserting success; returns the parsed output.
pub fn json(repo: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    let text = ok(repo, &a);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("sealroot {a:?}: {e}: {text}"))
}

/// Runs it, asserting failure with a message; returns stderr.
pub fn fails(repo: &Path, args: &[&str]) -> String {
    let out = run(repo, args);
    assert!(
        !out.status.success(),
        "sealroot {args:?} should have failed"
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.trim().is_empty(), "no message from {args:?}");
    err
}

/// Whether `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `fsck --json`: whether it exited 0, and its report.
pub fn fsck_json(repo: &Path) -> (bool, serde_json::Value) {
    let out = run(repo, &["fsck", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("fsck --json: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), v)
}

/// A path as the `&str` an argument list wants.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tree with nested directories, big and small files, a symlink and a hard link.
pub fn tree(root: &Path, seed: u32) {
    fs::create_dir_all(root.join("usr/lib/deep")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    for i in 0..12u32 {
        let dir = ["usr", "usr/lib", "usr/lib/deep"][i as usize % 3];
        fs::write(
            root.join(format!("{dir}/f{i}")),
            pattern(seed + i, 100 + i as usize * 9000),
        )
        .unwrap();
    }
    fs::write(root.join("etc/conf"), b"key=value\n").unwrap();
    std::os::unix::fs::symlink("../etc/conf", root.join("usr/conf-link")).unwrap();
    fs::hard_link(root.join("usr/f0"), root.join("usr/lib/f0-again")).unwrap();
}

/// The object path of a hex id.
pub fn object(repo: &Path, hex: &str) -> PathBuf {
    repo.join("objects").join(&hex[..2]).join(&hex[2..])
}

/// Flips one byte of a file (objects are read-only: make it writable first).
pub fn flip(path: &Path, at: usize) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    let mut b = fs::read(path).unwrap();
    let at = at.min(b.len() - 1);
    b[at] ^= 0x01;
    fs::write(path, b).unwrap();
}

/// A copy of a repository, for one tampering each.
pub fn copy(repo: &Path, to: &Path) -> PathBuf {
    let st = Command::new("cp")
        .arg("-a")
        .arg(repo)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
    to.to_owned()
}

/// A tar archive of `src` as GNU tar makes it, xattrs included.
pub fn tar_of(src: &Path, out: &Path) {
    let st = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-C"])
        .arg(src)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
}

/// A repository holding a tree committed as `os` and signed with a new key.
pub struct Signed {
    pub _tmp: tempfile::TempDir,
    /// The scratch directory holding all of it.
    pub dir: PathBuf,
    pub repo: PathBuf,
    /// The tree committed.
    pub src: PathBuf,
    /// What `init --json` printed.
    pub init: serde_json::Value,
    /// What `commit --json` printed.
    pub commit: serde_json::Value,
    /// The secret key file, and the public one beside it.
    pub key: PathBuf,
    pub public: PathBuf,
}

/// `sealroot init INIT`, `fill` making the tree, `sealroot commit --ref os COMMIT SRC` and
/// `sealroot sign` with a new key, in a scratch directory named after `name`.
pub fn signed_repo(name: &str, init: &[&str], fill: impl FnOnce(&Path), commit: &[&str]) -> Signed {
    let tmp = sealroot_testkit::scratch(TMP, name);
    let dir = tmp.path().to_owned();
    let repo = dir.join("repo");
    let init = json(&repo, &[&["init"][..], init].concat());
    let src = dir.join("src");
    fill(&src);
    let commit = json(
        &repo,
        &[&["commit", "--ref", "os"][..], commit, &[s(&src)]].concat(),
    );
    let key = dir.join("key");
    ok(&repo, &["key", "generate", s(&key)]);
    ok(&repo, &["sign", "--key", s(&key), "os"]);
    Signed {
        _tmp: tmp,
        public: dir.join("key.pub"),
        dir,
        repo,
        src,
        init,
        commit,
        key,
    }
}
