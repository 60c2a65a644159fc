//! `fsck`: checks every object's content against its name, every image (it parses and has
//! all its objects), every ref (it leads to an image) and every commit ref (its commit and
//! tree derive the image it records), and says which refs each problem affects.
//! Transactions that did not finish are reported as such, not as corruption: their objects
//! are complete (process died) or are checked by the next writer (system crash). With
//! `repair`, corrupt objects and the links they leave dangling are removed, and the refs
//! that need a new commit are named.
//!
//! Objects are checked in parallel on rayon's thread pool: the kernel's fs-verity
//! measurement where the object has fs-verity (the kernel then guarantees every read),
//! else the digest recomputed from the content.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use rayon::prelude::*;
use rustix::io::Errno;
use sealroot_format::erofs;

use crate::error::{FsckError, IoError, Operation as Op};
use crate::id::{is_lower_hex, ImageId, ObjectId, RefName};
use crate::layout::{self, RefKind};
use crate::progress::{Phase, Progress};
use crate::read::commits::{CommitId, Reach};
use crate::read::images::{path_of, tree_objects, ImageLink};
use crate::read::objects::{Corruption, ObjectDir};
use crate::write::lock::RepoLock;
use crate::write::recovery::{self, Unfinished, UnfinishedTransaction};
use crate::Repository;

/// What `fsck` does besides checking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsckOptions {
    /// Remove corrupt objects and the links left dangling (under the exclusive lock), and
    /// name the refs that need a new commit.
    pub repair: bool,
}

impl FsckOptions {
    /// Checking only (`repair: false`).
    pub const fn check() -> Self {
        FsckOptions { repair: false }
    }

    /// Checking and repairing.
    pub const fn repair() -> Self {
        FsckOptions { repair: true }
    }
}

/// An object whose content is not what its name says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorruptObject {
    /// The object.
    pub object: ObjectId,
    /// What is wrong.
    pub problem: Corruption,
    /// The images that are this object or need it.
    pub images: Vec<ImageId>,
    /// The refs that reach those images, and the commit refs that reach the object.
    pub refs: Vec<RefName>,
}

/// An object that an image needs and the repository lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingObject {
    /// The object.
    pub object: ObjectId,
    /// The images that need it.
    pub images: Vec<ImageId>,
    /// The refs that reach those images.
    pub refs: Vec<RefName>,
}

/// What is wrong with an entry of `images/`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageProblem {
    /// The name is not a digest of the repository's algorithm.
    BadName,
    /// Not a symlink.
    NotASymlink,
    /// The link does not point at the object its name says.
    BadLink(String),
    /// Its object is missing.
    MissingObject,
    /// The image does not parse.
    Unparsable(String),
    /// A file's payload does not name an object.
    BadPayload {
        /// The file.
        file: String,
        /// Its payload.
        payload: String,
    },
}

/// A broken entry of `images/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenImage {
    /// The entry's name in `images/`.
    pub name: String,
    /// The image it names, if the name is an image id.
    pub image: Option<ImageId>,
    /// What is wrong.
    pub problem: ImageProblem,
    /// The refs that reach it.
    pub refs: Vec<RefName>,
}

/// What is wrong with a ref.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefProblem {
    /// The name breaks the [`RefName`] rules.
    InvalidName(String),
    /// Not a symlink (nor a directory).
    NotASymlink,
    /// The link's text is not the one form a ref's link has.
    BadTarget(String),
    /// The image is not in the repository.
    ImageMissing(ImageId),
}

/// A ref that does not lead to an image of the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenRef {
    /// The path below `images/refs/`.
    pub name: String,
    /// What is wrong.
    pub problem: RefProblem,
}

/// A commit ref whose commit cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenCommit {
    /// The commit refs reaching it.
    pub refs: Vec<RefName>,
    /// The commit, if the ref leads to one.
    pub commit: Option<CommitId>,
    /// What is wrong, naming the object and the directory where it can.
    pub problem: String,
}

/// A stream ref whose stream cannot be used, or a commit ref whose history stream does not
/// keep its history: `cfsctl gc` would remove objects a ref needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenStream {
    /// The stream ref, below `streams/refs/`.
    pub stream_ref: String,
    /// The commit ref it is the history stream of, if it is one.
    pub commit_ref: Option<RefName>,
    /// What is wrong.
    pub problem: String,
}

