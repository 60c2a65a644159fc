//! The three-way merge of `/etc`, on real directories: a table of cases (old default, local,
//! new default → the merged `/etc` or the conflicts), each default committed to a real
//! repository as an image and read back from it, the local `/etc` a directory, the result
//! written to disk and compared with the expected tree by what the kernel shows. Then the
//! plan's listing, mtimes, hard links, and what happens when the local `/etc` changes or is
//! tampered with between planning and writing.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use sealroot_deploy::etc::{
    self, ApplyError, ConflictKind, ConflictPolicy, Delta, ImageEtc, LocalEtc, MergeOptions,
    Outcome,
};
use sealroot_format::erofs::WriteOptions;
use sealroot_format::Tree;
use sealroot_repo::{HashAlgorithm, InitOptions, Repository};
use sealroot_testkit::{assert_same, is_root, pattern, scratch, skip, Fields, Snapshot, Untouched};
use sealroot_tree::{build_from_dir, BuildOptions, NoProgress};

const SELINUX: &str = "security.selinux";
const ETC_T: &[u8] = b"system_u:object_r:etc_t:s0\0";
const SHADOW_T: &[u8] = b"system_u:object_r:shadow_t:s0\0";
const NET_CONF_T: &[u8] = b"system_u:object_r:net_conf_t:s0\0";

// ---- Trees described in a table --------------------------------------------------------

#[derive(Clone, Debug)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Link(&'static str),
    Fifo,
    CharDev(u32, u32),
}

/// One path of a tree: `.` is the tree's root directory.
#[derive(Clone, Debug)]
struct E {
    path: &'static str,
    kind: Kind,
    mode: Option<u32>,
    owner: Option<(u32, u32)>,
    xattrs: Vec<(&'static str, &'static [u8])>,
}

fn entry(path: &'static str, kind: Kind) -> E {
    E {
        path,
        kind,
        mode: None,
        owner: None,
        xattrs: Vec::new(),
    }
}

/// A small file (inline in the image).
fn f(path: &'static str, content: &str) -> E {
    entry(path, Kind::File(content.as_bytes().to_vec()))
}

/// A file large enough to be an object of its own.
fn big(path: &'static str, seed: u32) -> E {
    entry(path, Kind::File(pattern(seed, 3000)))
}

fn d(path: &'static str) -> E {
    entry(path, Kind::Dir)
}

fn l(path: &'static str, target: &'static str) -> E {
    entry(path, Kind::Link(target))
}

fn fifo(path: &'static str) -> E {
    entry(path, Kind::Fifo)
}

fn chr(path: &'static str, major: u32, minor: u32) -> E {
    entry(path, Kind::CharDev(major, minor))
}

impl E {
    fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    fn owner(mut self, uid: u32, gid: u32) -> Self {
        self.owner = Some((uid, gid));
        self
    }

    fn x(mut self, name: &'static str, value: &'static [u8]) -> Self {
        self.xattrs.push((name, value));
        self
    }

    /// Whether making this needs root: another owner, a device, a trusted or security xattr.
    fn needs_root(&self) -> bool {
        self.owner.is_some()
            || matches!(self.kind, Kind::CharDev(..))
            || self
                .xattrs
                .iter()
                .any(|(n, _)| n.starts_with("trusted.") || n.starts_with("security."))
    }
}

