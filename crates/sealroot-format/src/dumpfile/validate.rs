//! The checks C `mkcomposefs` makes only when it writes the image, and the shape a [`Tree`]
//! must have for its image to be well defined.

use std::collections::{HashMap, HashSet};

use super::error::{DumpfileError, ErrorKind};
use super::escape::display_path;
use super::limits::{
    DEPTH_MAX, INLINE_CONTENT_MAX, MAX_CHUNKS, NAME_MAX, PATH_MAX, VERSION_MAX, XATTR_BUDGET_MAX,
    XATTR_ENTRY_COST, XATTR_HEADER_COST, XATTR_NAME_MAX, XATTR_VALUE_MAX,
};
use crate::erofs::{WriteOptions, METACOPY_HEADER_SIZE, OVERLAY_METACOPY};
use crate::tree::{Content, DirEntry, FileType, Inode, InodeId, Tree};

const OVERLAY_PREFIX: &[u8] = b"trusted.overlay.";
const OVERLAY_ESCAPED_PREFIX: &[u8] = b"trusted.overlay.overlay.";
const REDIRECT: &[u8] = b"trusted.overlay.redirect";
const OPAQUE: &[u8] = b"trusted.overlay.opaque";
const ESCAPED_WHITEOUT: &[u8] = b"trusted.overlay.overlay.whiteout";
const ESCAPED_WHITEOUTS: &[u8] = b"trusted.overlay.overlay.whiteouts";
const ESCAPED_OPAQUE: &[u8] = b"trusted.overlay.overlay.opaque";
const USER_WHITEOUT: &[u8] = b"user.overlay.whiteout";
const USER_WHITEOUTS: &[u8] = b"user.overlay.whiteouts";
const USER_OPAQUE: &[u8] = b"user.overlay.opaque";

/// C's running xattr account of a node while its writer rewrites the tree for overlayfs.
///
/// The writer works on a deep copy of the tree, and `lcfs_node_clone` does not copy the
/// account: it starts at 0 whatever the node holds. Replacing an xattr then subtracts from
/// it (wrapping, it is a `size_t`), so a node that already had one of the xattrs the writer
/// sets, with a non-empty value, can end up refused. This mirrors that exactly.
struct Account {
    /// Names (after escaping) and value lengths.
    xattrs: Vec<(Vec<u8>, u64)>,
    size: u64,
}

impl Account {
    fn new(inode: &Inode) -> Self {
        let xattrs = inode
            .xattrs
            .iter()
            .map(|x| {
                // `trusted.overlay.X` is renamed `trusted.overlay.overlay.X`, account untouched.
                let name = match x.name.strip_prefix(OVERLAY_PREFIX) {
                    Some(rest) => [OVERLAY_ESCAPED_PREFIX, rest].concat(),
                    None => x.name.clone(),
                };
                (name, x.value.len() as u64)
            })
            .collect();
        Account { xattrs, size: 0 }
    }

    /// `lcfs_node_set_xattr` of a value of `len` bytes; `Err` when C refuses it (`ERANGE`).
    fn set(&mut self, name: &[u8], len: u64) -> Result<(), ErrorKind> {
        let name_len = name.len() as u64;
        if let Some(pos) = self.xattrs.iter().position(|(n, _)| n == name) {
            let (_, old_len) = self.xattrs.swap_remove(pos);
            self.size = if self.xattrs.is_empty() {
                0
            } else {
                self.size
                    .wrapping_sub(XATTR_ENTRY_COST + name_len + old_len)
            };
        }
        let mut entry = XATTR_ENTRY_COST + name_len + len;
        if self.xattrs.is_empty() {
            entry += XATTR_HEADER_COST;
        }
        if self.size.wrapping_add(entry) > XATTR_BUDGET_MAX {
            return Err(ErrorKind::XattrsTooLarge {
                name: display_path(name),
            });
        }
        self.size = self.size.wrapping_add(entry);
        self.xattrs.push((name.to_vec(), len));
        Ok(())
    }
}

