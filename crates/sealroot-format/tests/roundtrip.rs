//! Property tests of the image writer and reader, over trees from a small deterministic
//! generator (the same seeds every run, so a failure names its seed and reproduces):
//!
//! - `write` → `read` → `write` gives the same bytes, and the tree read back is the tree
//!   written, up to the normalisations the writer and the reader document (see [`expected`]);
//!   the reader drops nothing else. The trees hold every file type, inline and external files
//!   of the sizes where layouts change, payloads, digests, xattrs of every namespace (the
//!   overlayfs ones the writer escapes, and ones shared by many inodes), hard links (owned by
//!   any of their names), whiteouts, large ids, negative and sub-second mtimes, long names
//!   and targets; [`FEATURES`] checks the seeds really cover all of that;
//! - `write` and `dumpfile::validate_with` agree on which trees are refused, and why;
//! - `read` of a corrupted image (bytes flipped, fields overwritten, dirents pointed
//!   elsewhere, blocks shared, truncated) returns quickly, without panicking, and anything it
//!   accepts is a well-formed tree; nesting as deep as the reader allows reads on a test
//!   thread's stack.

use std::collections::{BTreeSet, HashMap};

use sealroot_format::dumpfile;
use sealroot_format::erofs::{self, WriteError, WriteOptions};
use sealroot_format::{
    Content, DirEntry, FileType, Inode, InodeId, Mtime, RegularFile, Stat, Tree, Xattr, S_IFBLK,
    S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
use sealroot_testkit::{vectors, Rng};
use sealroot_verity::{AnyDigest, Sha256Digest, Sha512Digest};

/// Inline content sizes worth trying: around the tail-packing and block boundaries.
const INLINE_SIZES: &[usize] = &[0, 1, 64, 65, 2047, 2048, 2049, 4095, 4096, 4097, 5000];

/// External file sizes: around chunk-size changes, past 32 bits, the largest C accepts
/// (1024 chunks of 2^43), and the sizes near 2^64 whose chunk count wraps around in C.
const EXTERNAL_SIZES: &[u64] = &[
    1,
    4096,
    4097,
    1 << 20,
    (1 << 32) + 1,
    1 << 43,
    (1 << 43) + 1,
    1 << 53,
    u64::MAX - (1 << 42),
    u64::MAX,
];

/// Xattr names beyond the random ones: every EROFS prefix, the ACLs, and the overlayfs names
/// the writer escapes or sets itself.
const XATTR_NAMES: &[&[u8]] = &[
    b"user.a",
    b"user.mime_type",
    b"security.selinux",
    b"security.capability",
    b"system.posix_acl_access",
    b"system.posix_acl_default",
    b"trusted.x",
    b"trusted.overlay.opaque",
    b"trusted.overlay.redirect",
    b"trusted.overlay.metacopy",
    b"trusted.overlay.origin",
    b"trusted.overlay.overlay.opaque",
    b"trusted.overlay.overlay.x",
    b"user.overlay.opaque",
    b"user.overlay.origin",
    b"other.namespace",
];

/// Builds random trees (see the crate docs of this test for what they hold).
struct Gen {
    rng: Rng,
    tree: Tree,
    /// Non-directory inodes made so far, for hard links.
    files: Vec<InodeId>,
    /// Xattrs many inodes share.
    pool: Vec<Xattr>,
    /// The common mtime (most inodes have it, so they are written compact).
    base_mtime: Mtime,
}

impl Gen {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let pool_len = if rng.one_in(8) { 140 } else { 6 };
        let pool = (0..pool_len)
            .map(|i| {
                let name = if i < XATTR_NAMES.len() && rng.one_in(2) {
                    XATTR_NAMES[i].to_vec()
                } else {
                    let mut n = rng
                        .pick(&[&b"user."[..], b"trusted.", b"security."])
                        .to_vec();
                    n.extend_from_slice(format!("shared{i}").as_bytes());
                    n
                };
                let len = rng.index(24);
                Xattr {
                    name,
                    value: rng.bytes(len),
                }
            })
            .collect();
        let base_mtime = Mtime {
            sec: *rng.pick(&[0, 1_700_000_000, -1, -86_400 * 365]),
            nsec: *rng.pick(&[0, 999_999_999, 123]),
        };
        Gen {
            rng,
            tree: Tree { inodes: Vec::new() },
            files: Vec::new(),
            pool,
            base_mtime,
        }
    }

    fn tree(mut self, max_depth: usize) -> Tree {
        let root = Inode {
            stat: self.stat(S_IFDIR | 0o755),
            xattrs: self.xattrs(),
            content: Content::Directory(Vec::new()),
        };
        self.tree.inodes.push(root);
        self.fill_dir(InodeId::ROOT, 0, max_depth);
        self.shuffle_owners();
        self.tree
    }

    fn stat(&mut self, mode: u32) -> Stat {
        let rng = &mut self.rng;
        let id = |rng: &mut Rng| {
            if rng.one_in(6) {
                65_536 + rng.below(u64::from(u32::MAX - 65_536)) as u32
            } else {
                rng.below(3) as u32 * 1000
            }
        };
        let mtime = match rng.below(6) {
            0 => Mtime {
                sec: rng.next_u64() as i64 >> rng.below(40),
                nsec: rng.below(1_000_000_000) as u32,
            },
            1 => Mtime {
                sec: self.base_mtime.sec - 1 - rng.below(1000) as i64,
                nsec: 0,
            },
            _ => self.base_mtime,
        };
        Stat {
            mode,
            uid: id(rng),
            gid: id(rng),
            nlink: if rng.one_in(10) { 70_000 } else { 1 },
            rdev: 0,
            size: 0,
            mtime,
        }
    }

    fn xattrs(&mut self) -> Vec<Xattr> {
        let mut out: Vec<Xattr> = Vec::new();
        let mut names = BTreeSet::new();
        // C's budget: 12 + sum(7 + name + value), at most 32767; keep clear of it (the
        // overlayfs xattrs the writer adds need room too).
        let mut budget = 12;
        let mut add = |x: Xattr, out: &mut Vec<Xattr>| {
            let cost = 7 + x.name.len() + x.value.len();
            if budget + cost < 30_000 && names.insert(x.name.clone()) {
                budget += cost;
                out.push(x);
            }
        };
        match self.rng.below(5) {
            // The whole pool: with the large pool, more than the 128 shared xattrs C gives
            // one inode (the rest are written inline).
            0 => self.pool.iter().for_each(|x| add(x.clone(), &mut out)),
            1 | 2 => {
                for _ in 0..self.rng.below(4) {
                    add(self.rng.pick(&self.pool).clone(), &mut out);
                }
            }
            _ => {}
        }
        for _ in 0..self.rng.below(4) {
            let name = if self.rng.one_in(2) {
                self.rng.pick(XATTR_NAMES).to_vec()
            } else {
                let prefix = *self.rng.pick(&[
                    &b"user."[..],
                    b"trusted.",
                    b"security.",
                    b"trusted.overlay.",
                    b"trusted.overlay.overlay.",
                    b"",
                ]);
                let len = if self.rng.one_in(10) {
                    255 - prefix.len()
                } else {
                    1 + self.rng.index(12)
                };
                let mut n = prefix.to_vec();
                n.extend(self.rng.text(len, false));
                n
            };
            let len = match self.rng.below(10) {
                0 => 0,
                1 => 1000 + self.rng.index(9000),
                _ => self.rng.index(40),
            };
            let value = self.rng.bytes(len);
            add(Xattr { name, value }, &mut out);
        }
        out
    }

    fn name(&mut self, in_root: bool) -> Vec<u8> {
        match self.rng.below(12) {
            // Collide with the root whiteouts 00..ff the writer adds.
            0 if in_root => format!("{:02x}", self.rng.below(256)).into_bytes(),
            1 => {
                let len = 200 + self.rng.index(56);
                self.rng.text(len, true)
            }
            _ => {
                let len = 1 + self.rng.index(12);
                self.rng.text(len, true)
            }
        }
    }

    fn fill_dir(&mut self, dir: InodeId, depth: usize, max_depth: usize) {
        let count = match depth {
            0 => 4 + self.rng.index(12),
            _ => self.rng.index(8),
        };
        let mut names = BTreeSet::new();
        while names.len() < count {
            let name = self.name(depth == 0);
            if name != b"." && name != b".." {
                names.insert(name);
            }
        }
        let mut entries = Vec::new();
        for name in names {
            if !self.files.is_empty() && self.rng.one_in(8) {
                let target = *self.rng.pick(&self.files);
                entries.push(DirEntry {
                    name,
                    inode: target,
                    hardlink: true,
                });
                continue;
            }
            let subdir = depth < max_depth && self.rng.one_in(4);
            let inode = if subdir {
                Inode {
                    stat: self.stat(S_IFDIR | 0o755),
                    xattrs: self.xattrs(),
                    content: Content::Directory(Vec::new()),
                }
            } else {
                self.leaf()
            };
            let id = self.tree.push(inode);
            if subdir {
                self.fill_dir(id, depth + 1, max_depth);
            } else {
                self.files.push(id);
            }
            entries.push(DirEntry {
                name,
                inode: id,
                hardlink: false,
            });
        }
        self.tree.inode_mut(dir).content = Content::Directory(entries);
    }

    /// A random non-directory inode.
    fn leaf(&mut self) -> Inode {
        let perm = self.rng.below(0o10000) as u32;
        let kind = self.rng.below(12);
        let ftype = match kind {
            0..=5 => S_IFREG,
            6 => S_IFLNK,
            7 => S_IFBLK,
            8 | 9 => S_IFCHR,
            10 => S_IFIFO,
            _ => S_IFSOCK,
        };
        let mut stat = self.stat(ftype | perm);
        let content = match ftype {
            S_IFREG => {
                let mut file = RegularFile::default();
                if kind < 3 {
                    let len = if self.rng.one_in(2) {
                        *self.rng.pick(INLINE_SIZES)
                    } else {
                        self.rng.index(5001)
                    };
                    file.inline = Some(self.rng.bytes(len));
                    stat.size = len as u64;
                } else {
                    stat.size = match self.rng.below(4) {
                        0 => *self.rng.pick(EXTERNAL_SIZES),
                        1 => 0,
                        _ => 1 + self.rng.below(1 << 30),
                    };
                }
                // Payload and digest, also on inline and empty files (the writer ignores them).
                file.payload = match self.rng.below(4) {
                    0 => None,
                    1 => Some(Vec::new()),
                    2 => {
                        let len = 1 + self.rng.index(4095);
                        Some(self.rng.text(len, false))
                    }
                    _ => {
                        let hex = self.rng.bytes(32);
                        let mut p = format!("{:02x}/", hex[0]).into_bytes();
                        for b in &hex[1..] {
                            p.extend(format!("{b:02x}").bytes());
                        }
                        Some(p)
                    }
                };
                if self.rng.one_in(2) {
                    // A sha512 digest now and then, as in a sha512 repository's images.
                    file.digest = Some(if self.rng.one_in(4) {
                        AnyDigest::Sha512(Sha512Digest(self.rng.bytes(64).try_into().unwrap()))
                    } else {
                        AnyDigest::Sha256(Sha256Digest(self.rng.bytes(32).try_into().unwrap()))
                    });
                }
                Content::Regular(file)
            }
            S_IFLNK => {
                let len = match self.rng.below(5) {
                    0 => 4095,
                    1 => 2000 + self.rng.index(2095),
                    _ => 1 + self.rng.index(60),
                };
                let target = self.rng.text(len, false);
                stat.size = if self.rng.one_in(3) { 7 } else { len as u64 };
                Content::Symlink(target)
            }
            _ => {
                if ftype == S_IFBLK || ftype == S_IFCHR {
                    // kind 8 is a whiteout: a character device 0:0.
                    stat.rdev = if kind == 8 {
                        0
                    } else {
                        self.rng.next_u64() as u32
                    };
                }
                if self.rng.one_in(4) {
                    stat.size = self.rng.below(100_000);
                }
                if self.rng.one_in(4) {
                    stat.rdev = self.rng.next_u64() as u32;
                }
                Content::Special
            }
        };
        Inode {
            stat,
            xattrs: self.xattrs(),
            content,
        }
    }

    /// Hands each multiply-linked inode to one of its names at random: the owner need not be
    /// the first name.
    fn shuffle_owners(&mut self) {
        let mut names: HashMap<InodeId, Vec<(InodeId, usize)>> = HashMap::new();
        for (d, inode) in self.tree.inodes.iter().enumerate() {
            for (i, e) in inode.entries().unwrap_or_default().iter().enumerate() {
                names
                    .entry(e.inode)
                    .or_default()
                    .push((InodeId(d as u32), i));
            }
        }
        let mut linked: Vec<_> = names.into_iter().filter(|(_, n)| n.len() > 1).collect();
        linked.sort();
        for (_, places) in linked {
            let owner = self.rng.index(places.len());
            for (k, &(dir, i)) in places.iter().enumerate() {
                if let Content::Directory(entries) = &mut self.tree.inode_mut(dir).content {
                    entries[i].hardlink = k != owner;
                }
            }
        }
    }
}

