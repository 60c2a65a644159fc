//! Tree ⇄ objects, and the image derived from a tree.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use sealroot_verity::{AnyDigest, HashAlgorithm, Hasher, Params};

use super::dirtree::{self, check_name, Attrs, DirTree, EntryKind, TreeEntry};
use super::error::ParseError;
use super::{limits, object_id, text, ObjectKind};
use crate::erofs::{WriteError, WriteOptions};
use crate::tree::{Content, DirEntry, FileType, Inode, InodeId, RegularFile, Stat, Tree};

/// A tree as objects: the root's two ids and every distinct object, each directory's
/// objects before its parent's.
#[derive(Clone, Debug)]
pub struct Split {
    /// The root directory's dirtree.
    pub tree: AnyDigest,
    /// The root directory's dirmeta.
    pub dirmeta: AnyDigest,
    /// `(kind, id, bytes)` of every distinct dirtree and dirmeta, children first.
    pub objects: Vec<(ObjectKind, AnyDigest, Vec<u8>)>,
    /// The file objects the tree refers to (each once).
    pub files: Vec<AnyDigest>,
}

/// A tree that cannot be stored as objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    /// A file whose content is neither inline nor in a file object named by its digest.
    #[error("{path}: {reason}")]
    Unstorable {
        /// The file's path.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// A file whose digest is not of the algorithm the objects are named with.
    #[error("{path}: its digest is {digest}, but the repository's objects are named by {objects}")]
    Algorithm {
        /// The file's path.
        path: String,
        /// The algorithm of its digest.
        digest: HashAlgorithm,
        /// The algorithm asked for.
        objects: HashAlgorithm,
    },
    /// The tree breaks its own rules (a directory owned twice, an xattr twice, a bad name).
    #[error("{path}: malformed tree: {reason}")]
    Malformed {
        /// Where.
        path: String,
        /// Why.
        reason: String,
    },
}

fn attrs_of(inode: &Inode, path: &[u8]) -> Result<Attrs, SplitError> {
    let mut xattrs = inode.xattrs.clone();
    xattrs.sort_by(|a, b| a.name.cmp(&b.name));
    text::check_xattrs(&xattrs).map_err(|p| SplitError::Malformed {
        path: text::name(path),
        reason: p.to_string(),
    })?;
    Ok(Attrs {
        // The image keeps 16 bits of mode (C's `i_mode` is a u16); so do the objects.
        mode: inode.stat.mode & 0o177777,
        uid: inode.stat.uid,
        gid: inode.stat.gid,
        mtime: inode.stat.mtime,
        xattrs,
    })
}

/// Turns `tree` into dirtree and dirmeta objects named by their `algorithm` digests. Every
/// regular file must be empty, inline, or refer to its file object by an `algorithm` digest
/// with the object's path as payload (as trees built with a digest store are).
///
/// # Errors
/// [`SplitError`] naming the first file that cannot be stored.
pub fn split(tree: &Tree, algorithm: HashAlgorithm) -> Result<Split, SplitError> {
    let mut s = Splitter {
        tree,
        owner_path: hardlink_owners(tree),
        files: Files {
            algorithm,
            list: Vec::new(),
            seen: HashSet::new(),
        },
        objects: Vec::new(),
        seen_objects: HashSet::new(),
        ids: HashMap::new(),
    };
    let mut expanded = HashSet::new();
    // (directory, its path, children done): a directory is stored after its children.
    let mut stack = vec![(InodeId::ROOT, Vec::new(), false)];
    while let Some((dir, path, children_done)) = stack.pop() {
        let inode = s.inode(dir, &path)?;
        let Content::Directory(entries) = &inode.content else {
            return Err(malformed(&path, "not a directory"));
        };
        if children_done {
            s.store_dir(dir, inode, entries, &path)?;
            continue;
        }
        if !expanded.insert(dir) {
            return Err(malformed(&path, "directory reachable twice"));
        }
        stack.push((dir, path.clone(), true));
        for e in entries.iter().rev() {
            let child = s.inode(e.inode, &path)?;
            if !e.hardlink && matches!(child.content, Content::Directory(_)) {
                stack.push((e.inode, child_path(&path, &e.name), false));
            }
        }
    }
    let (tree_id, meta_id) = s.ids[&InodeId::ROOT];
    Ok(Split {
        tree: tree_id,
        dirmeta: meta_id,
        objects: s.objects,
        files: s.files.list,
    })
}

