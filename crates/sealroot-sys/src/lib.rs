//! The only crate of sealroot with `unsafe` code: the fs-verity ioctls, the parts of the
//! mount API that rustix does not wrap (`mount_setattr` for id-mapped mounts, and the nsfs ioctl
//! that tells a user namespace file from others), and the CPU intrinsics of the two-stream
//! SHA-256 compression that fs-verity hashing uses. Each `unsafe` block carries a `// SAFETY:`
//! comment.
#![deny(unsafe_op_in_unsafe_fn)]
pub mod fsverity;
pub mod mount;
pub mod namespace;
pub mod sha256x2;
