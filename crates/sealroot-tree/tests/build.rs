//! Builds trees from real directories holding every kind of file and checks every field.
//!
//! Parts that need root (devices, ownership, `trusted.*` xattrs) are skipped with a message
//! when not run as root.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rustix::fs::{AtFlags, Mode, Timespec, Timestamps, XattrFlags, CWD};
use sealroot_format::tree::{Content, FileType, Inode, InodeId, Mtime, RegularFile, Tree};
use sealroot_testkit::{skip, skip_even_in_ci};
use sealroot_tree::{build_from_dir, BuildError, BuildOptions, NoProgress, Operation, Progress};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Bytes 0..n in a pattern that makes every 4 KiB block differ.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 4096) as u8).collect()
}

fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    rustix::fs::utimensat(
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

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> rustix::io::Result<()> {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty())
}

/// The xattrs of `path` as the kernel reports them, name → value.
fn xattrs_of(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut list = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut list[..]).unwrap();
    let mut out = BTreeMap::new();
    for name in list[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut value = vec![0u8; 65536];
        let k = rustix::fs::lgetxattr(path, name, &mut value[..]).unwrap();
        value.truncate(k);
        out.insert(name.to_vec(), value);
    }
    out
}

fn tree_xattrs(inode: &Inode) -> BTreeMap<Vec<u8>, Vec<u8>> {
    inode
        .xattrs
        .iter()
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect()
}

/// The digest `fsverity digest` prints for `path`, if that tool is installed.
fn fsverity_tool_digest(path: &Path) -> Option<String> {
    let out = std::process::Command::new("fsverity")
        .args([
            "digest",
            "--hash-alg=sha256",
            "--block-size=4096",
            "--compact",
        ])
        .arg(path)
        .output()
        .ok()?;
    assert!(out.status.success(), "fsverity digest {}", path.display());
    Some(String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

fn build(dir: &Path, opts: &BuildOptions) -> Tree {
    build_from_dir(dir, opts, &NoProgress).unwrap()
}

fn get<'t>(tree: &'t Tree, path: &[u8]) -> &'t Inode {
    let id = tree
        .resolve(path)
        .unwrap_or_else(|| panic!("{} not in tree", String::from_utf8_lossy(path)));
    tree.inode(id)
}

fn regular(inode: &Inode) -> &RegularFile {
    match &inode.content {
        Content::Regular(r) => r,
        c => panic!("not a regular file: {c:?}"),
    }
}

/// All paths of the tree with their inode ids and hard-link flags.
fn names(tree: &Tree) -> Vec<(Vec<u8>, InodeId, bool)> {
    let mut out = Vec::new();
    tree.walk(|p, e| out.push((p.to_vec(), e.inode, e.hardlink)));
    out
}

/// The sizes around the inline limit and beyond one Merkle-tree block of hashes.
const SIZES: &[usize] = &[0, 1, 63, 64, 65, 4096, 4097, 1 << 20, (1 << 20) * 3 + 17];

/// A directory of regular files `f<size>` of the sizes above.
fn make_sized_files(dir: &Path) {
    for &n in SIZES {
        fs::write(dir.join(format!("f{n}")), pattern(n)).unwrap();
    }
}

#[test]
fn regular_files_inline_digest_payload() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_sized_files(dir);
    let tree = build(dir, &BuildOptions::default());

    let mut no_tool = false;
    for &n in SIZES {
        let path = dir.join(format!("f{n}"));
        let inode = get(&tree, format!("f{n}").as_bytes());
        let r = regular(inode);
        assert_eq!(inode.stat.size, n as u64);
        assert_eq!(inode.stat.nlink, 1);
        assert_eq!(inode.stat.file_type(), Some(FileType::Regular));
        if n == 0 {
            assert_eq!(r, &RegularFile::default(), "empty file");
        } else if n <= 64 {
            assert_eq!(r.inline.as_deref(), Some(&pattern(n)[..]), "f{n} inline");
            assert_eq!((&r.payload, &r.digest), (&None, &None), "f{n}");
        } else {
            assert_eq!(r.inline, None, "f{n} not inline");
            let digest = r.digest.expect("digest");
            assert_eq!(digest, sealroot_verity::sha256_digest(&pattern(n)).into());
            let hex = digest.to_hex();
            assert_eq!(
                r.payload.as_deref(),
                Some(format!("{}/{}", &hex[..2], &hex[2..]).as_bytes())
            );
            match fsverity_tool_digest(&path) {
                Some(tool) => assert_eq!(hex, tool, "f{n} against fsverity digest"),
                None => no_tool = true,
            }
        }
    }
    if no_tool {
        skip(
            "regular_files_inline_digest_payload",
            "fsverity tool not installed: no second opinion on digests",
        );
    }
}

