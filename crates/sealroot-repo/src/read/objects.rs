//! Objects: finding, opening, listing and checking them.
//!
//! The one walker of `objects/XX` lives here ([`Repository::list_object_dirs`]): fsck, gc,
//! crash recovery and [`Repository::objects`] all list the store through it.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use rayon::prelude::*;
use rustix::fs::{Advice, FileType};
use rustix::io::Errno;
use sealroot_sys::fsverity::VerityError;

use crate::error::{IoError, ObjectError, Operation as Op};
use crate::fs;
use crate::id::ObjectId;
use crate::layout;
use crate::repository::LayoutDir;
use crate::Repository;

/// Files at least this large are read with `POSIX_FADV_SEQUENTIAL` (a larger readahead).
const SEQUENTIAL_ADVICE_MIN: i64 = 1 << 20;

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

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Corruption::DigestMismatch { found } => write!(f, "its content has digest {found}"),
            Corruption::VerityMissing => f.write_str("it has no fs-verity, which is required"),
            Corruption::NotARegularFile => f.write_str("it is not a regular file"),
            Corruption::Unreadable(e) => write!(f, "it cannot be read: {e}"),
        }
    }
}

/// Whether a failure to read a file is evidence that it is damaged (the disk or the
/// filesystem says so), rather than a passing condition of this process or machine.
fn is_damage(e: Errno) -> bool {
    // EUCLEAN is EFSCORRUPTED; EBADMSG a checksum failure (btrfs, ext4 metadata_csum).
    matches!(e, Errno::IO | Errno::UCLEAN | Errno::BADMSG)
}

/// The result of checking one object's content against its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Checked {
    /// `None`: good.
    pub(crate) problem: Option<Corruption>,
    /// Its size.
    pub(crate) size: u64,
    /// Checked by the kernel's fs-verity measurement (else recomputed).
    pub(crate) by_kernel: bool,
}

/// One directory `objects/XX`, open, and what it holds.
pub(crate) struct ObjectDir {
    /// `0xXX`.
    pub(crate) byte: u8,
    pub(crate) fd: OwnedFd,
    /// The objects: names that are digests of the repository's algorithm.
    pub(crate) ids: Vec<ObjectId>,
    /// Temporary files of the digest store or composefs-rs (`.tmp-…`).
    pub(crate) temps: Vec<CString>,
    /// Anything else.
    pub(crate) strays: Vec<CString>,
}

impl ObjectDir {
    /// The name of the directory of objects whose digest starts with `byte`.
    pub(crate) fn subdir_name(byte: u8) -> String {
        format!("{byte:02x}")
    }

    /// The file name of object `id` in this directory (the digest's hex without `XX`).
    pub(crate) fn name(id: &ObjectId) -> CString {
        let hex = id.to_hex();
        CString::new(&hex[2..]).expect("hex has no NUL")
    }
}