fn is_whiteout(inode: &Inode) -> bool {
    inode.stat.file_type() == Some(FileType::CharDevice) && inode.stat.rdev == 0
}

/// The checks that do not depend on where the inode is: its type against its content, and
/// every limit C applies when the inode is built.
fn check_inode(inode: &Inode) -> Result<(), ErrorKind> {
    let mode = inode.stat.mode;
    let file_type = FileType::from_mode(mode).ok_or(ErrorKind::InvalidMode { mode })?;
    match (&inode.content, file_type) {
        (Content::Directory(_), FileType::Directory) => {}
        (Content::Regular(file), FileType::Regular) => {
            let size = inode.stat.size;
            match file.inline.as_deref() {
                Some(content) if content.len() > INLINE_CONTENT_MAX => {
                    return Err(ErrorKind::ContentTooLarge { len: content.len() })
                }
                // Empty inline content is an empty file (C `lcfs_node_set_content`).
                Some(_) => {}
                // C's writer refuses what needs more than 1024 chunks (`EFBIG`).
                _ if size > 0 && crate::erofs::chunking(size).1 > MAX_CHUNKS => {
                    return Err(ErrorKind::FileTooBig { size })
                }
                _ => {}
            }
            if let Some(payload) = &file.payload {
                if payload.contains(&0) {
                    return Err(ErrorKind::NulByte { what: "payload" });
                }
                if payload.len() >= PATH_MAX {
                    return Err(ErrorKind::PayloadTooLong { len: payload.len() });
                }
            }
        }
        (Content::Symlink(target), FileType::Symlink) => {
            if target.is_empty() {
                return Err(ErrorKind::SymlinkTargetEmpty);
            }
            if target.contains(&0) {
                return Err(ErrorKind::NulByte {
                    what: "symlink target",
                });
            }
            if target.len() >= PATH_MAX {
                return Err(ErrorKind::SymlinkTargetTooLong { len: target.len() });
            }
        }
        (
            Content::Special,
            FileType::BlockDevice | FileType::CharDevice | FileType::Fifo | FileType::Socket,
        ) => {}
        _ => return Err(ErrorKind::ModeMismatch { mode }),
    }
    check_xattrs(inode)
}

/// The limits C applies to an inode's xattrs.
fn check_xattrs(inode: &Inode) -> Result<(), ErrorKind> {
    let mut budget = 0;
    let mut names = HashSet::new();
    for xattr in &inode.xattrs {
        let name = &xattr.name;
        if name.is_empty() {
            return Err(ErrorKind::XattrNameEmpty);
        }
        if name.contains(&0) {
            return Err(ErrorKind::NulByte { what: "xattr name" });
        }
        if name.len() > XATTR_NAME_MAX {
            return Err(ErrorKind::XattrNameTooLong {
                name: display_path(name),
                len: name.len(),
            });
        }
        if xattr.value.len() > XATTR_VALUE_MAX {
            return Err(ErrorKind::XattrValueTooLong {
                name: display_path(name),
                len: xattr.value.len(),
            });
        }
        if !names.insert(name.as_slice()) {
            return Err(ErrorKind::DuplicateXattr {
                name: display_path(name),
            });
        }
        if budget == 0 {
            budget = XATTR_HEADER_COST;
        }
        budget += XATTR_ENTRY_COST + name.len() as u64 + xattr.value.len() as u64;
        if budget > XATTR_BUDGET_MAX {
            return Err(ErrorKind::XattrsTooLarge {
                name: display_path(name),
            });
        }
    }
    Ok(())
}

fn check_name(name: &[u8]) -> Result<(), ErrorKind> {
    if name.is_empty() {
        return Err(ErrorKind::EmptyName);
    }
    if name == b"." || name == b".." {
        return Err(ErrorKind::DotOrDotDot);
    }
    if name.len() > NAME_MAX {
        return Err(ErrorKind::NameTooLong { len: name.len() });
    }
    if name.iter().any(|&b| b == b'/' || b == 0) {
        return Err(ErrorKind::InvalidNameByte);
    }
    Ok(())
}