#[test]
fn digest_options() {
    let tmp = tempfile::tempdir().unwrap();
    make_sized_files(tmp.path());

    let opts = BuildOptions {
        no_inline: true,
        ..Default::default()
    };
    let tree = build(tmp.path(), &opts);
    let r = regular(get(&tree, b"f64"));
    assert_eq!(r.inline, None);
    assert_eq!(
        r.digest,
        Some(sealroot_verity::sha256_digest(&pattern(64)).into())
    );
    assert_eq!(regular(get(&tree, b"f0")), &RegularFile::default());

    // By digest without recording it: the payload alone (C clears digest_set then).
    let opts = BuildOptions {
        compute_digest: false,
        ..Default::default()
    };
    let tree = build(tmp.path(), &opts);
    let r = regular(get(&tree, b"f65"));
    assert_eq!(r.digest, None);
    let d = sealroot_verity::sha256_digest(&pattern(65));
    assert_eq!(r.payload.as_deref(), Some(d.object_path().as_bytes()));

    let opts = BuildOptions {
        compute_digest: false,
        by_digest: false,
        ..Default::default()
    };
    let tree = build(tmp.path(), &opts);
    assert_eq!(regular(get(&tree, b"f4096")), &RegularFile::default());
    assert!(regular(get(&tree, b"f1")).inline.is_some());
}

