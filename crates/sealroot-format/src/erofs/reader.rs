//! The strict reader of untrusted composefs images.
//!
//! [`read`] checks an image as it walks it: every offset is bounds-checked, every structure
//! must be one composefs writes (4 KiB blocks, no compression, flat or chunk-based layouts,
//! sorted directories with `.` and `..`, no directory reachable twice), and anything else is
//! refused with a [`ReadError`] that says where. It never panics, walks directories with a
//! stack of its own rather than by recursion (so an image's depth cannot overflow the
//! caller's thread stack), and refuses inodes that share data blocks, so file and directory
//! data in the tree add up to at most the image's size. Shared xattrs are the exception the
//! format intends: each inode that refers to one gets its own copy in the tree.
//!
//! It refuses what the kernel refuses or would read differently from the tree it returns
//! (checked against `fsck.erofs` and the kernel by `tests/reader_oracle.rs`): a superblock
//! with a checksum or newer compatible features or directory block sizes; inode sizes of
//! 2^63 or more (the kernel's "negative i_size"); an xattr area of a bare header; unknown
//! chunk formats; a compact inode's `i_mtime` or an extended inode's `i_nb` set (newer
//! kernels read them as mtime and block address bits); mtime nanoseconds of a second or more;
//! an xattr name twice, or spelled without its prefix index (the kernel's `getxattr` would
//! find another value, or none); an xattr-name filter that does not match the names (the
//! kernel trusts it to say a name is absent); a directory whose link count is not 2 plus its
//! subdirectories, or whose size is not its entries' (padded inline tail, partial block).
//! Whiteouts, which C's reader skips, get the same checks.
//!
//! The tree it returns undoes the writer's overlayfs rewrite, as C `composefs-info` does:
//! `trusted.overlay.metacopy` becomes the file digest (sha256 as C writes it, or sha512 as
//! composefs-rs writes it in a sha512 repository; see [`metacopy_digest`](super::metacopy_digest)),
//! `trusted.overlay.redirect` the payload,
//! escaped whiteouts turn back into character devices 0:0, `trusted.overlay.overlay.*` is
//! unescaped, other `trusted.overlay.*` and the `user.overlay.whiteout(s)` marks are dropped,
//! and the real whiteouts (`00`…`ff` in the root) are skipped. As in C, the first name of a
//! hard-linked inode met depth first owns it, and the others are hard links.
//!
//! Writing that tree again with the image's format version gives the same bytes, for every
//! image the writer makes of a tree whose hard-linked inodes are owned by their first name.
//! Where the owner was a later name, the inode moves to the first one's place in the image
//! (and a hard-linked whiteout marks that name's directory), exactly as C `mkcomposefs` does
//! with what `composefs-info dump` prints; the image written then is stable.

use super::layout::*;
use crate::dumpfile::limits;
use crate::tree::{
    Content, DirEntry, FileType, Inode, InodeId, Mtime, RegularFile, Stat, Tree, Xattr, S_IFCHR,
    S_IFMT,
};

/// Why an image could not be read. Offsets are byte offsets in the image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Shorter than a composefs header and superblock.
    #[error("image is {0} bytes, too short for a composefs image")]
    TooShort(usize),
    /// The composefs header magic is wrong.
    #[error("not a composefs image (bad header magic {0:#010x})")]
    BadMagic(u32),
    /// The EROFS superblock magic is wrong.
    #[error("not an EROFS image (bad superblock magic {0:#010x})")]
    BadErofsMagic(u32),
    /// A header or format version this reader does not know.
    #[error("unsupported composefs {what} {value}")]
    Unsupported {
        /// Which version or feature.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// A structure composefs never writes, or one out of bounds.
    #[error("corrupt image at offset {offset}: {what}")]
    Corrupt {
        /// Where.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The root is not a directory.
    #[error("the root inode is not a directory")]
    RootNotDirectory,
}

fn corrupt(offset: u64, what: impl Into<String>) -> ReadError {
    ReadError::Corrupt {
        offset,
        what: what.into(),
    }
}

/// `LCFS_INLINE_CONTENT_MAX`.
const INLINE_CONTENT_MAX: u64 = limits::INLINE_CONTENT_MAX as u64;
/// Nanoseconds are below this.
const NSEC_PER_SEC: u32 = 1_000_000_000;
/// `PATH_MAX`.
const PATH_MAX: u64 = limits::PATH_MAX as u64;
/// What an xattr costs against [`Reader::xattr_left`] beyond its name and value: the
/// `Xattr` that holds them (three words each for the two vectors), which an entry of four
/// bytes in the image (a prefix index with no suffix and no value) costs as much as any.
/// The name's prefix is charged too, as the bytes of the name it expands to.
const XATTR_ENTRY_CHARGE: u64 = std::mem::size_of::<Xattr>() as u64;

/// The parsed superblock fields the reader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// The composefs format version from the composefs header.
    pub composefs_version: u32,
    /// The composefs header flags (`COMPOSEFS_FLAG_HAS_ACL`).
    pub flags: u32,
    /// The EROFS compatible features: [`FEATURE_COMPAT_MTIME`], and
    /// [`FEATURE_COMPAT_XATTR_FILTER`] when inodes carry an xattr-name filter the kernel
    /// trusts.
    pub feature_compat: u32,
    /// The nid of the root directory.
    pub root_nid: u64,
    /// Inode count.
    pub inos: u64,
    /// The mtime of compact inodes.
    pub build_time: Mtime,
    /// Block count.
    pub blocks: u32,
    /// First block of the inode area.
    pub meta_blkaddr: u32,
    /// First block of the shared-xattr area.
    pub xattr_blkaddr: u32,
}

