//! The EROFS writer, byte-identical to C `mkcomposefs` (libcomposefs `lcfs-writer-erofs.c`).
//!
//! The image is what gets signed, so every choice here follows the C writer exactly:
//!
//! 1. **Rewrite for overlayfs.** Existing `trusted.overlay.*` xattrs are escaped to
//!    `trusted.overlay.overlay.*`; external regular files get `trusted.overlay.metacopy`
//!    (with the fs-verity digest when known) and `trusted.overlay.redirect=/PAYLOAD`; character
//!    devices 0:0 (whiteouts) become empty regular files marked with escaped whiteout xattrs,
//!    and their directory is marked too (format version 1 adds the `opaque=x` marks); the root
//!    gets `trusted.overlay.opaque=y` and whiteouts `00`…`ff` for names it lacks.
//! 2. **Order.** Every directory gets `.` and `..`; entries sorted by name bytes; inodes
//!    numbered breadth-first, names that are hard links skipped; xattrs sorted by name.
//! 3. **Shared xattrs.** A (name, value) pair used by more than one inode goes to the shared
//!    xattr area, in descending (name, length, value) order.
//! 4. **Layout.** Inodes follow the superblock, each on a 32-byte slot, compact (32 bytes) when
//!    the mtime is the tree's minimum and the ids and size fit, otherwise extended (64 bytes);
//!    small tails (directory blocks up to half a block, inline file content, symlink targets,
//!    chunk indexes) are packed right after the inode, padded so they never cross a block.
//!    Then the shared xattrs, then whole data blocks.

use std::collections::HashMap;

use super::layout::*;
use crate::tree::{Content, FileType, InodeId, Mtime, Tree, S_IFCHR, S_IFDIR, S_IFMT, S_IFREG};

/// Options of [`write()`]: the format-version range, as `mkcomposefs --min-version/--max-version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// The lowest composefs format version to write (default 0).
    pub min_version: u32,
    /// The highest version the writer may bump to when the tree needs it (default 1).
    pub max_version: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            min_version: 0,
            max_version: 1,
        }
    }
}

/// Why an image could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The tree breaks a rule C `mkcomposefs` enforces when it writes (bad names, modes,
    /// sizes, xattrs, hard links...). The same checks as [`crate::dumpfile::validate_with`].
    #[error(transparent)]
    Invalid(#[from] crate::dumpfile::DumpfileError),
    /// More inodes, xattrs or metadata than the format's fields can hold.
    #[error("the tree is too large for a composefs image ({0})")]
    TooLarge(&'static str),
    /// Writing to the sink of [`write_to`] failed.
    #[error("writing the image: {1}")]
    Io(std::io::ErrorKind, String),
}

/// An xattr as written. Names and values are borrowed from the tree, are static (the names
/// the rewrite adds), or were made in the writer's arena (values the rewrite makes, escaped
/// names): nothing is allocated or freed one xattr at a time.
#[derive(Clone)]
struct WXattr<'t> {
    name: &'t [u8],
    value: &'t [u8],
    /// Offset in the shared area, when this xattr is written as a shared reference.
    shared: Option<u64>,
}

#[derive(Clone, Copy)]
enum Data<'t> {
    None,
    /// Inline file content.
    Inline(&'t [u8]),
    /// A regular file whose content lives in a backing object.
    External {
        payload: Option<&'t [u8]>,
        digest: Option<&'t sealroot_verity::AnyDigest>,
    },
    /// A symlink target.
    Symlink(&'t [u8]),
}

struct Child<'t> {
    name: &'t [u8],
    /// Index of the target in `nodes`.
    node: u32,
}

/// An inode as written: the tree's inode after the overlayfs rewrite, plus layout.
struct Node<'t> {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    rdev: u32,
    size: u64,
    mtime: Mtime,
    xattrs: Vec<WXattr<'t>>,
    data: Data<'t>,
    children: Vec<Child<'t>>,
    parent: u32,
    // Layout, as compute_erofs_inodes sets it.
    compact: bool,
    ipad: u64,
    xattr_size: u64,
    isize: u64,
    nid: u64,
    n_blocks: u64,
    tailsize: u64,
}

impl<'t> Node<'t> {
    /// A node with these attributes and no layout yet.
    fn new(
        stat: &crate::tree::Stat,
        size: u64,
        xattrs: Vec<WXattr<'t>>,
        data: Data<'t>,
        parent: u32,
    ) -> Self {
        Node {
            mode: stat.mode,
            uid: stat.uid,
            gid: stat.gid,
            nlink: stat.nlink,
            rdev: stat.rdev,
            size,
            mtime: stat.mtime,
            xattrs,
            data,
            children: Vec::new(),
            parent,
            compact: false,
            ipad: 0,
            xattr_size: 0,
            isize: 0,
            nid: 0,
            n_blocks: 0,
            tailsize: 0,
        }
    }

    fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }

    /// `lcfs_node_set_xattr`: set or replace (C's size budget is checked by validation).
    fn set_xattr(&mut self, name: &'static [u8], value: &'t [u8]) {
        match self.xattrs.iter_mut().find(|x| x.name == name) {
            Some(x) => x.value = value,
            None => self.xattrs.push(WXattr {
                name,
                value,
                shared: None,
            }),
        }
    }
}

const OVERLAY_PREFIX: &[u8] = b"trusted.overlay.";
const OVERLAY_ESCAPE_PREFIX: &[u8] = b"trusted.overlay.overlay.";

/// Writes `tree` as a composefs EROFS image, exactly as C `mkcomposefs` would.
///
/// The tree is first checked with the same rules C applies while writing
/// ([`crate::dumpfile::validate_with`]); a tree that passes is written, one that does not is
/// refused with the path and the problem.
pub fn write(tree: &Tree, options: &WriteOptions) -> Result<Vec<u8>, WriteError> {
    let mut image = Vec::new();
    write_to(tree, options, &mut image)?;
    Ok(image)
}

/// The composefs format version [`write()`] would give `tree` with `options`: the lowest
/// the options allow that can hold the tree.
///
/// # Errors
/// [`WriteError`] if the tree cannot be written within the options.
pub fn version_for(tree: &Tree, options: &WriteOptions) -> Result<u32, WriteError> {
    Ok(crate::dumpfile::validate::validate(tree, options)?)
}

/// Like [`write()`], streaming the image into `sink` instead of building it in memory (the
/// image of an OS tree is tens of MiB); returns its size. On an error, part of the image may
/// have been written.
pub fn write_to(
    tree: &Tree,
    options: &WriteOptions,
    sink: &mut dyn std::io::Write,
) -> Result<u64, WriteError> {
    let version = crate::dumpfile::validate::validate(tree, options)?;
    // The xattr names and values the overlayfs rewrite makes: two per external file.
    let arena = bumpalo::Bump::new();
    let mut w = Writer::build(tree, &arena, version)?;
    w.compute_shared_xattrs();
    w.compute_layout()?;
    w.emit(sink)
}

struct Writer<'t> {
    nodes: Vec<Node<'t>>,
    /// The tree inode each node came from (None for the synthetic root whiteouts).
    sources: Vec<Option<InodeId>>,
    version: u32,
    min_mtime: Mtime,
    has_acl: bool,
    /// The shared xattrs in the order of the shared area, as (node, xattr) of their first use.
    shared: Vec<(u32, u32)>,
    shared_size: u64,
    inodes_end: u64,
    n_data_blocks: u64,
}

/// Where each name of a directory points, before hard links are resolved.
enum Kind {
    Owner(InodeId),
    Link(InodeId),
    Dot,
    DotDot,
    RootWhiteout,
}

/// The names `00`..`ff` of the whiteouts C adds to the root.
fn whiteout_names() -> &'static [[u8; 2]] {
    static NAMES: std::sync::OnceLock<Vec<[u8; 2]>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        (0..=255u8)
            .map(|i| [HEX[usize::from(i >> 4)], HEX[usize::from(i & 15)]])
            .collect()
    })
}

