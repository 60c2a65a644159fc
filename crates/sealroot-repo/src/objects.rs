//! Objects: adding them (in a [`Transaction`]), finding, opening and listing them.
//!
//! A new object is written to an unnamed `O_TMPFILE` (in `tmp/`; a named temporary file
//! there where the filesystem lacks `O_TMPFILE`) while its digest is computed, given
//! fs-verity where the filesystem supports it (and then measured by the kernel, which must
//! agree), and only then linked to `objects/XX/REST`: no name ever shows a partial object.
//! If the name exists already the new copy is dropped: identical content is stored once.
//! The steps are `sealroot-objects`' (shared with `sealroot-tree`'s digest store); what is
//! counted, when fs-verity is required and how errors are named are decided here.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;
pub(crate) use sealroot_objects::measure;
use sealroot_objects::EnableError;
use sealroot_sys::fsverity::VerityError;
use sealroot_verity::Hasher;

use crate::error::{IoError, ObjectError, Operation as Op};
use crate::fs::{self, TmpFile};
use crate::id::ObjectId;
use crate::transaction::Transaction;
use crate::{Repository, OBJECTS_DIR, TMP_DIR};

impl Repository {
    /// The path of object `id` (whether or not it exists).
    pub fn object_path(&self, id: &ObjectId) -> PathBuf {
        self.objects_path().join(id.object_path())
    }

    /// Checks that `id` is of this repository's algorithm.
    pub(crate) fn check_algorithm(&self, id: &ObjectId) -> Result<(), ObjectError> {
        if id.algorithm() == self.algorithm() {
            Ok(())
        } else {
            Err(ObjectError::WrongAlgorithm {
                object: *id,
                expected: self.algorithm(),
            })
        }
    }

    /// Whether object `id` is in the repository.
    pub fn has_object(&self, id: &ObjectId) -> Result<bool, ObjectError> {
        self.check_algorithm(id)?;
        let rel = format!("{OBJECTS_DIR}/{}", id.object_path());
        match rustix::fs::statat(self.dir(), rel.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(IoError::new(Op::Stat, self.object_path(id), e).into()),
        }
    }

    /// Opens object `id` for reading. Its content is not checked here (the kernel checks it
    /// on every read where it has fs-verity; [`fsck`](Repository::fsck) checks all).
    pub fn open_object(&self, id: &ObjectId) -> Result<File, ObjectError> {
        self.check_algorithm(id)?;
        let rel = format!("{OBJECTS_DIR}/{}", id.object_path());
        match crate::open_file(self.dir(), &rel) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::NOENT) => Err(ObjectError::NotFound(*id)),
            Err(e) => Err(IoError::new(Op::Open, self.object_path(id), e).into()),
        }
    }

    /// Every object, directory by directory (`objects/00` to `objects/ff`). Names that are
    /// not objects of this repository's algorithm (temporary files, strays) are skipped;
    /// [`fsck`](Repository::fsck) reports them.
    pub fn objects(&self) -> Objects<'_> {
        Objects {
            repo: self,
            next_dir: 0,
            current: Vec::new().into_iter(),
        }
    }
}

/// The iterator of [`Repository::objects`].
pub struct Objects<'r> {
    repo: &'r Repository,
    next_dir: u16,
    current: std::vec::IntoIter<ObjectId>,
}

impl Iterator for Objects<'_> {
    type Item = Result<ObjectId, ObjectError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(id) = self.current.next() {
                return Some(Ok(id));
            }
            if self.next_dir > 0xff {
                return None;
            }
            let byte = self.next_dir as u8;
            self.next_dir += 1;
            let rel = format!("{OBJECTS_DIR}/{byte:02x}");
            let entries = match fs::list_at(self.repo.dir(), &rel) {
                Ok(entries) => entries,
                Err(e) => return Some(Err(IoError::new(Op::List, self.repo.join(&rel), e).into())),
            };
            let alg = self.repo.algorithm();
            let mut ids: Vec<ObjectId> = entries
                .iter()
                .filter(|e| {
                    e.file_type == FileType::RegularFile || e.file_type == FileType::Unknown
                })
                .filter_map(|e| ObjectId::from_dir_entry(alg, byte, e.name.to_bytes()))
                .collect();
            ids.sort();
            self.current = ids.into_iter();
        }
    }
}

/// The `stat` fields that change when a file is modified or replaced.
#[derive(PartialEq, Eq)]
struct FileState {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (i64, u64),
    ctime: (i64, u64),
}

impl FileState {
    fn of(fd: BorrowedFd<'_>) -> Result<Self, Errno> {
        let st = rustix::fs::fstat(fd)?;
        Ok(FileState {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec as u64),
            ctime: (st.st_ctime, st.st_ctime_nsec as u64),
        })
    }
}

