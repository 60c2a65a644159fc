//! Kernel fs-verity built-in signatures: PKCS#7 `SignedData` over an fs-verity digest,
//! byte-identical to what `fsverity sign` (fsverity-utils) writes.
//!
//! # What is signed
//!
//! Not the file, and not the bare digest, but [`formatted_digest`]: the 12-byte header
//! `"FSVerity"`, `le16 digest_algorithm` (the kernel's number, 1 = sha256, 2 = sha512),
//! `le16 digest_size`, followed by the digest (`struct fsverity_formatted_digest` in
//! `include/uapi/linux/fsverity.h`). The magic keeps a key that also signs other things from
//! being tricked into vouching for an fs-verity file.
//!
//! # The signature format
//!
//! `fsverity sign` calls OpenSSL's `PKCS7_sign` with
//! `PKCS7_BINARY | PKCS7_DETACHED | PKCS7_NOATTR | PKCS7_NOCERTS | PKCS7_PARTIAL`, then
//! `PKCS7_sign_add_signer(cert, key, md)` where `md` is the fs-verity hash algorithm itself
//! (sha256 or sha512, from `--hash-alg`), then `PKCS7_final`. With an RSA key, OpenSSL 3 emits
//! exactly this DER, and [`sign_digest`] emits the same bytes:
//!
//! ```text
//! ContentInfo SEQUENCE {
//!   contentType  OID 1.2.840.113549.1.7.2 (signedData)
//!   content [0] EXPLICIT SignedData SEQUENCE {
//!     version           INTEGER 1
//!     digestAlgorithms  SET { SEQUENCE { OID sha256 | sha512, NULL } }
//!     contentInfo       SEQUENCE { OID 1.2.840.113549.1.7.1 (data) }   -- detached: no content
//!     -- no [0] certificates, no [1] crls
//!     signerInfos SET {
//!       SignerInfo SEQUENCE {
//!         version                   INTEGER 1
//!         issuerAndSerialNumber     SEQUENCE { issuer Name, serialNumber INTEGER }
//!         digestAlgorithm           SEQUENCE { OID sha256 | sha512, NULL }
//!         -- no [0] authenticatedAttributes
//!         digestEncryptionAlgorithm SEQUENCE { OID 1.2.840.113549.1.1.1 (rsaEncryption), NULL }
//!         encryptedDigest           OCTET STRING  -- RSASSA-PKCS1-v1_5, modulus-sized
//!         -- no [1] unauthenticatedAttributes
//!       }
//!     }
//!   }
//! }
//! ```
//!
//! The issuer `Name` and the serial number are the certificate's own bytes, copied verbatim
//! (OpenSSL re-emits the encoding it parsed). Without authenticated attributes the RSA signature
//! covers `DigestInfo(md, md(formatted_digest))` directly. Because RSASSA-PKCS1-v1_5 is
//! deterministic, the whole blob is a function of key, certificate, algorithm and digest.
//!
//! # Key types
//!
//! Only RSA (PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1 `BEGIN RSA PRIVATE KEY` PEM, unencrypted).
//! `fsverity sign` also accepts ECDSA keys (and then writes `ecdsa-with-SHA256` with no
//! parameters), but ECDSA signatures are randomized, so no byte-identical output is possible;
//! EC keys and certificates are refused here with an error that says so. Ed25519 keys are
//! refused by `fsverity sign` itself (OpenSSL's PKCS#7 code cannot sign with them).
//!
//! # Security note
//!
//! The `rsa` crate (0.9) carries advisory RUSTSEC-2023-0071 ("Marvin": a timing side channel in
//! private-key operations, i.e. decryption and signing). Signing happens on the build host,
//! where an attacker cannot time it; verification, the only RSA operation on a device, uses the
//! public key and is not affected.

mod der;
mod pem;

use std::fmt;
use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sealroot_verity::HashAlgorithm;
use sha2::{Digest as _, Sha256, Sha512};

pub use der::{DerError, DerErrorKind};

/// `"FSVerity"`: the magic that starts every formatted digest.
pub const FORMATTED_DIGEST_MAGIC: &[u8; 8] = b"FSVerity";
/// Size of the formatted digest's header: magic, `le16` algorithm, `le16` digest size.
pub const FORMATTED_DIGEST_HEADER_SIZE: usize = 12;