impl<'t> Writer<'t> {
    /// Builds the nodes in breadth-first order with the overlayfs rewrite applied. `tree` has
    /// passed validation: names are valid and sorted, every inode but the root is owned once,
    /// hard links point at owned non-directories, modes match contents.
    fn build(tree: &'t Tree, arena: &'t bumpalo::Bump, version: u32) -> Result<Self, WriteError> {
        let root = &tree.inodes[0];
        let mut w = Writer {
            nodes: Vec::with_capacity(tree.inodes.len() + 256),
            sources: Vec::with_capacity(tree.inodes.len() + 256),
            version,
            min_mtime: root.stat.mtime,
            has_acl: false,
            shared: Vec::new(),
            shared_size: 0,
            inodes_end: 0,
            n_data_blocks: 0,
        };
        if tree.inodes.len() >= u32::MAX as usize - 256 {
            return Err(WriteError::TooLarge("more than 2^32 inodes"));
        }
        // Tree inode -> node index of its owner; hard links are resolved after the walk.
        let mut node_of: Vec<u32> = vec![u32::MAX; tree.inodes.len()];
        // (directory node, position in its children, target inode) of every hard link.
        let mut links: Vec<(u32, usize, InodeId)> = Vec::new();

        node_of[0] = 0;
        w.push_node(tree, InodeId::ROOT, 0);
        let mut next = 0usize;
        while next < w.nodes.len() {
            let idx = next as u32;
            next += 1;
            let Some(src) = w.sources[idx as usize] else {
                continue; // a synthetic root whiteout
            };
            let Content::Directory(entries) = &tree.inodes[src.index()].content else {
                continue;
            };
            // The tree's names, `.`, `..`, and for the root the whiteouts, in name order.
            let mut names: Vec<(&'t [u8], Kind)> = Vec::with_capacity(entries.len() + 2);
            names.extend(entries.iter().map(|e| {
                let kind = if e.hardlink {
                    Kind::Link(e.inode)
                } else {
                    Kind::Owner(e.inode)
                };
                (e.name.as_slice(), kind)
            }));
            names.push((b".", Kind::Dot));
            names.push((b"..", Kind::DotDot));
            if idx == 0 {
                for n in whiteout_names() {
                    if !entries.iter().any(|e| e.name == n) {
                        names.push((n.as_slice(), Kind::RootWhiteout));
                    }
                }
            }
            names.sort_by(|a, b| a.0.cmp(b.0));

            let parent = w.nodes[idx as usize].parent;
            let mut children = Vec::with_capacity(names.len());
            for (name, kind) in names {
                let target = match kind {
                    Kind::Dot => idx,
                    Kind::DotDot => parent,
                    Kind::Owner(id) => {
                        let n = w.nodes.len() as u32;
                        node_of[id.index()] = n;
                        w.push_node(tree, id, idx);
                        n
                    }
                    Kind::Link(id) => {
                        links.push((idx, children.len(), id));
                        u32::MAX
                    }
                    Kind::RootWhiteout => {
                        let n = w.nodes.len() as u32;
                        w.push_root_whiteout();
                        n
                    }
                };
                children.push(Child { name, node: target });
            }
            w.nodes[idx as usize].children = children;
        }
        for (dir, pos, id) in links {
            w.nodes[dir as usize].children[pos].node = node_of[id.index()];
        }
        w.rewrite_for_overlay(arena);
        w.finish_tree();
        Ok(w)
    }

    /// Adds the node for tree inode `id`, whose owning name is in node `parent`.
    fn push_node(&mut self, tree: &'t Tree, id: InodeId, parent: u32) {
        let inode = &tree.inodes[id.index()];
        let stat = &inode.stat;
        let mut size = stat.size;
        let data = match &inode.content {
            Content::Regular(file) => match &file.inline {
                Some(content) if !content.is_empty() => {
                    size = content.len() as u64;
                    Data::Inline(content)
                }
                Some(_) => {
                    size = 0;
                    Data::None
                }
                None if size == 0 => Data::None,
                None => Data::External {
                    payload: file.payload.as_deref(),
                    digest: file.digest.as_ref(),
                },
            },
            Content::Symlink(target) => {
                size = target.len() as u64;
                Data::Symlink(target)
            }
            Content::Directory(_) | Content::Special => Data::None,
        };
        // Room for the metacopy and redirect xattrs the overlayfs rewrite adds to an external
        // file (a vector grown from empty would reserve four).
        let added = if matches!(data, Data::External { .. }) {
            2
        } else {
            0
        };
        let mut xattrs = Vec::with_capacity(inode.xattrs.len() + added);
        xattrs.extend(inode.xattrs.iter().map(|x| WXattr {
            name: x.name.as_slice(),
            value: x.value.as_slice(),
            shared: None,
        }));
        self.nodes.push(Node::new(stat, size, xattrs, data, parent));
        self.sources.push(Some(id));
    }

    /// Adds one of the whiteouts `00`…`ff` C puts in the root (`add_overlay_whiteouts`): a
    /// character device 0:0 with the root's owner, mtime and SELinux label.
    fn push_root_whiteout(&mut self) {
        let root = &self.nodes[0];
        let xattrs = root
            .xattrs
            .iter()
            .filter(|x| x.name == b"security.selinux")
            .cloned()
            .collect();
        let stat = crate::tree::Stat {
            mode: S_IFCHR | 0o644,
            uid: root.uid,
            gid: root.gid,
            nlink: 1,
            rdev: 0,
            size: 0,
            mtime: root.mtime,
        };
        let node = Node::new(&stat, 0, xattrs, Data::None, 0);
        self.nodes.push(node);
        self.sources.push(None);
    }

    /// `rewrite_tree_for_erofs` minus the `.`/`..`/whiteout entries already added.
    fn rewrite_for_overlay(&mut self, arena: &'t bumpalo::Bump) {
        let n = self.nodes.len();
        // Escape the tree's own overlayfs xattrs first (C renames in place, keeping its budget).
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if self.sources[i].is_none() {
                continue;
            }
            for x in &mut node.xattrs {
                if let Some(rest) = x.name.strip_prefix(OVERLAY_PREFIX) {
                    let renamed =
                        arena.alloc_slice_fill_copy(OVERLAY_ESCAPE_PREFIX.len() + rest.len(), 0);
                    let (prefix, tail) = renamed.split_at_mut(OVERLAY_ESCAPE_PREFIX.len());
                    prefix.copy_from_slice(OVERLAY_ESCAPE_PREFIX);
                    tail.copy_from_slice(rest);
                    x.name = renamed;
                }
            }
        }
        for i in 0..n {
            if self.sources[i].is_none() {
                continue;
            }
            let node = &self.nodes[i];
            let ftype = node.file_type();
            if let (S_IFREG, Data::External { payload, digest }) = (ftype, node.data) {
                let value: &'t [u8] = match digest {
                    Some(d) => {
                        // Built in the arena: no allocation per file.
                        let bytes = d.as_bytes();
                        let v = arena.alloc_slice_fill_copy(METACOPY_HEADER_SIZE + bytes.len(), 0);
                        v[..METACOPY_HEADER_SIZE].copy_from_slice(&metacopy_header(d.algorithm()));
                        v[METACOPY_HEADER_SIZE..].copy_from_slice(bytes);
                        v
                    }
                    None => &[],
                };
                let node = &mut self.nodes[i];
                node.set_xattr(b"trusted.overlay.metacopy", value);
                if let Some(p) = payload.filter(|p| !p.is_empty()) {
                    let redirect = arena.alloc_slice_fill_copy(p.len() + 1, b'/');
                    redirect[1..].copy_from_slice(p);
                    node.set_xattr(b"trusted.overlay.redirect", redirect);
                }
            } else if ftype == S_IFCHR && node.rdev == 0 {
                let parent = node.parent as usize;
                let node = &mut self.nodes[i];
                node.size = 0;
                node.mode = S_IFREG | (node.mode & !S_IFMT);
                node.set_xattr(b"trusted.overlay.overlay.whiteout", b"");
                node.set_xattr(b"user.overlay.whiteout", b"");
                let p = &mut self.nodes[parent];
                p.set_xattr(b"trusted.overlay.overlay.whiteouts", b"");
                p.set_xattr(b"user.overlay.whiteouts", b"");
                if self.version >= 1 {
                    p.set_xattr(b"trusted.overlay.overlay.opaque", b"x");
                    p.set_xattr(b"user.overlay.opaque", b"x");
                }
            }
        }
        self.nodes[0].set_xattr(b"trusted.overlay.opaque", b"y");
    }

    /// `lcfs_compute_tree`: directory link counts, xattr order, minimum mtime, ACL flag.
    fn finish_tree(&mut self) {
        let mut min = self.nodes[0].mtime;
        let mut has_acl = false;
        for i in 0..self.nodes.len() {
            if self.nodes[i].file_type() == S_IFDIR {
                let subdirs = self.nodes[i]
                    .children
                    .iter()
                    .filter(|c| c.name != b"." && c.name != b"..")
                    .filter(|c| self.nodes[c.node as usize].file_type() == S_IFDIR)
                    .count();
                self.nodes[i].nlink = 2 + subdirs as u32;
            }
            let node = &mut self.nodes[i];
            node.xattrs.sort_by(|a, b| a.name.cmp(b.name));
            if node.mtime < min {
                min = node.mtime;
            }
            has_acl |= node.xattrs.iter().any(|x| {
                x.name == b"system.posix_acl_access" || x.name == b"system.posix_acl_default"
            });
        }
        self.min_mtime = min;
        self.has_acl = has_acl;
    }

    /// `compute_erofs_shared_xattrs`: xattrs used by more than one inode are shared.
    fn compute_shared_xattrs(&mut self) {
        // Give each distinct (name, value) an id and count its uses. Every external file has
        // its own metacopy and redirect values, so the map sees hundreds of thousands of
        // keys: hashed with foldhash (randomly seeded per process, so still hard to flood
        // with chosen collisions) instead of SipHash, which cost a third of this step.
        let total: usize = self.nodes.iter().map(|n| n.xattrs.len()).sum();
        let mut ids: Vec<u32> = Vec::with_capacity(total);
        let mut first_use: Vec<(u32, u32)> = Vec::new();
        let mut counts: Vec<u32> = Vec::new();
        {
            let mut map: HashMap<(&[u8], &[u8]), u32, foldhash::fast::RandomState> =
                HashMap::with_capacity_and_hasher(total, Default::default());
            for (ni, node) in self.nodes.iter().enumerate() {
                for (xi, x) in node.xattrs.iter().enumerate() {
                    let next = counts.len() as u32;
                    let id = *map.entry((x.name, x.value)).or_insert(next);
                    if id == next {
                        counts.push(0);
                        first_use.push((ni as u32, xi as u32));
                    }
                    counts[id as usize] += 1;
                    ids.push(id);
                }
            }
        }
        let mut shared_ids: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] > 1).collect();
        let key = |id: &usize| {
            let (ni, xi) = first_use[*id];
            let x = &self.nodes[ni as usize].xattrs[xi as usize];
            (x.name, x.value.len(), x.value)
        };
        // Descending by name, then value length, then value bytes (C's xattrs_ht_sort).
        shared_ids.sort_by(|a, b| key(b).cmp(&key(a)));
        let mut offsets: Vec<Option<u64>> = vec![None; counts.len()];
        let mut offset = 0;
        for &id in &shared_ids {
            offsets[id] = Some(offset);
            let (ni, xi) = first_use[id];
            let x = &self.nodes[ni as usize].xattrs[xi as usize];
            offset += xattr_entry_size(x.name, x.value.len());
            self.shared.push((ni, xi));
        }
        self.shared_size = offset;
        let mut k = 0;
        for node in &mut self.nodes {
            let mut n_shared = 0;
            for x in &mut node.xattrs {
                let id = ids[k] as usize;
                k += 1;
                x.shared = match offsets[id] {
                    Some(off) if n_shared < XATTR_MAX_SHARED_PER_INODE => {
                        n_shared += 1;
                        Some(off)
                    }
                    _ => None,
                };
            }
        }
    }
}

