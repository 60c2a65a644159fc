//! Deciding every path of the merged `/etc` before anything is written.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use sealroot_format::tree::{Content, FileType, InodeId};
use sealroot_verity::Params;

use super::compare::{display_path, push_name, At, Comparer, Delta};
use super::error::PlanError;
use super::input::{ImageEtc, LocalEtc};

/// What to do where the local `/etc` and the new default conflict (`--etc-conflict`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConflictPolicy {
    /// Leave the conflict unresolved: [`apply`](super::apply) refuses the plan (`fail`).
    #[default]
    Fail,
    /// Take the whole local version of the path (`keep-local`).
    KeepLocal,
    /// Take the whole new default at the path, dropping the local changes (`take-new`).
    TakeNew,
}

impl ConflictPolicy {
    /// The name on the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConflictPolicy::Fail => "fail",
            ConflictPolicy::KeepLocal => "keep-local",
            ConflictPolicy::TakeNew => "take-new",
        }
    }
}

impl fmt::Display for ConflictPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A conflict policy name that is none of `fail`, `keep-local`, `take-new`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown /etc conflict policy {0:?} (expected fail, keep-local or take-new)")]
pub struct ParsePolicyError(pub String);

impl FromStr for ConflictPolicy {
    type Err = ParsePolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            ConflictPolicy::Fail,
            ConflictPolicy::KeepLocal,
            ConflictPolicy::TakeNew,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| ParsePolicyError(s.to_owned()))
    }
}

/// How to merge.
#[derive(Clone, Debug, Default)]
pub struct MergeOptions {
    /// What to do with conflicts.
    pub policy: ConflictPolicy,
    /// Names of xattrs left out of every comparison (none by default). Passing
    /// `security.selinux` suits a system that labels files its images do not label: the
    /// labels it puts on the local files then do not make them local changes.
    pub ignored_xattrs: Vec<Vec<u8>>,
}

/// Which input a path of the result comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The local `/etc`.
    Local,
    /// The new default.
    New,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Local => "local",
            Side::New => "new",
        })
    }
}

/// What the merge does at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The local version is kept (for a directory: its own metadata; what it holds is
    /// decided name by name).
    Local,
    /// The new default is taken: its version, or its absence.
    New,
    /// The path stays deleted, as it was deleted locally.
    Deleted,
    /// A conflict (see [`MergePlan::conflicts`] for how it is resolved).
    Conflict,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Local => "keep local",
            Outcome::New => "take new",
            Outcome::Deleted => "stay deleted",
            Outcome::Conflict => "CONFLICT",
        })
    }
}

/// One path where the inputs differ, and what the merge does there. Where a whole subtree is
/// taken from one side, only its top is listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The path, relative to `/etc` (`.` for `/etc` itself).
    pub path: PathBuf,
    /// How the local `/etc` differs from the old default there.
    pub local: Delta,
    /// How the new default differs from the old default there.
    pub new: Delta,
    /// What the merge does.
    pub outcome: Outcome,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<12} {}  (local: {}; new: {})",
            self.outcome.to_string(),
            self.path.display(),
            self.local,
            self.new
        )
    }
}

/// The kind of a conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConflictKind {
    /// A file (or symlink, device, …) changed or added locally, where the new default has a
    /// directory it added or changed.
    LocalFileNewDirectory,
    /// A directory with local changes at or below it, where the new default has a file (or
    /// symlink, device, …) it added or changed.
    LocalDirectoryNewFile,
}

impl fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConflictKind::LocalFileNewDirectory => {
                "changed locally, and the new image makes it a directory"
            }
            ConflictKind::LocalDirectoryNewFile => {
                "a directory with local changes, and the new image makes it a non-directory"
            }
        })
    }
}

/// A path the merge cannot decide by its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The path, relative to `/etc`.
    pub path: PathBuf,
    /// What conflicts.
    pub kind: ConflictKind,
    /// The side the policy took, `None` under [`ConflictPolicy::Fail`].
    pub resolution: Option<Side>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.kind)?;
        match self.resolution {
            None => f.write_str(" (unresolved)"),
            Some(side) => write!(f, " (resolved: {side} version taken)"),
        }
    }
}

/// One path of the merged tree: the input and inode it is taken from (for a directory, its
/// own metadata), and, for a directory, its entries.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) side: Side,
    pub(crate) inode: InodeId,
    /// The entries, sorted by name (none for a non-directory).
    pub(crate) children: Vec<(Vec<u8>, Node)>,
}

/// The merge, decided: every path of the result, the changes and the conflicts. Printed
/// ([`Display`](fmt::Display)), it lists one change per line, then the conflicts.
pub struct MergePlan<'a> {
    pub(crate) local: &'a LocalEtc,
    pub(crate) new: ImageEtc<'a>,
    /// The merged `/etc`, `None` if nothing is left of it.
    pub(crate) root: Option<Node>,
    changes: Vec<Change>,
    conflicts: Vec<Conflict>,
}

