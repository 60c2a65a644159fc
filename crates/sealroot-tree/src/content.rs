//! The content pass: reads every planned regular file once, on several threads, largest
//! first, to inline it or to hash it (and copy it into the digest store).

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use sealroot_format::tree::{FileType, RegularFile, Xattr};
use sealroot_verity::{AnyDigest, Hasher, Params};

use crate::store::Store;
use crate::walk::{ContentJob, RawStat};
use crate::xattr::{Target, XattrReader};
use crate::{BuildError, BuildOptions, Operation, Progress};

/// The read buffer of each thread: large enough that system calls cost little next to the
/// hashing, small enough to stay in the CPU's L2 cache.
const READ_BUF_SIZE: usize = 256 * 1024;

/// How many bytes of a large file are read between two progress reports.
const PROGRESS_STEP: u64 = 16 << 20;

/// How contents are opened: never through a symlink, never blocking (should a fifo have
/// taken the file's place), never becoming a controlling terminal.
const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY);

/// Set once `openat2` turns out to be missing (Linux before 5.6).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// What the threads share.
struct Shared<'a> {
    root: &'a OwnedFd,
    source: &'a Path,
    jobs: &'a [ContentJob],
    /// Job indices, largest file first.
    order: Vec<usize>,
    next: AtomicUsize,
    failed: AtomicBool,
    error: Mutex<Option<BuildError>>,
    results: Mutex<Vec<(usize, FileContent)>>,
    opts: &'a BuildOptions,
    store: Option<&'a Store>,
    progress: &'a dyn Progress,
}

/// What was read of one file.
#[derive(Clone, Debug, Default)]
pub(crate) struct FileContent {
    /// Its content (inline) or digest and payload.
    pub(crate) file: RegularFile,
    /// Its xattrs, if the job was to read them.
    pub(crate) xattrs: Option<Vec<Xattr>>,
}

/// Reads the content of every job; the result is indexed like `jobs`.
pub(crate) fn read_all(
    root: &OwnedFd,
    source: &Path,
    jobs: &[ContentJob],
    opts: &BuildOptions,
    store: Option<&Store>,
    progress: &dyn Progress,
) -> Result<Vec<FileContent>, BuildError> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    // Largest first, so that no big file is left to be read alone at the end; a stable sort
    // keeps equal sizes in walk order.
    order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].state.size));
    let shared = Shared {
        root,
        source,
        jobs,
        order,
        next: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
        results: Mutex::new(Vec::with_capacity(jobs.len())),
        opts,
        store,
        progress,
    };

    let threads = opts.thread_count().min(jobs.len()).max(1);
    if threads == 1 {
        worker(&shared);
    } else {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("sealroot-tree-{i}"))
            .build()
            .map_err(|e| {
                BuildError::io(
                    Operation::StartThreads,
                    source.to_owned(),
                    std::io::Error::other(e),
                )
            })?;
        pool.scope(|s| {
            for _ in 0..threads {
                s.spawn(|_| worker(&shared));
            }
        });
    }

    if let Some(e) = shared
        .error
        .into_inner()
        .expect("no thread panicked holding the lock")
    {
        return Err(e);
    }
    let mut files = vec![FileContent::default(); jobs.len()];
    for (i, f) in shared
        .results
        .into_inner()
        .expect("no thread panicked holding the lock")
    {
        files[i] = f;
    }
    Ok(files)
}

/// Takes jobs off the shared queue until it is empty or a job failed.
fn worker(shared: &Shared<'_>) {
    let mut buf = vec![0u8; READ_BUF_SIZE];
    let mut xattrs = None;
    let mut done = Vec::new();
    while !shared.failed.load(Ordering::Relaxed) {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some(&job) = shared.order.get(i) else {
            break;
        };
        match read_one(shared, &shared.jobs[job], &mut buf, &mut xattrs) {
            Ok(file) => done.push((job, file)),
            Err(e) => {
                shared.failed.store(true, Ordering::Relaxed);
                shared
                    .error
                    .lock()
                    .expect("no thread panicked holding the lock")
                    .get_or_insert(e);
                break;
            }
        }
    }
    shared
        .results
        .lock()
        .expect("no thread panicked holding the lock")
        .append(&mut done);
}

fn full_path(source: &Path, rel: &[u8]) -> PathBuf {
    source.join(OsStr::from_bytes(rel))
}