/// The path of the entry that owns each inode a hard link names (hard links name their
/// owner by path).
fn hardlink_owners(tree: &Tree) -> HashMap<InodeId, Vec<u8>> {
    let mut linked = HashSet::new();
    for inode in &tree.inodes {
        for e in inode.entries().unwrap_or_default() {
            if e.hardlink {
                linked.insert(e.inode);
            }
        }
    }
    let mut owner_path = HashMap::new();
    if !linked.is_empty() {
        tree.walk(|path, e| {
            if !e.hardlink && linked.contains(&e.inode) {
                owner_path.insert(e.inode, path.to_vec());
            }
        });
    }
    owner_path
}

/// `path/name`.
pub(super) fn child_path(path: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(path.len() + 1 + name.len());
    p.extend_from_slice(path);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// [`SplitError::Malformed`] at `path`.
fn malformed(path: &[u8], reason: impl Into<String>) -> SplitError {
    SplitError::Malformed {
        path: shown_path(path),
        reason: reason.into(),
    }
}

/// What a [`split`] has made so far.
struct Splitter<'t> {
    tree: &'t Tree,
    /// See [`hardlink_owners`].
    owner_path: HashMap<InodeId, Vec<u8>>,
    files: Files,
    /// What [`Split::objects`] says, and the ids in it.
    objects: Vec<(ObjectKind, AnyDigest, Vec<u8>)>,
    seen_objects: HashSet<AnyDigest>,
    /// The dirtree and dirmeta of each directory stored.
    ids: HashMap<InodeId, (AnyDigest, AnyDigest)>,
}

impl<'t> Splitter<'t> {
    /// Inode `id`, named by an entry of directory `path`.
    fn inode(&self, id: InodeId, path: &[u8]) -> Result<&'t Inode, SplitError> {
        let tree: &'t Tree = self.tree;
        tree.inodes
            .get(id.index())
            .ok_or_else(|| malformed(path, "entry names an inode that does not exist"))
    }

    /// Makes the dirtree and dirmeta of directory `dir` (at `path`, with `entries`), whose
    /// subdirectories are stored already.
    fn store_dir(
        &mut self,
        dir: InodeId,
        inode: &Inode,
        entries: &[DirEntry],
        path: &[u8],
    ) -> Result<(), SplitError> {
        let mut dt = DirTree {
            entries: Vec::with_capacity(entries.len()),
        };
        for e in entries {
            check_name(&e.name).map_err(|pr| malformed(path, pr.to_string()))?;
            dt.entries.push(TreeEntry {
                name: e.name.clone(),
                kind: self.entry_kind(e, &child_path(path, &e.name))?,
            });
        }
        if dt.entries.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(malformed(path, "entries not sorted or not unique"));
        }
        let tree_bytes = dt.encode();
        let meta_bytes =
            attrs_of(inode, if path.is_empty() { b"/" } else { path })?.encode_dirmeta();
        let tree_id = object_id(&tree_bytes, self.files.algorithm);
        let meta_id = object_id(&meta_bytes, self.files.algorithm);
        for (kind, id, bytes) in [
            (ObjectKind::DirTree, tree_id, tree_bytes),
            (ObjectKind::DirMeta, meta_id, meta_bytes),
        ] {
            if self.seen_objects.insert(id) {
                self.objects.push((kind, id, bytes));
            }
        }
        self.ids.insert(dir, (tree_id, meta_id));
        Ok(())
    }

    /// What entry `e` (at `path`) is, as a dirtree says it.
    fn entry_kind(&mut self, e: &DirEntry, path: &[u8]) -> Result<EntryKind, SplitError> {
        if e.hardlink {
            let target = self
                .owner_path
                .get(&e.inode)
                .ok_or_else(|| malformed(path, "hard link to an inode no entry owns"))?;
            dirtree::check_link_target(target).map_err(|pr| malformed(path, pr.to_string()))?;
            return Ok(EntryKind::Hardlink {
                target: target.clone(),
            });
        }
        let child = &self.tree.inodes[e.inode.index()];
        Ok(match &child.content {
            Content::Directory(_) => {
                let (tree, meta) = self.ids[&e.inode];
                EntryKind::Dir { tree, meta }
            }
            Content::Regular(f) => file_kind(child, f, path, &mut self.files)?,
            Content::Symlink(target) if target.len() >= limits::TARGET_MAX => {
                return Err(malformed(
                    path,
                    "symlink target not shorter than 4096 bytes",
                ))
            }
            Content::Symlink(target) => EntryKind::Symlink {
                attrs: attrs_of(child, path)?,
                target: target.clone(),
            },
            Content::Special => EntryKind::Special {
                attrs: attrs_of(child, path)?,
                rdev: child.stat.rdev,
            },
        })
    }
}

