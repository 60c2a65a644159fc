//! composefs-rs split streams: the file format `cfsctl` (composefs-rs 0.9) uses for OCI layers and
//! ostree commits, and the one place where its garbage collector learns which objects a stream
//! needs. sealroot writes one per commit ([`CommitStream`]) so that `cfsctl gc` keeps every object
//! of the commit; the repository's own `gc` reads the references of any stream
//! ([`references`]).
//!
//! # The format (composefs-rs 0.9.4, `splitstream.rs`)
//!
//! All integers little-endian. A *range* is two u64, `start` and `end`, absolute byte offsets
//! into the file (`start <= end`).
//!
//! ```text
//! 0   11  magic "SplitStream"
//! 11  1   version, 0
//! 12  2   flags, 0 (composefs-rs ignores them)
//! 14  1   fs-verity algorithm, the kernel's number: 1 sha256, 2 sha512
//! 15  1   log2 of the fs-verity block size: 12 (the only value composefs-rs accepts)
//! 16  16  range of the info section
//! ```
//!
//! Streams written by bootc 1.15 and older have the same fields in the order the compiler gave
//! them without `repr(C)`: info range at 0, flags at 16, magic at 18, version at 29, algorithm
//! at 30, block size at 31. composefs-rs reads both (it tries the magic at 0 first); so does
//! [`Header::parse`]; nobody writes the old one any more.
//!
//! The info section (80 bytes; a reader ignores whatever follows, for future growth):
//!
//! ```text
//! 0   16  range of the stream references: digests of other split streams
//! 16  16  range of the object references: digests of objects
//! 32  16  range of the stream: a zstd frame of the chunks
//! 48  16  range of the named references: a zstd frame of "INDEX:NAME\0" records
//! 64  8   content type: a number naming what the stream holds (ours: COMMIT_CONTENT_TYPE)
//! 72  8   stream size: the size of the reassembled stream (inline bytes plus the sizes of the
//!         external objects)
//! ```
//!
//! The reference sections are flat arrays of binary digests of the header's algorithm,
//! uncompressed, so that a collector reads them without decompressing anything. composefs-rs's
//! writer places the sections in the order header, info, stream references, object references,
//! named references, stream, with no gaps, and lists each digest once.
//!
//! The stream, once decompressed, is a sequence of chunks, each an i64: a negative `-n` is
//! followed by `n` bytes of inline data, a non-negative `i` stands for the whole content of
//! object reference `i`. Adjacent inline data is one chunk. The named references, once
//! decompressed, are records `INDEX:NAME\0` (decimal index into the stream references, UTF-8
//! name), sorted by name; each stream reference is there under at least one name.
//!
//! # What `cfsctl` does with a stream
//!
//! - Streams live as objects; `streams/NAME` is a symlink `../objects/XX/REST` to one, and
//!   `streams/refs/PATH` (any depth) a symlink to `streams/NAME` (composefs-rs uses only the
//!   last component of its target). Every entry of `streams/` but `refs` must be a symlink
//!   whose target ends in `XX/REST`, or `cfsctl gc` stops.
//! - `gc` marks the objects of every image under `images/refs/`, and from every stream under
//!   `streams/refs/`: the stream's object, its **object references**, and the objects its
//!   **named** references name; a named reference that is also some `streams/NAME` is walked in
//!   turn. A stream reference without a name is not followed. It opens every stream it walks
//!   (header, info, both reference arrays, and it decompresses the named references; it never
//!   reads the chunks); any error stops it before it deletes anything. It then deletes every
//!   unmarked object and the links left dangling in `images/` and `streams/`.
//! - `fsck` opens every `streams/NAME` the same way and reports object and named references
//!   whose object is missing; it does not read the chunks either.
//! - `cat NAME` reassembles the stream: inline data and the external objects' contents.
//! - A stream whose chunks name no object at all, or only some of its object references, is
//!   valid: nothing checks that the chunks use every reference, nor the stream size.
//!
//! # What sealroot writes
//!
//! Uncompressed zstd frames ("raw" blocks), so that this crate needs no compressor and the
//! same stream always has the same bytes (and object id): a frame is the magic `28 b5 2f fd`,
//! a descriptor with only the single-segment flag and the frame content size in the fewest
//! bytes zstd allows (1, 2 as size − 256, 4 or 8), then raw blocks of at most 128 KiB, the last
//! flagged (one empty block for no content); no checksum, no dictionary. zstd decodes them
//! like any other frame. [`parse`] reads exactly this form and refuses compressed frames;
//! [`references`] reads any composefs-rs stream, because it never decompresses.

use std::collections::{BTreeMap, BTreeSet};

use sealroot_verity::{AnyDigest, HashAlgorithm, Sha256Digest, Sha512Digest};

mod commit;
mod frame;