/// Size of one xattr entry in the image (header, suffix after the prefix, value, aligned to 4).
fn xattr_entry_size(name: &[u8], value_len: usize) -> u64 {
    let (_, suffix) = xattr_split(name);
    round_up(XATTR_ENTRY_SIZE + suffix.len() as u64 + value_len as u64, 4)
}

impl Writer<'_> {
    /// `compute_erofs_inodes`: sizes, compactness, padding and nids of every inode.
    fn compute_layout(&mut self) -> Result<(), WriteError> {
        let mut pos = SUPER_OFFSET + SUPER_SIZE;
        let meta_start = pos - pos % BLOCK_SIZE;
        let min_mtime = self.min_mtime;
        for node in &mut self.nodes {
            compute_inode_size(node);
            node.compact = fits_compact(node, min_mtime);
            let inode_size = if node.compact {
                INODE_COMPACT_SIZE
            } else {
                INODE_EXTENDED_SIZE
            };
            node.xattr_size = inode_xattr_size(node);
            let ppos = pos;
            pos = round_up(pos, SLOT_SIZE);
            node.ipad = pos - ppos;
            let extra = padding_for_tail(node, pos, inode_size, node.xattr_size);
            node.ipad += extra;
            pos += extra;
            node.isize = inode_size + node.xattr_size + node.tailsize;
            self.n_data_blocks += node.n_blocks;
            node.nid = (pos - meta_start) / SLOT_SIZE;
            pos += node.isize;
        }
        self.inodes_end = round_up(pos, SLOT_SIZE);
        if self.nodes[0].nid > u64::from(u16::MAX) {
            return Err(WriteError::TooLarge(
                "root inode beyond the 16-bit nid range",
            ));
        }
        Ok(())
    }
}

