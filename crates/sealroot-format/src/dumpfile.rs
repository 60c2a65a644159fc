//! The composefs dumpfile, composefs-dump(5): a text form of a [`Tree`], one file per line.
//!
//! ```text
//! /                 4096 40755  2 0 0 0 1695372970.944925700 -              -            -      user.a=b
//! /etc/motd           10 100644 1 0 0 0 1697019909.446146440 -              some-text\n  -
//! /usr/bin/ls     142024 100755 2 0 0 0 1633950376.0         3d/0f81…       -            3d0f81…
//! /usr/bin/dir    142024 @100755 2 0 0 0 1633950376.0        /usr/bin/ls    -            3d0f81…
//! ```
//! (aligned here for reading; fields are separated by exactly one space.)
//!
//! Each line holds eleven fixed fields, `PATH SIZE MODE NLINK UID GID RDEV MTIME PAYLOAD
//! CONTENT DIGEST`, then any number of `KEY=VALUE` extended attributes. `MODE` is octal, with
//! a leading `@` on a hard link, whose `PAYLOAD` is the path of the file it links to; `MTIME`
//! is `SECONDS.NANOSECONDS`; `PAYLOAD` is a symlink's target or the path of a regular file's
//! backing object; `CONTENT` is a small file's bytes; `DIGEST` its fs-verity digest in hex;
//! `-` stands for an unset optional field. Bytes are escaped as `\\`, `\n`, `\r`, `\t` or
//! `\xHH`.
//!
//! # Reading: [`parse`]
//!
//! [`parse_compat`] builds the tree C `mkcomposefs --from-file` builds, and refuses what its
//! dumpfile reader refuses. [`parse`] (what sealroot reads for itself, [`ParseMode::Strict`])
//! also makes the checks C makes with `CFS_PARSE_STRICT=1` (marked "strict" below) and
//! refuses every number that C would wrap, saturate or truncate and every escaped NUL that
//! would cut a name short. The rules, all C's:
//!
//! - Lines end at `\n`; a last line without one is read (refused in strict mode). An empty
//!   line is an error (empty path). A raw NUL byte anywhere is an error.
//! - Missing trailing fields read as empty fields. Numbers are read as `strtoull` reads them:
//!   leading blanks, a sign (`-1` is 2^64-1, so `-1.0` is the mtime one second before the
//!   epoch), overflow saturates; then truncated to the 32 bits the inode keeps (mode, nlink,
//!   uid, gid, rdev, nanoseconds). Because of a slip in C (it tests `uid` after parsing `GID`
//!   and `RDEV`), an unreadable `GID` or `RDEV` counts as 0 unless `UID` is 0.
//! - Paths, payloads, digests and xattr names end at an escaped NUL (`\x00`), as C strings
//!   do; content and xattr values keep every byte.
//! - The first line must be the root `/`, a directory. Every other path names a new entry in
//!   a directory listed on an earlier line (`a/b`, `/a/b` and `//a//b` are the same path); the
//!   name may not be empty (a trailing `/`), `.`, `..`, over 255 bytes, or already listed.
//! - A hard-link line needs only its path, `@MODE` (any type but a directory) and `PAYLOAD`,
//!   the target's path; its other fields are ignored, may be anything, and are not kept.
//!   Targets are resolved once the whole file is read, so a link may come before its
//!   target; a link to a link is a link to that one's target; the target's `NLINK` stays as
//!   written. In the tree, a hard link is a [`DirEntry`](crate::tree::DirEntry) with
//!   `hardlink: true` pointing at the inode its target's line created.
//! - `SIZE` must equal the length of `CONTENT` when content is given. A symlink's size
//!   becomes its target's length; its target must be 1 to 4095 bytes. Payloads must be
//!   under 4096 bytes and content at most 5000 bytes on every type but symlinks.
//! - Xattrs: names of 1 to 255 bytes, values up to 65535 bytes, at most 65535 bytes of xattr
//!   text per line, and per inode `12 + Σ(7 + name + value)` at most 32767. An xattr set
//!   twice keeps the last value, and (as in C) takes the place of the last xattr, which
//!   takes its old slot.
//!
//! What the tree keeps, per type (each is what reaches the image; the rest C keeps in its
//! node but never writes, and neither does sealroot):
//!
//! | type | size | rdev | content |
//! |---|---|---|---|
//! | directory | `SIZE` as written (the writer computes its own) | 0 | entries |
//! | regular | `SIZE` | 0 | `CONTENT` if non-empty as `inline`; `PAYLOAD` (even empty) as `payload`; `DIGEST` |
//! | symlink | target length | 0 | `PAYLOAD` |
//! | block, char device | `SIZE` | `RDEV` | — |
//! | fifo, socket | `SIZE` | 0 | — |
//!
//! A regular file keeps its digest and payload even with inline content (C does; the writer
//! ignores both for inline and for empty files). No digest is ever computed from content:
//! `mkcomposefs --from-file` computes none. `DIGEST` must be 64 hex digits (C reads only the
//! first 64 characters) where it reaches the image, on a non-empty regular file without
//! inline content; elsewhere C accepts any text there (and keeps uninitialised bytes), so
//! sealroot accepts it and keeps no digest.
//!
//! Inodes are numbered in dump order (depth first, names sorted), whatever order the lines
//! came in, so equal trees compare equal.
//!
//! Three deliberate differences from C: a hard link whose target is a directory is refused (C
//! writes an image where the directory has two names: its check for this is never reached),
//! hard links that loop are refused here rather than when writing (`ELOOP` in C), and
//! [`validate`] refuses directories nested more than [`limits::DEPTH_MAX`] (2048) deep, which
//! C writes but sealroot's reader would not read back (C's own reader recurses once per level
//! with a `PATH_MAX` buffer on the stack, and nothing that deep has a usable absolute path).
//!
//! # Checking before writing: [`validate`]
//!
//! Some trees C reads but then refuses to write. [`validate`] makes those checks, so that
//! `parse` + `validate` accept exactly the dumpfiles `mkcomposefs --from-file` turns into an
//! image. `parse` does not call it: the checks depend on the format version, and trees from
//! other sources (a directory, a tar stream, an image) need them as much. It also checks the
//! shape any [`Tree`] must have (sorted unique valid names, one owner per inode, content that
//! matches the mode, every limit above).
//!
//! # Printing: [`write()`]
//!
//! [`write()`] prints a tree as C `composefs-info dump` prints the tree it reads from an
//! image: depth first, entries in name order, xattrs in the tree's order, every field as the
//! tree holds it; a hard link prints its target's fields, `@` before the mode and the
//! target's path as payload. So `write(&erofs::read(image)?)` is `composefs-info dump image`,
//! and for a tree from `parse`, `parse(write(tree)) == tree`.

