//! Comparing two trees by their objects, skipping what they share.

use sealroot_verity::AnyDigest;

use super::build::{shown_path, AssembleError, Assembler, Fetch};
use super::dirtree::EntryKind;
use super::limits;

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
    let mut asm = Assembler::new(fetch, a.0.algorithm());
    let mut budget = Budget(0);
    let mut out = Vec::new();
    if a.1 != b.1 {
        out.push(Change {
            path: b"/".to_vec(),
            kind: ChangeKind::Modified,
        });
    }
    let mut queue = vec![(Vec::new(), *a.0, *b.0, 0usize)];
    while let Some((path, ta, tb, depth)) = queue.pop() {
        if ta == tb {
            continue;
        }
        budget.depth(depth, &path)?;
        let da = asm.dirtree(&ta, &path)?;
        let db = asm.dirtree(&tb, &path)?;
        budget.spend(da.entries.len() + db.entries.len(), &path)?;
        let (mut i, mut j) = (0, 0);
        while i < da.entries.len() || j < db.entries.len() {
            let ea = da.entries.get(i);
            let eb = db.entries.get(j);
            let order = match (ea, eb) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let name = match order {
                std::cmp::Ordering::Greater => &db.entries[j].name,
                _ => &da.entries[i].name,
            };
            let mut p = path.clone();
            p.push(b'/');
            p.extend_from_slice(name);
            match order {
                std::cmp::Ordering::Less => {
                    everything(
                        &mut asm,
                        &mut budget,
                        &da.entries[i].kind,
                        p,
                        depth,
                        ChangeKind::Removed,
                        &mut out,
                    )?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    everything(
                        &mut asm,
                        &mut budget,
                        &db.entries[j].kind,
                        p,
                        depth,
                        ChangeKind::Added,
                        &mut out,
                    )?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (ka, kb) = (&da.entries[i].kind, &db.entries[j].kind);
                    match (ka, kb) {
                        (
                            EntryKind::Dir { tree: ta, meta: ma },
                            EntryKind::Dir { tree: tb, meta: mb },
                        ) => {
                            if ma != mb {
                                out.push(Change {
                                    path: p.clone(),
                                    kind: ChangeKind::Modified,
                                });
                            }
                            queue.push((p, *ta, *tb, depth + 1));
                        }
                        (EntryKind::Dir { .. }, _) | (_, EntryKind::Dir { .. }) => {
                            everything(
                                &mut asm,
                                &mut budget,
                                ka,
                                p.clone(),
                                depth,
                                ChangeKind::Removed,
                                &mut out,
                            )?;
                            everything(
                                &mut asm,
                                &mut budget,
                                kb,
                                p,
                                depth,
                                ChangeKind::Added,
                                &mut out,
                            )?;
                        }
                        _ if ka != kb => out.push(Change {
                            path: p,
                            kind: ChangeKind::Modified,
                        }),
                        _ => {}
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// How much a diff may read: as much as an assembled tree may hold.
struct Budget(usize);

impl Budget {
    fn spend(&mut self, entries: usize, path: &[u8]) -> Result<(), AssembleError> {
        self.0 = self.0.saturating_add(entries);
        if self.0 > limits::TREE_ENTRIES_MAX {
            return Err(AssembleError::TooLarge {
                path: shown_path(path),
                reason: format!("more than {} entries", limits::TREE_ENTRIES_MAX),
            });
        }
        Ok(())
    }

    fn depth(&self, depth: usize, path: &[u8]) -> Result<(), AssembleError> {
        if depth > limits::DEPTH_MAX {
            return Err(AssembleError::TooLarge {
                path: shown_path(path),
                reason: format!("nested deeper than {}", limits::DEPTH_MAX),
            });
        }
        Ok(())
    }
}

/// Lists `path` and, for a directory, everything below it, as `kind`.
#[allow(clippy::too_many_arguments)]
fn everything(
    asm: &mut Assembler<'_, '_>,
    budget: &mut Budget,
    entry: &EntryKind,
    path: Vec<u8>,
    depth: usize,
    kind: ChangeKind,
    out: &mut Vec<Change>,
) -> Result<(), AssembleError> {
    // Only a directory's dirtree is needed to go on, not the entry.
    let dir_of = |e: &EntryKind| match e {
        EntryKind::Dir { tree, .. } => Some(*tree),
        _ => None,
    };
    let mut stack = vec![(path, dir_of(entry), depth)];
    while let Some((path, dir, depth)) = stack.pop() {
        if let Some(tree) = dir {
            budget.depth(depth + 1, &path)?;
            let dt = asm.dirtree(&tree, &path)?;
            budget.spend(dt.entries.len(), &path)?;
            for e in &dt.entries {
                let mut p = path.clone();
                p.push(b'/');
                p.extend_from_slice(&e.name);
                stack.push((p, dir_of(&e.kind), depth + 1));
            }
        }
        out.push(Change { path, kind });
    }
    Ok(())
}
