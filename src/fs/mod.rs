//! The FUSE file system: maps kernel requests to catalog (MySQL) and cache (local files).
//!
//! Metadata operations are one catalog transaction each; reads and writes go straight to the
//! inode's cache file and never wait for the database. Sizes and times from writes reach the
//! catalog on flush, fsync, release and a timer (one second by default). A database failure
//! is `EIO` within `DatabaseTimeout` (plus one socket timeout); a full cache is `ENOSPC`.
//! Permissions are checked by the kernel (`default_permissions`), so `access` is not
//! implemented.
//!
//! Order of effects, so that a failure leaves stored data intact: a truncation commits the
//! new size before the data is cut (an extension is made first and undone if the commit
//! fails); a create whose data file cannot be made takes its entry back; a partial write is
//! reported (and recorded) as the bytes that reached the cache; inodes are purged from the
//! catalog before their data file goes, and data files left without an inode row (a crash
//! between the two) are moved to the quarantine at the next start ([`custody`]).
//!
//! Custody of data: the cache folder is bound to its catalog and checked at start; sizes
//! and times a write-back round could not save are kept in the local journal ([`journal`])
//! and replayed at start; a read never returns bytes past the recorded size, an extension
//! cuts stale bytes past the recorded end first (so the gap reads zeros), and a non-empty
//! file whose data file is missing answers `EIO` (never an empty read, never a new size).

pub mod custody;
mod inodes;
pub mod journal;
mod killpriv;
mod limits;
mod listing;
mod mount;
mod workers;

pub use custody::StartError;
pub use mount::{lazy_unmount, mount_config, Mounted};

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow, WriteFlags,
};
use parking_lot::{Condvar, Mutex};

use crate::cache::Cache;
use crate::log_limit;
use crate::meta::{
    now_ns, system_time_ns, Attr, AttrChange, Changed, Kind, MetaEngine, MetaError, NewNode,
    RenameMode, XattrMode, NAME_MAX,
};
use inodes::Inodes;
use journal::Journal;
use killpriv::Caller;
use limits::Limits;
use listing::Listing;
use workers::{Job, Workers};

/// How long the kernel may cache entries and attributes. The mounted server is the only
/// writer of its catalog, and every change it makes is reported to the kernel in the reply,
/// so the kernel's cache stays right for much longer than a second. That holds only under
/// the owner lease (`crate::meta::lease`): without it another server could change the
/// catalog under these caches, which is why every change checks [`FsOptions::fence`].
const TTL: Duration = Duration::from_secs(30);
/// Largest single write and read-ahead the kernel is asked for.
const MAX_IO: u32 = 1 << 20;
/// The extended attribute holding file capabilities.
const CAPABILITY_XATTR: &[u8] = b"security.capability";
/// Extended attributes listed to root only.
const TRUSTED_XATTR_PREFIX: &[u8] = b"trusted.";
/// Threads running requests that need the catalog: as many as the pool has connections by
/// default (more would only wait in the pool).
const CATALOG_THREADS: usize = 4;

/// Settings of a [`VsFs`].
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
    /// Revoked when the owner lease is lost: every change then fails with `EIO`.
    pub fence: crate::meta::OwnerFence,
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
            fence: crate::meta::OwnerFence::new(),
        }
    }
}

/// The file system; hand it to [`Mounted::spawn`] or `fuser::mount`.
pub struct VsFs {
    shared: Arc<Shared>,
    workers: Workers,
    flusher: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    catalog: Arc<dyn MetaEngine>,
    cache: Cache,
    /// FileMaxSize and CacheFreeLeastSize.
    limits: Limits,
    inodes: Inodes,
    handles: Mutex<HashMap<u64, Arc<OpenFile>>>,
    /// Open directory handles with what they have fetched but not yet listed.
    dirs: Mutex<HashMap<u64, Arc<Mutex<Listing>>>>,
    next_handle: AtomicU64,
    /// Inodes whose data file was created and whose directory entry has not been fsynced.
    unsynced_entries: Mutex<HashSet<u64>>,
    /// Whether any inode may have [`CAPABILITY_XATTR`] (set once one is stored).
    capabilities: AtomicBool,
    /// Sizes and times the catalog could not take yet, on disk.
    journal: Mutex<Journal>,
    /// Inodes whose missing data file was logged already (logged once each).
    missing_reported: Mutex<HashSet<u64>>,
    save_interval: Duration,
    xattr_max_size: usize,
    /// Revoked when the owner lease is lost: changes then fail with `EIO`.
    fence: crate::meta::OwnerFence,
    /// Tells the kernel about changes not made through a reply (set once mounted).
    notifier: OnceLock<fuser::Notifier>,
    stop: Mutex<bool>,
    wake: Condvar,
}

struct OpenFile {
    ino: u64,
    /// The inode's data file, once it has one (it is made by the first write).
    file: OnceLock<File>,
}

impl VsFs {
    /// [`VsFs::with_options`] with the default options.
    pub fn new(catalog: Arc<dyn MetaEngine>, cache: Cache) -> Result<VsFs, StartError> {
        VsFs::with_options(catalog, cache, FsOptions::default())
    }

    /// Migrates the catalog, checks that the cache belongs to it, replays the journal,
    /// reclaims inodes left unlinked by a crash, quarantines cache files left without an
    /// inode and cuts those longer than their recorded size (see [`custody`]), and starts
    /// the timer that saves sizes and times. The root directory is owned by the caller.
    pub fn with_options(
        catalog: Arc<dyn MetaEngine>,
        cache: Cache,
        options: FsOptions,
    ) -> Result<VsFs, StartError> {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        catalog.migrate(uid, gid)?;
        let binding = custody::bind_cache(&*catalog, &cache, options.rebind_cache)?;
        let mut journal = Journal::new(cache.root());
        custody::replay_journal(&*catalog, &cache, &mut journal, binding.foreign)?;
        // Inodes no entry names are this server's own leftovers only while it holds the
        // owner lease (taken before this start-up; see `crate::meta::lease`): under another
        // live server they would be its open-but-unlinked files.
        if let Err(reason) = options.fence.check() {
            return Err(StartError::Refused(format!(
                "not reclaiming unlinked inodes: {reason}"
            )));
        }
        for ino in catalog.orphans()? {
            catalog.purge(ino)?;
            if let Err(err) = cache.remove(ino) {
                log::warn!("cannot remove cache data of orphan inode {ino}: {err}");
            }
            log::info!("reclaimed unlinked inode {ino}");
        }
        custody::purge_old_quarantine(&cache, options.quarantine_days);
        custody::sweep_cache(
            &*catalog,
            &cache,
            options.quarantine_max_size,
            binding.foreign,
        )?;
        binding.commit(&cache)?;
        let capabilities = catalog.xattr_in_use(CAPABILITY_XATTR)?;
        let limits = Limits::new(
            options.file_max_size,
            cache.reserve(options.cache_free_least_size),
        );
        let shared = Arc::new(Shared {
            catalog,
            cache,
            limits,
            inodes: Inodes::default(),
            handles: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            unsynced_entries: Mutex::new(HashSet::new()),
            capabilities: AtomicBool::new(capabilities),
            journal: Mutex::new(journal),
            missing_reported: Mutex::new(HashSet::new()),
            save_interval: options.save_interval,
            xattr_max_size: options.xattr_max_size,
            fence: options.fence,
            notifier: OnceLock::new(),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let workers = Workers::start(CATALOG_THREADS, "vs-fs-catalog")
            .map_err(|e| StartError::Refused(format!("cannot start catalog threads: {e}")))?;
        let flusher = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("vs-fs-flush".into())
                .spawn(move || shared.flush_loop())
                .map_err(|e| StartError::Refused(format!("cannot start flush thread: {e}")))?
        };
        Ok(VsFs {
            shared,
            workers,
            flusher: Some(flusher),
        })
    }

    /// Saves every unsaved size and time now.
    pub fn flush_all(&self) {
        self.shared.flush_dirty();
    }

    /// A handle for reading statistics after the file system has been handed to a session.
    pub fn stats_handle(&self) -> FsStatsHandle {
        FsStatsHandle(Arc::clone(&self.shared))
    }
}

/// Reads [`FsStats`] of a mounted file system.
#[derive(Clone)]
pub struct FsStatsHandle(Arc<Shared>);

/// Counters of a mounted file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    /// Open file handles.
    pub open_handles: usize,
    /// Inodes with sizes or times not yet saved to the catalog.
    pub unsaved_inodes: usize,
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

impl FsStatsHandle {
    /// Gives the file system the session's channel for telling the kernel about changes it
    /// makes on its own (set-user-ID cleared by a write); call once the session exists.
    pub fn set_notifier(&self, notifier: fuser::Notifier) {
        let _ = self.0.notifier.set(notifier);
    }

