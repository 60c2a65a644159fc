//! The streaming Merkle-tree computation.

use sha2::digest::{Digest as _, FixedOutputReset};
use sha2::{Sha256, Sha512};

use crate::{HashAlgorithm, Sha256Digest, Sha512Digest};

/// The smallest block size fs-verity accepts (1 KiB) as log2.
pub const MIN_LOG_BLOCK_SIZE: u8 = 10;
/// The largest block size fs-verity accepts (64 KiB) as log2.
pub const MAX_LOG_BLOCK_SIZE: u8 = 16;
/// The longest salt the `fsverity_descriptor` can carry.
pub const MAX_SALT_SIZE: usize = 32;
/// The size of `struct fsverity_descriptor`, which is what the file digest hashes.
const DESCRIPTOR_SIZE: usize = 256;
/// The version byte of `struct fsverity_descriptor`.
const DESCRIPTOR_VERSION: u8 = 1;

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    algorithm: HashAlgorithm,
    log_block_size: u8,
    salt: Vec<u8>,
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
        Ok(Params {
            algorithm,
            log_block_size: log as u8,
            salt: salt.to_vec(),
        })
    }

    /// What composefs uses: sha256, 4 KiB blocks, no salt.
    pub fn composefs_default() -> Self {
        Params {
            algorithm: HashAlgorithm::Sha256,
            log_block_size: 12,
            salt: Vec::new(),
        }
    }

    /// The hash algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// The Merkle-tree block size in bytes.
    pub fn block_size(&self) -> usize {
        1 << self.log_block_size
    }

    /// The salt (possibly empty).
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }
}

/// A digest of either algorithm, as returned by the algorithm-generic [`Hasher`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum AnyDigest {
    /// A sha256 digest.
    Sha256(Sha256Digest),
    /// A sha512 digest.
    Sha512(Sha512Digest),
}

impl AnyDigest {
    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            AnyDigest::Sha256(d) => d.as_bytes(),
            AnyDigest::Sha512(d) => d.as_bytes(),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        match self {
            AnyDigest::Sha256(_) => HashAlgorithm::Sha256,
            AnyDigest::Sha512(_) => HashAlgorithm::Sha512,
        }
    }
}

impl std::fmt::Display for AnyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnyDigest::Sha256(d) => d.fmt(f),
            AnyDigest::Sha512(d) => d.fmt(f),
        }
    }
}

/// One of the two hash functions, with its state after absorbing the padded salt.
#[derive(Clone)]
enum Engine {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Engine {
    fn new(algorithm: HashAlgorithm, salt: &[u8]) -> Self {
        // fs-verity prefixes every Merkle-tree hash with the salt, zero-padded to a multiple of
        // the hash function's internal block size (64 bytes for SHA-256, 128 for SHA-512).
        match algorithm {
            HashAlgorithm::Sha256 => {
                let mut h = Sha256::new();
                if !salt.is_empty() {
                    let mut padded = [0u8; 64];
                    padded[..salt.len()].copy_from_slice(salt);
                    h.update(padded);
                }
                Engine::Sha256(h)
            }
            HashAlgorithm::Sha512 => {
                let mut h = Sha512::new();
                if !salt.is_empty() {
                    let mut padded = [0u8; 128];
                    padded[..salt.len()].copy_from_slice(salt);
                    h.update(padded);
                }
                Engine::Sha512(h)
            }
        }
    }

    /// Hashes `block` (zero-padded to `block_size`) after the salt, appending the result to `out`.
    fn hash_block(&self, block: &[u8], block_size: usize, out: &mut Vec<u8>) {
        let pad = block_size - block.len();
        match self {
            Engine::Sha256(h) => {
                let mut h = h.clone();
                h.update(block);
                update_zeros(&mut h, pad);
                out.extend_from_slice(&h.finalize_fixed_reset());
            }
            Engine::Sha512(h) => {
                let mut h = h.clone();
                h.update(block);
                update_zeros(&mut h, pad);
                out.extend_from_slice(&h.finalize_fixed_reset());
            }
        }
    }
}

fn update_zeros<D: sha2::digest::Update>(h: &mut D, mut n: usize) {
    const ZEROS: [u8; 4096] = [0; 4096];
    while n > 0 {
        let k = n.min(ZEROS.len());
        h.update(&ZEROS[..k]);
        n -= k;
    }
}

/// A streaming fs-verity hasher: feed it the file's bytes in any pieces, then [`finish`].
///
/// [`finish`]: Hasher::finish
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    engine: Engine,
    /// The partial data block (level 0).
    data: Vec<u8>,
    /// For each tree level above the data, the hashes collected into its current block.
    levels: Vec<Vec<u8>>,
    /// For each tree level, how many hashes it has received in all.
    counts: Vec<u64>,
    size: u64,
}

