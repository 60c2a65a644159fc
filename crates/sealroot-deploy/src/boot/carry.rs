//! Carrying the entries sealroot did not write from one entries directory to another, so
//! that exchanging the two directories leaves them as they were.

use std::ffi::CStr;
use std::os::fd::BorrowedFd;

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

use super::fsops::{self, Item};
use super::{BootDir, FsKind};

/// The temporary name a carried entry is made under before it is renamed over its own name
/// (neither an entry nor foreign: never carried, removed when met).
pub(crate) const CARRY_TMP: &str = "sealroot.carry";

/// What a directory being carried into is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CarryInto {
    /// The staging directory, before an exchange: a foreign directory cannot be carried, and
    /// then the exchange cannot be used.
    Staging,
    /// The live directory, just after an exchange, from the old one: puts right what changed
    /// in between. Never removes a directory; moves one that is missing.
    Live,
}

impl BootDir {
    /// Makes the foreign names of `to` those of `from`, each the same file (hard links) or
    /// the same bytes and modification time (copies, on vfat): removes from `to` what `from`
    /// lacks, carries what `to` lacks or holds otherwise. Never changes `from`, so running it
    /// again after an interruption gives the same result. Returns `false` (for
    /// [`CarryInto::Staging`]) when `from` holds a foreign directory, which cannot be carried.
    pub(crate) fn carry_foreign(
        &self,
        from: BorrowedFd<'_>,
        to: BorrowedFd<'_>,
        into: CarryInto,
    ) -> Result<bool, Errno> {
        let _ = rustix::fs::unlinkat(to, CARRY_TMP, AtFlags::empty());
        let foreign = |items: Vec<Item>| -> Vec<Item> {
            items
                .into_iter()
                .filter(|i| !BootDir::is_ours(i) && !BootDir::is_marker(i))
                .collect()
        };
        // A directory of more names than sealroot reads is refused as "too large".
        let src = foreign(fsops::list(from)?.ok_or(Errno::OVERFLOW)?);
        let dst = foreign(fsops::list(to)?.ok_or(Errno::OVERFLOW)?);
        if into == CarryInto::Staging && src.iter().any(|i| i.file_type == FileType::Directory) {
            return Ok(false);
        }
        for gone in dst.iter().filter(|d| !src.iter().any(|s| s.name == d.name)) {
            if gone.file_type == FileType::Directory {
                if into == CarryInto::Staging {
                    fsops::remove_tree(to, &gone.name, 8)?;
                }
                continue;
            }
            rustix::fs::unlinkat(to, &gone.name, AtFlags::empty())?;
        }
        for item in &src {
            if item.file_type == FileType::Directory {
                if !dst.iter().any(|d| d.name == item.name) {
                    rustix::fs::renameat(from, &item.name, to, &item.name)?;
                }
                continue;
            }
            if !self.carried_already(from, to, item)? {
                self.carry_one(from, to, &item.name)?;
            }
        }
        Ok(true)
    }

    /// Whether `to` holds `item` of `from` as it is: the same inode where there are hard
    /// links, the same bytes where there are not.
    fn carried_already(
        &self,
        from: BorrowedFd<'_>,
        to: BorrowedFd<'_>,
        item: &Item,
    ) -> Result<bool, Errno> {
        if item.file_type == FileType::RegularFile {
            return fsops::same_file(from, to, &item.name);
        }
        // A symlink, FIFO or the like (on ext4 only): carried again unless the same inode.
        let st = |dir| rustix::fs::statat(dir, &item.name, AtFlags::SYMLINK_NOFOLLOW);
        match (st(from), st(to)) {
            (Ok(a), Ok(b)) => Ok(a.st_dev == b.st_dev && a.st_ino == b.st_ino),
            (Err(e), _) => Err(e),
            (_, Err(Errno::NOENT)) => Ok(false),
            (_, Err(e)) => Err(e),
        }
    }

    /// Puts `from/NAME` at `to/NAME` (replacing what is there in one rename): a hard link on
    /// ext4, a copy on vfat.
    fn carry_one(
        &self,
        from: BorrowedFd<'_>,
        to: BorrowedFd<'_>,
        name: &CStr,
    ) -> Result<(), Errno> {
        match self.fs {
            FsKind::Ext4 => rustix::fs::linkat(from, name, to, CARRY_TMP, AtFlags::empty())?,
            FsKind::Vfat => fsops::copy_file(from, to, name, CARRY_TMP)?,
        }
        rustix::fs::renameat(to, CARRY_TMP, to, name)
    }
}