    /// Saves every unsaved size and time now (used when shutting down).
    pub fn flush(&self) {
        self.0.flush_dirty();
    }

    /// Last save once nothing can change any more (after the session ended): saves what
    /// is unsaved; what the catalog cannot take stays in the journal (fsynced) and is
    /// returned, so the caller can report it and must not report success.
    pub fn finish(&self) -> Result<(), Unsaved> {
        self.0.flush_dirty();
        self.0.settle_journal()
    }

    /// The current counters.
    pub fn snapshot(&self) -> FsStats {
        FsStats {
            open_handles: self.0.handles.lock().len(),
            unsaved_inodes: self.0.inodes.pending().len(),
        }
    }
}

impl Drop for VsFs {
    fn drop(&mut self) {
        self.workers.stop();
        *self.shared.stop.lock() = true;
        self.shared.wake.notify_all();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        self.shared.flush_dirty();
        self.shared.reclaim_unreferenced();
        if let Err(unsaved) = self.shared.settle_journal() {
            log::warn!("file system stopped: {unsaved}");
        }
    }
}

impl Shared {
    fn flush_loop(&self) {
        let mut stop = self.stop.lock();
        while !*stop {
            self.wake.wait_for(&mut stop, self.save_interval);
            if *stop {
                break;
            }
            parking_lot::MutexGuard::unlocked(&mut stop, || {
                self.flush_dirty();
                log_limit::flush();
            });
        }
    }

    /// Saves unsaved sizes and times; stops at the first inode the database cannot take
    /// (the rest stay unsaved for the next round instead of each waiting out the timeout).
    /// A round that left changes unsaved records them all in the journal; a round that
    /// saved everything removes the journal.
    fn flush_dirty(&self) {
        let mut failed = false;
        for ino in self.inodes.dirty_inodes() {
            if let Err(err) = self.save(ino) {
                log_limit::warn(
                    "cannot save size and times",
                    format_args!("cannot save size and times of inode {ino}: {err}"),
                );
                failed = true;
                if matches!(err, MetaError::Unavailable(_)) {
                    break;
                }
            }
        }
        let mut journal = self.journal.lock();
        let recorded = if failed {
            journal.record(&self.inodes.pending())
        } else {
            journal.clear()
        };
        if let Err(err) = recorded {
            log::error!(
                "journal {}: cannot write it: {err}",
                journal.path().display()
            );
        }
    }

    /// Makes the journal hold exactly what is unsaved now; returns what that is, if any.
    fn settle_journal(&self) -> Result<(), Unsaved> {
        let mut journal = self.journal.lock();
        let pending = self.inodes.pending();
        let recorded = journal.record(&pending);
        if pending.is_empty() {
            if let Err(err) = recorded {
                log::warn!(
                    "journal {}: everything is saved but it cannot be removed: {err}",
                    journal.path().display()
                );
            }
            return Ok(());
        }
        Err(Unsaved {
            inodes: pending.len(),
            bytes: pending.iter().map(|p| p.size).sum(),
            journal: recorded
                .map(|()| journal.path())
                .map_err(|err| err.to_string()),
        })
    }

    /// `EIO` (logged, at most once per window) when the owner lease no longer lets this
    /// server change the catalog.
    fn fenced(&self) -> Result<(), Errno> {
        self.fence.check().map_err(|reason| {
            log_limit::warn(
                "change refused without the owner lease",
                format_args!("change refused (EIO): {reason}"),
            );
            Errno::EIO
        })
    }

    /// Writes unsaved size and times of `ino` to the catalog.
    fn save(&self, ino: u64) -> Result<(), MetaError> {
        // Without the lease the sizes stay unsaved (and go to the journal).
        self.fence.check().map_err(MetaError::Unavailable)?;
        let Some(mut change) = self.inodes.begin_save(ino) else {
            return Ok(());
        };
        // Measured once per save, so a `stat` of the closed file reads it from the catalog.
        change.blocks = Some(self.blocks_of(ino));
        let result = match self.catalog.set_attr(ino, &change) {
            Ok(attr) => {
                self.inodes.changed(attr);
                Ok(())
            }
            Err(MetaError::Errno(libc::ENOENT)) => Ok(()), // deleted meanwhile
            Err(err) => Err(err),
        };
        self.inodes.end_save(ino, result.is_ok());
        result
    }

    /// The attributes of `ino`: a tracked inode's, or the catalog's.
    fn attr(&self, ino: u64) -> Result<Attr, MetaError> {
        match self.inodes.get(ino) {
            Some(attr) => Ok(attr),
            None => self.catalog.get_attr(ino),
        }
    }

    /// `attr` as the kernel is told it. A regular file's blocks are those its data file
    /// occupies in the cache, so `du` sees holes: a tracked inode's as measured since its
    /// last change, an untracked one's as the catalog recorded at its last save (no local
    /// `stat` per reply); others' follow their size.
    fn file_attr(&self, attr: &Attr) -> FileAttr {
        let mut reported = file_attr(attr);
        if attr.kind == Kind::File {
            if let Some(view) = self.inodes.stat_view(attr.ino) {
                reported.blocks = self.tracked_attr(view, None).blocks;
            }
        }
        reported
    }

