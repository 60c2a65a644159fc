//! The error of [`build_from_tar`](super::build_from_tar).

use std::io;
use std::path::PathBuf;

/// Why a tree could not be built from a tar archive.
///
/// Offsets count bytes of the tar stream itself (after decompression), from 0. Where an error
/// concerns one entry, `offset` is that of its first header block (including any extended or
/// long-name headers before it) and `path` is its name as the archive gives it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TarError {
    /// Reading or decompressing the input failed.
    #[error("reading the archive at byte {offset}{}: {source}", in_entry(path))]
    Read {
        /// How far the tar stream had been read.
        offset: u64,
        /// The entry being read, if any.
        path: Option<PathBuf>,
        /// The reader's or decompressor's error.
        #[source]
        source: io::Error,
    },
    /// The input ends before the archive does: inside a header or an entry's content, or
    /// without the end-of-archive marker.
    #[error("archive truncated at byte {offset}{}", in_entry(path))]
    Truncated {
        /// Where the input ended.
        offset: u64,
        /// The entry cut short, if any.
        path: Option<PathBuf>,
    },
    /// The input is compressed with something other than gzip or zstd.
    #[error("the input is {format}-compressed; only gzip and zstd are supported")]
    UnsupportedCompression {
        /// The compression format its magic number shows.
        format: &'static str,
    },
    /// The input does not start with a tar header.
    #[error("not a tar archive: the first block is not a tar header")]
    NotTar,
    /// A header block whose checksum does not match: a corrupt archive.
    #[error("corrupt archive: bad header checksum at byte {offset}")]
    BadChecksum {
        /// The block's offset.
        offset: u64,
    },
    /// A header field that cannot be read.
    #[error("bad header at byte {offset}{}: {reason}", in_entry(path))]
    BadHeader {
        /// The header's offset.
        offset: u64,
        /// The entry, if its name was known.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
    /// A PAX extended header that cannot be read.
    #[error("bad PAX header at byte {offset}: {reason}")]
    BadPax {
        /// The header's offset.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An entry of a kind composefs cannot hold: a sparse file, a multi-volume part, an
    /// unknown type flag, or metadata the tree would silently lose (text ACLs of `tar --acls`).
    #[error("{}: unsupported entry at byte {offset}: {what}", path.display())]
    Unsupported {
        /// The entry's offset.
        offset: u64,
        /// The entry.
        path: PathBuf,
        /// What about it is unsupported.
        what: String,
    },
    /// A path that would leave the tree (a `..` component, or an absolute path unless
    /// [`TarOptions::strip_leading_slash`](super::TarOptions::strip_leading_slash)), that is
    /// empty, whose name is longer than composefs allows, or (unless whiteouts are
    /// [kept](super::Whiteouts::Keep)) that lies under a whiteout name: `.wh.x/y`.
    #[error("{}: bad path at byte {offset}: {reason}", path.display())]
    BadPath {
        /// The entry's offset.
        offset: u64,
        /// The path (of the entry, or the hard link target it names).
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// A hard link to a path no earlier entry created.
    #[error("{}: hard link at byte {offset} to missing {}", path.display(), target.display())]
    MissingLinkTarget {
        /// The entry's offset.
        offset: u64,
        /// The hard link.
        path: PathBuf,
        /// What it links to.
        target: PathBuf,
    },
    /// A hard link to a directory.
    #[error("{}: hard link at byte {offset} to directory {}", path.display(), target.display())]
    LinkToDirectory {
        /// The entry's offset.
        offset: u64,
        /// The hard link.
        path: PathBuf,
        /// The directory it links to.
        target: PathBuf,
    },
    /// An entry under something that is not a directory (a file or a symlink): `a/b` after
    /// a regular file `a`. Symlinks are never followed.
    #[error("{}: entry at byte {offset} is under non-directory {}", path.display(), parent.display())]
    NotUnderDirectory {
        /// The entry's offset.
        offset: u64,
        /// The entry.
        path: PathBuf,
        /// The ancestor that is not a directory.
        parent: PathBuf,
    },
    /// A file, symlink, hard link or device at the path of a directory that has entries:
    /// `d` after `d/x`. `tar -x` fails there too: it removes an empty directory to put the
    /// entry in its place (as the OCI layer rules remove and recreate), but not a full one.
    #[error("{}: entry at byte {offset} would replace a directory that has entries", path.display())]
    ReplacesDirectory {
        /// The entry's offset.
        offset: u64,
        /// The entry, and the directory's path.
        path: PathBuf,
    },
    /// An OCI whiteout naming what the archive itself made: `DIR/.wh.NAME` after an entry at
    /// or below `DIR/NAME`, or, when whiteouts are applied, `DIR/.wh..wh..opq` after entries
    /// of `DIR`. The OCI image spec applies whiteouts to lower layers only, which would keep
    /// what the archive made, while composefs-rs removes it and containers-storage's overlay
    /// driver fails on the whiteout: the archive is refused rather than one of them followed
    /// silently.
    #[error("{}: whiteout at byte {offset} names {}, which the archive itself made \
        (whiteouts apply to lower layers only)", path.display(), target.display())]
    WhiteoutOfOwnEntry {
        /// The whiteout's offset.
        offset: u64,
        /// The whiteout entry.
        path: PathBuf,
        /// What it would remove: the entry it names, or the directory an opaque marker would
        /// empty.
        target: PathBuf,
    },
    /// A character or block device whose number the kernel's 32-bit encoding, the one the
    /// image stores, cannot hold: a major above 4095 or a minor above 1048575. `mknod(2)`
    /// refuses such a number too, so `tar -x` could not make the device.
    #[error("{}: device number {major}:{minor} at byte {offset} does not fit the 32-bit \
        encoding (major at most 4095, minor at most 1048575)", path.display())]
    DeviceNumberTooLarge {
        /// The entry's offset.
        offset: u64,
        /// The device.
        path: PathBuf,
        /// Its major number.
        major: u32,
        /// Its minor number.
        minor: u32,
    },
    /// An entry for the root (`.`, `./`) that is not a directory.
    #[error("{}: the root entry at byte {offset} is not a directory", path.display())]
    RootNotDirectory {
        /// The entry's offset.
        offset: u64,
        /// Its path.
        path: PathBuf,
    },
    /// A symlink with an empty target, which composefs cannot store.
    #[error("{}: symlink at byte {offset} with an empty target", path.display())]
    EmptySymlink {
        /// The entry's offset.
        offset: u64,
        /// The symlink.
        path: PathBuf,
    },
    /// An extended attribute composefs refuses, as C `mkcomposefs` does: a name longer than
    /// 255 bytes, a value longer than 65535 bytes, or more xattr data on one inode than fits.
    #[error("{}: extended attribute {} at byte {offset} is too large for composefs ({reason})",
        path.display(), String::from_utf8_lossy(name))]
    XattrTooLarge {
        /// The entry's offset.
        offset: u64,
        /// The entry.
        path: PathBuf,
        /// The attribute that broke the limit.
        name: Vec<u8>,
        /// Which limit.
        reason: &'static str,
    },
    /// The object sink failed to store an entry's content.
    #[error("{}: storing the content of the entry at byte {offset}: {source}", path.display())]
    Sink {
        /// The entry's offset.
        offset: u64,
        /// The regular file.
        path: PathBuf,
        /// The sink's error.
        #[source]
        source: io::Error,
    },
    /// The threads that store contents could not be started.
    #[error("starting the threads that store file contents: {0}")]
    StartThreads(#[source] io::Error),
    /// `skip_xattrs` and `user_xattrs` were both set.
    #[error("skip_xattrs and user_xattrs conflict")]
    ConflictingOptions,
}

/// `" (in entry PATH)"`, or nothing.
fn in_entry(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" (in entry {})", p.display()),
        None => String::new(),
    }
}
