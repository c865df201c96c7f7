//! The archive tier's catalog (schema version 7): copies of file data on archive volumes
//! (`vs_copies`), the candidates for migration and eviction (read through the `vs_inodes`
//! indexes `by_state_ino` and `by_state_atime`, never a scan of all inodes), the
//! conditional state changes of archiving, releasing and recalling, and the status totals.
//!
//! Every change runs through the change runner (recorded, so a change whose connection was
//! lost is answered from its record, not run twice). A conditional change locks the inode's
//! row first (`SELECT ... FOR UPDATE`) and answers `EAGAIN`, changing nothing, when the
//! condition no longer holds. Inode rows are locked before copy rows, as purge does.

use mysql::prelude::Queryable;
use mysql::Transaction;

use super::attributes::{attr_from_row, lock_inode, AttrRow};
use super::MysqlMeta;
use crate::meta::{
    now_ns, ArchiveCopy, Attr, DataState, Kind, MetaError, StateTotal, ROOT_INO, VOLUME_MAX,
};

/// Longest walk up the tree before it counts as corrupt (as in `MemoryMeta`).
const MAX_DEPTH: usize = 100_000;

/// The server's error number for a duplicate key (ER_DUP_ENTRY).
const DUPLICATE_KEY: u16 = 1062;

/// The migration candidates' query, as the engine runs it (parameters: data state, after,
/// kind, limit): a range of `by_state_ino` read in index order. The index is forced: by
/// cost alone the optimizer may prefer the primary key's range `ino > after`, which reads
/// every inode after the position, whatever its state.
pub const MIGRATION_CANDIDATES_QUERY: &str = "SELECT ino, kind, perm, uid, gid, size, nlink, \
     rdev, atime_ns, mtime_ns, ctime_ns, crtime_ns, blocks, data_state FROM vs_inodes \
     FORCE INDEX (by_state_ino) \
     WHERE data_state = ? AND ino > ? AND kind = ? AND nlink > 0 ORDER BY ino LIMIT ?";

/// The first eviction candidates' query, as the engine runs it (parameters: data state,
/// kind, limit): `by_state_atime` read in index order (forced, as for migration).
pub const EVICTION_CANDIDATES_QUERY: &str = "SELECT ino, kind, perm, uid, gid, size, nlink, \
     rdev, atime_ns, mtime_ns, ctime_ns, crtime_ns, blocks, data_state FROM vs_inodes \
     FORCE INDEX (by_state_atime) \
     WHERE data_state = ? AND kind = ? ORDER BY atime_ns, ino LIMIT ?";

/// The eviction candidates' query after a position, as the engine runs it (parameters:
/// data state, atime, atime, ino, kind, limit). The position is two ranges of
/// `by_state_atime` (forced), read in index order (a row comparison would not be used as a
/// range).
pub const EVICTION_CANDIDATES_AFTER_QUERY: &str = "SELECT ino, kind, perm, uid, gid, size, \
     nlink, rdev, atime_ns, mtime_ns, ctime_ns, crtime_ns, blocks, data_state FROM vs_inodes \
     FORCE INDEX (by_state_atime) \
     WHERE data_state = ? AND (atime_ns > ? OR (atime_ns = ? AND ino > ?)) AND kind = ? \
     ORDER BY atime_ns, ino LIMIT ?";

/// The `vs_copies` columns an [`ArchiveCopy`] is read from, in [`CopyRow`]'s order.
const COPY_COLUMNS: &str =
    "ino, volume, seq, size, mtime_ns, md5, sha1, archived_ns, superseded_ns";

/// A `vs_copies` row as read ([`COPY_COLUMNS`]).
type CopyRow = (
    u64,
    Vec<u8>,
    u64,
    u64,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    i64,
    Option<i64>,
);

/// One path naming `ino`: at each level the entry made first (lowest cookie), found
/// through `by_child`, one round trip per level.
pub(super) fn path_of(meta: &MysqlMeta, ino: u64) -> Result<Vec<u8>, MetaError> {
    meta.read(|conn| {
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut at = ino;
        while at != ROOT_INO {
            if parts.len() > MAX_DEPTH {
                return Err(MetaError::Internal(format!("inode {ino}: path too deep")));
            }
            let entry: Option<(u64, Vec<u8>)> = conn.exec_first(
                "SELECT parent, name FROM vs_dentries WHERE child = ? ORDER BY cookie LIMIT 1",
                (at,),
            )?;
            let (parent, name) = entry.ok_or(MetaError::Errno(libc::ENOENT))?;
            parts.push(name);
            at = parent;
        }
        let mut path = Vec::new();
        for part in parts.iter().rev() {
            path.push(b'/');
            path.extend_from_slice(part);
        }
        if path.is_empty() {
            path.push(b'/');
        }
        Ok(path)
    })
}

