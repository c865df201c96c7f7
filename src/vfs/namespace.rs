//! The namespace: lookups, creating and removing entries, renames, links, directory
//! listings, and reclaiming inodes whose last link went once the kernel lets go of them.

use super::{Core, VfsError};
use crate::data::Space;
use crate::meta::{Attr, Kind, NewNode, RenameMode};

impl Core {
    /// The inode `name` in `parent`; the kernel holds one more reference to it.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr, VfsError> {
        let attr = self.catalog.lookup(parent, name)?;
        let attr = self.inodes.view(attr);
        self.inodes.looked_up(attr.ino);
        Ok(self.reported(&attr))
    }

    /// The target of symlink `ino`.
    pub fn read_link(&self, ino: u64) -> Result<Vec<u8>, VfsError> {
        Ok(self.catalog.read_link(ino)?)
    }

    /// Makes `name` in `parent` as `node` (not a regular file opened at once: see
    /// [`Core::create`]); the kernel holds a reference to it.
    pub fn make(&self, parent: u64, name: &[u8], node: &NewNode<'_>) -> Result<Attr, VfsError> {
        let attr = self.create_node(parent, name, node)?;
        self.inodes.looked_up(attr.ino);
        Ok(attr)
    }

    /// Creates regular file `name` in `parent` and opens it (for writing if `write`);
    /// returns the handle and the attributes. The kernel holds a reference to it.
    pub fn create(
        &self,
        parent: u64,
        name: &[u8],
        node: &NewNode<'_>,
        write: bool,
    ) -> Result<(u64, Attr), VfsError> {
        let attr = self.create_node(parent, name, node)?;
        match self.open_handle(attr, write, true) {
            Ok((fh, attr)) => {
                self.inodes.looked_up(attr.ino);
                Ok((fh, attr))
            }
            Err(err) => {
                // The caller is told the file was not created: take the entry back.
                match self.catalog.undo_create(parent, name, attr.ino) {
                    Ok(Some(dir)) => {
                        self.inodes.changed(dir);
                    }
                    Ok(None) => {}
                    Err(undo) => log::warn!(
                        "create of inode {} failed ({err}) and its entry stays: {undo}",
                        attr.ino
                    ),
                }
                Err(err)
            }
        }
    }

    fn create_node(&self, parent: u64, name: &[u8], node: &NewNode<'_>) -> Result<Attr, VfsError> {
        self.may_change()?;
        let attr = self.catalog.create(parent, name, node)?;
        let subdir = i32::from(node.kind == Kind::Directory);
        self.inodes.dir_changed(parent, attr.ctime, subdir);
        Ok(attr)
    }

    /// Adds hard link `newname` in `newparent` to `ino`; the kernel holds a reference.
    pub fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> Result<Attr, VfsError> {
        self.may_change()?;
        let changed = self.catalog.link(ino, newparent, newname)?;
        let attr = self.apply(&changed);
        self.inodes.looked_up(attr.ino);
        Ok(self.reported(&attr))
    }

    /// Removes `name` from `parent`; an inode left without links is reclaimed once no
    /// handle and no kernel reference holds it.
    pub fn unlink(&self, parent: u64, name: &[u8]) -> Result<(), VfsError> {
        self.may_change()?;
        let changed = self.catalog.unlink(parent, name)?;
        let node = self.apply(&changed);
        if changed.node.nlink == 0 {
            self.files.cancel_copy(node.ino);
        }
        // The link count this unlink committed (the table may hold a newer one).
        if changed.node.nlink == 0 && self.inodes.unlinked(node.ino) {
            self.reclaim(node.ino);
        }
        Ok(())
    }

    /// Removes empty directory `name` from `parent`.
    pub fn rmdir(&self, parent: u64, name: &[u8]) -> Result<(), VfsError> {
        self.may_change()?;
        let changed = self.catalog.rmdir(parent, name)?;
        self.apply(&changed);
        Ok(())
    }

    /// Renames `parent/name` to `newparent/newname`; a replaced file left without links is
    /// reclaimed as by [`Core::unlink`].
    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        mode: RenameMode,
    ) -> Result<(), VfsError> {
        self.may_change()?;
        let changed = self
            .catalog
            .rename(parent, name, newparent, newname, mode)?;
        self.apply(&changed);
        if let Some(replaced) = changed.other {
            if replaced.nlink == 0 {
                self.files.cancel_copy(replaced.ino);
            }
            if replaced.nlink == 0
                && replaced.kind != Kind::Directory
                && self.inodes.unlinked(replaced.ino)
            {
                self.reclaim(replaced.ino);
            }
        }
        Ok(())
    }

    /// The kernel forgot `count` references to `ino`; returns whether the inode is to be
    /// reclaimed now ([`Core::reclaim`], which needs the catalog).
    pub fn forget(&self, ino: u64, count: u64) -> bool {
        self.inodes.forgot(ino, count)
    }

    /// Deletes inode `ino`, whose last link went and which the kernel no longer references;
    /// the catalog keeps it if it is linked again. Fenced off, it is left for the next
    /// owner's start to reclaim.
    pub fn reclaim(&self, ino: u64) {
        if let Err(reason) = self.options.fence.check() {
            return log::warn!("inode {ino} left for the next start to reclaim: {reason}");
        }
        match self.catalog.purge(ino) {
            Ok(()) => {
                self.inodes.remove(ino);
                self.unsynced_entries.lock().remove(&ino);
                if let Err(err) = self.store.remove(ino) {
                    log::warn!("cannot remove the data of inode {ino}: {err}");
                }
            }
            // Reclaimed already.
            Err(crate::meta::MetaError::Errno(libc::ENOENT)) => self.inodes.remove(ino),
            // Left for the next start to reclaim.
            Err(err) => log::warn!("cannot reclaim inode {ino}: {err}"),
        }
    }

    /// Once unmounted (the kernel references nothing any more), reclaims the inodes kept
    /// for references it held; those the catalog cannot take now are reclaimed at the next
    /// start (as unlinked inodes left by a crash are).
    pub(super) fn reclaim_unreferenced(&self) {
        for ino in self.inodes.take_unlinked() {
            self.reclaim(ino);
        }
    }

    /// Opens directory `ino`; returns the handle.
    pub fn opendir(&self, ino: u64) -> Result<u64, VfsError> {
        let attr = self.attr(ino)?;
        if attr.kind != Kind::Directory {
            return Err(VfsError::ENOTDIR);
        }
        // Tracked while open, so fstat after rmdir still answers (link count 0).
        self.inodes.opened(attr);
        Ok(self.files.open_dir())
    }

    /// Closes directory handle `fh` of `ino`.
    pub fn releasedir(&self, ino: u64, fh: u64) {
        self.files.close_dir(fh);
        self.inodes.released(ino);
    }

    /// Lists directory `ino` from position `offset` through handle `fh`: calls `add` with
    /// each entry's position, name and attributes (as the kernel is told them) until it
    /// reports the reply full. With `plus`, each entry handed out (all but "." and "..") is
    /// a kernel reference.
    ///
    /// Positions: 1 is ".", 2 is "..", then each entry's cookie + 2 (stable, increasing).
    pub fn list(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        plus: bool,
        mut add: impl FnMut(u64, &[u8], &Attr) -> bool,
    ) -> Result<(), VfsError> {
        if offset < 2 {
            let dir = self.reported(&self.attr(ino)?);
            if offset < 1 && add(1, b".", &dir) {
                return Ok(());
            }
            let parent = self.catalog.parent_of(ino)?;
            let parent = self.reported(&self.attr(parent)?);
            if add(2, b"..", &parent) {
                return Ok(());
            }
        }
        let listing = self.files.listing(fh);
        let mut listing = listing.lock();
        let mut handed = Vec::new();
        listing.serve(
            offset.saturating_sub(2),
            |after, limit| self.catalog.read_dir_plus(ino, after, limit),
            |entry, attr| {
                // Plain readdir uses only the type: no blocks to measure.
                let attr = self.inodes.view(*attr);
                let attr = if plus { self.reported(&attr) } else { attr };
                let full = add(entry.cookie + 2, &entry.name, &attr);
                if !full && plus {
                    handed.push(attr.ino);
                }
                full
            },
        )?;
        for ino in handed {
            self.inodes.looked_up(ino);
        }
        Ok(())
    }

    /// Space of the data store, less the reserve writers may not take.
    pub fn statfs(&self) -> Result<Space, VfsError> {
        let mut space = self.store.space()?;
        space.blocks_available = space
            .blocks_available
            .saturating_sub(self.limits.reserved() / space.block_size.max(1));
        Ok(space)
    }
}
