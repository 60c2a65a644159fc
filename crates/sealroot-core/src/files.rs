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
/// old content or the whole new one, never a part. A `path` that is a device or a FIFO
/// (`/dev/stdout`, `/dev/full`) is written to, as `open` would, never replaced.
pub fn write_atomically<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> Result<(), E>,
) -> Result<(), WriteFileError> {
    let err = |source| WriteFileError::Io {
        path: path.to_owned(),
        source,
    };
    let fill_err = |e: E| WriteFileError::Fill {
        path: path.to_owned(),
        source: e.into(),
    };
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(err)?;
        return fill(&mut f).map_err(fill_err);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".sealroot-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(err)?;
    fill(tmp.as_file_mut()).map_err(fill_err)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt as _;

    #[test]
    fn a_device_is_written_to_not_replaced() {
        // /dev/null stays the device; a full device's error comes back.
        write_atomically(Path::new("/dev/null"), |f| f.write_all(b"x")).unwrap();
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        let e = write_atomically(Path::new("/dev/full"), |f| {
            f.write_all(&[0; 8192])?;
            f.flush()
        })
        .unwrap_err();
        assert!(e.to_string().contains("/dev/full"), "{e}");
        assert!(std::fs::metadata("/dev/full")
            .unwrap()
            .file_type()
            .is_char_device());
        // A regular file is replaced whole.
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        std::fs::write(&p, b"old").unwrap();
        write_atomically(&p, |f| f.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }
}
