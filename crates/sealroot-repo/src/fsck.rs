//! `fsck`: checks every object's content against its name, every image (it parses and has
//! all its objects) and every ref (it leads to an image), and says which refs each problem
//! affects. With `repair`, corrupt objects and the image links they leave dangling are
//! removed, and the refs that need a new commit are named.
//!
//! Objects are checked in parallel on rayon's thread pool: the kernel's fs-verity
//! measurement where the object has fs-verity (the kernel then guarantees every read),
//! else the digest recomputed from the content.

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use rayon::prelude::*;
use rustix::fs::{Advice, AtFlags, FileType};
use rustix::io::Errno;
use sealroot_format::erofs;
use sealroot_sys::fsverity::VerityError;

use crate::error::{FsckError, IoError, Operation as Op};
use crate::fs;
use crate::id::{is_lower_hex, ImageId, ObjectId, RefName};
use crate::images::{path_of, tree_objects};
use crate::lock::RepoLock;
use crate::progress::{Phase, Progress};
use crate::{Repository, IMAGES_DIR, OBJECTS_DIR, TMP_DIR};

/// Files at least this large are read with `POSIX_FADV_SEQUENTIAL` (a larger readahead).
const SEQUENTIAL_ADVICE_MIN: i64 = 1 << 20;

/// What `fsck` does besides checking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsckOptions {
    /// Remove corrupt objects and the image links left dangling (under the exclusive lock),
    /// and name the refs that need a new commit.
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

/// What is wrong with an object.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Corruption {
    /// Its digest (measured by the kernel, or recomputed) is not its name.
    DigestMismatch {
        /// The digest found, in hex.
        found: String,
    },
    /// The repository requires fs-verity, and the object does not have it.
    VerityMissing,
    /// Not a regular file.
    NotARegularFile,
    /// It could not be read (the kernel refuses reads of an fs-verity file whose data was
    /// corrupted on disk, with `EIO`).
    Unreadable(String),
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
    /// The refs that reach those images.
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
    /// The link's text does not name an image.
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
    pub commit: Option<crate::CommitId>,
    /// What is wrong, naming the object and the directory where it can.
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
    /// Names in `objects/` that are not objects, such as temporary files of an interrupted
    /// commit. Not an error: `gc` removes temporary files.
    pub stray_files: Vec<PathBuf>,
    /// Markers of transactions that did not finish (their process died). Not an error: the
    /// next transaction or `gc` recovers from them.
    pub interrupted_transactions: u64,
    /// What repair did, when asked to.
    pub repaired: Option<Repaired>,
}

impl FsckReport {
    /// Whether nothing is wrong (stray temporary files and interrupted transactions are not
    /// wrong).
    pub fn is_clean(&self) -> bool {
        self.corrupt_objects.is_empty()
            && self.missing_objects.is_empty()
            && self.broken_images.is_empty()
            && self.broken_refs.is_empty()
            && self.broken_commits.is_empty()
    }

    /// Every ref affected by a problem found, each once, sorted.
    pub fn affected_refs(&self) -> Vec<RefName> {
        let mut refs: Vec<RefName> = self
            .corrupt_objects
            .iter()
            .flat_map(|c| c.refs.iter().cloned())
            .chain(
                self.missing_objects
                    .iter()
                    .flat_map(|m| m.refs.iter().cloned()),
            )
            .chain(
                self.broken_images
                    .iter()
                    .flat_map(|b| b.refs.iter().cloned()),
            )
            .chain(
                self.broken_refs
                    .iter()
                    .filter_map(|b| RefName::new(&b.name).ok()),
            )
            .chain(
                self.broken_commits
                    .iter()
                    .flat_map(|b| b.refs.iter().cloned()),
            )
            .collect();
        refs.sort();
        refs.dedup();
        refs
    }
}

/// Checks object `id`, file `name` in directory `dir` of `objects/`: `None` if it is good.
/// Also returns its size.
pub(crate) fn verify_object(
    repo: &Repository,
    dir: &OwnedFd,
    name: &CStr,
    id: &ObjectId,
) -> Result<Option<Corruption>, Errno> {
    verify_object_sized(repo, dir, name, id).map(|(c, _, _)| c)
}

