//! The digest cache on real directories: unchanged files are not read again, every kind of
//! change is, and a build with the cache gives the same image, byte for byte, as one without.
//!
//! A file is cached only once its ctime is [`RACY_WINDOW`] old, so the tests make their trees
//! and then wait that long once.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::{AtFlags, Timestamps, CWD};
use sealroot_format::erofs::{self, WriteOptions};
use sealroot_tree::cache::RACY_WINDOW;
use sealroot_tree::{
    build_from_dir, BuildOptions, CacheError, CacheFormatError, DigestCache, Progress, Tree,
};

/// Bytes of length `n`, different for every `seed`.
fn content(seed: u32, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(seed * 7 + (i as u32 >> 12)) as u8
        })
        .collect()
}

/// External files, one of them larger than what the walk hands over open (1 MiB), two inline
/// files, an empty file, and a hard link (read once for both names).
const EXTERNAL: [(&str, usize); 6] = [
    ("a", 65),
    ("b", 4096),
    ("sub/c", 100_000),
    ("sub/d", 12_345),
    ("sub/deeper/e", 3 << 20),
    ("f", 777),
];

fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    for (i, (name, len)) in EXTERNAL.iter().enumerate() {
        fs::write(root.join(name), content(i as u32, *len)).unwrap();
    }
    fs::write(root.join("inline1"), b"small\n").unwrap();
    fs::write(root.join("sub/inline2"), content(99, 64)).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::hard_link(root.join("f"), root.join("sub/f-link")).unwrap();
    std::os::unix::fs::symlink("a", root.join("link")).unwrap();
}

/// Waits until every file made so far is old enough to be cached.
fn settle() {
    std::thread::sleep(RACY_WINDOW + Duration::from_millis(150));
}

/// Counts whole files read and files taken from the cache.
#[derive(Default)]
struct Counter {
    read: AtomicU64,
    cached: AtomicU64,
    cached_bytes: AtomicU64,
    stored: AtomicU64,
}

impl Progress for Counter {
    fn files_hashed(&self, n_files: u64, _n_bytes: u64) {
        self.read.fetch_add(n_files, Ordering::Relaxed);
    }
    fn files_cached(&self, n_files: u64, n_bytes: u64) {
        self.cached.fetch_add(n_files, Ordering::Relaxed);
        self.cached_bytes.fetch_add(n_bytes, Ordering::Relaxed);
    }
    fn objects_stored(&self, n_files: u64, _n_bytes: u64) {
        self.stored.fetch_add(n_files, Ordering::Relaxed);
    }
}

/// Builds `dir` with `cache` (and `opts`); returns the tree, the files read and the files
/// taken from the cache.
fn build(dir: &Path, opts: &BuildOptions, cache: Option<&Arc<DigestCache>>) -> (Tree, u64, u64) {
    let counter = Counter::default();
    let opts = BuildOptions {
        cache: cache.cloned(),
        ..opts.clone()
    };
    let tree = build_from_dir(dir, &opts, &counter).unwrap();
    let read = counter.read.load(Ordering::Relaxed);
    let cached = counter.cached.load(Ordering::Relaxed);
    (tree, read, cached)
}

/// The image of a tree.
fn image(tree: &Tree) -> Vec<u8> {
    erofs::write(tree, &WriteOptions::default()).unwrap()
}

/// The image of a full build of `dir`, without any cache.
fn full_image(dir: &Path, opts: &BuildOptions) -> Vec<u8> {
    image(&build(dir, opts, None).0)
}

/// Files the content threads read in every build: the two inline ones.
const INLINE: u64 = 2;

#[test]
fn unchanged_files_are_not_read_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    make_tree(&dir);
    settle();
    let opts = BuildOptions::default();
    let full = full_image(&dir, &opts);

    let cache = Arc::new(DigestCache::new());
    let (first, read, cached) = build(&dir, &opts, Some(&cache));
    assert_eq!((read, cached), (EXTERNAL.len() as u64 + INLINE, 0));
    assert_eq!(cache.len(), EXTERNAL.len());
    assert_eq!(image(&first), full);

    for threads in [1, 3] {
        let opts = BuildOptions {
            threads,
            ..Default::default()
        };
        let (again, read, cached) = build(&dir, &opts, Some(&cache));
        assert_eq!((read, cached), (INLINE, EXTERNAL.len() as u64), "{threads}");
        assert_eq!(again, first);
        assert_eq!(image(&again), full, "{threads} threads");
    }

    // Through a file: saved, loaded, used.
    let file = tmp.path().join("devino");
    cache.save(&file).unwrap();
    let (loaded, warning) = DigestCache::load(&file);
    assert!(warning.is_none(), "{warning:?}");
    let loaded = Arc::new(loaded);
    let (again, read, cached) = build(&dir, &opts, Some(&loaded));
    assert_eq!((read, cached), (INLINE, EXTERNAL.len() as u64));
    assert_eq!(image(&again), full);

    // Without inlining, the small files are external and cached too.
    let no_inline = BuildOptions {
        no_inline: true,
        ..Default::default()
    };
    let full_no_inline = full_image(&dir, &no_inline);
    build(&dir, &no_inline, Some(&cache));
    let (again, read, cached) = build(&dir, &no_inline, Some(&cache));
    assert_eq!((read, cached), (0, EXTERNAL.len() as u64 + INLINE));
    assert_eq!(image(&again), full_no_inline);

    // A file gone: a cache loaded again keeps only the entries of the files still there.
    fs::remove_file(dir.join("sub/d")).unwrap();
    let (loaded, _) = DigestCache::load(&file);
    let loaded = Arc::new(loaded);
    assert!(loaded.is_empty(), "nothing is kept before it is used");
    let (_, read, cached) = build(&dir, &opts, Some(&loaded));
    assert_eq!((read, cached), (INLINE, EXTERNAL.len() as u64 - 1));
    assert_eq!(loaded.len(), EXTERNAL.len() - 1);
}

