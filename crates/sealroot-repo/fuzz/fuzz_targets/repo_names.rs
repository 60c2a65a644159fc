//! Any text as the names a repository reads back from its own directories and symlinks, and
//! from the command line: ref names, object, image and commit ids, object paths. The parsers
//! must not panic, and what they accept must print back as text that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot_repo::{CommitId, HashAlgorithm, ImageId, ObjectId, RefName, REF_NAME_MAX};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    if let Ok(name) = RefName::new(text) {
        assert_eq!(name.as_str(), text);
        assert!(name.as_str().len() <= REF_NAME_MAX);
        assert!(name.depth() >= 1);
        assert!(!name
            .as_str()
            .split('/')
            .any(|c| c.is_empty() || c.starts_with('.')));
        assert_eq!(name.to_string().parse::<RefName>().ok(), Some(name));
    }
    for algorithm in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
        if let Ok(id) = ObjectId::from_hex(algorithm, text) {
            assert_eq!(id.algorithm(), algorithm);
            assert_eq!(id.to_hex(), text.to_ascii_lowercase());
            assert_eq!(
                ObjectId::from_object_path(algorithm, &id.object_path()).ok(),
                Some(id)
            );
        }
        if let Ok(id) = ObjectId::from_object_path(algorithm, text) {
            assert_eq!(id.object_path(), text, "an object path in another spelling");
        }
    }
    if let Ok(id) = text.parse::<ObjectId>() {
        assert_eq!(id.to_string().parse::<ObjectId>().ok(), Some(id));
    }
    if let Ok(id) = text.parse::<ImageId>() {
        assert_eq!(id.to_string().parse::<ImageId>().ok(), Some(id));
    }
    if let Ok(id) = text.parse::<CommitId>() {
        assert_eq!(id.to_hex().parse::<CommitId>().ok(), Some(id));
    }
});