    /// The 512-byte blocks the data file of `ino` occupies now: as measured since its last
    /// change if it is tracked, else one `stat` of the data file (0 if there is none).
    fn blocks_of(&self, ino: u64) -> u64 {
        let view = self.inodes.stat_view(ino);
        if let Some(blocks) = view.and_then(|view| view.blocks) {
            return blocks;
        }
        let blocks = self.cache.allocated_blocks(ino);
        if let Some(view) = view {
            self.inodes.measured(ino, view.changes, blocks);
        }
        blocks
    }

    /// A tracked inode as the kernel is told it: blocks measured since its last change are
    /// reused; otherwise the data file behind handle `fh` is measured with `fstat` (no path
    /// lookup), or the data file by its path.
    fn tracked_attr(&self, view: inodes::StatView, fh: Option<FileHandle>) -> FileAttr {
        let mut reported = file_attr(&view.attr);
        if view.attr.kind != Kind::File {
            return reported;
        }
        reported.blocks = match view.blocks {
            Some(blocks) => blocks,
            None => {
                let open = fh.and_then(|fh| self.handle(fh).ok());
                let blocks = match open.as_ref().and_then(|open| open.file.get()) {
                    Some(file) => file.metadata().map_or(0, |meta| meta.blocks()),
                    None => self.cache.allocated_blocks(view.attr.ino),
                };
                self.inodes.measured(view.attr.ino, view.changes, blocks);
                blocks
            }
        };
        reported
    }

    /// Takes the attributes a namespace change committed.
    fn apply(&self, changed: &Changed) -> Attr {
        for dir in &changed.dirs {
            self.inodes.changed(*dir);
        }
        if let Some(other) = changed.other {
            self.inodes.changed(other);
        }
        self.inodes.changed(changed.node)
    }

    /// Once unmounted (the kernel references nothing any more), reclaims the inodes kept
    /// for references it held; those the catalog cannot take now are reclaimed at the next
    /// start (as unlinked inodes left by a crash are).
    fn reclaim_unreferenced(&self) {
        for ino in self.inodes.take_unlinked() {
            self.reclaim(ino);
        }
    }

    /// Deletes inode `ino`, whose last link went and which the kernel no longer references
    /// (see [`Inodes::unlinked`]); the catalog keeps it if it is linked again.
    fn reclaim(&self, ino: u64) {
        if let Err(reason) = self.fence.check() {
            return log::warn!("inode {ino} left for the next start to reclaim: {reason}");
        }
        match self.catalog.purge(ino) {
            Ok(()) => {
                self.inodes.remove(ino);
                self.unsynced_entries.lock().remove(&ino);
                if let Err(err) = self.cache.remove(ino) {
                    log::warn!("cannot remove cache data of inode {ino}: {err}");
                }
            }
            // Reclaimed already.
            Err(MetaError::Errno(libc::ENOENT)) => self.inodes.remove(ino),
            // Left for the next start to reclaim.
            Err(err) => log::warn!("cannot reclaim inode {ino}: {err}"),
        }
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<OpenFile>, Errno> {
        self.handles.lock().get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    /// The data file behind `open`, if the inode has one yet (another handle may have made
    /// it since this one was opened).
    fn existing_data<'a>(&self, open: &'a OpenFile) -> io::Result<Option<&'a File>> {
        if let Some(file) = open.file.get() {
            return Ok(Some(file));
        }
        Ok(self
            .cache
            .open_existing(open.ino)?
            .map(|file| open.file.get_or_init(|| file)))
    }

    /// The data file behind `open`, made now if the inode has none yet. `recorded` is the
    /// inode's size: a non-empty file without a data file has lost its data, and making an
    /// empty one would serve zeros as its content: `EIO`.
    fn data_for_write<'a>(&self, open: &'a OpenFile, recorded: u64) -> io::Result<&'a File> {
        if let Some(file) = open.file.get() {
            return Ok(file);
        }
        if recorded > 0 {
            return match self.existing_data(open)? {
                Some(file) => Ok(file),
                None => Err(self.missing_data(open.ino, recorded)),
            };
        }
        let file = self.open_data(open.ino)?;
        Ok(open.file.get_or_init(|| file))
    }

    /// The error for non-empty file `ino` whose data file is missing (logged once per inode).
    fn missing_data(&self, ino: u64, size: u64) -> io::Error {
        if self.missing_reported.lock().insert(ino) {
            log::error!(
                "inode {ino}: size {size} but its data file {} is missing; reads and writes \
                 fail with EIO",
                self.cache.path(ino).display()
            );
        }
        io::Error::from_raw_os_error(libc::EIO)
    }

    /// Cuts bytes of `file` past `recorded` (the inode's size) before an extension, so the
    /// gap reads zeros: they are left by a crash after writes whose size never reached the
    /// catalog, and are not the file's. The kernel serialises writes and truncations of one
    /// inode, so no acknowledged write of this mount lies past `recorded`.
    fn cut_stale_tail(&self, ino: u64, file: &File, recorded: u64) -> io::Result<()> {
        let len = file.metadata()?.len();
        if len > recorded {
            log::warn!(
                "inode {ino}: data file has {} bytes past the recorded size {recorded}; cut \
                 before extending",
                len - recorded
            );
            file.set_len(recorded)?;
        }
        Ok(())
    }

    /// Opens the data file of `ino`, creating it if missing.
    fn open_data(&self, ino: u64) -> io::Result<File> {
        let (file, created) = self.cache.open_data(ino)?;
        if created {
            self.unsynced_entries.lock().insert(ino);
        }
        Ok(file)
    }

    /// Opens a handle on regular file `attr`; returns it with the attributes to report.
    /// A new file (`fresh`) has no data file to look for; the first write makes it.
    fn open_handle(&self, attr: Attr, fresh: bool) -> Result<(u64, Attr), Errno> {
        let file = OnceLock::new();
        if !fresh {
            if let Some(existing) = self.cache.open_existing(attr.ino).map_err(io_errno)? {
                let _ = file.set(existing);
            }
        }
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let attr = self.inodes.opened(attr);
        self.handles.lock().insert(
            fh,
            Arc::new(OpenFile {
                ino: attr.ino,
                file,
            }),
        );
        Ok((fh, attr))
    }

    fn create_node(
        &self,
        parent: INodeNo,
        name: &OsStr,
        node: &NewNode<'_>,
    ) -> Result<Attr, Errno> {
        let attr = self
            .catalog
            .create(parent.0, name.as_bytes(), node)
            .map_err(catalog_errno)?;
        let subdir = i32::from(node.kind == Kind::Directory);
        self.inodes.dir_changed(parent.0, attr.ctime, subdir);
        Ok(attr)
    }

    /// Sets the size of regular file `ino` (through handle `fh` if given; `recorded` is its
    /// size now) as part of `change`, and commits `change`. The catalog commits before data
    /// is cut, so a failed commit loses nothing; an extension is made first (after cutting
    /// stale bytes past `recorded`, so the gap reads zeros) and undone if the commit fails.
    /// A non-empty file whose data file is missing can only be truncated to 0 (`EIO`).
    fn resize_and_commit(
        &self,
        ino: u64,
        fh: Option<FileHandle>,
        size: u64,
        recorded: u64,
        change: &AttrChange,
    ) -> Result<Attr, Errno> {
        let handle = fh.and_then(|fh| self.handle(fh).ok());
        // Without a handle, a transient one (a truncate by path).
        let transient;
        let open = match &handle {
            Some(open) => open,
            None => {
                transient = OpenFile {
                    ino,
                    file: OnceLock::new(),
                };
                &transient
            }
        };
        let existing = self.existing_data(open).map_err(io_errno)?;
        let current = match existing {
            Some(file) => {
                if size > recorded {
                    self.cut_stale_tail(ino, file, recorded).map_err(io_errno)?;
                }
                file.metadata().map_err(io_errno)?.len()
            }
            // Lost data: only truncating to 0 (dropping what is lost) can go on.
            None if recorded > 0 && size > 0 => {
                return Err(io_errno(self.missing_data(ino, recorded)))
            }
            None => 0, // a file without a data file is empty
        };
        // Only an extension needs a data file made.
        let file = if size > current {
            Some(self.data_for_write(open, recorded).map_err(io_errno)?)
        } else {
            existing
        };
        if let (Some(file), true) = (file, size > current) {
            file.set_len(size).map_err(io_errno)?;
        }
        // Blocks as they will be: an extension is made already; a cut to 0 frees all; a
        // shrink is measured again after its cut, below.
        let mut change = *change;
        change.blocks = match file {
            _ if size == 0 => Some(0),
            Some(file) if size >= current => Some(file.metadata().map_or(0, |meta| meta.blocks())),
            Some(_) => None,
            None => Some(0),
        };
        match self.catalog.set_attr(ino, &change) {
            Err(err) => {
                if let (Some(file), true) = (file, size > current) {
                    if let Err(undo) = file.set_len(current) {
                        log::warn!("cannot undo the extension of inode {ino}: {undo}");
                    }
                }
                Err(catalog_errno(err))
            }
            Ok(attr) => {
                if let (Some(file), true) = (file, size < current) {
                    file.set_len(size).map_err(|err| {
                        log::warn!("inode {ino}: size {size} committed but data not cut: {err}");
                        io_errno(err)
                    })?;
                }
                match (file, change.blocks) {
                    (Some(file), None) => Ok(self.record_blocks(ino, file).unwrap_or(attr)),
                    _ => Ok(attr),
                }
            }
        }
    }

    /// Records the blocks `file`, the data file of `ino`, occupies after a shrink; the new
    /// attributes, or `None` (logged) if they could not be recorded: they are a measurement,
    /// the next save of the inode records them again.
    fn record_blocks(&self, ino: u64, file: &File) -> Option<Attr> {
        let change = AttrChange {
            blocks: Some(file.metadata().map_or(0, |meta| meta.blocks())),
            ..AttrChange::default()
        };
        self.catalog
            .set_attr(ino, &change)
            .map_err(|err| log::warn!("cannot record the blocks of inode {ino}: {err}"))
            .ok()
    }
}