/// What `repair` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Repaired {
    /// The corrupt objects removed.
    pub objects_removed: Vec<ObjectId>,
    /// The `images/` links removed because their object is gone.
    pub image_links_removed: Vec<ImageId>,
    /// The refs that reach a removed or incomplete image: each needs its tree committed
    /// again (or its objects pulled again).
    pub refs_needing_commit: Vec<RefName>,
    /// The commit refs whose history stream was written anew.
    pub streams_rewritten: Vec<RefName>,
}

/// What `fsck` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsckReport {
    /// Objects checked.
    pub objects_checked: u64,
    /// Their bytes.
    pub bytes_checked: u64,
    /// How many of them were checked by the kernel's fs-verity measurement.
    pub objects_with_verity: u64,
    /// Entries of `images/` checked.
    pub images_checked: u64,
    /// Refs checked.
    pub refs_checked: u64,
    /// Objects whose content does not match their name.
    pub corrupt_objects: Vec<CorruptObject>,
    /// Objects images need and the repository lacks.
    pub missing_objects: Vec<MissingObject>,
    /// Broken entries of `images/`.
    pub broken_images: Vec<BrokenImage>,
    /// Refs that lead nowhere.
    pub broken_refs: Vec<BrokenRef>,
    /// Commit refs checked.
    pub commit_refs_checked: u64,
    /// Commit refs whose commit, tree or image is broken.
    pub broken_commits: Vec<BrokenCommit>,
    /// Stream refs checked.
    pub stream_refs_checked: u64,
    /// Streams that cannot be used, and commit refs whose history stream does not keep
    /// their history.
    pub broken_streams: Vec<BrokenStream>,
    /// Names in `objects/` that are not objects, such as temporary files of an interrupted
    /// commit. Not an error: `gc` removes temporary files.
    pub stray_files: Vec<PathBuf>,
    /// Transactions that did not finish. Not an error: the next transaction or `gc`
    /// recovers from them.
    pub unfinished_transactions: Vec<UnfinishedTransaction>,
    /// Objects that do not match their name and were written after a transaction cut off
    /// by a system crash began: torn by the crash, not corrupted since. Not an error (no
    /// ref reaches them); the next writer removes them.
    pub torn_objects: Vec<ObjectId>,
    /// What repair did, when asked to.
    pub repaired: Option<Repaired>,
}

impl FsckReport {
    /// Whether nothing is wrong (stray temporary files and unfinished transactions are not
    /// wrong).
    pub fn is_clean(&self) -> bool {
        self.corrupt_objects.is_empty()
            && self.missing_objects.is_empty()
            && self.broken_images.is_empty()
            && self.broken_refs.is_empty()
            && self.broken_commits.is_empty()
            && self.broken_streams.is_empty()
    }

    /// Every ref affected by a problem found, each once, sorted.
    pub fn affected_refs(&self) -> Vec<RefName> {
        let corrupt = self.corrupt_objects.iter().flat_map(|c| &c.refs);
        let missing = self.missing_objects.iter().flat_map(|m| &m.refs);
        let images = self.broken_images.iter().flat_map(|b| &b.refs);
        let commits = self.broken_commits.iter().flat_map(|b| &b.refs);
        let streams = self
            .broken_streams
            .iter()
            .filter_map(|b| b.commit_ref.as_ref());
        let mut refs: Vec<RefName> = corrupt
            .chain(missing)
            .chain(images)
            .chain(commits)
            .chain(streams)
            .cloned()
            .chain(
                self.broken_refs
                    .iter()
                    .filter_map(|b| RefName::new(&b.name).ok()),
            )
            .collect();
        refs.sort();
        refs.dedup();
        refs
    }
}

/// The result of checking every object.
struct ObjectsChecked {
    present: HashSet<ObjectId>,
    corrupt: Vec<(ObjectId, Corruption)>,
}

/// The result of checking one entry of `images/`.
struct ImageCheck {
    name: String,
    image: Option<ImageId>,
    problem: Option<ImageProblem>,
    /// The objects it needs, sorted.
    needs: Vec<ObjectId>,
    /// Those of them the repository lacks.
    missing: Vec<ObjectId>,
}

