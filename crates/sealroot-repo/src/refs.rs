//! Refs: named images, `images/refs/NAME -> ../HEX` (one `../` per component of NAME), as
//! composefs-rs makes them. Refs are the roots of garbage collection.
//!
//! A ref is set by making the symlink under a temporary name in `tmp/` and renaming it over
//! the ref (`renameat` is atomic: readers see the old image or the new one), after a
//! `syncfs` that makes everything it reaches durable; then the ref's directory is fsync'ed.

use std::sync::atomic::Ordering;

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

use crate::error::{IoError, Operation as Op, RefError};
use crate::fs;
use crate::id::{is_lower_hex, ImageId, ObjectId, RefName};
use crate::transaction::Transaction;
use crate::{Repository, IMAGES_DIR, REFS_DIR, TMP_DIR};

/// How often setting a ref is retried when its directory vanishes under it (a concurrent
/// [`Repository::remove_ref`] removing the last ref of that directory).
const SET_REF_ATTEMPTS: usize = 8;

/// Where a ref leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefTarget {
    /// An image of the repository.
    Image(ImageId),
    /// An image id, but the image is not in the repository.
    Dangling(ImageId),
    /// Something that is not an image id (the symlink's text, or a description).
    Invalid(String),
}

/// A ref and where it leads, as listed by [`Repository::refs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefEntry {
    /// The name.
    pub name: RefName,
    /// Where it leads.
    pub target: RefTarget,
}

/// An entry found below `images/refs/`, before any checking.
pub(crate) struct RawRef {
    /// The path below `images/refs/`.
    pub(crate) name: String,
    /// The symlink's target, or `None` for something that is not a symlink.
    pub(crate) link: Option<String>,
}

/// The symlink text of a ref `name` to `image`.
pub(crate) fn link_text(name: &RefName, hex: &str) -> String {
    format!("{}{hex}", "../".repeat(name.depth()))
}

impl Repository {
    /// Every entry below `images/refs/`, depth first in name order.
    pub(crate) fn raw_refs(&self) -> Result<Vec<RawRef>, IoError> {
        self.raw_refs_in(REFS_DIR)
    }

