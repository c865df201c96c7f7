//! The archive tier: files migrate from the cache to archive volumes, the cache keeps its
//! watermarks by dropping the local data of archived files, and reads recall released files.
//!
//! - [`options`]: the keys that drive it.
//! - [`migrate`]: copies resident files to volumes and records them; cleans up superseded
//!   copies.
//! - [`evict`]: drops local data of archived, closed files, least recently used first.
//! - [`queue`]: the recalls waiting per volume, and the one [`Recall`] per inode readers share.
//! - [`recall`]: brings released files back, block by block, checked before readers see it.
//! - [`drives`]: at most `ArchiveDrives` volumes in use at once; recalls first.
//! - [`stats`]: counters and recent errors.
//!
//! The tier works beside the file system core (`crate::vfs`), which it asks through
//! [`Host`] whether a file is open or has unsaved changes, and tells when a file's data
//! state changed. Its own threads do all its work: none of it runs on FUSE or catalog
//! threads, and a stuck volume stalls only recalls, never requests for resident files.

pub mod admin;
pub mod drives;
pub mod evict;
pub mod migrate;
pub mod options;
pub mod queue;
pub mod rebuild;
pub mod recall;
pub mod stats;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::archive::{ArchiveFolder, VolumeInfo};
use crate::cache::Cache;
use crate::meta::{ArchiveCopy, DataState, MetaEngine, MetaError, StateTotal};
use crate::vfs::handles::OpenFiles;
pub use options::TierOptions;
pub use queue::Recall;
pub use stats::CounterValues;

/// What the tier needs from the file system core.
pub trait Host: Send + Sync {
    /// The registry of open files (claims for copies and evictions).
    fn files(&self) -> &OpenFiles;
    /// Whether `ino` has changes the catalog has not recorded yet.
    fn needs_save(&self, ino: u64) -> bool;
    /// The catalog changed the data state of `ino` to `state` (tracked attributes follow,
    /// unless a write made the file dirty meanwhile).
    fn data_state_changed(&self, ino: u64, state: DataState);
    /// The data state of `ino` as the file system has it in memory (an open file being
    /// written is dirty before the catalog hears of it); `None` when it is not tracked.
    fn current_state(&self, ino: u64) -> Option<DataState>;
}

/// Why the tier refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TierError {
    /// The file is not in a state the request applies to.
    #[error("inode {ino} is {state}: {why}")]
    WrongState {
        /// The inode.
        ino: u64,
        /// Its state name.
        state: &'static str,
        /// What the request needs.
        why: &'static str,
    },
    /// The catalog has no live copy of a released file.
    #[error("inode {0} is released but the catalog has no live copy of it")]
    NoCopy(u64),
    /// The file is open or busy.
    #[error("inode {0} is open or busy; try again")]
    Busy(u64),
    /// The catalog did not answer.
    #[error("catalog: {0}")]
    Catalog(#[from] MetaError),
}

/// Longest an operator's release waits for the tier's own claim on a file (a migration
/// recording its copy) to end.
const CLAIM_WAIT: Duration = Duration::from_secs(1);

/// State shared by the tier's threads.
pub struct Shared {
    options: TierOptions,
    folder: ArchiveFolder,
    catalog: Arc<dyn MetaEngine>,
    cache: Cache,
    host: OnceLock<Weak<dyn Host>>,
    drives: drives::Drives,
    recalls: queue::RecallQueue,
    counters: stats::Counters,
    errors: stats::RecentErrors,
    /// Files an operator asked to archive now.
    archive_asked: Mutex<Vec<u64>>,
    /// Bytes ready to migrate at the last scan.
    waiting: AtomicU64,
    /// A batch of copies is running.
    copying: AtomicBool,
    /// No volume took copies at the last try.
    archive_full: AtomicBool,
    /// Volumes found full while choosing one.
    full_marks: Mutex<HashSet<String>>,
    /// Eviction passes finished (for writers waiting for room).
    passes: Mutex<u64>,
    pass_done: Condvar,
    stop: Mutex<Stop>,
    wake: Condvar,
    /// Called with each inode whose local data was dropped (the kernel's cached pages of it
    /// go too, so reads come to the file system and recall).
    released: OnceLock<Box<dyn Fn(u64) + Send + Sync>>,
}

#[derive(Default)]
struct Stop {
    stopped: bool,
    migrate: bool,
    evict: bool,
}

impl Shared {
    fn host(&self) -> Option<Arc<dyn Host>> {
        self.host.get()?.upgrade()
    }

    fn host_state(&self, ino: u64, state: DataState) {
        if let Some(host) = self.host() {
            host.data_state_changed(ino, state);
        }
    }

