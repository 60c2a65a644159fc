//! The error of [`build_from_dir`](crate::build_from_dir).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What was being done to a file when an I/O call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Opening a directory or file.
    Open,
    /// Listing a directory's entries.
    ReadDir,
    /// `stat`ing a file.
    Stat,
    /// Reading a symlink's target.
    ReadLink,
    /// Listing or reading extended attributes.
    ReadXattrs,
    /// Reading a file's content (to hash it or to inline it).
    Read,
    /// Creating the digest store or one of its `xx/` directories.
    CreateStore,
    /// Checking whether an object already is in the digest store.
    CheckObject,
    /// Copying a file into a new object of the digest store.
    CopyObject,
    /// Flushing a new object to disk.
    SyncObject,
    /// Enabling fs-verity on a new object, or measuring it.
    EnableVerity,
    /// Moving a new, complete object to its final name.
    LinkObject,
    /// Starting the worker threads.
    StartThreads,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Open => "opening",
            Operation::ReadDir => "listing",
            Operation::Stat => "reading the attributes of",
            Operation::ReadLink => "reading the target of symlink",
            Operation::ReadXattrs => "reading xattrs of",
            Operation::Read => "reading",
            Operation::CreateStore => "creating digest store directory",
            Operation::CheckObject => "looking up digest store object",
            Operation::CopyObject => "copying into digest store object",
            Operation::SyncObject => "flushing digest store object",
            Operation::EnableVerity => "enabling fs-verity on digest store object",
            Operation::LinkObject => "putting in place digest store object",
            Operation::StartThreads => "starting threads for",
        })
    }
}

/// Why a tree could not be built from a directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A system call failed on `path` while doing `op`.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: Operation,
        /// The file it was done to (under the source directory, or in the digest store).
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The source path is not a directory (symlinks are not followed).
    #[error("{}: not a directory", path.display())]
    NotADirectory {
        /// The source path.
        path: PathBuf,
    },
    /// A file of a type composefs cannot represent.
    #[error("{}: unsupported file type (mode {mode:o})", path.display())]
    UnsupportedFileType {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// A file changed (was replaced, grew or shrank) between the walk and the read of its
    /// content, so the tree would not describe one consistent state of it.
    #[error("{}: changed while the tree was being built", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// An extended attribute composefs refuses, as C `mkcomposefs` does: a name longer than
    /// 255 bytes, a value longer than 65535 bytes, or more xattr data on one inode than fits
    /// the image's per-inode limit.
    #[error("{}: extended attribute {} is too large for composefs ({reason})",
        path.display(), String::from_utf8_lossy(name))]
    XattrTooLarge {
        /// The file.
        path: PathBuf,
        /// The attribute that broke the limit.
        name: Vec<u8>,
        /// Which limit.
        reason: &'static str,
    },
    /// A symlink with an empty target, which composefs cannot store.
    #[error("{}: symlink with an empty target", path.display())]
    EmptySymlink {
        /// The symlink.
        path: PathBuf,
    },
    /// `skip_xattrs` and `user_xattrs` were both set (C `mkcomposefs` refuses this too).
    #[error("skip_xattrs and user_xattrs conflict")]
    ConflictingOptions,
    /// An object store or digest cache of another algorithm than the build's: the tree
    /// would name files by digests the store or cache does not hold.
    #[error("the {what} holds {found} digests, but the tree is to record {wanted} digests")]
    AlgorithmMismatch {
        /// `object store` or `digest cache`.
        what: &'static str,
        /// Its algorithm.
        found: sealroot_verity::HashAlgorithm,
        /// The build's ([`BuildOptions::algorithm`](crate::BuildOptions::algorithm)).
        wanted: sealroot_verity::HashAlgorithm,
    },
}

impl BuildError {
    /// This error as an [`io::Error`] (for [`crate::tar::ObjectSink`]): a source's own read
    /// error is passed on as it is; the store's keeps what was done to which object.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            BuildError::Io {
                op: Operation::Read,
                source,
                ..
            } => source,
            e => {
                let kind = match &e {
                    BuildError::Io { source, .. } => source.kind(),
                    _ => io::ErrorKind::Other,
                };
                io::Error::new(kind, e)
            }
        }
    }

    pub(crate) fn io(op: Operation, path: PathBuf, source: impl Into<io::Error>) -> Self {
        BuildError::Io {
            op,
            path,
            source: source.into(),
        }
    }
}
