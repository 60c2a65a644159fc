//! [`FileIdentity`]: what identifies one state of a file.

use std::os::fd::AsFd;

use rustix::fs::Stat;
use rustix::io::Errno;

/// What identifies one state of a regular file: the `stat` fields that any change to it
/// changes (the ctime above all) or that a replacement changes (device and inode). Two equal
/// identities taken before and after reading a file mean it did not change in between; a
/// digest cache keys files by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileIdentity {
    /// The device it is on (`st_dev`).
    pub dev: u64,
    /// Its inode number (`st_ino`).
    pub ino: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time, seconds since the epoch.
    pub mtime_sec: i64,
    /// The nanoseconds of its modification time.
    pub mtime_nsec: u32,
    /// Its status change time, seconds since the epoch.
    pub ctime_sec: i64,
    /// The nanoseconds of its status change time.
    pub ctime_nsec: u32,
}

impl FileIdentity {
    /// The identity in a `stat` result.
    #[allow(clippy::unnecessary_cast)] // the field types differ between architectures
    pub fn from_stat(st: &Stat) -> Self {
        FileIdentity {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime_sec: st.st_mtime as i64,
            mtime_nsec: st.st_mtime_nsec as u32,
            ctime_sec: st.st_ctime as i64,
            ctime_nsec: st.st_ctime_nsec as u32,
        }
    }

    /// The identity of the open file `fd` now.
    pub fn of(fd: impl AsFd) -> Result<Self, Errno> {
        Ok(Self::from_stat(&rustix::fs::fstat(fd)?))
    }
}

impl From<&std::fs::Metadata> for FileIdentity {
    fn from(m: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        FileIdentity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_sec: m.mtime(),
            mtime_nsec: m.mtime_nsec() as u32,
            ctime_sec: m.ctime(),
            ctime_nsec: m.ctime_nsec() as u32,
        }
    }
}
