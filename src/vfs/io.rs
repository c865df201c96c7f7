//! File data: open, read, write, `fallocate`, fsync, resize and release, by the residency
//! rules: where an inode's data is comes from its catalog `data_state`, never from whether
//! a data file happens to exist.
//!
//! - `Empty`: no data file is needed; a read gives zeros up to the size (a hole), nothing
//!   at the end. The first write makes the data file.
//! - `Resident`, `Dirty`, `Archived`: the data file must exist; if it is missing, reads,
//!   writes and extensions fail with `EIO` and a log line names the inode and its state
//!   (never an empty read, never a new size). Truncating to 0 drops what is lost.
//! - `Released`: the data is only in the archive: `EIO`, logged "archive tier not
//!   available", until the archive tier can recall it.
//!
//! A write, `fallocate` or truncation makes a file `Dirty`, saved with its size by the
//! write-back (no extra round trip); when the last writer closes and the final save
//! succeeds it becomes `Resident`.

use std::io;

use std::sync::Arc;
use std::time::Duration;

use super::handles::OpenFile;
use super::killpriv::Caller;
use super::{Core, VfsError, MAX_IO};
use crate::data::DataFile;
use crate::meta::{now_ns, Attr, AttrChange, DataState, Kind, MetaError};
use crate::tier::Recall;

/// Longest a write refused for space waits for an eviction pass to make room.
const ROOM_WAIT: Duration = Duration::from_secs(10);

/// What an inode's data state says about its data here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residency {
    /// No data: zeros up to the size.
    Hole,
    /// The data must be in the store.
    Local,
    /// The data is elsewhere (the archive).
    Away,
}

impl Residency {
    /// The residency `state` gives.
    pub fn of(state: DataState) -> Residency {
        match state {
            DataState::Empty => Residency::Hole,
            DataState::Released | DataState::Damaged => Residency::Away,
            DataState::Resident | DataState::Dirty | DataState::Archived => Residency::Local,
        }
    }
}

/// What a write needs before its data goes in ([`Core::plan_write`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritePlan {
    /// The inode written.
    pub ino: u64,
    /// How many of the bytes may be written.
    pub len: usize,
    /// Permission bits to commit first (kill-priv clears set-id bits): needs the catalog.
    pub clear_setid: Option<u16>,
}

impl Core {
    /// Opens regular file `ino` (for writing if `write`); returns the handle. A released
    /// file's recall starts; reads through the handle wait for their range (see
    /// [`Core::open_file`] to wait for the whole file before writing).
    pub fn open(&self, ino: u64, write: bool) -> Result<u64, VfsError> {
        Ok(self.open_file(ino, write)?.0)
    }

    /// Opens regular file `ino` (for writing if `write`); returns the handle and, for a
    /// released file, the recall that brings its data back: reads wait for their range by
    /// themselves; a writer must wait for [`Recall::when_done`] before its first write.
    /// Opens wait while the tier drops the file's local data, and keep it from doing so.
    pub fn open_file(&self, ino: u64, write: bool) -> Result<(u64, Option<Arc<Recall>>), VfsError> {
        let _pin = self.files.pin(ino, write);
        let attr = self.attr(ino)?;
        match attr.kind {
            Kind::File => {}
            Kind::Directory => return Err(VfsError::EISDIR),
            _ => return Err(VfsError::ENXIO),
        }
        if Residency::of(attr.data_state) != Residency::Away {
            let fh = self.open_handle(attr, write, false)?.0;
            if self.tier.is_some() {
                self.inodes.opened_at(ino, now_ns());
            }
            return Ok((fh, None));
        }
        let Some(tier) = &self.tier else {
            return Err(self.released(ino));
        };
        if attr.data_state == DataState::Damaged {
            crate::log_limit::warn(
                "damaged file opened",
                format_args!(
                    "inode {ino}: damaged (its archive copy could not be recalled): EIO; an \
                     operator may recall it again (vsadmin recall)"
                ),
            );
            return Err(VfsError::EIO);
        }
        let recall = tier.recall(ino).map_err(|err| {
            crate::log_limit::warn(
                "recall refused",
                format_args!("inode {ino}: recall not possible: {err}; EIO"),
            );
            VfsError::EIO
        })?;
        let mut open = OpenFile::new(attr.ino, write);
        open.recall = Some(Arc::clone(&recall));
        self.inodes.opened(attr);
        Ok((self.files.insert(open), Some(recall)))
    }