#[test]
fn every_file_type_and_attribute() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir(dir.join("sub")).unwrap();
    fs::create_dir(dir.join("sub/deeper")).unwrap();
    fs::create_dir(dir.join("empty")).unwrap();
    fs::write(dir.join("sub/deeper/file"), b"deep").unwrap();
    fs::set_permissions(
        dir.join("sub/deeper/file"),
        fs::Permissions::from_mode(0o4751),
    )
    .unwrap();
    fs::set_permissions(dir.join("empty"), fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::symlink("sub/deeper/file", dir.join("link")).unwrap();
    let long_target = "x/".repeat(1000);
    std::os::unix::fs::symlink(&long_target, dir.join("longlink")).unwrap();
    std::os::unix::fs::symlink("/nowhere", dir.join("dangling")).unwrap();
    rustix::fs::mkfifoat(CWD, dir.join("fifo"), Mode::from_raw_mode(0o640)).unwrap();
    let sock = std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap();
    drop(sock);

    // Sub-second and pre-1970 mtimes, on a file, a directory and a symlink.
    set_mtime(&dir.join("sub/deeper/file"), 1_700_000_000, 123_456_789);
    set_mtime(&dir.join("link"), 1_600_000_000, 1);
    set_mtime(&dir.join("fifo"), -12_345, 678);
    set_mtime(&dir.join("sub/deeper"), 1_234_567_890, 999_999_999);

    let devices = is_root();
    // Major 300, minor 70000 need the "new" 32-bit encoding's high minor bits.
    let (major, minor) = (300u32, 70_000u32);
    if devices {
        let mk = |name: &str, t, dev| {
            rustix::fs::mknodat(CWD, dir.join(name), t, Mode::from_raw_mode(0o600), dev).unwrap()
        };
        mk(
            "chr",
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::makedev(major, minor),
        );
        mk(
            "blk",
            rustix::fs::FileType::BlockDevice,
            rustix::fs::makedev(8, 1),
        );
        mk(
            "whiteout",
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::makedev(0, 0),
        );
        rustix::fs::chownat(
            CWD,
            dir.join("link"),
            Some(rustix::fs::Uid::from_raw(1234)),
            Some(rustix::fs::Gid::from_raw(5678)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
        std::os::unix::fs::chown(dir.join("sub"), Some(42), Some(43)).unwrap();
    } else {
        skip(
            "every_file_type_and_attribute",
            "not root: no devices, no ownership changes",
        );
    }
    set_mtime(dir, 1_111_111_111, 222);

    let tree = build(dir, &BuildOptions::default());

    // The root is the source directory itself.
    let meta = fs::symlink_metadata(dir).unwrap();
    let root = tree.root();
    assert_eq!(root.stat.mode, meta.mode());
    assert_eq!((root.stat.uid, root.stat.gid), (meta.uid(), meta.gid()));
    assert_eq!(
        root.stat.mtime,
        Mtime {
            sec: 1_111_111_111,
            nsec: 222
        }
    );
    // 2 + sub and empty.
    assert_eq!(root.stat.nlink, 4);

    let mut expected = vec![
        "dangling",
        "empty",
        "fifo",
        "link",
        "longlink",
        "sock",
        "sub",
        "sub/deeper",
        "sub/deeper/file",
    ];
    if devices {
        expected.extend(["blk", "chr", "whiteout"]);
    }
    let mut expected: Vec<Vec<u8>> = expected
        .iter()
        .map(|p| format!("/{p}").into_bytes())
        .collect();
    expected.sort();
    let mut got: Vec<Vec<u8>> = names(&tree).into_iter().map(|n| n.0).collect();
    got.sort();
    assert_eq!(got, expected);

    // Every inode's attributes are lstat's.
    for (path, id, _) in names(&tree) {
        let full = dir.join(OsStr::from_bytes(&path[1..]));
        let meta = fs::symlink_metadata(&full).unwrap();
        let st = &tree.inode(id).stat;
        let what = full.display();
        assert_eq!(st.mode, meta.mode(), "{what}");
        assert_eq!((st.uid, st.gid), (meta.uid(), meta.gid()), "{what}");
        assert_eq!(
            st.mtime,
            Mtime {
                sec: meta.mtime(),
                nsec: meta.mtime_nsec() as u32
            },
            "{what}"
        );
    }

    let file = get(&tree, b"sub/deeper/file");
    assert_eq!(file.stat.mode, 0o104751);
    assert_eq!(
        file.stat.mtime,
        Mtime {
            sec: 1_700_000_000,
            nsec: 123_456_789
        }
    );
    assert_eq!(regular(file).inline.as_deref(), Some(&b"deep"[..]));
    assert_eq!(get(&tree, b"sub").stat.nlink, 3);
    assert_eq!(get(&tree, b"sub/deeper").stat.nlink, 2);
    assert_eq!(
        get(&tree, b"sub/deeper").stat.mtime,
        Mtime {
            sec: 1_234_567_890,
            nsec: 999_999_999
        }
    );
    assert_eq!(get(&tree, b"empty").stat.mode, 0o41777);
    assert_eq!(get(&tree, b"empty").entries(), Some(&[][..]));

    let link = get(&tree, b"link");
    assert_eq!(link.content, Content::Symlink(b"sub/deeper/file".to_vec()));
    assert_eq!(link.stat.size, 15);
    assert_eq!(
        link.stat.mtime,
        Mtime {
            sec: 1_600_000_000,
            nsec: 1
        }
    );
    let longlink = get(&tree, b"longlink");
    assert_eq!(longlink.content, Content::Symlink(long_target.into_bytes()));
    assert_eq!(longlink.stat.size, 2000);
    assert_eq!(
        get(&tree, b"dangling").content,
        Content::Symlink(b"/nowhere".to_vec())
    );

    let fifo = get(&tree, b"fifo");
    assert_eq!(fifo.content, Content::Special);
    assert_eq!(fifo.stat.file_type(), Some(FileType::Fifo));
    assert_eq!(
        fifo.stat.mtime,
        Mtime {
            sec: -12_345,
            nsec: 678
        }
    );
    assert_eq!(fifo.stat.rdev, 0);
    assert_eq!(get(&tree, b"sock").stat.file_type(), Some(FileType::Socket));

    if devices {
        let chr = get(&tree, b"chr");
        assert_eq!(chr.content, Content::Special);
        assert_eq!(chr.stat.file_type(), Some(FileType::CharDevice));
        // The kernel's new_encode_dev: minor low byte, major, then the minor's high bits.
        let encoded = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
        assert_eq!(chr.stat.rdev, encoded);
        assert_eq!(get(&tree, b"blk").stat.rdev, 8 << 8 | 1);
        assert_eq!(
            get(&tree, b"blk").stat.file_type(),
            Some(FileType::BlockDevice)
        );
        assert_eq!(get(&tree, b"whiteout").stat.rdev, 0);
        assert_eq!((link.stat.uid, link.stat.gid), (1234, 5678));
        assert_eq!(
            (get(&tree, b"sub").stat.uid, get(&tree, b"sub").stat.gid),
            (42, 43)
        );

        let opts = BuildOptions {
            skip_devices: true,
            ..Default::default()
        };
        let tree = build(dir, &opts);
        for name in ["chr", "blk", "whiteout"] {
            assert!(tree.resolve(name.as_bytes()).is_none(), "{name} skipped");
        }
        assert!(tree.resolve(b"fifo").is_some());
    }

    let opts = BuildOptions {
        use_epoch: true,
        ..Default::default()
    };
    let tree = build(dir, &opts);
    assert!(tree.inodes.iter().all(|i| i.stat.mtime == Mtime::default()));
}

#[test]
fn odd_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let long = vec![b'n'; 255];
    let names: Vec<&[u8]> = vec![
        b"with space",
        b"new\nline",
        b"\xff\xfe not utf-8 \x80",
        b"tab\tand\\backslash",
        b"-",
        b"\x01",
        &long,
        "ünïcödé".as_bytes(),
    ];
    for name in &names {
        fs::write(dir.join(OsStr::from_bytes(name)), name).unwrap();
    }
    fs::create_dir(dir.join(OsStr::from_bytes(b"dir \xff"))).unwrap();
    fs::write(dir.join(OsStr::from_bytes(b"dir \xff/inner \n")), b"x").unwrap();

    let tree = build(dir, &BuildOptions::default());
    let root = tree.root().entries().unwrap();
    let mut want: Vec<Vec<u8>> = names.iter().map(|n| n.to_vec()).collect();
    want.push(b"dir \xff".to_vec());
    want.sort();
    let got: Vec<Vec<u8>> = root.iter().map(|e| e.name.clone()).collect();
    assert_eq!(got, want, "all names, sorted bytewise");
    for name in &names {
        let r = regular(get(&tree, name));
        let content = r.inline.as_deref().map(<[u8]>::to_vec).or_else(|| {
            r.digest
                .map(|d| d.to_hex().into_bytes())
                .filter(|_| name.len() > 64)
        });
        assert!(content.is_some(), "{name:?}");
        if name.len() <= 64 {
            assert_eq!(r.inline.as_deref(), Some(*name));
        } else {
            assert_eq!(r.digest, Some(sealroot_verity::sha256_digest(name).into()));
        }
    }
    assert_eq!(
        regular(get(&tree, b"dir \xff/inner \n")).inline.as_deref(),
        Some(&b"x"[..])
    );
}

/// An ACL granting user 1000 read access: `system.posix_acl_access` in the kernel's format
/// (version 2, then tag/perm/id entries sorted by tag).
fn acl_bytes() -> Vec<u8> {
    const UNDEFINED: u32 = u32::MAX;
    let entries: [(u16, u16, u32); 5] = [
        (0x01, 6, UNDEFINED), // user::rw-
        (0x02, 4, 1000),      // user:1000:r--
        (0x04, 4, UNDEFINED), // group::r--
        (0x10, 4, UNDEFINED), // mask::r--
        (0x20, 0, UNDEFINED), // other::---
    ];
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend(tag.to_le_bytes());
        v.extend(perm.to_le_bytes());
        v.extend(id.to_le_bytes());
    }
    v
}

