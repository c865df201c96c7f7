//! Conversions between the core's types and `fuser`'s, and reply helpers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileType, INodeNo, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, ReplyXattr, TimeOrNow,
};

use crate::meta::{system_time_ns, Attr, Kind, RenameMode};
use crate::vfs::VfsError;

/// Replies that can carry an error.
pub(super) trait Fail {
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

/// Listing replies, sent once filled.
pub(super) trait Done: Fail {
    fn done(self);
}

impl Done for ReplyDirectory {
    fn done(self) {
        self.ok();
    }
}

impl Done for fuser::ReplyDirectoryPlus {
    fn done(self) {
        self.ok();
    }
}

/// The errno of a core error.
pub(super) fn errno(err: VfsError) -> Errno {
    Errno::from_i32(err.errno())
}

/// Replies with `data`, or with its size when `size` is 0, or `ERANGE` when it does not fit.
pub(super) fn reply_sized(reply: ReplyXattr, size: u32, data: &[u8]) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(data);
    }
}

/// A rename's flags as its mode; `None` for flags not supported.
pub(super) fn rename_mode(flags: RenameFlags) -> Option<RenameMode> {
    if flags.contains(RenameFlags::RENAME_EXCHANGE) {
        Some(RenameMode::Exchange)
    } else if flags.contains(RenameFlags::RENAME_NOREPLACE) {
        Some(RenameMode::NoReplace)
    } else if flags.is_empty() {
        Some(RenameMode::Replace)
    } else {
        None
    }
}

/// A time of a `setattr` in nanoseconds; `Now` is `now`.
pub(super) fn to_ns(time: TimeOrNow, now: i64) -> i64 {
    match time {
        TimeOrNow::Now => now,
        TimeOrNow::SpecificTime(t) => system_time_ns(t),
    }
}

/// The kernel's file type of `kind`.
pub(super) fn file_type(kind: Kind) -> FileType {
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

/// `attr` as the kernel's attributes.
pub(super) fn file_attr(attr: &Attr) -> FileAttr {
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
