//! Any bytes given to the dumpfile reader, in both modes: it must not panic, and a tree it
//! accepts must print as text that reads back (in the same mode) as the same tree and prints
//! the same again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot_format::dumpfile;

fuzz_target!(|data: &[u8]| {
    for mode in [dumpfile::ParseMode::Compat, dumpfile::ParseMode::Strict] {
        let Ok(tree) = dumpfile::parse_with(data, mode) else {
            continue;
        };
        let text = dumpfile::to_vec(&tree).expect("a parsed tree always prints");
        let again = dumpfile::parse_with(&text, mode).expect("printed text parses again");
        assert!(again == tree, "parse(write(tree)) != tree");
        let text_again = dumpfile::to_vec(&again).expect("a parsed tree always prints");
        assert!(text_again == text, "write is not stable");
        // The write-time checks must not panic either.
        let _ = dumpfile::validate(&tree);
    }
});
