//! Running the `sealroot` binary against a repository in tests: `SEALROOT_REPO` set to the
//! repository, `SOURCE_DATE_EPOCH` fixed (so commits of the same tree are the same commit),
//! stdin empty, and assertions that show the command's stderr when they fail.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The timestamp every commit made through these helpers gets.
pub const SOURCE_DATE_EPOCH: &str = "1700000000";

/// `bin ARGS` with the repository and the fixed timestamp in its environment.
pub fn cmd(bin: &str, repo: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env("SEALROOT_REPO", repo)
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH);
    c
}

/// Runs it to completion with an empty stdin.
pub fn run(bin: &str, repo: &Path, args: &[&str]) -> Output {
    cmd(bin, repo, args)
        .stdin(Stdio::null())
        .output()
        .expect("the sealroot binary runs")
}

/// Runs it, asserting success; returns stdout.
pub fn ok(bin: &str, repo: &Path, args: &[&str]) -> String {
    let out = run(bin, repo, args);
    assert!(
        out.status.success(),
        "sealroot {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs it with `--json`, asserting success; returns the parsed output.
pub fn json(bin: &str, repo: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    let text = ok(bin, repo, &a);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("sealroot {a:?}: {e}: {text}"))
}

/// Runs it, asserting failure with a message; returns stderr.
pub fn fails(bin: &str, repo: &Path, args: &[&str]) -> String {
    let out = run(bin, repo, args);
    assert!(
        !out.status.success(),
        "sealroot {args:?} should have failed"
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.trim().is_empty(), "no message from {args:?}");
    err
}
