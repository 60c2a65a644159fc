//! `gc`: removes the images, commits and objects no ref reaches, and leftover temporary
//! files.
//!
//! Under the exclusive lock (so no transaction is in flight, and every object not yet reached
//! by a ref belongs to nobody): first unfinished transactions are recovered from, then the
//! refs are followed (image refs to their images, read for the objects they need; commit refs
//! through their history and tree objects): the live set. Then the `images/` and `commits/`
//! links of what is dead are removed and flushed, and only then the dead objects. That order
//! keeps "every image in `images/` has all its objects" true at every moment, crash or not.

use crate::id::DigestSet as HashSet;
use std::ffi::CStr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

use crate::error::{GcError, IoError, Operation as Op, TransactionError};
use crate::fs;
use crate::id::{ImageId, ObjectId, RefName};
use crate::layout::{self, RefKind};
use crate::progress::{Phase, Progress};
use crate::read::commits::{CommitError, CommitId, Reach};
use crate::read::objects::ObjectDir;
use crate::write::lock::RepoLock;
use crate::write::recovery::{self, RecoveryReport};
use crate::Repository;

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

/// What the mark phase found alive.
struct Live {
    objects: HashSet<ObjectId>,
    images: HashSet<ImageId>,
    commits: HashSet<CommitId>,
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

impl Repository {
    /// Removes the images, commits and objects no ref reaches, and leftover temporary files;
    /// counts them. Takes the exclusive lock: waits for running transactions to finish and
    /// blocks new ones meanwhile. First recovers from unfinished transactions; then marks
    /// what the refs reach; removes the `images/` and `commits/` links of the rest and flushes
    /// that, and only then the objects nothing needs, so every image in `images/` keeps all
    /// its objects at every moment.
    ///
    /// Split streams are followed as `cfsctl gc` follows them (every stream ref is a root), so
    /// a repository shared with `cfsctl` loses nothing its streams need.
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
        let tmp = self.open_layout(layout::TMP)?;
        if let (Some(tmp), false) = (&tmp, dry) {
            let markers = recovery::stale_markers(self, tmp, true)?;
            if !markers.is_empty() {
                report.recovered = recovery::recover(self, tmp, &markers, progress)?;
            }
        }
        // Marking (reading images and commits) and listing objects/ are independent.
        let (live, scans) = rayon::join(
            || self.mark(&mut report, progress),
            || self.list_object_dirs(),
        );
        let (live, (scans, _)) = (live?, scans?);
        progress.phase(Phase::Sweeping, Some(256), None);
        // The `images/` links of the images not in `live`, then `commits/HEX` and its
        // signature files for every commit not in `live`.
        let images = (&mut report.images_kept, &mut report.images_removed);
        self.sweep_links(
            layout::IMAGES,
            |_| self.image_links(),
            &live.images,
            dry,
            images,
        )?;
        let commits = (&mut report.commits_kept, &mut report.commits_removed);
        self.sweep_links(layout::COMMITS, commit_links, &live.commits, dry, commits)?;
        self.sweep_streams(&live.objects, dry)?;
        let counts = SweepCounts::default();
        self.sweep_objects(&scans, &live.objects, dry, &counts, progress)?;
        if let Some(tmp) = &tmp {
            self.sweep_tmp(tmp, dry, Some(&counts))?;
        }
        report.objects_removed = counts.removed.load(Ordering::Relaxed);
        report.object_bytes_removed = counts.removed_bytes.load(Ordering::Relaxed);
        report.objects_kept = counts.kept.load(Ordering::Relaxed);
        report.temp_files_removed = counts.temp_files.load(Ordering::Relaxed);
        report.temp_bytes_removed = counts.temp_bytes.load(Ordering::Relaxed);
        Ok(report)
    }

