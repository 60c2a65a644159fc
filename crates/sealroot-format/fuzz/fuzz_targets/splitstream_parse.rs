//! Any bytes as a split stream: the readers must not panic; what `parse` and
//! `CommitStream::parse` accept must be canonical (re-encoding gives the input back), and
//! whatever `parse` accepts `references` reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot_format::splitstream::{self, CommitStream};

fuzz_target!(|data: &[u8]| {
    let refs = splitstream::references(data);
    if let Ok(s) = splitstream::parse(data) {
        assert!(
            splitstream::encode(&s).as_deref() == Ok(data),
            "accepted a non-canonical stream"
        );
        let refs = refs.expect("references refused what parse accepted");
        assert!(refs.object_refs == s.object_refs, "the two readers disagree");
    }
    if let Ok(c) = CommitStream::parse(data) {
        assert!(c.encode().as_deref() == Ok(data), "accepted a non-canonical commit stream");
    }
});
