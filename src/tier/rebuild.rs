//! Rebuilding a lost catalog from the volumes (`vfsserver --rebuild-catalog`): every live
//! copy the manifests name ([`crate::archive::rebuild`]) becomes a `Released` file at its
//! path at archive time, with its mode, owner, times and size, and its copy recorded, so a
//! read recalls it. Only the [`MetaEngine`] trait is used.
//!
//! Decisions where the volumes cannot say more:
//! - Files get new inode numbers (the catalog allocates them); the copies are recorded
//!   under the new numbers.
//! - Missing parent directories are made with mode 0755, owner root (the manifests record
//!   files only).
//! - Two live copies at one path (a file renamed away after it was archived, another one
//!   archived under the old name): the one with the later status change wins, the other is
//!   reported as a conflict and not restored. A path whose parent is a file is a conflict too.
//! - Hard links: the manifests record one path per copy, so a file is restored under the
//!   path its latest copy recorded; its other names are not known and not made.

use std::path::Path;

use crate::archive::{ArchiveError, ArchiveFolder, LiveCopy};
use crate::cache::identity::CacheIdentity;
use crate::cache::Cache;
use crate::meta::{
    ArchiveCopy, AttrChange, DataState, Kind, MetaEngine, MetaError, NewNode, ROOT_INO,
};

/// Mode of directories the rebuild makes.
pub const MADE_DIR_MODE: u16 = 0o755;

/// What a rebuild did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    /// Files restored (state `Released`).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Directories made (paths, in the order made).
    pub dirs_made: Vec<String>,
    /// Copies not restored, each with the reason.
    pub conflicts: Vec<String>,
    /// Torn manifest tails skipped (manifest path and line).
    pub torn: Vec<String>,
    /// Copy and mark records read.
    pub records: (u64, u64),
}

/// Why the rebuild did not run or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The catalog already holds files.
    #[error("the catalog is not empty: the root directory holds {0}; rebuild only into a new, empty catalog")]
    NotEmpty(String),
    /// The manifests could not be read.
    #[error("reading the manifests: {0}")]
    Archive(#[from] ArchiveError),
    /// The catalog failed.
    #[error("catalog: {what}: {err}")]
    Catalog {
        /// What was being done.
        what: String,
        /// The catalog's error.
        err: MetaError,
    },
}

/// Rebuilds the catalog `meta` (migrated, empty: only the root directory) from the
/// manifests of `folder`.
pub fn rebuild_catalog(
    meta: &dyn MetaEngine,
    folder: &ArchiveFolder,
) -> Result<RebuildReport, RebuildError> {
    let found = meta
        .read_dir(ROOT_INO, 0, 2)
        .map_err(|err| RebuildError::Catalog {
            what: "listing the root directory".into(),
            err,
        })?;
    if let Some(first) = found.first() {
        let more = if found.len() > 1 { " and more" } else { "" };
        return Err(RebuildError::NotEmpty(format!(
            "{:?}{more}",
            String::from_utf8_lossy(&first.name)
        )));
    }
    let scan = crate::archive::rebuild(folder)?;
    let mut report = RebuildReport {
        records: (scan.copies, scan.marks),
        torn: scan
            .torn
            .iter()
            .map(|t| format!("{} line {}", t.path.display(), t.line))
            .collect(),
        ..RebuildReport::default()
    };
    for (copy, lost) in by_path(scan.live) {
        for other in lost {
            report.conflicts.push(format!(
                "{}: copy {} of {} (inode {} then) not restored: the path also names a newer copy, {} of {}",
                show(&other.record.meta.path),
                other.record.seq,
                other.volume,
                other.record.meta.ino,
                copy.record.seq,
                copy.volume
            ));
        }
        match restore(meta, &copy, &mut report.dirs_made) {
            Ok(()) => {
                report.files += 1;
                report.bytes += copy.record.size;
            }
            Err(Restore::Conflict(why)) => report.conflicts.push(format!(
                "{}: copy {} of {} not restored: {why}",
                show(&copy.record.meta.path),
                copy.record.seq,
                copy.volume
            )),
            Err(Restore::Catalog(what, err)) => {
                return Err(RebuildError::Catalog {
                    what: format!("{what} {}", show(&copy.record.meta.path)),
                    err,
                })
            }
        }
    }
    Ok(report)
}

