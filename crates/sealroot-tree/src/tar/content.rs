//! Handing file contents to the [`ObjectSink`] while the archive is read.
//!
//! With one thread, the reading thread calls the sink itself, which reads straight from the
//! archive. With more, the reading thread (which decompresses and parses) passes contents to
//! worker threads that call the sink, so decompression, hashing and writing overlap:
//!
//! * files up to [`BATCH_FILE_MAX`] bytes are copied into a batch, and a full batch (about
//!   [`BATCH_BYTES`]) goes to a worker in one message, which keeps the cost per file small;
//! * larger files stream through a channel of [`CHUNK_SIZE`] chunks, at most
//!   [`STREAM_DEPTH`] of them in flight, so no file is ever held whole in memory.
//!
//! A worker whose sink fails drops what it was given, which makes the reading thread stop at
//! its next hand-over; the first failing file (in archive order) is the error reported.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ScopedJoinHandle;

use sealroot_verity::AnyDigest;

use super::archive::{path_buf, Archive};
use super::{ObjectSink, TarError};

/// The largest file put into a batch rather than streamed.
const BATCH_FILE_MAX: u64 = 256 * 1024;
/// A batch is handed over once it holds this many bytes...
const BATCH_BYTES: usize = 1 << 20;
/// ...or this many files.
const BATCH_FILES: usize = 256;
/// The size of each chunk of a streamed file.
const CHUNK_SIZE: usize = 256 * 1024;
/// How many chunks of one file may wait for its worker.
const STREAM_DEPTH: usize = 8;

/// Where a file of the archive is, for error messages.
struct JobInfo {
    path: Vec<u8>,
    offset: u64,
}

/// Small files, whole, one after another in `data`.
struct Batch {
    data: Vec<u8>,
    /// Job number, start in `data`, length.
    files: Vec<(usize, usize, usize)>,
}

/// What a worker is given.
enum Work {
    Batch(Batch),
    Stream {
        job: usize,
        size: u64,
        chunks: Receiver<Vec<u8>>,
    },
}

/// What the workers share.
struct Shared<'s> {
    sink: &'s dyn ObjectSink,
    /// Set by a worker whose sink failed.
    failed: AtomicBool,
    /// Chunk buffers to reuse.
    free_chunks: Mutex<Vec<Vec<u8>>>,
}

impl Shared<'_> {
    fn take_chunk(&self) -> Vec<u8> {
        let mut free = self
            .free_chunks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        free.pop().unwrap_or_default()
    }

    fn give_chunk(&self, chunk: Vec<u8>) {
        let mut free = self
            .free_chunks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // As many as can be in flight for one file, and a few more; drop the rest.
        if free.len() < 2 * STREAM_DEPTH {
            free.push(chunk);
        }
    }
}

/// How contents reach the sink.
enum Mode<'s> {
    /// The reading thread stores each file itself.
    Direct {
        sink: &'s dyn ObjectSink,
        digests: Vec<AnyDigest>,
    },
    /// Worker threads do.
    Workers {
        work: SyncSender<Work>,
        shared: Arc<Shared<'s>>,
        batch: Batch,
    },
}

/// Hands contents to the sink; every stored file gets a job number, which indexes the
/// digests [`run`] returns.
pub(crate) struct Pipeline<'s> {
    mode: Mode<'s>,
    jobs: Vec<JobInfo>,
    /// A worker's failure stopped the reading.
    stopped: bool,
}

/// The error reported when the reading stopped because a worker failed (replaced by that
/// worker's error, which is known once the workers are joined).
fn stopped_error(info: &JobInfo) -> TarError {
    TarError::Sink {
        offset: info.offset,
        path: path_buf(&info.path),
        source: io::Error::other("the object sink stopped"),
    }
}

