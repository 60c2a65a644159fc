//! The read side: everything a reader needs (open, resolve a ref, read a commit, a tree or
//! an image, verify an object), with no writer linked in. A boot-time reader builds
//! `sealroot-repo` without its `write` feature and gets only this.

pub(crate) mod commits;
pub(crate) mod images;
pub(crate) mod objects;
pub(crate) mod refs;
pub(crate) mod streams;