/// Key and certificate files are small; anything larger than this is refused before parsing.
pub const MAX_PEM_FILE_SIZE: u64 = 1 << 20;
/// The largest RSA modulus accepted in a certificate, in bits: room for the 8192-bit keys that
/// exist in the wild, while keeping the cost of a verification bounded.
pub const MAX_RSA_BITS: usize = 16384;

/// Object identifiers as complete DER elements (tag `06`, length, contents), so they can be
/// written as they are and compared with what the reader returns.
mod oid {
    /// `1.2.840.113549.1.7.2`, PKCS#7 `signedData`.
    pub const SIGNED_DATA: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
    ];
    /// `1.2.840.113549.1.7.1`, PKCS#7 `data`.
    pub const DATA: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
    ];
    /// `2.16.840.1.101.3.4.2.1`, sha256.
    pub const SHA256: &[u8] = &[
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
    ];
    /// `2.16.840.1.101.3.4.2.3`, sha512.
    pub const SHA512: &[u8] = &[
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03,
    ];
    /// `1.2.840.113549.1.1.1`, rsaEncryption: the key type in certificates and PKCS#8, and
    /// what OpenSSL writes as the PKCS#7 `digestEncryptionAlgorithm` for RSA.
    pub const RSA_ENCRYPTION: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
}

/// Names for object identifiers that show up in error messages.
const OID_NAMES: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.1", "rsaEncryption"),
    ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption"),
    ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption"),
    ("1.2.840.113549.1.7.1", "pkcs7-data"),
    ("1.2.840.113549.1.7.2", "pkcs7-signedData"),
    ("1.2.840.10045.2.1", "EC (id-ecPublicKey)"),
    ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256"),
    ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512"),
    ("1.2.840.10040.4.1", "DSA"),
    ("1.3.101.112", "Ed25519"),
    ("1.3.101.113", "Ed448"),
    ("1.3.14.3.2.26", "sha1"),
    ("2.16.840.1.101.3.4.2.1", "sha256"),
    ("2.16.840.1.101.3.4.2.2", "sha384"),
    ("2.16.840.1.101.3.4.2.3", "sha512"),
];

/// An object identifier (contents only) in dotted form, with its name when known.
fn describe_oid(contents: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for &b in contents {
        if acc > u64::MAX >> 7 {
            return format!("an unreadable OID ({} bytes)", contents.len());
        }
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
    }
    let dotted = arcs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".");
    match OID_NAMES.iter().find(|(d, _)| *d == dotted) {
        Some((_, name)) => format!("{name} ({dotted})"),
        None => format!("OID {dotted}"),
    }
}

/// The DER `AlgorithmIdentifier` OID of a digest algorithm.
fn digest_oid(algorithm: HashAlgorithm) -> &'static [u8] {
    match algorithm {
        HashAlgorithm::Sha256 => oid::SHA256,
        HashAlgorithm::Sha512 => oid::SHA512,
    }
}

/// `md(data)` and the RSASSA-PKCS1-v1_5 padding scheme that names `md` in its `DigestInfo`.
fn hash_for_signature(algorithm: HashAlgorithm, data: &[u8]) -> (Vec<u8>, Pkcs1v15Sign) {
    match algorithm {
        HashAlgorithm::Sha256 => (Sha256::digest(data).to_vec(), Pkcs1v15Sign::new::<Sha256>()),
        HashAlgorithm::Sha512 => (Sha512::digest(data).to_vec(), Pkcs1v15Sign::new::<Sha512>()),
    }
}

