//! `gc`: removes the images and objects no ref reaches, and leftover temporary files.
//!
//! Under the exclusive lock (so no transaction is in flight, and every object not yet reached
//! by a ref belongs to nobody): first crashed transactions are recovered from, then the refs
//! are followed to their images and each image is read for the objects it needs (the live
//! set); then the `images/` links of dead images are removed and flushed, and only then the
//! dead objects. That order keeps "every image in `images/` has all its objects" true at every
//! moment, crash or not.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

use crate::commits::{
    CommitId, Reach, COMMITS_DIR, COMMIT_REFS_DIR, IMAGE_SIGNATURE_SUFFIX, SIGNATURE_SUFFIX,
};
use crate::error::{GcError, IoError, Operation as Op, TransactionError};
use crate::fs;
use crate::id::{ImageId, ObjectId, RefName};
use crate::lock::RepoLock;
use crate::progress::{Phase, Progress};
use crate::transaction::RecoveryReport;
use crate::{Repository, IMAGES_DIR, OBJECTS_DIR, STREAMS_DIR, TMP_DIR};

/// The prefix of the temporary names `sealroot-tree`'s digest store uses in `objects/XX`
/// where the filesystem has no `O_TMPFILE`, and of composefs-rs's (`.tmp-object-`).
const STORE_TMP_PREFIX: &str = ".tmp-";

/// The threads that remove objects. Removing is bound by the filesystem's journal, not the
/// CPU: on ext4 here, unlinking 25,600 files of 40 KB took 12.7 to 16.6 s with 2 threads,
/// 2.5 to 3.2 s with 8, 1.6 s with 16 and 1.5 s with 32.
const SWEEP_THREADS: usize = 16;

/// What `gc` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcOptions {
    /// Count what would be removed, remove nothing.
    pub dry_run: bool,
}

impl GcOptions {
    /// Removing (`dry_run: false`).
    pub const fn remove() -> Self {
        GcOptions { dry_run: false }
    }

    /// Counting only.
    pub const fn dry_run() -> Self {
        GcOptions { dry_run: true }
    }
}

/// What `gc` removed (or, in a dry run, would remove).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Objects removed (image objects included).
    pub objects_removed: u64,
    /// Their bytes (file sizes).
    pub object_bytes_removed: u64,
    /// Image links removed from `images/`.
    pub images_removed: u64,
    /// Leftover temporary files removed (in `tmp/` and `objects/XX`).
    pub temp_files_removed: u64,
    /// Their bytes.
    pub temp_bytes_removed: u64,
    /// Objects kept.
    pub objects_kept: u64,
    /// Images kept.
    pub images_kept: u64,
    /// Commits (links in `commits/`, with their signatures) removed.
    pub commits_removed: u64,
    /// Commits kept.
    pub commits_kept: u64,
    /// Refs that lead to no image (they keep nothing alive; `fsck` says more).
    pub broken_refs: Vec<String>,
    /// What recovery from crashed or abandoned transactions did first.
    pub recovered: RecoveryReport,
}

