//! Committing: a directory or an archive → file objects → tree objects → image → commit →
//! ref, in one transaction.
//!
//! The source is read into a tree while its files are stored in the transaction's object
//! store (which remembers them, so the image writer does not look them up again); directory
//! sources use the digest cache (`cache/devino`) so unchanged files are not read. The ref
//! moves by compare-and-swap under its lock: a commit whose parent was taken from the ref is
//! re-parented onto whatever the ref holds by then (so every commit that succeeds is in the
//! ref's history), and one whose parent was given (or that has none) is refused if the ref
//! moved.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use sealroot_format::objects::{Commit, MetaKeyError};
use sealroot_repo::{
    CommitError, CommitId, CommitOptions, NewCommit, OnRefMoved, RefError, RefName, Repository,
    TransactionError, TransactionStats, WriteCommitError,
};
use sealroot_tree::tar::{build_from_tar, TarError, TarOptions};
use sealroot_tree::{BuildError, BuildOptions, DigestCache};

/// The name of the digest cache in the repository's `cache/`.
pub const DIGEST_CACHE: &str = "devino";
/// The largest digest cache read.
const DIGEST_CACHE_MAX: u64 = 1 << 30;

/// Why a commit was not made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A metadata key or value is not allowed.
    #[error("bad metadata: {0}")]
    Metadata(String),
    /// `SOURCE_DATE_EPOCH` is not a number of seconds.
    #[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds")]
    SourceDateEpoch(String),
    /// The parent could not be resolved or read.
    #[error("the parent: {0}")]
    Parent(#[source] CommitError),
    /// The ref's current commit could not be read.
    #[error("cannot read the current commit of {name:?}: {source}")]
    Ref {
        /// The ref.
        name: RefName,
        /// Why.
        #[source]
        source: RefError,
    },
    /// The transaction could not start or finish.
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    /// The directory could not be read into a tree.
    #[error("cannot commit {}: {source}", path.display())]
    Build {
        /// The source.
        path: PathBuf,
        /// Why.
        #[source]
        source: BuildError,
    },
    /// The archive could not be read into a tree.
    #[error("cannot commit {name}: {source}")]
    Archive {
        /// The archive's name (`-` for stdin).
        name: String,
        /// Why.
        #[source]
        source: TarError,
    },
    /// The commit could not be written or its ref moved.
    #[error(transparent)]
    Write(#[from] WriteCommitError),
    /// The filesystem holding the repository is full (or the quota is reached).
    #[error("the filesystem holding the repository {} is full; free some space (`sealroot gc` \
             removes what a failed commit stored) and commit again: {source}", repo.display())]
    NoSpace {
        /// The repository.
        repo: PathBuf,
        /// What failed.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// Whether a system call in this error's chain failed for lack of space (`ENOSPC`,
    /// `EDQUOT`).
    fn is_no_space(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                use rustix::io::Errno;
                let raw = io.raw_os_error();
                if raw == Some(Errno::NOSPC.raw_os_error())
                    || raw == Some(Errno::DQUOT.raw_os_error())
                {
                    return true;
                }
            }
            cause = e.source();
        }
        false
    }
}

impl From<MetaKeyError> for Error {
    fn from(e: MetaKeyError) -> Self {
        Error::Metadata(e.to_string())
    }
}

/// What to commit.
pub enum Source {
    /// A directory (not followed if it is a symlink).
    Dir(PathBuf),
    /// A tar archive (plain, gzip or zstd), read from `reader`, called `name` in messages.
    Archive {
        /// For messages: its path, or `-`.
        name: String,
        /// The bytes.
        reader: Box<dyn Read + Send>,
    },
}

/// Where the new commit's parent comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parent {
    /// The ref's current commit, if any; re-parented if the ref moves meanwhile.
    FromRef,
    /// This commit; refused if the ref moves meanwhile.
    Commit(CommitId),
    /// None (a new history); refused if the ref moves meanwhile.
    None,
}

