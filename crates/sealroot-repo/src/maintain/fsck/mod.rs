//! `fsck`: checks every object's content against its name, every image (it parses and has
//! all its objects), every ref (it leads to an image), every commit ref (its history's
//! commits and tree objects parse, every object they name is here, its history stream keeps
//! them all) and every stream ref, and says which refs each problem affects. Transactions
//! that did not finish are reported as such, not as corruption: their objects are complete
//! (process died) or are checked by the next writer (system crash). With `repair`, corrupt
//! objects and the links they leave dangling are removed, history streams are written anew,
//! and the refs that need a new commit are named.
//!
//! The steps, each in its own module: [`objects`] (every object's content, in parallel: the
//! kernel's fs-verity measurement where it has fs-verity, else the digest recomputed),
//! [`commits`] (each commit ref's history, one at a time, so that only one history's set of
//! objects is in memory), [`images`] (images no commit reaches are parsed; a commit's image
//! is its tree's, whose objects the commit check covered), [`repair`].
//!
//! Memory stays small: the listing of `objects/` (sorted, searched, no second set), one
//! history at a time, and an image only where one must be parsed.

mod commits;
mod images;
mod objects;
mod repair;

use std::path::PathBuf;

use crate::error::FsckError;
use crate::id::{ImageId, ObjectId, RefName};
use crate::progress::Progress;
use crate::read::commits::CommitId;
use crate::read::objects::Corruption;
use crate::write::lock::RepoLock;
use crate::write::recovery::Unfinished;
pub use crate::write::recovery::UnfinishedTransaction;
use crate::Repository;

/// What `fsck` does besides checking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsckOptions {
    /// Remove corrupt objects and the links left dangling (under the exclusive lock), write
    /// missing or incomplete history streams anew, and name the refs that need a new commit.
    pub repair: bool,
    /// Also re-create the image of each commit ref's head from its tree objects and compare
    /// it with the digest the commit records (what `verify` does; it holds the whole tree
    /// in memory). Without it, a commit's tree objects and image are checked by content
    /// and for presence, which finds every corruption and loss.
    pub derive: bool,
}

impl FsckOptions {
    /// Checking only.
    pub const fn check() -> Self {
        FsckOptions {
            repair: false,
            derive: false,
        }
    }

    /// Checking and repairing.
    pub const fn repair() -> Self {
        FsckOptions {
            repair: true,
            derive: false,
        }
    }

    /// These options, re-creating each head's image too.
    pub const fn with_derive(self) -> Self {
        FsckOptions {
            derive: true,
            ..self
        }
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

/// An object that an image or a commit's history needs and the repository lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingObject {
    /// The object.
    pub object: ObjectId,
    /// The images that need it.
    pub images: Vec<ImageId>,
    /// The refs that reach those images, and the commit refs whose history needs it.
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
        self.refs_affected(true)
    }

    /// The refs with a problem; with `streams` false, not those whose only problem is their
    /// history stream (repair writes those anew).
    pub(crate) fn refs_affected(&self, streams: bool) -> Vec<RefName> {
        let corrupt = self.corrupt_objects.iter().flat_map(|c| &c.refs);
        let missing = self.missing_objects.iter().flat_map(|m| &m.refs);
        let images = self.broken_images.iter().flat_map(|b| &b.refs);
        let commits = self.broken_commits.iter().flat_map(|b| &b.refs);
        let streams = self
            .broken_streams
            .iter()
            .filter(|_| streams)
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

impl Repository {
    /// Checks the whole repository: every object's content against its name, every commit
    /// ref's history and stream, every image and every ref; each problem names the images
    /// and refs it affects. With `options.repair`, corrupt objects and the links they leave
    /// dangling are removed, history streams are written anew, and the refs needing a new
    /// commit are named. Problems found are in the report; an error means the check itself
    /// could not run.
    ///
    /// Takes the repository lock shared (exclusive to repair), so it never sees `gc` at work.
    pub fn fsck(
        &self,
        options: &FsckOptions,
        progress: &dyn Progress,
    ) -> Result<FsckReport, FsckError> {
        let lock = RepoLock::take(self, options.repair, progress)?;
        let mut report = FsckReport::default();
        let present = self.fsck_objects(&mut report, progress)?;
        let commits = self.fsck_commits(&present, options.derive, &mut report, progress)?;
        let images = self.fsck_images(&present, &commits, &mut report, progress)?;
        let refs_of = self.fsck_image_refs(&images, &mut report, progress)?;
        report.unfinished_transactions = self.fsck_unfinished(options.repair)?;
        let torn_since = report
            .unfinished_transactions
            .iter()
            .filter(|u| u.how == Unfinished::SystemCrash)
            .map(|u| u.started)
            .min();
        self.name_affected(&present, commits, images, &refs_of, torn_since, &mut report)?;
        self.fsck_stream_refs(&present, &mut report)?;
        if options.repair {
            report.repaired = Some(self.repair(&report)?);
        }
        drop(lock);
        if let Some(repaired) = &mut report.repaired {
            // Written in a transaction, which takes the lock shared: after ours is gone.
            repaired.streams_rewritten = self.rewrite_streams(&report.broken_streams)?;
        }
        Ok(report)
    }
}
