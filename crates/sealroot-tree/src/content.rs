//! The content pass: reads every planned regular file once, on several threads, to inline
//! it or to hash it (and copy it into the digest store), while the walk is still going.
//!
//! The walk hands each file over as a [`ContentJob`] through a [`Queue`]. A small file comes
//! already open (the walk opened it to `fstat` it, relative to its directory), so it costs no
//! second path lookup; at most [`MAX_QUEUED_FDS`] such files wait at a time. Large files come
//! as paths, are reopened beneath the source directory, and are served largest first whenever
//! no small file is waiting, so the threads stay busy during the walk and finish together.
//!
//! With a [`DigestCache`], a non-inline file whose state the cache knows is not read: its
//! digest is taken from there (once its object is seen in the digest store, if there is one)
//! and the file is opened only to read its xattrs. Every file hashed is added to the cache,
//! if it did not change while it was read.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use sealroot_format::tree::{FileType, RegularFile, Xattr};
use sealroot_verity::{AnyDigest, Hasher, Params};

use crate::cache::DigestCache;
use crate::store::Store;
use crate::walk::{FileState, RawStat};
use crate::xattr::{Target, XattrReader};
use crate::{BuildError, BuildOptions, Operation, Progress};

/// The read buffer of each thread: large enough that system calls cost little next to the
/// hashing, small enough to stay in the CPU's L2 cache.
const READ_BUF_SIZE: usize = 256 * 1024;

/// How many bytes of a large file are read between two progress reports.
const PROGRESS_STEP: u64 = 16 << 20;

/// Files up to this size are handed over open; larger ones by path. Reopening costs little
/// next to hashing a megabyte, and large files are few, so they can all wait without holding
/// file descriptors.
pub(crate) const OPEN_HANDOVER_MAX: u64 = 1 << 20;

/// The most open files waiting in the queue: well below the usual 1024-fd soft limit.
const MAX_QUEUED_FDS: usize = 256;

/// How contents are opened: never through a symlink, never blocking (should a fifo have
/// taken the file's place), never becoming a controlling terminal.
pub(crate) const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY);

/// An idle thread is woken for small files only once this many jobs wait: a file whose
/// digest is cached takes less time than waking a thread for it (on /usr, waking one per file
/// cost a quarter of a cached build's CPU time). The last jobs are handed out when the walk
/// closes the queue.
const WAKE_BATCH: usize = 16;

/// Set once `openat2` turns out to be missing (Linux before 5.6).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// A regular file whose content is to be read.
pub(crate) struct ContentJob {
    /// Its number, which indexes the results.
    pub(crate) index: usize,
    /// Its path relative to the source directory.
    pub(crate) path: Vec<u8>,
    /// What it looked like during the walk.
    pub(crate) state: FileState,
    /// Whether its content goes into the image (else it is hashed).
    pub(crate) inline: bool,
    /// Whether its xattrs are still to be read (from the fd opened to read the content,
    /// which is cheaper than a path through `/proc`, and done in parallel).
    pub(crate) read_xattrs: bool,
    /// The file, already open, whose `fstat` gave `state`; else it is opened by `path`.
    pub(crate) fd: Option<OwnedFd>,
}

/// Large files in the queue: the largest first, then in walk order.
struct BySize(ContentJob);

impl BySize {
    fn key(&self) -> (u64, Reverse<usize>) {
        (self.0.state.size, Reverse(self.0.index))
    }
}

