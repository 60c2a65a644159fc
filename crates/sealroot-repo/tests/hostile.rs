//! A repository someone else can write to: symlinks planted where the layout has files and
//! directories, names that try to climb out, damaged configurations. Every one must be
//! refused with an error naming the path, and nothing outside the repository read, written or
//! removed (an [`Untouched`] directory watches for any access).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use sealroot_repo::{
    CommitOptions, Corruption, FsckOptions, GcOptions, ImageId, ImageProblem, InitOptions,
    NoProgress, ObjectId, OnRefMoved, OpenError, RefError, RefName, RefProblem, RefTarget,
    Repository,
};
use sealroot_testkit::{pattern, scratch, swap_for_symlink, Untouched};
use sealroot_tree::{build_from_dir, BuildOptions, NoProgress as TreeNoProgress};
use sealroot_verity::sha256_digest;

/// A repository with one commit (ref `main`, commit and image ref), its source, and a
/// directory beside it standing for the rest of the system.
struct Setup {
    _t: tempfile::TempDir,
    path: PathBuf,
    repo: Repository,
    src: PathBuf,
    outside: PathBuf,
}

fn setup() -> Setup {
    let t = scratch(env!("CARGO_TARGET_TMPDIR"), "hostile-");
    let path = t.path().join("repo");
    let repo = Repository::init(&path, &InitOptions::default()).unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("big"), pattern(1, 100_000)).unwrap();
    fs::write(src.join("sub/small"), b"small").unwrap();
    let outside = t.path().join("outside");
    fs::create_dir_all(outside.join("dir")).unwrap();
    fs::write(outside.join("file"), b"precious").unwrap();
    fs::write(outside.join("dir/deeper"), pattern(2, 5000)).unwrap();
    let s = Setup {
        _t: t,
        path,
        repo,
        src,
        outside,
    };
    commit(&s.repo, &s.src, "main").unwrap();
    s
}

fn name(s: &str) -> RefName {
    RefName::new(s).unwrap()
}

/// Commits directory `src` as commit ref `r` (and image ref `r`).
fn commit(repo: &Repository, src: &Path, r: &str) -> Result<(), String> {
    let tx = repo.transaction().map_err(|e| e.to_string())?;
    let opts = BuildOptions {
        object_store: Some(tx.object_store()),
        ..BuildOptions::default()
    };
    let tree = build_from_dir(src, &opts, &TreeNoProgress).map_err(|e| e.to_string())?;
    let new = tx
        .write_commit(tree, &CommitOptions::default())
        .map_err(|e| e.to_string())?;
    let head = repo
        .commit_ref_if_any(&name(r))
        .map_err(|e| e.to_string())?;
    tx.commit_to_ref(&name(r), &new, head, OnRefMoved::Refuse)
        .map_err(|e| e.to_string())?;
    tx.finish().map_err(|e| e.to_string())?;
    Ok(())
}

/// Asserts `message` refuses a symlink and names `path`.
fn refuses(message: &str, path: &Path) {
    assert!(
        message.contains("symlink") && message.contains(&path.display().to_string()),
        "expected a refusal naming the symlink {}: {message}",
        path.display()
    );
}