pub use commit::{CommitStream, CommitStreamError};
use frame::{frame, unframe};

/// The magic at the start of the header.
pub const MAGIC: [u8; 11] = *b"SplitStream";
/// The only header version there is.
pub const VERSION: u8 = 0;
/// log2 of the fs-verity block size: composefs-rs accepts only 4 KiB.
pub const LG_BLOCKSIZE: u8 = 12;
/// The size of the header.
pub const HEADER_SIZE: usize = 32;
/// The size of the info section composefs-rs writes (and the least it reads).
pub const INFO_SIZE: usize = 80;
/// The byte offset of the magic in the header layout of bootc 1.15 and older.
const OLD_MAGIC_OFFSET: usize = 18;

/// The content type of a sealroot commit stream: the bytes `srcommit` read as a little-endian
/// u64 (composefs-rs's ostree commits use a random-looking number, its summaries the text
/// `osummary`; any value is fine as long as it is distinct).
pub const COMMIT_CONTENT_TYPE: u64 = u64::from_le_bytes(*b"srcommit");
/// The name under which a commit stream names its parent commit's stream.
pub const PARENT_REF: &str = "parent";

/// The most content an uncompressed frame here holds: zstd's decoder refuses single-segment
/// frames whose content (their window) exceeds 2^27 bytes, its default window limit.
pub const FRAME_CONTENT_MAX: usize = 1 << 27;

/// The largest commit stream [`CommitStream::parse`] accepts: 1 GiB, above what a commit
/// within [`crate::objects::limits::TREE_ENTRIES_MAX`] entries (at most two objects each, 64
/// bytes a digest) needs.
pub const COMMIT_STREAM_MAX: usize = 1 << 30;

/// Which section of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// The info section.
    Info,
    /// The stream references.
    StreamRefs,
    /// The object references.
    ObjectRefs,
    /// The compressed chunks.
    Stream,
    /// The compressed named references.
    NamedRefs,
}

impl Section {
    /// The name used in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Section::Info => "info",
            Section::StreamRefs => "stream references",
            Section::ObjectRefs => "object references",
            Section::Stream => "stream",
            Section::NamedRefs => "named references",
        }
    }
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes are not a split stream (or not one sealroot reads).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Shorter than the header, or than the info section needs.
    #[error("truncated: {what} needs {need} bytes, {have} there")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        need: u64,
        /// Bytes there.
        have: u64,
    },
    /// No magic at either layout's place.
    #[error("no \"SplitStream\" magic: not a split stream")]
    BadMagic,
    /// A header version other than 0.
    #[error("split stream version {0} (only 0 exists)")]
    UnsupportedVersion(u8),
    /// An algorithm number fs-verity does not have.
    #[error("unknown fs-verity algorithm number {0}")]
    UnknownAlgorithm(u8),
    /// A block size other than 4 KiB.
    #[error("fs-verity block size 2^{0} (composefs-rs accepts only 2^12)")]
    UnsupportedBlockSize(u8),
    /// A range that ends before it starts or beyond the file.
    #[error("{section} range {start}..{end} does not fit in the {len} bytes of the file")]
    BadRange {
        /// Which section.
        section: Section,
        /// Its start.
        start: u64,
        /// Its end.
        end: u64,
        /// The file's size.
        len: u64,
    },
    /// A reference section whose size is not a multiple of the digest size.
    #[error("{section}: {len} bytes is not a whole number of {size}-byte digests")]
    RaggedReferences {
        /// Which section.
        section: Section,
        /// Its size.
        len: u64,
        /// The digest size.
        size: usize,
    },
    /// A zstd frame this crate does not decode (only the uncompressed form sealroot writes).
    #[error("{section}: {reason}")]
    Frame {
        /// Which section.
        section: Section,
        /// What is wrong or unsupported.
        reason: String,
    },
    /// A malformed named reference record.
    #[error("named reference {index}: {reason}")]
    NamedRef {
        /// Which record (from 0).
        index: usize,
        /// Why.
        reason: String,
    },
    /// A malformed chunk.
    #[error("chunk at byte {offset} of the stream: {reason}")]
    Chunk {
        /// Its offset in the decompressed stream.
        offset: usize,
        /// Why.
        reason: String,
    },
    /// Well-formed, but not in the one byte form [`encode`] gives its meaning.
    #[error("not canonical: {0}")]
    NotCanonical(String),
}

