//! The streaming Merkle-tree computation.
//!
//! The tree is built bottom-up while the data streams in, as the kernel and `libfsverity` build
//! it: each full data block is hashed at once and its hash appended to the level above; a level
//! block that fills up is hashed in turn and its hash carried one level higher. Only one partial
//! block per level is ever held, so memory is `block_size` times the tree height (at most eight
//! levels for any file the kernel accepts), whatever the file size.

use sealroot_sys::sha256x2::{Sha256x2, SHA256_IV};
use sha2::digest::Digest as _;
use sha2::{Sha256, Sha512};

use crate::{AnyDigest, HashAlgorithm, Sha256Digest, Sha512Digest};

/// The smallest block size fs-verity accepts (1 KiB) as log2.
pub const MIN_LOG_BLOCK_SIZE: u8 = 10;
/// The largest block size fs-verity accepts (64 KiB) as log2.
pub const MAX_LOG_BLOCK_SIZE: u8 = 16;
/// The longest salt the `fsverity_descriptor` can carry (`__u8 salt[32]`).
pub const MAX_SALT_SIZE: usize = 32;
/// The largest digest size of any supported algorithm (sha512).
const MAX_DIGEST_SIZE: usize = 64;
/// The size of `struct fsverity_descriptor`, which is what the file digest hashes.
const DESCRIPTOR_SIZE: usize = 256;
/// The version byte of `struct fsverity_descriptor`: the only version there is.
const DESCRIPTOR_VERSION: u8 = 1;
/// Where `fsverity_descriptor.data_size` (little-endian u64) starts.
const DESCRIPTOR_DATA_SIZE_OFFSET: usize = 8;
/// Where `fsverity_descriptor.root_hash[64]` starts.
const DESCRIPTOR_ROOT_HASH_OFFSET: usize = 16;
/// Where `fsverity_descriptor.salt[32]` starts.
const DESCRIPTOR_SALT_OFFSET: usize = 80;
/// The internal block size of SHA-256, to which the salt is zero-padded.
const SHA256_BLOCK_SIZE: usize = 64;
/// The internal block size of SHA-512, to which the salt is zero-padded.
const SHA512_BLOCK_SIZE: usize = 128;

/// Why a set of fs-verity parameters was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// The block size is not a power of two between 1 KiB and 64 KiB.
    #[error("fs-verity block size {0} is not a power of two from 1024 to 65536")]
    BlockSize(usize),
    /// The salt is longer than 32 bytes.
    #[error("fs-verity salt is {0} bytes, at most 32 are allowed")]
    SaltTooLong(usize),
}

/// The parameters of an fs-verity digest: algorithm, Merkle-tree block size and salt.
///
/// These are the values given to `FS_IOC_ENABLE_VERITY`, and they are part of the digest: the
/// same file has a different digest under different parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Params {
    algorithm: HashAlgorithm,
    log_block_size: u8,
    salt_len: u8,
    /// The salt in its first `salt_len` bytes; the rest stay zero, so the derived comparisons
    /// only ever see the salt itself.
    salt: [u8; MAX_SALT_SIZE],
}

impl Params {
    /// Checks and builds parameters.
    pub fn new(
        algorithm: HashAlgorithm,
        block_size: usize,
        salt: &[u8],
    ) -> Result<Self, ParamsError> {
        if !block_size.is_power_of_two() {
            return Err(ParamsError::BlockSize(block_size));
        }
        let log = block_size.trailing_zeros();
        if !(u32::from(MIN_LOG_BLOCK_SIZE)..=u32::from(MAX_LOG_BLOCK_SIZE)).contains(&log) {
            return Err(ParamsError::BlockSize(block_size));
        }
        if salt.len() > MAX_SALT_SIZE {
            return Err(ParamsError::SaltTooLong(salt.len()));
        }
        let mut padded = [0u8; MAX_SALT_SIZE];
        padded[..salt.len()].copy_from_slice(salt);
        Ok(Params {
            algorithm,
            // Both fit in a u8: checked against the ranges above.
            log_block_size: log as u8,
            salt_len: salt.len() as u8,
            salt: padded,
        })
    }