fn u16_at(b: &[u8], off: u64) -> Option<u16> {
    let o = usize::try_from(off).ok()?;
    Some(u16::from_le_bytes(
        b.get(o..o.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u32_at(b: &[u8], off: u64) -> Option<u32> {
    let o = usize::try_from(off).ok()?;
    Some(u32::from_le_bytes(
        b.get(o..o.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u64_at(b: &[u8], off: u64) -> Option<u64> {
    let o = usize::try_from(off).ok()?;
    Some(u64::from_le_bytes(
        b.get(o..o.checked_add(8)?)?.try_into().ok()?,
    ))
}
fn bytes_at(b: &[u8], off: u64, len: u64) -> Option<&[u8]> {
    let o = usize::try_from(off).ok()?;
    let l = usize::try_from(len).ok()?;
    b.get(o..o.checked_add(l)?)
}

/// Reads and checks the composefs header and the EROFS superblock.
pub fn read_superblock(image: &[u8]) -> Result<Superblock, ReadError> {
    if (image.len() as u64) < SUPER_OFFSET + SUPER_SIZE {
        return Err(ReadError::TooShort(image.len()));
    }
    let short = || ReadError::TooShort(image.len());
    let magic = u32_at(image, 0).ok_or_else(short)?;
    if magic != COMPOSEFS_MAGIC {
        return Err(ReadError::BadMagic(magic));
    }
    let header_version = u32_at(image, 4).ok_or_else(short)?;
    if header_version != COMPOSEFS_HEADER_VERSION {
        return Err(ReadError::Unsupported {
            what: "header version",
            value: header_version.into(),
        });
    }
    let flags = u32_at(image, 8).ok_or_else(short)?;
    if flags & !COMPOSEFS_FLAG_HAS_ACL != 0 {
        return Err(ReadError::Unsupported {
            what: "header flags",
            value: flags.into(),
        });
    }
    let composefs_version = u32_at(image, 12).ok_or_else(short)?;
    if composefs_version > COMPOSEFS_VERSION_MAX {
        return Err(ReadError::Unsupported {
            what: "format version",
            value: composefs_version.into(),
        });
    }
    let sb = SUPER_OFFSET;
    let erofs_magic = u32_at(image, sb).ok_or_else(short)?;
    if erofs_magic != EROFS_MAGIC {
        return Err(ReadError::BadErofsMagic(erofs_magic));
    }
    let blkszbits = image[(sb + 12) as usize];
    if u32::from(blkszbits) != BLOCK_SIZE_BITS {
        return Err(ReadError::Unsupported {
            what: "block size bits",
            value: blkszbits.into(),
        });
    }
    let feature_compat = u32_at(image, sb + 8).ok_or_else(short)?;
    if feature_compat & !(FEATURE_COMPAT_MTIME | FEATURE_COMPAT_XATTR_FILTER) != 0 {
        // EROFS_FEATURE_COMPAT_SB_CHKSUM makes the kernel check a crc32c composefs never
        // writes; the others are newer layouts (xattrs in a metabox, plain prefixes, ...).
        return Err(ReadError::Unsupported {
            what: "EROFS compatible feature (superblock checksum or newer)",
            value: feature_compat.into(),
        });
    }
    let dirblkbits = image[(sb + SUPER_DIRBLKBITS_OFFSET) as usize];
    if dirblkbits != 0 {
        // The kernel refuses to mount with directory blocks of another size.
        return Err(ReadError::Unsupported {
            what: "directory block size bits",
            value: dirblkbits.into(),
        });
    }
    let extslots = image[(sb + 13) as usize];
    let incompat = u32_at(image, sb + 80).ok_or_else(short)?;
    let extra_devices = u16_at(image, sb + 86).ok_or_else(short)?;
    if extslots != 0 || incompat != 0 || extra_devices != 0 {
        return Err(ReadError::Unsupported {
            what: "EROFS feature (compression, devices or extended superblock)",
            value: u64::from(incompat),
        });
    }
    let s = Superblock {
        composefs_version,
        flags,
        feature_compat,
        root_nid: u64::from(u16_at(image, sb + 14).ok_or_else(short)?),
        inos: u64_at(image, sb + 16).ok_or_else(short)?,
        build_time: Mtime {
            sec: u64_at(image, sb + 24).ok_or_else(short)? as i64,
            nsec: u32_at(image, sb + 32).ok_or_else(short)?,
        },
        blocks: u32_at(image, sb + 36).ok_or_else(short)?,
        meta_blkaddr: u32_at(image, sb + 40).ok_or_else(short)?,
        xattr_blkaddr: u32_at(image, sb + 44).ok_or_else(short)?,
    };
    let len = image.len() as u64;
    if u64::from(s.meta_blkaddr) * BLOCK_SIZE >= len
        || u64::from(s.xattr_blkaddr) * BLOCK_SIZE > len
    {
        return Err(corrupt(
            sb + 40,
            "metadata or xattr area beyond the end of the image",
        ));
    }
    Ok(s)
}

/// One inode as stored, before conversion into the tree.
struct RawInode<'a> {
    offset: u64,
    nid: u64,
    /// Its attributes as stored (the tree's may differ: a whiteout's, a symlink's size).
    stat: Stat,
    layout: u16,
    raw_blkaddr: u32,
    /// The inline xattr area (header included).
    xattrs: &'a [u8],
    /// The inline tail data.
    tail: &'a [u8],
}

impl RawInode<'_> {
    /// A [`ReadError::Corrupt`] at this inode, naming it.
    fn bad(&self, what: impl std::fmt::Display) -> ReadError {
        corrupt(self.offset, format!("inode {}: {what}", self.nid))
    }
}

struct Reader<'a> {
    image: &'a [u8],
    sb: Superblock,
    tree: Tree,
    /// nid -> tree inode, for inodes already read (hard links, and loop detection).
    seen: std::collections::HashMap<u64, InodeId>,
    /// How many more bytes of file and directory data may be read. Every inode's data has
    /// bytes of its own in an image composefs writes, so all of it fits in the image; without
    /// this, inodes pointing at the same blocks would make a small image read as a huge tree.
    data_left: u64,
    /// How many more bytes of xattrs may be decoded: each costs its name, its value and
    /// [`XATTR_ENTRY_CHARGE`]. Shared xattrs (and, in a hostile image, overlapping inodes) let
    /// a few bytes stand for many copies; an OS tree decodes a fraction of its image size, so
    /// 16 times the image plus 64 MiB is generous for every image composefs writes and bounds
    /// what a hostile one costs. (An inline entry takes at least 4 bytes of the image, whose
    /// 64 bytes of budget cover its charge with any prefix but the two ACL ones.)
    xattr_left: std::cell::Cell<u64>,
}

/// A directory whose entries are being read: where they are and how far the walk has got.
/// Entries are parsed one at a time from the image, so a deep chain of directories costs
/// one of these per level, not a copy of each level's blocks.
struct OpenDir<'a> {
    id: InodeId,
    nid: u64,
    parent_nid: u64,
    /// The directory inode's offset, for errors.
    offset: u64,
    depth: usize,
    /// The whole blocks of dirents, then the inline tail.
    blocks: &'a [u8],
    tail: &'a [u8],
    /// The chunk whose entries are being read (a block, or the tail after the last block),
    /// its entry count, the next entry in it, and the index of the chunk after it.
    current: &'a [u8],
    count: usize,
    next: usize,
    next_chunk: usize,
    /// The previous name, to check the order.
    prev: Option<&'a [u8]>,
    has_dot: bool,
    has_dotdot: bool,
    entries: Vec<DirEntry>,
}

impl<'a> OpenDir<'a> {
    /// Chunk `i`: block `i`, or the tail after the last block.
    fn chunk_bytes(&self, i: usize) -> Option<&'a [u8]> {
        let block = BLOCK_SIZE as usize;
        let n_blocks = self.blocks.len().div_ceil(block);
        if i < n_blocks {
            let start = i * block;
            self.blocks
                .get(start..(start + block).min(self.blocks.len()))
        } else if i == n_blocks {
            Some(self.tail)
        } else {
            None
        }
    }

    /// The next dirent (name, nid, file type), or `None` after the last.
    fn next_entry(&mut self) -> Result<Option<Dirent<'a>>, ReadError> {
        while self.next == self.count {
            let Some(bytes) = self.chunk_bytes(self.next_chunk) else {
                return Ok(None);
            };
            self.next_chunk += 1;
            self.current = bytes;
            self.count = dirent_count(bytes).map_err(|what| self.bad(&what))?;
            self.next = 0;
        }
        let entry = dirent(self.current, self.next, self.count).map_err(|what| self.bad(&what))?;
        self.next += 1;
        let in_tail = self.next_chunk > self.blocks.len().div_ceil(BLOCK_SIZE as usize);
        if in_tail && self.next == self.count && self.current.last() == Some(&0) {
            // An inline tail is exactly as long as its entries: the directory's size says
            // where the last name ends, and composefs never pads it.
            return Err(self.bad("inline tail padded after the last name"));
        }
        if self.prev.is_some_and(|prev| prev >= entry.0) {
            return Err(corrupt(
                self.offset,
                "directory entries not sorted or duplicated",
            ));
        }
        self.prev = Some(entry.0);
        Ok(Some(entry))
    }

    fn bad(&self, what: &str) -> ReadError {
        let chunk = self.next_chunk.saturating_sub(1);
        corrupt(self.offset, format!("directory block {chunk}: {what}"))
    }
}

/// Reads a composefs image back into the tree it was written from.
pub fn read(image: &[u8]) -> Result<Tree, ReadError> {
    read_with_superblock(image).map(|(tree, _)| tree)
}

/// Like [`read`], also returning the superblock (for the format version and flags).
pub fn read_with_superblock(image: &[u8]) -> Result<(Tree, Superblock), ReadError> {
    let xattr_budget = (image.len() as u64).saturating_mul(16) + (64 << 20);
    read_with_budget(image, xattr_budget)
}

/// [`read_with_superblock`] with `xattr_budget` for [`Reader::xattr_left`].
fn read_with_budget(image: &[u8], xattr_budget: u64) -> Result<(Tree, Superblock), ReadError> {
    let sb = read_superblock(image)?;
    let mut r = Reader {
        image,
        sb,
        tree: Tree { inodes: Vec::new() },
        seen: std::collections::HashMap::new(),
        data_left: image.len() as u64,
        xattr_left: std::cell::Cell::new(xattr_budget),
    };
    let root = r.inode(sb.root_nid)?;
    if root.stat.mode & S_IFMT != crate::tree::S_IFDIR {
        return Err(ReadError::RootNotDirectory);
    }
    r.seen.insert(sb.root_nid, InodeId::ROOT);
    r.tree
        .inodes
        .push(Inode::new(Stat::default(), Content::Directory(Vec::new())));
    if let Some(dir) = r.fill(InodeId::ROOT, sb.root_nid, &root, sb.root_nid, 0)? {
        r.walk(dir)?;
    }
    Ok((r.tree, sb))
}

impl<'a> Reader<'a> {
    /// Reads and checks inode `nid`: its fields, where its xattrs and inline tail are, and
    /// everything the kernel checks when it loads an inode (see [`Reader::inode_fields`]).
    fn inode(&self, nid: u64) -> Result<RawInode<'a>, ReadError> {
        let img = self.image;
        let offset = nid
            .checked_mul(SLOT_SIZE)
            .and_then(|o| o.checked_add(u64::from(self.sb.meta_blkaddr) * BLOCK_SIZE))
            .ok_or_else(|| corrupt(0, format!("nid {nid} out of range")))?;
        let oob = || corrupt(offset, format!("inode {nid} beyond the end of the image"));
        let fields = self.inode_fields(nid, offset)?;
        let ftype = FileType::from_mode(fields.mode).ok_or_else(|| {
            corrupt(
                offset,
                format!("inode {nid}: invalid mode {:o}", fields.mode),
            )
        })?;
        let xattr_size = match fields.icount {
            0 => 0,
            // The kernel refuses an xattr area of a bare header ("not supported yet").
            1 => {
                return Err(corrupt(
                    offset,
                    format!("inode {nid}: xattr area of a header and no entries"),
                ))
            }
            n => XATTR_HEADER_SIZE + (n - 1) * 4,
        };
        let xattrs = bytes_at(img, offset + fields.isize, xattr_size).ok_or_else(oob)?;
        let tail_start = offset + fields.isize + xattr_size;
        let tail_len = inline_tail_len(&fields, ftype)
            .map_err(|what| corrupt(offset, format!("inode {nid}: {what}")))?;
        let tail = bytes_at(img, tail_start, tail_len).ok_or_else(oob)?;
        if fields.layout == LAYOUT_FLAT_INLINE
            && tail_len > 0
            && tail_start / BLOCK_SIZE != (tail_start + tail_len - 1) / BLOCK_SIZE
        {
            return Err(corrupt(
                tail_start,
                format!("inode {nid}: inline data crosses a block boundary"),
            ));
        }
        let rdev = if matches!(ftype, FileType::CharDevice | FileType::BlockDevice) {
            fields.raw_blkaddr
        } else {
            0
        };
        Ok(RawInode {
            offset,
            nid,
            stat: Stat {
                mode: fields.mode,
                uid: fields.uid,
                gid: fields.gid,
                nlink: fields.nlink,
                rdev,
                size: fields.size,
                mtime: fields.mtime,
            },
            layout: fields.layout,
            raw_blkaddr: fields.raw_blkaddr,
            xattrs,
            tail,
        })
    }

    /// The fields of the compact or extended inode at `offset`, refusing what the kernel
    /// refuses or would read differently: unknown format bits, a size of 2^63 or more (a
    /// "negative i_size"), a compact inode's `i_mtime` (newer kernels add it to the epoch,
    /// older ones ignore it, and composefs writes 0), an extended inode's `i_nb` (the high
    /// bits of the block address on newer kernels).
    fn inode_fields(&self, nid: u64, offset: u64) -> Result<InodeFields, ReadError> {
        let img = self.image;
        let oob = || corrupt(offset, format!("inode {nid} beyond the end of the image"));
        let bad = |what: String| corrupt(offset, format!("inode {nid}: {what}"));
        let format = u16_at(img, offset).ok_or_else(oob)?;
        if format >> 4 != 0 {
            return Err(bad(format!("unknown inode format bits {format:#x}")));
        }
        let icount = u64::from(u16_at(img, offset + 2).ok_or_else(oob)?);
        let mode = u32::from(u16_at(img, offset + 4).ok_or_else(oob)?);
        let layout = (format >> I_DATALAYOUT_BIT) & 0x7;
        let fields = if format & (1 << I_VERSION_BIT) != 0 {
            if u16_at(img, offset + 6).ok_or_else(oob)? != 0 {
                return Err(bad(
                    "extended inode with i_nb set (block address high bits)".into(),
                ));
            }
            InodeFields {
                isize: INODE_EXTENDED_SIZE,
                icount,
                mode,
                layout,
                size: u64_at(img, offset + 8).ok_or_else(oob)?,
                raw_blkaddr: u32_at(img, offset + 16).ok_or_else(oob)?,
                uid: u32_at(img, offset + 24).ok_or_else(oob)?,
                gid: u32_at(img, offset + 28).ok_or_else(oob)?,
                mtime: Mtime {
                    sec: u64_at(img, offset + 32).ok_or_else(oob)? as i64,
                    nsec: u32_at(img, offset + 40).ok_or_else(oob)?,
                },
                nlink: u32_at(img, offset + 44).ok_or_else(oob)?,
            }
        } else {
            if u32_at(img, offset + 12).ok_or_else(oob)? != 0 {
                return Err(bad(
                    "compact inode with i_mtime set (kernels disagree on it)".into(),
                ));
            }
            InodeFields {
                isize: INODE_COMPACT_SIZE,
                icount,
                mode,
                layout,
                nlink: u32::from(u16_at(img, offset + 6).ok_or_else(oob)?),
                size: u64::from(u32_at(img, offset + 8).ok_or_else(oob)?),
                raw_blkaddr: u32_at(img, offset + 16).ok_or_else(oob)?,
                uid: u32::from(u16_at(img, offset + 24).ok_or_else(oob)?),
                gid: u32::from(u16_at(img, offset + 26).ok_or_else(oob)?),
                mtime: self.sb.build_time,
            }
        };
        if fields.mtime.nsec >= NSEC_PER_SEC {
            return Err(bad(format!(
                "mtime nanoseconds {} are a second or more",
                fields.mtime.nsec
            )));
        }
        if fields.size > I_SIZE_MAX {
            return Err(bad(format!(
                "size {} is 2^63 or more (the kernel refuses a negative i_size)",
                fields.size
            )));
        }
        Ok(fields)
    }

    /// A flat inode's data: the full blocks at `raw_blkaddr`, then the inline tail.
    fn flat_data(&mut self, ino: &RawInode<'a>) -> Result<(&'a [u8], &'a [u8]), ReadError> {
        // The tail is `size % BLOCK_SIZE` bytes or none: never more than the size.
        let block_bytes = ino.stat.size - ino.tail.len() as u64;
        let blocks = if block_bytes > 0 {
            let start = u64::from(ino.raw_blkaddr) * BLOCK_SIZE;
            bytes_at(self.image, start, block_bytes)
                .ok_or_else(|| ino.bad("data blocks beyond the end of the image"))?
        } else {
            &[]
        };
        self.data_left = self
            .data_left
            .checked_sub(ino.stat.size)
            .ok_or_else(|| ino.bad("inodes share data blocks (more data than the image holds)"))?;
        Ok((blocks, ino.tail))
    }

    /// The whole of a flat inode's data, copied (at most [`PATH_MAX`] or
    /// [`INLINE_CONTENT_MAX`] bytes: callers check the size first).
    fn flat_bytes(&mut self, ino: &RawInode<'a>) -> Result<Vec<u8>, ReadError> {
        let (blocks, tail) = self.flat_data(ino)?;
        let mut out = Vec::with_capacity(blocks.len() + tail.len());
        out.extend_from_slice(blocks);
        out.extend_from_slice(tail);
        Ok(out)
    }

    /// Fills tree inode `id` from raw inode `ino` (nid `nid`, in directory `parent_nid`). A
    /// directory gets its attributes now and its entries when [`Reader::walk`] has read
    /// them: it is returned open.
    fn fill(
        &mut self,
        id: InodeId,
        nid: u64,
        ino: &RawInode<'a>,
        parent_nid: u64,
        depth: usize,
    ) -> Result<Option<OpenDir<'a>>, ReadError> {
        let ftype = FileType::from_mode(ino.stat.mode).ok_or_else(|| ino.bad("invalid mode"))?;
        let mut stat = ino.stat.clone();
        let mut file = RegularFile::default();
        let mut xattrs = Vec::new();
        let mut whiteout = false;
        self.read_xattrs(ino, ftype, &mut xattrs, &mut file, &mut whiteout)?;

        let mut open = None;
        let content = match ftype {
            FileType::Directory => {
                if ino.layout == LAYOUT_CHUNK_BASED {
                    return Err(ino.bad("chunk-based directory"));
                }
                if ino.layout == LAYOUT_FLAT_PLAIN && ino.stat.size % BLOCK_SIZE != 0 {
                    return Err(ino.bad("directory without an inline tail not in whole blocks"));
                }
                if depth > limits::DEPTH_MAX {
                    return Err(ino.bad(format_args!(
                        "directories nested too deeply (over {})",
                        limits::DEPTH_MAX
                    )));
                }
                let (blocks, tail) = self.flat_data(ino)?;
                open = Some(OpenDir {
                    id,
                    nid,
                    parent_nid,
                    offset: ino.offset,
                    depth,
                    blocks,
                    tail,
                    current: &[],
                    count: 0,
                    next: 0,
                    next_chunk: 0,
                    prev: None,
                    has_dot: false,
                    has_dotdot: false,
                    entries: Vec::new(),
                });
                Content::Directory(Vec::new())
            }
            FileType::Symlink => {
                if ino.layout == LAYOUT_CHUNK_BASED {
                    return Err(ino.bad("chunk-based symlink"));
                }
                if ino.stat.size == 0 || ino.stat.size >= PATH_MAX {
                    return Err(ino.bad("symlink target empty or too long"));
                }
                let target = self.flat_bytes(ino)?;
                if target.contains(&0) {
                    return Err(ino.bad("symlink target contains a NUL byte"));
                }
                Content::Symlink(target)
            }
            FileType::Regular => {
                if whiteout {
                    stat.mode = (stat.mode & !S_IFMT) | S_IFCHR;
                    stat.rdev = 0;
                    stat.size = 0;
                    Content::Special
                } else {
                    if ino.layout != LAYOUT_CHUNK_BASED && ino.stat.size > 0 {
                        if ino.stat.size > INLINE_CONTENT_MAX {
                            return Err(ino.bad("inline file content over 5000 bytes"));
                        }
                        file.inline = Some(self.flat_bytes(ino)?);
                        file.payload = None;
                        file.digest = None;
                    }
                    Content::Regular(file)
                }
            }
            _ => {
                check_special_data(ino)?;
                Content::Special
            }
        };
        let inode = &mut self.tree.inodes[id.index()];
        inode.stat = stat;
        inode.xattrs = xattrs;
        inode.content = content;
        Ok(open)
    }

    /// Reads inode `ino`'s xattrs (of type `ftype`) into `out`; the overlayfs ones composefs
    /// writes go into `file` and `whiteout` instead (see [`tree_xattr_name`]).
    fn read_xattrs(
        &self,
        ino: &RawInode<'a>,
        ftype: FileType,
        out: &mut Vec<Xattr>,
        file: &mut RegularFile,
        whiteout: &mut bool,
    ) -> Result<(), ReadError> {
        if ino.xattrs.is_empty() {
            return Ok(());
        }
        let area = ino.xattrs;
        let (off, nid) = (ino.offset, ino.nid);
        let bad = |what: &str| corrupt(off, format!("inode {nid}: xattrs: {what}"));
        let (entries, inline_count) = self.xattr_entries(area).map_err(bad)?;
        check_xattr_names(&entries, inline_count).map_err(bad)?;
        self.check_name_filter(area, &entries)
            .map_err(|what| bad(&what))?;
        for (index, suffix, value) in entries {
            let name = self.xattr_name(index, suffix, value).map_err(bad)?;
            if let Some(name) = tree_xattr_name(name, value, ftype, file, whiteout) {
                out.push(Xattr {
                    name,
                    value: value.to_vec(),
                });
            }
        }
        Ok(())
    }

    /// The entries of xattr area `area` (header included): inline entries first, then shared
    /// ones, as C reads them; and how many are inline.
    fn xattr_entries(&self, area: &'a [u8]) -> Result<(Vec<RawXattr<'a>>, usize), &'static str> {
        let shared_count = u64::from(*area.get(4).ok_or("short header")?);
        let mut pos = XATTR_HEADER_SIZE + shared_count * 4;
        if pos > area.len() as u64 {
            return Err("shared count beyond the xattr area");
        }
        let mut entries = Vec::new();
        // C stops when fewer than five bytes are left, losing a last entry of four (empty
        // suffix, empty value, such as an empty `system.posix_acl_access`); the kernel reads
        // it, and so does this.
        while pos + XATTR_ENTRY_SIZE <= area.len() as u64 {
            let (entry, len) = parse_entry(area, pos).ok_or("entry beyond the xattr area")?;
            entries.push(entry);
            pos += len;
        }
        let shared_base = u64::from(self.sb.xattr_blkaddr) * BLOCK_SIZE;
        let inline_count = entries.len();
        for i in 0..shared_count {
            let idx = u32_at(area, XATTR_HEADER_SIZE + i * 4).ok_or("short")?;
            let at = shared_base + u64::from(idx) * 4;
            let (entry, _) =
                parse_entry(self.image, at).ok_or("shared xattr beyond the end of the image")?;
            entries.push(entry);
        }
        Ok((entries, inline_count))
    }

    /// The full name of an xattr entry (name index, suffix), charged with its value against
    /// the xattr budget.
    fn xattr_name(&self, index: u8, suffix: &[u8], value: &[u8]) -> Result<Vec<u8>, &'static str> {
        let prefix = if index == 0 {
            &b""[..]
        } else {
            xattr_prefix(index).ok_or("unknown name index")?
        };
        let left = self
            .xattr_left
            .get()
            .checked_sub(xattr_charge(prefix, suffix, value))
            .ok_or("xattrs expand to far more than the image holds")?;
        self.xattr_left.set(left);
        let mut name = Vec::with_capacity(prefix.len() + suffix.len());
        name.extend_from_slice(prefix);
        name.extend_from_slice(suffix);
        if name.is_empty() || name.contains(&0) {
            return Err("empty name or NUL in name");
        }
        Ok(name)
    }

    /// A whiteout is skipped, as C skips them, but the kernel shows it on the erofs mount
    /// (overlayfs hides it): so it must be one of those composefs adds to the root, `00` to
    /// `ff`, with the attributes it gives them (the root's owner and mtime, mode 0644, one
    /// link, no data, the root's `security.selinux` if any), or two images would read alike
    /// and mount differently.
    fn check_root_whiteout(
        &self,
        child: &RawInode<'a>,
        name: &[u8],
        in_root: bool,
    ) -> Result<(), ReadError> {
        let hex = |c: &u8| matches!(c, b'0'..=b'9' | b'a'..=b'f');
        if !in_root || name.len() != 2 || !name.iter().all(hex) {
            return Err(child.bad("whiteout that is not one of the root's 00 to ff"));
        }
        check_special_data(child)?;
        let root = &self.tree.inodes[InodeId::ROOT.index()];
        let (mut xattrs, mut file, mut whiteout) = (Vec::new(), RegularFile::default(), false);
        self.read_xattrs(
            child,
            FileType::CharDevice,
            &mut xattrs,
            &mut file,
            &mut whiteout,
        )?;
        let root_label: Vec<&Xattr> = root
            .xattrs
            .iter()
            .filter(|x| x.name == b"security.selinux")
            .collect();
        let same = child.stat.mode == S_IFCHR | 0o644
            && (child.stat.uid, child.stat.gid, child.stat.mtime)
                == (root.stat.uid, root.stat.gid, root.stat.mtime)
            && child.stat.nlink == 1
            && xattrs.iter().eq(root_label);
        if !same {
            return Err(child.bad("whiteout with attributes composefs does not give them"));
        }
        Ok(())
    }

    /// A directory's link count is 2 and one for each subdirectory, as composefs writes it
    /// (the kernel shows the image's count, and a tree must not hold another).
    fn check_dir_nlink(
        &self,
        offset: u64,
        id: InodeId,
        entries: &[DirEntry],
    ) -> Result<(), ReadError> {
        let subdirs = entries
            .iter()
            .filter(|e| {
                !e.hardlink
                    && self.tree.inodes[e.inode.index()].stat.file_type()
                        == Some(FileType::Directory)
            })
            .count() as u64;
        let nlink = self.tree.inodes[id.index()].stat.nlink;
        if u64::from(nlink) != subdirs + 2 {
            return Err(corrupt(
                offset,
                format!("directory with link count {nlink} but {subdirs} subdirectories"),
            ));
        }
        Ok(())
    }

    /// With [`FEATURE_COMPAT_XATTR_FILTER`], the kernel answers "no such xattr" (and "no
    /// ACL") from the header's name filter without looking at the entries: a filter that
    /// hides an xattr the image holds would make the kernel and this reader disagree. It must
    /// be what composefs writes, one bit set for each name hash no entry has.
    fn check_name_filter(&self, area: &[u8], entries: &[RawXattr<'_>]) -> Result<(), String> {
        if self.sb.feature_compat & FEATURE_COMPAT_XATTR_FILTER == 0 {
            return Ok(());
        }
        let stored = u32_at(area, 0).ok_or("short header")?;
        let present = entries.iter().fold(0u32, |bits, (index, suffix, _)| {
            bits | 1 << xattr_filter_bit(*index, suffix)
        });
        if stored != !present {
            return Err(format!(
                "name filter {stored:#010x} does not match the names (want {:#010x})",
                !present
            ));
        }
        Ok(())
    }

    /// Reads the tree below directory `root`, depth first (the order that numbers the
    /// inodes), with a stack of open directories rather than recursion: the depth an image
    /// can ask for must not decide whether the reader's thread overflows its stack.
    fn walk(&mut self, root: OpenDir<'a>) -> Result<(), ReadError> {
        let mut stack = vec![root];
        while let Some(dir) = stack.last_mut() {
            let Some((name, child_nid, ft)) = dir.next_entry()? else {
                if !dir.has_dot || !dir.has_dotdot {
                    return Err(corrupt(dir.offset, "directory without '.' or '..'"));
                }
                let id = dir.id;
                let entries = std::mem::take(&mut dir.entries);
                self.check_dir_nlink(dir.offset, id, &entries)?;
                self.tree.inodes[id.index()].content = Content::Directory(entries);
                stack.pop();
                continue;
            };
            if (name == b"." || name == b"..") && ft != ft::DIR {
                return Err(corrupt(dir.offset, "'.' or '..' not of directory type"));
            }
            if name == b"." {
                if child_nid != dir.nid {
                    return Err(corrupt(dir.offset, "'.' does not point at the directory"));
                }
                dir.has_dot = true;
                continue;
            }
            if name == b".." {
                if child_nid != dir.parent_nid {
                    return Err(corrupt(dir.offset, "'..' does not point at the parent"));
                }
                dir.has_dotdot = true;
                continue;
            }
            if name.contains(&b'/') || name.contains(&0) || name.len() > 255 {
                return Err(corrupt(dir.offset, "invalid name in directory"));
            }
            if let Some(&existing) = self.seen.get(&child_nid) {
                // The inode's attributes are set as soon as it is met, so a directory still
                // being read (a loop back to an ancestor) is caught here too.
                let target = &self.tree.inodes[existing.index()];
                if target.stat.file_type() == Some(FileType::Directory) {
                    return Err(corrupt(
                        dir.offset,
                        "directory reachable twice (hard link or loop)",
                    ));
                }
                dir.entries.push(DirEntry {
                    name: name.to_vec(),
                    inode: existing,
                    hardlink: true,
                });
                continue;
            }
            let child = self.inode(child_nid)?;
            if ft != ft::of_mode(child.stat.mode) {
                return Err(corrupt(
                    dir.offset,
                    "directory entry type disagrees with the inode",
                ));
            }
            if child.stat.mode & S_IFMT == S_IFCHR && child.stat.rdev == 0 {
                // A real overlayfs whiteout: C skips them (they are the writer's 00-ff).
                let in_root = dir.nid == self.sb.root_nid;
                self.check_root_whiteout(&child, name, in_root)?;
                continue;
            }
            let id = InodeId(
                u32::try_from(self.tree.inodes.len()).map_err(|_| corrupt(0, "too many inodes"))?,
            );
            self.tree
                .inodes
                .push(Inode::new(Stat::default(), Content::Special));
            self.seen.insert(child_nid, id);
            dir.entries.push(DirEntry {
                name: name.to_vec(),
                inode: id,
                hardlink: false,
            });
            let (parent_nid, depth) = (dir.nid, dir.depth + 1);
            if let Some(open) = self.fill(id, child_nid, &child, parent_nid, depth)? {
                stack.push(open);
            }
        }
        Ok(())
    }
}

