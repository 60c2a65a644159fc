//! Putting the two filesystems together: erofs from the image file, overlayfs over it.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::fs::{mkdir, open, Mode, OFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{move_mount, unmount, MountAttrFlags, MoveMountFlags, UnmountFlags};

use crate::error::{DirRole, MountError, Step};
use crate::fsctx::FsContext;
use crate::idmap::UserNamespace;
use crate::image::{open_image, proc_self_fd, OpenedImage};
use crate::options::{MountOptions, VerityMode};

/// The `source` of the overlay mount, as `/proc/self/mountinfo` shows it. `lcfs-mount.c` uses the
/// same word, so tools that look for composefs mounts find ours.
const OVERLAY_SOURCE: &str = "composefs";

/// Mounts the composefs image `image` at `mountpoint`.
///
/// This is [`mount_image_detached`] followed by `move_mount` onto `mountpoint`. Nothing is
/// left mounted anywhere if it fails, at any step.
pub fn mount_image(image: &Path, mountpoint: &Path, opts: &MountOptions) -> Result<(), MountError> {
    let overlay = mount_image_detached(image, opts)?;
    attach(&overlay, mountpoint)
}

/// Attaches a detached mount (as returned by [`mount_image_detached`]) at `mountpoint`.
pub fn attach(mount: impl AsFd, mountpoint: &Path) -> Result<(), MountError> {
    move_mount(
        mount.as_fd(),
        "",
        CWD,
        mountpoint,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| MountError::Kernel {
        step: Step::MoveMount,
        path: mountpoint.to_owned(),
        source: e.into(),
        kernel_log: String::new(),
    })
}

/// Mounts the composefs image `image` without attaching it anywhere, and returns the detached
/// overlay mount.
///
/// The result can be attached with [`attach`] (or `move_mount`), used as a directory file
/// descriptor (`openat` into the tree), or given to further mount calls. The mount disappears
/// when the last descriptor of it is closed, unless it was attached. The erofs mount below it is
/// never attached: only the overlay holds it.
pub fn mount_image_detached(image: &Path, opts: &MountOptions) -> Result<OwnedFd, MountError> {
    mount_image_detached_for_tests(image, opts, TestHooks::default())
}

/// Ways for tests to reach into [`mount_image_detached`]. Not part of the supported API.
#[doc(hidden)]
#[derive(Default)]
pub struct TestHooks<'a> {
    /// Runs in the window between a successful digest check and the mounting of erofs; tests
    /// attack the image there.
    pub after_check: Option<&'a mut dyn FnMut()>,
    /// Skip handing the layers over as descriptors and use the fallback for kernels before
    /// 6.15 (erofs attached at a temporary directory, layers given by path).
    pub force_layer_paths: bool,
}

/// An opened layer directory with the path it was opened by, for errors.
type Dir<'a> = (File, &'a Path);

/// The opened layer directories.
struct Layers<'a> {
    /// The object stores, in order.
    basedirs: Vec<Dir<'a>>,
    /// The upper and the work directory.
    upper: Option<(Dir<'a>, Dir<'a>)>,
}

impl<'a> Layers<'a> {
    /// Opens the directories `opts` names.
    fn open(opts: &'a MountOptions) -> Result<Self, MountError> {
        let basedirs = opts
            .basedirs
            .iter()
            .map(|dir| Ok((open_dir(DirRole::Basedir, dir)?, dir.as_path())))
            .collect::<Result<Vec<_>, MountError>>()?;
        let upper = match (&opts.upperdir, &opts.workdir) {
            (Some(upper), Some(work)) => Some((
                (open_dir(DirRole::Upperdir, upper)?, upper.as_path()),
                (open_dir(DirRole::Workdir, work)?, work.as_path()),
            )),
            _ => None,
        };
        Ok(Layers { basedirs, upper })
    }
}

