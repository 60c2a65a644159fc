//! The composefs EROFS image: writer and reader.

mod layout;
mod reader;
mod writer;

pub use layout::*;
pub use reader::{read, ReadError};
pub use writer::{write, WriteError, WriteOptions};
