//! fsck, the commit refs and stream refs: each commit ref's history walked once (commits and
//! dirtrees parsed, every object they name looked up in the listing), its head's image
//! present, its history stream keeping every object of the history; then every stream ref.

use std::collections::HashMap;

use sealroot_verity::AnyDigest;

use super::objects::Present;
use super::{BrokenCommit, BrokenStream, FsckReport};
use crate::error::{IoError, Operation as Op};
use crate::id::{DigestSet as HashSet, ImageId, ObjectId, RefName};
use crate::layout::{self, RefKind};
use crate::progress::{Phase, Progress};
use crate::read::commits::{CommitId, Reach};
use crate::Repository;

/// What the commit step learnt for the later steps.
#[derive(Default)]
pub(crate) struct CommitsChecked {
    /// The images of every commit reached: their objects are their trees' file objects,
    /// looked up here already.
    pub(crate) images: HashSet<ImageId>,
    /// For each corrupt object, the commit refs whose history reaches it.
    pub(crate) refs_of_corrupt: HashMap<ObjectId, Vec<RefName>>,
    /// For each missing object, the commit refs whose history needs it.
    pub(crate) missing: HashMap<ObjectId, Vec<RefName>>,
}

impl Repository {
    /// Checks every commit ref, one history at a time.
    pub(crate) fn fsck_commits(
        &self,
        present: &Present,
        derive: bool,
        report: &mut FsckReport,
        progress: &dyn Progress,
    ) -> Result<CommitsChecked, IoError> {
        let raw = self.raw_refs(RefKind::Commit)?;
        progress.phase(Phase::CheckingRefs, Some(raw.len() as u64), None);
        let mut out = CommitsChecked::default();
        for r in raw {
            report.commit_refs_checked += 1;
            progress.advance(1, 0);
            let name = match RefName::new(&r.name) {
                Ok(n) => n,
                Err(e) => {
                    report.broken_commits.push(BrokenCommit {
                        refs: Vec::new(),
                        commit: None,
                        problem: format!("{}/{}: {e}", layout::COMMIT_REFS, r.name),
                    });
                    continue;
                }
            };
            let head = match self.resolve_commit_ref(&name) {
                Ok(id) => id,
                Err(e) => {
                    report.broken_commits.push(BrokenCommit {
                        refs: vec![name],
                        commit: None,
                        problem: e.to_string(),
                    });
                    continue;
                }
            };
            self.fsck_history(&name, &head, present, derive, report, &mut out)?;
        }
        Ok(out)
    }

    /// Checks commit ref `name` at `head`: its history, its head's image, its stream.
    fn fsck_history(
        &self,
        name: &RefName,
        head: &CommitId,
        present: &Present,
        derive: bool,
        report: &mut FsckReport,
        out: &mut CommitsChecked,
    ) -> Result<(), IoError> {
        let mut reach = Reach::default();
        let mut problem = match self.reach(head, true, &mut reach) {
            Ok(()) => None,
            Err(e) => {
                // Walk again leniently, for what can still be checked and named.
                reach = Reach::default();
                let _ = self.reach(head, false, &mut reach);
                Some(e.to_string())
            }
        };
        if problem.is_none() {
            problem = self.check_head(head, derive).err();
        }
        if let Some(problem) = problem {
            report.broken_commits.push(BrokenCommit {
                refs: vec![name.clone()],
                commit: Some(*head),
                problem,
            });
        }
        for o in &reach.objects {
            if !self.fsck_has(present, o)? {
                out.missing.entry(*o).or_default().push(name.clone());
            }
        }
        let stream = self.history_stream(name);
        if let Ok(Some(s)) = &stream {
            reach.objects.insert(s.object);
        }
        for (o, _) in &present.corrupt {
            if reach.objects.contains(o) {
                out.refs_of_corrupt
                    .entry(*o)
                    .or_default()
                    .push(name.clone());
            }
        }
        let stream_problem = match stream {
            Ok(None) => {
                Some("it has no history stream: cfsctl gc would remove its objects".to_owned())
            }
            Err(e) => Some(e.to_string()),
            Ok(Some(s)) => {
                let kept = &s.stream.objects;
                let lacking = reach
                    .objects
                    .iter()
                    .filter(|o| {
                        **o != s.object
                            && *o.digest() != s.stream.commit
                            && kept.binary_search(o.digest()).is_err()
                    })
                    .count();
                (lacking > 0).then(|| {
                    format!(
                        "its history stream lacks {lacking} objects of the ref's history: \
                         cfsctl gc would remove them"
                    )
                })
            }
        };
        if let Some(problem) = stream_problem {
            report.broken_streams.push(BrokenStream {
                stream_ref: format!("sealroot/{name}"),
                commit_ref: Some(name.clone()),
                problem,
            });
        }
        out.images
            .extend(reach.commits.iter().map(|(_, i)| ImageId::from_digest(*i)));
        Ok(())
    }

