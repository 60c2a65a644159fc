//! fsck, the end: unfinished transactions, each problem named with the images and refs it
//! affects (torn objects apart from corrupt ones), and `repair`.

use std::collections::HashMap;

use rustix::io::Errno;

use super::commits::CommitsChecked;
use super::images::ImagesChecked;
use super::objects::Present;
use super::{BrokenImage, CorruptObject, FsckReport, MissingObject, Repaired};
use crate::error::{IoError, Operation as Op};
use crate::id::{DigestSet as HashSet, ImageId, ObjectId, RefName};
use crate::layout;
use crate::read::objects::ObjectDir;
use crate::write::recovery::{self, UnfinishedTransaction};
use crate::Repository;

impl Repository {
    /// The transactions that did not finish (all of them under the exclusive lock).
    pub(crate) fn fsck_unfinished(
        &self,
        exclusive: bool,
    ) -> Result<Vec<UnfinishedTransaction>, IoError> {
        let Some(tmp) = self.open_layout(layout::TMP)? else {
            return Ok(Vec::new());
        };
        recovery::stale_markers(self, &tmp, exclusive)?
            .iter()
            .map(|m| m.describe(self, &tmp))
            .collect()
    }

    /// Fills in the corrupt and missing objects and the broken images of `report`, each
    /// with the images and refs it affects. Corrupt objects written since a crashed
    /// transaction began (`torn_since`) that nothing reaches are torn, not corrupt.
    pub(crate) fn name_affected(
        &self,
        present: &Present,
        commits: CommitsChecked,
        images: ImagesChecked,
        refs_of: &HashMap<ImageId, Vec<RefName>>,
        torn_since: Option<i64>,
        report: &mut FsckReport,
    ) -> Result<(), IoError> {
        let refs_for = |images: &[ImageId]| -> Vec<RefName> {
            let mut refs: Vec<RefName> = images
                .iter()
                .flat_map(|i| refs_of.get(i).into_iter().flatten().cloned())
                .collect();
            refs.sort();
            refs.dedup();
            refs
        };
        for (object, problem) in present.corrupt.iter().cloned() {
            let mut affected: Vec<ImageId> = images
                .needs
                .iter()
                .filter(|(image, needs)| {
                    image.object() == &object || needs.binary_search(&object).is_ok()
                })
                .map(|(image, _)| *image)
                .collect();
            affected.sort();
            let mut refs = refs_for(&affected);
            refs.extend(
                commits
                    .refs_of_corrupt
                    .get(&object)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
            refs.sort();
            refs.dedup();
            if refs.is_empty()
                && affected.is_empty()
                && self.is_torn(present, &object, torn_since)?
            {
                report.torn_objects.push(object);
                continue;
            }
            report.corrupt_objects.push(CorruptObject {
                object,
                problem,
                images: affected,
                refs,
            });
        }
        let mut missing: Vec<(ObjectId, Vec<ImageId>)> = images.missing.into_iter().collect();
        for o in commits.missing.keys() {
            if !missing.iter().any(|(m, _)| m == o) {
                missing.push((*o, Vec::new()));
            }
        }
        missing.sort();
        for (object, mut imgs) in missing {
            imgs.sort();
            let mut refs = refs_for(&imgs);
            refs.extend(commits.missing.get(&object).into_iter().flatten().cloned());
            refs.sort();
            refs.dedup();
            report.missing_objects.push(MissingObject {
                object,
                images: imgs,
                refs,
            });
        }
        let mut broken = images.broken;
        broken.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, image, problem) in broken {
            let refs = image.map(|i| refs_for(&[i])).unwrap_or_default();
            report.broken_images.push(BrokenImage {
                name,
                image,
                problem,
                refs,
            });
        }
        Ok(())
    }

    /// Whether object `id` was written after `since` (a crashed transaction's start, less
    /// recovery's slack).
    fn is_torn(
        &self,
        present: &Present,
        id: &ObjectId,
        since: Option<i64>,
    ) -> Result<bool, IoError> {
        let (Some(since), Some(dir)) = (since, present.dir_of(id)) else {
            return Ok(false);
        };
        // Through the directory the listing opened: nothing on the way is followed.
        match rustix::fs::statat(
            &dir.fd,
            ObjectDir::name(id).as_c_str(),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => Ok(st.st_ctime >= since - recovery::CTIME_SLACK),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(IoError::new(Op::Stat, self.object_path(id), e)),
        }
    }

    /// Removes the corrupt objects of `report` and the links left dangling; names the refs
    /// that need a new commit. Runs under the exclusive lock.
    pub(crate) fn repair(&self, report: &FsckReport) -> Result<Repaired, IoError> {
        let mut repaired = Repaired::default();
        let objects = self.open_layout(layout::OBJECTS)?;
        for c in &report.corrupt_objects {
            let Some(objects) = &objects else { break };
            let rel = c.object.object_path();
            let dir = match crate::fs::open_dir(objects, &rel[..2]) {
                Ok(d) => d,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(IoError::new(Op::Open, self.object_path(&c.object), e)),
            };
            match rustix::fs::unlinkat(&dir, &rel[3..], rustix::fs::AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => repaired.objects_removed.push(c.object),
                Err(e) => return Err(IoError::new(Op::Remove, self.object_path(&c.object), e)),
            }
        }
        let before: HashSet<ImageId> = self.image_ids()?.into_iter().collect();
        recovery::remove_dangling_links(self)?;
        let after: HashSet<ImageId> = self.image_ids()?.into_iter().collect();
        repaired.image_links_removed = before.difference(&after).copied().collect();
        repaired.image_links_removed.sort();
        repaired.refs_needing_commit = report.refs_affected(false);
        self.syncfs()?;
        Ok(repaired)
    }
}