impl Transaction<'_> {
    /// Stores `data` as an object; returns its id.
    pub fn ensure_object(&self, data: &[u8]) -> Result<ObjectId, ObjectError> {
        let mut reader = data;
        self.ensure_object_from_reader(&mut reader)
    }

    /// Stores everything `reader` yields as an object, hashing it as it is written; returns
    /// its id. If the object exists already, the new copy is dropped.
    pub fn ensure_object_from_reader(
        &self,
        reader: &mut dyn Read,
    ) -> Result<ObjectId, ObjectError> {
        let repo = self.repo;
        let tmp_path = repo.join(TMP_DIR);
        let tmp = repo
            .tmp
            .create(&self.tmp, ".")
            .map_err(|e| IoError::new(Op::Create, &tmp_path, e))?;
        let mut hasher = Hasher::new(repo.verity_params());
        fs::with_buffer(|buf| -> Result<(), ObjectError> {
            loop {
                let n = match reader.read(buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(IoError::new(Op::Read, "(object source)", e).into()),
                };
                hasher.update(&buf[..n]);
                fs::write_all(tmp.fd(), &buf[..n])
                    .map_err(|e| IoError::new(Op::Write, &tmp_path, e))?;
            }
        })?;
        let size = hasher.bytes_hashed();
        let id = ObjectId::new(hasher.finish());
        self.place(tmp, &id, size)?;
        Ok(id)
    }

    /// Stores the whole regular file open as `fd` as an object; returns its id. The file is
    /// hashed first, so an object already present costs no copy; a new one is copied the
    /// fastest way the filesystem offers (a reflink, else `copy_file_range`, else reads and
    /// writes). The file must not change meanwhile ([`ObjectError::SourceChanged`]).
    pub fn ensure_object_from_fd(&self, fd: BorrowedFd<'_>) -> Result<ObjectId, ObjectError> {
        let repo = self.repo;
        let src_err = |op, e: Errno| ObjectError::from(IoError::new(op, "(object source)", e));
        let before = FileState::of(fd).map_err(|e| src_err(Op::Stat, e))?;
        let (digest, size) = fs::hash_fd(&repo.verity_params(), fd)
            .map_err(|e| IoError::new(Op::Read, "(object source)", e))?;
        if size != before.size as u64 {
            return Err(ObjectError::SourceChanged);
        }
        let id = ObjectId::new(digest);
        if repo.has_object(&id)? {
            self.counters
                .objects_present
                .fetch_add(1, Ordering::Relaxed);
            return Ok(id);
        }
        let tmp_path = repo.join(TMP_DIR);
        let tmp = repo
            .tmp
            .create(&self.tmp, ".")
            .map_err(|e| IoError::new(Op::Create, &tmp_path, e))?;
        fs::with_buffer(|buf| sealroot_objects::copy(fd, tmp.fd().as_fd(), size, buf, None))
            .map_err(|e| IoError::new(Op::Copy, &tmp_path, e))?;
        let after = FileState::of(fd).map_err(|e| src_err(Op::Stat, e))?;
        if after != before {
            return Err(ObjectError::SourceChanged);
        }
        self.place(tmp, &id, size)?;
        Ok(id)
    }

    /// Gives the complete temporary file `tmp`, holding `size` bytes whose digest is `id`,
    /// its object name, with fs-verity where the filesystem supports it. Returns whether the
    /// object is new.
    pub(crate) fn place(
        &self,
        tmp: TmpFile<'_>,
        id: &ObjectId,
        size: u64,
    ) -> Result<bool, ObjectError> {
        self.place_signed(tmp, id, size, None)
    }

    /// [`place`](Self::place), enabling fs-verity with a kernel built-in `signature` where
    /// the filesystem has fs-verity (the kernel checks it against its `.fs-verity` keyring
    /// and refuses a bad one; without fs-verity the signature has nothing to do).
    pub(crate) fn place_signed(
        &self,
        mut tmp: TmpFile<'_>,
        id: &ObjectId,
        size: u64,
        signature: Option<&[u8]>,
    ) -> Result<bool, ObjectError> {
        let repo = self.repo;
        let path = repo.object_path(id);
        if repo.has_object(id)? {
            self.counters
                .objects_present
                .fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        rustix::fs::fchmod(tmp.fd(), crate::object_mode())
            .map_err(|e| IoError::new(Op::Write, &path, e))?;
        if repo.verity_supported() {
            let params = crate::enable_params(repo.algorithm());
            match sealroot_objects::enable_verity_signed(&mut tmp, &params, id.digest(), signature)
            {
                Ok(()) => {}
                Err(EnableError::Reopen(e)) => return Err(IoError::new(Op::Open, &path, e).into()),
                Err(EnableError::Enable(e)) if repo.config().require_verity => {
                    return Err(ObjectError::VerityRequired { path, source: e })
                }
                Err(EnableError::Enable(
                    VerityError::NotSupported(_) | VerityError::InvalidParameters,
                )) if signature.is_none() => {}
                Err(EnableError::Enable(e)) => {
                    return Err(IoError::new(Op::EnableVerity, &path, e).into())
                }
                Err(EnableError::Measure(e)) => {
                    return Err(IoError::new(Op::MeasureVerity, "(new object)", e).into())
                }
                Err(EnableError::Mismatch { measured, .. }) => {
                    return Err(ObjectError::VerityMismatch {
                        object: *id,
                        measured: measured
                            .map_or_else(|| "(an unknown algorithm)".into(), |d| d.to_string()),
                    })
                }
                Err(e) => {
                    let e = std::io::Error::other(e);
                    return Err(IoError::new(Op::EnableVerity, &path, e).into());
                }
            }
        } else if repo.config().require_verity {
            return Err(ObjectError::VerityRequired {
                path,
                source: VerityError::NotSupported(Errno::OPNOTSUPP),
            });
        }
        self.ensure_subdir(id)?;
        let added = repo
            .tmp
            .link(&mut tmp, &self.objects, &id.object_path())
            .map_err(|e| IoError::new(Op::Link, &path, e))?;
        if added {
            self.wrote();
            self.counters.objects_added.fetch_add(1, Ordering::Relaxed);
            self.counters.bytes_added.fetch_add(size, Ordering::Relaxed);
        } else {
            self.counters
                .objects_present
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(added)
    }
}
