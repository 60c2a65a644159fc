//! Why reading keys and certificates, signing or verifying failed.

use std::path::PathBuf;

use sealroot_verity::HashAlgorithm;

use super::{DerError, MAX_PEM_FILE_SIZE, MAX_SIGNATURE_SIZE};

/// Why a private key file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProblem {
    /// No `-----BEGIN ... PRIVATE KEY-----` block.
    #[error("no PEM private key found (expected BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)")]
    NoPem,
    /// The PEM body is not base64, or the block is not terminated.
    #[error("the PEM block {label:?} is not valid base64 or has no END line")]
    BadPem {
        /// The block's label.
        label: String,
    },
    /// The key is encrypted (PKCS#8 `ENCRYPTED PRIVATE KEY` or a `Proc-Type` header).
    #[error("encrypted private keys are not supported; decrypt it first (openssl pkey -in KEY -out PLAIN)")]
    Encrypted,
    /// The key is not an RSA key.
    #[error("not an RSA private key: it is {algorithm}; only RSA keys give byte-identical fs-verity signatures")]
    NotRsa {
        /// What the key is instead.
        algorithm: String,
    },
    /// The DER inside the PEM block is not a valid key of the announced format.
    #[error("malformed {format} RSA private key: {reason}")]
    Malformed {
        /// `PKCS#8` or `PKCS#1`.
        format: &'static str,
        /// What the decoder said.
        reason: String,
    },
}

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateProblem {
    /// Neither DER nor a `-----BEGIN CERTIFICATE-----` block.
    #[error("not an X.509 certificate: no PEM CERTIFICATE block and not DER")]
    NoCertificate,
    /// The PEM body is not base64, or the block is not terminated.
    #[error("the PEM CERTIFICATE block is not valid base64 or has no END line")]
    BadPem,
    /// The DER structure is not a certificate.
    #[error("malformed X.509 DER: {0}")]
    Der(DerError),
    /// The subject public key is not RSA.
    #[error("the public key is {algorithm}, not RSA; only RSA keys give byte-identical fs-verity signatures")]
    NotRsa {
        /// What the key is instead.
        algorithm: String,
    },
    /// The issuer `Name` is not DER (the elements of a `SET` out of order): `fsverity sign`
    /// copies it as it is and the kernel compares it byte for byte, while the DER encoder
    /// here would sort it, so no matching signature can be made.
    #[error("the issuer name is not DER (a SET out of order); re-issue the certificate")]
    NonDerIssuer,
    /// The RSA public key is malformed, too large or otherwise unusable.
    #[error("unusable RSA public key: {reason}")]
    BadRsaKey {
        /// Why.
        reason: String,
    },
}