#[test]
fn a_ref_directory_planted_as_a_symlink_is_refused() {
    let s = setup();
    let image = s.repo.resolve_ref(&name("main")).unwrap();
    let evil_images = s.path.join("images/refs/evil");
    let evil_commits = s.path.join("commits/refs/evil");
    symlink(&s.outside, &evil_images).unwrap();
    symlink(s.outside.join("dir"), &evil_commits).unwrap();
    let outside = Untouched::watch(&s.outside);

    // Setting, reading and removing a ref below it: refused, never NotFound (which would let
    // a commit go ahead and write there).
    let e = s.repo.set_ref(&name("evil/x"), &image).unwrap_err();
    refuses(&e.to_string(), &evil_images);
    let e = s.repo.resolve_ref(&name("evil/x")).unwrap_err();
    assert!(matches!(e, RefError::Io(_)), "{e:?}");
    refuses(&e.to_string(), &evil_images);
    let e = s.repo.remove_ref(&name("evil/x")).unwrap_err();
    refuses(&e.to_string(), &evil_images);
    let e = s.repo.commit_ref_if_any(&name("evil/x")).unwrap_err();
    refuses(&e.to_string(), &evil_commits);
    let e = commit(&s.repo, &s.src, "evil/x").unwrap_err();
    refuses(&e, &evil_commits);
    // A commit ref set directly (no read first) is refused too.
    let tx = s.repo.transaction().unwrap();
    let head = s.repo.resolve_commit_ref(&name("main")).unwrap();
    let e = tx.set_commit_ref(&name("evil/y"), &head).unwrap_err();
    refuses(&e.to_string(), &evil_commits);
    tx.finish().unwrap();
    outside.assert_untouched("setting refs below a planted link");

    // Listing: the link is a ref whose text is not a ref's, shown as such, not followed.
    let refs = s.repo.refs().unwrap();
    assert!(
        refs.iter()
            .any(|r| r.name.as_str() == "evil" && matches!(r.target, RefTarget::Invalid(_))),
        "{refs:?}"
    );
    let report = s.repo.fsck(&FsckOptions::repair(), &NoProgress).unwrap();
    assert!(
        report
            .broken_refs
            .iter()
            .any(|b| b.name == "evil" && matches!(b.problem, RefProblem::BadTarget(_))),
        "{report:#?}"
    );
    let gc = s.repo.gc(&GcOptions::remove(), &NoProgress).unwrap();
    assert!(gc.broken_refs.iter().any(|b| b == "evil"), "{gc:?}");
    assert_eq!(gc.objects_removed, 0, "{gc:?}");
    outside.assert_untouched("listing, fsck --repair and gc");
    assert_eq!(s.repo.resolve_ref(&name("main")).unwrap(), image);
}

#[test]
fn an_image_ref_leading_outside_is_never_followed() {
    let s = setup();
    let image = s.repo.resolve_ref(&name("main")).unwrap();
    let outside_file = s.outside.join("file");
    // Relative (climbing out), absolute, and of the right depth but naming a planted
    // images/ entry that leads outside.
    symlink("../../../outside/file", s.path.join("images/refs/up")).unwrap();
    symlink(&outside_file, s.path.join("images/refs/abs")).unwrap();
    let fake = ImageId::new(ObjectId::from(sha256_digest(b"fake image")));
    symlink(&outside_file, s.path.join("images").join(fake.to_hex())).unwrap();
    symlink(
        format!("../{}", fake.to_hex()),
        s.path.join("images/refs/fake"),
    )
    .unwrap();
    let outside = Untouched::watch(&s.outside);

    for r in ["up", "abs", "fake"] {
        let e = s.repo.resolve_ref(&name(r)).unwrap_err();
        assert!(matches!(e, RefError::Broken { .. }), "{r}: {e:?}");
        assert!(s.repo.resolve_image(r).is_err(), "{r}");
        assert!(s.repo.resolve_commit(r).is_err(), "{r}");
    }
    assert!(!s.repo.has_image(&fake).unwrap());
    assert!(s.repo.read_image(&fake).is_err());
    assert!(s.repo.open_image(&fake).is_err());
    let refs = s.repo.refs().unwrap();
    assert_eq!(refs.len(), 4, "{refs:?}");
    outside.assert_untouched("resolving and reading");

    let report = s.repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    let broken: Vec<&str> = report.broken_refs.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(broken, ["abs", "fake", "up"], "{report:#?}");
    assert!(
        report.broken_images.iter().any(|b| b.image == Some(fake)),
        "{report:#?}"
    );
    let gc = s.repo.gc(&GcOptions::remove(), &NoProgress).unwrap();
    assert_eq!(gc.broken_refs.len(), 3, "{gc:?}");
    // The planted images/ entry is removed as an image no ref keeps: the link, not what it
    // points at.
    assert!(fs::symlink_metadata(s.path.join("images").join(fake.to_hex())).is_err());
    outside.assert_untouched("fsck and gc");
    assert_eq!(s.repo.resolve_ref(&name("main")).unwrap(), image);
}

