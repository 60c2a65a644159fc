//! Any bytes given to `build_from_tar` (after a first byte that picks the options): it must
//! not panic, and a tree it accepts must be one the image writer takes.
//!
//! Run with `scripts/fuzz.sh 600 tar_read`; `corpus/tar_read` starts from small archives of
//! every format and compression (each behind its options byte), and some that reach the rules
//! on whiteouts, replaced directories and device numbers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot_format::erofs::{self, WriteOptions};
use sealroot_tree::tar::{build_from_tar, HashOnly, TarOptions, Whiteouts};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, archive)) = data.split_first() else {
        return;
    };
    let opts = TarOptions {
        hardlinks: choice & 1 != 0,
        whiteouts: match (choice >> 1) & 3 {
            0 => Whiteouts::Apply,
            1 => Whiteouts::Overlay,
            _ => Whiteouts::Keep,
        },
        strip_leading_slash: choice & 8 != 0,
        no_inline: choice & 16 != 0,
        user_xattrs: choice & 32 != 0,
        skip_devices: choice & 64 != 0,
        use_epoch: choice & 128 != 0,
        // On the calling thread: deterministic, and no thread start per input.
        threads: 1,
        ..TarOptions::default()
    };
    if let Ok(tree) = build_from_tar(archive, &opts, &HashOnly::default()) {
        if let Err(e) = erofs::write(&tree, &WriteOptions::default()) {
            panic!("an accepted archive gives a tree the writer refuses: {e}");
        }
    }
});
