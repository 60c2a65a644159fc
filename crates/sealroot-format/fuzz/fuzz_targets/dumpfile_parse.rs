//! Any bytes given to the dumpfile reader: it must not panic, and a tree it accepts must
//! print as text that reads back as the same tree and prints the same again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot_format::dumpfile;

fuzz_target!(|data: &[u8]| {
    for strict in [false, true] {
        let options = dumpfile::ParseOptions { strict };
        let Ok(tree) = dumpfile::parse_with(data, &options) else {
            continue;
        };
        let text = dumpfile::to_vec(&tree).expect("a parsed tree always prints");
        let again = dumpfile::parse_strict(&text).expect("printed text always parses strictly");
        assert!(again == tree, "parse(write(tree)) != tree");
        let text_again = dumpfile::to_vec(&again).expect("a parsed tree always prints");
        assert!(text_again == text, "write is not stable");
        // The write-time checks must not panic either.
        let _ = dumpfile::validate(&tree);
    }
});
