//! Setting and removing refs, each under its own lock, by compare-and-swap.
//!
//! A ref is set by making the symlink under a temporary name in `tmp/` and renaming it over
//! the ref (`renameat` is atomic: readers see the old target or the new one), after a
//! `syncfs` that makes everything it reaches durable; then the ref's directories are
//! fsync'ed. The directories on the way are opened without following symlinks, so a planted
//! link is refused, never written through.
//!
//! Every change of a ref takes the ref's lock (`tmp/locks/ref.DIGEST`, one per name, shared
//! by the image ref and the commit ref of that name), reads the ref, checks it is what the
//! caller expects ([`Expect`]) and only then renames: two writers of one ref never lose each
//! other's work silently.

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use rustix::io::Errno;

use super::lock::NamedLock;
use super::Transaction;
use crate::error::{IoError, Operation as Op, RefError};
use crate::fs;
use crate::id::{ImageId, RefName};
use crate::layout::{self, RefKind};
use crate::Repository;

/// How often setting a ref is retried when its directory vanishes under it (a concurrent
/// removal of the last ref of that directory).
const SET_REF_ATTEMPTS: usize = 8;

/// What a ref must hold for a compare-and-swap to go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect<T> {
    /// Whatever it holds (a plain set).
    Any,
    /// It must not exist.
    Absent,
    /// It must lead to this.
    Is(T),
}

impl<T: Copy + PartialEq + std::fmt::Display> Expect<T> {
    fn describe(&self) -> String {
        match self {
            Expect::Any => "anything".into(),
            Expect::Absent => "no ref".into(),
            Expect::Is(t) => t.to_string(),
        }
    }

    /// Whether a ref holding `found` (`None`: no ref) is as expected; if not, what was
    /// expected and what it holds, in words, for the error.
    pub(crate) fn check(self, found: Option<T>) -> Result<(), (String, String)> {
        let ok = match self {
            Expect::Any => true,
            Expect::Absent => found.is_none(),
            Expect::Is(want) => found == Some(want),
        };
        if ok {
            Ok(())
        } else {
            Err((self.describe(), held(found)))
        }
    }
}

/// What a ref holds, in words: `no ref` when there is none.
pub(crate) fn held<T: std::fmt::Display>(found: Option<T>) -> String {
    found.map_or_else(|| "no ref".into(), |f| f.to_string())
}

