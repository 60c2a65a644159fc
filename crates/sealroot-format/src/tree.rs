//! The in-memory tree a composefs image encodes.
//!
//! A [`Tree`] is an arena of [`Inode`]s; inode 0 is the root directory. Directories hold
//! [`DirEntry`]s that point at inodes by [`InodeId`]. A name that is a hard link to an inode
//! owned by another entry has [`DirEntry::hardlink`] set: exactly one entry (the one without the
//! flag) owns each inode but the root, as in the C composefs library where the owner is the node
//! and the other names are `link_to` nodes. Where the owner stands decides the inode number the
//! image gives, so the flag is part of the tree, not derived.
//!
//! Names and xattr names are byte strings without NUL bytes; names never contain `/`.

use sealroot_verity::AnyDigest;

/// `S_IFMT`: the file type bits of a mode.
pub const S_IFMT: u32 = 0o170000;
/// `S_IFSOCK`.
pub const S_IFSOCK: u32 = 0o140000;
/// `S_IFLNK`.
pub const S_IFLNK: u32 = 0o120000;
/// `S_IFREG`.
pub const S_IFREG: u32 = 0o100000;
/// `S_IFBLK`.
pub const S_IFBLK: u32 = 0o060000;
/// `S_IFDIR`.
pub const S_IFDIR: u32 = 0o040000;
/// `S_IFCHR`.
pub const S_IFCHR: u32 = 0o020000;
/// `S_IFIFO`.
pub const S_IFIFO: u32 = 0o010000;

/// The type of a file, from the `S_IFMT` bits of its mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A block device.
    BlockDevice,
    /// A character device (rdev 0:0 is an overlayfs whiteout).
    CharDevice,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
}

impl FileType {
    /// The type encoded in `mode`, or `None` for a type composefs does not know.
    pub const fn from_mode(mode: u32) -> Option<Self> {
        match mode & S_IFMT {
            S_IFREG => Some(FileType::Regular),
            S_IFDIR => Some(FileType::Directory),
            S_IFLNK => Some(FileType::Symlink),
            S_IFBLK => Some(FileType::BlockDevice),
            S_IFCHR => Some(FileType::CharDevice),
            S_IFIFO => Some(FileType::Fifo),
            S_IFSOCK => Some(FileType::Socket),
            _ => None,
        }
    }

    /// The `S_IFMT` bits of this type.
    pub const fn mode_bits(self) -> u32 {
        match self {
            FileType::Regular => S_IFREG,
            FileType::Directory => S_IFDIR,
            FileType::Symlink => S_IFLNK,
            FileType::BlockDevice => S_IFBLK,
            FileType::CharDevice => S_IFCHR,
            FileType::Fifo => S_IFIFO,
            FileType::Socket => S_IFSOCK,
        }
    }
}

/// An index into [`Tree::inodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InodeId(pub u32);

impl InodeId {
    /// The root directory, always inode 0.
    pub const ROOT: InodeId = InodeId(0);

    /// The index as `usize`.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A modification time: seconds since the epoch and nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mtime {
    /// Seconds since 1970-01-01 UTC (may be negative).
    pub sec: i64,
    /// Nanoseconds, below 1e9.
    pub nsec: u32,
}

/// An extended attribute: the full name (with its namespace prefix) and the value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Xattr {
    /// The name, such as `user.foo` or `security.selinux`; no NUL bytes.
    pub name: Vec<u8>,
    /// The value, any bytes.
    pub value: Vec<u8>,
}

/// The attributes `stat(2)` shows for an inode, as composefs records them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// Type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count. The writer recomputes it for directories (2 + subdirectories).
    pub nlink: u32,
    /// Device number of a block or character device, in the kernel's 32-bit "new" encoding.
    pub rdev: u32,
    /// Size in bytes of a regular file (for other types the writer derives the size).
    pub size: u64,
    /// Modification time.
    pub mtime: Mtime,
}

impl Stat {
    /// The file type, if the mode holds a known one.
    pub fn file_type(&self) -> Option<FileType> {
        FileType::from_mode(self.mode)
    }
}

/// A name in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name: 1 to 255 bytes, no `/`, no NUL, not `.` or `..`.
    pub name: Vec<u8>,
    /// The inode it names.
    pub inode: InodeId,
    /// Whether this name is a hard link to an inode owned by another entry.
    pub hardlink: bool,
}

