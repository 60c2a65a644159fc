//! Real mounts of EROFS images through overlayfs, compared with the trees they were made from.
//!
//! # How these tests keep their mounts to themselves
//!
//! Each test that mounts runs in a mount namespace of its own: the test function re-executes
//! this very test binary as `unshare --mount --propagation private -- <binary> <test> --exact`,
//! with an environment variable telling the child that it is the inside run. The child does the
//! work; every mount it makes lives in its private namespace and vanishes when it exits, even if
//! it panics half-way, and no mount event reaches the host or the other tests running in
//! parallel. The parent checks that the child ran exactly one test and passed.
//!
//! Re-executing (rather than `unshare(CLONE_NEWNS)` inside the test) matters: the test harness
//! is multi-threaded, a new mount namespace applies to one thread only, and forking a
//! multi-threaded process to unshare in the child is not something safe Rust can do.
//!
//! Without root, each test skips (`sealroot_testkit::skip`: `SKIPPED: <test>: needs root…`).
//! The tests need `unshare` (util-linux) and `mkfs.erofs` (erofs-utils); without them they
//! fail, saying so.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::fs::{
    chownat, mknodat, openat, utimensat, AtFlags, FileType, Gid, Mode, OFlags, Timespec,
    Timestamps, Uid, CWD,
};
use sealroot_format::erofs::WriteOptions;
use sealroot_format::{Content, DirEntry, Inode, InodeId, Mtime, RegularFile, Stat, Tree, Xattr};
use sealroot_mount::{
    mount_image, mount_image_detached, mount_image_detached_for_tests, AnyDigest, MountError,
    MountOptions, NamespaceType, Step, TestHooks, VerityMode,
};

