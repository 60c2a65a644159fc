//! [`Repository`]: an open repository, its configuration and its layout directories.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use sealroot_sys::fsverity::{self, EnableParams};
use sealroot_verity::{HashAlgorithm, Params};

use crate::config::Config;
use crate::error::{IoError, OpenError, Operation as Op};
use crate::fs;
use crate::id::LOG_BLOCK_SIZE;
use crate::layout;

/// The directories of the layout a [`Repository`] keeps open once it has opened them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LayoutDir {
    /// `objects/`.
    Objects,
    /// `images/`.
    Images,
    /// `commits/`.
    Commits,
    /// `tmp/`.
    Tmp,
}

impl LayoutDir {
    pub(crate) const fn rel(self) -> &'static str {
        match self {
            LayoutDir::Objects => layout::OBJECTS,
            LayoutDir::Images => layout::IMAGES,
            LayoutDir::Commits => layout::COMMITS,
            LayoutDir::Tmp => layout::TMP,
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// An open repository. It is `Sync`: threads may share it.
///
/// It reads objects, images, commits and refs (the read side, which is all a boot-time
/// reader needs); with the `write` feature, [`transaction`](Repository::transaction) adds
/// to it and [`fsck`](Repository::fsck) and [`gc`](Repository::gc) maintain it.
pub struct Repository {
    path: PathBuf,
    dir: OwnedFd,
    config: Config,
    /// Whether new files get fs-verity here, learnt on first use.
    verity: OnceLock<bool>,
    /// The layout directories opened so far (each checked to be a real directory).
    dirs: [OnceLock<OwnedFd>; 4],
    pub(crate) tmp: fs::TmpPolicy,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("path", &self.path)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Opens the repository directory `path` itself (the one path followed through links: the
/// repository's own path may hold them, nothing inside it may).
pub(crate) fn open_top(path: &Path) -> Result<OwnedFd, IoError> {
    rustix::fs::openat(
        rustix::fs::CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| IoError::new(Op::Open, path, e))
}

impl Repository {
    /// Opens the repository at `path`. Refuses one of a newer format, or with features this
    /// code does not know, or with a damaged `meta.json`, with an error naming the file.
    pub fn open(path: &Path) -> Result<Repository, OpenError> {
        let dir = open_top(path)?;
        let meta = path.join(layout::META_FILE);
        let file = match fs::open_file(&dir, layout::META_FILE) {
            Ok(fd) => std::fs::File::from(fd),
            Err(Errno::NOENT) => {
                return Err(OpenError::NotARepository {
                    path: path.to_owned(),
                })
            }
            Err(e) => return Err(IoError::new(Op::Open, &meta, e).into()),
        };
        let st = rustix::fs::fstat(&file).map_err(|e| IoError::new(Op::Stat, &meta, e))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(OpenError::BadConfig {
                path: meta,
                reason: format!(
                    "not a regular file but a {}",
                    describe_type(rustix::fs::FileType::from_raw_mode(st.st_mode))
                ),
            });
        }
        let has_verity =
            fsverity::is_verity_enabled(&file).map_err(|e| IoError::new(Op::Stat, &meta, e))?;
        let text = fs::read_bounded(file.into(), crate::config::META_MAX)
            .map_err(|e| IoError::new(Op::Read, &meta, e))?
            .ok_or_else(|| OpenError::BadConfig {
                path: meta.clone(),
                reason: format!("larger than {} bytes", crate::config::META_MAX),
            })?;
        let config = Config::parse(&text, &meta, has_verity)?;
        Ok(Repository {
            path: path.to_owned(),
            dir,
            config,
            verity: OnceLock::new(),
            dirs: Default::default(),
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

    /// `objects/`: the object store, the `basedir` to mount images with.
    pub fn objects_path(&self) -> PathBuf {
        self.path.join(layout::OBJECTS)
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
            .get_or_init(|| match self.layout_dir(LayoutDir::Tmp) {
                Ok(tmp) => probe_verity(tmp, self.config.algorithm),
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

    /// Layout directory `which`, opened once (a real directory, no symlink on the way). A
    /// missing one is an error whose [`IoError::is_not_found`] is true.
    pub(crate) fn layout_dir(&self, which: LayoutDir) -> Result<&OwnedFd, IoError> {
        let cell = &self.dirs[which.index()];
        if let Some(fd) = cell.get() {
            return Ok(fd);
        }
        let fd = fs::open_dir(&self.dir, which.rel())
            .map_err(|e| IoError::new(Op::Open, self.join(which.rel()), e))?;
        Ok(cell.get_or_init(|| fd))
    }

    /// [`layout_dir`](Self::layout_dir), `None` where it does not exist.
    pub(crate) fn layout_dir_if_any(&self, which: LayoutDir) -> Result<Option<&OwnedFd>, IoError> {
        match self.layout_dir(which) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens directory `rel` of the layout (e.g. `images/refs`) without caching; `None`
    /// where it does not exist.
    pub(crate) fn open_layout(&self, rel: &str) -> Result<Option<OwnedFd>, IoError> {
        match fs::open_dir(&self.dir, rel) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(IoError::new(Op::Open, self.join(rel), e)),
        }
    }

    /// Creates directory `rel` of the layout (and those above it) and opens it.
    pub(crate) fn create_layout(&self, rel: &str) -> Result<OwnedFd, IoError> {
        fs::ensure_dirs(&self.dir, rel).map_err(|e| IoError::new(Op::CreateDir, self.join(rel), e))
    }

    /// The bytes of file `name` in `cache/` (at most `max`), `None` if there is none: caches
    /// of sealroot's own (the digest cache of directory commits), never needed for
    /// correctness.
    pub fn read_cache_file(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>, IoError> {
        let Some(cache) = self.open_layout(layout::CACHE)? else {
            return Ok(None);
        };
        let path = self.join(layout::CACHE).join(name);
        let fd = match fs::open_file(&cache, name) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(IoError::new(Op::Open, &path, e)),
        };
        fs::read_bounded(fd, max)
            .map_err(|e| IoError::new(Op::Read, &path, e))?
            .map_or_else(
                || {
                    Err(IoError::new(
                        Op::Read,
                        &path,
                        std::io::Error::other(format!("larger than {max} bytes")),
                    ))
                },
                |b| Ok(Some(b)),
            )
    }

    /// Flushes the repository's whole filesystem to stable storage.
    pub(crate) fn syncfs(&self) -> Result<(), IoError> {
        rustix::fs::syncfs(&self.dir).map_err(|e| IoError::new(Op::Sync, &self.path, e))
    }
}

/// A file type in words, for messages.
fn describe_type(t: rustix::fs::FileType) -> &'static str {
    use rustix::fs::FileType as T;
    match t {
        T::RegularFile => "regular file",
        T::Directory => "directory",
        T::Symlink => "symlink",
        T::Fifo => "FIFO",
        T::Socket => "socket",
        T::CharacterDevice => "character device",
        T::BlockDevice => "block device",
        _ => "file of unknown type",
    }
}

/// The fs-verity parameters of a repository of `algorithm`.
pub(crate) fn verity_params(algorithm: HashAlgorithm) -> Params {
    Params::composefs(algorithm)
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
pub(crate) fn probe_verity(dir: &OwnedFd, algorithm: HashAlgorithm) -> bool {
    let policy = fs::tmp_policy();
    let Ok(mut tmp) = policy.create(dir) else {
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