impl Transaction<'_> {
    /// Takes the lock of ref name `name` (both kinds of ref of that name share it).
    pub(crate) fn lock_ref(&self, name: &RefName) -> Result<NamedLock, IoError> {
        NamedLock::take(self, &layout::lock_name("ref", name.as_str()))
    }

    /// Points image ref `name` at `image`, replacing what it pointed at, atomically: first
    /// the whole filesystem is flushed, so that the objects and images this transaction (or
    /// any other) wrote are on stable storage before any ref can reach them.
    pub fn set_ref(&self, name: &RefName, image: &ImageId) -> Result<(), RefError> {
        self.swap_ref(name, image, Expect::Any)
    }

    /// [`set_ref`](Self::set_ref) only if the ref holds what `expect` says, under the ref's
    /// lock; else [`RefError::Moved`] and nothing changes.
    pub fn swap_ref(
        &self,
        name: &RefName,
        image: &ImageId,
        expect: Expect<ImageId>,
    ) -> Result<(), RefError> {
        let repo = self.repo;
        if !repo.image_present(image)? {
            return Err(RefError::ImageNotFound {
                name: name.clone(),
                image: *image,
            });
        }
        let _lock = self.lock_ref(name)?;
        if expect != Expect::Any {
            let found = match repo.resolve_ref(name) {
                Ok(id) => Some(id),
                Err(RefError::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            expect
                .check(found)
                .map_err(|(expected, found)| RefError::Moved {
                    name: name.clone(),
                    expected,
                    found,
                })?;
        }
        self.sync()?;
        self.write_ref(RefKind::Image, name, &image.to_hex())?;
        self.counters.refs_set.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Points ref `name` of `kind` at `entry` of the directory its refs point into,
    /// atomically and durably. The caller holds the ref's lock, has checked the target and
    /// flushed what it reaches.
    pub(crate) fn write_ref(
        &self,
        kind: RefKind,
        name: &RefName,
        entry: &str,
    ) -> Result<(), RefError> {
        self.prepare_ref(kind, name, entry)?.install()
    }

    /// Everything of setting a ref that can fail for want of space (its directories, the new
    /// symlink under a temporary name), so that several refs can be prepared first and then
    /// renamed into place together.
    pub(crate) fn prepare_ref(
        &self,
        kind: RefKind,
        name: &RefName,
        entry: &str,
    ) -> Result<PreparedRef<'_, '_>, RefError> {
        let repo = self.repo;
        let target = layout::ref_link(kind, name, entry);
        let parent = self.ref_parent(kind, name)?;
        let tmp_name = repo.tmp.unique_name("ref");
        rustix::fs::symlinkat(target.as_str(), &self.tmp, tmp_name.as_str())
            .map_err(|e| IoError::new(Op::Symlink, repo.join(layout::TMP).join(&tmp_name), e))?;
        Ok(PreparedRef {
            tx: self,
            kind,
            name: name.clone(),
            parent,
            tmp_name,
            installed: false,
        })
    }

    /// The directory ref `name` of `kind` goes in, made if missing; every directory on the
    /// way is a real one. A component that is a ref already is a [`RefError::Conflict`]; a
    /// symlink planted there is refused with an error naming it.
    fn ref_parent(&self, kind: RefKind, name: &RefName) -> Result<OwnedFd, RefError> {
        let repo = self.repo;
        let rel = match name.parent() {
            Some(p) => format!("{}/{p}", kind.dir()),
            None => kind.dir().to_owned(),
        };
        match fs::ensure_dirs(repo.dir(), &rel) {
            Ok(fd) => Ok(fd),
            Err(Errno::LOOP | Errno::NOTDIR) if self.is_ref_prefix(kind, name) => {
                Err(RefError::Conflict { name: name.clone() })
            }
            Err(e) => Err(IoError::new(Op::CreateDir, repo.join(&rel), e).into()),
        }
    }

    /// Whether some proper prefix of `name` is a ref of `kind` (`a` when setting `a/b`).
    fn is_ref_prefix(&self, kind: RefKind, name: &RefName) -> bool {
        let mut prefix = name.as_str();
        while let Some((p, _)) = prefix.rsplit_once('/') {
            prefix = p;
            if let Ok(n) = RefName::new(prefix) {
                if self.repo.ref_target_hex(kind, &n).is_ok() {
                    return true;
                }
            }
        }
        false
    }
}

impl Repository {
    /// Points image ref `name` at `image` in a transaction of its own (see
    /// [`Transaction::set_ref`]).
    pub fn set_ref(&self, name: &RefName, image: &ImageId) -> Result<(), RefError> {
        let tx = self.transaction()?;
        tx.set_ref(name, image)?;
        tx.finish()?;
        Ok(())
    }

    /// Removes image ref `name` (durably, under its lock), and the ref directories it leaves
    /// empty. The image stays until `gc`.
    pub fn remove_ref(&self, name: &RefName) -> Result<(), RefError> {
        let tx = self.transaction()?;
        let _lock = tx.lock_ref(name)?;
        tx.remove_ref_locked(RefKind::Image, name)?;
        drop(_lock);
        tx.finish()?;
        Ok(())
    }
}

impl Transaction<'_> {
    /// Removes ref `name` of `kind`, and the directories it leaves empty. The caller holds
    /// the ref's lock.
    pub(crate) fn remove_ref_locked(&self, kind: RefKind, name: &RefName) -> Result<(), RefError> {
        let repo = self.repo;
        let path = repo.join(kind.dir()).join(name.as_str());
        // Only a symlink is a ref; the directories above it are real ones.
        repo.read_ref_link(kind, name)?;
        let Some(refs) = repo.open_layout(kind.dir())? else {
            return Err(RefError::NotFound(name.clone()));
        };
        // Each name is removed from its own directory, opened without following links.
        let open = |rel: Option<&str>| -> Result<OwnedFd, IoError> {
            let rel = rel.unwrap_or(".");
            fs::open_dir(&refs, rel)
                .map_err(|e| IoError::new(Op::Open, repo.join(kind.dir()).join(rel), e))
        };
        let last_of = |n: &str| n.rsplit_once('/').map_or(n, |(_, l)| l).to_owned();
        let parent_of = |n: &str| n.rsplit_once('/').map(|(p, _)| p.to_owned());
        let mut dir = open(name.parent())?;
        match rustix::fs::unlinkat(&dir, name.file_name(), rustix::fs::AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::NOENT) => return Err(RefError::NotFound(name.clone())),
            Err(e) => return Err(IoError::new(Op::Remove, &path, e).into()),
        }
        // The directories left empty go too; the lowest one still there is flushed.
        let mut current = name.parent().map(str::to_owned);
        while let Some(d) = current {
            let up = parent_of(&d);
            let up_fd = open(up.as_deref())?;
            if rustix::fs::unlinkat(&up_fd, last_of(&d).as_str(), rustix::fs::AtFlags::REMOVEDIR)
                .is_err()
            {
                break;
            }
            dir = up_fd;
            current = up;
        }
        rustix::fs::fsync(&dir).map_err(|e| IoError::new(Op::Sync, repo.join(kind.dir()), e))?;
        Ok(())
    }
}

