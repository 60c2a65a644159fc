//! Naming what a verb works on: a ref, a commit (by id or prefix) or an image id.

use sealroot_repo::{CommitError, CommitId, ImageId, Repository};

/// What a verb was asked for could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {spec}: {source}")]
pub struct ResolveError {
    /// What was asked for.
    pub spec: String,
    /// Why (boxed: the error stays small).
    #[source]
    pub source: Box<CommitError>,
}

/// The image `spec` names (an image id, a commit by ref, id or prefix, or an image ref).
pub(crate) fn image(repo: &Repository, spec: &str) -> Result<ImageId, ResolveError> {
    repo.resolve_image(spec).map_err(|e| failed(spec, e))
}

/// The commit `spec` names (a commit ref, id or prefix).
pub(crate) fn commit(repo: &Repository, spec: &str) -> Result<CommitId, ResolveError> {
    repo.resolve_commit(spec).map_err(|e| failed(spec, e))
}

fn failed(spec: &str, source: CommitError) -> ResolveError {
    ResolveError {
        spec: spec.to_owned(),
        source: Box::new(source),
    }
}
