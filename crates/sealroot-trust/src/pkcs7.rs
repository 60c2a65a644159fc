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
//! The issuer `Name` and the serial number are the certificate's own bytes: OpenSSL copies
//! them verbatim, and the kernel finds the signer's certificate by comparing them byte for
//! byte. Without authenticated attributes the RSA signature
//! covers `DigestInfo(md, md(formatted_digest))` directly. Because RSASSA-PKCS1-v1_5 is
//! deterministic, the whole blob is a function of key, certificate, algorithm and digest.
//!
//! # How it is built
//!
//! The structures are RustCrypto's: `cms` for `ContentInfo`/`SignedData`/`SignerInfo`,
//! `x509-cert` for the certificate, `der` for the encoding, `pem-rfc7468` for PEM bodies,
//! `pkcs1`/`pkcs8` (through `rsa`) for keys. Three small pieces are our own, each because the
//! crates differ from what OpenSSL and the kernel do:
//!
//! - finding the PEM block in a file (module `pem`): OpenSSL skips text and other blocks around
//!   the one it wants; `pem-rfc7468` reads a document that is exactly one block (and, unlike
//!   OpenSSL, wants base64 lines of 64 characters, which is what OpenSSL writes);
//! - the issuer `Name` as the certificate spells it ([`Certificate`]): `x509-cert` sorts each
//!   `SET OF` while decoding, so a certificate whose issuer is not DER would be re-encoded
//!   differently from the bytes OpenSSL copies and the kernel compares; such certificates are
//!   refused rather than signed for differently;
//! - names for the key types that are not RSA, in error messages.
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

mod error;
mod keys;
mod pem;

use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::db::{rfc5912, rfc6268, rfc8410};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode as _, Encode as _};
use rsa::Pkcs1v15Sign;
use sealroot_verity::HashAlgorithm;
use sha2::{Digest as _, Sha256, Sha512};
use x509_cert::spki::AlgorithmIdentifierOwned;

pub use error::{CertificateProblem, KeyProblem, Pkcs7Error, SignatureProblem};
pub use keys::{Certificate, SigningKey};

/// The `der` crate's error, in which DER problems are reported.
pub use der::{Error as DerError, ErrorKind as DerErrorKind};

/// `"FSVerity"`: the magic that starts every formatted digest.
pub const FORMATTED_DIGEST_MAGIC: &[u8; 8] = b"FSVerity";
/// Size of the formatted digest's header: magic, `le16` algorithm, `le16` digest size.
pub const FORMATTED_DIGEST_HEADER_SIZE: usize = 12;

/// Key and certificate files are small; anything larger than this is refused before parsing.
pub const MAX_PEM_FILE_SIZE: u64 = 1 << 20;
/// The largest RSA modulus accepted in a certificate, in bits: room for the 8192-bit keys that
/// exist in the wild, while keeping the cost of a verification bounded.
pub const MAX_RSA_BITS: usize = 16384;
/// The largest signature the kernel takes (`FS_VERITY_MAX_SIGNATURE_SIZE`: its 16 KiB
/// descriptor limit less the 256-byte descriptor); larger ones are refused before decoding.
pub const MAX_SIGNATURE_SIZE: usize = 16128;

/// The key types someone may try instead of RSA, named as `openssl` names them (const-oid's
/// names, `id-ecPublicKey` and the like, are the ASN.1 modules').
const KEY_TYPE_NAMES: &[(ObjectIdentifier, &str)] = &[
    (rfc5912::ID_EC_PUBLIC_KEY, "EC"),
    (rfc5912::ID_DSA, "DSA"),
    (rfc8410::ID_ED_25519, "Ed25519"),
    (rfc8410::ID_ED_448, "Ed448"),
];

/// An object identifier in dotted form, with its name when known.
fn describe_oid(oid: &ObjectIdentifier) -> String {
    let key_type = KEY_TYPE_NAMES
        .iter()
        .find(|(known, _)| known == oid)
        .map(|(_, name)| *name);
    match (key_type, const_oid::db::DB.by_oid(oid)) {
        (Some(key_type), Some(name)) => format!("{key_type} ({name}, {oid})"),
        (Some(name), None) | (None, Some(name)) => format!("{name} ({oid})"),
        (None, None) => format!("OID {oid}"),
    }
}