    /// What composefs uses: sha256, 4 KiB blocks, no salt.
    pub const fn composefs_default() -> Self {
        Self::composefs(HashAlgorithm::Sha256)
    }

    /// What composefs-rs uses for a repository of `algorithm`: 4 KiB blocks, no salt
    /// (`fsverity-sha256-12`, `fsverity-sha512-12`).
    pub const fn composefs(algorithm: HashAlgorithm) -> Self {
        Params {
            algorithm,
            log_block_size: 12,
            salt_len: 0,
            salt: [0; MAX_SALT_SIZE],
        }
    }

    /// The hash algorithm.
    pub const fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// The Merkle-tree block size in bytes.
    pub const fn block_size(&self) -> usize {
        1 << self.log_block_size
    }

    /// log2 of the Merkle-tree block size, as the descriptor records it.
    pub const fn log_block_size(&self) -> u8 {
        self.log_block_size
    }

    /// The salt (possibly empty).
    pub fn salt(&self) -> &[u8] {
        &self.salt[..usize::from(self.salt_len)]
    }
}

impl Default for Params {
    /// The composefs parameters, [`Params::composefs_default`].
    fn default() -> Self {
        Params::composefs_default()
    }
}

/// A hash value held in a fixed array; only the first `digest_size` bytes are meaningful.
type HashBuf = [u8; MAX_DIGEST_SIZE];

/// One of the two hash functions, with its state after absorbing the padded salt.
///
/// Every Merkle-tree hash starts from this state. Cloning it per block copies about a hundred
/// bytes and saves re-hashing the salt block each time.
#[derive(Clone)]
enum Engine {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Engine {
    fn new(algorithm: HashAlgorithm, salt: &[u8]) -> Self {
        // fs-verity prefixes every Merkle-tree hash with the salt, zero-padded to a multiple of
        // the hash function's internal block size. A salt is at most 32 bytes, so one block.
        match algorithm {
            HashAlgorithm::Sha256 => Engine::Sha256(salted::<Sha256, SHA256_BLOCK_SIZE>(salt)),
            HashAlgorithm::Sha512 => Engine::Sha512(salted::<Sha512, SHA512_BLOCK_SIZE>(salt)),
        }
    }

