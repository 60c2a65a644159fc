//! Reading a tar stream: decompression, then one entry after another, each with all its
//! extended headers folded in, its content left in the stream for the caller to read.

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use sealroot_format::tree::{
    Mtime, Stat, Xattr, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG,
};

use super::header::{self, Checksum, Field, Header, NumberError, BLOCK_SIZE};
use super::pax::{self, KeepXattrs, Overrides};
use super::TarError;

/// gzip's magic number (RFC 1952).
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// A zstd frame's magic number (RFC 8878), little-endian 0xFD2FB528.
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// xz's magic number, recognised only to name it in the error.
const XZ_MAGIC: &[u8] = b"\xfd7zXZ\x00";
/// lz4 frame magic, recognised only to name it in the error.
const LZ4_MAGIC: &[u8] = &[0x04, 0x22, 0x4d, 0x18];
/// How many bytes of the input are looked at to recognise a compression format.
const MAGIC_LEN: usize = 6;

/// The buffer between the (decompressed) input and the parser: headers are read 512 bytes at
/// a time, so they must not each cost a read of the input.
const INPUT_BUF_SIZE: usize = 256 * 1024;

/// How much input after the end-of-archive marker is read (and ignored): GNU tar pads to
/// 10 KiB records by default, `tar -b 2048` to 1 MiB.
const TRAILER_MAX: u64 = 1 << 20;

/// The largest PAX extended header or GNU long name accepted. Composefs keeps at most 32 KiB
/// of xattrs per inode, and paths are far shorter; this only stops absurd sizes.
pub(crate) const METADATA_MAX: u64 = 1 << 20;

/// The most headers that are not entries (`x`, `g`, `L`, `K`, `V`) accepted in a row before
/// an entry. Writers put at most one of each kind there (GNU tar: `x` or `L` and `K`); the
/// cap keeps what one entry costs to read in proportion to its size (at most this many
/// [`METADATA_MAX`]).
pub(crate) const EXTENDED_HEADERS_MAX: usize = 64;

/// The kind of an entry, from its type flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `0`, NUL (old archives) or `7` (contiguous file).
    Regular,
    /// `1`.
    HardLink,
    /// `2`.
    Symlink,
    /// `3`.
    CharDevice,
    /// `4`.
    BlockDevice,
    /// `5`, GNU `D` (a dump directory, whose content lists its names and is skipped), or an
    /// old-style NUL entry whose name ends with `/`.
    Directory,
    /// `6`.
    Fifo,
}

impl Kind {
    /// The file type bits of the inode it makes; 0 for a hard link, whose inode is its
    /// target's.
    fn file_type(self) -> u32 {
        match self {
            Kind::Regular => S_IFREG,
            Kind::HardLink => 0,
            Kind::Symlink => S_IFLNK,
            Kind::CharDevice => S_IFCHR,
            Kind::BlockDevice => S_IFBLK,
            Kind::Directory => S_IFDIR,
            Kind::Fifo => S_IFIFO,
        }
    }
}

/// One entry, with its extended headers applied.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// The offset of its first header block.
    pub(crate) offset: u64,
    /// Its path as the archive gives it.
    pub(crate) path: Vec<u8>,
    /// The target of a hard or symbolic link.
    pub(crate) link: Vec<u8>,
    pub(crate) kind: Kind,
    /// Its attributes as the headers give them: the file type of `kind` and the permission
    /// bits (`0o7777`) in `mode`, `nlink` 1, the content's `size` for a regular file (0 for
    /// other kinds), `rdev` in the kernel's 32-bit encoding for a device (0 for other kinds).
    pub(crate) stat: Stat,
    pub(crate) xattrs: Vec<Xattr>,
}

impl Entry {
    /// The path, for error messages.
    pub(crate) fn display_path(&self) -> PathBuf {
        path_buf(&self.path)
    }
}

/// `bytes` as a path.
pub(crate) fn path_buf(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// A tar stream being read.
pub(crate) struct Archive<'a> {
    input: BufReader<Box<dyn Read + 'a>>,
    /// Bytes of the tar stream consumed so far.
    offset: u64,
    /// What `g` headers said so far.
    global: Overrides,
    /// The xattrs the build keeps; the others are dropped as the headers are read.
    keep: KeepXattrs,
    /// Content bytes of the current entry not yet read.
    remaining: u64,
    /// Padding after them, up to the next block.
    padding: u64,
    /// The current entry, for errors while reading its content.
    current: Option<PathBuf>,
}

