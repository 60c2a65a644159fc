//! `mkcomposefs`: the C tool's interface, flags and output, with sealroot's writer.

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sealroot_core::files::write_atomically;
use sealroot_format::erofs::{self, WriteOptions};
use sealroot_format::{dumpfile, Tree};
use sealroot_verity::Params;

use crate::args::{scan, Arg, Spec};

const SPECS: &[Spec] = &[
    Spec {
        name: "digest-store",
        arg: Arg::Required,
    },
    Spec {
        name: "use-epoch",
        arg: Arg::None,
    },
    Spec {
        name: "skip-devices",
        arg: Arg::None,
    },
    Spec {
        name: "skip-xattrs",
        arg: Arg::None,
    },
    Spec {
        name: "user-xattrs",
        arg: Arg::None,
    },
    Spec {
        name: "print-digest",
        arg: Arg::None,
    },
    Spec {
        name: "print-digest-only",
        arg: Arg::None,
    },
    Spec {
        name: "from-file",
        arg: Arg::None,
    },
    Spec {
        name: "min-version",
        arg: Arg::Required,
    },
    Spec {
        name: "max-version",
        arg: Arg::Required,
    },
    Spec {
        name: "threads",
        arg: Arg::Required,
    },
    Spec {
        name: "hardlinks",
        arg: Arg::None,
    },
    Spec {
        name: "help",
        arg: Arg::None,
    },
];

