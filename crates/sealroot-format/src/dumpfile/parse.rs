//! The dumpfile reader: C `mkcomposefs --from-file` (`tree_from_dump`), line by line.

use std::collections::HashMap;

use sealroot_verity::{AnyDigest, Sha256Digest, Sha512Digest};

use super::error::{DumpfileError, ErrorKind, EscapeError, Field};
use super::escape::{c_string, display_path, display_raw, hex_value, unescape, unescape_optional};
use super::limits::{
    INLINE_CONTENT_MAX, NAME_MAX, PATH_MAX, XATTR_BUDGET_MAX, XATTR_ENTRY_COST, XATTR_HEADER_COST,
    XATTR_NAME_MAX, XATTR_TEXT_MAX, XATTR_VALUE_MAX,
};
use crate::tree::{
    Content, DirEntry, FileType, Inode, InodeId, Mtime, RegularFile, Stat, Tree, Xattr,
};

/// How strictly to read a dumpfile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseMode {
    /// As C `mkcomposefs --from-file` by default, for compatibility: out-of-range numbers wrap
    /// or saturate as `strtoull` and C's 32-bit fields make them, an escaped NUL ends a
    /// name, the last line needs no newline, and `RDEV` on a non-device, a symlink's `SIZE`
    /// and `CONTENT` are ignored.
    Compat,
    /// What sealroot reads for itself: C's `CFS_PARSE_STRICT=1` checks (a final newline,
    /// `RDEV` 0 except on devices, a symlink's `SIZE` its target's length and no `CONTENT`),
    /// and every number must fit its field as written (no sign but on `MTIME` seconds, no
    /// overflow, `MODE` in 16 bits, `NLINK`, `UID`, `GID` and `RDEV` in 32, nanoseconds
    /// below 10^9, seconds in 64 signed bits) and no escaped NUL may cut a path, payload,
    /// digest or xattr name short.
    #[default]
    Strict,
}

/// The fixed fields of one line, still escaped.
struct Fields<'a> {
    path: &'a [u8],
    size: &'a [u8],
    mode: &'a [u8],
    nlink: &'a [u8],
    uid: &'a [u8],
    gid: &'a [u8],
    rdev: &'a [u8],
    mtime: &'a [u8],
    payload: &'a [u8],
    content: &'a [u8],
    digest: &'a [u8],
}

/// C `split_at`: the text before the first `sep`, and what follows it. Without `sep`, all of
/// the text and nothing.
fn split_once(text: &[u8], sep: u8) -> (&[u8], &[u8], bool) {
    match text.iter().position(|&b| b == sep) {
        Some(i) => {
            let (head, tail) = text.split_at(i);
            (head, tail.get(1..).unwrap_or_default(), true)
        }
        None => (text, &[], false),
    }
}

/// Splits the eleven fixed fields off a line; missing fields are empty, as in C. Returns the
/// fields and the xattr text that follows them.
fn split_fields(line: &[u8]) -> (Fields<'_>, &[u8]) {
    let mut rest = line;
    let mut next = || {
        let (field, tail, _) = split_once(rest, b' ');
        rest = tail;
        field
    };
    let fields = Fields {
        path: next(),
        size: next(),
        mode: next(),
        nlink: next(),
        uid: next(),
        gid: next(),
        rdev: next(),
        mtime: next(),
        payload: next(),
        content: next(),
        digest: next(),
    };
    (fields, rest)
}

/// What `strtoull(text, &end, radix)` reads, when it reads all of a non-empty `text`: the
/// magnitude, whether a minus sign came first, and whether it overflowed 64 bits.
struct CNumber {
    magnitude: u64,
    negative: bool,
    overflow: bool,
}

fn scan_c_u64(text: &[u8], radix: u32) -> Option<CNumber> {
    let mut rest = text;
    while let Some((&c, tail)) = rest.split_first() {
        if !matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
            break;
        }
        rest = tail;
    }
    let mut negative = false;
    if let Some((&c, tail)) = rest.split_first() {
        if c == b'+' || c == b'-' {
            negative = c == b'-';
            rest = tail;
        }
    }
    if rest.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    for &c in rest {
        let digit = u32::from(hex_value(c)?);
        if digit >= radix {
            return None;
        }
        match value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(digit)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    Some(CNumber {
        magnitude: value,
        negative,
        overflow,
    })
}

