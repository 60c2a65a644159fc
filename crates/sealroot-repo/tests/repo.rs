//! The repository on a real filesystem: init/open, objects, images, refs, locking, crash
//! recovery, fsck and gc; interoperation with composefs-rs's `cfsctl` where it is installed.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{mpsc, Mutex};

use sealroot_format::erofs::{self, WriteOptions};
use sealroot_repo::{
    Corruption, FsckOptions, GcOptions, HashAlgorithm, ImageId, ImageProblem, InitOptions,
    NoProgress, ObjectError, ObjectId, OpenError, Phase, Progress, RefError, RefName, RefProblem,
    RefTarget, Repository, Transaction, TransactionError, WriteImageError,
};
use sealroot_testkit::{mount_test, pattern, scratch};
use sealroot_tree::{build_from_dir, BuildOptions, NoProgress as TreeNoProgress};
use sealroot_verity::{digest, sha256_digest, Params};

fn tmpdir() -> tempfile::TempDir {
    scratch(env!("CARGO_TARGET_TMPDIR"), "repo-")
}

fn name(s: &str) -> RefName {
    RefName::new(s).unwrap()
}

/// Every path below `dir`, relative, sorted (not following symlinks).
fn listing(dir: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                go(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        go(dir, dir, &mut out);
    }
    out.sort();
    out
}

/// A source tree: small (inline) and large files, a shared file, a symlink, a subdirectory.
/// `variant` changes some contents.
fn make_source(dir: &Path, variant: u32) {
    fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    fs::write(dir.join("small"), b"inline me").unwrap();
    fs::write(dir.join("big"), pattern(1, 100_000)).unwrap();
    fs::write(dir.join("sub/same-as-big"), pattern(1, 100_000)).unwrap();
    fs::write(
        dir.join("sub/deeper/mine"),
        pattern(100 + variant, 5000 + variant as usize),
    )
    .unwrap();
    fs::write(dir.join("sub/empty"), b"").unwrap();
    std::os::unix::fs::symlink("../big", dir.join("sub/link")).unwrap();
}

/// Builds directory `src` into a tree, its files stored through `tx`, and writes its image.
fn write_image(tx: &Transaction<'_>, src: &Path) -> ImageId {
    let opts = BuildOptions {
        object_store: Some(tx.object_store()),
        ..BuildOptions::default()
    };
    let tree = build_from_dir(src, &opts, &TreeNoProgress).unwrap();
    tx.write_image(&tree, &WriteOptions::default()).unwrap()
}

/// Commits directory `src` into `repo` as ref `r`; returns the image.
fn commit(repo: &Repository, src: &Path, r: &str) -> ImageId {
    let tx = repo.transaction().unwrap();
    let image = write_image(&tx, src);
    tx.set_ref(&name(r), &image).unwrap();
    tx.finish().unwrap();
    image
}

/// Rewrites `meta.json` of `repo` with `f`.
fn edit_meta(repo: &Path, f: impl FnOnce(String) -> String) {
    let p = repo.join("meta.json");
    let text = fs::read_to_string(&p).unwrap();
    fs::write(&p, f(text)).unwrap();
}

#[test]
fn init_writes_the_layout_and_open_reads_it() {
    let t = tmpdir();
    let path = t.path().join("repo");
    let repo = Repository::init(&path, &InitOptions::default()).unwrap();
    assert_eq!(repo.algorithm(), HashAlgorithm::Sha256);
    assert!(!repo.config().require_verity);
    assert_eq!(
        repo.config().sealroot_format,
        Some(sealroot_repo::SEALROOT_FORMAT)
    );
    assert_eq!(
        repo.config().verity_at_init,
        Some(repo.verity_supported()),
        "the config says whether the filesystem had fs-verity"
    );
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        listing(&path),
        ["images", "images/refs", "meta.json", "objects", "tmp"]
    );
    let meta = fs::read_to_string(path.join("meta.json")).unwrap();
    assert!(
        meta.contains("\"algorithm\": \"fsverity-sha256-12\""),
        "{meta}"
    );

    // init again with the same options opens it; with others refuses.
    drop(repo);
    Repository::init(&path, &InitOptions::default()).unwrap();
    let other = InitOptions {
        algorithm: HashAlgorithm::Sha512,
        ..InitOptions::default()
    };
    let e = Repository::init(&path, &other).unwrap_err();
    assert!(matches!(e, OpenError::AlreadyInitialized { .. }), "{e}");

    let e = Repository::open(t.path()).unwrap_err();
    assert!(matches!(e, OpenError::NotARepository { .. }), "{e}");
    let e = Repository::open(&t.path().join("nowhere")).unwrap_err();
    assert!(
        matches!(e, OpenError::Io(ref io) if io.is_not_found()),
        "{e}"
    );
}