    /// The hash of one Merkle-tree block: the salt, then `block` zero-padded to `block_size`.
    #[inline]
    fn hash_block(&self, block: &[u8], block_size: usize) -> HashBuf {
        let pad = block_size - block.len();
        let mut out = [0u8; MAX_DIGEST_SIZE];
        match self {
            Engine::Sha256(salted) => {
                let mut h = salted.clone();
                h.update(block);
                update_zeros(&mut h, pad);
                out[..32].copy_from_slice(&h.finalize());
            }
            Engine::Sha512(salted) => {
                let mut h = salted.clone();
                h.update(block);
                update_zeros(&mut h, pad);
                out.copy_from_slice(&h.finalize());
            }
        }
        out
    }
}

/// A new `D` (whose internal block is `BLOCK` bytes) that has absorbed `salt` zero-padded
/// to one block, or nothing for no salt.
fn salted<D: sha2::Digest, const BLOCK: usize>(salt: &[u8]) -> D {
    let mut h = D::new();
    if !salt.is_empty() {
        let mut padded = [0u8; BLOCK];
        padded[..salt.len()].copy_from_slice(salt);
        h.update(padded);
    }
    h
}

/// Feeds `n` zero bytes to `h`.
fn update_zeros<D: sha2::digest::Update>(h: &mut D, mut n: usize) {
    const ZEROS: [u8; 4096] = [0; 4096];
    while n > 0 {
        let k = n.min(ZEROS.len());
        h.update(&ZEROS[..k]);
        n -= k;
    }
}

/// Two data blocks hashed at once, for SHA-256 on a CPU with the SHA extensions: the blocks
/// of a file are independent messages, and two interleaved SHA-256 streams keep the CPU's SHA
/// unit busier than one (about 1.3 times the throughput of `sha2` alone; see
/// [`sealroot_sys::sha256x2`]). Every other hash (partial blocks, tree levels, SHA-512) goes
/// through [`Engine`].
#[derive(Clone, Copy)]
struct PairEngine {
    x2: Sha256x2,
    /// The state after the padded salt (the initial value without a salt).
    start: [u32; 8],
    /// The SHA-256 padding that ends the message of every Merkle-tree block: the padded salt
    /// and one block are a whole number of SHA-256 blocks, so it is a block of its own.
    pad: [u8; SHA256_BLOCK_SIZE],
}

impl PairEngine {
    /// The pair engine for `params`, if they are SHA-256 and the CPU can run it.
    fn new(params: &Params) -> Option<Self> {
        if params.algorithm != HashAlgorithm::Sha256 {
            return None;
        }
        let x2 = Sha256x2::detect()?;
        let mut start = SHA256_IV;
        let mut message_len = params.block_size() as u64;
        if !params.salt().is_empty() {
            let mut padded = [0u8; SHA256_BLOCK_SIZE];
            padded[..params.salt().len()].copy_from_slice(params.salt());
            let mut unused = SHA256_IV;
            x2.compress(&mut start, &padded, &mut unused, &padded);
            message_len += SHA256_BLOCK_SIZE as u64;
        }
        let mut pad = [0u8; SHA256_BLOCK_SIZE];
        pad[0] = 0x80;
        pad[SHA256_BLOCK_SIZE - 8..].copy_from_slice(&(message_len * 8).to_be_bytes());
        Some(PairEngine { x2, start, pad })
    }

    /// The hashes of two whole blocks, as [`Engine::hash_block`] would give them.
    fn hash_pair(&self, a: &[u8], b: &[u8]) -> (HashBuf, HashBuf) {
        let (mut sa, mut sb) = (self.start, self.start);
        self.x2.compress(&mut sa, a, &mut sb, b);
        self.x2.compress(&mut sa, &self.pad, &mut sb, &self.pad);
        let bytes = |state: [u32; 8]| {
            let mut out = [0u8; MAX_DIGEST_SIZE];
            for (o, word) in out.chunks_exact_mut(4).zip(state) {
                o.copy_from_slice(&word.to_be_bytes());
            }
            out
        };
        (bytes(sa), bytes(sb))
    }
}

/// One level of the Merkle tree above the data: the block of hashes being filled.
#[derive(Clone)]
struct Level {
    /// Hashes packed into this level's current block; holds at most `block_size` bytes.
    block: Vec<u8>,
    /// How many hashes this level has received in all. The first level to receive exactly one
    /// holds the root hash.
    count: u64,
}

/// A streaming fs-verity hasher: feed it the file's bytes in any pieces, then [`finish`].
///
/// The result is the same as the kernel's `FS_IOC_MEASURE_VERITY` and `fsverity digest` for the
/// same [`Params`], however the input is split. Whole blocks inside a piece are hashed in place
/// without copying; only a block split across pieces is gathered in a buffer.
///
/// ```
/// use sealroot_verity::{Hasher, Params};
/// let mut h = Hasher::new(Params::composefs_default());
/// h.update(b"hello ");
/// h.update(b"world");
/// assert_eq!(h.finish().to_string().len(), 64);
/// ```
///
/// The kernel refuses files whose tree would need more than eight levels (only possible with
/// 1 KiB blocks, sha512 and files over 4 TiB); this type computes a digest for them anyway.
///
/// [`finish`]: Hasher::finish
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    engine: Engine,
    /// Hashes whole data blocks two at a time, where it can.
    pairs: Option<PairEngine>,
    /// The data block being gathered; emptied whenever it fills up.
    data: Vec<u8>,
    /// The tree levels above the data, lowest first.
    levels: Vec<Level>,
    /// The number of data bytes seen.
    size: u64,
}