/// The number `strtoull(text, &end, radix)` reads, when it reads all of a non-empty `text`
/// (C `parse_int_field`). Like `strtoull` it skips leading white space, takes a sign (a
/// minus negates modulo 2^64) and turns overflow into `u64::MAX`.
pub(crate) fn parse_c_u64(text: &[u8], radix: u32) -> Option<u64> {
    let n = scan_c_u64(text, radix)?;
    Some(if n.overflow {
        u64::MAX
    } else if n.negative {
        n.magnitude.wrapping_neg()
    } else {
        n.magnitude
    })
}

/// In strict mode: the number in `text` exactly, unsigned and at most `max`, or why not.
fn strict_u64(text: &[u8], radix: u32, max: u64, field: Field) -> Result<u64, ErrorKind> {
    let out_of_range = || ErrorKind::OutOfRange {
        field,
        value: display_raw(text),
        max,
    };
    let n = scan_c_u64(text, radix).ok_or_else(|| ErrorKind::InvalidInteger {
        field,
        value: display_raw(text),
    })?;
    if n.negative || n.overflow || n.magnitude > max {
        return Err(out_of_range());
    }
    Ok(n.magnitude)
}

/// In strict mode: `MTIME` seconds, a signed 64-bit number.
fn strict_seconds(text: &[u8]) -> Result<i64, ErrorKind> {
    let n = scan_c_u64(text, 10).ok_or_else(|| ErrorKind::InvalidInteger {
        field: Field::Mtime,
        value: display_raw(text),
    })?;
    let value = if n.negative {
        0i64.checked_sub_unsigned(n.magnitude)
    } else {
        i64::try_from(n.magnitude).ok()
    };
    value
        .filter(|_| !n.overflow)
        .ok_or_else(|| ErrorKind::OutOfRange {
            field: Field::Mtime,
            value: display_raw(text),
            max: i64::MAX as u64,
        })
}

/// [`parse_c_u64`], or the error naming the field.
fn c_int(text: &[u8], radix: u32, field: Field) -> Result<u64, ErrorKind> {
    parse_c_u64(text, radix).ok_or_else(|| ErrorKind::InvalidInteger {
        field,
        value: display_raw(text),
    })
}

/// Turns an escape problem in `field` into the line's error.
fn escape_error(field: Field) -> impl Fn(EscapeError) -> ErrorKind {
    move |problem| ErrorKind::Escape { field, problem }
}

/// The digest C's `digest_to_raw` fills in completely: the first 64 characters must be hex
/// digits (C reads no further, so longer text is accepted as its first 64 digits). For
/// anything shorter or not hex, C leaves uninitialised bytes in the digest.
///
/// In strict mode, exactly 128 hex digits are a sha512 digest, as composefs-rs prints the
/// files of a sha512 repository (and as [`write`](super::write) prints a sha512 digest).
fn decode_digest(text: &[u8], strict: bool) -> Option<AnyDigest> {
    if strict && text.len() == 2 * Sha512Digest::SIZE {
        if let Some(d) = std::str::from_utf8(text)
            .ok()
            .and_then(|t| Sha512Digest::from_hex(t).ok())
        {
            return Some(AnyDigest::Sha512(d));
        }
    }
    let mut raw = [0u8; 32];
    let mut pairs = text.chunks_exact(2);
    for byte in raw.iter_mut() {
        let pair = pairs.next()?;
        let (hi, lo) = (pair.first()?, pair.get(1)?);
        *byte = hex_value(*hi)? << 4 | hex_value(*lo)?;
    }
    Some(AnyDigest::Sha256(Sha256Digest(raw)))
}

/// A node while the tree is being built: an inode, or a hard-link line not yet resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Inode(InodeId),
    /// Index into [`Parser::links`]. Until [`Parser::finish`], a [`DirEntry`] with
    /// `hardlink: true` holds this index in its `inode` field.
    Link(usize),
}

/// A hard-link line, resolved once every line is read.
struct PendingLink {
    line: usize,
    path: Vec<u8>,
    dir: InodeId,
    name: Vec<u8>,
    target: Option<Vec<u8>>,
}

/// Where a new line goes.
enum Placement {
    Root,
    Child { dir: InodeId, name: Vec<u8> },
}

