//! Commits, their tree objects and their detached signatures.
//!
//! ```text
//! commits/HEX            -> ../objects/XX/REST : the objects that are commits
//! commits/HEX.sig        the detached signatures of commit HEX (sealroot-trust's format)
//! commits/refs/NAME      -> ../HEX (one ../ per component of NAME): named commits, gc roots
//! ```
//!
//! Commit, dirtree and dirmeta objects are objects like file contents (`objects/XX/REST`,
//! named by fs-verity sha256 digest), in the encodings of [`sealroot_format::objects`]. A
//! commit records the digest of the composefs image derived from its tree; the image is
//! stored too (`images/HEX`), so a commit can be mounted without re-deriving it, and
//! [`Repository::derive_image`] re-creates it from the tree objects alone.
//!
//! Signatures are not objects: a commit's signature file is replaced as a whole (temporary
//! file + `renameat` + `fsync` of `commits/`), so adding a signature never changes a
//! commit's id. Two signers of one commit at the same moment can lose one signature (the
//! last rename wins); sign again.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Read;
use std::str::FromStr;
use std::sync::atomic::Ordering;

use rayon::prelude::*;
use rustix::fs::AtFlags;
use rustix::io::Errno;
use sealroot_format::erofs::{self, WriteOptions};
use sealroot_format::objects::{self, assemble, Change, Commit, DirTree, EntryKind, ObjectKind};
use sealroot_format::Tree;
use sealroot_verity::{AnyDigest, HashAlgorithm, Sha256Digest};

use crate::error::{IoError, ObjectError, Operation as Op, RefError};
use crate::fs;
use crate::id::{IdParseError, ImageId, ObjectId, RefName};
use crate::transaction::Transaction;
use crate::{Repository, OBJECTS_DIR, TMP_DIR};

/// The directory of commit links and signature files.
pub(crate) const COMMITS_DIR: &str = "commits";
/// The directory of commit refs.
pub(crate) const COMMIT_REFS_DIR: &str = "commits/refs";
/// The suffix of a signature file.
pub const SIGNATURE_SUFFIX: &str = ".sig";
/// The suffix of the kernel built-in signature of a commit's image: DER PKCS#7 over the
/// image's fs-verity digest, as `fsverity sign` writes it.
pub const IMAGE_SIGNATURE_SUFFIX: &str = ".p7s";
/// The largest image signature read (a PKCS#7 with one RSA signature is well under 2 KiB).
const IMAGE_SIGNATURE_MAX: u64 = 64 << 10;
/// The largest signature file read.
const SIGNATURES_MAX: u64 = 1 << 20;

/// A commit's name: the fs-verity sha256 digest of the commit object.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitId(pub Sha256Digest);

impl CommitId {
    /// Lower-case hex: the commit's name in `commits/`.
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }

    /// The object holding the commit.
    pub fn object(&self) -> ObjectId {
        ObjectId::new(AnyDigest::Sha256(self.0))
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

impl fmt::Debug for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "commit {}", self.0.to_hex())
    }
}

impl FromStr for CommitId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id = ObjectId::from_hex(
            HashAlgorithm::Sha256,
            s.strip_prefix("sha256:").unwrap_or(s),
        )?;
        match id.digest() {
            AnyDigest::Sha256(d) => Ok(CommitId(*d)),
            AnyDigest::Sha512(_) => Err(IdParseError::Length(128)),
        }
    }
}

