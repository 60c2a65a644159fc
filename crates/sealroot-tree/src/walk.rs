//! The metadata pass: one fd-relative walk of the source directory that builds the whole tree
//! except file contents, and hands the regular files whose contents must be read to the
//! content threads as it finds them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write as _;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, RawDir};
use rustix::io::Errno;
use sealroot_format::tree::{Content, DirEntry, FileType, Inode, InodeId, Mtime, Stat, Tree};

use crate::cache::FileKey;
use crate::content::{ContentJob, Queue, FILE_FLAGS, OPEN_HANDOVER_MAX};
use crate::xattr::{Target, XattrReader};
use crate::{BuildError, BuildOptions, Operation, Progress, INLINE_CONTENT_MAX};

/// How every directory is opened: never through a symlink.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// The size of the buffer `getdents64` fills; a directory entry is at most ~280 bytes.
const DIRENT_BUF_SIZE: usize = 64 * 1024;

/// What identifies one state of a file: if any of this differs between the walk and the read
/// of the content, the file changed in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileState {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    mtime: (i64, u64),
    ctime: (i64, u64),
}

impl FileState {
    /// This state as a [`DigestCache`](crate::DigestCache) key.
    pub(crate) fn key(&self) -> FileKey {
        FileKey {
            dev: self.dev,
            ino: self.ino,
            size: self.size,
            mtime_sec: self.mtime.0,
            mtime_nsec: self.mtime.1 as u32,
            ctime_sec: self.ctime.0,
            ctime_nsec: self.ctime.1 as u32,
        }
    }
}

/// The fields of a `stat` result, whose Rust types differ between architectures.
pub(crate) struct RawStat {
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) nlink: u64,
    pub(crate) rdev: u64,
    pub(crate) state: FileState,
}

impl RawStat {
    // `u64::from` is the identity on 64-bit targets and a widening on 32-bit ones.
    #[allow(clippy::useless_conversion)]
    pub(crate) fn new(st: &rustix::fs::Stat) -> Self {
        RawStat {
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            nlink: u64::from(st.st_nlink),
            rdev: u64::from(st.st_rdev),
            state: FileState {
                dev: u64::from(st.st_dev),
                ino: u64::from(st.st_ino),
                size: u64::try_from(i64::from(st.st_size)).unwrap_or(0),
                mtime: (i64::from(st.st_mtime), u64::from(st.st_mtime_nsec)),
                ctime: (i64::from(st.st_ctime), u64::from(st.st_ctime_nsec)),
            },
        }
    }

    fn file_type(&self) -> Option<FileType> {
        FileType::from_mode(self.mode)
    }
}

/// The result of the walk.
pub(crate) struct Walk {
    /// The tree, regular files without content yet.
    pub(crate) tree: Tree,
    /// The inode of each job, by job number.
    pub(crate) job_inodes: Vec<InodeId>,
    /// Inodes whose content is that of job `.1`: further names of a hard-linked file, made
    /// separate inodes (as C mkcomposefs does) but read only once.
    pub(crate) aliases: Vec<(InodeId, usize)>,
    /// The size of all files in jobs.
    pub(crate) job_bytes: u64,
}

/// A directory being listed: its entries are visited in name order, depth first.
struct Frame {
    fd: OwnedFd,
    inode: InodeId,
    names: Vec<(Vec<u8>, rustix::fs::FileType)>,
    next: usize,
    entries: Vec<DirEntry>,
    subdirs: u32,
    /// The length of this directory's relative path.
    path_len: usize,
}

/// How a regular file's content is read.
enum Job {
    /// By a new job.
    New { inline: bool },
    /// By job `.0`, which reads another name of the same file: the content (and xattrs) of
    /// that job are copied.
    Alias(usize),
}

/// One loaded directory entry.
struct Loaded {
    entry: DirEntry,
    /// The directory's fd, if the entry is a directory to descend into.
    dir: Option<OwnedFd>,
}

struct Walker<'a> {
    source: &'a Path,
    opts: &'a BuildOptions,
    progress: &'a dyn Progress,
    queue: &'a Queue,
    /// Set when the queue refused a job: the build failed elsewhere, stop.
    cancelled: bool,
    /// Whether every non-empty regular file is read (so opening it right away costs nothing
    /// more than a stat would).
    read_all_files: bool,
    tree: Tree,
    job_inodes: Vec<InodeId>,
    job_bytes: u64,
    aliases: Vec<(InodeId, usize)>,
    xattrs: Option<XattrReader>,
    /// With [`BuildOptions::hardlinks`]: the inode made for each multiply-linked file.
    links: HashMap<(u64, u64), InodeId>,
    /// Without it: the job reading each multiply-linked file.
    shared_jobs: HashMap<(u64, u64), usize>,
    dirent_buf: Vec<MaybeUninit<u8>>,
    /// The relative path of the entry being loaded.
    path: Vec<u8>,
    /// `/proc/self/fd/N/NAME`, to read the xattrs of files that are not opened.
    proc_path: Vec<u8>,
}

