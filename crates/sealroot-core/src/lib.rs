//! sealroot's verbs as library functions: everything a command does besides parsing its
//! arguments, drawing progress and printing. The `sealroot` binary, deployments and the
//! initramfs's `prepare-root` call the same functions (gitoxide's `gitoxide-core` is the
//! model).
//!
//! | module | verbs |
//! |---|---|
//! | [`commit`] | a directory or archive → file objects → tree objects → image → commit → ref, with the digest cache and a compare-and-swap of the ref |
//! | [`verify`] | a commit's signatures against a keyring, and its image re-created from the tree objects; the image's kernel signature |
//! | [`sign`] | ed25519 signatures added to a commit (merged under the commit's lock); the image's kernel signature |
//! | [`mount`] | a ref or image mounted, optionally only if its commit is signed by a trusted key |
//! | [`derive`](mod@derive) | a commit's image re-created from its tree objects, stored or written to a file |
//! | [`browse`] | paths looked up in an image, files read with their object checked |
//! | [`keys`] | ed25519 key pairs made and read |
//! | [`files`] | a file written whole or not at all |
//!
//! Each verb has its own error type naming what failed; none prints.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod browse;
#[cfg(feature = "write")]
pub mod commit;
#[cfg(feature = "write")]
pub mod derive;
pub mod files;
#[cfg(feature = "write")]
pub mod keys;
pub mod mount;
mod resolve;
#[cfg(feature = "write")]
pub mod sign;
pub mod verify;

pub use resolve::ResolveError;