impl Hasher {
    /// A hasher for the given parameters.
    pub fn new(params: Params) -> Self {
        let engine = Engine::new(params.algorithm, params.salt());
        Hasher {
            data: Vec::with_capacity(params.block_size()),
            engine,
            pairs: PairEngine::new(&params),
            params,
            levels: Vec::new(),
            size: 0,
        }
    }

    /// The parameters this hasher was made with.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// How many data bytes have been absorbed so far.
    pub fn bytes_hashed(&self) -> u64 {
        self.size
    }

    /// Absorbs more file data.
    pub fn update(&mut self, mut bytes: &[u8]) {
        let bs = self.params.block_size();
        self.size += bytes.len() as u64;
        // Complete a block begun by an earlier call first.
        if !self.data.is_empty() {
            let take = (bs - self.data.len()).min(bytes.len());
            self.data.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.data.len() < bs {
                return;
            }
            let hash = self.engine.hash_block(&self.data, bs);
            self.data.clear();
            self.push_hash(0, &hash);
        }
        // Whole blocks straight from the caller's buffer, two at a time where the CPU can.
        if let Some(pairs) = self.pairs {
            while bytes.len() >= 2 * bs {
                let (a, rest) = bytes.split_at(bs);
                let (b, rest) = rest.split_at(bs);
                let (ha, hb) = pairs.hash_pair(a, b);
                self.push_hash(0, &ha);
                self.push_hash(0, &hb);
                bytes = rest;
            }
        }
        let mut blocks = bytes.chunks_exact(bs);
        for block in &mut blocks {
            let hash = self.engine.hash_block(block, bs);
            self.push_hash(0, &hash);
        }
        self.data.extend_from_slice(blocks.remainder());
    }

    /// Appends `hash` to tree level `level` (0 = the level just above the data), hashing each
    /// block that fills up into the level above it.
    fn push_hash(&mut self, mut level: usize, hash: &HashBuf) {
        let bs = self.params.block_size();
        let ds = self.params.algorithm.digest_size();
        let mut hash = *hash;
        loop {
            if level == self.levels.len() {
                self.levels.push(Level {
                    block: Vec::with_capacity(bs),
                    count: 0,
                });
            }
            let lvl = &mut self.levels[level];
            lvl.block.extend_from_slice(&hash[..ds]);
            lvl.count += 1;
            // Block and digest sizes are powers of two, so hashes tile a block exactly.
            if lvl.block.len() < bs {
                return;
            }
            hash = self.engine.hash_block(&lvl.block, bs);
            lvl.block.clear();
            level += 1;
        }
    }

    /// The root hash of the Merkle tree (all zeros for an empty file), completing every
    /// partial block on the way up.
    fn root_hash(&mut self) -> HashBuf {
        let bs = self.params.block_size();
        let ds = self.params.algorithm.digest_size();
        if self.size == 0 {
            return [0; MAX_DIGEST_SIZE];
        }
        if !self.data.is_empty() {
            let hash = self.engine.hash_block(&self.data, bs);
            self.data.clear();
            self.push_hash(0, &hash);
        }
        // A non-empty file has pushed at least one hash, so level 0 exists; each level with
        // more than one hash has handed at least one to the level above.
        let mut level = 0;
        loop {
            let lvl = &mut self.levels[level];
            if lvl.count == 1 {
                let mut root = [0u8; MAX_DIGEST_SIZE];
                root[..ds].copy_from_slice(&lvl.block[..ds]);
                return root;
            }
            if !lvl.block.is_empty() {
                let hash = self.engine.hash_block(&lvl.block, bs);
                lvl.block.clear();
                self.push_hash(level + 1, &hash);
            }
            level += 1;
        }
    }