/// What the kernel and `fsverity sign` actually sign: `struct fsverity_formatted_digest`,
/// i.e. `"FSVerity"`, `le16` algorithm number, `le16` digest size, then `digest`.
///
/// `digest` is taken as given; [`sign_digest`] and [`verify_signature`] check its length.
pub fn formatted_digest(algorithm: HashAlgorithm, digest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FORMATTED_DIGEST_HEADER_SIZE + digest.len());
    out.extend_from_slice(FORMATTED_DIGEST_MAGIC);
    out.extend_from_slice(&u16::from(algorithm.kernel_id()).to_le_bytes());
    // A digest that does not fit a u16 is refused by the callers that sign and verify; here
    // the field saturates rather than wrapping into a plausible-looking size.
    let size = u16::try_from(digest.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(digest);
    out
}

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
    /// Not DER, or not the expected DER structure.
    #[error("malformed DER: {0}")]
    Der(#[from] DerError),
    /// The outer content type is not `signedData`.
    #[error("content type is {0}, expected pkcs7-signedData")]
    NotSignedData(String),
    /// The encapsulated content type is not `data`.
    #[error("encapsulated content type is {0}, expected pkcs7-data")]
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

/// The name errors use for keys and certificates parsed from memory.
const IN_MEMORY: &str = "<memory>";

/// Reads a key or certificate file, refusing anything larger than [`MAX_PEM_FILE_SIZE`].
fn read_small_file(what: &'static str, path: &Path) -> Result<Vec<u8>, Pkcs7Error> {
    let read_error = |source| Pkcs7Error::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_PEM_FILE_SIZE {
        return Err(Pkcs7Error::TooLarge {
            what,
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

/// An RSA private key that signs fs-verity digests.
pub struct SigningKey {
    key: RsaPrivateKey,
    origin: String,
}

impl fmt::Debug for SigningKey {
    /// Shows where the key came from and its size, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("origin", &self.origin)
            .field("bits", &self.bits())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses an unencrypted RSA private key in PEM: PKCS#8 (`BEGIN PRIVATE KEY`, as
    /// `openssl genpkey` and `openssl req -newkey` write) or PKCS#1 (`BEGIN RSA PRIVATE KEY`, as
    /// `openssl genrsa -traditional` writes). Text around the block is ignored, like OpenSSL does.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Pkcs7Error> {
        Self::parse(IN_MEMORY, pem)
    }

    /// Reads and parses a PEM key file (see [`SigningKey::from_pem`]); errors name `path`.
    pub fn read_pem_file(path: &Path) -> Result<Self, Pkcs7Error> {
        let bytes = read_small_file("key file", path)?;
        Self::parse(&path.display().to_string(), &bytes)
    }

    /// Where the key came from: a path, or `<memory>`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.key.size() * 8
    }

    fn parse(origin: &str, pem: &[u8]) -> Result<Self, Pkcs7Error> {
        let fail = |problem| Pkcs7Error::Key {
            origin: origin.to_owned(),
            problem,
        };
        let block = pem::find(pem, |label| label.ends_with("PRIVATE KEY"))
            .ok_or(fail(KeyProblem::NoPem))?;
        if block.has_headers || block.label == "ENCRYPTED PRIVATE KEY" {
            return Err(fail(KeyProblem::Encrypted));
        }
        let der = block.der.ok_or_else(|| {
            fail(KeyProblem::BadPem {
                label: block.label.clone(),
            })
        })?;
        let key = match block.label.as_str() {
            "PRIVATE KEY" => {
                if let Some(algorithm) = pkcs8_non_rsa_algorithm(&der) {
                    return Err(fail(KeyProblem::NotRsa { algorithm }));
                }
                RsaPrivateKey::from_pkcs8_der(&der).map_err(|e| {
                    fail(KeyProblem::Malformed {
                        format: "PKCS#8",
                        reason: e.to_string(),
                    })
                })?
            }
            "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_der(&der).map_err(|e| {
                fail(KeyProblem::Malformed {
                    format: "PKCS#1",
                    reason: e.to_string(),
                })
            })?,
            other => {
                let algorithm = other.trim_end_matches("PRIVATE KEY").trim();
                return Err(fail(KeyProblem::NotRsa {
                    algorithm: if algorithm.is_empty() {
                        other.to_owned()
                    } else {
                        algorithm.to_owned()
                    },
                }));
            }
        };
        Ok(SigningKey {
            key,
            origin: origin.to_owned(),
        })
    }
}

/// The algorithm of a PKCS#8 `PrivateKeyInfo` if it is readable and not RSA. Anything
/// unreadable is left to the RSA decoder, whose message is more precise.
fn pkcs8_non_rsa_algorithm(der: &[u8]) -> Option<String> {
    let mut info = der::Reader::new(der).sequence().ok()?;
    info.integer().ok()?;
    let oid = info.sequence().ok()?.oid().ok()?;
    (oid.raw != oid::RSA_ENCRYPTION).then(|| describe_oid(oid.contents))
}

/// An X.509 certificate: what a signature names (issuer and serial number) and its RSA key.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    /// Range of the issuer `Name` element in `der`.
    issuer: std::ops::Range<usize>,
    /// Range of the serial number `INTEGER` element in `der`.
    serial: std::ops::Range<usize>,
    public_key: RsaPublicKey,
    origin: String,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("origin", &self.origin)
            .field("serial", &hex(self.serial_der()))
            .field("bits", &(self.public_key.size() * 8))
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Parses a certificate in PEM (`BEGIN CERTIFICATE`; text around it is ignored).
    pub fn from_pem(pem: &[u8]) -> Result<Self, Pkcs7Error> {
        Self::parse_pem(IN_MEMORY, pem)
    }

    /// Parses a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, Pkcs7Error> {
        Self::parse_der(IN_MEMORY, der.to_vec())
    }

    /// Reads a certificate file in PEM or DER (DER starts with a `SEQUENCE` tag, PEM never
    /// does); errors name `path`. (`fsverity sign` itself takes PEM only.)
    pub fn read_file(path: &Path) -> Result<Self, Pkcs7Error> {
        let bytes = read_small_file("certificate", path)?;
        let origin = path.display().to_string();
        if bytes.first() == Some(&der::SEQUENCE) {
            Self::parse_der(&origin, bytes)
        } else {
            Self::parse_pem(&origin, &bytes)
        }
    }

    /// Where the certificate came from: a path, or `<memory>`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The whole certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The issuer `Name`, DER, exactly as it appears in the certificate.
    pub fn issuer_der(&self) -> &[u8] {
        &self.der[self.issuer.clone()]
    }

    /// The serial number, as the complete DER `INTEGER` of the certificate.
    pub fn serial_der(&self) -> &[u8] {
        &self.der[self.serial.clone()]
    }

    /// Whether `key` is the private half of this certificate's public key.
    pub fn matches(&self, key: &SigningKey) -> bool {
        self.public_key.n() == key.key.n() && self.public_key.e() == key.key.e()
    }

    fn parse_pem(origin: &str, pem: &[u8]) -> Result<Self, Pkcs7Error> {
        let fail = |problem| Pkcs7Error::Certificate {
            origin: origin.to_owned(),
            problem,
        };
        let block = pem::find(pem, |label| {
            label == "CERTIFICATE" || label == "X509 CERTIFICATE"
        })
        .ok_or(fail(CertificateProblem::NoCertificate))?;
        let der = block.der.ok_or(fail(CertificateProblem::BadPem))?;
        Self::parse_der(origin, der)
    }

    fn parse_der(origin: &str, der: Vec<u8>) -> Result<Self, Pkcs7Error> {
        let fail = |problem| Pkcs7Error::Certificate {
            origin: origin.to_owned(),
            problem,
        };
        let parts = parse_certificate(&der).map_err(|e| fail(CertificateProblem::Der(e)))?;
        if parts.key_algorithm.raw != oid::RSA_ENCRYPTION {
            return Err(fail(CertificateProblem::NotRsa {
                algorithm: describe_oid(parts.key_algorithm.contents),
            }));
        }
        let public_key = parse_rsa_public_key(parts.key_bits)
            .map_err(|reason| fail(CertificateProblem::BadRsaKey { reason }))?;
        let range = |e: &der::Element<'_>| e.offset..e.offset + e.raw.len();
        let issuer = range(&parts.issuer);
        let serial = range(&parts.serial);
        Ok(Certificate {
            der,
            issuer,
            serial,
            public_key,
            origin: origin.to_owned(),
        })
    }
}