    /// Every entry below `refs_dir` (`images/refs` or `commits/refs`), depth first in name
    /// order.
    pub(crate) fn raw_refs_in(&self, refs_dir: &str) -> Result<Vec<RawRef>, IoError> {
        fn walk(
            repo: &Repository,
            refs_dir: &str,
            dir: &std::os::fd::OwnedFd,
            prefix: &str,
            out: &mut Vec<RawRef>,
        ) -> Result<(), IoError> {
            let here = repo.join(refs_dir).join(prefix);
            let mut entries = fs::list(dir).map_err(|e| IoError::new(Op::List, &here, e))?;
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            for entry in entries {
                let name = format!("{prefix}{}", entry.name.to_string_lossy());
                match entry.file_type {
                    FileType::Directory => {
                        let sub = fs::open_dir(dir, entry.name.as_c_str()).map_err(|e| {
                            IoError::new(Op::Open, repo.join(refs_dir).join(&name), e)
                        })?;
                        walk(repo, refs_dir, &sub, &format!("{name}/"), out)?;
                    }
                    FileType::Symlink => {
                        let target = rustix::fs::readlinkat(dir, entry.name.as_c_str(), Vec::new())
                            .map_err(|e| {
                                IoError::new(Op::ReadLink, repo.join(refs_dir).join(&name), e)
                            })?;
                        out.push(RawRef {
                            name,
                            link: Some(target.to_string_lossy().into_owned()),
                        });
                    }
                    _ => out.push(RawRef { name, link: None }),
                }
            }
            Ok(())
        }
        let refs = match fs::open_dir(self.dir(), refs_dir) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Vec::new()),
            Err(e) => return Err(IoError::new(Op::Open, self.join(refs_dir), e)),
        };
        let mut out = Vec::new();
        walk(self, refs_dir, &refs, "", &mut out)?;
        Ok(out)
    }

    /// The image a ref's symlink text names, if it names one of this repository's
    /// algorithm (its last component is the image's hex digest).
    pub(crate) fn parse_ref_target(&self, link: &str) -> Option<ImageId> {
        let last = link.rsplit('/').next()?;
        if !is_lower_hex(last) {
            return None;
        }
        ObjectId::from_hex(self.algorithm(), last)
            .ok()
            .map(ImageId::new)
    }

    /// Whether image `id` is linked in `images/` and has its object.
    pub(crate) fn image_present(&self, id: &ImageId) -> Result<bool, IoError> {
        if id.object().algorithm() != self.algorithm() {
            return Ok(false);
        }
        let rel = format!("{IMAGES_DIR}/{}", id.to_hex());
        match rustix::fs::statat(self.dir(), rel.as_str(), AtFlags::empty()) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(IoError::new(Op::Stat, self.join(&rel), e)),
        }
    }

    /// Every ref with a valid name, and where it leads, in name order. Entries whose names
    /// break the [`RefName`] rules, and entries that are not symlinks, are left out;
    /// [`fsck`](Repository::fsck) reports them.
    pub fn refs(&self) -> Result<Vec<RefEntry>, RefError> {
        let mut out = Vec::new();
        for raw in self.raw_refs()? {
            let (Ok(name), Some(link)) = (RefName::new(&raw.name), raw.link) else {
                continue;
            };
            let target = match self.parse_ref_target(&link) {
                Some(id) if self.image_present(&id)? => RefTarget::Image(id),
                Some(id) => RefTarget::Dangling(id),
                None => RefTarget::Invalid(link),
            };
            out.push(RefEntry { name, target });
        }
        Ok(out)
    }

    /// The image ref `name` leads to.
    pub fn resolve_ref(&self, name: &RefName) -> Result<ImageId, RefError> {
        let link = self.read_ref_link(REFS_DIR, name)?;
        let Some(id) = self.parse_ref_target(&link) else {
            return Err(RefError::Broken {
                name: name.clone(),
                target: link,
                reason: "not an image digest of this repository",
            });
        };
        if !self.image_present(&id)? {
            return Err(RefError::Broken {
                name: name.clone(),
                target: link,
                reason: "the image is not in the repository",
            });
        }
        Ok(id)
    }

    /// The symlink text of ref `name` in `refs_dir`.
    pub(crate) fn read_ref_link(&self, refs_dir: &str, name: &RefName) -> Result<String, RefError> {
        let rel = format!("{refs_dir}/{name}");
        let link = match rustix::fs::readlinkat(self.dir(), rel.as_str(), Vec::new()) {
            Ok(link) => link.to_string_lossy().into_owned(),
            Err(Errno::NOENT | Errno::NOTDIR) => return Err(RefError::NotFound(name.clone())),
            Err(Errno::INVAL) => {
                return Err(RefError::Broken {
                    name: name.clone(),
                    target: String::new(),
                    reason: "it is not a symlink",
                })
            }
            Err(e) => return Err(IoError::new(Op::ReadLink, self.join(&rel), e).into()),
        };
        Ok(link)
    }

    /// Points ref `name` at `image` in a transaction of its own (see
    /// [`Transaction::set_ref`]).
    pub fn set_ref(&self, name: &RefName, image: &ImageId) -> Result<(), RefError> {
        let tx = self.transaction()?;
        tx.set_ref(name, image)?;
        tx.finish()?;
        Ok(())
    }

    /// Removes ref `name` (durably), and the ref directories it leaves empty. The image
    /// stays until `gc`.
    pub fn remove_ref(&self, name: &RefName) -> Result<(), RefError> {
        self.remove_ref_in(REFS_DIR, name)
    }

    /// Removes ref `name` from `refs_dir`, and the directories it leaves empty.
    pub(crate) fn remove_ref_in(&self, refs_dir: &str, name: &RefName) -> Result<(), RefError> {
        let refs = match fs::open_dir(self.dir(), refs_dir) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Err(RefError::NotFound(name.clone())),
            Err(e) => return Err(IoError::new(Op::Open, self.join(refs_dir), e).into()),
        };
        let path = self.join(refs_dir).join(name.as_str());
        match rustix::fs::statat(&refs, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {}
            Ok(_) | Err(Errno::NOENT | Errno::NOTDIR) => {
                return Err(RefError::NotFound(name.clone()))
            }
            Err(e) => return Err(IoError::new(Op::Stat, &path, e).into()),
        }
        match rustix::fs::unlinkat(&refs, name.as_str(), AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::NOENT) => return Err(RefError::NotFound(name.clone())),
            Err(e) => return Err(IoError::new(Op::Remove, &path, e).into()),
        }
        let mut dir = name.parent().map(str::to_owned);
        let mut flush = dir.clone().unwrap_or_default();
        while let Some(d) = dir {
            match rustix::fs::unlinkat(&refs, d.as_str(), AtFlags::REMOVEDIR) {
                Ok(()) => {
                    flush = d
                        .rsplit_once('/')
                        .map(|(p, _)| p.to_owned())
                        .unwrap_or_default();
                    dir = d.rsplit_once('/').map(|(p, _)| p.to_owned());
                }
                Err(_) => break,
            }
        }
        let flush_dir = if flush.is_empty() {
            ".".to_owned()
        } else {
            flush
        };
        let fd = fs::open_dir(&refs, flush_dir.as_str())
            .map_err(|e| IoError::new(Op::Open, self.join(refs_dir).join(&flush_dir), e))?;
        rustix::fs::fsync(&fd)
            .map_err(|e| IoError::new(Op::Sync, self.join(refs_dir).join(&flush_dir), e))?;
        Ok(())
    }
}

