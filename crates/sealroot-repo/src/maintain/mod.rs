//! Maintenance on top of the read and write sides: `fsck` and `gc`.

pub(crate) mod fsck;
pub(crate) mod gc;