/// The file objects a split has met: each once, all of one algorithm.
struct Files {
    algorithm: HashAlgorithm,
    list: Vec<AnyDigest>,
    seen: HashSet<AnyDigest>,
}

fn file_kind(
    inode: &Inode,
    f: &RegularFile,
    path: &[u8],
    files: &mut Files,
) -> Result<EntryKind, SplitError> {
    let unstorable = |reason| SplitError::Unstorable {
        path: text::name(path),
        reason,
    };
    let size = inode.stat.size;
    let (digest, inline) = match (&f.inline, &f.digest, &f.payload) {
        (Some(c), None, None) if !c.is_empty() && c.len() as u64 == size => (None, Some(c.clone())),
        (Some(_), _, _) => {
            return Err(unstorable(
                "inline content with a digest or payload, or not of the file's size",
            ))
        }
        (None, Some(d), _) if d.algorithm() != files.algorithm => {
            return Err(SplitError::Algorithm {
                path: text::name(path),
                digest: d.algorithm(),
                objects: files.algorithm,
            })
        }
        (None, Some(d), Some(p)) if p.as_slice() == d.object_path().as_bytes() => {
            if files.seen.insert(*d) {
                files.list.push(*d);
            }
            (Some(*d), None)
        }
        (None, Some(_), _) => {
            return Err(unstorable(
                "its payload is not the object path of its digest",
            ))
        }
        (None, None, None) if size == 0 => (None, None),
        (None, None, _) => {
            return Err(unstorable(
                "no fs-verity digest (build the tree with a digest store)",
            ))
        }
    };
    Ok(EntryKind::File {
        attrs: attrs_of(inode, path)?,
        size,
        digest,
        inline,
    })
}

/// Where [`assemble`] gets objects from: given a kind and an id, the object's bytes (not
/// yet checked: `assemble` checks them against the id).
pub type Fetch<'a> = dyn FnMut(ObjectKind, &AnyDigest) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>
    + 'a;

/// Why a tree could not be rebuilt from its objects.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssembleError {
    /// The object could not be had.
    #[error("{kind} {id} (for {path}): {source}")]
    Fetch {
        /// Its kind.
        kind: ObjectKind,
        /// Its name.
        id: AnyDigest,
        /// The directory it describes.
        path: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The object's bytes do not have the digest that names it.
    #[error("{kind} {id} (for {path}) is corrupt: its content has digest {actual}")]
    Corrupt {
        /// Its kind.
        kind: ObjectKind,
        /// Its name.
        id: AnyDigest,
        /// The directory it describes.
        path: String,
        /// The digest of what was read (boxed: the error stays small).
        actual: Box<AnyDigest>,
    },
    /// The object does not parse.
    #[error("{id} (for {path}): {source}")]
    Parse {
        /// Its name.
        id: AnyDigest,
        /// The directory it describes.
        path: String,
        /// What is wrong (boxed: the error stays small).
        source: Box<ParseError>,
    },
    /// An object named by a digest of another algorithm than the ids the assembly started
    /// from (a commit's tree, a diff's first tree), or one naming such digests.
    #[error("{kind} {id} (for {path}): {reason}, but the tree's objects are named by {expected}")]
    Algorithm {
        /// Its kind.
        kind: ObjectKind,
        /// Its name.
        id: AnyDigest,
        /// The directory it describes.
        path: String,
        /// What is of another algorithm.
        reason: &'static str,
        /// The algorithm of the tree's ids.
        expected: HashAlgorithm,
    },
    /// Too many inodes or too deep.
    #[error("{path}: the tree is too large: {reason}")]
    TooLarge {
        /// Where the limit was hit.
        path: String,
        /// Which limit.
        reason: String,
    },
    /// A hard link whose target is not a file owned by another entry.
    #[error("{path}: hard link to {target}: {reason}")]
    BadHardlink {
        /// The link.
        path: String,
        /// Its target.
        target: String,
        /// Why.
        reason: &'static str,
    },
}

