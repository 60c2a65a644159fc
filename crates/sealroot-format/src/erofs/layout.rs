//! On-disk constants and little helpers of the EROFS format as composefs uses it.
//!
//! The names follow `erofs_fs.h` (Linux `fs/erofs/erofs_fs.h`) and the C composefs headers so
//! that the writer and the reader can be checked against them line by line.

use sealroot_verity::{AnyDigest, HashAlgorithm};

/// The EROFS block size composefs always uses.
pub const BLOCK_SIZE: u64 = 4096;
/// log2 of [`BLOCK_SIZE`].
pub const BLOCK_SIZE_BITS: u32 = 12;
/// Inodes start on 32-byte slots; a nid is a slot number.
pub const SLOT_SIZE: u64 = 32;
/// log2 of [`SLOT_SIZE`].
pub const SLOT_BITS: u32 = 5;
/// Where the EROFS superblock starts; the first 1024 bytes hold the composefs header.
pub const SUPER_OFFSET: u64 = 1024;
/// Size of `struct erofs_super_block`.
pub const SUPER_SIZE: u64 = 128;
/// Offset of `dirblkbits` in the superblock (directory block size beyond the block size: the
/// kernel mounts only 0).
pub const SUPER_DIRBLKBITS_OFFSET: u64 = 90;
/// Size of `struct erofs_inode_compact`.
pub const INODE_COMPACT_SIZE: u64 = 32;
/// Size of `struct erofs_inode_extended`.
pub const INODE_EXTENDED_SIZE: u64 = 64;
/// Size of `struct erofs_xattr_ibody_header`.
pub const XATTR_HEADER_SIZE: u64 = 12;
/// Size of `struct erofs_xattr_entry` (also of one shared-xattr reference).
pub const XATTR_ENTRY_SIZE: u64 = 4;
/// Size of `struct erofs_dirent`.
pub const DIRENT_SIZE: u64 = 12;
/// Size of the composefs header (`struct lcfs_erofs_header_s`) at offset 0.
pub const COMPOSEFS_HEADER_SIZE: usize = 32;

/// `EROFS_SUPER_MAGIC_V1`.
pub const EROFS_MAGIC: u32 = 0xE0F5_E1E2;
/// `LCFS_EROFS_MAGIC`: the composefs header magic.
pub const COMPOSEFS_MAGIC: u32 = 0xd078_629a;
/// `LCFS_EROFS_VERSION`: the version of the composefs header layout.
pub const COMPOSEFS_HEADER_VERSION: u32 = 1;
/// `LCFS_EROFS_FLAGS_HAS_ACL`: some inode carries a POSIX ACL (mount with `acl`).
pub const COMPOSEFS_FLAG_HAS_ACL: u32 = 1;
/// The highest composefs format version this code writes and reads.
pub const COMPOSEFS_VERSION_MAX: u32 = 1;

/// `EROFS_FEATURE_COMPAT_MTIME`: extended inodes carry an mtime.
pub const FEATURE_COMPAT_MTIME: u32 = 0x2;
/// `EROFS_FEATURE_COMPAT_XATTR_FILTER`: inodes carry an xattr-name bloom filter.
pub const FEATURE_COMPAT_XATTR_FILTER: u32 = 0x4;

/// `EROFS_INODE_FLAT_PLAIN`: data in whole blocks at `raw_blkaddr`.
pub const LAYOUT_FLAT_PLAIN: u16 = 0;
/// `EROFS_INODE_FLAT_INLINE`: whole blocks plus a tail right after the inode.
pub const LAYOUT_FLAT_INLINE: u16 = 2;
/// `EROFS_INODE_CHUNK_BASED`: a chunk index (composefs: all holes, data comes from overlayfs).
pub const LAYOUT_CHUNK_BASED: u16 = 4;
/// Bit of `i_format` holding the inode version (0 compact, 1 extended).
pub const I_VERSION_BIT: u16 = 0;
/// Bit of `i_format` where the data layout starts.
pub const I_DATALAYOUT_BIT: u16 = 1;
/// `EROFS_CHUNK_FORMAT_BLKBITS_MASK`.
pub const CHUNK_FORMAT_BLKBITS_MASK: u32 = 0x1f;
/// The highest size an inode may have: the kernel takes `i_size` as a signed `loff_t` and
/// refuses an image with a "negative i_size" (2^63 or more) when it meets that inode.
pub const I_SIZE_MAX: u64 = i64::MAX as u64;
/// `EROFS_CHUNK_FORMAT_INDEXES`: chunk indexes rather than a plain block map (never written).
pub const CHUNK_FORMAT_INDEXES: u16 = 0x20;
/// `EROFS_NULL_ADDR`: a hole in a block map.
pub const NULL_ADDR: u32 = 0xffff_ffff;
/// `LCFS_MAX_NONINLINE_CHUNKS`: the chunk index of an external file must fit one block.
pub const MAX_NONINLINE_CHUNKS: u64 = 1024;

