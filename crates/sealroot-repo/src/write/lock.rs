//! The repository lock: `flock` on the repository directory itself, as composefs-rs takes it,
//! so that sealroot and `cfsctl` exclude each other's garbage collection.
//!
//! Writers (transactions, `fsck` without repair) hold it shared; `gc` and `fsck --repair`
//! hold it exclusive. Each lock is taken on a new open file description of the directory,
//! so that the locks of one process also exclude each other.

use std::os::fd::OwnedFd;

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::error::{IoError, Operation};
use crate::progress::{Phase, Progress};
use crate::write::Transaction;
use crate::Repository;
use rustix::fs::{AtFlags, Mode, OFlags};

/// A held repository lock; released when dropped (or when the process dies).
pub(crate) struct RepoLock {
    fd: OwnedFd,
    exclusive: bool,
}

impl RepoLock {
    /// Takes the lock of `repo`, shared or exclusive, waiting for it if need be (and then
    /// telling `progress`).
    pub(crate) fn take(
        repo: &Repository,
        exclusive: bool,
        progress: &dyn Progress,
    ) -> Result<RepoLock, IoError> {
        let fd = crate::fs::open_dir(repo.dir(), c".")
            .map_err(|e| IoError::new(Operation::Open, repo.path(), e))?;
        let mut lock = RepoLock {
            fd,
            exclusive: false,
        };
        lock.set(repo, exclusive, progress)?;
        Ok(lock)
    }

    /// Changes the lock to shared or exclusive. Linux changes an `flock` by dropping the old
    /// lock first, so another process may take the lock in between.
    pub(crate) fn set(
        &mut self,
        repo: &Repository,
        exclusive: bool,
        progress: &dyn Progress,
    ) -> Result<(), IoError> {
        let (try_op, wait_op) = if exclusive {
            (
                FlockOperation::NonBlockingLockExclusive,
                FlockOperation::LockExclusive,
            )
        } else {
            (
                FlockOperation::NonBlockingLockShared,
                FlockOperation::LockShared,
            )
        };
        let lock_err = |e| IoError::new(Operation::Lock, repo.path(), e);
        loop {
            match rustix::fs::flock(&self.fd, try_op) {
                Ok(()) => break,
                Err(Errno::INTR) => {}
                Err(Errno::WOULDBLOCK) => {
                    progress.phase(Phase::WaitingForLock, None, None);
                    loop {
                        match rustix::fs::flock(&self.fd, wait_op) {
                            Ok(()) => break,
                            Err(Errno::INTR) => {}
                            Err(e) => return Err(lock_err(e)),
                        }
                    }
                    break;
                }
                Err(e) => return Err(lock_err(e)),
            }
        }
        self.exclusive = exclusive;
        Ok(())
    }

    /// Whether the lock is exclusive.
    pub(crate) fn is_exclusive(&self) -> bool {
        self.exclusive
    }
}

/// A lock of one ref name or one commit: an `flock` on its file in `tmp/locks/`, held while
/// a ref is compared and swapped or a commit's signatures are read, merged and replaced.
///
/// The file exists only while someone holds or waits for the lock: its holder removes it
/// before unlocking, and a waiter that gets the lock checks that the file it locked is still
/// the one of that name (else it was removed meanwhile, and the waiter tries again). So no
/// lock files pile up, and two holders can never lock two different files of one name.
pub(crate) struct NamedLock {
    fd: OwnedFd,
    dir: OwnedFd,
    name: String,
}

impl NamedLock {
    /// Waits for and takes the lock `name` (a [`crate::layout::lock_name`]).
    pub(crate) fn take(tx: &Transaction<'_>, name: &str) -> Result<NamedLock, IoError> {
        let repo = tx.repository();
        let path = repo.join(crate::layout::LOCKS).join(name);
        let dir = tx
            .locks_dir()?
            .try_clone()
            .map_err(|e| IoError::new(Operation::Open, &path, e))?;
        loop {
            let fd = rustix::fs::openat(
                &dir,
                name,
                OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(crate::fs::FILE_MODE),
            )
            .map_err(|e| IoError::new(Operation::Create, &path, e))?;
            loop {
                match rustix::fs::flock(&fd, FlockOperation::LockExclusive) {
                    Ok(()) => break,
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(IoError::new(Operation::Lock, &path, e)),
                }
            }
            let held =
                rustix::fs::fstat(&fd).map_err(|e| IoError::new(Operation::Stat, &path, e))?;
            match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino) => {
                    return Ok(NamedLock {
                        fd,
                        dir,
                        name: name.to_owned(),
                    })
                }
                // Removed (or replaced) by its holder while we waited: lock the new one.
                Ok(_) | Err(Errno::NOENT) => continue,
                Err(e) => return Err(IoError::new(Operation::Stat, &path, e)),
            }
        }
    }
}

impl Drop for NamedLock {
    fn drop(&mut self) {
        // Removed while still locked, then unlocked by closing: see the type's documentation.
        let _ = rustix::fs::unlinkat(&self.dir, self.name.as_str(), AtFlags::empty());
        let _ = rustix::fs::flock(&self.fd, FlockOperation::Unlock);
    }
}
