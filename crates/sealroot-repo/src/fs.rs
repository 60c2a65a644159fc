//! File-system helpers, all relative to directory file descriptors and none following a
//! symlink: opening beneath a directory, listing, hashing an open file, replacing a small
//! file atomically, and the temporary files of `sealroot-objects`.
//!
//! Inside a repository nothing is ever a symlink but the links the layout defines (image,
//! commit and ref links), which are read with `readlinkat` and never followed. Paths are
//! resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so a symlink planted at any
//! component fails with `ELOOP` (reported as [`crate::IoError`] naming the path) instead of
//! leading elsewhere.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use sealroot_objects::Fallback;
pub(crate) use sealroot_objects::{with_buffer, write_all, TmpPolicy};
use sealroot_verity::{AnyDigest, Hasher, Params};

/// The permissions of objects and `meta.json`: readable by all, as C mkcomposefs and
/// composefs-rs make them.
pub(crate) const FILE_MODE: u32 = sealroot_objects::OBJECT_MODE;
/// The permissions of the directories inside the repository.
pub(crate) const DIR_MODE: u32 = 0o755;
/// The permissions of the repository directory itself, as `cfsctl init` makes it.
pub(crate) const REPO_DIR_MODE: u32 = 0o700;

/// How paths are resolved below a repository: never above it, never through a symlink.
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// Set once the kernel turned out to lack `openat2` (before 5.6): then each component is
/// opened with `O_NOFOLLOW` instead.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens `rel` below `dir` with `flags`, refusing a symlink at any component, the last one
/// included (`ELOOP`, whatever `flags` hold: `O_DIRECTORY` and `O_PATH` too), and any path
/// leading above `dir` (`EXDEV`).
pub(crate) fn open_beneath<P: rustix::path::Arg + Copy>(
    dir: impl AsFd,
    rel: P,
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    let flags = (flags | OFlags::CLOEXEC) - OFlags::NOFOLLOW;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        // Without O_NOFOLLOW: RESOLVE_NO_SYMLINKS then refuses a trailing symlink with ELOOP
        // as it does the others. (O_NOFOLLOW would make O_DIRECTORY say ENOTDIR there, and
        // O_PATH open the link itself.)
        match rustix::fs::openat2(&dir, rel, flags, Mode::empty(), RESOLVE) {
            Err(Errno::NOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
            // Retried by the kernel's own rule when a rename raced the lookup.
            Err(Errno::AGAIN) => {}
            r => return r,
        }
    }
    open_components(dir.as_fd(), rel, flags | OFlags::NOFOLLOW)
}

/// [`open_beneath`] without `openat2`: every component opened with `O_NOFOLLOW`, `..` and
/// absolute paths refused.
fn open_components<P: rustix::path::Arg>(
    dir: BorrowedFd<'_>,
    rel: P,
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    let rel = rel.as_cow_c_str()?;
    let bytes = rel.to_bytes();
    if bytes.starts_with(b"/") {
        return Err(Errno::XDEV);
    }
    let parts: Vec<&[u8]> = bytes
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
        .collect();
    if parts.iter().any(|p| *p == b"..") {
        return Err(Errno::XDEV);
    }
    let Some((last, dirs)) = parts.split_last() else {
        return rustix::fs::openat(dir, c".", flags, Mode::empty());
    };
    let mut current: Option<OwnedFd> = None;
    for part in dirs {
        let at = current.as_ref().map_or(dir, |fd| fd.as_fd());
        let next = rustix::fs::openat(
            at,
            *part,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        );
        current = Some(match next {
            // A symlink there says ENOTDIR to O_DIRECTORY | O_NOFOLLOW: say what openat2 says.
            Err(Errno::NOTDIR) => match rustix::fs::statat(at, *part, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                    return Err(Errno::LOOP)
                }
                _ => return Err(Errno::NOTDIR),
            },
            r => r?,
        });
    }
    let at = current.as_ref().map_or(dir, |fd| fd.as_fd());
    let is_symlink = || {
        rustix::fs::statat(at, *last, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
    };
    match rustix::fs::openat(at, *last, flags, Mode::empty()) {
        // O_DIRECTORY | O_NOFOLLOW says ENOTDIR at a symlink; O_PATH | O_NOFOLLOW opens it.
        Err(Errno::NOTDIR) if is_symlink() => Err(Errno::LOOP),
        Ok(fd) if flags.contains(OFlags::PATH) => {
            let st = rustix::fs::fstat(&fd)?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                return Err(Errno::LOOP);
            }
            Ok(fd)
        }
        r => r,
    }
}

