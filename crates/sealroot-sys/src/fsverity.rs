//! The fs-verity ioctls: `FS_IOC_ENABLE_VERITY` and `FS_IOC_MEASURE_VERITY`.
//!
//! The kernel interface is `include/uapi/linux/fsverity.h`; the behaviour and every errno are
//! described in the kernel's `Documentation/filesystems/fsverity.rst`. This module speaks the
//! kernel's raw vocabulary (algorithm numbers as `u16`, digests as bytes) so that it does not
//! depend on `sealroot-verity`; that crate's `HashAlgorithm::kernel_id` and digest types map to
//! and from these values.
//!
//! Enabling verity builds the Merkle tree in the kernel and makes the file read-only for good;
//! measuring returns the same digest `sealroot-verity` computes in userspace, so comparing the
//! two proves a file's content.

use std::io;
use std::os::fd::AsFd;

use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags};
use rustix::io::Errno;
use rustix::ioctl::{ioctl, opcode, Opcode, Setter, Updater};

/// `FS_VERITY_HASH_ALG_SHA256`: the kernel's number for SHA-256.
pub const FS_VERITY_HASH_ALG_SHA256: u16 = 1;
/// `FS_VERITY_HASH_ALG_SHA512`: the kernel's number for SHA-512.
pub const FS_VERITY_HASH_ALG_SHA512: u16 = 2;
/// The largest digest of any algorithm the kernel supports (SHA-512's 64 bytes); the measure
/// buffer is this big.
pub const FS_VERITY_MAX_DIGEST_SIZE: usize = 64;
/// `fsverity_enable_arg.version`: the only version the kernel accepts.
const FS_VERITY_ENABLE_ARG_VERSION: u32 = 1;

/// `FS_IOC_ENABLE_VERITY = _IOW('f', 133, struct fsverity_enable_arg)`.
pub const FS_IOC_ENABLE_VERITY: Opcode = opcode::write::<FsverityEnableArg>(b'f', 133);
/// `FS_IOC_MEASURE_VERITY = _IOWR('f', 134, struct fsverity_digest)`. The size encoded is
/// that of the 4-byte header only; the digest bytes follow it in the same buffer.
pub const FS_IOC_MEASURE_VERITY: Opcode = opcode::read_write::<FsverityDigestHeader>(b'f', 134);

/// `struct fsverity_enable_arg`, the argument of `FS_IOC_ENABLE_VERITY`, field for field.
///
/// Pointers travel as `u64` addresses, as in the kernel header. Build one with
/// [`enable_verity`] rather than by hand; it is public so that its layout can be checked.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsverityEnableArg {
    /// Must be 1.
    pub version: u32,
    /// `FS_VERITY_HASH_ALG_*`.
    pub hash_algorithm: u32,
    /// The Merkle-tree block size in bytes.
    pub block_size: u32,
    /// The salt length in bytes, 0 for none.
    pub salt_size: u32,
    /// The address of the salt.
    pub salt_ptr: u64,
    /// The length of the built-in signature, 0 for none.
    pub sig_size: u32,
    /// Reserved, must be 0.
    pub reserved1: u32,
    /// The address of the built-in signature (PKCS#7 DER).
    pub sig_ptr: u64,
    /// Reserved, must be 0.
    pub reserved2: [u64; 11],
}

/// The header of `struct fsverity_digest`: algorithm and digest size, followed in memory by
/// the digest itself.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsverityDigestHeader {
    /// `FS_VERITY_HASH_ALG_*`, written by the kernel.
    pub digest_algorithm: u16,
    /// In: the room for the digest; out: the digest's size.
    pub digest_size: u16,
}

/// `struct fsverity_digest` with room for the largest digest.
#[repr(C)]
struct MeasureBuffer {
    header: FsverityDigestHeader,
    digest: [u8; FS_VERITY_MAX_DIGEST_SIZE],
}

/// What went wrong with an fs-verity ioctl, by the kernel's errno.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerityError {
    /// The filesystem does not implement fs-verity (`ENOTTY`), or the kernel was built without
    /// it, or the filesystem was made without its `verity` feature (`EOPNOTSUPP`).
    #[error(
        "fs-verity is not supported here: no kernel support, or the filesystem lacks it ({0})"
    )]
    NotSupported(Errno),
    /// The file already has fs-verity enabled (`EEXIST`).
    #[error("fs-verity is already enabled on this file")]
    AlreadyEnabled,
    /// Some file descriptor, perhaps the caller's own, or a writable mapping still has the file
    /// open for writing (`ETXTBSY`); verity can only be enabled on a file nobody writes.
    #[error("the file is still open for writing somewhere; close every writer first")]
    FileOpenForWriting,
    /// The file does not have fs-verity enabled, so there is nothing to measure (`ENODATA`).
    #[error("fs-verity is not enabled on this file")]
    NotEnabled,
    /// The built-in signature is malformed (`EBADMSG`).
    #[error("the fs-verity signature is malformed")]
    BadSignature,
    /// The built-in signature does not match the file's digest (`EKEYREJECTED`).
    #[error("the fs-verity signature does not match the file")]
    KeyRejected,
    /// The `.fs-verity` keyring has no certificate for the signature's key (`ENOKEY`).
    #[error("the .fs-verity keyring holds no certificate for the signing key")]
    UnknownKey,
    /// The kernel refused the parameters (version, algorithm or block size), or the file is
    /// not a regular file (`EINVAL`).
    #[error("the kernel refused the fs-verity parameters or the file type")]
    InvalidParameters,
    /// Any other failure, with the kernel's errno.
    #[error(transparent)]
    Other(io::Error),
}

