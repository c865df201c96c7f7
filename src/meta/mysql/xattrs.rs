//! Extended attributes: one row per name in `vs_xattrs`; a change locks the inode's row,
//! so the total a limit is checked against cannot change meanwhile.

use crate::meta::check_xattr;
use mysql::prelude::Queryable;

use super::attributes::{load_attr, lock_inode, touch_ctime};
use super::MysqlMeta;
use crate::meta::{check_xattr_name, now_ns, Attr, MetaError, XattrMode};

/// Sets extended attribute `name` of `ino`; returns the inode's new attributes.
///
/// `ENOSPC` when the inode's attributes would then take more than `max_total` bytes
/// (names plus values, as ext4 counts its one block).
pub(super) fn set_xattr(
    meta: &MysqlMeta,
    ino: u64,
    name: &[u8],
    value: &[u8],
    mode: XattrMode,
    max_total: usize,
) -> Result<Attr, MetaError> {
    check_xattr(name, value, max_total)?;
    meta.write(|tx| {
        lock_inode(tx, ino)?;
        let exists: Option<u8> = tx.exec_first(
            "SELECT 1 FROM vs_xattrs WHERE ino = ? AND name = ? FOR UPDATE",
            (ino, name),
        )?;
        match (mode, exists.is_some()) {
            (XattrMode::Create, true) => return Err(MetaError::Errno(libc::EEXIST)),
            (XattrMode::Replace, false) => return Err(MetaError::Errno(libc::ENODATA)),
            _ => {}
        }
        // The inode row is locked: no other change to its attributes runs meanwhile.
        let others: Option<u64> = tx.exec_first(
            "SELECT CAST(COALESCE(SUM(LENGTH(name) + LENGTH(value)), 0) AS UNSIGNED)
             FROM vs_xattrs WHERE ino = ? AND name <> ?",
            (ino, name),
        )?;
        let total = others.unwrap_or(0) + (name.len() + value.len()) as u64;
        if total > max_total as u64 {
            return Err(MetaError::Errno(libc::ENOSPC));
        }
        tx.exec_drop(
            "INSERT INTO vs_xattrs (ino, name, value) VALUES (?, ?, ?)
             ON DUPLICATE KEY UPDATE value = VALUES(value)",
            (ino, name, value),
        )?;
        touch_ctime(tx, &[ino], now_ns())?;
        load_attr(tx, ino)
    })
}

/// The value of extended attribute `name` of `ino`; `ENODATA` if absent.
pub(super) fn get_xattr(meta: &MysqlMeta, ino: u64, name: &[u8]) -> Result<Vec<u8>, MetaError> {
    check_xattr_name(name)?;
    meta.read(|conn| {
        let value: Option<Vec<u8>> = conn.exec_first(
            "SELECT value FROM vs_xattrs WHERE ino = ? AND name = ?",
            (ino, name),
        )?;
        value.ok_or(MetaError::Errno(libc::ENODATA))
    })
}

/// The names of the extended attributes of `ino`.
pub(super) fn list_xattrs(meta: &MysqlMeta, ino: u64) -> Result<Vec<Vec<u8>>, MetaError> {
    meta.read(|conn| {
        Ok(conn.exec(
            "SELECT name FROM vs_xattrs WHERE ino = ? ORDER BY name",
            (ino,),
        )?)
    })
}

/// Whether any inode has an extended attribute called `name` (scans the attributes).
pub(super) fn xattr_in_use(meta: &MysqlMeta, name: &[u8]) -> Result<bool, MetaError> {
    meta.read(|conn| {
        let found: Option<u8> =
            conn.exec_first("SELECT 1 FROM vs_xattrs WHERE name = ? LIMIT 1", (name,))?;
        Ok(found.is_some())
    })
}

/// Removes extended attribute `name` of `ino`; `ENODATA` if absent. Returns the inode's
/// new attributes.
pub(super) fn remove_xattr(meta: &MysqlMeta, ino: u64, name: &[u8]) -> Result<Attr, MetaError> {
    check_xattr_name(name)?;
    meta.write(|tx| {
        lock_inode(tx, ino)?;
        tx.exec_drop(
            "DELETE FROM vs_xattrs WHERE ino = ? AND name = ?",
            (ino, name),
        )?;
        if tx.affected_rows() == 0 {
            return Err(MetaError::Errno(libc::ENODATA));
        }
        touch_ctime(tx, &[ino], now_ns())?;
        load_attr(tx, ino)
    })
}