/// How to read the source, as `mkcomposefs` options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Keep hard links.
    pub hardlinks: bool,
    /// Every mtime 0.
    pub use_epoch: bool,
    /// Leave out devices.
    pub skip_devices: bool,
    /// Record no xattrs.
    pub skip_xattrs: bool,
    /// Record only `user.*` xattrs.
    pub user_xattrs: bool,
    /// Content threads (0: the default).
    pub threads: usize,
    /// Do not use the digest cache (read every file).
    pub no_cache: bool,
}

/// A commit to make.
pub struct Request {
    /// The ref to move.
    pub refname: RefName,
    /// What to commit.
    pub source: Source,
    /// How to read it.
    pub read: ReadOptions,
    /// Where the parent comes from.
    pub parent: Parent,
    /// What the commit says: subject, body, version, metadata, timestamp (its parent is set
    /// from [`Request::parent`]).
    pub message: CommitOptions,
}

/// What a commit made.
#[derive(Debug)]
pub struct Committed {
    /// The new commit, as first written.
    pub new: NewCommit,
    /// The commit the ref holds now: `new.id`, or the same commit re-parented onto a head
    /// that moved meanwhile.
    pub id: CommitId,
    /// The parent the commit has in the end.
    pub parent: Option<CommitId>,
    /// What the transaction added.
    pub stats: TransactionStats,
    /// Why the digest cache was not used or not saved, if it was not (a warning: a cache only
    /// saves time).
    pub cache_warning: Option<String>,
}

/// What a commit reports its progress to: the tree builder's and the repository's reports.
pub trait Progress: sealroot_tree::Progress + sealroot_repo::Progress {}
impl<T: sealroot_tree::Progress + sealroot_repo::Progress> Progress for T {}

/// `KEY=VALUE` pairs (`--metadata`) as commit metadata; each key checked, none twice.
pub fn parse_metadata(pairs: &[String]) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| Error::Metadata(format!("{p:?}: expected KEY=VALUE")))?;
        Commit::check_meta_key(k)?;
        if out.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(Error::Metadata(format!("{k}: given twice")));
        }
    }
    Ok(out)
}

/// The commit time: `given`, else `SOURCE_DATE_EPOCH` (reproducible builds), else now.
pub fn timestamp(given: Option<i64>) -> Result<i64, Error> {
    if let Some(t) = given {
        return Ok(t);
    }
    if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        return s.parse().map_err(|_| Error::SourceDateEpoch(s));
    }
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0))
}

/// Makes the commit `request` describes and moves its ref. A full filesystem is
/// [`Error::NoSpace`].
pub fn commit(
    repo: &Repository,
    request: Request,
    progress: &dyn Progress,
) -> Result<Committed, Error> {
    commit_unchecked(repo, request, progress).map_err(|e| {
        if e.is_no_space() {
            Error::NoSpace {
                repo: repo.path().to_owned(),
                source: Box::new(e),
            }
        } else {
            e
        }
    })
}

