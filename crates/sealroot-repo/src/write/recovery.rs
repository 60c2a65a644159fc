//! Crash recovery: what the next writer (or `gc`) does with the markers of transactions that
//! did not finish.
//!
//! - a locked marker: a live transaction; leave it;
//! - unlocked, from this boot: its process died (`kill -9`), but the machine did not, so the
//!   page cache still holds whatever it wrote, and every object it linked is complete (objects
//!   appear by `linkat` of a finished file); one `syncfs` makes that durable, then the marker
//!   goes. What it wrote and no ref reaches is garbage for `gc`;
//! - from another boot: the machine went down during that transaction. Under the exclusive
//!   lock, every object whose ctime is not older than the marker (less [`CTIME_SLACK`]) is
//!   hashed again, and those whose content does not match their name are removed, together
//!   with image and commit links left dangling; then `syncfs`, and the markers go.
//!
//! No ref can reach an object that recovery removes: a ref is written only after a `syncfs`
//! that followed every write it reaches, so what it reaches was durable before the crash.

use std::os::fd::OwnedFd;

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, FlockOperation};
use rustix::io::Errno;

use super::lock::RepoLock;
use crate::error::{IoError, Operation as Op};
use crate::fs;
use crate::id::ObjectId;
use crate::layout;
use crate::progress::{Phase, Progress};
use crate::read::objects::{Corruption, ObjectDir};
use crate::Repository;

/// How much older than a crashed transaction's marker an object may look and still be
/// checked by recovery, in seconds: room for the clock being set back a little across the
/// crash.
pub(crate) const CTIME_SLACK: i64 = 120;

/// What recovery from unfinished transactions did.
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

/// How a transaction that did not finish ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unfinished {
    /// Its process died (killed, crashed) while the machine kept running: everything it
    /// wrote is complete, and what no ref reaches is garbage.
    ProcessDied,
    /// The machine went down during it (another boot's marker): objects it wrote may be
    /// torn, and the next writer checks them.
    SystemCrash,
}

/// A transaction that did not finish, as `fsck` reports it: not corruption, but work for the
/// next writer or `gc`, which clean it up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnfinishedTransaction {
    /// Its marker's name in `tmp/`.
    pub marker: String,
    /// How it ended.
    pub how: Unfinished,
    /// The process that ran it, as the marker's name says.
    pub pid: Option<u32>,
    /// When it started (the marker's ctime, seconds since the epoch).
    pub started: i64,
}

/// A marker found in `tmp/`.
pub(crate) struct FoundMarker {
    pub(crate) name: String,
    /// From another boot.
    pub(crate) crashed: bool,
    /// Holding its lock (only taken for markers of this boot).
    pub(crate) _lock: Option<OwnedFd>,
}

impl FoundMarker {
    /// The marker as [`UnfinishedTransaction`], with its ctime read from `tmp`.
    pub(crate) fn describe(
        &self,
        repo: &Repository,
        tmp: &OwnedFd,
    ) -> Result<UnfinishedTransaction, IoError> {
        let st = rustix::fs::statat(tmp, self.name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| IoError::new(Op::Stat, repo.join(layout::TMP).join(&self.name), e))?;
        // transaction.BOOT.PID.N
        let pid = self.name.split('.').nth(2).and_then(|p| p.parse().ok());
        Ok(UnfinishedTransaction {
            marker: self.name.clone(),
            how: if self.crashed {
                Unfinished::SystemCrash
            } else {
                Unfinished::ProcessDied
            },
            pid,
            started: st.st_ctime,
        })
    }
}