fn is_whiteout(stat: &Stat) -> bool {
    stat.file_type() == Some(FileType::CharDevice) && stat.rdev == 0
}

/// The tree the reader gives back for an image of `tree` written at format `version`:
///
/// - directories: link count 2 + subdirectories; from version 1, a directory owning a
///   whiteout gets `trusted.overlay.opaque=x` and `user.overlay.opaque=x` (C reads these marks
///   back as ordinary xattrs);
/// - the mode is the 16 bits EROFS keeps;
/// - regular files: non-empty inline content sets the size and drops payload and digest; an
///   empty file has neither content, payload nor digest; an external file keeps a non-empty
///   payload and its digest;
/// - symlinks: size is the target's length; other types: size 0, and rdev only on devices
///   (whiteouts keep rdev 0);
/// - the `user.overlay.whiteout(s)` marks are dropped wherever they are.
///
/// Directory sizes and the order of xattrs are left to [`canonical`].
fn expected(tree: &Tree, version: u32) -> Tree {
    let mut out = tree.clone();
    for i in 0..out.inodes.len() {
        let (subdirs, has_whiteout) = match &tree.inodes[i].content {
            Content::Directory(entries) => {
                let owned = || entries.iter().filter(|e| !e.hardlink);
                let stat = |e: &DirEntry| &tree.inodes[e.inode.index()].stat;
                (
                    owned()
                        .filter(|e| stat(e).file_type() == Some(FileType::Directory))
                        .count() as u32,
                    owned().any(|e| is_whiteout(stat(e))),
                )
            }
            _ => (0, false),
        };
        let inode = &mut out.inodes[i];
        let stat = &mut inode.stat;
        stat.mode &= 0xffff;
        match &mut inode.content {
            Content::Directory(_) => {
                stat.nlink = 2 + subdirs;
                stat.rdev = 0;
                if version >= 1 && has_whiteout {
                    inode.set_xattr(b"trusted.overlay.opaque", b"x");
                    inode.set_xattr(b"user.overlay.opaque", b"x");
                }
            }
            Content::Regular(file) => {
                stat.rdev = 0;
                match file.inline.take() {
                    Some(c) if !c.is_empty() => {
                        stat.size = c.len() as u64;
                        *file = RegularFile {
                            inline: Some(c),
                            ..RegularFile::default()
                        };
                    }
                    Some(_) => {
                        stat.size = 0;
                        *file = RegularFile::default();
                    }
                    None if stat.size == 0 => *file = RegularFile::default(),
                    None => file.payload = file.payload.take().filter(|p| !p.is_empty()),
                }
            }
            Content::Symlink(target) => {
                stat.size = target.len() as u64;
                stat.rdev = 0;
            }
            Content::Special => {
                stat.size = 0;
                if !matches!(
                    stat.file_type(),
                    Some(FileType::CharDevice | FileType::BlockDevice)
                ) {
                    stat.rdev = 0;
                }
            }
        }
        inode
            .xattrs
            .retain(|x| x.name != b"user.overlay.whiteout" && x.name != b"user.overlay.whiteouts");
    }
    out
}

