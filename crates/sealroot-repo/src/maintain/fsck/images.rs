//! fsck, the images and image refs: every entry of `images/` a link to an object that is
//! here; images no commit reaches parsed (the strict reader) and their objects looked up;
//! every image ref leading to an image.

use std::collections::HashMap;

use rayon::prelude::*;
use sealroot_format::erofs;

use super::commits::CommitsChecked;
use super::objects::Present;
use super::{BrokenRef, FsckReport, ImageProblem, RefProblem};
use crate::error::{BadPayload, IoError, Operation as Op};
use crate::id::{is_lower_hex, DigestSet as HashSet, ImageId, ObjectId, RefName};
use crate::layout::{self, RefKind};
use crate::progress::{Phase, Progress};
use crate::read::images::{tree_objects, ImageLink};
use crate::Repository;

/// The result of checking one entry of `images/`.
struct ImageCheck {
    name: String,
    image: Option<ImageId>,
    problem: Option<ImageProblem>,
    /// The objects it needs, sorted (for images no commit reaches).
    needs: Vec<ObjectId>,
    /// Those of them the repository lacks.
    missing: Vec<ObjectId>,
}

/// What the images step learnt.
#[derive(Default)]
pub(crate) struct ImagesChecked {
    pub(crate) good: HashSet<ImageId>,
    /// What each parsed image needs (images of commits are not parsed: their commit's
    /// history names their objects).
    pub(crate) needs: HashMap<ImageId, Vec<ObjectId>>,
    pub(crate) missing: HashMap<ObjectId, Vec<ImageId>>,
    pub(crate) broken: Vec<(String, Option<ImageId>, ImageProblem)>,
}

impl Repository {
    /// Checks every entry of `images/`.
    pub(crate) fn fsck_images(
        &self,
        present: &Present,
        commits: &CommitsChecked,
        report: &mut FsckReport,
        progress: &dyn Progress,
    ) -> Result<ImagesChecked, IoError> {
        let mut names = Vec::new();
        if let Some(images) = self.open_layout(layout::IMAGES)? {
            crate::fs::for_each(&images, |name, file_type| {
                if name != c"refs" {
                    names.push((name.to_string_lossy().into_owned(), file_type));
                }
            })
            .map_err(|e| IoError::new(Op::List, self.join(layout::IMAGES), e))?;
        }
        progress.phase(Phase::CheckingImages, Some(names.len() as u64), None);
        let results: Vec<Result<ImageCheck, IoError>> = names
            .par_iter()
            .map(|(name, file_type)| {
                let r = self.check_image_entry(name, *file_type, present, commits);
                progress.advance(1, 0);
                r
            })
            .collect();
        let mut out = ImagesChecked::default();
        for r in results {
            let check = r?;
            report.images_checked += 1;
            if let Some(id) = check.image {
                if matches!(check.problem, None | Some(ImageProblem::BadLink(_))) {
                    out.good.insert(id);
                }
                for m in &check.missing {
                    out.missing.entry(*m).or_default().push(id);
                }
                out.needs.insert(id, check.needs);
            }
            if let Some(problem) = check.problem {
                out.broken.push((check.name, check.image, problem));
            }
        }
        Ok(out)
    }

    /// Checks one entry of `images/`.
    fn check_image_entry(
        &self,
        name: &str,
        file_type: rustix::fs::FileType,
        present: &Present,
        commits: &CommitsChecked,
    ) -> Result<ImageCheck, IoError> {
        let mut check = ImageCheck {
            name: name.to_owned(),
            image: None,
            problem: None,
            needs: Vec::new(),
            missing: Vec::new(),
        };
        let id = is_lower_hex(name)
            .then(|| {
                ObjectId::from_hex(self.algorithm(), name)
                    .ok()
                    .map(ImageId::new)
            })
            .flatten();
        let Some(id) = id else {
            check.problem = Some(ImageProblem::BadName);
            return Ok(check);
        };
        check.image = Some(id);
        if file_type != rustix::fs::FileType::Symlink {
            check.problem = Some(ImageProblem::NotASymlink);
            return Ok(check);
        }
        if let ImageLink::BadLink(text) = self.image_link(&id)? {
            check.problem = Some(ImageProblem::BadLink(text));
        }
        // Objects stored after the listing (by a concurrent commit) are looked up again
        // rather than reported missing.
        let exists = |o: &ObjectId| self.fsck_has(present, o);
        if !exists(id.object())? {
            check.problem = Some(ImageProblem::MissingObject);
            return Ok(check);
        }
        // A commit's image: its objects are its tree's file objects, which the commit check
        // looked up, and its content was checked against its name with every object.
        if commits.images.contains(&id) {
            return Ok(check);
        }
        let tree = match self
            .read_image_bytes(&id)
            .map_err(|e| e.to_string())
            .and_then(|b| erofs::read(&b).map_err(|e| e.to_string()))
        {
            Ok(tree) => tree,
            Err(e) => {
                check.problem = Some(ImageProblem::Unparsable(e));
                return Ok(check);
            }
        };
        match tree_objects(self.algorithm(), &tree) {
            Ok(needs) => {
                for o in &needs {
                    if !exists(o)? {
                        check.missing.push(*o);
                    }
                }
                check.needs = needs;
            }
            Err(BadPayload { file, payload }) => {
                check.problem = Some(ImageProblem::BadPayload { file, payload })
            }
        }
        Ok(check)
    }

    /// Checks every image ref; returns the refs of each image.
    pub(crate) fn fsck_image_refs(
        &self,
        images: &ImagesChecked,
        report: &mut FsckReport,
        progress: &dyn Progress,
    ) -> Result<HashMap<ImageId, Vec<RefName>>, IoError> {
        let raw = self.raw_refs(RefKind::Image)?;
        progress.phase(Phase::CheckingRefs, Some(raw.len() as u64), None);
        let mut refs_of: HashMap<ImageId, Vec<RefName>> = HashMap::new();
        for r in raw {
            report.refs_checked += 1;
            let image = r
                .target_hex(RefKind::Image)
                .and_then(|h| self.image_of_hex(h));
            let problem = match (RefName::new(&r.name), &r.link, image) {
                (Err(e), _, _) => Some(RefProblem::InvalidName(e.to_string())),
                (Ok(_), None, _) => Some(RefProblem::NotASymlink),
                (Ok(_), Some(link), None) => Some(RefProblem::BadTarget(link.clone())),
                (Ok(name), Some(_), Some(id)) => {
                    refs_of.entry(id).or_default().push(name);
                    // An image written after the listing (by a concurrent commit) is looked
                    // up again rather than reported.
                    let exists = images.good.contains(&id) || self.image_present(&id)?;
                    (!exists).then_some(RefProblem::ImageMissing(id))
                }
            };
            if let Some(problem) = problem {
                report.broken_refs.push(BrokenRef {
                    name: r.name,
                    problem,
                });
            }
            progress.advance(1, 0);
        }
        Ok(refs_of)
    }
}