/// Reads the tree objects of an assembly or a diff, each distinct one once.
pub(super) struct Assembler<'f, 'a> {
    source: Source<'f, 'a>,
    trees: HashMap<AnyDigest, Rc<DirTree>>,
    metas: HashMap<AnyDigest, Rc<Attrs>>,
}

impl<'f, 'a> Assembler<'f, 'a> {
    /// An assembler of objects named by `algorithm` digests.
    pub(super) fn new(fetch: &'f mut Fetch<'a>, algorithm: HashAlgorithm) -> Self {
        Assembler {
            source: Source { fetch, algorithm },
            trees: HashMap::new(),
            metas: HashMap::new(),
        }
    }

    /// Dirtree `id` (for directory `path`).
    pub(super) fn dirtree(
        &mut self,
        id: &AnyDigest,
        path: &[u8],
    ) -> Result<Rc<DirTree>, AssembleError> {
        let source = &mut self.source;
        cached(&mut self.trees, id, || {
            let t = source.fetch_parsed(ObjectKind::DirTree, id, path, DirTree::parse)?;
            if t.algorithm().is_some_and(|a| a != source.algorithm) {
                return Err(AssembleError::Algorithm {
                    kind: ObjectKind::DirTree,
                    id: *id,
                    path: shown_path(path),
                    reason: "it names objects of another algorithm",
                    expected: source.algorithm,
                });
            }
            Ok(t)
        })
    }

    /// Dirmeta `id` (for directory `path`).
    pub(super) fn dirmeta(
        &mut self,
        id: &AnyDigest,
        path: &[u8],
    ) -> Result<Rc<Attrs>, AssembleError> {
        let source = &mut self.source;
        cached(&mut self.metas, id, || {
            source.fetch_parsed(ObjectKind::DirMeta, id, path, Attrs::parse_dirmeta)
        })
    }
}

/// What `cache` holds for `id`, else what `make` makes, then kept there.
fn cached<T, E>(
    cache: &mut HashMap<AnyDigest, Rc<T>>,
    id: &AnyDigest,
    make: impl FnOnce() -> Result<T, E>,
) -> Result<Rc<T>, E> {
    if let Some(t) = cache.get(id) {
        return Ok(Rc::clone(t));
    }
    let t = Rc::new(make()?);
    cache.insert(*id, Rc::clone(&t));
    Ok(t)
}

/// Where an assembly's objects come from, and the algorithm that names them all.
struct Source<'f, 'a> {
    fetch: &'f mut Fetch<'a>,
    algorithm: HashAlgorithm,
}

impl Source<'_, '_> {
    /// Fetches object `id` and checks it against its name.
    fn get(
        &mut self,
        kind: ObjectKind,
        id: &AnyDigest,
        path: &[u8],
    ) -> Result<Vec<u8>, AssembleError> {
        let p = || shown_path(path);
        if id.algorithm() != self.algorithm {
            return Err(AssembleError::Algorithm {
                kind,
                id: *id,
                path: p(),
                reason: "its name is of another algorithm",
                expected: self.algorithm,
            });
        }
        let bytes = (self.fetch)(kind, id).map_err(|source| AssembleError::Fetch {
            kind,
            id: *id,
            path: p(),
            source,
        })?;
        let actual = object_id(&bytes, self.algorithm);
        if actual != *id {
            return Err(AssembleError::Corrupt {
                kind,
                id: *id,
                path: p(),
                actual: Box::new(actual),
            });
        }
        Ok(bytes)
    }

