//! The inodes this mount tracks: those with open handles (files and directories) or with
//! size/time changes from writes not yet in the catalog.
//!
//! For a tracked inode the table is what the kernel is told: every change made through this
//! mount updates it with the attributes the catalog committed (non-dirty fields), writes
//! update its size and times, and attributes read from the catalog never override it (a
//! read can race with a change and return the state before it). Untracked inodes are read
//! from the catalog: the kernel caches their attributes itself.

use std::collections::HashMap;

use parking_lot::{Condvar, Mutex};

use crate::catalog::{Attr, AttrChange};

#[derive(Debug)]
struct Node {
    attr: Attr,
    /// Open file and directory handles.
    open: u32,
    /// Size or times changed by writes since the catalog was last updated.
    dirty: bool,
    /// A save of this inode is running (between `begin_save` and `end_save`).
    saving: bool,
}

/// The table of tracked inodes.
#[derive(Debug, Default)]
pub struct Inodes {
    nodes: Mutex<HashMap<u64, Node>>,
    /// Signalled when a save ends.
    save_ended: Condvar,
}

impl Inodes {
    /// The attributes of a tracked inode.
    pub fn get(&self, ino: u64) -> Option<Attr> {
        self.nodes.lock().get(&ino).map(|n| n.attr)
    }

    /// What the kernel should see for `attr` as just read from the catalog: a tracked
    /// inode's own attributes win.
    pub fn view(&self, attr: Attr) -> Attr {
        self.get(attr.ino).unwrap_or(attr)
    }

    /// Takes attributes a change committed to the catalog; a tracked inode keeps its unsaved
    /// size and times (and the later of the two status change times). Returns what the kernel
    /// should see.
    pub fn changed(&self, attr: Attr) -> Attr {
        let mut nodes = self.nodes.lock();
        let Some(node) = nodes.get_mut(&attr.ino) else {
            return attr;
        };
        node.attr = merge(attr, node);
        node.attr
    }

    /// A directory gained or lost an entry at `now` (its times become `now`, its link count
    /// moves by `nlink_delta`): for changes that return only the new inode's attributes.
    pub fn dir_changed(&self, dir: u64, now: i64, nlink_delta: i32) {
        if let Some(node) = self.nodes.lock().get_mut(&dir) {
            node.attr.mtime = now;
            node.attr.ctime = node.attr.ctime.max(now);
            node.attr.nlink = node.attr.nlink.saturating_add_signed(nlink_delta);
        }
    }

    /// A handle was opened on `attr.ino`; returns the attributes to use (a tracked inode's).
    pub fn opened(&self, attr: Attr) -> Attr {
        let mut nodes = self.nodes.lock();
        let node = nodes.entry(attr.ino).or_insert(Node {
            attr,
            open: 0,
            dirty: false,
            saving: false,
        });
        node.open += 1;
        node.attr
    }

    /// A handle on `ino` was released; returns the handles still open and the link count.
    /// An inode with no handles, nothing unsaved and no save running is no longer tracked.
    pub fn released(&self, ino: u64) -> (u32, u32) {
        let mut nodes = self.nodes.lock();
        let Some(node) = nodes.get_mut(&ino) else {
            return (0, 1);
        };
        node.open = node.open.saturating_sub(1);
        let result = (node.open, node.attr.nlink);
        if node.open == 0 && !node.dirty && !node.saving {
            nodes.remove(&ino);
        }
        result
    }