/// [`verify_object`], also returning the size and whether the kernel measured it.
fn verify_object_sized(
    repo: &Repository,
    dir: &OwnedFd,
    name: &CStr,
    id: &ObjectId,
) -> Result<(Option<Corruption>, u64, bool), Errno> {
    let fd = match crate::open_file(dir, name) {
        Ok(fd) => fd,
        Err(Errno::LOOP) => return Ok((Some(Corruption::NotARegularFile), 0, false)),
        Err(Errno::NOENT) => return Err(Errno::NOENT),
        Err(e) => return Ok((Some(Corruption::Unreadable(e.to_string())), 0, false)),
    };
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok((Some(Corruption::NotARegularFile), 0, false));
    }
    let size = st.st_size as u64;
    if repo.verity_supported() || repo.config().require_verity {
        match crate::objects::measure(fd.as_fd()) {
            Ok(Some(d)) if d == *id.digest() => return Ok((None, size, true)),
            Ok(Some(d)) => {
                return Ok((
                    Some(Corruption::DigestMismatch {
                        found: d.to_string(),
                    }),
                    size,
                    true,
                ))
            }
            Ok(None) => {
                return Ok((
                    Some(Corruption::DigestMismatch {
                        found: "(another algorithm)".into(),
                    }),
                    size,
                    true,
                ))
            }
            Err(VerityError::NotEnabled | VerityError::NotSupported(_)) => {}
            Err(e) => return Ok((Some(Corruption::Unreadable(e.to_string())), size, false)),
        }
    }
    if repo.config().require_verity {
        return Ok((Some(Corruption::VerityMissing), size, false));
    }
    if st.st_size >= SEQUENTIAL_ADVICE_MIN {
        let _ = rustix::fs::fadvise(&fd, 0, None, Advice::Sequential);
    }
    match fs::hash_fd(&repo.verity_params(), fd.as_fd()) {
        Ok((d, _)) if d == *id.digest() => Ok((None, size, false)),
        Ok((d, _)) => Ok((
            Some(Corruption::DigestMismatch {
                found: d.to_string(),
            }),
            size,
            false,
        )),
        Err(e) => Ok((Some(Corruption::Unreadable(e.to_string())), size, false)),
    }
}

/// One directory `objects/XX`: its descriptor, its objects, its stray names.
type DirListing = (Option<OwnedFd>, Vec<Listed>, Vec<PathBuf>);

/// The check of one object.
struct Checked {
    id: ObjectId,
    size: u64,
    /// Measured by the kernel.
    kernel: bool,
    problem: Option<Corruption>,
}

/// One object found in `objects/`.
struct Listed {
    byte: u8,
    name: std::ffi::CString,
    id: ObjectId,
}

