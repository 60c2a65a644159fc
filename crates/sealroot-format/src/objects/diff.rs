//! Comparing two trees by their objects, skipping what they share.

use std::cmp::Ordering;

use sealroot_verity::AnyDigest;

use super::build::{child_path, AssembleError, Assembler, Budget, Fetch};
use super::dirtree::{EntryKind, TreeEntry};

/// How a path differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    /// Only in the second tree.
    Added,
    /// Only in the first tree.
    Removed,
    /// In both, with different content or attributes.
    Modified,
}

/// One difference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Change {
    /// The absolute path (raw bytes).
    pub path: Vec<u8>,
    /// How it differs.
    pub kind: ChangeKind,
}

/// The paths that differ between tree `a` and tree `b` (each given as its root dirtree and
/// dirmeta), in path order. A directory whose objects are the same in both is not read at
/// all; an added or removed directory is listed with everything in it. Every id must be of
/// the algorithm of `a`'s.
///
/// # Errors
/// [`AssembleError`] for an object that cannot be had, is corrupt or does not parse.
pub fn diff(
    a: (&AnyDigest, &AnyDigest),
    b: (&AnyDigest, &AnyDigest),
    fetch: &mut Fetch<'_>,
) -> Result<Vec<Change>, AssembleError> {
    let mut d = Differ {
        asm: Assembler::new(fetch, a.0.algorithm()),
        budget: Budget(0),
        out: Vec::new(),
        queue: vec![(Vec::new(), *a.0, *b.0, 0)],
    };
    if a.1 != b.1 {
        d.out.push(Change {
            path: b"/".to_vec(),
            kind: ChangeKind::Modified,
        });
    }
    while let Some((path, ta, tb, depth)) = d.queue.pop() {
        if ta == tb {
            continue;
        }
        d.budget.depth(depth, &path)?;
        let da = d.asm.dirtree(&ta, &path)?;
        let db = d.asm.dirtree(&tb, &path)?;
        d.budget.spend(da.entries.len() + db.entries.len(), &path)?;
        for pair in side_by_side(&da.entries, &db.entries) {
            match pair {
                (Some(ea), Some(eb)) => {
                    d.compare(&ea.kind, &eb.kind, child_path(&path, &ea.name), depth)?
                }
                (Some(e), None) => d.everything(
                    &e.kind,
                    child_path(&path, &e.name),
                    depth,
                    ChangeKind::Removed,
                )?,
                (None, Some(e)) => d.everything(
                    &e.kind,
                    child_path(&path, &e.name),
                    depth,
                    ChangeKind::Added,
                )?,
                (None, None) => {}
            }
        }
    }
    d.out.sort();
    Ok(d.out)
}

/// The entries of two directories side by side, in name order: `(Some, None)` for a name
/// only in the first, `(None, Some)` for one only in the second.
fn side_by_side<'e>(
    a: &'e [TreeEntry],
    b: &'e [TreeEntry],
) -> impl Iterator<Item = (Option<&'e TreeEntry>, Option<&'e TreeEntry>)> {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let (ea, eb) = (a.get(i), b.get(j));
        let order = match (ea, eb) {
            (None, None) => return None,
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
        };
        i += usize::from(order != Ordering::Greater);
        j += usize::from(order != Ordering::Less);
        Some(match order {
            Ordering::Less => (ea, None),
            Ordering::Greater => (None, eb),
            Ordering::Equal => (ea, eb),
        })
    })
}

/// A diff under way: the directories left to compare and the changes found.
struct Differ<'f, 'a> {
    asm: Assembler<'f, 'a>,
    budget: Budget,
    out: Vec<Change>,
    /// (path, dirtree in the first tree, in the second, depth) of the directories in both.
    queue: Vec<(Vec<u8>, AnyDigest, AnyDigest, usize)>,
}

impl Differ<'_, '_> {
    /// Compares entry `path` of both trees (`ka` in the first, `kb` in the second).
    fn compare(
        &mut self,
        ka: &EntryKind,
        kb: &EntryKind,
        path: Vec<u8>,
        depth: usize,
    ) -> Result<(), AssembleError> {
        match (ka, kb) {
            (EntryKind::Dir { tree: ta, meta: ma }, EntryKind::Dir { tree: tb, meta: mb }) => {
                if ma != mb {
                    self.out.push(Change {
                        path: path.clone(),
                        kind: ChangeKind::Modified,
                    });
                }
                self.queue.push((path, *ta, *tb, depth + 1));
            }
            (EntryKind::Dir { .. }, _) | (_, EntryKind::Dir { .. }) => {
                self.everything(ka, path.clone(), depth, ChangeKind::Removed)?;
                self.everything(kb, path, depth, ChangeKind::Added)?;
            }
            _ if ka != kb => self.out.push(Change {
                path,
                kind: ChangeKind::Modified,
            }),
            _ => {}
        }
        Ok(())
    }

    /// Lists `path` and, for a directory, everything below it, as `kind`.
    fn everything(
        &mut self,
        entry: &EntryKind,
        path: Vec<u8>,
        depth: usize,
        kind: ChangeKind,
    ) -> Result<(), AssembleError> {
        // Only a directory's dirtree is needed to go on, not the entry.
        let dir_of = |e: &EntryKind| match e {
            EntryKind::Dir { tree, .. } => Some(*tree),
            _ => None,
        };
        let mut stack = vec![(path, dir_of(entry), depth)];
        while let Some((path, dir, depth)) = stack.pop() {
            if let Some(tree) = dir {
                self.budget.depth(depth + 1, &path)?;
                let dt = self.asm.dirtree(&tree, &path)?;
                self.budget.spend(dt.entries.len(), &path)?;
                for e in &dt.entries {
                    stack.push((child_path(&path, &e.name), dir_of(&e.kind), depth + 1));
                }
            }
            self.out.push(Change { path, kind });
        }
        Ok(())
    }
}