    /// Closes handle `fh` of `ino` whose open failed after it was registered (its recall
    /// failed before a writer was answered).
    pub fn abandon_open(&self, ino: u64, fh: u64) {
        self.files.remove(fh);
        if self.inodes.released(ino) {
            self.reclaim(ino);
        }
    }

    /// Reads like [`Core::read`] and hands the result to `answer`: at once when the range
    /// is local, else from the recall's thread once it is (the caller's thread does not
    /// wait: FUSE threads stay free while a volume is slow).
    pub fn read_when_local(
        self: &Arc<Self>,
        fh: u64,
        offset: u64,
        size: u32,
        answer: impl FnOnce(Result<Vec<u8>, VfsError>) + Send + 'static,
    ) {
        if let Ok(open) = self.files.get(fh) {
            if let Some(recall) = &open.recall {
                let end = offset.saturating_add(u64::from(size)).min(recall.copy.size);
                if recall.local_up_to(end).is_none() {
                    let core = Arc::clone(self);
                    let answer = move |local: bool| {
                        answer(if local {
                            core.read(fh, offset, size)
                        } else {
                            Err(VfsError::EIO)
                        })
                    };
                    return recall.when_local(end, Box::new(answer));
                }
            }
        }
        answer(self.read(fh, offset, size));
    }

    /// Waits until bytes `offset..offset + size` of the file behind `open` are local, if
    /// it is being recalled; `EIO` if the recall failed.
    fn await_recalled(&self, open: &OpenFile, offset: u64, size: u64) -> Result<(), VfsError> {
        let Some(recall) = &open.recall else {
            return Ok(());
        };
        let end = offset.saturating_add(size).min(recall.copy.size);
        let local = match recall.local_up_to(end) {
            Some(local) => local,
            None => {
                let (tx, rx) = std::sync::mpsc::channel();
                recall.when_local(
                    end,
                    Box::new(move |local| {
                        let _ = tx.send(local);
                    }),
                );
                rx.recv().unwrap_or(false)
            }
        };
        if local {
            Ok(())
        } else {
            Err(VfsError::EIO)
        }
    }

    /// Opens a handle on regular file `attr`; returns it with the attributes to report.
    /// A new file (`fresh`) has no data to look for; the first write makes it.
    pub(super) fn open_handle(
        &self,
        attr: Attr,
        write: bool,
        fresh: bool,
    ) -> Result<(u64, Attr), VfsError> {
        let open = OpenFile::new(attr.ino, write);
        if !fresh {
            if let Some(existing) = self.store.open(attr.ino)? {
                let _ = open.data.set(existing);
            }
        }
        let attr = self.inodes.opened(attr);
        let fh = self.files.insert(open);
        Ok((fh, attr))
    }

    /// Reads up to `size` bytes at `offset` through handle `fh`. Never returns bytes past
    /// the recorded size (a crash can leave the data file longer).
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, VfsError> {
        let open = self.files.get(fh)?;
        self.await_recalled(&open, offset, u64::from(size))?;
        // relatime: in memory, saved later with the size and times.
        self.inodes.accessed(open.ino, now_ns());
        // An open file is tracked, so its size and state are known here without the catalog.
        let Some(attr) = self.inodes.get(open.ino) else {
            return Ok(Vec::new());
        };
        let wanted = u64::from(size.min(MAX_IO)).min(attr.size.saturating_sub(offset));
        let data = match self.existing_data(&open)? {
            Some(data) => data,
            None => {
                return match Residency::of(attr.data_state) {
                    Residency::Hole => Ok(vec![0; wanted as usize]),
                    Residency::Away => Err(self.released(open.ino)),
                    Residency::Local => {
                        Err(self.missing_data(attr.ino, attr.size, attr.data_state))
                    }
                }
            }
        };
        let mut buf = vec![0u8; wanted as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match data.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err.into()),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    /// Writes `data` at `offset` through `fh`, after FileMaxSize and CacheFreeLeastSize
    /// (which may shorten it); returns the bytes written. A write that stops part-way (a
    /// full cache) reports the bytes that reached the data, so the size the kernel and the
    /// catalog record covers exactly what was written.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<usize, VfsError> {
        let len = self.write_len(offset, data.len())?;
        self.write_admitted(fh, offset, &data[..len])
    }