/// `compute_erofs_inode_size`: blocks and inline tail before any padding decisions.
fn compute_inode_size(node: &mut Node<'_>) {
    let (n_blocks, tail) = match (node.file_type(), node.data) {
        (S_IFDIR, _) => dir_size(&node.children),
        (_, Data::Symlink(target)) => (0, target.len() as u64),
        (S_IFREG, Data::Inline(content)) => {
            let size = content.len() as u64;
            let (mut n, mut t) = (size / BLOCK_SIZE, size % BLOCK_SIZE);
            if t > BLOCK_SIZE / 2 {
                n += 1;
                t = 0;
            }
            (n, t)
        }
        (S_IFREG, Data::External { .. }) if node.size > 0 => (0, chunking(node.size).1 * 4),
        _ => (0, 0),
    };
    node.n_blocks = n_blocks;
    node.tailsize = tail;
}

/// `compute_erofs_dir_size`: full blocks of dirents, and a tail of at most half a block.
fn dir_size(children: &[Child<'_>]) -> (u64, u64) {
    let mut n_blocks = 0;
    let mut block = 0;
    for c in children {
        let len = DIRENT_SIZE + c.name.len() as u64;
        if block + len > BLOCK_SIZE {
            n_blocks += 1;
            block = 0;
        }
        block += len;
    }
    if block > BLOCK_SIZE / 2 {
        n_blocks += 1;
        block = 0;
    }
    (n_blocks, block)
}

/// `lcfs_fits_in_erofs_compact`.
fn fits_compact(node: &Node<'_>, min_mtime: Mtime) -> bool {
    if node.mtime != min_mtime {
        return false;
    }
    let max16 = u32::from(u16::MAX);
    if node.nlink > max16 || node.uid > max16 || node.gid > max16 {
        return false;
    }
    let size = if node.file_type() == S_IFDIR {
        node.n_blocks * BLOCK_SIZE + node.tailsize
    } else {
        node.size
    };
    size <= u64::from(u32::MAX)
}

fn inode_xattr_size(node: &Node<'_>) -> u64 {
    let mut n_shared = 0;
    let mut unshared = 0;
    for x in &node.xattrs {
        match x.shared {
            Some(_) => n_shared += 1,
            None => unshared += xattr_entry_size(x.name, x.value.len()),
        }
    }
    if n_shared == 0 && unshared == 0 {
        0
    } else {
        round_up(
            XATTR_HEADER_SIZE + n_shared * XATTR_ENTRY_SIZE + unshared,
            4,
        )
    }
}

/// `compute_erofs_inode_padding_for_tail`: padding before the inode so that its inline tail
/// does not cross a block boundary; may move the tail to a block of its own instead.
fn padding_for_tail(node: &mut Node<'_>, pos: u64, inode_size: u64, xattr_size: u64) -> u64 {
    let non_tail = inode_size + xattr_size;
    let total = non_tail + node.tailsize;
    if matches!(node.data, Data::Symlink(_)) {
        // The inode and the target go in one block; a target that cannot fit moves out.
        let pos_block = pos / BLOCK_SIZE;
        let end_block = (pos + total - 1) / BLOCK_SIZE;
        if total / BLOCK_SIZE > 0 {
            node.n_blocks += 1;
            node.tailsize = 0;
        }
        if pos_block != end_block {
            return round_up(pos, BLOCK_SIZE) - pos;
        }
        return 0;
    }
    let remainder = BLOCK_SIZE - (pos + non_tail) % BLOCK_SIZE;
    if remainder < node.tailsize {
        let extra = round_up(remainder, SLOT_SIZE);
        let remainder = BLOCK_SIZE - (pos + non_tail + extra) % BLOCK_SIZE;
        if node.tailsize <= remainder {
            return extra;
        }
        node.n_blocks += 1;
        node.tailsize = 0;
        return round_up(pos, BLOCK_SIZE) - pos;
    }
    0
}

/// Where the image goes: any writer, with the position the layout code aligns against.
///
/// The image is made of many small fields; they are gathered in a buffer and handed to the
/// sink [`OUT_BUF_SIZE`] bytes at a time, so that a sink that hashes or copies what it gets
/// (a `BufWriter`, an fs-verity hasher) is called a few hundred times, not millions. The
/// first I/O error is kept and later writes are skipped; [`Out::finish`] flushes the buffer
/// and reports it.
struct Out<'w> {
    w: &'w mut dyn std::io::Write,
    buf: Vec<u8>,
    pos: u64,
    err: Option<std::io::Error>,
}

