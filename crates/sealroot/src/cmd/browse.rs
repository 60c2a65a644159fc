//! `ls`, `cat`: looking inside an image without mounting it.

use std::io::Write as _;

use anyhow::Result;
use clap::Args;
use sealroot_core::browse;
use sealroot_format::{Content, FileType, Tree};
use serde_json::json;

use super::{print_json, Ctx};

#[derive(Args)]
pub(crate) struct LsArgs {
    /// The ref, a commit, or an image id.
    refname: String,
    /// The directory (default: the root).
    path: Option<String>,
}

#[derive(Args)]
pub(crate) struct CatArgs {
    /// The ref, a commit, or an image id.
    refname: String,
    /// The file.
    path: String,
}

pub(crate) fn ls(ctx: &Ctx, a: LsArgs) -> Result<()> {
    let repo = ctx.open()?;
    let tree = browse::read_tree(&repo, &a.refname)?;
    let path = a.path.unwrap_or_else(|| "/".to_owned());
    let dir = browse::lookup(&tree, &path)?;
    let entries = browse::list(&tree, dir, &path);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut list = Vec::new();
    for (name, id) in entries {
        let e = Entry::of(&tree, &name, id);
        if ctx.json {
            list.push(
                json!({"name": e.name, "mode": format!("{:o}", e.mode), "uid": e.uid, "gid": e.gid,
                             "size": e.size, "mtime": e.mtime, "target": e.target}),
            );
        } else {
            writeln!(out, "{}", e.line(&name))?;
        }
    }
    if ctx.json {
        print_json(&serde_json::Value::Array(list));
    }
    out.flush()?;
    Ok(())
}

pub(crate) fn cat(ctx: &Ctx, a: CatArgs) -> Result<()> {
    let repo = ctx.open()?;
    let tree = browse::read_tree(&repo, &a.refname)?;
    let id = browse::lookup(&tree, &a.path)?;
    let mut stdout = std::io::stdout().lock();
    browse::read_file(&repo, &tree, id, &a.path, &mut stdout)?;
    stdout.flush()?;
    Ok(())
}

/// One line of `ls`.
struct Entry {
    name: String,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    target: Option<String>,
}

impl Entry {
    fn of(tree: &Tree, name: &[u8], id: sealroot_format::InodeId) -> Entry {
        let node = tree.inode(id);
        let s = &node.stat;
        let (size, target) = match &node.content {
            Content::Regular(f) => (f.inline.as_ref().map_or(s.size, |c| c.len() as u64), None),
            Content::Symlink(t) => (
                t.len() as u64,
                Some(String::from_utf8_lossy(t).into_owned()),
            ),
            _ => (0, None),
        };
        Entry {
            name: String::from_utf8_lossy(name).into_owned(),
            mode: s.mode,
            uid: s.uid,
            gid: s.gid,
            size,
            mtime: s.mtime.sec,
            target,
        }
    }

    fn line(&self, raw_name: &[u8]) -> String {
        let kind = match FileType::from_mode(self.mode) {
            Some(FileType::Directory) => 'd',
            Some(FileType::Symlink) => 'l',
            Some(FileType::CharDevice) => 'c',
            Some(FileType::BlockDevice) => 'b',
            Some(FileType::Fifo) => 'p',
            Some(FileType::Socket) => 's',
            _ => '-',
        };
        let mut line = format!(
            "{kind}{:04o} {:>6} {:>6} {:>12} {} ",
            self.mode & 0o7777,
            self.uid,
            self.gid,
            self.size,
            self.mtime
        );
        let mut escaped = Vec::new();
        sealroot_format::dumpfile::escape(
            &mut escaped,
            raw_name,
            sealroot_format::dumpfile::Escape::Listing,
        );
        line.push_str(&String::from_utf8_lossy(&escaped));
        if let Some(t) = &self.target {
            line.push_str(" -> ");
            line.push_str(t);
        }
        line
    }
}