/// `Resident` regular files with a name, inode numbers above `after`, in inode order.
pub(super) fn migration_candidates(
    meta: &MysqlMeta,
    after: u64,
    limit: usize,
) -> Result<Vec<Attr>, MetaError> {
    meta.read(|conn| {
        let rows: Vec<AttrRow> = conn.exec(
            MIGRATION_CANDIDATES_QUERY,
            (DataState::Resident as u8, after, Kind::File as u8, limit),
        )?;
        attrs(rows)
    })
}

/// `Archived` regular files by `(atime, ino)`, strictly after `after`.
pub(super) fn eviction_candidates(
    meta: &MysqlMeta,
    after: Option<(i64, u64)>,
    limit: usize,
) -> Result<Vec<Attr>, MetaError> {
    let state = DataState::Archived as u8;
    let kind = Kind::File as u8;
    meta.read(|conn| {
        let rows: Vec<AttrRow> = match after {
            None => conn.exec(EVICTION_CANDIDATES_QUERY, (state, kind, limit))?,
            Some((atime, ino)) => conn.exec(
                EVICTION_CANDIDATES_AFTER_QUERY,
                (state, atime, atime, ino, kind, limit),
            )?,
        };
        attrs(rows)
    })
}

/// Records `copy` as the live copy of a `Resident` inode of its size and mtime, supersedes
/// the earlier ones and makes the inode `Archived`; `EAGAIN` if the inode changed,
/// `EEXIST` if the volume already has a copy numbered `copy.seq`.
pub(super) fn record_copy(meta: &MysqlMeta, copy: &ArchiveCopy) -> Result<Attr, MetaError> {
    if copy.volume.len() > VOLUME_MAX {
        return Err(MetaError::Errno(libc::ENAMETOOLONG));
    }
    let now = now_ns();
    meta.write(|tx| {
        let attr = file_in_state(tx, copy.ino, &[DataState::Resident])?;
        if attr.size != copy.size || attr.mtime != copy.mtime {
            return Err(MetaError::Errno(libc::EAGAIN));
        }
        supersede_copies(tx, copy.ino, now)?;
        // A taken number shows as a duplicate key (the errno rolls the superseding back):
        // asking first would take a gap lock, on which concurrent copies to the end of
        // the same volume would deadlock.
        let inserted = tx.exec_drop(
            "INSERT INTO vs_copies
                (volume, seq, ino, size, mtime_ns, md5, sha1, archived_ns, superseded_ns)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                copy.volume.as_bytes(),
                copy.seq,
                copy.ino,
                copy.size,
                copy.mtime,
                copy.md5.map(|d| d.to_vec()),
                copy.sha1.map(|d| d.to_vec()),
                copy.archived_ns,
            ),
        );
        match inserted {
            Err(mysql::Error::MySqlError(e)) if e.code == DUPLICATE_KEY => {
                return Err(MetaError::Errno(libc::EEXIST))
            }
            other => other?,
        }
        set_state(tx, attr, DataState::Archived)
    })
}

/// `Archived` -> `Released` when the mtime is still `mtime` and a live copy exists.
pub(super) fn release(meta: &MysqlMeta, ino: u64, mtime: i64) -> Result<Attr, MetaError> {
    meta.write(|tx| {
        let attr = file_in_state(tx, ino, &[DataState::Archived])?;
        let live: Option<u64> = tx.exec_first(
            "SELECT seq FROM vs_copies WHERE ino = ? AND superseded_ns IS NULL LIMIT 1",
            (ino,),
        )?;
        if attr.mtime != mtime || live.is_none() {
            return Err(MetaError::Errno(libc::EAGAIN));
        }
        set_state(tx, attr, DataState::Released)
    })
}

/// `Released` or `Damaged` -> `Archived`.
pub(super) fn recalled(meta: &MysqlMeta, ino: u64) -> Result<Attr, MetaError> {
    meta.write(|tx| {
        let attr = file_in_state(tx, ino, &[DataState::Released, DataState::Damaged])?;
        set_state(tx, attr, DataState::Archived)
    })
}