impl Repository {
    /// Checks the whole repository: every object's content against its name (the kernel's
    /// fs-verity measurement where the object has fs-verity, else the digest recomputed, in
    /// parallel), every image (it parses and all the objects it needs exist) and every ref
    /// (it leads to an image); each problem names the images and refs it affects. With
    /// `options.repair`, corrupt objects and the image links they leave dangling are removed
    /// and the refs needing a new commit are named. Problems found are in the report; an
    /// error means the check itself could not run.
    ///
    /// Takes the repository lock shared (exclusive to repair), so it never sees `gc` at work.
    pub fn fsck(
        &self,
        options: &FsckOptions,
        progress: &dyn Progress,
    ) -> Result<FsckReport, FsckError> {
        let _lock = RepoLock::take(self, options.repair, progress)?;
        let mut report = FsckReport::default();
        let objects_path = self.objects_path();

        // Objects.
        progress.phase(Phase::ListingObjects, Some(256), None);
        let objects_dir = match fs::open_dir(self.dir(), OBJECTS_DIR) {
            Ok(fd) => Some(fd),
            Err(Errno::NOENT) => None,
            Err(e) => return Err(IoError::new(Op::Open, &objects_path, e).into()),
        };
        let mut subdirs: Vec<Option<OwnedFd>> = Vec::with_capacity(256);
        let mut listed: Vec<Listed> = Vec::new();
        if let Some(objects_dir) = &objects_dir {
            for entry in
                fs::list(objects_dir).map_err(|e| IoError::new(Op::List, &objects_path, e))?
            {
                let name = entry.name.to_string_lossy();
                let is_subdir = name.len() == 2
                    && is_lower_hex(&name)
                    && entry.file_type == FileType::Directory;
                if !is_subdir {
                    report.stray_files.push(objects_path.join(name.as_ref()));
                }
            }
            let per_dir: Vec<Result<DirListing, IoError>> = (0u16..256)
                .into_par_iter()
                .map(|byte| {
                    let byte = byte as u8;
                    let sub = format!("{byte:02x}");
                    let sub_path = objects_path.join(&sub);
                    let dir = match fs::open_dir(objects_dir, &sub) {
                        Ok(fd) => fd,
                        Err(Errno::NOENT) => return Ok((None, Vec::new(), Vec::new())),
                        Err(e) => return Err(IoError::new(Op::Open, &sub_path, e)),
                    };
                    let mut found = Vec::new();
                    let mut strays = Vec::new();
                    for entry in fs::list(&dir).map_err(|e| IoError::new(Op::List, &sub_path, e))? {
                        match ObjectId::from_dir_entry(
                            self.algorithm(),
                            byte,
                            entry.name.to_bytes(),
                        ) {
                            Some(id) => found.push(Listed {
                                byte,
                                name: entry.name,
                                id,
                            }),
                            None => {
                                strays.push(sub_path.join(entry.name.to_string_lossy().as_ref()))
                            }
                        }
                    }
                    progress.advance(1, 0);
                    Ok((Some(dir), found, strays))
                })
                .collect();
            for r in per_dir {
                let (dir, found, strays) = r?;
                subdirs.push(dir);
                listed.extend(found);
                report.stray_files.extend(strays);
            }
        }
        report.stray_files.sort();

        progress.phase(Phase::CheckingObjects, Some(listed.len() as u64), None);
        let checked: Vec<Result<Option<Checked>, IoError>> = listed
            .par_iter()
            .map(|l| {
                let Some(dir) = &subdirs[usize::from(l.byte)] else {
                    return Ok(None);
                };
                match verify_object_sized(self, dir, &l.name, &l.id) {
                    Ok((problem, size, kernel)) => {
                        progress.advance(1, size);
                        Ok(Some(Checked {
                            id: l.id,
                            size,
                            kernel,
                            problem,
                        }))
                    }
                    // Removed meanwhile (by a concurrent repair or recovery): not ours to judge.
                    Err(Errno::NOENT) => Ok(None),
                    Err(e) => Err(IoError::new(Op::Stat, self.object_path(&l.id), e)),
                }
            })
            .collect();
        let mut present: HashSet<ObjectId> = HashSet::with_capacity(listed.len());
        let mut corrupt: Vec<(ObjectId, Corruption)> = Vec::new();
        for r in checked {
            let Some(Checked {
                id,
                size,
                kernel,
                problem,
            }) = r?
            else {
                continue;
            };
            present.insert(id);
            report.objects_checked += 1;
            report.bytes_checked += size;
            report.objects_with_verity += u64::from(kernel);
            if let Some(problem) = problem {
                corrupt.push((id, problem));
            }
        }
        corrupt.sort_by_key(|c| c.0);

        // Images.
        let images_path = self.join(IMAGES_DIR);
        let entries = fs::list_at(self.dir(), IMAGES_DIR)
            .map_err(|e| IoError::new(Op::List, &images_path, e))?;
        let entries: Vec<fs::Entry> = entries
            .into_iter()
            .filter(|e| e.name.as_c_str() != c"refs")
            .collect();
        progress.phase(Phase::CheckingImages, Some(entries.len() as u64), None);
        let results: Vec<Result<ImageCheck, IoError>> = entries
            .par_iter()
            .map(|entry| {
                let r = self.check_image_entry(entry, &present);
                progress.advance(1, 0);
                r
            })
            .collect();
        let mut good_images: HashSet<ImageId> = HashSet::new();
        let mut image_needs: HashMap<ImageId, Vec<ObjectId>> = HashMap::new();
        let mut missing: HashMap<ObjectId, Vec<ImageId>> = HashMap::new();
        let mut broken_images = Vec::new();
        for r in results {
            let check = r?;
            report.images_checked += 1;
            if let Some(id) = check.image {
                if check.problem.is_none()
                    || matches!(check.problem, Some(ImageProblem::BadLink(_)))
                {
                    good_images.insert(id);
                }
                for m in &check.missing {
                    missing.entry(*m).or_default().push(id);
                }
                image_needs.insert(id, check.needs);
            }
            if let Some(problem) = check.problem {
                broken_images.push((check.name, check.image, problem));
            }
        }

        // Refs.
        let raw = self.raw_refs()?;
        progress.phase(Phase::CheckingRefs, Some(raw.len() as u64), None);
        let mut refs_of: HashMap<ImageId, Vec<RefName>> = HashMap::new();
        for r in raw {
            report.refs_checked += 1;
            let problem = match (RefName::new(&r.name), &r.link) {
                (Err(e), _) => Some(RefProblem::InvalidName(e.to_string())),
                (Ok(_), None) => Some(RefProblem::NotASymlink),
                (Ok(name), Some(link)) => match self.parse_ref_target(link) {
                    None => Some(RefProblem::BadTarget(link.clone())),
                    Some(id) => {
                        refs_of.entry(id).or_default().push(name);
                        // An image written after the listing (by a concurrent commit) is
                        // looked up again rather than reported.
                        let exists = good_images.contains(&id) || self.image_present(&id)?;
                        (!exists).then_some(RefProblem::ImageMissing(id))
                    }
                },
            };
            if let Some(problem) = problem {
                report.broken_refs.push(BrokenRef {
                    name: r.name,
                    problem,
                });
            }
            progress.advance(1, 0);
        }
        let refs_for = |images: &[ImageId]| -> Vec<RefName> {
            let mut refs: Vec<RefName> = images
                .iter()
                .flat_map(|i| refs_of.get(i).into_iter().flatten().cloned())
                .collect();
            refs.sort();
            refs.dedup();
            refs
        };

        // The commit refs each corrupt object affects (their commits, trees, files, images).
        let commit_sets: Vec<(RefName, HashSet<ObjectId>)> = if corrupt.is_empty() {
            Vec::new()
        } else {
            self.commit_refs()
                .map_err(|e| match e {
                    crate::RefError::Io(io) => io,
                    other => IoError::new(
                        Op::List,
                        self.join(crate::commits::COMMIT_REFS_DIR),
                        std::io::Error::other(other.to_string()),
                    ),
                })?
                .into_iter()
                .filter_map(|(name, id)| {
                    let mut reach = crate::commits::Reach::default();
                    // Lenient: only fails on I/O errors, and those only cost the naming.
                    self.reach(&id?, false, &mut reach).ok()?;
                    Some((name, reach.objects))
                })
                .collect()
        };
        for (object, problem) in corrupt {
            let mut images: Vec<ImageId> = image_needs
                .iter()
                .filter(|(image, needs)| {
                    image.object() == &object || needs.binary_search(&object).is_ok()
                })
                .map(|(image, _)| *image)
                .collect();
            images.sort();
            let mut refs = refs_for(&images);
            refs.extend(
                commit_sets
                    .iter()
                    .filter(|(_, set)| set.contains(&object))
                    .map(|(name, _)| name.clone()),
            );
            refs.sort();
            refs.dedup();
            report.corrupt_objects.push(CorruptObject {
                object,
                problem,
                images,
                refs,
            });
        }
        let mut missing: Vec<(ObjectId, Vec<ImageId>)> = missing.into_iter().collect();
        missing.sort();
        for (object, mut images) in missing {
            images.sort();
            let refs = refs_for(&images);
            report.missing_objects.push(MissingObject {
                object,
                images,
                refs,
            });
        }
        broken_images.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, image, problem) in broken_images {
            let refs = image.map(|i| refs_for(&[i])).unwrap_or_default();
            report.broken_images.push(BrokenImage {
                name,
                image,
                problem,
                refs,
            });
        }

