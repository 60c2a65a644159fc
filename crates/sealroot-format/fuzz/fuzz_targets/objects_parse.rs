//! Any bytes as a commit, dirtree or dirmeta object: the parsers must not panic, and what they
//! accept must be canonical (re-encoding gives the input back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot_format::objects::{Attrs, Commit, DirTree};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Commit::parse(data) {
        assert!(c.encode() == data, "accepted a non-canonical commit");
    }
    if let Ok(t) = DirTree::parse(data) {
        assert!(t.encode() == data, "accepted a non-canonical dirtree");
    }
    if let Ok(m) = Attrs::parse_dirmeta(data) {
        assert!(
            m.encode_dirmeta() == data,
            "accepted a non-canonical dirmeta"
        );
    }
});
