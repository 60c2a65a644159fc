//! The only crate of sealroot with `unsafe` code: the fs-verity ioctls and the parts of the
//! mount API that rustix does not wrap. Each `unsafe` block carries a `// SAFETY:` comment.
#![deny(unsafe_op_in_unsafe_fn)]
pub mod fsverity;