    fn stopping(&self) -> bool {
        self.stop.lock().stopped
    }

    fn mark_full(&self, label: Option<String>) {
        if let Some(label) = label {
            self.full_marks.lock().insert(label);
        }
    }

    fn is_marked_full(&self, label: &str) -> bool {
        self.full_marks.lock().contains(label)
    }

    /// Forgets the volumes found full (a new migration round looks at all again).
    fn clear_full_marks(&self) {
        self.full_marks.lock().clear();
    }

    /// Asks for room on the cache file system (a write found it short): runs eviction
    /// passes, and while none frees anything but files wait to be migrated (they become
    /// evictable once archived), waits for those, at most `wait` in all. Returns whether
    /// space was freed; `false` at once when nothing is evictable or becoming so.
    fn make_room(&self, wait: Duration) -> bool {
        let shared = self;
        let deadline = std::time::Instant::now() + wait;
        let freed_before = shared.counters.values().evicted_files;
        loop {
            let before = *shared.passes.lock();
            shared.kick(|s| &mut s.evict);
            let mut passes = shared.passes.lock();
            // Two passes: the one running may have started before the space ran short.
            while *passes < before + 2 && !shared.stopping() {
                if shared
                    .pass_done
                    .wait_until(&mut passes, deadline)
                    .timed_out()
                {
                    return false;
                }
            }
            drop(passes);
            if shared.counters.values().evicted_files > freed_before {
                return true;
            }
            let migrating = shared.waiting.load(Ordering::Relaxed) > 0
                || shared.copying.load(Ordering::Relaxed);
            if !migrating || shared.stopping() || std::time::Instant::now() >= deadline {
                return false;
            }
            shared.kick(|s| &mut s.migrate);
        }
    }

    /// Whether the cache is above its upper watermark (room for pre-reads).
    fn cache_has_room(&self) -> bool {
        evict::cache_space(self)
            .is_some_and(|(free, total)| free > self.options.watermarks(total).1)
    }

    /// Sleeps `pause` or until woken for `which`; `false` once stopped.
    fn sleep(&self, pause: Duration, which: fn(&mut Stop) -> &mut bool) -> bool {
        let mut stop = self.stop.lock();
        if !*which(&mut stop) && !stop.stopped {
            self.wake.wait_for(&mut stop, pause);
        }
        *which(&mut stop) = false;
        !stop.stopped
    }

    fn kick(&self, which: fn(&mut Stop) -> &mut bool) {
        *which(&mut self.stop.lock()) = true;
        self.wake.notify_all();
    }
}

/// The running tier: its threads (migration, eviction, one per drive for recalls).
pub struct Tier {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// What the tier knows of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    /// The inode.
    pub ino: u64,
    /// Its data state in the catalog.
    pub state: DataState,
    /// Size in bytes.
    pub size: u64,
    /// A recall of it is queued or running: bytes local so far.
    pub recalling: Option<u64>,
    /// Its live copy.
    pub copy: Option<ArchiveCopy>,
}

/// The tier's status.
#[derive(Debug, Clone)]
pub struct TierStatus {
    /// Files and bytes per data state.
    pub states: Vec<StateTotal>,
    /// Bytes ready to migrate at the last scan.
    pub waiting_bytes: u64,
    /// Recalls waiting and running.
    pub recalls: (usize, usize),
    /// Waiting recalls per volume.
    pub recall_queues: Vec<(String, usize)>,
    /// Cache file system: free and total bytes, and the watermarks.
    pub cache: Option<(u64, u64, u64, u64)>,
    /// The volumes.
    pub volumes: Vec<VolumeInfo>,
    /// No volume took copies at the last try.
    pub archive_full: bool,
    /// Counters since start.
    pub counters: CounterValues,
    /// Recent errors (ns since the epoch, message), oldest first.
    pub errors: Vec<(i64, String)>,
}

