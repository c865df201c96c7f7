//! Eviction: when free space on the cache file system falls below the lower watermark
//! (`max(CacheFreeMinSize, CacheFreeMinPercent%)`), the local data of archived, closed
//! files is dropped, least recently accessed first, until free space is above the upper
//! watermark (`max(CacheFreeMaxSize, CacheFreeMaxPercent%)`). Checked every
//! `CachePurgeWaitTime` and at once when a write finds space short.
//!
//! Candidates come from the catalog's index on (state, access time), a page at a time,
//! never a scan of all inodes. A dirty, resident or open file is never evicted: the catalog
//! makes a file `Released` only if it is still `Archived` with the same modification time
//! and a live copy, the open-file registry refuses files open or being opened, and opens
//! wait while a file is being evicted. The catalog change comes first, the data file's
//! removal second: a crash between them leaves a released file with a stale data file,
//! which the next recall overwrites.

use std::time::Duration;

use super::stats::Counters;
use super::Shared;
use crate::meta::{Attr, MetaError};

/// Candidates asked of the catalog at once.
const PAGE: usize = 128;

/// What one eviction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Files whose local data was dropped.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Free bytes on the cache file system after the pass.
    pub free: u64,
    /// The pass ran out of candidates before reaching the upper watermark.
    pub exhausted: bool,
}

/// Free and total bytes on the cache file system.
pub fn cache_space(shared: &Shared) -> Option<(u64, u64)> {
    let space = shared.cache.space().ok()?;
    Some((
        space.blocks_available.saturating_mul(space.block_size),
        space.blocks.saturating_mul(space.block_size),
    ))
}

/// One pass: nothing when free space is at or above the lower watermark, else evicts until
/// it is above the upper one or no candidate is left.
pub fn pass(shared: &Shared) -> Pass {
    let Some((mut free, total)) = cache_space(shared) else {
        return Pass::default();
    };
    let (low, high) = shared.options.watermarks(total);
    let mut done = Pass {
        free,
        ..Pass::default()
    };
    if free >= low {
        return done;
    }
    let mut after = None;
    while free < high && !shared.stopping() {
        let page = match shared.catalog.eviction_candidates(after, PAGE) {
            Ok(page) => page,
            Err(err) => {
                log::warn!("eviction: the catalog did not list candidates: {err}");
                break;
            }
        };
        let Some(last) = page.last() else {
            done.exhausted = true;
            break;
        };
        after = Some((last.atime, last.ino));
        for attr in page {
            if evict(shared, &attr).is_ok() {
                done.files += 1;
                done.bytes += attr.size;
                if let Some((now_free, _)) = cache_space(shared) {
                    free = now_free;
                }
                if free >= high {
                    break;
                }
            }
        }
    }
    done.free = free;
    if done.files > 0 {
        log::info!(
            "eviction: dropped the local data of {} files ({} bytes); {} bytes free (watermarks \
             {low}..{high})",
            done.files,
            done.bytes,
            free
        );
    }
    done
}

/// Why a file was not evicted.
#[derive(Debug, PartialEq, Eq)]
pub enum NotEvicted {
    /// Open, being opened, with unsaved changes, or busy with the tier.
    InUse,
    /// Not archived (any more), or changed since it was.
    NotArchived,
    /// The catalog did not answer.
    Catalog(String),
}

/// Drops the local data of archived, closed `attr` (as the catalog listed it).
pub fn evict(shared: &Shared, attr: &Attr) -> Result<(), NotEvicted> {
    let ino = attr.ino;
    let host = shared.host().ok_or(NotEvicted::InUse)?;
    if host.needs_save(ino) || !host.files().claim_for_eviction(ino) {
        return Err(NotEvicted::InUse);
    }
    let result = match shared.catalog.release(ino, attr.mtime) {
        Ok(released) => {
            host.data_state_changed(ino, released.data_state);
            if let Err(err) = shared.cache.remove(ino) {
                // Released in the catalog: the stale file is overwritten by the next recall.
                log::warn!("eviction of inode {ino}: its data file was not removed: {err}");
            }
            if let Some(hook) = shared.released.get() {
                hook(ino);
            }
            Counters::add(&shared.counters.evicted_files, 1);
            Counters::add(&shared.counters.evicted_bytes, attr.size);
            Ok(())
        }
        Err(MetaError::Errno(libc::EAGAIN)) => Err(NotEvicted::NotArchived),
        Err(err) => Err(NotEvicted::Catalog(err.to_string())),
    };
    host.files().end_claim(ino);
    result
}

/// How long the eviction thread sleeps between checks.
pub fn pause(shared: &Shared) -> Duration {
    shared
        .options
        .purge_wait_time
        .max(Duration::from_millis(100))
}
