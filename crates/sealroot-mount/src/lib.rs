//! Mounting composefs images.
#![forbid(unsafe_code)]
