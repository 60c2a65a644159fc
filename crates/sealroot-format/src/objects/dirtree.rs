//! dirtree and dirmeta objects.

use sealroot_verity::{AnyDigest, HashAlgorithm};

use super::error::{ParseError, Problem};
use super::text::{self, fields};
use super::ObjectKind;
use crate::tree::{FileType, Mtime, Xattr};

/// The attributes of an inode that a dirtree entry or a dirmeta records: the whole of a
/// dirmeta object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Attrs {
    /// Type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Mtime,
    /// Extended attributes, sorted by name, names unique.
    pub xattrs: Vec<Xattr>,
}

/// What a dirtree entry names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A subdirectory: its dirtree and dirmeta objects.
    Dir {
        /// Its entries.
        tree: AnyDigest,
        /// Its own attributes.
        meta: AnyDigest,
    },
    /// A regular file.
    File {
        /// Its attributes.
        attrs: Attrs,
        /// Its size in bytes.
        size: u64,
        /// The file object holding its content (not for inline or empty files).
        digest: Option<AnyDigest>,
        /// Its content, stored in the image.
        inline: Option<Vec<u8>>,
    },
    /// A symbolic link.
    Symlink {
        /// Its attributes.
        attrs: Attrs,
        /// Its target.
        target: Vec<u8>,
    },
    /// A block or character device, fifo or socket (the type is in the mode).
    Special {
        /// Its attributes.
        attrs: Attrs,
        /// Its device number (kernel "new" encoding).
        rdev: u32,
    },
    /// A hard link to the inode owned by the entry at `target`, an absolute path.
    Hardlink {
        /// `/`-separated path from the root of the commit's tree.
        target: Vec<u8>,
    },
}

/// One name in a directory.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TreeEntry {
    /// 1 to 255 bytes, no `/`, no NUL, not `.` or `..`.
    pub name: Vec<u8>,
    /// What it names.
    pub kind: EntryKind,
}

/// A directory's entries, sorted by name.
///
/// The ids it names are all of one algorithm, its repository's (the parser refuses a mix;
/// the encoder does not check).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DirTree {
    /// The entries, sorted bytewise by name, names unique.
    pub entries: Vec<TreeEntry>,
}

impl EntryKind {
    /// The ids this entry names: a subdirectory's dirtree and dirmeta, a file's object.
    pub fn ids(&self) -> impl Iterator<Item = &AnyDigest> {
        let (a, b) = match self {
            EntryKind::Dir { tree, meta } => (Some(tree), Some(meta)),
            EntryKind::File { digest, .. } => (digest.as_ref(), None),
            _ => (None, None),
        };
        a.into_iter().chain(b)
    }
}

impl Attrs {
    /// The dirmeta object's bytes.
    pub fn encode_dirmeta(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        text::header(&mut out, ObjectKind::DirMeta);
        text::push_octal(&mut out, self.mode);
        out.push(b' ');
        text::push_u64(&mut out, u64::from(self.uid));
        out.push(b' ');
        text::push_u64(&mut out, u64::from(self.gid));
        text::push_mtime(&mut out, self.mtime);
        text::push_xattrs(&mut out, &self.xattrs);
        out.push(b'\n');
        out
    }

    /// Parses a dirmeta object (strict, canonical only).
    ///
    /// # Errors
    /// [`ParseError`] naming the line and the problem.
    pub fn parse_dirmeta(bytes: &[u8]) -> Result<Attrs, ParseError> {
        let kind = ObjectKind::DirMeta;
        let mut lines = text::body_lines(kind, bytes)?;
        let Some((n, line)) = lines.next() else {
            return Err(ParseError::new(kind, 0, Problem::Missing("attributes")));
        };
        if let Some((n, extra)) = lines.next() {
            return Err(ParseError::new(
                kind,
                n,
                Problem::UnexpectedLine(text::shown(extra)),
            ));
        }
        let f = fields(line);
        let attrs = parse_attrs("dirmeta", &f, 0, 4).map_err(|p| ParseError::new(kind, n, p))?;
        if FileType::from_mode(attrs.mode) != Some(FileType::Directory) {
            return Err(ParseError::new(
                kind,
                n,
                Problem::BadField {
                    field: "mode",
                    reason: "not a directory".into(),
                },
            ));
        }
        if attrs.encode_dirmeta() != bytes {
            return Err(ParseError::new(kind, 0, Problem::NotCanonical));
        }
        Ok(attrs)
    }
}

