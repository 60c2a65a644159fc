//! Progress on a terminal, nothing otherwise: one status line on stderr, redrawn at most ten
//! times a second, fed by the libraries' progress traits.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the status line says, and the counters behind it.
pub struct Bar {
    enabled: bool,
    label: Mutex<&'static str>,
    total_items: AtomicU64,
    total_bytes: AtomicU64,
    items: AtomicU64,
    bytes: AtomicU64,
    /// Files a directory commit stored as new objects, and their bytes.
    pub stored: (AtomicU64, AtomicU64),
    /// Files a directory commit took from the digest cache instead of reading them.
    pub cached: AtomicU64,
    last: Mutex<Instant>,
}

impl Bar {
    /// A bar that draws only when `wanted` and stderr is a terminal.
    pub fn new(wanted: bool) -> Self {
        Bar {
            enabled: wanted && std::io::stderr().is_terminal(),
            label: Mutex::new("working"),
            total_items: AtomicU64::new(0),
            total_bytes: AtomicU64::new(0),
            items: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            stored: (AtomicU64::new(0), AtomicU64::new(0)),
            cached: AtomicU64::new(0),
            last: Mutex::new(Instant::now()),
        }
    }

    fn start(&self, label: &'static str, items: Option<u64>, bytes: Option<u64>) {
        if let Ok(mut l) = self.label.lock() {
            *l = label;
        }
        self.items.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        self.total_items
            .store(items.unwrap_or(0), Ordering::Relaxed);
        self.total_bytes
            .store(bytes.unwrap_or(0), Ordering::Relaxed);
        self.draw(true);
    }

    fn add(&self, items: u64, bytes: u64) {
        self.items.fetch_add(items, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.draw(false);
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
        let label = self.label.lock().map(|l| *l).unwrap_or("working");
        let (i, ti) = (
            self.items.load(Ordering::Relaxed),
            self.total_items.load(Ordering::Relaxed),
        );
        let (b, tb) = (
            self.bytes.load(Ordering::Relaxed),
            self.total_bytes.load(Ordering::Relaxed),
        );
        let items = if ti > 0 {
            format!("{i}/{ti}")
        } else {
            format!("{i}")
        };
        let bytes = if tb > 0 {
            format!("{}/{} MiB", b >> 20, tb >> 20)
        } else {
            format!("{} MiB", b >> 20)
        };
        eprint!("\r\x1b[K{label}: {items} files, {bytes}");
    }

    /// Files hashed (or items done) in the current phase.
    pub fn hashed(&self) -> u64 {
        self.items.load(Ordering::Relaxed)
    }

    /// Ends the status line.
    pub fn finish(&self) {
        if self.enabled {
            self.draw(true);
            eprintln!();
        }
    }
}

impl sealroot_tree::Progress for Bar {
    fn entries_walked(&self, n_entries: u64) {
        let _ = n_entries;
    }
    fn walk_done(&self, n_inodes: u64, n_files: u64, n_bytes: u64) {
        let _ = n_inodes;
        self.total_items.store(n_files, Ordering::Relaxed);
        self.total_bytes.store(n_bytes, Ordering::Relaxed);
    }
    fn files_hashed(&self, n_files: u64, n_bytes: u64) {
        self.add(n_files, n_bytes);
    }
    fn files_cached(&self, n_files: u64, n_bytes: u64) {
        self.cached.fetch_add(n_files, Ordering::Relaxed);
        self.add(n_files, n_bytes);
    }
    fn objects_stored(&self, n_files: u64, n_bytes: u64) {
        self.stored.0.fetch_add(n_files, Ordering::Relaxed);
        self.stored.1.fetch_add(n_bytes, Ordering::Relaxed);
    }
}

impl sealroot_repo::Progress for Bar {
    fn phase(&self, phase: sealroot_repo::Phase, items: Option<u64>, bytes: Option<u64>) {
        use sealroot_repo::Phase;
        let label = match phase {
            Phase::WaitingForLock => "waiting for the repository lock",
            Phase::Recovering => "checking an interrupted transaction",
            Phase::ListingObjects => "listing objects",
            Phase::CheckingObjects => "checking objects",
            Phase::CheckingImages => "checking images",
            Phase::CheckingRefs => "checking refs",
            Phase::Marking => "marking",
            Phase::Sweeping => "sweeping",
            Phase::Syncing => "syncing",
            _ => "working",
        };
        self.start(label, items, bytes);
    }
    fn advance(&self, items: u64, bytes: u64) {
        self.add(items, bytes);
    }
}