    /// Completes the computation and returns the file's fs-verity digest.
    pub fn finish(mut self) -> AnyDigest {
        let root = self.root_hash();
        let desc = descriptor(&self.params, self.size, &root);
        match self.params.algorithm {
            HashAlgorithm::Sha256 => AnyDigest::Sha256(Sha256Digest(Sha256::digest(desc).into())),
            HashAlgorithm::Sha512 => AnyDigest::Sha512(Sha512Digest(Sha512::digest(desc).into())),
        }
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.update(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `struct fsverity_descriptor` whose hash is the file digest (`include/uapi/linux/
/// fsverity.h`, `fs/verity/fsverity_private.h`):
///
/// | offset | field |
/// |---|---|
/// | 0 | `u8 version` = 1 |
/// | 1 | `u8 hash_algorithm` |
/// | 2 | `u8 log_blocksize` |
/// | 3 | `u8 salt_size` |
/// | 4 | `le32` reserved (was `sig_size`), 0 in the digest |
/// | 8 | `le64 data_size` |
/// | 16 | `u8 root_hash[64]`, zero-padded |
/// | 80 | `u8 salt[32]`, zero-padded |
/// | 112 | 144 reserved zero bytes |
fn descriptor(params: &Params, data_size: u64, root: &HashBuf) -> [u8; DESCRIPTOR_SIZE] {
    let mut desc = [0u8; DESCRIPTOR_SIZE];
    desc[0] = DESCRIPTOR_VERSION;
    desc[1] = params.algorithm.kernel_id();
    desc[2] = params.log_block_size;
    desc[3] = params.salt_len;
    desc[DESCRIPTOR_DATA_SIZE_OFFSET..DESCRIPTOR_ROOT_HASH_OFFSET]
        .copy_from_slice(&data_size.to_le_bytes());
    desc[DESCRIPTOR_ROOT_HASH_OFFSET..DESCRIPTOR_ROOT_HASH_OFFSET + MAX_DIGEST_SIZE]
        .copy_from_slice(root);
    desc[DESCRIPTOR_SALT_OFFSET..DESCRIPTOR_SALT_OFFSET + MAX_SALT_SIZE]
        .copy_from_slice(&params.salt);
    desc
}

/// The fs-verity digest of `data` under `params`.
pub fn digest(params: &Params, data: &[u8]) -> AnyDigest {
    let mut h = Hasher::new(params.clone());
    h.update(data);
    h.finish()
}

/// Narrows a digest made with [`Params::composefs_default`] to its type.
pub(crate) fn expect_sha256(d: AnyDigest) -> Sha256Digest {
    match d {
        AnyDigest::Sha256(d) => d,
        AnyDigest::Sha512(_) => unreachable!("composefs parameters are sha256"),
    }
}

/// The composefs digest (sha256, 4 KiB blocks, no salt) of `data`.
pub fn sha256_digest(data: &[u8]) -> Sha256Digest {
    expect_sha256(digest(&Params::composefs_default(), data))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Input patterns with digests pinned from `fsverity digest` (fsverity-utils 1.5).
    fn pattern(kind: &str, len: usize) -> Vec<u8> {
        match kind {
            "zeros" => vec![0; len],
            // Bytes 0, 1, ..., 250, 0, 1, ...: a period that never lines up with a block.
            "mod251" => (0..len).map(|i| (i % 251) as u8).collect(),
            "abc" => b"abc".repeat(len / 3),
            _ => unreachable!(),
        }
    }

    struct Pinned {
        kind: &'static str,
        len: usize,
        algorithm: HashAlgorithm,
        block_size: usize,
        salt: &'static [u8],
        hex: &'static str,
    }

    /// A salt of the longest length, bytes 0 to 31.
    const SALT_0_TO_31: [u8; 32] = {
        let mut s = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            s[i] = i as u8;
            i += 1;
        }
        s
    };

    const PINNED: &[Pinned] = &[
        Pinned {
            kind: "abc",
            len: 3,
            algorithm: HashAlgorithm::Sha256,
            block_size: 4096,
            salt: b"",
            hex: "700b6bd8510f0b4f9bac8b9cf0459151a1c4a99f467892bb4bd289a67df8e19c",
        },
        Pinned {
            kind: "zeros",
            len: 4096,
            algorithm: HashAlgorithm::Sha256,
            block_size: 4096,
            salt: b"",
            hex: "babc284ee4ffe7f449377fbf6692715b43aec7bc39c094a95878904d34bac97e",
        },
        Pinned {
            kind: "zeros",
            len: 0,
            algorithm: HashAlgorithm::Sha512,
            block_size: 4096,
            salt: b"",
            hex: "ccf9e5aea1c2a64efa2f2354a6024b90dffde6bbc017825045dce374474e13d10adb9dadcc6ca8e17a3c075fbd31336e8f266ae6fa93a6c3bed66f9e784e5abf",
        },
        Pinned {
            kind: "zeros",
            len: 0,
            algorithm: HashAlgorithm::Sha256,
            block_size: 1024,
            salt: b"salt",
            hex: "b9048fec67d06c9ffdb82ec35484d8ccb714030d592409ce36cacb82bd01cc89",
        },
        Pinned {
            kind: "mod251",
            len: 1000000,
            algorithm: HashAlgorithm::Sha256,
            block_size: 4096,
            salt: b"",
            hex: "dbe1b6c44240d0b0642a25e6c1d5e399381c87474f3dcda2f3acb9495fa159d6",
        },
        Pinned {
            kind: "mod251",
            len: 100000,
            algorithm: HashAlgorithm::Sha512,
            block_size: 1024,
            salt: b"sealroot",
            hex: "d9779fdbfb63204004398146a205e81ef5db548350e548f4df1f9809da5d5387996785e91faea529334d163a13523d3029d035bd67354e33baa5d127ce3cbed7",
        },
        Pinned {
            kind: "mod251",
            len: 65537,
            algorithm: HashAlgorithm::Sha256,
            block_size: 65536,
            salt: &SALT_0_TO_31,
            hex: "995398c2a94134cf5ad45223f6bdafa3edb5329339b73e4e6ee2dd172d616d73",
        },
        Pinned {
            kind: "abc",
            len: 30000,
            algorithm: HashAlgorithm::Sha512,
            block_size: 4096,
            salt: b"",
            hex: "35e4b4aafe7ceb6749cf444b6a156ebb24b1c243448d07dcd472544d743644738634737090632b9f54a2913f23b4d4822c78e7ffac3321868717fd4ced8dde8c",
        },
        Pinned {
            kind: "zeros",
            len: 1048576,
            algorithm: HashAlgorithm::Sha256,
            block_size: 1024,
            salt: b"a",
            hex: "ed5263d67aac60365d1ad2ce958c366df8a9e1eb7cf519102480f97774680fdf",
        },
        Pinned {
            kind: "mod251",
            len: 4097,
            algorithm: HashAlgorithm::Sha256,
            block_size: 2048,
            salt: b"",
            hex: "69c5aa7321fdc75e1f5168d6bbe536f01469ad0232e86766fe0e1e58d253571f",
        },
        Pinned {
            kind: "mod251",
            len: 1056768,
            algorithm: HashAlgorithm::Sha512,
            block_size: 8192,
            salt: &[0xff; 16],
            hex: "6d5cbcd7dceeee2144ab01e3edc6e283725152fc371d78d3be2c8f3e1ed11a4df319e94dc93c4dfb769465729eab79339899e48d2cb781996b6742e58e8682b5",
        },
    ];

    #[test]
    fn pinned_digests() {
        for p in PINNED {
            let params = Params::new(p.algorithm, p.block_size, p.salt).unwrap();
            let data = pattern(p.kind, p.len);
            let d = digest(&params, &data);
            assert_eq!(
                d.to_string(),
                p.hex,
                "{} x{} {} bs {} salt {:?}",
                p.kind,
                p.len,
                p.algorithm,
                p.block_size,
                p.salt
            );
            // Byte-at-a-time streaming agrees with one-shot hashing.
            if p.len <= 1 << 16 {
                let mut h = Hasher::new(params);
                for b in &data {
                    h.update(std::slice::from_ref(b));
                }
                assert_eq!(h.finish(), d);
            }
        }
    }

    #[test]
    fn empty_file() {
        // `fsverity digest --hash-alg=sha256 --block-size=4096` of an empty file.
        assert_eq!(
            sha256_digest(b"").to_hex(),
            "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"
        );
    }

    #[test]
    fn params_are_checked() {
        use HashAlgorithm::Sha256;
        for bad in [0, 512, 1000, 4095, 1 << 17] {
            assert_eq!(
                Params::new(Sha256, bad, &[]),
                Err(ParamsError::BlockSize(bad))
            );
        }
        assert_eq!(
            Params::new(Sha256, 4096, &[0; 33]),
            Err(ParamsError::SaltTooLong(33))
        );
        let p = Params::new(Sha256, 65536, &[7; 32]).unwrap();
        assert_eq!((p.block_size(), p.log_block_size()), (65536, 16));
        assert_eq!(p.salt(), &[7; 32]);
        assert_eq!(
            Params::new(Sha256, 4096, &[]).unwrap(),
            Params::composefs_default()
        );
    }

    #[test]
    fn descriptor_layout() {
        let params = Params::new(HashAlgorithm::Sha512, 1024, b"salt").unwrap();
        let root = [0xabu8; MAX_DIGEST_SIZE];
        let d = descriptor(&params, 0x0102_0304_0506_0708, &root);
        assert_eq!(&d[..4], &[1, 2, 10, 4]);
        assert_eq!(&d[4..8], &[0; 4]);
        assert_eq!(&d[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&d[16..80], &[0xab; 64]);
        assert_eq!(&d[80..84], b"salt");
        assert!(d[84..].iter().all(|&b| b == 0));
    }

    #[test]
    fn block_pairs_give_the_digests_of_single_blocks() {
        if PairEngine::new(&Params::composefs_default()).is_none() {
            sealroot_testkit::skip_even_in_ci(
                "block_pairs_give_the_digests_of_single_blocks",
                "no SHA extensions on this CPU: blocks are hashed one at a time",
            );
            return;
        }
        let data = pattern("mod251", 5 * 65536 + 4097);
        for (bs, salt) in [
            (4096, &b""[..]),
            (4096, &b"salt"[..]),
            (1024, &SALT_0_TO_31[..]),
            (65536, &b""[..]),
        ] {
            let params = Params::new(HashAlgorithm::Sha256, bs, salt).unwrap();
            for len in [
                0,
                1,
                bs - 1,
                bs,
                bs + 1,
                2 * bs,
                2 * bs + 1,
                3 * bs,
                129 * bs,
                data.len(),
            ] {
                let len = len.min(data.len());
                let mut paired = Hasher::new(params.clone());
                let mut single = Hasher::new(params.clone());
                single.pairs = None;
                // Pieces that split blocks differently on each call.
                for piece in data[..len].chunks(3 * bs + 17) {
                    paired.update(piece);
                    single.update(piece);
                }
                assert_eq!(
                    paired.finish(),
                    single.finish(),
                    "block {bs}, salt {salt:?}, {len} bytes"
                );
            }
        }
    }

    #[test]
    fn io_write_matches_update() {
        use std::io::Write as _;
        let data = pattern("mod251", 10_000);
        let mut h = Hasher::new(Params::composefs_default());
        h.write_all(&data).unwrap();
        assert_eq!(h.bytes_hashed(), 10_000);
        assert_eq!(expect_sha256(h.finish()), sha256_digest(&data));
    }
}
