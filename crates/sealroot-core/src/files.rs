//! Files written whole or not at all.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteFileError {
    /// A system call failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// What was to be written could not be made.
    #[error("cannot write {}: {source}", path.display())]
    Fill {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Writes `path` through `fill`: into a new temporary file beside it (mode 0666 less the
/// umask, as a file made by `open`), flushed, then renamed over it, so that `path` holds the
/// old content or the whole new one, never a part.
pub fn write_atomically<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> Result<(), E>,
) -> Result<(), WriteFileError> {
    let err = |source| WriteFileError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".sealroot-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(err)?;
    fill(tmp.as_file_mut()).map_err(|e| WriteFileError::Fill {
        path: path.to_owned(),
        source: e.into(),
    })?;
    tmp.as_file().sync_data().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Creates `path`, which must not exist, with `mode`, holding `bytes`, durably; removes it
/// again if it could not be written whole.
pub fn write_new(path: &Path, mode: u32, bytes: &[u8]) -> Result<(), WriteFileError> {
    let err = |source| WriteFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        let _ = std::fs::remove_file(path);
        return Err(err(e));
    }
    Ok(())
}
