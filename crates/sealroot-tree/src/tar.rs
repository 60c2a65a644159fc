//! Reading a tar stream into a composefs [`Tree`], the same tree [`build_from_dir`] builds
//! from the directory `tar -x` would make of it.
//!
//! [`build_from_tar`] reads the archive once, front to back, never seeking and never holding
//! a file's content whole unless it is inlined: each larger file is handed, as it streams by,
//! to an [`ObjectSink`] that hashes it (and stores it, for [`DirStore`] or a repository)
//! while the archive is read on. See [`TarOptions::threads`] for how the work is shared.
//!
//! # The archive
//!
//! * **Compression** is recognised by its magic number: gzip (one or more members) and zstd
//!   are read; xz, bzip2 and lz4 are refused by name; anything else is read as plain tar.
//! * **Formats**: POSIX ustar (with its `prefix` for long paths), pax (`x` headers for one
//!   entry, `g` headers for all that follow: their uid, gid, mtime and xattrs), GNU
//!   (`L`/`K` long names and link targets, base-256 numbers for sizes of 8 GiB and more and
//!   for negative times, `V` volume labels skipped), and old V7 headers.
//! * **Metadata**: mode, uid, gid (pax for ids above 2^21), mtime with nanoseconds (pax
//!   `mtime=S.F`), device numbers (refused beyond the 12-bit major and 20-bit minor of the
//!   kernel's 32-bit encoding, which the image stores and `mknod(2)` takes), and extended
//!   attributes from `SCHILY.xattr.NAME` (GNU tar
//!   `--xattrs`, raw values: ACLs as `system.posix_acl_*`, `security.capability`...),
//!   `LIBARCHIVE.xattr.NAME` (bsdtar) and `RHT.security.selinux`.
//! * **Entry types**: regular files, hard links, symlinks, character and block devices,
//!   directories (also GNU dump directories), fifos. Sparse files (GNU `S` or pax
//!   `GNU.sparse.*`), multi-volume parts, unknown type flags, and the text ACLs of
//!   `tar --acls` (`SCHILY.acl.*`, which the tree cannot hold without resolving names) are
//!   refused rather than stored wrong.
//!
//! # The tree: what `tar -x` would make, read by `build_from_dir`
//!
//! * Files, symlinks and devices get exactly the attributes [`build_from_dir`] reads from
//!   their extracted copies, with the same rules: contents of 1 to [`INLINE_CONTENT_MAX`]
//!   bytes inline, larger ones external with their fs-verity digest and the payload
//!   `xx/yyyy…`; every non-directory an inode of its own with link count 1 (a hard link gets
//!   a copy of its target's inode), unless [`TarOptions::hardlinks`]; the inodes numbered in
//!   depth-first name order. A hard link names an entry earlier in the archive and takes its
//!   attributes, whatever its own header says, as `link(2)` does.
//! * **Paths**: `./` and `.` components and repeated or trailing slashes are dropped; a
//!   `..` component anywhere is refused; so is an absolute path, unless
//!   [`TarOptions::strip_leading_slash`] (GNU tar strips the `/` and warns). Names longer
//!   than 255 bytes are refused. Nothing is ever followed: an entry under a symlink or a
//!   file is refused, and a hard link names its target by its archive path.
//! * **Later entries win**, as they do for `tar -x` and in the OCI layer rules: a file,
//!   symlink, device or hard link replaces a file, symlink, device or empty directory that
//!   had its path; a directory coming again takes the new attributes and xattrs and keeps its
//!   entries (as composefs-rs's `merge` does). A non-directory in the place of a directory
//!   that has entries is refused: `tar -x` fails there too, as its `rmdir` does (composefs-rs
//!   and containers-storage would drop the whole directory).
//! * **Parents no entry describes** are made as `tar -x` makes them, but with fixed
//!   attributes so that the tree depends on the archive alone: mode 0755, owner 0:0, mtime
//!   0, no xattrs. The same holds for the root when there is no `.` entry. (composefs-rs
//!   instead refuses an entry whose parent is missing; every archive it accepts gives the same
//!   tree here.)
//! * **OCI whiteouts** follow [`TarOptions::whiteouts`]. The default,
//!   [`Whiteouts::Apply`], applies the archive as an OCI layer over nothing:
//!   `DIR/.wh.NAME` and `DIR/.wh..wh..opq` leave nothing in the tree and remove nothing.
//!   [`Whiteouts::Overlay`] instead keeps a layer in overlayfs form, as the
//!   containers-storage overlay driver extracts it; [`Whiteouts::Keep`] takes such names
//!   literally, as plain `tar -x` does. Unless kept, the OCI image spec's rules hold: a name
//!   `.wh.*` is a whiteout whatever the entry's type (a directory too: no file or directory
//!   may have such a name), so an entry under one (`.wh.x/y`) is refused; whiteouts apply
//!   to lower layers only, in whatever order the layer has them: an opaque marker keeps the
//!   archive's own entries of its directory, before or after it (the spec's own example
//!   layer has entries before it), and a `.wh.NAME` naming what the archive itself made
//!   earlier is refused ([`TarError::WhiteoutOfOwnEntry`]: the spec keeps it, composefs-rs
//!   would remove it, containers-storage fails on it).
//!
//! # Errors
//!
//! Any problem stops the build with one [`TarError`] and no tree; contents handed to a sink
//! before then may have been stored (as unreferenced objects). Errors name the entry (where
//! there is one) and its byte offset in the uncompressed stream. A truncated archive is one
//! that ends inside a header or a content, or before the end-of-archive marker; after the
//! marker up to 1 MiB more of the input is read (so that gzip and zstd check their own
//! checksums) and ignored. Sizes are never trusted for allocation: contents stream, and extended headers
//! are limited to 1 MiB each and to 64 in a row before one entry; the xattrs they give one
//! entry (`g` defaults included, those the options drop not) are refused as soon as they pass
//! the 32767 bytes composefs allows a file, so no archive makes the reader hold more.
//!
//! [`build_from_dir`]: crate::build_from_dir
//! [`INLINE_CONTENT_MAX`]: crate::INLINE_CONTENT_MAX

