//! The composefs EROFS image: writer and reader.

mod layout;
mod reader;
mod writer;

pub use layout::*;
pub use reader::{read, read_superblock, read_with_superblock, ReadError, Superblock};
pub use writer::{version_for, write, write_to, WriteError, WriteOptions};
