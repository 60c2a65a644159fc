//! The digest cache: the fs-verity digest of each file already read, keyed on what `stat`
//! says about it, so that building the same tree again reads only the files that changed (as
//! ostree's devino cache does for its commits).
//!
//! # When an entry is right
//!
//! An entry says: the regular file with this device, inode number, size, mtime and ctime
//! (both with nanoseconds) has this digest. Writing to a file, truncating it, renaming it,
//! linking it or changing its attributes all set its ctime to the current time, and nobody
//! can set a ctime by hand; a file that replaces another at the same inode number is created
//! after it, so it has a later ctime too. So as long as every change of a file gives it a
//! ctime it did not have when it was read, an entry stays right for ever.
//!
//! That fails only for a change made within the same tick of the filesystem's clock as the
//! state that was read: timestamps come from a coarse clock, and some filesystems keep only
//! seconds (or, for FAT, two seconds). So an entry is made only for a file whose ctime was
//! at least [`RACY_WINDOW`] older than the moment its reading began, just as git distrusts
//! index entries as new as the index ("racily clean" entries); a file changed less than that
//! before a build is simply read again by the next one. The content is also read between two
//! `stat`s that must agree. Lookups ignore entries newer than the window too, in case the
//! clock went back.
//!
//! What this does not cover: a system clock set back by hand to the exact nanosecond of an
//! entry, and a network filesystem whose server clock runs more than [`RACY_WINDOW`] behind
//! this machine's.
//!
//! # Which entries are kept
//!
//! A cache remembers what it loaded, but only the entries looked up with a hit or added
//! since it was made or loaded are [saved](DigestCache::save): entries of files that are
//! gone, or that changed, drop out with the next save, so the file does not grow for ever.
//!
//! # The file
//!
//! Little-endian throughout:
//!
//! ```text
//! offset  size     field
//! 0       16       magic "sealroot-devino\n"
//! 16      4        format version (1)
//! 20      4        digest kind: fs-verity, 4 KiB blocks, no salt, with
//!                    1: sha256 (composefs's), 2: sha512 (a sha512 repository's)
//! 24      8        number of entries N
//! 32      E * N    entries, sorted by key, no key twice (E = 48 + the digest size: 80 or 112):
//!                    dev u64, ino u64, size u64,
//!                    mtime seconds i64, mtime nanoseconds u32,
//!                    ctime seconds i64, ctime nanoseconds u32,
//!                    digest [u8; 32 or 64]
//! 32+E*N  32       fs-verity sha256 digest (composefs parameters) of all the bytes before it
//! ```
//!
//! A cache holds digests of one algorithm ([`DigestCache::algorithm`]): it does not take
//! digests of another, and a build refuses a cache of another algorithm than its own.
//!
//! A file that is too large, has another magic, version or digest kind, a length that is not
//! the one its count gives, a bad checksum, a nanosecond count of a second or more, or a key
//! twice is refused as a whole and [`load`](DigestCache::load) starts empty: a wrong entry
//! would make a build wrong, a missing one only slower. The file is written to a temporary
//! name in the same directory and renamed over the old one; it is not flushed to disk, since
//! a file torn by a crash fails its checksum, and every entry of any complete file is right.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, Mode, OFlags};
use sealroot_objects::FileIdentity;
use sealroot_verity::{AnyDigest, HashAlgorithm};

/// How much older than the start of its reading a file's ctime must be for its digest to be
/// cached: more than the coarsest timestamp granularity of a Linux filesystem (FAT's two
/// seconds) plus the lag of the kernel's coarse clock.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// The first bytes of a cache file.
const MAGIC: [u8; 16] = *b"sealroot-devino\n";
/// The version of the file format this code writes and reads.
const FORMAT_VERSION: u32 = 1;
/// Magic, version, digest kind, entry count.
const HEADER_SIZE: usize = 16 + 4 + 4 + 8;
/// dev, ino, size, mtime (8 + 4), ctime (8 + 4): an entry before its digest.
const KEY_SIZE: usize = 8 + 8 + 8 + 12 + 12;
/// The largest entry: with a sha512 digest.
const ENTRY_SIZE_MAX: usize = KEY_SIZE + 64;
/// The checksum at the end.
const CHECKSUM_SIZE: usize = 32;
/// The most entries a cache file may hold (a file of 1.3 GB): 150 times a whole /usr, and a
/// bound on what a foreign or damaged file can make [`DigestCache::load`] read.
pub const MAX_ENTRIES: u64 = 1 << 24;
/// A file's largest possible size.
const MAX_FILE_SIZE: u64 =
    (HEADER_SIZE + CHECKSUM_SIZE) as u64 + MAX_ENTRIES * ENTRY_SIZE_MAX as u64;

