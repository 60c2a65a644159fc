//! Adding objects in a [`Transaction`]: every write goes through the transaction's
//! [`sealroot_objects::Store`] (an unnamed `O_TMPFILE` in `tmp/`, hashed while written, given
//! fs-verity where the filesystem supports it and checked against the kernel's measurement,
//! then linked to `objects/XX/REST`: no name ever shows a partial object). Here: naming the
//! store's failures as [`ObjectError`]s.

use std::io::Read;
use std::os::fd::BorrowedFd;

use sealroot_objects::{FileIdentity, StoreError, StoreOp, TmpFile};

use super::Transaction;
use crate::error::{IoError, ObjectError, Operation as Op};
use crate::id::ObjectId;

/// The [`ObjectError`] of a failure of the store.
pub(crate) fn store_error(e: StoreError) -> ObjectError {
    match e {
        StoreError::Io { op, path, source } => {
            let op = match op {
                StoreOp::Lookup => Op::Stat,
                StoreOp::Subdir => Op::CreateDir,
                StoreOp::Create => Op::Create,
                StoreOp::Write => Op::Write,
                StoreOp::Seal => Op::Sync,
                StoreOp::Verity => Op::EnableVerity,
                _ => Op::Link,
            };
            IoError::new(op, path, source).into()
        }
        StoreError::Read(e) => IoError::new(Op::Read, "(object source)", e).into(),
        e @ StoreError::Size { .. } => {
            IoError::new(Op::Read, "(object source)", std::io::Error::other(e)).into()
        }
        StoreError::SourceChanged => ObjectError::SourceChanged,
        StoreError::VerityRequired { path, source } => ObjectError::VerityRequired { path, source },
        StoreError::VerityMismatch { path, measured } => ObjectError::VerityMismatch {
            path,
            measured: measured.map_or_else(|| "(an unknown algorithm)".into(), |d| d.to_string()),
        },
        e => IoError::new(Op::Write, "(object)", std::io::Error::other(e)).into(),
    }
}

impl Transaction<'_> {
    /// Stores `data` as an object; returns its id.
    pub fn ensure_object(&self, data: &[u8]) -> Result<ObjectId, ObjectError> {
        let mut reader = data;
        self.ensure_object_from_reader(&mut reader)
    }

    /// Stores everything `reader` yields as an object, hashing it as it is written; returns
    /// its id. If the object exists already, the new copy is dropped.
    pub fn ensure_object_from_reader(
        &self,
        reader: &mut dyn Read,
    ) -> Result<ObjectId, ObjectError> {
        let (digest, _, _) = self
            .store
            .insert_reader(reader, None)
            .map_err(store_error)?;
        Ok(ObjectId::new(digest))
    }

    /// Stores the whole regular file open as `fd` as an object; returns its id. The file is
    /// hashed first, so an object already present costs no copy; a new one is copied the
    /// fastest way the filesystem offers (a reflink, else `copy_file_range`, else reads and
    /// writes). The file must not change meanwhile ([`ObjectError::SourceChanged`]).
    pub fn ensure_object_from_fd(&self, fd: BorrowedFd<'_>) -> Result<ObjectId, ObjectError> {
        let src_err =
            |op, e: std::io::Error| ObjectError::from(IoError::new(op, "(object source)", e));
        let before = FileIdentity::of(fd).map_err(|e| src_err(Op::Stat, e.into()))?;
        let (digest, size) =
            crate::fs::hash_fd(&self.repo.verity_params(), fd).map_err(|e| src_err(Op::Read, e))?;
        if size != before.size {
            return Err(ObjectError::SourceChanged);
        }
        let unchanged = || {
            FileIdentity::of(fd)
                .map(|now| now == before)
                .map_err(Into::into)
        };
        sealroot_objects::with_buffer(|buf| {
            self.store
                .insert_fd(fd, size, &digest, buf, &unchanged)
                .map_err(store_error)
        })?;
        Ok(ObjectId::new(digest))
    }

    /// A new temporary file in `tmp/`, to fill and give its object name with the store's
    /// [`place`](sealroot_objects::Store::place).
    pub(crate) fn new_tmp(&self) -> Result<TmpFile<'_>, ObjectError> {
        self.store.create_tmp().map_err(store_error)
    }
}
