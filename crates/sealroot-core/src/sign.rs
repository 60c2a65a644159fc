//! Signing a commit: ed25519 signatures added to its signature file (read, merged and
//! replaced under the commit's lock, so concurrent signers each keep theirs), and the kernel
//! built-in signature of its image (PKCS#7 over its fs-verity digest, as `fsverity sign`).

use std::path::Path;

use sealroot_repo::{CommitError, CommitId, Repository, TransactionError, WriteCommitError};
use sealroot_trust::ed25519::{SecretKey, SignatureFile};
use sealroot_trust::pkcs7::{self, Pkcs7Error};

/// Why a commit could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The commit could not be read (only an intact commit is signed).
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// The signature file could not be updated.
    #[error(transparent)]
    Write(#[from] WriteCommitError),
    /// The transaction could not start or finish.
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    /// The signing key or certificate could not be read, or signing failed.
    #[error(transparent)]
    Pkcs7(#[from] Pkcs7Error),
}

/// What signing did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The commit.
    pub id: CommitId,
    /// The public keys that signed now, in base64.
    pub signed_by: Vec<String>,
    /// How many signatures the commit has now.
    pub signatures: usize,
}

/// Adds a signature by each of `keys` to commit `id`, keeping every signature already
/// there.
pub fn sign(repo: &Repository, id: &CommitId, keys: &[SecretKey]) -> Result<Signed, Error> {
    let id = *id;
    repo.read_commit(&id)?;
    let tx = repo.transaction()?;
    let mut count = 0;
    tx.update_signatures(&id, |current| {
        let mut file = match current {
            Some(bytes) => {
                let f = SignatureFile::parse(bytes, &format!("signatures of {id}"))?;
                if f.commit() != &id.0 {
                    return Err(format!(
                        "the signature file beside commit {id} is for commit {}: remove it first",
                        f.commit()
                    )
                    .into());
                }
                f
            }
            None => SignatureFile::new(id.0),
        };
        for k in keys {
            file.sign(k)?;
        }
        count = file.signatures().len();
        Ok(file.encode())
    })?;
    tx.finish()?;
    Ok(Signed {
        id,
        signed_by: keys.iter().map(|k| k.public_key().to_base64()).collect(),
        signatures: count,
    })
}

/// What signing an image for the kernel did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedImage {
    /// The image's digest.
    pub image: sealroot_verity::AnyDigest,
    /// The size of the DER PKCS#7 signature.
    pub bytes: usize,
}

/// Makes the kernel built-in signature of commit `id`'s image with `key` and `cert` (PEM
/// files) and stores it beside the commit (`commits/HEX.p7s`).
pub fn sign_image(
    repo: &Repository,
    id: &CommitId,
    key: &Path,
    cert: &Path,
) -> Result<SignedImage, Error> {
    let commit = repo.read_commit(id)?;
    let key = pkcs7::SigningKey::read_pem_file(key)?;
    let cert = pkcs7::Certificate::read_file(cert)?;
    let der = pkcs7::sign_digest(
        &key,
        &cert,
        commit.image.algorithm(),
        commit.image.as_bytes(),
    )?;
    let tx = repo.transaction()?;
    tx.write_image_signature(id, &der)?;
    tx.finish()?;
    Ok(SignedImage {
        image: commit.image,
        bytes: der.len(),
    })
}

/// A file's fs-verity digest signed for the kernel: DER PKCS#7, byte for byte what
/// fsverity-utils' `fsverity sign` makes with the same key, certificate and parameters.
pub fn fsverity_sign_file(
    file: &Path,
    key: &Path,
    cert: &Path,
    params: &sealroot_verity::Params,
) -> Result<(sealroot_verity::AnyDigest, Vec<u8>), FsveritySignError> {
    let f = std::fs::File::open(file).map_err(|source| FsveritySignError::Read {
        path: file.to_owned(),
        source,
    })?;
    let digest =
        sealroot_verity::digest_reader(params, f).map_err(|source| FsveritySignError::Read {
            path: file.to_owned(),
            source,
        })?;
    let key = pkcs7::SigningKey::read_pem_file(key)?;
    let cert = pkcs7::Certificate::read_file(cert)?;
    let der = pkcs7::sign_digest(&key, &cert, params.algorithm(), digest.as_bytes())?;
    Ok((digest, der))
}

/// Why a file could not be signed for the kernel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsveritySignError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key or certificate could not be read, or signing failed.
    #[error(transparent)]
    Pkcs7(#[from] Pkcs7Error),
}
