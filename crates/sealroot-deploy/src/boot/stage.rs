//! Staging a new set of sealroot's entries: everything that can fail, before the switch.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::AtFlags;

use super::carry::CarryInto;
use super::error::{BootIoError, Op, StageError, SwitchError};
use super::files::BootFile;
use super::switch::SwitchReport;
use super::{fsops, BootDir, ENTRIES_DIR, LOADER_DIR, MARKER_TMP, STAGED_DIR, STAGED_MARKER};
use crate::bls::{Entry, EntryName};

/// One of sealroot's entries, to be written under its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OurEntry {
    /// The file name: one of sealroot's ([`EntryName::is_ours`]), with or without a boot
    /// counter.
    pub name: EntryName,
    /// The content (usually [`crate::bls::EntrySpec::to_entry`]'s).
    pub entry: Entry,
}

/// A complete set of entries in `loader/entries.staged`, ready to be switched to. Dropping
/// it leaves the set staged on disk (`--stage`): [`BootDir::switch_staged`] switches to it
/// later, from any process, and [`BootDir::discard_staged`] removes it.
#[derive(Debug)]
pub struct Staged<'a> {
    dir: &'a BootDir,
    names: Vec<EntryName>,
}

impl Staged<'_> {
    /// The names of sealroot's entries in the staged set.
    pub fn names(&self) -> &[EntryName] {
        &self.names
    }

    /// Switches to the staged set (see [`BootDir::switch_staged`]).
    pub fn switch(self) -> Result<SwitchReport, SwitchError> {
        self.dir.switch_staged()
    }
}

impl BootDir {
    /// Prepares `set` as the next set of sealroot's entries, with the boot files it needs:
    /// copies the files in `files` that are not on the partition yet, checks that every
    /// path each entry names is a file there, and writes the set, with the foreign entries
    /// carried, to `loader/entries.staged` (see the module docs). Replaces whatever was staged
    /// before; finishes an interrupted switch first. The entries the boot loader reads are
    /// not changed. On failure, the boot files this call copied and the staging directory are
    /// removed again.
    pub fn stage(
        &self,
        set: &[OurEntry],
        files: &[BootFile<'_>],
    ) -> Result<Staged<'_>, StageError> {
        let _lock = self.lock()?;
        self.recover_locked()?;
        check_set(set)?;
        let mut made = Vec::new();
        let staged = self.stage_locked(set, files, &mut made);
        if staged.is_err() {
            self.remove_files(&made);
            let _ = self.discard_locked();
        }
        staged?;
        Ok(Staged {
            dir: self,
            names: set.iter().map(|e| e.name.clone()).collect(),
        })
    }

