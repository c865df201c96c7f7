//! The FUSE file system: maps kernel requests to catalog (MySQL) and cache (local files).
//!
//! Metadata operations are one catalog transaction each; reads and writes go straight to the
//! inode's cache file. Sizes and times from writes reach the catalog on flush, fsync,
//! release and a one-second timer. A database failure is `EIO`; a full cache is `ENOSPC`.

mod inodes;
mod mount;

pub use mount::{lazy_unmount, mount_config, Mounted};

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow, WriteFlags,
};
use parking_lot::{Condvar, Mutex};

use crate::cache::Cache;
use crate::catalog::{
    now_ns, system_time_ns, Attr, Catalog, CatalogError, Kind, NewNode, RenameMode, XattrMode,
    NAME_MAX,
};
use inodes::Inodes;

/// How long the kernel may cache entries and attributes. The mounted server is the only
/// writer of its catalog, and every change it makes is reported to the kernel in the reply,
/// so the kernel's cache stays right for much longer than a second.
const TTL: Duration = Duration::from_secs(30);
/// How often unsaved sizes and times are written to the catalog.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Directory entries fetched from the catalog per round trip.
const READDIR_BATCH: usize = 512;
/// Largest single write and read-ahead the kernel is asked for.
const MAX_IO: u32 = 1 << 20;

/// The file system; hand it to [`Mounted::spawn`] or `fuser::mount`.
pub struct VsFs {
    shared: Arc<Shared>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    catalog: Catalog,
    cache: Cache,
    inodes: Inodes,
    handles: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_handle: AtomicU64,
    stop: Mutex<bool>,
    wake: Condvar,
}

struct OpenFile {
    ino: u64,
    file: File,
}

