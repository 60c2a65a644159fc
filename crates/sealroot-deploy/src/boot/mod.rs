//! The boot partition: sealroot's boot entries, replaced as one set in one atomic step, and
//! the kernels and initramfs images they name, stored once per content digest.
//!
//! # Layout
//!
//! On the partition the boot loader reads entries from (`$BOOT`: an ext4 `/boot`, or a vfat
//! EFI System Partition):
//!
//! | path | what |
//! |---|---|
//! | `loader/entries/*.conf` | the entries boot loaders read: sealroot's (named `sealroot-*`, see [`crate::bls`]) and anyone else's |
//! | `loader/entries.staged/` | a new set being prepared, or the old set right after a switch (bootc's composefs backend uses the same name) |
//! | `loader/entries.staged/sealroot.staged` | written last when staging is complete: the names of sealroot's new entries, one a line |
//! | `loader/entries.staged/sealroot.switching` | the same list, renamed so once a switch entry by entry has begun |
//! | `sealroot/HEX` | a kernel, initramfs or device tree, named by the fs-verity digest of its content (sha256 or sha512, [`Params::composefs`](sealroot_verity::Params::composefs)); entries name it `/sealroot/HEX` |
//!
//! Nothing else on the partition is touched. One sealroot installation owns a partition's
//! `sealroot-*` entries; two sealroot systems sharing one ESP would replace each other's.
//!
//! # A switch
//!
//! [`BootDir::stage`] prepares everything that can fail, [`Staged::switch`] (or
//! [`BootDir::switch_staged`], from another process, as `finalize-staged` at shutdown)
//! replaces the whole set of sealroot's entries in one step:
//!
//! 1. *Stage* (the live entries untouched): finish or undo an interrupted earlier switch;
//!    copy each boot file not yet there to a temporary name in `sealroot/`, flush it, check
//!    its digest, give it its name; check that every file each new entry names is on the
//!    partition; make `loader/entries.staged/` afresh, write each new entry into it and flush
//!    it; *carry* every name in `loader/entries/` that is not sealroot's into it (a hard link on
//!    ext4, a byte-identical copy with the same modification time on vfat); write the marker
//!    `sealroot.staged`; flush the directory and `loader/`. A full partition fails here
//!    (`ENOSPC`), and the files this staging added are removed again.
//! 2. *Switch*: carry again whatever foreign entry changed since staging (staging may be
//!    long before: `--stage`); flush; `renameat2(loader/entries.staged, loader/entries,
//!    RENAME_EXCHANGE)`; flush `loader/`. That one call is the switch: before it the boot
//!    loader reads the old directory, after it the new one, both complete.
//! 3. *Clean up*: put back any foreign entry that changed in the instant between step 2's
//!    carrying and the exchange (from the old directory, now `entries.staged`); remove the
//!    marker from the live directory; remove the old directory; flush.
//!
//! # What is atomic, on each filesystem
//!
//! - **ext4** (and any filesystem with `RENAME_EXCHANGE` and hard links: xfs, btrfs):
//!   `ext4_rename` exchanges the two directory entries of `loader/` in one journal
//!   transaction (Linux 3.15 and later). A process killed at any instant, or a power cut
//!   once the exchange's transaction is committed (the `fsync` of `loader/` right after it
//!   waits for that), leaves `loader/entries` naming the old directory or the new one, each
//!   complete and flushed before the exchange. Foreign entries are hard links: after the
//!   switch `loader/entries/X` is the very same inode as before, bytes and modification time
//!   unchanged (its change time moves, as its link count went 1 → 2 → 1).
//! - **vfat** (Linux 6.0 added `RENAME_EXCHANGE` to vfat): the exchange swaps the start
//!   clusters (and attributes) of two 32-byte directory entries of `loader/`, under the
//!   kernel's rename locks, so a killed process or a reader never sees anything but old or
//!   new. vfat has no journal: across a power cut the exchange is atomic only when the two
//!   directory entries lie in one sector (one write), which cannot be chosen. A cut between
//!   two sector writes leaves both names on the *same* directory, old or new, so
//!   `loader/entries` still names one complete set; the next [`BootDir::recover`] sees the
//!   alias (a file made through one name shows through the other), removes nothing and
//!   reports [`RecoverError::CrossLinked`]: `fsck.vfat` repairs it. vfat has no hard links:
//!   foreign entries are carried as copies, the same bytes and modification time under the
//!   same name, in a new directory entry.
//! - **No `RENAME_EXCHANGE`** (`EINVAL`: a vfat before Linux 6.0, FUSE filesystems, and any
//!   other that lacks it; `ENOSYS`: no `renameat2` at all), or a foreign *directory* in
//!   `loader/entries` (which can be neither linked nor copied in one step), or
//!   [`SwitchMethod::PerEntry`] asked for: the switch goes entry by entry, through plain
//!   `rename`s, each atomic on its own. Its commit point is renaming the marker to
//!   `sealroot.switching` (flushed); then each new entry is renamed from
//!   `entries.staged/` into `loader/entries/` (over an old entry of the same name), the
//!   directory flushed, and only then each old entry of sealroot's not in the new set
//!   removed. At every instant the boot loader reads a set in which every entry is complete
//!   and names files that exist (boot files are only removed by
//!   [`BootDir::collect_unused_files`], which keeps every file any entry names): first the
//!   old set, then old and new together, then the new set. It is not one step: after a crash
//!   the directory may hold both sets, until [`BootDir::recover`] (run by every
//!   staging and switch) rolls the switch forward from the marker's list. Foreign entries are
//!   never renamed or rewritten on this path.
//!
//! # Foreign entries during a switch
//!
//! Entries sealroot did not write keep their name and bytes through every switch. On the
//! exchange path they live on in the new directory as described above; a foreign entry that
//! another tool adds, changes or removes between the carrying and the exchange is put right
//! from the old directory just after it (so the result is what that tool left). On the
//! entry-by-entry path they are not touched at all.
//!
//! # Why not ostree's `loader.N` symlink swap
//!
//! ostree makes `loader` a symlink to `loader.0` or `loader.1` and swaps it with a rename.
//! vfat has no symlinks and systemd-boot reads the partition through UEFI, which follows
//! none; and every filesystem that has symlinks and can hold `/boot` (ext4, xfs, btrfs) has
//! had `RENAME_EXCHANGE` since Linux 3.15–4.0, which swaps the directory itself.

