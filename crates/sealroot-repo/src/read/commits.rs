//! Reading commits, their tree objects and their detached signatures.
//!
//! ```text
//! commits/HEX            -> ../objects/XX/REST : the objects that are commits
//! commits/HEX.sig        the detached signatures of commit HEX (sealroot-trust's format)
//! commits/HEX.p7s        the kernel built-in signature of its image
//! commits/refs/NAME      -> ../HEX (one ../ per component of NAME): named commits, gc roots
//! ```
//!
//! Commit, dirtree and dirmeta objects are objects like file contents (`objects/XX/REST`,
//! named by fs-verity digest), in the encodings of [`sealroot_format::objects`]. A commit
//! records the digest of the composefs image derived from its tree; the image is stored too
//! (`images/HEX`), so a commit can be mounted without re-deriving it, and
//! [`Repository::derive_image`] re-creates it from the tree objects alone.

use crate::id::DigestSet as HashSet;
use std::fmt;
use std::str::FromStr;

use rustix::io::Errno;
use sealroot_format::objects::{self, assemble, Change, Commit, DirTree, EntryKind, ObjectKind};
use sealroot_format::Tree;
use sealroot_verity::{AnyDigest, HashAlgorithm};

use crate::error::{ImageError, IoError, ObjectError, Operation as Op, RefError};
use crate::fs;
use crate::id::{is_lower_hex, IdParseError, ImageId, ObjectId, RefName};
use crate::layout::{self, RefKind};
use crate::repository::LayoutDir;
use crate::Repository;

/// The largest image signature read (a PKCS#7 with one RSA signature is well under 2 KiB).
const IMAGE_SIGNATURE_MAX: u64 = 64 << 10;
/// The largest signature file read.
pub(crate) const SIGNATURES_MAX: u64 = 1 << 20;

/// A commit's name: the fs-verity digest of the commit object, of the repository's
/// algorithm (sha256, or sha512).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitId(pub AnyDigest);

impl CommitId {
    /// Lower-case hex: the commit's name in `commits/`.
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }

    /// The object holding the commit.
    pub fn object(&self) -> ObjectId {
        ObjectId::new(self.0)
    }

    /// The digest's algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.0.algorithm()
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

    /// As [`ObjectId`]: `sha256:HEX`, `sha512:HEX`, or bare hex of 64 or 128 digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<ObjectId>().map(|id| CommitId(*id.digest()))
    }
}

