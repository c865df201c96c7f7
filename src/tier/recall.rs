//! Recall: the data of released files comes back from the archive into the cache, block by
//! block, off the FUSE and catalog threads.
//!
//! - One [`Recall`](super::queue::Recall) per inode at a time: every reader of the file shares it. A reader waits
//!   only for its own range ([`Recall::when_local`](super::queue::Recall::when_local)): it is answered as soon as the blocks
//!   up to its end are in the cache (published every `CacheFileSizeBlock` bytes).
//! - Requests queue per volume and each drive serves one volume at a time in sequence
//!   order (the order of the copies on the tape), moving to the volume with the oldest
//!   waiting request only when its volume has none left: what HSMs do to avoid tape
//!   mounts and seeks. Moves are counted (`volume_switches`).
//! - After a recall someone asked for, the released files that follow it on the same
//!   volume are pre-read, up to `CacheFileSizeRead` bytes, while the cache is above its
//!   upper watermark and no request waits on another volume.
//! - Digests recorded with the copy are verified; a mismatch, a missing volume or copy, or a
//!   read error fails the recall: logged with file, volume and cause, the file is marked
//!   `Damaged` and its readers get `EIO` (never zeros). The partial data is removed.
//! - A crash leaves the inode `Released` with a partial data file: the next recall starts
//!   it again from the first byte.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;

use md5::Digest;

use super::queue::{Position, Recall};
use super::stats::Counters;
use super::Shared;
use crate::archive::ArchiveError;
use crate::meta::{ArchiveCopy, DataState, MetaError};

/// Buffer of the digest-verifying path (the kernel copies when there is nothing to verify).
const VERIFY_CHUNK: usize = 1 << 20;
/// Most copies asked of the catalog at once for a pre-read.
const PRE_READ_BATCH: usize = 64;

/// One drive's loop: takes a drive while there is work and serves recalls until none is
/// left, then gives the drive back.
pub fn drive_loop(shared: &Shared) {
    let mut at = Position::default();
    while shared.recalls.await_work() {
        let Some(mut drive) = shared.drives.for_recall() else {
            return;
        };
        while let Some(recall) = shared.recalls.next_for(&mut at) {
            if !has_room(shared, recall.copy.size) {
                // Waiting for room may need migration (files become evictable once
                // archived), which needs a drive: this one is given back meanwhile.
                drop(drive);
                let room = room_for(shared, recall.copy.size);
                let Some(again) = shared.drives.for_recall() else {
                    recall.finish(false);
                    shared.recalls.done(&recall);
                    return;
                };
                drive = again;
                if let Err(cause) = room {
                    fail(shared, &recall, &Failure::Cache(cause));
                    shared.recalls.done(&recall);
                    continue;
                }
            }
            if at.volume.as_deref() != Some(recall.copy.volume.as_str()) {
                Counters::add(&shared.counters.volume_switches, 1);
                at.volume = Some(recall.copy.volume.clone());
            }
            at.seq = recall.copy.seq;
            serve(shared, &recall);
            shared.recalls.done(&recall);
            if !recall.pre_read.load(Ordering::Relaxed)
                && recall.local_up_to(u64::MAX) == Some(true)
            {
                pre_read_after(shared, &recall.copy);
            }
        }
        drop(drive);
        shared.recalls.release(&mut at);
    }
}

/// Recalls `recall` and finishes it.
fn serve(shared: &Shared, recall: &Recall) {
    let ino = recall.ino;
    // Only a Released or Damaged inode is recalled: one recalled meanwhile (a request that
    // came just after the last recall ended) has its data, which must not be rewritten.
    match shared.catalog.get_attr(ino) {
        Ok(attr) if matches!(attr.data_state, DataState::Released | DataState::Damaged) => {}
        Ok(attr) => return recall.finish(attr.data_state.is_local()),
        Err(err) => {
            shared.errors.error(format!(
                "recall of inode {ino} not started: the catalog did not answer ({err}); its \
                 readers get EIO"
            ));
            return recall.finish(false);
        }
    }
    if let Err(failure) = copy_back(shared, recall) {
        return fail(shared, recall, &failure);
    }
    match shared.catalog.recalled(ino) {
        Ok(attr) => {
            shared.host_state(ino, attr.data_state);
            Counters::add(&shared.counters.recalled_files, 1);
            Counters::add(&shared.counters.recalled_bytes, recall.copy.size);
            if recall.pre_read.load(Ordering::Relaxed) {
                Counters::add(&shared.counters.pre_read_files, 1);
            }
            recall.finish(true);
        }
        Err(err) => {
            // The data is here and verified: its readers get it; the catalog still says
            // Released, so the next open recalls it again.
            shared.errors.error(format!(
                "inode {ino}: recalled from volume {} but the catalog could not record it \
                 ({err}); it stays released",
                recall.copy.volume
            ));
            recall.finish(true);
        }
    }
}

