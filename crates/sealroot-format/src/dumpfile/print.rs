//! The dumpfile printer: C `composefs-info dump` (`dump_node`) over a [`Tree`].

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use super::escape::{escape_into, Style, NONE_MARK};
use crate::tree::{Content, DirEntry, Inode, InodeId, Tree};

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn inode_of(tree: &Tree, id: InodeId) -> io::Result<&Inode> {
    tree.inodes.get(id.index()).ok_or_else(|| {
        invalid(format!(
            "entry refers to inode {}, which does not exist",
            id.0
        ))
    })
}

/// Walks the owning entries depth first in name order, calling `visit(path, entry)` for every
/// entry (hard links included). Fails on an inode owned twice, which would make it loop.
fn walk(tree: &Tree, mut visit: impl FnMut(&[u8], &DirEntry) -> io::Result<()>) -> io::Result<()> {
    let mut owned = vec![false; tree.inodes.len()];
    if let Some(root) = owned.first_mut() {
        *root = true;
    }
    let mut path = Vec::new();
    // (directory, next entry, length of the directory's path)
    let mut stack = vec![(InodeId::ROOT, 0usize, 0usize)];
    while let Some((dir, next, dir_len)) = stack.last_mut() {
        let entries = inode_of(tree, *dir)?.entries().unwrap_or_default();
        let Some(entry) = entries.get(*next) else {
            stack.pop();
            continue;
        };
        *next += 1;
        path.truncate(*dir_len);
        path.push(b'/');
        path.extend_from_slice(&entry.name);
        let child = inode_of(tree, entry.inode)?;
        visit(&path, entry)?;
        if !entry.hardlink {
            match owned.get_mut(entry.inode.index()) {
                Some(seen) if !*seen => *seen = true,
                _ => {
                    return Err(invalid(format!(
                        "inode {} is owned by more than one entry",
                        entry.inode.0
                    )))
                }
            }
            if child.entries().is_some() {
                stack.push((entry.inode, 0, path.len()));
            }
        }
    }
    Ok(())
}

/// The path of the owning entry of every inode a hard link points at (C `node_build_path`,
/// which gives the root the empty path).
fn link_targets(tree: &Tree) -> io::Result<HashMap<InodeId, Vec<u8>>> {
    let mut wanted = HashSet::new();
    walk(tree, |_, entry| {
        if entry.hardlink {
            wanted.insert(entry.inode);
        }
        Ok(())
    })?;
    let mut paths = HashMap::new();
    if wanted.is_empty() {
        return Ok(paths);
    }
    if wanted.contains(&InodeId::ROOT) {
        paths.insert(InodeId::ROOT, Vec::new());
    }
    walk(tree, |path, entry| {
        if !entry.hardlink && wanted.contains(&entry.inode) {
            paths.insert(entry.inode, path.to_vec());
        }
        Ok(())
    })?;
    Ok(paths)
}

/// Formats one line into `line`: the inode's fields, marked as a hard link to
/// `link_target` when that is set.
fn format_line(
    line: &mut Vec<u8>,
    path: &[u8],
    inode: &Inode,
    link_target: Option<&[u8]>,
) -> io::Result<()> {
    let stat = &inode.stat;
    line.clear();
    escape_into(line, path, Style::PLAIN);
    write!(
        line,
        " {} {}{:o} {} {} {} {} {}.{} ",
        stat.size,
        if link_target.is_some() { "@" } else { "" },
        stat.mode,
        stat.nlink,
        stat.uid,
        stat.gid,
        stat.rdev,
        stat.mtime.sec,
        stat.mtime.nsec,
    )?;
    let (payload, content, digest) = match &inode.content {
        Content::Regular(file) => (
            file.payload.as_deref(),
            file.inline.as_deref().filter(|c| !c.is_empty()),
            file.digest.as_ref(),
        ),
        Content::Symlink(target) => (Some(target.as_slice()), None, None),
        Content::Directory(_) | Content::Special => (None, None, None),
    };
    match link_target.or(payload) {
        Some(text) => escape_into(line, text, Style::OPTIONAL),
        None => line.extend_from_slice(NONE_MARK),
    }
    line.push(b' ');
    match content {
        Some(content) => escape_into(line, content, Style::OPTIONAL),
        None => line.extend_from_slice(NONE_MARK),
    }
    line.push(b' ');
    match digest {
        Some(digest) => line.extend_from_slice(digest.to_hex().as_bytes()),
        None => line.extend_from_slice(NONE_MARK),
    }
    for xattr in &inode.xattrs {
        line.push(b' ');
        escape_into(line, &xattr.name, Style::XATTR);
        line.push(b'=');
        escape_into(line, &xattr.value, Style::XATTR);
    }
    line.push(b'\n');
    Ok(())
}

/// Prints `tree` as C `dump_node` prints a node tree.
pub(crate) fn write(tree: &Tree, out: &mut impl Write) -> io::Result<()> {
    let targets = link_targets(tree)?;
    let mut line = Vec::new();
    let root = inode_of(tree, InodeId::ROOT)?;
    format_line(&mut line, b"/", root, None)?;
    out.write_all(&line)?;
    walk(tree, |path, entry| {
        let inode = inode_of(tree, entry.inode)?;
        let link_target = if entry.hardlink {
            Some(
                targets
                    .get(&entry.inode)
                    .map(Vec::as_slice)
                    .ok_or_else(|| {
                        invalid(format!(
                            "hard link to inode {}, which no entry owns",
                            entry.inode.0
                        ))
                    })?,
            )
        } else {
            None
        };
        format_line(&mut line, path, inode, link_target)?;
        out.write_all(&line)
    })
}
