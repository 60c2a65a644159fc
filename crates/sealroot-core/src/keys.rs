//! ed25519 key pairs in ostree's formats: made, and read back.

use std::path::{Path, PathBuf};

use sealroot_trust::ed25519::{self, GenerateError, KeyError, PublicKey, SecretKey};

use crate::files::{write_new, WriteFileError};

/// Why a key pair could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No randomness.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// A key file could not be written.
    #[error(transparent)]
    Write(#[from] WriteFileError),
    /// A key file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key file does not parse.
    #[error(transparent)]
    Parse(#[from] KeyError),
    /// The file holds no secret key.
    #[error("{}: no secret key in it", .0.display())]
    NoKey(PathBuf),
}

/// A new key pair's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    /// The secret key file (mode 0600).
    pub secret: PathBuf,
    /// The public key file, `SECRET.pub`.
    pub public: PathBuf,
    /// The public key.
    pub key: PublicKey,
}

/// Makes a key pair: `secret_path` (mode 0600) and `secret_path.pub`, neither of which may
/// exist. The public one is written first, so a failure leaves no secret key behind.
pub fn generate(secret_path: &Path) -> Result<Generated, Error> {
    let key = SecretKey::generate()?;
    let public = key.public_key();
    let pub_path = {
        let mut p = secret_path.as_os_str().to_owned();
        p.push(".pub");
        PathBuf::from(p)
    };
    write_new(
        &pub_path,
        0o644,
        format!("{}\n", public.to_base64()).as_bytes(),
    )?;
    if let Err(e) = write_new(
        secret_path,
        0o600,
        format!("{}\n", key.to_base64()).as_bytes(),
    ) {
        let _ = std::fs::remove_file(&pub_path);
        return Err(e.into());
    }
    Ok(Generated {
        secret: secret_path.to_owned(),
        public: pub_path,
        key: public,
    })
}

/// The secret keys in a file (at least one).
pub fn read_secret_keys(path: &Path) -> Result<Vec<SecretKey>, Error> {
    let text = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let keys = ed25519::parse_secret_keys(&text, &path.display().to_string())?;
    if keys.is_empty() {
        return Err(Error::NoKey(path.to_owned()));
    }
    Ok(keys)
}
