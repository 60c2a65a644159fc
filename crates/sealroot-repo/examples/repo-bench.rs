//! Times the repository's big operations on a real tree, for BENCHMARKS.md:
//!
//! ```text
//! cargo run --release -p sealroot-repo --example repo-bench -- commit SOURCE REPO
//! cargo run --release -p sealroot-repo --example repo-bench -- store-files SOURCE REPO
//! cargo run --release -p sealroot-repo --example repo-bench -- fsck REPO
//! cargo run --release -p sealroot-repo --example repo-bench -- gc REPO [--dry-run]
//! cargo run --release -p sealroot-repo --example repo-bench -- drop-ref REPO NAME
//! ```
//!
//! `commit` builds SOURCE into REPO's objects (`sealroot_tree::build_from_dir` with the
//! digest store), writes the image and sets ref `bench` in one transaction. `store-files`
//! stores every regular file of SOURCE larger than 64 bytes with
//! `Transaction::ensure_object_from_fd`, one at a time on one thread, as a tar importer
//! would, and flushes once at the end.

use std::path::Path;
use std::time::Instant;

use sealroot_format::erofs::WriteOptions;
use sealroot_repo::{FsckOptions, GcOptions, InitOptions, Phase, Progress, RefName, Repository};
use sealroot_tree::{build_from_dir, BuildOptions};

/// Prints when each phase starts.
struct Phases(Instant);

impl Progress for Phases {
    fn phase(&self, phase: Phase, items: Option<u64>, _bytes: Option<u64>) {
        let t = self.0.elapsed().as_secs_f64();
        eprintln!("  {t:7.3} s  {phase:?} ({items:?} items)");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: repo-bench commit SOURCE REPO | store-files SOURCE REPO | fsck REPO \
                 | gc REPO [--dry-run] | drop-ref REPO NAME";
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["commit", source, repo] => {
            let repo = Repository::init(Path::new(repo), &InitOptions::default())?;
            let start = Instant::now();
            let tx = repo.transaction()?;
            let opts = BuildOptions {
                object_store: Some(tx.object_store()),
                ..BuildOptions::default()
            };
            let tree = build_from_dir(Path::new(source), &opts, &sealroot_tree::NoProgress)?;
            let built = start.elapsed();
            let image = tx.write_image(&tree, &WriteOptions::default())?;
            let imaged = start.elapsed();
            tx.set_ref(&RefName::new("bench")?, &image)?;
            let stats = tx.finish()?;
            let total = start.elapsed();
            println!(
                "commit: {:.2} s (tree + objects {:.2} s, image {:.2} s, syncfs + ref {:.2} s)",
                total.as_secs_f64(),
                built.as_secs_f64(),
                (imaged - built).as_secs_f64(),
                (total - imaged).as_secs_f64()
            );
            println!("image {image}; {stats:?}");
        }
        ["store-files", source, repo] => {
            // Every regular file over 64 bytes, one at a time, as a tar importer would.
            let repo = Repository::init(Path::new(repo), &InitOptions::default())?;
            let start = Instant::now();
            let tx = repo.transaction()?;
            let mut stack = vec![std::path::PathBuf::from(source)];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir)? {
                    let entry = entry?;
                    let ft = entry.file_type()?;
                    if ft.is_dir() {
                        stack.push(entry.path());
                    } else if ft.is_file() && entry.metadata()?.len() > 64 {
                        let file = std::fs::File::open(entry.path())?;
                        tx.ensure_object_from_fd(std::os::fd::AsFd::as_fd(&file))?;
                    }
                }
            }
            let stored = start.elapsed();
            let stats = tx.finish()?;
            println!(
                "store-files: {:.2} s ({:.2} s storing, {:.2} s final syncfs); {stats:?}",
                start.elapsed().as_secs_f64(),
                stored.as_secs_f64(),
                (start.elapsed() - stored).as_secs_f64()
            );
        }
        ["fsck", repo] => {
            let repo = Repository::open(Path::new(repo))?;
            let start = Instant::now();
            let report = repo.fsck(&FsckOptions::check(), &Phases(start))?;
            let t = start.elapsed().as_secs_f64();
            println!(
                "fsck: {t:.2} s, {} objects, {} bytes ({:.0} MB/s), {} images, {} refs, clean: {}",
                report.objects_checked,
                report.bytes_checked,
                report.bytes_checked as f64 / t / 1e6,
                report.images_checked,
                report.refs_checked,
                report.is_clean()
            );
        }
        ["gc", repo, ref rest @ ..] => {
            let repo = Repository::open(Path::new(repo))?;
            let options = if rest == ["--dry-run"] {
                GcOptions::dry_run()
            } else {
                GcOptions::remove()
            };
            let start = Instant::now();
            let report = repo.gc(&options, &Phases(start))?;
            println!("gc: {:.2} s, {report:?}", start.elapsed().as_secs_f64());
        }
        ["drop-ref", repo, name] => {
            let repo = Repository::open(Path::new(repo))?;
            repo.remove_ref(&RefName::new(name)?)?;
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
