//! The namespace: looking names up, creating and taking back nodes, links, removals,
//! renames, and directory listings. Changes lock the directories they touch, then the
//! entries, then the inodes, and return the attributes of every inode they touched.

use crate::meta::check_new_node;

use mysql::prelude::Queryable;
use mysql::Transaction;

use super::attributes::{
    attr_from_row, attr_of, column, kind_from, load_attr, load_attrs, lock_inode, prefixed_columns,
    removed, touch_ctime, AttrRow,
};
use super::cleanup::purge_rows;
use super::operations::{recorded, Created, OPERATION_DONE};
use super::{procedure_error, MysqlMeta};
use crate::meta::{
    check_name, now_ns, Attr, Changed, DirEntry, Kind, MetaError, NewNode, RenameMode, ROOT_INO,
};

/// The inode named `name` in directory `parent`.
pub(super) fn lookup(meta: &MysqlMeta, parent: u64, name: &[u8]) -> Result<Attr, MetaError> {
    check_name(name)?;
    meta.read(|conn| {
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
pub(super) fn create(
    meta: &MysqlMeta,
    parent: u64,
    name: &[u8],
    node: &NewNode<'_>,
) -> Result<Attr, MetaError> {
    check_new_node(name, node)?;
    let now = now_ns();
    // The procedure runs its own transaction and records the operation in it: a conflict
    // rolled it back, and a lost call is decided like every other change.
    let created = meta.change(|conn, op, _run| {
        let call = conn.exec_first_self_contained::<(u64, u16, u32), _, _>(
            "CALL vs_create_node_v6(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                op.owner,
                op.seq,
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
        );
        match call {
            Ok(Some((ino, perm, gid))) => Ok(Created { ino, perm, gid }),
            Ok(None) => Err(MetaError::Internal(
                "vs_create_node_v6 returned no row".into(),
            )),
            // A run again found the operation committed (by the lost run).
            Err(mysql::Error::MySqlError(e)) if e.code == OPERATION_DONE => recorded(conn, op)?
                .ok_or_else(|| {
                    MetaError::Internal(format!(
                        "operation {}/{} is recorded yet cannot be read",
                        op.owner, op.seq
                    ))
                }),
            Err(err) => Err(procedure_error(err)),
        }
    })?;
    let Created { ino, perm, gid } = created;
    // Everything stored is known here: no need to read the row back.
    Ok(Attr::of_new_node(ino, node, perm, gid, now))
}

/// Takes back a [`create`] of a regular file its caller could not complete
/// (its data file could not be made): removes `parent/name` if it still names `ino`, and
/// the inode unless another name links it. Returns the parent's attributes, or `None`
/// when the entry was already gone or names another inode (then nothing is changed).
pub(super) fn undo_create(
    meta: &MysqlMeta,
    parent: u64,
    name: &[u8],
    ino: u64,
) -> Result<Option<Attr>, MetaError> {
    check_name(name)?;
    meta.write(|tx| {
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
pub(super) fn link(
    meta: &MysqlMeta,
    ino: u64,
    newparent: u64,
    newname: &[u8],
) -> Result<Changed, MetaError> {
    check_name(newname)?;
    meta.write(|tx| {
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
pub(super) fn unlink(meta: &MysqlMeta, parent: u64, name: &[u8]) -> Result<Changed, MetaError> {
    check_name(name)?;
    meta.write(|tx| {
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
pub(super) fn rmdir(meta: &MysqlMeta, parent: u64, name: &[u8]) -> Result<Changed, MetaError> {
    check_name(name)?;
    meta.write(|tx| {
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
pub(super) fn rename(
    meta: &MysqlMeta,
    parent: u64,
    name: &[u8],
    newparent: u64,
    newname: &[u8],
    mode: RenameMode,
) -> Result<Changed, MetaError> {
    check_name(name)?;
    check_name(newname)?;
    meta.write(|tx| {
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
pub(super) fn read_dir(
    meta: &MysqlMeta,
    dir: u64,
    after: u64,
    limit: usize,
) -> Result<Vec<DirEntry>, MetaError> {
    meta.read(|conn| {
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

/// Like [`read_dir`], with each entry's attributes (for readdirplus).
pub(super) fn read_dir_plus(
    meta: &MysqlMeta,
    dir: u64,
    after: u64,
    limit: usize,
) -> Result<Vec<(DirEntry, Attr)>, MetaError> {
    meta.read(|conn| {
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
pub(super) fn parent_of(meta: &MysqlMeta, dir: u64) -> Result<u64, MetaError> {
    if dir == ROOT_INO {
        return Ok(ROOT_INO);
    }
    meta.read(|conn| {
        let parent: Option<u64> = conn.exec_first(
            "SELECT parent FROM vs_dentries WHERE child = ? LIMIT 1",
            (dir,),
        )?;
        parent.ok_or(MetaError::Errno(libc::ENOENT))
    })
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

/// Adds the entry `parent/name` naming `child`; `EEXIST` if the name is taken.
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

/// Removes the entry `parent/name`.
fn delete_entry(tx: &mut Transaction<'_>, parent: u64, name: &[u8]) -> Result<(), MetaError> {
    tx.exec_drop(
        "DELETE FROM vs_dentries WHERE parent = ? AND name = ?",
        (parent, name),
    )?;
    Ok(())
}

/// Points the entry `parent/name` at `child` (its cookie stays).
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

/// `ENOTEMPTY` unless directory `dir` has no entries (locking the range against inserts).
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