    /// Follows every ref: image refs to their images (read for the objects they need),
    /// commit refs through their history and tree objects. A ref whatever its name is
    /// followed; one that leads nowhere is noted in `report` and keeps nothing.
    fn mark(&self, report: &mut GcReport, progress: &dyn Progress) -> Result<Live, GcError> {
        let image_roots = self.image_roots(report)?;
        let commit_roots = self.commit_roots(report)?;
        let reach = self.reach_commits(&commit_roots)?;
        // An image ref to a commit's image (what every commit ref has beside it) needs no
        // reading: its objects are that commit's tree's file objects.
        let commit_images: HashSet<ImageId> = reach
            .commits
            .iter()
            .map(|(_, i)| ImageId::from_digest(*i))
            .collect();
        let (covered, image_roots): (Vec<_>, Vec<_>) = image_roots
            .into_iter()
            .partition(|(image, _)| commit_images.contains(image));
        let needs = self.image_needs(&image_roots, progress);
        let mut live = Live {
            objects: reach.objects,
            images: image_roots
                .iter()
                .chain(&covered)
                .map(|(i, _)| *i)
                .collect(),
            commits: reach.commits.iter().map(|(c, _)| *c).collect(),
        };
        self.mark_streams(&mut live.objects)?;
        for (r, (image, _)) in needs.into_iter().zip(&image_roots) {
            live.objects.extend(r?);
            live.objects.insert(*image.object());
        }
        // Each commit's image stays (ancestors' too: they can still be mounted). It is not
        // read: its objects are its tree's file objects, which `reach` holds already.
        live.images.extend(
            reach
                .commits
                .iter()
                .map(|(_, image)| ImageId::from_digest(*image)),
        );
        Ok(live)
    }

    /// The images the image refs lead to, each with the refs that do; a ref that leads to no
    /// image of the repository is noted in `report`.
    fn image_roots(&self, report: &mut GcReport) -> Result<Vec<(ImageId, Vec<RefName>)>, GcError> {
        let mut image_roots: Vec<(ImageId, Vec<RefName>)> = Vec::new();
        for raw in self.raw_refs(RefKind::Image)? {
            let image = raw
                .target_hex(RefKind::Image)
                .and_then(|h| self.image_of_hex(h));
            match image {
                Some(id) if self.image_present(&id)? => {
                    add_root(&mut image_roots, id, RefName::new(&raw.name).ok())
                }
                _ => report.broken_refs.push(raw.name),
            }
        }
        Ok(image_roots)
    }

    /// The commits the commit refs lead to, each with the refs that do; a ref that leads to
    /// no commit of the repository is noted in `report`.
    fn commit_roots(
        &self,
        report: &mut GcReport,
    ) -> Result<Vec<(CommitId, Vec<RefName>)>, GcError> {
        let mut commit_roots: Vec<(CommitId, Vec<RefName>)> = Vec::new();
        for raw in self.raw_refs(RefKind::Commit)? {
            let commit = raw
                .target_hex(RefKind::Commit)
                .and_then(|h| h.parse::<CommitId>().ok());
            let present = match &commit {
                // A read error stops gc rather than making a commit look unreferenced.
                Some(id) => match self.has_commit(id) {
                    Ok(p) => p,
                    Err(CommitError::Io(e) | CommitError::Object(crate::ObjectError::Io(e))) => {
                        return Err(e.into())
                    }
                    Err(_) => false,
                },
                None => false,
            };
            match commit {
                Some(id) if present => {
                    add_root(&mut commit_roots, id, RefName::new(&raw.name).ok())
                }
                _ => report
                    .broken_refs
                    .push(format!("{}/{}", layout::COMMIT_REFS, raw.name)),
            }
        }
        Ok(commit_roots)
    }

