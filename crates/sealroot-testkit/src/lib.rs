//! Test support shared by sealroot's integration tests.
//!
//! # Private mount namespaces
//!
//! A test that mounts runs in a mount namespace of its own: [`in_private_namespace`]
//! re-executes the current test binary as `unshare --mount --propagation private -- <binary>
//! <test> --exact`, with an environment variable telling the child it is the inside run. Every
//! mount the child makes vanishes when it exits, even after a panic, and nothing reaches the host
//! or the tests running beside it. Re-executing matters: the harness is multi-threaded and a new
//! mount namespace would only apply to one thread. Without root the test [`skip`]s.
//!
//! # Skipping
//!
//! A test that cannot run here (no root, a tool missing) calls [`skip`] and returns: it prints
//! `SKIPPED: <test>: <reason>` on stdout and stderr, appends the line to the file named by
//! `SEALROOT_SKIP_LOG` (`scripts/test.sh` counts them: the harness captures a passing test's
//! output and counts it as passed), and panics when `SEALROOT_REQUIRE_ALL=1`, as CI sets it where
//! everything the tests need is installed. What neither a package nor root gives (a kernel or
//! filesystem feature) skips with [`skip_even_in_ci`], which that variable does not refuse.
//!
//! # Trees
//!
//! [`Snapshot::of_dir`] records what the kernel shows for a directory tree (names, types,
//! modes, owners, sizes, mtimes, link counts, device numbers, symlink targets, xattrs, and a hash
//! of file contents); two snapshots are compared with [`assert_same`], naming the first path and
//! field that differ.
//!
//! # Randomness
//!
//! [`Rng`] is the one seeded generator the tests share.
#![forbid(unsafe_code)]

mod rng;
pub use rng::Rng;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

mod untouched;
pub use untouched::{swap_for_symlink, Untouched};

/// The environment variable that marks the inside run, holding the test's name.
pub const INSIDE: &str = "SEALROOT_TEST_INSIDE_NAMESPACE";

/// Whether the tests run as root (and so may mount).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The environment variable naming a file that every [`skip`] appends its line to.
pub const SKIP_LOG: &str = "SEALROOT_SKIP_LOG";

/// The environment variable that, set to `1`, makes every [`skip`] fail its test instead.
pub const REQUIRE_ALL: &str = "SEALROOT_REQUIRE_ALL";

/// Reports that test `test` (its function's name) skips, wholly or in part, for `reason`; the
/// caller then returns (or leaves out the part). Prints `SKIPPED: {test}: {reason}` on stdout
/// and stderr, appends that line to the file named by [`SKIP_LOG`] if set (one `O_APPEND`
/// write, so lines from tests running in parallel do not mix), and panics if [`REQUIRE_ALL`] is
/// `1`: where everything is installed and the tests run as root (CI), a skip is a failure.
pub fn skip(test: &str, reason: &str) {
    let line = report_skip(test, reason);
    if std::env::var_os(REQUIRE_ALL).is_some_and(|v| v == "1") {
        panic!("{line}: {REQUIRE_ALL}=1 says {test} must not be skipped here");
    }
}

/// Like [`skip`], but allowed even when [`REQUIRE_ALL`] is `1`: for what neither root nor a
/// package gives, a feature of this machine's kernel or of the filesystem the test writes to
/// (fs-verity on the temporary directory's filesystem, which the VM tests of `scripts/vmtest.sh`
/// check instead; xattr values over 32 KiB). Printed, logged and counted the same.
pub fn skip_even_in_ci(test: &str, reason: &str) {
    report_skip(
        test,
        &format!("{reason} (a kernel or filesystem feature: allowed in CI)"),
    );
}

/// Prints and logs the line of a skip, and returns it.
fn report_skip(test: &str, reason: &str) -> String {
    // One line whatever the reason holds: scripts/test.sh counts lines.
    let line = format!("SKIPPED: {test}: {reason}").replace(['\n', '\r'], " ");
    println!("{line}");
    // Straight to the stream, not eprintln!: the harness captures the print! family of a test
    // that passes, and this line must show in every run.
    let _ = writeln!(std::io::stderr(), "{line}");
    if let Some(log) = std::env::var_os(SKIP_LOG).filter(|p| !p.is_empty()) {
        let written = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            panic!(
                "{line}: cannot append to {SKIP_LOG}={}: {e}",
                log.to_string_lossy()
            );
        }
    }
    line
}

