//! The sealroot repository: file contents stored as objects named by their fs-verity digest,
//! composefs images (stored as objects too), commits with their tree objects and signatures,
//! and named refs to images and commits; with locking, crash safety, `fsck` and `gc`.
//!
//! # Layout
//!
//! The layout is composefs-rs's (0.9), so its `cfsctl` can list, check and mount a repository
//! sealroot wrote, and collect one without commits, and the other way round:
//!
//! ```text
//! REPO/                       mode 0700
//! ├── meta.json               configuration (see Config): version, algorithm, features, sealroot section
//! ├── objects/XX/REST         file contents and images, named by fs-verity digest (hex, XX = first byte)
//! ├── images/HEX              -> ../objects/XX/REST : the objects that are composefs images
//! ├── images/refs/NAME        -> ../HEX (one ../ per component of NAME): named images, the gc roots
//! ├── commits/HEX             -> ../objects/XX/REST : the objects that are commits
//! ├── commits/HEX.sig, .p7s   a commit's ed25519 signatures, its image's kernel signature
//! ├── commits/refs/NAME       -> ../HEX: named commits, gc roots (images/refs/NAME follows)
//! ├── streams/                cfsctl's split streams; sealroot never writes there
//! ├── cache/devino            the digest cache of directory commits
//! └── tmp/                    sealroot's scratch space: transaction markers, temporary files
//! ```
//!
//! # Model
//!
//! [`Repository`] is an open repository; it reads objects, images and refs, and runs
//! [`fsck`](Repository::fsck) and [`gc`](Repository::gc). Everything that *adds* to the
//! repository goes through a [`Transaction`], which holds the repository's shared lock from
//! its first write until it is finished, so that `gc` (which takes the exclusive lock) never
//! runs while objects that no ref reaches yet are being written. A commit is:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use sealroot_repo::{Repository, RefName};
//! # let tree = sealroot_format::Tree::new(Default::default());
//! let repo = Repository::open("/var/lib/sealroot".as_ref())?;
//! let tx = repo.transaction()?;
//! // sealroot_tree::build_from_dir(SOURCE, &BuildOptions { digest_store:
//! //     Some(tx.objects_path()), .. }, &progress) fills the objects and gives `tree`.
//! let image = tx.write_image(&tree, &Default::default())?;
//! tx.set_ref(&RefName::new("os/stable")?, &image)?;
//! tx.finish()?;
//! # Ok(()) }
//! ```
//!
//! # Durability
//!
//! New objects are never fsync'ed one by one: they are written to `O_TMPFILE`s and linked
//! into place, and [`Transaction::set_ref`] flushes the whole filesystem (`syncfs`) once
//! before it writes the ref (tmp symlink + `renameat` + `fsync` of the ref's directory). So
//! a ref that exists reaches only objects and images on stable storage. What makes skipping
//! the per-object fsync safe after a system crash (objects linked but never flushed) is the
//! transaction marker; ARCHITECTURE.md ("The repository") gives the whole argument.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod commits;
mod config;
mod error;
mod fs;
mod fsck;
mod gc;
mod id;
mod images;
mod lock;
mod objects;
mod progress;
mod refs;
mod transaction;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use sealroot_sys::fsverity::{self, EnableParams};
use sealroot_verity::Params;

pub use commits::{CommitError, CommitId, CommitOptions, LogEntry, NewCommit, SIGNATURE_SUFFIX};
pub use config::{Config, COMPOSEFS_REPO_VERSION, META_FILE, SEALROOT_FORMAT};
pub use error::{
    FsckError, GcError, ImageError, IoError, ObjectError, OpenError, Operation, RefError,
    TransactionError,
};
pub use fsck::{
    BrokenCommit, BrokenImage, BrokenRef, CorruptObject, Corruption, FsckOptions, FsckReport,
    ImageProblem, MissingObject, RefProblem, Repaired,
};
pub use gc::{GcOptions, GcReport};
pub use id::{
    IdParseError, ImageId, ObjectId, RefName, RefNameError, LOG_BLOCK_SIZE, REF_NAME_MAX,
};
pub use objects::Objects;
pub use progress::{NoProgress, Phase, Progress};
pub use refs::{RefEntry, RefTarget};
pub use sealroot_verity::HashAlgorithm;
pub use transaction::{RecoveryReport, Transaction, TransactionStats};

use error::Operation as Op;
use fs::{FILE_MODE, REPO_DIR_MODE};

/// The directory of objects.
pub(crate) const OBJECTS_DIR: &str = "objects";
/// The directory of image links.
pub(crate) const IMAGES_DIR: &str = "images";
/// The directory of refs.
pub(crate) const REFS_DIR: &str = "images/refs";
/// composefs-rs's directory of split streams.
pub(crate) const STREAMS_DIR: &str = "streams";
/// sealroot's scratch directory.
pub(crate) const TMP_DIR: &str = "tmp";