/// The inode fields as stored (compact ones widened), before the layout is checked.
struct InodeFields {
    /// Size of the inode structure (compact or extended).
    isize: u64,
    icount: u64,
    mode: u32,
    layout: u16,
    nlink: u32,
    size: u64,
    uid: u32,
    gid: u32,
    mtime: Mtime,
    raw_blkaddr: u32,
}

/// How many bytes of data follow an inode's xattrs (its inline tail), by its layout.
fn inline_tail_len(fields: &InodeFields, ftype: FileType) -> Result<u64, String> {
    match fields.layout {
        // The kernel takes the last block of an inline inode from the tail, whole if need be:
        // composefs makes an inode inline only when it has a partial last block.
        LAYOUT_FLAT_INLINE if fields.size % BLOCK_SIZE == 0 => {
            Err("inline layout without a partial last block".into())
        }
        LAYOUT_FLAT_INLINE => Ok(fields.size % BLOCK_SIZE),
        LAYOUT_FLAT_PLAIN => Ok(0),
        LAYOUT_CHUNK_BASED => {
            if ftype != FileType::Regular {
                return Err("chunk-based inode that is not a regular file".into());
            }
            let cf = fields.raw_blkaddr as u16;
            if cf & CHUNK_FORMAT_INDEXES != 0 {
                return Err("chunk indexes are not used by composefs".into());
            }
            if u32::from(cf) & !CHUNK_FORMAT_BLKBITS_MASK != 0 {
                // The kernel refuses chunk formats it does not know.
                return Err(format!("unknown chunk format {cf:#x}"));
            }
            let bits = u32::from(cf) & CHUNK_FORMAT_BLKBITS_MASK;
            // Counted as C counts when writing, wrapping for sizes within a chunk of 2^64
            // (which C, and so the writer, accept with an empty index).
            let chunk = 1u64 << (bits + BLOCK_SIZE_BITS);
            let count = fields.size.wrapping_add(chunk - 1) / chunk;
            if count > MAX_NONINLINE_CHUNKS {
                return Err("chunk index larger than one block".into());
            }
            // The index is all holes (data comes from the backing file through overlayfs);
            // C sometimes moves it to a block of its own while the kernel still looks after
            // the inode, so its bytes are not checked.
            Ok(0)
        }
        other => Err(format!(
            "unsupported inode data layout {other} (compression?)"
        )),
    }
}