#[test]
fn xattrs_of_every_namespace() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("small"), b"abc").unwrap();
    fs::write(dir.join("big"), pattern(10_000)).unwrap();
    fs::write(dir.join("empty"), b"").unwrap();
    fs::create_dir(dir.join("d")).unwrap();
    std::os::unix::fs::symlink("big", dir.join("link")).unwrap();
    rustix::fs::mkfifoat(CWD, dir.join("fifo"), Mode::from_raw_mode(0o644)).unwrap();

    let binary: Vec<u8> = (0..=255).collect();
    for name in ["small", "big", "empty", "d", "fifo", "link", "."] {
        let p = dir.join(name);
        if name != "link" && name != "fifo" {
            // Linux allows user.* only on regular files and directories.
            set_xattr(&p, "user.plain", b"value").unwrap();
            set_xattr(&p, "user.binary", &binary).unwrap();
            set_xattr(&p, "user.empty", b"").unwrap();
        }
        if is_root() {
            set_xattr(&p, "trusted.sealroot", name.as_bytes()).unwrap();
            set_xattr(&p, "trusted.overlay.opaque", b"y").unwrap();
        }
        match set_xattr(&p, "security.sealroot", b"sec\0ret") {
            Ok(()) => {}
            Err(e) => skip(
                "xattrs_of_every_namespace",
                &format!("security.sealroot on {name}: {e}"),
            ),
        }
    }
    if !is_root() {
        skip("xattrs_of_every_namespace", "not root: no trusted.* xattrs");
    }
    let mut have_acl = true;
    for name in ["big", "d"] {
        if let Err(e) = set_xattr(&dir.join(name), "system.posix_acl_access", &acl_bytes()) {
            skip(
                "xattrs_of_every_namespace",
                &format!("POSIX ACLs not supported here: {e}"),
            );
            have_acl = false;
        }
    }
    if have_acl {
        set_xattr(&dir.join("d"), "system.posix_acl_default", &acl_bytes()).unwrap();
    }

    let tree = build(dir, &BuildOptions::default());
    let mut checked = 0;
    for (name, path) in [
        ("small", &b"small"[..]),
        ("big", b"big"),
        ("empty", b"empty"),
        ("d", b"d"),
        ("fifo", b"fifo"),
        ("link", b"link"),
        (".", b""),
    ] {
        let want = xattrs_of(&dir.join(name));
        let got = tree_xattrs(get(&tree, path));
        assert_eq!(got, want, "xattrs of {name}");
        if name != "link" && name != "fifo" {
            assert_eq!(got.get(&b"user.binary"[..]), Some(&binary));
            assert_eq!(got.get(&b"user.empty"[..]), Some(&Vec::new()));
        }
        if is_root() {
            assert_eq!(
                got.get(&b"trusted.sealroot"[..]).map(Vec::as_slice),
                Some(name.as_bytes())
            );
        }
        checked += got.len();
    }
    assert!(checked > 0);
    if have_acl {
        let got = tree_xattrs(get(&tree, b"d"));
        assert!(got.contains_key(&b"system.posix_acl_access"[..]));
        assert!(got.contains_key(&b"system.posix_acl_default"[..]));
        // An access ACL sets the group bits of the mode to the mask.
        assert_eq!(get(&tree, b"big").stat.mode & 0o777, 0o640);
    }

    let opts = BuildOptions {
        user_xattrs: true,
        ..Default::default()
    };
    let tree = build(dir, &opts);
    for inode in &tree.inodes {
        assert!(inode.xattrs.iter().all(|x| x.name.starts_with(b"user.")));
    }
    assert_eq!(get(&tree, b"big").xattrs.len(), 3);

    let opts = BuildOptions {
        skip_xattrs: true,
        ..Default::default()
    };
    let tree = build(dir, &opts);
    assert!(tree.inodes.iter().all(|i| i.xattrs.is_empty()));
}