    /// Whether `ino` has size or time changes not yet committed (unsaved, or being saved).
    pub fn needs_save(&self, ino: u64) -> bool {
        self.nodes
            .lock()
            .get(&ino)
            .is_some_and(|n| n.dirty || n.saving)
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
            node.attr.ctime = node.attr.ctime.max(now);
            node.dirty = true;
        }
    }

    /// `ino` was read at `now`: its access time moves as under `relatime` (when it is not
    /// after the last change, or a day old), in memory only; the save that follows writes it
    /// with the size and times, so reads cost no catalog round trip. Returns whether it moved.
    pub fn accessed(&self, ino: u64, now: i64) -> bool {
        let mut nodes = self.nodes.lock();
        let Some(node) = nodes.get_mut(&ino) else {
            return false;
        };
        if !relatime_due(&node.attr, now) {
            return false;
        }
        node.attr.atime = now;
        node.dirty = true;
        true
    }

    /// Starts saving `ino`: waits for a save of it that is running, then returns its unsaved
    /// size and times, or `None` if there are none (no save started). Saves of one inode run
    /// one at a time, so an older save can never commit after a newer one; the caller ends a
    /// started save with [`Inodes::end_save`].
    pub fn begin_save(&self, ino: u64) -> Option<AttrChange> {
        let mut nodes = self.nodes.lock();
        while nodes.get(&ino)?.saving {
            self.save_ended.wait(&mut nodes);
        }
        let node = nodes.get_mut(&ino)?;
        if !node.dirty {
            return None;
        }
        node.dirty = false;
        node.saving = true;
        Some(AttrChange {
            size: Some(node.attr.size),
            mtime: Some(node.attr.mtime),
            ctime: Some(node.attr.ctime),
            atime: Some(node.attr.atime),
            ..AttrChange::default()
        })
    }

    /// Ends a save begun by [`Inodes::begin_save`]; if it did not commit, the changes are
    /// unsaved again. An inode with no handles and nothing unsaved is no longer tracked.
    pub fn end_save(&self, ino: u64, committed: bool) {
        let mut nodes = self.nodes.lock();
        if let Some(node) = nodes.get_mut(&ino) {
            node.saving = false;
            node.dirty |= !committed;
            if node.open == 0 && !node.dirty {
                nodes.remove(&ino);
            }
        }
        self.save_ended.notify_all();
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

    /// Stops tracking `ino` (it was deleted).
    pub fn remove(&self, ino: u64) {
        self.nodes.lock().remove(&ino);
    }
}

/// How old an access time may get before a read moves it even when it is after the last
/// change (Linux `relatime`: one day).
const RELATIME_MAX_AGE_NS: i64 = 24 * 3600 * 1_000_000_000;

/// Whether a read at `now` moves the access time of `attr` under `relatime` rules: the
/// access time is not after the last modification or status change, or is a day old.
pub fn relatime_due(attr: &Attr, now: i64) -> bool {
    attr.atime <= attr.mtime
        || attr.atime <= attr.ctime
        || now.saturating_sub(attr.atime) >= RELATIME_MAX_AGE_NS
}

