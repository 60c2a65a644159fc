//! `composefs-info`: list, dump and inspect composefs images, with the C tool's output.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sealroot_format::{dumpfile, erofs, Content, DirEntry, InodeId, Tree};

use crate::args::{scan, Arg, Spec};

const SPECS: &[Spec] = &[
    Spec {
        name: "basedir",
        arg: Arg::Required,
    },
    Spec {
        name: "filter",
        arg: Arg::Required,
    },
    Spec {
        name: "help",
        arg: Arg::None,
    },
];

fn usage(prog: &str) -> String {
    format!(
        "usage: {prog} [--basedir=path] [ls|objects|dump|missing-objects|measure-file] IMAGES...\n"
    )
}

/// Runs `composefs-info` with `args` (program name excluded).
pub fn run(prog: &str, args: &[OsString]) -> Result<()> {
    let p = scan(args, SPECS).map_err(|e| anyhow::anyhow!("{e}\n{}", usage(prog)))?;
    if p.flag("help") {
        print!("{}", usage(prog));
        return Ok(());
    }
    let filters: Vec<Vec<u8>> = p
        .options
        .iter()
        .filter(|(n, _)| *n == "filter")
        .filter_map(|(_, v)| v.as_ref())
        .map(|v| v.as_bytes().to_vec())
        .collect();
    if let Some(f) = filters.iter().find(|f| f.contains(&b'/')) {
        bail!(
            "Filter must be a single name: {}",
            String::from_utf8_lossy(f)
        );
    }
    let Some(command) = p.operands.first() else {
        bail!("No command specified\n{}", usage(prog));
    };
    let images = &p.operands[1..];
    let command = command.to_string_lossy();
    if command == "measure-file" {
        if images.is_empty() {
            bail!("No files specified\n{}", usage(prog));
        }
        for path in images {
            let digest = measure_file(Path::new(path))?;
            println!("{digest}");
        }
        return Ok(());
    }
    if !matches!(&*command, "ls" | "dump" | "objects" | "missing-objects") {
        bail!("Unknown command '{command}'");
    }
    let basedir = p.value("basedir").map(PathBuf::from);
    if let Some(b) = &basedir {
        if !b.is_dir() {
            bail!("Can't open basedir `{}`", b.display());
        }
    }
    if images.is_empty() {
        bail!("No image path specified\n{}", usage(prog));
    }
    let mut objects = BTreeSet::new();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for image_path in images {
        let data = std::fs::read(image_path)
            .with_context(|| format!("Failed to open '{}'", Path::new(image_path).display()))?;
        let mut tree = erofs::read(&data)
            .with_context(|| format!("Failed to load '{}'", Path::new(image_path).display()))?;
        if !filters.is_empty() {
            filter_toplevel(&mut tree, &filters);
        }
        match &*command {
            "ls" => print_ls(&tree, &mut out)?,
            "dump" => dumpfile::write(&tree, &mut out)?,
            _ => {
                let missing_only = command == "missing-objects";
                for payload in payloads(&tree) {
                    if missing_only {
                        let rel = payload.strip_prefix(b"/").unwrap_or(&payload);
                        if let Some(b) = &basedir {
                            if b.join(std::ffi::OsStr::from_bytes(rel))
                                .symlink_metadata()
                                .is_ok()
                            {
                                continue;
                            }
                        }
                    }
                    objects.insert(payload);
                }
            }
        }
    }
    for o in objects {
        out.write_all(&o)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Keeps only the named top-level entries (`--filter`).
fn filter_toplevel(tree: &mut Tree, names: &[Vec<u8>]) {
    if let Content::Directory(entries) = &mut tree.inodes[0].content {
        entries.retain(|e| names.contains(&e.name));
    }
}

/// The backing-file payloads of every regular file reachable in `tree`.
fn payloads(tree: &Tree) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    tree.walk(|_, e: &DirEntry| {
        if let Content::Regular(f) = &tree.inode(e.inode).content {
            if let Some(p) = &f.payload {
                out.push(p.clone());
            }
        }
    });
    out
}

/// `composefs-info ls`: one line per name, directories with `/`, symlinks with `-> TARGET`,
/// external files with `@ PAYLOAD`.
fn print_ls(tree: &Tree, out: &mut impl Write) -> Result<()> {
    fn rec(
        tree: &Tree,
        dir: InodeId,
        path: &mut Vec<u8>,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        let Some(entries) = tree.inode(dir).entries() else {
            return Ok(());
        };
        for e in entries {
            let len = path.len();
            path.push(b'/');
            path.extend_from_slice(&e.name);
            let mut line = Vec::new();
            dumpfile::escape(&mut line, path, dumpfile::Escape::Listing);
            let inode = tree.inode(e.inode);
            // As C: a hard link's second name is listed bare.
            match if e.hardlink {
                &Content::Special
            } else {
                &inode.content
            } {
                Content::Directory(_) => line.extend_from_slice(b"/\t"),
                Content::Symlink(target) => {
                    line.extend_from_slice(b"\t-> ");
                    dumpfile::escape(&mut line, target, dumpfile::Escape::Standard);
                }
                Content::Regular(f) => {
                    if let Some(p) = &f.payload {
                        line.extend_from_slice(b"\t@ ");
                        dumpfile::escape(&mut line, p, dumpfile::Escape::Standard);
                    }
                }
                Content::Special => {}
            }
            line.push(b'\n');
            out.write_all(&line)?;
            if !e.hardlink {
                rec(tree, e.inode, path, out)?;
            }
            path.truncate(len);
        }
        Ok(())
    }
    rec(tree, InodeId::ROOT, &mut Vec::new(), out)?;
    Ok(())
}

/// The fs-verity digest of a file: the kernel's measurement where the file has fs-verity,
/// computed in userspace otherwise (as C `composefs-info measure-file`).
fn measure_file(path: &Path) -> Result<sealroot_verity::Sha256Digest> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("Failed to open '{}'", path.display()))?;
    if let Ok((alg, bytes)) = sealroot_sys::fsverity::measure_verity(&file) {
        if alg == 1 {
            if let Ok(d) = sealroot_verity::Sha256Digest::from_slice(&bytes) {
                return Ok(d);
            }
        }
        bail!(
            "failed to measure '{}': file has fs-verity with another algorithm",
            path.display()
        );
    }
    sealroot_verity::sha256_digest_reader(&file)
        .with_context(|| format!("failed to measure '{}'", path.display()))
}
