//! Catalog schema: tables, and forward-only migrations recorded in `vs_schema_version`.

use mysql::prelude::Queryable;

use super::operations::{self, OPERATION_DONE};
#[cfg(doc)]
use crate::meta::DataState;
use crate::meta::{now_ns, Kind, MetaError, ROOT_INO};
use crate::pool::PooledConn;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 7;

/// Errors a procedure raises for POSIX outcomes carry `ERRNO_BASE + errno` as error number.
pub const ERRNO_BASE: u16 = 30000;

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

/// The errnos `vs_create_node` signals: no such (or a removed) directory, not a directory.
pub const PROCEDURE_ERRNOS: &[i32] = &[libc::ENOENT, libc::ENOTDIR];

/// The server error number a procedure signals for `errno`: [`ERRNO_BASE`] + `errno`.
pub fn errno_signal(errno: i32) -> u16 {
    // PROCEDURE_ERRNOS are small positive numbers (Linux errnos are below 200).
    ERRNO_BASE + u16::try_from(errno).unwrap_or(u16::MAX - ERRNO_BASE)
}

/// The errno a procedure signalled as server error `code`; `None` for any other error.
pub fn signalled_errno(code: u16) -> Option<i32> {
    PROCEDURE_ERRNOS
        .iter()
        .copied()
        .find(|&errno| errno_signal(errno) == code)
}

/// Version 2: creating a node in one round trip (the procedure runs its own transaction).
fn v2() -> [String; 2] {
    [
        "DROP PROCEDURE IF EXISTS vs_create_node".into(),
        format!(
            "CREATE PROCEDURE vs_create_node(
        IN p_parent BIGINT UNSIGNED, IN p_name VARBINARY(255), IN p_kind TINYINT UNSIGNED,
        IN p_perm SMALLINT UNSIGNED, IN p_uid INT UNSIGNED, IN p_gid INT UNSIGNED,
        IN p_rdev INT UNSIGNED, IN p_target VARBINARY(4096), IN p_now BIGINT)
    MODIFIES SQL DATA
    BEGIN
        DECLARE v_kind TINYINT UNSIGNED DEFAULT NULL;
        DECLARE v_perm SMALLINT UNSIGNED;
        DECLARE v_gid INT UNSIGNED;
        DECLARE v_nlink INT UNSIGNED;
        DECLARE v_ino BIGINT UNSIGNED;
        DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
        START TRANSACTION;
        SELECT kind, perm, gid, nlink INTO v_kind, v_perm, v_gid, v_nlink
            FROM vs_inodes WHERE ino = p_parent FOR UPDATE;
        IF v_kind IS NULL OR v_nlink = 0 THEN
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = {enoent}, MESSAGE_TEXT = 'no such directory';
        END IF;
        IF v_kind <> 2 THEN
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = {enotdir}, MESSAGE_TEXT = 'not a directory';
        END IF;
        IF v_perm & 1024 <> 0 THEN
            SET p_gid = v_gid;
            IF p_kind = 2 THEN SET p_perm = p_perm | 1024; END IF;
        END IF;
        INSERT INTO vs_inodes
            (kind, perm, uid, gid, size, nlink, rdev, atime_ns, mtime_ns, ctime_ns, crtime_ns)
            VALUES (p_kind, p_perm, p_uid, p_gid, COALESCE(LENGTH(p_target), 0),
                    IF(p_kind = 2, 2, 1), p_rdev, p_now, p_now, p_now, p_now);
        SET v_ino = LAST_INSERT_ID();
        INSERT INTO vs_dentries (parent, name, child) VALUES (p_parent, p_name, v_ino);
        IF p_target IS NOT NULL THEN
            INSERT INTO vs_symlinks (ino, target) VALUES (v_ino, p_target);
        END IF;
        UPDATE vs_inodes SET mtime_ns = p_now, ctime_ns = p_now,
            nlink = nlink + IF(p_kind = 2, 1, 0) WHERE ino = p_parent;
        COMMIT;
        SELECT v_ino, p_perm, p_gid;
    END",
            enoent = errno_signal(libc::ENOENT),
            enotdir = errno_signal(libc::ENOTDIR),
        ),
    ]
}