mod carry;
mod error;
mod files;
mod fsops;
mod stage;
mod switch;

use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, FlockOperation};
use rustix::io::Errno;

pub use error::{
    BootIoError, CollectError, CounterError, ListError, MarkerError, Op, OpenError, ReadEntryError,
    RecoverError, StageError, SwitchError, VerifyError,
};
pub use files::{file_path, BootFile, Collected, FILES_DIR};
pub use stage::{OurEntry, Staged};
pub use switch::{Recovered, SwitchMethod, SwitchReport};

use crate::bls::{Entry, EntryName, NameError, ENTRY_SUFFIX, MAX_ENTRY_SIZE};
use fsops::Item;

/// The directory of the boot loader's files on the partition.
pub const LOADER_DIR: &str = "loader";
/// The directory of entries in [`LOADER_DIR`].
pub const ENTRIES_DIR: &str = "entries";
/// The staging directory beside [`ENTRIES_DIR`].
pub const STAGED_DIR: &str = "entries.staged";
/// The marker of a complete staging, in [`STAGED_DIR`] (and in [`ENTRIES_DIR`] for the
/// instant between an exchange and its cleaning up).
pub const STAGED_MARKER: &str = "sealroot.staged";
/// The marker of a switch entry by entry under way, in [`STAGED_DIR`].
pub const SWITCHING_MARKER: &str = "sealroot.switching";
/// The name [`STAGED_MARKER`] is written under before it is renamed into place.
const MARKER_TMP: &str = "sealroot.staged.tmp";
/// The file made in the staging directory to see whether it shows through `loader/entries`
/// too (a torn exchange on vfat).
const PROBE: &str = "sealroot.probe";

/// The kind of filesystem on the boot partition: what sealroot may rely on there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsKind {
    /// ext4 (or xfs, btrfs): hard links, case-sensitive names, `RENAME_EXCHANGE`.
    Ext4,
    /// vfat: no symlinks, no hard links, names compared without regard to case;
    /// `RENAME_EXCHANGE` since Linux 6.0. sealroot then never makes a link, never uses
    /// `O_TMPFILE`, and compares names of entries without regard to ASCII case.
    Vfat,
}

