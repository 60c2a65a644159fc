//! Reading a directory into a composefs [`Tree`], as C `mkcomposefs SOURCE IMAGE` does.
//!
//! [`build_from_dir`] reads each piece of the source once, in two overlapping passes:
//!
//! 1. **Metadata**, on the calling thread: one walk of the source, fd-relative. Each
//!    directory is opened with `O_DIRECTORY | O_NOFOLLOW` and listed with `getdents64`, each
//!    entry `statat`ed without following symlinks (a regular file that is to be read anyway is
//!    opened instead and `fstat`ed); symlink targets and extended attributes are read on the
//!    way. This builds the whole tree but for the contents of regular files.
//! 2. **Contents**, on [`BuildOptions::threads`] threads, while the walk goes on: every
//!    regular file is read exactly once. Small files arrive already open; large ones are
//!    reopened beneath the source directory (`openat2` with `RESOLVE_BENEATH |
//!    RESOLVE_NO_SYMLINKS`), checked to be the file the walk saw, and read largest first.
//!    Files up to [`INLINE_CONTENT_MAX`] bytes are inlined; the others get their fs-verity
//!    digest and, as payload, the path of their object in a digest store. With
//!    [`BuildOptions::digest_store`] set, each such file is also copied (reflinked where the
//!    filesystem can) into the store.
//!
//! With a [`DigestCache`] ([`BuildOptions::cache`]), a non-inline file whose `stat` (device,
//! inode, size, mtime, ctime) is in the cache is not read at all: its digest comes from there
//! (with a digest store, once its object is seen to be in the store); every file that is read
//! is added. So building a tree again costs little more than its metadata, and gives the same
//! tree as a build without the cache. The [`cache`] module says when an entry is trusted.
//!
//! # What C mkcomposefs builds, and so do we
//!
//! * Every regular file of size 1 to [`INLINE_CONTENT_MAX`] bytes is **inline** (unless
//!   [`BuildOptions::no_inline`]): its content is in the image, and it has neither digest nor
//!   payload (C computes them, but the image does not record them for inline files and C does
//!   not copy such files to the store).
//! * Every larger file gets its fs-verity **digest** (sha256, 4 KiB blocks, no salt) and the
//!   **payload** `xx/yyyy…`: the lower-case hex digest with a `/` after the first byte
//!   ([`BuildOptions::compute_digest`] and [`BuildOptions::by_digest`] turn either off).
//!   [`BuildOptions::algorithm`] makes it a sha512 digest instead, for a sha512 repository
//!   (composefs-rs's `fsverity-sha512-12`); C composefs knows only sha256.
//! * Empty files have no content, digest or payload.
//! * Attributes are the `lstat` ones: mode, uid, gid, mtime with nanoseconds (zero with
//!   [`BuildOptions::use_epoch`]), `rdev` of devices in 32 bits. The link count of every
//!   non-directory is 1 and each name of a hard-linked file is an inode of its own, unless
//!   [`BuildOptions::hardlinks`] asks to keep them shared. Directories get 2 + their number of
//!   subdirectories. The root's attributes are those of the source directory itself.
//! * All extended attributes are kept with their raw values (`security.*`, `trusted.*`,
//!   `system.posix_acl_*` included), or only `user.*` ones, or none.
#![forbid(unsafe_code)]

pub mod cache;
mod content;
mod error;
mod progress;
mod store;
pub mod tar;
mod walk;
mod xattr;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cache::{CacheError, CacheFormatError, DigestCache, FileKey};
pub use error::{BuildError, Operation};
pub use progress::{NoProgress, Progress};
use sealroot_format::tree::Content;
pub use sealroot_format::tree::Tree;
use sealroot_verity::HashAlgorithm;

/// The largest regular file put inline in the image: C `LCFS_RECOMMENDED_INLINE_CONTENT_MAX`,
/// the limit `mkcomposefs` uses when it builds from a directory.
pub const INLINE_CONTENT_MAX: u64 = 64;

