//! Catalog schema: tables, and forward-only migrations recorded in `vs_schema_version`.

use mysql::prelude::Queryable;

use super::CatalogError;
use crate::pool::PooledConn;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Inode number of the root directory.
pub const ROOT_INO: u64 = 1;

/// Version 1: inodes, directory entries, symlink targets, extended attributes.
const V1: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS vs_inodes (
        ino BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        kind TINYINT UNSIGNED NOT NULL,
        perm SMALLINT UNSIGNED NOT NULL,
        uid INT UNSIGNED NOT NULL,
        gid INT UNSIGNED NOT NULL,
        size BIGINT UNSIGNED NOT NULL DEFAULT 0,
        nlink INT UNSIGNED NOT NULL,
        rdev INT UNSIGNED NOT NULL DEFAULT 0,
        atime_ns BIGINT NOT NULL,
        mtime_ns BIGINT NOT NULL,
        ctime_ns BIGINT NOT NULL,
        crtime_ns BIGINT NOT NULL,
        KEY by_nlink (nlink)
    ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS vs_dentries (
        parent BIGINT UNSIGNED NOT NULL,
        name VARBINARY(255) NOT NULL,
        child BIGINT UNSIGNED NOT NULL,
        cookie BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
        PRIMARY KEY (parent, name),
        UNIQUE KEY by_cookie (cookie),
        KEY by_parent_cookie (parent, cookie),
        KEY by_child (child)
    ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS vs_symlinks (
        ino BIGINT UNSIGNED NOT NULL PRIMARY KEY,
        target VARBINARY(4096) NOT NULL
    ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS vs_xattrs (
        ino BIGINT UNSIGNED NOT NULL,
        name VARBINARY(255) NOT NULL,
        value MEDIUMBLOB NOT NULL,
        PRIMARY KEY (ino, name)
    ) ENGINE=InnoDB",
];

/// Creates or upgrades the schema and the root directory; safe to run on every start.
pub fn migrate(conn: &mut PooledConn, root_uid: u32, root_gid: u32) -> Result<u32, CatalogError> {
    conn.query_drop(
        "CREATE TABLE IF NOT EXISTS vs_schema_version (
            id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
            version INT UNSIGNED NOT NULL
        ) ENGINE=InnoDB",
    )?;
    let current: Option<u32> =
        conn.query_first("SELECT version FROM vs_schema_version WHERE id = 1")?;
    let current = current.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(CatalogError::Database(format!(
            "catalog schema version {current} is newer than this server understands ({SCHEMA_VERSION})"
        )));
    }
    if current < 1 {
        for statement in V1 {
            conn.query_drop(statement)?;
        }
        let now = super::now_ns();
        conn.exec_drop(
            "INSERT IGNORE INTO vs_inodes
                (ino, kind, perm, uid, gid, size, nlink, rdev, atime_ns, mtime_ns, ctime_ns, crtime_ns)
             VALUES (?, ?, ?, ?, ?, 0, 2, 0, ?, ?, ?, ?)",
            (
                ROOT_INO,
                super::Kind::Directory as u8,
                0o755u16,
                root_uid,
                root_gid,
                now,
                now,
                now,
                now,
            ),
        )?;
        conn.exec_drop(
            "INSERT INTO vs_schema_version (id, version) VALUES (1, ?)
             ON DUPLICATE KEY UPDATE version = VALUES(version)",
            (SCHEMA_VERSION,),
        )?;
    }
    Ok(SCHEMA_VERSION)
}