#[test]
fn a_newer_format_is_refused_with_a_clear_error() {
    let t = tmpdir();
    let path = t.path().join("repo");
    Repository::init(&path, &InitOptions::default()).unwrap();

    edit_meta(&path, |m| m.replace("\"format\": 1", "\"format\": 2"));
    let e = Repository::open(&path).unwrap_err();
    assert!(matches!(e, OpenError::NewerFormat { found: 2, .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("sealroot format 2") && msg.contains("newer"),
        "{msg}"
    );

    edit_meta(&path, |m| {
        m.replace("\"format\": 2", "\"format\": 1")
            .replace("\"version\": 1", "\"version\": 3")
    });
    let e = Repository::open(&path).unwrap_err();
    assert!(
        matches!(
            e,
            OpenError::NewerFormat {
                what: "repository version",
                found: 3,
                ..
            }
        ),
        "{e}"
    );

    edit_meta(&path, |m| {
        m.replace("\"version\": 3", "\"version\": 1")
            .replace("\"incompatible\": []", "\"incompatible\": [\"chunked\"]")
    });
    let e = Repository::open(&path).unwrap_err();
    assert!(matches!(e, OpenError::IncompatibleFeatures { .. }), "{e}");
    assert!(e.to_string().contains("chunked"), "{e}");

    // An unknown read-only-compatible feature: readable, never written.
    edit_meta(&path, |m| {
        m.replace("\"incompatible\": [\"chunked\"]", "\"incompatible\": []")
            .replace("\"v1_erofs\"", "\"v1_erofs\", \"fancy\"")
    });
    let repo = Repository::open(&path).unwrap();
    assert!(!repo.is_writable());
    assert!(repo.refs().unwrap().is_empty());
    let e = repo.transaction().unwrap_err();
    assert!(matches!(e, TransactionError::ReadOnly { .. }), "{e}");
    assert!(repo.gc(&GcOptions::remove(), &NoProgress).is_err());
}

#[test]
fn sha512_repository() {
    let t = tmpdir();
    let path = t.path().join("repo");
    let opts = InitOptions {
        algorithm: HashAlgorithm::Sha512,
        ..InitOptions::default()
    };
    let repo = Repository::init(&path, &opts).unwrap();
    assert!(fs::read_to_string(path.join("meta.json"))
        .unwrap()
        .contains("fsverity-sha512-12"));
    let repo2 = Repository::open(&path).unwrap();
    assert_eq!(repo2.algorithm(), HashAlgorithm::Sha512);

    let data = pattern(7, 70_000);
    let tx = repo.transaction().unwrap();
    let id = tx.ensure_object(&data).unwrap();
    tx.finish().unwrap();
    assert_eq!(id.algorithm(), HashAlgorithm::Sha512);
    let params = Params::new(HashAlgorithm::Sha512, 4096, &[]).unwrap();
    assert_eq!(*id.digest(), digest(&params, &data));
    assert_eq!(id.object_path().len(), 129);
    assert_eq!(fs::read(repo.object_path(&id)).unwrap(), data);
    let report = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.objects_checked, 1);

    // A sha256 id is not an object of this repository.
    let e = repo
        .has_object(&ObjectId::from(sha256_digest(&data)))
        .unwrap_err();
    assert!(matches!(e, ObjectError::WrongAlgorithm { .. }), "{e}");
}

#[test]
fn objects_are_stored_once_and_named_by_content() {
    let t = tmpdir();
    let repo = Repository::init(&t.path().join("repo"), &InitOptions::default()).unwrap();
    let a = pattern(1, 300_000);
    let b = pattern(2, 10);
    let src = t.path().join("a-file");
    fs::write(&src, &a).unwrap();

    let tx = repo.transaction().unwrap();
    let id_a = tx.ensure_object(&a).unwrap();
    assert_eq!(id_a, ObjectId::from(sha256_digest(&a)));
    assert_eq!(tx.ensure_object_from_reader(&mut &a[..]).unwrap(), id_a);
    let file = fs::File::open(&src).unwrap();
    assert_eq!(
        tx.ensure_object_from_fd(std::os::fd::AsFd::as_fd(&file))
            .unwrap(),
        id_a
    );
    let id_b = tx.ensure_object(&b).unwrap();
    let id_empty = tx.ensure_object(b"").unwrap();
    let stats = tx.finish().unwrap();
    assert_eq!(stats.objects_added, 3);
    assert_eq!(stats.objects_present, 2);
    assert_eq!(stats.bytes_added, a.len() as u64 + b.len() as u64);

    let mut ids: Vec<ObjectId> = repo.objects().map(Result::unwrap).collect();
    ids.sort();
    let mut want = vec![id_a, id_b, id_empty];
    want.sort();
    assert_eq!(ids, want);
    for (id, data) in [(id_a, &a[..]), (id_b, &b[..]), (id_empty, &b""[..])] {
        assert!(repo.has_object(&id).unwrap());
        let mut got = Vec::new();
        repo.open_object(&id)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, data);
        let md = fs::metadata(repo.object_path(&id)).unwrap();
        assert_eq!(md.mode() & 0o777, 0o644);
    }
    let absent = ObjectId::from(sha256_digest(b"absent"));
    assert!(!repo.has_object(&absent).unwrap());
    assert!(matches!(
        repo.open_object(&absent),
        Err(ObjectError::NotFound(_))
    ));
}

