//! Attributes: what the kernel is told about an inode (with the blocks its data occupies),
//! `setattr` with its kill-priv and resize rules, and extended attributes.

use std::sync::atomic::Ordering;

use super::inodes::StatView;
use super::killpriv::{self, Caller};
use super::{Core, VfsError, CAPABILITY_XATTR, TRUSTED_XATTR_PREFIX};
use crate::meta::{now_ns, Attr, AttrChange, Changed, Kind, XattrMode};

impl Core {
    /// The attributes of `ino`: a tracked inode's, or the catalog's.
    pub(super) fn attr(&self, ino: u64) -> Result<Attr, VfsError> {
        match self.inodes.get(ino) {
            Some(attr) => Ok(attr),
            None => Ok(self.catalog.get_attr(ino)?),
        }
    }

    /// The attributes of `ino` as the kernel is told them, from memory, if it is tracked
    /// (open, or with unsaved changes): no catalog round trip. `fh` is a handle on it.
    pub fn cached_attr(&self, ino: u64, fh: Option<u64>) -> Option<Attr> {
        let view = self.inodes.stat_view(ino)?;
        Some(self.tracked_attr(view, fh))
    }

    /// The attributes of `ino` as the kernel is told them (may ask the catalog).
    pub fn getattr(&self, ino: u64) -> Result<Attr, VfsError> {
        let attr = self.attr(ino)?;
        Ok(self.reported(&attr))
    }

    /// `attr` as the kernel is told it. A regular file's blocks are those its data occupies
    /// in the store, so `du` sees holes: a tracked inode's as measured since its last
    /// change, an untracked one's as the catalog recorded at its last save (no local `stat`
    /// per reply); others' follow their size.
    pub(super) fn reported(&self, attr: &Attr) -> Attr {
        let mut reported = *attr;
        if attr.kind == Kind::File {
            if let Some(view) = self.inodes.stat_view(attr.ino) {
                reported.blocks = self.tracked_attr(view, None).blocks;
            }
        }
        reported
    }

    /// The 512-byte blocks the data of `ino` occupies now: as measured since its last
    /// change if it is tracked, else measured in the store (0 if there is no data).
    pub(super) fn blocks_of(&self, ino: u64) -> u64 {
        let view = self.inodes.stat_view(ino);
        if let Some(blocks) = view.and_then(|view| view.blocks) {
            return blocks;
        }
        let blocks = self.store.blocks(ino);
        if let Some(view) = view {
            self.inodes.measured(ino, view.changes, blocks);
        }
        blocks
    }

    /// A tracked inode as the kernel is told it: blocks measured since its last change are
    /// reused; otherwise the data behind handle `fh` is measured (no path lookup), or the
    /// data in the store.
    fn tracked_attr(&self, view: StatView, fh: Option<u64>) -> Attr {
        let mut reported = view.attr;
        if view.attr.kind != Kind::File {
            return reported;
        }
        let blocks = match view.blocks {
            Some(blocks) => blocks,
            None => {
                let open = fh.and_then(|fh| self.files.get(fh).ok());
                let blocks = match open.as_ref().and_then(|open| open.data.get()) {
                    Some(data) => data.blocks().unwrap_or(0),
                    None => self.store.blocks(view.attr.ino),
                };
                self.inodes.measured(view.attr.ino, view.changes, blocks);
                blocks
            }
        };
        reported.blocks = Some(blocks);
        reported
    }

    /// Takes the attributes a namespace change committed; returns the node's.
    pub(super) fn apply(&self, changed: &Changed) -> Attr {
        for dir in &changed.dirs {
            self.inodes.changed(*dir);
        }
        if let Some(other) = changed.other {
            self.inodes.changed(other);
        }
        self.inodes.changed(changed.node)
    }

