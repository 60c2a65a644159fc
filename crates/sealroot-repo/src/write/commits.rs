//! Writing commits: a tree stored as dirtree and dirmeta objects, its image derived from
//! those objects, the commit object, `commits/HEX`, and commit refs moved by
//! compare-and-swap.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rayon::prelude::*;
use rustix::io::Errno;
use sealroot_format::erofs::{self, WriteOptions};
use sealroot_format::objects::{self, assemble, Commit, ObjectKind};
use sealroot_format::Tree;
use sealroot_verity::AnyDigest;

use super::refs::{held, Expect};
use super::Transaction;
use crate::error::{IoError, ObjectError, Operation as Op, RefError, WriteImageError};
use crate::id::{ImageId, ObjectId, RefName};
use crate::layout::{self, RefKind};
use crate::read::commits::{CommitError, CommitId};
use crate::repository::LayoutDir;

/// Why a commit could not be written or its ref moved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteCommitError {
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Storing an object failed.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// Writing the image failed.
    #[error(transparent)]
    Image(#[from] WriteImageError),
    /// Reading a commit (the parent, the one to move a ref to) failed.
    #[error(transparent)]
    Read(#[from] CommitError),
    /// A ref could not be read or set.
    #[error(transparent)]
    Ref(#[from] RefError),
    /// The tree cannot be stored as objects.
    #[error("the tree cannot be committed: {0}")]
    Split(#[from] objects::SplitError),
    /// The tree cannot be written as an image.
    #[error("the tree cannot be written as a composefs image: {0}")]
    Write(#[from] erofs::WriteError),
    /// The tree objects just made do not assemble back into a tree.
    #[error("the tree objects of the new commit do not assemble: {0}")]
    Assemble(#[source] Box<objects::AssembleError>),
    /// The parent named does not exist.
    #[error("parent {0} is not in the repository")]
    ParentNotFound(CommitId),
    /// A metadata key that is not allowed.
    #[error(transparent)]
    MetaKey(#[from] objects::MetaKeyError),
    /// The ref moved while the commit was being made, and the commit was not to be
    /// re-parented.
    #[error(
        "{name:?} moved while the commit was made: it was {expected}, it is now {found}; \
             nothing was changed (commit again on top of it)"
    )]
    RefMoved {
        /// The ref.
        name: RefName,
        /// What it held when the commit started.
        expected: String,
        /// What it holds now.
        found: String,
    },
    /// The image re-created from the tree is not the one the commit records.
    #[error(
        "commit {commit}: the image derived from its tree has digest {derived}, \
         but the commit records {recorded}: the tree objects or the commit were altered"
    )]
    ImageMismatch {
        /// The commit.
        commit: CommitId,
        /// What the commit says (boxed, as the next: the error stays small).
        recorded: Box<AnyDigest>,
        /// What the tree gives.
        derived: Box<AnyDigest>,
    },
    /// The current signature file could not be merged with the new signatures.
    #[error("commit {commit}: the signature file cannot be updated: {source}")]
    Signatures {
        /// The commit.
        commit: CommitId,
        /// Why (the merge's own error).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A kernel built-in signature was asked for and the commit has none.
    #[error(
        "commit {0} has no kernel built-in signature for its image (sign it with an fs-verity key)"
    )]
    NoImageSignature(CommitId),
}

/// What to say in a new commit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitOptions {
    /// The commit it follows.
    pub parent: Option<CommitId>,
    /// Seconds since the epoch (the caller decides: `SOURCE_DATE_EPOCH` or now).
    pub timestamp: i64,
    /// A version string.
    pub version: Option<String>,
    /// Free-form metadata.
    pub metadata: BTreeMap<String, String>,
    /// One line saying what it is.
    pub subject: String,
    /// More text.
    pub body: String,
    /// Which composefs format versions the image may use (default: 0 to 1, the lowest the
    /// tree allows, as `mkcomposefs`).
    pub image: WriteOptions,
}

/// What a new commit made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCommit {
    /// The commit.
    pub id: CommitId,
    /// What it says.
    pub commit: Commit,
    /// Its image.
    pub image: ImageId,
    /// Tree objects (dirtree and dirmeta) the tree has.
    pub tree_objects: usize,
    /// Of those, how many were new.
    pub tree_objects_added: usize,
    /// Every object the commit needs besides its own (tree objects, file objects, image):
    /// what its ref's history stream lists for it.
    objects: Arc<BTreeSet<AnyDigest>>,
}