#[test]
fn xattr_limits_are_those_of_c() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("f"), pattern(1000)).unwrap();
    // ext4 keeps all xattrs of an inode in one block; a few KiB always fit.
    set_xattr(&dir.join("f"), "user.a", &[1u8; 3000]).unwrap();
    build(dir, &BuildOptions::default());

    // Over C's 32767-byte per-inode budget: needs a filesystem that stores large values,
    // such as tmpfs (ext4 only does with the ea_inode feature).
    let shm = tempfile::tempdir_in("/dev/shm");
    for dir in [Some(dir), shm.as_ref().ok().map(|d| d.path())]
        .into_iter()
        .flatten()
    {
        let f = dir.join("big");
        fs::write(&f, b"x").unwrap();
        if set_xattr(&f, "user.big", &vec![2u8; 40_000]).is_err() {
            continue;
        }
        match build_from_dir(dir, &BuildOptions::default(), &NoProgress) {
            Err(BuildError::XattrTooLarge { path, .. }) => assert_eq!(path, f),
            r => panic!("expected XattrTooLarge, got {r:?}"),
        }
        // Also when a directory's xattrs fail, read by the walk while files are being read.
        let d = dir.join("d");
        fs::create_dir(&d).unwrap();
        for i in 0..300 {
            fs::write(d.join(format!("f{i}")), pattern(i)).unwrap();
        }
        let sub = d.join("zz");
        fs::create_dir(&sub).unwrap();
        set_xattr(&sub, "user.big", &vec![2u8; 40_000]).unwrap();
        match build_from_dir(&d, &BuildOptions::default(), &NoProgress) {
            Err(BuildError::XattrTooLarge { path, .. }) => assert_eq!(path, sub),
            r => panic!("expected XattrTooLarge, got {r:?}"),
        }
        fs::remove_dir_all(&d).unwrap();
        // Just within the budget: 12 + (7 + 8 + 32740) = 32767.
        set_xattr(&f, "user.big", &vec![2u8; 32_740]).unwrap();
        build(dir, &BuildOptions::default());
        set_xattr(&f, "user.big", &vec![2u8; 32_741]).unwrap();
        assert!(build_from_dir(dir, &BuildOptions::default(), &NoProgress).is_err());
        return;
    }
    skip_even_in_ci(
        "xattr_limits_are_those_of_c",
        "no filesystem here takes a 40000-byte xattr: per-inode limit not tested",
    );
}

#[test]
fn hardlinks_become_separate_inodes_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir(dir.join("a")).unwrap();
    fs::write(dir.join("a/big"), pattern(5000)).unwrap();
    fs::hard_link(dir.join("a/big"), dir.join("z")).unwrap();
    fs::hard_link(dir.join("a/big"), dir.join("b")).unwrap();
    fs::write(dir.join("small"), b"tiny").unwrap();
    fs::hard_link(dir.join("small"), dir.join("small2")).unwrap();

    let tree = build(dir, &BuildOptions::default());
    let ids: Vec<InodeId> = ["a/big", "b", "z"]
        .iter()
        .map(|p| tree.resolve(p.as_bytes()).unwrap())
        .collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    for &id in &ids {
        assert_eq!(tree.inode(id).stat.nlink, 1);
        assert_eq!(
            regular(tree.inode(id)).digest,
            Some(sealroot_verity::sha256_digest(&pattern(5000)).into())
        );
    }
    assert!(names(&tree).iter().all(|n| !n.2));
    assert_eq!(
        regular(get(&tree, b"small2")).inline.as_deref(),
        Some(&b"tiny"[..])
    );
}

#[test]
fn hardlinks_kept_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir(dir.join("a")).unwrap();
    fs::write(dir.join("a/big"), pattern(5000)).unwrap();
    // Names listed before and after the first one in depth-first name order.
    fs::hard_link(dir.join("a/big"), dir.join("z")).unwrap();
    fs::hard_link(dir.join("a/big"), dir.join("b")).unwrap();
    fs::write(dir.join("small"), b"tiny").unwrap();
    fs::hard_link(dir.join("small"), dir.join("small2")).unwrap();
    std::os::unix::fs::symlink("target", dir.join("sym")).unwrap();
    fs::hard_link(dir.join("sym"), dir.join("sym2")).unwrap();
    fs::write(dir.join("single"), b"one").unwrap();

    let opts = BuildOptions {
        hardlinks: true,
        ..Default::default()
    };
    let tree = build(dir, &opts);
    let all = names(&tree);
    let entry = |p: &str| {
        all.iter()
            .find(|n| n.0 == format!("/{p}").as_bytes())
            .unwrap_or_else(|| panic!("{p}"))
    };
    // "/a/big" comes first in depth-first name order, so it owns the inode.
    let owner = entry("a/big");
    assert!(!owner.2);
    for p in ["b", "z"] {
        assert_eq!(entry(p).1, owner.1, "{p} names the same inode");
        assert!(entry(p).2, "{p} is a hard link");
    }
    let inode = tree.inode(owner.1);
    assert_eq!(inode.stat.nlink, 3);
    assert_eq!(
        regular(inode).digest,
        Some(sealroot_verity::sha256_digest(&pattern(5000)).into())
    );

    assert!(!entry("small").2 && entry("small2").2);
    assert_eq!(entry("small").1, entry("small2").1);
    assert_eq!(tree.inode(entry("small").1).stat.nlink, 2);
    assert_eq!(
        regular(tree.inode(entry("small").1)).inline.as_deref(),
        Some(&b"tiny"[..])
    );
    assert!(!entry("sym").2 && entry("sym2").2);
    assert_eq!(tree.inode(entry("sym").1).stat.nlink, 2);
    assert_eq!(tree.inode(entry("single").1).stat.nlink, 1);
    // One inode per file: root, a, big, small, sym, single.
    assert_eq!(tree.inodes.len(), 6);
}

