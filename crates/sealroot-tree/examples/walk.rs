//! Times `build_from_dir` on a directory: the metadata walk, then the whole build.
//!
//! ```text
//! cargo run --release -p sealroot-tree --example walk -- DIR [--threads N] [--store DIR]
//!     [--hardlinks] [--print]
//! ```
//!
//! `--print` lists every regular file's path and digest (or `inline`), for comparing with
//! `fsverity digest`.

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
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => opts.threads = args.next().ok_or("--threads N")?.parse()?,
            "--store" => opts.digest_store = Some(PathBuf::from(args.next().ok_or("--store DIR")?)),
            "--hardlinks" => opts.hardlinks = true,
            "--print" => print = true,
            "--skip-xattrs" => opts.skip_xattrs = true,
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
    let hashing = total - walk;
    eprintln!(
        "{}: {inodes} inodes; walk {:.3} s; {files} files, {:.2} GB read in {:.3} s ({:.2} GB/s); total {:.3} s, {} threads",
        dir.display(),
        walk.as_secs_f64(),
        bytes as f64 / 1e9,
        hashing.as_secs_f64(),
        bytes as f64 / 1e9 / hashing.as_secs_f64(),
        total.as_secs_f64(),
        opts.thread_count(),
    );
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
