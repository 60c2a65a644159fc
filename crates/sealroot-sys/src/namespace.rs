//! Telling what kind of namespace a file such as `/proc/PID/ns/user` stands for: the nsfs ioctl
//! `NS_GET_NSTYPE`, which rustix does not wrap.
//!
//! The files under `/proc/PID/ns/` (and bind mounts of them) are nsfs files: opening one gives a
//! descriptor of the namespace itself. `NS_GET_NSTYPE` on such a descriptor returns the
//! namespace's `CLONE_NEW*` flag; on any other file the ioctl is unknown (`ENOTTY`). See
//! `ioctl_nsfs(2)`.

use std::fmt;
use std::os::fd::AsFd;

use rustix::ffi::{c_int, c_void};
use rustix::io::Errno;
use rustix::ioctl::{ioctl, opcode, Ioctl, IoctlOutput, Opcode};

/// `NSIO`, the ioctl group of nsfs (`include/uapi/linux/nsfs.h`).
const NSIO: u8 = 0xb7;
/// `NS_GET_NSTYPE = _IO(NSIO, 0x3)` (Linux 4.11): the namespace's `CLONE_NEW*` flag.
pub const NS_GET_NSTYPE: Opcode = opcode::none(NSIO, 0x3);

/// The kind of a namespace, as `NS_GET_NSTYPE` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NamespaceType {
    /// `CLONE_NEWCGROUP`.
    Cgroup,
    /// `CLONE_NEWIPC`.
    Ipc,
    /// `CLONE_NEWNS`: a mount namespace.
    Mount,
    /// `CLONE_NEWNET`.
    Net,
    /// `CLONE_NEWPID`.
    Pid,
    /// `CLONE_NEWTIME`.
    Time,
    /// `CLONE_NEWUSER`: the kind whose ID mapping an id-mapped mount uses.
    User,
    /// `CLONE_NEWUTS`.
    Uts,
    /// A flag this code does not know (a kind newer than it).
    Other(c_int),
}

impl NamespaceType {
    /// The kind for a `CLONE_NEW*` flag.
    pub fn from_clone_flag(flag: c_int) -> Self {
        match flag {
            libc::CLONE_NEWCGROUP => NamespaceType::Cgroup,
            libc::CLONE_NEWIPC => NamespaceType::Ipc,
            libc::CLONE_NEWNS => NamespaceType::Mount,
            libc::CLONE_NEWNET => NamespaceType::Net,
            libc::CLONE_NEWPID => NamespaceType::Pid,
            libc::CLONE_NEWTIME => NamespaceType::Time,
            libc::CLONE_NEWUSER => NamespaceType::User,
            libc::CLONE_NEWUTS => NamespaceType::Uts,
            other => NamespaceType::Other(other),
        }
    }
}

/// The names of `/proc/PID/ns/`: `user`, `mnt`, `net`, …; an unknown kind shows its flag.
impl fmt::Display for NamespaceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            NamespaceType::Cgroup => "cgroup",
            NamespaceType::Ipc => "ipc",
            NamespaceType::Mount => "mnt",
            NamespaceType::Net => "net",
            NamespaceType::Pid => "pid",
            NamespaceType::Time => "time",
            NamespaceType::User => "user",
            NamespaceType::Uts => "uts",
            NamespaceType::Other(flag) => return write!(f, "unknown ({flag:#x})"),
        };
        f.write_str(name)
    }
}

/// `NS_GET_NSTYPE`: no argument; the answer is the ioctl's return value.
struct GetNamespaceType;

// SAFETY: NS_GET_NSTYPE takes no argument and touches no user memory (so a null pointer and
// IS_MUTATING = false are right); a successful call returns the CLONE_NEW* flag, which
// `output_from_ptr` passes on unchanged.
unsafe impl Ioctl for GetNamespaceType {
    type Output = c_int;
    const IS_MUTATING: bool = false;

    fn opcode(&self) -> Opcode {
        NS_GET_NSTYPE
    }

    fn as_ptr(&mut self) -> *mut c_void {
        std::ptr::null_mut()
    }

    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<c_int> {
        Ok(out)
    }
}

/// The kind of namespace `fd` (an open nsfs file such as `/proc/PID/ns/user`) stands for.
///
/// Fails with `ENOTTY` when `fd` is not a namespace file (whatever it is, the ioctl is unknown
/// to it); an `O_PATH` descriptor fails with `EBADF`.
pub fn namespace_type(fd: impl AsFd) -> Result<NamespaceType, Errno> {
    // SAFETY: `GetNamespaceType` describes the ioctl truthfully (see its `Ioctl` impl), and the
    // descriptor is borrowed for the whole call.
    let flag = unsafe { ioctl(fd, GetNamespaceType) }?;
    Ok(NamespaceType::from_clone_flag(flag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[test]
    fn namespace_files_say_their_kind() {
        for (name, kind) in [
            ("user", NamespaceType::User),
            ("mnt", NamespaceType::Mount),
            ("net", NamespaceType::Net),
            ("pid", NamespaceType::Pid),
            ("uts", NamespaceType::Uts),
        ] {
            let file = File::open(format!("/proc/self/ns/{name}")).unwrap();
            let got = namespace_type(&file).unwrap();
            assert_eq!(got, kind, "{name}");
            assert_eq!(got.to_string(), name);
        }
    }

    #[test]
    fn other_files_are_not_namespaces() {
        let file = tempfile::tempfile().unwrap();
        assert_eq!(namespace_type(&file), Err(Errno::NOTTY));
        let dir = File::open("/proc/self").unwrap();
        assert_eq!(namespace_type(&dir), Err(Errno::NOTTY));
    }

    #[test]
    fn unknown_flags_are_kept() {
        let kind = NamespaceType::from_clone_flag(0x4);
        assert_eq!(kind, NamespaceType::Other(4));
        assert_eq!(kind.to_string(), "unknown (0x4)");
    }
}
