//! Attributes: reading and changing an inode's attributes, symlink targets, and the
//! conversion between `vs_inodes` rows and [`Attr`].

use std::collections::HashMap;

use mysql::prelude::Queryable;
use mysql::Transaction;

use super::MysqlMeta;
use crate::meta::{Attr, AttrChange, DataState, Kind, MetaError};

/// The attributes of `ino`.
pub(super) fn get_attr(meta: &MysqlMeta, ino: u64) -> Result<Attr, MetaError> {
    meta.read(|conn| load_attr(conn, ino))
}

/// Writes changed attributes of `ino` and returns the result. The status change time
/// never goes back (a late save of a write's time cannot undo a newer change).
pub(super) fn set_attr(meta: &MysqlMeta, ino: u64, change: &AttrChange) -> Result<Attr, MetaError> {
    meta.write(|tx| {
        lock_inode(tx, ino)?;
        tx.exec_drop(
            "UPDATE vs_inodes SET
                perm = COALESCE(?, perm), uid = COALESCE(?, uid), gid = COALESCE(?, gid),
                size = COALESCE(?, size), atime_ns = COALESCE(?, atime_ns),
                mtime_ns = COALESCE(?, mtime_ns),
                ctime_ns = GREATEST(ctime_ns, COALESCE(?, ctime_ns)),
                blocks = COALESCE(?, blocks), data_state = COALESCE(?, data_state)
             WHERE ino = ?",
            (
                change.perm,
                change.uid,
                change.gid,
                change.size,
                change.atime,
                change.mtime,
                change.ctime,
                change.blocks,
                change.data_state.map(|state| state as u8),
                ino,
            ),
        )?;
        load_attr(tx, ino)
    })
}

/// The target of symlink `ino`.
pub(super) fn read_link(meta: &MysqlMeta, ino: u64) -> Result<Vec<u8>, MetaError> {
    meta.read(|conn| {
        let target: Option<Vec<u8>> =
            conn.exec_first("SELECT target FROM vs_symlinks WHERE ino = ?", (ino,))?;
        target.ok_or(MetaError::Errno(libc::EINVAL))
    })
}

/// The `vs_inodes` columns an [`Attr`] is read from, in [`attr_from_row`]'s order.
pub(super) const ATTR_COLUMNS: &str =
    "ino, kind, perm, uid, gid, size, nlink, rdev, atime_ns, mtime_ns, ctime_ns, crtime_ns, blocks, \
     data_state";

/// A row whose columns from the first on are [`ATTR_COLUMNS`] (more than a tuple holds).
pub(super) type AttrRow = mysql::Row;

/// Takes column `index` of `row` as a `T`.
pub(super) fn column<T: mysql::prelude::FromValue>(
    row: &mut mysql::Row,
    index: usize,
) -> Result<T, MetaError> {
    row.take_opt(index)
        .ok_or_else(|| MetaError::Internal(format!("missing column {index}")))?
        .map_err(|e| MetaError::Internal(format!("bad value in column {index}: {e}")))
}

