//! Progress reports of long repository operations, for a user interface to draw from.

/// A stage of a long operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Waiting for another process's lock on the repository.
    WaitingForLock,
    /// Checking the objects of a transaction that was cut off by a system crash.
    Recovering,
    /// Listing `objects/`.
    ListingObjects,
    /// Checking every object's digest (fsck).
    CheckingObjects,
    /// Reading every image and the objects it needs (fsck).
    CheckingImages,
    /// Checking every ref (fsck).
    CheckingRefs,
    /// Reading the images the refs reach, to learn what is live (gc).
    Marking,
    /// Removing what nothing reaches (gc).
    Sweeping,
    /// Flushing the repository's filesystem.
    Syncing,
}

/// Receives progress reports. Every method has an empty default, so an implementation
/// overrides only what it draws; methods may be called from several threads at once.
pub trait Progress: Sync {
    /// A phase begins; `items` and `bytes` are its totals where known in advance.
    fn phase(&self, phase: Phase, items: Option<u64>, bytes: Option<u64>) {
        let _ = (phase, items, bytes);
    }

    /// `items` more items and `bytes` more bytes of the current phase are done.
    fn advance(&self, items: u64, bytes: u64) {
        let _ = (items, bytes);
    }
}

/// A [`Progress`] that ignores every report.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
