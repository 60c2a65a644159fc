//! Images: composefs EROFS images stored as objects (named by the image file's fs-verity
//! digest) and linked from `images/HEX -> ../objects/XX/REST`.
//!
//! Only what is linked in `images/` is an image: as in composefs-rs, an arbitrary object is
//! never mounted, since the kernel's EROFS code should only see images we wrote ourselves.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;
use sealroot_format::erofs::{self, WriteOptions};
use sealroot_format::{Content, InodeId, Tree};
use sealroot_verity::{HashAlgorithm, Hasher};

use crate::error::{ImageError, IoError, Operation as Op};
use crate::fs;
use crate::id::{ImageId, ObjectId};
use crate::transaction::Transaction;
use crate::{Repository, IMAGES_DIR, OBJECTS_DIR, TMP_DIR};

/// The write buffer of a new image: images of OS trees are tens of MiB.
const IMAGE_BUFFER: usize = 1 << 20;

/// A file's payload that does not name an object of the repository.
pub(crate) struct BadPayload {
    pub(crate) inode: InodeId,
    pub(crate) payload: String,
}

/// The objects the external files of `tree` need (each once, sorted).
pub(crate) fn tree_objects(
    algorithm: HashAlgorithm,
    tree: &Tree,
) -> Result<Vec<ObjectId>, BadPayload> {
    let mut seen = HashSet::new();
    for (i, inode) in tree.inodes.iter().enumerate() {
        if let Content::Regular(file) = &inode.content {
            if let Some(payload) = &file.payload {
                let id = ObjectId::from_object_path_bytes(algorithm, payload).ok_or_else(|| {
                    BadPayload {
                        inode: InodeId(i as u32),
                        payload: String::from_utf8_lossy(payload).into_owned(),
                    }
                })?;
                seen.insert(id);
            }
        }
    }
    let mut ids: Vec<ObjectId> = seen.into_iter().collect();
    ids.sort();
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
fn inode_with_object(tree: &Tree, id: &ObjectId) -> InodeId {
    let path = id.object_path();
    tree.inodes
        .iter()
        .position(|inode| {
            matches!(&inode.content, Content::Regular(f) if f.payload.as_deref() == Some(path.as_bytes()))
        })
        .map_or(InodeId::ROOT, |i| InodeId(i as u32))
}

/// A writer that hashes what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Transaction<'_> {
    /// Writes `tree` as a composefs image into the repository, as an object named by its
    /// fs-verity digest and linked from `images/`; returns its id.
    ///
    /// Every external file's object must already be in the repository (stored by this
    /// transaction or present before): an image in `images/` always has all its objects.
    pub fn write_image(&self, tree: &Tree, options: &WriteOptions) -> Result<ImageId, ImageError> {
        self.write_image_inner(tree, options, true)
    }

    /// [`write_image`](Self::write_image), checking that the file objects are present only
    /// with `check_objects` (a caller that stored or found every one of them in this
    /// transaction knows; `gc` cannot run meanwhile).
    pub(crate) fn write_image_inner(
        &self,
        tree: &Tree,
        options: &WriteOptions,
        check_objects: bool,
    ) -> Result<ImageId, ImageError> {
        if check_objects {
            self.check_objects_present(tree)?;
        }
        self.write_image_unchecked(tree, options, None)
    }

    pub(crate) fn check_objects_present(&self, tree: &Tree) -> Result<(), ImageError> {
        let repo = self.repo;
        let needed =
            tree_objects(repo.algorithm(), tree).map_err(|bad| ImageError::BadPayload {
                file: path_of(tree, bad.inode),
                payload: bad.payload,
            })?;
        let missing = needed
            .par_iter()
            .map(|id| repo.has_object(id).map(|present| (!present).then_some(*id)))
            .find_map_any(|r| match r {
                Ok(None) => None,
                Ok(Some(id)) => Some(Ok(id)),
                Err(e) => Some(Err(e)),
            });
        match missing {
            None => {}
            Some(Ok(id)) => {
                return Err(ImageError::MissingObject {
                    file: path_of(tree, inode_with_object(tree, &id)),
                    object: id,
                })
            }
            Some(Err(e)) => return Err(e.into()),
        }
        Ok(())
    }

    /// Writes the image; with `signature`, fs-verity is enabled with that kernel built-in
    /// signature (a new image object only: an existing one is left as it is).
    pub(crate) fn write_image_unchecked(
        &self,
        tree: &Tree,
        options: &WriteOptions,
        signature: Option<&[u8]>,
    ) -> Result<ImageId, ImageError> {
        let repo = self.repo;
        let tmp_path = repo.join(TMP_DIR);
        let tmp = repo
            .tmp
            .create(&self.tmp, ".")
            .map_err(|e| IoError::new(Op::Create, &tmp_path, e))?;
        let file = File::from(
            tmp.fd()
                .try_clone()
                .map_err(|e| IoError::new(Op::Create, &tmp_path, e))?,
        );
        let mut writer = HashingWriter {
            inner: BufWriter::with_capacity(IMAGE_BUFFER, file),
            hasher: Hasher::new(repo.verity_params()),
        };
        erofs::write_to(tree, options, &mut writer).map_err(ImageError::Write)?;
        writer
            .flush()
            .map_err(|e| IoError::new(Op::Write, &tmp_path, e))?;
        let HashingWriter { inner, hasher } = writer;
        // The writable descriptor must be closed before fs-verity can be enabled.
        drop(inner);
        let size = hasher.bytes_hashed();
        let id = ImageId::new(ObjectId::new(hasher.finish()));
        self.place_signed(tmp, id.object(), size, signature)?;
        self.link_image(&id)?;
        self.counters.images_written.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// Makes `images/HEX -> ../objects/XX/REST` for image `id`, replacing a wrong link.
    fn link_image(&self, id: &ImageId) -> Result<(), IoError> {
        let repo = self.repo;
        let name = id.to_hex();
        let target = format!("../{OBJECTS_DIR}/{}", id.object().object_path());
        let path = repo.join(IMAGES_DIR).join(&name);
        match rustix::fs::symlinkat(target.as_str(), &self.images, name.as_str()) {
            Ok(()) => {
                self.wrote();
                return Ok(());
            }
            Err(Errno::EXIST) => {}
            Err(e) => return Err(IoError::new(Op::Symlink, &path, e)),
        }
        match rustix::fs::readlinkat(&self.images, name.as_str(), Vec::new()) {
            Ok(existing) if existing.as_bytes() == target.as_bytes() => return Ok(()),
            Ok(_) | Err(Errno::INVAL) => {}
            Err(e) => return Err(IoError::new(Op::ReadLink, &path, e)),
        }
        // Something else has the name: replace it atomically.
        let tmp_name = repo.tmp.unique_name("image-link");
        let tmp_path = repo.join(TMP_DIR).join(&tmp_name);
        rustix::fs::symlinkat(target.as_str(), &self.tmp, tmp_name.as_str())
            .map_err(|e| IoError::new(Op::Symlink, &tmp_path, e))?;
        if let Err(e) =
            rustix::fs::renameat(&self.tmp, tmp_name.as_str(), &self.images, name.as_str())
        {
            let _ = rustix::fs::unlinkat(&self.tmp, tmp_name.as_str(), AtFlags::empty());
            return Err(IoError::new(Op::Rename, &path, e));
        }
        self.wrote();
        Ok(())
    }
}

impl Repository {
    /// Every image in `images/`, sorted. Entries that are not links named by a digest of
    /// this repository's algorithm are skipped; [`fsck`](Repository::fsck) reports them.
    pub fn images(&self) -> Result<Vec<ImageId>, ImageError> {
        Ok(self.image_ids()?)
    }

    /// [`images`](Self::images), with the error of the listing.
    pub(crate) fn image_ids(&self) -> Result<Vec<ImageId>, IoError> {
        let entries = fs::list_at(self.dir(), IMAGES_DIR)
            .map_err(|e| IoError::new(Op::List, self.join(IMAGES_DIR), e))?;
        let mut ids: Vec<ImageId> = entries
            .iter()
            .filter(|e| e.file_type == FileType::Symlink)
            .filter_map(|e| e.name.to_str().ok())
            .filter(|name| crate::id::is_lower_hex(name))
            .filter_map(|name| ObjectId::from_hex(self.algorithm(), name).ok())
            .map(ImageId::new)
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Whether image `id` is in the repository: linked in `images/`, with its object.
    pub fn has_image(&self, id: &ImageId) -> Result<bool, ImageError> {
        self.check_algorithm(id.object())?;
        let rel = format!("{IMAGES_DIR}/{}", id.to_hex());
        match rustix::fs::statat(self.dir(), rel.as_str(), AtFlags::empty()) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(IoError::new(Op::Stat, self.join(&rel), e).into()),
        }
    }

    /// The path of image `id` as `images/HEX`, a symlink to its object: what
    /// `sealroot_mount::mount_image` is given, with [`objects_path`](Self::objects_path)
    /// as the basedir.
    pub fn image_path(&self, id: &ImageId) -> PathBuf {
        self.join(IMAGES_DIR).join(id.to_hex())
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
        let mut file = self.open_image(id)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| IoError::new(Op::Read, self.object_path(id.object()), e))?;
        Ok(bytes)
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
        tree_objects(self.algorithm(), &tree).map_err(|bad| ImageError::BadPayload {
            file: path_of(&tree, bad.inode),
            payload: bad.payload,
        })
    }
}
