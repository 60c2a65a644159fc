//! The switch to a staged set, and finishing (or undoing) one that was interrupted.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, RenameFlags};
use rustix::io::Errno;

use super::carry::CarryInto;
use super::error::{BootIoError, CounterError, MarkerError, Op, RecoverError, SwitchError};
use super::{
    fsops, BootDir, FsKind, ENTRIES_DIR, LOADER_DIR, PROBE, STAGED_DIR, STAGED_MARKER,
    SWITCHING_MARKER,
};
use crate::bls::{EntryName, MAX_ENTRY_SIZE};

/// How a switch replaces the set of entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchMethod {
    /// One `renameat2(RENAME_EXCHANGE)` of the staging directory with `loader/entries`,
    /// falling back to [`SwitchMethod::PerEntry`] where that is impossible.
    Exchange,
    /// One `rename` per entry, with a marker to roll forward from (see the module docs).
    PerEntry,
}

/// What a switch did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchReport {
    /// How.
    pub method: SwitchMethod,
    /// The names of sealroot's entries now in `loader/entries`.
    pub names: Vec<EntryName>,
}

/// What [`BootDir::recover`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovered {
    /// Nothing was under way.
    Nothing,
    /// A complete staged set is waiting to be switched to; it was left alone.
    Pending,
    /// An incomplete staging was removed: the old set stays.
    DiscardedStaging,
    /// An exchange had happened; its cleaning up was finished: the new set stays.
    FinishedExchange,
    /// A switch entry by entry had begun; it was finished: the new set stays.
    RolledForward,
}

impl BootDir {
    /// `loader/DIR/NAME` as a path, for messages.
    fn loader_path(&self, dir: &str, name: &str) -> PathBuf {
        self.at(Path::new(LOADER_DIR).join(dir).join(name))
    }

    /// Switches to the complete set staged in `loader/entries.staged` (by [`BootDir::stage`],
    /// in this process or an earlier one), as the module docs describe.
    pub fn switch_staged(&self) -> Result<SwitchReport, SwitchError> {
        let _lock = self.lock()?;
        self.recover_locked()?;
        let staged_path = self.at(Path::new(LOADER_DIR).join(STAGED_DIR));
        let nothing = || SwitchError::NothingStaged {
            path: staged_path.clone(),
        };
        let loader = self.open_dir_if_any(LOADER_DIR)?.ok_or_else(nothing)?;
        let staged = self.open_loader_dir(STAGED_DIR)?.ok_or_else(nothing)?;
        if !self.marker_exists(staged.as_fd(), STAGED_DIR, STAGED_MARKER)? {
            return Err(nothing());
        }
        let names = self.read_marker(staged.as_fd(), STAGED_MARKER)?;
        self.check_staged_files(staged.as_fd(), &names)?;
        let live = self.open_loader_dir(ENTRIES_DIR)?.ok_or_else(|| {
            BootIoError::new(Op::Open, self.loader_path(ENTRIES_DIR, ""), Errno::NOENT)
        })?;
        let carried = self.method == SwitchMethod::Exchange
            && self
                .carry_foreign(live.as_fd(), staged.as_fd(), CarryInto::Staging)
                .map_err(|e| BootIoError::new(Op::Copy, staged_path.clone(), e))?;
        let sync = |fd: &OwnedFd, path: PathBuf| {
            rustix::fs::fsync(fd).map_err(|e| BootIoError::new(Op::Sync, path, e))
        };
        sync(&staged, staged_path.clone())?;
        sync(&loader, self.at(LOADER_DIR))?;
        let method = if carried && self.exchange(loader.as_fd())? {
            self.finish_exchange()?;
            SwitchMethod::Exchange
        } else {
            self.begin_per_entry(staged.as_fd())?;
            self.roll_forward(staged.as_fd(), live.as_fd(), &names)?;
            SwitchMethod::PerEntry
        };
        Ok(SwitchReport { method, names })
    }

    /// `renameat2(RENAME_EXCHANGE)` of the staging directory and `loader/entries`, then a
    /// flush of `loader/`; `Ok(false)` where the filesystem or kernel cannot exchange.
    fn exchange(&self, loader: BorrowedFd<'_>) -> Result<bool, BootIoError> {
        match rustix::fs::renameat_with(
            loader,
            STAGED_DIR,
            loader,
            ENTRIES_DIR,
            RenameFlags::EXCHANGE,
        ) {
            Ok(()) => {}
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => return Ok(false),
            Err(e) => {
                return Err(BootIoError::new(
                    Op::Exchange,
                    self.loader_path(STAGED_DIR, ""),
                    e,
                ))
            }
        }
        rustix::fs::fsync(loader)
            .map_err(|e| BootIoError::new(Op::Sync, self.at(LOADER_DIR), e))?;
        Ok(true)
    }