impl Transaction<'_> {
    /// Points ref `name` at `image`, replacing what it pointed at, atomically.
    ///
    /// First the whole filesystem is flushed (`syncfs`), so that the objects and images this
    /// transaction (or any other) wrote are on stable storage before any ref can reach them;
    /// then the symlink is made under a temporary name and renamed over the ref; then the
    /// ref's directories are fsync'ed, so the ref itself is durable when this returns.
    pub fn set_ref(&self, name: &RefName, image: &ImageId) -> Result<(), RefError> {
        let repo = self.repo;
        if !repo.image_present(image)? {
            return Err(RefError::ImageNotFound {
                name: name.clone(),
                image: *image,
            });
        }
        self.sync()?;
        self.set_ref_link(REFS_DIR, name, &link_text(name, &image.to_hex()))
    }

    /// Points ref `name` in `refs_dir` at `target` (symlink text), atomically and durably.
    /// The caller has checked the target and flushed what it reaches.
    pub(crate) fn set_ref_link(
        &self,
        refs_dir: &str,
        name: &RefName,
        target: &str,
    ) -> Result<(), RefError> {
        let repo = self.repo;
        fs::ensure_dir(repo.dir(), refs_dir)
            .map_err(|e| IoError::new(Op::CreateDir, repo.join(refs_dir), e))?;
        let refs = fs::open_dir(repo.dir(), refs_dir)
            .map_err(|e| IoError::new(Op::Open, repo.join(refs_dir), e))?;
        let path = repo.join(refs_dir).join(name.as_str());
        let conflict = || RefError::Conflict { name: name.clone() };
        let tmp_name = repo.tmp.unique_name("ref");
        let tmp_path = repo.join(TMP_DIR).join(&tmp_name);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(parent) = name.parent() {
                let mut prefix = String::new();
                for component in parent.split('/') {
                    if !prefix.is_empty() {
                        prefix.push('/');
                    }
                    prefix.push_str(component);
                    match fs::ensure_dir(&refs, &prefix) {
                        Ok(()) => {}
                        Err(Errno::NOTDIR) => return Err(conflict()),
                        Err(e) => {
                            return Err(IoError::new(
                                Op::CreateDir,
                                repo.join(refs_dir).join(&prefix),
                                e,
                            )
                            .into())
                        }
                    }
                }
            }
            rustix::fs::symlinkat(target, &self.tmp, tmp_name.as_str())
                .map_err(|e| IoError::new(Op::Symlink, &tmp_path, e))?;
            match rustix::fs::renameat(&self.tmp, tmp_name.as_str(), &refs, name.as_str()) {
                Ok(()) => break,
                Err(e) => {
                    let _ = rustix::fs::unlinkat(&self.tmp, tmp_name.as_str(), AtFlags::empty());
                    match e {
                        Errno::ISDIR | Errno::NOTDIR | Errno::NOTEMPTY | Errno::EXIST => {
                            return Err(conflict())
                        }
                        Errno::NOENT if attempt < SET_REF_ATTEMPTS => continue,
                        e => return Err(IoError::new(Op::Rename, &path, e).into()),
                    }
                }
            }
        }

        // Flush the ref's directory and every directory above it up to images/refs, which
        // covers directories just created.
        let mut dirs = vec![".".to_owned()];
        if let Some(parent) = name.parent() {
            let mut prefix = String::new();
            for component in parent.split('/') {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(component);
                dirs.push(prefix.clone());
            }
        }
        for d in dirs.iter().rev() {
            let dir_path = repo.join(refs_dir).join(d);
            let fd = fs::open_dir(&refs, d.as_str())
                .map_err(|e| IoError::new(Op::Open, &dir_path, e))?;
            rustix::fs::fsync(&fd).map_err(|e| IoError::new(Op::Sync, &dir_path, e))?;
        }
        self.counters.refs_set.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
