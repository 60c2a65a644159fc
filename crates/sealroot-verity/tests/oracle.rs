//! Compares our fs-verity digests with the reference implementation, `fsverity digest` from
//! fsverity-utils, over many sizes, algorithms, block sizes and salts.
//!
//! Every file is hashed by feeding the [`Hasher`] pieces of random lengths (down to one byte), so
//! the streaming logic is exercised along with the Merkle-tree arithmetic. The random seed is
//! printed; set `SEALROOT_ORACLE_SEED` to replay a failure.
//!
//! Without the `fsverity` binary the tests skip ([`sealroot_testkit::skip`]).

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use sealroot_testkit::Rng;
use sealroot_verity::{
    sha256_digest, sha256_digest_file, sha256_digest_reader, AnyDigest, HashAlgorithm, Hasher,
    Params,
};

/// A piece length for streaming: often tiny, sometimes around a block, sometimes large.
fn piece_len(rng: &mut Rng, block_size: usize) -> usize {
    match rng.range(0, 9) {
        0 => 1,
        1..=3 => rng.range(1, 100),
        4..=6 => rng.range(1, 2 * block_size),
        _ => rng.range(1, 1 << 20),
    }
}

fn seed() -> u64 {
    if let Ok(s) = std::env::var("SEALROOT_ORACLE_SEED") {
        return s.parse().expect("SEALROOT_ORACLE_SEED must be a u64");
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5ea1_0007)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the reference tool can be run here; [`sealroot_testkit::skip`]s `test` when it
/// cannot.
fn oracle_available(test: &str) -> bool {
    match Command::new("fsverity").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        _ => {
            sealroot_testkit::skip(
                test,
                "fsverity not installed (apt-get install fsverity): no oracle comparison",
            );
            false
        }
    }
}

/// `fsverity digest` of `path`, as `ALG:HEX`.
fn oracle(path: &Path, params: &Params) -> String {
    let mut cmd = Command::new("fsverity");
    cmd.arg("digest")
        .arg(format!("--hash-alg={}", params.algorithm()))
        .arg(format!("--block-size={}", params.block_size()));
    if !params.salt().is_empty() {
        cmd.arg(format!("--salt={}", hex(params.salt())));
    }
    let out = cmd.arg(path).output().expect("run fsverity digest");
    assert!(
        out.status.success(),
        "fsverity digest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("fsverity prints UTF-8");
    // The output is `sha256:HEX PATH`.
    text.split_whitespace()
        .next()
        .expect("fsverity printed a digest")
        .to_owned()
}

/// Our digest of `data`, fed to the hasher in random pieces.
fn ours(data: &[u8], params: &Params, rng: &mut Rng) -> AnyDigest {
    let mut h = Hasher::new(params.clone());
    let mut rest = data;
    while !rest.is_empty() {
        let n = piece_len(rng, params.block_size()).min(rest.len());
        h.update(&rest[..n]);
        rest = &rest[n..];
    }
    h.finish()
}

fn labelled(d: &AnyDigest) -> String {
    format!("{}:{}", d.algorithm(), d)
}

struct Case<'a> {
    data: &'a [u8],
    path: &'a Path,
    params: Params,
}

fn check(case: &Case<'_>, rng: &mut Rng, seed: u64) {
    let expected = oracle(case.path, &case.params);
    let got = labelled(&ours(case.data, &case.params, rng));
    assert_eq!(
        got,
        expected,
        "size {} alg {} block size {} salt {:?} (seed {seed})",
        case.data.len(),
        case.params.algorithm(),
        case.params.block_size(),
        hex(case.params.salt()),
    );
}

fn write_file(dir: &Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).expect("create test file");
    f.write_all(data).expect("write test file");
    path
}

const ALGORITHMS: [HashAlgorithm; 2] = [HashAlgorithm::Sha256, HashAlgorithm::Sha512];
const MAIN_BLOCK_SIZES: [usize; 3] = [1024, 4096, 65536];
const EXTRA_BLOCK_SIZES: [usize; 4] = [2048, 8192, 16384, 32768];

