//! Reading the extended attributes of a file, with the limits C composefs applies.

use std::os::fd::BorrowedFd;

use rustix::io::Errno;
use sealroot_format::Xattr;

/// C composefs's xattr limits: `XATTR_NAME_MAX` (255) for names, 65535 bytes for values (the
/// image keeps their sizes in 16 bits), and per inode `LCFS_INODE_EXTERNAL_XATTR_MAX`
/// (32767) of space as C `lcfs_node_set_xattr` counts it: `LCFS_XATTR_HEADER_SIZE` (12) for
/// an inode with any xattrs, and per xattr its name, its value and `2 * 4 - 1` for the entry
/// header and the worst alignment.
pub(crate) use sealroot_format::dumpfile::limits::{
    XATTR_BUDGET_MAX, XATTR_ENTRY_COST, XATTR_HEADER_COST, XATTR_NAME_MAX, XATTR_VALUE_MAX,
};
/// The largest buffer `listxattr` and `getxattr` can need on Linux (`XATTR_LIST_MAX` and
/// `XATTR_SIZE_MAX`); starting there means one call almost always does.
const XATTR_BUF_SIZE: usize = 64 * 1024;

/// Which file to read the xattrs of.
pub(crate) enum Target<'a> {
    /// An open file (not an `O_PATH` one).
    Fd(BorrowedFd<'a>),
    /// A path whose last component is not followed: `/proc/self/fd/DIRFD/NAME`, which reaches
    /// a symlink, device, fifo or socket without opening it, as C composefs does.
    Path(&'a [u8]),
}

/// Why the xattrs could not be read.
pub(crate) enum XattrError {
    /// A system call failed.
    Io(Errno),
    /// An attribute composefs cannot hold.
    TooLarge { name: Vec<u8>, reason: &'static str },
}

impl XattrError {
    /// The build error for this failure on file `path`.
    pub(crate) fn into_build_error(self, path: std::path::PathBuf) -> crate::BuildError {
        match self {
            XattrError::Io(e) => crate::BuildError::io(crate::Operation::ReadXattrs, path, e),
            XattrError::TooLarge { name, reason } => {
                crate::BuildError::XattrTooLarge { path, name, reason }
            }
        }
    }
}

impl From<Errno> for XattrError {
    fn from(e: Errno) -> Self {
        XattrError::Io(e)
    }
}

/// Reads xattrs with buffers reused from one file to the next.
pub(crate) struct XattrReader {
    user_only: bool,
    list: Vec<u8>,
    value: Vec<u8>,
}

impl XattrReader {
    /// A reader that keeps every xattr, or with `user_only` only `user.*` ones.
    pub(crate) fn new(user_only: bool) -> Self {
        XattrReader {
            user_only,
            list: vec![0; XATTR_BUF_SIZE],
            value: vec![0; XATTR_BUF_SIZE],
        }
    }

    /// The xattrs of `target`, in the order the filesystem lists them.
    pub(crate) fn read(&mut self, target: &Target<'_>) -> Result<Vec<Xattr>, XattrError> {
        let len = loop {
            let r = match target {
                Target::Fd(fd) => rustix::fs::flistxattr(fd, &mut self.list[..]),
                Target::Path(p) => rustix::fs::llistxattr(*p, &mut self.list[..]),
            };
            match r {
                Ok(n) => break n,
                Err(Errno::RANGE) => {
                    let need = match target {
                        Target::Fd(fd) => rustix::fs::flistxattr_query(fd)?,
                        Target::Path(p) => rustix::fs::llistxattr_query(*p)?,
                    };
                    self.list.resize(need.max(2 * self.list.len()), 0);
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        };
        if len == 0 {
            return Ok(Vec::new());
        }

        let mut out = Vec::new();
        let mut space = XATTR_HEADER_COST;
        let list = std::mem::take(&mut self.list);
        let result = (|| {
            for name in list[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
                if self.user_only && !name.starts_with(b"user.") {
                    continue;
                }
                let value = self.value_of(target, name)?;
                check_limits(name, value.len(), &mut space)?;
                out.push(Xattr {
                    name: name.to_vec(),
                    value,
                });
            }
            Ok(())
        })();
        self.list = list;
        result.map(|()| out)
    }

    /// The value of xattr `name` of `target`.
    fn value_of(&mut self, target: &Target<'_>, name: &[u8]) -> Result<Vec<u8>, XattrError> {
        loop {
            let r = match target {
                Target::Fd(fd) => rustix::fs::fgetxattr(fd, name, &mut self.value[..]),
                Target::Path(p) => rustix::fs::lgetxattr(*p, name, &mut self.value[..]),
            };
            match r {
                Ok(n) => return Ok(self.value[..n].to_vec()),
                Err(Errno::RANGE) => {
                    let need = match target {
                        Target::Fd(fd) => rustix::fs::fgetxattr_query(fd, name)?,
                        Target::Path(p) => rustix::fs::lgetxattr_query(*p, name)?,
                    };
                    self.value.resize(need.max(2 * self.value.len()), 0);
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Applies C `lcfs_node_set_xattr`'s limits to one more xattr, `space` being what the
/// previous ones used (starting at [`XATTR_HEADER_COST`]).
pub(crate) fn check_limits(
    name: &[u8],
    value_len: usize,
    space: &mut u64,
) -> Result<(), XattrError> {
    let too_large = |reason| {
        Err(XattrError::TooLarge {
            name: name.to_vec(),
            reason,
        })
    };
    if name.len() > XATTR_NAME_MAX {
        return too_large("name longer than 255 bytes");
    }
    if value_len > XATTR_VALUE_MAX {
        return too_large("value longer than 65535 bytes");
    }
    *space += XATTR_ENTRY_COST + (name.len() + value_len) as u64;
    if *space > XATTR_BUDGET_MAX {
        return too_large("all xattrs of the file together exceed 32767 bytes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_c() {
        let mut space = XATTR_HEADER_COST;
        assert!(check_limits(b"user.a", 100, &mut space).is_ok());
        assert_eq!(space, 12 + 7 + 6 + 100);
        assert!(check_limits(&[b'a'; 256], 0, &mut 0).is_err());
        assert!(check_limits(&[b'a'; 255], 0, &mut 0).is_ok());
        assert!(check_limits(b"user.a", 65536, &mut 0).is_err());
        // One xattr filling the space exactly is accepted, one byte more is not.
        let fits = (32767 - 12 - 7 - 6) as usize;
        let mut space = XATTR_HEADER_COST;
        assert!(check_limits(b"user.a", fits, &mut space).is_ok());
        let mut space = XATTR_HEADER_COST;
        assert!(check_limits(b"user.a", fits + 1, &mut space).is_err());
    }
}
