//! The one error type of mounting, naming the step that failed and the path it was about.

use std::fmt;
use std::io;
use std::path::PathBuf;

use sealroot_sys::namespace::NamespaceType;
use sealroot_verity::AnyDigest;

/// A call into the kernel's mount API, as named in [`MountError::Kernel`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// `fsopen(fstype)`.
    FsOpen {
        /// `"erofs"` or `"overlay"`.
        fstype: &'static str,
    },
    /// `fsconfig(FSCONFIG_SET_FLAG, key)`.
    SetFlag {
        /// The filesystem type.
        fstype: &'static str,
        /// The flag.
        key: &'static str,
    },
    /// `fsconfig(FSCONFIG_SET_STRING, key, value)`.
    SetString {
        /// The filesystem type.
        fstype: &'static str,
        /// The option.
        key: &'static str,
        /// Its value.
        value: String,
    },
    /// `fsconfig(FSCONFIG_SET_FD, key, fd)`: an overlayfs layer given as an open directory or a
    /// detached mount.
    SetFd {
        /// The filesystem type.
        fstype: &'static str,
        /// The option (`lowerdir+`, `datadir+`, `upperdir`, `workdir`).
        key: &'static str,
    },
    /// `fsconfig(FSCONFIG_CMD_CREATE)`: the filesystem checks its options and is set up.
    Create {
        /// The filesystem type.
        fstype: &'static str,
    },
    /// `fsmount()`: the superblock becomes a detached mount.
    FsMount {
        /// The filesystem type.
        fstype: &'static str,
    },
    /// `mount_setattr(MOUNT_ATTR_IDMAP)`: the detached erofs mount is made id-mapped with the
    /// user namespace of [`crate::MountOptions::idmap`].
    Idmap {
        /// The user namespace file.
        userns: PathBuf,
    },
    /// `move_mount()`: the detached overlay is attached at the mount point.
    MoveMount,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::FsOpen { fstype } => write!(f, "fsopen {fstype}"),
            Step::SetFlag { fstype, key } => write!(f, "{fstype} option {key}"),
            Step::SetString { fstype, key, value } => write!(f, "{fstype} option {key}={value}"),
            Step::SetFd { fstype, key } => {
                write!(f, "{fstype} option {key} (as a file descriptor)")
            }
            Step::Create { fstype } => write!(f, "creating the {fstype} filesystem"),
            Step::FsMount { fstype } => write!(f, "fsmount {fstype}"),
            Step::Idmap { userns } => write!(
                f,
                "id-mapping the erofs mount with user namespace {}",
                userns.display()
            ),
            Step::MoveMount => f.write_str("move_mount"),
        }
    }
}

/// What an object directory, upper or work directory is for, as named in
/// [`MountError::OpenDir`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirRole {
    /// A `basedir` (overlayfs data-only layer).
    Basedir,
    /// The overlayfs upper directory.
    Upperdir,
    /// The overlayfs work directory.
    Workdir,
}

impl fmt::Display for DirRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DirRole::Basedir => "basedir",
            DirRole::Upperdir => "upperdir",
            DirRole::Workdir => "workdir",
        })
    }
}

/// Renders the messages a filesystem context logged, if any, after an error.
struct KernelLog<'a>(&'a str);

impl fmt::Display for KernelLog<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " (kernel: {})", self.0)
        }
    }
}

/// Renders what an idmap file that is no user namespace is.
struct NamespaceKind<'a>(&'a Option<NamespaceType>);

impl fmt::Display for NamespaceKind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(kind) => write!(f, "a {kind} namespace, not a user namespace"),
            None => f.write_str("not a namespace file"),
        }
    }
}