/// How many bytes [`Out`] gathers before writing them to its sink.
const OUT_BUF_SIZE: usize = 64 * 1024;

impl<'w> Out<'w> {
    fn new(w: &'w mut dyn std::io::Write) -> Self {
        Out {
            w,
            buf: Vec::with_capacity(OUT_BUF_SIZE),
            pos: 0,
            err: None,
        }
    }
    // Inlined, so that the fixed-size fields become plain stores rather than `memcpy` calls.
    #[inline]
    fn extend_from_slice(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
        self.pos += b.len() as u64;
        if self.buf.len() >= OUT_BUF_SIZE {
            self.flush();
        }
    }
    #[inline]
    fn push(&mut self, b: u8) {
        self.extend_from_slice(&[b]);
    }
    fn len(&self) -> u64 {
        self.pos
    }
    #[cold]
    fn flush(&mut self) {
        if self.err.is_none() {
            if let Err(e) = self.w.write_all(&self.buf) {
                self.err = Some(e);
            }
        }
        self.buf.clear();
    }
    fn finish(mut self) -> Result<u64, WriteError> {
        self.flush();
        match self.err {
            Some(e) => Err(WriteError::Io(e.kind(), e.to_string())),
            None => Ok(self.pos),
        }
    }
}

#[inline]
fn put16(out: &mut Out<'_>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
#[inline]
fn put32(out: &mut Out<'_>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
#[inline]
fn put64(out: &mut Out<'_>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn pad(out: &mut Out<'_>, mut n: u64) {
    const ZEROS: [u8; 4096] = [0; 4096];
    while n > 0 {
        let k = n.min(ZEROS.len() as u64);
        out.extend_from_slice(&ZEROS[..k as usize]);
        n -= k;
    }
}
fn align(out: &mut Out<'_>, to: u64) {
    let len = out.len();
    pad(out, round_up(len, to) - len);
}

fn to_u32(v: u64, what: &'static str) -> Result<u32, WriteError> {
    u32::try_from(v).map_err(|_| WriteError::TooLarge(what))
}

impl Writer<'_> {
    /// Serializes the image: header, superblock, inodes, shared xattrs, data blocks.
    fn emit(&self, sink: &mut dyn std::io::Write) -> Result<u64, WriteError> {
        let data_start = round_up(self.inodes_end + self.shared_size, BLOCK_SIZE);
        let total = data_start + self.n_data_blocks * BLOCK_SIZE;
        let mut out = Out::new(sink);

        // The composefs header.
        put32(&mut out, COMPOSEFS_MAGIC);
        put32(&mut out, COMPOSEFS_HEADER_VERSION);
        put32(
            &mut out,
            if self.has_acl {
                COMPOSEFS_FLAG_HAS_ACL
            } else {
                0
            },
        );
        put32(&mut out, self.version);
        pad(&mut out, SUPER_OFFSET - 16);

        // The EROFS superblock.
        put32(&mut out, EROFS_MAGIC);
        put32(&mut out, 0); // checksum: not used (no EROFS_FEATURE_COMPAT_SB_CHKSUM)
        put32(&mut out, FEATURE_COMPAT_MTIME | FEATURE_COMPAT_XATTR_FILTER);
        out.push(BLOCK_SIZE_BITS as u8);
        out.push(0); // sb_extslots
        put16(&mut out, self.nodes[0].nid as u16);
        put64(&mut out, self.nodes.len() as u64);
        put64(&mut out, self.min_mtime.sec as u64);
        put32(&mut out, self.min_mtime.nsec);
        put32(&mut out, to_u32(total / BLOCK_SIZE, "block count")?);
        put32(&mut out, ((SUPER_OFFSET + SUPER_SIZE) / BLOCK_SIZE) as u32);
        put32(
            &mut out,
            to_u32(self.inodes_end / BLOCK_SIZE, "xattr block address")?,
        );
        let used = out.len();
        pad(&mut out, SUPER_OFFSET + SUPER_SIZE - used);

        let mut current_end = data_start;
        for (ino, node) in self.nodes.iter().enumerate() {
            self.emit_inode(&mut out, node, ino as u32, &mut current_end)?;
        }
        align(&mut out, SLOT_SIZE);
        debug_assert_eq!(out.len(), self.inodes_end);

        for &(ni, xi) in &self.shared {
            let x = &self.nodes[ni as usize].xattrs[xi as usize];
            emit_xattr(&mut out, x.name, x.value);
        }
        align(&mut out, BLOCK_SIZE);
        debug_assert_eq!(out.len(), data_start);

        for node in &self.nodes {
            self.emit_dirents(&mut out, node, true, false);
            emit_file_blocks(&mut out, node);
        }
        debug_assert_eq!(out.len(), total);
        debug_assert_eq!(current_end, total);
        out.finish()
    }

    fn emit_inode(
        &self,
        out: &mut Out<'_>,
        node: &Node<'_>,
        ino: u32,
        current_end: &mut u64,
    ) -> Result<(), WriteError> {
        pad(out, node.ipad);
        let ftype = node.file_type();
        let icount = if node.xattr_size == 0 {
            0
        } else {
            (node.xattr_size - XATTR_HEADER_SIZE) / 4 + 1
        };
        let icount =
            u16::try_from(icount).map_err(|_| WriteError::TooLarge("xattr count of an inode"))?;
        let version: u16 = if node.compact { 0 } else { 1 };
        let mut layout = if node.tailsize > 0 {
            LAYOUT_FLAT_INLINE
        } else {
            LAYOUT_FLAT_PLAIN
        };
        let mut chunk_format = None;
        let size = match (ftype, node.data) {
            (S_IFDIR, _) => node.n_blocks * BLOCK_SIZE + node.tailsize,
            (S_IFREG, Data::External { .. }) if node.size > 0 => {
                layout = LAYOUT_CHUNK_BASED;
                chunk_format = Some((chunking(node.size).0 - BLOCK_SIZE_BITS) as u16);
                node.size
            }
            (S_IFREG, _) => node.size,
            (_, Data::Symlink(_)) if node.n_blocks == 0 => node.tailsize,
            (_, Data::Symlink(_)) => node.size,
            _ => 0,
        };
        let format = (layout << I_DATALAYOUT_BIT) | (version << I_VERSION_BIT);

        let mut i_u: u32 = 0;
        let is_dev = matches!(
            FileType::from_mode(node.mode),
            Some(FileType::CharDevice | FileType::BlockDevice)
        );
        if is_dev {
            i_u = node.rdev;
        } else if matches!(ftype, S_IFDIR | S_IFREG) || matches!(node.data, Data::Symlink(_)) {
            if node.n_blocks > 0 {
                i_u = to_u32(*current_end / BLOCK_SIZE, "data block address")?;
                *current_end += BLOCK_SIZE * node.n_blocks;
            }
            if let Some(cf) = chunk_format {
                // C sets the union's 16-bit chunk format over the low half of raw_blkaddr.
                i_u = (i_u & 0xffff_0000) | u32::from(cf);
            }
        }

        if node.compact {
            put16(out, format);
            put16(out, icount);
            put16(out, node.mode as u16);
            put16(out, node.nlink as u16);
            put32(out, size as u32);
            put32(out, 0);
            put32(out, i_u);
            put32(out, ino);
            put16(out, node.uid as u16);
            put16(out, node.gid as u16);
            put32(out, 0);
        } else {
            put16(out, format);
            put16(out, icount);
            put16(out, node.mode as u16);
            put16(out, 0);
            put64(out, size);
            put32(out, i_u);
            put32(out, ino);
            put32(out, node.uid);
            put32(out, node.gid);
            put64(out, node.mtime.sec as u64);
            put32(out, node.mtime.nsec);
            put32(out, node.nlink);
            pad(out, 16);
        }

        if node.xattr_size > 0 {
            let mut filter = 0u32;
            for x in &node.xattrs {
                let (index, suffix) = xattr_split(x.name);
                filter |= 1 << xattr_filter_bit(index, suffix);
            }
            put32(out, !filter);
            let n_shared = node.xattrs.iter().filter(|x| x.shared.is_some()).count();
            out.push(n_shared as u8);
            pad(out, 7);
            for x in &node.xattrs {
                if let Some(off) = x.shared {
                    put32(out, ((self.inodes_end % BLOCK_SIZE + off) / 4) as u32);
                }
            }
            for x in node.xattrs.iter().filter(|x| x.shared.is_none()) {
                emit_xattr(out, x.name, x.value);
            }
        }

        match node.data {
            _ if ftype == S_IFDIR => self.emit_dirents(out, node, false, true),
            Data::Symlink(target) if node.n_blocks == 0 => out.extend_from_slice(target),
            Data::Inline(content) if node.tailsize > 0 => {
                out.extend_from_slice(&content[content.len() - node.tailsize as usize..]);
            }
            Data::External { .. } if node.tailsize > 0 => {
                for _ in 0..chunking(node.size).1 {
                    put32(out, NULL_ADDR);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `write_erofs_dentries`: the full dirent blocks (data area) or the inline tail.
    fn emit_dirents(&self, out: &mut Out<'_>, node: &Node<'_>, blocks: bool, tail: bool) {
        if node.file_type() != S_IFDIR {
            return;
        }
        let children = &node.children;
        let mut block = 0;
        let mut written = 0;
        let mut first = 0;
        for (i, c) in children.iter().enumerate() {
            let len = DIRENT_SIZE + c.name.len() as u64;
            if block + len > BLOCK_SIZE {
                if blocks {
                    self.emit_dirent_chunk(out, &children[first..i], BLOCK_SIZE);
                }
                written += 1;
                block = 0;
                first = i;
            }
            block += len;
        }
        if written < node.n_blocks {
            if blocks {
                self.emit_dirent_chunk(out, &children[first..], BLOCK_SIZE);
            }
            block = 0;
            first = children.len();
        }
        if tail && block > 0 {
            self.emit_dirent_chunk(out, &children[first..], 1);
        }
    }

    fn emit_dirent_chunk(&self, out: &mut Out<'_>, chunk: &[Child<'_>], alignment: u64) {
        let mut nameoff = chunk.len() as u64 * DIRENT_SIZE;
        for c in chunk {
            let target = &self.nodes[c.node as usize];
            put64(out, target.nid);
            put16(out, nameoff as u16);
            out.push(ft::of_mode(target.mode));
            out.push(0);
            nameoff += c.name.len() as u64;
        }
        for c in chunk {
            out.extend_from_slice(c.name);
        }
        align(out, alignment);
    }
}

fn emit_xattr(out: &mut Out<'_>, name: &[u8], value: &[u8]) {
    let (index, suffix) = xattr_split(name);
    out.push(suffix.len() as u8);
    out.push(index);
    put16(out, value.len() as u16);
    out.extend_from_slice(suffix);
    out.extend_from_slice(value);
    align(out, 4);
}

/// `write_erofs_file_content`: whole blocks of inline content or a symlink target, or the
/// block-sized chunk index of an external file whose index did not fit inline.
///
/// C writes only the first block and then stops (and would abort on its own consistency
/// check if there were two); with content limited to 5000 bytes two blocks only arise from
/// tail padding, and there we write every block, which is the valid image C meant.
fn emit_file_blocks(out: &mut Out<'_>, node: &Node<'_>) {
    if node.n_blocks == 0 {
        return;
    }
    let bytes = match node.data {
        Data::External { .. } => {
            for _ in 0..MAX_NONINLINE_CHUNKS {
                put32(out, NULL_ADDR);
            }
            return;
        }
        Data::Inline(content) => content,
        Data::Symlink(target) => target,
        Data::None => return,
    };
    for i in 0..node.n_blocks as usize {
        let start = (i * BLOCK_SIZE as usize).min(bytes.len());
        let end = (start + BLOCK_SIZE as usize).min(bytes.len());
        out.extend_from_slice(&bytes[start..end]);
        align(out, BLOCK_SIZE);
    }
}
