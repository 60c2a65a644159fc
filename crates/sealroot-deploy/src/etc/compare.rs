//! Comparing two versions of a path: what differs, and whether whole subtrees are equal.

use std::fmt;

use sealroot_format::tree::{
    Content, DirEntry, FileType, Inode, InodeId, RegularFile, Tree, Xattr,
};
use sealroot_verity::{AnyDigest, Params};

use super::error::PlanError;
use super::input::Objects;

/// The permission bits of a mode (`07777`): what `chmod` sets.
pub(crate) const PERMISSION_BITS: u32 = 0o7777;

/// One inode of one input, with what it takes to read its content.
#[derive(Clone, Copy)]
pub(crate) struct At<'t> {
    pub(crate) tree: &'t Tree,
    pub(crate) id: InodeId,
    /// Where external files are read from (`None` for the local tree, whose files all have
    /// a digest of the merge's algorithm or their whole content).
    pub(crate) objects: Option<&'t dyn Objects>,
}

impl<'t> At<'t> {
    pub(crate) fn inode(&self) -> &'t Inode {
        self.tree.inode(self.id)
    }

    pub(crate) fn file_type(&self) -> Option<FileType> {
        self.inode().stat.file_type()
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.file_type() == Some(FileType::Directory)
    }

    /// The entries of this directory (none for anything else).
    pub(crate) fn entries(&self) -> &'t [DirEntry] {
        self.inode().entries().unwrap_or(&[])
    }

    /// The inode named `name` in this directory.
    pub(crate) fn child(&self, name: &[u8]) -> Option<At<'t>> {
        if !self.is_dir() {
            return None;
        }
        self.tree.lookup(self.id, name).map(|e| At {
            id: e.inode,
            ..*self
        })
    }
}

/// What differs between two versions of a path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct What {
    /// The file type (regular file, directory, symlink, …).
    pub kind: bool,
    /// The content: a file's bytes, a symlink's target, a device's number.
    pub content: bool,
    /// The permission bits.
    pub mode: bool,
    /// The owner or the group.
    pub owner: bool,
    /// The extended attributes (`security.selinux` among them).
    pub xattrs: bool,
    /// Something inside the directory (set only where a whole subtree is compared).
    pub inside: bool,
}

impl What {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        *self == What::default()
    }
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.kind, "type"),
            (self.content, "content"),
            (self.mode, "mode"),
            (self.owner, "owner"),
            (self.xattrs, "xattrs"),
            (self.inside, "inside"),
        ];
        let mut first = true;
        for (_, name) in names.iter().filter(|(set, _)| *set) {
            if !first {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
            first = false;
        }
        Ok(())
    }
}

/// How one input differs from the old default at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delta {
    /// The same (or absent in both).
    Unchanged,
    /// Absent in the old default, present here.
    Added,
    /// Present in the old default, absent here.
    Deleted,
    /// Present in both, different.
    Modified(What),
}

impl From<What> for Delta {
    /// [`Delta::Modified`], or [`Delta::Unchanged`] if nothing differs.
    fn from(what: What) -> Self {
        if what.is_empty() {
            Delta::Unchanged
        } else {
            Delta::Modified(what)
        }
    }
}

impl fmt::Display for Delta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Delta::Unchanged => f.write_str("unchanged"),
            Delta::Added => f.write_str("added"),
            Delta::Deleted => f.write_str("deleted"),
            Delta::Modified(what) => write!(f, "modified ({what})"),
        }
    }
}

/// How a regular file's content is known without reading its object.
enum Known<'t> {
    /// All of it.
    Bytes(&'t [u8]),
    /// Its fs-verity digest.
    Digest(&'t AnyDigest),
}

impl<'t> Known<'t> {
    /// What the tree tells of `file`'s content; `None` if only its object does.
    fn of(file: &'t RegularFile) -> Option<Self> {
        if let Some(bytes) = &file.inline {
            Some(Known::Bytes(bytes))
        } else {
            file.digest.as_ref().map(Known::Digest)
        }
    }
}

/// Compares versions of paths under the merge's rules.
pub(crate) struct Comparer<'o> {
    /// The fs-verity parameters contents are compared by when they are known differently.
    pub(crate) params: Params,
    /// xattr names left out of every comparison.
    pub(crate) ignored_xattrs: &'o [Vec<u8>],
}