/// Makes directory `root` hold `entries` (in order; missing parents are made 0755).
fn build(root: &Path, entries: &[E]) {
    fs::create_dir_all(root).unwrap();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    for e in entries {
        let p = if e.path == "." {
            root.to_path_buf()
        } else {
            root.join(e.path)
        };
        let mut parent = p.parent().unwrap().to_path_buf();
        let mut made = Vec::new();
        while !parent.exists() {
            made.push(parent.clone());
            parent = parent.parent().unwrap().to_path_buf();
        }
        for dir in made.iter().rev() {
            fs::create_dir(dir).unwrap();
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let default_mode = match &e.kind {
            Kind::File(content) => {
                fs::write(&p, content).unwrap();
                Some(0o644)
            }
            Kind::Dir => {
                if !p.exists() {
                    fs::create_dir(&p).unwrap();
                }
                Some(0o755)
            }
            Kind::Link(target) => {
                symlink(target, &p).unwrap();
                None
            }
            Kind::Fifo | Kind::CharDev(..) => {
                let (kind, dev) = match e.kind {
                    Kind::CharDev(major, minor) => (
                        rustix::fs::FileType::CharacterDevice,
                        rustix::fs::makedev(major, minor),
                    ),
                    _ => (rustix::fs::FileType::Fifo, 0),
                };
                rustix::fs::mknodat(rustix::fs::CWD, &p, kind, Mode::from_raw_mode(0o644), dev)
                    .unwrap();
                Some(0o644)
            }
        };
        if let Some((uid, gid)) = e.owner {
            std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).unwrap();
        }
        if let Some(mode) = e.mode.or(default_mode) {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
        for (name, value) in &e.xattrs {
            rustix::fs::lsetxattr(&p, *name, value, rustix::fs::XattrFlags::empty())
                .unwrap_or_else(|err| panic!("setting {name} on {}: {err}", p.display()));
        }
    }
}

/// What the kernel shows of a tree, without mtimes (compared by a test of their own).
fn snapshot(root: &Path) -> Snapshot {
    let fields = Fields {
        content: true,
        nlink: false,
        dir_nlink: false,
    };
    let mut s = Snapshot::of_dir(root, fields);
    for e in s.0.values_mut() {
        e.mtime = (0, 0);
    }
    s
}

fn open_dir(path: &Path) -> OwnedFd {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap()
}

/// A repository to commit the defaults to.
struct Env {
    _dir: tempfile::TempDir,
    repo: Repository,
}

impl Env {
    fn new() -> Env {
        let dir = scratch(env!("CARGO_TARGET_TMPDIR"), "etc-repo-");
        let repo = Repository::init(&dir.path().join("repo"), &InitOptions::default()).unwrap();
        Env { _dir: dir, repo }
    }

    /// Directory `src` written to the repository as an image, and read back.
    fn image(&self, src: &Path) -> Tree {
        let tx = self.repo.transaction().unwrap();
        let opts = BuildOptions {
            object_store: Some(tx.object_store()),
            ..BuildOptions::default()
        };
        let tree = build_from_dir(src, &opts, &NoProgress).unwrap();
        let id = tx.write_image(&tree, &WriteOptions::default()).unwrap();
        tx.finish().unwrap();
        self.repo.read_image(&id).unwrap()
    }
}

/// The inputs of one merge, on disk: `old/etc`, `new/etc` (committed as images), `local`.
struct Inputs {
    dir: tempfile::TempDir,
    old: Tree,
    new: Tree,
}

impl Inputs {
    fn new(env: &Env, old: &[E], local: &[E], new: &[E]) -> Inputs {
        let dir = scratch(env!("CARGO_TARGET_TMPDIR"), "etc-case-");
        build(&dir.path().join("old/etc"), old);
        build(&dir.path().join("new/etc"), new);
        build(&dir.path().join("local"), local);
        fs::create_dir(dir.path().join("out")).unwrap();
        let old = env.image(&dir.path().join("old"));
        let new = env.image(&dir.path().join("new"));
        Inputs { dir, old, new }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    fn local(&self) -> LocalEtc {
        LocalEtc::read(open_dir(&self.path("local")).as_fd(), HashAlgorithm::Sha256).unwrap()
    }
}

// ---- The table ---------------------------------------------------------------------------

struct Case {
    name: &'static str,
    old: Vec<E>,
    local: Vec<E>,
    new: Vec<E>,
    policy: ConflictPolicy,
    /// The merged tree; `None` where the merge must refuse (unresolved conflicts).
    want: Option<Vec<E>>,
    conflicts: Vec<(&'static str, ConflictKind)>,
}

fn case(name: &'static str, old: Vec<E>, local: Vec<E>, new: Vec<E>, want: Vec<E>) -> Case {
    Case {
        name,
        old,
        local,
        new,
        policy: ConflictPolicy::Fail,
        want: Some(want),
        conflicts: Vec::new(),
    }
}

/// A case that conflicts at `path` and, under `fail`, writes nothing.
fn conflict(
    name: &'static str,
    old: Vec<E>,
    local: Vec<E>,
    new: Vec<E>,
    path: &'static str,
    kind: ConflictKind,
) -> Case {
    Case {
        want: None,
        conflicts: vec![(path, kind)],
        ..case(name, old, local, new, Vec::new())
    }
}

impl Case {
    /// The same case under `policy`, giving `want`.
    fn resolved(mut self, name: &'static str, policy: ConflictPolicy, want: Vec<E>) -> Case {
        self.name = name;
        self.policy = policy;
        self.want = Some(want);
        self
    }

    fn needs_root(&self) -> bool {
        let all = [&self.old, &self.local, &self.new];
        all.iter().flat_map(|v| v.iter()).any(E::needs_root)
            || self.want.iter().flatten().any(E::needs_root)
    }
}

use ConflictKind::{LocalDirectoryNewFile as DirVsFile, LocalFileNewDirectory as FileVsDir};

/// Files only: local untouched/changed/deleted/added × new unchanged/changed/deleted/added.
#[rustfmt::skip]
fn file_cases() -> Vec<Case> {
    vec![
        case("untouched, unchanged", vec![f("a", "x")], vec![f("a", "x")], vec![f("a", "x")], vec![f("a", "x")]),
        case("untouched, changed in new", vec![f("a", "x")], vec![f("a", "x")], vec![f("a", "y")], vec![f("a", "y")]),
        case("untouched, deleted in new", vec![f("a", "x"), f("b", "x")], vec![f("a", "x"), f("b", "x")], vec![f("b", "x")], vec![f("b", "x")]),
        case("absent, added in new", vec![], vec![], vec![f("b", "y")], vec![f("b", "y")]),
        case("changed locally, unchanged in new", vec![f("a", "x")], vec![f("a", "z")], vec![f("a", "x")], vec![f("a", "z")]),
        case("changed locally and in new", vec![f("a", "x")], vec![f("a", "z")], vec![f("a", "y")], vec![f("a", "z")]),
        case("changed locally, deleted in new", vec![f("a", "x")], vec![f("a", "z")], vec![], vec![f("a", "z")]),
        case("deleted locally, unchanged in new", vec![f("a", "x")], vec![], vec![f("a", "x")], vec![]),
        case("deleted locally, changed in new", vec![f("a", "x")], vec![], vec![f("a", "y")], vec![]),
        case("deleted locally and in new", vec![f("a", "x")], vec![], vec![], vec![]),
        case("added locally", vec![], vec![f("a", "z")], vec![], vec![f("a", "z")]),
        case("added locally and in new, differently", vec![], vec![f("a", "z")], vec![f("a", "y")], vec![f("a", "z")]),
        case("added locally and in new, the same", vec![], vec![f("a", "y")], vec![f("a", "y")], vec![f("a", "y")]),
        case("large file untouched, changed in new", vec![big("a", 1)], vec![big("a", 1)], vec![big("a", 2)], vec![big("a", 2)]),
        case("large file changed locally and in new", vec![big("a", 1)], vec![big("a", 3)], vec![big("a", 2)], vec![big("a", 3)]),
        case("small file untouched, large in new", vec![f("a", "x")], vec![f("a", "x")], vec![big("a", 2)], vec![big("a", 2)]),
        case("large file untouched, small in new", vec![big("a", 1)], vec![big("a", 1)], vec![f("a", "y")], vec![f("a", "y")]),
        case("large file added locally", vec![], vec![big("a", 4)], vec![], vec![big("a", 4)]),
        case("empty file untouched, filled in new", vec![f("a", "")], vec![f("a", "")], vec![f("a", "y")], vec![f("a", "y")]),
        case("file emptied locally", vec![f("a", "x")], vec![f("a", "")], vec![f("a", "y")], vec![f("a", "")]),
    ]
}

/// Type changes, both ways, and the conflicts they make.
#[rustfmt::skip]
fn type_cases() -> Vec<Case> {
    vec![
        case("file to dir locally, new unchanged", vec![f("a", "x")], vec![f("a/b", "z")], vec![f("a", "x")], vec![f("a/b", "z")]),
        conflict("file to dir locally, file changed in new", vec![f("a", "x")], vec![f("a/b", "z")], vec![f("a", "y")], "a", DirVsFile),
        case("file to dir in new, local untouched", vec![f("a", "x")], vec![f("a", "x")], vec![f("a/b", "y")], vec![f("a/b", "y")]),
        conflict("file to dir in new, file changed locally", vec![f("a", "x")], vec![f("a", "z")], vec![f("a/b", "y")], "a", FileVsDir),
        case("dir to file in new, local untouched", vec![f("a/b", "x")], vec![f("a/b", "x")], vec![f("a", "y")], vec![f("a", "y")]),
        conflict("dir to file in new, file inside changed locally", vec![f("a/b", "x")], vec![f("a/b", "z")], vec![f("a", "y")], "a", DirVsFile),
        conflict("dir to file in new, file added inside locally", vec![f("a/b", "x")], vec![f("a/b", "x"), f("a/c", "z")], vec![f("a", "y")], "a", DirVsFile),
        conflict("dir to file in new, file deleted inside locally", vec![f("a/b", "x"), f("a/c", "x")], vec![f("a/b", "x")], vec![f("a", "y")], "a", DirVsFile),
        conflict("dir to file in new, dir mode changed locally", vec![f("a/b", "x")], vec![d("a").mode(0o700), f("a/b", "x")], vec![f("a", "y")], "a", DirVsFile),
        conflict("dir to symlink in new, file inside changed locally", vec![f("a/b", "x")], vec![f("a/b", "z")], vec![l("a", "../usr/share/a")], "a", DirVsFile),
        case("dir to symlink in new, local untouched", vec![f("a/b", "x")], vec![f("a/b", "x")], vec![l("a", "../usr/share/a")], vec![l("a", "../usr/share/a")]),
        case("dir to file locally, new unchanged", vec![f("a/b", "x")], vec![f("a", "z")], vec![f("a/b", "x")], vec![f("a", "z")]),
        conflict("dir to file locally, changed inside in new", vec![f("a/b", "x")], vec![f("a", "z")], vec![f("a/b", "y")], "a", FileVsDir),
        conflict("dir to file locally, dir mode changed in new", vec![f("a/b", "x")], vec![f("a", "z")], vec![d("a").mode(0o700), f("a/b", "x")], "a", FileVsDir),
        case("dir deleted locally, file in new", vec![f("a/b", "x")], vec![], vec![f("a", "y")], vec![]),
        conflict("file added locally where new adds a dir", vec![], vec![f("a", "z")], vec![f("a/b", "y")], "a", FileVsDir),
        conflict("dir added locally where new adds a file", vec![], vec![f("a/b", "z")], vec![f("a", "y")], "a", DirVsFile),
        conflict("empty dir added locally where new adds a file", vec![], vec![d("a")], vec![f("a", "y")], "a", DirVsFile),
        case(
            "dir added locally and in new: merged",
            vec![],
            vec![f("a/b", "z"), f("a/c", "z")],
            vec![f("a/c", "y"), f("a/d", "y")],
            vec![f("a/b", "z"), f("a/c", "z"), f("a/d", "y")],
        ),
        case("file to symlink locally", vec![f("a", "x")], vec![l("a", "b")], vec![f("a", "x")], vec![l("a", "b")]),
        case("file to symlink locally, changed in new", vec![f("a", "x")], vec![l("a", "b")], vec![f("a", "y")], vec![l("a", "b")]),
        case("file to symlink in new", vec![f("a", "x")], vec![f("a", "x")], vec![l("a", "b")], vec![l("a", "b")]),
        case("symlink to file locally, retargeted in new", vec![l("a", "x")], vec![f("a", "z")], vec![l("a", "y")], vec![f("a", "z")]),
        conflict("symlink to a dir locally, retargeted in new", vec![l("a", "x")], vec![f("a/b", "z")], vec![l("a", "y")], "a", DirVsFile),
    ]
}

/// Symlinks, special files.
#[rustfmt::skip]
fn link_cases() -> Vec<Case> {
    vec![
        case("symlink retargeted locally and in new", vec![l("a", "x")], vec![l("a", "z")], vec![l("a", "y")], vec![l("a", "z")]),
        case("symlink retargeted in new", vec![l("a", "x")], vec![l("a", "x")], vec![l("a", "y")], vec![l("a", "y")]),
        case(
            "symlinks pointing outside are copied, not followed",
            vec![],
            vec![l("a", "/etc/shadow"), l("b", "../../.."), l("c/d", "/")],
            vec![],
            vec![l("a", "/etc/shadow"), l("b", "../../.."), l("c/d", "/")],
        ),
        case("dangling symlink deleted locally, retargeted in new", vec![l("a", "nowhere")], vec![], vec![l("a", "elsewhere")], vec![]),
        case("fifo added locally", vec![], vec![fifo("p")], vec![], vec![fifo("p")]),
        case("fifo added in new", vec![], vec![], vec![fifo("p")], vec![fifo("p")]),
        case("fifo mode changed locally", vec![fifo("p")], vec![fifo("p").mode(0o600)], vec![fifo("p")], vec![fifo("p").mode(0o600)]),
        case("char device added in new", vec![], vec![], vec![chr("c", 1, 3)], vec![chr("c", 1, 3)]),
        case("char device changed locally and in new", vec![chr("c", 1, 3)], vec![chr("c", 1, 5)], vec![chr("c", 1, 7)], vec![chr("c", 1, 5)]),
        case("char device untouched, changed in new", vec![chr("c", 1, 3)], vec![chr("c", 1, 3)], vec![chr("c", 1, 7)], vec![chr("c", 1, 7)]),
    ]
}

/// Metadata-only changes: mode, owner, xattrs (SELinux labels too), on files, directories
/// and symlinks.
#[rustfmt::skip]
fn metadata_cases() -> Vec<Case> {
    vec![
        case("mode changed locally, content changed in new", vec![f("a", "x")], vec![f("a", "x").mode(0o600)], vec![f("a", "y")], vec![f("a", "x").mode(0o600)]),
        case("mode changed in new", vec![f("a", "x")], vec![f("a", "x")], vec![f("a", "x").mode(0o600)], vec![f("a", "x").mode(0o600)]),
        case("setuid and sticky bits kept", vec![f("a", "x")], vec![f("a", "x").mode(0o4755)], vec![f("a", "y")], vec![f("a", "x").mode(0o4755)]),
        case("owner changed locally", vec![f("a", "x")], vec![f("a", "x").owner(1234, 5678)], vec![f("a", "y")], vec![f("a", "x").owner(1234, 5678)]),
        case("owner changed in new", vec![f("a", "x")], vec![f("a", "x")], vec![f("a", "x").owner(12, 34)], vec![f("a", "x").owner(12, 34)]),
        case("group changed locally, large file", vec![big("a", 1)], vec![big("a", 1).owner(0, 42)], vec![big("a", 2)], vec![big("a", 1).owner(0, 42)]),
        case("setuid kept on another owner", vec![f("a", "x")], vec![f("a", "x").owner(7, 7).mode(0o6750)], vec![f("a", "y")], vec![f("a", "x").owner(7, 7).mode(0o6750)]),
        case("user xattr changed locally", vec![f("a", "x").x("user.k", b"1")], vec![f("a", "x").x("user.k", b"2")], vec![f("a", "y").x("user.k", b"1")], vec![f("a", "x").x("user.k", b"2")]),
        case("user xattr removed locally", vec![f("a", "x").x("user.k", b"1")], vec![f("a", "x")], vec![f("a", "y").x("user.k", b"1")], vec![f("a", "x")]),
        case("user xattr added in new", vec![f("a", "x")], vec![f("a", "x")], vec![f("a", "x").x("user.k", b"1")], vec![f("a", "x").x("user.k", b"1")]),
        case(
            "SELinux label changed locally",
            vec![f("a", "x").x(SELINUX, ETC_T)],
            vec![f("a", "x").x(SELINUX, SHADOW_T)],
            vec![f("a", "y").x(SELINUX, ETC_T)],
            vec![f("a", "x").x(SELINUX, SHADOW_T)],
        ),
        case(
            "SELinux label changed in new",
            vec![f("a", "x").x(SELINUX, ETC_T)],
            vec![f("a", "x").x(SELINUX, ETC_T)],
            vec![f("a", "x").x(SELINUX, NET_CONF_T)],
            vec![f("a", "x").x(SELINUX, NET_CONF_T)],
        ),
        case(
            "SELinux label added locally to a large file",
            vec![big("a", 1)],
            vec![big("a", 1).x(SELINUX, SHADOW_T)],
            vec![big("a", 2)],
            vec![big("a", 1).x(SELINUX, SHADOW_T)],
        ),
        case("trusted xattr added locally", vec![f("a", "x")], vec![f("a", "x").x("trusted.k", b"v")], vec![f("a", "y")], vec![f("a", "x").x("trusted.k", b"v")]),
        case(
            "dir mode changed locally, contents changed in new",
            vec![f("a/b", "x")],
            vec![d("a").mode(0o700), f("a/b", "x")],
            vec![f("a/b", "y"), f("a/c", "y")],
            vec![d("a").mode(0o700), f("a/b", "y"), f("a/c", "y")],
        ),
        case("dir mode changed in new", vec![d("a")], vec![d("a")], vec![d("a").mode(0o750)], vec![d("a").mode(0o750)]),
        case("dir mode changed locally and in new", vec![d("a")], vec![d("a").mode(0o700)], vec![d("a").mode(0o750)], vec![d("a").mode(0o700)]),
        case(
            "dir owner and label changed locally",
            vec![d("a").x(SELINUX, ETC_T), f("a/b", "x")],
            vec![d("a").owner(3, 4).x(SELINUX, SHADOW_T), f("a/b", "x")],
            vec![d("a").x(SELINUX, ETC_T), f("a/b", "y")],
            vec![d("a").owner(3, 4).x(SELINUX, SHADOW_T), f("a/b", "y")],
        ),
        case("the root's mode changed locally", vec![f("a", "x")], vec![d(".").mode(0o750), f("a", "x")], vec![f("a", "y")], vec![d(".").mode(0o750), f("a", "y")]),
        case("the root's mode changed in new", vec![f("a", "x")], vec![f("a", "x")], vec![d(".").mode(0o711), f("a", "x")], vec![d(".").mode(0o711), f("a", "x")]),
        case("symlink owner changed locally", vec![l("a", "x")], vec![l("a", "x").owner(5, 6)], vec![l("a", "y")], vec![l("a", "x").owner(5, 6)]),
        case(
            "symlink label changed in new",
            vec![l("a", "x").x(SELINUX, ETC_T)],
            vec![l("a", "x").x(SELINUX, ETC_T)],
            vec![l("a", "x").x(SELINUX, NET_CONF_T)],
            vec![l("a", "x").x(SELINUX, NET_CONF_T)],
        ),
    ]
}

/// Nested and empty directories.
#[rustfmt::skip]
fn dir_cases() -> Vec<Case> {
    vec![
        case(
            "deep change kept, sibling added in new",
            vec![f("a/b/c/d", "x")],
            vec![f("a/b/c/d", "z")],
            vec![f("a/b/c/d", "x"), f("a/b/e", "y")],
            vec![f("a/b/c/d", "z"), f("a/b/e", "y")],
        ),
        case(
            "dir deleted in new, the file changed inside kept alone",
            vec![f("a/b", "x"), f("a/c", "x"), f("a/d/e", "x")],
            vec![f("a/b", "z"), f("a/c", "x"), f("a/d/e", "x")],
            vec![],
            vec![f("a/b", "z")],
        ),
        case(
            "dir deleted in new, its mode changed locally: kept, its untouched files not",
            vec![f("a/b", "x")],
            vec![d("a").mode(0o700), f("a/b", "x")],
            vec![],
            vec![d("a").mode(0o700)],
        ),
        case("dir deleted in new, untouched locally", vec![f("a/b", "x")], vec![f("a/b", "x")], vec![], vec![]),
        case("dir deleted in new, a file deleted inside locally", vec![f("a/b", "x"), f("a/c", "x")], vec![f("a/c", "x")], vec![], vec![]),
        case("dir deleted locally, new adds a file inside", vec![f("a/b", "x")], vec![], vec![f("a/b", "x"), f("a/c", "y")], vec![]),
        case("nested dir added locally", vec![], vec![f("a/b/c/d", "z"), f("a/e", "z"), d("a/f")], vec![], vec![f("a/b/c/d", "z"), f("a/e", "z"), d("a/f")]),
        case("nested dir added in new", vec![], vec![], vec![f("a/b/c", "y"), d("a/e")], vec![f("a/b/c", "y"), d("a/e")]),
        case("files added locally beside the defaults", vec![f("a/b", "x")], vec![f("a/b", "x"), f("a/mine", "z")], vec![f("a/b", "y")], vec![f("a/b", "y"), f("a/mine", "z")]),
        case("empty dir untouched", vec![d("a")], vec![d("a")], vec![d("a")], vec![d("a")]),
        case("empty dir added locally", vec![], vec![d("a")], vec![], vec![d("a")]),
        case("empty dir deleted locally", vec![d("a")], vec![], vec![d("a")], vec![]),
        case("empty dir added in new", vec![], vec![], vec![d("a")], vec![d("a")]),
        case("empty dir deleted in new", vec![d("a")], vec![d("a")], vec![], vec![]),
        case("empty dir deleted locally, filled in new", vec![d("a")], vec![], vec![f("a/b", "y")], vec![]),
    ]
}

/// The three policies.
#[rustfmt::skip]
fn policy_cases() -> Vec<Case> {
    let file_vs_dir = || {
        conflict("", vec![f("a", "x"), f("k", "x")], vec![f("a", "z"), f("k", "z")], vec![f("a/b", "y"), f("k", "y")], "a", FileVsDir)
    };
    let dir_vs_file = || {
        conflict("", vec![f("a/b", "x")], vec![f("a/b", "z"), f("a/c", "z"), f("a/d/e", "z")], vec![f("a", "y")], "a", DirVsFile)
    };
    use ConflictPolicy::{KeepLocal, TakeNew};
    vec![
        Case { name: "fail: file vs dir", ..file_vs_dir() },
        file_vs_dir().resolved("keep-local: file vs dir", KeepLocal, vec![f("a", "z"), f("k", "z")]),
        file_vs_dir().resolved("take-new: file vs dir", TakeNew, vec![f("a/b", "y"), f("k", "z")]),
        Case { name: "fail: dir vs file", ..dir_vs_file() },
        dir_vs_file().resolved("keep-local: dir vs file", KeepLocal, vec![f("a/b", "z"), f("a/c", "z"), f("a/d/e", "z")]),
        dir_vs_file().resolved("take-new: dir vs file", TakeNew, vec![f("a", "y")]),
        Case {
            conflicts: vec![("a", FileVsDir), ("b", DirVsFile), ("d/e", FileVsDir)],
            ..conflict(
                "fail: every conflict is reported",
                vec![f("a", "x"), f("b/c", "x"), f("d/e", "x")],
                vec![f("a", "z"), f("b/c", "z"), f("d/e", "z")],
                vec![f("a/n", "y"), f("b", "y"), f("d/e/f", "y")],
                "",
                FileVsDir,
            )
        },
    ]
}

/// Runs one case; panics on any difference.
fn run(env: &Env, case: &Case) {
    let inputs = Inputs::new(env, &case.old, &case.local, &case.new);
    let old = ImageEtc::new(&inputs.old, &env.repo).unwrap();
    let new = ImageEtc::new(&inputs.new, &env.repo).unwrap();
    let local = inputs.local();
    let options = MergeOptions {
        policy: case.policy,
        ..Default::default()
    };
    let plan = etc::plan(&old, &local, &new, &options).unwrap();
    let conflicts: Vec<_> = plan
        .conflicts()
        .iter()
        .map(|c| (c.path.to_str().unwrap().to_owned(), c.kind))
        .collect();
    let want_conflicts: Vec<_> = case
        .conflicts
        .iter()
        .map(|(p, k)| (p.to_string(), *k))
        .collect();
    assert_eq!(conflicts, want_conflicts, "conflicts; the plan:\n{plan}");
    let out = inputs.path("out");
    let result = etc::apply(&plan, open_dir(&out).as_fd());
    let Some(want) = &case.want else {
        match result {
            Err(ApplyError::Conflicts(c)) => assert_eq!(c.len(), want_conflicts.len()),
            other => panic!("expected the conflicts to refuse the plan, got {other:?}"),
        }
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "nothing written");
        return;
    };
    result.unwrap_or_else(|e| panic!("apply: {e}; the plan:\n{plan}"));
    build(&inputs.path("want"), want);
    let (want, got) = (snapshot(&inputs.path("want")), snapshot(&out));
    if want != got {
        println!("the plan:\n{plan}");
    }
    assert_same(&want, &got);
}

/// Runs every case, reporting all that fail.
fn run_table(test: &str, cases: Vec<Case>) {
    let env = Env::new();
    let mut failed = Vec::new();
    for case in &cases {
        if case.needs_root() && !is_root() {
            skip(
                test,
                &format!(
                    "case {:?} needs root (owners, devices, trusted. or security. xattrs)",
                    case.name
                ),
            );
            continue;
        }
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| run(&env, case))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {msg}", case.name));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n\n")
    );
}