/// Runs `body` in a private mount namespace (see the crate docs). `name` must be the test
/// function's name as the harness knows it (`stringify!` of it, without module path when the
/// test is at the top of its file).
pub fn in_private_namespace(name: &str, body: impl FnOnce()) {
    if std::env::var_os(INSIDE).is_some_and(|v| v == name) {
        body();
        return;
    }
    if !is_root() {
        skip(name, "needs root: it mounts filesystems");
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, name)
        .output()
        .expect("running unshare (util-linux) to get a private mount namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- {name} in its own mount namespace ---\n{stdout}{stderr}");
    assert!(out.status.success(), "{name} failed inside its namespace");
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{name} did not run exactly one test inside its namespace"
    );
}

/// Declares a `#[test]` whose body runs in its own mount namespace.
#[macro_export]
macro_rules! mount_test {
    ($(#[doc = $doc:expr])* fn $name:ident() $body:block) => {
        $(#[doc = $doc])*
        #[test]
        fn $name() {
            $crate::in_private_namespace(stringify!($name), || $body);
        }
    };
}

/// A scratch directory under `base` (pass `env!("CARGO_TARGET_TMPDIR")`: erofs cannot mount a
/// file that lives on tmpfs, which `/tmp` may be).
pub fn scratch(base: &str, prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .expect("a scratch directory")
}

/// A byte pattern that differs from seed to seed and is not all zeroes.
pub fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(12345) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The value [`xattrs`] records for an xattr the kernel lists but will not read (`user.*` on
/// anything but regular files and directories gives `ENODATA`).
pub const UNREADABLE: &[u8] = b"\0(listed, unreadable)";

/// The value [`xattrs`] records for a POSIX ACL xattr the kernel will not decode (`EINVAL`).
pub const INVALID_ACL: &[u8] = b"\0(invalid ACL)";

/// The xattrs of `path` (not following a symlink), by name.
pub fn xattrs(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut names[..]).expect("listxattr");
    let mut out = BTreeMap::new();
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let cname = std::ffi::OsStr::from_bytes(name);
        let mut value = vec![0u8; 65536];
        let len = match rustix::fs::lgetxattr(path, cname, &mut value[..]) {
            Ok(len) => len,
            // The kernel lists user.* xattrs of symlinks and devices but refuses to read them.
            Err(rustix::io::Errno::NODATA) => {
                out.insert(name.to_vec(), UNREADABLE.to_vec());
                continue;
            }
            // A POSIX ACL xattr whose value is not a valid ACL.
            Err(rustix::io::Errno::INVAL) => {
                out.insert(name.to_vec(), INVALID_ACL.to_vec());
                continue;
            }
            Err(e) => panic!(
                "getxattr {} of {}: {e}",
                String::from_utf8_lossy(name),
                path.display()
            ),
        };
        value.truncate(len);
        out.insert(name.to_vec(), value);
    }
    out
}

/// What the kernel shows of one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `st_mode` (type and permissions).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size of regular files and symlinks (None for others: directory sizes are the
    /// filesystem's own business).
    pub size: Option<u64>,
    /// Modification time.
    pub mtime: (i64, i64),
    /// Link count (None when not compared).
    pub nlink: Option<u64>,
    /// Device number of devices.
    pub rdev: u64,
    /// Symlink target.
    pub target: Option<Vec<u8>>,
    /// xattrs.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// sha256-free content fingerprint of regular files (a 64-bit FNV-1a hash and the length),
    /// when contents are compared.
    pub content: Option<(u64, u64)>,
}

/// Which fields [`Snapshot::of_dir`] records.
#[derive(Clone, Copy, Debug)]
pub struct Fields {
    /// Read regular files' contents.
    pub content: bool,
    /// Record link counts of non-directories.
    pub nlink: bool,
    /// Record directory link counts.
    pub dir_nlink: bool,
}

