//! The errors of the repository's operations: one enum per operation, each naming the path
//! or object concerned and the cause.

use std::fmt;
use std::io;
use std::path::PathBuf;

use sealroot_format::erofs::{ReadError, WriteError};

use crate::id::{ImageId, ObjectId, RefName, RefNameError};

/// What was being done when a system call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Creating a directory.
    CreateDir,
    /// Opening a file or directory.
    Open,
    /// Creating a new (temporary) file.
    Create,
    /// Reading a file.
    Read,
    /// Writing a file.
    Write,
    /// Copying a file into a new object.
    Copy,
    /// `stat`ing a file.
    Stat,
    /// Listing a directory.
    List,
    /// Giving a complete file its name (`linkat`).
    Link,
    /// Renaming over a name (`renameat`).
    Rename,
    /// Making a symlink.
    Symlink,
    /// Reading a symlink.
    ReadLink,
    /// Removing a name.
    Remove,
    /// Flushing a file, a directory or the whole filesystem to stable storage.
    Sync,
    /// Taking or changing the repository lock.
    Lock,
    /// Enabling fs-verity on a file.
    EnableVerity,
    /// Measuring a file's fs-verity digest.
    MeasureVerity,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::CreateDir => "creating directory",
            Operation::Open => "opening",
            Operation::Create => "creating a file in",
            Operation::Read => "reading",
            Operation::Write => "writing",
            Operation::Copy => "copying into",
            Operation::Stat => "reading the attributes of",
            Operation::List => "listing",
            Operation::Link => "linking",
            Operation::Rename => "renaming to",
            Operation::Symlink => "making symlink",
            Operation::ReadLink => "reading symlink",
            Operation::Remove => "removing",
            Operation::Sync => "flushing to disk",
            Operation::Lock => "locking",
            Operation::EnableVerity => "enabling fs-verity on",
            Operation::MeasureVerity => "measuring the fs-verity digest of",
        })
    }
}

/// A system call that failed on a path of the repository.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct IoError {
    /// What was being done.
    pub op: Operation,
    /// The path, in the repository (or the source given).
    pub path: PathBuf,
    /// The system's error.
    #[source]
    pub source: io::Error,
}

/// What `ELOOP` means inside a repository: every path is resolved without following a
/// symlink, so a link stood where the layout has a file or directory.
#[derive(Debug, thiserror::Error)]
#[error("{} where the repository has a file or directory; sealroot never follows links inside a repository",
    at.as_ref().map_or_else(|| "a symlink stands".to_owned(), |p| format!("{} is a symlink", p.display())))]
pub struct SymlinkRefused {
    /// The symlink, if it is not the path itself but a directory above it (the deepest
    /// symlink on the path).
    at: Option<PathBuf>,
}

impl SymlinkRefused {
    /// The refusal of `path` (in a repository), naming the symlink on it: the first one below
    /// the repository, found by looking up each component from the repository (the first
    /// directory on the way holding a `meta.json`) down. No link below the repository is
    /// followed to find it: the repository's own path may hold links, nothing inside it may.
    fn on(path: &std::path::Path) -> Self {
        let mut top_down: Vec<&std::path::Path> = path
            .ancestors()
            .take_while(|p| !p.as_os_str().is_empty())
            .collect();
        top_down.reverse();
        let is_link = |p: &std::path::Path| {
            p.symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
        };
        let mut inside = false;
        let mut at = None;
        for p in top_down {
            if inside {
                if is_link(p) {
                    at = Some(p.to_owned());
                    break;
                }
            } else {
                // At or above the repository, links are the user's own (the repository
                // directory itself may be one: it was followed when opened).
                inside = p.join(crate::layout::META_FILE).symlink_metadata().is_ok();
            }
        }
        SymlinkRefused {
            at: at.filter(|p| p != path),
        }
    }
}

impl IoError {
    pub(crate) fn new(
        op: Operation,
        path: impl Into<PathBuf>,
        source: impl Into<io::Error>,
    ) -> Self {
        let path = path.into();
        let mut source = source.into();
        if source.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            source = io::Error::other(SymlinkRefused::on(&path));
        }
        IoError { op, path, source }
    }

    /// Whether the path was refused because a symlink stood on the way.
    pub fn is_symlink_refused(&self) -> bool {
        self.source
            .get_ref()
            .is_some_and(|e| e.is::<SymlinkRefused>())
    }

    /// Whether the failure was "no such file or directory".
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }
}