/// Opens directory `rel` below `dir` (no symlink anywhere on the way).
pub(crate) fn open_dir<P: rustix::path::Arg + Copy>(
    dir: impl AsFd,
    rel: P,
) -> Result<OwnedFd, Errno> {
    open_beneath(dir, rel, OFlags::RDONLY | OFlags::DIRECTORY)
}

/// Opens file `rel` below `dir` read-only (no symlink anywhere on the way, the last
/// component included). `O_NONBLOCK`: a FIFO put where a file belongs must not hang anyone.
pub(crate) fn open_file<P: rustix::path::Arg + Copy>(
    dir: impl AsFd,
    rel: P,
) -> Result<OwnedFd, Errno> {
    open_beneath(dir, rel, OFlags::RDONLY | OFlags::NONBLOCK)
}

/// Whether `rel` exists below `dir` and is not a symlink (nor reached through one).
pub(crate) fn exists<P: rustix::path::Arg + Copy>(dir: impl AsFd, rel: P) -> Result<bool, Errno> {
    match open_beneath(dir, rel, OFlags::PATH) {
        Ok(_) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates directory `rel` below `dir` unless it exists. A symlink of that name is left for
/// [`open_dir`] to refuse.
pub(crate) fn ensure_dir(dir: impl AsFd, rel: &str) -> Result<(), Errno> {
    match rustix::fs::mkdirat(dir, rel, Mode::from_raw_mode(DIR_MODE)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates directory `rel` below `dir` and every missing directory above it, each checked to
/// be a real directory, and opens it.
pub(crate) fn ensure_dirs(dir: impl AsFd, rel: &str) -> Result<OwnedFd, Errno> {
    let mut current = open_dir(&dir, c".")?;
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        ensure_dir(&current, part)?;
        current = open_dir(&current, part)?;
    }
    Ok(current)
}

/// One entry of a directory listing.
pub(crate) struct Entry {
    pub(crate) name: CString,
    pub(crate) file_type: FileType,
}

/// Every entry of the directory open as `dir` but `.` and `..`. The listing comes from a
/// new open file description, so `dir`'s own position is untouched.
pub(crate) fn list(dir: impl AsFd) -> Result<Vec<Entry>, Errno> {
    let mut out = Vec::new();
    for_each(dir, |name, file_type| {
        out.push(Entry {
            name: name.to_owned(),
            file_type,
        })
    })?;
    Ok(out)
}

/// Calls `f` with the name and type of every entry of the directory open as `dir` but `.`
/// and `..`, without copying the names.
/// Where the filesystem does not say the type (`DT_UNKNOWN`: XFS without ftype, some
/// network filesystems), it is looked up, so that callers never mistake a symlink or a
/// directory for something else.
pub(crate) fn for_each(dir: impl AsFd, mut f: impl FnMut(&CStr, FileType)) -> Result<(), Errno> {
    let dir = dir.as_fd();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let file_type = match entry.file_type() {
            FileType::Unknown => match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e),
            },
            t => t,
        };
        f(name, file_type);
    }
    Ok(())
}

/// The fs-verity digest of everything in the file open as `fd`, read with positional reads
/// from offset 0, and the number of bytes read.
pub(crate) fn hash_fd(params: &Params, fd: BorrowedFd<'_>) -> io::Result<(AnyDigest, u64)> {
    let mut h = Hasher::new(params.clone());
    let mut offset = 0u64;
    with_buffer(|buf| loop {
        match rustix::io::pread(fd, &mut *buf, offset) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                h.update(&buf[..n]);
                offset += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(io::Error::from(e)),
        }
    })?;
    Ok((h.finish(), offset))
}