/// Counts what is reported.
#[derive(Default)]
struct Counter {
    walk: Mutex<Option<(u64, u64, u64)>>,
    files: AtomicU64,
    bytes: AtomicU64,
    stored: AtomicU64,
    stored_bytes: AtomicU64,
}

impl Progress for Counter {
    fn walk_done(&self, n_inodes: u64, n_files: u64, n_bytes: u64) {
        *self.walk.lock().unwrap() = Some((n_inodes, n_files, n_bytes));
    }
    fn files_hashed(&self, n_files: u64, n_bytes: u64) {
        self.files.fetch_add(n_files, Ordering::Relaxed);
        self.bytes.fetch_add(n_bytes, Ordering::Relaxed);
    }
    fn objects_stored(&self, n_files: u64, n_bytes: u64) {
        self.stored.fetch_add(n_files, Ordering::Relaxed);
        self.stored_bytes.fetch_add(n_bytes, Ordering::Relaxed);
    }
}

/// Every file under `dir`, relative path → content.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(
                    e.path().strip_prefix(dir).unwrap().to_owned(),
                    fs::read(e.path()).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn digest_store() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    make_sized_files(&src);
    fs::create_dir(src.join("sub")).unwrap();
    // The same content twice is one object.
    fs::write(src.join("sub/copy"), pattern(4096)).unwrap();
    fs::hard_link(src.join("f65"), src.join("sub/hardlink")).unwrap();
    let store = tmp.path().join("store/nested");
    let opts = BuildOptions {
        digest_store: Some(store.clone()),
        ..Default::default()
    };

    let progress = Counter::default();
    let tree = build_from_dir(&src, &opts, &progress).unwrap();
    let objects = files_under(&store);
    let mut want = BTreeMap::new();
    for &n in SIZES.iter().filter(|&&n| n > 64) {
        let d = sealroot_verity::sha256_digest(&pattern(n));
        want.insert(PathBuf::from(d.object_path()), pattern(n));
        assert_eq!(
            regular(get(&tree, format!("f{n}").as_bytes()))
                .payload
                .as_deref(),
            Some(d.object_path().as_bytes())
        );
    }
    assert_eq!(
        objects, want,
        "one object per distinct non-inline content, nothing else"
    );
    let mut verity = Vec::new();
    for path in objects.keys() {
        let meta = fs::symlink_metadata(store.join(path)).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o644, "{}", path.display());
        assert_eq!(meta.nlink(), 1);
        let f = fs::File::open(store.join(path)).unwrap();
        verity.push(sealroot_sys::fsverity::is_verity_enabled(&f).unwrap());
    }
    // fs-verity is on every object where the filesystem supports it, on none elsewhere.
    if verity.iter().any(|&v| v) {
        assert!(verity.iter().all(|&v| v), "{verity:?}");
    } else {
        skip_even_in_ci(
            "digest_store",
            "no fs-verity on the temp directory's filesystem: objects have none",
        );
    }
    // Objects stored: at least one per distinct content; a race between two threads copying
    // the same content can count both (one of them finds the object in place).
    let stored = progress.stored.load(Ordering::Relaxed);
    assert!(
        (want.len() as u64..=want.len() as u64 + 2).contains(&stored),
        "{stored}"
    );

    // A second run finds everything in place and adds nothing.
    let inodes: BTreeMap<PathBuf, u64> = objects
        .keys()
        .map(|p| (p.clone(), fs::metadata(store.join(p)).unwrap().ino()))
        .collect();
    let progress = Counter::default();
    let again = build_from_dir(&src, &opts, &progress).unwrap();
    assert_eq!(again, tree);
    assert_eq!(progress.stored.load(Ordering::Relaxed), 0);
    assert_eq!(files_under(&store), want);
    for (p, ino) in inodes {
        assert_eq!(
            fs::metadata(store.join(&p)).unwrap().ino(),
            ino,
            "{} untouched",
            p.display()
        );
    }

    // No object without a payload (and, as in C, not even the store directory).
    let opts = BuildOptions {
        digest_store: Some(tmp.path().join("store2")),
        by_digest: false,
        ..Default::default()
    };
    build(&src, &opts);
    assert!(!tmp.path().join("store2").exists());
}

#[test]
fn progress_adds_up_and_threads_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_sized_files(dir);
    // More small files than the queue holds open at once.
    for i in 0..700 {
        fs::write(dir.join(format!("many{i}")), pattern(i * 37)).unwrap();
    }
    let progress = Counter::default();
    let one = build_from_dir(
        dir,
        &BuildOptions {
            threads: 1,
            ..Default::default()
        },
        &progress,
    )
    .unwrap();
    let (inodes, files, bytes) = progress.walk.lock().unwrap().unwrap();
    assert_eq!(inodes, one.inodes.len() as u64);
    assert_eq!(files, progress.files.load(Ordering::Relaxed));
    assert_eq!(bytes, progress.bytes.load(Ordering::Relaxed));
    let total: u64 =
        SIZES.iter().map(|&n| n as u64).sum::<u64>() + (0..700).map(|i| i * 37).sum::<u64>();
    assert_eq!(bytes, total);

    for threads in [2, 7] {
        let opts = BuildOptions {
            threads,
            ..Default::default()
        };
        assert_eq!(build(dir, &opts), one, "{threads} threads");
    }
}

