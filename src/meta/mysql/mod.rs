//! The metadata engine over MySQL/MariaDB: inodes, directory entries, symlink targets,
//! extended attributes. Every change is one transaction; every statement is parameterised.
//!
//! Time bound: an operation waits at most the pool's acquire timeout (`DatabaseTimeout`) for
//! a connection and then at most one socket timeout for the statement that hangs; a
//! connection that failed with an I/O error or timed out is discarded at once (no ping, no
//! `ROLLBACK` over it), and deadlock retries stop when the acquire timeout has passed.
//!
//! Changes return the attributes of every inode they touched ([`Changed`]), so the file
//! system can keep what it serves in step with the catalog.

mod lease;
pub mod privileges;
mod schema;

use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Transaction, TxOpts};

pub use schema::{migrate, SCHEMA_VERSION};

use super::{
    check_name, check_xattr_name, now_ns, Attr, AttrChange, CatalogLocation, Changed, DataState,
    DirEntry, Kind, MetaEngine, MetaError, NewNode, RenameMode, XattrMode, ROOT_INO, SYMLINK_MAX,
    XATTR_SIZE_MAX,
};
use crate::pool::{is_connection_error, Pool, PoolError, PooledConn};

/// The catalog over a connection pool.
#[derive(Clone)]
pub struct MysqlMeta {
    pool: Pool,
}

const ATTR_COLUMNS: &str =
    "ino, kind, perm, uid, gid, size, nlink, rdev, atime_ns, mtime_ns, ctime_ns, crtime_ns, blocks, \
     data_state";

/// A row whose columns from the first on are [`ATTR_COLUMNS`] (more than a tuple holds).
type AttrRow = mysql::Row;

/// Times a transaction is retried after a deadlock or lock wait timeout.
const DEADLOCK_RETRIES: usize = 5;

impl MysqlMeta {
    /// A catalog using `pool`; call [`MysqlMeta::migrate`] once before use.
    pub fn new(pool: Pool) -> MysqlMeta {
        MysqlMeta { pool }
    }

    /// The pool it uses.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl MetaEngine for MysqlMeta {
    fn location(&self) -> CatalogLocation {
        let options = self.pool.options();
        CatalogLocation {
            database: options.database.clone().unwrap_or_default(),
            server: match &options.socket {
                Some(socket) => socket.display().to_string(),
                None => format!("{}:{}", options.host, options.port),
            },
        }
    }

    /// Creates or upgrades the schema; the root directory is owned by `uid`/`gid`.
    fn migrate(&self, uid: u32, gid: u32) -> Result<u32, MetaError> {
        self.read(|conn| migrate(conn, uid, gid))
    }

    /// The attributes of `ino`.
    fn get_attr(&self, ino: u64) -> Result<Attr, MetaError> {
        self.read(|conn| load_attr(conn, ino))
    }

    /// The inode named `name` in directory `parent`.
    fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr, MetaError> {
        check_name(name)?;
        self.read(|conn| {
            let row: Option<AttrRow> = conn.exec_first(
                format!(
                    "SELECT {} FROM vs_dentries d JOIN vs_inodes i ON i.ino = d.child
                     WHERE d.parent = ? AND d.name = ?",
                    prefixed_columns("i")
                ),
                (parent, name),
            )?;
            row.map(|mut row| attr_from_row(&mut row, 0))
                .transpose()?
                .ok_or(MetaError::Errno(libc::ENOENT))
        })
    }