impl Pipeline<'_> {
    /// Stores the content of the archive's current entry, `size` bytes of file `path` whose
    /// header is at `offset`, and returns its job number.
    pub(crate) fn submit(
        &mut self,
        archive: &mut Archive<'_>,
        size: u64,
        path: &[u8],
        offset: u64,
    ) -> Result<usize, TarError> {
        let job = self.jobs.len();
        self.jobs.push(JobInfo {
            path: path.to_vec(),
            offset,
        });
        let info = &self.jobs[job];
        let sink_error = |source| TarError::Sink {
            offset,
            path: path_buf(path),
            source,
        };
        match &mut self.mode {
            Mode::Direct { sink, digests } => {
                let mut reader = EntryReader {
                    archive,
                    error: None,
                };
                let stored = sink.store(&mut reader, size);
                if let Some(e) = reader.error {
                    return Err(e);
                }
                let digest = stored.map_err(sink_error)?;
                if archive.content_left() != 0 {
                    return Err(sink_error(unread(size, archive.content_left())));
                }
                digests.push(digest);
            }
            Mode::Workers {
                work,
                shared,
                batch,
            } => {
                if shared.failed.load(Ordering::Relaxed) {
                    self.stopped = true;
                    return Err(stopped_error(info));
                }
                if size <= BATCH_FILE_MAX {
                    let start = batch.data.len();
                    let len = size as usize;
                    batch.data.resize(start + len, 0);
                    archive.read_content(&mut batch.data[start..])?;
                    batch.files.push((job, start, len));
                    if batch.data.len() >= BATCH_BYTES || batch.files.len() >= BATCH_FILES {
                        let full = std::mem::replace(batch, new_batch());
                        if work.send(Work::Batch(full)).is_err() {
                            self.stopped = true;
                            return Err(stopped_error(info));
                        }
                    }
                    return Ok(job);
                }
                let (tx, rx) = sync_channel(STREAM_DEPTH);
                let stream = Work::Stream {
                    job,
                    size,
                    chunks: rx,
                };
                if work.send(stream).is_err() {
                    self.stopped = true;
                    return Err(stopped_error(info));
                }
                loop {
                    let mut chunk = shared.take_chunk();
                    chunk.resize(CHUNK_SIZE, 0);
                    let n = archive.read_content(&mut chunk)?;
                    if n == 0 {
                        break;
                    }
                    chunk.truncate(n);
                    if tx.send(chunk).is_err() {
                        // The worker gave up on this file: its error says why.
                        self.stopped = true;
                        return Err(stopped_error(info));
                    }
                }
            }
        }
        Ok(job)
    }
}

fn new_batch() -> Batch {
    Batch {
        data: Vec::with_capacity(BATCH_BYTES + BATCH_FILE_MAX as usize),
        files: Vec::new(),
    }
}

/// The error for a sink that returned before reading all `size` bytes.
fn unread(size: u64, left: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the object sink returned after reading {} of {size} bytes",
            size - left
        ),
    )
}

/// What a worker returns: the result of each job it was given, by job number.
type JobResults = Vec<(usize, io::Result<AnyDigest>)>;

/// Runs `read` with a pipeline feeding `sink` through `threads` threads (1: the calling
/// thread alone), and returns what it returns and the digest of every job. An error of the
/// sink is returned in preference to the reading error it caused.
pub(crate) fn run<'s, T>(
    sink: &'s dyn ObjectSink,
    threads: usize,
    read: impl FnOnce(&mut Pipeline<'s>) -> Result<T, TarError>,
) -> Result<(T, Vec<AnyDigest>), TarError> {
    if threads <= 1 {
        run_direct(sink, read)
    } else {
        run_with_workers(sink, threads, read)
    }
}

/// [`run`] on the calling thread alone.
fn run_direct<'s, T>(
    sink: &'s dyn ObjectSink,
    read: impl FnOnce(&mut Pipeline<'s>) -> Result<T, TarError>,
) -> Result<(T, Vec<AnyDigest>), TarError> {
    let mut pipeline = Pipeline {
        mode: Mode::Direct {
            sink,
            digests: Vec::new(),
        },
        jobs: Vec::new(),
        stopped: false,
    };
    let value = read(&mut pipeline)?;
    let Mode::Direct { digests, .. } = pipeline.mode else {
        unreachable!("the mode does not change")
    };
    Ok((value, digests))
}