/// A device, fifo or socket has no data: size 0, no blocks.
fn check_special_data(ino: &RawInode<'_>) -> Result<(), ReadError> {
    if ino.layout != LAYOUT_FLAT_PLAIN || ino.stat.size != 0 {
        return Err(ino.bad("device, fifo or socket with data"));
    }
    Ok(())
}

/// One xattr entry: name index, name suffix, value.
type RawXattr<'a> = (u8, &'a [u8], &'a [u8]);

/// What xattr `name` (with `value`) of an inode of type `ftype` is in the tree: the overlayfs
/// xattrs composefs writes are not kept, but give a regular `file` its payload and digest or
/// mark a `whiteout`; an escaped `trusted.overlay.overlay.X` is `trusted.overlay.X`, and other
/// `trusted.overlay.` xattrs are dropped. `Some(name)`: keep it, under that name.
fn tree_xattr_name(
    name: Vec<u8>,
    value: &[u8],
    ftype: FileType,
    file: &mut RegularFile,
    whiteout: &mut bool,
) -> Option<Vec<u8>> {
    match name.as_slice() {
        b"trusted.overlay.redirect" => {
            if ftype == FileType::Regular {
                let v = value
                    .strip_prefix(b"/")
                    .filter(|_| value.len() > 1)
                    .unwrap_or(value);
                file.payload = Some(v.to_vec());
            }
            return None;
        }
        b"trusted.overlay.metacopy" => {
            if ftype == FileType::Regular {
                file.digest = metacopy_digest(value);
            }
            return None;
        }
        b"trusted.overlay.overlay.whiteout" if ftype == FileType::Regular => {
            *whiteout = true;
            return None;
        }
        b"trusted.overlay.overlay.whiteouts"
        | b"user.overlay.whiteout"
        | b"user.overlay.whiteouts" => return None,
        _ => {}
    }
    match name.strip_prefix(b"trusted.overlay.") {
        Some(rest) => {
            let orig = rest.strip_prefix(b"overlay.")?;
            let mut n = b"trusted.overlay.".to_vec();
            n.extend_from_slice(orig);
            Some(n)
        }
        None => Some(name),
    }
}

