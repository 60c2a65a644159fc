//! A hostile set of tree objects: the input is split at `\0\0` into objects, named by their
//! digests; the first two are taken as the root dirtree and dirmeta, but any object may
//! refer to any other (or to itself, or to one that does not exist). Assembling must not
//! panic or run away; a tree it gives must write an image or refuse cleanly, and split back
//! into the same root objects.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use sealroot_format::objects::{assemble, derive_image, object_id, split};

fuzz_target!(|data: &[u8]| {
    let mut objects = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(2).position(|w| w == b"\0\0") {
        objects.push(&rest[..i]);
        rest = &rest[i + 2..];
    }
    objects.push(rest);
    if objects.len() < 2 {
        return;
    }
    let store: HashMap<_, _> = objects.iter().map(|o| (object_id(o), o.to_vec())).collect();
    let (tree, meta) = (object_id(objects[0]), object_id(objects[1]));
    let mut fetch = |_, id: &_| -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        store.get(id).cloned().ok_or_else(|| "missing".into())
    };
    let Ok(t) = assemble(&tree, &meta, &mut fetch) else {
        return;
    };
    let _ = derive_image(&t, 1, None);
    if let Ok(parts) = split(&t) {
        assert!(parts.tree == tree && parts.dirmeta == meta, "split(assemble(x)) != x");
    }
});