/// The OID of a digest algorithm.
fn digest_oid(algorithm: HashAlgorithm) -> ObjectIdentifier {
    match algorithm {
        HashAlgorithm::Sha256 => rfc5912::ID_SHA_256,
        HashAlgorithm::Sha512 => rfc5912::ID_SHA_512,
    }
}

/// An `AlgorithmIdentifier` with `NULL` parameters, as OpenSSL writes them.
fn algorithm_with_null(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::null()),
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
    encode_signed_data(cert, algorithm, signature).map_err(Pkcs7Error::Encode)
}

/// The `ContentInfo` of the [module documentation](self) around an RSA signature value.
fn encode_signed_data(
    cert: &Certificate,
    algorithm: HashAlgorithm,
    signature: Vec<u8>,
) -> der::Result<Vec<u8>> {
    let digest_algorithm = algorithm_with_null(digest_oid(algorithm));
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(cert.signer.clone()),
        digest_alg: digest_algorithm.clone(),
        signed_attrs: None,
        signature_algorithm: algorithm_with_null(rfc5912::RSA_ENCRYPTION),
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![digest_algorithm])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: rfc6268::ID_DATA,
            econtent: None,
        },
        certificates: None,
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer])?),
    };
    ContentInfo {
        content_type: rfc6268::ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data)?,
    }
    .to_der()
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

/// The hash algorithm of a digest `AlgorithmIdentifier` (parameters `NULL` or absent).
fn digest_algorithm(id: &AlgorithmIdentifierOwned) -> Result<HashAlgorithm, SignatureProblem> {
    let algorithm = if id.oid == rfc5912::ID_SHA_256 {
        HashAlgorithm::Sha256
    } else if id.oid == rfc5912::ID_SHA_512 {
        HashAlgorithm::Sha512
    } else {
        return Err(SignatureProblem::DigestAlgorithm(describe_oid(&id.oid)));
    };
    null_parameters(id)?;
    Ok(algorithm)
}

/// Fails unless the parameters of `id` are absent or `NULL`.
fn null_parameters(id: &AlgorithmIdentifierOwned) -> Result<(), SignatureProblem> {
    match &id.parameters {
        Some(parameters) if !parameters.is_null() => Err(SignatureProblem::AlgorithmParameters),
        _ => Ok(()),
    }
}

/// Fails unless a `SignedData` or `SignerInfo` has version 1.
fn version_1(what: &'static str, version: CmsVersion) -> Result<(), SignatureProblem> {
    if version == CmsVersion::V1 {
        Ok(())
    } else {
        Err(SignatureProblem::Version {
            what,
            found: version as u8,
        })
    }
}

/// Fails unless a `SET OF` has exactly one element.
fn exactly_one(what: &'static str, count: usize) -> Result<(), SignatureProblem> {
    if count == 1 {
        Ok(())
    } else {
        Err(SignatureProblem::Count { what, count })
    }
}

/// Parses an fs-verity signature: a DER PKCS#7 `SignedData` of exactly the shape in the
/// [module documentation](self), with one RSA signer and no certificates, CRLs or attributes.
///
/// Strict (DER only: definite shortest lengths, minimal integers, sorted sets, no trailing
/// bytes) and bounded: at most [`MAX_SIGNATURE_SIZE`] bytes, as the kernel takes, and it never
/// panics. `AlgorithmIdentifier` parameters may be `NULL` or absent.
pub fn parse_signature(der_bytes: &[u8]) -> Result<SignatureInfo, Pkcs7Error> {
    parse_signature_inner(der_bytes).map_err(Pkcs7Error::Malformed)
}