/// Why a commit could not be read, resolved, checked or compared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Reading an object failed.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// Reading an image failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A ref could not be read.
    #[error(transparent)]
    Ref(#[from] RefError),
    /// An id of another algorithm than the repository's.
    #[error("{what} {id} is a {} digest, but this repository uses {repository}", id.algorithm())]
    Algorithm {
        /// What the id names.
        what: &'static str,
        /// The id.
        id: AnyDigest,
        /// The repository's algorithm.
        repository: HashAlgorithm,
    },
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
    /// The image re-created from the tree cannot be written.
    #[error("commit {commit}: its tree gives no composefs image: {source}")]
    Derive {
        /// The commit.
        commit: CommitId,
        /// What the image writer refused (boxed: the error stays small).
        source: Box<sealroot_format::erofs::WriteError>,
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
    pub(crate) commits: Vec<(CommitId, AnyDigest)>,
    /// The dirtrees read (not `objects`: a file may have a dirtree's bytes as content, and
    /// reaching it as a file must not stop the dirtree from being followed).
    trees: HashSet<AnyDigest>,
    /// The commits read (or tried).
    seen: HashSet<CommitId>,
}

impl Repository {
    /// Checks that `id` (naming `what`) is of the repository's algorithm.
    pub(crate) fn check_id(&self, what: &'static str, id: &AnyDigest) -> Result<(), CommitError> {
        if id.algorithm() == self.algorithm() {
            Ok(())
        } else {
            Err(CommitError::Algorithm {
                what,
                id: *id,
                repository: self.algorithm(),
            })
        }
    }

    /// The bytes of commit `id`, checked against its name.
    pub fn read_commit_bytes(&self, id: &CommitId) -> Result<Vec<u8>, CommitError> {
        self.check_id("commit", &id.0)?;
        match self.read_object_checked(&id.object(), ObjectKind::Commit.max_size()) {
            Ok(b) => Ok(b),
            Err(ObjectError::NotFound(_)) => Err(CommitError::NotFound(*id)),
            Err(ObjectError::Corrupt { reason, .. }) => {
                Err(CommitError::Corrupt { id: *id, reason })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Commit `id`, checked against its name and parsed; its ids must be of the
    /// repository's algorithm.
    pub fn read_commit(&self, id: &CommitId) -> Result<Commit, CommitError> {
        let bytes = self.read_commit_bytes(id)?;
        let corrupt = |reason| CommitError::Corrupt { id: *id, reason };
        let commit = Commit::parse(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if commit.algorithm() != self.algorithm() {
            return Err(corrupt(format!(
                "it names {} objects in a {} repository",
                commit.algorithm(),
                self.algorithm()
            )));
        }
        Ok(commit)
    }

    /// Whether commit `id` is in the repository: linked in `commits/` by the link its name
    /// calls for (another object with that name is not a commit) and its object present.
    pub fn has_commit(&self, id: &CommitId) -> Result<bool, CommitError> {
        self.check_id("commit", &id.0)?;
        let Some(commits) = self.layout_dir_if_any(LayoutDir::Commits)? else {
            return Ok(false);
        };
        let name = id.to_hex();
        match rustix::fs::readlinkat(commits, name.as_str(), Vec::new()) {
            Ok(text) if text.as_bytes() == layout::object_link(&id.object()).as_bytes() => {
                Ok(self.has_object(&id.object())?)
            }
            Ok(_) | Err(Errno::NOENT | Errno::INVAL) => Ok(false),
            Err(e) => Err(IoError::new(
                Op::ReadLink,
                self.join(&format!("{}/{name}", layout::COMMITS)),
                e,
            )
            .into()),
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
            Ok(c) => return Ok(ImageId::from_digest(self.read_commit(&c)?.image)),
            Err(CommitError::Unknown(_) | CommitError::Algorithm { .. }) => {}
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
        let Some(commits) = self.layout_dir_if_any(LayoutDir::Commits)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        fs::for_each(commits, |name, _| {
            if let Some(id) = name.to_str().ok().and_then(|n| n.parse().ok()) {
                out.push(id);
            }
        })
        .map_err(|e| IoError::new(Op::List, self.join(layout::COMMITS), e))?;
        out.sort();
        Ok(out)
    }

    /// The commit ref `name` leads to.
    pub fn resolve_commit_ref(&self, name: &RefName) -> Result<CommitId, RefError> {
        let hex = self.ref_target_hex(RefKind::Commit, name)?;
        let broken = |reason| RefError::broken(name, &hex, reason);
        let id: CommitId = hex.parse().map_err(|_| broken("not a commit id"))?;
        match self.has_commit(&id) {
            Ok(true) => Ok(id),
            Ok(false) => Err(broken("the commit is not in the repository")),
            Err(CommitError::Io(e) | CommitError::Object(ObjectError::Io(e))) => Err(e.into()),
            Err(_) => Err(broken("not a commit of this repository")),
        }
    }

    /// The commit ref `name` leads to, `None` if there is no such ref.
    pub fn commit_ref_if_any(&self, name: &RefName) -> Result<Option<CommitId>, RefError> {
        match self.resolve_commit_ref(name) {
            Ok(id) => Ok(Some(id)),
            Err(RefError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every commit ref and the commit it leads to (`None`: broken), in name order.
    pub fn commit_refs(&self) -> Result<Vec<(RefName, Option<CommitId>)>, RefError> {
        let mut out = Vec::new();
        for raw in self.raw_refs(RefKind::Commit)? {
            let Ok(name) = RefName::new(&raw.name) else {
                continue;
            };
            let id = self.resolve_commit_ref(&name).ok();
            out.push((name, id));
        }
        Ok(out)
    }

    /// A commit by ref name, full id (with or without `sha256:` or `sha512:`), or unique id
    /// prefix of at least 8 hex digits.
    pub fn resolve_commit(&self, spec: &str) -> Result<CommitId, CommitError> {
        if let Ok(name) = RefName::new(spec) {
            if let Some(id) = self.commit_ref_if_any(&name)? {
                return Ok(id);
            }
        }
        if let Ok(id) = spec.parse::<CommitId>() {
            return if self.has_commit(&id)? {
                Ok(id)
            } else {
                Err(CommitError::NotFound(id))
            };
        }
        let prefix = format!("{}:", self.algorithm());
        let hex = spec.strip_prefix(prefix.as_str()).unwrap_or(spec);
        if hex.len() >= 8 && is_lower_hex(hex) {
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
    pub(crate) fn fetch_tree_object(
        &self,
        kind: ObjectKind,
        id: &AnyDigest,
    ) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        let object = ObjectId::new(*id);
        let file = self.open_object(&object).map_err(Box::new)?;
        let path = self.object_path(&object);
        // One more byte than allowed: assemble then refuses the object as too large.
        fs::read_bounded(file.into(), kind.max_size() as u64 + 1)
            .map_err(|e| Box::new(IoError::new(Op::Read, &path, e)))?
            .ok_or_else(|| {
                format!("{}: larger than a {kind:?} object may be", path.display()).into()
            })
    }

    /// Rebuilds commit `id`'s tree from its tree objects alone, checking each.
    pub fn commit_tree(&self, id: &CommitId, commit: &Commit) -> Result<Tree, CommitError> {
        let mut fetch = |k: ObjectKind, d: &AnyDigest| self.fetch_tree_object(k, d);
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
    ) -> Result<AnyDigest, CommitError> {
        let tree = self.commit_tree(id, commit)?;
        let (derived, _) =
            objects::derive_image(&tree, commit.image_format, self.algorithm(), sink).map_err(
                |source| CommitError::Derive {
                    commit: *id,
                    source: Box::new(source),
                },
            )?;
        if derived != commit.image {
            return Err(CommitError::ImageMismatch {
                commit: *id,
                recorded: Box::new(commit.image),
                derived: Box::new(derived),
            });
        }
        Ok(derived)
    }

    /// The commits from `id` back through its parents, newest first, up to `max` (stopping
    /// at the first parent not in the repository).
    pub fn log(&self, id: &CommitId, max: usize) -> Result<Vec<LogEntry>, CommitError> {
        let mut out = Vec::new();
        let mut next = Some(*id);
        let mut seen = HashSet::default();
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
        let mut fetch = |k: ObjectKind, d: &AnyDigest| self.fetch_tree_object(k, d);
        objects::diff((&a.tree, &a.dirmeta), (&b.tree, &b.dirmeta), &mut fetch)
            .map_err(|e| CommitError::Diff(Box::new(e)))
    }

    /// The signature file of commit `id`, if it has one (sealroot-trust parses it).
    pub fn read_signatures(&self, id: &CommitId) -> Result<Option<Vec<u8>>, CommitError> {
        self.read_commit_file(id, layout::SIGNATURE_SUFFIX, SIGNATURES_MAX)
    }

    /// The kernel built-in signature of commit `id`'s image (DER PKCS#7), if it has one.
    pub fn read_image_signature(&self, id: &CommitId) -> Result<Option<Vec<u8>>, CommitError> {
        self.read_commit_file(id, layout::IMAGE_SIGNATURE_SUFFIX, IMAGE_SIGNATURE_MAX)
    }

    fn read_commit_file(
        &self,
        id: &CommitId,
        suffix: &str,
        max: u64,
    ) -> Result<Option<Vec<u8>>, CommitError> {
        let Some(commits) = self.layout_dir_if_any(LayoutDir::Commits)? else {
            return Ok(None);
        };
        let name = format!("{}{suffix}", id.to_hex());
        let path = self.join(layout::COMMITS).join(&name);
        let fd = match fs::open_file(commits, name.as_str()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(IoError::new(Op::Open, &path, e).into()),
        };
        match fs::read_bounded(fd, max).map_err(|e| IoError::new(Op::Read, &path, e))? {
            Some(bytes) => Ok(Some(bytes)),
            None => Err(CommitError::SignaturesTooLarge {
                path: path.display().to_string(),
            }),
        }
    }

    /// Adds to `out` the commits of `root`'s history present here (and their images), and
    /// every object of `stream`, the history stream written when `root` became its ref's
    /// head: it lists every object of that history (it is written with them, under the ref's
    /// lock), so the tree objects need not be walked. Commits are read (and checked), trees
    /// are not.
    pub(crate) fn reach_by_stream(
        &self,
        root: &CommitId,
        stream: &crate::read::streams::HistoryStream,
        out: &mut Reach,
    ) -> Result<(), CommitError> {
        out.objects.reserve(stream.stream.objects.len() + 2);
        out.objects.insert(stream.object);
        out.objects
            .extend(stream.objects().map(|d| ObjectId::new(*d)));
        let mut next = Some(*root);
        while let Some(id) = next.take() {
            if (id != *root && !self.has_commit(&id)?) || !out.seen.insert(id) {
                break;
            }
            let commit = self.read_commit(&id)?;
            out.objects.insert(id.object());
            out.objects.insert(ObjectId::new(commit.image));
            out.commits.push((id, commit.image));
            next = commit.parent.map(CommitId);
        }
        Ok(())
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
            out.objects.insert(ObjectId::new(commit.image));
            self.reach_tree(&id, &commit, strict, out)?;
            next = commit.parent.map(CommitId);
        }
        Ok(())
    }

    /// The tree part of [`reach`](Self::reach): every dirtree, dirmeta and file object of
    /// `commit`'s tree.
    pub(crate) fn reach_tree(
        &self,
        id: &CommitId,
        commit: &Commit,
        strict: bool,
        out: &mut Reach,
    ) -> Result<(), CommitError> {
        let mut dirs = vec![(commit.tree, commit.dirmeta)];
        while let Some((tree, meta)) = dirs.pop() {
            out.objects.insert(ObjectId::new(meta));
            out.objects.insert(ObjectId::new(tree));
            if !out.trees.insert(tree) {
                continue;
            }
            let parsed = self
                .read_object_checked(&ObjectId::new(tree), ObjectKind::DirTree.max_size())
                .map_err(|e| e.to_string())
                .and_then(|bytes| DirTree::parse(&bytes).map_err(|e| e.to_string()));
            let dt = match parsed {
                Ok(dt) => dt,
                Err(reason) if strict => {
                    return Err(CommitError::Corrupt {
                        id: *id,
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
                        out.objects.insert(ObjectId::new(d));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_ids_of_both_algorithms_parse_and_print() {
        let short = "d344782ff962ab7d1c5533755c19c5bf3c3485f55bfaf228fc89524c7e2ba61e";
        let long = short.repeat(2);
        for (text, algorithm) in [
            (short, HashAlgorithm::Sha256),
            (&long, HashAlgorithm::Sha512),
        ] {
            let id: CommitId = text.parse().unwrap();
            assert_eq!(id.algorithm(), algorithm);
            assert_eq!(id.to_string(), text);
            assert_eq!(id.to_hex(), text);
            assert_eq!(
                format!("{algorithm}:{text}").parse::<CommitId>().unwrap(),
                id
            );
            assert_eq!(id.object().digest(), &id.0);
        }
        // The algorithm named must fit the length.
        assert!(format!("sha512:{short}").parse::<CommitId>().is_err());
        assert!(format!("sha256:{long}").parse::<CommitId>().is_err());
        assert!(long[..100].parse::<CommitId>().is_err());
    }
}