#[test]
fn every_kind_of_change_is_read_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    make_tree(&dir);
    settle();
    let opts = BuildOptions::default();
    let cache = Arc::new(DigestCache::new());
    build(&dir, &opts, Some(&cache));

    // Grown.
    let mut grown = fs::read(dir.join("a")).unwrap();
    grown.extend_from_slice(b"more");
    fs::write(dir.join("a"), &grown).unwrap();
    // Another content of the same size, in place, with its mtime put back: only the ctime
    // tells.
    let b = dir.join("b");
    let before = fs::metadata(&b).unwrap();
    fs::write(&b, content(1000, 4096)).unwrap();
    let mtime = rustix::fs::Timespec {
        tv_sec: mtime_of(&before).0,
        tv_nsec: mtime_of(&before).1 as _,
    };
    rustix::fs::utimensat(
        CWD,
        &b,
        &Timestamps {
            last_access: mtime,
            last_modification: mtime,
        },
        AtFlags::empty(),
    )
    .unwrap();
    let after = fs::metadata(&b).unwrap();
    assert_eq!(
        (after.len(), mtime_of(&after)),
        (before.len(), mtime_of(&before))
    );
    // Replaced by another file renamed over it, same size and mtime.
    let c = dir.join("sub/c");
    let c_new = dir.join("sub/c.new");
    fs::write(&c_new, content(2000, 100_000)).unwrap();
    let c_mtime = mtime_of(&fs::metadata(&c).unwrap());
    let t = rustix::fs::Timespec {
        tv_sec: c_mtime.0,
        tv_nsec: c_mtime.1 as _,
    };
    rustix::fs::utimensat(
        CWD,
        &c_new,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::empty(),
    )
    .unwrap();
    fs::rename(&c_new, &c).unwrap();
    // Only its mode changed: read again, same digest.
    fs::set_permissions(dir.join("sub/d"), fs::Permissions::from_mode(0o600)).unwrap();
    // The large one, one byte flipped.
    let mut e = fs::read(dir.join("sub/deeper/e")).unwrap();
    e[0] ^= 1;
    fs::write(dir.join("sub/deeper/e"), &e).unwrap();

    let (tree, read, cached) = build(&dir, &opts, Some(&cache));
    assert_eq!((read, cached), (5 + INLINE, 1), "only f is unchanged");
    assert_eq!(image(&tree), full_image(&dir, &opts));
    let digest_of = |name: &str| match &tree.inode(tree.resolve(name.as_bytes()).unwrap()).content {
        sealroot_format::tree::Content::Regular(r) => r.digest,
        _ => unreachable!(),
    };
    assert_eq!(
        digest_of("b"),
        Some(sealroot_verity::sha256_digest(&content(1000, 4096)).into())
    );
    assert_eq!(
        digest_of("sub/c"),
        Some(sealroot_verity::sha256_digest(&content(2000, 100_000)).into())
    );
    // The changed files were changed just now: they are read until they settle.
    let (_, read, _) = build(&dir, &opts, Some(&cache));
    assert_eq!(read, 5 + INLINE);
    settle();
    build(&dir, &opts, Some(&cache));
    let (again, read, cached) = build(&dir, &opts, Some(&cache));
    assert_eq!((read, cached), (INLINE, EXTERNAL.len() as u64));
    assert_eq!(image(&again), image(&tree));
}

fn mtime_of(m: &fs::Metadata) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (m.mtime(), m.mtime_nsec())
}

#[test]
fn files_changed_just_now_are_not_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    make_tree(&dir);
    let cache = Arc::new(DigestCache::new());
    let opts = BuildOptions::default();
    build(&dir, &opts, Some(&cache));
    assert!(cache.is_empty(), "{} entries", cache.len());
    let (_, read, cached) = build(&dir, &opts, Some(&cache));
    assert_eq!((read, cached), (EXTERNAL.len() as u64 + INLINE, 0));
}