/// A node owned by `owner` (the requester's uid and gid).
fn new_node(
    owner: (u32, u32),
    kind: Kind,
    perm: u16,
    rdev: u32,
    target: Option<&[u8]>,
) -> NewNode<'_> {
    NewNode {
        kind,
        perm,
        uid: owner.0,
        gid: owner.1,
        rdev,
        target,
    }
}

/// Replies that can carry an error, for requests that fail before their handler runs.
trait Fail {
    fn fail(self, errno: Errno);
}

macro_rules! impl_fail {
    ($($reply:ty),*) => {
        $(impl Fail for $reply {
            fn fail(self, errno: Errno) {
                self.error(errno);
            }
        })*
    };
}

impl_fail!(
    ReplyEntry,
    ReplyAttr,
    ReplyData,
    ReplyEmpty,
    ReplyOpen,
    ReplyDirectory,
    fuser::ReplyDirectoryPlus,
    ReplyXattr,
    ReplyCreate,
    ReplyWrite
);

impl VsFs {
    /// Runs `handler` on a catalog worker thread with `reply`. A request that waited for a
    /// worker longer than `DatabaseTimeout` (all of them stuck on a database that does not
    /// answer) fails with `EIO` at once instead of starting late.
    fn offload<R: Fail + Send + 'static>(
        &self,
        reply: R,
        handler: impl FnOnce(&Shared, R) + Send + 'static,
    ) {
        let queued = Instant::now();
        self.run_on_worker(move |shared| {
            if queued.elapsed() > shared.catalog.timeout() {
                return reply.fail(Errno::EIO);
            }
            handler(shared, reply);
        });
    }

    /// Runs `job` on a catalog worker thread, however long it waited (for a release, whose
    /// handle must be closed whatever happens).
    fn run_on_worker(&self, job: impl FnOnce(&Shared) + Send + 'static) {
        let shared = Arc::clone(&self.shared);
        let job: Job = Box::new(move || job(&shared));
        if let Err(job) = self.workers.submit(job) {
            job(); // shutting down: run it here
        }
    }
}

impl Shared {
    fn setattr(
        &self,
        ino: u64,
        fh: Option<FileHandle>,
        change: AttrChange,
        now: i64,
        caller: impl FnOnce() -> Caller,
    ) -> Result<Attr, Errno> {
        let mut change = change;
        let resize = change.size;
        let chown = change.uid.is_some() || change.gid.is_some();
        // The size before the change (the kernel holds the inode's lock: no write moves it).
        let mut recorded = 0;
        if let Some(size) = resize {
            self.limits.check_size(size)?;
        }
        if resize.is_some() || chown {
            let attr = self.attr(ino).map_err(catalog_errno)?;
            if resize.is_some() {
                match attr.kind {
                    Kind::File => {}
                    Kind::Directory => return Err(Errno::EISDIR),
                    _ => return Err(Errno::EINVAL),
                }
                change.mtime = change.mtime.or(Some(now));
                recorded = attr.size;
            }
            // Kill-priv of a truncation or change of owner, unless a mode is given too.
            if change.perm.is_none() && killpriv::has_setid(attr.kind, attr.perm) {
                let rule = if chown {
                    killpriv::after_chown
                } else {
                    killpriv::after_modify
                };
                let perm = rule(attr.perm, attr.gid, &caller());
                change.perm = (perm != attr.perm).then_some(perm);
            }
        }
        // Unsaved size and times from writes go into the same update (explicit ones win);
        // holding the save also keeps an older save from committing after this change.
        let unsaved = self.inodes.begin_save(ino);
        if let Some(unsaved) = unsaved {
            change.size = change.size.or(unsaved.size);
            change.mtime = change.mtime.or(unsaved.mtime);
            change.atime = change.atime.or(unsaved.atime);
        }
        let committed = match resize {
            Some(size) => self.resize_and_commit(ino, fh, size, recorded, &change),
            None => self.catalog.set_attr(ino, &change).map_err(catalog_errno),
        };
        let committed = committed.map(|attr| self.inodes.changed(attr));
        if unsaved.is_some() {
            self.inodes.end_save(ino, committed.is_ok());
        }
        committed
    }