#[test]
fn symlinked_object_directories_are_neither_written_nor_swept() {
    let s = setup();
    // Every objects/XX not there yet becomes a link to a directory elsewhere holding a
    // file named like an object of it, so whatever the next commit stores lands on one.
    let planted = s.outside.join("objects");
    let mut links = Vec::new();
    for byte in 0..=255u8 {
        let xx = format!("{byte:02x}");
        let inside = s.path.join("objects").join(&xx);
        if inside.exists() {
            continue;
        }
        fs::create_dir_all(planted.join(&xx)).unwrap();
        fs::write(planted.join(&xx).join("0".repeat(62)), b"not garbage").unwrap();
        symlink(planted.join(&xx), &inside).unwrap();
        links.push(inside);
    }
    assert!(links.len() > 200);
    let outside = Untouched::watch(&s.outside);

    // Contents whose objects' directories are planted links.
    let planted_content = |from: u32| {
        (from..)
            .map(|seed| pattern(seed, 30_000))
            .find(|c| {
                let hex = sha256_digest(c).to_hex();
                fs::symlink_metadata(s.path.join("objects").join(&hex[..2]))
                    .unwrap()
                    .is_symlink()
            })
            .unwrap()
    };
    fs::write(s.src.join("new"), planted_content(100)).unwrap();
    let e = commit(&s.repo, &s.src, "main").unwrap_err();
    assert!(
        links.iter().any(|l| e.contains(&l.display().to_string())) && e.contains("symlink"),
        "{e}"
    );
    let tx = s.repo.transaction().unwrap();
    let e = tx
        .ensure_object(&planted_content(1000))
        .unwrap_err()
        .to_string();
    assert!(e.contains("symlink"), "{e}");
    drop(tx);
    outside.assert_untouched("committing");

    for repair in [false, true] {
        let options = if repair {
            FsckOptions::repair()
        } else {
            FsckOptions::check()
        };
        let e = s.repo.fsck(&options, &NoProgress).unwrap_err().to_string();
        assert!(
            links.iter().any(|l| e.contains(&l.display().to_string())),
            "{e}"
        );
    }
    for options in [GcOptions::dry_run(), GcOptions::remove()] {
        let e = s.repo.gc(&options, &NoProgress).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
    }
    let listed: Result<Vec<_>, _> = s.repo.objects().collect();
    assert!(listed.is_err());
    outside.assert_untouched("fsck, fsck --repair, gc and listing");
}

#[test]
fn a_symlink_planted_as_an_object_is_not_the_object() {
    let s = setup();
    // The link leads to a file outside with the very content its name says.
    let content = pattern(9, 20_000);
    fs::write(s.outside.join("copy"), &content).unwrap();
    let id = ObjectId::from(sha256_digest(&content));
    let object = s.repo.object_path(&id);
    fs::create_dir_all(object.parent().unwrap()).unwrap();
    symlink(s.outside.join("copy"), &object).unwrap();
    let outside = Untouched::watch(&s.outside);

    let e = s.repo.has_object(&id).unwrap_err().to_string();
    refuses(&e, &object);
    assert!(s.repo.open_object(&id).is_err());
    assert!(s.repo.read_object_checked(&id, 1 << 20).is_err());
    // Storing that content does not take the link for the object.
    let tx = s.repo.transaction().unwrap();
    let e = tx.ensure_object(&content).unwrap_err().to_string();
    refuses(&e, &object);
    drop(tx);
    outside.assert_untouched("looking it up and storing its content");

    let report = s.repo.fsck(&FsckOptions::repair(), &NoProgress).unwrap();
    let corrupt: Vec<_> = report
        .corrupt_objects
        .iter()
        .map(|c| (c.object, c.problem.clone()))
        .collect();
    assert_eq!(corrupt, [(id, Corruption::NotARegularFile)]);
    assert!(
        fs::symlink_metadata(&object).is_err(),
        "the link is removed"
    );
    outside.assert_untouched("fsck --repair");
    let tx = s.repo.transaction().unwrap();
    assert_eq!(tx.ensure_object(&content).unwrap(), id);
    tx.finish().unwrap();
    assert!(fs::metadata(&object).unwrap().is_file());
}