impl<'a> Archive<'a> {
    /// Recognises the compression of `input` by its first bytes and opens it; entries will
    /// carry only the xattrs `keep` keeps.
    pub(crate) fn open(
        mut input: impl Read + 'a,
        keep: KeepXattrs,
    ) -> Result<Archive<'a>, TarError> {
        let mut magic = [0u8; MAGIC_LEN];
        let mut n = 0;
        while n < MAGIC_LEN {
            match input.read(&mut magic[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(TarError::Read {
                        offset: 0,
                        path: None,
                        source: e,
                    })
                }
            }
        }
        let head = &magic[..n];
        let whole = io::Cursor::new(magic).take(n as u64).chain(input);
        let decoded: Box<dyn Read + 'a> = if head.starts_with(GZIP_MAGIC) {
            // Multi-member: pigz and concatenated gzip files are several members.
            Box::new(flate2::read::MultiGzDecoder::new(whole))
        } else if head.starts_with(ZSTD_MAGIC) {
            Box::new(
                zstd::stream::read::Decoder::new(whole).map_err(|e| TarError::Read {
                    offset: 0,
                    path: None,
                    source: e,
                })?,
            )
        } else if head.starts_with(XZ_MAGIC) {
            return Err(TarError::UnsupportedCompression { format: "xz" });
        } else if head.starts_with(LZ4_MAGIC) {
            return Err(TarError::UnsupportedCompression { format: "lz4" });
        } else if is_bzip2(head) {
            return Err(TarError::UnsupportedCompression { format: "bzip2" });
        } else {
            Box::new(whole)
        };
        Ok(Archive {
            input: BufReader::with_capacity(INPUT_BUF_SIZE, decoded),
            offset: 0,
            global: Overrides::default(),
            keep,
            remaining: 0,
            padding: 0,
            current: None,
        })
    }

    /// The error for the input failing with `e` now.
    fn read_error(&self, e: io::Error) -> TarError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return self.truncated();
        }
        TarError::Read {
            offset: self.offset,
            path: self.current.clone(),
            source: e,
        }
    }

    /// The error for the input ending now.
    fn truncated(&self) -> TarError {
        TarError::Truncated {
            offset: self.offset,
            path: self.current.clone(),
        }
    }

    /// Reads up to `buf.len()` bytes; 0 only at the end of the input.
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        loop {
            match self.input.read(buf) {
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_error(e)),
            }
        }
    }

    /// Fills `buf`; `Ok(false)` if the input ended before its first byte.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<bool, TarError> {
        let mut done = 0;
        while done < buf.len() {
            match self.read_some(&mut buf[done..])? {
                0 if done == 0 => return Ok(false),
                0 => return Err(self.truncated()),
                n => done += n,
            }
        }
        Ok(true)
    }

    /// Consumes up to `n` bytes of the input without copying them; returns how many, 0 only at
    /// the end of the input.
    fn consume(&mut self, n: u64) -> Result<u64, TarError> {
        let available = loop {
            match self.input.fill_buf() {
                Ok(buf) => break buf.len(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_error(e)),
            }
        };
        let k = available.min(usize::try_from(n).unwrap_or(usize::MAX));
        self.input.consume(k);
        self.offset += k as u64;
        Ok(k as u64)
    }

    /// Skips `n` bytes, which must be there.
    fn skip(&mut self, mut n: u64) -> Result<(), TarError> {
        while n > 0 {
            match self.consume(n)? {
                0 => return Err(self.truncated()),
                k => n -= k,
            }
        }
        Ok(())
    }

    /// Reads the next header block; `None` at the end of the input.
    fn read_block(&mut self) -> Result<Option<[u8; BLOCK_SIZE]>, TarError> {
        let mut block = [0u8; BLOCK_SIZE];
        Ok(self.read_full(&mut block)?.then_some(block))
    }

    /// Reads the `size` bytes of an extended header or long name, and their padding.
    fn read_metadata(&mut self, size: u64, offset: u64) -> Result<Vec<u8>, TarError> {
        if size > METADATA_MAX {
            return Err(TarError::BadHeader {
                offset,
                path: None,
                reason: format!("extended header of {size} bytes (at most {METADATA_MAX})"),
            });
        }
        // Grown as the bytes arrive: a truncated archive allocates only what it holds.
        let mut data = Vec::new();
        let want = size as usize;
        let mut chunk = [0u8; 4096];
        while data.len() < want {
            let k = chunk.len().min(want - data.len());
            match self.read_some(&mut chunk[..k])? {
                0 => return Err(self.truncated()),
                n => data.extend_from_slice(&chunk[..n]),
            }
        }
        self.skip(padding(size))?;
        Ok(data)
    }

    /// The next entry, after skipping what is left of the current one; `None` at the
    /// end-of-archive marker.
    ///
    /// Headers that are not entries (`x`, `g`, `L`, `K`, `V`) are folded into a [`Preamble`]
    /// until the entry's own header comes; the entry is that header with the preamble applied.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        self.skip_rest_of_entry()?;
        let mut preamble = Preamble::new(self.offset, self.global.global_defaults());
        loop {
            let offset = self.offset;
            let Some(block) = self.read_header(&preamble)? else {
                return Ok(None);
            };
            let header = Header(&block);
            if !is_extended(header.typeflag()) {
                return self.entry(&header, offset, preamble).map(Some);
            }
            self.read_extended(&header, offset, &mut preamble)?;
        }
    }

    /// Skips the unread content of the current entry and its padding.
    fn skip_rest_of_entry(&mut self) -> Result<(), TarError> {
        self.skip(self.remaining + self.padding)?;
        self.remaining = 0;
        self.padding = 0;
        self.current = None;
        Ok(())
    }

    /// Reads the next header block and checks its checksum; `None` if it is the
    /// end-of-archive marker.
    fn read_header(&mut self, preamble: &Preamble) -> Result<Option<[u8; BLOCK_SIZE]>, TarError> {
        let offset = self.offset;
        let Some(block) = self.read_block()? else {
            return Err(if offset == 0 {
                TarError::NotTar
            } else {
                self.truncated()
            });
        };
        match Header(&block).checksum() {
            Checksum::Valid => Ok(Some(block)),
            Checksum::Zero if preamble.pending => Err(TarError::BadHeader {
                offset,
                path: None,
                reason: "extended headers not followed by an entry".to_owned(),
            }),
            // The end-of-archive marker is two zero blocks; one is taken as enough, as GNU
            // tar takes it.
            Checksum::Zero => Ok(None),
            Checksum::Invalid if offset == 0 => Err(TarError::NotTar),
            Checksum::Invalid => Err(TarError::BadChecksum { offset }),
        }
    }

    /// Reads the extended header `h` at `offset` (`x`, `g`, `L`, `K` or `V`) and its data into
    /// `preamble` (a `g` header into the archive's global defaults too).
    fn read_extended(
        &mut self,
        h: &Header<'_>,
        offset: u64,
        preamble: &mut Preamble,
    ) -> Result<(), TarError> {
        preamble.count += 1;
        if preamble.count > EXTENDED_HEADERS_MAX {
            return Err(TarError::BadHeader {
                offset,
                path: None,
                reason: format!(
                    "more than {EXTENDED_HEADERS_MAX} extended headers (x, g, L, K or V) in a \
                     row, from byte {}, before one entry",
                    preamble.start
                ),
            });
        }
        let size = h
            .unsigned(header::SIZE)
            .map_err(|e| bad_field(offset, None, header::SIZE, e))?;
        let bad_pax = |reason| TarError::BadPax { offset, reason };
        match h.typeflag() {
            b'x' => {
                let data = self.read_metadata(size, offset)?;
                pax::apply(&data, &mut preamble.pax, self.keep).map_err(bad_pax)?;
                preamble.pending = true;
            }
            b'g' => {
                let data = self.read_metadata(size, offset)?;
                let mut global = Overrides::default();
                pax::apply(&data, &mut global, self.keep).map_err(bad_pax)?;
                pax::apply(&data, &mut self.global, self.keep).map_err(bad_pax)?;
                // Defaults for this entry too, below what its own `x` headers say.
                preamble
                    .pax
                    .fill_in(&global.global_defaults())
                    .map_err(bad_pax)?;
            }
            b'L' => {
                preamble.long_name = Some(trim_nuls(self.read_metadata(size, offset)?));
                preamble.pending = true;
            }
            b'K' => {
                preamble.long_link = Some(trim_nuls(self.read_metadata(size, offset)?));
                preamble.pending = true;
            }
            // `V`, a GNU volume label: not a file.
            _ => {
                self.skip(size)?;
                self.skip(padding(size))?;
            }
        }
        Ok(())
    }

    /// The entry whose own header `h` is at `offset`, with `preamble` applied; its content
    /// is left in the stream for [`read_content`](Archive::read_content).
    fn entry(
        &mut self,
        h: &Header<'_>,
        offset: u64,
        preamble: Preamble,
    ) -> Result<Entry, TarError> {
        let Preamble {
            start,
            mut pax,
            long_name,
            long_link,
            ..
        } = preamble;
        let path = pax.path.take().or(long_name).unwrap_or_else(|| h.path());
        let display = path_buf(&path);
        self.current = Some(display.clone());
        let typeflag = h.typeflag();
        let kind = supported_kind(typeflag, &path, &pax).map_err(|what| TarError::Unsupported {
            offset: start,
            path: display.clone(),
            what,
        })?;
        let at = Place {
            header: offset,
            entry: start,
            path: display,
        };
        let size = match pax.size {
            Some(size) => size,
            None => h
                .unsigned(header::SIZE)
                .map_err(|e| at.bad_field(header::SIZE, e))?,
        };
        let stat = attributes(h, kind, size, &pax, &at)?;
        let link = pax
            .linkpath
            .take()
            .or(long_link)
            .unwrap_or_else(|| h.text(header::LINKNAME).to_vec());

        // Only regular files and GNU dump directories have data blocks; for the other
        // types the size field is ignored, as Go's archive/tar and Python's tarfile do.
        let data = match kind {
            Kind::Regular => size,
            Kind::Directory if typeflag == b'D' => size,
            _ => 0,
        };
        self.remaining = data;
        self.padding = padding(data);
        Ok(Entry {
            offset: start,
            path,
            link,
            kind,
            stat,
            xattrs: pax.xattrs.into_vec(),
        })
    }

    /// Reads content of the current entry into `buf`, filling it unless the content ends
    /// first; returns how much was read (0 once it is all read).
    pub(crate) fn read_content(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let mut done = 0;
        while done < want {
            match self.read_some(&mut buf[done..want])? {
                0 => return Err(self.truncated()),
                n => done += n,
            }
        }
        self.remaining -= done as u64;
        Ok(done)
    }

    /// How many content bytes of the current entry are still unread.
    pub(crate) fn content_left(&self) -> u64 {
        self.remaining
    }

    /// After the end-of-archive marker: reads the rest of the input (zero blocks up to the
    /// record size, usually), so that a decompressor checks its trailing checksum. Past
    /// [`TRAILER_MAX`] bytes the rest is left unread: it is not part of the archive, and a
    /// small compressed input could otherwise make endless zeros.
    pub(crate) fn finish(&mut self) -> Result<(), TarError> {
        self.current = None;
        let mut left = TRAILER_MAX;
        while left > 0 {
            match self.consume(left)? {
                0 => break,
                k => left -= k,
            }
        }
        Ok(())
    }
}