/// One test per group of cases.
macro_rules! tables {
    ($($test:ident: $cases:ident),* $(,)?) => {$(
        #[test]
        fn $test() {
            run_table(stringify!($test), $cases());
        }
    )*};
}

tables! {
    table_files: file_cases,
    table_type_changes: type_cases,
    table_links_and_special_files: link_cases,
    table_metadata: metadata_cases,
    table_directories: dir_cases,
    table_policies: policy_cases,
}

// ---- Beyond the table --------------------------------------------------------------------

/// Plans the merge of `inputs` with `options`.
fn plan_and_apply(
    env: &Env,
    inputs: &Inputs,
    options: &MergeOptions,
) -> Result<etc::Applied, ApplyError> {
    let old = ImageEtc::new(&inputs.old, &env.repo).unwrap();
    let new = ImageEtc::new(&inputs.new, &env.repo).unwrap();
    let local = inputs.local();
    let plan = etc::plan(&old, &local, &new, options).unwrap();
    etc::apply(&plan, open_dir(&inputs.path("out")).as_fd())
}

#[test]
fn the_plan_lists_every_change_in_path_order() {
    let env = Env::new();
    let inputs = Inputs::new(
        &env,
        &[
            f("a", "x"),
            f("b", "x"),
            f("c", "x"),
            f("d/e", "x"),
            l("l", "x"),
        ],
        &[
            f("a", "z"),
            f("c", "x"),
            d("d").mode(0o700),
            f("d/e", "x"),
            l("l", "x"),
            f("n", "z"),
        ],
        &[
            f("a", "y"),
            f("b", "y"),
            f("c", "y"),
            f("d/e", "y"),
            f("g", "y"),
            l("l", "y"),
        ],
    );
    let old = ImageEtc::new(&inputs.old, &env.repo).unwrap();
    let new = ImageEtc::new(&inputs.new, &env.repo).unwrap();
    let local = inputs.local();
    let plan = etc::plan(&old, &local, &new, &MergeOptions::default()).unwrap();
    let content = Delta::Modified(etc::What {
        content: true,
        ..Default::default()
    });
    let mode = Delta::Modified(etc::What {
        mode: true,
        ..Default::default()
    });
    let got: Vec<_> = plan
        .changes()
        .iter()
        .map(|c| (c.path.to_str().unwrap(), c.local, c.new, c.outcome))
        .collect();
    use Delta::{Added, Deleted, Unchanged};
    assert_eq!(
        got,
        [
            ("a", content, content, Outcome::Local),
            ("b", Deleted, content, Outcome::Deleted),
            ("c", Unchanged, content, Outcome::New),
            ("d", mode, Unchanged, Outcome::Local),
            ("d/e", Unchanged, content, Outcome::New),
            ("g", Unchanged, Added, Outcome::New),
            ("l", Unchanged, content, Outcome::New),
            ("n", Added, Unchanged, Outcome::Local),
        ]
    );
    assert!(plan.conflicts().is_empty());
    let text = plan.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "{text}");
    assert_eq!(
        lines[0],
        "keep local   a  (local: modified (content); new: modified (content))"
    );
    assert_eq!(
        lines[1],
        "stay deleted b  (local: deleted; new: modified (content))"
    );
    assert_eq!(
        lines[3],
        "keep local   d  (local: modified (mode); new: unchanged)"
    );
    let applied = etc::apply(&plan, open_dir(&inputs.path("out")).as_fd()).unwrap();
    assert_eq!(
        (applied.files, applied.directories, applied.symlinks),
        (5, 1, 1),
        "{applied:?}"
    );
}

