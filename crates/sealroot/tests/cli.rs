//! The `sealroot` binary as users and scripts meet it: the C tools' command lines, their output,
//! their errors, and real mounts of what they build.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use sealroot_format::{dumpfile, Content, InodeId, Tree, S_IFCHR, S_IFDIR, S_IFMT, S_IFREG};
use sealroot_testkit::{assert_same, mount_test, pattern, scratch, Entry, Fields, Snapshot};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_sealroot");
const TMP: &str = env!("CARGO_TARGET_TMPDIR");

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = stdin.map(|s| s.to_vec());
    let mut pipe = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        if let Some(data) = input {
            let _ = pipe.write_all(&data);
        }
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

fn ok(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let out = run(args, stdin);
    assert!(
        out.status.success(),
        "sealroot {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn fails(args: &[&str], stdin: Option<&[u8]>) -> String {
    let out = run(args, stdin);
    assert!(
        !out.status.success(),
        "sealroot {args:?} should have failed"
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !err.trim().is_empty(),
        "sealroot {args:?} failed without a message"
    );
    let tool = args.first().copied().unwrap_or("sealroot");
    assert!(
        err.starts_with(&format!("{tool}: ")) || err.starts_with("sealroot: "),
        "the message starts with the tool's name: {err}"
    );
    err
}

/// (name, dumpfile bytes, version flags, expected image sha256) of each checksum vector.
fn vectors() -> Vec<(String, Vec<u8>, Vec<String>, String)> {
    use sealroot_testkit::vectors;
    vectors::checksums()
        .into_iter()
        .map(|(name, sha)| {
            let dump = vectors::load(&name);
            let flags = vectors::version_flags(&name);
            (name, dump, flags, sha)
        })
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn mkcomposefs_from_dumpfiles_matches_c_and_dump_round_trips() {
    let tmp = scratch(TMP, "cli-vectors-");
    for (name, dump, flags, sha) in vectors() {
        let img = tmp.path().join(format!("{name}.img"));
        let img_s = img.to_str().unwrap();
        let mut args: Vec<&str> = vec!["mkcomposefs"];
        args.extend(flags.iter().map(String::as_str));
        args.extend(["--print-digest", "--from-file", "-", img_s]);
        let printed = ok(&args, Some(&dump));
        let image = fs::read(&img).unwrap();
        assert_eq!(
            sha256_hex(&image),
            sha,
            "{name}: image differs from C mkcomposefs"
        );
        let digest = sealroot_verity::sha256_digest(&image);
        assert_eq!(
            String::from_utf8(printed).unwrap(),
            format!("{digest}\n"),
            "{name}: --print-digest"
        );

        // composefs-info dump | mkcomposefs --from-file - gives the same image again.
        let dumped = ok(&["composefs-info", "dump", img_s], None);
        let img2 = tmp.path().join(format!("{name}.2.img"));
        let mut args: Vec<&str> = vec!["mkcomposefs"];
        args.extend(flags.iter().map(String::as_str));
        args.extend(["--from-file", "-", img2.to_str().unwrap()]);
        ok(&args, Some(&dumped));
        assert!(
            fs::read(&img2).unwrap() == image,
            "{name}: dump is not reproducible"
        );
    }
}

#[test]
fn print_digest_only_and_stdout_image() {
    let tmp = scratch(TMP, "cli-stdout-");
    let (_, dump, flags, sha) = vectors()
        .into_iter()
        .find(|v| v.0 == "special.dump")
        .unwrap();
    let mut args: Vec<&str> = vec!["mkcomposefs"];
    args.extend(flags.iter().map(String::as_str));
    let image = ok(
        &[&args[..], &["--from-file", "-", "-"]].concat(),
        Some(&dump),
    );
    assert_eq!(sha256_hex(&image), sha);
    let only = ok(
        &[&args[..], &["--print-digest-only", "--from-file", "-"]].concat(),
        Some(&dump),
    );
    assert_eq!(
        String::from_utf8(only).unwrap(),
        format!("{}\n", sealroot_verity::sha256_digest(&image))
    );
    // Also through the C tool's name.
    let link = tmp.path().join("mkcomposefs");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let out = Command::new(&link)
        .args(&flags)
        .args(["--from-file", "-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(&dump)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout == image,
        "mkcomposefs by its own name writes the same image"
    );
}

#[test]
fn bad_input_fails_clearly_and_leaves_nothing() {
    let tmp = scratch(TMP, "cli-errors-");
    let t = tmp.path();
    let img = t.join("out.img");
    let img_s = img.to_str().unwrap();

    let err = fails(&["mkcomposefs", "/nonexistent/source", img_s], None);
    assert!(
        err.contains("/nonexistent/source"),
        "names the source: {err}"
    );
    assert!(!img.exists());

    let bad = t.join("bad.dump");
    fs::write(
        &bad,
        b"/ 4096 40755 2 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 notatime - - -\n",
    )
    .unwrap();
    let err = fails(
        &["mkcomposefs", "--from-file", bad.to_str().unwrap(), img_s],
        None,
    );
    assert!(
        err.contains("bad.dump") && err.contains("line 2"),
        "names the file and line: {err}"
    );
    assert!(!img.exists(), "no partial image");

    // An existing image is left as it was when a new build fails.
    fs::write(&img, b"previous").unwrap();
    fails(
        &["mkcomposefs", "--from-file", bad.to_str().unwrap(), img_s],
        None,
    );
    assert_eq!(fs::read(&img).unwrap(), b"previous");
    let leftovers: Vec<_> = fs::read_dir(t)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "no temporary files left: {leftovers:?}");

    let err = fails(&["mkcomposefs", "--min-version=x", "src", img_s], None);
    assert!(err.contains("Invalid min version x"), "{err}");
    fails(&["mkcomposefs", "--bogus", "src", img_s], None);
    fails(&["mkcomposefs", "src"], None);
    fails(&["mkcomposefs", "--print-digest-only", "src", img_s], None);
    let err = fails(
        &[
            "mkcomposefs",
            "--from-file",
            bad.to_str().unwrap(),
            "/nonexistent/dir/x.img",
        ],
        None,
    );
    assert!(!err.is_empty());

    let notimg = t.join("not-an-image");
    fs::write(&notimg, pattern(1, 8192)).unwrap();
    let err = fails(&["composefs-info", "dump", notimg.to_str().unwrap()], None);
    assert!(
        err.contains("not-an-image") && err.contains("not a composefs image"),
        "{err}"
    );
    let err = fails(
        &["composefs-info", "frobnicate", notimg.to_str().unwrap()],
        None,
    );
    assert!(err.contains("Unknown command"), "{err}");
    let err = fails(&["frobnicate"], None);
    assert!(err.contains("unknown command"), "{err}");
    let err = fails(&["mount.composefs", "-o", "bogus", "a", "b"], None);
    assert!(err.to_lowercase().contains("bogus"), "{err}");
}

fn mounted(path: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.to_str().unwrap();
    info.lines().any(|l| l.split(' ').nth(4) == Some(p))
}

mount_test! {
    /// A real tree -> image with a digest store -> mount.composefs: the mounted tree is the
    /// source, contents included (hard links become separate inodes, as with C mkcomposefs).
    fn real_tree_mounts_identical_to_source() {
        let tmp = scratch(TMP, "cli-tree-");
        let t = tmp.path();
        let src = t.join("src");
        sealroot_testkit::rich_tree(&src, 200);
        let (objects, img, mnt) = (t.join("objects"), t.join("image.cfs"), t.join("mnt"));
        fs::create_dir(&mnt).unwrap();
        ok(&["mkcomposefs", &format!("--digest-store={}", objects.display()), src.to_str().unwrap(), img.to_str().unwrap()], None);
        // -f (mount(8)'s "fake"): the options are checked, nothing is mounted.
        ok(&["mount.composefs", "-f", "-o", &format!("basedir={},ro", objects.display()), img.to_str().unwrap(), mnt.to_str().unwrap()], None);
        assert!(!mounted(&mnt), "-f mounted something");
        fails(&["mount.composefs", "-f", "-o", "basedir=/x,idmap", img.to_str().unwrap(), mnt.to_str().unwrap()], None);
        ok(&["mount.composefs", "-f", "-o", "basedir=/x,idmap=/proc/1/ns/user", img.to_str().unwrap(), mnt.to_str().unwrap()], None);
        // A bad idmap is named, and nothing is mounted.
        let err = fails(&["mount.composefs", "-o", &format!("basedir={},idmap={}", objects.display(), img.display()), img.to_str().unwrap(), mnt.to_str().unwrap()], None);
        assert!(err.contains(&format!("idmap {} is not a namespace file", img.display())), "{err}");
        assert!(!mounted(&mnt), "a bad idmap mounted something");
        ok(&["mount.composefs", "-o", &format!("basedir={},ro", objects.display()), img.to_str().unwrap(), mnt.to_str().unwrap()], None);
        assert!(mounted(&mnt));
        let fields = Fields { content: true, nlink: false, dir_nlink: true };
        assert_same(&Snapshot::of_dir(&src, fields), &Snapshot::of_dir(&mnt, fields));

        // The object list is exactly the store's content, none missing.
        let listed = ok(&["composefs-info", "objects", img.to_str().unwrap()], None);
        let n_listed = listed.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
        let n_stored = walkdir_files(&objects);
        assert_eq!(n_listed, n_stored);
        let missing = ok(&["composefs-info", &format!("--basedir={}", objects.display()), "missing-objects", img.to_str().unwrap()], None);
        assert!(missing.is_empty(), "nothing missing");

        // --hardlinks keeps hard links shared: link counts then match the source too.
        let (img2, mnt2) = (t.join("image2.cfs"), t.join("mnt2"));
        fs::create_dir(&mnt2).unwrap();
        ok(&["mkcomposefs", "--hardlinks", src.to_str().unwrap(), img2.to_str().unwrap()], None);
        ok(&["mount.composefs", "-o", &format!("basedir={}", objects.display()), img2.to_str().unwrap(), mnt2.to_str().unwrap()], None);
        let fields = Fields { content: true, nlink: true, dir_nlink: true };
        assert_same(&Snapshot::of_dir(&src, fields), &Snapshot::of_dir(&mnt2, fields));
    }
}

fn walkdir_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            n += walkdir_files(&e.path());
        } else {
            n += 1;
        }
    }
    n
}

