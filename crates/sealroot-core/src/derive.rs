//! Re-creating a commit's image from its tree objects alone: into the repository (checked to
//! be the image the commit records, optionally enabled with its kernel signature), or into a
//! file.

use std::io::Write as _;
use std::path::Path;

use sealroot_repo::{
    CommitError, CommitId, ImageId, Repository, TransactionError, WriteCommitError,
};
use sealroot_verity::AnyDigest;

use crate::files::{write_atomically, WriteFileError};

/// Why an image could not be re-created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The commit or its tree could not be read, or the image is not the recorded one.
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// Storing the image failed.
    #[error(transparent)]
    Write(#[from] WriteCommitError),
    /// The transaction could not start or finish.
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    /// The output file could not be written.
    #[error(transparent)]
    File(#[from] WriteFileError),
}

/// Writes commit `id`'s image, re-created from its tree objects and checked against the
/// commit, to file `path` (whole or not at all); returns its digest.
pub fn to_file(repo: &Repository, id: &CommitId, path: &Path) -> Result<AnyDigest, Error> {
    let commit = repo.read_commit(id)?;
    write_atomically(
        path,
        |f| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let mut w = std::io::BufWriter::new(f);
            repo.derive_image(id, &commit, Some(&mut w))?;
            w.flush()?;
            Ok(())
        },
    )?;
    Ok(commit.image)
}

/// Stores commit `id`'s image, re-created from its tree objects and checked against the
/// commit; with `kernel_signature`, fs-verity is enabled on it with the commit's kernel
/// built-in signature.
pub fn restore(repo: &Repository, id: &CommitId, kernel_signature: bool) -> Result<ImageId, Error> {
    let tx = repo.transaction()?;
    let image = tx.restore_image(id, kernel_signature)?;
    tx.finish()?;
    Ok(image)
}
