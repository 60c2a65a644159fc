//! Writing a commit's signature files: `commits/HEX.sig` (ed25519 signatures, in
//! sealroot-trust's format) and `commits/HEX.p7s` (the kernel built-in signature of its
//! image). Each is replaced whole (temporary file + `renameat` + `fsync` of `commits/`), so
//! adding a signature never changes a commit's id; and each change happens under the
//! commit's lock (`tmp/locks/commit.DIGEST`) after reading the current file, so concurrent
//! signers each add theirs and none is lost.

use super::lock::NamedLock;
use super::{Transaction, WriteCommitError};
use crate::error::{IoError, Operation as Op};
use crate::fs;
use crate::layout;
use crate::read::commits::CommitId;
use crate::repository::LayoutDir;

impl Transaction<'_> {
    /// Replaces commit `id`'s signature file with what `update` makes of the current one
    /// (`None`: there is none yet), under the commit's lock. `update` merges: it keeps the
    /// signatures there and adds new ones.
    pub fn update_signatures(
        &self,
        id: &CommitId,
        update: impl FnOnce(Option<&[u8]>) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>,
    ) -> Result<(), WriteCommitError> {
        let _lock = self.lock_commit(id)?;
        let current = self.repo.read_signatures(id)?;
        let bytes = update(current.as_deref()).map_err(|source| WriteCommitError::Signatures {
            commit: *id,
            source,
        })?;
        self.replace_commit_file(id, layout::SIGNATURE_SUFFIX, &bytes)
    }

    /// Replaces commit `id`'s signature file with `bytes` (atomically and durably), under the
    /// commit's lock.
    pub fn write_signatures(&self, id: &CommitId, bytes: &[u8]) -> Result<(), WriteCommitError> {
        let _lock = self.lock_commit(id)?;
        self.replace_commit_file(id, layout::SIGNATURE_SUFFIX, bytes)
    }

    /// Replaces the kernel built-in signature of commit `id`'s image (DER PKCS#7).
    pub fn write_image_signature(&self, id: &CommitId, der: &[u8]) -> Result<(), WriteCommitError> {
        let _lock = self.lock_commit(id)?;
        self.replace_commit_file(id, layout::IMAGE_SIGNATURE_SUFFIX, der)
    }

    fn lock_commit(&self, id: &CommitId) -> Result<NamedLock, IoError> {
        NamedLock::take(self, &layout::lock_name("commit", &id.to_hex()))
    }

    fn replace_commit_file(
        &self,
        id: &CommitId,
        suffix: &str,
        bytes: &[u8],
    ) -> Result<(), WriteCommitError> {
        let repo = self.repo;
        if !repo.has_commit(id)? {
            return Err(crate::CommitError::NotFound(*id).into());
        }
        let commits = repo.layout_dir(LayoutDir::Commits)?;
        let name = format!("{}{suffix}", id.to_hex());
        fs::replace_file(&self.tmp, &repo.tmp, commits, &name, bytes)
            .map_err(|e| IoError::new(Op::Write, repo.join(layout::COMMITS).join(&name), e))?;
        Ok(())
    }
}
