//! `init`, `status`, `refs`, `images`, `objects`.

use std::io::Write as _;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use sealroot_repo::{
    HashAlgorithm, ImageId, InitOptions, ObjectId, RefName, RefTarget, Repository,
};
use serde_json::json;

use super::{print_json, Ctx};

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Algorithm {
    Sha256,
    Sha512,
}

#[derive(Args)]
pub(crate) struct InitArgs {
    /// The digest algorithm naming objects.
    #[arg(long, value_enum, default_value = "sha256")]
    algorithm: Algorithm,
    /// Refuse to work on a filesystem without fs-verity.
    #[arg(long)]
    require_verity: bool,
}

pub(crate) fn init(ctx: &Ctx, a: InitArgs) -> Result<()> {
    let options = InitOptions {
        algorithm: match a.algorithm {
            Algorithm::Sha256 => HashAlgorithm::Sha256,
            Algorithm::Sha512 => HashAlgorithm::Sha512,
        },
        require_verity: a.require_verity,
    };
    let repo = Repository::init(&ctx.repo, &options)
        .with_context(|| format!("cannot create a repository at {}", ctx.repo.display()))?;
    let verity = repo.verity_supported();
    if ctx.json {
        print_json(
            &json!({"repo": ctx.repo, "algorithm": options.algorithm.name(),
                           "verity": verity, "require_verity": a.require_verity}),
        );
    } else {
        println!(
            "initialized {} ({}, fs-verity {})",
            ctx.repo.display(),
            options.algorithm.name(),
            if verity {
                "supported"
            } else {
                "NOT supported by this filesystem: objects are checked in userspace only"
            }
        );
    }
    Ok(())
}

pub(crate) fn status(ctx: &Ctx) -> Result<()> {
    let repo = ctx.open()?;
    let config = repo.config();
    let refs = repo.refs().context("cannot list refs")?;
    let images = repo.images().context("cannot list images")?;
    let verity = repo.verity_supported();
    if ctx.json {
        print_json(
            &json!({"repo": repo.path(), "algorithm": config.algorithm_id(),
                           "sealroot_format": config.sealroot_format, "require_verity": config.require_verity,
                           "verity_supported": verity, "writable": repo.is_writable(),
                           "refs": refs.len(), "images": images.len()}),
        );
        return Ok(());
    }
    println!("repository:      {}", repo.path().display());
    println!("algorithm:       {}", config.algorithm_id());
    match config.sealroot_format {
        Some(f) => println!("format:          sealroot {f}"),
        None => println!("format:          composefs-rs (no sealroot section)"),
    }
    let verity_text = if verity {
        "enabled on every object"
    } else {
        "NOT supported by this filesystem: objects are checked in userspace only"
    };
    let required = if config.require_verity {
        " (required)"
    } else {
        ""
    };
    println!("fs-verity:       {verity_text}{required}");
    let writable = if repo.is_writable() {
        "yes"
    } else {
        "no (unknown features or permissions)"
    };
    println!("writable:        {writable}");
    println!("refs:            {}", refs.len());
    println!("images:          {}", images.len());
    Ok(())
}

#[derive(Args)]
pub(crate) struct RefsArgs {
    /// Delete these refs (commit ref, history and image ref of each name); what they
    /// reached stays until `gc`.
    #[arg(long, value_name = "NAME", num_args = 1..)]
    delete: Vec<RefName>,
}

pub(crate) fn refs(ctx: &Ctx, a: RefsArgs) -> Result<()> {
    let repo = ctx.open()?;
    if !a.delete.is_empty() {
        for name in &a.delete {
            repo.delete_ref(name)
                .with_context(|| format!("cannot delete ref {name}"))?;
        }
        let names: Vec<&str> = a.delete.iter().map(RefName::as_str).collect();
        ctx.print(
            || json!({"deleted": names}),
            || println!("deleted {}", names.join(", ")),
        );
        return Ok(());
    }
    let refs = repo.refs().context("cannot list refs")?;
    if ctx.json {
        let list: Vec<_> = refs
            .iter()
            .map(|r| match &r.target {
                RefTarget::Image(i) => json!({"ref": r.name.as_str(), "image": i.to_hex()}),
                RefTarget::Dangling(i) => {
                    json!({"ref": r.name.as_str(), "image": i.to_hex(), "problem": "image missing"})
                }
                RefTarget::Invalid(t) => json!({"ref": r.name.as_str(), "problem": t}),
            })
            .collect();
        print_json(&serde_json::Value::Array(list));
        return Ok(());
    }
    for r in refs {
        match r.target {
            RefTarget::Image(i) => println!("{} {}", r.name, i.to_hex()),
            RefTarget::Dangling(i) => println!("{} {} (image missing)", r.name, i.to_hex()),
            RefTarget::Invalid(t) => println!("{} (invalid: {t})", r.name),
        }
    }
    Ok(())
}

pub(crate) fn images(ctx: &Ctx) -> Result<()> {
    let repo = ctx.open()?;
    let images = repo.images().context("cannot list images")?;
    print_ids(ctx.json, "images", images.iter().map(ImageId::to_hex))
}

pub(crate) fn objects(ctx: &Ctx) -> Result<()> {
    let repo = ctx.open()?;
    let mut ids = Vec::new();
    for o in repo.objects() {
        ids.push(o.context("cannot list objects")?);
    }
    print_ids(ctx.json, "objects", ids.iter().map(ObjectId::to_hex))
}

fn print_ids(json: bool, what: &str, ids: impl Iterator<Item = String>) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        let list: Vec<String> = ids.collect();
        writeln!(out, "{}", json!({ what: list }))?;
    } else {
        for id in ids {
            writeln!(out, "{id}")?;
        }
    }
    out.flush()?;
    Ok(())
}