#[test]
fn conflicts_are_printed_with_their_paths_and_resolution() {
    let env = Env::new();
    let inputs = Inputs::new(
        &env,
        &[f("a", "x"), f("b/c", "x")],
        &[f("a", "z"), f("b/c", "z")],
        &[f("a/n", "y"), f("b", "y")],
    );
    let old = ImageEtc::new(&inputs.old, &env.repo).unwrap();
    let new = ImageEtc::new(&inputs.new, &env.repo).unwrap();
    let local = inputs.local();
    let plan = etc::plan(&old, &local, &new, &MergeOptions::default()).unwrap();
    let text = plan.to_string();
    assert!(
        text.contains(
            "conflict: a: changed locally, and the new image makes it a directory (unresolved)"
        ),
        "{text}"
    );
    assert!(
        text.contains("conflict: b: a directory with local changes, and the new image makes it a non-directory (unresolved)"),
        "{text}"
    );
    assert_eq!(plan.unresolved().count(), 2);
    let err = etc::apply(&plan, open_dir(&inputs.path("out")).as_fd()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("2 unresolved /etc conflict(s): a: "),
        "{err}"
    );

    let keep = MergeOptions {
        policy: "keep-local".parse().unwrap(),
        ..Default::default()
    };
    let plan = etc::plan(&old, &local, &new, &keep).unwrap();
    assert_eq!(plan.unresolved().count(), 0);
    assert!(
        plan.to_string()
            .contains("conflict: a: changed locally, and the new image makes it a directory (resolved: local version taken)"),
        "{plan}"
    );
}