/// Salts to try with each combination: none, and one of random length (sometimes the longest).
fn salts(rng: &mut Rng) -> [Vec<u8>; 2] {
    let len = if rng.range(0, 3) == 0 {
        32
    } else {
        rng.range(1, 32)
    };
    [Vec::new(), rng.bytes(len)]
}

#[test]
fn matches_fsverity_utils() {
    if !oracle_available("matches_fsverity_utils") {
        return;
    }
    let seed = seed();
    println!("oracle seed: {seed} (set SEALROOT_ORACLE_SEED to replay)");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");

    let small_sizes = [0usize, 1, 4095, 4096, 4097, (1 << 20) + 3];
    let big_size = 40 * (1 << 20) + rng.range(0, 4096);
    let mut checked = 0;

    for (i, &size) in small_sizes
        .iter()
        .chain(std::iter::once(&big_size))
        .enumerate()
    {
        let data = rng.bytes(size);
        let path = write_file(dir.path(), &format!("file{i}"), &data);
        let block_sizes: Vec<usize> = if size <= (1 << 20) + 3 {
            MAIN_BLOCK_SIZES
                .iter()
                .chain(EXTRA_BLOCK_SIZES.iter())
                .copied()
                .collect()
        } else {
            MAIN_BLOCK_SIZES.to_vec()
        };
        for alg in ALGORITHMS {
            for &bs in &block_sizes {
                for salt in salts(&mut rng) {
                    let params = Params::new(alg, bs, &salt).expect("valid params");
                    check(
                        &Case {
                            data: &data,
                            path: &path,
                            params,
                        },
                        &mut rng,
                        seed,
                    );
                    checked += 1;
                }
            }
        }
        // The composefs shortcuts must agree with the generic hasher.
        let generic = labelled(&ours(&data, &Params::composefs_default(), &mut rng));
        let one_shot = format!("sha256:{}", sha256_digest(&data));
        let reader = format!("sha256:{}", sha256_digest_reader(&data[..]).unwrap());
        let file = std::fs::File::open(&path).unwrap();
        let from_file = format!("sha256:{}", sha256_digest_file(&file).unwrap());
        assert_eq!(one_shot, generic, "sha256_digest, size {size}");
        assert_eq!(reader, generic, "sha256_digest_reader, size {size}");
        assert_eq!(from_file, generic, "sha256_digest_file, size {size}");
    }
    println!("{checked} digests agree with fsverity digest");
}

/// Sizes where a Merkle-tree level is exactly full, one hash short, or one hash over: the places
/// where an off-by-one in the level bookkeeping would show.
#[test]
fn tree_level_boundaries_match_fsverity_utils() {
    if !oracle_available("tree_level_boundaries_match_fsverity_utils") {
        return;
    }
    let seed = seed() ^ 0xb0_0da7;
    println!("boundary seed: {seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut checked = 0;

    for alg in ALGORITHMS {
        for bs in [1024usize, 2048, 4096] {
            let per_block = bs / alg.digest_size();
            let mut sizes = Vec::new();
            // One and two full levels of tree blocks, each +-1 data block and +-1 byte.
            for blocks in [per_block, per_block * per_block] {
                let full = blocks * bs;
                if full > (4 << 20) {
                    continue;
                }
                sizes.extend([full - bs, full - 1, full, full + 1, full + bs]);
            }
            sizes.extend([bs - 1, bs, bs + 1, 2 * bs]);
            for size in sizes {
                let data = rng.bytes(size);
                let path = write_file(dir.path(), &format!("b{checked}"), &data);
                let params = Params::new(alg, bs, &[]).expect("valid params");
                check(
                    &Case {
                        data: &data,
                        path: &path,
                        params,
                    },
                    &mut rng,
                    seed,
                );
                checked += 1;
            }
        }
    }
    println!("{checked} boundary digests agree with fsverity digest");
}