/// Why a recall failed.
enum Failure {
    /// The archive's side: the volume or copy is missing, unreadable, or not what was
    /// recorded. The file is damaged.
    Archive(String),
    /// The cache's side (full, or failing): the copy may be fine; the file stays released
    /// and the next read tries again.
    Cache(String),
}

/// Longest a recall waits for eviction to make room for its file.
const ROOM_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether the cache has room for `bytes` above CacheFreeLeastSize now.
fn has_room(shared: &Shared, bytes: u64) -> bool {
    super::evict::cache_space(shared)
        .is_some_and(|(free, _)| free >= bytes.saturating_add(shared.options.free_least_size))
}

/// Waits until the cache has room for `bytes` above CacheFreeLeastSize, asking eviction
/// for it; the cause when it cannot.
fn room_for(shared: &Shared, bytes: u64) -> Result<(), String> {
    let need = bytes.saturating_add(shared.options.free_least_size);
    loop {
        let Some((free, total)) = super::evict::cache_space(shared) else {
            return Err("the cache's free space cannot be measured".into());
        };
        if free >= need {
            return Ok(());
        }
        if need > total || !shared.make_room(ROOM_WAIT) {
            return Err(format!(
                "no room in the cache: {free} bytes free, the file needs {bytes} above \
                 CacheFreeLeastSize ({}) and nothing more can be evicted",
                shared.options.free_least_size
            ));
        }
    }
}

/// Copies the data back into the cache block by block, verifying recorded digests.
fn copy_back(shared: &Shared, recall: &Recall) -> Result<(), Failure> {
    let cache =
        |what: &str, e: std::io::Error| Failure::Cache(format!("cache data file {what}: {e}"));
    let archive = Failure::Archive;
    let copy = &recall.copy;
    let reader = shared
        .folder
        .open_copy(&copy.volume, copy.seq)
        .map_err(|e| archive(e.to_string()))?;
    if reader.size() != copy.size {
        return Err(archive(format!(
            "the copy has {} bytes, the catalog recorded {}",
            reader.size(),
            copy.size
        )));
    }
    let (data, created) = shared
        .cache
        .open_data(recall.ino)
        .map_err(|e| cache("open", e))?;
    data.set_len(0).map_err(|e| cache("truncate", e))?;
    let sums = reader.block_sums().map_err(describe)?;
    if let Some(sums) = &sums {
        if sums.size != copy.size {
            return Err(archive(format!(
                "the copy's block sums describe {} bytes, the catalog recorded {}",
                sums.size, copy.size
            )));
        }
    }
    let mut verifier = Verifier::for_copy(copy);
    // A block reaches readers only once checked: against its CRC when the copy has block
    // sums; a copy with whole-file digests but no block sums (written before them) is
    // published only when complete and verified; a copy with neither has nothing to check.
    let publish_early = sums.is_some() || verifier.is_none();
    let chunk = sums
        .as_ref()
        .map_or(VERIFY_CHUNK as u64, |s| s.block_size.max(1));
    let mut block = shared.options.recall_block.max(1);
    if sums.is_some() {
        block = block.div_ceil(chunk) * chunk;
    }
    let mut buf = Vec::new();
    let mut pos = 0;
    while pos < copy.size {
        let end = pos.saturating_add(block).min(copy.size);
        if verifier.is_none() && sums.is_none() {
            let n = reader
                .copy_range_to(pos, end - pos, &data)
                .map_err(describe)?;
            if n != end - pos {
                return Err(archive(format!("the copy ended at byte {}", pos + n)));
            }
        } else {
            let checks = Checks {
                chunk,
                sums: sums.as_ref(),
                verifier: verifier.as_mut(),
            };
            copy_checked(&reader, &data, pos, end, checks, &mut buf)?;
        }
        pos = end;
        if publish_early {
            recall.advance(pos);
        }
    }
    data.sync_all().map_err(|e| cache("fsync", e))?;
    if created {
        shared
            .cache
            .sync_entry(recall.ino)
            .map_err(|e| cache("entry fsync", e))?;
    }
    if let Some(verifier) = verifier {
        verifier.check(copy).map_err(archive)?;
    }
    Ok(())
}

/// What a buffered copy checks: each chunk of `chunk` bytes against its block sum (when
/// the copy has them) and everything through the whole-file digests (when recorded).
struct Checks<'a> {
    chunk: u64,
    sums: Option<&'a crate::archive::BlockSums>,
    verifier: Option<&'a mut Verifier>,
}

