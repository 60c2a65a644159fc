//! A filesystem context of the new mount API (`fsopen` ... `fsmount`) whose failures become
//! [`MountError::Kernel`] with the kernel's own explanation attached.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_fd, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen,
    FsMountFlags, FsOpenFlags, MountAttrFlags,
};

use crate::error::{MountError, Step};

/// The most log text kept from one context. The kernel keeps only a few messages per context.
const MAX_LOG: usize = 4096;

/// An open `fsopen` context for one filesystem type.
pub(crate) struct FsContext {
    fd: OwnedFd,
    fstype: &'static str,
}

impl FsContext {
    /// `fsopen(fstype)`. `path` is what the error names.
    pub(crate) fn open(fstype: &'static str, path: &Path) -> Result<Self, MountError> {
        match fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC) {
            Ok(fd) => Ok(FsContext { fd, fstype }),
            Err(e) => Err(MountError::Kernel {
                step: Step::FsOpen { fstype },
                path: path.to_owned(),
                source: e.into(),
                kernel_log: String::new(),
            }),
        }
    }

    /// Reads and clears the messages the kernel logged on this context: lines such as
    /// `e overlay: Bad value for 'verity'`, joined with `; `.
    pub(crate) fn take_log(&self) -> String {
        let mut log = String::new();
        let mut buf = [0u8; 1024];
        // Each read returns one message; ENODATA (or any error) means there are no more.
        while let Ok(n) = rustix::io::read(&self.fd, &mut buf) {
            if n == 0 || log.len() > MAX_LOG {
                break;
            }
            if !log.is_empty() {
                log.push_str("; ");
            }
            log.push_str(String::from_utf8_lossy(&buf[..n]).trim_end());
        }
        log
    }

    fn fail(&self, step: Step, path: &Path, e: Errno) -> MountError {
        MountError::Kernel {
            step,
            path: path.to_owned(),
            source: io::Error::from(e),
            kernel_log: self.take_log(),
        }
    }

    /// Turns the result of a call on this context into ours: on failure, the step `step` names
    /// (built only then) with the kernel's log.
    fn check(
        &self,
        result: Result<(), Errno>,
        path: &Path,
        step: impl FnOnce() -> Step,
    ) -> Result<(), MountError> {
        result.map_err(|e| self.fail(step(), path, e))
    }

    /// `fsconfig(FSCONFIG_SET_FLAG, key)`.
    pub(crate) fn set_flag(&self, key: &'static str, path: &Path) -> Result<(), MountError> {
        let fstype = self.fstype;
        let result = fsconfig_set_flag(&self.fd, key);
        self.check(result, path, || Step::SetFlag { fstype, key })
    }

    /// `fsconfig(FSCONFIG_SET_STRING, key, value)`.
    pub(crate) fn set_string(
        &self,
        key: &'static str,
        value: &str,
        path: &Path,
    ) -> Result<(), MountError> {
        let fstype = self.fstype;
        let result = fsconfig_set_string(&self.fd, key, value);
        self.check(result, path, || Step::SetString {
            fstype,
            key,
            value: value.to_owned(),
        })
    }

    /// `fsconfig(FSCONFIG_SET_FD, key, fd)`.
    pub(crate) fn set_fd(
        &self,
        key: &'static str,
        fd: impl AsFd,
        path: &Path,
    ) -> Result<(), MountError> {
        let fstype = self.fstype;
        let result = fsconfig_set_fd(&self.fd, key, fd);
        self.check(result, path, || Step::SetFd { fstype, key })
    }

    /// `fsconfig(FSCONFIG_CMD_CREATE)`, then `fsmount` with `attrs`: a detached mount.
    pub(crate) fn mount(self, attrs: MountAttrFlags, path: &Path) -> Result<OwnedFd, MountError> {
        let fstype = self.fstype;
        fsconfig_create(&self.fd).map_err(|e| self.fail(Step::Create { fstype }, path, e))?;
        fsmount(&self.fd, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
            .map_err(|e| self.fail(Step::FsMount { fstype }, path, e))
    }
}
