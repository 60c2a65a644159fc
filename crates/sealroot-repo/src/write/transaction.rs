//! Transactions: everything that adds to a repository, under its shared lock, with a marker
//! that lets the next writer find and check what a system crash may have left half-written.
//!
//! # The marker
//!
//! A transaction writes objects without fsync'ing them one by one, and flushes the whole
//! filesystem once (`syncfs`) before it writes a ref. Until then its new objects are linked
//! into `objects/` but perhaps not on disk: a power cut could leave such an object with a
//! name that does not match its content, and a later commit that finds the name would trust
//! it. So before its first write a transaction makes a marker, `tmp/transaction.BOOT.PID.N`
//! (BOOT: this boot's id), flushes it to disk, and holds an `flock` on it; the marker is
//! removed only after a `syncfs` that followed the last write. What the next writer does with
//! a marker left behind is [`super::recovery`]'s.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rustix::fs::{AtFlags, FlockOperation};
use rustix::io::Errno;
use sealroot_objects::{Fallback, StoreOptions, VerityPolicy};

use super::lock::RepoLock;
use super::recovery::{recover_markers, RecoveryReport};
use crate::error::{IoError, Operation as Op, TransactionError};
use crate::fs;
use crate::layout;
use crate::progress::{NoProgress, Progress};
use crate::repository::LayoutDir;
use crate::Repository;

/// What a transaction added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionStats {
    /// New objects (images and tree objects included).
    pub objects_added: u64,
    /// Their bytes.
    pub bytes_added: u64,
    /// Objects that were asked for and already present.
    pub objects_present: u64,
    /// Images written (new or not).
    pub images_written: u64,
    /// Refs set.
    pub refs_set: u64,
}

/// Counters updated from several threads.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) images_written: AtomicU64,
    pub(crate) refs_set: AtomicU64,
}

/// A marker of a transaction in `tmp/`.
struct Marker {
    name: String,
    /// Open, with our `flock` on it.
    _fd: OwnedFd,
}

/// A set of additions to a repository: objects, images, commits, refs, signatures. See the
/// [crate documentation](crate) for the commit sequence.
///
/// While it lives, it holds the repository's shared lock, so `gc` cannot remove the objects
/// and images it writes before a ref reaches them; trees built into its
/// [`object_store`](Transaction::object_store) by `sealroot-tree` are protected the same
/// way. It is `Sync`: several threads may add objects at once.
///
/// Setting a ref makes everything written so far durable before the ref appears.
/// [`finish`](Transaction::finish) ends it; dropping it unfinished flushes what it wrote
/// (best effort) and releases the lock.
pub struct Transaction<'r> {
    pub(crate) repo: &'r Repository,
    _lock: RepoLock,
    pub(crate) tmp: OwnedFd,
    marker: Option<Marker>,
    /// The object store: every object this transaction writes goes through it, and it
    /// remembers each one stored or found present.
    pub(crate) store: Arc<sealroot_objects::Store>,
    locks: OnceLock<OwnedFd>,
    /// Set by every write but the store's, cleared just before a `syncfs`.
    unsynced: AtomicBool,
    /// How many objects the store had added at the last `syncfs`.
    synced_objects: AtomicU64,
    pub(crate) counters: Counters,
    recovered: RecoveryReport,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("repository", &self.repo.path())
            .field("marker", &self.marker.as_ref().map(|m| &m.name))
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Repository {
    /// Starts a transaction (see [`Transaction`]), waiting while `gc` runs.
    pub fn transaction(&self) -> Result<Transaction<'_>, TransactionError> {
        self.transaction_with_progress(&NoProgress)
    }

    /// Like [`transaction`](Self::transaction), reporting waits and recovery to `progress`.
    pub fn transaction_with_progress(
        &self,
        progress: &dyn Progress,
    ) -> Result<Transaction<'_>, TransactionError> {
        if !self.is_writable() {
            return Err(TransactionError::ReadOnly {
                path: self.path().to_owned(),
                features: self.config().unknown_read_only_features.clone(),
            });
        }
        for rel in [layout::OBJECTS, layout::IMAGE_REFS, layout::TMP] {
            self.create_layout(rel)?;
        }
        let mut lock = RepoLock::take(self, false, progress)?;
        let tmp = self.create_layout(layout::TMP)?;
        let recovered = recover_markers(self, &tmp, &mut lock, progress)?;
        let objects = self.layout_dir(LayoutDir::Objects)?;
        let dup = |fd: &OwnedFd, rel: &str| {
            fd.try_clone()
                .map_err(|e| IoError::new(Op::Open, self.join(rel), e))
        };
        let store = sealroot_objects::Store::new(
            &self.objects_path(),
            dup(objects, layout::OBJECTS)?,
            Some(dup(&tmp, layout::TMP)?),
            StoreOptions {
                algorithm: self.algorithm(),
                fallback: Fallback::Link,
                sync_each: false,
                verity: if self.config().require_verity {
                    VerityPolicy::Require
                } else {
                    VerityPolicy::Try
                },
                record: true,
            },
        );
        let mut tx = Transaction {
            repo: self,
            _lock: lock,
            tmp,
            marker: None,
            store: Arc::new(store),
            locks: OnceLock::new(),
            unsynced: AtomicBool::new(false),
            synced_objects: AtomicU64::new(0),
            counters: Counters::default(),
            recovered,
        };
        tx.marker = Some(tx.make_marker()?);
        Ok(tx)
    }
}