    /// Checks the limits for a write of `len` bytes at `offset`; returns how many bytes may
    /// be written.
    /// With an archive tier, a write below `WriteCacheFreeSize` free pauses a little so
    /// eviction can catch up, and one refused for space (`CacheFreeLeastSize`) waits for an
    /// eviction pass and is tried once more: `ENOSPC` only when nothing could be evicted.
    fn write_len(&self, offset: u64, len: usize) -> Result<usize, VfsError> {
        let Some(tier) = &self.tier else {
            return self.limits.write_len(offset, len);
        };
        let pause = tier.write_pause(self.limits.available_estimate());
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        match self.limits.write_len(offset, len) {
            Err(VfsError::ENOSPC) if tier.make_room(ROOM_WAIT) => {
                self.limits.write_len(offset, len)
            }
            other => other,
        }
    }

    /// What a write of `len` bytes at `offset` through `fh` by `caller` needs first: the
    /// limits (FileMaxSize, CacheFreeLeastSize) say how many bytes may go in, then kill-priv
    /// whether set-id bits must be cleared ([`Core::set_perm`], which needs the catalog),
    /// in that order, as Linux checks limits before it removes privileges. The data then
    /// goes in with [`Core::write_admitted`].
    pub fn plan_write(
        &self,
        fh: u64,
        offset: u64,
        len: usize,
        caller: impl FnOnce() -> Caller,
    ) -> Result<WritePlan, VfsError> {
        self.may_change()?;
        let ino = self.files.get(fh)?.ino;
        let len = self.write_len(offset, len)?;
        Ok(WritePlan {
            ino,
            len,
            clear_setid: self.perm_after_modify(ino, caller),
        })
    }

    /// What a `fallocate` of `ino` with `mode` by `caller` needs first: `EOPNOTSUPP` for a
    /// mode other than allocating (0, `KEEP_SIZE`), punching holes or zeroing ranges; else
    /// the permission bits kill-priv must commit first, if any.
    pub fn plan_fallocate(
        &self,
        ino: u64,
        mode: i32,
        caller: impl FnOnce() -> Caller,
    ) -> Result<Option<u16>, VfsError> {
        let supported =
            libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE;
        if mode & !supported != 0 {
            return Err(VfsError::EOPNOTSUPP);
        }
        Ok(self.perm_after_modify(ino, caller))
    }

    /// [`Core::write`] of `data` that [`Core::plan_write`] admitted already.
    pub fn write_admitted(&self, fh: u64, offset: u64, data: &[u8]) -> Result<usize, VfsError> {
        self.may_change()?;
        let open = self.files.get(fh)?;
        self.write_checked(&open, offset, data)
    }