/// Why a stream cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A reference of another algorithm than the stream's.
    #[error("{what} {digest} is {found}, the stream is {expected}")]
    MixedAlgorithms {
        /// Which list.
        what: &'static str,
        /// The digest (hex).
        digest: String,
        /// Its algorithm.
        found: HashAlgorithm,
        /// The stream's.
        expected: HashAlgorithm,
    },
    /// The same object listed twice.
    #[error("object reference {0} is listed twice")]
    DuplicateObjectRef(String),
    /// An empty name or one with a NUL byte.
    #[error("named reference {0:?}: a name is non-empty and has no NUL byte")]
    BadName(String),
    /// A chunk naming an object reference that does not exist.
    #[error("chunk {chunk} names object reference {index}, there are {count}")]
    NoSuchObjectRef {
        /// Which chunk.
        chunk: usize,
        /// The index.
        index: usize,
        /// How many object references there are.
        count: usize,
    },
    /// Inline data with no bytes (composefs-rs cannot express it).
    #[error("chunk {0} is empty inline data")]
    EmptyInline(usize),
    /// More chunk or name data than one uncompressed frame may hold.
    #[error("{section}: {size} bytes, more than the {FRAME_CONTENT_MAX} one frame holds")]
    TooLarge {
        /// Which section.
        section: Section,
        /// Its size.
        size: usize,
    },
}

/// A range of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Range {
    fn read(bytes: &[u8]) -> Range {
        Range {
            start: u64_at(bytes, 0),
            end: u64_at(bytes, 8),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.start.to_le_bytes());
        out.extend_from_slice(&self.end.to_le_bytes());
    }

    /// The range as indexes into a file of `len` bytes, if it lies inside it.
    pub fn within(&self, section: Section, len: u64) -> Result<std::ops::Range<usize>, ParseError> {
        let bad = ParseError::BadRange {
            section,
            start: self.start,
            end: self.end,
            len,
        };
        if self.start > self.end || self.end > len {
            return Err(bad);
        }
        let start = usize::try_from(self.start).map_err(|_| bad.clone())?;
        let end = usize::try_from(self.end).map_err(|_| bad)?;
        Ok(start..end)
    }

    /// Its length (0 if it ends before it starts; [`Range::within`] refuses those).
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `bytes[at..at + 8]` as a little-endian u64; the caller checked the length.
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The fixed header at the start of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The fs-verity algorithm of every digest in the stream.
    pub algorithm: HashAlgorithm,
    /// Where the info section is.
    pub info: Range,
    /// Whether the header has the layout of bootc 1.15 and older.
    pub old_layout: bool,
}

impl Header {
    /// Reads the header from the first [`HEADER_SIZE`] bytes of `bytes`, in either layout.
    ///
    /// # Errors
    /// [`ParseError`] if it is short, has no magic, or a version, algorithm or block size
    /// composefs-rs would refuse.
    pub fn parse(bytes: &[u8]) -> Result<Header, ParseError> {
        let Some(h) = bytes.get(..HEADER_SIZE) else {
            return Err(ParseError::Truncated {
                what: "the header",
                need: HEADER_SIZE as u64,
                have: bytes.len() as u64,
            });
        };
        // (version, algorithm, lg_blocksize, info range offset)
        let (version, algorithm, lg, info_at, old_layout) = if h[..MAGIC.len()] == MAGIC {
            (h[11], h[14], h[15], 16, false)
        } else if h[OLD_MAGIC_OFFSET..OLD_MAGIC_OFFSET + MAGIC.len()] == MAGIC {
            (h[29], h[30], h[31], 0, true)
        } else {
            return Err(ParseError::BadMagic);
        };
        if version != VERSION {
            return Err(ParseError::UnsupportedVersion(version));
        }
        let algorithm = HashAlgorithm::from_kernel_id(algorithm)
            .ok_or(ParseError::UnknownAlgorithm(algorithm))?;
        if lg != LG_BLOCKSIZE {
            return Err(ParseError::UnsupportedBlockSize(lg));
        }
        Ok(Header {
            algorithm,
            info: Range::read(&h[info_at..info_at + 16]),
            old_layout,
        })
    }
}

/// The info section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// The stream references.
    pub stream_refs: Range,
    /// The object references.
    pub object_refs: Range,
    /// The compressed chunks.
    pub stream: Range,
    /// The compressed named references.
    pub named_refs: Range,
    /// What the stream holds.
    pub content_type: u64,
    /// The size of the reassembled stream.
    pub stream_size: u64,
}

impl Info {
    /// Reads the info section from `bytes` (at least [`INFO_SIZE`]; more is ignored, as
    /// composefs-rs does).
    ///
    /// # Errors
    /// [`ParseError::Truncated`] if it is short.
    pub fn parse(bytes: &[u8]) -> Result<Info, ParseError> {
        if bytes.len() < INFO_SIZE {
            return Err(ParseError::Truncated {
                what: "the info section",
                need: INFO_SIZE as u64,
                have: bytes.len() as u64,
            });
        }
        Ok(Info {
            stream_refs: Range::read(&bytes[0..]),
            object_refs: Range::read(&bytes[16..]),
            stream: Range::read(&bytes[32..]),
            named_refs: Range::read(&bytes[48..]),
            content_type: u64_at(bytes, 64),
            stream_size: u64_at(bytes, 72),
        })
    }
}

