//! The metadata engine: inodes, directory entries, symlink targets, extended attributes and
//! the owner lease, behind one trait ([`MetaEngine`]) over neutral types ([`types`]), with
//! one error type ([`MetaError`]) whose variants say what a caller can do.
//!
//! [`memory::MemoryMeta`] holds a catalog in memory with the same semantics: the fake for
//! fast tests of the layers above (`tests/meta_conformance.rs` keeps the two in step).
//! [`mysql::MysqlMeta`] is the engine over MySQL/MariaDB (and MariaDB Galera). Every change
//! is one transaction; every statement is parameterised. Changes return the attributes of
//! every inode they touched ([`Changed`]), so the file system can keep what it serves in
//! step with the catalog.

mod error;
pub mod lease;
pub mod memory;
pub mod mysql;
pub mod types;

use std::time::Duration;

pub use error::MetaError;
pub use lease::OwnerFence;
pub use memory::MemoryMeta;
pub use types::*;

/// Where a catalog lives, for messages and the cache's identity record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogLocation {
    /// The database (schema) name.
    pub database: String,
    /// The server: `host:port` or a socket path.
    pub server: String,
}

/// The catalog of one file system: everything the file system knows about its inodes
/// except their data.
pub trait MetaEngine: Send + Sync {
    /// Creates or upgrades the schema; the root directory is owned by `uid`/`gid`. Returns
    /// the schema version now in place.
    fn migrate(&self, uid: u32, gid: u32) -> Result<u32, MetaError>;

    /// Where the catalog lives.
    fn location(&self) -> CatalogLocation;

    /// How long one operation waits for the database (`DatabaseTimeout`).
    fn timeout(&self) -> Duration;

    /// The attributes of `ino`.
    fn get_attr(&self, ino: u64) -> Result<Attr, MetaError>;

    /// The inode named `name` in directory `parent`.
    fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr, MetaError>;

    /// Creates `name` in `parent` as a new inode; `EEXIST` if the name is taken.
    ///
    /// The parent's times become the new inode's `ctime` and its link count grows by one
    /// for a directory.
    fn create(&self, parent: u64, name: &[u8], node: &NewNode<'_>) -> Result<Attr, MetaError>;

    /// Takes back a [`MetaEngine::create`] of a regular file its caller could not complete
    /// (its data file could not be made): removes `parent/name` if it still names `ino`, and
    /// the inode unless another name links it. Returns the parent's attributes, or `None`
    /// when the entry was already gone or names another inode (then nothing is changed).
    fn undo_create(&self, parent: u64, name: &[u8], ino: u64) -> Result<Option<Attr>, MetaError>;

    /// Adds a hard link `newname` in `newparent` to `ino`; directories give `EPERM`.
    fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> Result<Changed, MetaError>;

    /// Removes the entry `name` of `parent` (not a directory). The inode stays, with link
    /// count 0 when that was its last name, until [`MetaEngine::purge`].
    fn unlink(&self, parent: u64, name: &[u8]) -> Result<Changed, MetaError>;

    /// Removes the empty directory `name` of `parent`.
    fn rmdir(&self, parent: u64, name: &[u8]) -> Result<Changed, MetaError>;

    /// Renames `parent/name` to `newparent/newname`. A replaced target left with no links
    /// comes back in [`Changed::other`] with link count 0: the caller purges it once it is
    /// not open (a replaced directory is purged here).
    fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        mode: RenameMode,
    ) -> Result<Changed, MetaError>;

    /// Entries of directory `dir` after position `after`, at most `limit`, in order. A
    /// directory that does not exist (or is no directory) has none.
    fn read_dir(&self, dir: u64, after: u64, limit: usize) -> Result<Vec<DirEntry>, MetaError>;

