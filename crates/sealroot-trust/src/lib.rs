//! Trust for sealroot: who may publish a commit, and how a device checks it.
//!
//! - [`ed25519`]: ed25519 keys in ostree's base64 formats, keyrings (trusted and revoked
//!   keys), commit signatures and the detached signature file stored beside a commit.
//! - [`pkcs7`]: kernel fs-verity built-in signatures: the PKCS#7 `SignedData` over an
//!   fs-verity digest, byte-identical to what `fsverity sign` (fsverity-utils) produces.
//!
//! Pure policy and encodings: this crate does no I/O beyond reading the key files it is
//! pointed at.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bounded;
pub mod ed25519;
pub mod pkcs7;