impl std::fmt::Display for RebuildReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for dir in &self.dirs_made {
            writeln!(f, "made directory {dir} (mode 0755, owner root)")?;
        }
        for conflict in &self.conflicts {
            writeln!(f, "conflict: {conflict}")?;
        }
        for torn in &self.torn {
            writeln!(f, "torn manifest tail skipped: {torn}")?;
        }
        write!(
            f,
            "rebuilt {} files ({} bytes, released: reads recall them), {} directories made, \
             {} conflicts, {} torn manifest tails; read {} copy and {} mark records",
            self.files,
            self.bytes,
            self.dirs_made.len(),
            self.conflicts.len(),
            self.torn.len(),
            self.records.0,
            self.records.1
        )
    }
}

enum Restore {
    Conflict(String),
    Catalog(&'static str, MetaError),
}

/// The live copies by path, each with the older copies at the same path it wins over; in
/// path order, so parents are made before their children.
fn by_path(live: Vec<LiveCopy>) -> Vec<(LiveCopy, Vec<LiveCopy>)> {
    let mut live = live;
    // Per path: the latest status change first.
    live.sort_by(|a, b| {
        (
            &a.record.meta.path,
            b.record.meta.ctime_ns,
            b.record.archived_ns,
        )
            .cmp(&(
                &b.record.meta.path,
                a.record.meta.ctime_ns,
                a.record.archived_ns,
            ))
    });
    let mut out: Vec<(LiveCopy, Vec<LiveCopy>)> = Vec::new();
    for copy in live {
        match out.last_mut() {
            Some((winner, lost)) if winner.record.meta.path == copy.record.meta.path => {
                lost.push(copy)
            }
            _ => out.push((copy, Vec::new())),
        }
    }
    out
}

/// Makes the file of `copy` at its path, released, with its copy recorded.
fn restore(meta: &dyn MetaEngine, copy: &LiveCopy, made: &mut Vec<String>) -> Result<(), Restore> {
    let m = &copy.record.meta;
    let names: Vec<&[u8]> = m
        .path
        .split(|&b| b == b'/')
        .filter(|n| !n.is_empty())
        .collect();
    let Some((name, dirs)) = names.split_last() else {
        return Err(Restore::Conflict("the recorded path names no file".into()));
    };
    if m.mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Restore::Conflict(format!(
            "mode {:o} is no regular file",
            m.mode
        )));
    }
    let mut parent = ROOT_INO;
    let mut at = Vec::new();
    for dir in dirs {
        at.push(b'/');
        at.extend_from_slice(dir);
        parent = match meta.lookup(parent, dir) {
            Ok(attr) if attr.kind == Kind::Directory => attr.ino,
            Ok(_) => {
                return Err(Restore::Conflict(format!(
                    "{} is not a directory",
                    show(&at)
                )))
            }
            Err(MetaError::Errno(libc::ENOENT)) => {
                let node = NewNode {
                    kind: Kind::Directory,
                    perm: MADE_DIR_MODE,
                    uid: 0,
                    gid: 0,
                    rdev: 0,
                    target: None,
                };
                let attr = meta
                    .create(parent, dir, &node)
                    .map_err(|e| Restore::Catalog("making a directory for", e))?;
                made.push(show(&at));
                attr.ino
            }
            Err(e) => return Err(Restore::Catalog("looking up a directory of", e)),
        };
    }
    let node = NewNode {
        kind: Kind::File,
        perm: (m.mode & 0o7777) as u16,
        uid: m.uid,
        gid: m.gid,
        rdev: 0,
        target: None,
    };
    let attr = match meta.create(parent, name, &node) {
        Ok(attr) => attr,
        Err(MetaError::Errno(libc::EEXIST)) => {
            return Err(Restore::Conflict(
                "a directory of that name was made for another file".into(),
            ))
        }
        Err(e) => return Err(Restore::Catalog("creating", e)),
    };
    // The creator's group may come from a set-group-ID parent: set the recorded one.
    let change = AttrChange {
        perm: Some(node.perm),
        gid: Some(m.gid),
        size: Some(copy.record.size),
        atime: Some(m.mtime_ns),
        mtime: Some(m.mtime_ns),
        data_state: Some(DataState::Resident),
        ..AttrChange::default()
    };
    meta.set_attr(attr.ino, &change)
        .map_err(|e| Restore::Catalog("setting the attributes of", e))?;
    let recorded = ArchiveCopy {
        ino: attr.ino,
        volume: copy.volume.clone(),
        seq: copy.record.seq,
        size: copy.record.size,
        mtime: m.mtime_ns,
        md5: copy.record.md5,
        sha1: copy.record.sha1,
        archived_ns: copy.record.archived_ns,
        superseded_ns: None,
    };
    meta.record_copy(&recorded)
        .map_err(|e| Restore::Catalog("recording the copy of", e))?;
    meta.release(attr.ino, m.mtime_ns)
        .map_err(|e| Restore::Catalog("releasing", e))?;
    Ok(())
}

