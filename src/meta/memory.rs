//! [`MemoryMeta`]: the metadata engine entirely in memory, with the semantics of
//! [`MysqlMeta`](super::mysql::MysqlMeta) for everything [`MetaEngine`] documents.
//!
//! It is the fake for fast tests of the layers above the catalog (no database, no root).
//! `tests/meta_conformance.rs` runs one set of scenarios against both engines so that it
//! cannot drift from the real one. One mutex over all maps makes every change atomic, as a
//! transaction is; nothing here conflicts, so it never returns [`MetaError::Conflict`]
//! unless a test asks for it with [`MemoryMeta::fail_next`].

use crate::meta::{check_new_node, check_xattr};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use parking_lot::Mutex;

use super::mysql::SCHEMA_VERSION;
use super::{
    check_name, check_xattr_name, now_ns, ArchiveCopy, Attr, AttrChange, CatalogLocation, Changed,
    DataState, DirEntry, Kind, MetaEngine, MetaError, NewNode, RenameMode, StateTotal, XattrMode,
    ROOT_INO, VOLUME_MAX,
};

/// A catalog held in memory; lost when dropped. Cheap to create: one per test.
pub struct MemoryMeta {
    state: Mutex<State>,
    identity: String,
    timeout: Duration,
}

/// Set-group-ID bit of `perm` (S_ISGID).
const SET_GROUP_ID: u16 = 0o2000;

/// Longest walk up the tree before it counts as corrupt (as in the MySQL engine).
const MAX_DEPTH: usize = 100_000;

impl MemoryMeta {
    /// An empty catalog whose root directory (mode 0755) is owned by `root_uid`/`root_gid`.
    pub fn new(root_uid: u32, root_gid: u32) -> MemoryMeta {
        let now = now_ns();
        let root = Attr {
            ino: ROOT_INO,
            kind: Kind::Directory,
            perm: 0o755,
            uid: root_uid,
            gid: root_gid,
            size: 0,
            nlink: 2,
            rdev: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            blocks: None,
            data_state: DataState::Empty,
        };
        let mut state = State {
            inodes: HashMap::new(),
            dirs: HashMap::new(),
            symlinks: HashMap::new(),
            xattrs: HashMap::new(),
            next_ino: ROOT_INO + 1,
            next_cookie: 1,
            copies: BTreeMap::new(),
            failures: VecDeque::new(),
        };
        state.inodes.insert(ROOT_INO, root);
        state.dirs.insert(ROOT_INO, Dir::default());
        MemoryMeta {
            state: Mutex::new(state),
            identity: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            timeout: Duration::from_secs(5),
        }
    }

    /// Makes the next call of any [`MetaEngine`] method fail with `err` instead of running
    /// (calls queue up in order): for tests of how callers handle an unavailable database
    /// or a conflict.
    pub fn fail_next(&self, err: MetaError) {
        self.state.lock().failures.push_back(err);
    }

    /// Runs `f` on the state under the lock, unless a failure is queued.
    fn with<T>(&self, f: impl FnOnce(&mut State) -> Result<T, MetaError>) -> Result<T, MetaError> {
        let mut state = self.state.lock();
        if let Some(err) = state.failures.pop_front() {
            return Err(err);
        }
        f(&mut state)
    }
}

impl MetaEngine for MemoryMeta {
    fn migrate(&self, _uid: u32, _gid: u32) -> Result<u32, MetaError> {
        // The root was made by `new`; as with the database, a later migrate keeps it.
        self.with(|_| Ok(SCHEMA_VERSION))
    }

