//! The inodes this mount tracks: those with open handles (files and directories) or with
//! size/time changes from writes not yet in the catalog.
//!
//! For a tracked inode the table is what the kernel is told: every change made through this
//! mount updates it with the attributes the catalog committed (non-dirty fields), writes
//! update its size and times, and attributes read from the catalog never override it (a
//! read can race with a change and return the state before it). Untracked inodes are read
//! from the catalog: the kernel caches their attributes itself.
//!
//! Attributes a change committed are taken only if they are not older than those the table
//! already took ([`Inodes::changed`]): changes of one inode commit one at a time (row lock)
//! but their results reach the table from different threads in any order.
//!
//! The table also counts the kernel's references ([`Inodes::looked_up`], [`Inodes::forgot`]):
//! an inode the kernel may still use (a lookup not yet forgotten, or an open handle) is kept
//! in the catalog after its last link goes, and reclaimed when the last reference goes.

use std::collections::HashMap;

use parking_lot::{Condvar, Mutex};

use super::journal::Pending;
use crate::meta::{Attr, AttrChange, DataState, Kind};

#[derive(Debug)]
struct Node {
    attr: Attr,
    /// Open file and directory handles.
    open: u32,
    /// Size or times changed by writes since the catalog was last updated.
    dirty: bool,
    /// A save of this inode is running (between `begin_save` and `end_save`).
    saving: bool,
    /// Blocks its data file occupied when last looked at, while no change happened since.
    blocks: Option<u64>,
    /// Counts changes, so blocks measured before one are not kept after it.
    changes: u64,
    /// Link count and status change time of the newest committed attributes taken: an
    /// older snapshot (fewer status changes) is refused.
    committed: Committed,
}

/// Which of two committed snapshots of one inode is newer: the catalog never moves a status
/// change time back, and a non-directory whose link count reached 0 is never linked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Committed {
    nlink: u32,
    ctime: i64,
    is_dir: bool,
}

impl Committed {
    fn of(attr: &Attr) -> Committed {
        Committed {
            nlink: attr.nlink,
            ctime: attr.ctime,
            is_dir: attr.kind == Kind::Directory,
        }
    }

    /// Whether `attr`, committed by some change, is older than this snapshot.
    fn is_newer_than(&self, attr: &Attr) -> bool {
        attr.ctime < self.ctime || (!self.is_dir && self.nlink == 0 && attr.nlink > 0)
    }
}

/// The kernel's references to an inode, and whether the catalog has unlinked it.
#[derive(Debug, Default)]
struct Refs {
    /// Entries replied (lookup, create, mknod, mkdir, symlink, link, readdirplus) minus
    /// those the kernel forgot.
    lookups: u64,
    /// Its last link went while it was still referenced: reclaim it when nothing is.
    unlinked: bool,
}

/// What a `getattr` of a tracked inode needs: its attributes, its data file's blocks if
/// known, and the change count to hand back to `Inodes::measured`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatView {
    /// The attributes.
    pub attr: Attr,
    /// 512-byte blocks of its data file, unless they may have changed since measured.
    pub blocks: Option<u64>,
    /// The change count when read.
    pub changes: u64,
}

/// The table of tracked inodes.
#[derive(Debug, Default)]
pub struct Inodes {
    /// The kernel's references; locked before `nodes` when both are needed.
    refs: Mutex<HashMap<u64, Refs>>,
    nodes: Mutex<HashMap<u64, Node>>,
    /// Signalled when a save ends.
    save_ended: Condvar,
}

impl Inodes {
    /// The attributes of a tracked inode.
    pub fn get(&self, ino: u64) -> Option<Attr> {
        self.nodes.lock().get(&ino).map(|n| n.attr)
    }

    /// A tracked inode's attributes with its data file's blocks, if measured since its last
    /// change (so repeated `getattr`s cost no system call).
    pub fn stat_view(&self, ino: u64) -> Option<StatView> {
        self.nodes.lock().get(&ino).map(|n| StatView {
            attr: n.attr,
            blocks: n.blocks,
            changes: n.changes,
        })
    }