impl FsKind {
    /// What the filesystem holding `dir` is, by its magic number: ext4, xfs and btrfs are
    /// [`FsKind::Ext4`]; anything else (vfat, FUSE) is taken as [`FsKind::Vfat`], the one
    /// that relies on least.
    pub fn detect(dir: impl AsFd) -> Result<FsKind, Errno> {
        const EXT4: i64 = 0xEF53;
        const XFS: i64 = 0x5846_5342;
        const BTRFS: i64 = 0x9123_683E;
        let st = rustix::fs::fstatfs(dir)?;
        #[allow(clippy::unnecessary_cast)]
        let magic = st.f_type as i64;
        Ok(if [EXT4, XFS, BTRFS].contains(&magic) {
            FsKind::Ext4
        } else {
            FsKind::Vfat
        })
    }

    /// Whether two names are the same on this filesystem.
    fn same_name(self, a: &[u8], b: &[u8]) -> bool {
        match self {
            FsKind::Ext4 => a == b,
            FsKind::Vfat => a.eq_ignore_ascii_case(b),
        }
    }
}

/// One file in `loader/entries` whose name ends in `.conf`.
#[derive(Debug)]
pub struct Listed {
    /// The file's name.
    pub file_name: std::ffi::OsString,
    /// The name as an entry's name, or why it is none.
    pub name: Result<EntryName, NameError>,
    /// The entry, or why it could not be read.
    pub entry: Result<Entry, ReadEntryError>,
    /// Whether sealroot wrote it ([`EntryName::is_ours`]).
    pub ours: bool,
}

/// The boot partition, open: see the module docs.
#[derive(Debug)]
pub struct BootDir {
    path: PathBuf,
    root: OwnedFd,
    fs: FsKind,
    method: SwitchMethod,
}

/// The exclusive lock on a boot directory, held while it is changed (`flock` on the
/// partition's root directory, released when dropped).
struct Lock<'a>(BorrowedFd<'a>);

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(self.0, FlockOperation::Unlock);
    }
}

impl BootDir {
    /// Opens the boot partition mounted at `path`, whose filesystem is `fs`.
    pub fn open(path: &Path, fs: FsKind) -> Result<BootDir, OpenError> {
        let root = fsops::open_dir(rustix::fs::CWD, path)
            .map_err(|e| BootIoError::new(Op::Open, path.to_owned(), e))?;
        Ok(BootDir {
            path: path.to_owned(),
            root,
            fs,
            method: SwitchMethod::Exchange,
        })
    }

    /// Switches entry by entry from now on even where the exchange works (the path taken
    /// when the kernel lacks `RENAME_EXCHANGE`), or back with [`SwitchMethod::Exchange`].
    pub fn set_switch_method(&mut self, method: SwitchMethod) {
        self.method = method;
    }

    /// Where the partition is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The filesystem kind it was opened with.
    pub fn fs(&self) -> FsKind {
        self.fs
    }

    /// The path of `rel` on the partition, for messages.
    pub(crate) fn at(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// `loader/NAME/ITEM` as a path, for messages.
    pub(crate) fn in_loader(&self, dir: &str, item: &CStr) -> PathBuf {
        self.at(Path::new(LOADER_DIR)
            .join(dir)
            .join(OsStr::from_bytes(item.to_bytes())))
    }

    /// Takes the partition's lock, waiting for another sealroot to release it.
    fn lock(&self) -> Result<Lock<'_>, BootIoError> {
        rustix::fs::flock(&self.root, FlockOperation::LockExclusive)
            .map_err(|e| BootIoError::new(Op::Lock, self.path.clone(), e))?;
        Ok(Lock(self.root.as_fd()))
    }