/// `tree` numbered and owned as the reader numbers and owns: inodes in depth-first order of
/// their first name, which owns the inode (later names are hard links); directory sizes
/// cleared (the writer computes them) and xattrs sorted (the reader gives inline ones, then
/// shared ones).
fn canonical(tree: &Tree) -> Tree {
    /// Numbers inodes in depth-first order of their first names; notes which names are not.
    fn visit(
        tree: &Tree,
        dir: InodeId,
        map: &mut HashMap<InodeId, InodeId>,
        order: &mut Vec<InodeId>,
        links: &mut BTreeSet<(InodeId, usize)>,
    ) {
        for (i, e) in tree
            .inode(dir)
            .entries()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if map.contains_key(&e.inode) {
                links.insert((dir, i));
                continue;
            }
            map.insert(e.inode, InodeId(order.len() as u32));
            order.push(e.inode);
            visit(tree, e.inode, map, order, links);
        }
    }
    let mut map = HashMap::from([(InodeId::ROOT, InodeId::ROOT)]);
    let mut order = vec![InodeId::ROOT];
    let mut links = BTreeSet::new();
    visit(tree, InodeId::ROOT, &mut map, &mut order, &mut links);
    let mut inodes = Vec::with_capacity(order.len());
    for &old in &order {
        let mut inode = tree.inode(old).clone();
        if let Content::Directory(entries) = &mut inode.content {
            inode.stat.size = 0;
            for (i, e) in entries.iter_mut().enumerate() {
                e.hardlink = links.contains(&(old, i));
                e.inode = map[&e.inode];
            }
        }
        inode.xattrs.sort();
        inodes.push(inode);
    }
    Tree { inodes }
}

/// The first dumpfile lines where two trees differ.
fn difference(want: &Tree, got: &Tree) -> String {
    let dump = |t: &Tree| {
        dumpfile::to_vec(t)
            .map(|d| String::from_utf8_lossy(&d).into_owned())
            .unwrap_or_else(|e| format!("(no dump: {e})"))
    };
    let (a, b) = (dump(want), dump(got));
    for (x, y) in a.lines().zip(b.lines()) {
        if x != y {
            let cut = |s: &str| s.chars().take(600).collect::<String>();
            return format!("want: {}\n got: {}", cut(x), cut(y));
        }
    }
    format!("{} lines, then {}", a.lines().count(), b.lines().count())
}

/// Whether the owner of every hard-linked inode is its first name in depth-first order (the
/// only trees whose image C and sealroot read back to the same owners).
fn owners_come_first(tree: &Tree) -> bool {
    let mut ok = true;
    let mut seen = BTreeSet::new();
    tree.walk(|_, e| ok &= seen.insert(e.inode) != e.hardlink);
    ok
}

/// Writes `tree`; checks the image reads back as [`expected`] and writes again the same.
/// Returns the image, or `None` when the writer refused the tree (and validation agreed).
fn check_round_trip(tree: &Tree, options: &WriteOptions, what: &str) -> Option<Vec<u8>> {
    let image = match erofs::write(tree, options) {
        Ok(image) => image,
        Err(e) => {
            check_refusal_agrees(tree, options, &e, what);
            return None;
        }
    };
    dumpfile::validate_with(tree, options)
        .unwrap_or_else(|e| panic!("{what}: written, but validation refuses it: {e}"));
    if tree.inodes.iter().any(|i| i.stat.size > i64::MAX as u64) {
        // C writes sizes up to 2^64 - 1 (and so does the writer), but the kernel refuses such
        // an image ("negative i_size"), and so does the reader.
        let err = erofs::read(&image).expect_err(what);
        assert!(err.to_string().contains("negative i_size"), "{what}: {err}");
        return Some(image);
    }
    let (back, sb) =
        erofs::read_with_superblock(&image).unwrap_or_else(|e| panic!("{what}: read: {e}"));
    let version = sb.composefs_version;
    assert!(
        (options.min_version..=options.max_version.max(options.min_version)).contains(&version),
        "{what}: version {version}"
    );
    let want = canonical(&expected(tree, version));
    let got = canonical(&back);
    assert!(
        want == got,
        "{what}: tree read back differs\n{}",
        difference(&want, &got)
    );

    let same = WriteOptions {
        min_version: version,
        max_version: version,
    };
    let again = erofs::write(&back, &same).unwrap_or_else(|e| panic!("{what}: rewrite: {e}"));
    if owners_come_first(tree) {
        assert!(again == image, "{what}: write(read(image)) != image");
    } else {
        // The owner moved to the first name, and with it the inode's place in the image (and
        // the directory a hard-linked whiteout marks); C does the same. From there on the
        // image is stable.
        let back_again = erofs::read(&again).unwrap_or_else(|e| panic!("{what}: reread: {e}"));
        let (want_again, got_again) =
            (canonical(&expected(&back, version)), canonical(&back_again));
        assert!(
            want_again == got_again,
            "{what}: second read differs\n{}",
            difference(&want_again, &got_again)
        );
        let third = erofs::write(&back_again, &same).unwrap();
        assert!(third == again, "{what}: image not stable after one round");
    }
    Some(image)
}

