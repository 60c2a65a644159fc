//! A hostile set of tree objects: the input is split at `\0\0` into objects; in each, `@N`
//! (N one decimal digit) is replaced by the hex digest of object N, so that objects refer to
//! each other (shared subtrees, self-references, hard links across directories) as a fuzzer
//! could never find by chance. @N names an earlier object only (digests cannot form a cycle),
//! so the last two objects are the root dirtree and dirmeta; the first two are diffed
//! against them. Assembling and diffing must not panic or run away; a tree assembled must write an image or refuse
//! cleanly, and split back into the same root objects. Each input is tried with sha256 ids
//! and with sha512 ids (a sha512 repository's); `@N` then stands for 64 or 128 digits.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use sealroot_format::objects::{assemble, derive_image, diff, object_id, split};
use sealroot_verity::{AnyDigest, HashAlgorithm};

fuzz_target!(|data: &[u8]| {
    for algorithm in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
        run(data, algorithm);
    }
});

fn run(data: &[u8], algorithm: HashAlgorithm) {
    let mut raw = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(2).position(|w| w == b"\0\0") {
        raw.push(&rest[..i]);
        rest = &rest[i + 2..];
    }
    raw.push(rest);
    if raw.len() < 2 || raw.len() > 10 {
        return;
    }
    let mut objects: Vec<Vec<u8>> = Vec::new();
    let mut ids: Vec<AnyDigest> = Vec::new();
    for o in &raw {
        let mut out = Vec::with_capacity(o.len());
        let mut i = 0;
        while i < o.len() {
            if o[i] == b'@' && i + 1 < o.len() && o[i + 1].is_ascii_digit() {
                let n = usize::from(o[i + 1] - b'0');
                if let Some(id) = ids.get(n) {
                    out.extend_from_slice(id.to_hex().as_bytes());
                    i += 2;
                    continue;
                }
            }
            out.push(o[i]);
            i += 1;
        }
        ids.push(object_id(&out, algorithm));
        objects.push(out);
    }
    let store: HashMap<AnyDigest, Vec<u8>> =
        ids.iter().copied().zip(objects.iter().cloned()).collect();
    let mut fetch = |_, id: &AnyDigest| -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        store.get(id).cloned().ok_or_else(|| "missing".into())
    };
    let (tree, meta) = (ids[ids.len() - 2], ids[ids.len() - 1]);
    let _ = diff((&ids[0], &ids[1]), (&tree, &meta), &mut fetch);
    let Ok(t) = assemble(&tree, &meta, &mut fetch) else {
        return;
    };
    let _ = derive_image(&t, 1, algorithm, None);
    if let Ok(parts) = split(&t, algorithm) {
        assert!(
            parts.tree == tree && parts.dirmeta == meta,
            "split(assemble(x)) != x"
        );
    }
}