/// A reader that yields some bytes, then fails.
struct Failing(usize);

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0 == 0 {
            return Err(io::Error::other("the source broke"));
        }
        let n = self.0.min(buf.len()).min(4096);
        buf[..n].fill(0x5a);
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn no_partial_object_is_ever_visible() {
    let t = tmpdir();
    let path = t.path().join("repo");
    let repo = Repository::init(&path, &InitOptions::default()).unwrap();
    let before = listing(&path);

    let tx = repo.transaction().unwrap();
    // Only the transaction's marker is in tmp/ while it runs.
    let tmp = listing(&path.join("tmp"));
    assert_eq!(tmp.len(), 1, "{tmp:?}");
    assert!(tmp[0].starts_with("transaction."), "{tmp:?}");
    let e = tx
        .ensure_object_from_reader(&mut Failing(100_000))
        .unwrap_err();
    assert!(e.to_string().contains("the source broke"), "{e}");
    // Many threads storing overlapping contents at once.
    let contents: Vec<Vec<u8>> = (0..16)
        .map(|i| pattern(i % 5, 20_000 + (i % 5) as usize))
        .collect();
    let ids = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for c in &contents {
            let (tx, ids) = (&tx, &ids);
            s.spawn(move || ids.lock().unwrap().push(tx.ensure_object(c).unwrap()));
        }
    });
    tx.finish().unwrap();

    let after = listing(&path);
    let new: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    // Five distinct contents: five objects and their directories, nothing else.
    let objects: Vec<&&String> = new.iter().filter(|p| p.len() > 12).collect();
    assert_eq!(objects.len(), 5, "{new:?}");
    assert!(listing(&path.join("tmp")).is_empty());
    for id in ids.into_inner().unwrap() {
        let data = fs::read(repo.object_path(&id)).unwrap();
        assert_eq!(
            ObjectId::from(sha256_digest(&data)),
            id,
            "a name that does not match its content"
        );
    }
    let report = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert!(
        report.is_clean() && report.stray_files.is_empty(),
        "{report:?}"
    );
}

#[test]
fn images_and_refs() {
    let t = tmpdir();
    let path = t.path().join("repo");
    let repo = Repository::init(&path, &InitOptions::default()).unwrap();
    let src = t.path().join("src");
    make_source(&src, 0);

    let tx = repo.transaction().unwrap();
    let opts = BuildOptions {
        object_store: Some(tx.object_store()),
        ..BuildOptions::default()
    };
    let tree = build_from_dir(&src, &opts, &TreeNoProgress).unwrap();
    let image = tx.write_image(&tree, &WriteOptions::default()).unwrap();
    let r = name("os/x86_64/stable");
    tx.set_ref(&r, &image).unwrap();
    let stats = tx.finish().unwrap();
    assert_eq!((stats.images_written, stats.refs_set), (1, 1));

    // The image is an object named by its fs-verity digest, linked from images/.
    let bytes = erofs::write(&tree, &WriteOptions::default()).unwrap();
    assert_eq!(image.as_sha256(), Some(&sha256_digest(&bytes)));
    assert_eq!(repo.read_image_bytes(&image).unwrap(), bytes);
    assert_eq!(
        repo.read_image(&image).unwrap(),
        erofs::read(&bytes).unwrap()
    );
    assert_eq!(
        fs::read_link(path.join("images").join(image.to_hex())).unwrap(),
        PathBuf::from(format!("../objects/{}", image.object().object_path()))
    );
    assert_eq!(
        fs::read_link(path.join("images/refs/os/x86_64/stable")).unwrap(),
        PathBuf::from(format!("../../../{}", image.to_hex()))
    );
    assert_eq!(repo.images().unwrap(), [image]);
    assert_eq!(repo.resolve_ref(&r).unwrap(), image);
    // Two external contents (big and its copy are one object; small is inline).
    assert_eq!(repo.image_objects(&image).unwrap().len(), 2);

    // A second ref, then re-pointing one at a new image.
    let top = name("top");
    repo.set_ref(&top, &image).unwrap();
    fs::write(src.join("big"), pattern(9, 100_000)).unwrap();
    let image2 = commit(&repo, &src, "top");
    assert_ne!(image2, image);
    assert_eq!(repo.resolve_ref(&top).unwrap(), image2);
    assert_eq!(repo.resolve_ref(&r).unwrap(), image);
    let refs = repo.refs().unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0].name, r);
    assert_eq!(refs[0].target, RefTarget::Image(image));
    assert_eq!(refs[1].target, RefTarget::Image(image2));

    // Refusals.
    let nowhere = ImageId::new(ObjectId::from(sha256_digest(b"no image")));
    assert!(matches!(
        repo.set_ref(&name("x"), &nowhere),
        Err(RefError::ImageNotFound { .. })
    ));
    assert!(matches!(
        repo.set_ref(&name("os/x86_64"), &image),
        Err(RefError::Conflict { .. })
    ));
    assert!(matches!(
        repo.set_ref(&name("top/sub"), &image),
        Err(RefError::Conflict { .. })
    ));
    assert!(matches!(
        repo.resolve_ref(&name("nope")),
        Err(RefError::NotFound(_))
    ));
    assert!(RefName::new("../escape").is_err());

    // Removing refs removes the directories they leave empty.
    repo.remove_ref(&r).unwrap();
    assert!(matches!(repo.remove_ref(&r), Err(RefError::NotFound(_))));
    assert!(!path.join("images/refs/os").exists());
    assert_eq!(repo.refs().unwrap().len(), 1);
    // No temporary leftovers (the lock directory stays, empty: locks go with their holders).
    assert_eq!(listing(&path.join("tmp")), ["locks"]);
}

