//! Building the tree from entries in archive order, with tar's rules for paths that come
//! again, and turning it into a [`Tree`] numbered as `build_from_dir` numbers it.

use std::collections::BTreeMap;

use sealroot_format::tree::{
    Content, DirEntry, FileType, Inode, InodeId, Mtime, RegularFile, Stat, Tree, Xattr, S_IFCHR,
    S_IFDIR,
};
use sealroot_verity::AnyDigest;

use super::archive::{path_buf, Archive, Entry, Kind};
use super::content::Pipeline;
use super::pax::KeepXattrs;
use super::{TarError, TarOptions, Whiteouts};
use crate::xattr::{check_limits, XattrError, XATTR_HEADER_COST};
use crate::INLINE_CONTENT_MAX;

/// The longest name composefs (and Linux) allows in a directory.
const NAME_MAX: usize = 255;
/// The prefix of an OCI whiteout file's name.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The name of the OCI opaque-directory marker.
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads to hide a lower directory's entries.
const OVERLAY_OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";
/// The permission bits of a directory no entry describes, as `tar -x` makes them for root.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// An index into [`Builder::nodes`].
type NodeId = usize;

/// The root's node.
const ROOT: NodeId = 0;

/// A regular file's content as far as it is known while reading.
#[derive(Clone, Debug)]
enum FileContent {
    Empty,
    Inline(Vec<u8>),
    /// Given to the sink as this job; the digest comes at the end.
    Object(usize),
}

#[derive(Clone, Debug)]
enum NodeKind {
    /// Entries by name, in byte order.
    Directory(BTreeMap<Vec<u8>, NodeId>),
    Regular(FileContent),
    Symlink(Vec<u8>),
    Special,
}

#[derive(Clone, Debug)]
struct Node {
    stat: Stat,
    xattrs: Vec<Xattr>,
    kind: NodeKind,
}

impl Node {
    /// A directory no entry described (yet).
    fn implicit_dir() -> Node {
        Node {
            stat: Stat {
                mode: S_IFDIR | IMPLICIT_DIR_MODE,
                nlink: 1,
                ..Stat::default()
            },
            xattrs: Vec::new(),
            kind: NodeKind::Directory(BTreeMap::new()),
        }
    }
}

/// The tree being built. Nodes that later entries replace stay in the arena, unreachable,
/// and are left out of the result.
pub(crate) struct Builder<'o> {
    opts: &'o TarOptions,
    nodes: Vec<Node>,
}

/// A path split into its components, checked.
type Components<'p> = Vec<&'p [u8]>;

/// Splits `path` into components: `.` and empty ones dropped, `..` refused, a leading `/`
/// refused unless `strip_leading_slash`.
fn components(path: &[u8], strip_leading_slash: bool) -> Result<Components<'_>, &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.starts_with(b"/") && !strip_leading_slash {
        return Err("absolute path");
    }
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("`..` component"),
            c if c.len() > NAME_MAX => return Err("a name longer than 255 bytes"),
            c if c.contains(&0) => return Err("NUL byte in the path"),
            c => out.push(c),
        }
    }
    Ok(out)
}

