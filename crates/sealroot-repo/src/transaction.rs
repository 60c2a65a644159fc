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
//! removed only after a `syncfs` that followed the last write.
//!
//! The next transaction (or `gc`) looks at the markers it finds:
//! - locked: a live transaction; leave it;
//! - unlocked, from this boot: its process died, but the machine did not, so the page cache
//!   still holds whatever it wrote; one `syncfs` makes that durable, then the marker goes;
//! - from another boot: the machine went down during that transaction. Under the exclusive
//!   lock, every object whose ctime is not older than the marker (less [`CTIME_SLACK`]) is
//!   hashed again, and those whose content does not match their name are removed, together
//!   with image links left dangling; then `syncfs`, and the markers go.
//!
//! No ref can reach an object that recovery removes: a ref is written only after a `syncfs`
//! that followed every write it reaches, so what it reaches was durable before the crash.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, FlockOperation};
use rustix::io::Errno;
use sealroot_objects::Subdirs;

use crate::error::{IoError, Operation as Op, TransactionError};
use crate::fs;
use crate::id::ObjectId;
use crate::lock::RepoLock;
use crate::progress::{NoProgress, Phase, Progress};
use crate::{Repository, IMAGES_DIR, OBJECTS_DIR, REFS_DIR, TMP_DIR};

/// The prefix of transaction marker names in `tmp/`.
pub(crate) const MARKER_PREFIX: &str = "transaction.";
/// How much older than a crashed transaction's marker an object may look and still be
/// checked by recovery, in seconds: room for the clock being set back a little across the
/// crash.
const CTIME_SLACK: i64 = 120;

/// What a transaction added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionStats {
    /// New objects (images included).
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

/// What recovery from a crashed transaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Markers of transactions cut off by a system crash.
    pub crashed_transactions: u64,
    /// Markers of transactions whose process died (same boot): flushed, nothing checked.
    pub abandoned_transactions: u64,
    /// Objects checked because they were new enough to be a crashed transaction's.
    pub objects_checked: u64,
    /// Objects removed because their content did not match their name.
    pub objects_removed: Vec<ObjectId>,
    /// Image links removed because their object was gone.
    pub image_links_removed: u64,
}

impl RecoveryReport {
    /// Whether there was anything to recover from.
    pub fn is_empty(&self) -> bool {
        self.crashed_transactions == 0 && self.abandoned_transactions == 0
    }
}

/// Counters updated from several threads.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) objects_added: AtomicU64,
    pub(crate) bytes_added: AtomicU64,
    pub(crate) objects_present: AtomicU64,
    pub(crate) images_written: AtomicU64,
    pub(crate) refs_set: AtomicU64,
}

/// A marker of a transaction in `tmp/`.
struct Marker {
    name: String,
    /// Open, with our `flock` on it.
    _fd: OwnedFd,
}

