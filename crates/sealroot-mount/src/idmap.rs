//! Id-mapped mounts (`mount.composefs -o idmap=PATH`): the user namespace file is opened and
//! checked before anything is mounted, and the detached erofs mount is id-mapped with it before
//! overlayfs takes it as its lower layer, as `lcfs-mount.c` does.
//!
//! Only erofs is id-mapped: it holds every owner the image shows (metacopy files included, whose
//! owner is the stub's), while the object stores give only contents. An upper layer is not
//! id-mapped either, as in C.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{fstat, open, Mode, OFlags};
use rustix::io::Errno;
use sealroot_sys::namespace::{namespace_type, NamespaceType};

use crate::error::{MountError, Step};

/// `PROC_USER_INIT_INO` (`include/linux/proc_ns.h`): the inode number nsfs gives the initial
/// user namespace, fixed since Linux 3.8. The kernel refuses to id-map a mount with that
/// namespace (`EPERM`); recognising it here lets the error say why.
const PROC_USER_INIT_INO: u64 = 0xEFFF_FFFD;

/// An open user namespace to id-map the erofs mount with, and the path it was opened by.
pub(crate) struct UserNamespace<'a> {
    fd: OwnedFd,
    path: &'a Path,
}

impl<'a> UserNamespace<'a> {
    /// Opens `path` (as `/proc/PID/ns/user`) and makes sure it is a user namespace other than
    /// the initial one.
    pub(crate) fn open(path: &'a Path) -> Result<Self, MountError> {
        let failed = |e: Errno| MountError::OpenUserNamespace {
            path: path.to_owned(),
            source: e.into(),
        };
        // As mountcomposefs.c, read-only; O_NONBLOCK so that a FIFO named by mistake cannot
        // hang the open. (Not O_PATH: neither the ioctl nor mount_setattr takes one.)
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let fd = open(path, flags, Mode::empty()).map_err(failed)?;
        let not_userns = |kind| MountError::NotUserNamespace {
            path: path.to_owned(),
            kind,
        };
        match namespace_type(&fd) {
            Ok(NamespaceType::User) => {}
            Ok(kind) => return Err(not_userns(Some(kind))),
            // What a file that is no namespace answers to an ioctl it does not know.
            Err(Errno::NOTTY | Errno::INVAL | Errno::NOTSUP) => return Err(not_userns(None)),
            Err(e) => return Err(failed(e)),
        }
        if fstat(&fd).map_err(failed)?.st_ino == PROC_USER_INIT_INO {
            return Err(MountError::InitialUserNamespace {
                path: path.to_owned(),
            });
        }
        Ok(UserNamespace { fd, path })
    }

    /// Makes the detached mount `mount` (of `image`) id-mapped with this namespace.
    pub(crate) fn apply(&self, mount: impl AsFd, image: &Path) -> Result<(), MountError> {
        sealroot_sys::mount::set_idmap(mount, &self.fd).map_err(|e| MountError::Kernel {
            step: Step::Idmap {
                userns: self.path.to_owned(),
            },
            path: image.to_owned(),
            source: e.into(),
            kernel_log: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_refused_idmap_names_the_namespace_and_the_image() {
        let err = MountError::Kernel {
            step: Step::Idmap {
                userns: PathBuf::from("/proc/42/ns/user"),
            },
            path: PathBuf::from("/images/os.cfs"),
            source: Errno::PERM.into(),
            kernel_log: String::new(),
        };
        let text = err.to_string();
        assert!(
            text.starts_with(
                "id-mapping the erofs mount with user namespace /proc/42/ns/user for \
                 /images/os.cfs: "
            ),
            "{text}"
        );
        assert_eq!(err.raw_os_error(), Some(Errno::PERM.raw_os_error()));
    }

    #[test]
    fn the_initial_user_namespace_is_recognised() {
        // Outside any container this process is in the initial user namespace; elsewhere the
        // check must at least not take its own namespace for the initial one.
        let own = Path::new("/proc/self/ns/user");
        let initial =
            std::fs::read_link(own).unwrap() == Path::new(&format!("user:[{PROC_USER_INIT_INO}]"));
        match UserNamespace::open(own) {
            Err(MountError::InitialUserNamespace { path }) if initial => assert_eq!(path, own),
            Ok(_) if !initial => {}
            other => panic!("initial: {initial}, got {:?}", other.err()),
        }
    }
}