/// A tree the writer refused: validation must refuse it for the same reason (or the tree is
/// too large for the format, which only the writer can tell).
fn check_refusal_agrees(tree: &Tree, options: &WriteOptions, err: &WriteError, what: &str) {
    let validated = dumpfile::validate_with(tree, options);
    match err {
        WriteError::Invalid(e) => assert_eq!(
            validated.as_ref().err(),
            Some(e),
            "{what}: write and validate disagree"
        ),
        WriteError::TooLarge(_) => {}
        other => panic!("{what}: unexpected error {other}"),
    }
}

const OPTIONS: [WriteOptions; 3] = [
    WriteOptions {
        min_version: 0,
        max_version: 0,
    },
    WriteOptions {
        min_version: 0,
        max_version: 1,
    },
    WriteOptions {
        min_version: 1,
        max_version: 1,
    },
];

#[test]
fn random_trees_round_trip() {
    let mut written = 0;
    let mut refused = 0;
    let mut seen = BTreeSet::new();
    for seed in 0..400u64 {
        let tree = Gen::new(seed).tree(if seed % 10 == 0 { 6 } else { 3 });
        let options = OPTIONS[seed as usize % OPTIONS.len()];
        match check_round_trip(&tree, &options, &format!("seed {seed}")) {
            Some(image) => {
                written += 1;
                features(&tree, &image, &mut seen);
            }
            None => refused += 1,
        }
    }
    // The generator aims at valid trees; a few land beyond C's limits (2^53-byte files).
    assert!(
        written > 300,
        "only {written} trees written, {refused} refused"
    );
    let missing: Vec<_> = FEATURES.iter().filter(|f| !seen.contains(*f)).collect();
    assert!(missing.is_empty(), "no written tree had {missing:?}");
}

/// What the written random trees must have covered between them.
const FEATURES: &[&str] = &[
    "inline 0",
    "inline 1",
    "inline 64",
    "inline 65",
    "inline 4095",
    "inline 4096",
    "inline 4097",
    "inline 5000",
    "external over 4 GiB",
    "external of 2^53",
    "external near 2^64",
    "empty payload",
    "digest",
    "sha512 digest",
    "symlink of 4095",
    "name of 255",
    "root name 00-ff",
    "whiteout",
    "block device",
    "fifo",
    "socket",
    "hard link",
    "hard link, owner not first",
    "uid over 65535",
    "negative mtime",
    "nanoseconds",
    "nlink over 65535",
    "xattr trusted.overlay.*",
    "xattr trusted.overlay.overlay.*",
    "xattr security.*",
    "xattr system.posix_acl_*",
    "xattr without a known prefix",
    "xattr shared by many inodes",
    "inode with over 128 shared xattrs",
    "version 0 with a whiteout",
    "version 1",
];

/// Notes which [`FEATURES`] `tree` (written as `image`) has.
fn features(tree: &Tree, image: &[u8], seen: &mut BTreeSet<&'static str>) {
    let mut note = |f: &'static str| {
        assert!(FEATURES.contains(&f), "{f}");
        seen.insert(f);
    };
    let version = erofs::read_superblock(image).unwrap().composefs_version;
    if version == 1 {
        note("version 1");
    }
    let mut uses: HashMap<&Xattr, usize> = HashMap::new();
    for inode in &tree.inodes {
        let stat = &inode.stat;
        if stat.uid > 65_535 || stat.gid > 65_535 {
            note("uid over 65535");
        }
        if stat.mtime.sec < 0 {
            note("negative mtime");
        }
        if stat.mtime.nsec != 0 {
            note("nanoseconds");
        }
        if stat.nlink > 65_535 && inode.entries().is_none() {
            note("nlink over 65535");
        }
        match (&inode.content, stat.file_type()) {
            (Content::Regular(file), _) => {
                match &file.inline {
                    Some(c) => {
                        if let Ok(i) =
                            [0, 1, 64, 65, 4095, 4096, 4097, 5000].binary_search(&c.len())
                        {
                            const NAMES: [&str; 8] = [
                                "inline 0",
                                "inline 1",
                                "inline 64",
                                "inline 65",
                                "inline 4095",
                                "inline 4096",
                                "inline 4097",
                                "inline 5000",
                            ];
                            note(NAMES[i]);
                        }
                    }
                    None if stat.size > u64::MAX - (1 << 43) => note("external near 2^64"),
                    None if stat.size == 1 << 53 => note("external of 2^53"),
                    None if stat.size > 1 << 32 => note("external over 4 GiB"),
                    None => {}
                }
                if file.inline.is_none() && stat.size > 0 {
                    if file.payload.as_ref().is_some_and(|p| p.is_empty()) {
                        note("empty payload");
                    }
                    match file.digest {
                        Some(AnyDigest::Sha512(_)) => note("sha512 digest"),
                        Some(AnyDigest::Sha256(_)) => note("digest"),
                        None => {}
                    }
                }
            }
            (Content::Symlink(t), _) if t.len() == 4095 => note("symlink of 4095"),
            (_, Some(FileType::CharDevice)) if stat.rdev == 0 => {
                note("whiteout");
                if version == 0 {
                    note("version 0 with a whiteout");
                }
            }
            (_, Some(FileType::BlockDevice)) => note("block device"),
            (_, Some(FileType::Fifo)) => note("fifo"),
            (_, Some(FileType::Socket)) => note("socket"),
            _ => {}
        }
        for x in &inode.xattrs {
            *uses.entry(x).or_default() += 1;
            if x.name.starts_with(b"trusted.overlay.overlay.") {
                note("xattr trusted.overlay.overlay.*");
            } else if x.name.starts_with(b"trusted.overlay.") {
                note("xattr trusted.overlay.*");
            } else if x.name.starts_with(b"security.") {
                note("xattr security.*");
            } else if x.name.starts_with(b"system.posix_acl_") {
                note("xattr system.posix_acl_*");
            } else if erofs::xattr_split(&x.name).0 == 0 {
                note("xattr without a known prefix");
            }
        }
    }
    if uses.values().any(|&n| n > 10) {
        note("xattr shared by many inodes");
    }
    if tree
        .inodes
        .iter()
        .any(|i| i.xattrs.iter().filter(|x| uses[x] > 1).count() > 128)
    {
        note("inode with over 128 shared xattrs");
    }
    let mut any_link = false;
    tree.walk(|_, e| {
        any_link |= e.hardlink;
        if e.name.len() == 255 {
            note("name of 255");
        }
    });
    for e in tree.root().entries().unwrap_or_default() {
        if e.name.len() == 2 && e.name.iter().all(u8::is_ascii_hexdigit) {
            note("root name 00-ff");
        }
    }
    if any_link {
        note("hard link");
        if !owners_come_first(tree) {
            note("hard link, owner not first");
        }
    }
}

