//! `mount`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use sealroot_core::mount::{self, Request};
use sealroot_core::verify;
use sealroot_mount::VerityMode;
use serde_json::json;

use super::{print_json, Ctx};

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Verity {
    /// Every file must carry a digest and its object must have fs-verity with it.
    Require,
    /// Require it where the kernel knows the option.
    On,
    /// Do not check per-file digests.
    Off,
}

#[derive(Args)]
pub(crate) struct MountArgs {
    /// The ref, a commit, or an image id.
    refname: String,
    /// Where to mount it.
    mountpoint: PathBuf,
    /// A writable upper layer (needs --workdir).
    #[arg(long)]
    upperdir: Option<PathBuf>,
    /// The overlayfs work directory for --upperdir.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Per-file fs-verity checking (default: require where the repository has fs-verity).
    #[arg(long, value_enum)]
    verity: Option<Verity>,
    /// Mount only a commit signed by one of these keys (file or directory), whose image
    /// is the signed one.
    #[arg(long, value_name = "KEYS")]
    require_signature: Option<PathBuf>,
    /// Revoked keys, with --require-signature.
    #[arg(long, requires = "require_signature")]
    revoked: Option<PathBuf>,
    /// Show file owners through the ID mapping of this user namespace (/proc/PID/ns/user).
    #[arg(long)]
    idmap: Option<PathBuf>,
}

pub(crate) fn run(ctx: &Ctx, a: MountArgs) -> Result<()> {
    let repo = ctx.open()?;
    let require_signature = a
        .require_signature
        .as_deref()
        .map(|keys| verify::keyring(keys, a.revoked.as_deref()))
        .transpose()?;
    let request = Request {
        spec: a.refname,
        mountpoint: a.mountpoint,
        verity: a.verity.map(|v| match v {
            Verity::Require => VerityMode::Require,
            Verity::On => VerityMode::Try,
            Verity::Off => VerityMode::Off,
        }),
        require_signature,
        upperdir: a.upperdir,
        workdir: a.workdir,
        idmap: a.idmap,
    };
    let m = mount::mount(&repo, &request)?;
    if let Some(v) = &m.verified {
        eprintln!(
            "commit {} verified (ed25519 key {})",
            v.id,
            v.keys.join(", ")
        );
    }
    if m.contents_unchecked() {
        eprintln!(
            "warning: the image has no fs-verity here: file contents are checked when \
             objects are stored and by fsck, not by the kernel on every read"
        );
    }
    if ctx.json {
        print_json(
            &json!({"image": m.image.to_hex(), "mountpoint": request.mountpoint,
                           "verity": format!("{:?}", m.verity).to_lowercase(),
                           "verified_by": m.verified.as_ref().map(|v| &v.keys)}),
        );
    }
    Ok(())
}
