//! `mount.composefs`: mount a composefs image, also as a mount(8) helper.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::args::{scan, Arg, Spec};

const SPECS: &[Spec] = &[
    Spec {
        name: "t",
        arg: Arg::Required,
    },
    Spec {
        name: "o",
        arg: Arg::Required,
    },
    Spec {
        name: "h",
        arg: Arg::None,
    },
    // mount(8) passes these to helpers: sloppy, fake, no-mtab, verbose.
    Spec {
        name: "s",
        arg: Arg::None,
    },
    Spec {
        name: "f",
        arg: Arg::None,
    },
    Spec {
        name: "n",
        arg: Arg::None,
    },
    Spec {
        name: "v",
        arg: Arg::None,
    },
];

fn usage(prog: &str) -> String {
    format!(
        "usage: {prog} [-t type] [-o opt[,opts..]] IMAGE MOUNTPOINT\n\
         Example:\n  {prog} -o basedir=/composefs/objects exampleimage.cfs /mnt/exampleimage\n\
         or, as a mount helper:\n  mount -t composefs -o basedir=/composefs/objects exampleimage.cfs /mnt/exampleimage\n\
         \n\
         Supported options:\n  \
         basedir=PATH[:PATH]    Specify location of basedir(s)\n  \
         digest=DIGEST          Specify required image digest\n  \
         verity                 Require all files to have specified and valid fs-verity digests\n  \
         tryverity              If supported by kernel, require fs-verity\n  \
         noverity               Do not require fs-verity, even with digest=\n  \
         ro                     Read only\n  \
         rw                     Read/write\n  \
         upperdir               Overlayfs upperdir\n  \
         workdir                Overlayfs workdir\n  \
         idmap=PATH             Specify path to a user namespace whose ID mapping should be used\n"
    )
}

/// Runs `mount.composefs` with `args` (program name excluded).
pub fn run(prog: &str, args: &[OsString]) -> Result<()> {
    let p = scan(args, SPECS).map_err(|e| anyhow::anyhow!("{e}\n{}", usage(prog)))?;
    if p.flag("h") {
        print!("{}", usage(prog));
        return Ok(());
    }
    if let Some(t) = p.value("t") {
        if t != "composefs" {
            bail!("Unsupported fs type '{}'", t.to_string_lossy());
        }
    }
    let Some(image) = p.operands.first().map(PathBuf::from) else {
        bail!("No source path specified\n{}", usage(prog));
    };
    let Some(mountpoint) = p.operands.get(1).map(PathBuf::from) else {
        bail!("No mount path specified\n{}", usage(prog));
    };
    if p.operands.len() > 2 {
        bail!("Too many arguments\n{}", usage(prog));
    }
    let opts = p
        .value("o")
        .map(|o| o.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (options, extra) = sealroot_mount::parse_mount_options(&opts)?;
    if extra.verity_implied_by_digest {
        eprintln!(
            "{prog}: note: digest= implies verity (files without fs-verity read as EIO); add noverity to only check the image digest"
        );
    }
    if p.flag("f") {
        // mount(8)'s "fake": everything but the mount itself (the options are checked).
        return Ok(());
    }
    // MountError's message already ends with its cause: as a context, anyhow's `{:#}` would
    // print that cause twice.
    sealroot_mount::mount_image(&image, &mountpoint, &options)
        .map_err(|e| anyhow::anyhow!("Failed to mount composefs {}: {e}", image.display()))?;
    Ok(())
}