#[test]
fn a_symlinked_tmp_is_never_written_nor_emptied() {
    let s = setup();
    let tmp = s.path.join("tmp");
    fs::remove_dir_all(&tmp).unwrap();
    // What gc would empty, and what a transaction marker might be mistaken for.
    fs::write(
        s.outside
            .join(format!("transaction.{}.1.0", "f".repeat(32))),
        b"",
    )
    .unwrap();
    symlink(&s.outside, &tmp).unwrap();
    let outside = Untouched::watch(&s.outside);

    let e = s.repo.transaction().unwrap_err().to_string();
    refuses(&e, &tmp);
    let e = commit(&s.repo, &s.src, "other").unwrap_err();
    refuses(&e, &tmp);
    for options in [GcOptions::dry_run(), GcOptions::remove()] {
        let e = s.repo.gc(&options, &NoProgress).unwrap_err().to_string();
        refuses(&e, &tmp);
    }
    for options in [FsckOptions::check(), FsckOptions::repair()] {
        let e = s.repo.fsck(&options, &NoProgress).unwrap_err().to_string();
        refuses(&e, &tmp);
    }
    let e = s
        .repo
        .set_ref(&name("x"), &s.repo.resolve_ref(&name("main")).unwrap())
        .unwrap_err()
        .to_string();
    refuses(&e, &tmp);
    outside.assert_untouched("transactions, gc and fsck");
    // Opened fresh, the repository refuses it the same.
    let repo = Repository::open(&s.path).unwrap();
    assert!(repo.transaction().is_err());
    outside.assert_untouched("a fresh open");
}

#[test]
fn a_symlinked_locks_directory_is_refused() {
    let s = setup();
    let locks = s.path.join("tmp/locks");
    let _ = fs::remove_dir_all(&locks);
    symlink(&s.outside, &locks).unwrap();
    let outside = Untouched::watch(&s.outside);
    let image = s.repo.resolve_ref(&name("main")).unwrap();
    let e = s.repo.set_ref(&name("x"), &image).unwrap_err().to_string();
    refuses(&e, &locks);
    outside.assert_untouched("taking a ref's lock");
    // gc empties tmp/: the link goes, not what it points at.
    s.repo.gc(&GcOptions::remove(), &NoProgress).unwrap();
    assert!(fs::symlink_metadata(&locks).is_err());
    outside.assert_untouched("gc");
    s.repo.set_ref(&name("x"), &image).unwrap();
}

#[test]
fn a_symlinked_cache_is_neither_read_nor_written() {
    let s = setup();
    let cache = s.path.join("cache");
    let _ = fs::remove_dir_all(&cache);
    fs::write(s.outside.join("devino"), b"whatever a cache holds").unwrap();
    symlink(&s.outside, &cache).unwrap();
    let outside = Untouched::watch(&s.outside);
    let e = s
        .repo
        .read_cache_file("devino", 1 << 20)
        .unwrap_err()
        .to_string();
    refuses(&e, &cache);
    let tx = s.repo.transaction().unwrap();
    let e = tx
        .write_cache_file("devino", b"new")
        .unwrap_err()
        .to_string();
    refuses(&e, &cache);
    tx.finish().unwrap();
    outside.assert_untouched("reading and writing the cache");
}