/// A set of additions to a repository: objects, images, refs. See the
/// [crate documentation](crate) for the commit sequence.
///
/// While it lives, it holds the repository's shared lock, so `gc` cannot remove the objects
/// and images it writes before a ref reaches them; trees built into
/// [`objects_path`](Transaction::objects_path) by `sealroot-tree` are protected the same way
/// if built while the transaction lives. It is `Sync`: several threads may add objects at once.
///
/// [`set_ref`](Transaction::set_ref) makes everything written so far durable before the ref
/// appears. [`finish`](Transaction::finish) ends it; dropping it unfinished flushes what it
/// wrote (best effort) and releases the lock.
pub struct Transaction<'r> {
    pub(crate) repo: &'r Repository,
    _lock: RepoLock,
    pub(crate) objects: OwnedFd,
    pub(crate) images: OwnedFd,
    pub(crate) tmp: OwnedFd,
    marker: Option<Marker>,
    /// Which `objects/XX` directories are known to exist.
    pub(crate) subdirs: Subdirs,
    /// Set by every write, cleared just before a `syncfs`.
    pub(crate) unsynced: AtomicBool,
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
        for sub in [OBJECTS_DIR, IMAGES_DIR, REFS_DIR, TMP_DIR] {
            fs::ensure_dir(self.dir(), sub)
                .map_err(|e| IoError::new(Op::CreateDir, self.join(sub), e))?;
        }
        let open = |sub: &str| {
            fs::open_dir(self.dir(), sub).map_err(|e| IoError::new(Op::Open, self.join(sub), e))
        };
        let mut lock = RepoLock::take(self, false, progress)?;
        let tmp = open(TMP_DIR)?;
        let recovered = recover_markers(self, &tmp, &mut lock, progress)?;
        let mut tx = Transaction {
            repo: self,
            _lock: lock,
            objects: open(OBJECTS_DIR)?,
            images: open(IMAGES_DIR)?,
            tmp,
            marker: None,
            subdirs: Subdirs::default(),
            unsynced: AtomicBool::new(false),
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

    /// `objects/`, for `sealroot_tree::BuildOptions::digest_store`: a tree built into it while
    /// this transaction lives is protected from `gc` until its ref is set.
    pub fn objects_path(&self) -> PathBuf {
        // Whoever asks writes there behind this transaction's back: count it as written, so
        // the marker goes only after a `syncfs`.
        self.wrote();
        self.repo.objects_path()
    }

    /// What this transaction added so far.
    pub fn stats(&self) -> TransactionStats {
        let c = &self.counters;
        TransactionStats {
            objects_added: c.objects_added.load(Ordering::Relaxed),
            bytes_added: c.bytes_added.load(Ordering::Relaxed),
            objects_present: c.objects_present.load(Ordering::Relaxed),
            images_written: c.images_written.load(Ordering::Relaxed),
            refs_set: c.refs_set.load(Ordering::Relaxed),
        }
    }

    /// What starting this transaction recovered from (usually nothing).
    pub fn recovered(&self) -> &RecoveryReport {
        &self.recovered
    }

    /// Makes everything written so far (by anyone) durable: one `syncfs`.
    pub fn sync(&self) -> Result<(), IoError> {
        // Cleared before the flush, so a write racing it stays counted; set again if the
        // flush fails.
        self.unsynced.store(false, Ordering::SeqCst);
        let result = self.repo.syncfs();
        if result.is_err() {
            self.wrote();
        }
        result
    }

    /// Ends the transaction: flushes what it wrote since the last ref, removes its marker,
    /// releases the lock.
    pub fn finish(mut self) -> Result<TransactionStats, TransactionError> {
        if self.unsynced.load(Ordering::SeqCst) {
            self.sync()?;
        }
        if let Some(marker) = self.marker.take() {
            self.remove_marker(&marker)?;
        }
        Ok(self.stats())
    }

    /// Creates this transaction's marker: flushed to disk and locked before its name appears.
    fn make_marker(&self) -> Result<Marker, IoError> {
        let repo = self.repo;
        let boot = fs::boot_id()
            .map_err(|e| IoError::new(Op::Read, "/proc/sys/kernel/random/boot_id", e))?;
        let tmp_path = repo.join(TMP_DIR);
        let mut file = repo
            .tmp
            .create(&self.tmp, ".")
            .map_err(|e| IoError::new(Op::Create, &tmp_path, e))?;
        let name = repo.tmp.unique_name(&format!("{MARKER_PREFIX}{boot}"));
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
                self.repo.join(TMP_DIR).join(&marker.name),
                e,
            )),
        }
    }

    /// Records that something was written and is not yet flushed.
    pub(crate) fn wrote(&self) {
        self.unsynced.store(true, Ordering::SeqCst);
    }

    /// Creates `objects/XX` for an object id unless known to exist.
    pub(crate) fn ensure_subdir(&self, id: &ObjectId) -> Result<(), IoError> {
        let byte = id.as_bytes()[0];
        self.subdirs.ensure(&self.objects, byte).map_err(|e| {
            IoError::new(
                Op::CreateDir,
                self.repo.objects_path().join(Subdirs::name(byte)),
                e,
            )
        })
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if let Some(marker) = self.marker.take() {
            // Unfinished: the marker may only go once what was written is durable.
            if !self.unsynced.load(Ordering::SeqCst) || self.repo.syncfs().is_ok() {
                let _ = self.remove_marker(&marker);
            }
        }
    }
}

/// A marker found in `tmp/`.
pub(crate) struct FoundMarker {
    pub(crate) name: String,
    /// From another boot.
    pub(crate) crashed: bool,
    /// Holding its lock (only taken for markers of this boot).
    pub(crate) _lock: Option<OwnedFd>,
}

