//! Reading refs: `images/refs/NAME -> ../HEX` and `commits/refs/NAME -> ../HEX` (one `../`
//! per component of NAME), as composefs-rs makes them. Refs are the roots of garbage
//! collection.
//!
//! A ref is a symlink that is read, never followed: its text must have exactly the form
//! [`layout::ref_link`] gives for its name, and the directories above it are opened without
//! following symlinks, so a planted link can make a ref broken but never lead outside.

use std::os::fd::OwnedFd;

use rustix::fs::FileType;
use rustix::io::Errno;

use crate::error::{IoError, Operation as Op, RefError};
use crate::fs;
use crate::id::{is_lower_hex, ImageId, ObjectId, RefName};
use crate::layout::{self, RefKind};
use crate::Repository;

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

/// An entry found below a refs directory, before any checking.
pub(crate) struct RawRef {
    /// The path below the refs directory.
    pub(crate) name: String,
    /// The symlink's target, or `None` for something that is not a symlink.
    pub(crate) link: Option<String>,
}

impl RawRef {
    /// The hex the link of an image or commit ref names, if the name is valid and the link
    /// has the one form it may.
    pub(crate) fn target_hex(&self, kind: RefKind) -> Option<&str> {
        let hex = self.target(kind)?;
        is_lower_hex(hex).then_some(hex)
    }

    /// The entry the link names, if the name is valid and the link has the one form it may.
    pub(crate) fn target(&self, kind: RefKind) -> Option<&str> {
        let name = RefName::new(&self.name).ok()?;
        layout::parse_ref_link(kind, &name, self.link.as_deref()?)
    }
}

impl Repository {
    /// Every entry below the refs directory of `kind`, depth first in name order. A symlink
    /// is a ref whatever it points at (it is read, not followed).
    pub(crate) fn raw_refs(&self, kind: RefKind) -> Result<Vec<RawRef>, IoError> {
        let Some(refs) = self.open_layout(kind.dir())? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        self.walk_refs(kind, &refs, "", &mut out)?;
        Ok(out)
    }

    fn walk_refs(
        &self,
        kind: RefKind,
        dir: &OwnedFd,
        prefix: &str,
        out: &mut Vec<RawRef>,
    ) -> Result<(), IoError> {
        let path_of = |name: &str| self.join(kind.dir()).join(name);
        let mut entries = fs::list(dir).map_err(|e| IoError::new(Op::List, path_of(prefix), e))?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for entry in entries {
            let name = format!("{prefix}{}", entry.name.to_string_lossy());
            match entry.file_type {
                FileType::Directory => {
                    let sub = fs::open_dir(dir, entry.name.as_c_str())
                        .map_err(|e| IoError::new(Op::Open, path_of(&name), e))?;
                    self.walk_refs(kind, &sub, &format!("{name}/"), out)?;
                }
                FileType::Symlink => {
                    let target = rustix::fs::readlinkat(dir, entry.name.as_c_str(), Vec::new())
                        .map_err(|e| IoError::new(Op::ReadLink, path_of(&name), e))?;
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

    /// The symlink text of ref `name` of `kind`. The directories above it are opened
    /// without following symlinks: a symlink among them is an error naming it.
    pub(crate) fn read_ref_link(&self, kind: RefKind, name: &RefName) -> Result<String, RefError> {
        let rel = format!("{}/{name}", kind.dir());
        let parent_rel = match name.parent() {
            Some(p) => format!("{}/{p}", kind.dir()),
            None => kind.dir().to_owned(),
        };
        let parent = match fs::open_dir(self.dir(), parent_rel.as_str()) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => return Err(RefError::NotFound(name.clone())),
            Err(e) => return Err(IoError::new(Op::Open, self.join(&parent_rel), e).into()),
        };
        match rustix::fs::readlinkat(&parent, name.file_name(), Vec::new()) {
            Ok(link) => Ok(link.to_string_lossy().into_owned()),
            Err(Errno::NOENT | Errno::NOTDIR) => Err(RefError::NotFound(name.clone())),
            Err(Errno::INVAL) => Err(RefError::broken(name, "", "it is not a symlink")),
            Err(e) => Err(IoError::new(Op::ReadLink, self.join(&rel), e).into()),
        }
    }

    /// The hex that ref `name` of `kind` names, checked to have the one form a ref may have.
    pub(crate) fn ref_target_hex(&self, kind: RefKind, name: &RefName) -> Result<String, RefError> {
        let link = self.read_ref_link(kind, name)?;
        match layout::parse_ref_link(kind, name, &link) {
            Some(hex) if is_lower_hex(hex) => Ok(hex.to_owned()),
            _ => Err(RefError::broken(
                name,
                &link,
                "not a link of the form a ref has (../ per component, then a digest)",
            )),
        }
    }

    /// The image a ref's target hex names, if it is a digest of this repository's algorithm.
    pub(crate) fn image_of_hex(&self, hex: &str) -> Option<ImageId> {
        ObjectId::from_hex(self.algorithm(), hex)
            .ok()
            .map(ImageId::new)
    }

    /// Every image ref with a valid name, and where it leads, in name order. Entries whose
    /// names break the [`RefName`] rules, and entries that are not symlinks, are left out;
    /// [`fsck`](Repository::fsck) reports them.
    pub fn refs(&self) -> Result<Vec<RefEntry>, RefError> {
        let mut out = Vec::new();
        for raw in self.raw_refs(RefKind::Image)? {
            let (Ok(name), Some(link)) = (RefName::new(&raw.name), raw.link.clone()) else {
                continue;
            };
            let target = match raw
                .target_hex(RefKind::Image)
                .and_then(|h| self.image_of_hex(h))
            {
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
        let hex = self.ref_target_hex(RefKind::Image, name)?;
        let broken = |reason| RefError::broken(name, &hex, reason);
        let id = self
            .image_of_hex(&hex)
            .ok_or_else(|| broken("not an image digest of this repository"))?;
        if !self.image_present(&id)? {
            return Err(broken("the image is not in the repository"));
        }
        Ok(id)
    }
}
