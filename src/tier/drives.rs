//! The drives: at most `ArchiveDrives` volumes are read or written at once. Recalls (someone
//! waits for them) go before migration (it can wait): a migration takes a drive only while
//! no recall waits for one, and gives it back between files when one does.

use parking_lot::{Condvar, Mutex};

/// The drives of the archive, shared by recall and migration.
pub struct Drives {
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    free: usize,
    recalls_waiting: usize,
    stopped: bool,
}

/// A drive taken; given back when dropped.
pub struct Drive<'a> {
    drives: &'a Drives,
}

impl Drop for Drive<'_> {
    fn drop(&mut self) {
        self.drives.state.lock().free += 1;
        self.drives.freed.notify_all();
    }
}

impl Drives {
    /// `count` drives (at least one).
    pub fn new(count: usize) -> Drives {
        Drives {
            state: Mutex::new(State {
                free: count.max(1),
                recalls_waiting: 0,
                stopped: false,
            }),
            freed: Condvar::new(),
        }
    }

    /// Takes a drive for a recall, waiting for one; `None` once stopped.
    pub fn for_recall(&self) -> Option<Drive<'_>> {
        let mut state = self.state.lock();
        state.recalls_waiting += 1;
        while state.free == 0 && !state.stopped {
            self.freed.wait(&mut state);
        }
        state.recalls_waiting -= 1;
        if state.stopped {
            self.freed.notify_all();
            return None;
        }
        state.free -= 1;
        Some(Drive { drives: self })
    }

    /// Takes a drive for migration, waiting while none is free or a recall waits for one;
    /// `None` once stopped.
    pub fn for_migration(&self) -> Option<Drive<'_>> {
        let mut state = self.state.lock();
        while (state.free == 0 || state.recalls_waiting > 0) && !state.stopped {
            self.freed.wait(&mut state);
        }
        if state.stopped {
            return None;
        }
        state.free -= 1;
        Some(Drive { drives: self })
    }

    /// Whether a recall waits for a drive (a migration then gives its drive back).
    pub fn recall_waiting(&self) -> bool {
        self.state.lock().recalls_waiting > 0
    }

    /// Wakes every waiter with `None` from now on.
    pub fn stop(&self) {
        self.state.lock().stopped = true;
        self.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_waiting_recall_goes_before_migration() {
        let drives = Arc::new(Drives::new(1));
        let held = drives.for_migration().unwrap();
        let recaller = {
            let drives = Arc::clone(&drives);
            std::thread::spawn(move || drives.for_recall().is_some())
        };
        while !drives.recall_waiting() {
            std::thread::yield_now();
        }
        drop(held);
        assert!(recaller.join().unwrap(), "the recall got the drive");
        assert!(drives.for_migration().is_some(), "and gave it back");
    }

    #[test]
    fn stop_releases_waiters() {
        let drives = Arc::new(Drives::new(1));
        let _held = drives.for_recall().unwrap();
        let waiter = {
            let drives = Arc::clone(&drives);
            std::thread::spawn(move || drives.for_migration().is_none())
        };
        drives.stop();
        assert!(waiter.join().unwrap());
    }
}