/// [`mount_image_detached`] with [`TestHooks`].
#[doc(hidden)]
pub fn mount_image_detached_for_tests(
    image: &Path,
    opts: &MountOptions,
    hooks: TestHooks<'_>,
) -> Result<OwnedFd, MountError> {
    if opts.basedirs.is_empty() {
        return Err(MountError::InvalidOptions("no basedir given"));
    }
    if opts.upperdir.is_some() != opts.workdir.is_some() {
        return Err(MountError::InvalidOptions(
            "upperdir and workdir go together: give both or neither",
        ));
    }
    // The cheap checks first: directories and the user namespace are opened before the image
    // is hashed.
    let layers = Layers::open(opts)?;
    let idmap = opts.idmap.as_deref().map(UserNamespace::open).transpose()?;

    let mut no_hook = || {};
    let after_check = hooks.after_check.unwrap_or(&mut no_hook);
    let opened = open_image(image, opts.expected_digest.as_ref(), after_check)?;
    let erofs = mount_erofs(image, &opened, idmap.as_ref())?;

    let overlay = if hooks.force_layer_paths {
        None
    } else {
        match mount_overlay(image, opts, &layers, LowerLayer::Fd(&erofs)) {
            Ok(fd) => Some(fd),
            Err(e) if refuses_detached_layers(&e) => None,
            Err(e) => return Err(e),
        }
    };
    let overlay = match overlay {
        Some(fd) => fd,
        None => {
            // Before 6.15 overlayfs cannot take a detached mount as a layer (and before 6.13 it
            // takes no descriptors at all): attach erofs at a private temporary directory for
            // as long as the overlay takes to set up, as lcfs-mount.c does.
            let attached = TempMount::attach(erofs, image)?;
            mount_overlay(image, opts, &layers, LowerLayer::Path(&attached.fd))?
        }
    };
    opened.check_unchanged(image)?;
    Ok(overlay)
}

/// Whether `e` is how a kernel before 6.15 refuses the erofs mount as a layer: `EBADF` or
/// `EINVAL` when `lowerdir+` is given as a descriptor (before 6.13; 6.12's `fsconfig` takes
/// descriptors with `fget()`, which refuses the `O_PATH` file of a detached mount: `EBADF`, as
/// seen under qemu by `scripts/vmtest.sh`), or `EINVAL` when the overlay is created on a
/// detached layer (6.13, 6.14). An `EINVAL` at creation may have another cause; the retry by path then fails the
/// same way, and that error is the one reported.
fn refuses_detached_layers(e: &MountError) -> bool {
    match e {
        MountError::Kernel {
            step, source: err, ..
        } => {
            let errno = err.raw_os_error();
            let is = |e: Errno| errno == Some(e.raw_os_error());
            match step {
                // Our descriptor is open, so EBADF can only mean the kernel refuses its kind.
                Step::SetFd {
                    key: "lowerdir+", ..
                } => is(Errno::INVAL) || is(Errno::BADF),
                Step::Create { fstype: "overlay" } => is(Errno::INVAL),
                _ => false,
            }
        }
        _ => false,
    }
}