/// Reads a reference section: a flat array of `algorithm` digests.
///
/// # Errors
/// [`ParseError::RaggedReferences`] if its size is not a multiple of the digest size.
pub fn parse_digests(
    algorithm: HashAlgorithm,
    section: Section,
    bytes: &[u8],
) -> Result<Vec<AnyDigest>, ParseError> {
    let size = algorithm.digest_size();
    let ragged = || ParseError::RaggedReferences {
        section,
        len: bytes.len() as u64,
        size,
    };
    if bytes.len() % size != 0 {
        return Err(ragged());
    }
    bytes
        .chunks_exact(size)
        .map(|d| match algorithm {
            HashAlgorithm::Sha256 => Sha256Digest::from_slice(d).map(AnyDigest::Sha256),
            HashAlgorithm::Sha512 => Sha512Digest::from_slice(d).map(AnyDigest::Sha512),
        })
        .collect::<Result<_, _>>()
        .map_err(|_| ragged())
}

/// What a collector needs from any composefs-rs split stream, read without decompressing
/// anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct References {
    /// The header.
    pub header: Header,
    /// The info section.
    pub info: Info,
    /// The objects the stream needs.
    pub object_refs: Vec<AnyDigest>,
    /// The other streams it refers to. `cfsctl gc` follows only those that have a name (in
    /// the compressed named references); a collector that cannot read the names keeps them all,
    /// which keeps a superset.
    pub stream_refs: Vec<AnyDigest>,
}

/// Reads the header, the info section and both reference arrays of a split stream in either
/// header layout, checking that every section lies within `bytes`. Compressed or not: the
/// compressed sections are only checked to lie within the file.
///
/// # Errors
/// [`ParseError`] for what composefs-rs would also refuse to open (a bad header, a range
/// beyond the file, a reference array of a partial digest).
pub fn references(bytes: &[u8]) -> Result<References, ParseError> {
    let header = Header::parse(bytes)?;
    let len = bytes.len() as u64;
    let info = Info::parse(&bytes[header.info.within(Section::Info, len)?])?;
    let stream_refs = parse_digests(
        header.algorithm,
        Section::StreamRefs,
        &bytes[info.stream_refs.within(Section::StreamRefs, len)?],
    )?;
    let object_refs = parse_digests(
        header.algorithm,
        Section::ObjectRefs,
        &bytes[info.object_refs.within(Section::ObjectRefs, len)?],
    )?;
    info.stream.within(Section::Stream, len)?;
    info.named_refs.within(Section::NamedRefs, len)?;
    Ok(References {
        header,
        info,
        object_refs,
        stream_refs,
    })
}

/// One piece of a stream's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Bytes stored in the stream.
    Inline(Vec<u8>),
    /// The whole content of the object reference at this index.
    External(usize),
}

/// A split stream, whole: what [`encode`] writes and [`parse`] reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitStream {
    /// The fs-verity algorithm of every digest.
    pub algorithm: HashAlgorithm,
    /// What the stream holds.
    pub content_type: u64,
    /// The size of the reassembled stream: the inline bytes plus the sizes of the objects the
    /// chunks name (written as given; nothing checks it).
    pub stream_size: u64,
    /// The objects the stream needs, each once; chunks name them by index.
    pub object_refs: Vec<AnyDigest>,
    /// Other split streams the stream needs, by name (the stream references are these
    /// digests, each once, in the order of the names).
    pub named_refs: BTreeMap<String, AnyDigest>,
    /// The content.
    pub chunks: Vec<Chunk>,
}

impl SplitStream {
    /// Checks what [`encode`] cannot write: references of another algorithm, an object
    /// listed twice, bad names, chunks naming no reference, empty inline data.
    fn check(&self) -> Result<(), EncodeError> {
        let same = |what: &'static str, d: &AnyDigest| {
            if d.algorithm() == self.algorithm {
                Ok(())
            } else {
                Err(EncodeError::MixedAlgorithms {
                    what,
                    digest: d.to_string(),
                    found: d.algorithm(),
                    expected: self.algorithm,
                })
            }
        };
        let mut seen = BTreeSet::new();
        for d in &self.object_refs {
            same("object reference", d)?;
            if !seen.insert(d) {
                return Err(EncodeError::DuplicateObjectRef(d.to_string()));
            }
        }
        for (name, d) in &self.named_refs {
            same("named reference", d)?;
            if name.is_empty() || name.contains('\0') {
                return Err(EncodeError::BadName(name.clone()));
            }
        }
        for (i, chunk) in self.chunks.iter().enumerate() {
            match chunk {
                Chunk::Inline(bytes) if bytes.is_empty() => {
                    return Err(EncodeError::EmptyInline(i))
                }
                Chunk::Inline(_) => {}
                Chunk::External(index) if *index >= self.object_refs.len() => {
                    return Err(EncodeError::NoSuchObjectRef {
                        chunk: i,
                        index: *index,
                        count: self.object_refs.len(),
                    })
                }
                Chunk::External(_) => {}
            }
        }
        Ok(())
    }
}