impl VerityError {
    /// The typed error for an errno from either ioctl.
    fn from_errno(e: Errno) -> Self {
        match e {
            Errno::NOTTY | Errno::OPNOTSUPP => VerityError::NotSupported(e),
            Errno::EXIST => VerityError::AlreadyEnabled,
            Errno::TXTBSY => VerityError::FileOpenForWriting,
            Errno::NODATA => VerityError::NotEnabled,
            Errno::BADMSG => VerityError::BadSignature,
            Errno::KEYREJECTED => VerityError::KeyRejected,
            Errno::NOKEY => VerityError::UnknownKey,
            Errno::INVAL => VerityError::InvalidParameters,
            other => VerityError::Other(other.into()),
        }
    }
}

impl From<VerityError> for io::Error {
    /// An `io::Error` of a fitting kind that still carries the typed error; `Other` gives back
    /// the kernel's error as it was.
    fn from(e: VerityError) -> Self {
        let kind = match e {
            VerityError::Other(inner) => return inner,
            VerityError::NotSupported(_) => io::ErrorKind::Unsupported,
            VerityError::AlreadyEnabled => io::ErrorKind::AlreadyExists,
            VerityError::FileOpenForWriting => io::ErrorKind::ResourceBusy,
            VerityError::InvalidParameters => io::ErrorKind::InvalidInput,
            VerityError::NotEnabled
            | VerityError::BadSignature
            | VerityError::KeyRejected
            | VerityError::UnknownKey => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// The Merkle-tree parameters `FS_IOC_ENABLE_VERITY` builds with, as the kernel numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnableParams<'a> {
    /// `FS_VERITY_HASH_ALG_SHA256` or `FS_VERITY_HASH_ALG_SHA512`.
    pub hash_algorithm: u16,
    /// The Merkle-tree block size in bytes: a power of two the filesystem supports (always
    /// the page size; newer kernels also smaller ones down to 1024).
    pub block_size: u32,
    /// At most 32 bytes prepended to every hashed block; empty for none.
    pub salt: &'a [u8],
}

impl EnableParams<'static> {
    /// What composefs uses: SHA-256, 4 KiB blocks, no salt.
    pub const fn composefs_default() -> Self {
        EnableParams {
            hash_algorithm: FS_VERITY_HASH_ALG_SHA256,
            block_size: 4096,
            salt: &[],
        }
    }
}

/// Enables fs-verity on the file open as `fd` with `FS_IOC_ENABLE_VERITY`.
///
/// `fd` must be open read-only, and no file descriptor or mapping anywhere may have the file
/// open for writing ([`VerityError::FileOpenForWriting`]). The kernel reads the whole file to
/// build the Merkle tree, so this takes time proportional to the file size. `signature` is a
/// PKCS#7 DER signature for the kernel's built-in signature verification, usually `None`.
pub fn enable_verity(
    fd: impl AsFd,
    params: &EnableParams<'_>,
    signature: Option<&[u8]>,
) -> Result<(), VerityError> {
    let too_long = |what: &str| {
        VerityError::Other(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fs-verity {what} longer than 4 GiB"),
        ))
    };
    let sig = signature.unwrap_or(&[]);
    let arg = FsverityEnableArg {
        version: FS_VERITY_ENABLE_ARG_VERSION,
        hash_algorithm: u32::from(params.hash_algorithm),
        block_size: params.block_size,
        salt_size: u32::try_from(params.salt.len()).map_err(|_| too_long("salt"))?,
        salt_ptr: address(params.salt),
        sig_size: u32::try_from(sig.len()).map_err(|_| too_long("signature"))?,
        sig_ptr: address(sig),
        ..FsverityEnableArg::default()
    };
    // SAFETY: FS_IOC_ENABLE_VERITY is an `_IOW` ioctl whose argument is a pointer to a
    // `struct fsverity_enable_arg`, which `FsverityEnableArg` mirrors field for field
    // (`repr(C)`, 128 bytes; checked by tests/fsverity.rs). The kernel only reads it, and reads
    // `salt_size` bytes at `salt_ptr` and `sig_size` bytes at `sig_ptr`: those come from the
    // live slices `params.salt` and `sig`, borrowed for the whole call.
    let setter = unsafe { Setter::<FS_IOC_ENABLE_VERITY, FsverityEnableArg>::new(arg) };
    // SAFETY: `setter` pairs the opcode with its argument type as required above; the ioctl
    // returns no output beyond the errno.
    unsafe { ioctl(fd, setter) }.map_err(VerityError::from_errno)
}