impl Repository {
    /// Removes the images and objects no ref reaches, and leftover temporary files; counts
    /// them. Takes the exclusive lock: waits for running transactions to finish and blocks
    /// new ones meanwhile. First recovers from crashed or abandoned transactions; then reads
    /// the images the refs reach for the objects they need; removes the `images/` links of
    /// the other images and flushes that, and only then the objects nothing needs, so every
    /// image in `images/` keeps all its objects at every moment.
    ///
    /// Refuses ([`GcError::StreamsPresent`]) when `streams/` holds `cfsctl` split streams,
    /// whose object references sealroot does not follow.
    pub fn gc(&self, options: &GcOptions, progress: &dyn Progress) -> Result<GcReport, GcError> {
        let dry = options.dry_run;
        if !dry && !self.is_writable() {
            return Err(TransactionError::ReadOnly {
                path: self.path().to_owned(),
                features: self.config().unknown_read_only_features.clone(),
            }
            .into());
        }
        let _lock = RepoLock::take(self, true, progress)?;
        let mut report = GcReport {
            dry_run: dry,
            ..GcReport::default()
        };

        let streams = fs::list_at(self.dir(), STREAMS_DIR)
            .map_err(|e| IoError::new(Op::List, self.join(STREAMS_DIR), e))?;
        if streams.iter().any(|e| e.name.as_c_str() != c"refs") || !self.streams_refs_empty()? {
            return Err(GcError::StreamsPresent {
                path: self.join(STREAMS_DIR),
            });
        }

        let tmp = match fs::open_dir(self.dir(), TMP_DIR) {
            Ok(fd) => Some(fd),
            Err(Errno::NOENT) => None,
            Err(e) => return Err(IoError::new(Op::Open, self.join(TMP_DIR), e).into()),
        };
        if let (Some(tmp), false) = (&tmp, dry) {
            let markers = crate::transaction::stale_markers(self, tmp, true)?;
            if !markers.is_empty() {
                report.recovered = crate::transaction::recover(self, tmp, &markers, progress)?;
            }
        }

        // Mark.
        let mut roots: Vec<(ImageId, Vec<RefName>)> = Vec::new();
        for raw in self.raw_refs()? {
            let image = raw.link.as_deref().and_then(|l| self.parse_ref_target(l));
            let present = match &image {
                Some(id) => self.image_present(id)?,
                None => false,
            };
            match image {
                Some(id) if present => {
                    let name = RefName::new(&raw.name).ok();
                    match roots.iter_mut().find(|(i, _)| *i == id) {
                        Some((_, refs)) => refs.extend(name),
                        None => roots.push((id, name.into_iter().collect())),
                    }
                }
                _ => report.broken_refs.push(raw.name),
            }
        }
        // Commits: each keeps its parents present here, its tree objects, file objects and
        // image.
        // Followed whatever the name (as image refs); a read error stops gc rather than
        // making a commit look unreferenced.
        let mut commit_roots: Vec<(CommitId, Vec<RefName>)> = Vec::new();
        for raw in self.raw_refs_in(COMMIT_REFS_DIR)? {
            let target = raw
                .link
                .as_deref()
                .and_then(Repository::parse_commit_target);
            let present = match &target {
                Some(id) => match self.has_commit(id) {
                    Ok(p) => p,
                    Err(crate::CommitError::Io(e))
                    | Err(crate::CommitError::Object(crate::ObjectError::Io(e))) => {
                        return Err(e.into())
                    }
                    Err(_) => false,
                },
                None => false,
            };
            match target {
                Some(id) if present => {
                    let name = RefName::new(&raw.name).ok();
                    match commit_roots.iter_mut().find(|(c, _)| *c == id) {
                        Some((_, refs)) => refs.extend(name),
                        None => commit_roots.push((id, name.into_iter().collect())),
                    }
                }
                _ => report
                    .broken_refs
                    .push(format!("{COMMIT_REFS_DIR}/{}", raw.name)),
            }
        }
        let mut reach = Reach::default();
        for (commit, refs) in &commit_roots {
            self.reach(commit, true, &mut reach)
                .map_err(|e| GcError::UnreadableCommit {
                    commit: commit.to_hex(),
                    refs: refs.clone(),
                    reason: e.to_string(),
                })?;
        }
        // Each commit's image stays (ancestors' too: they can still be mounted). It is not
        // read: its objects are its tree's file objects, which `reach` holds already.
        let commit_images: HashSet<ImageId> = reach
            .commits
            .iter()
            .map(|(_, image)| ImageId::sha256(*image))
            .collect();
        progress.phase(Phase::Marking, Some(roots.len() as u64), None);
        // Reading the images and listing objects/ are independent: do both at once.
        let mark = || -> Result<HashSet<ObjectId>, GcError> {
            let needs: Vec<Result<Vec<ObjectId>, GcError>> = roots
                .par_iter()
                .map(|(image, refs)| {
                    let r = self
                        .image_objects(image)
                        .map_err(|e| GcError::UnreadableImage {
                            image: *image,
                            refs: refs.clone(),
                            reason: e.to_string(),
                        });
                    progress.advance(1, 0);
                    r
                })
                .collect();
            let mut live: HashSet<ObjectId> = HashSet::new();
            for (r, (image, _)) in needs.into_iter().zip(&roots) {
                live.extend(r?);
                live.insert(*image.object());
            }
            Ok(live)
        };
        let (live, scans) = rayon::join(mark, || self.scan_objects());
        let (live, scans) = (live?, scans?);
        let mut live = live;
        live.extend(reach.objects.iter().copied());
        let mut live_images: HashSet<ImageId> = roots.iter().map(|(i, _)| *i).collect();
        live_images.extend(commit_images.iter().copied());

        // Sweep images, then objects.
        progress.phase(Phase::Sweeping, Some(256), None);
        let images_path = self.join(IMAGES_DIR);
        let mut removed_any = false;
        for image in self.image_ids()? {
            if live_images.contains(&image) {
                report.images_kept += 1;
                continue;
            }
            report.images_removed += 1;
            if !dry {
                let rel = format!("{IMAGES_DIR}/{}", image.to_hex());
                match rustix::fs::unlinkat(self.dir(), rel.as_str(), AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => removed_any = true,
                    Err(e) => return Err(IoError::new(Op::Remove, self.join(&rel), e).into()),
                }
            }
        }
        if removed_any {
            let images = fs::open_dir(self.dir(), IMAGES_DIR)
                .map_err(|e| IoError::new(Op::Open, &images_path, e))?;
            rustix::fs::fsync(&images).map_err(|e| IoError::new(Op::Sync, &images_path, e))?;
        }

        // Commit links and signature files of commits no ref reaches.
        let live_commits: HashSet<CommitId> = reach.commits.iter().map(|(c, _)| *c).collect();
        self.sweep_commits(&live_commits, dry, &mut report)?;

        let counts = SweepCounts::default();
        let sweep = || -> Vec<Result<(), IoError>> {
            scans
                .par_iter()
                .map(|scan| {
                    let r = self.sweep_dir(scan, &live, dry, &counts);
                    progress.advance(1, 0);
                    r
                })
                .collect()
        };
        let results = match rayon::ThreadPoolBuilder::new()
            .num_threads(SWEEP_THREADS)
            .build()
        {
            Ok(pool) => pool.install(sweep),
            Err(_) => sweep(),
        };
        for r in results {
            r?;
        }

        if let Some(tmp) = &tmp {
            let tmp_path = self.join(TMP_DIR);
            for entry in fs::list(tmp).map_err(|e| IoError::new(Op::List, &tmp_path, e))? {
                let entry_path = tmp_path.join(entry.name.to_string_lossy().as_ref());
                let size =
                    match rustix::fs::statat(tmp, entry.name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
                    {
                        Ok(st) => st.st_size as u64,
                        Err(Errno::NOENT) => continue,
                        Err(e) => return Err(IoError::new(Op::Stat, &entry_path, e).into()),
                    };
                let flags = if entry.file_type == FileType::Directory {
                    AtFlags::REMOVEDIR
                } else {
                    AtFlags::empty()
                };
                if !dry {
                    match rustix::fs::unlinkat(tmp, entry.name.as_c_str(), flags) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        // Not ours (sealroot makes no directories there): left alone.
                        Err(Errno::NOTEMPTY) => continue,
                        Err(e) => return Err(IoError::new(Op::Remove, &entry_path, e).into()),
                    }
                }
                counts.temp_files.fetch_add(1, Ordering::Relaxed);
                counts.temp_bytes.fetch_add(size, Ordering::Relaxed);
            }
        }

        report.objects_removed = counts.removed.load(Ordering::Relaxed);
        report.object_bytes_removed = counts.removed_bytes.load(Ordering::Relaxed);
        report.objects_kept = counts.kept.load(Ordering::Relaxed);
        report.temp_files_removed = counts.temp_files.load(Ordering::Relaxed);
        report.temp_bytes_removed = counts.temp_bytes.load(Ordering::Relaxed);
        Ok(report)
    }