/// What [`bind_cache_folder`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheBinding {
    /// The folder had no identity and no data files: it now belongs to the rebuilt catalog.
    Bound,
    /// The folder already belongs to the rebuilt catalog.
    Already,
    /// The folder belongs to another catalog or holds data files: left alone, with what the
    /// operator can do.
    LeftAlone(String),
}

/// Binds the cache folder `root` to the rebuilt catalog `meta` when it is empty (every
/// rebuilt file is released, so no local data is missing); otherwise says what to do. A
/// rebuilt catalog has files with data that no cache holds, which a start refuses unless
/// the cache is bound to it.
pub fn bind_cache_folder(meta: &dyn MetaEngine, root: &Path) -> Result<CacheBinding, String> {
    let token = meta
        .identity()
        .map_err(|e| format!("reading the catalog's identity: {e}"))?;
    std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let recorded = CacheIdentity::read(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let cache = Cache::open(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let has_data = cache
        .has_data_files()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    match recorded {
        Some(r) if r.catalog == token => return Ok(CacheBinding::Already),
        Some(r) => {
            return Ok(CacheBinding::LeftAlone(format!(
                "cache folder {} belongs to catalog {} (the lost one?): start once with \
                 --rebind-cache (its data files are then quarantined) or set CacheFolder to \
                 an empty folder",
                root.display(),
                r.catalog
            )))
        }
        None if has_data => {
            return Ok(CacheBinding::LeftAlone(format!(
                "cache folder {} holds data files of no known catalog: start once with \
                 --rebind-cache (they are then quarantined) or set CacheFolder to an empty folder",
                root.display()
            )))
        }
        None => {}
    }
    let location = meta.location();
    CacheIdentity {
        catalog: token,
        database: location.database,
        host: location.server,
        bound_ns: crate::meta::now_ns(),
    }
    .write(root)
    .map_err(|e| format!("{}: writing its identity: {e}", root.display()))?;
    Ok(CacheBinding::Bound)
}

fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::cache::Cache;
    use crate::data::DataStore;
    use crate::meta::memory::MemoryMeta;
    use crate::tier::Tier;
    use crate::vfs::{FsOptions, Vfs};

    const PATIENCE: Duration = Duration::from_secs(30);

    /// A core with a tier over `meta`, a cache in `dir/<cache>` and volumes in `dir/archive`.
    fn start(dir: &std::path::Path, cache: &str, meta: &Arc<MemoryMeta>) -> Vfs {
        std::fs::create_dir_all(dir.join(cache)).unwrap();
        let cache = Cache::open(&dir.join(cache)).unwrap();
        let tier = Tier::new(
            crate::tier::tests::options(dir, |_| {}),
            Arc::clone(meta) as Arc<dyn MetaEngine>,
            cache.clone(),
        );
        let options = FsOptions {
            cache_free_least_size: 0,
            tier: Some(Arc::new(tier)),
            ..FsOptions::default()
        };
        Vfs::start(
            Arc::clone(meta) as Arc<dyn MetaEngine>,
            Arc::new(cache) as Arc<dyn DataStore>,
            options,
        )
        .unwrap()
    }

    fn lookup_path(meta: &MemoryMeta, path: &str) -> crate::meta::Attr {
        let mut attr = meta.get_attr(ROOT_INO).unwrap();
        for name in path.split('/').filter(|n| !n.is_empty()) {
            attr = meta.lookup(attr.ino, name.as_bytes()).unwrap_or_else(|e| {
                panic!("{path}: {name} not found: {e:?}");
            });
        }
        attr
    }

    fn await_archived(meta: &MemoryMeta, inos: &[u64]) {
        let deadline = Instant::now() + PATIENCE;
        let archived = |ino| meta.get_attr(ino).unwrap().data_state == DataState::Archived;
        while !inos.iter().all(|&ino| archived(ino)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for &ino in inos {
            assert!(archived(ino), "inode {ino}: {:?}", meta.get_attr(ino));
        }
    }

    fn read_all(vfs: &Vfs, ino: u64, size: u64) -> Vec<u8> {
        let core = vfs.core();
        let fh = core.open(ino, false).unwrap();
        let mut out = Vec::new();
        while (out.len() as u64) < size {
            let chunk = core.read(fh, out.len() as u64, 1 << 16).unwrap();
            if chunk.is_empty() {
                break;
            }
            out.extend_from_slice(&chunk);
        }
        core.release(ino, fh).unwrap();
        out
    }

    #[test]
    fn a_catalog_rebuilt_from_the_manifests_has_every_file_released_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("archive/V1")).unwrap();
        let old = Arc::new(MemoryMeta::new(0, 0));
        let vfs = start(dir.path(), "cache", &old);
        let core = vfs.core();
        let d = core
            .make(ROOT_INO, b"d", &node(Kind::Directory, 0o750, 5, 6))
            .unwrap()
            .ino;
        let files: Vec<(u64, &str, Vec<u8>, u16, u32)> = [
            (ROOT_INO, "a", 10_000, 0o644, 1000),
            (d, "b", 5_000, 0o600, 1001),
            (d, "c", 0, 0o640, 0),
        ]
        .into_iter()
        .map(|(parent, name, len, perm, uid)| {
            let (fh, attr) = core
                .create(
                    parent,
                    name.as_bytes(),
                    &node(Kind::File, perm, uid, 7),
                    true,
                )
                .unwrap();
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + uid as usize) as u8).collect();
            core.write(fh, 0, &data).unwrap();
            core.flush(attr.ino, fh).unwrap();
            core.release(attr.ino, fh).unwrap();
            (attr.ino, name, data, perm, uid)
        })
        .collect();
        let with_data: Vec<u64> = files
            .iter()
            .filter(|f| !f.2.is_empty())
            .map(|f| f.0)
            .collect();
        for &ino in &with_data {
            vfs.core().tier().unwrap().archive_now(ino).unwrap();
        }
        await_archived(&old, &with_data);
        drop(vfs);

        // A crash during an append left half a line: skipped and reported.
        let manifest = dir
            .path()
            .join("archive/V1")
            .join(crate::archive::manifest::MANIFEST_NAME);
        let mut torn = std::fs::OpenOptions::new()
            .append(true)
            .open(&manifest)
            .unwrap();
        std::io::Write::write_all(&mut torn, b"copy 99 1").unwrap();
        drop(torn);

        let new = Arc::new(MemoryMeta::new(0, 0));
        let folder = ArchiveFolder::new(dir.path().join("archive"), 0);
        let report = rebuild_catalog(new.as_ref(), &folder).unwrap();
        assert_eq!(report.torn.len(), 1, "{report}");
        assert!(
            report.to_string().contains("torn manifest tail skipped: "),
            "{report}"
        );
        assert_eq!(report.files, 2, "{report}");
        assert_eq!(report.bytes, 15_000, "{report}");
        assert_eq!(report.dirs_made, ["/d"], "{report}");
        assert!(report.conflicts.is_empty(), "{report}");

        let cache2 = dir.path().join("cache2");
        assert_eq!(
            bind_cache_folder(new.as_ref(), &cache2),
            Ok(CacheBinding::Bound)
        );
        let vfs = start(dir.path(), "cache2", &new);
        for (ino, name, data, perm, uid) in files.iter().filter(|f| !f.2.is_empty()) {
            let path = if *name == "a" {
                "/a".to_owned()
            } else {
                format!("/d/{name}")
            };
            let was = old.get_attr(*ino).unwrap();
            let now = lookup_path(&new, &path);
            assert_eq!(now.data_state, DataState::Released, "{path}");
            assert_eq!(
                (now.perm, now.uid, now.gid, now.size, now.mtime),
                (*perm, *uid, 7, data.len() as u64, was.mtime),
                "{path}: (perm, uid, gid, size, mtime) rebuilt vs original"
            );
            assert!(
                read_all(&vfs, now.ino, now.size) == *data,
                "{path}: bytes differ"
            );
        }
        let made = lookup_path(&new, "/d");
        assert_eq!(
            (made.perm, made.uid, made.gid),
            (0o755, 0, 0),
            "made directory"
        );
    }

    #[test]
    fn a_catalog_with_files_is_not_rebuilt_into() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("archive/V1")).unwrap();
        let meta = MemoryMeta::new(0, 0);
        meta.create(ROOT_INO, b"keep", &node(Kind::File, 0o644, 0, 0))
            .unwrap();
        let folder = ArchiveFolder::new(dir.path().join("archive"), 0);
        let err = rebuild_catalog(&meta, &folder).unwrap_err();
        assert!(
            matches!(&err, RebuildError::NotEmpty(found) if found == "\"keep\""),
            "{err}"
        );
    }

    #[test]
    fn two_live_copies_at_one_path_keep_the_newer_and_report_the_other() {
        use crate::archive::{CopyRecord, FileMeta};
        let copy = |volume: &str, seq, ino, ctime_ns| LiveCopy {
            volume: volume.into(),
            record: CopyRecord {
                seq,
                size: 1,
                meta: FileMeta {
                    ino,
                    path: b"/x".to_vec(),
                    mode: libc::S_IFREG | 0o644,
                    uid: 0,
                    gid: 0,
                    mtime_ns: 1,
                    ctime_ns,
                },
                archived_ns: 1,
                md5: None,
                sha1: None,
            },
        };
        let grouped = by_path(vec![copy("V1", 1, 5, 10), copy("V2", 9, 6, 20)]);
        assert_eq!(grouped.len(), 1);
        assert_eq!(
            grouped[0].0.record.meta.ino, 6,
            "the later status change wins"
        );
        assert_eq!(grouped[0].1.len(), 1);
        assert_eq!(grouped[0].1[0].record.meta.ino, 5);
    }

    fn node(kind: Kind, perm: u16, uid: u32, gid: u32) -> NewNode<'static> {
        NewNode {
            kind,
            perm,
            uid,
            gid,
            rdev: 0,
            target: None,
        }
    }
}
