//! The errors of the boot directory's operations: one enum per operation, each naming the
//! path concerned and keeping the cause.

use std::fmt;
use std::io;
use std::path::PathBuf;

use rustix::io::Errno;
use sealroot_verity::AnyDigest;

use crate::bls::{NameError, ParseError};

/// What was being done when a system call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Opening a file or directory.
    Open,
    /// Creating a directory.
    CreateDir,
    /// Creating a file.
    Create,
    /// Reading a file.
    Read,
    /// Writing a file.
    Write,
    /// Copying a file.
    Copy,
    /// Listing a directory.
    List,
    /// Reading a file's attributes.
    Stat,
    /// Hard-linking a file.
    Link,
    /// Renaming.
    Rename,
    /// Exchanging two directories (`renameat2(RENAME_EXCHANGE)`).
    Exchange,
    /// Removing a name.
    Remove,
    /// Flushing to stable storage.
    Sync,
    /// Taking the boot directory's lock.
    Lock,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Open => "opening",
            Op::CreateDir => "creating directory",
            Op::Create => "creating",
            Op::Read => "reading",
            Op::Write => "writing",
            Op::Copy => "copying to",
            Op::List => "listing",
            Op::Stat => "reading the attributes of",
            Op::Link => "hard-linking to",
            Op::Rename => "renaming to",
            Op::Exchange => "exchanging",
            Op::Remove => "removing",
            Op::Sync => "flushing to disk",
            Op::Lock => "locking",
        })
    }
}

/// A system call that failed on a path of the boot partition.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct BootIoError {
    /// What was being done.
    pub op: Op,
    /// The path (the boot partition's mount point joined with the path on it).
    pub path: PathBuf,
    /// The system's error.
    #[source]
    pub source: io::Error,
}

impl BootIoError {
    pub(crate) fn new(op: Op, path: PathBuf, source: impl Into<io::Error>) -> Self {
        BootIoError {
            op,
            path,
            source: source.into(),
        }
    }

    /// Whether the filesystem (or the user's quota on it) is full.
    pub fn is_no_space(&self) -> bool {
        let raw = self.source.raw_os_error();
        raw == Some(Errno::NOSPC.raw_os_error()) || raw == Some(Errno::DQUOT.raw_os_error())
    }
}

/// Why an entry file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadEntryError {
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] BootIoError),
    /// The file is not an entry.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The entry file.
        path: PathBuf,
        /// What is wrong, and on which line.
        #[source]
        source: ParseError,
    },
}

/// Why a boot directory could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] BootIoError),
}

/// Why the entries could not be listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] BootIoError),
    /// The directory holds more names than sealroot reads.
    #[error("{}: more than {max} names", path.display())]
    TooMany {
        /// The directory.
        path: PathBuf,
        /// The most read.
        max: usize,
    },
}