impl Tier {
    /// The tier over `catalog` and `cache`; its threads start with [`Tier::start`].
    pub fn new(options: TierOptions, catalog: Arc<dyn MetaEngine>, cache: Cache) -> Tier {
        let folder = ArchiveFolder::new(options.archive_folder.clone(), options.volume_reserve);
        let drives = drives::Drives::new(options.drives);
        Tier {
            shared: Arc::new(Shared {
                options,
                folder,
                catalog,
                cache,
                host: OnceLock::new(),
                drives,
                recalls: queue::RecallQueue::default(),
                counters: stats::Counters::default(),
                errors: stats::RecentErrors::default(),
                archive_asked: Mutex::new(Vec::new()),
                waiting: AtomicU64::new(0),
                copying: AtomicBool::new(false),
                archive_full: AtomicBool::new(false),
                full_marks: Mutex::new(HashSet::new()),
                passes: Mutex::new(0),
                pass_done: Condvar::new(),
                stop: Mutex::new(Stop::default()),
                wake: Condvar::new(),
                released: OnceLock::new(),
            }),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Sweeps the volumes (partial copies of a crash, torn manifest tails), then starts the
    /// threads working for `host`.
    pub fn start(&self, host: Weak<dyn Host>) -> std::io::Result<()> {
        let _ = self.shared.host.set(host);
        match self.shared.folder.sweep() {
            Ok(report) => {
                for path in &report.partials_removed {
                    log::warn!(
                        "archive: removed the partial copy {} (a crash)",
                        path.display()
                    );
                }
                for path in &report.torn_manifests {
                    log::warn!("archive: cut the torn tail of {} (a crash)", path.display());
                }
            }
            Err(err) => log::warn!("archive: sweep of the volumes failed: {err}"),
        }
        let mut threads = self.threads.lock();
        let shared = Arc::clone(&self.shared);
        threads.push(spawn("vs-tier-migrate", move || {
            let mut migrator = migrate::Migrator::default();
            while shared.sleep(migrate::pause(&shared), |s| &mut s.migrate) {
                migrator.round(&shared);
            }
        })?);
        let shared = Arc::clone(&self.shared);
        threads.push(spawn("vs-tier-evict", move || loop {
            evict::pass(&shared);
            *shared.passes.lock() += 1;
            shared.pass_done.notify_all();
            if !shared.sleep(evict::pause(&shared), |s| &mut s.evict) {
                break;
            }
        })?);
        for drive in 0..self.shared.options.drives {
            let shared = Arc::clone(&self.shared);
            threads.push(spawn(&format!("vs-tier-drive{drive}"), move || {
                recall::drive_loop(&shared)
            })?);
        }
        Ok(())
    }

    /// Sets what is called with each inode whose local data was dropped (once).
    pub fn on_release(&self, hook: Box<dyn Fn(u64) + Send + Sync>) {
        let _ = self.shared.released.set(hook);
    }

    /// Stops the threads: waiting recalls fail (`EIO`), copies running are aborted at
    /// their next block.
    pub fn stop(&self) {
        self.shared.stop.lock().stopped = true;
        self.shared.wake.notify_all();
        self.shared.drives.stop();
        self.shared.recalls.stop();
        self.shared.pass_done.notify_all();
        for thread in self.threads.lock().drain(..) {
            let _ = thread.join();
        }
    }

    /// The recall of released (or damaged, when an operator asks) `ino`: joins the one
    /// running or queues one. On-demand requests go before pre-reads.
    pub fn recall(&self, ino: u64) -> Result<Arc<Recall>, TierError> {
        if let Some(recall) = self.shared.recalls.active(ino) {
            return Ok(self.shared.recalls.request(ino, recall.copy.clone(), false));
        }
        let copy = self
            .shared
            .catalog
            .live_copy(ino)?
            .ok_or(TierError::NoCopy(ino))?;
        Ok(self.shared.recalls.request(ino, copy, false))
    }

    /// The recall of `ino` running or queued, if any.
    pub fn recall_in_progress(&self, ino: u64) -> Option<Arc<Recall>> {
        self.shared.recalls.active(ino)
    }

    /// Asks for `ino` to be archived at the next migration round, whatever its age or the
    /// patterns (an operator's request).
    pub fn archive_now(&self, ino: u64) -> Result<(), TierError> {
        let attr = self.shared.catalog.get_attr(ino)?;
        match attr.data_state {
            DataState::Resident | DataState::Dirty => {}
            DataState::Archived | DataState::Released => return Ok(()),
            state => {
                return Err(TierError::WrongState {
                    ino,
                    state: state.name(),
                    why: "only a file with data can be archived",
                })
            }
        }
        self.shared.archive_asked.lock().push(ino);
        self.shared.kick(|s| &mut s.migrate);
        Ok(())
    }

    /// Drops the local data of archived `ino` now, whatever the watermarks.
    pub fn release_now(&self, ino: u64) -> Result<(), TierError> {
        let attr = self.shared.catalog.get_attr(ino)?;
        match attr.data_state {
            DataState::Released => return Ok(()),
            DataState::Archived => {}
            state => {
                return Err(TierError::WrongState {
                    ino,
                    state: state.name(),
                    why: "only an archived file can be released",
                })
            }
        }
        // A migration lets go of the file a moment after the catalog says archived; an
        // open file stays busy.
        let deadline = std::time::Instant::now() + CLAIM_WAIT;
        let mut result = evict::evict(&self.shared, &attr);
        while result == Err(evict::NotEvicted::InUse)
            && std::time::Instant::now() < deadline
            && self
                .shared
                .host()
                .is_some_and(|host| !host.files().is_open(ino) && !host.needs_save(ino))
        {
            std::thread::sleep(Duration::from_millis(5));
            result = evict::evict(&self.shared, &attr);
        }
        match result {
            Ok(()) => Ok(()),
            Err(evict::NotEvicted::InUse) => Err(TierError::Busy(ino)),
            Err(evict::NotEvicted::NotArchived) => Err(TierError::WrongState {
                ino,
                state: "changed",
                why: "it changed since it was archived",
            }),
            Err(evict::NotEvicted::Catalog(e)) => {
                Err(TierError::Catalog(MetaError::Unavailable(e)))
            }
        }
    }

    /// Queues a recall of released or damaged `ino` (an operator's request); returns
    /// without waiting.
    pub fn recall_now(&self, ino: u64) -> Result<Arc<Recall>, TierError> {
        let attr = self.shared.catalog.get_attr(ino)?;
        match attr.data_state {
            DataState::Released | DataState::Damaged => self.recall(ino),
            state => Err(TierError::WrongState {
                ino,
                state: state.name(),
                why: "only a released or damaged file is recalled",
            }),
        }
    }

    /// What the tier knows of `ino`.
    pub fn file_status(&self, ino: u64) -> Result<FileStatus, TierError> {
        let attr = self.shared.catalog.get_attr(ino)?;
        let state = self
            .shared
            .host()
            .and_then(|host| host.current_state(ino))
            .unwrap_or(attr.data_state);
        Ok(FileStatus {
            ino,
            state,
            size: attr.size,
            recalling: self.shared.recalls.active(ino).map(|r| r.local_bytes()),
            copy: self.shared.catalog.live_copy(ino)?,
        })
    }

    /// Asks for room on the cache file system (a write found it short): runs eviction
    /// passes (and waits for migrations in progress) at most `wait`; whether space was
    /// freed.
    pub fn make_room(&self, wait: Duration) -> bool {
        self.shared.make_room(wait)
    }

    /// Wakes the eviction thread for a pass (free space may be short).
    pub fn space_short(&self) {
        self.shared.kick(|s| &mut s.evict);
    }

    /// Below `WriteCacheFreeSize` free: how long a write should pause to let eviction
    /// catch up (0 above it).
    pub fn write_pause(&self, free: u64) -> Duration {
        let limit = self.shared.options.write_free_size;
        if free >= limit || limit == 0 {
            return Duration::ZERO;
        }
        self.space_short();
        // Up to 20 ms, growing as free space shrinks towards nothing.
        let short = (limit - free) as f64 / limit as f64;
        Duration::from_micros((20_000.0 * short) as u64)
    }

    /// One line for the statistics log: the counters, what waits, whether the archive is
    /// full.
    pub fn summary(&self) -> String {
        let shared = &self.shared;
        let (waiting, running) = shared.recalls.counts();
        format!(
            "{}; {} bytes waiting to migrate; {waiting} recalls queued, {running} running{}",
            shared.counters.values(),
            shared.waiting.load(Ordering::Relaxed),
            if shared.archive_full.load(Ordering::Relaxed) {
                "; ARCHIVE FULL (no volume above TapeReservedMinFreeSize)"
            } else {
                ""
            }
        )
    }

    /// The counters since start.
    pub fn counters(&self) -> CounterValues {
        self.shared.counters.values()
    }

    /// The tier's status.
    pub fn status(&self) -> TierStatus {
        let shared = &self.shared;
        let cache = evict::cache_space(shared).map(|(free, total)| {
            let (low, high) = shared.options.watermarks(total);
            (free, total, low, high)
        });
        TierStatus {
            states: shared.catalog.state_totals().unwrap_or_default(),
            waiting_bytes: shared.waiting.load(Ordering::Relaxed),
            recalls: shared.recalls.counts(),
            recall_queues: shared.recalls.waiting_per_volume(),
            cache,
            volumes: shared.folder.scan().unwrap_or_default(),
            archive_full: shared.archive_full.load(Ordering::Relaxed),
            counters: shared.counters.values(),
            errors: shared.errors.list(),
        }
    }

    /// The options it runs with.
    pub fn options(&self) -> &TierOptions {
        &self.shared.options
    }
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier")
            .field("archive_folder", &self.shared.options.archive_folder)
            .finish_non_exhaustive()
    }
}

impl Drop for Tier {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.into()).spawn(f)
}