    /// Like [`MetaEngine::read_dir`], with each entry's attributes (for readdirplus).
    fn read_dir_plus(
        &self,
        dir: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(DirEntry, Attr)>, MetaError>;

    /// The parent of directory `dir` (the root is its own parent).
    fn parent_of(&self, dir: u64) -> Result<u64, MetaError>;

    /// Writes changed attributes of `ino` and returns the result. The status change time
    /// never goes back (a late save of a write's time cannot undo a newer change).
    fn set_attr(&self, ino: u64, change: &AttrChange) -> Result<Attr, MetaError>;

    /// The target of symlink `ino`; `EINVAL` when `ino` is no symlink (or does not exist).
    fn read_link(&self, ino: u64) -> Result<Vec<u8>, MetaError>;

    /// Sets extended attribute `name` of `ino`; returns the inode's new attributes.
    ///
    /// `ENOSPC` when the inode's attributes would then take more than `max_total` bytes
    /// (names plus values, as ext4 counts its one block).
    fn set_xattr(
        &self,
        ino: u64,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
        max_total: usize,
    ) -> Result<Attr, MetaError>;

    /// The value of extended attribute `name` of `ino`; `ENODATA` if absent (also when the
    /// inode does not exist).
    fn get_xattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, MetaError>;

    /// The names of the extended attributes of `ino`.
    fn list_xattrs(&self, ino: u64) -> Result<Vec<Vec<u8>>, MetaError>;

    /// Whether any inode has an extended attribute called `name`.
    fn xattr_in_use(&self, name: &[u8]) -> Result<bool, MetaError>;

    /// Removes extended attribute `name` of `ino`; `ENODATA` if absent. Returns the inode's
    /// new attributes.
    fn remove_xattr(&self, ino: u64, name: &[u8]) -> Result<Attr, MetaError>;

    /// Inodes no directory entry names any more (left by a crash or by open-unlinked files).
    fn orphans(&self) -> Result<Vec<u64>, MetaError>;

    /// Which of `inos` have an inode row (pass a bounded batch).
    fn existing(&self, inos: &[u64]) -> Result<Vec<u64>, MetaError>;

    /// Kind and recorded size of those of `inos` that have an inode row (pass a bounded
    /// batch).
    fn sizes(&self, inos: &[u64]) -> Result<Vec<(u64, Kind, u64)>, MetaError>;

    /// The catalog's identity: a random token made when its schema was created, which a
    /// cache folder records to prove it belongs here.
    fn identity(&self) -> Result<String, MetaError>;

    /// How many regular files have data (a size above 0); stops counting at `limit`.
    fn files_with_data(&self, limit: u64) -> Result<u64, MetaError>;

    /// Deletes an inode with no links left, with its symlink target and attributes (its
    /// live archive copy becomes superseded); an inode that has links again is kept. `ENOENT` if it does not exist.
    fn purge(&self, ino: u64) -> Result<(), MetaError>;

    // ---- The archive tier (module `crate::tier`) ----

    /// One path naming `ino`, as bytes without the mount point, starting with `/`: at each
    /// level the entry made first (the lowest cookie) of those naming the inode, so a file
    /// with hard links is named by its oldest link. `ENOENT` when no entry names it.
    fn path_of(&self, ino: u64) -> Result<Vec<u8>, MetaError>;

    /// Regular files whose data is `Resident` (saved, not archived) and that have a name,
    /// with inode numbers above `after`, in inode order, at most `limit`: the candidates for
    /// migration. Served by an index, never a scan of all inodes.
    fn migration_candidates(&self, after: u64, limit: usize) -> Result<Vec<Attr>, MetaError>;

    /// Regular files whose data is `Archived` (local and in the archive), least recently
    /// accessed first (by `atime`, then inode), strictly after the position `after`
    /// (`(atime, ino)` of the last one seen), at most `limit`: the candidates for eviction.
    /// Served by an index, never a scan of all inodes.
    fn eviction_candidates(
        &self,
        after: Option<(i64, u64)>,
        limit: usize,
    ) -> Result<Vec<Attr>, MetaError>;

    /// Records `copy` as the current copy of its inode and makes the inode `Archived`, in
    /// one transaction, only if the inode is still `Resident` with the copy's size and
    /// modification time (the data copied is the data the catalog has); otherwise `EAGAIN`
    /// and nothing changes. Earlier live copies of the inode become superseded. Returns the
    /// inode's new attributes. `EEXIST` (nothing changes) when the volume already has a copy
    /// numbered `copy.seq`; `ENAMETOOLONG` for a volume label over [`VOLUME_MAX`] bytes.
    fn record_copy(&self, copy: &ArchiveCopy) -> Result<Attr, MetaError>;

    /// Makes `ino` `Released` (its local data may then be dropped) only if it is still
    /// `Archived` with modification time `mtime` and has a live copy; otherwise `EAGAIN`
    /// and nothing changes. Returns the new attributes.
    fn release(&self, ino: u64, mtime: i64) -> Result<Attr, MetaError>;

    /// Makes a `Released` or `Damaged` inode `Archived` again (its data was recalled and
    /// verified); `EAGAIN` in any other state. Returns the new attributes.
    fn recalled(&self, ino: u64) -> Result<Attr, MetaError>;

    /// Makes a `Released` inode `Damaged` (its copy could not be read back or did not
    /// match); `EAGAIN` in any other state. Returns the new attributes.
    fn mark_damaged(&self, ino: u64) -> Result<Attr, MetaError>;

    /// The live copy of `ino`, if it has one.
    fn live_copy(&self, ino: u64) -> Result<Option<ArchiveCopy>, MetaError>;

    /// Live copies on `volume` after sequence number `after`, in sequence order, at most
    /// `limit`, whose inodes are `Released`: what a recall may pre-read.
    fn released_after(
        &self,
        volume: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ArchiveCopy>, MetaError>;

    /// Copies superseded before `before_ns` (a newer copy was recorded, or the inode was
    /// purged), oldest first, at most `limit`: what clean-up may delete from the volumes.
    fn superseded_copies(
        &self,
        before_ns: i64,
        limit: usize,
    ) -> Result<Vec<ArchiveCopy>, MetaError>;

    /// How many copies are superseded.
    fn superseded_count(&self) -> Result<u64, MetaError>;

    /// Forgets superseded copy `seq` of `volume` once clean-up deleted it; a live copy is
    /// never forgotten (`EBUSY`). Forgetting a copy not recorded is fine.
    fn forget_copy(&self, volume: &str, seq: u64) -> Result<(), MetaError>;

    /// Files and bytes per data state of regular files (for the tier's status).
    fn state_totals(&self) -> Result<Vec<StateTotal>, MetaError>;
}
