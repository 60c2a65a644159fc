//! Reading a composefs tree from the filesystem.
#![forbid(unsafe_code)]