/// The digest kind of the file for `algorithm` (fs-verity, 4 KiB blocks, no salt).
const fn digest_kind(algorithm: HashAlgorithm) -> u32 {
    match algorithm {
        HashAlgorithm::Sha256 => 1,
        HashAlgorithm::Sha512 => 2,
    }
}

/// The algorithm of digest kind `kind`, if it is one.
const fn kind_algorithm(kind: u32) -> Option<HashAlgorithm> {
    match kind {
        1 => Some(HashAlgorithm::Sha256),
        2 => Some(HashAlgorithm::Sha512),
        _ => None,
    }
}
/// The most nanoseconds a timestamp may have.
const NSEC_MAX: u32 = 999_999_999;

/// Makes temporary file names unique within this process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A cache key: the identity of one state of a file (see [`FileIdentity`]), written in
/// the file as its fields in order.
pub type FileKey = FileIdentity;

/// Whether `key`'s ctime is older than `now` by more than [`RACY_WINDOW`], so that any later
/// change of the file gives it another ctime.
fn settled(key: &FileKey, now: SystemTime) -> bool {
    let Ok(now) = now.duration_since(SystemTime::UNIX_EPOCH) else {
        return false;
    };
    let Ok(now_sec) = i64::try_from(now.as_secs()) else {
        return false;
    };
    let Some(limit_sec) = key.ctime_sec.checked_add(RACY_WINDOW.as_secs() as i64) else {
        return false;
    };
    (limit_sec, key.ctime_nsec) < (now_sec, now.subsec_nanos())
}

/// Why a cache file was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheFormatError {
    /// It does not start with the cache magic.
    #[error("not a sealroot digest cache")]
    BadMagic,
    /// It has another format version.
    #[error("format version {found}, this sealroot knows only version {FORMAT_VERSION}")]
    Version {
        /// The file's version.
        found: u32,
    },
    /// It records digests of another kind.
    #[error("unknown digest kind {0}")]
    DigestKind(u32),
    /// It announces more entries than [`MAX_ENTRIES`], or is larger than that many need.
    #[error("too large ({0} entries or more)")]
    TooLarge(u64),
    /// Its length is not what its entry count gives.
    #[error("{len} bytes, but {count} entries need {expected}")]
    Length {
        /// The file's length.
        len: u64,
        /// The entry count of its header.
        count: u64,
        /// The length that count needs.
        expected: u64,
    },
    /// Its checksum does not match its content.
    #[error("checksum mismatch")]
    Checksum,
    /// An entry's timestamp has a billion nanoseconds or more.
    #[error("entry {0}: nanoseconds out of range")]
    Timestamp(u64),
    /// An entry has the key of an earlier one.
    #[error("entry {0}: the same file twice")]
    Duplicate(u64),
}

/// Why a cache could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Reading the file failed.
    #[error("reading digest cache {}: {source}", path.display())]
    Read {
        /// The cache file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The file is not a valid cache (see [`CacheFormatError`]).
    #[error("digest cache {}: {source}", path.display())]
    Invalid {
        /// The cache file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: CacheFormatError,
    },
    /// Writing the file (or its temporary file, `path`) failed.
    #[error("writing digest cache {}: {source}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
}

/// Digests of files read before, by [`FileKey`]; see the [module documentation](self) for
/// when an entry is made and trusted. It is shared by the threads of a build (all methods
/// take `&self`).
#[derive(Default)]
pub struct DigestCache {
    /// The algorithm of every digest.
    algorithm: HashAlgorithm,
    /// What was loaded: read only.
    loaded: HashMap<FileKey, AnyDigest>,
    /// What was looked up with a hit, or added, since: what [`DigestCache::save`] writes.
    seen: Mutex<HashMap<FileKey, AnyDigest>>,
}

