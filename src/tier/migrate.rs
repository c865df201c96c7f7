//! Migration: resident files are copied to a volume once nobody writes them, their last
//! write is `WriteToTapeWaitFile` old and their path matches the patterns; copies start in
//! batches (`WriteToTapeWaitSize` bytes waiting, or the oldest waiting
//! `WriteToTapeWaitTime`). Each copy is fsynced, then recorded in the catalog, which makes
//! the file `Archived` only if it is still the data copied (same size and modification
//! time, still `Resident`): a write or delete during the copy aborts that copy (its file on
//! the volume is marked superseded and removed), not the batch.
//!
//! Superseded copies (a newer copy was recorded, or the file was deleted) are deleted from
//! the volumes once there are `DeleteTapeFileTriggerNum` of them, those superseded at least
//! `DeleteTapeFileTimeDiff` ago: marked in the volume's manifest first, then removed, then
//! forgotten by the catalog.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::stats::Counters;
use super::Shared;
use crate::archive::{ArchiveError, FileMeta, MarkKind, VolumeWriter};
use crate::meta::{now_ns, ArchiveCopy, Attr, MetaError};

/// Candidates asked of the catalog at once.
const PAGE: usize = 256;
/// Most candidates looked at in one scan (the rest wait for the next).
const MAX_SCAN: usize = 100_000;
/// Most files remembered as not matching the patterns (each is looked at again after).
const MAX_EXCLUDED: usize = 100_000;
/// How long a file found not matching the patterns is not looked at again (unless it
/// changes): a folder renamed above it changes its path without changing it.
const RECHECK: Duration = Duration::from_secs(60);
/// Superseded copies deleted per clean-up round.
const CLEANUP_BATCH: usize = 256;

/// A file ready to be copied.
struct Ready {
    attr: Attr,
    path: Vec<u8>,
}

/// The migration thread's state between scans.
#[derive(Default)]
pub struct Migrator {
    writer: Option<VolumeWriter>,
    /// Files whose path matches no pattern: the status change time seen (a rename changes
    /// it) and when they were looked at (a renamed parent folder does not change it, so
    /// they are looked at again after [`RECHECK`]).
    excluded: HashMap<u64, (i64, Instant)>,
    /// Files seen ready: when first, at which status change time, and their path then (so
    /// a file waiting for its batch costs no path lookup per round).
    first_ready: HashMap<u64, (Instant, i64, Vec<u8>)>,
    /// The archive had no volume above its reserve at the last copy.
    archive_full: bool,
}

impl Migrator {
    /// One round: scans the catalog, copies a batch when one is due (or files asked for),
    /// deletes superseded copies when enough are due.
    pub fn round(&mut self, shared: &Shared) {
        let asked = std::mem::take(&mut *shared.archive_asked.lock());
        // Each volume found full is tried again only in the next round, so a round never
        // goes round between full volumes.
        shared.clear_full_marks();
        let ready = self.scan(shared, &asked);
        let bytes: u64 = ready.iter().map(|r| r.attr.size).sum();
        let oldest = self
            .first_ready
            .values()
            .map(|(since, _, _)| since)
            .min()
            .map(Instant::elapsed);
        shared.waiting.store(bytes, Ordering::Relaxed);
        let due = bytes >= shared.options.batch_size
            || oldest.is_some_and(|age| age >= shared.options.batch_time)
            || !asked.is_empty();
        if due && !ready.is_empty() {
            let batch: Vec<Ready> = if bytes >= shared.options.batch_size
                || oldest.is_some_and(|age| age >= shared.options.batch_time)
            {
                ready
            } else {
                ready
                    .into_iter()
                    .filter(|r| asked.contains(&r.attr.ino))
                    .collect()
            };
            self.copy_batch(shared, batch);
        }
        self.clean_up(shared);
    }

    /// The files ready to be copied now (and those `asked` for, whatever their age).
    fn scan(&mut self, shared: &Shared, asked: &[u64]) -> Vec<Ready> {
        let now = now_ns();
        let wait = i64::try_from(shared.options.wait_file.as_nanos()).unwrap_or(i64::MAX);
        let mut ready = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut after = 0;
        let mut looked = 0;
        while looked < MAX_SCAN {
            let page = match shared.catalog.migration_candidates(after, PAGE) {
                Ok(page) => page,
                Err(err) => {
                    log::warn!("migration: the catalog did not list candidates: {err}");
                    break;
                }
            };
            let Some(last) = page.last() else { break };
            after = last.ino;
            looked += page.len();
            for attr in page {
                seen.insert(attr.ino);
                let asked_for = asked.contains(&attr.ino);
                if attr.size == 0 || (!asked_for && now.saturating_sub(attr.mtime) < wait) {
                    continue;
                }
                let excluded = self.excluded.get(&attr.ino);
                if !asked_for
                    && excluded
                        .is_some_and(|(ctime, at)| *ctime == attr.ctime && at.elapsed() < RECHECK)
                {
                    continue;
                }
                let known = match self.first_ready.get(&attr.ino) {
                    Some((since, ctime, path))
                        if *ctime == attr.ctime && since.elapsed() < RECHECK =>
                    {
                        Some(path.clone())
                    }
                    _ => None,
                };
                let path = match known {
                    Some(path) => path,
                    None => match shared.catalog.path_of(attr.ino) {
                        Ok(path) => path,
                        Err(_) => continue,
                    },
                };
                if !asked_for && !shared.options.archives(&path) {
                    if self.excluded.len() < MAX_EXCLUDED {
                        self.excluded.insert(attr.ino, (attr.ctime, Instant::now()));
                    }
                    continue;
                }
                let entry = self
                    .first_ready
                    .entry(attr.ino)
                    .or_insert_with(|| (Instant::now(), attr.ctime, path.clone()));
                if entry.1 != attr.ctime || entry.2 != path {
                    *entry = (entry.0, attr.ctime, path.clone());
                }
                ready.push(Ready { attr, path });
            }
        }
        self.first_ready.retain(|ino, _| seen.contains(ino));
        self.excluded.retain(|ino, _| seen.contains(ino));
        ready
    }