/// Why a composefs image could not be mounted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    /// The options cannot describe a mount (no basedir, an upperdir without a workdir).
    #[error("invalid mount options: {0}")]
    InvalidOptions(&'static str),
    /// The image file could not be opened.
    #[error("opening image {path}: {source}")]
    OpenImage {
        /// The image.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The image file could not be read (for its header or its digest).
    #[error("reading image {path}: {source}")]
    ReadImage {
        /// The image.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file has no EROFS superblock.
    #[error("{path} is not an EROFS image (no EROFS superblock magic at byte 1024)")]
    NotErofs {
        /// The image.
        path: PathBuf,
    },
    /// The image's fs-verity digest is not the expected one. Nothing was mounted.
    #[error("image {path} has fs-verity digest {actual}, but {expected} was expected")]
    DigestMismatch {
        /// The image.
        path: PathBuf,
        /// The digest asked for (boxed, as the next: the error stays small).
        expected: Box<AnyDigest>,
        /// The digest the image has (of the same algorithm).
        actual: Box<AnyDigest>,
    },
    /// The private, immutable copy of the image that a digest check mounts from could not be
    /// made, and the image's filesystem is writable, so mounting the image in place would leave
    /// it open to being rewritten after the check.
    #[error("making a private copy of image {path} to check its digest: {source}")]
    Snapshot {
        /// The image.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The image was modified between the digest check and the mount (seen in its size or
    /// change time). Only possible when the image is mounted in place, from a read-only mount.
    #[error("image {path} changed while it was being checked and mounted")]
    ImageChanged {
        /// The image.
        path: PathBuf,
    },
    /// The user namespace file of [`crate::MountOptions::idmap`] could not be opened, or not
    /// asked what it is.
    #[error("opening user namespace {path} (idmap): {source}")]
    OpenUserNamespace {
        /// The file given.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file of [`crate::MountOptions::idmap`] is not a user namespace: not a namespace file
    /// at all (`kind` is `None`), or a namespace of another kind (`mnt`, `net`, …). Nothing was
    /// mounted.
    #[error(
        "idmap {path} is {}; give a user namespace such as /proc/PID/ns/user",
        NamespaceKind(kind)
    )]
    NotUserNamespace {
        /// The file given.
        path: PathBuf,
        /// What kind of namespace it is, if it is one.
        kind: Option<NamespaceType>,
    },
    /// The file of [`crate::MountOptions::idmap`] is the initial user namespace (for example
    /// `/proc/self/ns/user` of a process that is in no other), whose mapping is the identity;
    /// the kernel refuses to id-map a mount with it. Nothing was mounted.
    #[error(
        "idmap {path} is the initial user namespace, which cannot id-map a mount; give a user \
         namespace with a mapping of its own (its /proc/PID/ns/user)"
    )]
    InitialUserNamespace {
        /// The file given.
        path: PathBuf,
    },
    /// An object store, upper or work directory could not be opened.
    #[error("opening {role} {path}: {source}")]
    OpenDir {
        /// What the directory is for.
        role: DirRole,
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// No temporary directory could be made to attach the erofs mount at, which kernels before
    /// 6.15 need (they cannot take a detached mount as an overlayfs layer).
    #[error("making a temporary directory to attach the erofs of {path}: {source}")]
    TempDir {
        /// The image.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// This kernel cannot mount erofs from a regular file (`ENOTBLK`, before Linux 6.12 or
    /// without `CONFIG_EROFS_FS_BACKED_BY_FILE`), and sealroot does not set up loop devices.
    #[error(
        "this kernel cannot mount erofs image {path} from a file (needs Linux 6.12+ with \
         CONFIG_EROFS_FS_BACKED_BY_FILE), and loop devices are not supported"
    )]
    FileBackedErofsUnsupported {
        /// The image.
        path: PathBuf,
    },
    /// A mount API call failed.
    #[error("{step} for {path}: {source}{}", KernelLog(kernel_log))]
    Kernel {
        /// The call.
        step: Step,
        /// The path the call was about: the image, a layer directory or the mount point.
        path: PathBuf,
        /// The error.
        source: io::Error,
        /// The messages the filesystem context logged (`e overlay: ...` lines joined by `; `),
        /// often the only explanation of an `EINVAL`. Empty when there were none.
        kernel_log: String,
    },
}

impl MountError {
    /// The `errno` of a failed system call, if this error has one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            MountError::OpenImage { source, .. }
            | MountError::ReadImage { source, .. }
            | MountError::Snapshot { source, .. }
            | MountError::OpenUserNamespace { source, .. }
            | MountError::OpenDir { source, .. }
            | MountError::TempDir { source, .. }
            | MountError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
