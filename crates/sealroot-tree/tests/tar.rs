//! `build_from_tar` against `build_from_dir`: archives made by GNU tar from real directories
//! holding every kind of file give the same tree (and image bytes) as the directory GNU tar
//! extracts from them; hand-made archives cover the header encodings, tar's rules for repeated
//! paths, OCI whiteouts and every kind of bad input.
//!
//! The comparisons with real directories need root (devices, owners, `trusted.*` and
//! `security.*` xattrs) and are skipped with a message otherwise.

use std::fs;
use std::io::{self, Read, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fs::{AtFlags, Timespec, Timestamps, XattrFlags, CWD};
use sealroot_format::erofs::{self, WriteOptions};
use sealroot_format::tree::{Content, FileType, Inode, Mtime, RegularFile, Tree, S_IFCHR};
use sealroot_testkit::skip;
use sealroot_tree::tar::{
    build_from_tar, DirStore, HashOnly, ObjectSink, TarError, TarOptions, Whiteouts,
};
use sealroot_tree::{build_from_dir, BuildOptions, NoProgress};
use sealroot_verity::Sha256Digest;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Bytes that differ from seed to seed and from block to block.
fn pattern(seed: usize, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 12) ^ seed.wrapping_mul(131)) as u8)
        .collect()
}