    /// Removes `commits/HEX` and `commits/HEX.sig` for every commit not in `live`.
    fn sweep_commits(
        &self,
        live: &HashSet<CommitId>,
        dry: bool,
        report: &mut GcReport,
    ) -> Result<(), IoError> {
        let entries = match fs::list_at(self.dir(), COMMITS_DIR) {
            Ok(e) => e,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(IoError::new(Op::List, self.join(COMMITS_DIR), e)),
        };
        let mut removed_any = false;
        for entry in entries {
            let Ok(name) = entry.name.to_str() else {
                continue;
            };
            let hex = name
                .strip_suffix(SIGNATURE_SUFFIX)
                .or_else(|| name.strip_suffix(IMAGE_SIGNATURE_SUFFIX))
                .unwrap_or(name);
            let Ok(id) = hex.parse::<CommitId>() else {
                continue;
            };
            if live.contains(&id) {
                if name == hex {
                    report.commits_kept += 1;
                }
                continue;
            }
            if name == hex {
                report.commits_removed += 1;
            }
            if !dry {
                let rel = format!("{COMMITS_DIR}/{name}");
                match rustix::fs::unlinkat(self.dir(), rel.as_str(), AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => removed_any = true,
                    Err(e) => return Err(IoError::new(Op::Remove, self.join(&rel), e)),
                }
            }
        }
        if removed_any {
            let dir = fs::open_dir(self.dir(), COMMITS_DIR)
                .map_err(|e| IoError::new(Op::Open, self.join(COMMITS_DIR), e))?;
            rustix::fs::fsync(&dir)
                .map_err(|e| IoError::new(Op::Sync, self.join(COMMITS_DIR), e))?;
        }
        Ok(())
    }

