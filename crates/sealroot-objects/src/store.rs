//! [`Store`]: an open `objects/XX/REST` store, the one place where a new object is written,
//! sealed and linked. The repository's transactions and `mkcomposefs --digest-store` (and
//! the tree builder writing through either) all store objects with it.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use sealroot_sys::fsverity::{EnableParams, VerityError};
use sealroot_verity::{AnyDigest, DigestSet, HashAlgorithm, Hasher, Params};

use crate::{copy, with_buffer, write_all, CopyMemo, EnableError, Fallback, TmpFile, TmpPolicy};
use crate::{DIR_MODE, OBJECT_MODE};

/// What a store does where fs-verity cannot be enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerityPolicy {
    /// Enable it where the filesystem can; a store without fs-verity is still a store (as C
    /// mkcomposefs does).
    Try,
    /// Every object must have it: a filesystem without it is an error.
    Require,
}

/// How a [`Store`] writes.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// The digest algorithm naming objects (4 KiB Merkle blocks, no salt).
    pub algorithm: HashAlgorithm,
    /// How temporary files are named where the filesystem has no `O_TMPFILE`.
    pub fallback: Fallback,
    /// `fsync` each object before it gets its name (the digest store does, as C
    /// mkcomposefs; the repository flushes once per ref instead).
    pub sync_each: bool,
    /// fs-verity: tried or required.
    pub verity: VerityPolicy,
    /// Remember every object stored or found present, for [`Store::is_known`].
    pub record: bool,
}

/// Whether an object was new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    /// Written now.
    New,
    /// It was there already (the new copy, if any, was dropped).
    Present,
}

/// What a [`Store`] was doing when a system call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreOp {
    /// Looking an object up.
    Lookup,
    /// Creating or opening an `XX/` directory.
    Subdir,
    /// Creating a temporary file.
    Create,
    /// Writing or copying content.
    Write,
    /// Setting the object's mode or flushing it.
    Seal,
    /// Enabling or measuring fs-verity.
    Verity,
    /// Giving the object its name.
    Link,
}

impl std::fmt::Display for StoreOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreOp::Lookup => "looking up",
            StoreOp::Subdir => "creating the directory of",
            StoreOp::Create => "creating a temporary file for",
            StoreOp::Write => "writing",
            StoreOp::Seal => "sealing",
            StoreOp::Verity => "enabling fs-verity on",
            StoreOp::Link => "linking",
        })
    }
}

/// Why an object could not be stored. Paths are the store's (see [`Store::path`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: StoreOp,
        /// The object's path (or the store's, before the digest is known).
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// Reading the content failed (the source's own error).
    #[error("reading the content: {0}")]
    Read(#[source] io::Error),
    /// The content was not the size announced.
    #[error("the content was {got} bytes, not the {expected} announced")]
    Size {
        /// Announced.
        expected: u64,
        /// Read.
        got: u64,
    },
    /// The source changed while it was hashed and copied.
    #[error("the source changed while it was being stored")]
    SourceChanged,
    /// fs-verity is required and could not be enabled.
    #[error("{}: fs-verity is required here: {source}", path.display())]
    VerityRequired {
        /// The object.
        path: PathBuf,
        /// Why enabling failed.
        #[source]
        source: VerityError,
    },
    /// The kernel measured another digest than the one computed while writing: the data
    /// changed on its way to the disk.
    #[error("{}: the kernel measured fs-verity digest {}", path.display(),
        measured.as_ref().map_or_else(|| "(an unknown algorithm)".to_owned(), |d| d.to_string()))]
    VerityMismatch {
        /// The object.
        path: PathBuf,
        /// What the kernel measured.
        measured: Option<Box<AnyDigest>>,
    },
}

impl StoreError {
    /// Whether the filesystem is full (or the quota is reached).
    pub fn is_no_space(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => matches!(
                source.raw_os_error(),
                Some(e) if e == Errno::NOSPC.raw_os_error() || e == Errno::DQUOT.raw_os_error()
            ),
            _ => false,
        }
    }
}

/// Counts of what a [`Store`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// New objects.
    pub added: u64,
    /// Their bytes.
    pub bytes_added: u64,
    /// Objects asked for that were present.
    pub present: u64,
}

/// The `XX/` directories of a store: created on first use and kept open, each checked to be
/// a real directory (a symlink planted there is refused, never followed).
#[derive(Debug)]
pub struct Subdirs([OnceLock<OwnedFd>; 256]);

impl Default for Subdirs {
    fn default() -> Self {
        Subdirs(std::array::from_fn(|_| OnceLock::new()))
    }
}

impl Subdirs {
    /// The name of the directory of objects whose digest starts with `byte`: two lower-case
    /// hex digits.
    pub fn name(byte: u8) -> String {
        format!("{byte:02x}")
    }

