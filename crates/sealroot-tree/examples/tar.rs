//! Times `build_from_tar` on an archive (plain, gzip or zstd; `-` for standard input).
//!
//! ```text
//! cargo run --release -p sealroot-tree --example tar -- ARCHIVE [--threads N] [--store DIR]
//!     [--hardlinks] [--print-digest]
//! ```
//!
//! `--store DIR` writes every object into the digest store `DIR` (else contents are only
//! hashed); `--print-digest` writes the image in memory and prints its fs-verity digest, as
//! `mkcomposefs --print-digest-only` does, to compare with the image of a directory.

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use sealroot_format::erofs::{self, WriteOptions};
use sealroot_format::tree::Content;
use sealroot_tree::tar::{build_from_tar, DirStore, HashOnly, ObjectSink, TarOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut archive = None;
    let mut opts = TarOptions::default();
    let mut store = None;
    let mut print_digest = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => opts.threads = args.next().ok_or("--threads N")?.parse()?,
            "--store" => store = Some(PathBuf::from(args.next().ok_or("--store DIR")?)),
            "--hardlinks" => opts.hardlinks = true,
            "--print-digest" => print_digest = true,
            _ if archive.is_none() => archive = Some(a),
            _ => return Err(format!("unexpected argument {a}").into()),
        }
    }
    let archive = archive.ok_or("usage: tar ARCHIVE [--threads N] [--store DIR]")?;
    let input: Box<dyn Read> = if archive == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(&archive)?)
    };
    let dir_store;
    let sink: &dyn ObjectSink = match &store {
        Some(path) => {
            dir_store = DirStore::open(path)?;
            &dir_store
        }
        None => &HashOnly::default(),
    };

    let start = Instant::now();
    let tree = build_from_tar(input, &opts, sink)?;
    let elapsed = start.elapsed();
    let (mut files, mut bytes) = (0u64, 0u64);
    for inode in &tree.inodes {
        if let Content::Regular(_) = inode.content {
            files += 1;
            bytes += inode.stat.size;
        }
    }
    eprintln!(
        "{} inodes, {files} files, {:.1} MiB in {:.2} s ({} threads)",
        tree.inodes.len(),
        bytes as f64 / f64::from(1 << 20),
        elapsed.as_secs_f64(),
        opts.thread_count(),
    );
    if print_digest {
        let image = erofs::write(&tree, &WriteOptions::default())?;
        println!("{}", sealroot_verity::sha256_digest(&image));
    }
    Ok(())
}