/// What the images check learnt.
#[derive(Default)]
struct ImagesChecked {
    good: HashSet<ImageId>,
    needs: HashMap<ImageId, Vec<ObjectId>>,
    missing: HashMap<ObjectId, Vec<ImageId>>,
    broken: Vec<(String, Option<ImageId>, ImageProblem)>,
}

impl Repository {
    /// Checks the whole repository: every object's content against its name, every image
    /// (it parses and all the objects it needs exist), every ref and every commit ref; each
    /// problem names the images and refs it affects. With `options.repair`, corrupt objects
    /// and the links they leave dangling are removed and the refs needing a new commit are
    /// named. Problems found are in the report; an error means the check itself could not
    /// run.
    ///
    /// Takes the repository lock shared (exclusive to repair), so it never sees `gc` at work.
    pub fn fsck(
        &self,
        options: &FsckOptions,
        progress: &dyn Progress,
    ) -> Result<FsckReport, FsckError> {
        let _lock = RepoLock::take(self, options.repair, progress)?;
        let mut report = FsckReport::default();
        let objects = self.fsck_objects(&mut report, progress)?;
        let images = self.fsck_images(&objects.present, &mut report, progress)?;
        let refs_of = self.fsck_refs(&images.good, &mut report, progress)?;
        let unfinished = self.fsck_unfinished(options.repair)?;
        let torn_since = unfinished
            .iter()
            .filter(|u| u.how == Unfinished::SystemCrash)
            .map(|u| u.started)
            .min();
        report.unfinished_transactions = unfinished;
        self.name_affected(objects.corrupt, images, &refs_of, torn_since, &mut report)?;
        self.fsck_commits(&mut report, progress)?;
        self.fsck_streams(&mut report)?;
        if options.repair {
            report.repaired = Some(self.repair(&report)?);
        }
        drop(_lock);
        if let Some(repaired) = &mut report.repaired {
            // Written in a transaction, which takes the lock shared: after ours is gone.
            repaired.streams_rewritten = self.rewrite_streams(&report.broken_streams)?;
        }
        Ok(report)
    }

    /// Checks every stream ref (it leads to a stream that parses and whose objects are all
    /// here) and every commit ref's history stream (it keeps the ref's whole history).
    fn fsck_streams(&self, report: &mut FsckReport) -> Result<(), IoError> {
        let streams = self.open_layout(layout::STREAMS)?;
        let mut broken = Vec::new();
        for (stream_ref, entry) in self.stream_roots()? {
            report.stream_refs_checked += 1;
            let problem = match &streams {
                None => Some(format!(
                    "it names {entry}, and there is no streams/ directory"
                )),
                Some(streams) => self.check_stream(streams, &entry).err(),
            };
            if let Some(problem) = problem {
                broken.push(BrokenStream {
                    stream_ref,
                    commit_ref: None,
                    problem,
                });
            }
        }
        for (name, head) in self.commit_refs().map_err(|e| {
            IoError::new(
                Op::List,
                self.join(layout::COMMIT_REFS),
                std::io::Error::other(e.to_string()),
            )
        })? {
            let Some(head) = head else { continue };
            let stream_ref = format!("sealroot/{name}");
            let problem = match self.history_stream(&name) {
                Ok(None) => {
                    Some("it has no history stream: cfsctl gc would remove its objects".to_owned())
                }
                Err(e) => Some(e.to_string()),
                Ok(Some(s)) => {
                    let mut reach = Reach::default();
                    // Lenient: what cannot be read is reported by the commit checks.
                    let _ = self.reach(&head, false, &mut reach);
                    let kept = s.objects();
                    let lacking = reach
                        .objects
                        .iter()
                        .filter(|o| !kept.contains(o.digest()))
                        .count();
                    (lacking > 0).then(|| {
                        format!("its history stream lacks {lacking} objects of the ref's history: cfsctl gc would remove them")
                    })
                }
            };
            if let Some(problem) = problem {
                broken.retain(|b: &BrokenStream| b.stream_ref != stream_ref);
                broken.push(BrokenStream {
                    stream_ref,
                    commit_ref: Some(name),
                    problem,
                });
            }
        }
        report.broken_streams = broken;
        Ok(())
    }

