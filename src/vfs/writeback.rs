//! Write-back: sizes, times and data states that writes changed in memory reach the catalog
//! on a timer (one second by default), on flush, fsync and release, in one `set_attr` per
//! inode (no round trip per write). What a round could not save is kept in the local
//! journal ([`super::journal`]) until a round saves everything.

use super::journal::Pending;
use super::{Core, Unsaved};
use crate::log_limit;
use crate::meta::MetaError;

impl Core {
    /// The timer: saves unsaved changes every `save_interval` until stopped.
    pub(super) fn flush_loop(&self) {
        let mut stop = self.stop.lock();
        while !*stop {
            self.wake.wait_for(&mut stop, self.save_interval);
            if *stop {
                break;
            }
            parking_lot::MutexGuard::unlocked(&mut stop, || {
                self.flush_dirty();
                log_limit::flush();
            });
        }
    }

    /// Saves unsaved sizes and times; stops at the first inode the database cannot take
    /// (the rest stay unsaved for the next round instead of each waiting out the timeout).
    /// A round that left changes unsaved records them all in the journal; a round that
    /// saved everything removes the journal.
    pub fn flush_dirty(&self) {
        let mut failed = false;
        for ino in self.inodes.dirty_inodes() {
            if let Err(err) = self.save(ino) {
                log_limit::warn(
                    "cannot save size and times",
                    format_args!("cannot save size and times of inode {ino}: {err}"),
                );
                failed = true;
                if matches!(err, MetaError::Unavailable(_)) {
                    break;
                }
            }
        }
        let mut journal = self.journal.lock();
        let recorded = if failed {
            journal.record(&self.inodes.pending())
        } else {
            journal.clear()
        };
        if let Err(err) = recorded {
            log::error!(
                "journal {}: cannot write it: {err}",
                journal.path().display()
            );
        }
    }

    /// Makes the journal hold exactly what is unsaved now; returns what that is, if any.
    pub fn settle_journal(&self) -> Result<(), Unsaved> {
        let mut journal = self.journal.lock();
        let pending: Vec<Pending> = self.inodes.pending();
        let recorded = journal.record(&pending);
        if pending.is_empty() {
            if let Err(err) = recorded {
                log::warn!(
                    "journal {}: everything is saved but it cannot be removed: {err}",
                    journal.path().display()
                );
            }
            return Ok(());
        }
        Err(Unsaved {
            inodes: pending.len(),
            bytes: pending.iter().map(|p| p.size).sum(),
            journal: recorded
                .map(|()| journal.path())
                .map_err(|err| err.to_string()),
        })
    }

    /// Writes unsaved size, times and data state of `ino` to the catalog. Fenced off (the
    /// owner lease is lost) it saves nothing: the changes stay unsaved (and journalled).
    pub fn save(&self, ino: u64) -> Result<(), MetaError> {
        if !self.inodes.needs_save(ino) {
            return Ok(());
        }
        // Without the lease the sizes stay unsaved (and go to the journal).
        self.options.fence.check().map_err(MetaError::Unavailable)?;
        let Some(mut change) = self.inodes.begin_save(ino) else {
            return Ok(());
        };
        // Measured once per save, so a `stat` of the closed file reads it from the catalog.
        change.blocks = Some(self.blocks_of(ino));
        let result = match self.catalog.set_attr(ino, &change) {
            Ok(attr) => {
                self.inodes.changed(attr);
                Ok(())
            }
            Err(MetaError::Errno(libc::ENOENT)) => Ok(()), // deleted meanwhile
            Err(err) => Err(err),
        };
        self.inodes.end_save(ino, result.is_ok());
        result
    }
}
