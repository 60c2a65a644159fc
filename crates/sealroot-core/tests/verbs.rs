//! The verbs as a library: committing, signing, verifying, browsing; and what happens when
//! several writers work on one repository at once.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use sealroot_core::commit::{self, Parent, ReadOptions, Request, Source};
use sealroot_core::{browse, keys, sign, verify};
use sealroot_format::Content;
use sealroot_repo::{
    CommitId, CommitOptions, FsckOptions, GcOptions, InitOptions, NoProgress, RefName, Repository,
    WriteCommitError,
};
use sealroot_testkit::pattern;
use sealroot_trust::ed25519::{Keyring, SecretKey};

/// Both progress traits, ignoring everything.
struct Quiet;
impl sealroot_tree::Progress for Quiet {}
impl sealroot_repo::Progress for Quiet {}

fn init(dir: &Path) -> Repository {
    Repository::init(&dir.join("repo"), &InitOptions::default()).unwrap()
}

/// A small source tree whose content depends on `seed`.
fn source(dir: &Path, seed: u32) -> PathBuf {
    let src = dir.join(format!("src{seed}"));
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("small"), format!("tree {seed}\n")).unwrap();
    fs::write(src.join("sub/big"), pattern(seed, 20_000)).unwrap();
    fs::write(src.join("shared"), pattern(1, 10_000)).unwrap();
    src
}

fn request(name: &str, src: &Path, parent: Parent, subject: &str) -> Request {
    Request {
        refname: RefName::new(name).unwrap(),
        source: Source::Dir(src.to_owned()),
        read: ReadOptions::default(),
        parent,
        message: CommitOptions {
            timestamp: 1_700_000_000,
            subject: subject.to_owned(),
            ..Default::default()
        },
    }
}

