//! Writing history streams: for each commit ref, `streams/refs/sealroot/NAME` names a split
//! stream whose object references are every object of the ref's history (its commits, their
//! tree objects, images and file objects), so that `cfsctl gc`, which marks only from image
//! refs and stream refs, keeps them all. The stream is made anew each time the ref moves: the
//! new head's objects and, when the head follows the commit the old stream was made for,
//! that stream's objects (else the parent's history is walked).

use std::collections::BTreeSet;

use sealroot_format::objects::Commit;
use sealroot_format::splitstream::CommitStream;
use sealroot_verity::AnyDigest;

use super::{Transaction, WriteCommitError};
use crate::error::{IoError, Operation as Op};
use crate::fs;
use crate::id::{ObjectId, RefName};
use crate::layout::{self, RefKind};
use crate::read::commits::{CommitError, CommitId, Reach};

impl Transaction<'_> {
    /// Writes the history stream of commit ref `name` for its new head `id` (whose own
    /// objects are `own`, if known) and returns its `streams/` entry. The caller holds the
    /// ref's lock and moves the stream ref with the commit ref.
    pub(crate) fn write_history_stream(
        &self,
        name: &RefName,
        id: &CommitId,
        commit: &Commit,
        own: Option<&BTreeSet<AnyDigest>>,
    ) -> Result<String, WriteCommitError> {
        let repo = self.repo;
        let mut objects = match own {
            Some(own) => own.clone(),
            None => self.commit_objects(id, commit)?,
        };
        if let Some(parent) = commit.parent.map(CommitId) {
            let current = repo.history_stream(name).ok().flatten();
            match current {
                Some(s) if s.head() == parent => objects.extend(s.objects().copied()),
                // Another history (or none yet, or one that cannot be read): walk it.
                _ => {
                    let mut reach = Reach::default();
                    repo.reach(&parent, true, &mut reach)?;
                    objects.extend(reach.objects.iter().map(|o| *o.digest()));
                }
            }
        }
        let commit_object = id.object();
        let stream = CommitStream {
            commit: *commit_object.digest(),
            commit_size: commit.encode().len() as u64,
            objects: objects.into_iter().collect(),
            parent: None,
        };
        self.store_history_stream(id, &stream)
    }

    /// Every object commit `id` needs besides its own object: its image, its tree objects and
    /// file objects.
    pub(crate) fn commit_objects(
        &self,
        id: &CommitId,
        commit: &Commit,
    ) -> Result<BTreeSet<AnyDigest>, WriteCommitError> {
        let mut reach = Reach::default();
        self.repo.reach_tree(id, commit, true, &mut reach)?;
        let mut out: BTreeSet<AnyDigest> = reach.objects.iter().map(|o| *o.digest()).collect();
        out.insert(commit.image);
        Ok(out)
    }

    /// Makes `streams/entry -> ../objects/XX/REST` (in `tmp/` first, then renamed: composefs-rs
    /// stops on anything in `streams/` that is not such a link).
    fn link_stream(&self, entry: &str, object: &ObjectId) -> Result<(), IoError> {
        let repo = self.repo;
        // The stream refs' directories too, before the flush that precedes every ref (as
        // commits/refs is made with commits/): their own entries are then durable.
        repo.create_layout(layout::SEALROOT_STREAM_REFS)?;
        let streams = repo.create_layout(layout::STREAMS)?;
        fs::replace_symlink(
            &self.tmp,
            &repo.tmp,
            &streams,
            entry,
            &layout::object_link(object),
        )
        .map_err(|e| IoError::new(Op::Symlink, repo.join(layout::STREAMS).join(entry), e))?;
        self.wrote();
        Ok(())
    }

    /// Writes commit ref `name`'s history stream anew from its whole history (for a ref that
    /// has none, or one that does not keep its history), under the ref's lock; removes the
    /// stream ref of a name that has no commit ref.
    pub(crate) fn rewrite_history_stream(&self, name: &RefName) -> Result<(), WriteCommitError> {
        let _lock = self.lock_ref(name)?;
        let Some(head) = self.repo.commit_ref_if_any(name)? else {
            // A stream ref left alone by a crash: it goes.
            return match self.remove_ref_locked(RefKind::Stream, name) {
                Ok(()) | Err(crate::RefError::NotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            };
        };
        let commit = self.repo.read_commit(&head)?;
        let mut reach = Reach::default();
        self.repo.reach(&head, true, &mut reach)?;
        let mut objects: Vec<AnyDigest> = reach
            .objects
            .iter()
            .map(|o| *o.digest())
            .filter(|d| *d != *head.object().digest())
            .collect();
        objects.sort_unstable();
        let stream = CommitStream {
            commit: *head.object().digest(),
            commit_size: commit.encode().len() as u64,
            objects,
            parent: None,
        };
        let entry = self.store_history_stream(&head, &stream)?;
        self.sync()?;
        self.write_ref(RefKind::Stream, name, &entry)?;
        Ok(())
    }

    /// Stores `stream` and links it in `streams/`; returns the entry.
    fn store_history_stream(
        &self,
        id: &CommitId,
        stream: &CommitStream,
    ) -> Result<String, WriteCommitError> {
        let bytes = stream.encode().map_err(|e| CommitError::Corrupt {
            id: *id,
            reason: format!("its history stream cannot be written: {e}"),
        })?;
        let object = self.ensure_object(&bytes)?;
        let entry = layout::history_stream_name(&object);
        self.link_stream(&entry, &object)?;
        Ok(entry)
    }
}