impl Comparer<'_> {
    /// What differs between `a` and `b` themselves (not what a directory holds).
    pub(crate) fn node(&self, a: At<'_>, b: At<'_>, path: &[u8]) -> Result<What, PlanError> {
        let (ia, ib) = (a.inode(), b.inode());
        let kind = a.file_type() != b.file_type();
        let is_link = a.file_type() == Some(FileType::Symlink);
        Ok(What {
            kind,
            content: !kind && !self.same_content(a, b, path)?,
            mode: !kind
                && !is_link
                && ia.stat.mode & PERMISSION_BITS != ib.stat.mode & PERMISSION_BITS,
            owner: (ia.stat.uid, ia.stat.gid) != (ib.stat.uid, ib.stat.gid),
            xattrs: self.xattrs(ia) != self.xattrs(ib),
            inside: false,
        })
    }

    /// How `b` differs from `a`, a directory's contents included.
    pub(crate) fn delta(
        &self,
        a: Option<At<'_>>,
        b: Option<At<'_>>,
        path: &mut Vec<u8>,
    ) -> Result<Delta, PlanError> {
        Ok(match (a, b) {
            (None, None) => Delta::Unchanged,
            (None, Some(_)) => Delta::Added,
            (Some(_), None) => Delta::Deleted,
            (Some(a), Some(b)) => {
                let mut what = self.node(a, b, path)?;
                what.inside = a.is_dir() && b.is_dir() && !self.same_entries(a, b, path)?;
                Delta::from(what)
            }
        })
    }

    /// How `b` differs from `a` themselves (for directories, not what they hold).
    pub(crate) fn node_delta(
        &self,
        a: Option<At<'_>>,
        b: At<'_>,
        path: &[u8],
    ) -> Result<Delta, PlanError> {
        let Some(a) = a else {
            return Ok(Delta::Added);
        };
        Ok(Delta::from(self.node(a, b, path)?))
    }

    /// Whether directories `a` and `b` hold the same names, each the same tree.
    fn same_entries(&self, a: At<'_>, b: At<'_>, path: &mut Vec<u8>) -> Result<bool, PlanError> {
        let (ea, eb) = (a.entries(), b.entries());
        if ea.len() != eb.len() || ea.iter().zip(eb).any(|(x, y)| x.name != y.name) {
            return Ok(false);
        }
        for (x, y) in ea.iter().zip(eb) {
            let len = push_name(path, &x.name);
            let delta = self.delta(
                Some(At { id: x.inode, ..a }),
                Some(At { id: y.inode, ..b }),
                path,
            );
            path.truncate(len);
            if delta? != Delta::Unchanged {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The xattrs compared, sorted by name.
    fn xattrs<'i>(&self, inode: &'i Inode) -> Vec<&'i Xattr> {
        let mut x: Vec<&Xattr> = inode
            .xattrs
            .iter()
            .filter(|x| !self.ignored_xattrs.contains(&x.name))
            .collect();
        x.sort_unstable();
        x
    }

    /// Whether `a` and `b`, of one type, hold the same content.
    fn same_content(&self, a: At<'_>, b: At<'_>, path: &[u8]) -> Result<bool, PlanError> {
        let (ia, ib) = (a.inode(), b.inode());
        Ok(match (&ia.content, &ib.content) {
            (Content::Regular(x), Content::Regular(y)) => {
                ia.stat.size == ib.stat.size
                    && (ia.stat.size == 0 || self.same_file(a, x, b, y, path)?)
            }
            (Content::Symlink(x), Content::Symlink(y)) => x == y,
            (Content::Special, Content::Special) => ia.stat.rdev == ib.stat.rdev,
            (Content::Directory(_), Content::Directory(_)) => true,
            _ => false,
        })
    }

    /// Whether two non-empty regular files of one size hold the same bytes.
    fn same_file(
        &self,
        a: At<'_>,
        x: &RegularFile,
        b: At<'_>,
        y: &RegularFile,
        path: &[u8],
    ) -> Result<bool, PlanError> {
        match (Known::of(x), Known::of(y)) {
            (Some(Known::Bytes(p)), Some(Known::Bytes(q))) => Ok(p == q),
            (Some(Known::Digest(p)), Some(Known::Digest(q))) if p.algorithm() == q.algorithm() => {
                Ok(p == q)
            }
            _ => Ok(self.digest(a, x, path)? == self.digest(b, y, path)?),
        }
    }

    /// The digest of a regular file's content under [`Self::params`], reading its object
    /// if nothing else tells it.
    fn digest(&self, at: At<'_>, file: &RegularFile, path: &[u8]) -> Result<AnyDigest, PlanError> {
        let no_content = || PlanError::NoContent {
            path: display_path(path),
        };
        match Known::of(file) {
            Some(Known::Bytes(bytes)) => Ok(sealroot_verity::digest(&self.params, bytes)),
            Some(Known::Digest(d)) if d.algorithm() == self.params.algorithm() => Ok(*d),
            _ => {
                let payload = file.payload.as_deref().ok_or_else(no_content)?;
                let objects = at.objects.ok_or_else(no_content)?;
                let read_error = |source| PlanError::Object {
                    path: display_path(path),
                    source,
                };
                let object = objects.open(payload).map_err(read_error)?;
                sealroot_verity::digest_file(&self.params, &object).map_err(read_error)
            }
        }
    }
}

/// Appends `/name` (or `name` at the root) to `path`; returns the length to truncate back to.
pub(crate) fn push_name(path: &mut Vec<u8>, name: &[u8]) -> usize {
    let len = path.len();
    if len > 0 {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    len
}

/// A path relative to the merged directory, for messages (`.` for the directory itself).
pub(crate) fn display_path(path: &[u8]) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    if path.is_empty() {
        std::path::PathBuf::from(".")
    } else {
        std::path::PathBuf::from(std::ffi::OsStr::from_bytes(path))
    }
}
