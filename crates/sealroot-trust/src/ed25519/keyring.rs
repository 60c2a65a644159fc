//! Keyrings: the public keys a device trusts, and those it has revoked.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::bounded::ReadError;

use super::key::{parse_public_keys, KeyError, PublicKey, MAX_KEYS, MAX_KEY_FILE_SIZE};

/// The public keys a device trusts to sign commits, and the keys it has revoked.
///
/// A revoked key is never trusted, even if it is also listed as trusted: revoking is how a
/// leaked or retired key is withdrawn while images still list it. Adding a key already in a
/// list does nothing, so each list holds every key once, in the order first added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keyring {
    /// Keys whose signatures are accepted (unless also revoked).
    pub trusted: Vec<PublicKey>,
    /// Keys whose signatures are ignored.
    pub revoked: Vec<PublicKey>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// A keyring trusting the keys read from `path`: a key file, or a directory whose
    /// regular files (by name, not recursively, hidden files skipped) are key files, like
    /// ostree's `trusted.ed25519` and `trusted.ed25519.d/`.
    pub fn load(path: &Path) -> Result<Self, KeyringError> {
        let mut keyring = Self::new();
        keyring.load_trusted(path)?;
        Ok(keyring)
    }

    /// Adds the keys read from `path` (a file or a directory, as for [`Self::load`]) to the
    /// trusted keys. Returns the number of keys read.
    pub fn load_trusted(&mut self, path: &Path) -> Result<usize, KeyringError> {
        load_into(&mut self.trusted, path)
    }

    /// Adds the keys read from `path` (a file or a directory, as for [`Self::load`]) to the
    /// revoked keys. Returns the number of keys read.
    pub fn load_revoked(&mut self, path: &Path) -> Result<usize, KeyringError> {
        load_into(&mut self.revoked, path)
    }

    /// Trusts `key`. Returns whether it was new to the trusted keys.
    pub fn add_trusted(&mut self, key: PublicKey) -> bool {
        add_once(&mut self.trusted, key)
    }

    /// Revokes `key`. Returns whether it was new to the revoked keys.
    pub fn add_revoked(&mut self, key: PublicKey) -> bool {
        add_once(&mut self.revoked, key)
    }

    /// Whether `key` is revoked.
    pub fn is_revoked(&self, key: &PublicKey) -> bool {
        self.revoked.contains(key)
    }

    /// Whether `key` is trusted and not revoked: whether its signatures count.
    pub fn is_trusted(&self, key: &PublicKey) -> bool {
        self.trusted.contains(key) && !self.is_revoked(key)
    }

    /// Whether no key is trusted (every trusted key revoked counts as none): such a keyring
    /// accepts no commit.
    pub fn is_empty(&self) -> bool {
        self.trusted.iter().all(|key| self.is_revoked(key))
    }
}

/// Adds the keys read from `path` to `keys` (each once); returns the number of keys read.
fn load_into(keys: &mut Vec<PublicKey>, path: &Path) -> Result<usize, KeyringError> {
    let read = read_keys(path, keys.len())?;
    let count = read.len();
    for key in read {
        add_once(keys, key);
    }
    Ok(count)
}

fn add_once(keys: &mut Vec<PublicKey>, key: PublicKey) -> bool {
    if keys.contains(&key) {
        false
    } else {
        keys.push(key);
        true
    }
}

/// Why a keyring could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The path is neither a regular file nor a directory.
    #[error("{}: not a key file or a directory of key files", .path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A key file is malformed or too large.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Together, the files hold more than [`MAX_KEYS`] keys.
    #[error("{}: more than {MAX_KEYS} keys in the keyring", .path.display())]
    TooManyKeys {
        /// The file or directory whose keys went over the limit.
        path: PathBuf,
    },
}

/// Reads the public keys of a file, or of a directory of files; `already` keys are in the
/// list they will join, and count towards [`MAX_KEYS`].
fn read_keys(path: &Path, already: usize) -> Result<Vec<PublicKey>, KeyringError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| KeyringError::Io { path, source }
    };
    let metadata = fs::metadata(path).map_err(io_error(path))?;
    let files = if metadata.is_dir() {
        let mut files = Vec::new();
        for entry in fs::read_dir(path).map_err(io_error(path))? {
            let entry = entry.map_err(io_error(path))?;
            if entry.file_name().as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let file = entry.path();
            // Follows symbolic links, as ostree does.
            if fs::metadata(&file).map_err(io_error(&file))?.is_file() {
                files.push(file);
            }
        }
        files.sort();
        files
    } else if metadata.is_file() {
        vec![path.to_owned()]
    } else {
        return Err(KeyringError::NotAFile {
            path: path.to_owned(),
        });
    };

    let mut keys = Vec::new();
    for file in files {
        let text = read_bounded(&file)?;
        keys.extend(parse_public_keys(&text, &file.display().to_string())?);
        if already.saturating_add(keys.len()) > MAX_KEYS {
            return Err(KeyringError::TooManyKeys {
                path: path.to_owned(),
            });
        }
    }
    Ok(keys)
}

/// Reads a file of at most [`MAX_KEY_FILE_SIZE`] bytes.
fn read_bounded(path: &Path) -> Result<Vec<u8>, KeyringError> {
    crate::bounded::read_bounded(path, MAX_KEY_FILE_SIZE).map_err(|e| match e {
        ReadError::Io(source) => KeyringError::Io {
            path: path.to_owned(),
            source,
        },
        ReadError::TooLarge(size) => KeyringError::Key(KeyError::TooLarge {
            file: path.display().to_string(),
            size,
        }),
    })
}