    /// After an exchange (`loader/entries` holding the new set and the marker, the staging
    /// directory the old set): puts back foreign entries that changed meanwhile, removes the
    /// marker, then the old directory.
    fn finish_exchange(&self) -> Result<(), RecoverError> {
        let live = self.open_loader_dir(ENTRIES_DIR)?.ok_or_else(|| {
            BootIoError::new(Op::Open, self.loader_path(ENTRIES_DIR, ""), Errno::NOENT)
        })?;
        let live_path = self.loader_path(ENTRIES_DIR, "");
        if let Some(old) = self.open_loader_dir(STAGED_DIR)? {
            self.refuse_cross_link(live.as_fd(), old.as_fd())?;
            self.carry_foreign(old.as_fd(), live.as_fd(), CarryInto::Live)
                .map_err(|e| BootIoError::new(Op::Copy, live_path.clone(), e))?;
            rustix::fs::fsync(&live)
                .map_err(|e| BootIoError::new(Op::Sync, live_path.clone(), e))?;
        }
        match rustix::fs::unlinkat(&live, STAGED_MARKER, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => {
                return Err(BootIoError::new(Op::Remove, live_path.join(STAGED_MARKER), e).into())
            }
        }
        rustix::fs::fsync(&live).map_err(|e| BootIoError::new(Op::Sync, live_path, e))?;
        self.discard_locked()?;
        Ok(())
    }

    /// The commit point of a switch entry by entry: the marker renamed to
    /// `sealroot.switching`, flushed.
    fn begin_per_entry(&self, staged: BorrowedFd<'_>) -> Result<(), BootIoError> {
        rustix::fs::renameat(staged, STAGED_MARKER, staged, SWITCHING_MARKER)
            .and_then(|()| rustix::fs::fsync(staged))
            .map_err(|e| {
                BootIoError::new(
                    Op::Rename,
                    self.loader_path(STAGED_DIR, SWITCHING_MARKER),
                    e,
                )
            })
    }

    /// Finishes a switch entry by entry to `names`: each new entry still in the staging
    /// directory renamed into `loader/entries`; flush; each other entry of sealroot's there
    /// removed; flush; the staging directory removed. Safe to run again at any point.
    fn roll_forward(
        &self,
        staged: BorrowedFd<'_>,
        live: BorrowedFd<'_>,
        names: &[EntryName],
    ) -> Result<(), RecoverError> {
        let live_path = self.loader_path(ENTRIES_DIR, "");
        for name in names {
            match rustix::fs::renameat(staged, name.as_str(), live, name.as_str()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => {
                    return Err(
                        BootIoError::new(Op::Rename, live_path.join(name.as_str()), e).into(),
                    )
                }
            }
        }
        rustix::fs::fsync(live).map_err(|e| BootIoError::new(Op::Sync, live_path.clone(), e))?;
        for item in self.list_loader_dir(live, ENTRIES_DIR)? {
            let keep = names.iter().any(|n| {
                self.fs
                    .same_name(n.as_str().as_bytes(), item.name.to_bytes())
            });
            if BootDir::is_ours(&item) && !keep {
                rustix::fs::unlinkat(live, &item.name, AtFlags::empty()).map_err(|e| {
                    BootIoError::new(Op::Remove, self.in_loader(ENTRIES_DIR, &item.name), e)
                })?;
            }
        }
        rustix::fs::fsync(live).map_err(|e| BootIoError::new(Op::Sync, live_path, e))?;
        self.discard_locked()?;
        Ok(())
    }

    /// Finishes or undoes whatever switch was interrupted (see [`Recovered`]). Every staging
    /// and switch does this first; a caller runs it at boot, or before reading the entries to
    /// report them, so that it never sees the two sets of a switch entry by entry together.
    pub fn recover(&self) -> Result<Recovered, RecoverError> {
        let _lock = self.lock()?;
        self.recover_locked()
    }

    pub(crate) fn recover_locked(&self) -> Result<Recovered, RecoverError> {
        let Some(loader) = self.open_dir_if_any(LOADER_DIR)? else {
            return Ok(Recovered::Nothing);
        };
        let live = self.open_loader_dir(ENTRIES_DIR)?;
        if let Some(live) = &live {
            if self.marker_exists(live.as_fd(), ENTRIES_DIR, STAGED_MARKER)? {
                self.finish_exchange()?;
                return Ok(Recovered::FinishedExchange);
            }
        }
        let Some(staged) = self.open_loader_dir(STAGED_DIR)? else {
            return Ok(Recovered::Nothing);
        };
        if self.marker_exists(staged.as_fd(), STAGED_DIR, SWITCHING_MARKER)? {
            let names = self.read_marker(staged.as_fd(), SWITCHING_MARKER)?;
            let (live, _) = fsops::ensure_dir(loader.as_fd(), ENTRIES_DIR).map_err(|e| {
                BootIoError::new(Op::CreateDir, self.loader_path(ENTRIES_DIR, ""), e)
            })?;
            self.roll_forward(staged.as_fd(), live.as_fd(), &names)?;
            return Ok(Recovered::RolledForward);
        }
        if self.marker_exists(staged.as_fd(), STAGED_DIR, STAGED_MARKER)? {
            return Ok(Recovered::Pending);
        }
        if let Some(live) = &live {
            self.refuse_cross_link(live.as_fd(), staged.as_fd())?;
        }
        self.discard_locked()?;
        Ok(Recovered::DiscardedStaging)
    }