    fn release(&self, ino: u64, fh: FileHandle) -> Result<(), MetaError> {
        self.handles.lock().remove(&fh.0);
        let saved = self.save(ino);
        if self.inodes.released(ino) {
            self.reclaim(ino);
        }
        saved
    }

    fn fsync(&self, ino: u64, fh: FileHandle, datasync: bool) -> Result<(), Errno> {
        let open = self.handle(fh)?;
        // A file never written has no data file: only its catalog row needs saving.
        if let Some(file) = self.existing_data(&open).map_err(io_errno)? {
            let synced = if datasync {
                file.sync_data()
            } else {
                file.sync_all()
            };
            synced.map_err(io_errno)?;
        }
        // A new data file's directory entry must be durable too, or a crash loses it.
        if self.unsynced_entries.lock().remove(&open.ino) {
            if let Err(err) = self.cache.sync_entry(open.ino) {
                self.unsynced_entries.lock().insert(open.ino);
                return Err(io_errno(err));
            }
        }
        self.save(ino).map_err(catalog_errno)
    }

    /// Writes `data` at `offset` through `open` and replies.
    fn write(&self, open: &OpenFile, offset: u64, data: &[u8], reply: ReplyWrite) {
        // The size is looked up only when it matters: no data file yet, or a write that may
        // start past the end (whose gap must read as zeros).
        let recorded = || self.inodes.get(open.ino).map_or(0, |attr| attr.size);
        let file = match open.file.get() {
            Some(file) => file,
            None => match self.data_for_write(open, recorded()) {
                Ok(file) => file,
                Err(err) => return reply.error(io_errno(err)),
            },
        };
        if offset > 0 {
            let recorded = recorded();
            if offset > recorded {
                if let Err(err) = self.cut_stale_tail(open.ino, file, recorded) {
                    return reply.error(io_errno(err));
                }
            }
        }
        // A write that stops part-way (a full cache) reports the bytes that reached the file,
        // so the size the kernel and the catalog record covers exactly what was written.
        let mut written = 0;
        let failure = loop {
            if written == data.len() {
                break None;
            }
            match file.write_at(&data[written..], offset + written as u64) {
                Ok(0) => break Some(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => break Some(err),
            }
        };
        if written > 0 {
            let end = offset.saturating_add(written as u64);
            self.inodes.wrote(open.ino, end, now_ns());
            reply.written(written as u32);
        } else if let Some(err) = failure {
            reply.error(io_errno(err));
        } else {
            reply.written(0);
        }
    }

    /// The permission bits an open (tracked) file `ino` must have after the change `req`
    /// is making, when kill-priv `rule` clears a bit; `None` when nothing changes (the
    /// usual case, decided from memory without a system call).
    fn perm_after(
        &self,
        ino: u64,
        req: &Request,
        rule: fn(u16, u32, &Caller) -> u16,
    ) -> Option<u16> {
        let attr = self.inodes.get(ino)?;
        if !killpriv::has_setid(attr.kind, attr.perm) {
            return None;
        }
        let caller = Caller::of_request(req.uid(), req.gid(), req.pid());
        let perm = rule(attr.perm, attr.gid, &caller);
        (perm != attr.perm).then_some(perm)
    }

    /// Commits new permission bits of `ino` (kill-priv), before the change that needs it.
    fn set_perm(&self, ino: u64, perm: u16) -> Result<(), Errno> {
        let change = AttrChange {
            perm: Some(perm),
            ctime: Some(now_ns()),
            ..AttrChange::default()
        };
        let attr = self.catalog.set_attr(ino, &change).map_err(catalog_errno)?;
        self.inodes.changed(attr);
        Ok(())
    }

    /// Makes the kernel fetch the attributes of `ino` again before it next uses them.
    fn invalidate_attr(&self, ino: u64) {
        if let Some(notifier) = self.notifier.get() {
            if let Err(err) = notifier.inval_inode(INodeNo(ino), -1, 0) {
                log::warn!("cannot invalidate the kernel's attributes of inode {ino}: {err}");
            }
        }
    }

    /// `fallocate` on the data file behind `fh`.
    fn fallocate(
        &self,
        ino: u64,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<(), Errno> {
        let open = self.handle(fh)?;
        let (Ok(off), Ok(len)) = (i64::try_from(offset), i64::try_from(length)) else {
            return Err(Errno::EFBIG);
        };
        let frees = mode & libc::FALLOC_FL_PUNCH_HOLE != 0;
        self.limits
            .allocate(offset.saturating_add(length), length, !frees)?;
        let recorded = self.inodes.get(open.ino).map_or(0, |attr| attr.size);
        let file = self.data_for_write(&open, recorded).map_err(io_errno)?;
        if mode & libc::FALLOC_FL_KEEP_SIZE == 0 && offset.saturating_add(length) > recorded {
            self.cut_stale_tail(open.ino, file, recorded)
                .map_err(io_errno)?;
        }
        // SAFETY: the descriptor belongs to the open cache file.
        if unsafe { libc::fallocate(file.as_raw_fd(), mode, off, len) } != 0 {
            return Err(io_errno(io::Error::last_os_error()));
        }
        let end = if mode & libc::FALLOC_FL_KEEP_SIZE == 0 {
            offset.saturating_add(length)
        } else {
            0
        };
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 || end > 0 {
            // Contents (holes, zeros) or the size changed.
            self.inodes.wrote(ino, end, now_ns());
        } else {
            self.inodes.allocated(ino);
        }
        Ok(())
    }

    fn create(&self, parent: u64, name: &OsStr, node: &NewNode<'_>) -> Result<(u64, Attr), Errno> {
        let attr = self.create_node(INodeNo(parent), name, node)?;
        match self.open_handle(attr, true) {
            Ok(opened) => Ok(opened),
            Err(errno) => {
                // The caller is told the file was not created: take the entry back.
                match self.catalog.undo_create(parent, name.as_bytes(), attr.ino) {
                    Ok(Some(dir)) => {
                        self.inodes.changed(dir);
                    }
                    Ok(None) => {}
                    Err(err) => log::warn!(
                        "create of inode {} failed ({errno:?}) and its entry stays: {err}",
                        attr.ino
                    ),
                }
                Err(errno)
            }
        }
    }

    /// The listing of directory handle `fh` (a fresh one for a handle this mount did not
    /// hand out).
    fn listing(&self, fh: FileHandle) -> Arc<Mutex<Listing>> {
        self.dirs.lock().get(&fh.0).cloned().unwrap_or_default()
    }

    /// Lists directory `ino` from position `offset` through handle `fh`: calls `add` with
    /// each entry's position, name and attributes until it reports the reply full.
    ///
    /// Positions: 1 is ".", 2 is "..", then each entry's cookie + 2 (stable, increasing).
    fn list(
        &self,
        ino: u64,
        fh: FileHandle,
        offset: u64,
        mut add: impl FnMut(u64, &OsStr, &Attr) -> bool,
    ) -> Result<(), Errno> {
        if offset < 2 {
            let dir = self.attr(ino).map_err(catalog_errno)?;
            if offset < 1 && add(1, OsStr::new("."), &dir) {
                return Ok(());
            }
            let parent = self.catalog.parent_of(ino).map_err(catalog_errno)?;
            let parent = self.attr(parent).map_err(catalog_errno)?;
            if add(2, OsStr::new(".."), &parent) {
                return Ok(());
            }
        }
        let listing = self.listing(fh);
        let mut listing = listing.lock();
        listing
            .serve(
                offset.saturating_sub(2),
                |after, limit| self.catalog.read_dir_plus(ino, after, limit),
                |entry, attr| {
                    let attr = self.inodes.view(*attr);
                    add(entry.cookie + 2, OsStr::from_bytes(&entry.name), &attr)
                },
            )
            .map_err(catalog_errno)
    }
}

/// Every request that needs the catalog runs on a catalog worker ([`VsFs::offload`]); reads,
/// writes, `fallocate`, `statfs` and `getattr` of an inode this mount tracks (an open file)
/// are answered on the FUSE thread and never wait for the database.
impl Filesystem for VsFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let _ = config.set_max_write(MAX_IO);
        let _ = config.set_max_readahead(MAX_IO);
        let _ = config.add_capabilities(
            fuser::InitFlags::FUSE_DO_READDIRPLUS | fuser::InitFlags::FUSE_READDIRPLUS_AUTO,
        );
        // Clearing set-user-ID and set-group-ID on write, truncate and chown is done here
        // (module `killpriv`), by Linux's rules; the kernel's FUSE fallback keeps set-group-ID
        // on files without group-execute. File capabilities are still removed by the kernel.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_HANDLE_KILLPRIV);
        Ok(())
    }

