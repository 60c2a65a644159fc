//! Split streams: `streams/NAME -> ../objects/XX/REST`, named by `streams/refs/...`, as
//! composefs-rs keeps them. `cfsctl gc` marks only from image refs and stream refs, so each
//! commit ref has a history stream (`streams/refs/sealroot/NAME`) whose object references are
//! every object of the ref's history; sealroot's own `gc` follows every stream ref too, so
//! that neither tool removes what the other's refs need.

use std::os::fd::OwnedFd;

use rustix::fs::FileType;
use rustix::io::Errno;
use sealroot_format::splitstream::{self, CommitStream, COMMIT_STREAM_MAX};
use sealroot_verity::AnyDigest;

use crate::error::{IoError, Operation as Op, RefError};
use crate::fs;
use crate::id::{ObjectId, RefName};
use crate::layout::{self, RefKind};
use crate::read::commits::CommitId;
use crate::Repository;

/// Why a stream could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A ref could not be read.
    #[error(transparent)]
    Ref(#[from] RefError),
    /// `streams/NAME` is not a link to an object.
    #[error("{}: not a link to an object ({reason})", path.display())]
    BadEntry {
        /// The entry.
        path: std::path::PathBuf,
        /// What it is.
        reason: String,
    },
    /// The stream's object is missing.
    #[error("stream {name}: its object {object} is not in the repository")]
    Missing {
        /// The `streams/` entry.
        name: String,
        /// The object.
        object: ObjectId,
    },
    /// The stream does not parse.
    #[error("stream {name} ({object}): {reason}")]
    Unparsable {
        /// The `streams/` entry.
        name: String,
        /// The object.
        object: ObjectId,
        /// Why.
        reason: String,
    },
}

/// A ref's history stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HistoryStream {
    /// Its `streams/` entry.
    pub(crate) entry: String,
    /// Its object.
    pub(crate) object: ObjectId,
    /// What it says.
    pub(crate) stream: CommitStream,
}

impl HistoryStream {
    /// The commit it was made for (the ref's head then).
    pub(crate) fn head(&self) -> CommitId {
        CommitId(self.stream.commit)
    }

    /// Every object it keeps, the head's commit object included.
    pub(crate) fn objects(&self) -> impl Iterator<Item = &AnyDigest> {
        self.stream.objects()
    }
}

impl Repository {
    /// The object `streams/entry` links to (its link read, not followed).
    pub(crate) fn stream_object(
        &self,
        streams: &OwnedFd,
        entry: &str,
    ) -> Result<ObjectId, StreamError> {
        let path = self.join(layout::STREAMS).join(entry);
        let bad = |reason: String| StreamError::BadEntry {
            path: path.clone(),
            reason,
        };
        let text = match rustix::fs::readlinkat(streams, entry, Vec::new()) {
            Ok(t) => t.to_string_lossy().into_owned(),
            Err(Errno::INVAL) => return Err(bad("not a symlink".into())),
            Err(e) => return Err(IoError::new(Op::ReadLink, &path, e).into()),
        };
        // composefs-rs reads the last two components (XX/REST) of the link.
        let mut parts = text.rsplit('/');
        let (rest, dir) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        ObjectId::from_object_path(self.algorithm(), &format!("{dir}/{rest}"))
            .map_err(|_| bad(format!("it points at {text:?}")))
    }

    /// The bytes of the stream `entry` of `streams/`, bounded.
    pub(crate) fn read_stream(
        &self,
        streams: &OwnedFd,
        entry: &str,
    ) -> Result<(ObjectId, Vec<u8>), StreamError> {
        let object = self.stream_object(streams, entry)?;
        let file = match self.open_object(&object) {
            Ok(f) => f,
            Err(crate::ObjectError::NotFound(_)) => {
                return Err(StreamError::Missing {
                    name: entry.to_owned(),
                    object,
                })
            }
            Err(e) => {
                return Err(IoError::new(
                    Op::Open,
                    self.object_path(&object),
                    std::io::Error::other(e.to_string()),
                )
                .into())
            }
        };
        let bytes = fs::read_bounded(file.into(), COMMIT_STREAM_MAX as u64)
            .map_err(|e| IoError::new(Op::Read, self.object_path(&object), e))?
            .ok_or_else(|| StreamError::Unparsable {
                name: entry.to_owned(),
                object,
                reason: "larger than any stream sealroot reads".into(),
            })?;
        Ok((object, bytes))
    }