    fn copy_batch(&mut self, shared: &Shared, batch: Vec<Ready>) {
        shared.copying.store(true, Ordering::Relaxed);
        self.copy_each(shared, batch);
        shared.copying.store(false, Ordering::Relaxed);
    }

    fn copy_each(&mut self, shared: &Shared, batch: Vec<Ready>) {
        for ready in batch {
            if shared.stopping() {
                return;
            }
            let Some(_drive) = shared.drives.for_migration() else {
                return;
            };
            let ino = ready.attr.ino;
            match self.copy_one(shared, &ready) {
                Copied::Recorded | Copied::Skipped => {
                    self.first_ready.remove(&ino);
                }
                Copied::Aborted => {
                    Counters::add(&shared.counters.copies_aborted, 1);
                    self.first_ready.remove(&ino);
                }
                Copied::NoVolume => return,
            }
            // The drive goes back here, so a waiting recall takes it before the next copy.
        }
    }

    /// Copies one file and records it.
    fn copy_one(&mut self, shared: &Shared, ready: &Ready) -> Copied {
        let attr = &ready.attr;
        let ino = attr.ino;
        let Some(host) = shared.host() else {
            return Copied::Skipped;
        };
        if host.needs_save(ino) {
            return Copied::Skipped;
        }
        let Some(cancel) = host.files().claim_for_copy(ino) else {
            return Copied::Skipped;
        };
        let _claim = scopeguard(|| host.files().end_claim(ino));
        let source = match shared.cache.open_existing(ino) {
            Ok(Some(file)) => file,
            Ok(None) => {
                shared.errors.error(format!(
                    "migration of inode {ino}: resident in the catalog but its data file {} is \
                     missing; not archived",
                    shared.cache.path(ino).display()
                ));
                return Copied::Skipped;
            }
            Err(err) => {
                shared.errors.error(format!(
                    "migration of inode {ino}: cannot open its data: {err}"
                ));
                return Copied::Skipped;
            }
        };
        match source.metadata().map(|m| m.len()) {
            Ok(len) if len == attr.size => {}
            _ => return Copied::Skipped, // longer than recorded: the next save settles it
        }
        let meta = FileMeta {
            ino,
            path: ready.path.clone(),
            mode: libc::S_IFREG | u32::from(attr.perm),
            uid: attr.uid,
            gid: attr.gid,
            mtime_ns: attr.mtime,
            ctime_ns: attr.ctime,
        };
        loop {
            let Some(writer) = self.writer(shared) else {
                return Copied::NoVolume;
            };
            let record = match writer.copy(&source, &meta, &shared.options.copy, &cancel) {
                Ok(record) => record,
                Err(ArchiveError::Cancelled { .. }) => return Copied::Aborted,
                Err(
                    err @ (ArchiveError::BelowReserve { .. } | ArchiveError::VolumeFull { .. }),
                ) => {
                    log::info!("migration: {err}; moving to the next volume");
                    self.writer = None;
                    shared.mark_full(writer_label(&err));
                    continue;
                }
                Err(err @ ArchiveError::Source { .. }) => {
                    shared
                        .errors
                        .error(format!("migration of inode {ino}: {err}; not archived"));
                    return Copied::Skipped;
                }
                Err(err) => {
                    shared.errors.error(format!(
                        "migration of inode {ino}: {err}; trying another volume"
                    ));
                    shared.mark_full(self.writer.as_ref().map(|w| w.label().to_owned()));
                    self.writer = None;
                    continue;
                }
            };
            let writer = self.writer.as_mut().expect("the writer that copied");
            let copy = ArchiveCopy {
                ino,
                volume: writer.label().to_owned(),
                seq: record.seq,
                size: record.size,
                mtime: attr.mtime,
                md5: record.md5,
                sha1: record.sha1,
                archived_ns: record.archived_ns,
                superseded_ns: None,
            };
            if cancel.load(Ordering::Acquire) {
                take_back(shared, writer, &copy);
                return Copied::Aborted;
            }
            return match shared.catalog.record_copy(&copy) {
                Ok(attr) => {
                    host.data_state_changed(ino, attr.data_state);
                    Counters::add(&shared.counters.migrated_files, 1);
                    Counters::add(&shared.counters.migrated_bytes, copy.size);
                    if !shared.cache_has_room() {
                        // Space is short and this file can now make room.
                        shared.kick(|s| &mut s.evict);
                    }
                    Copied::Recorded
                }
                Err(MetaError::Errno(libc::EAGAIN)) => {
                    take_back(shared, writer, &copy);
                    Copied::Aborted
                }
                Err(err) => {
                    // Whether it committed is unknown: the copy stays on the volume (only
                    // space is lost if it did not; the catalog keeps the file resident).
                    shared.errors.error(format!(
                        "migration of inode {ino}: copy {} on volume {} written but not \
                         recorded: {err}; the file stays resident and is copied again later",
                        copy.seq, copy.volume
                    ));
                    Copied::Skipped
                }
            };
        }
    }

