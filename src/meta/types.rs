//! The neutral types of the metadata engine: what callers of [`MetaEngine`](super::MetaEngine)
//! pass and get back, free of any database's types.

use std::time::{SystemTime, UNIX_EPOCH};

use super::MetaError;

/// Inode number of the root directory.
pub const ROOT_INO: u64 = 1;

/// Longest name of a directory entry, in bytes.
pub const NAME_MAX: usize = 255;
/// Longest symlink target, in bytes.
pub const SYMLINK_MAX: usize = 4095;
/// Largest extended attribute value, in bytes (Linux XATTR_SIZE_MAX).
pub const XATTR_SIZE_MAX: usize = 65536;
/// Longest archive volume label a copy may be recorded on, in bytes (`vs_copies.volume`).
pub const VOLUME_MAX: usize = 64;

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Regular file.
    File = 1,
    /// Directory.
    Directory = 2,
    /// Symbolic link.
    Symlink = 3,
    /// Named pipe.
    Fifo = 4,
    /// Unix socket.
    Socket = 5,
    /// Character device.
    CharDevice = 6,
    /// Block device.
    BlockDevice = 7,
}

/// An inode's attributes as stored; times are nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Inode number (stable across mounts).
    pub ino: u64,
    /// File type.
    pub kind: Kind,
    /// Permission bits including set-id and sticky (07777).
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Number of links (directories: 2 + subdirectories).
    pub nlink: u32,
    /// Device number for device nodes.
    pub rdev: u32,
    /// Last access.
    pub atime: i64,
    /// Last content change.
    pub mtime: i64,
    /// Last status change. Never moved back by a change: of two attributes committed for
    /// one inode, the one with the earlier status change time is the older.
    pub ctime: i64,
    /// Creation.
    pub crtime: i64,
    /// 512-byte blocks the data file occupied when its size was last saved (holes take
    /// none); `None` when never recorded (rows older than schema version 4, non-files).
    pub blocks: Option<u64>,
    /// Where the data is (regular files; `Empty` for every other kind).
    pub data_state: DataState,
}

/// A node to create.
#[derive(Debug, Clone)]
pub struct NewNode<'a> {
    /// Its type.
    pub kind: Kind,
    /// Permission bits (07777), umask already applied.
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number (device nodes only).
    pub rdev: u32,
    /// Target (symlinks only).
    pub target: Option<&'a [u8]>,
}

/// One directory entry as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Position in the directory: stable, increasing, never reused.
    pub cookie: u64,
    /// Entry name.
    pub name: Vec<u8>,
    /// The inode it names.
    pub ino: u64,
    /// That inode's type.
    pub kind: Kind,
}

/// Attribute changes for [`MetaEngine::set_attr`](super::MetaEngine::set_attr); `None` leaves a field alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttrChange {
    /// New permission bits.
    pub perm: Option<u16>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size.
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<i64>,
    /// New modification time.
    pub mtime: Option<i64>,
    /// New status change time.
    pub ctime: Option<i64>,
    /// Blocks the data file occupies, measured when the size and times are saved.
    pub blocks: Option<u64>,
    /// New data state.
    pub data_state: Option<DataState>,
}

/// Where `setxattr` may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrMode {
    /// Create or replace.
    Any,
    /// Fail with `EEXIST` if present (XATTR_CREATE).
    Create,
    /// Fail with `ENODATA` if absent (XATTR_REPLACE).
    Replace,
}

/// A rename variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameMode {
    /// Replace the target if it exists.
    Replace,
    /// Fail with `EEXIST` if the target exists (RENAME_NOREPLACE).
    NoReplace,
    /// Swap source and target, which must both exist (RENAME_EXCHANGE).
    Exchange,
}

/// What a namespace change left behind: the new attributes of every inode it touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The inode the change was about (linked, unlinked, removed, or the one renamed), after
    /// it. Its link count is 0 once no entry names it; a removed directory's rows are gone
    /// and this copy is all that is left of it.
    pub node: Attr,
    /// The directories whose entries changed, after the change (one per directory).
    pub dirs: Vec<Attr>,
    /// Rename only: the target it replaced (link count 0 when that was its last name) or
    /// exchanged with, after the change.
    pub other: Option<Attr>,
}

/// Where a regular file's data is, as the catalog records it (`vs_inodes.data_state`).
///
/// The state, not whether a data file happens to exist, decides what a read may return: a
/// file whose state says its data is local but whose data file is gone is `EIO`, never an
/// empty read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DataState {
    /// No data was ever written: the content is `size` bytes of zeros (a hole), and no
    /// data file needs to exist. Also every non-file inode.
    Empty = 0,
    /// The data is in the local cache, complete and saved; it is the only copy.
    Resident = 1,
    /// The data is in the local cache and is being changed: written since the last save
    /// (its data file may be longer than the recorded size until then).
    Dirty = 2,
    /// The data is in the local cache and an identical copy is in the archive.
    Archived = 3,
    /// The data is only in the archive; reading it needs a recall.
    Released = 4,
    /// The data is only in the archive and its copy could not be read back or did not match
    /// its digests: reads fail with `EIO` until an operator recalls it again (or the file is
    /// rewritten or removed).
    Damaged = 5,
}

