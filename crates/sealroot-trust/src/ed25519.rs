//! ed25519 commit signatures: keys in ostree's formats, keyrings, the detached signature
//! file stored beside a commit, and the policy a device applies to it.
//!
//! # What is signed
//!
//! A commit is named by its [`AnyDigest`] (the fs-verity digest of the commit object's bytes:
//! sha256, or sha512 in a sha512 repository). A signature signs a domain-separated message,
//! so that it can never be taken for a signature over anything else:
//!
//! ```text
//! message = b"sealroot-commit-signature-v1\0" ++ commit_id (32 bytes, or 64 for sha512)
//! ```
//!
//! ([`COMMIT_SIGNATURE_DOMAIN`], [`commit_message`]). Signatures are plain ed25519 (RFC 8032);
//! they are checked with ed25519-dalek's `verify_strict`, which also refuses small-order keys
//! and non-canonical signatures.
//!
//! # Keys
//!
//! The formats are ostree's for `ostree sign --sign-type=ed25519`, so existing ostree key
//! files work unchanged:
//!
//! - a [`PublicKey`] is the base64 (standard alphabet, with `=` padding) of the 32-byte key;
//! - a [`SecretKey`] is the base64 of libsodium's 64-byte secret key: the 32-byte seed, then
//!   the 32-byte public key. A bare 32-byte seed is refused, and so is a key whose public
//!   half does not match its seed.
//!
//! A key file holds one base64 key per line; surrounding whitespace is trimmed, and blank
//! lines and lines starting with `#` are ignored ([`parse_public_keys`],
//! [`parse_secret_keys`]). A key file is at most [`MAX_KEY_FILE_SIZE`] bytes and a keyring
//! holds at most [`MAX_KEYS`] keys.
//!
//! A [`Keyring`] holds trusted and revoked public keys. [`Keyring::load`] reads one key file
//! or a directory of them (every regular file, by name, not recursively, hidden files
//! skipped): the layout of ostree's `trusted.ed25519` and `trusted.ed25519.d/`.
//!
//! # The signature file
//!
//! The signatures of a commit live in a detached text file beside it (the repository stores
//! it as `commits/HEX.sig`), read and written by [`SignatureFile`]:
//!
//! ```text
//! sealroot-signatures 1
//! commit <the commit id: 64 lower-case hex digits (sha256), or 128 (sha512)>
//! ed25519 <public key: base64, 44 characters> <signature: base64, 88 characters>
//! ed25519 ...
//! ```
//!
//! Every line, the last included, ends with `\n`; fields are separated by exactly one space.
//! Signature lines are sorted by the public key's bytes, with at most one per key. There may
//! be no signature line at all (a commit not yet signed). The encoding is canonical: the
//! parser accepts exactly what [`SignatureFile::encode`] writes, so
//! `SignatureFile::parse(x)?.encode() == x` for every accepted `x`. The parser refuses files
//! over [`MAX_SIGNATURE_FILE_SIZE`] bytes or with more than [`MAX_SIGNATURES`] signatures,
//! and any other version, line kind, bad base64, wrong length, duplicate or misordered line,
//! with an error naming the file and the line.
//!
//! Recording the commit id in the file means a valid signature copied onto another commit is
//! caught by name ([`VerifyError::WrongCommit`]) rather than as an anonymous bad signature.
//!
//! # Policy
//!
//! [`verify`] accepts a commit when at least one signature by a trusted, non-revoked key
//! verifies, and no signature by a trusted key fails to verify (that would mean the commit or
//! the signature was altered). Signatures by revoked or unknown keys are not checked; they are
//! reported in [`Verified`] or in the error.

mod key;
mod keyring;
mod signature_file;
mod verify;

use sealroot_verity::AnyDigest;

pub use key::{
    parse_public_keys, parse_secret_keys, GenerateError, KeyError, KeyKind, KeyParseError,
    PublicKey, SecretKey, MAX_KEYS, MAX_KEY_FILE_SIZE, PUBLIC_KEY_SIZE, SECRET_KEY_SIZE, SEED_SIZE,
};
pub use keyring::{Keyring, KeyringError};
pub use signature_file::{
    SignatureFile, SignatureFileError, SignatureFileProblem, TooManySignatures, MAX_SIGNATURES,
    MAX_SIGNATURE_FILE_SIZE, SIGNATURE_FILE_HEADER,
};
pub use verify::{sign, verify, Signature, Verified, VerifyError, SIGNATURE_SIZE};

/// The prefix of every signed message: names what is signed and the version of the scheme,
/// so a sealroot commit signature can never be mistaken for a signature over other data.
pub const COMMIT_SIGNATURE_DOMAIN: &[u8] = b"sealroot-commit-signature-v1\0";

/// The message a commit signature signs: [`COMMIT_SIGNATURE_DOMAIN`] then the commit id's
/// bytes: 32 for a sha256 id, 64 for a sha512 one (a sha512 repository's). The algorithm is
/// not written: the id's length says it, and a sha512 id never has a sha256 id's bytes.
pub fn commit_message(commit: &AnyDigest) -> Vec<u8> {
    let mut message = Vec::with_capacity(COMMIT_SIGNATURE_DOMAIN.len() + commit.as_bytes().len());
    message.extend_from_slice(COMMIT_SIGNATURE_DOMAIN);
    message.extend_from_slice(commit.as_bytes());
    message
}