/// [`run`] with `threads` worker threads: start them, read, hand over the last batch and
/// close the channel, join them, and put their results in job order.
fn run_with_workers<'s, T>(
    sink: &'s dyn ObjectSink,
    threads: usize,
    read: impl FnOnce(&mut Pipeline<'s>) -> Result<T, TarError>,
) -> Result<(T, Vec<AnyDigest>), TarError> {
    let shared = Arc::new(Shared {
        sink,
        failed: AtomicBool::new(false),
        free_chunks: Mutex::new(Vec::new()),
    });
    let (work_tx, work_rx) = sync_channel::<Work>(threads);
    std::thread::scope(|scope| {
        let handles = start_workers(scope, threads, work_rx, &shared)?;
        let mut pipeline = Pipeline {
            mode: Mode::Workers {
                work: work_tx,
                shared: Arc::clone(&shared),
                batch: new_batch(),
            },
            jobs: Vec::new(),
            stopped: false,
        };
        let value = read(&mut pipeline);
        let (value, jobs, stopped) = pipeline.close(value);
        let results = join_workers(handles, jobs.len());
        outcome(value, stopped, results, &jobs)
    })
}

/// Starts `threads` workers in `scope` taking work from `work`.
fn start_workers<'scope, 's: 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    threads: usize,
    work: Receiver<Work>,
    shared: &Arc<Shared<'s>>,
) -> Result<Vec<ScopedJoinHandle<'scope, JobResults>>, TarError> {
    // Only the workers hold the receiving end: should they all die, sending fails rather
    // than blocking forever.
    let work = Arc::new(Mutex::new(work));
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        let (rx, shared) = (Arc::clone(&work), Arc::clone(shared));
        let spawned = std::thread::Builder::new()
            .name(format!("sealroot-tar-{i}"))
            .spawn_scoped(scope, move || worker(&rx, &shared));
        handles.push(spawned.map_err(TarError::StartThreads)?);
    }
    Ok(handles)
}

impl Pipeline<'_> {
    /// Ends the hand-over once reading returned `value`: the last batch goes to a worker and
    /// the work channel closes, so that the workers finish. Returns `value` (an error if no
    /// worker was left for the last batch), the jobs, and whether a worker's failure stopped
    /// the reading.
    fn close<T>(self, mut value: Result<T, TarError>) -> (Result<T, TarError>, Vec<JobInfo>, bool) {
        let Pipeline {
            mode,
            jobs,
            stopped,
        } = self;
        if let Mode::Workers { work, batch, .. } = mode {
            if value.is_ok() && !batch.files.is_empty() && work.send(Work::Batch(batch)).is_err() {
                value = Err(TarError::StartThreads(io::Error::other(
                    "every thread storing contents is gone",
                )));
            }
        }
        (value, jobs, stopped)
    }
}

