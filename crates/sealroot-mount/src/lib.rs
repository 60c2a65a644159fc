//! Mounting composefs images, as `mount.composefs` does, with the new mount API.
//!
//! # The model
//!
//! A composefs image is an EROFS filesystem that holds only metadata: names, modes, owners,
//! times, xattrs, symlink targets and small inline files. Each other regular file is a
//! *metacopy* stub: it carries `trusted.overlay.metacopy` (empty, or the fs-verity digest its
//! content must have) and `trusted.overlay.redirect=/xx/yyyy…`, the path of its content in a
//! content-addressed object store. Mounting the image takes two filesystems:
//!
//! 1. **erofs**, mounted from the image *file* (Linux 6.12+ reads a regular file directly; no
//!    loop device). The mount is detached: it is never attached to any directory.
//! 2. **overlayfs** with that erofs mount as its one lower layer and each object store
//!    ("basedir") as a *data-only* layer (`datadir+`), with `metacopy=on` and `redirect_dir=on`.
//!    Files of the image are looked up in erofs; the data of a metacopy file is read from the
//!    object its redirect names. With `verity=require` (see [`VerityMode`]) overlayfs also
//!    checks each object's fs-verity digest against the one the stub records.
//!
//! An optional upper and work directory make the result writable.
//!
//! | kernel call | what [`mount_image_detached`] passes |
//! |---|---|
//! | `fsopen("erofs")` | `source=/proc/self/fd/N` (the opened image), `ro`, `noacl` when a composefs header says the image has no ACLs; `fsmount` with `MOUNT_ATTR_RDONLY` |
//! | `mount_setattr` | with [`MountOptions::idmap`] only: `MOUNT_ATTR_IDMAP` with that user namespace, on the detached erofs mount (as `lcfs-mount.c`; the overlay shows the owners erofs gives it) |
//! | `fsopen("overlay")` | `source=composefs`, `metacopy=on`, `redirect_dir=on`, `verity=require` if asked, `lowerdir+` = the erofs mount fd, `datadir+` = each basedir fd, `upperdir`/`workdir` fds; `fsmount` with `MOUNT_ATTR_RDONLY` if read-only |
//!
//! Every layer is handed over as a file descriptor (`FSCONFIG_SET_FD`), so no path is looked up
//! twice and no option string needs escaping. That needs Linux 6.15 (a detached mount as an
//! overlayfs layer). When the kernel refuses, the erofs mount is attached for a moment at a
//! private temporary directory, as `lcfs-mount.c` always does, and the layers are given as
//! `/proc/self/fd/N` paths (`lowerdir+`/`datadir+`, Linux 6.7+), then the temporary mount is
//! detached again. With file-backed erofs (6.12+), that makes 6.12 the oldest kernel served.
//!
//! # The digest check
//!
//! With [`MountOptions::expected_digest`], the image's fs-verity digest is computed in userspace
//! (this crate does not rely on the filesystem having fs-verity), with the expected digest's
//! algorithm (sha256, or sha512 for an image of a sha512 repository), and the image is refused,
//! before anything is mounted, if it differs: [`MountError::DigestMismatch`] names both digests.
//!
//! A digest check is worth only as much as the guarantee that the bytes checked are the bytes
//! mounted. erofs opens its `source` by path, but `/proc/self/fd/N` is a magic link to the
//! inode behind our descriptor, so renaming another file over the image's name after the check
//! changes nothing. Rewriting the image *in place* would, and without fs-verity nothing in the
//! kernel forbids it. So the checked bytes are first copied into an unnamed `O_TMPFILE` in the
//! image's own directory (a reflink where the filesystem can), hashed as they are copied, and
//! erofs is mounted from that copy, which no other process can name or open. Only when no such
//! file can be made and the image sits on a read-only mount is the image mounted in place; its
//! size and change times are then compared again after the mount ([`MountError::ImageChanged`]).
//!
//! # Option strings
//!
//! [`parse_mount_options`] reads the `-o` string of `mount.composefs`
//! (`basedir=DIR[:DIR...],digest=HEX,verity,...`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod fsctx;
mod idmap;
mod image;
mod mount;
mod options;

pub use error::{DirRole, MountError, Step};
pub use mount::{
    attach, mount_image, mount_image_detached, mount_image_detached_for_tests, TestHooks,
};
pub use options::{parse_mount_options, ExtraFlags, MountOptions, OptionsError, VerityMode};
pub use sealroot_sys::namespace::NamespaceType;
pub use sealroot_verity::{AnyDigest, HashAlgorithm, Sha256Digest, Sha512Digest};
