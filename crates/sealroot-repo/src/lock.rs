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
use crate::Repository;

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
        let fd = crate::fs::open_dir(repo.dir(), ".")
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