mount_test! {
    /// verity=require on a kernel or filesystem without fs-verity: external files read as EIO
    /// (as overlayfs documents), inline ones still read; a wrong digest= is refused before
    /// anything is mounted, the right one mounts.
    fn verity_and_digest_checks() {
        let tmp = scratch(TMP, "cli-verity-");
        let t = tmp.path();
        let src = t.join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("small"), b"inline\n").unwrap();
        fs::write(src.join("large"), pattern(3, 100_000)).unwrap();
        let (objects, img, mnt) = (t.join("objects"), t.join("image.cfs"), t.join("mnt"));
        fs::create_dir(&mnt).unwrap();
        let digest = ok(&["mkcomposefs", "--print-digest", &format!("--digest-store={}", objects.display()), src.to_str().unwrap(), img.to_str().unwrap()], None);
        let digest = String::from_utf8(digest).unwrap().trim().to_owned();

        let wrong = "0".repeat(64);
        let err = fails(&["mount.composefs", "-o", &format!("basedir={},digest={wrong}", objects.display()), img.to_str().unwrap(), mnt.to_str().unwrap()], None);
        assert!(err.contains(&wrong) && err.contains(&digest), "names both digests: {err}");
        assert!(!mounted(&mnt), "nothing mounted after a wrong digest");

        ok(&["mount.composefs", "-o", &format!("basedir={},verity", objects.display()), img.to_str().unwrap(), mnt.to_str().unwrap()], None);
        assert_eq!(fs::read(mnt.join("small")).unwrap(), b"inline\n");
        let e = fs::read(mnt.join("large")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(rustix::io::Errno::IO.raw_os_error()), "EIO, got {e}");
        rustix::mount::unmount(&mnt, rustix::mount::UnmountFlags::empty()).unwrap();

        ok(&["mount.composefs", "-o", &format!("basedir={},digest={digest},noverity", objects.display()), img.to_str().unwrap(), mnt.to_str().unwrap()], None);
        assert_eq!(fs::read(mnt.join("large")).unwrap(), pattern(3, 100_000));
    }
}