/// Waits for the workers; returns the result of each of `jobs` jobs, `None` for one no
/// worker reported. A worker's panic goes on in this thread.
fn join_workers(
    handles: Vec<ScopedJoinHandle<'_, JobResults>>,
    jobs: usize,
) -> Vec<Option<io::Result<AnyDigest>>> {
    let mut results: Vec<Option<io::Result<AnyDigest>>> = Vec::new();
    results.resize_with(jobs, || None);
    for h in handles {
        match h.join() {
            Ok(done) => {
                for (job, r) in done {
                    if let Some(slot) = results.get_mut(job) {
                        *slot = Some(r);
                    }
                }
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    results
}

/// What [`run`] returns, given what reading returned (`value`, `stopped` if a worker's
/// failure stopped it) and the result of each job: the first failing job's error if there is
/// one and reading succeeded or was stopped by it, else the reading error, else the value
/// and the digests.
fn outcome<T>(
    value: Result<T, TarError>,
    stopped: bool,
    mut results: Vec<Option<io::Result<AnyDigest>>>,
    jobs: &[JobInfo],
) -> Result<(T, Vec<AnyDigest>), TarError> {
    let job_error = |job: usize, source| TarError::Sink {
        offset: jobs[job].offset,
        path: path_buf(&jobs[job].path),
        source,
    };
    let first_failure =
        results
            .iter_mut()
            .enumerate()
            .find_map(|(job, r)| match r.take_if(|r| r.is_err()) {
                Some(Err(e)) => Some(job_error(job, e)),
                _ => None,
            });
    let value = match (value, first_failure) {
        (Ok(_), Some(e)) => return Err(e),
        (Err(_), Some(e)) if stopped => return Err(e),
        (Err(e), _) => return Err(e),
        (Ok(value), None) => value,
    };
    let mut digests = Vec::with_capacity(results.len());
    for (job, r) in results.into_iter().enumerate() {
        match r {
            Some(Ok(d)) => digests.push(d),
            _ => {
                return Err(job_error(
                    job,
                    io::Error::other("no thread stored this file"),
                ))
            }
        }
    }
    Ok((value, digests))
}

/// A worker: stores what it is given until the work channel closes; returns the result of
/// each job.
fn worker(
    work: &Mutex<Receiver<Work>>,
    shared: &Shared<'_>,
) -> Vec<(usize, io::Result<AnyDigest>)> {
    let mut done = Vec::new();
    loop {
        let next = work.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(next) = next else {
            return done;
        };
        match next {
            Work::Batch(batch) => {
                for &(job, start, len) in &batch.files {
                    let mut content = batch.data.get(start..start + len).unwrap_or_default();
                    let r = shared.sink.store(&mut content, len as u64);
                    let r = match r {
                        Ok(_) if !content.is_empty() => {
                            Err(unread(len as u64, content.len() as u64))
                        }
                        r => r,
                    };
                    let failed = r.is_err();
                    done.push((job, r));
                    if failed {
                        shared.failed.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            }
            Work::Stream { job, size, chunks } => {
                let mut reader = ChunkReader {
                    chunks,
                    shared,
                    chunk: Vec::new(),
                    pos: 0,
                    left: size,
                };
                let r = match shared.sink.store(&mut reader, size) {
                    Ok(_) if reader.left != 0 => Err(unread(size, reader.left)),
                    r => r,
                };
                if r.is_err() {
                    shared.failed.store(true, Ordering::Relaxed);
                }
                // Dropping the channel now tells the reading thread, should it still be
                // sending, to stop.
                drop(reader);
                done.push((job, r));
            }
        }
    }
}

/// The content of the archive's current entry, read straight from the archive. An error of
/// the archive is kept, to be reported as it is rather than as the sink's.
struct EntryReader<'r, 'a> {
    archive: &'r mut Archive<'a>,
    error: Option<TarError>,
}

impl Read for EntryReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.error.is_some() {
            return Err(io::Error::other("the archive could not be read"));
        }
        match self.archive.read_content(buf) {
            Ok(n) => Ok(n),
            Err(e) => {
                let message = e.to_string();
                self.error = Some(e);
                Err(io::Error::other(message))
            }
        }
    }
}

/// The content of a streamed file, as its chunks arrive.
struct ChunkReader<'w, 's> {
    chunks: Receiver<Vec<u8>>,
    shared: &'w Shared<'s>,
    chunk: Vec<u8>,
    pos: usize,
    /// Bytes not yet returned.
    left: u64,
}

impl Read for ChunkReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        if self.pos == self.chunk.len() {
            match self.chunks.recv() {
                Ok(next) => {
                    let used = std::mem::replace(&mut self.chunk, next);
                    if used.capacity() > 0 {
                        self.shared.give_chunk(used);
                    }
                    self.pos = 0;
                }
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the archive ended inside this file",
                    ))
                }
            }
        }
        let available = &self.chunk[self.pos..];
        let n = available
            .len()
            .min(buf.len())
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n;
        self.left -= n as u64;
        Ok(n)
    }
}

impl Drop for ChunkReader<'_, '_> {
    fn drop(&mut self) {
        let chunk = std::mem::take(&mut self.chunk);
        if chunk.capacity() > 0 {
            self.shared.give_chunk(chunk);
        }
    }
}
