//! Opening a composefs image for mounting: the digest check, the private copy it mounts from,
//! and the header sniffing that decides the erofs options.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::{fstatvfs, ioctl_ficlone, open, Mode, OFlags, StatVfsMountFlags};
use sealroot_objects::FileIdentity;
use sealroot_verity::{digest_file, digest_reader, AnyDigest, HashAlgorithm, Params};

use crate::error::MountError;

/// Where the EROFS superblock starts (`EROFS_SUPER_OFFSET`): the first 1 KiB is left for a boot
/// sector, which composefs uses for its own header.
const EROFS_SUPER_OFFSET: u64 = 1024;
/// `EROFS_SUPER_MAGIC_V1`, the first field of the superblock (little-endian).
const EROFS_SUPER_MAGIC: u32 = 0xE0F5_E1E2;
/// `LCFS_EROFS_MAGIC`: the first field of the composefs header at byte 0 of images written by
/// `mkcomposefs` (and by sealroot). Plain `mkfs.erofs` images leave these bytes zero.
const COMPOSEFS_MAGIC: u32 = 0xd078_629a;
/// Where the composefs header's `flags` field is (after `magic` and `version`).
const COMPOSEFS_FLAGS_OFFSET: usize = 8;
/// `LCFS_EROFS_FLAGS_HAS_ACL`: the image holds POSIX ACLs. Without it, erofs is mounted `noacl`,
/// as `lcfs-mount.c` does, which spares the kernel looking for ACL xattrs on every access.
const COMPOSEFS_FLAG_HAS_ACL: u32 = 1 << 0;

/// The identity of `file` now: compared before the digest check and after the mount when an
/// image is mounted in place, it changes when the content is rewritten.
fn fingerprint(file: &File) -> io::Result<FileIdentity> {
    FileIdentity::of(file).map_err(io::Error::from)
}

/// An image ready to be given to erofs.
pub(crate) struct OpenedImage {
    /// What erofs mounts, through `/proc/self/fd/N`: the image itself or a private copy of it.
    pub(crate) file: File,
    /// Whether erofs should look for POSIX ACLs (false: mount with `noacl`).
    pub(crate) acl: bool,
    /// Set when a digest-checked image is mounted in place: the fingerprint taken before the
    /// check, to be compared again once the mount is made.
    guard: Option<FileIdentity>,
}

impl OpenedImage {
    /// Fails if an image mounted in place changed since its digest was checked.
    pub(crate) fn check_unchanged(&self, path: &Path) -> Result<(), MountError> {
        if let Some(before) = &self.guard {
            let now = fingerprint(&self.file).map_err(|source| MountError::ReadImage {
                path: path.to_owned(),
                source,
            })?;
            if &now != before {
                return Err(MountError::ImageChanged {
                    path: path.to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// A reader that copies everything it reads into `copy`.
struct Tee<'a> {
    source: &'a File,
    copy: &'a File,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut source = self.source;
        let mut copy = self.copy;
        let n = source.read(buf)?;
        copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Makes an unnamed file in `dir` (`O_TMPFILE`) holding the bytes of `source`, and returns it
/// with their `algorithm` digest. The copy is a reflink where the filesystem can (`FICLONE`),
/// a real copy otherwise; either way later writes to `source` do not reach it, and nothing but
/// this process holds it: it has no name, and the only descriptor is ours.
fn private_copy(
    source: &File,
    dir: &Path,
    algorithm: HashAlgorithm,
) -> io::Result<(File, AnyDigest)> {
    let params = Params::composefs(algorithm);
    let fd = open(
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o400),
    )?;
    let copy = File::from(fd);
    let digest = if ioctl_ficlone(&copy, source).is_ok() {
        // A reflink: hash what the copy holds (positional reads: no offset to trust).
        digest_file(&params, &copy)?
    } else {
        // `source` was just opened by us, so its offset is at the start.
        digest_reader(
            &params,
            Tee {
                source,
                copy: &copy,
            },
        )?
    };
    Ok((copy, digest))
}

/// `/proc/self/fd/N` for an open file: a "magic link" that the kernel resolves to the very
/// inode the descriptor refers to, whatever has since happened to the name it was opened by.
pub(crate) fn proc_self_fd(fd: impl AsFd) -> String {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

/// The directory an image path lives in, for its private copy.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Opens `path`, checks its digest if one is expected (an fs-verity digest of the expected
/// one's algorithm, 4 KiB blocks, no salt), and reads its header.
///
/// `after_check` runs once the digest has been found right (tests use it to attack the image in
/// the window between check and mount).
pub(crate) fn open_image(
    path: &Path,
    expected: Option<&AnyDigest>,
    after_check: &mut dyn FnMut(),
) -> Result<OpenedImage, MountError> {
    let read_err = |source| MountError::ReadImage {
        path: path.to_owned(),
        source,
    };
    let fd = open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| MountError::OpenImage {
        path: path.to_owned(),
        source: e.into(),
    })?;
    let image = File::from(fd);

    let (file, guard) = match expected {
        None => (image, None),
        Some(expected) => {
            let algorithm = expected.algorithm();
            let (file, actual, guard) = match private_copy(&image, parent_dir(path), algorithm) {
                Ok((copy, digest)) => (copy, digest, None),
                Err(copy_err) => {
                    // No copy. Mount in place only if the image's mount is read-only, so that
                    // rewriting it would take remounting; a writable one is refused.
                    let readonly = fstatvfs(&image)
                        .map(|v| v.f_flag.contains(StatVfsMountFlags::RDONLY))
                        .unwrap_or(false);
                    if !readonly {
                        return Err(MountError::Snapshot {
                            path: path.to_owned(),
                            source: copy_err,
                        });
                    }
                    let before = fingerprint(&image).map_err(read_err)?;
                    // Positional reads: a failed copy may have moved the file offset.
                    let digest =
                        digest_file(&Params::composefs(algorithm), &image).map_err(read_err)?;
                    (image, digest, Some(before))
                }
            };
            if actual != *expected {
                return Err(MountError::DigestMismatch {
                    path: path.to_owned(),
                    expected: Box::new(*expected),
                    actual: Box::new(actual),
                });
            }
            after_check();
            (file, guard)
        }
    };

    let mut head = [0u8; EROFS_SUPER_OFFSET as usize + 4];
    match file.read_exact_at(&mut head, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(MountError::NotErofs {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(read_err(e)),
    }
    let le32 = |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    if le32(EROFS_SUPER_OFFSET as usize) != EROFS_SUPER_MAGIC {
        return Err(MountError::NotErofs {
            path: path.to_owned(),
        });
    }
    let acl = if le32(0) == COMPOSEFS_MAGIC {
        le32(COMPOSEFS_FLAGS_OFFSET) & COMPOSEFS_FLAG_HAS_ACL != 0
    } else {
        // A plain erofs image says nothing about ACLs: let erofs look.
        true
    };
    Ok(OpenedImage { file, acl, guard })
}
