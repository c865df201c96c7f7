//! The file system core, free of any kernel interface's types: the inode table, open
//! handles and the registry of open files, write-back of sizes and times, resize and
//! kill-priv rules, limits, listings, start-up recovery, and the threads that run work
//! needing the catalog. `crate::fs` translates kernel (FUSE) requests into calls here.
//!
//! Metadata operations are one catalog ([`MetaEngine`]) transaction each; reads and writes
//! go straight to the inode's data in the [`DataStore`] and never wait for the database.
//! Sizes and times from writes reach the catalog on flush, fsync, release and a timer (one
//! second by default) ([`writeback`]). A database failure is `EIO` within
//! `DatabaseTimeout` (plus one socket timeout); a full cache is `ENOSPC`.
//!
//! Order of effects, so that a failure leaves stored data intact: a truncation commits the
//! new size before the data is cut (an extension is made first and undone if the commit
//! fails); a create whose data file cannot be made takes its entry back; a partial write is
//! reported (and recorded) as the bytes that reached the store; inodes are purged from the
//! catalog before their data goes, and data left without an inode row (a crash between the
//! two) is set aside at the next start (module `recovery`).
//!
//! Where the data is comes from the catalog (`Attr::data_state`), not from whether a data
//! file exists (module `io`): `Empty` needs none (reads give zeros up to the size); `Resident`,
//! `Dirty` and `Archived` must have one (missing: `EIO`, logged with the inode and state;
//! never an empty read, never a new size); `Released` is recalled by the archive tier
//! ([`crate::tier`]; without one it is `EIO`), `Damaged` is `EIO`. A write, `fallocate` or truncation makes a file `Dirty` (saved with its size);
//! when its last writer closes and the final save succeeds it is `Resident`.
//!
//! The owner fence ([`crate::meta::OwnerFence`]): every change checks it first; once the
//! owner lease is lost, changes (and saves) fail with `EIO`, reads keep working.

mod attrs;
mod error;
pub mod handles;
mod inodes;
mod io;
pub mod journal;
pub mod killpriv;
mod limits;
mod listing;
mod namespace;
mod recovery;
#[cfg(test)]
mod tests;
mod workers;
pub mod writeback;

pub use crate::data::StartError;
pub use attrs::known_xattr_namespace;
pub use error::VfsError;
pub use handles::{Closed, OpenFile, OpenFiles};
pub use inodes::StatView;
pub use io::WritePlan;
pub use killpriv::Caller;

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::data::{DataStore, SweepOptions};
use crate::log_limit;
use crate::meta::{MetaEngine, OwnerFence};
use crate::tier::{Host, Tier};
use inodes::Inodes;
use journal::Journal;
use limits::Limits;
use workers::{Job, Workers};

/// How long the kernel may cache entries and attributes. The mounted server is the only
/// writer of its catalog, and every change it makes is reported to the kernel in the reply,
/// so the kernel's cache stays right for much longer than a second. "Only writer" holds
/// because the owner lease (`crate::meta::lease`) allows one server per catalog; without
/// it this TTL would serve another server's changes stale.
pub const TTL: Duration = Duration::from_secs(30);
/// Largest single write and read-ahead the kernel is asked for.
pub const MAX_IO: u32 = 1 << 20;
/// The extended attribute holding file capabilities.
pub const CAPABILITY_XATTR: &[u8] = b"security.capability";
/// Extended attributes listed to root only.
pub const TRUSTED_XATTR_PREFIX: &[u8] = b"trusted.";

/// Settings of a file system.
#[derive(Debug, Clone)]
pub struct FsOptions {
    /// How often unsaved sizes and times are written to the catalog. Default 1 s.
    pub save_interval: Duration,
    /// Largest file size in bytes (FileMaxSize); 0 = no limit. Default 0.
    pub file_max_size: u64,
    /// Space on the cache file system writes never take (CacheFreeLeastSize). Default 2G.
    pub cache_free_least_size: u64,
    /// Most bytes of extended attributes (names plus values) per inode; more is `ENOSPC`.
    /// Default 4 KiB (`XattrMaxSize`).
    pub xattr_max_size: usize,
    /// Bind a cache folder that belongs to another catalog (or to none that can be proven)
    /// to this one, moving all its data files to the quarantine (`--rebind-cache`).
    /// Default false: such a start is refused.
    pub rebind_cache: bool,
    /// Quarantine folders older than this many days are removed at start
    /// (CacheQuarantineDays); 0 never. Default 30.
    pub quarantine_days: u64,
    /// Largest quarantine in bytes (CacheQuarantineMaxSize). Default 64 GiB.
    pub quarantine_max_size: u64,
    /// Threads running work that needs the catalog (`DatabaseMaxPoolSize`: more would
    /// only wait for a connection). Default 4.
    pub catalog_threads: usize,
    /// Revoked when the owner lease is lost: every change then fails with `EIO`.
    pub fence: OwnerFence,
    /// The archive tier over the same cache (`ArchiveFolder`), started with the core.
    /// Default none: released files are then `EIO`.
    pub tier: Option<Arc<Tier>>,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions::from_config(&crate::Config::default())
    }
}

