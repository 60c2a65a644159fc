//! The primitives of a content-addressed object store laid out as `objects/XX/REST`: what
//! `sealroot-tree`'s digest store and `sealroot-repo`'s repository both do to put a new object
//! in place, and nothing of what they decide differently (when to flush, whether fs-verity is
//! required, what to count, how to name a failure).
//!
//! A new object goes through these steps, each a function or type here:
//!
//! 1. [`TmpPolicy::create`]: an anonymous `O_TMPFILE` in the directory it will be linked
//!    into (or, where the filesystem lacks those, a temporary name there, removed again
//!    unless it becomes the object);
//! 2. filling it: [`copy`] (a reflink where the filesystem shares blocks, else
//!    `copy_file_range`, else positional reads and writes through a [`with_buffer`] buffer)
//!    or [`write_all`];
//! 3. `fchmod` to [`OBJECT_MODE`], and [`enable_verity`]: the file reopened read-only,
//!    fs-verity enabled, and the kernel's measurement checked against the digest computed
//!    while writing;
//! 4. [`Subdirs::open`] for its `XX/` directory (made if missing, never a symlink), then
//!    [`TmpPolicy::link`] to its name. A name that exists already holds the same content
//!    and is left alone.
//!
//! [`Store`] puts these steps together: the one writer of objects, which the repository's
//! transactions and `mkcomposefs --digest-store` both use; each caller chooses its
//! [`StoreOptions`] (flush per object or not, fs-verity tried or required) and names errors
//! its own way.
//!
//! What a filesystem cannot do (`O_TMPFILE`, `linkat(AT_EMPTY_PATH)` without
//! `CAP_DAC_READ_SEARCH`, `copy_file_range` between two filesystems) is learnt on first
//! failure and remembered by [`TmpPolicy`] and [`CopyMemo`], which threads share. Every call
//! is relative to a directory file descriptor; errors are the kernel's [`Errno`](rustix::io::Errno) (or the typed
//! [`EnableError`]), which the callers turn into their own errors naming the path.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod copy;
mod identity;
mod store;
mod tmp;
mod verity;

pub use copy::{copy, with_buffer, write_all, CopyMemo, BUFFER_SIZE};
pub use identity::FileIdentity;
pub use store::{
    Placed, Store, StoreError, StoreOp, StoreOptions, StoreStats, Subdirs, VerityPolicy,
};
pub use tmp::{Fallback, TmpFile, TmpPolicy};
pub use verity::{enable_verity, enable_verity_signed, measure, EnableError};

/// The permissions of every object: readable by all, as C mkcomposefs and composefs-rs make
/// them (set with `fchmod`, whatever the umask).
pub const OBJECT_MODE: u32 = 0o644;
/// The permissions of the `XX/` directories.
pub const DIR_MODE: u32 = 0o755;