/// How to create a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitOptions {
    /// The digest algorithm naming objects and images (sha256 by default; composefs images
    /// record sha256 digests for their files, so trees built by `sealroot-tree` need it).
    pub algorithm: HashAlgorithm,
    /// Require fs-verity on every object and image: `init` fails on a filesystem without
    /// it, and `meta.json` gets fs-verity, which is how `cfsctl` learns the requirement.
    /// Without it, objects still get fs-verity wherever the filesystem supports it.
    pub require_verity: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            algorithm: HashAlgorithm::Sha256,
            require_verity: false,
        }
    }
}

/// An open repository. It is `Sync`: threads may share it.
pub struct Repository {
    path: PathBuf,
    dir: OwnedFd,
    config: Config,
    /// Whether new files get fs-verity here, learnt on first use.
    verity: OnceLock<bool>,
    tmp: fs::TmpPolicy,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("path", &self.path)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Repository {
    /// Creates a repository at `path` (and the directory, if needed) and opens it. On an
    /// existing repository with the same algorithm and verity requirement this just opens
    /// it; with another configuration it fails with [`OpenError::AlreadyInitialized`].
    pub fn init(path: &Path, options: &InitOptions) -> Result<Repository, OpenError> {
        match rustix::fs::mkdirat(rustix::fs::CWD, path, Mode::from_raw_mode(REPO_DIR_MODE)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(IoError::new(Op::CreateDir, path, e).into()),
        }
        let dir = rustix::fs::openat(
            rustix::fs::CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| IoError::new(Op::Open, path, e))?;

        if let Some(existing) = Self::existing_config(path, &dir, options)? {
            return Ok(existing);
        }

        let supported = probe_verity(&dir, options.algorithm);
        if options.require_verity && !supported {
            return Err(OpenError::VerityUnsupported {
                path: path.to_owned(),
            });
        }
        for sub in [OBJECTS_DIR, IMAGES_DIR, REFS_DIR, TMP_DIR] {
            fs::ensure_dir(&dir, sub)
                .map_err(|e| IoError::new(Op::CreateDir, path.join(sub), e))?;
        }

        let config = Config::new(options.algorithm, options.require_verity, supported);
        let meta = path.join(META_FILE);
        let policy = fs::tmp_policy();
        let mut tmp = policy
            .create(&dir, ".")
            .map_err(|e| IoError::new(Op::Create, path, e))?;
        fs::write_all(tmp.fd(), config.to_json().as_bytes())
            .map_err(|e| IoError::new(Op::Write, &meta, e))?;
        rustix::fs::fsync(tmp.fd()).map_err(|e| IoError::new(Op::Sync, &meta, e))?;
        if options.require_verity {
            tmp.reopen_read_only()
                .map_err(|e| IoError::new(Op::Open, &meta, e))?;
            fsverity::enable_verity(tmp.fd(), &enable_params(options.algorithm), None)
                .map_err(|e| IoError::new(Op::EnableVerity, &meta, e))?;
        }
        let linked = policy
            .link(&mut tmp, &dir, META_FILE)
            .map_err(|e| IoError::new(Op::Link, &meta, e))?;
        drop(tmp);
        if !linked {
            // Another init won the race: accept it if it agrees.
            if let Some(existing) = Self::existing_config(path, &dir, options)? {
                return Ok(existing);
            }
        }
        rustix::fs::fsync(&dir).map_err(|e| IoError::new(Op::Sync, path, e))?;
        Self::open(path)
    }

    /// The repository at `path` if it already is one with `options`' configuration; an
    /// error if it is one with another configuration.
    fn existing_config(
        path: &Path,
        dir: &OwnedFd,
        options: &InitOptions,
    ) -> Result<Option<Repository>, OpenError> {
        match rustix::fs::statat(dir, META_FILE, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => {}
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(IoError::new(Op::Stat, path.join(META_FILE), e).into()),
        }
        let repo = Self::open(path)?;
        let c = &repo.config;
        if c.algorithm == options.algorithm && c.require_verity == options.require_verity {
            Ok(Some(repo))
        } else {
            Err(OpenError::AlreadyInitialized {
                path: path.to_owned(),
                existing: format!(
                    "algorithm {}, fs-verity {}",
                    c.algorithm_id(),
                    if c.require_verity {
                        "required"
                    } else {
                        "not required"
                    }
                ),
            })
        }
    }

    /// Opens the repository at `path`. Refuses one of a newer format, or with features this
    /// code does not know, with an error that says so.
    pub fn open(path: &Path) -> Result<Repository, OpenError> {
        let dir = rustix::fs::openat(
            rustix::fs::CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| IoError::new(Op::Open, path, e))?;
        let meta = path.join(META_FILE);
        let file = match rustix::fs::openat(
            &dir,
            META_FILE,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        ) {
            Ok(fd) => std::fs::File::from(fd),
            Err(Errno::NOENT) => {
                return Err(OpenError::NotARepository {
                    path: path.to_owned(),
                })
            }
            Err(e) => return Err(IoError::new(Op::Open, &meta, e).into()),
        };
        let has_verity =
            fsverity::is_verity_enabled(&file).map_err(|e| IoError::new(Op::Stat, &meta, e))?;
        let text = std::io::read_to_string(&file).map_err(|e| IoError::new(Op::Read, &meta, e))?;
        let config = Config::parse(text.as_bytes(), &meta, has_verity)?;
        Ok(Repository {
            path: path.to_owned(),
            dir,
            config,
            verity: OnceLock::new(),
            tmp: fs::tmp_policy(),
        })
    }

    /// The repository's path, as given to [`open`](Self::open).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration read from `meta.json`.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The digest algorithm of objects and images.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.config.algorithm
    }