/// What the headers before an entry (`x`, `g`, `L`, `K`, `V`) say about it.
struct Preamble {
    /// Where the first of them, or else the entry's own header, starts.
    start: u64,
    /// The PAX overrides: those of the `g` headers so far, under the entry's own `x` records.
    pax: Overrides,
    /// A GNU `L` long name.
    long_name: Option<Vec<u8>>,
    /// A GNU `K` long link target.
    long_link: Option<Vec<u8>>,
    /// Whether headers were read that belong to an entry still to come.
    pending: bool,
    /// How many headers were read before the entry's own.
    count: usize,
}

impl Preamble {
    /// Nothing read yet at `start`, with the global defaults `pax`.
    fn new(start: u64, pax: Overrides) -> Self {
        Preamble {
            start,
            pax,
            long_name: None,
            long_link: None,
            pending: false,
            count: 0,
        }
    }
}

/// Whether `typeflag` marks a header that is not an entry of its own.
fn is_extended(typeflag: u8) -> bool {
    matches!(typeflag, b'x' | b'g' | b'L' | b'K' | b'V')
}

/// The kind of an entry with `typeflag` and `path`, or what makes it one composefs cannot
/// hold: a sparse file, a multi-volume part, an unknown type flag, or text ACLs (`pax`).
fn supported_kind(typeflag: u8, path: &[u8], pax: &Overrides) -> Result<Kind, String> {
    let kind = match typeflag {
        b'0' | b'7' => Kind::Regular,
        0 if path.ends_with(b"/") => Kind::Directory,
        0 => Kind::Regular,
        b'1' => Kind::HardLink,
        b'2' => Kind::Symlink,
        b'3' => Kind::CharDevice,
        b'4' => Kind::BlockDevice,
        b'5' | b'D' => Kind::Directory,
        b'6' => Kind::Fifo,
        b'S' => return Err("a GNU sparse file".to_owned()),
        b'M' => return Err("a multi-volume continuation".to_owned()),
        t => {
            return Err(format!(
                "type flag {:?}",
                char::from(t).escape_default().to_string()
            ))
        }
    };
    if pax.sparse {
        return Err("a sparse file (GNU.sparse PAX keys)".to_owned());
    }
    if let Some(key) = &pax.unsupported {
        return Err(format!(
            "PAX key {} (text ACLs of `tar --acls`; archive with --xattrs instead)",
            String::from_utf8_lossy(key)
        ));
    }
    Ok(kind)
}