    /// The object references (objects and other streams) of the stream stored as object
    /// `id`.
    pub(crate) fn stream_references_of(
        &self,
        id: &ObjectId,
    ) -> Result<(Vec<AnyDigest>, Vec<AnyDigest>), StreamError> {
        let name = id.to_string();
        let file = self.open_object(id).map_err(|e| StreamError::Unparsable {
            name: name.clone(),
            object: *id,
            reason: e.to_string(),
        })?;
        let bytes = fs::read_bounded(file.into(), COMMIT_STREAM_MAX as u64)
            .map_err(|e| IoError::new(Op::Read, self.object_path(id), e))?
            .ok_or_else(|| StreamError::Unparsable {
                name: name.clone(),
                object: *id,
                reason: "larger than any stream sealroot reads".into(),
            })?;
        let r = splitstream::references(&bytes).map_err(|e| StreamError::Unparsable {
            name: name.clone(),
            object: *id,
            reason: e.to_string(),
        })?;
        if r.header.algorithm != self.algorithm() {
            return Err(StreamError::Unparsable {
                name,
                object: *id,
                reason: format!(
                    "a {} stream in a {} repository",
                    r.header.algorithm,
                    self.algorithm()
                ),
            });
        }
        Ok((r.object_refs, r.stream_refs))
    }

    /// The object of commit ref `name`'s history stream, if it has one (not read).
    pub(crate) fn history_stream_object(
        &self,
        name: &RefName,
    ) -> Result<Option<(String, ObjectId)>, StreamError> {
        let link = match self.read_ref_link(RefKind::Stream, name) {
            Ok(l) => l,
            Err(RefError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(entry) = layout::parse_ref_link(RefKind::Stream, name, &link) else {
            return Err(StreamError::BadEntry {
                path: self.join(layout::SEALROOT_STREAM_REFS).join(name.as_str()),
                reason: format!("it points at {link:?}"),
            });
        };
        let Some(streams) = self.open_layout(layout::STREAMS)? else {
            return Ok(None);
        };
        Ok(Some((
            entry.to_owned(),
            self.stream_object(&streams, entry)?,
        )))
    }

    /// The history stream of commit ref `name`, if it has one.
    pub(crate) fn history_stream(
        &self,
        name: &RefName,
    ) -> Result<Option<HistoryStream>, StreamError> {
        let Some((entry, _)) = self.history_stream_object(name)? else {
            return Ok(None);
        };
        let entry = entry.as_str();
        let Some(streams) = self.open_layout(layout::STREAMS)? else {
            return Ok(None);
        };
        let (object, bytes) = self.read_stream(&streams, entry)?;
        let stream = CommitStream::parse(&bytes).map_err(|e| StreamError::Unparsable {
            name: entry.to_owned(),
            object,
            reason: e.to_string(),
        })?;
        Ok(Some(HistoryStream {
            entry: entry.to_owned(),
            object,
            stream,
        }))
    }

    /// The `streams/` entries that stream refs name (every symlink below `streams/refs/`, by
    /// the last component of its target, as composefs-rs resolves them), with the ref paths.
    pub(crate) fn stream_roots(&self) -> Result<Vec<(String, String)>, IoError> {
        let Some(refs) = self.open_layout(layout::STREAM_REFS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        walk(self, &refs, "", &mut out)?;
        Ok(out)
    }
}

fn walk(
    repo: &Repository,
    dir: &OwnedFd,
    prefix: &str,
    out: &mut Vec<(String, String)>,
) -> Result<(), IoError> {
    let here = repo.join(layout::STREAM_REFS).join(prefix);
    for entry in fs::list(dir).map_err(|e| IoError::new(Op::List, &here, e))? {
        let name = format!("{prefix}{}", entry.name.to_string_lossy());
        match entry.file_type {
            FileType::Directory => {
                let sub = fs::open_dir(dir, entry.name.as_c_str()).map_err(|e| {
                    IoError::new(
                        Op::Open,
                        here.join(entry.name.to_string_lossy().as_ref()),
                        e,
                    )
                })?;
                walk(repo, &sub, &format!("{name}/"), out)?;
            }
            FileType::Symlink => {
                let text = rustix::fs::readlinkat(dir, entry.name.as_c_str(), Vec::new()).map_err(
                    |e| {
                        IoError::new(
                            Op::ReadLink,
                            here.join(entry.name.to_string_lossy().as_ref()),
                            e,
                        )
                    },
                )?;
                let text = text.to_string_lossy();
                let target = text.rsplit('/').next().unwrap_or("").to_owned();
                out.push((name, target));
            }
            _ => {}
        }
    }
    Ok(())
}
