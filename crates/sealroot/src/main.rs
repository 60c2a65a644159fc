//! The `sealroot` command line.
#![forbid(unsafe_code)]

fn main() {}