    fn stage_locked(
        &self,
        set: &[OurEntry],
        files: &[BootFile<'_>],
        made: &mut Vec<String>,
    ) -> Result<(), StageError> {
        let loader = self.ensure_loader_dir(LOADER_DIR)?;
        let (live, _) = fsops::ensure_dir(loader.as_fd(), ENTRIES_DIR).map_err(|e| {
            BootIoError::new(
                Op::CreateDir,
                self.at(Path::new(LOADER_DIR).join(ENTRIES_DIR)),
                e,
            )
        })?;
        self.install_files(files, made)?;
        for e in set {
            let paths = e.entry.boot_paths();
            if e.entry.linux().is_none() && e.entry.efi().is_none() {
                return Err(StageError::NotBootable {
                    name: e.name.to_string(),
                });
            }
            if let Some(path) = self.first_missing(&paths)? {
                return Err(StageError::MissingFile {
                    name: e.name.to_string(),
                    path: path.to_owned(),
                    root: self.path.clone(),
                });
            }
        }
        self.discard_locked()?;
        let staged_path = self.at(Path::new(LOADER_DIR).join(STAGED_DIR));
        let (staged, _) = fsops::ensure_dir(loader.as_fd(), STAGED_DIR)
            .map_err(|e| BootIoError::new(Op::CreateDir, staged_path.clone(), e))?;
        for e in set {
            let name = e.name.as_str();
            fsops::write_new(staged.as_fd(), name, &e.entry.to_bytes())
                .map_err(|err| BootIoError::new(Op::Write, staged_path.join(name), err))?;
        }
        self.carry_foreign(live.as_fd(), staged.as_fd(), CarryInto::Staging)
            .map_err(|e| BootIoError::new(Op::Copy, staged_path.clone(), e))?;
        self.write_marker(staged.as_fd(), set)?;
        rustix::fs::fsync(&loader)
            .map_err(|e| BootIoError::new(Op::Sync, self.at(LOADER_DIR), e))?;
        Ok(())
    }

    /// `NAME` on the partition's root, made if missing.
    fn ensure_loader_dir(&self, name: &str) -> Result<OwnedFd, BootIoError> {
        fsops::ensure_dir(self.root.as_fd(), name)
            .map(|(fd, _)| fd)
            .map_err(|e| BootIoError::new(Op::CreateDir, self.at(name), e))
    }

    /// Writes the marker of a complete staging, listing `set`'s names: under a temporary
    /// name first, so that it appears whole; then flushes the staging directory.
    fn write_marker(&self, staged: BorrowedFd<'_>, set: &[OurEntry]) -> Result<(), BootIoError> {
        let path = |name: &str| self.at(Path::new(LOADER_DIR).join(STAGED_DIR).join(name));
        let list: String = set.iter().map(|e| format!("{}\n", e.name)).collect();
        let _ = rustix::fs::unlinkat(staged, MARKER_TMP, AtFlags::empty());
        fsops::write_new(staged, MARKER_TMP, list.as_bytes())
            .map_err(|e| BootIoError::new(Op::Write, path(MARKER_TMP), e))?;
        rustix::fs::renameat(staged, MARKER_TMP, staged, STAGED_MARKER)
            .map_err(|e| BootIoError::new(Op::Rename, path(STAGED_MARKER), e))?;
        rustix::fs::fsync(staged).map_err(|e| BootIoError::new(Op::Sync, path(""), e))
    }

    /// Removes a staged set that was not switched to (an undeployed staged deployment). The
    /// entries the boot loader reads are not changed; an interrupted switch is finished first.
    pub fn discard_staged(&self) -> Result<(), super::RecoverError> {
        let _lock = self.lock()?;
        self.recover_locked()?;
        self.discard_locked().map_err(Into::into)
    }

    /// Removes `loader/entries.staged` with everything in it, and flushes `loader/`.
    pub(crate) fn discard_locked(&self) -> Result<(), BootIoError> {
        let Some(loader) = self.open_dir_if_any(LOADER_DIR)? else {
            return Ok(());
        };
        let path = self.at(Path::new(LOADER_DIR).join(STAGED_DIR));
        if !fsops::exists(loader.as_fd(), STAGED_DIR)
            .map_err(|e| BootIoError::new(Op::Stat, path.clone(), e))?
        {
            return Ok(());
        }
        let name = std::ffi::CString::new(STAGED_DIR).expect("no NUL in a constant");
        fsops::remove_tree(loader.as_fd(), &name, 4)
            .map_err(|e| BootIoError::new(Op::Remove, path, e))?;
        rustix::fs::fsync(&loader).map_err(|e| BootIoError::new(Op::Sync, self.at(LOADER_DIR), e))
    }
}

/// Checks the new set: not empty, every name one of sealroot's, no two with the same id.
fn check_set(set: &[OurEntry]) -> Result<(), StageError> {
    if set.is_empty() {
        return Err(StageError::Empty);
    }
    for (i, e) in set.iter().enumerate() {
        if !e.name.is_ours() {
            return Err(StageError::NotOurs {
                name: e.name.to_string(),
            });
        }
        let id = e.name.id();
        if let Some(other) = set[..i]
            .iter()
            .find(|o| o.name.id().eq_ignore_ascii_case(&id))
        {
            return Err(StageError::SameId {
                first: other.name.to_string(),
                second: e.name.to_string(),
            });
        }
    }
    Ok(())
}