impl<'o> Builder<'o> {
    pub(crate) fn new(opts: &'o TarOptions) -> Self {
        Builder {
            opts,
            nodes: vec![Node::implicit_dir()],
        }
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn children(&self, dir: NodeId) -> Option<&BTreeMap<Vec<u8>, NodeId>> {
        match &self.nodes[dir].kind {
            NodeKind::Directory(children) => Some(children),
            _ => None,
        }
    }

    fn children_mut(&mut self, dir: NodeId) -> Option<&mut BTreeMap<Vec<u8>, NodeId>> {
        match &mut self.nodes[dir].kind {
            NodeKind::Directory(children) => Some(children),
            _ => None,
        }
    }

    /// The entry `name` of directory `dir`, if there is one.
    fn child(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        self.children(dir)?.get(name).copied()
    }

    /// The node at `path`, if there is one.
    fn lookup(&self, path: &[&[u8]]) -> Option<NodeId> {
        let mut cur = ROOT;
        for c in path {
            cur = *self.children(cur)?.get(*c)?;
        }
        Some(cur)
    }

    /// The directory at `path`: `Ok(None)` if something on the way is missing, an error if
    /// something on the way is not a directory.
    fn existing_dir(&self, path: &[&[u8]], entry: &Entry) -> Result<Option<NodeId>, TarError> {
        let mut cur = ROOT;
        for (i, c) in path.iter().enumerate() {
            let Some(children) = self.children(cur) else {
                return Err(not_under_dir(entry, &path[..i]));
            };
            match children.get(*c) {
                Some(&next) => cur = next,
                None => return Ok(None),
            }
        }
        match self.children(cur) {
            Some(_) => Ok(Some(cur)),
            None => Err(not_under_dir(entry, path)),
        }
    }

    /// The directory at `path`, made (with [`Node::implicit_dir`]) where missing, as
    /// `tar -x` makes the missing parents of what it extracts.
    fn dir(&mut self, path: &[&[u8]], entry: &Entry) -> Result<NodeId, TarError> {
        let mut cur = ROOT;
        for (i, c) in path.iter().enumerate() {
            let next = match self.children(cur).and_then(|ch| ch.get(*c)) {
                Some(&next) => next,
                None => {
                    let id = self.push(Node::implicit_dir());
                    self.children_mut(cur)
                        .expect("checked to be a directory below")
                        .insert(c.to_vec(), id);
                    id
                }
            };
            if self.children(next).is_none() {
                return Err(not_under_dir(entry, &path[..=i]));
            }
            cur = next;
        }
        Ok(cur)
    }

    /// The directory at `parent` (made where missing) in which the non-directory `entry` is
    /// to take `name`. Refused if `name` there is a directory with entries: `tar -x` removes
    /// only an empty directory to put something else in its place, and silently dropping
    /// what the archive put in it would hide a broken archive.
    fn slot(&mut self, parent: &[&[u8]], name: &[u8], entry: &Entry) -> Result<NodeId, TarError> {
        let dir = self.dir(parent, entry)?;
        let full = self
            .child(dir, name)
            .and_then(|id| self.children(id))
            .is_some_and(|children| !children.is_empty());
        if full {
            return Err(TarError::ReplacesDirectory {
                offset: entry.offset,
                path: entry.display_path(),
            });
        }
        Ok(dir)
    }

    /// Adds one entry of `archive` (its content is still to be read from it).
    pub(crate) fn add(
        &mut self,
        entry: Entry,
        archive: &mut Archive<'_>,
        pipeline: &mut Pipeline<'_>,
    ) -> Result<(), TarError> {
        let comps = components(&entry.path, self.opts.strip_leading_slash)
            .map_err(|reason| bad_path(&entry, &entry.path, reason))?;
        let Some((&name, parent)) = comps.split_last() else {
            return self.set_root(&entry);
        };
        if self.opts.whiteouts != Whiteouts::Keep {
            if parent.iter().any(|c| c.starts_with(WHITEOUT_PREFIX)) {
                return Err(bad_path(
                    &entry,
                    &entry.path,
                    "under a whiteout name (`.wh.`), which holds no entries",
                ));
            }
            if name.starts_with(WHITEOUT_PREFIX) {
                return self.whiteout(&entry, parent, name);
            }
        }
        match entry.kind {
            Kind::Directory => {
                let dir = self.dir(parent, &entry)?;
                self.add_directory(&entry, dir, name)
            }
            Kind::HardLink => {
                // The target is looked up before anything is made on the way to the link.
                let target = self.link_target(&entry)?;
                let dir = self.slot(parent, name, &entry)?;
                self.add_hard_link(dir, name, target);
                Ok(())
            }
            Kind::Regular => {
                let dir = self.slot(parent, name, &entry)?;
                let content = self.content(&entry, archive, pipeline)?;
                self.add_node(&entry, dir, name, NodeKind::Regular(content))
                    .map(drop)
            }
            Kind::Symlink => {
                if entry.link.is_empty() {
                    return Err(TarError::EmptySymlink {
                        offset: entry.offset,
                        path: entry.display_path(),
                    });
                }
                let dir = self.slot(parent, name, &entry)?;
                self.add_node(&entry, dir, name, NodeKind::Symlink(entry.link.clone()))
                    .map(drop)
            }
            Kind::CharDevice | Kind::BlockDevice if self.opts.skip_devices => {
                let dir = self.slot(parent, name, &entry)?;
                self.remove(dir, name);
                Ok(())
            }
            Kind::CharDevice | Kind::BlockDevice | Kind::Fifo => {
                let dir = self.slot(parent, name, &entry)?;
                self.add_node(&entry, dir, name, NodeKind::Special)
                    .map(drop)
            }
        }
    }

    /// A `.` entry: the root's attributes.
    fn set_root(&mut self, entry: &Entry) -> Result<(), TarError> {
        if entry.kind != Kind::Directory {
            return Err(TarError::RootNotDirectory {
                offset: entry.offset,
                path: entry.display_path(),
            });
        }
        self.update_directory(ROOT, entry)
    }

    /// A directory entry `name` in `dir`: a new directory, or new attributes for the one
    /// already there.
    fn add_directory(&mut self, entry: &Entry, dir: NodeId, name: &[u8]) -> Result<(), TarError> {
        let existing = self.child(dir, name);
        if let Some(id) = existing.filter(|&id| self.children(id).is_some()) {
            return self.update_directory(id, entry);
        }
        let id = self.add_node(entry, dir, name, NodeKind::Directory(BTreeMap::new()))?;
        // In overlay form, a directory in the place of a whiteout: the lower directory of that
        // name is gone, and its entries must not show through the new one.
        if existing.is_some_and(|id| self.is_whiteout(id)) {
            self.set_opaque(id);
        }
        Ok(())
    }

    /// Gives directory `id` the attributes and xattrs of `entry`; its entries stay (as `tar -x`
    /// and composefs-rs's `merge` do).
    fn update_directory(&mut self, id: NodeId, entry: &Entry) -> Result<(), TarError> {
        let stat = self.stat(entry);
        let mut xattrs = self.xattrs(entry)?;
        let node = &mut self.nodes[id];
        // An opaque marker seen before the directory's own entry stays, as the overlay
        // driver's setxattr stays when tar later sets the attributes.
        if self.opts.whiteouts == Whiteouts::Overlay {
            if let Some(x) = node.xattrs.iter().find(|x| x.name == OVERLAY_OPAQUE_XATTR) {
                if !xattrs.iter().any(|y| y.name == x.name) {
                    xattrs.push(x.clone());
                }
            }
        }
        node.stat = stat;
        node.xattrs = xattrs;
        Ok(())
    }

    /// The node a hard link `entry` names: an earlier entry, not a directory.
    fn link_target(&self, entry: &Entry) -> Result<NodeId, TarError> {
        let target = components(&entry.link, self.opts.strip_leading_slash)
            .map_err(|reason| bad_path(entry, &entry.link, reason))?;
        let found = self
            .lookup(&target)
            .ok_or_else(|| TarError::MissingLinkTarget {
                offset: entry.offset,
                path: entry.display_path(),
                target: path_buf(&entry.link),
            })?;
        if self.children(found).is_some() {
            return Err(TarError::LinkToDirectory {
                offset: entry.offset,
                path: entry.display_path(),
                target: path_buf(&entry.link),
            });
        }
        Ok(found)
    }

    /// A hard link `name` in `dir` to node `target`: that inode under a new name, or a copy
    /// of it unless `hardlinks` (every name its own inode, as mkcomposefs makes hard links).
    fn add_hard_link(&mut self, dir: NodeId, name: &[u8], target: NodeId) {
        let id = if self.opts.hardlinks {
            target
        } else {
            let copy = self.nodes[target].clone();
            self.push(copy)
        };
        self.link(dir, name, id);
    }

    /// The content of a regular file entry: inline, or handed to the sink.
    fn content(
        &self,
        entry: &Entry,
        archive: &mut Archive<'_>,
        pipeline: &mut Pipeline<'_>,
    ) -> Result<FileContent, TarError> {
        let size = entry.stat.size;
        Ok(if size == 0 {
            FileContent::Empty
        } else if size <= INLINE_CONTENT_MAX && !self.opts.no_inline {
            let mut data = vec![0u8; size as usize];
            archive.read_content(&mut data)?;
            FileContent::Inline(data)
        } else {
            FileContent::Object(pipeline.submit(archive, size, &entry.path, entry.offset)?)
        })
    }

    /// Puts a new node of `kind` with the attributes of `entry` in `dir` under `name`, and
    /// returns it.
    fn add_node(
        &mut self,
        entry: &Entry,
        dir: NodeId,
        name: &[u8],
        kind: NodeKind,
    ) -> Result<NodeId, TarError> {
        let mut stat = self.stat(entry);
        if let NodeKind::Symlink(target) = &kind {
            stat.size = target.len() as u64;
        }
        let id = self.push(Node {
            stat,
            xattrs: self.xattrs(entry)?,
            kind,
        });
        self.link(dir, name, id);
        Ok(id)
    }

    /// Puts `node` in `dir` under `name`, replacing what was there.
    fn link(&mut self, dir: NodeId, name: &[u8], node: NodeId) {
        if let Some(children) = self.children_mut(dir) {
            children.insert(name.to_vec(), node);
        }
    }

    /// Removes `name` from `dir`, if it is there.
    fn remove(&mut self, dir: NodeId, name: &[u8]) {
        if let Some(children) = self.children_mut(dir) {
            children.remove(name);
        }
    }

    /// An OCI whiteout `.wh.NAME` or opaque marker `.wh..wh..opq` in directory `parent`,
    /// whatever the entry's type: the OCI image spec allows no file or directory such a name,
    /// and composefs-rs and containers-storage look at the name alone (umoci takes only
    /// regular files as whiteouts, and extracts a directory `.wh.x` as it is).
    ///
    /// OCI whiteouts apply to lower layers only, and any order of a layer's entries means the
    /// same. Applied, an archive read alone lies over nothing, so a whiteout removes nothing;
    /// in overlay form it is kept for the layers below. Either way, a whiteout of what the
    /// archive itself made is refused ([`TarError::WhiteoutOfOwnEntry`]).
    fn whiteout(&mut self, entry: &Entry, parent: &[&[u8]], name: &[u8]) -> Result<(), TarError> {
        let hidden = if name == OPAQUE_MARKER {
            None
        } else {
            match &name[WHITEOUT_PREFIX.len()..] {
                b"" | b"." | b".." => {
                    return Err(bad_path(
                        entry,
                        &entry.path,
                        "whiteout of no name, `.` or `..`",
                    ))
                }
                hidden => Some(hidden),
            }
        };
        match self.opts.whiteouts {
            Whiteouts::Keep => unreachable!("whiteouts are ordinary entries then"),
            Whiteouts::Apply => self.check_whiteout(entry, parent, hidden),
            Whiteouts::Overlay => self.overlay_whiteout(entry, parent, hidden),
        }
    }

    /// Applies the whiteout of `hidden` (`None`: the opaque marker) in `parent`: there is
    /// nothing below the archive to remove, so it only checks that the archive made no entry
    /// `hidden` (tools disagree on what that means). The opaque marker hides lower layers
    /// only: entries of this archive in `parent`, before or after it, stay, as in the OCI
    /// image spec's own example.
    fn check_whiteout(
        &self,
        entry: &Entry,
        parent: &[&[u8]],
        hidden: Option<&[u8]>,
    ) -> Result<(), TarError> {
        let Some(name) = hidden else {
            return Ok(());
        };
        let Some(dir) = self.existing_dir(parent, entry)? else {
            return Ok(());
        };
        if self.child(dir, name).is_some() {
            return Err(whiteout_of_own_entry(entry, parent, hidden));
        }
        Ok(())
    }

    /// Keeps the whiteout of `hidden` (`None`: the opaque marker) in `parent` in overlay
    /// form: a whiteout device `hidden` (unless `skip_devices`), or the opaque xattr on
    /// `parent`. A whiteout may come again, but not replace another entry of the archive.
    fn overlay_whiteout(
        &mut self,
        entry: &Entry,
        parent: &[&[u8]],
        hidden: Option<&[u8]>,
    ) -> Result<(), TarError> {
        let dir = self.dir(parent, entry)?;
        let Some(hidden) = hidden else {
            self.set_opaque(dir);
            return Ok(());
        };
        if self
            .child(dir, hidden)
            .is_some_and(|id| !self.is_whiteout(id))
        {
            return Err(whiteout_of_own_entry(entry, parent, Some(hidden)));
        }
        if self.opts.skip_devices {
            return Ok(());
        }
        let mut stat = self.stat(entry);
        // Permissions 0 and device 0:0, as containers-storage's overlay driver makes them
        // (mknod(S_IFCHR, 0)), owned as the whiteout entry says.
        stat.mode = S_IFCHR;
        stat.rdev = 0;
        stat.size = 0;
        let id = self.push(Node {
            stat,
            xattrs: Vec::new(),
            kind: NodeKind::Special,
        });
        self.link(dir, hidden, id);
        Ok(())
    }

    /// Whether node `id` is an overlay whiteout: a character device 0:0.
    fn is_whiteout(&self, id: NodeId) -> bool {
        let node = &self.nodes[id];
        matches!(node.kind, NodeKind::Special)
            && node.stat.file_type() == Some(FileType::CharDevice)
            && node.stat.rdev == 0
    }

    /// Marks directory `dir` opaque for overlayfs, unless the options drop that xattr.
    fn set_opaque(&mut self, dir: NodeId) {
        if self.keeps_xattr(OVERLAY_OPAQUE_XATTR) {
            set_xattr(&mut self.nodes[dir].xattrs, OVERLAY_OPAQUE_XATTR, b"y");
        }
    }

    /// The attributes of `entry` in the tree: as the archive gives them, the mtime 0 with
    /// `use_epoch`.
    fn stat(&self, entry: &Entry) -> Stat {
        let mut stat = entry.stat.clone();
        if self.opts.use_epoch {
            stat.mtime = Mtime::default();
        }
        stat
    }

    /// Whether the xattr options keep xattr `name`.
    fn keeps_xattr(&self, name: &[u8]) -> bool {
        KeepXattrs::from_options(self.opts.skip_xattrs, self.opts.user_xattrs).keeps(name)
    }

    /// The xattrs of `entry` the options keep, checked against composefs's limits.
    fn xattrs(&self, entry: &Entry) -> Result<Vec<Xattr>, TarError> {
        let mut space = XATTR_HEADER_COST;
        let mut out = Vec::new();
        for x in &entry.xattrs {
            if !self.keeps_xattr(&x.name) {
                continue;
            }
            if let Err(XattrError::TooLarge { name, reason }) =
                check_limits(&x.name, x.value.len(), &mut space)
            {
                return Err(TarError::XattrTooLarge {
                    offset: entry.offset,
                    path: entry.display_path(),
                    name,
                    reason,
                });
            }
            out.push(x.clone());
        }
        Ok(out)
    }

    /// The tree, its regular files given the digests of their jobs, inodes numbered in
    /// depth-first name order (as [`build_from_dir`](crate::build_from_dir) numbers them).
    /// With hard links kept, the first name in that order owns the inode.
    pub(crate) fn finish(self, digests: &[AnyDigest]) -> Tree {
        struct Frame {
            inode: InodeId,
            children: std::collections::btree_map::IntoIter<Vec<u8>, NodeId>,
            entries: Vec<DirEntry>,
            subdirs: u32,
        }

        let hardlinks = self.opts.hardlinks;
        let mut nodes = self.nodes;
        let mut inode_of: Vec<Option<InodeId>> = vec![None; nodes.len()];
        let root = std::mem::replace(&mut nodes[ROOT], Node::implicit_dir());
        let mut tree = Tree::new(root.stat);
        tree.inode_mut(InodeId::ROOT).xattrs = root.xattrs;
        let NodeKind::Directory(root_children) = root.kind else {
            unreachable!("the root is a directory")
        };
        let mut stack = vec![Frame {
            inode: InodeId::ROOT,
            children: root_children.into_iter(),
            entries: Vec::new(),
            subdirs: 0,
        }];
        while let Some(top) = stack.last_mut() {
            let Some((name, id)) = top.children.next() else {
                let done = stack.pop().expect("the stack is not empty");
                let inode = tree.inode_mut(done.inode);
                inode.stat.nlink = 2 + done.subdirs;
                inode.content = Content::Directory(done.entries);
                continue;
            };
            if let Some(inode) = inode_of[id] {
                // Another name of a hard-linked file (only with `hardlinks`: otherwise
                // every name has a node of its own).
                tree.inode_mut(inode).stat.nlink += 1;
                top.entries.push(DirEntry {
                    name,
                    inode,
                    hardlink: true,
                });
                continue;
            }
            let node = std::mem::replace(
                &mut nodes[id],
                Node {
                    stat: Stat::default(),
                    xattrs: Vec::new(),
                    kind: NodeKind::Special,
                },
            );
            let (content, children) = match node.kind {
                NodeKind::Directory(children) => (Content::Directory(Vec::new()), Some(children)),
                NodeKind::Regular(c) => (Content::Regular(regular_file(c, digests)), None),
                NodeKind::Symlink(target) => (Content::Symlink(target), None),
                NodeKind::Special => (Content::Special, None),
            };
            let inode = tree.push(Inode {
                stat: node.stat,
                xattrs: node.xattrs,
                content,
            });
            if hardlinks {
                inode_of[id] = Some(inode);
            }
            top.entries.push(DirEntry {
                name,
                inode,
                hardlink: false,
            });
            if let Some(children) = children {
                top.subdirs += 1;
                stack.push(Frame {
                    inode,
                    children: children.into_iter(),
                    entries: Vec::new(),
                    subdirs: 0,
                });
            }
        }
        tree
    }
}

/// The tree's form of a regular file's content.
fn regular_file(content: FileContent, digests: &[AnyDigest]) -> RegularFile {
    match content {
        FileContent::Empty => RegularFile::default(),
        FileContent::Inline(data) => RegularFile {
            inline: Some(data),
            ..RegularFile::default()
        },
        FileContent::Object(job) => match digests.get(job) {
            Some(digest) => RegularFile {
                inline: None,
                payload: Some(digest.object_path().into_bytes()),
                digest: Some(*digest),
            },
            None => unreachable!("every job has a digest"),
        },
    }
}

/// Sets xattr `name` in `xattrs`, replacing an existing value.
fn set_xattr(xattrs: &mut Vec<Xattr>, name: &[u8], value: &[u8]) {
    match xattrs.iter_mut().find(|x| x.name == name) {
        Some(x) => x.value = value.to_vec(),
        None => xattrs.push(Xattr {
            name: name.to_vec(),
            value: value.to_vec(),
        }),
    }
}

/// The error for `path` (the entry's or its link target's) being no path of the tree.
fn bad_path(entry: &Entry, path: &[u8], reason: &'static str) -> TarError {
    TarError::BadPath {
        offset: entry.offset,
        path: path_buf(path),
        reason,
    }
}

/// The error for the whiteout `entry` in `parent` naming `hidden` (`None`: the opaque
/// marker, naming `parent`), which the archive made.
fn whiteout_of_own_entry(entry: &Entry, parent: &[&[u8]], hidden: Option<&[u8]>) -> TarError {
    let mut target = parent.to_vec();
    target.extend(hidden);
    let target = match target.join(&b'/') {
        root if root.is_empty() => b".".to_vec(),
        path => path,
    };
    TarError::WhiteoutOfOwnEntry {
        offset: entry.offset,
        path: entry.display_path(),
        target: path_buf(&target),
    }
}

/// The error for `entry` lying under `parent`, which is not a directory.
fn not_under_dir(entry: &Entry, parent: &[&[u8]]) -> TarError {
    TarError::NotUnderDirectory {
        offset: entry.offset,
        path: entry.display_path(),
        parent: path_buf(&parent.join(&b'/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components() {
        let ok = |p: &str, strip| components(p.as_bytes(), strip).map(|c| c.join(&b'/'));
        assert_eq!(ok("a/b", false), Ok(b"a/b".to_vec()));
        assert_eq!(ok("./a//b/./", false), Ok(b"a/b".to_vec()));
        assert_eq!(ok(".", false), Ok(Vec::new()));
        assert_eq!(ok("./", false), Ok(Vec::new()));
        assert_eq!(ok("/etc/x", true), Ok(b"etc/x".to_vec()));
        assert_eq!(ok("/etc/x", false), Err("absolute path"));
        assert_eq!(ok("a/../b", false), Err("`..` component"));
        assert_eq!(ok("..", true), Err("`..` component"));
        assert_eq!(ok("", false), Err("empty path"));
        let long = "n".repeat(256);
        assert_eq!(ok(&long, false), Err("a name longer than 255 bytes"));
        assert!(ok(&long[1..], false).is_ok());
        assert_eq!(
            components(b"a\0b", false).map(|c| c.len()),
            Err("NUL byte in the path")
        );
    }
}