/// `EROFS_XATTR_FILTER_SEED`.
pub const XATTR_FILTER_SEED: u32 = 0x25BB_E08F;
/// `EROFS_XATTR_FILTER_BITS`.
pub const XATTR_FILTER_BITS: u32 = 32;
/// `EROFS_XATTR_LONG_PREFIX`: C composefs shares at most this many xattrs per inode.
pub const XATTR_MAX_SHARED_PER_INODE: usize = 0x80;

/// The xattr name prefixes EROFS abbreviates to an index, in the order C composefs tries them.
pub const XATTR_PREFIXES: [(&[u8], u8); 5] = [
    (b"user.", 1),
    (b"system.posix_acl_access", 2),
    (b"system.posix_acl_default", 3),
    (b"trusted.", 4),
    (b"security.", 6),
];

/// The prefix of xattr index `index`, as the reader expands it.
pub fn xattr_prefix(index: u8) -> Option<&'static [u8]> {
    XATTR_PREFIXES
        .iter()
        .find(|(_, i)| *i == index)
        .map(|(p, _)| *p)
}

/// Splits an xattr name into its EROFS prefix index and the rest (index 0: no prefix).
pub fn xattr_split(name: &[u8]) -> (u8, &[u8]) {
    for (prefix, index) in XATTR_PREFIXES {
        if let Some(rest) = name.strip_prefix(prefix) {
            return (index, rest);
        }
    }
    (0, name)
}

/// The xattr that makes an external file's content come from a lower layer
/// (`OVL_XATTR_METACOPY`), carrying its fs-verity digest for `verity=require`.
pub const OVERLAY_METACOPY: &[u8] = b"trusted.overlay.metacopy";
/// The bytes of `struct ovl_metacopy` before the digest: version, length, flags, algorithm.
pub const METACOPY_HEADER_SIZE: usize = 4;

/// The value of [`OVERLAY_METACOPY`] for an external file with fs-verity digest `digest`:
/// `struct ovl_metacopy` (version 0, its whole length, flags 0, the kernel's
/// `FS_VERITY_HASH_ALG_*`) and the digest. C composefs writes sha256 digests only (36
/// bytes); composefs-rs writes sha512 ones the same way (68 bytes), and overlayfs checks
/// either.
pub fn metacopy_value(digest: &AnyDigest) -> Vec<u8> {
    let bytes = digest.as_bytes();
    let mut value = Vec::with_capacity(METACOPY_HEADER_SIZE + bytes.len());
    value.extend_from_slice(&metacopy_header(digest.algorithm()));
    value.extend_from_slice(bytes);
    value
}

/// The digest of an [`OVERLAY_METACOPY`] value, as the reader takes it. 36 bytes are a sha256
/// digest after the header whatever the header says, as C `composefs-info` reads them; 68
/// bytes are a sha512 digest when the header is exactly what [`metacopy_value`] writes (so
/// that writing it again gives the same bytes). Anything else carries no digest.
pub fn metacopy_digest(value: &[u8]) -> Option<AnyDigest> {
    let (header, digest) = value.split_at_checked(METACOPY_HEADER_SIZE)?;
    match digest.len() {
        32 => AnyDigest::from_slice(HashAlgorithm::Sha256, digest).ok(),
        64 if header == metacopy_header(HashAlgorithm::Sha512) => {
            AnyDigest::from_slice(HashAlgorithm::Sha512, digest).ok()
        }
        _ => None,
    }
}

/// The header [`metacopy_value`] writes for a digest of `algorithm`.
pub fn metacopy_header(algorithm: HashAlgorithm) -> [u8; METACOPY_HEADER_SIZE] {
    let len = METACOPY_HEADER_SIZE + algorithm.digest_size();
    [0, len as u8, 0, algorithm.kernel_id()]
}

/// EROFS directory-entry file types (`EROFS_FT_*`).
pub mod ft {
    /// Unknown.
    pub const UNKNOWN: u8 = 0;
    /// Regular file.
    pub const REG_FILE: u8 = 1;
    /// Directory.
    pub const DIR: u8 = 2;
    /// Character device.
    pub const CHRDEV: u8 = 3;
    /// Block device.
    pub const BLKDEV: u8 = 4;
    /// Fifo.
    pub const FIFO: u8 = 5;
    /// Socket.
    pub const SOCK: u8 = 6;
    /// Symbolic link.
    pub const SYMLINK: u8 = 7;

    /// The directory-entry type of an inode with `mode`.
    pub fn of_mode(mode: u32) -> u8 {
        use crate::tree::FileType;
        match FileType::from_mode(mode) {
            Some(FileType::Regular) => REG_FILE,
            Some(FileType::Directory) => DIR,
            Some(FileType::CharDevice) => CHRDEV,
            Some(FileType::BlockDevice) => BLKDEV,
            Some(FileType::Fifo) => FIFO,
            Some(FileType::Socket) => SOCK,
            Some(FileType::Symlink) => SYMLINK,
            None => UNKNOWN,
        }
    }
}

