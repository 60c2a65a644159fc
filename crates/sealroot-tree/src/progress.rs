//! Progress reports, for a user interface to draw from.

/// Receives progress reports from [`build_from_dir`](crate::build_from_dir).
///
/// Every method has an empty default, so an implementation overrides only what it draws.
/// Counts are increments since the previous call of the same method, except in
/// [`walk_done`](Progress::walk_done), which gives totals. The content methods are called from
/// several threads at once.
pub trait Progress: Sync {
    /// The metadata walk saw `n_entries` more names.
    fn entries_walked(&self, n_entries: u64) {
        let _ = n_entries;
    }

    /// The metadata walk is finished: the tree has `n_inodes` inodes, and `n_files` regular
    /// files holding `n_bytes` bytes are read (hashed or inlined) or found in the digest
    /// cache. Reading starts during the walk, so [`files_hashed`](Progress::files_hashed) and
    /// [`files_cached`](Progress::files_cached) may have been called already.
    fn walk_done(&self, n_inodes: u64, n_files: u64, n_bytes: u64) {
        let _ = (n_inodes, n_files, n_bytes);
    }

    /// `n_files` more files and `n_bytes` more bytes were read. A large file is reported in
    /// pieces: its bytes as they are read with `n_files == 0`, then the file itself.
    fn files_hashed(&self, n_files: u64, n_bytes: u64) {
        let _ = (n_files, n_bytes);
    }

    /// `n_files` more files holding `n_bytes` bytes were not read: their digests came from
    /// [`BuildOptions::cache`](crate::BuildOptions::cache) (and, with a digest store, their
    /// objects were there already). Together with [`files_hashed`](Progress::files_hashed)
    /// this adds up to what [`walk_done`](Progress::walk_done) announced.
    fn files_cached(&self, n_files: u64, n_bytes: u64) {
        let _ = (n_files, n_bytes);
    }

    /// `n_files` new objects holding `n_bytes` bytes were added to the digest store (objects
    /// already there are not counted).
    fn objects_stored(&self, n_files: u64, n_bytes: u64) {
        let _ = (n_files, n_bytes);
    }
}

/// A [`Progress`] that ignores every report.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