/// Version 3: the catalog's identity, a random token made once, which the cache folder
/// records so that a cache is never used (nor swept) against another catalog.
const V3: &[&str] = &["CREATE TABLE IF NOT EXISTS vs_catalog_identity (
        id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
        token CHAR(32) NOT NULL,
        created_ns BIGINT NOT NULL
    ) ENGINE=InnoDB"];

/// Version 4: the blocks a file's data occupies (512-byte units, as `st_blocks`), recorded
/// when its size is saved so that a `stat` need not measure the data file; NULL = unknown.
const V4: &[&str] = &["ALTER TABLE vs_inodes ADD COLUMN IF NOT EXISTS blocks BIGINT UNSIGNED NULL"];

/// Version 5: where each file's data is (`data_state`, see [`DataState`]); files that had data
/// before are resident. The owner lease (`crate::meta::lease`): the one server that may serve
/// this catalog, in one replicated row (so it holds on Galera, where `GET_LOCK` is local to a
/// node), made free here so that taking it always locks an existing row. Times are the
/// database's clock in ns; `token` is empty while nobody holds it; `beat` counts renewals.
const V5: &[&str] = &[
    "ALTER TABLE vs_inodes ADD COLUMN IF NOT EXISTS data_state TINYINT UNSIGNED NOT NULL DEFAULT 0",
    "UPDATE vs_inodes SET data_state = 1 WHERE kind = 1 AND size > 0 AND data_state = 0",
    "CREATE TABLE IF NOT EXISTS vs_owner_lease (
        id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
        token VARCHAR(32) NOT NULL,
        host VARCHAR(255) NOT NULL,
        pid INT UNSIGNED NOT NULL,
        mount_point VARBINARY(4096) NOT NULL,
        process VARCHAR(160) NOT NULL,
        started_ns BIGINT NOT NULL,
        renewed_ns BIGINT NOT NULL,
        expires_ns BIGINT NOT NULL,
        beat BIGINT UNSIGNED NOT NULL
    ) ENGINE=InnoDB",
    "INSERT IGNORE INTO vs_owner_lease
        (id, token, host, pid, mount_point, process, started_ns, renewed_ns, expires_ns, beat)
        VALUES (1, '', '', 0, '', '', 0, 0, 0, 0)",
];

/// Version 6: the record of committed changes (`vs_operations`, see `operations.rs`), and
/// `vs_create_node_v6`, which takes the operation id: it inserts the operation's row first
/// (a duplicate, signalled as [`OPERATION_DONE`], means that operation already committed;
/// a run of it still committing is waited for) and writes `ino perm gid` as its answer.
/// `vs_create_node` goes: no server of this version calls it, and older ones refuse a
/// version 6 catalog.
fn v6() -> [String; 4] {
    [
        operations::TABLE.into(),
        "DROP PROCEDURE IF EXISTS vs_create_node".into(),
        "DROP PROCEDURE IF EXISTS vs_create_node_v6".into(),
        format!(
            "CREATE PROCEDURE vs_create_node_v6(
        IN p_owner BIGINT UNSIGNED, IN p_seq BIGINT UNSIGNED,
        IN p_parent BIGINT UNSIGNED, IN p_name VARBINARY(255), IN p_kind TINYINT UNSIGNED,
        IN p_perm SMALLINT UNSIGNED, IN p_uid INT UNSIGNED, IN p_gid INT UNSIGNED,
        IN p_rdev INT UNSIGNED, IN p_target VARBINARY(4096), IN p_now BIGINT)
    MODIFIES SQL DATA
    BEGIN
        DECLARE v_kind TINYINT UNSIGNED DEFAULT NULL;
        DECLARE v_perm SMALLINT UNSIGNED;
        DECLARE v_gid INT UNSIGNED;
        DECLARE v_nlink INT UNSIGNED;
        DECLARE v_ino BIGINT UNSIGNED;
        DECLARE v_done BOOLEAN DEFAULT FALSE;
        DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
        START TRANSACTION;
        BEGIN
            DECLARE CONTINUE HANDLER FOR 1062 SET v_done = TRUE;
            INSERT INTO vs_operations (owner, seq, done_ns) VALUES (p_owner, p_seq, p_now);
        END;
        IF v_done THEN
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = {done}, MESSAGE_TEXT = 'operation already done';
        END IF;
        SELECT kind, perm, gid, nlink INTO v_kind, v_perm, v_gid, v_nlink
            FROM vs_inodes WHERE ino = p_parent FOR UPDATE;
        IF v_kind IS NULL OR v_nlink = 0 THEN
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = {enoent}, MESSAGE_TEXT = 'no such directory';
        END IF;
        IF v_kind <> 2 THEN
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = {enotdir}, MESSAGE_TEXT = 'not a directory';
        END IF;
        IF v_perm & 1024 <> 0 THEN
            SET p_gid = v_gid;
            IF p_kind = 2 THEN SET p_perm = p_perm | 1024; END IF;
        END IF;
        INSERT INTO vs_inodes
            (kind, perm, uid, gid, size, nlink, rdev, atime_ns, mtime_ns, ctime_ns, crtime_ns)
            VALUES (p_kind, p_perm, p_uid, p_gid, COALESCE(LENGTH(p_target), 0),
                    IF(p_kind = 2, 2, 1), p_rdev, p_now, p_now, p_now, p_now);
        SET v_ino = LAST_INSERT_ID();
        INSERT INTO vs_dentries (parent, name, child) VALUES (p_parent, p_name, v_ino);
        IF p_target IS NOT NULL THEN
            INSERT INTO vs_symlinks (ino, target) VALUES (v_ino, p_target);
        END IF;
        UPDATE vs_inodes SET mtime_ns = p_now, ctime_ns = p_now,
            nlink = nlink + IF(p_kind = 2, 1, 0) WHERE ino = p_parent;
        UPDATE vs_operations SET answer = CONCAT_WS(' ', v_ino, p_perm, p_gid)
            WHERE owner = p_owner AND seq = p_seq;
        COMMIT;
        SELECT v_ino, p_perm, p_gid;
    END",
            done = OPERATION_DONE,
            enoent = errno_signal(libc::ENOENT),
            enotdir = errno_signal(libc::ENOTDIR),
        ),
    ]
}

