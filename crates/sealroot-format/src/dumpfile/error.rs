//! Why a dumpfile or a tree was refused.

use std::fmt;

/// A fixed field of a dumpfile line, or the trailing xattrs, as C `mkcomposefs` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `PATH`.
    Path,
    /// `SIZE`.
    Size,
    /// `MODE`.
    Mode,
    /// `NLINK`.
    Nlink,
    /// `UID`.
    Uid,
    /// `GID`.
    Gid,
    /// `RDEV`.
    Rdev,
    /// `MTIME`.
    Mtime,
    /// `PAYLOAD` (symlink target, backing file, or hard-link target).
    Payload,
    /// `CONTENT` (inline file content).
    Content,
    /// `DIGEST` (fs-verity digest).
    Digest,
    /// One `KEY=VALUE` extended attribute after the fixed fields.
    Xattr,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Path => "PATH",
            Field::Size => "SIZE",
            Field::Mode => "MODE",
            Field::Nlink => "NLINK",
            Field::Uid => "UID",
            Field::Gid => "GID",
            Field::Rdev => "RDEV",
            Field::Mtime => "MTIME",
            Field::Payload => "PAYLOAD",
            Field::Content => "CONTENT",
            Field::Digest => "DIGEST",
            Field::Xattr => "XATTR",
        })
    }
}

/// What is wrong with a backslash escape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum EscapeError {
    /// A backslash ends the field.
    #[error("no character after the escape backslash")]
    Truncated,
    /// `\x` is not followed by two characters.
    #[error("no hex characters after hex escape")]
    HexMissing,
    /// `\x` is followed by characters that are not hex digits.
    #[error("invalid hex characters after hex escape")]
    HexInvalid,
    /// A backslash followed by a character other than `\`, `n`, `r`, `t` or `x`.
    #[error("unsupported escape \\{}", char::from(*.0).escape_default())]
    Unsupported(u8),
}