    /// Whether the stream `entry` of `streams/` parses and has all its objects.
    fn check_stream(&self, streams: &std::os::fd::OwnedFd, entry: &str) -> Result<(), String> {
        let object = self
            .stream_object(streams, entry)
            .map_err(|e| e.to_string())?;
        let (objects, _) = self
            .stream_references_of(&object)
            .map_err(|e| e.to_string())?;
        let missing = objects
            .iter()
            .filter(|d| !self.has_object(&ObjectId::new(**d)).unwrap_or(false))
            .count();
        if missing > 0 {
            return Err(format!(
                "{missing} of the objects it names are not in the repository"
            ));
        }
        Ok(())
    }

    /// Writes anew the history streams of the commit refs in `broken` (fsck --repair).
    fn rewrite_streams(&self, broken: &[BrokenStream]) -> Result<Vec<RefName>, FsckError> {
        let names: Vec<&RefName> = broken
            .iter()
            .filter_map(|b| b.commit_ref.as_ref())
            .collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.transaction().map_err(|e| match e {
            crate::TransactionError::Io(io) => io,
            other => IoError::new(
                Op::Open,
                self.path(),
                std::io::Error::other(other.to_string()),
            ),
        })?;
        let mut done = Vec::new();
        for name in names {
            tx.rewrite_history_stream(name).map_err(|e| {
                IoError::new(
                    Op::Write,
                    self.join(layout::SEALROOT_STREAM_REFS).join(name.as_str()),
                    std::io::Error::other(e.to_string()),
                )
            })?;
            done.push(name.clone());
        }
        tx.finish().map_err(|e| match e {
            crate::TransactionError::Io(io) => io,
            other => IoError::new(
                Op::Sync,
                self.path(),
                std::io::Error::other(other.to_string()),
            ),
        })?;
        Ok(done)
    }

    /// Checks every object's content; lists stray names.
    fn fsck_objects(
        &self,
        report: &mut FsckReport,
        progress: &dyn Progress,
    ) -> Result<ObjectsChecked, IoError> {
        progress.phase(Phase::ListingObjects, Some(256), None);
        let (dirs, strays) = self.list_object_dirs()?;
        report.stray_files = strays;
        for d in &dirs {
            let sub = self.objects_path().join(ObjectDir::subdir_name(d.byte));
            report.stray_files.extend(
                d.temps
                    .iter()
                    .chain(&d.strays)
                    .map(|n| sub.join(n.to_string_lossy().as_ref())),
            );
        }
        let total: usize = dirs.iter().map(|d| d.ids.len()).sum();
        progress.phase(Phase::CheckingObjects, Some(total as u64), None);
        let checked: Vec<Result<Option<(ObjectId, crate::read::objects::Checked)>, IoError>> = dirs
            .par_iter()
            .flat_map_iter(|d| d.ids.iter().map(move |id| (d, id)))
            .map(
                |(d, id)| match self.check_object_in(&d.fd, &ObjectDir::name(id), id) {
                    Ok(c) => {
                        progress.advance(1, c.size);
                        Ok(Some((*id, c)))
                    }
                    // Removed meanwhile (by a concurrent recovery): not ours to judge.
                    Err(Errno::NOENT) => Ok(None),
                    Err(e) => Err(IoError::new(Op::Stat, self.object_path(id), e)),
                },
            )
            .collect();
        let mut out = ObjectsChecked {
            present: HashSet::with_capacity(total),
            corrupt: Vec::new(),
        };
        for r in checked {
            let Some((id, c)) = r? else { continue };
            out.present.insert(id);
            report.objects_checked += 1;
            report.bytes_checked += c.size;
            report.objects_with_verity += u64::from(c.by_kernel);
            if let Some(problem) = c.problem {
                out.corrupt.push((id, problem));
            }
        }
        out.corrupt.sort_by_key(|c| c.0);
        Ok(out)
    }