impl fmt::Debug for DigestCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestCache")
            .field("algorithm", &self.algorithm)
            .field("loaded", &self.loaded.len())
            .field("seen", &self.seen_len())
            .finish()
    }
}

impl DigestCache {
    /// An empty cache of sha256 digests (composefs's).
    pub fn new() -> Self {
        DigestCache::default()
    }

    /// An empty cache of `algorithm` digests.
    pub fn for_algorithm(algorithm: HashAlgorithm) -> Self {
        DigestCache {
            algorithm,
            ..DigestCache::default()
        }
    }

    /// The algorithm of the digests it holds.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<FileKey, AnyDigest>> {
        // The map is consistent after every operation on it, so a panic elsewhere while it
        // was locked leaves nothing half done.
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn seen_len(&self) -> usize {
        self.seen().len()
    }

    /// The digest recorded for the file in state `key`, if any (and if its ctime is settled);
    /// a hit keeps the entry for the next [`save`](DigestCache::save).
    pub fn lookup(&self, key: &FileKey) -> Option<AnyDigest> {
        if !settled(key, SystemTime::now()) {
            return None;
        }
        if let Some(&digest) = self.loaded.get(key) {
            self.seen().insert(*key, digest);
            return Some(digest);
        }
        self.seen().get(key).copied()
    }

    /// Records that the file in state `key` has `digest`, read starting at `read_started`
    /// (no later: the file's `stat` must have given `key` before, and again after, the read).
    /// Returns whether the entry was made: not if the ctime is within [`RACY_WINDOW`] of
    /// `read_started`, since a change in the same clock tick would not show, nor if the
    /// digest is not of the cache's algorithm.
    pub fn insert(&self, key: FileKey, digest: AnyDigest, read_started: SystemTime) -> bool {
        if !settled(&key, read_started) || digest.algorithm() != self.algorithm {
            return false;
        }
        self.seen().insert(key, digest);
        true
    }

    /// The number of entries that a save would write.
    pub fn len(&self) -> usize {
        self.seen_len()
    }

    /// Whether a save would write no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Parses a cache file's content; its entries become lookups' to find (see the [module
    /// documentation](self) for the format and what is refused).
    pub fn parse(bytes: &[u8]) -> Result<DigestCache, CacheFormatError> {
        if bytes.len() < HEADER_SIZE + CHECKSUM_SIZE || bytes[..16] != MAGIC {
            return Err(CacheFormatError::BadMagic);
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4"));
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
        let version = u32_at(16);
        if version != FORMAT_VERSION {
            return Err(CacheFormatError::Version { found: version });
        }
        let kind = u32_at(20);
        let algorithm = kind_algorithm(kind).ok_or(CacheFormatError::DigestKind(kind))?;
        let entry_size = KEY_SIZE + algorithm.digest_size();
        let count = u64_at(24);
        if count > MAX_ENTRIES {
            return Err(CacheFormatError::TooLarge(count));
        }
        // Bounded by MAX_ENTRIES: no overflow.
        let expected = (HEADER_SIZE + CHECKSUM_SIZE) as u64 + count * entry_size as u64;
        if bytes.len() as u64 != expected {
            return Err(CacheFormatError::Length {
                len: bytes.len() as u64,
                count,
                expected,
            });
        }
        let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_SIZE);
        if sealroot_verity::sha256_digest(body).0[..] != checksum[..] {
            return Err(CacheFormatError::Checksum);
        }

        let mut loaded = HashMap::with_capacity(count as usize);
        for (index, e) in body[HEADER_SIZE..].chunks_exact(entry_size).enumerate() {
            let index = index as u64;
            let u64_of = |at: usize| u64::from_le_bytes(e[at..at + 8].try_into().expect("8"));
            let u32_of = |at: usize| u32::from_le_bytes(e[at..at + 4].try_into().expect("4"));
            let key = FileKey {
                dev: u64_of(0),
                ino: u64_of(8),
                size: u64_of(16),
                mtime_sec: u64_of(24) as i64,
                mtime_nsec: u32_of(32),
                ctime_sec: u64_of(36) as i64,
                ctime_nsec: u32_of(44),
            };
            if key.mtime_nsec > NSEC_MAX || key.ctime_nsec > NSEC_MAX {
                return Err(CacheFormatError::Timestamp(index));
            }
            let digest = AnyDigest::from_slice(algorithm, &e[KEY_SIZE..])
                .expect("entries are split at the digest size");
            if loaded.insert(key, digest).is_some() {
                return Err(CacheFormatError::Duplicate(index));
            }
        }
        Ok(DigestCache {
            algorithm,
            loaded,
            seen: Mutex::default(),
        })
    }

