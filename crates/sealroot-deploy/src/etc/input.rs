//! The three inputs of the merge: two default `/etc`s from image trees, and the local one
//! from a directory.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use sealroot_format::tree::{FileType, InodeId, Tree};
use sealroot_repo::{ObjectId, Repository};
use sealroot_verity::HashAlgorithm;

use super::error::{InputError, ReadLocalError};

/// Where the content of a default tree's external files comes from.
pub trait Objects {
    /// Opens the object that `payload` (a regular file's
    /// [`payload`](sealroot_format::tree::RegularFile::payload), `xx/yyyy…`) names, for
    /// reading. Its content is checked against the file's digest as it is copied.
    fn open(&self, payload: &[u8]) -> io::Result<File>;
}

impl Objects for Repository {
    fn open(&self, payload: &[u8]) -> io::Result<File> {
        let text = std::str::from_utf8(payload)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "payload is not UTF-8"))?;
        let id = ObjectId::from_object_path(self.algorithm(), text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.open_object(&id).map_err(io::Error::other)
    }
}

/// A default `/etc`: a directory of an image's tree, and where its objects are.
#[derive(Clone, Copy)]
pub struct ImageEtc<'a> {
    pub(crate) tree: &'a Tree,
    /// The directory, `None` if the image has none there (every path is then absent).
    pub(crate) root: Option<InodeId>,
    pub(crate) objects: &'a dyn Objects,
}

impl<'a> ImageEtc<'a> {
    /// `/etc` of image tree `tree` (a whole image, as
    /// [`Repository::read_image`] or [`Repository::commit_tree`] give it), whose external
    /// files `objects` opens. An image without `/etc` gives an empty default.
    pub fn new(tree: &'a Tree, objects: &'a dyn Objects) -> Result<Self, InputError> {
        Self::at(tree, b"/etc", objects)
    }

    /// The directory at `path` of `tree` (`/`-separated, no symlink followed) as a default
    /// `/etc`; absent if nothing is there.
    pub fn at(tree: &'a Tree, path: &[u8], objects: &'a dyn Objects) -> Result<Self, InputError> {
        let root = tree.resolve(path);
        if let Some(id) = root {
            if tree.inode(id).stat.file_type() != Some(FileType::Directory) {
                return Err(InputError::NotADirectory {
                    path: PathBuf::from(String::from_utf8_lossy(path).into_owned()),
                });
            }
        }
        Ok(ImageEtc {
            tree,
            root,
            objects,
        })
    }

    /// The tree this default is part of.
    pub fn tree(&self) -> &'a Tree {
        self.tree
    }
}

/// The local `/etc`: a directory, read into a tree with the fs-verity digest of every file
/// but the smallest (whose contents the tree holds), and kept open to copy from.
pub struct LocalEtc {
    pub(crate) dir: OwnedFd,
    pub(crate) tree: Tree,
    /// The algorithm of the files' digests.
    pub(crate) algorithm: HashAlgorithm,
}

impl LocalEtc {
    /// Reads the directory open as `dir` (never following a symlink below it), its files'
    /// digests computed with `algorithm` (that of the repository the defaults come from, so
    /// that most comparisons need no hashing). Hard links are recorded.
    pub fn read(dir: BorrowedFd<'_>, algorithm: HashAlgorithm) -> Result<Self, ReadLocalError> {
        let dir = dir.try_clone_to_owned().map_err(ReadLocalError::Dup)?;
        let opts = sealroot_tree::BuildOptions {
            by_digest: false,
            hardlinks: true,
            algorithm,
            ..Default::default()
        };
        // The tree crate opens a path; this one reaches the very directory `dir` is open
        // on, through the fd's magic link and then `.` (not followed: it is no symlink).
        let path = PathBuf::from(format!("/proc/self/fd/{}/.", dir.as_fd().as_raw_fd()));
        let tree = sealroot_tree::build_from_dir(&path, &opts, &sealroot_tree::NoProgress)
            .map_err(ReadLocalError::Build)?;
        Ok(LocalEtc {
            dir,
            tree,
            algorithm,
        })
    }

    /// The tree read.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }
}