/// The decompressed stream of checked chunks: `-n` and the n bytes of each run of adjacent
/// inline chunks (merged, as composefs-rs writes them), the index of each object.
fn chunk_bytes(chunks: &[Chunk]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut run: Vec<&[u8]> = Vec::new();
    let flush = |run: &mut Vec<&[u8]>, out: &mut Vec<u8>| {
        if run.is_empty() {
            return;
        }
        let total: usize = run.iter().map(|b| b.len()).sum();
        // In-memory data: its length fits in an i64.
        out.extend_from_slice(&(-i64::try_from(total).unwrap_or(i64::MAX)).to_le_bytes());
        for piece in run.drain(..) {
            out.extend_from_slice(piece);
        }
    };
    for chunk in chunks {
        match chunk {
            Chunk::Inline(bytes) => run.push(bytes),
            Chunk::External(index) => {
                flush(&mut run, &mut out);
                // An index below the number of references in memory fits in an i64.
                out.extend_from_slice(&i64::try_from(*index).unwrap_or(i64::MAX).to_le_bytes());
            }
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Writes `stream` in the layout composefs-rs writes, with uncompressed zstd frames.
///
/// # Errors
/// [`EncodeError`] for references of another algorithm, an object listed twice, a chunk
/// naming no reference, empty inline data, a bad name, or a section too big for one frame.
pub fn encode(stream: &SplitStream) -> Result<Vec<u8>, EncodeError> {
    stream.check()?;
    let content = chunk_bytes(&stream.chunks);
    if content.len() > FRAME_CONTENT_MAX {
        return Err(EncodeError::TooLarge {
            section: Section::Stream,
            size: content.len(),
        });
    }
    let mut stream_refs: Vec<&AnyDigest> = Vec::new();
    let mut names = Vec::new();
    for (name, digest) in &stream.named_refs {
        let index = match stream_refs.iter().position(|d| *d == digest) {
            Some(i) => i,
            None => {
                stream_refs.push(digest);
                stream_refs.len() - 1
            }
        };
        names.extend_from_slice(format!("{index}:{name}\0").as_bytes());
    }
    if names.len() > FRAME_CONTENT_MAX {
        return Err(EncodeError::TooLarge {
            section: Section::NamedRefs,
            size: names.len(),
        });
    }
    let named_frame = frame(&names);
    let stream_frame = frame(&content);

    let size = stream.algorithm.digest_size() as u64;
    let info_start = HEADER_SIZE as u64;
    let stream_refs_start = info_start + INFO_SIZE as u64;
    let object_refs_start = stream_refs_start + size * stream_refs.len() as u64;
    let named_start = object_refs_start + size * stream.object_refs.len() as u64;
    let stream_start = named_start + named_frame.len() as u64;
    let end = stream_start + stream_frame.len() as u64;

    let mut out = Vec::with_capacity(usize::try_from(end).unwrap_or(0));
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&0u16.to_le_bytes());
    out.push(stream.algorithm.kernel_id());
    out.push(LG_BLOCKSIZE);
    Range {
        start: info_start,
        end: stream_refs_start,
    }
    .write(&mut out);
    Range {
        start: stream_refs_start,
        end: object_refs_start,
    }
    .write(&mut out);
    Range {
        start: object_refs_start,
        end: named_start,
    }
    .write(&mut out);
    Range {
        start: stream_start,
        end,
    }
    .write(&mut out);
    Range {
        start: named_start,
        end: stream_start,
    }
    .write(&mut out);
    out.extend_from_slice(&stream.content_type.to_le_bytes());
    out.extend_from_slice(&stream.stream_size.to_le_bytes());
    for d in stream_refs {
        out.extend_from_slice(d.as_bytes());
    }
    for d in &stream.object_refs {
        out.extend_from_slice(d.as_bytes());
    }
    out.extend_from_slice(&named_frame);
    out.extend_from_slice(&stream_frame);
    Ok(out)
}

/// Reads a split stream sealroot wrote: uncompressed frames, and canonical (exactly what
/// [`encode`] writes for its meaning). Bounded by the input: nothing it builds is larger
/// than the bytes it was given.
///
/// # Errors
/// [`ParseError`]: what [`references`] refuses, compressed frames, malformed chunks or
/// names, and anything [`encode`] would write differently.
pub fn parse(bytes: &[u8]) -> Result<SplitStream, ParseError> {
    let refs = references(bytes)?;
    let len = bytes.len() as u64;
    let names = unframe(
        Section::NamedRefs,
        &bytes[refs.info.named_refs.within(Section::NamedRefs, len)?],
    )?;
    let content = unframe(
        Section::Stream,
        &bytes[refs.info.stream.within(Section::Stream, len)?],
    )?;
    let stream = SplitStream {
        algorithm: refs.header.algorithm,
        content_type: refs.info.content_type,
        stream_size: refs.info.stream_size,
        named_refs: parse_names(&names, &refs.stream_refs)?,
        chunks: parse_chunks(&content, refs.object_refs.len())?,
        object_refs: refs.object_refs,
    };
    let again = encode(&stream).map_err(|e| ParseError::NotCanonical(e.to_string()))?;
    if again != bytes {
        let at = again
            .iter()
            .zip(bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(again.len().min(bytes.len()));
        return Err(ParseError::NotCanonical(format!(
            "differs from its encoding at byte {at} ({} bytes, encoding {})",
            bytes.len(),
            again.len()
        )));
    }
    Ok(stream)
}

/// The named references: `INDEX:NAME\0` records.
fn parse_names(
    text: &[u8],
    stream_refs: &[AnyDigest],
) -> Result<BTreeMap<String, AnyDigest>, ParseError> {
    let mut out = BTreeMap::new();
    let Some(body) = text.strip_suffix(b"\0") else {
        if text.is_empty() {
            return Ok(out);
        }
        return Err(ParseError::NamedRef {
            index: 0,
            reason: "the last record has no NUL terminator".into(),
        });
    };
    for (index, record) in body.split(|&b| b == 0).enumerate() {
        let bad = |reason: String| ParseError::NamedRef { index, reason };
        let record = std::str::from_utf8(record).map_err(|e| bad(format!("not UTF-8: {e}")))?;
        let (at, name) = record
            .split_once(':')
            .ok_or_else(|| bad("no ':' after the index".into()))?;
        let at: usize = at
            .parse()
            .map_err(|_| bad(format!("index {at:?} is not a number")))?;
        let digest = stream_refs.get(at).ok_or_else(|| {
            bad(format!(
                "index {at}, there are {} stream references",
                stream_refs.len()
            ))
        })?;
        if out.insert(name.to_owned(), *digest).is_some() {
            return Err(bad(format!("name {name:?} appears twice")));
        }
    }
    Ok(out)
}

/// The decompressed stream as chunks.
fn parse_chunks(content: &[u8], object_refs: usize) -> Result<Vec<Chunk>, ParseError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < content.len() {
        let bad = |reason: String| ParseError::Chunk { offset: at, reason };
        let Some(word) = content.get(at..at + 8) else {
            return Err(bad(format!(
                "{} bytes left, an instruction is 8",
                content.len() - at
            )));
        };
        let instr = i64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        let data = at + 8;
        if instr >= 0 {
            let index = usize::try_from(instr).unwrap_or(usize::MAX);
            if index >= object_refs {
                return Err(bad(format!(
                    "object reference {instr}, there are {object_refs}"
                )));
            }
            out.push(Chunk::External(index));
            at = data;
            continue;
        }
        let n = instr.unsigned_abs();
        let left = (content.len() - data) as u64;
        if n > left {
            return Err(bad(format!("{n} inline bytes, {left} left")));
        }
        // n <= left, a length in memory.
        let end = data + n as usize;
        out.push(Chunk::Inline(content[data..end].to_vec()));
        at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn d256(seed: u8) -> AnyDigest {
        AnyDigest::Sha256(Sha256Digest([seed; 32]))
    }

    pub(super) fn d512(seed: u8) -> AnyDigest {
        AnyDigest::Sha512(Sha512Digest([seed; 64]))
    }

    /// A stream laid out as composefs-rs lays it out, with these sections as given.
    fn assemble(
        stream_refs: &[AnyDigest],
        object_refs: &[AnyDigest],
        names: &[u8],
        content: &[u8],
    ) -> Vec<u8> {
        let (named, stream) = (frame(names), frame(content));
        let sr = 112 + 32 * stream_refs.len() as u64;
        let or = sr + 32 * object_refs.len() as u64;
        let nr = or + named.len() as u64;
        let end = nr + stream.len() as u64;
        let mut out = b"SplitStream\0\0\0\x01\x0c".to_vec();
        for v in [32, 112, 112, sr, sr, or, nr, end, or, nr, 0, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for d in stream_refs.iter().chain(object_refs) {
            out.extend_from_slice(d.as_bytes());
        }
        out.extend_from_slice(&named);
        out.extend_from_slice(&stream);
        out
    }

    fn sample() -> SplitStream {
        SplitStream {
            algorithm: HashAlgorithm::Sha256,
            content_type: 7,
            stream_size: 1234,
            object_refs: vec![d256(3), d256(1), d256(2)],
            named_refs: [("b".to_owned(), d256(9)), ("a".to_owned(), d256(8))]
                .into_iter()
                .collect(),
            chunks: vec![
                Chunk::Inline(b"head".to_vec()),
                Chunk::External(1),
                Chunk::External(1),
                Chunk::Inline(b"tail".to_vec()),
            ],
        }
    }

    #[test]
    fn byte_layout_of_a_small_stream() {
        let s = SplitStream {
            algorithm: HashAlgorithm::Sha256,
            content_type: 0x1122334455667788,
            stream_size: 5,
            object_refs: vec![d256(0xaa)],
            named_refs: BTreeMap::new(),
            chunks: vec![Chunk::External(0)],
        };
        let b = encode(&s).unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(b"SplitStream\0\0\0\x01\x0c");
        for v in [32u64, 112, 112, 112, 112, 144, 153, 170, 144, 153] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        want.extend_from_slice(&0x1122334455667788u64.to_le_bytes());
        want.extend_from_slice(&5u64.to_le_bytes());
        want.extend_from_slice(&[0xaa; 32]);
        // The empty named references, then the stream of one instruction, 0.
        want.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0x20, 0, 1, 0, 0]);
        want.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0x20, 8, 0x41, 0, 0]);
        want.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(b, want);
        assert_eq!(parse(&b).unwrap(), s);
    }

    #[test]
    fn round_trip_coalesces_inline_and_numbers_stream_refs_by_name() {
        let s = sample();
        let b = encode(&s).unwrap();
        let back = parse(&b).unwrap();
        assert_eq!(back.object_refs, s.object_refs);
        assert_eq!(back.named_refs, s.named_refs);
        assert_eq!(
            back.chunks,
            [
                Chunk::Inline(b"head".to_vec()),
                Chunk::External(1),
                Chunk::External(1),
                Chunk::Inline(b"tail".to_vec()),
            ]
        );
        let r = references(&b).unwrap();
        // "a" sorts first, so its digest is stream reference 0.
        assert_eq!(r.stream_refs, [d256(8), d256(9)]);
        assert_eq!(r.info.content_type, 7);
        assert_eq!(r.info.stream_size, 1234);

        let mut split = s.clone();
        split.chunks = vec![
            Chunk::Inline(b"he".to_vec()),
            Chunk::Inline(b"ad".to_vec()),
            Chunk::External(1),
            Chunk::External(1),
            Chunk::Inline(b"tail".to_vec()),
        ];
        assert_eq!(encode(&split).unwrap(), b);
    }

    #[test]
    fn sha512_streams() {
        let s = SplitStream {
            algorithm: HashAlgorithm::Sha512,
            content_type: 0,
            stream_size: 0,
            object_refs: vec![d512(1), d512(2)],
            named_refs: [("x".to_owned(), d512(3))].into_iter().collect(),
            chunks: vec![],
        };
        let b = encode(&s).unwrap();
        assert_eq!(b[14], 2);
        assert_eq!(parse(&b).unwrap(), s);
        assert_eq!(references(&b).unwrap().object_refs, [d512(1), d512(2)]);
    }

    #[test]
    fn encode_refuses_what_composefs_rs_cannot_express() {
        let mut s = sample();
        s.object_refs.push(d512(1));
        assert!(matches!(
            encode(&s),
            Err(EncodeError::MixedAlgorithms { .. })
        ));
        let mut s = sample();
        s.object_refs.push(d256(1));
        assert!(matches!(
            encode(&s),
            Err(EncodeError::DuplicateObjectRef(_))
        ));
        let mut s = sample();
        s.chunks.push(Chunk::External(3));
        assert!(matches!(
            encode(&s),
            Err(EncodeError::NoSuchObjectRef { index: 3, .. })
        ));
        let mut s = sample();
        s.chunks.push(Chunk::Inline(Vec::new()));
        assert_eq!(encode(&s), Err(EncodeError::EmptyInline(4)));
        for name in ["", "a\0b"] {
            let mut s = sample();
            s.named_refs.insert(name.to_owned(), d256(1));
            assert!(matches!(encode(&s), Err(EncodeError::BadName(_))));
        }
    }

    #[test]
    fn the_old_header_layout_reads_the_same() {
        let b = encode(&sample()).unwrap();
        let mut old = Vec::new();
        old.extend_from_slice(&b[16..32]);
        old.extend_from_slice(&b[12..14]);
        old.extend_from_slice(&b[0..11]);
        old.extend_from_slice(&b[11..12]);
        old.extend_from_slice(&b[14..16]);
        old.extend_from_slice(&b[32..]);
        let (new_refs, old_refs) = (references(&b).unwrap(), references(&old).unwrap());
        assert!(old_refs.header.old_layout && !new_refs.header.old_layout);
        assert_eq!(old_refs.object_refs, new_refs.object_refs);
        assert_eq!(old_refs.info, new_refs.info);
        // Canonical means the current layout.
        assert!(matches!(parse(&old), Err(ParseError::NotCanonical(_))));
    }

    #[test]
    fn header_and_range_errors() {
        let b = encode(&sample()).unwrap();
        assert!(matches!(
            references(&b[..10]),
            Err(ParseError::Truncated { .. })
        ));
        let mut x = b.clone();
        x[0] = b's';
        assert_eq!(references(&x), Err(ParseError::BadMagic));
        let mut x = b.clone();
        x[11] = 1;
        assert_eq!(references(&x), Err(ParseError::UnsupportedVersion(1)));
        let mut x = b.clone();
        x[14] = 3;
        assert_eq!(references(&x), Err(ParseError::UnknownAlgorithm(3)));
        let mut x = b.clone();
        x[15] = 16;
        assert_eq!(references(&x), Err(ParseError::UnsupportedBlockSize(16)));
        // `b` with the u64 at `at` set to `value`: the section its parse fails in, and how.
        let with_u64 = |at: usize, value: u64| {
            let mut x = b.clone();
            x[at..at + 8].copy_from_slice(&value.to_le_bytes());
            match references(&x) {
                Err(ParseError::BadRange { section, .. }) => Some(("range", section)),
                Err(ParseError::RaggedReferences { section, .. }) => Some(("ragged", section)),
                _ => None,
            }
        };
        // Object references ending past the file.
        assert_eq!(
            with_u64(32 + 24, u64::MAX),
            Some(("range", Section::ObjectRefs))
        );
        // Object references of a partial digest.
        assert_eq!(
            with_u64(32 + 24, u64_at(&b, 32 + 24) - 1),
            Some(("ragged", Section::ObjectRefs))
        );
        // A range that ends before it starts.
        assert_eq!(
            with_u64(32 + 32, u64::MAX),
            Some(("range", Section::Stream))
        );
    }

    #[test]
    fn parse_is_strict_about_names_chunks_and_layout() {
        let s = sample();
        let b = encode(&s).unwrap();
        let r = references(&b).unwrap();
        // Flags are ignored by composefs-rs but not written by anyone.
        let mut x = b.clone();
        x[12] = 1;
        assert!(matches!(parse(&x), Err(ParseError::NotCanonical(_))));
        assert!(references(&x).is_ok());
        // A bigger info section: composefs-rs ignores the rest; not ours.
        let mut x = b.clone();
        x.push(0);
        assert!(matches!(parse(&x), Err(ParseError::NotCanonical(_))));

        let bad_names: [&[u8]; 5] = [b"0:a\x001:b", b"0a\0", b"x:a\0", b"5:a\0", b"0:a\x000:a\0"];
        for text in bad_names {
            let e = parse_names(text, &r.stream_refs).unwrap_err();
            assert!(matches!(e, ParseError::NamedRef { .. }), "{e}");
        }
        // Stream references no name uses: cfsctl would not follow them.
        let x = assemble(
            &[d256(8), d256(9)],
            &[d256(1)],
            b"0:a\0",
            &0i64.to_le_bytes(),
        );
        assert!(references(&x).is_ok());
        assert!(matches!(parse(&x), Err(ParseError::NotCanonical(_))));
        // The same with both named is what encode writes.
        let x = assemble(
            &[d256(8), d256(9)],
            &[d256(1)],
            b"0:a\x001:b\0",
            &0i64.to_le_bytes(),
        );
        let s = parse(&x).unwrap();
        assert_eq!(s.named_refs.len(), 2);
        assert_eq!(encode(&s).unwrap(), x);
        // An index with a sign or leading zero is another spelling.
        let x = assemble(&[d256(8)], &[], b"+0:a\0", &[]);
        assert!(matches!(parse(&x), Err(ParseError::NotCanonical(_))));

        for (content, want) in [
            (vec![1u8, 2, 3], "instruction"),
            ((-5i64).to_le_bytes().to_vec(), "inline bytes"),
            (3i64.to_le_bytes().to_vec(), "object reference 3"),
            (i64::MIN.to_le_bytes().to_vec(), "inline bytes"),
        ] {
            let e = parse_chunks(&content, 3).unwrap_err().to_string();
            assert!(e.contains(want), "{e} lacks {want}");
        }
    }

    #[test]
    fn no_input_prefix_panics() {
        let b = encode(&sample()).unwrap();
        for n in 0..b.len() {
            let _ = references(&b[..n]);
            assert!(parse(&b[..n]).is_err());
        }
        // Every single-byte change is refused or read back to the same bytes.
        for i in 0..b.len() {
            let mut x = b.clone();
            x[i] ^= 0x41;
            if let Ok(s) = parse(&x) {
                assert_eq!(encode(&s).unwrap(), x);
            }
        }
    }
}