fn parse_signature_inner(input: &[u8]) -> Result<SignatureInfo, SignatureProblem> {
    if input.len() > MAX_SIGNATURE_SIZE {
        return Err(SignatureProblem::TooLarge { size: input.len() });
    }
    let content_info = ContentInfo::from_der(input)?;
    if content_info.content_type != rfc6268::ID_SIGNED_DATA {
        return Err(SignatureProblem::NotSignedData(describe_oid(
            &content_info.content_type,
        )));
    }
    let signed_data: SignedData = content_info.content.decode_as()?;
    // The decoder sorts what it reads of a SET OF; DER is what re-encodes to itself.
    if signed_data.to_der()? != content_info.content.to_der()? {
        return Err(SignatureProblem::NotDer);
    }
    version_1("SignedData", signed_data.version)?;
    exactly_one("digest algorithms", signed_data.digest_algorithms.len())?;
    let listed = digest_algorithm(&signed_data.digest_algorithms.as_slice()[0])?;
    let encapsulated = &signed_data.encap_content_info;
    if encapsulated.econtent_type != rfc6268::ID_DATA {
        return Err(SignatureProblem::NotData(describe_oid(
            &encapsulated.econtent_type,
        )));
    }
    if encapsulated.econtent.is_some() {
        return Err(SignatureProblem::EmbeddedContent);
    }
    if signed_data.certificates.is_some() {
        return Err(SignatureProblem::Certificates);
    }
    if signed_data.crls.is_some() {
        return Err(SignatureProblem::Crls);
    }
    let signers = signed_data.signer_infos.0.as_slice();
    exactly_one("signers", signers.len())?;
    read_signer(&signers[0], listed)
}

/// Checks the one `SignerInfo` of an fs-verity signature and returns what it says.
fn read_signer(
    signer: &SignerInfo,
    listed: HashAlgorithm,
) -> Result<SignatureInfo, SignatureProblem> {
    version_1("SignerInfo", signer.version)?;
    let SignerIdentifier::IssuerAndSerialNumber(issuer_and_serial) = &signer.sid else {
        return Err(SignatureProblem::SubjectKeyIdentifier);
    };
    let digest_algorithm = digest_algorithm(&signer.digest_alg)?;
    if digest_algorithm != listed {
        return Err(SignatureProblem::DigestAlgorithmMismatch {
            signer: digest_algorithm,
            listed,
        });
    }
    if signer.signed_attrs.is_some() {
        return Err(SignatureProblem::AuthenticatedAttributes);
    }
    if signer.signature_algorithm.oid != rfc5912::RSA_ENCRYPTION {
        return Err(SignatureProblem::SignatureAlgorithm(describe_oid(
            &signer.signature_algorithm.oid,
        )));
    }
    null_parameters(&signer.signature_algorithm)?;
    if signer.unsigned_attrs.is_some() {
        return Err(SignatureProblem::UnauthenticatedAttributes);
    }
    if signer.signature.as_bytes().is_empty() {
        return Err(SignatureProblem::EmptySignature);
    }
    Ok(SignatureInfo {
        issuer: issuer_and_serial.issuer.to_der()?,
        serial: issuer_and_serial.serial_number.to_der()?,
        digest_algorithm,
        signature: signer.signature.as_bytes().to_vec(),
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
    if info.issuer != cert.issuer_der || info.serial != cert.serial_der {
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
            describe_oid(&rfc5912::ID_SHA_256),
            "id-sha256 (2.16.840.1.101.3.4.2.1)"
        );
        assert_eq!(
            describe_oid(&rfc5912::ID_EC_PUBLIC_KEY),
            "EC (id-ecPublicKey, 1.2.840.10045.2.1)"
        );
        assert_eq!(
            describe_oid(&ObjectIdentifier::new_unwrap("1.3.6.1")),
            "OID 1.3.6.1"
        );
    }

    #[test]
    fn oversized_signatures_are_refused_before_decoding() {
        let err = parse_signature(&vec![0x30; MAX_SIGNATURE_SIZE + 1]).unwrap_err();
        assert!(
            matches!(
                err,
                Pkcs7Error::Malformed(SignatureProblem::TooLarge { size }) if size == MAX_SIGNATURE_SIZE + 1
            ),
            "{err}"
        );
    }
}