/// What the kernel's erofs driver should show for the image of the tree a dumpfile
/// describes: the tree with composefs's overlayfs encoding applied, restated here from the
/// format's documentation (independently of the writer): escaped `trusted.overlay.*`,
/// metacopy and redirect on external files, whiteouts as marked empty files, the root opaque
/// with whiteouts `00`..`ff`, directory link counts 2 + subdirectories.
fn expected_erofs_view(tree: &Tree, version: u32) -> Snapshot {
    fn kernel_rdev(r: u32) -> u64 {
        let major = (r & 0xfff00) >> 8;
        let minor = (r & 0xff) | ((r >> 12) & 0xfff00);
        rustix::fs::makedev(major, minor)
    }
    fn is_whiteout(tree: &Tree, id: InodeId) -> bool {
        let s = &tree.inode(id).stat;
        s.mode & S_IFMT == S_IFCHR && s.rdev == 0
    }
    fn go(
        tree: &Tree,
        id: InodeId,
        rel: Vec<u8>,
        version: u32,
        out: &mut BTreeMap<Vec<u8>, Entry>,
    ) {
        let inode = tree.inode(id);
        let s = &inode.stat;
        let mut mode = s.mode & 0xffff;
        let mut xattrs: BTreeMap<Vec<u8>, Vec<u8>> = inode
            .xattrs
            .iter()
            .map(|x| match x.name.strip_prefix(b"trusted.overlay.") {
                Some(rest) => (
                    [&b"trusted.overlay.overlay."[..], rest].concat(),
                    x.value.clone(),
                ),
                None => (x.name.clone(), x.value.clone()),
            })
            .collect();
        let mut size = match &inode.content {
            Content::Regular(f) => Some(
                f.inline
                    .as_ref()
                    .filter(|c| !c.is_empty())
                    .map_or(s.size, |c| c.len() as u64),
            ),
            Content::Symlink(t) => Some(t.len() as u64),
            _ => None,
        };
        if let Content::Regular(f) = &inode.content {
            if f.inline.as_ref().is_none_or(|c| c.is_empty()) && s.size > 0 {
                let meta = match f.digest {
                    Some(d) => [&[0u8, 36, 0, 1][..], d.as_bytes()].concat(),
                    None => vec![],
                };
                xattrs.insert(b"trusted.overlay.metacopy".to_vec(), meta);
                if let Some(p) = f.payload.as_ref().filter(|p| !p.is_empty()) {
                    xattrs.insert(
                        b"trusted.overlay.redirect".to_vec(),
                        [&b"/"[..], p].concat(),
                    );
                }
            }
        }
        if is_whiteout(tree, id) {
            mode = S_IFREG | (mode & !S_IFMT);
            size = Some(0);
            xattrs.insert(b"trusted.overlay.overlay.whiteout".to_vec(), vec![]);
            xattrs.insert(b"user.overlay.whiteout".to_vec(), vec![]);
        }
        let mut nlink = Some(u64::from(s.nlink));
        if let Content::Directory(entries) = &inode.content {
            let subdirs = entries
                .iter()
                .filter(|e| !e.hardlink && tree.inode(e.inode).stat.mode & S_IFMT == S_IFDIR)
                .count();
            nlink = Some(2 + subdirs as u64);
            if entries
                .iter()
                .any(|e| !e.hardlink && is_whiteout(tree, e.inode))
            {
                xattrs.insert(b"trusted.overlay.overlay.whiteouts".to_vec(), vec![]);
                xattrs.insert(b"user.overlay.whiteouts".to_vec(), vec![]);
                if version >= 1 {
                    xattrs.insert(b"trusted.overlay.overlay.opaque".to_vec(), b"x".to_vec());
                    xattrs.insert(b"user.overlay.opaque".to_vec(), b"x".to_vec());
                }
            }
            if id == InodeId::ROOT {
                xattrs.insert(b"trusted.overlay.opaque".to_vec(), b"y".to_vec());
                for i in 0..=255u8 {
                    let name = format!("{i:02x}").into_bytes();
                    if entries.iter().any(|e| e.name == name) {
                        continue;
                    }
                    let selinux: BTreeMap<_, _> = inode
                        .xattrs
                        .iter()
                        .filter(|x| x.name == b"security.selinux")
                        .map(|x| (x.name.clone(), x.value.clone()))
                        .collect();
                    out.insert(
                        name,
                        Entry {
                            mode: S_IFCHR | 0o644,
                            uid: s.uid,
                            gid: s.gid,
                            size: None,
                            mtime: (s.mtime.sec, i64::from(s.mtime.nsec)),
                            nlink: Some(1),
                            rdev: 0,
                            target: None,
                            xattrs: selinux
                                .into_iter()
                                .map(|(k, v)| {
                                    if k.starts_with(b"user.") {
                                        (k, sealroot_testkit::UNREADABLE.to_vec())
                                    } else {
                                        (k, v)
                                    }
                                })
                                .collect(),
                            content: None,
                        },
                    );
                }
            }
        }
        let is_dev = matches!(mode & S_IFMT, 0o020000 | 0o060000);
        for (k, v) in xattrs.iter_mut() {
            let valid_acl = v.len() >= 4 && (v.len() - 4) % 8 == 0 && v[..4] == [2, 0, 0, 0];
            if k.starts_with(b"system.posix_acl_") && !valid_acl {
                *v = sealroot_testkit::INVALID_ACL.to_vec();
            }
        }
        if !matches!(mode & S_IFMT, S_IFREG | S_IFDIR) {
            for (k, v) in xattrs.iter_mut() {
                if k.starts_with(b"user.") {
                    *v = sealroot_testkit::UNREADABLE.to_vec();
                }
            }
        }
        out.insert(
            rel.clone(),
            Entry {
                mode,
                uid: s.uid,
                gid: s.gid,
                size,
                mtime: (s.mtime.sec, i64::from(s.mtime.nsec)),
                nlink,
                rdev: if is_dev { kernel_rdev(s.rdev) } else { 0 },
                target: match &inode.content {
                    Content::Symlink(t) => Some(t.clone()),
                    _ => None,
                },
                xattrs,
                content: None,
            },
        );
        if let Content::Directory(entries) = &inode.content {
            for e in entries {
                let mut child = rel.clone();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(&e.name);
                go(tree, e.inode, child, version, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    go(tree, InodeId::ROOT, Vec::new(), version, &mut out);
    Snapshot(out)
}

mount_test! {
    /// Every conformance-vector image, mounted as erofs by the kernel: what it shows (names,
    /// types, modes, owners, sizes, mtimes, link counts, device numbers, symlink targets,
    /// xattrs) is what the dumpfile says, in composefs's encoding.
    fn vector_images_mount_as_their_dumpfiles_say() {
        let tmp = scratch(TMP, "cli-vmount-");
        let t = tmp.path();
        for (name, dump, flags, _) in vectors() {
            let img = t.join(format!("{name}.img"));
            let mut args: Vec<&str> = vec!["mkcomposefs"];
            args.extend(flags.iter().map(String::as_str));
            args.extend(["--from-file", "-", img.to_str().unwrap()]);
            ok(&args, Some(&dump));
            let version = sealroot_format::erofs::read_superblock(&fs::read(&img).unwrap())
                .unwrap()
                .composefs_version;
            let mnt = t.join(format!("{name}.mnt"));
            fs::create_dir(&mnt).unwrap();
            sealroot_testkit::mount_erofs(&img, &mnt).unwrap();
            let tree = dumpfile::parse_compat(&dump).unwrap();
            let want = expected_erofs_view(&tree, version);
            let got = Snapshot::of_dir(&mnt, Fields { content: false, nlink: true, dir_nlink: true });
            assert_same(&want, &got);
            eprintln!("{name}: {} entries match", want.0.len());
        }
    }
}

/// `mkcomposefs --from-file` reads as C does: out-of-range numbers wrap (the image C writes,
/// its sha256 computed with C 1.0.8 and pinned) unless `CFS_PARSE_STRICT` is set, which
/// refuses them and C's four strict checks with an error naming the line and field.
#[test]
fn mkcomposefs_honours_cfs_parse_strict() {
    let dir = scratch(TMP, "strict-");
    let root = "/ 4096 40755 2 0 0 0 1700000000.0 - - -\n";
    let cases = [
        (
            format!("{root}/f 0 100644 4294967297 0 0 0 1700000000.0 - - -\n"),
            Some("84deb63bc332294b7264f78e691dea4107e7287eda532303289bf5c0fa952557"),
            "NLINK field",
        ),
        (
            format!("{root}/f 0 100644 1 0 0 0 1700000000.1000000000 - - -\n"),
            Some("036f90632f6f283a336cd872240284704bf5cb9ed68698f7322f8fbca464b0db"),
            "MTIME field",
        ),
        // C's own strict checks.
        (
            format!("{root}/l 5 120777 1 0 0 0 1700000000.0 t - -\n"),
            None,
            "invalid symlink size",
        ),
        (
            format!("{root}/f 0 100644 1 0 0 7 1700000000.0 - - -\n"),
            None,
            "non-zero devnum",
        ),
        (
            format!("{root}/l 1 120777 1 0 0 0 1700000000.0 t x -\n"),
            None,
            "symlink cannot have content",
        ),
        (
            format!("{root}/f 0 100644 1 0 0 0 1700000000.0 - - -"),
            None,
            "missing trailing newline",
        ),
    ];
    for (i, (input, c_sha256, problem)) in cases.iter().enumerate() {
        let dump = dir.path().join(format!("case-{i}.dump"));
        let image = dir.path().join(format!("case-{i}.img"));
        fs::write(&dump, input).unwrap();
        let (dump, image) = (dump.to_str().unwrap(), image.to_str().unwrap());
        ok(&["mkcomposefs", "--from-file", dump, image], None);
        if let Some(sha) = c_sha256 {
            let got = Sha256::digest(fs::read(image).unwrap());
            let got: String = got.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(&got, sha, "case {i}: not the image C writes");
        }
        fs::remove_file(image).unwrap();
        let out = Command::new(BIN)
            .args(["mkcomposefs", "--from-file", dump, image])
            .env("CFS_PARSE_STRICT", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i}: strict parsing took it");
        assert!(err.contains(problem), "case {i}: {err}");
        assert!(!Path::new(image).exists(), "case {i}: an image was left");
    }
}

/// Man pages and completions come from the command definitions: one page per command, and
/// scripts that name the commands.
#[test]
fn man_pages_and_completions_are_made_from_the_commands() {
    let tmp = sealroot_testkit::scratch(TMP, "man-");
    let dir = tmp.path().join("man1");
    let out = Command::new(BIN)
        .args(["man", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "sealroot.1",
        "sealroot-commit.1",
        "sealroot-verify.1",
        "sealroot-gc.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}: not a man page");
    }
    assert!(std::fs::read_to_string(dir.join("sealroot-commit.1"))
        .unwrap()
        .contains("parent"));
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("commit") && text.contains("verify"),
            "{shell}"
        );
    }
}