/// Regular files carrying the overlayfs xattrs the writer itself uses to mark whiteouts: the
/// escaped name of `trusted.overlay.whiteout` is the whiteout mark, so such a file reads back
/// as a whiteout, as in C; `trusted.overlay.whiteouts` and the `user.overlay.whiteout(s)`
/// marks are dropped.
#[test]
fn whiteout_marks_in_a_tree_read_back_as_c_reads_them() {
    let file = |xattr: &[u8]| {
        let mut inode = Inode::new(
            Stat {
                mode: S_IFREG | 0o644,
                nlink: 1,
                size: 3,
                ..Stat::default()
            },
            Content::Regular(RegularFile {
                inline: Some(b"abc".to_vec()),
                ..RegularFile::default()
            }),
        );
        inode.set_xattr(xattr, b"");
        inode.set_xattr(b"user.keep", b"1");
        inode
    };
    let mut tree = Tree::new(Stat {
        mode: 0o755,
        ..Stat::default()
    });
    let names: [&[u8]; 4] = [
        b"trusted.overlay.whiteout",
        b"trusted.overlay.whiteouts",
        b"user.overlay.whiteout",
        b"user.overlay.whiteouts",
    ];
    let mut entries = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let id = tree.push(file(name));
        entries.push(DirEntry {
            name: format!("f{i}").into_bytes(),
            inode: id,
            hardlink: false,
        });
    }
    tree.inodes[0].content = Content::Directory(entries);
    let image = erofs::write(&tree, &WriteOptions::default()).unwrap();
    let back = erofs::read(&image).unwrap();
    let only_keep = |i: usize| {
        let x = &back.inodes[i].xattrs;
        x.len() == 1 && x[0].name == b"user.keep"
    };
    let whiteout = &back.inodes[1];
    assert!(is_whiteout(&whiteout.stat) && whiteout.stat.size == 0);
    assert_eq!(whiteout.content, Content::Special);
    for i in 1..=4 {
        assert!(only_keep(i), "inode {i}: {:?}", back.inodes[i].xattrs);
    }
    for i in 2..=4 {
        assert_eq!(back.inodes[i].stat.file_type(), Some(FileType::Regular));
    }
}

/// A chain of directories as deep as the writer writes reads back (on a test thread's small
/// stack, in a debug build): the writer and the reader share one limit,
/// `dumpfile::limits::DEPTH_MAX`. One level deeper is refused by validation and the writer,
/// and an image made that deep by hand is refused by the reader, not a stack overflow.
#[test]
fn deep_directories() {
    use dumpfile::limits::DEPTH_MAX;
    let dir_stat = Stat {
        mode: S_IFDIR | 0o755,
        nlink: 2,
        ..Stat::default()
    };
    let link = |tree: &mut Tree, dir: InodeId, name: &[u8], id: InodeId| {
        let Content::Directory(entries) = &mut tree.inode_mut(dir).content else {
            unreachable!()
        };
        entries.push(DirEntry {
            name: name.to_vec(),
            inode: id,
            hardlink: false,
        });
    };
    // Directories `a/d/d/…` down to `depth` (the root is depth 0); returns the deepest.
    let chain = |tree: &mut Tree, depth: usize| {
        let mut dir = InodeId::ROOT;
        for level in 0..depth {
            let id = tree.push(Inode::new(dir_stat.clone(), Content::Directory(Vec::new())));
            link(tree, dir, if level == 0 { b"a" } else { b"d" }, id);
            dir = id;
        }
        dir
    };

    let mut ok = Tree::new(dir_stat.clone());
    chain(&mut ok, DEPTH_MAX);
    dumpfile::validate(&ok).expect("as deep as the limit validates");
    let image = erofs::write(&ok, &WriteOptions::default()).unwrap();
    let back = erofs::read(&image).expect("the deepest tree the writer writes reads back");
    assert_eq!(back.inodes.len(), DEPTH_MAX + 1);
    // What consumers of a read tree do with it works at that depth too.
    let mut names = 0;
    back.walk(|_, _| names += 1);
    assert_eq!(names, DEPTH_MAX);
    dumpfile::to_vec(&back).expect("the tree prints");

    // One level deeper: refused before writing, naming the directory and the limit.
    let mut deep = Tree::new(dir_stat.clone());
    chain(&mut deep, DEPTH_MAX + 1);
    let want = format!(
        "nested {} levels deep; images hold at most {DEPTH_MAX}",
        DEPTH_MAX + 1
    );
    let err = dumpfile::validate(&deep).unwrap_err().to_string();
    assert!(
        err.contains(&want),
        "{}",
        &err[err.len().saturating_sub(200)..]
    );
    assert!(err.starts_with("/a/d/d/"), "{}", &err[..40]);
    let err = erofs::write(&deep, &WriteOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&want),
        "{}",
        &err[err.len().saturating_sub(200)..]
    );

    // An image one level deeper than the limit, made by hand: the deepest directory's one
    // entry, a fifo, is pointed at the directory `/z/zz-target-dir` (read first down there,
    // the walk being depth first in name order).
    let mut tree = Tree::new(dir_stat.clone());
    let leaf = chain(&mut tree, DEPTH_MAX);
    let fifo = tree.push(Inode::new(
        Stat {
            mode: S_IFIFO | 0o644,
            nlink: 1,
            ..Stat::default()
        },
        Content::Special,
    ));
    link(&mut tree, leaf, b"leaf-fifo-entry", fifo);
    let parent = tree.push(Inode::new(dir_stat.clone(), Content::Directory(Vec::new())));
    link(&mut tree, InodeId::ROOT, b"z", parent);
    let target = tree.push(Inode::new(dir_stat.clone(), Content::Directory(Vec::new())));
    link(&mut tree, parent, b"zz-target-dir", target);
    let mut image = erofs::write(&tree, &WriteOptions::default()).unwrap();
    erofs::read(&image).expect("the unpatched image reads");
    let find = |image: &[u8], name: &[u8]| {
        let at: Vec<usize> = image
            .windows(name.len())
            .enumerate()
            .filter(|(_, w)| *w == name)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at.len(), 1, "{}", String::from_utf8_lossy(name));
        at[0]
    };
    let u16_at = |image: &[u8], at: usize| u16::from_le_bytes([image[at], image[at + 1]]);
    // `/z`'s entries `.`, `..`, `zz-target-dir`: three 12-byte dirents, then the names.
    let names = find(&image, b"zz-target-dir") - (36 + 1 + 2);
    assert_eq!(u16_at(&image, names + 8), 36, "/z dirents where expected");
    let target_nid: [u8; 8] = image[names + 24..names + 32].try_into().unwrap();
    // The leaf's `.`, `..`, `leaf-fifo-entry` likewise.
    let names = find(&image, b"leaf-fifo-entry") - (36 + 1 + 2);
    assert_eq!(u16_at(&image, names + 8), 36, "leaf dirents where expected");
    assert_eq!(u16_at(&image, names + 24 + 8), 39);
    image[names + 24..names + 32].copy_from_slice(&target_nid);
    image[names + 24 + 10] = 2; // EROFS_FT_DIR
    let err = erofs::read(&image).unwrap_err().to_string();
    assert!(
        err.contains(&format!("directories nested too deeply (over {DEPTH_MAX})")),
        "{err}"
    );
}

