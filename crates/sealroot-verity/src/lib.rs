//! fs-verity digests, computed in userspace exactly as the Linux kernel computes them.
//!
//! The kernel's fs-verity hashes a file as a Merkle tree of `block_size` blocks (see
//! `Documentation/filesystems/fsverity.rst`): the data blocks are hashed, the hashes packed into
//! blocks, and so on up to a single root block. The file's *digest* is the hash of a 256-byte
//! `fsverity_descriptor` holding the algorithm, log2 of the block size, the file size, the salt
//! and the root hash. That digest is what names every object in a sealroot repository and what
//! the composefs image records for each file.
//!
//! - [`Params`] fixes the algorithm, block size and salt; [`Params::composefs_default`] is what
//!   composefs uses (sha256, 4 KiB, no salt).
//! - [`Hasher`] streams any amount of data in pieces of any size; [`digest`],
//!   [`digest_reader`] and [`digest_file`] wrap it, and the `sha256_*` functions are the
//!   composefs shortcuts returning a [`Sha256Digest`].
//! - With the default `parallel` feature, [`sha256_digest_files_parallel`] hashes many files
//!   on rayon's thread pool.
//!
//! Results are checked against `fsverity digest` from fsverity-utils by `tests/oracle.rs`.
//!
//! This crate makes no system calls of its own beyond reading the readers and files it is
//! handed; enabling and measuring fs-verity on a file is `sealroot-sys`'s job.
#![forbid(unsafe_code)]

mod digest;
mod merkle;
mod read;

pub use digest::{
    AnyDigest, DigestHasher, DigestParseError, DigestSet, HashAlgorithm, Sha256Digest, Sha512Digest,
};
pub use merkle::{
    digest, sha256_digest, Hasher, Params, ParamsError, MAX_LOG_BLOCK_SIZE, MAX_SALT_SIZE,
    MIN_LOG_BLOCK_SIZE,
};
#[cfg(feature = "parallel")]
pub use read::sha256_digest_files_parallel;
pub use read::{
    digest_file, digest_reader, sha256_digest_file, sha256_digest_reader, with_buffer, BUFFER_SIZE,
};