/// Version 7: the archive tier. `vs_copies` holds every copy of a file's data on an archive
/// volume: live (`superseded_ns` NULL) until a newer copy of its inode is recorded or the
/// inode is purged; `by_ino_live` finds an inode's live copy, `by_superseded` what clean-up
/// may delete. On `vs_inodes`, `by_state_ino` serves the migration candidates (a data state,
/// in inode order) and `by_state_atime` the eviction candidates (a data state, by access
/// time then inode), so that neither scans all inodes.
const V7: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS vs_copies (
        volume VARBINARY(64) NOT NULL,
        seq BIGINT UNSIGNED NOT NULL,
        ino BIGINT UNSIGNED NOT NULL,
        size BIGINT UNSIGNED NOT NULL,
        mtime_ns BIGINT NOT NULL,
        md5 BINARY(16) NULL,
        sha1 BINARY(20) NULL,
        archived_ns BIGINT NOT NULL,
        superseded_ns BIGINT NULL,
        PRIMARY KEY (volume, seq),
        KEY by_ino_live (ino, superseded_ns),
        KEY by_superseded (superseded_ns)
    ) ENGINE=InnoDB",
    "ALTER TABLE vs_inodes ADD INDEX IF NOT EXISTS by_state_ino (data_state, ino)",
    "ALTER TABLE vs_inodes ADD INDEX IF NOT EXISTS by_state_atime (data_state, atime_ns, ino)",
];