/// Why a commit could not be written, read, checked or compared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Storing or reading an object failed.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// Writing the image failed.
    #[error(transparent)]
    Image(#[from] crate::error::ImageError),
    /// A ref could not be read or set.
    #[error(transparent)]
    Ref(#[from] RefError),
    /// The tree cannot be stored as objects.
    #[error("the tree cannot be committed: {0}")]
    Split(#[from] objects::SplitError),
    /// The tree cannot be written as an image.
    #[error("the tree cannot be written as a composefs image: {0}")]
    Write(#[from] erofs::WriteError),
    /// Commits need a sha256 repository (composefs images record sha256 digests).
    #[error("commits need a sha256 repository; this one uses {0}")]
    Algorithm(HashAlgorithm),
    /// No such commit.
    #[error("commit {0} is not in the repository")]
    NotFound(CommitId),
    /// The commit object is corrupt or does not parse.
    #[error("commit {id} is corrupt: {reason}")]
    Corrupt {
        /// The commit.
        id: CommitId,
        /// What is wrong.
        reason: String,
    },
    /// A tree object is missing, corrupt or does not parse.
    #[error("commit {commit}: tree: {source}")]
    Tree {
        /// The commit.
        commit: CommitId,
        /// What is wrong, naming the object and the directory.
        source: Box<objects::AssembleError>,
    },
    /// A tree object needed to compare two trees is missing, corrupt or does not parse.
    #[error("comparing trees: {0}")]
    Diff(#[source] Box<objects::AssembleError>),
    /// The image re-created from the tree is not the one the commit records.
    #[error(
        "commit {commit}: the image derived from its tree has digest {derived}, \
         but the commit records {recorded}: the tree objects or the commit were altered"
    )]
    ImageMismatch {
        /// The commit.
        commit: CommitId,
        /// What the commit says.
        recorded: Sha256Digest,
        /// What the tree gives.
        derived: Sha256Digest,
    },
    /// The parent named does not exist.
    #[error("parent {0} is not in the repository")]
    ParentNotFound(CommitId),
    /// A metadata key that is not allowed.
    #[error(transparent)]
    MetaKey(#[from] objects::MetaKeyError),
    /// A kernel built-in signature was asked for and the commit has none.
    #[error(
        "commit {0} has no kernel built-in signature for its image (sign it with an fs-verity key)"
    )]
    NoImageSignature(CommitId),
    /// Names nothing in the repository.
    #[error("{0:?} is not a ref, commit id or image id of this repository")]
    Unknown(String),
    /// A signature file too large to be one.
    #[error("{path}: too large to be a signature file")]
    SignaturesTooLarge {
        /// The file.
        path: String,
    },
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
    /// Every file object the tree names was stored or found present in *this* transaction
    /// (as `sealroot-tree` does when building into [`Transaction::objects_path`], and a tar
    /// sink writing through the transaction does), so the image writer need not stat them
    /// all again. Default `false`: they are checked.
    pub objects_known_present: bool,
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
}

/// A commit as [`Repository::log`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Its id.
    pub id: CommitId,
    /// Its content.
    pub commit: Commit,
}

/// What some commits reach ([`Repository::reach`]): everything `gc` must keep for them.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    /// Commit, dirtree, dirmeta, file and image objects.
    pub(crate) objects: HashSet<ObjectId>,
    /// The commits, with their images' digests, in the order reached.
    pub(crate) commits: Vec<(CommitId, Sha256Digest)>,
    /// The dirtrees read (not `objects`: a file may have a dirtree's bytes as content, and
    /// reaching it as a file must not stop the dirtree from being followed).
    trees: HashSet<Sha256Digest>,
    /// The commits read (or tried).
    seen: HashSet<CommitId>,
}

impl Repository {
    fn require_sha256(&self) -> Result<(), CommitError> {
        match self.algorithm() {
            HashAlgorithm::Sha256 => Ok(()),
            other => Err(CommitError::Algorithm(other)),
        }
    }

    /// Reads object `id` whole (at most `max` bytes) and checks its content against its
    /// name: for small metadata objects, whose bytes are parsed.
    pub fn read_object_checked(&self, id: &ObjectId, max: usize) -> Result<Vec<u8>, ObjectError> {
        let file = self.open_object(id)?;
        let mut bytes = Vec::new();
        file.take(max as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| IoError::new(Op::Read, self.object_path(id), e))?;
        if bytes.len() > max {
            return Err(ObjectError::Corrupt {
                object: *id,
                reason: format!("larger than the {max} bytes such an object may have"),
            });
        }
        let actual = sealroot_verity::digest(&self.verity_params(), &bytes);
        if actual != *id.digest() {
            return Err(ObjectError::Corrupt {
                object: *id,
                reason: format!("its content has digest {actual}"),
            });
        }
        Ok(bytes)
    }