/// Corruptions of valid trees, each of which the writer must refuse for the same reason as
/// validation, without panicking (dangling inode numbers included).
#[test]
fn write_and_validate_refuse_the_same_trees() {
    type Corrupt = fn(&mut Tree, &mut Rng) -> bool;
    fn entry_of(tree: &mut Tree, rng: &mut Rng) -> Option<(usize, usize)> {
        let dirs: Vec<usize> = (0..tree.inodes.len())
            .filter(|&i| tree.inodes[i].entries().is_some_and(|e| !e.is_empty()))
            .collect();
        let d = *rng.pick(&dirs);
        let n = tree.inodes[d].entries().unwrap().len();
        Some((d, rng.index(n)))
    }
    fn entries(tree: &mut Tree, d: usize) -> &mut Vec<DirEntry> {
        match &mut tree.inodes[d].content {
            Content::Directory(e) => e,
            _ => unreachable!(),
        }
    }
    let corruptions: &[(&str, Corrupt)] = &[
        ("bad name", |t, r| {
            let Some((d, i)) = entry_of(t, r) else {
                return false;
            };
            let bad: &[&[u8]] = &[b"", b".", b"..", b"a/b", b"a\0b", &[b'n'; 256]];
            entries(t, d)[i].name = r.pick(bad).to_vec();
            true
        }),
        ("unsorted or duplicate names", |t, r| {
            let Some((d, _)) = entry_of(t, r) else {
                return false;
            };
            let e = entries(t, d);
            if e.len() < 2 {
                return false;
            }
            if r.one_in(2) {
                e.swap(0, 1);
            } else {
                e[1].name = e[0].name.clone();
            }
            true
        }),
        ("dangling inode", |t, r| {
            let Some((d, i)) = entry_of(t, r) else {
                return false;
            };
            entries(t, d)[i].inode = InodeId(u32::MAX - r.below(3) as u32);
            true
        }),
        ("inode owned twice", |t, r| {
            let Some((d, i)) = entry_of(t, r) else {
                return false;
            };
            let e = entries(t, d);
            if e.len() < 2 || e[i].hardlink {
                return false;
            }
            let j = (i + 1) % e.len();
            e[j].inode = e[i].inode;
            e[j].hardlink = false;
            true
        }),
        ("hard link to a directory or to nothing owned", |t, r| {
            let Some((d, i)) = entry_of(t, r) else {
                return false;
            };
            let target = InodeId(r.index(t.inodes.len()) as u32);
            let e = &mut entries(t, d)[i];
            e.inode = target;
            e.hardlink = true;
            true
        }),
        ("mode that does not match the content", |t, r| {
            let i = r.index(t.inodes.len());
            let m = &mut t.inodes[i].stat.mode;
            *m = (*m & !S_IFMT) | r.pick(&[0, S_IFREG, S_IFDIR, S_IFLNK, 0o170000]);
            true
        }),
        ("bad symlink target", |t, r| {
            let i = r.index(t.inodes.len());
            if !matches!(t.inodes[i].content, Content::Symlink(_)) {
                return false;
            }
            let bad: &[Vec<u8>] = &[Vec::new(), b"a\0b".to_vec(), vec![b'x'; 4096]];
            t.inodes[i].content = Content::Symlink(r.pick(bad).clone());
            true
        }),
        ("bad regular file", |t, r| {
            let i = r.index(t.inodes.len());
            let Content::Regular(file) = &mut t.inodes[i].content else {
                return false;
            };
            match r.below(4) {
                0 => file.inline = Some(vec![1; 5001]),
                1 => file.payload = Some(b"a\0b".to_vec()),
                2 => file.payload = Some(vec![b'p'; 4096]),
                _ => {
                    file.inline = None;
                    t.inodes[i].stat.size = (1 << 53) + 1;
                }
            }
            true
        }),
        ("bad xattr", |t, r| {
            let i = r.index(t.inodes.len());
            let x = &mut t.inodes[i].xattrs;
            match r.below(6) {
                0 => x.push(Xattr {
                    name: Vec::new(),
                    value: Vec::new(),
                }),
                1 => x.push(Xattr {
                    name: b"user.a\0b".to_vec(),
                    value: Vec::new(),
                }),
                2 => x.push(Xattr {
                    name: vec![b'u'; 256],
                    value: Vec::new(),
                }),
                3 => x.push(Xattr {
                    name: b"user.big".to_vec(),
                    value: vec![0; 65536],
                }),
                4 => {
                    let dup = Xattr {
                        name: b"user.dup".to_vec(),
                        value: Vec::new(),
                    };
                    x.push(dup.clone());
                    x.push(dup);
                }
                _ => {
                    for k in 0..3 {
                        let name = format!("user.budget{k}").into_bytes();
                        x.push(Xattr {
                            name,
                            value: vec![7; 12_000],
                        });
                    }
                }
            }
            true
        }),
        ("root that is not a directory", |t, _| {
            t.inodes[0].content = Content::Special;
            t.inodes[0].stat.mode = S_IFCHR;
            true
        }),
    ];
    let mut refused = 0;
    for seed in 0..300u64 {
        let mut rng = Rng::new(1_000_000 + seed);
        let mut tree = Gen::new(seed).tree(2);
        let (what, corrupt) = corruptions[seed as usize % corruptions.len()];
        if !corrupt(&mut tree, &mut rng) {
            continue;
        }
        let options = OPTIONS[seed as usize % OPTIONS.len()];
        let label = format!("seed {seed}, {what}");
        match erofs::write(&tree, &options) {
            Ok(_) => {
                // Some corruptions can land on a valid tree (a mode set to what it was).
                dumpfile::validate_with(&tree, &options)
                    .unwrap_or_else(|e| panic!("{label}: written, but validation refuses: {e}"));
            }
            Err(e) => {
                check_refusal_agrees(&tree, &options, &e, &label);
                refused += 1;
            }
        }
    }
    assert!(refused > 200, "only {refused} corrupted trees refused");
    // Versions the format does not know.
    let tree = Gen::new(7).tree(1);
    for (min_version, max_version) in [(2, 2), (0, 2), (2, 0)] {
        let options = WriteOptions {
            min_version,
            max_version,
        };
        let e = erofs::write(&tree, &options).unwrap_err();
        check_refusal_agrees(&tree, &options, &e, "bad version");
    }
}

/// The images the mutation test starts from: the small conformance vectors, and a few random
/// trees.
fn seed_images() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, _) in vectors::checksums() {
        // The OS trees and configurations are large: slow to parse in a debug build, and
        // their images too big to seed.
        if name.starts_with("cs9-") || name.starts_with("config") {
            continue;
        }
        let Ok(tree) = dumpfile::parse_compat(&vectors::load(&name)) else {
            continue;
        };
        let options = match vectors::version(&name) {
            Some(v) => WriteOptions {
                min_version: v,
                max_version: v,
            },
            None => WriteOptions::default(),
        };
        let image = erofs::write(&tree, &options).unwrap();
        if image.len() <= 64 * 1024 {
            out.push((name, image));
        }
    }
    for seed in [3u64, 11, 25, 40] {
        let tree = Gen::new(seed).tree(1);
        if let Ok(image) = erofs::write(&tree, &OPTIONS[1]) {
            out.push((format!("random tree {seed}"), image));
        }
    }
    out
}