/// `Released` -> `Damaged`.
pub(super) fn mark_damaged(meta: &MysqlMeta, ino: u64) -> Result<Attr, MetaError> {
    meta.write(|tx| {
        let attr = file_in_state(tx, ino, &[DataState::Released])?;
        set_state(tx, attr, DataState::Damaged)
    })
}

/// The live copy of `ino` (through `by_ino_live`).
pub(super) fn live_copy(meta: &MysqlMeta, ino: u64) -> Result<Option<ArchiveCopy>, MetaError> {
    meta.read(|conn| {
        let row: Option<CopyRow> = conn.exec_first(
            format!(
                "SELECT {COPY_COLUMNS} FROM vs_copies WHERE ino = ? AND superseded_ns IS NULL
                 ORDER BY volume, seq LIMIT 1"
            ),
            (ino,),
        )?;
        row.map(copy_from_row).transpose()
    })
}

/// Live copies on `volume` after `after` whose inodes are `Released`, in sequence order.
pub(super) fn released_after(
    meta: &MysqlMeta,
    volume: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<ArchiveCopy>, MetaError> {
    meta.read(|conn| {
        let rows: Vec<CopyRow> = conn.exec(
            "SELECT c.ino, c.volume, c.seq, c.size, c.mtime_ns, c.md5, c.sha1, c.archived_ns,
                c.superseded_ns
             FROM vs_copies c JOIN vs_inodes i ON i.ino = c.ino
             WHERE c.volume = ? AND c.seq > ? AND c.superseded_ns IS NULL AND i.data_state = ?
             ORDER BY c.seq LIMIT ?",
            (volume.as_bytes(), after, DataState::Released as u8, limit),
        )?;
        rows.into_iter().map(copy_from_row).collect()
    })
}

/// Copies superseded before `before_ns`, oldest first (through `by_superseded`).
pub(super) fn superseded_copies(
    meta: &MysqlMeta,
    before_ns: i64,
    limit: usize,
) -> Result<Vec<ArchiveCopy>, MetaError> {
    meta.read(|conn| {
        let rows: Vec<CopyRow> = conn.exec(
            format!(
                "SELECT {COPY_COLUMNS} FROM vs_copies WHERE superseded_ns < ?
                 ORDER BY superseded_ns, volume, seq LIMIT ?"
            ),
            (before_ns, limit),
        )?;
        rows.into_iter().map(copy_from_row).collect()
    })
}

/// How many copies are superseded.
pub(super) fn superseded_count(meta: &MysqlMeta) -> Result<u64, MetaError> {
    meta.read(|conn| {
        let count: Option<u64> =
            conn.query_first("SELECT COUNT(*) FROM vs_copies WHERE superseded_ns IS NOT NULL")?;
        Ok(count.unwrap_or(0))
    })
}

/// Deletes superseded copy `seq` of `volume`; `EBUSY` for a live one, fine when unknown.
pub(super) fn forget_copy(meta: &MysqlMeta, volume: &str, seq: u64) -> Result<(), MetaError> {
    meta.write(|tx| {
        let row: Option<Option<i64>> = tx.exec_first(
            "SELECT superseded_ns FROM vs_copies WHERE volume = ? AND seq = ? FOR UPDATE",
            (volume.as_bytes(), seq),
        )?;
        match row {
            None => Ok(()),
            Some(None) => Err(MetaError::Errno(libc::EBUSY)),
            Some(Some(_)) => {
                tx.exec_drop(
                    "DELETE FROM vs_copies WHERE volume = ? AND seq = ?",
                    (volume.as_bytes(), seq),
                )?;
                Ok(())
            }
        }
    })
}

/// Files and bytes per data state of regular files (a scan: one status call).
pub(super) fn state_totals(meta: &MysqlMeta) -> Result<Vec<StateTotal>, MetaError> {
    meta.read(|conn| {
        let rows: Vec<(u8, u64, u64)> = conn.exec(
            "SELECT data_state, COUNT(*), CAST(COALESCE(SUM(size), 0) AS UNSIGNED)
             FROM vs_inodes WHERE kind = ? GROUP BY data_state ORDER BY data_state",
            (Kind::File as u8,),
        )?;
        rows.into_iter()
            .map(|(state, files, bytes)| {
                let state = DataState::from_u8(state).ok_or_else(|| {
                    MetaError::Internal(format!("unknown data_state {state} in vs_inodes"))
                })?;
                Ok(StateTotal {
                    state,
                    files,
                    bytes,
                })
            })
            .collect()
    })
}

/// Marks the live copies of `ino` superseded at `now` (its data changed or it is purged).
pub(super) fn supersede_copies(
    tx: &mut Transaction<'_>,
    ino: u64,
    now: i64,
) -> Result<(), MetaError> {
    tx.exec_drop(
        "UPDATE vs_copies SET superseded_ns = ? WHERE ino = ? AND superseded_ns IS NULL",
        (now, ino),
    )?;
    Ok(())
}

/// Locks `ino` and returns its attributes if it is a regular file in one of `states`;
/// `EAGAIN` otherwise, `ENOENT` if it does not exist.
fn file_in_state(
    tx: &mut Transaction<'_>,
    ino: u64,
    states: &[DataState],
) -> Result<Attr, MetaError> {
    let attr = lock_inode(tx, ino)?;
    if attr.kind != Kind::File || !states.contains(&attr.data_state) {
        return Err(MetaError::Errno(libc::EAGAIN));
    }
    Ok(attr)
}

/// Writes `state` as the data state of the locked inode `attr` and returns its attributes.
fn set_state(tx: &mut Transaction<'_>, attr: Attr, state: DataState) -> Result<Attr, MetaError> {
    tx.exec_drop(
        "UPDATE vs_inodes SET data_state = ? WHERE ino = ?",
        (state as u8, attr.ino),
    )?;
    Ok(Attr {
        data_state: state,
        ..attr
    })
}

/// The attributes in `rows` (`ATTR_COLUMNS` each).
fn attrs(rows: Vec<AttrRow>) -> Result<Vec<Attr>, MetaError> {
    rows.into_iter()
        .map(|mut row| attr_from_row(&mut row, 0))
        .collect()
}

/// The copy in `row`; `Internal` for a digest of the wrong length or a label not UTF-8.
fn copy_from_row(row: CopyRow) -> Result<ArchiveCopy, MetaError> {
    let (ino, volume, seq, size, mtime, md5, sha1, archived_ns, superseded_ns) = row;
    let volume = String::from_utf8(volume).map_err(|e| {
        MetaError::Internal(format!("volume label of copy {seq} is not UTF-8: {e}"))
    })?;
    Ok(ArchiveCopy {
        ino,
        md5: digest(md5, &volume, seq, "md5")?,
        sha1: digest(sha1, &volume, seq, "sha1")?,
        volume,
        seq,
        size,
        mtime,
        archived_ns,
        superseded_ns,
    })
}

/// A stored digest as an array of its length; `Internal` naming the copy otherwise.
fn digest<const N: usize>(
    value: Option<Vec<u8>>,
    volume: &str,
    seq: u64,
    what: &str,
) -> Result<Option<[u8; N]>, MetaError> {
    value
        .map(|bytes| {
            <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
                MetaError::Internal(format!(
                    "{what} of copy {volume}/{seq} has {} bytes, not {N}",
                    bytes.len()
                ))
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::super::attributes::ATTR_COLUMNS;
    use super::*;

    #[test]
    fn candidate_queries_read_every_attribute_column_in_order() {
        for query in [
            MIGRATION_CANDIDATES_QUERY,
            EVICTION_CANDIDATES_QUERY,
            EVICTION_CANDIDATES_AFTER_QUERY,
        ] {
            let select = format!("SELECT {ATTR_COLUMNS} FROM vs_inodes ");
            assert!(
                query.starts_with(&select),
                "{query:?} does not start with {select:?}"
            );
        }
    }

    #[test]
    fn digests_of_the_wrong_length_are_named() {
        assert_eq!(
            digest::<2>(Some(vec![1, 2]), "v", 3, "md5"),
            Ok(Some([1, 2]))
        );
        assert_eq!(digest::<2>(None, "v", 3, "md5"), Ok(None));
        let err = digest::<16>(Some(vec![1; 15]), "v", 3, "md5").unwrap_err();
        assert!(
            err.to_string()
                .contains("md5 of copy v/3 has 15 bytes, not 16"),
            "{err}"
        );
    }
}
