//! Progress on a terminal, nothing otherwise: an `indicatif` bar on stderr with bytes, rate
//! and ETA (items where a phase has no byte count), fed by the libraries' progress traits.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the bar is redrawn at most.
const REFRESH_HZ: u8 = 10;

/// One bar for the current phase of a long operation.
pub struct Bar {
    bar: ProgressBar,
    label: Mutex<&'static str>,
    /// The current phase counts bytes (else items).
    by_bytes: AtomicBool,
    items: AtomicU64,
    total_items: AtomicU64,
    /// Files a directory commit took from the digest cache instead of reading them.
    cached: AtomicU64,
}

impl Bar {
    /// A bar that draws only when `wanted` and stderr is a terminal.
    pub fn new(wanted: bool) -> Self {
        let target = if wanted && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(REFRESH_HZ)
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.enable_steady_tick(Duration::from_millis(250));
        Bar {
            bar,
            label: Mutex::new("working"),
            by_bytes: AtomicBool::new(false),
            items: AtomicU64::new(0),
            total_items: AtomicU64::new(0),
            cached: AtomicU64::new(0),
        }
    }

    fn style(by_bytes: bool, known: bool) -> ProgressStyle {
        let template = match (by_bytes, known) {
            (true, true) => "{msg} [{bar:25}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            (true, false) => "{spinner} {msg} {bytes} {bytes_per_sec}",
            (false, true) => "{msg} [{bar:25}] {pos}/{len} ETA {eta}",
            (false, false) => "{spinner} {msg} {pos}",
        };
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
    }

    fn start(&self, label: &'static str, items: Option<u64>, bytes: Option<u64>) {
        if let Ok(mut l) = self.label.lock() {
            *l = label;
        }
        let by_bytes = bytes.is_some_and(|b| b > 0);
        self.by_bytes.store(by_bytes, Ordering::Relaxed);
        self.items.store(0, Ordering::Relaxed);
        self.total_items
            .store(items.unwrap_or(0), Ordering::Relaxed);
        let total = if by_bytes { bytes } else { items };
        self.bar.set_style(Self::style(by_bytes, total.is_some()));
        self.bar.set_length(total.unwrap_or(0));
        self.bar.set_position(0);
        self.bar.reset_eta();
        self.message();
    }

    fn add(&self, items: u64, bytes: u64) {
        let done = self.items.fetch_add(items, Ordering::Relaxed) + items;
        if self.by_bytes.load(Ordering::Relaxed) {
            self.bar.inc(bytes);
            // The file count rides in the message, refreshed now and then.
            if done % 256 < items {
                self.message();
            }
        } else {
            self.bar.inc(items);
        }
    }

    fn message(&self) {
        let label = self.label.lock().map(|l| *l).unwrap_or("working");
        if self.by_bytes.load(Ordering::Relaxed) {
            let (i, ti) = (
                self.items.load(Ordering::Relaxed),
                self.total_items.load(Ordering::Relaxed),
            );
            self.bar.set_message(format!("{label}: {i}/{ti} files"));
        } else {
            self.bar.set_message(label);
        }
    }

    /// Files taken from the digest cache instead of read.
    pub fn cached(&self) -> u64 {
        self.cached.load(Ordering::Relaxed)
    }

    /// Ends the bar (and clears it).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl sealroot_tree::Progress for Bar {
    fn walk_done(&self, n_inodes: u64, n_files: u64, n_bytes: u64) {
        let _ = n_inodes;
        self.start("reading files", Some(n_files), Some(n_bytes));
    }
    fn files_hashed(&self, n_files: u64, n_bytes: u64) {
        self.add(n_files, n_bytes);
    }
    fn files_cached(&self, n_files: u64, n_bytes: u64) {
        self.cached.fetch_add(n_files, Ordering::Relaxed);
        self.add(n_files, n_bytes);
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