    /// Records `blocks` measured for `ino` after [`Inodes::stat_view`] gave `changes`;
    /// dropped if the inode changed meanwhile.
    pub fn measured(&self, ino: u64, changes: u64, blocks: u64) {
        if let Some(node) = self.nodes.lock().get_mut(&ino) {
            if node.changes == changes {
                node.blocks = Some(blocks);
            }
        }
    }

    /// What the kernel should see for `attr` as just read from the catalog: a tracked
    /// inode's own attributes win.
    pub fn view(&self, attr: Attr) -> Attr {
        self.get(attr.ino).unwrap_or(attr)
    }

    /// Takes attributes a change committed to the catalog; a tracked inode keeps its unsaved
    /// size and times (and the later of the two status change times). Attributes older than
    /// those taken already (an earlier commit whose result arrives late) are refused. Returns
    /// what the kernel should see.
    pub fn changed(&self, attr: Attr) -> Attr {
        let mut nodes = self.nodes.lock();
        let Some(node) = nodes.get_mut(&attr.ino) else {
            return attr;
        };
        if node.committed.is_newer_than(&attr) {
            return node.attr;
        }
        node.committed = Committed::of(&attr);
        node.attr = merge(attr, node);
        node.blocks = None; // a truncation may have cut the data
        node.changes += 1;
        node.attr
    }

    /// A directory gained or lost an entry at `now` (its times become `now`, its link count
    /// moves by `nlink_delta`): for changes that return only the new inode's attributes.
    pub fn dir_changed(&self, dir: u64, now: i64, nlink_delta: i32) {
        if let Some(node) = self.nodes.lock().get_mut(&dir) {
            node.attr.mtime = now;
            node.attr.ctime = node.attr.ctime.max(now);
            node.attr.nlink = node.attr.nlink.saturating_add_signed(nlink_delta);
            node.committed.nlink = node.attr.nlink;
            node.committed.ctime = node.committed.ctime.max(now);
        }
    }

    /// A handle was opened on `attr.ino`; returns the attributes to use (a tracked inode's).
    /// `attr` was read from the catalog, so an unlink committed meanwhile may be missing from
    /// it: an inode known to be unlinked starts with link count 0.
    pub fn opened(&self, attr: Attr) -> Attr {
        let mut attr = attr;
        let refs = self.refs.lock();
        if refs.get(&attr.ino).is_some_and(|r| r.unlinked) && attr.kind != Kind::Directory {
            attr.nlink = 0;
        }
        let mut nodes = self.nodes.lock();
        drop(refs);
        let node = nodes.entry(attr.ino).or_insert_with(|| {
            // Dirty in the catalog but not tracked: no writer of this mount has it, so it
            // was left by a crash (its size was saved, the close was not): the data file
            // is what it is, record it Resident with the next save.
            let settle = attr.data_state == DataState::Dirty;
            let mut attr = attr;
            if settle {
                attr.data_state = DataState::Resident;
            }
            Node {
                attr,
                open: 0,
                dirty: settle,
                saving: false,
                blocks: None,
                changes: 0,
                committed: Committed::of(&attr),
            }
        });
        node.open += 1;
        node.attr
    }

    /// The last writer of `ino` closed: data that was being changed is complete now
    /// (`Dirty` becomes `Resident`, saved with the next save). Returns whether it changed.
    pub fn writers_closed(&self, ino: u64) -> bool {
        let mut nodes = self.nodes.lock();
        match nodes.get_mut(&ino) {
            Some(node) if node.attr.data_state == DataState::Dirty => {
                node.attr.data_state = DataState::Resident;
                node.dirty = true;
                true
            }
            _ => false,
        }
    }