    fn write_checked(&self, open: &OpenFile, offset: u64, data: &[u8]) -> Result<usize, VfsError> {
        if let Some(recall) = &open.recall {
            // A writer waits for the whole recall before its first write (`open_file`).
            if recall.local_up_to(u64::MAX) != Some(true) {
                return Err(VfsError::EIO);
            }
        }
        // The size is looked up only when it matters: no data yet, or a write that may
        // start past the end (whose gap must read as zeros).
        let recorded = || self.inodes.get(open.ino);
        let file: &dyn DataFile = match open.data.get() {
            Some(file) => &**file,
            None => self.data_for_write(open, recorded().as_ref())?,
        };
        if offset > 0 {
            let recorded = recorded().map_or(0, |attr| attr.size);
            if offset > recorded {
                self.cut_stale_tail(open.ino, file, recorded)?;
            }
        }
        let mut written = 0;
        let failure = loop {
            if written == data.len() {
                break None;
            }
            match file.write_at(&data[written..], offset + written as u64) {
                Ok(0) => break Some(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => break Some(err),
            }
        };
        if written > 0 {
            let end = offset.saturating_add(written as u64);
            self.inodes.wrote(open.ino, end, now_ns());
            Ok(written)
        } else if let Some(err) = failure {
            Err(err.into())
        } else {
            Ok(0)
        }
    }

    /// `fallocate` through handle `fh` with Linux's `mode` bits.
    pub fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> Result<(), VfsError> {
        self.may_change()?;
        let open = self.files.get(fh)?;
        if i64::try_from(offset).is_err() || i64::try_from(length).is_err() {
            return Err(VfsError::EFBIG);
        }
        let frees = mode & libc::FALLOC_FL_PUNCH_HOLE != 0;
        self.limits
            .allocate(offset.saturating_add(length), length, !frees)?;
        let attr = self.inodes.get(open.ino);
        let recorded = attr.map_or(0, |attr| attr.size);
        let file: &dyn DataFile = match open.data.get() {
            Some(file) => &**file,
            None => self.data_for_write(&open, attr.as_ref())?,
        };
        let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        if !keep_size && offset.saturating_add(length) > recorded {
            self.cut_stale_tail(open.ino, file, recorded)?;
        }
        file.allocate(mode, offset, length)?;
        let end = if keep_size {
            0
        } else {
            offset.saturating_add(length)
        };
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 || end > 0 {
            // Contents (holes, zeros) or the size changed.
            self.inodes.wrote(open.ino, end, now_ns());
        } else {
            self.inodes.allocated(open.ino);
        }
        Ok(())
    }

    /// Makes what was written through `fh` durable: the data, a new data file's existence,
    /// and the size and times in the catalog.
    pub fn fsync(&self, fh: u64, datasync: bool) -> Result<(), VfsError> {
        let open = self.files.get(fh)?;
        // A file never written has no data: only its catalog row needs saving.
        if let Some(file) = self.existing_data(&open)? {
            file.sync(datasync)?;
        }
        // A new data file's directory entry must be durable too, or a crash loses it.
        if self.unsynced_entries.lock().remove(&open.ino) {
            if let Err(err) = self.store.sync_entry(open.ino) {
                self.unsynced_entries.lock().insert(open.ino);
                return Err(err.into());
            }
        }
        Ok(self.save(open.ino)?)
    }

    /// Whether `ino` has changes the catalog has not recorded (unsaved, or being saved).
    pub fn needs_save(&self, ino: u64) -> bool {
        self.inodes.needs_save(ino)
    }

    /// Whether a `flush` (a `close` of a descriptor) of handle `fh` on `ino` has nothing
    /// for the catalog to do (nothing unsaved, and not the last writer of data being
    /// changed), so it can be answered at once.
    pub fn flush_without_catalog(&self, ino: u64, fh: u64) -> bool {
        let last_dirty_writer = self.files.is_last_writer(fh) && self.inodes.is_dirty_data(ino);
        !(self.inodes.needs_save(ino) || last_dirty_writer)
    }

    /// Saves what is unsaved of `ino` at a `close` of a descriptor of handle `fh`. When `fh`
    /// is the last handle writing it, its data is complete: `Dirty` becomes `Resident` in
    /// the same save, so the release that follows has nothing to save (a later write through
    /// the same handle makes it `Dirty` again).
    pub fn flush(&self, ino: u64, fh: u64) -> Result<(), VfsError> {
        if self.files.is_last_writer(fh) {
            self.inodes.writers_closed(ino);
        }
        Ok(self.save(ino)?)
    }

    /// Closes handle `fh` of `ino` here when that needs no catalog work (nothing unsaved,
    /// and not the last writer of data being changed); returns whether the inode is to be
    /// reclaimed now ([`Core::reclaim`]), or `None` when [`Core::release`] must do it.
    pub fn release_without_catalog(&self, ino: u64, fh: u64) -> Option<bool> {
        if self.inodes.needs_save(ino)
            || (self.files.is_last_writer(fh) && self.inodes.is_dirty_data(ino))
        {
            return None;
        }
        self.files.remove(fh);
        Some(self.inodes.released(ino))
    }

    /// Closes handle `fh` of `ino`: the last writer's close makes `Dirty` data `Resident`;
    /// what is unsaved is saved; an unlinked inode no one references any more is reclaimed.
    pub fn release(&self, ino: u64, fh: u64) -> Result<(), VfsError> {
        if self
            .files
            .remove(fh)
            .is_some_and(|closed| closed.last_writer)
        {
            self.inodes.writers_closed(ino);
        }
        let saved = self.save(ino);
        if self.inodes.released(ino) {
            self.reclaim(ino);
        }
        Ok(saved?)
    }

    /// The data behind `open`, if the inode has some yet (another handle may have made it
    /// since this one was opened).
    fn existing_data<'a>(&self, open: &'a OpenFile) -> io::Result<Option<&'a dyn DataFile>> {
        if let Some(file) = open.data.get() {
            return Ok(Some(&**file));
        }
        Ok(self
            .store
            .open(open.ino)?
            .map(|file| &**open.data.get_or_init(|| file)))
    }

    /// The data behind `open` for a change, made now if the inode has none yet and its
    /// state allows (`Empty`; a hole of the recorded size is kept as zeros). `attr` is the
    /// inode's, as tracked.
    fn data_for_write<'a>(
        &self,
        open: &'a OpenFile,
        attr: Option<&Attr>,
    ) -> Result<&'a dyn DataFile, VfsError> {
        if let Some(file) = self.existing_data(open)? {
            return Ok(file);
        }
        let (state, size) = attr.map_or((DataState::Empty, 0), |a| (a.data_state, a.size));
        match Residency::of(state) {
            Residency::Hole => {}
            Residency::Away => return Err(self.released(open.ino)),
            Residency::Local => return Err(self.missing_data(open.ino, size, state)),
        }
        let (file, created) = self.store.create(open.ino)?;
        if created {
            self.unsynced_entries.lock().insert(open.ino);
        }
        if size > 0 && file.len()? < size {
            // An empty file of `size` bytes is that many zeros.
            file.set_len(size)?;
        }
        Ok(&**open.data.get_or_init(|| file))
    }

    /// The error for inode `ino` of `size` bytes, whose `state` says its data is here but
    /// it is missing (logged once per inode).
    fn missing_data(&self, ino: u64, size: u64, state: DataState) -> VfsError {
        if self.missing_reported.lock().insert(ino) {
            log::error!(
                "inode {ino}: size {size}, data state {state:?}, but its {} is missing; reads \
                 and writes fail with EIO",
                self.store.describe(ino)
            );
        }
        VfsError::EIO
    }

    /// The error for inode `ino`, whose data is only in the archive.
    fn released(&self, ino: u64) -> VfsError {
        crate::log_limit::warn(
            "archive tier not available",
            format_args!(
                "inode {ino}: data state Released (only in the archive), but the archive \
                 tier is not available: EIO"
            ),
        );
        VfsError::EIO
    }

    /// Cuts bytes of `file` past `recorded` (the inode's size) before an extension, so the
    /// gap reads zeros: they are left by a crash after writes whose size never reached the
    /// catalog, and are not the file's. The kernel serialises writes and truncations of one
    /// inode, so no acknowledged write of this mount lies past `recorded`.
    fn cut_stale_tail(&self, ino: u64, file: &dyn DataFile, recorded: u64) -> io::Result<()> {
        let len = file.len()?;
        if len > recorded {
            log::warn!(
                "inode {ino}: data file has {} bytes past the recorded size {recorded}; cut \
                 before extending",
                len - recorded
            );
            file.set_len(recorded)?;
        }
        Ok(())
    }

    /// Sets the size of regular file `ino` (through handle `fh` if given; `before` is its
    /// attributes now) as part of `change`, and commits `change`. The catalog commits
    /// before data is cut, so a failed commit loses nothing; an extension is made first
    /// (after cutting stale bytes past the recorded size, so the gap reads zeros) and undone
    /// if the commit fails. A file whose data is missing can only be truncated to 0 (`EIO`).
    /// The data state becomes `Empty` at size 0, else `Dirty` while a writer has it open,
    /// else `Resident`.
    pub(super) fn resize_and_commit(
        &self,
        ino: u64,
        fh: Option<u64>,
        size: u64,
        before: &Attr,
        change: &AttrChange,
    ) -> Result<Attr, VfsError> {
        let recorded = before.size;
        let handle = fh.and_then(|fh| self.files.get(fh).ok());
        // Without a handle, a transient one (a truncate by path).
        let transient;
        let open = match &handle {
            Some(open) => open,
            None => {
                transient = OpenFile::new(ino, true);
                &transient
            }
        };
        let state = self
            .inodes
            .get(ino)
            .map_or(before.data_state, |a| a.data_state);
        let existing = self.existing_data(open)?;
        let current = match existing {
            Some(file) => {
                if size > recorded {
                    self.cut_stale_tail(ino, file, recorded)?;
                }
                file.len()?
            }
            // Lost (or archived) data: only truncating to 0 (dropping it) can go on.
            None if size > 0 && Residency::of(state) == Residency::Away => {
                return Err(self.released(ino))
            }
            None if size > 0 && Residency::of(state) == Residency::Local => {
                return Err(self.missing_data(ino, recorded, state))
            }
            None => 0, // no data: a hole
        };
        // Only an extension needs data made.
        let file = if size > current {
            let tracked = Attr {
                data_state: state,
                size: 0, // the extension below sets the length
                ..*before
            };
            Some(self.data_for_write(open, Some(&tracked))?)
        } else {
            existing
        };
        if let (Some(file), true) = (file, size > current) {
            file.set_len(size)?;
        }
        let mut change = *change;
        change.data_state = Some(if size == 0 {
            DataState::Empty
        } else if self.files.is_open_for_write(ino) {
            DataState::Dirty
        } else {
            DataState::Resident
        });
        // Blocks as they will be: an extension is made already; a cut to 0 frees all; a
        // shrink is measured again after its cut, below.
        change.blocks = match file {
            _ if size == 0 => Some(0),
            Some(file) if size >= current => Some(file.blocks().unwrap_or(0)),
            Some(_) => None,
            None => Some(0),
        };
        match self.catalog.set_attr(ino, &change) {
            Err(err) => {
                if let (Some(file), true) = (file, size > current) {
                    if let Err(undo) = file.set_len(current) {
                        log::warn!("cannot undo the extension of inode {ino}: {undo}");
                    }
                }
                Err(err.into())
            }
            Ok(attr) => {
                if let (Some(file), true) = (file, size < current) {
                    file.set_len(size).map_err(|err| {
                        log::warn!("inode {ino}: size {size} committed but data not cut: {err}");
                        VfsError::from(err)
                    })?;
                }
                match (file, change.blocks) {
                    (Some(file), None) => Ok(self.record_blocks(ino, file).unwrap_or(attr)),
                    _ => Ok(attr),
                }
            }
        }
    }

    /// Records the blocks `file`, the data of `ino`, occupies after a shrink; the new
    /// attributes, or `None` (logged) if they could not be recorded: they are a measurement,
    /// the next save of the inode records them again.
    fn record_blocks(&self, ino: u64, file: &dyn DataFile) -> Option<Attr> {
        let change = AttrChange {
            blocks: Some(file.blocks().unwrap_or(0)),
            ..AttrChange::default()
        };
        self.catalog
            .set_attr(ino, &change)
            .map_err(|err: MetaError| log::warn!("cannot record the blocks of inode {ino}: {err}"))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_state_says_where_the_data_is() {
        assert_eq!(Residency::of(DataState::Empty), Residency::Hole);
        for local in [DataState::Resident, DataState::Dirty, DataState::Archived] {
            assert_eq!(Residency::of(local), Residency::Local, "{local:?}");
        }
        assert_eq!(Residency::of(DataState::Released), Residency::Away);
    }
}