#[derive(Default)]
struct Parser {
    tree: Option<Tree>,
    links: Vec<PendingLink>,
    strict: bool,
    /// The entries of the directories whose lines came out of name order, by name. A
    /// directory's entries are appended as its lines come; while they come in name order
    /// (as `composefs-info dump` prints them) the entries stay sorted and are searched as
    /// they are. The first line out of order gives the directory an index here instead
    /// (inserting in name order was O(n) per line, O(n^2) for a large directory listed out
    /// of order); such directories are sorted once, in [`Parser::finish`].
    unsorted: HashMap<InodeId, HashMap<Vec<u8>, Node>>,
}

fn entries_of(tree: &Tree, id: InodeId) -> Option<&[DirEntry]> {
    tree.inodes.get(id.index())?.entries()
}

fn find_entry<'t>(entries: &'t [DirEntry], name: &[u8]) -> Option<&'t DirEntry> {
    let i = entries
        .binary_search_by(|e| e.name.as_slice().cmp(name))
        .ok()?;
    entries.get(i)
}

/// `lcfs_node_lookup_child`: only directories have children.
fn lookup_child(tree: &Tree, node: Node, name: &[u8]) -> Option<Node> {
    let Node::Inode(dir) = node else {
        return None;
    };
    let entry = find_entry(entries_of(tree, dir)?, name)?;
    Some(if entry.hardlink {
        Node::Link(entry.inode.index())
    } else {
        Node::Inode(entry.inode)
    })
}

fn trim_slashes(mut path: &[u8]) -> &[u8] {
    while let Some((b'/', rest)) = path.split_first() {
        path = rest;
    }
    path
}

/// C `lookup_path`: follows `path` from the root, ignoring repeated and trailing slashes.
fn lookup_path(tree: &Tree, path: &[u8]) -> Option<Node> {
    let mut node = Node::Inode(InodeId::ROOT);
    for component in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        node = lookup_child(tree, node, component)?;
    }
    Some(node)
}

fn to_id(index: usize) -> Result<u32, ErrorKind> {
    u32::try_from(index).map_err(|_| ErrorKind::TooManyFiles)
}

/// `lcfs_node_set_xattr` for dumpfile input: replaces an existing value (moving the last
/// xattr into its slot, as C does), and keeps the inode within C's xattr budget.
fn set_xattr(
    xattrs: &mut Vec<Xattr>,
    budget: &mut u64,
    name: Vec<u8>,
    value: Vec<u8>,
) -> Result<(), ErrorKind> {
    if name.is_empty() {
        return Err(ErrorKind::XattrNameEmpty);
    }
    if name.len() > XATTR_NAME_MAX {
        return Err(ErrorKind::XattrNameTooLong {
            name: display_path(&name),
            len: name.len(),
        });
    }
    if value.len() > XATTR_VALUE_MAX {
        return Err(ErrorKind::XattrValueTooLong {
            name: display_path(&name),
            len: value.len(),
        });
    }
    let cost = |n: &[u8], v: &[u8]| XATTR_ENTRY_COST + n.len() as u64 + v.len() as u64;
    if let Some(pos) = xattrs.iter().position(|x| x.name == name) {
        let old = xattrs.swap_remove(pos);
        *budget = if xattrs.is_empty() {
            0
        } else {
            budget.saturating_sub(cost(&old.name, &old.value))
        };
    }
    let mut entry = cost(&name, &value);
    if xattrs.is_empty() {
        entry += XATTR_HEADER_COST;
    }
    if *budget + entry > XATTR_BUDGET_MAX {
        return Err(ErrorKind::XattrsTooLarge {
            name: display_path(&name),
        });
    }
    *budget += entry;
    xattrs.push(Xattr { name, value });
    Ok(())
}

