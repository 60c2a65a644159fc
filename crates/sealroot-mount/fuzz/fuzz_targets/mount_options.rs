//! Any text as a `mount.composefs -o` option string (from a command line or an fstab line):
//! `parse_mount_options` must not panic, and what it accepts must be usable: at least one
//! base directory, none empty, and an upper directory exactly when there is a work directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot_mount::{parse_mount_options, VerityMode};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok((options, extra)) = parse_mount_options(&text) else {
        return;
    };
    assert!(!options.basedirs.is_empty(), "accepted without a basedir");
    assert!(options.basedirs.iter().all(|d| !d.as_os_str().is_empty()));
    assert_eq!(options.upperdir.is_some(), options.workdir.is_some());
    if extra.verity_implied_by_digest {
        assert!(options.expected_digest.is_some());
        assert_eq!(options.verity, VerityMode::Require);
    }
});