    /// The writer of a volume that takes copies: the current one, else the first (by
    /// label) with more than its reserve free. `None` (logged once) when there is none.
    fn writer(&mut self, shared: &Shared) -> Option<&mut VolumeWriter> {
        if self.writer.is_none() {
            let volumes = match shared.folder.scan() {
                Ok(volumes) => volumes,
                Err(err) => {
                    shared.errors.error(format!("migration: {err}"));
                    Vec::new()
                }
            };
            for volume in volumes.iter().filter(|v| v.takes_copies) {
                if shared.is_marked_full(&volume.label) {
                    continue;
                }
                match shared.folder.writer(&volume.label) {
                    Ok(writer) => {
                        self.writer = Some(writer);
                        break;
                    }
                    Err(err) => {
                        shared.errors.error(format!("migration: {err}"));
                    }
                }
            }
            let full = self.writer.is_none();
            if full && !self.archive_full {
                shared.errors.error(
                    "the archive is full: no volume has more than TapeReservedMinFreeSize \
                     free (or none can be written); files stay dirty until one has"
                        .to_owned(),
                );
            } else if !full && self.archive_full {
                log::info!("the archive takes copies again");
            }
            self.archive_full = full;
            shared.archive_full.store(full, Ordering::Relaxed);
        }
        self.writer.as_mut()
    }

    /// Deletes superseded copies when enough are due.
    fn clean_up(&mut self, shared: &Shared) {
        let trigger = shared.options.delete_trigger.max(1);
        match shared.catalog.superseded_count() {
            Ok(count) if count >= trigger => {}
            _ => return,
        }
        let before = now_ns().saturating_sub(
            i64::try_from(shared.options.delete_after.as_nanos()).unwrap_or(i64::MAX),
        );
        let Ok(copies) = shared.catalog.superseded_copies(before, CLEANUP_BATCH) else {
            return;
        };
        for copy in copies {
            if shared.stopping() {
                return;
            }
            let mut other;
            let writer = match self.writer.as_mut() {
                Some(w) if w.label() == copy.volume => w,
                _ => match shared.folder.writer(&copy.volume) {
                    Ok(w) => {
                        other = w;
                        &mut other
                    }
                    Err(err) => {
                        log::warn!("clean-up of copy {} on {}: {err}", copy.seq, copy.volume);
                        continue;
                    }
                },
            };
            if delete_copy(shared, writer, &copy).is_ok()
                && shared.catalog.forget_copy(&copy.volume, copy.seq).is_ok()
            {
                Counters::add(&shared.counters.copies_deleted, 1);
            }
        }
    }
}

/// How one file's copy ended.
enum Copied {
    Recorded,
    Skipped,
    Aborted,
    NoVolume,
}

/// The volume an error names.
fn writer_label(err: &ArchiveError) -> Option<String> {
    match err {
        ArchiveError::BelowReserve { volume, .. } | ArchiveError::VolumeFull { volume, .. } => {
            Some(volume.clone())
        }
        _ => None,
    }
}

/// Takes back a copy the catalog will not record (the file changed): marked superseded in
/// the manifest, then removed.
fn take_back(shared: &Shared, writer: &mut VolumeWriter, copy: &ArchiveCopy) {
    if let Err(err) = delete_copy(shared, writer, copy) {
        log::warn!(
            "copy {} of inode {} on volume {} could not be taken back: {err}",
            copy.seq,
            copy.ino,
            copy.volume
        );
    }
}

/// Marks `copy` superseded in its volume's manifest, then removes its file (with its block
/// sums).
fn delete_copy(
    shared: &Shared,
    writer: &mut VolumeWriter,
    copy: &ArchiveCopy,
) -> Result<(), String> {
    writer
        .mark(MarkKind::Superseded, copy.seq, copy.ino)
        .map_err(|e| e.to_string())?;
    let dir = shared
        .folder
        .volume_path(&copy.volume)
        .map_err(|e| e.to_string())?;
    crate::archive::copy::remove_copy_files(&dir, copy.seq).map_err(|e| e.to_string())?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// Runs `f` when dropped.
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

/// How long the migration thread sleeps between rounds.
pub fn pause(shared: &Shared) -> Duration {
    shared.options.scan_interval()
}