    /// The fs-verity parameters objects are hashed with.
    pub fn verity_params(&self) -> Params {
        verity_params(self.config.algorithm)
    }

    /// `objects/`: the object store, the `basedir` to mount images with and the digest
    /// store to build trees into (from within a [`Transaction`]).
    pub fn objects_path(&self) -> PathBuf {
        self.path.join(OBJECTS_DIR)
    }

    /// Whether this code may write to the repository: `false` when `meta.json` lists
    /// read-only-compatible features it does not know.
    pub fn is_writable(&self) -> bool {
        self.config.unknown_read_only_features.is_empty()
    }

    /// Whether new objects get fs-verity here: the filesystem and kernel support it for the
    /// repository's algorithm. Learnt once, by trying it on an unnamed temporary file in
    /// `tmp/` (in the repository directory where there is no `tmp/` yet); a repository that
    /// cannot be written to answers `false`.
    pub fn verity_supported(&self) -> bool {
        *self
            .verity
            .get_or_init(|| match fs::open_dir(&self.dir, TMP_DIR) {
                Ok(tmp) => probe_verity(&tmp, self.config.algorithm),
                Err(_) => probe_verity(&self.dir, self.config.algorithm),
            })
    }

    /// The repository directory's descriptor.
    pub(crate) fn dir(&self) -> &OwnedFd {
        &self.dir
    }

    /// A path inside the repository, for messages.
    pub(crate) fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Flushes the repository's whole filesystem to stable storage.
    pub(crate) fn syncfs(&self) -> Result<(), IoError> {
        rustix::fs::syncfs(&self.dir).map_err(|e| IoError::new(Op::Sync, &self.path, e))
    }
}

/// The fs-verity parameters of a repository of `algorithm`.
pub(crate) fn verity_params(algorithm: HashAlgorithm) -> Params {
    Params::new(algorithm, 1 << LOG_BLOCK_SIZE, &[]).expect("4 KiB blocks and no salt are valid")
}

/// The kernel's parameters for enabling fs-verity on an object of `algorithm`.
pub(crate) fn enable_params(algorithm: HashAlgorithm) -> EnableParams<'static> {
    EnableParams {
        hash_algorithm: u16::from(algorithm.kernel_id()),
        block_size: 1 << LOG_BLOCK_SIZE,
        salt: &[],
    }
}

/// Whether fs-verity can be enabled on a new file in directory `dir` with `algorithm`.
fn probe_verity(dir: &OwnedFd, algorithm: HashAlgorithm) -> bool {
    let policy = fs::tmp_policy();
    let Ok(mut tmp) = policy.create(dir, ".") else {
        return false;
    };
    if fs::write_all(tmp.fd(), b"sealroot fs-verity probe").is_err()
        || tmp.reopen_read_only().is_err()
    {
        return false;
    }
    // Any refusal (no support, an algorithm or block size the filesystem lacks) means no.
    fsverity::enable_verity(tmp.fd(), &enable_params(algorithm), None).is_ok()
}

/// Opens file `rel` below the repository read-only, not following a final symlink.
pub(crate) fn open_file<P: rustix::path::Arg>(dir: &OwnedFd, rel: P) -> Result<OwnedFd, Errno> {
    // NONBLOCK: a FIFO put where a file belongs must not hang fsck (for regular files it
    // changes nothing).
    rustix::fs::openat(
        dir,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK,
        Mode::empty(),
    )
}

/// The permissions objects get (for `fchmod` of a new object, whatever the umask).
pub(crate) fn object_mode() -> Mode {
    Mode::from_raw_mode(FILE_MODE)
}