    fn location(&self) -> CatalogLocation {
        CatalogLocation {
            database: "memory".into(),
            server: "memory".into(),
        }
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn get_attr(&self, ino: u64) -> Result<Attr, MetaError> {
        self.with(|s| s.attr(ino))
    }

    fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr, MetaError> {
        check_name(name)?;
        self.with(|s| {
            let child = s.entry(parent, name)?.child;
            s.attr(child)
        })
    }

    fn create(&self, parent: u64, name: &[u8], node: &NewNode<'_>) -> Result<Attr, MetaError> {
        check_new_node(name, node)?;
        let now = now_ns();
        self.with(|s| {
            // The stored procedure's order: a missing or removed parent first, then its kind.
            let dir = s.attr(parent)?;
            if dir.nlink == 0 {
                return Err(MetaError::Errno(libc::ENOENT));
            }
            if dir.kind != Kind::Directory {
                return Err(MetaError::Errno(libc::ENOTDIR));
            }
            let (mut perm, mut gid) = (node.perm, node.gid);
            if dir.perm & SET_GROUP_ID != 0 {
                gid = dir.gid;
                if node.kind == Kind::Directory {
                    perm |= SET_GROUP_ID;
                }
            }
            if s.dir(parent)?.by_name.contains_key(name) {
                return Err(MetaError::Errno(libc::EEXIST));
            }
            let is_dir = node.kind == Kind::Directory;
            let ino = s.next_ino;
            s.next_ino += 1;
            let attr = Attr::of_new_node(ino, node, perm, gid, now);
            s.inodes.insert(ino, attr);
            if is_dir {
                s.dirs.insert(ino, Dir::default());
            }
            if let Some(target) = node.target {
                s.symlinks.insert(ino, target.to_vec());
            }
            s.insert_entry(parent, name, ino)?;
            // As the stored procedure does: the status change time is set, not raised.
            let dir = s.attr_mut(parent)?;
            dir.mtime = now;
            dir.ctime = now;
            dir.nlink += u32::from(is_dir);
            Ok(attr)
        })
    }

    fn undo_create(&self, parent: u64, name: &[u8], ino: u64) -> Result<Option<Attr>, MetaError> {
        check_name(name)?;
        self.with(|s| {
            s.live_dir(parent)?;
            let child = match s.entry(parent, name) {
                Ok(entry) => s.attr(entry.child)?,
                Err(MetaError::Errno(libc::ENOENT)) => return Ok(None),
                Err(err) => return Err(err),
            };
            if child.ino != ino || child.kind == Kind::Directory {
                return Ok(None);
            }
            s.remove_entry(parent, name)?;
            if child.nlink <= 1 {
                s.purge_rows(ino);
            } else {
                s.attr_mut(ino)?.nlink -= 1;
            }
            s.touch_dir(parent, now_ns(), 0)?;
            Ok(Some(s.attr(parent)?))
        })
    }

    fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> Result<Changed, MetaError> {
        check_name(newname)?;
        self.with(|s| {
            s.live_dir(newparent)?;
            let attr = s.attr(ino)?;
            if attr.kind == Kind::Directory {
                return Err(MetaError::Errno(libc::EPERM));
            }
            if attr.nlink == 0 {
                return Err(MetaError::Errno(libc::ENOENT));
            }
            s.insert_entry(newparent, newname, ino)?;
            let now = now_ns();
            let node = s.attr_mut(ino)?;
            node.nlink += 1;
            node.ctime = node.ctime.max(now);
            s.touch_dir(newparent, now, 0)?;
            Ok(Changed {
                node: s.attr(ino)?,
                dirs: vec![s.attr(newparent)?],
                other: None,
            })
        })
    }

    fn unlink(&self, parent: u64, name: &[u8]) -> Result<Changed, MetaError> {
        check_name(name)?;
        self.with(|s| {
            s.live_dir(parent)?;
            let child = s.attr(s.entry(parent, name)?.child)?;
            if child.kind == Kind::Directory {
                return Err(MetaError::Errno(libc::EISDIR));
            }
            let now = now_ns();
            s.remove_entry(parent, name)?;
            s.drop_link(child.ino, now)?;
            s.touch_dir(parent, now, 0)?;
            Ok(Changed {
                node: s.attr(child.ino)?,
                dirs: vec![s.attr(parent)?],
                other: None,
            })
        })
    }

    fn rmdir(&self, parent: u64, name: &[u8]) -> Result<Changed, MetaError> {
        check_name(name)?;
        self.with(|s| {
            s.live_dir(parent)?;
            let child = s.attr(s.entry(parent, name)?.child)?;
            if child.kind != Kind::Directory {
                return Err(MetaError::Errno(libc::ENOTDIR));
            }
            s.ensure_empty(child.ino)?;
            let now = now_ns();
            s.remove_entry(parent, name)?;
            s.purge_rows(child.ino);
            s.touch_dir(parent, now, -1)?;
            Ok(Changed {
                node: removed(child, now),
                dirs: vec![s.attr(parent)?],
                other: None,
            })
        })
    }

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
        self.with(|s| {
            s.live_dir(parent.min(newparent))?;
            s.live_dir(parent.max(newparent))?;
            let source = s.attr(s.entry(parent, name)?.child)?;
            let target = match s.entry(newparent, newname) {
                Ok(entry) => Some(s.attr(entry.child)?),
                Err(MetaError::Errno(libc::ENOENT)) => None,
                Err(err) => return Err(err),
            };
            let now = now_ns();
            let mut gone = None;
            match (mode, target) {
                (RenameMode::Exchange, None) => return Err(MetaError::Errno(libc::ENOENT)),
                (RenameMode::Exchange, Some(target)) => {
                    if source.kind == Kind::Directory {
                        s.refuse_into_own_subtree(source.ino, newparent)?;
                    }
                    if target.kind == Kind::Directory {
                        s.refuse_into_own_subtree(target.ino, parent)?;
                    }
                    s.set_child(parent, name, target.ino)?;
                    s.set_child(newparent, newname, source.ino)?;
                    if parent != newparent {
                        let source_dir = i32::from(source.kind == Kind::Directory);
                        let target_dir = i32::from(target.kind == Kind::Directory);
                        s.touch_dir(parent, now, target_dir - source_dir)?;
                        s.touch_dir(newparent, now, source_dir - target_dir)?;
                    } else {
                        s.touch_dir(parent, now, 0)?;
                    }
                    s.touch_ctime(source.ino, now)?;
                    s.touch_ctime(target.ino, now)?;
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
                        s.refuse_into_own_subtree(source.ino, newparent)?;
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
                                s.ensure_empty(target.ino)?;
                                s.purge_rows(target.ino);
                                target_was_dir = true;
                                gone = Some(removed(target, now));
                            }
                            (false, false) => s.drop_link(target.ino, now)?,
                        }
                        s.remove_entry(newparent, newname)?;
                    }
                    s.move_entry(parent, name, newparent, newname)?;
                    let moved_dir = i32::from(source.kind == Kind::Directory);
                    if parent != newparent {
                        s.touch_dir(parent, now, -moved_dir)?;
                        s.touch_dir(newparent, now, moved_dir - i32::from(target_was_dir))?;
                    } else {
                        s.touch_dir(parent, now, -i32::from(target_was_dir))?;
                    }
                    s.touch_ctime(source.ino, now)?;
                }
            }
            let other = match (target, gone) {
                (_, Some(gone)) => Some(gone),
                (Some(target), None) => Some(s.attr(target.ino)?),
                (None, None) => None,
            };
            let mut dirs = vec![s.attr(parent)?];
            if newparent != parent {
                dirs.push(s.attr(newparent)?);
            }
            Ok(Changed {
                node: s.attr(source.ino)?,
                dirs,
                other,
            })
        })
    }

    fn read_dir(&self, dir: u64, after: u64, limit: usize) -> Result<Vec<DirEntry>, MetaError> {
        Ok(self
            .read_dir_plus(dir, after, limit)?
            .into_iter()
            .map(|(entry, _)| entry)
            .collect())
    }

    fn read_dir_plus(
        &self,
        dir: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(DirEntry, Attr)>, MetaError> {
        self.with(|s| {
            // Like the query: a missing directory, or a non-directory, has no entries.
            let Some(entries) = s.dirs.get(&dir) else {
                return Ok(Vec::new());
            };
            let mut listed = Vec::new();
            for (&cookie, name) in entries.by_cookie.range(after.saturating_add(1)..) {
                if listed.len() >= limit {
                    break;
                }
                let attr = s.attr(entries.by_name[name].child)?;
                let entry = DirEntry {
                    cookie,
                    name: name.clone(),
                    ino: attr.ino,
                    kind: attr.kind,
                };
                listed.push((entry, attr));
            }
            Ok(listed)
        })
    }

    fn parent_of(&self, dir: u64) -> Result<u64, MetaError> {
        if dir == ROOT_INO {
            return Ok(ROOT_INO);
        }
        self.with(|s| s.parent_of(dir).ok_or(MetaError::Errno(libc::ENOENT)))
    }

    fn set_attr(&self, ino: u64, change: &AttrChange) -> Result<Attr, MetaError> {
        self.with(|s| {
            let attr = s.attr_mut(ino)?;
            attr.perm = change.perm.unwrap_or(attr.perm);
            attr.uid = change.uid.unwrap_or(attr.uid);
            attr.gid = change.gid.unwrap_or(attr.gid);
            attr.size = change.size.unwrap_or(attr.size);
            attr.atime = change.atime.unwrap_or(attr.atime);
            attr.mtime = change.mtime.unwrap_or(attr.mtime);
            attr.ctime = attr.ctime.max(change.ctime.unwrap_or(attr.ctime));
            attr.blocks = change.blocks.or(attr.blocks);
            attr.data_state = change.data_state.unwrap_or(attr.data_state);
            Ok(*attr)
        })
    }

    fn read_link(&self, ino: u64) -> Result<Vec<u8>, MetaError> {
        self.with(|s| {
            s.symlinks
                .get(&ino)
                .cloned()
                .ok_or(MetaError::Errno(libc::EINVAL))
        })
    }

    fn set_xattr(
        &self,
        ino: u64,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
        max_total: usize,
    ) -> Result<Attr, MetaError> {
        check_xattr(name, value, max_total)?;
        self.with(|s| {
            s.attr(ino)?;
            let xattrs = s.xattrs.entry(ino).or_default();
            match (mode, xattrs.contains_key(name)) {
                (XattrMode::Create, true) => return Err(MetaError::Errno(libc::EEXIST)),
                (XattrMode::Replace, false) => return Err(MetaError::Errno(libc::ENODATA)),
                _ => {}
            }
            let others: usize = xattrs
                .iter()
                .filter(|(other, _)| other.as_slice() != name)
                .map(|(other, value)| other.len() + value.len())
                .sum();
            if others + name.len() + value.len() > max_total {
                return Err(MetaError::Errno(libc::ENOSPC));
            }
            xattrs.insert(name.to_vec(), value.to_vec());
            s.touch_ctime(ino, now_ns())?;
            s.attr(ino)
        })
    }

    fn get_xattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, MetaError> {
        check_xattr_name(name)?;
        self.with(|s| {
            s.xattrs
                .get(&ino)
                .and_then(|xattrs| xattrs.get(name))
                .cloned()
                .ok_or(MetaError::Errno(libc::ENODATA))
        })
    }

    fn list_xattrs(&self, ino: u64) -> Result<Vec<Vec<u8>>, MetaError> {
        self.with(|s| {
            Ok(s.xattrs
                .get(&ino)
                .map(|xattrs| xattrs.keys().cloned().collect())
                .unwrap_or_default())
        })
    }

    fn xattr_in_use(&self, name: &[u8]) -> Result<bool, MetaError> {
        self.with(|s| Ok(s.xattrs.values().any(|xattrs| xattrs.contains_key(name))))
    }

    fn remove_xattr(&self, ino: u64, name: &[u8]) -> Result<Attr, MetaError> {
        check_xattr_name(name)?;
        self.with(|s| {
            s.attr(ino)?;
            let removed = s
                .xattrs
                .get_mut(&ino)
                .and_then(|xattrs| xattrs.remove(name));
            if removed.is_none() {
                return Err(MetaError::Errno(libc::ENODATA));
            }
            s.touch_ctime(ino, now_ns())?;
            s.attr(ino)
        })
    }

    fn orphans(&self) -> Result<Vec<u64>, MetaError> {
        self.with(|s| {
            let mut orphans: Vec<u64> = s
                .inodes
                .values()
                .filter(|attr| attr.nlink == 0)
                .map(|attr| attr.ino)
                .collect();
            orphans.sort_unstable();
            Ok(orphans)
        })
    }

    fn existing(&self, inos: &[u64]) -> Result<Vec<u64>, MetaError> {
        Ok(self
            .sizes(inos)?
            .into_iter()
            .map(|(ino, _, _)| ino)
            .collect())
    }

    fn sizes(&self, inos: &[u64]) -> Result<Vec<(u64, Kind, u64)>, MetaError> {
        self.with(|s| {
            let mut found: Vec<(u64, Kind, u64)> = inos
                .iter()
                .filter_map(|ino| s.inodes.get(ino))
                .map(|attr| (attr.ino, attr.kind, attr.size))
                .collect();
            found.sort_unstable_by_key(|&(ino, _, _)| ino);
            found.dedup_by_key(|&mut (ino, _, _)| ino);
            Ok(found)
        })
    }

    fn identity(&self) -> Result<String, MetaError> {
        self.with(|_| Ok(self.identity.clone()))
    }

    fn files_with_data(&self, limit: u64) -> Result<u64, MetaError> {
        self.with(|s| {
            let count = s
                .inodes
                .values()
                .filter(|attr| attr.kind == Kind::File && attr.size > 0)
                .count() as u64;
            Ok(count.min(limit))
        })
    }

    fn purge(&self, ino: u64) -> Result<(), MetaError> {
        self.with(|s| {
            if s.attr(ino)?.nlink > 0 {
                return Ok(()); // linked again (or never unlinked): keep it
            }
            s.purge_rows(ino);
            Ok(())
        })
    }

    fn path_of(&self, ino: u64) -> Result<Vec<u8>, MetaError> {
        self.with(|s| {
            let mut parts: Vec<Vec<u8>> = Vec::new();
            let mut at = ino;
            while at != ROOT_INO {
                if parts.len() > MAX_DEPTH {
                    return Err(MetaError::Internal(format!("inode {ino}: path too deep")));
                }
                // Of the entries naming `at`, in any directory, the one made first.
                let (parent, name) = s
                    .dirs
                    .iter()
                    .flat_map(|(&parent, dir)| {
                        dir.by_name.iter().map(move |(name, e)| (parent, name, e))
                    })
                    .filter(|(_, _, e)| e.child == at)
                    .min_by_key(|(_, _, e)| e.cookie)
                    .map(|(parent, name, _)| (parent, name))
                    .ok_or(MetaError::Errno(libc::ENOENT))?;
                parts.push(name.clone());
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

    fn migration_candidates(&self, after: u64, limit: usize) -> Result<Vec<Attr>, MetaError> {
        self.with(|s| {
            let mut found: Vec<Attr> = s
                .inodes
                .values()
                .filter(|a| {
                    a.ino > after
                        && a.kind == Kind::File
                        && a.data_state == DataState::Resident
                        && a.nlink > 0
                })
                .copied()
                .collect();
            found.sort_by_key(|a| a.ino);
            found.truncate(limit);
            Ok(found)
        })
    }

    fn eviction_candidates(
        &self,
        after: Option<(i64, u64)>,
        limit: usize,
    ) -> Result<Vec<Attr>, MetaError> {
        self.with(|s| {
            let mut found: Vec<Attr> = s
                .inodes
                .values()
                .filter(|a| a.kind == Kind::File && a.data_state == DataState::Archived)
                .filter(|a| after.is_none_or(|pos| (a.atime, a.ino) > pos))
                .copied()
                .collect();
            found.sort_by_key(|a| (a.atime, a.ino));
            found.truncate(limit);
            Ok(found)
        })
    }

    fn record_copy(&self, copy: &ArchiveCopy) -> Result<Attr, MetaError> {
        if copy.volume.len() > VOLUME_MAX {
            return Err(MetaError::Errno(libc::ENAMETOOLONG));
        }
        self.with(|s| {
            let attr = *s.file_in_state(copy.ino, &[DataState::Resident])?;
            if attr.size != copy.size || attr.mtime != copy.mtime {
                return Err(MetaError::Errno(libc::EAGAIN));
            }
            if s.copies.contains_key(&(copy.volume.clone(), copy.seq)) {
                return Err(MetaError::Errno(libc::EEXIST));
            }
            s.supersede_copies(copy.ino, now_ns());
            let mut recorded = copy.clone();
            recorded.superseded_ns = None;
            s.copies.insert((copy.volume.clone(), copy.seq), recorded);
            let attr = s.attr_mut(copy.ino)?;
            attr.data_state = DataState::Archived;
            Ok(*attr)
        })
    }

    fn release(&self, ino: u64, mtime: i64) -> Result<Attr, MetaError> {
        self.with(|s| {
            let attr = *s.file_in_state(ino, &[DataState::Archived])?;
            if attr.mtime != mtime || s.live_copy(ino).is_none() {
                return Err(MetaError::Errno(libc::EAGAIN));
            }
            let attr = s.attr_mut(ino)?;
            attr.data_state = DataState::Released;
            Ok(*attr)
        })
    }

    fn recalled(&self, ino: u64) -> Result<Attr, MetaError> {
        self.with(|s| {
            let attr = s.file_in_state(ino, &[DataState::Released, DataState::Damaged])?;
            attr.data_state = DataState::Archived;
            Ok(*attr)
        })
    }

    fn mark_damaged(&self, ino: u64) -> Result<Attr, MetaError> {
        self.with(|s| {
            let attr = s.file_in_state(ino, &[DataState::Released])?;
            attr.data_state = DataState::Damaged;
            Ok(*attr)
        })
    }

    fn live_copy(&self, ino: u64) -> Result<Option<ArchiveCopy>, MetaError> {
        self.with(|s| Ok(s.live_copy(ino).cloned()))
    }

    fn released_after(
        &self,
        volume: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ArchiveCopy>, MetaError> {
        self.with(|s| {
            let start = (volume.to_owned(), after.saturating_add(1));
            Ok(s.copies
                .range(start..)
                .take_while(|((v, _), _)| v == volume)
                .map(|(_, c)| c)
                .filter(|c| c.superseded_ns.is_none())
                .filter(|c| {
                    s.inodes
                        .get(&c.ino)
                        .is_some_and(|a| a.data_state == DataState::Released)
                })
                .take(limit)
                .cloned()
                .collect())
        })
    }

    fn superseded_copies(
        &self,
        before_ns: i64,
        limit: usize,
    ) -> Result<Vec<ArchiveCopy>, MetaError> {
        self.with(|s| {
            let mut found: Vec<ArchiveCopy> = s
                .copies
                .values()
                .filter(|c| c.superseded_ns.is_some_and(|t| t < before_ns))
                .cloned()
                .collect();
            found.sort_by_key(|c| (c.superseded_ns, c.volume.clone(), c.seq));
            found.truncate(limit);
            Ok(found)
        })
    }

    fn superseded_count(&self) -> Result<u64, MetaError> {
        self.with(|s| {
            Ok(s.copies
                .values()
                .filter(|c| c.superseded_ns.is_some())
                .count() as u64)
        })
    }

    fn forget_copy(&self, volume: &str, seq: u64) -> Result<(), MetaError> {
        self.with(|s| {
            let key = (volume.to_owned(), seq);
            match s.copies.get(&key) {
                Some(c) if c.superseded_ns.is_none() => Err(MetaError::Errno(libc::EBUSY)),
                Some(_) => {
                    s.copies.remove(&key);
                    Ok(())
                }
                None => Ok(()),
            }
        })
    }

    fn state_totals(&self) -> Result<Vec<StateTotal>, MetaError> {
        self.with(|s| {
            let mut totals: BTreeMap<u8, StateTotal> = BTreeMap::new();
            for a in s.inodes.values().filter(|a| a.kind == Kind::File) {
                let t = totals.entry(a.data_state as u8).or_insert(StateTotal {
                    state: a.data_state,
                    files: 0,
                    bytes: 0,
                });
                t.files += 1;
                t.bytes += a.size;
            }
            Ok(totals.into_values().collect())
        })
    }
}

/// The whole catalog: what the MySQL engine keeps in its tables.
struct State {
    /// `vs_inodes`.
    inodes: HashMap<u64, Attr>,
    /// `vs_dentries`, per directory (every directory inode has one, possibly empty).
    dirs: HashMap<u64, Dir>,
    /// `vs_symlinks`.
    symlinks: HashMap<u64, Vec<u8>>,
    /// `vs_xattrs`, names in byte order (as `ORDER BY name` on VARBINARY).
    xattrs: HashMap<u64, BTreeMap<Vec<u8>, Vec<u8>>>,
    /// The next inode number (never reused, like AUTO_INCREMENT).
    next_ino: u64,
    /// The next directory entry cookie (never reused, like AUTO_INCREMENT).
    next_cookie: u64,
    /// `vs_copies`, by volume and sequence number.
    copies: BTreeMap<(String, u64), ArchiveCopy>,
    /// Failures queued by [`MemoryMeta::fail_next`].
    failures: VecDeque<MetaError>,
}

/// The entries of one directory, by name and by cookie.
#[derive(Default)]
struct Dir {
    by_name: HashMap<Vec<u8>, Entry>,
    by_cookie: BTreeMap<u64, Vec<u8>>,
}

/// One directory entry: the inode it names and its position.
#[derive(Clone, Copy)]
struct Entry {
    child: u64,
    cookie: u64,
}

impl State {
    fn attr(&self, ino: u64) -> Result<Attr, MetaError> {
        self.inodes
            .get(&ino)
            .copied()
            .ok_or(MetaError::Errno(libc::ENOENT))
    }

    fn attr_mut(&mut self, ino: u64) -> Result<&mut Attr, MetaError> {
        self.inodes
            .get_mut(&ino)
            .ok_or(MetaError::Errno(libc::ENOENT))
    }

    /// A directory that still has a name: `ENOENT` if gone, `ENOTDIR` if not a directory.
    fn live_dir(&self, dir: u64) -> Result<Attr, MetaError> {
        let attr = self.attr(dir)?;
        if attr.kind != Kind::Directory {
            return Err(MetaError::Errno(libc::ENOTDIR));
        }
        if attr.nlink == 0 {
            return Err(MetaError::Errno(libc::ENOENT));
        }
        Ok(attr)
    }

    fn dir(&self, dir: u64) -> Result<&Dir, MetaError> {
        self.dirs.get(&dir).ok_or(MetaError::Errno(libc::ENOENT))
    }

    fn dir_mut(&mut self, dir: u64) -> Result<&mut Dir, MetaError> {
        self.dirs
            .get_mut(&dir)
            .ok_or(MetaError::Errno(libc::ENOENT))
    }

    /// The entry `parent/name`; `ENOENT` if there is none (or `parent` is no directory).
    fn entry(&self, parent: u64, name: &[u8]) -> Result<Entry, MetaError> {
        self.dirs
            .get(&parent)
            .and_then(|dir| dir.by_name.get(name))
            .copied()
            .ok_or(MetaError::Errno(libc::ENOENT))
    }

    /// Adds `parent/name` naming `child` at a new cookie; `EEXIST` if the name is taken.
    fn insert_entry(&mut self, parent: u64, name: &[u8], child: u64) -> Result<(), MetaError> {
        let cookie = self.next_cookie;
        let dir = self.dir_mut(parent)?;
        if dir.by_name.contains_key(name) {
            return Err(MetaError::Errno(libc::EEXIST));
        }
        dir.by_name.insert(name.to_vec(), Entry { child, cookie });
        dir.by_cookie.insert(cookie, name.to_vec());
        self.next_cookie += 1;
        Ok(())
    }

    fn remove_entry(&mut self, parent: u64, name: &[u8]) -> Result<Entry, MetaError> {
        let dir = self.dir_mut(parent)?;
        let entry = dir
            .by_name
            .remove(name)
            .ok_or(MetaError::Errno(libc::ENOENT))?;
        dir.by_cookie.remove(&entry.cookie);
        Ok(entry)
    }

    /// Moves an entry to a new directory and name, keeping its cookie (as the MySQL engine's
    /// `UPDATE ... SET parent, name` does).
    fn move_entry(
        &mut self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
    ) -> Result<(), MetaError> {
        let entry = self.remove_entry(parent, name)?;
        let dir = self.dir_mut(newparent)?;
        dir.by_name.insert(newname.to_vec(), entry);
        dir.by_cookie.insert(entry.cookie, newname.to_vec());
        Ok(())
    }

    /// Points the entry `parent/name` at `child`, keeping its cookie.
    fn set_child(&mut self, parent: u64, name: &[u8], child: u64) -> Result<(), MetaError> {
        let entry = self
            .dir_mut(parent)?
            .by_name
            .get_mut(name)
            .ok_or(MetaError::Errno(libc::ENOENT))?;
        entry.child = child;
        Ok(())
    }

    fn ensure_empty(&self, dir: u64) -> Result<(), MetaError> {
        match self.dirs.get(&dir) {
            Some(entries) if !entries.by_name.is_empty() => Err(MetaError::Errno(libc::ENOTEMPTY)),
            _ => Ok(()),
        }
    }

    /// One name fewer for `ino` (never below 0), its status changed at `now`.
    fn drop_link(&mut self, ino: u64, now: i64) -> Result<(), MetaError> {
        let attr = self.attr_mut(ino)?;
        if attr.nlink > 0 {
            attr.nlink -= 1;
            attr.ctime = attr.ctime.max(now);
        }
        Ok(())
    }

    /// A directory's entries changed at `now`; its link count moves by `nlink_delta`.
    fn touch_dir(&mut self, dir: u64, now: i64, nlink_delta: i32) -> Result<(), MetaError> {
        let attr = self.attr_mut(dir)?;
        attr.mtime = now;
        attr.ctime = attr.ctime.max(now);
        attr.nlink = attr.nlink.saturating_add_signed(nlink_delta);
        Ok(())
    }

    fn touch_ctime(&mut self, ino: u64, now: i64) -> Result<(), MetaError> {
        let attr = self.attr_mut(ino)?;
        attr.ctime = attr.ctime.max(now);
        Ok(())
    }

    /// Deletes the inode's rows (not entries naming it: callers removed those).
    fn purge_rows(&mut self, ino: u64) {
        self.supersede_copies(ino, now_ns());
        self.inodes.remove(&ino);
        self.dirs.remove(&ino);
        self.symlinks.remove(&ino);
        self.xattrs.remove(&ino);
    }

    /// Marks the live copies of `ino` superseded at `now`.
    fn supersede_copies(&mut self, ino: u64, now: i64) {
        for copy in self.copies.values_mut() {
            if copy.ino == ino && copy.superseded_ns.is_none() {
                copy.superseded_ns = Some(now);
            }
        }
    }

    /// The live copy of `ino` (a scan: this is a test fake).
    fn live_copy(&self, ino: u64) -> Option<&ArchiveCopy> {
        self.copies
            .values()
            .find(|c| c.ino == ino && c.superseded_ns.is_none())
    }

    /// The inode's attributes if it is a regular file in `state`; `EAGAIN` otherwise.
    fn file_in_state(&mut self, ino: u64, states: &[DataState]) -> Result<&mut Attr, MetaError> {
        let attr = self.attr_mut(ino)?;
        if attr.kind != Kind::File || !states.contains(&attr.data_state) {
            return Err(MetaError::Errno(libc::EAGAIN));
        }
        Ok(attr)
    }

    /// The directory holding an entry that names `child` (a scan: this is a test fake).
    fn parent_of(&self, child: u64) -> Option<u64> {
        let mut parents: Vec<u64> = self
            .dirs
            .iter()
            .filter(|(_, dir)| dir.by_name.values().any(|entry| entry.child == child))
            .map(|(&parent, _)| parent)
            .collect();
        parents.sort_unstable();
        parents.first().copied()
    }

    /// `EINVAL` if `dir` is `target_parent` or one of its ancestors.
    fn refuse_into_own_subtree(&self, dir: u64, target_parent: u64) -> Result<(), MetaError> {
        let mut current = target_parent;
        for _ in 0..MAX_DEPTH {
            if current == dir {
                return Err(MetaError::Errno(libc::EINVAL));
            }
            if current == ROOT_INO {
                return Ok(());
            }
            match self.parent_of(current) {
                Some(parent) => current = parent,
                None => return Ok(()),
            }
        }
        Err(MetaError::Internal(
            "directory tree deeper than 100000 levels".into(),
        ))
    }
}

/// What is left of `attr` after its rows were purged at `now`.
fn removed(attr: Attr, now: i64) -> Attr {
    Attr {
        nlink: 0,
        ctime: now,
        ..attr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_failures_come_back_in_order_then_calls_run_again() {
        let meta = MemoryMeta::new(0, 0);
        meta.fail_next(MetaError::Unavailable("down".into()));
        meta.fail_next(MetaError::Conflict("deadlock".into()));
        assert_eq!(
            meta.get_attr(ROOT_INO),
            Err(MetaError::Unavailable("down".into()))
        );
        assert_eq!(
            meta.get_attr(ROOT_INO),
            Err(MetaError::Conflict("deadlock".into()))
        );
        assert_eq!(meta.get_attr(ROOT_INO).map(|a| a.kind), Ok(Kind::Directory));
    }

    #[test]
    fn identity_is_32_hex_digits_and_differs_between_catalogs() {
        let (a, b) = (MemoryMeta::new(0, 0), MemoryMeta::new(0, 0));
        let id = a.identity().unwrap();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()), "{id}");
        assert_ne!(id, b.identity().unwrap());
    }
}