fn parse_entry(b: &[u8], pos: u64) -> Option<(RawXattr<'_>, u64)> {
    let name_len = u64::from(*b.get(usize::try_from(pos).ok()?)?);
    let index = *b.get(usize::try_from(pos + 1).ok()?)?;
    let value_len = u64::from(u16_at(b, pos + 2)?);
    let suffix = bytes_at(b, pos + 4, name_len)?;
    let value = bytes_at(b, pos + 4 + name_len, value_len)?;
    Some((
        (index, suffix, value),
        round_up(4 + name_len + value_len, 4),
    ))
}

/// What one decoded xattr costs against the reader's xattr budget.
fn xattr_charge(prefix: &[u8], suffix: &[u8], value: &[u8]) -> u64 {
    XATTR_ENTRY_CHARGE + (prefix.len() + suffix.len() + value.len()) as u64
}

/// Each xattr name once, each spelled as composefs spells it (its prefix abbreviated to an
/// index), and in its order (by name, the inline entries, then the shared ones): the
/// kernel's `getxattr` finds the first of two equal names (C's reader keeps the last) and
/// never finds a name stored with a prefix it abbreviates, so such an inode means one thing
/// to the kernel and another to a reader; and `listxattr` lists in image order, which the
/// tree keeps. `entries` holds the `inline` inline ones first. O(n) after the order check;
/// an inode's inline area alone can hold some 65 000 entries.
fn check_xattr_names(entries: &[RawXattr<'_>], inline: usize) -> Result<(), &'static str> {
    fn full_name<'e>(entry: &RawXattr<'e>) -> impl Iterator<Item = &'e u8> {
        let prefix: &'static [u8] = xattr_prefix(entry.0).unwrap_or_default();
        prefix.iter().chain(entry.1.iter())
    }
    if entries
        .iter()
        .any(|(index, suffix, _)| *index == 0 && xattr_split(suffix).0 != 0)
    {
        return Err("a name stored without its prefix index");
    }
    let (inline_entries, shared) = entries.split_at(inline.min(entries.len()));
    for part in [inline_entries, shared] {
        for pair in part.windows(2) {
            match full_name(&pair[0]).cmp(full_name(&pair[1])) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Err("the same name twice"),
                std::cmp::Ordering::Greater => return Err("names not in order"),
            }
        }
    }
    // A name both inline and shared.
    let mut names: Vec<(u8, &[u8])> = entries.iter().map(|(i, s, _)| (*i, *s)).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err("the same name twice");
    }
    Ok(())
}