impl MergePlan<'_> {
    /// Every path where the inputs differ, in path order.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Every conflict, in path order, resolved or not.
    pub fn conflicts(&self) -> &[Conflict] {
        &self.conflicts
    }

    /// The conflicts the policy left unresolved: while there are any, the plan cannot be
    /// applied.
    pub fn unresolved(&self) -> impl Iterator<Item = &Conflict> {
        self.conflicts.iter().filter(|c| c.resolution.is_none())
    }
}

impl fmt::Display for MergePlan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for change in &self.changes {
            writeln!(f, "{change}")?;
        }
        for conflict in &self.conflicts {
            writeln!(f, "conflict: {conflict}")?;
        }
        Ok(())
    }
}

/// Decides the merge of `local` with the defaults `old` (that `local` started from) and
/// `new`. Reads nothing but the objects of files whose contents are known in different ways
/// in the trees (rare: only where a digest is missing or of another algorithm).
pub fn plan<'a>(
    old: &ImageEtc<'_>,
    local: &'a LocalEtc,
    new: &ImageEtc<'a>,
    options: &MergeOptions,
) -> Result<MergePlan<'a>, PlanError> {
    let mut planner = Planner {
        cmp: Comparer {
            params: Params::composefs(local.algorithm),
            ignored_xattrs: &options.ignored_xattrs,
        },
        policy: options.policy,
        changes: Vec::new(),
        conflicts: Vec::new(),
        path: Vec::new(),
    };
    let image_root = |etc: &ImageEtc<'a>| {
        etc.root.map(|id| At {
            tree: etc.tree,
            id,
            objects: Some(etc.objects),
        })
    };
    let old_root = old.root.map(|id| At {
        tree: old.tree,
        id,
        objects: Some(old.objects),
    });
    let local_root = At {
        tree: &local.tree,
        id: InodeId::ROOT,
        objects: None,
    };
    let root = planner.merge(old_root, Some(local_root), image_root(new))?;
    Ok(MergePlan {
        local,
        new: *new,
        root,
        changes: planner.changes,
        conflicts: planner.conflicts,
    })
}

/// The state of one planning run.
struct Planner<'o> {
    cmp: Comparer<'o>,
    policy: ConflictPolicy,
    changes: Vec<Change>,
    conflicts: Vec<Conflict>,
    /// The current path, relative to `/etc`.
    path: Vec<u8>,
}