#[test]
fn a_symlinked_images_directory_is_refused() {
    let s = setup();
    // Let the copy hold an image link whose object is gone: what fsck --repair and crash
    // recovery remove as dangling.
    let copy = swap_for_symlink(&s.path, "images", &s.outside);
    let dangling = ImageId::new(ObjectId::from(sha256_digest(b"gone")));
    symlink(
        format!("../objects/{}", dangling.object().object_path()),
        copy.join(dangling.to_hex()),
    )
    .unwrap();
    let outside = Untouched::watch(&s.outside);
    // Opened afresh: an open repository keeps the directories it opened, the real ones.
    let repo = Repository::open(&s.path).unwrap();
    let images = s.path.join("images");

    let e = repo.images().unwrap_err().to_string();
    refuses(&e, &images);
    let e = repo.resolve_ref(&name("main")).unwrap_err().to_string();
    refuses(&e, &images);
    for options in [GcOptions::dry_run(), GcOptions::remove()] {
        let e = repo.gc(&options, &NoProgress).unwrap_err().to_string();
        refuses(&e, &images);
    }
    for options in [FsckOptions::check(), FsckOptions::repair()] {
        let e = repo.fsck(&options, &NoProgress).unwrap_err().to_string();
        refuses(&e, &images);
    }
    let e = commit(&repo, &s.src, "main").unwrap_err();
    refuses(&e, &images);
    outside.assert_untouched("listing, resolving, gc, fsck, commit");
}

#[test]
fn a_symlinked_commits_directory_is_refused() {
    let s = setup();
    let commits = s.path.join("commits");
    swap_for_symlink(&s.path, "commits", &s.outside);
    let outside = Untouched::watch(&s.outside);
    // Opened afresh: an open repository keeps the directories it opened, the real ones.
    let repo = Repository::open(&s.path).unwrap();
    let e = repo.commits().unwrap_err().to_string();
    refuses(&e, &commits);
    let e = repo.resolve_commit("main").unwrap_err().to_string();
    refuses(&e, &commits);
    let e = commit(&repo, &s.src, "main").unwrap_err();
    refuses(&e, &commits);
    for options in [GcOptions::dry_run(), GcOptions::remove()] {
        let e = repo.gc(&options, &NoProgress).unwrap_err().to_string();
        refuses(&e, &commits);
    }
    for options in [FsckOptions::check(), FsckOptions::repair()] {
        let e = repo.fsck(&options, &NoProgress).unwrap_err().to_string();
        refuses(&e, &commits);
    }
    outside.assert_untouched("listing, resolving, committing, gc, fsck");
}

#[test]
fn a_symlinked_signature_file_is_neither_read_nor_written_through() {
    let s = setup();
    let id = s.repo.resolve_commit("main").unwrap();
    let sig = s.path.join("commits").join(format!("{}.sig", id.to_hex()));
    let p7s = s.path.join("commits").join(format!("{}.p7s", id.to_hex()));
    symlink(s.outside.join("file"), &sig).unwrap();
    symlink(s.outside.join("file"), &p7s).unwrap();
    let outside = Untouched::watch(&s.outside);

    let e = s.repo.read_signatures(&id).unwrap_err().to_string();
    refuses(&e, &sig);
    let e = s.repo.read_image_signature(&id).unwrap_err().to_string();
    refuses(&e, &p7s);
    let tx = s.repo.transaction().unwrap();
    let e = tx
        .update_signatures(&id, |_| Ok(b"merged".to_vec()))
        .unwrap_err()
        .to_string();
    refuses(&e, &sig);
    outside.assert_untouched("reading and merging signatures");
    // Replacing the file whole replaces the link, never what it points at.
    tx.write_signatures(&id, b"replaced").unwrap();
    tx.write_image_signature(&id, b"der").unwrap();
    tx.finish().unwrap();
    assert_eq!(fs::read(&sig).unwrap(), b"replaced");
    assert!(fs::symlink_metadata(&p7s).unwrap().is_file());
    outside.assert_untouched("replacing signatures");
}