/// The parts of a certificate this module uses.
struct CertificateParts<'a> {
    serial: der::Element<'a>,
    issuer: der::Element<'a>,
    key_algorithm: der::Element<'a>,
    key_bits: &'a [u8],
}

/// Walks `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }` far
/// enough to find serial, issuer and subject public key. Extensions are not interpreted.
fn parse_certificate(der: &[u8]) -> Result<CertificateParts<'_>, DerError> {
    let mut top = der::Reader::new(der);
    let mut cert = top.sequence()?;
    top.finish()?;
    let mut tbs = cert.sequence()?;
    cert.sequence()?; // signatureAlgorithm
    cert.bit_string_bytes()?; // signature
    cert.finish()?;

    if let Some(version) = tbs.optional(der::CONTEXT_0)? {
        let mut v = version.reader();
        v.integer()?;
        v.finish()?;
    }
    let serial = tbs.integer()?;
    tbs.sequence()?; // signature
    let issuer = tbs.expect(der::SEQUENCE)?;
    tbs.sequence()?; // validity
    tbs.sequence()?; // subject
    let mut spki = tbs.sequence()?;
    let mut algorithm = spki.sequence()?;
    let key_algorithm = algorithm.oid()?;
    let key_bits = spki.bit_string_bytes()?.contents;
    spki.finish()?;
    Ok(CertificateParts {
        serial,
        issuer,
        key_algorithm,
        key_bits,
    })
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017).
fn parse_rsa_public_key(bits: &[u8]) -> Result<RsaPublicKey, String> {
    let mut top = der::Reader::new(bits);
    let mut key = top.sequence().map_err(|e| e.to_string())?;
    top.finish().map_err(|e| e.to_string())?;
    let n = key.integer().map_err(|e| e.to_string())?;
    let e = key.integer().map_err(|e| e.to_string())?;
    key.finish().map_err(|e| e.to_string())?;
    for (name, value) in [("modulus", &n), ("exponent", &e)] {
        if value.contents[0] & 0x80 != 0 {
            return Err(format!("negative {name}"));
        }
    }
    RsaPublicKey::new_with_max_size(
        BigUint::from_bytes_be(n.contents),
        BigUint::from_bytes_be(e.contents),
        MAX_RSA_BITS,
    )
    .map_err(|e| e.to_string())
}