    /// Whether head `id` can be used: its image is here, and with `derive`, its tree gives
    /// the image it records.
    fn check_head(&self, id: &CommitId, derive: bool) -> Result<(), String> {
        let c = self.read_commit(id).map_err(|e| e.to_string())?;
        let image = ImageId::from_digest(c.image);
        if !self.image_present(&image).map_err(|e| e.to_string())? {
            return Err(crate::ImageError::NotFound(image).to_string());
        }
        if derive {
            self.derive_image(id, &c, None).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Checks every stream ref not checked as a commit ref's history stream: it leads to a
    /// stream that parses and whose objects are all here.
    pub(crate) fn fsck_stream_refs(
        &self,
        present: &Present,
        report: &mut FsckReport,
    ) -> Result<(), IoError> {
        let streams = self.open_layout(layout::STREAMS)?;
        for (stream_ref, entry) in self.stream_roots()? {
            report.stream_refs_checked += 1;
            if report
                .broken_streams
                .iter()
                .any(|b| b.stream_ref == stream_ref)
            {
                continue;
            }
            // One of ours whose commit ref is gone (a crash between the renames of a name's
            // first commit): it keeps objects no ref needs. Repair removes it.
            let ours = stream_ref
                .strip_prefix("sealroot/")
                .and_then(|n| RefName::new(n).ok());
            if let Some(name) = &ours {
                if self.commit_ref_if_any(name).ok().flatten().is_none() {
                    report.broken_streams.push(BrokenStream {
                        stream_ref,
                        commit_ref: Some(name.clone()),
                        problem: "a history stream whose commit ref does not exist".into(),
                    });
                    continue;
                }
            }
            let problem = match &streams {
                None => Some(format!(
                    "it names {entry}, and there is no streams/ directory"
                )),
                Some(streams) => self.check_stream(present, streams, &entry)?,
            };
            if let Some(problem) = problem {
                report.broken_streams.push(BrokenStream {
                    stream_ref,
                    commit_ref: ours,
                    problem,
                });
            }
        }
        Ok(())
    }

    /// What is wrong with stream `entry` of `streams/`, if anything: it does not parse, or
    /// objects it names are missing.
    fn check_stream(
        &self,
        present: &Present,
        streams: &std::os::fd::OwnedFd,
        entry: &str,
    ) -> Result<Option<String>, IoError> {
        let object = match self.stream_object(streams, entry) {
            Ok(o) => o,
            Err(e) => return Ok(Some(e.to_string())),
        };
        let objects: Vec<AnyDigest> = match self.stream_references_of(&object) {
            Ok((objects, _)) => objects,
            Err(e) => return Ok(Some(e.to_string())),
        };
        let mut missing = 0;
        for d in objects {
            if !self.fsck_has(present, &ObjectId::new(d))? {
                missing += 1;
            }
        }
        Ok((missing > 0)
            .then(|| format!("{missing} of the objects it names are not in the repository")))
    }

    /// Writes anew the history streams of the commit refs in `broken` (fsck --repair).
    pub(crate) fn rewrite_streams(
        &self,
        broken: &[BrokenStream],
    ) -> Result<Vec<RefName>, crate::FsckError> {
        let names: Vec<&RefName> = broken
            .iter()
            .filter_map(|b| b.commit_ref.as_ref())
            .collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let as_io = |e: &dyn std::fmt::Display| {
            IoError::new(Op::Write, self.path(), std::io::Error::other(e.to_string()))
        };
        let tx = self.transaction().map_err(|e| as_io(&e))?;
        let mut done = Vec::new();
        for name in names {
            tx.rewrite_history_stream(name).map_err(|e| as_io(&e))?;
            done.push(name.clone());
        }
        tx.finish().map_err(|e| as_io(&e))?;
        Ok(done)
    }
}