impl DataState {
    /// The state stored as `value`; `None` for a number no version has written.
    pub fn from_u8(value: u8) -> Option<DataState> {
        Some(match value {
            0 => DataState::Empty,
            1 => DataState::Resident,
            2 => DataState::Dirty,
            3 => DataState::Archived,
            4 => DataState::Released,
            5 => DataState::Damaged,
            _ => return None,
        })
    }

    /// Whether the file's data must be in the local cache (a missing data file is then an
    /// error, `EIO`).
    pub fn is_local(self) -> bool {
        matches!(
            self,
            DataState::Resident | DataState::Dirty | DataState::Archived
        )
    }
}

impl DataState {
    /// The state's name as operators see it (`dirty`, `archived`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DataState::Empty => "empty",
            DataState::Resident => "resident",
            DataState::Dirty => "dirty",
            DataState::Archived => "archived",
            DataState::Released => "released",
            DataState::Damaged => "damaged",
        }
    }
}

/// One copy of a file's data on an archive volume, as the catalog records it
/// (`vs_copies`). A copy is *live* until a newer copy of its inode is recorded or the
/// inode is purged; then it is *superseded* (since `superseded_ns`) and may be cleaned up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveCopy {
    /// The inode whose data it holds.
    pub ino: u64,
    /// The volume's label (a directory in `ArchiveFolder`).
    pub volume: String,
    /// The copy's sequence number on its volume (also its file name there).
    pub seq: u64,
    /// Bytes in the copy (the file's size when copied).
    pub size: u64,
    /// The file's modification time when copied: which version of the data this is.
    pub mtime: i64,
    /// MD5 of the content, when computed.
    pub md5: Option<[u8; 16]>,
    /// SHA1 of the content, when computed.
    pub sha1: Option<[u8; 20]>,
    /// When the copy was recorded, nanoseconds since the epoch.
    pub archived_ns: i64,
    /// When it stopped being live; `None` while it is the inode's current copy.
    pub superseded_ns: Option<i64>,
}

/// Files and bytes in one data state ([`MetaEngine::state_totals`](super::MetaEngine::state_totals)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTotal {
    /// The state.
    pub state: DataState,
    /// Regular files in it.
    pub files: u64,
    /// Sum of their sizes.
    pub bytes: u64,
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    system_time_ns(SystemTime::now())
}

/// Nanoseconds since the epoch of `time` (negative before 1970).
pub fn system_time_ns(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// `ENAMETOOLONG` past 255 bytes, `EINVAL` for empty names or ones with `/` or NUL.
pub fn check_name(name: &[u8]) -> Result<(), MetaError> {
    if name.len() > NAME_MAX {
        return Err(MetaError::Errno(libc::ENAMETOOLONG));
    }
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        return Err(MetaError::Errno(libc::EINVAL));
    }
    Ok(())
}

/// `EINVAL` for an empty extended attribute name, `ERANGE` past 255 bytes.
pub fn check_xattr_name(name: &[u8]) -> Result<(), MetaError> {
    if name.is_empty() {
        return Err(MetaError::Errno(libc::EINVAL));
    }
    if name.len() > NAME_MAX {
        return Err(MetaError::Errno(libc::ERANGE));
    }
    Ok(())
}

/// Checks what any engine checks first for a create: the name, and a symlink target that
/// is not empty and at most [`SYMLINK_MAX`] bytes (`ENAMETOOLONG`).
pub fn check_new_node(name: &[u8], node: &NewNode<'_>) -> Result<(), MetaError> {
    check_name(name)?;
    match node.target {
        Some(target) if target.is_empty() || target.len() > SYMLINK_MAX => {
            Err(MetaError::Errno(libc::ENAMETOOLONG))
        }
        _ => Ok(()),
    }
}

/// Checks what any engine checks first for a `setxattr`: the name, a value of at most
/// [`XATTR_SIZE_MAX`] bytes (`E2BIG`), and the pair alone within `max_total` (`ENOSPC`).
pub fn check_xattr(name: &[u8], value: &[u8], max_total: usize) -> Result<(), MetaError> {
    check_xattr_name(name)?;
    if value.len() > XATTR_SIZE_MAX {
        return Err(MetaError::Errno(libc::E2BIG));
    }
    if name.len() + value.len() > max_total {
        return Err(MetaError::Errno(libc::ENOSPC));
    }
    Ok(())
}

impl Attr {
    /// The attributes of a node just created as `ino` from `node`, with the permission bits
    /// and group the parent's set-group-ID made of them, all times `now`.
    pub fn of_new_node(ino: u64, node: &NewNode<'_>, perm: u16, gid: u32, now: i64) -> Attr {
        Attr {
            ino,
            kind: node.kind,
            perm,
            uid: node.uid,
            gid,
            size: node.target.map_or(0, |t| t.len() as u64),
            nlink: if node.kind == Kind::Directory { 2 } else { 1 },
            rdev: node.rdev,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            blocks: None,
            data_state: DataState::Empty,
        }
    }
}