/// Where an entry is, for its errors.
struct Place {
    /// The offset of its own header.
    header: u64,
    /// The offset of its first header (extended headers included).
    entry: u64,
    /// Its path.
    path: PathBuf,
}

impl Place {
    /// The error for a `field` of its header that cannot be read.
    fn bad_field(&self, field: Field, e: NumberError) -> TarError {
        bad_field(self.header, Some(self.path.clone()), field, e)
    }
}

/// The attributes of the entry at `at` of `kind` with header `h`, content `size` and PAX
/// overrides `pax` (see [`Entry::stat`]).
fn attributes(
    h: &Header<'_>,
    kind: Kind,
    size: u64,
    pax: &Overrides,
    at: &Place,
) -> Result<Stat, TarError> {
    let bad = |field, e| at.bad_field(field, e);
    let mode = h.unsigned(header::MODE).map_err(|e| bad(header::MODE, e))? as u32 & 0o7777;
    let uid = match pax.uid {
        Some(uid) => uid,
        None => h.u32(header::UID).map_err(|e| bad(header::UID, e))?,
    };
    let gid = match pax.gid {
        Some(gid) => gid,
        None => h.u32(header::GID).map_err(|e| bad(header::GID, e))?,
    };
    let mtime = match pax.mtime {
        Some(mtime) => mtime,
        None => Mtime {
            sec: h.signed(header::MTIME).map_err(|e| bad(header::MTIME, e))?,
            nsec: 0,
        },
    };
    let rdev = match kind {
        Kind::CharDevice | Kind::BlockDevice => {
            let major = h
                .u32(header::DEVMAJOR)
                .map_err(|e| bad(header::DEVMAJOR, e))?;
            let minor = h
                .u32(header::DEVMINOR)
                .map_err(|e| bad(header::DEVMINOR, e))?;
            header::makedev(major, minor).ok_or_else(|| TarError::DeviceNumberTooLarge {
                offset: at.entry,
                path: at.path.clone(),
                major,
                minor,
            })?
        }
        _ => 0,
    };
    Ok(Stat {
        mode: kind.file_type() | mode,
        uid,
        gid,
        nlink: 1,
        rdev,
        size: if kind == Kind::Regular { size } else { 0 },
        mtime,
    })
}

/// The error for header `field` of the header at `offset` (of entry `path`, if known).
fn bad_field(offset: u64, path: Option<PathBuf>, field: Field, e: NumberError) -> TarError {
    TarError::BadHeader {
        offset,
        path,
        reason: format!("{} field {e}", field.name),
    }
}

/// The padding after `size` content bytes, up to the next block.
fn padding(size: u64) -> u64 {
    (BLOCK_SIZE as u64 - size % BLOCK_SIZE as u64) % BLOCK_SIZE as u64
}

/// A GNU long name or link without its terminating NULs.
fn trim_nuls(mut data: Vec<u8>) -> Vec<u8> {
    let len = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    data.truncate(len);
    data
}

/// Whether `head` starts a bzip2 stream: `BZh`, a block size digit, and the start of the
/// first block's magic (checked that far so that a tar whose first name starts with `BZh` is
/// still read as one).
fn is_bzip2(head: &[u8]) -> bool {
    head.len() == MAGIC_LEN
        && head.starts_with(b"BZh")
        && (b'1'..=b'9').contains(&head[3])
        && head[4..] == [0x31, 0x41]
}