use std::io;

use crate::erofs::WriteOptions;
use crate::tree::Tree;

mod error;
pub(crate) mod escape;
mod parse;
mod print;
pub(crate) mod validate;

#[cfg(test)]
mod tests;

pub use error::{DumpfileError, ErrorKind, EscapeError, Field};
pub use parse::ParseMode;

/// The limits C composefs applies, by their C names, and the nesting limit of sealroot's own
/// reader. Other crates check against these rather than copies (sealroot-tree's xattr
/// limits, for one).
pub mod limits {
    /// `LCFS_MAX_NAME_LENGTH`: the longest file name.
    pub const NAME_MAX: usize = 255;
    /// `PATH_MAX`: payloads and symlink targets must be shorter.
    pub const PATH_MAX: usize = 4096;
    /// `LCFS_INLINE_CONTENT_MAX`: the most content a file can carry inline.
    pub const INLINE_CONTENT_MAX: usize = 5000;
    /// `XATTR_NAME_MAX`.
    pub const XATTR_NAME_MAX: usize = 255;
    /// The largest xattr value (its size is a `u16` in EROFS).
    pub const XATTR_VALUE_MAX: usize = u16::MAX as usize;
    /// `LCFS_INODE_EXTERNAL_XATTR_MAX`: one inode's xattr budget, half of what EROFS allows.
    pub const XATTR_BUDGET_MAX: u64 = (u16::MAX / 2) as u64;
    /// What the budget charges per xattr beyond name and value (`2 * 4 - 1`: an
    /// `erofs_xattr_entry` and the worst alignment).
    pub const XATTR_ENTRY_COST: u64 = 7;
    /// What the budget charges for the first xattr (`erofs_xattr_ibody_header`).
    pub const XATTR_HEADER_COST: u64 = 12;
    /// The most xattr text on one line (`UINT16_MAX`): C caps it because setting each xattr
    /// scans the ones before it.
    pub const XATTR_TEXT_MAX: usize = u16::MAX as usize;
    /// `LCFS_MAX_NONINLINE_CHUNKS`: a file stored outside the image gets at most one block
    /// of chunk indexes (files up to 2^53 bytes).
    pub const MAX_CHUNKS: u64 = crate::erofs::MAX_NONINLINE_CHUNKS;
    /// `LCFS_VERSION_MAX`: the newest composefs format version.
    pub const VERSION_MAX: u32 = crate::erofs::COMPOSEFS_VERSION_MAX;
    /// The deepest a directory may be nested, the root being depth 0: the writer refuses a
    /// deeper one and the reader stops there. Not a C limit (C has none, in its writer or
    /// its recursive reader), but a directory this deep already has an absolute path of at
    /// least `PATH_MAX` bytes. The same value bounds trees assembled from objects
    /// ([`crate::objects::limits::DEPTH_MAX`]).
    pub const DEPTH_MAX: usize = crate::objects::limits::DEPTH_MAX;
}