/// Every corrupted image is read to an error or a tree of the shape every tree has, never a
/// panic.
#[test]
fn corrupted_images_never_panic() {
    let images = seed_images();
    assert!(images.len() >= 10, "{} seed images", images.len());
    let mut rng = Rng::new(42);
    let mut reads = 0;
    let mut accepted = 0;
    let mut try_read = |image: &[u8], what: &dyn Fn() -> String| {
        let result = erofs::read(image);
        reads += 1;
        if let Ok(tree) = result {
            accepted += 1;
            check_shape(&tree, &what());
            // What the reader accepts, the writer handles without panicking (checked on some:
            // most corrupted images that read are the original with a changed byte of data).
            if accepted % 8 == 0 {
                let _ = erofs::write(&tree, &WriteOptions::default());
            }
        }
    };
    for (name, image) in &images {
        // The metadata (header, superblock, inodes, xattrs, inline dirents) is where
        // corruption matters; it sits before the data blocks.
        let meta_end = (erofs::read_superblock(image).unwrap().xattr_blkaddr as usize + 1)
            * erofs::BLOCK_SIZE as usize;
        let meta_end = meta_end.min(image.len());
        // The composefs header (then padding), and the superblock.
        let mut positions: Vec<usize> = (0..16).chain((1024..1024 + 128).step_by(2)).collect();
        positions.extend((0..300).map(|_| 1024 + rng.index(meta_end - 1024)));
        positions.extend((0..40).map(|_| rng.index(image.len())));
        let mut copy = image.clone();
        for &pos in &positions {
            let old = copy[pos];
            let new = match rng.below(6) {
                0 => old ^ (1 << rng.below(8)),
                1 => 0,
                2 => 0xff,
                3 => 0x80,
                4 => old.wrapping_add(1),
                _ => rng.next_u64() as u8,
            };
            copy[pos] = new;
            try_read(&copy, &|| {
                format!("{name}: byte {pos} {old:#x} -> {new:#x}")
            });
            copy[pos] = old;
        }
        // Whole fields set to extremes: sizes, block addresses, nids, counts.
        for _ in 0..150 {
            let pos = 1024 + rng.index(meta_end - 1024 - 8);
            let width = *rng.pick(&[2usize, 4, 8]);
            let value = *rng.pick(&[u64::MAX, u64::MAX >> 1, 0x8000_0000, 0xffff, 4096, 1]);
            let saved = copy[pos..pos + width].to_vec();
            copy[pos..pos + width].copy_from_slice(&value.to_le_bytes()[..width]);
            try_read(&copy, &|| {
                format!("{name}: {width} bytes at {pos} set to {value:#x}")
            });
            copy[pos..pos + width].copy_from_slice(&saved);
        }
        // Truncated anywhere, and at every block boundary.
        let mut cuts: Vec<usize> = (0..image.len()).step_by(4096).collect();
        cuts.extend((0..40).map(|_| rng.index(image.len())));
        for cut in cuts {
            try_read(&image[..cut], &|| {
                format!("{name}: truncated to {cut} bytes")
            });
        }
    }
    eprintln!("{reads} corrupted reads, {accepted} accepted");
}

/// What every tree the reader returns must be: the root a directory, every entry naming an
/// inode of the tree, every inode but the root owned by exactly one name, and no hard link to
/// a directory (so no loops).
fn check_shape(tree: &Tree, what: &str) {
    assert!(
        tree.root().entries().is_some(),
        "{what}: root not a directory"
    );
    let mut owners = vec![0u32; tree.inodes.len()];
    for inode in &tree.inodes {
        for e in inode.entries().unwrap_or_default() {
            let target = tree
                .inodes
                .get(e.inode.index())
                .unwrap_or_else(|| panic!("{what}: dangling inode {}", e.inode.0));
            if e.hardlink {
                assert!(
                    target.entries().is_none(),
                    "{what}: hard link to a directory"
                );
            } else {
                owners[e.inode.index()] += 1;
            }
        }
    }
    assert_eq!(owners[0], 0, "{what}: the root has a name");
    assert!(
        owners[1..].iter().all(|&n| n == 1),
        "{what}: inode owned {owners:?} times"
    );
}

/// Dirents pointed elsewhere: at the directory itself, an ancestor, a sibling, a file. Every
/// loop or second name for a directory must be refused, whatever order the walk meets it in.
#[test]
fn redirected_entries_never_make_loops() {
    let dir = |name: &str, inode: u32| DirEntry {
        name: name.as_bytes().to_vec(),
        inode: InodeId(inode),
        hardlink: false,
    };
    let stat = |mode| Stat {
        mode,
        nlink: 1,
        ..Stat::default()
    };
    let mut tree = Tree::new(stat(S_IFDIR | 0o755));
    // / -> a -> b -> c, each with a file; names sorted so that a subdirectory comes before
    // and after the other entries.
    let mut parent = InodeId::ROOT;
    for level in 0..3 {
        let d = tree.push(Inode::new(
            stat(S_IFDIR | 0o755),
            Content::Directory(Vec::new()),
        ));
        let f = tree.push(Inode::new(
            stat(S_IFREG | 0o644),
            Content::Regular(RegularFile::default()),
        ));
        let (dn, fname) = if level == 1 { ("z", "f") } else { ("d", "x") };
        let mut entries = vec![dir(dn, d.0), dir(fname, f.0)];
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        tree.inode_mut(parent).content = Content::Directory(entries);
        parent = d;
    }
    let image = erofs::write(&tree, &OPTIONS[0]).unwrap();
    let sb = erofs::read_superblock(&image).unwrap();
    let meta = (sb.meta_blkaddr as usize * erofs::BLOCK_SIZE as usize).max(1152);
    let u64_at = |b: &[u8], p: usize| u64::from_le_bytes(b[p..p + 8].try_into().unwrap());
    // Dirents of directories and regular files (not the 256 root whiteouts): a small nid, a
    // name offset, the type.
    let dirents: Vec<usize> = (meta..image.len() - 12)
        .step_by(4)
        .filter(|&p| {
            let nid = u64_at(&image, p);
            let ft = image[p + 10];
            nid < 4096 && (ft == 1 || ft == 2) && image[p + 11] == 0 && image[p + 9] < 16
        })
        .collect();
    let nids: BTreeSet<u64> = dirents.iter().map(|&p| u64_at(&image, p)).collect();
    let mut copy = image.clone();
    let mut tries = 0;
    for &p in &dirents {
        for &nid in &nids {
            copy[p..p + 8].copy_from_slice(&nid.to_le_bytes());
            if let Ok(back) = erofs::read(&copy) {
                check_shape(&back, &format!("u64 at {p} set to {nid}"));
            }
            tries += 1;
        }
        copy[p..p + 8].copy_from_slice(&image[p..p + 8]);
    }
    assert!(tries > 50, "{tries} redirections tried");
}