/// A whole tree as the kernel shows it, by path relative to the root (`""` is the root).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Snapshot(pub BTreeMap<Vec<u8>, Entry>);

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Snapshot {
    /// Walks `root` (not following symlinks) and records `fields`.
    pub fn of_dir(root: &Path, fields: Fields) -> Snapshot {
        let mut out = BTreeMap::new();
        fn go(root: &Path, rel: &[u8], fields: Fields, out: &mut BTreeMap<Vec<u8>, Entry>) {
            let path = if rel.is_empty() {
                root.to_path_buf()
            } else {
                root.join(std::ffi::OsStr::from_bytes(rel))
            };
            let md =
                fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let ft = md.file_type();
            let entry = Entry {
                mode: md.mode(),
                uid: md.uid(),
                gid: md.gid(),
                size: (ft.is_file() || ft.is_symlink()).then_some(md.size()),
                mtime: (md.mtime(), md.mtime_nsec()),
                nlink: if ft.is_dir() {
                    fields.dir_nlink
                } else {
                    fields.nlink
                }
                .then_some(md.nlink()),
                rdev: md.rdev(),
                target: ft.is_symlink().then(|| {
                    fs::read_link(&path)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec()
                }),
                xattrs: xattrs(&path),
                content: (fields.content && ft.is_file()).then(|| {
                    let data = fs::read(&path)
                        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                    (fnv1a(&data), data.len() as u64)
                }),
            };
            out.insert(rel.to_vec(), entry);
            if ft.is_dir() {
                let mut names: Vec<OsString> = fs::read_dir(&path)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                names.sort();
                for name in names {
                    let mut child = rel.to_vec();
                    if !child.is_empty() {
                        child.push(b'/');
                    }
                    child.extend_from_slice(name.as_bytes());
                    go(root, &child, fields, out);
                }
            }
        }
        go(root, b"", fields, &mut out);
        Snapshot(out)
    }
}

/// Asserts two snapshots are equal, naming the first path and field that differ.
pub fn assert_same(want: &Snapshot, got: &Snapshot) {
    for (path, w) in &want.0 {
        let shown = String::from_utf8_lossy(path);
        let Some(g) = got.0.get(path) else {
            panic!("missing in the mounted tree: /{shown}");
        };
        let fields: [(&str, bool); 10] = [
            ("mode", w.mode == g.mode),
            ("owner", (w.uid, w.gid) == (g.uid, g.gid)),
            ("size", w.size == g.size),
            ("mtime", w.mtime == g.mtime),
            ("nlink", w.nlink == g.nlink),
            ("rdev", w.rdev == g.rdev),
            ("symlink target", w.target == g.target),
            ("xattrs", w.xattrs == g.xattrs),
            ("content", w.content == g.content),
            ("all", w == g),
        ];
        for (name, same) in fields {
            assert!(same, "/{shown}: {name} differs:\n want {w:?}\n got  {g:?}");
        }
    }
    if let Some(extra) = got.0.keys().find(|k| !want.0.contains_key(*k)) {
        panic!(
            "extra in the mounted tree: /{}",
            String::from_utf8_lossy(extra)
        );
    }
}

/// Makes the parent directories of `path` and returns it.
pub fn under(root: &Path, rel: &str) -> PathBuf {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    p
}

/// Mounts the EROFS image file `image` read-only at `target` with the new mount API (no loop
/// device, no overlayfs): what the kernel's erofs driver itself makes of the image.
pub fn mount_erofs(image: &Path, target: &Path) -> std::io::Result<()> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags,
        FsOpenFlags, MountAttrFlags, MoveMountFlags,
    };
    let fs = fsopen("erofs", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(&fs, "source", image)?;
    fsconfig_create(&fs)?;
    let mnt = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY,
    )?;
    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

/// The C composefs conformance vectors (`tests/vectors/composefs-c` in the repository).
pub mod vectors {
    use std::io::Read;
    use std::path::{Path, PathBuf};

