//! `fsck`, `gc`: a summary and one line per problem for people, the whole report as JSON
//! for machines.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use sealroot_repo::{FsckOptions, FsckReport, GcOptions, GcReport, RefName, Unfinished};
use serde_json::{json, Value};

use super::Ctx;

#[derive(Args)]
pub(crate) struct FsckArgs {
    /// Remove corrupt objects, write missing history streams anew, and say which refs need
    /// a new commit.
    #[arg(long)]
    repair: bool,
    /// Also re-create each commit ref's image from its tree objects and compare it with the
    /// commit (as verify does; holds a whole tree in memory).
    #[arg(long)]
    derive: bool,
}

#[derive(Args)]
pub(crate) struct GcArgs {
    /// Only say what would be removed.
    #[arg(long)]
    dry_run: bool,
}

pub(crate) fn fsck(ctx: &Ctx, a: FsckArgs) -> Result<ExitCode> {
    let repo = ctx.open()?;
    let mut options = if a.repair {
        FsckOptions::repair()
    } else {
        FsckOptions::check()
    };
    if a.derive {
        options = options.with_derive();
    }
    let report = ctx
        .with_bar(|bar| repo.fsck(&options, bar))
        .context("fsck failed")?;
    ctx.print(|| fsck_json(&report), || print_fsck(&report));
    let refs_left_broken = report
        .repaired
        .as_ref()
        .is_some_and(|r| !r.refs_needing_commit.is_empty());
    if (!report.is_clean() && report.repaired.is_none()) || refs_left_broken {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn gc(ctx: &Ctx, a: GcArgs) -> Result<()> {
    let repo = ctx.open()?;
    let options = if a.dry_run {
        GcOptions::dry_run()
    } else {
        GcOptions::remove()
    };
    let report = ctx
        .with_bar(|bar| repo.gc(&options, bar))
        .context("gc failed")?;
    ctx.print(|| gc_json(&report), || print_gc(&report));
    Ok(())
}

fn refs(list: &[RefName]) -> Vec<&str> {
    list.iter().map(RefName::as_str).collect()
}

fn how(u: Unfinished) -> &'static str {
    match u {
        Unfinished::ProcessDied => "process-died",
        Unfinished::SystemCrash => "system-crash",
        _ => "unknown",
    }
}

fn fsck_json(r: &FsckReport) -> Value {
    let hexes =
        |images: &[sealroot_repo::ImageId]| images.iter().map(|i| i.to_hex()).collect::<Vec<_>>();
    let corrupt: Vec<Value> = r
        .corrupt_objects
        .iter()
        .map(|c| {
            json!({"object": c.object.to_hex(), "problem": c.problem.to_string(),
                        "images": hexes(&c.images), "refs": refs(&c.refs)})
        })
        .collect();
    let missing: Vec<Value> = r
        .missing_objects
        .iter()
        .map(|m| json!({"object": m.object.to_hex(), "images": hexes(&m.images), "refs": refs(&m.refs)}))
        .collect();
    let images: Vec<Value> = r
        .broken_images
        .iter()
        .map(|b| json!({"image": b.name, "problem": format!("{:?}", b.problem), "refs": refs(&b.refs)}))
        .collect();
    let broken_refs: Vec<Value> = r
        .broken_refs
        .iter()
        .map(|b| json!({"ref": b.name, "problem": format!("{:?}", b.problem)}))
        .collect();
    let broken_commits: Vec<Value> = r
        .broken_commits
        .iter()
        .map(|b| json!({"refs": refs(&b.refs), "commit": b.commit.map(|c| c.to_hex()), "problem": b.problem}))
        .collect();
    let streams: Vec<Value> = r
        .broken_streams
        .iter()
        .map(|b| json!({"stream_ref": b.stream_ref, "commit_ref": b.commit_ref.as_ref().map(RefName::as_str),
                        "problem": b.problem}))
        .collect();
    let unfinished: Vec<Value> = r
        .unfinished_transactions
        .iter()
        .map(|u| json!({"marker": u.marker, "how": how(u.how), "pid": u.pid, "started": u.started}))
        .collect();
    let repaired = r.repaired.as_ref().map(|p| {
        json!({"objects_removed": p.objects_removed.iter().map(|o| o.to_hex()).collect::<Vec<_>>(),
               "refs_needing_commit": refs(&p.refs_needing_commit),
               "streams_rewritten": refs(&p.streams_rewritten)})
    });
    json!({"clean": r.is_clean(), "objects_checked": r.objects_checked, "bytes_checked": r.bytes_checked,
           "objects_with_verity": r.objects_with_verity, "images_checked": r.images_checked,
           "refs_checked": r.refs_checked, "corrupt_objects": corrupt, "missing_objects": missing,
           "broken_images": images, "broken_refs": broken_refs,
           "commit_refs_checked": r.commit_refs_checked, "broken_commits": broken_commits,
           "stream_refs_checked": r.stream_refs_checked, "broken_streams": streams,
           "unfinished_transactions": unfinished,
           "torn_objects": r.torn_objects.iter().map(|o| o.to_hex()).collect::<Vec<_>>(),
           "stray_files": r.stray_files, "affected_refs": refs(&r.affected_refs()), "repaired": repaired})
}

fn print_fsck(r: &FsckReport) {
    println!(
        "checked {} objects ({} MiB, {} with fs-verity), {} images, {} refs, {} commit refs",
        r.objects_checked,
        r.bytes_checked >> 20,
        r.objects_with_verity,
        r.images_checked,
        r.refs_checked,
        r.commit_refs_checked
    );
    for c in &r.corrupt_objects {
        let needed = refs(&c.refs).join(", ");
        println!(
            "corrupt object {}: {} (needed by refs: {needed})",
            c.object.to_hex(),
            c.problem
        );
    }
    for m in &r.missing_objects {
        let needed = refs(&m.refs).join(", ");
        println!(
            "missing object {} (needed by refs: {needed})",
            m.object.to_hex()
        );
    }
    for b in &r.broken_images {
        let needed = refs(&b.refs).join(", ");
        println!("broken image {}: {:?} (refs: {needed})", b.name, b.problem);
    }
    for b in &r.broken_refs {
        println!("broken ref {}: {:?}", b.name, b.problem);
    }
    for b in &r.broken_commits {
        println!(
            "broken commit (refs: {}): {}",
            refs(&b.refs).join(", "),
            b.problem
        );
    }
    for b in &r.broken_streams {
        println!("broken stream {}: {}", b.stream_ref, b.problem);
    }
    for u in &r.unfinished_transactions {
        println!(
            "unfinished transaction {} ({}): not an error; the next commit or gc cleans it up",
            u.marker,
            how(u.how)
        );
    }
    for t in &r.torn_objects {
        println!(
            "torn object {} (written by a transaction a system crash cut off; no ref needs it): \
             the next commit or gc removes it",
            t.to_hex()
        );
    }
    for s in &r.stray_files {
        println!("stray file {}", s.display());
    }
    if let Some(p) = &r.repaired {
        println!(
            "repaired: removed {} corrupt objects, wrote {} history streams anew; refs needing a new commit: {}",
            p.objects_removed.len(),
            p.streams_rewritten.len(),
            refs(&p.refs_needing_commit).join(", ")
        );
    } else if r.is_clean() {
        println!("no problems found");
    } else {
        println!(
            "problems found; refs affected: {}",
            refs(&r.affected_refs()).join(", ")
        );
    }
}

fn gc_json(r: &GcReport) -> Value {
    json!({"dry_run": r.dry_run, "objects_removed": r.objects_removed, "bytes_removed": r.object_bytes_removed,
           "images_removed": r.images_removed, "temp_files_removed": r.temp_files_removed,
           "temp_bytes_removed": r.temp_bytes_removed, "objects_kept": r.objects_kept,
           "images_kept": r.images_kept, "commits_removed": r.commits_removed,
           "commits_kept": r.commits_kept, "broken_refs": r.broken_refs,
           "recovered_transactions": r.recovered.crashed_transactions + r.recovered.abandoned_transactions})
}

fn print_gc(r: &GcReport) {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    println!(
        "{verb} {} objects ({} MiB), {} images, {} commits, {} temporary files; kept {} objects, {} images, {} commits",
        r.objects_removed,
        r.object_bytes_removed >> 20,
        r.images_removed,
        r.commits_removed,
        r.temp_files_removed,
        r.objects_kept,
        r.images_kept,
        r.commits_kept
    );
    for b in &r.broken_refs {
        println!("broken ref {b}");
    }
}