#[test]
fn an_image_needs_all_its_objects() {
    let t = tmpdir();
    let repo = Repository::init(&t.path().join("repo"), &InitOptions::default()).unwrap();
    let src = t.path().join("src");
    make_source(&src, 0);
    // Built without the store: the objects are not in the repository.
    let tree = build_from_dir(&src, &BuildOptions::default(), &TreeNoProgress).unwrap();
    let tx = repo.transaction().unwrap();
    let e = tx.write_image(&tree, &WriteOptions::default()).unwrap_err();
    assert!(matches!(e, WriteImageError::MissingObject { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("/big") || msg.contains("/sub/"), "{msg}");
    assert!(repo.images().unwrap().is_empty());
}

#[test]
fn gc_keeps_what_refs_reach_and_removes_the_rest() {
    let t = tmpdir();
    let path = t.path().join("repo");
    let repo = Repository::init(&path, &InitOptions::default()).unwrap();
    let (src_a, src_b) = (t.path().join("a"), t.path().join("b"));
    make_source(&src_a, 0);
    make_source(&src_b, 1);
    let image_a = commit(&repo, &src_a, "a");
    let image_b = commit(&repo, &src_b, "b");
    let needs_a = repo.image_objects(&image_a).unwrap();
    let needs_b = repo.image_objects(&image_b).unwrap();
    let only_b: Vec<&ObjectId> = needs_b.iter().filter(|o| !needs_a.contains(o)).collect();
    assert_eq!(only_b.len(), 1);
    let image_b_size = fs::metadata(repo.object_path(image_b.object()))
        .unwrap()
        .len();

    // Nothing to collect while both refs exist.
    let r = repo.gc(&GcOptions::remove(), &NoProgress).unwrap();
    assert_eq!(
        (r.objects_removed, r.images_removed, r.images_kept),
        (0, 0, 2)
    );

    // Leftovers of interrupted writers.
    let stray = path.join("objects/ab/.tmp-123-4");
    fs::create_dir_all(stray.parent().unwrap()).unwrap();
    fs::write(&stray, b"half").unwrap();
    fs::write(path.join("tmp/object.99999.0"), b"partial").unwrap();

    repo.remove_ref(&name("b")).unwrap();
    let dry = repo.gc(&GcOptions::dry_run(), &NoProgress).unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.objects_removed, 2, "{dry:?}");
    assert_eq!(dry.object_bytes_removed, 5001 + image_b_size);
    assert_eq!(dry.images_removed, 1);
    assert_eq!((dry.temp_files_removed, dry.temp_bytes_removed), (2, 11));
    assert!(
        repo.has_image(&image_b).unwrap(),
        "a dry run removes nothing"
    );
    assert!(stray.exists());

    let done = repo.gc(&GcOptions::remove(), &NoProgress).unwrap();
    assert_eq!(
        (
            done.objects_removed,
            done.object_bytes_removed,
            done.images_removed,
            done.temp_files_removed
        ),
        (dry.objects_removed, dry.object_bytes_removed, 1, 2)
    );
    assert_eq!(done.objects_kept, needs_a.len() as u64 + 1);
    assert!(!stray.exists());
    assert!(listing(&path.join("tmp")).is_empty());
    assert_eq!(repo.images().unwrap(), [image_a]);
    for o in &needs_a {
        assert!(repo.has_object(o).unwrap());
    }
    assert!(!repo.has_object(only_b[0]).unwrap());
    assert!(!repo.has_object(image_b.object()).unwrap());
    let report = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert!(report.is_clean(), "{report:?}");

    // Without refs everything goes.
    repo.remove_ref(&name("a")).unwrap();
    let all = repo.gc(&GcOptions::remove(), &NoProgress).unwrap();
    assert_eq!(all.objects_removed, needs_a.len() as u64 + 1);
    assert_eq!(repo.objects().count(), 0);
}

/// Records the phases it is told about and signals when gc starts waiting.
struct Watch(Mutex<Option<mpsc::Sender<()>>>);

impl Progress for Watch {
    fn phase(&self, phase: Phase, _: Option<u64>, _: Option<u64>) {
        if phase == Phase::WaitingForLock {
            if let Some(tx) = self.0.lock().unwrap().take() {
                tx.send(()).unwrap();
            }
        }
    }
}

#[test]
fn gc_waits_for_transactions_and_never_takes_their_objects() {
    let t = tmpdir();
    let repo = Repository::init(&t.path().join("repo"), &InitOptions::default()).unwrap();
    let src = t.path().join("src");
    make_source(&src, 0);

    let tx = repo.transaction().unwrap();
    let image = write_image(&tx, &src);
    // No ref yet: only the lock protects what the transaction wrote.
    let (send, waiting) = mpsc::channel();
    let watch = Watch(Mutex::new(Some(send)));
    std::thread::scope(|s| {
        let gc = s.spawn(|| repo.gc(&GcOptions::remove(), &watch).unwrap());
        waiting
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("gc never started waiting for the lock");
        assert!(!gc.is_finished());
        tx.set_ref(&name("r"), &image).unwrap();
        tx.finish().unwrap();
        let report = gc.join().unwrap();
        assert_eq!(report.objects_removed, 0, "{report:?}");
    });
    let report = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.objects_checked, 3);
}