    /// `NAME` on the partition's root, open, or `None` when missing.
    fn open_dir_if_any(&self, name: &str) -> Result<Option<OwnedFd>, BootIoError> {
        match fsops::open_dir(&self.root, name) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(BootIoError::new(Op::Open, self.at(name), e)),
        }
    }

    /// `loader/DIR`, open, or `None` when missing.
    fn open_loader_dir(&self, dir: &str) -> Result<Option<OwnedFd>, BootIoError> {
        let rel = format!("{LOADER_DIR}/{dir}");
        match fsops::open_dir(&self.root, rel.as_str()) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(BootIoError::new(Op::Open, self.at(rel), e)),
        }
    }

    /// Every name in `loader/DIR` (open as `fd`).
    fn list_loader_dir(&self, fd: BorrowedFd<'_>, dir: &str) -> Result<Vec<Item>, ListError> {
        let path = || self.at(Path::new(LOADER_DIR).join(dir));
        fsops::list(fd)
            .map_err(|e| BootIoError::new(Op::List, path(), e))?
            .ok_or_else(|| ListError::TooMany {
                path: path(),
                max: fsops::MAX_DIR_ITEMS,
            })
    }

    /// The entries the boot loader reads: every `*.conf` file in `loader/entries`, sealroot's
    /// and anyone else's, each parsed (an entry that cannot be read is listed with its
    /// error). Empty when the directory does not exist.
    pub fn entries(&self) -> Result<Vec<Listed>, ListError> {
        self.list_entries(ENTRIES_DIR)
    }

    /// The entries of a complete staged set not yet switched to (in `loader/entries.staged`,
    /// with its marker), sealroot's and the carried foreign ones; `None` when there is none.
    pub fn staged_entries(&self) -> Result<Option<Vec<Listed>>, ListError> {
        let Some(fd) = self.open_loader_dir(STAGED_DIR)? else {
            return Ok(None);
        };
        let marked = fsops::exists(fd.as_fd(), STAGED_MARKER)
            .map_err(|e| BootIoError::new(Op::Stat, self.at(STAGED_MARKER), e))?;
        if !marked {
            return Ok(None);
        }
        self.list_entries(STAGED_DIR).map(Some)
    }

    fn list_entries(&self, dir: &str) -> Result<Vec<Listed>, ListError> {
        let Some(fd) = self.open_loader_dir(dir)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in self.list_loader_dir(fd.as_fd(), dir)? {
            if !is_conf(&item) {
                continue;
            }
            let name = match item.text() {
                Some(text) => EntryName::parse(text),
                None => Err(NameError::Character {
                    name: item.name.to_string_lossy().into_owned(),
                }),
            };
            let ours = name.as_ref().is_ok_and(EntryName::is_ours);
            let entry = self.read_entry(fd.as_fd(), dir, &item.name);
            out.push(Listed {
                file_name: OsStr::from_bytes(item.name.to_bytes()).to_owned(),
                name,
                entry,
                ours,
            });
        }
        Ok(out)
    }

    /// Reads and parses `loader/DIR/NAME`.
    fn read_entry(
        &self,
        dir_fd: BorrowedFd<'_>,
        dir: &str,
        name: &CStr,
    ) -> Result<Entry, ReadEntryError> {
        let path = || self.in_loader(dir, name);
        let fd =
            fsops::open_file(dir_fd, name).map_err(|e| BootIoError::new(Op::Open, path(), e))?;
        let bytes = fsops::read_all(fd.as_fd(), MAX_ENTRY_SIZE)
            .map_err(|e| BootIoError::new(Op::Read, path(), e))?;
        let Some(bytes) = bytes else {
            let source = crate::bls::ParseError::TooLarge {
                size: rustix::fs::fstat(&fd).map_or(MAX_ENTRY_SIZE + 1, |st| st.st_size as usize),
            };
            return Err(ReadEntryError::Parse {
                path: path(),
                source,
            });
        };
        Entry::parse(&bytes).map_err(|source| ReadEntryError::Parse {
            path: path(),
            source,
        })
    }

    /// Whether `item` (in `loader/entries` or the staging directory) is one of sealroot's
    /// entries.
    fn is_ours(item: &Item) -> bool {
        is_conf(item)
            && item
                .text()
                .and_then(|t| EntryName::parse(t).ok())
                .is_some_and(|n| n.is_ours())
    }

    /// Whether `item` is one of the markers, which are neither ours nor foreign.
    fn is_marker(item: &Item) -> bool {
        let n = item.name.to_bytes();
        [
            STAGED_MARKER,
            SWITCHING_MARKER,
            carry::CARRY_TMP,
            MARKER_TMP,
            PROBE,
        ]
        .iter()
        .any(|m| n == m.as_bytes())
    }
}

/// Whether the name ends in `.conf` (ASCII case ignored), as the entries boot loaders read.
fn is_conf(item: &Item) -> bool {
    let n = item.name.to_bytes();
    n.len() > ENTRY_SUFFIX.len()
        && n[n.len() - ENTRY_SUFFIX.len()..].eq_ignore_ascii_case(ENTRY_SUFFIX.as_bytes())
        && item.file_type != FileType::Directory
}