    /// Checks every entry of `images/`.
    fn fsck_images(
        &self,
        present: &HashSet<ObjectId>,
        report: &mut FsckReport,
        progress: &dyn Progress,
    ) -> Result<ImagesChecked, IoError> {
        let mut names = Vec::new();
        if let Some(images) = self.open_layout(layout::IMAGES)? {
            crate::fs::for_each(&images, |name, file_type| {
                if name != c"refs" {
                    names.push((name.to_string_lossy().into_owned(), file_type));
                }
            })
            .map_err(|e| IoError::new(Op::List, self.join(layout::IMAGES), e))?;
        }
        progress.phase(Phase::CheckingImages, Some(names.len() as u64), None);
        let results: Vec<Result<ImageCheck, IoError>> = names
            .par_iter()
            .map(|(name, file_type)| {
                let r = self.check_image_entry(name, *file_type, present);
                progress.advance(1, 0);
                r
            })
            .collect();
        let mut out = ImagesChecked::default();
        for r in results {
            let check = r?;
            report.images_checked += 1;
            if let Some(id) = check.image {
                if matches!(check.problem, None | Some(ImageProblem::BadLink(_))) {
                    out.good.insert(id);
                }
                for m in &check.missing {
                    out.missing.entry(*m).or_default().push(id);
                }
                out.needs.insert(id, check.needs);
            }
            if let Some(problem) = check.problem {
                out.broken.push((check.name, check.image, problem));
            }
        }
        Ok(out)
    }

    /// Checks one entry of `images/`.
    fn check_image_entry(
        &self,
        name: &str,
        file_type: rustix::fs::FileType,
        present: &HashSet<ObjectId>,
    ) -> Result<ImageCheck, IoError> {
        let mut check = ImageCheck {
            name: name.to_owned(),
            image: None,
            problem: None,
            needs: Vec::new(),
            missing: Vec::new(),
        };
        let id = is_lower_hex(name)
            .then(|| {
                ObjectId::from_hex(self.algorithm(), name)
                    .ok()
                    .map(ImageId::new)
            })
            .flatten();
        let Some(id) = id else {
            check.problem = Some(ImageProblem::BadName);
            return Ok(check);
        };
        check.image = Some(id);
        if file_type != rustix::fs::FileType::Symlink {
            check.problem = Some(ImageProblem::NotASymlink);
            return Ok(check);
        }
        if let ImageLink::BadLink(text) = self.image_link(&id)? {
            check.problem = Some(ImageProblem::BadLink(text));
        }
        // Objects stored after the listing (by a concurrent commit) are looked up again
        // rather than reported missing.
        let exists = |o: &ObjectId| -> Result<bool, IoError> {
            if present.contains(o) {
                return Ok(true);
            }
            self.has_object(o).map_err(|e| match e {
                crate::ObjectError::Io(io) => io,
                other => IoError::new(
                    Op::Stat,
                    self.object_path(o),
                    std::io::Error::other(other.to_string()),
                ),
            })
        };
        if !exists(id.object())? {
            check.problem = Some(ImageProblem::MissingObject);
            return Ok(check);
        }
        let tree = match self
            .read_image_bytes(&id)
            .map_err(|e| e.to_string())
            .and_then(|b| erofs::read(&b).map_err(|e| e.to_string()))
        {
            Ok(tree) => tree,
            Err(e) => {
                check.problem = Some(ImageProblem::Unparsable(e));
                return Ok(check);
            }
        };
        match tree_objects(self.algorithm(), &tree) {
            Ok(needs) => {
                for o in &needs {
                    if !exists(o)? {
                        check.missing.push(*o);
                    }
                }
                check.needs = needs;
            }
            Err(bad) => {
                check.problem = Some(ImageProblem::BadPayload {
                    file: path_of(&tree, bad.inode),
                    payload: bad.payload,
                })
            }
        }
        Ok(check)
    }

