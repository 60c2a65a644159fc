//! `log`, `show`, `diff`: a commit's history, what it says, what changed.

use std::io::Write as _;

use anyhow::Result;
use clap::Args;
use sealroot_format::objects::{ChangeKind, Commit};
use sealroot_repo::CommitId;
use serde_json::json;

use super::Ctx;

fn commit_json(id: &CommitId, c: &Commit) -> serde_json::Value {
    json!({
        "commit": id.to_hex(),
        "parent": c.parent.map(|p| p.to_hex()),
        "tree": c.tree.to_hex(),
        "dirmeta": c.dirmeta.to_hex(),
        "image": c.image.to_hex(),
        "image_format": c.image_format,
        "timestamp": c.timestamp,
        "version": c.version,
        "metadata": c.metadata,
        "subject": c.subject,
        "body": c.body,
    })
}

fn print_commit(id: &CommitId, c: &Commit) {
    println!("commit {id}");
    if let Some(p) = &c.parent {
        println!("parent {p}");
    }
    println!("date   {} (unix {})", iso8601(c.timestamp), c.timestamp);
    if let Some(v) = &c.version {
        println!("version {v}");
    }
    println!(
        "image  {}:{} (composefs format {})",
        c.image.algorithm(),
        c.image,
        c.image_format
    );
    for (k, v) in &c.metadata {
        println!("meta   {k}={v}");
    }
    if !c.subject.is_empty() {
        println!("\n    {}", c.subject);
    }
    if !c.body.is_empty() {
        println!();
        for line in c.body.lines() {
            println!("    {line}");
        }
    }
}

/// UTC date and time of a unix timestamp, `YYYY-MM-DD hh:mm:ss UTC`.
fn iso8601(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[derive(Args)]
pub(crate) struct ShowArgs {
    /// A commit ref or commit id.
    commit: String,
}

#[derive(Args)]
pub(crate) struct LogArgs {
    /// A commit ref or commit id.
    commit: String,
    /// At most this many commits.
    #[arg(long, short = 'n', default_value_t = usize::MAX)]
    max: usize,
}

#[derive(Args)]
pub(crate) struct DiffArgs {
    /// The older commit.
    a: String,
    /// The newer commit.
    b: String,
}

/// `sealroot show COMMIT`.
pub(crate) fn show(ctx: &Ctx, a: ShowArgs) -> Result<()> {
    let repo = ctx.open()?;
    let json = ctx.json;
    let id = repo.resolve_commit(&a.commit)?;
    let c = repo.read_commit(&id)?;
    let keys = sealroot_core::verify::signers(&repo, &id)?;
    if json {
        let mut v = commit_json(&id, &c);
        v["signed_by"] = json!(keys);
        println!("{v}");
    } else {
        print_commit(&id, &c);
        for k in keys {
            println!("signed by ed25519 key {k} (not verified here: see `sealroot verify`)");
        }
    }
    Ok(())
}

/// `sealroot log REF`.
pub(crate) fn log(ctx: &Ctx, a: LogArgs) -> Result<()> {
    let repo = ctx.open()?;
    let json = ctx.json;
    let id = repo.resolve_commit(&a.commit)?;
    let entries = repo.log(&id, a.max)?;
    if json {
        let list: Vec<_> = entries
            .iter()
            .map(|e| commit_json(&e.id, &e.commit))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for (i, e) in entries.iter().enumerate() {
            if i > 0 {
                println!();
            }
            print_commit(&e.id, &e.commit);
        }
        if let Some(last) = entries.last() {
            if let Some(p) = last.commit.parent {
                if !repo.has_commit(&CommitId(p))? {
                    println!("\n(history continues with {p}, which this repository does not have)");
                }
            }
        }
    }
    Ok(())
}

/// `sealroot diff A B`.
pub(crate) fn diff(ctx: &Ctx, args: DiffArgs) -> Result<()> {
    let repo = ctx.open()?;
    let json = ctx.json;
    let (ia, ib) = (repo.resolve_commit(&args.a)?, repo.resolve_commit(&args.b)?);
    let (ca, cb) = (repo.read_commit(&ia)?, repo.read_commit(&ib)?);
    let changes = repo.diff_commits(&ca, &cb)?;
    let letter = |k: ChangeKind| match k {
        ChangeKind::Added => "A",
        ChangeKind::Removed => "D",
        ChangeKind::Modified => "M",
    };
    if json {
        let list: Vec<_> = changes
            .iter()
            .map(|c| json!({"path": String::from_utf8_lossy(&c.path), "change": match c.kind {
                ChangeKind::Added => "added", ChangeKind::Removed => "removed", ChangeKind::Modified => "modified" }}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        for c in &changes {
            let mut line = Vec::new();
            sealroot_format::dumpfile::escape(
                &mut line,
                &c.path,
                sealroot_format::dumpfile::Escape::Listing,
            );
            writeln!(
                out,
                "{}    {}",
                letter(c.kind),
                String::from_utf8_lossy(&line)
            )?;
        }
    }
    Ok(())
}
