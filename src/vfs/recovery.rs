//! Start-up recovery, before anything is served, in this order: the catalog is migrated;
//! the data store checks it belongs to the catalog (`DataStore::bind`); sizes and times the
//! catalog missed are replayed from the journal ([`replay_journal`]); inodes left unlinked
//! (a crash, or open-unlinked files of the last run) are purged; the store sweeps away what
//! no inode owns (`DataStore::sweep`).
//!
//! The purge deletes every inode no directory entry names. That is right only because the
//! owner lease (`crate::meta::lease`) guarantees a single server per catalog: a second
//! server on the same catalog would purge the first one's open-but-unlinked files.

use super::journal::Journal;
use crate::data::{cache_error, DataStore, StartError, SweepOptions};
use crate::meta::{AttrChange, DataState, MetaEngine, MetaError, OwnerFence};

/// Runs start-up recovery (see the module); returns the journal to keep writing.
pub(super) fn recover(
    catalog: &dyn MetaEngine,
    store: &dyn DataStore,
    rebind: bool,
    sweep: &SweepOptions,
    fence: &OwnerFence,
) -> Result<Journal, StartError> {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    catalog.migrate(uid, gid)?;
    let journal_path = Journal::new(store.folder()).path();
    let binding = store.bind(catalog, rebind, &journal_path)?;
    let mut journal = Journal::new(store.folder());
    if !binding.foreign {
        replay_journal(catalog, store, &mut journal)?;
    }
    // Inodes no entry names are this server's own leftovers only while it holds the owner
    // lease (taken before this start-up): under another live server they would be its
    // open-but-unlinked files.
    if let Err(reason) = fence.check() {
        return Err(StartError::Refused(format!(
            "not reclaiming unlinked inodes: {reason}"
        )));
    }
    purge_orphans(catalog, store)?;
    store.sweep(catalog, binding, sweep)?;
    Ok(journal)
}

/// Deletes inodes no entry names, with their data. Valid only under the owner lease (see
/// the module).
fn purge_orphans(catalog: &dyn MetaEngine, store: &dyn DataStore) -> Result<(), StartError> {
    for ino in catalog.orphans()? {
        catalog.purge(ino)?;
        if let Err(err) = store.remove(ino) {
            log::warn!("cannot remove the data of orphan inode {ino}: {err}");
        }
        log::info!("reclaimed unlinked inode {ino}");
    }
    Ok(())
}

/// Applies the journal's unsaved sizes and times to the catalog, then removes it. A file
/// whose data was being written when the server stopped (`Dirty`, or still `Empty` in the
/// catalog) is recorded as it is now: `Resident` if it has data, else `Empty`.
pub(super) fn replay_journal(
    catalog: &dyn MetaEngine,
    store: &dyn DataStore,
    journal: &mut Journal,
) -> Result<(), StartError> {
    let path = journal.path();
    let entries = journal.read().map_err(|e| {
        StartError::Refused(format!(
            "{e}. It holds sizes and times the catalog has not recorded; move it aside to \
             start without them (the files then keep the sizes the catalog has)."
        ))
    })?;
    if entries.is_empty() {
        return Ok(());
    }
    let (mut applied, mut superseded) = (0usize, 0usize);
    for entry in &entries {
        let attr = match catalog.get_attr(entry.ino) {
            Ok(attr) => attr,
            Err(MetaError::Errno(libc::ENOENT)) => {
                superseded += 1; // deleted since
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        if attr.ctime > entry.ctime {
            superseded += 1;
            continue;
        }
        let data_state = match attr.data_state {
            DataState::Empty | DataState::Dirty if entry.size > 0 => Some(DataState::Resident),
            DataState::Dirty => Some(DataState::Empty),
            _ => None,
        };
        let change = AttrChange {
            size: Some(entry.size),
            mtime: Some(entry.mtime),
            atime: Some(entry.atime),
            ctime: Some(entry.ctime),
            // Not journalled: a measurement, taken again from the data file as it is now.
            blocks: Some(store.blocks(entry.ino)),
            data_state,
            ..AttrChange::default()
        };
        match catalog.set_attr(entry.ino, &change) {
            Ok(_) => applied += 1,
            Err(MetaError::Errno(libc::ENOENT)) => superseded += 1,
            Err(err) => return Err(err.into()),
        }
    }
    journal.clear().map_err(|e| cache_error(&path, e))?;
    log::warn!(
        "journal {}: replayed unsaved sizes and times of {applied} files into the catalog \
         ({superseded} superseded by newer changes)",
        path.display()
    );
    Ok(())
}
