//! Signed commits end to end: commit, log, show, diff, sign, verify, derive and
//! `mount --require-signature`, and every tampering the issue names caught with a message
//! saying what failed and where.

#![forbid(unsafe_code)]

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sealroot_testkit::{assert_same, mount_test, Fields, Snapshot};
use serde_json::Value;

mod common;
use common::{
    copy, fails, flip, fsck_json, have, json, object, ok, run, s, signed_repo, tree, Signed, BIN,
};

/// `common::tree` seed 1, committed with a subject, a version and metadata, and signed.
fn setup(name: &str) -> Signed {
    let commit = ["-s", "first", "--version", "1.0", "-m", "build=42"];
    signed_repo(name, &[], |src| tree(src, 1), &commit)
}

#[test]
fn commits_have_history_and_diffs() {
    let t = setup("commit-history-");
    let (repo, src) = (&t.repo, &t.src);
    let first = t.commit["commit"].as_str().unwrap().to_owned();
    assert!(t.commit["parent"].is_null());
    fs::write(src.join("usr/lib/new"), b"a new file\n").unwrap();
    fs::remove_file(src.join("usr/f3")).unwrap();
    fs::write(src.join("etc/conf"), b"key=other\n").unwrap();
    let second = json(repo, &["commit", "--ref", "os", "-s", "second", s(src)]);
    assert_eq!(
        second["parent"].as_str(),
        Some(first.as_str()),
        "parent from the ref"
    );
    assert!(
        second["tree_objects_added"].as_u64().unwrap() < second["tree_objects"].as_u64().unwrap(),
        "unchanged directories are shared: {second}"
    );
    let log = json(repo, &["log", "os"]);
    let subjects: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["second", "first"]);
    let shown = json(repo, &["show", &first]);
    assert_eq!(shown["version"], "1.0");
    assert_eq!(shown["metadata"]["build"], "42");
    assert_eq!(shown["timestamp"], 1_700_000_000, "SOURCE_DATE_EPOCH");
    assert_eq!(shown["signed_by"].as_array().unwrap().len(), 1);
    // A unique prefix names a commit too.
    assert_eq!(
        json(repo, &["show", &first[..12]])["commit"].as_str(),
        Some(first.as_str())
    );

    let diff = ok(repo, &["diff", &first, "os"]);
    let lines: Vec<&str> = diff.lines().collect();
    assert_eq!(
        lines,
        // The directories' mtimes changed too.
        [
            "M    /etc/conf",
            "M    /usr",
            "D    /usr/f3",
            "M    /usr/lib",
            "A    /usr/lib/new"
        ],
        "{diff}"
    );
    let orphan = json(repo, &["commit", "--ref", "other", "--orphan", s(src)]);
    assert!(orphan["parent"].is_null());
    // gc keeps both commits of os (the parent is history) and drops nothing needed.
    ok(repo, &["gc"]);
    assert_eq!(json(repo, &["log", "os"]).as_array().unwrap().len(), 2);
    let fsck = ok(repo, &["fsck"]);
    assert!(fsck.contains("no problems found"), "{fsck}");
    // Removing a commit ref lets gc take its commit, signatures and objects.
    ok(repo, &["refs", "--delete", "os"]);
    assert!(!repo.join("commits/refs/os").exists());
    assert!(!repo.join("images/refs/os").exists());
    assert!(!repo.join("streams/refs/sealroot/os").exists());
    assert!(!run(repo, &["refs", "--delete", "os"]).status.success());
    let gc = json(repo, &["gc"]);
    assert_eq!(gc["commits_removed"], 2, "{gc}");
    assert!(!repo.join(format!("commits/{first}.sig")).exists());
    assert!(ok(repo, &["fsck"]).contains("no problems found"));
}

