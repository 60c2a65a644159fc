//! fs-verity digests, computed in userspace exactly as the Linux kernel computes them.
//!
//! The kernel's fs-verity hashes a file as a Merkle tree of `block_size` blocks (see
//! `Documentation/filesystems/fsverity.rst`): the data blocks are hashed, the hashes packed into
//! blocks, and so on up to a single root block. The file's *digest* is the hash of a 256-byte
//! `fsverity_descriptor` holding the algorithm, log2 of the block size, the file size, the salt
//! and the root hash. That digest is what names every object in a sealroot repository and what
//! the composefs image records for each file.
//!
//! This crate does no I/O beyond reading bytes it is handed.
#![forbid(unsafe_code)]

mod digest;

pub use digest::{DigestParseError, HashAlgorithm, Sha256Digest, Sha512Digest};
mod merkle;

pub use merkle::{
    sha256_digest, sha256_digest_reader, AnyDigest, Hasher, Params, ParamsError,
    MAX_LOG_BLOCK_SIZE, MAX_SALT_SIZE, MIN_LOG_BLOCK_SIZE,
};