/// Entry `index` of `entries`: a valid name, after the one before it.
fn check_entry(entries: &[DirEntry], index: usize) -> Result<(), ErrorKind> {
    let entry = &entries[index];
    check_name(&entry.name)?;
    if let Some(prev) = index.checked_sub(1).and_then(|i| entries.get(i)) {
        if prev.name >= entry.name {
            return Err(if prev.name == entry.name {
                ErrorKind::AlreadyExists
            } else {
                ErrorKind::UnsortedEntries
            });
        }
    }
    Ok(())
}

/// The checks of an inode an entry owns that do not depend on where it is: [`check_inode`],
/// and the xattrs the writer adds to it for overlayfs.
fn check_owned_inode(inode: &Inode) -> Result<(), ErrorKind> {
    check_inode(inode)?;
    check_overlay_xattrs(inode)?;
    if is_whiteout(inode) {
        check_whiteout_marks(inode)?;
    }
    Ok(())
}

/// What the writer adds to a file with external content for overlayfs (C
/// `add_overlayfs_xattrs`) must fit too.
fn check_overlay_xattrs(inode: &Inode) -> Result<(), ErrorKind> {
    let Content::Regular(file) = &inode.content else {
        return Ok(());
    };
    let external = file.inline.as_ref().is_none_or(|c| c.is_empty());
    if external && inode.stat.size > 0 {
        let mut account = Account::new(inode);
        let digest_len = file
            .digest
            .as_ref()
            .map_or(0, |d| METACOPY_HEADER_SIZE + d.as_bytes().len());
        account.set(OVERLAY_METACOPY, digest_len as u64)?;
        if let Some(payload) = file.payload.as_ref().filter(|p| !p.is_empty()) {
            // The redirect is the payload made absolute: "/" + payload.
            account.set(REDIRECT, 1 + payload.len() as u64)?;
        }
    }
    Ok(())
}

/// The whiteout marks the writer sets on whiteout `inode` must fit.
fn check_whiteout_marks(inode: &Inode) -> Result<(), ErrorKind> {
    let mut account = Account::new(inode);
    for name in [ESCAPED_WHITEOUT, USER_WHITEOUT] {
        account.set(name, 0)?;
    }
    Ok(())
}

/// Sets, in the `account` of a directory holding a whiteout, the marks the writer gives it
/// (opaque too from format `version` 1).
fn mark_whiteout_parent(account: &mut Account, version: u32) -> Result<(), ErrorKind> {
    let mut marks = vec![(ESCAPED_WHITEOUTS, 0), (USER_WHITEOUTS, 0)];
    if version >= 1 {
        marks.extend([(ESCAPED_OPAQUE, 1), (USER_OPAQUE, 1)]);
    }
    for (name, len) in marks {
        account.set(name, len)?;
    }
    Ok(())
}

/// Fails on the first inode no entry owns (`owned` says which are), naming the first hard
/// link to it if there is one.
fn check_owned(
    owned: &[bool],
    first_link: &HashMap<InodeId, Vec<u8>>,
) -> Result<(), DumpfileError> {
    let Some(index) = owned.iter().position(|seen| !seen) else {
        return Ok(());
    };
    let id = InodeId(index as u32);
    let path = match first_link.get(&id).filter(|at| !at.is_empty()) {
        Some(at) => display_path(at),
        None => format!("inode {index}"),
    };
    Err(DumpfileError::Invalid {
        path,
        kind: ErrorKind::UnownedInode { id: id.0 },
    })
}

/// The composefs version the writer uses: `min_version`, raised to 1 when the tree has a
/// whiteout and `max_version` allows it (C `lcfs_write_update_version`).
fn effective_version(tree: &Tree, options: &WriteOptions) -> Result<u32, DumpfileError> {
    for v in [options.min_version, options.max_version] {
        if v > VERSION_MAX {
            return Err(DumpfileError::UnsupportedVersion(v));
        }
    }
    let max = options.max_version.max(options.min_version);
    let mut version = options.min_version;
    if version < 1 && max >= 1 {
        // Only owned inodes count, and every inode but the root is owned exactly once in a
        // tree that passes the walk below; scanning the arena is the same set.
        if tree.inodes.iter().any(is_whiteout) {
            version = 1;
        }
    }
    Ok(version)
}