#[test]
fn with_a_digest_store_the_object_must_be_there() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    let store = tmp.path().join("store");
    make_tree(&dir);
    settle();
    let opts = BuildOptions {
        digest_store: Some(store.clone()),
        ..Default::default()
    };
    let cache = Arc::new(DigestCache::new());
    let (first, _, _) = build(&dir, &opts, Some(&cache));

    let counter = Counter::default();
    let with_cache = BuildOptions {
        cache: Some(cache.clone()),
        ..opts.clone()
    };
    let again = build_from_dir(&dir, &with_cache, &counter).unwrap();
    assert_eq!(again, first);
    assert_eq!(counter.read.load(Ordering::Relaxed), INLINE);
    assert_eq!(counter.stored.load(Ordering::Relaxed), 0);
    let external_bytes: usize = EXTERNAL.iter().map(|(_, n)| n).sum();
    assert_eq!(
        counter.cached_bytes.load(Ordering::Relaxed),
        external_bytes as u64
    );

    // An object gone from the store: its file is read and stored again, the others not.
    let e = content(4, 3 << 20);
    let object = store.join(sealroot_verity::sha256_digest(&e).object_path());
    fs::remove_file(&object).unwrap();
    let counter = Counter::default();
    let again = build_from_dir(&dir, &with_cache, &counter).unwrap();
    assert_eq!(again, first);
    assert_eq!(counter.read.load(Ordering::Relaxed), INLINE + 1);
    assert_eq!(
        counter.cached.load(Ordering::Relaxed),
        EXTERNAL.len() as u64 - 1
    );
    assert_eq!(counter.stored.load(Ordering::Relaxed), 1);
    assert_eq!(fs::read(&object).unwrap(), e);
}

#[test]
fn a_damaged_cache_file_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    make_tree(&dir);
    settle();
    let opts = BuildOptions::default();
    let cache = Arc::new(DigestCache::new());
    build(&dir, &opts, Some(&cache));
    let file = tmp.path().join("devino");
    cache.save(&file).unwrap();

    // A digest changed in the file: were it trusted, the image would be wrong.
    let mut bytes = fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 0xff;
    fs::write(&file, &bytes).unwrap();
    let (loaded, warning) = DigestCache::load(&file);
    assert!(
        matches!(
            warning,
            Some(CacheError::Invalid {
                source: CacheFormatError::Checksum,
                ..
            })
        ),
        "{warning:?}"
    );
    let loaded = Arc::new(loaded);
    let (tree, read, cached) = build(&dir, &opts, Some(&loaded));
    assert_eq!((read, cached), (EXTERNAL.len() as u64 + INLINE, 0));
    assert_eq!(image(&tree), full_image(&dir, &opts));

    // Not a cache at all, or cut short.
    fs::write(&file, b"hello").unwrap();
    assert!(matches!(
        DigestCache::load(&file).1,
        Some(CacheError::Invalid { .. })
    ));
    fs::write(&file, &bytes[..n / 2]).unwrap();
    let (empty, warning) = DigestCache::load(&file);
    assert!(warning.is_some() && empty.is_empty());
}

/// A sha512 build with a sha512 cache reads nothing twice and gives the full build's tree;
/// a cache of the other algorithm is refused rather than mixed in.
#[test]
fn sha512_builds_use_a_sha512_cache_only() {
    use sealroot_tree::BuildError;
    use sealroot_verity::HashAlgorithm;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    make_tree(&dir);
    settle();
    let opts = BuildOptions {
        algorithm: HashAlgorithm::Sha512,
        ..Default::default()
    };
    let (full, _, _) = build(&dir, &opts, None);
    let cache = Arc::new(DigestCache::for_algorithm(HashAlgorithm::Sha512));
    let (first, read, _) = build(&dir, &opts, Some(&cache));
    assert_eq!(read, EXTERNAL.len() as u64 + INLINE);
    assert_eq!(first, full);
    let (again, read, cached) = build(&dir, &opts, Some(&cache));
    assert_eq!((read, cached), (INLINE, EXTERNAL.len() as u64));
    assert_eq!(again, full);
    // Saved and loaded, it still says sha512.
    let file = tmp.path().join("devino");
    cache.save(&file).unwrap();
    let (loaded, warning) = DigestCache::load(&file);
    assert!(warning.is_none(), "{warning:?}");
    assert_eq!(loaded.algorithm(), HashAlgorithm::Sha512);

    for (wanted, cache) in [
        (HashAlgorithm::Sha256, Arc::new(loaded)),
        (HashAlgorithm::Sha512, Arc::new(DigestCache::new())),
    ] {
        let opts = BuildOptions {
            algorithm: wanted,
            cache: Some(cache),
            ..Default::default()
        };
        let r = build_from_dir(&dir, &opts, &Counter::default());
        assert!(
            matches!(r, Err(BuildError::AlgorithmMismatch { wanted: w, .. }) if w == wanted),
            "{r:?}"
        );
    }
}
