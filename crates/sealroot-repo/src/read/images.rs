//! Images: composefs EROFS images stored as objects (named by the image file's fs-verity
//! digest) and linked from `images/HEX -> ../objects/XX/REST`.
//!
//! Only what is linked in `images/` is an image: as in composefs-rs, an arbitrary object is
//! never mounted, since the kernel's EROFS code should only see images we wrote ourselves.
//! The link is read, never followed: an image is present when `images/HEX` is a symlink
//! whose text is exactly `../objects/XX/REST` for its own digest and that object exists.

use std::fs::File;
use std::path::PathBuf;

use rustix::fs::FileType;
use rustix::io::Errno;
use sealroot_format::erofs;
use sealroot_format::{Content, InodeId, Tree};
use sealroot_verity::HashAlgorithm;

use crate::error::{BadPayload, ImageError, IoError, Operation as Op};
use crate::fs;
use crate::id::{is_lower_hex, ImageId, ObjectId};
use crate::layout;
use crate::repository::LayoutDir;
use crate::Repository;

/// The largest image read whole: far above any OS tree's metadata (tens of MiB; /usr of a
/// desktop distribution is about 30 MiB), low enough that a hostile object linked in
/// `images/` costs little when fsck and gc read several at once.
pub(crate) const IMAGE_MAX: u64 = 1 << 30;