    /// Creates `name` in `parent` as a new inode; `EEXIST` if the name is taken.
    ///
    /// The parent's times become the new inode's `ctime` and its link count grows by one
    /// for a directory (the returned attributes are all that is read back).
    fn create(&self, parent: u64, name: &[u8], node: &NewNode<'_>) -> Result<Attr, MetaError> {
        check_name(name)?;
        if let Some(target) = node.target {
            if target.is_empty() || target.len() > SYMLINK_MAX {
                return Err(MetaError::Errno(libc::ENAMETOOLONG));
            }
        }
        let now = now_ns();
        let deadline = Instant::now() + self.timeout();
        let mut attempt = 0;
        let row: Option<(u64, u16, u32)> = loop {
            let result = self.read_by(deadline, |conn| {
                conn.exec_first_self_contained(
                    "CALL vs_create_node(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        parent,
                        name,
                        node.kind as u8,
                        node.perm,
                        node.uid,
                        node.gid,
                        node.rdev,
                        node.target,
                        now,
                    ),
                )
                .map_err(procedure_error)
            });
            match result {
                Err(ref err) if may_retry(err, attempt, deadline) => attempt += 1,
                other => break other?,
            }
        };
        let (ino, perm, gid) =
            row.ok_or_else(|| MetaError::Internal("vs_create_node returned no row".into()))?;
        let is_dir = node.kind == Kind::Directory;
        // Everything stored is known here: no need to read the row back.
        Ok(Attr {
            ino,
            kind: node.kind,
            perm,
            uid: node.uid,
            gid,
            size: node.target.map_or(0, |t| t.len() as u64),
            nlink: if is_dir { 2 } else { 1 },
            rdev: node.rdev,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            blocks: None,
            data_state: DataState::Empty,
        })
    }

    /// Takes back a [`MysqlMeta::create`] of a regular file its caller could not complete
    /// (its data file could not be made): removes `parent/name` if it still names `ino`, and
    /// the inode unless another name links it. Returns the parent's attributes, or `None`
    /// when the entry was already gone or names another inode (then nothing is changed).
    fn undo_create(&self, parent: u64, name: &[u8], ino: u64) -> Result<Option<Attr>, MetaError> {
        check_name(name)?;
        self.write(|tx| {
            lock_dir(tx, parent)?;
            let child = match lock_entry(tx, parent, name) {
                Ok(child) if child.ino == ino && child.kind != Kind::Directory => child,
                Ok(_) | Err(MetaError::Errno(libc::ENOENT)) => return Ok(None),
                Err(err) => return Err(err),
            };
            delete_entry(tx, parent, name)?;
            if child.nlink <= 1 {
                purge_rows(tx, ino)?;
            } else {
                tx.exec_drop(
                    "UPDATE vs_inodes SET nlink = nlink - 1 WHERE ino = ?",
                    (ino,),
                )?;
            }
            touch_dir(tx, parent, now_ns(), 0)?;
            Ok(Some(load_attr(tx, parent)?))
        })
    }

    /// Adds a hard link `newname` in `newparent` to `ino`; directories give `EPERM`.
    fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> Result<Changed, MetaError> {
        check_name(newname)?;
        self.write(|tx| {
            lock_dir(tx, newparent)?;
            let attr = lock_inode(tx, ino)?;
            if attr.kind == Kind::Directory {
                return Err(MetaError::Errno(libc::EPERM));
            }
            if attr.nlink == 0 {
                return Err(MetaError::Errno(libc::ENOENT));
            }
            insert_entry(tx, newparent, newname, ino)?;
            let now = now_ns();
            tx.exec_drop(
                "UPDATE vs_inodes SET nlink = nlink + 1, ctime_ns = GREATEST(ctime_ns, ?)
                 WHERE ino = ?",
                (now, ino),
            )?;
            touch_dir(tx, newparent, now, 0)?;
            let attrs = load_attrs(tx, &[ino, newparent])?;
            Ok(Changed {
                node: attr_of(&attrs, ino)?,
                dirs: vec![attr_of(&attrs, newparent)?],
                other: None,
            })
        })
    }

    /// Removes the non-directory entry `name`; the inode comes back with its new link count
    /// (at 0 the caller purges it once no handle has it open).
    fn unlink(&self, parent: u64, name: &[u8]) -> Result<Changed, MetaError> {
        check_name(name)?;
        self.write(|tx| {
            lock_dir(tx, parent)?;
            let child = lock_entry(tx, parent, name)?;
            if child.kind == Kind::Directory {
                return Err(MetaError::Errno(libc::EISDIR));
            }
            let now = now_ns();
            delete_entry(tx, parent, name)?;
            tx.exec_drop(
                "UPDATE vs_inodes SET nlink = nlink - 1, ctime_ns = GREATEST(ctime_ns, ?)
                 WHERE ino = ? AND nlink > 0",
                (now, child.ino),
            )?;
            touch_dir(tx, parent, now, 0)?;
            let attrs = load_attrs(tx, &[child.ino, parent])?;
            Ok(Changed {
                node: attr_of(&attrs, child.ino)?,
                dirs: vec![attr_of(&attrs, parent)?],
                other: None,
            })
        })
    }

    /// Removes the empty directory `name`; `ENOTEMPTY` if it has entries. The removed
    /// directory comes back with link count 0.
    fn rmdir(&self, parent: u64, name: &[u8]) -> Result<Changed, MetaError> {
        check_name(name)?;
        self.write(|tx| {
            lock_dir(tx, parent)?;
            let child = lock_entry(tx, parent, name)?;
            if child.kind != Kind::Directory {
                return Err(MetaError::Errno(libc::ENOTDIR));
            }
            ensure_empty(tx, child.ino)?;
            let now = now_ns();
            delete_entry(tx, parent, name)?;
            purge_rows(tx, child.ino)?;
            touch_dir(tx, parent, now, -1)?;
            Ok(Changed {
                node: removed(child, now),
                dirs: vec![load_attr(tx, parent)?],
                other: None,
            })
        })
    }

    /// Renames `parent/name` to `newparent/newname`. A replaced target left with no links
    /// comes back in [`Changed::other`] with link count 0: the caller purges it once it is
    /// not open (a replaced directory is purged here).
    fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        mode: RenameMode,
    ) -> Result<Changed, MetaError> {
        check_name(name)?;
        check_name(newname)?;
        self.write(|tx| {
            // Lock both directories in inode order so concurrent renames cannot deadlock.
            let (first, second) = (parent.min(newparent), parent.max(newparent));
            lock_dir(tx, first)?;
            if second != first {
                lock_dir(tx, second)?;
            }
            let source = lock_entry(tx, parent, name)?;
            let target = match lock_entry(tx, newparent, newname) {
                Ok(attr) => Some(attr),
                Err(MetaError::Errno(libc::ENOENT)) => None,
                Err(err) => return Err(err),
            };
            let now = now_ns();
            let mut gone = None;
            match (mode, target) {
                (RenameMode::Exchange, None) => return Err(MetaError::Errno(libc::ENOENT)),
                (RenameMode::Exchange, Some(target)) => {
                    if source.kind == Kind::Directory {
                        refuse_into_own_subtree(tx, source.ino, newparent)?;
                    }
                    if target.kind == Kind::Directory {
                        refuse_into_own_subtree(tx, target.ino, parent)?;
                    }
                    set_child(tx, parent, name, target.ino)?;
                    set_child(tx, newparent, newname, source.ino)?;
                    if parent != newparent {
                        let source_dir = i32::from(source.kind == Kind::Directory);
                        let target_dir = i32::from(target.kind == Kind::Directory);
                        touch_dir(tx, parent, now, target_dir - source_dir)?;
                        touch_dir(tx, newparent, now, source_dir - target_dir)?;
                    } else {
                        touch_dir(tx, parent, now, 0)?;
                    }
                    touch_ctime(tx, &[source.ino, target.ino], now)?;
                }
                (RenameMode::NoReplace, Some(_)) => return Err(MetaError::Errno(libc::EEXIST)),
                (_, target) => {
                    if target.is_some_and(|t| t.ino == source.ino) {
                        // Two links to one inode: POSIX says do nothing.
                        return Ok(Changed {
                            node: source,
                            dirs: Vec::new(),
                            other: None,
                        });
                    }
                    if source.kind == Kind::Directory {
                        refuse_into_own_subtree(tx, source.ino, newparent)?;
                    }
                    let mut target_was_dir = false;
                    if let Some(target) = target {
                        match (
                            source.kind == Kind::Directory,
                            target.kind == Kind::Directory,
                        ) {
                            (true, false) => return Err(MetaError::Errno(libc::ENOTDIR)),
                            (false, true) => return Err(MetaError::Errno(libc::EISDIR)),
                            (true, true) => {
                                ensure_empty(tx, target.ino)?;
                                purge_rows(tx, target.ino)?;
                                target_was_dir = true;
                                gone = Some(removed(target, now));
                            }
                            (false, false) => {
                                tx.exec_drop(
                                    "UPDATE vs_inodes SET nlink = nlink - 1,
                                     ctime_ns = GREATEST(ctime_ns, ?)
                                     WHERE ino = ? AND nlink > 0",
                                    (now, target.ino),
                                )?;
                            }
                        }
                        delete_entry(tx, newparent, newname)?;
                    }
                    tx.exec_drop(
                        "UPDATE vs_dentries SET parent = ?, name = ? WHERE parent = ? AND name = ?",
                        (newparent, newname, parent, name),
                    )?;
                    let moved_dir = i32::from(source.kind == Kind::Directory);
                    if parent != newparent {
                        touch_dir(tx, parent, now, -moved_dir)?;
                        touch_dir(tx, newparent, now, moved_dir - i32::from(target_was_dir))?;
                    } else {
                        touch_dir(tx, parent, now, -i32::from(target_was_dir))?;
                    }
                    touch_ctime(tx, &[source.ino], now)?;
                }
            }
            let mut inos = vec![source.ino, parent];
            if newparent != parent {
                inos.push(newparent);
            }
            if let (Some(target), None) = (target, gone) {
                inos.push(target.ino);
            }
            let attrs = load_attrs(tx, &inos)?;
            let other = match (target, gone) {
                (_, Some(gone)) => Some(gone),
                (Some(target), None) => Some(attr_of(&attrs, target.ino)?),
                (None, None) => None,
            };
            let mut dirs = vec![attr_of(&attrs, parent)?];
            if newparent != parent {
                dirs.push(attr_of(&attrs, newparent)?);
            }
            Ok(Changed {
                node: attr_of(&attrs, source.ino)?,
                dirs,
                other,
            })
        })
    }

    /// Entries of directory `dir` after position `after`, at most `limit`, in order.
    fn read_dir(&self, dir: u64, after: u64, limit: usize) -> Result<Vec<DirEntry>, MetaError> {
        self.read(|conn| {
            let rows: Vec<(u64, Vec<u8>, u64, u8)> = conn.exec(
                "SELECT d.cookie, d.name, d.child, i.kind
                 FROM vs_dentries d JOIN vs_inodes i ON i.ino = d.child
                 WHERE d.parent = ? AND d.cookie > ? ORDER BY d.cookie LIMIT ?",
                (dir, after, limit as u64),
            )?;
            rows.into_iter()
                .map(|(cookie, name, ino, kind)| {
                    Ok(DirEntry {
                        cookie,
                        name,
                        ino,
                        kind: kind_from(kind)?,
                    })
                })
                .collect()
        })
    }

    /// Like [`MysqlMeta::read_dir`], with each entry's attributes (for readdirplus).
    fn read_dir_plus(
        &self,
        dir: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(DirEntry, Attr)>, MetaError> {
        self.read(|conn| {
            let rows: Vec<mysql::Row> = conn.exec(
                format!(
                    "SELECT d.cookie, d.name, {} FROM vs_dentries d JOIN vs_inodes i ON i.ino = d.child
                     WHERE d.parent = ? AND d.cookie > ? ORDER BY d.cookie LIMIT ?",
                    prefixed_columns("i")
                ),
                (dir, after, limit as u64),
            )?;
            rows.into_iter()
                .map(|mut row| {
                    let cookie: u64 = column(&mut row, 0)?;
                    let name: Vec<u8> = column(&mut row, 1)?;
                    let attr = attr_from_row(&mut row, 2)?;
                    let entry = DirEntry {
                        cookie,
                        name,
                        ino: attr.ino,
                        kind: attr.kind,
                    };
                    Ok((entry, attr))
                })
                .collect()
        })
    }

    /// The parent of directory `dir` (the root is its own parent).
    fn parent_of(&self, dir: u64) -> Result<u64, MetaError> {
        if dir == ROOT_INO {
            return Ok(ROOT_INO);
        }
        self.read(|conn| {
            let parent: Option<u64> = conn.exec_first(
                "SELECT parent FROM vs_dentries WHERE child = ? LIMIT 1",
                (dir,),
            )?;
            parent.ok_or(MetaError::Errno(libc::ENOENT))
        })
    }

    /// Writes changed attributes of `ino` and returns the result. The status change time
    /// never goes back (a late save of a write's time cannot undo a newer change).
    fn set_attr(&self, ino: u64, change: &AttrChange) -> Result<Attr, MetaError> {
        self.write(|tx| {
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
    fn read_link(&self, ino: u64) -> Result<Vec<u8>, MetaError> {
        self.read(|conn| {
            let target: Option<Vec<u8>> =
                conn.exec_first("SELECT target FROM vs_symlinks WHERE ino = ?", (ino,))?;
            target.ok_or(MetaError::Errno(libc::EINVAL))
        })
    }

    /// Sets extended attribute `name` of `ino`; returns the inode's new attributes.
    ///
    /// `ENOSPC` when the inode's attributes would then take more than `max_total` bytes
    /// (names plus values, as ext4 counts its one block).
    fn set_xattr(
        &self,
        ino: u64,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
        max_total: usize,
    ) -> Result<Attr, MetaError> {
        check_xattr_name(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(MetaError::Errno(libc::E2BIG));
        }
        if name.len() + value.len() > max_total {
            return Err(MetaError::Errno(libc::ENOSPC));
        }
        self.write(|tx| {
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
    fn get_xattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, MetaError> {
        check_xattr_name(name)?;
        self.read(|conn| {
            let value: Option<Vec<u8>> = conn.exec_first(
                "SELECT value FROM vs_xattrs WHERE ino = ? AND name = ?",
                (ino, name),
            )?;
            value.ok_or(MetaError::Errno(libc::ENODATA))
        })
    }

    /// The names of the extended attributes of `ino`.
    fn list_xattrs(&self, ino: u64) -> Result<Vec<Vec<u8>>, MetaError> {
        self.read(|conn| {
            Ok(conn.exec(
                "SELECT name FROM vs_xattrs WHERE ino = ? ORDER BY name",
                (ino,),
            )?)
        })
    }

    /// Whether any inode has an extended attribute called `name` (scans the attributes).
    fn xattr_in_use(&self, name: &[u8]) -> Result<bool, MetaError> {
        self.read(|conn| {
            let found: Option<u8> =
                conn.exec_first("SELECT 1 FROM vs_xattrs WHERE name = ? LIMIT 1", (name,))?;
            Ok(found.is_some())
        })
    }

    /// Removes extended attribute `name` of `ino`; `ENODATA` if absent. Returns the inode's
    /// new attributes.
    fn remove_xattr(&self, ino: u64, name: &[u8]) -> Result<Attr, MetaError> {
        check_xattr_name(name)?;
        self.write(|tx| {
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

    /// Inodes no directory entry names any more (left by a crash or by open-unlinked files).
    fn orphans(&self) -> Result<Vec<u64>, MetaError> {
        self.read(|conn| Ok(conn.exec("SELECT ino FROM vs_inodes WHERE nlink = 0", ())?))
    }

    /// Which of `inos` have an inode row (one round trip; pass a bounded batch).
    fn existing(&self, inos: &[u64]) -> Result<Vec<u64>, MetaError> {
        if inos.is_empty() {
            return Ok(Vec::new());
        }
        self.read(|conn| {
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
    fn sizes(&self, inos: &[u64]) -> Result<Vec<(u64, Kind, u64)>, MetaError> {
        if inos.is_empty() {
            return Ok(Vec::new());
        }
        self.read(|conn| {
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
    fn identity(&self) -> Result<String, MetaError> {
        self.read(|conn| {
            let token: Option<String> =
                conn.query_first("SELECT token FROM vs_catalog_identity WHERE id = 1")?;
            token.ok_or_else(|| {
                MetaError::Internal("the catalog has no identity (vs_catalog_identity)".into())
            })
        })
    }

    /// How many regular files have data (a size above 0); stops counting at `limit`.
    fn files_with_data(&self, limit: u64) -> Result<u64, MetaError> {
        self.read(|conn| {
            let count: Option<u64> = conn.exec_first(
                "SELECT COUNT(*) FROM
                    (SELECT 1 FROM vs_inodes WHERE kind = ? AND size > 0 LIMIT ?) AS f",
                (Kind::File as u8, limit),
            )?;
            Ok(count.unwrap_or(0))
        })
    }

    /// Deletes an inode with no links left, with its symlink target and attributes.
    fn purge(&self, ino: u64) -> Result<(), MetaError> {
        self.write(|tx| {
            let attr = lock_inode(tx, ino)?;
            if attr.nlink > 0 {
                return Ok(()); // linked again (or never unlinked): keep it
            }
            purge_rows(tx, ino)
        })
    }

    /// How long one operation waits for a connection and keeps retrying deadlocks
    /// (`DatabaseTimeout`, the pool's acquire timeout).
    fn timeout(&self) -> Duration {
        self.pool.options().acquire_timeout
    }
}

impl MysqlMeta {
    /// Runs `f` on a pooled connection without a transaction.
    fn read<T>(
        &self,
        f: impl FnOnce(&mut PooledConn) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        self.read_by(Instant::now() + self.timeout(), f)
    }

    /// Like [`MysqlMeta::read`], waiting for a connection only until `deadline`.
    fn read_by<T>(
        &self,
        deadline: Instant,
        f: impl FnOnce(&mut PooledConn) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let mut conn = self
            .pool
            .get_timeout(deadline.saturating_duration_since(Instant::now()))?;
        let result = f(&mut conn);
        discard_if_lost(&mut conn, &result);
        result
    }

    /// Runs `f` in one transaction and commits; retries after deadlocks while the operation's
    /// time (the acquire timeout) lasts.
    fn write<T>(
        &self,
        mut f: impl FnMut(&mut Transaction<'_>) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let deadline = Instant::now() + self.timeout();
        let mut conn = self.pool.get_timeout(self.timeout())?;
        let mut attempt = 0;
        loop {
            let result = transaction(&mut conn, &mut f);
            discard_if_lost(&mut conn, &result);
            match result {
                Err(ref err) if may_retry(err, attempt, deadline) => attempt += 1,
                other => return other,
            }
        }
    }
}

impl From<PoolError> for MetaError {
    fn from(err: PoolError) -> MetaError {
        match &err {
            PoolError::Sql(sql) if !sql.connection_broken && is_conflict(sql.code) => {
                MetaError::Conflict(err.to_string())
            }
            PoolError::Sql(sql) if !sql.connection_broken => MetaError::Internal(err.to_string()),
            PoolError::ResultTooLarge { .. }
            | PoolError::OutOfMemory
            | PoolError::InvalidOptions(_) => MetaError::Internal(err.to_string()),
            _ => MetaError::Unavailable(err.to_string()),
        }
    }
}

impl From<mysql::Error> for MetaError {
    fn from(err: mysql::Error) -> MetaError {
        if is_connection_error(&err) {
            return MetaError::Unavailable(err.to_string());
        }
        match &err {
            mysql::Error::MySqlError(e) if is_conflict(e.code) => {
                MetaError::Conflict(format!("{} ({})", e.message, e.code))
            }
            mysql::Error::MySqlError(e) => {
                MetaError::Internal(format!("{} ({})", e.message, e.code))
            }
            other => MetaError::Internal(other.to_string()),
        }
    }
}

/// Whether server error `code` means the transaction was rolled back by a concurrent one
/// and may run again: a deadlock (1213, which is also how Galera reports a certification
/// failure) or a lock wait timeout (1205).
fn is_conflict(code: u16) -> bool {
    matches!(code, 1213 | 1205)
}

/// Maps a procedure's signalled errno (and a duplicate name) to `MetaError::Errno`.
fn procedure_error(err: mysql::Error) -> MetaError {
    match &err {
        mysql::Error::MySqlError(e) if e.code == 1062 => MetaError::Errno(libc::EEXIST),
        mysql::Error::MySqlError(e)
            if e.code > schema::ERRNO_BASE && e.code < schema::ERRNO_BASE + 200 =>
        {
            MetaError::Errno(i32::from(e.code - schema::ERRNO_BASE))
        }
        _ => err.into(),
    }
}

/// Whether a failed transaction may run again: a conflict, fewer than
/// [`DEADLOCK_RETRIES`] retries so far, and the operation's deadline not yet passed.
fn may_retry(err: &MetaError, attempt: usize, deadline: Instant) -> bool {
    matches!(err, MetaError::Conflict(_)) && attempt < DEADLOCK_RETRIES && Instant::now() < deadline
}

/// Discards the connection when the failure was a lost or timed-out connection: asking it
/// again (a ping) would wait another socket timeout on a server that hangs.
fn discard_if_lost<T>(conn: &mut PooledConn, result: &Result<T, MetaError>) {
    if let Err(MetaError::Unavailable(_)) = result {
        conn.mark_broken();
    }
}

/// Runs `f` in a transaction on `conn` and commits.
///
/// The `Transaction` is dropped (which sends `ROLLBACK`) only when `f` or the commit failed
/// and the connection still answers. After `COMMIT` there is nothing to undo, and over a
/// lost or hung connection a `ROLLBACK` would wait another socket timeout: that connection
/// is discarded instead, and the server rolls back when it goes. What is not dropped owns
/// only the borrow of `conn` and a copy of its LOCAL INFILE handler, which is never set.
fn transaction<T>(
    conn: &mut PooledConn,
    f: &mut impl FnMut(&mut Transaction<'_>) -> Result<T, MetaError>,
) -> Result<T, MetaError> {
    let mut tx = ManuallyDrop::new(conn.start_transaction(TxOpts::default())?);
    let result = f(&mut tx).and_then(|value| {
        tx.query_drop("COMMIT")?;
        Ok(value)
    });
    if matches!(
        result,
        Err(MetaError::Errno(_) | MetaError::Conflict(_) | MetaError::Internal(_))
    ) {
        drop(ManuallyDrop::into_inner(tx));
    }
    result
}

/// Takes column `index` of `row` as a `T`.
fn column<T: mysql::prelude::FromValue>(
    row: &mut mysql::Row,
    index: usize,
) -> Result<T, MetaError> {
    row.take_opt(index)
        .ok_or_else(|| MetaError::Internal(format!("missing column {index}")))?
        .map_err(|e| MetaError::Internal(format!("bad value in column {index}: {e}")))
}

fn prefixed_columns(alias: &str) -> String {
    ATTR_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn kind_from(value: u8) -> Result<Kind, MetaError> {
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

fn attr_from_row(row: &mut AttrRow, at: usize) -> Result<Attr, MetaError> {
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

fn data_state_from(value: u8) -> Result<DataState, MetaError> {
    DataState::from_u8(value)
        .ok_or_else(|| MetaError::Internal(format!("unknown data_state {value} in vs_inodes")))
}

fn load_attr(conn: &mut impl Queryable, ino: u64) -> Result<Attr, MetaError> {
    let row: Option<AttrRow> = conn.exec_first(
        format!("SELECT {ATTR_COLUMNS} FROM vs_inodes WHERE ino = ?"),
        (ino,),
    )?;
    row.map(|mut row| attr_from_row(&mut row, 0))
        .transpose()?
        .ok_or(MetaError::Errno(libc::ENOENT))
}

/// The attributes of those of `inos` that exist, in one round trip.
fn load_attrs(conn: &mut impl Queryable, inos: &[u64]) -> Result<HashMap<u64, Attr>, MetaError> {
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
fn attr_of(attrs: &HashMap<u64, Attr>, ino: u64) -> Result<Attr, MetaError> {
    attrs
        .get(&ino)
        .copied()
        .ok_or_else(|| MetaError::Internal(format!("inode {ino} vanished inside a transaction")))
}

/// What is left of `attr` after its rows were purged at `now`.
fn removed(attr: Attr, now: i64) -> Attr {
    Attr {
        nlink: 0,
        ctime: now,
        ..attr
    }
}

/// `?, ?, ...` with `count` placeholders (at least one).
fn placeholders(count: usize) -> String {
    vec!["?"; count.max(1)].join(", ")
}

fn lock_inode(tx: &mut Transaction<'_>, ino: u64) -> Result<Attr, MetaError> {
    let row: Option<AttrRow> = tx.exec_first(
        format!("SELECT {ATTR_COLUMNS} FROM vs_inodes WHERE ino = ? FOR UPDATE"),
        (ino,),
    )?;
    row.map(|mut row| attr_from_row(&mut row, 0))
        .transpose()?
        .ok_or(MetaError::Errno(libc::ENOENT))
}

/// Locks a directory row; `ENOTDIR` if it is not one, `ENOENT` if it was removed.
fn lock_dir(tx: &mut Transaction<'_>, dir: u64) -> Result<Attr, MetaError> {
    let attr = lock_inode(tx, dir)?;
    if attr.kind != Kind::Directory {
        return Err(MetaError::Errno(libc::ENOTDIR));
    }
    if attr.nlink == 0 {
        return Err(MetaError::Errno(libc::ENOENT));
    }
    Ok(attr)
}

/// Locks the entry `parent/name` and its inode.
fn lock_entry(tx: &mut Transaction<'_>, parent: u64, name: &[u8]) -> Result<Attr, MetaError> {
    let child: Option<u64> = tx.exec_first(
        "SELECT child FROM vs_dentries WHERE parent = ? AND name = ? FOR UPDATE",
        (parent, name),
    )?;
    let child = child.ok_or(MetaError::Errno(libc::ENOENT))?;
    lock_inode(tx, child)
}

fn insert_entry(
    tx: &mut Transaction<'_>,
    parent: u64,
    name: &[u8],
    child: u64,
) -> Result<(), MetaError> {
    match tx.exec_drop(
        "INSERT INTO vs_dentries (parent, name, child) VALUES (?, ?, ?)",
        (parent, name, child),
    ) {
        Err(mysql::Error::MySqlError(e)) if e.code == 1062 => Err(MetaError::Errno(libc::EEXIST)),
        other => Ok(other?),
    }
}

fn delete_entry(tx: &mut Transaction<'_>, parent: u64, name: &[u8]) -> Result<(), MetaError> {
    tx.exec_drop(
        "DELETE FROM vs_dentries WHERE parent = ? AND name = ?",
        (parent, name),
    )?;
    Ok(())
}

fn set_child(
    tx: &mut Transaction<'_>,
    parent: u64,
    name: &[u8],
    child: u64,
) -> Result<(), MetaError> {
    tx.exec_drop(
        "UPDATE vs_dentries SET child = ? WHERE parent = ? AND name = ?",
        (child, parent, name),
    )?;
    Ok(())
}

fn ensure_empty(tx: &mut Transaction<'_>, dir: u64) -> Result<(), MetaError> {
    let any: Option<u8> = tx.exec_first(
        "SELECT 1 FROM vs_dentries WHERE parent = ? LIMIT 1 FOR UPDATE",
        (dir,),
    )?;
    match any {
        Some(_) => Err(MetaError::Errno(libc::ENOTEMPTY)),
        None => Ok(()),
    }
}

/// Updates a directory's times and adjusts its link count by `nlink_delta`.
fn touch_dir(
    tx: &mut Transaction<'_>,
    dir: u64,
    now: i64,
    nlink_delta: i32,
) -> Result<(), MetaError> {
    tx.exec_drop(
        "UPDATE vs_inodes SET mtime_ns = ?, ctime_ns = GREATEST(ctime_ns, ?),
            nlink = CAST(nlink AS SIGNED) + ?
         WHERE ino = ?",
        (now, now, nlink_delta, dir),
    )?;
    Ok(())
}

fn touch_ctime(tx: &mut Transaction<'_>, inos: &[u64], now: i64) -> Result<(), MetaError> {
    for ino in inos {
        tx.exec_drop(
            "UPDATE vs_inodes SET ctime_ns = GREATEST(ctime_ns, ?) WHERE ino = ?",
            (now, ino),
        )?;
    }
    Ok(())
}

fn purge_rows(tx: &mut Transaction<'_>, ino: u64) -> Result<(), MetaError> {
    tx.exec_drop("DELETE FROM vs_xattrs WHERE ino = ?", (ino,))?;
    tx.exec_drop("DELETE FROM vs_symlinks WHERE ino = ?", (ino,))?;
    tx.exec_drop("DELETE FROM vs_inodes WHERE ino = ?", (ino,))?;
    Ok(())
}

/// `EINVAL` if `dir` is `target_parent` or one of its ancestors.
fn refuse_into_own_subtree(
    tx: &mut Transaction<'_>,
    dir: u64,
    target_parent: u64,
) -> Result<(), MetaError> {
    let mut current = target_parent;
    // Bounded by the tree depth; a cycle would be corruption, so give up after many steps.
    for _ in 0..100_000 {
        if current == dir {
            return Err(MetaError::Errno(libc::EINVAL));
        }
        if current == ROOT_INO {
            return Ok(());
        }
        let parent: Option<u64> = tx.exec_first(
            "SELECT parent FROM vs_dentries WHERE child = ? LIMIT 1",
            (current,),
        )?;
        match parent {
            Some(parent) => current = parent,
            None => return Ok(()),
        }
    }
    Err(MetaError::Internal(
        "directory tree deeper than 100000 levels".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn deadlocks_are_retried_only_while_the_operation_has_time_left() {
        let later = Instant::now() + Duration::from_secs(60);
        let conflict = |code| {
            MetaError::from(mysql::Error::MySqlError(mysql::MySqlError {
                state: "40001".into(),
                message: "conflict".into(),
                code,
            }))
        };
        let (deadlock, lock_wait) = (conflict(1213), conflict(1205));
        assert!(may_retry(&deadlock, 0, later), "{deadlock:?}");
        assert!(
            may_retry(&lock_wait, DEADLOCK_RETRIES - 1, later),
            "{lock_wait:?}"
        );
        assert!(
            !may_retry(&deadlock, DEADLOCK_RETRIES, later),
            "attempts are bounded"
        );
        assert!(
            !may_retry(&deadlock, 0, Instant::now()),
            "the deadline has passed"
        );
        let duplicate = conflict(1062);
        assert!(
            !may_retry(&duplicate, 0, later),
            "only lock conflicts: {duplicate:?}"
        );
    }

    #[test]
    fn lost_connections_and_server_errors_are_told_apart() {
        let timeout = io::Error::new(io::ErrorKind::TimedOut, "read timed out");
        assert!(matches!(
            MetaError::from(mysql::Error::IoError(timeout)),
            MetaError::Unavailable(_)
        ));
        let pool_timeout = PoolError::Timeout {
            waited: Duration::from_secs(1),
            in_use: 1,
            max_size: 1,
            last_error: None,
        };
        assert!(matches!(
            MetaError::from(pool_timeout),
            MetaError::Unavailable(_)
        ));
        let too_large = PoolError::ResultTooLarge { limit: 1 };
        assert!(matches!(MetaError::from(too_large), MetaError::Internal(_)));
    }
}
