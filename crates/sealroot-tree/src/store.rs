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
//!
//! The steps are `sealroot-objects`' (shared with the repository); the optional fsync, the
//! learning that fs-verity is missing and the errors are this store's.

use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use sealroot_objects::{CopyMemo, EnableError, Fallback, Subdirs, TmpFile, TmpPolicy};
use sealroot_sys::fsverity::{EnableParams, VerityError};
use sealroot_verity::{AnyDigest, Hasher, Params, Sha256Digest};

use crate::walk::{FileState, RawStat};
use crate::{BuildError, Operation, Progress};

/// An open digest store.
pub(crate) struct Store {
    path: PathBuf,
    dir: OwnedFd,
    /// Which `xx/` directories are known to exist.
    subdirs: Subdirs,
    /// How temporary files are made here (hidden names renamed into place where the
    /// filesystem has no `O_TMPFILE`).
    tmp: TmpPolicy,
    /// Whether `copy_file_range` turned out to be missing or unable to cross filesystems.
    copy: CopyMemo,
    /// Set once the store's filesystem turned out not to support fs-verity.
    no_verity: AtomicBool,
    /// Whether each object is fsync'ed before it is linked to its name (see
    /// [`crate::BuildOptions::sync_objects`]).
    sync: bool,
}

impl Store {
    /// Opens the store at `path`, creating it (and its parents) if needed.
    pub(crate) fn open(path: &Path) -> Result<Store, BuildError> {
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
        Ok(Store {
            path: path.to_owned(),
            dir,
            subdirs: Subdirs::default(),
            tmp: TmpPolicy::new(Fallback::Rename),
            copy: CopyMemo::default(),
            no_verity: AtomicBool::new(false),
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
            .tmp
            .create(&self.dir, subdir)
            .map_err(|e| object_err(Operation::CopyObject, e))?;
        let copied = sealroot_objects::copy(
            src.as_fd(),
            tmp.fd().as_fd(),
            state.size,
            buf,
            Some(&self.copy),
        );
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
            .tmp
            .create(&self.dir, ".")
            .map_err(|e| store_err(Operation::CopyObject, e))?;
        let mut hasher = Hasher::new(Params::composefs_default());
        let mut done = 0u64;
        sealroot_objects::with_buffer(|buf| loop {
            let n = match content.read(buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(BuildError::io(Operation::Read, self.path.clone(), e)),
            };
            hasher.update(&buf[..n]);
            sealroot_objects::write_all(tmp.fd(), &buf[..n])
                .map_err(|e| store_err(Operation::CopyObject, e))?;
            done += n as u64;
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
        let byte = digest.0[0];
        self.subdirs.ensure(&self.dir, byte).map_err(|e| {
            BuildError::io(
                Operation::CreateStore,
                self.path.join(Subdirs::name(byte)),
                e,
            )
        })
    }

    /// Turns the complete content in `tmp` into object `digest`: sets its mode, flushes it to
    /// disk, enables fs-verity where the filesystem can (the kernel's measurement must be
    /// `digest`, else the error `mismatch` makes is returned), and links it to its name.
    fn seal(
        &self,
        tmp: &mut TmpFile<'_>,
        digest: &Sha256Digest,
        mismatch: impl FnOnce() -> BuildError,
    ) -> Result<(), BuildError> {
        let name = digest.object_path();
        let object_err = |op, e: Errno| BuildError::io(op, self.path.join(&name), e);
        rustix::fs::fchmod(tmp.fd(), Mode::from_raw_mode(sealroot_objects::OBJECT_MODE))
            .map_err(|e| object_err(Operation::CopyObject, e))?;
        if self.sync {
            rustix::fs::fsync(tmp.fd()).map_err(|e| object_err(Operation::SyncObject, e))?;
        }
        if !self.no_verity.load(Ordering::Relaxed) {
            let params = EnableParams::composefs_default();
            match sealroot_objects::enable_verity(tmp, &params, &AnyDigest::Sha256(*digest)) {
                Ok(()) => {}
                // Like C mkcomposefs, only try: a store without fs-verity is still a store.
                Err(EnableError::Enable(
                    VerityError::NotSupported(_) | VerityError::InvalidParameters,
                )) => self.no_verity.store(true, Ordering::Relaxed),
                Err(EnableError::Mismatch { .. }) => return Err(mismatch()),
                Err(EnableError::Reopen(e)) => return Err(object_err(Operation::EnableVerity, e)),
                Err(EnableError::Enable(e) | EnableError::Measure(e)) => {
                    return Err(BuildError::io(
                        Operation::EnableVerity,
                        self.path.join(&name),
                        e,
                    ))
                }
                Err(e) => {
                    return Err(BuildError::io(
                        Operation::EnableVerity,
                        self.path.join(&name),
                        io::Error::other(e),
                    ))
                }
            }
        }
        self.tmp
            .link(tmp, &self.dir, &name)
            .map(|_| ())
            .map_err(|e| object_err(Operation::LinkObject, e))
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
        store.tmp.disable_tmpfile();
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
            if no_tmpfile {
                store.tmp.disable_tmpfile();
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
        let want = sealroot_verity::sha256_digest(&content);
        for no_tmpfile in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("store");
            let store = Store::open(&path).unwrap();
            if no_tmpfile {
                store.tmp.disable_tmpfile();
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
        let store = Store::open(&tmp.path().join("store")).unwrap();
        store.copy.disable_copy_range();
        // A small buffer, so the copy takes several rounds.
        let mut buf = vec![0; 3000];
        store
            .insert(&fd, &state, &digest, &path, &mut buf, &NoProgress)
            .unwrap();
        let object = tmp.path().join("store").join(digest.object_path());
        assert_eq!(std::fs::read(object).unwrap(), content);
    }
}
