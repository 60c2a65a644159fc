//! Writing the merged `/etc` a [`MergePlan`] decided.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use rustix::fs::{AtFlags, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use sealroot_format::tree::{Content, FileType, Inode, InodeId, RegularFile, Tree};
use sealroot_verity::{AnyDigest, HashAlgorithm, Hasher, Params};

use super::compare::{display_path, push_name, PERMISSION_BITS};
use super::error::{ApplyError, ApplyOp};
use super::plan::{MergePlan, Node, Side};

/// How directories are opened: the output's just made, the local one's below the local
/// directory fd, never through a symlink.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// How local files are opened to be copied: never through a symlink, never blocking should
/// a fifo have taken the file's place.
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// How output files are created: only a new name, never through a symlink.
const CREATE_FLAGS: OFlags = OFlags::WRONLY
    .union(OFlags::CREATE)
    .union(OFlags::EXCL)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// The mode a file or directory is created with, until its own is set: private.
const CREATE_MODE: u32 = 0o700;

/// What [`apply`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Directories made (not counting the output directory itself).
    pub directories: u64,
    /// Regular files written.
    pub files: u64,
    /// Symlinks made.
    pub symlinks: u64,
    /// Devices, fifos and sockets made.
    pub specials: u64,
    /// Further names made as hard links of a file already written.
    pub hardlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Writes the merged `/etc` that `plan` decided into the empty directory open as `out`, and
/// gives the directory the merged `/etc`'s own owner, mode, xattrs and mtime. Refuses a plan
/// with unresolved conflicts, and a directory that is not empty, before writing anything.
/// See the [module documentation](super) for how files are written.
pub fn apply(plan: &MergePlan<'_>, out: BorrowedFd<'_>) -> Result<Applied, ApplyError> {
    let unresolved: Vec<_> = plan.unresolved().cloned().collect();
    if !unresolved.is_empty() {
        return Err(ApplyError::Conflicts(unresolved));
    }
    let list_error = |e: Errno| io_error(ApplyOp::ListOutput, b"", e.into());
    for entry in rustix::fs::Dir::read_from(out).map_err(list_error)? {
        let name = entry.map_err(list_error)?;
        if ![&b"."[..], b".."].contains(&name.file_name().to_bytes()) {
            return Err(ApplyError::NotEmpty);
        }
    }
    let Some(root) = &plan.root else {
        return Ok(Applied::default());
    };
    let mut writer = Writer {
        plan,
        shared: shared_inodes(root),
        written: HashMap::new(),
        path: Vec::new(),
        stats: Applied::default(),
    };
    let out = Rc::new(
        out.try_clone_to_owned()
            .map_err(|e| io_error(ApplyOp::OpenDir, b"", e))?,
    );
    let local = LocalDir {
        parent: None,
        name: b"",
        fd: OnceCell::new(),
        root: plan.local.dir.as_fd(),
    };
    writer.write_entries(&out, &local, root)?;
    writer.set_fd_meta(out.as_fd(), writer.inode(root))?;
    Ok(writer.stats)
}

/// The non-directory inodes that more than one name of the result takes.
fn shared_inodes(root: &Node) -> HashSet<(Side, InodeId)> {
    fn count(node: &Node, seen: &mut HashMap<(Side, InodeId), u32>) {
        for (_, child) in &node.children {
            *seen.entry((child.side, child.inode)).or_default() += 1;
            count(child, seen);
        }
    }
    let mut seen = HashMap::new();
    count(root, &mut seen);
    seen.into_iter()
        .filter(|&(_, n)| n > 1)
        .map(|(key, _)| key)
        .collect()
}

/// An I/O error of `op` on `path`.
fn io_error(op: ApplyOp, path: &[u8], source: io::Error) -> ApplyError {
    ApplyError::Io {
        op,
        path: display_path(path),
        source,
    }
}

/// A directory of the local `/etc`, opened when a file in it is first copied.
struct LocalDir<'p> {
    parent: Option<&'p LocalDir<'p>>,
    name: &'p [u8],
    fd: OnceCell<OwnedFd>,
    /// The local `/etc` itself, for the root.
    root: BorrowedFd<'p>,
}