use sealroot_testkit::{mount_test, pattern, skip_even_in_ci};

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A scratch directory on the same filesystem as the build (erofs cannot mount files that live
/// on tmpfs, which `/tmp` may be).
fn scratch() -> tempfile::TempDir {
    sealroot_testkit::scratch(env!("CARGO_TARGET_TMPDIR"), "sealroot-mount-")
}

fn set_mtime(path: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn chown(path: &Path, uid: u32, gid: u32) {
    chownat(
        CWD,
        path,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

fn write_file(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Builds a tree with one of everything an image can hold: directories, regular files (empty,
/// small enough to be inline, several blocks), a setuid file, other owners, symlinks, a fifo, a
/// character device, and user and trusted xattrs. Times are set last, children before parents.
fn build_tree(root: &Path) {
    fs::create_dir(root).unwrap();
    for dir in ["etc", "usr", "usr/bin", "usr/share", "empty_dir"] {
        fs::create_dir(root.join(dir)).unwrap();
    }
    fs::set_permissions(root.join("empty_dir"), fs::Permissions::from_mode(0o700)).unwrap();
    write_file(&root.join("etc/hostname"), b"sealroot\n", 0o644);
    write_file(&root.join("etc/shadow"), b"root:*:19000::::::\n", 0o640);
    chown(&root.join("etc/shadow"), 0, 42);
    write_file(&root.join("usr/bin/tool"), &pattern(1, 100_000), 0o755);
    write_file(&root.join("usr/bin/su"), &pattern(2, 5000), 0o4755);
    write_file(&root.join("usr/share/data"), &pattern(3, 4096), 0o444);
    chown(&root.join("usr/share/data"), 1234, 5678);
    write_file(&root.join("usr/share/empty"), b"", 0o600);
    std::os::unix::fs::symlink("../etc/hostname", root.join("usr/hostname-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
    mknodat(
        CWD,
        root.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o620),
        0,
    )
    .unwrap();
    mknodat(
        CWD,
        root.join("null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    set_xattr(&root.join("etc/hostname"), "user.color", b"blue");
    set_xattr(
        &root.join("usr/bin/tool"),
        "trusted.sealroot.test",
        b"\x00\x01binary",
    );
    set_xattr(&root.join("usr"), "user.dir", b"yes");

    let mut paths = walk(root);
    paths.reverse();
    for (i, rel) in paths.iter().enumerate() {
        set_mtime(&root.join(rel), 1_600_000_000 + i as i64 * 1000);
    }
    set_mtime(root, 1_700_000_000);
}

/// Every path under `root`, relative, parents before children, in name order.
fn walk(root: &Path) -> Vec<PathBuf> {
    fn go(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
        let mut names: Vec<OsString> = fs::read_dir(root.join(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let child = rel.join(&name);
            out.push(child.clone());
            if fs::symlink_metadata(root.join(&child)).unwrap().is_dir() {
                go(root, &child, out);
            }
        }
    }
    let mut out = Vec::new();
    go(root, Path::new(""), &mut out);
    out
}

fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut names[..]).unwrap();
    let mut out = BTreeMap::new();
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let name = String::from_utf8(name.to_vec()).unwrap();
        let mut value = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(path, name.as_str(), &mut value[..]).unwrap();
        value.truncate(len);
        out.insert(name, value);
    }
    out
}

/// Compares `mounted` with `expected` entry by entry: names, types, modes, owners, sizes,
/// mtimes, device numbers, symlink targets, xattrs and file contents. xattrs in the
/// `trusted.overlay.` namespace are overlayfs's own and never shown through an overlay mount,
/// so they are left out of `expected`'s.
fn assert_same_tree(expected: &Path, mounted: &Path) {
    assert_same_tree_owned(expected, mounted, &|uid, gid| (uid, gid));
}

/// [`assert_same_tree`] where the owner `(uid, gid)` of each entry of `expected` must show in
/// `mounted` as `owner(uid, gid)`.
fn assert_same_tree_owned(expected: &Path, mounted: &Path, owner: &dyn Fn(u32, u32) -> (u32, u32)) {
    let want = walk(expected);
    let got = walk(mounted);
    assert_eq!(want, got, "the names differ");
    for rel in std::iter::once(PathBuf::new()).chain(want) {
        let (e, m) = (expected.join(&rel), mounted.join(&rel));
        let (em, mm) = (
            fs::symlink_metadata(&e).unwrap(),
            fs::symlink_metadata(&m).unwrap(),
        );
        let what = rel.display();
        assert_eq!(em.file_type(), mm.file_type(), "type of {what}");
        assert_eq!(em.mode(), mm.mode(), "mode of {what}");
        assert_eq!(
            owner(em.uid(), em.gid()),
            (mm.uid(), mm.gid()),
            "owner of {what}"
        );
        assert_eq!(
            (em.mtime(), em.mtime_nsec()),
            (mm.mtime(), mm.mtime_nsec()),
            "mtime of {what}"
        );
        assert_eq!(em.rdev(), mm.rdev(), "device number of {what}");
        let mut ex = xattrs(&e);
        ex.retain(|k, _| !k.starts_with("trusted.overlay."));
        assert_eq!(ex, xattrs(&m), "xattrs of {what}");
        if em.is_dir() {
            continue;
        }
        assert_eq!(em.len(), mm.len(), "size of {what}");
        if em.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(&e).unwrap(),
                fs::read_link(&m).unwrap(),
                "target of {what}"
            );
        } else if em.is_file() {
            assert!(
                fs::read(&e).unwrap() == fs::read(&m).unwrap(),
                "content of {what}"
            );
        }
    }
}

/// `mkfs.erofs` of `source` into `image`, keeping each file's own mtime.
fn mkfs_erofs(source: &Path, image: &Path) {
    let status = Command::new("mkfs.erofs")
        .arg("--quiet")
        .arg("--preserve-mtime")
        .arg(image)
        .arg(source)
        .status()
        .expect("running mkfs.erofs (Debian package erofs-utils)");
    assert!(status.success(), "mkfs.erofs {}", source.display());
}

/// How a metacopy stub records its object.
#[derive(Clone, Copy)]
enum Metacopy {
    /// `trusted.overlay.metacopy` empty: no digest.
    Empty,
    /// The `struct ovl_metacopy` form: version 0, length 36, flags 0, algorithm 1 (sha256), and
    /// the object's fs-verity digest.
    Digest,
}

/// Length of the digest form of `trusted.overlay.metacopy`: 4 header bytes and a sha256 digest.
const METACOPY_DIGEST_LEN: u8 = 4 + 32;
/// `FS_VERITY_HASH_ALG_SHA256`.
const FS_VERITY_SHA256: u8 = 1;
/// Files no larger than this stay inline in the image, as composefs keeps small files.
const INLINE_MAX: u64 = 64;

/// Makes a composefs-style staging tree of `source`: every regular file larger than
/// [`INLINE_MAX`] becomes a sparse stub of the same size, mode, owner and times carrying
/// `trusted.overlay.metacopy` and `trusted.overlay.redirect=/xx/yyyy…`, and its content goes to
/// the object store `objects[i % objects.len()]` under its fs-verity digest.
fn stage_composefs(source: &Path, stage: &Path, objects: &[PathBuf], form: Metacopy) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(source)
        .arg(stage)
        .status()
        .unwrap();
    assert!(status.success());
    for obj in objects {
        fs::create_dir_all(obj).unwrap();
    }
    let mut index = 0;
    for rel in walk(stage) {
        let path = stage.join(&rel);
        let meta = fs::symlink_metadata(&path).unwrap();
        if !meta.is_file() || meta.len() <= INLINE_MAX {
            continue;
        }
        let data = fs::read(&path).unwrap();
        let digest = sealroot_verity::sha256_digest(&data);
        let store = &objects[index % objects.len()];
        index += 1;
        let object = store.join(digest.object_path());
        fs::create_dir_all(object.parent().unwrap()).unwrap();
        fs::write(&object, &data).unwrap();
        // Truncate to nothing and back: same inode, same metadata, no data blocks.
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(0).unwrap();
        f.set_len(meta.len()).unwrap();
        drop(f);
        let metacopy = match form {
            Metacopy::Empty => Vec::new(),
            Metacopy::Digest => {
                let mut v = vec![0, METACOPY_DIGEST_LEN, 0, FS_VERITY_SHA256];
                v.extend_from_slice(digest.as_bytes());
                v
            }
        };
        set_xattr(&path, "trusted.overlay.metacopy", &metacopy);
        set_xattr(
            &path,
            "trusted.overlay.redirect",
            format!("/{}", digest.object_path()).as_bytes(),
        );
        // Writing and setting xattrs moved the times; put them back.
        set_mtime(&path, meta.mtime());
    }
}

/// A plain image of a fresh tree, an (empty) object store, and a mount point.
struct Plain {
    _dir: tempfile::TempDir,
    tree: PathBuf,
    image: PathBuf,
    objects: PathBuf,
    mnt: PathBuf,
}

fn plain() -> Plain {
    let dir = scratch();
    let tree = dir.path().join("tree");
    let image = dir.path().join("plain.erofs");
    let objects = dir.path().join("objects");
    let mnt = dir.path().join("mnt");
    build_tree(&tree);
    mkfs_erofs(&tree, &image);
    fs::create_dir(&objects).unwrap();
    fs::create_dir(&mnt).unwrap();
    Plain {
        _dir: dir,
        tree,
        image,
        objects,
        mnt,
    }
}

/// A composefs-style image (metacopy stubs) with its objects spread over `stores` directories.
struct Composefs {
    _dir: tempfile::TempDir,
    tree: PathBuf,
    image: PathBuf,
    objects: Vec<PathBuf>,
    mnt: PathBuf,
}

fn composefs(stores: usize, form: Metacopy) -> Composefs {
    let dir = scratch();
    let tree = dir.path().join("tree");
    let stage = dir.path().join("stage");
    let image = dir.path().join("image.cfs");
    let objects: Vec<PathBuf> = (0..stores)
        .map(|i| dir.path().join(format!("objects{i}")))
        .collect();
    let mnt = dir.path().join("mnt");
    build_tree(&tree);
    stage_composefs(&tree, &stage, &objects, form);
    mkfs_erofs(&stage, &image);
    fs::create_dir(&mnt).unwrap();
    Composefs {
        _dir: dir,
        tree,
        image,
        objects,
        mnt,
    }
}

fn opts(basedirs: &[PathBuf]) -> MountOptions {
    MountOptions {
        basedirs: basedirs.to_vec(),
        ..Default::default()
    }
}

/// The `/proc/self/mountinfo` line of the mount at `path`, if there is one.
fn mountinfo_line(path: &Path) -> Option<String> {
    let path = fs::canonicalize(path).unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(path.to_str().unwrap()))
        .map(str::to_owned)
}

fn mountinfo() -> String {
    fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// [`mount_image_detached`], running `hook` between the digest check and the mount.
fn mount_with_hook(
    image: &Path,
    opts: &MountOptions,
    hook: &mut dyn FnMut(),
) -> Result<std::os::fd::OwnedFd, MountError> {
    let hooks = TestHooks {
        after_check: Some(hook),
        ..Default::default()
    };
    mount_image_detached_for_tests(image, opts, hooks)
}

fn file_digest(path: &Path) -> AnyDigest {
    sealroot_verity::sha256_digest(&fs::read(path).unwrap()).into()
}

/// The sha512 fs-verity digest of `path` (4 KiB blocks, no salt): a sha512 repository's name
/// for it.
fn file_digest_sha512(path: &Path) -> AnyDigest {
    let params = sealroot_verity::Params::composefs(sealroot_verity::HashAlgorithm::Sha512);
    sealroot_verity::digest(&params, &fs::read(path).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Mounting

mount_test! {
    /// A plain mkfs.erofs image, mounted through overlayfs with an empty data layer, shows the
    /// tree it was made from, and the mount is what lcfs-mount.c would make.
    fn plain_image_shows_its_tree() {
        let p = plain();
        mount_image(&p.image, &p.mnt, &opts(std::slice::from_ref(&p.objects))).unwrap();
        let line = mountinfo_line(&p.mnt).expect("a mount at the mount point");
        println!("mountinfo: {line}");
        assert!(line.contains(" - overlay composefs "), "{line}");
        assert!(line.contains("metacopy=on"), "{line}");
        assert!(line.contains("redirect_dir=on"), "{line}");
        assert!(line.contains(&format!("datadir+={}", p.objects.display())), "{line}");
        assert_same_tree(&p.tree, &p.mnt);
        // Without an upper layer nothing can be written.
        let err = fs::write(p.mnt.join("new"), b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::ROFS.raw_os_error()));
    }
}

mount_test! {
    /// Metacopy stubs with empty `trusted.overlay.metacopy` read their content from the object
    /// store their redirect names.
    fn metacopy_stubs_read_from_the_object_store() {
        let c = composefs(1, Metacopy::Empty);
        mount_image(&c.image, &c.mnt, &opts(&c.objects)).unwrap();
        println!("mountinfo: {}", mountinfo_line(&c.mnt).unwrap());
        assert_same_tree(&c.tree, &c.mnt);
    }
}

mount_test! {
    /// The digest form of `trusted.overlay.metacopy` (4 + 32 bytes) reads the same when
    /// overlayfs is not asked to check digests.
    fn metacopy_with_digests_reads_without_verity() {
        let c = composefs(1, Metacopy::Digest);
        mount_image(&c.image, &c.mnt, &opts(&c.objects)).unwrap();
        assert_same_tree(&c.tree, &c.mnt);
    }
}

mount_test! {
    /// Objects spread over three stores are all found: each basedir is a data-only layer.
    fn several_basedirs() {
        let c = composefs(3, Metacopy::Digest);
        for store in &c.objects {
            assert!(fs::read_dir(store).unwrap().next().is_some(), "every store holds objects");
        }
        mount_image(&c.image, &c.mnt, &opts(&c.objects)).unwrap();
        let line = mountinfo_line(&c.mnt).unwrap();
        println!("mountinfo: {line}");
        assert_eq!(line.matches("datadir+=").count(), 3, "{line}");
        assert_same_tree(&c.tree, &c.mnt);
        // With a store missing, its objects are not found.
        fs::create_dir(c.mnt.with_file_name("mnt2")).unwrap();
        let mnt2 = c.mnt.with_file_name("mnt2");
        mount_image(&c.image, &mnt2, &opts(&c.objects[..1])).unwrap();
        let unreadable = walk(&c.tree)
            .into_iter()
            .filter(|rel| fs::metadata(c.tree.join(rel)).is_ok_and(|m| m.is_file()))
            .filter(|rel| fs::read(mnt2.join(rel)).is_err())
            .count();
        assert!(unreadable > 0, "objects in the missing stores cannot be read");
    }
}

mount_test! {
    /// With `verity=require`, which this kernel accepts although it has no fs-verity, a stub
    /// still stats but reading it fails with EIO: overlayfs finds no fs-verity on the object.
    /// Files inline in the image are unaffected.
    fn verity_require_refuses_objects_without_fsverity() {
        for (form, mode) in [
            (Metacopy::Digest, VerityMode::Require),
            (Metacopy::Empty, VerityMode::Require),
            (Metacopy::Digest, VerityMode::Try),
        ] {
            let c = composefs(1, form);
            let o = MountOptions { verity: mode, ..opts(&c.objects) };
            mount_image(&c.image, &c.mnt, &o).unwrap();
            let line = mountinfo_line(&c.mnt).unwrap();
            assert!(line.contains("verity=require"), "{line}");
            assert_eq!(fs::metadata(c.mnt.join("usr/bin/tool")).unwrap().len(), 100_000);
            let err = fs::read(c.mnt.join("usr/bin/tool")).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::IO.raw_os_error()), "{mode:?}");
            assert_eq!(fs::read(c.mnt.join("etc/hostname")).unwrap(), b"sealroot\n");
        }
    }
}

mount_test! {
    /// The detached variant gives a working mount that is attached nowhere and vanishes with
    /// its descriptor.
    fn detached_mount_is_usable_and_leaves_nothing() {
        let c = composefs(1, Metacopy::Empty);
        let before = mountinfo();
        let fd = mount_image_detached(&c.image, &opts(&c.objects)).unwrap();
        assert_eq!(before, mountinfo(), "a detached mount is not in the mount table");
        let file = openat(&fd, "usr/bin/tool", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let mut data = Vec::new();
        fs::File::from(file).read_to_end(&mut data).unwrap();
        assert!(data == pattern(1, 100_000));
        drop(fd);
        assert_eq!(before, mountinfo());
        // Attached later, it is an ordinary mount.
        let fd = mount_image_detached(&c.image, &opts(&c.objects)).unwrap();
        sealroot_mount::attach(&fd, &c.mnt).unwrap();
        drop(fd);
        assert_same_tree(&c.tree, &c.mnt);
    }
}

mount_test! {
    /// An upper and work directory make the mount writable; a change to a stub is copied up.
    fn upper_and_work_dirs_make_it_writable() {
        let c = composefs(1, Metacopy::Empty);
        let upper = c.mnt.with_file_name("upper");
        let work = c.mnt.with_file_name("work");
        fs::create_dir(&upper).unwrap();
        fs::create_dir(&work).unwrap();
        let o = MountOptions {
            upperdir: Some(upper.clone()),
            workdir: Some(work.clone()),
            ..opts(&c.objects)
        };
        mount_image(&c.image, &c.mnt, &o).unwrap();
        println!("mountinfo: {}", mountinfo_line(&c.mnt).unwrap());
        fs::write(c.mnt.join("etc/new"), b"new\n").unwrap();
        assert_eq!(fs::read(upper.join("etc/new")).unwrap(), b"new\n");
        let mut f = fs::OpenOptions::new().append(true).open(c.mnt.join("usr/bin/tool")).unwrap();
        f.write_all(b"more").unwrap();
        drop(f);
        let mut want = pattern(1, 100_000);
        want.extend_from_slice(b"more");
        assert!(fs::read(upper.join("usr/bin/tool")).unwrap() == want);
        // The object itself is untouched.
        let object = c.objects[0].join(sealroot_verity::sha256_digest(&pattern(1, 100_000)).object_path());
        assert!(fs::read(object).unwrap() == pattern(1, 100_000));
    }
}

mount_test! {
    /// `readonly` makes even a mount with an upper layer refuse writes, and says `ro`.
    fn readonly_mount() {
        let c = composefs(1, Metacopy::Empty);
        let upper = c.mnt.with_file_name("upper");
        let work = c.mnt.with_file_name("work");
        fs::create_dir(&upper).unwrap();
        fs::create_dir(&work).unwrap();
        let o = MountOptions {
            upperdir: Some(upper),
            workdir: Some(work),
            readonly: true,
            ..opts(&c.objects)
        };
        mount_image(&c.image, &c.mnt, &o).unwrap();
        let line = mountinfo_line(&c.mnt).unwrap();
        assert!(line.split(' ').nth(5).unwrap().split(',').any(|f| f == "ro"), "{line}");
        let err = fs::write(c.mnt.join("new"), b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::ROFS.raw_os_error()));
    }
}

mount_test! {
    /// The fallback for kernels before 6.15 (erofs attached at a temporary directory for a
    /// moment, layers given as `/proc/self/fd/N` paths) mounts the same tree, writable too, and
    /// leaves neither the temporary mount nor its directory behind.
    fn layers_by_path_fallback() {
        let c = composefs(2, Metacopy::Digest);
        let temp_entries = || -> Vec<OsString> {
            fs::read_dir(std::env::temp_dir())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .filter(|n| n.to_string_lossy().starts_with(".sealroot-erofs."))
                .collect()
        };
        let by_path = || TestHooks {
            force_layer_paths: true,
            ..Default::default()
        };
        let before = mountinfo();
        let temp_before = temp_entries();
        let fd = mount_image_detached_for_tests(&c.image, &opts(&c.objects), by_path()).unwrap();
        assert_eq!(before, mountinfo(), "the temporary erofs mount is gone");
        assert_eq!(temp_before, temp_entries(), "its directory is gone");
        sealroot_mount::attach(&fd, &c.mnt).unwrap();
        let line = mountinfo_line(&c.mnt).unwrap();
        println!("mountinfo: {line}");
        assert!(line.contains("lowerdir+=/proc/self/fd/"), "{line}");
        assert_eq!(line.matches("datadir+=").count(), 2, "{line}");
        assert_same_tree(&c.tree, &c.mnt);

        // Upper and work directories by path too. (The merged root now has the upper
        // directory's attributes, so only the writing is checked.)
        let upper = c.mnt.with_file_name("upper");
        let work = c.mnt.with_file_name("work");
        let mnt2 = c.mnt.with_file_name("mnt2");
        for d in [&upper, &work, &mnt2] {
            fs::create_dir(d).unwrap();
        }
        let o = MountOptions {
            upperdir: Some(upper.clone()),
            workdir: Some(work),
            ..opts(&c.objects)
        };
        let fd = mount_image_detached_for_tests(&c.image, &o, by_path()).unwrap();
        sealroot_mount::attach(&fd, &mnt2).unwrap();
        fs::write(mnt2.join("new"), b"x").unwrap();
        assert_eq!(fs::read(upper.join("new")).unwrap(), b"x");
        assert!(fs::read(mnt2.join("usr/bin/tool")).unwrap() == pattern(1, 100_000));
    }
}

// ---------------------------------------------------------------------------------------------
// The image digest

mount_test! {
    /// A sha512 digest is checked with sha512 (a sha512 repository's images): the right one
    /// mounts, a wrong one, or the image's sha256 digest where sha512 is expected, is refused.
    fn sha512_digests_are_checked_with_sha512() {
        let c = composefs(1, Metacopy::Empty);
        let digest = file_digest_sha512(&c.image);
        let o = MountOptions { expected_digest: Some(digest), ..opts(&c.objects) };
        mount_image(&c.image, &c.mnt, &o).unwrap();
        assert_same_tree(&c.tree, &c.mnt);
        let mut wrong = *digest.as_sha512().unwrap();
        wrong.0[63] ^= 1;
        let o = MountOptions { expected_digest: Some(wrong.into()), ..opts(&c.objects) };
        match mount_with_hook(&c.image, &o, &mut || ()).unwrap_err() {
            MountError::DigestMismatch { expected, actual, .. } => {
                assert_eq!(*expected, AnyDigest::from(wrong));
                assert_eq!(*actual, digest);
            }
            other => panic!("expected a digest mismatch, got {other:?}"),
        }
        let (parsed, _) =
            sealroot_mount::parse_mount_options(&format!("basedir=/x,digest={digest}")).unwrap();
        assert_eq!(parsed.expected_digest, Some(digest));
    }
}

mount_test! {
    /// The right digest mounts; it is the one `fsverity digest` computes too.
    fn right_digest_mounts() {
        let c = composefs(1, Metacopy::Empty);
        let digest = file_digest(&c.image);
        if let Ok(out) = Command::new("fsverity")
            .args(["digest", "--hash-alg=sha256", "--block-size=4096", "--compact"])
            .arg(&c.image)
            .output()
        {
            if out.status.success() {
                assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest.to_hex());
            }
        }
        let o = MountOptions { expected_digest: Some(digest), ..opts(&c.objects) };
        mount_image(&c.image, &c.mnt, &o).unwrap();
        assert_same_tree(&c.tree, &c.mnt);
    }
}

mount_test! {
    /// A wrong digest is refused before anything is mounted, naming the image and both digests.
    fn wrong_digest_is_refused_before_mounting() {
        let c = composefs(1, Metacopy::Empty);
        let actual = file_digest(&c.image);
        let mut wrong = *actual.as_sha256().unwrap();
        wrong.0[31] ^= 1;
        let wrong = AnyDigest::from(wrong);
        let before = mountinfo();
        let o = MountOptions { expected_digest: Some(wrong), ..opts(&c.objects) };
        let mut reached = false;
        let err = mount_with_hook(&c.image, &o, &mut || reached = true).unwrap_err();
        assert!(!reached, "the post-check window was never reached");
        match &err {
            MountError::DigestMismatch { path, expected, actual: got } => {
                assert_eq!(path, &c.image);
                assert_eq!(**expected, wrong);
                assert_eq!(**got, actual);
            }
            other => panic!("expected a digest mismatch, got {other:?}"),
        }
        let text = err.to_string();
        println!("error: {text}");
        assert!(text.contains(&c.image.display().to_string()));
        assert!(text.contains(&wrong.to_hex()) && text.contains(&actual.to_hex()));
        let err = mount_image(&c.image, &c.mnt, &o).unwrap_err();
        assert!(matches!(err, MountError::DigestMismatch { .. }));
        assert_eq!(before, mountinfo(), "nothing was mounted");
        assert!(fs::read_dir(&c.mnt).unwrap().next().is_none());
    }
}

/// Two images of the same size but different content: `evil` is what an attacker would like
/// mounted instead of `good` once `good`'s digest has been checked.
fn good_and_evil(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let good_tree = dir.join("good-tree");
    let evil_tree = dir.join("evil-tree");
    for (tree, word) in [(&good_tree, "good"), (&evil_tree, "evil")] {
        fs::create_dir(tree).unwrap();
        fs::write(tree.join("verdict"), word).unwrap();
        set_mtime(&tree.join("verdict"), 1_600_000_000);
        set_mtime(tree, 1_600_000_000);
    }
    let good = dir.join("images/good.erofs");
    let evil = dir.join("images/evil.erofs");
    fs::create_dir(dir.join("images")).unwrap();
    mkfs_erofs(&good_tree, &good);
    mkfs_erofs(&evil_tree, &evil);
    assert_eq!(
        fs::metadata(&good).unwrap().len(),
        fs::metadata(&evil).unwrap().len()
    );
    let objects = dir.join("objects");
    fs::create_dir(&objects).unwrap();
    (good, evil, objects)
}

mount_test! {
    /// In the window between the digest check and the mount, the image's name is replaced by
    /// another image and the checked file is rewritten in place with the other image's bytes.
    /// Neither reaches the mount: erofs is mounted from a private copy of the checked bytes.
    fn swapping_or_rewriting_after_the_check_changes_nothing() {
        let dir = scratch();
        let (good, evil, objects) = good_and_evil(dir.path());
        let evil_bytes = fs::read(&evil).unwrap();
        let o = MountOptions { expected_digest: Some(file_digest(&good)), ..opts(&[objects]) };
        // A writer holding the good image open from before.
        let writer = fs::OpenOptions::new().write(true).open(&good).unwrap();
        let mut attacked = false;
        let fd = mount_with_hook(&good, &o, &mut || {
            fs::rename(&evil, &good).unwrap();
            writer.write_all_at(&evil_bytes, 0).unwrap();
            writer.sync_all().unwrap();
            attacked = true;
        })
        .unwrap();
        assert!(attacked);
        // The name is now the evil image, and so are the original inode's bytes.
        assert_eq!(fs::read(&good).unwrap(), evil_bytes);
        let verdict = openat(&fd, "verdict", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let mut text = String::new();
        fs::File::from(verdict).read_to_string(&mut text).unwrap();
        assert_eq!(text, "good");
        // Rewriting the original again, after the mount, does not reach it either.
        writer.write_all_at(&evil_bytes, 0).unwrap();
        let verdict = openat(&fd, "verdict", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        text.clear();
        fs::File::from(verdict).read_to_string(&mut text).unwrap();
        assert_eq!(text, "good");
    }
}

/// Bind-mounts `dir` read-only onto `at`, so that no private copy can be made next to an image
/// seen through it.
fn read_only_view(dir: &Path, at: &Path) {
    fs::create_dir(at).unwrap();
    rustix::mount::mount_bind(dir, at).unwrap();
    rustix::mount::mount_remount(
        at,
        rustix::mount::MountFlags::BIND | rustix::mount::MountFlags::RDONLY,
        "",
    )
    .unwrap();
}

mount_test! {
    /// On a read-only mount no private copy can be made, so the image is mounted in place from
    /// the descriptor that was hashed. Pointing the image's path at another image in the window
    /// changes nothing: erofs opens `/proc/self/fd/N`, which leads to the inode that was hashed,
    /// not to whatever the path names by then. (The path is switched through a symlinked
    /// directory so that the checked inode itself is untouched, or the change-time guard would
    /// refuse the mount: renaming over the image changes its ctime.)
    fn read_only_image_is_mounted_in_place_from_the_checked_inode() {
        let dir = scratch();
        let (good, evil, objects) = good_and_evil(dir.path());
        for (name, image) in [("a", &good), ("b", &evil)] {
            fs::create_dir(dir.path().join(name)).unwrap();
            fs::copy(image, dir.path().join(name).join("image.erofs")).unwrap();
        }
        let view = dir.path().join("ro-a");
        read_only_view(&dir.path().join("a"), &view);
        let link = dir.path().join("current");
        std::os::unix::fs::symlink(&view, &link).unwrap();
        let seen = link.join("image.erofs");
        let o = MountOptions { expected_digest: Some(file_digest(&good)), ..opts(&[objects]) };
        let mut swapped = false;
        let fd = mount_with_hook(&seen, &o, &mut || {
            let next = dir.path().join("next");
            std::os::unix::fs::symlink(dir.path().join("b"), &next).unwrap();
            fs::rename(&next, &link).unwrap();
            swapped = true;
        })
        .unwrap();
        assert!(swapped);
        assert_eq!(fs::read(&seen).unwrap(), fs::read(&evil).unwrap(), "the path was switched");
        let verdict = openat(&fd, "verdict", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let mut text = String::new();
        fs::File::from(verdict).read_to_string(&mut text).unwrap();
        assert_eq!(text, "good");
    }
}

mount_test! {
    /// Mounted in place, an image renamed over in the window is refused too: the guard sees the
    /// checked inode's change time move and cannot tell a rename from a rewrite.
    fn read_only_image_renamed_over_in_the_window_is_refused() {
        let dir = scratch();
        let (good, evil, objects) = good_and_evil(dir.path());
        let view = dir.path().join("ro-view");
        read_only_view(&dir.path().join("images"), &view);
        let seen = view.join("good.erofs");
        let o = MountOptions { expected_digest: Some(file_digest(&good)), ..opts(&[objects]) };
        let err = mount_with_hook(&seen, &o, &mut || {
            fs::rename(&evil, &good).unwrap();
        })
        .unwrap_err();
        assert!(matches!(&err, MountError::ImageChanged { path } if path == &seen), "{err:?}");
    }
}

mount_test! {
    /// Mounted in place, an image rewritten in the window is caught: its change time moved.
    fn read_only_image_rewritten_in_the_window_is_refused() {
        let dir = scratch();
        let (good, evil, objects) = good_and_evil(dir.path());
        let view = dir.path().join("ro-view");
        read_only_view(&dir.path().join("images"), &view);
        let seen = view.join("good.erofs");
        let evil_bytes = fs::read(&evil).unwrap();
        let o = MountOptions { expected_digest: Some(file_digest(&good)), ..opts(&[objects]) };
        let before = mountinfo();
        let err = mount_with_hook(&seen, &o, &mut || {
            let f = fs::OpenOptions::new().write(true).open(&good).unwrap();
            f.write_all_at(&evil_bytes, 0).unwrap();
        })
        .unwrap_err();
        println!("error: {err}");
        assert!(matches!(&err, MountError::ImageChanged { path } if path == &seen), "{err:?}");
        assert_eq!(before, mountinfo());
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

mount_test! {
    /// A missing image, a file that is not EROFS, a damaged EROFS image, a missing basedir and a
    /// missing mount point each give an error that names the step and the path.
    fn clear_errors() {
        let c = composefs(1, Metacopy::Empty);
        let dir = c.image.parent().unwrap();
        let before = mountinfo();

        let missing = dir.join("missing.cfs");
        let err = mount_image(&missing, &c.mnt, &opts(&c.objects)).unwrap_err();
        println!("missing image: {err}");
        assert!(matches!(&err, MountError::OpenImage { path, source }
            if path == &missing && source.kind() == ErrorKind::NotFound));

        let text = dir.join("text.cfs");
        fs::write(&text, "not an image\n".repeat(200)).unwrap();
        let err = mount_image(&text, &c.mnt, &opts(&c.objects)).unwrap_err();
        println!("not erofs: {err}");
        assert!(matches!(&err, MountError::NotErofs { path } if path == &text));

        let short = dir.join("short.cfs");
        fs::write(&short, b"tiny").unwrap();
        let err = mount_image(&short, &c.mnt, &opts(&c.objects)).unwrap_err();
        assert!(matches!(&err, MountError::NotErofs { path } if path == &short));

        // The superblock magic is right but the rest of the superblock is garbage.
        let damaged = dir.join("damaged.cfs");
        let mut bytes = fs::read(&c.image).unwrap();
        for b in &mut bytes[1028..1152] {
            *b ^= 0x5a;
        }
        fs::write(&damaged, &bytes).unwrap();
        let err = mount_image(&damaged, &c.mnt, &opts(&c.objects)).unwrap_err();
        println!("damaged: {err}");
        assert!(matches!(&err, MountError::Kernel { step: Step::Create { fstype: "erofs" }, path, .. }
            if path == &damaged), "{err:?}");

        let nobase = dir.join("no-such-objects");
        let err = mount_image(&c.image, &c.mnt, &opts(std::slice::from_ref(&nobase))).unwrap_err();
        println!("missing basedir: {err}");
        assert!(matches!(&err, MountError::OpenDir { path, .. } if path == &nobase));

        let nomnt = dir.join("no-such-mountpoint");
        let err = mount_image(&c.image, &nomnt, &opts(&c.objects)).unwrap_err();
        println!("missing mount point: {err}");
        assert!(matches!(&err, MountError::Kernel { step: Step::MoveMount, path, .. } if path == &nomnt));

        let err = mount_image(&c.image, &c.mnt, &opts(&[])).unwrap_err();
        assert!(matches!(err, MountError::InvalidOptions(_)));
        let o = MountOptions { upperdir: Some(dir.to_owned()), ..opts(&c.objects) };
        assert!(matches!(mount_image(&c.image, &c.mnt, &o).unwrap_err(), MountError::InvalidOptions(_)));

        assert_eq!(before, mountinfo(), "no failure left a mount behind");
    }
}

mount_test! {
    /// Where overlayfs explains a refusal in the filesystem context's log, the error carries the
    /// explanation: here an upper directory on a read-only mount.
    fn kernel_explanations_are_kept() {
        let c = composefs(1, Metacopy::Empty);
        let rw = c.mnt.with_file_name("rw");
        fs::create_dir_all(rw.join("upper")).unwrap();
        fs::create_dir_all(rw.join("work")).unwrap();
        let ro = c.mnt.with_file_name("ro");
        read_only_view(&rw, &ro);
        let o = MountOptions {
            upperdir: Some(ro.join("upper")),
            workdir: Some(ro.join("work")),
            ..opts(&c.objects)
        };
        let before = mountinfo();
        let err = mount_image(&c.image, &c.mnt, &o).unwrap_err();
        println!("error: {err}");
        match &err {
            MountError::Kernel { step: Step::SetFd { fstype: "overlay", key: "upperdir" }, path, kernel_log, .. } => {
                assert_eq!(path, &ro.join("upper"));
                assert!(kernel_log.contains("read-only"), "{err:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("(kernel: e overlay: "), "{err}");
        assert_eq!(before, mountinfo());
    }
}

// ---------------------------------------------------------------------------------------------
// Real composefs images, written by sealroot-format

/// The kernel's 32-bit "new" device number encoding (`new_encode_dev`), as composefs stores it.
fn encode_dev(rdev: u64) -> u32 {
    let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

fn stat_of(path: &Path) -> Stat {
    let m = fs::symlink_metadata(path).unwrap();
    Stat {
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        nlink: 1,
        rdev: encode_dev(m.rdev()),
        size: if m.is_file() { m.len() } else { 0 },
        mtime: Mtime {
            sec: m.mtime(),
            nsec: m.mtime_nsec() as u32,
        },
    }
}

fn xattr_list(path: &Path) -> Vec<Xattr> {
    xattrs(path)
        .into_iter()
        .map(|(name, value)| Xattr {
            name: name.into_bytes(),
            value,
        })
        .collect()
}

/// Reads `source` into a composefs tree as `mkcomposefs --digest-store=STORE` would: files of
/// at most [`INLINE_MAX`] bytes inline, larger ones as objects in `store` named by digest.
fn tree_of(source: &Path, store: &Path) -> Tree {
    fn add_dir(tree: &mut Tree, dir: InodeId, path: &Path, store: &Path) {
        let mut names: Vec<OsString> = fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        let mut entries = Vec::new();
        for name in names {
            let child = path.join(&name);
            let stat = stat_of(&child);
            let meta = fs::symlink_metadata(&child).unwrap();
            let content = if meta.is_dir() {
                Content::Directory(Vec::new())
            } else if meta.is_file() {
                let data = fs::read(&child).unwrap();
                if data.is_empty() {
                    Content::Regular(RegularFile::default())
                } else if data.len() as u64 <= INLINE_MAX {
                    Content::Regular(RegularFile {
                        inline: Some(data),
                        ..Default::default()
                    })
                } else {
                    let digest = sealroot_verity::sha256_digest(&data);
                    let object = store.join(digest.object_path());
                    fs::create_dir_all(object.parent().unwrap()).unwrap();
                    fs::write(&object, &data).unwrap();
                    Content::Regular(RegularFile {
                        inline: None,
                        payload: Some(digest.object_path().into_bytes()),
                        digest: Some(digest.into()),
                    })
                }
            } else if meta.file_type().is_symlink() {
                Content::Symlink(fs::read_link(&child).unwrap().into_os_string().into_vec())
            } else {
                Content::Special
            };
            let mut inode = Inode::new(stat, content);
            inode.xattrs = xattr_list(&child);
            let id = tree.push(inode);
            entries.push(DirEntry {
                name: name.into_vec(),
                inode: id,
                hardlink: false,
            });
            if meta.is_dir() {
                add_dir(tree, id, &child, store);
            }
        }
        tree.inode_mut(dir).content = Content::Directory(entries);
    }
    let mut tree = Tree::new(stat_of(source));
    tree.inode_mut(InodeId::ROOT).xattrs = xattr_list(source);
    fs::create_dir_all(store).unwrap();
    add_dir(&mut tree, InodeId::ROOT, source, store);
    tree
}

/// A real composefs image of `tree` (written by `sealroot_format::erofs::write`), its object
/// store, and a mount point.
struct Written {
    _dir: tempfile::TempDir,
    source: PathBuf,
    image: PathBuf,
    objects: PathBuf,
    mnt: PathBuf,
}

fn written(build: impl FnOnce(&Path)) -> Written {
    let dir = scratch();
    let source = dir.path().join("tree");
    let image = dir.path().join("image.cfs");
    let objects = dir.path().join("objects");
    let mnt = dir.path().join("mnt");
    build(&source);
    let tree = tree_of(&source, &objects);
    let bytes = sealroot_format::erofs::write(&tree, &WriteOptions::default()).unwrap();
    fs::write(&image, bytes).unwrap();
    fs::create_dir(&mnt).unwrap();
    Written {
        _dir: dir,
        source,
        image,
        objects,
        mnt,
    }
}

mount_test! {
    /// An image from sealroot's own writer mounts, with its digest checked, and shows the tree
    /// it was written from: inline files from the image, the others from the object store.
    fn composefs_image_shows_its_tree() {
        let w = written(build_tree);
        let image = fs::read(&w.image).unwrap();
        assert_eq!(&image[..4], &0xd078_629a_u32.to_le_bytes(), "a composefs header");
        let o = MountOptions {
            expected_digest: Some(file_digest(&w.image)),
            ..opts(std::slice::from_ref(&w.objects))
        };
        mount_image(&w.image, &w.mnt, &o).unwrap();
        println!("mountinfo: {}", mountinfo_line(&w.mnt).unwrap());
        assert_same_tree(&w.source, &w.mnt);
    }
}

mount_test! {
    /// The writer records each object's digest, so with `verity=require` (and no fs-verity on
    /// this machine) external files read as EIO while inline ones still read.
    fn composefs_image_with_verity_require() {
        let w = written(build_tree);
        let o = MountOptions {
            verity: VerityMode::Require,
            ..opts(std::slice::from_ref(&w.objects))
        };
        mount_image(&w.image, &w.mnt, &o).unwrap();
        let err = fs::read(w.mnt.join("usr/bin/tool")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::IO.raw_os_error()));
        assert_eq!(fs::read(w.mnt.join("etc/hostname")).unwrap(), b"sealroot\n");
    }
}

/// `system.posix_acl_access` in the kernel's xattr form (`posix_acl_xattr_header` version 2,
/// then tag, permissions, id): owner rw, user 1000 r, group r, mask r, others r.
fn acl_value() -> Vec<u8> {
    const UNDEFINED_ID: u32 = u32::MAX;
    let entries: [(u16, u16, u32); 5] = [
        (0x01, 6, UNDEFINED_ID), // ACL_USER_OBJ
        (0x02, 4, 1000),         // ACL_USER
        (0x04, 4, UNDEFINED_ID), // ACL_GROUP_OBJ
        (0x10, 4, UNDEFINED_ID), // ACL_MASK
        (0x20, 4, UNDEFINED_ID), // ACL_OTHER
    ];
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

fn tree_with_acl(root: &Path) {
    fs::create_dir(root).unwrap();
    write_file(&root.join("shared"), b"for user 1000\n", 0o644);
    set_xattr(
        &root.join("shared"),
        "system.posix_acl_access",
        &acl_value(),
    );
}

const ACL: &str = "system.posix_acl_access";

mount_test! {
    /// A composefs image whose header says it has ACLs shows them.
    fn composefs_image_with_acls_shows_them() {
        let w = written(tree_with_acl);
        mount_image(&w.image, &w.mnt, &opts(std::slice::from_ref(&w.objects))).unwrap();
        assert_eq!(xattrs(&w.mnt.join("shared")).get(ACL), Some(&acl_value()));
        assert_same_tree(&w.source, &w.mnt);
    }
}

mount_test! {
    /// The composefs header decides `noacl`, as in lcfs-mount.c: the same erofs image with a
    /// header whose flags lack `HAS_ACL` hides its ACLs; with the flag, or with no composefs
    /// header at all (plain mkfs.erofs), they are shown.
    fn composefs_header_decides_noacl() {
        let dir = scratch();
        let source = dir.path().join("tree");
        tree_with_acl(&source);
        let plain = dir.path().join("plain.erofs");
        mkfs_erofs(&source, &plain);
        let objects = dir.path().join("objects");
        fs::create_dir(&objects).unwrap();
        let bytes = fs::read(&plain).unwrap();
        assert!(bytes[..1024].iter().all(|&b| b == 0), "mkfs.erofs leaves the first 1 KiB zero");
        for (name, header, shown) in [
            ("plain", None, true),
            ("with-acl-flag", Some(1u32), true),
            ("without-acl-flag", Some(0u32), false),
        ] {
            let image = dir.path().join(format!("{name}.cfs"));
            let mut b = bytes.clone();
            if let Some(flags) = header {
                b[0..4].copy_from_slice(&0xd078_629a_u32.to_le_bytes()); // magic
                b[4..8].copy_from_slice(&1u32.to_le_bytes()); // version
                b[8..12].copy_from_slice(&flags.to_le_bytes());
            }
            fs::write(&image, &b).unwrap();
            let mnt = dir.path().join(format!("mnt-{name}"));
            fs::create_dir(&mnt).unwrap();
            mount_image(&image, &mnt, &opts(std::slice::from_ref(&objects))).unwrap();
            assert_eq!(
                xattrs(&mnt.join("shared")).contains_key(ACL),
                shown,
                "{name}"
            );
            assert_eq!(fs::read(mnt.join("shared")).unwrap(), b"for user 1000\n");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Id-mapped mounts

/// Where the test user namespace maps its uid 0 and gid 0 to outside, and how many ids it maps.
const UID_BASE: u32 = 100_000;
const GID_BASE: u32 = 200_000;
const MAPPED: u32 = 65_536;

/// The id the kernel shows for an owner a mapping does not cover
/// (`/proc/sys/kernel/overflowuid` or `overflowgid`, 65534 unless changed).
fn overflow_id(which: &str) -> u32 {
    fs::read_to_string(format!("/proc/sys/kernel/overflow{which}"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A process alone in a user namespace of its own whose `uid_map` is `0 UID_BASE MAPPED` and
/// `gid_map` `0 GID_BASE MAPPED`, written by us (root) from outside, as `newuidmap` would. The
/// process is `cat` reading our pipe: it ends when this value is dropped, even on a panic.
struct MappedUserNamespace {
    child: std::process::Child,
}

impl MappedUserNamespace {
    /// Starts it, or skips `test` (and gives `None`) if this kernel makes no user namespaces.
    fn start(test: &str) -> Option<Self> {
        let mut child = Command::new("unshare")
            .args(["--user", "--", "sh", "-c", "echo ready && exec cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running unshare (util-linux)");
        // Once the shell speaks, it is in the new namespace and its maps can be written.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line != "ready\n" {
            drop(child.stdin.take());
            let out = child.wait_with_output().unwrap();
            let why = String::from_utf8_lossy(&out.stderr);
            skip_even_in_ci(
                test,
                &format!("no user namespaces here: unshare --user: {why}"),
            );
            return None;
        }
        let pid = child.id();
        fs::write(
            format!("/proc/{pid}/uid_map"),
            format!("0 {UID_BASE} {MAPPED}\n"),
        )
        .unwrap();
        fs::write(
            format!("/proc/{pid}/gid_map"),
            format!("0 {GID_BASE} {MAPPED}\n"),
        )
        .unwrap();
        Some(MappedUserNamespace { child })
    }

    /// Its user namespace file, what `idmap=` names.
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/user", self.child.id()))
    }

    /// The owner an id-mapped mount shows for `(uid, gid)` on disk.
    fn show(uid: u32, gid: u32) -> (u32, u32) {
        let map = |id: u32, base: u32, which| {
            if id < MAPPED {
                base + id
            } else {
                overflow_id(which)
            }
        };
        (map(uid, UID_BASE, "uid"), map(gid, GID_BASE, "gid"))
    }
}

impl Drop for MappedUserNamespace {
    fn drop(&mut self) {
        // End of input ends `cat`.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

mount_test! {
    /// With `idmap`, every owner the image records shows through the user namespace's mapping,
    /// as with `mount.composefs -o idmap=`: 0:0 as 100000:200000, 1234:5678 as
    /// 101234:205678, an owner the mapping does not cover as the overflow id; everything else
    /// (modes, times, xattrs, contents from the object store) is as without it. Both ways of
    /// handing erofs to overlayfs (as a descriptor, and attached for a moment by path).
    fn idmap_shows_owners_through_the_mapping() {
        let Some(ns) = MappedUserNamespace::start("idmap_shows_owners_through_the_mapping") else {
            return;
        };
        let w = written(|root| {
            build_tree(root);
            write_file(&root.join("far"), b"owned from afar\n", 0o644);
            chown(&root.join("far"), MAPPED + 4464, MAPPED + 5);
        });
        let o = MountOptions { idmap: Some(ns.path()), ..opts(std::slice::from_ref(&w.objects)) };
        for by_path in [false, true] {
            let mnt = w.mnt.with_file_name(format!("mnt-idmap-{by_path}"));
            fs::create_dir(&mnt).unwrap();
            let hooks = TestHooks { force_layer_paths: by_path, ..Default::default() };
            let fd = mount_image_detached_for_tests(&w.image, &o, hooks).unwrap();
            sealroot_mount::attach(&fd, &mnt).unwrap();
            assert_same_tree_owned(&w.source, &mnt, &MappedUserNamespace::show);
            let owner = |rel: &str| {
                let m = fs::symlink_metadata(mnt.join(rel)).unwrap();
                (m.uid(), m.gid())
            };
            assert_eq!(owner(""), (UID_BASE, GID_BASE));
            assert_eq!(owner("etc/shadow"), (UID_BASE, GID_BASE + 42));
            assert_eq!(owner("usr/share/data"), (UID_BASE + 1234, GID_BASE + 5678));
            assert_eq!(owner("far"), (overflow_id("uid"), overflow_id("gid")));
            assert_eq!(fs::read(mnt.join("far")).unwrap(), b"owned from afar\n");
            assert!(fs::read(mnt.join("usr/bin/tool")).unwrap() == pattern(1, 100_000));
        }
        // The same image without idmap shows the owners as they are.
        mount_image(&w.image, &w.mnt, &opts(std::slice::from_ref(&w.objects))).unwrap();
        assert_same_tree(&w.source, &w.mnt);
    }
}

mount_test! {
    /// A bad `idmap` is refused before anything is mounted, by an error that names it: a file
    /// that does not exist, files that are no namespace (the image, a directory, a FIFO, which
    /// must not hang the open), a namespace of another kind, and the initial user namespace,
    /// which the kernel would refuse with a bare EPERM.
    fn bad_idmap_is_refused_naming_it() {
        let w = written(build_tree);
        let fifo = w.mnt.with_file_name("fifo");
        mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        let before = mountinfo();
        let refuse = |idmap: &Path| {
            let o = MountOptions {
                idmap: Some(idmap.to_owned()),
                ..opts(std::slice::from_ref(&w.objects))
            };
            let err = mount_image(&w.image, &w.mnt, &o).unwrap_err();
            let text = err.to_string();
            println!("idmap={}: {text}", idmap.display());
            assert!(text.contains(&idmap.display().to_string()), "{text}");
            err
        };
        let missing = w.mnt.with_file_name("no-such-namespace");
        match refuse(&missing) {
            MountError::OpenUserNamespace { path, source } => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        for not_a_namespace in [&w.image, &w.source, &fifo] {
            match refuse(not_a_namespace) {
                MountError::NotUserNamespace { path, kind: None } => {
                    assert_eq!(&path, not_a_namespace)
                }
                other => panic!("{other:?}"),
            }
        }
        let mnt_ns = Path::new("/proc/self/ns/mnt");
        let err = refuse(mnt_ns);
        assert!(err.to_string().contains("a mnt namespace, not a user namespace"), "{err}");
        assert!(
            matches!(err, MountError::NotUserNamespace { kind: Some(NamespaceType::Mount), .. }),
            "{err:?}"
        );
        // The tests run as root in the initial user namespace (mount_test), so this is it.
        let own = Path::new("/proc/self/ns/user");
        match refuse(own) {
            MountError::InitialUserNamespace { path } => assert_eq!(path, own),
            other => panic!("{other:?}"),
        }
        assert_eq!(before, mountinfo(), "nothing was mounted");
    }
}
