//! Any bytes as a repository's `meta.json` (which a `cfsctl` or a damaged disk may have
//! written): `Config::parse` must not panic, and what it accepts must be a configuration this
//! code can work with: a known algorithm, a sealroot format no newer than this code's, and
//! fs-verity required whenever the file itself has it (as `cfsctl` decides).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sealroot_repo::{Config, SEALROOT_FORMAT};

fuzz_target!(|data: &[u8]| {
    for file_has_verity in [false, true] {
        let Ok(config) = Config::parse(data, Path::new("meta.json"), file_has_verity) else {
            continue;
        };
        assert!(
            config.algorithm_id().starts_with("fsverity-"),
            "accepted algorithm {}",
            config.algorithm_id()
        );
        assert!(config.sealroot_format.is_none_or(|f| f <= SEALROOT_FORMAT));
        assert_eq!(
            config.verity_at_init.is_some(),
            config.sealroot_format.is_some()
        );
        if file_has_verity {
            assert!(
                config.require_verity,
                "a verity meta.json must require verity"
            );
        }
    }
});