/// The `KEY=VALUE` xattrs after the fixed fields, each set as C sets it.
fn parse_xattrs(text: &[u8], xattrs: &mut Vec<Xattr>, strict: bool) -> Result<(), ErrorKind> {
    // C caps the xattr text because setting each xattr scans the ones before it.
    if text.len() > XATTR_TEXT_MAX {
        return Err(ErrorKind::TooManyXattrs { len: text.len() });
    }
    let escape = |problem| ErrorKind::Escape {
        field: Field::Xattr,
        problem,
    };
    let mut budget = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let (xattr, tail, _) = split_once(rest, b' ');
        rest = tail;
        let (name, value, has_equals) = split_once(xattr, b'=');
        if !has_equals {
            return Err(ErrorKind::XattrMissingEquals);
        }
        let name = unescape(name).map_err(escape)?;
        if strict && name.contains(&0) {
            return Err(ErrorKind::EscapedNul {
                field: Field::Xattr,
            });
        }
        let name = c_string(name);
        let value = unescape(value).map_err(escape)?;
        set_xattr(xattrs, &mut budget, name, value)?;
    }
    Ok(())
}

impl Parser {
    /// C `tree_add_node`, without adding: where `path` goes, or why it cannot go there.
    fn place(&self, path: &[u8], dir: bool) -> Result<Placement, ErrorKind> {
        if path == b"/" {
            if !dir {
                return Err(ErrorKind::RootNotDirectory);
            }
            if self.tree.is_some() {
                return Err(ErrorKind::MultipleRoots);
            }
            return Ok(Placement::Root);
        }
        let tree = self.tree.as_ref().ok_or(ErrorKind::RootMissing)?;
        // C `lookup_parent_path`: every component but the last must exist; the last is the
        // name, empty when the path ends in a slash.
        let mut parent = Node::Inode(InodeId::ROOT);
        let mut rest = trim_slashes(path);
        let name = loop {
            match split_once(rest, b'/') {
                (component, tail, true) => {
                    parent = self
                        .child(parent, component)
                        .ok_or(ErrorKind::ParentMissing)?;
                    rest = trim_slashes(tail);
                }
                (name, _, false) => break name,
            }
        };
        let Node::Inode(dir_id) = parent else {
            return Err(ErrorKind::ParentNotDirectory);
        };
        if entries_of(tree, dir_id).is_none() {
            return Err(ErrorKind::ParentNotDirectory);
        }
        if name == b"." || name == b".." {
            return Err(ErrorKind::DotOrDotDot);
        }
        if name.is_empty() {
            return Err(ErrorKind::EmptyName);
        }
        if name.len() > NAME_MAX {
            return Err(ErrorKind::NameTooLong { len: name.len() });
        }
        if self.child(Node::Inode(dir_id), name).is_some() {
            return Err(ErrorKind::AlreadyExists);
        }
        Ok(Placement::Child {
            dir: dir_id,
            name: name.to_vec(),
        })
    }

    /// `lcfs_node_lookup_child` while lines are read: only directories have children.
    fn child(&self, node: Node, name: &[u8]) -> Option<Node> {
        let Node::Inode(dir) = node else {
            return None;
        };
        match self.unsorted.get(&dir) {
            Some(index) => index.get(name).copied(),
            None => lookup_child(self.tree.as_ref()?, node, name),
        }
    }

    /// Adds `entry` to directory `dir` (in line order: see [`Parser::children`]).
    fn link_entry(&mut self, dir: InodeId, entry: DirEntry) -> Result<(), ErrorKind> {
        let entries = match self
            .tree
            .as_mut()
            .and_then(|t| t.inodes.get_mut(dir.index()))
            .map(|i| &mut i.content)
        {
            Some(Content::Directory(entries)) => entries,
            _ => return Err(ErrorKind::ParentNotDirectory),
        };
        let node = if entry.hardlink {
            Node::Link(entry.inode.index())
        } else {
            Node::Inode(entry.inode)
        };
        if let Some(index) = self.unsorted.get_mut(&dir) {
            if index.insert(entry.name.clone(), node).is_some() {
                return Err(ErrorKind::AlreadyExists);
            }
            entries.push(entry);
            return Ok(());
        }
        if entries.last().is_none_or(|last| last.name < entry.name) {
            entries.push(entry);
            return Ok(());
        }
        if find_entry(entries, &entry.name).is_some() {
            return Err(ErrorKind::AlreadyExists);
        }
        // The first line out of order in this directory: index it from now on.
        let mut index: HashMap<Vec<u8>, Node> = entries
            .iter()
            .map(|e| {
                let node = if e.hardlink {
                    Node::Link(e.inode.index())
                } else {
                    Node::Inode(e.inode)
                };
                (e.name.clone(), node)
            })
            .collect();
        index.insert(entry.name.clone(), node);
        entries.push(entry);
        self.unsorted.insert(dir, index);
        Ok(())
    }

