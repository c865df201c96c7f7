//! The FUSE adapter: translates kernel requests (`fuser`) into calls of the core
//! ([`crate::vfs`]) and its answers into replies. No rules live here: permissions are
//! checked by the kernel (`default_permissions`), everything else by the core.
//!
//! Requests that may wait for the catalog run on the core's catalog threads
//! ([`Vfs::offload`]); reads, writes, `fallocate`, `statfs` and `getattr` of an inode the
//! core tracks (an open file) are answered on the FUSE thread and never wait for the
//! database.

mod closing;
mod convert;
mod mount;
mod requests;

pub use crate::vfs::{FsOptions, FsStats, StartError, Unsaved};
pub use mount::{lazy_unmount, mount_config, Mounted};

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use fuser::INodeNo;
use parking_lot::Mutex;

use crate::cache::Cache;
use crate::data::DataStore;
use crate::meta::MetaEngine;
use crate::vfs::{Core, Vfs, VfsError};
use closing::Closing;
use convert::{errno, Done, Fail};

/// The file system; hand it to [`Mounted::spawn`] or `fuser::mount`.
pub struct VsFs {
    vfs: Vfs,
    /// Tells the kernel about changes not made through a reply (set once mounted).
    notifier: Arc<OnceLock<fuser::Notifier>>,
    /// Closes being answered, which a stop waits for.
    closing: Arc<Closing>,
}

impl VsFs {
    /// [`VsFs::with_options`] with the default options.
    pub fn new(catalog: Arc<dyn MetaEngine>, cache: Cache) -> Result<VsFs, StartError> {
        VsFs::with_options(catalog, cache, FsOptions::default())
    }

    /// Starts the core over `catalog` and the cache folder `cache` (start-up recovery runs
    /// first; see [`crate::vfs`]).
    pub fn with_options(
        catalog: Arc<dyn MetaEngine>,
        cache: Cache,
        options: FsOptions,
    ) -> Result<VsFs, StartError> {
        VsFs::with_store(catalog, Arc::new(cache), options)
    }

    /// Starts the core over `catalog` and any data store.
    pub fn with_store(
        catalog: Arc<dyn MetaEngine>,
        store: Arc<dyn DataStore>,
        options: FsOptions,
    ) -> Result<VsFs, StartError> {
        let vfs = Vfs::start(catalog, store, options)?;
        let notifier: Arc<OnceLock<fuser::Notifier>> = Arc::default();
        if let Some(tier) = vfs.core().tier() {
            // Released data leaves the kernel's page cache too: reads then recall.
            let notifier = Arc::clone(&notifier);
            tier.on_release(Box::new(move |ino| {
                if let Some(notifier) = notifier.get() {
                    let _ = notifier.inval_inode(INodeNo(ino), 0, 0);
                }
            }));
        }
        Ok(VsFs {
            vfs,
            notifier,
            closing: Arc::default(),
        })
    }

    /// Saves every unsaved size and time now.
    pub fn flush_all(&self) {
        self.vfs.core().flush_dirty();
    }

    /// A handle for reading statistics after the file system has been handed to a session.
    pub fn stats_handle(&self) -> FsStatsHandle {
        FsStatsHandle {
            core: Arc::clone(self.vfs.core()),
            notifier: Arc::clone(&self.notifier),
            closing: Arc::clone(&self.closing),
        }
    }

    fn core(&self) -> &Core {
        self.vfs.core()
    }

    /// Runs `work` on a catalog thread and replies with `answer` of its result; an error
    /// (or a panic in `work`) is replied as its errno.
    fn offload<R: Fail + Send + 'static, T: 'static>(
        &self,
        reply: R,
        work: impl FnOnce(&Core) -> Result<T, VfsError> + Send + 'static,
        answer: impl FnOnce(R, T) + Send + 'static,
    ) {
        self.vfs.offload(work, move |result| match result {
            Ok(value) => answer(reply, value),
            Err(err) => reply.fail(errno(err)),
        });
    }

    /// Runs `fill` on a catalog thread with `reply` to fill (a listing), then sends it, or
    /// the error (also if `fill` panicked: the reply is shared with the answer).
    fn offload_filling<R: Done + Send + 'static>(
        &self,
        reply: R,
        fill: impl FnOnce(&Core, &mut R) -> Result<(), VfsError> + Send + 'static,
    ) {
        let filled = Arc::new(Mutex::new(Some(reply)));
        let sent = Arc::clone(&filled);
        self.vfs.offload(
            move |core| match filled.lock().as_mut() {
                Some(reply) => fill(core, reply),
                None => Ok(()),
            },
            move |result| {
                if let Some(reply) = sent.lock().take() {
                    match result {
                        Ok(()) => reply.done(),
                        Err(err) => reply.fail(errno(err)),
                    }
                }
            },
        );
    }

    /// Reclaims `ino` on a catalog thread, however long that waits.
    fn reclaim_later(&self, ino: u64) {
        let reclaim = move |core: &Core| {
            core.reclaim(ino);
            Ok(())
        };
        self.vfs.offload_always(reclaim, |_| {});
    }

    /// Makes the kernel fetch the attributes of `ino` again before it next uses them (a
    /// write's reply carries no mode, so a mode kill-priv changed must be dropped).
    fn invalidate_attr(notifier: &OnceLock<fuser::Notifier>, ino: u64) {
        if let Some(notifier) = notifier.get() {
            if let Err(err) = notifier.inval_inode(INodeNo(ino), -1, 0) {
                log::warn!("cannot invalidate the kernel's attributes of inode {ino}: {err}");
            }
        }
    }
}

/// Reads [`FsStats`] of a mounted file system.
#[derive(Clone)]
pub struct FsStatsHandle {
    core: Arc<Core>,
    notifier: Arc<OnceLock<fuser::Notifier>>,
    closing: Arc<Closing>,
}

impl FsStatsHandle {
    /// Gives the file system the session's channel for telling the kernel about changes it
    /// makes on its own (set-user-ID cleared by a write); call once the session exists.
    pub fn set_notifier(&self, notifier: fuser::Notifier) {
        let _ = self.notifier.set(notifier);
    }

    /// Waits until every file and directory the kernel opened has been closed and its close
    /// answered, or until `deadline` (files held open by processes are never closed before
    /// the unmount); returns whether all were. A stop calls it before unmounting, so that
    /// the answer to a close made just before is not refused by a connection already gone.
    pub fn await_closed(&self, deadline: Instant) -> bool {
        self.closing
            .wait(deadline, || self.core.open_handles_and_dirs() == 0)
    }

    /// The archive tier's statistics line, if there is a tier.
    pub fn tier_summary(&self) -> Option<String> {
        self.core.tier().map(|tier| tier.summary())
    }

    /// The archive tier, if there is one (for the admin socket).
    pub fn tier(&self) -> Option<Arc<crate::tier::Tier>> {
        self.core.tier().cloned()
    }

    /// Saves every unsaved size and time now (used when shutting down).
    pub fn flush(&self) {
        self.core.flush_dirty();
    }

    /// Last save once nothing can change any more (after the session ended): saves what
    /// is unsaved; what the catalog cannot take stays in the journal (fsynced) and is
    /// returned, so the caller can report it and must not report success.
    pub fn finish(&self) -> Result<(), Unsaved> {
        self.core.finish()
    }

    /// The current counters.
    pub fn snapshot(&self) -> FsStats {
        self.core.stats()
    }
}