/// Lower-case hex, for messages.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_digest_length(algorithm: HashAlgorithm, digest: &[u8]) -> Result<(), Pkcs7Error> {
    if digest.len() == algorithm.digest_size() {
        Ok(())
    } else {
        Err(Pkcs7Error::DigestLength {
            algorithm,
            actual: digest.len(),
            expected: algorithm.digest_size(),
        })
    }
}

/// Signs the fs-verity digest `digest` (of algorithm `algorithm`) and returns the DER PKCS#7
/// blob, byte for byte what `fsverity sign FILE OUT --key KEY --cert CERT --hash-alg ALGORITHM`
/// writes for a file with that digest (see the [module documentation](self) for the structure).
///
/// The PKCS#7 message digest is `algorithm` too, as in `fsverity sign`. Fails if the digest has
/// the wrong length or `key` does not belong to `cert`.
pub fn sign_digest(
    key: &SigningKey,
    cert: &Certificate,
    algorithm: HashAlgorithm,
    digest: &[u8],
) -> Result<Vec<u8>, Pkcs7Error> {
    check_digest_length(algorithm, digest)?;
    if !cert.matches(key) {
        return Err(Pkcs7Error::KeyMismatch {
            key: key.origin.clone(),
            certificate: cert.origin.clone(),
        });
    }
    let (hashed, scheme) = hash_for_signature(algorithm, &formatted_digest(algorithm, digest));
    let signature = key
        .key
        .sign(scheme, &hashed)
        .map_err(|e| Pkcs7Error::Sign {
            origin: key.origin.clone(),
            reason: e.to_string(),
        })?;

    use der::{constructed, element};
    let digest_algorithm = constructed(der::SEQUENCE, &[digest_oid(algorithm), &[der::NULL, 0]]);
    let signer_info = constructed(
        der::SEQUENCE,
        &[
            &[der::INTEGER, 1, 1],
            &constructed(der::SEQUENCE, &[cert.issuer_der(), cert.serial_der()]),
            &digest_algorithm,
            &constructed(der::SEQUENCE, &[oid::RSA_ENCRYPTION, &[der::NULL, 0]]),
            &element(der::OCTET_STRING, &signature),
        ],
    );
    let signed_data = constructed(
        der::SEQUENCE,
        &[
            &[der::INTEGER, 1, 1],
            &element(der::SET, &digest_algorithm),
            &element(der::SEQUENCE, oid::DATA),
            &element(der::SET, &signer_info),
        ],
    );
    Ok(constructed(
        der::SEQUENCE,
        &[oid::SIGNED_DATA, &element(der::CONTEXT_0, &signed_data)],
    ))
}