/// `committed` as the kernel should see it for `node`: unsaved size and times stay.
fn merge(committed: Attr, node: &Node) -> Attr {
    let mut merged = committed;
    if node.dirty {
        merged.size = node.attr.size;
        merged.mtime = node.attr.mtime;
        merged.atime = node.attr.atime;
    }
    merged.ctime = committed.ctime.max(node.attr.ctime);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Kind;

    fn attr(ino: u64, size: u64, ctime: i64) -> Attr {
        Attr {
            ino,
            kind: Kind::File,
            perm: 0o644,
            uid: 0,
            gid: 0,
            size,
            nlink: 1,
            rdev: 0,
            atime: 0,
            mtime: 0,
            ctime,
            crtime: 0,
        }
    }

    #[test]
    fn changes_reach_tracked_inodes_and_keep_unsaved_writes() {
        let inodes = Inodes::default();
        assert_eq!(
            inodes.changed(attr(7, 0, 5)),
            attr(7, 0, 5),
            "untracked: as given"
        );
        assert_eq!(inodes.get(7), None, "a change does not start tracking");
        inodes.opened(attr(7, 0, 5));
        inodes.wrote(7, 100, 50);
        let mut chmod = attr(7, 0, 60);
        chmod.perm = 0o600;
        let seen = inodes.changed(chmod);
        assert_eq!(
            (seen.perm, seen.size, seen.mtime, seen.ctime),
            (0o600, 100, 50, 60)
        );
        let stale = attr(7, 0, 1);
        assert_eq!(inodes.view(stale), seen, "a catalog read does not override");
        assert_eq!(inodes.begin_save(7).unwrap().size, Some(100));
        inodes.end_save(7, true);
        assert_eq!(inodes.released(7), (0, 1));
        assert_eq!(inodes.get(7), None, "closed and saved: untracked");
    }

    #[test]
    fn unsaved_inodes_stay_tracked_after_release_until_saved() {
        let inodes = Inodes::default();
        inodes.opened(attr(9, 0, 1));
        inodes.wrote(9, 10, 2);
        inodes.released(9);
        assert_eq!(inodes.get(9).unwrap().size, 10);
        inodes.begin_save(9).unwrap();
        inodes.end_save(9, false);
        assert!(inodes.get(9).is_some(), "the save failed: still unsaved");
        assert!(inodes.begin_save(9).is_some());
        inodes.end_save(9, true);
        assert_eq!(inodes.get(9), None);
    }

    #[test]
    fn a_release_during_a_save_keeps_the_inode_until_the_save_ends() {
        let inodes = Inodes::default();
        inodes.opened(attr(5, 0, 1));
        inodes.wrote(5, 10, 2);
        let change = inodes.begin_save(5).unwrap();
        assert_eq!(change.size, Some(10));
        inodes.released(5);
        assert!(inodes.get(5).is_some(), "kept while its save runs");
        inodes.end_save(5, false);
        assert_eq!(
            inodes.dirty_inodes(),
            [5],
            "the failed save's changes are kept"
        );
    }

    #[test]
    fn saves_of_one_inode_run_one_at_a_time() {
        let inodes = std::sync::Arc::new(Inodes::default());
        inodes.opened(attr(3, 0, 1));
        inodes.wrote(3, 10, 2);
        assert!(inodes.begin_save(3).is_some());
        inodes.wrote(3, 20, 3);
        let second = {
            let inodes = std::sync::Arc::clone(&inodes);
            std::thread::spawn(move || inodes.begin_save(3).map(|c| c.size))
        };
        // The second save waits for the first to end, then takes the newer size.
        inodes.end_save(3, true);
        assert_eq!(second.join().unwrap(), Some(Some(20)));
    }

    #[test]
    fn reads_move_the_access_time_as_relatime_does() {
        let day = RELATIME_MAX_AGE_NS;
        let mut a = attr(4, 10, 100);
        a.mtime = 100;
        a.atime = 50;
        assert!(relatime_due(&a, 200), "access before the last change");
        a.atime = 100;
        assert!(relatime_due(&a, 200), "access at the last change");
        a.atime = 150;
        assert!(!relatime_due(&a, 200), "accessed since the last change");
        assert!(relatime_due(&a, 150 + day), "a day old");

        let inodes = Inodes::default();
        assert!(!inodes.accessed(4, 200), "untracked: nothing to move");
        a.atime = 50;
        inodes.opened(a);
        assert!(inodes.accessed(4, 200));
        assert_eq!(inodes.get(4).unwrap().atime, 200);
        assert_eq!(inodes.get(4).unwrap().ctime, 100, "ctime stays");
        assert_eq!(inodes.dirty_inodes(), [4], "saved with the next save");
        assert_eq!(inodes.begin_save(4).unwrap().atime, Some(200));
        inodes.end_save(4, true);
        assert!(
            !inodes.accessed(4, 201),
            "a second read right after: no change"
        );
        assert!(inodes.dirty_inodes().is_empty(), "and nothing to save");
    }

    #[test]
    fn directory_changes_move_times_and_link_count() {
        let inodes = Inodes::default();
        let mut dir = attr(1, 0, 1);
        dir.kind = Kind::Directory;
        dir.nlink = 2;
        inodes.opened(dir);
        inodes.dir_changed(1, 9, 1);
        let seen = inodes.get(1).unwrap();
        assert_eq!((seen.nlink, seen.mtime, seen.ctime), (3, 9, 9));
    }
}
