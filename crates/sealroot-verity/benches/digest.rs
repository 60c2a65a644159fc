//! Throughput of the fs-verity digest against plain SHA-256/512 of the same bytes.
//!
//! `cargo bench -p sealroot-verity --bench digest`. Plain SHA over the buffer is the ceiling:
//! the Merkle tree hashes each data block once more with padding, plus 1/128 (sha256, 4 KiB)
//! of tree blocks, so a good implementation lands a few per cent under it.

use std::hint::black_box;
use std::io::Write as _;

use criterion::{BenchmarkId, Criterion, Throughput};
use sealroot_verity::{digest, sha256_digest, sha256_digest_file, HashAlgorithm, Params};
use sha2::Digest as _;

const SIZE: usize = 64 << 20;

fn buffer() -> Vec<u8> {
    // Cheap non-repeating bytes; hash speed does not depend on content.
    let mut state = 0x243f_6a88_85a3_08d3u64;
    let mut v = Vec::with_capacity(SIZE);
    while v.len() < SIZE {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        v.extend_from_slice(&state.to_le_bytes());
    }
    v
}

fn benches(c: &mut Criterion) {
    let data = buffer();
    let mut g = c.benchmark_group("64MiB");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(10);

    g.bench_function("plain sha256", |b| {
        b.iter(|| sha2::Sha256::digest(black_box(&data)))
    });
    g.bench_function("plain sha512", |b| {
        b.iter(|| sha2::Sha512::digest(black_box(&data)))
    });
    g.bench_function("sha256_digest (composefs)", |b| {
        b.iter(|| sha256_digest(black_box(&data)))
    });
    for alg in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
        for bs in [1024usize, 4096, 65536] {
            let params = Params::new(alg, bs, &[]).unwrap();
            g.bench_with_input(
                BenchmarkId::new(format!("verity {alg}"), bs),
                &params,
                |b, p| b.iter(|| digest(p, black_box(&data))),
            );
        }
    }
    let salted = Params::new(HashAlgorithm::Sha256, 4096, b"sealroot").unwrap();
    g.bench_function("verity sha256 4096 salted", |b| {
        b.iter(|| digest(&salted, black_box(&data)))
    });

    // From a file in the page cache, through sha256_digest_file's pread loop.
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&data).unwrap();
    g.bench_function("sha256_digest_file (page cache)", |b| {
        b.iter(|| sha256_digest_file(black_box(&file)).unwrap())
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
