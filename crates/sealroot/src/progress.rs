//! Progress bars on a terminal, nothing otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Draws "hashed N files, M MiB" on stderr while a tree is built, at most ten times a second,
/// and only when stderr is a terminal.
pub struct BuildBar {
    enabled: bool,
    files: AtomicU64,
    bytes: AtomicU64,
    last: Mutex<Instant>,
}

impl BuildBar {
    pub fn new() -> Self {
        BuildBar {
            enabled: std::io::stderr().is_terminal(),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            last: Mutex::new(Instant::now()),
        }
    }

    fn draw(&self, force: bool) {
        if !self.enabled {
            return;
        }
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if !force && last.elapsed() < Duration::from_millis(100) {
            return;
        }
        *last = Instant::now();
        eprint!(
            "\r\x1b[Khashed {} files, {} MiB",
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed) >> 20
        );
    }

    pub fn finish(&self) {
        if self.enabled {
            self.draw(true);
            eprintln!();
        }
    }
}

impl sealroot_tree::Progress for BuildBar {
    fn files_hashed(&self, n_files: u64, n_bytes: u64) {
        self.files.fetch_add(n_files, Ordering::Relaxed);
        self.bytes.fetch_add(n_bytes, Ordering::Relaxed);
        self.draw(false);
    }
}
