//! fs-verity on a new object: [`enable_verity`] and the kernel's [`measure`]ment.

use std::os::fd::{AsFd, BorrowedFd};

use rustix::io::Errno;
use sealroot_sys::fsverity::{self, EnableParams, VerityError};
use sealroot_verity::{AnyDigest, HashAlgorithm, Sha256Digest, Sha512Digest};

use crate::TmpFile;

/// Why [`enable_verity`] failed, by step, so that each caller can decide what a filesystem
/// without fs-verity means to it and name the object its own way.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnableError {
    /// The file could not be opened again read-only.
    #[error("reopening read-only: {0}")]
    Reopen(#[source] Errno),
    /// `FS_IOC_ENABLE_VERITY` failed; [`VerityError::NotSupported`] and
    /// [`VerityError::InvalidParameters`] mean the filesystem cannot (for these parameters).
    #[error("enabling fs-verity: {0}")]
    Enable(#[source] VerityError),
    /// fs-verity was enabled but `FS_IOC_MEASURE_VERITY` failed.
    #[error("measuring fs-verity: {0}")]
    Measure(#[source] VerityError),
    /// The kernel measured another digest than the one computed while writing (which the
    /// caller knows): the data changed on its way to the disk.
    #[error("the kernel measured fs-verity digest {}",
        measured.as_ref().map_or_else(|| "(an unknown algorithm)".to_owned(), |d| d.to_string()))]
    Mismatch {
        /// What the kernel measured; `None` for an algorithm sealroot does not know.
        measured: Option<Box<AnyDigest>>,
    },
}

/// Enables fs-verity with `params` on the complete file `tmp`, first replacing its writable
/// descriptor with a read-only one (the kernel refuses a file open for writing), and checks
/// that the kernel's measurement is `expected`.
pub fn enable_verity(
    tmp: &mut TmpFile<'_>,
    params: &EnableParams<'_>,
    expected: &AnyDigest,
) -> Result<(), EnableError> {
    enable_verity_signed(tmp, params, expected, None)
}

/// [`enable_verity`] with a kernel built-in signature (DER PKCS#7 over the file's
/// fs-verity digest), which the kernel checks against its `.fs-verity` keyring.
pub fn enable_verity_signed(
    tmp: &mut TmpFile<'_>,
    params: &EnableParams<'_>,
    expected: &AnyDigest,
    signature: Option<&[u8]>,
) -> Result<(), EnableError> {
    tmp.reopen_read_only().map_err(EnableError::Reopen)?;
    fsverity::enable_verity(tmp.fd(), params, signature).map_err(EnableError::Enable)?;
    // The kernel hashed the object itself: it must be what was hashed while writing.
    match measure(tmp.fd().as_fd()).map_err(EnableError::Measure)? {
        Some(measured) if measured == *expected => Ok(()),
        measured => Err(EnableError::Mismatch {
            measured: measured.map(Box::new),
        }),
    }
}

/// The kernel's fs-verity digest of `fd`: `None` for an algorithm sealroot does not know.
pub fn measure(fd: BorrowedFd<'_>) -> Result<Option<AnyDigest>, VerityError> {
    let (alg, bytes) = fsverity::measure_verity(fd)?;
    Ok(match HashAlgorithm::from_kernel_id(alg as u8) {
        Some(HashAlgorithm::Sha256) => Sha256Digest::from_slice(&bytes).ok().map(AnyDigest::Sha256),
        Some(HashAlgorithm::Sha512) => Sha512Digest::from_slice(&bytes).ok().map(AnyDigest::Sha512),
        None => None,
    })
}