/// Sets the mtime of `path` (not following symlinks).
fn set_mtime(path: &Path, sec: i64, nsec: u32) {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec.into(),
    };
    let ts = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(CWD, path, &ts, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", path.display()));
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

/// A directory with every kind of file composefs holds, in every way tar encodes them:
/// contents around the inline limit and larger than the threads' batches and chunks, hard
/// links (to inline and external files), names longer than 100 bytes and paths longer than 255,
/// non-UTF-8 names, devices, fifos, long symlink targets, special mode bits, owners beyond
/// what octal ustar fields hold, xattrs of every namespace with binary values and ACLs, and
/// mtimes with nanoseconds, before the epoch and beyond what 11 octal digits hold.
fn make_fixture(root: &Path) {
    let p = |rel: &str| root.join(rel);
    fs::create_dir_all(p("d1/sub")).unwrap();
    fs::create_dir(p("sticky")).unwrap();
    fs::create_dir(p("hl")).unwrap();
    fs::create_dir(p("dev")).unwrap();
    for (i, n) in [
        0,
        1,
        63,
        64,
        65,
        4096,
        200_000,
        300 * 1024 + 5,
        (3 << 20) + 17,
    ]
    .into_iter()
    .enumerate()
    {
        fs::write(p(&format!("d1/f{n}")), pattern(i, n)).unwrap();
    }
    // Identical contents: one object for two files.
    fs::write(p("d1/sub/same-as-f4096"), pattern(5, 4096)).unwrap();
    fs::write(p("d1/setuid"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(p("d1/setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(p("d1/sub"), fs::Permissions::from_mode(0o2750)).unwrap();
    fs::set_permissions(p("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(p("d1/f1"), fs::Permissions::from_mode(0o600)).unwrap();

    // Hard links: three names of an external file, two of an inline one.
    fs::hard_link(p("d1/f4096"), p("hl/one")).unwrap();
    fs::hard_link(p("d1/f4096"), p("hl/two")).unwrap();
    fs::hard_link(p("d1/f63"), p("hl/small")).unwrap();

    std::os::unix::fs::symlink("d1/f65", p("rel")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p("abs")).unwrap();
    std::os::unix::fs::symlink("nowhere", p("dangling")).unwrap();
    std::os::unix::fs::symlink("t".repeat(150), p("long-target")).unwrap();

    run(Command::new("mknod")
        .arg(p("dev/chr"))
        .args(["c", "1", "7"]));
    run(Command::new("mknod")
        .arg(p("dev/blk"))
        .args(["b", "259", "70000"]));
    run(Command::new("mknod")
        .arg(p("dev/zero-zero"))
        .args(["c", "0", "0"]));
    run(Command::new("mkfifo").arg(p("dev/fifo")));

    // A 200-byte name, and a path of more than 255 bytes.
    fs::write(root.join("n".repeat(200)), b"long name").unwrap();
    let deep: PathBuf = ["a".repeat(100), "b".repeat(100), "c".repeat(100)]
        .iter()
        .collect();
    fs::create_dir_all(root.join(&deep)).unwrap();
    fs::write(root.join(&deep).join("f".repeat(90)), pattern(9, 1000)).unwrap();

    // Names that are not UTF-8.
    let latin1 = root.join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    fs::write(&latin1, b"latin-1").unwrap();
    let odd_dir = root.join(std::ffi::OsStr::from_bytes(b"\xff\xfe dir"));
    fs::create_dir(&odd_dir).unwrap();
    fs::write(odd_dir.join(std::ffi::OsStr::from_bytes(b"\x80")), b"x").unwrap();

    // Owners, one beyond the 2097151 an octal ustar field holds.
    chown(&p("d1/f65"), 1234, 5678);
    chown(&p("d1/sub"), 1000, 1000);
    chown(&p("d1/f4096"), 3_000_000, 4_000_000);
    chown(&p("rel"), 42, 43);

    // Extended attributes: binary values, every namespace, ACLs, on directories, symlinks and
    // the root.
    set_xattr(&p("d1/f65"), "user.foo", b"bar");
    set_xattr(&p("d1/f65"), "trusted.bin", b"\0\n\xff=x");
    set_xattr(&p("d1/f200000"), "user.big", &pattern(3, 3000));
    set_xattr(
        &p("d1/setuid"),
        "security.capability",
        // VFS_CAP_REVISION_2 with CAP_NET_BIND_SERVICE permitted.
        b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
    );
    set_xattr(&p("d1"), "user.dir", b"on a directory");
    set_xattr(&p("rel"), "trusted.link", b"on a symlink");
    set_xattr(root, "user.root", b"1");
    run(Command::new("setfacl")
        .args(["-m", "u:1234:rwx,g:99:r"])
        .arg(p("d1/f64")));
    run(Command::new("setfacl")
        .args(["-d", "-m", "u:1234:rx"])
        .arg(p("d1/sub")));

    // Mtimes, set last, children before their directories.
    let counter = AtomicUsize::new(0);
    fn visit(path: &Path, f: &mut dyn FnMut(&Path)) {
        if path.symlink_metadata().unwrap().is_dir() {
            let mut entries: Vec<_> = fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for e in entries {
                visit(&e, f);
            }
        }
        f(path);
    }
    visit(root, &mut |path| {
        let i = counter.fetch_add(1, Ordering::Relaxed) as i64;
        set_mtime(
            path,
            1_600_000_000 + i * 1000,
            (i * 123_456_789 % 1_000_000_000) as u32,
        );
    });
    set_mtime(&p("d1/f0"), -2, 500_000_000);
    set_mtime(&p("d1/f1"), 1 << 34, 7);
}

/// `tar -c` of the whole of `dir`, with `args` before the rest.
fn tar_create(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("tar")
        .args(args)
        .args(["--numeric-owner", "-C"])
        .arg(dir)
        .args(["-cf", "-", "."])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "tar -c failed");
    out.stdout
}

/// `tar -x` of `archive` into a new directory.
fn tar_extract(archive: &[u8], into: &Path) {
    fs::create_dir(into).unwrap();
    let mut child = Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "--same-owner",
            "--warning=no-timestamp",
            "-p",
            "-C",
        ])
        .arg(into)
        .args(["-xf", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(archive).unwrap();
    assert!(child.wait().unwrap().success(), "tar -x failed");
}

/// The tree with every inode's xattrs sorted (the filesystem lists them in its own order;
/// the image writer sorts them).
fn normalized(mut tree: Tree) -> Tree {
    for inode in &mut tree.inodes {
        inode.xattrs.sort();
    }
    tree
}

fn image(tree: &Tree) -> Vec<u8> {
    erofs::write(tree, &WriteOptions::default()).unwrap()
}

fn from_tar(archive: &[u8], opts: &TarOptions) -> Result<Tree, TarError> {
    build_from_tar(archive, opts, &HashOnly::default())
}

/// Asserts that `archive` gives, with `opts`, the tree `build_from_dir` gives for `dir` with
/// the corresponding options, and the same image bytes.
fn assert_same_as_dir(archive: &[u8], dir: &Path, opts: &BuildOptions, tar_opts: &TarOptions) {
    let want = normalized(build_from_dir(dir, opts, &NoProgress).unwrap());
    let got = normalized(from_tar(archive, tar_opts).unwrap());
    if got != want {
        let mut paths = Vec::new();
        want.walk(|p, _| paths.push(p.to_vec()));
        for p in paths {
            let (w, g) = (want.resolve(&p), got.resolve(&p));
            let w = w.map(|i| want.inode(i));
            let g = g.map(|i| got.inode(i));
            assert_eq!(g, w, "{}", String::from_utf8_lossy(&p));
        }
        assert_eq!(got, want);
    }
    assert_eq!(image(&got), image(&want), "image bytes");
}

/// The fixture, archived as `args` say, extracted again; compared with every thread count.
fn compare_with_gnu_tar(args: &[&str]) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    make_fixture(&src);
    let archive = tar_create(&src, args);
    let out = tmp.path().join("out");
    tar_extract(&archive, &out);
    for threads in [1, 2, 0] {
        let tar_opts = TarOptions {
            threads,
            ..TarOptions::default()
        };
        assert_same_as_dir(&archive, &out, &BuildOptions::default(), &tar_opts);
    }
    archive
}

#[test]
fn pax_archive_gives_the_tree_of_its_extraction() {
    if !is_root() {
        return skip(
            "pax_archive_gives_the_tree_of_its_extraction",
            "needs root for devices, owners and trusted xattrs",
        );
    }
    let archive = compare_with_gnu_tar(&["--format=posix", "--xattrs", "--xattrs-include=*"]);
    // It really is the pax encoding: xattrs, sub-second and big values in records.
    let has = |s: &[u8]| archive.windows(s.len()).any(|w| w == s);
    assert!(has(b"SCHILY.xattr.system.posix_acl_access="));
    assert!(has(b"SCHILY.xattr.security.capability="));
    assert!(has(b" uid=3000000\n"));
    assert!(has(b" mtime=-1.5\n"));
    assert!(has(b" linkpath="));
}

#[test]
fn gnu_archive_gives_the_tree_of_its_extraction() {
    if !is_root() {
        return skip(
            "gnu_archive_gives_the_tree_of_its_extraction",
            "needs root for devices and owners",
        );
    }
    let archive = compare_with_gnu_tar(&["--format=gnu"]);
    // GNU long names and link targets, base-256 numbers.
    let has = |s: &[u8]| archive.windows(s.len()).any(|w| w == s);
    assert!(has(b"././@LongLink"));
    let typeflags: Vec<u8> = archive
        .chunks(512)
        .filter(|b| b[257..263] == *b"ustar ")
        .map(|b| b[156])
        .collect();
    assert!(typeflags.contains(&b'L') && typeflags.contains(&b'K'));
    assert!(archive
        .chunks(512)
        .any(|b| b[257..263] == *b"ustar " && b[108] & 0x80 != 0));
}

#[test]
fn ustar_archive_gives_the_tree_of_its_extraction() {
    if !is_root() {
        return skip(
            "ustar_archive_gives_the_tree_of_its_extraction",
            "needs root for devices and owners",
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    // ustar cannot hold the fixture's long names, big owner or far mtimes: a plainer tree,
    // with paths split over prefix and name.
    let deep = src.join("p".repeat(90)).join("q".repeat(60));
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("r".repeat(80)), pattern(1, 70_000)).unwrap();
    fs::write(src.join("small"), b"small").unwrap();
    run(Command::new("mknod")
        .arg(src.join("chr"))
        .args(["c", "4", "64"]));
    let archive = tar_create(&src, &["--format=ustar"]);
    assert!(archive
        .chunks(512)
        .any(|b| b[257..263] == *b"ustar\0" && b[345] != 0));
    let out = tmp.path().join("out");
    tar_extract(&archive, &out);
    assert_same_as_dir(
        &archive,
        &out,
        &BuildOptions::default(),
        &TarOptions::default(),
    );
}

#[test]
fn options_give_what_they_give_for_a_directory() {
    if !is_root() {
        return skip(
            "options_give_what_they_give_for_a_directory",
            "needs root for devices, owners and trusted xattrs",
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    make_fixture(&src);
    let archive = tar_create(&src, &["--format=posix", "--xattrs", "--xattrs-include=*"]);
    let out = tmp.path().join("out");
    tar_extract(&archive, &out);
    let variants = [
        BuildOptions {
            use_epoch: true,
            ..BuildOptions::default()
        },
        BuildOptions {
            skip_devices: true,
            ..BuildOptions::default()
        },
        BuildOptions {
            skip_xattrs: true,
            ..BuildOptions::default()
        },
        BuildOptions {
            user_xattrs: true,
            ..BuildOptions::default()
        },
        BuildOptions {
            no_inline: true,
            ..BuildOptions::default()
        },
        BuildOptions {
            hardlinks: true,
            ..BuildOptions::default()
        },
        BuildOptions {
            hardlinks: true,
            threads: 1,
            ..BuildOptions::default()
        },
    ];
    for opts in variants {
        assert_same_as_dir(
            &archive,
            &out,
            &opts,
            &TarOptions::from_build_options(&opts),
        );
    }
    // Kept hard links really are shared.
    let opts = TarOptions {
        hardlinks: true,
        ..TarOptions::default()
    };
    let tree = from_tar(&archive, &opts).unwrap();
    let one = tree.resolve(b"/hl/one").unwrap();
    assert_eq!(tree.resolve(b"/d1/f4096"), Some(one));
    assert_eq!(tree.resolve(b"/hl/two"), Some(one));
    assert_eq!(tree.inode(one).stat.nlink, 3);
}

#[test]
fn gzip_and_zstd_give_the_same_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path();
    fs::write(src.join("big"), pattern(1, 1 << 20)).unwrap();
    fs::write(src.join("small"), b"hello").unwrap();
    fs::create_dir(src.join("dir")).unwrap();
    let plain = tar_create(src, &["--format=posix"]);
    let want = from_tar(&plain, &TarOptions::default()).unwrap();

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(from_tar(&gz, &TarOptions::default()).unwrap(), want);

    // Two gzip members, as pigz or `cat a.gz b.gz` make.
    let (a, b) = plain.split_at(plain.len() / 3);
    let mut multi = Vec::new();
    for part in [a, b] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(part).unwrap();
        multi.extend(gz.finish().unwrap());
    }
    assert_eq!(from_tar(&multi, &TarOptions::default()).unwrap(), want);

    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    assert_eq!(from_tar(&zst, &TarOptions::default()).unwrap(), want);
    // Several zstd frames.
    let mut frames = zstd::encode_all(a, 1).unwrap();
    frames.extend(zstd::encode_all(b, 19).unwrap());
    assert_eq!(from_tar(&frames, &TarOptions::default()).unwrap(), want);

    // And from the command-line tools.
    for flag in ["--gzip", "--zstd"] {
        let archive = tar_create(src, &["--format=posix", flag]);
        assert_eq!(from_tar(&archive, &TarOptions::default()).unwrap(), want);
    }

    // A corrupt compressed stream is an error naming where the tar stream stood.
    let mut bad = gz.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    let e = from_tar(&bad, &TarOptions::default()).unwrap_err();
    assert!(
        matches!(e, TarError::Read { .. } | TarError::BadChecksum { .. }),
        "{e:?}"
    );
    let mut bad = zst.clone();
    bad.truncate(zst.len() - 7);
    let e = from_tar(&bad, &TarOptions::default()).unwrap_err();
    assert!(
        matches!(e, TarError::Truncated { .. } | TarError::Read { .. }),
        "{e:?}"
    );
}

/// Everything a directory store holds, as `xx/rest` names.
fn store_listing(store: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for sub in fs::read_dir(store).unwrap() {
        let sub = sub.unwrap();
        assert!(sub.file_type().unwrap().is_dir(), "{:?}", sub.path());
        for e in fs::read_dir(sub.path()).unwrap() {
            let e = e.unwrap();
            names.push(format!(
                "{}/{}",
                sub.file_name().to_string_lossy(),
                e.file_name().to_string_lossy()
            ));
        }
    }
    names.sort();
    names
}

#[test]
fn dir_store_holds_what_mkcomposefs_digest_store_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    for (i, n) in [3, 64, 65, 5000, 5000, 400_000, (2 << 20) + 1]
        .into_iter()
        .enumerate()
    {
        // Two files of 5000 bytes with the same content: one object.
        fs::write(src.join(format!("f{i}")), pattern(n, n)).unwrap();
    }
    let archive = tar_create(&src, &["--format=posix"]);

    let dir_store = tmp.path().join("from-dir");
    let want = build_from_dir(
        &src,
        &BuildOptions {
            digest_store: Some(dir_store.clone()),
            ..BuildOptions::default()
        },
        &NoProgress,
    )
    .unwrap();
    for threads in [1, 3] {
        let tar_store = tmp.path().join(format!("from-tar-{threads}"));
        let sink = DirStore::open(&tar_store).unwrap();
        let opts = TarOptions {
            threads,
            ..TarOptions::default()
        };
        let got = build_from_tar(&archive[..], &opts, &sink).unwrap();
        assert_eq!(normalized(got), normalized(want.clone()));
        assert_eq!(store_listing(&tar_store), store_listing(&dir_store));
        assert_eq!(store_listing(&tar_store).len(), 4);
        for name in store_listing(&tar_store) {
            let object = fs::read(tar_store.join(&name)).unwrap();
            assert_eq!(
                sealroot_verity::sha256_digest(&object).object_path(),
                name,
                "object content"
            );
            let mode = fs::metadata(tar_store.join(&name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644);
        }
        // Again into the same store: nothing new, nothing left over.
        build_from_tar(&archive[..], &opts, &sink).unwrap();
        assert_eq!(store_listing(&tar_store), store_listing(&dir_store));
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-made archives.

/// The fields of one header; `Default` is a regular file `0644 0:0`, mtime 1000.
#[derive(Clone)]
struct H {
    name: Vec<u8>,
    prefix: Vec<u8>,
    typeflag: u8,
    mode: u64,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
    link: Vec<u8>,
    major: u64,
    minor: u64,
    gnu: bool,
}

impl Default for H {
    fn default() -> Self {
        H {
            name: Vec::new(),
            prefix: Vec::new(),
            typeflag: b'0',
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 1000,
            link: Vec::new(),
            major: 0,
            minor: 0,
            gnu: false,
        }
    }
}

/// A number in a field of `len` bytes: octal if it fits, else GNU base-256.
fn number(field: &mut [u8], value: i128) {
    let len = field.len();
    let octal = format!("{value:0width$o}", width = len - 1);
    if value >= 0 && octal.len() < len {
        field[..len - 1].copy_from_slice(octal.as_bytes());
        field[len - 1] = 0;
        return;
    }
    let bytes = value.to_be_bytes();
    field.copy_from_slice(&bytes[16 - len..]);
    if value >= 0 {
        field[0] |= 0x80;
    }
}

fn header(h: &H) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[..h.name.len()].copy_from_slice(&h.name);
    number(&mut b[100..108], h.mode.into());
    number(&mut b[108..116], h.uid.into());
    number(&mut b[116..124], h.gid.into());
    number(&mut b[124..136], h.size.into());
    number(&mut b[136..148], h.mtime.into());
    b[156] = h.typeflag;
    b[157..157 + h.link.len()].copy_from_slice(&h.link);
    if h.gnu {
        b[257..265].copy_from_slice(b"ustar  \0");
    } else {
        b[257..265].copy_from_slice(b"ustar\x0000");
        b[345..345 + h.prefix.len()].copy_from_slice(&h.prefix);
    }
    number(&mut b[329..337], h.major.into());
    number(&mut b[337..345], h.minor.into());
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b
}

/// One pax record.
fn record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len += 1;
    }
    let mut r = format!("{len} ").into_bytes();
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// An archive being made.
#[derive(Default, Clone)]
struct Tar(Vec<u8>);

impl Tar {
    fn raw(&mut self, h: &H, content: &[u8]) -> &mut Self {
        self.0.extend_from_slice(&header(h));
        self.0.extend_from_slice(content);
        let pad = (512 - content.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }

    fn file(&mut self, path: &str, content: &[u8]) -> &mut Self {
        self.raw(
            &H {
                name: path.into(),
                size: content.len() as u64,
                ..H::default()
            },
            content,
        )
    }

    fn entry(&mut self, path: &str, typeflag: u8, link: &str) -> &mut Self {
        self.raw(
            &H {
                name: path.into(),
                typeflag,
                mode: if typeflag == b'5' { 0o755 } else { 0o644 },
                link: link.into(),
                ..H::default()
            },
            b"",
        )
    }

    fn dir(&mut self, path: &str) -> &mut Self {
        self.entry(path, b'5', "")
    }

    fn pax(&mut self, typeflag: u8, records: &[(&[u8], &[u8])]) -> &mut Self {
        let data: Vec<u8> = records.iter().flat_map(|(k, v)| record(k, v)).collect();
        self.raw(
            &H {
                name: b"./PaxHeaders/x".to_vec(),
                typeflag,
                size: data.len() as u64,
                ..H::default()
            },
            &data,
        )
    }

    fn gnu_long(&mut self, typeflag: u8, value: &[u8]) -> &mut Self {
        let mut data = value.to_vec();
        data.push(0);
        self.raw(
            &H {
                name: b"././@LongLink".to_vec(),
                typeflag,
                size: data.len() as u64,
                gnu: true,
                ..H::default()
            },
            &data,
        )
    }

    fn end(&mut self) -> Vec<u8> {
        let mut out = self.0.clone();
        out.extend([0u8; 1024]);
        out
    }
}

fn get<'t>(tree: &'t Tree, path: &str) -> &'t Inode {
    let id = tree
        .resolve(path.as_bytes())
        .unwrap_or_else(|| panic!("{path} not in tree"));
    tree.inode(id)
}

fn names(tree: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    tree.walk(|p, _| out.push(String::from_utf8_lossy(p).into_owned()));
    out
}

fn inline(inode: &Inode) -> &[u8] {
    match &inode.content {
        Content::Regular(RegularFile {
            inline: Some(data), ..
        }) => data,
        c => panic!("not an inline file: {c:?}"),
    }
}

#[test]
fn header_encodings() {
    // A size in base-256 (as for files of 8 GiB and more), ids and a negative mtime too.
    let content = pattern(1, 100);
    let archive = Tar::default()
        .raw(
            &H {
                name: b"b256".to_vec(),
                size: 100,
                uid: 1 << 40,
                mtime: -86400,
                ..H::default()
            },
            b"",
        )
        .0
        .clone();
    // The header above has uid 2^40, which no tree can hold: refused by name.
    let mut a = archive.clone();
    a.extend(&content);
    a.extend([0u8; 412 + 1024]);
    let e = from_tar(&a, &TarOptions::default()).unwrap_err();
    assert!(matches!(&e, TarError::BadHeader { offset: 0, .. }), "{e:?}");
    assert!(e.to_string().contains("uid field is out of range"), "{e}");

    let mut h = H {
        name: b"b256".to_vec(),
        size: 100,
        uid: 3_000_000,
        mtime: -86400,
        ..H::default()
    };
    let mut block = header(&h);
    // Force base-256 for the size even though octal would do.
    block[124..136].fill(0);
    block[124] = 0x80;
    block[135] = 100;
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&x| u32::from(x)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut a = block.to_vec();
    a.extend(&content);
    a.extend([0u8; 412 + 1024]);
    let tree = from_tar(&a, &TarOptions::default()).unwrap();
    let f = get(&tree, "/b256");
    assert_eq!(f.stat.size, 100);
    assert_eq!(f.stat.uid, 3_000_000);
    assert_eq!(
        f.stat.mtime,
        Mtime {
            sec: -86400,
            nsec: 0
        }
    );
    assert_eq!(
        f.content,
        Content::Regular(RegularFile {
            inline: None,
            payload: Some(
                sealroot_verity::sha256_digest(&content)
                    .object_path()
                    .into_bytes()
            ),
            digest: Some(sealroot_verity::sha256_digest(&content).into()),
        })
    );

    // A 9 GiB file, as its header says, with only 1 KiB after it: the input ends inside it,
    // and nothing is allocated from the size.
    h.size = 9 << 30;
    h.name = b"huge".to_vec();
    let mut a = header(&h).to_vec();
    assert_eq!(a[124], 0x80, "base-256 size");
    a.extend([7u8; 1024]);
    let e = from_tar(&a, &TarOptions::default()).unwrap_err();
    match &e {
        TarError::Truncated { offset, path } => {
            assert_eq!(*offset, 512 + 1024);
            assert_eq!(path.as_deref(), Some(Path::new("huge")));
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(
        e.to_string(),
        "archive truncated at byte 1536 (in entry huge)"
    );

    // The ustar prefix, GNU long names, pax paths, in increasing precedence.
    let archive = Tar::default()
        .raw(
            &H {
                name: b"name".to_vec(),
                prefix: b"pre/fix".to_vec(),
                ..H::default()
            },
            b"",
        )
        .gnu_long(b'L', b"gnu/long")
        .file("ignored", b"1")
        .gnu_long(b'L', b"ignored-too")
        .pax(b'x', &[(b"path", b"pax/path")])
        .file("ignored-also", b"2")
        .gnu_long(b'K', b"long/target")
        .entry("sym", b'2', "short")
        .pax(b'x', &[(b"linkpath", b"pax/target")])
        .entry("sym2", b'2', "short")
        .end();
    let tree = from_tar(&archive, &TarOptions::default()).unwrap();
    assert_eq!(
        names(&tree),
        [
            "/gnu",
            "/gnu/long",
            "/pax",
            "/pax/path",
            "/pre",
            "/pre/fix",
            "/pre/fix/name",
            "/sym",
            "/sym2"
        ]
    );
    assert_eq!(
        get(&tree, "/sym").content,
        Content::Symlink(b"long/target".to_vec())
    );
    assert_eq!(
        get(&tree, "/sym2").content,
        Content::Symlink(b"pax/target".to_vec())
    );
    assert_eq!(get(&tree, "/sym2").stat.size, 10);
    assert_eq!(inline(get(&tree, "/pax/path")), b"2");

    // Old V7 headers: no magic, NUL type, a trailing slash for directories.
    let mut v7 = Vec::new();
    for (name, typeflag) in [(&b"olddir/"[..], 0u8), (b"olddir/file", 0)] {
        let mut b = header(&H {
            name: name.to_vec(),
            typeflag,
            size: 0,
            ..H::default()
        });
        b[257..265].fill(0);
        b[148..156].fill(b' ');
        let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        v7.extend(b);
    }
    v7.extend([0u8; 1024]);
    let tree = from_tar(&v7, &TarOptions::default()).unwrap();
    assert_eq!(
        get(&tree, "/olddir").stat.file_type(),
        Some(FileType::Directory)
    );
    assert_eq!(
        get(&tree, "/olddir/file").stat.file_type(),
        Some(FileType::Regular)
    );
}

#[test]
fn pax_records() {
    let archive = Tar::default()
        .pax(
            b'g',
            &[(b"uid", b"77"), (b"SCHILY.xattr.user.global", b"g")],
        )
        .pax(
            b'x',
            &[
                (b"mtime", b"1700000000.5"),
                (b"gid", b"4294967295"),
                (b"SCHILY.xattr.user.global", b"overridden"),
                (b"LIBARCHIVE.xattr.user.bsd%3Dtar", b"AAEC"),
                (b"RHT.security.selinux", b"system_u:object_r:etc_t:s0"),
                (b"comment", b"ignored"),
                (b"size", b"3"),
            ],
        )
        .raw(
            &H {
                name: b"f".to_vec(),
                size: 999,
                ..H::default()
            },
            b"abc",
        )
        .file("g", b"")
        .end();
    let tree = from_tar(&archive, &TarOptions::default()).unwrap();
    let f = get(&tree, "/f");
    assert_eq!(inline(f), b"abc");
    assert_eq!(
        f.stat.mtime,
        Mtime {
            sec: 1_700_000_000,
            nsec: 500_000_000
        }
    );
    assert_eq!((f.stat.uid, f.stat.gid), (77, u32::MAX));
    assert_eq!(f.xattr(b"user.global"), Some(&b"overridden"[..]));
    assert_eq!(f.xattr(b"user.bsd=tar"), Some(&b"\x00\x01\x02"[..]));
    assert_eq!(
        f.xattr(b"security.selinux"),
        Some(&b"system_u:object_r:etc_t:s0"[..])
    );
    // The global header holds for later entries too.
    let g = get(&tree, "/g");
    assert_eq!(g.stat.uid, 77);
    assert_eq!(g.xattr(b"user.global"), Some(&b"g"[..]));
    assert_eq!(g.stat.mtime, Mtime { sec: 1000, nsec: 0 });
}

#[test]
fn later_entries_replace_earlier_ones() {
    let archive = Tar::default()
        .file("f", b"first")
        .file("f", b"second")
        .dir("d")
        .file("d", b"a file now")
        .file("e", b"a file")
        .dir("e")
        .file("e/x", b"")
        .dir("m")
        .file("m/kept", b"kept")
        .raw(
            &H {
                name: b"m".to_vec(),
                typeflag: b'5',
                mode: 0o700,
                uid: 5,
                mtime: 2000,
                ..H::default()
            },
            b"",
        )
        .file("orig", b"original content")
        .entry("link", b'1', "orig")
        .file("orig", b"replaced")
        .end();
    let tree = from_tar(&archive, &TarOptions::default()).unwrap();
    assert_eq!(
        names(&tree),
        ["/d", "/e", "/e/x", "/f", "/link", "/m", "/m/kept", "/orig"]
    );
    assert_eq!(inline(get(&tree, "/f")), b"second");
    assert_eq!(inline(get(&tree, "/d")), b"a file now");
    let m = get(&tree, "/m");
    assert_eq!(
        (m.stat.mode, m.stat.uid, m.stat.mtime.sec),
        (0o40700, 5, 2000)
    );
    assert_eq!(inline(get(&tree, "/link")), b"original content");
    assert_eq!(inline(get(&tree, "/orig")), b"replaced");
    // The arena holds only what the tree reaches, numbered depth-first.
    assert_eq!(tree.inodes.len(), 9);
    image(&tree);
}

#[test]
fn missing_parents_and_root() {
    let archive = Tar::default().file("a/b/c", b"deep").end();
    let tree = from_tar(&archive, &TarOptions::default()).unwrap();
    for dir in ["/", "/a", "/a/b"] {
        let d = get(&tree, dir);
        assert_eq!(d.stat.mode, 0o40755, "{dir}");
        assert_eq!(
            (d.stat.uid, d.stat.gid, d.stat.mtime),
            (0, 0, Mtime::default())
        );
        assert!(d.xattrs.is_empty());
    }
    // A root entry sets the root's attributes, wherever it comes.
    let archive = Tar::default()
        .file("x", b"")
        .raw(
            &H {
                name: b"./".to_vec(),
                typeflag: b'5',
                mode: 0o750,
                gid: 9,
                ..H::default()
            },
            b"",
        )
        .end();
    let tree = from_tar(&archive, &TarOptions::default()).unwrap();
    assert_eq!(tree.root().stat.mode, 0o40750);
    assert_eq!(tree.root().stat.gid, 9);
    assert_eq!(names(&tree), ["/x"]);
    // An absolute path, when asked to take it as relative.
    let archive = Tar::default().file("/etc/x", b"abs").end();
    let opts = TarOptions {
        strip_leading_slash: true,
        ..TarOptions::default()
    };
    let tree = from_tar(&archive, &opts).unwrap();
    assert_eq!(inline(get(&tree, "/etc/x")), b"abs");
}

/// A layer with whiteouts of a file, a directory and something else of a lower layer (none
/// of them in this archive), and an opaque directory whose own entry comes after the marker.
fn whiteout_layer() -> Vec<u8> {
    Tar::default()
        .dir("etc")
        .file("etc/.wh.hosts", b"")
        .file("etc/passwd", b"passwd")
        .dir("usr")
        .file("usr/.wh.local", b"")
        .file(".wh.nothing", b"")
        .file("opaque/.wh..wh..opq", b"")
        .dir("opaque")
        .file("opaque/new", b"new")
        .end()
}

/// Read alone, a layer lies over nothing: its whiteouts remove nothing and leave no trace.
#[test]
fn whiteouts_applied_as_composefs_rs_applies_them() {
    let tree = from_tar(&whiteout_layer(), &TarOptions::default()).unwrap();
    assert_eq!(
        names(&tree),
        ["/etc", "/etc/passwd", "/opaque", "/opaque/new", "/usr"]
    );
}

#[test]
fn whiteouts_kept_in_overlay_form() {
    let opts = TarOptions {
        whiteouts: Whiteouts::Overlay,
        ..TarOptions::default()
    };
    let tree = from_tar(&whiteout_layer(), &opts).unwrap();
    assert_eq!(
        names(&tree),
        [
            "/etc",
            "/etc/hosts",
            "/etc/passwd",
            "/nothing",
            "/opaque",
            "/opaque/new",
            "/usr",
            "/usr/local"
        ]
    );
    for w in ["/etc/hosts", "/nothing", "/usr/local"] {
        let inode = get(&tree, w);
        assert_eq!(inode.stat.mode, S_IFCHR, "{w}");
        assert_eq!(inode.stat.rdev, 0, "{w}");
        assert_eq!(inode.content, Content::Special);
    }
    assert_eq!(
        get(&tree, "/opaque").xattr(b"trusted.overlay.opaque"),
        Some(&b"y"[..])
    );
    image(&tree);

    // The same as a directory holding that form, as containers-storage extracts a layer.
    if !is_root() {
        return skip(
            "whiteouts_kept_in_overlay_form",
            "needs root for whiteout devices and trusted xattrs",
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for dir in ["etc", "usr", "opaque"] {
        fs::create_dir(d.join(dir)).unwrap();
    }
    for (f, c) in [("etc/passwd", "passwd"), ("opaque/new", "new")] {
        fs::write(d.join(f), c).unwrap();
    }
    for w in ["etc/hosts", "usr/local", "nothing"] {
        run(Command::new("mknod").arg(d.join(w)).args(["c", "0", "0"]));
        fs::set_permissions(d.join(w), fs::Permissions::from_mode(0o0)).unwrap();
    }
    set_xattr(&d.join("opaque"), "trusted.overlay.opaque", b"y");
    let mut all = Vec::new();
    fn visit(path: &Path, out: &mut Vec<PathBuf>) {
        if path.symlink_metadata().unwrap().is_dir() {
            for e in fs::read_dir(path).unwrap() {
                visit(&e.unwrap().path(), out);
            }
        }
        out.push(path.to_owned());
    }
    visit(d, &mut all);
    for p in all {
        set_mtime(&p, 1000, 0);
        chown(&p, 0, 0);
    }
    fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    set_mtime(d, 0, 0);
    for dir in ["etc", "usr", "opaque"] {
        fs::set_permissions(d.join(dir), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let want = normalized(build_from_dir(d, &BuildOptions::default(), &NoProgress).unwrap());
    assert_eq!(normalized(tree.clone()), want);
    assert_eq!(image(&tree), image(&want));
}

#[test]
fn an_opaque_marker_before_its_directory_entry_stays() {
    let archive = Tar::default()
        .file("o/.wh..wh..opq", b"")
        .dir("o")
        .file("o/.wh..wh..opq", b"")
        .end();
    let opts = TarOptions {
        whiteouts: Whiteouts::Overlay,
        ..TarOptions::default()
    };
    let tree = from_tar(&archive, &opts).unwrap();
    let o = get(&tree, "/o");
    assert_eq!(o.xattrs.len(), 1);
    assert_eq!(o.xattr(b"trusted.overlay.opaque"), Some(&b"y"[..]));
    assert_eq!(
        o.stat.mtime.sec, 1000,
        "the directory entry's own attributes"
    );
    // Not with user_xattrs: the marker is an xattr like any other.
    let opts = TarOptions {
        user_xattrs: true,
        ..opts
    };
    assert!(get(&from_tar(&archive, &opts).unwrap(), "/o")
        .xattrs
        .is_empty());
}

#[test]
fn whiteouts_kept_as_plain_names() {
    let opts = TarOptions {
        whiteouts: Whiteouts::Keep,
        ..TarOptions::default()
    };
    let tree = from_tar(&whiteout_layer(), &opts).unwrap();
    for name in ["/opaque/.wh..wh..opq", "/etc/.wh.hosts", "/usr/.wh.local"] {
        assert!(names(&tree).contains(&name.to_owned()), "{name}");
    }
}

/// A file, symlink, hard link, fifo or device never silently takes the place of a directory
/// that has entries (`tar -x` fails there too); an empty directory is replaced, as `tar -x`
/// and the OCI layer rules replace it, and a directory entry again keeps the entries.
#[test]
fn a_non_directory_does_not_replace_a_directory_with_entries() {
    // `d` at 0, `d/x` at 512 (content at 1024), `f` at 1536, the entry `d` again at 2560.
    let full = || {
        Tar::default()
            .dir("d")
            .file("d/x", b"x")
            .file("f", b"f")
            .clone()
    };
    let cases = [
        ("file", full().file("d", b"a file now").end()),
        ("symlink", full().entry("d", b'2', "f").end()),
        ("hard link", full().entry("d", b'1', "f").end()),
        ("fifo", full().entry("d", b'6', "").end()),
        ("device", full().entry("d", b'3', "").end()),
    ];
    let replaces = |e: &TarError| matches!(e, TarError::ReplacesDirectory { offset: 2560, .. });
    let words = ["d: entry at byte 2560 would replace a directory that has entries"];
    for (what, archive) in &cases {
        assert_fails(what, archive, replaces, &words);
    }
    let left_out = TarOptions {
        skip_devices: true,
        ..TarOptions::default()
    };
    assert_fails_with("skipped device", &cases[4].1, &left_out, replaces, &words);
    let linked = TarOptions {
        hardlinks: true,
        ..TarOptions::default()
    };
    assert_fails_with("kept hard link", &cases[2].1, &linked, replaces, &words);
    // A directory no entry described is one all the same.
    assert_fails(
        "implicit directory",
        &Tar::default().file("d/x", b"").file("d", b"").end(),
        |e| matches!(e, TarError::ReplacesDirectory { offset: 512, .. }),
        &["d: entry at byte 512"],
    );

    let tree = from_tar(
        &Tar::default()
            .dir("d")
            .file("d", b"file")
            .dir("e")
            .file("e/x", b"x")
            .dir("e")
            .end(),
        &TarOptions::default(),
    )
    .unwrap();
    assert_eq!(names(&tree), ["/d", "/e", "/e/x"]);
    assert_eq!(inline(get(&tree, "/d")), b"file");
}

/// A device number is stored in the kernel's 32-bit encoding (12-bit major, 20-bit minor);
/// one that does not fit is refused, not cut to another device (4096:0 would have become
/// 0:0, an overlay whiteout).
#[test]
fn device_numbers_that_do_not_fit_are_refused() {
    let device = |typeflag, major, minor| {
        Tar::default()
            .file("f", b"")
            .raw(
                &H {
                    name: b"dev".to_vec(),
                    typeflag,
                    major,
                    minor,
                    ..H::default()
                },
                b"",
            )
            .end()
    };
    let tree = from_tar(&device(b'3', 4095, 0xfffff), &TarOptions::default()).unwrap();
    assert_eq!(get(&tree, "/dev").stat.rdev, u32::MAX);
    let tree = from_tar(&device(b'4', 259, 0x12345), &TarOptions::default()).unwrap();
    assert_eq!(
        get(&tree, "/dev").stat.rdev,
        0x45 | 259 << 8 | 0x12300 << 12
    );
    for (typeflag, major, minor) in [(b'3', 4096, 0), (b'4', 0, 0x100000), (b'3', 1 << 20, 1)] {
        assert_fails(
            &format!("{major}:{minor}"),
            &device(typeflag, major, minor),
            |e| {
                matches!(e, TarError::DeviceNumberTooLarge { offset: 512, major: m, minor: n, .. }
                    if u64::from(*m) == major && u64::from(*n) == minor)
            },
            &[
                "dev: device number",
                &format!("{major}:{minor} at byte 512"),
            ],
        );
    }
}

/// No file or directory may be named `.wh.*` (OCI image spec, "Whiteouts"): a directory of
/// such a name is a whiteout as a file is (composefs-rs and containers-storage look at the
/// name alone), and an entry under a whiteout name is refused, as composefs-rs refuses it
/// (its parent does not exist) rather than making a directory `.wh.x`.
#[test]
fn a_directory_named_as_a_whiteout_is_one() {
    let archive = Tar::default()
        .dir("a")
        .dir("a/.wh.x")
        .dir("a/.wh..wh..opq")
        .end();
    let tree = from_tar(&archive, &TarOptions::default()).unwrap();
    assert_eq!(names(&tree), ["/a"]);
    let overlay = TarOptions {
        whiteouts: Whiteouts::Overlay,
        ..TarOptions::default()
    };
    let tree = from_tar(&archive, &overlay).unwrap();
    assert_eq!(names(&tree), ["/a", "/a/x"]);
    assert_eq!(get(&tree, "/a/x").stat.mode, S_IFCHR);
    assert_eq!(
        get(&tree, "/a").xattr(b"trusted.overlay.opaque"),
        Some(&b"y"[..])
    );

    // `a` at 0, `a/.wh.x` at 512, `a/.wh.x/y` at 1024.
    let under = Tar::default()
        .dir("a")
        .dir("a/.wh.x")
        .file("a/.wh.x/y", b"")
        .end();
    let under_opaque = Tar::default().file("a/.wh..wh..opq/y/z", b"").end();
    for opts in [TarOptions::default(), overlay] {
        assert_fails_with(
            "under a whiteout",
            &under,
            &opts,
            |e| matches!(e, TarError::BadPath { offset: 1024, .. }),
            &["a/.wh.x/y", "under a whiteout"],
        );
        assert_fails_with(
            "under an opaque marker",
            &under_opaque,
            &opts,
            |e| matches!(e, TarError::BadPath { offset: 0, .. }),
            &["a/.wh..wh..opq/y/z", "under a whiteout"],
        );
    }
    let keep = TarOptions {
        whiteouts: Whiteouts::Keep,
        ..TarOptions::default()
    };
    let tree = from_tar(&under, &keep).unwrap();
    assert_eq!(names(&tree), ["/a", "/a/.wh.x", "/a/.wh.x/y"]);
}

/// OCI whiteouts apply to lower layers only ("Files that are present in the same layer as a
/// whiteout file can only be hidden by whiteout files in subsequent layers"): a whiteout of
/// what the archive itself made is refused, since composefs-rs would remove it and
/// containers-storage fail on it. One that comes first is fine: it is for a lower layer, and
/// the entry after it is this layer's own.
#[test]
fn a_whiteout_of_what_the_archive_made_is_refused() {
    let overlay = TarOptions {
        whiteouts: Whiteouts::Overlay,
        ..TarOptions::default()
    };
    let own = |e: &TarError| matches!(e, TarError::WhiteoutOfOwnEntry { .. });
    // `f` at 0 (content at 512), `d` at 1024, `d/x` at 1536, the whiteout at 2048.
    let made = || {
        Tar::default()
            .file("f", b"f")
            .dir("d")
            .file("d/x", b"")
            .clone()
    };
    for opts in [TarOptions::default(), overlay.clone()] {
        let name = format!("{:?}", opts.whiteouts);
        assert_fails_with(
            &name,
            &made().file(".wh.f", b"").end(),
            &opts,
            own,
            &[".wh.f: whiteout at byte 2048 names f, which the archive itself made"],
        );
        assert_fails_with(
            &name,
            &made().file(".wh.d", b"").end(),
            &opts,
            own,
            &[".wh.d: whiteout at byte 2048 names d,"],
        );
        assert_fails_with(
            &name,
            &made().file("d/.wh.x", b"").end(),
            &opts,
            own,
            &["d/.wh.x: whiteout at byte 2048 names d/x,"],
        );
    }
    // An opaque marker after the directory's own entries keeps them, as the OCI image spec's
    // own example layer has it (the marker hides lower layers only).
    for marker in ["d/.wh..wh..opq", ".wh..wh..opq"] {
        let tree = from_tar(&made().file(marker, b"").end(), &TarOptions::default()).unwrap();
        assert_eq!(names(&tree), ["/d", "/d/x", "/f"], "{marker}");
    }

    // First the whiteout (for a lower layer), then this layer's own entry.
    let archive = Tar::default()
        .file(".wh.d", b"")
        .dir("d")
        .file("d/x", b"x")
        .file(".wh.f", b"")
        .file("f", b"f")
        .file("o/.wh..wh..opq", b"")
        .file("o/new", b"new")
        .end();
    let tree = from_tar(&archive, &TarOptions::default()).unwrap();
    assert_eq!(names(&tree), ["/d", "/d/x", "/f", "/o", "/o/new"]);
    // In overlay form, the directory made after its whiteout is opaque: the lower `d` is
    // gone, and its entries must not show through.
    let tree = from_tar(&archive, &overlay).unwrap();
    assert_eq!(names(&tree), ["/d", "/d/x", "/f", "/o", "/o/new"]);
    for dir in ["/d", "/o"] {
        assert_eq!(
            get(&tree, dir).xattr(b"trusted.overlay.opaque"),
            Some(&b"y"[..]),
            "{dir}"
        );
    }
    assert_eq!(inline(get(&tree, "/f")), b"f");
    // The same whiteout twice is one whiteout.
    let twice = Tar::default().file(".wh.g", b"").file(".wh.g", b"").end();
    assert_eq!(names(&from_tar(&twice, &overlay).unwrap()), ["/g"]);
    // In overlay form an opaque marker after the directory's own entries keeps them, as the
    // spec's example has it: they are this layer's.
    let late_marker = Tar::default()
        .file("o/old", b"old")
        .file("o/.wh..wh..opq", b"")
        .end();
    let tree = from_tar(&late_marker, &overlay).unwrap();
    assert_eq!(names(&tree), ["/o", "/o/old"]);
    assert_eq!(
        get(&tree, "/o").xattr(b"trusted.overlay.opaque"),
        Some(&b"y"[..])
    );
}

/// Asserts that `archive` fails with an error `check` accepts and whose message holds each of
/// `words`.
fn assert_fails(name: &str, archive: &[u8], check: impl Fn(&TarError) -> bool, words: &[&str]) {
    assert_fails_with(name, archive, &TarOptions::default(), check, words);
}

/// [`assert_fails`] with `opts` (on one thread and on two).
fn assert_fails_with(
    name: &str,
    archive: &[u8],
    opts: &TarOptions,
    check: impl Fn(&TarError) -> bool,
    words: &[&str],
) {
    for threads in [1, 2] {
        let opts = TarOptions {
            threads,
            ..opts.clone()
        };
        let e = match from_tar(archive, &opts) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => e,
        };
        assert!(check(&e), "{name}: {e:?}");
        let message = e.to_string();
        for w in words {
            assert!(message.contains(w), "{name}: {message:?} lacks {w:?}");
        }
    }
}

#[test]
fn bad_archives_are_refused_with_the_entry_and_offset() {
    let ok = Tar::default().dir("d").file("d/f", &pattern(1, 5000)).end();

    assert_fails(
        "dot-dot",
        &Tar::default()
            .file("a", b"")
            .file("a/../../etc/passwd", b"x")
            .end(),
        |e| matches!(e, TarError::BadPath { offset: 512, .. }),
        &["a/../../etc/passwd", "byte 512", "`..`"],
    );
    assert_fails(
        "absolute",
        &Tar::default().file("/etc/passwd", b"x").end(),
        |e| matches!(e, TarError::BadPath { offset: 0, .. }),
        &["/etc/passwd", "absolute path"],
    );
    assert_fails(
        "dot-dot link target",
        &Tar::default().file("a", b"").entry("l", b'1', "../a").end(),
        |e| matches!(e, TarError::BadPath { .. }),
        &["../a"],
    );
    assert_fails(
        "link to missing",
        &Tar::default().file("a", b"").entry("l", b'1', "b").end(),
        |e| matches!(e, TarError::MissingLinkTarget { offset: 512, .. }),
        &["l: hard link at byte 512 to missing b"],
    );
    assert_fails(
        "link to directory",
        &Tar::default().dir("d").entry("l", b'1', "d").end(),
        |e| matches!(e, TarError::LinkToDirectory { .. }),
        &["l", "d"],
    );
    assert_fails(
        "under a file",
        &Tar::default().file("a", b"").file("a/b", b"").end(),
        |e| matches!(e, TarError::NotUnderDirectory { .. }),
        &["a/b", "non-directory a"],
    );
    assert_fails(
        "under a symlink",
        &Tar::default()
            .entry("s", b'2', "/etc")
            .file("s/passwd", b"")
            .end(),
        |e| matches!(e, TarError::NotUnderDirectory { .. }),
        &["s/passwd"],
    );
    assert_fails(
        "root not a directory",
        &Tar::default().file(".", b"").end(),
        |e| matches!(e, TarError::RootNotDirectory { .. }),
        &["root entry"],
    );
    assert_fails(
        "empty symlink",
        &Tar::default().entry("s", b'2', "").end(),
        |e| matches!(e, TarError::EmptySymlink { .. }),
        &["s"],
    );
    assert_fails(
        "long name",
        &Tar::default()
            .pax(b'x', &[(b"path", "n".repeat(256).as_bytes())])
            .file("x", b"")
            .end(),
        |e| matches!(e, TarError::BadPath { offset: 0, .. }),
        &["longer than 255"],
    );
    assert_fails(
        "empty path",
        &Tar::default().file("", b"").end(),
        |e| matches!(e, TarError::BadPath { .. }),
        &["empty path"],
    );
    assert_fails(
        "xattr too large",
        &Tar::default()
            .pax(b'x', &[(b"SCHILY.xattr.user.big", &[b'v'; 40_000][..])])
            .file("x", b"")
            .end(),
        |e| matches!(e, TarError::BadPax { offset: 0, .. }),
        &["byte 0", "user.big", "32767 bytes"],
    );
    let long_name = format!("SCHILY.xattr.user.{}", "n".repeat(300));
    assert_fails(
        "xattr name too long",
        &Tar::default()
            .pax(b'x', &[(long_name.as_bytes(), b"v")])
            .file("x", b"")
            .end(),
        |e| matches!(e, TarError::XattrTooLarge { offset: 0, .. }),
        &["x: extended attribute user.nnn", "longer than 255"],
    );
    assert_fails(
        "sparse",
        &Tar::default().entry("s", b'S', "").end(),
        |e| matches!(e, TarError::Unsupported { .. }),
        &["s", "sparse"],
    );
    assert_fails(
        "pax sparse",
        &Tar::default()
            .pax(
                b'x',
                &[(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0")],
            )
            .file("s", b"")
            .end(),
        |e| matches!(e, TarError::Unsupported { .. }),
        &["sparse"],
    );
    assert_fails(
        "text acls",
        &Tar::default()
            .pax(b'x', &[(b"SCHILY.acl.access", b"user::rw-")])
            .file("s", b"")
            .end(),
        |e| matches!(e, TarError::Unsupported { .. }),
        &["SCHILY.acl.access"],
    );
    assert_fails(
        "unknown type",
        &Tar::default().entry("q", b'Q', "").end(),
        |e| matches!(e, TarError::Unsupported { .. }),
        &["q", "type flag"],
    );
    assert_fails(
        "bad pax",
        &Tar::default()
            .raw(
                &H {
                    name: b"x".to_vec(),
                    typeflag: b'x',
                    size: 9,
                    ..H::default()
                },
                b"8 path=a\n",
            )
            .file("f", b"")
            .end(),
        |e| matches!(e, TarError::BadPax { offset: 0, .. }),
        &["byte 0"],
    );
    assert_fails(
        "extended header at the end",
        &Tar::default().pax(b'x', &[(b"path", b"a")]).end(),
        |e| matches!(e, TarError::BadHeader { .. }),
        &["not followed by an entry"],
    );
    assert_fails(
        "huge long name",
        &{
            let mut a = header(&H {
                name: b"././@LongLink".to_vec(),
                typeflag: b'L',
                size: 1 << 40,
                gnu: true,
                ..H::default()
            })
            .to_vec();
            a.extend([0u8; 1024]);
            a
        },
        |e| matches!(e, TarError::BadHeader { .. }),
        &["extended header of 1099511627776 bytes"],
    );
    assert_fails(
        "bad number",
        &{
            let mut a = Tar::default().file("f", b"").end();
            a[100..108].copy_from_slice(b"0000x44\0");
            a[148..156].fill(b' ');
            let sum: u32 = a[..512].iter().map(|&x| u32::from(x)).sum();
            a[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            a
        },
        |e| matches!(e, TarError::BadHeader { .. }),
        &["mode field", "f"],
    );

    // Corruption and truncation of a good archive.
    let mut bad = ok.clone();
    bad[512 + 10] ^= 1;
    assert_fails(
        "bad checksum",
        &bad,
        |e| matches!(e, TarError::BadChecksum { offset: 512 }),
        &["checksum", "byte 512"],
    );
    for cut in [1, 511, 512, 700, 1024 + 4999] {
        assert_fails(
            &format!("cut at {cut}"),
            &ok[..cut],
            |e| matches!(e, TarError::Truncated { .. }),
            &["truncated"],
        );
    }
    assert_fails(
        "cut inside the content",
        &ok[..3000],
        |e| matches!(e, TarError::Truncated { offset: 3000, path: Some(p) } if p == Path::new("d/f")),
        &["byte 3000", "d/f"],
    );
    assert_fails(
        "no end marker",
        &ok[..ok.len() - 1024],
        |e| matches!(e, TarError::Truncated { path: None, .. }),
        &["truncated"],
    );
    assert_fails(
        "absurd size",
        &{
            let mut a = Tar::default()
                .raw(
                    &H {
                        name: b"big".to_vec(),
                        size: 1 << 40,
                        ..H::default()
                    },
                    b"",
                )
                .end();
            a.extend([0u8; 4096]);
            a
        },
        |e| matches!(e, TarError::Truncated { .. }),
        &["big"],
    );

    // Not tar at all.
    assert_fails(
        "text",
        &[b'x'; 2000],
        |e| matches!(e, TarError::NotTar),
        &["not a tar"],
    );
    assert_fails(
        "empty",
        b"",
        |e| matches!(e, TarError::NotTar),
        &["not a tar"],
    );
    assert_fails(
        "xz",
        b"\xfd7zXZ\x00\x00\x04rest",
        |e| matches!(e, TarError::UnsupportedCompression { format: "xz" }),
        &["xz"],
    );
    assert_fails(
        "bzip2",
        b"BZh91AY&SY",
        |e| matches!(e, TarError::UnsupportedCompression { format: "bzip2" }),
        &["bzip2"],
    );

    // The good archive, and one made only of the end marker, are fine.
    from_tar(&ok, &TarOptions::default()).unwrap();
    let empty = from_tar(&[0u8; 10240], &TarOptions::default()).unwrap();
    assert_eq!(names(&empty), Vec::<String>::new());
}

/// Extended headers cannot make one entry cost more than its share: at most 64 headers
/// (`x`, `g`, `L`, `K`, `V`) may precede an entry, and the xattrs they give one entry, `g`
/// defaults included, may not pass the 32767 bytes composefs allows a file, counted as the
/// records are read (so four headers of 20 000 xattrs each stop in the first). Xattrs the
/// options drop do not count.
#[test]
fn many_extended_headers_and_xattrs_are_refused_early() {
    let uid = |tar: &mut Tar, n: usize, typeflag: u8| {
        for i in 0..n {
            tar.pax(typeflag, &[(b"uid", i.to_string().as_bytes())]);
        }
    };
    // 64 are fine.
    let mut tar = Tar::default();
    uid(&mut tar, 32, b'g');
    uid(&mut tar, 32, b'x');
    let tree = from_tar(&tar.file("f", b"").end(), &TarOptions::default()).unwrap();
    assert_eq!(get(&tree, "f").stat.uid, 31);
    // 65 are not, whatever their kind; the error names where the run began.
    for (kind, typeflag) in [("x", b'x'), ("g", b'g')] {
        let mut tar = Tar::default();
        tar.file("first", b"");
        uid(&mut tar, 65, typeflag);
        assert_fails(
            &format!("65 {kind} headers"),
            &tar.file("f", b"").end(),
            // `first` is one block; each header two (its records fit one).
            |e| matches!(e, TarError::BadHeader { offset, .. } if *offset == 512 + 64 * 1024),
            &[
                "byte 66048",
                "more than 64 extended headers",
                "from byte 512, before one entry",
            ],
        );
    }
    let mut tar = Tar::default();
    for _ in 0..65 {
        tar.gnu_long(b'L', b"long-name");
    }
    assert_fails(
        "65 long names",
        &tar.file("f", b"").end(),
        |e| matches!(e, TarError::BadHeader { .. }),
        &["more than 64 extended headers", "from byte 0"],
    );

    // Four headers of 20 000 xattrs each: the first is refused at the xattr that passes
    // the limit (12 + 1926 × (7 + 10) bytes fit).
    let names: Vec<Vec<u8>> = (0..20_000)
        .map(|i| format!("SCHILY.xattr.user.{i:05}").into_bytes())
        .collect();
    let records: Vec<(&[u8], &[u8])> = names.iter().map(|n| (n.as_slice(), &b""[..])).collect();
    let mut tar = Tar::default();
    for _ in 0..4 {
        tar.pax(b'x', &records);
    }
    let archive = tar.file("f", b"").end();
    assert_fails(
        "80 000 xattrs",
        &archive,
        |e| matches!(e, TarError::BadPax { offset: 0, .. }),
        &[
            "bad PAX header at byte 0",
            "extended attribute user.01926",
            "past the 32767 bytes composefs allows one file",
        ],
    );
    // Dropped by the options, they cost nothing.
    for opts in [
        TarOptions {
            skip_xattrs: true,
            ..TarOptions::default()
        },
        TarOptions {
            user_xattrs: true,
            ..TarOptions::default()
        },
    ] {
        let big = Tar::default()
            .pax(
                b'x',
                &[
                    (b"SCHILY.xattr.trusted.big", &[b'v'; 40_000][..]),
                    (b"SCHILY.xattr.user.a", b"1"),
                ],
            )
            .file("f", b"")
            .end();
        let tree = from_tar(&big, &opts).unwrap();
        let kept: Vec<&[u8]> = get(&tree, "f").xattrs.iter().map(|x| &x.name[..]).collect();
        let want: &[&[u8]] = if opts.skip_xattrs { &[] } else { &[b"user.a"] };
        assert_eq!(kept, want);
    }

    // `g` defaults count with the entry's own: each fits, together they do not.
    let half = [b'v'; 20_000];
    let archive = Tar::default()
        .pax(b'g', &[(b"SCHILY.xattr.user.global", &half[..])])
        .pax(b'x', &[(b"SCHILY.xattr.user.own", &half[..])])
        .file("f", b"")
        .end();
    assert_fails(
        "global and own xattrs",
        &archive,
        // The `x` header, after the `g` header and its 20 033 bytes of records (40 blocks).
        |e| matches!(e, TarError::BadPax { offset: 20_992, .. }),
        &["byte 20992", "user.own", "32767"],
    );
    // And `g` headers one after another add up too.
    let archive = Tar::default()
        .pax(b'g', &[(b"SCHILY.xattr.user.g1", &half[..])])
        .file("a", b"")
        .pax(b'g', &[(b"SCHILY.xattr.user.g2", &half[..])])
        .file("b", b"")
        .end();
    assert_fails(
        "global xattrs",
        &archive,
        |e| matches!(e, TarError::BadPax { .. }),
        &["user.g2", "32767"],
    );
    // A value set again replaces the old one in the count.
    let archive = Tar::default()
        .pax(b'g', &[(b"SCHILY.xattr.user.g", &half[..])])
        .file("a", b"")
        .pax(b'g', &[(b"SCHILY.xattr.user.g", &half[..])])
        .file("b", b"")
        .end();
    let tree = from_tar(&archive, &TarOptions::default()).unwrap();
    assert_eq!(get(&tree, "b").xattrs.len(), 1);
}

#[test]
fn conflicting_options() {
    let opts = TarOptions {
        skip_xattrs: true,
        user_xattrs: true,
        ..TarOptions::default()
    };
    let e = from_tar(&Tar::default().end(), &opts).unwrap_err();
    assert!(matches!(e, TarError::ConflictingOptions), "{e:?}");
}

/// A sink that fails on the file of a given size, or stops reading it halfway.
struct Failing {
    size: u64,
    stop_early: bool,
}

impl ObjectSink for Failing {
    fn store(&self, content: &mut dyn Read, size: u64) -> io::Result<sealroot_verity::AnyDigest> {
        if size != self.size {
            return HashOnly::default().store(content, size);
        }
        if self.stop_early {
            let mut half = vec![0; size as usize / 2];
            content.read_exact(&mut half)?;
            return Ok(Sha256Digest([0; 32]).into());
        }
        Err(io::Error::other("disk on fire"))
    }
}

#[test]
fn sink_errors_name_the_file() {
    let archive = Tar::default()
        .file("a", &pattern(1, 100))
        .file("b", &pattern(2, 5000))
        .file("c", &pattern(3, 600_000))
        .file("d", &pattern(4, 100))
        .end();
    for threads in [1, 2, 4] {
        for (size, offset, path) in [(5000, 1024, "b"), (600_000, 1024 + 512 + 5120, "c")] {
            for stop_early in [false, true] {
                let opts = TarOptions {
                    threads,
                    ..TarOptions::default()
                };
                let sink = Failing { size, stop_early };
                let e = build_from_tar(&archive[..], &opts, &sink).unwrap_err();
                match &e {
                    TarError::Sink {
                        offset: o, path: p, ..
                    } => {
                        assert_eq!((*o, p.as_path()), (offset, Path::new(path)), "{e}");
                    }
                    e => panic!("{e:?}"),
                }
                let want = if stop_early {
                    "returned after reading"
                } else {
                    "disk on fire"
                };
                assert!(e.to_string().contains(want), "{e}");
            }
        }
    }
}

#[test]
fn a_truncated_archive_is_the_error_not_the_sink() {
    let archive = Tar::default().file("big", &pattern(1, 2 << 20)).end();
    for threads in [1, 3] {
        let opts = TarOptions {
            threads,
            ..TarOptions::default()
        };
        let tmp = tempfile::tempdir().unwrap();
        let sink = DirStore::open(tmp.path()).unwrap();
        let e = build_from_tar(&archive[..1 << 20], &opts, &sink).unwrap_err();
        assert!(
            matches!(&e, TarError::Truncated { offset, .. } if *offset == 1 << 20),
            "{e:?}"
        );
        // Nothing half-written is left in the store.
        let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

/// An archive read with a sha512 sink gives the tree a sha512 build of its extraction gives:
/// sha512 digests and 128-digit payloads.
#[test]
fn a_sha512_sink_gives_the_sha512_tree_of_the_extraction() {
    use sealroot_verity::HashAlgorithm;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("big"), pattern(1, 100_000)).unwrap();
    std::fs::write(dir.join("sub/small"), b"small\n").unwrap();
    std::fs::write(dir.join("sub/4096"), pattern(2, 4096)).unwrap();
    let archive = tar_create(&dir, &["--format=posix"]);
    let sink = HashOnly {
        algorithm: HashAlgorithm::Sha512,
    };
    let got = build_from_tar(&archive[..], &TarOptions::default(), &sink).unwrap();
    let opts = BuildOptions {
        algorithm: HashAlgorithm::Sha512,
        ..Default::default()
    };
    let want = build_from_dir(&dir, &opts, &NoProgress).unwrap();
    assert_eq!(normalized(got.clone()), normalized(want));
    match &get(&got, "big").content {
        sealroot_format::Content::Regular(f) => {
            assert_eq!(f.digest.map(|d| d.algorithm()), Some(HashAlgorithm::Sha512));
            assert_eq!(f.payload.as_ref().map(Vec::len), Some(129));
        }
        other => panic!("{other:?}"),
    }
}