    fn add(&mut self, placement: Placement, inode: Inode) -> Result<(), ErrorKind> {
        match placement {
            Placement::Root => {
                self.tree = Some(Tree {
                    inodes: vec![inode],
                });
                Ok(())
            }
            Placement::Child { dir, name } => {
                let tree = self.tree.as_mut().ok_or(ErrorKind::RootMissing)?;
                let id = InodeId(to_id(tree.inodes.len())?);
                tree.inodes.push(inode);
                self.link_entry(
                    dir,
                    DirEntry {
                        name,
                        inode: id,
                        hardlink: false,
                    },
                )
            }
        }
    }

    /// C `tree_from_dump_line`.
    fn line(&mut self, number: usize, line: &[u8]) -> Result<(), DumpfileError> {
        let mut path_for_error: Option<Vec<u8>> = None;
        match self.line_inner(line, &mut path_for_error) {
            Ok(Some(mut link)) => {
                link.line = number;
                self.links.push(link);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(kind) => Err(DumpfileError::Line {
                line: number,
                path: path_for_error.as_deref().map(display_path),
                kind,
            }),
        }
    }

    fn line_inner(
        &mut self,
        line: &[u8],
        path_for_error: &mut Option<Vec<u8>>,
    ) -> Result<Option<PendingLink>, ErrorKind> {
        // C refuses NUL bytes in the raw line early: they only make parsing ambiguous.
        if let Some(offset) = line.iter().position(|&b| b == 0) {
            return Err(ErrorKind::EmbeddedNul { offset });
        }
        let (f, xattr_text) = split_fields(line);

        let path = self.c_string(f.path, Field::Path)?;
        if path.is_empty() {
            return Err(ErrorKind::EmptyPath);
        }
        *path_for_error = Some(path.clone());

        let (hardlink, mode_text) = match f.mode.split_first() {
            Some((b'@', rest)) => (true, rest),
            _ => (false, f.mode),
        };
        // `lcfs_node_try_set_mode` takes 32 bits: higher bits are dropped before the check.
        let mode = if self.strict {
            strict_u64(mode_text, 8, u64::from(u16::MAX), Field::Mode)?
        } else {
            c_int(mode_text, 8, Field::Mode)?
        } as u32;
        let file_type = FileType::from_mode(mode).ok_or(ErrorKind::InvalidMode { mode })?;
        let placement = self.place(&path, file_type == FileType::Directory)?;

        if hardlink {
            return self.hardlink_line(&f, path, file_type, placement).map(Some);
        }

        let stat = self.numbers(&f, mode, file_type)?;
        let payload = self.optional_c_string(f.payload, Field::Payload)?;
        let content = unescape_optional(f.content).map_err(escape_error(Field::Content))?;
        if let Some(content) = &content {
            if content.len() as u64 != stat.size {
                return Err(ErrorKind::ContentSizeMismatch {
                    content_len: content.len() as u64,
                    size: stat.size,
                });
            }
        }
        let digest_text = self.optional_c_string(f.digest, Field::Digest)?;

        let mut inode = self.inode(stat, file_type, payload, content)?;
        // C keeps a digest on any node but writes it only for regular files.
        if let (Some(text), Content::Regular(file)) = (digest_text, &mut inode.content) {
            let digest = decode_digest(&text, self.strict);
            // The digest reaches the image (as trusted.overlay.metacopy) only for a non-empty
            // file stored outside it; elsewhere C ignores a bad one.
            let written = file.inline.is_none() && inode.stat.size > 0;
            if digest.is_none() && written {
                return Err(ErrorKind::InvalidDigest {
                    value: display_raw(&text),
                });
            }
            file.digest = digest;
        }

        parse_xattrs(xattr_text, &mut inode.xattrs, self.strict)?;
        self.add(placement, inode)?;
        Ok(None)
    }

    /// A C string field (C stops at an escaped NUL; strict parsing refuses one).
    fn c_string(&self, text: &[u8], field: Field) -> Result<Vec<u8>, ErrorKind> {
        let bytes = unescape(text).map_err(escape_error(field))?;
        self.checked_c_string(bytes, field)
    }

    /// [`Parser::c_string`] of an optional field (`-` for none).
    fn optional_c_string(&self, text: &[u8], field: Field) -> Result<Option<Vec<u8>>, ErrorKind> {
        unescape_optional(text)
            .map_err(escape_error(field))?
            .map(|bytes| self.checked_c_string(bytes, field))
            .transpose()
    }

    fn checked_c_string(&self, bytes: Vec<u8>, field: Field) -> Result<Vec<u8>, ErrorKind> {
        if self.strict && bytes.contains(&0) {
            return Err(ErrorKind::EscapedNul { field });
        }
        Ok(c_string(bytes))
    }

    /// A hard-link line: every field but the path, `@MODE` and the target is ignored.
    fn hardlink_line(
        &mut self,
        f: &Fields<'_>,
        path: Vec<u8>,
        file_type: FileType,
        placement: Placement,
    ) -> Result<PendingLink, ErrorKind> {
        if file_type == FileType::Directory {
            return Err(ErrorKind::DirectoryHardlink);
        }
        let target = self.optional_c_string(f.payload, Field::Payload)?;
        let Placement::Child { dir, name } = placement else {
            return Err(ErrorKind::RootNotDirectory);
        };
        let index = self.links.len();
        self.link_entry(
            dir,
            DirEntry {
                name: name.clone(),
                inode: InodeId(to_id(index)?),
                hardlink: true,
            },
        )?;
        Ok(PendingLink {
            line: 0,
            path,
            dir,
            name,
            target,
        })
    }

    /// The numeric fields of a line: as C reads them (wrapped, saturated, truncated to the
    /// inode's 32 bits), or in strict mode exactly or not at all.
    fn numbers(&self, f: &Fields<'_>, mode: u32, file_type: FileType) -> Result<Stat, ErrorKind> {
        let device = matches!(file_type, FileType::CharDevice | FileType::BlockDevice);
        let (sec_text, nsec_text, _) = split_once(f.mtime, b'.');
        let (size, nlink, uid, gid, rdev, sec, nsec) = if self.strict {
            let u32_max = u64::from(u32::MAX);
            (
                strict_u64(f.size, 10, u64::MAX, Field::Size)?,
                strict_u64(f.nlink, 10, u32_max, Field::Nlink)?,
                strict_u64(f.uid, 10, u32_max, Field::Uid)?,
                strict_u64(f.gid, 10, u32_max, Field::Gid)?,
                strict_u64(f.rdev, 10, u32_max, Field::Rdev)?,
                strict_seconds(sec_text)?,
                strict_u64(nsec_text, 10, 999_999_999, Field::Mtime)?,
            )
        } else {
            let uid = c_int(f.uid, 10, Field::Uid)?;
            // C checks `uid == 0 && err` after parsing GID and RDEV (a slip for gid/rdev), so
            // a bad GID or RDEV is an error only when UID is 0; otherwise it reads as 0.
            let lenient = |text: &[u8], field: Field| match parse_c_u64(text, 10) {
                Some(v) => Ok(v),
                None if uid != 0 => Ok(0),
                None => Err(ErrorKind::InvalidInteger {
                    field,
                    value: display_raw(text),
                }),
            };
            (
                c_int(f.size, 10, Field::Size)?,
                c_int(f.nlink, 10, Field::Nlink)?,
                uid,
                lenient(f.gid, Field::Gid)?,
                lenient(f.rdev, Field::Rdev)?,
                c_int(sec_text, 10, Field::Mtime)? as i64,
                c_int(nsec_text, 10, Field::Mtime)?,
            )
        };
        if !device && self.strict && rdev != 0 {
            return Err(ErrorKind::NonDeviceRdev { rdev });
        }
        Ok(Stat {
            mode,
            uid: uid as u32,
            gid: gid as u32,
            nlink: nlink as u32,
            // The kernel's 32-bit device number; C keeps none for other types.
            rdev: if device { rdev as u32 } else { 0 },
            size,
            mtime: Mtime {
                sec,
                nsec: nsec as u32,
            },
        })
    }

    /// The inode of a line, by its type: a symlink's target, a file's content and payload.
    fn inode(
        &self,
        mut stat: Stat,
        file_type: FileType,
        payload: Option<Vec<u8>>,
        content: Option<Vec<u8>>,
    ) -> Result<Inode, ErrorKind> {
        let body = match file_type {
            FileType::Symlink => {
                let target = payload.unwrap_or_default();
                if target.is_empty() {
                    return Err(ErrorKind::SymlinkTargetEmpty);
                }
                if target.len() >= PATH_MAX {
                    return Err(ErrorKind::SymlinkTargetTooLong { len: target.len() });
                }
                if self.strict {
                    if stat.size != target.len() as u64 {
                        return Err(ErrorKind::SymlinkSizeMismatch {
                            target_len: target.len() as u64,
                            size: stat.size,
                        });
                    }
                    if content.as_ref().is_some_and(|c| !c.is_empty()) {
                        return Err(ErrorKind::SymlinkContent);
                    }
                }
                // C replaces the size of a symlink with its target's length.
                stat.size = target.len() as u64;
                Content::Symlink(target)
            }
            _ => {
                if let Some(payload) = &payload {
                    if payload.len() >= PATH_MAX {
                        return Err(ErrorKind::PayloadTooLong { len: payload.len() });
                    }
                }
                if let Some(content) = &content {
                    if content.len() > INLINE_CONTENT_MAX {
                        return Err(ErrorKind::ContentTooLarge { len: content.len() });
                    }
                }
                match file_type {
                    FileType::Directory => Content::Directory(Vec::new()),
                    // `lcfs_node_set_content` stores no content for zero bytes.
                    FileType::Regular => Content::Regular(RegularFile {
                        inline: content.filter(|c| !c.is_empty()),
                        payload,
                        digest: None,
                    }),
                    _ => Content::Special,
                }
            }
        };
        Ok(Inode::new(stat, body))
    }

    /// C `tree_resolve_hardlinks`, then the checks C makes only when writing (hard-link
    /// loops), then the inodes are numbered in dump order.
    fn finish(self) -> Result<Tree, DumpfileError> {
        let Parser {
            tree,
            links,
            unsorted,
            ..
        } = self;
        let mut tree = tree.ok_or(DumpfileError::Empty)?;
        for dir in unsorted.into_keys() {
            if let Some(Content::Directory(entries)) =
                tree.inodes.get_mut(dir.index()).map(|i| &mut i.content)
            {
                // Names in a directory are unique, so an unstable sort is deterministic.
                entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
            }
        }
        let direct = link_targets(&tree, &links)?;
        let resolved = follow_links(&tree, &links, &direct)?;
        for (link, id) in links.into_iter().zip(resolved) {
            let entry = match tree
                .inodes
                .get_mut(link.dir.index())
                .map(|i| &mut i.content)
            {
                Some(Content::Directory(entries)) => entries
                    .binary_search_by(|e| e.name.as_slice().cmp(&link.name))
                    .ok()
                    .and_then(|pos| entries.get_mut(pos)),
                _ => None,
            };
            if let Some(entry) = entry {
                entry.inode = id;
            }
        }
        Ok(renumber(tree))
    }
}

impl PendingLink {
    /// The error `kind` at this link's line.
    fn fail(&self, kind: ErrorKind) -> DumpfileError {
        DumpfileError::Line {
            line: self.line,
            path: Some(display_path(&self.path)),
            kind,
        }
    }