#[test]
fn policies_parse_and_print() {
    for (text, policy) in [
        ("fail", ConflictPolicy::Fail),
        ("keep-local", ConflictPolicy::KeepLocal),
        ("take-new", ConflictPolicy::TakeNew),
    ] {
        assert_eq!(text.parse::<ConflictPolicy>().unwrap(), policy);
        assert_eq!(policy.to_string(), text);
    }
    assert_eq!(ConflictPolicy::default(), ConflictPolicy::Fail);
    let err = "ours".parse::<ConflictPolicy>().unwrap_err();
    assert!(err.to_string().contains("\"ours\""), "{err}");
}

/// Sets the mtime of `path` (not following a symlink).
fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let ts = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &ts,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn mtime(path: &Path) -> (i64, i64) {
    let md = fs::symlink_metadata(path).unwrap();
    (md.mtime(), md.mtime_nsec())
}

#[test]
fn mtimes_come_from_the_version_taken() {
    let env = Env::new();
    let dir = scratch(env!("CARGO_TARGET_TMPDIR"), "etc-mtime-");
    let p = |rel: &str| dir.path().join(rel);
    build(
        &p("old/etc"),
        &[f("a", "x"), big("b", 1), f("d/e", "x"), l("l", "x")],
    );
    build(
        &p("local"),
        &[
            f("a", "z"),
            big("b", 1),
            d("d").mode(0o700),
            f("d/e", "x"),
            l("l", "z"),
        ],
    );
    build(
        &p("new/etc"),
        &[f("a", "y"), big("b", 2), f("d/e", "y"), l("l", "x")],
    );
    for (rel, sec) in [
        ("local/a", 1_000_001),
        ("local/l", 1_000_002),
        ("local/d", 1_000_003),
    ] {
        set_mtime(&p(rel), sec, 11);
    }
    for (rel, sec) in [
        ("new/etc/b", 2_000_001),
        ("new/etc/d/e", 2_000_002),
        ("new/etc", 2_000_003),
    ] {
        set_mtime(&p(rel), sec, 22);
    }
    fs::create_dir(p("out")).unwrap();
    let inputs = Inputs {
        old: env.image(&p("old")),
        new: env.image(&p("new")),
        dir,
    };
    plan_and_apply(&env, &inputs, &MergeOptions::default()).unwrap();
    let out = |rel: &str| inputs.path("out").join(rel);
    assert_eq!(mtime(&out("a")), (1_000_001, 11), "a local file");
    assert_eq!(mtime(&out("l")), (1_000_002, 11), "a local symlink");
    assert_eq!(mtime(&out("d")), (1_000_003, 11), "a local directory");
    assert_eq!(mtime(&out("b")), (2_000_001, 22), "a new file");
    assert_eq!(
        mtime(&out("d/e")),
        (2_000_002, 22),
        "a new file in a local directory"
    );
    assert_eq!(mtime(&inputs.path("out")), (2_000_003, 22), "the new root");
}