#[test]
fn commits_fsck_and_gc_run_side_by_side() {
    let t = tmpdir();
    let repo = Repository::init(&t.path().join("repo"), &InitOptions::default()).unwrap();
    let sources: Vec<PathBuf> = (0..6)
        .map(|i| {
            let src = t.path().join(format!("src{i}"));
            make_source(&src, i);
            src
        })
        .collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let committer = s.spawn(|| {
            for (i, src) in sources.iter().enumerate() {
                commit(&repo, src, &format!("r{}", i % 2));
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let checker = s.spawn(|| {
            let mut runs = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) || runs == 0 {
                let report = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
                assert!(report.is_clean(), "{report:#?}");
                repo.gc(&GcOptions::remove(), &NoProgress).unwrap();
                runs += 1;
            }
        });
        committer.join().unwrap();
        checker.join().unwrap();
    });
    let report = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(repo.refs().unwrap().len(), 2);
    for r in ["r0", "r1"] {
        let image = repo.resolve_ref(&name(r)).unwrap();
        for o in repo.image_objects(&image).unwrap() {
            assert!(repo.has_object(&o).unwrap());
        }
    }
}

#[test]
fn fsck_finds_corruption_and_names_the_refs() {
    let t = tmpdir();
    let path = t.path().join("repo");
    let repo = Repository::init(&path, &InitOptions::default()).unwrap();
    let src = t.path().join("src");
    make_source(&src, 0);
    fs::write(src.join("third"), pattern(3, 9000)).unwrap();
    let image = commit(&repo, &src, "os/stable");
    repo.set_ref(&name("other"), &image).unwrap();
    let clean = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert!(clean.is_clean(), "{clean:?}");
    assert_eq!(
        (
            clean.objects_checked,
            clean.images_checked,
            clean.refs_checked
        ),
        (4, 1, 2)
    );

    let big = ObjectId::from(sha256_digest(&pattern(1, 100_000)));
    let mine = ObjectId::from(sha256_digest(&pattern(100, 5000)));
    let third = ObjectId::from(sha256_digest(&pattern(3, 9000)));
    // A flipped byte.
    let p = repo.object_path(&big);
    let mut data = fs::read(&p).unwrap();
    data[54_321] ^= 0x01;
    fs::write(&p, &data).unwrap();
    // A truncated object.
    let p = repo.object_path(&mine);
    fs::write(&p, &fs::read(&p).unwrap()[..4096]).unwrap();
    // A deleted object.
    fs::remove_file(repo.object_path(&third)).unwrap();
    // A broken ref.
    std::os::unix::fs::symlink(
        format!("../{}", "0".repeat(64)),
        path.join("images/refs/broken"),
    )
    .unwrap();

    let report = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert!(!report.is_clean());
    let want_refs = vec![name("os/stable"), name("other")];
    let mut want_sorted = want_refs.clone();
    want_sorted.sort();
    assert_eq!(report.corrupt_objects.len(), 2, "{report:#?}");
    for c in &report.corrupt_objects {
        assert!(c.object == big || c.object == mine, "{c:?}");
        assert!(
            matches!(c.problem, Corruption::DigestMismatch { .. }),
            "{c:?}"
        );
        assert_eq!(c.images, [image]);
        assert_eq!(c.refs, want_sorted);
    }
    assert_eq!(report.missing_objects.len(), 1, "{report:#?}");
    assert_eq!(report.missing_objects[0].object, third);
    assert_eq!(report.missing_objects[0].images, [image]);
    assert_eq!(report.missing_objects[0].refs, want_sorted);
    assert_eq!(report.broken_refs.len(), 1, "{report:#?}");
    assert_eq!(report.broken_refs[0].name, "broken");
    assert!(matches!(
        report.broken_refs[0].problem,
        RefProblem::ImageMissing(_)
    ));
    let mut affected = want_sorted.clone();
    affected.insert(0, name("broken"));
    assert_eq!(report.affected_refs(), affected);

    // Repair removes the corrupt objects and names the refs that need a new commit.
    let repaired = repo.fsck(&FsckOptions::repair(), &NoProgress).unwrap();
    let done = repaired.repaired.as_ref().unwrap();
    let mut removed = vec![big, mine];
    removed.sort();
    assert_eq!(done.objects_removed, removed);
    assert_eq!(done.refs_needing_commit, affected);
    assert!(!repo.has_object(&big).unwrap());
    let after = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert!(after.corrupt_objects.is_empty(), "{after:#?}");
    assert_eq!(after.missing_objects.len(), 3);

    // Committing the tree again brings the objects back.
    fs::remove_file(path.join("images/refs/broken")).unwrap();
    assert_eq!(commit(&repo, &src, "os/stable"), image);
    let healed = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert!(healed.is_clean(), "{healed:#?}");
}

