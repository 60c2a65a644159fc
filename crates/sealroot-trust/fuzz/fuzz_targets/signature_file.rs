//! Signature files and key files from arbitrary bytes: the parsers never panic, and an
//! accepted signature file is canonical (it encodes back to the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot_trust::ed25519::{
    parse_public_keys, parse_secret_keys, PublicKey, SecretKey, SignatureFile,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = SignatureFile::parse(data, "fuzz") {
        let encoded = file.encode();
        assert_eq!(encoded, data, "an accepted signature file is not canonical");
        assert_eq!(SignatureFile::parse(&encoded, "fuzz").ok(), Some(file));
    }
    if let Ok(keys) = parse_public_keys(data, "fuzz") {
        for key in keys {
            assert_eq!(PublicKey::from_base64(&key.to_base64()).ok(), Some(key));
        }
    }
    if let Ok(keys) = parse_secret_keys(data, "fuzz") {
        for key in keys {
            let again = SecretKey::from_base64(&key.to_base64()).map(|k| k.public_key());
            assert_eq!(again.ok(), Some(key.public_key()));
        }
    }
});