/// The objects the external files of `tree` need (each once, sorted).
pub(crate) fn tree_objects(
    algorithm: HashAlgorithm,
    tree: &Tree,
) -> Result<Vec<ObjectId>, BadPayload> {
    let mut ids = Vec::new();
    for (i, inode) in tree.inodes.iter().enumerate() {
        if let Content::Regular(file) = &inode.content {
            if let Some(payload) = &file.payload {
                let id = ObjectId::from_object_path_bytes(algorithm, payload).ok_or_else(|| {
                    BadPayload {
                        file: path_of(tree, InodeId(i as u32)),
                        payload: String::from_utf8_lossy(payload).into_owned(),
                    }
                })?;
                ids.push(id);
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// A path of `inode` in `tree`, for messages.
pub(crate) fn path_of(tree: &Tree, inode: InodeId) -> String {
    let mut found = None;
    tree.walk(|path, entry| {
        if found.is_none() && entry.inode == inode {
            found = Some(String::from_utf8_lossy(path).into_owned());
        }
    });
    found.unwrap_or_else(|| "/".to_owned())
}

/// The first inode of `tree` whose payload is `id`'s path, for messages.
pub(crate) fn inode_with_object(tree: &Tree, id: &ObjectId) -> InodeId {
    let path = id.object_path();
    tree.inodes
        .iter()
        .position(|inode| {
            matches!(&inode.content, Content::Regular(f) if f.payload.as_deref() == Some(path.as_bytes()))
        })
        .map_or(InodeId::ROOT, |i| InodeId(i as u32))
}

/// How an entry of `images/` stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ImageLink {
    /// No such entry.
    Absent,
    /// A symlink with the right text.
    Good,
    /// A symlink with another text.
    BadLink(String),
    /// Not a symlink.
    NotASymlink,
}

impl Repository {
    /// Every image in `images/`, sorted. Entries that are not links named by a digest of
    /// this repository's algorithm are skipped; [`fsck`](Repository::fsck) reports them.
    pub fn images(&self) -> Result<Vec<ImageId>, ImageError> {
        Ok(self.image_ids()?)
    }

    /// [`images`](Self::images), with the error of the listing.
    pub(crate) fn image_ids(&self) -> Result<Vec<ImageId>, IoError> {
        let Some(images) = self.layout_dir_if_any(LayoutDir::Images)? else {
            return Ok(Vec::new());
        };
        let mut ids = Vec::new();
        fs::for_each(images, |name, file_type| {
            let Ok(name) = name.to_str() else { return };
            if file_type == FileType::Symlink && is_lower_hex(name) {
                if let Ok(id) = ObjectId::from_hex(self.algorithm(), name) {
                    ids.push(ImageId::new(id));
                }
            }
        })
        .map_err(|e| IoError::new(Op::List, self.join(layout::IMAGES), e))?;
        ids.sort();
        Ok(ids)
    }

    /// The state of `images/HEX` for image `id`, its link read and never followed.
    pub(crate) fn image_link(&self, id: &ImageId) -> Result<ImageLink, IoError> {
        let Some(images) = self.layout_dir_if_any(LayoutDir::Images)? else {
            return Ok(ImageLink::Absent);
        };
        let name = id.to_hex();
        match rustix::fs::readlinkat(images, name.as_str(), Vec::new()) {
            Ok(text) if text.as_bytes() == layout::object_link(id.object()).as_bytes() => {
                Ok(ImageLink::Good)
            }
            Ok(text) => Ok(ImageLink::BadLink(text.to_string_lossy().into_owned())),
            Err(Errno::NOENT) => Ok(ImageLink::Absent),
            Err(Errno::INVAL) => Ok(ImageLink::NotASymlink),
            Err(e) => Err(IoError::new(
                Op::ReadLink,
                self.join(&layout::image_rel(id)),
                e,
            )),
        }
    }

    /// Whether image `id` is in the repository: linked in `images/` by the link its name
    /// calls for, with its object.
    pub fn has_image(&self, id: &ImageId) -> Result<bool, ImageError> {
        self.check_algorithm(id.object())?;
        Ok(self.image_present(id)?)
    }

    /// [`has_image`](Self::has_image) for an id of any algorithm (another algorithm's image
    /// is simply not here), with the error of the lookup.
    pub(crate) fn image_present(&self, id: &ImageId) -> Result<bool, IoError> {
        if id.object().algorithm() != self.algorithm() {
            return Ok(false);
        }
        if self.image_link(id)? != ImageLink::Good {
            return Ok(false);
        }
        self.has_object(id.object()).map_err(|e| match e {
            crate::ObjectError::Io(io) => io,
            other => IoError::new(
                Op::Stat,
                self.object_path(id.object()),
                std::io::Error::other(other.to_string()),
            ),
        })
    }

    /// The path of image `id`'s object: what `sealroot_mount::mount_image` is given, with
    /// [`objects_path`](Self::objects_path) as the basedir.
    pub fn image_path(&self, id: &ImageId) -> PathBuf {
        self.object_path(id.object())
    }

    /// Opens image `id` (its object), after checking it is linked in `images/`.
    pub fn open_image(&self, id: &ImageId) -> Result<File, ImageError> {
        if !self.has_image(id)? {
            return Err(ImageError::NotFound(*id));
        }
        Ok(self.open_object(id.object())?)
    }

    /// The bytes of image `id`.
    pub fn read_image_bytes(&self, id: &ImageId) -> Result<Vec<u8>, ImageError> {
        let file = self.open_image(id)?;
        let path = self.object_path(id.object());
        fs::read_bounded(file.into(), IMAGE_MAX)
            .map_err(|e| IoError::new(Op::Read, &path, e))?
            .ok_or_else(|| {
                IoError::new(
                    Op::Read,
                    path,
                    std::io::Error::other("larger than any image sealroot reads"),
                )
                .into()
            })
    }

    /// Image `id` read back into a tree (the reader is strict: it checks the image as
    /// untrusted input).
    pub fn read_image(&self, id: &ImageId) -> Result<Tree, ImageError> {
        let bytes = self.read_image_bytes(id)?;
        erofs::read(&bytes).map_err(|source| ImageError::Read { image: *id, source })
    }

    /// The objects image `id` needs, each once, sorted.
    pub fn image_objects(&self, id: &ImageId) -> Result<Vec<ObjectId>, ImageError> {
        let tree = self.read_image(id)?;
        Ok(tree_objects(self.algorithm(), &tree)?)
    }
}
