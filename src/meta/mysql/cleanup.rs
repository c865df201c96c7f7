//! Clean-up and inventory: orphans and their purge, which inodes exist and their sizes
//! (checked against the cache folder), files with data, and the catalog's identity.

use mysql::prelude::Queryable;
use mysql::Transaction;

use super::archive::supersede_copies;
use super::attributes::{kind_from, lock_inode, placeholders};
use super::MysqlMeta;
use crate::meta::{now_ns, Kind, MetaError};

/// Inodes no directory entry names any more (left by a crash or by open-unlinked files).
pub(super) fn orphans(meta: &MysqlMeta) -> Result<Vec<u64>, MetaError> {
    meta.read(|conn| Ok(conn.exec("SELECT ino FROM vs_inodes WHERE nlink = 0", ())?))
}

/// Which of `inos` have an inode row (one round trip; pass a bounded batch).
pub(super) fn existing(meta: &MysqlMeta, inos: &[u64]) -> Result<Vec<u64>, MetaError> {
    if inos.is_empty() {
        return Ok(Vec::new());
    }
    meta.read(|conn| {
        Ok(conn.exec(
            format!(
                "SELECT ino FROM vs_inodes WHERE ino IN ({})",
                placeholders(inos.len())
            ),
            inos.to_vec(),
        )?)
    })
}

/// Kind and recorded size of those of `inos` that have an inode row (one round trip;
/// pass a bounded batch).
pub(super) fn sizes(meta: &MysqlMeta, inos: &[u64]) -> Result<Vec<(u64, Kind, u64)>, MetaError> {
    if inos.is_empty() {
        return Ok(Vec::new());
    }
    meta.read(|conn| {
        let rows: Vec<(u64, u8, u64)> = conn.exec(
            format!(
                "SELECT ino, kind, size FROM vs_inodes WHERE ino IN ({})",
                placeholders(inos.len())
            ),
            inos.to_vec(),
        )?;
        rows.into_iter()
            .map(|(ino, kind, size)| Ok((ino, kind_from(kind)?, size)))
            .collect()
    })
}

/// The catalog's identity: a random token made when its schema was created (or
/// upgraded to version 3), which a cache folder records to prove it belongs here.
pub(super) fn identity(meta: &MysqlMeta) -> Result<String, MetaError> {
    meta.read(|conn| {
        let token: Option<String> =
            conn.query_first("SELECT token FROM vs_catalog_identity WHERE id = 1")?;
        token.ok_or_else(|| {
            MetaError::Internal("the catalog has no identity (vs_catalog_identity)".into())
        })
    })
}

/// How many regular files have data (a size above 0); stops counting at `limit`.
pub(super) fn files_with_data(meta: &MysqlMeta, limit: u64) -> Result<u64, MetaError> {
    meta.read(|conn| {
        let count: Option<u64> = conn.exec_first(
            "SELECT COUNT(*) FROM
                (SELECT 1 FROM vs_inodes WHERE kind = ? AND size > 0 LIMIT ?) AS f",
            (Kind::File as u8, limit),
        )?;
        Ok(count.unwrap_or(0))
    })
}

/// Deletes an inode with no links left, with its symlink target and attributes (its live
/// archive copies become superseded).
pub(super) fn purge(meta: &MysqlMeta, ino: u64) -> Result<(), MetaError> {
    meta.write(|tx| {
        let attr = lock_inode(tx, ino)?;
        if attr.nlink > 0 {
            return Ok(()); // linked again (or never unlinked): keep it
        }
        purge_rows(tx, ino)
    })
}

/// Deletes the rows of `ino`: its attributes, symlink target and inode (no entry names it);
/// its live archive copies become superseded (clean-up may delete them).
pub(super) fn purge_rows(tx: &mut Transaction<'_>, ino: u64) -> Result<(), MetaError> {
    supersede_copies(tx, ino, now_ns())?;
    tx.exec_drop("DELETE FROM vs_xattrs WHERE ino = ?", (ino,))?;
    tx.exec_drop("DELETE FROM vs_symlinks WHERE ino = ?", (ino,))?;
    tx.exec_drop("DELETE FROM vs_inodes WHERE ino = ?", (ino,))?;
    Ok(())
}
