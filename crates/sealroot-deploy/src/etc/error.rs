//! The errors of the `/etc` merge, one per operation.

use std::fmt;
use std::io;
use std::path::PathBuf;

use sealroot_verity::AnyDigest;

use super::plan::Conflict;

/// Why a default `/etc` could not be taken from an image tree.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The path is in the tree but is not a directory.
    #[error("{} in the image is not a directory", path.display())]
    NotADirectory {
        /// The path in the image.
        path: PathBuf,
    },
}

/// Why the local `/etc` could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadLocalError {
    /// The directory fd could not be duplicated.
    #[error("duplicating the local /etc directory fd: {0}")]
    Dup(#[source] io::Error),
    /// Walking the directory failed (the paths it names start with `/proc/self/fd/N/.`, the
    /// directory fd's).
    #[error("reading the local /etc: {0}")]
    Build(#[source] sealroot_tree::BuildError),
}

/// Why the merge could not be planned. Paths are relative to `/etc`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A name in a tree is empty, `.`, `..`, or holds `/` or NUL.
    #[error("{}: not a valid file name", path.display())]
    BadName {
        /// The path, the bad name last.
        path: PathBuf,
    },
    /// A mode whose type bits name no file type, or another type than the inode's content.
    #[error("{}: mode {mode:o} names no file type, or not the type of its content", path.display())]
    BadInode {
        /// The path.
        path: PathBuf,
        /// The mode.
        mode: u32,
    },
    /// A regular file of a default whose content is known by neither bytes, digest nor
    /// object.
    #[error("{}: the tree records no content for this file", path.display())]
    NoContent {
        /// The path.
        path: PathBuf,
    },
    /// Reading the object of a default's file failed.
    #[error("{}: reading its object: {source}", path.display())]
    Object {
        /// The path.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
}

/// What was being done when a system call of [`apply`](super::apply) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApplyOp {
    /// Listing the output directory (to check it is empty).
    ListOutput,
    /// Creating a file, directory, symlink or special file.
    Create,
    /// Opening a directory just created.
    OpenDir,
    /// Writing a file's content.
    Write,
    /// Opening a file or directory of the local `/etc`.
    OpenLocal,
    /// Reading a file of the local `/etc`.
    ReadLocal,
    /// Opening an object of the new default.
    OpenObject,
    /// Reading an object of the new default.
    ReadObject,
    /// Making a hard link.
    Link,
    /// Setting the owner.
    Chown,
    /// Setting the mode.
    Chmod,
    /// Setting an xattr.
    SetXattr,
    /// Setting the modification time.
    SetTimes,
}

impl fmt::Display for ApplyOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApplyOp::ListOutput => "listing the output directory",
            ApplyOp::Create => "creating",
            ApplyOp::OpenDir => "opening new directory",
            ApplyOp::Write => "writing",
            ApplyOp::OpenLocal => "opening the local version of",
            ApplyOp::ReadLocal => "reading the local version of",
            ApplyOp::OpenObject => "opening the object of",
            ApplyOp::ReadObject => "reading the object of",
            ApplyOp::Link => "hard-linking",
            ApplyOp::Chown => "setting the owner of",
            ApplyOp::Chmod => "setting the mode of",
            ApplyOp::SetXattr => "setting an xattr of",
            ApplyOp::SetTimes => "setting the mtime of",
        })
    }
}

/// Why the merged `/etc` could not be written. Paths are relative to `/etc`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The plan has conflicts its policy left unresolved; nothing was written.
    #[error("{} unresolved /etc conflict(s): {}", .0.len(), list(.0))]
    Conflicts(Vec<Conflict>),
    /// The output directory is not empty; nothing was written.
    #[error("the directory for the merged /etc is not empty")]
    NotEmpty,
    /// A system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: ApplyOp,
        /// The path.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// A local file changed between [`plan`](super::plan) and [`apply`](super::apply).
    #[error("{}: the local file changed since the merge was planned", path.display())]
    LocalChanged {
        /// The path.
        path: PathBuf,
    },
    /// An object of the new default does not hold what the tree says.
    #[error(
        "{}: its object holds {found_size} bytes of digest {found}, not {expected_size} bytes{}",
        path.display(),
        expected.as_ref().map(|d| format!(" of digest {d}")).unwrap_or_default()
    )]
    ObjectMismatch {
        /// The path.
        path: PathBuf,
        /// The digest the tree records, if any.
        expected: Option<Box<AnyDigest>>,
        /// The size the tree records.
        expected_size: u64,
        /// The digest of what the object holds.
        found: Box<AnyDigest>,
        /// The size of what the object holds.
        found_size: u64,
    },
    /// A file of the new default with content but neither inline bytes nor an object.
    #[error("{}: the new image records no content for this file", path.display())]
    NoContent {
        /// The path.
        path: PathBuf,
    },
    /// An owner or group of `-1`, which `chown` takes for "unchanged".
    #[error("{}: owner {uid}:{gid} cannot be set", path.display())]
    BadOwner {
        /// The path.
        path: PathBuf,
        /// The owner.
        uid: u32,
        /// The group.
        gid: u32,
    },
}

/// The conflicts, one after the other.
fn list(conflicts: &[Conflict]) -> String {
    conflicts
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
