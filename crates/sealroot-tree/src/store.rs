//! The digest store of `mkcomposefs --digest-store=DIR`, and the tree builder's view of a
//! repository's object store: every non-inline file copied to `DIR/xx/yyyy…`, named by its
//! fs-verity digest.
//!
//! Both are a [`sealroot_objects::Store`], the one writer of objects (an object is never
//! visible half-written; see that crate). What is this crate's: the digest store's options
//! (temporary files renamed into place, fs-verity tried, fsync per object unless the caller
//! flushes otherwise), the check that a source file did not change since it was hashed, and
//! naming failures as [`BuildError`]s.

use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use sealroot_objects::{Fallback, Placed, StoreError, StoreOp, StoreOptions, VerityPolicy};
use sealroot_verity::{AnyDigest, HashAlgorithm};

use crate::walk::{FileState, RawStat};
use crate::{BuildError, Operation, Progress};

/// An open object store, as the builder writes to it.
pub(crate) struct Store {
    pub(crate) inner: Arc<sealroot_objects::Store>,
}

impl Store {
    /// Opens the digest store at `path`, creating it (and its parents) if needed; each object
    /// is fsync'ed before it is linked when `sync` is set, and named by its `algorithm` digest.
    pub(crate) fn open(
        path: &Path,
        sync: bool,
        algorithm: HashAlgorithm,
    ) -> Result<Store, BuildError> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(sealroot_objects::DIR_MODE)
            .create(path)
            .map_err(|e| BuildError::io(Operation::CreateStore, path.to_owned(), e))?;
        let dir = rustix::fs::openat(
            rustix::fs::CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| BuildError::io(Operation::Open, path.to_owned(), e))?;
        let options = StoreOptions {
            algorithm,
            fallback: Fallback::Rename,
            sync_each: sync,
            verity: VerityPolicy::Try,
            record: false,
        };
        Ok(Store {
            inner: Arc::new(sealroot_objects::Store::new(path, dir, None, options)),
        })
    }

    /// The builder's view of a store opened elsewhere (a repository's transaction).
    pub(crate) fn shared(inner: Arc<sealroot_objects::Store>) -> Store {
        Store { inner }
    }

    /// Copies `src` (whose path is `src_path`, and which was `state` when it was hashed to
    /// `digest`) into the store unless the object is there already. Uses `buf` if it has to
    /// copy by hand.
    pub(crate) fn insert(
        &self,
        src: &OwnedFd,
        state: &FileState,
        digest: &AnyDigest,
        src_path: &Path,
        buf: &mut [u8],
        progress: &dyn Progress,
    ) -> Result<(), BuildError> {
        let unchanged = || -> io::Result<bool> {
            let now = rustix::fs::fstat(src)?;
            Ok(RawStat::new(&now).state == *state)
        };
        let placed = self
            .inner
            .insert_fd(src.as_fd(), state.size, digest, buf, &unchanged)
            .map_err(|e| match e {
                StoreError::SourceChanged => BuildError::Changed {
                    path: src_path.to_owned(),
                },
                StoreError::Read(e) => BuildError::io(Operation::Stat, src_path.to_owned(), e),
                e => store_error(e),
            })?;
        if placed == Placed::New {
            progress.objects_stored(1, state.size);
        }
        Ok(())
    }

    /// Whether object `digest` is in the store: one lookup, no read.
    pub(crate) fn contains(&self, digest: &AnyDigest) -> Result<bool, BuildError> {
        self.inner.contains(digest).map_err(store_error)
    }

    /// The algorithm naming the store's objects.
    pub(crate) fn algorithm(&self) -> HashAlgorithm {
        self.inner.options().algorithm
    }

    /// The store's path.
    pub(crate) fn path(&self) -> &Path {
        self.inner.path()
    }

    /// Writes everything `content` yields, which must be `size` bytes, into the store while
    /// hashing it, and returns its digest; content already in the store is hashed and
    /// dropped. A failure of `content` itself, or another size, is an [`Operation::Read`]
    /// error.
    pub(crate) fn insert_stream(
        &self,
        content: &mut dyn Read,
        size: u64,
    ) -> Result<AnyDigest, BuildError> {
        stream_into(&self.inner, content, size)
    }
}