/// Reads the whole file open as `fd`, refusing one of more than `max` bytes (`Ok(None)`).
pub(crate) fn read_bounded(fd: OwnedFd, max: u64) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read as _;
    let file = std::fs::File::from(fd);
    let size = file.metadata().map_or(0, |m| m.len());
    let mut bytes = Vec::with_capacity(size.min(max + 1) as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// Replaces file `name` in directory `dir` with `bytes`, atomically and durably: a
/// temporary file in `tmp` (same filesystem), written and fsync'ed, renamed over `name`,
/// then `dir` fsync'ed. Readers see the old content or the new, never a mix.
pub(crate) fn replace_file(
    tmp: &OwnedFd,
    policy: &TmpPolicy,
    dir: &OwnedFd,
    name: &str,
    bytes: &[u8],
) -> Result<(), Errno> {
    let tmp_name = policy.unique_name("replace");
    let fd = rustix::fs::openat(
        tmp,
        tmp_name.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(FILE_MODE),
    )?;
    let result = write_all(&fd, bytes)
        .and_then(|()| rustix::fs::fsync(&fd))
        .and_then(|()| rustix::fs::renameat(tmp, tmp_name.as_str(), dir, name));
    if result.is_err() {
        let _ = rustix::fs::unlinkat(tmp, tmp_name.as_str(), AtFlags::empty());
    }
    result?;
    rustix::fs::fsync(dir)
}

/// Replaces symlink `name` in directory `dir` with one to `target`, atomically: made under
/// a temporary name in `tmp` and renamed over `name`. The caller flushes `dir`.
pub(crate) fn replace_symlink(
    tmp: &OwnedFd,
    policy: &TmpPolicy,
    dir: &OwnedFd,
    name: &str,
    target: &str,
) -> Result<(), Errno> {
    let tmp_name = policy.unique_name("link");
    rustix::fs::symlinkat(target, tmp, tmp_name.as_str())?;
    let r = rustix::fs::renameat(tmp, tmp_name.as_str(), dir, name);
    if r.is_err() {
        let _ = rustix::fs::unlinkat(tmp, tmp_name.as_str(), AtFlags::empty());
    }
    r
}

/// How the repository makes temporary files: `O_TMPFILE`, else `object.PID.N` hard-linked to
/// its final name, so that an existing name is kept and reported (objects counted as
/// present, a concurrent `init`'s `meta.json` kept).
pub(crate) fn tmp_policy() -> TmpPolicy {
    TmpPolicy::new(Fallback::Link)
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`, without dashes): a transaction marker
/// from another boot means the machine went down while that transaction ran.
pub(crate) fn boot_id() -> io::Result<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?;
    let id: String = text.trim().chars().filter(|c| *c != '-').collect();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected boot id {text:?}"),
        ));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &std::path::Path) -> OwnedFd {
        rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    #[test]
    fn symlinks_and_escapes_are_refused_both_ways() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("a")).unwrap();
        std::fs::write(tmp.path().join("a/f"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("l")).unwrap();
        std::fs::write(outside.path().join("f"), b"y").unwrap();
        std::os::unix::fs::symlink("a/f", tmp.path().join("fl")).unwrap();
        let root = dir(tmp.path());
        for openat2 in [true, false] {
            let open = |rel: &str, flags| {
                if openat2 {
                    open_beneath(&root, rel, flags)
                } else {
                    open_components(root.as_fd(), rel, flags | OFlags::NOFOLLOW)
                }
            };
            assert!(open("a/f", OFlags::RDONLY).is_ok());
            assert_eq!(open("l/f", OFlags::RDONLY).unwrap_err(), Errno::LOOP);
            assert_eq!(open("fl", OFlags::RDONLY).unwrap_err(), Errno::LOOP);
            assert_eq!(
                open("../x", OFlags::RDONLY).unwrap_err(),
                Errno::XDEV,
                "openat2 {openat2}"
            );
            assert!(open("/etc/passwd", OFlags::RDONLY).is_err());
            // A symlink as the last component, whatever the flags.
            for flags in [OFlags::RDONLY | OFlags::DIRECTORY, OFlags::PATH] {
                assert_eq!(open("l", flags).unwrap_err(), Errno::LOOP, "{flags:?}");
            }
            assert_eq!(open("fl", OFlags::PATH).unwrap_err(), Errno::LOOP);
            assert!(open("a", OFlags::RDONLY | OFlags::DIRECTORY).is_ok());
            assert!(open("a/f", OFlags::PATH).is_ok());
        }
        assert_eq!(open_dir(&root, "l").unwrap_err(), Errno::LOOP);
        assert_eq!(exists(&root, "l").unwrap_err(), Errno::LOOP);
        assert_eq!(exists(&root, "fl").unwrap_err(), Errno::LOOP);
        assert!(!exists(&root, "l/f").unwrap_or(false));
        assert!(exists(&root, "a/f").unwrap());
        assert!(!exists(&root, "a/g").unwrap());
    }
}
