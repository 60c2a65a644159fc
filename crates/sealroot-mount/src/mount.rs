//! Putting the two filesystems together: erofs from the image file, overlayfs over it.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{open, Mode, OFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{move_mount, MountAttrFlags, MoveMountFlags};

use crate::error::{DirRole, MountError, Step};
use crate::fsctx::FsContext;
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
    mount_image_detached_with_hook(image, opts, &mut || {})
}

/// [`mount_image_detached`], calling `after_check` in the window between a successful digest
/// check and the mounting of erofs. For tests, which attack the image there.
#[doc(hidden)]
pub fn mount_image_detached_with_hook(
    image: &Path,
    opts: &MountOptions,
    after_check: &mut dyn FnMut(),
) -> Result<OwnedFd, MountError> {
    if opts.basedirs.is_empty() {
        return Err(MountError::InvalidOptions("no basedir given"));
    }
    if opts.upperdir.is_some() != opts.workdir.is_some() {
        return Err(MountError::InvalidOptions(
            "upperdir and workdir go together: give both or neither",
        ));
    }
    // The cheap checks first: directories are opened before the image is hashed.
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

    let opened = open_image(image, opts.expected_digest.as_ref(), after_check)?;
    let erofs = mount_erofs(image, &opened)?;

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
    // The layers are handed over as descriptors (Linux 6.13+ for overlayfs layers given by fd,
    // 6.15+ for a detached mount as a layer): no path is looked up again, no option string
    // needs escaping, and the erofs mount never has to be attached anywhere.
    ovl.set_fd("lowerdir+", &erofs, image)?;
    for (fd, dir) in &basedirs {
        ovl.set_fd("datadir+", fd, dir)?;
    }
    if let Some(((upper_fd, upper), (work_fd, work))) = &upper {
        ovl.set_fd("upperdir", upper_fd, upper)?;
        ovl.set_fd("workdir", work_fd, work)?;
    }
    let attrs = if opts.readonly {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let overlay = ovl.mount(attrs, image)?;
    opened.check_unchanged(image)?;
    Ok(overlay)
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

/// Mounts the image's erofs, detached and read-only, from the open image file.
fn mount_erofs(path: &Path, image: &OpenedImage) -> Result<OwnedFd, MountError> {
    let ctx = FsContext::open("erofs", path)?;
    // erofs opens `source` itself (filp_open). Through the magic link it reaches the inode we
    // hold open (and checked), never whatever the image's name points to by now.
    ctx.set_string("source", &proc_self_fd(&image.file), path)?;
    ctx.set_flag("ro", path)?;
    if !image.acl {
        ctx.set_flag("noacl", path)?;
    }
    match ctx.mount(MountAttrFlags::MOUNT_ATTR_RDONLY, path) {
        Err(MountError::Kernel {
            step: Step::Create { .. },
            source,
            ..
        }) if source.raw_os_error() == Some(Errno::NOTBLK.raw_os_error()) => {
            Err(MountError::FileBackedErofsUnsupported {
                path: path.to_owned(),
            })
        }
        other => other,
    }
}
