//! In-memory state of the inodes the kernel knows: attributes (write-through cache of the
//! catalog), open handle counts, and size/time changes from writes not yet in the catalog.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::catalog::{Attr, AttrChange};

#[derive(Debug)]
struct Node {
    attr: Attr,
    /// Open file handles.
    open: u32,
    /// Size or times changed by reads/writes since the catalog was last updated.
    dirty: bool,
}

/// The table of known inodes.
#[derive(Debug, Default)]
pub struct Inodes {
    nodes: Mutex<HashMap<u64, Node>>,
}

impl Inodes {
    /// Records attributes read from the catalog; for an inode with unsaved writes the
    /// in-memory size and times win. Returns what the kernel should see.
    pub fn remember(&self, attr: Attr) -> Attr {
        let mut nodes = self.nodes.lock();
        let node = nodes.entry(attr.ino).or_insert(Node {
            attr,
            open: 0,
            dirty: false,
        });
        let mut merged = attr;
        if node.dirty {
            merged.size = node.attr.size;
            merged.mtime = node.attr.mtime;
            merged.atime = node.attr.atime;
            merged.ctime = merged.ctime.max(node.attr.ctime);
        }
        node.attr = merged;
        merged
    }

    /// The cached attributes of `ino`, if any.
    pub fn get(&self, ino: u64) -> Option<Attr> {
        self.nodes.lock().get(&ino).map(|n| n.attr)
    }

    /// Drops cached attributes that changed in the catalog (e.g. a directory's times),
    /// unless the inode is open.
    pub fn invalidate(&self, ino: u64) {
        let mut nodes = self.nodes.lock();
        if nodes.get(&ino).is_some_and(|n| n.open == 0 && !n.dirty) {
            nodes.remove(&ino);
        }
    }

    /// The kernel forgot `ino`: drop it unless it is open or has unsaved changes.
    pub fn forget(&self, ino: u64) {
        self.invalidate(ino);
    }

    /// A handle was opened on `attr.ino`.
    pub fn opened(&self, attr: Attr) {
        let mut nodes = self.nodes.lock();
        let node = nodes.entry(attr.ino).or_insert(Node {
            attr,
            open: 0,
            dirty: false,
        });
        node.open += 1;
    }

    /// A handle on `ino` was released; returns the handles still open and the link count.
    pub fn released(&self, ino: u64) -> (u32, u32) {
        let mut nodes = self.nodes.lock();
        match nodes.get_mut(&ino) {
            Some(node) => {
                node.open = node.open.saturating_sub(1);
                (node.open, node.attr.nlink)
            }
            None => (0, 1),
        }
    }

    /// Handles open on `ino`.
    pub fn open_count(&self, ino: u64) -> u32 {
        self.nodes.lock().get(&ino).map_or(0, |n| n.open)
    }

    /// Data was written to `ino` up to byte `end` at time `now`.
    pub fn wrote(&self, ino: u64, end: u64, now: i64) {
        if let Some(node) = self.nodes.lock().get_mut(&ino) {
            node.attr.size = node.attr.size.max(end);
            node.attr.mtime = now;
            node.attr.ctime = now;
            node.dirty = true;
        }
    }

    /// The unsaved size and times of `ino`, marking them saved; `None` if clean.
    pub fn take_dirty(&self, ino: u64) -> Option<AttrChange> {
        let mut nodes = self.nodes.lock();
        let node = nodes.get_mut(&ino)?;
        if !node.dirty {
            return None;
        }
        node.dirty = false;
        Some(AttrChange {
            size: Some(node.attr.size),
            mtime: Some(node.attr.mtime),
            ctime: Some(node.attr.ctime),
            atime: Some(node.attr.atime),
            ..AttrChange::default()
        })
    }

    /// Marks `ino` dirty again after a failed save.
    pub fn mark_dirty(&self, ino: u64) {
        if let Some(node) = self.nodes.lock().get_mut(&ino) {
            node.dirty = true;
        }
    }

    /// Every inode with unsaved changes.
    pub fn dirty_inodes(&self) -> Vec<u64> {
        self.nodes
            .lock()
            .iter()
            .filter(|(_, n)| n.dirty)
            .map(|(ino, _)| *ino)
            .collect()
    }

    /// Removes `ino` entirely (it was deleted).
    pub fn remove(&self, ino: u64) {
        self.nodes.lock().remove(&ino);
    }
}