/// The markers in `tmp/` that no live transaction holds. With `all`, the caller holds the
/// exclusive repository lock, so no transaction is live and every marker is returned.
pub(crate) fn stale_markers(
    repo: &Repository,
    tmp: &OwnedFd,
    all: bool,
) -> Result<Vec<FoundMarker>, IoError> {
    let tmp_path = repo.join(layout::TMP);
    let boot =
        fs::boot_id().map_err(|e| IoError::new(Op::Read, "/proc/sys/kernel/random/boot_id", e))?;
    let entries = fs::list(tmp).map_err(|e| IoError::new(Op::List, &tmp_path, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let Ok(name) = entry.name.to_str() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(layout::MARKER_PREFIX) else {
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
        let fd = match fs::open_file(tmp, name) {
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
pub(crate) fn recover_markers(
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
    let tmp_path = repo.join(layout::TMP);
    let mut report = RecoveryReport::default();
    let mut since: Option<i64> = None;
    for m in markers {
        if m.crashed {
            report.crashed_transactions += 1;
            let t = m.describe(repo, tmp)?.started;
            since = Some(since.map_or(t, |s: i64| s.min(t)));
        } else {
            report.abandoned_transactions += 1;
        }
    }
    if let Some(since) = since {
        progress.phase(Phase::Recovering, None, None);
        let (checked, removed) = check_recent_objects(repo, since - CTIME_SLACK, true, progress)?;
        report.objects_checked = checked;
        report.objects_removed = removed;
        report.image_links_removed = remove_dangling_links(repo)?;
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

/// Hashes every object whose ctime is at least `since`; returns how many were checked and
/// those whose content does not match their name, removed with `remove`.
pub(crate) fn check_recent_objects(
    repo: &Repository,
    since: i64,
    remove: bool,
    progress: &dyn Progress,
) -> Result<(u64, Vec<ObjectId>), IoError> {
    let (dirs, _) = repo.list_object_dirs()?;
    let results: Vec<Result<(u64, Vec<ObjectId>), IoError>> = dirs
        .par_iter()
        .map(|dir| check_recent_in(repo, dir, since, remove, progress))
        .collect();
    let mut checked = 0;
    let mut bad = Vec::new();
    for r in results {
        let (c, b) = r?;
        checked += c;
        bad.extend(b);
    }
    bad.sort();
    Ok((checked, bad))
}

/// [`check_recent_objects`] in one `objects/XX`.
fn check_recent_in(
    repo: &Repository,
    dir: &ObjectDir,
    since: i64,
    remove: bool,
    progress: &dyn Progress,
) -> Result<(u64, Vec<ObjectId>), IoError> {
    let mut checked = 0;
    let mut bad = Vec::new();
    for id in &dir.ids {
        let name = ObjectDir::name(id);
        let st = match rustix::fs::statat(&dir.fd, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(IoError::new(Op::Stat, repo.object_path(id), e)),
        };
        if st.st_ctime < since {
            continue;
        }
        checked += 1;
        // Torn: its content is not its name (or it is not a file). Anything else, an error
        // reading it above all, is no evidence, and nothing is removed for it.
        let torn = match repo.check_object_in(&dir.fd, &name, id) {
            Ok(c) => matches!(
                c.problem,
                Some(Corruption::DigestMismatch { .. } | Corruption::NotARegularFile)
            ),
            Err(Errno::NOENT) => false,
            Err(e) => return Err(IoError::new(Op::Read, repo.object_path(id), e)),
        };
        progress.advance(1, st.st_size as u64);
        if !torn {
            continue;
        }
        if remove {
            match rustix::fs::unlinkat(&dir.fd, name.as_c_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(IoError::new(Op::Remove, repo.object_path(id), e)),
            }
        }
        bad.push(*id);
    }
    Ok((checked, bad))
}

/// Removes the links in `images/`, `commits/` and `streams/` whose object is gone; returns
/// how many image links went.
pub(crate) fn remove_dangling_links(repo: &Repository) -> Result<u64, IoError> {
    let images = remove_dangling_in(repo, layout::IMAGES)?;
    // Commit links too (recovery can remove a torn commit object as well).
    remove_dangling_in(repo, layout::COMMITS)?;
    // And history streams, linked before the flush like the others.
    remove_dangling_in(repo, layout::STREAMS)?;
    Ok(images)
}

/// Removes the symlinks in layout directory `rel` whose object is gone; returns how many.
/// Links are read, not followed: one whose text is not an object link stays (fsck reports it).
fn remove_dangling_in(repo: &Repository, rel: &str) -> Result<u64, IoError> {
    let Some(dir) = repo.open_layout(rel)? else {
        return Ok(0);
    };
    let dir_path = repo.join(rel);
    let mut removed = 0;
    for entry in fs::list(&dir).map_err(|e| IoError::new(Op::List, &dir_path, e))? {
        if entry.file_type != FileType::Symlink {
            continue;
        }
        let entry_path = || dir_path.join(entry.name.to_string_lossy().as_ref());
        let text = rustix::fs::readlinkat(&dir, entry.name.as_c_str(), Vec::new())
            .map_err(|e| IoError::new(Op::ReadLink, entry_path(), e))?;
        let Some(object) = text
            .to_str()
            .ok()
            .and_then(|t| layout::parse_object_link(repo.algorithm(), t))
        else {
            continue;
        };
        let present = repo.has_object(&object).map_err(|e| match e {
            crate::ObjectError::Io(io) => io,
            other => IoError::new(
                Op::Stat,
                entry_path(),
                std::io::Error::other(other.to_string()),
            ),
        })?;
        if present {
            continue;
        }
        match rustix::fs::unlinkat(&dir, entry.name.as_c_str(), AtFlags::empty()) {
            Ok(()) => removed += 1,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(IoError::new(Op::Remove, entry_path(), e)),
        }
    }
    if removed > 0 {
        rustix::fs::fsync(&dir).map_err(|e| IoError::new(Op::Sync, &dir_path, e))?;
    }
    Ok(removed)
}
