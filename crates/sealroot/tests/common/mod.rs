//! What the integration tests of the `sealroot` binary share: running it against a
//! repository (`SEALROOT_REPO` set, `SOURCE_DATE_EPOCH` fixed so that commits of one tree are
//! one commit, stdin empty) with assertions that show its stderr when they fail.
// Each test file uses a part of this.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

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
