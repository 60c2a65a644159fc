//! Any bytes as the digest cache file (`REPO/cache/devino`, which a crash or a damaged disk
//! may leave in any state): `DigestCache::parse` must not panic or allocate without bound.
//! A fuzzer cannot forge the trailing checksum, so each input is also parsed with the right
//! checksum appended, which reaches the checks of the entries themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot_tree::DigestCache;

fuzz_target!(|data: &[u8]| {
    let _ = DigestCache::parse(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&sealroot_verity::sha256_digest(data).0);
    if let Ok(cache) = DigestCache::parse(&sealed) {
        // Nothing was looked up or added yet: a save keeps nothing.
        assert!(cache.is_empty());
        let mut out = Vec::new();
        cache.write(&mut out).expect("writing to memory");
        assert!(DigestCache::parse(&out).is_ok_and(|c| c.is_empty()));
    }
});