#[test]
fn fsck_reports_broken_image_links() {
    let t = tmpdir();
    let path = t.path().join("repo");
    let repo = Repository::init(&path, &InitOptions::default()).unwrap();
    let src = t.path().join("src");
    make_source(&src, 0);
    let image = commit(&repo, &src, "r");
    // The image object vanishes: the image is broken and the ref with it.
    fs::remove_file(repo.object_path(image.object())).unwrap();
    let report = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert_eq!(report.broken_images.len(), 1, "{report:#?}");
    assert_eq!(report.broken_images[0].problem, ImageProblem::MissingObject);
    assert_eq!(report.broken_images[0].refs, [name("r")]);
    assert_eq!(report.broken_refs.len(), 1);
    assert!(matches!(
        repo.resolve_ref(&name("r")),
        Err(RefError::Broken { .. })
    ));
    // gc keeps going: a dangling ref reaches nothing.
    let gc = repo.gc(&GcOptions::remove(), &NoProgress).unwrap();
    assert_eq!(gc.broken_refs, ["r"]);
}

#[test]
fn recovery_after_a_crash_checks_recent_objects() {
    let t = tmpdir();
    let path = t.path().join("repo");
    let repo = Repository::init(&path, &InitOptions::default()).unwrap();
    let src = t.path().join("src");
    make_source(&src, 0);
    let image = commit(&repo, &src, "r");

    // What a power cut during a transaction can leave: its marker (from the boot that
    // crashed) and a linked object whose data never reached the disk.
    let torn = ObjectId::from(sha256_digest(&pattern(42, 50_000)));
    let p = repo.object_path(&torn);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, vec![0u8; 50_000]).unwrap();
    let marker = path.join(format!("tmp/transaction.{}.1234.0", "f".repeat(32)));
    fs::write(&marker, b"boot ffff\npid 1234\n").unwrap();
    // And a transaction whose process was killed in this boot.
    let boot: String = fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .replace('-', "");
    let abandoned = path.join(format!("tmp/transaction.{boot}.99999.7"));
    fs::write(&abandoned, b"").unwrap();

    let tx = repo.transaction().unwrap();
    let rec = tx.recovered().clone();
    assert_eq!(rec.crashed_transactions, 1, "{rec:?}");
    assert_eq!(rec.abandoned_transactions, 1, "{rec:?}");
    assert_eq!(rec.objects_removed, [torn]);
    assert!(rec.objects_checked >= 1);
    assert!(!marker.exists() && !abandoned.exists());
    tx.finish().unwrap();
    assert!(!p.exists());
    assert_eq!(repo.resolve_ref(&name("r")).unwrap(), image);
    let report = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert!(report.is_clean(), "{report:#?}");
}