/// Why a repository could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The directory has no `meta.json`.
    #[error("{}: not a repository (no meta.json)", path.display())]
    NotARepository {
        /// The directory.
        path: PathBuf,
    },
    /// `meta.json` is not what it should be.
    #[error("{}: bad repository configuration: {reason}", path.display())]
    BadConfig {
        /// The `meta.json` file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The repository was made by a newer tool, in a format this one does not know.
    #[error("{}: {what} {found} is newer than this sealroot understands ({supported}); use a newer sealroot",
        path.display())]
    NewerFormat {
        /// The `meta.json` file.
        path: PathBuf,
        /// Which version field.
        what: &'static str,
        /// The version found.
        found: u64,
        /// The newest this code understands.
        supported: u64,
    },
    /// The repository uses incompatible features this code does not know.
    #[error("{}: the repository uses features this sealroot does not know: {}", path.display(), features.join(", "))]
    IncompatibleFeatures {
        /// The `meta.json` file.
        path: PathBuf,
        /// The unknown features.
        features: Vec<String>,
    },
    /// A digest algorithm or block size this code does not support.
    #[error("{}: unsupported digest algorithm {algorithm:?} (sealroot supports fsverity-sha256-12 and fsverity-sha512-12)",
        path.display())]
    UnsupportedAlgorithm {
        /// The `meta.json` file.
        path: PathBuf,
        /// The algorithm as written.
        algorithm: String,
    },
    /// `init` found a repository with another configuration.
    #[error("{}: already a repository, with {existing}", path.display())]
    AlreadyInitialized {
        /// The directory.
        path: PathBuf,
        /// The configuration found.
        existing: String,
    },
    /// `init` with `require_verity` on a filesystem without fs-verity.
    #[error("{}: fs-verity was required but this filesystem or kernel does not support it", path.display())]
    VerityUnsupported {
        /// The directory.
        path: PathBuf,
    },
}

/// Why an object could not be stored or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The source file changed (size, times or identity) while it was hashed and copied, so
    /// the object would not hold what its name says.
    #[error("the source file changed while it was being stored")]
    SourceChanged,
    /// The kernel measured another digest than the one computed while writing: the data
    /// changed on its way to the disk.
    #[error("{}: the kernel measured fs-verity digest {measured}", path.display())]
    VerityMismatch {
        /// The new object.
        path: PathBuf,
        /// What the kernel measured, in hex.
        measured: String,
    },
    /// The repository requires fs-verity, and enabling it failed.
    #[error("{}: the repository requires fs-verity: {source}", path.display())]
    VerityRequired {
        /// The new object.
        path: PathBuf,
        /// Why enabling failed.
        #[source]
        source: sealroot_sys::fsverity::VerityError,
    },
    /// No such object.
    #[error("object {0} is not in the repository")]
    NotFound(ObjectId),
    /// The object's content is not what its name says, or it is too large for its kind.
    #[error("object {object} is corrupt: {reason}")]
    Corrupt {
        /// The object.
        object: ObjectId,
        /// What is wrong.
        reason: String,
    },
    /// An object of another algorithm than the repository's.
    #[error("object {object} is not a {expected} digest, which this repository uses")]
    WrongAlgorithm {
        /// The object asked for.
        object: ObjectId,
        /// The repository's algorithm.
        expected: sealroot_verity::HashAlgorithm,
    },
}