impl<'p> LocalDir<'p> {
    /// Subdirectory `name` of this one.
    fn child<'c>(&'c self, name: &'c [u8]) -> LocalDir<'c> {
        LocalDir {
            parent: Some(self),
            name,
            fd: OnceCell::new(),
            root: self.root,
        }
    }

    /// The directory, opened (one component, `O_NOFOLLOW`) below its parent if not yet.
    fn get(&self) -> Result<BorrowedFd<'_>, Errno> {
        let Some(parent) = self.parent else {
            return Ok(self.root);
        };
        if let Some(fd) = self.fd.get() {
            return Ok(fd.as_fd());
        }
        let fd = rustix::fs::openat(parent.get()?, self.name, DIR_FLAGS, Mode::empty())?;
        Ok(self.fd.get_or_init(|| fd).as_fd())
    }
}

/// Where a path is written: a name in a directory of the output, whose counterpart in the
/// local `/etc` is `local`.
#[derive(Clone, Copy)]
struct Place<'p, 'l> {
    out: &'p Rc<OwnedFd>,
    local: &'p LocalDir<'l>,
    name: &'p [u8],
}

/// The state of one [`apply`].
struct Writer<'p, 'a> {
    plan: &'p MergePlan<'a>,
    /// Inodes more than one name takes.
    shared: HashSet<(Side, InodeId)>,
    /// Where each shared inode was first written: its directory and name.
    written: HashMap<(Side, InodeId), (Rc<OwnedFd>, Vec<u8>)>,
    /// The current path, relative to `/etc`.
    path: Vec<u8>,
    stats: Applied,
}

impl Writer<'_, '_> {
    fn tree(&self, side: Side) -> &Tree {
        match side {
            Side::Local => &self.plan.local.tree,
            Side::New => self.plan.new.tree,
        }
    }

    fn inode(&self, node: &Node) -> &Inode {
        self.tree(node.side).inode(node.inode)
    }

