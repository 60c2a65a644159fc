//! Any bytes given to the dumpfile reader, in both modes: it must not panic, and a tree it
//! accepts must print as text that reads back (in the same mode) as the same tree and prints
//! the same again, unless escaping took a line's xattrs over C's cap on xattr text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot_format::dumpfile::{self, DumpfileError, ErrorKind};

fuzz_target!(|data: &[u8]| {
    for mode in [dumpfile::ParseMode::Compat, dumpfile::ParseMode::Strict] {
        let Ok(tree) = dumpfile::parse_with(data, mode) else {
            continue;
        };
        let text = dumpfile::to_vec(&tree).expect("a parsed tree always prints");
        let again = match dumpfile::parse_with(&text, mode) {
            Ok(again) => again,
            // Escaping can make an xattr part up to four times longer than the text it was
            // read from (`\xHH` for each unprintable byte), past C's cap on the xattr text of
            // a line, which applies to the escaped text; C refuses to read back such a dump
            // of its own too.
            Err(DumpfileError::Line {
                kind: ErrorKind::TooManyXattrs { .. },
                ..
            }) => continue,
            Err(e) => panic!("printed text does not parse again: {e}"),
        };
        assert!(again == tree, "parse(write(tree)) != tree");
        let text_again = dumpfile::to_vec(&again).expect("a parsed tree always prints");
        assert!(text_again == text, "write is not stable");
        // The write-time checks must not panic either.
        let _ = dumpfile::validate(&tree);
    }
});