    /// Writes the entries a save keeps (those looked up with a hit or added), in the file
    /// format, sorted by key.
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let mut entries: Vec<(FileKey, AnyDigest)> =
            self.seen().iter().map(|(k, d)| (*k, *d)).collect();
        entries.sort_unstable_by_key(|e| e.0);
        let entry_size = KEY_SIZE + self.algorithm.digest_size();
        let mut bytes =
            Vec::with_capacity(HEADER_SIZE + entries.len() * entry_size + CHECKSUM_SIZE);
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&digest_kind(self.algorithm).to_le_bytes());
        bytes.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        for (k, d) in &entries {
            bytes.extend_from_slice(&k.dev.to_le_bytes());
            bytes.extend_from_slice(&k.ino.to_le_bytes());
            bytes.extend_from_slice(&k.size.to_le_bytes());
            bytes.extend_from_slice(&k.mtime_sec.to_le_bytes());
            bytes.extend_from_slice(&k.mtime_nsec.to_le_bytes());
            bytes.extend_from_slice(&k.ctime_sec.to_le_bytes());
            bytes.extend_from_slice(&k.ctime_nsec.to_le_bytes());
            bytes.extend_from_slice(d.as_bytes());
        }
        let checksum = sealroot_verity::sha256_digest(&bytes);
        bytes.extend_from_slice(&checksum.0);
        out.write_all(&bytes)
    }

    /// Loads the cache file at `path`. A cache is never needed, so this never fails: a missing
    /// file gives an empty cache; a file that cannot be read or is not a valid cache gives an
    /// empty cache and, as the second value, why it was ignored (for a warning).
    pub fn load(path: &Path) -> (DigestCache, Option<CacheError>) {
        match Self::try_load(path) {
            Ok(cache) => (cache, None),
            Err(CacheError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                (DigestCache::new(), None)
            }
            Err(e) => (DigestCache::new(), Some(e)),
        }
    }

    fn try_load(path: &Path) -> Result<DigestCache, CacheError> {
        let read_err = |source: io::Error| CacheError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut bytes = Vec::new();
        // One byte more than the largest valid file, to tell a larger one.
        file.take(MAX_FILE_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MAX_FILE_SIZE {
            return Err(CacheError::Invalid {
                path: path.to_owned(),
                source: CacheFormatError::TooLarge(MAX_ENTRIES),
            });
        }
        DigestCache::parse(&bytes).map_err(|source| CacheError::Invalid {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the entries looked up with a hit or added (see [`write`](DigestCache::write))
    /// to `path`, atomically: to a new temporary file beside it, then renamed over it. Its
    /// directory must exist.
    pub fn save(&self, path: &Path) -> Result<(), CacheError> {
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = PathBuf::from(tmp_name);
        let write_err = |path: &Path, e: io::Error| CacheError::Write {
            path: path.to_owned(),
            source: e,
        };
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&tmp, flags, Mode::from_raw_mode(0o600))
            .map_err(|e| write_err(&tmp, e.into()))?;
        let mut file = std::fs::File::from(fd);
        let written = self
            .write(&mut file)
            .and_then(|()| {
                drop(file);
                rustix::fs::rename(&tmp, path).map_err(io::Error::from)
            })
            .map_err(|e| write_err(&tmp, e));
        if written.is_err() {
            // Best effort: the error that matters is the one returned.
            let _ = rustix::fs::unlinkat(rustix::fs::CWD, &tmp, AtFlags::empty());
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ino: u64, ctime_sec: i64) -> FileKey {
        FileKey {
            dev: 0x803,
            ino,
            size: 4096 + ino,
            mtime_sec: 1_600_000_000,
            mtime_nsec: 5,
            ctime_sec,
            ctime_nsec: 999_999_999,
        }
    }

    /// The size of an entry with a sha256 digest.
    const ENTRY_SIZE: usize = KEY_SIZE + 32;

    fn digest(n: u8) -> AnyDigest {
        AnyDigest::Sha256(sealroot_verity::Sha256Digest([n; 32]))
    }

    fn digest512(n: u8) -> AnyDigest {
        AnyDigest::Sha512(sealroot_verity::Sha512Digest([n; 64]))
    }

    fn long_ago() -> i64 {
        1_700_000_000
    }

    fn bytes_of(cache: &DigestCache) -> Vec<u8> {
        let mut out = Vec::new();
        cache.write(&mut out).unwrap();
        out
    }

    #[test]
    fn round_trip_keeps_only_what_was_seen() {
        let now = SystemTime::now();
        let cache = DigestCache::new();
        assert!(cache.insert(key(1, long_ago()), digest(1), now));
        assert!(cache.insert(key(2, long_ago()), digest(2), now));
        assert!(cache.insert(key(3, long_ago()), digest(3), now));
        let bytes = bytes_of(&cache);
        assert_eq!(bytes.len(), HEADER_SIZE + 3 * ENTRY_SIZE + CHECKSUM_SIZE);

        let again = DigestCache::parse(&bytes).unwrap();
        assert!(again.is_empty(), "nothing seen yet");
        assert_eq!(again.lookup(&key(2, long_ago())), Some(digest(2)));
        assert_eq!(again.lookup(&key(1, long_ago())), Some(digest(1)));
        assert_eq!(again.lookup(&key(4, long_ago())), None);
        // Another ctime is another state.
        assert_eq!(again.lookup(&key(3, long_ago() + 1)), None);
        assert_eq!(again.len(), 2);
        let third = DigestCache::parse(&bytes_of(&again)).unwrap();
        assert_eq!(third.lookup(&key(3, long_ago())), None, "3 was not seen");
        assert_eq!(third.lookup(&key(1, long_ago())), Some(digest(1)));
        // Written sorted, so the same entries give the same bytes.
        let a = DigestCache::new();
        let b = DigestCache::new();
        for i in 0..50 {
            a.insert(key(i, long_ago()), digest(i as u8), now);
            b.insert(key(49 - i, long_ago()), digest(49 - i as u8), now);
        }
        assert_eq!(bytes_of(&a), bytes_of(&b));
    }

    #[test]
    fn sha512_caches_keep_sha512_digests_only() {
        let now = SystemTime::now();
        let cache = DigestCache::for_algorithm(HashAlgorithm::Sha512);
        assert!(cache.insert(key(1, long_ago()), digest512(1), now));
        assert!(
            !cache.insert(key(2, long_ago()), digest(2), now),
            "another algorithm"
        );
        let bytes = bytes_of(&cache);
        assert_eq!(bytes.len(), HEADER_SIZE + KEY_SIZE + 64 + CHECKSUM_SIZE);
        assert_eq!(bytes[20..24], 2u32.to_le_bytes());
        let again = DigestCache::parse(&bytes).unwrap();
        assert_eq!(again.algorithm(), HashAlgorithm::Sha512);
        assert_eq!(again.lookup(&key(1, long_ago())), Some(digest512(1)));
        assert_eq!(again.lookup(&key(2, long_ago())), None);
        // A sha256 cache says so, and its bytes are what they always were.
        let plain = DigestCache::new();
        assert_eq!(plain.algorithm(), HashAlgorithm::Sha256);
        assert!(!plain.insert(key(1, long_ago()), digest512(1), now));
        assert!(plain.insert(key(1, long_ago()), digest(1), now));
        assert_eq!(bytes_of(&plain)[20..24], 1u32.to_le_bytes());
    }

    #[test]
    fn racy_entries_are_neither_made_nor_trusted() {
        let now = SystemTime::now();
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let cache = DigestCache::new();
        // Changed one second before the read began: a change in the same tick would not show.
        assert!(!cache.insert(key(1, secs - 1), digest(1), now));
        // In the future (a clock that went back).
        assert!(!cache.insert(key(2, secs + 100), digest(2), now));
        assert!(cache.insert(key(3, secs - 3), digest(3), now));
        assert_eq!(cache.len(), 1);
        // An entry from a file whose ctime is now in the future is not trusted.
        let future = DigestCache::new();
        future.seen().insert(key(4, secs + 100), digest(4));
        let parsed = DigestCache::parse(&bytes_of(&future)).unwrap();
        assert_eq!(parsed.lookup(&key(4, secs + 100)), None);
    }

    #[test]
    fn damaged_files_are_refused() {
        let now = SystemTime::now();
        let cache = DigestCache::new();
        cache.insert(key(1, long_ago()), digest(1), now);
        cache.insert(key(2, long_ago()), digest(2), now);
        let good = bytes_of(&cache);
        assert!(DigestCache::parse(&good).is_ok());

        // Every single flipped bit is caught.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            assert!(DigestCache::parse(&bad).is_err(), "byte {i}");
        }
        // Every truncation, and trailing garbage.
        for n in 0..good.len() {
            assert!(DigestCache::parse(&good[..n]).is_err(), "{n} bytes");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(
            DigestCache::parse(&longer),
            Err(CacheFormatError::Length { .. })
        ));

        /// `good` with its header's field at `at` replaced and the checksum made right again.
        fn resealed(good: &[u8], at: usize, value: &[u8]) -> Vec<u8> {
            let mut b = good[..good.len() - CHECKSUM_SIZE].to_vec();
            b[at..at + value.len()].copy_from_slice(value);
            let sum = sealroot_verity::sha256_digest(&b);
            b.extend_from_slice(&sum.0);
            b
        }
        let r = DigestCache::parse(&resealed(&good, 16, &2u32.to_le_bytes()));
        assert_eq!(r.err(), Some(CacheFormatError::Version { found: 2 }));
        let r = DigestCache::parse(&resealed(&good, 20, &7u32.to_le_bytes()));
        assert_eq!(r.err(), Some(CacheFormatError::DigestKind(7)));
        let r = DigestCache::parse(&resealed(&good, 24, &u64::MAX.to_le_bytes()));
        assert_eq!(r.err(), Some(CacheFormatError::TooLarge(u64::MAX)));
        let r = DigestCache::parse(&resealed(&good, 24, &3u64.to_le_bytes()));
        assert!(matches!(r, Err(CacheFormatError::Length { count: 3, .. })));
        // Entry 1's ctime nanoseconds, then entry 1 made equal to entry 0.
        let at = HEADER_SIZE + ENTRY_SIZE + 44;
        let r = DigestCache::parse(&resealed(&good, at, &1_000_000_000u32.to_le_bytes()));
        assert_eq!(r.err(), Some(CacheFormatError::Timestamp(1)));
        let first = good[HEADER_SIZE..HEADER_SIZE + ENTRY_SIZE].to_vec();
        let r = DigestCache::parse(&resealed(&good, HEADER_SIZE + ENTRY_SIZE, &first));
        assert_eq!(r.err(), Some(CacheFormatError::Duplicate(1)));
    }

    #[test]
    fn load_and_save() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("devino");
        let (empty, warning) = DigestCache::load(&path);
        assert!(warning.is_none(), "a missing file is no problem");
        assert!(empty.is_empty());

        empty.insert(key(7, long_ago()), digest(7), SystemTime::now());
        empty.save(&path).unwrap();
        empty.save(&path).unwrap();
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["devino"], "no temporary file is left");
        let (loaded, warning) = DigestCache::load(&path);
        assert!(warning.is_none());
        assert_eq!(loaded.lookup(&key(7, long_ago())), Some(digest(7)));

        std::fs::write(&path, b"{\"not\": \"a cache\"}").unwrap();
        let (loaded, warning) = DigestCache::load(&path);
        assert!(matches!(
            warning,
            Some(CacheError::Invalid {
                source: CacheFormatError::BadMagic,
                ..
            })
        ));
        assert_eq!(loaded.lookup(&key(7, long_ago())), None);

        // A directory in the way: the save fails and leaves no temporary file.
        let dir = tmp.path().join("dir");
        std::fs::create_dir_all(dir.join("devino/x")).unwrap();
        assert!(matches!(
            empty.save(&dir.join("devino")),
            Err(CacheError::Write { .. })
        ));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }
}
