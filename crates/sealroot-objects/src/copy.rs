//! Filling a new object: [`copy`] from an open file and [`write_all`] from memory. The
//! per-thread buffer a copy by hand goes through is sealroot-verity's [`with_buffer`] (the one
//! hashing reads into), re-exported here.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::Errno;
pub use sealroot_verity::{with_buffer, BUFFER_SIZE};

/// The most `copy_file_range` is asked to copy at once.
const COPY_CHUNK: u64 = 1 << 30;

/// Writes all of `data` to `fd` at its current position.
pub fn write_all(fd: impl AsFd, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match rustix::io::write(&fd, data) {
            Ok(0) => return Err(Errno::NOSPC),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Remembers that `copy_file_range` is missing, or cannot copy from the sources' filesystem
/// to the store's (`ENOSYS`, `EXDEV`), so that [`copy`] stops trying it. For a store whose
/// sources all come from one place; where they come from anywhere, pass no memo.
#[derive(Debug, Default)]
pub struct CopyMemo {
    no_copy_range: AtomicBool,
}

impl CopyMemo {
    /// Stops [`copy`] from trying `copy_file_range` with this memo (for tests of the copy by
    /// hand).
    pub fn disable_copy_range(&self) {
        self.no_copy_range.store(true, Ordering::Relaxed);
    }
}

/// Copies the first `size` bytes of `src` to the empty file `dst` (open for writing): a
/// reflink if the filesystem can share the blocks, else `copy_file_range`, else positional
/// reads and writes through `buf`. A source shorter than `size` fails with `ENODATA`.
pub fn copy(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    size: u64,
    buf: &mut [u8],
    memo: Option<&CopyMemo>,
) -> Result<(), Errno> {
    if rustix::fs::ioctl_ficlone(dst, src).is_ok() {
        return Ok(());
    }
    let mut done = 0u64;
    if !memo.is_some_and(|m| m.no_copy_range.load(Ordering::Relaxed)) {
        while done < size {
            let (mut off_in, mut off_out) = (done, done);
            let len = (size - done).min(COPY_CHUNK) as usize;
            match rustix::fs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), len)
            {
                // Some filesystems copy nothing rather than fail: finish by hand.
                Ok(0) => break,
                Ok(n) => done += n as u64,
                Err(Errno::INTR) => {}
                Err(Errno::NOSYS | Errno::XDEV) => {
                    if let Some(m) = memo {
                        m.disable_copy_range();
                    }
                    break;
                }
                Err(Errno::OPNOTSUPP | Errno::PERM | Errno::INVAL | Errno::BADF) => break,
                Err(e) => return Err(e),
            }
        }
    }
    while done < size {
        let want = (size - done).min(buf.len() as u64) as usize;
        let n = match rustix::io::pread(src, &mut buf[..want], done) {
            Ok(0) => return Err(Errno::NODATA),
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        };
        let mut written = 0;
        while written < n {
            match rustix::io::pwrite(dst, &buf[written..n], done + written as u64) {
                Ok(0) => return Err(Errno::NOSPC),
                Ok(k) => written += k,
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::OwnedFd;

    fn open(path: &std::path::Path, flags: OFlags) -> OwnedFd {
        rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::from_raw_mode(0o644)).unwrap()
    }

    #[test]
    fn every_way_copies_the_same_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(tmp.path().join("src"), &content).unwrap();
        let src = open(&tmp.path().join("src"), OFlags::RDONLY);
        for by_hand in [false, true] {
            let memo = CopyMemo::default();
            if by_hand {
                memo.disable_copy_range();
            }
            let path = tmp.path().join(format!("dst{by_hand}"));
            let dst = open(&path, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL);
            // A small buffer, so a copy by hand takes several rounds.
            let mut buf = vec![0; 3000];
            let size = content.len() as u64;
            copy(src.as_fd(), dst.as_fd(), size, &mut buf, Some(&memo)).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), content);
        }
    }
}