mod archive;
mod builder;
mod content;
mod error;
mod header;
mod pax;
mod sink;

use std::io::Read;

pub use error::TarError;
use sealroot_format::tree::Tree;
pub use sink::{DirStore, HashOnly, ObjectSink};

use crate::BuildOptions;

/// What OCI whiteout entries (`.wh.NAME`, `.wh..wh..opq`) mean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Whiteouts {
    /// Apply them as to a layer over nothing: `DIR/.wh.NAME` and `DIR/.wh..wh..opq` hide
    /// only what lower layers hold, so they remove nothing and do not appear in the tree.
    /// One that would remove what the archive itself made (`DIR/NAME` or an entry of `DIR`
    /// before it) is refused, since composefs-rs, which applies a layer's whiteouts to all
    /// it has read so far, would remove it, against the spec. So the whiteouts of an
    /// accepted archive do what composefs-rs (`cfsctl oci`) makes them do in an image's only
    /// layer.
    #[default]
    Apply,
    /// Keep the layer in the form overlayfs reads: `DIR/.wh.NAME` becomes a character device
    /// 0:0 `DIR/NAME` with permissions 0 and the whiteout's owner and mtime, and
    /// `DIR/.wh..wh..opq` sets `trusted.overlay.opaque=y` on `DIR` (the containers-storage
    /// overlay driver's form; the image writer escapes both so that overlayfs sees them only
    /// when the image is used as a layer). A directory entry that replaces a whiteout device
    /// is made opaque too, so that the lower directory the whiteout removed does not show
    /// through (containers-storage leaves it as it is). Devices are left out with
    /// `skip_devices`, and the xattr with `skip_xattrs` or `user_xattrs`, as they would be
    /// from a directory. A whiteout may come twice, but not after another entry of its name.
    Overlay,
    /// Ordinary entries with odd names, as `tar -x` extracts them.
    Keep,
}

