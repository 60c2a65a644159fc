//! [`Untouched`]: a directory outside a repository that a test proves nobody read, wrote or
//! removed anything in, for the tests that plant symlinks from a repository to it
//! ([`swap_for_symlink`]).

use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use rustix::io::Errno;

use crate::{Fields, Snapshot};

/// A directory watched for any access: what it holds is recorded (names, types, modes,
/// sizes, mtimes, link targets, contents), and inotify watches it and every directory in
/// it for opens, reads, writes, attribute changes, creations, removals and renames.
/// [`assert_untouched`](Untouched::assert_untouched) fails on any event since the last
/// check and on any change of what it holds.
pub struct Untouched {
    root: PathBuf,
    before: Snapshot,
    inotify: OwnedFd,
}

/// What is compared: everything but directory link counts.
const FIELDS: Fields = Fields {
    content: true,
    nlink: true,
    dir_nlink: false,
};

impl Untouched {
    /// Starts watching `root` (which must exist, with what the test puts there already in it).
    pub fn watch(root: &Path) -> Untouched {
        let before = Snapshot::of_dir(root, FIELDS);
        let inotify =
            inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).expect("inotify_init1");
        for (rel, entry) in &before.0 {
            if entry.mode & 0o170000 != 0o040000 {
                continue;
            }
            let dir = if rel.is_empty() {
                root.to_owned()
            } else {
                root.join(OsStr::from_bytes(rel))
            };
            inotify::add_watch(
                &inotify,
                &dir,
                WatchFlags::ALL_EVENTS | WatchFlags::DONT_FOLLOW,
            )
            .unwrap_or_else(|e| panic!("watching {}: {e}", dir.display()));
        }
        let untouched = Untouched {
            root: root.to_owned(),
            before,
            inotify,
        };
        // Taking the snapshot opened and read everything: those events are not the test's.
        untouched.events();
        untouched
    }

    /// The events since the last call, described.
    fn events(&self) -> Vec<String> {
        let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
        let mut reader = inotify::Reader::new(&self.inotify, &mut buf);
        let mut out = Vec::new();
        loop {
            match reader.next() {
                Ok(event) => out.push(format!(
                    "{:?} on {}",
                    event.events(),
                    event
                        .file_name()
                        .map_or_else(|| "a watched directory".into(), |n| n.to_string_lossy())
                )),
                Err(Errno::AGAIN) => return out,
                Err(Errno::INTR) => {}
                Err(e) => panic!("reading inotify events: {e}"),
            }
        }
    }

    /// Asserts nothing in the directory was opened, read, written, changed, created, removed
    /// or renamed since [`watch`](Untouched::watch) (or the last check), and that it holds
    /// what it held. `when` says what was just done, for the message.
    pub fn assert_untouched(&self, when: &str) {
        let events = self.events();
        assert!(
            events.is_empty(),
            "{when}: {} was touched: {events:?}",
            self.root.display()
        );
        let now = Snapshot::of_dir(&self.root, FIELDS);
        // The check itself read everything: drop those events.
        self.events();
        if let Some((path, entry)) = self.before.0.iter().find(|(p, e)| now.0.get(*p) != Some(e)) {
            panic!(
                "{when}: {}/{} changed: was {entry:?}, now {:?}",
                self.root.display(),
                String::from_utf8_lossy(path),
                now.0.get(path)
            );
        }
        if let Some(path) = now.0.keys().find(|p| !self.before.0.contains_key(*p)) {
            panic!(
                "{when}: {}/{} appeared",
                self.root.display(),
                String::from_utf8_lossy(path)
            );
        }
    }
}

/// Replaces directory `rel` of the repository at `repo` with a symlink to a copy of it in
/// `outside` (what an attacker would plant: the same content, elsewhere); the original is
/// kept as `rel.real`. Returns the copy.
pub fn swap_for_symlink(repo: &Path, rel: &str, outside: &Path) -> PathBuf {
    let inside = repo.join(rel);
    let copy = outside.join(rel.replace('/', "-"));
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&inside)
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success(), "cp -a {}", inside.display());
    std::fs::rename(&inside, repo.join(format!("{rel}.real"))).unwrap();
    std::os::unix::fs::symlink(&copy, &inside).unwrap();
    copy
}
