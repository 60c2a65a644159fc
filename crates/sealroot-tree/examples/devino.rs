//! Times builds of a directory with the digest cache: `devino DIR [STORE] [THREADS]`.
//! Builds once to fill the cache (and the store), then three times with it, and once with
//! neither digests nor payloads (the metadata walk alone), printing each time.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use sealroot_tree::{build_from_dir, BuildOptions, DigestCache, NoProgress};

fn main() {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: devino DIR [STORE] [THREADS]"));
    let store = args
        .next()
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty());
    let threads = args.next().map_or(0, |t| {
        t.to_str().and_then(|t| t.parse().ok()).expect("THREADS")
    });
    let cache = Arc::new(DigestCache::new());
    let opts = BuildOptions {
        digest_store: store,
        cache: Some(cache.clone()),
        threads,
        ..Default::default()
    };
    for round in 0..4 {
        let t = Instant::now();
        let tree = build_from_dir(&dir, &opts, &NoProgress).expect("build");
        println!(
            "{} build: {:?}, {} inodes, {} cached",
            if round == 0 { "first" } else { "cached" },
            t.elapsed(),
            tree.inodes.len(),
            cache.len()
        );
    }
    let meta = BuildOptions {
        compute_digest: false,
        by_digest: false,
        threads,
        ..Default::default()
    };
    let t = Instant::now();
    build_from_dir(&dir, &meta, &NoProgress).expect("build");
    println!("metadata only: {:?}", t.elapsed());
}