        self.check_commits(&mut report, progress)?;

        match fs::open_dir(self.dir(), TMP_DIR) {
            Ok(tmp) => {
                report.interrupted_transactions =
                    crate::transaction::stale_markers(self, &tmp, options.repair)?.len() as u64;
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(IoError::new(Op::Open, self.join(TMP_DIR), e).into()),
        }

        if options.repair {
            report.repaired = Some(self.repair(&report)?);
        }
        Ok(report)
    }

    /// Checks every commit ref: the commit and its ancestors present parse, and the head's
    /// tree is complete and derives the image it records.
    fn check_commits(
        &self,
        report: &mut FsckReport,
        progress: &dyn Progress,
    ) -> Result<(), IoError> {
        let raw = self.raw_refs_in(crate::commits::COMMIT_REFS_DIR)?;
        progress.phase(Phase::CheckingRefs, Some(raw.len() as u64), None);
        for r in raw {
            report.commit_refs_checked += 1;
            let name = match RefName::new(&r.name) {
                Ok(n) => n,
                Err(e) => {
                    report.broken_commits.push(BrokenCommit {
                        refs: Vec::new(),
                        commit: None,
                        problem: format!("commits/refs/{}: {e}", r.name),
                    });
                    continue;
                }
            };
            let id = match self.resolve_commit_ref(&name) {
                Ok(id) => id,
                Err(e) => {
                    report.broken_commits.push(BrokenCommit {
                        refs: vec![name],
                        commit: None,
                        problem: e.to_string(),
                    });
                    continue;
                }
            };
            let problem = self
                .read_commit(&id)
                .and_then(|c| self.derive_image(&id, &c, None).map(|_| c))
                .and_then(|c| {
                    let image = ImageId::sha256(c.image);
                    if self.image_present(&image)? {
                        Ok(())
                    } else {
                        Err(crate::CommitError::Image(crate::ImageError::NotFound(
                            image,
                        )))
                    }
                })
                .and_then(|()| self.log(&id, usize::MAX).map(|_| ()))
                .err();
            if let Some(e) = problem {
                report.broken_commits.push(BrokenCommit {
                    refs: vec![name],
                    commit: Some(id),
                    problem: e.to_string(),
                });
            }
            progress.advance(1, 0);
        }
        Ok(())
    }

