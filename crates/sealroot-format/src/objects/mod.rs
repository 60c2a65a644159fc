//! Commits and tree objects: the repository's record of a tree, one object per directory,
//! from which the composefs image is derived.
//!
//! A [`Tree`](crate::Tree) is stored as three kinds of content-addressed objects, each named
//! (like every object in the repository) by the fs-verity digest of its bytes, sha256 or
//! sha512 as the repository's algorithm says ([`object_id`]):
//!
//! - a **dirmeta** ([`Attrs`]): a directory's own mode, owner, mtime and xattrs;
//! - a **dirtree** ([`DirTree`]): a directory's entries: files with all their metadata and
//!   either inline content or the digest of their file object, symlinks, devices, hard
//!   links, and for each subdirectory the names of its dirtree and dirmeta;
//! - a **commit** ([`Commit`]): the root dirtree and dirmeta, the parent commit, a
//!   timestamp, subject, body, version, free-form metadata, and the digest and format
//!   version of the composefs image derived from the tree.
//!
//! As in ostree, a directory that did not change between two commits is the same object in
//! both, so two commits of similar trees share most of their metadata objects, and a transport
//! fetches only the directories that changed. Unlike ostree, file metadata lives in the
//! dirtree (file objects are the bare contents composefs images point at), and mtimes are
//! kept: the image re-created from the objects must be byte-identical to the one
//! `mkcomposefs` writes for the same directory.
//!
//! # Encoding
//!
//! All three are short text formats with one header line, `\n` line ends and single spaces
//! between fields. Byte strings (names, symlink targets, inline content, xattrs, subjects)
//! use the dumpfile escapes: `\\`, `\n`, `\r`, `\t`, and `\xHH` for every byte that is not
//! printable ASCII, for space, and (in xattrs) for `=`. Numbers are decimal, modes octal
//! with their type bits, mtimes `SECONDS.NANOSECONDS`, digests lowercase hex: 64 digits for
//! sha256, 128 for sha512, the length telling which.
//!
//! ```text
//! sealroot-dirmeta 1
//! MODE UID GID MTIME [XATTR...]
//! ```
//!
//! ```text
//! sealroot-dirtree 1
//! d NAME DIRTREE DIRMETA                                  a subdirectory
//! f NAME MODE UID GID MTIME SIZE DIGEST|- INLINE|- [XATTR...]   a regular file
//! l NAME MODE UID GID MTIME TARGET [XATTR...]               a symlink
//! s NAME MODE UID GID MTIME RDEV [XATTR...]                 a device, fifo or socket
//! h NAME PATH                                             a hard link to the file at PATH
//! ```
//!
//! Entries are sorted by name (bytewise), names unique; `XATTR` is `NAME=VALUE`, sorted by
//! name. A regular file has either a digest (its content is the file object of that
//! digest; the image's payload is the object's path) or inline content (1 to 64 bytes at
//! most as `mkcomposefs` inlines; any length the image allows), or neither when it is
//! empty; a content that is exactly `-` is written `\x2d`. A hard link names, by its
//! absolute path from the commit's root (`/` and names joined by single `/`, through
//! directories only), the entry that owns the inode. Modes are 16 bits (the image stores
//! no more; [`split`] drops higher bits a tree may carry).
//!
//! ```text
//! sealroot-commit 1
//! tree DIRTREE
//! dirmeta DIRMETA
//! [parent COMMIT]
//! image ALG:DIGEST          sha256 or sha512, the algorithm of the digest
//! image-format VERSION
//! timestamp SECONDS
//! [version TEXT]             present when set, even empty
//! [meta KEY TEXT]...          sorted by KEY, keys unique, [A-Za-z0-9._:-]{1,128}; TEXT may be empty
//! [subject TEXT]              absent when empty
//! [body TEXT]                 absent when empty
//! ```
//!
//! Every encoding is **canonical**: each object has exactly one byte form, and the parsers
//! refuse any other (they re-encode what they read and compare), so the digest of a commit
//! or tree object is a function of its meaning alone.
//!
//! **sha512.** In a sha512 repository (composefs-rs's `fsverity-sha512-12`) every id is a
//! sha512 digest: the objects are named by their sha512 fs-verity digests, and the digests
//! they hold (dirtrees, dirmetas, file objects, parent, image) are 128 hex digits, the image
//! written `image sha512:DIGEST`. Nothing else changes, so a sha256 object reads and encodes
//! exactly as before. One object names ids of one algorithm: the parsers refuse a commit or
//! dirtree that mixes the two ([`Problem::MixedAlgorithms`]), and [`assemble`] and [`diff`]
//! refuse an object whose ids are not of the algorithm of the ids they started from. A
//! dirtree that names no id (only inline or empty files, symlinks, devices, hard links) has
//! the same bytes in both, under two names.
//!
//! [`split`] turns a tree into objects; [`assemble`] rebuilds the tree from them (fetching
//! through a callback: this crate does no I/O), checking every object against its name;
//! [`derive_image`] writes the image of an assembled tree with the commit's format version;
//! [`diff`] compares two trees directory by directory, skipping shared subtrees.

