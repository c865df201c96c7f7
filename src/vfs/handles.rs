//! Open handles and the registry of open files: which inodes are open, and which are open
//! for writing (what the archive tier's evictor must ask before it drops a file's data).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex};

use super::listing::Listing;
use super::VfsError;
use crate::data::DataFile;
use crate::tier::Recall;

/// One open file handle.
pub struct OpenFile {
    /// The inode.
    pub ino: u64,
    /// Opened for writing.
    pub write: bool,
    /// The inode's data, once it has some (it is made by the first write).
    pub(super) data: OnceLock<Box<dyn DataFile>>,
    /// The recall that brings the data back, for a file opened while released: reads wait
    /// for their range.
    pub(super) recall: Option<Arc<Recall>>,
}

impl OpenFile {
    /// A handle on `ino` without data yet.
    pub(super) fn new(ino: u64, write: bool) -> OpenFile {
        OpenFile {
            ino,
            write,
            data: OnceLock::new(),
            recall: None,
        }
    }
}

/// How an inode is open.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Usage {
    handles: u32,
    writers: u32,
}

/// What the archive tier holds on an inode while it works on it.
#[derive(Debug)]
enum Claim {
    /// A copy to the archive runs; set the flag to abort it (a writer came).
    Copy(Arc<AtomicBool>),
    /// Its local data is being dropped: opens wait until that is done.
    Eviction,
}

/// What closing a handle left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    /// The inode.
    pub ino: u64,
    /// It was the inode's last handle open for writing.
    pub last_writer: bool,
}

/// File and directory handles of one mount.
#[derive(Default)]
pub struct OpenFiles {
    next: AtomicU64,
    files: Mutex<Files>,
    /// Signalled when an eviction claim ends.
    evicted: Condvar,
    /// Open directory handles with what they have fetched but not yet listed.
    dirs: Mutex<HashMap<u64, Arc<Mutex<Listing>>>>,
}

#[derive(Default)]
struct Files {
    handles: HashMap<u64, Arc<OpenFile>>,
    usage: HashMap<u64, Usage>,
    /// Opens in progress per inode ([`OpenFiles::pin`]).
    pins: HashMap<u64, u32>,
    /// The archive tier's claims.
    claims: HashMap<u64, Claim>,
}

impl Files {
    /// A writer is coming to `ino`: a copy of it running is aborted.
    fn cancel_copy(&self, ino: u64) {
        if let Some(Claim::Copy(cancel)) = self.claims.get(&ino) {
            cancel.store(true, Ordering::Release);
        }
    }
}

/// An open of an inode in progress ([`OpenFiles::pin`]): its data is not evicted until
/// this is dropped (by then the handle is registered, or the open failed).
pub struct Pin<'a> {
    files: &'a OpenFiles,
    ino: u64,
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        let mut files = self.files.files.lock();
        if let Some(count) = files.pins.get_mut(&self.ino) {
            *count -= 1;
            if *count == 0 {
                files.pins.remove(&self.ino);
            }
        }
    }
}

impl OpenFiles {
    /// Registers `file`; returns its handle number.
    pub(super) fn insert(&self, file: OpenFile) -> u64 {
        let fh = self.next_handle();
        let mut files = self.files.lock();
        if file.write {
            files.cancel_copy(file.ino);
        }
        let usage = files.usage.entry(file.ino).or_default();
        usage.handles += 1;
        usage.writers += u32::from(file.write);
        files.handles.insert(fh, Arc::new(file));
        fh
    }