    fn destroy(&mut self) {
        self.workers.stop();
        self.shared.flush_dirty();
        self.shared.reclaim_unreferenced();
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        // In memory: an inode unlinked while the kernel held it is reclaimed now.
        if self.shared.inodes.forgot(ino.0, nlookup) {
            self.run_on_worker(move |shared| shared.reclaim(ino.0));
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.to_os_string();
        self.offload(reply, move |shared, reply| {
            match shared.catalog.lookup(parent.0, name.as_bytes()) {
                Ok(attr) => {
                    let attr = shared.inodes.view(attr);
                    shared.inodes.looked_up(attr.ino);
                    reply.entry(&TTL, &shared.file_attr(&attr), Generation(0));
                }
                Err(err) => reply.error(catalog_errno(err)),
            }
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        if let Some(view) = self.shared.inodes.stat_view(ino.0) {
            return reply.attr(&TTL, &self.shared.tracked_attr(view, fh));
        }
        self.offload(reply, move |shared, reply| match shared.attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &shared.file_attr(&attr)),
            Err(err) => reply.error(catalog_errno(err)),
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if let Err(errno) = self.shared.fenced() {
            return reply.error(errno);
        }
        let now = now_ns();
        let to_ns = |t: TimeOrNow| match t {
            TimeOrNow::Now => now,
            TimeOrNow::SpecificTime(t) => system_time_ns(t),
        };
        let change = AttrChange {
            perm: mode.map(|mode| (mode & 0o7777) as u16),
            uid,
            gid,
            size,
            atime: atime.map(to_ns),
            mtime: mtime.map(to_ns),
            ctime: Some(now),
            blocks: None,
            data_state: None,
        };
        let (uid, gid, pid) = (req.uid(), req.gid(), req.pid());
        self.offload(reply, move |shared, reply| {
            let caller = || Caller::of_request(uid, gid, pid);
            match shared.setattr(ino.0, fh, change, now, caller) {
                Ok(attr) => reply.attr(&TTL, &shared.file_attr(&attr)),
                Err(errno) => reply.error(errno),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.offload(reply, move |shared, reply| {
            match shared.catalog.read_link(ino.0) {
                Ok(target) => reply.data(&target),
                Err(err) => reply.error(catalog_errno(err)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        if let Err(errno) = self.shared.fenced() {
            return reply.error(errno);
        }
        let kind = match mode & libc::S_IFMT {
            libc::S_IFREG | 0 => Kind::File,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFSOCK => Kind::Socket,
            libc::S_IFCHR => Kind::CharDevice,
            libc::S_IFBLK => Kind::BlockDevice,
            _ => return reply.error(Errno::EINVAL),
        };
        let perm = (mode & !umask & 0o7777) as u16;
        let (name, owner) = (name.to_os_string(), (req.uid(), req.gid()));
        self.offload(reply, move |shared, reply| {
            let node = new_node(owner, kind, perm, rdev, None);
            match shared.create_node(parent, &name, &node) {
                Ok(attr) => {
                    shared.inodes.looked_up(attr.ino);
                    reply.entry(&TTL, &file_attr(&attr), Generation(0))
                }
                Err(errno) => reply.error(errno),
            }
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        if let Err(errno) = self.shared.fenced() {
            return reply.error(errno);
        }
        let perm = (mode & !umask & 0o7777) as u16;
        let (name, owner) = (name.to_os_string(), (req.uid(), req.gid()));
        self.offload(reply, move |shared, reply| {
            let node = new_node(owner, Kind::Directory, perm, 0, None);
            match shared.create_node(parent, &name, &node) {
                Ok(attr) => {
                    shared.inodes.looked_up(attr.ino);
                    reply.entry(&TTL, &file_attr(&attr), Generation(0))
                }
                Err(errno) => reply.error(errno),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if let Err(errno) = self.shared.fenced() {
            return reply.error(errno);
        }
        let name = name.to_os_string();
        self.offload(reply, move |shared, reply| {
            match shared.catalog.unlink(parent.0, name.as_bytes()) {
                Ok(changed) => {
                    let node = shared.apply(&changed);
                    // The link count this unlink committed (the table may hold a newer one).
                    if changed.node.nlink == 0 && shared.inodes.unlinked(node.ino) {
                        shared.reclaim(node.ino);
                    }
                    reply.ok();
                }
                Err(err) => reply.error(catalog_errno(err)),
            }
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if let Err(errno) = self.shared.fenced() {
            return reply.error(errno);
        }
        let name = name.to_os_string();
        self.offload(reply, move |shared, reply| {
            match shared.catalog.rmdir(parent.0, name.as_bytes()) {
                Ok(changed) => {
                    shared.apply(&changed);
                    reply.ok();
                }
                Err(err) => reply.error(catalog_errno(err)),
            }
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        if let Err(errno) = self.shared.fenced() {
            return reply.error(errno);
        }
        let (name, owner) = (link_name.to_os_string(), (req.uid(), req.gid()));
        let target = target.as_os_str().as_bytes().to_vec();
        self.offload(reply, move |shared, reply| {
            let node = new_node(owner, Kind::Symlink, 0o777, 0, Some(&target));
            match shared.create_node(parent, &name, &node) {
                Ok(attr) => {
                    shared.inodes.looked_up(attr.ino);
                    reply.entry(&TTL, &file_attr(&attr), Generation(0))
                }
                Err(errno) => reply.error(errno),
            }
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if let Err(errno) = self.shared.fenced() {
            return reply.error(errno);
        }
        let mode = if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            RenameMode::Exchange
        } else if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            RenameMode::NoReplace
        } else if flags.is_empty() {
            RenameMode::Replace
        } else {
            return reply.error(Errno::EINVAL);
        };
        let (name, newname) = (name.to_os_string(), newname.to_os_string());
        self.offload(reply, move |shared, reply| {
            let renamed = shared.catalog.rename(
                parent.0,
                name.as_bytes(),
                newparent.0,
                newname.as_bytes(),
                mode,
            );
            match renamed {
                Ok(changed) => {
                    shared.apply(&changed);
                    if let Some(replaced) = changed.other {
                        if replaced.nlink == 0
                            && replaced.kind != Kind::Directory
                            && shared.inodes.unlinked(replaced.ino)
                        {
                            shared.reclaim(replaced.ino);
                        }
                    }
                    reply.ok();
                }
                Err(err) => reply.error(catalog_errno(err)),
            }
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        if let Err(errno) = self.shared.fenced() {
            return reply.error(errno);
        }
        let newname = newname.to_os_string();
        self.offload(reply, move |shared, reply| {
            match shared.catalog.link(ino.0, newparent.0, newname.as_bytes()) {
                Ok(changed) => {
                    let attr = shared.apply(&changed);
                    shared.inodes.looked_up(attr.ino);
                    reply.entry(&TTL, &shared.file_attr(&attr), Generation(0));
                }
                Err(err) => reply.error(catalog_errno(err)),
            }
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.offload(reply, move |shared, reply| {
            let result =
                shared
                    .attr(ino.0)
                    .map_err(catalog_errno)
                    .and_then(|attr| match attr.kind {
                        Kind::File => shared.open_handle(attr, false),
                        Kind::Directory => Err(Errno::EISDIR),
                        _ => Err(Errno::ENXIO),
                    });
            match result {
                Ok((fh, _)) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
                Err(errno) => reply.error(errno),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let open = match self.shared.handle(fh) {
            Ok(open) => open,
            Err(errno) => return reply.error(errno),
        };
        // relatime: in memory, saved later with the size and times.
        self.shared.inodes.accessed(open.ino, now_ns());
        // An open file is tracked, so its size is known here without the catalog; bytes past
        // it are never the file's (a crash can leave the data file longer).
        let recorded = self
            .shared
            .inodes
            .get(open.ino)
            .map_or(u64::MAX, |attr| attr.size);
        let file = match self.shared.existing_data(&open) {
            Ok(Some(file)) => file,
            // Never written: empty.
            Ok(None) if recorded == 0 || recorded == u64::MAX => return reply.data(&[]),
            Ok(None) => return reply.error(io_errno(self.shared.missing_data(open.ino, recorded))),
            Err(err) => return reply.error(io_errno(err)),
        };
        let wanted = u64::from(size.min(MAX_IO)).min(recorded.saturating_sub(offset));
        let mut buf = vec![0u8; wanted as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return reply.error(io_errno(err)),
            }
        }
        reply.data(&buf[..filled]);
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if let Err(errno) = self.shared.fenced() {
            return reply.error(errno);
        }
        let open = match self.shared.handle(fh) {
            Ok(open) => open,
            Err(errno) => return reply.error(errno),
        };
        // FileMaxSize and CacheFreeLeastSize come first, as Linux checks limits before it
        // removes privileges.
        let data = match self.shared.limits.write_len(offset, data.len()) {
            Ok(len) => &data[..len],
            Err(errno) => return reply.error(errno),
        };
        // A set-user-ID or set-group-ID bit to clear first (rare): that needs the catalog.
        if let Some(perm) = self
            .shared
            .perm_after(open.ino, req, killpriv::after_modify)
        {
            let data = data.to_vec();
            return self.offload(reply, move |shared, reply| {
                match shared.set_perm(open.ino, perm) {
                    Ok(()) => {
                        // A write's reply carries no mode: the kernel must drop the mode it
                        // holds, or an exec could still see set-user-ID.
                        shared.invalidate_attr(open.ino);
                        shared.write(&open, offset, &data, reply)
                    }
                    Err(errno) => reply.error(errno),
                }
            });
        }
        self.shared.write(&open, offset, data, reply);
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing unsaved: nothing for the catalog, answered here without a thread hop.
        if !self.shared.inodes.needs_save(ino.0) {
            return reply.ok();
        }
        self.offload(reply, move |shared, reply| match shared.save(ino.0) {
            Ok(()) => reply.ok(),
            Err(err) => reply.error(catalog_errno(err)),
        });
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // With nothing unsaved the catalog has nothing to do (unless the last handle of an
        // unlinked file goes): answered here, without a thread hop.
        let shared = &self.shared;
        if !shared.inodes.needs_save(ino.0) {
            shared.handles.lock().remove(&fh.0);
            if shared.inodes.released(ino.0) {
                self.run_on_worker(move |shared| shared.reclaim(ino.0));
            }
            return reply.ok();
        }
        self.run_on_worker(move |shared| match shared.release(ino.0, fh) {
            Ok(()) => reply.ok(),
            Err(err) => reply.error(catalog_errno(err)),
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.offload(reply, move |shared, reply| {
            match shared.fsync(ino.0, fh, datasync) {
                Ok(()) => reply.ok(),
                Err(errno) => reply.error(errno),
            }
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.offload(reply, move |shared, reply| match shared.attr(ino.0) {
            Ok(attr) if attr.kind == Kind::Directory => {
                // Tracked while open, so fstat after rmdir still answers (link count 0).
                shared.inodes.opened(attr);
                let fh = shared.next_handle.fetch_add(1, Ordering::Relaxed);
                shared.dirs.lock().insert(fh, Arc::default());
                reply.opened(FileHandle(fh), FopenFlags::empty())
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(err) => reply.error(catalog_errno(err)),
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.shared.dirs.lock().remove(&fh.0);
        self.shared.inodes.released(ino.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        self.offload(reply, move |shared, mut reply| {
            let listed = shared.list(ino.0, fh, offset, |position, name, attr| {
                reply.add(INodeNo(attr.ino), position, file_type(attr.kind), name)
            });
            match listed {
                Ok(()) => reply.ok(),
                Err(errno) => reply.error(errno),
            }
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: fuser::ReplyDirectoryPlus,
    ) {
        // Each entry carries its attributes, saving the kernel a lookup per name.
        self.offload(reply, move |shared, mut reply| {
            let mut entries = Vec::new();
            let listed = shared.list(ino.0, fh, offset, |position, name, attr| {
                let ino = INodeNo(attr.ino);
                let full = reply.add(
                    ino,
                    position,
                    name,
                    &TTL,
                    &shared.file_attr(attr),
                    Generation(0),
                );
                // Each entry in the reply but "." and ".." (positions 1 and 2) is a lookup.
                if !full && position > 2 {
                    entries.push(attr.ino);
                }
                full
            });
            match listed {
                Ok(()) => {
                    for ino in entries {
                        shared.inodes.looked_up(ino);
                    }
                    reply.ok()
                }
                Err(errno) => reply.error(errno),
            }
        });
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Directory changes are committed catalog transactions already.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.shared.cache.space() {
            Ok(space) => reply.statfs(
                space.blocks,
                space.blocks_free,
                // The reserve is not available to writers.
                space
                    .blocks_available
                    .saturating_sub(self.shared.limits.reserved() / space.block_size.max(1)),
                space.files,
                space.files_free,
                space.block_size as u32,
                NAME_MAX as u32,
                space.block_size as u32,
            ),
            Err(err) => reply.error(io_errno(err)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: ReplyEmpty,
    ) {
        if let Err(errno) = self.shared.fenced() {
            return reply.error(errno);
        }
        if position != 0 {
            return reply.error(Errno::EINVAL);
        }
        if !known_xattr_namespace(name.as_bytes()) {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let mode = match flags {
            0 => XattrMode::Any,
            libc::XATTR_CREATE => XattrMode::Create,
            libc::XATTR_REPLACE => XattrMode::Replace,
            _ => return reply.error(Errno::EINVAL),
        };
        if name.as_bytes() == CAPABILITY_XATTR {
            // Before the change commits, so no read can miss it.
            self.shared.capabilities.store(true, Ordering::Release);
        }
        let (name, value) = (name.to_os_string(), value.to_vec());
        self.offload(reply, move |shared, reply| {
            match shared.catalog.set_xattr(
                ino.0,
                name.as_bytes(),
                &value,
                mode,
                shared.xattr_max_size,
            ) {
                Ok(attr) => {
                    shared.inodes.changed(attr);
                    reply.ok()
                }
                Err(err) => reply.error(catalog_errno(err)),
            }
        });
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        // The kernel asks for this one before every write (FUSE mounts are never marked
        // "no security attributes"): answer from memory while no inode has it.
        if name.as_bytes() == CAPABILITY_XATTR && !self.shared.capabilities.load(Ordering::Acquire)
        {
            return reply.error(Errno::ENODATA);
        }
        if !known_xattr_namespace(name.as_bytes()) {
            return reply.error(Errno::EOPNOTSUPP); // as Linux, without asking the catalog
        }
        let name = name.to_os_string();
        self.offload(reply, move |shared, reply| {
            match shared.catalog.get_xattr(ino.0, name.as_bytes()) {
                Ok(value) => reply_sized(reply, size, &value),
                Err(err) => reply.error(catalog_errno(err)),
            }
        });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        // Linux lists `trusted.*` only to CAP_SYS_ADMIN (the kernel guards reading them, not
        // listing); the request carries no capabilities, so: to root.
        let trusted_visible = req.uid() == 0;
        self.offload(reply, move |shared, reply| {
            match shared.catalog.list_xattrs(ino.0) {
                Ok(names) => {
                    let mut list = Vec::new();
                    for name in names {
                        if !trusted_visible && name.starts_with(TRUSTED_XATTR_PREFIX) {
                            continue;
                        }
                        list.extend_from_slice(&name);
                        list.push(0);
                    }
                    reply_sized(reply, size, &list);
                }
                Err(err) => reply.error(catalog_errno(err)),
            }
        });
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if let Err(errno) = self.shared.fenced() {
            return reply.error(errno);
        }
        let name = name.to_os_string();
        self.offload(reply, move |shared, reply| {
            match shared.catalog.remove_xattr(ino.0, name.as_bytes()) {
                Ok(attr) => {
                    shared.inodes.changed(attr);
                    reply.ok()
                }
                Err(err) => reply.error(catalog_errno(err)),
            }
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        if let Err(errno) = self.shared.fenced() {
            return reply.error(errno);
        }
        let perm = (mode & !umask & 0o7777) as u16;
        let (name, owner) = (name.to_os_string(), (req.uid(), req.gid()));
        self.offload(reply, move |shared, reply| {
            let node = new_node(owner, Kind::File, perm, 0, None);
            match shared.create(parent.0, &name, &node) {
                Ok((fh, attr)) => {
                    shared.inodes.looked_up(attr.ino);
                    reply.created(
                        &TTL,
                        &file_attr(&attr),
                        Generation(0),
                        FileHandle(fh),
                        FopenFlags::FOPEN_KEEP_CACHE,
                    )
                }
                Err(errno) => reply.error(errno),
            }
        });
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        // No ioctl is supported: the answer a device gives to a command it does not know,
        // without a log line (any user can send them as fast as they like).
        reply.error(Errno::ENOTTY);
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if let Err(errno) = self.shared.fenced() {
            return reply.error(errno);
        }
        // Allocation (mode 0, KEEP_SIZE), hole punching and zeroing go to the cache file.
        let supported =
            libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE;
        if mode & !supported != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        // The kernel leaves kill-priv on fallocate to the file system.
        if let Some(perm) = self.shared.perm_after(ino.0, req, killpriv::after_modify) {
            return self.offload(reply, move |shared, reply| {
                let result = shared.set_perm(ino.0, perm).and_then(|()| {
                    shared.invalidate_attr(ino.0); // as for a write: the reply has no mode
                    shared.fallocate(ino.0, fh, offset, length, mode)
                });
                match result {
                    Ok(()) => reply.ok(),
                    Err(errno) => reply.error(errno),
                }
            });
        }
        match self.shared.fallocate(ino.0, fh, offset, length, mode) {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }
}

/// Whether `name` is in a namespace Linux defines (`user.`, `trusted.`, `security.`,
/// `system.`); others are `EOPNOTSUPP`, as on any Linux file system.
fn known_xattr_namespace(name: &[u8]) -> bool {
    [
        &b"user."[..],
        TRUSTED_XATTR_PREFIX,
        b"security.",
        b"system.",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}

/// Replies with `data`, or with its size when `size` is 0, or `ERANGE` when it does not fit.
fn reply_sized(reply: ReplyXattr, size: u32, data: &[u8]) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(data);
    }
}

fn catalog_errno(err: MetaError) -> Errno {
    match err {
        MetaError::Errno(code) => Errno::from_i32(code),
        MetaError::Conflict(message)
        | MetaError::Unavailable(message)
        | MetaError::Internal(message) => {
            log_limit::warn(
                "catalog unavailable",
                format_args!("catalog unavailable: {message}"),
            );
            Errno::EIO
        }
    }
}

fn io_errno(err: io::Error) -> Errno {
    match err.raw_os_error() {
        Some(code) => Errno::from_i32(code),
        None => Errno::EIO,
    }
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::File => FileType::RegularFile,
        Kind::Directory => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
        Kind::CharDevice => FileType::CharDevice,
        Kind::BlockDevice => FileType::BlockDevice,
    }
}

fn system_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn file_attr(attr: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        // Blocks unknown (rows from before schema version 4): as many as the size fills.
        blocks: attr.blocks.unwrap_or_else(|| attr.size.div_ceil(512)),
        atime: system_time(attr.atime),
        mtime: system_time(attr.mtime),
        ctime: system_time(attr.ctime),
        crtime: system_time(attr.crtime),
        kind: file_type(attr.kind),
        perm: attr.perm,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: attr.rdev,
        blksize: 128 * 1024,
        flags: 0,
    }
}