/// What an fs-verity PKCS#7 signature says: who signed, with which digest, and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignatureInfo {
    /// The signer certificate's issuer `Name`, DER.
    pub issuer: Vec<u8>,
    /// The signer certificate's serial number, the complete DER `INTEGER`.
    pub serial: Vec<u8>,
    /// The PKCS#7 message digest algorithm (which `fsverity sign` sets to the fs-verity one).
    pub digest_algorithm: HashAlgorithm,
    /// The RSASSA-PKCS1-v1_5 signature value.
    pub signature: Vec<u8>,
}

/// Reads a digest `AlgorithmIdentifier` (`SEQUENCE { OID, NULL or nothing }`).
fn read_digest_algorithm(r: &mut der::Reader<'_>) -> Result<HashAlgorithm, SignatureProblem> {
    let mut seq = r.sequence()?;
    let oid = seq.oid()?;
    let algorithm = if oid.raw == oid::SHA256 {
        HashAlgorithm::Sha256
    } else if oid.raw == oid::SHA512 {
        HashAlgorithm::Sha512
    } else {
        return Err(SignatureProblem::DigestAlgorithm(describe_oid(
            oid.contents,
        )));
    };
    read_null_parameters(seq)?;
    Ok(algorithm)
}

/// The rest of an `AlgorithmIdentifier` after its OID: nothing, or `NULL`.
fn read_null_parameters(mut seq: der::Reader<'_>) -> Result<(), SignatureProblem> {
    if !seq.is_empty() {
        if seq.peek_tag() != Some(der::NULL) {
            return Err(SignatureProblem::AlgorithmParameters);
        }
        seq.null()?;
    }
    seq.finish()?;
    Ok(())
}

/// Counts the elements of a `SET OF` (bounded by its length: every element takes two bytes).
fn count_elements(set: &der::Element<'_>) -> Result<usize, DerError> {
    let mut r = set.reader();
    let mut count = 0;
    while !r.is_empty() {
        r.any()?;
        count += 1;
    }
    Ok(count)
}

/// Parses an fs-verity signature: a DER PKCS#7 `SignedData` of exactly the shape in the
/// [module documentation](self), with one RSA signer and no certificates, CRLs or attributes.
///
/// Strict (DER only: definite shortest lengths, minimal integers, no trailing bytes) and
/// bounded: it never allocates more than the signature's own fields and never panics.
/// `AlgorithmIdentifier` parameters may be `NULL` or absent.
pub fn parse_signature(der_bytes: &[u8]) -> Result<SignatureInfo, Pkcs7Error> {
    parse_signature_inner(der_bytes).map_err(Pkcs7Error::Malformed)
}