/// Opens `rel` beneath `root` without following any symlink.
fn open_beneath(root: &OwnedFd, rel: &[u8]) -> Result<OwnedFd, Errno> {
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
        match rustix::fs::openat2(root, rel, FILE_FLAGS, Mode::empty(), resolve) {
            Err(Errno::NOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
            r => return r,
        }
    }
    rustix::fs::openat(root, rel, FILE_FLAGS, Mode::empty())
}

/// Reads into `buf`, retrying on `EINTR`.
pub(crate) fn read_retrying(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Err(Errno::INTR) => {}
            r => return r,
        }
    }
}

/// Reads one file: its inline content, or its digest (and copies it to the store); and its
/// xattrs if the job says so, with `xattrs`, made on first use.
fn read_one(
    shared: &Shared<'_>,
    job: &ContentJob,
    buf: &mut [u8],
    xattrs: &mut Option<XattrReader>,
) -> Result<FileContent, BuildError> {
    let path = || full_path(shared.source, &job.path);
    let changed = || BuildError::Changed { path: path() };
    let fd = match open_beneath(shared.root, &job.path) {
        Ok(fd) => fd,
        // Removed, or a directory on its path replaced by a symlink or a file.
        Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR | Errno::XDEV) => return Err(changed()),
        Err(e) => return Err(BuildError::io(Operation::Open, path(), e)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| BuildError::io(Operation::Stat, path(), e))?;
    let raw = RawStat::new(&st);
    if raw.state != job.state || FileType::from_mode(raw.mode) != Some(FileType::Regular) {
        return Err(changed());
    }
    let size = job.state.size;
    let progress = shared.progress;
    let opts = shared.opts;
    let xattrs = if job.read_xattrs {
        let reader = xattrs.get_or_insert_with(|| XattrReader::new(opts.user_xattrs));
        Some(
            reader
                .read(&Target::Fd(fd.as_fd()))
                .map_err(|e| e.into_build_error(path()))?,
        )
    } else {
        None
    };

    if job.inline {
        // At most INLINE_CONTENT_MAX bytes: one read for them and to see that nothing follows.
        let mut data = vec![0u8; usize::try_from(size).expect("inline files are small") + 1];
        let Some(n) = read_exactly(&fd, size, &mut data, |_| {})
            .map_err(|e| BuildError::io(Operation::Read, path(), e))?
        else {
            return Err(changed());
        };
        data.truncate(n);
        progress.files_hashed(1, size);
        let file = RegularFile {
            inline: Some(data),
            payload: None,
            digest: None,
        };
        return Ok(FileContent { file, xattrs });
    }

    let mut hasher = Hasher::new(Params::composefs_default());
    let mut reported = 0u64;
    let complete = read_exactly(&fd, size, buf, |chunk| {
        hasher.update(chunk);
        let n = chunk.len() as u64;
        reported += n;
        if reported >= PROGRESS_STEP {
            progress.files_hashed(0, reported);
            reported = 0;
        }
    })
    .map_err(|e| BuildError::io(Operation::Read, path(), e))?;
    if complete.is_none() {
        return Err(changed());
    }
    progress.files_hashed(1, reported);
    let digest = match hasher.finish() {
        AnyDigest::Sha256(d) => d,
        AnyDigest::Sha512(_) => unreachable!("the composefs parameters use sha256"),
    };

    if let (Some(store), true) = (shared.store, opts.by_digest) {
        store.insert(&fd, &job.state, &digest, &path(), buf, progress)?;
    }
    let file = RegularFile {
        inline: None,
        payload: opts.by_digest.then(|| digest.object_path().into_bytes()),
        digest: opts.compute_digest.then_some(digest),
    };
    Ok(FileContent { file, xattrs })
}

/// Reads `fd` from its current offset to its end through `buf`, handing each piece read to
/// `f`, and checks that that was `size` bytes: `Some(size)` if so, `None` if the file turned
/// out shorter or longer. With `buf` larger than what remains, a short read tells the end of
/// the file, so a small file takes a single `read`.
fn read_exactly(
    fd: &OwnedFd,
    size: u64,
    buf: &mut [u8],
    mut f: impl FnMut(&[u8]),
) -> Result<Option<usize>, Errno> {
    let mut total = 0u64;
    loop {
        // Ask for one byte more than should remain, to see the end without another read.
        let want = (size - total).saturating_add(1).min(buf.len() as u64) as usize;
        let n = read_retrying(fd, &mut buf[..want])?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > size {
            return Ok(None);
        }
        f(&buf[..n]);
        if n < want && total == size {
            break;
        }
    }
    Ok((total == size).then_some(total as usize))
}