    fn err(&self, op: ApplyOp) -> impl FnOnce(Errno) -> ApplyError + '_ {
        move |e| io_error(op, &self.path, e.into())
    }

    /// Writes the entries of directory `node` into `out`; `local` is the same directory in
    /// the local `/etc`.
    fn write_entries(
        &mut self,
        out: &Rc<OwnedFd>,
        local: &LocalDir<'_>,
        node: &Node,
    ) -> Result<(), ApplyError> {
        for (name, child) in &node.children {
            let len = push_name(&mut self.path, name);
            self.write(Place { out, local, name }, child)?;
            self.path.truncate(len);
        }
        Ok(())
    }

    /// Writes `node` at `at`.
    fn write(&mut self, at: Place<'_, '_>, node: &Node) -> Result<(), ApplyError> {
        let key = (node.side, node.inode);
        if let Some((dir, first)) = self.written.get(&key) {
            rustix::fs::linkat(dir, first.as_slice(), at.out, at.name, AtFlags::empty())
                .map_err(self.err(ApplyOp::Link))?;
            self.stats.hardlinks += 1;
            return Ok(());
        }
        match self.inode(node).stat.file_type() {
            Some(FileType::Directory) => self.write_dir(at, node)?,
            Some(FileType::Regular) => self.write_file(at, node)?,
            Some(FileType::Symlink) => self.write_symlink(at, node)?,
            Some(special) => self.write_special(at, node, special)?,
            None => unreachable!("the plan checked every file type"),
        }
        if self.shared.contains(&key) {
            self.written.insert(key, (at.out.clone(), at.name.to_vec()));
        }
        Ok(())
    }

    fn write_dir(&mut self, at: Place<'_, '_>, node: &Node) -> Result<(), ApplyError> {
        let (out, name) = (at.out, at.name);
        rustix::fs::mkdirat(out, name, Mode::from_raw_mode(CREATE_MODE))
            .map_err(self.err(ApplyOp::Create))?;
        let fd = rustix::fs::openat(out, name, DIR_FLAGS, Mode::empty())
            .map_err(self.err(ApplyOp::OpenDir))?;
        let fd = Rc::new(fd);
        self.write_entries(&fd, &at.local.child(name), node)?;
        self.set_fd_meta(fd.as_fd(), self.inode(node))?;
        self.stats.directories += 1;
        Ok(())
    }

    fn write_file(&mut self, at: Place<'_, '_>, node: &Node) -> Result<(), ApplyError> {
        let mode = Mode::from_raw_mode(CREATE_MODE);
        let fd = rustix::fs::openat(at.out, at.name, CREATE_FLAGS, mode)
            .map_err(self.err(ApplyOp::Create))?;
        let mut file = File::from(fd);
        let inode = self.inode(node);
        let size = inode.stat.size;
        let Content::Regular(content) = &inode.content else {
            unreachable!("a regular file's content is Content::Regular");
        };
        let written = if let Some(bytes) = &content.inline {
            file.write_all(bytes)
                .map_err(|e| io_error(ApplyOp::Write, &self.path, e))?;
            bytes.len() as u64
        } else if size == 0 {
            0
        } else {
            match node.side {
                Side::Local => self.copy_local(at, content, size, &mut file)?,
                Side::New => self.copy_object(content, size, &mut file)?,
            }
        };
        self.stats.bytes += written;
        self.stats.files += 1;
        self.set_fd_meta(file.as_fd(), self.inode(node))
    }

    /// Copies the local file at `at` into `out`, checking it is still what the plan saw.
    fn copy_local(
        &self,
        at: Place<'_, '_>,
        content: &RegularFile,
        size: u64,
        out: &mut File,
    ) -> Result<u64, ApplyError> {
        let open = || {
            let fd = rustix::fs::openat(at.local.get()?, at.name, READ_FLAGS, Mode::empty())?;
            let st = rustix::fs::fstat(&fd)?;
            if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
            {
                return Err(Errno::NOENT);
            }
            Ok(File::from(fd))
        };
        let changed = || ApplyError::LocalChanged {
            path: display_path(&self.path),
        };
        let source = match open() {
            Ok(f) => f,
            Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => return Err(changed()),
            Err(e) => return Err(io_error(ApplyOp::OpenLocal, &self.path, e.into())),
        };
        let expected = content.digest.ok_or_else(changed)?;
        let (digest, n) = copy_hashed(source, out, expected.algorithm())
            .map_err(|(op, e)| io_error(op.unwrap_or(ApplyOp::ReadLocal), &self.path, e))?;
        if digest != expected || n != size {
            return Err(changed());
        }
        Ok(n)
    }

    /// Copies the object of a new default's file into `out`, checking its content.
    fn copy_object(
        &self,
        content: &RegularFile,
        size: u64,
        out: &mut File,
    ) -> Result<u64, ApplyError> {
        let payload = content
            .payload
            .as_deref()
            .ok_or_else(|| ApplyError::NoContent {
                path: display_path(&self.path),
            })?;
        let source = self
            .plan
            .new
            .objects
            .open(payload)
            .map_err(|e| io_error(ApplyOp::OpenObject, &self.path, e))?;
        let algorithm = content
            .digest
            .map_or(HashAlgorithm::Sha256, |d| d.algorithm());
        let (digest, n) = copy_hashed(source, out, algorithm)
            .map_err(|(op, e)| io_error(op.unwrap_or(ApplyOp::ReadObject), &self.path, e))?;
        if content.digest.is_some_and(|d| d != digest) || n != size {
            return Err(ApplyError::ObjectMismatch {
                path: display_path(&self.path),
                expected: content.digest.map(Box::new),
                expected_size: size,
                found: Box::new(digest),
                found_size: n,
            });
        }
        Ok(n)
    }

    fn write_symlink(&mut self, at: Place<'_, '_>, node: &Node) -> Result<(), ApplyError> {
        let inode = self.inode(node);
        let Content::Symlink(target) = &inode.content else {
            unreachable!("a symlink's content is Content::Symlink");
        };
        rustix::fs::symlinkat(target.as_slice(), at.out, at.name)
            .map_err(self.err(ApplyOp::Create))?;
        self.set_at_meta(at.out.as_fd(), at.name, inode, false)?;
        self.stats.symlinks += 1;
        Ok(())
    }

    fn write_special(
        &mut self,
        at: Place<'_, '_>,
        node: &Node,
        kind: FileType,
    ) -> Result<(), ApplyError> {
        let (out, name) = (at.out, at.name);
        let inode = self.inode(node);
        let file_type = rustix::fs::FileType::from_raw_mode(kind.mode_bits());
        let dev = match kind {
            // The tree keeps the low 32 bits of `st_rdev`, which are the whole of it for
            // every number the kernel's 32-bit encoding holds.
            FileType::BlockDevice | FileType::CharDevice => u64::from(inode.stat.rdev),
            _ => 0,
        };
        rustix::fs::mknodat(out, name, file_type, Mode::from_raw_mode(CREATE_MODE), dev)
            .map_err(self.err(ApplyOp::Create))?;
        self.set_at_meta(out.as_fd(), name, inode, true)?;
        self.stats.specials += 1;
        Ok(())
    }

    /// The owner of `inode`, refusing `-1`.
    fn owner(&self, inode: &Inode) -> Result<(Uid, Gid), ApplyError> {
        let (uid, gid) = (inode.stat.uid, inode.stat.gid);
        if uid == u32::MAX || gid == u32::MAX {
            return Err(ApplyError::BadOwner {
                path: display_path(&self.path),
                uid,
                gid,
            });
        }
        Ok((Uid::from_raw(uid), Gid::from_raw(gid)))
    }

    /// Gives the file or directory open as `fd` the owner, mode, xattrs and mtime of
    /// `inode`, in that order.
    fn set_fd_meta(&self, fd: BorrowedFd<'_>, inode: &Inode) -> Result<(), ApplyError> {
        let (uid, gid) = self.owner(inode)?;
        rustix::fs::fchown(fd, Some(uid), Some(gid)).map_err(self.err(ApplyOp::Chown))?;
        let mode = Mode::from_raw_mode(inode.stat.mode & PERMISSION_BITS);
        rustix::fs::fchmod(fd, mode).map_err(self.err(ApplyOp::Chmod))?;
        for x in &inode.xattrs {
            rustix::fs::fsetxattr(fd, x.name.as_slice(), &x.value, XattrFlags::empty())
                .map_err(self.err(ApplyOp::SetXattr))?;
        }
        rustix::fs::futimens(fd, &times(inode)).map_err(self.err(ApplyOp::SetTimes))
    }

    /// Gives `name` in `dir` (a symlink, device, fifo or socket, not opened) the owner,
    /// mode (with `chmod`; a symlink has none) , xattrs and mtime of `inode`.
    fn set_at_meta(
        &self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        inode: &Inode,
        chmod: bool,
    ) -> Result<(), ApplyError> {
        let (uid, gid) = self.owner(inode)?;
        rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(self.err(ApplyOp::Chown))?;
        if chmod {
            // Not a symlink: it was just made, in a directory only this merge writes.
            let mode = Mode::from_raw_mode(inode.stat.mode & PERMISSION_BITS);
            rustix::fs::chmodat(dir, name, mode, AtFlags::empty())
                .map_err(self.err(ApplyOp::Chmod))?;
        }
        if !inode.xattrs.is_empty() {
            // No fd can be opened on these to set xattrs through; this path reaches the
            // file through the directory fd without following its last component.
            let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
            path.extend_from_slice(name);
            for x in &inode.xattrs {
                rustix::fs::lsetxattr(
                    path.as_slice(),
                    x.name.as_slice(),
                    &x.value,
                    XattrFlags::empty(),
                )
                .map_err(self.err(ApplyOp::SetXattr))?;
            }
        }
        rustix::fs::utimensat(dir, name, &times(inode), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(self.err(ApplyOp::SetTimes))
    }
}

/// The mtime of `inode`, the access time left as it is.
fn times(inode: &Inode) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: inode.stat.mtime.sec,
            tv_nsec: i64::from(inode.stat.mtime.nsec),
        },
    }
}

/// Copies all of `source` to `out`, hashing it as fs-verity does with `algorithm`; returns
/// the digest and the size. A failure says whether writing failed (`Some(Write)`) or
/// reading (`None`).
fn copy_hashed(
    mut source: File,
    out: &mut File,
    algorithm: HashAlgorithm,
) -> Result<(AnyDigest, u64), (Option<ApplyOp>, io::Error)> {
    let mut hasher = Hasher::new(Params::composefs(algorithm));
    sealroot_verity::with_buffer(|buf| loop {
        match source.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])
                    .map_err(|e| (Some(ApplyOp::Write), e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((None, e)),
        }
    })?;
    let n = hasher.bytes_hashed();
    Ok((hasher.finish(), n))
}