/// How [`escape`] escapes a field, as the flags of C `print_escaped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Escape {
    /// Paths and symlink targets in a dumpfile: `\\`, `\n`, `\r`, `\t`, and `\xHH` for
    /// anything that is not printable ASCII or is a space.
    Standard,
    /// Paths in `composefs-info ls`: the same, but spaces are left as they are.
    Listing,
}

/// Appends `value` to `out`, escaped as `composefs-info` prints it.
pub fn escape(out: &mut Vec<u8>, value: &[u8], how: Escape) {
    let style = match how {
        Escape::Standard => escape::Style::PLAIN,
        Escape::Listing => escape::Style::LISTING,
    };
    escape::escape_into(out, value, style);
}

/// Parses a dumpfile strictly ([`ParseMode::Strict`]): what sealroot reads for itself.
///
/// # Errors
///
/// Whatever C refuses while reading the file with `CFS_PARSE_STRICT` set, and numbers that
/// do not fit their fields or names an escaped NUL would cut short, naming the line, its
/// path and the problem.
pub fn parse(input: &[u8]) -> Result<Tree, DumpfileError> {
    parse::parse(input, ParseMode::Strict)
}

/// Parses a dumpfile as C `mkcomposefs --from-file` does by default ([`ParseMode::Compat`]):
/// for compatibility with C, not for sealroot's own input.
///
/// # Errors
///
/// Whatever C refuses while reading the file, naming the line, its path and the problem.
pub fn parse_compat(input: &[u8]) -> Result<Tree, DumpfileError> {
    parse::parse(input, ParseMode::Compat)
}

/// Parses a dumpfile in `mode`.
///
/// # Errors
///
/// See [`parse`] and [`parse_compat`].
pub fn parse_with(input: &[u8], mode: ParseMode) -> Result<Tree, DumpfileError> {
    parse::parse(input, mode)
}

/// Checks that C `mkcomposefs` would write an image of `tree` with the default versions
/// (`--min-version=0 --max-version=1`). See [`validate_with`].
///
/// # Errors
///
/// See [`validate_with`].
pub fn validate(tree: &Tree) -> Result<(), DumpfileError> {
    validate_with(tree, &WriteOptions::default())
}

/// Checks that C `mkcomposefs` would write an image of `tree` with `options`.
///
/// Beyond the shape and the limits [`parse`] enforces (for trees built some other way), these
/// are the checks C makes only when writing:
///
/// - a regular file stored outside the image may be at most 2^53 bytes (`EFBIG`; as in C,
///   sizes within 2^43 of 2^64 wrap around in its chunk count and pass);
/// - the xattrs the writer adds for overlayfs (`trusted.overlay.metacopy` and `.redirect` on
///   external files, the whiteout marks on a character device 0:0 and on its directory, the
///   `opaque` mark on the root) must fit C's budget as C counts it (see the source);
/// - the versions must be 0 or 1;
/// - (not a C rule) no directory may be nested deeper than [`limits::DEPTH_MAX`], the depth
///   [`erofs::read`](crate::erofs::read) follows.
///
/// # Errors
///
/// [`DumpfileError::Invalid`] naming the path and the problem, or
/// [`DumpfileError::UnsupportedVersion`].
pub fn validate_with(tree: &Tree, options: &WriteOptions) -> Result<(), DumpfileError> {
    validate::validate(tree, options).map(|_| ())
}

/// Prints `tree` as a dumpfile, exactly as C `composefs-info dump` prints the same tree.
///
/// # Errors
///
/// Errors of `out`, and [`io::ErrorKind::InvalidData`] for a tree whose entries refer to
/// inodes that do not exist, own an inode twice, or link to an inode no entry owns.
pub fn write(tree: &Tree, out: &mut impl io::Write) -> io::Result<()> {
    print::write(tree, out)
}

/// [`write()`] into a new buffer.
///
/// # Errors
///
/// See [`write()`].
pub fn to_vec(tree: &Tree) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    write(tree, &mut out)?;
    Ok(out)
}
