//! File-system helpers: directory listings, hashing an open file, and the temporary files
//! of `sealroot-objects`. Everything is relative to directory file descriptors.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{Dir, FileType, Mode, OFlags};
use rustix::io::Errno;
use sealroot_objects::Fallback;
pub(crate) use sealroot_objects::{with_buffer, write_all, TmpFile, TmpPolicy};
use sealroot_verity::{AnyDigest, Hasher, Params};

/// The permissions of objects and `meta.json`: readable by all, as C mkcomposefs and
/// composefs-rs make them.
pub(crate) const FILE_MODE: u32 = sealroot_objects::OBJECT_MODE;
/// The permissions of the directories inside the repository.
pub(crate) const DIR_MODE: u32 = 0o755;
/// The permissions of the repository directory itself, as `cfsctl init` makes it.
pub(crate) const REPO_DIR_MODE: u32 = 0o700;

/// Opens directory `path` below `dir`.
pub(crate) fn open_dir<P: rustix::path::Arg>(dir: impl AsFd, path: P) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Creates directory `path` below `dir` unless it exists.
pub(crate) fn ensure_dir(dir: impl AsFd, path: &str) -> Result<(), Errno> {
    match rustix::fs::mkdirat(dir, path, Mode::from_raw_mode(DIR_MODE)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// One entry of a directory listing.
pub(crate) struct Entry {
    pub(crate) name: CString,
    pub(crate) file_type: FileType,
}

/// Every entry of the directory open as `dir` but `.` and `..`. The listing comes from a
/// new open file description, so `dir`'s own position is untouched.
pub(crate) fn list(dir: impl AsFd) -> Result<Vec<Entry>, Errno> {
    let mut out = Vec::new();
    for_each(dir, |name, file_type| {
        out.push(Entry {
            name: name.to_owned(),
            file_type,
        })
    })?;
    Ok(out)
}

/// Calls `f` with the name and type of every entry of the directory open as `dir` but `.`
/// and `..`, without copying the names.
/// Where the filesystem does not say the type (`DT_UNKNOWN`: XFS without ftype, some
/// network filesystems), it is looked up, so that callers never mistake a symlink or a
/// directory for something else.
pub(crate) fn for_each(dir: impl AsFd, mut f: impl FnMut(&CStr, FileType)) -> Result<(), Errno> {
    let dir = dir.as_fd();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let file_type = match entry.file_type() {
            FileType::Unknown => {
                match rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode),
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(e),
                }
            }
            t => t,
        };
        f(name, file_type);
    }
    Ok(())
}

/// Lists directory `path` below `dir`; a missing directory is empty.
pub(crate) fn list_at(dir: impl AsFd, path: &str) -> Result<Vec<Entry>, Errno> {
    match open_dir(dir, path) {
        Ok(fd) => list(fd),
        Err(Errno::NOENT) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The fs-verity digest of everything in the file open as `fd`, read with positional reads
/// from offset 0, and the number of bytes read.
pub(crate) fn hash_fd(params: &Params, fd: BorrowedFd<'_>) -> io::Result<(AnyDigest, u64)> {
    let mut h = Hasher::new(params.clone());
    let mut offset = 0u64;
    with_buffer(|buf| loop {
        match rustix::io::pread(fd, &mut *buf, offset) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                h.update(&buf[..n]);
                offset += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(io::Error::from(e)),
        }
    })?;
    Ok((h.finish(), offset))
}

/// How the repository makes temporary files: `O_TMPFILE`, else `object.PID.N` hard-linked to
/// its final name, so that an existing name is kept and reported (objects counted as
/// present, a concurrent `init`'s `meta.json` kept).
pub(crate) fn tmp_policy() -> TmpPolicy {
    TmpPolicy::new(Fallback::Link)
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`, without dashes): a transaction marker
/// from another boot means the machine went down while that transaction ran.
pub(crate) fn boot_id() -> io::Result<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?;
    let id: String = text.trim().chars().filter(|c| *c != '-').collect();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected boot id {text:?}"),
        ));
    }
    Ok(id)
}
