//! The signer's RSA private key and X.509 certificate, read from PEM or DER files.

use std::fmt;
use std::path::Path;

use cms::cert::IssuerAndSerialNumber;
use const_oid::db::rfc5912;
use der::asn1::AnyRef;
use der::{Decode as _, Encode as _, Reader as _, SliceReader, Tag, TagNumber};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::PrivateKeyInfo;
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};

use crate::bounded::{read_bounded, ReadError};

use super::{
    describe_oid, hex, pem, CertificateProblem, KeyProblem, Pkcs7Error, MAX_PEM_FILE_SIZE,
    MAX_RSA_BITS,
};

/// The name errors use for keys and certificates parsed from memory.
const IN_MEMORY: &str = "<memory>";

/// Reads a key or certificate file, refusing anything larger than [`MAX_PEM_FILE_SIZE`].
fn read_small_file(what: &'static str, path: &Path) -> Result<Vec<u8>, Pkcs7Error> {
    read_bounded(path, MAX_PEM_FILE_SIZE).map_err(|e| match e {
        ReadError::Io(source) => Pkcs7Error::Read {
            what,
            path: path.to_owned(),
            source,
        },
        ReadError::TooLarge(_) => Pkcs7Error::TooLarge {
            what,
            path: path.to_owned(),
        },
    })
}

/// An RSA private key that signs fs-verity digests.
pub struct SigningKey {
    pub(super) key: RsaPrivateKey,
    pub(super) origin: String,
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
        // OpenSSL writes RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`) for encrypted
        // "traditional" keys; RFC 7468 has no headers, so pem-rfc7468 names them.
        if block.label == "ENCRYPTED PRIVATE KEY"
            || block.der.as_ref().err() == Some(&pem_rfc7468::Error::HeaderDisallowed)
        {
            return Err(fail(KeyProblem::Encrypted));
        }
        let der = block.der.map_err(|_| {
            fail(KeyProblem::BadPem {
                label: block.label.to_owned(),
            })
        })?;
        let key = match block.label {
            "PRIVATE KEY" => parse_pkcs8(&der).map_err(fail)?,
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

/// A PKCS#8 `PrivateKeyInfo` that must hold an RSA key. The algorithm is checked here rather
/// than by `rsa`, whose error names the algorithm it expected, not the one it found.
fn parse_pkcs8(der: &[u8]) -> Result<RsaPrivateKey, KeyProblem> {
    let malformed = |reason: String| KeyProblem::Malformed {
        format: "PKCS#8",
        reason,
    };
    let info = PrivateKeyInfo::from_der(der).map_err(|e| malformed(e.to_string()))?;
    if info.algorithm.oid != rfc5912::RSA_ENCRYPTION {
        return Err(KeyProblem::NotRsa {
            algorithm: describe_oid(&info.algorithm.oid),
        });
    }
    RsaPrivateKey::try_from(info).map_err(|e| malformed(e.to_string()))
}

/// An X.509 certificate: what a signature names (issuer and serial number) and its RSA key.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    /// The issuer and serial number, as a signature names the certificate.
    pub(super) signer: IssuerAndSerialNumber,
    /// The issuer `Name`, DER: the certificate's own bytes.
    pub(super) issuer_der: Vec<u8>,
    /// The serial number `INTEGER`, DER: the certificate's own bytes.
    pub(super) serial_der: Vec<u8>,
    pub(super) public_key: RsaPublicKey,
    pub(super) origin: String,
}

impl fmt::Debug for Certificate {
    /// Shows where the certificate came from, its serial number and its key size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Certificate {{ origin: {:?}, serial: {}, bits: {}, .. }}",
            self.origin,
            hex(&self.serial_der),
            self.public_key.size() * 8
        )
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
        if bytes.first() == Some(&Tag::Sequence.into()) {
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
        &self.issuer_der
    }

    /// The serial number, as the complete DER `INTEGER` of the certificate.
    pub fn serial_der(&self) -> &[u8] {
        &self.serial_der
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
        let der = block.der.map_err(|_| fail(CertificateProblem::BadPem))?;
        Self::parse_der(origin, der.to_vec())
    }

    fn parse_der(origin: &str, der: Vec<u8>) -> Result<Self, Pkcs7Error> {
        let fail = |problem| Pkcs7Error::Certificate {
            origin: origin.to_owned(),
            problem,
        };
        let certificate =
            x509_cert::Certificate::from_der(&der).map_err(|e| fail(CertificateProblem::Der(e)))?;
        let tbs = certificate.tbs_certificate;
        let key_info = &tbs.subject_public_key_info;
        if key_info.algorithm.oid != rfc5912::RSA_ENCRYPTION {
            return Err(fail(CertificateProblem::NotRsa {
                algorithm: describe_oid(&key_info.algorithm.oid),
            }));
        }
        let public_key = key_info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| "a BIT STRING with unused bits".to_owned())
            .and_then(parse_rsa_public_key)
            .map_err(|reason| fail(CertificateProblem::BadRsaKey { reason }))?;
        let der_error = |e| fail(CertificateProblem::Der(e));
        let issuer_der = tbs.issuer.to_der().map_err(der_error)?;
        if issuer_as_written(&der).map_err(der_error)? != issuer_der {
            return Err(fail(CertificateProblem::NonDerIssuer));
        }
        let serial_der = tbs.serial_number.to_der().map_err(der_error)?;
        Ok(Certificate {
            der,
            signer: IssuerAndSerialNumber {
                issuer: tbs.issuer,
                serial_number: tbs.serial_number,
            },
            issuer_der,
            serial_der,
            public_key,
            origin: origin.to_owned(),
        })
    }
}

/// The issuer `Name` of a certificate (already decoded by `x509-cert`) as the certificate
/// spells it: `Certificate { TBSCertificate { [0] version OPTIONAL, serialNumber, signature,
/// issuer, .. }, .. }`. `x509-cert` sorts each `SET OF` as it decodes, so its `Name`
/// re-encodes to these bytes only if they are DER.
fn issuer_as_written(certificate: &[u8]) -> der::Result<Vec<u8>> {
    const VERSION: Tag = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber::N0,
    };
    let certificate = AnyRef::from_der(certificate)?;
    let tbs: AnyRef<'_> = SliceReader::new(certificate.value())?.decode()?;
    let mut fields = SliceReader::new(tbs.value())?;
    if fields.peek_tag()? == VERSION {
        fields.decode::<AnyRef<'_>>()?;
    }
    fields.decode::<AnyRef<'_>>()?; // serialNumber
    fields.decode::<AnyRef<'_>>()?; // signature
    fields.decode::<AnyRef<'_>>()?.to_der() // issuer
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017), up to
/// [`MAX_RSA_BITS`] (`rsa`'s own decoder stops at 4096).
fn parse_rsa_public_key(bits: &[u8]) -> Result<RsaPublicKey, String> {
    let key = rsa::pkcs1::RsaPublicKey::from_der(bits).map_err(|e| e.to_string())?;
    RsaPublicKey::new_with_max_size(
        BigUint::from_bytes_be(key.modulus.as_bytes()),
        BigUint::from_bytes_be(key.public_exponent.as_bytes()),
        MAX_RSA_BITS,
    )
    .map_err(|e| e.to_string())
}