#[test]
fn the_signed_image_is_what_mkcomposefs_writes_and_a_second_repository_recreates_it() {
    let t = setup("commit-recreate-");
    let image = t.commit["image"].as_str().unwrap();
    let commit = t.commit["commit"].as_str().unwrap();
    // mkcomposefs over the same directory, with a digest store, writes the same image.
    let store = t.dir.join("store");
    let out = Command::new(BIN)
        .arg0("mkcomposefs")
        .arg(format!("--digest-store={}", s(&store)))
        .arg("--print-digest")
        .arg(&t.src)
        .arg(t.dir.join("img.cfs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed.trim(), image, "the commit's image is mkcomposefs's");

    // A second repository gets the commit, its signatures, tree and file objects: no image.
    let repo2 = t.dir.join("repo2");
    ok(&repo2, &["init"]);
    let mut copied = 0;
    for sub in fs::read_dir(t.repo.join("objects")).unwrap() {
        let sub = sub.unwrap().path();
        for f in fs::read_dir(&sub).unwrap() {
            let f = f.unwrap().path();
            let name = format!(
                "{}{}",
                sub.file_name().unwrap().to_str().unwrap(),
                f.file_name().unwrap().to_str().unwrap()
            );
            if name == image {
                continue;
            }
            let to = repo2.join("objects").join(sub.file_name().unwrap());
            fs::create_dir_all(&to).unwrap();
            fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
            copied += 1;
        }
    }
    assert!(copied > 10);
    fs::create_dir_all(repo2.join("commits/refs")).unwrap();
    std::os::unix::fs::symlink(
        format!("../objects/{}/{}", &commit[..2], &commit[2..]),
        repo2.join(format!("commits/{commit}")),
    )
    .unwrap();
    fs::copy(
        t.repo.join(format!("commits/{commit}.sig")),
        repo2.join(format!("commits/{commit}.sig")),
    )
    .unwrap();
    // Verify re-creates the image in memory from the tree objects alone.
    let v = json(&repo2, &["verify", "--keys", s(&t.public), commit]);
    assert_eq!(v["image"], image);
    // derive stores it: byte for byte the image of the first repository.
    let d = json(&repo2, &["derive", commit]);
    assert_eq!(d["image"], image);
    assert_eq!(
        fs::read(object(&repo2, image)).unwrap(),
        fs::read(object(&t.repo, image)).unwrap()
    );
    let file = t.dir.join("derived.cfs");
    ok(&repo2, &["derive", commit, "-o", s(&file)]);
    assert_eq!(
        fs::read(&file).unwrap(),
        fs::read(t.dir.join("img.cfs")).unwrap()
    );
}

#[test]
fn tampering_is_caught_and_named() {
    let t = setup("commit-tamper-");
    let commit = t.commit["commit"].as_str().unwrap().to_owned();
    let image = t.commit["image"].as_str().unwrap().to_owned();
    let keys = s(&t.public).to_owned();
    let verify = |repo: &Path, target: &str| fails(repo, &["verify", "--keys", &keys, target]);
    ok(&t.repo, &["verify", "--keys", &keys, "os"]);

    // One byte of the commit object.
    let r = copy(&t.repo, &t.dir.join("r-commit"));
    flip(&object(&r, &commit), 30);
    let err = verify(&r, "os");
    assert!(
        err.contains(&commit) && err.contains("corrupt"),
        "commit byte: {err}"
    );

    // One byte of a tree object: the dirtree of /usr/lib.
    let r = copy(&t.repo, &t.dir.join("r-tree"));
    let text = fs::read_to_string(object(&r, &commit)).unwrap();
    let root_tree = text
        .lines()
        .find_map(|l| l.strip_prefix("tree "))
        .unwrap()
        .to_owned();
    let root = fs::read_to_string(object(&r, &root_tree)).unwrap();
    let usr = root.lines().find(|l| l.starts_with("d usr ")).unwrap();
    let usr_tree = usr.split(' ').nth(2).unwrap();
    let usr_text = fs::read_to_string(object(&r, usr_tree)).unwrap();
    let lib = usr_text.lines().find(|l| l.starts_with("d lib ")).unwrap();
    let lib_tree = lib.split(' ').nth(2).unwrap().to_owned();
    flip(&object(&r, &lib_tree), 40);
    let err = verify(&r, "os");
    assert!(
        err.contains(&lib_tree) && err.contains("/usr/lib") && err.contains("corrupt"),
        "tree byte: {err}"
    );
    let fsck = String::from_utf8(run(&r, &["fsck"]).stdout).unwrap();
    assert!(
        fsck.contains(&lib_tree) && fsck.contains("os"),
        "fsck: {fsck}"
    );

    // One byte of a file object: fsck names it and the ref; cat refuses its content.
    let r = copy(&t.repo, &t.dir.join("r-file"));
    let data = fs::read(t.src.join("usr/f3")).unwrap();
    let digest = sealroot_verity::sha256_digest(&data).to_hex();
    flip(&object(&r, &digest), 5);
    let out = run(&r, &["fsck"]);
    assert!(!out.status.success());
    let fsck = String::from_utf8(out.stdout).unwrap();
    assert!(
        fsck.contains(&digest) && fsck.contains("os"),
        "fsck: {fsck}"
    );
    let err = fails(&r, &["cat", "os", "/usr/f3"]);
    assert!(
        err.contains("/usr/f3") && err.contains("corrupt"),
        "cat: {err}"
    );

    // One byte of the image: fsck names it; (mount_refuses_... checks the mount).
    let r = copy(&t.repo, &t.dir.join("r-image"));
    flip(&object(&r, &image), 1500);
    let out = run(&r, &["fsck"]);
    assert!(!out.status.success());
    let fsck = String::from_utf8(out.stdout).unwrap();
    assert!(fsck.contains(&image), "fsck: {fsck}");

    // A signature by a key the keyring does not have.
    let r = copy(&t.repo, &t.dir.join("r-unknown"));
    let other = t.dir.join("other");
    ok(&r, &["key", "generate", s(&other)]);
    let err = fails(&r, &["verify", "--keys", s(&t.dir.join("other.pub")), "os"]);
    assert!(
        err.contains(&commit) && err.to_lowercase().contains("trust"),
        "unknown key: {err}"
    );
    // ... and the right keyring but only the other key's signature.
    fs::remove_file(r.join(format!("commits/{commit}.sig"))).unwrap();
    ok(&r, &["sign", "--key", s(&other), "os"]);
    let err = verify(&r, "os");
    assert!(
        err.to_lowercase().contains("trust"),
        "signed by an unknown key: {err}"
    );
    // A revoked key is not enough.
    let err = fails(
        &t.repo,
        &["verify", "--keys", &keys, "--revoked", &keys, "os"],
    );
    assert!(
        err.contains(&commit) && err.contains("revoked"),
        "revoked: {err}"
    );

    // A valid signature moved onto another commit.
    let r = copy(&t.repo, &t.dir.join("r-moved"));
    fs::write(t.src.join("etc/conf"), b"changed\n").unwrap();
    let second = json(&r, &["commit", "--ref", "os", "-s", "unsigned", s(&t.src)]);
    let second = second["commit"].as_str().unwrap();
    let err = verify(&r, "os");
    assert!(err.contains("not signed"), "unsigned: {err}");
    fs::copy(
        r.join(format!("commits/{commit}.sig")),
        r.join(format!("commits/{second}.sig")),
    )
    .unwrap();
    let err = verify(&r, "os");
    assert!(
        err.contains(second) && err.contains(&commit),
        "moved signature: {err}"
    );
    // ... even with its commit line rewritten.
    let moved = fs::read_to_string(r.join(format!("commits/{second}.sig")))
        .unwrap()
        .replace(&commit, second);
    fs::write(r.join(format!("commits/{second}.sig")), moved).unwrap();
    let err = verify(&r, "os");
    assert!(
        err.contains("does not verify"),
        "rewritten signature: {err}"
    );

    // A commit whose recorded digest is not its tree's, properly signed.
    let r = copy(&t.repo, &t.dir.join("r-lie"));
    let text = fs::read_to_string(object(&r, &commit)).unwrap();
    let fake = "ab".repeat(32);
    let lie = text.replace(
        &format!("image sha256:{image}"),
        &format!("image sha256:{fake}"),
    );
    let lie_id = sealroot_verity::sha256_digest(lie.as_bytes()).to_hex();
    let path = object(&r, &lie_id);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, &lie).unwrap();
    std::os::unix::fs::symlink(
        format!("../objects/{}/{}", &lie_id[..2], &lie_id[2..]),
        r.join(format!("commits/{lie_id}")),
    )
    .unwrap();
    ok(&r, &["sign", "--key", s(&t.key), &lie_id]);
    let err = verify(&r, &lie_id);
    assert!(
        err.contains(&lie_id) && err.contains(&fake) && err.contains(&image),
        "lying commit: {err}"
    );
    // Signature only: good (the signature is genuine); the image check is what fails.
    ok(&r, &["verify", "--no-derive", "--keys", &keys, &lie_id]);
}

mount_test! {
    /// `mount --require-signature` mounts a signed commit equal to its source, and refuses
    /// an unsigned commit, a wrong keyring and a changed image before anything is mounted.
    fn mount_requires_a_good_signature() {
        let t = setup("commit-mount-");
        let keys = s(&t.public).to_owned();
        let mnt = t.dir.join("mnt");
        fs::create_dir(&mnt).unwrap();
        ok(&t.repo, &["mount", "--require-signature", &keys, "os", s(&mnt)]);
        let fields = Fields { content: true, nlink: false, dir_nlink: true };
        assert_same(&Snapshot::of_dir(&t.src, fields), &Snapshot::of_dir(&mnt, fields));
        let st = Command::new("umount").arg(&mnt).status().unwrap();
        assert!(st.success());

        let other = t.dir.join("other");
        ok(&t.repo, &["key", "generate", s(&other)]);
        let err = fails(&t.repo, &["mount", "--require-signature", s(&t.dir.join("other.pub")), "os", s(&mnt)]);
        assert!(err.contains("refusing to mount"), "{err}");

        fs::write(t.src.join("etc/conf"), b"unsigned\n").unwrap();
        ok(&t.repo, &["commit", "--ref", "os", s(&t.src)]);
        let err = fails(&t.repo, &["mount", "--require-signature", &keys, "os", s(&mnt)]);
        assert!(err.contains("not signed"), "{err}");

        let r = copy(&t.repo, &t.dir.join("r-image"));
        let image = t.commit["image"].as_str().unwrap();
        let first = t.commit["commit"].as_str().unwrap();
        flip(&object(&r, image), 2000);
        let err = fails(&r, &["mount", "--require-signature", &keys, first, s(&mnt)]);
        assert!(
            err.contains(&format!("{image} was expected")) && err.contains("cannot mount"),
            "{err}"
        );
        // Nothing was mounted.
        assert_eq!(fs::read_dir(&mnt).unwrap().count(), 0);
    }
}

/// A new RSA key and self-signed certificate, `DIR/NAME.key` and `DIR/NAME.pem`, by openssl.
fn rsa_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (key, cert) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pem")),
    );
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args([
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            s(&key),
            "-out",
            s(&cert),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (key, cert)
}

#[test]
fn the_image_gets_a_kernel_signature_as_fsverity_sign_makes_it() {
    if !have("openssl") || !have("fsverity") {
        sealroot_testkit::skip(
            "the_image_gets_a_kernel_signature_as_fsverity_sign_makes_it",
            "openssl or fsverity (fsverity-utils) is not installed",
        );
        return;
    }
    let t = setup("commit-p7s-");
    let image = t.commit["image"].as_str().unwrap().to_owned();
    let commit = t.commit["commit"].as_str().unwrap().to_owned();
    let (key, cert) = rsa_certificate(&t.dir, "c");
    let err = fails(&t.repo, &["derive", "--kernel-signature", "os"]);
    assert!(err.contains("no kernel built-in signature"), "{err}");

    ok(
        &t.repo,
        &[
            "sign",
            "--fsverity-key",
            s(&key),
            "--fsverity-cert",
            s(&cert),
            "os",
        ],
    );
    let p7s = fs::read(t.repo.join(format!("commits/{commit}.p7s"))).unwrap();
    // fsverity-utils, signing the image file itself, writes the very same bytes.
    let theirs = t.dir.join("theirs.p7s");
    let st = Command::new("fsverity")
        .arg("sign")
        .arg(object(&t.repo, &image))
        .arg(&theirs)
        .args(["--key", s(&key), "--cert", s(&cert)])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(
        fs::read(&theirs).unwrap() == p7s,
        "differs from fsverity sign"
    );

    let v = ok(
        &t.repo,
        &[
            "verify",
            "--keys",
            s(&t.public),
            "--fsverity-cert",
            s(&cert),
            "os",
        ],
    );
    assert!(v.contains("good kernel built-in signature"), "{v}");
    // Another certificate, or one byte changed: refused.
    let (_, cert2) = rsa_certificate(&t.dir, "c2");
    let err = fails(
        &t.repo,
        &[
            "verify",
            "--keys",
            s(&t.public),
            "--fsverity-cert",
            s(&cert2),
            "os",
        ],
    );
    assert!(err.contains(&image), "{err}");
    let r = copy(&t.repo, &t.dir.join("r-p7s"));
    let path = r.join(format!("commits/{commit}.p7s"));
    let len = fs::metadata(&path).unwrap().len() as usize;
    flip(&path, len - 10);
    let err = fails(
        &r,
        &[
            "verify",
            "--keys",
            s(&t.public),
            "--fsverity-cert",
            s(&cert),
            "os",
        ],
    );
    assert!(err.contains(&commit), "{err}");

    // gc keeps it with its commit and removes it with it.
    ok(&t.repo, &["gc"]);
    assert!(t.repo.join(format!("commits/{commit}.p7s")).exists());
}

#[test]
fn a_file_with_a_dirtree_as_content_does_not_hide_that_dirtree_from_gc() {
    let t = setup("commit-gc-kinds-");
    let commit = t.commit["commit"].as_str().unwrap().to_owned();
    let text = fs::read_to_string(object(&t.repo, &commit)).unwrap();
    let root_tree = text.lines().find_map(|l| l.strip_prefix("tree ")).unwrap();
    // A second tree holding the first commit's root dirtree as a file's content; its ref
    // sorts first, so gc reaches that object as a file before it reaches it as a dirtree.
    let other = t.dir.join("other");
    fs::create_dir(&other).unwrap();
    fs::copy(object(&t.repo, root_tree), other.join("copy-of-a-dirtree")).unwrap();
    ok(&t.repo, &["commit", "--ref", "a-first", s(&other)]);
    for dir in ["commits/refs", "streams/refs/sealroot"] {
        fs::rename(t.repo.join(dir).join("os"), t.repo.join(dir).join("z-last")).unwrap();
    }
    fs::remove_file(t.repo.join("images/refs/os")).unwrap();
    ok(&t.repo, &["gc"]);
    let fsck = ok(&t.repo, &["fsck"]);
    assert!(fsck.contains("no problems found"), "{fsck}");
    ok(&t.repo, &["verify", "--keys", s(&t.public), "z-last"]);
}

/// `cfsctl gc` (composefs-rs 0.9.4) on a repository with commits keeps every commit of every
/// ref's history, its tree objects, images and files: each commit ref has a history stream
/// under `streams/refs/sealroot/`, which cfsctl's gc follows. A commit no ref reaches goes,
/// and our own gc agrees with cfsctl's.
#[test]
fn cfsctl_gc_keeps_our_commits() {
    let Some(cfsctl) = sealroot_testkit::cfsctl_or_skip("cfsctl_gc_keeps_our_commits") else {
        return;
    };
    let t = setup("cfsctl-gc-");
    let repo = &t.repo;
    let src2 = t.dir.join("src2");
    tree(&src2, 2);
    ok(repo, &["commit", "--ref", "os", "-s", "second", s(&src2)]);
    let src3 = t.dir.join("src3");
    tree(&src3, 3);
    ok(repo, &["commit", "--ref", "other/os", s(&src3)]);
    // A commit whose ref goes: collected by both.
    let src4 = t.dir.join("src4");
    tree(&src4, 4);
    ok(repo, &["commit", "--ref", "gone", s(&src4)]);
    let gone = json(repo, &["show", "gone"]);
    let (clean, report) = fsck_json(repo);
    assert!(clean, "{report}");
    // Remove "gone" by hand as a user of the CLI would not: the refs and the stream ref.
    for dir in [
        "commits/refs/gone",
        "images/refs/gone",
        "streams/refs/sealroot/gone",
    ] {
        fs::remove_file(repo.join(dir)).unwrap();
    }
    let before: Vec<String> = ok(repo, &["objects"]).lines().map(str::to_owned).collect();

    sealroot_testkit::run_cfsctl(&cfsctl, &["--repo", s(repo), "gc"]);

    let after: Vec<String> = ok(repo, &["objects"]).lines().map(str::to_owned).collect();
    assert!(after.len() < before.len(), "cfsctl gc removed nothing");
    let (clean, report) = fsck_json(repo);
    assert!(clean, "after cfsctl gc: {report}");
    let first = t.commit["commit"].as_str().unwrap();
    ok(repo, &["verify", "--keys", s(&t.public), first]);
    for r in ["os", "other/os"] {
        // Every commit of the history is still whole: its image derives from its tree.
        for line in ok(repo, &["log", r]).lines() {
            if let Some(id) = line.strip_prefix("commit ") {
                ok(repo, &["derive", id, "-o", s(&t.dir.join("derived.img"))]);
            }
        }
    }
    let gone_commit = gone["commit"].as_str().unwrap();
    assert!(
        !object(repo, gone_commit).exists(),
        "the commit no ref reaches was not collected"
    );
    // Our gc finds nothing more to remove.
    let g = json(repo, &["gc", "--dry-run"]);
    assert_eq!(g["objects_removed"], 0, "{g}");
}

/// `fsck` of a repository as cfsctl would have: a commit ref whose history stream is missing
/// is a problem (cfsctl gc would remove its objects), and `fsck --repair` writes it anew.
#[test]
fn a_missing_history_stream_is_found_and_repaired() {
    let t = setup("stream-repair-");
    let repo = &t.repo;
    fs::remove_file(repo.join("streams/refs/sealroot/os")).unwrap();
    let (clean, report) = fsck_json(repo);
    assert!(!clean);
    assert_eq!(report["broken_streams"][0]["commit_ref"], "os", "{report}");
    let out = run(repo, &["fsck", "--repair", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["repaired"]["streams_rewritten"][0], "os", "{v}");
    let (clean, report) = fsck_json(repo);
    assert!(clean, "{report}");
}