fn usage(prog: &str) -> String {
    format!(
        "Usage: {prog} [OPTIONS] SOURCE IMAGE\n\
         Options:\n  \
         --digest-store=PATH   Store content files in this directory\n  \
         --use-epoch           Make all mtimes zero\n  \
         --skip-devices        Don't store device nodes\n  \
         --skip-xattrs         Don't store file xattrs\n  \
         --user-xattrs         Only store user.* xattrs\n  \
         --print-digest        Print the digest of the image\n  \
         --print-digest-only   Print the digest of the image, don't write image\n  \
         --from-file           The source is a dump file, not a directory\n  \
         --min-version=N       Use this minimal format version (default=0)\n  \
         --max-version=N       Use this maximum format version (default=1)\n  \
         --threads=N           Threads used to compute digests and copy files (default={}, twice that with --digest-store)\n  \
         --hardlinks           Keep hard links shared (one inode) instead of one inode per name\n",
        default_threads()
    )
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn parse_number(value: Option<&OsString>, what: &str) -> Result<Option<u32>> {
    let Some(v) = value else { return Ok(None) };
    let s = v.to_string_lossy();
    match s.parse::<u32>() {
        Ok(n) => Ok(Some(n)),
        Err(_) => bail!("Invalid {what} {s}"),
    }
}

/// Runs `mkcomposefs` with `args` (program name excluded).
pub fn run(prog: &str, args: &[OsString]) -> Result<()> {
    let p = scan(args, SPECS).map_err(|e| anyhow::anyhow!("{e}\n{}", usage(prog)))?;
    if p.flag("help") {
        print!("{}", usage(prog));
        return Ok(());
    }
    let print_digest_only = p.flag("print-digest-only");
    let print_digest = p.flag("print-digest") || print_digest_only;
    let min = parse_number(p.value("min-version"), "min version")?;
    let max = parse_number(p.value("max-version"), "max version")?;
    // As C: setting either version bound makes the unset one 0.
    let options = if min.is_some() || max.is_some() {
        WriteOptions {
            min_version: min.unwrap_or(0),
            max_version: max.unwrap_or(0),
        }
    } else {
        WriteOptions::default()
    };
    let threads = match parse_number(p.value("threads"), "threads count")? {
        Some(0) => bail!("Invalid threads count 0"),
        Some(n) => n as usize,
        // Let the library choose (one per CPU, two with a digest store).
        None => 0,
    };
    let source = match p.operands.first() {
        Some(s) if s.is_empty() => bail!("Empty source path specified"),
        Some(s) => PathBuf::from(s),
        None => bail!("No source path specified\n{}", usage(prog)),
    };
    if p.operands.len() > 2 {
        bail!("Too many arguments\n{}", usage(prog));
    }
    let out = match (p.operands.get(1), print_digest_only) {
        (None, false) => bail!("No destination path specified\n{}", usage(prog)),
        (Some(_), true) => bail!(
            "Cannot specify destination path with --print-digest-only\n{}",
            usage(prog)
        ),
        (o, _) => o.map(PathBuf::from),
    };
    if out.as_deref() == Some(Path::new("-")) && std::io::stdout().is_terminal() {
        bail!("stdout is a tty.  Refusing to use it");
    }

    let tree = if p.flag("from-file") {
        read_dumpfile(&source)?
    } else {
        let opts = sealroot_tree::BuildOptions {
            use_epoch: p.flag("use-epoch"),
            skip_devices: p.flag("skip-devices"),
            skip_xattrs: p.flag("skip-xattrs"),
            user_xattrs: p.flag("user-xattrs"),
            hardlinks: p.flag("hardlinks"),
            threads,
            digest_store: p.value("digest-store").map(PathBuf::from),
            ..Default::default()
        };
        let progress = crate::progress::Bar::new(true);
        let tree = sealroot_tree::build_from_dir(&source, &opts, &progress)
            .with_context(|| format!("cannot build a tree from {}", source.display()))?;
        progress.finish();
        tree
    };

    // The image streams to its destination, hashed on the way when its digest is wanted.
    let mut hasher =
        print_digest.then(|| sealroot_verity::Hasher::new(Params::composefs_default()));
    match out.as_deref() {
        None => emit(&tree, &options, hasher.as_mut(), &mut std::io::sink())
            .context("cannot write file")?,
        Some(path) if path == Path::new("-") => {
            let mut stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
            emit(&tree, &options, hasher.as_mut(), &mut stdout)
                .context("cannot write to stdout")?;
        }
        Some(path) => write_atomically(path, |file| -> Result<()> {
            let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
            emit(&tree, &options, hasher.as_mut(), &mut file).context("cannot write file")
        })?,
    }
    // The process ends here: freeing the tree, one allocation per name, payload and xattr,
    // would only delay that (by some 20 ms for /usr).
    std::mem::forget(tree);
    if let Some(h) = hasher {
        println!("{}", h.finish());
    }
    Ok(())
}

/// Writes the image of `tree` to `out` (flushed), feeding the same bytes to `hasher` if there
/// is one. The writer runs on this thread; the hashing and the writes run on another, in
/// pieces of about 64 KiB, so that on a machine with two CPUs or more they overlap.
fn emit(
    tree: &Tree,
    options: &WriteOptions,
    mut hasher: Option<&mut sealroot_verity::Hasher>,
    out: &mut (dyn Write + Send),
) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
    std::thread::scope(|scope| {
        let consumer = scope.spawn(move || -> std::io::Result<()> {
            for piece in rx {
                if let Some(h) = hasher.as_deref_mut() {
                    h.update(&piece);
                }
                out.write_all(&piece)?;
            }
            out.flush()
        });
        let written = erofs::write_to(tree, options, &mut ChannelSink(tx));
        // The sink is gone with `write_to`'s return: the consumer sees the end of the pieces.
        let consumed = match consumer.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        // A failed write stops the writer too (its sink closes): that failure is the cause.
        consumed?;
        written?;
        Ok(())
    })
}

/// A sink that hands what is written to [`emit`]'s consumer thread.
struct ChannelSink(std::sync::mpsc::SyncSender<Vec<u8>>);

impl Write for ChannelSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn read_dumpfile(source: &Path) -> Result<Tree> {
    let mut input = Vec::new();
    if source == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut input)
            .context("cannot read the dumpfile from stdin")?;
    } else {
        input = std::fs::read(source).with_context(|| format!("open `{}`", source.display()))?;
    }
    // As C: the variable set to anything (even empty) makes parsing strict. Otherwise C's
    // default, for compatibility: out-of-range numbers wrap as C wraps them.
    let mode = if std::env::var_os(PARSE_STRICT).is_some() {
        dumpfile::ParseMode::Strict
    } else {
        dumpfile::ParseMode::Compat
    };
    dumpfile::parse_with(&input, mode).with_context(|| format!("{}", source.display()))
}

/// C mkcomposefs's (hidden) switch to strict dumpfile parsing.
const PARSE_STRICT: &str = "CFS_PARSE_STRICT";