impl Repository {
    /// The path of object `id` (whether or not it exists).
    pub fn object_path(&self, id: &ObjectId) -> PathBuf {
        self.join(&layout::object_rel(id))
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

    /// Whether object `id` is in the repository (a file of its name, reached through no
    /// symlink).
    pub fn has_object(&self, id: &ObjectId) -> Result<bool, ObjectError> {
        self.check_algorithm(id)?;
        let Some(objects) = self.layout_dir_if_any(LayoutDir::Objects)? else {
            return Ok(false);
        };
        fs::exists(objects, id.object_path().as_str())
            .map_err(|e| IoError::new(Op::Stat, self.object_path(id), e).into())
    }

    /// Opens object `id` for reading. Its content is not checked here (the kernel checks it
    /// on every read where it has fs-verity; [`fsck`](Repository::fsck) checks all, and
    /// [`read_object_checked`](Self::read_object_checked) checks small ones).
    pub fn open_object(&self, id: &ObjectId) -> Result<File, ObjectError> {
        self.check_algorithm(id)?;
        let Some(objects) = self.layout_dir_if_any(LayoutDir::Objects)? else {
            return Err(ObjectError::NotFound(*id));
        };
        match fs::open_file(objects, id.object_path().as_str()) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::NOENT) => Err(ObjectError::NotFound(*id)),
            Err(e) => Err(IoError::new(Op::Open, self.object_path(id), e).into()),
        }
    }

    /// Reads object `id` whole (at most `max` bytes) and checks its content against its
    /// name: for small metadata objects, whose bytes are parsed.
    pub fn read_object_checked(&self, id: &ObjectId, max: usize) -> Result<Vec<u8>, ObjectError> {
        let file = self.open_object(id)?;
        let bytes = fs::read_bounded(file.into(), max as u64)
            .map_err(|e| IoError::new(Op::Read, self.object_path(id), e))?
            .ok_or_else(|| ObjectError::Corrupt {
                object: *id,
                reason: format!("larger than the {max} bytes such an object may have"),
            })?;
        let actual = sealroot_verity::digest(&self.verity_params(), &bytes);
        if actual != *id.digest() {
            return Err(ObjectError::Corrupt {
                object: *id,
                reason: format!("its content has digest {actual}"),
            });
        }
        Ok(bytes)
    }

    /// Checks object `id`'s whole content against its name: the kernel's fs-verity
    /// measurement where the object has fs-verity (the kernel then guarantees every read),
    /// else the digest recomputed. `Ok(None)`: good.
    pub fn verify_object(&self, id: &ObjectId) -> Result<Option<Corruption>, ObjectError> {
        self.check_algorithm(id)?;
        let Some(objects) = self.layout_dir_if_any(LayoutDir::Objects)? else {
            return Err(ObjectError::NotFound(*id));
        };
        let rel = id.object_path();
        let dir = match fs::open_dir(objects, &rel[..2]) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Err(ObjectError::NotFound(*id)),
            Err(e) => return Err(IoError::new(Op::Open, self.object_path(id), e).into()),
        };
        match self.check_object_in(&dir, &ObjectDir::name(id), id) {
            Ok(c) => Ok(c.problem),
            Err(Errno::NOENT) => Err(ObjectError::NotFound(*id)),
            Err(e) => Err(IoError::new(Op::Stat, self.object_path(id), e).into()),
        }
    }

    /// Opens object `id` and checks its whole content against its name on that very file
    /// (see [`Repository::verify_object`]); returns it, positioned at its start, if it is
    /// good, with its identity as it was before the check. Where the object has fs-verity the
    /// kernel checks every later read as well; without, a caller reading it compares that
    /// identity with the file's after reading, to know it did not change.
    pub fn open_object_checked(
        &self,
        id: &ObjectId,
    ) -> Result<(File, sealroot_objects::FileIdentity), ObjectError> {
        let file = self.open_object(id)?;
        let err = |e: Errno| ObjectError::from(IoError::new(Op::Read, self.object_path(id), e));
        let identity = sealroot_objects::FileIdentity::of(&file).map_err(err)?;
        match self.check_fd(file.as_fd(), id).map_err(err)?.problem {
            None => Ok((file, identity)),
            Some(problem) => Err(ObjectError::Corrupt {
                object: *id,
                reason: problem.to_string(),
            }),
        }
    }

    /// Checks object `id`, file `name` in the open `objects/XX` directory `dir`.
    /// `Err(NOENT)` if it is not there.
    pub(crate) fn check_object_in(
        &self,
        dir: &OwnedFd,
        name: &CStr,
        id: &ObjectId,
    ) -> Result<Checked, Errno> {
        let bad = |problem, size, by_kernel| {
            Ok(Checked {
                problem: Some(problem),
                size,
                by_kernel,
            })
        };
        let fd = match fs::open_file(dir, name) {
            Ok(fd) => fd,
            Err(Errno::LOOP) => return bad(Corruption::NotARegularFile, 0, false),
            Err(e) if is_damage(e) => return bad(Corruption::Unreadable(e.to_string()), 0, false),
            // Anything else (no such file, out of descriptors or memory, interrupted) says
            // nothing about the object: the caller decides, never by removing it.
            Err(e) => return Err(e),
        };
        self.check_fd(fd.as_fd(), id)
    }

    /// Checks the open file `fd` as object `id` (see [`Repository::verify_object`]).
    fn check_fd(&self, fd: std::os::fd::BorrowedFd<'_>, id: &ObjectId) -> Result<Checked, Errno> {
        let bad = |problem, size, by_kernel| {
            Ok(Checked {
                problem: Some(problem),
                size,
                by_kernel,
            })
        };
        let st = rustix::fs::fstat(fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return bad(Corruption::NotARegularFile, 0, false);
        }
        let size = st.st_size as u64;
        let mismatch = |found: String| Corruption::DigestMismatch { found };
        // Always asked (one ioctl): a file without fs-verity answers ENODATA, and no probe
        // file is written, so a read-only repository is checked by the kernel too.
        match sealroot_objects::measure(fd) {
            Ok(Some(d)) if d == *id.digest() => {
                return Ok(Checked {
                    problem: None,
                    size,
                    by_kernel: true,
                })
            }
            Ok(Some(d)) => return bad(mismatch(d.to_string()), size, true),
            Ok(None) => return bad(mismatch("(another algorithm)".into()), size, true),
            Err(VerityError::NotEnabled | VerityError::NotSupported(_)) => {}
            Err(VerityError::Other(e)) => match e.raw_os_error().map(Errno::from_raw_os_error) {
                Some(errno) if !is_damage(errno) => return Err(errno),
                _ => return bad(Corruption::Unreadable(e.to_string()), size, false),
            },
            Err(e) => return bad(Corruption::Unreadable(e.to_string()), size, false),
        }
        if self.config().require_verity {
            return bad(Corruption::VerityMissing, size, false);
        }
        if st.st_size >= SEQUENTIAL_ADVICE_MIN {
            let _ = rustix::fs::fadvise(fd, 0, None, Advice::Sequential);
        }
        match fs::hash_fd(&self.verity_params(), fd) {
            Ok((d, _)) if d == *id.digest() => Ok(Checked {
                problem: None,
                size,
                by_kernel: false,
            }),
            Ok((d, _)) => bad(mismatch(d.to_string()), size, false),
            Err(e) => match e.raw_os_error().map(Errno::from_raw_os_error) {
                Some(errno) if !is_damage(errno) => Err(errno),
                _ => bad(Corruption::Unreadable(e.to_string()), size, false),
            },
        }
    }

    /// Every object, directory by directory (`objects/00` to `objects/ff`), each directory
    /// sorted. Names that are not objects of this repository's algorithm (temporary files,
    /// strays) are skipped; [`fsck`](Repository::fsck) reports them.
    pub fn objects(&self) -> Objects<'_> {
        Objects {
            repo: self,
            next_dir: 0,
            current: Vec::new().into_iter(),
        }
    }

    /// Lists every `objects/XX` that exists, in parallel (the one walker of the store). A
    /// name at the top of `objects/` that is not such a directory is returned as a stray.
    pub(crate) fn list_object_dirs(&self) -> Result<(Vec<ObjectDir>, Vec<PathBuf>), IoError> {
        let Some(objects) = self.layout_dir_if_any(LayoutDir::Objects)? else {
            return Ok((Vec::new(), Vec::new()));
        };
        let objects_path = self.objects_path();
        let mut strays = Vec::new();
        fs::for_each(objects, |name, file_type| {
            let is_subdir = name.to_bytes().len() == 2
                && name.to_bytes().iter().all(|b| b.is_ascii_hexdigit())
                && !name.to_bytes().iter().any(u8::is_ascii_uppercase)
                && file_type == FileType::Directory;
            if !is_subdir {
                strays.push(objects_path.join(name.to_string_lossy().as_ref()));
            }
        })
        .map_err(|e| IoError::new(Op::List, &objects_path, e))?;
        let dirs: Vec<Result<Option<ObjectDir>, IoError>> = (0u16..256)
            .into_par_iter()
            .map(|byte| self.list_object_dir(objects, byte as u8))
            .collect();
        let mut out = Vec::with_capacity(256);
        for d in dirs {
            out.extend(d?);
        }
        Ok((out, strays))
    }

    /// Lists `objects/XX` for `byte`; `None` if it does not exist. A symlink there is an
    /// error naming it, never followed.
    pub(crate) fn list_object_dir(
        &self,
        objects: &OwnedFd,
        byte: u8,
    ) -> Result<Option<ObjectDir>, IoError> {
        let sub = ObjectDir::subdir_name(byte);
        let sub_path = self.objects_path().join(&sub);
        let fd = match fs::open_dir(objects, sub.as_str()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(IoError::new(Op::Open, &sub_path, e)),
        };
        let mut dir = ObjectDir {
            byte,
            fd,
            ids: Vec::new(),
            temps: Vec::new(),
            strays: Vec::new(),
        };
        let algorithm = self.algorithm();
        fs::for_each(&dir.fd, |name, _| {
            match ObjectId::from_dir_entry(algorithm, byte, name.to_bytes()) {
                Some(id) => dir.ids.push(id),
                None if name
                    .to_bytes()
                    .starts_with(layout::STORE_TMP_PREFIX.as_bytes()) =>
                {
                    dir.temps.push(name.to_owned())
                }
                None => dir.strays.push(name.to_owned()),
            }
        })
        .map_err(|e| IoError::new(Op::List, &sub_path, e))?;
        Ok(Some(dir))
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
            let objects = match self.repo.layout_dir_if_any(LayoutDir::Objects) {
                Ok(Some(fd)) => fd,
                Ok(None) => return None,
                Err(e) => return Some(Err(e.into())),
            };
            match self.repo.list_object_dir(objects, byte) {
                Ok(Some(mut dir)) => {
                    dir.ids.sort();
                    self.current = dir.ids.into_iter();
                }
                Ok(None) => {}
                Err(e) => return Some(Err(e.into())),
            }
        }
    }
}
