//! Where the contents of regular files go: [`ObjectSink`] and its two implementations here.

use std::io::{self, Read};
use std::path::Path;

use sealroot_verity::{AnyDigest, HashAlgorithm, Params};

use crate::store::Store;
use crate::BuildError;

/// Takes the content of each regular file that is not inlined, as it streams out of the
/// archive, and gives back its fs-verity digest (4 KiB blocks, no salt: the digest composefs
/// records and names objects by; sha256, or sha512 for a sha512 repository's store).
///
/// `store` may be called from several threads at once, each with a different file. `content`
/// yields exactly `size` bytes and then end-of-file; it fails (with the archive's error
/// recorded by the caller) if the archive breaks off. An implementation reads it to the end,
/// hashing as it goes, and stores nothing visible unless it succeeds.
pub trait ObjectSink: Sync {
    /// Consumes one file's `size` bytes of content and returns their digest.
    fn store(&self, content: &mut dyn Read, size: u64) -> io::Result<AnyDigest>;
}

/// An [`ObjectSink`] that only computes digests (of its algorithm: sha256 by default, as
/// composefs) and keeps nothing: for building an image whose objects are already stored, or
/// for checking an archive.
#[derive(Clone, Copy, Debug, Default)]
pub struct HashOnly {
    /// The digest algorithm.
    pub algorithm: HashAlgorithm,
}

impl ObjectSink for HashOnly {
    fn store(&self, content: &mut dyn Read, _size: u64) -> io::Result<AnyDigest> {
        sealroot_verity::digest_reader(&Params::composefs(self.algorithm), content)
    }
}

/// An [`ObjectSink`] that writes every object into a digest store directory: the layout
/// `mkcomposefs --digest-store=DIR` makes, `DIR/xx/yyyy…` named by the digest.
///
/// An object never appears half-written: the content goes into an anonymous `O_TMPFILE` in
/// the store (a hidden temporary name where the filesystem has no `O_TMPFILE`) while it is
/// hashed, is flushed to disk, gets fs-verity where the filesystem supports it (and is then
/// checked to have the digest it is named by), and only then is linked to its name. Content
/// already in the store is hashed and dropped. It shares its code with
/// [`BuildOptions::digest_store`](crate::BuildOptions::digest_store).
pub struct DirStore {
    store: Store,
}

impl DirStore {
    /// Opens the digest store at `path`, creating it (and its parents) if needed.
    pub fn open(path: &Path) -> Result<DirStore, BuildError> {
        Ok(DirStore {
            store: Store::open(path, true, HashAlgorithm::Sha256)?,
        })
    }
}

impl std::fmt::Debug for DirStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirStore")
            .field("path", &self.store.path())
            .finish()
    }
}

impl ObjectSink for DirStore {
    fn store(&self, content: &mut dyn Read, size: u64) -> io::Result<AnyDigest> {
        self.store
            .insert_stream(content, size)
            .map_err(BuildError::into_io)
    }
}