/// How to build a tree from a tar archive. [`Default`] gives what `mkcomposefs` gives for the
/// directory `tar -x` makes, with OCI whiteouts applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TarOptions {
    /// `--use-epoch`: set every mtime to 0.
    pub use_epoch: bool,
    /// `--skip-devices`: leave out block and character devices.
    pub skip_devices: bool,
    /// `--skip-xattrs`: record no extended attributes.
    pub skip_xattrs: bool,
    /// `--user-xattrs`: record only `user.*` extended attributes.
    pub user_xattrs: bool,
    /// Inline no file, however small: every non-empty file goes to the sink.
    pub no_inline: bool,
    /// Keep hard links (see [`BuildOptions::hardlinks`]): the first name in depth-first name
    /// order owns the inode, the others are hard-link entries. Off by default, as in
    /// mkcomposefs: each name is an inode of its own.
    pub hardlinks: bool,
    /// What OCI whiteouts mean.
    pub whiteouts: Whiteouts,
    /// Read an absolute path `/etc/x` as `etc/x`, as GNU tar does, instead of refusing it.
    pub strip_leading_slash: bool,
    /// How many threads hash and store contents while the calling thread decompresses and
    /// parses the archive; 0 means two per CPU this process may use (see
    /// [`thread_count`](TarOptions::thread_count)). With 1, no thread is started: the calling
    /// thread stores each file itself as it reads it.
    pub threads: usize,
}

impl Default for TarOptions {
    fn default() -> Self {
        TarOptions {
            use_epoch: false,
            skip_devices: false,
            skip_xattrs: false,
            user_xattrs: false,
            no_inline: false,
            hardlinks: false,
            whiteouts: Whiteouts::Apply,
            strip_leading_slash: false,
            threads: 0,
        }
    }
}

impl TarOptions {
    /// The options matching those `build_from_dir` was given: the same attribute, xattr,
    /// inlining, hard-link and thread choices, the rest at their defaults.
    pub fn from_build_options(opts: &BuildOptions) -> Self {
        TarOptions {
            use_epoch: opts.use_epoch,
            skip_devices: opts.skip_devices,
            skip_xattrs: opts.skip_xattrs,
            user_xattrs: opts.user_xattrs,
            no_inline: opts.no_inline,
            hardlinks: opts.hardlinks,
            threads: opts.threads,
            ..TarOptions::default()
        }
    }

    /// The number of threads these options ask for.
    ///
    /// The default is two per CPU: a sink that stores objects waits on the disk (writeback,
    /// `fsync`) as much as it hashes, and a second thread per CPU keeps the CPU busy
    /// meanwhile, as for [`BuildOptions::thread_count`]; for a sink that only hashes, the
    /// extra threads cost next to nothing.
    pub fn thread_count(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        2 * std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Reads the tar archive `input` (plain, gzip or zstd) into a tree, handing every file that is
/// not inlined to `sink`; see the [module documentation](self) for what the tree holds.
pub fn build_from_tar(
    input: impl Read,
    opts: &TarOptions,
    sink: &dyn ObjectSink,
) -> Result<Tree, TarError> {
    if opts.skip_xattrs && opts.user_xattrs {
        return Err(TarError::ConflictingOptions);
    }
    let keep = pax::KeepXattrs::from_options(opts.skip_xattrs, opts.user_xattrs);
    let mut archive = archive::Archive::open(input, keep)?;
    let (builder, digests) = content::run(sink, opts.thread_count(), |pipeline| {
        let mut builder = builder::Builder::new(opts);
        while let Some(entry) = archive.next_entry()? {
            builder.add(entry, &mut archive, pipeline)?;
        }
        archive.finish()?;
        Ok(builder)
    })?;
    Ok(builder.finish(&digests))
}
