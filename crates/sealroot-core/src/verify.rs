//! Verifying a commit: its bytes against its id, its signatures against a keyring, and
//! (unless asked not to) its image re-created from the tree objects alone and compared with
//! the signed digest. Also the image's kernel built-in signature, checked in userspace.

use std::path::Path;

use sealroot_format::objects::Commit;
use sealroot_repo::{CommitError, CommitId, Repository};
use sealroot_trust::ed25519::{self, Keyring, KeyringError, SignatureFileError, VerifyError};
use sealroot_trust::pkcs7::{self, Pkcs7Error};

/// Why a commit did not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The commit, its signature file or its tree could not be read, or the image derived
    /// from the tree is not the signed one.
    #[error(transparent)]
    Commit(#[from] Box<CommitError>),
    /// The commit has no signature file.
    #[error("commit {0} is not signed")]
    Unsigned(CommitId),
    /// The signature file does not parse.
    #[error(transparent)]
    SignatureFile(#[from] SignatureFileError),
    /// The signatures do not verify against the keyring.
    #[error("commit {commit}: {source}")]
    Signatures {
        /// The commit.
        commit: CommitId,
        /// Why (boxed: the error stays small).
        #[source]
        source: Box<VerifyError>,
    },
    /// A keyring could not be read.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// The commit has no kernel built-in signature for its image.
    #[error("commit {0} has no kernel built-in signature for its image")]
    NoImageSignature(CommitId),
    /// The kernel built-in signature of the image does not verify.
    #[error("commit {commit}: the kernel signature of image {}:{image}: {source}", image.algorithm())]
    ImageSignature {
        /// The commit.
        commit: CommitId,
        /// Its image's digest (boxed: the error stays small).
        image: Box<sealroot_verity::AnyDigest>,
        /// Why.
        #[source]
        source: Box<Pkcs7Error>,
    },
    /// A certificate could not be read.
    #[error(transparent)]
    Certificate(Box<Pkcs7Error>),
}

/// A verified commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The commit.
    pub id: CommitId,
    /// What it says.
    pub commit: Commit,
    /// The trusted keys whose signatures verified, in base64.
    pub keys: Vec<String>,
    /// Whether the image was re-created from the tree objects and found to be the signed one.
    pub image_derived: bool,
}

/// Loads a keyring from a file or a `.d`-style directory, with revoked keys from another.
/// An empty keyring (or one whose keys are all revoked) is refused by verification itself.
pub fn keyring(keys: &Path, revoked: Option<&Path>) -> Result<Keyring, Error> {
    let mut ring = Keyring::load(keys)?;
    if let Some(r) = revoked {
        ring.load_revoked(r)?;
    }
    Ok(ring)
}

/// Verifies commit `id`'s signatures against `ring`; with `derive`, re-creates the image
/// from the tree objects and checks it is the signed one.
pub fn verify_commit(
    repo: &Repository,
    id: &CommitId,
    ring: &Keyring,
    derive: bool,
) -> Result<Verified, Error> {
    let id = *id;
    // The commit's bytes are checked against its id here.
    let commit = repo.read_commit(&id)?;
    let bytes = repo.read_signatures(&id)?.ok_or(Error::Unsigned(id))?;
    let file = ed25519::SignatureFile::parse(&bytes, &format!("signatures of commit {id}"))?;
    let verified = ed25519::verify(ring, &id.0, &file).map_err(|source| Error::Signatures {
        commit: id,
        source: Box::new(source),
    })?;
    if derive {
        repo.derive_image(&id, &commit, None)?;
    }
    Ok(Verified {
        id,
        commit,
        keys: verified.keys.iter().map(|k| k.to_base64()).collect(),
        image_derived: derive,
    })
}

/// Checks the kernel built-in signature of commit `id`'s image against certificate `cert`
/// (a PEM or DER file), in userspace; returns the certificate's origin for messages.
pub fn verify_image_signature(
    repo: &Repository,
    id: &CommitId,
    commit: &Commit,
    cert: &Path,
) -> Result<String, Error> {
    let der = repo
        .read_image_signature(id)?
        .ok_or(Error::NoImageSignature(*id))?;
    let cert = pkcs7::Certificate::read_file(cert).map_err(|e| Error::Certificate(Box::new(e)))?;
    let algorithm = commit.image.algorithm();
    pkcs7::verify_signature(&cert, algorithm, commit.image.as_bytes(), &der).map_err(|source| {
        Error::ImageSignature {
            commit: *id,
            image: Box::new(commit.image),
            source: Box::new(source),
        }
    })?;
    Ok(cert.origin().to_owned())
}

/// The keys that signed commit `id`, in base64, as its signature file says: not verified
/// (that is [`verify_commit`]'s), for showing.
pub fn signers(repo: &Repository, id: &CommitId) -> Result<Vec<String>, Error> {
    let Some(bytes) = repo.read_signatures(id)? else {
        return Ok(Vec::new());
    };
    let file = ed25519::SignatureFile::parse(&bytes, &format!("signatures of {id}"))?;
    Ok(file
        .signatures()
        .iter()
        .map(|s| s.key.to_base64())
        .collect())
}

impl From<CommitError> for Error {
    fn from(e: CommitError) -> Self {
        Error::Commit(Box::new(e))
    }
}