/// `round_up(x, align)` for a power-of-two `align`.
pub const fn round_up(x: u64, align: u64) -> u64 {
    (x + align - 1) & !(align - 1)
}

/// How EROFS chunking C composefs picks for an external file of `size` bytes:
/// `(chunkbits, chunk_count)`, one chunk as large as the file where possible.
pub fn chunking(size: u64) -> (u32, u64) {
    // ilog2(size - 1) + 1, i.e. the bits needed to hold size - 1; at least one block.
    let mut bits = if size <= 1 {
        0
    } else {
        64 - (size - 1).leading_zeros()
    };
    bits = bits.max(BLOCK_SIZE_BITS);
    if bits - BLOCK_SIZE_BITS > CHUNK_FORMAT_BLKBITS_MASK {
        bits = CHUNK_FORMAT_BLKBITS_MASK + BLOCK_SIZE_BITS;
    }
    let chunk = 1u64 << bits;
    // C's DIV_ROUND_UP wraps for sizes within a chunk of 2^64; so must we, to agree on which
    // absurd sizes are accepted and what is written for them.
    (bits, size.wrapping_add(chunk - 1) / chunk)
}

/// xxh32 as the kernel's `lib/xxhash.c` computes it: EROFS hashes xattr names with it for
/// the per-inode name filter.
pub fn xxh32(input: &[u8], seed: u32) -> u32 {
    const P1: u32 = 2_654_435_761;
    const P2: u32 = 2_246_822_519;
    const P3: u32 = 3_266_489_917;
    const P4: u32 = 668_265_263;
    const P5: u32 = 374_761_393;
    fn round(acc: u32, lane: u32) -> u32 {
        acc.wrapping_add(lane.wrapping_mul(P2))
            .rotate_left(13)
            .wrapping_mul(P1)
    }
    fn le32(b: &[u8]) -> u32 {
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    let mut rest = input;
    let mut h = if input.len() >= 16 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 16 {
            for (i, lane) in v.iter_mut().enumerate() {
                *lane = round(*lane, le32(&rest[4 * i..]));
            }
            rest = &rest[16..];
        }
        v[0].rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18))
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(input.len() as u32);
    while rest.len() >= 4 {
        h = h
            .wrapping_add(le32(rest).wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
        rest = &rest[4..];
    }
    for &b in rest {
        h = h
            .wrapping_add(u32::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^= h >> 16;
    h
}

/// The bloom-filter bit of an xattr name (prefix index plus suffix).
pub fn xattr_filter_bit(index: u8, suffix: &[u8]) -> u32 {
    xxh32(suffix, XATTR_FILTER_SEED.wrapping_add(u32::from(index))) & (XATTR_FILTER_BITS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh32_known_values() {
        // Reference values of the xxHash32 specification.
        assert_eq!(xxh32(b"", 0), 0x02CC_5D05);
        assert_eq!(xxh32(b"a", 0), 0x550D_7456);
        assert_eq!(xxh32(b"abc", 0), 0x32D1_53FF);
        assert_eq!(
            xxh32(b"Nobody inspects the spammish repetition", 0),
            0xE229_3B2F
        );
    }

    #[test]
    fn metacopy_values() {
        let d256 = AnyDigest::Sha256(sealroot_verity::Sha256Digest([0xab; 32]));
        let d512 = AnyDigest::Sha512(sealroot_verity::Sha512Digest([0xcd; 64]));
        let v256 = metacopy_value(&d256);
        assert_eq!(v256[..4], [0, 36, 0, 1]);
        assert_eq!(v256.len(), 36);
        let v512 = metacopy_value(&d512);
        assert_eq!(v512[..4], [0, 68, 0, 2]);
        assert_eq!(v512[4..], [0xcd; 64]);
        assert_eq!(metacopy_digest(&v256), Some(d256));
        assert_eq!(metacopy_digest(&v512), Some(d512));
        // C reads any 36-byte value as sha256; a sha512 value must say so exactly.
        let mut odd = v256.clone();
        odd[3] = 2;
        assert_eq!(metacopy_digest(&odd), Some(d256));
        let mut odd = v512.clone();
        odd[3] = 1;
        assert_eq!(metacopy_digest(&odd), None);
        assert_eq!(metacopy_digest(&v512[..67]), None);
        assert_eq!(metacopy_digest(b""), None);
    }

    #[test]
    fn chunking_rules() {
        assert_eq!(chunking(1), (12, 1));
        assert_eq!(chunking(4096), (12, 1));
        assert_eq!(chunking(4097), (13, 1));
        assert_eq!(chunking(1 << 30), (30, 1));
        assert_eq!(chunking((1 << 30) + 1), (31, 1));
        assert_eq!(chunking(1 << 43), (43, 1));
        assert_eq!(chunking((1 << 43) + 1), (43, 2));
    }
}