/// A file of an image's tree whose payload is not an object path of the repository's
/// algorithm.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}: payload {payload:?} does not name an object of this repository")]
pub struct BadPayload {
    /// The file's path in the tree.
    pub file: String,
    /// The payload.
    pub payload: String,
}

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// Reading the image object failed.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The image does not parse.
    #[error("image {image}: {source}")]
    Read {
        /// The image.
        image: ImageId,
        /// What is wrong with it.
        #[source]
        source: ReadError,
    },
    /// A file's payload is not an object path of this repository's algorithm.
    #[error(transparent)]
    BadPayload(#[from] BadPayload),
    /// No such image.
    #[error("{0} is not in the repository")]
    NotFound(ImageId),
}

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteImageError {
    /// Storing the image object failed.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The tree cannot be written as a composefs image.
    #[error("writing the image: {0}")]
    Write(#[source] WriteError),
    /// A file of the tree is external, but its object is not in the repository: the image
    /// would not mount.
    #[error("{file}: its object {object} is not in the repository")]
    MissingObject {
        /// The file's path in the tree.
        file: String,
        /// The object it needs.
        object: ObjectId,
    },
    /// A file's payload is not an object path of this repository's algorithm.
    #[error(transparent)]
    BadPayload(#[from] BadPayload),
    /// The image a commit records is not in the repository.
    #[error("{0} is not in the repository")]
    NotFound(ImageId),
}

/// Why a ref could not be set, read or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefError {
    /// The name breaks the rules of [`RefName`].
    #[error(transparent)]
    Name(#[from] RefNameError),
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// No ref of that name.
    #[error("{0:?} does not exist")]
    NotFound(RefName),
    /// The ref would point at an image the repository does not have.
    #[error("cannot point {name:?} at {image}: no such image in the repository")]
    ImageNotFound {
        /// The ref.
        name: RefName,
        /// The image.
        image: ImageId,
    },
    /// The ref exists but does not lead to an image of the repository.
    #[error("{name:?} is broken: it points at {target:?}, {reason}")]
    Broken {
        /// The ref.
        name: RefName,
        /// The symlink's target.
        target: String,
        /// Why that is not an image.
        reason: &'static str,
    },
    /// The ref did not hold what a compare-and-swap expected: someone moved it meanwhile.
    #[error("{name:?} moved: it was expected to be {expected}, it is {found}")]
    Moved {
        /// The ref.
        name: RefName,
        /// What was expected.
        expected: String,
        /// What it holds.
        found: String,
    },
    /// The name clashes with a ref directory, or a component is a ref (`a` and `a/b`).
    #[error("{name:?} conflicts with an existing ref or ref directory")]
    Conflict {
        /// The ref.
        name: RefName,
    },
    /// The transaction that sets a ref could not start or finish.
    #[error(transparent)]
    Transaction(#[from] TransactionError),
}

impl RefError {
    /// Ref `name` is [`Broken`](RefError::Broken): it points at `target`, which is not an
    /// image or commit of the repository because of `reason`.
    pub(crate) fn broken(name: &RefName, target: &str, reason: &'static str) -> Self {
        RefError::Broken {
            name: name.clone(),
            target: target.to_owned(),
            reason,
        }
    }
}

/// Why a transaction could not start or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransactionError {
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The repository has read-only-compatible features this code does not know: it may
    /// read it, but must not write.
    #[error("{}: read-only: it uses features this sealroot does not know: {}", path.display(), features.join(", "))]
    ReadOnly {
        /// The repository.
        path: PathBuf,
        /// The unknown features.
        features: Vec<String>,
    },
}

/// Why `fsck` could not run (what it finds is in the report, not here).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsckError {
    /// A system call failed outside any single object, image or ref.
    #[error(transparent)]
    Io(#[from] IoError),
}

/// Why `gc` could not run or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcError {
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The repository is read-only for this code.
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    /// A split stream a stream ref reaches (or an entry of `streams/`) cannot be read, so
    /// what it needs is unknown: nothing is removed (as `cfsctl gc` stops too).
    #[error("stream {name} cannot be read, so nothing was collected: {reason}")]
    UnreadableStream {
        /// The stream ref or `streams/` entry.
        name: String,
        /// Why.
        reason: String,
    },
    /// A commit a ref reaches, or one of its tree objects, cannot be read, so what it needs
    /// is unknown: nothing is removed.
    #[error("commit {commit} (needed by {}) cannot be read, so nothing was collected: {reason}",
        refs.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "))]
    UnreadableCommit {
        /// The commit.
        commit: String,
        /// The refs that reach it.
        refs: Vec<RefName>,
        /// Why it cannot be read.
        reason: String,
    },
    /// An image a ref reaches cannot be read, so what it needs is unknown: nothing is removed.
    #[error("{image} (needed by {}) cannot be read, so nothing was collected: {reason}",
        refs.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "))]
    UnreadableImage {
        /// The image.
        image: ImageId,
        /// The refs that reach it.
        refs: Vec<RefName>,
        /// Why it cannot be read.
        reason: String,
    },
}