#[test]
fn errors_name_the_path_and_operation() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let err = build_from_dir(&missing, &BuildOptions::default(), &NoProgress).unwrap_err();
    match &err {
        BuildError::Io { op, path, .. } => {
            assert_eq!(*op, Operation::Open);
            assert_eq!(path, &missing);
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "opening {}: No such file or directory (os error 2)",
            missing.display()
        )
    );

    let file = tmp.path().join("file");
    fs::write(&file, b"x").unwrap();
    assert!(matches!(
        build_from_dir(&file, &BuildOptions::default(), &NoProgress),
        Err(BuildError::NotADirectory { .. })
    ));
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(tmp.path(), &link).unwrap();
    assert!(matches!(
        build_from_dir(&link, &BuildOptions::default(), &NoProgress),
        Err(BuildError::NotADirectory { .. })
    ));

    let opts = BuildOptions {
        skip_xattrs: true,
        user_xattrs: true,
        ..Default::default()
    };
    assert!(matches!(
        build_from_dir(tmp.path(), &opts, &NoProgress),
        Err(BuildError::ConflictingOptions)
    ));

    if is_root() {
        // Root reads everything: the permission error is provoked by this test run again as
        // nobody, whose uid drops every capability.
        let exe = std::env::current_exe().expect("the test binary's path");
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&exe)
            .args(["errors_name_the_path_and_operation", "--exact"])
            .args(["--nocapture", "--test-threads=1"])
            .output()
            .expect("running setpriv (util-linux) to run the test as nobody");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("test result: ok. 1 passed"),
            "as nobody:\n{stdout}{stderr}"
        );
    } else {
        let locked = tmp.path().join("locked");
        fs::create_dir(&locked).unwrap();
        fs::create_dir(locked.join("inner")).unwrap();
        fs::set_permissions(locked.join("inner"), fs::Permissions::from_mode(0o000)).unwrap();
        let err = build_from_dir(&locked, &BuildOptions::default(), &NoProgress).unwrap_err();
        assert!(
            err.to_string()
                .contains(&*locked.join("inner").to_string_lossy()),
            "{err}"
        );
    }
}

