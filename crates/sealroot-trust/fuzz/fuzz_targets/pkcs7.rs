//! Any bytes as the inputs of fs-verity built-in signatures. The input is split at the first
//! `\0\0\0\0`: the part before is read as an X.509 certificate (DER, and PEM) and a private
//! key (PEM), the part after as a PKCS#7 signature, which is then verified against the
//! certificate. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot_trust::pkcs7;
use sealroot_verity::HashAlgorithm;

fuzz_target!(|data: &[u8]| {
    let (first, second) = match data.windows(4).position(|w| w == b"\0\0\0\0") {
        Some(i) => (&data[..i], &data[i + 4..]),
        None => (data, data),
    };
    let _ = pkcs7::parse_signature(second);
    let _ = pkcs7::SigningKey::from_pem(first);
    let _ = pkcs7::Certificate::from_pem(first);
    if let Ok(cert) = pkcs7::Certificate::from_der(first) {
        for alg in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
            let _ = pkcs7::verify_signature(&cert, alg, &[0u8; 32], second);
        }
    }
});
