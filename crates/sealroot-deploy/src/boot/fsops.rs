//! The few file operations the boot directory needs, all relative to directory file
//! descriptors, none following a symlink at the last component, each returning the kernel's
//! error for the caller to name the path.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Timestamps};
use rustix::io::Errno;
use sealroot_objects::{with_buffer, write_all};

/// The mode of the files and directories sealroot writes on the boot partition (vfat
/// ignores it).
pub(crate) const FILE_MODE: u32 = 0o644;
/// See [`FILE_MODE`].
pub(crate) const DIR_MODE: u32 = 0o755;

/// The most names read from one directory: a boot partition's directories hold a few
/// dozen.
pub(crate) const MAX_DIR_ITEMS: usize = 1 << 16;

/// One name in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Item {
    pub(crate) name: CString,
    pub(crate) file_type: FileType,
}

impl Item {
    /// The name as text, if it is UTF-8.
    pub(crate) fn text(&self) -> Option<&str> {
        self.name.to_str().ok()
    }
}

/// Opens directory `name` of `dir` (`.` for `dir` itself) without following a symlink there.
pub(crate) fn open_dir<P: rustix::path::Arg>(dir: impl AsFd, name: P) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::empty())
}

/// Opens directory `name` of `dir`, making it first if missing (and then flushing `dir`, so
/// that the new name is durable). Returns the directory and whether it was made.
pub(crate) fn ensure_dir(dir: BorrowedFd<'_>, name: &str) -> Result<(OwnedFd, bool), Errno> {
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(DIR_MODE)) {
        Ok(()) => {
            rustix::fs::fsync(dir)?;
            Ok((open_dir(dir, name)?, true))
        }
        Err(Errno::EXIST) => Ok((open_dir(dir, name)?, false)),
        Err(e) => Err(e),
    }
}

/// Every name in the open directory `dir` but `.` and `..`, sorted, at most
/// [`MAX_DIR_ITEMS`] (`Ok(None)` beyond).
pub(crate) fn list(dir: BorrowedFd<'_>) -> Result<Option<Vec<Item>>, Errno> {
    let mut read = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        // Two more for `.` and `..`.
        if read.len() == MAX_DIR_ITEMS + 2 {
            return Ok(None);
        }
        read.push((entry.file_name().to_owned(), entry.file_type()));
    }
    let mut items = Vec::with_capacity(read.len());
    for (name, file_type) in read {
        if name.as_bytes() == b"." || name.as_bytes() == b".." {
            continue;
        }
        if let Some(file_type) = known_type(dir, &name, file_type)? {
            items.push(Item { name, file_type });
        }
    }
    if items.len() > MAX_DIR_ITEMS {
        return Ok(None);
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(items))
}

/// The type of `name` in `dir`: as the directory said, or looked up where it did not say
/// (`DT_UNKNOWN`: xfs without ftype, some network filesystems); `None` for a name gone since.
fn known_type(dir: BorrowedFd<'_>, name: &CStr, said: FileType) -> Result<Option<FileType>, Errno> {
    if said != FileType::Unknown {
        return Ok(Some(said));
    }
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens file `name` of `dir` for reading, not following a symlink there.
pub(crate) fn open_file<P: rustix::path::Arg>(
    dir: BorrowedFd<'_>,
    name: P,
) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::empty())
}

/// The whole content of the open file `fd`, or `Ok(None)` when it holds more than `max`
/// bytes.
pub(crate) fn read_all(fd: BorrowedFd<'_>, max: usize) -> Result<Option<Vec<u8>>, Errno> {
    let mut out = Vec::new();
    with_buffer(|buf| loop {
        match rustix::io::pread(fd, &mut *buf, out.len() as u64) {
            Ok(0) => return Ok(Some(())),
            Ok(n) if out.len() + n > max => return Ok(None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    })
    .map(|done| done.map(|()| out))
}

/// Makes file `name` in `dir` (which must not exist) holding `bytes`, flushed to disk.
pub(crate) fn write_new(dir: BorrowedFd<'_>, name: &str, bytes: &[u8]) -> Result<(), Errno> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(FILE_MODE))?;
    write_all(&fd, bytes)?;
    rustix::fs::fsync(&fd)
}

/// Copies file `name` of `from` to a new file `new_name` in `to`, with the same modification
/// time, flushed to disk: how an entry is carried where there are no hard links.
pub(crate) fn copy_file(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    name: &CStr,
    new_name: &str,
) -> Result<(), Errno> {
    let src = open_file(from, name)?;
    let st = rustix::fs::fstat(&src)?;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dst = rustix::fs::openat(to, new_name, flags, Mode::from_raw_mode(FILE_MODE))?;
    with_buffer(|buf| {
        sealroot_objects::copy(src.as_fd(), dst.as_fd(), st.st_size as u64, buf, None)
    })?;
    let times = Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    };
    rustix::fs::futimens(&dst, &times)?;
    rustix::fs::fsync(&dst)
}

/// Whether `name` names the same bytes in `a` and in `b` (two regular files of equal
/// content, or the same file); `Ok(false)` when either is missing or not a regular file.
pub(crate) fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>, name: &CStr) -> Result<bool, Errno> {
    let open = |dir| match open_file(dir, name) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT | Errno::LOOP) => Ok(None),
        Err(e) => Err(e),
    };
    let (Some(fa), Some(fb)) = (open(a)?, open(b)?) else {
        return Ok(false);
    };
    let (sa, sb) = (rustix::fs::fstat(&fa)?, rustix::fs::fstat(&fb)?);
    let regular =
        |st: &rustix::fs::Stat| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile;
    if !regular(&sa) || !regular(&sb) || sa.st_size != sb.st_size {
        return Ok(false);
    }
    if sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino {
        return Ok(true);
    }
    let mut other = vec![0u8; sealroot_objects::BUFFER_SIZE];
    with_buffer(|buf| {
        let mut offset = 0u64;
        loop {
            let n = rustix::io::pread(&fa, &mut *buf, offset)?;
            if n == 0 {
                return Ok(true);
            }
            let mut got = 0;
            while got < n {
                match rustix::io::pread(&fb, &mut other[got..n], offset + got as u64)? {
                    0 => return Ok(false),
                    k => got += k,
                }
            }
            if buf[..n] != other[..n] {
                return Ok(false);
            }
            offset += n as u64;
        }
    })
}

/// Removes `name` from `dir`: a file, or a directory with everything in it (at most
/// `depth` levels deep). A missing name is no error.
pub(crate) fn remove_tree(dir: BorrowedFd<'_>, name: &CStr, depth: usize) -> Result<(), Errno> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR | Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    if depth == 0 {
        return Err(Errno::NOTEMPTY);
    }
    let sub = match open_dir(dir, name) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    for item in list(sub.as_fd())?.ok_or(Errno::NOTEMPTY)? {
        remove_tree(sub.as_fd(), &item.name, depth - 1)?;
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether `name` exists in `dir` (without following a symlink there).
pub(crate) fn exists<P: rustix::path::Arg>(dir: BorrowedFd<'_>, name: P) -> Result<bool, Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e),
    }
}