    /// The directory holding the vectors.
    pub fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/composefs-c")
    }

    /// Vector `name`, decompressed if `.gz`; `special_v1.dump`, a git symlink stored as a file
    /// naming `special.dump`, is followed.
    pub fn load(name: &str) -> Vec<u8> {
        let path = dir().join(name);
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if name.ends_with(".gz") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            return out;
        }
        if raw.len() < 256 && !raw.contains(&b'\n') && raw.ends_with(b".dump") {
            return load(std::str::from_utf8(&raw).expect("a file name"));
        }
        raw
    }

    /// The format version vector `name` is checked at (`NAME.version`), if any.
    pub fn version(name: &str) -> Option<u32> {
        let text = std::fs::read_to_string(dir().join(format!("{name}.version"))).ok()?;
        Some(text.trim().parse().expect("a version number"))
    }

    /// `--min-version=V --max-version=V` for vector `name`, or nothing.
    pub fn version_flags(name: &str) -> Vec<String> {
        version(name)
            .map(|v| vec![format!("--min-version={v}"), format!("--max-version={v}")])
            .unwrap_or_default()
    }

    /// The vectors with a pinned image checksum: (name, expected sha256 of the image), sorted.
    pub fn checksums() -> Vec<(String, String)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir()).expect("the vectors directory") {
            let file = entry.expect("a directory entry").file_name();
            let file = file.to_string_lossy();
            if let Some(name) = file.strip_suffix(".sha256") {
                let sha = std::fs::read_to_string(dir().join(&*file)).expect("a checksum");
                out.push((name.to_owned(), sha.trim().to_owned()));
            }
        }
        out.sort();
        assert!(
            out.len() >= 14,
            "expected the 14 checksum vectors, found {}",
            out.len()
        );
        out
    }

    /// The names of the `should-fail-*` vectors, sorted.
    pub fn should_fail() -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(dir())
            .expect("the vectors directory")
            .map(|e| {
                e.expect("a directory entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| n.starts_with("should-fail-"))
            .collect();
        out.sort();
        out
    }
}

/// A tree with one of everything: every file type, inline-sized and large files, hard links,
/// xattrs in user/trusted/security namespaces and an ACL, odd names, sub-second mtimes, and
/// `big_mib` MiB of data in a few large files.
pub fn rich_tree(root: &Path, big_mib: usize) {
    rich_files(root, big_mib);
    rich_links_and_specials(root);
    odd_names(root);
    rich_attributes(root);
    // Sub-second mtimes everywhere, set last.
    spread_mtimes(root);
}

/// [`rich_tree`]'s directories and regular files.
fn rich_files(root: &Path, big_mib: usize) {
    fs::create_dir_all(root.join("dir/sub/deeper")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::write(under(root, "inline"), b"tiny\n").unwrap();
    fs::write(under(root, "exactly-64"), pattern(5, 64)).unwrap();
    fs::write(under(root, "just-over-64"), pattern(6, 65)).unwrap();
    fs::write(under(root, "empty-file"), b"").unwrap();
    fs::write(under(root, "dir/4096"), pattern(7, 4096)).unwrap();
    fs::write(under(root, "dir/sub/4097"), pattern(8, 4097)).unwrap();
    for i in 0..big_mib.div_ceil(64) {
        let size = (big_mib - i * 64).min(64) << 20;
        fs::write(
            under(root, &format!("big/file{i}")),
            pattern(100 + i as u32, size),
        )
        .unwrap();
    }
    for i in 0..300 {
        fs::write(
            under(root, &format!("many/f{i:03}")),
            pattern(1000 + i, 100 + i as usize * 37),
        )
        .unwrap();
    }
    fs::write(under(root, "dup-a"), pattern(9, 10000)).unwrap();
    fs::write(under(root, "dir/dup-b"), pattern(9, 10000)).unwrap();
}

/// [`rich_tree`]'s hard links, symlinks, devices, fifo and socket.
fn rich_links_and_specials(root: &Path) {
    use rustix::fs::{makedev, mknodat, FileType, Mode, CWD};
    fs::hard_link(root.join("dir/4096"), root.join("hardlink-to-4096")).unwrap();
    fs::hard_link(root.join("inline"), root.join("dir/hardlink-to-inline")).unwrap();
    std::os::unix::fs::symlink("inline", root.join("symlink")).unwrap();
    std::os::unix::fs::symlink("/does/not/exist", root.join("dir/dangling")).unwrap();
    std::os::unix::fs::symlink("x".repeat(300), root.join("long-symlink")).unwrap();
    for (name, file_type, mode, dev) in [
        ("fifo", FileType::Fifo, 0o640, 0),
        ("chardev", FileType::CharacterDevice, 0o600, makedev(1, 7)),
        (
            "blockdev",
            FileType::BlockDevice,
            0o660,
            makedev(259, 70000),
        ),
    ] {
        mknodat(
            CWD,
            root.join(name),
            file_type,
            Mode::from_raw_mode(mode),
            dev,
        )
        .unwrap();
    }
    let sock = std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap();
    drop(sock);
}

/// Odd names: spaces, a newline, a backslash, non-UTF-8 bytes, '=', '-' and a 255-byte name.
fn odd_names(root: &Path) {
    use std::os::unix::ffi::OsStrExt;
    for name in [
        &b"with space"[..],
        b"new\nline",
        b"back\\slash",
        b"\xff\xfe-latin1",
        b"a=b",
        b"-",
    ] {
        fs::write(root.join(std::ffi::OsStr::from_bytes(name)), name).unwrap();
    }
    fs::write(root.join("n".repeat(255)), b"long name").unwrap();
}

/// [`rich_tree`]'s xattrs, ACL, owner and setuid bit.
fn rich_attributes(root: &Path) {
    let set = |p: &str, k: &str, v: &[u8]| {
        rustix::fs::lsetxattr(root.join(p), k, v, rustix::fs::XattrFlags::empty()).unwrap()
    };
    set("inline", "user.color", b"blue");
    set("big/file0", "user.color", b"blue");
    set("dir", "trusted.sealroot", b"\x00\x01\x02 binary");
    set("just-over-64", "security.sealroot", b"label");
    set("dir/sub", "trusted.overlay.opaque", b"y");
    set("symlink", "trusted.link", b"on a symlink");
    let acl = Command::new("setfacl")
        .args(["-m", "u:1234:rwx"])
        .arg(root.join("dir/sub"))
        .status();
    assert!(
        acl.map(|s| s.success()).unwrap_or(false),
        "setfacl (Debian acl) is needed"
    );
    rustix::fs::chownat(
        rustix::fs::CWD,
        root.join("dir/4096"),
        Some(rustix::fs::Uid::from_raw(70000)),
        Some(rustix::fs::Gid::from_raw(5)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    fs::set_permissions(root.join("exactly-64"), fs::Permissions::from_mode(0o4755)).unwrap();
}

/// Gives everything under `root` (itself included) a distinct mtime with nanoseconds,
/// children first.
fn spread_mtimes(root: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let mut all = Snapshot::of_dir(
        root,
        Fields {
            content: false,
            nlink: false,
            dir_nlink: false,
        },
    )
    .0
    .into_keys()
    .collect::<Vec<_>>();
    all.reverse();
    for (i, rel) in all.iter().enumerate() {
        let t = rustix::fs::Timespec {
            tv_sec: 1_650_000_000 + i as i64,
            tv_nsec: (i as i64 * 7919) % 1_000_000_000,
        };
        let p = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(std::ffi::OsStr::from_bytes(rel))
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &p,
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
}

/// `cfsctl` from composefs-rs (the version `scripts/install-deps.sh` installs), if installed:
/// in `~/.cargo/bin`, `/usr/local/bin` or `/usr/bin`.
pub fn cfsctl() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let candidates = [
        home.map(|h| h.join(".cargo/bin/cfsctl")),
        Some(PathBuf::from("/usr/local/bin/cfsctl")),
        Some(PathBuf::from("/usr/bin/cfsctl")),
    ];
    candidates.into_iter().flatten().find(|p| p.exists())
}

/// [`cfsctl`], or `None` after [`skip`]ping `test`.
pub fn cfsctl_or_skip(test: &str) -> Option<PathBuf> {
    let found = cfsctl();
    if found.is_none() {
        skip(test, "cfsctl (composefs-rs) is not installed");
    }
    found
}

/// Runs `cfsctl` with `args`; returns its stdout, panicking with its output on failure.
pub fn run_cfsctl(cfsctl: &Path, args: &[&str]) -> String {
    let out = Command::new(cfsctl).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cfsctl {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