    /// Changes attributes of `ino` (through handle `fh` if given) at time `now`; `caller`
    /// is asked only when kill-priv needs to know who changes a set-id file. A size change
    /// follows the resize rules (`Core::resize_and_commit`). Returns what the kernel is
    /// told.
    pub fn setattr(
        &self,
        ino: u64,
        fh: Option<u64>,
        change: AttrChange,
        now: i64,
        caller: impl FnOnce() -> Caller,
    ) -> Result<Attr, VfsError> {
        self.may_change()?;
        let mut change = change;
        let resize = change.size;
        let chown = change.uid.is_some() || change.gid.is_some();
        // The attributes before the change (the kernel holds the inode's lock: no write
        // moves the size).
        let mut before = None;
        if let Some(size) = resize {
            self.limits.check_size(size)?;
            // A copy to the archive of the old data is of no use now.
            self.files.cancel_copy(ino);
        }
        if resize.is_some() || chown {
            let attr = self.attr(ino)?;
            if resize.is_some() {
                match attr.kind {
                    Kind::File => {}
                    Kind::Directory => return Err(VfsError::EISDIR),
                    _ => return Err(VfsError::EINVAL),
                }
                change.mtime = change.mtime.or(Some(now));
                before = Some(attr);
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
            change.data_state = change.data_state.or(unsaved.data_state);
        }
        let committed = match (resize, before) {
            (Some(size), Some(before)) => self.resize_and_commit(ino, fh, size, &before, &change),
            _ => self.catalog.set_attr(ino, &change).map_err(VfsError::from),
        };
        let committed = committed.map(|attr| self.inodes.changed(attr));
        if unsaved.is_some() {
            self.inodes.end_save(ino, committed.is_ok());
        }
        committed.map(|attr| self.reported(&attr))
    }

    /// The permission bits an open (tracked) file `ino` must have after a write or
    /// `fallocate` by `caller`, when kill-priv clears a bit; `None` when nothing changes
    /// (the usual case, decided from memory without a system call).
    pub fn perm_after_modify(&self, ino: u64, caller: impl FnOnce() -> Caller) -> Option<u16> {
        let attr = self.inodes.get(ino)?;
        if !killpriv::has_setid(attr.kind, attr.perm) {
            return None;
        }
        let perm = killpriv::after_modify(attr.perm, attr.gid, &caller());
        (perm != attr.perm).then_some(perm)
    }

    /// Commits new permission bits of `ino` (kill-priv), before the change that needs it.
    pub fn set_perm(&self, ino: u64, perm: u16) -> Result<(), VfsError> {
        self.may_change()?;
        let change = AttrChange {
            perm: Some(perm),
            ctime: Some(now_ns()),
            ..AttrChange::default()
        };
        let attr = self.catalog.set_attr(ino, &change)?;
        self.inodes.changed(attr);
        Ok(())
    }

    /// Whether `name` may have a value: `false` for [`CAPABILITY_XATTR`] while no inode has
    /// it (the kernel asks before every write), answered from memory.
    pub fn may_have_xattr(&self, name: &[u8]) -> bool {
        name != CAPABILITY_XATTR || self.capabilities.load(Ordering::Acquire)
    }

    /// Sets extended attribute `name` of `ino`.
    pub fn set_xattr(
        &self,
        ino: u64,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
    ) -> Result<(), VfsError> {
        self.may_change()?;
        if name == CAPABILITY_XATTR {
            // Before the change commits, so no read can miss it.
            self.capabilities.store(true, Ordering::Release);
        }
        let attr = self
            .catalog
            .set_xattr(ino, name, value, mode, self.options.xattr_max_size)?;
        self.inodes.changed(attr);
        Ok(())
    }

    /// The value of extended attribute `name` of `ino`.
    pub fn get_xattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, VfsError> {
        Ok(self.catalog.get_xattr(ino, name)?)
    }

    /// The names of the extended attributes of `ino`, NUL-terminated one after another;
    /// `trusted.*` ones only if `trusted_visible`.
    pub fn list_xattrs(&self, ino: u64, trusted_visible: bool) -> Result<Vec<u8>, VfsError> {
        let mut list = Vec::new();
        for name in self.catalog.list_xattrs(ino)? {
            if !trusted_visible && name.starts_with(TRUSTED_XATTR_PREFIX) {
                continue;
            }
            list.extend_from_slice(&name);
            list.push(0);
        }
        Ok(list)
    }

    /// Removes extended attribute `name` of `ino`.
    pub fn remove_xattr(&self, ino: u64, name: &[u8]) -> Result<(), VfsError> {
        self.may_change()?;
        let attr = self.catalog.remove_xattr(ino, name)?;
        self.inodes.changed(attr);
        Ok(())
    }
}

/// Whether `name` is in a namespace Linux defines (`user.`, `trusted.`, `security.`,
/// `system.`); others are `EOPNOTSUPP`, as on any Linux file system.
pub fn known_xattr_namespace(name: &[u8]) -> bool {
    [
        &b"user."[..],
        TRUSTED_XATTR_PREFIX,
        b"security.",
        b"system.",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}