impl FsOptions {
    /// The options `config` sets (the save interval has no key and stays 1 s;
    /// `rebind_cache` is a command-line choice and stays false).
    pub fn from_config(config: &crate::Config) -> FsOptions {
        FsOptions {
            save_interval: Duration::from_secs(1),
            file_max_size: config.file_max_size,
            cache_free_least_size: config.cache.free_least_size,
            xattr_max_size: usize::try_from(config.xattr_max_size).unwrap_or(usize::MAX),
            rebind_cache: false,
            quarantine_days: config.cache.quarantine_days,
            quarantine_max_size: config.cache.quarantine_max_size,
            catalog_threads: config.database.max_pool_size.max(1),
            fence: OwnerFence::new(),
            tier: None,
        }
    }
}

/// The running core: its state ([`Core`]), the catalog threads and the write-back timer.
/// Dropping it stops them and saves what is unsaved.
pub struct Vfs {
    core: Arc<Core>,
    workers: Workers,
    flusher: Option<std::thread::JoinHandle<()>>,
}

/// The state of a file system and every operation on it. Operations that may wait for the
/// catalog run on a catalog thread ([`Vfs::offload`]); the others (reads, writes of open
/// files) are called directly.
pub struct Core {
    catalog: Arc<dyn MetaEngine>,
    store: Arc<dyn DataStore>,
    /// FileMaxSize and CacheFreeLeastSize.
    limits: Limits,
    inodes: Inodes,
    /// Open file and directory handles.
    files: OpenFiles,
    /// Inodes whose data file was created and whose directory entry has not been fsynced.
    unsynced_entries: Mutex<HashSet<u64>>,
    /// Whether any inode may have [`CAPABILITY_XATTR`] (set once one is stored).
    capabilities: AtomicBool,
    /// Sizes and times the catalog could not take yet, on disk.
    journal: Mutex<Journal>,
    /// Inodes whose missing data was logged already (logged once each).
    missing_reported: Mutex<HashSet<u64>>,
    options: FsOptions,
    /// The archive tier, if there is one.
    tier: Option<Arc<Tier>>,
    save_interval: Duration,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// Sizes and times a stop could not save to the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsaved {
    /// Files whose size or times the catalog has not recorded.
    pub inodes: usize,
    /// Sum of their sizes, in bytes.
    pub bytes: u64,
    /// The journal holding them, or why it could not be written.
    pub journal: Result<std::path::PathBuf, String>,
}

impl std::fmt::Display for Unsaved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} files ({} bytes) have sizes or times the catalog has not recorded; ",
            self.inodes, self.bytes
        )?;
        match &self.journal {
            Ok(path) => write!(
                f,
                "kept in the journal {}, replayed into the catalog at the next start",
                path.display()
            ),
            Err(err) => write!(
                f,
                "the journal could not be written ({err}): at the next start these files \
                 keep the sizes the catalog has"
            ),
        }
    }
}

/// Counters of a running file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    /// Open file handles.
    pub open_handles: usize,
    /// Inodes with sizes or times not yet saved to the catalog.
    pub unsaved_inodes: usize,
}

impl Vfs {
    /// Runs start-up recovery (module `recovery`: migrate, bind the store, replay the journal,
    /// purge orphans, sweep the store), then starts the catalog threads and the timer that
    /// saves sizes and times. The root directory is owned by the caller.
    pub fn start(
        catalog: Arc<dyn MetaEngine>,
        store: Arc<dyn DataStore>,
        options: FsOptions,
    ) -> Result<Vfs, StartError> {
        let sweep = SweepOptions {
            quarantine_days: options.quarantine_days,
            quarantine_max_size: options.quarantine_max_size,
        };
        let journal = recovery::recover(
            &*catalog,
            &*store,
            options.rebind_cache,
            &sweep,
            &options.fence,
        )?;
        let capabilities = catalog.xattr_in_use(CAPABILITY_XATTR)?;
        let limits = Limits::new(
            options.file_max_size,
            store.reserve(options.cache_free_least_size),
        );
        let core = Arc::new(Core {
            catalog,
            store,
            limits,
            inodes: Inodes::default(),
            files: OpenFiles::default(),
            unsynced_entries: Mutex::new(HashSet::new()),
            capabilities: AtomicBool::new(capabilities),
            journal: Mutex::new(journal),
            missing_reported: Mutex::new(HashSet::new()),
            save_interval: options.save_interval,
            tier: options.tier.clone(),
            options,
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        if let Some(tier) = &core.tier {
            let host: Arc<dyn Host> = Arc::clone(&core) as Arc<dyn Host>;
            tier.start(Arc::downgrade(&host))
                .map_err(|e| StartError::Refused(format!("cannot start the archive tier: {e}")))?;
        }
        let workers = Workers::start(core.options.catalog_threads.max(1), "vs-fs-catalog")
            .map_err(|e| StartError::Refused(format!("cannot start catalog threads: {e}")))?;
        let flusher = {
            let core = Arc::clone(&core);
            std::thread::Builder::new()
                .name("vs-fs-flush".into())
                .spawn(move || core.flush_loop())
                .map_err(|e| StartError::Refused(format!("cannot start flush thread: {e}")))?
        };
        Ok(Vfs {
            core,
            workers,
            flusher: Some(flusher),
        })
    }

    /// The state and operations.
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Runs `work` on a catalog thread, then `answer` with its result on the same thread.
    /// Work that waited for a thread longer than `DatabaseTimeout` (all of them stuck on a
    /// database that does not answer) is not started: `EIO` at once instead of late. Work
    /// that panics is answered with `EIO` (logged, rate-limited); the thread keeps serving.
    pub fn offload<T: 'static>(
        &self,
        work: impl FnOnce(&Core) -> Result<T, VfsError> + Send + 'static,
        answer: impl FnOnce(Result<T, VfsError>) + Send + 'static,
    ) {
        self.submit(true, work, answer);
    }

    /// Like [`Vfs::offload`], however long the work waited (a release, whose handle must
    /// be closed whatever happens).
    pub fn offload_always<T: 'static>(
        &self,
        work: impl FnOnce(&Core) -> Result<T, VfsError> + Send + 'static,
        answer: impl FnOnce(Result<T, VfsError>) + Send + 'static,
    ) {
        self.submit(false, work, answer);
    }