mod build;
mod commit;
mod diff;
mod dirtree;
mod error;
mod text;

pub use build::{assemble, derive_image, split, AssembleError, Fetch, Split, SplitError};
pub use commit::{Commit, MetaKeyError, META_KEY_MAX};
pub use diff::{diff, Change, ChangeKind};
pub use dirtree::{Attrs, DirTree, EntryKind, TreeEntry};
pub use error::{ParseError, Problem};

use sealroot_verity::{AnyDigest, HashAlgorithm, Params};

/// The kinds of metadata objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A commit.
    Commit,
    /// A directory's entries.
    DirTree,
    /// A directory's own metadata.
    DirMeta,
}

impl ObjectKind {
    /// The name used in messages and in the header line (`dirtree`).
    pub const fn name(self) -> &'static str {
        match self {
            ObjectKind::Commit => "commit",
            ObjectKind::DirTree => "dirtree",
            ObjectKind::DirMeta => "dirmeta",
        }
    }

    /// The largest object of this kind a parser accepts.
    pub const fn max_size(self) -> usize {
        match self {
            ObjectKind::Commit => limits::COMMIT_MAX,
            ObjectKind::DirTree => limits::DIRTREE_MAX,
            ObjectKind::DirMeta => limits::DIRMETA_MAX,
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The bounds the parsers and [`assemble`] enforce on untrusted objects.
pub mod limits {
    /// The largest commit object: 1 MiB.
    pub const COMMIT_MAX: usize = 1 << 20;
    /// The largest dirtree object: 64 MiB (a directory of about 400 000 files).
    pub const DIRTREE_MAX: usize = 64 << 20;
    /// The largest dirmeta object: 1 MiB (an image allows 32 KiB of xattrs per inode).
    pub const DIRMETA_MAX: usize = 1 << 20;
    /// The most entries (names, hard links included) an assembled tree, or the two trees a
    /// diff compares, may have: 2^23 (/usr of a desktop has about 2^17). Shared subtrees
    /// are expanded once per place they appear, so this also stops a small set of objects
    /// that references itself many times from exploding.
    pub const TREE_ENTRIES_MAX: usize = 1 << 23;
    /// The deepest directory nesting [`assemble`](super::assemble) and
    /// [`diff`](super::diff) follow.
    pub const DEPTH_MAX: usize = 2048;
    /// The most entries one dirtree may hold: 2^20.
    pub const DIRTREE_ENTRIES_MAX: usize = 1 << 20;
    /// Hard link and symlink targets are shorter than this (`PATH_MAX`).
    pub const TARGET_MAX: usize = 4096;
}

/// The fs-verity digest (`algorithm`, 4 KiB blocks, no salt) naming an object with these
/// bytes in a repository of `algorithm`.
pub fn object_id(bytes: &[u8], algorithm: HashAlgorithm) -> AnyDigest {
    sealroot_verity::digest(&Params::composefs(algorithm), bytes)
}