/// Stores everything `content` yields, which must be `size` bytes, in `store`; returns its
/// digest (of the store's algorithm: what the image records and the object is named by).
fn stream_into(
    store: &sealroot_objects::Store,
    content: &mut dyn Read,
    size: u64,
) -> Result<AnyDigest, BuildError> {
    let path = || store.path().to_owned();
    let (digest, _, _) = store
        .insert_reader(content, Some(size))
        .map_err(|e| match e {
            StoreError::Read(e) => BuildError::io(Operation::Read, path(), e),
            e @ StoreError::Size { .. } => BuildError::io(
                Operation::Read,
                path(),
                io::Error::new(io::ErrorKind::InvalidData, e),
            ),
            e => store_error(e),
        })?;
    Ok(digest)
}

/// A repository transaction's store takes an archive's files directly.
impl crate::tar::ObjectSink for sealroot_objects::Store {
    fn store(&self, content: &mut dyn Read, size: u64) -> io::Result<AnyDigest> {
        stream_into(self, content, size).map_err(BuildError::into_io)
    }
}

/// The [`BuildError`] of a failure of the object store.
fn store_error(e: StoreError) -> BuildError {
    match e {
        StoreError::Io { op, path, source } => {
            let op = match op {
                StoreOp::Lookup => Operation::CheckObject,
                StoreOp::Subdir => Operation::CreateStore,
                StoreOp::Create | StoreOp::Write => Operation::CopyObject,
                StoreOp::Seal => Operation::SyncObject,
                StoreOp::Verity => Operation::EnableVerity,
                _ => Operation::LinkObject,
            };
            // The store opens nothing through a symlink: ELOOP means one was planted there.
            let source = if source.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                io::Error::other(
                    "a symlink stands on this path where the store has a directory or an \
                     object; it is never followed",
                )
            } else {
                source
            };
            BuildError::io(op, path, source)
        }
        StoreError::VerityRequired { ref path, .. }
        | StoreError::VerityMismatch { ref path, .. } => {
            let path = path.clone();
            BuildError::io(Operation::EnableVerity, path, io::Error::other(e))
        }
        // The source's own failures, which the callers above name by the source.
        e => BuildError::io(
            Operation::CopyObject,
            std::path::PathBuf::new(),
            io::Error::other(e),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoProgress;
    use std::path::PathBuf;

    /// A file to store, open, with its state and digest.
    fn source(dir: &Path, content: &[u8]) -> (OwnedFd, FileState, AnyDigest, PathBuf) {
        let path = dir.join("src");
        std::fs::write(&path, content).unwrap();
        let fd = rustix::fs::open(&path, OFlags::RDONLY, Mode::empty()).unwrap();
        let state = RawStat::new(&rustix::fs::fstat(&fd).unwrap()).state;
        (
            fd,
            state,
            sealroot_verity::sha256_digest(content).into(),
            path,
        )
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
        let store = Store::open(&tmp.path().join("store"), true, HashAlgorithm::Sha256).unwrap();
        store.inner.tmp_policy().disable_tmpfile();
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
            let store = Store::open(&store_path, true, HashAlgorithm::Sha256).unwrap();
            if no_tmpfile {
                store.inner.tmp_policy().disable_tmpfile();
            }
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
        let want = AnyDigest::from(sealroot_verity::sha256_digest(&content));
        for no_tmpfile in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("store");
            let store = Store::open(&path, true, HashAlgorithm::Sha256).unwrap();
            if no_tmpfile {
                store.inner.tmp_policy().disable_tmpfile();
            }
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
        let store = Store::open(&tmp.path().join("store"), true, HashAlgorithm::Sha256).unwrap();
        store.inner.copy_memo().disable_copy_range();
        // A small buffer, so the copy takes several rounds.
        let mut buf = vec![0; 3000];
        store
            .insert(&fd, &state, &digest, &path, &mut buf, &NoProgress)
            .unwrap();
        let object = tmp.path().join("store").join(digest.object_path());
        assert_eq!(std::fs::read(object).unwrap(), content);
    }
}
