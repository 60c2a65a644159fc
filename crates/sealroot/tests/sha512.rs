//! sha512 repositories (composefs-rs's `fsverity-sha512-12`) end to end: `init --algorithm
//! sha512`, commits of a directory and of an archive, signatures, `verify` re-creating the
//! image from the tree objects, `derive`, `fsck`, `gc`, tampering caught, `mount` with and
//! without `--require-signature`, and `cfsctl` writing the very same image and reading,
//! checking, collecting and mounting ours.

#![forbid(unsafe_code)]

use std::fs;
use std::path::Path;
use std::process::Command;

use sealroot_testkit::{assert_same, mount_test, pattern, Fields, Snapshot};
use sealroot_verity::{AnyDigest, HashAlgorithm, Params};

mod common;
use common::{copy, fails, flip, fsck_json, json, object, ok, run, s, signed_repo, tar_of, Signed};

/// `common::tree` with an xattr on `etc/conf`.
fn tree(root: &Path, seed: u32) {
    common::tree(root, seed);
    rustix::fs::setxattr(
        root.join("etc/conf"),
        "user.sealroot",
        b"sha512",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

/// The sha512 fs-verity digest (4 KiB blocks, no salt) of `bytes`: a sha512 repository's
/// name for an object holding them.
fn sha512(bytes: &[u8]) -> AnyDigest {
    sealroot_verity::digest(&Params::composefs(HashAlgorithm::Sha512), bytes)
}

/// Whether `hex` is 128 lower-case hex digits: a sha512 id.
fn is_sha512_hex(hex: &str) -> bool {
    hex.len() == 128 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A sha512 repository with `src` (made by `fill`) committed as `os` and signed.
fn setup(name: &str, fill: impl FnOnce(&Path)) -> Signed {
    let t = signed_repo(name, &["--algorithm", "sha512"], fill, &["-s", "first"]);
    assert_eq!(t.init["algorithm"], "sha512", "{}", t.init);
    t
}

#[test]
fn sha512_commits_sign_verify_derive_fsck_and_gc() {
    let t = setup("sha512-journey-", |src| tree(src, 1));
    let repo = &t.repo;
    let status = json(repo, &["status"]);
    assert_eq!(status["algorithm"], "fsverity-sha512-12", "{status}");
    let commit = t.commit["commit"].as_str().unwrap().to_owned();
    let image = t.commit["image"].as_str().unwrap().to_owned();
    assert!(
        is_sha512_hex(&commit) && is_sha512_hex(&image),
        "{}",
        t.commit
    );

    // Every object is named by its sha512 fs-verity digest: the commit, its tree objects, the
    // files, the image.
    let text = fs::read(object(repo, &commit)).unwrap();
    assert_eq!(sha512(&text).to_hex(), commit);
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains(&format!("\nimage sha512:{image}\n")),
        "{text}"
    );
    let root_tree = text.lines().find_map(|l| l.strip_prefix("tree ")).unwrap();
    assert!(is_sha512_hex(root_tree), "{text}");
    let big = fs::read(t.src.join("usr/lib/f7")).unwrap();
    assert!(object(repo, &sha512(&big).to_hex()).exists());
    assert_eq!(
        sha512(&fs::read(object(repo, &image)).unwrap()).to_hex(),
        image
    );
    let sig = fs::read_to_string(repo.join(format!("commits/{commit}.sig"))).unwrap();
    assert!(sig.contains(&format!("\ncommit {commit}\n")), "{sig}");

    // The same tree as an archive is the same commit (SOURCE_DATE_EPOCH is fixed).
    let tar = t.dir.join("src.tar");
    tar_of(&t.src, &tar);
    let from_tar = json(repo, &["commit", "--ref", "os-tar", "-s", "first", s(&tar)]);
    assert_eq!(from_tar["image"], image.as_str(), "{from_tar}");
    assert_eq!(from_tar["commit"], commit.as_str());
    assert_eq!(from_tar["objects_added"], 0, "{from_tar}");

    // verify checks the signature and re-creates the image from the tree objects.
    let v = json(repo, &["verify", "--keys", s(&t.public), "os"]);
    assert_eq!(v["commit"], commit.as_str());
    assert_eq!(v["image"], image.as_str());
    assert_eq!(v["image_derived"], true, "{v}");
    let text = ok(repo, &["verify", "--keys", s(&t.public), "os"]);
    assert!(
        text.contains(&format!("image sha512:{image} re-created")),
        "{text}"
    );
    let shown = json(repo, &["show", &commit[..12]]);
    assert_eq!(shown["commit"], commit.as_str());
    assert_eq!(shown["signed_by"].as_array().unwrap().len(), 1);
    let derived = t.dir.join("derived.cfs");
    ok(repo, &["derive", "os", "-o", s(&derived)]);
    assert!(fs::read(&derived).unwrap() == fs::read(object(repo, &image)).unwrap());
    // ls and cat read the sha512 image and objects.
    let out = run(repo, &["cat", "os", "/usr/lib/f7"]);
    assert!(out.status.success() && out.stdout == big, "cat");

    // History and diffs.
    fs::write(t.src.join("usr/lib/new"), b"a new file\n").unwrap();
    fs::write(t.src.join("usr/f3"), pattern(99, 50_000)).unwrap();
    let second = json(repo, &["commit", "--ref", "os", "-s", "second", s(&t.src)]);
    assert_eq!(second["parent"], commit.as_str());
    let diff = ok(repo, &["diff", &commit, "os"]);
    assert!(
        diff.contains("M    /usr/f3") && diff.contains("A    /usr/lib/new"),
        "{diff}"
    );
    let log = json(repo, &["log", "os"]);
    assert_eq!(log.as_array().unwrap().len(), 2);

    // fsck is clean; gc keeps the history; without its refs it goes.
    let (clean, report) = fsck_json(repo);
    assert!(clean, "{report}");
    let gc = json(repo, &["gc"]);
    assert_eq!(gc["objects_removed"], 0, "{gc}");
    ok(repo, &["verify", "--keys", s(&t.public), &commit]);
    for r in ["os", "os-tar"] {
        for dir in ["commits/refs", "images/refs", "streams/refs/sealroot"] {
            fs::remove_file(repo.join(dir).join(r)).unwrap();
        }
    }
    let gc = json(repo, &["gc"]);
    assert_eq!(gc["commits_removed"], 2, "{gc}");
    assert!(!object(repo, &commit).exists());
    assert!(!repo.join(format!("commits/{commit}.sig")).exists());
    let (clean, report) = fsck_json(repo);
    assert!(clean, "{report}");
}

#[test]
fn sha512_tampering_is_caught_and_named() {
    let t = setup("sha512-tamper-", |src| tree(src, 2));
    let commit = t.commit["commit"].as_str().unwrap().to_owned();
    let image = t.commit["image"].as_str().unwrap().to_owned();
    let keys = s(&t.public).to_owned();
    let verify = |repo: &Path, target: &str| fails(repo, &["verify", "--keys", &keys, target]);

    // One byte of a file object: fsck names it and the ref; cat refuses its content.
    let r = copy(&t.repo, &t.dir.join("r-file"));
    let digest = sha512(&fs::read(t.src.join("usr/f3")).unwrap()).to_hex();
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

    // One byte of a tree object: verify names it and its directory.
    let r = copy(&t.repo, &t.dir.join("r-tree"));
    let text = fs::read_to_string(object(&r, &commit)).unwrap();
    let root_tree = text.lines().find_map(|l| l.strip_prefix("tree ")).unwrap();
    let root = fs::read_to_string(object(&r, root_tree)).unwrap();
    let usr = root.lines().find(|l| l.starts_with("d usr ")).unwrap();
    let usr_tree = usr.split(' ').nth(2).unwrap().to_owned();
    flip(&object(&r, &usr_tree), 40);
    let err = verify(&r, "os");
    assert!(
        err.contains(&usr_tree) && err.contains("/usr") && err.contains("corrupt"),
        "tree byte: {err}"
    );

    // One byte of the commit object.
    let r = copy(&t.repo, &t.dir.join("r-commit"));
    flip(&object(&r, &commit), 30);
    let err = verify(&r, "os");
    assert!(
        err.contains(&commit) && err.contains("corrupt"),
        "commit byte: {err}"
    );

    // A commit whose recorded image is not its tree's, properly signed: the derive catches it.
    let r = copy(&t.repo, &t.dir.join("r-lie"));
    let fake = "ab".repeat(64);
    let lie = text.replace(
        &format!("image sha512:{image}"),
        &format!("image sha512:{fake}"),
    );
    let lie_id = sha512(lie.as_bytes()).to_hex();
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
    ok(&r, &["verify", "--no-derive", "--keys", &keys, &lie_id]);

    // A sha256 id in a sha512 repository names nothing.
    let err = fails(&t.repo, &["show", &"ab".repeat(32)]);
    assert!(err.contains(&"ab".repeat(32)), "{err}");
}

/// `rich_tree` without the socket (tar cannot carry one).
fn rich(src: &Path) {
    sealroot_testkit::rich_tree(src, 8);
    fs::remove_file(src.join("socket")).unwrap();
}

mount_test! {
    /// A sha512 commit mounts (its image's metacopy xattrs carry sha512 digests) and equals
    /// its source, with and without `--require-signature`; a wrong keyring and a changed image
    /// are refused before anything is mounted.
    fn sha512_commits_mount_with_and_without_a_signature() {
        let t = setup("sha512-mount-", rich);
        let keys = s(&t.public).to_owned();
        let mnt = t.dir.join("mnt");
        fs::create_dir(&mnt).unwrap();
        let fields = Fields { content: true, nlink: false, dir_nlink: true };
        let want = Snapshot::of_dir(&t.src, fields);

        ok(&t.repo, &["mount", "os", s(&mnt)]);
        assert_same(&want, &Snapshot::of_dir(&mnt, fields));
        assert!(Command::new("umount").arg(&mnt).status().unwrap().success());

        // The archive's commit mounts the same.
        let tar = t.dir.join("src.tar");
        tar_of(&t.src, &tar);
        ok(&t.repo, &["commit", "--ref", "os-tar", s(&tar)]);
        ok(&t.repo, &["mount", "os-tar", s(&mnt)]);
        assert_same(&want, &Snapshot::of_dir(&mnt, fields));
        assert!(Command::new("umount").arg(&mnt).status().unwrap().success());

        ok(&t.repo, &["mount", "--require-signature", &keys, "os", s(&mnt)]);
        assert_same(&want, &Snapshot::of_dir(&mnt, fields));
        assert!(Command::new("umount").arg(&mnt).status().unwrap().success());

        let other = t.dir.join("other");
        ok(&t.repo, &["key", "generate", s(&other)]);
        let err = fails(&t.repo, &["mount", "--require-signature", s(&t.dir.join("other.pub")), "os", s(&mnt)]);
        assert!(err.contains("refusing to mount"), "{err}");

        let r = copy(&t.repo, &t.dir.join("r-image"));
        let image = t.commit["image"].as_str().unwrap();
        flip(&object(&r, image), 2000);
        let err = fails(&r, &["mount", "--require-signature", &keys, "os", s(&mnt)]);
        assert!(
            err.contains(&format!("{image} was expected")) && err.contains("cannot mount"),
            "{err}"
        );
        assert_eq!(fs::read_dir(&mnt).unwrap().count(), 0, "nothing was mounted");
    }
}

/// `cfsctl` with `--erofs-version 0` writes, for the same directory in a sha512 repository,
/// byte for byte the image sealroot commits with `--hardlinks` (composefs format 0, as C
/// mkcomposefs picks it), with the same sha512 objects; it reads, checks and collects our
/// repository with commits.
#[test]
fn cfsctl_writes_our_sha512_image_and_keeps_our_commits() {
    let Some(cfsctl) =
        sealroot_testkit::cfsctl_or_skip("cfsctl_writes_our_sha512_image_and_keeps_our_commits")
    else {
        return;
    };
    let t = setup("sha512-cfsctl-", |src| tree(src, 3));
    let repo = s(&t.repo);
    // cfsctl keeps hard links shared, as `--hardlinks` does.
    let shared = json(
        &t.repo,
        &["commit", "--ref", "shared", "--hardlinks", s(&t.src)],
    );
    let image = shared["image"].as_str().unwrap();
    let theirs = sealroot_testkit::run_cfsctl(
        &cfsctl,
        &[
            "--repo",
            repo,
            "--erofs-version",
            "0",
            "create-image",
            "--no-propagate-usr-to-root",
            s(&t.src),
            "theirs",
        ],
    );
    assert_eq!(theirs.trim(), format!("sha512:{image}"), "the same image");
    let objects = sealroot_testkit::run_cfsctl(&cfsctl, &["--repo", repo, "image-objects", image]);
    for line in objects.lines() {
        let hex = line.trim().strip_prefix("sha512:").unwrap();
        assert!(object(&t.repo, hex).exists(), "{hex}");
    }
    assert_eq!(objects.lines().count(), 12, "{objects}");
    let fsck = sealroot_testkit::run_cfsctl(&cfsctl, &["--repo", repo, "fsck"]);
    assert!(fsck.contains("status: ok"), "{fsck}");

    // cfsctl's gc keeps every commit of the history (through its stream).
    fs::write(t.src.join("etc/conf"), b"second\n").unwrap();
    ok(&t.repo, &["commit", "--ref", "os", s(&t.src)]);
    fs::remove_file(t.repo.join("images/refs/theirs")).unwrap();
    sealroot_testkit::run_cfsctl(&cfsctl, &["--repo", repo, "gc"]);
    let (clean, report) = fsck_json(&t.repo);
    assert!(clean, "after cfsctl gc: {report}");
    let first = t.commit["commit"].as_str().unwrap();
    ok(&t.repo, &["verify", "--keys", s(&t.public), first]);
    let g = json(&t.repo, &["gc", "--dry-run"]);
    assert_eq!(g["objects_removed"], 0, "{g}");
}

mount_test! {
    /// cfsctl mounts our sha512 image, and we mount, check and add to a sha512 repository
    /// cfsctl made.
    fn cfsctl_and_sealroot_mount_each_others_sha512_images() {
        let Some(cfsctl) = sealroot_testkit::cfsctl_or_skip(
            "cfsctl_and_sealroot_mount_each_others_sha512_images",
        ) else {
            return;
        };
        let t = setup("sha512-cfsctl-mount-", rich);
        let fields = Fields { content: true, nlink: false, dir_nlink: true };
        let want = Snapshot::of_dir(&t.src, fields);
        let mnt = t.dir.join("mnt");
        fs::create_dir(&mnt).unwrap();
        let image = t.commit["image"].as_str().unwrap();
        sealroot_testkit::run_cfsctl(&cfsctl, &["--repo", s(&t.repo), "mount", image, s(&mnt)]);
        assert_same(&want, &Snapshot::of_dir(&mnt, fields));
        assert!(Command::new("umount").arg(&mnt).status().unwrap().success());

        let theirs = t.dir.join("theirs");
        sealroot_testkit::run_cfsctl(
            &cfsctl,
            &["init", "--insecure", "--algorithm", "fsverity-sha512-12", s(&theirs)],
        );
        let id = sealroot_testkit::run_cfsctl(
            &cfsctl,
            &["--repo", s(&theirs), "create-image", "--no-propagate-usr-to-root", s(&t.src), "app"],
        );
        let id = id.trim().strip_prefix("sha512:").unwrap().to_owned();
        let (clean, report) = fsck_json(&theirs);
        assert!(clean, "{report}");
        // cfsctl keeps only the xattrs of its allow list: compare the contents.
        ok(&theirs, &["mount", &id, s(&mnt)]);
        for file in ["big/file0", "dir/4096", "dir/sub/4097", "inline", "just-over-64"] {
            assert!(fs::read(mnt.join(file)).unwrap() == fs::read(t.src.join(file)).unwrap(), "{file}");
        }
        assert!(Command::new("umount").arg(&mnt).status().unwrap().success());
        // Our commit into their repository shares their objects.
        let ours = json(&theirs, &["commit", "--ref", "ours", s(&t.src)]);
        assert_eq!(ours["image"], image, "{ours}");
        let (clean, report) = fsck_json(&theirs);
        assert!(clean, "{report}");
    }
}