impl PartialEq for BySize {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for BySize {}

impl PartialOrd for BySize {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for BySize {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.key().cmp(&other.key())
    }
}

#[derive(Default)]
struct QueueState {
    /// Files handed over open, in walk order.
    open: VecDeque<ContentJob>,
    /// Files handed over by path.
    by_size: BinaryHeap<BySize>,
    /// No more jobs will come.
    walk_done: bool,
    /// A job failed or the walk did: stop.
    stopped: bool,
    /// The first failure of a job.
    error: Option<BuildError>,
    /// How many threads wait for a job (so a new job needs a wake-up).
    idle_workers: usize,
    /// Whether the walk waits for room for an open file.
    walk_waiting: bool,
}

/// Where the walk puts jobs and the threads take them from.
#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    /// Signalled when a job arrives or the queue closes.
    ready: Condvar,
    /// Signalled when an open file was taken (there is room for another).
    room: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .expect("no thread panicked holding the queue")
    }

    /// Adds a job, waiting for room if it holds an open file. Returns false if the build has
    /// failed: the walk should stop.
    pub(crate) fn push(&self, job: ContentJob) -> bool {
        let mut st = self.lock();
        let small = job.fd.is_some();
        if small {
            if st.open.len() >= MAX_QUEUED_FDS {
                // Wait until the queue is half empty, not just for one free place, so the
                // threads are not woken and put to sleep again for every file.
                st.walk_waiting = true;
                while st.open.len() > MAX_QUEUED_FDS / 2 && !st.stopped {
                    st = self
                        .room
                        .wait(st)
                        .expect("no thread panicked holding the queue");
                }
                st.walk_waiting = false;
            }
            st.open.push_back(job);
        } else {
            st.by_size.push(BySize(job));
        }
        let ok = !st.stopped;
        let queued = st.open.len() + st.by_size.len();
        let wake = st.idle_workers > 0 && (queued >= WAKE_BATCH || !small);
        drop(st);
        if wake {
            self.ready.notify_one();
        }
        ok
    }

    /// The next job, or `None` when there is none left or the build failed.
    fn pop(&self) -> Option<ContentJob> {
        let mut st = self.lock();
        loop {
            if st.stopped {
                return None;
            }
            if let Some(job) = st.open.pop_front() {
                let wake = st.walk_waiting && st.open.len() <= MAX_QUEUED_FDS / 2;
                drop(st);
                if wake {
                    self.room.notify_one();
                }
                return Some(job);
            }
            if let Some(BySize(job)) = st.by_size.pop() {
                return Some(job);
            }
            if st.walk_done {
                return None;
            }
            st.idle_workers += 1;
            st = self
                .ready
                .wait(st)
                .expect("no thread panicked holding the queue");
            st.idle_workers -= 1;
        }
    }

    /// Closes the queue: the walk is over (`failed` if it ended in an error).
    fn close(&self, failed: bool) {
        let mut st = self.lock();
        st.walk_done = true;
        st.stopped |= failed;
        drop(st);
        self.ready.notify_all();
        self.room.notify_all();
    }

    /// Records a job's failure and stops everything.
    fn fail(&self, e: BuildError) {
        let mut st = self.lock();
        st.stopped = true;
        st.error.get_or_insert(e);
        drop(st);
        self.ready.notify_all();
        self.room.notify_all();
    }
}

/// What the threads share.
struct Shared<'a> {
    queue: &'a Queue,
    root: &'a OwnedFd,
    source: &'a Path,
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

/// Runs `walk` on this thread while [`BuildOptions::threads`] threads read the files it
/// puts in the queue it is given; returns what `walk` returns and, indexed by job number,
/// what was read (`walk` returns the number of jobs with its result).
pub(crate) fn read_while<T>(
    root: &OwnedFd,
    source: &Path,
    opts: &BuildOptions,
    store: Option<&Store>,
    progress: &dyn Progress,
    walk: impl FnOnce(&Queue) -> Result<(T, usize), BuildError>,
) -> Result<(T, Vec<FileContent>), BuildError> {
    let queue = Queue::default();
    let shared = Shared {
        queue: &queue,
        root,
        source,
        results: Mutex::new(Vec::new()),
        opts,
        store,
        progress,
    };
    let threads = opts.thread_count();
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
    let walked = pool.in_place_scope(|s| {
        for _ in 0..threads {
            s.spawn(|_| worker(&shared));
        }
        let walked = walk(&queue);
        queue.close(walked.is_err());
        walked
    });

    // A failed job is the cause of a stopped walk; else the walk's own error counts.
    let results = shared
        .results
        .into_inner()
        .expect("no thread panicked holding the lock");
    let error = queue
        .state
        .into_inner()
        .expect("no thread panicked holding the queue")
        .error;
    if let Some(e) = error {
        return Err(e);
    }
    let (walked, n_jobs) = walked?;
    let mut files = vec![FileContent::default(); n_jobs];
    for (i, f) in results {
        files[i] = f;
    }
    Ok((walked, files))
}

/// Stops the queue if a worker panics, so that the walk does not wait for it forever (the
/// panic then reaches the caller when the thread scope ends).
struct StopOnPanic<'a>(&'a Queue);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(mut st) = self.0.state.lock() {
                st.stopped = true;
            }
            self.0.ready.notify_all();
            self.0.room.notify_all();
        }
    }
}