    /// Whether `ino` is tracked with its data being changed (`Dirty`).
    pub fn is_dirty_data(&self, ino: u64) -> bool {
        self.nodes
            .lock()
            .get(&ino)
            .is_some_and(|n| n.attr.data_state == DataState::Dirty)
    }

    /// A handle on `ino` was released; returns whether the inode is to be reclaimed now (its
    /// last link went, this was its last handle and the kernel forgot it). An inode with no
    /// handles, nothing unsaved and no save running is no longer tracked.
    pub fn released(&self, ino: u64) -> bool {
        let mut refs = self.refs.lock();
        let mut nodes = self.nodes.lock();
        let Some(node) = nodes.get_mut(&ino) else {
            return false;
        };
        node.open = node.open.saturating_sub(1);
        let open = node.open;
        if open == 0 && !node.dirty && !node.saving {
            nodes.remove(&ino);
        }
        if open > 0 {
            return false;
        }
        match refs.get(&ino) {
            Some(r) if r.lookups == 0 => refs.remove(&ino).is_some_and(|r| r.unlinked),
            _ => false,
        }
    }

    /// The kernel is handed an entry for `ino` (it holds one more lookup reference until it
    /// forgets it). Counted before the reply goes out, so a reclaim cannot miss it: the
    /// kernel orders a lookup and an unlink or rename in one directory (directory lock), and
    /// a revalidating lookup is of an inode the kernel holds already.
    pub fn looked_up(&self, ino: u64) {
        self.refs.lock().entry(ino).or_default().lookups += 1;
    }

    /// The kernel forgot `count` lookups of `ino`; returns whether the inode is to be
    /// reclaimed now (unlinked, and neither looked up nor open any more).
    pub fn forgot(&self, ino: u64, count: u64) -> bool {
        let mut refs = self.refs.lock();
        let Some(r) = refs.get_mut(&ino) else {
            return false;
        };
        r.lookups = r.lookups.saturating_sub(count);
        if r.lookups > 0 || self.open_count(ino) > 0 {
            return false;
        }
        refs.remove(&ino).is_some_and(|r| r.unlinked)
    }

    /// The last link of non-directory `ino` went (a committed unlink or rename); returns
    /// whether it is to be reclaimed now. If the kernel still references it (a lookup not
    /// forgotten, an open handle) it is kept, and reclaimed by the [`Inodes::forgot`] or
    /// [`Inodes::released`] that drops the last reference. A tracked inode's link count
    /// becomes 0 (it may have been opened from a read older than the unlink).
    pub fn unlinked(&self, ino: u64) -> bool {
        let mut refs = self.refs.lock();
        let open = {
            let mut nodes = self.nodes.lock();
            match nodes.get_mut(&ino) {
                Some(node) => {
                    // Opened from a catalog read older than the unlink: no links now.
                    node.attr.nlink = 0;
                    node.committed.nlink = 0;
                    node.open
                }
                None => 0,
            }
        };
        match refs.get_mut(&ino) {
            Some(r) if r.lookups > 0 || open > 0 => {
                r.unlinked = true;
                false
            }
            Some(_) => {
                refs.remove(&ino);
                true
            }
            None if open > 0 => {
                refs.insert(
                    ino,
                    Refs {
                        lookups: 0,
                        unlinked: true,
                    },
                );
                false
            }
            None => true,
        }
    }

