//! Boot files: kernels, initramfs images and device trees, stored once per content digest in
//! `sealroot/` on the boot partition and removed once no entry names them.

use std::collections::BTreeSet;
use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;
use sealroot_objects::{with_buffer, Fallback, TmpPolicy};
use sealroot_verity::{digest_file, AnyDigest, Params};

use super::error::{BootIoError, CollectError, Op, StageError, VerifyError};
use super::{fsops, BootDir, FsKind, ENTRIES_DIR, LOADER_DIR, STAGED_DIR};
use crate::bls::MAX_ENTRY_SIZE;

/// The directory of boot files on the partition.
pub const FILES_DIR: &str = "sealroot";

/// The path an entry names the boot file of digest `digest` by: `/sealroot/HEX`.
pub fn file_path(digest: &AnyDigest) -> String {
    format!("/{FILES_DIR}/{digest}")
}

/// A file to put on the boot partition: its content, read from `source` (a kernel or
/// initramfs in the repository), must have fs-verity digest `digest` under
/// [`Params::composefs`] of the digest's algorithm, which is what names it there.
#[derive(Clone, Copy, Debug)]
pub struct BootFile<'a> {
    /// The digest of the content.
    pub digest: AnyDigest,
    /// The content: an open regular file, read from offset 0.
    pub source: BorrowedFd<'a>,
}

/// What [`BootDir::collect_unused_files`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// The names removed from `sealroot/` (leftover temporary files included).
    pub removed: Vec<String>,
    /// Their size in bytes.
    pub bytes: u64,
    /// How many files are still needed and were kept.
    pub kept: usize,
}

impl BootDir {
    /// The fd-relative path of `sealroot/NAME`, for messages.
    fn file_at(&self, name: &str) -> std::path::PathBuf {
        self.at(Path::new(FILES_DIR).join(name))
    }

    /// Puts every file of `files` not yet on the partition there, each complete and flushed
    /// under its name before the next; returns the names it made (to remove them again if
    /// staging fails later).
    pub(crate) fn install_files(
        &self,
        files: &[BootFile<'_>],
        made: &mut Vec<String>,
    ) -> Result<(), StageError> {
        if files.is_empty() {
            return Ok(());
        }
        let (dir, _) = fsops::ensure_dir(self.root.as_fd(), FILES_DIR)
            .map_err(|e| BootIoError::new(Op::CreateDir, self.at(FILES_DIR), e))?;
        let policy = TmpPolicy::new(Fallback::Rename);
        if self.fs == FsKind::Vfat {
            policy.disable_tmpfile();
        }
        let mut seen = BTreeSet::new();
        for file in files.iter().filter(|f| seen.insert(f.digest)) {
            if self.install_one(&dir, &policy, file)? {
                made.push(file.digest.to_string());
            }
        }
        rustix::fs::fsync(&dir).map_err(|e| BootIoError::new(Op::Sync, self.at(FILES_DIR), e))?;
        Ok(())
    }

    /// Copies one file into place unless a file of its name and size is there; returns
    /// whether it made the name.
    fn install_one(
        &self,
        dir: &OwnedFd,
        policy: &TmpPolicy,
        file: &BootFile<'_>,
    ) -> Result<bool, StageError> {
        let name = file.digest.to_string();
        let path = self.file_at(&name);
        let size = rustix::fs::fstat(file.source)
            .map_err(|e| BootIoError::new(Op::Stat, path.clone(), e))?
            .st_size as u64;
        match rustix::fs::statat(dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st)
                if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                    && st.st_size as u64 == size =>
            {
                return Ok(false)
            }
            // Damaged (a file is named only once complete and checked): made again.
            Ok(_) => rustix::fs::unlinkat(dir, name.as_str(), AtFlags::empty())
                .map_err(|e| BootIoError::new(Op::Remove, path.clone(), e))?,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(BootIoError::new(Op::Stat, path, e).into()),
        }
        let mut tmp = policy
            .create(dir)
            .map_err(|e| BootIoError::new(Op::Create, self.at(FILES_DIR), e))?;
        with_buffer(|buf| sealroot_objects::copy(file.source, tmp.fd().as_fd(), size, buf, None))
            .and_then(|()| rustix::fs::fsync(tmp.fd()))
            .map_err(|e| BootIoError::new(Op::Copy, path.clone(), e))?;
        let copy = tmp
            .fd()
            .try_clone()
            .map_err(|e| BootIoError::new(Op::Open, path.clone(), e))?;
        let found = digest_file(&Params::composefs(file.digest.algorithm()), &copy.into())
            .map_err(|e| BootIoError::new(Op::Read, path.clone(), e))?;
        if found != file.digest {
            return Err(StageError::DigestMismatch {
                expected: file.digest.to_string(),
                found: found.to_string(),
            });
        }
        policy
            .link(&mut tmp, dir, &name)
            .map_err(|e| BootIoError::new(Op::Rename, path, e).into())
    }

