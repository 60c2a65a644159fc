//! The digest store of `mkcomposefs --digest-store=DIR`: every non-inline file copied to
//! `DIR/xx/yyyy…`, named by its fs-verity digest.
//!
//! An object is never visible half-written: it is written to an anonymous `O_TMPFILE` in its
//! `xx/` directory (or, where the filesystem lacks those, to a hidden temporary name there),
//! flushed to disk, given fs-verity where the filesystem supports it (and then checked to
//! have the digest it is named by), and only then linked (or renamed) to its name. An object
//! already present is left alone. The copy is a reflink where the filesystem can share blocks, else
//! `copy_file_range`, else plain reads and writes; the file is checked not to have changed
//! since it was hashed.

use std::cell::RefCell;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use sealroot_sys::fsverity::{self, EnableParams, VerityError, FS_VERITY_HASH_ALG_SHA256};
use sealroot_verity::{Hasher, Params, Sha256Digest};

use crate::walk::{FileState, RawStat};
use crate::{BuildError, Operation, Progress};

/// The permissions of every object: readable by all, as C mkcomposefs sets them.
const OBJECT_MODE: u32 = 0o644;
/// The permissions of the store and its `xx/` directories.
const DIR_MODE: u32 = 0o755;
/// The most `copy_file_range` is asked to copy at once.
const COPY_CHUNK: u64 = 1 << 30;
/// The buffer [`Store::insert_stream`] reads through: large enough that system calls cost
/// little next to hashing, small enough to stay in the CPU's L2 cache.
const STREAM_BUF_SIZE: usize = 256 * 1024;

thread_local! {
    /// Each thread's [`STREAM_BUF_SIZE`] buffer, kept from one object to the next.
    static STREAM_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes all of `buf` to `fd` at its file position.
fn write_all(fd: &OwnedFd, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(0) => return Err(Errno::NOSPC),
            Ok(n) => buf = &buf[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// An open digest store.
pub(crate) struct Store {
    path: PathBuf,
    dir: OwnedFd,
    /// Which `xx/` directories are known to exist.
    subdirs: [AtomicBool; 256],
    /// Set once the filesystem turned out not to support `O_TMPFILE`.
    no_tmpfile: AtomicBool,
    /// Set once `linkat(AT_EMPTY_PATH)` was refused (it needs `CAP_DAC_READ_SEARCH`).
    no_empty_path_link: AtomicBool,
    /// Set once `copy_file_range` turned out to be missing or unable to cross filesystems.
    no_copy_range: AtomicBool,
    /// Set once the store's filesystem turned out not to support fs-verity.
    no_verity: AtomicBool,
    /// Makes temporary names unique within this process.
    tmp_counter: AtomicU64,
    /// Whether each object is fsync'ed before it is linked to its name (see
    /// [`crate::BuildOptions::sync_objects`]).
    sync: bool,
}

/// A new object being written.
enum TmpObject<'a> {
    /// An `O_TMPFILE`: nameless until linked.
    Anonymous(OwnedFd),
    /// A file with a temporary name, removed again if it is not renamed.
    Named {
        fd: OwnedFd,
        dir: &'a OwnedFd,
        name: String,
        placed: bool,
    },
}

impl TmpObject<'_> {
    fn fd(&self) -> &OwnedFd {
        match self {
            TmpObject::Anonymous(fd) | TmpObject::Named { fd, .. } => fd,
        }
    }

    /// Opens the file again, read-only, and closes the writable fd (fs-verity can only be
    /// enabled on a file nobody has open for writing).
    fn reopen_read_only(&mut self) -> Result<(), Errno> {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        let ro = match self {
            // An O_TMPFILE has no name but its /proc/self/fd link.
            TmpObject::Anonymous(fd) => {
                let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
                rustix::fs::openat(rustix::fs::CWD, proc.as_str(), flags, Mode::empty())?
            }
            TmpObject::Named { dir, name, .. } => {
                rustix::fs::openat(&**dir, name.as_str(), flags, Mode::empty())?
            }
        };
        match self {
            TmpObject::Anonymous(fd) | TmpObject::Named { fd, .. } => *fd = ro,
        }
        Ok(())
    }
}

impl Drop for TmpObject<'_> {
    fn drop(&mut self) {
        if let TmpObject::Named {
            dir,
            name,
            placed: false,
            ..
        } = self
        {
            // Best effort: the only trace of a failed copy is a hidden name in the store.
            let _ = rustix::fs::unlinkat(&**dir, name.as_str(), AtFlags::empty());
        }
    }
}

