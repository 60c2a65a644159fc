//! `derive`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use sealroot_core::derive;
use serde_json::json;

use super::{print_json, Ctx};

#[derive(Args)]
pub(crate) struct DeriveArgs {
    /// A commit ref or commit id.
    commit: String,
    /// Write the image here instead of storing it in the repository.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Enable fs-verity on the stored image with the commit's kernel built-in signature
    /// (`sign --fsverity-key`); the kernel checks it against its `.fs-verity` keyring.
    #[arg(long, conflicts_with = "output")]
    kernel_signature: bool,
}

pub(crate) fn run(ctx: &Ctx, a: DeriveArgs) -> Result<()> {
    let repo = ctx.open()?;
    let id = repo.resolve_commit(&a.commit)?;
    let digest = match &a.output {
        Some(path) => derive::to_file(&repo, &id, path)?.to_hex(),
        None => derive::restore(&repo, &id, a.kernel_signature)?.to_hex(),
    };
    if ctx.json {
        print_json(&json!({"commit": id.to_hex(), "image": digest}));
    } else {
        println!("{digest}");
    }
    Ok(())
}
