//! Digests of readers and files: the only place this crate reads anything itself.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt as _;

use crate::merkle::{expect_sha256, Hasher};
use crate::{AnyDigest, Params, Sha256Digest};

/// The size of [`with_buffer`]'s buffer, the read size. Large enough that the per-`read` (or
/// per-copy) cost vanishes next to hashing, small enough that the buffer stays in a core's L2
/// cache between the copy and the hash.
pub const BUFFER_SIZE: usize = 256 * 1024;

thread_local! {
    /// One buffer per thread, reused across files: allocating it per file would cost a
    /// fresh `mmap` and its page faults every time, which dominates for small files.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's buffer of at least [`BUFFER_SIZE`] bytes (the one the digests
/// of readers and files read into; a new one if `f` is already running on this thread, as when
/// it hashes a file itself). Copying and hashing files elsewhere reuses it too.
pub fn with_buffer<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < BUFFER_SIZE {
                buf.resize(BUFFER_SIZE, 0);
            }
            f(&mut buf)
        }
        Err(_) => f(&mut vec![0; BUFFER_SIZE]),
    })
}

/// The fs-verity digest under `params` of everything `reader` yields.
pub fn digest_reader(params: &Params, mut reader: impl Read) -> io::Result<AnyDigest> {
    let mut h = Hasher::new(params.clone());
    with_buffer(|buf| loop {
        match reader.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    })?;
    Ok(h.finish())
}

/// The fs-verity digest under `params` of the whole of `file`.
///
/// The file is read from offset 0 with positional reads (`pread`), so its file position is
/// neither used nor moved: a file just written, positioned at its end, can be hashed as it is.
/// It must therefore be seekable (a regular file, not a pipe).
pub fn digest_file(params: &Params, file: &File) -> io::Result<AnyDigest> {
    let mut h = Hasher::new(params.clone());
    with_buffer(|buf| {
        let mut offset = 0u64;
        loop {
            match file.read_at(buf, offset) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    h.update(&buf[..n]);
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    })?;
    Ok(h.finish())
}

/// The composefs digest (sha256, 4 KiB blocks, no salt) of everything `reader` yields.
pub fn sha256_digest_reader(reader: impl Read) -> io::Result<Sha256Digest> {
    digest_reader(&Params::composefs_default(), reader).map(expect_sha256)
}

/// The composefs digest (sha256, 4 KiB blocks, no salt) of the whole of `file`, read with
/// large positional reads; see [`digest_file`].
pub fn sha256_digest_file(file: &File) -> io::Result<Sha256Digest> {
    digest_file(&Params::composefs_default(), file).map(expect_sha256)
}

/// The composefs digests of many files, hashed on rayon's thread pool, in the order given.
///
/// Each file is opened read-only and hashed with [`sha256_digest_file`]; one that cannot be
/// opened or read gets its own error without stopping the others.
#[cfg(feature = "parallel")]
pub fn sha256_digest_files_parallel(paths: &[std::path::PathBuf]) -> Vec<io::Result<Sha256Digest>> {
    use rayon::prelude::*;
    paths
        .par_iter()
        .map(|path| sha256_digest_file(&File::open(path)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{sha256_digest, HashAlgorithm};
    use std::io::Write as _;

    /// A reader that returns at most `step` bytes per call and is interrupted now and then.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
        calls: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 5 == 0 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    #[test]
    fn reader_matches_one_shot_despite_short_and_interrupted_reads() {
        let data = sample(3 * BUFFER_SIZE / 2 + 17);
        for step in [1, 1000, 4096, BUFFER_SIZE] {
            let r = Trickle {
                data: &data,
                step,
                calls: 0,
            };
            assert_eq!(sha256_digest_reader(r).unwrap(), sha256_digest(&data));
        }
    }

    #[test]
    fn file_digest_ignores_the_file_position() {
        let data = sample(BUFFER_SIZE + 4097);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        // The position is at the end after writing; the digest covers the whole file anyway.
        assert_eq!(sha256_digest_file(&f).unwrap(), sha256_digest(&data));
        let params = Params::new(HashAlgorithm::Sha512, 1024, b"x").unwrap();
        assert_eq!(
            digest_file(&params, &f).unwrap(),
            crate::digest(&params, &data)
        );
    }

    #[cfg(feature = "parallel")]
    #[test]
    fn parallel_digests_keep_order_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        let mut expected = Vec::new();
        for i in 0..8 {
            let data = sample(i * 5000);
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, &data).unwrap();
            paths.push(p);
            expected.push(Some(sha256_digest(&data)));
        }
        paths.insert(3, dir.path().join("missing"));
        expected.insert(3, None);
        let got: Vec<Option<Sha256Digest>> = sha256_digest_files_parallel(&paths)
            .into_iter()
            .map(Result::ok)
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn nested_buffers_are_distinct() {
        with_buffer(|outer| {
            assert!(outer.len() >= BUFFER_SIZE);
            outer[0] = 1;
            with_buffer(|inner| {
                assert_eq!(inner[0], 0);
                assert!(inner.len() >= BUFFER_SIZE);
            });
        });
    }
}