/// Takes jobs off the queue until it is empty or the build failed.
fn worker(shared: &Shared<'_>) {
    let _guard = StopOnPanic(shared.queue);
    let mut buf = vec![0u8; READ_BUF_SIZE];
    let mut xattrs = None;
    let mut done = Vec::new();
    while let Some(job) = shared.queue.pop() {
        let index = job.index;
        match read_one(shared, job, &mut buf, &mut xattrs) {
            Ok(file) => done.push((index, file)),
            Err(e) => {
                shared.queue.fail(e);
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
fn read_retrying(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Err(Errno::INTR) => {}
            r => return r,
        }
    }
}

/// Opens the file of a job by its path `rel` beneath the source directory, checking that it
/// is still the regular file the walk saw in `state`.
fn open_job(shared: &Shared<'_>, rel: &[u8], state: &FileState) -> Result<OwnedFd, BuildError> {
    let path = || full_path(shared.source, rel);
    let fd = match open_beneath(shared.root, rel) {
        Ok(fd) => fd,
        // Removed, or a directory on its path replaced by a symlink or a file.
        Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR | Errno::XDEV) => {
            return Err(BuildError::Changed { path: path() })
        }
        Err(e) => return Err(BuildError::io(Operation::Open, path(), e)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| BuildError::io(Operation::Stat, path(), e))?;
    let raw = RawStat::new(&st);
    if raw.state != *state || FileType::from_mode(raw.mode) != Some(FileType::Regular) {
        return Err(BuildError::Changed { path: path() });
    }
    Ok(fd)
}

/// A non-inline file's record with `digest`, as the options ask for it.
fn external(opts: &BuildOptions, digest: AnyDigest) -> RegularFile {
    RegularFile {
        inline: None,
        payload: opts.by_digest.then(|| digest.object_path().into_bytes()),
        digest: opts.compute_digest.then_some(digest),
    }
}

/// The digest [`BuildOptions::cache`] has for a non-inline file in `state`, if it has one
/// and, with a digest store, the object is there (else the file is read and stored again).
fn cached_digest(
    shared: &Shared<'_>,
    cache: &DigestCache,
    state: &FileState,
) -> Result<Option<AnyDigest>, BuildError> {
    let Some(digest) = cache.lookup(&state.key()) else {
        return Ok(None);
    };
    match shared.store {
        Some(store) if shared.opts.by_digest && !store.contains(&digest)? => Ok(None),
        _ => Ok(Some(digest)),
    }
}

/// Reads one file: its inline content, or its digest (and copies it to the store), unless
/// the cache has its digest; and its xattrs if the job says so, with `xattrs`, made on first
/// use.
fn read_one(
    shared: &Shared<'_>,
    job: ContentJob,
    buf: &mut [u8],
    xattrs: &mut Option<XattrReader>,
) -> Result<FileContent, BuildError> {
    // Taken before anything is read: a cache entry is made only for a file whose ctime is
    // older than this by more than the timestamp granularity.
    let started = SystemTime::now();
    let ContentJob {
        path: rel,
        state,
        inline,
        read_xattrs,
        fd,
        ..
    } = job;
    let path = || full_path(shared.source, &rel);
    let changed = || BuildError::Changed { path: path() };
    let progress = shared.progress;
    let opts = shared.opts;
    let size = state.size;
    let cache = opts.cache.as_deref().filter(|_| !inline);
    let cached = match cache {
        Some(cache) => cached_digest(shared, cache, &state)?,
        None => None,
    };

    // A cached file is opened only if its xattrs are still to be read.
    let fd = match fd {
        Some(fd) => Some(fd),
        None if cached.is_none() || read_xattrs => Some(open_job(shared, &rel, &state)?),
        None => None,
    };
    let xattrs = match (&fd, read_xattrs) {
        (Some(fd), true) => {
            let reader = xattrs.get_or_insert_with(|| XattrReader::new(opts.user_xattrs));
            Some(
                reader
                    .read(&Target::Fd(fd.as_fd()))
                    .map_err(|e| e.into_build_error(path()))?,
            )
        }
        _ => None,
    };
    if let Some(digest) = cached {
        progress.files_cached(1, size);
        let file = external(opts, digest);
        return Ok(FileContent { file, xattrs });
    }
    let fd = fd.expect("a file whose digest is not cached is open");

    if inline {
        // At most INLINE_CONTENT_MAX bytes: usually one read for them and to see that nothing
        // follows.
        let mut data = Vec::with_capacity(usize::try_from(size).expect("inline files are small"));
        let complete = read_exactly(&fd, size, buf, |chunk| data.extend_from_slice(chunk))
            .map_err(|e| BuildError::io(Operation::Read, path(), e))?;
        if !complete {
            return Err(changed());
        }
        progress.files_hashed(1, size);
        let file = RegularFile {
            inline: Some(data),
            payload: None,
            digest: None,
        };
        return Ok(FileContent { file, xattrs });
    }

    let mut hasher = Hasher::new(Params::composefs(opts.algorithm));
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
    if !complete {
        return Err(changed());
    }
    progress.files_hashed(1, reported);
    let digest = hasher.finish();

    if let (Some(store), true) = (shared.store, opts.by_digest) {
        store.insert(&fd, &state, &digest, &path(), buf, progress)?;
    }
    if let Some(cache) = cache {
        // Only if what was read is what the key describes: the file has not changed since.
        let now = rustix::fs::fstat(&fd).map_err(|e| BuildError::io(Operation::Stat, path(), e))?;
        if RawStat::new(&now).state == state {
            cache.insert(state.key(), digest, started);
        }
    }
    Ok(FileContent {
        file: external(opts, digest),
        xattrs,
    })
}

/// Reads `fd` from its current offset to its end through `buf`, handing each piece read to
/// `f`, and checks that that was `size` bytes: false if the file turned out shorter or
/// longer. With `buf` larger than what remains, a short read tells the end of
/// the file, so a small file takes a single `read`.
fn read_exactly(
    fd: &OwnedFd,
    size: u64,
    buf: &mut [u8],
    mut f: impl FnMut(&[u8]),
) -> Result<bool, Errno> {
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
            return Ok(false);
        }
        f(&buf[..n]);
        if n < want && total == size {
            break;
        }
    }
    Ok(total == size)
}