impl Store {
    /// Opens the store at `path`, creating it (and its parents) if needed.
    pub(crate) fn open(path: &Path) -> Result<Store, BuildError> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(path)
            .map_err(|e| BuildError::io(Operation::CreateStore, path.to_owned(), e))?;
        let dir = rustix::fs::openat(
            rustix::fs::CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| BuildError::io(Operation::Open, path.to_owned(), e))?;
        Ok(Store {
            path: path.to_owned(),
            dir,
            subdirs: std::array::from_fn(|_| AtomicBool::new(false)),
            no_tmpfile: AtomicBool::new(false),
            no_empty_path_link: AtomicBool::new(false),
            no_copy_range: AtomicBool::new(false),
            no_verity: AtomicBool::new(false),
            tmp_counter: AtomicU64::new(0),
            sync: true,
        })
    }

    /// Whether objects are fsync'ed one by one before they get their names.
    pub(crate) fn with_sync(mut self, sync: bool) -> Store {
        self.sync = sync;
        self
    }

    /// Copies `src` (whose path is `src_path`, and which was `state` when it was hashed to
    /// `digest`) into the store unless the object is there already. Uses `buf` if it has to
    /// copy by hand.
    pub(crate) fn insert(
        &self,
        src: &OwnedFd,
        state: &FileState,
        digest: &Sha256Digest,
        src_path: &Path,
        buf: &mut [u8],
        progress: &dyn Progress,
    ) -> Result<(), BuildError> {
        let name = digest.object_path();
        let object_err = |op, e: Errno| BuildError::io(op, self.path.join(&name), e);
        match rustix::fs::statat(&self.dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => return Ok(()),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(object_err(Operation::CheckObject, e)),
        }
        let subdir = &name[..2];
        self.ensure_subdir(digest)?;
        let mut tmp = self
            .create_tmp(subdir)
            .map_err(|e| object_err(Operation::CopyObject, e))?;
        let tmp_fd = tmp.fd();
        let copied = self.copy(src, tmp_fd, state.size, buf);
        // The object must hold what was hashed: the source may not have changed since (a
        // file that shrank also makes the copy fail).
        let now = rustix::fs::fstat(src)
            .map_err(|e| BuildError::io(Operation::Stat, src_path.to_owned(), e))?;
        if RawStat::new(&now).state != *state {
            return Err(BuildError::Changed {
                path: src_path.to_owned(),
            });
        }
        copied.map_err(|e| object_err(Operation::CopyObject, e))?;
        self.seal(&mut tmp, digest, || BuildError::Changed {
            path: src_path.to_owned(),
        })?;
        progress.objects_stored(1, state.size);
        Ok(())
    }

    /// Whether object `digest` is in the store: one `statat`, no read.
    pub(crate) fn contains(&self, digest: &Sha256Digest) -> Result<bool, BuildError> {
        let name = digest.object_path();
        match rustix::fs::statat(&self.dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(BuildError::io(
                Operation::CheckObject,
                self.path.join(&name),
                e,
            )),
        }
    }

    /// The store's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes everything `content` yields, which must be `size` bytes, into the store while
    /// hashing it, and returns its digest. The object is written to a temporary file in the
    /// store's top directory, since its name is known only at the end; content already in the
    /// store is hashed and dropped. A failure of `content` itself is an [`Operation::Read`]
    /// error.
    pub(crate) fn insert_stream(
        &self,
        content: &mut dyn Read,
        size: u64,
    ) -> Result<Sha256Digest, BuildError> {
        let store_err = |op, e: Errno| BuildError::io(op, self.path.clone(), e);
        let mut tmp = self
            .create_tmp(".")
            .map_err(|e| store_err(Operation::CopyObject, e))?;
        let mut hasher = Hasher::new(Params::composefs_default());
        let mut done = 0u64;
        STREAM_BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            buf.resize(STREAM_BUF_SIZE, 0);
            loop {
                let n = match content.read(&mut buf[..]) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(BuildError::io(Operation::Read, self.path.clone(), e)),
                };
                hasher.update(&buf[..n]);
                write_all(tmp.fd(), &buf[..n]).map_err(|e| store_err(Operation::CopyObject, e))?;
                done += n as u64;
            }
        })?;
        if done != size {
            let e = io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the content was {done} bytes, not the {size} announced"),
            );
            return Err(BuildError::io(Operation::Read, self.path.clone(), e));
        }
        let Some(&digest) = hasher.finish().as_sha256() else {
            unreachable!("composefs_default parameters hash with sha256")
        };
        let name = digest.object_path();
        match rustix::fs::statat(&self.dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => return Ok(digest),
            Err(Errno::NOENT) => {}
            Err(e) => {
                return Err(BuildError::io(
                    Operation::CheckObject,
                    self.path.join(&name),
                    e,
                ))
            }
        }
        self.ensure_subdir(&digest)?;
        self.seal(&mut tmp, &digest, || {
            let e = io::Error::new(
                io::ErrorKind::InvalidData,
                "the kernel measured another digest than the one computed while writing",
            );
            BuildError::io(Operation::EnableVerity, self.path.join(&name), e)
        })?;
        Ok(digest)
    }

    /// Creates the `xx/` directory of `digest`'s object unless it is known to exist.
    fn ensure_subdir(&self, digest: &Sha256Digest) -> Result<(), BuildError> {
        let known = &self.subdirs[usize::from(digest.0[0])];
        if known.load(Ordering::Relaxed) {
            return Ok(());
        }
        let subdir = format!("{:02x}", digest.0[0]);
        match rustix::fs::mkdirat(&self.dir, subdir.as_str(), Mode::from_raw_mode(DIR_MODE)) {
            Ok(()) | Err(Errno::EXIST) => {
                known.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(BuildError::io(
                Operation::CreateStore,
                self.path.join(subdir),
                e,
            )),
        }
    }

    /// Turns the complete content in `tmp` into object `digest`: sets its mode, flushes it to
    /// disk, enables fs-verity where the filesystem can (the kernel's measurement must be
    /// `digest`, else the error `mismatch` makes is returned), and links it to its name.
    fn seal(
        &self,
        tmp: &mut TmpObject<'_>,
        digest: &Sha256Digest,
        mismatch: impl FnOnce() -> BuildError,
    ) -> Result<(), BuildError> {
        let name = digest.object_path();
        let object_err = |op, e: Errno| BuildError::io(op, self.path.join(&name), e);
        rustix::fs::fchmod(tmp.fd(), Mode::from_raw_mode(OBJECT_MODE))
            .map_err(|e| object_err(Operation::CopyObject, e))?;
        if self.sync {
            rustix::fs::fsync(tmp.fd()).map_err(|e| object_err(Operation::SyncObject, e))?;
        }
        if !self.no_verity.load(Ordering::Relaxed) {
            tmp.reopen_read_only()
                .map_err(|e| object_err(Operation::EnableVerity, e))?;
            match fsverity::enable_verity(tmp.fd(), &EnableParams::composefs_default(), None) {
                Ok(()) => {
                    // The kernel hashed the object itself: it must be what was hashed.
                    let measured = fsverity::measure_verity(tmp.fd()).map_err(|e| {
                        BuildError::io(Operation::EnableVerity, self.path.join(&name), e)
                    })?;
                    if measured != (FS_VERITY_HASH_ALG_SHA256, digest.0.to_vec()) {
                        return Err(mismatch());
                    }
                }
                // Like C mkcomposefs, only try: a store without fs-verity is still a store.
                Err(VerityError::NotSupported(_) | VerityError::InvalidParameters) => {
                    self.no_verity.store(true, Ordering::Relaxed)
                }
                Err(e) => {
                    return Err(BuildError::io(
                        Operation::EnableVerity,
                        self.path.join(&name),
                        e,
                    ))
                }
            }
        }
        self.place(tmp, &name)
            .map_err(|e| object_err(Operation::LinkObject, e))
    }

    /// A new, empty, writable file in directory `subdir` of the store.
    fn create_tmp(&self, subdir: &str) -> Result<TmpObject<'_>, Errno> {
        let mode = Mode::from_raw_mode(OBJECT_MODE);
        if !self.no_tmpfile.load(Ordering::Relaxed) {
            let flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
            match rustix::fs::openat(&self.dir, subdir, flags, mode) {
                Ok(fd) => return Ok(TmpObject::Anonymous(fd)),
                // The filesystem has no O_TMPFILE.
                Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
                    self.no_tmpfile.store(true, Ordering::Relaxed)
                }
                Err(e) => return Err(e),
            }
        }
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        loop {
            let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
            let name = format!("{subdir}/.tmp-{}-{n}", std::process::id());
            match rustix::fs::openat(&self.dir, name.as_str(), flags, mode) {
                Ok(fd) => {
                    return Ok(TmpObject::Named {
                        fd,
                        dir: &self.dir,
                        name,
                        placed: false,
                    })
                }
                Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Gives the complete object `tmp` its name `name`. Finding an object of that name
    /// already there (put by a concurrent writer) is success: it has the same content.
    fn place(&self, tmp: &mut TmpObject<'_>, name: &str) -> Result<(), Errno> {
        let r = match tmp {
            TmpObject::Anonymous(fd) => {
                let mut r = Err(Errno::NOENT);
                if !self.no_empty_path_link.load(Ordering::Relaxed) {
                    r = rustix::fs::linkat(fd.as_fd(), "", &self.dir, name, AtFlags::EMPTY_PATH);
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
                        &self.dir,
                        name,
                        AtFlags::SYMLINK_FOLLOW,
                    );
                }
                r
            }
            TmpObject::Named {
                name: tmp_name,
                placed,
                ..
            } => {
                let r = rustix::fs::renameat(&self.dir, tmp_name.as_str(), &self.dir, name);
                *placed = r.is_ok();
                r
            }
        };
        match r {
            Err(Errno::EXIST) => Ok(()),
            r => r,
        }
    }

    /// Copies the first `size` bytes of `src` to `dst`: a reflink if possible, else
    /// `copy_file_range`, else by hand through `buf`.
    fn copy(&self, src: &OwnedFd, dst: &OwnedFd, size: u64, buf: &mut [u8]) -> Result<(), Errno> {
        if rustix::fs::ioctl_ficlone(dst, src).is_ok() {
            return Ok(());
        }
        let mut done = 0u64;
        if !self.no_copy_range.load(Ordering::Relaxed) {
            while done < size {
                let (mut off_in, mut off_out) = (done, done);
                let len = (size - done).min(COPY_CHUNK) as usize;
                match rustix::fs::copy_file_range(
                    src,
                    Some(&mut off_in),
                    dst,
                    Some(&mut off_out),
                    len,
                ) {
                    // Some filesystems copy nothing rather than fail: finish by hand.
                    Ok(0) => break,
                    Ok(n) => done += n as u64,
                    Err(Errno::INTR) => {}
                    Err(Errno::NOSYS | Errno::XDEV) => {
                        self.no_copy_range.store(true, Ordering::Relaxed);
                        break;
                    }
                    Err(Errno::OPNOTSUPP | Errno::PERM | Errno::INVAL | Errno::BADF) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        while done < size {
            let want = (size - done).min(buf.len() as u64) as usize;
            let n = match rustix::io::pread(src, &mut buf[..want], done) {
                Ok(0) => return Err(Errno::NODATA),
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e),
            };
            let mut written = 0;
            while written < n {
                match rustix::io::pwrite(dst, &buf[written..n], done + written as u64) {
                    Ok(0) => return Err(Errno::NOSPC),
                    Ok(k) => written += k,
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(e),
                }
            }
            done += n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoProgress;

    /// A file to store, open, with its state and digest.
    fn source(dir: &Path, content: &[u8]) -> (OwnedFd, FileState, Sha256Digest, PathBuf) {
        let path = dir.join("src");
        std::fs::write(&path, content).unwrap();
        let fd = rustix::fs::open(&path, OFlags::RDONLY, Mode::empty()).unwrap();
        let state = RawStat::new(&rustix::fs::fstat(&fd).unwrap()).state;
        (fd, state, sealroot_verity::sha256_digest(content), path)
    }

    /// Every name in every `xx/` directory of the store.
    fn listing(store: &Path) -> Vec<String> {
        let mut names = Vec::new();
        for sub in std::fs::read_dir(store).unwrap() {
            let sub = sub.unwrap();
            for e in std::fs::read_dir(sub.path()).unwrap() {
                let name = e.unwrap().file_name().into_string().unwrap();
                names.push(format!("{}/{name}", sub.file_name().to_string_lossy()));
            }
        }
        names
    }

    #[test]
    fn named_temporary_files_where_there_is_no_o_tmpfile() {
        let tmp = tempfile::tempdir().unwrap();
        let content = vec![5u8; 100_000];
        let (fd, state, digest, path) = source(tmp.path(), &content);
        let store = Store::open(&tmp.path().join("store")).unwrap();
        store.no_tmpfile.store(true, Ordering::Relaxed);
        let mut buf = vec![0; 4096];
        store
            .insert(&fd, &state, &digest, &path, &mut buf, &NoProgress)
            .unwrap();
        let object = tmp.path().join("store").join(digest.object_path());
        assert_eq!(std::fs::read(&object).unwrap(), content);
        assert_eq!(listing(&tmp.path().join("store")), [digest.object_path()]);
    }

    #[test]
    fn a_changed_source_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let (fd, mut state, digest, path) = source(tmp.path(), b"some content");
        // As if the file had been another size when it was hashed.
        state.size += 1;
        for no_tmpfile in [false, true] {
            let store_path = tmp.path().join(format!("store{no_tmpfile}"));
            let store = Store::open(&store_path).unwrap();
            store.no_tmpfile.store(no_tmpfile, Ordering::Relaxed);
            let mut buf = vec![0; 4096];
            let r = store.insert(&fd, &state, &digest, &path, &mut buf, &NoProgress);
            assert!(matches!(r, Err(BuildError::Changed { .. })), "{r:?}");
            assert!(
                listing(&store_path).is_empty(),
                "{:?}",
                listing(&store_path)
            );
        }
    }

    #[test]
    fn streamed_objects_with_and_without_o_tmpfile() {
        /// A reader that fails after `n` bytes.
        struct Broken<'a>(&'a [u8]);
        impl Read for Broken<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::other("the archive broke off"));
                }
                self.0.read(buf)
            }
        }

        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let want = sealroot_verity::sha256_digest(&content);
        for no_tmpfile in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("store");
            let store = Store::open(&path).unwrap();
            store.no_tmpfile.store(no_tmpfile, Ordering::Relaxed);
            let size = content.len() as u64;
            assert_eq!(store.insert_stream(&mut &content[..], size).unwrap(), want);
            // Again: the object is there already.
            assert_eq!(store.insert_stream(&mut &content[..], size).unwrap(), want);
            let object = path.join(want.object_path());
            assert_eq!(std::fs::read(&object).unwrap(), content);
            // A size that is not the content's, or a reader that fails: an error, and
            // nothing but the first object is left (`listing` fails on a file at the top).
            let r = store.insert_stream(&mut &content[..1000], 1001);
            assert!(
                matches!(
                    &r,
                    Err(BuildError::Io {
                        op: Operation::Read,
                        ..
                    })
                ),
                "{r:?}"
            );
            let r = store.insert_stream(&mut Broken(&content[..5000]), size);
            assert!(
                matches!(
                    &r,
                    Err(BuildError::Io {
                        op: Operation::Read,
                        ..
                    })
                ),
                "{r:?}"
            );
            assert_eq!(listing(&path), [want.object_path()]);
        }
    }

    #[test]
    fn copy_by_hand_when_copy_file_range_is_unavailable() {
        let tmp = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let (fd, state, digest, path) = source(tmp.path(), &content);
        let store = Store::open(&tmp.path().join("store")).unwrap();
        store.no_copy_range.store(true, Ordering::Relaxed);
        // A small buffer, so the copy takes several rounds.
        let mut buf = vec![0; 3000];
        store
            .insert(&fd, &state, &digest, &path, &mut buf, &NoProgress)
            .unwrap();
        let object = tmp.path().join("store").join(digest.object_path());
        assert_eq!(std::fs::read(object).unwrap(), content);
    }
}