impl Transaction<'_> {
    /// The repository.
    pub fn repository(&self) -> &Repository {
        self.repo
    }

    /// The object store of this transaction, for `sealroot_tree::BuildOptions::object_store`
    /// and archive sinks: what is stored through it while this transaction lives is
    /// protected from `gc` until its ref is set, and is known to be present when the tree is
    /// committed (no second lookup).
    pub fn object_store(&self) -> Arc<sealroot_objects::Store> {
        self.store.clone()
    }

    /// What this transaction added so far.
    pub fn stats(&self) -> TransactionStats {
        let s = self.store.stats();
        TransactionStats {
            objects_added: s.added,
            bytes_added: s.bytes_added,
            objects_present: s.present,
            images_written: self.counters.images_written.load(Ordering::Relaxed),
            refs_set: self.counters.refs_set.load(Ordering::Relaxed),
        }
    }

    /// What starting this transaction recovered from (usually nothing).
    pub fn recovered(&self) -> &RecoveryReport {
        &self.recovered
    }

    /// Makes everything written so far (by anyone) durable: one `syncfs`.
    pub fn sync(&self) -> Result<(), IoError> {
        // Read before the flush, so a write racing it stays counted; set again if the
        // flush fails.
        self.unsynced.store(false, Ordering::SeqCst);
        let objects = self.store.stats().added;
        let result = self.repo.syncfs();
        match &result {
            Ok(()) => self.synced_objects.store(objects, Ordering::SeqCst),
            Err(_) => self.wrote(),
        }
        result
    }

    /// Whether anything was written since the last `syncfs`.
    fn is_unsynced(&self) -> bool {
        self.unsynced.load(Ordering::SeqCst)
            || self.store.stats().added != self.synced_objects.load(Ordering::SeqCst)
    }

    /// Ends the transaction: flushes what it wrote since the last ref, removes its marker,
    /// releases the lock.
    pub fn finish(mut self) -> Result<TransactionStats, TransactionError> {
        if self.is_unsynced() {
            self.sync()?;
        }
        if let Some(marker) = self.marker.take() {
            self.remove_marker(&marker)?;
        }
        Ok(self.stats())
    }

    /// Replaces file `name` in `cache/` with `bytes`, atomically (see
    /// [`Repository::read_cache_file`]).
    pub fn write_cache_file(&self, name: &str, bytes: &[u8]) -> Result<(), IoError> {
        // One plain name in cache/, nothing that could lead elsewhere.
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            return Err(IoError::new(
                Op::Write,
                self.repo.join(layout::CACHE).join(name),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not a file name of cache/",
                ),
            ));
        }
        let cache = self.repo.create_layout(layout::CACHE)?;
        fs::replace_file(&self.tmp, &self.repo.tmp, &cache, name, bytes)
            .map_err(|e| IoError::new(Op::Write, self.repo.join(layout::CACHE).join(name), e))
    }

    /// `tmp/locks/`, made on first use.
    pub(crate) fn locks_dir(&self) -> Result<&OwnedFd, IoError> {
        if let Some(fd) = self.locks.get() {
            return Ok(fd);
        }
        let fd = self.repo.create_layout(layout::LOCKS)?;
        Ok(self.locks.get_or_init(|| fd))
    }

    /// Creates this transaction's marker: flushed to disk and locked before its name appears.
    fn make_marker(&self) -> Result<Marker, IoError> {
        let repo = self.repo;
        let boot = fs::boot_id()
            .map_err(|e| IoError::new(Op::Read, "/proc/sys/kernel/random/boot_id", e))?;
        let tmp_path = repo.join(layout::TMP);
        let mut file = repo
            .tmp
            .create(&self.tmp)
            .map_err(|e| IoError::new(Op::Create, &tmp_path, e))?;
        let name = repo
            .tmp
            .unique_name(&format!("{}{boot}", layout::MARKER_PREFIX));
        let path = tmp_path.join(&name);
        rustix::fs::flock(file.fd(), FlockOperation::LockExclusive)
            .map_err(|e| IoError::new(Op::Lock, &path, e))?;
        let text = format!("boot {boot}\npid {}\n", std::process::id());
        fs::write_all(file.fd(), text.as_bytes()).map_err(|e| IoError::new(Op::Write, &path, e))?;
        rustix::fs::fsync(file.fd()).map_err(|e| IoError::new(Op::Sync, &path, e))?;
        let linked = repo
            .tmp
            .link(&mut file, &self.tmp, &name)
            .map_err(|e| IoError::new(Op::Link, &path, e))?;
        if !linked {
            // Another transaction's marker has this name: never share one.
            return Err(IoError::new(Op::Link, &path, Errno::EXIST));
        }
        rustix::fs::fsync(&self.tmp).map_err(|e| IoError::new(Op::Sync, &tmp_path, e))?;
        let fd = file
            .fd()
            .try_clone()
            .map_err(|e| IoError::new(Op::Open, &path, e))?;
        Ok(Marker { name, _fd: fd })
    }

    fn remove_marker(&self, marker: &Marker) -> Result<(), IoError> {
        match rustix::fs::unlinkat(&self.tmp, marker.name.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(IoError::new(
                Op::Remove,
                self.repo.join(layout::TMP).join(&marker.name),
                e,
            )),
        }
    }

    /// Records that something was written and is not yet flushed.
    pub(crate) fn wrote(&self) {
        self.unsynced.store(true, Ordering::SeqCst);
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if let Some(marker) = self.marker.take() {
            // Unfinished: the marker may only go once what was written is durable.
            if !self.is_unsynced() || self.repo.syncfs().is_ok() {
                let _ = self.remove_marker(&marker);
            }
        }
    }
}