    /// Its target, for messages.
    fn shown_target(&self) -> String {
        display_path(self.target.as_deref().unwrap_or_default())
    }
}

/// What each hard link's target path names in `tree`: an inode or another link. C prepends
/// each fixup to a list, so it resolves (and reports) the last line first.
fn link_targets(tree: &Tree, links: &[PendingLink]) -> Result<Vec<Node>, DumpfileError> {
    let mut direct = vec![Node::Inode(InodeId::ROOT); links.len()];
    for (i, link) in links.iter().enumerate().rev() {
        let target = link
            .target
            .as_deref()
            .ok_or_else(|| link.fail(ErrorKind::HardlinkNoTarget))?;
        let node = lookup_path(tree, target).ok_or_else(|| {
            link.fail(ErrorKind::HardlinkTargetMissing {
                target: display_path(target),
            })
        })?;
        if node == Node::Link(i) {
            return Err(link.fail(ErrorKind::HardlinkSelf {
                target: display_path(target),
            }));
        }
        if let Some(slot) = direct.get_mut(i) {
            *slot = node;
        }
    }
    Ok(direct)
}

/// The inode each hard link leads to: a link to a link is a link to what that one links to
/// (C `follow_links`). Refuses cycles and links to directories.
fn follow_links(
    tree: &Tree,
    links: &[PendingLink],
    direct: &[Node],
) -> Result<Vec<InodeId>, DumpfileError> {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; links.len()];
    let mut resolved = vec![InodeId::ROOT; links.len()];
    let mut chain = Vec::new();
    for (i, link) in links.iter().enumerate() {
        chain.clear();
        let mut cur = i;
        let id = loop {
            match state.get(cur).copied() {
                Some(DONE) => break resolved.get(cur).copied().unwrap_or(InodeId::ROOT),
                Some(NEW) => {}
                _ => {
                    return Err(link.fail(ErrorKind::HardlinkCycle {
                        target: link.shown_target(),
                    }))
                }
            }
            if let Some(s) = state.get_mut(cur) {
                *s = ON_PATH;
            }
            chain.push(cur);
            match direct.get(cur) {
                Some(Node::Inode(id)) => break *id,
                Some(Node::Link(next)) => cur = *next,
                None => {
                    return Err(link.fail(ErrorKind::HardlinkTargetMissing {
                        target: link.shown_target(),
                    }))
                }
            }
        };
        for &c in &chain {
            if let (Some(s), Some(r)) = (state.get_mut(c), resolved.get_mut(c)) {
                *s = DONE;
                *r = id;
            }
        }
        // C writes an image where the directory has two names (its check is never
        // reached); a directory hard link makes the tree a graph, so refuse it.
        if entries_of(tree, id).is_some() {
            return Err(link.fail(ErrorKind::HardlinkToDirectory {
                target: link.shown_target(),
            }));
        }
    }
    Ok(resolved)
}

