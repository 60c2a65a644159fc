//! The write side: transactions and what they add (objects, images, commits, refs,
//! signatures), the locks, and crash recovery. `fsck` and `gc` stand on it.

mod commits;
mod images;
pub(crate) mod init;
pub(crate) mod lock;
mod objects;
pub(crate) mod recovery;
mod refs;
mod signatures;
mod streams;
mod transaction;

pub use commits::{CommitOptions, NewCommit, OnRefMoved, WriteCommitError};
pub use recovery::{RecoveryReport, Unfinished, UnfinishedTransaction};
pub use refs::Expect;
pub use transaction::{Transaction, TransactionStats};