    /// Unlinked inodes kept for references the kernel held: all of them, once the kernel
    /// holds none (the file system is unmounted). Forgets every reference.
    pub fn take_unlinked(&self) -> Vec<u64> {
        self.refs
            .lock()
            .drain()
            .filter(|(_, r)| r.unlinked)
            .map(|(ino, _)| ino)
            .collect()
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

    /// The archive tier changed the data state of `ino` in the catalog to `state`: a
    /// tracked inode takes it, unless a write made it dirty meanwhile (its next save
    /// records that).
    pub fn set_data_state(&self, ino: u64, state: DataState) {
        if let Some(node) = self.nodes.lock().get_mut(&ino) {
            if node.attr.data_state != DataState::Dirty {
                node.attr.data_state = state;
            }
        }
    }

    /// Data was written to `ino` up to byte `end` at time `now`.
    /// Its data becomes `Dirty` (saved with the size).
    pub fn wrote(&self, ino: u64, end: u64, now: i64) {
        if let Some(node) = self.nodes.lock().get_mut(&ino) {
            node.attr.data_state = DataState::Dirty;
            node.attr.size = node.attr.size.max(end);
            node.attr.mtime = now;
            node.attr.ctime = node.attr.ctime.max(now);
            node.dirty = true;
            node.blocks = None;
            node.changes += 1;
        }
    }

    /// `ino` was read at `now`: its access time moves as under `relatime` (when it is not
    /// after the last change, or a day old), in memory only; the save that follows writes it
    /// with the size and times, so reads cost no catalog round trip. Returns whether it moved.
    ///
    /// Access times are best effort: while [`ATIME_TRACKED_MAX`] inodes are tracked (the
    /// database is gone and unsaved changes pile up), reads add no more.
    pub fn accessed(&self, ino: u64, now: i64) -> bool {
        let mut nodes = self.nodes.lock();
        let crowded = nodes.len() >= ATIME_TRACKED_MAX;
        let Some(node) = nodes.get_mut(&ino) else {
            return false;
        };
        if !relatime_due(&node.attr, now) || (crowded && !node.dirty) {
            return false;
        }
        node.attr.atime = now;
        node.dirty = true;
        true
    }

    /// `ino` was opened at `now` on a file system with an archive tier, whose eviction
    /// takes the least recently used files first: its access time moves when a read would
    /// move it ([`relatime_due`]: not accessed since its last change) or when it is at
    /// least [`OPEN_ATIME_GRANULARITY_NS`] old (reads served from the kernel's page cache
    /// never reach the file system, opens do), saved with the next save (at the latest
    /// when the file is closed). Best effort, as [`Inodes::accessed`].
    pub fn opened_at(&self, ino: u64, now: i64) {
        let mut nodes = self.nodes.lock();
        let crowded = nodes.len() >= ATIME_TRACKED_MAX;
        if let Some(node) = nodes.get_mut(&ino) {
            let due = relatime_due(&node.attr, now)
                || now.saturating_sub(node.attr.atime) >= OPEN_ATIME_GRANULARITY_NS;
            if due && (node.dirty || !crowded) {
                node.attr.atime = now;
                node.dirty = true;
            }
        }
    }

    /// Space was allocated to the data file of `ino` without a change of contents or size
    /// (`fallocate` with `FALLOC_FL_KEEP_SIZE`): its blocks are measured again, and saved
    /// with its size and times; its data becomes `Dirty`.
    pub fn allocated(&self, ino: u64) {
        if let Some(node) = self.nodes.lock().get_mut(&ino) {
            node.attr.data_state = DataState::Dirty;
            node.blocks = None;
            node.dirty = true;
            node.changes += 1;
        }
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
        // The write-back owns Empty, Dirty and Resident; Archived, Released and Damaged are
        // the archive tier's, which records them itself: a save carrying one read before
        // the tier's change would undo it.
        let data_state = match node.attr.data_state {
            state @ (DataState::Empty | DataState::Dirty | DataState::Resident) => Some(state),
            DataState::Archived | DataState::Released | DataState::Damaged => None,
        };
        Some(AttrChange {
            size: Some(node.attr.size),
            mtime: Some(node.attr.mtime),
            ctime: Some(node.attr.ctime),
            atime: Some(node.attr.atime),
            data_state,
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

    /// Size and times of every inode with changes the catalog may not have yet (unsaved or
    /// being saved), for the journal.
    pub fn pending(&self) -> Vec<Pending> {
        self.nodes
            .lock()
            .iter()
            .filter(|(_, n)| n.dirty || n.saving)
            .map(|(&ino, n)| Pending {
                ino,
                size: n.attr.size,
                mtime: n.attr.mtime,
                atime: n.attr.atime,
                ctime: n.attr.ctime,
            })
            .collect()
    }

    /// Stops tracking `ino` (it was deleted).
    pub fn remove(&self, ino: u64) {
        self.nodes.lock().remove(&ino);
    }
}

/// Tracked inodes beyond which a read no longer marks a clean inode unsaved for its access
/// time (a bound on what reads alone can keep in memory while the database is down).
pub const ATIME_TRACKED_MAX: usize = 65536;

/// How old an access time may get before a read moves it even when it is after the last
/// change (Linux `relatime`: one day).
const RELATIME_MAX_AGE_NS: i64 = 24 * 3600 * 1_000_000_000;

/// How far an open moves a file's access time at least (one second), so a file opened
/// often costs at most one save a second.
pub const OPEN_ATIME_GRANULARITY_NS: i64 = 1_000_000_000;

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
        merged.data_state = node.attr.data_state;
    }
    merged.ctime = committed.ctime.max(node.attr.ctime);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

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
            blocks: None,
            data_state: crate::meta::DataState::Empty,
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
        assert!(!inodes.released(7), "linked: nothing to reclaim");
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
        assert_eq!(
            inodes
                .pending()
                .iter()
                .map(|p| (p.ino, p.size))
                .collect::<Vec<_>>(),
            [(5, 10)],
            "and would go to the journal"
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
    fn reads_stop_marking_access_times_when_too_many_inodes_are_tracked() {
        let inodes = Inodes::default();
        for ino in 0..ATIME_TRACKED_MAX as u64 {
            inodes.opened(attr(ino + 100, 0, 1));
        }
        let mut stale = attr(1, 0, 100);
        stale.mtime = 100;
        inodes.opened(stale);
        assert!(
            !inodes.accessed(1, 200),
            "crowded: the access time is skipped"
        );
        assert!(inodes.dirty_inodes().is_empty());
        inodes.wrote(1, 10, 150);
        assert!(inodes.accessed(1, 200), "an inode unsaved anyway takes it");
    }

    #[test]
    fn measured_blocks_are_kept_until_the_next_change() {
        let inodes = Inodes::default();
        inodes.opened(attr(6, 0, 1));
        let view = inodes.stat_view(6).unwrap();
        assert_eq!(view.blocks, None, "not measured yet");
        inodes.measured(6, view.changes, 8);
        assert_eq!(inodes.stat_view(6).unwrap().blocks, Some(8));
        inodes.wrote(6, 8192, 2);
        let view = inodes.stat_view(6).unwrap();
        assert_eq!(view.blocks, None, "a write may allocate");
        // Measured before a change that lands before the result: not kept.
        inodes.wrote(6, 16384, 3);
        inodes.measured(6, view.changes, 16);
        assert_eq!(inodes.stat_view(6).unwrap().blocks, None);
        let view = inodes.stat_view(6).unwrap();
        inodes.measured(6, view.changes, 32);
        inodes.changed(attr(6, 0, 4)); // a truncation
        assert_eq!(inodes.stat_view(6).unwrap().blocks, None);
    }

    #[test]
    fn space_allocated_without_a_change_is_saved() {
        let inodes = Inodes::default();
        inodes.opened(attr(7, 0, 1));
        assert!(inodes.begin_save(7).is_none(), "nothing to save yet");
        inodes.allocated(7);
        let change = inodes.begin_save(7);
        assert!(
            change.is_some_and(|c| c.size == Some(0)),
            "a save records the new blocks: {change:?}"
        );
        inodes.end_save(7, true);
    }

    #[test]
    fn an_older_committed_snapshot_never_overwrites_a_newer_one() {
        let inodes = Inodes::default();
        inodes.opened(attr(8, 0, 5));
        // A save committed (link count 1, ctime 6), then a rename removed the last link
        // (ctime 9); the rename's result reaches the table first.
        let mut unlinked = attr(8, 0, 9);
        unlinked.nlink = 0;
        let saved = attr(8, 0, 6);
        assert_eq!(inodes.changed(unlinked).nlink, 0);
        let seen = inodes.changed(saved);
        assert_eq!(
            (seen.nlink, seen.ctime),
            (0, 9),
            "the save's older snapshot {saved:?} was taken over {unlinked:?}"
        );
        // Same status change time (a coarse clock): a file never gets a link back.
        assert_eq!(inodes.changed(attr(8, 0, 9)).nlink, 0);
        // Other fields too: an older chmod does not undo a newer one.
        let mut newer = attr(8, 0, 20);
        newer.perm = 0o600;
        let mut older = attr(8, 0, 15);
        older.perm = 0o644;
        older.nlink = 0;
        newer.nlink = 0;
        inodes.changed(newer);
        assert_eq!(inodes.changed(older).perm, 0o600, "older {older:?} won");
        assert_eq!(inodes.get(8).unwrap().perm, 0o600);
        // A newer snapshot is taken.
        let mut newest = attr(8, 0, 21);
        newest.perm = 0o640;
        newest.nlink = 0;
        assert_eq!(inodes.changed(newest).perm, 0o640);
    }

    #[test]
    fn an_open_after_the_unlink_took_effect_sees_no_links_even_from_an_older_read() {
        let inodes = Inodes::default();
        inodes.looked_up(18);
        let read_before_the_unlink = attr(18, 0, 1);
        assert!(!inodes.unlinked(18), "looked up: kept");
        let seen = inodes.opened(read_before_the_unlink);
        assert_eq!(seen.nlink, 0, "opened from {read_before_the_unlink:?}");
        assert!(!inodes.released(18), "still looked up");
        assert!(inodes.forgot(18, 1));

        // The open's insert came first, the unlink's mark after it.
        inodes.looked_up(19);
        inodes.opened(attr(19, 0, 1));
        assert!(!inodes.unlinked(19));
        assert_eq!(inodes.get(19).unwrap().nlink, 0);
    }

    #[test]
    fn an_unlinked_inode_is_reclaimed_when_the_kernel_forgot_it_and_closed_it() {
        let inodes = Inodes::default();
        assert!(inodes.unlinked(10), "never referenced: reclaimed at once");

        inodes.looked_up(11);
        inodes.looked_up(11);
        assert!(!inodes.unlinked(11), "looked up: kept");
        assert!(!inodes.forgot(11, 1), "one lookup still held");
        assert!(inodes.forgot(11, 1), "all forgotten: reclaimed");
        assert!(!inodes.forgot(11, 1), "and only once");

        inodes.looked_up(12);
        inodes.opened(attr(12, 0, 1));
        assert!(!inodes.unlinked(12));
        assert!(!inodes.forgot(12, 1), "forgotten but still open: kept");
        assert!(inodes.released(12), "last handle closed: reclaimed");

        inodes.looked_up(13);
        inodes.opened(attr(13, 0, 1));
        assert!(!inodes.unlinked(13));
        assert!(!inodes.released(13), "closed but still looked up: kept");
        assert!(inodes.forgot(13, 1), "forgotten: reclaimed");

        inodes.opened(attr(14, 0, 1));
        assert!(!inodes.unlinked(14), "open (never looked up): kept");
        assert!(inodes.released(14));

        inodes.looked_up(15);
        assert!(!inodes.forgot(15, 1), "linked: forgotten without a reclaim");
        inodes.looked_up(16);
        inodes.looked_up(17);
        assert!(!inodes.unlinked(17));
        assert_eq!(
            inodes.take_unlinked(),
            [17],
            "unmounted: every unlinked one"
        );
        assert!(!inodes.forgot(16, 1), "and every reference is gone");
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
