//! The sysroot of a device: deployments of signed commits, the boot entries that name them
//! (switched in one atomic step), each deployment's `/etc` merged three ways, the shared
//! `/var`, kernel arguments, boot counting.
//!
//! | module | owns |
//! |---|---|
//! | [`bls`] | Boot Loader Specification Type 1 entries: a tolerant parser, a canonical writer, boot-counting names |
//! | [`boot`] | the boot partition: sealroot's set of entries switched in one atomic step, boot files stored once per digest |
//! | [`etc`] | the three-way merge of `/etc` |
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bls;
pub mod boot;
pub mod etc;