    /// Starts an open of `ino` (for writing if `write`): waits while the archive tier drops
    /// its local data (a short catalog change and an unlink), then keeps it from doing so
    /// until the returned pin is dropped. A writer aborts a copy of the inode that runs.
    /// Read the inode's attributes after this returns: an eviction may have changed them.
    pub fn pin(&self, ino: u64, write: bool) -> Pin<'_> {
        let mut files = self.files.lock();
        while matches!(files.claims.get(&ino), Some(Claim::Eviction)) {
            self.evicted.wait(&mut files);
        }
        if write {
            files.cancel_copy(ino);
        }
        *files.pins.entry(ino).or_default() += 1;
        Pin { files: self, ino }
    }

    /// Aborts a copy of `ino` to the archive that runs (its data or its name changed
    /// without a handle: a truncation by path, an unlink).
    pub fn cancel_copy(&self, ino: u64) {
        self.files.lock().cancel_copy(ino);
    }

    /// Claims `ino` for a copy to the archive: `None` while a handle writes it (or the tier
    /// works on it already); else the flag a writer's open sets to abort the copy. End the
    /// claim with [`OpenFiles::end_claim`].
    pub fn claim_for_copy(&self, ino: u64) -> Option<Arc<AtomicBool>> {
        let mut files = self.files.lock();
        if files.usage.get(&ino).is_some_and(|u| u.writers > 0) || files.claims.contains_key(&ino) {
            return None;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        files.claims.insert(ino, Claim::Copy(Arc::clone(&cancel)));
        Some(cancel)
    }

    /// Claims `ino` for dropping its local data: `false` while it is open, being opened or
    /// claimed already. Opens of it wait until [`OpenFiles::end_claim`].
    pub fn claim_for_eviction(&self, ino: u64) -> bool {
        let mut files = self.files.lock();
        if files.usage.contains_key(&ino)
            || files.pins.contains_key(&ino)
            || files.claims.contains_key(&ino)
        {
            return false;
        }
        files.claims.insert(ino, Claim::Eviction);
        true
    }

    /// Ends the tier's claim on `ino`; opens waiting for it go on.
    pub fn end_claim(&self, ino: u64) {
        let ended = self.files.lock().claims.remove(&ino);
        if matches!(ended, Some(Claim::Eviction)) {
            self.evicted.notify_all();
        }
    }

    /// The open file behind handle `fh`.
    pub fn get(&self, fh: u64) -> Result<Arc<OpenFile>, VfsError> {
        self.files
            .lock()
            .handles
            .get(&fh)
            .cloned()
            .ok_or(VfsError::EBADF)
    }

    /// Whether closing `fh` would close the last handle writing its inode.
    pub fn is_last_writer(&self, fh: u64) -> bool {
        let files = self.files.lock();
        files.handles.get(&fh).is_some_and(|file| {
            file.write && files.usage.get(&file.ino).is_some_and(|u| u.writers == 1)
        })
    }

    /// Closes handle `fh`; `None` if it was not open.
    pub fn remove(&self, fh: u64) -> Option<Closed> {
        let mut files = self.files.lock();
        let file = files.handles.remove(&fh)?;
        let usage = files.usage.entry(file.ino).or_default();
        usage.handles = usage.handles.saturating_sub(1);
        let last_writer = file.write && usage.writers == 1;
        usage.writers = usage.writers.saturating_sub(u32::from(file.write));
        if usage.handles == 0 {
            files.usage.remove(&file.ino);
        }
        Some(Closed {
            ino: file.ino,
            last_writer,
        })
    }

    /// Whether `ino` has an open file handle.
    pub fn is_open(&self, ino: u64) -> bool {
        self.files.lock().usage.contains_key(&ino)
    }

    /// Whether `ino` has a file handle open for writing.
    pub fn is_open_for_write(&self, ino: u64) -> bool {
        self.files
            .lock()
            .usage
            .get(&ino)
            .is_some_and(|usage| usage.writers > 0)
    }

    /// Open file handles.
    pub fn len(&self) -> usize {
        self.files.lock().handles.len()
    }

    /// Whether no file handle is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers an open directory; returns its handle number.
    pub(super) fn open_dir(&self) -> u64 {
        let fh = self.next_handle();
        self.dirs.lock().insert(fh, Arc::default());
        fh
    }

    /// The listing of directory handle `fh` (a fresh one for a handle this mount did not
    /// hand out).
    pub(super) fn listing(&self, fh: u64) -> Arc<Mutex<Listing>> {
        self.dirs.lock().get(&fh).cloned().unwrap_or_default()
    }

    /// Closes directory handle `fh`.
    pub(super) fn close_dir(&self, fh: u64) {
        self.dirs.lock().remove(&fh);
    }

    /// Open directory handles.
    pub fn dirs_open(&self) -> usize {
        self.dirs.lock().len()
    }

    fn next_handle(&self) -> u64 {
        // Starts at 1: 0 is not a handle.
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_knows_which_inodes_are_open_and_for_writing() {
        let files = OpenFiles::default();
        let reader = files.insert(OpenFile::new(7, false));
        let writer = files.insert(OpenFile::new(7, true));
        let second_writer = files.insert(OpenFile::new(7, true));
        assert!(files.is_open(7) && files.is_open_for_write(7));
        assert!(!files.is_open(8));
        assert_eq!(files.get(reader).unwrap().ino, 7);
        assert_eq!(files.get(999).err(), Some(VfsError::EBADF));
        assert!(!files.is_last_writer(writer), "two writers");
        assert_eq!(
            files.remove(writer),
            Some(Closed {
                ino: 7,
                last_writer: false
            })
        );
        assert!(files.is_last_writer(second_writer));
        assert!(!files.is_last_writer(reader), "a reader is no writer");
        assert_eq!(
            files.remove(second_writer),
            Some(Closed {
                ino: 7,
                last_writer: true
            })
        );
        assert!(
            files.is_open(7) && !files.is_open_for_write(7),
            "the reader"
        );
        assert_eq!(files.remove(reader).map(|c| c.last_writer), Some(false));
        assert!(!files.is_open(7));
        assert_eq!(files.remove(reader), None, "closed once");
        assert!(files.is_empty());
    }
}