    /// Removes `sealroot/NAME` for each of `names` (undoing a failed staging), best effort.
    pub(crate) fn remove_files(&self, names: &[String]) {
        let Ok(dir) = fsops::open_dir(&self.root, FILES_DIR) else {
            return;
        };
        for name in names {
            let _ = rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty());
        }
        let _ = rustix::fs::fsync(&dir);
    }

    /// Whether every file `paths` names (entry paths, normalized) is a regular file on the
    /// partition; returns the first that is not.
    pub(crate) fn first_missing<'p>(
        &self,
        paths: &'p [String],
    ) -> Result<Option<&'p str>, BootIoError> {
        for path in paths {
            let rel = path.trim_start_matches('/');
            match rustix::fs::statat(&self.root, rel, AtFlags::empty()) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {}
                Ok(_) | Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(Some(path)),
                Err(e) => return Err(BootIoError::new(Op::Stat, self.at(rel), e)),
            }
        }
        Ok(None)
    }

    /// Removes every file in `sealroot/` that no file in `loader/entries` or
    /// `loader/entries.staged` mentions by name (an entry sealroot wrote, a staged one, or a
    /// user's copy of one), and the temporary files an interrupted copy left. A file is kept
    /// when its name appears anywhere in an entry's bytes, however the path is spelled.
    pub fn collect_unused_files(&self) -> Result<Collected, CollectError> {
        let _lock = self.lock()?;
        let Some(dir) = self.open_dir_if_any(FILES_DIR)? else {
            return Ok(Collected::default());
        };
        let texts = self.entry_texts()?;
        let mut out = Collected::default();
        let items = fsops::list(dir.as_fd())
            .map_err(|e| BootIoError::new(Op::List, self.at(FILES_DIR), e))?
            .unwrap_or_default();
        for item in items
            .iter()
            .filter(|i| i.file_type == FileType::RegularFile)
        {
            let name = item.name.to_string_lossy();
            if texts.iter().any(|t| t.contains(name.as_ref())) {
                out.kept += 1;
                continue;
            }
            let size = rustix::fs::statat(&dir, &item.name, AtFlags::SYMLINK_NOFOLLOW)
                .map_or(0, |st| st.st_size as u64);
            rustix::fs::unlinkat(&dir, &item.name, AtFlags::empty())
                .map_err(|e| BootIoError::new(Op::Remove, self.file_at(&name), e))?;
            out.removed.push(name.into_owned());
            out.bytes += size;
        }
        if !out.removed.is_empty() {
            rustix::fs::fsync(&dir)
                .map_err(|e| BootIoError::new(Op::Sync, self.at(FILES_DIR), e))?;
        }
        Ok(out)
    }

    /// The text of every regular file of at most [`MAX_ENTRY_SIZE`] bytes in
    /// `loader/entries` and `loader/entries.staged`.
    fn entry_texts(&self) -> Result<Vec<String>, CollectError> {
        let mut texts = Vec::new();
        for dir in [ENTRIES_DIR, STAGED_DIR] {
            let Some(fd) = self.open_loader_dir(dir)? else {
                continue;
            };
            for item in self.list_loader_dir(fd.as_fd(), dir)? {
                if item.file_type != FileType::RegularFile {
                    continue;
                }
                if let Some(bytes) = self.read_small(fd.as_fd(), dir, &item.name)? {
                    texts.push(String::from_utf8_lossy(&bytes).into_owned());
                }
            }
        }
        Ok(texts)
    }

    /// The bytes of `loader/DIR/NAME` if it holds at most [`MAX_ENTRY_SIZE`]; `None` if more
    /// or gone.
    fn read_small(
        &self,
        dir_fd: BorrowedFd<'_>,
        dir: &str,
        name: &CStr,
    ) -> Result<Option<Vec<u8>>, BootIoError> {
        let path = || {
            self.at(Path::new(LOADER_DIR).join(dir))
                .join(name.to_string_lossy().as_ref())
        };
        let fd = match fsops::open_file(dir_fd, name) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(BootIoError::new(Op::Open, path(), e)),
        };
        fsops::read_all(fd.as_fd(), MAX_ENTRY_SIZE)
            .map_err(|e| BootIoError::new(Op::Read, path(), e))
    }

    /// Checks that `sealroot/HEX` holds content of digest `digest` (for `fsck`).
    pub fn verify_file(&self, digest: &AnyDigest) -> Result<(), VerifyError> {
        let name = digest.to_string();
        let path = self.file_at(&name);
        let rel = format!("{FILES_DIR}/{name}");
        let fd = fsops::open_file(self.root.as_fd(), rel.as_str())
            .map_err(|e| BootIoError::new(Op::Open, path.clone(), e))?;
        let found = digest_file(&Params::composefs(digest.algorithm()), &fd.into())
            .map_err(|e| BootIoError::new(Op::Read, path.clone(), e))?;
        if found != *digest {
            return Err(VerifyError::Mismatch { path, found });
        }
        Ok(())
    }
}