/// Opens the source directory, refusing a symlink.
pub(crate) fn open_root(source: &Path) -> Result<OwnedFd, BuildError> {
    match rustix::fs::openat(rustix::fs::CWD, source, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOTDIR | Errno::LOOP) => Err(BuildError::NotADirectory {
            path: source.to_owned(),
        }),
        Err(e) => Err(BuildError::io(Operation::Open, source.to_owned(), e)),
    }
}

/// Walks the source directory `root` (opened from `source`) into a tree without file
/// contents, putting each file to read into `queue`; returns the tree and the number of jobs.
pub(crate) fn walk(
    source: &Path,
    root: &OwnedFd,
    opts: &BuildOptions,
    progress: &dyn Progress,
    queue: &Queue,
) -> Result<(Walk, usize), BuildError> {
    let mut w = Walker {
        source,
        opts,
        progress,
        queue,
        cancelled: false,
        read_all_files: opts.compute_digest || opts.by_digest,
        tree: Tree::new(Stat::default()),
        job_inodes: Vec::new(),
        job_bytes: 0,
        aliases: Vec::new(),
        xattrs: (!opts.skip_xattrs).then(|| XattrReader::new(opts.user_xattrs)),
        links: HashMap::new(),
        shared_jobs: HashMap::new(),
        dirent_buf: vec![MaybeUninit::uninit(); DIRENT_BUF_SIZE],
        path: Vec::new(),
        proc_path: Vec::new(),
    };
    if w.xattrs.is_some() {
        // Xattrs of symlinks and special files are read through /proc, as C composefs does.
        rustix::fs::statat(rustix::fs::CWD, "/proc/self/fd", AtFlags::empty())
            .map_err(|e| BuildError::io(Operation::ReadXattrs, "/proc/self/fd".into(), e))?;
    }

    let st = rustix::fs::fstat(root)
        .map_err(|e| BuildError::io(Operation::Stat, source.to_owned(), e))?;
    let raw = RawStat::new(&st);
    let root_xattrs = w.read_xattrs(Target::Fd(root.as_fd()))?;
    let root_stat = w.stat_of(&raw);
    let root_inode = w.tree.inode_mut(InodeId::ROOT);
    root_inode.stat = root_stat;
    root_inode.xattrs = root_xattrs;

    let root_dup = root
        .try_clone()
        .map_err(|e| BuildError::io(Operation::Open, source.to_owned(), e))?;
    let names = w.read_names(&root_dup)?;
    let mut stack = vec![Frame {
        fd: root_dup,
        inode: InodeId::ROOT,
        names,
        next: 0,
        entries: Vec::new(),
        subdirs: 0,
        path_len: 0,
    }];

    while let Some(top) = stack.last_mut() {
        if w.cancelled {
            break;
        }
        if top.next == top.names.len() {
            let done = stack.pop().expect("the stack is not empty");
            let inode = w.tree.inode_mut(done.inode);
            inode.stat.nlink = 2 + done.subdirs;
            inode.content = Content::Directory(done.entries);
            continue;
        }
        let (name, dtype) = std::mem::replace(
            &mut top.names[top.next],
            (Vec::new(), rustix::fs::FileType::Unknown),
        );
        top.next += 1;
        w.path.truncate(top.path_len);
        if top.path_len > 0 {
            w.path.push(b'/');
        }
        w.path.extend_from_slice(&name);

        let Some(loaded) = w.load(top.fd.as_fd(), name, dtype)? else {
            continue;
        };
        top.entries.push(loaded.entry);
        if let Some(fd) = loaded.dir {
            top.subdirs += 1;
            let inode = top.entries.last().expect("just pushed").inode;
            let names = w.read_names(&fd)?;
            stack.push(Frame {
                fd,
                inode,
                names,
                next: 0,
                entries: Vec::new(),
                subdirs: 0,
                path_len: w.path.len(),
            });
        }
    }

    let n_jobs = w.job_inodes.len();
    let walk = Walk {
        tree: w.tree,
        job_inodes: w.job_inodes,
        aliases: w.aliases,
        job_bytes: w.job_bytes,
    };
    Ok((walk, n_jobs))
}