impl VsFs {
    /// Migrates the catalog, reclaims inodes left unlinked by a crash, and starts the
    /// timer that saves sizes and times. The root directory is owned by the caller.
    pub fn new(catalog: Catalog, cache: Cache) -> Result<VsFs, CatalogError> {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        catalog.migrate(uid, gid)?;
        for ino in catalog.orphans()? {
            catalog.purge(ino)?;
            if let Err(err) = cache.remove(ino) {
                log::warn!("cannot remove cache data of orphan inode {ino}: {err}");
            }
            log::info!("reclaimed unlinked inode {ino}");
        }
        let shared = Arc::new(Shared {
            catalog,
            cache,
            inodes: Inodes::default(),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let flusher = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("vs-fs-flush".into())
                .spawn(move || shared.flush_loop())
                .map_err(|e| CatalogError::Database(format!("cannot start flush thread: {e}")))?
        };
        Ok(VsFs {
            shared,
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

impl FsStatsHandle {
    /// Saves every unsaved size and time now (used when shutting down).
    pub fn flush(&self) {
        self.0.flush_dirty();
    }

    /// The current counters.
    pub fn snapshot(&self) -> FsStats {
        FsStats {
            open_handles: self.0.handles.lock().len(),
            unsaved_inodes: self.0.inodes.dirty_inodes().len(),
        }
    }
}

impl Drop for VsFs {
    fn drop(&mut self) {
        *self.shared.stop.lock() = true;
        self.shared.wake.notify_all();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        self.shared.flush_dirty();
    }
}

impl Shared {
    fn flush_loop(&self) {
        let mut stop = self.stop.lock();
        while !*stop {
            self.wake.wait_for(&mut stop, FLUSH_INTERVAL);
            if *stop {
                break;
            }
            parking_lot::MutexGuard::unlocked(&mut stop, || self.flush_dirty());
        }
    }

    fn flush_dirty(&self) {
        for ino in self.inodes.dirty_inodes() {
            if let Err(err) = self.save(ino) {
                log::warn!("cannot save size and times of inode {ino}: {err}");
            }
        }
    }

    /// Writes unsaved size and times of `ino` to the catalog.
    fn save(&self, ino: u64) -> Result<(), CatalogError> {
        let Some(change) = self.inodes.take_dirty(ino) else {
            return Ok(());
        };
        match self.catalog.set_attr(ino, &change) {
            Ok(_) => Ok(()),
            Err(CatalogError::Errno(libc::ENOENT)) => Ok(()), // deleted meanwhile
            Err(err) => {
                self.inodes.mark_dirty(ino);
                Err(err)
            }
        }
    }

    fn attr(&self, ino: u64) -> Result<Attr, CatalogError> {
        match self.inodes.get(ino) {
            Some(attr) => Ok(attr),
            None => Ok(self.inodes.remember(self.catalog.get_attr(ino)?)),
        }
    }

    /// Deletes an inode with no links once nothing has it open.
    fn reclaim_if_unused(&self, ino: u64) {
        if self.inodes.open_count(ino) > 0 {
            return;
        }
        match self.catalog.purge(ino) {
            Ok(()) => {
                self.inodes.remove(ino);
                if let Err(err) = self.cache.remove(ino) {
                    log::warn!("cannot remove cache data of inode {ino}: {err}");
                }
            }
            // Left for the next start to reclaim.
            Err(err) => log::warn!("cannot reclaim inode {ino}: {err}"),
        }
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<OpenFile>, Errno> {
        self.handles.lock().get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    fn open_handle(&self, attr: Attr) -> Result<u64, Errno> {
        let file = self.cache.open_data(attr.ino).map_err(io_errno)?;
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.inodes.opened(attr);
        self.handles.lock().insert(
            fh,
            Arc::new(OpenFile {
                ino: attr.ino,
                file,
            }),
        );
        Ok(fh)
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
        self.inodes.invalidate(parent.0);
        Ok(self.inodes.remember(attr))
    }
}

/// A node owned by the caller of `req`.
fn new_node<'a>(
    req: &Request,
    kind: Kind,
    perm: u16,
    rdev: u32,
    target: Option<&'a [u8]>,
) -> NewNode<'a> {
    NewNode {
        kind,
        perm,
        uid: req.uid(),
        gid: req.gid(),
        rdev,
        target,
    }
}

impl Filesystem for VsFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let _ = config.set_max_write(MAX_IO);
        let _ = config.set_max_readahead(MAX_IO);
        let _ = config.add_capabilities(
            fuser::InitFlags::FUSE_DO_READDIRPLUS | fuser::InitFlags::FUSE_READDIRPLUS_AUTO,
        );
        Ok(())
    }

    fn destroy(&mut self) {
        self.shared.flush_dirty();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.shared.catalog.lookup(parent.0, name.as_bytes()) {
            Ok(attr) => {
                let attr = self.shared.inodes.remember(attr);
                reply.entry(&TTL, &file_attr(&attr), Generation(0));
            }
            Err(err) => reply.error(catalog_errno(err)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, _nlookup: u64) {
        self.shared.inodes.forget(ino.0);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.shared.attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(err) => reply.error(catalog_errno(err)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
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
        let shared = &self.shared;
        let result = (|| {
            let now = now_ns();
            // Unsaved size and times from writes go into the same update.
            let mut change = shared.inodes.take_dirty(ino.0).unwrap_or_default();
            change.ctime = Some(now);
            if let Some(mode) = mode {
                change.perm = Some((mode & 0o7777) as u16);
            }
            change.uid = uid.or(change.uid);
            change.gid = gid.or(change.gid);
            if let Some(size) = size {
                let attr = shared.attr(ino.0).map_err(catalog_errno)?;
                if attr.kind == Kind::Directory {
                    return Err(Errno::EISDIR);
                }
                match fh.and_then(|fh| shared.handle(fh).ok()) {
                    Some(open) => open.file.set_len(size),
                    None => shared.cache.set_len(ino.0, size),
                }
                .map_err(io_errno)?;
                change.size = Some(size);
                if mtime.is_none() {
                    change.mtime = Some(now);
                }
            }
            let to_ns = |t: TimeOrNow| match t {
                TimeOrNow::Now => now,
                TimeOrNow::SpecificTime(t) => system_time_ns(t),
            };
            if let Some(atime) = atime {
                change.atime = Some(to_ns(atime));
            }
            if let Some(mtime) = mtime {
                change.mtime = Some(to_ns(mtime));
            }
            let attr = shared.catalog.set_attr(ino.0, &change);
            let attr = attr.inspect_err(|_| shared.inodes.mark_dirty(ino.0));
            Ok(shared.inodes.remember(attr.map_err(catalog_errno)?))
        })();
        match result {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(errno) => reply.error(errno),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.shared.catalog.read_link(ino.0) {
            Ok(target) => reply.data(&target),
            Err(err) => reply.error(catalog_errno(err)),
        }
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
        let kind = match mode & libc::S_IFMT {
            libc::S_IFREG | 0 => Kind::File,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFSOCK => Kind::Socket,
            libc::S_IFCHR => Kind::CharDevice,
            libc::S_IFBLK => Kind::BlockDevice,
            _ => return reply.error(Errno::EINVAL),
        };
        let perm = (mode & !umask & 0o7777) as u16;
        match self
            .shared
            .create_node(parent, name, &new_node(req, kind, perm, rdev, None))
        {
            Ok(attr) => reply.entry(&TTL, &file_attr(&attr), Generation(0)),
            Err(errno) => reply.error(errno),
        }
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
        let perm = (mode & !umask & 0o7777) as u16;
        match self
            .shared
            .create_node(parent, name, &new_node(req, Kind::Directory, perm, 0, None))
        {
            Ok(attr) => reply.entry(&TTL, &file_attr(&attr), Generation(0)),
            Err(errno) => reply.error(errno),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let shared = &self.shared;
        match shared.catalog.unlink(parent.0, name.as_bytes()) {
            Ok(attr) => {
                shared.inodes.invalidate(parent.0);
                shared.inodes.remember(attr);
                if attr.nlink == 0 {
                    shared.reclaim_if_unused(attr.ino);
                }
                reply.ok();
            }
            Err(err) => reply.error(catalog_errno(err)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.shared.catalog.rmdir(parent.0, name.as_bytes()) {
            Ok(()) => {
                self.shared.inodes.invalidate(parent.0);
                reply.ok();
            }
            Err(err) => reply.error(catalog_errno(err)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let target = target.as_os_str().as_bytes();
        let node = new_node(req, Kind::Symlink, 0o777, 0, Some(target));
        match self.shared.create_node(parent, link_name, &node) {
            Ok(attr) => reply.entry(&TTL, &file_attr(&attr), Generation(0)),
            Err(errno) => reply.error(errno),
        }
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
        let mode = if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            RenameMode::Exchange
        } else if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            RenameMode::NoReplace
        } else if flags.is_empty() {
            RenameMode::Replace
        } else {
            return reply.error(Errno::EINVAL);
        };
        let shared = &self.shared;
        match shared.catalog.rename(
            parent.0,
            name.as_bytes(),
            newparent.0,
            newname.as_bytes(),
            mode,
        ) {
            Ok(orphan) => {
                shared.inodes.invalidate(parent.0);
                shared.inodes.invalidate(newparent.0);
                if let Some(ino) = orphan {
                    if let Ok(attr) = shared.catalog.get_attr(ino) {
                        shared.inodes.remember(attr);
                    }
                    shared.reclaim_if_unused(ino);
                }
                reply.ok();
            }
            Err(err) => reply.error(catalog_errno(err)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let shared = &self.shared;
        match shared.catalog.link(ino.0, newparent.0, newname.as_bytes()) {
            Ok(attr) => {
                shared.inodes.invalidate(newparent.0);
                let attr = shared.inodes.remember(attr);
                reply.entry(&TTL, &file_attr(&attr), Generation(0));
            }
            Err(err) => reply.error(catalog_errno(err)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let shared = &self.shared;
        let result = shared
            .attr(ino.0)
            .map_err(catalog_errno)
            .and_then(|attr| match attr.kind {
                Kind::File => shared.open_handle(attr),
                Kind::Directory => Err(Errno::EISDIR),
                _ => Err(Errno::ENXIO),
            });
        match result {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
            Err(errno) => reply.error(errno),
        }
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
        let mut buf = vec![0u8; size.min(MAX_IO) as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match open
                .file
                .read_at(&mut buf[filled..], offset + filled as u64)
            {
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
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let open = match self.shared.handle(fh) {
            Ok(open) => open,
            Err(errno) => return reply.error(errno),
        };
        match open.file.write_all_at(data, offset) {
            Ok(()) => {
                let end = offset.saturating_add(data.len() as u64);
                self.shared.inodes.wrote(open.ino, end, now_ns());
                reply.written(data.len() as u32);
            }
            Err(err) => reply.error(io_errno(err)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        match self.shared.save(ino.0) {
            Ok(()) => reply.ok(),
            Err(err) => reply.error(catalog_errno(err)),
        }
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
        let shared = &self.shared;
        shared.handles.lock().remove(&fh.0);
        let saved = shared.save(ino.0);
        let (still_open, nlink) = shared.inodes.released(ino.0);
        if still_open == 0 && nlink == 0 {
            shared.reclaim_if_unused(ino.0);
        }
        match saved {
            Ok(()) => reply.ok(),
            Err(err) => reply.error(catalog_errno(err)),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let shared = &self.shared;
        let result = shared.handle(fh).and_then(|open| {
            let synced = if datasync {
                open.file.sync_data()
            } else {
                open.file.sync_all()
            };
            synced.map_err(io_errno)
        });
        let result = result.and_then(|()| shared.save(ino.0).map_err(catalog_errno));
        match result {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.shared.attr(ino.0) {
            Ok(attr) if attr.kind == Kind::Directory => {
                reply.opened(FileHandle(0), FopenFlags::empty())
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(err) => reply.error(catalog_errno(err)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        // Offsets: 1 is ".", 2 is "..", then each entry's cookie + 2 (stable, increasing).
        let catalog = &self.shared.catalog;
        if offset < 1 && reply.add(ino, 1, FileType::Directory, ".") {
            return reply.ok();
        }
        if offset < 2 {
            let parent = match catalog.parent_of(ino.0) {
                Ok(parent) => parent,
                Err(err) => return reply.error(catalog_errno(err)),
            };
            if reply.add(INodeNo(parent), 2, FileType::Directory, "..") {
                return reply.ok();
            }
        }
        let mut after = offset.saturating_sub(2);
        loop {
            let entries = match catalog.read_dir(ino.0, after, READDIR_BATCH) {
                Ok(entries) => entries,
                Err(err) => return reply.error(catalog_errno(err)),
            };
            let exhausted = entries.len() < READDIR_BATCH;
            for entry in entries {
                let name = OsStr::from_bytes(&entry.name);
                if reply.add(
                    INodeNo(entry.ino),
                    entry.cookie + 2,
                    file_type(entry.kind),
                    name,
                ) {
                    return reply.ok();
                }
                after = entry.cookie;
            }
            if exhausted {
                return reply.ok();
            }
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: fuser::ReplyDirectoryPlus,
    ) {
        // Same offsets as readdir; each entry carries its attributes, saving a lookup.
        let shared = &self.shared;
        if offset < 2 {
            let dots = shared.attr(ino.0).and_then(|dir| {
                let parent = shared.catalog.parent_of(ino.0)?;
                Ok((dir, shared.attr(parent)?))
            });
            let (dir, parent) = match dots {
                Ok(dots) => dots,
                Err(err) => return reply.error(catalog_errno(err)),
            };
            if offset < 1 && reply.add(ino, 1, ".", &TTL, &file_attr(&dir), Generation(0)) {
                return reply.ok();
            }
            let parent_ino = INodeNo(parent.ino);
            if reply.add(
                parent_ino,
                2,
                "..",
                &TTL,
                &file_attr(&parent),
                Generation(0),
            ) {
                return reply.ok();
            }
        }
        let mut after = offset.saturating_sub(2);
        loop {
            let entries = match shared.catalog.read_dir_plus(ino.0, after, READDIR_BATCH) {
                Ok(entries) => entries,
                Err(err) => return reply.error(catalog_errno(err)),
            };
            let exhausted = entries.len() < READDIR_BATCH;
            for (entry, attr) in entries {
                let attr = shared.inodes.remember(attr);
                let name = OsStr::from_bytes(&entry.name);
                let offset = entry.cookie + 2;
                if reply.add(
                    INodeNo(entry.ino),
                    offset,
                    name,
                    &TTL,
                    &file_attr(&attr),
                    Generation(0),
                ) {
                    return reply.ok();
                }
                after = entry.cookie;
            }
            if exhausted {
                return reply.ok();
            }
        }
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
                space.blocks_available,
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
        if position != 0 {
            return reply.error(Errno::EINVAL);
        }
        let mode = match flags {
            0 => XattrMode::Any,
            libc::XATTR_CREATE => XattrMode::Create,
            libc::XATTR_REPLACE => XattrMode::Replace,
            _ => return reply.error(Errno::EINVAL),
        };
        match self
            .shared
            .catalog
            .set_xattr(ino.0, name.as_bytes(), value, mode)
        {
            Ok(()) => {
                self.shared.inodes.invalidate(ino.0);
                reply.ok()
            }
            Err(err) => reply.error(catalog_errno(err)),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.shared.catalog.get_xattr(ino.0, name.as_bytes()) {
            Ok(value) => reply_sized(reply, size, &value),
            Err(err) => reply.error(catalog_errno(err)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.shared.catalog.list_xattrs(ino.0) {
            Ok(names) => {
                let mut list = Vec::new();
                for name in names {
                    list.extend_from_slice(&name);
                    list.push(0);
                }
                reply_sized(reply, size, &list);
            }
            Err(err) => reply.error(catalog_errno(err)),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.shared.catalog.remove_xattr(ino.0, name.as_bytes()) {
            Ok(()) => {
                self.shared.inodes.invalidate(ino.0);
                reply.ok()
            }
            Err(err) => reply.error(catalog_errno(err)),
        }
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.shared.attr(ino.0) {
            Ok(attr) if permitted(&attr, req.uid(), req.gid(), mask) => reply.ok(),
            Ok(_) => reply.error(Errno::EACCES),
            Err(err) => reply.error(catalog_errno(err)),
        }
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
        let shared = &self.shared;
        let perm = (mode & !umask & 0o7777) as u16;
        let result = shared
            .create_node(parent, name, &new_node(req, Kind::File, perm, 0, None))
            .and_then(|attr| Ok((attr, shared.open_handle(attr)?)));
        match result {
            Ok((attr, fh)) => reply.created(
                &TTL,
                &file_attr(&attr),
                Generation(0),
                FileHandle(fh),
                FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Err(errno) => reply.error(errno),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let shared = &self.shared;
        let result = shared.handle(fh).and_then(|open| {
            let (Ok(off), Ok(len)) = (i64::try_from(offset), i64::try_from(length)) else {
                return Err(Errno::EFBIG);
            };
            // SAFETY: the descriptor belongs to the open cache file.
            if unsafe { libc::fallocate(open.file.as_raw_fd(), mode, off, len) } != 0 {
                return Err(io_errno(io::Error::last_os_error()));
            }
            if mode == 0 {
                shared
                    .inodes
                    .wrote(ino.0, offset.saturating_add(length), now_ns());
            }
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }
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

/// Classic Unix permission check for `access(2)`.
fn permitted(attr: &Attr, uid: u32, gid: u32, mask: AccessFlags) -> bool {
    let wanted = mask.bits() & 0o7;
    if wanted == 0 || uid == 0 {
        return true;
    }
    let bits = if uid == attr.uid {
        (attr.perm >> 6) & 0o7
    } else if gid == attr.gid {
        (attr.perm >> 3) & 0o7
    } else {
        attr.perm & 0o7
    };
    i32::from(bits) & wanted == wanted
}

fn catalog_errno(err: CatalogError) -> Errno {
    match err {
        CatalogError::Errno(code) => Errno::from_i32(code),
        CatalogError::Database(message) | CatalogError::Unreachable(message) => {
            log::warn!("catalog unavailable: {message}");
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
        blocks: attr.size.div_ceil(512),
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
