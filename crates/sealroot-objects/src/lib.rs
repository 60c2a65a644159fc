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
//! 4. [`Subdirs::ensure`] for its `XX/` directory, then [`TmpPolicy::link`] to its name. A
//!    name that exists already holds the same content and is left alone.
//!
//! What a filesystem cannot do (`O_TMPFILE`, `linkat(AT_EMPTY_PATH)` without
//! `CAP_DAC_READ_SEARCH`, `copy_file_range` between two filesystems) is learnt on first
//! failure and remembered by [`TmpPolicy`] and [`CopyMemo`], which threads share. Every call
//! is relative to a directory file descriptor; errors are the kernel's [`Errno`] (or the typed
//! [`EnableError`]), which the callers turn into their own errors naming the path.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod copy;
mod tmp;
mod verity;

pub use copy::{copy, with_buffer, write_all, CopyMemo, BUFFER_SIZE};
pub use tmp::{Fallback, TmpFile, TmpPolicy};
pub use verity::{enable_verity, enable_verity_signed, measure, EnableError};

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::Mode;
use rustix::io::Errno;

/// The permissions of every object: readable by all, as C mkcomposefs and composefs-rs make
/// them (set with `fchmod`, whatever the umask).
pub const OBJECT_MODE: u32 = 0o644;
/// The permissions of the `XX/` directories.
pub const DIR_MODE: u32 = 0o755;

/// Which of the 256 `XX/` directories of a store are known to exist, so that each is
/// created (or found) with one `mkdirat` per holder of this set.
#[derive(Debug)]
pub struct Subdirs([AtomicBool; 256]);

impl Default for Subdirs {
    fn default() -> Self {
        Subdirs(std::array::from_fn(|_| AtomicBool::new(false)))
    }
}

impl Subdirs {
    /// The name of the directory of objects whose digest starts with `byte`: two lower-case
    /// hex digits.
    pub fn name(byte: u8) -> String {
        format!("{byte:02x}")
    }

    /// Creates directory [`name(byte)`](Subdirs::name) in the store open as `objects`
    /// (mode [`DIR_MODE`]) unless it is known to exist; one that exists already is fine.
    pub fn ensure(&self, objects: impl AsFd, byte: u8) -> Result<(), Errno> {
        let known = &self.0[usize::from(byte)];
        if known.load(Ordering::Relaxed) {
            return Ok(());
        }
        let name = Self::name(byte);
        match rustix::fs::mkdirat(objects, name.as_str(), Mode::from_raw_mode(DIR_MODE)) {
            Ok(()) | Err(Errno::EXIST) => {
                known.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn subdirs_are_made_once_with_their_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = rustix::fs::open(
            tmp.path(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let subdirs = Subdirs::default();
        subdirs.ensure(&dir, 0xa7).unwrap();
        let meta = std::fs::metadata(tmp.path().join("a7")).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o7777 & !0o022,
            DIR_MODE & !0o022
        );
        // Known now: not even looked at again.
        std::fs::remove_dir(tmp.path().join("a7")).unwrap();
        subdirs.ensure(&dir, 0xa7).unwrap();
        assert!(!tmp.path().join("a7").exists());
        // Made by someone else: fine.
        std::fs::create_dir(tmp.path().join("00")).unwrap();
        Subdirs::default().ensure(&dir, 0).unwrap();
    }
}