/// How to build a tree from a directory. [`Default`] gives what `mkcomposefs SOURCE IMAGE`
/// does with no options.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// `--use-epoch`: set every mtime to 0.
    pub use_epoch: bool,
    /// `--skip-devices`: leave out block and character devices (and so overlayfs whiteouts).
    pub skip_devices: bool,
    /// `--skip-xattrs`: record no extended attributes.
    pub skip_xattrs: bool,
    /// `--user-xattrs`: record only `user.*` extended attributes.
    pub user_xattrs: bool,
    /// Record each non-inline file's fs-verity digest (C `LCFS_BUILD_COMPUTE_DIGEST`, always
    /// on in mkcomposefs).
    pub compute_digest: bool,
    /// Set each non-inline file's payload to its digest path `xx/yyyy…` (C
    /// `LCFS_BUILD_BY_DIGEST`, always on in mkcomposefs). Without it no file is copied to the
    /// digest store.
    pub by_digest: bool,
    /// The fs-verity algorithm of the digests (4 KiB blocks, no salt): sha256 as composefs
    /// (the default), or sha512 for a sha512 repository. An
    /// [`object_store`](Self::object_store) and a [`cache`](Self::cache) must be of the same
    /// algorithm.
    pub algorithm: HashAlgorithm,
    /// Inline no file, however small (C `LCFS_BUILD_NO_INLINE`; off in mkcomposefs).
    pub no_inline: bool,
    /// Keep hard links: the first name of a multiply-linked file in depth-first name order
    /// owns the inode, the others are entries with [`DirEntry::hardlink`] set, and the link
    /// count is the number of names in the tree. Off by default: mkcomposefs makes every name
    /// an inode of its own.
    ///
    /// [`DirEntry::hardlink`]: sealroot_format::tree::DirEntry::hardlink
    pub hardlinks: bool,
    /// `--threads`: how many threads read contents; 0 means one per CPU this process may
    /// use (mkcomposefs's default). The metadata walk runs on the calling thread besides them.
    pub threads: usize,
    /// `--digest-store`: copy every non-inline file to `DIR/xx/yyyy…`, named by its digest.
    pub digest_store: Option<PathBuf>,
    /// An object store opened elsewhere (a repository transaction's), to copy every
    /// non-inline file into instead of [`digest_store`](Self::digest_store): what is stored
    /// is then counted and remembered by that store.
    pub object_store: Option<Arc<sealroot_objects::Store>>,
    /// Digests of files read by earlier builds, by device, inode, size, mtime and ctime:
    /// non-inline files found there are not read again, and every file read is added (see
    /// the [`cache`] module). Shared, so that the caller can save it after the build.
    pub cache: Option<Arc<DigestCache>>,
    /// fsync every new object before it is linked into the digest store (on, as C
    /// mkcomposefs does). A repository turns it off: its transaction flushes the whole
    /// filesystem once before any ref can reach the objects, and re-checks objects written
    /// by a transaction that a system crash cut off.
    pub sync_objects: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            use_epoch: false,
            skip_devices: false,
            skip_xattrs: false,
            user_xattrs: false,
            compute_digest: true,
            by_digest: true,
            algorithm: HashAlgorithm::Sha256,
            no_inline: false,
            hardlinks: false,
            threads: 0,
            digest_store: None,
            object_store: None,
            cache: None,
            sync_objects: true,
        }
    }
}

impl BuildOptions {
    /// The number of content threads these options ask for.
    ///
    /// With a digest store the default is two threads per CPU: copying into the store waits
    /// on the disk (writeback throttling, fsync), and a second thread per CPU keeps it busy
    /// meanwhile. Measured on /usr (5 GB, 2 CPUs): 21.3 s with 2 threads, 16.1 s with 4
    /// (as fast as `cp -a`), 17.4 s with 8.
    pub fn thread_count(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.digest_store.is_some() || self.object_store.is_some() {
            cpus * 2
        } else {
            cpus
        }
    }
}

/// Reads directory `path` (not followed if it is a symlink) into a tree, reporting to
/// `progress`; see the [crate documentation](crate) for exactly what the tree holds.
pub fn build_from_dir(
    path: &Path,
    opts: &BuildOptions,
    progress: &dyn Progress,
) -> Result<Tree, BuildError> {
    if opts.skip_xattrs && opts.user_xattrs {
        return Err(BuildError::ConflictingOptions);
    }
    let mismatch = |what, found| BuildError::AlgorithmMismatch {
        what,
        found,
        wanted: opts.algorithm,
    };
    if let Some(cache) = opts.cache.as_deref() {
        if cache.algorithm() != opts.algorithm {
            return Err(mismatch("digest cache", cache.algorithm()));
        }
    }
    let root = walk::open_root(path)?;
    let store = match (&opts.object_store, &opts.digest_store) {
        _ if !opts.by_digest => None,
        (Some(shared), _) => Some(store::Store::shared(shared.clone())),
        (None, Some(dir)) => Some(store::Store::open(dir, opts.sync_objects, opts.algorithm)?),
        (None, None) => None,
    };
    if let Some(store) = &store {
        if store.algorithm() != opts.algorithm {
            return Err(mismatch("object store", store.algorithm()));
        }
    }
    let (walked, files) =
        content::read_while(&root, path, opts, store.as_ref(), progress, |queue| {
            let walked = walk::walk(path, &root, opts, progress, queue)?;
            let (w, n_jobs) = &walked;
            progress.walk_done(w.tree.inodes.len() as u64, *n_jobs as u64, w.job_bytes);
            Ok(walked)
        })?;
    let mut tree = walked.tree;
    for &(inode, job) in &walked.aliases {
        if let Content::Regular(r) = &mut tree.inode_mut(inode).content {
            *r = files[job].file.clone();
        }
    }
    for (&inode, read) in walked.job_inodes.iter().zip(files) {
        let inode = tree.inode_mut(inode);
        if let Content::Regular(r) = &mut inode.content {
            *r = read.file;
        }
        if let Some(xattrs) = read.xattrs {
            inode.xattrs = xattrs;
        }
    }
    Ok(tree)
}