fn parse_signature_inner(input: &[u8]) -> Result<SignatureInfo, SignatureProblem> {
    let mut top = der::Reader::new(input);
    let mut content_info = top.sequence()?;
    top.finish()?;
    let content_type = content_info.oid()?;
    if content_type.raw != oid::SIGNED_DATA {
        return Err(SignatureProblem::NotSignedData(describe_oid(
            content_type.contents,
        )));
    }
    let explicit = content_info.expect(der::CONTEXT_0)?;
    content_info.finish()?;
    let mut wrapper = explicit.reader();
    let mut signed_data = wrapper.sequence()?;
    wrapper.finish()?;

    signed_data.small_integer(1)?;
    let algorithms = signed_data.expect(der::SET)?;
    let count = count_elements(&algorithms)?;
    if count != 1 {
        return Err(SignatureProblem::Count {
            what: "digest algorithms",
            count,
        });
    }
    let listed = read_digest_algorithm(&mut algorithms.reader())?;

    let mut encapsulated = signed_data.sequence()?;
    let inner_type = encapsulated.oid()?;
    if inner_type.raw != oid::DATA {
        return Err(SignatureProblem::NotData(describe_oid(inner_type.contents)));
    }
    if !encapsulated.is_empty() {
        return Err(SignatureProblem::EmbeddedContent);
    }
    if signed_data.peek_tag() == Some(der::CONTEXT_0) {
        return Err(SignatureProblem::Certificates);
    }
    if signed_data.peek_tag() == Some(der::CONTEXT_0 | 1) {
        return Err(SignatureProblem::Crls);
    }
    let signers = signed_data.expect(der::SET)?;
    signed_data.finish()?;
    let count = count_elements(&signers)?;
    if count != 1 {
        return Err(SignatureProblem::Count {
            what: "signers",
            count,
        });
    }

    let mut signer = signers.reader().sequence()?;
    signer.small_integer(1)?;
    let mut issuer_and_serial = signer.sequence()?;
    let issuer = issuer_and_serial.expect(der::SEQUENCE)?;
    let serial = issuer_and_serial.integer()?;
    issuer_and_serial.finish()?;
    let digest_algorithm = read_digest_algorithm(&mut signer)?;
    if digest_algorithm != listed {
        return Err(SignatureProblem::DigestAlgorithmMismatch {
            signer: digest_algorithm,
            listed,
        });
    }
    if signer.peek_tag() == Some(der::CONTEXT_0) {
        return Err(SignatureProblem::AuthenticatedAttributes);
    }
    let mut signature_algorithm = signer.sequence()?;
    let oid = signature_algorithm.oid()?;
    if oid.raw != oid::RSA_ENCRYPTION {
        return Err(SignatureProblem::SignatureAlgorithm(describe_oid(
            oid.contents,
        )));
    }
    read_null_parameters(signature_algorithm)?;
    let signature = signer.expect(der::OCTET_STRING)?;
    if signer.peek_tag() == Some(der::CONTEXT_0 | 1) {
        return Err(SignatureProblem::UnauthenticatedAttributes);
    }
    signer.finish()?;
    if signature.contents.is_empty() {
        return Err(SignatureProblem::EmptySignature);
    }
    Ok(SignatureInfo {
        issuer: issuer.raw.to_vec(),
        serial: serial.raw.to_vec(),
        digest_algorithm,
        signature: signature.contents.to_vec(),
    })
}

/// Checks in userspace that `signature` (DER PKCS#7, as [`sign_digest`] or `fsverity sign`
/// writes it) is a valid signature by `cert` over the fs-verity digest `digest` of algorithm
/// `algorithm`: the check the kernel makes when the file is opened, done before asking it.
///
/// The signer must be `cert` (same issuer and serial number), and the RSA PKCS#1 v1.5 signature
/// must verify over the [`formatted_digest`] hashed with the signature's digest algorithm.
pub fn verify_signature(
    cert: &Certificate,
    algorithm: HashAlgorithm,
    digest: &[u8],
    signature: &[u8],
) -> Result<(), Pkcs7Error> {
    check_digest_length(algorithm, digest)?;
    let info = parse_signature(signature)?;
    if info.issuer != cert.issuer_der() || info.serial != cert.serial_der() {
        return Err(Pkcs7Error::SignerMismatch {
            certificate: cert.origin.clone(),
        });
    }
    let (hashed, scheme) =
        hash_for_signature(info.digest_algorithm, &formatted_digest(algorithm, digest));
    cert.public_key
        .verify(scheme, &hashed, &info.signature)
        .map_err(|_| Pkcs7Error::BadSignature {
            certificate: cert.origin.clone(),
            algorithm,
            digest: hex(digest),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_digest_layout() {
        let d = formatted_digest(HashAlgorithm::Sha512, &[0xab; 64]);
        assert_eq!(&d[..8], b"FSVerity");
        assert_eq!(&d[8..12], &[2, 0, 64, 0]);
        assert_eq!(d.len(), FORMATTED_DIGEST_HEADER_SIZE + 64);
        let d = formatted_digest(HashAlgorithm::Sha256, &[0; 32]);
        assert_eq!(&d[8..12], &[1, 0, 32, 0]);
    }

    #[test]
    fn oids_are_described() {
        assert_eq!(
            describe_oid(&oid::SHA256[2..]),
            "sha256 (2.16.840.1.101.3.4.2.1)"
        );
        assert_eq!(
            describe_oid(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]),
            "EC (id-ecPublicKey) (1.2.840.10045.2.1)"
        );
        assert_eq!(describe_oid(&[0x2b, 0x06, 0x01]), "OID 1.3.6.1");
        // Overlong arcs do not overflow.
        assert!(describe_oid(&[0xff; 40]).starts_with("an unreadable OID"));
    }
}