/// Parses `MODE UID GID MTIME` at `f[at..]` and the xattrs in `f[xattrs_from..]`.
fn parse_attrs(
    what: &'static str,
    f: &[&[u8]],
    at: usize,
    xattrs_from: usize,
) -> Result<Attrs, Problem> {
    if f.len() < at + 4 {
        return Err(Problem::FieldCount {
            what,
            expected: at + 4,
            found: f.len(),
        });
    }
    let mode = text::octal("mode", f[at])?;
    if FileType::from_mode(mode).is_none() || mode > 0o177777 {
        return Err(Problem::BadField {
            field: "mode",
            reason: format!("{mode:o} is not a file type with 12 permission bits"),
        });
    }
    let xattrs = f[xattrs_from.max(at + 4)..]
        .iter()
        .map(|x| text::xattr(x))
        .collect::<Result<Vec<_>, _>>()?;
    text::check_xattrs(&xattrs)?;
    Ok(Attrs {
        mode,
        uid: text::dec("uid", f[at + 1])?,
        gid: text::dec("gid", f[at + 2])?,
        mtime: text::mtime(f[at + 3])?,
        xattrs,
    })
}

fn push_attrs(out: &mut Vec<u8>, a: &Attrs) {
    text::push_mode_owner(out, a.mode, a.uid, a.gid);
    text::push_mtime(out, a.mtime);
}

/// Checks a directory entry name.
pub(crate) fn check_name(name: &[u8]) -> Result<(), Problem> {
    if name.is_empty()
        || name.len() > 255
        || name == b"."
        || name == b".."
        || name.iter().any(|&b| b == b'/' || b == 0)
    {
        return Err(Problem::BadField {
            field: "name",
            reason: format!(
                "\"{}\" is empty, longer than 255 bytes, . or .., or has / or NUL",
                text::shown(name)
            ),
        });
    }
    Ok(())
}

impl DirTree {
    /// The algorithm of the ids it names; `None` if it names none (a directory of inline
    /// files, symlinks and the like reads the same in a repository of either algorithm).
    pub fn algorithm(&self) -> Option<HashAlgorithm> {
        self.entries
            .iter()
            .flat_map(|e| e.kind.ids())
            .map(AnyDigest::algorithm)
            .next()
    }

    /// The dirtree object's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.entries.len() * 120);
        text::header(&mut out, ObjectKind::DirTree);
        for e in &self.entries {
            e.encode_into(&mut out);
        }
        out
    }

    /// Parses a dirtree object (strict, canonical only).
    ///
    /// # Errors
    /// [`ParseError`] naming the line and the problem.
    pub fn parse(bytes: &[u8]) -> Result<DirTree, ParseError> {
        let kind = ObjectKind::DirTree;
        let mut entries: Vec<TreeEntry> = Vec::new();
        // Each line is checked to be the one encoding of its entry as it is read (the header
        // and the line structure are checked by `body_lines`), so the whole object is.
        let mut again = Vec::with_capacity(256);
        let mut algorithm = text::OneAlgorithm::default();
        for (n, line) in text::body_lines(kind, bytes)? {
            let err = |p| ParseError::new(kind, n, p);
            if entries.len() >= super::limits::DIRTREE_ENTRIES_MAX {
                return Err(err(Problem::TooManyEntries(
                    super::limits::DIRTREE_ENTRIES_MAX,
                )));
            }
            let entry = TreeEntry::parse(line).map_err(err)?;
            again.clear();
            entry.encode_into(&mut again);
            if again.strip_suffix(b"\n") != Some(line) {
                return Err(err(Problem::NotCanonical));
            }
            for id in entry.kind.ids() {
                algorithm.check(id).map_err(err)?;
            }
            if let Some(prev) = entries.last() {
                match prev.name.cmp(&entry.name) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        return Err(err(Problem::Duplicate {
                            what: "entry",
                            name: text::name(&entry.name),
                        }))
                    }
                    std::cmp::Ordering::Greater => {
                        return Err(err(Problem::Unsorted {
                            what: "entry",
                            name: text::name(&entry.name),
                        }))
                    }
                }
            }
            entries.push(entry);
        }
        Ok(DirTree { entries })
    }
}

