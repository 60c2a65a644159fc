//! Comparing two trees by their objects, skipping what they share.

use std::collections::HashMap;

use sealroot_verity::Sha256Digest;

use super::build::{AssembleError, Assembler, Fetch};
use super::dirtree::EntryKind;

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
/// all; an added or removed directory is listed with everything in it.
///
/// # Errors
/// [`AssembleError`] for an object that cannot be had, is corrupt or does not parse.
pub fn diff(
    a: (&Sha256Digest, &Sha256Digest),
    b: (&Sha256Digest, &Sha256Digest),
    fetch: &mut Fetch<'_>,
) -> Result<Vec<Change>, AssembleError> {
    let mut asm = Assembler {
        fetch,
        trees: HashMap::new(),
        metas: HashMap::new(),
    };
    let mut out = Vec::new();
    if a.1 != b.1 {
        out.push(Change {
            path: b"/".to_vec(),
            kind: ChangeKind::Modified,
        });
    }
    let mut queue = vec![(Vec::new(), *a.0, *b.0)];
    while let Some((path, ta, tb)) = queue.pop() {
        if ta == tb {
            continue;
        }
        let da = asm.dirtree(&ta, &path)?;
        let db = asm.dirtree(&tb, &path)?;
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
                        &da.entries[i].kind,
                        p,
                        ChangeKind::Removed,
                        &mut out,
                    )?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    everything(
                        &mut asm,
                        &db.entries[j].kind,
                        p,
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
                            queue.push((p, *ta, *tb));
                        }
                        (EntryKind::Dir { .. }, _) | (_, EntryKind::Dir { .. }) => {
                            everything(&mut asm, ka, p.clone(), ChangeKind::Removed, &mut out)?;
                            everything(&mut asm, kb, p, ChangeKind::Added, &mut out)?;
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

/// Lists `path` and, for a directory, everything below it, as `kind`.
fn everything(
    asm: &mut Assembler<'_, '_>,
    entry: &EntryKind,
    path: Vec<u8>,
    kind: ChangeKind,
    out: &mut Vec<Change>,
) -> Result<(), AssembleError> {
    let mut stack = vec![(path, entry.clone())];
    while let Some((path, entry)) = stack.pop() {
        if let EntryKind::Dir { tree, .. } = &entry {
            let dt = asm.dirtree(tree, &path)?;
            for e in &dt.entries {
                let mut p = path.clone();
                p.push(b'/');
                p.extend_from_slice(&e.name);
                stack.push((p, e.kind.clone()));
            }
        }
        out.push(Change { path, kind });
    }
    Ok(())
}
