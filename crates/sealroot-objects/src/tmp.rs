//! Temporary files that become objects: [`TmpPolicy`] and [`TmpFile`].

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::OBJECT_MODE;

/// What a named temporary file (made only where the filesystem has no `O_TMPFILE`) is called
/// and how it gets its final name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// `.tmp-PID-N` (hidden, and what `gc` sweeps from `objects/XX/`), *renamed* to its final
    /// name: a rename needs no hard links, so this works on any filesystem that can hold a
    /// store. A file already of that name is replaced (in a content-addressed store, by an
    /// equal one). `mkcomposefs --digest-store` does this.
    Rename,
    /// `object.PID.N`, hard-*linked* to its final name and unlinked when the [`TmpFile`] is
    /// dropped: a name that exists already is kept and reported, as for an `O_TMPFILE`. The
    /// repository does this (its `tmp/` is emptied by `gc`).
    Link,
}

/// How temporary files are made and linked in one store, learnt once and shared by every
/// thread writing to it.
#[derive(Debug)]
pub struct TmpPolicy {
    fallback: Fallback,
    /// Set once the filesystem turned out not to support `O_TMPFILE`.
    no_tmpfile: AtomicBool,
    /// Set once `linkat(AT_EMPTY_PATH)` was refused (it needs `CAP_DAC_READ_SEARCH`).
    no_empty_path_link: AtomicBool,
}

/// Numbers temporary names: one counter for the whole process (two policies on one
/// directory must not hand out the same name), starting at a value taken from the clock, so
/// that a leftover name of an earlier process that had the same PID (PIDs repeat across
/// reboots) is not met again.
fn next_number() -> u64 {
    static COUNTER: std::sync::OnceLock<AtomicU64> = std::sync::OnceLock::new();
    COUNTER
        .get_or_init(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            AtomicU64::new(nanos)
        })
        .fetch_add(1, Ordering::Relaxed)
}

impl TmpPolicy {
    /// A policy that tries `O_TMPFILE` first and otherwise names files as `fallback` says.
    pub fn new(fallback: Fallback) -> Self {
        TmpPolicy {
            fallback,
            no_tmpfile: AtomicBool::new(false),
            no_empty_path_link: AtomicBool::new(false),
        }
    }

    /// Makes named temporary files from now on, as on a filesystem without `O_TMPFILE` (for
    /// tests of that path on filesystems that have it).
    pub fn disable_tmpfile(&self) {
        self.no_tmpfile.store(true, Ordering::Relaxed);
    }

    /// A name unique on this machine while this process lives: `PREFIX.PID.N`.
    pub fn unique_name(&self, prefix: &str) -> String {
        format!("{prefix}.{}.{}", std::process::id(), next_number())
    }