    /// Whether `streams/refs` is empty or absent.
    fn streams_refs_empty(&self) -> Result<bool, IoError> {
        let rel = format!("{STREAMS_DIR}/refs");
        let entries = fs::list_at(self.dir(), &rel)
            .map_err(|e| IoError::new(Op::List, self.join(&rel), e))?;
        Ok(entries.is_empty())
    }

    /// Lists every `objects/XX`: its objects and its temporary files.
    fn scan_objects(&self) -> Result<Vec<DirScan>, IoError> {
        let objects_path = self.objects_path();
        let objects = match fs::open_dir(self.dir(), OBJECTS_DIR) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Vec::new()),
            Err(e) => return Err(IoError::new(Op::Open, &objects_path, e)),
        };
        let scans: Vec<Result<Option<DirScan>, IoError>> = (0u16..256)
            .into_par_iter()
            .map(|byte| {
                let byte = byte as u8;
                let sub = format!("{byte:02x}");
                let sub_path = objects_path.join(&sub);
                let dir = match fs::open_dir(&objects, &sub) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) => return Ok(None),
                    Err(e) => return Err(IoError::new(Op::Open, &sub_path, e)),
                };
                let mut scan = DirScan {
                    dir,
                    path: sub_path,
                    ids: Vec::new(),
                    temps: Vec::new(),
                };
                fs::for_each(&scan.dir, |name, _| {
                    match ObjectId::from_dir_entry(self.algorithm(), byte, name.to_bytes()) {
                        Some(id) => scan.ids.push(id),
                        None if name.to_bytes().starts_with(STORE_TMP_PREFIX.as_bytes()) => {
                            scan.temps.push(name.to_owned())
                        }
                        // Not an object, not a temporary file: leave it (fsck reports it).
                        None => {}
                    }
                })
                .map_err(|e| IoError::new(Op::List, &scan.path, e))?;
                Ok(Some(scan))
            })
            .collect();
        scans.into_iter().filter_map(Result::transpose).collect()
    }

    /// Removes the dead objects and the temporary files of one `objects/XX`.
    fn sweep_dir(
        &self,
        scan: &DirScan,
        live: &HashSet<ObjectId>,
        dry: bool,
        counts: &SweepCounts,
    ) -> Result<(), IoError> {
        let mut kept = 0;
        let dead = scan.ids.iter().filter_map(|id| {
            if live.contains(id) {
                kept += 1;
                None
            } else {
                let hex = id.to_hex();
                Some((
                    std::ffi::CString::new(&hex[2..]).expect("hex has no NUL"),
                    true,
                ))
            }
        });
        let doomed: Vec<(std::ffi::CString, bool)> = dead
            .chain(scan.temps.iter().map(|t| (t.clone(), false)))
            .collect();
        counts.kept.fetch_add(kept, Ordering::Relaxed);
        for (name, object) in doomed {
            let name = name.as_c_str();
            let entry_path = scan.path.join(name.to_string_lossy().as_ref());
            let size = match rustix::fs::statat(&scan.dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st.st_size as u64,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(IoError::new(Op::Stat, &entry_path, e)),
            };
            if !dry {
                match rustix::fs::unlinkat(&scan.dir, name, AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(IoError::new(Op::Remove, &entry_path, e)),
                }
            }
            if object {
                counts.removed.fetch_add(1, Ordering::Relaxed);
                counts.removed_bytes.fetch_add(size, Ordering::Relaxed);
            } else {
                counts.temp_files.fetch_add(1, Ordering::Relaxed);
                counts.temp_bytes.fetch_add(size, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// One directory `objects/XX` as listed before the sweep.
struct DirScan {
    dir: std::os::fd::OwnedFd,
    path: std::path::PathBuf,
    ids: Vec<ObjectId>,
    temps: Vec<std::ffi::CString>,
}

/// Counters of the sweep, shared by its threads.
#[derive(Default)]
struct SweepCounts {
    removed: AtomicU64,
    removed_bytes: AtomicU64,
    kept: AtomicU64,
    temp_files: AtomicU64,
    temp_bytes: AtomicU64,
}
