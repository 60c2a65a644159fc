//! fsck, first step: every object's content checked against its name, in parallel; the
//! listing kept, sorted, as the index of what is present.

use rayon::prelude::*;
use rustix::io::Errno;

use super::FsckReport;
use crate::error::{IoError, Operation as Op};
use crate::id::ObjectId;
use crate::progress::{Phase, Progress};
use crate::read::objects::{Corruption, ObjectDir};
use crate::Repository;

/// What the objects step found: the listing of `objects/`, each directory's ids sorted, and
/// the corrupt objects.
pub(crate) struct Present {
    dirs: Vec<ObjectDir>,
    /// The index in `dirs` of each `XX`.
    index: [Option<u32>; 256],
    /// Corrupt objects, sorted.
    pub(crate) corrupt: Vec<(ObjectId, Corruption)>,
}

impl Present {
    /// The open `objects/XX` directory `id` lies in, if it was listed.
    pub(crate) fn dir_of(&self, id: &ObjectId) -> Option<&ObjectDir> {
        let byte = id.as_bytes()[0];
        self.index[usize::from(byte)].map(|i| &self.dirs[i as usize])
    }

    /// Whether `id` was listed.
    fn listed(&self, id: &ObjectId) -> bool {
        let byte = id.as_bytes()[0];
        self.index[usize::from(byte)]
            .is_some_and(|i| self.dirs[i as usize].ids.binary_search(id).is_ok())
    }
}

/// Counts of the objects checked, summed across threads.
#[derive(Default)]
struct Tally {
    objects: u64,
    bytes: u64,
    by_kernel: u64,
    corrupt: Vec<(ObjectId, Corruption)>,
}

impl Tally {
    fn merge(mut self, other: Tally) -> Tally {
        self.objects += other.objects;
        self.bytes += other.bytes;
        self.by_kernel += other.by_kernel;
        self.corrupt.extend(other.corrupt);
        self
    }
}

impl Repository {
    /// Whether object `id` is here: listed, or (written after the listing by a concurrent
    /// commit) found now.
    pub(crate) fn fsck_has(&self, present: &Present, id: &ObjectId) -> Result<bool, IoError> {
        if present.listed(id) {
            return Ok(true);
        }
        self.has_object(id).map_err(|e| match e {
            crate::ObjectError::Io(io) => io,
            other => IoError::new(
                Op::Stat,
                self.object_path(id),
                std::io::Error::other(other.to_string()),
            ),
        })
    }

    /// Checks every object's content; lists stray names.
    pub(crate) fn fsck_objects(
        &self,
        report: &mut FsckReport,
        progress: &dyn Progress,
    ) -> Result<Present, IoError> {
        progress.phase(Phase::ListingObjects, Some(256), None);
        let (mut dirs, strays) = self.list_object_dirs()?;
        report.stray_files = strays;
        for d in &mut dirs {
            d.ids.sort_unstable();
            let sub = self.objects_path().join(ObjectDir::subdir_name(d.byte));
            report.stray_files.extend(
                d.temps
                    .iter()
                    .chain(&d.strays)
                    .map(|n| sub.join(n.to_string_lossy().as_ref())),
            );
        }
        let total: usize = dirs.iter().map(|d| d.ids.len()).sum();
        progress.phase(Phase::CheckingObjects, Some(total as u64), None);
        let tally = dirs
            .par_iter()
            .flat_map_iter(|d| d.ids.iter().map(move |id| (d, id)))
            .try_fold(Tally::default, |mut t, (d, id)| {
                match self.check_object_in(&d.fd, &ObjectDir::name(id), id) {
                    Ok(c) => {
                        progress.advance(1, c.size);
                        t.objects += 1;
                        t.bytes += c.size;
                        t.by_kernel += u64::from(c.by_kernel);
                        if let Some(p) = c.problem {
                            t.corrupt.push((*id, p));
                        }
                        Ok(t)
                    }
                    // Removed meanwhile (by a concurrent recovery): not ours to judge.
                    Err(Errno::NOENT) => Ok(t),
                    Err(e) => Err(IoError::new(Op::Stat, self.object_path(id), e)),
                }
            })
            .try_reduce(Tally::default, |a, b| Ok(a.merge(b)))?;
        report.objects_checked = tally.objects;
        report.bytes_checked = tally.bytes;
        report.objects_with_verity = tally.by_kernel;
        let mut corrupt = tally.corrupt;
        corrupt.sort_by_key(|c| c.0);
        let mut index = [None; 256];
        for (i, d) in dirs.iter().enumerate() {
            index[usize::from(d.byte)] = Some(i as u32);
        }
        Ok(Present {
            dirs,
            index,
            corrupt,
        })
    }
}