#[test]
fn hard_links_of_the_version_taken_are_kept() {
    let env = Env::new();
    let inputs = Inputs::new(
        &env,
        &[
            big("a", 1),
            big("b", 1),
            f("c/d", "x"),
            f("e", "x"),
            f("g", "x"),
        ],
        &[f("e", "x"), f("g", "x")],
        &[
            big("a", 2),
            big("b", 2),
            f("c/d", "y"),
            f("e", "y"),
            f("g", "x"),
        ],
    );
    // Locally, a, b and c/d become one changed file; e and g one untouched file.
    let local = inputs.path("local");
    fs::write(local.join("a"), pattern(3, 3000)).unwrap();
    fs::create_dir(local.join("c")).unwrap();
    fs::set_permissions(local.join("c"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::hard_link(local.join("a"), local.join("b")).unwrap();
    fs::hard_link(local.join("a"), local.join("c/d")).unwrap();
    fs::remove_file(local.join("g")).unwrap();
    fs::hard_link(local.join("e"), local.join("g")).unwrap();

    let applied = plan_and_apply(&env, &inputs, &MergeOptions::default()).unwrap();
    assert_eq!(applied.hardlinks, 2, "{applied:?}");
    let out = inputs.path("out");
    let md = |rel: &str| fs::symlink_metadata(out.join(rel)).unwrap();
    assert_eq!(md("a").nlink(), 3);
    assert_eq!(md("a").ino(), md("b").ino());
    assert_eq!(md("a").ino(), md("c/d").ino());
    assert_eq!(fs::read(out.join("c/d")).unwrap(), pattern(3, 3000));
    // e and g follow the new image, each its own file there.
    assert_eq!(fs::read(out.join("e")).unwrap(), b"y");
    assert_eq!(fs::read(out.join("g")).unwrap(), b"x");
    assert_eq!((md("e").nlink(), md("g").nlink()), (1, 1));
}

#[test]
fn a_local_file_changed_after_planning_is_reported() {
    let env = Env::new();
    let inputs = Inputs::new(&env, &[big("a", 1)], &[big("a", 3)], &[big("a", 2)]);
    let old = ImageEtc::new(&inputs.old, &env.repo).unwrap();
    let new = ImageEtc::new(&inputs.new, &env.repo).unwrap();
    let local = inputs.local();
    let plan = etc::plan(&old, &local, &new, &MergeOptions::default()).unwrap();
    fs::write(inputs.path("local/a"), pattern(4, 3000)).unwrap();
    let err = etc::apply(&plan, open_dir(&inputs.path("out")).as_fd()).unwrap_err();
    assert!(
        matches!(&err, ApplyError::LocalChanged { path } if path == Path::new("a")),
        "{err:?}"
    );
}

#[test]
fn a_local_directory_swapped_for_a_symlink_is_not_followed() {
    let env = Env::new();
    let inputs = Inputs::new(
        &env,
        &[big("sub/a", 1)],
        &[big("sub/a", 3)],
        &[big("sub/a", 2)],
    );
    let old = ImageEtc::new(&inputs.old, &env.repo).unwrap();
    let new = ImageEtc::new(&inputs.new, &env.repo).unwrap();
    let local = inputs.local();
    let plan = etc::plan(&old, &local, &new, &MergeOptions::default()).unwrap();
    // The same content, now through a symlink to a directory outside.
    let outside = scratch(env!("CARGO_TARGET_TMPDIR"), "etc-outside-");
    sealroot_testkit::swap_for_symlink(&inputs.path("local"), "sub", outside.path());
    let watch = Untouched::watch(outside.path());
    let err = etc::apply(&plan, open_dir(&inputs.path("out")).as_fd()).unwrap_err();
    assert!(
        matches!(&err, ApplyError::LocalChanged { path } if path == Path::new("sub/a")),
        "{err:?}"
    );
    watch.assert_untouched("after the merge");
}

#[test]
fn the_output_directory_must_be_empty() {
    let env = Env::new();
    let inputs = Inputs::new(&env, &[f("a", "x")], &[f("a", "z")], &[f("a", "y")]);
    fs::write(inputs.path("out/a"), b"mine").unwrap();
    let err = plan_and_apply(&env, &inputs, &MergeOptions::default()).unwrap_err();
    assert!(matches!(err, ApplyError::NotEmpty), "{err:?}");
    assert_eq!(fs::read(inputs.path("out/a")).unwrap(), b"mine");
}

#[test]
fn ignored_xattrs_are_no_local_change() {
    if !is_root() {
        skip(
            "ignored_xattrs_are_no_local_change",
            "setting security.selinux needs root",
        );
        return;
    }
    let env = Env::new();
    let merged = |ignored: Vec<Vec<u8>>| {
        let inputs = Inputs::new(
            &env,
            &[f("a", "x")],
            &[f("a", "x").x(SELINUX, ETC_T)],
            &[f("a", "y")],
        );
        let options = MergeOptions {
            ignored_xattrs: ignored,
            ..Default::default()
        };
        plan_and_apply(&env, &inputs, &options).unwrap();
        fs::read(inputs.path("out/a")).unwrap()
    };
    assert_eq!(merged(Vec::new()), b"x", "a label is a local change");
    assert_eq!(
        merged(vec![SELINUX.as_bytes().to_vec()]),
        b"y",
        "an ignored label is not"
    );
}

#[test]
fn a_corrupt_object_of_the_new_image_is_refused() {
    let env = Env::new();
    let inputs = Inputs::new(&env, &[big("a", 1)], &[big("a", 1)], &[big("a", 2)]);
    let id = inputs.new.resolve(b"/etc/a").unwrap();
    let sealroot_format::tree::Content::Regular(file) = &inputs.new.inode(id).content else {
        panic!("a is a regular file");
    };
    let object = env
        .repo
        .object_path(&sealroot_repo::ObjectId::new(file.digest.unwrap()));
    let mut perms = fs::metadata(&object).unwrap().permissions();
    perms.set_mode(0o644);
    fs::set_permissions(&object, perms).unwrap();
    fs::write(&object, pattern(9, 3000)).unwrap();
    let err = plan_and_apply(&env, &inputs, &MergeOptions::default()).unwrap_err();
    assert!(
        matches!(&err, ApplyError::ObjectMismatch { path, found_size: 3000, .. } if path == Path::new("a")),
        "{err:?}"
    );
}

#[test]
fn an_image_without_etc_is_an_empty_default() {
    let env = Env::new();
    let dir = scratch(env!("CARGO_TARGET_TMPDIR"), "etc-none-");
    build(&dir.path().join("old/usr"), &[f("x", "x")]);
    build(&dir.path().join("new/etc"), &[f("a", "y"), f("b", "y")]);
    build(&dir.path().join("local"), &[f("a", "z")]);
    fs::create_dir(dir.path().join("out")).unwrap();
    let inputs = Inputs {
        old: env.image(&dir.path().join("old")),
        new: env.image(&dir.path().join("new")),
        dir,
    };
    // Everything local is a local addition, so it wins.
    plan_and_apply(&env, &inputs, &MergeOptions::default()).unwrap();
    assert_eq!(fs::read(inputs.path("out/a")).unwrap(), b"z");
    assert_eq!(fs::read(inputs.path("out/b")).unwrap(), b"y");

    let err = ImageEtc::at(&inputs.old, b"/usr/x", &env.repo)
        .err()
        .unwrap();
    assert_eq!(err.to_string(), "/usr/x in the image is not a directory");
}

#[test]
fn malformed_default_trees_are_refused_when_planning() {
    use sealroot_format::tree::{Content, DirEntry, Inode, InodeId, Stat, S_IFDIR, S_IFREG};
    let env = Env::new();
    let inputs = Inputs::new(&env, &[], &[f("mine", "z")], &[]);
    let local = inputs.local();
    let old = ImageEtc::new(&inputs.old, &env.repo).unwrap();
    // An /etc holding one entry, made by hand: `name` for an inode of `mode` and `content`.
    let tree = |name: &[u8], mode: u32, content: Content| {
        let mut t = Tree::new(Stat {
            mode: S_IFDIR | 0o755,
            ..Default::default()
        });
        let etc = t.push(Inode::new(
            Stat {
                mode: S_IFDIR | 0o755,
                ..Default::default()
            },
            Content::Directory(Vec::new()),
        ));
        let file = t.push(Inode::new(
            Stat {
                mode,
                ..Default::default()
            },
            content,
        ));
        let entry = |name: &[u8], inode| DirEntry {
            name: name.to_vec(),
            inode,
            hardlink: false,
        };
        t.inode_mut(InodeId::ROOT).content = Content::Directory(vec![entry(b"etc", etc)]);
        t.inode_mut(etc).content = Content::Directory(vec![entry(name, file)]);
        t
    };
    let plan_with = |new: &Tree| {
        let new = ImageEtc::new(new, &env.repo).unwrap();
        etc::plan(&old, &local, &new, &MergeOptions::default())
            .err()
            .map(|e| e.to_string())
    };
    let file = || Content::Regular(Default::default());
    for bad in [&b"a/b"[..], b"..", b".", b"", b"nul\0"] {
        let err = plan_with(&tree(bad, S_IFREG | 0o644, file()));
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("not a valid file name")),
            "{bad:?}: {err:?}"
        );
    }
    let err = plan_with(&tree(
        b"a",
        S_IFREG | 0o644,
        Content::Symlink(b"x".to_vec()),
    ));
    assert!(
        err.as_deref().is_some_and(|e| e.contains("a: mode 100644")),
        "{err:?}"
    );
    let err = plan_with(&tree(b"a", 0o644, file()));
    assert!(
        err.as_deref().is_some_and(|e| e.contains("a: mode 644")),
        "{err:?}"
    );
    assert_eq!(plan_with(&tree(b"a", S_IFREG | 0o644, file())), None);
}

