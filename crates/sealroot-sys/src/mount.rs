//! `mount_setattr(2)`, which rustix 1.x does not wrap (its issue #975; it has the
//! `MOUNT_ATTR_*` flags but not the call), here for the one use sealroot has for it: making a
//! detached mount *id-mapped* (`MOUNT_ATTR_IDMAP`, Linux 5.12).
//!
//! An id-mapped mount shows the owners of its files through the ID mapping of a user namespace:
//! a file whose owner on disk is `u` is shown as owned by whatever `u` inside that namespace is
//! outside it (`uid_map` line `0 100000 65536`: on-disk 0 shows as 100000, 1234 as 101234); an
//! owner the mapping does not cover shows as the overflow id (65534). The mount must be detached
//! (fresh from `fsmount` or `open_tree(OPEN_TREE_CLONE)`) and not id-mapped yet, its filesystem
//! must allow id-mapping (erofs, ext4, xfs, btrfs, tmpfs, … but not overlayfs itself), and the
//! namespace must not be the initial one.
//!
//! The call goes through `libc::syscall`, the only way to reach a system call rustix lacks;
//! `struct mount_attr` is defined here, as the kernel's header has it, and checked by a test.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd};

use rustix::ffi::{c_int, c_uint};
use rustix::io::Errno;
use rustix::mount::MountAttrFlags;

/// `struct mount_attr` of `include/uapi/linux/mount.h`, version 0 (the kernel accepts larger,
/// zero-filled versions too).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountAttr {
    /// `MOUNT_ATTR_*` flags to set.
    pub attr_set: u64,
    /// `MOUNT_ATTR_*` flags to clear.
    pub attr_clr: u64,
    /// A propagation type (`MS_SHARED`, …), 0 to leave it.
    pub propagation: u64,
    /// With `MOUNT_ATTR_IDMAP`: a descriptor of the user namespace whose mapping to use.
    pub userns_fd: u64,
}

/// `MOUNT_ATTR_SIZE_VER0`: the size of the first version of [`MountAttr`].
pub const MOUNT_ATTR_SIZE_VER0: usize = 32;

/// Makes the detached mount `mount` id-mapped with the user namespace `userns` (an open
/// `/proc/PID/ns/user`): `mount_setattr(mount, "", AT_EMPTY_PATH, {MOUNT_ATTR_IDMAP, userns})`.
///
/// The kernel's errors, as `mount_setattr(2)` and `fs/namespace.c` give them: `EINVAL` when
/// `userns` is not a user namespace file, when the mount is attached somewhere already or when
/// its filesystem does not allow id-mapping; `EPERM` for the initial user namespace, a mount
/// already id-mapped, or a namespace the caller has no `CAP_SYS_ADMIN` over; `EBADF` for a
/// closed descriptor; `ENOSYS` before Linux 5.12.
pub fn set_idmap(mount: impl AsFd, userns: impl AsFd) -> Result<(), Errno> {
    let userns_fd = userns.as_fd().as_raw_fd();
    let mut attr = MountAttr {
        attr_set: u64::from(MountAttrFlags::MOUNT_ATTR_IDMAP.bits()),
        // A descriptor is never negative, so the conversion is lossless.
        userns_fd: userns_fd as u64,
        ..MountAttr::default()
    };
    let mount_fd: c_int = mount.as_fd().as_raw_fd();
    let flags = libc::AT_EMPTY_PATH as c_uint;
    // SAFETY: mount_setattr(int dirfd, const char *path, unsigned int flags,
    // struct mount_attr *attr, size_t size): `mount_fd` and `userns_fd` are open descriptors
    // borrowed for the whole call; the path is a NUL-terminated empty string that lives as long
    // as the program; `attr` points to a live `MountAttr` of exactly `size` bytes laid out as
    // the kernel's version-0 `struct mount_attr` (checked by a test), which the kernel only reads.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount_fd,
            c"".as_ptr(),
            flags,
            &mut attr as *mut MountAttr,
            size_of::<MountAttr>(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::IO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::mem::offset_of;

    #[test]
    fn mount_attr_has_the_kernel_layout() {
        assert_eq!(size_of::<MountAttr>(), MOUNT_ATTR_SIZE_VER0);
        assert_eq!(offset_of!(MountAttr, attr_set), 0);
        assert_eq!(offset_of!(MountAttr, attr_clr), 8);
        assert_eq!(offset_of!(MountAttr, propagation), 16);
        assert_eq!(offset_of!(MountAttr, userns_fd), 24);
        assert_eq!(MountAttrFlags::MOUNT_ATTR_IDMAP.bits(), 0x0010_0000);
    }

    #[test]
    fn refuses_a_user_namespace_that_is_not_one() {
        // The kernel checks the namespace before it looks at the mount, so this touches no
        // mount: a regular file is not a namespace file (EINVAL).
        let dir = File::open("/").unwrap();
        let not_userns = tempfile::tempfile().unwrap();
        assert_eq!(set_idmap(&dir, &not_userns), Err(Errno::INVAL));
    }
}
