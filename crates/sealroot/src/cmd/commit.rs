//! `commit`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use sealroot_core::commit::{self, Parent, ReadOptions, Request, Source};
use sealroot_repo::{CommitOptions, RefName};
use serde_json::json;

use super::{print_json, Ctx};
use crate::progress::Bar;

#[derive(Args)]
pub(crate) struct CommitArgs {
    /// The ref to move.
    #[arg(long = "ref")]
    refname: String,
    /// A directory, a tar archive, or `-`.
    source: PathBuf,
    /// Keep hard links shared (one inode) instead of one inode per name.
    #[arg(long)]
    hardlinks: bool,
    /// Set every mtime to 0.
    #[arg(long)]
    use_epoch: bool,
    /// Leave out device nodes.
    #[arg(long)]
    skip_devices: bool,
    /// Record no xattrs.
    #[arg(long)]
    skip_xattrs: bool,
    /// Record only user.* xattrs.
    #[arg(long)]
    user_xattrs: bool,
    /// Threads hashing and storing files (default: by CPU count).
    #[arg(long)]
    threads: Option<usize>,
    /// Read every file of a directory, trusting no digest from the cache of earlier
    /// commits (REPO/cache/devino); the cache is then made afresh from what was read.
    #[arg(long)]
    no_cache: bool,
    /// One line saying what this commit is.
    #[arg(long, short = 's', default_value = "")]
    subject: String,
    /// More text.
    #[arg(long, short = 'b', default_value = "")]
    body: String,
    /// A version string, such as 42.1.
    #[arg(long)]
    version: Option<String>,
    /// Free-form metadata (repeatable).
    #[arg(long = "metadata", short = 'm', value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// The parent commit (default: the commit the ref names now; a commit made that way is
    /// re-parented onto the ref's head if another commit moved it meanwhile, while one with
    /// --parent or --orphan is refused then).
    #[arg(long, conflicts_with = "orphan")]
    parent: Option<String>,
    /// No parent, even if the ref names a commit.
    #[arg(long)]
    orphan: bool,
    /// Seconds since the epoch (default: $SOURCE_DATE_EPOCH, else now).
    #[arg(long)]
    timestamp: Option<i64>,
}

pub(crate) fn run(ctx: &Ctx, a: CommitArgs) -> Result<()> {
    let name = RefName::new(&a.refname).with_context(|| format!("bad ref name {:?}", a.refname))?;
    let repo = ctx.open()?;
    let parent = match (&a.parent, a.orphan) {
        (_, true) => Parent::None,
        (Some(p), false) => Parent::Commit(repo.resolve_commit(p)?),
        (None, false) => Parent::FromRef,
    };
    let source = if a.source.is_dir() {
        Source::Dir(a.source.clone())
    } else if a.source == Path::new("-") {
        Source::Archive {
            name: "-".into(),
            reader: Box::new(std::io::stdin()),
        }
    } else {
        let file = std::fs::File::open(&a.source).with_context(|| {
            format!(
                "cannot open {}: not a directory or a readable archive",
                a.source.display()
            )
        })?;
        Source::Archive {
            name: a.source.display().to_string(),
            reader: Box::new(file),
        }
    };
    let request = Request {
        refname: name.clone(),
        source,
        read: ReadOptions {
            hardlinks: a.hardlinks,
            use_epoch: a.use_epoch,
            skip_devices: a.skip_devices,
            skip_xattrs: a.skip_xattrs,
            user_xattrs: a.user_xattrs,
            threads: a.threads.unwrap_or(0),
            no_cache: a.no_cache,
        },
        parent,
        message: CommitOptions {
            timestamp: commit::timestamp(a.timestamp)?,
            version: a.version,
            metadata: commit::parse_metadata(&a.metadata)?,
            subject: a.subject,
            body: a.body,
            ..Default::default()
        },
    };
    let bar = Bar::new(!ctx.json);
    let done = commit::commit(&repo, request, &bar)?;
    bar.finish();
    if let Some(w) = &done.cache_warning {
        eprintln!("warning: {w}");
    }
    let (new, stats) = (&done.new, &done.stats);
    let cached = bar.cached();
    if ctx.json {
        print_json(
            &json!({"ref": name.as_str(), "commit": done.id.to_hex(), "image": new.image.to_hex(),
                           "parent": done.parent.map(|p| p.to_hex()),
                           "reparented": done.id != new.id,
                           "tree_objects": new.tree_objects, "tree_objects_added": new.tree_objects_added,
                           "objects_added": stats.objects_added,
                           "bytes_added": stats.bytes_added, "objects_present": stats.objects_present,
                           "files_cached": cached}),
        );
        return Ok(());
    }
    println!("{}", done.id);
    if done.id != new.id {
        eprintln!(
            "{name}: moved meanwhile; the commit was re-parented onto {}",
            done.parent
                .map_or_else(|| "nothing".into(), |p| p.to_string())
        );
    }
    eprintln!(
        "{name}: commit {}, image {}; {} tree objects ({} new)",
        done.id,
        new.image.to_hex(),
        new.tree_objects,
        new.tree_objects_added
    );
    eprintln!(
        "{name}: {} new objects ({} MiB), {} already present ({cached} unchanged files not read)",
        stats.objects_added,
        stats.bytes_added >> 20,
        stats.objects_present
    );
    Ok(())
}
