//! The composefs image format: an EROFS writer byte-identical to C `mkcomposefs`, a strict
//! reader for untrusted images, and the composefs dumpfile format. Pure: no syscalls.
//!
//! The model is [`tree::Tree`]; [`erofs::write`] turns a tree into image bytes,
//! [`erofs::read`] turns image bytes back into a tree, and [`dumpfile`] parses and prints the
//! text form composefs-dump(5).
#![forbid(unsafe_code)]

pub mod dumpfile;
pub mod erofs;
pub mod objects;
pub mod splitstream;
pub mod tree;

pub use tree::{
    Content, DirEntry, FileType, Inode, InodeId, Mtime, RegularFile, Stat, Tree, Xattr, S_IFBLK,
    S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