/// Copies bytes `start..end` of the copy to `data` through `buf`, checking each chunk
/// before it is written.
fn copy_checked(
    reader: &crate::archive::CopyReader,
    data: &File,
    start: u64,
    end: u64,
    mut checks: Checks<'_>,
    buf: &mut Vec<u8>,
) -> Result<(), Failure> {
    buf.resize(checks.chunk as usize, 0);
    let mut pos = start;
    while pos < end {
        let want = (end - pos).min(checks.chunk) as usize;
        let n = reader.read_at(pos, &mut buf[..want]).map_err(describe)?;
        if n < want {
            return Err(Failure::Archive(format!(
                "the copy ended at byte {}",
                pos + n as u64
            )));
        }
        let bytes = &buf[..n];
        if let Some(sums) = checks.sums {
            let index = (pos / checks.chunk) as usize;
            if !sums.check(index, bytes) {
                return Err(Failure::Archive(format!(
                    "block {index} (bytes {pos}..{}) does not match its recorded CRC",
                    pos + n as u64
                )));
            }
        }
        if let Some(verifier) = checks.verifier.as_deref_mut() {
            verifier.update(bytes);
        }
        data.write_all_at(bytes, pos)
            .map_err(|e| Failure::Cache(format!("cache data file write: {e}")))?;
        pos += n as u64;
    }
    Ok(())
}

/// A failure of a copy between volume and cache, by the side that failed.
fn describe(err: ArchiveError) -> Failure {
    match err {
        ArchiveError::Target { source, .. } => {
            Failure::Cache(format!("cache data file write: {source}"))
        }
        err => Failure::Archive(err.to_string()),
    }
}

/// The digests a copy recorded, computed again over what is read back.
struct Verifier {
    md5: Option<md5::Md5>,
    sha1: Option<sha1::Sha1>,
}

impl Verifier {
    fn for_copy(copy: &ArchiveCopy) -> Option<Verifier> {
        (copy.md5.is_some() || copy.sha1.is_some()).then(|| Verifier {
            md5: copy.md5.map(|_| md5::Md5::new()),
            sha1: copy.sha1.map(|_| sha1::Sha1::new()),
        })
    }

    fn update(&mut self, bytes: &[u8]) {
        if let Some(h) = &mut self.md5 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(bytes);
        }
    }

    fn check(self, copy: &ArchiveCopy) -> Result<(), String> {
        if let (Some(h), Some(want)) = (self.md5, copy.md5) {
            let got: [u8; 16] = h.finalize().into();
            if got != want {
                return Err(format!(
                    "MD5 mismatch: read back {}, recorded {}",
                    crate::archive::manifest::hex(&got),
                    crate::archive::manifest::hex(&want)
                ));
            }
        }
        if let (Some(h), Some(want)) = (self.sha1, copy.sha1) {
            let got: [u8; 20] = h.finalize().into();
            if got != want {
                return Err(format!(
                    "SHA1 mismatch: read back {}, recorded {}",
                    crate::archive::manifest::hex(&got),
                    crate::archive::manifest::hex(&want)
                ));
            }
        }
        Ok(())
    }
}

/// A failed recall: logged with file, volume and cause; on the archive's side the file is
/// marked damaged; the partial data removed; readers answered `EIO`.
fn fail(shared: &Shared, recall: &Recall, failure: &Failure) {
    let ino = recall.ino;
    let path = shared
        .catalog
        .path_of(ino)
        .map(|p| String::from_utf8_lossy(&p).into_owned())
        .unwrap_or_else(|_| "(no name)".into());
    let (cause, outcome) = match failure {
        Failure::Archive(cause) => {
            let marked = match shared.catalog.mark_damaged(ino) {
                Ok(attr) => {
                    shared.host_state(ino, attr.data_state);
                    "marked damaged".to_owned()
                }
                Err(MetaError::Errno(libc::EAGAIN)) => "already marked".to_owned(),
                Err(err) => format!("could not be marked damaged ({err})"),
            };
            (cause, format!("the file is {marked}, reads fail with EIO"))
        }
        Failure::Cache(cause) => (
            cause,
            "the file stays released; these reads fail with EIO, the next ones try again"
                .to_owned(),
        ),
    };
    shared.errors.error(format!(
        "recall of {path} (inode {ino}) from volume {} copy {} failed: {cause}; {outcome}",
        recall.copy.volume, recall.copy.seq
    ));
    if let Err(err) = shared.cache.remove(ino) {
        log::warn!("inode {ino}: partial recall not removed from the cache: {err}");
    }
    Counters::add(&shared.counters.recall_failures, 1);
    recall.finish(false);
}

/// Queues pre-reads of the released files after `copy` on its volume, up to
/// `CacheFileSizeRead` bytes, while the cache is above its upper watermark.
fn pre_read_after(shared: &Shared, copy: &ArchiveCopy) {
    let budget = shared.options.pre_read;
    if budget == 0 || !shared.cache_has_room() {
        return;
    }
    let Ok(next) = shared
        .catalog
        .released_after(&copy.volume, copy.seq, PRE_READ_BATCH)
    else {
        return;
    };
    let mut taken = 0u64;
    for candidate in next {
        if taken.saturating_add(candidate.size) > budget {
            break;
        }
        taken += candidate.size;
        shared.recalls.request(candidate.ino, candidate, true);
    }
}
