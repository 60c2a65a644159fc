//! The EROFS writer, byte-identical to C `mkcomposefs`.

use crate::tree::Tree;

/// Options of [`write`]: the format-version range, as `mkcomposefs --min-version/--max-version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// The lowest composefs format version to write (default 0).
    pub min_version: u32,
    /// The highest version the writer may bump to when the tree needs it (default 1).
    pub max_version: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            min_version: 0,
            max_version: 1,
        }
    }
}

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// Placeholder until the writer lands.
    #[error("not implemented")]
    Unimplemented,
}

/// Writes `tree` as a composefs EROFS image.
pub fn write(tree: &Tree, options: &WriteOptions) -> Result<Vec<u8>, WriteError> {
    let _ = (tree, options);
    Err(WriteError::Unimplemented)
}