    fn submit<T: 'static>(
        &self,
        deadline: bool,
        work: impl FnOnce(&Core) -> Result<T, VfsError> + Send + 'static,
        answer: impl FnOnce(Result<T, VfsError>) + Send + 'static,
    ) {
        let core = Arc::clone(&self.core);
        let queued = Instant::now();
        let job: Job = Box::new(move || {
            let result = if deadline && queued.elapsed() > core.catalog.timeout() {
                Err(VfsError::EIO)
            } else {
                catch_unwind(AssertUnwindSafe(|| work(&core))).unwrap_or_else(|panic| {
                    log_limit::warn(
                        "file system operation panicked",
                        format_args!(
                            "a file system operation panicked (answered EIO): {}",
                            workers::panic_message(&*panic)
                        ),
                    );
                    Err(VfsError::EIO)
                })
            };
            answer(result);
        });
        if let Err(job) = self.workers.submit(job) {
            job(); // shutting down: run it here
        }
    }

    /// Stops the catalog threads once they finished what is queued (the kernel sends
    /// nothing more), saves what is unsaved and reclaims inodes kept for the kernel.
    pub fn shutdown(&self) {
        self.workers.stop();
        self.core.flush_dirty();
        self.core.reclaim_unreferenced();
    }
}

impl Drop for Vfs {
    fn drop(&mut self) {
        if let Some(tier) = &self.core.tier {
            tier.stop();
        }
        self.workers.stop();
        *self.core.stop.lock() = true;
        self.core.wake.notify_all();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        self.core.flush_dirty();
        self.core.reclaim_unreferenced();
        if let Err(unsaved) = self.core.settle_journal() {
            log::warn!("file system stopped: {unsaved}");
        }
    }
}

impl Core {
    /// Open file and directory handles (what the kernel has yet to close).
    pub fn open_handles_and_dirs(&self) -> usize {
        self.files.len() + self.files.dirs_open()
    }

    /// The current counters.
    pub fn stats(&self) -> FsStats {
        FsStats {
            open_handles: self.files.len(),
            unsaved_inodes: self.inodes.pending().len(),
        }
    }

    /// The registry of open files (which inodes are open, and for writing).
    pub fn open_files(&self) -> &OpenFiles {
        &self.files
    }

    /// The archive tier, if there is one.
    pub fn tier(&self) -> Option<&Arc<Tier>> {
        self.tier.as_ref()
    }

    /// Last save once nothing can change any more (after the session ended): saves what
    /// is unsaved; what the catalog cannot take stays in the journal (fsynced) and is
    /// returned, so the caller can report it and must not report success.
    pub fn finish(&self) -> Result<(), Unsaved> {
        self.flush_dirty();
        self.settle_journal()
    }

    /// `Ok` while this server may change the catalog; `EIO` (logged, rate-limited, with
    /// the reason) once the owner lease is lost. Checked first by every change.
    fn may_change(&self) -> Result<(), VfsError> {
        self.options.fence.check().map_err(|reason| {
            log_limit::warn(
                "change refused without the owner lease",
                format_args!("change refused (EIO): {reason}"),
            );
            VfsError::EIO
        })
    }
}

impl Host for Core {
    fn files(&self) -> &OpenFiles {
        &self.files
    }

    fn needs_save(&self, ino: u64) -> bool {
        self.inodes.needs_save(ino)
    }

    fn data_state_changed(&self, ino: u64, state: crate::meta::DataState) {
        self.inodes.set_data_state(ino, state);
    }

    fn current_state(&self, ino: u64) -> Option<crate::meta::DataState> {
        self.inodes.get(ino).map(|attr| attr.data_state)
    }
}
