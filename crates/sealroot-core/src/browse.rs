//! Looking inside an image without mounting it: a path resolved in the tree, a directory
//! listed, a file's content read with its object checked against its name first, so that no
//! byte of a corrupt object is ever handed out.

use std::io::{self, Write};

use sealroot_format::tree::{Content, InodeId, Tree};
use sealroot_repo::{ImageError, ObjectError, ObjectId, Repository};

use crate::resolve::{self, ResolveError};

/// Why a path could not be looked up or a file read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ref, commit or image could not be resolved.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The image could not be read.
    #[error(transparent)]
    Image(#[from] Box<ImageError>),
    /// No such path in the image.
    #[error("{0}: no such file or directory in the image")]
    NotFound(String),
    /// Not a regular file.
    #[error("{0}: not a regular file")]
    NotAFile(String),
    /// The image names no object (or something that is not an object name) for the file.
    #[error("{path}: the image's payload {payload:?} is not an object name")]
    BadPayload {
        /// The file.
        path: String,
        /// What the image says.
        payload: String,
    },
    /// The image's recorded digest and the object it names disagree.
    #[error("{path}: the image's digest {digest} and object name {object} disagree")]
    DigestDisagrees {
        /// The file.
        path: String,
        /// The digest the image records.
        digest: String,
        /// The object it names.
        object: ObjectId,
    },
    /// The object could not be read or checked.
    #[error("{path}: {source}")]
    Object {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: Box<ObjectError>,
    },
    /// The object's content is not what its name says: nothing was written.
    #[error("{path}: object {object} is corrupt ({problem}); nothing of it was written")]
    Corrupt {
        /// The file.
        path: String,
        /// The object.
        object: ObjectId,
        /// What is wrong.
        problem: String,
    },
    /// Writing the content out failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The tree of the image `spec` names (an image id, a commit by ref, id or prefix, or an
/// image ref).
pub fn read_tree(repo: &Repository, spec: &str) -> Result<Tree, Error> {
    let image = resolve::image(repo, spec)?;
    repo.read_image(&image)
        .map_err(|e| Error::Image(Box::new(e)))
}

/// The inode at `path` in `tree`.
pub fn lookup(tree: &Tree, path: &str) -> Result<InodeId, Error> {
    tree.resolve(path.as_bytes())
        .ok_or_else(|| Error::NotFound(path.to_owned()))
}

/// The entries of directory `dir` (or `dir` itself, named `path`, if it is not one).
pub fn list(tree: &Tree, dir: InodeId, path: &str) -> Vec<(Vec<u8>, InodeId)> {
    match &tree.inode(dir).content {
        Content::Directory(e) => e.iter().map(|e| (e.name.clone(), e.inode)).collect(),
        _ => vec![(path.as_bytes().to_vec(), dir)],
    }
}

/// Writes regular file `id` (at `path`) of `tree` to `out`: its inline bytes, or its
/// object, checked against its name before anything is written (by the kernel's fs-verity
/// measurement where the object has it, else by hashing it). Returns the bytes written.
pub fn read_file(
    repo: &Repository,
    tree: &Tree,
    id: InodeId,
    path: &str,
    out: &mut dyn Write,
) -> Result<u64, Error> {
    let write_err = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let Content::Regular(file) = &tree.inode(id).content else {
        return Err(Error::NotAFile(path.to_owned()));
    };
    if let Some(content) = &file.inline {
        out.write_all(content).map_err(write_err)?;
        return Ok(content.len() as u64);
    }
    if tree.inode(id).stat.size == 0 {
        return Ok(0);
    }
    let payload = file.payload.as_deref().unwrap_or_default();
    let rel = String::from_utf8_lossy(payload);
    // The payload is the object's name: anything else is refused (an image from elsewhere
    // could name any path).
    let object =
        ObjectId::from_object_path(repo.algorithm(), &rel).map_err(|_| Error::BadPayload {
            path: path.to_owned(),
            payload: rel.clone().into_owned(),
        })?;
    if let Some(want) = &file.digest {
        if object.digest() != want {
            return Err(Error::DigestDisagrees {
                path: path.to_owned(),
                digest: want.to_string(),
                object,
            });
        }
    }
    let obj_err = |source| Error::Object {
        path: path.to_owned(),
        source: Box::new(source),
    };
    // Checked first, whole, on the very file then copied: with fs-verity one measurement
    // (the kernel then checks every read), else one pass of hashing before the copy, and
    // the file's identity compared around both (an object rewritten meanwhile is refused).
    let (mut f, before) = match repo.open_object_checked(&object) {
        Ok(checked) => checked,
        Err(ObjectError::Corrupt { reason, .. }) => {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                object,
                problem: reason,
            })
        }
        Err(e) => return Err(obj_err(e)),
    };
    let n = io::copy(&mut f, out).map_err(write_err)?;
    if sealroot_objects::FileIdentity::of(&f).ok() != Some(before) {
        return Err(Error::Corrupt {
            path: path.to_owned(),
            object,
            problem: "it changed while it was read".into(),
        });
    }
    Ok(n)
}