/// How the erofs mount is given to overlayfs.
enum LowerLayer<'a> {
    /// As the descriptor of the detached mount (`FSCONFIG_SET_FD`), and every other layer too.
    Fd(&'a OwnedFd),
    /// As `/proc/self/fd/N` of the mount attached somewhere, and every other layer the same way
    /// (`FSCONFIG_SET_STRING`, `lowerdir+` and `datadir+` of Linux 6.7+).
    Path(&'a OwnedFd),
}

/// Sets up the overlay over `lower` and the layers, and returns it as a detached mount.
fn mount_overlay(
    image: &Path,
    opts: &MountOptions,
    layers: &Layers<'_>,
    lower: LowerLayer<'_>,
) -> Result<OwnedFd, MountError> {
    let ovl = FsContext::open("overlay", image)?;
    ovl.set_string("source", OVERLAY_SOURCE, image)?;
    // As lcfs-mount.c: metacopy files take their data from the data-only layers, and
    // redirect_dir lets the image's directories carry redirects too.
    ovl.set_string("metacopy", "on", image)?;
    ovl.set_string("redirect_dir", "on", image)?;
    match opts.verity {
        VerityMode::Off => {}
        VerityMode::Require => ovl.set_string("verity", "require", image)?,
        VerityMode::Try => match ovl.set_string("verity", "require", image) {
            Ok(()) => {}
            // A kernel before 6.6 does not know the option: mount without it.
            Err(MountError::Kernel { source, .. })
                if source.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => {}
            Err(e) => return Err(e),
        },
    }
    // By descriptor, no path is looked up again and no option string needs escaping; by
    // `/proc/self/fd/N`, the path leads to the directory we opened whatever has been renamed
    // or mounted over its name since.
    let set = |key: &'static str, fd: BorrowedFd<'_>, path: &Path| match lower {
        LowerLayer::Fd(_) => ovl.set_fd(key, fd, path),
        LowerLayer::Path(_) => ovl.set_string(key, &proc_self_fd(fd), path),
    };
    let (LowerLayer::Fd(erofs) | LowerLayer::Path(erofs)) = lower;
    set("lowerdir+", erofs.as_fd(), image)?;
    for (fd, dir) in &layers.basedirs {
        set("datadir+", fd.as_fd(), dir)?;
    }
    if let Some(((upper_fd, upper), (work_fd, work))) = &layers.upper {
        set("upperdir", upper_fd.as_fd(), upper)?;
        set("workdir", work_fd.as_fd(), work)?;
    }
    let attrs = if opts.readonly {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    ovl.mount(attrs, image)
}

/// A mount attached at a fresh private directory for a short while, then detached and the
/// directory removed when dropped.
struct TempMount {
    dir: PathBuf,
    /// The mount, now attached at `dir`.
    fd: OwnedFd,
}

/// How many names [`TempMount::attach`] tries before it gives up.
const TEMP_DIR_ATTEMPTS: u32 = 100;

impl TempMount {
    fn attach(mount: OwnedFd, image: &Path) -> Result<TempMount, MountError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let base = std::env::temp_dir();
        let mut last_err = None;
        for _ in 0..TEMP_DIR_ATTEMPTS {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = base.join(format!(".sealroot-erofs.{}.{n}", std::process::id()));
            match mkdir(&dir, Mode::RWXU) {
                Ok(()) => {
                    if let Err(e) = attach(&mount, &dir) {
                        let _ = std::fs::remove_dir(&dir);
                        return Err(e);
                    }
                    return Ok(TempMount { dir, fd: mount });
                }
                Err(e) if e == Errno::EXIST => last_err = Some(e),
                Err(e) => {
                    last_err = Some(e);
                    break;
                }
            }
        }
        Err(MountError::TempDir {
            path: image.to_owned(),
            source: last_err.unwrap_or(Errno::EXIST).into(),
        })
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        // The overlay holds its own reference to the layer; this mount point is not needed.
        let _ = unmount(&self.dir, UnmountFlags::DETACH);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Opens a layer directory. A plain read-only descriptor, not `O_PATH`: overlayfs before 6.15
/// refuses `O_PATH` descriptors as layers, and this checks that the directory can be read.
fn open_dir(role: DirRole, path: &Path) -> Result<File, MountError> {
    open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
    .map_err(|e| MountError::OpenDir {
        role,
        path: path.to_owned(),
        source: io::Error::from(e),
    })
}

/// Mounts the image's erofs, detached and read-only, from the open image file, and id-maps it
/// if asked.
fn mount_erofs(
    path: &Path,
    image: &OpenedImage,
    idmap: Option<&UserNamespace<'_>>,
) -> Result<OwnedFd, MountError> {
    let ctx = FsContext::open("erofs", path)?;
    // erofs opens `source` itself (filp_open). Through the magic link it reaches the inode we
    // hold open (and checked), never whatever the image's name points to by now.
    ctx.set_string("source", &proc_self_fd(&image.file), path)?;
    ctx.set_flag("ro", path)?;
    if !image.acl {
        ctx.set_flag("noacl", path)?;
    }
    let erofs = match ctx.mount(MountAttrFlags::MOUNT_ATTR_RDONLY, path) {
        Err(MountError::Kernel {
            step: Step::Create { .. },
            source,
            ..
        }) if source.raw_os_error() == Some(Errno::NOTBLK.raw_os_error()) => {
            return Err(MountError::FileBackedErofsUnsupported {
                path: path.to_owned(),
            })
        }
        other => other?,
    };
    // While the mount is detached and seen by nobody: the kernel id-maps no other.
    if let Some(userns) = idmap {
        userns.apply(&erofs, path)?;
    }
    Ok(erofs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_error(step: Step, errno: Errno) -> MountError {
        MountError::Kernel {
            step,
            path: PathBuf::from("/img.cfs"),
            source: errno.into(),
            kernel_log: String::new(),
        }
    }

    #[test]
    fn which_kernel_errors_lead_to_layers_by_path() {
        let lower = || Step::SetFd {
            fstype: "overlay",
            key: "lowerdir+",
        };
        let data = || Step::SetFd {
            fstype: "overlay",
            key: "datadir+",
        };
        let create = |fstype| Step::Create { fstype };
        let cases = [
            (lower(), Errno::INVAL, true),
            // Linux 6.12: fsconfig will not take the O_PATH file of a detached mount.
            (lower(), Errno::BADF, true),
            (lower(), Errno::PERM, false),
            (data(), Errno::BADF, false),
            (create("overlay"), Errno::INVAL, true),
            (create("overlay"), Errno::BADF, false),
            (create("erofs"), Errno::INVAL, false),
        ];
        for (step, errno, expected) in cases {
            let desc = format!("{step:?} {errno:?}");
            assert_eq!(
                refuses_detached_layers(&kernel_error(step, errno)),
                expected,
                "{desc}"
            );
        }
    }
}
