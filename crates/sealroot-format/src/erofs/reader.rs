//! The strict reader of untrusted composefs images.

use crate::tree::Tree;

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Placeholder until the reader lands.
    #[error("not implemented")]
    Unimplemented,
}

/// Reads a composefs image back into the tree it was written from.
pub fn read(image: &[u8]) -> Result<Tree, ReadError> {
    let _ = image;
    Err(ReadError::Unimplemented)
}