    /// A new empty file, open for reading and writing, in directory `dir`: an anonymous
    /// `O_TMPFILE`, or, where the filesystem lacks those, a file named as [`Fallback`] says,
    /// removed again unless it becomes the final name. Always directly in `dir` (one name, no
    /// path), so nothing on the way can be a symlink.
    pub fn create<'d>(&self, dir: &'d OwnedFd) -> Result<TmpFile<'d>, Errno> {
        let mode = Mode::from_raw_mode(OBJECT_MODE);
        if !self.no_tmpfile.load(Ordering::Relaxed) {
            let flags = OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC;
            match rustix::fs::openat(dir, c".", flags, mode) {
                Ok(fd) => return Ok(TmpFile { fd, named: None }),
                // The filesystem has no O_TMPFILE.
                Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
                    self.no_tmpfile.store(true, Ordering::Relaxed)
                }
                Err(e) => return Err(e),
            }
        }
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        loop {
            let name = match self.fallback {
                Fallback::Rename => {
                    let n = next_number();
                    format!(".tmp-{}-{n}", std::process::id())
                }
                Fallback::Link => self.unique_name("object"),
            };
            match rustix::fs::openat(dir, name.as_str(), flags, mode) {
                Ok(fd) => {
                    return Ok(TmpFile {
                        fd,
                        named: Some(Named {
                            dir,
                            name,
                            rename: self.fallback == Fallback::Rename,
                            gone: false,
                        }),
                    })
                }
                Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Gives the complete file `tmp` the name `name` in `dest`. Returns `Ok(false)` when a
    /// file of that name exists already and was left as it is: in a content-addressed store
    /// it holds the same bytes.
    pub fn link(&self, tmp: &mut TmpFile<'_>, dest: impl AsFd, name: &str) -> Result<bool, Errno> {
        let r = match &mut tmp.named {
            None => {
                let fd = &tmp.fd;
                let mut r = Err(Errno::NOENT);
                if !self.no_empty_path_link.load(Ordering::Relaxed) {
                    r = rustix::fs::linkat(fd, "", &dest, name, AtFlags::EMPTY_PATH);
                    if r == Err(Errno::NOENT) {
                        // Refused for want of CAP_DAC_READ_SEARCH: go through /proc.
                        self.no_empty_path_link.store(true, Ordering::Relaxed);
                    }
                }
                if r == Err(Errno::NOENT) {
                    let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
                    r = rustix::fs::linkat(
                        rustix::fs::CWD,
                        proc.as_str(),
                        &dest,
                        name,
                        AtFlags::SYMLINK_FOLLOW,
                    );
                }
                r
            }
            Some(named) if named.rename => {
                let r = rustix::fs::renameat(named.dir, named.name.as_str(), &dest, name);
                named.gone = r.is_ok();
                r
            }
            Some(named) => rustix::fs::linkat(
                named.dir,
                named.name.as_str(),
                &dest,
                name,
                AtFlags::empty(),
            ),
        };
        match r {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A file being written, not yet visible under its final name.
#[derive(Debug)]
pub struct TmpFile<'d> {
    fd: OwnedFd,
    /// `None` for an `O_TMPFILE`: nameless until linked, gone if never linked.
    named: Option<Named<'d>>,
}

/// The temporary name of a [`TmpFile`] made without `O_TMPFILE`.
#[derive(Debug)]
struct Named<'d> {
    dir: &'d OwnedFd,
    /// Relative to `dir`.
    name: String,
    /// [`Fallback::Rename`].
    rename: bool,
    /// The name was renamed away: nothing to remove.
    gone: bool,
}

impl TmpFile<'_> {
    /// The file descriptor.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Replaces the descriptor with a read-only one of the same file and closes the writable
    /// one: fs-verity can only be enabled on a file nobody has open for writing.
    pub fn reopen_read_only(&mut self) -> Result<(), Errno> {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        self.fd = match &self.named {
            // An O_TMPFILE has no name but its /proc/self/fd link.
            None => {
                let proc = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
                rustix::fs::openat(rustix::fs::CWD, proc.as_str(), flags, Mode::empty())?
            }
            Some(named) => {
                rustix::fs::openat(named.dir, named.name.as_str(), flags, Mode::empty())?
            }
        };
        Ok(())
    }
}

impl Drop for TmpFile<'_> {
    fn drop(&mut self) {
        if let Some(named) = &self.named {
            if !named.gone {
                // Best effort: a leftover temporary name is what gc sweeps.
                let _ = rustix::fs::unlinkat(named.dir, named.name.as_str(), AtFlags::empty());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn open_dir(path: &Path) -> OwnedFd {
        rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    fn names(path: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn every_way_of_making_and_linking_leaves_only_the_final_name() {
        for fallback in [Fallback::Rename, Fallback::Link] {
            for tmpfile in [true, false] {
                let tmp = tempfile::tempdir().unwrap();
                std::fs::create_dir(tmp.path().join("ab")).unwrap();
                let dir = open_dir(&tmp.path().join("ab"));
                let policy = TmpPolicy::new(fallback);
                if !tmpfile {
                    policy.disable_tmpfile();
                }
                let mut file = policy.create(&dir).unwrap();
                crate::write_all(file.fd(), b"content").unwrap();
                file.reopen_read_only().unwrap();
                assert!(policy.link(&mut file, &dir, "cdef").unwrap());
                drop(file);
                let mut again = policy.create(&dir).unwrap();
                crate::write_all(again.fd(), b"content").unwrap();
                let linked = policy.link(&mut again, &dir, "cdef").unwrap();
                // A rename replaces an equal object; every other way keeps the first one.
                assert_eq!(linked, fallback == Fallback::Rename && !tmpfile);
                drop(again);
                // Never linked: leaves nothing.
                drop(policy.create(&dir).unwrap());
                let label = format!("{fallback:?} tmpfile={tmpfile}");
                assert_eq!(names(&tmp.path().join("ab")), ["cdef"], "{label}");
                assert_eq!(
                    std::fs::read(tmp.path().join("ab/cdef")).unwrap(),
                    b"content"
                );
            }
        }
    }

    #[test]
    fn fallback_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = open_dir(tmp.path());
        for (fallback, prefix) in [(Fallback::Rename, ".tmp-"), (Fallback::Link, "object.")] {
            let policy = TmpPolicy::new(fallback);
            policy.disable_tmpfile();
            let file = policy.create(&dir).unwrap();
            let listed = names(tmp.path());
            assert_eq!(listed.len(), 1);
            assert!(listed[0].starts_with(prefix), "{listed:?}");
            drop(file);
            assert!(names(tmp.path()).is_empty());
        }
    }
}