impl Walker<'_> {
    /// The full path of the entry being loaded, for error messages.
    fn full_path(&self) -> PathBuf {
        if self.path.is_empty() {
            self.source.to_owned()
        } else {
            self.source.join(OsStr::from_bytes(&self.path))
        }
    }

    fn err(&self, op: Operation, e: Errno) -> BuildError {
        BuildError::io(op, self.full_path(), e)
    }

    /// The names in directory `fd`, sorted bytewise (as C `strcmp` sorts them).
    fn read_names(
        &mut self,
        fd: &OwnedFd,
    ) -> Result<Vec<(Vec<u8>, rustix::fs::FileType)>, BuildError> {
        let names =
            list_dir(fd, &mut self.dirent_buf).map_err(|e| self.err(Operation::ReadDir, e))?;
        self.progress.entries_walked(names.len() as u64);
        Ok(names)
    }

    /// The tree's attributes for a file with `raw` stat (size and nlink are filled in by the
    /// caller where they differ).
    fn stat_of(&self, raw: &RawStat) -> Stat {
        let is_device = matches!(
            raw.file_type(),
            Some(FileType::BlockDevice | FileType::CharDevice)
        );
        Stat {
            mode: raw.mode,
            uid: raw.uid,
            gid: raw.gid,
            // C `lcfs_node_new` sets 1 and the directory build never copies st_nlink.
            nlink: 1,
            // C keeps `st_rdev` in a `uint32_t`: the low 32 bits of glibc's 64-bit dev_t,
            // which for every real device number are the kernel's "new" 32-bit encoding.
            rdev: if is_device { raw.rdev as u32 } else { 0 },
            size: 0,
            mtime: if self.opts.use_epoch {
                Mtime::default()
            } else {
                Mtime {
                    sec: raw.state.mtime.0,
                    nsec: raw.state.mtime.1 as u32,
                }
            },
        }
    }

    fn read_xattrs(
        &mut self,
        target: Target<'_>,
    ) -> Result<Vec<sealroot_format::Xattr>, BuildError> {
        let Some(reader) = self.xattrs.as_mut() else {
            return Ok(Vec::new());
        };
        reader
            .read(&target)
            .map_err(|e| e.into_build_error(self.full_path()))
    }

    /// Loads entry `name` of directory `dir`; `None` if it is skipped.
    fn load(
        &mut self,
        dir: BorrowedFd<'_>,
        name: Vec<u8>,
        dtype: rustix::fs::FileType,
    ) -> Result<Option<Loaded>, BuildError> {
        use rustix::fs::FileType as D;
        // C skips devices by the type readdir reports; so do we, without a stat.
        let is_device = |t: D| matches!(t, D::BlockDevice | D::CharacterDevice);
        if self.opts.skip_devices && is_device(dtype) {
            return Ok(None);
        }

        let mut dir_fd = None;
        let mut file_fd = None;
        let st = if dtype == D::Directory {
            match rustix::fs::openat(dir, name.as_slice(), DIR_FLAGS, Mode::empty()) {
                Ok(fd) => {
                    let st = rustix::fs::fstat(&fd).map_err(|e| self.err(Operation::Stat, e))?;
                    dir_fd = Some(fd);
                    st
                }
                // Replaced by something else since the listing: stat what is there now.
                Err(Errno::NOTDIR | Errno::LOOP) => {
                    rustix::fs::statat(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| self.err(Operation::Stat, e))?
                }
                Err(e) => return Err(self.err(Operation::Open, e)),
            }
        } else if dtype == D::RegularFile && self.read_all_files {
            // It will be read anyway: open it now, relative to its directory, and stat the
            // fd, so reading it needs no second path lookup.
            match rustix::fs::openat(dir, name.as_slice(), FILE_FLAGS, Mode::empty()) {
                Ok(fd) => {
                    let st = rustix::fs::fstat(&fd).map_err(|e| self.err(Operation::Stat, e))?;
                    file_fd = Some(fd);
                    st
                }
                // Unreadable (which only matters if it is not empty), or no longer a file:
                // stat what is there.
                Err(_) => rustix::fs::statat(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| self.err(Operation::Stat, e))?,
            }
        } else {
            rustix::fs::statat(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.err(Operation::Stat, e))?
        };
        let raw = RawStat::new(&st);
        let Some(ftype) = raw.file_type() else {
            return Err(BuildError::UnsupportedFileType {
                path: self.full_path(),
                mode: raw.mode,
            });
        };
        if self.opts.skip_devices && matches!(ftype, FileType::BlockDevice | FileType::CharDevice) {
            // Only reached when readdir did not report the type (DT_UNKNOWN). C keeps the
            // device then, which looks like an oversight; we skip it as asked.
            return Ok(None);
        }

        let key = (raw.state.dev, raw.state.ino);
        let multiply_linked = ftype != FileType::Directory && raw.nlink > 1;
        if self.opts.hardlinks && multiply_linked {
            if let Some(&owner) = self.links.get(&key) {
                self.tree.inode_mut(owner).stat.nlink += 1;
                return Ok(Some(Loaded {
                    entry: DirEntry {
                        name,
                        inode: owner,
                        hardlink: true,
                    },
                    dir: None,
                }));
            }
        }

        let mut stat = self.stat_of(&raw);
        let content = match ftype {
            FileType::Directory => {
                if dir_fd.is_none() {
                    let fd = rustix::fs::openat(dir, name.as_slice(), DIR_FLAGS, Mode::empty())
                        .map_err(|e| self.err(Operation::Open, e))?;
                    let now = rustix::fs::fstat(&fd).map_err(|e| self.err(Operation::Stat, e))?;
                    let now = RawStat::new(&now).state;
                    if (now.dev, now.ino) != key {
                        return Err(BuildError::Changed {
                            path: self.full_path(),
                        });
                    }
                    dir_fd = Some(fd);
                }
                Content::Directory(Vec::new())
            }
            FileType::Regular => {
                stat.size = raw.state.size;
                Content::Regular(Default::default())
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name.as_slice(), Vec::new())
                    .map_err(|e| self.err(Operation::ReadLink, e))?
                    .into_bytes();
                if target.is_empty() {
                    return Err(BuildError::EmptySymlink {
                        path: self.full_path(),
                    });
                }
                // C replaces the symlink's size with its target's length.
                stat.size = target.len() as u64;
                Content::Symlink(target)
            }
            FileType::BlockDevice | FileType::CharDevice | FileType::Fifo | FileType::Socket => {
                Content::Special
            }
        };

        let job = (ftype == FileType::Regular && stat.size > 0)
            .then(|| self.plan_job(raw.state, multiply_linked))
            .flatten();
        let xattrs = if self.xattrs.is_none() || matches!(job, Some(Job::New { .. })) {
            Vec::new()
        } else if let Some(fd) = dir_fd.as_ref().or(file_fd.as_ref()) {
            self.read_xattrs(Target::Fd(fd.as_fd()))?
        } else {
            let mut p = std::mem::take(&mut self.proc_path);
            p.clear();
            write!(p, "/proc/self/fd/{}/", dir.as_raw_fd()).expect("writing to a Vec");
            p.extend_from_slice(&name);
            let r = self.read_xattrs(Target::Path(&p));
            self.proc_path = p;
            r?
        };

        let id = self.tree.push(Inode {
            stat,
            xattrs,
            content,
        });
        match job {
            Some(Job::New { inline }) => {
                let index = self.job_inodes.len();
                if multiply_linked && !self.opts.hardlinks {
                    self.shared_jobs.insert(key, index);
                }
                self.job_inodes.push(id);
                self.job_bytes += raw.state.size;
                let job = ContentJob {
                    index,
                    path: self.path.clone(),
                    state: raw.state,
                    inline,
                    read_xattrs: self.xattrs.is_some(),
                    fd: file_fd.filter(|_| raw.state.size <= OPEN_HANDOVER_MAX),
                };
                if !self.queue.push(job) {
                    self.cancelled = true;
                }
            }
            Some(Job::Alias(job)) => self.aliases.push((id, job)),
            None => {}
        }
        if self.opts.hardlinks && multiply_linked {
            self.links.insert(key, id);
        }
        Ok(Some(Loaded {
            entry: DirEntry {
                name,
                inode: id,
                hardlink: false,
            },
            dir: dir_fd,
        }))
    }

    /// How the content of a non-empty regular file in `state` will be read, if at all.
    fn plan_job(&self, state: FileState, multiply_linked: bool) -> Option<Job> {
        let opts = self.opts;
        let inline = !opts.no_inline && state.size <= INLINE_CONTENT_MAX;
        if !inline && !opts.compute_digest && !opts.by_digest {
            return None;
        }
        if multiply_linked && !opts.hardlinks {
            if let Some(&job) = self.shared_jobs.get(&(state.dev, state.ino)) {
                return Some(Job::Alias(job));
            }
        }
        Some(Job::New { inline })
    }
}

/// The names and `d_type`s in directory `fd`, without `.` and `..`, sorted bytewise.
fn list_dir(
    fd: &OwnedFd,
    buf: &mut [MaybeUninit<u8>],
) -> Result<Vec<(Vec<u8>, rustix::fs::FileType)>, Errno> {
    let mut names = Vec::new();
    let mut dir = RawDir::new(fd, buf);
    while let Some(entry) = dir.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push((name.to_vec(), entry.file_type()));
        }
    }
    names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(names)
}