#[test]
fn a_live_transaction_is_left_alone() {
    let t = tmpdir();
    let repo = Repository::init(&t.path().join("repo"), &InitOptions::default()).unwrap();
    let first = repo.transaction().unwrap();
    let id = first.ensure_object(&pattern(5, 10_000)).unwrap();
    let second = repo.transaction().unwrap();
    assert!(second.recovered().is_empty(), "{:?}", second.recovered());
    assert_eq!(fs::read_dir(repo.path().join("tmp")).unwrap().count(), 2);
    second.finish().unwrap();
    // fsck sees the live transaction's marker as nothing to recover from.
    let report = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert_eq!(report.unfinished_transactions.len(), 0);
    first.finish().unwrap();
    assert!(repo.has_object(&id).unwrap());
}

#[test]
fn two_opens_of_one_repository_never_share_a_marker() {
    let t = tmpdir();
    let path = t.path().join("repo");
    Repository::init(&path, &InitOptions::default()).unwrap();
    let (a, b) = (
        Repository::open(&path).unwrap(),
        Repository::open(&path).unwrap(),
    );
    let first = a.transaction().unwrap();
    let second = b.transaction().unwrap();
    assert_eq!(listing(&path.join("tmp")).len(), 2, "one marker each");
    second.finish().unwrap();
    assert_eq!(
        listing(&path.join("tmp")).len(),
        1,
        "the other's marker stays"
    );
    first.finish().unwrap();
}

#[test]
fn dropping_a_transaction_cleans_up() {
    let t = tmpdir();
    let repo = Repository::init(&t.path().join("repo"), &InitOptions::default()).unwrap();
    {
        let tx = repo.transaction().unwrap();
        tx.ensure_object(b"dropped").unwrap();
    }
    assert!(listing(&repo.path().join("tmp")).is_empty());
    let gc = repo.gc(&GcOptions::remove(), &NoProgress).unwrap();
    assert_eq!(gc.objects_removed, 1);
    assert!(gc.recovered.is_empty());
}

mount_test! {
    /// A committed ref mounts (as an image of the repository, with objects/ as the basedir)
    /// and shows its source.
    fn committed_ref_mounts_and_equals_its_source() {
        let t = tmpdir();
        let repo = Repository::init(&t.path().join("repo"), &InitOptions::default()).unwrap();
        let src = t.path().join("src");
        make_source(&src, 3);
        commit(&repo, &src, "os/stable");
        let image = repo.resolve_ref(&name("os/stable")).unwrap();
        let mnt = t.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let opts = sealroot_mount::MountOptions {
            basedirs: vec![repo.objects_path()],
            expected_digest: Some(*image.digest()),
            ..Default::default()
        };
        sealroot_mount::mount_image(&repo.image_path(&image), &mnt, &opts).unwrap();
        let fields = sealroot_testkit::Fields { content: true, nlink: false, dir_nlink: false };
        sealroot_testkit::assert_same(
            &sealroot_testkit::Snapshot::of_dir(&src, fields),
            &sealroot_testkit::Snapshot::of_dir(&mnt, fields),
        );
    }
}

/// `cfsctl` from composefs-rs, if installed.
fn cfsctl() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let candidates = [
        home.map(|h| h.join(".cargo/bin/cfsctl")),
        Some(PathBuf::from("/usr/local/bin/cfsctl")),
        Some(PathBuf::from("/usr/bin/cfsctl")),
    ];
    candidates.into_iter().flatten().find(|p| p.exists())
}

/// cfsctl, or `None` after [`sealroot_testkit::skip`]ping `test`.
fn cfsctl_or_skip(test: &str) -> Option<PathBuf> {
    let found = cfsctl();
    if found.is_none() {
        sealroot_testkit::skip(test, "cfsctl (composefs-rs) is not installed");
    }
    found
}

