//! The tier's counters and recent errors, for statistics and the admin command's status.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::meta::now_ns;

/// Most recent errors kept for the status.
pub const RECENT_ERRORS: usize = 20;

/// Counters since start.
#[derive(Default)]
pub struct Counters {
    /// Files copied to the archive and recorded.
    pub migrated_files: AtomicU64,
    /// Their bytes.
    pub migrated_bytes: AtomicU64,
    /// Copies aborted because the file changed (a write, a truncation, a delete).
    pub copies_aborted: AtomicU64,
    /// Files whose local data was dropped.
    pub evicted_files: AtomicU64,
    /// Their bytes.
    pub evicted_bytes: AtomicU64,
    /// Files recalled (on demand and pre-read).
    pub recalled_files: AtomicU64,
    /// Their bytes.
    pub recalled_bytes: AtomicU64,
    /// Of the recalled files, those pre-read (nobody asked yet).
    pub pre_read_files: AtomicU64,
    /// Recalls that failed (the file is then damaged).
    pub recall_failures: AtomicU64,
    /// Times a drive moved to another volume to recall (a tape mount in a library).
    pub volume_switches: AtomicU64,
    /// Superseded copies deleted from volumes.
    pub copies_deleted: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterValues {
    /// Files copied to the archive and recorded.
    pub migrated_files: u64,
    /// Their bytes.
    pub migrated_bytes: u64,
    /// Copies aborted because the file changed.
    pub copies_aborted: u64,
    /// Files whose local data was dropped.
    pub evicted_files: u64,
    /// Their bytes.
    pub evicted_bytes: u64,
    /// Files recalled.
    pub recalled_files: u64,
    /// Their bytes.
    pub recalled_bytes: u64,
    /// Of the recalled files, those pre-read.
    pub pre_read_files: u64,
    /// Recalls that failed.
    pub recall_failures: u64,
    /// Times a drive moved to another volume to recall.
    pub volume_switches: u64,
    /// Superseded copies deleted from volumes.
    pub copies_deleted: u64,
}

impl Counters {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The values now.
    pub fn values(&self) -> CounterValues {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterValues {
            migrated_files: get(&self.migrated_files),
            migrated_bytes: get(&self.migrated_bytes),
            copies_aborted: get(&self.copies_aborted),
            evicted_files: get(&self.evicted_files),
            evicted_bytes: get(&self.evicted_bytes),
            recalled_files: get(&self.recalled_files),
            recalled_bytes: get(&self.recalled_bytes),
            pre_read_files: get(&self.pre_read_files),
            recall_failures: get(&self.recall_failures),
            volume_switches: get(&self.volume_switches),
            copies_deleted: get(&self.copies_deleted),
        }
    }
}

impl std::fmt::Display for CounterValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "migrated {} files ({} bytes, {} copies aborted), evicted {} files ({} bytes), \
             recalled {} files ({} bytes, {} pre-read, {} failed, {} volume switches), {} \
             superseded copies deleted",
            self.migrated_files,
            self.migrated_bytes,
            self.copies_aborted,
            self.evicted_files,
            self.evicted_bytes,
            self.recalled_files,
            self.recalled_bytes,
            self.pre_read_files,
            self.recall_failures,
            self.volume_switches,
            self.copies_deleted
        )
    }
}

/// The last [`RECENT_ERRORS`] errors, with when they happened (ns since the epoch).
#[derive(Default)]
pub struct RecentErrors {
    errors: Mutex<VecDeque<(i64, String)>>,
}

impl RecentErrors {
    /// Logs `message` as an error and keeps it.
    pub fn error(&self, message: String) {
        log::error!("{message}");
        self.keep(message);
    }

    /// Keeps `message` (logged by the caller).
    pub fn keep(&self, message: String) {
        let mut errors = self.errors.lock();
        if errors.len() == RECENT_ERRORS {
            errors.pop_front();
        }
        errors.push_back((now_ns(), message));
    }

    /// The errors kept, oldest first.
    pub fn list(&self) -> Vec<(i64, String)> {
        self.errors.lock().iter().cloned().collect()
    }
}