/// A ref ready to be renamed into place ([`Transaction::prepare_ref`]); its temporary symlink
/// is removed if it never is.
pub(crate) struct PreparedRef<'t, 'r> {
    tx: &'t Transaction<'r>,
    kind: RefKind,
    name: RefName,
    parent: OwnedFd,
    tmp_name: String,
    installed: bool,
}

impl PreparedRef<'_, '_> {
    /// Renames the ref into place (atomic: readers see the old target or the new one), then
    /// flushes its directory and every directory above it up to the refs directory, which
    /// covers directories just created.
    pub(crate) fn install(mut self) -> Result<(), RefError> {
        let tx = self.tx;
        let repo = tx.repo;
        let (kind, name) = (self.kind, self.name.clone());
        let path = repo.join(kind.dir()).join(name.as_str());
        let mut attempt = 0;
        loop {
            attempt += 1;
            match rustix::fs::renameat(
                &tx.tmp,
                self.tmp_name.as_str(),
                &self.parent,
                name.file_name(),
            ) {
                Ok(()) => break,
                Err(Errno::ISDIR | Errno::NOTDIR | Errno::NOTEMPTY | Errno::EXIST) => {
                    return Err(RefError::Conflict { name })
                }
                // Its directory vanished (the last ref of it removed meanwhile): again.
                Err(Errno::NOENT) if attempt < SET_REF_ATTEMPTS => {
                    self.parent = tx.ref_parent(kind, &name)?;
                }
                Err(e) => return Err(IoError::new(Op::Rename, &path, e).into()),
            }
        }
        self.installed = true;
        let mut dir_rel = match name.parent() {
            Some(p) => format!("{}/{p}", kind.dir()),
            None => kind.dir().to_owned(),
        };
        let mut dir = self
            .parent
            .try_clone()
            .map_err(|e| IoError::new(Op::Open, &path, e))?;
        loop {
            rustix::fs::fsync(&dir).map_err(|e| IoError::new(Op::Sync, repo.join(&dir_rel), e))?;
            if dir_rel == kind.dir() {
                break;
            }
            dir_rel = dir_rel
                .rsplit_once('/')
                .map_or_else(String::new, |(p, _)| p.to_owned());
            dir = fs::open_dir(repo.dir(), dir_rel.as_str())
                .map_err(|e| IoError::new(Op::Open, repo.join(&dir_rel), e))?;
        }
        Ok(())
    }
}

impl Drop for PreparedRef<'_, '_> {
    fn drop(&mut self) {
        if !self.installed {
            let _ = rustix::fs::unlinkat(
                &self.tx.tmp,
                self.tmp_name.as_str(),
                rustix::fs::AtFlags::empty(),
            );
        }
    }
}