/// `cfsctl` (composefs-rs), whose `mkcomposefs` writes images as C mkcomposefs does, if
/// installed: `$CFSCTL`, else on `PATH`, else in `~/.cargo/bin`.
fn cfsctl() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CFSCTL").map(PathBuf::from),
        Some(PathBuf::from("cfsctl")),
        std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin/cfsctl")),
    ];
    candidates.into_iter().flatten().find(|c| {
        std::process::Command::new(c)
            .args(["mkcomposefs", "--help"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Everything about a tree that an image records, path by path, in a form to compare: the
/// attributes, sorted xattrs and content of each name, and for a hard link the path of the
/// name owning its inode.
fn canonical(tree: &Tree) -> Vec<String> {
    let mut owner_of = BTreeMap::new();
    tree.walk(|p, e| {
        if !e.hardlink {
            owner_of.insert(e.inode, p.to_vec());
        }
    });
    let describe = |path: &[u8], id: InodeId, hardlink: bool| {
        let inode = tree.inode(id);
        let mut xattrs = inode.xattrs.clone();
        xattrs.sort();
        let mut stat = inode.stat.clone();
        let content = match &inode.content {
            Content::Regular(r) => format!("{r:?}"),
            other => {
                // Only regular files' sizes are recorded; the writer derives the others.
                stat.size = 0;
                match other {
                    Content::Directory(_) => "dir".to_string(),
                    _ => format!("{other:?}"),
                }
            }
        };
        let link = if hardlink {
            format!(" -> {:?}", String::from_utf8_lossy(&owner_of[&id]))
        } else {
            String::new()
        };
        format!(
            "{:?}{link} {stat:?} {xattrs:?} {content}",
            String::from_utf8_lossy(path)
        )
    };
    let mut out = vec![describe(b"/", InodeId::ROOT, false)];
    tree.walk(|p, e| out.push(describe(p, e.inode, e.hardlink)));
    out
}

/// A tree of every kind of file, with xattrs, odd names and hard links.
fn make_everything(dir: &Path) {
    make_sized_files(dir);
    fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    fs::write(dir.join("sub/deeper/file"), b"deep").unwrap();
    fs::set_permissions(
        dir.join("sub/deeper/file"),
        fs::Permissions::from_mode(0o4751),
    )
    .unwrap();
    std::os::unix::fs::symlink("sub/deeper/file", dir.join("link")).unwrap();
    rustix::fs::mkfifoat(CWD, dir.join("fifo"), Mode::from_raw_mode(0o640)).unwrap();
    drop(std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap());
    for name in [&b"new\nline"[..], b"\xff\xfe", &[b'n'; 255]] {
        fs::write(dir.join(OsStr::from_bytes(name)), name).unwrap();
    }
    fs::hard_link(dir.join("f4097"), dir.join("sub/hardlink")).unwrap();
    fs::hard_link(dir.join("f1"), dir.join("zz-small-link")).unwrap();
    set_mtime(&dir.join("sub/deeper/file"), 1_700_000_000, 123_456_789);
    set_xattr(&dir.join("f65"), "user.plain", b"value").unwrap();
    set_xattr(
        &dir.join("f65"),
        "user.binary",
        &(0..=255).collect::<Vec<u8>>(),
    )
    .unwrap();
    set_xattr(&dir.join("sub"), "security.sealroot", b"sec\0ret").ok();
    let _ = set_xattr(&dir.join("f4096"), "system.posix_acl_access", &acl_bytes());
    if is_root() {
        set_xattr(&dir.join("f65"), "trusted.overlay.opaque", b"y").unwrap();
        set_xattr(&dir.join("link"), "trusted.sym", b"1").unwrap();
        let dev = rustix::fs::makedev(300, 70_000);
        let t = rustix::fs::FileType::CharacterDevice;
        rustix::fs::mknodat(CWD, dir.join("chr"), t, Mode::from_raw_mode(0o600), dev).unwrap();
        let whiteout = rustix::fs::makedev(0, 0);
        rustix::fs::mknodat(CWD, dir.join("sub/wh"), t, Mode::empty(), whiteout).unwrap();
        std::os::unix::fs::chown(dir.join("sub"), Some(42), Some(43)).unwrap();
    }
    set_mtime(&dir.join("fifo"), -12_345, 678);
}

/// The same tree as composefs-rs builds: our tree equals the one read back from the image
/// `cfsctl mkcomposefs` writes of the same directory, under each option.
#[test]
fn matches_cfsctl_mkcomposefs() {
    let Some(cfsctl) = cfsctl() else {
        skip(
            "matches_cfsctl_mkcomposefs",
            "cfsctl not installed: no comparison with composefs-rs",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    make_everything(&src);
    let image = tmp.path().join("image");
    type Case = (&'static str, fn(&mut BuildOptions));
    let cases: [Case; 6] = [
        ("", |_| {}),
        ("--hardlinks", |o| o.hardlinks = true),
        ("--user-xattrs", |o| o.user_xattrs = true),
        ("--skip-xattrs", |o| o.skip_xattrs = true),
        ("--skip-devices", |o| o.skip_devices = true),
        ("--use-epoch", |o| o.use_epoch = true),
    ];
    for (flag, set) in cases {
        let mut cmd = std::process::Command::new(&cfsctl);
        cmd.arg("mkcomposefs");
        if !flag.is_empty() {
            cmd.arg(flag);
        }
        let out = cmd.arg(&src).arg(&image).output().unwrap();
        assert!(out.status.success(), "cfsctl {flag}: {out:?}");
        let theirs = sealroot_format::erofs::read(&fs::read(&image).unwrap()).unwrap();
        let mut opts = BuildOptions::default();
        set(&mut opts);
        let (ours, theirs) = (canonical(&build(&src, &opts)), canonical(&theirs));
        for line in ours.iter().filter(|l| !theirs.contains(l)) {
            eprintln!("with {flag:?} only ours:   {line}");
        }
        for line in theirs.iter().filter(|l| !ours.contains(l)) {
            eprintln!("with {flag:?} only theirs: {line}");
        }
        assert!(ours == theirs, "with {flag:?}, see above");
    }
}

/// With [`BuildOptions::algorithm`] sha512 (a composefs-rs sha512 repository), files get
/// sha512 digests, payloads of 128 hex digits, and a digest store of sha512 objects; an
/// object store of another algorithm is refused.
#[test]
fn sha512_digests_and_store() {
    use sealroot_verity::{digest, AnyDigest, HashAlgorithm, Params};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    make_sized_files(&src);
    let store = tmp.path().join("store");
    let opts = BuildOptions {
        algorithm: HashAlgorithm::Sha512,
        digest_store: Some(store.clone()),
        ..Default::default()
    };
    let tree = build(&src, &opts);
    let mut want = BTreeMap::new();
    for &n in SIZES.iter().filter(|&&n| n > 64) {
        let d = digest(&Params::composefs(HashAlgorithm::Sha512), &pattern(n));
        assert!(matches!(d, AnyDigest::Sha512(_)));
        let r = regular(get(&tree, format!("f{n}").as_bytes()));
        assert_eq!(r.digest, Some(d));
        assert_eq!(r.payload.as_deref(), Some(d.object_path().as_bytes()));
        assert_eq!(d.object_path().len(), 129);
        want.insert(PathBuf::from(d.object_path()), pattern(n));
    }
    assert_eq!(files_under(&store), want);
    // The same build with sha256 is the tree C mkcomposefs makes: other digests, same shape.
    let plain = build(&src, &BuildOptions::default());
    assert_eq!(plain.inodes.len(), tree.inodes.len());

    let objects = sealroot_objects::Store::new(
        &store,
        rustix::fs::open(
            &store,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap(),
        None,
        sealroot_objects::StoreOptions {
            algorithm: HashAlgorithm::Sha256,
            fallback: sealroot_objects::Fallback::Rename,
            sync_each: false,
            verity: sealroot_objects::VerityPolicy::Try,
            record: false,
        },
    );
    let opts = BuildOptions {
        algorithm: HashAlgorithm::Sha512,
        object_store: Some(std::sync::Arc::new(objects)),
        ..Default::default()
    };
    let r = build_from_dir(&src, &opts, &NoProgress);
    assert!(
        matches!(r, Err(BuildError::AlgorithmMismatch { .. })),
        "{r:?}"
    );
}