/// Inodes whose data points at the same blocks: a valid image gives each inode bytes of its
/// own, so data read beyond the image's own size means blocks are shared, and a small image
/// could otherwise read as a huge tree.
#[test]
fn shared_data_blocks_are_refused() {
    const FILES: u32 = 64;
    let mut tree = Tree::new(Stat {
        mode: 0o755,
        ..Stat::default()
    });
    let mut entries = Vec::new();
    for i in 0..FILES {
        let id = tree.push(Inode::new(
            Stat {
                mode: S_IFREG | 0o644,
                nlink: 1,
                size: 4096,
                ..Stat::default()
            },
            Content::Regular(RegularFile {
                inline: Some(vec![i as u8; 4096]),
                ..RegularFile::default()
            }),
        ));
        entries.push(DirEntry {
            name: format!("f{i:02}").into_bytes(),
            inode: id,
            hardlink: false,
        });
    }
    tree.inodes[0].content = Content::Directory(entries);
    let mut image = erofs::write(&tree, &OPTIONS[0]).unwrap();
    erofs::read(&image).expect("the image as written");
    // Every file's block address (at byte 16 of compact and extended inodes alike) set to
    // the first file's, and the other files' blocks cut off the end.
    let sb = erofs::read_superblock(&image).unwrap();
    let start = sb.meta_blkaddr as usize * erofs::BLOCK_SIZE as usize;
    let end = sb.xattr_blkaddr as usize * erofs::BLOCK_SIZE as usize + 4096;
    let u16_at = |b: &[u8], p: usize| u16::from_le_bytes([b[p], b[p + 1]]);
    let u32_at = |b: &[u8], p: usize| u32::from_le_bytes(b[p..p + 4].try_into().unwrap());
    let files: Vec<usize> = (start.max(1152)..end.min(image.len()) - 32)
        .step_by(32)
        .filter(|&p| u16_at(&image, p + 4) == (S_IFREG | 0o644) as u16)
        .filter(|&p| u32_at(&image, p + 8) == 4096)
        .collect();
    assert_eq!(files.len(), FILES as usize);
    let first = files.iter().map(|&p| u32_at(&image, p + 16)).min().unwrap();
    for &p in &files {
        image[p + 16..p + 20].copy_from_slice(&first.to_le_bytes());
    }
    erofs::read(&image).expect("sharing within the image's size still reads");
    image.truncate((first as usize + 1) * 4096);
    let err = erofs::read(&image).unwrap_err();
    assert!(err.to_string().contains("share data blocks"), "{err}");
}

/// Shared xattrs let an image name one value from many inodes; a reader that copied it for
/// each would turn a small hostile image into gigabytes. The reader bounds what it decodes
/// (16 times the image plus 64 MiB) and says so; an ordinary amount of sharing reads fine.
#[test]
fn shared_xattr_expansion_is_bounded() {
    use sealroot_format::{
        Content, DirEntry, Inode, RegularFile, Stat, Tree, Xattr, S_IFDIR, S_IFREG,
    };
    let tree_with = |files: usize| {
        let mut tree = Tree::new(Stat {
            mode: S_IFDIR | 0o755,
            ..Stat::default()
        });
        let mut entries = Vec::new();
        for i in 0..files {
            let mut inode = Inode::new(
                Stat {
                    mode: S_IFREG | 0o644,
                    nlink: 1,
                    ..Stat::default()
                },
                Content::Regular(RegularFile::default()),
            );
            inode.xattrs.push(Xattr {
                name: b"user.big".to_vec(),
                value: vec![b'x'; 30_000],
            });
            let id = tree.push(inode);
            entries.push(DirEntry {
                name: format!("f{i:05}").into_bytes(),
                inode: id,
                hardlink: false,
            });
        }
        tree.inode_mut(sealroot_format::InodeId::ROOT).content = Content::Directory(entries);
        tree
    };
    let ok = erofs::write(&tree_with(100), &erofs::WriteOptions::default()).unwrap();
    assert_eq!(erofs::read(&ok).unwrap().inodes.len(), 101);
    let hostile = erofs::write(&tree_with(5000), &erofs::WriteOptions::default()).unwrap();
    assert!(
        hostile.len() < 1 << 20,
        "a small image: {} bytes",
        hostile.len()
    );
    let err = erofs::read(&hostile).unwrap_err().to_string();
    assert!(err.contains("xattrs expand"), "{err}");
}

/// An inode's inline xattr area can hold thousands of entries of the same name (C writes
/// one of each, but a hostile image need not): the kernel's `getxattr` would find the first,
/// C's reader keeps the last, so the reader refuses them, without comparing each to all
/// before it.
#[test]
fn duplicate_inline_xattrs_are_refused() {
    // One fifo with `user.a` of 32003 bytes: its entry, header (4), suffix `a` and value,
    // takes 32008 bytes of the inline area, room for 4001 entries of 8 bytes.
    let value_len = 32_003;
    let mut tree = Tree::new(Stat {
        mode: S_IFDIR | 0o755,
        ..Stat::default()
    });
    let mut fifo = Inode::new(
        Stat {
            mode: S_IFIFO | 0o644,
            nlink: 1,
            ..Stat::default()
        },
        Content::Special,
    );
    fifo.xattrs.push(Xattr {
        name: b"user.a".to_vec(),
        value: vec![0xa5; value_len],
    });
    let id = tree.push(fifo);
    tree.inode_mut(InodeId::ROOT).content = Content::Directory(vec![DirEntry {
        name: b"f".to_vec(),
        inode: id,
        hardlink: false,
    }]);
    let mut image = erofs::write(&tree, &WriteOptions::default()).unwrap();
    let value_at = image
        .windows(value_len)
        .position(|w| w.iter().all(|&b| b == 0xa5))
        .unwrap();
    let entry_at = value_at - 5;
    assert_eq!(&image[entry_at..entry_at + 5], &[1, 1, 0x03, 0x7d, b'a']);
    // Entries `user.a` (index 1, suffix `a`) and `user.b`, alternating, each with a one-byte
    // value: its number modulo 251.
    let count = 4001;
    for i in 0..count {
        let at = entry_at + 8 * i;
        let suffix = if i % 2 == 0 { b'a' } else { b'b' };
        image[at..at + 8].copy_from_slice(&[1, 1, 1, 0, suffix, (i % 251) as u8, 0, 0]);
    }
    // The name filter as composefs writes it for `user.a` and `user.b`, so that the names
    // themselves are what is refused.
    let filter =
        !(1u32 << erofs::xattr_filter_bit(1, b"a") | 1 << erofs::xattr_filter_bit(1, b"b"));
    let header_at = entry_at - erofs::XATTR_HEADER_SIZE as usize;
    image[header_at..header_at + 4].copy_from_slice(&filter.to_le_bytes());
    let err = erofs::read(&image).unwrap_err().to_string();
    assert!(
        err.contains("the same name twice") || err.contains("names not in order"),
        "{err}"
    );
}
