//! The sealroot repository: file contents stored as objects named by their fs-verity digest,
//! composefs images (stored as objects too), commits with their tree objects and signatures,
//! and named refs to images and commits; with locking, crash safety, `fsck` and `gc`.
//!
//! # Layout
//!
//! The layout is composefs-rs's (0.9), so its `cfsctl` can list, check and mount a repository
//! sealroot wrote, and collect one without commits, and the other way round:
//!
//! ```text
//! REPO/                       mode 0700
//! ├── meta.json               configuration (see Config): version, algorithm, features, sealroot section
//! ├── objects/XX/REST         file contents and images, named by fs-verity digest (hex, XX = first byte)
//! ├── images/HEX              -> ../objects/XX/REST : the objects that are composefs images
//! ├── images/refs/NAME        -> ../HEX (one ../ per component of NAME): named images, the gc roots
//! ├── commits/HEX             -> ../objects/XX/REST : the objects that are commits
//! ├── commits/HEX.sig, .p7s   a commit's ed25519 signatures, its image's kernel signature
//! ├── commits/refs/NAME       -> ../HEX: named commits, gc roots (images/refs/NAME follows)
//! ├── streams/                cfsctl's split streams; sealroot never writes there
//! ├── cache/devino            the digest cache of directory commits
//! └── tmp/                    sealroot's scratch space: transaction markers, temporary files
//! ```
//!
//! # Model
//!
//! The crate is layered, each layer using only those before it: [`layout`] (every name, once)
//! and the file helpers; the read side (open, resolve refs, read commits, trees and images,
//! verify objects), which is all a boot-time reader needs and all that is built without the
//! `write` feature; the write side (transactions, crash recovery, locks; objects, images,
//! commits, refs and signatures added); and `fsck` and `gc` on top.
//!
//! [`Repository`] is an open repository; it reads objects, images and refs, and runs
//! [`fsck`](Repository::fsck) and [`gc`](Repository::gc). Everything that *adds* to the
//! repository goes through a [`Transaction`], which holds the repository's shared lock from
//! its first write until it is finished, so that `gc` (which takes the exclusive lock) never
//! runs while objects that no ref reaches yet are being written. A commit is:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use sealroot_repo::{Repository, RefName};
//! # let tree = sealroot_format::Tree::new(Default::default());
//! let repo = Repository::open("/var/lib/sealroot".as_ref())?;
//! let tx = repo.transaction()?;
//! // sealroot_tree::build_from_dir(SOURCE, &BuildOptions { object_store:
//! //     Some(tx.object_store()), .. }, &progress) stores the files and gives `tree`.
//! let image = tx.write_image(&tree, &Default::default())?;
//! tx.set_ref(&RefName::new("os/stable")?, &image)?;
//! tx.finish()?;
//! # Ok(()) }
//! ```
//!
//! # Durability
//!
//! New objects are never fsync'ed one by one: they are written to `O_TMPFILE`s and linked
//! into place, and [`Transaction::set_ref`] flushes the whole filesystem (`syncfs`) once
//! before it writes the ref (tmp symlink + `renameat` + `fsync` of the ref's directory). So
//! a ref that exists reaches only objects and images on stable storage. What makes skipping
//! the per-object fsync safe after a system crash (objects linked but never flushed) is the
//! transaction marker; ARCHITECTURE.md ("The repository") gives the whole argument.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Helpers shared by both sides are dead in a read-only build; the default build checks them.
#![cfg_attr(not(feature = "write"), allow(dead_code))]

mod config;
mod error;
mod fs;
mod id;
pub mod layout;
#[cfg(feature = "write")]
mod maintain;
mod progress;
mod read;
mod repository;
#[cfg(feature = "write")]
mod write;

pub use config::{Config, COMPOSEFS_REPO_VERSION, META_FILE, SEALROOT_FORMAT};
pub use error::{
    BadPayload, FsckError, GcError, ImageError, IoError, ObjectError, OpenError, Operation,
    RefError, TransactionError, WriteImageError,
};
pub use id::{
    IdParseError, ImageId, ObjectId, RefName, RefNameError, LOG_BLOCK_SIZE, REF_NAME_MAX,
};
pub use layout::{IMAGE_SIGNATURE_SUFFIX, SIGNATURE_SUFFIX};
pub use progress::{NoProgress, Phase, Progress};
pub use read::commits::{CommitError, CommitId, LogEntry};
pub use read::objects::{Corruption, Objects};
pub use read::refs::{RefEntry, RefTarget};
pub use repository::Repository;
pub use sealroot_verity::HashAlgorithm;

#[cfg(feature = "write")]
pub use maintain::fsck::{
    BrokenCommit, BrokenImage, BrokenRef, BrokenStream, CorruptObject, FsckOptions, FsckReport,
    ImageProblem, MissingObject, RefProblem, Repaired,
};
#[cfg(feature = "write")]
pub use maintain::gc::{GcOptions, GcReport};
#[cfg(feature = "write")]
pub use write::init::InitOptions;
#[cfg(feature = "write")]
pub use write::{
    CommitOptions, Expect, NewCommit, OnRefMoved, RecoveryReport, Transaction, TransactionStats,
    Unfinished, UnfinishedTransaction, WriteCommitError,
};