impl TreeEntry {
    fn encode_into(&self, out: &mut Vec<u8>) {
        let (tag, attrs) = match &self.kind {
            EntryKind::Dir { .. } => (b'd', None),
            EntryKind::File { attrs, .. } => (b'f', Some(attrs)),
            EntryKind::Symlink { attrs, .. } => (b'l', Some(attrs)),
            EntryKind::Special { attrs, .. } => (b's', Some(attrs)),
            EntryKind::Hardlink { .. } => (b'h', None),
        };
        out.push(tag);
        text::push_field(out, &self.name);
        if let Some(a) = attrs {
            push_attrs(out, a);
        }
        match &self.kind {
            EntryKind::Dir { tree, meta } => {
                text::push_digest(out, tree);
                text::push_digest(out, meta);
            }
            EntryKind::File {
                size,
                digest,
                inline,
                ..
            } => {
                out.push(b' ');
                text::push_u64(out, *size);
                match digest {
                    Some(d) => text::push_digest(out, d),
                    None => out.extend_from_slice(b" -"),
                }
                text::push_optional(out, inline.as_deref());
            }
            EntryKind::Symlink { target, .. } => text::push_field(out, target),
            EntryKind::Special { rdev, .. } => {
                out.push(b' ');
                text::push_u64(out, u64::from(*rdev));
            }
            EntryKind::Hardlink { target } => text::push_field(out, target),
        }
        if let Some(a) = attrs {
            text::push_xattrs(out, &a.xattrs);
        }
        out.push(b'\n');
    }

    fn parse(line: &[u8]) -> Result<TreeEntry, Problem> {
        let f = fields(line);
        field_count(&f, "entry", 2, false)?;
        let name = text::unescape("name", f[1])?;
        check_name(&name)?;
        let kind = match f[0] {
            b"d" => {
                field_count(&f, "directory entry", 4, true)?;
                EntryKind::Dir {
                    tree: text::digest("dirtree", f[2])?,
                    meta: text::digest("dirmeta", f[3])?,
                }
            }
            b"f" => file_entry(&f)?,
            b"l" => {
                let attrs = entry_attrs(&f, "symlink entry", 7, "a symlink", |t| {
                    t == FileType::Symlink
                })?;
                let target = text::unescape("symlink target", f[6])?;
                if target.is_empty()
                    || target.len() >= super::limits::TARGET_MAX
                    || target.contains(&0)
                {
                    return Err(Problem::BadField {
                        field: "symlink target",
                        reason: "empty, not shorter than 4096 bytes, or with a NUL".into(),
                    });
                }
                EntryKind::Symlink { attrs, target }
            }
            b"s" => EntryKind::Special {
                attrs: entry_attrs(
                    &f,
                    "special file entry",
                    7,
                    "a device, fifo or socket",
                    |t| {
                        matches!(
                            t,
                            FileType::BlockDevice
                                | FileType::CharDevice
                                | FileType::Fifo
                                | FileType::Socket
                        )
                    },
                )?,
                rdev: text::dec("rdev", f[6])?,
            },
            b"h" => {
                field_count(&f, "hard link entry", 3, true)?;
                let target = text::unescape("hard link target", f[2])?;
                check_link_target(&target)?;
                EntryKind::Hardlink { target }
            }
            other => return Err(Problem::UnexpectedLine(text::shown(other))),
        };
        Ok(TreeEntry { name, kind })
    }
}