    /// The bytes of commit `id`, checked against its name.
    pub fn read_commit_bytes(&self, id: &CommitId) -> Result<Vec<u8>, CommitError> {
        self.require_sha256()?;
        match self.read_object_checked(&id.object(), ObjectKind::Commit.max_size()) {
            Ok(b) => Ok(b),
            Err(ObjectError::NotFound(_)) => Err(CommitError::NotFound(*id)),
            Err(ObjectError::Corrupt { reason, .. }) => {
                Err(CommitError::Corrupt { id: *id, reason })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Commit `id`, checked against its name and parsed.
    pub fn read_commit(&self, id: &CommitId) -> Result<Commit, CommitError> {
        let bytes = self.read_commit_bytes(id)?;
        Commit::parse(&bytes).map_err(|e| CommitError::Corrupt {
            id: *id,
            reason: e.to_string(),
        })
    }

    /// Whether commit `id` is in the repository.
    /// Whether commit `id` is in the repository: linked in `commits/` (every commit written
    /// is; another object with that name is not a commit) and its object present.
    pub fn has_commit(&self, id: &CommitId) -> Result<bool, CommitError> {
        self.require_sha256()?;
        let rel = format!("{COMMITS_DIR}/{}", id.to_hex());
        match rustix::fs::statat(self.dir(), rel.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(self.has_object(&id.object())?),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(IoError::new(Op::Stat, self.join(&rel), e).into()),
        }
    }

    /// The image `spec` names: an image id of this repository, else a commit (by ref, id or
    /// unique prefix: its image), else an image ref.
    pub fn resolve_image(&self, spec: &str) -> Result<ImageId, CommitError> {
        if let Ok(id) = spec.parse::<ImageId>() {
            if self.has_image(&id)? {
                return Ok(id);
            }
        }
        match self.resolve_commit(spec) {
            Ok(c) => return Ok(ImageId::sha256(self.read_commit(&c)?.image)),
            Err(CommitError::Unknown(_) | CommitError::Algorithm(_)) => {}
            Err(e) => return Err(e),
        }
        let name = RefName::new(spec).map_err(|_| CommitError::Unknown(spec.to_owned()))?;
        match self.resolve_ref(&name) {
            Ok(id) => Ok(id),
            Err(RefError::NotFound(_)) => Err(CommitError::Unknown(spec.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// The commits linked in `commits/`, in id order.
    pub fn commits(&self) -> Result<Vec<CommitId>, CommitError> {
        let entries = match fs::list_at(self.dir(), COMMITS_DIR) {
            Ok(e) => e,
            Err(Errno::NOENT) => return Ok(Vec::new()),
            Err(e) => return Err(IoError::new(Op::List, self.join(COMMITS_DIR), e).into()),
        };
        let mut out: Vec<CommitId> = entries
            .iter()
            .filter_map(|e| e.name.to_str().ok()?.parse().ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// The commit ref `name` leads to.
    pub fn resolve_commit_ref(&self, name: &RefName) -> Result<CommitId, RefError> {
        let link = self.read_ref_link(COMMIT_REFS_DIR, name)?;
        let broken = |reason| RefError::Broken {
            name: name.clone(),
            target: link.clone(),
            reason,
        };
        let id = Self::parse_commit_target(&link).ok_or_else(|| broken("not a commit id"))?;
        match self.has_commit(&id) {
            Ok(true) => Ok(id),
            Ok(false) => Err(broken("the commit is not in the repository")),
            Err(CommitError::Io(e) | CommitError::Object(ObjectError::Io(e))) => Err(e.into()),
            Err(_) => Err(broken("not a commit of this repository")),
        }
    }

    /// The commit a commit ref's symlink text names, if it names one (its last component).
    pub(crate) fn parse_commit_target(link: &str) -> Option<CommitId> {
        link.rsplit('/').next()?.parse().ok()
    }

    /// Every commit ref and the commit it leads to (`None`: broken), in name order.
    pub fn commit_refs(&self) -> Result<Vec<(RefName, Option<CommitId>)>, RefError> {
        let mut out = Vec::new();
        for raw in self.raw_refs_in(COMMIT_REFS_DIR)? {
            let Ok(name) = RefName::new(&raw.name) else {
                continue;
            };
            let id = self.resolve_commit_ref(&name).ok();
            out.push((name, id));
        }
        Ok(out)
    }

    /// Removes commit ref `name`; the commit stays until `gc`.
    /// With it goes the image ref of the same name, if it names that commit's image (as
    /// [`Transaction::set_commit_ref`] made it).
    pub fn remove_commit_ref(&self, name: &RefName) -> Result<(), RefError> {
        let commit = self.resolve_commit_ref(name).ok();
        self.remove_ref_in(COMMIT_REFS_DIR, name)?;
        let image = commit
            .and_then(|c| self.read_commit(&c).ok())
            .map(|c| c.image);
        if let (Some(image), Ok(mirror)) = (image, self.resolve_ref(name)) {
            if mirror.as_sha256() == Some(&image) {
                self.remove_ref(name)?;
            }
        }
        Ok(())
    }

    /// A commit by ref name, full id (with or without `sha256:`), or unique id prefix of at
    /// least 8 hex digits.
    pub fn resolve_commit(&self, spec: &str) -> Result<CommitId, CommitError> {
        if let Ok(name) = RefName::new(spec) {
            match self.resolve_commit_ref(&name) {
                Ok(id) => return Ok(id),
                Err(RefError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Ok(id) = spec.parse::<CommitId>() {
            return if self.has_commit(&id)? {
                Ok(id)
            } else {
                Err(CommitError::NotFound(id))
            };
        }
        let hex = spec.strip_prefix("sha256:").unwrap_or(spec);
        if hex.len() >= 8 && crate::id::is_lower_hex(hex) {
            let matches: Vec<CommitId> = self
                .commits()?
                .into_iter()
                .filter(|c| c.to_hex().starts_with(hex))
                .collect();
            if let [one] = matches.as_slice() {
                return Ok(*one);
            }
        }
        Err(CommitError::Unknown(spec.to_owned()))
    }

    /// Fetches a tree object for [`sealroot_format::objects::assemble`] (which checks it).
    fn fetch_tree_object(
        &self,
        kind: ObjectKind,
        id: &Sha256Digest,
    ) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        let object = ObjectId::new(AnyDigest::Sha256(*id));
        let file = self.open_object(&object).map_err(Box::new)?;
        // Sized once: large directories' objects would otherwise grow by doubling.
        let size = file.metadata().map_or(0, |m| m.len());
        let mut bytes = Vec::with_capacity(size.min(kind.max_size() as u64 + 1) as usize);
        file.take(kind.max_size() as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Box::new(IoError::new(Op::Read, self.object_path(&object), e)))?;
        Ok(bytes)
    }

    /// Rebuilds commit `id`'s tree from its tree objects alone, checking each.
    pub fn commit_tree(&self, id: &CommitId, commit: &Commit) -> Result<Tree, CommitError> {
        let mut fetch = |k: ObjectKind, d: &Sha256Digest| self.fetch_tree_object(k, d);
        assemble(&commit.tree, &commit.dirmeta, &mut fetch).map_err(|source| CommitError::Tree {
            commit: *id,
            source: Box::new(source),
        })
    }

    /// Re-creates commit `id`'s image from its tree objects and checks it is the image the
    /// commit records ([`CommitError::ImageMismatch`] if not). Returns the digest. With
    /// `sink`, the image's bytes are written there too.
    pub fn derive_image(
        &self,
        id: &CommitId,
        commit: &Commit,
        sink: Option<&mut dyn std::io::Write>,
    ) -> Result<Sha256Digest, CommitError> {
        let tree = self.commit_tree(id, commit)?;
        let (derived, _) = objects::derive_image(&tree, commit.image_format, sink)?;
        if derived != commit.image {
            return Err(CommitError::ImageMismatch {
                commit: *id,
                recorded: commit.image,
                derived,
            });
        }
        Ok(derived)
    }

    /// The commits from `id` back through its parents, newest first, up to `max` (stopping
    /// at the first parent not in the repository).
    pub fn log(&self, id: &CommitId, max: usize) -> Result<Vec<LogEntry>, CommitError> {
        let mut out = Vec::new();
        let mut next = Some(*id);
        let mut seen = HashSet::new();
        while let Some(id) = next {
            if out.len() >= max || !seen.insert(id) {
                break;
            }
            if !out.is_empty() && !self.has_commit(&id)? {
                break;
            }
            let commit = self.read_commit(&id)?;
            next = commit.parent.map(CommitId);
            out.push(LogEntry { id, commit });
        }
        Ok(out)
    }

    /// The paths that differ between the trees of commits `a` and `b`.
    pub fn diff_commits(&self, a: &Commit, b: &Commit) -> Result<Vec<Change>, CommitError> {
        let mut fetch = |k: ObjectKind, d: &Sha256Digest| self.fetch_tree_object(k, d);
        objects::diff((&a.tree, &a.dirmeta), (&b.tree, &b.dirmeta), &mut fetch)
            .map_err(|e| CommitError::Diff(Box::new(e)))
    }

    /// The signature file of commit `id`, if it has one (sealroot-trust parses it).
    pub fn read_signatures(&self, id: &CommitId) -> Result<Option<Vec<u8>>, CommitError> {
        self.read_commit_file(id, SIGNATURE_SUFFIX, SIGNATURES_MAX)
    }

    /// The kernel built-in signature of commit `id`'s image (DER PKCS#7), if it has one.
    pub fn read_image_signature(&self, id: &CommitId) -> Result<Option<Vec<u8>>, CommitError> {
        self.read_commit_file(id, IMAGE_SIGNATURE_SUFFIX, IMAGE_SIGNATURE_MAX)
    }

    fn read_commit_file(
        &self,
        id: &CommitId,
        suffix: &str,
        max: u64,
    ) -> Result<Option<Vec<u8>>, CommitError> {
        let rel = format!("{COMMITS_DIR}/{}{suffix}", id.to_hex());
        let fd = match crate::open_file(self.dir(), rel.as_str()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(IoError::new(Op::Open, self.join(&rel), e).into()),
        };
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| IoError::new(Op::Read, self.join(&rel), e))?;
        if bytes.len() as u64 > max {
            return Err(CommitError::SignaturesTooLarge {
                path: self.join(&rel).display().to_string(),
            });
        }
        Ok(Some(bytes))
    }

    /// Adds to `out` everything commit `root` and its ancestors present here reach: the
    /// commits, their images, tree objects and file objects. With `strict`, a commit or
    /// dirtree that is missing, corrupt or does not parse is an error (`gc` must not
    /// guess); without, it is included and its content not followed (`fsck`, naming the
    /// refs a damaged object affects). Objects in `out` already are not read again.
    pub(crate) fn reach(
        &self,
        root: &CommitId,
        strict: bool,
        out: &mut Reach,
    ) -> Result<(), CommitError> {
        let sha = |d: Sha256Digest| ObjectId::new(AnyDigest::Sha256(d));
        let mut next = Some(*root);
        while let Some(id) = next.take() {
            // A parent not here ends the history here (a shallow copy); the root must be.
            if (id != *root && !self.has_commit(&id)?) || !out.seen.insert(id) {
                break;
            }
            out.objects.insert(id.object());
            let commit = match self.read_commit(&id) {
                Ok(c) => c,
                Err(e) if strict => return Err(e),
                Err(_) => break,
            };
            out.commits.push((id, commit.image));
            out.objects.insert(sha(commit.image));
            let mut dirs = vec![(commit.tree, commit.dirmeta)];
            while let Some((tree, meta)) = dirs.pop() {
                out.objects.insert(sha(meta));
                out.objects.insert(sha(tree));
                if !out.trees.insert(tree) {
                    continue;
                }
                let parsed = self
                    .read_object_checked(&sha(tree), ObjectKind::DirTree.max_size())
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| DirTree::parse(&bytes).map_err(|e| e.to_string()));
                let dt = match parsed {
                    Ok(dt) => dt,
                    Err(reason) if strict => {
                        return Err(CommitError::Corrupt {
                            id,
                            reason: format!("dirtree {tree}: {reason}"),
                        })
                    }
                    Err(_) => continue,
                };
                for e in dt.entries {
                    match e.kind {
                        EntryKind::Dir { tree, meta } => dirs.push((tree, meta)),
                        EntryKind::File {
                            digest: Some(d), ..
                        } => {
                            out.objects.insert(sha(d));
                        }
                        _ => {}
                    }
                }
            }
            next = commit.parent.map(CommitId);
        }
        Ok(())
    }
}

impl Transaction<'_> {
    /// Stores `tree` as dirtree and dirmeta objects (those not present yet), writes the
    /// image derived from those objects, and writes a commit recording it. The file objects
    /// must be in the repository already (build the tree with this repository's `objects/`
    /// as digest store). Set a ref with [`Transaction::set_commit_ref`].
    pub fn write_commit(
        &self,
        tree: &Tree,
        options: &CommitOptions,
    ) -> Result<NewCommit, CommitError> {
        let repo = self.repo;
        repo.require_sha256()?;
        for key in options.metadata.keys() {
            Commit::check_meta_key(key)?;
        }
        if let Some(parent) = &options.parent {
            if !repo.has_commit(parent)? {
                return Err(CommitError::ParentNotFound(*parent));
            }
        }
        let split = objects::split(tree)?;
        // The image is derived from the objects, not from the tree given: what a device
        // re-creates from the same objects.
        let assembled = {
            let by_id: std::collections::HashMap<&Sha256Digest, &Vec<u8>> =
                split.objects.iter().map(|(_, id, b)| (id, b)).collect();
            let mut fetch = |_: ObjectKind, id: &Sha256Digest| {
                by_id
                    .get(id)
                    .map(|b| (*b).clone())
                    .ok_or_else(|| "not produced by split".into())
            };
            assemble(&split.tree, &split.dirmeta, &mut fetch).map_err(|source| {
                CommitError::Tree {
                    commit: CommitId(split.tree),
                    source: Box::new(source),
                }
            })?
        };
        let added = split
            .objects
            .par_iter()
            .map(|(_, id, bytes)| self.ensure_known_object(id, bytes))
            .collect::<Result<Vec<bool>, CommitError>>()?
            .into_iter()
            .filter(|&a| a)
            .count();
        let format = erofs::version_for(&assembled, &options.image)?;
        let image = self.write_image_inner(
            &assembled,
            &WriteOptions {
                min_version: format,
                max_version: format,
            },
            !options.objects_known_present,
        )?;
        let image_digest = image
            .as_sha256()
            .copied()
            .ok_or(CommitError::Algorithm(repo.algorithm()))?;
        let commit = Commit {
            tree: split.tree,
            dirmeta: split.dirmeta,
            parent: options.parent.map(|p| p.0),
            image: image_digest,
            image_format: format,
            timestamp: options.timestamp,
            version: options.version.clone(),
            metadata: options.metadata.clone(),
            subject: options.subject.clone(),
            body: options.body.clone(),
        };
        let bytes = commit.encode();
        let id = CommitId(objects::object_id(&bytes));
        self.ensure_known_object(&id.0, &bytes)?;
        self.link_commit(&id)?;
        Ok(NewCommit {
            id,
            commit,
            image,
            tree_objects: split.objects.len(),
            tree_objects_added: added,
        })
    }

    /// Re-creates commit `id`'s image from its tree objects alone, stores it (`images/HEX`)
    /// and checks it is the image the commit records ([`CommitError::ImageMismatch`] if
    /// not; the image written stays unreferenced until `gc`). The file objects must be
    /// present: the image is refused otherwise, as any image.
    ///
    /// With `kernel_signature`, a new image object gets fs-verity with the commit's kernel
    /// built-in signature ([`Repository::read_image_signature`]; an error if it has none),
    /// which the kernel checks against its `.fs-verity` keyring.
    pub fn restore_image(
        &self,
        id: &CommitId,
        kernel_signature: bool,
    ) -> Result<ImageId, CommitError> {
        let repo = self.repo;
        let commit = repo.read_commit(id)?;
        let signature = if kernel_signature {
            Some(
                repo.read_image_signature(id)?
                    .ok_or(CommitError::NoImageSignature(*id))?,
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
        match image.as_sha256() {
            Some(d) if *d == commit.image => Ok(image),
            Some(d) => Err(CommitError::ImageMismatch {
                commit: *id,
                recorded: commit.image,
                derived: *d,
            }),
            None => Err(CommitError::Algorithm(repo.algorithm())),
        }
    }

    /// Stores `bytes`, whose digest is `id`, unless the object exists; returns whether it
    /// was new.
    fn ensure_known_object(&self, id: &Sha256Digest, bytes: &[u8]) -> Result<bool, CommitError> {
        let object = ObjectId::new(AnyDigest::Sha256(*id));
        if self.repo.has_object(&object)? {
            self.counters
                .objects_present
                .fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        let stored = self.ensure_object(bytes)?;
        debug_assert_eq!(stored, object);
        Ok(true)
    }

    /// Links `commits/HEX` to the commit's object.
    fn link_commit(&self, id: &CommitId) -> Result<(), IoError> {
        let repo = self.repo;
        for d in [COMMITS_DIR, COMMIT_REFS_DIR] {
            fs::ensure_dir(repo.dir(), d)
                .map_err(|e| IoError::new(Op::CreateDir, repo.join(d), e))?;
        }
        let name = id.to_hex();
        let target = format!("../{OBJECTS_DIR}/{}", id.object().object_path());
        let rel = format!("{COMMITS_DIR}/{name}");
        match rustix::fs::symlinkat(target.as_str(), repo.dir(), rel.as_str()) {
            Ok(()) => self.wrote(),
            Err(Errno::EXIST) => {}
            Err(e) => return Err(IoError::new(Op::Symlink, repo.join(&rel), e)),
        }
        Ok(())
    }

    /// Points commit ref `name` at commit `id`, and image ref `name` at its image, each
    /// atomically, after flushing everything the commit reaches (as [`Transaction::set_ref`]).
    pub fn set_commit_ref(&self, name: &RefName, id: &CommitId) -> Result<(), CommitError> {
        let repo = self.repo;
        let commit = repo.read_commit(id)?;
        let image = ImageId::sha256(commit.image);
        if !repo.image_present(&image)? {
            return Err(CommitError::Image(crate::error::ImageError::NotFound(
                image,
            )));
        }
        self.link_commit(id)?;
        // One flush covers both refs.
        self.sync()?;
        self.set_ref_link(
            COMMIT_REFS_DIR,
            name,
            &crate::refs::link_text(name, &id.to_hex()),
        )?;
        // The image ref of the same name, after the commit ref (which sealroot reads): it
        // lets cfsctl see the image and its gc keep it. A crash between the two renames
        // leaves two valid refs, the image ref one commit behind.
        self.set_ref_link(
            crate::REFS_DIR,
            name,
            &crate::refs::link_text(name, &image.to_hex()),
        )?;
        self.counters.refs_set.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Replaces commit `id`'s signature file with `bytes` (atomically and durably).
    pub fn write_signatures(&self, id: &CommitId, bytes: &[u8]) -> Result<(), CommitError> {
        self.write_commit_file(id, SIGNATURE_SUFFIX, bytes)
    }

    /// Replaces the kernel built-in signature of commit `id`'s image (DER PKCS#7).
    pub fn write_image_signature(&self, id: &CommitId, der: &[u8]) -> Result<(), CommitError> {
        self.write_commit_file(id, IMAGE_SIGNATURE_SUFFIX, der)
    }

    fn write_commit_file(
        &self,
        id: &CommitId,
        suffix: &str,
        bytes: &[u8],
    ) -> Result<(), CommitError> {
        let repo = self.repo;
        if !repo.has_commit(id)? {
            return Err(CommitError::NotFound(*id));
        }
        self.link_commit(id)?;
        let tmp_name = repo.tmp.unique_name("sig");
        let tmp_path = repo.join(TMP_DIR).join(&tmp_name);
        let fd = rustix::fs::openat(
            &self.tmp,
            tmp_name.as_str(),
            rustix::fs::OFlags::WRONLY
                | rustix::fs::OFlags::CREATE
                | rustix::fs::OFlags::EXCL
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(crate::fs::FILE_MODE),
        )
        .map_err(|e| IoError::new(Op::Create, &tmp_path, e))?;
        let result = fs::write_all(&fd, bytes)
            .and_then(|()| rustix::fs::fsync(&fd))
            .map_err(|e| IoError::new(Op::Write, &tmp_path, e));
        drop(fd);
        let rel = format!("{COMMITS_DIR}/{}{suffix}", id.to_hex());
        let result = result.and_then(|()| {
            rustix::fs::renameat(&self.tmp, tmp_name.as_str(), repo.dir(), rel.as_str())
                .map_err(|e| IoError::new(Op::Rename, repo.join(&rel), e))
        });
        if let Err(e) = result {
            let _ = rustix::fs::unlinkat(&self.tmp, tmp_name.as_str(), AtFlags::empty());
            return Err(e.into());
        }
        let dir = fs::open_dir(repo.dir(), COMMITS_DIR)
            .map_err(|e| IoError::new(Op::Open, repo.join(COMMITS_DIR), e))?;
        rustix::fs::fsync(&dir).map_err(|e| IoError::new(Op::Sync, repo.join(COMMITS_DIR), e))?;
        Ok(())
    }
}