impl Hasher {
    /// A hasher for the given parameters.
    pub fn new(params: Params) -> Self {
        let engine = Engine::new(params.algorithm, &params.salt);
        Hasher {
            data: Vec::with_capacity(params.block_size()),
            engine,
            params,
            levels: Vec::new(),
            counts: Vec::new(),
            size: 0,
        }
    }

    /// Absorbs more file data.
    pub fn update(&mut self, mut bytes: &[u8]) {
        let bs = self.params.block_size();
        self.size += bytes.len() as u64;
        // Finish a partial block first, then hash whole blocks straight from the input.
        if !self.data.is_empty() {
            let take = (bs - self.data.len()).min(bytes.len());
            self.data.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.data.len() == bs {
                let block = std::mem::take(&mut self.data);
                self.push_data_block(&block);
                self.data = block;
                self.data.clear();
            }
        }
        while bytes.len() >= bs {
            let (block, rest) = bytes.split_at(bs);
            self.push_data_block(block);
            bytes = rest;
        }
        self.data.extend_from_slice(bytes);
    }

    fn push_data_block(&mut self, block: &[u8]) {
        let mut hash = Vec::with_capacity(64);
        self.engine
            .hash_block(block, self.params.block_size(), &mut hash);
        self.push_hash(0, &hash);
    }

    /// Adds `hash` to tree level `level` (0 = the level just above the data).
    fn push_hash(&mut self, level: usize, hash: &[u8]) {
        let bs = self.params.block_size();
        if self.levels.len() <= level {
            self.levels.push(Vec::with_capacity(bs));
            self.counts.push(0);
        }
        self.levels[level].extend_from_slice(hash);
        self.counts[level] += 1;
        if self.levels[level].len() + hash.len() > bs {
            // The block is full (the next hash would not fit): hash it into the level above.
            let block = std::mem::take(&mut self.levels[level]);
            let mut up = Vec::with_capacity(64);
            self.engine.hash_block(&block, bs, &mut up);
            self.levels[level] = block;
            self.levels[level].clear();
            self.push_hash(level + 1, &up);
        }
    }

    /// The root hash of the Merkle tree (all zeros for an empty file).
    fn root_hash(&mut self) -> Vec<u8> {
        let bs = self.params.block_size();
        let dsize = self.params.algorithm.digest_size();
        if self.size == 0 {
            return vec![0; dsize];
        }
        if !self.data.is_empty() {
            let block = std::mem::take(&mut self.data);
            self.push_data_block(&block);
        }
        let mut level = 0;
        loop {
            if self.counts[level] == 1 {
                return self.levels[level][..dsize].to_vec();
            }
            if !self.levels[level].is_empty() {
                let block = std::mem::take(&mut self.levels[level]);
                let mut up = Vec::with_capacity(64);
                self.engine.hash_block(&block, bs, &mut up);
                self.push_hash(level + 1, &up);
            }
            level += 1;
        }
    }

    /// Completes the computation and returns the file's fs-verity digest.
    pub fn finish(mut self) -> AnyDigest {
        let root = self.root_hash();
        let mut desc = [0u8; DESCRIPTOR_SIZE];
        desc[0] = DESCRIPTOR_VERSION;
        desc[1] = self.params.algorithm.kernel_id();
        desc[2] = self.params.log_block_size;
        desc[3] = self.params.salt.len() as u8;
        // desc[4..8]: sig_size, always 0 in the digest.
        desc[8..16].copy_from_slice(&self.size.to_le_bytes());
        desc[16..16 + root.len()].copy_from_slice(&root);
        desc[80..80 + self.params.salt.len()].copy_from_slice(&self.params.salt);
        match self.params.algorithm {
            HashAlgorithm::Sha256 => AnyDigest::Sha256(Sha256Digest(Sha256::digest(desc).into())),
            HashAlgorithm::Sha512 => AnyDigest::Sha512(Sha512Digest(Sha512::digest(desc).into())),
        }
    }
}

/// The composefs digest (sha256, 4 KiB blocks, no salt) of `data`.
pub fn sha256_digest(data: &[u8]) -> Sha256Digest {
    let mut h = Hasher::new(Params::composefs_default());
    h.update(data);
    match h.finish() {
        AnyDigest::Sha256(d) => d,
        AnyDigest::Sha512(_) => unreachable!("composefs_default is sha256"),
    }
}

/// The composefs digest (sha256, 4 KiB blocks, no salt) of everything `reader` yields.
pub fn sha256_digest_reader(mut reader: impl std::io::Read) -> std::io::Result<Sha256Digest> {
    let mut h = Hasher::new(Params::composefs_default());
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
    }
    match h.finish() {
        AnyDigest::Sha256(d) => Ok(d),
        AnyDigest::Sha512(_) => unreachable!("composefs_default is sha256"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file() {
        // `fsverity digest --hash-alg=sha256 --block-size=4096` of an empty file.
        assert_eq!(
            sha256_digest(b"").to_hex(),
            "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"
        );
    }
}