/// Renumbers the inodes in the order a dump lists them (depth first, entries in name order),
/// so that equal trees compare equal however their lines were ordered. Expects a tree whose
/// entries are consistent, as the parser builds them.
pub(super) fn renumber(tree: Tree) -> Tree {
    let n = tree.inodes.len();
    let mut order = Vec::with_capacity(n);
    let mut new_id = vec![u32::MAX; n];
    order.push(InodeId::ROOT);
    if let Some(slot) = new_id.get_mut(0) {
        *slot = 0;
    }
    let mut stack = vec![(InodeId::ROOT, 0usize)];
    while let Some((dir, next)) = stack.last_mut() {
        let Some(entry) = entries_of(&tree, *dir).and_then(|e| e.get(*next)) else {
            stack.pop();
            continue;
        };
        *next += 1;
        if entry.hardlink {
            continue;
        }
        let child = entry.inode;
        match new_id.get_mut(child.index()) {
            Some(slot) if *slot == u32::MAX => *slot = order.len() as u32,
            // Owned twice: not a tree the parser builds; leave it alone.
            _ => continue,
        }
        order.push(child);
        if entries_of(&tree, child).is_some() {
            stack.push((child, 0));
        }
    }
    if order.len() != n {
        return tree;
    }
    let mut old: Vec<Option<Inode>> = tree.inodes.into_iter().map(Some).collect();
    let mut inodes: Vec<Inode> = order
        .iter()
        .filter_map(|id| old.get_mut(id.index()).and_then(Option::take))
        .collect();
    for inode in &mut inodes {
        if let Content::Directory(entries) = &mut inode.content {
            for entry in entries {
                if let Some(&id) = new_id.get(entry.inode.index()) {
                    entry.inode = InodeId(id);
                }
            }
        }
    }
    Tree { inodes }
}

/// Parses a whole dumpfile.
pub(crate) fn parse(input: &[u8], mode: ParseMode) -> Result<Tree, DumpfileError> {
    let strict = mode == ParseMode::Strict;
    let mut parser = Parser {
        strict,
        ..Parser::default()
    };
    let mut lines = input.split(|&b| b == b'\n').enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        let number = index + 1;
        if lines.peek().is_none() {
            // The text after the last newline.
            if line.is_empty() {
                break;
            }
            if strict {
                return Err(DumpfileError::MissingTrailingNewline { line: number });
            }
        }
        parser.line(number, line)?;
    }
    parser.finish()
}
