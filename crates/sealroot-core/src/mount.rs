//! Mounting what a repository holds: a ref, commit or image, optionally only if its commit is
//! signed by a trusted key. The image is mounted with `digest=` set to the digest the caller
//! trusts (the signed one), which the mount checks on a private copy before the kernel sees
//! it; file contents are checked by overlayfs `verity=require` where the objects have
//! fs-verity.

use std::path::PathBuf;

use sealroot_mount::{MountError, MountOptions, VerityMode};
use sealroot_repo::{ImageError, ImageId, Repository};
use sealroot_trust::ed25519::Keyring;

use crate::resolve::{self, ResolveError};
use crate::verify::{self, Verified};

/// Why a mount was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ref, commit or image could not be resolved.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// A signature was required and the commit does not verify.
    #[error("refusing to mount {spec}: {source}")]
    NotVerified {
        /// What was asked for.
        spec: String,
        /// Why.
        #[source]
        source: Box<verify::Error>,
    },
    /// The signed image is not in the repository.
    #[error("refusing to mount {spec}: its signed image {} is not in the repository", image.to_hex())]
    SignedImageMissing {
        /// What was asked for.
        spec: String,
        /// The image.
        image: ImageId,
    },
    /// The image could not be looked up.
    #[error(transparent)]
    Image(#[from] Box<ImageError>),
    /// The mount itself failed.
    #[error("cannot mount {spec} at {}: {source}", mountpoint.display())]
    Mount {
        /// What was asked for.
        spec: String,
        /// Where.
        mountpoint: PathBuf,
        /// Why.
        #[source]
        source: Box<MountError>,
    },
}

/// What to mount, where and how.
#[derive(Debug, Default)]
pub struct Request {
    /// A ref, commit (id or prefix) or image id.
    pub spec: String,
    /// Where.
    pub mountpoint: PathBuf,
    /// overlayfs `verity=`; `None`: required where the repository requires fs-verity or the
    /// image has it, else off.
    pub verity: Option<VerityMode>,
    /// Mount only a commit signed by a key of this keyring (`mount --require-signature`).
    pub require_signature: Option<Keyring>,
    /// A writable upper layer and its work directory.
    pub upperdir: Option<PathBuf>,
    /// The work directory that goes with `upperdir`.
    pub workdir: Option<PathBuf>,
    /// A user namespace whose ID mapping the mount shows owners through.
    pub idmap: Option<PathBuf>,
}

/// What was mounted.
#[derive(Debug)]
pub struct Mounted {
    /// The image.
    pub image: ImageId,
    /// overlayfs's fs-verity mode.
    pub verity: VerityMode,
    /// The verified commit, when a signature was required.
    pub verified: Option<Verified>,
}

impl Mounted {
    /// Whether a signature was required but file contents are not checked by the kernel on
    /// every read (the objects have no fs-verity here), which a front end should say.
    pub fn contents_unchecked(&self) -> bool {
        self.verified.is_some() && self.verity != VerityMode::Require
    }
}

/// Mounts `request.spec` at `request.mountpoint`.
pub fn mount(repo: &Repository, request: &Request) -> Result<Mounted, Error> {
    let spec = &request.spec;
    let (image, verified) = match &request.require_signature {
        Some(ring) => {
            let id = resolve::commit(repo, spec)?;
            // The signature covers the commit, which names the image by digest; the mount
            // checks the image against that digest before the kernel sees it.
            let v =
                verify::verify_commit(repo, &id, ring, false).map_err(|e| Error::NotVerified {
                    spec: spec.clone(),
                    source: Box::new(e),
                })?;
            let image = ImageId::from_digest(v.commit.image);
            if !repo.has_image(&image).map_err(Box::new)? {
                return Err(Error::SignedImageMissing {
                    spec: spec.clone(),
                    image,
                });
            }
            (image, Some(v))
        }
        None => (resolve::image(repo, spec)?, None),
    };
    // Whether the objects have fs-verity is read off the image (stored like them), not learnt
    // by writing a probe: a repository mounted at boot is often read-only.
    let image_has_verity = repo
        .open_image(&image)
        .ok()
        .and_then(|f| sealroot_sys::fsverity::is_verity_enabled(&f).ok())
        .unwrap_or(false);
    let verity = request
        .verity
        .unwrap_or(if repo.config().require_verity || image_has_verity {
            VerityMode::Require
        } else {
            VerityMode::Off
        });
    let options = MountOptions {
        basedirs: vec![repo.objects_path()],
        expected_digest: Some(*image.digest()),
        verity,
        readonly: request.upperdir.is_none(),
        upperdir: request.upperdir.clone(),
        workdir: request.workdir.clone(),
        idmap: request.idmap.clone(),
    };
    sealroot_mount::mount_image(&repo.image_path(&image), &request.mountpoint, &options).map_err(
        |source| Error::Mount {
            spec: spec.clone(),
            mountpoint: request.mountpoint.clone(),
            source: Box::new(source),
        },
    )?;
    Ok(Mounted {
        image,
        verity,
        verified,
    })
}