#[test]
fn names_that_climb_out_are_refused() {
    let s = setup();
    let outside = Untouched::watch(&s.outside);
    for bad in [
        "..",
        "../outside",
        "a/../../outside",
        "/etc/passwd",
        ".hidden",
    ] {
        assert!(RefName::new(bad).is_err(), "{bad}");
        assert!(s.repo.resolve_image(bad).is_err(), "{bad}");
        assert!(s.repo.resolve_commit(bad).is_err(), "{bad}");
    }
    // Entries planted with such names: a directory "..evil" holding a good-looking ref, a
    // hidden ref, an images/ entry named "..": all reported, none followed, nothing kept.
    let image = s.repo.resolve_ref(&name("main")).unwrap();
    fs::create_dir(s.path.join("images/refs/..evil")).unwrap();
    symlink(
        format!("../../{}", image.to_hex()),
        s.path.join("images/refs/..evil/x"),
    )
    .unwrap();
    symlink(
        format!("../{}", image.to_hex()),
        s.path.join("images/refs/.hidden"),
    )
    .unwrap();
    symlink("../../outside", s.path.join("images/..x")).unwrap();
    let listed: Vec<String> = s
        .repo
        .refs()
        .unwrap()
        .into_iter()
        .map(|r| r.name.as_str().to_owned())
        .collect();
    assert_eq!(listed, ["main"]);
    let report = s.repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    let invalid: Vec<&str> = report
        .broken_refs
        .iter()
        .filter(|b| matches!(b.problem, RefProblem::InvalidName(_)))
        .map(|b| b.name.as_str())
        .collect();
    assert_eq!(invalid, ["..evil/x", ".hidden"], "{report:#?}");
    assert!(
        report
            .broken_images
            .iter()
            .any(|b| b.name == "..x" && b.problem == ImageProblem::BadName),
        "{report:#?}"
    );
    s.repo.gc(&GcOptions::remove(), &NoProgress).unwrap();
    outside.assert_untouched("planted names");
}

#[test]
fn a_damaged_or_newer_configuration_is_refused_naming_the_file() {
    let s = setup();
    let meta = s.path.join("meta.json");
    let good = fs::read_to_string(&meta).unwrap();
    let put = |f: &dyn Fn()| {
        let _ = fs::remove_file(&meta);
        let _ = fs::remove_dir(&meta);
        f();
    };
    // What meta.json is, how to make it so, what the error says.
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "truncated",
            Box::new(|| fs::write(&meta, &good[..good.len() / 2]).unwrap()),
            "not JSON",
        ),
        (
            "garbage",
            Box::new(|| fs::write(&meta, pattern(3, 300)).unwrap()),
            "not JSON",
        ),
        (
            "empty",
            Box::new(|| fs::write(&meta, b"").unwrap()),
            "not JSON",
        ),
        (
            "not an object",
            Box::new(|| fs::write(&meta, b"[1, 2]").unwrap()),
            "not a JSON object",
        ),
        (
            "a symlink",
            Box::new(|| {
                fs::write(s.outside.join("meta.json"), &good).unwrap();
                symlink(s.outside.join("meta.json"), &meta).unwrap()
            }),
            "symlink",
        ),
        (
            "a directory",
            Box::new(|| fs::create_dir(&meta).unwrap()),
            "not a regular file but a directory",
        ),
        (
            "a FIFO",
            Box::new(|| {
                let st = std::process::Command::new("mkfifo")
                    .arg(&meta)
                    .status()
                    .unwrap();
                assert!(st.success());
            }),
            "not a regular file but a FIFO",
        ),
        (
            "huge",
            Box::new(|| {
                let mut text = good.trim_end().trim_end_matches('}').to_owned();
                text.push_str(&format!(", \"pad\": \"{}\"}}", "x".repeat(10 << 20)));
                fs::write(&meta, text).unwrap()
            }),
            "larger than",
        ),
        (
            "a newer layout version",
            Box::new(|| {
                fs::write(&meta, good.replace("\"version\": 1", "\"version\": 2")).unwrap()
            }),
            "newer than this sealroot understands",
        ),
        (
            "a newer sealroot format",
            Box::new(|| fs::write(&meta, good.replace("\"format\": 1", "\"format\": 9")).unwrap()),
            "newer than this sealroot understands",
        ),
        (
            "an unknown incompatible feature",
            Box::new(|| {
                fs::write(
                    &meta,
                    good.replace("\"incompatible\": []", "\"incompatible\": [\"zstd\"]"),
                )
                .unwrap()
            }),
            "zstd",
        ),
    ];
    for (what, make, says) in &cases {
        put(make);
        let outside = Untouched::watch(&s.outside);
        for (op, e) in [
            ("open", Repository::open(&s.path).unwrap_err()),
            (
                "init",
                Repository::init(&s.path, &InitOptions::default()).unwrap_err(),
            ),
        ] {
            let text = e.to_string();
            assert!(
                text.contains(&meta.display().to_string()) && text.contains(says),
                "{op} of a repository whose meta.json is {what}: {text}"
            );
            if *what == "a newer layout version" {
                assert!(matches!(e, OpenError::NewerFormat { .. }), "{e:?}");
            }
        }
        outside.assert_untouched(what);
    }
    put(&|| fs::write(&meta, &good).unwrap());
    Repository::open(&s.path).unwrap();
}

