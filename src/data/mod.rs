//! The data store: where file contents live, behind one trait ([`DataStore`]) so the core
//! (`crate::vfs`) never depends on how. [`crate::cache::Cache`] (one local file per inode in
//! `CacheFolder`) implements it today (module `local`); the archive tier will add another layer.
//!
//! Whether an inode *should* have data here is not the store's business: that is the
//! inode's `data_state` in the catalog (`crate::meta::DataState`). The store only answers
//! "is it here" and gives access to it; the core decides what a missing file means.

mod custody;
mod local;
pub mod memory;

use std::io;
use std::path::Path;

pub use crate::cache::{Reserve, Space};
pub use custody::{cache_error, Binding, StartError, SweepOptions};

use crate::meta::MetaEngine;

/// The data of one inode, opened for reading and writing. Offsets are bytes from the start.
pub trait DataFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes up to `buf.len()` bytes at `offset`; returns how many were written.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// The data's length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the data is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Cuts or extends (with zeros) the data to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// 512-byte blocks the data occupies (holes take none).
    fn blocks(&self) -> io::Result<u64>;
    /// Makes the data durable (only the contents when `data_only`).
    fn sync(&self, data_only: bool) -> io::Result<()>;
    /// `fallocate(2)` with `mode` (0, `FALLOC_FL_KEEP_SIZE`, `FALLOC_FL_PUNCH_HOLE`,
    /// `FALLOC_FL_ZERO_RANGE`, as Linux combines them) on `len` bytes at `offset`.
    fn allocate(&self, mode: i32, offset: u64, len: u64) -> io::Result<()>;
}

/// Where the core keeps file contents. One data file per inode, made on the first write.
pub trait DataStore: Send + Sync {
    /// Opens the data of `ino` if it exists here (`None`: there is none).
    fn open(&self, ino: u64) -> io::Result<Option<Box<dyn DataFile>>>;

    /// Opens the data of `ino`, creating it empty if missing; the flag says whether this call
    /// created it (then its existence is durable only after [`DataStore::sync_entry`]).
    fn create(&self, ino: u64) -> io::Result<(Box<dyn DataFile>, bool)>;

    /// Deletes the data of `ino`; missing data is fine.
    fn remove(&self, ino: u64) -> io::Result<()>;

    /// Makes the existence of a data file [`DataStore::create`] made durable.
    fn sync_entry(&self, ino: u64) -> io::Result<()>;

    /// 512-byte blocks the data of `ino` occupies; 0 when it has none or it cannot be seen.
    fn blocks(&self, ino: u64) -> u64;

    /// Where the data of `ino` is, for log lines.
    fn describe(&self, ino: u64) -> String;

    /// Space on the store's file system.
    fn space(&self) -> io::Result<Space>;

    /// A reserve of `least` bytes that writes never take (CacheFreeLeastSize).
    fn reserve(&self, least: u64) -> Reserve;

    /// A local folder the core may keep its journal in (durable, the store's own).
    fn folder(&self) -> &Path;

    /// Start-up custody, before the journal is replayed: checks that the store belongs to
    /// `catalog` (see module `custody`). With `rebind` a store that is another catalog's is
    /// taken over ([`Binding::foreign`]): the core's `journal` there is set aside, and its
    /// data by [`DataStore::sweep`]. Otherwise nothing is changed. A store with no custody
    /// of its own accepts any catalog.
    fn bind(
        &self,
        catalog: &dyn MetaEngine,
        rebind: bool,
        journal: &Path,
    ) -> Result<Binding, StartError> {
        let _ = (catalog, rebind, journal);
        Ok(Binding::default())
    }

    /// Start-up custody, after the journal was replayed and orphans purged: sets aside data
    /// no inode owns or past its inode's size, then records the `binding` that
    /// [`DataStore::bind`] approved.
    fn sweep(
        &self,
        catalog: &dyn MetaEngine,
        binding: Binding,
        options: &SweepOptions,
    ) -> Result<(), StartError> {
        let _ = (catalog, binding, options);
        Ok(())
    }
}
