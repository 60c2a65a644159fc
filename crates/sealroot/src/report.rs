//! How fsck and gc reports are printed: a summary and one line per problem for people, the
//! whole report as JSON for machines.

use sealroot_repo::{FsckReport, GcReport, RefName};
use serde_json::{json, Value};

fn refs(list: &[RefName]) -> Vec<&str> {
    list.iter().map(RefName::as_str).collect()
}

/// Prints an fsck report.
pub fn print_fsck(r: &FsckReport, as_json: bool) {
    let corrupt: Vec<Value> = r
        .corrupt_objects
        .iter()
        .map(|c| {
            json!({"object": c.object.to_hex(), "problem": format!("{:?}", c.problem),
                   "images": c.images.iter().map(|i| i.to_hex()).collect::<Vec<_>>(), "refs": refs(&c.refs)})
        })
        .collect();
    let missing: Vec<Value> = r
        .missing_objects
        .iter()
        .map(|m| {
            json!({"object": m.object.to_hex(),
                   "images": m.images.iter().map(|i| i.to_hex()).collect::<Vec<_>>(), "refs": refs(&m.refs)})
        })
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
    if as_json {
        let repaired = r.repaired.as_ref().map(|p| {
            json!({"objects_removed": p.objects_removed.iter().map(|o| o.to_hex()).collect::<Vec<_>>(),
                   "refs_needing_commit": refs(&p.refs_needing_commit)})
        });
        println!(
            "{}",
            json!({"clean": r.is_clean(), "objects_checked": r.objects_checked, "bytes_checked": r.bytes_checked,
                   "objects_with_verity": r.objects_with_verity, "images_checked": r.images_checked,
                   "refs_checked": r.refs_checked, "corrupt_objects": corrupt, "missing_objects": missing,
                   "broken_images": images, "broken_refs": broken_refs,
                   "commit_refs_checked": r.commit_refs_checked, "broken_commits": broken_commits,
                   "stray_files": r.stray_files, "affected_refs": refs(&r.affected_refs()), "repaired": repaired})
        );
        return;
    }
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
        println!(
            "corrupt object {}: {:?} (needed by refs: {})",
            c.object.to_hex(),
            c.problem,
            refs(&c.refs).join(", ")
        );
    }
    for m in &r.missing_objects {
        println!(
            "missing object {} (needed by refs: {})",
            m.object.to_hex(),
            refs(&m.refs).join(", ")
        );
    }
    for b in &r.broken_images {
        println!(
            "broken image {}: {:?} (refs: {})",
            b.name,
            b.problem,
            refs(&b.refs).join(", ")
        );
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
    for s in &r.stray_files {
        println!("stray file {}", s.display());
    }
    if let Some(p) = &r.repaired {
        println!(
            "repaired: removed {} corrupt objects; refs needing a new commit: {}",
            p.objects_removed.len(),
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

/// Prints a gc report.
pub fn print_gc(r: &GcReport, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({"dry_run": r.dry_run, "objects_removed": r.objects_removed, "bytes_removed": r.object_bytes_removed,
                   "images_removed": r.images_removed, "temp_files_removed": r.temp_files_removed,
                   "temp_bytes_removed": r.temp_bytes_removed, "objects_kept": r.objects_kept,
                   "images_kept": r.images_kept, "commits_removed": r.commits_removed,
                   "commits_kept": r.commits_kept, "broken_refs": r.broken_refs})
        );
        return;
    }
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