/// [`ATTR_COLUMNS`] qualified with the table alias `alias` (for joins).
pub(super) fn prefixed_columns(alias: &str) -> String {
    ATTR_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The [`Kind`] stored as `value`; `Internal` for a number no version writes.
pub(super) fn kind_from(value: u8) -> Result<Kind, MetaError> {
    Ok(match value {
        1 => Kind::File,
        2 => Kind::Directory,
        3 => Kind::Symlink,
        4 => Kind::Fifo,
        5 => Kind::Socket,
        6 => Kind::CharDevice,
        7 => Kind::BlockDevice,
        other => {
            return Err(MetaError::Internal(format!(
                "unknown inode kind {other} in catalog"
            )))
        }
    })
}

/// The [`Attr`] in `row`'s columns from `at` on ([`ATTR_COLUMNS`]).
pub(super) fn attr_from_row(row: &mut AttrRow, at: usize) -> Result<Attr, MetaError> {
    Ok(Attr {
        ino: column(row, at)?,
        kind: kind_from(column(row, at + 1)?)?,
        perm: column(row, at + 2)?,
        uid: column(row, at + 3)?,
        gid: column(row, at + 4)?,
        size: column(row, at + 5)?,
        nlink: column(row, at + 6)?,
        rdev: column(row, at + 7)?,
        atime: column(row, at + 8)?,
        mtime: column(row, at + 9)?,
        ctime: column(row, at + 10)?,
        crtime: column(row, at + 11)?,
        blocks: column(row, at + 12)?,
        data_state: data_state_from(column(row, at + 13)?)?,
    })
}

/// The [`DataState`] stored as `value`; `Internal` for a number no version writes.
fn data_state_from(value: u8) -> Result<DataState, MetaError> {
    DataState::from_u8(value)
        .ok_or_else(|| MetaError::Internal(format!("unknown data_state {value} in vs_inodes")))
}

/// The attributes of `ino`; `ENOENT` if it has no row.
pub(super) fn load_attr(conn: &mut impl Queryable, ino: u64) -> Result<Attr, MetaError> {
    let row: Option<AttrRow> = conn.exec_first(
        format!("SELECT {ATTR_COLUMNS} FROM vs_inodes WHERE ino = ?"),
        (ino,),
    )?;
    row.map(|mut row| attr_from_row(&mut row, 0))
        .transpose()?
        .ok_or(MetaError::Errno(libc::ENOENT))
}

/// The attributes of those of `inos` that exist, in one round trip.
pub(super) fn load_attrs(
    conn: &mut impl Queryable,
    inos: &[u64],
) -> Result<HashMap<u64, Attr>, MetaError> {
    let rows: Vec<AttrRow> = conn.exec(
        format!(
            "SELECT {ATTR_COLUMNS} FROM vs_inodes WHERE ino IN ({})",
            placeholders(inos.len())
        ),
        inos.to_vec(),
    )?;
    rows.into_iter()
        .map(|mut row| attr_from_row(&mut row, 0).map(|attr| (attr.ino, attr)))
        .collect()
}

/// The attributes of `ino` among `attrs`, which a change just locked and read.
pub(super) fn attr_of(attrs: &HashMap<u64, Attr>, ino: u64) -> Result<Attr, MetaError> {
    attrs
        .get(&ino)
        .copied()
        .ok_or_else(|| MetaError::Internal(format!("inode {ino} vanished inside a transaction")))
}

/// What is left of `attr` after its rows were purged at `now`.
pub(super) fn removed(attr: Attr, now: i64) -> Attr {
    Attr {
        nlink: 0,
        ctime: now,
        ..attr
    }
}

/// `?, ?, ...` with `count` placeholders (at least one).
pub(super) fn placeholders(count: usize) -> String {
    vec!["?"; count.max(1)].join(", ")
}

/// Locks the row of `ino` for the transaction and reads it; `ENOENT` if there is none.
pub(super) fn lock_inode(tx: &mut Transaction<'_>, ino: u64) -> Result<Attr, MetaError> {
    let row: Option<AttrRow> = tx.exec_first(
        format!("SELECT {ATTR_COLUMNS} FROM vs_inodes WHERE ino = ? FOR UPDATE"),
        (ino,),
    )?;
    row.map(|mut row| attr_from_row(&mut row, 0))
        .transpose()?
        .ok_or(MetaError::Errno(libc::ENOENT))
}

/// Moves the status change time of `inos` forward to `now` (never back).
pub(super) fn touch_ctime(
    tx: &mut Transaction<'_>,
    inos: &[u64],
    now: i64,
) -> Result<(), MetaError> {
    for ino in inos {
        tx.exec_drop(
            "UPDATE vs_inodes SET ctime_ns = GREATEST(ctime_ns, ?) WHERE ino = ?",
            (now, ino),
        )?;
    }
    Ok(())
}