#[test]
fn contents_known_by_digests_of_another_algorithm_are_compared_by_reading_objects() {
    let env = Env::new();
    let inputs = Inputs::new(
        &env,
        &[big("same", 1), big("changed", 1)],
        &[big("same", 1), big("changed", 3)],
        &[big("same", 2), big("changed", 2)],
    );
    // Local digests in sha512, the repository's in sha256: every large file of the old
    // default is read from its object to be compared.
    let dir = open_dir(&inputs.path("local"));
    let local = LocalEtc::read(dir.as_fd(), HashAlgorithm::Sha512).unwrap();
    let old = ImageEtc::new(&inputs.old, &env.repo).unwrap();
    let new = ImageEtc::new(&inputs.new, &env.repo).unwrap();
    let plan = etc::plan(&old, &local, &new, &MergeOptions::default()).unwrap();
    let outcomes: Vec<_> = plan
        .changes()
        .iter()
        .map(|c| (c.path.to_str().unwrap(), c.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [("changed", Outcome::Local), ("same", Outcome::New)]
    );
    etc::apply(&plan, open_dir(&inputs.path("out")).as_fd()).unwrap();
    assert_eq!(fs::read(inputs.path("out/same")).unwrap(), pattern(2, 3000));
    assert_eq!(
        fs::read(inputs.path("out/changed")).unwrap(),
        pattern(3, 3000)
    );
}