/// The markers in `tmp/` that no live transaction holds. With `all`, the caller holds the
/// exclusive repository lock, so no transaction is live and every marker is returned.
pub(crate) fn stale_markers(
    repo: &Repository,
    tmp: &OwnedFd,
    all: bool,
) -> Result<Vec<FoundMarker>, IoError> {
    let tmp_path = repo.join(TMP_DIR);
    let boot =
        fs::boot_id().map_err(|e| IoError::new(Op::Read, "/proc/sys/kernel/random/boot_id", e))?;
    let entries = fs::list(tmp).map_err(|e| IoError::new(Op::List, &tmp_path, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let Ok(name) = entry.name.to_str() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(MARKER_PREFIX) else {
            continue;
        };
        if entry.file_type != FileType::RegularFile {
            continue;
        }
        let crashed = rest.split('.').next() != Some(boot.as_str());
        if crashed || all {
            found.push(FoundMarker {
                name: name.to_owned(),
                crashed,
                _lock: None,
            });
            continue;
        }
        let fd = match crate::open_file(tmp, name) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(IoError::new(Op::Open, tmp_path.join(name), e)),
        };
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => found.push(FoundMarker {
                name: name.to_owned(),
                crashed: false,
                _lock: Some(fd),
            }),
            Err(Errno::WOULDBLOCK) => {}
            Err(e) => return Err(IoError::new(Op::Lock, tmp_path.join(name), e)),
        }
    }
    Ok(found)
}

/// Deals with the stale markers in `tmp/` (see the module documentation), under `lock`,
/// which is shared on entry and on return (and exclusive in between if a crash is found).
fn recover_markers(
    repo: &Repository,
    tmp: &OwnedFd,
    lock: &mut RepoLock,
    progress: &dyn Progress,
) -> Result<RecoveryReport, IoError> {
    let mut stale = stale_markers(repo, tmp, false)?;
    if stale.is_empty() {
        return Ok(RecoveryReport::default());
    }
    let crashed = stale.iter().any(|m| m.crashed);
    if crashed {
        lock.set(repo, true, progress)?;
        // Exclusive now: every marker is stale, and recovery may remove objects.
        drop(stale);
        stale = stale_markers(repo, tmp, true)?;
    }
    let report = recover(repo, tmp, &stale, progress)?;
    if lock.is_exclusive() {
        lock.set(repo, false, progress)?;
    }
    Ok(report)
}

/// Checks the objects the crashed transactions among `markers` may have left half-written,
/// flushes, and removes the markers. For markers of this boot only flushing is needed.
pub(crate) fn recover(
    repo: &Repository,
    tmp: &OwnedFd,
    markers: &[FoundMarker],
    progress: &dyn Progress,
) -> Result<RecoveryReport, IoError> {
    let tmp_path = repo.join(TMP_DIR);
    let mut report = RecoveryReport::default();
    let mut since: Option<i64> = None;
    for m in markers {
        if m.crashed {
            report.crashed_transactions += 1;
            let st = rustix::fs::statat(tmp, m.name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| IoError::new(Op::Stat, tmp_path.join(&m.name), e))?;
            let t = st.st_ctime;
            since = Some(since.map_or(t, |s: i64| s.min(t)));
        } else {
            report.abandoned_transactions += 1;
        }
    }
    if let Some(since) = since {
        progress.phase(Phase::Recovering, None, None);
        check_recent_objects(repo, since - CTIME_SLACK, &mut report, progress)?;
        report.image_links_removed = remove_dangling_image_links(repo)?;
    }
    progress.phase(Phase::Syncing, None, None);
    repo.syncfs()?;
    for m in markers {
        match rustix::fs::unlinkat(tmp, m.name.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(IoError::new(Op::Remove, tmp_path.join(&m.name), e)),
        }
    }
    rustix::fs::fsync(tmp).map_err(|e| IoError::new(Op::Sync, &tmp_path, e))?;
    Ok(report)
}