    /// Directory [`name(byte)`](Subdirs::name) of the store open as `objects`, created
    /// (mode [`DIR_MODE`]) unless it exists, and opened without following a symlink.
    pub fn open(&self, objects: impl AsFd, byte: u8) -> Result<BorrowedFd<'_>, Errno> {
        let cell = &self.0[usize::from(byte)];
        if let Some(fd) = cell.get() {
            return Ok(fd.as_fd());
        }
        let name = Self::name(byte);
        match rustix::fs::mkdirat(&objects, name.as_str(), Mode::from_raw_mode(DIR_MODE)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e),
        }
        let fd = match rustix::fs::openat(
            &objects,
            name.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // O_DIRECTORY | O_NOFOLLOW says ENOTDIR at a symlink: say ELOOP, as for every
            // other symlink refused.
            Err(Errno::NOTDIR) => {
                let st = rustix::fs::statat(&objects, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)?;
                return Err(
                    if rustix::fs::FileType::from_raw_mode(st.st_mode)
                        == rustix::fs::FileType::Symlink
                    {
                        Errno::LOOP
                    } else {
                        Errno::NOTDIR
                    },
                );
            }
            Err(e) => return Err(e),
        };
        Ok(cell.get_or_init(|| fd).as_fd())
    }
}

/// An open object store. It is `Sync`: many threads store objects at once.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    dir: OwnedFd,
    /// Where content of unknown digest is written while it is hashed (same filesystem).
    tmp_dir: Option<OwnedFd>,
    subdirs: Subdirs,
    tmp: TmpPolicy,
    copy: CopyMemo,
    /// Set once the filesystem refused fs-verity (with [`VerityPolicy::Try`]).
    no_verity: AtomicBool,
    options: StoreOptions,
    added: AtomicU64,
    bytes_added: AtomicU64,
    present: AtomicU64,
    known: Option<Mutex<DigestSet<AnyDigest>>>,
}

impl Store {
    /// A store over the open directory `dir` (at `path`, for messages); content of unknown
    /// digest is written in `tmp_dir` (else in `dir`) until its name is known.
    pub fn new(path: &Path, dir: OwnedFd, tmp_dir: Option<OwnedFd>, options: StoreOptions) -> Self {
        Store {
            path: path.to_owned(),
            dir,
            tmp_dir,
            subdirs: Subdirs::default(),
            tmp: TmpPolicy::new(options.fallback),
            copy: CopyMemo::default(),
            no_verity: AtomicBool::new(false),
            options,
            added: AtomicU64::new(0),
            bytes_added: AtomicU64::new(0),
            present: AtomicU64::new(0),
            known: options.record.then(|| Mutex::new(DigestSet::default())),
        }
    }

    /// The store's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store's directory.
    pub fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// The options it writes with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// The temporary-file policy (tests turn `O_TMPFILE` off with it).
    pub fn tmp_policy(&self) -> &TmpPolicy {
        &self.tmp
    }

    /// What the copy learnt (tests turn `copy_file_range` off with it).
    pub fn copy_memo(&self) -> &CopyMemo {
        &self.copy
    }

