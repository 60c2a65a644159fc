//! The composefs image format: an EROFS writer byte-identical to C `mkcomposefs`, a strict
//! reader for untrusted images, and the composefs dumpfile format. Pure: no syscalls.
#![forbid(unsafe_code)]