/// What to do when a commit ref moved between the start of a commit and its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRefMoved {
    /// Refuse ([`WriteCommitError::RefMoved`]): for a commit whose parent was given.
    Refuse,
    /// Write the commit again with the ref's new head as its parent, and move the ref to
    /// that: for a commit whose parent was taken from the ref, so that every commit that
    /// succeeds is in the ref's history.
    Reparent,
}

impl Transaction<'_> {
    /// Stores `tree` as dirtree and dirmeta objects (those not present yet), writes the
    /// image derived from those objects, and writes a commit recording it; every id is of the
    /// repository's algorithm, and so must the tree's file digests be. The file objects
    /// must be in the repository already (build the tree into this transaction's
    /// [`object_store`](Transaction::object_store): then they are not looked up again). Move
    /// a ref to it with [`Transaction::commit_to_ref`] or [`Transaction::set_commit_ref`].
    pub fn write_commit(
        &self,
        tree: Tree,
        options: &CommitOptions,
    ) -> Result<NewCommit, WriteCommitError> {
        let repo = self.repo;
        let algorithm = repo.algorithm();
        for key in options.metadata.keys() {
            Commit::check_meta_key(key)?;
        }
        let parent = match &options.parent {
            Some(p) if !repo.has_commit(p)? => return Err(WriteCommitError::ParentNotFound(*p)),
            Some(p) => Some(repo.read_commit(p)?),
            None => None,
        };
        let split = objects::split(&tree, algorithm)?;
        let format = erofs::version_for(&tree, &options.image)?;
        // Only the objects go on: one tree in memory at a time.
        drop(tree);
        let added = split
            .objects
            .par_iter()
            .map(|(_, id, bytes)| self.ensure_known_object(id, bytes))
            .collect::<Result<Vec<bool>, WriteCommitError>>()?
            .into_iter()
            .filter(|&a| a)
            .count();
        let image = match self.unchanged_image(parent.as_ref(), &split, format)? {
            Some(image) => image,
            None => self.derive_new_image(&split, format)?,
        };
        let commit = Commit {
            tree: split.tree,
            dirmeta: split.dirmeta,
            parent: options.parent.map(|p| p.0),
            image: *image.digest(),
            image_format: format,
            timestamp: options.timestamp,
            version: options.version.clone(),
            metadata: options.metadata.clone(),
            subject: options.subject.clone(),
            body: options.body.clone(),
        };
        let id = self.write_commit_object(&commit)?;
        let mut objects: BTreeSet<AnyDigest> = split
            .objects
            .iter()
            .map(|(_, d, _)| *d)
            .chain(split.files.iter().copied())
            .collect();
        objects.insert(*image.object().digest());
        Ok(NewCommit {
            id,
            commit,
            image,
            tree_objects: split.objects.len(),
            tree_objects_added: added,
            objects: Arc::new(objects),
        })
    }

    /// The parent's image, if the new tree is the parent's (same root objects and image
    /// format) and that image is here: it was derived from these very objects when the
    /// parent was made, so it need not be derived again (an unchanged tree committed again).
    fn unchanged_image(
        &self,
        parent: Option<&Commit>,
        split: &objects::Split,
        format: u32,
    ) -> Result<Option<ImageId>, WriteCommitError> {
        let Some(p) = parent else { return Ok(None) };
        if p.tree != split.tree || p.dirmeta != split.dirmeta || p.image_format != format {
            return Ok(None);
        }
        let image = ImageId::from_digest(p.image);
        Ok(self.repo.image_present(&image)?.then_some(image))
    }

    /// Assembles a tree back from the objects `split` made and writes its image: the image
    /// is derived from the objects, not from the tree given, so it is what a device
    /// re-creates from the same objects.
    fn derive_new_image(
        &self,
        split: &objects::Split,
        format: u32,
    ) -> Result<ImageId, WriteCommitError> {
        let assembled = {
            let by_id: HashMap<&AnyDigest, &Vec<u8>> =
                split.objects.iter().map(|(_, id, b)| (id, b)).collect();
            let mut fetch = |_: ObjectKind, id: &AnyDigest| {
                by_id
                    .get(id)
                    .map(|b| (*b).clone())
                    .ok_or_else(|| "not produced by split".into())
            };
            assemble(&split.tree, &split.dirmeta, &mut fetch)
                .map_err(|e| WriteCommitError::Assemble(Box::new(e)))?
        };
        Ok(self.write_image(
            &assembled,
            &WriteOptions {
                min_version: format,
                max_version: format,
            },
        )?)
    }

    /// Stores the commit object of `commit` and links it in `commits/`.
    fn write_commit_object(&self, commit: &Commit) -> Result<CommitId, WriteCommitError> {
        let bytes = commit.encode();
        let id = CommitId(objects::object_id(&bytes, self.repo.algorithm()));
        self.ensure_known_object(&id.0, &bytes)?;
        self.link_commit(&id)?;
        Ok(id)
    }

    /// Stores `bytes`, whose digest is `id`, unless the object exists; returns whether it
    /// was new.
    fn ensure_known_object(&self, id: &AnyDigest, bytes: &[u8]) -> Result<bool, WriteCommitError> {
        if self.store.is_known(id) || self.repo.has_object(&ObjectId::new(*id))? {
            return Ok(false);
        }
        let stored = self.ensure_object(bytes)?;
        debug_assert_eq!(stored.digest(), id);
        Ok(true)
    }

    /// Links `commits/HEX` to the commit's object.
    fn link_commit(&self, id: &CommitId) -> Result<(), IoError> {
        let repo = self.repo;
        repo.create_layout(layout::COMMIT_REFS)?;
        let commits = repo.layout_dir(LayoutDir::Commits)?;
        let name = id.to_hex();
        let target = layout::object_link(&id.object());
        match rustix::fs::symlinkat(target.as_str(), commits, name.as_str()) {
            Ok(()) => self.wrote(),
            Err(Errno::EXIST) if repo.has_commit(id).unwrap_or(false) => {}
            Err(Errno::EXIST) => {
                // Something else has the name: replace it atomically.
                crate::fs::replace_symlink(&self.tmp, &repo.tmp, commits, &name, &target).map_err(
                    |e| IoError::new(Op::Rename, repo.join(layout::COMMITS).join(&name), e),
                )?;
                self.wrote();
            }
            Err(e) => {
                return Err(IoError::new(
                    Op::Symlink,
                    repo.join(layout::COMMITS).join(&name),
                    e,
                ))
            }
        }
        Ok(())
    }

    /// Points commit ref `name` at commit `id` (and image ref `name` at its image, for
    /// `cfsctl`), whatever it held before.
    pub fn set_commit_ref(&self, name: &RefName, id: &CommitId) -> Result<(), WriteCommitError> {
        self.swap_commit_ref(name, id, Expect::Any)
    }

    /// Moves commit ref `name` to `new`, which was made when the ref held `started_at`
    /// (`None`: no ref), under the ref's lock. If the ref moved meanwhile, `on_moved` says
    /// whether to refuse or to re-parent `new` onto the ref's new head. Returns the commit
    /// the ref now holds: `new.id`, or the re-parented commit.
    pub fn commit_to_ref(
        &self,
        name: &RefName,
        new: &NewCommit,
        started_at: Option<CommitId>,
        on_moved: OnRefMoved,
    ) -> Result<CommitId, WriteCommitError> {
        let repo = self.repo;
        let _lock = self.lock_ref(name)?;
        let head = repo.commit_ref_if_any(name)?;
        let id = if head == started_at {
            new.id
        } else if on_moved == OnRefMoved::Reparent && new.commit.parent.map(CommitId) == started_at
        {
            let mut commit = new.commit.clone();
            commit.parent = head.map(|h| h.0);
            self.write_commit_object(&commit)?
        } else {
            return Err(WriteCommitError::RefMoved {
                name: name.clone(),
                expected: held(started_at),
                found: held(head),
            });
        };
        self.point_commit_ref(name, &id, Some(&new.objects))?;
        Ok(id)
    }

    /// [`set_commit_ref`](Self::set_commit_ref) if the ref holds what `expect` says.
    pub fn swap_commit_ref(
        &self,
        name: &RefName,
        id: &CommitId,
        expect: Expect<CommitId>,
    ) -> Result<(), WriteCommitError> {
        let _lock = self.lock_ref(name)?;
        if expect != Expect::Any {
            let head = self.repo.commit_ref_if_any(name)?;
            expect
                .check(head)
                .map_err(|(expected, found)| WriteCommitError::RefMoved {
                    name: name.clone(),
                    expected,
                    found,
                })?;
        }
        self.point_commit_ref(name, id, None)
    }

    /// Writes the ref's history stream, then, after one flush that makes everything the
    /// commit reaches durable, stream ref, commit ref and image ref `name`, in that order.
    /// The caller holds the ref's lock. A crash between the renames leaves valid refs: a
    /// stream ref a commit ahead keeps a superset, an image ref a commit behind an older
    /// image.
    fn point_commit_ref(
        &self,
        name: &RefName,
        id: &CommitId,
        own: Option<&BTreeSet<AnyDigest>>,
    ) -> Result<(), WriteCommitError> {
        let repo = self.repo;
        let commit = repo.read_commit(id)?;
        let image = ImageId::from_digest(commit.image);
        if !repo.image_present(&image)? {
            return Err(WriteImageError::NotFound(image).into());
        }
        self.link_commit(id)?;
        let stream = self.write_history_stream(name, id, &commit, own)?;
        self.sync()?;
        // All three prepared (directories made, symlinks written) before any is renamed, so
        // that a full disk stops the commit before the first ref moves; the image ref (for
        // cfsctl) last: a crash between the renames leaves it a commit behind.
        let refs = [
            self.prepare_ref(RefKind::Stream, name, &stream)?,
            self.prepare_ref(RefKind::Commit, name, &id.to_hex())?,
            self.prepare_ref(RefKind::Image, name, &image.to_hex())?,
        ];
        for r in refs {
            r.install()?;
        }
        self.counters.refs_set.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Removes commit ref `name`; the commit stays until `gc`. With it goes the image ref of
    /// the same name, if it names that commit's image (as [`Transaction::set_commit_ref`]
    /// made it).
    pub fn remove_commit_ref(&self, name: &RefName) -> Result<(), RefError> {
        let repo = self.repo;
        let _lock = self.lock_ref(name)?;
        let commit = repo.resolve_commit_ref(name).ok();
        // The stream ref goes even without a commit ref: a crash between the two renames of a
        // name's first commit leaves one alone, which would keep its objects for ever.
        let stream = match self.remove_ref_locked(RefKind::Stream, name) {
            Ok(()) => true,
            Err(RefError::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        match self.remove_ref_locked(RefKind::Commit, name) {
            Err(RefError::NotFound(_)) if stream => return Ok(()),
            r => r?,
        }
        let image = commit
            .and_then(|c| repo.read_commit(&c).ok())
            .map(|c| c.image);
        if let (Some(image), Ok(mirror)) = (image, repo.resolve_ref(name)) {
            if *mirror.digest() == image {
                self.remove_ref_locked(RefKind::Image, name)?;
            }
        }
        Ok(())
    }

    /// Re-creates commit `id`'s image from its tree objects alone, stores it (`images/HEX`)
    /// and checks it is the image the commit records ([`WriteCommitError::ImageMismatch`] if
    /// not; the image written stays unreferenced until `gc`). The file objects must be
    /// present: the image is refused otherwise, as any image.
    ///
    /// With `kernel_signature`, a new image object gets fs-verity with the commit's kernel
    /// built-in signature ([`crate::Repository::read_image_signature`]; an error if it has
    /// none), which the kernel checks against its `.fs-verity` keyring.
    pub fn restore_image(
        &self,
        id: &CommitId,
        kernel_signature: bool,
    ) -> Result<ImageId, WriteCommitError> {
        let repo = self.repo;
        let commit = repo.read_commit(id)?;
        let signature = if kernel_signature {
            Some(
                repo.read_image_signature(id)?
                    .ok_or(WriteCommitError::NoImageSignature(*id))?,
            )
        } else {
            None
        };
        let tree = repo.commit_tree(id, &commit)?;
        self.check_objects_present(&tree)?;
        let image = self.write_image_unchecked(
            &tree,
            &WriteOptions {
                min_version: commit.image_format,
                max_version: commit.image_format,
            },
            signature.as_deref(),
        )?;
        if *image.digest() == commit.image {
            Ok(image)
        } else {
            Err(WriteCommitError::ImageMismatch {
                commit: *id,
                recorded: Box::new(commit.image),
                derived: Box::new(*image.digest()),
            })
        }
    }
}

impl crate::Repository {
    /// Removes commit ref `name` in a transaction of its own (see
    /// [`Transaction::remove_commit_ref`]).
    pub fn remove_commit_ref(&self, name: &RefName) -> Result<(), RefError> {
        let tx = self.transaction()?;
        tx.remove_commit_ref(name)?;
        tx.finish()?;
        Ok(())
    }

    /// Removes every ref named `name` (commit ref, its history stream's ref, image ref:
    /// `ostree refs --delete`) under one lock, in a transaction of its own;
    /// [`RefError::NotFound`] if there was none. What they reached stays until `gc`.
    pub fn delete_ref(&self, name: &RefName) -> Result<(), RefError> {
        let tx = self.transaction()?;
        let lock = tx.lock_ref(name)?;
        let mut found = false;
        for kind in [RefKind::Stream, RefKind::Commit, RefKind::Image] {
            match tx.remove_ref_locked(kind, name) {
                Ok(()) => found = true,
                Err(RefError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        drop(lock);
        tx.finish()?;
        if found {
            Ok(())
        } else {
            Err(RefError::NotFound(name.clone()))
        }
    }
}