    /// What was written so far.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            added: self.added.load(Ordering::Relaxed),
            bytes_added: self.bytes_added.load(Ordering::Relaxed),
            present: self.present.load(Ordering::Relaxed),
        }
    }

    /// The path of object `digest` (for messages).
    pub fn object_path(&self, digest: &AnyDigest) -> PathBuf {
        let hex = digest.to_string();
        self.path.join(&hex[..2]).join(&hex[2..])
    }

    /// Whether `digest` was stored or found present by this store (with
    /// [`StoreOptions::record`]; always `false` without).
    pub fn is_known(&self, digest: &AnyDigest) -> bool {
        self.known
            .as_ref()
            .is_some_and(|k| k.lock().unwrap_or_else(|e| e.into_inner()).contains(digest))
    }

    fn remember(&self, digest: &AnyDigest) {
        if let Some(k) = &self.known {
            k.lock().unwrap_or_else(|e| e.into_inner()).insert(*digest);
        }
    }

    fn io(&self, op: StoreOp, digest: Option<&AnyDigest>, e: impl Into<io::Error>) -> StoreError {
        StoreError::Io {
            op,
            path: digest.map_or_else(|| self.path.clone(), |d| self.object_path(d)),
            source: e.into(),
        }
    }

    /// The `XX/` directory of `digest` and the object's name in it.
    fn subdir(&self, digest: &AnyDigest) -> Result<(BorrowedFd<'_>, String), StoreError> {
        let hex = digest.to_string();
        let byte = digest.as_bytes()[0];
        let dir = self
            .subdirs
            .open(&self.dir, byte)
            .map_err(|e| self.io(StoreOp::Subdir, Some(digest), e))?;
        Ok((dir, hex[2..].to_owned()))
    }

    /// Whether object `digest` is in the store (a regular name, through no symlink).
    pub fn contains(&self, digest: &AnyDigest) -> Result<bool, StoreError> {
        let (dir, name) = self.subdir(digest)?;
        // One lookup, not following a symlink: anything but a regular file is not an object.
        match rustix::fs::statat(dir, name.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match rustix::fs::FileType::from_raw_mode(st.st_mode) {
                rustix::fs::FileType::RegularFile => {
                    self.present.fetch_add(1, Ordering::Relaxed);
                    self.remember(digest);
                    Ok(true)
                }
                rustix::fs::FileType::Symlink => {
                    Err(self.io(StoreOp::Lookup, Some(digest), Errno::LOOP))
                }
                rustix::fs::FileType::Directory => {
                    Err(self.io(StoreOp::Lookup, Some(digest), Errno::ISDIR))
                }
                _ => Err(self.io(
                    StoreOp::Lookup,
                    Some(digest),
                    io::Error::other("not a regular file"),
                )),
            },
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(self.io(StoreOp::Lookup, Some(digest), e)),
        }
    }

    /// Stores the first `size` bytes of `src`, whose digest is `digest`, unless the object is
    /// there already: copied the fastest way the filesystem offers (a reflink, else
    /// `copy_file_range`, else reads and writes through `buf`). `unchanged` is asked after the
    /// copy whether the source is still what was hashed ([`StoreError::SourceChanged`] if
    /// not).
    pub fn insert_fd(
        &self,
        src: BorrowedFd<'_>,
        size: u64,
        digest: &AnyDigest,
        buf: &mut [u8],
        unchanged: &dyn Fn() -> io::Result<bool>,
    ) -> Result<Placed, StoreError> {
        if self.contains(digest)? {
            return Ok(Placed::Present);
        }
        // In the object's own directory unless the store has a place for temporary files.
        let subdir;
        let at = match &self.tmp_dir {
            Some(t) => t,
            None => {
                subdir = self
                    .subdir(digest)?
                    .0
                    .try_clone_to_owned()
                    .map_err(|e| self.io(StoreOp::Create, Some(digest), e))?;
                &subdir
            }
        };
        let mut tmp = self
            .tmp
            .create(at)
            .map_err(|e| self.io(StoreOp::Create, Some(digest), e))?;
        let copied = copy(src, tmp.fd().as_fd(), size, buf, Some(&self.copy));
        // The object must hold what was hashed (a file that shrank also fails the copy).
        match unchanged() {
            Ok(true) => {}
            Ok(false) => return Err(StoreError::SourceChanged),
            Err(e) => return Err(StoreError::Read(e)),
        }
        copied.map_err(|e| self.io(StoreOp::Write, Some(digest), e))?;
        self.place(&mut tmp, digest, size, None)
    }

    /// Stores everything `content` yields (exactly `size` bytes, if given), hashing it as it
    /// is written; returns its digest, its size and whether it was new.
    pub fn insert_reader(
        &self,
        content: &mut dyn Read,
        size: Option<u64>,
    ) -> Result<(AnyDigest, u64, Placed), StoreError> {
        let tmp_dir = self.tmp_dir.as_ref().unwrap_or(&self.dir);
        let mut tmp = self
            .tmp
            .create(tmp_dir)
            .map_err(|e| self.io(StoreOp::Create, None, e))?;
        let params = Params::new(self.options.algorithm, 4096, &[]).expect("valid parameters");
        let mut hasher = Hasher::new(params);
        with_buffer(|buf| loop {
            let n = match content.read(buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::Read(e)),
            };
            hasher.update(&buf[..n]);
            write_all(tmp.fd(), &buf[..n]).map_err(|e| self.io(StoreOp::Write, None, e))?;
        })?;
        let got = hasher.bytes_hashed();
        if let Some(expected) = size.filter(|&s| s != got) {
            return Err(StoreError::Size { expected, got });
        }
        let digest = hasher.finish();
        let placed = self.place(&mut tmp, &digest, got, None)?;
        Ok((digest, got, placed))
    }

    /// Gives the complete temporary file `tmp` (made with [`Store::create_tmp`]), holding
    /// `size` bytes whose digest is `digest`, its object name: mode, an optional `fsync`,
    /// fs-verity (with a kernel built-in `signature` if given) checked against the kernel's
    /// measurement, then a link. An object of that name already there is kept.
    pub fn place(
        &self,
        tmp: &mut TmpFile<'_>,
        digest: &AnyDigest,
        size: u64,
        signature: Option<&[u8]>,
    ) -> Result<Placed, StoreError> {
        if self.contains(digest)? {
            return Ok(Placed::Present);
        }
        let err = |op, e: Errno| self.io(op, Some(digest), e);
        rustix::fs::fchmod(tmp.fd(), Mode::from_raw_mode(OBJECT_MODE))
            .map_err(|e| err(StoreOp::Seal, e))?;
        if self.options.sync_each {
            rustix::fs::fsync(tmp.fd()).map_err(|e| err(StoreOp::Seal, e))?;
        }
        self.enable_verity(tmp, digest, signature)?;
        let (dir, name) = self.subdir(digest)?;
        let placed = match self.tmp.link(tmp, dir, &name) {
            Ok(true) => Placed::New,
            Ok(false) => Placed::Present,
            Err(e) => return Err(err(StoreOp::Link, e)),
        };
        match placed {
            Placed::New => {
                self.added.fetch_add(1, Ordering::Relaxed);
                self.bytes_added.fetch_add(size, Ordering::Relaxed);
            }
            Placed::Present => {
                self.present.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.remember(digest);
        Ok(placed)
    }

    /// A new temporary file for content of unknown digest, to fill and then
    /// [`place`](Self::place).
    pub fn create_tmp(&self) -> Result<TmpFile<'_>, StoreError> {
        let tmp_dir = self.tmp_dir.as_ref().unwrap_or(&self.dir);
        self.tmp
            .create(tmp_dir)
            .map_err(|e| self.io(StoreOp::Create, None, e))
    }

    fn enable_verity(
        &self,
        tmp: &mut TmpFile<'_>,
        digest: &AnyDigest,
        signature: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let path = || self.object_path(digest);
        let require = self.options.verity == VerityPolicy::Require;
        if self.no_verity.load(Ordering::Relaxed) && signature.is_none() {
            return if require {
                Err(StoreError::VerityRequired {
                    path: path(),
                    source: VerityError::NotSupported(Errno::OPNOTSUPP),
                })
            } else {
                Ok(())
            };
        }
        let params = EnableParams {
            hash_algorithm: u16::from(self.options.algorithm.kernel_id()),
            block_size: 4096,
            salt: &[],
        };
        match crate::enable_verity_signed(tmp, &params, digest, signature) {
            Ok(()) => Ok(()),
            Err(EnableError::Enable(
                e @ (VerityError::NotSupported(_) | VerityError::InvalidParameters),
            )) if signature.is_none() => {
                if require {
                    return Err(StoreError::VerityRequired {
                        path: path(),
                        source: e,
                    });
                }
                self.no_verity.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(EnableError::Enable(e)) if require => Err(StoreError::VerityRequired {
                path: path(),
                source: e,
            }),
            Err(EnableError::Mismatch { measured }) => Err(StoreError::VerityMismatch {
                path: path(),
                measured,
            }),
            Err(EnableError::Reopen(e)) => Err(self.io(StoreOp::Verity, Some(digest), e)),
            Err(EnableError::Enable(e) | EnableError::Measure(e)) => Err(StoreError::Io {
                op: StoreOp::Verity,
                path: path(),
                source: io::Error::other(e),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_dir(path: &Path) -> OwnedFd {
        rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    fn store(path: &Path, record: bool) -> Store {
        std::fs::create_dir_all(path).unwrap();
        Store::new(
            path,
            open_dir(path),
            None,
            StoreOptions {
                algorithm: HashAlgorithm::Sha256,
                fallback: Fallback::Rename,
                sync_each: false,
                verity: VerityPolicy::Try,
                record,
            },
        )
    }

    #[test]
    fn objects_are_stored_once_and_remembered() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(&tmp.path().join("s"), true);
        let (d, size, placed) = s.insert_reader(&mut &b"hello"[..], Some(5)).unwrap();
        assert_eq!((size, placed), (5, Placed::New));
        assert_eq!(
            d,
            sealroot_verity::digest(&Params::composefs_default(), b"hello")
        );
        let (_, _, again) = s.insert_reader(&mut &b"hello"[..], None).unwrap();
        assert_eq!(again, Placed::Present);
        assert!(s.is_known(&d));
        assert_eq!(std::fs::read(s.object_path(&d)).unwrap(), b"hello");
        assert_eq!(s.stats().added, 1);
        let short = s.insert_reader(&mut &b"hello"[..], Some(6));
        assert!(matches!(short, Err(StoreError::Size { .. })), "{short:?}");
    }

    #[test]
    fn a_symlinked_subdir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        std::fs::create_dir_all(&path).unwrap();
        let d = sealroot_verity::digest(&Params::composefs_default(), b"x");
        let hex = d.to_string();
        std::os::unix::fs::symlink(outside.path(), path.join(&hex[..2])).unwrap();
        let s = store(&path, false);
        let r = s.insert_reader(&mut &b"x"[..], None);
        assert!(
            matches!(
                &r,
                Err(StoreError::Io {
                    op: StoreOp::Subdir,
                    source,
                    ..
                }) if source.raw_os_error() == Some(Errno::LOOP.raw_os_error())
            ),
            "{r:?}"
        );
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