/// The number of dirents in one directory block (or tail), from the first name offset.
fn dirent_count(block: &[u8]) -> Result<usize, String> {
    if block.is_empty() {
        return Ok(0);
    }
    let first_nameoff = u16_at(block, 8).ok_or("block shorter than one entry")? as usize;
    if first_nameoff < DIRENT_SIZE as usize
        || first_nameoff % DIRENT_SIZE as usize != 0
        || first_nameoff > block.len()
    {
        return Err(format!("bad first name offset {first_nameoff}"));
    }
    Ok(first_nameoff / DIRENT_SIZE as usize)
}

/// One directory entry as stored: name, nid, file type (`EROFS_FT_*`).
type Dirent<'a> = (&'a [u8], u64, u8);

/// Dirent `i` of the `n` in `block`.
fn dirent(block: &[u8], i: usize, n: usize) -> Result<Dirent<'_>, String> {
    let first_nameoff = n * DIRENT_SIZE as usize;
    let base = (i * DIRENT_SIZE as usize) as u64;
    let nid = u64_at(block, base).ok_or("short entry")?;
    let nameoff = u16_at(block, base + 8).ok_or("short entry")? as usize;
    let ft = *block.get(base as usize + 10).ok_or("short entry")?;
    let end = if i + 1 < n {
        u16_at(block, base + DIRENT_SIZE + 8).ok_or("short entry")? as usize
    } else {
        // The last name runs to the end of the block or to the first NUL padding byte.
        let rest = block.get(nameoff..).ok_or("name offset beyond the block")?;
        nameoff + rest.iter().position(|&c| c == 0).unwrap_or(rest.len())
    };
    if nameoff < first_nameoff || end <= nameoff || end > block.len() {
        return Err(format!("bad name offsets {nameoff}..{end}"));
    }
    Ok((&block[nameoff..end], nid, ft))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erofs::{write, WriteOptions};
    use crate::tree::{DirEntry, S_IFDIR, S_IFIFO};

    fn xattr(name: &str, value: &str) -> Xattr {
        Xattr {
            name: name.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
        }
    }

    /// Every decoded xattr is charged its name (prefix included), its value and a fixed
    /// overhead, so an empty entry of four image bytes is not free; a budget one byte short
    /// of what an image decodes refuses it.
    #[test]
    fn xattr_budget_charges_each_entry() {
        assert_eq!(xattr_charge(b"", b"", b""), XATTR_ENTRY_CHARGE);
        const { assert!(XATTR_ENTRY_CHARGE >= 32) };
        assert_eq!(
            xattr_charge(b"system.posix_acl_default", b"", b""),
            XATTR_ENTRY_CHARGE + 24
        );

        let mut tree = Tree::new(Stat {
            mode: S_IFDIR | 0o755,
            ..Stat::default()
        });
        let mut fifo = Inode::new(
            Stat {
                mode: S_IFIFO | 0o644,
                nlink: 1,
                ..Stat::default()
            },
            Content::Special,
        );
        // In the order the writer stores them (sorted by name).
        fifo.xattrs = vec![xattr("security.b", "value"), xattr("user.a", "")];
        let id = tree.push(fifo);
        tree.inodes[0].content = Content::Directory(vec![DirEntry {
            name: b"f".to_vec(),
            inode: id,
            hardlink: false,
        }]);
        let image = write(&tree, &WriteOptions::default()).unwrap();
        // What the image decodes: the fifo's two, and the root's `trusted.overlay.opaque`
        // (read, then dropped as the writer's own).
        let decoded = [
            ("user.a", ""),
            ("security.b", "value"),
            ("trusted.overlay.opaque", "y"),
        ];
        let need: u64 = decoded
            .iter()
            .map(|(n, v)| XATTR_ENTRY_CHARGE + (n.len() + v.len()) as u64)
            .sum();
        let (back, _) = read_with_budget(&image, need).unwrap();
        assert_eq!(back.inodes[1].xattrs, tree.inodes[1].xattrs);
        let err = read_with_budget(&image, need - 1).unwrap_err();
        assert!(err.to_string().contains("xattrs expand"), "{err}");
    }
}
