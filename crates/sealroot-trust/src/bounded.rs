//! Reading a small file whole, with a size limit: key files, keyrings, certificates.

use std::fs::File;
use std::io::{self, Read as _};
use std::path::Path;

/// Why a bounded read failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Opening or reading failed.
    Io(io::Error),
    /// The file holds more than the limit: at least this many bytes.
    TooLarge(u64),
}

/// Reads `path` whole if it holds at most `limit` bytes. The size is checked before reading,
/// and again by reading one byte past the limit, in case the file grows in between.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let file = File::open(path).map_err(ReadError::Io)?;
    let size = file.metadata().map_err(ReadError::Io)?.len();
    if size > limit {
        return Err(ReadError::TooLarge(size));
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > limit {
        return Err(ReadError::TooLarge(read));
    }
    Ok(bytes)
}
