//! File-system helpers: directory listings, temporary files that become objects, hashing an
//! open file. Everything is relative to directory file descriptors.

use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;
use sealroot_verity::{AnyDigest, Hasher, Params};

/// The permissions of objects and `meta.json`: readable by all, as C mkcomposefs and
/// composefs-rs make them.
pub(crate) const FILE_MODE: u32 = 0o644;
/// The permissions of the directories inside the repository.
pub(crate) const DIR_MODE: u32 = 0o755;
/// The permissions of the repository directory itself, as `cfsctl init` makes it.
pub(crate) const REPO_DIR_MODE: u32 = 0o700;
/// The read size for hashing and copying by hand; see `sealroot-verity`'s reader.
const BUFFER_SIZE: usize = 256 * 1024;

thread_local! {
    /// One buffer per thread, reused: allocating 256 KiB per object would cost an `mmap` and
    /// its page faults each time.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's I/O buffer.
pub(crate) fn with_buffer<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < BUFFER_SIZE {
                buf.resize(BUFFER_SIZE, 0);
            }
            f(&mut buf)
        }
        Err(_) => f(&mut vec![0; BUFFER_SIZE]),
    })
}

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
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        out.push(Entry {
            name: name.to_owned(),
            file_type: entry.file_type(),
        });
    }
    Ok(out)
}

/// Calls `f` with the name and type of every entry of the directory open as `dir` but `.`
/// and `..`, without copying the names.
pub(crate) fn for_each(dir: impl AsFd, mut f: impl FnMut(&CStr, FileType)) -> Result<(), Errno> {
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            f(name, entry.file_type());
        }
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

/// How temporary files are made, learnt once per repository.
#[derive(Default)]
pub(crate) struct TmpPolicy {
    /// Set once the filesystem turned out not to support `O_TMPFILE`.
    no_tmpfile: AtomicBool,
    /// Set once `linkat(AT_EMPTY_PATH)` was refused (it needs `CAP_DAC_READ_SEARCH`).
    no_empty_path_link: AtomicBool,
    /// Makes temporary names unique within this process.
    counter: AtomicU64,
}

impl TmpPolicy {
    /// A name for a temporary entry of `tmp/`, unique on this machine while this process
    /// lives: `PREFIX.PID.N`.
    pub(crate) fn unique_name(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}.{}.{n}", std::process::id())
    }

    /// A new empty file, open for reading and writing: an anonymous `O_TMPFILE` in directory
    /// `dir`, or, where the filesystem lacks those, a file named `object.PID.N` there that
    /// is removed again unless it is linked into place.
    pub(crate) fn create<'d>(&self, dir: &'d OwnedFd) -> Result<TmpFile<'d>, Errno> {
        let mode = Mode::from_raw_mode(FILE_MODE);
        if !self.no_tmpfile.load(Ordering::Relaxed) {
            let flags = OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC;
            match rustix::fs::openat(dir, ".", flags, mode) {
                Ok(fd) => return Ok(TmpFile::Anonymous(fd)),
                Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
                    self.no_tmpfile.store(true, Ordering::Relaxed)
                }
                Err(e) => return Err(e),
            }
        }
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        loop {
            let name = self.unique_name("object");
            match rustix::fs::openat(dir, name.as_str(), flags, mode) {
                Ok(fd) => return Ok(TmpFile::Named { fd, dir, name }),
                Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Gives the complete file `tmp` the name `name` in `dest`. An existing file of that name
    /// is left as it is and reported as `Ok(false)`: in a content-addressed store it holds the
    /// same bytes.
    pub(crate) fn link(
        &self,
        tmp: &TmpFile<'_>,
        dest: impl AsFd,
        name: &str,
    ) -> Result<bool, Errno> {
        let r = match tmp {
            TmpFile::Anonymous(fd) => {
                let mut r = Err(Errno::NOENT);
                if !self.no_empty_path_link.load(Ordering::Relaxed) {
                    r = rustix::fs::linkat(fd, "", &dest, name, AtFlags::EMPTY_PATH);
                    if r == Err(Errno::NOENT) {
                        // Refused for want of CAP_DAC_READ_SEARCH: go through /proc.
                        self.no_empty_path_link.store(true, Ordering::Relaxed);
                    }
                }
                if r == Err(Errno::NOENT) {
                    let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
                    r = rustix::fs::linkat(
                        rustix::fs::CWD,
                        proc.as_str(),
                        &dest,
                        name,
                        AtFlags::SYMLINK_FOLLOW,
                    );
                }
                r
            }
            TmpFile::Named { dir, name: tmp, .. } => {
                rustix::fs::linkat(*dir, tmp.as_str(), &dest, name, AtFlags::empty())
            }
        };
        match r {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A file being written, not yet visible under its final name.
pub(crate) enum TmpFile<'d> {
    /// An `O_TMPFILE`: nameless until linked, gone if never linked.
    Anonymous(OwnedFd),
    /// A file with a temporary name in `tmp/`, removed when this is dropped (the final name,
    /// if any, is a second link to it).
    Named {
        fd: OwnedFd,
        dir: &'d OwnedFd,
        name: String,
    },
}

impl TmpFile<'_> {
    /// The file descriptor.
    pub(crate) fn fd(&self) -> &OwnedFd {
        match self {
            TmpFile::Anonymous(fd) | TmpFile::Named { fd, .. } => fd,
        }
    }

    /// Replaces the descriptor with a read-only one of the same file and closes the writable
    /// one: fs-verity can only be enabled on a file nobody has open for writing.
    pub(crate) fn reopen_read_only(&mut self) -> Result<(), Errno> {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        let ro = match self {
            TmpFile::Anonymous(fd) => {
                let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
                rustix::fs::openat(rustix::fs::CWD, proc.as_str(), flags, Mode::empty())?
            }
            TmpFile::Named { dir, name, .. } => {
                rustix::fs::openat(&**dir, name.as_str(), flags, Mode::empty())?
            }
        };
        match self {
            TmpFile::Anonymous(fd) | TmpFile::Named { fd, .. } => *fd = ro,
        }
        Ok(())
    }
}

impl Drop for TmpFile<'_> {
    fn drop(&mut self) {
        if let TmpFile::Named { dir, name, .. } = self {
            // Best effort: a leftover name in tmp/ is removed by gc.
            let _ = rustix::fs::unlinkat(&**dir, name.as_str(), AtFlags::empty());
        }
    }
}

/// Writes all of `data` to `fd` at its current position.
pub(crate) fn write_all(fd: impl AsFd, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match rustix::io::write(&fd, data) {
            Ok(0) => return Err(Errno::NOSPC),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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