/// The problem found on a line or in a tree. C `mkcomposefs` refuses each of these, except
/// where a variant says otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A NUL byte in the raw line (escaped `\x00` is fine).
    #[error("invalid embedded NUL character at byte {offset} of the line")]
    EmbeddedNul {
        /// Offset in the line.
        offset: usize,
    },
    /// A bad backslash escape.
    #[error("{field} field: {problem}")]
    Escape {
        /// The field holding it.
        field: Field,
        /// What is wrong.
        problem: EscapeError,
    },
    /// The path is empty (or starts with an escaped NUL).
    #[error("invalid empty path")]
    EmptyPath,
    /// A numeric field that `strtoull` does not accept in full.
    #[error("{field} field: invalid integer {value:?}")]
    InvalidInteger {
        /// The field.
        field: Field,
        /// Its text (lossy).
        value: String,
    },
    /// A number that does not fit its field as written (refused in strict parsing; C
    /// wraps or saturates it).
    #[error("{field} field: {value} is out of range (strict parsing: at most {max}, no sign, no overflow)")]
    OutOfRange {
        /// Which field.
        field: Field,
        /// Its text.
        value: String,
        /// The largest value the field holds.
        max: u64,
    },
    /// An escaped NUL (`\x00`) in a field C reads as a string, which would cut it short
    /// (refused in strict parsing).
    #[error("{field} field: an escaped NUL would cut it short")]
    EscapedNul {
        /// Which field.
        field: Field,
    },
    /// A mode whose type bits are none of the seven file types composefs knows.
    #[error("invalid mode {mode:o}")]
    InvalidMode {
        /// The mode (truncated to 32 bits, as C does).
        mode: u32,
    },
    /// The inode's mode and its content disagree (a tree not built by [`parse`](super::parse)).
    #[error("mode {mode:o} does not match the inode's content")]
    ModeMismatch {
        /// The mode.
        mode: u32,
    },
    /// The root is not a directory.
    #[error("root must be a directory")]
    RootNotDirectory,
    /// A second line for `/`.
    #[error("can't have multiple roots")]
    MultipleRoots,
    /// A line before the root line.
    #[error("root node not present: the first line must be `/`")]
    RootMissing,
    /// A directory in the path has not been listed on an earlier line.
    #[error("parent directory missing")]
    ParentMissing,
    /// The parent in the path is not a directory.
    #[error("parent must be a directory")]
    ParentNotDirectory,
    /// The last component is `.` or `..`.
    #[error("invalid . or .. in path")]
    DotOrDotDot,
    /// The last component is empty (the path ends in `/`, or is only slashes but not `/`).
    #[error("empty file name")]
    EmptyName,
    /// The last component is over 255 bytes.
    #[error("file name of {len} bytes is longer than 255")]
    NameTooLong {
        /// Its length.
        len: usize,
    },
    /// A name holding `/` or NUL (a tree not built by [`parse`](super::parse)).
    #[error("file name contains '/' or NUL")]
    InvalidNameByte,
    /// The path was already listed (or two entries of one directory have the same name).
    #[error("path already exists")]
    AlreadyExists,
    /// Directory entries not sorted by name bytes.
    #[error("directory entries are not sorted by name")]
    UnsortedEntries,
    /// More than 2^32 files.
    #[error("too many files for one tree")]
    TooManyFiles,
    /// A hard-link line (`@` mode) with a directory mode.
    #[error("directories can't be hardlinked")]
    DirectoryHardlink,
    /// A hard-link line whose payload is `-`.
    #[error("no target path for the hardlink")]
    HardlinkNoTarget,
    /// A hard-link target that is not in the file.
    #[error("no target at {target} for hardlink")]
    HardlinkTargetMissing {
        /// The target path (escaped).
        target: String,
    },
    /// A hard link to itself.
    #[error("self-referential hardlink {target}")]
    HardlinkSelf {
        /// The target path (escaped).
        target: String,
    },
    /// Hard links that point at each other in a loop (C refuses this when writing, `ELOOP`).
    #[error("hardlink loop through {target}")]
    HardlinkCycle {
        /// The target path (escaped).
        target: String,
    },
    /// A hard link whose target is a directory. C writes such an image (its check for this is
    /// never reached); sealroot refuses it, as the C code intends.
    #[error("hardlink to directory {target}")]
    HardlinkToDirectory {
        /// The target path (escaped).
        target: String,
    },
    /// An entry pointing at an inode that is not in the tree.
    #[error("entry refers to inode {id}, which does not exist")]
    DanglingInode {
        /// The inode id.
        id: u32,
    },
    /// Two entries without [`hardlink`](crate::tree::DirEntry::hardlink) for one inode, or a
    /// directory reachable from itself.
    #[error("inode {id} is owned by more than one entry")]
    InodeOwnedTwice {
        /// The inode id.
        id: u32,
    },
    /// An inode no entry owns (orphaned, or reachable only through hard links).
    #[error("inode {id} is not owned by any entry")]
    UnownedInode {
        /// The inode id.
        id: u32,
    },
    /// `CONTENT` whose length is not `SIZE`.
    #[error("invalid content size {content_len}, must match size {size}")]
    ContentSizeMismatch {
        /// Bytes of content.
        content_len: u64,
        /// The size.
        size: u64,
    },
    /// A non-zero `RDEV` on a file that is not a device (strict mode only).
    #[error("non-zero devnum {rdev} on non-device")]
    NonDeviceRdev {
        /// The rdev.
        rdev: u64,
    },
    /// A symlink with an empty target.
    #[error("invalid symlink: empty target")]
    SymlinkTargetEmpty,
    /// A symlink target of `PATH_MAX` (4096) bytes or more.
    #[error("invalid symlink: target of {len} bytes is not shorter than 4096")]
    SymlinkTargetTooLong {
        /// Its length.
        len: usize,
    },
    /// A symlink whose `SIZE` is not its target's length (strict mode, and trees).
    #[error("invalid symlink size {size}, must match target length {target_len}")]
    SymlinkSizeMismatch {
        /// The target length.
        target_len: u64,
        /// The size.
        size: u64,
    },
    /// A symlink with inline content (strict mode only).
    #[error("symlink cannot have content")]
    SymlinkContent,
    /// A payload of `PATH_MAX` (4096) bytes or more.
    #[error("invalid payload: {len} bytes is not shorter than 4096")]
    PayloadTooLong {
        /// Its length.
        len: usize,
    },
    /// A payload, symlink target or xattr name holding a NUL byte (a tree not built by
    /// [`parse`](super::parse); C strings cannot hold one).
    #[error("{what} contains a NUL byte")]
    NulByte {
        /// Which string.
        what: &'static str,
    },
    /// Inline content over `LCFS_INLINE_CONTENT_MAX` (5000 bytes).
    #[error("inline content size {len} exceeds maximum 5000")]
    ContentTooLarge {
        /// Its length.
        len: usize,
    },
    /// A `DIGEST` that is not 64 hex digits on a file whose digest goes into the image.
    /// (Where the digest is never written C ignores a bad one, and so does sealroot.)
    #[error("invalid fs-verity digest {value:?}")]
    InvalidDigest {
        /// The field text (lossy).
        value: String,
    },
    /// The xattr part of the line is over 65535 bytes.
    #[error("too many xattrs ({len} bytes of xattr text, the limit is 65535)")]
    TooManyXattrs {
        /// Its length.
        len: usize,
    },
    /// An xattr without `=`.
    #[error("missing = in xattr")]
    XattrMissingEquals,
    /// An empty xattr name.
    #[error("can't set xattr: empty name")]
    XattrNameEmpty,
    /// An xattr name over `XATTR_NAME_MAX` (255 bytes).
    #[error("can't set xattr {name:?}: name of {len} bytes is longer than 255")]
    XattrNameTooLong {
        /// The name (escaped, possibly shortened).
        name: String,
        /// Its length.
        len: usize,
    },
    /// An xattr value over 65535 bytes.
    #[error("can't set xattr {name:?}: value of {len} bytes is longer than 65535")]
    XattrValueTooLong {
        /// The name (escaped).
        name: String,
        /// The value length.
        len: usize,
    },
    /// The same xattr name twice on one inode (a tree not built by [`parse`](super::parse),
    /// which keeps the last value as C does).
    #[error("duplicate xattr {name:?}")]
    DuplicateXattr {
        /// The name (escaped).
        name: String,
    },
    /// The inode's xattrs exceed C's budget of `LCFS_INODE_EXTERNAL_XATTR_MAX` (32767) bytes
    /// (12 + the sum of 7 + name + value), when set, or when the writer adds its own.
    #[error("can't set xattr {name:?}: the inode's xattrs exceed the size limit")]
    XattrsTooLarge {
        /// The name of the xattr that did not fit (escaped).
        name: String,
    },
    /// A regular file stored outside the image whose size needs more than 1024 chunks
    /// (over 2^53 bytes, short of C's wrap-around near 2^64): C's writer refuses it (`EFBIG`).
    #[error("file size {size} is too large for a composefs image (the maximum is 2^53)")]
    FileTooBig {
        /// The size.
        size: u64,
    },
    /// A directory nested deeper than [`limits::DEPTH_MAX`](super::limits::DEPTH_MAX), which
    /// the image reader would refuse (not a C rule).
    #[error("directory nested {depth} levels deep; images hold at most {max}")]
    TooDeep {
        /// Its depth (the root is 0).
        depth: usize,
        /// The limit.
        max: usize,
    },
}