/// Checks that an entry line `f` (a `what`) has at least `expected` fields, or exactly.
fn field_count(
    f: &[&[u8]],
    what: &'static str,
    expected: usize,
    exact: bool,
) -> Result<(), Problem> {
    if f.len() < expected || (exact && f.len() != expected) {
        Err(Problem::FieldCount {
            what,
            expected,
            found: f.len(),
        })
    } else {
        Ok(())
    }
}

/// The attributes of entry line `f` (a `what`, whose xattrs start at field `xattrs_from`),
/// whose mode must be of a type for which `is` holds (`expected` in words).
fn entry_attrs(
    f: &[&[u8]],
    what: &'static str,
    xattrs_from: usize,
    expected: &str,
    is: impl Fn(FileType) -> bool,
) -> Result<Attrs, Problem> {
    field_count(f, what, xattrs_from, false)?;
    let attrs = parse_attrs(what, f, 2, xattrs_from)?;
    if !FileType::from_mode(attrs.mode).is_some_and(is) {
        return Err(mode_mismatch(expected));
    }
    Ok(attrs)
}

/// A file entry: `f NAME MODE UID GID MTIME SIZE DIGEST|- INLINE|- XATTRS...`, with a digest,
/// inline content of its size, or neither for an empty file.
fn file_entry(f: &[&[u8]]) -> Result<EntryKind, Problem> {
    let attrs = entry_attrs(f, "file entry", 9, "a regular file", |t| {
        t == FileType::Regular
    })?;
    let size: u64 = text::dec("size", f[6])?;
    let digest = match f[7] {
        b"-" => None,
        d => Some(text::digest("digest", d)?),
    };
    let inline = match f[8] {
        b"-" => None,
        c => Some(text::unescape("inline content", c)?),
    };
    match (&digest, &inline) {
        (Some(_), Some(_)) => {
            return Err(Problem::BadField {
                field: "inline content",
                reason: "a file has a digest or inline content, not both".into(),
            })
        }
        (None, Some(c)) if c.len() as u64 != size || c.is_empty() => {
            return Err(Problem::BadField {
                field: "inline content",
                reason: format!("{} bytes for a file of {size}", c.len()),
            })
        }
        (None, None) if size != 0 => {
            return Err(Problem::BadField {
                field: "digest",
                reason: format!("a file of {size} bytes needs a digest or content"),
            })
        }
        _ => {}
    }
    Ok(EntryKind::File {
        attrs,
        size,
        digest,
        inline,
    })
}

/// A hard link's target: `/NAME[/NAME]...`, each a valid name, shorter than `TARGET_MAX`:
/// one spelling per path.
pub(crate) fn check_link_target(target: &[u8]) -> Result<(), Problem> {
    let bad = |reason: &str| Problem::BadField {
        field: "hard link target",
        reason: format!("\"{}\": {reason}", text::shown(target)),
    };
    if target.len() >= super::limits::TARGET_MAX {
        return Err(bad("not shorter than 4096 bytes"));
    }
    let Some(rest) = target.strip_prefix(b"/") else {
        return Err(bad("not an absolute path"));
    };
    for component in rest.split(|&b| b == b'/') {
        check_name(component).map_err(|_| bad("not / and names joined by single /"))?;
    }
    Ok(())
}

fn mode_mismatch(expected: &str) -> Problem {
    Problem::BadField {
        field: "mode",
        reason: format!("the entry's type says {expected}, its mode does not"),
    }
}