/// What a regular file holds: small files inline, others as a reference to a backing object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegularFile {
    /// The whole content, stored in the image (mkcomposefs inlines small files).
    pub inline: Option<Vec<u8>>,
    /// The backing file's path relative to the object store (`ab/cdef…`), the "payload".
    pub payload: Option<Vec<u8>>,
    /// The fs-verity digest of the content, recorded for overlayfs to check: sha256 as C
    /// composefs records it, or sha512 (in a composefs-rs sha512 repository).
    pub digest: Option<AnyDigest>,
}

/// The type-specific part of an inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// A directory's entries, sorted by name (byte order), names unique.
    Directory(Vec<DirEntry>),
    /// A regular file.
    Regular(RegularFile),
    /// A symbolic link's target.
    Symlink(Vec<u8>),
    /// A device, fifo or socket: everything is in the [`Stat`].
    Special,
}

/// One inode of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inode {
    /// Its attributes.
    pub stat: Stat,
    /// Its extended attributes, in any order; names unique.
    pub xattrs: Vec<Xattr>,
    /// Its type-specific content.
    pub content: Content,
}

impl Inode {
    /// A new inode with `stat` and `content`, and no xattrs.
    pub fn new(stat: Stat, content: Content) -> Self {
        Inode {
            stat,
            xattrs: Vec::new(),
            content,
        }
    }

    /// The value of xattr `name`, if set.
    pub fn xattr(&self, name: &[u8]) -> Option<&[u8]> {
        self.xattrs
            .iter()
            .find(|x| x.name == name)
            .map(|x| x.value.as_slice())
    }

    /// Sets xattr `name` to `value`, replacing an existing value.
    pub fn set_xattr(&mut self, name: &[u8], value: &[u8]) {
        match self.xattrs.iter_mut().find(|x| x.name == name) {
            Some(x) => x.value = value.to_vec(),
            None => self.xattrs.push(Xattr {
                name: name.to_vec(),
                value: value.to_vec(),
            }),
        }
    }

    /// The entries, if this is a directory.
    pub fn entries(&self) -> Option<&[DirEntry]> {
        match &self.content {
            Content::Directory(e) => Some(e),
            _ => None,
        }
    }
}

/// A whole tree: an arena of inodes, the root at index 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    /// All inodes; [`InodeId`] indexes this.
    pub inodes: Vec<Inode>,
}

impl Tree {
    /// A tree with only a root directory with `stat` (its type bits are forced to directory).
    pub fn new(mut root: Stat) -> Self {
        root.mode = (root.mode & !S_IFMT) | S_IFDIR;
        Tree {
            inodes: vec![Inode::new(root, Content::Directory(Vec::new()))],
        }
    }

    /// The inode `id`. Panics on an id not from this tree.
    pub fn inode(&self, id: InodeId) -> &Inode {
        &self.inodes[id.index()]
    }

    /// The inode `id`, mutably.
    pub fn inode_mut(&mut self, id: InodeId) -> &mut Inode {
        &mut self.inodes[id.index()]
    }

    /// The root directory.
    pub fn root(&self) -> &Inode {
        &self.inodes[0]
    }

    /// Adds an inode to the arena (not yet linked into any directory).
    pub fn push(&mut self, inode: Inode) -> InodeId {
        let id = InodeId(u32::try_from(self.inodes.len()).expect("more than 2^32 inodes"));
        self.inodes.push(inode);
        id
    }

    /// Looks `name` up in directory `dir`.
    pub fn lookup(&self, dir: InodeId, name: &[u8]) -> Option<&DirEntry> {
        let entries = self.inode(dir).entries()?;
        entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .map(|i| &entries[i])
    }

    /// Resolves an absolute or relative `/`-separated path from the root, following no
    /// symlinks. `.`/`..` components are not understood.
    pub fn resolve(&self, path: &[u8]) -> Option<InodeId> {
        let mut cur = InodeId::ROOT;
        for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            cur = self.lookup(cur, comp)?.inode;
        }
        Some(cur)
    }

    /// Visits every name in the tree depth-first in name order, calling `f(path, entry)` with
    /// the full path (starting with `/`), skipping nothing (hard links included).
    pub fn walk(&self, mut f: impl FnMut(&[u8], &DirEntry)) {
        fn rec(tree: &Tree, dir: InodeId, path: &mut Vec<u8>, f: &mut dyn FnMut(&[u8], &DirEntry)) {
            let Some(entries) = tree.inode(dir).entries() else {
                return;
            };
            for e in entries {
                let len = path.len();
                path.push(b'/');
                path.extend_from_slice(&e.name);
                f(path, e);
                if !e.hardlink {
                    rec(tree, e.inode, path, f);
                }
                path.truncate(len);
            }
        }
        let mut path = Vec::new();
        rec(self, InodeId::ROOT, &mut path, &mut f);
    }
}