/// Why a dumpfile could not be parsed, or a tree is not one C `mkcomposefs` would write.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DumpfileError {
    /// A problem on one line of the dumpfile.
    #[error("line {line}{}: {kind}", path_suffix(path))]
    Line {
        /// The 1-based line number.
        line: usize,
        /// The line's path, escaped as in a dumpfile, when it could be read.
        path: Option<String>,
        /// The problem.
        kind: ErrorKind,
    },
    /// Strict mode: the last line has no newline.
    #[error("line {line}: missing trailing newline")]
    MissingTrailingNewline {
        /// The 1-based number of the unterminated line.
        line: usize,
    },
    /// No line at all.
    #[error("no files in dump file")]
    Empty,
    /// A tree that C `mkcomposefs` would refuse to write (from [`validate`](super::validate)).
    #[error("{path}: {kind}")]
    Invalid {
        /// The path of the offending entry, escaped as in a dumpfile.
        path: String,
        /// The problem.
        kind: ErrorKind,
    },
    /// A format version composefs does not define (only 0 and 1 exist).
    #[error("composefs format version {0} is not supported (the highest is 1)")]
    UnsupportedVersion(u32),
}

impl DumpfileError {
    /// The problem, for errors about a line or an entry.
    pub fn kind(&self) -> Option<&ErrorKind> {
        match self {
            DumpfileError::Line { kind, .. } | DumpfileError::Invalid { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// The 1-based line number, for errors about a line.
    pub fn line(&self) -> Option<usize> {
        match self {
            DumpfileError::Line { line, .. } | DumpfileError::MissingTrailingNewline { line } => {
                Some(*line)
            }
            _ => None,
        }
    }
}

fn path_suffix(path: &Option<String>) -> String {
    match path {
        Some(p) => format!(" ({p})"),
        None => String::new(),
    }
}