/// [`commit`], whatever the error.
fn commit_unchecked(
    repo: &Repository,
    request: Request,
    progress: &dyn Progress,
) -> Result<Committed, Error> {
    let Request {
        refname,
        source,
        read,
        parent,
        mut message,
    } = request;
    // The transaction first: it holds the repository lock, so gc cannot collect the head (or
    // the parent given) between reading it here and committing on top of it.
    let tx = repo.transaction_with_progress(progress)?;
    let head = repo
        .commit_ref_if_any(&refname)
        .map_err(|source| Error::Ref {
            name: refname.clone(),
            source,
        })?;
    let (chosen, on_moved) = match parent {
        Parent::FromRef => (head, OnRefMoved::Reparent),
        Parent::Commit(id) => {
            if !repo.has_commit(&id).map_err(Error::Parent)? {
                return Err(Error::Parent(CommitError::NotFound(id)));
            }
            (Some(id), OnRefMoved::Refuse)
        }
        Parent::None => (None, OnRefMoved::Refuse),
    };
    message.parent = chosen;
    let (cache, mut cache_warning) = match &source {
        Source::Dir(_) if !read.no_cache => load_cache(repo),
        Source::Dir(_) => (
            Some(Arc::new(DigestCache::for_algorithm(repo.algorithm()))),
            None,
        ),
        Source::Archive { .. } => (None, None),
    };
    let tree = read_source(source, &read, &tx, cache.clone(), progress)?;
    let new = tx.write_commit(tree, &message)?;
    let id = tx.commit_to_ref(&refname, &new, head, on_moved)?;
    let parent = if id == new.id {
        new.commit.parent.map(CommitId)
    } else {
        repo.read_commit(&id)
            .map_err(WriteCommitError::from)?
            .parent
            .map(CommitId)
    };
    if let Some(cache) = &cache {
        // The commit stands whatever happens here: a cache only saves time.
        let mut bytes = Vec::new();
        let saved = cache
            .write(&mut bytes)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                tx.write_cache_file(DIGEST_CACHE, &bytes)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = saved {
            cache_warning = Some(format!("the digest cache was not saved: {e}"));
        }
    }
    let stats = tx.finish()?;
    Ok(Committed {
        new,
        id,
        parent,
        stats,
        cache_warning,
    })
}

/// The digest cache of directory commits, and why it was ignored if it was. A cache of
/// another algorithm than the repository's (a repository made again at the same path) is
/// ignored too.
fn load_cache(repo: &Repository) -> (Option<Arc<DigestCache>>, Option<String>) {
    let path = repo
        .path()
        .join(sealroot_repo::layout::CACHE)
        .join(DIGEST_CACHE);
    let algorithm = repo.algorithm();
    let empty = || DigestCache::for_algorithm(algorithm);
    let (cache, warning) = match repo.read_cache_file(DIGEST_CACHE, DIGEST_CACHE_MAX) {
        Ok(None) => (empty(), None),
        Ok(Some(bytes)) => match DigestCache::parse(&bytes) {
            Ok(c) if c.algorithm() == algorithm => (c, None),
            Ok(c) => (
                empty(),
                Some(format!(
                    "{}: a digest cache of {} digests in a {algorithm} repository; reading every file",
                    path.display(),
                    c.algorithm()
                )),
            ),
            Err(e) => (
                empty(),
                Some(format!(
                    "{}: not a valid digest cache ({e}); reading every file",
                    path.display()
                )),
            ),
        },
        Err(e) => (empty(), Some(format!("{e}; reading every file"))),
    };
    (Some(Arc::new(cache)), warning)
}

/// Reads `source` into a tree, storing its files through `tx`'s object store.
fn read_source(
    source: Source,
    read: &ReadOptions,
    tx: &sealroot_repo::Transaction<'_>,
    cache: Option<Arc<DigestCache>>,
    progress: &dyn Progress,
) -> Result<sealroot_format::Tree, Error> {
    let store = tx.object_store();
    let options = BuildOptions {
        use_epoch: read.use_epoch,
        skip_devices: read.skip_devices,
        skip_xattrs: read.skip_xattrs,
        user_xattrs: read.user_xattrs,
        hardlinks: read.hardlinks,
        threads: read.threads,
        algorithm: store.options().algorithm,
        object_store: Some(store.clone()),
        // The transaction flushes the filesystem once before the ref is set.
        sync_objects: false,
        cache,
        ..Default::default()
    };
    match source {
        Source::Dir(path) => sealroot_tree::build_from_dir(&path, &options, progress)
            .map_err(|source| Error::Build { path, source }),
        Source::Archive { name, reader } => {
            let tar = TarOptions::from_build_options(&options);
            build_from_tar(
                std::io::BufReader::with_capacity(1 << 20, reader),
                &tar,
                &*store,
            )
            .map_err(|source| Error::Archive { name, source })
        }
    }
}