    /// Everything the commits of `commit_roots` reach: their history, tree objects, images
    /// and file objects.
    fn reach_commits(&self, commit_roots: &[(CommitId, Vec<RefName>)]) -> Result<Reach, GcError> {
        let mut reach = Reach::default();
        for (commit, refs) in commit_roots {
            // A history stream made for this very head lists every object of its history:
            // no tree need be walked. Otherwise (none, or made for another head), walk.
            let stream = refs
                .iter()
                .find_map(|r| self.history_stream(r).ok().flatten())
                .filter(|s| s.head() == *commit);
            let walked = match &stream {
                Some(s) => self.reach_by_stream(commit, s, &mut reach),
                None => self.reach(commit, true, &mut reach),
            };
            walked.map_err(|e| GcError::UnreadableCommit {
                commit: commit.to_hex(),
                refs: refs.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(reach)
    }

    /// The objects each image of `image_roots` needs, read in parallel.
    fn image_needs(
        &self,
        image_roots: &[(ImageId, Vec<RefName>)],
        progress: &dyn Progress,
    ) -> Vec<Result<Vec<ObjectId>, GcError>> {
        progress.phase(Phase::Marking, Some(image_roots.len() as u64), None);
        image_roots
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
            .collect()
    }

    /// Follows every stream ref (ours and `cfsctl`'s) as `cfsctl gc` does: the stream's object,
    /// its object references, and the streams it refers to, in turn. A stream that cannot be
    /// read stops gc with nothing removed.
    fn mark_streams(&self, live: &mut HashSet<ObjectId>) -> Result<(), GcError> {
        let Some(streams) = self.open_layout(layout::STREAMS)? else {
            return Ok(());
        };
        let unreadable = |name: &str, reason: String| GcError::UnreadableStream {
            name: name.to_owned(),
            reason,
        };
        let mut pending: Vec<(String, ObjectId)> = Vec::new();
        for (refname, entry) in self.stream_roots()? {
            let object = self
                .stream_object(&streams, &entry)
                .map_err(|e| unreadable(&refname, e.to_string()))?;
            pending.push((refname, object));
        }
        let mut seen = HashSet::default();
        while let Some((name, object)) = pending.pop() {
            // A history stream that marked its commits already is not read again.
            if !seen.insert(object) || !live.insert(object) {
                continue;
            }
            let (objects, streams_named) = self
                .stream_references_of(&object)
                .map_err(|e| unreadable(&name, e.to_string()))?;
            live.extend(objects.into_iter().map(ObjectId::new));
            for s in streams_named {
                let id = ObjectId::new(s);
                // A stream it names but this repository lacks keeps nothing more.
                if self
                    .has_object(&id)
                    .map_err(|e| unreadable(&name, e.to_string()))?
                {
                    pending.push((format!("{name} -> {id}"), id));
                }
            }
        }
        Ok(())
    }

    /// Removes the `streams/` links whose stream is not in `live` (before the objects go,
    /// as for `images/`). Anything there that is not a link to an object stops gc, as it
    /// stops `cfsctl gc`.
    fn sweep_streams(&self, live: &HashSet<ObjectId>, dry: bool) -> Result<(), GcError> {
        let Some(mut streams) = LinkDir::open(self, layout::STREAMS)? else {
            return Ok(());
        };
        for name in streams.names()? {
            if name == "refs" {
                continue;
            }
            let object =
                self.stream_object(&streams.fd, &name)
                    .map_err(|e| GcError::UnreadableStream {
                        name: name.clone(),
                        reason: e.to_string(),
                    })?;
            if !live.contains(&object) && !dry {
                streams.remove(&name)?;
            }
        }
        Ok(streams.sync()?)
    }

    /// The entries of `images/`: each image's link name and id, each counted.
    fn image_links(&self) -> Result<Vec<(String, ImageId, bool)>, IoError> {
        let ids = self.image_ids()?.into_iter();
        Ok(ids.map(|id| (id.to_hex(), id, true)).collect())
    }

    /// Removes the entries of link directory `rel` whose id is not in `live`, then flushes
    /// it. `links` lists them: name, id, and whether the entry is counted (in `counts`, kept
    /// and removed).
    fn sweep_links<T: Eq + std::hash::Hash>(
        &self,
        rel: &'static str,
        links: impl FnOnce(&LinkDir<'_>) -> Result<Vec<(String, T, bool)>, IoError>,
        live: &HashSet<T>,
        dry: bool,
        (kept, removed): (&mut u64, &mut u64),
    ) -> Result<(), IoError> {
        let Some(mut dir) = LinkDir::open(self, rel)? else {
            return Ok(());
        };
        for (name, id, counted) in links(&dir)? {
            if live.contains(&id) {
                *kept += u64::from(counted);
                continue;
            }
            *removed += u64::from(counted);
            if !dry {
                dir.remove(&name)?;
            }
        }
        dir.sync()
    }

    /// Removes the dead objects and the temporary files of every `objects/XX`, in parallel.
    fn sweep_objects(
        &self,
        scans: &[ObjectDir],
        live: &HashSet<ObjectId>,
        dry: bool,
        counts: &SweepCounts,
        progress: &dyn Progress,
    ) -> Result<(), IoError> {
        let sweep = || -> Vec<Result<(), IoError>> {
            scans
                .par_iter()
                .map(|scan| {
                    let r = self.sweep_dir(scan, live, dry, counts);
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
        results.into_iter().collect()
    }

    /// Removes the dead objects and the temporary files of one `objects/XX`.
    fn sweep_dir(
        &self,
        scan: &ObjectDir,
        live: &HashSet<ObjectId>,
        dry: bool,
        counts: &SweepCounts,
    ) -> Result<(), IoError> {
        let sub = self.objects_path().join(ObjectDir::subdir_name(scan.byte));
        let dead = scan
            .ids
            .iter()
            .filter(|id| !live.contains(id))
            .map(|id| (ObjectDir::name(id), true));
        let doomed: Vec<(std::ffi::CString, bool)> = dead
            .chain(scan.temps.iter().map(|t| (t.clone(), false)))
            .collect();
        let dead_count = doomed.iter().filter(|(_, object)| *object).count();
        counts
            .kept
            .fetch_add((scan.ids.len() - dead_count) as u64, Ordering::Relaxed);
        for (name, object) in doomed {
            let entry_path = || sub.join(name.to_string_lossy().as_ref());
            let Some(size) = remove_sized(&scan.fd, &name, dry, entry_path)? else {
                continue;
            };
            let (n, bytes) = if object {
                (&counts.removed, &counts.removed_bytes)
            } else {
                (&counts.temp_files, &counts.temp_bytes)
            };
            n.fetch_add(1, Ordering::Relaxed);
            bytes.fetch_add(size, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Empties `tmp/`: leftover temporary files, links and markers, and the lock files (no
    /// one holds a lock now: lock holders hold the repository lock, shared).
    /// Lock files are not counted (`counts` is `None` for `tmp/locks/`).
    fn sweep_tmp(
        &self,
        tmp: &OwnedFd,
        dry: bool,
        counts: Option<&SweepCounts>,
    ) -> Result<(), IoError> {
        let tmp_path = self.join(layout::TMP);
        for entry in fs::list(tmp).map_err(|e| IoError::new(Op::List, &tmp_path, e))? {
            let entry_path = || tmp_path.join(entry.name.to_string_lossy().as_ref());
            if entry.file_type == FileType::Directory {
                if entry.name.as_c_str() == c"locks" {
                    let locks = fs::open_dir(tmp, c"locks")
                        .map_err(|e| IoError::new(Op::Open, entry_path(), e))?;
                    self.sweep_tmp(&locks, dry, None)?;
                }
                // Not ours otherwise (sealroot makes no other directories there): left alone.
                if !dry {
                    let _ = rustix::fs::unlinkat(tmp, entry.name.as_c_str(), AtFlags::REMOVEDIR);
                }
                continue;
            }
            let Some(size) = remove_sized(tmp, &entry.name, dry, entry_path)? else {
                continue;
            };
            if let Some(counts) = counts {
                counts.temp_files.fetch_add(1, Ordering::Relaxed);
                counts.temp_bytes.fetch_add(size, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// Adds ref `name` to the root `id` of `roots`.
fn add_root<T: PartialEq + Copy>(roots: &mut Vec<(T, Vec<RefName>)>, id: T, name: Option<RefName>) {
    match roots.iter_mut().find(|(r, _)| *r == id) {
        Some((_, refs)) => refs.extend(name),
        None => roots.push((id, name.into_iter().collect())),
    }
}

/// The entries of `commits/` that belong to a commit (see [`commit_entry`]).
fn commit_links(commits: &LinkDir<'_>) -> Result<Vec<(String, CommitId, bool)>, IoError> {
    let names = commits.names()?.into_iter();
    Ok(names.filter_map(commit_entry).collect())
}

/// What entry `name` of `commits/` is: the commit it belongs to, and whether it is the
/// commit's link (counted) rather than one of its signature files. `None` for anything else.
fn commit_entry(name: String) -> Option<(String, CommitId, bool)> {
    let hex = name
        .strip_suffix(layout::SIGNATURE_SUFFIX)
        .or_else(|| name.strip_suffix(layout::IMAGE_SIGNATURE_SUFFIX))
        .unwrap_or(&name);
    let id = hex.parse::<CommitId>().ok()?;
    let is_link = name == hex;
    Some((name, id, is_link))
}

/// The size of file `name` of `dir` (at `path`), removed unless `dry`; `None` if it is gone
/// already.
fn remove_sized(
    dir: &OwnedFd,
    name: &CStr,
    dry: bool,
    path: impl Fn() -> PathBuf,
) -> Result<Option<u64>, IoError> {
    let size = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st.st_size as u64,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(IoError::new(Op::Stat, path(), e)),
    };
    if !dry {
        remove(dir, name, path)?;
    }
    Ok(Some(size))
}

/// One of the directories of links (`images/`, `commits/`, `streams/`) being swept: what is
/// removed from it is flushed once, when the sweep of it ends, before any object goes.
struct LinkDir<'r> {
    repo: &'r Repository,
    /// Its path in the layout.
    rel: &'static str,
    fd: OwnedFd,
    /// Whether anything was removed, to be flushed.
    removed_any: bool,
}

impl<'r> LinkDir<'r> {
    /// Layout directory `rel`, `None` if the repository has none.
    fn open(repo: &'r Repository, rel: &'static str) -> Result<Option<Self>, IoError> {
        Ok(repo.open_layout(rel)?.map(|fd| LinkDir {
            repo,
            rel,
            fd,
            removed_any: false,
        }))
    }

    /// The names of its entries; names that are not UTF-8 are none of sealroot's and are
    /// left out.
    fn names(&self) -> Result<Vec<String>, IoError> {
        let entries =
            fs::list(&self.fd).map_err(|e| IoError::new(Op::List, self.repo.join(self.rel), e))?;
        Ok(entries
            .into_iter()
            .filter_map(|e| e.name.into_string().ok())
            .collect())
    }

    /// Removes entry `name` (gone already is fine).
    fn remove(&mut self, name: &str) -> Result<(), IoError> {
        self.removed_any |= remove(&self.fd, name, || self.repo.join(self.rel).join(name))?;
        Ok(())
    }

    /// Flushes the removals, if any.
    fn sync(self) -> Result<(), IoError> {
        if self.removed_any {
            rustix::fs::fsync(&self.fd)
                .map_err(|e| IoError::new(Op::Sync, self.repo.join(self.rel), e))?;
        }
        Ok(())
    }
}

/// Removes `name` from `dir` (a file or link); `Ok(true)` if it went, `Ok(false)` if it was
/// gone already.
fn remove<P: rustix::path::Arg>(
    dir: &OwnedFd,
    name: P,
    path: impl FnOnce() -> PathBuf,
) -> Result<bool, IoError> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(IoError::new(Op::Remove, path(), e)),
    }
}
