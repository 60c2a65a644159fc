//! The repository commands, one module per verb or small family of verbs. Each parses its
//! arguments (clap), calls the library (`sealroot-core`, `sealroot-repo`), and prints text
//! or, with `--json`, one JSON document; errors become exit codes in `main`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use sealroot_repo::Repository;

use crate::progress::Bar;

mod browse;
mod commit;
mod derive;
mod docs;
mod history;
mod maintain;
mod mount;
mod repo;
mod trust;

/// The repository `cfsctl` also uses by default.
const DEFAULT_REPO: &str = "/sysroot/composefs";

#[derive(Parser)]
#[command(
    name = "sealroot",
    version,
    about = "Composefs images in a verified object store"
)]
pub(crate) struct Cli {
    /// The repository (default: $SEALROOT_REPO, else /sysroot/composefs).
    #[arg(long, global = true, env = "SEALROOT_REPO", default_value = DEFAULT_REPO)]
    repo: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a repository.
    Init(repo::InitArgs),
    /// Store a directory or a tar archive (plain, gzip, zstd; `-` for stdin) as a commit and
    /// move a ref to it.
    Commit(commit::CommitArgs),
    /// The history of a commit ref, newest first.
    Log(history::LogArgs),
    /// What a commit says.
    Show(history::ShowArgs),
    /// The paths that differ between two commits (A added, D removed, M modified).
    Diff(history::DiffArgs),
    /// ed25519 keys for signing commits (ostree's base64 formats).
    Key {
        #[command(subcommand)]
        cmd: trust::KeyCmd,
    },
    /// Sign a commit with each ed25519 secret key of a file; with --fsverity-key and
    /// --fsverity-cert, also sign its image's fs-verity digest for the kernel (PKCS#7).
    Sign(trust::SignArgs),
    /// Check a commit's signatures, then re-create its image from the tree objects.
    Verify(trust::VerifyArgs),
    /// Re-create a commit's image from its tree objects alone, check it is the one the commit
    /// records, and store it (or write it to a file).
    Derive(derive::DeriveArgs),
    /// fs-verity built-in signatures (as fsverity-utils).
    Fsverity {
        #[command(subcommand)]
        cmd: trust::FsverityCmd,
    },
    /// Mount the image a ref names.
    Mount(mount::MountArgs),
    /// Show the repository's configuration and what it holds.
    Status,
    /// List the refs, or delete some (--delete).
    Refs(repo::RefsArgs),
    /// List the images.
    Images,
    /// List the objects.
    Objects,
    /// List a directory of an image without mounting it.
    Ls(browse::LsArgs),
    /// Print a file of an image without mounting it (its object checked first).
    Cat(browse::CatArgs),
    /// Check every object, image, ref and commit.
    Fsck(maintain::FsckArgs),
    /// Remove what no ref reaches.
    Gc(maintain::GcArgs),
    /// Write man pages for every command into a directory.
    #[command(hide = true)]
    Man(docs::ManArgs),
    /// Print a shell completion script.
    Completions(docs::CompletionsArgs),
}

/// What every command gets: where the repository is and how to print.
pub(crate) struct Ctx {
    repo: PathBuf,
    json: bool,
}

impl Ctx {
    /// Opens the repository.
    fn open(&self) -> Result<Repository> {
        open(&self.repo)
    }

    /// Runs `f` with a progress bar (drawn unless the output is JSON), finished after.
    fn with_bar<T>(&self, f: impl FnOnce(&Bar) -> T) -> T {
        let bar = Bar::new(!self.json);
        let out = f(&bar);
        bar.finish();
        out
    }

    /// Prints `json()` with `--json`, else runs `text`.
    fn print(&self, json: impl FnOnce() -> serde_json::Value, text: impl FnOnce()) {
        if self.json {
            print_json(&json());
        } else {
            text();
        }
    }
}

fn open(path: &Path) -> Result<Repository> {
    Repository::open(path).with_context(|| format!("cannot open the repository {}", path.display()))
}

/// Whether `name` is one of these commands (so `sealroot NAME` goes here).
fn is_command(name: &str) -> bool {
    Cli::command().find_subcommand(name).is_some()
}

/// The repository command `args` (the program name first) name: the first argument after
/// the global options (`--repo PATH`, `--repo=PATH`, `--json`), if it is one.
pub fn command_name(args: &[OsString]) -> Option<String> {
    let mut rest = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(a) = rest.next() {
        match a.as_ref() {
            "--json" => {}
            "--repo" => {
                rest.next();
            }
            a if a.starts_with("--repo=") => {}
            a => return is_command(a).then(|| a.to_owned()),
        }
    }
    None
}

/// Runs a repository command; `args` includes the program name.
pub fn run(args: &[OsString]) -> Result<ExitCode> {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let ctx = Ctx {
        repo: cli.repo,
        json: cli.json,
    };
    match cli.cmd {
        Cmd::Init(a) => repo::init(&ctx, a)?,
        Cmd::Commit(a) => commit::run(&ctx, a)?,
        Cmd::Log(a) => history::log(&ctx, a)?,
        Cmd::Show(a) => history::show(&ctx, a)?,
        Cmd::Diff(a) => history::diff(&ctx, a)?,
        Cmd::Key { cmd } => trust::key(&ctx, cmd)?,
        Cmd::Sign(a) => trust::sign(&ctx, a)?,
        Cmd::Verify(a) => trust::verify(&ctx, a)?,
        Cmd::Derive(a) => derive::run(&ctx, a)?,
        Cmd::Fsverity { cmd } => trust::fsverity(cmd)?,
        Cmd::Mount(a) => mount::run(&ctx, a)?,
        Cmd::Status => repo::status(&ctx)?,
        Cmd::Refs(a) => repo::refs(&ctx, a)?,
        Cmd::Images => repo::images(&ctx)?,
        Cmd::Objects => repo::objects(&ctx)?,
        Cmd::Ls(a) => browse::ls(&ctx, a)?,
        Cmd::Cat(a) => browse::cat(&ctx, a)?,
        Cmd::Fsck(a) => return maintain::fsck(&ctx, a),
        Cmd::Gc(a) => maintain::gc(&ctx, a)?,
        Cmd::Man(a) => docs::man(a)?,
        Cmd::Completions(a) => docs::completions(a)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `value` as one line of JSON.
pub(crate) fn print_json(value: &serde_json::Value) {
    println!("{value}");
}