    /// Fetches object `id` (for directory `path`), checks it against its name and parses it
    /// with `parse`.
    fn fetch_parsed<T>(
        &mut self,
        kind: ObjectKind,
        id: &AnyDigest,
        path: &[u8],
        parse: impl FnOnce(&[u8]) -> Result<T, ParseError>,
    ) -> Result<T, AssembleError> {
        let bytes = self.get(kind, id, path)?;
        parse(&bytes).map_err(|source| AssembleError::Parse {
            id: *id,
            path: shown_path(path),
            source: Box::new(source),
        })
    }
}

fn inode_from(attrs: &Attrs, content: Content, size: u64, rdev: u32) -> Inode {
    Inode {
        stat: Stat {
            mode: attrs.mode,
            uid: attrs.uid,
            gid: attrs.gid,
            nlink: 1,
            rdev,
            size,
            mtime: attrs.mtime,
        },
        xattrs: attrs.xattrs.clone(),
        content,
    }
}

/// Rebuilds the tree whose root has dirtree `tree` and dirmeta `dirmeta`, fetching objects
/// through `fetch` and checking each against its name. Each distinct object is fetched
/// once. Every id must be of the algorithm of `tree`. The result is the tree [`split`] was given (same names, attributes, contents,
/// xattrs, hard links), so it writes the same image.
///
/// # Errors
/// [`AssembleError`] naming the object and the directory it describes.
pub fn assemble(
    tree: &AnyDigest,
    dirmeta: &AnyDigest,
    fetch: &mut Fetch<'_>,
) -> Result<Tree, AssembleError> {
    let mut a = Assembler::new(fetch, tree.algorithm());
    let root_meta = a.dirmeta(dirmeta, b"")?;
    let mut out = Tree::new(Stat::default());
    out.inodes[0] = inode_from(&root_meta, Content::Directory(Vec::new()), 0, 0);
    // (directory inode, its dirtree, its path, depth)
    let mut queue = vec![(InodeId::ROOT, *tree, Vec::<u8>::new(), 0usize)];
    let mut links: Vec<(InodeId, usize, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut budget = Budget(0);
    while let Some((dir, tree_id, path, depth)) = queue.pop() {
        let dt = a.dirtree(&tree_id, &path)?;
        budget.spend(dt.entries.len(), &path)?;
        let mut entries = Vec::with_capacity(dt.entries.len());
        let mut subdirs = 0u32;
        for (index, e) in dt.entries.iter().enumerate() {
            let inode = match &e.kind {
                EntryKind::Dir { tree, meta } => {
                    let p = child_path(&path, &e.name);
                    budget.depth(depth + 1, &p)?;
                    let m = a.dirmeta(meta, &p)?;
                    let id = out.push(inode_from(&m, Content::Directory(Vec::new()), 0, 0));
                    queue.push((id, *tree, p, depth + 1));
                    subdirs = subdirs.saturating_add(1);
                    id
                }
                EntryKind::File {
                    attrs,
                    size,
                    digest,
                    inline,
                } => out.push(inode_from(
                    attrs,
                    Content::Regular(RegularFile {
                        inline: inline.clone(),
                        payload: digest.map(|d| d.object_path().into_bytes()),
                        digest: *digest,
                    }),
                    *size,
                    0,
                )),
                EntryKind::Symlink { attrs, target } => {
                    out.push(inode_from(attrs, Content::Symlink(target.clone()), 0, 0))
                }
                EntryKind::Special { attrs, rdev } => {
                    out.push(inode_from(attrs, Content::Special, 0, *rdev))
                }
                EntryKind::Hardlink { target } => {
                    links.push((dir, index, target.clone(), child_path(&path, &e.name)));
                    InodeId::ROOT // fixed by `link`
                }
            };
            entries.push(DirEntry {
                name: e.name.clone(),
                inode,
                hardlink: matches!(e.kind, EntryKind::Hardlink { .. }),
            });
        }
        let d = out.inode_mut(dir);
        d.content = Content::Directory(entries);
        // As the directory builders count them (the image writer recomputes it anyway).
        d.stat.nlink = subdirs.saturating_add(2);
    }
    for (dir, index, target, path) in links {
        link(&mut out, dir, index, &target, &path)?;
    }
    Ok(out)
}

/// Points entry `index` of directory `dir`, hard link `path`, at the inode of the entry whose
/// path is `target`, counting the link.
fn link(
    out: &mut Tree,
    dir: InodeId,
    index: usize,
    target: &[u8],
    path: &[u8],
) -> Result<(), AssembleError> {
    let bad = |reason| AssembleError::BadHardlink {
        path: text::name(path),
        target: text::name(target),
        reason,
    };
    let target_inode = hardlink_owner(out, target).map_err(bad)?;
    let t = out.inode_mut(target_inode);
    if t.stat.file_type() == Some(FileType::Directory) {
        return Err(bad("the target is a directory"));
    }
    t.stat.nlink = t.stat.nlink.saturating_add(1);
    if let Content::Directory(entries) = &mut out.inode_mut(dir).content {
        entries[index].inode = target_inode;
    }
    Ok(())
}

/// The inode of the entry at path `target`, found through directories only (never through
/// another, not yet resolved, hard link): the parser made sure the spelling is canonical.
fn hardlink_owner(out: &Tree, target: &[u8]) -> Result<InodeId, &'static str> {
    let mut at = InodeId::ROOT;
    let rel = target.strip_prefix(b"/").unwrap_or(target);
    let components: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    for (i, name) in components.iter().enumerate() {
        let entry = out.lookup(at, name).ok_or("no such file")?;
        if entry.hardlink {
            return Err("the path goes through, or ends at, another hard link");
        }
        if i + 1 == components.len() {
            return Ok(entry.inode);
        }
        if out.inode(entry.inode).entries().is_none() {
            return Err("no such directory");
        }
        at = entry.inode;
    }
    Err("no such file")
}