fn history(repo: &Repository, name: &str) -> Vec<CommitId> {
    let head = repo
        .resolve_commit_ref(&RefName::new(name).unwrap())
        .unwrap();
    repo.log(&head, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

#[test]
fn a_commit_is_made_read_back_signed_and_verified() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let src = source(t.path(), 3);
    let done =
        commit::commit(&repo, request("os/a", &src, Parent::FromRef, "one"), &Quiet).unwrap();
    assert_eq!(done.id, done.new.id);
    assert_eq!(done.parent, None);
    let tree = browse::read_tree(&repo, "os/a").unwrap();
    let id = browse::lookup(&tree, "/sub/big").unwrap();
    let mut out = Vec::new();
    browse::read_file(&repo, &tree, id, "/sub/big", &mut out).unwrap();
    assert_eq!(out, pattern(3, 20_000));

    let g = keys::generate(&t.path().join("key")).unwrap();
    let secret = keys::read_secret_keys(&g.secret).unwrap();
    let s = sign::sign(&repo, &done.id, &secret).unwrap();
    assert_eq!(s.signatures, 1);
    let ring = verify::keyring(&g.public, None).unwrap();
    let v = verify::verify_commit(&repo, &done.id, &ring, true).unwrap();
    assert_eq!(v.keys, [g.key.to_base64()]);

    // A corrupt object: nothing of it is handed out.
    let Content::Regular(file) = &tree.inode(id).content else {
        panic!("not a file")
    };
    let payload = String::from_utf8(file.payload.clone().unwrap()).unwrap();
    let object = repo.path().join("objects").join(payload);
    let mut bytes = fs::read(&object).unwrap();
    bytes[100] ^= 1;
    fs::write(&object, bytes).unwrap();
    let mut out = Vec::new();
    let e = browse::read_file(&repo, &tree, id, "/sub/big", &mut out).unwrap_err();
    assert!(matches!(e, browse::Error::Corrupt { .. }), "{e}");
    assert!(out.is_empty(), "no byte of a corrupt object is written");
}

/// Eight writers commit different trees to one ref at once: every commit that succeeds is in
/// the ref's history (re-parented onto whatever the ref held when it finished), and nothing is
/// lost. With a parent given, a writer whose ref moved is refused instead.
#[test]
fn concurrent_commits_to_one_ref_lose_none() {
    const WRITERS: u32 = 8;
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let path = repo.path().to_owned();
    let srcs: Vec<PathBuf> = (0..WRITERS).map(|i| source(t.path(), 100 + i)).collect();
    let barrier = Barrier::new(WRITERS as usize);
    let ids: Vec<CommitId> = std::thread::scope(|s| {
        let handles: Vec<_> = srcs
            .iter()
            .map(|src| {
                let (path, barrier) = (&path, &barrier);
                s.spawn(move || {
                    let repo = Repository::open(path).unwrap();
                    barrier.wait();
                    commit::commit(&repo, request("os/r", src, Parent::FromRef, "c"), &Quiet)
                        .unwrap()
                        .id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let log = history(&repo, "os/r");
    assert_eq!(log.len(), WRITERS as usize, "{log:?}");
    let in_log: HashSet<CommitId> = log.iter().copied().collect();
    for id in &ids {
        assert!(in_log.contains(id), "commit {id} is not in the history");
    }
    let report = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// Eight writers start new histories (no parent) on one ref at once: a commit that was not
/// made on top of what the ref holds when it finishes is refused with a clear error, never
/// silently put in place of another.
#[test]
fn concurrent_orphans_are_refused_when_the_ref_moved() {
    const WRITERS: u32 = 8;
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let path = repo.path().to_owned();
    let srcs: Vec<PathBuf> = (0..WRITERS).map(|i| source(t.path(), 300 + i)).collect();
    let barrier = Barrier::new(WRITERS as usize);
    let results: Vec<Result<CommitId, commit::Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = srcs
            .iter()
            .map(|src| {
                let (path, barrier) = (&path, &barrier);
                s.spawn(move || {
                    let repo = Repository::open(path).unwrap();
                    barrier.wait();
                    commit::commit(&repo, request("os/o", src, Parent::None, "o"), &Quiet)
                        .map(|c| c.id)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<CommitId> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert!(!won.is_empty());
    for r in &results {
        if let Err(e) = r {
            assert!(
                matches!(e, commit::Error::Write(WriteCommitError::RefMoved { .. })),
                "{e}"
            );
            assert!(
                e.to_string().contains("moved while the commit was made"),
                "{e}"
            );
        }
    }
    let head = repo
        .resolve_commit_ref(&RefName::new("os/o").unwrap())
        .unwrap();
    assert!(won.contains(&head));
}

/// A compare-and-swap on a commit ref refuses to move a ref that moved meanwhile.
#[test]
fn a_ref_that_moved_is_not_overwritten() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let a = commit::commit(
        &repo,
        request("r", &source(t.path(), 1), Parent::FromRef, "a"),
        &Quiet,
    )
    .unwrap();
    let b = commit::commit(
        &repo,
        request("r", &source(t.path(), 2), Parent::FromRef, "b"),
        &Quiet,
    )
    .unwrap();
    let tx = repo.transaction().unwrap();
    let name = RefName::new("r").unwrap();
    let e = tx
        .swap_commit_ref(&name, &a.id, sealroot_repo::Expect::Is(a.id))
        .unwrap_err();
    assert!(matches!(e, WriteCommitError::RefMoved { .. }), "{e}");
    assert!(e.to_string().contains(&b.id.to_string()), "{e}");
    tx.finish().unwrap();
    assert_eq!(repo.resolve_commit_ref(&name).unwrap(), b.id);
}

/// Eight signers of one commit with different keys at once: every signature is kept.
#[test]
fn concurrent_signers_keep_every_signature() {
    const SIGNERS: usize = 8;
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let done = commit::commit(
        &repo,
        request("r", &source(t.path(), 5), Parent::FromRef, "s"),
        &Quiet,
    )
    .unwrap();
    let keys: Vec<SecretKey> = (0..SIGNERS)
        .map(|_| SecretKey::generate().unwrap())
        .collect();
    let path = repo.path().to_owned();
    let barrier = Barrier::new(SIGNERS);
    std::thread::scope(|s| {
        for key in &keys {
            let (path, barrier, id) = (&path, &barrier, done.id);
            s.spawn(move || {
                let repo = Repository::open(path).unwrap();
                barrier.wait();
                sign::sign(&repo, &id, std::slice::from_ref(key)).unwrap();
            });
        }
    });
    let signers: HashSet<String> = verify::signers(&repo, &done.id)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(signers.len(), SIGNERS);
    for k in &keys {
        assert!(signers.contains(&k.public_key().to_base64()));
        let mut ring = Keyring::new();
        ring.add_trusted(k.public_key());
        verify::verify_commit(&repo, &done.id, &ring, false).unwrap();
    }
}

/// Commits, signatures, gc and fsck in a loop, all at once, for a while (20 s, or
/// `SEALROOT_STRESS_SECS`): fsck stays clean, every ref's commit assembles and verifies, and no
/// signature is lost.
#[test]
fn commit_sign_gc_and_fsck_together() {
    let secs = std::env::var("SEALROOT_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let until = Instant::now() + Duration::from_secs(secs);
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let path = repo.path().to_owned();
    let srcs: Vec<PathBuf> = (0..6).map(|i| source(t.path(), 200 + i)).collect();
    let key = SecretKey::generate().unwrap();
    let mut ring = Keyring::new();
    ring.add_trusted(key.public_key());
    let signed: std::sync::Mutex<Vec<CommitId>> = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..3usize {
            let (path, srcs, key, signed) = (&path, &srcs, &key, &signed);
            s.spawn(move || {
                let repo = Repository::open(path).unwrap();
                let mut n = w;
                while Instant::now() < until {
                    let name = format!("stress/{}", n % 4);
                    let src = &srcs[n % srcs.len()];
                    let done =
                        commit::commit(&repo, request(&name, src, Parent::FromRef, "x"), &Quiet)
                            .unwrap();
                    sign::sign(&repo, &done.id, std::slice::from_ref(key)).unwrap();
                    signed.lock().unwrap().push(done.id);
                    n += 3;
                }
            });
        }
        let path = &path;
        s.spawn(move || {
            let repo = Repository::open(path).unwrap();
            while Instant::now() < until {
                repo.gc(&GcOptions::remove(), &NoProgress).unwrap();
                let report = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
                assert!(report.is_clean(), "{report:?}");
            }
        });
    });
    let report = repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    assert!(report.is_clean(), "{report:?}");
    let mut heads = 0;
    for (name, id) in repo.commit_refs().unwrap() {
        let id = id.unwrap_or_else(|| panic!("{name} is broken"));
        heads += 1;
        // Every commit of its history is signed; the head's image derives from its tree.
        for e in repo.log(&id, usize::MAX).unwrap() {
            verify::verify_commit(&repo, &e.id, &ring, e.id == id).unwrap();
        }
    }
    assert_eq!(heads, 4);
    // Every signature of a commit still here is there.
    for id in signed.lock().unwrap().iter() {
        if repo.has_commit(id).unwrap() {
            assert!(
                !verify::signers(&repo, id).unwrap().is_empty(),
                "{id} lost its signature"
            );
        }
    }
}
