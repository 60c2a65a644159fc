//! Writing images: a tree written as a composefs image into the repository, as an object
//! named by its fs-verity digest and linked from `images/`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::atomic::Ordering;

use rayon::prelude::*;
use rustix::io::Errno;
use sealroot_format::erofs::{self, WriteOptions};
use sealroot_format::Tree;
use sealroot_verity::Hasher;

use super::objects::store_error;
use super::Transaction;
use crate::error::{IoError, Operation as Op, WriteImageError};
use crate::fs;
use crate::id::{ImageId, ObjectId};
use crate::layout;
use crate::read::images::{inode_with_object, path_of, tree_objects, ImageLink};
use crate::repository::LayoutDir;

/// The write buffer of a new image: images of OS trees are tens of MiB.
const IMAGE_BUFFER: usize = 1 << 20;

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
    /// Every external file's object must be in the repository (stored through this
    /// transaction, or present before): an image in `images/` always has all its objects.
    pub fn write_image(
        &self,
        tree: &Tree,
        options: &WriteOptions,
    ) -> Result<ImageId, WriteImageError> {
        self.check_objects_present(tree)?;
        self.write_image_unchecked(tree, options, None)
    }

    /// Checks that every object `tree` needs is in the repository. Objects this
    /// transaction's store wrote or found are known to be, and are not looked up again.
    pub(crate) fn check_objects_present(&self, tree: &Tree) -> Result<(), WriteImageError> {
        let repo = self.repo;
        let needed = tree_objects(repo.algorithm(), tree)?;
        let missing = needed
            .par_iter()
            .filter(|id| !self.store.is_known(id.digest()))
            .map(|id| repo.has_object(id).map(|present| (!present).then_some(*id)))
            .find_map_any(|r| match r {
                Ok(None) => None,
                Ok(Some(id)) => Some(Ok(id)),
                Err(e) => Some(Err(e)),
            });
        match missing {
            None => Ok(()),
            Some(Ok(id)) => Err(WriteImageError::MissingObject {
                file: path_of(tree, inode_with_object(tree, &id)),
                object: id,
            }),
            Some(Err(e)) => Err(e.into()),
        }
    }

    /// Writes the image; with `signature`, fs-verity is enabled with that kernel built-in
    /// signature (a new image object only: an existing one is left as it is).
    pub(crate) fn write_image_unchecked(
        &self,
        tree: &Tree,
        options: &WriteOptions,
        signature: Option<&[u8]>,
    ) -> Result<ImageId, WriteImageError> {
        let repo = self.repo;
        let mut tmp = self.new_tmp()?;
        let tmp_path = repo.join(layout::TMP);
        let file = File::from(
            tmp.fd()
                .try_clone()
                .map_err(|e| IoError::new(Op::Create, &tmp_path, e))?,
        );
        let mut writer = HashingWriter {
            inner: BufWriter::with_capacity(IMAGE_BUFFER, file),
            hasher: Hasher::new(repo.verity_params()),
        };
        erofs::write_to(tree, options, &mut writer).map_err(WriteImageError::Write)?;
        writer
            .flush()
            .map_err(|e| IoError::new(Op::Write, &tmp_path, e))?;
        let HashingWriter { inner, hasher } = writer;
        // The writable descriptor must be closed before fs-verity can be enabled.
        drop(inner);
        let size = hasher.bytes_hashed();
        let id = ImageId::new(ObjectId::new(hasher.finish()));
        // With `signature`, fs-verity is enabled with that kernel built-in signature.
        self.store
            .place(&mut tmp, id.object().digest(), size, signature)
            .map_err(store_error)?;
        self.link_image(&id)?;
        self.counters.images_written.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// Makes `images/HEX -> ../objects/XX/REST` for image `id`, replacing anything else of
    /// that name atomically.
    pub(crate) fn link_image(&self, id: &ImageId) -> Result<(), IoError> {
        let repo = self.repo;
        let images = match repo.layout_dir(LayoutDir::Images) {
            Ok(fd) => fd,
            Err(e) if e.is_not_found() => {
                repo.create_layout(layout::IMAGES)?;
                repo.layout_dir(LayoutDir::Images)?
            }
            Err(e) => return Err(e),
        };
        let name = id.to_hex();
        let target = layout::object_link(id.object());
        let path = repo.join(&layout::image_rel(id));
        match repo.image_link(id)? {
            ImageLink::Good => return Ok(()),
            ImageLink::Absent => {
                match rustix::fs::symlinkat(target.as_str(), images, name.as_str()) {
                    Ok(()) => {
                        self.wrote();
                        return Ok(());
                    }
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(IoError::new(Op::Symlink, &path, e)),
                }
            }
            ImageLink::BadLink(_) | ImageLink::NotASymlink => {}
        }
        // Something else has the name: replace it atomically.
        fs::replace_symlink(&self.tmp, &repo.tmp, images, &name, &target)
            .map_err(|e| IoError::new(Op::Rename, &path, e))?;
        self.wrote();
        Ok(())
    }
}