#[test]
fn a_fifo_or_directory_planted_as_an_object_is_not_the_object() {
    let s = setup();
    let fifo_content = pattern(10, 7000);
    let dir_content = pattern(11, 7000);
    let fifo_id = ObjectId::from(sha256_digest(&fifo_content));
    let dir_id = ObjectId::from(sha256_digest(&dir_content));
    let (fifo, dir) = (s.repo.object_path(&fifo_id), s.repo.object_path(&dir_id));
    fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    fs::create_dir_all(&dir).unwrap();
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    // Nothing hangs on the FIFO, nothing takes either for the object.
    let tx = s.repo.transaction().unwrap();
    let e = tx.ensure_object(&fifo_content).unwrap_err().to_string();
    assert!(
        e.contains(&fifo.display().to_string()) && e.contains("not a regular file"),
        "{e}"
    );
    let e = tx.ensure_object(&dir_content).unwrap_err().to_string();
    assert!(
        e.contains(&dir.display().to_string()) && e.contains("Is a directory"),
        "{e}"
    );
    drop(tx);
    assert!(s.repo.read_object_checked(&fifo_id, 1 << 20).is_err());
    let report = s.repo.fsck(&FsckOptions::check(), &NoProgress).unwrap();
    let mut corrupt: Vec<_> = report
        .corrupt_objects
        .iter()
        .map(|c| (c.object, c.problem.clone()))
        .collect();
    corrupt.sort_by_key(|c| c.0);
    let mut want = vec![
        (fifo_id, Corruption::NotARegularFile),
        (dir_id, Corruption::NotARegularFile),
    ];
    want.sort_by_key(|c| c.0);
    assert_eq!(corrupt, want);
    // Repair does not remove a directory (it may hold anything), and says so; the FIFO it
    // removes.
    let e = s
        .repo
        .fsck(&FsckOptions::repair(), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&dir.display().to_string()), "{e}");
    fs::remove_dir(&dir).unwrap();
    s.repo.fsck(&FsckOptions::repair(), &NoProgress).unwrap();
    assert!(fs::symlink_metadata(&fifo).is_err());
    let tx = s.repo.transaction().unwrap();
    assert_eq!(tx.ensure_object(&fifo_content).unwrap(), fifo_id);
    tx.finish().unwrap();
}