/// Why a set of entries could not be staged. Nothing was switched: the entries the boot
/// loader reads are as they were.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StageError {
    /// A system call failed.
    #[error(transparent)]
    Io(BootIoError),
    /// The boot partition is full. Everything this staging wrote was removed again.
    #[error("the boot partition is full: {0}")]
    NoSpace(#[source] BootIoError),
    /// Finishing or undoing an earlier switch failed.
    #[error(transparent)]
    Recover(#[from] RecoverError),
    /// The directory could not be listed.
    #[error(transparent)]
    List(#[from] ListError),
    /// An entry of the new set is not named as sealroot names its own.
    #[error("{name}: not one of sealroot's entry names (they start with {prefix})", prefix = crate::bls::OUR_PREFIX)]
    NotOurs {
        /// The name.
        name: String,
    },
    /// Two entries of the new set have the same id (the name without counter, ASCII case
    /// ignored): boot loaders would show one of them.
    #[error("{first} and {second} name the same entry")]
    SameId {
        /// One name.
        first: String,
        /// The other.
        second: String,
    },
    /// The new set is empty: switching to it would leave nothing of sealroot's to boot.
    #[error("the new set of entries is empty")]
    Empty,
    /// An entry of the new set has neither `linux` nor `efi`.
    #[error("{name}: the entry has no linux or efi path")]
    NotBootable {
        /// The entry.
        name: String,
    },
    /// A file an entry of the new set needs is neither given nor on the boot partition.
    #[error("{name}: {path} is not a file on the boot partition {}", root.display())]
    MissingFile {
        /// The entry.
        name: String,
        /// The path in the entry.
        path: String,
        /// The boot partition.
        root: PathBuf,
    },
    /// A boot file's content does not have the digest it was given with.
    #[error("the boot file given as {expected} has digest {found}")]
    DigestMismatch {
        /// The digest given.
        expected: String,
        /// The digest of what was read.
        found: String,
    },
}

impl From<BootIoError> for StageError {
    fn from(e: BootIoError) -> Self {
        if e.is_no_space() {
            StageError::NoSpace(e)
        } else {
            StageError::Io(e)
        }
    }
}

/// Why the staged set could not be switched to. Unless the error says otherwise the switch
/// did not happen, or happened whole and only the cleaning up after it failed (the next
/// operation finishes it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwitchError {
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] BootIoError),
    /// Nothing complete is staged.
    #[error("{}: no complete staged set of entries", path.display())]
    NothingStaged {
        /// The staging directory.
        path: PathBuf,
    },
    /// The staging directory's list of names is damaged.
    #[error(transparent)]
    Marker(#[from] MarkerError),
    /// Finishing or undoing an earlier switch failed.
    #[error(transparent)]
    Recover(#[from] RecoverError),
    /// A file a staged entry needs is gone from the boot partition.
    #[error("{name}: {path} is gone from the boot partition {}", root.display())]
    MissingFile {
        /// The entry.
        name: String,
        /// The path in the entry.
        path: String,
        /// The boot partition.
        root: PathBuf,
    },
    /// A staged entry could not be read back.
    #[error(transparent)]
    Entry(#[from] ReadEntryError),
    /// The directory could not be listed.
    #[error(transparent)]
    List(#[from] ListError),
}

/// The list of names in a staging directory's marker is damaged.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct MarkerError {
    /// The marker file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

/// Why an interrupted switch could not be finished or undone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoverError {
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] BootIoError),
    /// A marker file is damaged.
    #[error(transparent)]
    Marker(#[from] MarkerError),
    /// The directory could not be listed.
    #[error(transparent)]
    List(#[from] ListError),
    /// On vfat, `loader/entries` and `loader/entries.staged` show the same directory: a power
    /// cut tore the exchange of their two directory entries, which now share one cluster
    /// chain. Removing either would remove the entries the boot loader reads, so nothing was
    /// removed; `fsck.vfat` repairs the partition.
    #[error("{} and {} are the same directory (a torn exchange on vfat): run fsck.vfat on the partition", live.display(), staged.display())]
    CrossLinked {
        /// `loader/entries`.
        live: PathBuf,
        /// `loader/entries.staged`.
        staged: PathBuf,
    },
}

/// Why unused boot files could not be collected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] BootIoError),
    /// A directory could not be listed.
    #[error(transparent)]
    List(#[from] ListError),
}

/// Why a boot file does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A system call failed (a missing file is `NotFound`).
    #[error(transparent)]
    Io(#[from] BootIoError),
    /// The file's content does not have the digest its name says.
    #[error("{}: the content's digest is {found}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The digest of its content.
        found: AnyDigest,
    },
}

/// Why an entry's boot counter could not be changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CounterError {
    /// A system call failed (a missing entry is `NotFound`).
    #[error(transparent)]
    Io(#[from] BootIoError),
    /// Only sealroot's own entries are renamed.
    #[error("{name}: not one of sealroot's entries")]
    NotOurs {
        /// The name.
        name: String,
    },
    /// The new name is not a valid entry name.
    #[error(transparent)]
    Name(#[from] NameError),
}
