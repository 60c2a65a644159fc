//! `man DIR`, `completions SHELL`: man pages and shell completions made from the clap
//! definitions, so they never disagree with the commands. `scripts/install.sh` installs them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

#[derive(Args)]
pub(crate) struct ManArgs {
    /// The directory to write sealroot.1 and sealroot-COMMAND.1 into.
    dir: PathBuf,
}

#[derive(Args)]
pub(crate) struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

pub(crate) fn man(a: ManArgs) -> Result<()> {
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd, &a.dir)
        .with_context(|| format!("cannot write man pages into {}", a.dir.display()))?;
    Ok(())
}

pub(crate) fn completions(a: CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "sealroot", &mut std::io::stdout());
    Ok(())
}
