//! The three-way merge of `/etc`.
//!
//! When a device deploys a new commit, the new deployment's `/etc` is made from three inputs:
//!
//! * the **old default**: `/etc` of the booted commit's tree, an [`ImageEtc`];
//! * the **local** `/etc`: the running deployment's directory, as the admin left it, a
//!   [`LocalEtc`] read from a directory fd;
//! * the **new default**: `/etc` of the commit being deployed, another [`ImageEtc`].
//!
//! The defaults are [`Tree`](sealroot_format::Tree)s, whose external files are read through
//! [`Objects`] (a [`Repository`](sealroot_repo::Repository) is one): no image is mounted.
//! The local directory is read once into a tree of the same kind, with fs-verity digests of
//! its files, so that comparing a local file with its default is a comparison of digests.
//!
//! [`plan`] compares the three and decides every path before anything is written: the
//! [`MergePlan`] lists the [`Change`]s (printable, one line each) and the [`Conflict`]s, which
//! a [`ConflictPolicy`] resolves or not. [`apply`] then writes the merged `/etc` into an empty
//! directory, fd-relative, with modes, owners, xattrs and mtimes, and refuses to start while a
//! conflict is unresolved.
//!
//! # What counts as a change
//!
//! A path differs between two inputs when it is present in one only, or its type, its
//! content (the bytes of a file, the target of a symlink, the device number of a device),
//! its permission bits (`07777`, but not those of a symlink, which Linux cannot set), its
//! owner or group, or its xattrs (`security.selinux` included, all values compared) differ.
//! Modification times, link counts and which names are hard links of each other do not
//! count: a file only `touch`ed is untouched. A directory differs by its own metadata; what
//! it holds is compared name by name. [`MergeOptions::ignored_xattrs`] leaves named xattrs out
//! of the comparison (see *Differences from ostree*).
//!
//! # The rules
//!
//! For each path, the local `/etc` is compared with the old default ("local" below) and the
//! new default with the old ("new"). Changes inside a directory count as changes of it where
//! a rule needs to know whether anything at or below a path changed.
//!
//! | local | new | result |
//! |---|---|---|
//! | untouched | anything | the new default (its file, its directory, or its absence) |
//! | changed, added or deleted | untouched | the local version (or its absence) |
//! | deleted | changed or deleted | stays deleted, even if the new image changed things inside |
//! | changed or added | deleted | the local version; of a directory, only what changed locally inside it |
//! | file changed or added | file changed or added | the local version (local changes win, as in ostree) |
//! | directory | directory | merged: the directory's own metadata from local if it changed there, else from new; each name inside by these rules |
//! | non-directory changed or added | directory changed or added | **conflict** `LocalFileNewDirectory` |
//! | directory with changes at or below it | non-directory changed or added | **conflict** `LocalDirectoryNewFile` |
//!
//! "File" stands for any non-directory: regular file, symlink, device, fifo, socket. A
//! metadata change pins the whole file: a file whose mode the admin changed keeps its old
//! content even when the new image changes the content (as in ostree).
//!
//! A conflict is resolved by the [`ConflictPolicy`]: [`Fail`](ConflictPolicy::Fail) (the
//! default) leaves it unresolved and [`apply`] refuses the plan;
//! [`KeepLocal`](ConflictPolicy::KeepLocal) takes the whole local version of the path (the
//! directory with everything in it, or the file); [`TakeNew`](ConflictPolicy::TakeNew) takes
//! the whole new default there, dropping the local changes at and below the path.
//!
//! # Writing
//!
//! [`apply`] writes into an empty directory given as an fd (the caller's staging directory:
//! a crash leaves a partial directory the caller removes, so files are created in place with
//! `O_CREAT | O_EXCL | O_NOFOLLOW`, not through `O_TMPFILE`). Each file's content comes from
//! the plan (small files, kept whole in the trees), from an object (new defaults), or from
//! the local directory, opened one component at a time with `O_NOFOLLOW` below the local
//! directory fd; every copied file is hashed on the way and must have the digest the plan
//! saw, so a file edited between [`plan`] and [`apply`] is reported, not silently merged.
//! Owner, mode, xattrs and mtime are set in that order (`chown` clears set-user-ID bits and
//! `security.capability`), directories' after their contents. Names that are hard links of
//! one inode in the input they are taken from stay hard links in the result; a name taken
//! from local and another from the new default are separate files. Nothing is flushed: the
//! caller syncs the filesystem before making the result reachable.
//!
//! # Differences from ostree
//!
//! ostree's `merge_configuration_from` (`ostree-sysroot-deploy.c`), read for facts:
//!
//! * ostree ignores xattrs when it compares (`OSTREE_DIFF_FLAGS_IGNORE_XATTRS`), because
//!   SELinux labels differ between its `/usr/etc` and the labelled `/etc`. We compare them,
//!   so that a relabelled file is a local change; where the running system labels files the
//!   images do not, [`MergeOptions::ignored_xattrs`] can leave `security.selinux` out.
//! * ostree ignores a changed directory's own metadata unless the new image lacks the
//!   directory or has a file there; we keep it.
//! * ostree fails ("Modified config file newly defaults to directory") for a locally changed
//!   file where the new image has any directory, even one the new image did not change; we
//!   keep the local file when the new image left that directory as it was.
//! * ostree silently replaces a file of the new image by a locally added or changed
//!   directory, and follows a symlink of the new image to write a locally changed file below
//!   it (its `ensure_directory_from_template` opens the parent with `glnx_opendirat(...,
//!   TRUE)`); both are conflicts here.
//! * ostree skips devices, fifos and sockets ("Ignoring non-regular/non-symlink file");
//!   we merge them like files.
//! * ostree copies each name separately, so hard links break; we keep them.

mod apply;
mod compare;
mod error;
mod input;
mod plan;

pub use apply::{apply, Applied};
pub use compare::{Delta, What};
pub use error::{ApplyError, ApplyOp, InputError, PlanError, ReadLocalError};
pub use input::{ImageEtc, LocalEtc, Objects};
pub use plan::{
    plan, Change, Conflict, ConflictKind, ConflictPolicy, MergeOptions, MergePlan, Outcome,
    ParsePolicyError, Side,
};