/// The address of a slice for a `u64` field of a kernel argument, 0 for an empty one.
fn address(bytes: &[u8]) -> u64 {
    if bytes.is_empty() {
        0
    } else {
        // The kernel dereferences this address during the ioctl, so expose the provenance.
        bytes.as_ptr().expose_provenance() as u64
    }
}

/// The fs-verity digest the kernel holds for the file open as `fd`, with
/// `FS_IOC_MEASURE_VERITY`: the algorithm number (`FS_VERITY_HASH_ALG_*`) and the digest
/// bytes. Fails with [`VerityError::NotEnabled`] on a file without verity.
pub fn measure_verity(fd: impl AsFd) -> Result<(u16, Vec<u8>), VerityError> {
    let mut buf = MeasureBuffer {
        header: FsverityDigestHeader {
            digest_algorithm: 0,
            digest_size: FS_VERITY_MAX_DIGEST_SIZE as u16,
        },
        digest: [0; FS_VERITY_MAX_DIGEST_SIZE],
    };
    // SAFETY: FS_IOC_MEASURE_VERITY takes a pointer to a `struct fsverity_digest`: the 4-byte
    // header (which is what the opcode's size field encodes) followed by `digest_size` bytes
    // of room. `MeasureBuffer` is `repr(C)` with the header first and 64 bytes after it, and
    // `digest_size` says 64, so the kernel writes within the buffer (or fails with EOVERFLOW).
    let updater = unsafe { Updater::<FS_IOC_MEASURE_VERITY, MeasureBuffer>::new(&mut buf) };
    // SAFETY: `updater` borrows `buf` mutably for the whole call, as required above.
    unsafe { ioctl(fd, updater) }.map_err(VerityError::from_errno)?;
    let len = usize::from(buf.header.digest_size);
    let digest = buf.digest.get(..len).ok_or_else(|| {
        VerityError::Other(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("kernel reported a {len}-byte fs-verity digest"),
        ))
    })?;
    Ok((buf.header.digest_algorithm, digest.to_vec()))
}

/// Whether the file open as `fd` has fs-verity enabled, from `statx`'s `STATX_ATTR_VERITY`.
///
/// This needs no fs-verity support at all: on a filesystem without it the answer is `false`.
pub fn is_verity_enabled(fd: impl AsFd) -> io::Result<bool> {
    let st = statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::empty())?;
    Ok(st.stx_attributes.contains(StatxAttributes::VERITY))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variant's name, to compare against a table.
    fn variant(e: &VerityError) -> &'static str {
        match e {
            VerityError::NotSupported(_) => "NotSupported",
            VerityError::AlreadyEnabled => "AlreadyEnabled",
            VerityError::FileOpenForWriting => "FileOpenForWriting",
            VerityError::NotEnabled => "NotEnabled",
            VerityError::BadSignature => "BadSignature",
            VerityError::KeyRejected => "KeyRejected",
            VerityError::UnknownKey => "UnknownKey",
            VerityError::InvalidParameters => "InvalidParameters",
            VerityError::Other(_) => "Other",
        }
    }

    #[test]
    fn errnos_map_to_variants() {
        let cases = [
            (Errno::NOTTY, "NotSupported"),
            (Errno::OPNOTSUPP, "NotSupported"),
            (Errno::EXIST, "AlreadyEnabled"),
            (Errno::TXTBSY, "FileOpenForWriting"),
            (Errno::NODATA, "NotEnabled"),
            (Errno::BADMSG, "BadSignature"),
            (Errno::KEYREJECTED, "KeyRejected"),
            (Errno::NOKEY, "UnknownKey"),
            (Errno::INVAL, "InvalidParameters"),
            (Errno::ACCESS, "Other"),
            (Errno::PERM, "Other"),
        ];
        for (errno, expected) in cases {
            let e = VerityError::from_errno(errno);
            assert_eq!(variant(&e), expected, "{errno:?}");
        }
        let VerityError::Other(io) = VerityError::from_errno(Errno::ACCESS) else {
            unreachable!()
        };
        assert_eq!(io.raw_os_error(), Some(Errno::ACCESS.raw_os_error()));
    }

    #[test]
    fn io_error_keeps_the_cause() {
        let e: io::Error = VerityError::NotSupported(Errno::NOTTY).into();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        let e: io::Error = VerityError::Other(Errno::ROFS.into()).into();
        assert_eq!(e.raw_os_error(), Some(Errno::ROFS.raw_os_error()));
    }

    #[test]
    fn empty_slices_pass_null() {
        assert_eq!(address(&[]), 0);
        assert_ne!(address(b"x"), 0);
    }
}