    /// Checks every image ref; returns the refs of each image.
    fn fsck_refs(
        &self,
        good_images: &HashSet<ImageId>,
        report: &mut FsckReport,
        progress: &dyn Progress,
    ) -> Result<HashMap<ImageId, Vec<RefName>>, IoError> {
        let raw = self.raw_refs(RefKind::Image)?;
        progress.phase(Phase::CheckingRefs, Some(raw.len() as u64), None);
        let mut refs_of: HashMap<ImageId, Vec<RefName>> = HashMap::new();
        for r in raw {
            report.refs_checked += 1;
            let image = r
                .target_hex(RefKind::Image)
                .and_then(|h| self.image_of_hex(h));
            let problem = match (RefName::new(&r.name), &r.link, image) {
                (Err(e), _, _) => Some(RefProblem::InvalidName(e.to_string())),
                (Ok(_), None, _) => Some(RefProblem::NotASymlink),
                (Ok(_), Some(link), None) => Some(RefProblem::BadTarget(link.clone())),
                (Ok(name), Some(_), Some(id)) => {
                    refs_of.entry(id).or_default().push(name);
                    // An image written after the listing (by a concurrent commit) is looked
                    // up again rather than reported.
                    let exists = good_images.contains(&id) || self.image_present(&id)?;
                    (!exists).then_some(RefProblem::ImageMissing(id))
                }
            };
            if let Some(problem) = problem {
                report.broken_refs.push(BrokenRef {
                    name: r.name,
                    problem,
                });
            }
            progress.advance(1, 0);
        }
        Ok(refs_of)
    }

    /// The transactions that did not finish (all of them under the exclusive lock).
    fn fsck_unfinished(&self, exclusive: bool) -> Result<Vec<UnfinishedTransaction>, IoError> {
        let Some(tmp) = self.open_layout(layout::TMP)? else {
            return Ok(Vec::new());
        };
        recovery::stale_markers(self, &tmp, exclusive)?
            .iter()
            .map(|m| m.describe(self, &tmp))
            .collect()
    }

