//! Any bytes as the inputs of fs-verity built-in signatures: a PKCS#7 signature (DER), an
//! X.509 certificate (DER and PEM) and a private key (PEM). The parsers must not panic; a
//! signature that parses must fail verification against a certificate it does not match
//! rather than panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot_trust::pkcs7;
use sealroot_verity::HashAlgorithm;

fuzz_target!(|data: &[u8]| {
    let _ = pkcs7::parse_signature(data);
    let cert = pkcs7::Certificate::from_der(data);
    let _ = pkcs7::Certificate::from_pem(data);
    let _ = pkcs7::SigningKey::from_pem(data);
    if let Ok(cert) = cert {
        let _ = pkcs7::verify_signature(&cert, HashAlgorithm::Sha256, &[0u8; 32], data);
    }
});