/// Why a PKCS#7 blob is not an fs-verity signature this module understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureProblem {
    /// Larger than [`MAX_SIGNATURE_SIZE`], which the kernel refuses.
    #[error("{size} bytes, more than the {MAX_SIGNATURE_SIZE} the kernel accepts")]
    TooLarge {
        /// The signature's size.
        size: usize,
    },
    /// Not DER, or not the expected DER structure.
    #[error("malformed DER: {0}")]
    Der(#[from] DerError),
    /// Valid BER, but not in its distinguished encoding (a `SET` out of order).
    #[error("not DER: the signature does not re-encode to its own bytes")]
    NotDer,
    /// A `SignedData` or `SignerInfo` version other than 1.
    #[error("{what} version {found}, expected 1")]
    Version {
        /// `SignedData` or `SignerInfo`.
        what: &'static str,
        /// The version found.
        found: u8,
    },
    /// The signer is named by its subject key identifier, not by issuer and serial number.
    #[error("the signer is named by subject key identifier; fs-verity signatures name issuer and serial number")]
    SubjectKeyIdentifier,
    /// The outer content type is not `signedData`.
    #[error("content type is {0}, expected id-signedData")]
    NotSignedData(String),
    /// The encapsulated content type is not `data`.
    #[error("encapsulated content type is {0}, expected id-data")]
    NotData(String),
    /// The content is embedded: fs-verity signatures are detached.
    #[error("the signature embeds its content; fs-verity signatures are detached")]
    EmbeddedContent,
    /// Certificates are embedded (`fsverity sign` never embeds them).
    #[error("the signature embeds certificates; fs-verity signatures carry none")]
    Certificates,
    /// CRLs are embedded.
    #[error("the signature embeds CRLs; fs-verity signatures carry none")]
    Crls,
    /// Not exactly one digest algorithm, or not exactly one signer.
    #[error("{count} {what}, expected exactly one")]
    Count {
        /// `digest algorithms` or `signers`.
        what: &'static str,
        /// How many there are.
        count: usize,
    },
    /// A digest algorithm other than sha256 and sha512.
    #[error("digest algorithm {0} is not supported (sha256 or sha512 only)")]
    DigestAlgorithm(String),
    /// The signer's digest algorithm differs from the one listed in `digestAlgorithms`.
    #[error("the signer uses {signer}, the signature lists {listed}")]
    DigestAlgorithmMismatch {
        /// The signer's algorithm.
        signer: HashAlgorithm,
        /// The listed algorithm.
        listed: HashAlgorithm,
    },
    /// Authenticated attributes are present (`fsverity sign` never writes them).
    #[error("the signer has authenticated attributes; fs-verity signatures carry none")]
    AuthenticatedAttributes,
    /// Unauthenticated attributes are present.
    #[error("the signer has unauthenticated attributes; fs-verity signatures carry none")]
    UnauthenticatedAttributes,
    /// A signature algorithm other than RSA PKCS#1 v1.5.
    #[error("signature algorithm {0} is not supported (rsaEncryption only)")]
    SignatureAlgorithm(String),
    /// The algorithm parameters are neither absent nor `NULL`.
    #[error("algorithm parameters other than NULL")]
    AlgorithmParameters,
    /// The signature value is empty.
    #[error("the signature value is empty")]
    EmptySignature,
}

/// Everything that can go wrong reading keys and certificates, signing and verifying.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs7Error {
    /// A key or certificate file could not be read.
    #[error("{what} {path}: {source}")]
    Read {
        /// `key file` or `certificate`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key or certificate file is larger than [`MAX_PEM_FILE_SIZE`].
    #[error("{what} {path}: larger than {MAX_PEM_FILE_SIZE} bytes, not a key or certificate")]
    TooLarge {
        /// `key file` or `certificate`.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A private key was refused.
    #[error("key file {origin}: {problem}")]
    Key {
        /// The file (or `<memory>`).
        origin: String,
        /// Why.
        problem: KeyProblem,
    },
    /// A certificate was refused.
    #[error("certificate {origin}: {problem}")]
    Certificate {
        /// The file (or `<memory>`).
        origin: String,
        /// Why.
        problem: CertificateProblem,
    },
    /// The private key does not belong to the certificate.
    #[error(
        "key file {key} does not belong to certificate {certificate}: their public keys differ"
    )]
    KeyMismatch {
        /// Where the key came from.
        key: String,
        /// Where the certificate came from.
        certificate: String,
    },
    /// The digest does not have the algorithm's size.
    #[error("{algorithm} digest is {actual} bytes, expected {expected}")]
    DigestLength {
        /// The algorithm.
        algorithm: HashAlgorithm,
        /// The digest's length.
        actual: usize,
        /// The algorithm's digest size.
        expected: usize,
    },
    /// The signature could not be encoded (a DER length overflow: never with real keys).
    #[error("encoding the fs-verity signature: {0}")]
    Encode(#[source] DerError),
    /// The RSA signing operation failed.
    #[error("signing with key file {origin}: {reason}")]
    Sign {
        /// Where the key came from.
        origin: String,
        /// What the RSA implementation said.
        reason: String,
    },
    /// The PKCS#7 blob is malformed or not of the fs-verity shape.
    #[error("fs-verity signature: {0}")]
    Malformed(#[from] SignatureProblem),
    /// The signature names another certificate (issuer and serial number differ).
    #[error("fs-verity signature was made for another certificate than {certificate} (issuer or serial number differ)")]
    SignerMismatch {
        /// Where the certificate came from.
        certificate: String,
    },
    /// The RSA signature does not verify.
    #[error("fs-verity signature does not verify with certificate {certificate} for {algorithm}:{digest}")]
    BadSignature {
        /// Where the certificate came from.
        certificate: String,
        /// The fs-verity algorithm.
        algorithm: HashAlgorithm,
        /// The fs-verity digest, hex.
        digest: String,
    },
}