    /// Fills in the corrupt and missing objects and the broken images of `report`, each
    /// with the images and refs it affects. Corrupt objects written since a crashed
    /// transaction began (`torn_since`) that nothing reaches are torn, not corrupt.
    fn name_affected(
        &self,
        corrupt: Vec<(ObjectId, Corruption)>,
        images: ImagesChecked,
        refs_of: &HashMap<ImageId, Vec<RefName>>,
        torn_since: Option<i64>,
        report: &mut FsckReport,
    ) -> Result<(), IoError> {
        let refs_for = |images: &[ImageId]| -> Vec<RefName> {
            let mut refs: Vec<RefName> = images
                .iter()
                .flat_map(|i| refs_of.get(i).into_iter().flatten().cloned())
                .collect();
            refs.sort();
            refs.dedup();
            refs
        };
        let commit_sets = if corrupt.is_empty() {
            Vec::new()
        } else {
            self.commit_reach_sets()?
        };
        for (object, problem) in corrupt {
            let mut affected: Vec<ImageId> = images
                .needs
                .iter()
                .filter(|(image, needs)| {
                    image.object() == &object || needs.binary_search(&object).is_ok()
                })
                .map(|(image, _)| *image)
                .collect();
            affected.sort();
            let mut refs = refs_for(&affected);
            refs.extend(
                commit_sets
                    .iter()
                    .filter(|(_, set)| set.contains(&object))
                    .map(|(name, _)| name.clone()),
            );
            refs.sort();
            refs.dedup();
            if refs.is_empty() && affected.is_empty() && self.is_torn(&object, torn_since)? {
                report.torn_objects.push(object);
                continue;
            }
            report.corrupt_objects.push(CorruptObject {
                object,
                problem,
                images: affected,
                refs,
            });
        }
        let mut missing: Vec<(ObjectId, Vec<ImageId>)> = images.missing.into_iter().collect();
        missing.sort();
        for (object, mut imgs) in missing {
            imgs.sort();
            let refs = refs_for(&imgs);
            report.missing_objects.push(MissingObject {
                object,
                images: imgs,
                refs,
            });
        }
        let mut broken = images.broken;
        broken.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, image, problem) in broken {
            let refs = image.map(|i| refs_for(&[i])).unwrap_or_default();
            report.broken_images.push(BrokenImage {
                name,
                image,
                problem,
                refs,
            });
        }
        Ok(())
    }

    /// Whether object `id` was written after `since` (a crashed transaction's start, less
    /// recovery's slack).
    fn is_torn(&self, id: &ObjectId, since: Option<i64>) -> Result<bool, IoError> {
        let Some(since) = since else { return Ok(false) };
        let Some(objects) = self.open_layout(layout::OBJECTS)? else {
            return Ok(false);
        };
        match rustix::fs::statat(
            &objects,
            id.object_path().as_str(),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => Ok(st.st_ctime >= since - recovery::CTIME_SLACK),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(IoError::new(Op::Stat, self.object_path(id), e)),
        }
    }

    /// Every commit ref with the set of objects it reaches (leniently: a damaged object is
    /// included and not followed).
    fn commit_reach_sets(&self) -> Result<Vec<(RefName, HashSet<ObjectId>)>, IoError> {
        let refs = self.commit_refs().map_err(|e| match e {
            crate::RefError::Io(io) => io,
            other => IoError::new(
                Op::List,
                self.join(layout::COMMIT_REFS),
                std::io::Error::other(other.to_string()),
            ),
        })?;
        Ok(refs
            .into_iter()
            .filter_map(|(name, id)| {
                let mut reach = Reach::default();
                // Lenient: only fails on I/O errors, and those only cost the naming.
                self.reach(&id?, false, &mut reach).ok()?;
                Some((name, reach.objects))
            })
            .collect())
    }

    /// Checks every commit ref: the commit and its ancestors present parse, and the head's
    /// tree is complete and derives the image it records.
    fn fsck_commits(
        &self,
        report: &mut FsckReport,
        progress: &dyn Progress,
    ) -> Result<(), IoError> {
        let raw = self.raw_refs(RefKind::Commit)?;
        progress.phase(Phase::CheckingRefs, Some(raw.len() as u64), None);
        for r in raw {
            report.commit_refs_checked += 1;
            let name = match RefName::new(&r.name) {
                Ok(n) => n,
                Err(e) => {
                    report.broken_commits.push(BrokenCommit {
                        refs: Vec::new(),
                        commit: None,
                        problem: format!("{}/{}: {e}", layout::COMMIT_REFS, r.name),
                    });
                    continue;
                }
            };
            let (commit, problem) = match self.resolve_commit_ref(&name) {
                Ok(id) => (Some(id), self.check_commit(&id).err()),
                Err(e) => (None, Some(e.to_string())),
            };
            if let Some(problem) = problem {
                report.broken_commits.push(BrokenCommit {
                    refs: vec![name],
                    commit,
                    problem,
                });
            }
            progress.advance(1, 0);
        }
        Ok(())
    }

    /// Whether commit `id` can be used: it parses, its tree derives the image it records, the
    /// image is here, and its history present parses.
    fn check_commit(&self, id: &CommitId) -> Result<(), String> {
        let c = self.read_commit(id).map_err(|e| e.to_string())?;
        self.derive_image(id, &c, None).map_err(|e| e.to_string())?;
        let image = ImageId::from_digest(c.image);
        if !self.image_present(&image).map_err(|e| e.to_string())? {
            return Err(crate::ImageError::NotFound(image).to_string());
        }
        self.log(id, usize::MAX).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Removes the corrupt objects of `report` and the links left dangling; names the refs
    /// that need a new commit. Runs under the exclusive lock.
    fn repair(&self, report: &FsckReport) -> Result<Repaired, IoError> {
        let mut repaired = Repaired::default();
        let objects = self.open_layout(layout::OBJECTS)?;
        for c in &report.corrupt_objects {
            let Some(objects) = &objects else { break };
            let rel = c.object.object_path();
            let dir = match crate::fs::open_dir(objects, &rel[..2]) {
                Ok(d) => d,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(IoError::new(Op::Open, self.object_path(&c.object), e)),
            };
            match rustix::fs::unlinkat(&dir, &rel[3..], rustix::fs::AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => repaired.objects_removed.push(c.object),
                Err(e) => return Err(IoError::new(Op::Remove, self.object_path(&c.object), e)),
            }
        }
        let before: HashSet<ImageId> = self.image_ids()?.into_iter().collect();
        recovery::remove_dangling_links(self)?;
        let after: HashSet<ImageId> = self.image_ids()?.into_iter().collect();
        repaired.image_links_removed = before.difference(&after).copied().collect();
        repaired.image_links_removed.sort();
        repaired.refs_needing_commit = report.affected_refs();
        self.syncfs()?;
        Ok(repaired)
    }
}
