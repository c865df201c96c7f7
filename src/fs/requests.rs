//! Each kernel request as calls of the core: arguments translated in, answers (or errnos)
//! translated out. Requests that may wait for the catalog go through [`VsFs::offload`].

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use super::convert::{self, errno, file_attr, file_type, reply_sized, to_ns};
use super::VsFs;
use crate::meta::{now_ns, AttrChange, Kind, NewNode, XattrMode, NAME_MAX};
use crate::vfs::{known_xattr_namespace, Caller, Core, MAX_IO, TTL};

/// A node owned by the requester of `req`.
fn new_node<'a>(
    req: (u32, u32),
    kind: Kind,
    perm: u16,
    rdev: u32,
    target: Option<&'a [u8]>,
) -> NewNode<'a> {
    NewNode {
        kind,
        perm,
        uid: req.0,
        gid: req.1,
        rdev,
        target,
    }
}

/// Whether open `flags` allow writing.
fn writes(flags: i32) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY
}

impl Filesystem for VsFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let _ = config.set_max_write(MAX_IO);
        let _ = config.set_max_readahead(MAX_IO);
        let _ = config.add_capabilities(
            fuser::InitFlags::FUSE_DO_READDIRPLUS | fuser::InitFlags::FUSE_READDIRPLUS_AUTO,
        );
        // Clearing set-user-ID and set-group-ID on write, truncate and chown is done by the
        // core (module `vfs::killpriv`), by Linux's rules; the kernel's FUSE fallback keeps
        // set-group-ID on files without group-execute. File capabilities are still removed
        // by the kernel.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_HANDLE_KILLPRIV);
        Ok(())
    }

    fn destroy(&mut self) {
        self.vfs.shutdown();
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        // In memory: an inode unlinked while the kernel held it is reclaimed now.
        if self.core().forget(ino.0, nlookup) {
            self.reclaim_later(ino.0);
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.as_bytes().to_vec();
        self.offload(
            reply,
            move |core| core.lookup(parent.0, &name),
            |reply, attr| reply.entry(&TTL, &file_attr(&attr), Generation(0)),
        );
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        if let Some(attr) = self.core().cached_attr(ino.0, fh.map(|fh| fh.0)) {
            return reply.attr(&TTL, &file_attr(&attr));
        }
        self.offload(
            reply,
            move |core| core.getattr(ino.0),
            |reply, attr| reply.attr(&TTL, &file_attr(&attr)),
        );
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
        let now = now_ns();
        let change = AttrChange {
            perm: mode.map(|mode| (mode & 0o7777) as u16),
            uid,
            gid,
            size,
            atime: atime.map(|t| to_ns(t, now)),
            mtime: mtime.map(|t| to_ns(t, now)),
            ctime: Some(now),
            blocks: None,
            data_state: None,
        };
        let (uid, gid, pid) = (req.uid(), req.gid(), req.pid());
        self.offload(
            reply,
            move |core| {
                let caller = || Caller::of_request(uid, gid, pid);
                core.setattr(ino.0, fh.map(|fh| fh.0), change, now, caller)
            },
            |reply, attr| reply.attr(&TTL, &file_attr(&attr)),
        );
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.offload(
            reply,
            move |core| core.read_link(ino.0),
            |reply, target| reply.data(&target),
        );
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
        self.make(req, parent, name, kind, perm, rdev, None, reply);
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
        self.make(req, parent, name, Kind::Directory, perm, 0, None, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.as_bytes().to_vec();
        self.offload(
            reply,
            move |core| core.unlink(parent.0, &name),
            |reply, ()| reply.ok(),
        );
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.as_bytes().to_vec();
        self.offload(
            reply,
            move |core| core.rmdir(parent.0, &name),
            |reply, ()| reply.ok(),
        );
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let target = target.as_os_str().as_bytes().to_vec();
        self.make(
            req,
            parent,
            link_name,
            Kind::Symlink,
            0o777,
            0,
            Some(target),
            reply,
        );
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
        let Some(mode) = convert::rename_mode(flags) else {
            return reply.error(Errno::EINVAL);
        };
        let (name, newname) = (name.as_bytes().to_vec(), newname.as_bytes().to_vec());
        self.offload(
            reply,
            move |core| core.rename(parent.0, &name, newparent.0, &newname, mode),
            |reply, ()| reply.ok(),
        );
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let newname = newname.as_bytes().to_vec();
        self.offload(
            reply,
            move |core| core.link(ino.0, newparent.0, &newname),
            |reply, attr| reply.entry(&TTL, &file_attr(&attr), Generation(0)),
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = writes(flags.0);
        let core = Arc::clone(self.vfs.core());
        self.offload(
            reply,
            move |core| core.open_file(ino.0, write),
            move |reply, (fh, recall)| match recall {
                // A writer of a released file is answered once its data is back (from the
                // recall's thread: no FUSE or catalog thread waits for the volume).
                Some(recall) if write => recall.when_done(Box::new(move |recalled| {
                    if recalled {
                        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
                    } else {
                        core.abandon_open(ino.0, fh);
                        reply.error(Errno::EIO);
                    }
                })),
                _ => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
            },
        );
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
        // A range still being recalled is answered from the recall's thread when it is
        // local; everything else here and now.
        self.vfs
            .core()
            .read_when_local(fh.0, offset, size, move |result| match result {
                Ok(data) => reply.data(&data),
                Err(err) => reply.error(errno(err)),
            });
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
        let (uid, gid, pid) = (req.uid(), req.gid(), req.pid());
        let caller = || Caller::of_request(uid, gid, pid);
        let plan = match self.core().plan_write(fh.0, offset, data.len(), caller) {
            Ok(plan) => plan,
            Err(err) => return reply.error(errno(err)),
        };
        let data = &data[..plan.len];
        // A set-user-ID or set-group-ID bit to clear first (rare): that needs the catalog.
        if let Some(perm) = plan.clear_setid {
            let (data, notifier) = (data.to_vec(), Arc::clone(&self.notifier));
            return self.offload(
                reply,
                move |core| {
                    core.set_perm(plan.ino, perm)?;
                    VsFs::invalidate_attr(&notifier, plan.ino);
                    core.write_admitted(fh.0, offset, &data)
                },
                |reply, written| reply.written(written as u32),
            );
        }
        match self.core().write_admitted(fh.0, offset, data) {
            Ok(written) => reply.written(written as u32),
            Err(err) => reply.error(errno(err)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing for the catalog: answered here without a thread hop.
        if self.core().flush_without_catalog(ino.0, fh.0) {
            return reply.ok();
        }
        let flush = move |core: &Core| core.flush(ino.0, fh.0);
        self.offload(reply, flush, |reply, ()| reply.ok());
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
        let answering = self.closing.begin();
        // With nothing for the catalog to do (unless the last handle of an unlinked file
        // goes): answered here, without a thread hop.
        if let Some(reclaim) = self.core().release_without_catalog(ino.0, fh.0) {
            if reclaim {
                self.reclaim_later(ino.0);
            }
            reply.ok();
            drop(answering);
            return;
        }
        // However long it waited: the handle must be closed whatever happens.
        self.vfs.offload_always(
            move |core| core.release(ino.0, fh.0),
            move |result| {
                match result {
                    Ok(()) => reply.ok(),
                    Err(err) => reply.error(errno(err)),
                }
                drop(answering);
            },
        );
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.offload(
            reply,
            move |core| core.fsync(fh.0, datasync),
            |reply, ()| reply.ok(),
        );
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.offload(
            reply,
            move |core| core.opendir(ino.0),
            |reply, fh| reply.opened(FileHandle(fh), FopenFlags::empty()),
        );
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let answering = self.closing.begin();
        self.core().releasedir(ino.0, fh.0);
        reply.ok();
        drop(answering);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        self.offload_filling(reply, move |core, reply| {
            core.list(ino.0, fh.0, offset, false, |position, name, attr| {
                let name = OsStr::from_bytes(name);
                reply.add(INodeNo(attr.ino), position, file_type(attr.kind), name)
            })
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
        self.offload_filling(reply, move |core, reply| {
            core.list(ino.0, fh.0, offset, true, |position, name, attr| {
                let (ino, name) = (INodeNo(attr.ino), OsStr::from_bytes(name));
                reply.add(ino, position, name, &TTL, &file_attr(attr), Generation(0))
            })
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
        match self.core().statfs() {
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
            Err(err) => reply.error(errno(err)),
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
        if !known_xattr_namespace(name.as_bytes()) {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let mode = match flags {
            0 => XattrMode::Any,
            libc::XATTR_CREATE => XattrMode::Create,
            libc::XATTR_REPLACE => XattrMode::Replace,
            _ => return reply.error(Errno::EINVAL),
        };
        let (name, value) = (name.as_bytes().to_vec(), value.to_vec());
        self.offload(
            reply,
            move |core| core.set_xattr(ino.0, &name, &value, mode),
            |reply, ()| reply.ok(),
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        // The kernel asks for this one before every write (FUSE mounts are never marked
        // "no security attributes"): answered from memory while no inode has it.
        if !self.core().may_have_xattr(name.as_bytes()) {
            return reply.error(Errno::ENODATA);
        }
        if !known_xattr_namespace(name.as_bytes()) {
            return reply.error(Errno::EOPNOTSUPP); // as Linux, without asking the catalog
        }
        let name = name.as_bytes().to_vec();
        self.offload(
            reply,
            move |core| core.get_xattr(ino.0, &name),
            move |reply, value| reply_sized(reply, size, &value),
        );
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        // Linux lists `trusted.*` only to CAP_SYS_ADMIN (the kernel guards reading them, not
        // listing); the request carries no capabilities, so: to root.
        let trusted_visible = req.uid() == 0;
        self.offload(
            reply,
            move |core| core.list_xattrs(ino.0, trusted_visible),
            move |reply, list| reply_sized(reply, size, &list),
        );
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.as_bytes().to_vec();
        self.offload(
            reply,
            move |core| core.remove_xattr(ino.0, &name),
            |reply, ()| reply.ok(),
        );
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let perm = (mode & !umask & 0o7777) as u16;
        let (name, owner) = (name.as_bytes().to_vec(), (req.uid(), req.gid()));
        let write = writes(flags);
        self.offload(
            reply,
            move |core| {
                let node = new_node(owner, Kind::File, perm, 0, None);
                core.create(parent.0, &name, &node, write)
            },
            |reply, (fh, attr)| {
                reply.created(
                    &TTL,
                    &file_attr(&attr),
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::FOPEN_KEEP_CACHE,
                )
            },
        );
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
        let (uid, gid, pid) = (req.uid(), req.gid(), req.pid());
        let caller = || Caller::of_request(uid, gid, pid);
        let clear_setid = match self.core().plan_fallocate(ino.0, mode, caller) {
            Ok(clear_setid) => clear_setid,
            Err(err) => return reply.error(errno(err)),
        };
        // The kernel leaves kill-priv on fallocate to the file system.
        if let Some(perm) = clear_setid {
            let notifier = Arc::clone(&self.notifier);
            return self.offload(
                reply,
                move |core| {
                    core.set_perm(ino.0, perm)?;
                    VsFs::invalidate_attr(&notifier, ino.0); // as for a write
                    core.fallocate(fh.0, offset, length, mode)
                },
                |reply, ()| reply.ok(),
            );
        }
        match self.core().fallocate(fh.0, offset, length, mode) {
            Ok(()) => reply.ok(),
            Err(err) => reply.error(errno(err)),
        }
    }
}

impl VsFs {
    /// mknod, mkdir and symlink: makes `name` in `parent` owned by the requester.
    #[allow(clippy::too_many_arguments)]
    fn make(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        kind: Kind,
        perm: u16,
        rdev: u32,
        target: Option<Vec<u8>>,
        reply: ReplyEntry,
    ) {
        let (name, owner) = (name.as_bytes().to_vec(), (req.uid(), req.gid()));
        self.offload(
            reply,
            move |core| {
                let node = new_node(owner, kind, perm, rdev, target.as_deref());
                core.make(parent.0, &name, &node)
            },
            |reply, attr| reply.entry(&TTL, &file_attr(&attr), Generation(0)),
        );
    }
}