    /// On vfat, refuses to go on when the staging directory and `loader/entries` are one
    /// directory (a torn exchange, see the module docs): a file made in one shows in the
    /// other.
    fn refuse_cross_link(
        &self,
        live: BorrowedFd<'_>,
        staged: BorrowedFd<'_>,
    ) -> Result<(), RecoverError> {
        if self.fs != FsKind::Vfat {
            return Ok(());
        }
        let probe_path = self.loader_path(STAGED_DIR, PROBE);
        let _ = rustix::fs::unlinkat(staged, PROBE, AtFlags::empty());
        fsops::write_new(staged, PROBE, b"")
            .map_err(|e| BootIoError::new(Op::Create, probe_path.clone(), e))?;
        let shows = fsops::exists(live, PROBE);
        rustix::fs::unlinkat(staged, PROBE, AtFlags::empty())
            .map_err(|e| BootIoError::new(Op::Remove, probe_path, e))?;
        if shows.map_err(|e| BootIoError::new(Op::Stat, self.loader_path(ENTRIES_DIR, PROBE), e))? {
            return Err(RecoverError::CrossLinked {
                live: self.loader_path(ENTRIES_DIR, ""),
                staged: self.loader_path(STAGED_DIR, ""),
            });
        }
        Ok(())
    }

    /// Whether marker `name` is in `loader/DIR` (open as `fd`).
    fn marker_exists(
        &self,
        fd: BorrowedFd<'_>,
        dir: &str,
        name: &str,
    ) -> Result<bool, BootIoError> {
        fsops::exists(fd, name)
            .map_err(|e| BootIoError::new(Op::Stat, self.loader_path(dir, name), e))
    }

    /// The names a marker in the staging directory lists: each one of sealroot's.
    fn read_marker(
        &self,
        staged: BorrowedFd<'_>,
        marker: &str,
    ) -> Result<Vec<EntryName>, RecoverError> {
        let path = self.loader_path(STAGED_DIR, marker);
        let bad = |reason: String| MarkerError {
            path: path.clone(),
            reason,
        };
        let fd = fsops::open_file(staged, marker)
            .map_err(|e| BootIoError::new(Op::Open, path.clone(), e))?;
        let bytes = fsops::read_all(fd.as_fd(), MAX_ENTRY_SIZE)
            .map_err(|e| BootIoError::new(Op::Read, path.clone(), e))?
            .ok_or_else(|| bad("too large".to_owned()))?;
        let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8".to_owned()))?;
        let mut names = Vec::new();
        for line in text.lines() {
            let name = EntryName::parse(line).map_err(|e| bad(e.to_string()))?;
            if !name.is_ours() {
                return Err(bad(format!("{name} is not one of sealroot's names")).into());
            }
            names.push(name);
        }
        if names.is_empty() {
            return Err(bad("lists no entry".to_owned()).into());
        }
        Ok(names)
    }

    /// Checks that every staged entry is there, readable, and names files that exist.
    fn check_staged_files(
        &self,
        staged: BorrowedFd<'_>,
        names: &[EntryName],
    ) -> Result<(), SwitchError> {
        for name in names {
            let c = CString::new(name.as_str()).expect("entry names hold no NUL");
            let entry = self.read_entry(staged, STAGED_DIR, &c)?;
            if let Some(path) = self.first_missing(&entry.boot_paths())? {
                return Err(SwitchError::MissingFile {
                    name: name.to_string(),
                    path: path.to_owned(),
                    root: self.path.clone(),
                });
            }
        }
        Ok(())
    }

    /// Renames sealroot's entry `from` in `loader/entries` to `to` (the same id with another
    /// boot counter: `sealroot mark-good` drops the counter, as `systemd-bless-boot` does).
    /// One rename, flushed.
    pub fn rename_entry(&self, from: &EntryName, to: &EntryName) -> Result<(), CounterError> {
        for n in [from, to] {
            if !n.is_ours() || !n.id().eq_ignore_ascii_case(&from.id()) {
                return Err(CounterError::NotOurs {
                    name: n.to_string(),
                });
            }
        }
        let _lock = self.lock()?;
        let live_path = self.loader_path(ENTRIES_DIR, "");
        let live = self
            .open_loader_dir(ENTRIES_DIR)?
            .ok_or_else(|| BootIoError::new(Op::Open, live_path.clone(), Errno::NOENT))?;
        let to_path = live_path.join(to.as_str());
        let other_name = !self
            .fs
            .same_name(from.as_str().as_bytes(), to.as_str().as_bytes());
        let taken = other_name
            && fsops::exists(live.as_fd(), to.as_str())
                .map_err(|e| BootIoError::new(Op::Stat, to_path.clone(), e))?;
        if taken {
            return Err(BootIoError::new(Op::Rename, to_path, Errno::EXIST).into());
        }
        rustix::fs::renameat(&live, from.as_str(), &live, to.as_str())
            .map_err(|e| BootIoError::new(Op::Rename, live_path.join(to.as_str()), e))?;
        rustix::fs::fsync(&live).map_err(|e| BootIoError::new(Op::Sync, live_path, e))?;
        Ok(())
    }
}