/// Creates or upgrades the schema and the root directory; safe to run on every start.
pub fn migrate(conn: &mut PooledConn, root_uid: u32, root_gid: u32) -> Result<u32, MetaError> {
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
        return Err(MetaError::Internal(format!(
            "catalog schema version {current} is newer than this server understands ({SCHEMA_VERSION})"
        )));
    }
    if current < 1 {
        for statement in V1 {
            conn.query_drop(statement)?;
        }
        let now = now_ns();
        conn.exec_drop(
            "INSERT IGNORE INTO vs_inodes
                (ino, kind, perm, uid, gid, size, nlink, rdev, atime_ns, mtime_ns, ctime_ns, crtime_ns)
             VALUES (?, ?, ?, ?, ?, 0, 2, 0, ?, ?, ?, ?)",
            (
                ROOT_INO,
                Kind::Directory as u8,
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
            "INSERT INTO vs_schema_version (id, version) VALUES (1, 1)
             ON DUPLICATE KEY UPDATE version = VALUES(version)",
            (),
        )?;
    }
    if current < 2 {
        for statement in v2() {
            conn.query_drop(statement)?;
        }
        conn.exec_drop("UPDATE vs_schema_version SET version = 2 WHERE id = 1", ())?;
    }
    if current < 3 {
        for statement in V3 {
            conn.query_drop(statement)?;
        }
        let token = new_token()
            .map_err(|e| MetaError::Internal(format!("cannot make the catalog identity: {e}")))?;
        // IGNORE: a server migrating at the same time may have made one first; theirs stays.
        conn.exec_drop(
            "INSERT IGNORE INTO vs_catalog_identity (id, token, created_ns) VALUES (1, ?, ?)",
            (token, now_ns()),
        )?;
        conn.exec_drop("UPDATE vs_schema_version SET version = 3 WHERE id = 1", ())?;
    }
    if current < 4 {
        for statement in V4 {
            conn.query_drop(statement)?;
        }
        conn.exec_drop("UPDATE vs_schema_version SET version = 4 WHERE id = 1", ())?;
    }
    if current < 5 {
        for statement in V5 {
            conn.query_drop(statement)?;
        }
        conn.exec_drop("UPDATE vs_schema_version SET version = 5 WHERE id = 1", ())?;
    }
    if current < 6 {
        for statement in v6() {
            conn.query_drop(statement)?;
        }
        conn.exec_drop("UPDATE vs_schema_version SET version = 6 WHERE id = 1", ())?;
    }
    if current < 7 {
        for statement in V7 {
            conn.query_drop(statement)?;
        }
        conn.exec_drop(
            "UPDATE vs_schema_version SET version = ? WHERE id = 1",
            (SCHEMA_VERSION,),
        )?;
    }
    Ok(SCHEMA_VERSION)
}

/// A random 128-bit token as 32 lowercase hex digits (from the kernel's random source).
fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_procedure_signals_each_errno_through_the_base() {
        let procedure = &v2()[1];
        for &errno in PROCEDURE_ERRNOS {
            let signal = format!("MYSQL_ERRNO = {}", ERRNO_BASE + errno as u16);
            assert!(procedure.contains(&signal), "{signal} not in:\n{procedure}");
            assert_eq!(signalled_errno(errno_signal(errno)), Some(errno));
        }
        assert_eq!(
            procedure.matches("MYSQL_ERRNO").count(),
            PROCEDURE_ERRNOS.len(),
            "every number it signals is one of PROCEDURE_ERRNOS"
        );
    }

    #[test]
    fn the_version_6_procedure_signals_each_errno_and_a_done_operation() {
        let procedure = &v6()[3];
        for &errno in PROCEDURE_ERRNOS {
            let signal = format!("MYSQL_ERRNO = {}", errno_signal(errno));
            assert!(procedure.contains(&signal), "{signal} not in:\n{procedure}");
        }
        let done = format!("MYSQL_ERRNO = {OPERATION_DONE}");
        assert!(procedure.contains(&done), "{done} not in:\n{procedure}");
        assert_eq!(signalled_errno(OPERATION_DONE), None, "not an errno");
        assert_eq!(
            procedure.matches("MYSQL_ERRNO").count(),
            PROCEDURE_ERRNOS.len() + 1,
            "every number it signals is one of PROCEDURE_ERRNOS or OPERATION_DONE"
        );
    }

    #[test]
    fn catalogs_made_by_earlier_versions_signal_the_same_numbers() {
        // Catalogs keep the procedure their first start created (version 2 is not re-run):
        // these numbers are in them, so the mapping back must keep them.
        assert_eq!(signalled_errno(30002), Some(libc::ENOENT));
        assert_eq!(signalled_errno(30020), Some(libc::ENOTDIR));
        assert_eq!(signalled_errno(1213), None);
    }

    #[test]
    fn tokens_are_32_hex_digits_and_differ() {
        let (a, b) = (super::new_token().unwrap(), super::new_token().unwrap());
        assert_eq!(a.len(), 32, "{a}");
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }
}