impl Planner<'_> {
    /// The merge of one path: old default `o`, local `l`, new default `n` (each `None` where
    /// absent).
    fn merge(
        &mut self,
        o: Option<At<'_>>,
        l: Option<At<'_>>,
        n: Option<At<'_>>,
    ) -> Result<Option<Node>, PlanError> {
        if let (Some(l), Some(n)) = (l, n) {
            if l.is_dir() && n.is_dir() {
                return self.merge_dirs(o, l, Some(n));
            }
        }
        let local = self.cmp.delta(o, l, &mut self.path)?;
        let new = self.cmp.delta(o, n, &mut self.path)?;
        if local == Delta::Unchanged {
            if new != Delta::Unchanged {
                self.change(local, new, Outcome::New);
            }
            return n.map(|n| self.take(Side::New, n)).transpose();
        }
        if new == Delta::Unchanged {
            let outcome = if l.is_some() {
                Outcome::Local
            } else {
                Outcome::Deleted
            };
            self.change(local, new, outcome);
            return l.map(|l| self.take(Side::Local, l)).transpose();
        }
        // Both changed something at or below this path.
        let Some(l) = l else {
            self.change(local, new, Outcome::Deleted);
            return Ok(None);
        };
        match n {
            None if l.is_dir() && o.is_some_and(|o| o.is_dir()) => self.merge_dirs(o, l, None),
            Some(n) if l.is_dir() != n.is_dir() => self.conflict(l, n, local, new),
            // The new default deleted it or changed it too: the local version wins.
            _ => {
                self.change(local, new, Outcome::Local);
                self.take(Side::Local, l).map(Some)
            }
        }
    }

    /// The merge of a local directory `l` with the new default's directory `n`, or with
    /// nothing where the new default deleted the directory `o`.
    fn merge_dirs(
        &mut self,
        o: Option<At<'_>>,
        l: At<'_>,
        n: Option<At<'_>>,
    ) -> Result<Option<Node>, PlanError> {
        self.check(l)?;
        if let Some(n) = n {
            self.check(n)?;
        }
        let local = self.cmp.node_delta(o, l, &self.path)?;
        let local_changed = local != Delta::Unchanged;
        let (side, meta, new) = match n {
            Some(n) if !local_changed => (Side::New, n, self.cmp.node_delta(o, n, &self.path)?),
            Some(n) => (Side::Local, l, self.cmp.node_delta(o, n, &self.path)?),
            None => (Side::Local, l, Delta::Deleted),
        };
        // Listed before what it holds; for a deleted directory, once it is known whether
        // anything in it is kept.
        let at = self.changes.len();
        if n.is_some() && (local_changed || new != Delta::Unchanged) {
            self.change(local, new, Outcome::from(side));
        }
        let o = o.filter(|o| o.is_dir());
        let names: BTreeSet<&[u8]> = [o, Some(l), n]
            .iter()
            .flatten()
            .flat_map(|d| d.entries().iter().map(|e| e.name.as_slice()))
            .collect();
        let mut children = Vec::new();
        for name in names {
            let len = self.enter(name)?;
            let child = self.merge(
                o.and_then(|o| o.child(name)),
                l.child(name),
                n.and_then(|n| n.child(name)),
            );
            self.path.truncate(len);
            if let Some(child) = child? {
                children.push((name.to_vec(), child));
            }
        }
        if n.is_none() {
            let local = self.cmp.delta(o, Some(l), &mut self.path)?;
            let kept = local_changed || !children.is_empty();
            let outcome = if kept { Outcome::Local } else { Outcome::New };
            let change = self.make_change(local, Delta::Deleted, outcome);
            self.changes.insert(at, change);
            if !kept {
                return Ok(None);
            }
        }
        Ok(Some(Node {
            side,
            inode: meta.id,
            children,
        }))
    }

    /// A conflict between local `l` and new `n`, one a directory and the other not.
    fn conflict(
        &mut self,
        l: At<'_>,
        n: At<'_>,
        local: Delta,
        new: Delta,
    ) -> Result<Option<Node>, PlanError> {
        let kind = if l.is_dir() {
            ConflictKind::LocalDirectoryNewFile
        } else {
            ConflictKind::LocalFileNewDirectory
        };
        let resolution = match self.policy {
            ConflictPolicy::Fail => None,
            ConflictPolicy::KeepLocal => Some(Side::Local),
            ConflictPolicy::TakeNew => Some(Side::New),
        };
        self.change(local, new, Outcome::Conflict);
        self.conflicts.push(Conflict {
            path: display_path(&self.path),
            kind,
            resolution,
        });
        match resolution {
            None => Ok(None),
            Some(Side::Local) => self.take(Side::Local, l).map(Some),
            Some(Side::New) => self.take(Side::New, n).map(Some),
        }
    }

    /// `at` and everything below it, taken whole from `side`.
    fn take(&mut self, side: Side, at: At<'_>) -> Result<Node, PlanError> {
        self.check(at)?;
        let mut children = Vec::new();
        for entry in at.entries() {
            let len = self.enter(&entry.name)?;
            let child = self.take(
                side,
                At {
                    id: entry.inode,
                    ..at
                },
            );
            self.path.truncate(len);
            children.push((entry.name.clone(), child?));
        }
        Ok(Node {
            side,
            inode: at.id,
            children,
        })
    }

    /// Checks that `at`, to be written, has a known file type and the content of that type.
    fn check(&self, at: At<'_>) -> Result<(), PlanError> {
        let inode = at.inode();
        let consistent = match (at.file_type(), &inode.content) {
            (None, _) => false,
            (Some(FileType::Directory), Content::Directory(_))
            | (Some(FileType::Regular), Content::Regular(_))
            | (Some(FileType::Symlink), Content::Symlink(_)) => true,
            (Some(FileType::Directory | FileType::Regular | FileType::Symlink), _) => false,
            (Some(_), content) => *content == Content::Special,
        };
        if consistent {
            Ok(())
        } else {
            Err(PlanError::BadInode {
                path: display_path(&self.path),
                mode: inode.stat.mode,
            })
        }
    }

    /// Appends `name` to the current path, checking it is a name a directory can hold;
    /// returns the length to truncate back to.
    fn enter(&mut self, name: &[u8]) -> Result<usize, PlanError> {
        let len = push_name(&mut self.path, name);
        if name.is_empty()
            || name == b"."
            || name == b".."
            || name.contains(&b'/')
            || name.contains(&0)
        {
            return Err(PlanError::BadName {
                path: display_path(&self.path),
            });
        }
        Ok(len)
    }

    fn make_change(&self, local: Delta, new: Delta, outcome: Outcome) -> Change {
        Change {
            path: display_path(&self.path),
            local,
            new,
            outcome,
        }
    }

    fn change(&mut self, local: Delta, new: Delta, outcome: Outcome) {
        let change = self.make_change(local, new, outcome);
        self.changes.push(change);
    }
}

impl From<Side> for Outcome {
    fn from(side: Side) -> Self {
        match side {
            Side::Local => Outcome::Local,
            Side::New => Outcome::New,
        }
    }
}
