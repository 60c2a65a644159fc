//! Times `build_from_dir` on a directory: the metadata walk (during which files are already
//! read) and the whole build.
//!
//! ```text
//! cargo run --release -p sealroot-tree --example walk -- DIR [--threads N] [--store DIR]
//!     [--hardlinks] [--print]
//! ```
//!
//! `--print` lists every regular file's path and digest (or `inline`), for comparing with
//! `fsverity digest`; `--print-digest` writes the image in memory and prints its fs-verity
//! digest, as `mkcomposefs --print-digest-only` does; `--compare IMAGE` reads a composefs
//! image (say one C `mkcomposefs` made of the same directory) and lists how its tree differs.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sealroot_format::tree::Content;
use sealroot_tree::{build_from_dir, BuildOptions, Progress};

/// Notes when the walk ends.
struct Timer {
    start: Instant,
    walk: Mutex<Option<(Duration, u64, u64, u64)>>,
}

impl Progress for Timer {
    fn walk_done(&self, n_inodes: u64, n_files: u64, n_bytes: u64) {
        *self.walk.lock().unwrap() = Some((self.start.elapsed(), n_inodes, n_files, n_bytes));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut opts = BuildOptions::default();
    let mut print = false;
    let mut image_digest = false;
    let mut compare = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => opts.threads = args.next().ok_or("--threads N")?.parse()?,
            "--store" => opts.digest_store = Some(PathBuf::from(args.next().ok_or("--store DIR")?)),
            "--hardlinks" => opts.hardlinks = true,
            "--print" => print = true,
            "--print-digest" => image_digest = true,
            "--compare" => compare = Some(PathBuf::from(args.next().ok_or("--compare IMAGE")?)),
            "--skip-xattrs" => opts.skip_xattrs = true,
            "--user-xattrs" => opts.user_xattrs = true,
            "--use-epoch" => opts.use_epoch = true,
            "--skip-devices" => opts.skip_devices = true,
            "--no-digest" => {
                opts.compute_digest = false;
                opts.by_digest = false;
                opts.no_inline = true;
            }
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    let dir = dir.ok_or("usage: walk DIR [--threads N] [--store DIR] [--hardlinks] [--print]")?;

    let timer = Timer {
        start: Instant::now(),
        walk: Mutex::new(None),
    };
    let tree = build_from_dir(&dir, &opts, &timer)?;
    let total = timer.start.elapsed();
    let (walk, inodes, files, bytes) = timer.walk.lock().unwrap().expect("walk_done was called");
    eprintln!(
        "{}: {inodes} inodes, walked in {:.3} s; {files} files, {:.2} GB read; total {:.3} s ({:.2} GB/s), {} threads",
        dir.display(),
        walk.as_secs_f64(),
        bytes as f64 / 1e9,
        total.as_secs_f64(),
        bytes as f64 / 1e9 / total.as_secs_f64(),
        opts.thread_count(),
    );
    if image_digest {
        let t = Instant::now();
        let image = sealroot_format::erofs::write(&tree, &Default::default())?;
        let digest = sealroot_verity::sha256_digest(&image);
        eprintln!(
            "image of {} bytes written and hashed in {:.3} s",
            image.len(),
            t.elapsed().as_secs_f64()
        );
        println!("{digest}");
    }
    if let Some(image) = compare {
        let bytes = std::fs::read(&image)?;
        let other = sealroot_format::erofs::read(&bytes)?;
        let n = differences(&tree, &other);
        let again = sealroot_format::erofs::write(&other, &Default::default())?;
        if again != bytes {
            eprintln!(
                "note: writing the tree read from {} does not give it back",
                image.display()
            );
        }
        eprintln!("{n} differences with {}", image.display());
    }
    if print {
        tree.walk(|path, entry| {
            if let Content::Regular(r) = &tree.inode(entry.inode).content {
                let what = match (&r.inline, &r.digest) {
                    (Some(_), _) => "inline".to_string(),
                    (None, Some(d)) => d.to_hex(),
                    (None, None) => "-".to_string(),
                };
                println!("{what} {}", String::from_utf8_lossy(path));
            }
        });
    }
    Ok(())
}

/// Prints every difference between `ours` and `theirs`, path by path; returns how many.
fn differences(ours: &sealroot_format::Tree, theirs: &sealroot_format::Tree) -> usize {
    use std::collections::BTreeMap;
    let paths = |t: &sealroot_format::Tree| {
        let mut m = BTreeMap::new();
        m.insert(Vec::new(), sealroot_format::InodeId::ROOT);
        t.walk(|p, e| {
            m.insert(p.to_vec(), e.inode);
        });
        m
    };
    let (a, b) = (paths(ours), paths(theirs));
    let mut n = 0;
    for (path, &ia) in &a {
        let shown = String::from_utf8_lossy(path);
        let Some(&ib) = b.get(path) else {
            println!("only ours: {shown}");
            n += 1;
            continue;
        };
        let (x, y) = (ours.inode(ia), theirs.inode(ib));
        let mut xs = x.xattrs.clone();
        let mut ys = y.xattrs.clone();
        xs.sort();
        ys.sort();
        let mut sx = x.stat.clone();
        let mut sy = y.stat.clone();
        if !matches!(x.content, Content::Regular(_)) {
            (sx.size, sy.size) = (0, 0);
        }
        if sx != sy {
            println!("stat {shown}: ours {sx:?} theirs {sy:?}");
            n += 1;
        }
        if xs != ys {
            println!("xattrs {shown}: ours {xs:?} theirs {ys:?}");
            n += 1;
        }
        let same_content = match (&x.content, &y.content) {
            (Content::Directory(_), Content::Directory(_)) => true,
            (p, q) => p == q,
        };
        if !same_content {
            println!(
                "content {shown}: ours {:?} theirs {:?}",
                x.content, y.content
            );
            n += 1;
        }
    }
    for path in b.keys().filter(|p| !a.contains_key(*p)) {
        println!("only theirs: {}", String::from_utf8_lossy(path));
        n += 1;
    }
    n
}
