//! The composefs EROFS image: writer and reader.

mod reader;
mod writer;

pub use reader::{read, ReadError};
pub use writer::{write, WriteError, WriteOptions};