/// Runs cfsctl; returns stdout, panicking with its output on failure.
fn run_cfsctl(cfsctl: &Path, args: &[&str]) -> String {
    let out = Command::new(cfsctl).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cfsctl {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn cfsctl_reads_checks_and_collects_our_repository() {
    let Some(cfsctl) = cfsctl_or_skip("cfsctl_reads_checks_and_collects_our_repository") else {
        return;
    };
    let t = tmpdir();
    let path = t.path().join("repo");
    let repo = Repository::init(&path, &InitOptions::default()).unwrap();
    let src = t.path().join("src");
    make_source(&src, 0);
    let image = commit(&repo, &src, "os/stable");
    let (src_b, extra) = (t.path().join("b"), t.path().join("b/extra"));
    make_source(&src_b, 1);
    fs::write(&extra, pattern(77, 12_345)).unwrap();
    commit(&repo, &src_b, "b");
    repo.remove_ref(&name("b")).unwrap();
    let repo_arg = path.to_str().unwrap();

    let images = run_cfsctl(&cfsctl, &["--repo", repo_arg, "images", "--json"]);
    assert!(images.contains("\"os/stable\""), "{images}");
    assert!(images.contains(&image.to_hex()), "{images}");
    let fsck = run_cfsctl(&cfsctl, &["--repo", repo_arg, "fsck"]);
    assert!(fsck.contains("status: ok"), "{fsck}");
    let objects = run_cfsctl(
        &cfsctl,
        &["--repo", repo_arg, "image-objects", "refs/os/stable"],
    );
    let mut theirs: Vec<String> = objects.lines().map(|l| l.trim().to_owned()).collect();
    theirs.sort();
    let ours: Vec<String> = repo
        .image_objects(&image)
        .unwrap()
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(theirs, ours);

    // cfsctl's gc removes exactly what ours would.
    let ours = repo.gc(&GcOptions::dry_run(), &NoProgress).unwrap();
    let gc = run_cfsctl(&cfsctl, &["--repo", repo_arg, "gc"]);
    assert!(
        gc.contains(&format!(
            "Objects: {} removed ({} bytes)",
            ours.objects_removed, ours.object_bytes_removed
        )),
        "{gc} vs {ours:?}"
    );
    let after = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert!(
        after.is_clean() && after.broken_images.is_empty(),
        "{after:#?}"
    );
    assert_eq!(repo.images().unwrap(), [image]);
}

#[test]
fn we_read_checks_and_collect_a_cfsctl_repository() {
    let Some(cfsctl) = cfsctl_or_skip("we_read_checks_and_collect_a_cfsctl_repository") else {
        return;
    };
    let t = tmpdir();
    let path = t.path().join("repo");
    let repo_arg = path.to_str().unwrap();
    let src = t.path().join("src");
    make_source(&src, 0);
    run_cfsctl(
        &cfsctl,
        &[
            "init",
            "--insecure",
            "--algorithm",
            "fsverity-sha256-12",
            repo_arg,
        ],
    );
    let out = run_cfsctl(
        &cfsctl,
        &[
            "--repo",
            repo_arg,
            "create-image",
            "--no-propagate-usr-to-root",
            src.to_str().unwrap(),
            "app/v1",
        ],
    );
    let image: ImageId = out.trim().parse().unwrap();

    let repo = Repository::open(&path).unwrap();
    assert_eq!(repo.config().sealroot_format, None);
    assert!(!repo.config().require_verity);
    assert_eq!(repo.resolve_ref(&name("app/v1")).unwrap(), image);
    let report = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.refs_checked, 1);
    // We can add to it: our commit of the same tree shares its objects.
    let ours = commit(&repo, &src, "app/ours");
    let needs = repo.image_objects(&ours).unwrap();
    for o in &needs {
        assert!(repo.image_objects(&image).unwrap().contains(o));
    }
    repo.remove_ref(&name("app/v1")).unwrap();
    let gc = repo.gc(&GcOptions::remove(), &NoProgress).unwrap();
    assert_eq!(gc.images_removed, 1);
    let fsck = run_cfsctl(&cfsctl, &["--repo", repo_arg, "fsck"]);
    assert!(fsck.contains("status: ok"), "{fsck}");
}

mount_test! {
    /// cfsctl mounts an image sealroot committed, and it shows the source.
    fn cfsctl_mounts_our_image() {
        let Some(cfsctl) = cfsctl_or_skip("cfsctl_mounts_our_image") else {
            return;
        };
        let t = tmpdir();
        let path = t.path().join("repo");
        let repo = Repository::init(&path, &InitOptions::default()).unwrap();
        let src = t.path().join("src");
        make_source(&src, 2);
        let image = commit(&repo, &src, "os/stable");
        let mnt = t.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        run_cfsctl(&cfsctl, &["--repo", path.to_str().unwrap(), "mount", &image.to_hex(), mnt.to_str().unwrap()]);
        let fields = sealroot_testkit::Fields { content: true, nlink: false, dir_nlink: false };
        sealroot_testkit::assert_same(
            &sealroot_testkit::Snapshot::of_dir(&src, fields),
            &sealroot_testkit::Snapshot::of_dir(&mnt, fields),
        );
    }
}