/// Checks `tree` as C checks it while writing; returns the format version the image gets
/// (`min_version`, bumped to 1 for whiteouts when `max_version` allows).
pub(crate) fn validate(tree: &Tree, options: &WriteOptions) -> Result<u32, DumpfileError> {
    let version = effective_version(tree, options)?;
    let fail = |path: &[u8], kind| DumpfileError::Invalid {
        path: display_path(if path.is_empty() { b"/" } else { path }),
        kind,
    };
    let root = tree
        .inodes
        .first()
        .filter(|r| r.entries().is_some())
        .ok_or_else(|| fail(b"/", ErrorKind::RootNotDirectory))?;
    check_inode(root).map_err(|kind| fail(b"/", kind))?;

    let mut owned = vec![false; tree.inodes.len()];
    if let Some(r) = owned.first_mut() {
        *r = true;
    }
    // The first hard link to each inode, to name an inode no entry owns.
    let mut first_link: HashMap<InodeId, Vec<u8>> = HashMap::new();
    // C's xattr accounts of directories that receive whiteout marks, made on first use.
    let mut accounts: HashMap<InodeId, Account> = HashMap::new();
    let mut path = Vec::new();
    let mut stack = vec![(InodeId::ROOT, 0usize, 0usize)];
    while let Some((dir, next, dir_len)) = stack.last_mut() {
        let dir = *dir;
        let dir_len = *dir_len;
        let entries = tree
            .inodes
            .get(dir.index())
            .and_then(Inode::entries)
            .unwrap_or_default();
        let index = *next;
        let Some(entry) = entries.get(index) else {
            stack.pop();
            continue;
        };
        *next += 1;
        path.truncate(dir_len);
        path.push(b'/');
        path.extend_from_slice(&entry.name);

        check_entry(entries, index).map_err(|kind| fail(&path, kind))?;
        let id = entry.inode;
        let inode = tree
            .inodes
            .get(id.index())
            .ok_or_else(|| fail(&path, ErrorKind::DanglingInode { id: id.0 }))?;

        if entry.hardlink {
            if inode.entries().is_some() {
                let target = format!("inode {}", id.0);
                return Err(fail(&path, ErrorKind::HardlinkToDirectory { target }));
            }
            first_link.entry(id).or_insert_with(|| path.clone());
            continue;
        }
        match owned.get_mut(id.index()) {
            Some(seen) if !*seen => *seen = true,
            _ => return Err(fail(&path, ErrorKind::InodeOwnedTwice { id: id.0 })),
        }
        check_owned_inode(inode).map_err(|kind| fail(&path, kind))?;
        if is_whiteout(inode) {
            let parent_path = path.get(..dir_len).unwrap_or_default();
            let parent = tree
                .inodes
                .get(dir.index())
                .ok_or_else(|| fail(parent_path, ErrorKind::DanglingInode { id: dir.0 }))?;
            let account = accounts.entry(dir).or_insert_with(|| Account::new(parent));
            mark_whiteout_parent(account, version).map_err(|kind| fail(parent_path, kind))?;
        }
        if inode.entries().is_some() {
            // The stack holds this directory's ancestors, the root at depth 0.
            let depth = stack.len();
            if depth > DEPTH_MAX {
                let kind = ErrorKind::TooDeep {
                    depth,
                    max: DEPTH_MAX,
                };
                return Err(fail(&path, kind));
            }
            stack.push((id, 0, path.len()));
        }
    }

    check_owned(&owned, &first_link)?;
    // Last, the root is marked opaque (C `set_overlay_opaque`).
    accounts
        .entry(InodeId::ROOT)
        .or_insert_with(|| Account::new(root))
        .set(OPAQUE, 1)
        .map_err(|kind| fail(b"/", kind))?;
    Ok(version)
}