    /// Checks one entry of `images/`.
    fn check_image_entry(
        &self,
        entry: &fs::Entry,
        present: &HashSet<ObjectId>,
    ) -> Result<ImageCheck, IoError> {
        let name = entry.name.to_string_lossy().into_owned();
        let mut check = ImageCheck {
            name: name.clone(),
            image: None,
            problem: None,
            needs: Vec::new(),
            missing: Vec::new(),
        };
        let id = if is_lower_hex(&name) {
            ObjectId::from_hex(self.algorithm(), &name)
                .ok()
                .map(ImageId::new)
        } else {
            None
        };
        let Some(id) = id else {
            check.problem = Some(ImageProblem::BadName);
            return Ok(check);
        };
        check.image = Some(id);
        if entry.file_type != FileType::Symlink {
            check.problem = Some(ImageProblem::NotASymlink);
            return Ok(check);
        }
        let rel = format!("{IMAGES_DIR}/{name}");
        let link = rustix::fs::readlinkat(self.dir(), rel.as_str(), Vec::new())
            .map_err(|e| IoError::new(Op::ReadLink, self.join(&rel), e))?;
        let expected = format!("../{OBJECTS_DIR}/{}", id.object().object_path());
        if link.as_bytes() != expected.as_bytes() {
            check.problem = Some(ImageProblem::BadLink(link.to_string_lossy().into_owned()));
        }
        // Objects stored after the listing (by a concurrent commit) are looked up again
        // rather than reported missing.
        let exists = |o: &ObjectId| -> Result<bool, IoError> {
            if present.contains(o) {
                return Ok(true);
            }
            let rel = format!("{OBJECTS_DIR}/{}", o.object_path());
            match rustix::fs::statat(self.dir(), rel.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => Ok(true),
                Err(Errno::NOENT) => Ok(false),
                Err(e) => Err(IoError::new(Op::Stat, self.join(&rel), e)),
            }
        };
        if !exists(id.object())? {
            check.problem = Some(ImageProblem::MissingObject);
            return Ok(check);
        }
        let bytes = match self.read_image_bytes(&id) {
            Ok(bytes) => bytes,
            Err(e) => {
                check.problem = Some(ImageProblem::Unparsable(e.to_string()));
                return Ok(check);
            }
        };
        let tree = match erofs::read(&bytes) {
            Ok(tree) => tree,
            Err(e) => {
                check.problem = Some(ImageProblem::Unparsable(e.to_string()));
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

    /// Removes the corrupt objects of `report` and the image links left dangling; names the
    /// refs that need a new commit. Runs under the exclusive lock.
    fn repair(&self, report: &FsckReport) -> Result<Repaired, IoError> {
        let mut repaired = Repaired::default();
        for c in &report.corrupt_objects {
            let rel = format!("{OBJECTS_DIR}/{}", c.object.object_path());
            match rustix::fs::unlinkat(self.dir(), rel.as_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => repaired.objects_removed.push(c.object),
                Err(e) => return Err(IoError::new(Op::Remove, self.join(&rel), e)),
            }
        }
        let before: HashSet<ImageId> = self.image_ids()?.into_iter().collect();
        crate::transaction::remove_dangling_image_links(self)?;
        let after: HashSet<ImageId> = self.image_ids()?.into_iter().collect();
        repaired.image_links_removed = before.difference(&after).copied().collect();
        repaired.image_links_removed.sort();
        repaired.refs_needing_commit = report.affected_refs();
        self.syncfs()?;
        Ok(repaired)
    }
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
