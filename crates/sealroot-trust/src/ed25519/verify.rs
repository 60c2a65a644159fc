//! Signing a commit, and the policy that decides whether a commit's signatures are enough.

use std::fmt;

use ed25519_dalek::Signer as _;
use sealroot_verity::AnyDigest;

use super::commit_message;
use super::key::{PublicKey, SecretKey};
use super::keyring::Keyring;
use super::signature_file::SignatureFile;

/// The size of an ed25519 signature in bytes.
pub const SIGNATURE_SIZE: usize = 64;

/// One ed25519 signature over a commit, and the key that made it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature {
    /// The public key that verifies the signature.
    pub key: PublicKey,
    /// The 64-byte ed25519 signature of [`commit_message`].
    pub signature: [u8; SIGNATURE_SIZE],
}

impl Signature {
    /// Whether this is a valid signature of `commit` by [`Self::key`], checked with
    /// ed25519-dalek's `verify_strict`.
    pub fn verifies(&self, commit: &AnyDigest) -> bool {
        let Some(key) = self.key.verifying_key() else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature);
        key.verify_strict(&commit_message(commit), &signature)
            .is_ok()
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use base64ct::{Base64, Encoding as _};
        f.debug_struct("Signature")
            .field("key", &self.key)
            .field("signature", &Base64::encode_string(&self.signature))
            .finish()
    }
}

/// Signs `commit` with `secret`. ed25519 signatures are deterministic: the same key and commit
/// always give the same signature.
pub fn sign(secret: &SecretKey, commit: &AnyDigest) -> Signature {
    let signature = secret.signing_key().sign(&commit_message(commit));
    Signature {
        key: secret.public_key(),
        signature: signature.to_bytes(),
    }
}

/// A commit whose signatures satisfy the keyring.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The commit.
    pub commit: AnyDigest,
    /// The trusted keys whose signatures verified (at least one), in the file's order.
    pub keys: Vec<PublicKey>,
    /// Keys that signed but are revoked: their signatures were ignored, not checked.
    pub revoked: Vec<PublicKey>,
    /// Keys that signed but are not in the keyring: their signatures were not checked.
    pub untrusted: Vec<PublicKey>,
}

/// Why a commit's signatures are not enough.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The keyring trusts no key (or has revoked them all), so it accepts nothing.
    #[error(
        "cannot verify commit {commit}: no trusted keys (the keyring is empty, or all its keys \
         are revoked)"
    )]
    EmptyKeyring {
        /// The commit being checked.
        commit: AnyDigest,
    },
    /// The signature file names another commit: its signatures were moved onto this one, or
    /// the wrong file was read.
    #[error(
        "commit {expected}: the signature file is for commit {found}: signatures from another \
         commit do not sign this one"
    )]
    WrongCommit {
        /// The commit being checked (boxed, as the next: the error stays small).
        expected: Box<AnyDigest>,
        /// The commit the signature file names.
        found: Box<AnyDigest>,
    },
    /// The signature file holds no signature.
    #[error("commit {commit} is not signed: its signature file holds no signature")]
    NoSignatures {
        /// The commit being checked.
        commit: AnyDigest,
    },
    /// A trusted key's signature does not verify: the commit id or the signature was altered.
    #[error(
        "commit {commit}: signature by key {key} (trusted) does not verify: the commit or the \
         signature was altered"
    )]
    BadSignature {
        /// The commit being checked.
        commit: AnyDigest,
        /// The trusted key whose signature failed.
        key: PublicKey,
    },
    /// No signature is by a trusted, non-revoked key.
    #[error(
        "commit {commit} is not signed by any trusted key{}",
        describe_signers(.keys, .revoked)
    )]
    UntrustedSignatures {
        /// The commit being checked.
        commit: AnyDigest,
        /// Keys that signed but are not in the keyring.
        keys: Vec<PublicKey>,
        /// Keys that signed but are revoked.
        revoked: Vec<PublicKey>,
    },
}

fn describe_signers(untrusted: &[PublicKey], revoked: &[PublicKey]) -> String {
    fn list(keys: &[PublicKey]) -> String {
        keys.iter()
            .map(PublicKey::to_base64)
            .collect::<Vec<_>>()
            .join(", ")
    }
    let mut parts = Vec::new();
    if !untrusted.is_empty() {
        parts.push(format!("unknown keys {}", list(untrusted)));
    }
    if !revoked.is_empty() {
        parts.push(format!("revoked keys {}", list(revoked)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": signed only by {}", parts.join(" and by "))
    }
}

/// Checks `file`, the signature file read for `commit`, against `keyring`.
///
/// The commit is accepted when the file names `commit`, at least one signature is by a
/// trusted, non-revoked key and verifies, and every signature by such a key verifies (a
/// failing one means tampering, whatever else verifies). Signatures by revoked or unknown keys
/// are not checked; they are listed in the result or the error.
pub fn verify(
    keyring: &Keyring,
    commit: &AnyDigest,
    file: &SignatureFile,
) -> Result<Verified, VerifyError> {
    if keyring.is_empty() {
        return Err(VerifyError::EmptyKeyring { commit: *commit });
    }
    if file.commit() != commit {
        return Err(VerifyError::WrongCommit {
            expected: Box::new(*commit),
            found: Box::new(*file.commit()),
        });
    }
    if file.signatures().is_empty() {
        return Err(VerifyError::NoSignatures { commit: *commit });
    }
    let mut verified = Verified {
        commit: *commit,
        keys: Vec::new(),
        revoked: Vec::new(),
        untrusted: Vec::new(),
    };
    for signature in file.signatures() {
        let key = signature.key;
        if keyring.is_revoked(&key) {
            verified.revoked.push(key);
        } else if keyring.is_trusted(&key) {
            if !signature.verifies(commit) {
                return Err(VerifyError::BadSignature {
                    commit: *commit,
                    key,
                });
            }
            verified.keys.push(key);
        } else {
            verified.untrusted.push(key);
        }
    }
    if verified.keys.is_empty() {
        return Err(VerifyError::UntrustedSignatures {
            commit: *commit,
            keys: verified.untrusted,
            revoked: verified.revoked,
        });
    }
    Ok(verified)
}