/// Hashes every object whose ctime is at least `since` and removes those whose content does
/// not match their name.
fn check_recent_objects(
    repo: &Repository,
    since: i64,
    report: &mut RecoveryReport,
    progress: &dyn Progress,
) -> Result<(), IoError> {
    let objects = match fs::open_dir(repo.dir(), OBJECTS_DIR) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(IoError::new(Op::Open, repo.objects_path(), e)),
    };
    let results: Vec<Result<(u64, Vec<ObjectId>), IoError>> = (0u16..256)
        .into_par_iter()
        .map(|byte| {
            let sub = format!("{byte:02x}");
            let sub_path = repo.objects_path().join(&sub);
            let dir = match fs::open_dir(&objects, &sub) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => return Ok((0, Vec::new())),
                Err(e) => return Err(IoError::new(Op::Open, &sub_path, e)),
            };
            let entries = fs::list(&dir).map_err(|e| IoError::new(Op::List, &sub_path, e))?;
            let mut checked = 0;
            let mut removed = Vec::new();
            for entry in entries {
                let Some(id) =
                    ObjectId::from_dir_entry(repo.algorithm(), byte as u8, entry.name.to_bytes())
                else {
                    continue;
                };
                let st = match rustix::fs::statat(
                    &dir,
                    entry.name.as_c_str(),
                    AtFlags::SYMLINK_NOFOLLOW,
                ) {
                    Ok(st) => st,
                    Err(Errno::NOENT) => continue,
                    Err(e) => {
                        return Err(IoError::new(
                            Op::Stat,
                            sub_path.join(entry.name.to_string_lossy().as_ref()),
                            e,
                        ))
                    }
                };
                if st.st_ctime < since {
                    continue;
                }
                checked += 1;
                let good = matches!(
                    crate::fsck::verify_object(repo, &dir, entry.name.as_c_str(), &id),
                    Ok(None)
                );
                progress.advance(1, st.st_size as u64);
                if !good {
                    match rustix::fs::unlinkat(&dir, entry.name.as_c_str(), AtFlags::empty()) {
                        Ok(()) | Err(Errno::NOENT) => removed.push(id),
                        Err(e) => {
                            return Err(IoError::new(
                                Op::Remove,
                                repo.objects_path().join(id.object_path()),
                                e,
                            ))
                        }
                    }
                }
            }
            Ok((checked, removed))
        })
        .collect();
    for r in results {
        let (checked, removed) = r?;
        report.objects_checked += checked;
        report.objects_removed.extend(removed);
    }
    report.objects_removed.sort();
    Ok(())
}

/// Removes the links in `images/` whose object is gone; returns how many.
pub(crate) fn remove_dangling_image_links(repo: &Repository) -> Result<u64, IoError> {
    let images = remove_dangling_links(repo, IMAGES_DIR)?;
    // Commit links too (recovery can remove a torn commit object as well).
    remove_dangling_links(repo, crate::commits::COMMITS_DIR)?;
    Ok(images)
}

/// Removes the symlinks in directory `rel` whose target is gone; returns how many.
fn remove_dangling_links(repo: &Repository, rel: &str) -> Result<u64, IoError> {
    let images_path = repo.join(rel);
    let images = match fs::open_dir(repo.dir(), rel) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(0),
        Err(e) => return Err(IoError::new(Op::Open, &images_path, e)),
    };
    let mut removed = 0;
    for entry in fs::list(&images).map_err(|e| IoError::new(Op::List, &images_path, e))? {
        if entry.file_type != FileType::Symlink {
            continue;
        }
        match rustix::fs::statat(&images, entry.name.as_c_str(), AtFlags::empty()) {
            Ok(_) => {}
            Err(Errno::NOENT) => {
                match rustix::fs::unlinkat(&images, entry.name.as_c_str(), AtFlags::empty()) {
                    Ok(()) => removed += 1,
                    Err(Errno::NOENT) => {}
                    Err(e) => {
                        return Err(IoError::new(
                            Op::Remove,
                            images_path.join(entry.name.to_string_lossy().as_ref()),
                            e,
                        ))
                    }
                }
            }
            Err(e) => {
                return Err(IoError::new(
                    Op::Stat,
                    images_path.join(entry.name.to_string_lossy().as_ref()),
                    e,
                ))
            }
        }
    }
    if removed > 0 {
        rustix::fs::fsync(&images).map_err(|e| IoError::new(Op::Sync, &images_path, e))?;
    }
    Ok(removed)
}