/// How much an assembly or a diff may read: [`limits::TREE_ENTRIES_MAX`] entries, nested
/// at most [`limits::DEPTH_MAX`] deep.
pub(super) struct Budget(pub(super) usize);

impl Budget {
    /// Counts `entries` more, read at `path`.
    pub(super) fn spend(&mut self, entries: usize, path: &[u8]) -> Result<(), AssembleError> {
        self.0 = self.0.saturating_add(entries);
        if self.0 > limits::TREE_ENTRIES_MAX {
            return Err(AssembleError::TooLarge {
                path: shown_path(path),
                reason: format!("more than {} entries", limits::TREE_ENTRIES_MAX),
            });
        }
        Ok(())
    }

    /// Checks that `depth` (of `path`) is within the limit.
    pub(super) fn depth(&self, depth: usize, path: &[u8]) -> Result<(), AssembleError> {
        if depth > limits::DEPTH_MAX {
            return Err(AssembleError::TooLarge {
                path: shown_path(path),
                reason: format!("nested deeper than {}", limits::DEPTH_MAX),
            });
        }
        Ok(())
    }
}

/// A path for a message: `/` for the root.
pub(super) fn shown_path(path: &[u8]) -> String {
    text::name(if path.is_empty() { b"/" } else { path })
}

/// Writes the image of `tree` in composefs format `format` into `sink`, returning its
/// fs-verity digest (`algorithm`, 4 KiB blocks, no salt: its name in a repository of
/// `algorithm`) and size: how an image is derived from a commit's tree.
///
/// # Errors
/// [`WriteError`] if the tree cannot be written in that format.
pub fn derive_image(
    tree: &Tree,
    format: u32,
    algorithm: HashAlgorithm,
    sink: Option<&mut dyn std::io::Write>,
) -> Result<(AnyDigest, u64), WriteError> {
    struct Tee<'a> {
        hasher: Hasher,
        sink: Option<&'a mut dyn std::io::Write>,
    }
    impl std::io::Write for Tee<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Some(s) = self.sink.as_mut() {
                s.write_all(buf)?;
            }
            self.hasher.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            match self.sink.as_mut() {
                Some(s) => s.flush(),
                None => Ok(()),
            }
        }
    }
    let mut tee = Tee {
        hasher: Hasher::new(Params::composefs(algorithm)),
        sink,
    };
    let options = WriteOptions {
        min_version: format,
        max_version: format,
    };
    let size = crate::erofs::write_to(tree, &options, &mut tee)?;
    Ok((tee.hasher.finish(), size))
}
